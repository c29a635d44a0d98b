//! What every algorithm shares: the per-call RNG, the history checks and the
//! one place that keeps a batch free of duplicates.

use std::collections::HashSet;

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

use crate::{Assignment, Outcome, SearchSpace, SuggestError, TrialRecord, Value};

/// The RNG every algorithm draws from: Xoshiro256++, whose output is fixed
/// by its definition (unlike `StdRng`, which may change between rand
/// releases), so stored experiments replay the same way after an upgrade.
pub(crate) type Rng = Xoshiro256PlusPlus;

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The RNG of one `suggest` call: a function of the experiment's seed, the
/// number of trials in the history and a per-purpose `stream` number. The
/// same history therefore gives the same suggestions (a resumed experiment
/// continues exactly), and every new trial brings fresh randomness.
pub(crate) fn rng_for(seed: u64, history_len: usize, stream: u64) -> Rng {
    let k = splitmix64(seed ^ splitmix64(history_len as u64 ^ splitmix64(stream)));
    Rng::seed_from_u64(k)
}

/// A hashable identity of a point: the exact bits of every value (equal
/// points are equal because every algorithm snaps onto the feasible set).
type Key = Vec<u64>;

fn key(a: &Assignment) -> Key {
    a.iter()
        .map(|v| match v {
            // -0.0 and 0.0 are the same point.
            Value::Double(x) => (if *x == 0.0 { 0.0 } else { *x }).to_bits(),
            Value::Int(i) => *i as u64,
            Value::Choice(c) => *c as u64,
        })
        .collect()
}

/// The points already used: every trial of the history, whatever its
/// outcome (a failed point is not retried, a pending one not duplicated),
/// plus what the current batch has picked so far.
pub(crate) struct Taken {
    keys: HashSet<Key>,
}

impl Taken {
    pub(crate) fn new(history: &[TrialRecord]) -> Self {
        Self {
            keys: history.iter().map(|t| key(&t.assignment)).collect(),
        }
    }

    pub(crate) fn contains(&self, a: &Assignment) -> bool {
        self.keys.contains(&key(a))
    }

