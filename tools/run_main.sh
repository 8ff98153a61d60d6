#!/usr/bin/env bash
# Kiln's main job, end to end: set up, build, check every example model, show what Kiln
# makes of one (its Graph IR and whole training step), then train the credit-risk model on
# its real data on the LLVM JIT, evaluate the run, predict with it, and build it into a
# deployable artifact (C library + standalone predictor, no LLVM or Kiln inside) whose
# predictions are compared with Kiln's.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/tools/build.sh"
cd "$root"
kiln=build/tools/kiln
echo "== kiln check models/*.kiln"
$kiln check models/*.kiln
echo
echo "== kiln dump --ir models/fashion_mlp.kiln"
$kiln dump --ir models/fashion_mlp.kiln
echo
echo "== kiln dump --ir --train models/credit_risk.kiln | tail (the step: loss, gradients, Adam update)"
$kiln dump --ir --train models/credit_risk.kiln | tail -n 12
echo
echo "== kiln train models/credit_risk.kiln (4454 loans, LLVM JIT)"
rm -rf build/runs/credit_risk
$kiln train models/credit_risk.kiln --out build/runs/credit_risk
echo
echo "== kiln eval models/credit_risk.kiln --run build/runs/credit_risk"
$kiln eval models/credit_risk.kiln --run build/runs/credit_risk
echo
echo "== kiln predict (all 4454 loans to build/runs/credit_risk/predictions.csv; the first 5)"
$kiln predict models/credit_risk.kiln --run build/runs/credit_risk > build/runs/credit_risk/predictions.csv
head -n 6 build/runs/credit_risk/predictions.csv
echo
echo "== kiln build models/credit_risk.kiln --run build/runs/credit_risk -o build/deploy/credit_risk"
rm -rf build/deploy/credit_risk
$kiln build models/credit_risk.kiln --run build/runs/credit_risk -o build/deploy/credit_risk
echo
echo "== the artifact's own predictor on the same data, against kiln predict"
build/deploy/credit_risk/credit_risk models/data/credit_data.csv > build/deploy/credit_risk/predictions.csv
python3 - build/runs/credit_risk/predictions.csv build/deploy/credit_risk/predictions.csv << 'PY'
import csv, sys
a = list(csv.reader(open(sys.argv[1])))
b = list(csv.reader(open(sys.argv[2])))
assert len(a) == len(b) and a[0] == b[0], "the artifact's predictions differ in shape from kiln predict's"
worst = 0.0
for ra, rb in zip(a[1:], b[1:]):
    for x, y in zip(ra, rb):
        try:
            worst = max(worst, abs(float(x) - float(y)))
        except ValueError:  # the predicted class name
            assert x == y, f"class {x} vs {y}"
print(f"{len(a) - 1} predictions, the same classes; largest difference from kiln predict: {worst:.2g}")
PY
echo
echo "== batch-1 latency of the artifact"
build/deploy/credit_risk/credit_risk_bench
