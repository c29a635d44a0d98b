//! The REST front end: V2 (Open Inference Protocol, with the binary tensor
//! extension and the repository extension), V1 (KServe) and `/metrics`.
//!
//! Every error leaves as `{"error": "..."}` with the status of its
//! [`InferError`] kind, including bodies that are too large or not JSON:
//! clients such as `tritonclient` decode nothing else.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::error::InferError;
use crate::json;
use crate::metrics::Metrics;
use crate::repository::Repository;
use crate::tensor::Tensor;
use crate::types::{InferRequest, InferResponse, RequestedOutput};
use crate::v1;

/// Who decides which models a data plane serves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ModelControl {
    /// Clients load and unload models through the repository API
    /// (`oxflow serve`).
    #[default]
    RepositoryApi,
    /// A controller does: the plane serves the models of an
    /// InferenceService, whose status must stay true to what is served, so
    /// the repository API's load and unload are refused with 403.
    Managed {
        /// What manages the models, as its error message names it
        /// (`InferenceService NS/NAME`).
        owner: String,
    },
}

/// Settings of the REST and gRPC front ends.
#[derive(Debug, Clone)]
pub struct PlaneConfig {
    /// Bodies larger than this are refused with 413.
    pub max_body_bytes: usize,
    /// Whether the repository API may load and unload models.
    pub control: ModelControl,
    /// `name` in server metadata.
    pub server_name: String,
    /// `version` in server metadata.
    pub server_version: String,
}

impl Default for PlaneConfig {
    fn default() -> Self {
        PlaneConfig {
            max_body_bytes: 64 * 1024 * 1024,
            control: ModelControl::RepositoryApi,
            server_name: "oxflow".into(),
            server_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// What both front ends share: the models, the metrics and the settings.
pub struct DataPlane {
    /// The models by name.
    pub repository: Arc<Repository>,
    /// Request counters and histograms.
    pub metrics: Arc<Metrics>,
    /// Limits and identity.
    pub config: PlaneConfig,
}

/// The extensions `GET /v2` advertises.
pub const EXTENSIONS: [&str; 3] = ["binary_tensor_data", "model_repository", "statistics"];

impl DataPlane {
    /// Runs `request` on `name`, selecting and checking the requested
    /// outputs. Shared by REST and gRPC.
    pub async fn infer(
        &self,
        name: &str,
        version: Option<&str>,
        request: InferRequest,
    ) -> Result<InferResponse, InferError> {
        let model = self.repository.get(name).await?;
        check_version(model.metadata(), name, version)?;
        let id = request.id.clone();
        let requested = request.outputs.clone();
        let outputs = model.infer(request).await?;
        let outputs = select_outputs(name, &requested, outputs)?;
        Ok(InferResponse {
            model_name: name.to_string(),
            model_version: version.map(str::to_string),
            id,
            parameters: Default::default(),
            outputs,
        })
    }

    /// The repository API's load: refused on a managed plane. Shared by
    /// REST and gRPC.
    pub async fn load_model(&self, name: &str) -> Result<(), InferError> {
        self.check_control()?;
        self.repository.load(name).await
    }

    /// The repository API's unload: refused on a managed plane. Shared by
    /// REST and gRPC.
    pub fn unload_model(&self, name: &str) -> Result<(), InferError> {
        self.check_control()?;
        self.repository.unload(name)
    }

    fn check_control(&self) -> Result<(), InferError> {
        match &self.config.control {
            ModelControl::RepositoryApi => Ok(()),
            ModelControl::Managed { owner } => Err(InferError::Forbidden(format!(
                "the models of {owner} are managed by its controller and cannot be loaded or \
                 unloaded through the repository API; change the {owner} instead"
            ))),
        }
    }
}

/// A version segment is accepted when the model lists it, or when the
/// model is unversioned (it then has exactly one version).
pub fn check_version(
    meta: &crate::types::ModelMetadata,
    name: &str,
    version: Option<&str>,
) -> Result<(), InferError> {
    match version {
        Some(v) if !meta.versions.is_empty() && !meta.versions.iter().any(|x| x == v) => {
            Err(InferError::ModelNotFound(format!("{name} version {v}")))
        }
        _ => Ok(()),
    }
}

/// The requested outputs in the order asked for, or all when none were.
pub fn select_outputs(
    model: &str,
    requested: &[RequestedOutput],
    mut outputs: Vec<Tensor>,
) -> Result<Vec<Tensor>, InferError> {
    if requested.is_empty() {
        return Ok(outputs);
    }
    let mut selected = Vec::with_capacity(requested.len());
    for r in requested {
        match outputs.iter().position(|t| t.name == r.name) {
            Some(i) => selected.push(outputs.swap_remove(i)),
            None => {
                let known: Vec<&str> = outputs.iter().map(|t| t.name.as_str()).collect();
                return Err(InferError::invalid(format!(
                    "unknown output '{}' requested from model {model}; it has {}",
                    r.name,
                    if known.is_empty() {
                        "no other outputs".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        }
    }
    Ok(selected)
}

/// The router with every V1, V2 and metrics route.
pub fn router(plane: Arc<DataPlane>) -> Router {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models", get(list_models))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/infer", post(infer))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(model_metadata_v),
        )
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(model_ready_v),
        )
        .route("/v2/models/{name}/versions/{version}/infer", post(infer_v))
        .route("/v2/repository/index", post(repository_index))
        .route("/v2/repository/models/{name}/load", post(repository_load))
        .route(
            "/v2/repository/models/{name}/unload",
            post(repository_unload),
        )
        .route("/v1/models", get(list_models))
        .route("/v1/models/{name}", get(v1_model).post(v1_verb))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(plane)
}

type Plane = State<Arc<DataPlane>>;

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    let body = serde_json::to_vec(value).expect("serialising to memory cannot fail");
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `{"error": ...}` with the kind's status.
pub fn error_response(error: &InferError) -> Response {
    let status =
        StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json::error_body(error),
    )
        .into_response()
}

async fn not_found(request: Request) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &serde_json::json!({ "error": format!(
            "no endpoint {} {}; the inference API is under /v2 (Open Inference Protocol) and /v1 (KServe V1)",
            request.method(),
            request.uri().path()
        ) }),
    )
}

async fn server_metadata(State(p): Plane) -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "name": p.config.server_name,
            "version": p.config.server_version,
            "extensions": EXTENSIONS,
        }),
    )
}

