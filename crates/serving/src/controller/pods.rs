//! The copies of a command revision (a custom predictor, a transformer,
//! an explainer) as Pods, labelled as KServe's are
//! (`serving.kserve.io/inferenceservice`, `component`), so `kubectl get
//! pods -l serving.kserve.io/inferenceservice=NAME` lists what runs and
//! `kubectl logs` reads it. One pod per copy: created when the copy's
//! process first starts, its container's state following the process
//! (not ready until it answers, restarts counted), deleted when the copy is
//! scaled away or its revision retired. Deleting the pod ends the copy's
//! process, and the copy starts again under a new pod, as a Deployment
//! replaces a deleted pod.
//!
//! Pod writes are best effort: a failed write is logged and never stops
//! or delays serving.

use std::path::PathBuf;
use std::sync::Arc;

use oxflow_core::{Namespace, Timestamp};
use oxflow_resources::builtin::POD;
use oxflow_resources::pods::{ContainerState, PodKills, PodState, pod_status};
use oxflow_resources::{DeleteOptions, ResourceError, Resources, WriteOptions};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// The InferenceService a pod serves (KServe's label).
pub const ISVC_LABEL: &str = "serving.kserve.io/inferenceservice";
/// `predictor`, `transformer` or `explainer` (KServe's label).
pub const COMPONENT_LABEL: &str = "component";
/// The revision (Knative's label, which KServe's serverless pods carry).
pub const REVISION_LABEL: &str = "serving.knative.dev/revision";
/// The copy a pod stands for: its log file is `<copy>.log`.
pub const COPY_LABEL: &str = "serving.oxflow.dev/copy";
/// KServe's name for the serving container.
pub const CONTAINER: &str = "kserve-container";

/// The pods of every command copy this process runs.
#[derive(Clone)]
pub struct CommandPods {
    inner: Arc<Inner>,
}

struct Inner {
    resources: Resources,
    home: PathBuf,
    /// Ends a copy's process when its pod is deleted (once started).
    kills: std::sync::OnceLock<PodKills>,
}

