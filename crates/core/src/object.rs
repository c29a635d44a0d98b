//! The Kubernetes object model every Oxflow kind shares: metadata,
//! conditions, the description of a kind (its registry entry) and the
//! JSONPath subset printer columns use.
//!
//! Objects travel as `serde_json::Value` shaped `{apiVersion, kind,
//! metadata, spec, status}` (or a built-in kind's own top-level fields) so
//! that labels, annotations and fields a later version adds survive
//! verbatim; [`ObjectMeta`] is the typed, validated view of `metadata`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Metadata of a stored object (`metadata`), as Kubernetes defines it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    /// Unique within the kind and namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// A prefix the server completes with random characters when `name`
    /// is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    /// The namespace (none for cluster-scoped kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Set by the server when the object is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Set by the server on every write (from one monotonic sequence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Bumped by the server when the spec changes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: i64,
    /// Set by the server when the object is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// Set by the server when deletion was asked for while finalizers held
    /// the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    /// Accepted and kept (Oxflow deletes at once once finalizers allow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_grace_period_seconds: Option<i64>,
    /// Kept verbatim.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Kept verbatim (kubectl keeps its last-applied configuration here).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Objects this one belongs to; deleting an owner deletes it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<OwnerReference>,
    /// While any is listed, a deleted object stays (with a
    /// `deletionTimestamp`) until its controllers remove them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    /// Server-side apply's bookkeeping: accepted, not kept.
    #[serde(default, skip_serializing)]
    pub managed_fields: Option<Value>,
    /// Deprecated in Kubernetes: accepted, not kept.
    #[serde(default, skip_serializing)]
    pub self_link: Option<String>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// A reference from an object to its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OwnerReference {
    /// The owner's `apiVersion`.
    pub api_version: String,
    /// The owner's kind.
    pub kind: String,
    /// The owner's name.
    pub name: String,
    /// The owner's uid (what cascading deletion follows).
    pub uid: String,
    /// Whether the owner manages this object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    /// Whether foreground deletion of the owner waits for this object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_owner_deletion: Option<bool>,
}

/// A field that failed validation: what `details.causes` of a 422 lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path, `spec.maxTrialCount` style.
    pub field: String,
    /// What is wrong and, where it helps, what to do.
    pub message: String,
    /// Kubernetes' cause type (`FieldValueInvalid`, `FieldValueRequired`,
    /// `FieldValueNotSupported`, `FieldValueUnknown` for a field no schema
    /// declares).
    pub reason: &'static str,
}

impl FieldError {
    /// An invalid value.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            reason: "FieldValueInvalid",
        }
    }

    /// A missing required value.
    pub fn required(field: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: "Required value".into(),
            reason: "FieldValueRequired",
        }
    }

    /// A field the kind does not have.
    pub fn unknown(field: impl Into<String>) -> Self {
        let field = field.into();
        Self {
            message: format!("unknown field {field:?}"),
            field,
            reason: "FieldValueUnknown",
        }
    }
}

/// A kind's parser error as a `details.causes` entry: the field it names
/// (`spec` for the object as a whole), unknown fields as such.
impl From<crate::spec::SpecError> for FieldError {
    fn from(e: crate::spec::SpecError) -> Self {
        let field = if e.path.is_empty() {
            "spec".to_owned()
        } else {
            e.path
        };
        if e.message.contains("unknown field") {
            Self {
                field,
                message: e.message,
                reason: "FieldValueUnknown",
            }
        } else {
            Self::invalid(field, e.message)
        }
    }
}

