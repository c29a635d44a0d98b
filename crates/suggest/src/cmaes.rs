//! `cmaes`: CMA-ES (Hansen's covariance matrix adaptation evolution
//! strategy, as the `cmaes` library behind Optuna's `CmaEsSampler`
//! implements it) over the numeric parameters, in the unit cube of
//! [`crate::Param::to_unit`]; list parameters are drawn from their prior.
//!
//! The state is never stored: every call rebuilds it by replaying the
//! history. Each suggestion is tagged with its restart and generation
//! (`cmaes/restart`, `cmaes/generation`); a generation is told to the
//! strategy once `popsize` of its trials have completed (the first ones in
//! history order; failed trials do not count, so a generation with failures
//! asks for more points, and trials beyond `popsize` are ignored). While a
//! generation is still running, further suggestions are drawn from the same
//! generation, as Optuna does with parallel workers.
//!
//! * `sigma`: the initial step size in units of each parameter's range
//!   (Optuna's `sigma0` after its 0–1 transform); default 1/6. The search
//!   starts at the centre of the box.
//! * `restart_strategy`: `none` (default; also `None`), `ipop` (restart with
//!   twice the population when the strategy stalls, from a random mean) or
//!   `bipop` (alternate such large-population runs with small-population,
//!   small-step runs, whichever regime has used fewer evaluations).
//!   The stopping tests are the `cmaes` library's (flat fitness history, tiny
//!   or diverging step, no effect on the mean, ill-conditioned covariance).

use std::collections::BTreeMap;

use nalgebra::{DMatrix, DVector, SymmetricEigen};
use rand::RngExt;
use rand_distr::{Distribution as _, StandardNormal};

use crate::common::{Rng, Taken, check_history, pick_unique, rng_for};
use crate::settings::{Settings, bad};
use crate::{
    Algorithm, Assignment, Outcome, SearchSpace, SettingsError, SuggestError, Suggestion,
    TrialRecord, Value,
};

pub(crate) const RESTART_TAG: &str = "cmaes/restart";
pub(crate) const GENERATION_TAG: &str = "cmaes/generation";
const STREAM: u64 = 5;
const STREAM_RESTART: u64 = 6;
const EPS: f64 = 1e-8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restart {
    None,
    Ipop,
    Bipop,
}

#[derive(Debug)]
pub(crate) struct CmaEs {
    space: SearchSpace,
    seed: u64,
    sigma0: f64,
    restart: Restart,
    /// Indices of the numeric parameters, the dimensions of the strategy.
    numeric: Vec<usize>,
}

impl CmaEs {
    /// Settings: `sigma` (float > 0), `restart_strategy` (`ipop`, `bipop`,
    /// `none`/`None`), `random_state` / `seed`. Needs at least two numeric
    /// (double or int) parameters.
    pub(crate) fn new(
        settings: &[(String, String)],
        space: &SearchSpace,
        seed: u64,
    ) -> Result<Self, SettingsError> {
        let s = Settings::new(
            "cmaes",
            settings,
            &["sigma", "restart_strategy", "random_state", "seed"],
        )?;
        let sigma0 = s
            .float("sigma", |x| {
                (x <= 0.0)
                    .then_some("must be greater than 0 (a fraction of each parameter's range)")
            })?
            .unwrap_or(1.0 / 6.0);
        let restart = match s.raw("restart_strategy") {
            None | Some("none" | "None") => Restart::None,
            Some("ipop") => Restart::Ipop,
            Some("bipop") => Restart::Bipop,
            Some(other) => {
                return Err(bad(
                    "restart_strategy",
                    format!("{other:?} is not one of ipop, bipop, none"),
                ));
            }
        };
        let numeric: Vec<usize> = (0..space.params.len())
            .filter(|&i| space.params[i].is_numeric())
            .collect();
        if numeric.len() < 2 {
            return Err(SettingsError::Space(format!(
                "cmaes needs at least two double or int parameters and the experiment has {}; use tpe or random",
                numeric.len()
            )));
        }
        Ok(Self {
            space: space.clone(),
            seed: s.seed(seed)?,
            sigma0,
            restart,
            numeric,
        })
    }

