#!/usr/bin/env bash
# Benchmark of the data pipeline on the bundled Multi30k en-de (29,000 pairs), quick recipe:
#  - SentencePiece training of both models inside Gloss (fresh cache each run);
#  - encoding + length filtering into ids, after the models exist (`gloss data`).
# Prints medians: BENCH spm_train_seconds, BENCH encode_29k_seconds.
# Usage: bash tests/bench/data_bench.sh [GLOSS_BINARY] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
gloss=${1:-build/gloss}
runs=${2:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

train=()
for ((r = 0; r < runs; r++)); do
  rm -rf "$tmp/run"
  start=$(date +%s.%N)
  "$gloss" spm train recipes/quick-en-de.ini --run.workdir "$tmp/run" >/dev/null 2>&1
  end=$(date +%s.%N)
  train+=("$(echo "$end - $start" | bc)")
  echo "spm train run $((r + 1)): ${train[-1]} s" >&2
done

encode=()
for ((r = 0; r < runs; r++)); do
  out=$("$gloss" data recipes/quick-en-de.ini --run.workdir "$tmp/run" 2>/dev/null)
  [ "$r" -eq 0 ] && echo "$out" >&2
  encode+=("$(echo "$out" | sed -n 's/^encoded in \([0-9.]*\) s.*/\1/p')")
  echo "encode run $((r + 1)): ${encode[-1]} s" >&2
done
echo "BENCH spm_train_seconds $(median "${train[@]}") s"
echo "BENCH encode_29k_seconds $(median "${encode[@]}") s"
