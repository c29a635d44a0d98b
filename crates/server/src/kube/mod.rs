//! The Kubernetes API for every kind in the registry: discovery, list
//! (selectors, pages, Table), get, create, replace, patch, delete, the
//! status subresource and watch, with `Status` errors — what kubectl, the
//! `kubernetes` client and the Kubeflow SDKs send (see
//! `shared/reference/kubernetes-api.md`).
//!
//! One generic handler serves every kind: a new kind is a registry entry,
//! not new routes. Requests are parsed here into `oxflow_resources` calls;
//! nothing of HTTP goes further.

mod discovery;
mod logs;
mod openapi;
mod protobuf;
mod status;
mod table;

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use oxflow_auth::Verb;
use oxflow_core::object::Kind;
use oxflow_core::selector::{FieldSelector, LabelSelector};
use oxflow_resources::{
    DeleteOptions, FieldValidation, PatchType, Propagation, WatchItem, WatchRequest, WriteOptions,
    Written,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::caller::Who;
use crate::routes::Routes;
use status::{KubeError, KubeResult};
use table::{IncludeObject, Shape};

/// Longest a watch stays open without `timeoutSeconds` (clients re-watch).
const MAX_WATCH: Duration = Duration::from_secs(30 * 60);
/// Largest body a write takes.
const MAX_OBJECT_BYTES: usize = 3 * 1024 * 1024;

/// Every route of the Kubernetes API.
pub(crate) fn routes() -> Routes {
    let any = || -> MethodRouter<AppState> {
        get(dispatch)
            .post(dispatch)
            .put(dispatch)
            .patch(dispatch)
            .delete(dispatch)
    };
    Routes::new()
        .route("/version", get(discovery::version))
        .route("/api", get(discovery::core_versions))
        .route("/apis", get(discovery::groups))
        .route("/openapi/v2", get(discovery::openapi_v2))
        .route("/openapi/v3", get(openapi::root))
        .route("/openapi/v3/api/{version}", get(openapi::core))
        .route("/openapi/v3/apis/{group}/{version}", get(openapi::group))
        .route("/api/v1", get(discovery::core_resources))
        .route("/api/v1/{a}", any())
        .route("/api/v1/{a}/{b}", any())
        .route("/api/v1/{a}/{b}/{c}", any())
        .route("/api/v1/{a}/{b}/{c}/{d}", any())
        .route("/api/v1/{a}/{b}/{c}/{d}/{e}", any())
        .route("/apis/{group}", get(discovery::group))
        .route("/apis/{group}/{version}", get(discovery::group_resources))
        .route("/apis/{group}/{version}/{a}", any())
        .route("/apis/{group}/{version}/{a}/{b}", any())
        .route("/apis/{group}/{version}/{a}/{b}/{c}", any())
        .route("/apis/{group}/{version}/{a}/{b}/{c}/{d}", any())
        .route("/apis/{group}/{version}/{a}/{b}/{c}/{d}/{e}", any())
        .with(|r| r.layer(axum::extract::DefaultBodyLimit::max(MAX_OBJECT_BYTES)))
}

/// What a path names.
#[derive(Debug)]
struct Target {
    kind: &'static Kind,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
    /// A namespaced kind listed across every namespace.
    all_namespaces: bool,
}

fn not_found() -> KubeError {
    KubeError::not_found("the server could not find the requested resource")
}

/// Resolves `/api/v1/…` and `/apis/{g}/{v}/…` segments after the version.
fn target(state: &AppState, group: &str, version: &str, segs: &[String]) -> KubeResult<Target> {
    let reg = state.resources.registry();
    let kind = |plural: &str| reg.by_plural(group, version, plural).ok_or_else(not_found);
    match segs {
        [ns_word, ns, plural, rest @ ..]
            if ns_word == "namespaces"
                && reg
                    .by_plural(group, version, plural)
                    .is_some_and(|k| k.namespaced) =>
        {
            let k = kind(plural)?;
            let (name, sub) = match rest {
                [] => (None, None),
                [name] => (Some(name.clone()), None),
                [name, sub] => (Some(name.clone()), Some(sub.clone())),
                _ => return Err(not_found()),
            };
            Ok(Target {
                kind: k,
                namespace: Some(ns.clone()),
                name,
                subresource: sub,
                all_namespaces: false,
            })
        }
        [plural, rest @ ..] => {
            let k = kind(plural)?;
            let (name, sub) = match rest {
                [] => (None, None),
                [name] if !k.namespaced => (Some(name.clone()), None),
                [name, sub] if !k.namespaced => (Some(name.clone()), Some(sub.clone())),
                _ => return Err(not_found()),
            };
            Ok(Target {
                kind: k,
                namespace: None,
                name,
                subresource: sub,
                all_namespaces: k.namespaced,
            })
        }
        [] => Err(not_found()),
    }
}

/// The query parameters of the Kubernetes API that Oxflow reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    label_selector: Option<String>,
    field_selector: Option<String>,
    limit: Option<String>,
    #[serde(rename = "continue")]
    continue_: Option<String>,
    resource_version: Option<String>,
    watch: Option<String>,
    timeout_seconds: Option<String>,
    include_object: Option<String>,
    field_validation: Option<String>,
    dry_run: Option<String>,
    propagation_policy: Option<String>,
    // pods/log
    container: Option<String>,
    follow: Option<String>,
    tail_lines: Option<String>,
    limit_bytes: Option<String>,
    previous: Option<String>,
    timestamps: Option<String>,
    since_seconds: Option<String>,
    since_time: Option<String>,
}

