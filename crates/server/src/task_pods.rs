//! Pipeline steps as Pods: what `oxflow up`'s engine reports of each task
//! attempt's process ([`oxflow_pipelines::pods::TaskPods`]) written as a
//! `v1` Pod of the resource model, labelled as KFP's pods are
//! (`pipeline/runid`, `pipelines.kubeflow.org/v2_component`), with the
//! component's `podMetadata`; `pods/NAME/log` reads the task's log
//! ([`PodLogs`]); deleting the pod kills the attempt (the task fails,
//! saying so). A step that succeeded has its pod deleted once its end is
//! recorded (Argo's `OnPodSuccess` pod GC: stored runs keep no pods in
//! memory); a failed one's stays until its run is deleted.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use oxflow_artifacts::{ArtifactStore, INTERNAL_DIR};
use oxflow_core::selector::{FieldSelector, LabelSelector};
use oxflow_core::{Namespace, Timestamp};
use oxflow_pipelines::pods::{TaskEnd, TaskPod, TaskPods};
use oxflow_resources::builtin::POD;
use oxflow_resources::pods::{ContainerState, PodState, pod_status};
use oxflow_resources::{DeleteOptions, PodLogs, ResourceError, Resources, WriteOptions};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// The label KFP puts the run's id under.
pub const RUN_LABEL: &str = "pipeline/runid";
/// The label every KFP v2 step's pod carries.
pub const COMPONENT_LABEL: &str = "pipelines.kubeflow.org/v2_component";
/// The task's path in its run (a path, so an annotation, not a label).
pub const TASK_ANNOTATION: &str = "pipelines.kubeflow.org/task-path";
/// The container KFP's executor runs in.
const CONTAINER: &str = "main";

/// Pipeline steps as pods (see the module doc).
#[derive(Clone)]
pub struct PipelinePods {
    inner: Arc<Inner>,
}

/// Running attempts by (namespace, pod name): their pod's uid once written.
type Running = HashMap<(String, String), Option<String>>;

struct Inner {
    resources: Resources,
    artifacts: ArtifactStore,
    running: Mutex<Running>,
    /// Ends an attempt whose pod is deleted.
    kills: oxflow_resources::pods::PodKills,
}

/// `<run's last 8>-<task path as a name>-<8 hex of run, path and
/// attempt>`: a DNS name, unique per run and attempt, readable. (The run
/// id's end: a UUIDv7 begins with its time, shared by runs created
/// together.)
pub fn pod_name(run_id: &str, task_path: &str, attempt: u32) -> String {
    let mut slug = String::new();
    for c in task_path.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_matches('-').chars().take(40).collect();
    let digest = Sha256::digest(format!("{run_id}\n{task_path}\n{attempt}"));
    let run: Vec<char> = run_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let run: String = run[run.len().saturating_sub(8)..].iter().collect();
    format!(
        "{run}-{}-{}",
        slug.trim_end_matches('-'),
        &hex::encode(digest)[..8]
    )
}

/// A task path as the engine writes them: `/`-separated names, none empty,
/// `.` or `..`.
fn plain_path(path: &str) -> bool {
    !path.is_empty()
        && path.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
}

