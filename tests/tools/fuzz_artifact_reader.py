#!/usr/bin/env python3
"""Fuzzes the record reader of a `kiln build` artifact's standalone predictor (NAME_main.c:
RFC 4180 CSV and JSON lines, generated C) under AddressSanitizer and UndefinedBehaviorSanitizer.

Builds credit_risk (a few training steps are enough: the reader does not depend on the
weights) with a maximum batch of 4, so that batches are flushed often, compiles the
predictor's generated C with the sanitizers, and runs it on inputs mutated from the model's
own CSV and a JSON-lines version of it: bytes replaced, tokens inserted (quotes, escapes,
brackets, line ends, NUL bytes, long fields), ranges deleted or repeated, files cut short.
Every run must:
  - end within 10 s with exit status 0 or 1 (1 only with an `error:` line), and no
    sanitizer report;
  - write only messages of the documented forms on standard error
    (`FILE:LINE: skipped: WHY`, `FILE:LINE: error: WHY`, `credit_risk: error: WHY`);
  - write a prediction row per record it accepted (line, two floats, a class), record
    lines in increasing order, none of them also reported as skipped.
Fixed cases check what a user loses: a quote left open at the end of a file, or a cut-off
escape in JSON, costs that record alone; every record before it is predicted.
Then, training against serving: `kiln predict` (the C++ feature pipeline and the JIT) and the
artifact's predictor (the pipeline and model compiled into C) on files of the model's
records with cells edited to what a feed gets wrong, columns reordered or added, quotes,
blank lines and CRLF must exit alike, predict the same records (within 1e-5, same class)
and skip the same ones. The same on JSON-lines files (values as strings, numbers, null,
true, arrays, escapes; keys left out, added, repeated; lines that are not JSON records) and
on the mutated JSON-lines inputs: there the two must also give the same reason, column
included, for every line that is not a record (runtime/data/json_record.cpp and the
generated C are one grammar). Three files of each kind also go through a pipe, to
`kiln predict --input -` (plain and gzipped) and to the artifact reading `-`: the same
predictions and messages, naming <stdin>.

    fuzz_artifact_reader.py KILN_BINARY SOURCE_DIR [--cases N] [--seed S]

Environment: KILN_FUZZ_READER_CASES overrides --cases (the default suite runs 400),
KILN_FUZZ_SKEW_CASES --skew-cases (25 CSV files and 25 JSON-lines files),
KILN_FUZZ_DIFF_CASES --diff-cases (of the mutated JSON-lines inputs, how many also go
through kiln predict; 40).
"""
import argparse
import gzip
import json
import os
import pathlib
import random
import re
import shutil
import subprocess
import sys
import tempfile

from checks import check, quick_artifact, run, summary

NAME = "credit_risk"

TOKENS = [b'"', b'""', b'","', b',', b',,', b'\n', b'\r', b'\r\n', b'\\', b'\\"', b'\\u', b'\\u12', b'\\u00e9',
          b'\\ud83d', b'\\', b'{', b'}', b'[', b']', b'[]', b'{}', b':', b'null', b'true', b'1e999', b'-', b'nan',
          b'inf', b'\x00', b'\xff\xfe', b'\xc3', b'\t', b' ', b'x' * 5000, b'"' + b'y' * 3000 + b'"', b'9' * 400,
          b'{"Seniority": [1, 2, [3]]}', b'{"a":', b'"Status"', b'"Seniority":', b'_0']


