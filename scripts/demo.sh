#!/usr/bin/env bash
# Quick start, first command: install what is missing, build, then the main job on the bundled
# Multi30k data: train the quick English->German recipe, translate test_2016_flickr with
# beam 5, and score it (BLEU, chrF, TER). A second run reuses the trained model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh >/dev/null
recipe=recipes/quick-en-de.ini
workdir=runs/quick-en-de
test_src=data/multi30k/test_2016_flickr.en.gz
test_ref=data/multi30k/test_2016_flickr.de.gz
echo "== gloss train $recipe   (progress below; resumes if interrupted)" >&2
model=$(./build/gloss train "$recipe" --run.workdir "$workdir" | tail -n 1)
echo "== gloss translate -m $model -i $test_src --beam-size 5" >&2
./build/gloss translate -m "$model" -i "$test_src" -o "$workdir/test_2016_flickr.de" --beam-size 5
echo "== gloss eval $test_ref -i $workdir/test_2016_flickr.de -m bleu chrf ter" >&2
./build/gloss eval "$test_ref" -i "$workdir/test_2016_flickr.de" -m bleu chrf ter
