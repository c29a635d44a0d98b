//! Katib's JSON metrics format: one JSON object per line.

use oxflow_core::Timestamp;
use serde_json::Value;

use super::{MetricLog, MetricsError};

/// The key Katib reads a line's time from.
pub const TIMESTAMP_KEY: &str = "timestamp";

/// Parses JSON lines such as `{"loss": "0.3", "timestamp": 1700000000.5}`.
///
/// Katib takes a metric only when its value is a JSON string; Oxflow also
/// takes JSON numbers (`{"loss": 0.3}`), which is what most training code
/// writes. `timestamp` may be an RFC 3339 string or epoch seconds.
#[derive(Debug, Clone)]
pub struct JsonParser {
    metric_names: Vec<String>,
}

impl JsonParser {
    /// A parser for `metric_names` (the objective metric first).
    pub fn new(metric_names: &[String]) -> Self {
        Self {
            metric_names: metric_names.to_vec(),
        }
    }

    /// The logs of one line. Blank lines give none; a line that is not a
    /// JSON object is an error, as in Katib, naming the line.
    pub fn parse_line(&self, line: &str) -> Result<Vec<MetricLog>, MetricsError> {
        if line.trim().is_empty() {
            return Ok(Vec::new());
        }
        let bad = |message: String| MetricsError::Json {
            line: line.chars().take(200).collect(),
            message,
        };
        let obj = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(o)) => o,
            Ok(_) => return Err(bad("expected an object".to_owned())),
            Err(e) => return Err(bad(e.to_string())),
        };
        let time = obj.get(TIMESTAMP_KEY).and_then(timestamp);
        Ok(self
            .metric_names
            .iter()
            .filter_map(|m| {
                let value = match obj.get(m)? {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => return None,
                };
                Some(MetricLog {
                    time,
                    name: m.clone(),
                    value,
                })
            })
            .collect())
    }

    /// The logs of a whole file, line by line; the first bad line fails it.
    pub fn parse(&self, text: &str) -> Result<Vec<MetricLog>, MetricsError> {
        let mut out = Vec::new();
        for line in text.split('\n') {
            out.extend(self.parse_line(line)?);
        }
        Ok(out)
    }
}

/// Katib's `parseTimestamp`: an RFC 3339 string or float epoch seconds;
/// anything else means "no time". (Katib turns the fraction's digits into
/// nanoseconds, so `.5` becomes 5 ns; Oxflow reads it as half a second.)
fn timestamp(v: &Value) -> Option<Timestamp> {
    match v {
        Value::String(s) => Timestamp::parse_rfc3339(s),
        Value::Number(n) => {
            let secs = n.as_f64()?;
            (secs.is_finite() && secs.abs() < 1e14)
                .then(|| Timestamp((secs * 1000.0).round() as i64))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser() -> JsonParser {
        JsonParser::new(&["accuracy".to_owned(), "loss".to_owned()])
    }

    fn values(logs: &[MetricLog]) -> Vec<(&str, &str)> {
        logs.iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect()
    }

    #[test]
    fn string_values_as_katib_and_numbers_as_an_extension() {
        let p = parser();
        let logs = p
            .parse_line(r#"{"checkpoint_path": "", "global_step": "0", "loss": "0.22082142531871796", "timestamp": 1638422847.28721, "trial": "0"}"#)
            .unwrap();
        assert_eq!(values(&logs), [("loss", "0.22082142531871796")]);
        assert_eq!(logs[0].time, Some(Timestamp(1_638_422_847_287)));
        let logs = p
            .parse_line(
                r#"{"accuracy": 0.98, "loss": 3, "timestamp": "2021-12-02T05:27:27.000028Z"}"#,
            )
            .unwrap();
        assert_eq!(values(&logs), [("accuracy", "0.98"), ("loss", "3")]);
        assert_eq!(
            logs[0].time,
            Timestamp::parse_rfc3339("2021-12-02T05:27:27Z")
        );
        // Other JSON types are not metric values.
        let logs = p.parse_line(r#"{"accuracy": true, "loss": null}"#).unwrap();
        assert!(logs.is_empty());
    }

    #[test]
    fn timestamps() {
        let p = parser();
        let t = |line: &str| p.parse_line(line).unwrap()[0].time;
        assert_eq!(t(r#"{"loss": "1"}"#), None);
        assert_eq!(t(r#"{"loss": "1", "timestamp": "yesterday"}"#), None);
        assert_eq!(
            t(r#"{"loss": "1", "timestamp": 12}"#),
            Some(Timestamp(12_000))
        );
        assert_eq!(
            t(r#"{"loss": "1", "timestamp": 1.5}"#),
            Some(Timestamp(1_500))
        );
    }

    #[test]
    fn bad_lines_are_errors_and_blank_lines_are_skipped() {
        let p = parser();
        assert!(p.parse_line("").unwrap().is_empty());
        assert!(p.parse_line("   ").unwrap().is_empty());
        let e = p.parse_line("loss=0.3").unwrap_err();
        assert!(e.to_string().contains("loss=0.3"), "{e}");
        assert!(p.parse_line("[1, 2]").is_err());
        let logs = p.parse("{\"loss\": \"1\"}\n\n{\"loss\": \"2\"}\n").unwrap();
        assert_eq!(values(&logs), [("loss", "1"), ("loss", "2")]);
        assert!(p.parse("{\"loss\": \"1\"}\nnot json\n").is_err());
    }
}
