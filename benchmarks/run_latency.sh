#!/usr/bin/env bash
# Batch-1 inference latency of `kiln build` artifacts against libtorch, in one run (issue 5):
# trains credit_risk and fashion_mlp briefly (latency does not depend on the weights' values),
# builds each with `kiln build`, runs the generated NAME_bench (median and p99 over 100,000
# calls of NAME_predict with one row) and libtorch_bench's latency mode (the same
# architectures under InferenceMode, 1 thread, same number of calls), and prints a table
# with the ratios. Environment: KILN_BUILD_DIR (default build/), CALLS (default 100000),
# WORK (default a temporary folder).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${KILN_BUILD_DIR:-$root/build}
calls=${CALLS:-100000}
work=${WORK:-$(mktemp -d)}
kiln=$build/tools/kiln
export KILN_STDLIB=$root/stdlib

cmake --build "$build" --target kiln -- --quiet >&2
have_libtorch=0
if grep -q '^build libtorch_bench:' "$build/build.ninja"; then
  cmake --build "$build" --target libtorch_bench -- --quiet >&2 && have_libtorch=1
fi
: > "$work/latency.jsonl"
for m in credit_risk fashion_mlp; do
  echo "run_latency: training and building $m" >&2
  "$kiln" train "$root/models/$m.kiln" --out "$work/run_$m" --epochs 1 --max-steps 50 --no-checkpoints > /dev/null
  rm -rf "$work/out_$m"
  "$kiln" build "$root/models/$m.kiln" --run "$work/run_$m" -o "$work/out_$m" > /dev/null
  "$work/out_$m/${m}_bench" | tee -a "$work/latency.jsonl"
done
if [ $have_libtorch = 1 ]; then
  "$build/benchmarks/libtorch_bench" --seconds 0 --calls "$calls" --threads 1 | tee -a "$work/latency.jsonl"
fi
python3 - "$work/latency.jsonl" << 'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
kiln = {r["model"]: r for r in rows if "batch1_median_us" in r}
torch = {r["model"]: r for r in rows if r.get("peer") == "libtorch" and r.get("bench") == "latency"}
print("\n| model | Kiln artifact median / p99 (us) | libtorch median / p99 (us) | libtorch / Kiln (median) |")
print("|---|---:|---:|---:|")
for name, k in kiln.items():
    t = torch.get(name)
    peer = f"{t['median_us']:.2f} / {t['p99_us']:.2f}" if t else "-"
    ratio = f"{t['median_us'] / k['batch1_median_us']:.1f}x" if t else "-"
    print(f"| {name} | {k['batch1_median_us']:.3f} / {k['batch1_p99_us']:.3f} | {peer} | {ratio} |")
PY
