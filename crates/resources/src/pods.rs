//! The `status` of a Pod that stands for a process a controller runs (a
//! trial, a pipeline step): one container, its state, the pod's phase. One
//! shape for every controller, as the kubelet reports it.

use oxflow_core::Timestamp;
use serde_json::{Value, json};

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
