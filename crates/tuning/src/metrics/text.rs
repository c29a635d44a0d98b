//! Katib's TEXT metrics format: regular expressions over output lines.

use oxflow_core::Timestamp;
use regex::Regex;

use super::{MetricLog, MetricsError};

/// Katib's default filter, verbatim (`pkg/metricscollector/v1beta1/common/const.go`):
/// `name=value` pairs such as `loss=0.3`, `accuracy=.98`, `Score=-7.53e-05`.
pub const DEFAULT_FILTER: &str = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)";

/// Parses output lines into metric logs with Katib's rules.
///
/// A line that does not contain any metric name is skipped; if its first
/// space-separated token is an RFC 3339 timestamp that is the log's time;
/// every match of every filter whose first group (trimmed) is one of the
/// metric names gives a log whose value is the second group (trimmed).
#[derive(Debug, Clone)]
pub struct TextParser {
    metric_names: Vec<String>,
    filters: Vec<Regex>,
}

impl TextParser {
    /// A parser for `metric_names` (the objective metric and the additional
    /// ones) with the experiment's `metricsFormat` filters; none means
    /// Katib's [`DEFAULT_FILTER`].
    pub fn new(metric_names: &[String], metrics_format: &[String]) -> Result<Self, MetricsError> {
        let patterns: Vec<&str> = if metrics_format.is_empty() {
            vec![DEFAULT_FILTER]
        } else {
            metrics_format.iter().map(String::as_str).collect()
        };
        let filters = patterns
            .into_iter()
            .map(|p| {
                compile_filter(p).map_err(|message| MetricsError::Filter {
                    pattern: p.to_owned(),
                    message,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            metric_names: metric_names.to_vec(),
            filters,
        })
    }

    /// The logs in one line of output (without its line break).
    pub fn parse_line(&self, line: &str) -> Vec<MetricLog> {
        if !self.metric_names.iter().any(|m| line.contains(m.as_str())) {
            return Vec::new();
        }
        let time = line
            .split_once(' ')
            .and_then(|(first, _)| Timestamp::parse_rfc3339(first));
        let mut out = Vec::new();
        for filter in &self.filters {
            for caps in filter.captures_iter(line) {
                let (Some(name), Some(value)) = (caps.get(1), caps.get(2)) else {
                    continue;
                };
                let name = name.as_str().trim();
                if self.metric_names.iter().any(|m| m == name) {
                    out.push(MetricLog {
                        time,
                        name: name.to_owned(),
                        value: value.as_str().trim().to_owned(),
                    });
                }
            }
        }
        out
    }

    /// The logs in a whole text, split into lines at `\n` as Katib does.
    pub fn parse(&self, text: &str) -> Vec<MetricLog> {
        text.split('\n').flat_map(|l| self.parse_line(l)).collect()
    }
}

/// Compiles a Katib `metricsFormat` entry: a Go (RE2) regular expression
/// with at least two capture groups (name, value). `Err` says what is wrong.
///
/// Compiled filters are kept (a few dozen at most): every Experiment
/// validated and every trial started would otherwise compile Katib's
/// default filter again, which costs more than the rest of a create.
pub(crate) fn compile_filter(pattern: &str) -> Result<Regex, String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    const KEPT: usize = 64;
    static COMPILED: OnceLock<Mutex<HashMap<String, Regex>>> = OnceLock::new();
    let compiled = COMPILED.get_or_init(Default::default);
    if let Some(re) = compiled
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(pattern)
    {
        return Ok(re.clone());
    }
    let re = Regex::new(&from_go(pattern))
        .map_err(|e| format!("not a valid regular expression: {e}"))?;
    if re.captures_len() < 3 {
        return Err(
            "needs two capture groups: the first matches the metric name, the second its value"
                .to_owned(),
        );
    }
    let mut kept = compiled.lock().unwrap_or_else(|p| p.into_inner());
    if kept.len() >= KEPT {
        kept.clear();
    }
    kept.insert(pattern.to_owned(), re.clone());
    Ok(re)
}

/// Rewrites the few spots where Go's RE2 syntax and the regex crate differ,
/// so that filters written for Katib mean the same here:
/// - a `{` that does not start a counted repetition is a literal in Go (e.g.
///   `{metricName: …}` in Katib's own example) and an error here; `}` too;
/// - inside a class, Go reads `[`, `&&`, `--` and `~~` literally where the
///   regex crate sees nested classes and set operations.
///
/// `\w` and `\d` stay Unicode-aware here where Go's are ASCII; that only
/// widens what matches on non-ASCII output.
fn from_go(p: &str) -> String {
    let c: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '\\' => {
                out.push('\\');
                if let Some(&next) = c.get(i + 1) {
                    out.push(next);
                }
                i += 2;
            }
            '[' => {
                out.push('[');
                i += 1;
                if c.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if c.get(i) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
                while i < c.len() && c[i] != ']' {
                    match c[i] {
                        '\\' => {
                            out.push('\\');
                            if let Some(&next) = c.get(i + 1) {
                                out.push(next);
                            }
                            i += 2;
                        }
                        '[' if c.get(i + 1) == Some(&':') => {
                            // A POSIX class such as [:alpha:], same in both.
                            let rest: String = c[i..].iter().collect();
                            let end = rest.find(":]").map_or(rest.len(), |e| e + 2);
                            out.push_str(&rest[..end]);
                            i += rest[..end].chars().count();
                        }
                        '[' => {
                            out.push_str("\\[");
                            i += 1;
                        }
                        ch @ ('&' | '-' | '~') if c.get(i + 1) == Some(&ch) => {
                            out.push('\\');
                            out.push(ch);
                            i += 1;
                        }
                        ch => {
                            out.push(ch);
                            i += 1;
                        }
                    }
                }
                if i < c.len() {
                    out.push(']');
                    i += 1;
                }
            }
            '{' => match counted_repetition(&c[i..]) {
                Some(len) => {
                    out.extend(&c[i..i + len]);
                    i += len;
                }
                None => {
                    out.push_str("\\{");
                    i += 1;
                }
            },
            '}' => {
                out.push_str("\\}");
                i += 1;
            }
            ch => {
                out.push(ch);
                i += 1;
            }
        }
    }
    out
}

