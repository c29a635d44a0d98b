#!/usr/bin/env python3
"""Anchor numbers for Oxflow's tuning algorithms: the Python libraries Katib
serves, on the problems of `functions.py`, with the same CSV columns as
`cargo bench -p oxflow-suggest --bench hpo`.

    anchors.py run --sampler optuna-gp --budget 30 --seeds 10 [--problem NAME]...
    anchors.py summary FILE.csv...     # markdown table of all CSVs given

Samplers: optuna-tpe, optuna-gp (needs torch), optuna-cmaes, optuna-random
(Optuna 5 defaults, seeded), skopt-gp (`gp_minimize` defaults: 10 random
initial points, gp_hedge, lbfgs), hyperopt-tpe (`fmin` with `tpe.suggest`).

Columns: problem,sampler,seed,budget,best,regret,ms_per_trial,ms_last_suggest.
`ms_last_suggest` is the wall time between the end of the last-but-one
evaluation and the start of the last one: the library's tell + ask (model fit
and acquisition), i.e. the cost of one suggestion with budget-1 trials done.
"""
import argparse
import csv
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from functions import PROBLEMS  # noqa: E402


class Clock:
    """Wraps an objective to time the gaps between evaluations."""

    def __init__(self, fn):
        self.fn = fn
        self.last_end = None
        self.gap = float("nan")
        self.best = math.inf

    def __call__(self, x):
        start = time.perf_counter()
        if self.last_end is not None:
            self.gap = (start - self.last_end) * 1000
        y = float(self.fn(x))
        self.best = min(self.best, y)
        self.last_end = time.perf_counter()
        return y


def run_optuna(kind, prob, seed, budget, clock):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    samplers = {
        "optuna-tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "optuna-gp": lambda: optuna.samplers.GPSampler(seed=seed),
        "optuna-cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed),
        "optuna-random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }
    study = optuna.create_study(sampler=samplers[kind]())

    def objective(trial):
        x = {}
        for p in prob.params:
            if p.kind == "double":
                x[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
            elif p.kind == "int":
                x[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
            else:
                x[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        return clock(x)

    study.optimize(objective, n_trials=budget)


def run_skopt(prob, seed, budget, clock):
    from skopt import gp_minimize
    from skopt.space import Categorical, Integer, Real

    dims = []
    for p in prob.params:
        if p.kind == "double":
            dims.append(Real(p.low, p.high, prior="log-uniform" if p.log else "uniform", name=p.name))
        elif p.kind == "int":
            dims.append(Integer(int(p.low), int(p.high), name=p.name))
        else:
            dims.append(Categorical(list(p.choices), name=p.name))
    names = [p.name for p in prob.params]
    gp_minimize(lambda v: clock(dict(zip(names, v))), dims, n_calls=budget, random_state=seed)


def run_hyperopt(prob, seed, budget, clock):
    import numpy as np
    from hyperopt import fmin, hp, tpe

    space = {}
    for p in prob.params:
        if p.kind == "double":
            if p.log:
                space[p.name] = hp.loguniform(p.name, math.log(p.low), math.log(p.high))
            else:
                space[p.name] = hp.uniform(p.name, p.low, p.high)
        elif p.kind == "int":
            space[p.name] = hp.uniformint(p.name, int(p.low), int(p.high))
        else:
            space[p.name] = hp.choice(p.name, list(p.choices))
    fmin(clock, space, algo=tpe.suggest, max_evals=budget, rstate=np.random.default_rng(seed),
         show_progressbar=False)


def cmd_run(a):
    out = csv.writer(sys.stdout)
    out.writerow(["problem", "sampler", "seed", "budget", "best", "regret", "ms_per_trial", "ms_last_suggest"])
    for name in a.problem or sorted(PROBLEMS):
        prob = PROBLEMS[name]
        for seed in range(a.seeds):
            clock = Clock(prob)
            t = time.perf_counter()
            if a.sampler.startswith("optuna-"):
                run_optuna(a.sampler, prob, seed, a.budget, clock)
            elif a.sampler == "skopt-gp":
                run_skopt(prob, seed, a.budget, clock)
            elif a.sampler == "hyperopt-tpe":
                run_hyperopt(prob, seed, a.budget, clock)
            else:
                raise SystemExit(f"unknown sampler {a.sampler}")
            ms = (time.perf_counter() - t) * 1000 / a.budget
            out.writerow([name, a.sampler, seed, a.budget, repr(clock.best), repr(clock.best - prob.f_opt),
                          f"{ms:.3f}", f"{clock.gap:.3f}"])
            sys.stdout.flush()


def quartiles(v):
    v = sorted(v)

    def q(f):
        pos = f * (len(v) - 1)
        lo, hi = math.floor(pos), math.ceil(pos)
        return v[lo] + (v[hi] - v[lo]) * (pos - lo)

    return q(0.25), q(0.5), q(0.75)


def fmt(x):
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.3g}"


def cmd_summary(a):
    rows = {}
    for path in a.files:
        with open(path) as f:
            for r in csv.DictReader(f):
                key = (r["problem"], int(r["budget"]), r["sampler"])
                rows.setdefault(key, []).append(r)
    print("| problem | budget | method | seeds | median regret [q1–q3] | ms per suggestion at the last trial (median) |")
    print("|---|---|---|---|---|---|")
    for (prob, budget, sampler) in sorted(rows):
        rs = rows[(prob, budget, sampler)]
        q1, m, q3 = quartiles([float(r["regret"]) for r in rs])
        last = [float(r["ms_last_suggest"]) for r in rs if r.get("ms_last_suggest") not in (None, "", "nan")]
        cost = f"{quartiles(last)[1]:.1f}" if last else "—"
        print(f"| {prob} | {budget} | {sampler} | {len(rs)} | {fmt(m)} [{fmt(q1)}–{fmt(q3)}] | {cost} |")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--sampler", required=True)
    r.add_argument("--budget", type=int, default=30)
    r.add_argument("--seeds", type=int, default=10)
    r.add_argument("--problem", action="append")
    s = sub.add_parser("summary")
    s.add_argument("files", nargs="+")
    a = ap.parse_args()
    cmd_run(a) if a.cmd == "run" else cmd_summary(a)


if __name__ == "__main__":
    main()
