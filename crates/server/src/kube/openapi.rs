//! OpenAPI v3, as kubectl ≥ 1.27 reads it: the root lists one document per
//! group version (`/openapi/v3/api/v1`, `/openapi/v3/apis/{g}/{v}`), each
//! with the kinds' operations and a schema per kind.
//!
//! Two things depend on it (shared/reference/kubernetes-api.md, §2.1):
//! - kubectl asks the server to validate (`fieldValidation=Strict`) only
//!   when every POST, PUT and PATCH operation of the document lists the
//!   `fieldValidation` query parameter; without it kubectl would validate
//!   itself against schemas Oxflow does not have in full. Every write
//!   operation here lists it.
//! - `kubectl explain KIND` finds a kind's schema by its
//!   `x-kubernetes-group-version-kind`. The schemas say what the registry
//!   knows: the top-level fields, `metadata` as Kubernetes defines it, and
//!   `spec`/`status` as objects whose fields the kind's own validation
//!   checks (`x-kubernetes-preserve-unknown-fields`, as a CRD without a
//!   structural schema). They never make kubectl reject what the server
//!   accepts.
//!
//! kubectl 1.27 still reads the protobuf `/openapi/v2` first, which stays.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use oxflow_core::object::Kind;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::status::KubeError;
use crate::AppState;

/// The path of a group version's document (`api/v1`, `apis/g/v`).
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The kinds of one group version, in registry order.
fn kinds_of<'a>(state: &'a AppState, group: &str, version: &str) -> Vec<&'a &'static Kind> {
    state
        .resources
        .registry()
        .kinds()
        .iter()
        .filter(|k| k.group == group && k.version == version)
        .collect()
}

/// The schema name of a kind (reverse-DNS, as the API server names its).
fn schema_name(kind: &Kind) -> String {
    let group = if kind.group.is_empty() {
        "io.k8s.api.core".to_owned()
    } else {
        kind.group.split('.').rev().collect::<Vec<_>>().join(".")
    };
    format!("{group}.{}.{}", kind.version, kind.kind)
}

const META_SCHEMA: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

fn object_meta_schema() -> Value {
    let s = |d: &str| json!({"type": "string", "description": d});
    json!({
        "type": "object",
        "description": "Standard object's metadata.",
        "properties": {
            "name": s("Name must be unique within a namespace."),
            "generateName": s("A prefix the server completes with random characters when name is empty."),
            "namespace": s("The namespace the object belongs to."),
            "uid": s("Set by the server when the object is created."),
            "resourceVersion": s("Set by the server on every write."),
            "generation": {"type": "integer", "format": "int64", "description": "Bumped by the server when the spec changes."},
            "creationTimestamp": {"type": "string", "format": "date-time", "description": "When the object was created."},
            "deletionTimestamp": {"type": "string", "format": "date-time", "description": "When deletion was asked for while finalizers held the object."},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Map of string keys and values for selecting objects."},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Map of string keys and values kept verbatim."},
            "ownerReferences": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}, "description": "Objects this one belongs to; deleting an owner deletes it."},
            "finalizers": {"type": "array", "items": {"type": "string"}, "description": "While any is listed, a deleted object stays until its controllers remove them."},
        },
    })
}

/// A top-level field's schema: `spec` and `status` as objects the kind's
/// validation checks, the core kinds' other fields by their Kubernetes
/// types.
fn field_schema(kind: &Kind, field: &str) -> Value {
    let open = |description: String| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "description": description});
    let typed = |type_: &str, description: &str| json!({"type": type_, "description": description});
    match field {
        "spec" => open(format!("The desired state of the {}.", kind.kind)),
        "status" => open(format!(
            "The observed state of the {}, written by its controller.",
            kind.kind
        )),
        "data" if kind.kind == "Secret" => json!({"type": "object",
            "additionalProperties": {"type": "string", "format": "byte"},
            "description": "The values, each base64-encoded."}),
        "data" | "stringData" => {
            json!({"type": "object", "additionalProperties": {"type": "string"},
            "description": if field == "stringData" {
                "Values as plain text, folded into data on write (write-only)."
            } else {
                "The values."
            }})
        }
        "binaryData" => json!({"type": "object",
            "additionalProperties": {"type": "string", "format": "byte"},
            "description": "Binary values, each base64-encoded."}),
        "immutable" => typed("boolean", "When true, the values can no longer change."),
        "type" => typed(
            "string",
            "The type (Opaque for a Secret, Normal or Warning for an Event).",
        ),
        "count" => typed("integer", "How many times the event occurred."),
        "firstTimestamp" | "lastTimestamp" | "eventTime" => {
            json!({"type": "string", "format": "date-time", "description": "When it occurred."})
        }
        "reason" | "message" | "action" | "reportingComponent" | "reportingInstance" => {
            typed("string", "As Kubernetes defines it for events.")
        }
        other => open(format!("{other} of the {}.", kind.kind)),
    }
}

/// A kind's schema: what the registry knows of its fields.
fn kind_schema(kind: &Kind) -> Value {
    let mut properties = Map::new();
    properties.insert(
        "apiVersion".into(),
        json!({"type": "string", "description": "The versioned schema of this representation of an object."}),
    );
    properties.insert(
        "kind".into(),
        json!({"type": "string", "description": "The REST resource this object represents."}),
    );
    properties.insert(
        "metadata".into(),
        json!({"allOf": [{"$ref": format!("#/components/schemas/{META_SCHEMA}")}],
               "description": "Standard object's metadata."}),
    );
    for field in kind.fields {
        properties.insert((*field).to_owned(), field_schema(kind, field));
    }
    json!({
        "type": "object",
        "description": format!("{} ({}).", kind.kind, kind.api_version()),
        "properties": properties,
        "x-kubernetes-group-version-kind": [{"group": kind.group, "version": kind.version, "kind": kind.kind}],
    })
}

