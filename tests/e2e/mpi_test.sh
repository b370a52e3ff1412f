#!/usr/bin/env bash
# End to end: training under mpirun (Open MPI, 2 processes on this machine, a tiny model).
#  - mpirun -np 2 with 1 thread each trains the same model, bit for bit, as one process with
#    2 data-parallel workers (parameters, Adam's state and the validation log), and as one
#    process with 1 worker running both replicas (train.replicas 2);
#  - rank 0 alone writes (one metrics line per validation, no stray files);
#  - a job stopped at step 20 and run again to step 60 ends as an uninterrupted one;
#  - kill -9 of one rank ends the whole job within seconds, and rerunning the same command
#    resumes from the last checkpoint and ends bit for bit as the uninterrupted run;
#  - a checkpoint that cannot be read stops every rank with the one-line error;
#  - the collectives themselves (gloss_comm_check) with 2 and 3 ranks: sums in rank order bit
#    for bit, whatever pieces they are cut into.
# Usage: mpi_test.sh GLOSS_BINARY SOURCE_DIR [PARAM_DIGEST_BINARY [COMM_CHECK_BINARY]]
set -uo pipefail
gloss=$1
src=$2
digest=${3:-$(dirname "$gloss")/tests/gloss_param_digest}
comm_check=${4:-$(dirname "$gloss")/tests/gloss_comm_check}
tmp=$(mktemp -d)
trap 'pkill -9 -f "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
source "$(dirname "$0")/lib.sh"
command -v mpirun >/dev/null || { echo "FAIL: mpirun is missing (scripts/install-deps.sh installs openmpi-bin)"; exit 1; }
# As root and in containers: Open MPI refuses root without these, may see fewer slots than
# processes, and needs only its shared-memory transport on one machine.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader \
  OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
# Under AddressSanitizer: Open MPI's own allocations are not leaks of ours. Full stacks and its
# components kept loaded, so that its frames are seen and named.
export LSAN_OPTIONS="suppressions=$src/tests/e2e/openmpi-lsan.supp:fast_unwind_on_malloc=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}" \
  OMPI_MCA_mca_base_component_disable_dlclose=1
mpi() { timeout 300 mpirun -np 2 "$gloss" "$@"; }

for ranks in 2 3; do
  out=$(timeout 120 mpirun -np "$ranks" "$comm_check" 2>&1)
  [ "$out" = "comm_check: $ranks ranks, 22 buffers summed in rank order" ] && pass \
    || fail "collectives with $ranks ranks: $(head -3 <<<"$out")"
done

d=$src/data/multi30k
args=(--data.train_src "$d/val.en.gz" --data.train_tgt "$d/val.de.gz"
      --data.valid_src "$d/test_2016_flickr.en.gz" --data.valid_tgt "$d/test_2016_flickr.de.gz"
      --subword.vocab_size 400 --model.emb_dim 16 --model.enc_hidden 16 --model.dec_hidden 24
      --model.att_dim 16 --model.readout_dim 16 --train.batch_size 32 --train.valid_every 20
      --train.ema_decay 0.99 --model.dropout_emb 0.2 --model.word_dropout 0.1 --train.patience 100)
# The parameters and optimiser state of a checkpoint, without the recipe text (workdirs differ).
state() { "$digest" "$1" | grep -v '^#'; }
# A validation log without its timing column.
valid_log() { sed -E 's/"elapsed_s":[^,}]*//' "$1"; }

"$gloss" train "${args[@]}" --train.max_steps 60 --train.threads 2 --run.workdir "$tmp/one" >/dev/null 2>"$tmp/log1" \
  || fail "one process: exit $?: $(tail -2 "$tmp/log1")"
mpi train "${args[@]}" --train.max_steps 60 --train.threads 1 --run.workdir "$tmp/two" >"$tmp/out2" 2>"$tmp/log2" \
  || fail "mpirun -np 2: exit $?: $(tail -3 "$tmp/log2")"
