#!/usr/bin/env bash
# End-to-end checks of `gloss eval` as a user runs it: output, exit codes, one-line errors.
# Usage: eval_cli_test.sh GLOSS_BINARY TEST_DATA_DIR
set -uo pipefail
gloss=$1
data=$2/bleu/inputs
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$0")/lib.sh"

# A normal run from stdin and from -i gives the same line.
"$gloss" eval "$data/val.de.ref.txt" <"$data/val.de.drop.txt" >"$tmp/stdin.out" || fail "stdin run exit $?"
"$gloss" eval "$data/val.de.ref.txt" -i "$data/val.de.drop.txt" >"$tmp/file.out" || fail "file run exit $?"
want='BLEU|nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0 = 60.2 100.0/84.3/70.1/59.3 (BP = 0.782 ratio = 0.803 hyp_len = 10378 ref_len = 12931)'
if [ "$(cat "$tmp/stdin.out")" = "$want" ] && [ "$(cat "$tmp/file.out")" = "$want" ]; then pass; else fail "stdin/file output: $(cat "$tmp/stdin.out")"; fi

# Several metrics, aligned on '='; -lc and -tok aliases; short signature; score only.
out=$("$gloss" eval "$data/val.de.ref.txt" -i "$data/val.de.drop.txt" -m ter chrf bleu -sh -b)
[ "$(echo "$out" | wc -l)" -eq 3 ] && [ "$(echo "$out" | head -1)" = "60.2" ] && pass || fail "-b with 3 metrics: $out"
out=$("$gloss" eval "$data/val.de.ref.txt" -i "$data/val.de.mixed.txt" -lc -tok intl -sh)
case "$out" in "BLEU|#:1|c:lc|e:no|tok:intl|s:exp|v:2.6.0 = "*) pass ;; *) fail "short signature: $out" ;; esac

# gzip references are read like plain ones.
gzip -c "$data/val.de.ref.txt" >"$tmp/ref.gz"
[ "$("$gloss" eval "$tmp/ref.gz" -i "$data/val.de.drop.txt")" = "$want" ] && pass || fail ".gz reference"

# -i - is standard input, as without -i; a reference cannot be.
[ "$("$gloss" eval "$tmp/ref.gz" -i - <"$data/val.de.drop.txt")" = "$want" ] && pass || fail "-i - (standard input)"
expect_error "reference from stdin" "references are files: '-' (standard input) is where the hypotheses come from" -- \
  "$gloss" eval - -i "$data/val.de.drop.txt"

# Help and unknown commands.
"$gloss" --help | grep -q "eval" && pass || fail "gloss --help lists eval"
"$gloss" eval --help | grep -q -- "--smooth-method" && pass || fail "gloss eval --help lists options"

# Bad input: one line on stderr, exit 2, nothing on stdout.
head -n 5 "$data/val.de.drop.txt" >"$tmp/short.txt"
expect_error "line count" "has 5 lines but the reference" -- "$gloss" eval "$data/val.de.ref.txt" -i "$tmp/short.txt"
expect_error "missing file" "cannot open" -- "$gloss" eval "$data/val.de.ref.txt" -i "$tmp/nope.txt"
printf 'a\n\xff\n' >"$tmp/bad.txt"
printf 'a\nb\n' >"$tmp/ref2.txt"
expect_error "invalid utf-8" "bad.txt:2: invalid UTF-8" -- "$gloss" eval "$tmp/ref2.txt" -i "$tmp/bad.txt"
expect_error "directory" "is a directory; give a file" -- "$gloss" eval "$tmp" -i "$tmp/ref2.txt"
expect_error "unknown metric" "choose from: bleu, chrf, ter" -- "$gloss" eval "$tmp/ref2.txt" -i "$tmp/ref2.txt" -m rouge
# Numeric options have maxima: no allocation or loop sized by a user's number (issue 14, defect 5).
for opt in "--max-ngram-order 100000000" "--chrf-char-order 100000000" "--chrf-word-order 100000000" \
  "--paired-bs-n 2000000000" "--confidence-n 2000000000" "--threads 100000" "--num-refs 100000000"; do
  # shellcheck disable=SC2086
  expect_error "eval $opt" "${opt%% *} must be between" -- timeout 20 "$gloss" eval "$tmp/ref2.txt" -i "$tmp/ref2.txt" -m bleu chrf $opt
done
expect_error "unknown tokenizer" "choose one of: 13a, none, intl, char" -- "$gloss" eval "$tmp/ref2.txt" -i "$tmp/ref2.txt" --tokenize zh
expect_error "unknown option" "unrecognised option" -- "$gloss" eval "$tmp/ref2.txt" --frobnicate
expect_error "no references" "give at least one reference file" -- "$gloss" eval
expect_error "unknown command" "unknown command 'trian'" -- "$gloss" trian

finish
