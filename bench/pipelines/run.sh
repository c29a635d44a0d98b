#!/usr/bin/env bash
# Benchmarks `oxflow run` against its anchor, kfp.local with the
# SubprocessRunner, on the issue's perf pipelines (seq10, fanout20): the same
# compiled packages, the same machine, the same run. Prints a markdown table
# (medians, every sample, ratios) and writes raw results to bench/out/.
#
#   bench/pipelines/run.sh [anchor.py options, e.g. --runs 5 --only seq10]
#
# OXFLOW_BENCH_VENV: the Python venv with kfp (default .venv, shared with
# scripts/test); created from tests/requirements.txt when missing or stale.
# OXFLOW_BENCH_RUNS: samples per pipeline and side (default 3).
# The engine-overhead benchmark is separate:
#   cargo bench -p oxflow-pipelines --bench engine_overhead
set -euo pipefail
cd "$(dirname "$0")/../.."

# 1. Python with the real kfp SDK, in a venv of our own (as scripts/test does).
venv="${OXFLOW_BENCH_VENV:-$PWD/.venv}"
stamp="$venv/.oxflow-requirements"
if ! [ -x "$venv/bin/python" ] || ! cmp -s tests/requirements.txt "$stamp"; then
  echo "==> creating the venv at $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
  cp tests/requirements.txt "$stamp"
fi

# 2. The binary under test, optimised.
echo "==> cargo build --release -p oxflow" >&2
cargo build --release --locked -p oxflow
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"

# 3. The pipelines, compiled by the real kfp SDK.
out="$PWD/bench/out"
mkdir -p "$out/pipelines"
echo "==> compiling the test pipelines into $out/pipelines" >&2
# (kfp warns about its future default base image on every component.)
PYTHONWARNINGS=ignore "$venv/bin/python" tests/pipelines/build.py "$out/pipelines"

# 4. Both sides, interleaved, in one run.
echo "==> timing kfp.local and oxflow" >&2
exec "$venv/bin/python" bench/pipelines/anchor.py \
  --oxflow "$target_dir/release/oxflow" \
  --pipelines "$out/pipelines" \
  --out "$out" \
  "$@"
