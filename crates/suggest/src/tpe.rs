//! `tpe` and `multivariate-tpe`: the tree-structured Parzen estimator as
//! Optuna implements it (`TPESampler`), as a pure function of the history.
//!
//! The completed trials are split into the best `γ(n)` ("below") and the
//! rest ("above"); each group becomes a mixture of truncated-normal kernels
//! (one per trial, plus a wide prior kernel) in the unit cube of
//! [`crate::Param::to_unit`], with categorical kernels for lists. Candidates
//! are drawn from the "below" mixture `l(x)` and the one maximising
//! `l(x)/g(x)` is suggested.
//!
//! * Bandwidth: each kernel's sigma is the larger distance to its neighbours
//!   in that dimension (Optuna's rule, endpoints not considered), clipped to
//!   `[1/min(100, m+2), 1]` ("magic clip"); the prior kernel has sigma 1 (1/6
//!   for `normal`/`logNormal` parameters, hyperopt's prior).
//! * Weights: ones, ramped down for the oldest trials of a group beyond 25;
//!   the prior kernel has weight `prior_weight`.
//! * Stepped parameters (ints, doubles with a step) use the kernels'
//!   probability mass over the values' bins, not densities.
//! * Running, failed and early-stopped trials go to the "above" group
//!   (Optuna's constant liar, extended to failures so that a region that
//!   keeps failing is avoided). Within one batch every suggestion is added as
//!   running before the next is chosen.
//! * Before `n_startup_trials` (default 10) trials have finished, points come
//!   from the prior. `n_ei_candidates` defaults to 24.
//!
//! `tpe` is Optuna's independent TPE (`multivariate=False`), hyperopt's
//! algorithm: every parameter has its own mixture and its own best of
//! `n_ei_candidates` candidates; `γ(n) = min(ceil(0.1·n), 25)`, or hyperopt's
//! `min(ceil(gamma·sqrt(n)), 25)` when `gamma` is set; `m` in the clip is the
//! size of the kernel's group.
//!
//! `multivariate-tpe` uses joint kernels (a candidate is drawn from one
//! trial's kernel in every dimension, `l` and `g` are mixtures of product
//! kernels, Optuna's `multivariate=True`) with three rules tuned on the
//! benchmark problems (`benches/hpo.rs`), which make it markedly more sample
//! efficient than Optuna's default sampler at 100 trials: `γ(n) =
//! min(ceil(0.05·n), 25)`, bandwidths scaled by 0.6, and `m` counting every
//! trial of the history, so kernels can narrow as the experiment grows
//! instead of staying at a twelfth of the range.

use crate::common::{Rng, Taken, check_history, completed_loss, pick_unique, rng_for};
use crate::settings::{Settings, bad};
use crate::stats::{LN_INV_SQRT_2PI, log_gauss_mass, log_sum_exp};
use crate::{
    Algorithm, Assignment, Distribution, Domain, Outcome, Param, SearchSpace, SettingsError,
    SuggestError, Suggestion, TrialRecord, Value,
};
use rand::RngExt;
use rand_distr::{Distribution as _, StandardNormal};

/// RNG streams (see [`rng_for`]).
const STREAM_TPE: u64 = 2;
const STREAM_MTPE: u64 = 3;

/// How many of `n` completed trials form the "below" group.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Gamma {
    /// Optuna's rule: `min(ceil(f·n), 25)`; Optuna's default is `f = 0.1`.
    Linear(f64),
    /// hyperopt's rule with its `gamma` setting: `min(ceil(gamma·sqrt(n)), 25)`.
    Hyperopt(f64),
}

impl Gamma {
    fn n_below(self, n: usize) -> usize {
        let k = match self {
            Gamma::Linear(f) => (f * n as f64).ceil(),
            Gamma::Hyperopt(g) => (g * (n as f64).sqrt()).ceil(),
        };
        (k as usize).min(25)
    }
}

/// How wide the kernels are.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bandwidth {
    /// Multiplies the neighbour distance.
    scale: f64,
    /// Whether the floor `1/min(100, n + 2)` counts every trial of the
    /// history (`true`) or only the trials of the kernel's own group
    /// (`false`, Optuna's rule).
    floor_from_all_trials: bool,
}

