//! What every parser of a Kubeflow resource file shares: Katib's
//! Experiment (`oxflow-tuning`), KServe's resources (`oxflow-serving`) and
//! the ones to come.
//!
//! A parser reads the text with [`read_documents`] or [`read_document`]
//! (YAML or JSON, size-limited, errors naming the line), deserializes each
//! document into its wire types with [`from_value`] (errors naming the field
//! path), and reports every problem as a [`SpecError`]. The wire types use
//! [`Object`] and [`ObjectMeta`] for the Kubernetes envelope and [`Scalar`]
//! or [`ScalarOrBool`] for strings that YAML authors write as bare numbers.
//!
//! Parsing only: the caller hands in text or an already parsed value.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{DeserializeOwned, Unexpected};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Namespace;

/// The largest object a document may hold, as JSON: what Kubernetes'
/// etcd accepts in one request (1.5 MiB). Every listing returns whole
/// objects, so one oversized object would weigh on every list.
pub const MAX_OBJECT_BYTES: usize = 1536 * 1024;

/// The most bytes `metadata.annotations` may hold, keys and values
/// together (Kubernetes' `TotalAnnotationSizeLimitB`).
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// The longest label value, and the longest name part of a label key
/// (Kubernetes' qualified names).
pub const MAX_LABEL_CHARS: usize = 63;

/// The longest prefix of a label key (`example.com/` in
/// `example.com/tier`): a DNS subdomain.
pub const MAX_LABEL_PREFIX_CHARS: usize = 253;

/// A field path (`spec.parameters[1].feasibleSpace.min`) and what is wrong
/// there, phrased so that the user knows what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecError {
    /// Dotted path into the resource, prefixed with `[document N]` when the
    /// file holds several documents (see [`SpecError::in_document`]); empty
    /// for the input as a whole.
    pub path: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl SpecError {
    /// An error at `path` (empty for the whole document).
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same error located in the `number`th (1-based) document of a
    /// stream: `[document 2].spec.predictor`, or `[document 2]` for an error
    /// about the document as a whole.
    pub fn in_document(self, number: usize) -> Self {
        let prefix = format!("[document {number}]");
        let path = if self.path.is_empty() {
            prefix
        } else {
            format!("{prefix}.{}", self.path)
        };
        Self::new(path, self.message)
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// How [`read_documents`] and [`read_document`] read text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions<'a> {
    /// Inputs longer than this many bytes are refused before parsing.
    pub max_bytes: usize,
    /// What the size error calls the input: "the {input} is N bytes".
    pub input: &'a str,
    /// The YAML parser's limits on aliases, documents and nesting.
    pub yaml_budget: YamlBudget,
}

/// Limits of the YAML parser beyond the input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YamlBudget {
    /// serde-saphyr's defaults (in 2.2: 50,000 aliases, 1,024 documents,
    /// nesting 64, 1,000,000 events replayed through aliases).
    Library,
    /// Caps far below what a legitimate resource needs (10,000 aliases,
    /// 1,000 documents, nesting 64, 200,000 events replayed through
    /// aliases), so that an anchor/alias "billion laughs" fails fast.
    Strict,
}

/// What a single-document input must hold, for the messages of
/// [`read_document`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected<'a> {
    /// The kind: "put exactly one {kind} in the file".
    pub kind: &'a str,
    /// The kind with its article and `apiVersion`: "the document is empty;
    /// expected {description}".
    pub description: &'a str,
}

/// Parses the text into its non-empty documents, in order: text that starts
/// with `{` and parses as JSON is one document; anything else is read as a
/// YAML stream (documents separated by `---`). Oversized input is refused
/// before parsing; a syntax error names its line.
pub fn read_documents(text: &str, options: &ReadOptions<'_>) -> Result<Vec<Value>, SpecError> {
    if text.len() > options.max_bytes {
        return Err(SpecError::new(
            "",
            format!(
                "the {} is {} bytes; the limit is {}",
                options.input,
                text.len(),
                options.max_bytes
            ),
        ));
    }
    if text.trim_start().starts_with('{')
        && let Ok(v) = serde_json::from_str::<Value>(text)
    {
        check_object_size(&v)?;
        return Ok(vec![v]);
    }
    // Only `true`/`false` are booleans, so that a categorical value or an
    // annotation such as `y` or `no` stays a string (as Kubernetes reads it).
    let mut opts = serde_saphyr::options! { strict_booleans: true };
    if options.yaml_budget == YamlBudget::Strict {
        opts.budget = serde_saphyr::budget! {
            max_aliases: 10_000,
            max_documents: 1_000,
            max_depth: 64,
        };
        opts.alias_limits = serde_saphyr::alias_limits! {
            max_total_replayed_events: 200_000,
        };
    }
    let docs: Vec<Value> = serde_saphyr::from_multiple_with_options::<Value>(text, opts)
        .map_err(|e| SpecError::new("", format!("not valid YAML or JSON: {e}")))?
        .into_iter()
        .filter(|d| !d.is_null())
        .collect();
    let several = docs.len() > 1;
    for (i, doc) in docs.iter().enumerate() {
        check_object_size(doc).map_err(|e| if several { e.in_document(i + 1) } else { e })?;
    }
    Ok(docs)
}