[ -n "$(state "$tmp/one/checkpoint.gckpt")" ] && [ "$(state "$tmp/one/checkpoint.gckpt")" = "$(state "$tmp/two/checkpoint.gckpt")" ] \
  && pass || fail "mpirun -np 2 x 1 thread and 1 process x 2 workers trained different models"
[ "$(state "$tmp/one/model.best.gloss")" = "$(state "$tmp/two/model.best.gloss")" ] && pass || fail "best models differ"
"$gloss" train "${args[@]}" --train.max_steps 60 --train.threads 1 --train.replicas 2 --run.workdir "$tmp/single" \
  >/dev/null 2>"$tmp/log0" || fail "one process x 1 worker: exit $?: $(tail -2 "$tmp/log0")"
[ "$(state "$tmp/single/checkpoint.gckpt")" = "$(state "$tmp/one/checkpoint.gckpt")" ] && pass \
  || fail "1 process x 1 worker with train.replicas 2 trained another model than 2 workers"
[ "$(valid_log "$tmp/one/metrics.jsonl")" = "$(valid_log "$tmp/two/metrics.jsonl")" ] && pass \
  || fail "validation logs differ: $(diff <(valid_log "$tmp/one/metrics.jsonl") <(valid_log "$tmp/two/metrics.jsonl") | head -3)"
grep -q "train: 2 processes (mpirun), 1 thread(s) each" "$tmp/log2" && [ "$(grep -c "train: finished" "$tmp/log2")" -eq 1 ] \
  && pass || fail "rank 0 alone reports: $(grep -c "train: finished" "$tmp/log2") finish lines"
[ "$(tail -1 "$tmp/out2")" = "$tmp/two/model.best.gloss" ] && [ "$(wc -l <"$tmp/out2")" -eq 1 ] && pass \
  || fail "stdout: $(cat "$tmp/out2")"
[ -z "$(ls "$tmp/two" | grep '\.tmp\.')" ] && pass || fail "stray temporaries: $(ls "$tmp/two")"

# Stopped at 20 and resumed to 60 under mpirun: the uninterrupted model.
mpi train "${args[@]}" --train.max_steps 20 --train.threads 1 --run.workdir "$tmp/resumed" >/dev/null 2>&1
mpi train "${args[@]}" --train.max_steps 60 --train.threads 1 --run.workdir "$tmp/resumed" >/dev/null 2>"$tmp/log3" \
  || fail "resume exit $?"
grep -q "resuming from" "$tmp/log3" && [ "$(state "$tmp/resumed/checkpoint.gckpt")" = "$(state "$tmp/one/checkpoint.gckpt")" ] \
  && pass || fail "the resumed job differs from the uninterrupted one"

# kill -9 of one rank in the middle of a longer run.
"$gloss" train "${args[@]}" --train.max_steps 400 --train.threads 2 --run.workdir "$tmp/long1" >/dev/null 2>&1
mpirun -np 2 "$gloss" train "${args[@]}" --train.max_steps 400 --train.threads 1 --run.workdir "$tmp/long2" \
  >/dev/null 2>"$tmp/log4" &
job=$!
for _ in $(seq 2400); do [ -e "$tmp/long2/checkpoint.gckpt" ] && break; sleep 0.05; done  # up to 120 s (sanitizer builds are slow)
victim=$(pgrep -P "$job" | tail -1)  # the ranks are mpirun's children; the last one: rank 1
[ -n "$victim" ] && kill -9 "$victim" && pass || fail "no rank to kill"
start=$(date +%s.%N)
for _ in $(seq 200); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
ended=$(echo "$(date +%s.%N) - $start" | bc)
if kill -0 "$job" 2>/dev/null; then fail "the job still runs 20 s after kill -9 of a rank"; kill -9 "$job"; else pass; fi
wait "$job"
rc=$?
[ "$rc" -ne 0 ] && ! grep -q "train: finished" "$tmp/log4" && pass || fail "the killed job exited $rc and finished training"
[ -z "$(pgrep -f "$tmp/long2")" ] && pass || fail "ranks left running: $(pgrep -f "$tmp/long2")"
mpi train "${args[@]}" --train.max_steps 400 --train.threads 1 --run.workdir "$tmp/long2" >/dev/null 2>"$tmp/log5" \
  || fail "rerun after kill -9: exit $?: $(tail -2 "$tmp/log5")"
