//! What KServe's sidecars (Knative's queue-proxy and KServe's agent) do to
//! each request of a component, done in process: `containerConcurrency`
//! (a hard limit on requests in flight, the rest queued, a bounded queue),
//! `timeout` (504 past it) and `logger` (request and response copies sent
//! as CloudEvents to a URL).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use oxflow_core::Timestamp;
use serde_json::json;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::Failure;
use crate::spec::{ComponentExtension, LoggerMode};

/// Requests queued per permit beyond the limit before new ones are turned
/// away (Knative's queue-proxy breaker allows 10 per unit of concurrency).
const QUEUE_PER_PERMIT: usize = 10;
/// Largest body the logger copies (larger ones are served, not logged).
const MAX_LOGGED_BYTES: usize = 16 << 20;

/// The limits and copies applied to one revision's requests.
#[derive(Default)]
pub(super) struct Policy {
    timeout: Option<Duration>,
    limit: Option<Limit>,
    logger: Option<Arc<Logger>>,
}

struct Limit {
    permits: Arc<Semaphore>,
    in_flight: usize,
    waiting: AtomicUsize,
    max_waiting: usize,
}

struct Logger {
    url: String,
    mode: LoggerMode,
    client: reqwest::Client,
    service: String,
    namespace: String,
    endpoint: String,
    source: String,
    headers: Vec<String>,
}

/// What the logger needs to know about the component.
pub(super) struct Identity<'a> {
    pub service: &'a str,
    pub namespace: &'a str,
    /// The variant (`default`, a canary's name).
    pub endpoint: &'a str,
    /// The service's URL (the events' `source`).
    pub url: &'a str,
}

impl Policy {
    /// The policy a component asks for; a logger Oxflow cannot honour is
    /// an error naming the field.
    pub(super) fn new(c: &ComponentExtension, id: Identity<'_>) -> Result<Policy, Failure> {
        let limit = c.container_concurrency.map(|n| {
            let in_flight = n.get() as usize * (c.min_replicas.max(1) as usize);
            Limit {
                permits: Arc::new(Semaphore::new(in_flight)),
                in_flight,
                waiting: AtomicUsize::new(0),
                max_waiting: in_flight * QUEUE_PER_PERMIT,
            }
        });
        let logger = match &c.logger {
            None => None,
            Some(l) => {
                if l.storage.is_some() {
                    return Err(Failure::new(
                        "InvalidPredictorSpec",
                        "logger.storage: Oxflow sends logged payloads to logger.url only; give a URL",
                    ));
                }
                let Some(url) = &l.url else {
                    return Err(Failure::new(
                        "InvalidPredictorSpec",
                        "logger.url: required; give the URL that receives the CloudEvents",
                    ));
                };
                let _ = rustls::crypto::ring::default_provider().install_default();
                let client = reqwest::Client::builder()
                    .user_agent(concat!("oxflow/", env!("CARGO_PKG_VERSION")))
                    .connect_timeout(Duration::from_secs(5))
                    .timeout(Duration::from_secs(30))
                    .build()
                    .map_err(|e| {
                        Failure::new(
                            "InvalidPredictorSpec",
                            format!("logger: cannot set up an HTTP client: {e}"),
                        )
                    })?;
                Some(Arc::new(Logger {
                    url: url.as_str().to_owned(),
                    mode: l.mode,
                    client,
                    service: id.service.to_owned(),
                    namespace: id.namespace.to_owned(),
                    endpoint: id.endpoint.to_owned(),
                    source: id.url.to_owned(),
                    headers: l.metadata_headers.clone(),
                }))
            }
        };
        Ok(Policy {
            timeout: c
                .timeout_seconds
                .map(|s| Duration::from_secs(u64::from(s.get()))),
            limit,
            logger,
        })
    }