/// The length of `value` serialised as JSON, counted without building the
/// text; `None` when it cannot be serialised (a map with non-string keys).
pub fn json_len<T: serde::Serialize + ?Sized>(value: &T) -> Option<usize> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    serde_json::to_writer(&mut n, value).ok().map(|()| n.0)
}

/// Refuses an object larger than [`MAX_OBJECT_BYTES`] as JSON.
pub fn check_object_size(doc: &Value) -> Result<(), SpecError> {
    // A `Value` always serialises.
    let n = json_len(doc).unwrap_or(0);
    if n > MAX_OBJECT_BYTES {
        return Err(SpecError::new(
            "",
            format!(
                "the object is {} bytes as JSON; the limit is {MAX_OBJECT_BYTES} bytes \
                 (Kubernetes' object size limit)",
                n
            ),
        ));
    }
    Ok(())
}

/// Like [`read_documents`] for input that must hold exactly one document.
pub fn read_document(
    text: &str,
    options: &ReadOptions<'_>,
    expected: &Expected<'_>,
) -> Result<Value, SpecError> {
    let mut docs = read_documents(text, options)?;
    match docs.len() {
        0 => Err(SpecError::new(
            "",
            format!("the document is empty; expected {}", expected.description),
        )),
        1 => Ok(docs.remove(0)),
        n => Err(SpecError::new(
            "",
            format!(
                "found {n} YAML documents; put exactly one {} in the file",
                expected.kind
            ),
        )),
    }
}

/// How [`from_value`] words an unknown field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownFields<'a> {
    /// serde's message as it is: "unknown field `x`, expected one of `a`, `b`".
    Listed,
    /// The closest known field as a suggestion ("unknown field `minReplica`;
    /// did you mean `minReplicas`?"); without a close one, serde's message
    /// when it lists at most 12 fields, or else a pointer to `api`'s
    /// reference instead of dozens of Kubernetes field names.
    Suggested {
        /// Whose API reference to check ("KServe").
        api: &'a str,
    },
}

/// Reads `doc` into the wire type `T`, naming the field path of any type
/// error or unknown field (`spec.parameters[1].feasibleSpace.mini`).
pub fn from_value<T: DeserializeOwned>(
    doc: Value,
    unknown: UnknownFields<'_>,
) -> Result<T, SpecError> {
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = e.into_inner().to_string();
        let message = match unknown {
            UnknownFields::Listed => message,
            UnknownFields::Suggested { api } => unknown_field_hint(message, api),
        };
        SpecError::new(path, message)
    })
}

/// Rewrites serde's "unknown field `x`, expected one of …" (which lists
/// dozens of Kubernetes fields for a component) into a suggestion of the
/// closest known field, or a short list.
fn unknown_field_hint(message: String, api: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message;
    };
    let Some((field, expected)) = rest.split_once('`') else {
        return message;
    };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let closest = candidates
        .iter()
        .map(|c| {
            (
                edit_distance(&field.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                *c,
            )
        })
        .min();
    match closest {
        Some((d, c)) if d <= 2.max(field.len() / 4) => {
            format!("unknown field `{field}`; did you mean `{c}`?")
        }
        _ if candidates.len() <= 12 => message,
        _ => format!(
            "unknown field `{field}` ({api} would drop it silently); check the spelling against {api}'s API reference"
        ),
    }
}

/// Levenshtein distance between two short strings.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// Whether `name` matches `^[a-z]([-a-z0-9]*[a-z0-9])?$`, the pattern of a
/// DNS-1035 label that Katib's experiment names and KServe's
/// InferenceService names follow. Their length limits differ (40 and 63),
/// so the caller checks the length.
pub fn matches_dns1035_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && !name.ends_with('-')
}

