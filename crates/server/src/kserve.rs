//! KServe's InferenceServices over HTTP, at Kubernetes-style paths so that
//! what a KServe user knows (`kubectl get isvc -n NS -o yaml`) maps 1:1:
//!
//! - `GET  /apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices`
//!   — an `InferenceServiceList`; `POST` creates one from KServe YAML or
//!   JSON (201; 409 when the name is taken; 400 names the field at fault).
//! - `GET | PUT | DELETE …/inferenceservices/{name}` — one service in
//!   KServe's shape with its status; `PUT` creates or replaces it (a new
//!   generation when the spec changed).
//! - `GET /apis/serving.kserve.io/v1beta1/inferenceservices` — every namespace.
//!
//! And the services themselves (the data plane), by path or by host:
//!
//! - `/serving/{ns}/{name}/v2/models/{name}/infer` (and every other V1/V2
//!   route) — the path a service's `status.url` gives;
//! - any path with `Host: {name}.{ns}.<domain>` (or, with tag routing,
//!   `latest-{name}-predictor.{ns}.…` and `prev-…`) — KServe's own URL, as in
//!   `curl -H "Host: sklearn-iris.default.example.com" …/v1/models/sklearn-iris:predict`.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use oxflow_core::Namespace;
use oxflow_serving::controller::{ServingController, ServingError, isvc_json};
use oxflow_serving::logs::RevisionLogError;
use oxflow_serving::spec::InferenceService;
use serde_json::{Value, json};

use crate::AppState;
use crate::caller::Who;
use crate::error::{ApiError, ApiResult};
use crate::limits::{KubeListParams, KubePager};
use crate::routes::Routes;
use oxflow_auth::Verb;

const API_VERSION: &str = "serving.kserve.io/v1beta1";

/// The routes under `/apis/serving.kserve.io/v1beta1`.
pub(crate) fn routes() -> Routes {
    Routes::new()
        .route("/inferenceservices", get(list_all))
        .route("/namespaces/{ns}/inferenceservices", get(list).post(create))
        .route(
            "/namespaces/{ns}/inferenceservices/{name}",
            get(read).put(replace).delete(delete),
        )
        .route("/namespaces/{ns}/inferenceservices/{name}/logs", get(logs))
        .route(
            "/namespaces/{ns}/inferenceservices/{name}/metrics",
            get(metrics),
        )
        .with(|r| {
            r.layer(axum::extract::DefaultBodyLimit::max(
                MAX_RESOURCE_BODY_BYTES,
            ))
        })
}

/// The service's request metrics (Prometheus text) as the control plane
/// sees them: reading them is not a request to the service, so it does
/// not wake a model scaled to zero or count as traffic. For commands, the
/// copies each revision runs (requests to commands are their own to count).
async fn metrics(
    State(state): State<AppState>,
    who: Who,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let ns = namespace(&ns)?;
    who.may(Verb::Get, &ns)?;
    state.store().get_inference_service(&ns, &name).await?;
    let text = serving(&state)?
        .service_metrics(&ns, &name)
        .unwrap_or_default();
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// `?component=predictor|transformer|explainer&tailBytes=N`, or
/// `?revision=NAME` for one revision (or copy), current or past.
#[derive(serde::Deserialize)]
struct LogQuery {
    component: Option<String>,
    revision: Option<String>,
    #[serde(rename = "tailBytes")]
    tail_bytes: Option<u64>,
}

/// The output of a service's command (custom predictor, transformer,
/// explainer), as `kubectl logs` shows a pod's: the last `tailBytes`
/// (default 256 KiB) as text.
async fn logs(
    State(state): State<AppState>,
    who: Who,
    Path((ns, name)): Path<(String, String)>,
    axum::extract::Query(q): axum::extract::Query<LogQuery>,
) -> ApiResult<Response> {
    let ns = namespace(&ns)?;
    who.may(Verb::Get, &ns)?;
    let component = q.component.unwrap_or_else(|| "predictor".into());
    if !matches!(
        component.as_str(),
        "predictor" | "transformer" | "explainer"
    ) {
        return Err(ApiError::bad_request(format!(
            "component: {component:?} is not predictor, transformer or explainer"
        )));
    }
    state.store().get_inference_service(&ns, &name).await?;
    let path = match &q.revision {
        Some(revision) => serving(&state)?
            .revision_log_path(&ns, &name, revision)
            .map_err(|e| match e {
                RevisionLogError::BadName(_) => ApiError::bad_request(format!("revision: {e}")),
                RevisionLogError::Missing { .. } => ApiError::not_found(e.to_string()),
            })?,
        None => serving(&state)?
            .log_path(&ns, &name, &component)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "the {component} of {name} has no log: only commands (custom containers) write one"
                ))
            })?,
    };
    let tail = q.tail_bytes.unwrap_or(256 * 1024);
    let text = read_tail(&path, tail)
        .await
        .map_err(|e| ApiError::not_found(format!("log {}: {e}", path.display())))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

