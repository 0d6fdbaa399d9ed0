#!/usr/bin/env bash
# The measuring instrument: every figure in the README's Performance and Detection sections.
#
#   bench/run.sh [--quick]
#
# 1. proxy throughput: upstream directly vs `aiwaf serve --mode off` vs `--mode block` vs
#    nginx + ModSecurity 3 + OWASP CRS (wrk, 16 and 64 connections);
# 2. memory under IP rotation (~1M distinct client addresses);
# 3. training: 1M-line generated log, wall time, peak memory; parse MB/s per core;
# 4. the seed, aiwaf 0.1.9.1.6 under Django/gunicorn: throughput and training time, side by side;
# 5. detection: a labelled scenario from ../shared/eval replayed live against `aiwaf serve`,
#    the same traffic as an nginx log through `aiwaf train`, and the CRS / CSIC 2010 request
#    corpora sent one request per client to aiwaf and to ModSecurity+CRS;
# 6. charts (docs/bench/*.svg).
# Results land in bench/results/*.json. --quick shortens every step (under 5 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1
shared=../shared/eval
cargo build --release -q -p aiwaf -p aiwaf-bench
if [ $quick = 1 ]; then
  bench/proxy.sh --duration 3 --rounds 1
  bench/rotation.sh --seconds 8
  bench/train.sh --lines 200000 --no-parse-bench
  bench/seed/bench.sh --quick
  duration=60 payload_limit=300
else
  bench/proxy.sh
  bench/rotation.sh --seconds 40
  bench/train.sh
  bench/seed/bench.sh
  duration=300 payload_limit=0
fi
if [ -d "$shared/corpus" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  python3 "$shared/make_scenario.py" --corpus "$shared/corpus" --split dev --seed 3 --duration "$duration" -o "$work/scenario.jsonl" >/dev/null
  python3 "$shared/render_nginx_log.py" "$work/scenario.jsonl" -o "$work/access.log" --labels "$work/labels.tsv"
  python3 bench/eval.py --scenario "$work/scenario.jsonl" --log "$work/access.log" --labels "$work/labels.tsv" \
    --corpus "$shared/corpus" --payload-limit "$payload_limit" --modsec start --out bench/results/eval.json
  bench/seed/detect.sh "$work/access.log" "$work/labels.tsv"
else
  echo "skipping the detection evaluation: $shared not found" >&2
fi
python3 bench/plot.py
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); date: $(date -u +%Y-%m-%d)"
