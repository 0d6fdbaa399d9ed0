#!/usr/bin/env bash
# Proxy throughput: the upstream directly vs `aiwaf serve --mode off` vs `--mode block` vs
# nginx + ModSecurity 3 + OWASP CRS 3.3 (PL1, blocking; NO_MODSEC=1 skips it), side by side in one
# run, with wrk on loopback. Prints a table and writes bench/results/proxy.json.
#
#   bench/proxy.sh [--duration 4] [--rounds 7] [--connections "16 64"] [--clients 100000]
#
# Requests come from a pool of --clients addresses in 10.0.0.0/8 (sent as X-Forwarded-For by the
# trusted loopback load generator), so block mode runs every detector with per-client state at
# default limits (nobody is rate limited); --clients 0 makes every request a never-seen address
# (an attacker rotating IPs, the costliest case).
#
# Noise: on a small shared machine two identical proxies differ by up to ±10 % in one short run.
# So every target gets a warm-up run, the targets are interleaved and repeated and the medians
# reported, and two identical `--mode off` proxies are measured ("off" and "off2", an A/A
# control). The baseline of the vs_off column is the median of all their runs together; the
# two lines' own ratios show how far apart identical proxies came out in this run. The "spread"
# column is the range of the per-round ratios to the same round's off-mode mean. "vs_nginx" and
# "p99-nginx" are the issue's criteria taken round by round against the bare nginx proxy (req/s
# over nginx's, p99 minus nginx's in ms, each the median of the rounds).
#
# PIN=1: the proxies get core 1 (one worker thread each, --threads 1, unless THREADS is set), wrk
# and the upstream get core 0, so the proxy's own CPU cost per request decides its throughput
# (needs 2+ cores).
# B=PATH: an A/B run instead of A/A — "off2" and an added "block2" run the aiwaf binary at PATH
# (another build, e.g. the commit before), interleaved with this tree's build.
# TLS=1: the proxies (aiwaf and the bare nginx) terminate TLS with the same certificate (ECDSA
# P-256, made here with openssl); wrk speaks HTTPS to them; ModSecurity is left out.
# BARE=1: adds "bare", --mode block with every detector but the blacklist off (no payload
# inspection, no model): what the layer, the engine's bookkeeping and the client table cost
# without the detectors. RATE_OFF=1: rate limits raised out of reach (for small --clients pools,
# whose clients would otherwise be rate limited). THREADS=N: every aiwaf target runs N worker
# threads (--threads N; default one per core) and the nginx targets N worker processes
# (NGINX_WORKERS=auto keeps nginx at one per core).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=4
rounds=7
clients=100000
conns="16 64"
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --connections) conns=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)..." >&2
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi
cargo build --release -q -p aiwaf -p aiwaf-bench
work=$(mktemp -d)
touch "$work/pids"
# Processes are started inside $(...) subshells, so their pids go through a file.
cleanup() { for p in $(cat "$work/pids"); do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# Every server runs in a session of its own (setsid), as nginx's daemon puts itself: with the
# kernel's autogroups on (/proc/sys/kernel/sched_autogroup_enabled = 1 on our bench boxes) a
# session is a scheduling group, and CPU is shared between groups before threads. Started from
# this script's session, aiwaf and the upstream would share one group with wrk while nginx had
# one of its own. (Under systemd each service has a cgroup of its own: the same picture.)
start() { # start NAME CMD... ; waits for its "listening on http://ADDR" line, echoes ADDR
  local name=$1; shift
  setsid "$@" >"$work/$name.out" 2>"$work/$name.err" &
  echo $! >>"$work/pids"
  for _ in $(seq 100); do
    addr=$(grep -o 'https\?://[0-9.:]*' "$work/$name.out" 2>/dev/null | head -1 | sed 's|https\?://||')
    [ -n "$addr" ] && { echo "$addr"; return; }
    sleep 0.1
  done
  echo "$name did not start" >&2; cat "$work/$name.err" >&2; exit 1
}

pinned=0
if [ "${PIN:-0}" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  gen="taskset -c 0" prox="taskset -c 1" threads="--threads ${THREADS:-1}" pinned=1
else
  gen="" prox="" threads=""
  [ -n "${THREADS:-}" ] && threads="--threads $THREADS"
fi
[ -n "${THREADS:-}" ] && export NGINX_WORKERS=${NGINX_WORKERS:-$THREADS}
up=$(start upstream $gen target/release/bench-upstream 127.0.0.1:0)
cat >"$work/aiwaf.toml" <<TOML
[server]
trusted_proxies = ["127.0.0.1/32"]
TOML
if [ "${RATE_OFF:-0}" = 1 ]; then
  printf '[rate_limit]\nwindow = "1s"\nmax = 100000\nflood = 200000\nasset_max = 100000\nasset_flood = 200000\n' >>"$work/aiwaf.toml"
fi
cp "$work/aiwaf.toml" "$work/bare.toml"
cat bench/bare.toml >>"$work/bare.toml"
tls=""
scheme=http
if [ "${TLS:-0}" = 1 ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
  tls="--tls-cert $work/cert.pem --tls-key $work/key.pem"
  scheme=https
  NO_MODSEC=1
fi
off=$(start off $prox target/release/aiwaf serve --listen 127.0.0.1:0 --upstream "http://$up" --mode off --data-dir "$work/off" --config "$work/aiwaf.toml" $threads $tls)
off2=$(start off2 $prox "${B:-target/release/aiwaf}" serve --listen 127.0.0.1:0 --upstream "http://$up" --mode off --data-dir "$work/off2" --config "$work/aiwaf.toml" $threads $tls)
block=$(start block env AIWAF_LOG=warn $prox target/release/aiwaf serve --listen 127.0.0.1:0 --upstream "http://$up" --mode block --data-dir "$work/block" --config "$work/aiwaf.toml" $threads $tls)
bare=""
[ "${BARE:-0}" = 1 ] && bare=$(start bare env AIWAF_LOG=warn $prox target/release/aiwaf serve --listen 127.0.0.1:0 --upstream "http://$up" --mode block --data-dir "$work/bare" --config "$work/bare.toml" $threads $tls)
block2=""
[ -n "${B:-}" ] && block2=$(start block2 env AIWAF_LOG=warn $prox "$B" serve --listen 127.0.0.1:0 --upstream "http://$up" --mode block --data-dir "$work/block2" --config "$work/aiwaf.toml" $threads $tls)
# the bare nginx reverse proxy (what "as fast as nginx" is measured against) is always a
# target; TLS=1 gives it the same certificate as aiwaf
ngport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/nginx"
if [ "${TLS:-0}" = 1 ]; then
  PLAIN=1 TLS_CERT="$work/cert.pem" TLS_KEY="$work/key.pem" $prox bench/modsec/start.sh "$work/nginx" "$ngport" "$up" >/dev/null
else
  PLAIN=1 $prox bench/modsec/start.sh "$work/nginx" "$ngport" "$up" >/dev/null
fi
cat "$work/nginx/nginx.pid" >>"$work/pids"
nginx="127.0.0.1:$ngport"
targets="direct nginx off off2 block${bare:+ bare}${B:+ block2}"
if [ "${NO_MODSEC:-0}" != 1 ] && [ "${TLS:-0}" != 1 ]; then
  msport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$work/modsec"
  $prox bench/modsec/start.sh "$work/modsec" "$msport" "$up" >/dev/null
  cat "$work/modsec/nginx.pid" >>"$work/pids"
  modsec="127.0.0.1:$msport"
  targets="direct nginx off off2 block${bare:+ bare}${B:+ block2} modsec"
fi

run() { # run LABEL ADDR CONNS -> "rps p50_ms p99_ms non2xx"
  local out
  out=$($gen wrk -t2 -c"$3" -d"${duration}s" --latency -s bench/clients.lua "$2" -- "$clients" 2>&1)
  echo "$out" >"$work/wrk-$1-$3.txt"
  local rps p50 p99 bad
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  bad=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  echo "$rps $(to_ms "$p50") $(to_ms "$p99") ${bad:-0}"
}
to_ms() { # wrk prints 1.23ms / 456.00us / 1.02s
  local v=$1
  case "$v" in
    *us) awk -v x="${v%us}" 'BEGIN{printf "%.3f", x/1000}' ;;
    *ms) awk -v x="${v%ms}" 'BEGIN{printf "%.3f", x}' ;;
    *s) awk -v x="${v%s}" 'BEGIN{printf "%.3f", x*1000}' ;;
    *) echo "$v" ;;
  esac
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
addr_of() { case $1 in direct) echo "$up" ;; off) echo "$off" ;; off2) echo "$off2" ;; block) echo "$block" ;; bare) echo "$bare" ;; block2) echo "$block2" ;; modsec) echo "$modsec" ;; nginx) echo "$nginx" ;; esac; }
url_of() { case $1 in direct|modsec) echo "http://$(addr_of "$1")" ;; *) echo "$scheme://$(addr_of "$1")" ;; esac; }

