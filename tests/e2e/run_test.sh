#!/usr/bin/env bash
# End to end: gloss run on a small recipe (a tiny model): report on stdout and in the run
# folder, a second run reuses every stage, a changed decode key retranslates only (decode.n_best
# also writes n-best lists), a changed
# model key retrains (old files kept in previous/1/, previous/2/, ...); gloss plot draws the curves.
# Usage: run_test.sh GLOSS_BINARY SOURCE_DIR
set -uo pipefail
gloss=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/lib.sh"

d=$src/data/multi30k
cat >"$tmp/tiny.ini" <<INI
# A tiny en-de recipe for the test.
[data]
train_src = $d/val.en.gz
train_tgt = $d/val.de.gz
valid_src = $d/test_2016_flickr.en.gz
valid_tgt = $d/test_2016_flickr.de.gz
test_src = $d/test_2016_flickr.en.gz
test_tgt = $d/test_2016_flickr.de.gz
src_lang = en
tgt_lang = de
[subword]
vocab_size = 400
[model]
emb_dim = 16
enc_hidden = 16
dec_hidden = 24
att_dim = 16
readout_dim = 16
[train]
batch_size = 32
valid_every = 10
max_steps = 30
[decode]
beam_size = 2
max_len_ratio = 1.5
[eval]
metrics = bleu chrf
[run]
workdir = $tmp/run
INI

"$gloss" run "$tmp/tiny.ini" >"$tmp/report1" 2>"$tmp/log1" || fail "run exit $?: $(tail -3 "$tmp/log1")"
grep -q "^# Gloss run report: tiny.ini" "$tmp/report1" && pass || fail "report on stdout: $(head -3 "$tmp/report1")"
grep -qF '| BLEU |' "$tmp/report1" && grep -qE '^\| test_2016_flickr \| 1000 \| 2 \| BLEU \| [0-9]+\.[0-9] \| `nrefs:1\\\|case:mixed\\\|eff:no\\\|tok:13a\\\|smooth:exp\\\|version:2\.6\.0` \|$' "$tmp/report1" \
  && pass || fail "BLEU row with signature: $(grep BLEU "$tmp/report1")"
grep -qE '^\| test_2016_flickr .* chrF2 ' "$tmp/report1" && pass || fail "chrF row"
for f in report.md report.json curves.svg test_2016_flickr.de model.best.gloss; do
  [ -s "$tmp/run/$f" ] && pass || fail "run folder has $f"
done
cmp -s "$tmp/report1" "$tmp/run/report.md" && pass || fail "report.md is what was printed"
[ "$(wc -l <"$tmp/run/test_2016_flickr.de")" -eq 1000 ] && pass || fail "one translation per test line"
# The report's BLEU is gloss eval's on the same files.
bleu=$("$gloss" eval "$d/test_2016_flickr.de.gz" -i "$tmp/run/test_2016_flickr.de" -b -m bleu)
grep -q "| BLEU | $bleu |" "$tmp/report1" && pass || fail "report BLEU equals gloss eval's ($bleu)"
python3 - "$tmp/run/report.json" "$tmp/run/curves.svg" <<'PY' && pass || fail "report.json fields and a well-formed SVG"
import json, sys, xml.etree.ElementTree as ET
r = json.load(open(sys.argv[1]))
assert r["training"]["steps"] == 30 and r["training"]["best_step"] in (10, 20, 30), r["training"]
assert r["data"]["train_pairs_read"] == 1014 and r["model"]["parameters"] > 0
assert r["tests"][0]["scores"][0]["name"] == "BLEU" and len(r["recipe_fingerprint"]) == 16
root = ET.parse(sys.argv[2]).getroot()
assert root.tag.endswith("svg") and len([e for e in root.iter() if e.tag.endswith("polyline")]) == 4
PY

# Second run: everything reused, same report figures.
start=$(date +%s.%N)
"$gloss" run "$tmp/tiny.ini" >"$tmp/report2" 2>"$tmp/log2" || fail "second run exit $?"
grep -q "is up to date" "$tmp/log2" && ! grep -q "train: epoch" "$tmp/log2" && pass || fail "second run reuses: $(cat "$tmp/log2")"
diff <(grep '^|' "$tmp/report1") <(grep '^|' "$tmp/report2") >/dev/null && pass || fail "same scores on the second run"

# A decode key changed: retranslated, not retrained.
"$gloss" run "$tmp/tiny.ini" --decode.beam_size 1 >"$tmp/report3" 2>"$tmp/log3" || fail "third run exit $?"
! grep -q "is up to date" "$tmp/log3" && ! grep -q "train: epoch" "$tmp/log3" && grep -q '| test_2016_flickr | 1000 | 1 |' "$tmp/report3" \
  && pass || fail "decode change retranslates only"