/// The object as its user wrote it: `apiVersion`, `kind`, the user's
/// `metadata` (name, namespace, labels, annotations) and `spec`; what the
/// server adds (uid, versions, status) left out. What a kind's spec parser
/// reads (KServe's and Katib's parsers take their YAML in this shape).
pub fn user_view(object: &Value) -> Value {
    let mut meta = Map::new();
    if let Some(m) = object.get("metadata").and_then(Value::as_object) {
        for key in ["name", "namespace", "labels", "annotations"] {
            if let Some(v) = m.get(key).filter(|v| !v.is_null()) {
                meta.insert(key.to_owned(), v.clone());
            }
        }
    }
    let mut out = Map::new();
    for key in ["apiVersion", "kind"] {
        if let Some(v) = object.get(key) {
            out.insert(key.to_owned(), v.clone());
        }
    }
    out.insert("metadata".into(), Value::Object(meta));
    if let Some(spec) = object.get("spec").filter(|v| !v.is_null()) {
        out.insert("spec".into(), spec.clone());
    }
    Value::Object(out)
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Reads `metadata` into [`ObjectMeta`], naming every field at fault.
pub fn parse_meta(metadata: Option<&Value>) -> Result<ObjectMeta, Vec<FieldError>> {
    let Some(v) = metadata else {
        return Ok(ObjectMeta::default());
    };
    if !v.is_object() {
        return Err(vec![FieldError::invalid("metadata", "expected an object")]);
    }
    match serde_path_to_error::deserialize::<_, ObjectMeta>(v) {
        Ok(m) => Ok(m),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            let field = if path == "." || path.is_empty() {
                "metadata".to_owned()
            } else {
                format!("metadata.{path}")
            };
            // The path of an unknown field already ends with its name.
            Err(vec![if inner.starts_with("unknown field `") {
                FieldError::unknown(field)
            } else {
                FieldError::invalid(field, inner)
            }])
        }
    }
}

/// The status of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionStatus {
    /// It holds.
    True,
    /// It does not.
    False,
    /// Not known yet.
    Unknown,
}

/// A Kubernetes condition (`status.conditions[]`), one shape for every
/// kind: Katib's, KServe's and the training operators' alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Succeeded`, `Running`, …
    #[serde(rename = "type")]
    pub type_: String,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// A CamelCase word for programs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A sentence for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When `status` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// When it was last written (Katib's conditions carry it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<String>,
}

/// Sets `new` in `conditions`, replacing the one of its type; the
/// transition time moves only when the status changes.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            *old = new;
        }
        None => conditions.push(new),
    }
}

/// A column of a kind's table (`kubectl get`), as a CRD's
/// `additionalPrinterColumns` declares it.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The header.
    pub name: &'static str,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: &'static str,
    /// A JSONPath into the object ([`json_path`]).
    pub json_path: &'static str,
    /// 0: always shown; 1: with `-o wide`.
    pub priority: i32,
    /// What it shows.
    pub description: &'static str,
    /// Computes the cell instead of `json_path`, where the API server's
    /// printer does (a pod's READY, `1/1`); `json_path` then only names
    /// what it reads.
    pub compute: Option<fn(&Value) -> Value>,
}

/// What a kind is: its registry entry. Adding a kind is one of these plus
/// its controller.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    /// API group (`""` for the core group).
    pub group: &'static str,
    /// The version served.
    pub version: &'static str,
    /// `Experiment`.
    pub kind: &'static str,
    /// `experiments`.
    pub plural: &'static str,
    /// `experiment`.
    pub singular: &'static str,
    /// `kubectl get` aliases.
    pub short_names: &'static [&'static str],
    /// `kubectl get all`-style groups (`all`, `kubeflow`).
    pub categories: &'static [&'static str],
    /// Namespaced (else cluster-scoped).
    pub namespaced: bool,
    /// Columns after NAME (an `Age` column is added when none is a date).
    pub columns: &'static [Column],
    /// Whether `status` is a subresource: writes to the object ignore it
    /// and only `/status` writes it.
    pub status_subresource: bool,
    /// The object's top-level fields besides `apiVersion`, `kind` and
    /// `metadata` (anything else is an unknown field).
    pub fields: &'static [&'static str],
    /// A built-in kind (strategic merge patches are taken as merge
    /// patches; for custom kinds they are refused with 415, as the API
    /// server does).
    pub builtin: bool,
    /// Defaults and validates the object (its `spec` and the other
    /// fields): the kind's own rules, in one place for every API and CLI.
    pub validate: fn(&mut Value) -> Result<(), Vec<FieldError>>,
    /// The rules of an update beyond [`Self::validate`]: what may not
    /// change once created (`old` stored, `new` validated), as a kind's
    /// admission webhook checks an update against the object it replaces.
    pub validate_update: Option<UpdateCheck>,
}

