#!/usr/bin/env bash
# Training throughput of Gloss (f32, and bf16 where the CPU has AVX512-BF16) and of the PyTorch
# peer (../shared/peers/torch_s2s.py, the same model) on the bundled Multi30k en-de at 2
# threads, measured in the same run, alternating, RUNS times each; prints the medians, their
# ratios, the GEMM rates, and where a Gloss batch's time goes (median share of each stage).
# Needs python3-torch, python3-sentencepiece and an optimised BLAS for Debian's torch
# (apt-get install python3-torch python3-sentencepiece libopenblas0-openmp): without
# OpenBLAS, Debian's torch runs on the reference BLAS (5.6 GFLOP/s here) and the peer is ~20x
# slower than its documented speed.
# Usage: bash tests/bench/train_bench.sh [RUNS] [PEER_SCRIPT]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
peer=${2:-../shared/peers/torch_s2s.py}
[ -f "$peer" ] || { echo "train_bench.sh: no peer script at $peer; give its path as PEER_SCRIPT" >&2; exit 2; }
/usr/bin/python3 -c 'import torch, sentencepiece' 2>/dev/null || {
  echo "train_bench.sh: the peer needs PyTorch: apt-get install python3-torch python3-sentencepiece libopenblas0-openmp" >&2
  exit 2
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
[ -x build/gloss ] || bash scripts/build.sh >/dev/null
mkdir -p "$tmp/multi30k"
cp data/multi30k/*.gz "$tmp/multi30k/"
precisions=(f32)
grep -q avx512_bf16 /proc/cpuinfo && precisions+=(bf16)

# One gloss bench train run: its BENCH lines into $tmp/<precision>.<run>.
gloss_run() {
  build/gloss bench train --threads 2 --batches 60 --train.precision "$1" --run.workdir "$tmp/run" 2>/dev/null \
    > "$tmp/$1.$2"
}
value() { awk -v k="$1" '$1 == "BENCH" && $2 == k {print $3}' "$2"; }

peer_runs=()
for ((r = 1; r <= runs; r++)); do
  line="run $r:"
  for p in "${precisions[@]}"; do
    gloss_run "$p" "$r"
    line+=" gloss $p $(value train_target_tokens_per_s "$tmp/$p.$r") tok/s,"
  done
  pr=$(/usr/bin/python3 "$peer" --data "$tmp/multi30k" --spm-dir "$tmp/peer-spm" --threads 2 --bench-batches 150 2>&1 |
      grep -oE '[0-9]+(\.[0-9]+)? (target )?tok/s' | tail -1 | awk '{print $1}')
  peer_runs+=("$pr")
  echo "$line pytorch $pr tok/s" >&2
done
pm=$(median "${peer_runs[@]}")
for p in "${precisions[@]}"; do
  med() { local v=(); for ((r = 1; r <= runs; r++)); do v+=("$(value "$1" "$tmp/$p.$r")"); done; median "${v[@]}"; }
  gm=$(med train_target_tokens_per_s)
  eval "tok_$p=$gm"
  name=gloss_train; [ "$p" = bf16 ] && name=gloss_bf16_train
  echo "BENCH ${name}_target_tokens_per_s $gm tok/s"
  echo "BENCH ${name}_over_pytorch $(echo "scale=2; $gm / $pm" | bc) x"
  echo "BENCH ${name}_gemm_gflops $(med train_gemm_gflops) GFLOP/s"
  echo "BENCH ${name}_fraction_of_sgemm_1024 $(med train_fraction_of_sgemm_1024) %"
  if [ "$p" = bf16 ]; then
    echo "BENCH bf16_gemm_1024_gflops $(med bf16_gemm_1024_gflops) GFLOP/s"
    echo "BENCH ${name}_fraction_of_bf16_gemm_1024 $(med train_fraction_of_bf16_gemm_1024) %"
  fi
  for s in gemm rnn attention softmax_loss optimizer data reduce worker_wait other; do
    echo "BENCH ${name}_time_$s $(med "train_time_$s") %"
  done
done
echo "BENCH pytorch_train_target_tokens_per_s $pm tok/s"
[ -n "${tok_bf16:-}" ] && echo "BENCH gloss_bf16_over_f32 $(echo "scale=2; $tok_bf16 / $tok_f32" | bc) x"
exit 0
