#!/usr/bin/env bash
# The whole test suite, with everything it needs installed first. CI runs exactly this.
# Formatting and lints first (cheap, and a failure there says so at once), then every test
# (nextest, or cargo test), then the documentation's examples (nextest does not run them).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
export RUST_LOG="${RUST_LOG:-warn}"
cargo fmt --all --check
# One profile (release) for the tool, its tests, lints and benchmarks: dependencies and their
# build scripts run once.
cargo clippy --release --locked --workspace --all-targets -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --release --locked --workspace --no-fail-fast
else
  cargo test --release --locked --workspace --no-fail-fast
fi
cargo test --release --locked --doc