/// See [`Kind::validate_update`].
pub type UpdateCheck = fn(old: &Value, new: &Value) -> Result<(), Vec<FieldError>>;

impl Kind {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `experiments.kubeflow.org` (`configmaps` for the core group).
    pub fn resource_name(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// Accepts any body (for kinds whose rules live only in their fields list).
pub fn accept_any(_: &mut Value) -> Result<(), Vec<FieldError>> {
    Ok(())
}

/// The columns a kind prints (`kubectl get`, the CLI's tables): NAME,
/// its printer columns, and AGE when none of them is a date. Each is
/// `(name, type, priority)`.
pub fn printed_columns(kind: &Kind) -> Vec<(&'static str, &'static str, i32)> {
    let mut cols = vec![("Name", "string", 0)];
    cols.extend(kind.columns.iter().map(|c| (c.name, c.type_, c.priority)));
    if !has_date_column(kind) {
        cols.push(("Age", "date", 0));
    }
    cols
}

fn has_date_column(kind: &Kind) -> bool {
    kind.columns.iter().any(|c| c.type_ == "date")
}

/// One object's cells under [`printed_columns`]: dates as ages
/// (`human_duration` since then, at `now`), absent values as null.
pub fn printed_cells(kind: &Kind, object: &Value, now: crate::Timestamp) -> Vec<Value> {
    let age = |ts: Option<&str>| match ts.and_then(crate::Timestamp::parse_rfc3339) {
        Some(t) => Value::String(human_duration(t.millis_until(now) / 1000)),
        None => Value::String("<unknown>".into()),
    };
    let mut cells = vec![object["metadata"]["name"].clone()];
    for c in kind.columns {
        if let Some(compute) = c.compute {
            cells.push(compute(object));
            continue;
        }
        cells.push(match json_path(object, c.json_path) {
            None | Some(Value::Null) => Value::Null,
            Some(Value::String(s)) if c.type_ == "date" => age(Some(s)),
            // An integer column over a map or a list prints its size (a
            // Secret's or a ConfigMap's DATA).
            Some(Value::Object(m)) if c.type_ == "integer" => Value::from(m.len()),
            Some(Value::Array(a)) if c.type_ == "integer" => Value::from(a.len()),
            Some(v) => v.clone(),
        });
    }
    if !has_date_column(kind) {
        cells.push(age(object["metadata"]["creationTimestamp"].as_str()));
    }
    cells
}

/// Kubernetes' short human durations: `45s`, `5m10s`, `3h`, `2d5h`, `400d`.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=599 => {
            let (m, r) = (s / 60, s % 60);
            if r == 0 {
                format!("{m}m")
            } else {
                format!("{m}m{r}s")
            }
        }
        600..=10_799 => format!("{}m", s / 60),
        10_800..=28_799 => {
            let (h, m) = (s / 3600, (s % 3600) / 60);
            if m == 0 {
                format!("{h}h")
            } else {
                format!("{h}h{m}m")
            }
        }
        28_800..=172_799 => format!("{}h", s / 3600),
        172_800..=2_591_999 => {
            let (d, h) = (s / 86_400, (s % 86_400) / 3600);
            if h == 0 {
                format!("{d}d")
            } else {
                format!("{d}d{h}h")
            }
        }
        _ => format!("{}d", s / 86_400),
    }
}

