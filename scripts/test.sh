#!/usr/bin/env bash
# The whole test suite, with everything it needs installed first. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
export RUST_LOG="${RUST_LOG:-warn}"
# One profile (release) for the tool, its tests and benchmarks: dependencies build once.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --release --locked --no-fail-fast
else
  cargo test --release --locked --no-fail-fast
fi
