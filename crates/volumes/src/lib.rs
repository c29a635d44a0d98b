//! PersistentVolumeClaims on this host. A claim (`v1`
//! PersistentVolumeClaim, stored like any object) is bound to a directory
//! of its own, `<root>/<namespace>/<name>`, which the workloads that mount
//! it share; deleting the claim deletes the directory, as a dynamically
//! provisioned volume with reclaim policy Delete is.
//!
//! Binding and reclaiming are level-triggered and idempotent, so both
//! callers may do them: the [`VolumeController`] for claims written through
//! the API (`kubectl apply`), and the workloads' own controllers inline
//! ([`LocalVolumes::create`], [`LocalVolumes::path`],
//! [`LocalVolumes::delete`]), which need the directory at once and may run
//! without the server (`oxflow run`).
//!
//! Invariants:
//! - a claim is `Bound` only once its directory exists, and it carries the
//!   finalizer `kubernetes.io/pvc-protection` from then on, so its
//!   directory is always removed before the object goes, even across a
//!   crash (the next reconcile finishes the job);
//! - a claim being deleted is never handed to a new workload;
//! - paths come from the claim's key (validated names), never from a field
//!   of the object.

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use oxflow_controller::{
    Action, Context, Controller, ControllerConfig, ReconcileError, Reconciler,
};
use oxflow_resources::builtin::PERSISTENT_VOLUME_CLAIM as PVC;
use oxflow_resources::{DeleteOptions, PatchType, ResourceError, Resources, WriteOptions};
use oxflow_store::ResourceKey;
use serde_json::{Value, json};

/// What keeps a bound claim until its directory is gone (the name the
/// API server's own protection uses).
pub const FINALIZER: &str = "kubernetes.io/pvc-protection";

/// Why a volume could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// No such claim.
    #[error(
        "PersistentVolumeClaim {name:?} does not exist in namespace {namespace} (create it with kubectl apply or kubernetes.CreatePVC)"
    )]
    NotFound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The claim is being deleted.
    #[error("PersistentVolumeClaim {name:?} in namespace {namespace} is being deleted")]
    Deleting {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The directory could not be made or removed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The object could not be read or written.
    #[error(transparent)]
    Resource(#[from] ResourceError),
}

/// What a new claim asks for.
#[derive(Debug, Clone)]
pub struct Claim {
    /// Its size, a quantity (`1Gi`).
    pub storage: String,
    /// Its access modes (`ReadWriteOnce`, …).
    pub access_modes: Vec<String>,
    /// Its storage class (Oxflow's `local` when none).
    pub storage_class: Option<String>,
}

/// Claims bound to directories under one root.
#[derive(Clone)]
pub struct LocalVolumes {
    resources: Resources,
    root: Arc<PathBuf>,
    /// Records a claim's binding (`kubectl describe pvc` shows it).
    events: oxflow_resources::Recorder,
}

impl std::fmt::Debug for LocalVolumes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalVolumes")
            .field("root", &self.root)
            .finish()
    }
}

impl LocalVolumes {
    /// Claims of `resources`, their directories under `root`
    /// (`$OXFLOW_HOME/volumes`).
    pub fn new(resources: Resources, root: PathBuf) -> Self {
        Self {
            events: oxflow_resources::Recorder::new(
                resources.clone(),
                "persistentvolume-controller",
            ),
            resources,
            root: Arc::new(root),
        }
    }

    /// The directory of claim `name` in `namespace` (both validated names).
    fn dir(&self, namespace: &str, name: &str) -> PathBuf {
        self.root.join(namespace).join(name)
    }

