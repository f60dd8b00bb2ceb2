#!/usr/bin/env bash
# The fetch under S3-like throttling: three runs, one after the other, through s3s-fs serving
# STORE behind unearth-loopback's proxy (150 ms added per request): no throttling; bursts
# (every request refused 1 s in every 8 s, as when S3 repartitions a prefix); a rate cap of
# 1,500 requests/s. Each run fetches into its own copy (under OUT) of the work directory of
# CONFIG, whose phases up to `content` have run, and prints the fetch's rate and the
# limiter's counts.
# Usage: scripts/bench-throttling.sh CONFIG STORE OUT
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 CONFIG STORE OUT" >&2; exit 2; }
config=$1 store=$2 out=$3
here=$(cd "$(dirname "$0")/.." && pwd)
(cd "$here" && scripts/setup.sh && source scripts/env.sh &&
  cargo build --release --locked --bin unearth && cargo build --release --locked -p unearth-loopback)
source "$here/scripts/env.sh"
bin="$CARGO_TARGET_DIR/release"
# The work directory as unearth reads it: relative to the configuration's folder.
workdir=$(python3 -c "import os, sys, tomllib
c = sys.argv[1]
print(os.path.join(os.path.dirname(os.path.abspath(c)), tomllib.load(open(c, 'rb'))['workdir']))" "$config")
[ -f "$workdir/content/manifest.json" ] ||
  { echo "$workdir: run the phases up to content first" >&2; exit 2; }
mkdir -p "$out"
for scenario in "none:" "bursts:--burst-every-ms 8000 --burst-ms 1000" "cap:--max-rate 1500"; do
  name=${scenario%%:*} flags=${scenario#*:}
  # shellcheck disable=SC2086
  "$bin/unearth-loopback" --store "$store" --latency-ms 150 $flags >"$out/endpoint-$name" &
  proxy=$!
  trap 'kill $proxy 2>/dev/null' EXIT
  for _ in $(seq 200); do
    [ -s "$out/endpoint-$name" ] && break
    sleep 0.1
  done
  endpoint=$(head -1 "$out/endpoint-$name")
  [ -n "$endpoint" ] || { echo "unearth-loopback did not start" >&2; exit 1; }
  work="$out/work-$name"
  rm -rf "$work" && mkdir -p "$work"
  for d in "$workdir"/*; do
    case $(basename "$d") in fetch* | blobs | export* | dataset) ;; *) cp -r "$d" "$work/" ;; esac
  done
  "$bin/unearth" fetch --config "$config" --set "workdir=$(realpath "$work")" \
    --set fetch.store=s3://softwareheritage/content --set "fetch.endpoint=$endpoint" \
    2>"$out/fetch-$name.log"
  kill $proxy
  wait $proxy 2>/dev/null || true
  rate=$(grep -o 'Elapsed: [^]]*' "$out/fetch-$name.log" | tail -1)
  counts=$(python3 -c "import json,sys
c = json.load(open(sys.argv[1]))['counts']
keys = ['fetched', 'failed', 'requests', 'retries', 'concurrency_peak', 'concurrency_low',
        'concurrency_end', 'throttle_cuts']
print(' '.join(f'{k}={c.get(k, 0)}' for k in keys))" "$work/fetch/manifest.json")
  echo "$name: $rate]; $counts"
done