/// Optuna's rules, used by `tpe`.
const OPTUNA_BANDWIDTH: Bandwidth = Bandwidth {
    scale: 1.0,
    floor_from_all_trials: false,
};
/// `multivariate-tpe`'s tuned rules (see the module documentation).
const MULTIVARIATE_BANDWIDTH: Bandwidth = Bandwidth {
    scale: 0.6,
    floor_from_all_trials: true,
};
const MULTIVARIATE_GAMMA: Gamma = Gamma::Linear(0.05);

#[derive(Debug)]
pub(crate) struct Tpe {
    space: SearchSpace,
    seed: u64,
    multivariate: bool,
    n_startup: usize,
    n_ei: usize,
    gamma: Gamma,
    prior_weight: f64,
    bandwidth: Bandwidth,
}

const DEFAULT_STARTUP: usize = 10;
const DEFAULT_EI_CANDIDATES: usize = 24;

impl Tpe {
    /// `tpe`: `gamma` (float in (0, 1)), `prior_weight` (float > 0),
    /// `n_EI_candidates` (int > 0) as hyperopt names them; `n_startup_trials`
    /// (int >= 0) and `n_ei_candidates` (int > 0) as Optuna names them;
    /// `random_state` / `seed`.
    pub(crate) fn independent(
        settings: &[(String, String)],
        space: &SearchSpace,
        seed: u64,
    ) -> Result<Self, SettingsError> {
        let s = Settings::new(
            "tpe",
            settings,
            &[
                "gamma",
                "prior_weight",
                "n_EI_candidates",
                "n_startup_trials",
                "n_ei_candidates",
                "random_state",
                "seed",
            ],
        )?;
        let gamma = s.float("gamma", |g| {
            (g <= 0.0 || g >= 1.0).then_some("must be between 0 and 1 (exclusive)")
        })?;
        let prior_weight = s.float("prior_weight", |w| {
            (w <= 0.0).then_some("must be greater than 0")
        })?;
        let hyperopt_ei = s.int("n_EI_candidates", 1)?;
        let optuna_ei = s.int("n_ei_candidates", 1)?;
        if hyperopt_ei.is_some() && optuna_ei.is_some() {
            return Err(bad(
                "n_EI_candidates",
                "give either n_EI_candidates or n_ei_candidates, not both",
            ));
        }
        Ok(Self {
            space: space.clone(),
            seed: s.seed(seed)?,
            multivariate: false,
            n_startup: s
                .int("n_startup_trials", 0)?
                .map_or(DEFAULT_STARTUP, |v| v as usize),
            n_ei: hyperopt_ei
                .or(optuna_ei)
                .map_or(DEFAULT_EI_CANDIDATES, |v| v as usize),
            gamma: gamma.map_or(Gamma::Linear(0.1), Gamma::Hyperopt),
            prior_weight: prior_weight.unwrap_or(1.0),
            bandwidth: OPTUNA_BANDWIDTH,
        })
    }

    /// `multivariate-tpe`: `n_startup_trials` (int >= 0), `n_ei_candidates`
    /// (int > 0), `random_state` / `seed`.
    pub(crate) fn multivariate(
        settings: &[(String, String)],
        space: &SearchSpace,
        seed: u64,
    ) -> Result<Self, SettingsError> {
        let s = Settings::new(
            "multivariate-tpe",
            settings,
            &[
                "n_startup_trials",
                "n_ei_candidates",
                "random_state",
                "seed",
            ],
        )?;
        Ok(Self {
            space: space.clone(),
            seed: s.seed(seed)?,
            multivariate: true,
            n_startup: s
                .int("n_startup_trials", 0)?
                .map_or(DEFAULT_STARTUP, |v| v as usize),
            n_ei: s
                .int("n_ei_candidates", 1)?
                .map_or(DEFAULT_EI_CANDIDATES, |v| v as usize),
            gamma: MULTIVARIATE_GAMMA,
            prior_weight: 1.0,
            bandwidth: MULTIVARIATE_BANDWIDTH,
        })
    }
}

