#!/usr/bin/env bash
# Translation speed of Gloss and of the PyTorch peer (../shared/peers/torch_s2s.py, the same
# model) on test_2016_flickr (1,000 sentences) at 2 threads, greedy and beam 5, measured in the
# same run, alternating, RUNS times each; prints the medians, their ratios and each output's
# BLEU (so that a speed-up that changes the translations shows).
# Gloss: MODEL (default runs/quick-en-de/model.best.gloss, trained by `gloss run
# recipes/quick-en-de.ini` if missing) with its defaults, in f32, and with the model's
# shortlist. The peer: a model trained for PEER_MINUTES (default 6, about the quick recipe's
# training time) once and kept in GLOSS_BENCH_CACHE (default ~/.cache/gloss-bench).
# Needs python3-torch, python3-sentencepiece and libopenblas0-openmp (see train_bench.sh).
# Usage: bash tests/bench/translate_bench.sh [MODEL] [RUNS] [PEER_SCRIPT]
set -euo pipefail
cd "$(dirname "$0")/../.."
model=${1:-runs/quick-en-de/model.best.gloss}
runs=${2:-3}
peer=${3:-../shared/peers/torch_s2s.py}
[ -f "$peer" ] || { echo "translate_bench.sh: no peer script at $peer; give its path as PEER_SCRIPT" >&2; exit 2; }
/usr/bin/python3 -c 'import torch, sentencepiece' 2>/dev/null || {
  echo "translate_bench.sh: the peer needs PyTorch: apt-get install python3-torch python3-sentencepiece libopenblas0-openmp" >&2
  exit 2
}
cache=${GLOSS_BENCH_CACHE:-$HOME/.cache/gloss-bench}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
ratio() { echo "scale=2; $1 / $2" | bc; }
[ -x build/gloss ] || bash scripts/build.sh >/dev/null
[ -f "$model" ] || build/gloss run recipes/quick-en-de.ini >/dev/null
d=data/multi30k
test_src=$d/test_2016_flickr.en.gz
mkdir -p "$cache" "$tmp/multi30k"
cp $d/*.gz "$tmp/multi30k/"
if [ ! -f "$cache/peer.pt" ]; then
  echo "training the peer for ${PEER_MINUTES:-6} minutes (once; kept in $cache)" >&2
  /usr/bin/python3 "$peer" --data "$tmp/multi30k" --spm-dir "$cache/peer-spm" --threads 2 \
    --minutes "${PEER_MINUTES:-6}" --save "$cache/peer.pt.tmp" >"$cache/peer-train.log" 2>&1
  mv "$cache/peer.pt.tmp" "$cache/peer.pt"
fi
# Gloss configurations: name and options. greedy and beam5 run with the defaults (precision
# auto: bf16 on CPUs with AVX512-BF16; the whole vocabulary); "f32" rows force f32; the
# "shortlist" row adds the shortlist stored in the model.
names=(greedy greedy_f32 beam5 beam5_f32 beam5_shortlist)
opts=("-b 1" "-b 1 --precision f32" "-b 5" "-b 5 --precision f32" "-b 5 --shortlist model")
declare -A rates
p1=() p5=()
for ((r = 1; r <= runs; r++)); do
  line="run $r: gloss"
  for i in "${!names[@]}"; do
    # shellcheck disable=SC2086
    rate=$(build/gloss bench translate -m "$model" -i "$test_src" --threads 2 --runs 1 ${opts[$i]/-b /--beam-size } 2>/dev/null |
      awk '/^BENCH translate_sentences_per_s/ {print $3}')
    rates[${names[$i]}]+="$rate "
    line+=" ${names[$i]} $rate,"
  done
  /usr/bin/python3 "$peer" --data "$tmp/multi30k" --spm-dir "$cache/peer-spm" --threads 2 --load "$cache/peer.pt" \
    --epochs 0 --beam 1 --out "$tmp/peer.1.de" --beam2 5 --out2 "$tmp/peer.5.de" >"$tmp/peer.log" 2>&1
  p1+=("$(awk '/^decode .* beam 1:/ {for (i = 1; i <= NF; i++) if ($i == "sent/s") print $(i - 1)}' "$tmp/peer.log" | sed 's/^=//')")
  p5+=("$(awk '/^decode .* beam 5:/ {for (i = 1; i <= NF; i++) if ($i == "sent/s") print $(i - 1)}' "$tmp/peer.log" | sed 's/^=//')")
  echo "$line pytorch greedy ${p1[-1]}, beam 5 ${p5[-1]} sent/s" >&2
done
# BLEU, chrF and words per output line of what was timed (the same options, written out once):
# a faster decoder must not buy speed with worse or shorter output.
ref=$tmp/ref.de
zcat $d/test_2016_flickr.de.gz >"$ref"
about() { echo "BLEU $(build/gloss eval "$ref" -i "$1" -b 2>/dev/null | tail -1), chrF $(build/gloss eval "$ref" -i "$1" -m chrf -b 2>/dev/null | tail -1), $(awk '{w += NF} END {printf "%.2f", w / NR}' "$1") words/line"; }
P1=$(median "${p1[@]}") P5=$(median "${p5[@]}")
for i in "${!names[@]}"; do
  n=${names[$i]}
  # shellcheck disable=SC2086
  build/gloss translate -m "$model" -i "$test_src" ${opts[$i]} -o "$tmp/$n.de" 2>/dev/null
  # shellcheck disable=SC2086
  G=$(median ${rates[$n]})
  echo "BENCH gloss_${n}_sentences_per_s $G sent/s ($(about "$tmp/$n.de"))"
  case $n in
    greedy*) echo "BENCH gloss_${n}_over_pytorch_greedy $(ratio "$G" "$P1") x" ;;
    *) echo "BENCH gloss_${n}_over_pytorch_beam5 $(ratio "$G" "$P5") x" ;;
  esac
done
echo "BENCH pytorch_greedy_sentences_per_s $P1 sent/s ($(about "$tmp/peer.1.de"))"
echo "BENCH pytorch_beam5_sentences_per_s $P5 sent/s ($(about "$tmp/peer.5.de"))"