/// The `fieldValidation` parameter every write operation lists.
fn field_validation() -> Value {
    json!({"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true},
           "description": "Ignore, Warn (the default) or Strict: what to do with unknown or duplicate fields."})
}

fn operation(kind: &Kind, verb: &str, write: bool) -> Value {
    let schema = json!({"$ref": format!("#/components/schemas/{}", schema_name(kind))});
    let mut op = json!({
        "operationId": format!("{verb}{}", kind.kind),
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}},
        "x-kubernetes-action": verb,
        "x-kubernetes-group-version-kind": {"group": kind.group, "version": kind.version, "kind": kind.kind},
    });
    if write {
        op["parameters"] = json!([field_validation()]);
        op["requestBody"] = json!({"content": {"application/json": {"schema": schema}}});
    }
    op
}

/// The document of one group version.
fn document(kinds: &[&&'static Kind]) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert(META_SCHEMA.into(), object_meta_schema());
    for kind in kinds {
        let base = format!("/{}", gv_path(kind.group, kind.version));
        let collection = if kind.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", kind.plural)
        } else {
            format!("{base}/{}", kind.plural)
        };
        paths.insert(
            collection.clone(),
            json!({"get": operation(kind, "list", false), "post": operation(kind, "post", true)}),
        );
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({"get": operation(kind, "get", false), "put": operation(kind, "put", true),
                   "patch": operation(kind, "patch", true), "delete": operation(kind, "delete", false)}),
        );
        if kind.status_subresource {
            paths.insert(
                format!("{collection}/{{name}}/status"),
                json!({"get": operation(kind, "get", false), "put": operation(kind, "put", true),
                       "patch": operation(kind, "patch", true)}),
            );
        }
        schemas.insert(schema_name(kind), kind_schema(kind));
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{}.0", super::discovery::MINOR)},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// A document's hash, for the root's URLs (clients cache by it).
fn hash(doc: &Value) -> String {
    let digest = Sha256::digest(doc.to_string().as_bytes());
    hex::encode(&digest[..16]).to_uppercase()
}

/// `/openapi/v3`: each group version's document, by path.
pub(crate) async fn root(State(state): State<AppState>) -> Response {
    let mut gvs: Vec<(&str, &str)> = state
        .resources
        .registry()
        .kinds()
        .iter()
        .map(|k| (k.group, k.version))
        .collect();
    gvs.sort_unstable();
    gvs.dedup();
    let mut paths = Map::new();
    for (group, version) in gvs {
        let doc = document(&kinds_of(&state, group, version));
        let path = gv_path(group, version);
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", hash(&doc))}),
        );
    }
    axum::Json(json!({"paths": paths})).into_response()
}

fn serve(state: &AppState, group: &str, version: &str) -> Response {
    let kinds = kinds_of(state, group, version);
    if kinds.is_empty() {
        return KubeError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no OpenAPI document for {}", gv_path(group, version)),
        )
        .into_response();
    }
    (
        // Immutable under its hash, as the API server says.
        [(header::CACHE_CONTROL, "public, immutable")],
        axum::Json(document(&kinds)),
    )
        .into_response()
}

/// `/openapi/v3/api/{version}`.
pub(crate) async fn core(State(state): State<AppState>, Path(version): Path<String>) -> Response {
    serve(&state, "", &version)
}

/// `/openapi/v3/apis/{group}/{version}`.
pub(crate) async fn group(
    State(state): State<AppState>,
    Path((group, version)): Path<(String, String)>,
) -> Response {
    serve(&state, &group, &version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_write_operation_lists_field_validation_and_kinds_have_schemas() {
        let all = oxflow_resources::builtin::kinds();
        let kinds: Vec<&&'static Kind> = all.iter().collect();
        let doc = document(&kinds);
        let mut writes = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (verb, op) in item.as_object().unwrap() {
                if matches!(verb.as_str(), "post" | "put" | "patch") {
                    writes += 1;
                    assert_eq!(
                        op["parameters"][0]["name"], "fieldValidation",
                        "{verb} {path}"
                    );
                }
            }
        }
        assert!(writes >= 12, "{writes}");
        let secret = &doc["components"]["schemas"]["io.k8s.api.core.v1.Secret"];
        assert_eq!(
            secret["x-kubernetes-group-version-kind"][0]["kind"],
            "Secret"
        );
        assert!(secret["properties"]["stringData"].is_object());
        assert!(doc["paths"]["/api/v1/namespaces/{namespace}/secrets/{name}"]["patch"].is_object());
        assert!(
            doc["paths"]["/api/v1/namespaces/{name}"].is_object(),
            "cluster-scoped"
        );
        assert_eq!(
            schema_name(&oxflow_tuning_like()),
            "org.kubeflow.v1beta1.Experiment"
        );
    }

    fn oxflow_tuning_like() -> Kind {
        Kind {
            group: "kubeflow.org",
            kind: "Experiment",
            version: "v1beta1",
            ..oxflow_resources::builtin::CONFIG_MAP
        }
    }
}
