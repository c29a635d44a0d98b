//! `bayesianoptimization`: Gaussian-process Bayesian optimisation with
//! Katib's settings (those of its scikit-optimize service).
//!
//! Each call rebuilds everything from the history (see the crate docs):
//!
//! 1. **Initial design.** The first `n_initial_points` trials come from a
//!    maximin Latin hypercube fixed by the seed (trial *i* takes row *i*), so
//!    the start covers the space evenly instead of clumping like random draws.
//! 2. **Encoding.** Numeric parameters enter the model at their unit position
//!    ([`crate::Param::to_unit`]: log-scaled, ints widened by half a step),
//!    discrete lists at their rank among the sorted values, categorical lists
//!    as a choice index with an overlap kernel (distance 1 when different,
//!    one lengthscale per parameter rather than one per one-hot column).
//! 3. **Output warping** ([`warp`]): the losses are standardised after a
//!    monotone transform, Yeo-Johnson or a shifted log, whichever makes the
//!    raw losses more likely under the fitted GP. Without it a few diverged
//!    trials (heavy tails: Rosenbrock, an exploding learning rate) squash
//!    every good trial onto one value and the model sees no structure where
//!    the optimum is.
//! 4. **Surrogate** ([`model`]): Matérn-5/2 kernel with one lengthscale per
//!    parameter (log-normal prior, median 0.2·d^¼ of the unit range), signal
//!    variance and a noise term (gamma prior favouring little noise), fitted
//!    by maximum a posteriori with L-BFGS on the log-parameters. The warp
//!    choice and a multi-start fit use at most [`SUBSET`] observations
//!    spread over the history; with more, a short refit on all of them
//!    starts from that result.
//! 5. **Acquisition** ([`acq`]): log expected improvement by default (stable
//!    far from the incumbent, where EI underflows), maximised over uniform
//!    candidates and perturbations of the best trials at scales from 1e-3 to
//!    0.3; the best few are refined by L-BFGS on the numeric coordinates and
//!    the best one by trying every other choice of each categorical one.
//!    Small finite spaces (≤ [`ENUMERATE_LIMIT`] points) are scored whole.
//! 6. **Batches, running and failed trials**: running and failed trials and
//!    the suggestions already made in the batch become "kriging believer"
//!    fantasies (the posterior mean taken as their outcome): the mean stays,
//!    the variance there collapses, so a batch spreads out instead of
//!    repeating one point. A failed trial is thus "already tried", not
//!    "bad": its failure may have nothing to do with its parameters.
//!    Early-stopped trials count with their last reported loss.
//!
//! Cost: every call fits from scratch within fixed arithmetic budgets
//! ([`FIT_BUDGET`], [`REFIT_BUDGET`], [`ACQ_BUDGET`]): about 5 ms with 100
//! trials and 20 ms with 300 (6 parameters, one core); Optuna's GPSampler
//! takes 45–300 ms and scikit-optimize 0.4–1.5 s already at 30 trials.
//!
//! Quality (bench/hpo, 30 trials, median simple regret over seeds 0–9,
//! measured back to back): Branin 0.0004, Hartmann-6 0.032, Rosenbrock-5
//! 244, where Optuna 5's GPSampler reaches 0.0125, 0.118, 1686 and
//! scikit-optimize's `gp_minimize` 0.0037, 0.70 and 844 (the last two over
//! 3 seeds; bench/hpo/README.md has the table).
//!
//! Settings (Katib's names):
//! - `base_estimator`: only `GP`; `RF`, `ET` and `GBRT` are refused with a
//!   message.
//! - `n_initial_points` (int ≥ 0): when unset, min(10, 2 + number of
//!   parameters). Fewer than Katib's 10 in small spaces: from about d + 2
//!   trials on a model is worth more than random points (the benchmark
//!   agrees: 10 initial points raise Branin's median regret at 30 trials
//!   from 0.0004 to 0.0075).
//! - `acq_func`: `gp_hedge` (the default) and `EI` are log-EI (skopt's hedge
//!   portfolio guards against a poorly fitted GP, which a MAP-fitted one
//!   with log-EI does not need); `PI` is log-PI with a margin of 0.1
//!   standardised units (with skopt's 0.01 it creeps along next to the
//!   incumbent: median regret 1.7 on Hartmann-6 at 30 trials, against 0.10);
//!   `LCB` uses kappa 1.96; `EIps` and `PIps` are EI and PI, since trial
//!   durations are not modelled.
//! - `acq_optimizer`: `auto` and `lbfgs` refine the best candidates by
//!   L-BFGS, `sampling` keeps the best candidate.
//! - `random_state` (or `seed`, as for every algorithm of this crate).

