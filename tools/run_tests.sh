#!/usr/bin/env bash
# The whole default test suite: set up, build, then ctest (unit tests, golden diagnostics,
# CLI end-to-end tests and a bounded fuzz run of the front end).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/tools/build.sh"
cd "$root/build"
ctest --output-on-failure -j"$(nproc)" -LE long "$@"
