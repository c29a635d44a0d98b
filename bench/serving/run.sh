#!/usr/bin/env bash
# Oxflow's model server against Seldon MLServer 1.7 (the anchor), back to
# back on this machine: throughput and latency (wrk, h2load on loopback),
# cold start and memory. See bench/serving/run.py for what is measured.
#
#   bench/serving/run.sh [--duration S] [--cold-runs N] [--servers mlserver,oxflow]
#                        [--protocols ...] [--models ...] [--batches 1,64] [--concurrency 1,32]
#
# OXFLOW_SERVING_VENV: the anchor's venv (default .venv-serving, git-ignored),
# created from bench/serving/requirements.txt when missing or stale. wrk and
# h2load come from Debian (installed when missing). Oxflow is built in release.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv="${OXFLOW_SERVING_VENV:-$PWD/.venv-serving}"
stamp="$venv/.oxflow-requirements"
if ! [ -x "$venv/bin/python" ] || ! cmp -s bench/serving/requirements.txt "$stamp"; then
  echo "==> creating the anchor venv at $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r bench/serving/requirements.txt
  cp bench/serving/requirements.txt "$stamp"
fi
if ! command -v wrk >/dev/null || ! command -v h2load >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq wrk nghttp2-client >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq wrk nghttp2-client >/dev/null; }
fi
cargo build --release --locked -p oxflow
target="${CARGO_TARGET_DIR:-$PWD/target}"
exec "$venv/bin/python" bench/serving/run.py --oxflow "$target/release/oxflow" "$@"
