#!/usr/bin/env bash
# gloss serve's page in a real browser: headless Chromium (Debian's) loads
# /?text=SENTENCE, whose script posts the sentence to /translate and draws the answer; the
# rendered page must show the same translation gloss translate gives, an n-best list and an
# attention heat map with a cell per (output, source) subword pair. The screenshot is kept in
# ARTIFACT_DIR/serve_page.png.
# Usage: browser_test.sh GLOSS_BINARY SOURCE_DIR ARTIFACT_DIR
set -uo pipefail
gloss=$1
src=$2
artifacts=$3
tmp=$(mktemp -d)
spid=
trap '[ -n "$spid" ] && kill -9 "$spid" 2>/dev/null; rm -rf "$tmp"' EXIT
source "$(dirname "$0")/lib.sh"
browser=$(command -v chromium || true)
[ -n "$browser" ] || { echo "FAIL: chromium is missing (scripts/install-deps.sh installs it)"; exit 1; }
mkdir -p "$artifacts"

tiny_model
start_server

sentence="A man rides a bike."
want=$(echo "$sentence" | "$gloss" translate -m "$model" -b 5 2>/dev/null | sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g')
# The flags Chromium needs as root in a container with no network beyond loopback.
chrome() {
  timeout 90 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --user-data-dir="$tmp/profile" \
    --virtual-time-budget=15000 "$@" 2>>"$tmp/chrome.log"
}
page="$url/?text=A%20man%20rides%20a%20bike."
chrome --dump-dom "$page" >"$tmp/dom.html" || fail "chromium --dump-dom exit $?: $(tail -2 "$tmp/chrome.log")"
grep -qF "<div class=\"translation\">$want<span class=\"score\">" "$tmp/dom.html" && pass \
  || fail "the page does not show gloss translate's translation '$want': $(grep -oE 'class="translation">[^<]*' "$tmp/dom.html")"
[ "$(grep -oE '<ol class="nbest"><li>' "$tmp/dom.html" | wc -l)" -eq 1 ] && pass || fail "no n-best list on the page"
cells=$(grep -oE '<table class="heatmap">.*</table>' "$tmp/dom.html" | grep -oE '<td title="[0-9.]+" style="background: rgba' | wc -l)
rows=$(grep -oE '<table class="heatmap">.*</table>' "$tmp/dom.html" | grep -oE '<tbody>.*' | grep -oE '<tr>' | wc -l)
cols=$(grep -oE '<table class="heatmap">.*</table>' "$tmp/dom.html" | grep -oE '<thead>.*</thead>' | grep -oE '<th>' | wc -l)
[ "$rows" -gt 0 ] && [ "$cols" -gt 1 ] && [ "$cells" -eq $((rows * (cols - 1))) ] && pass \
  || fail "heat map: $rows rows, $cols header cells, $cells cells"
grep -qE 'id="status"[^>]*>1 sentence\(s\) in [0-9]+ ms' "$tmp/dom.html" && pass || fail "status line: $(grep -oE 'id="status"[^<]*' "$tmp/dom.html")"
chrome --window-size=1000,900 --screenshot="$artifacts/serve_page.png" "$page" >/dev/null \
  && [ "$(head -c 8 "$artifacts/serve_page.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] && pass \
  || fail "no screenshot: $(tail -2 "$tmp/chrome.log")"
kill -TERM "$spid"; wait "$spid"; spid=
finish