async fn live() -> Response {
    json_response(StatusCode::OK, &serde_json::json!({ "live": true }))
}

async fn ready(State(p): Plane) -> Response {
    if p.repository.all_ready() {
        json_response(StatusCode::OK, &serde_json::json!({ "ready": true }))
    } else {
        let index = p.repository.index();
        let names = |state: &str| -> Vec<String> {
            index
                .iter()
                .filter(|e| e.state == state)
                .map(|e| e.name.clone())
                .collect()
        };
        let (loading, failed) = (names("LOADING"), names("UNAVAILABLE"));
        let mut reason = Vec::new();
        if !loading.is_empty() {
            reason.push(format!("loading: {}", loading.join(", ")));
        }
        if !failed.is_empty() {
            reason.push(format!("failed or unloaded: {}", failed.join(", ")));
        }
        error_response(&InferError::NotReady {
            name: "server".into(),
            reason: reason.join("; "),
        })
    }
}

async fn list_models(State(p): Plane) -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::json!({ "models": p.repository.names() }),
    )
}

async fn metadata_of(p: &DataPlane, name: &str, version: Option<&str>) -> Response {
    let result = async {
        let model = p.repository.get(name).await?;
        check_version(model.metadata(), name, version)?;
        Ok::<_, InferError>(serde_json::to_value(model.metadata()).unwrap_or_default())
    }
    .await;
    match result {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => error_response(&e),
    }
}

async fn model_metadata(State(p): Plane, Path(name): Path<String>) -> Response {
    metadata_of(&p, &name, None).await
}

async fn model_metadata_v(State(p): Plane, Path((name, v)): Path<(String, String)>) -> Response {
    metadata_of(&p, &name, Some(&v)).await
}

fn ready_of(p: &DataPlane, name: &str) -> Response {
    match p.repository.state(name) {
        None => error_response(&InferError::ModelNotFound(name.to_string())),
        Some(state) => match state.reason() {
            None => json_response(
                StatusCode::OK,
                &serde_json::json!({ "name": name, "ready": true }),
            ),
            Some(reason) => error_response(&InferError::NotReady {
                name: name.to_string(),
                reason,
            }),
        },
    }
}

async fn model_ready(State(p): Plane, Path(name): Path<String>) -> Response {
    ready_of(&p, &name)
}

async fn model_ready_v(State(p): Plane, Path((name, _v)): Path<(String, String)>) -> Response {
    ready_of(&p, &name)
}

/// Reads the body, refusing it with 413 beyond the limit.
async fn read_body(p: &DataPlane, body: Body) -> Result<Bytes, InferError> {
    axum::body::to_bytes(body, p.config.max_body_bytes)
        .await
        .map_err(|_| {
            InferError::TooLarge(format!(
                "the request body is larger than the server's limit of {} bytes",
                p.config.max_body_bytes
            ))
        })
}

