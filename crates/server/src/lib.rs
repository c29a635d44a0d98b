//! The HTTP API layer of `oxflow up`.
//!
//! Architecture invariant: only this crate knows HTTP and the JSON wire
//! shapes of the APIs it serves; it converts them into the store's and the
//! engine's own types in one place (`kfp` for the KFP v2beta1 API).

mod api;
mod caller;
mod dashboard;
mod error;
mod katib;
mod kfp;
mod kserve;
mod kube;
mod limits;
mod openapi;
mod routes;
pub mod task_pods;

pub use axum::Router;
use axum::extract::DefaultBodyLimit;
use oxflow_core::Namespace;
use oxflow_pipelines::RunController;
use oxflow_store::Store;
use tokio_util::sync::CancellationToken;

pub use error::{ApiError, ApiResult};

/// Request bodies larger than this are refused with 413 (a pipeline package
/// is a few hundred KiB; 32 MiB leaves room for huge generated ones).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Runs are executed by this controller.
    pub controller: RunController,
    /// Where every resource lives.
    pub store: Store,
    /// The namespace used when a request names none (authentication is off).
    pub default_namespace: Namespace,
    /// Katib experiments are run by this controller (`None`: the Katib
    /// routes answer reads only).
    pub tuning: Option<oxflow_tuning::TuningController>,
    /// InferenceServices are served by this controller (`None`: the KServe
    /// routes answer reads only and nothing is served).
    pub serving: Option<oxflow_serving::controller::ServingController>,
    /// Every kind of the registry, behind the Kubernetes API.
    pub resources: oxflow_resources::Resources,
    /// The controllers that show their workloads as Pods, asked in turn
    /// where a pod's output is (`pods/NAME/log`).
    pub pod_logs: Vec<std::sync::Arc<dyn oxflow_resources::PodLogs>>,
}

impl AppState {
    fn store(&self) -> &Store {
        &self.store
    }
}

/// Every route, with its path.
fn routes() -> routes::Routes {
    routes::Routes::new()
        .nest("/apis/v2beta1", kfp::routes())
        .nest("/oxflow/v1", api::routes())
        .nest("/apis/kubeflow.org/v1beta1", katib::routes())
        .nest("/apis/serving.kserve.io/v1beta1", kserve::routes())
        .route("/openapi.json", axum::routing::get(openapi::serve))
        .merge(kube::routes())
        .merge(dashboard::routes())
}

/// The kinds `oxflow up` serves through the Kubernetes API.
pub fn registry() -> oxflow_resources::Registry {
    oxflow_resources::Registry::new(
        oxflow_resources::builtin::kinds()
            .into_iter()
            .chain(oxflow_serving::kinds::kinds())
            .chain(oxflow_tuning::kinds::kinds()),
    )
}

/// The path of every route [`router`] serves (`{param}` segments as
/// written), for the test that proves each refuses a request without
/// credentials.
#[doc(hidden)]
pub fn route_paths() -> Vec<String> {
    routes().into_parts().1
}

/// All routes. Every request must carry the [`oxflow_auth::Caller`] the
/// edge established (`oxflow_edge::serve` puts it in the request's
/// extensions); one without is refused with 401, so a router served any
/// other way fails closed.
pub fn router(state: AppState) -> Router {
    let (router, _) = routes().into_parts();
    router
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::not_found(format!("no such route: {}", uri.path()))
        })
        .layer(axum::middleware::map_response(json_errors))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            kserve::to_services,
        ))
        .layer(axum::middleware::from_fn(caller::require))
        .with_state(state)
}

/// Errors produced by axum itself (a body over the limit, a malformed
/// query string, a wrong method) come as plain text; clients of a JSON API
/// get them in the same JSON shape as ours.
async fn json_errors(resp: axum::response::Response) -> axum::response::Response {
    use axum::response::IntoResponse;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let body = axum::body::to_bytes(resp.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_owned();
    ApiError {
        status,
        message: if text.is_empty() {
            status.canonical_reason().unwrap_or("error").to_owned()
        } else {
            text
        },
    }
    .into_response()
}

/// Only the endpoint trials push metrics to (`kind: Push`), for `oxflow
/// tune`, which serves nothing else while an experiment runs.
pub fn katib_report_router(resources: oxflow_resources::Resources) -> Router {
    katib::report_router(resources)
}

/// Serves `app` on an already bound listener through the edge (Host and
/// Origin checks, header deadline, connection caps: `oxflow_edge`) until
/// `shutdown` is cancelled.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    app: Router,
    config: oxflow_edge::ServeConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    oxflow_edge::serve(listener, app, config, shutdown.cancelled_owned()).await
}