impl CommandPods {
    /// Pods written through `resources`; logs under `home`.
    pub fn new(resources: Resources, home: PathBuf) -> Self {
        Self {
            inner: Arc::new(Inner {
                resources,
                home,
                kills: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Removes the pods an earlier run of this server left (their
    /// processes ended with it; the copies that start now get new ones),
    /// then ends a copy's process whenever its pod is deleted.
    pub(super) async fn start(&self) {
        // An existence requirement on our own label: parses.
        let left = match oxflow_core::selector::LabelSelector::parse(COPY_LABEL) {
            Ok(selector) => {
                self.inner
                    .resources
                    .list(&POD, None, &selector, &Default::default())
                    .await
            }
            Err(e) => {
                warn!(error = %e, "The serving pods' label is not a selector.");
                return;
            }
        };
        match left {
            Ok((left, _)) => {
                for pod in left {
                    let meta = &pod["metadata"];
                    let (ns, name) = (
                        meta["namespace"].as_str(),
                        meta["name"].as_str().unwrap_or_default(),
                    );
                    let opts = DeleteOptions {
                        uid: meta["uid"].as_str().map(str::to_owned),
                        ..Default::default()
                    };
                    if let Err(e) = self.inner.resources.delete(&POD, ns, name, &opts).await
                        && !matches!(e, ResourceError::NotFound { .. })
                    {
                        warn!(pod = %name, error = %e, "Could not delete a serving pod left by an earlier run.");
                    }
                }
            }
            Err(e) => warn!(error = %e, "Could not list the serving pods left by an earlier run."),
        }
        let _ = self.inner.kills.set(PodKills::watch(&self.inner.resources));
    }

    /// The pods of one revision's copies.
    pub(super) fn template(&self, owner: Owner, revision: &str, container: Value) -> PodTemplate {
        PodTemplate {
            pods: self.clone(),
            owner: Arc::new(owner),
            revision: revision.to_owned(),
            container: Arc::new(container),
        }
    }
}

impl Inner {
    fn kills(&self) -> Option<&PodKills> {
        self.kills.get()
    }
}

impl oxflow_resources::PodLogs for CommandPods {
    /// `<home>/logs/serving/<ns>/<service>/<copy>.log`, from the pod's
    /// namespace and labels (names checked, so none leads elsewhere).
    fn log_path(&self, pod: &Value) -> Option<PathBuf> {
        log_file(&self.inner.home, pod)
    }
}

/// See [`CommandPods::log_path`].
fn log_file(home: &std::path::Path, pod: &Value) -> Option<PathBuf> {
    let meta = &pod["metadata"];
    let labels = &meta["labels"];
    let ns = Namespace::new(meta["namespace"].as_str()?.to_owned()).ok()?;
    let service = labels[ISVC_LABEL].as_str()?;
    let copy = labels[COPY_LABEL].as_str()?;
    let plain = |s: &str| {
        !s.is_empty()
            && !s.contains("..")
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    if !plain(service) || !plain(copy) || !copy.starts_with(&format!("{service}-")) {
        return None;
    }
    Some(crate::logs::service_log_dir(home, &ns, service).join(format!("{copy}.log")))
}

/// The InferenceService whose copies these are.
#[derive(Debug, Clone)]
pub(super) struct Owner {
    /// Its namespace.
    pub namespace: Namespace,
    /// Its name.
    pub name: String,
    /// Its uid (pods are owned by it, so deleting it deletes them).
    pub uid: String,
    /// `predictor`, `transformer` or `explainer`.
    pub component: String,
}

/// What the pods of one revision share.
#[derive(Clone)]
pub struct PodTemplate {
    pods: CommandPods,
    owner: Arc<Owner>,
    revision: String,
    /// The container as the pod spec shows it.
    container: Arc<Value>,
}

/// One copy's pod.
pub struct CopyPod {
    template: PodTemplate,
    name: String,
    /// Set once created: (uid, generation) the status writes are for.
    stored: Option<(String, i64)>,
    started: Timestamp,
    restarts: i64,
    /// Cancelled when the pod is deleted.
    deleted: CancellationToken,
}

impl PodTemplate {
    /// A pod for copy `copy`, created (status Pending) now.
    pub(super) async fn create(&self, copy: &str) -> CopyPod {
        let name = format!("{copy}-{}", suffix());
        let mut pod = CopyPod {
            template: self.clone(),
            name,
            stored: None,
            started: Timestamp::now(),
            restarts: 0,
            deleted: CancellationToken::new(),
        };
        let o = &self.owner;
        let body = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod.name,
                "namespace": o.namespace.as_str(),
                "labels": {
                    ISVC_LABEL: o.name,
                    COMPONENT_LABEL: o.component,
                    REVISION_LABEL: self.revision,
                    "app": format!("{}-{}", o.name, o.component),
                    COPY_LABEL: copy,
                },
                "ownerReferences": [{
                    "apiVersion": "serving.kserve.io/v1beta1",
                    "kind": "InferenceService",
                    "name": o.name,
                    "uid": o.uid,
                    "controller": true,
                    "blockOwnerDeletion": true,
                }],
            },
            "spec": {"containers": [self.container.as_ref()]},
            "status": pod.status(ContainerState::Waiting),
        });
        let opts = WriteOptions {
            with_status: true,
            ..Default::default()
        };
        let resources = &self.pods.inner.resources;
        match resources
            .create(&POD, Some(o.namespace.as_str()), body, &opts)
            .await
        {
            Ok(w) => {
                let meta = &w.object["metadata"];
                pod.stored = Some((
                    meta["uid"].as_str().unwrap_or_default().to_owned(),
                    meta["generation"].as_i64().unwrap_or(1),
                ));
                if let Some(kills) = self.pods.inner.kills() {
                    kills.on_delete(o.namespace.as_str(), &pod.name, pod.deleted.clone());
                }
            }
            Err(e) => warn!(pod = %pod.name, error = %e, "Could not record a serving copy's pod."),
        }
        pod
    }
}

impl CopyPod {
    /// Cancelled once the pod is deleted (by anyone but this copy).
    pub(super) fn deleted(&self) -> CancellationToken {
        self.deleted.clone()
    }

    fn status(&self, state: ContainerState) -> Value {
        let image = self.template.container["image"]
            .as_str()
            .unwrap_or_default();
        pod_status(&PodState {
            container: CONTAINER,
            image,
            started: self.started,
            restarts: self.restarts,
            state,
        })
    }

    /// The process starts (again, after the first time: a restart).
    pub(super) async fn starting(&mut self, again: bool) {
        if again {
            self.restarts += 1;
        }
        self.started = Timestamp::now();
        self.write(ContainerState::Starting).await;
    }

    /// The process answers its readiness probe.
    pub(super) async fn ready(&mut self) {
        self.write(ContainerState::Running).await;
    }

    /// The process ended (`exit_code`, 137 when killed).
    pub(super) async fn exited(&mut self, exit_code: i32) {
        let reason = if exit_code == 0 { "Completed" } else { "Error" };
        self.write(ContainerState::Terminated {
            exit_code,
            finished: Timestamp::now(),
            reason: reason.into(),
        })
        .await;
    }

    async fn write(&mut self, state: ContainerState) {
        let Some((uid, generation)) = self.stored.clone() else {
            return;
        };
        if self.deleted.is_cancelled() {
            return;
        }
        let status = self.status(state);
        let ns = self.template.owner.namespace.as_str();
        if let Err(e) = self
            .template
            .pods
            .inner
            .resources
            .write_observed_status(
                &POD,
                Some(ns),
                &self.name,
                (&uid, generation),
                &status,
                None,
            )
            .await
        {
            warn!(pod = %self.name, error = %e, "Could not record a serving copy's pod.");
        }
    }

    /// The copy is gone (scaled away, its revision retired): so is its pod.
    pub(super) async fn remove(self) {
        let ns = self.template.owner.namespace.as_str().to_owned();
        let inner = &self.template.pods.inner;
        if let Some(kills) = inner.kills() {
            kills.forget(&ns, &self.name);
        }
        let Some((uid, _)) = &self.stored else { return };
        let opts = DeleteOptions {
            uid: Some(uid.clone()),
            ..Default::default()
        };
        match inner
            .resources
            .delete(&POD, Some(&ns), &self.name, &opts)
            .await
        {
            Ok(_) | Err(ResourceError::NotFound { .. } | ResourceError::Conflict { .. }) => {}
            Err(e) => warn!(pod = %self.name, error = %e, "Could not delete a serving copy's pod."),
        }
    }
}

/// Five characters as Kubernetes appends to generated names.
fn suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[..5]
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, service: &str, copy: &str) -> Value {
        json!({"metadata": {"namespace": ns, "labels": {ISVC_LABEL: service, COPY_LABEL: copy}}})
    }

    #[test]
    fn a_pod_shows_only_its_own_services_log() {
        let home = std::path::Path::new("/home");
        assert_eq!(
            log_file(home, &pod("team-a", "iris", "iris-predictor-00001-1")),
            Some(PathBuf::from(
                "/home/logs/serving/team-a/iris/iris-predictor-00001-1.log"
            ))
        );
        for (ns, service, copy) in [
            ("team-a", "iris", "wine-predictor-00001"),
            ("team-a", "iris", "iris-..-x"),
            ("team-a", "..", "..-x"),
            ("team-a", "iris", "iris-a/b"),
            ("Team_A", "iris", "iris-predictor-00001"),
        ] {
            assert_eq!(
                log_file(home, &pod(ns, service, copy)),
                None,
                "{ns} {service} {copy}"
            );
        }
    }
}
