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
    limit: Option<Arc<Limit>>,
    logger: Option<Arc<Logger>>,
}

/// `containerConcurrency` for every replica together.
struct Limit {
    permits: Arc<Semaphore>,
    per_replica: usize,
    /// Requests that may be in flight: `per_replica` times the replicas.
    in_flight: AtomicUsize,
    waiting: AtomicUsize,
}

impl Limit {
    fn max_waiting(&self) -> usize {
        self.in_flight.load(Ordering::Acquire) * QUEUE_PER_PERMIT
    }

    /// Follows the number of replicas: permits are added at once, and
    /// taken away as requests in flight give them back.
    fn set_replicas(&self, replicas: usize) {
        let new = self.per_replica * replicas.max(1);
        let old = self.in_flight.swap(new, Ordering::AcqRel);
        if new > old {
            self.permits.add_permits(new - old);
        } else if new < old {
            let permits = self.permits.clone();
            let gone = u32::try_from(old - new).unwrap_or(u32::MAX);
            tokio::spawn(async move {
                if let Ok(p) = permits.acquire_many_owned(gone).await {
                    p.forget();
                }
            });
        }
    }
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
            let per_replica = n.get() as usize;
            let in_flight = per_replica * (c.min_replicas.max(1) as usize);
            Arc::new(Limit {
                permits: Arc::new(Semaphore::new(in_flight)),
                per_replica,
                in_flight: AtomicUsize::new(in_flight),
                waiting: AtomicUsize::new(0),
            })
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

    /// What keeps `containerConcurrency` per replica as the replicas
    /// change: called with their number.
    pub(super) fn resizer(&self) -> Box<dyn Fn(usize) + Send + Sync> {
        let limit = self.limit.clone();
        Box::new(move |replicas| {
            if let Some(l) = &limit {
                l.set_replicas(replicas);
            }
        })
    }

    /// Serves `request` with `router` under the policy.
    pub(super) async fn handle(&self, router: axum::Router, request: Request<Body>) -> Response {
        let _permit = match &self.limit {
            None => None,
            Some(limit) => {
                let queued = limit.waiting.fetch_add(1, Ordering::AcqRel);
                let max_waiting = limit.max_waiting();
                if queued >= max_waiting && limit.permits.available_permits() == 0 {
                    limit.waiting.fetch_sub(1, Ordering::AcqRel);
                    return error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "overloaded: {} requests in flight (containerConcurrency) and {max_waiting} queued; try again later",
                            limit.in_flight.load(Ordering::Acquire)
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

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn policy(per_replica: u32, min_replicas: u32) -> Policy {
        let c = ComponentExtension {
            container_concurrency: NonZeroU32::new(per_replica),
            min_replicas,
            ..Default::default()
        };
        let id = Identity {
            service: "s",
            namespace: "default",
            endpoint: "default",
            url: "http://s",
        };
        Policy::new(&c, id).unwrap()
    }

    #[tokio::test]
    async fn the_limit_follows_the_replicas() {
        let p = policy(2, 2);
        let limit = p.limit.clone().unwrap();
        assert_eq!(limit.permits.available_permits(), 4);
        p.resizer()(3);
        assert_eq!(limit.permits.available_permits(), 6);
        assert_eq!(limit.max_waiting(), 60);
        // Scaling in while a request holds a permit: the permits go as
        // they come back, never below what the replicas allow.
        let held = limit.permits.clone().acquire_owned().await.unwrap();
        p.resizer()(1);
        assert_eq!(limit.in_flight.load(Ordering::Acquire), 2);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while limit.permits.available_permits() != 1 && std::time::Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        assert_eq!(limit.permits.available_permits(), 1);
        drop(held);
        assert_eq!(limit.permits.available_permits(), 2);
    }
}
