#!/usr/bin/env bash
# The pause a checkpoint save costs training (serialize, checksum, write, fsync, rename,
# retention), as `kiln train` measures and prints it, for a small and a mid-size model.
# Reruns the figures of docs/checkpoints.md. Peer: the same run's mean step time, so the
# pause is read as a share of training.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/tools/build.sh"
cd "$root"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
kiln=build/tools/kiln
echo "== credit_risk: --epochs 3 --checkpoint-every 3"
$kiln train models/credit_risk.kiln --epochs 3 --checkpoint-every 3 --out "$work/credit" | grep -E "^checkpoints:|samples/s$" | tail -n 2
echo "== fashion_mlp: --epochs 1 --max-steps 40 --checkpoint-every 5"
$kiln train models/fashion_mlp.kiln --epochs 1 --max-steps 40 --checkpoint-every 5 --out "$work/fashion" | grep -E "^checkpoints:|samples/s$" | tail -n 2
