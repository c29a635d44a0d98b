//! Katib's metrics collectors, as parsers, and Katib's reduction of a trial's
//! observations to one value per metric.
//!
//! Katib runs a sidecar per trial pod that tails a file and reports what it
//! finds; Oxflow's controller owns the trial process, so it feeds its output
//! to these parsers directly: [`TextParser`] for `StdOut` and `File`/`TEXT`
//! (line by line, as output arrives), [`JsonParser`] for `File`/`JSON`, and
//! [`read_event_dir`] (or [`EventDirTail`] while the trial runs) for
//! `TensorFlowEvent` directories. The parsing rules are Katib's
//! (`file-metricscollector.go`, `tfevent_loader.py`); deliberate differences
//! are documented where they are made.

use oxflow_core::Timestamp;

use crate::spec::{MetricStrategy, Objective};

mod crc32c;
pub mod json;
pub mod text;
pub mod tfevent;

pub use json::JsonParser;
pub use text::{DEFAULT_FILTER, TextParser};
pub use tfevent::{EventDirTail, EventFile, EventScalar, read_event_dir, read_event_file};

/// The value Katib records for a metric that was never reported.
pub const UNAVAILABLE: &str = "unavailable";

/// One reported value of one metric (Katib's `MetricLog`, a row of its
/// `observation_logs` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricLog {
    /// When the value was reported, if the source said; Katib records
    /// `0001-01-01T00:00:00Z` otherwise, which sorts before any real time.
    pub time: Option<Timestamp>,
    /// The metric name as the experiment spells it (`test/accuracy` for an
    /// event file's `accuracy` under `test/`).
    pub name: String,
    /// The value as reported (Katib keeps strings; it need not be numeric).
    pub value: String,
}

/// What went wrong while reading metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    /// A `metricsFormat` entry that is not usable.
    #[error("metrics filter {pattern:?}: {message}")]
    Filter {
        /// The filter as written.
        pattern: String,
        /// What is wrong with it.
        message: String,
    },
    /// A line of a JSON metrics file that is not a JSON object.
    #[error("metrics line {line:?} is not a JSON object: {message}")]
    Json {
        /// The line (its first 200 characters).
        line: String,
        /// The JSON parser's complaint.
        message: String,
    },
    /// A file or directory that could not be read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The file or directory.
        path: String,
        /// The operating system's error.
        message: String,
    },
    /// A TensorFlow event file whose records are damaged.
    #[error("TensorFlow event file {path} is corrupt at byte {offset}: {message}")]
    Corrupt {
        /// The event file.
        path: String,
        /// Byte offset of the damaged record.
        offset: u64,
        /// What is damaged.
        message: String,
    },
}

/// One metric of one trial reduced as Katib's trial controller does
/// (`getMetrics`): `None` is Katib's `"unavailable"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSummary {
    /// The metric.
    pub name: String,
    /// The smallest numeric value, as reported.
    pub min: Option<String>,
    /// The largest numeric value, as reported.
    pub max: Option<String>,
    /// The value with the newest timestamp (ties: the later log), numeric or not.
    pub latest: Option<String>,
}

/// Reduces a trial's logs to one summary per name in `metric_names` (in that
/// order), exactly like Katib's `getMetrics`: `min`/`max` over the values
/// that parse as floats, `latest` by timestamp with ties going to the later
/// log and logs without a time counting as oldest.
///
/// Two deliberate differences: a NaN does not take part in `min`/`max`
/// (Katib's comparisons would freeze on it), and the `"unavailable"` marker a
/// collector writes when the objective never appeared is not a value.
pub fn reduce(logs: &[MetricLog], metric_names: &[String]) -> Vec<MetricSummary> {
    metric_names
        .iter()
        .map(|name| {
            let mut s = MetricSummary {
                name: name.clone(),
                min: None,
                max: None,
                latest: None,
            };
            let mut bounds: Option<(f64, f64)> = None;
            let mut newest: Option<Option<Timestamp>> = None;
            for log in logs
                .iter()
                .filter(|l| &l.name == name && l.value != UNAVAILABLE)
            {
                if let Ok(v) = log.value.trim().parse::<f64>()
                    && !v.is_nan()
                {
                    match &mut bounds {
                        None => {
                            bounds = Some((v, v));
                            s.min = Some(log.value.clone());
                            s.max = Some(log.value.clone());
                        }
                        Some((lo, hi)) => {
                            if v < *lo {
                                *lo = v;
                                s.min = Some(log.value.clone());
                            } else if v > *hi {
                                *hi = v;
                                s.max = Some(log.value.clone());
                            }
                        }
                    }
                }
                // `None < Some(_)` for Option, which is "no time is oldest".
                if newest.is_none_or(|t| t <= log.time) {
                    newest = Some(log.time);
                    s.latest = Some(log.value.clone());
                }
            }
            s
        })
        .collect()
}

