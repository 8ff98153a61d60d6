#!/usr/bin/env bash
# Kiln's main job, end to end: set up, build, then check every example model and show
# what Kiln makes of it (the Graph IR of each model, and its training graph).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/tools/build.sh"
cd "$root"
kiln=build/tools/kiln
echo "== kiln check models/*.kiln"
$kiln check models/*.kiln
for model in models/*.kiln; do
  echo
  echo "== kiln dump --ir $model"
  $kiln dump --ir "$model"
done
echo
echo "== kiln dump --ir --train models/credit_risk.kiln (the whole training step: loss, gradients, Adam update)"
$kiln dump --ir --train models/credit_risk.kiln
echo
$kiln graph models/fashion_cnn.kiln -o build/fashion_cnn.dot
echo "== wrote build/fashion_cnn.dot (render: dot -Tsvg build/fashion_cnn.dot > cnn.svg)"
