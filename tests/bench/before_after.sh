#!/usr/bin/env bash
# Two Gloss builds side by side, alternating, RUNS times each: `gloss bench train` (target
# tokens/s of the quick recipe's model, 2 threads, 60 batches) and `gloss bench translate`
# (sentences/s on test_2016_flickr, beam 5, 2 threads) with MODEL. Prints every run and the
# medians with the ratio NEW / OLD: a refactoring should stay within the machine's noise.
# PRECISION (f32, bf16 or auto; default the recipe's) is the training benchmark's train.precision.
# Usage: bash tests/bench/before_after.sh OLD_GLOSS NEW_GLOSS MODEL [RUNS] [PRECISION]
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: before_after.sh OLD_GLOSS NEW_GLOSS MODEL [RUNS] [PRECISION]" >&2; exit 2; }
old=$(realpath "$1")
new=$(realpath "$2")
model=$(realpath "$3")
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
train_rate() {
  "$1" bench train --threads 2 --batches 60 "${precision[@]}" --run.workdir "$tmp/run" 2>/dev/null |
    awk '/^BENCH train_target_tokens_per_s/ {print $3}'
}
translate_rate() {
  "$1" bench translate -m "$model" -i data/multi30k/test_2016_flickr.en.gz --beam-size 5 --threads 2 --runs 1 \
    2>/dev/null | awk '/^BENCH translate_sentences_per_s/ {print $3}'
}
declare -a old_train new_train old_tr new_tr
for ((r = 1; r <= runs; r++)); do
  old_train+=("$(train_rate "$old")")
  new_train+=("$(train_rate "$new")")
  old_tr+=("$(translate_rate "$old")")
  new_tr+=("$(translate_rate "$new")")
  echo "run $r: train ${old_train[-1]} -> ${new_train[-1]} tok/s; translate beam 5 ${old_tr[-1]} -> ${new_tr[-1]} sent/s" >&2
done
ot=$(median "${old_train[@]}"); nt=$(median "${new_train[@]}")
oc=$(median "${old_tr[@]}"); nc=$(median "${new_tr[@]}")
echo "BENCH train_target_tokens_per_s old $ot new $nt ratio $(echo "scale=3; $nt / $ot" | bc)"
echo "BENCH translate_beam5_sentences_per_s old $oc new $nc ratio $(echo "scale=3; $nc / $oc" | bc)"
