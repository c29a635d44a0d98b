//! `sobol`: a scrambled Sobol sequence over every parameter (numbers in the
//! unit cube of [`crate::Param::from_unit`], lists by index), Katib's
//! quasi-random search.
//!
//! Direction numbers are Joe and Kuo's (`new-joe-kuo-6.21201`, the table
//! SciPy and goptuna use) for up to [`MAX_DIMS`] parameters. The sequence is
//! scrambled with Burley's hash-based nested uniform (Owen) scramble, seeded
//! per dimension, so different seeds give different, equally uniform
//! designs; every power-of-two prefix stays stratified. `normal` and
//! `logNormal` parameters map the coordinate through the normal quantile,
//! so the design follows the prior as `random` does.
//!
//! Each suggestion is tagged `sobol/index` with its position in the
//! sequence; the next call continues after the largest index in the
//! history. Points already in the history are skipped.

use crate::common::{Taken, check_history, pick_unique, rng_for};
use crate::settings::Settings;
use crate::stats::ndtri;
use crate::{
    Algorithm, Assignment, Distribution, Domain, Param, SearchSpace, SettingsError, SuggestError,
    Suggestion, TrialRecord, Value,
};

/// The tag carrying a suggestion's index in the sequence.
pub(crate) const INDEX_TAG: &str = "sobol/index";
const STREAM: u64 = 4;
/// Consecutive sequence points that may be taken before the rest of the
/// batch comes from the prior (small discrete spaces).
const MAX_MISSES: usize = 256;

/// (degree s, polynomial a, initial m_1..m_s) for dimensions 2, 3, ….
const JOE_KUO: &[(u32, u32, &[u32])] = &[
    (1, 0, &[1]),
    (2, 1, &[1, 3]),
    (3, 1, &[1, 3, 1]),
    (3, 2, &[1, 1, 1]),
    (4, 1, &[1, 1, 3, 3]),
    (4, 4, &[1, 3, 5, 13]),
    (5, 2, &[1, 1, 5, 5, 17]),
    (5, 4, &[1, 1, 5, 5, 5]),
    (5, 7, &[1, 1, 7, 11, 19]),
    (5, 11, &[1, 1, 5, 1, 1]),
    (5, 13, &[1, 1, 1, 3, 11]),
    (5, 14, &[1, 3, 5, 5, 31]),
    (6, 1, &[1, 3, 3, 9, 7, 49]),
    (6, 13, &[1, 1, 1, 15, 21, 21]),
    (6, 16, &[1, 3, 1, 13, 27, 49]),
    (6, 19, &[1, 1, 1, 15, 7, 5]),
    (6, 22, &[1, 3, 1, 15, 13, 25]),
    (6, 25, &[1, 1, 5, 5, 19, 61]),
    (7, 1, &[1, 3, 7, 11, 23, 15, 103]),
    (7, 4, &[1, 3, 7, 13, 13, 15, 69]),
    (7, 7, &[1, 1, 3, 13, 7, 35, 63]),
    (7, 8, &[1, 3, 5, 9, 1, 25, 53]),
    (7, 14, &[1, 3, 1, 13, 9, 35, 107]),
    (7, 19, &[1, 3, 1, 5, 27, 61, 31]),
    (7, 21, &[1, 1, 5, 11, 19, 41, 61]),
    (7, 28, &[1, 3, 5, 3, 3, 13, 69]),
    (7, 31, &[1, 1, 7, 13, 1, 19, 1]),
    (7, 32, &[1, 3, 7, 5, 13, 19, 59]),
    (7, 37, &[1, 1, 3, 9, 25, 29, 41]),
    (7, 41, &[1, 3, 5, 13, 23, 1, 55]),
    (7, 42, &[1, 3, 7, 3, 13, 59, 17]),
    (7, 50, &[1, 3, 1, 3, 5, 53, 69]),
    (7, 55, &[1, 1, 5, 5, 23, 33, 13]),
    (7, 56, &[1, 1, 7, 7, 1, 61, 123]),
    (7, 59, &[1, 1, 7, 9, 13, 61, 49]),
    (7, 62, &[1, 3, 3, 5, 3, 55, 33]),
    (8, 14, &[1, 3, 1, 15, 31, 13, 49, 245]),
    (8, 21, &[1, 3, 5, 15, 31, 59, 63, 97]),
    (8, 22, &[1, 3, 1, 11, 11, 11, 77, 249]),
];

/// The number of parameters the direction-number table covers.
pub(crate) const MAX_DIMS: usize = JOE_KUO.len() + 1;

/// The 32 direction numbers of every dimension.
fn directions(dims: usize) -> Vec<[u32; 32]> {
    let mut all = Vec::with_capacity(dims);
    // Dimension 1: van der Corput.
    all.push(std::array::from_fn(|j| 1u32 << (31 - j)));
    for &(s, a, m) in JOE_KUO.iter().take(dims.saturating_sub(1)) {
        let s = s as usize;
        let mut v = [0u32; 32];
        for j in 0..32 {
            v[j] = if j < s {
                m[j] << (31 - j)
            } else {
                // Bratley and Fox's recurrence; the inner coefficients of the
                // primitive polynomial are the bits of `a`.
                let mut x = v[j - s] ^ (v[j - s] >> s);
                for k in 1..s {
                    if (a >> (s - 1 - k)) & 1 == 1 {
                        x ^= v[j - k];
                    }
                }
                x
            };
        }
        all.push(v);
    }
    all
}

