#!/usr/bin/env bash
# The main job on the embedded default: builds the demo archive (synthetic git repositories,
# their Software Heritage archive and Nemotron-style metadata) and prints what it holds.
# Usage: scripts/demo.sh [OUT_DIR]   (default: ./demo-archive; a rerun is a no-op)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
out="${1:-demo-archive}"
cargo build --release --locked --bin unearth
"$CARGO_TARGET_DIR/release/unearth" archive demo --out "$out"