    fn default_popsize(&self) -> usize {
        4 + (3.0 * (self.numeric.len() as f64).ln()).floor() as usize
    }
}

/// One run of the strategy: its parameters and its state.
#[derive(Debug, Clone)]
struct Cma {
    n: usize,
    popsize: usize,
    mu: usize,
    weights: Vec<f64>,
    mu_eff: f64,
    c_sigma: f64,
    d_sigma: f64,
    cc: f64,
    c1: f64,
    cmu: f64,
    chi_n: f64,
    mean: DVector<f64>,
    sigma: f64,
    c: DMatrix<f64>,
    p_sigma: DVector<f64>,
    pc: DVector<f64>,
    b: DMatrix<f64>,
    d: DVector<f64>,
    generation: usize,
    funhist_term: usize,
    funhist: Vec<f64>,
    tolx: f64,
}

impl Cma {
    fn new(mean: DVector<f64>, sigma: f64, popsize: usize) -> Self {
        let n = mean.len();
        let nf = n as f64;
        let mu = popsize / 2;
        let wp: Vec<f64> = (0..popsize)
            .map(|i| ((popsize as f64 + 1.0) / 2.0).ln() - ((i + 1) as f64).ln())
            .collect();
        let sq = |v: &[f64]| v.iter().sum::<f64>().powi(2) / v.iter().map(|x| x * x).sum::<f64>();
        let mu_eff = sq(&wp[..mu]);
        let mu_eff_minus = if popsize > mu { sq(&wp[mu..]) } else { 0.0 };
        let alpha_cov = 2.0;
        let c1 = alpha_cov / ((nf + 1.3).powi(2) + mu_eff);
        let cmu = (1.0 - c1 - 1e-8).min(
            alpha_cov * (mu_eff - 2.0 + 1.0 / mu_eff)
                / ((nf + 2.0).powi(2) + alpha_cov * mu_eff / 2.0),
        );
        let min_alpha = (1.0 + c1 / cmu)
            .min(1.0 + 2.0 * mu_eff_minus / (mu_eff + 2.0))
            .min((1.0 - c1 - cmu) / (nf * cmu));
        let pos: f64 = wp.iter().filter(|w| **w > 0.0).sum();
        let neg: f64 = wp.iter().filter(|w| **w < 0.0).map(|w| w.abs()).sum();
        let weights = wp
            .iter()
            .map(|&w| {
                if w >= 0.0 {
                    w / pos
                } else {
                    min_alpha / neg * w
                }
            })
            .collect();
        let c_sigma = (mu_eff + 2.0) / (nf + mu_eff + 5.0);
        let d_sigma = 1.0 + 2.0 * (((mu_eff - 1.0) / (nf + 1.0)).sqrt() - 1.0).max(0.0) + c_sigma;
        let cc = (4.0 + mu_eff / nf) / (nf + 4.0 + 2.0 * mu_eff / nf);
        let chi_n = nf.sqrt() * (1.0 - 1.0 / (4.0 * nf) + 1.0 / (21.0 * nf * nf));
        let funhist_term = 10 + (30.0 * nf / popsize as f64).ceil() as usize;
        Self {
            n,
            popsize,
            mu,
            weights,
            mu_eff,
            c_sigma,
            d_sigma,
            cc,
            c1,
            cmu,
            chi_n,
            mean,
            sigma,
            c: DMatrix::identity(n, n),
            p_sigma: DVector::zeros(n),
            pc: DVector::zeros(n),
            b: DMatrix::identity(n, n),
            d: DVector::from_element(n, 1.0),
            generation: 0,
            funhist_term,
            funhist: vec![0.0; 2 * funhist_term],
            tolx: 1e-12 * sigma,
        }
    }

