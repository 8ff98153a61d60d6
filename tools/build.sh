#!/usr/bin/env bash
# Sets up (installs missing Debian packages) and builds Kiln into build/ with the default
# preset (clang-16, Ninja, warnings as errors). Quiet when there is nothing to do.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/tools/setup/setup.sh"
cd "$root"
if [ ! -f build/build.ninja ]; then
  cmake --preset default > build-configure.log 2>&1 || { cat build-configure.log; exit 1; }
  rm -f build-configure.log
fi
cmake --build build -- -j"$(nproc)" --quiet
