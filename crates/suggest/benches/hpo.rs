//! Sample efficiency and suggestion cost of Oxflow's algorithms on the
//! standard test functions (the problems of `../shared/bench/hpo`).
//!
//!   cargo bench -p oxflow-suggest --bench hpo -- [--algo NAME]... [--problem NAME]...
//!       [--budget N]... [--seeds N] [--setting name=value]...
//!
//! Prints one CSV row per (problem, algorithm, seed, budget) on stdout, the
//! same columns as `reference_optuna.py` plus the cost of the last suggestion,
//! then a summary (median simple regret with quartiles) on stderr.

use std::time::Instant;

use oxflow_suggest::{Budget, Outcome, TrialRecord, build, testfns::PROBLEMS};

fn main() {
    let mut algos = Vec::new();
    let mut problems = Vec::new();
    let mut budgets = Vec::new();
    let mut seeds = 10u64;
    let mut settings = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--algo" => algos.push(val()),
            "--problem" => problems.push(val()),
            "--budget" => budgets.push(val().parse::<usize>().expect("--budget N")),
            "--seeds" => seeds = val().parse().expect("--seeds N"),
            "--setting" => {
                let v = val();
                let (k, v) = v.split_once('=').expect("--setting name=value");
                settings.push((k.to_string(), v.to_string()));
            }
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    if algos.is_empty() {
        algos = [
            "random",
            "tpe",
            "multivariate-tpe",
            "cmaes",
            "bayesianoptimization",
        ]
        .map(String::from)
        .to_vec();
    }
    if budgets.is_empty() {
        budgets = vec![30, 100];
    }
    println!("problem,sampler,seed,budget,best,regret,ms_per_trial,ms_last_suggest");
    let mut summary = Vec::new();
    for p in PROBLEMS
        .iter()
        .filter(|p| problems.is_empty() || problems.iter().any(|n| n == p.name))
    {
        for algo in &algos {
            for &budget in &budgets {
                let mut regrets = Vec::new();
                for seed in 0..seeds {
                    let space = p.space();
                    let alg = build(
                        algo,
                        &settings,
                        &space,
                        Budget {
                            max_trial_count: Some(budget as u32),
                            parallel_trial_count: 1,
                        },
                        seed,
                    )
                    .unwrap_or_else(|e| panic!("{algo}: {e}"));
                    let mut history: Vec<TrialRecord> = Vec::with_capacity(budget);
                    let mut best = f64::INFINITY;
                    let start = Instant::now();
                    let mut last = 0.0;
                    while history.len() < budget {
                        let t = Instant::now();
                        let s = alg.suggest(&history, 1).expect("suggest");
                        last = t.elapsed().as_secs_f64() * 1e3;
                        let Some(s) = s.into_iter().next() else { break };
                        let y = p.eval(&s.assignment);
                        best = best.min(y);
                        history.push(TrialRecord {
                            assignment: s.assignment,
                            outcome: Outcome::Completed(y),
                            tags: s.tags,
                        });
                    }
                    let ms = start.elapsed().as_secs_f64() * 1e3 / budget as f64;
                    let regret = best - p.f_opt;
                    println!(
                        "{},{algo},{seed},{budget},{best},{regret},{ms:.3},{last:.3}",
                        p.name
                    );
                    regrets.push(regret);
                }
                regrets.sort_by(f64::total_cmp);
                summary.push((p.name, algo.clone(), budget, quartiles(&regrets)));
            }
        }
    }
    eprintln!("| problem | algorithm | budget | median regret [q1–q3] |");
    eprintln!("|---|---|---|---|");
    for (p, a, b, (q1, m, q3)) in summary {
        eprintln!("| {p} | {a} | {b} | {m:.4} [{q1:.4}–{q3:.4}] |");
    }
}

/// (q1, median, q3) of sorted values, linear interpolation (numpy's default).
fn quartiles(v: &[f64]) -> (f64, f64, f64) {
    let q = |f: f64| {
        let pos = f * (v.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
    };
    (q(0.25), q(0.5), q(0.75))
}
