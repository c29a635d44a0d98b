//! `random`: independent draws from every parameter's prior
//! (`feasibleSpace.distribution`), without duplicates.

use crate::common::{Rng, Taken, check_history, pick_unique, rng_for};
use crate::settings::Settings;
use crate::{Algorithm, SearchSpace, SettingsError, SuggestError, Suggestion, TrialRecord};

/// RNG stream of this algorithm (see [`rng_for`]).
const STREAM: u64 = 1;

#[derive(Debug)]
pub(crate) struct RandomSearch {
    space: SearchSpace,
    seed: u64,
}

impl RandomSearch {
    /// Settings: `random_state` / `seed`.
    pub(crate) fn new(
        settings: &[(String, String)],
        space: &SearchSpace,
        seed: u64,
    ) -> Result<Self, SettingsError> {
        let s = Settings::new("random", settings, &["random_state", "seed"])?;
        Ok(Self {
            space: space.clone(),
            seed: s.seed(seed)?,
        })
    }
}

impl Algorithm for RandomSearch {
    fn suggest(&self, history: &[TrialRecord], n: usize) -> Result<Vec<Suggestion>, SuggestError> {
        check_history(&self.space, history)?;
        let mut rng: Rng = rng_for(self.seed, history.len(), STREAM);
        let mut taken = Taken::new(history);
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let Some(a) = pick_unique(&self.space, &mut taken, &mut rng, |r, _| {
                vec![self.space.sample(r)]
            }) else {
                break;
            };
            out.push(Suggestion::new(a));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;
    use crate::common::test_support::*;

    #[test]
    fn a_small_space_is_covered_without_repeats_then_exhausted() {
        let space = tiny_space();
        let alg = RandomSearch::new(&[], &space, 3).unwrap();
        let first = alg.suggest(&[], 4).unwrap();
        assert_eq!(first.len(), 4);
        // The four are still running: the next batch avoids them.
        let history: Vec<_> = first.iter().map(|s| record(s, Outcome::Pending)).collect();
        let second = alg.suggest(&history, 4).unwrap();
        assert_eq!(second.len(), 2, "only two points are left");
        let all: Vec<_> = first.iter().chain(&second).map(|s| &s.assignment).collect();
        assert!(all_distinct(&all));
        let mut history = history;
        history.extend(second.iter().map(|s| record(s, Outcome::Failed)));
        assert!(alg.suggest(&history, 1).unwrap().is_empty());
    }

    #[test]
    fn same_seed_and_history_give_the_same_points() {
        let space = mixed_space();
        let a = RandomSearch::new(&[], &space, 1)
            .unwrap()
            .suggest(&[], 5)
            .unwrap();
        let b = RandomSearch::new(&[], &space, 1)
            .unwrap()
            .suggest(&[], 5)
            .unwrap();
        let c = RandomSearch::new(&[("random_state".into(), "2".into())], &space, 1)
            .unwrap()
            .suggest(&[], 5)
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
