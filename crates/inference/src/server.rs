//! Serving the data plane on TCP listeners: REST on one, gRPC on another.

use std::future::Future;
use std::sync::Arc;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::rest::DataPlane;

/// Serves REST on `http` and, when given, gRPC on `grpc`, until `shutdown`
/// completes; in-flight requests finish first.
pub async fn serve<F>(
    plane: Arc<DataPlane>,
    http: TcpListener,
    grpc: Option<TcpListener>,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    // Small writes (a response's HEADERS, DATA and trailers frames) must go
    // out at once: with Nagle's algorithm a second small write waits for
    // the client's delayed ACK, 40 ms a request.
    let http = http.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let grpc = grpc.map(|l| {
        l.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        })
    });
    let (tx, _) = tokio::sync::watch::channel(false);
    let rest = crate::rest::router(plane.clone());
    let stop = {
        let mut rx = tx.subscribe();
        async move {
            let _ = rx.wait_for(|&s| s).await;
        }
    };
    let rest = axum::serve(http, rest).with_graceful_shutdown(stop);
    let grpc = grpc.map(|listener| {
        let routes = tonic::service::Routes::new(crate::grpc::service(plane)).into_axum_router();
        let mut rx = tx.subscribe();
        axum::serve(listener, routes).with_graceful_shutdown(async move {
            let _ = rx.wait_for(|&s| s).await;
        })
    });
    let trigger = tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let result = match grpc {
        Some(grpc) => {
            let (a, b) = tokio::join!(rest, grpc);
            a.and(b)
        }
        None => rest.await,
    };
    trigger.abort();
    result
}
