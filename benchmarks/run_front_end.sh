#!/usr/bin/env bash
# Front-end benchmark with its peer in the same run: Kiln's parser and `kiln check` on a
# generated 10,000-line model, and each example model, beside CPython's parser (ast.parse)
# on a Python file of the same shape. Medians of repeated runs; prints ratios.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/tools/build.sh"
reps=${REPS:-9}
json=$(mktemp)
"$root/build/benchmarks/bench_front_end" --benchmark_repetitions="$reps" \
  --benchmark_report_aggregates_only=true --benchmark_format=json > "$json"
peer_ms=$(python3 "$root/benchmarks/peers/python_parse.py" 10000 "$reps")
python3 - "$json" "$peer_ms" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
peer = float(sys.argv[2])
med = {b["run_name"]: b["real_time"] for b in data["benchmarks"] if b.get("aggregate_name") == "median"}
print(f"{'benchmark':42} {'median ms':>10}  target")
for name, ms in med.items():
    target = "< 20 ms" if name.startswith("check_model") else "< 500 ms"
    print(f"{name:42} {ms:10.3f}  {target}")
kiln_parse = med["BM_Parse10kLines"]
print(f"{'peer: CPython ast.parse, same 10k lines':42} {peer:10.3f}")
print(f"ratio Kiln parse / CPython parse: {kiln_parse / peer:.2f}x (below 1 is faster than CPython)")
print(f"ratio Kiln check (parse+sema+IR) / CPython parse: {med['BM_Check10kLines'] / peer:.2f}x")
PY
rm -f "$json"
