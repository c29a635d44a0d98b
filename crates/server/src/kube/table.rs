//! `meta.k8s.io/v1` Table answers (`kubectl get` asks for them): a
//! kind's printer columns, rendered on the server as the API server does
//! for custom resources, ages included.

use oxflow_core::Timestamp;
use oxflow_core::object::{Kind, printed_cells, printed_columns};
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

fn column_definitions(kind: &Kind) -> Value {
    Value::Array(
        printed_columns(kind)
            .into_iter()
            .map(|(name, type_, priority)| {
                let description = kind
                    .columns
                    .iter()
                    .find(|c| c.name == name)
                    .map(|c| c.description)
                    .unwrap_or(match name {
                        "Name" => "Name must be unique within a namespace.",
                        _ => "When the object was created.",
                    });
                let format = if name == "Name" && priority == 0 && type_ == "string" {
                    "name"
                } else {
                    ""
                };
                json!({"name": name, "type": type_, "format": format,
                       "description": description, "priority": priority})
            })
            .collect(),
    )
}

fn row(kind: &Kind, object: &Value, include: IncludeObject, now: Timestamp) -> Value {
    let mut r = json!({"cells": printed_cells(kind, object, now)});
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
        out.push_str("{\"cells\":");
        out.push_str(&Value::Array(printed_cells(kind, &c.object, now)).to_string());
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
