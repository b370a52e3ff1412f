#!/usr/bin/env bash
# Records what a Gloss build does, so that a refactoring can be shown to change nothing:
#   bash tests/behaviour/snapshot.sh GLOSS_BINARY OUT_DIR
# trains recipes/quick-en-de.ini (same seed and threads; the time limit off, so the epochs alone
# decide where training stops) and translates test_2016_flickr with the trained model: greedy,
# beam 5, --n-best 5, beam 5 with alignments and word scores, an ensemble of two checkpoints,
# a lexical shortlist and (where the CPU has AVX512-BF16) --precision bf16. About 10 minutes on
# 2 cores. Then compare two snapshots with tests/behaviour/compare.sh A B.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: snapshot.sh GLOSS_BINARY OUT_DIR" >&2; exit 2; }
gloss=$(realpath "$1")
out=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
out=$(realpath "$out")
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
cd "$root"
test_en=data/multi30k/test_2016_flickr.en.gz
train_en=data/multi30k/train.en.gz
train_de=data/multi30k/train.de.gz

# Training runs in one fixed folder (its path is stored in the model files' recipe text, so
# two snapshots' files can be compared byte for byte), then moves into OUT_DIR: take one
# snapshot at a time.
work=${TMPDIR:-/tmp}/gloss-behaviour-run
rm -rf "$work" "$out/run"
echo "snapshot: training recipes/quick-en-de.ini in $work" >&2
"$gloss" run recipes/quick-en-de.ini --train.max_minutes 0 --run.workdir "$work" >"$out/run-report.md"
mv "$work" "$out/run"
model=$out/run/model.best.gloss
# Two checkpoints of the run as models, for the ensemble.
mapfile -t ckpts < <(ls "$out"/run/checkpoint.[0-9]*.gckpt | sort -V | tail -2)
[ ${#ckpts[@]} -eq 2 ] || { echo "snapshot: expected two checkpoints in $out/run" >&2; exit 1; }
"$gloss" average -o "$out/ckpt-a.gloss" "${ckpts[0]}" >/dev/null
"$gloss" average -o "$out/ckpt-b.gloss" "${ckpts[1]}" >/dev/null

translate() {  # NAME [options...]
  local name=$1
  shift
  echo "snapshot: translate $name" >&2
  "$gloss" translate -i "$test_en" -o "$out/$name.de" "$@" 2>/dev/null
}
translate greedy -m "$model" --beam-size 1
translate beam5 -m "$model" --beam-size 5
translate nbest5 -m "$model" --beam-size 5 --n-best 5
translate beam5-rich -m "$model" --beam-size 5 --alignment hard --word-scores --attention "$out/attention.svg"
translate ensemble -m "$out/ckpt-a.gloss" "$out/ckpt-b.gloss" --beam-size 5
"$gloss" shortlist -m "$model" -s "$train_en" -t "$train_de" -o "$out/shortlist.bin" 2>/dev/null >/dev/null
translate shortlist -m "$model" --beam-size 5 --shortlist "$out/shortlist.bin"
if grep -q avx512_bf16 /proc/cpuinfo; then
  translate bf16 -m "$model" --beam-size 5 --precision bf16
else
  echo "snapshot: no AVX512-BF16 on this CPU: bf16 skipped" >&2
fi
echo "snapshot: done: $out" >&2