grep -q "resuming from .* at step [1-9]" "$tmp/log5" && grep -q "train: finished: 10 epochs done; 321 steps" "$tmp/log5" \
  && pass \
  || fail "the rerun did not resume and train: $(grep -E 'resuming|finished' "$tmp/log5")"
[ "$(state "$tmp/long2/checkpoint.gckpt")" = "$(state "$tmp/long1/checkpoint.gckpt")" ] && pass \
  || fail "after kill -9 and resume, the model differs from the uninterrupted one"
echo "mpi_test: the job ended $(printf '%.1f' "$ended") s after kill -9 of one rank" >&2

# A checkpoint that cannot be read: every rank stops, each with the one-line error.
head -c 100 "$tmp/two/checkpoint.gckpt" >"$tmp/bad.gckpt"
mkdir -p "$tmp/bad" && cp -r "$tmp/two/spm" "$tmp/bad/" 2>/dev/null
cp "$tmp/bad.gckpt" "$tmp/bad/checkpoint.gckpt"
mpi train "${args[@]}" --train.max_steps 60 --train.threads 1 --run.workdir "$tmp/bad" >/dev/null 2>"$tmp/log6"
rc=$?
[ "$rc" -ne 0 ] && [ "$(grep -c '^gloss: .*checkpoint.gckpt' "$tmp/log6")" -ge 1 ] \
  && [ "$(grep '^gloss: ' "$tmp/log6" | sort -u | wc -l)" -eq 1 ] && pass \
  || fail "bad checkpoint: exit $rc, $(grep '^gloss: ' "$tmp/log6" | head -2)"
# gloss translate under mpirun: each rank a shard, merged by rank 0 into the one output.
zcat "$d/test_2016_flickr.en.gz" | head -150 >"$tmp/t.en"
"$gloss" translate -m "$tmp/two/model.best.gloss" -i "$tmp/t.en" -o "$tmp/t.one" -b 3 --threads 1 2>/dev/null
mpi translate -m "$tmp/two/model.best.gloss" -i "$tmp/t.en" -o "$tmp/t.two" -b 3 --threads 1 2>"$tmp/log8" \
  || fail "translate under mpirun: exit $?: $(tail -2 "$tmp/log8")"
cmp -s "$tmp/t.one" "$tmp/t.two" && [ -z "$(ls "$tmp" | grep shard)" ] && pass \
  || fail "mpirun translate differs from one process, or left shard files: $(ls "$tmp" | grep shard)"
mpi translate -m "$tmp/two/model.best.gloss" -i "$tmp/t.en" >/dev/null 2>"$tmp/log9"
[ $? -ne 0 ] && grep -q "^gloss: under mpirun, give -o FILE" "$tmp/log9" && pass || fail "mpirun translate to stdout"

# gloss run under mpirun: every rank trains, rank 0 alone translates, scores and reports.
targs=("${args[@]}" --data.test_src "$d/test_2016_flickr.en.gz" --data.test_tgt "$d/test_2016_flickr.de.gz"
       --decode.max_len_ratio 1.5 --train.max_steps 40)
mpi run "${targs[@]}" --train.threads 1 --run.workdir "$tmp/run" >"$tmp/report" 2>"$tmp/log7" || fail "gloss run: exit $?"
[ "$(grep -c '^# Gloss run report' "$tmp/report")" -eq 1 ] && [ -s "$tmp/run/report.json" ] && pass \
  || fail "gloss run under mpirun: $(grep -c '^# Gloss run report' "$tmp/report") reports"
finish
