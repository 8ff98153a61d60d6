#!/usr/bin/env bash
# Batch-1 inference latency of `kiln build` artifacts against libtorch, in one run (issue 5):
# trains credit_risk and fashion_mlp briefly (latency does not depend on the weights' values),
# builds each with `kiln build` twice (serial, and --threads 2: one library worker thread
# beside the caller), runs the generated NAME_bench (median and p99 over 100,000 calls of
# NAME_predict with one row) and libtorch_bench's latency mode (the same architectures under
# InferenceMode, same number of calls, at 1 and at 2 threads), and prints a table with the
# ratios against libtorch's better thread setting.
# The bench's rows are synthetic (values in [-1, 1], no zeros). Real inputs have zeros, which
# the batch-1 product skips (docs/performance.md), so fashion_mlp is also timed on the first
# 1000 Fashion-MNIST test images (when the Debian package dataset-fashion-mnist is there):
# the artifact's executable with --latency on them as CSV records, and libtorch on the same
# images (--fashion-rows, the pixels scaled by 1/255 as the model's pipeline does).
# Environment: KILN_BUILD_DIR (default build/), CALLS (default 100000), WORK (default a
# temporary folder).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${KILN_BUILD_DIR:-$root/build}
calls=${CALLS:-100000}
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"
kiln=$build/tools/kiln
export KILN_STDLIB=$root/stdlib

cmake --build "$build" --target kiln -- --quiet >&2
have_libtorch=0
if grep -q '^build libtorch_bench:' "$build/build.ninja"; then
  cmake --build "$build" --target libtorch_bench -- --quiet >&2 && have_libtorch=1
fi
: > "$work/latency.jsonl"
images=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
have_images=0
if [ -f "$images" ]; then
  have_images=1
  python3 - "$images" "$work/test_images.csv" "$work/test_images.f32" << 'PY'
import array, gzip, sys
data = gzip.open(sys.argv[1]).read()[16:16 + 1000 * 784]
with open(sys.argv[2], "w") as out:
    out.write(",".join(f"pixels_{i}" for i in range(784)) + "\n")
    for r in range(1000):
        out.write(",".join(str(b) for b in data[r * 784:(r + 1) * 784]) + "\n")
array.array("f", [b * 0.00392156862745098 for b in data]).tofile(open(sys.argv[3], "wb"))
PY
fi
for m in credit_risk fashion_mlp; do
  echo "run_latency: training and building $m" >&2
  "$kiln" train "$root/models/$m.kiln" --out "$work/run_$m" --epochs 1 --max-steps 50 --no-checkpoints > /dev/null
  for threads in 1 2; do
    rm -rf "$work/out_${m}_$threads"
    "$kiln" build "$root/models/$m.kiln" --run "$work/run_$m" -o "$work/out_${m}_$threads" --threads $threads > /dev/null
    "$work/out_${m}_$threads/${m}_bench" "$calls" | sed "s/^{/{\"threads\": $threads, /" | tee -a "$work/latency.jsonl"
    if [ $m = fashion_mlp ] && [ $have_images = 1 ]; then
      "$work/out_${m}_$threads/$m" --latency "$calls" "$work/test_images.csv" |
        sed "s/^{/{\"threads\": $threads, \"inputs\": \"test images\", /" | tee -a "$work/latency.jsonl"
    fi
  done
done
if [ $have_libtorch = 1 ]; then
  for threads in 1 2; do
    rows=()
    [ $have_images = 1 ] && rows=(--fashion-rows "$work/test_images.f32")
    "$build/benchmarks/libtorch_bench" --seconds 0 --calls "$calls" --threads $threads "${rows[@]}" |
      tee -a "$work/latency.jsonl"
  done
fi
python3 - "$work/latency.jsonl" << 'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
kiln = [r for r in rows if "batch1_median_us" in r]
torch = {}  # (model, inputs) -> libtorch's better thread setting (lower median)
for r in rows:
    if r.get("peer") == "libtorch" and r.get("bench") == "latency":
        key = (r["model"], "test images" if "inputs" in r else "synthetic")  # libtorch's names its file
        best = torch.get(key)
        if best is None or r["median_us"] < best["median_us"]:
            torch[key] = r
print("\n| model | inputs | Kiln threads | Kiln artifact median / p99 (us) | libtorch (best threads) median / p99 (us) | "
      "libtorch / Kiln (median) |")
print("|---|---|---:|---:|---:|---:|")
for k in kiln:
    name = k["model"]
    inputs = k.get("inputs", "synthetic")
    t = torch.get((name, inputs))
    peer = f"{t['median_us']:.2f} / {t['p99_us']:.2f} ({t.get('threads', '?')})" if t else "-"
    ratio = f"{t['median_us'] / k['batch1_median_us']:.1f}x" if t else "-"
    print(f"| {name} | {inputs} | {k['threads']} | {k['batch1_median_us']:.3f} / {k['batch1_p99_us']:.3f} | {peer} | "
          f"{ratio} |")
PY
