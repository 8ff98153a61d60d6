#!/usr/bin/env bash
# Reading records, end to end: fashion_mlp's artifact predictor (`kiln build`) and `kiln
# predict --input` on the same 2,000 Fashion-MNIST training images as CSV (columns
# pixels_0..783) and as JSON lines ({"pixels": [...]}), five runs each, median wall time.
# The ratios say what JSON costs against CSV in each reader (the record parsing: the model
# is the same). Environment: KILN_BUILD_DIR (default build/), RUNS (5), WORK (a temporary
# folder). Needs the Debian package dataset-fashion-mnist.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${KILN_BUILD_DIR:-$root/build}
runs=${RUNS:-5}
work=${WORK:-$(mktemp -d)}
kiln=$build/tools/kiln
export KILN_STDLIB=$root/stdlib
images=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

cmake --build "$build" --target kiln -- --quiet >&2
"$kiln" train "$root/models/fashion_mlp.kiln" --out "$work/run" --epochs 1 --max-steps 5 --no-checkpoints > /dev/null
rm -rf "$work/art"
"$kiln" build "$root/models/fashion_mlp.kiln" --run "$work/run" -o "$work/art" > /dev/null
python3 - "$images" "$work" << 'PY'
import gzip, json, sys
data = gzip.open(sys.argv[1]).read(16 + 2000 * 784)[16:]
imgs = [list(data[i * 784:(i + 1) * 784]) for i in range(2000)]
with open(f"{sys.argv[2]}/images.csv", "w") as f:
    f.write(",".join(f"pixels_{i}" for i in range(784)) + "\n")
    f.writelines(",".join(map(str, im)) + "\n" for im in imgs)
with open(f"{sys.argv[2]}/images.jsonl", "w") as f:
    f.writelines(json.dumps({"pixels": im}) + "\n" for im in imgs)
PY
median() {  # median wall seconds of `runs` runs of "$@"
  for _ in $(seq "$runs"); do
    local t0 t1
    t0=$(date +%s.%N)
    "$@" > /dev/null 2>&1
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'
  done | sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'
}
a_csv=$(median "$work/art/fashion_mlp" "$work/images.csv")
a_json=$(median "$work/art/fashion_mlp" "$work/images.jsonl")
k_csv=$(median "$kiln" predict "$root/models/fashion_mlp.kiln" --run "$work/run" --input "$work/images.csv")
k_json=$(median "$kiln" predict "$root/models/fashion_mlp.kiln" --run "$work/run" --input "$work/images.jsonl")
printf '\n| reader (2,000 images) | CSV (s) | JSON lines (s) | JSON / CSV |\n|---|---:|---:|---:|\n'
awk -v c="$a_csv" -v j="$a_json" 'BEGIN { printf "| artifact predictor | %.3f | %.3f | %.1fx |\n", c, j, j / c }'
awk -v c="$k_csv" -v j="$k_json" 'BEGIN { printf "| kiln predict (JIT) | %.3f | %.3f | %.1fx |\n", c, j, j / c }'
