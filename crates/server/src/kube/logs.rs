//! `GET /api/v1/namespaces/{ns}/pods/{name}/log`: a pod's output, as
//! `kubectl logs [-f] [--tail N]` and the Kubeflow SDKs' `get_job_logs`
//! read it. The file is the one the controller that runs the pod names
//! (`oxflow_resources::PodLogs`); with `follow`, bytes are sent as they are
//! written until the pod's container has ended and the file is read to its
//! end (or the client goes away).

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use oxflow_resources::builtin::POD;
use oxflow_resources::logs::{LogOptions, pick_container, send_pod_log};
use tokio::sync::mpsc;

use super::status::{KubeError, KubeResult};
use super::{Params, truthy};
use crate::AppState;

fn number(field: &str, v: Option<&str>) -> KubeResult<Option<u64>> {
    v.filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u64>().map_err(|_| {
                KubeError::bad_request(format!("{field}: {s:?} is not a non-negative integer"))
            })
        })
        .transpose()
}

pub(super) async fn pod_log(
    state: &AppState,
    namespace: &str,
    name: &str,
    q: &Params,
) -> KubeResult<Response> {
    let pod = state.resources.get(&POD, Some(namespace), name).await?;
    let container = pick_container(&pod, q.container.as_deref()).map_err(KubeError::bad_request)?;
    if truthy(q.previous.as_deref())? {
        return Err(KubeError::bad_request(format!(
            "previous terminated container \"{container}\" in pod \"{name}\" not found"
        )));
    }
    for (field, given) in [
        ("sinceSeconds", q.since_seconds.as_deref()),
        ("sinceTime", q.since_time.as_deref()),
    ] {
        if given.is_some_and(|v| !v.is_empty()) {
            return Err(KubeError::bad_request(format!(
                "{field}: Oxflow keeps a workload's output without the time of each line, so it cannot select lines by time"
            )));
        }
    }
    if truthy(q.timestamps.as_deref())? {
        return Err(KubeError::bad_request(
            "timestamps: Oxflow keeps a workload's output without the time of each line",
        ));
    }
    let opts = LogOptions {
        tail_lines: number("tailLines", q.tail_lines.as_deref())?,
        limit_bytes: number("limitBytes", q.limit_bytes.as_deref())?,
        follow: truthy(q.follow.as_deref())?,
    };
    let path = state.pod_logs.iter().find_map(|p| p.log_path(&pod));
    let (tx, rx) = mpsc::channel::<Vec<u8>>(8);
    tokio::spawn(send_pod_log(
        state.resources.clone(),
        namespace.to_owned(),
        name.to_owned(),
        path,
        opts,
        tx,
    ));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Bytes::from(b)), rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}