# decode.n_best: the 1-best is scored; the n-best lists (distinct, up to 3 a line) go to <output>.nbest.
"$gloss" run "$tmp/tiny.ini" --decode.beam_size 3 --decode.n_best 3 >"$tmp/report_nb" 2>"$tmp/log_nb" || fail "n-best run exit $?"
nb=$tmp/run/test_2016_flickr.de.nbest
[ "$(wc -l <"$tmp/run/test_2016_flickr.de")" -eq 1000 ] && [ -s "$nb" ] && pass || fail "n-best run: 1-best output and $nb"
[ "$(cut -d' ' -f1 "$nb" | sort -un | wc -l)" -eq 1000 ] && [ -z "$(cut -d' ' -f1 "$nb" | uniq -c | awk '$1 > 3')" ] \
  && [ -z "$(sort "$nb" | uniq -d)" ] && pass || fail "n-best lists: every line, at most 3, no repeats"
diff <(awk -F' \\|\\|\\| ' '!seen[$1]++ { print $2 }' "$nb") "$tmp/run/test_2016_flickr.de" >/dev/null \
  && pass || fail "the scored output is each list's first hypothesis"
grep -q '3-best lists of test_2016_flickr: .*test_2016_flickr.de.nbest' "$tmp/report_nb" && pass || fail "report names the n-best file"
# run.average_last: the test set is translated with the average of the last checkpoints.
"$gloss" run "$tmp/tiny.ini" --run.average_last 2 >"$tmp/report_avg" 2>"$tmp/log_avg" || fail "average run exit $?"
[ -s "$tmp/run/model.avg.gloss" ] && grep -q "averaging checkpoints 20, 30 into" "$tmp/log_avg" \
  && grep -q "translated with the average of the last 2 checkpoints (steps 20, 30)" "$tmp/report_avg" \
  && ! grep -q "train: epoch" "$tmp/log_avg" && pass || fail "average of the last 2 checkpoints: $(tail -3 "$tmp/log_avg")"
expect_error "average_last above keep_last" "run.average_last needs train.keep_last >= run.average_last (3 > 2)" -- \
  "$gloss" run "$tmp/tiny.ini" --run.average_last 3
# run.seeds: one model per seed (one set of subword models), translated as an ensemble.
"$gloss" run "$tmp/tiny.ini" --run.seeds "3 4" --run.workdir "$tmp/ens" --train.max_steps 10 >"$tmp/report_ens" 2>"$tmp/log_ens" \
  || fail "ensemble run exit $?: $(tail -3 "$tmp/log_ens")"
[ -s "$tmp/ens/seed-3/model.best.gloss" ] && [ -s "$tmp/ens/seed-4/model.best.gloss" ] && [ -d "$tmp/ens/spm" ] \
  && [ ! -e "$tmp/ens/seed-3/spm" ] && ! cmp -s "$tmp/ens/seed-3/model.best.gloss" "$tmp/ens/seed-4/model.best.gloss" \
  && pass || fail "a model per seed, shared subword models: $(ls "$tmp/ens" "$tmp/ens/seed-3")"
grep -q "translated with an ensemble of 2 models" "$tmp/report_ens" && grep -q "Ensemble of 2 seeds" "$tmp/report_ens" \
  && [ "$(wc -l <"$tmp/ens/test_2016_flickr.de")" -eq 1000 ] && pass || fail "ensemble report: $(grep -i ensemble "$tmp/report_ens")"
"$gloss" translate -m "$tmp/ens/seed-3/model.best.gloss" "$tmp/ens/seed-4/model.best.gloss" -b 2 --max-len-ratio 1.5 \
  -i "$d/test_2016_flickr.en.gz" 2>/dev/null | cmp -s - "$tmp/ens/test_2016_flickr.de" && pass || fail "the ensemble's translation"
expect_error "bad seed list" "run.seeds 'x' is not a seed" -- "$gloss" run "$tmp/tiny.ini" --run.seeds "1 x"
# More steps: training continues from the checkpoint.
"$gloss" run "$tmp/tiny.ini" --train.max_steps 40 >/dev/null 2>"$tmp/log4" || fail "fourth run exit $?"
grep -q "resuming from" "$tmp/log4" && grep -q "train: epoch .* step 40" "$tmp/log4" && pass || fail "longer training continues"
# A model key changed: the old run moves to previous/1/, training starts again; a second change
# keeps both earlier runs (issue 14, defect 8: the first run's model was deleted).
"$gloss" run "$tmp/tiny.ini" --model.dec_hidden 20 --train.max_steps 10 >/dev/null 2>"$tmp/log5" || fail "fifth run exit $?"
grep -q "training starts again" "$tmp/log5" && [ -s "$tmp/run/previous/1/model.best.gloss" ] && ! grep -q "resuming from" "$tmp/log5" \
  && pass || fail "model change retrains: $(head -3 "$tmp/log5")"
