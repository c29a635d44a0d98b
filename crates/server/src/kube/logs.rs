//! `GET /api/v1/namespaces/{ns}/pods/{name}/log`: a pod's output, as
//! `kubectl logs [-f] [--tail N]` and the Kubeflow SDKs' `get_job_logs`
//! read it. The file is the one the controller that runs the pod names
//! (`oxflow_resources::PodLogs`); with `follow`, bytes are sent as they are
//! written until the pod's container has ended and the file is read to its
//! end (or the client goes away).

use std::convert::Infallible;
use std::path::PathBuf;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use oxflow_resources::builtin::POD;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

use super::status::{KubeError, KubeResult};
use super::{Params, truthy};
use crate::AppState;

/// How often a followed log is read for new bytes.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// The container names of a pod's spec.
fn containers(pod: &Value) -> Vec<String> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the pod's container may still write (Pending or Running).
fn running(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        None | Some("Pending" | "Running")
    )
}

fn number(field: &str, v: Option<&str>) -> KubeResult<Option<u64>> {
    v.filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u64>().map_err(|_| {
                KubeError::bad_request(format!("{field}: {s:?} is not a non-negative integer"))
            })
        })
        .transpose()
}

/// The last `n` lines of `bytes`.
fn tail(bytes: &[u8], n: u64) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &bytes[i + 1..];
            }
        }
    }
    bytes
}

pub(super) async fn pod_log(
    state: &AppState,
    namespace: &str,
    name: &str,
    q: &Params,
) -> KubeResult<Response> {
    let pod = state.resources.get(&POD, Some(namespace), name).await?;
    let names = containers(&pod);
    match q.container.as_deref().filter(|c| !c.is_empty()) {
        Some(c) if !names.iter().any(|n| n == c) => {
            return Err(KubeError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None if names.len() > 1 => {
            return Err(KubeError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )));
        }
        _ => {}
    }
    let container = q
        .container
        .clone()
        .or_else(|| names.first().cloned())
        .unwrap_or_default();
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
    let tail_lines = number("tailLines", q.tail_lines.as_deref())?;
    let limit = number("limitBytes", q.limit_bytes.as_deref())?;
    let follow = truthy(q.follow.as_deref())?;
    let path = state.pod_logs.iter().find_map(|p| p.log_path(&pod));
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    tokio::spawn(send_log(
        state.clone(),
        namespace.to_owned(),
        name.to_owned(),
        path,
        tail_lines,
        limit,
        follow,
        tx,
    ));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
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

/// Sends the log (its last `tail_lines`, at most `limit` bytes); when
/// following, then what is appended until the pod has ended.
#[allow(clippy::too_many_arguments)]
async fn send_log(
    state: AppState,
    namespace: String,
    name: String,
    path: Option<PathBuf>,
    tail_lines: Option<u64>,
    limit: Option<u64>,
    follow: bool,
    tx: mpsc::Sender<Bytes>,
) {
    let mut left = limit.unwrap_or(u64::MAX);
    let mut offset = 0u64;
    let mut first = true;
    loop {
        // Whether the pod had ended before this read: then what the read
        // finds is the rest of its output.
        let ended = !follow || {
            match state.resources.get(&POD, Some(&namespace), &name).await {
                Ok(pod) => !running(&pod),
                Err(_) => true,
            }
        };
        if let Some(path) = &path
            && let Ok(mut f) = tokio::fs::File::open(path).await
        {
            let mut buf = Vec::new();
            if f.seek(std::io::SeekFrom::Start(offset)).await.is_ok()
                && f.read_to_end(&mut buf).await.is_ok()
            {
                offset += buf.len() as u64;
                let mut chunk: &[u8] = &buf;
                if first && let Some(n) = tail_lines {
                    chunk = tail(chunk, n);
                }
                let take = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                if take > 0 {
                    left -= take as u64;
                    if tx
                        .send(Bytes::copy_from_slice(&chunk[..take]))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        first = false;
        if ended || left == 0 {
            return;
        }
        tokio::select! {
            () = tx.closed() => return,
            () = tokio::time::sleep(FOLLOW_POLL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(tail(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(tail(b"a\nb\n", 0), b"");
        assert_eq!(tail(b"", 3), b"");
    }
}