/// A trial's objective value: the objective metric's summary read with its
/// strategy (`min`, `max` or `latest`), falling back to `latest` when no
/// numeric value was seen, as Katib's experiment controller does. `None`
/// when the metric is unavailable or not a number.
pub fn objective_value(summaries: &[MetricSummary], objective: &Objective) -> Option<f64> {
    let name = &objective.objective_metric_name;
    let s = summaries.iter().find(|s| &s.name == name)?;
    let picked = match objective.strategy(name) {
        MetricStrategy::Min => s.min.as_ref(),
        MetricStrategy::Max => s.max.as_ref(),
        MetricStrategy::Latest => s.latest.as_ref(),
    }
    .or(s.latest.as_ref())?;
    picked.trim().parse::<f64>().ok().filter(|v| !v.is_nan())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{MetricStrategySpec, ObjectiveType};

    fn log(t: Option<i64>, name: &str, value: &str) -> MetricLog {
        MetricLog {
            time: t.map(Timestamp),
            name: name.into(),
            value: value.into(),
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn summary(
        name: &str,
        min: Option<&str>,
        max: Option<&str>,
        latest: Option<&str>,
    ) -> MetricSummary {
        MetricSummary {
            name: name.into(),
            min: min.map(Into::into),
            max: max.map(Into::into),
            latest: latest.map(Into::into),
        }
    }

    #[test]
    fn reduce_min_max_latest() {
        let logs = [
            log(Some(1), "loss", "0.5"),
            log(Some(3), "loss", "0.2"),
            log(Some(2), "loss", "0.9"),
            log(Some(2), "accuracy", "0.7"),
        ];
        let r = reduce(&logs, &names(&["loss", "accuracy", "f1"]));
        assert_eq!(
            r,
            vec![
                summary("loss", Some("0.2"), Some("0.9"), Some("0.2")),
                summary("accuracy", Some("0.7"), Some("0.7"), Some("0.7")),
                summary("f1", None, None, None),
            ]
        );
    }

    #[test]
    fn reduce_ties_and_missing_times() {
        // Equal times: the later log wins. No time: oldest, but among
        // untimed logs the later wins too.
        let logs = [log(Some(5), "m", "1"), log(Some(5), "m", "2")];
        assert_eq!(
            reduce(&logs, &names(&["m"]))[0].latest.as_deref(),
            Some("2")
        );
        let logs = [log(None, "m", "1"), log(None, "m", "2")];
        assert_eq!(
            reduce(&logs, &names(&["m"]))[0].latest.as_deref(),
            Some("2")
        );
        let logs = [log(Some(1), "m", "1"), log(None, "m", "2")];
        assert_eq!(
            reduce(&logs, &names(&["m"]))[0].latest.as_deref(),
            Some("1")
        );
    }

    #[test]
    fn reduce_keeps_reported_text_and_skips_non_numbers_for_bounds() {
        let logs = [
            log(Some(1), "m", "1E0"),
            log(Some(2), "m", "-7.53e-05"),
            log(Some(3), "m", "Genotype(normal=[])"),
            log(Some(4), "m", "nan"),
        ];
        let r = &reduce(&logs, &names(&["m"]))[0];
        assert_eq!(r.min.as_deref(), Some("-7.53e-05"));
        assert_eq!(r.max.as_deref(), Some("1E0"));
        assert_eq!(r.latest.as_deref(), Some("nan"));
        let logs = [log(Some(1), "m", "text")];
        assert_eq!(
            reduce(&logs, &names(&["m"]))[0],
            summary("m", None, None, Some("text"))
        );
    }

    #[test]
    fn unavailable_marker_is_not_a_value() {
        let logs = [log(None, "loss", UNAVAILABLE)];
        assert_eq!(
            reduce(&logs, &names(&["loss"]))[0],
            summary("loss", None, None, None)
        );
    }

    fn objective(t: ObjectiveType, strategy: MetricStrategy) -> Objective {
        Objective {
            objective_type: t,
            goal: None,
            objective_metric_name: "loss".into(),
            additional_metric_names: vec![],
            metric_strategies: vec![MetricStrategySpec {
                name: "loss".into(),
                value: strategy,
            }],
        }
    }

    #[test]
    fn objective_value_follows_the_strategy() {
        let s = [summary("loss", Some("0.1"), Some("0.9"), Some("0.5"))];
        let cases = [
            (MetricStrategy::Min, Some(0.1)),
            (MetricStrategy::Max, Some(0.9)),
            (MetricStrategy::Latest, Some(0.5)),
        ];
        for (strategy, want) in cases {
            assert_eq!(
                objective_value(&s, &objective(ObjectiveType::Minimize, strategy)),
                want
            );
        }
        // No numeric value: min falls back to latest, which is not a number.
        let s = [summary("loss", None, None, Some("oops"))];
        assert_eq!(
            objective_value(&s, &objective(ObjectiveType::Minimize, MetricStrategy::Min)),
            None
        );
        let s = [summary("loss", None, None, None)];
        assert_eq!(
            objective_value(&s, &objective(ObjectiveType::Maximize, MetricStrategy::Max)),
            None
        );
        assert_eq!(
            objective_value(
                &[],
                &objective(ObjectiveType::Maximize, MetricStrategy::Max)
            ),
            None
        );
    }
}
