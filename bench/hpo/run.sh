#!/usr/bin/env bash
# Sample efficiency and suggestion cost of Oxflow's tuning algorithms
# against the Python libraries Katib serves (Optuna, scikit-optimize,
# hyperopt), back to back on the same machine, problems (bench/hpo/
# functions.py, mirrored by crates/suggest/src/testfns.rs), budgets and
# seeds. Prints a markdown table (median simple regret [q1–q3] per problem ×
# budget × method, and the cost of the last suggestion) and keeps the raw
# CSVs in bench/out/hpo/.
#
#   bench/hpo/run.sh [--quick] [--seeds N] [--budgets "30 100"]
#                    [--algos "bayesianoptimization tpe ..."]
#                    [--anchors "optuna-tpe optuna-gp ..."] [--skopt-seeds N]
#
# --quick: 3 seeds, budget 30, 2 seeds for the slow GP anchors (~5 min).
# Default: 10 seeds, budgets 30 and 100. The GP anchors are slow (skopt
# ~1 min per 30-trial run, ~2 s per suggestion at 100 trials; Optuna's GP
# ~0.3 s per suggestion): skopt-gp runs with --skopt-seeds seeds (default 3)
# and only at budgets up to 30 unless --skopt-all is given; the table says
# how many seeds each row has.
#
# OXFLOW_HPO_VENV: the Python venv (default .venv-hpo, git-ignored), created
# from bench/hpo/requirements.txt when missing or stale.
# OXFLOW_HPO_TORCH=1: also install torch into it, which Optuna's GPSampler
# needs; without torch the optuna-gp anchor is skipped (and says so).
set -euo pipefail
cd "$(dirname "$0")/../.."

seeds=10
budgets="30 100"
algos="bayesianoptimization tpe multivariate-tpe cmaes random"
anchors="optuna-tpe optuna-gp optuna-cmaes optuna-random skopt-gp hyperopt-tpe"
skopt_seeds=3
skopt_all=0
gp_seeds=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) seeds=3; budgets="30"; skopt_seeds=2; gp_seeds=2 ;;
    --seeds) seeds="$2"; shift ;;
    --budgets) budgets="$2"; shift ;;
    --algos) algos="$2"; shift ;;
    --anchors) anchors="$2"; shift ;;
    --skopt-seeds) skopt_seeds="$2"; shift ;;
    --skopt-all) skopt_all=1 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
gp_seeds="${gp_seeds:-$seeds}"

# 1. Python with the anchor libraries, in a venv of its own.
venv="${OXFLOW_HPO_VENV:-$PWD/.venv-hpo}"
stamp="$venv/.oxflow-requirements"
if ! [ -x "$venv/bin/python" ] || ! cmp -s bench/hpo/requirements.txt "$stamp"; then
  echo "==> creating the venv at $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r bench/hpo/requirements.txt
  cp bench/hpo/requirements.txt "$stamp"
fi
if [ "${OXFLOW_HPO_TORCH:-0}" = 1 ] && ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
  echo "==> installing torch for Optuna's GPSampler" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check torch
fi
has_torch=0
"$venv/bin/python" -c 'import torch' 2>/dev/null && has_torch=1

out="bench/out/hpo/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
notes=()

# 2. Oxflow: one release build, then each algorithm and budget.
cargo bench -p oxflow-suggest --bench hpo --no-run >&2
for b in $budgets; do
  for a in $algos; do
    echo "==> oxflow $a, budget $b, $seeds seeds" >&2
    if cargo bench -q -p oxflow-suggest --bench hpo -- --algo "$a" --budget "$b" --seeds "$seeds" \
      >"$out/oxflow-$a-$b.csv" 2>"$out/oxflow-$a-$b.log"; then
      sed -i "s/,$a,/,oxflow-$a,/" "$out/oxflow-$a-$b.csv"
    else
      why="$(grep -m1 "^$a: " "$out/oxflow-$a-$b.log" || tail -n 1 "$out/oxflow-$a-$b.log")"
      notes+=("oxflow-$a skipped at budget $b: $why")
      rm -f "$out/oxflow-$a-$b.csv"
    fi
  done
done

# 3. The anchors, same problems, budgets and seeds.
for b in $budgets; do
  for s in $anchors; do
    n="$seeds"
    case "$s" in
      optuna-gp)
        if [ "$has_torch" != 1 ]; then
          notes+=("optuna-gp skipped: torch is not installed (OXFLOW_HPO_TORCH=1 installs it)")
          continue
        fi
        n="$gp_seeds" ;;
      skopt-gp)
        if [ "$skopt_all" != 1 ] && [ "$b" -gt 30 ]; then
          notes+=("skopt-gp skipped at budget $b (about 2 s per suggestion; --skopt-all runs it)")
          continue
        fi
        n="$skopt_seeds" ;;
    esac
    echo "==> $s, budget $b, $n seeds" >&2
    "$venv/bin/python" bench/hpo/anchors.py run --sampler "$s" --budget "$b" --seeds "$n" >"$out/$s-$b.csv"
  done
done

# 4. The table.
{
  echo "HPO benchmark, $(date -u +%Y-%m-%d), $(nproc) cores; raw CSVs in $out."
  echo "Regret = best loss found - known optimum (lower is better); cost = wall time of the"
  echo "last suggestion (model fit + acquisition), median over seeds."
  echo
  "$venv/bin/python" bench/hpo/anchors.py summary "$out"/*.csv
  for n in "${notes[@]+"${notes[@]}"}"; do echo "- $n"; done
} | tee "$out/summary.md"
