#!/usr/bin/env bash
# Trial overhead of `oxflow tune`: the time from one trial's process exit to
# the next trial's process start, with parallelTrialCount 1, for several
# algorithms. Each trial is `bash -c` that stamps the clock with bash's own
# $EPOCHREALTIME (no extra process) first thing and last thing, so a gap is
#   next trial's first stamp - previous trial's last stamp
# which includes Oxflow's work between trials (metrics, store, suggestion,
# spawn) plus the exit of one bash and the start of the next: the figure is
# pessimistic by bash's own start-up (about 1 ms here).
#
#   bench/tuning/overhead.sh [TRIALS]        (default 100)
set -euo pipefail
cd "$(dirname "$0")/../.."
trials="${1:-100}"
echo "==> cargo build --release -p oxflow" >&2
cargo build --release --locked -p oxflow >&2
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/oxflow"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf '| algorithm | trials | gap median (ms) | gap p90 (ms) | gap max (ms) |\n|---|---|---|---|---|\n'
for algo in random tpe bayesianoptimization; do
  stamps="$work/$algo.stamps"
  : > "$stamps"
  cat > "$work/$algo.yaml" <<YAML
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: overhead-$algo
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: $algo}
  parallelTrialCount: 1
  maxTrialCount: $trials
  parameters:
    - name: x
      parameterType: double
      feasibleSpace: {min: "-1", max: "1"}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{name: x, reference: x}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                image: busybox
                command: ["bash", "-c", "echo start \$EPOCHREALTIME >> $stamps; echo loss=\${trialParameters.x}; echo end \$EPOCHREALTIME >> $stamps"]
            restartPolicy: Never
YAML
  OXFLOW_HOME="$work/home-$algo" "$bin" tune "$work/$algo.yaml" > /dev/null 2> "$work/$algo.log" || {
    cat "$work/$algo.log" >&2; exit 1; }
  python3 - "$stamps" "$algo" "$trials" <<'PY'
import statistics, sys
path, algo, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ev = [l.split() for l in open(path)]
gaps = []
for (k1, t1), (k2, t2) in zip(ev, ev[1:]):
    if k1 == 'end' and k2 == 'start':
        gaps.append((float(t2) - float(t1)) * 1e3)
gaps.sort()
p90 = gaps[int(0.9 * (len(gaps) - 1))]
print(f"| {algo} | {n} | {statistics.median(gaps):.2f} | {p90:.2f} | {gaps[-1]:.2f} |")
PY
done
