#!/usr/bin/env bash
# End-to-end checks of `gloss recipe`, `gloss spm` and `gloss data` as a user runs them.
# Usage: data_cli_test.sh GLOSS_BINARY SOURCE_DIR
set -uo pipefail
gloss=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/lib.sh"

# A small recipe over the bundled validation set, with an override file.
cat >"$tmp/base.ini" <<INI
[data]
train_src = $src/data/multi30k/val.en.gz
train_tgt = $src/data/multi30k/val.de.gz
src_lang = en
tgt_lang = de
[subword]
vocab_size = 500
INI
printf 'include = base.ini\n[train]\nbatch_size = 16\n' >"$tmp/small.ini"

"$gloss" recipe check "$tmp/small.ini" | grep -q "^ok: " && pass || fail "recipe check"
"$gloss" recipe show "$tmp/small.ini" --train.epochs 2 >"$tmp/show"
grep -q "^batch_size = 16 .*# $tmp/small.ini:3" "$tmp/show" && pass || fail "show: file origin"
grep -q "^epochs = 2 .*# command line" "$tmp/show" && pass || fail "show: command-line origin"
"$gloss" spm --help | grep -q -- "--subword.vocab_size" && pass || fail "spm --help lists recipe keys"
# A recipe through a pipe (bash's <(...), /dev/fd/N) or a named pipe: read once, as it comes.
"$gloss" recipe check <(printf 'include = %s\n[train]\nbatch_size = 16\n' "$tmp/base.ini") 2>"$tmp/err" | grep -q "^ok: " \
  && pass || fail "recipe through <(...): $(cat "$tmp/err")"
mkfifo "$tmp/fifo.ini"
cat "$tmp/small.ini" >"$tmp/fifo.ini" &
timeout 20 "$gloss" recipe check "$tmp/fifo.ini" 2>"$tmp/err" | grep -q "^ok: " && pass || fail "recipe from a FIFO: $(cat "$tmp/err")"

# Training, then reuse from the cache.
"$gloss" spm train "$tmp/small.ini" --run.workdir "$tmp/run" >"$tmp/models" 2>"$tmp/log1" || fail "spm train"
[ "$(wc -l <"$tmp/models")" -eq 2 ] && pass || fail "spm train prints two model paths"
"$gloss" spm train "$tmp/small.ini" --run.workdir "$tmp/run" >"$tmp/models2" 2>"$tmp/log2"
cmp -s "$tmp/models" "$tmp/models2" && grep -q "reusing" "$tmp/log2" && pass || fail "second spm train reuses"
model=$(tail -1 "$tmp/models")

# Encode and decode: one output line per input line, empty lines included, exact round trip.
printf 'Ein Hund läuft.\n\nZwei Männer, 5€ 😀\n' >"$tmp/in.de"
"$gloss" spm encode -m "$model" -i "$tmp/in.de" --ids | "$gloss" spm decode -m "$model" --ids >"$tmp/back.de"
cmp -s "$tmp/in.de" "$tmp/back.de" && pass || fail "encode/decode ids round trip: $(cat "$tmp/back.de")"
"$gloss" spm encode -m "$model" -i "$tmp/in.de" -o "$tmp/pieces.de" && [ "$(wc -l <"$tmp/pieces.de")" -eq 3 ] && pass || fail "encode to a file"
"$gloss" spm encode -m "$model" -i "$tmp/in.de" -o "$tmp/pieces.de.gz" && gzip -dc "$tmp/pieces.de.gz" | cmp -s - "$tmp/pieces.de" \
  && pass || fail "encode to a .gz file: gzip of the same lines"

# gloss data reports filtering and batches.
"$gloss" data "$tmp/small.ini" --run.workdir "$tmp/run" >"$tmp/data" 2>/dev/null || fail "gloss data"
grep -q "^train: 1014 pairs read" "$tmp/data" && grep -q "^batches (epoch 1): " "$tmp/data" && pass || fail "data report: $(cat "$tmp/data")"
# The encoded corpus goes to unnamed files in data.tempdir: reported, and nothing left behind.
mkdir "$tmp/corpus"
"$gloss" data "$tmp/small.ini" --run.workdir "$tmp/run" --data.tempdir "$tmp/corpus" >"$tmp/data2" 2>/dev/null || fail "gloss data with data.tempdir"
grep -q "MB on disk in unnamed files in $tmp/corpus (data.tempdir)" "$tmp/data2" && [ -z "$(ls -A "$tmp/corpus")" ] && pass ||
  fail "data.tempdir: $(grep '^encoded' "$tmp/data2"); left: $(ls -A "$tmp/corpus")"
expect_error "unwritable tempdir" "$tmp/none: cannot create the encoded training corpus there" -- "$gloss" data "$tmp/small.ini" --run.workdir "$tmp/run" --data.tempdir "$tmp/none"

# Errors: one line, exit 2, naming file/line/key.
printf 'include = base.ini\n[train]\nlrate = 1\n' >"$tmp/bad.ini"
expect_error "unknown key" "bad.ini:3: unknown key 'lrate' in [train]; did you mean 'lr'?" -- "$gloss" recipe check "$tmp/bad.ini"
# A model file, checkpoint or other binary file given as the recipe (magic bytes are enough).
printf 'GLOSSMDL\6\0\0\0\247' >"$tmp/m.gloss"
printf 'GLOSSCKP\7\0\0\0\220' >"$tmp/c.gckpt"
printf '[train]\nlr = 0.001\0junk\n' >"$tmp/nul.ini"
expect_error "model as recipe" "m.gloss: is a Gloss model file, not a recipe; translate with it" -- "$gloss" run "$tmp/m.gloss"
expect_error "checkpoint as recipe" "c.gckpt: is a Gloss training checkpoint, not a recipe" -- "$gloss" train "$tmp/c.gckpt"
expect_error "NUL in recipe" "nul.ini:2: has a NUL byte: a binary file, not a recipe" -- "$gloss" recipe check "$tmp/nul.ini"
expect_error "bad value" "--train.lr must be > 0" -- "$gloss" recipe check "$tmp/small.ini" --train.lr 0
head -c 300 "$src/tests/data/bleu/inputs/val.de.ref.txt" >"$tmp/short.de"
expect_error "line mismatch" "no matching line in" -- "$gloss" data "$tmp/small.ini" --run.workdir "$tmp/run" --data.train_tgt "$tmp/short.de"
printf 'ok\n\xff\n' >"$tmp/latin1.txt"
expect_streaming_error "invalid utf-8" "latin1.txt:2: invalid UTF-8" -- "$gloss" spm encode -m "$model" -i "$tmp/latin1.txt"
expect_error "not a model" "not a SentencePiece model" -- "$gloss" spm encode -m "$tmp/in.de" -i "$tmp/in.de"
expect_error "model through a pipe" "is a pipe or device, which can be read only once" -- \
  "$gloss" spm encode -m <(cat "$model") -i "$tmp/in.de"

finish
