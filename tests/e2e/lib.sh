# Shared helpers of the end-to-end test scripts (sourced): pass/fail counting and a check
# that a command fails the way users should see it fail.
failures=0
passes=0
pass() { passes=$((passes + 1)); }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect_error NAME SUBSTRING -- command...: exit status 2, one stderr line containing
# SUBSTRING, nothing on stdout. expect_streaming_error: the same, but lines translated before
# the bad one may already be on stdout (streaming commands).
expect_streaming_error() { allow_stdout=1 expect_error "$@"; }
expect_error() {
  local name=$1 want=$2
  shift 3
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" -ne 2 ]; then fail "$name: exit code $rc, expected 2"; return; fi
  if [ "$(wc -l <"$tmp/err")" -ne 1 ]; then fail "$name: not one stderr line: $(cat "$tmp/err")"; return; fi
  if ! grep -qF -- "$want" "$tmp/err"; then fail "$name: stderr '$(cat "$tmp/err")' lacks '$want'"; return; fi
  if [ -z "${allow_stdout:-}" ] && [ -s "$tmp/out" ]; then fail "$name: wrote to stdout on error"; return; fi
  pass
}

finish() {
  echo "$passes passed, $failures failed"
  [ "$failures" -eq 0 ]
}

# tiny_model: trains a tiny model on the bundled val set (100 updates, seconds) into
# $tmp/run and sets `model` to its file. Needs gloss, src and tmp.
tiny_model() {
  local d=$src/data/multi30k
  "$gloss" train --data.train_src "$d/val.en.gz" --data.train_tgt "$d/val.de.gz" \
    --data.valid_src "$d/test_2016_flickr.en.gz" --data.valid_tgt "$d/test_2016_flickr.de.gz" \
    --subword.vocab_size 400 --model.emb_dim 16 --model.enc_hidden 16 --model.dec_hidden 24 --model.att_dim 16 \
    --model.readout_dim 16 --train.batch_size 32 --train.valid_every 100 --train.max_steps 100 \
    --decode.max_len_ratio 1.5 --run.workdir "$tmp/run" >/dev/null 2>"$tmp/trainlog" || { tail -3 "$tmp/trainlog"; exit 1; }
  model=$tmp/run/model.best.gloss
}

# start_server ARGS...: starts `gloss serve -m $model` on a free port with ARGS; sets spid
# (kill it in the EXIT trap) and url. Exits the test if it does not start within 10 s.
start_server() {
  "$gloss" serve -m "$model" --port 0 "$@" 2>"$tmp/slog" &
  spid=$!
  for _ in $(seq 100); do
    grep -q "listening on" "$tmp/slog" 2>/dev/null && break
    sleep 0.1
  done
  url=$(grep -oE 'http://[0-9.]+:[0-9]+' "$tmp/slog" | head -1)
  [ -n "$url" ] || { echo "FAIL: server did not start: $(cat "$tmp/slog")"; exit 1; }
}
