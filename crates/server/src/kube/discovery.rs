//! What kubectl asks before anything else: `/version`, the group lists
//! (`/api`, `/apis`; aggregated, with every resource, when asked), each
//! group version's resources, and an OpenAPI
//! document — the minimal protobuf `/openapi/v2` that makes kubectl
//! validate on the server (`fieldValidation=Strict`) rather than refuse to
//! apply.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oxflow_core::object::Kind;
use serde_json::{Value, json};

use super::status::KubeError;
use crate::AppState;

/// The Kubernetes version Oxflow answers as: the kubectl dispatcher picks
/// its matching client from the minor version.
pub(crate) const MINOR: &str = "33";

pub(crate) async fn version() -> axum::Json<Value> {
    axum::Json(json!({
        "major": "1",
        "minor": MINOR,
        "gitVersion": format!("v1.{MINOR}.0"),
        "gitCommit": format!("oxflow-{}", env!("CARGO_PKG_VERSION")),
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }))
}

pub(crate) async fn core_versions(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(aggregated) = Aggregated::asked(&headers) {
        return aggregated.answer(&state, true);
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    axum::Json(json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
    }))
    .into_response()
}

fn group_json(name: &str, versions: &[&str]) -> Value {
    let gv = |v: &str| json!({"groupVersion": format!("{name}/{v}"), "version": v});
    json!({
        "name": name,
        "versions": versions.iter().map(|v| gv(v)).collect::<Vec<_>>(),
        "preferredVersion": gv(versions[0]),
    })
}

pub(crate) async fn groups(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(aggregated) = Aggregated::asked(&headers) {
        return aggregated.answer(&state, false);
    }
    let groups: Vec<Value> = state
        .resources
        .registry()
        .groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, versions)| group_json(g, &versions))
        .collect();
    axum::Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        .into_response()
}

pub(crate) async fn group(
    State(state): State<AppState>,
    Path(group): Path<String>,
) -> Result<axum::Json<Value>, KubeError> {
    let versions = state
        .resources
        .registry()
        .groups()
        .into_iter()
        .find(|(g, _)| *g == group && !g.is_empty())
        .map(|(_, v)| v)
        .ok_or_else(|| KubeError::not_found("the server could not find the requested resource"))?;
    let mut v = group_json(&group, &versions);
    v["kind"] = json!("APIGroup");
    v["apiVersion"] = json!("v1");
    Ok(axum::Json(v))
}

const VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

fn resource_json(k: &Kind) -> Vec<Value> {
    let mut out = vec![json!({
        "name": k.plural,
        "singularName": k.singular,
        "namespaced": k.namespaced,
        "kind": k.kind,
        "verbs": VERBS,
        "shortNames": k.short_names,
        "categories": k.categories,
    })];
    if k.status_subresource {
        out.push(json!({
            "name": format!("{}/status", k.plural),
            "singularName": "",
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": ["get", "patch", "update"],
        }));
    }
    if std::ptr::eq(k, &oxflow_resources::builtin::POD) {
        out.push(json!({
            "name": "pods/log",
            "singularName": "",
            "namespaced": true,
            "kind": "Pod",
            "verbs": ["get"],
        }));
    }
    out
}

fn resource_list(state: &AppState, group: &str, version: &str) -> Result<Value, KubeError> {
    let kinds = state.resources.registry().in_version(group, version);
    if kinds.is_empty() {
        return Err(KubeError::not_found(
            "the server could not find the requested resource",
        ));
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Ok(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": kinds.iter().flat_map(|k| resource_json(k)).collect::<Vec<_>>(),
    }))
}

pub(crate) async fn core_resources(
    State(state): State<AppState>,
) -> Result<axum::Json<Value>, KubeError> {
    resource_list(&state, "", "v1").map(axum::Json)
}

pub(crate) async fn group_resources(
    State(state): State<AppState>,
    Path((group, version)): Path<(String, String)>,
) -> Result<axum::Json<Value>, KubeError> {
    resource_list(&state, &group, &version).map(axum::Json)
}

/// The aggregated discovery document kubectl asks for first (`Accept:
/// application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`,
/// `v2beta1` from kubectl 1.27): every group version with its resources
/// in one answer, instead of one request per group version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Aggregated {
    V2,
    V2Beta1,
}

impl Aggregated {
    /// The aggregated form the request asks for, if any (the first one its
    /// Accept header names that Oxflow serves).
    pub(crate) fn asked(headers: &HeaderMap) -> Option<Self> {
        let accept = headers.get(header::ACCEPT)?.to_str().ok()?;
        accept.split(',').find_map(|media| {
            let params: Vec<&str> = media.split(';').map(str::trim).collect();
            let has = |p: &str| params.contains(&p);
            if !(has("g=apidiscovery.k8s.io") && has("as=APIGroupDiscoveryList")) {
                return None;
            }
            if has("v=v2") {
                Some(Aggregated::V2)
            } else if has("v=v2beta1") {
                Some(Aggregated::V2Beta1)
            } else {
                None
            }
        })
    }

