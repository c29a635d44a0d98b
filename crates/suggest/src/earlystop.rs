//! Early stopping: Katib's `medianstop`, as pure functions.
//!
//! Katib's rule, reproduced as its code behaves (`medianstop/service.py`
//! and the metrics collector's `updateStopRules`):
//!
//! 1. For every *succeeded* trial, average the first `start_step` reported
//!    values of the objective metric (fewer if it reported fewer).
//! 2. Once at least `min_trials_required` trials are averaged, the threshold
//!    is the **arithmetic mean** of those averages — not a median, despite
//!    the name. Before that there is no rule.
//! 3. A running trial is stopped when it has reported at least `start_step`
//!    values and its best value so far (max when maximising, min when
//!    minimising) is worse than the threshold: `less` than it when
//!    maximising, `greater` than it when minimising.
//!
//! The controller calls [`MedianStop::rule`] with the series of the
//! succeeded trials whenever one finishes, and [`StopRule::should_stop`]
//! with a running trial's series whenever that trial reports a value.
//!
//! ```
//! use oxflow_suggest::{Comparison, Direction, MedianStop};
//!
//! let ms = MedianStop::new(&[("min_trials_required".into(), "2".into())]).unwrap();
//! let done: [&[f64]; 2] = [&[0.9, 0.8, 0.7, 0.6, 0.1], &[0.7, 0.6, 0.5, 0.4]];
//! let rule = ms.rule(done, Direction::Minimize).unwrap();
//! assert_eq!(rule.comparison, Comparison::Greater);
//! assert!((rule.value - 0.65).abs() < 1e-12); // mean of 0.75 and 0.55
//! assert!(!rule.should_stop(&[0.9, 0.9, 0.9])); // not at start_step yet
//! assert!(rule.should_stop(&[0.9, 0.9, 0.9, 0.8]));
//! assert!(!rule.should_stop(&[0.9, 0.9, 0.9, 0.6]));
//! ```

use crate::SettingsError;
use crate::settings::Settings;

/// The objective's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Minimize,
    Maximize,
}

/// How a trial's best value is compared with a rule's value (Katib's
/// `ComparisonType`; its `equal` is never produced by `medianstop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// Stop when the value is below the rule's value (objective maximised).
    Less,
    /// Stop when the value is above the rule's value (objective minimised).
    Greater,
}

/// Katib's `earlyStopping: {algorithmName: medianstop}` with its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MedianStop {
    /// No rule until this many succeeded trials are known (default 3).
    pub min_trials_required: usize,
    /// How many reported values are averaged per succeeded trial, and how
    /// many a running trial must report before it can be stopped (default 4).
    pub start_step: usize,
}

impl Default for MedianStop {
    fn default() -> Self {
        Self {
            min_trials_required: 3,
            start_step: 4,
        }
    }
}

/// The rule that a running trial's objective series is checked against
/// (Katib's `EarlyStoppingRule` for the objective metric).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StopRule {
    /// The threshold.
    pub value: f64,
    pub comparison: Comparison,
    /// Values a trial must have reported before the rule applies.
    pub start_step: usize,
}

impl MedianStop {
    /// Parses `algorithmSettings`: `min_trials_required` (int > 0, default 3)
    /// and `start_step` (int >= 1, default 4). Errors name the setting.
    pub fn new(settings: &[(String, String)]) -> Result<Self, SettingsError> {
        let s = Settings::new(
            "medianstop",
            settings,
            &["min_trials_required", "start_step"],
        )?;
        let d = Self::default();
        Ok(Self {
            min_trials_required: s
                .int("min_trials_required", 1)?
                .map_or(d.min_trials_required, |v| v as usize),
            start_step: s.int("start_step", 1)?.map_or(d.start_step, |v| v as usize),
        })
    }

    /// The threshold rule from the objective series (in report order) of
    /// every succeeded trial; `None` until `min_trials_required` of them
    /// have reported at least one value. Non-finite values are skipped.
    pub fn rule<'a>(
        &self,
        succeeded: impl IntoIterator<Item = &'a [f64]>,
        direction: Direction,
    ) -> Option<StopRule> {
        let averages: Vec<f64> = succeeded
            .into_iter()
            .filter_map(|series| {
                let first: Vec<f64> = series
                    .iter()
                    .copied()
                    .filter(|v| v.is_finite())
                    .take(self.start_step)
                    .collect();
                // Katib divides by zero here; a trial without values says nothing.
                (!first.is_empty()).then(|| first.iter().sum::<f64>() / first.len() as f64)
            })
            .collect();
        if averages.len() < self.min_trials_required.max(1) {
            return None;
        }
        let value = averages.iter().sum::<f64>() / averages.len() as f64;
        let comparison = match direction {
            Direction::Maximize => Comparison::Less,
            Direction::Minimize => Comparison::Greater,
        };
        Some(StopRule {
            value,
            comparison,
            start_step: self.start_step,
        })
    }
}

