#!/usr/bin/env bash
# Installs what building and testing unearth needs on a Debian machine, idempotently:
# - libclang (swh-graph's pthash MPH is C++ bound through bindgen), git, pkg-config,
#   slurm-wlm (a real single-node Slurm for the cluster tests) and fonts-dejavu-core (the
#   text of the pictures `unearth bench --out` draws);
# - Python packages the tests use as independent references: pyarrow (reads our Parquet and
#   ORC), swh.model (Software Heritage's own identifier code) and Hugging Face datasets (loads
#   what `evolve` writes, as its users will).
# Safe to run again: it only installs what is missing.
set -euo pipefail

need_apt=()
for pkg in libclang-dev git pkg-config slurm-wlm fonts-dejavu-core; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! python3 -c 'import pyarrow, swh.model, datasets' >/dev/null 2>&1; then
  echo "setup: installing pyarrow, swh.model and datasets" >&2
  python3 -m pip install -q --disable-pip-version-check pyarrow swh.model datasets 2>&1 | grep -v 'Running pip as the' >&2 || true
  python3 -c 'import pyarrow, swh.model, datasets'
fi

command -v cargo >/dev/null || { echo "setup: cargo is required (rustup)" >&2; exit 1; }

# s3s-fs: a real S3 server backed by a folder, for the fetch tests on loopback. 0.14.1 is the
# last release that builds with this toolchain.
if ! command -v s3s-fs >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/s3s-fs" ]; then
  echo "setup: installing s3s-fs 0.14.1 (a few minutes, once)" >&2
  cargo install -q s3s-fs --version 0.14.1 --locked --features binary
fi
