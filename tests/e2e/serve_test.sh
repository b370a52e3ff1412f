#!/usr/bin/env bash
# End to end: gloss serve with curl. Answers equal gloss translate's, sent alone or by
# concurrent clients (batched together); every kind of bad request gets a 4xx JSON error and
# a good request still succeeds after it; a full queue answers 503; SIGTERM finishes the
# request in flight and exits 0.
# Usage: serve_test.sh GLOSS_BINARY SOURCE_DIR
set -uo pipefail
gloss=$1
src=$2
tmp=$(mktemp -d)
spid=
trap '[ -n "$spid" ] && kill -9 "$spid" 2>/dev/null; rm -rf "$tmp"' EXIT
source "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || { echo "FAIL: curl is missing (scripts/install-deps.sh installs it)"; exit 1; }

d=$src/data/multi30k
tiny_model

# post BODY_FILE OUT: POSTs to /translate, prints the HTTP status.
post() { curl -s -o "$2" -w '%{http_code}' -X POST "$url/translate" -H 'Content-Type: application/json' --data-binary "@$1"; }
# JSON string of a text line.
json_string() { printf '"%s"' "$(sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' <<<"$1")"; }
# The "text" of each translation of an answer, one per line (JSON-escaped as sent).
texts() { grep -oE '"text":"([^"\\]|\\.)*"' "$1" | sed -E 's/^"text":"//; s/"$//'; }

zcat "$d/test_2016_flickr.en.gz" | head -60 >"$tmp/in.en"
"$gloss" translate -m "$model" -i "$tmp/in.en" -b 5 --threads 2 2>/dev/null | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' >"$tmp/want"