/// Length of `{n}`, `{n,}` or `{n,m}` at the start of `c`, if it is one.
fn counted_repetition(c: &[char]) -> Option<usize> {
    let mut i = 1;
    let digits = |i: &mut usize| {
        let start = *i;
        while c.get(*i).is_some_and(char::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return None;
    }
    if c.get(i) == Some(&',') {
        i += 1;
        digits(&mut i);
    }
    (c.get(i) == Some(&'}')).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser(names: &[&str], formats: &[&str]) -> TextParser {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let formats: Vec<String> = formats.iter().map(|s| s.to_string()).collect();
        TextParser::new(&names, &formats).unwrap()
    }

    fn values(logs: &[MetricLog]) -> Vec<(&str, &str)> {
        logs.iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect()
    }

    #[test]
    fn default_filter_reads_katibs_examples() {
        let p = parser(&["loss", "accuracy", "Score"], &[]);
        let cases: [(&str, &[(&str, &str)]); 8] = [
            ("loss=0.3", &[("loss", "0.3")]),
            ("accuracy=.98", &[("accuracy", ".98")]),
            ("Score=-7.53e-05", &[("Score", "-7.53e-05")]),
            ("Score=1E0", &[("Score", "1E0")]),
            (
                "epoch 1: loss = 0.25 accuracy=0.9",
                &[("loss", "0.25"), ("accuracy", "0.9")],
            ),
            // Names must match exactly: `val-loss` is another metric.
            ("val-loss=0.4 loss=0.5", &[("loss", "0.5")]),
            // A line without any metric name is skipped before matching.
            ("lr=0.1", &[]),
            // The value group may be empty, as in Katib.
            ("loss=nan", &[("loss", "")]),
        ];
        for (line, want) in cases {
            assert_eq!(values(&p.parse_line(line)), want.to_vec(), "{line}");
        }
    }

    #[test]
    fn leading_rfc3339_token_is_the_time() {
        let p = parser(&["loss"], &[]);
        let logs = p.parse_line("2024-05-01T10:00:00.5Z loss=0.3");
        assert_eq!(
            logs[0].time,
            Timestamp::parse_rfc3339("2024-05-01T10:00:00.5Z")
        );
        assert_eq!(logs[0].time.map(|t| t.millis()), Some(1_714_557_600_500));
        let logs = p.parse_line("2024-05-01T12:00:00+02:00 loss=0.3");
        assert_eq!(logs[0].time.map(|t| t.millis()), Some(1_714_557_600_000));
        assert_eq!(p.parse_line("Epoch 1 loss=0.3")[0].time, None);
        assert_eq!(p.parse_line("loss=0.3")[0].time, None);
    }

    #[test]
    fn custom_formats_from_katib_examples() {
        // file-metrics-collector.yaml
        let p = parser(
            &["accuracy", "loss"],
            &[r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}"],
        );
        let logs = p.parse_line("{metricName: accuracy, metricValue: 0.8612}");
        assert_eq!(values(&logs), [("accuracy", "0.8612")]);
        let logs = p.parse_line("2021-12-02T14:27:51Z {metricName: loss, metricValue: -1.25}");
        assert_eq!(values(&logs), [("loss", "-1.25")]);
        assert!(logs[0].time.is_some());
        // darts-cpu.yaml: a non-numeric value.
        let p = parser(&["Best-Genotype"], &[r"([\w-]+)=(Genotype.*)"]);
        let logs = p.parse_line("Best-Genotype=Genotype(normal=[[('max_pooling_3x3',0)]])");
        assert_eq!(
            values(&logs),
            [(
                "Best-Genotype",
                "Genotype(normal=[[('max_pooling_3x3',0)]])"
            )]
        );
        // Several filters: every match of every filter counts.
        let p = parser(&["loss", "acc"], &[r"(loss):\s*(\S+)", r"(acc) is (\S+)"]);
        assert_eq!(
            values(&p.parse_line("loss: 0.1, acc is 0.9")),
            [("loss", "0.1,"), ("acc", "0.9")]
        );
    }

    #[test]
    fn parse_splits_lines() {
        let p = parser(&["loss"], &[]);
        let logs = p.parse("loss=1\nnothing\r\nloss=2\r\n");
        assert_eq!(values(&logs), [("loss", "1"), ("loss", "2")]);
    }

    #[test]
    fn filters_need_two_groups_and_valid_syntax() {
        assert!(compile_filter(DEFAULT_FILTER).is_ok());
        assert!(
            compile_filter(r"(\w+)=\S+")
                .unwrap_err()
                .contains("two capture groups")
        );
        assert!(compile_filter(r"(?:a)(b)").is_err());
        assert!(
            compile_filter(r"(\w+)=(\d+")
                .unwrap_err()
                .contains("not a valid")
        );
        let names = vec!["m".to_owned()];
        let e = TextParser::new(&names, &["(x".to_owned()]).unwrap_err();
        assert!(matches!(e, MetricsError::Filter { .. }), "{e}");
    }

    #[test]
    fn go_syntax_is_translated() {
        let cases = [
            (r"{metricName: (\w+)}", r"\{metricName: (\w+)\}"),
            (r"a{2}b{1,}c{1,3}", r"a{2}b{1,}c{1,3}"),
            (r"x{y}", r"x\{y\}"),
            (r"[a[b]", r"[a\[b]"),
            (r"[[:alpha:]-]", r"[[:alpha:]-]"),
            (r"[]a]", r"[\]a]"),
            (r"[a&&b]", r"[a\&&b]"),
            (r"\{(\w+)\}", r"\{(\w+)\}"),
        ];
        for (go, rust) in cases {
            assert_eq!(from_go(go), rust, "{go}");
            assert!(Regex::new(rust).is_ok(), "{rust}");
        }
    }
}
