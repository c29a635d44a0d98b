//! The Pods that stand for processes controllers run (a trial, a pipeline
//! step, a serving copy): their `status` (one container, its state, the
//! pod's phase, as the kubelet reports it) and [`PodKills`], which ends a
//! workload whose pod is deleted. One of each for every controller.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use oxflow_core::Timestamp;
use oxflow_store::WatchEventType;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::Resources;
use crate::builtin::POD;

/// What makes deleting a pod end its workload, for every controller that
/// shows its processes as pods: each running workload's kill switch by
/// pod, cancelled (and forgotten) when the change feed reports the pod
/// deleted.
#[derive(Clone)]
pub struct PodKills {
    inner: Arc<Mutex<HashMap<(String, String), CancellationToken>>>,
}

impl PodKills {
    /// Kill switches that follow `resources`' change feed from now on
    /// (the watching task ends with the last clone).
    pub fn watch(resources: &Resources) -> Self {
        let this = Self {
            inner: Arc::new(Mutex::new(HashMap::new())),
        };
        let mut feed = resources.subscribe();
        let weak = Arc::downgrade(&this.inner);
        tokio::spawn(async move {
            loop {
                let change = match feed.recv().await {
                    Ok(c) => c,
                    // Missed changes: a workload whose pod went meanwhile
                    // finds out when it next writes the pod.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                };
                let e = &change.event;
                if e.event_type != WatchEventType::Deleted
                    || e.key.group != POD.group
                    || e.key.kind != POD.kind
                {
                    continue;
                }
                let Some(inner) = weak.upgrade() else { return };
                let key = (e.key.namespace.clone(), e.key.name.clone());
                let kill = inner.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                if let Some(kill) = kill {
                    tracing::info!(pod = %key.1, namespace = %key.0, "A workload's pod was deleted; ending its process.");
                    kill.cancel();
                }
            }
        });
        this
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), CancellationToken>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cancels `kill` once pod `name` in `namespace` is deleted.
    pub fn on_delete(&self, namespace: &str, name: &str, kill: CancellationToken) {
        self.lock()
            .insert((namespace.to_owned(), name.to_owned()), kill);
    }

    /// Forgets pod `name` (its workload ended, or its controller deletes
    /// the pod itself).
    pub fn forget(&self, namespace: &str, name: &str) {
        self.lock().remove(&(namespace.to_owned(), name.to_owned()));
    }
}

/// The container's state.
#[derive(Debug, Clone)]
pub enum ContainerState {
    /// Not started yet.
    Waiting,
    /// Its process runs but is not ready yet (its readiness probe has
    /// not passed).
    Starting,
    /// Its process runs (and is ready).
    Running,
    /// Its process ended: exit code 0 is a `Succeeded` pod, anything else
    /// a `Failed` one.
    Terminated {
        /// The exit code (137 for a killed process, as Kubernetes shows it).
        exit_code: i32,
        /// When it ended.
        finished: Timestamp,
        /// Why, in words (`Completed`, `Error`, or a controller's reason).
        reason: String,
    },
}

/// What a pod's status says.
#[derive(Debug, Clone)]
pub struct PodState<'a> {
    /// The container's name.
    pub container: &'a str,
    /// Its image (recorded as the spec named it).
    pub image: &'a str,
    /// When the process started.
    pub started: Timestamp,
    /// Earlier attempts.
    pub restarts: i64,
    /// The container's state.
    pub state: ContainerState,
}

/// The pod's `status`: phase, start time and the one container's status.
pub fn pod_status(s: &PodState<'_>) -> Value {
    let started = s.started.to_rfc3339();
    let (phase, state, ready) = match &s.state {
        ContainerState::Waiting => (
            "Pending",
            json!({"waiting": {"reason": "ContainerCreating"}}),
            false,
        ),
        ContainerState::Starting => ("Running", json!({"running": {"startedAt": started}}), false),
        ContainerState::Running => ("Running", json!({"running": {"startedAt": started}}), true),
        ContainerState::Terminated {
            exit_code,
            finished,
            reason,
        } => (
            if *exit_code == 0 {
                "Succeeded"
            } else {
                "Failed"
            },
            json!({"terminated": {"exitCode": exit_code, "reason": reason,
                                  "startedAt": started, "finishedAt": finished.to_rfc3339()}}),
            false,
        ),
    };
    json!({
        "phase": phase,
        "startTime": started,
        "containerStatuses": [{
            "name": s.container,
            "image": s.image,
            "imageID": "",
            "ready": ready,
            "started": matches!(s.state, ContainerState::Starting | ContainerState::Running),
            "restartCount": s.restarts.max(0),
            "state": state,
        }],
    })
}

/// The image of container `name` in a pod spec (`""` when none).
pub fn container_image<'a>(spec: &'a Value, name: &str) -> &'a str {
    spec.get("containers")
        .and_then(Value::as_array)
        .and_then(|l| l.iter().find(|c| c["name"] == name))
        .and_then(|c| c.get("image"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phase_follows_the_container() {
        let at = Timestamp::now();
        let mut s = PodState {
            container: "main",
            image: "alpine",
            started: at,
            restarts: 1,
            state: ContainerState::Running,
        };
        let v = pod_status(&s);
        assert_eq!(v["phase"], "Running");
        assert_eq!(v["containerStatuses"][0]["ready"], true);
        assert_eq!(v["containerStatuses"][0]["restartCount"], 1);
        s.state = ContainerState::Terminated {
            exit_code: 2,
            finished: at,
            reason: "Error".into(),
        };
        let v = pod_status(&s);
        assert_eq!(v["phase"], "Failed");
        assert_eq!(
            v["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            2
        );
        s.state = ContainerState::Waiting;
        assert_eq!(pod_status(&s)["phase"], "Pending");
        s.state = ContainerState::Starting;
        let v = pod_status(&s);
        assert_eq!(v["phase"], "Running");
        assert_eq!(v["containerStatuses"][0]["ready"], false);
        assert_eq!(v["containerStatuses"][0]["started"], true);
    }
}
