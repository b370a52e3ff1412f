#!/usr/bin/env bash
# Two Gloss builds side by side, alternating, RUNS times each: `gloss bench train` (target
# tokens/s of the quick recipe's model, 2 threads, 60 batches) and `gloss bench translate`
# (sentences/s on test_2016_flickr, beam 5, 2 threads) with MODEL. Prints every run and the
# medians with the ratio NEW / OLD: a refactoring should stay within the machine's noise.
# Then where a training batch's time goes in each build: the median share of every stage
# `gloss bench train` reports, and the GEMMs' rate against dnnl_sgemm and the bf16 GEMM (a
# stage one build does not report shows as -).
# PRECISION (f32, bf16 or auto; default the recipe's) is the training benchmark's train.precision.
# MODEL - skips translation (e.g. when the old build cannot read today's model files).
# Usage: bash tests/bench/before_after.sh OLD_GLOSS NEW_GLOSS MODEL [RUNS] [PRECISION]
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: before_after.sh OLD_GLOSS NEW_GLOSS MODEL [RUNS] [PRECISION]" >&2; exit 2; }
old=$(realpath "$1")
new=$(realpath "$2")
model=$3
[ "$model" = - ] || model=$(realpath "$model")
runs=${4:-3}
precision=()
case "${5:-}" in
  "") ;;
  f32 | bf16 | auto) precision=(--train.precision "$5") ;;
  *) echo "before_after.sh: PRECISION must be f32, bf16 or auto (got '$5')" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
train_rate() {  # GLOSS OUTPUT: keeps the BENCH lines in OUTPUT, prints target tokens/s
  "$1" bench train --threads 2 --batches 60 "${precision[@]}" --run.workdir "$tmp/run" 2>/dev/null >"$2"
  awk '/^BENCH train_target_tokens_per_s/ {print $3}' "$2"
}
translate_rate() {
  "$1" bench translate -m "$model" -i data/multi30k/test_2016_flickr.en.gz --beam-size 5 --threads 2 --runs 1 \
    2>/dev/null | awk '/^BENCH translate_sentences_per_s/ {print $3}'
}
declare -a old_train new_train old_tr new_tr
for ((r = 1; r <= runs; r++)); do
  old_train+=("$(train_rate "$old" "$tmp/old.$r")")
  new_train+=("$(train_rate "$new" "$tmp/new.$r")")
  if [ "$model" = - ]; then
    echo "run $r: train ${old_train[-1]} -> ${new_train[-1]} tok/s" >&2
    continue
  fi
  old_tr+=("$(translate_rate "$old")")
  new_tr+=("$(translate_rate "$new")")
  echo "run $r: train ${old_train[-1]} -> ${new_train[-1]} tok/s; translate beam 5 ${old_tr[-1]} -> ${new_tr[-1]} sent/s" >&2
done
ot=$(median "${old_train[@]}"); nt=$(median "${new_train[@]}")
echo "BENCH train_target_tokens_per_s old $ot new $nt ratio $(echo "scale=3; $nt / $ot" | bc)"
if [ "$model" != - ]; then
  oc=$(median "${old_tr[@]}"); nc=$(median "${new_tr[@]}")
  echo "BENCH translate_beam5_sentences_per_s old $oc new $nc ratio $(echo "scale=3; $nc / $oc" | bc)"
fi
profile_keys=$(awk '/^BENCH (train_time_|train_fraction_of_(sgemm|bf16_gemm)_1024)/ && !seen[$2]++ {print $2}' "$tmp"/old.1 "$tmp"/new.1)
share() {  # SIDE KEY: the median over runs, or - if SIDE's build does not report KEY
  local values
  values=$(awk -v k="$2" '$2 == k {print $3}' "$tmp/$1".*)
  if [ -z "$values" ]; then echo -; else median $values; fi
}
for key in $profile_keys; do
  echo "BENCH $key old $(share old "$key") new $(share new "$key") %"
done