cp "$tmp/run/previous/1/model.best.gloss" "$tmp/first.gloss"
"$gloss" run "$tmp/tiny.ini" --model.dec_hidden 22 --train.max_steps 10 >/dev/null 2>"$tmp/log6" || fail "sixth run exit $?"
cmp -s "$tmp/first.gloss" "$tmp/run/previous/1/model.best.gloss" && [ -s "$tmp/run/previous/2/model.best.gloss" ] \
  && grep -q "previous/2, training starts again" "$tmp/log6" && pass || fail "both earlier runs kept: $(ls -R "$tmp/run/previous")"

# A case-folding subword model writes lowercase; the test is scored case-insensitively (-lc).
"$gloss" run "$tmp/tiny.ini" --subword.normalization nmt_nfkc_cf --subword.sample_nbest 4 --train.max_steps 10 \
  --run.workdir "$tmp/lc" >"$tmp/report_lc" 2>"$tmp/log_lc" || fail "lowercase run exit $?: $(tail -3 "$tmp/log_lc")"
grep -q 'case:lc' "$tmp/report_lc" && ! grep -q '[[:upper:]]' "$tmp/lc/test_2016_flickr.de" \
  && pass || fail "lowercase model, case-insensitive score: $(grep BLEU "$tmp/report_lc")"
bleu=$("$gloss" eval "$d/test_2016_flickr.de.gz" -i "$tmp/lc/test_2016_flickr.de" -b -m bleu -lc)
grep -q "| BLEU | $bleu |" "$tmp/report_lc" && pass || fail "report BLEU equals gloss eval -lc's ($bleu)"
grep -q "train: subword sampling: " "$tmp/log_lc" && pass || fail "subword sampling announced"
expect_error "sampling needs unigram" "subword.sample_nbest" -- \
  "$gloss" run "$tmp/tiny.ini" --subword.model_type bpe --subword.sample_nbest 4 --run.workdir "$tmp/never"

# gloss plot
"$gloss" plot "$tmp/run/metrics.jsonl" -o "$tmp/c.svg" >/dev/null 2>&1 && grep -q "<polyline" "$tmp/c.svg" && pass || fail "gloss plot"
printf '{"step": 1}\nnot json\n' >"$tmp/bad.jsonl"
expect_error "bad metrics line" "bad.jsonl:2: is not a metrics line" -- "$gloss" plot "$tmp/bad.jsonl"
expect_error "plot to .png" "c.png: the curves are drawn as SVG; give a file name ending in .svg" -- \
  "$gloss" plot "$tmp/run/metrics.jsonl" -o "$tmp/c.png"
[ ! -e "$tmp/c.png" ] && pass || fail "gloss plot -o c.png wrote a file"
# Hostile values end in an error or a bounded plot, never an endless loop (issue 14, defect 5).
printf '{"step": 1}\n{"step": -5}\n' >"$tmp/neg.jsonl"
expect_error "negative step" "neg.jsonl:2: step -5 is not an integer in 0..1000000000000" -- timeout 20 "$gloss" plot "$tmp/neg.jsonl"
printf '{"step": 9000000000000000000}\n' >"$tmp/huge.jsonl"
expect_error "huge step" "huge.jsonl:1: step 9000000000000000000 is not an integer" -- timeout 20 "$gloss" plot "$tmp/huge.jsonl"
# Found by the metrics fuzzer: a step beyond long long was converted (undefined behaviour).
printf '{"step":85555555545555555512, "valid_d_s": 0.404325}\n' >"$tmp/float.jsonl"
expect_error "step beyond long long" "float.jsonl:1: step 8.555555554555555e+19 is not an integer" -- "$gloss" plot "$tmp/float.jsonl"
# Found by the metrics fuzzer: the epoch, likewise (every integer field is range-checked first).
printf '{"step": 3, "epoch": 444444444444444444444444}\n' >"$tmp/epoch.jsonl"
expect_error "epoch beyond int" "epoch.jsonl:1: epoch 4.444444444444444" \
  -- "$gloss" plot "$tmp/epoch.jsonl"
