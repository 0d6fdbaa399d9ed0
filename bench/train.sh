#!/usr/bin/env bash
# Training benchmark: generate an nginx log (default 1M lines), run `aiwaf train` on it under
# /usr/bin/time -v (wall time, peak memory), and measure parse throughput per core (criterion).
#
#   bench/train.sh [--lines 1000000] [--no-parse-bench]
set -euo pipefail
cd "$(dirname "$0")/.."
lines=1000000
parse=1
while [ $# -gt 0 ]; do
  case "$1" in
    --lines) lines=$2; shift 2 ;;
    --no-parse-bench) parse=0; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cargo build --release -q -p aiwaf -p aiwaf-bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target/release/gen-log --lines "$lines" >"$work/access.log"
size=$(stat -c %s "$work/access.log")
/usr/bin/time -v target/release/aiwaf train --log "$work/access.log" --data-dir "$work/data" --json \
  >"$work/report.json" 2>"$work/time.txt"
wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt")
rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$work/time.txt")
mkdir -p bench/results
python3 - "$work/report.json" "$lines" "$size" "$wall" "$rss" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
lines, size, wall, rss = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
m, s = wall.split(":")[-2:]
secs = int(m) * 60 + float(s)
out = {"lines": lines, "bytes": size, "wall_s": secs, "peak_rss_mib": rss, "phases_ms": r["timings_ms"],
       "clients": r["clients"], "bans": r["bans_by_reason"], "keywords": [k for k, _ in r["keywords"]],
       "model_threshold": (r.get("model") or {}).get("threshold")}
json.dump(out, open("bench/results/train.json", "w"), indent=2)
print(f"{lines} lines ({size/1e6:.0f} MB): aiwaf train {secs:.2f} s wall, peak RSS {rss:.1f} MiB, "
      f"phases {r['timings_ms']}, {r['clients']} clients, bans {r['bans_by_reason']}")
PY
if [ "$parse" = 1 ]; then
  cargo bench -q -p aiwaf-train --bench parse -- --warm-up-time 1 --measurement-time 3 2>/dev/null | grep -m1 "thrpt" | sed 's/^/parse, one core: /'
fi
echo "machine: $(nproc) cores; date: $(date -u +%Y-%m-%d)"
