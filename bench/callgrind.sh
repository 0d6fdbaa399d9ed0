#!/usr/bin/env bash
# Instructions per proxied request, under callgrind: the same Debian nginx as a plain reverse
# proxy (one worker, no master) and `aiwaf serve` (one worker thread) in --mode off and block,
# in front of bench-upstream. Wall-clock throughput moves by 2x on a shared 2-core box;
# instruction counts repeat to a fraction of a percent. Each target runs twice (N1 and N2
# keep-alive GETs over one connection, from a pool of client addresses as in bench/proxy.sh);
# per request = (Ir(N2) - Ir(N1)) / (N2 - N1), so start-up and shutdown cancel out. aiwaf's
# background work (the storage check every reload_interval, a full resync every 30 s) runs by
# the clock, and under valgrind a run lasts ~50x longer, so it lands in the count unevenly: with
# 1,000 requests between N1 and N2, runs of one build differed by up to 1.4k per request; with
# 4,000 (the default) they agree within ~0.4k.
#   bench/callgrind.sh [--n1 1000] [--n2 5000] [--top 25]
# BARE=1 adds "bare": block mode with every detector but the blacklist off (as in bench/proxy.sh),
# the per-request machinery of block mode without the detectors' work.
# Writes bench/results/callgrind-<target>.txt (callgrind_annotate of the N2 run). KEEP=DIR also
# copies the raw callgrind files there (cg.<target>.<N>), for callgrind_annotate --inclusive=yes
# --tree=caller and the like. TARGETS="off block" runs only those targets.
set -euo pipefail
cd "$(dirname "$0")/.."
n1=1000 n2=5000 top=25
while [ $# -gt 0 ]; do
  case $1 in
    --n1) n1=$2; shift 2 ;;
    --n2) n2=$2; shift 2 ;;
    --top) top=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v valgrind >/dev/null || { echo "installing valgrind..." >&2; (apt-get update -qq && apt-get install -y -qq valgrind) >/dev/null; }
command -v nginx >/dev/null || { echo "installing nginx..." >&2; (apt-get update -qq && apt-get install -y -qq nginx) >/dev/null; }
cargo build --release -q -p aiwaf -p aiwaf-bench
work=$(mktemp -d)
mkdir -p bench/results
cleanup() { [ -f "$work/pids" ] && for p in $(cat "$work/pids"); do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
target/release/bench-upstream 127.0.0.1:0 >"$work/up.out" 2>&1 &
echo $! >>"$work/pids"
for _ in $(seq 100); do up=$(grep -o '127.0.0.1:[0-9]*' "$work/up.out" | head -1 || true); [ -n "$up" ] && break; sleep 0.1; done
[ -n "$up" ] || { echo "upstream did not start" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# GETs over one keep-alive connection, as bench/clients.lua sends them
load() { # load PORT N
  python3 - "$1" "$2" <<'PY'
import http.client, random, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
paths = ["/", "/blog/2024/05/hello-world/", "/static/css/app.css", "/api/items?page=2", "/en/profile/"]
rnd = random.Random(42)
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for _ in range(n):
    k = rnd.randint(1, 100000)
    ip = f"10.{k // 65536 % 256}.{k // 256 % 256}.{k % 256}"
    c.request("GET", rnd.choice(paths), headers={"X-Forwarded-For": ip, "Accept": "text/html"})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
PY
}

wait_port() { for _ in $(seq 600); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return; sleep 0.1; done; echo "port $1 never answered" >&2; exit 1; }

run() { # run TARGET N -> prints total Ir of the process
  local name=$1 n=$2 port out
  port=$(free_port)
  out="$work/cg.$name.$n"
  case $name in
    nginx)
      mkdir -p "$work/ng/tmp"
      cat >"$work/ng/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1;
pid $work/ng/nginx.pid;
error_log $work/ng/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/ng/tmp/body; proxy_temp_path $work/ng/tmp/proxy;
  fastcgi_temp_path $work/ng/tmp/fcgi; uwsgi_temp_path $work/ng/tmp/uwsgi; scgi_temp_path $work/ng/tmp/scgi;
  upstream app { server $up; keepalive 64; }
  server {
    listen 127.0.0.1:$port;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host \$host; }
  }
}
CONF
      valgrind --tool=callgrind --callgrind-out-file="$out" nginx -c "$work/ng/nginx.conf" -p "$work/ng" 2>"$work/vg.err" &
      ;;
    off|block|bare)
      rm -rf "$work/data.$name"
      printf '[server]\ntrusted_proxies = ["127.0.0.1/32"]\n' >"$work/aiwaf.toml"
      [ "$name" = bare ] && cat bench/bare.toml >>"$work/aiwaf.toml"
      valgrind --tool=callgrind --callgrind-out-file="$out" target/release/aiwaf serve --listen "127.0.0.1:$port" \
        --upstream "http://$up" --mode "$([ "$name" = bare ] && echo block || echo "$name")" --threads 1 \
        --data-dir "$work/data.$name" --config "$work/aiwaf.toml" >"$work/aiwaf.out" 2>"$work/vg.err" &
      ;;
  esac
  local pid=$!
  wait_port "$port"
  load "$port" "$n"
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  # the warm-up requests of wait_port are in both runs alike
  awk '/^summary:|^totals:/ {print $2; exit}' "$out"
}