mod acq;
mod lbfgs;
mod model;
mod warp;

use rand::RngExt;

use crate::common::{Rng, Taken, axes, check_history, pick_unique, point_at, rng_for};
use crate::settings::{Settings, bad};
use crate::{
    Algorithm, Assignment, Domain, Outcome, SearchSpace, SettingsError, SuggestError, Suggestion,
    TrialRecord, Value,
};
use acq::Acquisition;
use model::{FitProblem, Kind, Posterior, Priors};
use warp::Warp;

const NAME: &str = "bayesianoptimization";
/// Katib's settings, and `seed` (the crate-wide alias of `random_state`).
const SETTINGS: [&str; 6] = [
    "base_estimator",
    "n_initial_points",
    "acq_func",
    "acq_optimizer",
    "random_state",
    "seed",
];
/// RNG streams (see [`rng_for`]): one per call, one for the initial design.
const STREAM: u64 = 11;
const DESIGN_STREAM: u64 = 12;

/// How the acquisition is maximised (`acq_optimizer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Optimizer {
    /// Candidate sampling plus L-BFGS refinement (`auto`, `lbfgs`).
    Lbfgs,
    /// Candidate sampling only (`sampling`).
    Sampling,
}

// Arithmetic budgets of one call, in multiply-adds (about 3e9 per second
// on one core of the development machine), which keep a suggestion at about
// 5 ms with 100 trials (measured: bench/hpo). Counting operations instead of
// timing them keeps the result a pure function of the history.

/// The warp choice and multi-start hyperparameter fit on at most
/// [`SUBSET`] observations.
const FIT_BUDGET: f64 = 3e6;
/// The warm-started refit on all observations.
const REFIT_BUDGET: f64 = 4e6;
/// Histories up to this size always get a refit of at least a few steps;
/// beyond it the refit gets only what [`REFIT_BUDGET`] pays for (none from
/// about 160 observations on), and the subset's hyperparameters serve.
const REFIT_ALWAYS: usize = 128;
/// One acquisition maximisation.
const ACQ_BUDGET: f64 = 5e6;

/// The configured algorithm.
#[derive(Debug, Clone)]
pub(crate) struct BayesOpt {
    space: SearchSpace,
    encoder: Encoder,
    n_initial: usize,
    acquisition: Acquisition,
    optimizer: Optimizer,
    seed: u64,
}

impl BayesOpt {
    /// Checks the settings against Katib's list and builds the algorithm.
    pub(crate) fn new(
        settings: &[(String, String)],
        space: &SearchSpace,
        seed: u64,
    ) -> Result<Self, SettingsError> {
        let s = Settings::new(NAME, settings, &SETTINGS)?;
        if let Some(v) = s.raw("base_estimator") {
            match v.to_ascii_uppercase().as_str() {
                "GP" => {}
                "RF" | "ET" | "GBRT" => {
                    return Err(bad(
                        "base_estimator",
                        format!(
                            "{v:?} is not supported: Oxflow's {NAME} uses a Gaussian process; set \
                             base_estimator to GP or remove it (for a tree-based model use algorithm tpe)"
                        ),
                    ));
                }
                _ => {
                    return Err(bad(
                        "base_estimator",
                        format!("{v:?} is not one of GP, RF, ET, GBRT"),
                    ));
                }
            }
        }
        let acquisition = match s.raw("acq_func").map(str::to_ascii_lowercase).as_deref() {
            None | Some("gp_hedge" | "ei" | "eips") => Acquisition::LogEi { xi: 0.0 },
            Some("pi" | "pips") => Acquisition::LogPi { xi: 0.1 },
            Some("lcb") => Acquisition::Lcb { kappa: 1.96 },
            Some(_) => {
                let v = s.raw("acq_func").unwrap_or_default();
                return Err(bad(
                    "acq_func",
                    format!("{v:?} is not one of gp_hedge, LCB, EI, PI, EIps, PIps"),
                ));
            }
        };
        let optimizer = match s
            .raw("acq_optimizer")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("auto" | "lbfgs") => Optimizer::Lbfgs,
            Some("sampling") => Optimizer::Sampling,
            Some(_) => {
                let v = s.raw("acq_optimizer").unwrap_or_default();
                return Err(bad(
                    "acq_optimizer",
                    format!("{v:?} is not one of auto, sampling, lbfgs"),
                ));
            }
        };
        let dim = space.params.len();
        let n_initial = match s.int("n_initial_points", 0)? {
            Some(k) => k as usize,
            None => (2 + dim).min(10),
        };
        Ok(BayesOpt {
            space: space.clone(),
            encoder: Encoder::new(space),
            n_initial,
            acquisition,
            optimizer,
            seed: s.seed(seed)?,
        })
    }
}