    /// A draw from N(mean, σ²C), resampled (up to 100 times) until it lies
    /// in the unit cube, then clipped.
    fn ask(&self, rng: &mut Rng) -> DVector<f64> {
        let draw = |rng: &mut Rng| {
            let z = DVector::from_fn(self.n, |_, _| StandardNormal.sample(rng));
            let y = &self.b * self.d.component_mul(&z);
            &self.mean + y * self.sigma
        };
        for _ in 0..100 {
            let x = draw(rng);
            if x.iter().all(|v| (0.0..=1.0).contains(v)) {
                return x;
            }
        }
        draw(rng).map(|v| v.clamp(0.0, 1.0))
    }

    /// Updates the state with one generation (`popsize` points and losses).
    fn tell(&mut self, mut solutions: Vec<Solution>) {
        self.generation += 1;
        solutions.sort_by(|a, b| a.1.total_cmp(&b.1));
        let idx = 2 * (self.generation % self.funhist_term);
        self.funhist[idx] = solutions[0].1;
        self.funhist[idx + 1] = solutions[solutions.len() - 1].1;

        let (b, d) = (self.b.clone(), self.d.clone());
        let y: Vec<DVector<f64>> = solutions
            .iter()
            .map(|(x, _)| (x - &self.mean) / self.sigma)
            .collect();
        let mut y_w = DVector::zeros(self.n);
        for (w, yk) in self.weights.iter().zip(&y).take(self.mu) {
            y_w += yk * *w;
        }
        self.mean += &y_w * self.sigma;

        // C^(-1/2) = B D^(-1) Bᵀ.
        let c_inv_sqrt = &b * DMatrix::from_diagonal(&d.map(|v| 1.0 / v)) * b.transpose();
        self.p_sigma = &self.p_sigma * (1.0 - self.c_sigma)
            + (&c_inv_sqrt * &y_w) * (self.c_sigma * (2.0 - self.c_sigma) * self.mu_eff).sqrt();
        let norm_ps = self.p_sigma.norm();
        self.sigma *= ((self.c_sigma / self.d_sigma) * (norm_ps / self.chi_n - 1.0)).exp();
        self.sigma = self.sigma.min(1e32);

        let left =
            norm_ps / (1.0 - (1.0 - self.c_sigma).powi(2 * (self.generation as i32 + 1))).sqrt();
        let right = (1.4 + 2.0 / (self.n as f64 + 1.0)) * self.chi_n;
        let h_sigma = if left < right { 1.0 } else { 0.0 };
        self.pc = &self.pc * (1.0 - self.cc)
            + &y_w * (h_sigma * (self.cc * (2.0 - self.cc) * self.mu_eff).sqrt());

        let mut rank_mu = DMatrix::zeros(self.n, self.n);
        for (w, yk) in self.weights.iter().zip(&y) {
            let w_io = if *w >= 0.0 {
                *w
            } else {
                w * self.n as f64 / ((&c_inv_sqrt * yk).norm_squared() + EPS)
            };
            rank_mu += yk * yk.transpose() * w_io;
        }
        let delta_h = (1.0 - h_sigma) * self.cc * (2.0 - self.cc);
        let sum_w: f64 = self.weights.iter().sum();
        let rank_one = &self.pc * self.pc.transpose();
        self.c = &self.c * (1.0 + self.c1 * delta_h - self.c1 - self.cmu * sum_w)
            + rank_one * self.c1
            + rank_mu * self.cmu;
        self.eigen();
    }

    /// Refreshes B and D from C (symmetrised, eigenvalues floored at EPS).
    fn eigen(&mut self) {
        let sym = (&self.c + self.c.transpose()) / 2.0;
        let e = SymmetricEigen::new(sym);
        let d2 = e.eigenvalues.map(|v| if v < 0.0 { EPS } else { v });
        self.c = &e.eigenvectors * DMatrix::from_diagonal(&d2) * e.eigenvectors.transpose();
        self.b = e.eigenvectors;
        self.d = d2.map(f64::sqrt);
    }

