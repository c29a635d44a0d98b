//! Tasks as Pods: the engine tells a [`TaskPods`] (the server's resource
//! model) when a task's process starts and ends, so that `kubectl get pods`
//! and `pods/NAME/log` show pipeline steps as they show trials. The engine
//! knows nothing of the resource model; this is the seam.

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures::future::BoxFuture;
use oxflow_core::{Namespace, Timestamp};
use tokio_util::sync::CancellationToken;

/// One attempt of a task's process, as its pod shows it.
#[derive(Debug, Clone)]
pub struct TaskPod {
    /// The run's namespace (the pod's).
    pub namespace: Namespace,
    /// The run.
    pub run_id: String,
    /// The task's path in the run (`train`, `for-loop-2/0/square`).
    pub task_path: String,
    /// Which attempt (from 1).
    pub attempt: u32,
    /// The container's image, as the component names it.
    pub image: String,
    /// Its command and arguments.
    pub command: Vec<String>,
    /// Where its output goes.
    pub log_path: PathBuf,
    /// kfp-kubernetes `podMetadata` labels and annotations.
    pub labels: BTreeMap<String, String>,
    /// See [`Self::labels`].
    pub annotations: BTreeMap<String, String>,
    /// When the attempt started.
    pub started: Timestamp,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum TaskEnd {
    /// Exit code 0.
    Succeeded,
    /// It failed: its exit code when it had one, and why.
    Failed {
        /// The process's exit code (none for a process that never started).
        exit_code: Option<i32>,
        /// Why, in words.
        message: String,
    },
    /// Ended by a terminate, a shutdown, or its pod's deletion.
    Killed,
}

/// Where tasks are shown as pods.
pub trait TaskPods: Send + Sync {
    /// `pod`'s process starts; `kill` ends it (what deleting the pod does).
    fn started(&self, pod: &TaskPod, kill: CancellationToken) -> BoxFuture<'static, ()>;
    /// `pod`'s process ended.
    fn ended(&self, pod: &TaskPod, end: TaskEnd) -> BoxFuture<'static, ()>;
    /// The run was deleted: its pods go too.
    fn run_deleted(&self, namespace: &Namespace, run_id: &str) -> BoxFuture<'static, ()>;
}