/// The unscrambled integer coordinate of point `index` (natural order).
fn raw(v: &[u32; 32], index: u32) -> u32 {
    let mut x = 0;
    let mut i = index;
    let mut j = 0;
    while i != 0 {
        if i & 1 == 1 {
            x ^= v[j];
        }
        i >>= 1;
        j += 1;
    }
    x
}

/// Burley's nested uniform scramble (JCGT 2020): a Laine–Karras
/// permutation of the reversed bits.
fn scramble(x: u32, seed: u32) -> u32 {
    let mut x = x.reverse_bits();
    x = x.wrapping_add(seed);
    x ^= x.wrapping_mul(0x6c50_b47c);
    x ^= x.wrapping_mul(0xb82f_1e52);
    x ^= x.wrapping_mul(0xc7af_e638);
    x ^= x.wrapping_mul(0x8d22_f6e6);
    x.reverse_bits()
}

#[derive(Debug)]
pub(crate) struct Sobol {
    space: SearchSpace,
    seed: u64,
    dirs: Vec<[u32; 32]>,
    scramble_seeds: Vec<u32>,
}

impl Sobol {
    /// Settings: `random_state` / `seed` (which scramble).
    pub(crate) fn new(
        settings: &[(String, String)],
        space: &SearchSpace,
        seed: u64,
    ) -> Result<Self, SettingsError> {
        let s = Settings::new("sobol", settings, &["random_state", "seed"])?;
        let seed = s.seed(seed)?;
        let dims = space.params.len();
        if dims > MAX_DIMS {
            return Err(SettingsError::Space(format!(
                "sobol supports at most {MAX_DIMS} parameters and the experiment has {dims}; use random or tpe"
            )));
        }
        use rand::RngExt;
        let mut rng = rng_for(seed, 0, STREAM);
        Ok(Self {
            space: space.clone(),
            seed,
            dirs: directions(dims),
            scramble_seeds: (0..dims).map(|_| rng.random()).collect(),
        })
    }

    /// The unit coordinates of point `index`, in [0, 1).
    fn unit_point(&self, index: u32) -> Vec<f64> {
        self.dirs
            .iter()
            .zip(&self.scramble_seeds)
            .map(|(v, &s)| {
                // The middle of the 2^-32 cell, so no coordinate is exactly 0.
                (f64::from(scramble(raw(v, index), s)) + 0.5) / 4_294_967_296.0
            })
            .collect()
    }

    fn point(&self, index: u32) -> Assignment {
        self.space
            .params
            .iter()
            .zip(self.unit_point(index))
            .map(|(p, u)| value(p, u))
            .collect()
    }
}

/// The value at coordinate `u` of the parameter's prior.
fn value(p: &Param, u: f64) -> Value {
    if let Some(k) = p.choices() {
        return Value::Choice(((u * k as f64) as usize).min(k - 1));
    }
    let normal = matches!(
        p.domain,
        Domain::Double {
            distribution: Distribution::Normal | Distribution::LogNormal,
            ..
        } | Domain::Int {
            distribution: Distribution::Normal | Distribution::LogNormal,
            ..
        }
    );
    let u = if normal {
        (0.5 + ndtri(u) / 6.0).clamp(0.0, 1.0)
    } else {
        u
    };
    p.from_unit(u).unwrap_or(Value::Choice(0))
}