impl StopRule {
    /// Whether a running trial with this objective series (in report order)
    /// must stop: it has reported at least `start_step` values and its best
    /// value so far meets the comparison.
    ///
    /// Katib's collector evaluates the rule exactly once, at the
    /// `start_step`-th value. The best value so far only improves, so with a
    /// fixed rule checking every later value gives the same answer; checking
    /// later also lets a threshold that moved since the trial started apply.
    pub fn should_stop(&self, series: &[f64]) -> bool {
        let finite = series.iter().copied().filter(|v| v.is_finite());
        if finite.clone().count() < self.start_step {
            return false;
        }
        match self.comparison {
            // Minimising: the minimum so far is above the threshold.
            Comparison::Greater => finite.fold(f64::INFINITY, f64::min) > self.value,
            // Maximising: the maximum so far is below the threshold.
            Comparison::Less => finite.fold(f64::NEG_INFINITY, f64::max) < self.value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn err_name(v: &[(&str, &str)]) -> String {
        match MedianStop::new(&settings(v)).unwrap_err() {
            SettingsError::Setting { name, .. } => name,
            e => panic!("{e}"),
        }
    }

    #[test]
    fn settings_default_and_validate() {
        assert_eq!(
            MedianStop::new(&[]).unwrap(),
            MedianStop {
                min_trials_required: 3,
                start_step: 4
            }
        );
        let ms = MedianStop::new(&settings(&[
            ("min_trials_required", "5"),
            ("start_step", "1"),
        ]))
        .unwrap();
        assert_eq!(
            ms,
            MedianStop {
                min_trials_required: 5,
                start_step: 1
            }
        );
        assert_eq!(
            err_name(&[("min_trials_required", "0")]),
            "min_trials_required"
        );
        assert_eq!(err_name(&[("start_step", "0")]), "start_step");
        assert_eq!(err_name(&[("start_step", "two")]), "start_step");
        assert_eq!(err_name(&[("median", "1")]), "median");
    }

    #[test]
    fn threshold_is_the_mean_of_the_first_start_step_averages() {
        // Hand computation, start_step = 3:
        //   trial A: 1, 2, 3, (100 ignored)  -> 2
        //   trial B: 4, 4, 7                 -> 5
        //   trial C: 10 (only one value)     -> 10
        //   trial D: no values               -> skipped
        // mean(2, 5, 10) = 17/3; a median would say 5.
        let ms = MedianStop {
            min_trials_required: 3,
            start_step: 3,
        };
        let series: [&[f64]; 4] = [&[1.0, 2.0, 3.0, 100.0], &[4.0, 4.0, 7.0], &[10.0], &[]];
        let rule = ms.rule(series, Direction::Maximize).unwrap();
        assert!((rule.value - 17.0 / 3.0).abs() < 1e-12);
        assert_eq!(rule.comparison, Comparison::Less);
        assert_eq!(rule.start_step, 3);
        let rule = ms.rule(series, Direction::Minimize).unwrap();
        assert_eq!(rule.comparison, Comparison::Greater);
    }

    #[test]
    fn no_rule_before_min_trials_required() {
        let ms = MedianStop::default();
        let two: [&[f64]; 3] = [&[1.0], &[2.0], &[]];
        assert_eq!(ms.rule(two, Direction::Minimize), None);
        let three: [&[f64]; 3] = [&[1.0], &[2.0], &[3.0]];
        assert!(ms.rule(three, Direction::Minimize).is_some());
    }

    #[test]
    fn stopping_compares_the_best_so_far_after_start_step_values() {
        let max = StopRule {
            value: 0.5,
            comparison: Comparison::Less,
            start_step: 3,
        };
        assert!(!max.should_stop(&[0.1, 0.2]), "too early");
        assert!(max.should_stop(&[0.1, 0.2, 0.3]), "best 0.3 < 0.5");
        assert!(
            !max.should_stop(&[0.6, 0.2, 0.3]),
            "best 0.6 reached the threshold earlier"
        );
        assert!(!max.should_stop(&[0.1, 0.2, 0.3, 0.7]));
        let min = StopRule {
            value: 0.5,
            comparison: Comparison::Greater,
            start_step: 2,
        };
        assert!(min.should_stop(&[0.9, 0.8]));
        assert!(!min.should_stop(&[0.9, 0.4]));
        assert!(!min.should_stop(&[0.9, 0.5]), "equal is not worse");
        assert!(!min.should_stop(&[0.9, f64::NAN]), "a NaN is not a report");
    }
}