/// Go's `strconv.ParseBool`, which the Python client's `True` needs.
fn truthy(v: Option<&str>) -> KubeResult<bool> {
    match v {
        None | Some("") => Ok(false),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(other) => Err(KubeError::bad_request(format!(
            "watch: {other:?} is not a boolean"
        ))),
    }
}

async fn dispatch(
    State(state): State<AppState>,
    who: Who,
    method: Method,
    headers: HeaderMap,
    Path(params): Path<std::collections::BTreeMap<String, String>>,
    Query(query): Query<Params>,
    body: Bytes,
) -> Response {
    let group = params.get("group").cloned().unwrap_or_default();
    let version = params
        .get("version")
        .cloned()
        .unwrap_or_else(|| "v1".to_owned());
    let segs: Vec<String> = ["a", "b", "c", "d", "e"]
        .iter()
        .filter_map(|k| params.get(*k).cloned())
        .collect();
    match handle(
        &state, &who, &method, &headers, &group, &version, &segs, query, body,
    )
    .await
    {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    state: &AppState,
    who: &Who,
    method: &Method,
    headers: &HeaderMap,
    group: &str,
    version: &str,
    segs: &[String],
    q: Params,
    body: Bytes,
) -> KubeResult<Response> {
    let t = target(state, group, version, segs)?;
    if let Some(ns) = &t.namespace {
        oxflow_core::Namespace::new(ns.clone())
            .map_err(|e| KubeError::bad_request(format!("namespace: {e}")))?;
    }
    let verb = match (method, &t.name) {
        (&Method::GET, None) if truthy(q.watch.as_deref())? => Verb::Watch,
        (&Method::GET, None) => Verb::List,
        (&Method::GET, Some(_)) => Verb::Get,
        (&Method::POST, None) => Verb::Create,
        (&Method::PUT, Some(_)) => Verb::Update,
        (&Method::PATCH, Some(_)) => Verb::Patch,
        (&Method::DELETE, Some(_)) => Verb::Delete,
        _ => {
            return Err(KubeError::method_not_allowed(format!(
                "{method} is not supported on this path"
            )));
        }
    };
    authorize(who, &t, verb)?;
    match (&t.subresource, &t.name) {
        (Some(sub), Some(name)) if sub == "status" && t.kind.status_subresource => {
            status_subresource(state, method, &t, name, body, headers).await
        }
        (Some(sub), Some(name))
            if sub == "log" && std::ptr::eq(t.kind, &oxflow_resources::builtin::POD) =>
        {
            if verb != Verb::Get {
                return Err(KubeError::method_not_allowed(format!(
                    "{method} is not supported on pods/log"
                )));
            }
            logs::pod_log(state, t.namespace.as_deref().unwrap_or(""), name, &q).await
        }
        (Some(sub), _) => Err(KubeError::not_found(format!(
            "{} has no subresource {sub:?}",
            t.kind.resource_name()
        ))),
        (None, None) => match verb {
            Verb::Watch => watch(state, who, headers, &t, q).await,
            Verb::List => list(state, who, headers, &t, q).await,
            _ => create(state, headers, &t, q, body).await,
        },
        (None, Some(name)) => match verb {
            Verb::Get => {
                let obj = state
                    .resources
                    .get(t.kind, t.namespace.as_deref(), name)
                    .await?;
                Ok(object_response(headers, &t, StatusCode::OK, obj, &[]))
            }
            Verb::Update => {
                let opts = write_options(&q)?;
                let w = state
                    .resources
                    .replace(
                        t.kind,
                        t.namespace.as_deref(),
                        name,
                        parse_body(headers, &body)?,
                        &opts,
                    )
                    .await?;
                Ok(written(headers, &t, w))
            }
            Verb::Patch => {
                let opts = write_options(&q)?;
                let (patch_type, patch) = parse_patch(headers, &body)?;
                let w = state
                    .resources
                    .patch(
                        t.kind,
                        t.namespace.as_deref(),
                        name,
                        patch_type,
                        patch,
                        false,
                        &opts,
                    )
                    .await?;
                Ok(written(headers, &t, w))
            }
            _ => delete(state, headers, &t, name, q, body).await,
        },
    }
}

/// The one authorization question, with the namespace the path names (for
/// cluster-scoped kinds: reads by anyone, writes by a caller who may
/// reach every namespace).
fn authorize(who: &Who, t: &Target, verb: Verb) -> KubeResult<()> {
    match (&t.namespace, t.all_namespaces) {
        (Some(ns), _) => oxflow_core::Namespace::new(ns.clone())
            .map_err(|e| KubeError::bad_request(format!("namespace: {e}")))
            .and_then(|ns| who.may(verb, &ns).map_err(forbidden)),
        // Lists across namespaces are filtered to what the caller sees.
        (None, true) => Ok(()),
        (None, false) => who.may_in(verb, None).map_err(forbidden),
    }
}

fn forbidden(e: crate::ApiError) -> KubeError {
    KubeError::new(StatusCode::FORBIDDEN, "Forbidden", e.message)
}

fn write_options(q: &Params) -> KubeResult<WriteOptions> {
    let validation = match q.field_validation.as_deref() {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(KubeError::bad_request(format!(
                "fieldValidation: {other:?} is not Strict, Warn or Ignore"
            )));
        }
    };
    let dry_run = match q.dry_run.as_deref() {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(KubeError::bad_request(format!(
                "dryRun: {other:?} is not All"
            )));
        }
    };
    Ok(WriteOptions {
        dry_run,
        validation,
        fence: None,
        with_status: false,
    })
}

