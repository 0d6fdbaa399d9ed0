#!/usr/bin/env bash
# Offline detection side by side: aiwaf 0.1.9.1.6's `detect_and_train` and `aiwaf train` on the
# same rendered scenario log, bans scored against the labels.
#   bench/seed/detect.sh ACCESS_LOG LABELS_TSV
set -euo pipefail
cd "$(dirname "$0")/../.."
log=$1 labels=$2
venv=${AIWAF_BENCH_CACHE:-$HOME/.cache/aiwaf-bench}/seed-venv
[ -x "$venv/bin/python" ] || bench/seed/bench.sh --quick >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The seed only parses lines ending in `response-time=S`.
sed -E 's/ ([0-9]+\.[0-9]+)$/ response-time=\1/' "$log" >"$work/seed.log"
cp -r bench/seed/site "$work/site"
export SITE_DB=$work/site/db.sqlite3 DJANGO_SETTINGS_MODULE=site_proj.settings
(cd "$work/site" && WITH_AIWAF=1 "$venv/bin/python" manage.py makemigrations aiwaf -v 0 && WITH_AIWAF=1 "$venv/bin/python" manage.py migrate -v 0) >/dev/null 2>&1
(cd "$work/site" && WITH_AIWAF=1 AIWAF_ACCESS_LOG="$work/seed.log" timeout 600 "$venv/bin/python" manage.py detect_and_train) >"$work/seed.out" 2>&1 || true
python3 - "$log" "$labels" "$SITE_DB" <<'PY'
import collections, json, sqlite3, subprocess, sys, tempfile
sys.path.insert(0, "bench")
from eval import ip_labels
log, labels, db = sys.argv[1:4]
ip_label = ip_labels(log, labels)
clients = collections.Counter(ip_label.values())
seed = [r[0] for r in sqlite3.connect(db).execute("SELECT ip_address FROM aiwaf_blacklistentry")]
d = tempfile.mkdtemp()
rust = json.loads(subprocess.run(["target/release/aiwaf", "train", "--log", log, "--dry-run", "--json", "--data-dir", d],
                                 capture_output=True, text=True, check=True).stdout)
rust_ips = [b["ip"] for b in rust["bans"]]
out = {}
print(f"{'label':10} {'clients':>7} {'aiwaf train':>12} {'aiwaf 0.1.9.1.6':>16}")
for l in sorted(clients):
    r = sum(1 for ip in rust_ips if ip_label.get(ip) == l)
    s = sum(1 for ip in seed if ip_label.get(ip) == l)
    out[l] = {"clients": clients[l], "aiwaf_train_banned": r, "seed_banned": s}
    print(f"{l:10} {clients[l]:7} {r:12} {s:16}")
json.dump(out, open("bench/results/seed-detection.json", "w"), indent=2)
PY