/// A Kubernetes object as written: the envelope every resource shares
/// around its kind's `spec`. Unknown fields are refused (see
/// [`from_value`]); `apiVersion` and `kind` stay plain strings so that the
/// parser can say which values it accepts.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Object<S> {
    /// `apiVersion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `kind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `metadata`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMeta>,
    /// `spec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<S>,
    /// `status`: accepted by the parser only to refuse it with a clear
    /// message (see [`Object::refuse_status`]); never written.
    #[serde(default, skip_serializing)]
    pub status: Option<Value>,
}

impl<S> Object<S> {
    /// An object to write: `status` is never written.
    pub fn new(api_version: &str, kind: &str, metadata: ObjectMeta, spec: S) -> Self {
        Self {
            api_version: Some(api_version.to_owned()),
            kind: Some(kind.to_owned()),
            metadata: Some(metadata),
            spec: Some(spec),
            status: None,
        }
    }

    /// Refuses a `status` in user input; `controller` names who writes it
    /// ("is written by the {controller}").
    pub fn refuse_status(&self, controller: &str) -> Result<(), SpecError> {
        match self.status {
            Some(_) => Err(SpecError::new(
                "status",
                format!("is written by the {controller}; remove it from the file"),
            )),
            None => Ok(()),
        }
    }
}

/// `metadata` of a Kubernetes object as written; other metadata fields
/// (`uid`, `generateName`, …) are refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectMeta {
    /// `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `namespace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `labels`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `annotations`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl ObjectMeta {
    /// Metadata to write; empty maps are left out.
    pub fn new(
        name: &str,
        namespace: Option<&str>,
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> Self {
        let non_empty = |m: &BTreeMap<String, String>| (!m.is_empty()).then(|| m.clone());
        Self {
            name: Some(name.to_owned()),
            namespace: namespace.map(str::to_owned),
            labels: non_empty(labels),
            annotations: non_empty(annotations),
        }
    }

    /// Checks the namespace (errors at `metadata.namespace`) and the sizes
    /// of labels and annotations (Kubernetes' limits), and fills in the
    /// defaults. The name is left to the caller, since each kind has its
    /// own rule for it.
    pub fn check(self) -> Result<Metadata, SpecError> {
        if let Some(labels) = &self.labels {
            check_labels(labels)?;
        }
        if let Some(annotations) = &self.annotations {
            let n: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
            if n > MAX_ANNOTATIONS_BYTES {
                return Err(SpecError::new(
                    "metadata.annotations",
                    format!(
                        "the annotations are {n} bytes, keys and values together; the limit \
                         is {MAX_ANNOTATIONS_BYTES} bytes"
                    ),
                ));
            }
        }
        let namespace = match self.namespace {
            None => None,
            Some(ns) => Some(
                Namespace::new(ns)
                    .map_err(|e| SpecError::new("metadata.namespace", e.to_string()))?,
            ),
        };
        Ok(Metadata {
            name: self.name.filter(|n| !n.is_empty()),
            namespace,
            labels: self.labels.unwrap_or_default(),
            annotations: self.annotations.unwrap_or_default(),
        })
    }
}

/// Kubernetes' length limits on label keys (an optional DNS-subdomain
/// prefix and `/`, then a name) and values.
fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), SpecError> {
    for (key, value) in labels {
        let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
        let chars = |s: &str| s.chars().count();
        if chars(prefix) > MAX_LABEL_PREFIX_CHARS
            || name.is_empty()
            || chars(name) > MAX_LABEL_CHARS
        {
            return Err(SpecError::new(
                "metadata.labels",
                format!(
                    "a key of {} characters is not a label key: at most \
                     {MAX_LABEL_PREFIX_CHARS} characters of prefix and '/', then a name of 1 to \
                     {MAX_LABEL_CHARS}",
                    chars(key)
                ),
            ));
        }
        if chars(value) > MAX_LABEL_CHARS {
            return Err(SpecError::new(
                format!("metadata.labels.{key}"),
                format!(
                    "{} characters is more than the limit of {MAX_LABEL_CHARS} for a label value",
                    chars(value)
                ),
            ));
        }
    }
    Ok(())
}

/// [`ObjectMeta`] after [`ObjectMeta::check`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// `name`, unchecked; `None` when absent or empty.
    pub name: Option<String>,
    /// `namespace`, when the file names one.
    pub namespace: Option<Namespace>,
    /// `labels`.
    pub labels: BTreeMap<String, String>,
    /// `annotations`.
    pub annotations: BTreeMap<String, String>,
}