async fn read_tail(path: &std::path::Path, tail: u64) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut f = tokio::fs::File::open(path).await?;
    let len = f.metadata().await?.len();
    f.seek(std::io::SeekFrom::Start(len.saturating_sub(tail)))
        .await?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).await?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

impl From<ServingError> for ApiError {
    fn from(e: ServingError) -> Self {
        match e {
            ServingError::Spec(e) => ApiError::bad_request(e.to_string()),
            ServingError::Store(e) => e.into(),
        }
    }
}

pub(crate) fn namespace(ns: &str) -> ApiResult<Namespace> {
    Namespace::new(ns.to_owned()).map_err(|e| ApiError::bad_request(format!("namespace: {e}")))
}

pub(crate) fn serving(state: &AppState) -> ApiResult<&ServingController> {
    state
        .serving
        .as_ref()
        .ok_or_else(|| ApiError::internal("model serving is not enabled on this server"))
}

/// A request body as text (KServe YAML or JSON).
pub(crate) fn body_text(body: &Bytes) -> ApiResult<&str> {
    std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the body is not UTF-8 text (send KServe YAML or JSON)"))
}

/// A body's `metadata.namespace`, when it has one, must be the URL's.
pub(crate) fn same_namespace(own: Option<&Namespace>, ns: &Namespace) -> ApiResult<()> {
    match own {
        Some(own) if own != ns => Err(ApiError::bad_request(format!(
            "metadata.namespace: {own} does not match the namespace in the URL ({ns})"
        ))),
        _ => Ok(()),
    }
}

/// A replaced resource's `metadata.name` must be the URL's.
pub(crate) fn same_name(own: &str, name: &str) -> ApiResult<()> {
    if own != name {
        return Err(ApiError::bad_request(format!(
            "metadata.name: {own} does not match the name in the URL ({name})"
        )));
    }
    Ok(())
}

/// Bodies of the Kubernetes-style routes: a resource is at most
/// [`oxflow_core::spec::MAX_OBJECT_BYTES`] as JSON, and its YAML at most
/// the parsers' 4 MiB.
pub(crate) const MAX_RESOURCE_BODY_BYTES: usize = 4 * 1024 * 1024;

/// A Kubernetes list of `kind` (`InferenceServiceList`, …): one page of
/// `records` (ordered by namespace and name), with `metadata.continue`
/// when more follow (see [`KubePager`]).
pub(crate) fn list_json<T>(
    api_version: &str,
    kind: &str,
    params: &KubeListParams,
    records: Vec<T>,
    key: impl Fn(&T) -> (String, String),
    render: impl Fn(&T) -> Value,
) -> ApiResult<Json<Value>> {
    let mut pager = KubePager::new(params)?;
    for (k, record) in pager.select(records, key) {
        if !pager.wants_more() || !pager.push(k, render(&record)) {
            break;
        }
    }
    let (items, next) = pager.finish();
    let metadata = match next {
        Some(token) => json!({"continue": token}),
        None => json!({}),
    };
    Ok(Json(json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": metadata,
        "items": items,
    })))
}

/// A PUT's answer: 201 when it created the resource, else 200.
pub(crate) fn put_status(applied: oxflow_store::Applied) -> StatusCode {
    if applied == oxflow_store::Applied::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// Kubernetes' answer to a DELETE.
pub(crate) fn deleted(name: &str, plural: &str) -> Json<Value> {
    Json(json!({
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Success",
        "details": {"name": name, "group": "serving.kserve.io", "kind": plural},
    }))
}

/// The body as an InferenceService whose namespace, if it names one, is `ns`.
fn parse(body: &Bytes, ns: &Namespace) -> ApiResult<InferenceService> {
    let service = InferenceService::from_yaml(body_text(body)?)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    same_namespace(service.namespace.as_ref(), ns)?;
    Ok(service)
}

fn isvc_list(
    params: &KubeListParams,
    records: Vec<oxflow_store::InferenceServiceRecord>,
) -> ApiResult<Json<Value>> {
    list_json(
        API_VERSION,
        "InferenceServiceList",
        params,
        records,
        |r| (r.namespace.to_string(), r.name.clone()),
        isvc_json,
    )
}

async fn list_all(
    State(state): State<AppState>,
    who: Who,
    axum::extract::Query(params): axum::extract::Query<KubeListParams>,
) -> ApiResult<Json<Value>> {
    let mut records = state.store().list_inference_services(None).await?;
    // Across namespaces: only those the caller may list.
    records.retain(|r| who.sees(r.namespace.as_str()));
    isvc_list(&params, records)
}

async fn list(
    State(state): State<AppState>,
    who: Who,
    Path(ns): Path<String>,
    axum::extract::Query(params): axum::extract::Query<KubeListParams>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&ns)?;
    who.may(Verb::List, &ns)?;
    let records = state.store().list_inference_services(Some(&ns)).await?;
    isvc_list(&params, records)
}