impl PipelinePods {
    /// Pods over `resources`; logs under `artifacts`. Starts the watch of
    /// the change feed that kills an attempt whose pod is deleted.
    pub fn new(resources: Resources, artifacts: ArtifactStore) -> Self {
        Self {
            inner: Arc::new(Inner {
                kills: oxflow_resources::pods::PodKills::watch(&resources),
                resources,
                artifacts,
                running: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Running> {
        self.inner.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn object(pod: &TaskPod, name: &str) -> Value {
        let mut labels: serde_json::Map<String, Value> = pod
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        labels.insert(RUN_LABEL.into(), json!(pod.run_id));
        labels.insert(COMPONENT_LABEL.into(), json!("true"));
        let mut annotations: serde_json::Map<String, Value> = pod
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        annotations.insert(TASK_ANNOTATION.into(), json!(pod.task_path));
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": pod.namespace.as_str(),
                "labels": labels,
                "annotations": annotations,
            },
            "spec": {
                "containers": [{"name": CONTAINER, "image": pod.image, "command": pod.command}],
                "restartPolicy": "Never",
            },
        })
    }

    fn status(pod: &TaskPod, state: ContainerState) -> Value {
        pod_status(&PodState {
            container: CONTAINER,
            image: &pod.image,
            started: pod.started,
            restarts: i64::from(pod.attempt) - 1,
            state,
        })
    }

    async fn write_start(&self, pod: TaskPod, kill: CancellationToken) {
        let name = pod_name(&pod.run_id, &pod.task_path, pod.attempt);
        let key = (pod.namespace.as_str().to_owned(), name.clone());
        self.inner.kills.on_delete(&key.0, &key.1, kill);
        self.lock().insert(key.clone(), None);
        let mut body = Self::object(&pod, &name);
        body["status"] = Self::status(&pod, ContainerState::Running);
        let opts = WriteOptions {
            with_status: true,
            ..Default::default()
        };
        let resources = &self.inner.resources;
        let ns = Some(pod.namespace.as_str());
        let uid = match resources.create(&POD, ns, body, &opts).await {
            Ok(w) => w.object["metadata"]["uid"].as_str().map(str::to_owned),
            // Left by a process that died in this attempt: taken over.
            Err(ResourceError::AlreadyExists { .. }) => {
                match resources.get(&POD, ns, &name).await {
                    Ok(o) => {
                        let uid = o["metadata"]["uid"].as_str().unwrap_or_default();
                        let generation = o["metadata"]["generation"].as_i64().unwrap_or(1);
                        let status = Self::status(&pod, ContainerState::Running);
                        if let Err(e) = resources
                            .write_observed_status(
                                &POD,
                                ns,
                                &name,
                                (uid, generation),
                                &status,
                                None,
                            )
                            .await
                        {
                            warn!(pod = %name, error = %e, "Could not record a pipeline step's pod.");
                        }
                        Some(uid.to_owned())
                    }
                    Err(_) => None,
                }
            }
            Err(e) => {
                warn!(pod = %name, error = %e, "Could not record a pipeline step's pod.");
                None
            }
        };
        if let Some(entry) = self.lock().get_mut(&key) {
            *entry = uid;
        }
    }

    async fn write_end(&self, pod: TaskPod, end: TaskEnd) {
        let name = pod_name(&pod.run_id, &pod.task_path, pod.attempt);
        let key = (pod.namespace.as_str().to_owned(), name.clone());
        self.inner.kills.forget(&key.0, &key.1);
        let Some(Some(uid)) = self.lock().remove(&key) else {
            return;
        };
        let (exit_code, reason) = match &end {
            TaskEnd::Succeeded => (0, "Completed".to_owned()),
            TaskEnd::Failed { exit_code, .. } => (exit_code.unwrap_or(1).max(1), "Error".into()),
            TaskEnd::Killed => (137, "Error".into()),
        };
        let state = ContainerState::Terminated {
            exit_code,
            finished: Timestamp::now(),
            reason,
        };
        let status = Self::status(&pod, state);
        let resources = &self.inner.resources;
        let ns = Some(pod.namespace.as_str());
        // A pod deleted meanwhile is not written again.
        if let Err(e) = resources
            .write_observed_status(&POD, ns, &name, (&uid, 1), &status, None)
            .await
        {
            warn!(pod = %name, error = %e, "Could not record a pipeline step's pod.");
        }
        // Argo's `OnPodSuccess` pod GC: a step that succeeded leaves no
        // pod (its log stays with the run), so stored runs cost no memory;
        // a failed or killed step's pod stays until its run is deleted.
        if matches!(end, TaskEnd::Succeeded) {
            // Only the pod this attempt wrote (its uid), never another.
            let opts = DeleteOptions {
                uid: Some(uid.clone()),
                ..Default::default()
            };
            match resources.delete(&POD, ns, &name, &opts).await {
                Ok(_)
                | Err(ResourceError::NotFound { .. })
                | Err(ResourceError::Conflict { .. }) => {}
                Err(e) => warn!(pod = %name, error = %e, "Could not delete a finished step's pod."),
            }
        }
    }

    async fn delete_run_pods(&self, namespace: Namespace, run_id: String) {
        let resources = &self.inner.resources;
        let Ok(selector) = LabelSelector::parse(&format!("{RUN_LABEL}={run_id}")) else {
            return;
        };
        let pods = match resources
            .list(
                &POD,
                Some(namespace.as_str()),
                &selector,
                &FieldSelector::default(),
            )
            .await
        {
            Ok((pods, _)) => pods,
            Err(e) => {
                warn!(run = %run_id, error = %e, "Could not list a deleted run's pods.");
                return;
            }
        };
        for p in pods {
            let Some(name) = p["metadata"]["name"].as_str() else {
                continue;
            };
            match resources
                .delete(
                    &POD,
                    Some(namespace.as_str()),
                    name,
                    &DeleteOptions::default(),
                )
                .await
            {
                Ok(_) | Err(ResourceError::NotFound { .. }) => {}
                Err(e) => warn!(pod = name, error = %e, "Could not delete a deleted run's pod."),
            }
        }
    }
}

impl TaskPods for PipelinePods {
    fn started(&self, pod: &TaskPod, kill: CancellationToken) -> BoxFuture<'static, ()> {
        let (this, pod) = (self.clone(), pod.clone());
        Box::pin(async move { this.write_start(pod, kill).await })
    }

    fn ended(&self, pod: &TaskPod, end: TaskEnd) -> BoxFuture<'static, ()> {
        let (this, pod) = (self.clone(), pod.clone());
        Box::pin(async move { this.write_end(pod, end).await })
    }

