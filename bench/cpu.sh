#!/usr/bin/env bash
# CPU time per proxied request, split into user and kernel (system) time: the bare nginx reverse
# proxy and `aiwaf serve` in --mode off and block, in front of bench-upstream, under wrk with the
# client-address pool of bench/proxy.sh. Reads utime/stime of every thread of each proxy from
# /proc before and after each run; a proxy's CPU per request is what decides its throughput when
# the box is saturated (load generator, proxy and upstream share the cores).
#   bench/cpu.sh [--duration 4] [--rounds 3] [--connections "16 64"]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=4 rounds=3 conns="16 64"
while [ $# -gt 0 ]; do
  case $1 in
    --duration) duration=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --connections) conns=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "installing wrk..." >&2; (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null; }
cargo build --release -q -p aiwaf -p aiwaf-bench
work=$(mktemp -d)
touch "$work/pids"
cleanup() { for p in $(cat "$work/pids"); do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_line() { # wait_line FILE -> the address its "listening on http://ADDR" line names
  for _ in $(seq 100); do
    a=$(grep -o 'http://[0-9.:]*' "$1" 2>/dev/null | head -1 | sed 's|http://||')
    [ -n "$a" ] && { echo "$a"; return; }
    sleep 0.1
  done
  echo "$1: did not start" >&2; exit 1
}
# each server in a session (scheduling autogroup) of its own, as nginx's daemon: see bench/proxy.sh
setsid target/release/bench-upstream 127.0.0.1:0 >"$work/up.out" 2>&1 &
echo $! >>"$work/pids"
up=$(wait_line "$work/up.out")
printf '[server]\ntrusted_proxies = ["127.0.0.1/32"]\n' >"$work/aiwaf.toml"
for mode in off block; do
  setsid env AIWAF_LOG=warn target/release/aiwaf serve --listen 127.0.0.1:0 --upstream "http://$up" --mode $mode \
    --data-dir "$work/$mode" --config "$work/aiwaf.toml" >"$work/$mode.out" 2>"$work/$mode.err" &
  echo $! >>"$work/pids"
  echo $! >"$work/$mode.pid"
  eval "addr_$mode=$(wait_line "$work/$mode.out")"
done
ngport=$(free_port)
mkdir -p "$work/nginx"
PLAIN=1 bench/modsec/start.sh "$work/nginx" "$ngport" "$up" >/dev/null
cat "$work/nginx/nginx.pid" >>"$work/pids"
addr_nginx="127.0.0.1:$ngport"

pids_of() { # the processes whose CPU counts: nginx's workers, or the aiwaf process
  case $1 in
    nginx) pgrep -P "$(cat "$work/nginx/nginx.pid")" ;;
    *) cat "$work/$1.pid" ;;
  esac
}
ticks() { # total utime and stime (clock ticks) of every thread of the given processes
  local u=0 s=0 a b
  for p in "$@"; do
    read -r a b < <(awk '{print $14, $15}' "/proc/$p/stat")
    u=$((u + a)) s=$((s + b))
  done
  echo "$u $s"
}
# each target first sees every client of the pool once (bench/sweep.sh): the rounds are of
# returning visitors, not first visits
for t in nginx off block; do
  eval "addr=\$addr_$t"
  bench/sweep.sh "http://$addr" 100000
done
hz=$(getconf CLK_TCK)
printf '%-6s %5s %10s %10s %10s %10s\n' target conns req/s user_us sys_us total_us
for c in $conns; do
  for t in nginx off block; do
    eval "addr=\$addr_$t"
    wrk -t2 -c"$c" -d2s -s bench/clients.lua "http://$addr" -- 100000 >/dev/null 2>&1 # warm-up
  done
  for r in $(seq "$rounds"); do
    for t in nginx off block; do
      eval "addr=\$addr_$t"
      pids=$(pids_of $t)
      read -r u0 s0 < <(ticks $pids)
      out=$(wrk -t2 -c"$c" -d"${duration}s" -s bench/clients.lua "http://$addr" -- 100000)
      read -r u1 s1 < <(ticks $pids)
      n=$(echo "$out" | awk '/requests in/ {print $1}')
      rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
      awk -v n="$n" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$hz" -v rps="$rps" \
        'BEGIN { printf "%.0f %.1f %.1f %.1f\n", rps, u/hz/n*1e6, s/hz/n*1e6, (u+s)/hz/n*1e6 }' >>"$work/$t-$c.txt"
    done
  done
  for t in nginx off block; do
    med() { cut -d' ' -f"$1" "$work/$t-$c.txt" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
    printf '%-6s %5s %10s %10s %10s %10s\n' "$t" "$c" "$(med 1)" "$(med 2)" "$(med 3)" "$(med 4)"
  done
done
echo "machine: $(nproc) cores; date: $(date -u +%Y-%m-%d); wrk -t2, ${duration}s per run, median of $rounds interleaved rounds; CPU from /proc/PID/stat (clock ticks of $((1000 / hz)) ms)"