    /// Marks `a` as used; false if it already was.
    pub(crate) fn insert(&mut self, a: &Assignment) -> bool {
        self.keys.insert(key(a))
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

/// How many times a proposer is asked again after proposing only taken
/// points, before falling back to the prior.
const PROPOSE_RETRIES: usize = 4;
/// Prior draws tried after that, before enumerating a finite space.
const PRIOR_RETRIES: usize = 64;
/// The largest finite space that is enumerated to find a free point.
const ENUMERATE_LIMIT: u128 = 1 << 18;

/// The one rule against duplicates. Returns the first point that is not
/// taken (and takes it) among, in order: the proposals of `propose` (called
/// with the attempt number, best proposal first), draws from the prior, and
/// for a small finite space a uniformly chosen free point. `None` means the
/// space is exhausted (or, for a huge finite space, practically full).
pub(crate) fn pick_unique(
    space: &SearchSpace,
    taken: &mut Taken,
    rng: &mut Rng,
    mut propose: impl FnMut(&mut Rng, usize) -> Vec<Assignment>,
) -> Option<Assignment> {
    if let Some(size) = space.size()
        && taken.len() as u128 >= size
        && free_points(space, taken).is_some_and(|f| f.is_empty())
    {
        return None;
    }
    for attempt in 0..PROPOSE_RETRIES {
        for a in propose(rng, attempt) {
            if taken.insert(&a) {
                return Some(a);
            }
        }
    }
    for _ in 0..PRIOR_RETRIES {
        let a = space.sample(rng);
        if taken.insert(&a) {
            return Some(a);
        }
    }
    let free = free_points(space, taken)?;
    if free.is_empty() {
        return None;
    }
    use rand::RngExt;
    let a = free[rng.random_range(0..free.len())].clone();
    taken.insert(&a);
    Some(a)
}

/// Every point of a finite space of at most [`ENUMERATE_LIMIT`] points that
/// is not taken; `None` for larger or continuous spaces.
fn free_points(space: &SearchSpace, taken: &Taken) -> Option<Vec<Assignment>> {
    let size = space.size()?;
    if size > ENUMERATE_LIMIT {
        return None;
    }
    let axes = axes(space)?;
    Some(
        (0..size)
            .map(|i| point_at(&axes, i))
            .filter(|a| !taken.contains(a))
            .collect(),
    )
}

/// The feasible values of every parameter of a finite space.
pub(crate) fn axes(space: &SearchSpace) -> Option<Vec<Vec<Value>>> {
    space.params.iter().map(|p| p.grid()).collect()
}

/// The `index`-th point of the product of `axes`, in `itertools.product`
/// order (the last parameter varies fastest).
pub(crate) fn point_at(axes: &[Vec<Value>], mut index: u128) -> Assignment {
    let mut a = vec![Value::Choice(0); axes.len()];
    for (slot, axis) in a.iter_mut().zip(axes).rev() {
        let n = axis.len() as u128;
        *slot = axis[(index % n) as usize].clone();
        index /= n;
    }
    a
}

/// Checks that every trial of the history is a point of the space.
pub(crate) fn check_history(
    space: &SearchSpace,
    history: &[TrialRecord],
) -> Result<(), SuggestError> {
    for (i, t) in history.iter().enumerate() {
        if !space.contains(&t.assignment) {
            return Err(SuggestError::History(format!(
                "trial #{i} has assignment {:?}, which is not a point of the search space",
                t.assignment
            )));
        }
    }
    Ok(())
}

/// The usable loss of a finished trial: `Completed` with a finite value.
pub(crate) fn completed_loss(o: &Outcome) -> Option<f64> {
    match o {
        Outcome::Completed(y) if y.is_finite() => Some(*y),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Spaces and histories shared by the algorithm tests.

    use std::collections::BTreeMap;

    use crate::{
        Assignment, Distribution, Domain, Outcome, Param, SearchSpace, Suggestion, TrialRecord,
    };

    pub(crate) fn param(name: &str, domain: Domain) -> Param {
        Param {
            name: name.to_string(),
            domain,
        }
    }

    /// Double log-uniform, int with a step, discrete and categorical.
    pub(crate) fn mixed_space() -> SearchSpace {
        SearchSpace::new(vec![
            param(
                "lr",
                Domain::Double {
                    min: 1e-4,
                    max: 1e-1,
                    step: None,
                    distribution: Distribution::LogUniform,
                },
            ),
            param(
                "layers",
                Domain::Int {
                    min: 2,
                    max: 10,
                    step: Some(2),
                    distribution: Distribution::Uniform,
                },
            ),
            param(
                "batch",
                Domain::Discrete {
                    list: vec!["16".into(), "32".into(), "64".into()],
                    values: vec![16.0, 32.0, 64.0],
                },
            ),
            param(
                "opt",
                Domain::Categorical {
                    list: vec!["sgd".into(), "adam".into(), "ftrl".into()],
                },
            ),
            param(
                "momentum",
                Domain::Double {
                    min: 0.5,
                    max: 0.9,
                    step: None,
                    distribution: Distribution::Normal,
                },
            ),
        ])
        .unwrap()
    }

    /// 2 × 3 = 6 points.
    pub(crate) fn tiny_space() -> SearchSpace {
        SearchSpace::new(vec![
            param(
                "a",
                Domain::Int {
                    min: 0,
                    max: 1,
                    step: None,
                    distribution: Distribution::Uniform,
                },
            ),
            param(
                "b",
                Domain::Categorical {
                    list: vec!["x".into(), "y".into(), "z".into()],
                },
            ),
        ])
        .unwrap()
    }

    pub(crate) fn record(s: &Suggestion, outcome: Outcome) -> TrialRecord {
        TrialRecord {
            assignment: s.assignment.clone(),
            outcome,
            tags: s.tags.clone(),
        }
    }

    pub(crate) fn pending(a: Assignment) -> TrialRecord {
        TrialRecord {
            assignment: a,
            outcome: Outcome::Pending,
            tags: BTreeMap::new(),
        }
    }

    /// Whether no two assignments are equal.
    pub(crate) fn all_distinct(points: &[&Assignment]) -> bool {
        points
            .iter()
            .enumerate()
            .all(|(i, a)| points[..i].iter().all(|b| a != b))
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    #[test]
    fn rng_depends_on_seed_length_and_stream() {
        use rand::RngExt;
        let draw = |s, l, k| rng_for(s, l, k).random::<u64>();
        assert_eq!(draw(1, 5, 0), draw(1, 5, 0));
        assert_ne!(draw(1, 5, 0), draw(2, 5, 0));
        assert_ne!(draw(1, 5, 0), draw(1, 6, 0));
        assert_ne!(draw(1, 5, 0), draw(1, 5, 1));
    }

    #[test]
    fn product_order_is_itertools_order() {
        let axes = vec![
            vec![Value::Int(0), Value::Int(1)],
            vec![Value::Choice(0), Value::Choice(1), Value::Choice(2)],
        ];
        assert_eq!(point_at(&axes, 0), vec![Value::Int(0), Value::Choice(0)]);
        assert_eq!(point_at(&axes, 1), vec![Value::Int(0), Value::Choice(1)]);
        assert_eq!(point_at(&axes, 3), vec![Value::Int(1), Value::Choice(0)]);
        assert_eq!(point_at(&axes, 5), vec![Value::Int(1), Value::Choice(2)]);
    }

    #[test]
    fn pick_unique_fills_a_small_space_then_reports_exhaustion() {
        let space = tiny_space();
        let mut taken = Taken::new(&[]);
        let mut rng = rng_for(0, 0, 0);
        // A proposer stuck on one point still yields all six points.
        let stuck = vec![Value::Int(0), Value::Choice(0)];
        let mut got = Vec::new();
        while let Some(a) = pick_unique(&space, &mut taken, &mut rng, |_, _| vec![stuck.clone()]) {
            got.push(a);
            assert!(got.len() <= 6);
        }
        assert_eq!(got.len(), 6);
        assert!(all_distinct(&got.iter().collect::<Vec<_>>()));
    }

    #[test]
    fn history_outside_the_space_is_an_error() {
        let space = tiny_space();
        let bad = pending(vec![Value::Int(5), Value::Choice(0)]);
        assert!(matches!(
            check_history(&space, &[bad]),
            Err(SuggestError::History(_))
        ));
    }
}