/// A JSON (or YAML) object body.
fn parse_body(headers: &HeaderMap, body: &[u8]) -> KubeResult<Value> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.contains("protobuf") {
        return protobuf::decode(body).map_err(|refused| match refused {
            protobuf::Refused::Malformed(why) => {
                KubeError::bad_request(format!("the protobuf body is malformed: {why}"))
            }
            protobuf::Refused::Unsupported(what) => KubeError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!(
                    "the body is {content_type}: Oxflow reads protobuf only for Secrets, ConfigMaps and \
                     Namespaces, and {what}; send JSON or YAML (with kubectl: `kubectl create … \
                     --dry-run=client -o yaml | kubectl apply -f -`)"
                ),
            ),
        });
    }
    if content_type.contains("cbor") {
        return Err(KubeError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("the body is {content_type}; Oxflow takes JSON and YAML"),
        ));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| KubeError::bad_request("the request body is not UTF-8"))?;
    let yaml = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("yaml"));
    if !yaml {
        return serde_json::from_str(text).map_err(|e| {
            KubeError::bad_request(format!(
                "the request body is not valid JSON: {e} (line {}, column {})",
                e.line(),
                e.column()
            ))
        });
    }
    let docs = oxflow_core::spec::read_documents(
        text,
        &oxflow_core::spec::ReadOptions {
            max_bytes: MAX_OBJECT_BYTES,
            input: "request body",
            yaml_budget: oxflow_core::spec::YamlBudget::Strict,
        },
    )
    .map_err(|e| KubeError::bad_request(e.to_string()))?;
    match <[Value; 1]>::try_from(docs) {
        Ok([v]) => Ok(v),
        Err(_) => Err(KubeError::bad_request(
            "the request body must hold exactly one object",
        )),
    }
}

