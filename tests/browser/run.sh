#!/usr/bin/env bash
# End-to-end browser tests in Debian's headless Chromium, driven by playwright-core: the
# dashboard (dashboard.mjs), and a person using an admin-like site behind aiwaf (site.mjs).
# Installs what it needs (chromium via apt, playwright-core via npm), starts a real upstream and
# `aiwaf serve` with the admin listener on loopback, makes one blocked request, runs the browser.
#   tests/browser/run.sh [SCREENSHOT_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$(mktemp -d)}
mkdir -p "$out"
if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (Debian package)..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --silent)
fi
(cd "$root" && cargo build -q -p aiwaf -p aiwaf-bench)
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
wait_addr() { # FILE PATTERN
  for _ in $(seq 100); do
    a=$(grep "$2" "$1" 2>/dev/null | grep -o 'http://[0-9.:]*' | head -1)
    [ -n "$a" ] && { echo "$a"; return; }
    sleep 0.1
  done
  echo "did not start: $1" >&2; cat "$1" >&2; exit 1
}
"${CARGO_TARGET_DIR:-$root/target}/debug/bench-upstream" 127.0.0.1:0 >"$work/up.out" 2>&1 &
pids+=($!)
up=$(wait_addr "$work/up.out" listening)
token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
AIWAF_ADMIN_TOKEN=$token AIWAF_LOG=warn "${CARGO_TARGET_DIR:-$root/target}/debug/aiwaf" serve --listen 127.0.0.1:0 --upstream "$up" \
  --data-dir "$work/data" --admin-listen 127.0.0.1:0 >"$work/aiwaf.out" 2>&1 &
pids+=($!)
proxy=$(wait_addr "$work/aiwaf.out" "listening on")
admin=$(wait_addr "$work/aiwaf.out" "admin on")
# Some traffic: readers, a scanner, a flooder, a form bot, and one blocked request to find.
for p in / /blog/ /about/ /contact/; do curl -s -o /dev/null "$proxy$p"; done
for p in /wp-login.php /phpmyadmin/ /.git/config /backup.sql; do curl -s -o /dev/null --interface 127.0.0.43 "$proxy$p"; done
for _ in $(seq 45); do curl -s -o /dev/null --interface 127.0.0.44 "$proxy/search?q=x"; done
curl -s -o /dev/null --interface 127.0.0.45 -d "name=bot" "$proxy/contact/"
curl -s -o /dev/null --interface 127.0.0.42 "$proxy/.env"
sleep 0.5
(cd "$here" && node dashboard.mjs "$admin" "$token" 127.0.0.42 "$out")
# A real site's own person behind a second proxy with default settings (issue 11).
node "$here/site-app.mjs" >"$work/site.out" 2>&1 &
pids+=($!)
site=$(wait_addr "$work/site.out" "site listening")
AIWAF_LOG=warn "${CARGO_TARGET_DIR:-$root/target}/debug/aiwaf" serve --listen 127.0.0.1:0 --upstream "$site" \
  --data-dir "$work/site-data" >"$work/aiwaf-site.out" 2>&1 &
pids+=($!)
site_proxy=$(wait_addr "$work/aiwaf-site.out" "listening on")
(cd "$here" && node site.mjs "$site_proxy" "$out")
echo "screenshots in $out"