printf '{"step": 3, "epoch": 2.5}\n' >"$tmp/epoch2.jsonl"
expect_error "fractional epoch" "epoch2.jsonl:1: epoch 2.5 is not an integer" -- "$gloss" plot "$tmp/epoch2.jsonl"
printf '{"step": 1, "valid_bleu": 1e17}\n' >"$tmp/big.jsonl"
expect_error "huge value" "big.jsonl:1: has a value that is not a finite number below 10^12" -- timeout 20 "$gloss" plot "$tmp/big.jsonl"
printf '{"step": 1, "valid_bleu": 99999999999.5, "valid_ce": 2}\n{"step": 2, "valid_bleu": 99999999999.7, "valid_ce": 1}\n' >"$tmp/near.jsonl"
timeout 20 "$gloss" plot "$tmp/near.jsonl" -o "$tmp/near.svg" >/dev/null 2>&1 && [ "$(wc -c <"$tmp/near.svg")" -lt 100000 ] \
  && pass || fail "values 1e11 apart by 0.2: plot ended with $? and $(wc -c <"$tmp/near.svg") bytes"
expect_error "run without recipe file" "nope.ini" -- "$gloss" run "$tmp/nope.ini"
# A bad metric is refused before any stage runs (not after training and translating).
expect_error "unknown metric" "eval.metrics unknown metric 'chrff'; choose from: bleu, chrf, ter; did you mean 'chrf'?" -- \
  "$gloss" run "$tmp/tiny.ini" --eval.metrics "bleu chrff" --run.workdir "$tmp/never"
[ ! -e "$tmp/never" ] && pass || fail "a refused recipe created its run folder"

# run.grid: one model per combination, a table of their validation scores, the test set
# translated by the best on validation only (train.valid_metric ce: lowest CE), all reused by
# a second run; bad grids are refused before anything trains.
grid=(--run.grid "train.lr=0.001,0.004" --train.valid_metric ce --train.max_steps 20 --run.workdir "$tmp/grid")
"$gloss" run "$tmp/tiny.ini" "${grid[@]}" >"$tmp/grid1" 2>"$tmp/glog1" || fail "grid run exit $?: $(tail -2 "$tmp/glog1")"
[ "$(grep -c '^| `train.lr=' "$tmp/grid1")" -eq 2 ] && pass || fail "grid table rows: $(grep '^|' "$tmp/grid1")"
python3 - "$tmp/grid/report.json" <<'PY' && pass || fail "report.json: the chosen combination has the lowest validation CE and translated the test set"
import json, sys
r = json.load(open(sys.argv[1]))
g = r["grid"]
assert len(g) == 2 and [x["values"]["train.lr"] for x in g] == ["0.001", "0.004"], g
best = min(g, key=lambda x: x["best_valid_ce"])
assert [x["chosen"] for x in g] == [x is best for x in g], g
assert r["tests"][0]["model"] == best["workdir"] + "/model.best.gloss", (r["tests"][0]["model"], best)
assert r["tests"][0]["lines"] == 1000
PY
[ -s "$tmp/grid/grid/train.lr=0.004/model.best.gloss" ] && [ -d "$tmp/grid/spm" ] && [ ! -e "$tmp/grid/grid/train.lr=0.004/spm" ] \
  && pass || fail "each combination in grid/<name>/, the subword models shared: $(ls "$tmp/grid" "$tmp/grid/grid"/*)"
"$gloss" run "$tmp/tiny.ini" "${grid[@]}" >"$tmp/grid2" 2>"$tmp/glog2" || fail "grid rerun exit $?"
! grep -q "train: epoch" "$tmp/glog2" && grep -q "is up to date" "$tmp/glog2" && pass || fail "a second grid run trains or translates again"
expect_error "grid key" "run.grid 'train.lrr' is not a recipe key; did you mean 'train.lr'?" -- \
  "$gloss" run "$tmp/tiny.ini" --run.grid "train.lrr=1,2" --run.workdir "$tmp/never"
expect_error "grid value" "run.grid: train.lr=-1: " -- \
  "$gloss" run "$tmp/tiny.ini" --run.grid "train.lr=0.001,-1" --run.workdir "$tmp/never"
expect_error "grid of a decode key" "only [data] (not test files), [subword], [model] and [train] keys vary" -- \
  "$gloss" run "$tmp/tiny.ini" --run.grid "decode.beam_size=1,2" --run.workdir "$tmp/never"
[ ! -e "$tmp/never" ] && pass || fail "a refused grid created its run folder"
finish
