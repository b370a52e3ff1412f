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
