#!/usr/bin/env bash
# Bounded libFuzzer run: run_fuzz.sh BINARY CORPUS SECONDS WORKDIR
# Copies the seed corpus (so the repo is never written), runs for SECONDS with a per-input
# timeout, and fails on any crash, timeout, leak or sanitizer report.
set -euo pipefail
binary=$1 seeds=$2 seconds=$3 work=$4
name=$(basename "$binary")
corpus="$work/fuzz-corpus"
rm -rf "$corpus" "$work/fuzz-artifacts"
mkdir -p "$corpus" "$work/fuzz-artifacts"
find "$seeds" -maxdepth 1 -type f ! -name "*.md" -exec cp {} "$corpus"/ \;
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
"$binary" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len=65536 \
  -artifact_prefix="$work/fuzz-artifacts/" -print_final_stats=1 2>&1 | tail -n 25
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ] || [ -n "$(ls -A "$work/fuzz-artifacts")" ]; then
  echo "$name: FAILED (exit $status); reproducers in $work/fuzz-artifacts" >&2
  exit 1
fi
echo "$name: no crash, hang or sanitizer report in ${seconds}s"
