#!/usr/bin/env bash
# Training throughput of Gloss and of the PyTorch peer (../shared/peers/torch_s2s.py, the same
# model) on the bundled Multi30k en-de at 2 threads, measured in the same run, alternating,
# RUNS times each; prints the medians and their ratio.
# Needs python3-torch, python3-sentencepiece and an optimised BLAS for Debian's torch
# (apt-get install python3-torch python3-sentencepiece libopenblas0-openmp): without
# OpenBLAS, Debian's torch runs on the reference BLAS (5.6 GFLOP/s here) and the peer is ~20x
# slower than its documented speed.
# Usage: bash tests/bench/train_bench.sh [RUNS] [PEER_SCRIPT]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
peer=${2:-../shared/peers/torch_s2s.py}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
[ -x build/gloss ] || bash scripts/build.sh >/dev/null
mkdir -p "$tmp/multi30k"
cp data/multi30k/*.gz "$tmp/multi30k/"

gloss_runs=()
peer_runs=()
for ((r = 1; r <= runs; r++)); do
  g=$(build/gloss bench train --threads 2 --batches 60 --run.workdir "$tmp/run" 2>/dev/null |
      awk '/^BENCH train_target_tokens_per_s/ {print $3}')
  gloss_runs+=("$g")
  p=$(/usr/bin/python3 "$peer" --data "$tmp/multi30k" --spm-dir "$tmp/peer-spm" --threads 2 --bench-batches 150 2>&1 |
      grep -oE '[0-9]+(\.[0-9]+)? (target )?tok/s' | tail -1 | awk '{print $1}')
  peer_runs+=("$p")
  echo "run $r: gloss $g tok/s, pytorch $p tok/s" >&2
done
gm=$(median "${gloss_runs[@]}")
pm=$(median "${peer_runs[@]}")
echo "BENCH gloss_train_target_tokens_per_s $gm tok/s"
echo "BENCH pytorch_train_target_tokens_per_s $pm tok/s"
echo "BENCH gloss_over_pytorch $(echo "scale=2; $gm / $pm" | bc) x"
