//! The Open Inference Protocol over gRPC for every InferenceService, on one
//! listener (`oxflow up --grpc-addr`).
//!
//! KServe reaches a service's gRPC endpoint through its host name (the
//! `:authority`, `grpcurl -authority NAME.NS.example.com`). That works
//! here too; a client that sets none (tritonclient's default authority is
//! the address it dials) is routed by the model name in the request
//! instead: the service of that name in the default namespace, or the
//! service of the TrainedModel of that name. Requests
//! that name no model (server live/ready/metadata) answer for the server.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use axum::response::Response;
use oxflow_core::Namespace;
use oxflow_inference::metrics::Metrics;
use oxflow_inference::{DataPlane, PlaneConfig, Repository};
use tower::ServiceExt;

use super::{Route, ServingController};

/// Largest gRPC request carried (as the REST body limit).
const MAX_GRPC_BYTES: usize = 64 << 20;

/// The first string in field 1 or 2 of a protobuf message: where every
/// model-scoped request of the protocol keeps the model's name (`name`,
/// `model_name`; Triton's load/unload use field 2).
fn model_name(message: &[u8]) -> Option<String> {
    let mut rest = message;
    let mut found: Option<(u64, String)> = None;
    while !rest.is_empty() {
        let (key, n) = varint(rest)?;
        rest = &rest[n..];
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                let (_, n) = varint(rest)?;
                rest = &rest[n..];
            }
            1 => rest = rest.get(8..)?,
            5 => rest = rest.get(4..)?,
            2 => {
                let (len, n) = varint(rest)?;
                let len = usize::try_from(len).ok()?;
                let bytes = rest.get(n..n + len)?;
                rest = &rest[n + len..];
                if (field == 1 || field == 2)
                    && found.as_ref().is_none_or(|(f, _)| *f > field)
                    && let Ok(s) = std::str::from_utf8(bytes)
                    && !s.is_empty()
                {
                    found = Some((field, s.to_owned()));
                }
            }
            _ => return None,
        }
    }
    found.map(|(_, s)| s)
}

fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The message of a unary gRPC request body (5-byte frame header: a
/// compression flag and a big-endian length). `None` for compressed or
/// malformed frames.
fn message(body: &[u8]) -> Option<&[u8]> {
    let (&flag, rest) = body.split_first()?;
    if flag != 0 {
        return None;
    }
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    rest.get(4..4 + len)
}

/// A gRPC error response (HTTP 200 with `grpc-status` trailers-only).
fn grpc_error(code: tonic::Code, message: &str) -> Response {
    let status = tonic::Status::new(code, message);
    status.into_http()
}

impl ServingController {
    /// Serves one gRPC request of the inference protocol: to the service
    /// its `:authority` names, else to the one its model name names.
    pub async fn dispatch_grpc(&self, request: Request<Body>) -> Response {
        let host = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                request
                    .headers()
                    .get(axum::http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            });
        let by_host = host.as_deref().and_then(|h| self.resolve(h));
        let (parts, body) = request.into_parts();
        let bytes = match axum::body::to_bytes(body, MAX_GRPC_BYTES).await {
            Ok(b) => b,
            Err(e) => {
                return grpc_error(
                    tonic::Code::ResourceExhausted,
                    &format!("request body: {e}"),
                );
            }
        };
        let named = message(&bytes).and_then(model_name);
        let request = Request::from_parts(parts, Body::from(bytes));
        let (ns, name, route) = match (by_host, named) {
            (Some((name, ns, route)), _) => (ns, name, route),
            (None, Some(model)) => (
                Namespace::DEFAULT.to_owned(),
                self.service_serving(Namespace::DEFAULT, model),
                Route::Predictor,
            ),
            // Server-level calls: answered by an empty plane (live, and
            // ready when nothing is loading).
            (None, None) => return self.server_grpc(request).await,
        };
        let revision = {
            let services = self
                .inner
                .services
                .read()
                .unwrap_or_else(|e| e.into_inner());
            let Ok(key_ns) = Namespace::new(ns.clone()) else {
                return grpc_error(tonic::Code::NotFound, &format!("no namespace {ns}"));
            };
            let Some(e) = services.get(&(key_ns, name.clone())) else {
                return grpc_error(
                    tonic::Code::NotFound,
                    &format!(
                        "no inference service {name} in namespace {ns}; name the service as the model, or set the authority to NAME.NAMESPACE"
                    ),
                );
            };
            match self.choose(e, route) {
                Some(r) => r.clone(),
                None => {
                    return grpc_error(
                        tonic::Code::Unavailable,
                        &format!("inference service {ns}/{name} is not ready"),
                    );
                }
            }
        };
        let Some(grpc) = revision.grpc.clone() else {
            return grpc_error(
                tonic::Code::Unimplemented,
                &format!(
                    "inference service {ns}/{name} is served by a command that speaks HTTP only"
                ),
            );
        };
        let _in_flight = revision.scale.as_ref().map(|s| s.enter().0);
        match grpc.oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }

    async fn server_grpc(&self, request: Request<Body>) -> Response {
        let plane = Arc::new(DataPlane {
            repository: Arc::new(Repository::new(None, self.inner.config.hold)),
            metrics: Arc::new(Metrics::default()),
            config: PlaneConfig::default(),
        });
        match oxflow_inference::grpc::router(plane).oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }
}

/// Serves [`ServingController::dispatch_grpc`] on `listener` (HTTP/2)
/// through the edge (`config`) until `shutdown` is cancelled.
pub async fn serve_grpc(
    controller: ServingController,
    listener: tokio::net::TcpListener,
    config: oxflow_edge::ServeConfig,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let app = axum::Router::new().fallback(move |request: Request<Body>| {
        let controller = controller.clone();
        async move { controller.dispatch_grpc(request).await }
    });
    oxflow_edge::serve(listener, app, config, shutdown.cancelled_owned()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_name_is_read_from_field_1_or_2() {
        // ModelInferRequest { model_name: "iris", model_version: "", id: "x" }
        let infer = [0x0a, 4, b'i', b'r', b'i', b's', 0x1a, 1, b'x'];
        assert_eq!(model_name(&infer).as_deref(), Some("iris"));
        // Triton's load request: repository_name (1) empty, model_name in 2.
        let load = [0x0a, 0, 0x12, 2, b'l', b'r'];
        assert_eq!(model_name(&load).as_deref(), Some("lr"));
        // A varint field before it, and garbage.
        let varint_first = [0x08, 0x96, 0x01, 0x0a, 1, b'm'];
        assert_eq!(model_name(&varint_first).as_deref(), Some("m"));
        assert_eq!(model_name(&[0x0a, 200]), None);
        assert_eq!(model_name(&[]), None);
        // Framing: uncompressed only.
        assert_eq!(message(&[0, 0, 0, 0, 2, 7, 8]), Some(&[7u8, 8][..]));
        assert_eq!(message(&[1, 0, 0, 0, 2, 7, 8]), None);
        assert_eq!(message(&[0, 0, 0, 0, 9, 7]), None);
    }
}
