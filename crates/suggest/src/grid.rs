//! `grid`: every combination of the parameters' grids, in
//! `itertools.product` order (the last parameter varies fastest).
//!
//! Katib's semantics: an `int` steps by `step` (default 1), a `double` needs
//! a `step` and takes `min + k·step` up to `max`, lists take every element.
//! One deliberate difference: Katib builds a double's grid with numpy's
//! `arange`, whose rounding can drop `max` itself (`0.001..0.01` step `0.001`
//! gives 9 values there); here a value within 1e-9 steps of `max` counts,
//! so that grid has the 10 values its YAML describes.

use crate::common::{Taken, axes, check_history, point_at};
use crate::settings::Settings;
use crate::{
    Algorithm, Budget, Domain, SearchSpace, SettingsError, SuggestError, Suggestion, TrialRecord,
    Value,
};

#[derive(Debug)]
pub(crate) struct Grid {
    axes: Vec<Vec<Value>>,
    size: u128,
    space: SearchSpace,
}

impl Grid {
    /// Settings: `random_state` / `seed` (accepted as Katib does; the order
    /// is fixed and does not depend on it).
    pub(crate) fn new(
        settings: &[(String, String)],
        space: &SearchSpace,
        budget: Budget,
    ) -> Result<Self, SettingsError> {
        let s = Settings::new("grid", settings, &["random_state", "seed"])?;
        s.seed(0)?;
        for p in &space.params {
            if let Domain::Double { step: None, .. } = p.domain {
                return Err(SettingsError::Space(format!(
                    "parameter {:?}: grid search needs a step for double parameters; set feasibleSpace.step",
                    p.name
                )));
            }
        }
        let axes = axes(space)
            .ok_or_else(|| SettingsError::Space("grid search needs a finite space".into()))?;
        let size = axes
            .iter()
            .fold(1u128, |n, a| n.saturating_mul(a.len() as u128));
        if let Some(max) = budget.max_trial_count
            && u128::from(max) > size
        {
            return Err(SettingsError::Space(format!(
                "maxTrialCount {max} is more than the {size} points of the grid; lower maxTrialCount or refine the steps"
            )));
        }
        Ok(Self {
            axes,
            size,
            space: space.clone(),
        })
    }
}

impl Algorithm for Grid {
    fn suggest(&self, history: &[TrialRecord], n: usize) -> Result<Vec<Suggestion>, SuggestError> {
        check_history(&self.space, history)?;
        let mut taken = Taken::new(history);
        let mut out = Vec::with_capacity(n);
        // Walk the grid from the start, skipping every point already in the
        // history: the walk costs O(history + n) and needs no stored cursor.
        let mut i = 0u128;
        while out.len() < n && i < self.size {
            let a = point_at(&self.axes, i);
            if taken.insert(&a) {
                out.push(Suggestion::new(a));
            }
            i += 1;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Distribution;
    use crate::Outcome;
    use crate::common::test_support::*;

    fn double(name: &str, min: f64, max: f64, step: Option<f64>) -> crate::Param {
        param(
            name,
            Domain::Double {
                min,
                max,
                step,
                distribution: Distribution::Uniform,
            },
        )
    }

    fn budget(max: Option<u32>) -> Budget {
        Budget {
            max_trial_count: max,
            parallel_trial_count: 3,
        }
    }

    fn doubles(points: &[Suggestion], i: usize) -> Vec<f64> {
        let mut v: Vec<f64> = points
            .iter()
            .map(|s| match s.assignment[i] {
                Value::Double(x) => x,
                _ => panic!("not a double"),
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    }

    #[test]
    fn katib_example_grid_has_45_points_with_clean_values() {
        // /work/shared/katib-examples/grid.yaml
        let space = SearchSpace::new(vec![
            double("lr", 0.01, 0.05, Some(0.005)),
            double("momentum", 0.5, 0.9, Some(0.1)),
        ])
        .unwrap();
        let g = Grid::new(&[], &space, budget(Some(12))).unwrap();
        let all = g.suggest(&[], 100).unwrap();
        assert_eq!(all.len(), 45);
        assert_eq!(
            doubles(&all, 0),
            vec![0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.045, 0.05]
        );
        assert_eq!(doubles(&all, 1), vec![0.5, 0.6, 0.7, 0.8, 0.9]);
        // itertools.product order: the last parameter moves fastest.
        assert_eq!(
            all[1].assignment,
            vec![Value::Double(0.01), Value::Double(0.6)]
        );
    }

    #[test]
    fn lr_grid_includes_its_max_and_ints_step_by_one() {
        let space = SearchSpace::new(vec![
            double("lr", 0.001, 0.01, Some(0.001)),
            param(
                "n",
                Domain::Int {
                    min: 1,
                    max: 3,
                    step: None,
                    distribution: Distribution::Uniform,
                },
            ),
        ])
        .unwrap();
        let all = Grid::new(&[], &space, budget(None))
            .unwrap()
            .suggest(&[], 1000)
            .unwrap();
        assert_eq!(all.len(), 30);
        let lr = doubles(&all, 0);
        assert_eq!(lr.len(), 10);
        assert_eq!(lr[2], 0.003);
        assert_eq!(lr[9], 0.01);
        // A max off the step grid is not a grid point.
        let space = SearchSpace::new(vec![
            double("x", 0.0, 1.0, Some(0.3)),
            double("y", 0.0, 1.0, Some(0.5)),
        ])
        .unwrap();
        let all = Grid::new(&[], &space, budget(None))
            .unwrap()
            .suggest(&[], 1000)
            .unwrap();
        assert_eq!(doubles(&all, 0), vec![0.0, 0.3, 0.6, 0.9]);
        assert!(all.iter().all(|s| space.contains(&s.assignment)));
    }

    #[test]
    fn parallel_batches_skip_running_points_and_exhaustion_returns_nothing() {
        let space = tiny_space();
        let g = Grid::new(&[], &space, budget(None)).unwrap();
        let mut history = Vec::new();
        let mut seen = Vec::new();
        loop {
            let batch = g.suggest(&history, 3).unwrap();
            if batch.is_empty() {
                break;
            }
            // Half of them still running, half failed: none comes back.
            for (i, s) in batch.iter().enumerate() {
                seen.push(s.assignment.clone());
                history.push(record(
                    s,
                    if i % 2 == 0 {
                        Outcome::Pending
                    } else {
                        Outcome::Failed
                    },
                ));
            }
        }
        assert_eq!(seen.len(), 6);
        assert!(all_distinct(&seen.iter().collect::<Vec<_>>()));
    }

    #[test]
    fn settings_and_space_are_validated() {
        let space = SearchSpace::new(vec![double("lr", 0.0, 1.0, None)]).unwrap();
        let e = Grid::new(&[], &space, budget(None)).unwrap_err();
        assert!(
            matches!(&e, SettingsError::Space(m) if m.contains("\"lr\"") && m.contains("step")),
            "{e}"
        );
        let e = Grid::new(&[], &tiny_space(), budget(Some(7))).unwrap_err();
        assert!(e.to_string().contains("maxTrialCount 7"), "{e}");
        let e = Grid::new(&[("foo".into(), "1".into())], &tiny_space(), budget(None)).unwrap_err();
        assert!(matches!(e, SettingsError::Setting { name, .. } if name == "foo"));
    }
}
