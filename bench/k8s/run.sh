#!/usr/bin/env bash
# The Kubernetes API benchmark (issue #13) on a release build:
#   bench/k8s/run.sh [bench.py options]
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/oxflow-release}"
cargo build --release --locked -p oxflow
python="${OXFLOW_TEST_VENV:-/var/tmp/oxflow-ci-venv}/bin/python"
[ -x "$python" ] || python=python3
exec "$python" bench/k8s/bench.py --bin "$CARGO_TARGET_DIR/release/oxflow" "$@"
