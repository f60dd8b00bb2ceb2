# Sourced by the other scripts: where cargo builds. A target folder outside the clone survives
# fresh clones (CI clones anew each run), so the slow swh-graph + arrow build happens once.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/unearth/target}"
mkdir -p "$CARGO_TARGET_DIR"