/// A trial's value in one dimension, as the kernels see it.
#[derive(Debug, Clone, Copy)]
enum Coord {
    /// Unit position, and for stepped parameters the bin that snaps onto it.
    Num {
        u: f64,
        bin: Option<(f64, f64)>,
    },
    Cat(usize),
}

fn coord(p: &Param, v: &Value) -> Coord {
    match v {
        Value::Choice(c) => Coord::Cat(*c),
        _ => Coord::Num {
            u: p.to_unit(v).unwrap_or(0.5),
            bin: p.unit_bin(v),
        },
    }
}

/// A trial as TPE sees it.
struct Obs {
    coords: Vec<Coord>,
    /// `Some(loss)` for completed trials; `None` for the others (running,
    /// failed, stopped), which always count as "above".
    loss: Option<f64>,
}

impl Algorithm for Tpe {
    fn suggest(&self, history: &[TrialRecord], n: usize) -> Result<Vec<Suggestion>, SuggestError> {
        check_history(&self.space, history)?;
        let stream = if self.multivariate {
            STREAM_MTPE
        } else {
            STREAM_TPE
        };
        let mut rng = rng_for(self.seed, history.len(), stream);
        let mut taken = Taken::new(history);
        let mut obs: Vec<Obs> = history
            .iter()
            .map(|t| Obs {
                coords: self
                    .space
                    .params
                    .iter()
                    .zip(&t.assignment)
                    .map(|(p, v)| coord(p, v))
                    .collect(),
                loss: completed_loss(&t.outcome),
            })
            .collect();
        // Early-stopped trials count as finished for the start-up phase, as
        // Optuna counts pruned ones.
        let finished = history
            .iter()
            .filter(|t| {
                completed_loss(&t.outcome).is_some()
                    || matches!(t.outcome, Outcome::EarlyStopped { .. })
            })
            .count();
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let model = (finished >= self.n_startup.max(1)).then(|| self.model(&obs));
            let picked = pick_unique(&self.space, &mut taken, &mut rng, |rng, _| match &model {
                Some((below, above)) => self.candidates(below, above, rng),
                None => vec![self.space.sample(rng)],
            });
            let Some(a) = picked else { break };
            obs.push(Obs {
                coords: self
                    .space
                    .params
                    .iter()
                    .zip(&a)
                    .map(|(p, v)| coord(p, v))
                    .collect(),
                loss: None,
            });
            out.push(Suggestion::new(a));
        }
        Ok(out)
    }
}

impl Tpe {
    /// The "below" and "above" mixtures of the current observations.
    fn model(&self, obs: &[Obs]) -> (Mixture, Mixture) {
        let mut done: Vec<usize> = (0..obs.len()).filter(|&i| obs[i].loss.is_some()).collect();
        done.sort_by(|&a, &b| {
            obs[a]
                .loss
                .unwrap_or(f64::INFINITY)
                .total_cmp(&obs[b].loss.unwrap_or(f64::INFINITY))
        });
        let n_below = self.gamma.n_below(done.len()).min(done.len());
        let mut below: Vec<usize> = done[..n_below].to_vec();
        below.sort_unstable();
        let is_below = |i: usize| below.binary_search(&i).is_ok();
        let above: Vec<usize> = (0..obs.len()).filter(|&i| !is_below(i)).collect();
        let pick = |idx: &[usize]| idx.iter().map(|&i| &obs[i]).collect::<Vec<_>>();
        (
            Mixture::new(
                &self.space,
                &pick(&below),
                self.prior_weight,
                self.bandwidth,
                obs.len(),
            ),
            Mixture::new(
                &self.space,
                &pick(&above),
                self.prior_weight,
                self.bandwidth,
                obs.len(),
            ),
        )
    }

