#!/usr/bin/env python3
"""kiln build end to end (docs/deploy.md): trains credit_risk for one epoch, builds the
artifact, and checks it as a user would: the files are there; the shared library and the
executable need only libc and libm; the library exports only the model's own API; a small
C program compiled against the header with plain `cc` predicts what `kiln predict` (JIT)
predicts within 1e-5; the generated smoke test passes; the standalone executable on the
model's CSV agrees with `kiln predict`; the weights-file variant checks its CRC32C.

    test_build.py KILN_BINARY SOURCE_DIR
"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

from checks import check, run, summary

NAME = "credit_risk"
def parse_csv_predictions(text):
    lines = text.strip().splitlines()
    header = lines[0].split(",")
    rows = {}
    for line in lines[1:]:
        cells = line.split(",")
        rows[int(cells[0])] = cells[1:]
    return header, rows


def close(a, b, tol=1e-5):
    return abs(a - b) <= tol * max(1.0, abs(b))


# A program a user would write against the header: raw CSV rows through the compiled feature
# pipeline (credit_risk_transform_row), then credit_risk_predict on all of them at once.
C_PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "credit_risk.h"

static unsigned char workspace[CREDIT_RISK_WORKSPACE_BYTES] __attribute__((aligned(64)));

int main(int argc, char** argv) {
  FILE* f = fopen(argv[1], "r");
  char line[4096], header[4096];
  char* names[64];
  int fields = 0, where[CREDIT_RISK_RAW_COLUMNS];
  static float features[5000 * CREDIT_RISK_INPUT_WIDTH], out[5000 * CREDIT_RISK_OUTPUT_WIDTH];
  static long lines[5000];
  size_t n = 0;
  long at = 1;
  credit_risk_ctx ctx;
  if (!f || !fgets(header, sizeof header, f)) return 2;
  header[strcspn(header, "\r\n")] = 0;
  for (char* p = strtok(header, ","); p; p = strtok(NULL, ",")) names[fields++] = p;
  for (int k = 0; k < CREDIT_RISK_RAW_COLUMNS; ++k) {
    where[k] = -1;
    for (int i = 0; i < fields; ++i)
      if (strcmp(names[i], credit_risk_raw_columns[k]) == 0) where[k] = i;
    if (where[k] < 0) return 3;
  }
  while (fgets(line, sizeof line, f)) {
    const char* cells[64];
    const char* raw[CREDIT_RISK_RAW_COLUMNS];
    char why[256];
    int i = 0;
    ++at;
    line[strcspn(line, "\r\n")] = 0;
    char* p = line;
    for (;;) {
      cells[i++] = p;
      char* comma = strchr(p, ',');
      if (!comma) break;
      *comma = 0;
      p = comma + 1;
    }
    for (int k = 0; k < CREDIT_RISK_RAW_COLUMNS; ++k) raw[k] = cells[where[k]];
    if (!credit_risk_transform_row(raw, features + n * CREDIT_RISK_INPUT_WIDTH, why, sizeof why)) continue;
    lines[n++] = at;
  }
  if (credit_risk_init(&ctx, workspace, NULL) != 0) return 4;
  if (credit_risk_predict(&ctx, features, n, out) != 0) return 5;
  /* Again in groups of 1 and 7 rows, each starting wherever its row starts in the array
     (30 floats a row: 8-byte boundaries) and each run by smaller batch entries: the same
     numbers as the whole batch, up to the summation order of the smaller products. */
  static float part[CREDIT_RISK_OUTPUT_WIDTH * 7];
  for (size_t r = 0; r < n;) {
    size_t group = r % 2 ? 7 : 1;
    if (group > n - r) group = n - r;
    if (credit_risk_predict(&ctx, features + r * CREDIT_RISK_INPUT_WIDTH, group, part) != 0) return 6;
    for (size_t k = 0; k < group * CREDIT_RISK_OUTPUT_WIDTH; ++k) {
      const float want = out[r * CREDIT_RISK_OUTPUT_WIDTH + k];
      const float diff = part[k] > want ? part[k] - want : want - part[k];
      if (diff > 1e-5f * (1.0f + (want > 0 ? want : -want))) return 7;
    }
    r += group;
  }
  for (size_t r = 0; r < n; ++r) {
    printf("%ld", lines[r]);
    for (int k = 0; k < CREDIT_RISK_OUTPUT_WIDTH; ++k) printf(",%.9g", out[r * CREDIT_RISK_OUTPUT_WIDTH + k]);
    printf("\n");
  }
  return 0;
}
"""