# Every target first sees each client of the pool once (bench/sweep.sh): the measured rounds are
# then of returning visitors, as the pool is meant to be, not a mix of returning and first visits
# that shifts from round to round. The cost of first visits is what --clients 0 measures.
if [ "$clients" -gt 0 ]; then
  for t in $targets; do $gen bench/sweep.sh "$(url_of "$t")" "$clients"; done
fi

mkdir -p bench/results
json="["
printf '%-8s %5s %12s %9s %9s %8s %8s %13s %9s %10s\n' target conns req/s p50_ms p99_ms non2xx vs_off spread vs_nginx p99-nginx
for c in $conns; do
  # Warm up every target (connection pools, client tables, caches), then interleave the targets
  # and repeat, so drift on a shared box hits all alike; report the medians of the rounds.
  for t in $targets; do
    $gen wrk -t2 -c"$c" -d2s -s bench/clients.lua "$(url_of "$t")" -- "$clients" >/dev/null 2>&1
  done
  for r in $(seq "$rounds"); do
    for t in $targets; do
      run "$t" "$(url_of "$t")" "$c" >>"$work/$t-$c.txt"
    done
  done
  o_rps=$(cut -d' ' -f1 "$work/off-$c.txt" "$work/off2-$c.txt" | median)
  paste -d' ' "$work/off-$c.txt" "$work/off2-$c.txt" | awk '{print ($1+$5)/2}' >"$work/offmean-$c.txt"
  for t in $targets; do
    rps=$(cut -d' ' -f1 "$work/$t-$c.txt" | median)
    p50=$(cut -d' ' -f2 "$work/$t-$c.txt" | median)
    p99=$(cut -d' ' -f3 "$work/$t-$c.txt" | median)
    bad=$(cut -d' ' -f4 "$work/$t-$c.txt" | sort -g | tail -1)
    ratio=$(awk -v a="$rps" -v b="$o_rps" 'BEGIN{printf "%.3f", a/b}')
    # Per-round ratios to the mean of the same round's two off-mode runs.
    spread=$(paste -d' ' "$work/$t-$c.txt" "$work/offmean-$c.txt" | awk '{r=$1/$5; if (NR==1||r<lo) lo=r; if (NR==1||r>hi) hi=r} END {printf "%.2f-%.2f", lo, hi}')
    # The issue's criteria, round by round: req/s over nginx's in the same round, and p99 minus
    # nginx's (ms); medians of the rounds.
    vs_ng=$(paste -d' ' "$work/$t-$c.txt" "$work/nginx-$c.txt" | awk '{print $1/$5}' | median)
    p99_ng=$(paste -d' ' "$work/$t-$c.txt" "$work/nginx-$c.txt" | awk '{print $3-$7}' | median)
    vs_ng=$(awk -v x="$vs_ng" 'BEGIN{printf "%.3f", x}') p99_ng=$(awk -v x="$p99_ng" 'BEGIN{printf "%.2f", x}')
    printf '%-8s %5s %12s %9s %9s %8s %8s %13s %9s %10s\n' "$t" "$c" "$rps" "$p50" "$p99" "$bad" "$ratio" "$spread" "$vs_ng" "$(awk -v x="$p99_ng" 'BEGIN{printf "%+.2f", x}')"
    json="$json{\"target\":\"$t\",\"connections\":$c,\"rps\":$rps,\"p50_ms\":$p50,\"p99_ms\":$p99,\"non_2xx\":$bad,\"vs_off\":$ratio,\"round_ratio_range\":\"$spread\",\"vs_nginx\":$vs_ng,\"p99_minus_nginx_ms\":$p99_ng},"
  done
done
json="${json%,}]"
out=bench/results/proxy.json
[ "$clients" = 0 ] && out=bench/results/proxy-rotating.json
[ "$pinned" = 1 ] && out="${out%.json}-pinned.json"
[ "${TLS:-0}" = 1 ] && out="${out%.json}-tls.json"
echo "$json" >"$out"
echo "$([ "${TLS:-0}" = 1 ] && echo "TLS: aiwaf and nginx terminate TLS (ECDSA P-256, same certificate); ")machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); date: $(date -u +%Y-%m-%d); wrk -t2, ${duration}s per run, median of $rounds interleaved rounds after a warm-up; clients: $([ "$clients" = 0 ] && echo "every request a new address" || echo "pool of $clients"); $([ "$pinned" = 1 ] && echo "pinned: proxies on core 1, wrk + upstream on core 0" || echo "not pinned: everything shares all cores")$([ -n "${THREADS:-}" ] && echo "; aiwaf --threads $THREADS, nginx worker_processes $NGINX_WORKERS")"