    /// The `cmaes` library's termination tests.
    fn should_stop(&self) -> bool {
        let dc = self.c.diagonal();
        if self.generation > self.funhist_term {
            let max = self
                .funhist
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max);
            let min = self.funhist.iter().copied().fold(f64::INFINITY, f64::min);
            if max - min < 1e-12 {
                return true;
            }
        }
        if dc.iter().all(|c| self.sigma * c < self.tolx)
            && self.pc.iter().all(|p| self.sigma * p < self.tolx)
        {
            return true;
        }
        if self.sigma * self.d.max() > 1e4 {
            return true;
        }
        if (0..self.n).any(|i| self.mean[i] == self.mean[i] + 0.2 * self.sigma * dc[i].sqrt()) {
            return true;
        }
        let i = self.generation % self.n;
        if (0..self.n)
            .all(|k| self.mean[k] == self.mean[k] + 0.1 * self.sigma * self.d[i] * self.b[(k, i)])
        {
            return true;
        }
        self.d.max() / self.d.min() > 1e14
    }
}

/// A point of the unit cube and its loss.
type Solution = (DVector<f64>, f64);

/// Where the replay of the history ends: the run and generation to sample.
struct Current {
    restart: usize,
    cma: Cma,
}

fn tag_number(tags: &BTreeMap<String, String>, key: &str) -> Option<usize> {
    tags.get(key)?.parse().ok()
}

impl CmaEs {
    /// The loss a trial tells the strategy: completed, or early-stopped with
    /// a last value (a partial run, worse than its final value would be).
    fn loss(o: &Outcome) -> Option<f64> {
        match o {
            Outcome::Completed(y) | Outcome::EarlyStopped { last: Some(y) } if y.is_finite() => {
                Some(*y)
            }
            _ => None,
        }
    }

    fn unit(&self, a: &Assignment) -> DVector<f64> {
        DVector::from_iterator(
            self.numeric.len(),
            self.numeric
                .iter()
                .map(|&i| self.space.params[i].to_unit(&a[i]).unwrap_or(0.5)),
        )
    }

    /// Rebuilds the strategy's state from the history.
    fn replay(&self, history: &[TrialRecord]) -> Current {
        // Completed trials per (restart, generation), in history order.
        let mut told: BTreeMap<(usize, usize), Vec<Solution>> = BTreeMap::new();
        for t in history {
            if let (Some(r), Some(g), Some(y)) = (
                tag_number(&t.tags, RESTART_TAG),
                tag_number(&t.tags, GENERATION_TAG),
                Self::loss(&t.outcome),
            ) {
                told.entry((r, g))
                    .or_default()
                    .push((self.unit(&t.assignment), y));
            }
        }
        let n = self.numeric.len();
        let lambda0 = self.default_popsize();
        let (mut large_evals, mut small_evals, mut n_large) = (0usize, 0usize, 0u32);
        let mut restart = 0;
        let mut cma = Cma::new(DVector::from_element(n, 0.5), self.sigma0, lambda0);
        let mut small_run = false;
        loop {
            let key = (restart, cma.generation);
            let Some(sols) = told.get(&key).filter(|s| s.len() >= cma.popsize) else {
                return Current { restart, cma };
            };
            cma.tell(sols[..cma.popsize].to_vec());
            if self.restart == Restart::None || !cma.should_stop() {
                continue;
            }
            // Restart: a new run from a random mean.
            let used = cma.generation * cma.popsize;
            if small_run {
                small_evals += used;
            } else {
                large_evals += used;
            }
            restart += 1;
            let mut rng = rng_for(self.seed, restart, STREAM_RESTART);
            let mean = DVector::from_fn(n, |_, _| rng.random::<f64>());
            let (popsize, sigma) = match self.restart {
                Restart::Bipop if restart > 1 && small_evals < large_evals => {
                    small_run = true;
                    let u: f64 = rng.random();
                    let large = lambda0 as f64 * 2f64.powi(n_large as i32);
                    let p = (lambda0 as f64 * (0.5 * large / lambda0 as f64).powf(u * u)).floor()
                        as usize;
                    (p.max(lambda0), self.sigma0 * 10f64.powf(-2.0 * u))
                }
                _ => {
                    small_run = false;
                    n_large += 1;
                    (lambda0 * 2usize.pow(n_large), self.sigma0)
                }
            };
            cma = Cma::new(mean, sigma, popsize);
        }
    }
}