/// A value the resource declares as a string (or a Kubernetes
/// `int-or-string` such as a quantity) that YAML authors often write as a
/// bare number (`cpu: 1`, `version: 1`, `min: 0.01`). Booleans are refused;
/// see [`ScalarOrBool`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Scalar(pub String);

/// Like [`Scalar`], and a boolean is read as `"true"` or `"false"` too
/// (Katib's categorical values and algorithm settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ScalarOrBool(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor { booleans: false })
            .map(Scalar)
    }
}

impl<'de> Deserialize<'de> for ScalarOrBool {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor { booleans: true })
            .map(ScalarOrBool)
    }
}

/// Reads a string or a number (and a boolean when `booleans`) as text.
/// Numbers are written as Rust prints them (`0.25`, `1e-7`); non-finite
/// ones are refused (a `serde_json::Value`, which every parser reads
/// through, cannot hold them anyway).
struct ScalarVisitor {
    booleans: bool,
}

impl serde::de::Visitor<'_> for ScalarVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string or a number")
    }

    fn visit_str<E>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_i64<E>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
        if v.is_finite() {
            Ok(format!("{v:?}"))
        } else {
            Err(E::custom("expected a finite number"))
        }
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<String, E> {
        if self.booleans {
            Ok(v.to_string())
        } else {
            Err(E::invalid_type(Unexpected::Bool(v), &self))
        }
    }
}

/// Helpers for the unit tests of spec parsers: edits of a parsed document
/// by JSON pointer (`/spec/parameters/0/name`) and an assertion on a
/// [`SpecError`]. Like any test helper they panic on misuse; nothing else
/// calls them.
pub mod testing {
    use serde_json::{Map, Value};

    use super::SpecError;