    fn version(self) -> &'static str {
        match self {
            Aggregated::V2 => "v2",
            Aggregated::V2Beta1 => "v2beta1",
        }
    }

    /// The groups `core` selects (the core group for `/api`, the named
    /// ones for `/apis`), as one `APIGroupDiscoveryList`.
    pub(crate) fn answer(self, state: &AppState, core: bool) -> Response {
        let registry = state.resources.registry();
        let items: Vec<Value> = registry
            .groups()
            .into_iter()
            .filter(|(g, _)| g.is_empty() == core)
            .map(|(group, versions)| {
                let versions: Vec<Value> = versions
                    .iter()
                    .map(|version| {
                        let resources: Vec<Value> = registry
                            .in_version(group, version)
                            .iter()
                            .map(|k| discovered(k))
                            .collect();
                        json!({"version": version, "resources": resources, "freshness": "Current"})
                    })
                    .collect();
                json!({"metadata": {"name": group}, "versions": versions})
            })
            .collect();
        let body = json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": format!("apidiscovery.k8s.io/{}", self.version()),
            "metadata": {},
            "items": items,
        });
        (
            [(
                header::CONTENT_TYPE,
                format!(
                    "application/json;g=apidiscovery.k8s.io;v={};as=APIGroupDiscoveryList",
                    self.version()
                ),
            )],
            body.to_string(),
        )
            .into_response()
    }
}

/// One kind as aggregated discovery describes it.
fn discovered(k: &Kind) -> Value {
    let kind = json!({"group": k.group, "version": k.version, "kind": k.kind});
    let mut r = json!({
        "resource": k.plural,
        "responseKind": kind,
        "scope": if k.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": k.singular,
        "verbs": VERBS,
        "shortNames": k.short_names,
        "categories": k.categories,
    });
    let mut subresources = Vec::new();
    if k.status_subresource {
        subresources.push(json!({
            "subresource": "status",
            "responseKind": kind,
            "verbs": ["get", "patch", "update"],
        }));
    }
    if std::ptr::eq(k, &oxflow_resources::builtin::POD) {
        subresources.push(json!({
            "subresource": "log",
            "responseKind": {"group": "", "version": "v1", "kind": "Pod"},
            "verbs": ["get"],
        }));
    }
    if !subresources.is_empty() {
        r["subresources"] = Value::Array(subresources);
    }
    r
}

/// The smallest OpenAPI v2 document kubectl accepts (gnostic protobuf:
/// `swagger: "2.0"`, `info{title, version}`, empty `paths`). With it kubectl
/// validates nothing itself and asks the server to (`fieldValidation=Strict`).
pub(crate) async fn openapi_v2(headers: HeaderMap) -> Response {
    let wants_protobuf = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("protobuf"));
    if !wants_protobuf {
        return KubeError::new(
            StatusCode::NOT_ACCEPTABLE,
            "NotAcceptable",
            "only the protobuf form of /openapi/v2 is served (Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf)",
        )
        .into_response();
    }
    let version = format!("v1.{MINOR}.0");
    let mut info = vec![0x0a, 10];
    info.extend_from_slice(b"Kubernetes");
    info.push(0x12);
    info.push(version.len() as u8);
    info.extend_from_slice(version.as_bytes());
    let mut doc = vec![0x0a, 3];
    doc.extend_from_slice(b"2.0");
    doc.push(0x12);
    doc.push(info.len() as u8);
    doc.extend_from_slice(&info);
    doc.extend_from_slice(&[0x42, 0x00]);
    // The media type the API server answers with (Go's mime parser
    // refuses the `@` of the type kubectl asks for).
    (
        [(
            header::CONTENT_TYPE,
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
        )],
        doc,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_discovery_is_recognised_as_kubectl_asks_for_it() {
        let ask = |accept: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, accept.parse().unwrap());
            Aggregated::asked(&h)
        };
        // kubectl 1.33, then 1.27, then a plain client.
        assert_eq!(
            ask(
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
            ),
            Some(Aggregated::V2)
        );
        assert_eq!(
            ask(
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
            ),
            Some(Aggregated::V2Beta1)
        );
        assert_eq!(ask("application/json, */*"), None);
    }

    #[test]
    fn a_kind_is_discovered_with_its_scope_names_and_status() {
        let k = oxflow_resources::builtin::NAMESPACE;
        let d = discovered(&k);
        assert_eq!(d["scope"], "Cluster");
        assert_eq!(d["responseKind"]["kind"], "Namespace");
        assert_eq!(d["shortNames"], json!(["ns"]));
    }

    #[tokio::test]
    async fn the_openapi_document_is_the_one_kubectl_accepts() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
                .parse()
                .unwrap(),
        );
        let resp = openapi_v2(h).await;
        let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        // The bytes recorded in shared/reference/kubernetes-api.md §2.1.
        let want: Vec<u8> = "0a 03 32 2e 30 12 15 0a 0a 4b 75 62 65 72 6e 65 74 65 73 12 07 76 31 2e 33 33 2e 30 42 00"
            .split(' ')
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect();
        assert_eq!(body.to_vec(), want);
    }
}
