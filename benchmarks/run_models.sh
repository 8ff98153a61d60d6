#!/usr/bin/env bash
# End-to-end model benchmarks (issue 5), Kiln and its peers in the same run, as ratios:
#   training throughput (samples/s) of the Fashion-MNIST MLP (batch 64 and 256) and CNN
#   (batch 64): Kiln's JIT (bench_train_step: the whole training step on synthetic batches)
#   against PyTorch (benchmarks/peers/torch_train.py, its best of 1 and 2 threads, with
#   OMP_WAIT_POLICY=PASSIVE) and libtorch (benchmarks/peers/libtorch_bench, its defaults).
# Each side is measured in windows and reports the median; run it on a quiet machine and
# repeat: these machines are shared. Prints JSON lines, then a markdown table.
#
# Environment: KILN_BUILD_DIR (default build/), SECONDS_PER_WINDOW (default 2), WINDOWS
# (default 5), THREADS (Kiln's thread count, default 2), MODELS (default "mlp cnn").
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${KILN_BUILD_DIR:-$root/build}
window=${SECONDS_PER_WINDOW:-2}
windows=${WINDOWS:-5}
threads=${THREADS:-2}
models=${MODELS:-mlp cnn}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

cmake --build "$build" --target bench_train_step -- --quiet >&2
have_libtorch=0
if grep -q '^build libtorch_bench:' "$build/build.ninja"; then
  cmake --build "$build" --target libtorch_bench -- --quiet >&2 && have_libtorch=1
fi
py=python3
python3 -c 'import torch' 2> /dev/null || py=/usr/bin/python3
have_torch=0
$py -c 'import torch' 2> /dev/null && have_torch=1

for m in $models; do
  case $m in
    mlp) file=models/fashion_mlp.kiln batches="64 256" ;;
    cnn) file=models/fashion_cnn.kiln batches="64" ;;
  esac
  echo "run_models: kiln $m" >&2
  "$build/benchmarks/bench_train_step" --threads "$threads" --seconds "$window" --windows "$windows" \
    "$root/$file" $batches | tee -a "$out/kiln.jsonl"
  if [ $have_torch = 1 ]; then
    echo "run_models: pytorch $m" >&2
    $py "$root/benchmarks/peers/torch_train.py" --model "$m" --batch "$(echo $batches | tr ' ' ,)" \
      --threads 1,2 --seconds "$((window * windows))" --windows "$windows" | tee -a "$out/torch.jsonl"
  fi
done
if [ $have_libtorch = 1 ] && [[ " $models " == *" mlp "* ]]; then
  echo "run_models: libtorch mlp" >&2
  "$build/benchmarks/libtorch_bench" --seconds "$((window * windows))" --calls 1000 --batch 64 --batch 256 \
    | tee -a "$out/libtorch.jsonl"
fi

python3 - "$out" << 'PY'
import json, os, sys
out = sys.argv[1]
def rows(name):
    p = os.path.join(out, name)
    return [json.loads(l) for l in open(p) if l.strip().startswith("{")] if os.path.exists(p) else []
kiln = rows("kiln.jsonl")
torch = [r for r in rows("torch.jsonl") if r.get("kind") == "best"]
libtorch = [r for r in rows("libtorch.jsonl") if "samples_per_s" in r]
print("\n| model | batch | Kiln JIT samples/s | PyTorch best | libtorch | Kiln / best peer |")
print("|---|---:|---:|---:|---:|---:|")
for k in kiln:
    name = k["model"]
    pt = [r["samples_per_s"] for r in torch if r["model"] == name and r["batch"] == k["batch"]]
    lt = [r["samples_per_s"] for r in libtorch if r.get("model") == name and r.get("batch") == k["batch"]]
    best = max(pt + lt) if pt + lt else None
    fmt = lambda v: f"{v:,.0f}" if v else "-"
    ratio = f"{k['samples_per_s'] / best:.2f}x" if best else "-"
    print(f"| {name} | {k['batch']} | {fmt(k['samples_per_s'])} | {fmt(max(pt) if pt else None)} | "
          f"{fmt(max(lt) if lt else None)} | {ratio} |")
PY