impl Algorithm for CmaEs {
    fn suggest(&self, history: &[TrialRecord], n: usize) -> Result<Vec<Suggestion>, SuggestError> {
        check_history(&self.space, history)?;
        let current = self.replay(history);
        let mut rng = rng_for(self.seed, history.len(), STREAM);
        let mut taken = Taken::new(history);
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let picked = pick_unique(&self.space, &mut taken, &mut rng, |rng, _| {
                let x = current.cma.ask(rng);
                // Lists (and anything CMA does not model) come from the prior.
                let mut a = self.space.sample(rng);
                for (k, &i) in self.numeric.iter().enumerate() {
                    a[i] = self.space.params[i]
                        .from_unit(x[k])
                        .unwrap_or(Value::Double(x[k]));
                }
                vec![a]
            });
            let Some(a) = picked else { break };
            let mut s = Suggestion::new(a);
            s.tags
                .insert(RESTART_TAG.to_string(), current.restart.to_string());
            s.tags.insert(
                GENERATION_TAG.to_string(),
                current.cma.generation.to_string(),
            );
            out.push(s);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;
    use crate::{Distribution, Domain, Param};

    fn box_space(d: usize, lo: f64, hi: f64) -> SearchSpace {
        SearchSpace::new(
            (0..d)
                .map(|i| Param {
                    name: format!("x{i}"),
                    domain: Domain::Double {
                        min: lo,
                        max: hi,
                        step: None,
                        distribution: Distribution::Uniform,
                    },
                })
                .collect(),
        )
        .unwrap()
    }

    fn xs(a: &Assignment) -> Vec<f64> {
        a.iter()
            .map(|v| match v {
                Value::Double(x) => *x,
                Value::Int(i) => *i as f64,
                Value::Choice(c) => *c as f64,
            })
            .collect()
    }

    fn sphere(a: &Assignment) -> f64 {
        xs(a).iter().map(|x| (x - 1.0).powi(2)).sum()
    }

    /// Runs `alg` sequentially (batches of `batch`) for `budget` trials.
    fn run(
        alg: &CmaEs,
        f: impl Fn(&Assignment) -> f64,
        budget: usize,
        batch: usize,
    ) -> Vec<TrialRecord> {
        let mut history = Vec::new();
        while history.len() < budget {
            let s = alg.suggest(&history, batch).unwrap();
            assert!(!s.is_empty());
            for s in s {
                let y = f(&s.assignment);
                history.push(record(&s, Outcome::Completed(y)));
            }
        }
        history
    }

    fn best(h: &[TrialRecord]) -> f64 {
        h.iter()
            .filter_map(|t| CmaEs::loss(&t.outcome))
            .fold(f64::INFINITY, f64::min)
    }

    #[test]
    fn converges_on_a_sphere() {
        let space = box_space(4, -5.0, 5.0);
        let alg = CmaEs::new(&[], &space, 0).unwrap();
        let h = run(&alg, sphere, 400, 1);
        assert!(best(&h) < 1e-4, "best {}", best(&h));
        // The step size shrank: the last generation is tightly packed.
        let last = &h[h.len() - 8..];
        let spread = xs(&last[0].assignment)
            .iter()
            .zip(xs(&last[7].assignment))
            .map(|(a, b)| (a - b).abs())
            .sum::<f64>();
        assert!(spread < 0.1, "spread {spread}");
    }

    #[test]
    fn parallel_batches_replay_the_same_state() {
        // Batches of 3 (popsize 8) tell the same generations as sequential
        // asks would, and every suggestion is tagged with its generation.
        let space = box_space(4, -5.0, 5.0);
        let alg = CmaEs::new(&[("random_state".into(), "3".into())], &space, 0).unwrap();
        let h = run(&alg, sphere, 240, 3);
        assert!(best(&h) < 1e-2, "best {}", best(&h));
        let gens: Vec<usize> = h
            .iter()
            .map(|t| tag_number(&t.tags, GENERATION_TAG).unwrap())
            .collect();
        assert!(gens.windows(2).all(|w| w[1] >= w[0]));
        // At most one point per generation is wasted by batching: 240 / 9.
        assert!(
            alg.replay(&h).cma.generation >= 26,
            "{}",
            alg.replay(&h).cma.generation
        );
        // Replaying is deterministic.
        assert_eq!(alg.suggest(&h, 4).unwrap(), alg.suggest(&h, 4).unwrap());
    }

    #[test]
    fn failed_trials_do_not_count_towards_a_generation() {
        let space = box_space(2, 0.0, 1.0);
        let alg = CmaEs::new(&[], &space, 0).unwrap(); // popsize 6
        let first = alg.suggest(&[], 6).unwrap();
        let mut h: Vec<TrialRecord> = first
            .iter()
            .map(|s| record(s, Outcome::Completed(sphere(&s.assignment))))
            .collect();
        h[2].outcome = Outcome::Failed;
        let next = alg.suggest(&h, 1).unwrap();
        assert_eq!(
            next[0].tags[GENERATION_TAG], "0",
            "generation 0 still needs a point"
        );
        h.push(record(&next[0], Outcome::Completed(1.0)));
        assert_eq!(alg.suggest(&h, 1).unwrap()[0].tags[GENERATION_TAG], "1");
    }

    #[test]
    fn ipop_restarts_with_a_larger_population() {
        // A flat function stops the run (flat fitness history) and restarts it.
        let space = box_space(2, 0.0, 1.0);
        let alg = CmaEs::new(&[("restart_strategy".into(), "ipop".into())], &space, 0).unwrap();
        let h = run(&alg, |_| 1.0, 400, 1);
        let restarts: Vec<usize> = h
            .iter()
            .map(|t| tag_number(&t.tags, RESTART_TAG).unwrap())
            .collect();
        assert!(restarts[399] >= 1, "no restart");
        let first_restart = restarts.iter().position(|&r| r == 1).unwrap();
        let current = alg.replay(&h[..first_restart]);
        assert_eq!(current.restart, 1);
        assert_eq!(current.cma.popsize, 12, "twice the default 6");
        // Without a restart strategy the run never restarts.
        let none = CmaEs::new(&[("restart_strategy".into(), "None".into())], &space, 0).unwrap();
        let h = run(&none, |_| 1.0, 200, 1);
        assert!(h.iter().all(|t| t.tags[RESTART_TAG] == "0"));
        // bipop restarts too.
        let bipop = CmaEs::new(&[("restart_strategy".into(), "bipop".into())], &space, 0).unwrap();
        let h = run(&bipop, |_| 1.0, 400, 1);
        assert!(h.iter().any(|t| t.tags[RESTART_TAG] != "0"));
    }

    #[test]
    fn settings_and_space_are_validated() {
        let space = mixed_space();
        let err = |v: &[(&str, &str)]| match CmaEs::new(
            &v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>(),
            &space,
            0,
        ) {
            Err(SettingsError::Setting { name, .. }) => name,
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("accepted"),
        };
        assert_eq!(err(&[("sigma", "0")]), "sigma");
        assert_eq!(err(&[("restart_strategy", "lipop")]), "restart_strategy");
        assert_eq!(err(&[("popsize", "4")]), "popsize");
        let one = SearchSpace::new(vec![space.params[0].clone(), space.params[3].clone()]).unwrap();
        assert!(
            matches!(CmaEs::new(&[], &one, 0), Err(SettingsError::Space(m)) if m.contains("two"))
        );
        // Mixed space: categoricals from the prior, numbers from CMA, all inside.
        let alg = CmaEs::new(&[], &space, 0).unwrap();
        let h = run(&alg, |a| xs(a).iter().sum(), 30, 4);
        assert!(h.iter().all(|t| space.contains(&t.assignment)));
        assert!(all_distinct(
            &h.iter().map(|t| &t.assignment).collect::<Vec<_>>()
        ));
    }
}
