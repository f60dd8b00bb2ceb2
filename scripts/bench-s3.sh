#!/usr/bin/env bash
# Benchmarks a configuration with its fetch going through a real S3 server on loopback:
# s3s-fs serving STORE (a folder of <sha1> gzip blobs) as s3://softwareheritage/content,
# behind unearth-loopback's proxy adding LATENCY_MS to every request (and, with extra
# arguments, faults: --slowdown 0.05 --seed 7 ...).
# Usage: scripts/bench-s3.sh CONFIG STORE LATENCY_MS [unearth-loopback options...]
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 CONFIG STORE LATENCY_MS [loopback options]" >&2; exit 2; }
config=$1 store=$2 latency=$3
shift 3
here=$(cd "$(dirname "$0")/.." && pwd)
(cd "$here" && scripts/setup.sh && source scripts/env.sh &&
  cargo build --release --locked --bin unearth && cargo build --release --locked -p unearth-loopback)
source "$here/scripts/env.sh"
bin="$CARGO_TARGET_DIR/release"
endpoint_file=$(mktemp)
"$bin/unearth-loopback" --store "$store" --latency-ms "$latency" "$@" >"$endpoint_file" &
proxy=$!
trap 'kill $proxy 2>/dev/null; rm -f "$endpoint_file"' EXIT
for _ in $(seq 200); do
  [ -s "$endpoint_file" ] && break
  sleep 0.1
done
endpoint=$(head -1 "$endpoint_file")
[ -n "$endpoint" ] || { echo "unearth-loopback did not start" >&2; exit 1; }
"$bin/unearth" bench --config "$config" \
  --set fetch.store=s3://softwareheritage/content --set "fetch.endpoint=$endpoint"
echo "(the store was served by s3s-fs on loopback through a proxy adding $latency ms per request)"