    fn run_deleted(&self, namespace: &Namespace, run_id: &str) -> BoxFuture<'static, ()> {
        let (this, ns, id) = (self.clone(), namespace.clone(), run_id.to_owned());
        Box::pin(async move { this.delete_run_pods(ns, id).await })
    }
}

impl PodLogs for PipelinePods {
    /// The task's log, from the pod's namespace, its run label and its
    /// task annotation (a plain path): only a run of the pod's namespace.
    fn log_path(&self, pod: &Value) -> Option<PathBuf> {
        let meta = pod.get("metadata")?;
        let ns = meta.get("namespace")?.as_str()?;
        Namespace::new(ns.to_owned()).ok()?;
        let run = meta.pointer(&format!("/labels/{}", RUN_LABEL.replace('/', "~1")))?;
        let run = run.as_str()?;
        if run.is_empty() || !run.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return None;
        }
        let path = meta.get("annotations")?.get(TASK_ANNOTATION)?.as_str()?;
        if !plain_path(path) {
            return None;
        }
        Some(
            self.inner
                .artifacts
                .run_dir(ns, run)
                .join(path)
                .join(INTERNAL_DIR)
                .join("log"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_names_are_dns_names_unique_per_attempt() {
        let run = "01a252e6-936d-7154-8c1e-F028af624b64";
        let a = pod_name(run, "for-loop-2/0/Square", 1);
        assert!(a.starts_with("af624b64-for-loop-2-0-square-"), "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
        assert_ne!(a, pod_name(run, "for-loop-2/0/Square", 2));
        assert_ne!(a, pod_name(run, "for-loop-2/0/square", 1));
        // Runs created together share their id's first characters (UUIDv7):
        // their steps' pods must not share a name.
        let other = "01a252e6-936d-7154-8c1e-f028af624b65";
        assert_ne!(a, pod_name(other, "for-loop-2/0/Square", 1));
        let twin = "x01a252e6-936d-7154-8c1e-f028af624b64";
        assert_ne!(a, pod_name(twin, "for-loop-2/0/Square", 1));
        assert!(pod_name("r", &"x".repeat(300), 1).len() < 63);
    }

    #[test]
    fn only_plain_task_paths_name_a_log() {
        assert!(plain_path("train"));
        assert!(plain_path("for-loop-2/0/square"));
        assert!(!plain_path("../other"));
        assert!(!plain_path("a//b"));
        assert!(!plain_path("/abs"));
        assert!(!plain_path(""));
    }
}