    /// Serves `request` with `router` under the policy.
    pub(super) async fn handle(&self, router: axum::Router, request: Request<Body>) -> Response {
        let _permit = match &self.limit {
            None => None,
            Some(limit) => {
                let queued = limit.waiting.fetch_add(1, Ordering::AcqRel);
                if queued >= limit.max_waiting && limit.permits.available_permits() == 0 {
                    limit.waiting.fetch_sub(1, Ordering::AcqRel);
                    return error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "overloaded: {} requests in flight (containerConcurrency) and {} queued; try again later",
                            limit.in_flight, limit.max_waiting
                        ),
                    );
                }
                let permit = limit.permits.clone().acquire_owned().await;
                limit.waiting.fetch_sub(1, Ordering::AcqRel);
                permit.ok()
            }
        };
        let logged = self
            .logger
            .as_ref()
            .filter(|_| request.method() == Method::POST)
            .cloned();
        let Some(logger) = logged else {
            return self.call(router, request).await;
        };
        // Copy the request body, then serve the copy.
        let (parts, body) = request.into_parts();
        let bytes = match axum::body::to_bytes(body, MAX_LOGGED_BYTES).await {
            Ok(b) => b,
            Err(e) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the request body could not be read for the logger: {e}"),
                );
            }
        };
        let id = oxflow_core::new_id();
        if matches!(logger.mode, LoggerMode::All | LoggerMode::Request) {
            logger.send(
                "org.kubeflow.serving.inference.request",
                &id,
                &parts.headers,
                bytes.clone(),
            );
        }
        let headers = parts.headers.clone();
        let response = self
            .call(router, Request::from_parts(parts, Body::from(bytes)))
            .await;
        if !matches!(logger.mode, LoggerMode::All | LoggerMode::Response) {
            return response;
        }
        let (parts, body) = response.into_parts();
        match axum::body::to_bytes(body, MAX_LOGGED_BYTES).await {
            Ok(bytes) => {
                logger.send(
                    "org.kubeflow.serving.inference.response",
                    &id,
                    &headers,
                    bytes.clone(),
                );
                Response::from_parts(parts, Body::from(bytes))
            }
            Err(e) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the response could not be read for the logger: {e}"),
            ),
        }
    }

    async fn call(&self, router: axum::Router, request: Request<Body>) -> Response {
        let serve = router.oneshot(request);
        let result = match self.timeout {
            None => serve.await,
            Some(t) => match tokio::time::timeout(t, serve).await {
                Ok(r) => r,
                Err(_) => {
                    return error(
                        StatusCode::GATEWAY_TIMEOUT,
                        format!(
                            "the request took longer than the component's timeout of {} s",
                            t.as_secs()
                        ),
                    );
                }
            },
        };
        match result {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }
}

impl Logger {
    /// Sends one CloudEvent (binary content mode) in the background: a
    /// slow or absent sink never slows the request down.
    fn send(
        self: &Arc<Self>,
        kind: &'static str,
        id: &str,
        request_headers: &HeaderMap,
        body: Bytes,
    ) {
        let this = self.clone();
        let id = id.to_owned();
        let mut extra = Vec::new();
        for name in &self.headers {
            if let Some(v) = request_headers
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
            {
                extra.push((name.to_ascii_lowercase(), v.to_owned()));
            }
        }
        tokio::spawn(async move {
            let mut req = this
                .client
                .post(&this.url)
                .header("ce-specversion", "1.0")
                .header("ce-id", &id)
                .header("ce-type", kind)
                .header("ce-source", &this.source)
                .header("ce-time", Timestamp::now().to_rfc3339())
                .header("ce-inferenceservicename", &this.service)
                .header("ce-namespace", &this.namespace)
                .header("ce-component", "predictor")
                .header("ce-endpoint", &this.endpoint)
                .header("content-type", "application/json");
            if !extra.is_empty() {
                let metadata: serde_json::Map<String, serde_json::Value> =
                    extra.into_iter().map(|(k, v)| (k, json!([v]))).collect();
                req = req.header(
                    "ce-metadata",
                    serde_json::Value::Object(metadata).to_string(),
                );
            }
            match req.body(body).send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => {
                    tracing::warn!(url = %this.url, status = %r.status(), "The payload logger's sink refused an event.")
                }
                Err(e) => {
                    tracing::warn!(url = %this.url, error = %e, "Could not send an event to the payload logger's sink.")
                }
            }
        });
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}
