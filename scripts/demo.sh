#!/usr/bin/env bash
# The main job on the embedded default: builds the demo archive (synthetic git repositories,
# their Software Heritage archive and Nemotron-style metadata), resolves every metadata row
# with the full pipeline, checks a sample by random access, and prints the counts per status.
# Usage: scripts/demo.sh [OUT_DIR]   (default: ./demo-archive; reruns reuse what is done)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
out="${1:-demo-archive}"
cargo build --release --locked --bin unearth
unearth="$CARGO_TARGET_DIR/release/unearth"
"$unearth" archive demo --out "$out"
"$unearth" run --config "$out/unearth.toml"
"$unearth" verify --config "$out/unearth.toml" --sample 1000
