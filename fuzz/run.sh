#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer via cargo fuzz, nightly toolchain); not part of .ci/run.
#   fuzz/run.sh [SECONDS] [TARGET...]   default: 600 s each, every target
# Crashes land in fuzz/artifacts/TARGET/; turn each into a regression test, then fix it.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(path_normalize client_ip log_line config payload_request)
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo +nightly fuzz build -O
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "== $t for ${secs}s"
  cargo +nightly fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 2>&1 \
    | tee "/tmp/aiwaf-fuzz-$t.log" | grep -E "^#[0-9]+.*(DONE|pulse)|Done [0-9]+ runs|SUMMARY|panicked" || true
done
