#!/usr/bin/env bash
# The reliability and security probe of issue #12 against a debug build:
# lost acknowledged writes (outside SQLite readers, a full disk, kill -9),
# secrets left in the data directory or API answers, cross-origin and
# foreign-Host state changes, 5xx under fuzzing, reachability under slow
# clients, and the bounds on unknown model loads and huge fields.
# Loopback only; every loop is bounded. The disk-full part needs root
# (it mounts a tmpfs). Prints a markdown table; exits 1 if a figure that
# must be zero is not.
#
#   bench/reliability/run.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${OXFLOW_BENCH_VENV:-${OXFLOW_TEST_VENV:-$PWD/.venv}}"
stamp="$venv/.oxflow-requirements"
if ! [ -x "$venv/bin/python" ] || ! cmp -s tests/requirements.txt "$stamp"; then
  echo "==> creating the venv at $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
  cp tests/requirements.txt "$stamp"
fi
cargo build --locked -p oxflow >&2
exec "$venv/bin/python" bench/reliability/probe.py \
  --oxflow "${CARGO_TARGET_DIR:-$PWD/target}/debug/oxflow" "$@"
