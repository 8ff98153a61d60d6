#!/usr/bin/env bash
# Installs the benchmark peers that are missing (tools/setup/benchmark-packages.txt: PyTorch,
# libtorch, oneDNN). Benchmark-only: Kiln's own setup (tools/setup/setup.sh) never installs
# them. Idempotent and silent when everything is already there. After installing, reconfigure
# the build (cmake -S . -B build) so that it finds them.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
list="$root/tools/setup/benchmark-packages.txt"
mapfile -t wanted < <(grep -v '^\s*#' "$list" | sed 's/\s*#.*//' | grep -v '^\s*$')
missing=()
for pkg in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "setup_peers: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
