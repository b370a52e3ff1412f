#!/usr/bin/env bash
# Translation speed of Gloss and of the PyTorch peer (../shared/peers/torch_s2s.py, the same
# model) on test_2016_flickr (1,000 sentences) at 2 threads, greedy and beam 5, measured in the
# same run, alternating, RUNS times each; prints the medians, their ratios and each output's
# BLEU (so that a speed-up that changes the translations shows).
# Gloss: MODEL (default runs/quick-en-de/model.best.gloss, trained by `gloss run
# recipes/quick-en-de.ini` if missing), also with a lexical shortlist built from the training
# data. The peer: a model trained for PEER_MINUTES (default 6, about the quick recipe's
# training time) once and kept in GLOSS_BENCH_CACHE (default ~/.cache/gloss-bench).
# Needs python3-torch, python3-sentencepiece and libopenblas0-openmp (see train_bench.sh).
# Usage: bash tests/bench/translate_bench.sh [MODEL] [RUNS] [PEER_SCRIPT]
set -euo pipefail
cd "$(dirname "$0")/../.."
model=${1:-runs/quick-en-de/model.best.gloss}
runs=${2:-3}
peer=${3:-../shared/peers/torch_s2s.py}
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
build/gloss shortlist -m "$model" -s $d/train.en.gz -t $d/train.de.gz -o "$tmp/shortlist.txt" >/dev/null 2>&1

gloss_rate() {  # beam, extra options...
  local beam=$1
  shift
  build/gloss bench translate -m "$model" -i "$test_src" --beam-size "$beam" --threads 2 --runs 1 "$@" 2>/dev/null |
    awk '/^BENCH translate_sentences_per_s/ {print $3}'
}
g1=() g5=() gs=() gb=() gbs=() p1=() p5=()
for ((r = 1; r <= runs; r++)); do
  g1+=("$(gloss_rate 1)")
  g5+=("$(gloss_rate 5)")
  gs+=("$(gloss_rate 5 --shortlist "$tmp/shortlist.txt")")
  gb+=("$(gloss_rate 5 --precision bf16)")
  gbs+=("$(gloss_rate 5 --precision bf16 --shortlist "$tmp/shortlist.txt")")
  /usr/bin/python3 "$peer" --data "$tmp/multi30k" --spm-dir "$cache/peer-spm" --threads 2 --load "$cache/peer.pt" \
    --epochs 0 --beam 1 --out "$tmp/peer.1.de" --beam2 5 --out2 "$tmp/peer.5.de" >"$tmp/peer.log" 2>&1
  p1+=("$(awk '/^decode .* beam 1:/ {for (i = 1; i <= NF; i++) if ($i == "sent/s") print $(i - 1)}' "$tmp/peer.log" | sed 's/^=//')")
  p5+=("$(awk '/^decode .* beam 5:/ {for (i = 1; i <= NF; i++) if ($i == "sent/s") print $(i - 1)}' "$tmp/peer.log" | sed 's/^=//')")
  echo "run $r: gloss greedy ${g1[-1]}, beam 5 ${g5[-1]}, beam 5 + shortlist ${gs[-1]}, beam 5 bf16 ${gb[-1]}, bf16 + shortlist ${gbs[-1]}; pytorch greedy ${p1[-1]}, beam 5 ${p5[-1]} sent/s" >&2
done
# BLEU of what was timed (the same options, written out once).
ref=$tmp/ref.de
zcat $d/test_2016_flickr.de.gz >"$ref"
build/gloss translate -m "$model" -i "$test_src" -b 1 -o "$tmp/g1.de" 2>/dev/null
build/gloss translate -m "$model" -i "$test_src" -b 5 -o "$tmp/g5.de" 2>/dev/null
build/gloss translate -m "$model" -i "$test_src" -b 5 --shortlist "$tmp/shortlist.txt" -o "$tmp/gs.de" 2>/dev/null
build/gloss translate -m "$model" -i "$test_src" -b 5 --precision bf16 -o "$tmp/gb.de" 2>/dev/null
build/gloss translate -m "$model" -i "$test_src" -b 5 --precision bf16 --shortlist "$tmp/shortlist.txt" -o "$tmp/gbs.de" 2>/dev/null
# BLEU, chrF and words per output line: a faster decoder must not buy speed with shorter output.
about() { echo "BLEU $(build/gloss eval "$ref" -i "$1" -b 2>/dev/null | tail -1), chrF $(build/gloss eval "$ref" -i "$1" -m chrf -b 2>/dev/null | tail -1), $(awk '{w += NF} END {printf "%.2f", w / NR}' "$1") words/line"; }
G1=$(median "${g1[@]}") G5=$(median "${g5[@]}") GS=$(median "${gs[@]}") GB=$(median "${gb[@]}") GBS=$(median "${gbs[@]}")
P1=$(median "${p1[@]}") P5=$(median "${p5[@]}")
echo "BENCH gloss_greedy_sentences_per_s $G1 sent/s ($(about "$tmp/g1.de"))"
echo "BENCH gloss_beam5_sentences_per_s $G5 sent/s ($(about "$tmp/g5.de"))"
echo "BENCH gloss_beam5_shortlist_sentences_per_s $GS sent/s ($(about "$tmp/gs.de"))"
echo "BENCH gloss_beam5_bf16_sentences_per_s $GB sent/s ($(about "$tmp/gb.de"))"
echo "BENCH gloss_beam5_bf16_shortlist_sentences_per_s $GBS sent/s ($(about "$tmp/gbs.de"))"
echo "BENCH pytorch_greedy_sentences_per_s $P1 sent/s ($(about "$tmp/peer.1.de"))"
echo "BENCH pytorch_beam5_sentences_per_s $P5 sent/s ($(about "$tmp/peer.5.de"))"
echo "BENCH gloss_over_pytorch_greedy $(ratio "$G1" "$P1") x"
echo "BENCH gloss_over_pytorch_beam5 $(ratio "$G5" "$P5") x"
echo "BENCH gloss_shortlist_over_pytorch_beam5 $(ratio "$GS" "$P5") x"
echo "BENCH gloss_bf16_over_pytorch_beam5 $(ratio "$GB" "$P5") x"
echo "BENCH gloss_bf16_shortlist_over_pytorch_beam5 $(ratio "$GBS" "$P5") x"