fn header_len(headers: &HeaderMap) -> Result<Option<usize>, InferError> {
    match headers.get(json::HEADER_CONTENT_LENGTH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .map(Some)
            .ok_or_else(|| {
                InferError::invalid("Inference-Header-Content-Length must be a byte count")
            }),
    }
}

async fn infer(
    State(p): Plane,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    infer_any(&p, name, None, headers, body).await
}

async fn infer_v(
    State(p): Plane,
    Path((name, v)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    infer_any(&p, name, Some(v), headers, body).await
}

async fn infer_any(
    p: &DataPlane,
    name: String,
    version: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let result = async {
        let json_len = header_len(&headers)?;
        let body = read_body(p, body).await?;
        let request = json::decode_request(&body, json_len)?;
        drop(body);
        let request_parameters = request.parameters.clone();
        let requested = request.outputs.clone();
        let response = p.infer(&name, version.as_deref(), request).await?;
        Ok::<_, InferError>(json::encode_response(&response, &|output| {
            json::wants_binary(&request_parameters, &requested, output)
        }))
    }
    .await;
    let metrics = p.metrics.model(&name);
    match result {
        Ok(encoded) => {
            metrics.request("v2", 200, started.elapsed());
            let mut response = Response::new(Body::from(encoded.body));
            let headers = response.headers_mut();
            match encoded.json_len {
                Some(n) => {
                    headers.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/octet-stream"),
                    );
                    headers.insert(json::HEADER_CONTENT_LENGTH, HeaderValue::from(n));
                }
                None => {
                    headers.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                }
            }
            response
        }
        Err(e) => {
            metrics.request("v2", e.http_status(), started.elapsed());
            error_response(&e)
        }
    }
}

#[derive(serde::Deserialize, Default)]
struct IndexRequest {
    #[serde(default)]
    ready: bool,
}

async fn repository_index(State(p): Plane, body: Bytes) -> Response {
    let filter: IndexRequest = if body.iter().all(u8::is_ascii_whitespace) {
        IndexRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(f) => f,
            Err(e) => {
                return error_response(&InferError::invalid(format!("invalid index request: {e}")));
            }
        }
    };
    let rows: Vec<_> = p
        .repository
        .index()
        .into_iter()
        .filter(|r| !filter.ready || r.state == "READY")
        .collect();
    json_response(
        StatusCode::OK,
        &serde_json::to_value(rows).unwrap_or_default(),
    )
}

async fn repository_load(State(p): Plane, Path(name): Path<String>) -> Response {
    match p.load_model(&name).await {
        Ok(()) => json_response(StatusCode::OK, &serde_json::json!({})),
        Err(e) => error_response(&e),
    }
}

async fn repository_unload(State(p): Plane, Path(name): Path<String>) -> Response {
    match p.unload_model(&name) {
        Ok(()) => json_response(StatusCode::OK, &serde_json::json!({})),
        Err(e) => error_response(&e),
    }
}

async fn v1_model(State(p): Plane, Path(name): Path<String>) -> Response {
    match p.repository.state(&name) {
        None => error_response(&InferError::ModelNotFound(name)),
        Some(state) => {
            let ready = state.reason().is_none();
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json_response(status, &serde_json::json!({ "name": name, "ready": ready }))
        }
    }
}

/// `POST /v1/models/{name}:predict` and `:explain` (the verb is part of the
/// last path segment).
async fn v1_verb(State(p): Plane, Path(segment): Path<String>, body: Body) -> Response {
    let started = Instant::now();
    let Some((name, verb)) = segment.rsplit_once(':') else {
        return error_response(&InferError::invalid(format!(
            "POST /v1/models/{segment} needs a verb: /v1/models/{segment}:predict or :explain"
        )));
    };
    let result = async {
        let body = read_body(&p, body).await?;
        let model = p.repository.get(name).await?;
        match verb {
            "predict" => {
                if let Some(forward) = model.predict_v1_raw(body.clone()) {
                    return forward.await;
                }
                let request = v1::decode_request(&body)?;
                let outputs = model.infer(request).await?;
                let first = outputs.first().ok_or_else(|| {
                    InferError::internal(format!("model {name} returned no outputs"))
                })?;
                Ok(Bytes::from(v1::encode_predictions(first)))
            }
            "explain" => model.explain(body).await,
            other => Err(InferError::invalid(format!(
                "unknown verb ':{other}'; V1 has :predict and :explain"
            ))),
        }
    }
    .await;
    let metrics = p.metrics.model(name);
    match result {
        Ok(bytes) => {
            metrics.request("v1", 200, started.elapsed());
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                bytes,
            )
                .into_response()
        }
        Err(e) => {
            metrics.request("v1", e.http_status(), started.elapsed());
            error_response(&e)
        }
    }
}

async fn metrics(State(p): Plane) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        p.metrics.render(),
    )
        .into_response()
}
