//! `meta.k8s.io/v1` Table answers (`kubectl get` asks for them): a
//! kind's printer columns, rendered on the server as the API server does
//! for custom resources, ages included.

use oxflow_core::Timestamp;
use oxflow_core::object::{Kind, json_path};
use serde_json::{Value, json};

/// What the Accept header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Plain objects.
    Json,
    /// A Table.
    Table,
}

impl Shape {
    pub(crate) fn of(headers: &axum::http::HeaderMap) -> Self {
        let accept = headers
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // The first acceptable entry wins, as in the API server.
        for part in accept.split(',') {
            let p = part.trim();
            if p.contains("as=Table") && p.contains("g=meta.k8s.io") {
                return Self::Table;
            }
            if p.starts_with("application/json") || p.starts_with("*/*") {
                return Self::Json;
            }
        }
        Self::Json
    }

    /// A 200 answer with `body` and this shape's content type.
    pub(crate) fn respond(self, body: axum::body::Body) -> axum::response::Response {
        let mut resp = axum::response::Response::new(body);
        resp.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static(self.content_type()),
        );
        resp
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Table => "application/json;as=Table;v=v1;g=meta.k8s.io",
        }
    }
}

/// Whether rows carry the whole object (`includeObject=Object`), only its
/// metadata (the default) or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub(crate) fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

fn has_date(kind: &Kind) -> bool {
    kind.columns.iter().any(|c| c.type_ == "date")
}

fn column_definitions(kind: &Kind) -> Value {
    let mut cols = vec![json!({"name": "Name", "type": "string", "format": "name",
        "description": "Name must be unique within a namespace.", "priority": 0})];
    for c in kind.columns {
        cols.push(json!({"name": c.name, "type": c.type_, "format": "",
                         "description": c.description, "priority": c.priority}));
    }
    if !has_date(kind) {
        cols.push(json!({"name": "Age", "type": "date", "format": "",
            "description": "When the object was created.", "priority": 0}));
    }
    Value::Array(cols)
}

/// Kubernetes' short human durations: `45s`, `5m10s`, `3h`, `2d5h`, `400d`.
pub(crate) fn human_duration(secs: i64) -> String {
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

fn age(ts: Option<&str>, now: Timestamp) -> Value {
    match ts.and_then(Timestamp::parse_rfc3339) {
        Some(t) => Value::String(human_duration(t.millis_until(now) / 1000)),
        None => Value::String("<unknown>".into()),
    }
}

fn cell(kind_type: &str, v: Option<&Value>, now: Timestamp) -> Value {
    match (kind_type, v) {
        (_, None) | (_, Some(Value::Null)) => Value::Null,
        ("date", Some(Value::String(s))) => age(Some(s), now),
        (_, Some(v)) => v.clone(),
    }
}

fn row(kind: &Kind, object: &Value, include: IncludeObject, now: Timestamp) -> Value {
    let mut cells = vec![object["metadata"]["name"].clone()];
    for c in kind.columns {
        cells.push(cell(c.type_, json_path(object, c.json_path), now));
    }
    if !has_date(kind) {
        cells.push(age(object["metadata"]["creationTimestamp"].as_str(), now));
    }
    let mut r = json!({"cells": cells});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            r["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                 "metadata": object["metadata"]});
        }
        IncludeObject::Object => r["object"] = object.clone(),
    }
    r
}

/// A Table of cached objects as JSON text: the rows' metadata (or objects)
/// are the cache's ready JSON, only the cells are computed.
pub(crate) fn table_text(
    kind: &Kind,
    objects: &[std::sync::Arc<oxflow_resources::Cached>],
    resource_version: &str,
    include: IncludeObject,
    continue_token: Option<&str>,
) -> String {
    let now = Timestamp::now();
    let mut meta = json!({"resourceVersion": resource_version});
    if let Some(t) = continue_token {
        meta["continue"] = json!(t);
    }
    let mut out = String::with_capacity(
        objects
            .iter()
            .map(|c| c.meta_json.len() + 128)
            .sum::<usize>()
            + 1024,
    );
    out.push_str(&format!(
        "{{\"kind\":\"Table\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":{meta},\"columnDefinitions\":{},\"rows\":[",
        column_definitions(kind)
    ));
    for (i, c) in objects.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let o = &c.object;
        let mut cells = vec![o["metadata"]["name"].clone()];
        for col in kind.columns {
            cells.push(cell(col.type_, json_path(o, col.json_path), now));
        }
        if !has_date(kind) {
            cells.push(age(o["metadata"]["creationTimestamp"].as_str(), now));
        }
        out.push_str("{\"cells\":");
        out.push_str(&Value::Array(cells).to_string());
        match include {
            IncludeObject::None => {}
            IncludeObject::Metadata => {
                out.push_str(",\"object\":{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":");
                out.push_str(&c.meta_json);
                out.push('}');
            }
            IncludeObject::Object => {
                out.push_str(",\"object\":");
                out.push_str(&c.json);
            }
        }
        out.push('}');
    }
    out.push_str("]}");
    out
}

/// A Table of `objects` at `resource_version`.
pub(crate) fn table(
    kind: &Kind,
    objects: &[Value],
    resource_version: &str,
    include: IncludeObject,
    continue_token: Option<&str>,
) -> Value {
    let now = Timestamp::now();
    let mut meta = json!({"resourceVersion": resource_version});
    if let Some(t) = continue_token {
        meta["continue"] = json!(t);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": column_definitions(kind),
        "rows": objects.iter().map(|o| row(kind, o, include, now)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn accept_headers() {
        let h = |v: &str| {
            let mut m = axum::http::HeaderMap::new();
            m.insert(axum::http::header::ACCEPT, v.parse().unwrap());
            m
        };
        assert_eq!(
            Shape::of(&h(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
            )),
            Shape::Table
        );
        assert_eq!(Shape::of(&h("application/json")), Shape::Json);
        assert_eq!(Shape::of(&axum::http::HeaderMap::new()), Shape::Json);
    }
}
