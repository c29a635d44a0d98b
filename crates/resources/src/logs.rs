//! A pod's output as `pods/NAME/log` and `oxflow logs` read it: which
//! container, the last lines, a byte limit, and following the file while
//! the pod runs. The file is the one the controller that runs the pod names
//! ([`crate::PodLogs`]); this module only reads it, so the API and the CLI
//! (on a data directory, without a server) give the same answer.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

use crate::Resources;
use crate::builtin::POD;

/// How often a followed log is read for new bytes.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// What part of a log to send.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogOptions {
    /// Only the last lines (`tailLines`).
    pub tail_lines: Option<u64>,
    /// At most this many bytes (`limitBytes`).
    pub limit_bytes: Option<u64>,
    /// Keep sending what is appended until the pod has ended.
    pub follow: bool,
}

/// The container names of a pod's spec.
pub fn containers(pod: &Value) -> Vec<String> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The container a log request is for: the one named, or the pod's only
/// one. `Err` is the API server's message for a name that is not the pod's,
/// or for no name where the pod has several.
pub fn pick_container(pod: &Value, requested: Option<&str>) -> Result<String, String> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let names = containers(pod);
    match requested.filter(|c| !c.is_empty()) {
        Some(c) if !names.iter().any(|n| n == c) => {
            Err(format!("container {c} is not valid for pod {name}"))
        }
        Some(c) => Ok(c.to_owned()),
        None if names.len() > 1 => Err(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            names.join(" ")
        )),
        None => Ok(names.into_iter().next().unwrap_or_default()),
    }
}

/// Whether the pod's container may still write (Pending or Running).
pub fn running(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        None | Some("Pending" | "Running")
    )
}

/// The last `n` lines of `bytes`.
pub fn tail(bytes: &[u8], n: u64) -> &[u8] {
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

/// Sends pod `namespace/name`'s log at `path` to `tx` as `opts` asks;
/// when following, then what is appended until the pod has ended (or the
/// receiver goes away). A pod whose controller names no file has an empty
/// log.
pub async fn send_pod_log(
    resources: Resources,
    namespace: String,
    name: String,
    path: Option<PathBuf>,
    opts: LogOptions,
    tx: mpsc::Sender<Vec<u8>>,
) {
    let mut left = opts.limit_bytes.unwrap_or(u64::MAX);
    let mut offset = 0u64;
    let mut first = true;
    loop {
        // Whether the pod had ended before this read: then what the read
        // finds is the rest of its output.
        let ended = !opts.follow || {
            match resources.get(&POD, Some(&namespace), &name).await {
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
                if first && let Some(n) = opts.tail_lines {
                    chunk = tail(chunk, n);
                }
                let take = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                if take > 0 {
                    left -= take as u64;
                    if tx.send(chunk[..take].to_vec()).await.is_err() {
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
    use super::*;
    use serde_json::json;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(tail(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(tail(b"a\nb\n", 0), b"");
        assert_eq!(tail(b"", 3), b"");
    }

    #[test]
    fn the_container_is_the_named_one_or_the_only_one() {
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "main"}]}});
        assert_eq!(pick_container(&one, None).unwrap(), "main");
        assert_eq!(pick_container(&one, Some("")).unwrap(), "main");
        assert_eq!(
            pick_container(&one, Some("side")).unwrap_err(),
            "container side is not valid for pod p"
        );
        let two = json!({"metadata": {"name": "p"},
                         "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(
            pick_container(&two, None).unwrap_err(),
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        assert_eq!(pick_container(&two, Some("b")).unwrap(), "b");
    }
}