    /// `n_ei` candidates drawn from `below`, best `l/g` first.
    fn candidates(&self, below: &Mixture, above: &Mixture, rng: &mut Rng) -> Vec<Assignment> {
        if self.multivariate {
            let mut scored: Vec<(f64, Assignment)> = (0..self.n_ei)
                .map(|_| {
                    let k = below.pick_kernel(rng);
                    let coords: Vec<Coord> = (0..self.space.params.len())
                        .map(|j| below.sample_dim(&self.space, j, k, rng))
                        .collect();
                    let score = below.log_pdf_joint(&coords) - above.log_pdf_joint(&coords);
                    (score, self.assignment(&coords))
                })
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            scored.into_iter().map(|(_, a)| a).collect()
        } else {
            // Independent: the best of n_ei candidates in every dimension.
            let coords: Vec<Coord> = (0..self.space.params.len())
                .map(|j| {
                    let mut best = (f64::NEG_INFINITY, None);
                    for _ in 0..self.n_ei {
                        let k = below.pick_kernel(rng);
                        let c = below.sample_dim(&self.space, j, k, rng);
                        let score = below.log_pdf_dim(j, &c) - above.log_pdf_dim(j, &c);
                        if best.1.is_none() || score > best.0 {
                            best = (score, Some(c));
                        }
                    }
                    best.1.unwrap_or(Coord::Num { u: 0.5, bin: None })
                })
                .collect();
            vec![self.assignment(&coords)]
        }
    }

    fn assignment(&self, coords: &[Coord]) -> Assignment {
        self.space
            .params
            .iter()
            .zip(coords)
            .map(|(p, c)| match c {
                Coord::Cat(i) => Value::Choice(*i),
                Coord::Num { u, .. } => p.from_unit(*u).unwrap_or(Value::Choice(0)),
            })
            .collect()
    }
}

/// The kernels of one group in one dimension.
enum DimKernels {
    Num {
        mu: Vec<f64>,
        sigma: Vec<f64>,
        /// `ln σ + ln(mass of the kernel inside [0, 1])`, the density's
        /// normaliser.
        log_norm: Vec<f64>,
        /// `ln(mass inside [0, 1])` alone, for bin masses.
        log_mass: Vec<f64>,
    },
    Cat {
        /// Per kernel, the log-probability of every choice.
        log_p: Vec<Vec<f64>>,
    },
}

/// A mixture of product kernels: one per observation plus the prior.
struct Mixture {
    log_w: Vec<f64>,
    cum_w: Vec<f64>,
    dims: Vec<DimKernels>,
}

/// Optuna's `default_weights`: ones, with a linear ramp from `1/n` for the
/// oldest `n - 25` observations.
fn default_weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let ramp = n - 25;
    let mut w: Vec<f64> = (0..ramp)
        .map(|i| {
            if ramp == 1 {
                1.0 / n as f64
            } else {
                1.0 / n as f64 + (1.0 - 1.0 / n as f64) * i as f64 / (ramp - 1) as f64
            }
        })
        .collect();
    w.extend(std::iter::repeat_n(1.0, 25));
    w
}

fn prior_sigma(p: &Param) -> f64 {
    match p.domain {
        Domain::Double { distribution, .. } | Domain::Int { distribution, .. }
            if matches!(distribution, Distribution::Normal | Distribution::LogNormal) =>
        {
            1.0 / 6.0
        }
        _ => 1.0,
    }
}