/// How one parameter is encoded for the model.
#[derive(Debug, Clone)]
enum Column {
    Numeric,
    /// A discrete list: `rank[c]` is choice c's rank among the sorted values,
    /// `by_rank[r]` the choice with rank r.
    Discrete {
        rank: Vec<usize>,
        by_rank: Vec<usize>,
    },
    Categorical(usize),
}

/// Maps assignments to model inputs and back.
#[derive(Debug, Clone)]
struct Encoder {
    columns: Vec<Column>,
    kinds: Vec<Kind>,
}

impl Encoder {
    fn new(space: &SearchSpace) -> Self {
        let columns: Vec<Column> = space
            .params
            .iter()
            .map(|p| match &p.domain {
                Domain::Double { .. } | Domain::Int { .. } => Column::Numeric,
                Domain::Discrete { values, .. } => {
                    let mut by_rank: Vec<usize> = (0..values.len()).collect();
                    by_rank.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
                    let mut rank = vec![0; values.len()];
                    for (r, &c) in by_rank.iter().enumerate() {
                        rank[c] = r;
                    }
                    Column::Discrete { rank, by_rank }
                }
                Domain::Categorical { list } => Column::Categorical(list.len()),
            })
            .collect();
        let kinds = columns
            .iter()
            .map(|c| {
                if matches!(c, Column::Categorical(_)) {
                    Kind::Categorical
                } else {
                    Kind::Numeric
                }
            })
            .collect();
        Encoder { columns, kinds }
    }

    fn encode(&self, space: &SearchSpace, a: &Assignment) -> Option<Vec<f64>> {
        if !space.contains(a) {
            return None;
        }
        self.columns
            .iter()
            .zip(&space.params)
            .zip(a)
            .map(|((col, p), v)| match (col, v) {
                (Column::Numeric, v) => p.to_unit(v),
                (Column::Discrete { rank, .. }, Value::Choice(c)) => {
                    let k = rank.len();
                    Some(if k > 1 {
                        rank[*c] as f64 / (k - 1) as f64
                    } else {
                        0.5
                    })
                }
                (Column::Categorical(_), Value::Choice(c)) => Some(*c as f64),
                _ => None,
            })
            .collect()
    }

    /// The feasible assignment nearest to model input `x`.
    fn decode(&self, space: &SearchSpace, x: &[f64]) -> Assignment {
        self.columns
            .iter()
            .zip(&space.params)
            .zip(x)
            .map(|((col, p), &u)| match col {
                Column::Numeric => p.from_unit(u).unwrap_or(Value::Double(u)),
                Column::Discrete { by_rank, .. } => {
                    let k = by_rank.len();
                    let r = (u.clamp(0.0, 1.0) * (k - 1) as f64).round() as usize;
                    Value::Choice(by_rank[r.min(k - 1)])
                }
                Column::Categorical(k) => Value::Choice((u.round().max(0.0) as usize).min(k - 1)),
            })
            .collect()
    }

    /// A model input from a point of the unit cube, lists stratified:
    /// u in [0, 1) picks choice floor(u k).
    fn cube_to_input(&self, u: &[f64]) -> Vec<f64> {
        self.columns
            .iter()
            .zip(u)
            .map(|(col, &u)| match col {
                Column::Numeric => u,
                Column::Discrete { rank, .. } => {
                    let k = rank.len();
                    let r = ((u * k as f64) as usize).min(k - 1);
                    if k > 1 {
                        r as f64 / (k - 1) as f64
                    } else {
                        0.5
                    }
                }
                Column::Categorical(k) => ((u * *k as f64) as usize).min(k - 1) as f64,
            })
            .collect()
    }

    /// Squared distance between model inputs, categorical mismatch = 1.
    fn distance2(&self, a: &[f64], b: &[f64]) -> f64 {
        self.kinds
            .iter()
            .zip(a.iter().zip(b))
            .map(|(k, (x, y))| match k {
                Kind::Numeric => (x - y) * (x - y),
                Kind::Categorical => f64::from(u8::from(x != y)),
            })
            .sum()
    }
}

