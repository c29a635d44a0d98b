//! Kubernetes label and field selectors, as kubectl and the client
//! libraries send them (`labelSelector=app=x,tier in (a, b),!canary`,
//! `fieldSelector=metadata.name=x`).
//!
//! Parsing follows `k8s.io/apimachinery/pkg/labels`: requirements are
//! separated by commas outside parentheses; an error names the character
//! position at fault.

use std::collections::BTreeMap;

/// Why a selector could not be parsed: the message names the position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at position {position} of {input:?}")]
pub struct SelectorError {
    /// What is wrong.
    pub message: String,
    /// Character offset (0-based) of the fault.
    pub position: usize,
    /// The selector as given.
    pub input: String,
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `key=value` / `key==value`.
    Equals(String, String),
    /// `key!=value` (also true when the key is absent).
    NotEquals(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)` (also true when the key is absent).
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Self::Equals(k, v) => labels.get(k) == Some(v),
            Self::NotEquals(k, v) => labels.get(k) != Some(v),
            Self::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Self::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Self::Exists(k) => labels.contains_key(k),
            Self::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// Every requirement must hold.
    pub requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses `text` (already URL-decoded).
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        Parser::new(text).label_selector()
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether this selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

/// A parsed field selector: `field=value`, `field==value`, `field!=value`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// (field, value, equal?) — every one must hold.
    pub terms: Vec<(String, String, bool)>,
}

impl FieldSelector {
    /// Parses `text`; `allowed` lists the fields that may be selected on
    /// (anything else is refused naming the field, as the API server does).
    pub fn parse(text: &str, allowed: &[&str]) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        let mut offset = 0;
        for part in split_top(text) {
            let start = offset;
            offset += part.len() + 1;
            let trimmed = part.trim();
            if trimmed.is_empty() {
                continue;
            }
            let (field, value, equal) = if let Some((f, v)) = trimmed.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = trimmed.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = trimmed.split_once('=') {
                (f, v, true)
            } else {
                return Err(SelectorError {
                    message: format!(
                        "expected FIELD=VALUE, FIELD==VALUE or FIELD!=VALUE, got {trimmed:?}"
                    ),
                    position: start,
                    input: text.to_owned(),
                });
            };
            let field = field.trim();
            if !allowed.contains(&field) {
                return Err(SelectorError {
                    message: format!(
                        "field {field:?} is not a supported field selector (supported: {})",
                        allowed.join(", ")
                    ),
                    position: start,
                    input: text.to_owned(),
                });
            }
            terms.push((field.to_owned(), value.trim().to_owned(), equal));
        }
        Ok(Self { terms })
    }

    /// Whether `get(field)` satisfies every term (a missing field is "").
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.terms.iter().all(|(f, v, eq)| {
            let actual = get(f).unwrap_or_default();
            (actual == *v) == *eq
        })
    }

    /// The value an equality term requires of `field` (to narrow a query).
    pub fn required(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|(f, _, eq)| f == field && *eq)
            .map(|(_, v, _)| v.as_str())
    }
}

/// `text` split on commas outside parentheses.
fn split_top(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

struct Parser<'a> {
    text: &'a str,
    chars: Vec<char>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            chars: text.chars().collect(),
            pos: 0,
        }
    }

    fn error(&self, message: impl Into<String>) -> SelectorError {
        SelectorError {
            message: message.into(),
            position: self.pos,
            input: self.text.to_owned(),
        }
    }

    fn skip_ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, s: &str) -> bool {
        let n = s.chars().count();
        if self.chars.len() >= self.pos + n
            && self.chars[self.pos..self.pos + n]
                .iter()
                .copied()
                .eq(s.chars())
        {
            self.pos += n;
            true
        } else {
            false
        }
    }

    /// A key or value: letters, digits, `-_./` (keys may have a prefix).
    fn word(&mut self) -> String {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn key(&mut self) -> Result<String, SelectorError> {
        self.skip_ws();
        let at = self.pos;
        let k = self.word();
        if k.is_empty() {
            self.pos = at;
            return Err(self.error(match self.peek() {
                Some(c) => format!("expected a label key, found {c:?}"),
                None => "expected a label key, found the end".into(),
            }));
        }
        let name = k.rsplit('/').next().unwrap_or("");
        if name.is_empty() || name.len() > 63 || k.matches('/').count() > 1 {
            self.pos = at;
            return Err(self.error(format!("invalid label key {k:?}")));
        }
        Ok(k)
    }

    fn value(&mut self) -> Result<String, SelectorError> {
        self.skip_ws();
        let at = self.pos;
        let v = self.word();
        if v.len() > 63 || v.contains('/') {
            self.pos = at;
            return Err(self.error(format!(
                "invalid label value {v:?}: at most 63 letters, digits, '-', '_' or '.'"
            )));
        }
        Ok(v)
    }

    fn values(&mut self) -> Result<Vec<String>, SelectorError> {
        self.skip_ws();
        if !self.eat("(") {
            return Err(self.error("expected '(' to open a set of values"));
        }
        let mut out = Vec::new();
        loop {
            out.push(self.value()?);
            self.skip_ws();
            if self.eat(",") {
                continue;
            }
            if self.eat(")") {
                break;
            }
            return Err(self.error("expected ',' or ')' in a set of values"));
        }
        Ok(out)
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        self.skip_ws();
        if self.eat("!") {
            return Ok(Requirement::DoesNotExist(self.key()?));
        }
        let key = self.key()?;
        self.skip_ws();
        if self.eat("==") || self.eat("=") {
            return Ok(Requirement::Equals(key, self.value()?));
        }
        if self.eat("!=") {
            return Ok(Requirement::NotEquals(key, self.value()?));
        }
        let save = self.pos;
        let op = self.word();
        match op.as_str() {
            "in" => Ok(Requirement::In(key, self.values()?)),
            "notin" => Ok(Requirement::NotIn(key, self.values()?)),
            "" => Ok(Requirement::Exists(key)),
            other => {
                self.pos = save;
                Err(self.error(format!("unknown operator {other:?} (=, ==, !=, in, notin)")))
            }
        }
    }

    fn label_selector(&mut self) -> Result<LabelSelector, SelectorError> {
        let mut requirements = Vec::new();
        self.skip_ws();
        if self.peek().is_none() {
            return Ok(LabelSelector::default());
        }
        loop {
            requirements.push(self.requirement()?);
            self.skip_ws();
            match self.peek() {
                None => break,
                Some(',') => self.pos += 1,
                Some(c) => return Err(self.error(format!("expected ',' or the end, found {c:?}"))),
            }
        }
        Ok(LabelSelector { requirements })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selectors_match_as_kubernetes_does() {
        let l = labels(&[
            ("katib.kubeflow.org/experiment", "e1"),
            ("jobset.sigs.k8s.io/replicatedjob-name", "node"),
            ("tier", "web"),
        ]);
        for (sel, want) in [
            ("", true),
            ("katib.kubeflow.org/experiment=e1", true),
            ("katib.kubeflow.org/experiment==e1", true),
            ("katib.kubeflow.org/experiment=e2", false),
            ("tier!=db", true),
            ("missing!=x", true),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            (
                "jobset.sigs.k8s.io/replicatedjob-name in (dataset-initializer, model-initializer, launcher, node)",
                true,
            ),
            ("tier notin (web)", false),
            ("missing notin (web)", true),
            ("tier in (db,cache)", false),
            (" tier = web , katib.kubeflow.org/experiment=e1 ", true),
            ("tier=", false),
        ] {
            let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&l), want, "{sel}");
        }
        assert!(
            LabelSelector::parse("x=")
                .unwrap()
                .matches(&labels(&[("x", "")]))
        );
    }

    #[test]
    fn malformed_selectors_name_the_position() {
        for (sel, pos, what) in [
            ("a in (x", 7, "expected ','"),
            ("a in x", 5, "expected '('"),
            ("=x", 0, "expected a label key"),
            ("a b", 2, "unknown operator"),
            ("a=b c", 4, "expected ',' or the end"),
            ("a/b/c=1", 0, "invalid label key"),
        ] {
            let e = LabelSelector::parse(sel).unwrap_err();
            assert_eq!(e.position, pos, "{sel}: {e}");
            assert!(e.message.contains(what), "{sel}: {e}");
        }
    }

    #[test]
    fn field_selectors() {
        let allowed = ["metadata.name", "metadata.namespace", "involvedObject.uid"];
        let f = FieldSelector::parse("metadata.name=x,metadata.namespace!=kube", &allowed).unwrap();
        let get = |name: &str, ns: &str| {
            let (name, ns) = (name.to_owned(), ns.to_owned());
            move |field: &str| match field {
                "metadata.name" => Some(name.clone()),
                "metadata.namespace" => Some(ns.clone()),
                _ => None,
            }
        };
        assert!(f.matches(get("x", "default")));
        assert!(!f.matches(get("y", "default")));
        assert!(!f.matches(get("x", "kube")));
        assert_eq!(f.required("metadata.name"), Some("x"));
        let e = FieldSelector::parse("metadata.name=x,spec.foo=1", &allowed).unwrap_err();
        assert_eq!(e.position, 16);
        assert!(e.message.contains("spec.foo"), "{e}");
        assert!(FieldSelector::parse("metadata.name", &allowed).is_err());
    }
}