impl Mixture {
    fn new(
        space: &SearchSpace,
        obs: &[&Obs],
        prior_weight: f64,
        bandwidth: Bandwidth,
        n_total: usize,
    ) -> Self {
        let n = obs.len();
        let mut w = default_weights(n);
        w.push(if n == 0 { 1.0 } else { prior_weight });
        let total: f64 = w.iter().sum();
        let log_w: Vec<f64> = w.iter().map(|x| (x / total).ln()).collect();
        let mut acc = 0.0;
        let cum_w = w
            .iter()
            .map(|x| {
                acc += x / total;
                acc
            })
            .collect();
        let dims = space
            .params
            .iter()
            .enumerate()
            .map(|(j, p)| match p.choices() {
                Some(k) => {
                    let n_kernels = (n + 1) as f64;
                    let mut log_p: Vec<Vec<f64>> = obs
                        .iter()
                        .map(|o| {
                            let mut row = vec![prior_weight / n_kernels; k];
                            if let Coord::Cat(c) = o.coords[j] {
                                row[c.min(k - 1)] += 1.0;
                            }
                            let s: f64 = row.iter().sum();
                            row.iter().map(|x| (x / s).ln()).collect()
                        })
                        .collect();
                    log_p.push(vec![-(k as f64).ln(); k]);
                    DimKernels::Cat { log_p }
                }
                None => {
                    let mut mu: Vec<f64> = obs
                        .iter()
                        .map(|o| match o.coords[j] {
                            Coord::Num { u, .. } => u,
                            Coord::Cat(_) => 0.5,
                        })
                        .collect();
                    let floor_n = if bandwidth.floor_from_all_trials {
                        n_total
                    } else {
                        n
                    };
                    let mut sigma = neighbour_sigmas(&mu, floor_n, bandwidth.scale);
                    mu.push(0.5);
                    sigma.push(prior_sigma(p));
                    let log_mass: Vec<f64> = mu
                        .iter()
                        .zip(&sigma)
                        .map(|(m, s)| log_gauss_mass(-m / s, (1.0 - m) / s))
                        .collect();
                    let log_norm = sigma
                        .iter()
                        .zip(&log_mass)
                        .map(|(s, lm)| s.ln() + lm)
                        .collect();
                    DimKernels::Num {
                        mu,
                        sigma,
                        log_norm,
                        log_mass,
                    }
                }
            })
            .collect();
        Self { log_w, cum_w, dims }
    }

    fn pick_kernel(&self, rng: &mut Rng) -> usize {
        let r: f64 = rng.random();
        self.cum_w
            .iter()
            .position(|&c| r < c)
            .unwrap_or(self.cum_w.len() - 1)
    }

    /// A draw from kernel `k` in dimension `j`, snapped onto the parameter.
    fn sample_dim(&self, space: &SearchSpace, j: usize, k: usize, rng: &mut Rng) -> Coord {
        let p = &space.params[j];
        match &self.dims[j] {
            DimKernels::Cat { log_p } => {
                let r: f64 = rng.random();
                let mut acc = 0.0;
                let row = &log_p[k];
                let c = row
                    .iter()
                    .position(|lp| {
                        acc += lp.exp();
                        r < acc
                    })
                    .unwrap_or(row.len() - 1);
                Coord::Cat(c)
            }
            DimKernels::Num { mu, sigma, .. } => {
                // Rejection from the untruncated normal: the centre lies in
                // [0, 1] and sigma <= 1, so at least a third is accepted.
                let mut x = mu[k];
                for _ in 0..100 {
                    let z: f64 = StandardNormal.sample(rng);
                    let y = mu[k] + sigma[k] * z;
                    if (0.0..=1.0).contains(&y) {
                        x = y;
                        break;
                    }
                }
                let v = p.from_unit(x).unwrap_or(Value::Double(x));
                coord(p, &v)
            }
        }
    }

    /// `ln p_k(c)` of kernel `k` in dimension `j`.
    fn log_kernel(&self, j: usize, k: usize, c: &Coord) -> f64 {
        match (&self.dims[j], c) {
            (DimKernels::Cat { log_p }, Coord::Cat(i)) => log_p[k][*i],
            (
                DimKernels::Num {
                    mu,
                    sigma,
                    log_norm,
                    log_mass,
                },
                Coord::Num { u, bin },
            ) => match bin {
                Some((l, r)) => {
                    log_gauss_mass((l - mu[k]) / sigma[k], (r - mu[k]) / sigma[k]) - log_mass[k]
                }
                None => {
                    let z = (u - mu[k]) / sigma[k];
                    LN_INV_SQRT_2PI - 0.5 * z * z - log_norm[k]
                }
            },
            _ => f64::NEG_INFINITY,
        }
    }

    fn log_pdf_joint(&self, coords: &[Coord]) -> f64 {
        let terms: Vec<f64> = (0..self.log_w.len())
            .map(|k| {
                self.log_w[k]
                    + coords
                        .iter()
                        .enumerate()
                        .map(|(j, c)| self.log_kernel(j, k, c))
                        .sum::<f64>()
            })
            .collect();
        log_sum_exp(&terms)
    }