def mutate(data: bytes, rng: random.Random, other: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(7)
        at = rng.randint(0, len(b))
        if op == 0 and b:  # replace a byte
            b[min(at, len(b) - 1)] = rng.choice([rng.randrange(256), *b'",\n\r\\{}[]:u0 '])
        elif op == 1:  # insert a token
            b[at:at] = rng.choice(TOKENS)
        elif op == 2:  # delete a range
            b[at:at + rng.randint(1, 64)] = b""
        elif op == 3:  # repeat a range
            n = rng.randint(1, 200)
            b[at:at] = b[at:at + n] * rng.randint(1, 4)
        elif op == 4:  # cut the file short
            del b[at:]
        elif op == 5:  # a line of the other format
            lines = other.splitlines(keepends=True)
            b[at:at] = rng.choice(lines) if lines else b""
        else:  # swap two lines
            lines = bytes(b).splitlines(keepends=True)
            if len(lines) > 2:
                i, j = rng.randrange(1, len(lines)), rng.randrange(1, len(lines))
                lines[i], lines[j] = lines[j], lines[i]
                b = bytearray(b"".join(lines))
    return bytes(b)


CLASSES = {"bad", "good"}


def check_run(path: pathlib.Path, p: subprocess.CompletedProcess, jsonl_out: bool) -> str:
    """What is wrong with one run of the predictor (empty when nothing)."""
    err = p.stderr
    if "Sanitizer" in err or "runtime error:" in err:
        return "sanitizer report:\n" + err[-3000:]
    if p.returncode not in (0, 1):
        return f"exit status {p.returncode}:\n" + err[-2000:]
    name = re.escape(str(path))
    form = re.compile(rf"^({name}:\d+: (skipped|error): \S.*|{NAME}: error: \S.*|{name}: error: \S.*)$")
    skipped = set()
    errors = 0
    for line in err.splitlines():
        if not form.match(line):
            return f"a message not in the documented form: {line[:300]!r}"
        m = re.match(rf"^{name}:(\d+): skipped: ", line)
        if m:
            skipped.add(int(m.group(1)))
        if ": error: " in line:
            errors += 1
    if p.returncode == 1 and errors == 0:
        return "exit status 1 without an error message"
    predicted = []
    out = p.stdout.splitlines()
    if jsonl_out:
        for line in out:
            try:
                rec = json.loads(line)
            except ValueError:
                return f"not a JSON line on standard output: {line[:200]!r}"
            if set(rec) != {"line", "risk", "risk_class"} or len(rec["risk"]) != 2 or rec["risk_class"] not in CLASSES:
                return f"a JSON prediction of another form: {line[:200]!r}"
            predicted.append(rec["line"])
    else:
        if out and out[0] != "line,risk_0,risk_1,risk_class":
            return f"CSV output without its header: {out[0][:200]!r}"
        for line in out[1:]:
            cells = line.split(",")
            try:
                ok = len(cells) == 4 and cells[3] in CLASSES and all(map(lambda c: float(c) == float(c), cells[1:3]))
                predicted.append(int(cells[0]))
            except ValueError:
                ok = False
            if not ok:
                return f"a CSV prediction of another form: {line[:200]!r}"
    if predicted != sorted(set(predicted)):
        return f"prediction lines not increasing: {predicted[:20]}"
    both = skipped.intersection(predicted)
    if both:
        return f"lines both predicted and skipped: {sorted(both)[:10]}"
    return ""


CELLS = ["", " ", "abc", "-1", "1e10", "1e400", "1e-400", "2e-320", "6." + "9" * 300, "nan", "inf", "0x10", "+5",
         "+-5", " 7 ", '"3"', '"a,b"', '""', "007", "1.5e-3", "-0", "NA", "unknown", '"mul\nti"', '"\n9"', "good",
         "bad", "rent", "married"]


def skew_case(lines, rng: random.Random) -> str:
    """A CSV of 40 of the model's records, some cells replaced, perhaps reordered columns, an
    extra column, quoted rows, blank lines, CRLF."""
    header, rows = lines[0].split(","), [r.split(",") for r in rng.sample(lines[1:], 40)]
    for r in rows:
        if rng.random() < 0.3:
            for _ in range(rng.randint(1, 3)):
                r[rng.randrange(len(r))] = rng.choice(CELLS)
    if rng.random() < 0.3:
        order = list(range(len(header)))
        rng.shuffle(order)
        header = [header[i] for i in order]
        rows = [[r[i] for i in order] for r in rows]
    if rng.random() < 0.2:
        header, rows = header + ["extra"], [r + ["x"] for r in rows]
    text = [",".join(header)]
    for r in rows:
        if rng.random() < 0.05:
            text.append("")
        text.append(",".join(f'"{c}"' if rng.random() < 0.1 and '"' not in c else c for c in r))
    eol = "\r\n" if rng.random() < 0.2 else "\n"
    return eol.join(text) + (eol if rng.random() < 0.8 else "")


# JSON values a feed gets wrong or writes in another way than the model's file: each
# replaces a value of a record (raw JSON text).
JSON_VALUES = ['null', '""', '" "', 'true', 'false', '"abc"', '-1', '1e10', '1e400', '1e-400', '"1e400"', '"nan"',
               '"12"', '6.' + '9' * 300, '"\\n9"', '"\\t9"',
               '" 7 "', '"007"', '0', '-0', '2.5e-3', '"good"', '"bad"', '"rent"', '"\\u0072ent"', '"r\\u00e9nt"',
               '"mul\\nti"', '[]', '[1, 2]', '["rent"]', '"\\"quoted\\""', '"tab\\there"']
# Lines that are not JSON records (or are, barely): each replaces a whole line.
JSON_BAD_LINES = ['{"Age": 30,}', '{"Age": tru}', '{"Age": 01}', '{"Age": 1.}', '{"Age": +5}', '{"Age": NaN}',
                  '{"Home": "a\tb"}', '{"Home": "\\x"}', '{"Home": "\\u12"}', '{"Home": "x', '{"Age": {"a": 1}}',
                  '{"Age": [1, [2]]}', '{"Age": 1} x', '{"Age": 1}{"Age": 2}', 'good,9,rent', '[1, 2]', '{}',
                  '{"Age": 1 "Home": "x"}', "{'Age': 1}", '{"Age": [1 2]}', '{"Home": "\\ud83d"}']


def json_skew_case(lines, rng: random.Random) -> str:
    """A JSON-lines file of 40 of the model's records: some values replaced, keys left out
    (labels too), added or repeated, keys reordered, some lines not records, blank lines,
    CRLF."""
    header = lines[0].split(",")
    out = []
    for rec in rng.sample(lines[1:], 40):
        members = []
        for k, v in zip(header, rec.split(",")):
            try:
                float(v)
                value = v
            except ValueError:
                value = json.dumps(v)
            members.append([k, value])
        if rng.random() < 0.3:
            for _ in range(rng.randint(1, 3)):
                members[rng.randrange(len(members))][1] = rng.choice(JSON_VALUES)
        if rng.random() < 0.15:
            del members[rng.randrange(len(members))]
        if rng.random() < 0.1:
            members.append(["extra", rng.choice(JSON_VALUES)])
        if rng.random() < 0.1:
            members.append(list(rng.choice(members[:-1] or members)))
            members[-1][1] = rng.choice(JSON_VALUES)
        if rng.random() < 0.3:
            rng.shuffle(members)
        sep = rng.choice([", ", ",", " ,\t"])
        line = "{" + sep.join(f'"{k}":{rng.choice(["", " "])}{v}' for k, v in members) + "}"
        if rng.random() < 0.06:
            line = rng.choice(JSON_BAD_LINES)
        if rng.random() < 0.05:
            out.append(rng.choice(["", "  ", "\t"]))
        out.append(line)
    eol = "\r\n" if rng.random() < 0.2 else "\n"
    return eol.join(out) + (eol if rng.random() < 0.8 else "")


def compare_predictions(a: subprocess.CompletedProcess, b: subprocess.CompletedProcess) -> str:
    """How `kiln predict` (a) and the artifact (b) disagree on one file (empty when they do not).
    Lines that are not JSON records must also be refused for the same reason at the same
    column."""
    def rows(out):
        return {int(c[0]): c[1:] for c in (line.split(",") for line in out.splitlines()[1:])}

    def skipped(err):
        return sorted(int(m) for m in re.findall(r":(\d+): skipped: ", err))

    def not_records(err):
        return sorted(re.findall(r":\d+: skipped: not a JSON record .*", err))

    if a.returncode != b.returncode:
        return f"exit status {a.returncode} (kiln predict) against {b.returncode}: {a.stderr[-300:]} / {b.stderr[-300:]}"
    # After an error too: both predict what they read before it.
    ra, rb = rows(a.stdout), rows(b.stdout)
    if set(ra) != set(rb):
        return f"records predicted: only kiln predict {sorted(set(ra) - set(rb))[:5]}, only the artifact " \
               f"{sorted(set(rb) - set(ra))[:5]}"
    for line, want in ra.items():
        got = rb[line]
        if got[2] != want[2] or any(abs(float(x) - float(y)) > 1e-5 * max(1.0, abs(float(x)))
                                    for x, y in zip(want[:2], got[:2])):
            return f"line {line}: kiln predict {want}, the artifact {got}"
    if skipped(a.stderr) != skipped(b.stderr):
        return f"records skipped: {skipped(a.stderr)[:8]} against {skipped(b.stderr)[:8]}"
    if not_records(a.stderr) != not_records(b.stderr):
        diff = sorted(set(not_records(a.stderr)) ^ set(not_records(b.stderr)))
        return f"lines that are not JSON records, told apart: {diff[:4]}"
    return ""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("kiln")
    ap.add_argument("source")
    ap.add_argument("--cases", type=int, default=400)
    ap.add_argument("--seed", type=int, default=20261124)
    ap.add_argument("--skew-cases", type=int, default=25)
    ap.add_argument("--diff-cases", type=int, default=40)
    args = ap.parse_args()
    cases = int(os.environ.get("KILN_FUZZ_READER_CASES", args.cases))
    skew_cases = int(os.environ.get("KILN_FUZZ_SKEW_CASES", args.skew_cases))
    diff_cases = int(os.environ.get("KILN_FUZZ_DIFF_CASES", args.diff_cases))
    kiln = str(pathlib.Path(args.kiln).resolve())
    src = pathlib.Path(args.source).resolve()
    model = str(src / "models" / f"{NAME}.kiln")
    csv_path = src / "models" / "data" / "credit_data.csv"
    env = dict(os.environ, KILN_STDLIB=str(src / "stdlib"), NO_COLOR="1")
    cc = shutil.which("clang-16") or shutil.which("cc")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        art = quick_artifact(kiln, model, tmp, env, steps=5)
        reader = tmp / "reader"
        flags = ["-std=c11", "-g", "-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                 "-fno-omit-frame-pointer"]
        run([cc, *flags, str(art / f"{NAME}_main.c"), str(art / f"{NAME}_runtime.c"), str(art / f"{NAME}.o"), "-I",
             str(art), "-lm", "-o", str(reader)], env)
        renv = dict(env, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1")

        csv_lines = csv_path.read_bytes().splitlines(keepends=True)
        csv_seed = b"".join(csv_lines[:41])
        names = csv_lines[0].decode().strip().split(",")
        json_lines = []
        for rec in csv_lines[1:41]:
            obj = {}
            for n, v in zip(names, rec.decode().strip().split(",")):
                try:
                    obj[n] = float(v)
                except ValueError:
                    obj[n] = v if v else None
            json_lines.append(json.dumps(obj).encode() + b"\n")
        json_seed = b"".join(json_lines)

        def predict(data: bytes, suffix: str, jsonl_out=False):
            path = tmp / f"case{suffix}"
            path.write_bytes(data)
            cmd = [str(reader), *(["--format", "jsonl"] if jsonl_out else []), str(path)]
            try:
                p = subprocess.run(cmd, env=renv, capture_output=True, text=True, errors="replace", timeout=10)
            except subprocess.TimeoutExpired:
                return path, None
            return path, p

        def kiln_predict(path: pathlib.Path) -> subprocess.CompletedProcess:
            return subprocess.run([kiln, "predict", model, "--run", str(tmp / "run"), "--input", str(path)], env=env,
                                  capture_output=True, text=True, errors="replace")

        # The seeds themselves: every record predicted, nothing on standard error.
        for data, suffix in ((csv_seed, ".csv"), (json_seed, ".jsonl")):
            path, p = predict(data, suffix)
            problem = check_run(path, p, False) if p else "hang"
            check(not problem and p.returncode == 0 and p.stderr == "" and len(p.stdout.splitlines()) == 41,
                  f"seed {suffix}: 40 records predicted, no message {problem}")

        # A quote left open at the end costs that record alone: the 9 before it are predicted
        # (two full batches and a partial one), then the error names the file and the line.
        path, p = predict(b"".join(csv_lines[:10]) + b'good,3,"rent,60\n', ".csv")
        lines = p.stdout.splitlines() if p else []
        check(p is not None and p.returncode == 1 and len(lines) == 10 and
              re.search(rf"{re.escape(str(path))}:11: error: unterminated quoted field", p.stderr) is not None,
              f"an unterminated quote: the 9 records before it predicted, then an error at line 11 "
              f"({len(lines) - 1 if lines else 0} predicted; {p.stderr.strip() if p else 'hang'})")
        # The same through kiln predict: it too predicts what it read before the error.
        a = kiln_predict(path)
        check(compare_predictions(a, p) == "" and len(a.stdout.splitlines()) == 10,
              f"kiln predict on that file: the same 9 records, then the error "
              f"({compare_predictions(a, p) or a.stderr.strip()[-200:]})")
        # A JSON string cut off inside a \\u escape, and escapes that are not hex: skipped, the
        # other records predicted, and no read past the line (the sanitizer would report it).
        for tail in (b'{"Status": "\\u1', b'{"Status": "\\u12', b'{"Home": "\\uzzzz"}', b'{"Home": "\\'):
            data = json_seed + tail
            path, p = predict(data, ".jsonl")
            problem = check_run(path, p, False) if p else "hang"
            check(not problem and p.returncode == 0 and len(p.stdout.splitlines()) == 41 and
                  f"{path}:41: skipped:" in p.stderr, f"JSON line {tail!r}: skipped alone {problem}")

        # An array under a long key: each element's key is a copy of it, made while the text
        # buffer grows (under ASan every realloc moves it, so a copy from the old buffer is a
        # use after free).
        long_key = b'{"' + b"k" * 3000 + b'": [' + b", ".join(b"%d" % i for i in range(60)) + b"]}\n"
        path, p = predict(json_seed + long_key, ".jsonl")
        problem = check_run(path, p, False) if p else "hang"
        check(not problem and p.returncode == 0 and len(p.stdout.splitlines()) == 41 and
              f"{path}:41: skipped: missing value" in p.stderr,
              f"an array of 60 under a 3000-byte key: read as an object (skipped: it lacks the model's columns) "
              f"{problem}")

        rng = random.Random(args.seed)
        bad = diffs = diffed = 0
        for i in range(cases):
            use_json = rng.random() < 0.5
            seed, other = (json_seed, csv_seed) if use_json else (csv_seed, json_seed)
            data = mutate(seed, rng, other)
            jsonl_out = rng.random() < 0.3
            path, p = predict(data, ".jsonl" if use_json and rng.random() < 0.5 else ".csv" if not use_json else "",
                              jsonl_out)
            problem = check_run(path, p, jsonl_out) if p else "no result within 10 s"
            # Mutated JSON lines through kiln predict too: the same records read, refused and
            # predicted (a file both read as JSON lines: its name says so).
            if not problem and path.suffix == ".jsonl" and not jsonl_out and diffed < diff_cases:
                diffed += 1
                problem = compare_predictions(kiln_predict(path), p)
                diffs += 1 if problem else 0
                problem = f"kiln predict and the artifact differ: {problem}" if problem else ""
            if problem:
                bad += 1
                keep = pathlib.Path.cwd() / f"reader_failure_{args.seed}_{i}.bin"
                if bad <= int(os.environ.get("KILN_FUZZ_SHOW", 5)):
                    print(f"case {i}: {problem}\n  input ({len(data)} bytes) kept as {keep}")
                    try:
                        keep.write_bytes(data)
                    except OSError:
                        pass
        check(bad == 0, f"{cases} mutated inputs (seed {args.seed}): {bad} failed")
        check(diffs == 0 and (diffed == diff_cases or cases < 4 * diff_cases),
              f"{diffed} of them (JSON lines) through kiln predict as well: {diffs} differ")

        def stdin_difference(path: pathlib.Path, from_file: subprocess.CompletedProcess) -> str:
            """The file read through a pipe: `kiln predict --input -` (plain and gzipped) and
            the artifact's predictor reading `-` must give what kiln predict gave the file,
            the messages naming <stdin>; a pipe is read once."""
            data = path.read_bytes()
            want_err = [line.replace(str(path), "<stdin>") for line in from_file.stderr.splitlines()
                        if ": skipped: " in line or ": error: " in line]
            for label, piped in (("plain", data), ("gzipped", gzip.compress(data))):
                p = subprocess.run([kiln, "predict", model, "--run", str(tmp / "run"), "--input", "-"], env=env,
                                   input=piped, capture_output=True)
                got_err = [line for line in p.stderr.decode(errors="replace").splitlines()
                           if ": skipped: " in line or ": error: " in line]
                if p.returncode != from_file.returncode or p.stdout.decode() != from_file.stdout or \
                        got_err != want_err:
                    return f"kiln predict --input - ({label}) differs from the file: exit {p.returncode}, " \
                           f"{p.stderr.decode(errors='replace')[-300:]}"
            raw = subprocess.run([str(reader), "-"], env=renv, input=data, capture_output=True, timeout=10)
            served = subprocess.CompletedProcess(raw.args, raw.returncode, raw.stdout.decode(errors="replace"),
                                                 raw.stderr.decode(errors="replace"))
            stdin_run = subprocess.CompletedProcess([], from_file.returncode, from_file.stdout,
                                                    "\n".join(want_err))
            problem = compare_predictions(stdin_run, served)
            if not problem and "<stdin>" not in served.stderr and want_err:
                problem = "the artifact's messages do not name <stdin>"
            return f"through a pipe: {problem}" if problem else ""

        # Serving against training: `kiln predict` (the feature pipeline in C++, the model on
        # the JIT) and the artifact (both compiled into C) on CSV files of valid records with
        # cells changed to what a feed gets wrong (empty, text in a number column, an unknown
        # category, out-of-range numbers, quoting), columns reordered, an extra column, blank
        # lines, CRLF: the same exit status, the same records predicted within 1e-5 with the
        # same class, the same records skipped.
        skew = skips = predicted = 0
        for i in range(2 * skew_cases):
            as_json = i >= skew_cases
            data = (json_skew_case if as_json else skew_case)(csv_path.read_text().splitlines(), rng)
            path = tmp / ("skew.jsonl" if as_json else "skew.csv")
            path.write_text(data)
            a = kiln_predict(path)
            b = subprocess.run([str(reader), str(path)], env=renv, capture_output=True, text=True, timeout=10)
            problem = compare_predictions(a, b)
            if not problem and i % skew_cases < 3:
                problem = stdin_difference(path, a)
            skips += len(re.findall(r":\d+: skipped: ", a.stderr))
            predicted += max(0, len(a.stdout.splitlines()) - 1)
            if problem:
                skew += 1
                if skew <= 5:
                    keep = pathlib.Path.cwd() / f"skew_failure_{args.seed}_{i}{path.suffix}"
                    print(f"skew case {i}: {problem}\n  input kept as {keep}")
                    keep.write_text(data)
        check(skew == 0 and skips > 0 and predicted > 0,
              f"{skew_cases} CSV and {skew_cases} JSON-lines files of edited records: kiln predict and the artifact "
              f"agree ({skew} differ; "
              f"{predicted} records predicted and {skips} skipped by kiln predict; three of each kind also "
              f"through a pipe, plain and gzipped, to both)")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
