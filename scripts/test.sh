#!/usr/bin/env bash
# Quick start, second command (and CI): install what is missing, build, run every test.
#   bash scripts/test.sh              Release build in build/
#   bash scripts/test.sh --sanitize   AddressSanitizer + UBSan build in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh "$@"
dir=build
if [ "${1:-}" = "--sanitize" ]; then dir=build-asan; fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
cd "$dir"
ctest --output-on-failure -j2 -LE slow
cd ..
# The readers of user files under libFuzzer, briefly (longer runs: bash scripts/fuzz.sh 600).
if [ "${1:-}" != "--sanitize" ]; then bash scripts/fuzz.sh "${GLOSS_FUZZ_SECONDS:-15}"; fi
