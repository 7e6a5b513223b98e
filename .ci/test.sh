#!/usr/bin/env bash
# The whole test suite (README command 2): formatting, lints, unit and integration tests on
# SQLite and PostgreSQL, and the conformance runs through tools we did not write.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/elicense-target}"
export ELICENSE_TEST_POSTGRES="${ELICENSE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
export ELICENSE_REQUIRE_POSTGRES=1
export RUST_LOG="${RUST_LOG:-warn,sqlx=error}"

bash .ci/setup.sh
echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy"
cargo clippy --quiet --all-targets -- -D warnings
echo "== cargo test (SQLite and PostgreSQL)"
cargo test --quiet
echo "== benchmark smoke (a tiny run of the bench command; figures from a debug build mean nothing)"
cargo run --quiet -- bench --quick --licenses 300 --verify-seconds 1 >/dev/null
echo "== conformance"
bash conformance/run.sh
echo "== load and faults (oha, PostgreSQL outage, two nodes, kill -9)"
bash conformance/faults.sh
echo "== fuzz smoke (every target, from the seed corpus)"
bash fuzz/run.sh