start_server --threads 2 --window-ms 50 --max-body-bytes 4096 --max-sentences 8 --max-sentence-bytes 300 --timeout 1
curl -s -o "$tmp/health" "$url/health"
grep -q '"status": "ok"' "$tmp/health" && pass || fail "health"
port=${url##*:}
expect_error "port in use" "cannot listen on 127.0.0.1:$port (in use" -- timeout 20 "$gloss" serve -m "$model" --port "$port"
curl -s -o "$tmp/page.html" "$url/"
grep -q '<title>Gloss translate</title>' "$tmp/page.html" && ! grep -qE '<script src=|<link |@import|url\(' "$tmp/page.html" && pass \
  || fail "the page is served, with nothing external"

# Each sentence alone, one request after another.
: >"$tmp/alone"
while IFS= read -r line; do
  printf '{"text": [%s]}' "$(json_string "$line")" >"$tmp/req"
  [ "$(post "$tmp/req" "$tmp/ans")" = 200 ] || fail "alone: status for '$line'"
  texts "$tmp/ans" >>"$tmp/alone"
done <"$tmp/in.en"
cmp -s "$tmp/alone" "$tmp/want" && pass || fail "sentences sent alone differ from gloss translate: $(diff "$tmp/alone" "$tmp/want" | head -3)"

# Three sentences a request, 20 requests from 8 concurrent clients: batched together.
before=$(curl -s "$url/health" | grep -oE '"batches": [0-9]+' | grep -oE '[0-9]+$')
for i in $(seq 0 19); do
  mapfile -t group < <(sed -n "$((3 * i + 1)),$((3 * i + 3))p" "$tmp/in.en")
  printf '{"text": [%s, %s, %s], "beam_size": 5}' "$(json_string "${group[0]}")" "$(json_string "${group[1]}")" \
    "$(json_string "${group[2]}")" >"$tmp/req.$i"
done
seq 0 19 | xargs -P 8 -I{} sh -c "curl -s -o '$tmp/ans.{}' -X POST '$url/translate' --data-binary '@$tmp/req.{}'"
for i in $(seq 0 19); do texts "$tmp/ans.$i"; done >"$tmp/together"
cmp -s "$tmp/together" "$tmp/want" && pass || fail "concurrent requests differ from gloss translate: $(diff "$tmp/together" "$tmp/want" | head -3)"
after=$(curl -s "$url/health" | grep -oE '"batches": [0-9]+' | grep -oE '[0-9]+$')
[ $((after - before)) -lt 20 ] && pass || fail "20 concurrent requests took $((after - before)) batches: none shared"

# n-best and alignment.
printf '{"text": "A man rides a bike.", "beam_size": 4, "n_best": 3, "alignment": true}' >"$tmp/req"
[ "$(post "$tmp/req" "$tmp/ans")" = 200 ] && [ "$(grep -o '"score"' "$tmp/ans" | wc -l)" -eq 4 ] \
  && grep -q '"weights":\[\[' "$tmp/ans" && grep -q '"source":\["' "$tmp/ans" && pass \
  || fail "n-best and alignment: $(head -c 300 "$tmp/ans")"

good_request() {
  printf '{"text": ["Two dogs play in the snow."]}' >"$tmp/good"
  [ "$(post "$tmp/good" "$tmp/goodans")" = 200 ] && grep -q '"translations"' "$tmp/goodans" && pass \
    || fail "a good request after $1 failed"
}
# bad NAME STATUS BODY_FILE: the status, a JSON error, then a good request.
bad() {
  local got
  got=$(post "$3" "$tmp/badans")
  [ "$got" = "$2" ] && grep -q '^{"error":"' "$tmp/badans" && pass || fail "$1: status $got, body $(head -c 200 "$tmp/badans")"
  good_request "$1"
}
printf '{"text": [' >"$tmp/b1"; bad "truncated JSON" 400 "$tmp/b1"
printf '{"text": "\xff\xfe"}' >"$tmp/b2"; bad "invalid UTF-8" 400 "$tmp/b2"
head -c 5000 /dev/zero | tr '\0' a | sed 's/^/{"text": "/; s/$/"}/' >"$tmp/b3"; bad "body over the limit" 413 "$tmp/b3"
printf '{"text": ["a","b","c","d","e","f","g","h","i"]}' >"$tmp/b4"; bad "too many sentences" 413 "$tmp/b4"
printf '{"text": "%s"}' "$(head -c 400 /dev/zero | tr '\0' a)" >"$tmp/b5"; bad "an over-long sentence" 413 "$tmp/b5"
printf '{"text": 5}' >"$tmp/b6"; bad "text not a string" 400 "$tmp/b6"
printf '{"text": "x", "beam_size": 0}' >"$tmp/b7"; bad "beam_size 0" 400 "$tmp/b7"
printf '{"text": "x", "beam_size": 2, "n_best": 3}' >"$tmp/b8"; bad "n_best over beam" 400 "$tmp/b8"
printf '{"text": "x", "beams": 2}' >"$tmp/b9"; bad "unknown field" 400 "$tmp/b9"
printf '[1, 2]' >"$tmp/b10"; bad "not an object" 400 "$tmp/b10"
printf '{"text": "a\\nb"}' >"$tmp/b11"; bad "a line break in a sentence" 400 "$tmp/b11"
printf '{"text": "x", "beam_size": 1e999}' >"$tmp/b12"; bad "a number beyond a double" 400 "$tmp/b12"
code=$(curl -s -o "$tmp/ans" -w '%{http_code}' "$url/nothing")
[ "$code" = 404 ] && grep -q '"error"' "$tmp/ans" && pass || fail "unknown path: $code"
code=$(curl -s -D "$tmp/head" -o "$tmp/ans" -w '%{http_code}' "$url/translate")
[ "$code" = 405 ] && grep -qi '^Allow: POST' "$tmp/head" && grep -q 'use POST /translate' "$tmp/ans" && pass \
  || fail "GET /translate: $code $(cat "$tmp/ans")"
code=$(curl -s -o /dev/null -w '%{http_code}' -d '{}' "$url/health")
[ "$code" = 405 ] && pass || fail "POST /health: $code"
# A slow client (half a request, then silence) is dropped after --timeout; others are served meanwhile.
tcp=/dev/tcp/$(sed -E 's|http://([^:]+):([0-9]+)|\1/\2|' <<<"$url")
exec 3<>"$tcp"
printf 'POST /translate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"te' >&3
good_request "a slow client connected"
if timeout 5 cat <&3 >/dev/null; then pass; else fail "the slow client was not dropped within 5 s"; fi
exec 3>&-
# A client that sends a request and vanishes before the answer.
exec 3<>"$tcp"
printf 'POST /translate HTTP/1.1\r\nHost: x\r\nContent-Length: 29\r\n\r\n{"text": "A dog runs fast."}' >&3
exec 3>&-
good_request "a vanished client"
kill -0 "$spid" 2>/dev/null && pass || fail "the server died"
kill -TERM "$spid"; wait "$spid"; rc=$?; spid=
[ "$rc" -eq 0 ] && grep -q "stopped after" "$tmp/slog" && pass || fail "SIGTERM: exit $rc"

# A full queue answers 503; SIGTERM answers the request in flight before exiting 0.
start_server --threads 2 --window-ms 1500 --max-sentences 8 --max-queued 8
printf '{"text": ["a","b","c","d","e","f","g","h"]}' >"$tmp/eight"
(post "$tmp/eight" "$tmp/inflight" >"$tmp/inflight_code") &
client=$!
sleep 0.4
printf '{"text": "one more"}' >"$tmp/one"
code=$(curl -s -D "$tmp/headers" -o "$tmp/ans" -w '%{http_code}' -X POST "$url/translate" --data-binary "@$tmp/one")
[ "$code" = 503 ] && grep -qi '^Retry-After' "$tmp/headers" && grep -q '"error"' "$tmp/ans" && pass \
  || fail "full queue: status $code"
kill -TERM "$spid"; wait "$spid"; rc=$?; spid=
wait "$client"
[ "$rc" -eq 0 ] && [ "$(cat "$tmp/inflight_code")" = 200 ] && [ "$(texts "$tmp/inflight" | wc -l)" -eq 8 ] && pass \
  || fail "SIGTERM with a request in flight: exit $rc, its status $(cat "$tmp/inflight_code")"
finish
