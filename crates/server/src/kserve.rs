//! What KServe serves besides its kinds (InferenceService and
//! TrainedModel are resource-model kinds, served by the Kubernetes API like
//! any other):
//!
//! - `GET …/namespaces/{ns}/inferenceservices/{name}/logs` and `/metrics`
//!   under `/apis/serving.kserve.io/v1beta1`: a command's output and the
//!   service's request metrics, as the dashboard shows them.
//!
//! And the services themselves (the data plane), by path or by host:
//!
//! - `/serving/{ns}/{name}/v2/models/{name}/infer` (and every other V1/V2
//!   route) — the path a service's `status.url` gives;
//! - any path with `Host: {name}.{ns}.<domain>` (or, with tag routing,
//!   `latest-{name}-predictor.{ns}.…` and `prev-…`) — KServe's own URL, as in
//!   `curl -H "Host: sklearn-iris.default.example.com" …/v1/models/sklearn-iris:predict`.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use oxflow_core::Namespace;
use oxflow_serving::controller::{ServingController, ServingError};
use oxflow_serving::kinds::INFERENCE_SERVICE;
use oxflow_serving::logs::RevisionLogError;

use crate::AppState;
use crate::caller::Who;
use crate::error::{ApiError, ApiResult};
use crate::routes::Routes;
use oxflow_auth::Verb;

/// The routes under `/apis/serving.kserve.io/v1beta1`.
pub(crate) fn routes() -> Routes {
    Routes::new()
        .route("/namespaces/{ns}/inferenceservices/{name}/logs", get(logs))
        .route(
            "/namespaces/{ns}/inferenceservices/{name}/metrics",
            get(metrics),
        )
}

/// 404 unless the service exists.
async fn exists(state: &AppState, ns: &Namespace, name: &str) -> ApiResult<()> {
    match state
        .resources
        .get(&INFERENCE_SERVICE, Some(ns.as_str()), name)
        .await
    {
        Ok(_) => Ok(()),
        Err(oxflow_resources::ResourceError::NotFound { .. }) => Err(ApiError::not_found(format!(
            "no inference service {name} in namespace {ns}"
        ))),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
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
    exists(&state, &ns, &name).await?;
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
    exists(&state, &ns, &name).await?;
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
            ServingError::Resource(e) => ApiError::internal(e.to_string()),
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
