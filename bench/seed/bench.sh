#!/usr/bin/env bash
# aiwaf in Rust against the seed it replaces, aiwaf 0.1.9.1.6 (Django middleware), side by side:
#   1. throughput: Django alone, Django + the seed's middleware, Django + this repository's Python
#      package (the same middleware names, the Rust engine in-process), Django behind `aiwaf serve`;
#   2. training: `aiwaf train` vs `manage.py detect_and_train` on the same generated traffic
#      (the seed needs its `response-time=` suffix, which `aiwaf train` also reads).
# Installs aiwaf==0.1.9.1.6, Django and gunicorn from PyPI into a cached venv, and this
# repository's package (`pip install .`, a release build) with the same Django into another
# (both are imported as `aiwaf`).
#   bench/seed/bench.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/../.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1
cache=${AIWAF_BENCH_CACHE:-$HOME/.cache/aiwaf-bench}
venv=$cache/seed-venv
if [ ! -x "$venv/bin/gunicorn" ] || ! "$venv/bin/python" -c 'import aiwaf' 2>/dev/null; then
  echo "installing aiwaf==0.1.9.1.6, Django, gunicorn into $venv ..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "aiwaf==0.1.9.1.6" "Django>=4.2,<5.2" gunicorn
fi
rsvenv=$cache/rs-venv
[ -x "$rsvenv/bin/gunicorn" ] || { python3 -m venv "$rsvenv" && "$rsvenv/bin/pip" install -q "Django>=4.2,<5.2" gunicorn; }
echo "building this repository's Python package (release) into $rsvenv ..." >&2
"$rsvenv/bin/pip" install -q --force-reinstall --no-deps .
command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
cargo build --release -q -p aiwaf -p aiwaf-bench
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
cp -r bench/seed/site "$work/site"
export SITE_DB=$work/site/db.sqlite3
export DJANGO_SETTINGS_MODULE=site_proj.settings
(cd "$work/site" && WITH_AIWAF=1 "$venv/bin/python" manage.py makemigrations aiwaf -v 0 2>/dev/null; WITH_AIWAF=1 "$venv/bin/python" manage.py migrate -v 0) >/dev/null 2>&1
# this package: its own database (the store's tables), created by `migrate` as its README says
rs_env=(WITH_AIWAF=1 SITE_DB="$work/site/rs.sqlite3" AIWAF_RATE_MAX=1000000 AIWAF_RATE_FLOOD=2000000 AIWAF_TRUSTED_PROXIES=127.0.0.1/32)
(cd "$work/site" && env "${rs_env[@]}" "$rsvenv/bin/python" manage.py migrate -v 0) >/dev/null
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
p_plain=$(freeport); p_seed=$(freeport); p_rs=$(freeport)
(cd "$work/site" && WITH_AIWAF=0 exec "$venv/bin/gunicorn" -w 2 -b "127.0.0.1:$p_plain" --log-level warning --no-control-socket site_proj.wsgi:application) &
pids+=($!)
# The seed with limits raised so the benchmark measures its allow path, not its 429s.
(cd "$work/site" && WITH_AIWAF=1 AIWAF_RATE_MAX=1000000 AIWAF_RATE_FLOOD=2000000 exec "$venv/bin/gunicorn" -w 2 -b "127.0.0.1:$p_seed" --log-level warning --no-control-socket site_proj.wsgi:application) &
pids+=($!)
(cd "$work/site" && exec env "${rs_env[@]}" AIWAF_DATA_DIR="$work/rs-data" "$rsvenv/bin/gunicorn" -w 2 -b "127.0.0.1:$p_rs" --log-level warning --no-control-socket site_proj.wsgi:application) &
pids+=($!)
printf '[server]\ntrusted_proxies = ["127.0.0.1/32"]\n' >"$work/aiwaf.toml"
AIWAF_LOG=warn "$bin"/aiwaf serve --listen 127.0.0.1:0 --upstream "http://127.0.0.1:$p_plain" --data-dir "$work/data" --config "$work/aiwaf.toml" >"$work/aiwaf.out" &
pids+=($!)
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$p_plain/" && curl -s -o /dev/null "http://127.0.0.1:$p_seed/" \
    && curl -s -o /dev/null "http://127.0.0.1:$p_rs/" && grep -q listening "$work/aiwaf.out" && break
  sleep 0.2
done
front=$(grep -o 'http://[0-9.:]*' "$work/aiwaf.out" | head -1)
dur=$([ $quick = 1 ] && echo 3 || echo 10)
run() { # LABEL URL CONNS
  local out rps p50 p99 bad
  out=$(wrk -t2 -c"$3" -d"${dur}s" --latency -s bench/clients.lua "$2" 2>&1)
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  bad=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  printf '%-28s %5s %10s %10s %10s %8s\n' "$1" "$3" "$rps" "$p50" "$p99" "${bad:-0}"
  echo "{\"target\":\"$1\",\"connections\":$3,\"rps\":$rps,\"p50\":\"$p50\",\"p99\":\"$p99\",\"non_2xx\":${bad:-0}}," >>"$work/rows"
}
echo "throughput (2 gunicorn sync workers; wrk -t2, ${dur}s; random client addresses):"
printf '%-28s %5s %10s %10s %10s %8s\n' target conns req/s p50 p99 non2xx
for c in 16 64; do
  run "django" "http://127.0.0.1:$p_plain" "$c"
  run "django + aiwaf 0.1.9.1.6" "http://127.0.0.1:$p_seed" "$c"
  run "django + aiwaf-rs" "http://127.0.0.1:$p_rs" "$c"
  run "aiwaf serve -> django" "$front" "$c"
done
echo "training (same traffic; seed format with response-time=):"
sizes=$([ $quick = 1 ] && echo 20000 || echo "100000 1000000")
limit=$([ $quick = 1 ] && echo 120 || echo 600)
for n in $sizes; do
  "$bin"/gen-log --lines "$n" --format seed >"$work/access.log"
  /usr/bin/time -v "$bin"/aiwaf train --log "$work/access.log" --data-dir "$work/train-$n" --json >/dev/null 2>"$work/rust-$n.txt"
  rw=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/rust-$n.txt")
  rr=$(awk -F': ' '/Maximum resident/ {printf "%.0f", $2/1024}' "$work/rust-$n.txt")
  # The seed writes its model into site-packages; it needs the exact log path in its settings.
  if (cd "$work/site" && WITH_AIWAF=1 AIWAF_ACCESS_LOG="$work/access.log" timeout "$limit" /usr/bin/time -v \
      "$venv/bin/python" manage.py detect_and_train >/dev/null 2>"$work/seed-$n.txt"); then
    sw=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/seed-$n.txt")
    sr=$(awk -F': ' '/Maximum resident/ {printf "%.0f", $2/1024}' "$work/seed-$n.txt")
  else
    sw="> ${limit}s (stopped)"
    sr="-"
  fi
  printf '%8s lines: aiwaf train %s wall, %s MiB peak | aiwaf 0.1.9.1.6 detect_and_train %s wall, %s MiB peak\n' "$n" "$rw" "$rr" "$sw" "$sr"
  echo "{\"target\":\"train\",\"lines\":$n,\"rust_wall\":\"$rw\",\"rust_rss_mib\":$rr,\"seed_wall\":\"$sw\",\"seed_rss_mib\":\"$sr\"}," >>"$work/rows"
done
mkdir -p bench/results
{ echo "["; sed '$ s/,$//' "$work/rows"; echo "]"; } >bench/results/seed.json
echo "machine: $(nproc) cores; date: $(date -u +%Y-%m-%d)"