    /// Creates claim `name` in `namespace` and binds it; returns its
    /// directory. `AlreadyExists` when the name is taken, as the API says.
    pub async fn create(
        &self,
        namespace: &str,
        name: &str,
        claim: &Claim,
        labels: &Value,
    ) -> Result<PathBuf, VolumeError> {
        let mut spec = json!({
            "accessModes": claim.access_modes,
            "resources": {"requests": {"storage": claim.storage}},
        });
        if let Some(class) = claim.storage_class.as_deref().filter(|c| !c.is_empty()) {
            spec["storageClassName"] = json!(class);
        }
        let object = json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "labels": labels},
            "spec": spec,
        });
        let written = self
            .resources
            .create(&PVC, Some(namespace), object, &WriteOptions::default())
            .await?;
        self.bind(namespace, name, &written.object).await
    }

    /// The directory of claim `name` in `namespace`, binding it first when
    /// it is still pending.
    pub async fn path(&self, namespace: &str, name: &str) -> Result<PathBuf, VolumeError> {
        let object = match self.resources.get(&PVC, Some(namespace), name).await {
            Ok(o) => o,
            Err(ResourceError::NotFound { .. }) => {
                return Err(VolumeError::NotFound {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        if is_deleting(&object) {
            return Err(VolumeError::Deleting {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            });
        }
        self.bind(namespace, name, &object).await
    }

    /// Deletes claim `name` in `namespace` and its directory; `false` when
    /// there was no such claim.
    pub async fn delete(&self, namespace: &str, name: &str) -> Result<bool, VolumeError> {
        match self
            .resources
            .delete(&PVC, Some(namespace), name, &DeleteOptions::default())
            .await
        {
            Ok(_) => {}
            Err(ResourceError::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        self.reconcile(namespace, name).await?;
        Ok(true)
    }

    /// Makes claim `name` in `namespace` what its stored state asks: bound
    /// with a directory, or (being deleted) its directory removed and its
    /// finalizer released. What the controller runs for every claim.
    pub async fn reconcile(&self, namespace: &str, name: &str) -> Result<(), VolumeError> {
        match self.resources.get(&PVC, Some(namespace), name).await {
            Ok(o) if is_deleting(&o) => self.reclaim(namespace, name, &o).await,
            Ok(o) => self.bind(namespace, name, &o).await.map(drop),
            Err(ResourceError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Binds a claim: directory, finalizer and volume name, then status.
    async fn bind(
        &self,
        namespace: &str,
        name: &str,
        object: &Value,
    ) -> Result<PathBuf, VolumeError> {
        let dir = self.dir(namespace, name);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|source| VolumeError::Io {
                what: "creating the volume directory",
                path: dir.clone(),
                source,
            })?;
        let mut object = object.clone();
        // A concurrent write (another binder, a label) is a conflict: read
        // again and retry, so a claim is never Bound without its finalizer.
        let mut tries = 0;
        while !has_finalizer(&object)
            || object
                .pointer("/spec/volumeName")
                .is_none_or(Value::is_null)
        {
            if is_deleting(&object) {
                return Err(VolumeError::Deleting {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                });
            }
            let uid = object["metadata"]["uid"].as_str().unwrap_or_default();
            let mut finalizers = finalizers(&object);
            if !finalizers.iter().any(|f| f == FINALIZER) {
                finalizers.push(FINALIZER.to_owned());
            }
            let volume = object
                .pointer("/spec/volumeName")
                .and_then(Value::as_str)
                .map_or_else(|| format!("pvc-{uid}"), str::to_owned);
            let patch = json!({
                "metadata": {"finalizers": finalizers,
                             "resourceVersion": object["metadata"]["resourceVersion"]},
                "spec": {"volumeName": volume},
            });
            object = match self.merge_patch(namespace, name, patch).await {
                Ok(o) => o,
                Err(ResourceError::Conflict { .. }) if tries < 5 => {
                    tries += 1;
                    self.resources.get(&PVC, Some(namespace), name).await?
                }
                Err(e) => return Err(e.into()),
            };
        }
        let spec = &object["spec"];
        let status = json!({
            "phase": "Bound",
            "accessModes": spec["accessModes"],
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
        });
        if object.get("status") != Some(&status) {
            let uid = object["metadata"]["uid"].as_str().unwrap_or_default();
            let generation = object["metadata"]["generation"].as_i64().unwrap_or(0);
            let was_bound = object["status"]["phase"] == "Bound";
            let written = self
                .resources
                .write_observed_status(
                    &PVC,
                    Some(namespace),
                    name,
                    (uid, generation),
                    &status,
                    None,
                )
                .await?;
            if written && !was_bound {
                let volume = object["spec"]["volumeName"].as_str().unwrap_or_default();
                let class = object["spec"]["storageClassName"]
                    .as_str()
                    .unwrap_or(oxflow_resources::builtin::LOCAL_STORAGE_CLASS);
                self.events
                    .record(
                        &object,
                        oxflow_resources::EventType::Normal,
                        "ProvisioningSucceeded",
                        &format!(
                            "Successfully provisioned volume {volume} (a directory of storage class {class})"
                        ),
                    )
                    .await;
            }
        }
        Ok(dir)
    }

    /// A merge patch of claim `name` (conditional when it names a
    /// resourceVersion).
    async fn merge_patch(
        &self,
        namespace: &str,
        name: &str,
        patch: Value,
    ) -> Result<Value, ResourceError> {
        let opts = WriteOptions::default();
        let written = self
            .resources
            .patch(
                &PVC,
                Some(namespace),
                name,
                PatchType::Merge,
                patch,
                false,
                &opts,
            )
            .await?;
        Ok(written.object)
    }

    /// Removes a deleted claim's directory, then its finalizer.
    async fn reclaim(
        &self,
        namespace: &str,
        name: &str,
        object: &Value,
    ) -> Result<(), VolumeError> {
        if !has_finalizer(object) {
            return Ok(());
        }
        let dir = self.dir(namespace, name);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(VolumeError::Io {
                    what: "removing the volume directory",
                    path: dir,
                    source,
                });
            }
        }
        let left: Vec<String> = finalizers(object)
            .into_iter()
            .filter(|f| f != FINALIZER)
            .collect();
        let patch = json!({"metadata": {"finalizers": left,
                                        "resourceVersion": object["metadata"]["resourceVersion"]}});
        match self.merge_patch(namespace, name, patch).await {
            // Gone, or changed meanwhile: the next reconcile looks again.
            Ok(_) | Err(ResourceError::NotFound { .. }) => Ok(()),
            Err(ResourceError::Conflict { .. }) => Box::pin(self.reconcile(namespace, name)).await,
            Err(e) => Err(e.into()),
        }
    }
}

fn finalizers(object: &Value) -> Vec<String> {
    object["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn has_finalizer(object: &Value) -> bool {
    finalizers(object).iter().any(|f| f == FINALIZER)
}

fn is_deleting(object: &Value) -> bool {
    object["metadata"]["deletionTimestamp"].as_str().is_some()
}

/// Binds and reclaims every claim, woken by the change feed.
pub struct VolumeController {
    volumes: LocalVolumes,
}

impl VolumeController {
    /// Starts the controller over `volumes`' claims.
    pub fn start(volumes: LocalVolumes) -> Controller {
        let store = volumes.resources.store().clone();
        let resources = volumes.resources.clone();
        Controller::start(
            store,
            Some(&resources),
            &[&PVC],
            Arc::new(Self { volumes }),
            ControllerConfig::new("volumes"),
        )
    }
}

impl Reconciler for VolumeController {
    fn reconcile<'a>(
        &'a self,
        key: &'a ResourceKey,
        _ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Action, ReconcileError>> {
        Box::pin(async move {
            self.volumes.reconcile(&key.namespace, &key.name).await?;
            Ok(Action::Done)
        })
    }

    fn keys(&self) -> BoxFuture<'_, Result<Vec<ResourceKey>, ReconcileError>> {
        Box::pin(async move {
            let (items, _) = self
                .volumes
                .resources
                .list_cached(&PVC, None, &Default::default(), &Default::default())
                .await?;
            Ok(items
                .iter()
                .map(|c| ResourceKey {
                    group: String::new(),
                    kind: PVC.kind.to_owned(),
                    namespace: c.object["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    name: c.object["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                })
                .collect())
        })
    }
}
