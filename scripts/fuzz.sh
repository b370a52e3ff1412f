#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, ASan + UBSan) in build-fuzz/ and runs each for SECONDS
# (default 30) from its committed seed corpus, tests/fuzz/corpus/<harness>/. Inputs that reach
# new code are kept in build-fuzz/corpus/<harness>/ (not committed). A finding (crash, leak,
# sanitizer report, timeout, out-of-memory) stops the script with its input saved as
# build-fuzz/<harness>-crash-*: turn it into a regression test.
#   bash scripts/fuzz.sh [SECONDS] [HARNESS...]     harnesses: recipe lines model checkpoint
#                                                     shortlist metrics eval serve (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
harnesses=("$@")
if ((${#harnesses[@]} == 0)); then harnesses=(recipe lines model checkpoint shortlist metrics eval serve); fi
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGLOSS_FUZZ=ON \
  -DGLOSS_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz -j2 --target "${harnesses[@]/%/_fuzz}" >/dev/null
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
for h in "${harnesses[@]}"; do
  mkdir -p "build-fuzz/corpus/$h"
  echo "fuzz: $h for ${seconds} s" >&2
  if ! (cd build-fuzz && "./tests/fuzz/${h}_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$h-" -print_final_stats=1 "corpus/$h" "../tests/fuzz/corpus/$h" >"$h.log" 2>&1); then
    tail -40 "build-fuzz/$h.log" >&2
    echo "fuzz: $h FOUND A DEFECT; input: $(ls build-fuzz/"$h"-* 2>/dev/null | head -1)" >&2
    exit 1
  fi
  runs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "build-fuzz/$h.log" | grep -oE '[0-9]+$')
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "build-fuzz/$h.log" | tail -1)
  echo "fuzz: $h: $runs executions, $cov, corpus $(ls "build-fuzz/corpus/$h" | wc -l) inputs; no finding" >&2
done
