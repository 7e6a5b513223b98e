#!/usr/bin/env bash
# Fuzz smoke: every target for a short while (FUZZ_SECONDS, default 15) from the committed seed
# corpus; new inputs go to a scratch directory, so the committed corpus only changes by hand.
# Fails on any crash, leak, timeout or out-of-memory; the input is kept under fuzz/artifacts/.
# Needs the nightly toolchain (on the machine image) and cargo-fuzz (.ci/setup.sh installs it).
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${ELICENSE_FUZZ_TARGET_DIR:-/var/cache/elicense-fuzz-target}"
secs="${FUZZ_SECONDS:-15}"
targets=$(cargo +nightly fuzz list)
cargo +nightly fuzz build -O >/dev/null
mkdir -p artifacts
failed=0
for t in $targets; do
  scratch=$(mktemp -d)
  if cargo +nightly fuzz run -O "$t" "$scratch" "corpus/$t" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
      -artifact_prefix="$PWD/artifacts/$t-" >"$scratch.log" 2>&1; then
    echo "  ok   fuzz $t: $(grep -o 'Done [0-9]* runs' "$scratch.log" | tail -n 1 || echo ran) in ${secs}s"
  else
    failed=$((failed + 1))
    echo "  FAIL fuzz $t"
    grep -E 'ERROR|panicked|SUMMARY|Test unit written' "$scratch.log" | head -n 10 | sed 's/^/       /'
  fi
  rm -rf "$scratch" "$scratch.log"
done
[ "$failed" -eq 0 ]