/// Evaluates the JSONPath subset printer columns use: `.a.b`, `.a[0]`,
/// `.a[-1:]` (the last element), `.a[?(@.type=="Ready")].status`. `None`
/// when nothing is there.
pub fn json_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = value;
    let mut rest = path.trim().trim_start_matches('{').trim_end_matches('}');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            if !key.is_empty() {
                cur = cur.get(key)?;
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = r[..end].trim();
            rest = &r[end + 1..];
            let arr = cur.as_array()?;
            if let Some(filter) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (field, want) = filter.split_once("==")?;
                let want = want.trim().trim_matches(|c| c == '"' || c == '\'');
                // Strings compare as text; numbers and booleans as written
                // (`@.latestRevision==true`).
                cur = arr.iter().find(|item| {
                    item.get(field.trim()).is_some_and(|v| match v {
                        Value::String(s) => s == want,
                        other => {
                            let written = other.to_string();
                            written == want
                        }
                    })
                })?;
            } else if let Some(from) = inner.strip_suffix(':') {
                let i: i64 = from.parse().ok()?;
                let idx = if i < 0 { arr.len() as i64 + i } else { i };
                cur = arr.get(usize::try_from(idx).ok()?)?;
            } else {
                let i: i64 = inner.parse().ok()?;
                let idx = if i < 0 { arr.len() as i64 + i } else { i };
                cur = arr.get(usize::try_from(idx).ok()?)?;
            }
        } else {
            return None;
        }
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_is_read_with_field_errors() {
        let m = parse_meta(Some(&json!({
            "name": "x", "labels": {"a": "b"}, "resourceVersion": "7",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "K", "name": "o", "uid": "u"}],
            "managedFields": [{"manager": "kubectl"}]
        })))
        .unwrap();
        assert_eq!(m.name, "x");
        assert_eq!(m.resource_version.as_deref(), Some("7"));
        assert_eq!(m.owner_references[0].uid, "u");
        assert!(
            !serde_json::to_value(&m)
                .unwrap()
                .as_object()
                .unwrap()
                .contains_key("managedFields")
        );
        let e = parse_meta(Some(&json!({"name": "x", "lables": {}}))).unwrap_err();
        assert_eq!(e[0].field, "metadata.lables", "{e:?}");
        assert_eq!(e[0].reason, "FieldValueUnknown");
        let e = parse_meta(Some(&json!({"labels": {"a": 1}}))).unwrap_err();
        assert_eq!(e[0].field, "metadata.labels.a", "{e:?}");
    }

    #[test]
    fn conditions_keep_their_transition_time_while_the_status_holds() {
        let c = |status, t: &str| Condition {
            type_: "Ready".into(),
            status,
            reason: None,
            message: None,
            last_transition_time: Some(t.into()),
            last_update_time: None,
        };
        let mut list = vec![c(ConditionStatus::False, "t1")];
        set_condition(&mut list, c(ConditionStatus::False, "t2"));
        assert_eq!(list[0].last_transition_time.as_deref(), Some("t1"));
        set_condition(&mut list, c(ConditionStatus::True, "t3"));
        assert_eq!(list[0].last_transition_time.as_deref(), Some("t3"));
        assert_eq!(list.len(), 1);
    }

    #[test]
    fn durations_read_like_kubectl() {
        for (s, want) in [
            (0, "0s"),
            (59, "59s"),
            (130, "2m10s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (10 * 3600, "10h"),
            (2 * 86_400 + 3600, "2d1h"),
            (400 * 86_400, "400d"),
        ] {
            assert_eq!(human_duration(s), want, "{s}");
        }
    }

    #[test]
    fn json_path_subset() {
        let v = json!({"status": {"url": "http://x",
            "traffic": [{"latest": false, "percent": 10}, {"latest": true, "percent": 90}],
            "conditions": [
            {"type": "Created", "status": "True"},
            {"type": "Ready", "status": "False"}
        ]}, "spec": {"n": 3}});
        for (path, want) in [
            (".status.url", Some(json!("http://x"))),
            (
                ".status.conditions[?(@.type==\"Ready\")].status",
                Some(json!("False")),
            ),
            (".status.conditions[-1:].type", Some(json!("Ready"))),
            (".status.conditions[0].type", Some(json!("Created"))),
            ("{.spec.n}", Some(json!(3))),
            (".status.nope", None),
            (".status.conditions[?(@.type==\"Gone\")].status", None),
            (
                ".status.traffic[?(@.latest==true)].percent",
                Some(json!(90)),
            ),
        ] {
            assert_eq!(json_path(&v, path).cloned(), want, "{path}");
        }
    }
}