fn parse_patch(headers: &HeaderMap, body: &[u8]) -> KubeResult<(PatchType, Value)> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    let patch_type = match media {
        "application/merge-patch+json" => PatchType::Merge,
        "application/json-patch+json" => PatchType::Json,
        "application/strategic-merge-patch+json" => PatchType::StrategicMerge,
        "application/apply-patch+yaml" => PatchType::Apply,
        other => {
            return Err(KubeError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format ({other:?}) - accepted media types include: \
                     application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                ),
            ));
        }
    };
    let v = if patch_type == PatchType::Apply {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/yaml"),
        );
        parse_body(&h, body)?
    } else {
        parse_body(&HeaderMap::new(), body)?
    };
    Ok((patch_type, v))
}

fn json_response(
    status: StatusCode,
    content_type: &str,
    v: &Value,
    warnings: &[String],
) -> Response {
    let mut resp = (status, v.to_string()).into_response();
    let h = resp.headers_mut();
    if let Ok(ct) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, ct);
    }
    for w in warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - {:?}", w.replace(['\r', '\n'], " "))) {
            h.append(header::WARNING, v);
        }
    }
    resp
}

/// One object, as JSON or as a one-row Table.
fn object_response(
    headers: &HeaderMap,
    t: &Target,
    status: StatusCode,
    obj: Value,
    warnings: &[String],
) -> Response {
    match Shape::of(headers) {
        Shape::Table => {
            let rv = obj["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let tab = table::table(t.kind, &[obj], &rv, IncludeObject::Metadata, None);
            json_response(status, Shape::Table.content_type(), &tab, warnings)
        }
        Shape::Json => json_response(status, "application/json", &obj, warnings),
    }
}

fn written(headers: &HeaderMap, t: &Target, w: Written) -> Response {
    let status = if w.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    object_response(headers, t, status, w.object, &w.warnings)
}

async fn create(
    state: &AppState,
    headers: &HeaderMap,
    t: &Target,
    q: Params,
    body: Bytes,
) -> KubeResult<Response> {
    if t.all_namespaces {
        return Err(KubeError::method_not_allowed(format!(
            "create {} in a namespace: POST /…/namespaces/NAMESPACE/{}",
            t.kind.plural, t.kind.plural
        )));
    }
    let opts = write_options(&q)?;
    let w = state
        .resources
        .create(
            t.kind,
            t.namespace.as_deref(),
            parse_body(headers, &body)?,
            &opts,
        )
        .await?;
    Ok(written(headers, t, w))
}

fn selectors(q: &Params) -> KubeResult<(LabelSelector, FieldSelector)> {
    let labels = LabelSelector::parse(q.label_selector.as_deref().unwrap_or(""))
        .map_err(|e| KubeError::bad_request(format!("labelSelector: {e}")))?;
    let fields = FieldSelector::parse(
        q.field_selector.as_deref().unwrap_or(""),
        &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.name",
            "involvedObject.namespace",
            "involvedObject.kind",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "type",
        ],
    )
    .map_err(|e| KubeError::bad_request(format!("fieldSelector: {e}")))?;
    Ok((labels, fields))
}