/// A maximin Latin hypercube of `rows` points in [0, 1)^dim: the best (by
/// smallest pairwise distance) of a few random ones.
fn latin_hypercube(rows: usize, dim: usize, rng: &mut Rng) -> Vec<Vec<f64>> {
    let tries = if rows * rows * dim > 2_000_000 { 1 } else { 20 };
    let mut best: Vec<Vec<f64>> = Vec::new();
    let mut best_score = f64::NEG_INFINITY;
    for _ in 0..tries {
        let mut pts = vec![vec![0.0; dim]; rows];
        for d in 0..dim {
            let mut perm: Vec<usize> = (0..rows).collect();
            for i in (1..rows).rev() {
                perm.swap(i, rng.random_range(0..=i));
            }
            for (i, pt) in pts.iter_mut().enumerate() {
                pt[d] = (perm[i] as f64 + rng.random::<f64>()) / rows as f64;
            }
        }
        let mut score = f64::INFINITY;
        for i in 0..rows {
            for j in 0..i {
                let d2: f64 = pts[i]
                    .iter()
                    .zip(&pts[j])
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum();
                score = score.min(d2);
            }
        }
        if score > best_score {
            best_score = score;
            best = pts;
        }
    }
    best
}

/// The output warps tried on every call (see [`warp`]).
const WARPS: [Warp; 2] = [Warp::YeoJohnson, Warp::LogShift];

/// Most observations the warp choice and the multi-start fit look at.
const SUBSET: usize = 32;

/// Spaces at most this large are searched exhaustively by the acquisition.
const ENUMERATE_LIMIT: u128 = 4096;

/// The history of one call, encoded and split by what is known.
struct Data {
    /// Encodings of every taken point (history, then this batch).
    taken_x: Vec<Vec<f64>>,
    /// Points with a usable loss, and the losses.
    obs_x: Vec<Vec<f64>>,
    obs_y: Vec<f64>,
    /// Points without one (running, failed), whose region counts as explored.
    busy_x: Vec<Vec<f64>>,
}

impl BayesOpt {
    /// The point farthest from every taken one among a few random draws: the
    /// space-filling fallback when the design or the model has nothing new.
    fn spread_point(&self, data: &Data, rng: &mut Rng) -> Vec<Assignment> {
        let dim = self.space.params.len();
        let mut best: Option<(f64, Assignment)> = None;
        for _ in 0..32 {
            let u: Vec<f64> = (0..dim).map(|_| rng.random::<f64>()).collect();
            let x = self.encoder.cube_to_input(&u);
            let d = data
                .taken_x
                .iter()
                .map(|t| self.encoder.distance2(t, &x))
                .fold(f64::INFINITY, f64::min);
            if best.as_ref().is_none_or(|(bd, _)| d > *bd) {
                best = Some((d, self.encoder.decode(&self.space, &x)));
            }
        }
        best.map(|(_, a)| a).into_iter().collect()
    }

    /// Fits the surrogate to the observations and adds the busy points as
    /// fantasies. Returns the posterior and the incumbent (lowest warped loss).
    fn surrogate(&self, data: &Data) -> Option<(Posterior, f64)> {
        let n = data.obs_y.len();
        let p = self.encoder.kinds.len();
        // One objective evaluation costs about m^3 (Cholesky and inverse)
        // plus m^2 p (kernel and gradient) for m points.
        let cost = |m: usize| (m * m * (m + p)) as f64;
        // The warp is chosen, and the hyperparameters first fitted, on at
        // most SUBSET observations spread over the history (all of them for
        // short histories); each warp is scored by the likelihood of the raw
        // losses: its marginal likelihood plus the warp's log-Jacobian.
        let sub: Vec<usize> = if n <= SUBSET {
            (0..n).collect()
        } else {
            (0..SUBSET).map(|i| i * n / SUBSET).collect()
        };
        let sub_x: Vec<Vec<f64>> = sub.iter().map(|&i| data.obs_x[i].clone()).collect();
        let sub_y: Vec<f64> = sub.iter().map(|&i| data.obs_y[i]).collect();
        let evals = (FIT_BUDGET / cost(sub.len()) / WARPS.len() as f64).clamp(30.0, 600.0) as usize;
        let starts = (evals / 60).clamp(1, 4);
        let mut chosen: Option<(f64, Warp, model::Fitted)> = None;
        for w in WARPS {
            let (y, jac) = warp::apply(w, &sub_y);
            let prob = FitProblem::new(&self.encoder.kinds, &sub_x, &y, Priors::for_dim(p));
            let Some(fit) = prob.fit(None, starts, evals / starts) else {
                continue;
            };
            let score = fit.nlp - jac;
            if chosen.as_ref().is_none_or(|c| score < c.0) {
                chosen = Some((score, w, fit));
            }
        }
        let (_, w, mut fit) = chosen?;
        let (y, _) = warp::apply(w, &data.obs_y);
        let refit = (REFIT_BUDGET / cost(n)).min(100.0) as usize;
        let refit = if n <= REFIT_ALWAYS {
            refit.max(6)
        } else {
            refit
        };
        if n > sub.len() && refit > 1 {
            // Refit on everything, warm-started from the subset's fit.
            let prob = FitProblem::new(&self.encoder.kinds, &data.obs_x, &y, Priors::for_dim(p));
            fit = prob.fit(Some(&fit.theta), 0, refit).unwrap_or(fit);
        }
        let mut post = Posterior::new(
            &self.encoder.kinds,
            fit.hyper,
            data.obs_x.clone(),
            y.clone(),
        )?;
        for x in &data.busy_x {
            post.add_fantasy(x);
        }
        let best = y.iter().copied().fold(f64::INFINITY, f64::min);
        Some((post, best))
    }

