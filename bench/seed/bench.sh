#!/usr/bin/env bash
# aiwaf in Rust against the seed it replaces, aiwaf 0.1.9.1.6 (Django middleware), side by side:
#   1. throughput: Django alone, Django + the seed's middleware, Django + this repository's Python
#      package (the same middleware names, the Rust engine in-process), Django behind `aiwaf serve`;
#   2. training: `aiwaf train` vs `manage.py detect_and_train` on the same generated traffic
#      (the seed needs its `response-time=` suffix, which `aiwaf train` also reads).
# Installs aiwaf==0.1.9.1.6, Django and gunicorn from PyPI into a cached venv, and this
# repository's package (`pip install .`, a release build) with the same Django into another
# (both are imported as `aiwaf`).
#   bench/seed/bench.sh [--quick] [--rounds N] [--duration S] [--no-train]
# Throughput: every target is measured once per round, the targets interleaved, and the median
# of the rounds reported with its ratio to Django alone; "django (A/A)" is a second, identical
# Django server — how far it lands from 1.00 is the noise of the run.
set -euo pipefail
cd "$(dirname "$0")/../.."
quick=0 rounds="" dur="" train=1
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1; shift ;;
    --rounds) rounds=$2; shift 2 ;;
    --duration) dur=$2; shift 2 ;;
    --no-train) train=0; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
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
p_plain=$(freeport); p_plain2=$(freeport); p_seed=$(freeport); p_rs=$(freeport)
(cd "$work/site" && WITH_AIWAF=0 exec "$venv/bin/gunicorn" -w 2 -b "127.0.0.1:$p_plain" --log-level warning --no-control-socket site_proj.wsgi:application) &
pids+=($!)
(cd "$work/site" && WITH_AIWAF=0 exec "$venv/bin/gunicorn" -w 2 -b "127.0.0.1:$p_plain2" --log-level warning --no-control-socket site_proj.wsgi:application) &
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
  curl -s -o /dev/null "http://127.0.0.1:$p_plain/" && curl -s -o /dev/null "http://127.0.0.1:$p_plain2/" \
    && curl -s -o /dev/null "http://127.0.0.1:$p_seed/" \
    && curl -s -o /dev/null "http://127.0.0.1:$p_rs/" && grep -q listening "$work/aiwaf.out" && break
  sleep 0.2
done
front=$(grep -o 'http://[0-9.:]*' "$work/aiwaf.out" | head -1)
[ -n "$dur" ] || dur=$([ $quick = 1 ] && echo 3 || echo 10)
[ -n "$rounds" ] || rounds=$([ $quick = 1 ] && echo 1 || echo 3)
run() { # LABEL URL CONNS -> appends "label|conns|rps|p50|p99|non2xx" to $work/raw
  local out rps p50 p99 bad
  out=$(wrk -t2 -c"$3" -d"${dur}s" --latency -s bench/clients.lua "$2" 2>&1)
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  bad=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  echo "$1|$3|$rps|$p50|$p99|${bad:-0}" >>"$work/raw"
}
labels=("django" "django (A/A)" "django + aiwaf 0.1.9.1.6" "django + aiwaf-rs" "aiwaf serve -> django")
urls=("http://127.0.0.1:$p_plain" "http://127.0.0.1:$p_plain2" "http://127.0.0.1:$p_seed" "http://127.0.0.1:$p_rs" "$front")
# a short warm-up of each (first requests load Django's URL resolver, the model, ...)
for i in "${!labels[@]}"; do wrk -t1 -c4 -d1s -s bench/clients.lua "${urls[$i]}" >/dev/null 2>&1 || true; done
for r in $(seq "$rounds"); do
  for c in 16 64; do
    for i in "${!labels[@]}"; do run "${labels[$i]}" "${urls[$i]}" "$c"; done
  done
done
echo "throughput (2 gunicorn sync workers; wrk -t2, ${dur}s per run, median of $rounds interleaved rounds; random client addresses):"
python3 - "$work/raw" "$work/rows" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("|") for l in open(sys.argv[1]) if l.strip()]
order = []
by = {}
for label, conns, rps, p50, p99, bad in rows:
    key = (label, int(conns))
    if key not in by:
        order.append(key)
        by[key] = []
    by[key].append((float(rps), p50, p99, int(bad)))
print(f"{'target':<28} {'conns':>5} {'req/s':>10} {'vs django':>10} {'p50':>10} {'p99':>10} {'non2xx':>8}")
with open(sys.argv[2], "a") as out:
    for conns in sorted({c for _, c in order}):
        base = statistics.median(r[0] for r in by[("django", conns)])
        for label, c in [k for k in order if k[1] == conns]:
            runs = sorted(by[(label, c)], key=lambda r: r[0])
            mid = runs[len(runs) // 2]
            rps = statistics.median(r[0] for r in runs)
            ratio = rps / base
            print(f"{label:<28} {c:>5} {rps:>10.1f} {ratio:>10.2f} {mid[1]:>10} {mid[2]:>10} {sum(r[3] for r in runs):>8}")
            out.write(f'{{"target":"{label}","connections":{c},"rps":{rps:.1f},"vs_django":{ratio:.3f},"p50":"{mid[1]}","p99":"{mid[2]}","non_2xx":{sum(r[3] for r in runs)},"rounds":{len(runs)}}},\n')
PY
[ "$train" = 1 ] || { mkdir -p bench/results; { echo "["; sed '$ s/,$//' "$work/rows"; echo "]"; } >bench/results/seed.json; echo "machine: $(nproc) cores; date: $(date -u +%Y-%m-%d)"; exit 0; }
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
