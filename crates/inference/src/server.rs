//! Serving the data plane on TCP listeners: REST on one, gRPC on another,
//! each through the edge (Host/Origin checks, header deadline, connection
//! caps; see `oxflow_edge`).

use std::future::Future;
use std::sync::Arc;

use oxflow_edge::ServeConfig;
use tokio::net::TcpListener;

use crate::rest::DataPlane;

/// Serves REST on `http` and, when given, gRPC on `grpc`, each with its own
/// edge configuration, until `shutdown` completes; in-flight requests
/// finish first.
pub async fn serve<F>(
    plane: Arc<DataPlane>,
    http: (TcpListener, ServeConfig),
    grpc: Option<(TcpListener, ServeConfig)>,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let (tx, _) = tokio::sync::watch::channel(false);
    let stopped = |tx: &tokio::sync::watch::Sender<bool>| {
        let mut rx = tx.subscribe();
        async move {
            let _ = rx.wait_for(|&s| s).await;
        }
    };
    let rest = crate::rest::router(plane.clone());
    let rest = oxflow_edge::serve(http.0, rest, http.1, stopped(&tx));
    let grpc = grpc.map(|(listener, config)| {
        let routes = tonic::service::Routes::new(crate::grpc::service(plane)).into_axum_router();
        oxflow_edge::serve(listener, routes, config, stopped(&tx))
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
