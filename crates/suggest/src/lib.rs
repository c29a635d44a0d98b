//! Hyperparameter suggestion algorithms with Katib's names and settings.
//!
//! Every algorithm is a *pure function of the trial history*: given the search
//! space, the seed, every trial created so far (finished, failed or still
//! running) and how many new trials are wanted, it returns the assignments for
//! them. Nothing else is kept between calls. That is what makes experiments
//! resumable after a crash or with a larger `maxTrialCount` (the state *is* the
//! history, which the store already persists), reproducible (same seed + same
//! history = same suggestions) and free of Katib's duplicate-suggestion bugs
//! (running trials are part of the history, so a batch can avoid them).
//!
//! Objective values are always *losses*: lower is better. The caller negates
//! maximised objectives before handing them in.

use std::collections::BTreeMap;

mod cmaes;
mod common;
#[cfg(test)]
mod conformance;
mod gp;
mod grid;
mod hyperband;
mod random;
mod settings;
mod sobol;
mod space;
mod stats;
mod tpe;

pub mod earlystop;
pub mod testfns;

pub use earlystop::{Comparison, Direction, MedianStop, StopRule};
pub use space::{Distribution, Domain, Param, SearchSpace, SpaceError, same_point};

/// One parameter's value inside an [`Assignment`], in the order of
/// [`SearchSpace::params`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Value {
    Double(f64),
    Int(i64),
    /// Index into the `list` of a discrete or categorical parameter.
    Choice(usize),
}

/// Values for every parameter of the space, in the space's order.
pub type Assignment = Vec<Value>;

/// What is known about a trial when suggestions are asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Created and not finished: its point is taken, its value unknown.
    Pending,
    /// Finished with this loss (objective already turned into "lower is better").
    Completed(f64),
    /// Finished without a usable objective (failed, killed, metrics unavailable).
    Failed,
    /// Stopped early by an early-stopping rule; `last` is its last reported loss.
    EarlyStopped { last: Option<f64> },
}

/// One trial of the history, in creation order.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRecord {
    pub assignment: Assignment,
    pub outcome: Outcome,
    /// Bookkeeping an algorithm attached to this trial when it suggested it
    /// (e.g. hyperband's bracket and rung); persisted by the caller verbatim.
    pub tags: BTreeMap<String, String>,
}

/// One new trial to create.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub assignment: Assignment,
    pub tags: BTreeMap<String, String>,
}

impl Suggestion {
    pub fn new(assignment: Assignment) -> Self {
        Self {
            assignment,
            tags: BTreeMap::new(),
        }
    }
}

/// What the experiment says that an algorithm may need to know.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub max_trial_count: Option<u32>,
    pub parallel_trial_count: u32,
}

/// A configured algorithm.
pub trait Algorithm: Send + Sync + std::fmt::Debug {
    /// Up to `n` new trials. Fewer (possibly none) means the algorithm is
    /// exhausted for now (e.g. the grid is done, or hyperband waits for a rung
    /// to finish); the caller asks again when a trial finishes.
    ///
    /// A returned assignment never equals one already in `history` (pending
    /// ones included) nor another one of the same batch, whenever the space
    /// has room for that.
    fn suggest(&self, history: &[TrialRecord], n: usize) -> Result<Vec<Suggestion>, SuggestError>;
}

/// A bad `algorithmSettings` entry or a space the algorithm cannot handle.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error("unknown algorithm {0:?}")]
    UnknownAlgorithm(String),
    #[error("algorithm {algorithm:?} is not supported yet: {reason}")]
    Unsupported { algorithm: String, reason: String },
    #[error("algorithm setting {name:?}: {message}")]
    Setting { name: String, message: String },
    #[error("{0}")]
    Space(String),
}

/// A failure while suggesting (the history does not fit the space, …).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SuggestError {
    #[error("trial history does not match the search space: {0}")]
    History(String),
    #[error("{0}")]
    Internal(String),
}

/// Builds the algorithm named by Katib's `algorithmName` with its
/// `algorithmSettings` (name, value as written in the YAML).
///
/// `seed` is used when the settings carry no `random_state` (or `seed`).
/// Every algorithm rejects settings it does not know, naming them.
///
/// Each `suggest` call draws from a fresh RNG (Xoshiro256++) seeded from the
/// seed and the number of trials in the history, so the same seed and
/// history always give the same suggestions. Algorithms that need more
/// state (Sobol's position, CMA-ES's generations, Hyperband's brackets) put
/// it in [`Suggestion::tags`] and read it back from the history.
///
/// | name | settings |
/// |---|---|
/// | `random` | `random_state` |
/// | `grid` | `random_state` (the order is fixed) |
/// | `sobol` | `random_state` (scrambles the sequence) |
/// | `tpe` | `gamma`, `prior_weight`, `n_EI_candidates` (hyperopt), `n_startup_trials`, `n_ei_candidates` (Optuna), `random_state` |
/// | `multivariate-tpe` | `n_startup_trials`, `n_ei_candidates`, `random_state` |
/// | `cmaes` | `sigma`, `restart_strategy` (`ipop`, `bipop`, `none`), `random_state` |
/// | `hyperband` | `resource_name`, `r_l`, `eta`, `random_state` |
///
/// `enas`, `darts` and `pbt` are Katib algorithms that Oxflow does not
/// implement yet ([`SettingsError::Unsupported`]).
pub fn build(
    name: &str,
    settings: &[(String, String)],
    space: &SearchSpace,
    budget: Budget,
    seed: u64,
) -> Result<Box<dyn Algorithm>, SettingsError> {
    let unsupported = |reason: &str| {
        Err(SettingsError::Unsupported {
            algorithm: name.to_string(),
            reason: reason.to_string(),
        })
    };
    Ok(match name {
        "random" => Box::new(random::RandomSearch::new(settings, space, seed)?),
        "grid" => Box::new(grid::Grid::new(settings, space, budget)?),
        "sobol" => Box::new(sobol::Sobol::new(settings, space, seed)?),
        "tpe" => Box::new(tpe::Tpe::independent(settings, space, seed)?),
        "multivariate-tpe" => Box::new(tpe::Tpe::multivariate(settings, space, seed)?),
        "cmaes" => Box::new(cmaes::CmaEs::new(settings, space, seed)?),
        "hyperband" => Box::new(hyperband::Hyperband::new(settings, space, budget, seed)?),
        "bayesianoptimization" => Box::new(gp::BayesOpt::new(settings, space, seed)?),
        "enas" | "darts" => {
            return unsupported(
                "neural architecture search is not supported yet; use a hyperparameter search algorithm such as tpe",
            );
        }
        "pbt" => {
            return unsupported(
                "population based training is not supported yet; use hyperband or medianstop early stopping instead",
            );
        }
        _ => return Err(SettingsError::UnknownAlgorithm(name.to_string())),
    })
}
