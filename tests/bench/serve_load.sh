#!/usr/bin/env bash
# Load test of gloss serve on 127.0.0.1: CLIENTS concurrent clients (keep-alive connections)
# each send REQUESTS requests of 1-3 Multi30k sentences (test_2016_flickr and val, English),
# beam 5. Every answer is compared with gloss translate of the same sentences (same model,
# beam and threads); prints errors, mismatches, latency p50/p99, sentences/s and the server's
# RSS through the run (sampled every 0.5 s).
# Usage: bash tests/bench/serve_load.sh MODEL [CLIENTS] [REQUESTS] [THREADS]   (needs python3)
set -euo pipefail
cd "$(dirname "$0")/../.."
model=$1
clients=${2:-16}
requests=${3:-2000}
threads=${4:-2}
gloss=build/gloss
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
tmp=$(mktemp -d)
spid=
trap '[ -n "$spid" ] && kill -9 "$spid" 2>/dev/null; rm -rf "$tmp"' EXIT

zcat data/multi30k/test_2016_flickr.en.gz data/multi30k/val.en.gz >"$tmp/pool.en"
echo "serve_load: reference translations of $(wc -l <"$tmp/pool.en") sentences with gloss translate" >&2
"$gloss" translate -m "$model" -i "$tmp/pool.en" -o "$tmp/pool.de" -b 5 --threads "$threads" 2>/dev/null

"$gloss" serve -m "$model" --port 0 --threads "$threads" --connections $((clients + 2)) 2>"$tmp/slog" &
spid=$!
for _ in $(seq 200); do grep -q "listening on" "$tmp/slog" 2>/dev/null && break; sleep 0.1; done
url=$(grep -oE 'http://[0-9.]+:[0-9]+' "$tmp/slog" | head -1)
[ -n "$url" ] || { echo "serve_load: the server did not start: $(cat "$tmp/slog")" >&2; exit 1; }
(while kill -0 "$spid" 2>/dev/null; do
  awk -v t="$(date +%s.%N)" '/^VmRSS/ {print t, $2}' "/proc/$spid/status" 2>/dev/null || true
  sleep 0.5
done) >"$tmp/rss" &
sampler=$!

python3 - "$url" "$tmp/pool.en" "$tmp/pool.de" "$clients" "$requests" <<'EOF'
import http.client, json, sys, threading, time, urllib.parse
url, src_path, ref_path, clients, requests = sys.argv[1:6]
clients, requests = int(clients), int(requests)
src = open(src_path, encoding="utf-8").read().split("\n")[:-1]
ref = open(ref_path, encoding="utf-8").read().split("\n")[:-1]
assert len(src) == len(ref)
host = urllib.parse.urlparse(url)
latencies, errors, mismatches, sentences = [], [0], [0], [0]
lock = threading.Lock()

def client(c):
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
    mine, bad, wrong, sent = [], 0, 0, 0
    for r in range(requests):
        k = 1 + (c * 7 + r) % 3
        start = (c * requests + r) * 3 % (len(src) - 3)
        body = json.dumps({"text": src[start:start + k], "beam_size": 5})
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/translate", body, {"Content-Type": "application/json"})
            res = conn.getresponse()
            data = res.read()
        except Exception:
            bad += 1
            conn.close()
            conn = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
            continue
        mine.append(time.perf_counter() - t0)
        if res.status != 200:
            bad += 1
            continue
        got = [t["text"] for t in json.loads(data)["translations"]]
        wrong += sum(1 for g, w in zip(got, ref[start:start + k]) if g != w) + abs(len(got) - k)
        sent += k
    with lock:
        latencies.extend(mine)
        errors[0] += bad
        mismatches[0] += wrong
        sentences[0] += sent

t0 = time.perf_counter()
threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
elapsed = time.perf_counter() - t0
latencies.sort()
pct = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000
print(f"BENCH serve_requests {clients * requests} ({clients} clients x {requests})")
print(f"BENCH serve_errors {errors[0]}")
print(f"BENCH serve_answers_differing_from_translate {mismatches[0]} of {sentences[0]} sentences")
print(f"BENCH serve_latency_p50 {pct(0.50):.1f} ms")
print(f"BENCH serve_latency_p99 {pct(0.99):.1f} ms")
print(f"BENCH serve_sentences_per_s {sentences[0] / elapsed:.1f}")
print(f"BENCH serve_wall {elapsed:.1f} s")
EOF
kill -TERM "$spid"
wait "$spid" || true
spid=
wait "$sampler" 2>/dev/null || true
grep "stopped after" "$tmp/slog" >&2 || true
# RSS through the run: at each tenth of it, and the peak.
awk '{r[NR] = $2; if ($2 > peak) peak = $2}
     END {
       printf "BENCH serve_rss_mb by tenths of the run:";
       for (i = 1; i <= 10; i++) printf " %.0f", r[int(NR * i / 10)] / 1024;
       printf "; peak %.0f MB\n", peak / 1024
     }' "$tmp/rss"
