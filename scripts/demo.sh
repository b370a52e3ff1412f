#!/usr/bin/env bash
# Quick start, first command: install what is missing, build, then the main job on the bundled
# Multi30k data: `gloss run recipes/quick-en-de.ini` trains the quick English->German model,
# translates test_2016_flickr with beam 5, scores BLEU and chrF, and prints the report (also in
# runs/quick-en-de/report.md). A second run reuses every stage and takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh >/dev/null
echo "== gloss run recipes/quick-en-de.ini   (progress below; resumes if interrupted)" >&2
./build/gloss run recipes/quick-en-de.ini
