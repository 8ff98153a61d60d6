#!/usr/bin/env bash
# The peer side of the performance benchmarks (issue 5), in one run:
#   - PyTorch training throughput of the Fashion-MNIST MLP (batch 64, 256) and CNN (batch 64),
#     torch.set_num_threads 1 and 2, each in its own process with OMP_WAIT_POLICY=PASSIVE
#     (benchmarks/peers/torch_train.py);
#   - libtorch (C++) MLP training throughput and batch-1 inference latency of the fashion and
#     credit-risk MLPs (benchmarks/peers/libtorch_bench.cpp);
#   - SGEMM GFLOP/s of kiln_sgemm, OpenBLAS and oneDNN on the square and model shapes
#     (benchmarks/bench_gemm.cpp).
# Prints a markdown summary and then every measurement as JSON on stdout; progress on stderr.
# The peers (tools/setup/benchmark-packages.txt) are installed by benchmarks/setup_peers.sh
# when missing; they are never needed by Kiln itself.
#
# Environment: KILN_BUILD_DIR (default build/; configured like CMakePresets.json's default
# preset when it does not exist yet), JOBS (build parallelism, default nproc),
# PEER_SECONDS (timed seconds per training config, default 10), PEER_CALLS (latency calls per
# model, default 100000), GEMM_FILTER (bench_gemm --benchmark_filter, default all; "none"
# skips bench_gemm), GEMM_MIN_TIME (default 0.5 s per row).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${KILN_BUILD_DIR:-$root/build}
jobs=${JOBS:-$(nproc)}
seconds=${PEER_SECONDS:-10}
calls=${PEER_CALLS:-100000}
gemm_filter=${GEMM_FILTER:-.}
gemm_min_time=${GEMM_MIN_TIME:-0.5}

bash "$root/benchmarks/setup_peers.sh"
if [ ! -f "$build/build.ninja" ]; then
  echo "run_peers: configuring $build" >&2
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_C_COMPILER=clang-16 -DCMAKE_CXX_COMPILER=clang++-16 \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_WERROR=ON > /dev/null
elif ! grep -q '^build libtorch_bench:' "$build/build.ninja" || ! grep -q -- -DKILN_BENCH_DNNL "$build/build.ninja"; then
  # Configured before the peers were installed: look for them again.
  cmake "$build" > /dev/null
fi
targets=(bench_gemm)
grep -q '^build libtorch_bench:' "$build/build.ninja" && targets+=(libtorch_bench)
echo "run_peers: building ${targets[*]} in $build" >&2
cmake --build "$build" --target "${targets[@]}" -- -j"$jobs" --quiet >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "run_peers: PyTorch training (${seconds}s per config)" >&2
python3 "$root/benchmarks/peers/torch_train.py" --model mlp --batch 64,256 --threads 1,2 --seconds "$seconds" \
  | tee -a "$work/peers.jsonl" >&2
python3 "$root/benchmarks/peers/torch_train.py" --model cnn --batch 64 --threads 1,2 --seconds "$seconds" \
  | tee -a "$work/peers.jsonl" >&2

if [ -x "$build/benchmarks/libtorch_bench" ]; then
  echo "run_peers: libtorch training and batch-1 latency" >&2
  "$build/benchmarks/libtorch_bench" --seconds "$seconds" --calls "$calls" | tee -a "$work/peers.jsonl" >&2
  # libtorch picks its own default thread count (1 on some machines): also train on all cores.
  "$build/benchmarks/libtorch_bench" --seconds "$seconds" --calls 0 --threads "$(nproc)" \
    | tee -a "$work/peers.jsonl" >&2
else
  echo "run_peers: libtorch_bench not built (libtorch-dev missing at configure time)" >&2
fi

if [ "$gemm_filter" != none ]; then
  echo "run_peers: bench_gemm" >&2
  "$build/benchmarks/bench_gemm" --benchmark_filter="$gemm_filter" --benchmark_min_time="$gemm_min_time" \
    --benchmark_out="$work/gemm.json" --benchmark_out_format=json >&2
fi

python3 - "$work/peers.jsonl" "$work/gemm.json" <<'PY'
import json, os, sys

records = [json.loads(line) for line in open(sys.argv[1]) if line.strip().startswith("{")]
gemm = json.load(open(sys.argv[2]))["benchmarks"] if os.path.exists(sys.argv[2]) else []

print("## PyTorch training throughput (samples/s; OMP_WAIT_POLICY=PASSIVE)\n")
print("| model | batch | 1 thread | 2 threads | best |")
print("|---|---:|---:|---:|---:|")
configs = [r for r in records if r.get("peer") == "pytorch" and r.get("kind") == "config"]
for best in (r for r in records if r.get("peer") == "pytorch" and r.get("kind") == "best"):
    by_threads = {r["threads"]: r["samples_per_s"] for r in configs
                  if r["model"] == best["model"] and r["batch"] == best["batch"]}
    cells = [f"{by_threads[t]:.0f}" if t in by_threads else "-" for t in (1, 2)]
    print(f"| {best['model']} | {best['batch']} | {cells[0]} | {cells[1]} | "
          f"{best['samples_per_s']:.0f} ({best['threads']} thr) |")

train = [r for r in records if r.get("peer") == "libtorch" and r.get("bench") == "train"]
if train:
    print("\n## libtorch MLP training throughput (samples/s)\n")
    print("| model | batch | threads | samples/s |")
    print("|---|---:|---:|---:|")
    for r in train:
        print(f"| {r['model']} | {r['batch']} | {r['threads']} | {r['samples_per_s']:.0f} |")
latency = [r for r in records if r.get("peer") == "libtorch" and r.get("bench") == "latency"]
if latency:
    print("\n## libtorch batch-1 inference latency (InferenceMode)\n")
    print("| model | threads | calls | median µs | p99 µs |")
    print("|---|---:|---:|---:|---:|")
    for r in latency:
        print(f"| {r['model']} | {r['threads']} | {r['calls']} | {r['median_us']:.2f} | {r['p99_us']:.2f} |")

rows = {}
for b in gemm:
    if b.get("run_type") != "iteration" or not b["name"].startswith("gemm/"):
        continue
    _, lib, shape = b["name"].split("/", 2)
    rows.setdefault(shape.replace("/real_time", ""), {})[lib] = b["GFLOP/s"]
if rows:
    print("\n## SGEMM GFLOP/s (m×k×n/transposes/threads)\n")
    print("| shape | OpenBLAS | oneDNN | Kiln | Kiln/OpenBLAS | Kiln/oneDNN |")
    print("|---|---:|---:|---:|---:|---:|")
    fmt = lambda v: f"{v:.1f}" if v else "-"
    ratio = lambda a, b: f"{a / b:.2f}" if a and b else "-"
    for shape, libs in rows.items():
        ob, dn, kl = libs.get("openblas"), libs.get("onednn"), libs.get("kiln")
        print(f"| {shape} | {fmt(ob)} | {fmt(dn)} | {fmt(kl)} | {ratio(kl, ob)} | {ratio(kl, dn)} |")
    records += [{"peer": lib, "bench": "sgemm", "shape": shape, "gflops": round(v, 2)}
                for shape, libs in rows.items() for lib, v in libs.items()]

print("\n## All measurements (JSON)\n")
print("```json")
print("[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]")
print("```")
PY