printf '%-8s %12s %12s %14s\n' target "Ir(N=$n1)" "Ir(N=$n2)" "Ir/request"
targets="${TARGETS:-nginx off block}"
[ "${BARE:-0}" = 1 ] && targets="$targets bare"
for t in $targets; do
  a=$(run "$t" "$n1")
  b=$(run "$t" "$n2")
  per=$(( (b - a) / (n2 - n1) ))
  printf '%-8s %12s %12s %14s\n' "$t" "$a" "$b" "$per"
  eval "per_$t=$per"
  [ -n "${KEEP:-}" ] && mkdir -p "$KEEP" && cp "$work/cg.$t.$n1" "$work/cg.$t.$n2" "$KEEP/"
  # per request by function: the N2 run minus the N1 run, divided by the requests between them
  python3 - "$work/cg.$t.$n1" "$work/cg.$t.$n2" "$((n2 - n1))" "$top" >"bench/results/callgrind-$t.txt" <<'PY'
import collections, re, subprocess, sys
def by_function(path):
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--auto=no", "--threshold=100", path],
                         capture_output=True, text=True).stdout
    acc = collections.Counter()
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(.*)$", line)
        if m and "PROGRAM TOTALS" not in line:
            where = m.group(2)
            fn = where.split(":", 1)[1] if ":" in where else where
            acc[re.sub(r" \[.*\]$", "", fn)] += int(m.group(1).replace(",", ""))
    return acc
a, b = by_function(sys.argv[1]), by_function(sys.argv[2])
n, top = int(sys.argv[3]), int(sys.argv[4])
diff = {k: (b[k] - a.get(k, 0)) / n for k in b}
total = sum(v for v in diff.values())
print(f"instructions per request by function (exclusive), total {total:,.0f}")
for k, v in sorted(diff.items(), key=lambda kv: -kv[1])[:top]:
    print(f"{v:10,.0f}  {100 * v / total:5.1f}%  {k[:150]}")
PY
done
[ -n "${per_nginx:-}" ] && [ -n "${per_off:-}" ] && [ -n "${per_block:-}" ] && echo "aiwaf off / nginx: $(python3 -c "print(round($per_off / $per_nginx, 2))")x the instructions; block / nginx: $(python3 -c "print(round($per_block / $per_nginx, 2))")x$([ -n "${per_bare:-}" ] && echo "; bare / nginx: $(python3 -c "print(round($per_bare / $per_nginx, 2))")x")"
echo "machine: $(nproc) cores; date: $(date -u +%Y-%m-%d); $((n2 - n1)) requests over one keep-alive connection, valgrind $(valgrind --version)"
