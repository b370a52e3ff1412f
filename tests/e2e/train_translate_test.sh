#!/usr/bin/env bash
# End to end: gloss train on a small corpus (a tiny model), kill -9 in the middle and resume to
# the same model, then gloss translate: line counts, n-best format, batch-size invariance.
# Usage: train_translate_test.sh GLOSS_BINARY SOURCE_DIR
set -uo pipefail
gloss=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/lib.sh"

d=$src/data/multi30k
args=(--data.train_src "$d/val.en.gz" --data.train_tgt "$d/val.de.gz"
      --data.valid_src "$d/test_2016_flickr.en.gz" --data.valid_tgt "$d/test_2016_flickr.de.gz"
      --subword.vocab_size 400 --model.emb_dim 16 --model.enc_hidden 16 --model.dec_hidden 24
      --model.att_dim 16 --model.readout_dim 16 --train.batch_size 32 --train.valid_every 5
      --train.max_steps 40 --train.threads 2 --decode.max_len_ratio 1.5 --run.workdir "$tmp/run")

# Uninterrupted run.
"$gloss" train "${args[@]}" >"$tmp/out1" 2>"$tmp/log1" || fail "train exit $?: $(tail -3 "$tmp/log1")"
best=$(tail -1 "$tmp/out1")
[ "$best" = "$tmp/run/model.best.gloss" ] && [ -s "$best" ] && pass || fail "last stdout line is the best model: $best"
grep -q "tok/s" "$tmp/log1" && grep -q "validation: ce" "$tmp/log1" && pass || fail "progress and validation on stderr"
cp "$tmp/run/model.best.gloss" "$tmp/uninterrupted.gloss"
rm -rf "$tmp/run"

# Killed with SIGKILL after its second checkpoint, then the same command again.
"$gloss" train "${args[@]}" >/dev/null 2>"$tmp/log2" &
pid=$!
for _ in $(seq 1 600); do
  if [ "$(grep -c 'validation: ce' "$tmp/log2" 2>/dev/null)" -ge 2 ]; then break; fi
  sleep 0.1
done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
"$gloss" train "${args[@]}" >"$tmp/out3" 2>"$tmp/log3" || fail "resumed train exit $?"
grep -q "resuming from" "$tmp/log3" && pass || fail "second run resumes: $(head -5 "$tmp/log3")"
cmp -s "$tmp/run/model.best.gloss" "$tmp/uninterrupted.gloss" && pass || fail "resumed model differs from the uninterrupted one"

# Translation.
model=$tmp/run/model.best.gloss
printf 'A man rides a bike.\n\nTwo dogs play.\nbad \xff byte\n   \n' >"$tmp/in.en"
"$gloss" translate -m "$model" -i "$tmp/in.en" -o "$tmp/out.de" 2>"$tmp/tlog" || fail "translate exit $?"
[ "$(wc -l <"$tmp/out.de")" -eq 5 ] && pass || fail "one output line per input line"
grep -q "in.en:4: invalid UTF-8" "$tmp/tlog" && pass || fail "warning names the invalid line"
"$gloss" translate -m "$model" -i "$tmp/in.en" --beam-size 3 --n-best 2 >"$tmp/nbest" 2>/dev/null
[ "$(wc -l <"$tmp/nbest")" -eq 10 ] && ! grep -qvE '^[0-9]+ \|\|\| .* \|\|\| -?[0-9]+\.[0-9]{4}$' "$tmp/nbest" && pass || fail "n-best format: $(head -3 "$tmp/nbest")"
zcat "$d/test_2016_flickr.en.gz" | head -150 >"$tmp/t.en"
"$gloss" translate -m "$model" -i "$tmp/t.en" --batch-size 1 -b 4 >"$tmp/b1" 2>/dev/null
"$gloss" translate -m "$model" -i "$tmp/t.en" --batch-size 64 -b 4 >"$tmp/b64" 2>/dev/null
cmp -s "$tmp/b1" "$tmp/b64" && pass || fail "batch size 1 and 64 give different translations"
"$gloss" eval <(zcat "$d/test_2016_flickr.de.gz" | head -150) -i "$tmp/b64" -b >/dev/null && pass || fail "eval of the output"

# The translation benchmark prints its figures.
"$gloss" bench translate -m "$model" -i "$tmp/t.en" --beam-size 2 --runs 1 2>/dev/null | grep -qE '^BENCH translate_sentences_per_s [0-9.]+ sent/s$' && pass || fail "bench translate"

# Errors: a directory where a file belongs; a file that is not a model.
expect_error "directory input" "is a directory; give a file" -- "$gloss" translate -m "$model" -i "$tmp"
expect_error "directory model" "is a directory; give a file" -- "$gloss" translate -m "$tmp" -i "$tmp/in.en"
"$gloss" translate -m "$tmp/in.en" -i "$tmp/in.en" >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "is not a Gloss model" "$tmp/err" && pass || fail "not-a-model error: $(cat "$tmp/err")"

finish
