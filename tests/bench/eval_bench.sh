#!/usr/bin/env bash
# Benchmark: `gloss eval -m bleu chrf` on Multi30k train.de (29,000 lines) against a
# deterministic perturbed copy (dropped, swapped and lower-cased words). Prints the median
# wall time and peak resident memory of 5 runs, plus the scores.
# Reference point, same machine kind: sacreBLEU 2.6.0 takes 15.4 s and 980 MB.
# Usage: bash tests/bench/eval_bench.sh [GLOSS_BINARY] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
gloss=${1:-build/gloss}
runs=${2:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

zcat data/multi30k/train.de.gz >"$tmp/ref.de"
awk '{
  n = split($0, w, " "); out = ""
  for (j = 1; j <= n; j++) {
    if ((NR * 7 + j) % 11 == 0) continue                                   # drop
    if ((NR + j) % 13 == 0 && j < n) { t = w[j]; w[j] = w[j + 1]; w[j + 1] = t }  # swap
    word = w[j]; if ((NR + j) % 17 == 0) word = tolower(word)              # lower-case
    out = out (out == "" ? "" : " ") word
  }
  print out
}' "$tmp/ref.de" >"$tmp/hyp.de"
echo "lines: $(wc -l <"$tmp/ref.de") reference, $(wc -l <"$tmp/hyp.de") hypothesis" >&2

"$gloss" eval "$tmp/ref.de" -i "$tmp/hyp.de" -m bleu chrf >&2
times=()
mems=()
for ((r = 0; r < runs; r++)); do
  /usr/bin/time -f "%e %M" -o "$tmp/time" "$gloss" eval "$tmp/ref.de" -i "$tmp/hyp.de" -m bleu chrf >/dev/null
  read -r t m <"$tmp/time"
  times+=("$t")
  mems+=("$m")
  echo "run $((r + 1)): ${t} s, $((m / 1024)) MB" >&2
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
echo "BENCH eval_bleu_chrf_29k_seconds $(median "${times[@]}") s"
echo "BENCH eval_bleu_chrf_29k_peak_rss $(( $(median "${mems[@]}") / 1024 )) MB"
