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
# Ctrl-C (SIGINT) between two validations: the run ends its update, saves a checkpoint at that
# step and exits 130 saying so; the same command resumes there and ends with the model of a run
# never stopped (the trained values, bit for bit).
long=()
for ((i = 0; i < ${#args[@]}; i += 2)); do
  case ${args[i]} in --train.max_steps | --run.workdir) ;; *) long+=("${args[i]}" "${args[i + 1]}") ;; esac
done
long+=(--train.max_steps 150 --train.patience 1000)  # no early stop before the signal
"$gloss" train "${long[@]}" --run.workdir "$tmp/whole" >/dev/null 2>&1 || fail "150-step train exit $?"
"$gloss" train "${long[@]}" --run.workdir "$tmp/int" >/dev/null 2>"$tmp/log_int" &
pid=$!
for _ in $(seq 1 600); do
  if [ "$(grep -c 'validation: ce' "$tmp/log_int" 2>/dev/null)" -ge 2 ]; then break; fi
  sleep 0.05
done
kill -INT "$pid"
wait "$pid"
rc=$?
stopped=$(grep -oE 'stopped by SIGINT after step [0-9]+' "$tmp/log_int" | grep -oE '[0-9]+$')
[ "$rc" -eq 130 ] && [ -n "$stopped" ] && [ "$stopped" -lt 150 ] && pass \
  || fail "SIGINT: exit $rc, $(tail -1 "$tmp/log_int")"
"$gloss" train "${long[@]}" --run.workdir "$tmp/int" >/dev/null 2>"$tmp/log_int2" || fail "train after SIGINT exit $?"
grep -q "resuming from .* at step $stopped " "$tmp/log_int2" && pass || fail "no resume at step $stopped: $(head -3 "$tmp/log_int2")"
digest=$(dirname "$gloss")/tests/gloss_param_digest  # built beside gloss (tests/CMakeLists.txt)
whole=$("$digest" "$tmp/whole/model.best.gloss" | sed 1d)
[ -n "$whole" ] && [ "$("$digest" "$tmp/int/model.best.gloss" | sed 1d)" = "$whole" ] && pass \
  || fail "the run stopped by SIGINT and resumed trained other values than the whole run"
losses() { grep -oE '"step": [0-9]+|"train_loss": [^,]+' "$1/metrics.jsonl" | paste -sd' '; }
[ -n "$(losses "$tmp/whole")" ] && [ "$(losses "$tmp/int")" = "$(losses "$tmp/whole")" ] && pass \
  || fail "metrics.jsonl after SIGINT and resume: $(diff <(losses "$tmp/int" | tr '"' '\n') <(losses "$tmp/whole" | tr '"' '\n') | head -4 | paste -sd' ')"
# Killed after logging the validation of step 10 but before its checkpoint was in place: the
# resumed run repeats that validation and logs it once (issue 14, defect 8: it was logged twice).
short=()
for ((i = 0; i < ${#args[@]}; i += 2)); do  # args with another step limit and folder
  case ${args[i]} in --train.max_steps | --run.workdir) ;; *) short+=("${args[i]}" "${args[i + 1]}") ;; esac
done
short+=(--run.workdir "$tmp/short")
"$gloss" train "${short[@]}" --train.max_steps 10 >/dev/null 2>&1 || fail "short train exit $?"
cp "$tmp/short/checkpoint.5.gckpt" "$tmp/short/checkpoint.gckpt"
"$gloss" train "${short[@]}" --train.max_steps 10 >/dev/null 2>"$tmp/log_short" || fail "short resume exit $?"
steps=$(python3 -c "import json,sys; print(' '.join(str(json.loads(l)['step']) for l in open(sys.argv[1])))" "$tmp/short/metrics.jsonl")
grep -q "resuming from .* at step 5" "$tmp/log_short" && [ "$steps" = "5 10" ] && pass || fail "metrics.jsonl steps after a resume: $steps"
# A training that diverges stops with an error before writing anything of the bad step.
nan=("${short[@]:0:${#short[@]}-2}" --run.workdir "$tmp/nan")  # short's last two: its folder
"$gloss" train "${nan[@]}" --train.max_steps 20 --train.optimizer sgd --train.lr 100 --train.clip_norm 0 \
  --train.init_scale 10 >/dev/null 2>"$tmp/log_nan"
rc=$?
[ "$rc" -eq 2 ] && tail -1 "$tmp/log_nan" | grep -q "^gloss: training diverged at step" && pass \
  || fail "diverging training: exit $rc, $(tail -1 "$tmp/log_nan")"
[ ! -e "$tmp/nan/checkpoint.gckpt" ] && [ ! -e "$tmp/nan/model.best.gloss" ] && pass || fail "diverged run wrote: $(ls "$tmp/nan")"
# train.precision bf16 where the CPU lacks AVX512-BF16 (here oneDNN is capped below it): exit 2
# with one error line and no checkpoint; auto trains in f32 and says so.
isa=("${nan[@]:0:${#nan[@]}-2}")
ONEDNN_MAX_CPU_ISA=AVX512_CORE "$gloss" train "${isa[@]}" --run.workdir "$tmp/isa" --train.max_steps 2 \
  --train.precision bf16 >/dev/null 2>"$tmp/log_isa"
rc=$?
[ "$rc" -eq 2 ] && tail -1 "$tmp/log_isa" | grep -q "^gloss: train.precision bf16 needs a CPU with AVX512-BF16" \
  && [ ! -e "$tmp/isa/checkpoint.gckpt" ] && pass || fail "bf16 without AVX512-BF16: exit $rc, $(tail -1 "$tmp/log_isa")"
ONEDNN_MAX_CPU_ISA=AVX512_CORE "$gloss" train "${isa[@]}" --run.workdir "$tmp/isa_auto" --train.max_steps 2 \
  --train.precision auto >/dev/null 2>"$tmp/log_isa_auto" \
  && grep -q "precision f32 (train.precision auto: this CPU lacks AVX512-BF16)" "$tmp/log_isa_auto" && pass \
  || fail "auto without AVX512-BF16: $(tail -1 "$tmp/log_isa_auto")"
# A stale temporary file of a killed write is swept by the next write of the same file.
touch "$tmp/short/checkpoint.gckpt.tmp.999999999" "$tmp/short/model.best.gloss.tmp.999999998"
"$gloss" train "${short[@]}" --train.max_steps 15 >/dev/null 2>&1 || fail "longer short train exit $?"
[ -z "$(ls "$tmp/short" | grep '\.tmp\.')" ] && pass || fail "stale temporaries left: $(ls "$tmp/short")"

# Translation.
model=$tmp/run/model.best.gloss
printf 'A man rides a bike.\n\nTwo dogs play.\nbad \xff byte\n   \n' >"$tmp/in.en"
"$gloss" translate -m "$model" -i "$tmp/in.en" -o "$tmp/out.de" 2>"$tmp/tlog" || fail "translate exit $?"
[ "$(wc -l <"$tmp/out.de")" -eq 5 ] && pass || fail "one output line per input line"
grep -q "in.en:4: invalid UTF-8" "$tmp/tlog" && pass || fail "warning names the invalid line"
"$gloss" translate -m "$model" -i "$tmp/in.en" -o "$tmp/out.de.gz" 2>/dev/null || fail "translate to .gz exit $?"
gzip -dc "$tmp/out.de.gz" 2>/dev/null | cmp -s - "$tmp/out.de" && pass || fail "an output named .gz is gzip of the same lines"
mkdir -p "$tmp/outdir"
expect_error "output is a directory" "outdir: is a directory; give a file name" -- \
  "$gloss" translate -m "$model" -i "$tmp/in.en" -o "$tmp/outdir"
{ echo "A dog."; printf 'dog %.0s' $(seq 300); echo; } >"$tmp/long.en"  # line 2: more than 250 subwords
"$gloss" translate -m "$model" -i "$tmp/long.en" -o "$tmp/long.de" 2>"$tmp/tlog" || fail "translate long exit $?"
[ "$(wc -l <"$tmp/long.de")" -eq 2 ] && grep -q "long.en:2: [0-9]* subwords; translating the first 250" "$tmp/tlog" \
  && pass || fail "a truncated line is named by file and line: $(cat "$tmp/tlog")"
"$gloss" translate -m "$model" -i "$tmp/in.en" --beam-size 3 --n-best 2 >"$tmp/nbest" 2>/dev/null
# Two distinct hypotheses for each of the 3 sentences, one (empty) for each of the 2 empty lines.
[ "$(wc -l <"$tmp/nbest")" -eq 8 ] && ! grep -qvE '^[0-9]+ \|\|\| .* \|\|\| -?[0-9]+\.[0-9]{4}$' "$tmp/nbest" && pass || fail "n-best format: $(head -3 "$tmp/nbest")"
[ "$(cut -d' ' -f1 "$tmp/nbest" | uniq -c | awk '{printf "%s ", $1}')" = "2 1 2 2 1 " ] && pass || fail "n-best counts per line: $(cut -d' ' -f1 "$tmp/nbest" | uniq -c | tr '\n' ' ')"
[ -z "$(sort "$tmp/nbest" | uniq -d)" ] && pass || fail "n-best repeats a hypothesis: $(sort "$tmp/nbest" | uniq -d | head -1)"
# gloss summary: the parameters training reported, the model file's tensors (4 bytes each).
"$gloss" summary "$model" >"$tmp/summary" 2>&1 || fail "summary exit $?: $(tail -1 "$tmp/summary")"
trained=$(grep -oE 'train: [0-9]+ parameters' "$tmp/log1" | grep -oE '[0-9]+')
listed=$(grep -oE '^Total params: [0-9,]+' "$tmp/summary" | tr -dc '0-9')
[ -n "$trained" ] && [ "$listed" = "$trained" ] && [ "$(stat -c %s "$model")" -gt $((4 * listed)) ] && pass \
  || fail "summary lists $listed parameters, training had $trained"
grep -qF '(batch, src_len, 16)' "$tmp/summary" && grep -qF '(batch, tgt_len, 24)' "$tmp/summary" && pass \
  || fail "summary shapes: $(head -8 "$tmp/summary")"
"$gloss" summary "$tmp/in.en" >/dev/null 2>"$tmp/serr"; rc=$?
[ "$rc" -eq 2 ] && [ "$(wc -l <"$tmp/serr")" -eq 1 ] && grep -q "in.en" "$tmp/serr" && pass \
  || fail "summary of a text file: exit $rc, $(cat "$tmp/serr")"
zcat "$d/test_2016_flickr.en.gz" | head -150 >"$tmp/t.en"
"$gloss" translate -m "$model" -i "$tmp/t.en" --batch-size 1 -b 4 >"$tmp/b1" 2>/dev/null
"$gloss" translate -m "$model" -i "$tmp/t.en" --batch-size 64 -b 4 >"$tmp/b64" 2>/dev/null
cmp -s "$tmp/b1" "$tmp/b64" && pass || fail "batch size 1 and 64 give different translations"
# A writer that waits for each line's translation before it sends the next one gets it: the
# standard input of a pipe is translated as it arrives, not when 64 KiB have come or the pipe
# closes (which would wait forever here), and the lines are the whole file's.
coproc TR { exec "$gloss" translate -m "$model" -b 4 2>/dev/null; }
: >"$tmp/streamed"
while IFS= read -r line; do
  printf '%s\n' "$line" >&"${TR[1]}"
  if ! IFS= read -r -t 60 out <&"${TR[0]}"; then
    fail "no translation of a line sent through a pipe within 60 s"
    break
  fi
  printf '%s\n' "$out" >>"$tmp/streamed"
done < <(head -5 "$tmp/t.en")
eval "exec ${TR[1]}>&-"
kill "$TR_PID" 2>/dev/null; wait "$TR_PID" 2>/dev/null
head -5 "$tmp/b64" | cmp -s - "$tmp/streamed" && pass || fail "lines translated one by one through a pipe differ"
# --shard K/N: the shards' outputs, concatenated in order, are the whole file's, byte for byte
# (1-best and n-best with its line ids), also for a last line without a line break and for
# more shards than lines.
head -c -1 "$tmp/t.en" >"$tmp/t_nonl.en"
"$gloss" translate -m "$model" -i "$tmp/t_nonl.en" -b 3 --n-best 2 >"$tmp/whole_nbest" 2>/dev/null
for n in 4 7; do
  : >"$tmp/merged"; : >"$tmp/merged_nbest"
  for k in $(seq 1 $n); do
    "$gloss" translate -m "$model" -i "$tmp/t.en" -b 4 --batch-size 64 --shard "$k/$n" -o "$tmp/shard.$k" 2>/dev/null \
      || fail "shard $k/$n exit $?"
    cat "$tmp/shard.$k" >>"$tmp/merged"
    "$gloss" translate -m "$model" -i "$tmp/t_nonl.en" -b 3 --n-best 2 --shard "$k/$n" >>"$tmp/merged_nbest" 2>/dev/null
  done
  cmp -s "$tmp/merged" "$tmp/b64" && pass || fail "$n shards concatenated differ from the whole file's translation"
  cmp -s "$tmp/merged_nbest" "$tmp/whole_nbest" && pass || fail "$n shards' n-best lists differ from the whole file's"
done
printf 'One dog.\nTwo cats.\n' >"$tmp/two.en"
: >"$tmp/merged"
for k in 1 2 3 4 5; do "$gloss" translate -m "$model" -i "$tmp/two.en" --shard "$k/5" >>"$tmp/merged" 2>/dev/null; done
"$gloss" translate -m "$model" -i "$tmp/two.en" >"$tmp/two.de" 2>/dev/null
cmp -s "$tmp/merged" "$tmp/two.de" && pass || fail "5 shards of 2 lines differ from the whole"
expect_error "shard 0/3" "--shard 0/3" -- "$gloss" translate -m "$model" -i "$tmp/two.en" --shard 0/3
expect_error "shard 3/2" "--shard 3/2" -- "$gloss" translate -m "$model" -i "$tmp/two.en" --shard 3/2
expect_error "shard a/b" "--shard a/b" -- "$gloss" translate -m "$model" -i "$tmp/two.en" --shard a/b
expect_error "shard of a pipe" "--shard counts its lines" -- "$gloss" translate -m "$model" -i <(cat "$tmp/two.en") --shard 1/2
# An output that is a FIFO or a device is written in place, never replaced by a regular file
# (the old code renamed a temporary file over it: as root, -o /dev/null replaced /dev/null).
mkfifo "$tmp/fifo"
timeout 60 cat "$tmp/fifo" >"$tmp/from_fifo" &
reader=$!
timeout 60 "$gloss" translate -m "$model" -i "$tmp/in.en" -o "$tmp/fifo" 2>/dev/null
wait "$reader"
[ -p "$tmp/fifo" ] && [ "$(wc -l <"$tmp/from_fifo")" -eq 5 ] && pass || fail "-o FIFO: $(ls -l "$tmp/fifo"), $(wc -l <"$tmp/from_fifo") lines read"
expect_error "model file to a FIFO" "fifo: is a device or FIFO; a model file or checkpoint needs a regular file name" -- \
  "$gloss" average -o "$tmp/fifo" "$model"
[ -p "$tmp/fifo" ] && pass || fail "gloss average replaced the FIFO"
if mknod "$tmp/null" c 1 3 2>/dev/null; then  # as root: a null device of our own
  "$gloss" translate -m "$model" -i "$tmp/in.en" -o "$tmp/null" 2>/dev/null && [ -c "$tmp/null" ] && pass \
    || fail "-o a device replaced it: $(ls -l "$tmp/null")"
fi
# SIGTERM (or Ctrl-C) while the output is written ends translate as the signal says and leaves
# neither the output nor its temporary file (it used to leave out.tmp.<pid> until the next
# write of out). The input is a FIFO whose writer stays open, so translate is still reading.
mkfifo "$tmp/slow.fifo"
(cat "$tmp/t.en"; exec sleep 30) >"$tmp/slow.fifo" &
writer=$!
"$gloss" translate -m "$model" -i "$tmp/slow.fifo" -o "$tmp/slow.out" 2>/dev/null &
pid=$!
writing=""
for _ in $(seq 1 300); do
  writing=$(ls "$tmp" | grep '^slow.out.tmp')
  [ -n "$writing" ] && break
  sleep 0.05
done
kill -TERM "$pid"
wait "$pid"
rc=$?
kill "$writer" 2>/dev/null
wait "$writer" 2>/dev/null
[ -n "$writing" ] && [ "$rc" -eq 143 ] && [ -z "$(ls "$tmp" | grep '^slow.out')" ] && pass \
  || fail "translate stopped by SIGTERM: saw '$writing', exit $rc, left $(ls "$tmp" | grep '^slow.out' | paste -sd' ')"
# A .gz file cut short is an error naming the line where its data ends (issue 14, defect 2; the
# old code read it as a shorter file, exit 0), and the output is not left half written.
zcat "$d/val.en.gz" | head -500 | gzip >"$tmp/v500.gz"
head -c 3000 "$tmp/v500.gz" >"$tmp/cut.gz"
whole=$(zcat "$tmp/cut.gz" 2>/dev/null | wc -l)
expect_error "translate a truncated .gz" "cut.gz:$((whole + 1)): the compressed data ends here, cut short" -- \
  "$gloss" translate -m "$model" -i "$tmp/cut.gz" -o "$tmp/cut.out" -b 1
[ ! -e "$tmp/cut.out" ] && [ -z "$(ls "$tmp" | grep 'cut.out.tmp')" ] && pass || fail "a failed translation left $(ls "$tmp" | grep cut.out)"
allow_stdout=1 expect_error "spm encode a truncated .gz" "cut.gz:$((whole + 1)): the compressed data ends here" -- \
  "$gloss" spm encode -m "$(ls "$tmp"/run/spm/*.model | head -1)" -i "$tmp/cut.gz"
# A Gloss model or checkpoint given as the subword model says what it is and where the
# subword models are (it used to be SentencePiece's internal parse error).
expect_error "spm encode -m a model file" "model.best.gloss: is a Gloss model file, not a SentencePiece model" -- \
  "$gloss" spm encode -m "$model" -i "$tmp/t.en"
expect_error "spm decode -m a checkpoint" "checkpoint.gckpt: is a Gloss checkpoint, not a SentencePiece model" -- \
  "$gloss" spm decode -m "$tmp/run/checkpoint.gckpt" -i "$tmp/t.en"
# Thread counts have a maximum (issue 14, defect 7: shortlist --threads 100000 aborted).
expect_error "shortlist --threads 100000" "--threads must be between 1 and 256 (got 100000)" -- \
  "$gloss" shortlist -m "$model" -s "$tmp/t.en" -t "$tmp/t.en" -o "$tmp/sl" --threads 100000
expect_error "shortlist of no words" "--frequent and --per-source must be >= 0 and not both 0" -- \
  "$gloss" shortlist -m "$model" -s "$tmp/t.en" -t "$tmp/t.en" -o "$tmp/sl" --frequent 0 --per-source 0
expect_error "translate --threads 0" "--threads must be between 1 and 256 (got 0)" -- \
  "$gloss" translate -m "$model" -i "$tmp/in.en" --threads 0
# --stop-after 3: the search waits for 3 finished hypotheses: its 1-best is the 3-best list's
# first (tests/model shows it can differ from stopping at the first).
"$gloss" translate -m "$model" -i "$tmp/t.en" -b 4 --stop-after 3 >"$tmp/wait3" 2>/dev/null
"$gloss" translate -m "$model" -i "$tmp/t.en" -b 4 --n-best 3 2>/dev/null | awk -F' \\|\\|\\| ' '!seen[$1]++ { print $2 }' >"$tmp/first3"
cmp -s "$tmp/wait3" "$tmp/first3" && [ "$(wc -l <"$tmp/wait3")" -eq 150 ] && pass || fail "--stop-after 3: not the 3-best lists' first"
expect_error "bad --stop-after" "--stop-after must be between 1 and --beam-size" -- "$gloss" translate -m "$model" -i "$tmp/in.en" -b 2 --stop-after 3
# Threads as workers on their own batches (data, the default) or inside each operation (ops),
# or one thread: the same translations.
"$gloss" translate -m "$model" -i "$tmp/t.en" --batch-size 16 -b 4 --threads 3 >"$tmp/w3" 2>/dev/null
"$gloss" translate -m "$model" -i "$tmp/t.en" --batch-size 16 -b 4 --threads 2 --parallel ops >"$tmp/ops" 2>/dev/null
"$gloss" translate -m "$model" -i "$tmp/t.en" --batch-size 16 -b 4 --threads 1 >"$tmp/t1" 2>/dev/null
cmp -s "$tmp/w3" "$tmp/b64" && cmp -s "$tmp/ops" "$tmp/b64" && cmp -s "$tmp/t1" "$tmp/b64" && pass \
  || fail "3 workers, threads inside operations and one thread give different translations"
# bf16 readout and output layers: the same line count, mostly the same translations (or, on a
# CPU without AVX512-BF16, the one-line error that says so).
if "$gloss" translate -m "$model" -i "$tmp/t.en" --batch-size 16 -b 4 --precision bf16 >"$tmp/bf16" 2>"$tmp/bf16.err"; then
  same=$(paste -d '\t' "$tmp/bf16" "$tmp/b64" | awk -F '\t' '$1 == $2' | wc -l)
  [ "$(wc -l <"$tmp/bf16")" -eq 150 ] && [ "$same" -ge 120 ] && pass || fail "bf16: $same of 150 lines as in f32"
else
  grep -q "AVX512-BF16" "$tmp/bf16.err" && [ "$(wc -l <"$tmp/bf16.err")" -eq 1 ] && pass || fail "bf16 failed: $(cat "$tmp/bf16.err")"
fi
expect_error "bad --precision" "--precision must be f32, bf16 or auto" -- "$gloss" translate -m "$model" -i "$tmp/in.en" --precision f16
expect_error "bad --parallel" "--parallel must be data or ops" -- "$gloss" translate -m "$model" -i "$tmp/in.en" --parallel both
"$gloss" eval <(zcat "$d/test_2016_flickr.de.gz" | head -150) -i "$tmp/b64" -b >/dev/null && pass || fail "eval of the output"

# --max-batch-tokens changes batching, not translations.
"$gloss" translate -m "$model" -i "$tmp/t.en" --max-batch-tokens 60 -b 4 >"$tmp/bt" 2>/dev/null
cmp -s "$tmp/bt" "$tmp/b64" && pass || fail "--max-batch-tokens gives different translations"

# Alignments, word scores, minimum length, coverage penalty, attention heat map.
head -20 "$tmp/t.en" >"$tmp/t20.en"
"$gloss" translate -m "$model" -i "$tmp/t20.en" -b 3 >"$tmp/plain" 2>/dev/null
"$gloss" translate -m "$model" -i "$tmp/t20.en" -b 3 --alignment hard --word-scores >"$tmp/rich" 2>/dev/null
diff <(sed 's/ ||| .*//' "$tmp/rich") "$tmp/plain" >/dev/null && pass || fail "alignment/word scores change the translation"
! grep -qvE '^.* \|\|\|( [0-9]+-[0-9]+)* \|\|\| WordScores=( -?[0-9]+\.[0-9]{4})*$' "$tmp/rich" && pass || fail "hard alignment + word scores format: $(head -2 "$tmp/rich")"
awk -F' \\|\\|\\| ' '{ n = split($1, w, " "); m = split($3, s, " ") - 1; if (n != m) bad = 1 } END { exit bad }' "$tmp/rich" \
  && pass || fail "one word score per output word"
"$gloss" translate -m "$model" -i "$tmp/t20.en" -b 3 --alignment soft >"$tmp/soft" 2>/dev/null
! grep -qvE '^.* \|\|\|( [0-9]\.[0-9]{4}(,[0-9]\.[0-9]{4})*)*$' "$tmp/soft" && pass || fail "soft alignment format: $(head -1 "$tmp/soft")"
"$gloss" translate -m "$model" -i "$tmp/t20.en" -b 3 --min-length 30 >"$tmp/minlen" 2>/dev/null
[ "$(wc -l <"$tmp/minlen")" -eq 20 ] && pass || fail "--min-length: one line per input line (its effect: tests/model)"
"$gloss" translate -m "$model" -i "$tmp/t20.en" -b 3 --coverage-penalty 0.4 >"$tmp/cov" 2>/dev/null && [ "$(wc -l <"$tmp/cov")" -eq 20 ] \
  && pass || fail "--coverage-penalty"
"$gloss" translate -m "$model" -i "$tmp/t20.en" --attention "$tmp/att.svg" --attention-line 3 >/dev/null 2>&1
python3 -c "import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); assert len([e for e in r.iter() if e.tag.endswith('rect')]) > 10" "$tmp/att.svg" \
  && pass || fail "attention heat map is an SVG with cells"
# The same heat map as PNG: a PNG of the SVG's size whose pixels are not all one colour.
"$gloss" translate -m "$model" -i "$tmp/t20.en" --attention "$tmp/att.png" --attention-line 3 >/dev/null 2>&1
python3 - "$tmp/att.png" "$tmp/att.svg" <<'PY' && pass || fail "--attention att.png is not the heat map as PNG"
import struct, sys, zlib, xml.etree.ElementTree as E
png = open(sys.argv[1], "rb").read()
assert png[:8] == b"\x89PNG\r\n\x1a\n"
w, h = struct.unpack(">II", png[16:24])
svg = E.parse(sys.argv[2]).getroot()
assert (w, h) == (int(svg.get("width")), int(svg.get("height"))), (w, h)
data, at = b"", 8
while at < len(png):
    n, kind = struct.unpack(">I4s", png[at:at + 8])
    if kind == b"IDAT": data += png[at + 8:at + 8 + n]
    at += 12 + n
assert len(set(zlib.decompress(data))) > 16
PY
expect_error "attention as jpg" "give a file name ending in .svg or .png" -- "$gloss" translate -m "$model" -i "$tmp/t20.en" --attention "$tmp/a.jpg"
# A file is counted first: the error comes before any translation is written (a pipe's, at its end).
expect_error "attention line past the end" "the input has only 20 lines" -- "$gloss" translate -m "$model" -i "$tmp/t20.en" --attention "$tmp/b.svg" --attention-line 21
expect_streaming_error "attention line past the end of a pipe" "the input has only 20 lines" -- "$gloss" translate -m "$model" -i <(cat "$tmp/t20.en") --attention "$tmp/b.svg" --attention-line 21
expect_error "bad alignment kind" "--alignment must be hard or soft" -- "$gloss" translate -m "$model" -i "$tmp/t20.en" --alignment fuzzy

# Ensembles: two models translate together; models with other subword models are refused.
"$gloss" translate -m "$model" "$tmp/uninterrupted.gloss" -i "$tmp/t20.en" -b 2 >"$tmp/ens" 2>/dev/null && [ "$(wc -l <"$tmp/ens")" -eq 20 ] \
  && pass || fail "ensemble of two models"

# Lexical shortlist: built from the training data, one line per input, batch-size invariant.
"$gloss" shortlist -m "$model" -s "$d/val.en.gz" -t "$d/val.de.gz" -o "$tmp/sl.txt" --frequent 50 --per-source 10 >/dev/null 2>&1 \
  && head -1 "$tmp/sl.txt" | grep -q "^gloss-shortlist 1 " && pass || fail "gloss shortlist writes a shortlist"
# More frequent subwords asked than the data has: the summary says how many the list holds.
"$gloss" shortlist -m "$model" -s "$d/val.en.gz" -t "$d/val.de.gz" -o "$tmp/sl_all.txt" --frequent 100000 >/dev/null \
  2>"$tmp/sl_all.log"
grep -qE "; [0-9]{2,4} frequent \(all the target subwords in the data\) \+ 30 per source" "$tmp/sl_all.log" && pass \
  || fail "shortlist --frequent 100000 summary: $(cat "$tmp/sl_all.log")"
"$gloss" translate -m "$model" -i "$tmp/t.en" --shortlist "$tmp/sl.txt" -b 3 --batch-size 1 >"$tmp/sl1" 2>/dev/null
"$gloss" translate -m "$model" -i "$tmp/t.en" --shortlist "$tmp/sl.txt" -b 3 --batch-size 64 >"$tmp/sl64" 2>/dev/null
[ "$(wc -l <"$tmp/sl64")" -eq 150 ] && cmp -s "$tmp/sl1" "$tmp/sl64" && pass || fail "shortlist: batch size 1 and 64 differ"
# The shortlist training stored in the model file (--shortlist model), also batch-size invariant.
"$gloss" translate -m "$model" -i "$tmp/t.en" --shortlist model -b 3 --batch-size 1 >"$tmp/slm1" 2>/dev/null
"$gloss" translate -m "$model" -i "$tmp/t.en" --shortlist model -b 3 --batch-size 64 >"$tmp/slm64" 2>/dev/null
[ "$(wc -l <"$tmp/slm64")" -eq 150 ] && cmp -s "$tmp/slm1" "$tmp/slm64" && pass || fail "shortlist model: batch size 1 and 64 differ"
expect_error "missing shortlist file" "no_such_list: " -- "$gloss" translate -m "$model" -i "$tmp/t20.en" --shortlist "$tmp/no_such_list"
printf 'gloss-shortlist 1 400 400\n5 6\n3\tseven\n' >"$tmp/bad_sl.txt"
expect_error "bad shortlist line" "bad_sl.txt:3:" -- "$gloss" translate -m "$model" -i "$tmp/t20.en" --shortlist "$tmp/bad_sl.txt"
printf 'gloss-shortlist 1 8000 8000\n5 6\n' >"$tmp/other_sl.txt"
expect_error "shortlist of other vocabularies" "build it with gloss shortlist -m MODEL" -- "$gloss" translate -m "$model" -i "$tmp/t20.en" --shortlist "$tmp/other_sl.txt"

# The translation benchmark prints its figures.
"$gloss" bench translate -m "$model" -i "$tmp/t.en" --beam-size 2 --runs 1 2>/dev/null | grep -qE '^BENCH translate_sentences_per_s [0-9.]+ sent/s$' && pass || fail "bench translate"
# The training benchmark: its speed, its GEMM rate against dnnl_sgemm's, and where the time went
# (the stages and "other" add up to 100 % within rounding).
"$gloss" bench train "$src/recipes/quick-en-de.ini" "${args[@]}" --batches 3 >"$tmp/bench_train" 2>/dev/null || fail "bench train exit $?"
grep -qE '^BENCH train_target_tokens_per_s [0-9]+ tok/s$' "$tmp/bench_train" &&
  grep -qE '^BENCH train_fraction_of_sgemm_1024 [0-9.]+ %$' "$tmp/bench_train" && pass || fail "bench train figures"
profile=$(awk '/^BENCH train_time_/ {sum += $3; n++} END {print n, sum}' "$tmp/bench_train")
awk -v p="$profile" 'BEGIN {split(p, a, " "); exit !(a[1] == 9 && a[2] >= 99.4 && a[2] <= 100.6)}' && pass ||
  fail "bench train profile: $profile (stages, sum %)"
expect_error "bench train --batches 0" "--batches must be at least 1" -- "$gloss" bench train "$src/recipes/quick-en-de.ini" "${args[@]}" --batches 0
expect_error "bench translate --beam-size x" "--beam-size: 'x' is not a number" -- \
  "$gloss" bench translate -m "$model" -i "$tmp/t.en" --beam-size x

# Errors: a directory where a file belongs; a file that is not a model.
expect_error "directory input" "is a directory; give a file" -- "$gloss" translate -m "$model" -i "$tmp"
expect_error "directory model" "is a directory; give a file" -- "$gloss" translate -m "$tmp" -i "$tmp/in.en"
"$gloss" translate -m "$tmp/in.en" -i "$tmp/in.en" >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "is not a Gloss model" "$tmp/err" && pass || fail "not-a-model error: $(cat "$tmp/err")"
# A training checkpoint translates as the model file averaged from it alone (the same values).
"$gloss" average -o "$tmp/from_ckpt.gloss" "$tmp/whole/checkpoint.gckpt" >/dev/null 2>&1 || fail "average of a checkpoint"
by_ckpt=$("$gloss" translate -m "$tmp/whole/checkpoint.gckpt" -i "$tmp/in.en" 2>"$tmp/err")
[ -n "$by_ckpt" ] && [ "$by_ckpt" = "$("$gloss" translate -m "$tmp/from_ckpt.gloss" -i "$tmp/in.en" 2>/dev/null)" ] && pass \
  || fail "translate -m checkpoint: $(cat "$tmp/err")"

finish