# Two threads, each with its own context, predict the same 20 rows 2,000 times at once (batch
# 1 and batch 8 alternately) and check every result against a first serial pass bit for bit.
CONCURRENT_PROGRAM = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fashion_mlp.h"

static float rows[20 * FASHION_MLP_INPUT_WIDTH], want[20 * FASHION_MLP_OUTPUT_WIDTH];
static float want8[12][8 * FASHION_MLP_OUTPUT_WIDTH]; /* batch 8 from row i (sums in another order than batch 1) */
static int bad[2];

static void* worker(void* arg) {
  int id = (int)(long)arg;
  void* ws = aligned_alloc(64, (FASHION_MLP_WORKSPACE_BYTES + 63) / 64 * 64);
  fashion_mlp_ctx ctx;
  float out[8 * FASHION_MLP_OUTPUT_WIDTH];
  if (ws == NULL || fashion_mlp_init(&ctx, ws, NULL) != 0) { bad[id] = -1; return NULL; }
  for (int it = 0; it < 2000; ++it) {
    int first = (it * 7 + id) % 12, n = it % 2 ? 8 : 1;
    if (fashion_mlp_predict(&ctx, rows + first * FASHION_MLP_INPUT_WIDTH, (size_t)n, out) != 0) ++bad[id];
    const float* expect = n == 1 ? want + first * FASHION_MLP_OUTPUT_WIDTH : want8[first];
    if (memcmp(out, expect, sizeof(float) * n * FASHION_MLP_OUTPUT_WIDTH) != 0) ++bad[id];
  }
  free(ws);
  return NULL;
}

