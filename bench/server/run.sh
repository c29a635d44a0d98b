#!/usr/bin/env bash
# Benchmarks the platform server (`oxflow up`, KFP v2beta1 REST API) against
# issue #3's goals, on SQLite and PostgreSQL: startup to first healthz, idle
# RSS, run creation throughput, list_runs latency with 10,000 runs stored.
# Prints a markdown table and writes raw results to bench/out/.
#
#   bench/server/run.sh [bench.py options, e.g. --runs 2000 --only sqlite]
#
# PostgreSQL: postgres://oxflow_test:oxflow_test@127.0.0.1:5432/oxflow_test, one fresh schema per
# server instance (created and dropped with psql).
# OXFLOW_BENCH_VENV: the Python venv with kfp (default .venv, as scripts/test).
set -euo pipefail
cd "$(dirname "$0")/../.."

venv="${OXFLOW_BENCH_VENV:-$PWD/.venv}"
stamp="$venv/.oxflow-requirements"
if ! [ -x "$venv/bin/python" ] || ! cmp -s tests/requirements.txt "$stamp"; then
  echo "==> creating the venv at $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
  cp tests/requirements.txt "$stamp"
fi

echo "==> cargo build --release -p oxflow" >&2
cargo build --release --locked -p oxflow
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"

out="$PWD/bench/out"
mkdir -p "$out/pipelines"
echo "==> compiling the test pipelines into $out/pipelines" >&2
PYTHONWARNINGS=ignore "$venv/bin/python" tests/pipelines/build.py "$out/pipelines"

echo "==> benchmarking oxflow up" >&2
PYTHONWARNINGS=ignore exec "$venv/bin/python" bench/server/bench.py \
  --oxflow "$target_dir/release/oxflow" \
  --pipelines "$out/pipelines" \
  --out "$out" \
  "$@"
