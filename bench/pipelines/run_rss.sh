#!/usr/bin/env bash
# Peak RSS of a whole `oxflow run FILE` (issue #2): while its tasks run,
# and of the command as a whole, summary included.
#
#   bench/pipelines/run_rss.sh BIN FILE [text|json]
#
# FILE is a pipeline IR, e.g. written by the engine_overhead bench:
#   $B __write-ir chain 10000 /dev/shm/chain10k.json
# The run's peak is VmHWM until the first byte of the summary appears on
# stdout (polled every 0.2 s); the data directory is fresh and removed after.
set -euo pipefail
bin=$1 file=$2 mode=${3:-text}
work=$(mktemp -d "${TMPDIR:-/tmp}/oxflow-rss.XXXX")
trap 'rm -rf "$work"' EXIT
export OXFLOW_HOME="$work/home"
"$bin" run "$file" -o "$mode" >"$work/out" 2>"$work/err" &
pid=$!
run_peak=0 peak=0
while kill -0 "$pid" 2>/dev/null; do
  hwm=$(awk '/VmHWM/{print $2}' "/proc/$pid/status" 2>/dev/null || true)
  if [ -n "$hwm" ]; then
    peak=$hwm
    [ -s "$work/out" ] || run_peak=$hwm
  fi
  sleep 0.2
done
rc=0; wait "$pid" || rc=$?
echo "exit=$rc run_peak_kib=$run_peak whole_peak_kib=$peak summary_bytes=$(stat -c %s "$work/out")"
