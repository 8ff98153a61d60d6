#!/usr/bin/env bash
# Installs the benchmark peers that are missing (tools/setup/benchmark-packages.txt: PyTorch,
# libtorch, oneDNN) with Kiln's own installer. Benchmark-only: Kiln's setup never installs
# them. Idempotent and silent when everything is already there. After installing, reconfigure
# the build (cmake -S . -B build) so that it finds them.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
exec bash "$root/tools/setup/setup.sh" "$root/tools/setup/benchmark-packages.txt"
