#!/usr/bin/env bash
# Data-parallel training across processes: `mpirun -np 2 gloss bench train --threads 1`
# against one process with 1 thread, on the quick recipe's model and data, alternating, RUNS
# times each; prints the medians of target tokens/s, their ratio (also against one process
# training the same model as the two ranks, `--train.replicas 2`: two half batches one after
# the other, the same GEMM shapes as each rank's) and the shares of each update
# spent waiting for the slower rank (the two ranks' mean: what uneven halves cost) and then
# summing the ranks' gradients. Also the machine's own ceiling for any two-way split: two
# independent one-thread processes at once, each pinned to its own core (their summed
# tokens/s against one process alone), which no data-parallel scheme can beat (they share
# caches, memory bandwidth and clock), and mpirun's rate as a share of theirs, run by run.
# Their two rates, core by core, also give a synchronous job's own ceiling: the ranks meet at
# every update, so two ranks go at the pace of the slower core (twice its rate), which on a
# virtual machine whose two vCPUs differ in speed is below the two-way ceiling.
# Usage: bash tests/bench/mpi_bench.sh [RUNS] [BATCHES]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
batches=${2:-40}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader \
  OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
[ -x build/gloss ] || bash scripts/build.sh >/dev/null
build/gloss spm train recipes/quick-en-de.ini --run.workdir "$tmp/run" >/dev/null 2>&1  # subword models once
one=()
same=()
two=()
share=()
wait_share=()
pair=()
of_pair=()  # per run: mpirun's rate against the two independent processes measured right after it
core0=()
core1=()
of_sync=()  # per run: mpirun's rate against twice the slower core's rate in that pair
rate() { awk '/^BENCH train_target_tokens_per_s/ {print $3}' "$1"; }
# A failed run ends the script with its line instead of silently (the runs' stderr is hidden);
# the background pair's rates are checked by value, as `wait` does not report their failure.
trap 'echo "mpi_bench.sh:$LINENO: a benchmark run failed; run that command by hand to see why" >&2' ERR
need_rate() {
  [[ $1 =~ ^[0-9]+$ ]] || { echo "mpi_bench.sh: $2 printed no tokens/s; run it by hand to see why" >&2; exit 1; }
}
for ((r = 1; r <= runs; r++)); do
  o=$(build/gloss bench train --threads 1 --batches "$batches" --run.workdir "$tmp/run" 2>/dev/null |
      awk '/^BENCH train_target_tokens_per_s/ {print $3}')
  m=$(build/gloss bench train --threads 1 --train.replicas 2 --batches "$batches" --run.workdir "$tmp/run" \
      2>/dev/null | awk '/^BENCH train_target_tokens_per_s/ {print $3}')
  same+=("$m")
  out=$(mpirun -np 2 --bind-to core build/gloss bench train --threads 1 --batches "$batches" --run.workdir "$tmp/run" 2>/dev/null)
  t=$(awk '/^BENCH train_target_tokens_per_s/ {print $3}' <<<"$out")
  s=$(awk '/^BENCH train_allreduce_share/ {print $3}' <<<"$out")
  w=$(awk '/^BENCH train_rank_wait_share/ {print $3}' <<<"$out")
  each=$(awk '/^BENCH train_each_rank_wait_share/ {print "rank 0", $3 " %,", "rank 1", $4 " %"}' <<<"$out")
  one+=("$o")
  wait_share+=("$w")
  two+=("$t")
  share+=("$s")
  for c in 0 1; do
    taskset -c $c build/gloss bench train --threads 1 --batches "$batches" --run.workdir "$tmp/run" \
      >"$tmp/alone.$c" 2>/dev/null &
  done
  wait
  c0=$(rate "$tmp/alone.0")
  c1=$(rate "$tmp/alone.1")
  need_rate "$c0" "the one-thread run pinned to core 0"
  need_rate "$c1" "the one-thread run pinned to core 1"
  p=$((c0 + c1))
  pair+=("$p")
  core0+=("$c0")
  core1+=("$c1")
  of_pair+=("$(echo "scale=1; 100 * $t / $p" | bc)")
  of_sync+=("$(echo "scale=1; 100 * $t / (2 * $((c0 < c1 ? c0 : c1)))" | bc)")
  echo "run $r: 1 process x 1 thread $o tok/s (with 2 replicas $m), mpirun -np 2 x 1 thread $t tok/s (waiting $w %: $each; gradient sum $s %)," \
    "2 independent processes at once $p tok/s in all (core 0 $c0, core 1 $c1)" >&2
done
mo=$(median "${one[@]}")
mt=$(median "${two[@]}")
echo "BENCH train_1_process_1_thread $mo tok/s"
echo "BENCH train_mpirun_2_x_1_thread $mt tok/s"
echo "BENCH train_mpi_speedup $(echo "scale=2; $mt / $mo" | bc) x"
ms=$(median "${same[@]}")
echo "BENCH train_1_process_2_replicas $ms tok/s (the same model as mpirun -np 2)"
echo "BENCH train_mpi_speedup_same_model $(echo "scale=2; $mt / $ms" | bc) x"
echo "BENCH train_rank_wait_share $(median "${wait_share[@]}") % of each update (the ranks' mean wait for the slower)"
echo "BENCH train_allreduce_share $(median "${share[@]}") % of each update"
mp=$(median "${pair[@]}")
echo "BENCH train_2_independent_processes $mp tok/s in all"
echo "BENCH train_2_independent_over_1 $(echo "scale=2; $mp / $mo" | bc) x (the machine's two-way ceiling)"
echo "BENCH train_mpirun_of_2_independent $(median "${of_pair[@]}") % (median of the runs' own ratios)"
echo "BENCH train_independent_core_0 $(median "${core0[@]}") tok/s, core_1 $(median "${core1[@]}") tok/s (each while the other runs)"
echo "BENCH train_mpirun_of_synchronous_ceiling $(median "${of_sync[@]}") % (mpirun against twice the slower core's rate, median of the runs' own ratios)"