/// `ns\0name` of the last item sent, hex-encoded.
fn continue_token(obj: &Value) -> String {
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or("");
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    format!("{ns}\u{0}{name}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parse_continue(token: &str) -> KubeResult<(String, String)> {
    let bad = || {
        KubeError::bad_request(format!(
            "continue: {token:?} is not a token this server gave"
        ))
    };
    if !token.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Vec<u8> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (ns, name) = text.split_once('\u{0}').ok_or_else(bad)?;
    Ok((ns.to_owned(), name.to_owned()))
}

async fn list(
    state: &AppState,
    who: &Who,
    headers: &HeaderMap,
    t: &Target,
    q: Params,
) -> KubeResult<Response> {
    let (labels, fields) = selectors(&q)?;
    let limit = match q.limit.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match s.parse::<usize>() {
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(_) => {
                return Err(KubeError::bad_request(format!(
                    "limit: {s:?} is not a non-negative integer"
                )));
            }
        },
    };
    let after = q
        .continue_
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(parse_continue)
        .transpose()?;
    let (mut items, rv) = state
        .resources
        .list_cached(t.kind, t.namespace.as_deref(), &labels, &fields)
        .await?;
    if t.all_namespaces || (!t.kind.namespaced && t.kind.kind == "Namespace") {
        items.retain(|c| {
            let o = &c.object;
            let ns = if t.kind.namespaced {
                o["metadata"]["namespace"].as_str()
            } else {
                o["metadata"]["name"].as_str()
            };
            who.sees(ns.unwrap_or(""))
        });
    }
    if let Some((ns, name)) = &after {
        items.retain(|c| {
            let o = &c.object;
            let key = (
                o["metadata"]["namespace"].as_str().unwrap_or(""),
                o["metadata"]["name"].as_str().unwrap_or(""),
            );
            key > (ns.as_str(), name.as_str())
        });
    }
    // A page ends at `limit` items, and after about MAX_LIST_BYTES of
    // JSON (at least one item): the rest is behind the continue token, so
    // no answer holds an unbounded number of bytes.
    let shape = Shape::of(headers);
    let include = IncludeObject::parse(q.include_object.as_deref());
    let size = |c: &oxflow_resources::Cached| match (shape, include) {
        (Shape::Json, _) | (Shape::Table, IncludeObject::Object) => c.json.len() + 1,
        (Shape::Table, _) => c.meta_json.len() + 128,
    };
    let total = items.len();
    let mut keep = limit.unwrap_or(total).min(total);
    let mut bytes = 0;
    for (i, c) in items.iter().take(keep).enumerate() {
        bytes += size(c);
        if i > 0 && bytes > crate::limits::MAX_LIST_BYTES {
            keep = i;
            break;
        }
    }
    let mut next = None;
    let mut remaining = None;
    if keep < total {
        remaining = Some(total - keep);
        items.truncate(keep);
        next = items.last().map(|c| continue_token(&c.object));
    }
    let rv = rv.to_string();
    // Rendered from the cache's ready JSON: no object is copied or
    // serialized again.
    let body = match shape {
        Shape::Table => table::table_text(t.kind, &items, &rv, include, next.as_deref()),
        Shape::Json => {
            let mut meta = json!({"resourceVersion": rv});
            if let Some(c) = next {
                meta["continue"] = json!(c);
                meta["remainingItemCount"] = json!(remaining);
            }
            let mut out =
                String::with_capacity(items.iter().map(|c| c.json.len() + 1).sum::<usize>() + 256);
            out.push_str(&format!(
                "{{\"apiVersion\":{},\"kind\":{},\"metadata\":{},\"items\":[",
                json!(t.kind.api_version()),
                json!(format!("{}List", t.kind.kind)),
                meta
            ));
            for (i, c) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&c.json);
            }
            out.push_str("]}");
            out
        }
    };
    Ok(shape.respond(Body::from(body)))
}