    /// Feasible points ranked by acquisition, best first (several, so that
    /// the caller can skip ones that snap onto taken points).
    fn maximise(
        &self,
        post: &Posterior,
        best: f64,
        taken: &Taken,
        data: &Data,
        rng: &mut Rng,
    ) -> Vec<Assignment> {
        let acq = self.acquisition;
        let enc = &self.encoder;
        let dim = enc.kinds.len();
        let score = |x: &[f64]| {
            let (mu, var) = post.predict(x);
            acq.value(mu, var, best)
        };
        let ranked = |mut v: Vec<(f64, Vec<f64>)>| -> Vec<Assignment> {
            v.sort_by(|a, b| b.0.total_cmp(&a.0));
            v.into_iter()
                .take(16)
                .map(|(_, x)| enc.decode(&self.space, &x))
                .collect()
        };

        // Small finite spaces: score every free point.
        if let (Some(size), Some(axes)) = (self.space.size(), axes(&self.space))
            && size <= ENUMERATE_LIMIT
        {
            let scored = (0..size)
                .map(|i| point_at(&axes, i))
                .filter(|a| !taken.contains(a))
                .filter_map(|a| enc.encode(&self.space, &a))
                .map(|x| (score(&x), x))
                .collect();
            return ranked(scored);
        }

        let n = post.len() as f64;
        let per_eval = n * n + 4.0 * n * dim as f64 + 50.0;
        let evals = ACQ_BUDGET / per_eval;
        let (n_cand, n_starts) = match self.optimizer {
            Optimizer::Lbfgs => (
                (0.6 * evals) as usize,
                ((0.4 * evals / 60.0) as usize).clamp(2, 10),
            ),
            Optimizer::Sampling => (evals as usize, 0),
        };
        let n_cand = n_cand.clamp(256, 8192);

        // Candidates: uniform draws, and perturbations of the best trials at
        // scales from 1e-3 to 0.3 of the unit range (exploitation needs the
        // fine ones, leaving a basin the coarse ones).
        let mut order: Vec<usize> = (0..data.obs_y.len()).collect();
        order.sort_by(|&a, &b| data.obs_y[a].total_cmp(&data.obs_y[b]));
        let elite: Vec<&Vec<f64>> = order.iter().take(5).map(|&i| &data.obs_x[i]).collect();
        let flip = 1.0 / dim.max(1) as f64;
        let mut scored: Vec<(f64, Vec<f64>)> = Vec::with_capacity(n_cand);
        for i in 0..n_cand {
            let x = if i % 2 == 1 && !elite.is_empty() {
                let base = elite[(i / 2) % elite.len()];
                let scale = 10f64.powf(-3.0 + 2.5 * rng.random::<f64>());
                (0..dim)
                    .map(|d| match enc.columns[d] {
                        Column::Categorical(k) => {
                            if rng.random::<f64>() < flip {
                                rng.random_range(0..k) as f64
                            } else {
                                base[d]
                            }
                        }
                        _ => {
                            let z: f64 = rng.sample(rand_distr::StandardNormal);
                            (base[d] + scale * z).clamp(0.0, 1.0)
                        }
                    })
                    .collect()
            } else {
                let u: Vec<f64> = (0..dim).map(|_| rng.random::<f64>()).collect();
                enc.cube_to_input(&u)
            };
            scored.push((score(&x), x));
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.truncate(n_starts.max(16));

        // Local refinement of the numeric coordinates of the best candidates.
        let numeric: Vec<usize> = (0..dim)
            .filter(|&d| enc.kinds[d] == Kind::Numeric)
            .collect();
        if !numeric.is_empty() {
            let mut dmu = vec![0.0; dim];
            let mut dvar = vec![0.0; dim];
            let lo = vec![0.0; numeric.len()];
            let hi = vec![1.0; numeric.len()];
            let opt = lbfgs::Options {
                max_evals: 60,
                first_step: 0.05,
                ftol: 1e-9,
                gtol: 1e-7,
            };
            for entry in scored.iter_mut().take(n_starts) {
                let base = entry.1.clone();
                let mut f = |z: &[f64], g: &mut [f64]| {
                    let mut x = base.clone();
                    for (k, &d) in numeric.iter().enumerate() {
                        x[d] = z[k];
                    }
                    let (mu, var) = post.predict_grad(&x, &mut dmu, &mut dvar);
                    let (a, da_mu, da_var) = acq.value_grad(mu, var, best);
                    for (k, &d) in numeric.iter().enumerate() {
                        g[k] = -(da_mu * dmu[d] + da_var * dvar[d]);
                    }
                    -a
                };
                let z0: Vec<f64> = numeric.iter().map(|&d| base[d]).collect();
                let m = lbfgs::minimize(&mut f, &z0, &lo, &hi, opt);
                if m.f.is_finite() && -m.f > entry.0 {
                    let mut x = base;
                    for (k, &d) in numeric.iter().enumerate() {
                        x[d] = m.x[k];
                    }
                    *entry = (-m.f, x);
                }
            }
        }
        // Categorical coordinates: every other choice of each, at the best point.
        if let Some((_, x0)) = scored.iter().max_by(|a, b| a.0.total_cmp(&b.0)).cloned() {
            for (d, col) in enc.columns.iter().enumerate() {
                if let Column::Categorical(k) = col {
                    for c in (0..*k).filter(|&c| c as f64 != x0[d]) {
                        let mut x = x0.clone();
                        x[d] = c as f64;
                        scored.push((score(&x), x));
                    }
                }
            }
        }
        ranked(scored)
    }
}

impl Algorithm for BayesOpt {
    fn suggest(&self, history: &[TrialRecord], n: usize) -> Result<Vec<Suggestion>, SuggestError> {
        check_history(&self.space, history)?;
        let mut rng = rng_for(self.seed, history.len(), STREAM);
        let mut taken = Taken::new(history);
        let mut data = Data {
            taken_x: Vec::new(),
            obs_x: Vec::new(),
            obs_y: Vec::new(),
            busy_x: Vec::new(),
        };
        for (i, t) in history.iter().enumerate() {
            let x = self
                .encoder
                .encode(&self.space, &t.assignment)
                .ok_or_else(|| {
                    SuggestError::History(format!(
                        "trial #{i} has an assignment the model cannot encode"
                    ))
                })?;
            match t.outcome {
                Outcome::Completed(y) | Outcome::EarlyStopped { last: Some(y) }
                    if y.is_finite() =>
                {
                    data.obs_x.push(x.clone());
                    data.obs_y.push(y);
                }
                _ => data.busy_x.push(x.clone()),
            }
            data.taken_x.push(x);
        }

        // The design depends on the seed only: trial i takes row i.
        let design = if history.len() < self.n_initial {
            latin_hypercube(
                self.n_initial,
                self.space.params.len(),
                &mut rng_for(self.seed, 0, DESIGN_STREAM),
            )
        } else {
            Vec::new()
        };
        let mut model: Option<(Posterior, f64)> = None;
        let mut out = Vec::with_capacity(n);
        for slot in 0..n {
            let index = history.len() + slot;
            let proposals: Vec<Assignment> = if index < self.n_initial || data.obs_y.len() < 2 {
                design
                    .get(index)
                    .map(|u| {
                        self.encoder
                            .decode(&self.space, &self.encoder.cube_to_input(u))
                    })
                    .into_iter()
                    .collect()
            } else {
                if model.is_none() {
                    model = self.surrogate(&data);
                }
                match &model {
                    Some((post, best)) => self.maximise(post, *best, &taken, &data, &mut rng),
                    None => Vec::new(),
                }
            };
            let mut proposals = Some(proposals);
            let picked = pick_unique(&self.space, &mut taken, &mut rng, |r, _| {
                proposals
                    .take()
                    .unwrap_or_else(|| self.spread_point(&data, r))
            });
            let Some(a) = picked else { break };
            if let Some(x) = self.encoder.encode(&self.space, &a) {
                match model.as_mut() {
                    Some((post, _)) => post.add_fantasy(&x),
                    None => data.busy_x.push(x.clone()),
                }
                data.taken_x.push(x);
            }
            out.push(Suggestion::new(a));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;
    use crate::testfns::{BRANIN, Problem};

    fn settings(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// Runs `budget` sequential trials of `alg` on `p`; returns the regret.
    fn run(alg: &dyn Algorithm, p: &Problem, budget: usize) -> f64 {
        let mut history = Vec::new();
        for _ in 0..budget {
            let s = alg.suggest(&history, 1).unwrap().remove(0);
            let y = p.eval(&s.assignment);
            history.push(record(&s, Outcome::Completed(y)));
        }
        history
            .iter()
            .filter_map(|t| crate::common::completed_loss(&t.outcome))
            .fold(f64::INFINITY, f64::min)
            - p.f_opt
    }

    /// Completed trials of the first `k` suggestions on Branin.
    fn branin_history(alg: &dyn Algorithm, k: usize) -> Vec<TrialRecord> {
        let mut history = Vec::new();
        for _ in 0..k {
            let s = alg.suggest(&history, 1).unwrap().remove(0);
            let y = BRANIN.eval(&s.assignment);
            history.push(record(&s, Outcome::Completed(y)));
        }
        history
    }

    #[test]
    fn settings_errors_name_the_setting() {
        let space = BRANIN.space();
        let check = |items: &[(&str, &str)], expected: Option<&str>| {
            let got = BayesOpt::new(&settings(items), &space, 0)
                .err()
                .map(|e| match e {
                    SettingsError::Setting { name, message } => {
                        assert!(!message.is_empty());
                        name
                    }
                    other => panic!("{items:?}: not a setting error: {other}"),
                });
            assert_eq!(got.as_deref(), expected, "{items:?}");
        };
        check(&[], None);
        check(
            &[
                ("base_estimator", "GP"),
                ("n_initial_points", "0"),
                ("acq_func", "gp_hedge"),
                ("acq_optimizer", "auto"),
                ("random_state", "3"),
            ],
            None,
        );
        for f in ["LCB", "EI", "PI", "EIps", "PIps"] {
            check(&[("acq_func", f)], None);
        }
        for o in ["sampling", "lbfgs"] {
            check(&[("acq_optimizer", o)], None);
        }
        check(&[("base_estimator", "RF")], Some("base_estimator"));
        check(&[("base_estimator", "SVM")], Some("base_estimator"));
        check(&[("n_initial_points", "-1")], Some("n_initial_points"));
        check(&[("n_initial_points", "ten")], Some("n_initial_points"));
        check(&[("acq_func", "UCB")], Some("acq_func"));
        check(&[("acq_optimizer", "adam")], Some("acq_optimizer"));
        check(&[("random_state", "-2")], Some("random_state"));
        check(&[("kappa", "1.96")], Some("kappa"));
        check(&[("acq_func", "EI"), ("acq_func", "PI")], Some("acq_func"));
        let e = BayesOpt::new(&settings(&[("base_estimator", "GBRT")]), &space, 0).unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
    }

    #[test]
    fn same_seed_and_history_give_the_same_suggestions() {
        let space = BRANIN.space();
        let a = BayesOpt::new(&[], &space, 7).unwrap();
        let history = branin_history(&a, 12);
        let b = BayesOpt::new(&[], &space, 7).unwrap();
        assert_eq!(
            a.suggest(&history, 3).unwrap(),
            b.suggest(&history, 3).unwrap()
        );
        // The seed matters (through the design and the candidates).
        let c = BayesOpt::new(&settings(&[("random_state", "8")]), &space, 7).unwrap();
        assert_ne!(a.suggest(&[], 1).unwrap(), c.suggest(&[], 1).unwrap());
        // And so does the history.
        assert_ne!(
            a.suggest(&history, 1).unwrap(),
            a.suggest(&history[..11], 1).unwrap()
        );
    }

    #[test]
    fn a_batch_with_running_trials_has_no_duplicates_and_spreads() {
        let space = BRANIN.space();
        let alg = BayesOpt::new(&[], &space, 1).unwrap();
        let mut history = branin_history(&alg, 12);
        // Three trials are still running: the next batch must avoid them.
        for s in alg.suggest(&history, 3).unwrap() {
            history.push(pending(s.assignment));
        }
        let batch = alg.suggest(&history, 6).unwrap();
        assert_eq!(batch.len(), 6);
        let mut all: Vec<&Assignment> = history.iter().map(|t| &t.assignment).collect();
        all.extend(batch.iter().map(|s| &s.assignment));
        assert!(all_distinct(&all));
        // No new point sits next to a running one or another of the batch
        // (in unit coordinates; 0.16 apart at least here): kriging-believer
        // fantasies remove the variance there. Without them every slot
        // would chase the same maximiser and land within rounding of it.
        let unit = |a: &Assignment| alg.encoder.encode(&space, a).unwrap();
        let running: Vec<Vec<f64>> = history[12..].iter().map(|t| unit(&t.assignment)).collect();
        let fresh: Vec<Vec<f64>> = batch.iter().map(|s| unit(&s.assignment)).collect();
        for (i, x) in fresh.iter().enumerate() {
            for y in running.iter().chain(&fresh[..i]) {
                let d = alg.encoder.distance2(x, y).sqrt();
                assert!(d > 0.05, "batch point {i} at distance {d} of another");
            }
        }
    }

    #[test]
    fn beats_random_search_on_branin_at_30_trials() {
        // Random search's median regret at 30 trials is about 1.2 (see
        // bench/hpo); the GP gets below 0.05 on most seeds.
        let space = BRANIN.space();
        let budget = crate::Budget {
            max_trial_count: Some(30),
            parallel_trial_count: 1,
        };
        let mut bo = Vec::new();
        let mut random = Vec::new();
        for seed in 0..5 {
            bo.push(run(&BayesOpt::new(&[], &space, seed).unwrap(), &BRANIN, 30));
            random.push(run(
                &*crate::build("random", &[], &space, budget, seed).unwrap(),
                &BRANIN,
                30,
            ));
        }
        bo.sort_by(f64::total_cmp);
        random.sort_by(f64::total_cmp);
        assert!(bo[2] < 0.05, "median regret of the GP {bo:?}");
        assert!(bo[2] < random[2] / 10.0, "GP {bo:?} vs random {random:?}");
    }

    #[test]
    fn a_mixed_space_gets_feasible_distinct_points_through_the_model_phase() {
        let space = mixed_space();
        // Loss: lr near 1e-2 (log scale), 6 layers, batch 32, adam.
        let loss = |a: &Assignment| {
            let (
                Value::Double(lr),
                Value::Int(layers),
                Value::Choice(batch),
                Value::Choice(opt),
                Value::Double(m),
            ) = (&a[0], &a[1], &a[2], &a[3], &a[4])
            else {
                panic!("unexpected assignment {a:?}");
            };
            (lr.log10() + 2.0).powi(2)
                + 0.1 * (*layers as f64 - 6.0).powi(2)
                + f64::from(*batch as u8 != 1)
                + 2.0 * f64::from(*opt as u8 != 1)
                + (m - 0.7).abs()
        };
        let alg = BayesOpt::new(&settings(&[("n_initial_points", "5")]), &space, 4).unwrap();
        let mut history: Vec<TrialRecord> = Vec::new();
        while history.len() < 24 {
            for s in alg.suggest(&history, 2).unwrap() {
                assert!(space.contains(&s.assignment), "{:?}", s.assignment);
                // Every fourth trial fails: it is neither modelled nor repeated.
                let outcome = if history.len() % 4 == 3 {
                    Outcome::Failed
                } else {
                    Outcome::Completed(loss(&s.assignment))
                };
                history.push(record(&s, outcome));
            }
        }
        let all: Vec<&Assignment> = history.iter().map(|t| &t.assignment).collect();
        assert!(all_distinct(&all));
        let completed: Vec<(f64, &Assignment)> = history
            .iter()
            .filter_map(|t| crate::common::completed_loss(&t.outcome).map(|y| (y, &t.assignment)))
            .collect();
        let best_of = |k: usize| {
            completed[..k]
                .iter()
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .cloned()
                .unwrap()
        };
        let design = best_of(4);
        let best = best_of(completed.len());
        // The model phase improves clearly on the initial design and finds
        // the choice with the largest effect (adam).
        assert!(
            best.0 < 0.85 * design.0,
            "best {best:?} vs design {design:?}"
        );
        assert_eq!(best.1[3], Value::Choice(1), "{best:?}");
    }

    #[test]
    fn a_small_space_is_covered_then_exhausted() {
        let space = tiny_space();
        let alg = BayesOpt::new(&settings(&[("n_initial_points", "2")]), &space, 0).unwrap();
        let mut history: Vec<TrialRecord> = Vec::new();
        for round in 0..4 {
            let batch = alg.suggest(&history, 2).unwrap();
            assert_eq!(batch.len(), if round < 3 { 2 } else { 0 }, "round {round}");
            for (i, s) in batch.iter().enumerate() {
                history.push(record(s, Outcome::Completed(i as f64 + round as f64)));
            }
        }
        let all: Vec<&Assignment> = history.iter().map(|t| &t.assignment).collect();
        assert_eq!(all.len(), 6);
        assert!(all_distinct(&all));
    }

    #[test]
    fn history_outside_the_space_is_an_error() {
        let space = BRANIN.space();
        let alg = BayesOpt::new(&[], &space, 0).unwrap();
        let bad = pending(vec![Value::Double(50.0), Value::Double(1.0)]);
        assert!(matches!(
            alg.suggest(&[bad], 1),
            Err(SuggestError::History(_))
        ));
    }
}
