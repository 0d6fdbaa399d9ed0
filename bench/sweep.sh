#!/usr/bin/env bash
# Has every client of a pool seen once by the proxy at URL: wrk walks the pool in order
# (bench/clients.lua's "sweep"), in runs of 3 s, each run going on where the last stopped, until
# the pool is covered. bench/proxy.sh and bench/cpu.sh run it on every target before measuring,
# so their rounds are of returning visitors — drawn at random, most of a 100,000-address pool is
# still unseen after the first seconds, and a WAF pays for a client's first visit.
#   bench/sweep.sh URL POOL
set -euo pipefail
cd "$(dirname "$0")/.."
url=$1 pool=$2 seen=0
for _ in $(seq 20); do
  [ "$seen" -ge "$pool" ] && exit 0
  n=$(wrk -t2 -c64 -d3s -s bench/clients.lua "$url" -- "$pool" sweep 2 "$seen" 2>/dev/null | awk '/requests in/ {print $1}')
  seen=$((seen + ${n:-0}))
done
echo "sweep of $url covered $seen of $pool clients" >&2