    fn log_pdf_dim(&self, j: usize, c: &Coord) -> f64 {
        let terms: Vec<f64> = (0..self.log_w.len())
            .map(|k| self.log_w[k] + self.log_kernel(j, k, c))
            .collect();
        log_sum_exp(&terms)
    }
}

/// Optuna's bandwidths in one dimension of the unit cube: the larger gap to
/// the neighbours (with 0 and 1 as outer neighbours, except that the
/// extreme points look inwards only), times `scale`, clipped to
/// `[1/min(100, floor_n + 2), 1]`.
fn neighbour_sigmas(mus: &[f64], floor_n: usize, scale: f64) -> Vec<f64> {
    let n = mus.len();
    if n == 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| mus[a].total_cmp(&mus[b]));
    let mut with_ends = Vec::with_capacity(n + 2);
    with_ends.push(0.0);
    with_ends.extend(order.iter().map(|&i| mus[i]));
    with_ends.push(1.0);
    let mut sorted: Vec<f64> = (1..=n)
        .map(|i| (with_ends[i] - with_ends[i - 1]).max(with_ends[i + 1] - with_ends[i]))
        .collect();
    if n >= 2 {
        sorted[0] = with_ends[2] - with_ends[1];
        sorted[n - 1] = with_ends[n] - with_ends[n - 1];
    }
    let min_sigma = 1.0 / (100f64).min(floor_n as f64 + 2.0);
    let mut sigmas = vec![0.0; n];
    for (rank, &i) in order.iter().enumerate() {
        sigmas[i] = (scale * sorted[rank]).clamp(min_sigma, 1.0);
    }
    sigmas
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;
    use crate::testfns::BRANIN;

    fn settings(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn setting_error(r: Result<Tpe, SettingsError>) -> String {
        match r {
            Err(SettingsError::Setting { name, .. }) => name,
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn settings_are_validated_by_name() {
        let space = mixed_space();
        let tpe = |v: &[(&str, &str)]| Tpe::independent(&settings(v), &space, 0);
        assert_eq!(setting_error(tpe(&[("gamma", "1.5")])), "gamma");
        assert_eq!(setting_error(tpe(&[("prior_weight", "0")])), "prior_weight");
        assert_eq!(
            setting_error(tpe(&[("n_EI_candidates", "0")])),
            "n_EI_candidates"
        );
        assert_eq!(
            setting_error(tpe(&[("n_startup_trials", "-1")])),
            "n_startup_trials"
        );
        assert_eq!(
            setting_error(tpe(&[("n_EI_candidates", "5"), ("n_ei_candidates", "5")])),
            "n_EI_candidates"
        );
        let t = tpe(&[
            ("gamma", "0.25"),
            ("n_EI_candidates", "10"),
            ("random_state", "4"),
        ])
        .unwrap();
        assert_eq!((t.gamma, t.n_ei, t.seed), (Gamma::Hyperopt(0.25), 10, 4));
        let m = |v: &[(&str, &str)]| Tpe::multivariate(&settings(v), &space, 0);
        assert_eq!(setting_error(m(&[("gamma", "0.25")])), "gamma");
        assert_eq!(
            setting_error(m(&[("n_ei_candidates", "x")])),
            "n_ei_candidates"
        );
        assert_eq!(m(&[("n_startup_trials", "0")]).unwrap().n_startup, 0);
    }

    #[test]
    fn gamma_rules() {
        assert_eq!(Gamma::Linear(0.1).n_below(100), 10);
        assert_eq!(Gamma::Linear(0.1).n_below(1000), 25);
        assert_eq!(Gamma::Linear(0.1).n_below(1), 1);
        assert_eq!(MULTIVARIATE_GAMMA.n_below(100), 5);
        assert_eq!(Gamma::Hyperopt(0.25).n_below(100), 3);
    }

    #[test]
    fn bandwidths_follow_the_neighbour_rule() {
        // Sorted 0.1, 0.2, 0.6: the ends look inwards (0.1, 0.4), the middle
        // takes its larger gap (0.4); the floor is 1/5.
        let s = neighbour_sigmas(&[0.6, 0.1, 0.2], 3, 1.0);
        let want = [0.4, 0.2, 0.4];
        assert!(
            s.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12),
            "{s:?}"
        );
        assert_eq!(neighbour_sigmas(&[0.3], 1, 1.0), vec![0.7]);
        // Scaled, and with a floor from a larger history: 0.7·0.5, then 1/12.
        assert_eq!(neighbour_sigmas(&[0.3], 1, 0.5), vec![0.35]);
        assert_eq!(neighbour_sigmas(&[0.3], 10, 0.01), vec![1.0 / 12.0]);
        let w = default_weights(27);
        assert_eq!(w.len(), 27);
        assert!((w[0] - 1.0 / 27.0).abs() < 1e-12 && w[1] == 1.0 && w[26] == 1.0);
    }

    fn run(alg: &dyn Algorithm, budget: usize, batch: usize) -> f64 {
        let mut history: Vec<TrialRecord> = Vec::new();
        let mut best = f64::INFINITY;
        while history.len() < budget {
            let s = alg
                .suggest(&history, batch.min(budget - history.len()))
                .unwrap();
            assert!(!s.is_empty());
            for s in s {
                let y = BRANIN.eval(&s.assignment);
                best = best.min(y);
                history.push(record(&s, Outcome::Completed(y)));
            }
        }
        best - BRANIN.f_opt
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    }

    #[test]
    fn tpe_beats_random_on_branin_at_50_trials() {
        let space = BRANIN.space();
        let seeds = 0..10u64;
        let random: Vec<f64> = seeds
            .clone()
            .map(|s| {
                run(
                    &crate::random::RandomSearch::new(&[], &space, s).unwrap(),
                    50,
                    1,
                )
            })
            .collect();
        let tpe: Vec<f64> = seeds
            .clone()
            .map(|s| run(&Tpe::independent(&[], &space, s).unwrap(), 50, 1))
            .collect();
        let mtpe: Vec<f64> = seeds
            .map(|s| run(&Tpe::multivariate(&[], &space, s).unwrap(), 50, 1))
            .collect();
        let (r, t, m) = (median(random), median(tpe), median(mtpe));
        assert!(t < r / 2.0, "tpe {t} vs random {r}");
        assert!(m < r / 2.0, "multivariate-tpe {m} vs random {r}");
    }

    #[test]
    fn batches_are_deterministic_distinct_and_avoid_running_trials() {
        let space = mixed_space();
        for multivariate in [false, true] {
            let alg = if multivariate {
                Tpe::multivariate(&[], &space, 9).unwrap()
            } else {
                Tpe::independent(&[], &space, 9).unwrap()
            };
            let mut history = Vec::new();
            let mut rng = rng_for(1, 0, 99);
            for _ in 0..12 {
                let a = space.sample(&mut rng);
                let y = a.len() as f64 * rng.random::<f64>();
                history.push(TrialRecord {
                    assignment: a,
                    outcome: Outcome::Completed(y),
                    tags: Default::default(),
                });
            }
            history.push(pending(space.sample(&mut rng)));
            let batch = alg.suggest(&history, 6).unwrap();
            assert_eq!(
                batch,
                alg.suggest(&history, 6).unwrap(),
                "same history, same batch"
            );
            let mut all: Vec<&Assignment> = history.iter().map(|t| &t.assignment).collect();
            all.extend(batch.iter().map(|s| &s.assignment));
            assert!(all_distinct(&all), "multivariate={multivariate}");
            assert!(batch.iter().all(|s| space.contains(&s.assignment)));
        }
    }

    #[test]
    fn a_discrete_space_is_exhausted_without_repeats() {
        let space = tiny_space();
        let alg = Tpe::multivariate(&settings(&[("n_startup_trials", "2")]), &space, 1).unwrap();
        let mut history: Vec<TrialRecord> = Vec::new();
        loop {
            let s = alg.suggest(&history, 1).unwrap();
            let Some(s) = s.into_iter().next() else { break };
            history.push(record(&s, Outcome::Completed(history.len() as f64)));
            assert!(history.len() <= 6);
        }
        assert_eq!(history.len(), 6);
    }
}
