#!/usr/bin/env bash
# Kiln's main job, end to end: set up, build, check every example model, show what Kiln
# makes of one (its Graph IR and whole training step), then train the credit-risk model on
# its real data, evaluate the run and predict with it.
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
echo "== kiln train models/credit_risk.kiln (4454 loans, reference backend)"
rm -rf build/runs/credit_risk
$kiln train models/credit_risk.kiln --out build/runs/credit_risk
echo
echo "== kiln eval models/credit_risk.kiln --run build/runs/credit_risk"
$kiln eval models/credit_risk.kiln --run build/runs/credit_risk
echo
echo "== kiln predict (all 4454 loans to build/runs/credit_risk/predictions.csv; the first 5)"
$kiln predict models/credit_risk.kiln --run build/runs/credit_risk > build/runs/credit_risk/predictions.csv
head -n 6 build/runs/credit_risk/predictions.csv