    /// The value at `pointer` in `v`, creating objects on the way (a scalar
    /// or `null` on the way becomes an empty object). Array indices must
    /// exist.
    pub fn at<'a>(v: &'a mut Value, pointer: &str) -> &'a mut Value {
        let mut cur = v;
        for part in pointer.split('/').skip(1) {
            if !cur.is_object() && !cur.is_array() {
                *cur = Value::Object(Map::new());
            }
            cur = match cur {
                Value::Array(a) => {
                    let len = a.len();
                    match part.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                        Some(item) => item,
                        None => panic!("{pointer}: no item {part:?} in an array of {len}"),
                    }
                }
                Value::Object(m) => m.entry(part).or_insert(Value::Null),
                _ => unreachable!("made an object above"),
            };
        }
        cur
    }

    /// An edit that sets `pointer` to `value`.
    pub fn set(pointer: &str, value: Value) -> impl FnOnce(&mut Value) + use<> {
        let pointer = pointer.to_owned();
        move |v| *at(v, &pointer) = value
    }

    /// An edit that removes the object key or array item at `pointer`.
    pub fn remove(pointer: &str) -> impl FnOnce(&mut Value) + use<> {
        let pointer = pointer.to_owned();
        move |v| {
            let Some((parent, key)) = pointer.rsplit_once('/') else {
                panic!("{pointer:?} is not a JSON pointer");
            };
            match at(v, parent) {
                Value::Object(m) => {
                    m.remove(key);
                }
                Value::Array(a) => match key.parse::<usize>() {
                    Ok(i) if i < a.len() => {
                        a.remove(i);
                    }
                    _ => panic!("nothing at {pointer}"),
                },
                _ => panic!("nothing at {pointer}"),
            }
        }
    }

    /// Asserts that `result` failed at `path` with a message containing
    /// `msg`.
    #[track_caller]
    pub fn assert_error<T>(result: Result<T, SpecError>, path: &str, msg: &str) {
        match result {
            Ok(_) => panic!("expected an error at {path}"),
            Err(e) => {
                assert_eq!(e.path, path, "wrong path for error: {e}");
                assert!(
                    e.message.contains(msg),
                    "message {:?} lacks {msg:?}",
                    e.message
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::testing::{assert_error, at, remove, set};
    use super::*;

    const STRICT: ReadOptions<'static> = ReadOptions {
        max_bytes: 64,
        input: "input",
        yaml_budget: YamlBudget::Strict,
    };

    #[test]
    fn errors_display_their_path() {
        let e = SpecError::new("spec.parameters[1].feasibleSpace.min", "bad");
        assert_eq!(e.to_string(), "spec.parameters[1].feasibleSpace.min: bad");
        assert_eq!(SpecError::new("", "bad").to_string(), "bad");
        assert_eq!(
            SpecError::new("spec", "bad").in_document(2).to_string(),
            "[document 2].spec: bad"
        );
        assert_eq!(
            SpecError::new("", "bad").in_document(1).path,
            "[document 1]"
        );
    }

    #[test]
    fn documents_are_json_or_yaml_without_empty_ones() {
        let read = |text| read_documents(text, &STRICT);
        assert_eq!(read(r#"{"a": 1}"#).unwrap(), [json!({"a": 1})]);
        assert_eq!(
            read("a: 1\n---\n---\nb: yes\n").unwrap(),
            [json!({"a": 1}), json!({"b": "yes"})]
        );
        assert_eq!(read("").unwrap(), Vec::<Value>::new());
        // Invalid JSON falls back to YAML, which reports the line.
        let e = read("{\"a\": [1,\n").unwrap_err();
        assert!(e.message.starts_with("not valid YAML or JSON"), "{e}");
        assert!(e.message.contains("line"), "{e}");
        let e = read(&"x".repeat(65)).unwrap_err();
        assert_eq!(e.message, "the input is 65 bytes; the limit is 64");
    }

    #[test]
    fn objects_labels_and_annotations_are_bounded_as_kubernetes_bounds_them() {
        let roomy = ReadOptions {
            max_bytes: 8 * MAX_OBJECT_BYTES,
            input: "input",
            yaml_budget: YamlBudget::Strict,
        };
        // (`.err()`, not `unwrap_err`: a failure must not print 1.5 MB.)
        let refused = |text: &str| read_documents(text, &roomy).expect_err("refused");
        let big = json!({"spec": {"x": "y".repeat(MAX_OBJECT_BYTES)}}).to_string();
        let e = refused(&big);
        assert_eq!(e.path, "");
        assert!(
            e.message.ends_with(&format!(
                "bytes as JSON; the limit is {MAX_OBJECT_BYTES} bytes (Kubernetes' object size limit)"
            )),
            "{e}"
        );
        let stream = format!("a: 1\n---\nb: {}\n", "y".repeat(MAX_OBJECT_BYTES));
        assert_eq!(
            read_documents(&stream, &roomy).unwrap_err().path,
            "[document 2]"
        );
        let fits = json!({"x": "y".repeat(MAX_OBJECT_BYTES - 100)}).to_string();
        assert!(read_documents(&fits, &roomy).is_ok());

        let meta = |labels: &[(&str, &str)], annotations: &[(&str, String)]| ObjectMeta {
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            ),
            ..Default::default()
        };
        let ok = meta(
            &[
                ("app", &"v".repeat(63)),
                (&format!("{}/tier", "d".repeat(253)), "web"),
            ],
            &[("note", "n".repeat(MAX_ANNOTATIONS_BYTES - 4))],
        );
        assert!(ok.check().is_ok());
        let e = meta(&[], &[("note", "n".repeat(MAX_ANNOTATIONS_BYTES - 3))])
            .check()
            .unwrap_err();
        assert_eq!(e.path, "metadata.annotations");
        assert_eq!(
            e.message,
            "the annotations are 262145 bytes, keys and values together; the limit is 262144 bytes"
        );
        let e = meta(&[("app", &"v".repeat(64))], &[]).check().unwrap_err();
        assert_eq!(e.path, "metadata.labels.app");
        assert_eq!(
            e.message,
            "64 characters is more than the limit of 63 for a label value"
        );
        for key in [
            "k".repeat(64),
            format!("{}/k", "d".repeat(254)),
            "example.com/".into(),
        ] {
            let e = meta(&[(&key, "v")], &[]).check().unwrap_err();
            assert_eq!(e.path, "metadata.labels");
            assert!(e.message.contains("is not a label key"), "{e}");
        }
    }

    #[test]
    fn one_document_is_required_when_asked() {
        let expected = Expected {
            kind: "Thing",
            description: "a Thing (kind: Thing)",
        };
        let one = |text| read_document(text, &STRICT, &expected);
        assert_eq!(one("a: 1").unwrap(), json!({"a": 1}));
        assert_eq!(
            one("").unwrap_err().message,
            "the document is empty; expected a Thing (kind: Thing)"
        );
        assert_eq!(
            one("a: 1\n---\nb: 2").unwrap_err().message,
            "found 2 YAML documents; put exactly one Thing in the file"
        );
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Wire {
        #[serde(default)]
        min_replicas: Option<i64>,
        #[serde(default)]
        items: Vec<Scalar>,
        #[serde(default)]
        loose: Vec<ScalarOrBool>,
    }

    #[test]
    fn field_paths_and_suggestions() {
        let listed = from_value::<Wire>(json!({"minReplica": 1}), UnknownFields::Listed);
        assert_error(
            listed,
            "minReplica",
            "unknown field `minReplica`, expected one of",
        );
        let suggested = UnknownFields::Suggested { api: "KServe" };
        assert_error(
            from_value::<Wire>(json!({"minReplica": 1}), suggested),
            "minReplica",
            "unknown field `minReplica`; did you mean `minReplicas`?",
        );
        assert_error(
            from_value::<Wire>(json!({"zzzzzzzz": 1}), suggested),
            "zzzzzzzz",
            "expected one of `minReplicas`, `items`, `loose`",
        );
        assert_error(
            from_value::<Wire>(json!({"items": ["a", [1]]}), suggested),
            "items[1]",
            "expected a string or a number",
        );
        let w: Wire = from_value(json!({}), suggested).unwrap();
        assert!(w.items.is_empty());
        let hint = unknown_field_hint(
            format!(
                "unknown field `zzzzzzzz`, expected one of {}",
                (0..13)
                    .map(|i| format!("`f{i}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "KServe",
        );
        assert_eq!(
            hint,
            "unknown field `zzzzzzzz` (KServe would drop it silently); check the spelling against KServe's API reference"
        );
    }

    #[test]
    fn scalars_read_numbers_as_text() {
        let w: Wire = from_value(
            json!({"items": ["a", 1, -2, 0.25], "loose": [true, 3]}),
            UnknownFields::Listed,
        )
        .unwrap();
        let items: Vec<&str> = w.items.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(items, ["a", "1", "-2", "0.25"]);
        let loose: Vec<&str> = w.loose.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(loose, ["true", "3"]);
        assert_error(
            from_value::<Wire>(json!({"items": [false]}), UnknownFields::Listed),
            "items[0]",
            "invalid type: boolean `false`, expected a string or a number",
        );
        assert_eq!(
            serde_json::to_value(Scalar("1".to_owned())).unwrap(),
            json!("1")
        );
    }

    #[test]
    fn objects_and_metadata() {
        let o: Object<Value> = from_value(
            json!({"apiVersion": "v1", "metadata": {"name": "", "namespace": "team-a"}, "status": {}}),
            UnknownFields::Listed,
        )
        .unwrap();
        assert_error(o.refuse_status("controller"), "status", "remove it");
        let meta = o.metadata.unwrap_or_default().check().unwrap();
        assert_eq!(meta.name, None);
        assert_eq!(
            meta.namespace.map(|n| n.to_string()).as_deref(),
            Some("team-a")
        );
        let bad = ObjectMeta {
            namespace: Some("Team".to_owned()),
            ..ObjectMeta::default()
        };
        assert_error(bad.check(), "metadata.namespace", "invalid namespace");
        let labels = BTreeMap::from([("a".to_owned(), "b".to_owned())]);
        let written = Object::new(
            "v1",
            "Thing",
            ObjectMeta::new("x", None, &labels, &BTreeMap::new()),
            json!({}),
        );
        assert_eq!(
            serde_json::to_value(written).unwrap(),
            json!({"apiVersion": "v1", "kind": "Thing", "metadata": {"name": "x", "labels": {"a": "b"}}, "spec": {}})
        );
    }

    #[test]
    fn dns1035_labels() {
        for ok in ["a", "my-name", "abc-123"] {
            assert!(matches_dns1035_label(ok), "{ok}");
        }
        for bad in ["", "1a", "-a", "a-", "My", "a_b", "a.b"] {
            assert!(!matches_dns1035_label(bad), "{bad}");
        }
    }

    #[test]
    fn pointer_edits() {
        let mut v = json!({"a": [1, {"b": 2}], "c": 3});
        set("/a/1/b", json!(4))(&mut v);
        set("/c/d", json!(5))(&mut v);
        set("/e/f", json!(6))(&mut v);
        remove("/a/0")(&mut v);
        assert_eq!(v, json!({"a": [{"b": 4}], "c": {"d": 5}, "e": {"f": 6}}));
        assert_eq!(*at(&mut v, "/a/0/b"), json!(4));
    }
}