int main(int argc, char** argv) {
  FILE* f = fopen(argv[1], "rb");
  if (f == NULL || fread(rows, sizeof rows, 1, f) != 1) return 2;
  fclose(f);
  void* ws = aligned_alloc(64, (FASHION_MLP_WORKSPACE_BYTES + 63) / 64 * 64);
  fashion_mlp_ctx ctx;
  if (ws == NULL || fashion_mlp_init(&ctx, ws, NULL) != 0) return 3;
  for (int r = 0; r < 20; ++r)
    if (fashion_mlp_predict(&ctx, rows + r * FASHION_MLP_INPUT_WIDTH, 1, want + r * FASHION_MLP_OUTPUT_WIDTH)) return 4;
  for (int r = 0; r < 12; ++r)
    if (fashion_mlp_predict(&ctx, rows + r * FASHION_MLP_INPUT_WIDTH, 8, want8[r])) return 4;
  pthread_t t[2];
  for (long i = 0; i < 2; ++i) pthread_create(&t[i], NULL, worker, (void*)i);
  for (int i = 0; i < 2; ++i) pthread_join(t[i], NULL);
  printf("%s %d %d", bad[0] == 0 && bad[1] == 0 ? "ok" : "FAILED", bad[0], bad[1]);
  for (int j = 0; j < 20 * FASHION_MLP_OUTPUT_WIDTH; ++j) printf(" %a", want[j]);
  for (int j = 0; j < 8 * FASHION_MLP_OUTPUT_WIDTH; ++j) printf(" %a", want8[11][j]);
  printf("\n");
  return 0;
}
"""


def main() -> int:
    kiln = str(pathlib.Path(sys.argv[1]).resolve())
    src = pathlib.Path(sys.argv[2]).resolve()
    model = str(src / "models" / "credit_risk.kiln")
    csv = str(src / "models" / "data" / "credit_data.csv")
    env = dict(os.environ, KILN_STDLIB=str(src / "stdlib"), NO_COLOR="1")
    cc = os.environ.get("CC", "cc")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        run([kiln, "train", model, "--epochs", "1", "--out", str(tmp / "run"), "--no-checkpoints"], env)
        art = tmp / "art"
        p = run([kiln, "build", model, "--run", str(tmp / "run"), "-o", str(art)], env)
        print(p.stdout.strip())
        expected = [f"{NAME}.h", f"{NAME}.o", f"lib{NAME}.a", f"lib{NAME}.so", f"{NAME}_runtime.c", f"{NAME}_smoke.c",
                    f"{NAME}_bench.c", f"{NAME}_main.c", NAME, f"{NAME}_smoke", f"{NAME}_bench", f"{NAME}.weights"]
        for f in expected:
            check((art / f).is_file(), f"{f} exists")

        # The generated C compiles without a warning under -Wall -Wextra (a service's strict build
        # may compile NAME_runtime.c itself), the library's part and the predictor's also as ISO C11.
        for f in (f"{NAME}_runtime.c", f"{NAME}_smoke.c", f"{NAME}_bench.c", f"{NAME}_main.c"):
            std = ["-std=c11"] if f.endswith(("_runtime.c", "_main.c")) else []
            strict = run([cc, *std, "-Wall", "-Wextra", "-Werror", "-c", f, "-o", str(tmp / "strict.o")], env,
                         expect=None, cwd=str(art))
            check(strict.returncode == 0, f"{cc} {' '.join(std)} -Wall -Wextra -Werror {f}: {strict.stderr.strip()[:300]}")

        # --cpu: NAME.o for another CPU. x86-64-v3 (AVX2, as on Zen 3) gets the AVX2 kernels and
        # no AVX-512 instruction, whatever this machine has; its smoke test passes (kiln build
        # runs it). A CPU LLVM does not know is refused with a message, not ignored.
        art_v3 = tmp / "art_v3"
        run([kiln, "build", model, "--run", str(tmp / "run"), "-o", str(art_v3), "--cpu", "x86-64-v3"], env)
        header_v3 = (art_v3 / f"{NAME}.h").read_text()
        check(f'#define {NAME.upper()}_TARGET_CPU "x86-64-v3"' in header_v3 and "(kernels: avx2)" in header_v3,
              "the header names the target CPU and the AVX2 kernels")
        if shutil.which("objdump"):
            asm = run(["objdump", "-d", str(art_v3 / f"{NAME}.o")], env).stdout
            check("ymm" in asm and "zmm" not in asm, "--cpu x86-64-v3: AVX2 code and no AVX-512 register in the object")
        bad = run([kiln, "build", model, "--run", str(tmp / "run"), "-o", str(tmp / "art_bad"), "--cpu", "zen9"], env,
                  expect=1)
        check("'zen9' is not a CPU LLVM knows" in bad.stderr, f"--cpu zen9 is refused: {bad.stderr.strip()[:120]}")
        # An artifact for a CPU with an extension this one lacks (Knights Landing's AVX-512 ER)
        # refuses to start with a message instead of faulting on the first instruction: the
        # smoke test's init fails (kiln build says why and how to go on), and with --no-smoke
        # the built predictor exits with the message.
        flags = pathlib.Path("/proc/cpuinfo").read_text() if pathlib.Path("/proc/cpuinfo").exists() else ""
        if " avx512er" in flags:
            print("skip --cpu knl: this CPU has AVX-512 ER")
        else:
            knl = run([kiln, "build", model, "--run", str(tmp / "run"), "-o", str(tmp / "art_knl"), "--cpu", "knl"], env,
                      expect=1)
            check(re.search(r"lacks avx512(pf|er), an instruction set extension", knl.stderr) is not None and
                  "--no-smoke" in knl.stderr,
                  f"--cpu knl on this CPU: the smoke test's init refuses it, naming the extension: "
                  f"{knl.stderr.strip()[-200:]}")
            run([kiln, "build", model, "--run", str(tmp / "run"), "-o", str(tmp / "art_knl"), "--cpu", "knl",
                 "--no-smoke"], env)
            refused = run([str(tmp / "art_knl" / NAME), csv], env, expect=None)
            check(refused.returncode != 0 and "an instruction set extension" in refused.stderr,
                  f"the knl predictor exits with the message: {refused.returncode} {refused.stderr.strip()[:100]}")

        # Extensions beyond the AVX-512 foundation, which __builtin_cpu_supports could not test
        # in every compiler, are checked too (CPUID in the generated C): Sapphire Rapids code
        # needs AVX512-FP16 and AVX-VNNI, which a Zen 4 lacks.
        if " avx512_fp16" in flags and " avx_vnni" in flags:
            print("skip --cpu sapphirerapids: this CPU has AVX512-FP16 and AVX-VNNI")
        else:
            spr = run([kiln, "build", model, "--run", str(tmp / "run"), "-o", str(tmp / "art_spr"), "--cpu",
                       "sapphirerapids", "--no-smoke"], env)
            header_spr = (tmp / "art_spr" / f"{NAME}.h").read_text()
            check(re.search(r'_CPU_EXTENSIONS "[^"]*\bavx512fp16\b[^"]*\bavxvnni\b', header_spr) is not None,
                  "--cpu sapphirerapids: the header lists avx512fp16 and avxvnni among the checked extensions")
            refused = run([str(tmp / "art_spr" / NAME), csv], env, expect=None)
            check(refused.returncode != 0 and
                  re.search(r"lacks (avx512vp2intersect|avx512fp16|avxvnni), an instruction set extension "
                            r"\S+ was compiled for \(the CPU sapphirerapids\)", refused.stderr) is not None,
                  f"the sapphirerapids predictor exits naming what this CPU lacks: {refused.stderr.strip()[:200]}")

        # Dependencies: libc and libm only.
        allowed = ("libc.so", "libm.so", "ld-linux")
        for binary in (f"lib{NAME}.so", NAME):
            d = run(["readelf", "-d", str(art / binary)], env).stdout
            needed = [l.split("[")[1].split("]")[0] for l in d.splitlines() if "(NEEDED)" in l]
            check(all(n.startswith(allowed) for n in needed), f"{binary} needs only libc/libm: {needed}")
            if shutil.which("ldd"):
                deps = run(["ldd", str(art / binary)], env).stdout
                check(not any(w in deps for w in ("LLVM", "stdc++", "kiln")), f"ldd {binary}: no LLVM/libstdc++/kiln")

        # Symbols: the .so exports the model's API and nothing of Kiln's runtime.
        syms = run(["nm", "-D", "--defined-only", str(art / f"lib{NAME}.so")], env).stdout.split("\n")
        exported = [l.split()[-1] for l in syms if len(l.split()) == 3 and l.split()[1] in "TDRBVW"]
        foreign = [s for s in exported if not s.startswith(NAME + "_") and s not in ("_init", "_fini")]
        check(bool(exported) and not foreign, f"lib{NAME}.so exports only {NAME}_*: {foreign[:5]}")
        undefined = run(["nm", "-u", str(art / f"lib{NAME}.a")], env).stdout
        check(not any(w in undefined for w in ("kiln", "_Z", "llvm")),
              f"lib{NAME}.a needs no Kiln, C++ or LLVM symbols")
        allsyms = run(["nm", str(art / f"lib{NAME}.a")], env).stdout
        check("kiln" not in allsyms, f"lib{NAME}.a holds no kiln_* runtime symbols")
        defined = run(["nm", "-g", "--defined-only", str(art / f"lib{NAME}.a")], env).stdout.splitlines()
        globals_ = [l.split()[-1] for l in defined if len(l.split()) == 3]
        check(globals_ and all(g.startswith(NAME + "_") for g in globals_),
              f"lib{NAME}.a defines only {NAME}_* globals ({len(globals_)})")

        # The smoke test.
        smoke = run([str(art / f"{NAME}_smoke")], env, cwd=art)
        check('"smoke": "ok"' in smoke.stdout, f"smoke test: {smoke.stdout.strip()}")

        # kiln predict (JIT) as the reference.
        ref = run([kiln, "predict", model, "--run", str(tmp / "run"), "--input", csv], env)
        ref_header, ref_rows = parse_csv_predictions(ref.stdout)

        # A C program against the header, with plain cc.
        (tmp / "user.c").write_text(C_PROGRAM)
        run([cc, "-O2", "-I", str(art), "-o", str(tmp / "user"), str(tmp / "user.c"), str(art / f"lib{NAME}.a"), "-lm"],
            env)
        user = run([str(tmp / "user"), csv], env).stdout
        worst, count, missing = 0.0, 0, 0
        for line in user.strip().splitlines():
            cells = line.split(",")
            want = ref_rows.get(int(cells[0]))
            if want is None:
                missing += 1
                continue
            for got, exp in zip(cells[1:3], want[0:2]):
                worst = max(worst, abs(float(got) - float(exp)))
                count += 1
        check(missing == 0 and count >= 2 * 4000 and worst <= 1e-5,
              f"C program vs kiln predict: {count} values, max |diff| {worst:.3g}, {missing} rows kiln skipped")

        # The standalone executable on the model's CSV, CSV and JSON-lines output.
        exe = run([str(art / NAME), csv], env)
        header, rows = parse_csv_predictions(exe.stdout)
        check(header == ref_header, f"executable CSV header {header} == kiln predict's")
        check(sorted(rows) == sorted(ref_rows), f"executable predicts the same {len(ref_rows)} lines")
        worst, classes_differ = 0.0, 0
        for line, want in ref_rows.items():
            got = rows.get(line)
            if got is None:
                continue
            for g, e in zip(got[:2], want[:2]):
                worst = max(worst, abs(float(g) - float(e)))
            if got[2] != want[2] and abs(float(want[0]) - float(want[1])) > 1e-5:
                classes_differ += 1
        check(worst <= 1e-5 and classes_differ == 0,
              f"executable vs kiln predict: max |diff| {worst:.3g}, {classes_differ} classes differ")
        check(exe.stderr.count("skipped") == ref.stderr.count("skipped"),
              f"executable skips as many records as kiln predict ({ref.stderr.count('skipped')})")
        ref_j = run([kiln, "predict", model, "--run", str(tmp / "run"), "--input", csv, "--format", "jsonl"], env)
        exe_j = run([str(art / NAME), "--format", "jsonl", csv], env)
        a = [json.loads(l) for l in ref_j.stdout.splitlines()]
        b = [json.loads(l) for l in exe_j.stdout.splitlines()]
        same = len(a) == len(b) and all(
            x.keys() == y.keys() and x["line"] == y["line"] and all(close(p, q) for p, q in zip(x["risk"], y["risk"]))
            for x, y in zip(a, b))
        check(same, f"executable --format jsonl agrees with kiln predict ({len(b)} records)")
        # JSON-lines input: the first records of the CSV as objects.
        head = (pathlib.Path(csv).read_text().splitlines())[:51]
        names = head[0].split(",")
        jl = tmp / "records.jsonl"
        with jl.open("w") as out:
            for rec in head[1:]:
                obj = {}
                for n, v in zip(names, rec.split(",")):
                    try:
                        obj[n] = float(v) if v else None
                    except ValueError:
                        obj[n] = v
                out.write(json.dumps(obj) + "\n")
        exe_jl = run([str(art / NAME), str(jl)], env)
        _, jl_rows = parse_csv_predictions(exe_jl.stdout)
        agree = all(close(float(r[0]), float(ref_rows[line + 1][0])) for line, r in jl_rows.items()
                    if line + 1 in ref_rows)
        check(len(jl_rows) > 40 and agree, f"JSON-lines input: {len(jl_rows)} records agree with the CSV's")

        # Weights in a checksummed file beside the library.
        fart = tmp / "art_file"
        run([kiln, "build", model, "--run", str(tmp / "run"), "-o", str(fart), "--weights", "file", "--max-batch",
             "16"], env)
        exe_f = run([str(fart / NAME), csv], env)
        _, frows = parse_csv_predictions(exe_f.stdout)
        check(all(close(float(frows[l][0]), float(rows[l][0])) for l in rows), "file weights predict the same")
        w = bytearray((fart / f"{NAME}.weights").read_bytes())
        w[200] ^= 0x40
        (fart / f"{NAME}.weights").write_bytes(bytes(w))
        bad = run([str(fart / NAME), csv], env, expect=None)
        check(bad.returncode != 0 and "CRC32C" in bad.stderr, f"a corrupt weights file is refused: {bad.stderr.strip()}")

        # Errors: not a power of two.
        bad = run([kiln, "build", model, "--run", str(tmp / "run"), "-o", str(tmp / "x"), "--max-batch", "12"], env,
                  expect=1)
        check("power of two" in bad.stderr, "--max-batch 12 is refused")
        # State updates in an artifact: a variant of credit_risk with batch norm (two states
        # whose new values the generated code writes into the workspace's state region) that
        # reads its input again after them (a skip connection). The state slots must be sized
        # for their values, or the writes land on the input rows (a review found them sized 0).
        bn_src = pathlib.Path(model).read_text().replace(
            "  d2 = nn.dropout(h2, 0.1)\n  # Logits over [bad, good].\n  output risk = nn.dense(d2, 2)",
            "  d2 = nn.batch_norm(nn.dropout(h2, 0.1))\n  output risk = nn.dense(concat(d2, x, axis: -1), 2)")
        check("batch_norm" in bn_src, "the batch-norm variant of credit_risk was made")
        bn_dir = tmp / "bn"
        (bn_dir / "data").mkdir(parents=True)
        shutil.copy(csv, bn_dir / "data" / "credit_data.csv")
        bn_model = bn_dir / "credit_risk.kiln"
        bn_model.write_text(bn_src)
        run([kiln, "train", str(bn_model), "--epochs", "2", "--out", str(bn_dir / "run"), "--no-checkpoints"], env)
        run([kiln, "build", str(bn_model), "--run", str(bn_dir / "run"), "-o", str(bn_dir / "art")], env)
        _, got = parse_csv_predictions(run([str(bn_dir / "art" / NAME), csv], env).stdout)
        _, want = parse_csv_predictions(run([kiln, "predict", str(bn_model), "--run", str(bn_dir / "run")], env).stdout)
        agree = len(got) == len(want) > 0 and all(
            all(close(float(a), float(b)) for a, b in zip(got[k][:2], want[k][:2])) for k in want)
        check(agree, f"batch norm + skip connection: the executable agrees with kiln predict on {len(want)} rows")

        # An image model (when the Debian package dataset-fashion-mnist is installed): pixel records as JSON
        # lines through the executable agree with kiln predict on the IDX file.
        images = pathlib.Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
        if images.exists():
            import gzip
            mlp = str(src / "models" / "fashion_mlp.kiln")
            run([kiln, "train", mlp, "--epochs", "1", "--max-steps", "5", "--out", str(tmp / "mlp_run"),
                 "--no-checkpoints"], env)
            run([kiln, "build", mlp, "--run", str(tmp / "mlp_run"), "-o", str(tmp / "mlp"), "--max-batch", "8"], env)
            raw = gzip.open(images).read()
            with (tmp / "images.jsonl").open("w") as out:
                for i in range(20):
                    out.write(json.dumps({"pixels": list(raw[16 + 784 * i:16 + 784 * (i + 1)])}) + "\n")
            _, got = parse_csv_predictions(run([str(tmp / "mlp" / "fashion_mlp"), str(tmp / "images.jsonl")], env).stdout)
            ref_out = run([kiln, "predict", mlp, "--run", str(tmp / "mlp_run")], env).stdout.splitlines()[:21]
            _, want = parse_csv_predictions("\n".join(ref_out))
            agree = len(got) == 20 and all(
                all(close(float(a), float(b)) for a, b in zip(got[k][:10], want[k][:10])) for k in got)
            check(agree, "fashion_mlp: pixel records through the executable agree with kiln predict")

            # --latency CALLS: the batch-1 latency on these records instead of predictions (a
            # JSON line like NAME_bench's); a count that is not a positive number, or records
            # none of which the model can read, are refused with the reason.
            lat = run([str(tmp / "mlp" / "fashion_mlp"), "--latency", "3000", str(tmp / "images.jsonl")], env)
            timing = json.loads(lat.stdout)
            check(timing["records"] == 20 and timing["batch1_calls"] == 3000 and
                  0 < timing["batch1_median_us"] <= timing["batch1_p99_us"] and lat.stdout.count("\n") == 1,
                  f"fashion_mlp --latency 3000: {lat.stdout.strip()}")
            bench = json.loads(run([str(tmp / "mlp" / "fashion_mlp_bench"), "2000"], env, cwd=str(tmp / "mlp")).stdout)
            check(bench["batch1_calls"] == 2000 and 0 < bench["batch1_median_us"] <= bench["batch1_p99_us"],
                  f"fashion_mlp_bench 2000: {bench}")
            for calls in ("0", "x", "5k", "-3"):
                bad = run([str(tmp / "mlp" / "fashion_mlp"), "--latency", calls, str(tmp / "images.jsonl")], env,
                          expect=1)
                check(f"--latency takes a number of calls from 1 to 1000000000, not '{calls}'" in bad.stderr,
                      f"--latency {calls} is refused: {bad.stderr.strip()}")
            (tmp / "no_images.jsonl").write_text('{"pixels": [1, 2]}\n')
            none = run([str(tmp / "mlp" / "fashion_mlp"), "--latency", "10", str(tmp / "no_images.jsonl")], env,
                       expect=1)
            check("--latency needs at least one record the model can read" in none.stderr and "skipped" in none.stderr,
                  f"--latency with no readable record: {none.stderr.strip()[:200]}")

            # --threads 2: one predict call uses a worker thread of the library. Its outputs are
            # bit-identical to the serial artifact's (each output element has one owner and the
            # same summation order), also when two threads predict at once on two contexts
            # (one of them then finds the pool busy and runs serially).
            tart = tmp / "mlp_threads"
            run([kiln, "build", mlp, "--run", str(tmp / "mlp_run"), "-o", str(tart), "--max-batch", "8", "--threads",
                 "2"], env)
            check("#define FASHION_MLP_THREADS 2" in (tart / "fashion_mlp.h").read_text(), "the header says 2 threads")
            strict = run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-c", "fashion_mlp_runtime.c", "-o",
                          str(tmp / "strict.o")], env, expect=None, cwd=str(tart))
            check(strict.returncode == 0,
                  f"{cc} -std=c11 -Wall -Wextra -Werror on the threaded runtime (the pool): {strict.stderr.strip()[:300]}")
            d = run(["readelf", "-d", str(tart / "libfashion_mlp.so")], env).stdout
            needed = [l.split("[")[1].split("]")[0] for l in d.splitlines() if "(NEEDED)" in l]
            check(all(n.startswith(allowed) for n in needed), f"threaded libfashion_mlp.so needs only libc/libm: {needed}")
            threaded = run([str(tart / "fashion_mlp"), str(tmp / "images.jsonl")], env).stdout
            serial = run([str(tmp / "mlp" / "fashion_mlp"), str(tmp / "images.jsonl")], env).stdout
            check(threaded == serial and len(serial.splitlines()) == 21,
                  "fashion_mlp --threads 2: the executable's output is identical to the serial artifact's")
            # Three threads on this two-core machine: blocks of uneven size, and a thread that
            # finishes its own block takes tasks of a late one's.
            tart3 = tmp / "mlp_threads3"
            run([kiln, "build", mlp, "--run", str(tmp / "mlp_run"), "-o", str(tart3), "--max-batch", "8", "--threads",
                 "3", "--no-smoke"], env)
            threaded3 = run([str(tart3 / "fashion_mlp"), str(tmp / "images.jsonl")], env).stdout
            check(threaded3 == serial, "fashion_mlp --threads 3: the executable's output is identical to the serial one's")
            pixels = tmp / "pixels.f32"
            with pixels.open("wb") as out:
                import struct
                for i in range(20):
                    out.write(struct.pack("784f", *[v / 255.0 for v in raw[16 + 784 * i:16 + 784 * (i + 1)]]))
            (tmp / "concurrent.c").write_text(CONCURRENT_PROGRAM)
            for lib, exe in ((tmp / "mlp", "serial_user"), (tart, "threaded_user")):
                run([cc, "-O2", "-pthread", "-I", str(lib), "-o", str(tmp / exe), str(tmp / "concurrent.c"),
                     str(lib / "libfashion_mlp.a"), "-lm"], env)
            a = run([str(tmp / "serial_user"), str(pixels)], env).stdout
            b = run([str(tmp / "threaded_user"), str(pixels)], env).stdout
            check(a == b and a.startswith("ok"), f"two threads predicting at once: {b.strip()[:80]} == {a.strip()[:80]}")
        else:
            print("skip fashion_mlp: dataset-fashion-mnist is not installed")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
