#!/usr/bin/env bash
# Quick start, first command: install what is missing, build, and run the main job on the
# bundled data. (Until training lands: score a bundled hypothesis file against its reference.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh >/dev/null
ref=tests/data/bleu/inputs/val.de.ref.txt
hyp=tests/data/bleu/inputs/val.de.mixed.txt
echo "\$ gloss eval $ref -i $hyp -m bleu chrf ter" >&2
./build/gloss eval "$ref" -i "$hyp" -m bleu chrf ter