async fn create(
    State(state): State<AppState>,
    who: Who,
    Path(ns): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let ns = namespace(&ns)?;
    who.may(Verb::Create, &ns)?;
    let service = parse(&body, &ns)?;
    let record = serving(&state)?.create(&ns, &service).await?;
    Ok((StatusCode::CREATED, Json(isvc_json(&record))).into_response())
}

async fn read(
    State(state): State<AppState>,
    who: Who,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&ns)?;
    who.may(Verb::Get, &ns)?;
    let record = state.store().get_inference_service(&ns, &name).await?;
    Ok(Json(isvc_json(&record)))
}

async fn replace(
    State(state): State<AppState>,
    who: Who,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let ns = namespace(&ns)?;
    who.may(Verb::Update, &ns)?;
    let service = parse(&body, &ns)?;
    same_name(service.name.as_str(), &name)?;
    let (record, applied) = serving(&state)?.apply(&ns, &service).await?;
    Ok((put_status(applied), Json(isvc_json(&record))).into_response())
}

async fn delete(
    State(state): State<AppState>,
    who: Who,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&ns)?;
    who.may(Verb::Delete, &ns)?;
    if !serving(&state)?.delete(&ns, &name).await? {
        return Err(ApiError::not_found(format!(
            "inference service {name:?} not found in namespace {ns}"
        )));
    }
    Ok(deleted(&name, "inferenceservices"))
}

/// Whether the request's caller may call a service in namespace `ns`
/// (the data plane's check: `get` on the namespace's services).
fn may_call(request: &Request<Body>, ns: &str) -> ApiResult<()> {
    let ns = namespace(ns)?;
    let caller = request
        .extensions()
        .get::<oxflow_auth::Caller>()
        .cloned()
        .ok_or_else(|| ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "authentication required".into(),
        })?;
    Who(caller).may(Verb::Get, &ns)
}

/// Sends data-plane requests to their service before the server's own
/// routes see them: `/serving/{ns}/{name}/...` with that prefix taken off
/// the path, and any path whose `Host` names a service (`NAME.NS.<domain>`)
/// unchanged. Done here rather than as routes so that the server's path
/// parameters do not reach the service's own router.
pub(crate) async fn to_services(
    State(state): State<AppState>,
    request: Request<Body>,
    next: Next,
) -> Response {
    let Some(serving) = state.serving.as_ref() else {
        return next.run(request).await;
    };
    if let Some(rest) = request.uri().path().strip_prefix("/serving/") {
        let mut parts = rest.splitn(3, '/');
        let (ns, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if ns.is_empty() || name.is_empty() {
            return ApiError::not_found("a service's path is /serving/NAMESPACE/NAME/...")
                .into_response();
        }
        if let Err(e) = may_call(&request, ns) {
            return e.into_response();
        }
        let path = format!("/{}", parts.next().unwrap_or(""));
        let (ns, name) = (ns.to_owned(), name.to_owned());
        let (mut head, body) = request.into_parts();
        let path_and_query = match head.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        match path_and_query.parse::<Uri>() {
            Ok(uri) => head.uri = uri,
            Err(e) => return ApiError::bad_request(format!("path: {e}")).into_response(),
        }
        return serving
            .dispatch(&ns, &name, Request::from_parts(head, body))
            .await;
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    if let Some((_, ns)) = host.as_deref().and_then(|h| serving.resolve_host(h))
        && let Err(e) = may_call(&request, &ns)
    {
        return e.into_response();
    }
    let request = match host {
        Some(host) => match serving.dispatch_host(&host, request).await {
            Ok(response) => return response,
            Err(request) => request,
        },
        None => request,
    };
    next.run(request).await
}