impl Algorithm for Sobol {
    fn suggest(&self, history: &[TrialRecord], n: usize) -> Result<Vec<Suggestion>, SuggestError> {
        check_history(&self.space, history)?;
        let mut taken = Taken::new(history);
        let mut next: u64 = history
            .iter()
            .filter_map(|t| t.tags.get(INDEX_TAG)?.parse::<u64>().ok())
            .max()
            .map_or(0, |m| m + 1);
        let mut out = Vec::with_capacity(n);
        let mut misses = 0;
        while out.len() < n && misses < MAX_MISSES && next <= u64::from(u32::MAX) {
            let a = self.point(next as u32);
            if taken.insert(&a) {
                let mut s = Suggestion::new(a);
                s.tags.insert(INDEX_TAG.to_string(), next.to_string());
                out.push(s);
                misses = 0;
            } else {
                misses += 1;
            }
            next += 1;
        }
        // A small discrete space keeps hitting used points: finish the batch
        // with free points (none when the space is exhausted).
        let mut rng = rng_for(self.seed, history.len(), STREAM);
        while out.len() < n {
            match pick_unique(&self.space, &mut taken, &mut rng, |r, _| {
                vec![self.space.sample(r)]
            }) {
                Some(a) => out.push(Suggestion::new(a)),
                None => break,
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;
    use crate::common::test_support::*;
    use crate::testfns::HARTMANN6;

    #[test]
    fn plain_sequence_matches_the_known_first_points() {
        let d = directions(3);
        let pts: Vec<Vec<f64>> = (0..4)
            .map(|i| {
                d.iter()
                    .map(|v| f64::from(raw(v, i)) / 4_294_967_296.0)
                    .collect()
            })
            .collect();
        assert_eq!(
            pts,
            vec![
                vec![0.0; 3],
                vec![0.5; 3],
                vec![0.25, 0.75, 0.75],
                vec![0.75, 0.25, 0.25]
            ]
        );
    }

    #[test]
    fn every_dimension_is_stratified_and_pairs_are_too() {
        // A power-of-two prefix puts exactly one point in every dyadic
        // interval of each coordinate, scrambled or not.
        let space = SearchSpace::new(
            (0..MAX_DIMS)
                .map(|i| {
                    param(
                        &format!("x{i}"),
                        crate::testfns::BRANIN.space().params[0].domain.clone(),
                    )
                })
                .collect(),
        )
        .unwrap();
        let s = Sobol::new(&[], &space, 5).unwrap();
        let pts: Vec<Vec<f64>> = (0..256).map(|i| s.unit_point(i)).collect();
        for j in 0..MAX_DIMS {
            let mut cells = vec![0; 256];
            for p in &pts {
                cells[(p[j] * 256.0) as usize] += 1;
            }
            assert!(cells.iter().all(|&c| c == 1), "dimension {j}");
        }
        // Dimensions 1 and 2 form a (0, 2)-sequence: a 16 × 16 grid gets
        // one point per cell from the first 256 points.
        let mut grid = [[0; 16]; 16];
        for p in &pts {
            grid[(p[0] * 16.0) as usize][(p[1] * 16.0) as usize] += 1;
        }
        assert!(grid.iter().flatten().all(|&c| c == 1));
    }

    #[test]
    fn low_discrepancy_beats_random_on_a_box_count() {
        // Largest deviation, over boxes [0, a) x [0, b) on a 10 x 10 grid of
        // corners, between the fraction of points inside and the box's area.
        let space = crate::testfns::BRANIN.space();
        let disc = |pts: &[Vec<f64>]| {
            let mut worst: f64 = 0.0;
            for a in 1..=10 {
                for b in 1..=10 {
                    let (a, b) = (a as f64 / 10.0, b as f64 / 10.0);
                    let inside = pts.iter().filter(|p| p[0] < a && p[1] < b).count() as f64;
                    worst = worst.max((inside / pts.len() as f64 - a * b).abs());
                }
            }
            worst
        };
        let unit = |a: &Assignment| {
            space
                .params
                .iter()
                .zip(a)
                .map(|(p, v)| p.to_unit(v).unwrap())
                .collect()
        };
        let sobol = Sobol::new(&[], &space, 1)
            .unwrap()
            .suggest(&[], 128)
            .unwrap();
        let random = crate::random::RandomSearch::new(&[], &space, 1)
            .unwrap()
            .suggest(&[], 128)
            .unwrap();
        let d_sobol = disc(
            &sobol
                .iter()
                .map(|s| unit(&s.assignment))
                .collect::<Vec<_>>(),
        );
        let d_random = disc(
            &random
                .iter()
                .map(|s| unit(&s.assignment))
                .collect::<Vec<_>>(),
        );
        assert!(d_sobol < 0.03, "sobol discrepancy {d_sobol}");
        assert!(d_sobol < d_random, "sobol {d_sobol} vs random {d_random}");
    }

    #[test]
    fn continues_after_the_history_and_differs_by_seed() {
        let space = HARTMANN6.space();
        let s = Sobol::new(&[], &space, 0).unwrap();
        let all = s.suggest(&[], 8).unwrap();
        let first = s.suggest(&[], 3).unwrap();
        let history: Vec<_> = first.iter().map(|x| record(x, Outcome::Pending)).collect();
        let rest = s.suggest(&history, 5).unwrap();
        assert_eq!(first.iter().chain(&rest).cloned().collect::<Vec<_>>(), all);
        assert_eq!(rest[0].tags.get(INDEX_TAG).map(String::as_str), Some("3"));
        let other = Sobol::new(&[("random_state".into(), "1".into())], &space, 0)
            .unwrap()
            .suggest(&[], 8)
            .unwrap();
        assert_ne!(other, all);
    }

    #[test]
    fn small_discrete_space_is_filled_then_exhausted() {
        let space = tiny_space();
        let s = Sobol::new(&[], &space, 0).unwrap();
        let got = s.suggest(&[], 10).unwrap();
        assert_eq!(got.len(), 6);
        assert!(all_distinct(
            &got.iter().map(|s| &s.assignment).collect::<Vec<_>>()
        ));
        let history: Vec<_> = got
            .iter()
            .map(|x| record(x, Outcome::Completed(0.0)))
            .collect();
        assert!(s.suggest(&history, 1).unwrap().is_empty());
    }
}