async fn watch(
    state: &AppState,
    who: &Who,
    headers: &HeaderMap,
    t: &Target,
    q: Params,
) -> KubeResult<Response> {
    let (labels, fields) = selectors(&q)?;
    let from = match q.resource_version.as_deref().filter(|s| !s.is_empty()) {
        None | Some("0") => None,
        Some(s) => Some(s.parse::<i64>().map_err(|_| {
            KubeError::bad_request(format!("resourceVersion: {s:?} is not a resource version"))
        })?),
    };
    let timeout = match q.timeout_seconds.as_deref().filter(|s| !s.is_empty()) {
        None => MAX_WATCH,
        Some(s) => Duration::from_secs(s.parse::<u64>().map_err(|_| {
            KubeError::bad_request(format!("timeoutSeconds: {s:?} is not a number of seconds"))
        })?)
        .min(MAX_WATCH),
    };
    let rx = state
        .resources
        .watch(WatchRequest {
            kind: t.kind,
            namespace: t.namespace.clone(),
            labels,
            fields,
            from,
        })
        .await?;
    let shape = Shape::of(headers);
    let kind = t.kind;
    let who = who.clone();
    let all = t.all_namespaces;
    let deadline = tokio::time::Instant::now() + timeout;
    let stream = futures::stream::unfold(Some(rx), move |rx| {
        let who = who.clone();
        async move {
            let mut rx = rx?;
            loop {
                let item = tokio::select! {
                    item = rx.recv() => item?,
                    () = tokio::time::sleep_until(deadline) => return None,
                };
                match item {
                    WatchItem::Event(change) => {
                        let object = &change.event.object;
                        if all && !who.sees(object["metadata"]["namespace"].as_str().unwrap_or(""))
                        {
                            continue;
                        }
                        let line = match shape {
                            // Serialized once for every watcher.
                            Shape::Json => Bytes::from(change.json_line().as_bytes().to_vec()),
                            Shape::Table => {
                                let rv = object["metadata"]["resourceVersion"]
                                    .as_str()
                                    .unwrap_or("")
                                    .to_owned();
                                let tab = table::table(
                                    kind,
                                    std::slice::from_ref(object),
                                    &rv,
                                    IncludeObject::Metadata,
                                    None,
                                );
                                let mut s = json!({"type": change.event.event_type.as_str(), "object": tab}).to_string();
                                s.push('\n');
                                Bytes::from(s)
                            }
                        };
                        return Some((Ok::<_, std::io::Error>(line), Some(rx)));
                    }
                    WatchItem::Expired(message) => {
                        let status = KubeError::new(StatusCode::GONE, "Expired", message).body();
                        let mut s = json!({"type": "ERROR", "object": status}).to_string();
                        s.push('\n');
                        // The last item: the stream ends after it.
                        return Some((Ok(Bytes::from(s)), None));
                    }
                }
            }
        }
    });
    Ok(shape.respond(Body::from_stream(stream)))
}

async fn status_subresource(
    state: &AppState,
    method: &Method,
    t: &Target,
    name: &str,
    body: Bytes,
    headers: &HeaderMap,
) -> KubeResult<Response> {
    let ns = t.namespace.as_deref();
    match *method {
        Method::GET => {
            let obj = state.resources.get(t.kind, ns, name).await?;
            Ok(object_response(headers, t, StatusCode::OK, obj, &[]))
        }
        Method::PUT => {
            let w = state
                .resources
                .replace_status(t.kind, ns, name, parse_body(headers, &body)?)
                .await?;
            Ok(written(headers, t, w))
        }
        Method::PATCH => {
            let (patch_type, patch) = parse_patch(headers, &body)?;
            let w = state
                .resources
                .patch(
                    t.kind,
                    ns,
                    name,
                    patch_type,
                    patch,
                    true,
                    &WriteOptions::default(),
                )
                .await?;
            Ok(written(headers, t, w))
        }
        _ => Err(KubeError::method_not_allowed(
            "the status subresource takes GET, PUT and PATCH",
        )),
    }
}

async fn delete(
    state: &AppState,
    headers: &HeaderMap,
    t: &Target,
    name: &str,
    q: Params,
    body: Bytes,
) -> KubeResult<Response> {
    let mut opts = DeleteOptions::default();
    let mut policy = q.propagation_policy.clone();
    opts.dry_run = write_options(&q)?.dry_run;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v: Value = serde_json::from_slice(&body).map_err(|e| {
            KubeError::bad_request(format!("the DeleteOptions body is not valid JSON: {e}"))
        })?;
        if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
            policy = Some(p.to_owned());
        }
        opts.resource_version = v
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_owned);
        opts.uid = v
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if v.get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|d| d == "All"))
        {
            opts.dry_run = true;
        }
    }
    opts.propagation = match policy.as_deref() {
        None | Some("") | Some("Background") => Propagation::Background,
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(KubeError::bad_request(format!(
                "propagationPolicy: {other:?} is not Background, Foreground or Orphan"
            )));
        }
    };
    let obj = state
        .resources
        .delete(t.kind, t.namespace.as_deref(), name, &opts)
        .await?;
    Ok(object_response(headers, t, StatusCode::OK, obj, &[]))
}
