#!/usr/bin/env bash
# Memory under IP rotation: RSS of `aiwaf serve --mode block` while ~1M distinct client addresses
# pass (X-Forwarded-For from the trusted loopback load generator), sampled every second.
#   bench/rotation.sh [--seconds 45]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=45
[ "${1:-}" = "--seconds" ] && secs=$2
command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
cargo build --release -q -p aiwaf -p aiwaf-bench
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
target/release/bench-upstream 127.0.0.1:0 >"$work/up.out" &
pids+=($!)
sleep 0.3
up=$(grep -o 'http://[0-9.:]*' "$work/up.out")
printf '[server]\ntrusted_proxies = ["127.0.0.1/32"]\n' >"$work/aiwaf.toml"
AIWAF_LOG=warn target/release/aiwaf serve --listen 127.0.0.1:0 --upstream "$up" --data-dir "$work/data" --config "$work/aiwaf.toml" >"$work/aiwaf.out" &
pid=$!
pids+=($pid)
sleep 0.5
addr=$(grep -o 'http://[0-9.:]*' "$work/aiwaf.out" | head -1)
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
start_rss=$(rss)
(while kill -0 "$pid" 2>/dev/null; do rss >>"$work/rss.txt"; sleep 1; done) &
pids+=($!)
wrk -t2 -c32 -d"${secs}s" -s bench/clients.lua "$addr" -- 0 >"$work/wrk.txt"
requests=$(awk '/requests in/ {print $1}' "$work/wrk.txt")
sleep 1
max_rss=$(sort -n "$work/rss.txt" | tail -1)
end_rss=$(rss)
mkdir -p bench/results
printf '{"distinct_clients": %s, "seconds": %s, "rss_start_kib": %s, "rss_max_kib": %s, "rss_end_kib": %s, "client_capacity": 100000}\n' \
  "$requests" "$secs" "$start_rss" "$max_rss" "$end_rss" >bench/results/rotation.json
echo "$requests distinct client addresses in ${secs}s: RSS $((start_rss/1024)) MiB at start, max $((max_rss/1024)) MiB, $((end_rss/1024)) MiB at end (client table capped at 100000)"
awk 'NR % 5 == 1 {printf "%ds:%dMiB ", NR-1, $1/1024} END {print ""}' "$work/rss.txt"
