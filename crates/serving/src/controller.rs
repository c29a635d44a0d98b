//! The InferenceService controller of `oxflow up`: it makes every stored
//! service servable in this process and reports KServe's status for it.
//!
//! The resource model is the source of truth, as the Kubernetes API is for
//! KServe: whoever writes an InferenceService or TrainedModel (kubectl, an
//! SDK, the CLI, [`ServingController::apply`]) writes the object, and the
//! controller, run by the controller framework, is woken by the change feed
//! and reconciles it from its stored state; its periodic resync also picks
//! up what other processes wrote (an `oxflow apply` beside a running
//! `oxflow up`) and removes what they deleted. Every generation of a service becomes a *revision*
//! (`NAME-predictor-00003`) with its own data plane. A new revision only
//! takes traffic once its model is ready, so re-applying a service never
//! interrupts it, and a revision that fails to load leaves the previous one
//! serving — KServe's rolling update, without a Deployment.
//!
//! Requests reach a service's data plane through [`ServingController::dispatch`]
//! (the server routes `/serving/NS/NAME/...` and `Host: NAME.NS.…` to it).
//! While the first revision of a service loads, requests wait for it
//! (bounded by the hold time) instead of failing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use oxflow_core::{Namespace, Timestamp};
use oxflow_inference::batcher::BatchConfig;
use oxflow_inference::metrics::Metrics;
use oxflow_inference::{DataPlane, Loader, ModelControl, ModelState, PlaneConfig, Repository};
use oxflow_resources::{ResourceError, Resources, WriteOptions};
use oxflow_store::ResourceKey;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::kinds::{Applied, INFERENCE_SERVICE, InferenceServiceRecord, ROLLED_OUT, Stored};
use crate::local::{ModelSource, SourceLoader};
use crate::runtimes::RuntimeConfig;
use crate::spec::{InferenceService, Predictor, PredictorSpec, SpecError};
use crate::storage::{LocalRoots, Storage};

mod autoscale;
mod grpc;
pub mod pods;
mod policy;
mod process;
mod scale;
mod status;
mod traffic;
mod trained;

pub use autoscale::AutoscaleConfig;
pub use grpc::serve_grpc;
use status::transitions_from;
pub use trained::stored_trained_model_spec;

/// How the controller serves.
#[derive(Clone)]
pub struct ControllerConfig {
    /// Oxflow's data directory (model cache, `pvc://` volumes).
    pub home: PathBuf,
    /// Directories besides `<home>/models` and `<home>/volumes` that local
    /// `storageUri` paths may lie under; any other host path is refused.
    pub model_roots: Vec<PathBuf>,
    /// How models are run (the Python for scikit-learn, …).
    pub runtime: RuntimeConfig,
    /// Where clients reach the server (`http://127.0.0.1:8080`), for the
    /// URLs in each service's status.
    pub base_url: String,
    /// How long a request waits for a model that is still loading.
    pub hold: Duration,
    /// How often the store is re-read for changes made by other processes.
    pub resync: Duration,
    /// Runs the commands of custom predictors, transformers and explainers
    /// (`None`: those are refused with a reason in the status).
    pub workloads: Option<Arc<dyn oxflow_runtime::Runtime>>,
    /// How long a model predictor with `minReplicas: 0` may go without a
    /// request before it is unloaded (Knative's stable window is 60 s).
    pub scale_to_zero_after: Duration,
    /// The autoscaler of commands' copies (Knative's `config-autoscaler`).
    pub autoscale: AutoscaleConfig,
}

/// Errors of the controller's API.
#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    /// The resource is not a valid InferenceService.
    #[error("{0}")]
    Spec(#[from] SpecError),
    /// The write was refused or the service does not exist.
    #[error(transparent)]
    Resource(#[from] ResourceError),
}

/// What happens to a revision's model, as KServe's `modelStatus` says it.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Loading,
    Loaded,
    Failed(Failure),
}

/// Why something cannot serve: KServe's `lastFailureInfo`.
#[derive(Debug, Clone, PartialEq)]
struct Failure {
    /// `ModelLoadFailed`, `NoSupportingRuntime`, `InvalidPredictorSpec`, …
    reason: &'static str,
    message: String,
    at: Timestamp,
}

impl Failure {
    fn new(reason: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            reason,
            message: message.into(),
            at: Timestamp::now(),
        }
    }
}

/// One predictor configuration with its own data plane. Generations whose
/// predictor is the same (a change of traffic, labels or annotations only)
/// share it, as Knative revisions are only cut when the pod spec changes.
struct Revision {
    /// The predictor's JSON without `canaryTrafficPercent`.
    key: String,
    /// `NAME-predictor-00003` (the generation that first asked for it).
    name: String,
    generation: i64,
    /// The predictor as KServe's JSON, recorded when it is rolled out.
    predictor: Value,
    router: axum::Router,
    /// containerConcurrency, timeout, logger.
    policy: policy::Policy,
    /// Shared with the load task or the command's supervisor.
    phase: Arc<RwLock<Phase>>,
    /// The processes serving it: the copies of a command (custom
    /// predictors, transformers, explainers; dropping the revision stops
    /// them) or a scikit-learn model's workers.
    replicas: Option<Arc<dyn autoscale::Scalable>>,
    /// Counts its requests for the autoscaler, when it has one.
    meter: Option<Arc<autoscale::Meter>>,
    /// `minReplicas: 0` on a model predictor: unloaded when idle.
    scale: Option<Arc<scale::ScaleToZero>>,
    /// The gRPC service of a model predictor's data plane.
    grpc: Option<axum::Router>,
    /// Where a command's output goes.
    log_path: Option<PathBuf>,
}

impl Revision {
    fn phase(&self) -> Phase {
        self.phase.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn candidate(&self) -> traffic::Candidate {
        let phase = self.phase();
        traffic::Candidate {
            ready: phase == Phase::Loaded,
            failed: matches!(phase, Phase::Failed(_)),
        }
    }
}

/// One `spec.canary` entry.
struct Canary {
    name: String,
    percent: u8,
    revision: Arc<Revision>,
}

struct Entry {
    id: String,
    generation: i64,
    spec: Value,
    /// Why the current spec cannot be served at all.
    failure: Option<Failure>,
    /// The predictor of the current spec.
    latest: Option<Arc<Revision>>,
    /// The revision that last took all the traffic.
    rolled_out: Option<Arc<Revision>>,
    canary_percent: Option<u8>,
    canaries: Vec<Canary>,
    /// `spec.transformer`: every request of the service goes through it.
    transformer: Option<Arc<Revision>>,
    /// `spec.explainer`: `:explain` requests go to it.
    explainer: Option<Arc<Revision>>,
    /// Where the transformer and explainer reach the predictor (their
    /// `--predictor_host`): a loopback listener with the traffic split.
    predictor_host: Option<Arc<PredictorHost>>,
    /// `serving.kserve.io/enable-tag-routing`: `latest-`/`prev-` hosts.
    tag_routing: bool,
    /// When each condition type last changed status.
    transitions: HashMap<&'static str, (bool, Timestamp)>,
    /// The Ready condition (status, reason) last written: an event is
    /// recorded when it changes.
    reported: Option<(String, String)>,
    /// Requests routed so far (picks the target of the next one).
    requests: Arc<AtomicU64>,
}

impl Entry {
    fn layout(&self) -> traffic::Layout {
        let previous = self
            .rolled_out
            .as_ref()
            .filter(|r| !self.latest.as_ref().is_some_and(|l| Arc::ptr_eq(l, r)));
        traffic::Layout {
            latest: self.latest.as_ref().map(|r| r.candidate()),
            previous: previous.map(|r| r.candidate()),
            canary_percent: self.canary_percent,
            canaries: self
                .canaries
                .iter()
                .map(|c| (c.percent, c.revision.candidate()))
                .collect(),
        }
    }

    fn target(&self, t: traffic::Target) -> Option<&Arc<Revision>> {
        match t {
            traffic::Target::Latest => self.latest.as_ref(),
            traffic::Target::Previous => self.rolled_out.as_ref(),
            traffic::Target::Canary(i) => self.canaries.get(i).map(|c| &c.revision),
        }
    }

    /// Every revision in use, for reuse by the next generation.
    fn revisions(&self) -> impl Iterator<Item = &Arc<Revision>> {
        self.latest
            .iter()
            .chain(self.rolled_out.iter())
            .chain(self.canaries.iter().map(|c| &c.revision))
            .chain(self.transformer.iter())
            .chain(self.explainer.iter())
    }
}

/// A loopback listener that serves a service's predictor (with its
/// traffic split) to its transformer and explainer.
struct PredictorHost {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PredictorHost {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Which part of a service a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// The service's URL: the transformer if there is one (the explainer
    /// for `:explain`), else the predictor.
    Service,
    /// The predictor, with its traffic split.
    Predictor,
    /// Tag routing: the latest revision.
    Latest,
    /// Tag routing: the previous rollout.
    Previous,
}

type Key = (Namespace, String);

struct Inner {
    resources: Resources,
    storage: Storage,
    config: ControllerConfig,
    /// Each service's request metrics (shared by its revisions).
    metrics: RwLock<HashMap<Key, Arc<Metrics>>>,
    services: RwLock<HashMap<Key, Entry>>,
    stop: Notify,
    /// Bumped after every status write and every change of what is
    /// served, so that callers can wait for a service to settle without
    /// polling the store.
    changes: tokio::sync::watch::Sender<u64>,
    /// Held by `settle` from computing a status (and a promotion) until
    /// it is stored, so that two changes finishing together cannot store
    /// them in the wrong order (the older one last).
    status_writes: tokio::sync::Mutex<()>,
    /// TrainedModels and the multi-model servers that load them.
    trained: trained::TrainedModels,
    /// The framework controller that runs the reconciles, once started.
    framework: std::sync::OnceLock<oxflow_controller::Controller>,
    /// Records the services' events (readiness gained or lost).
    events: oxflow_resources::Recorder,
    /// Where command copies show as Pods.
    pods: pods::CommandPods,
}

/// Serves the stored InferenceServices; cheap to clone.
#[derive(Clone)]
pub struct ServingController {
    inner: Arc<Inner>,
}

/// A revision to create and load, decided while no lock is held.
struct Planned {
    revision: Arc<Revision>,
    /// The model to load; `None` for commands, which start at once.
    load: Option<(SourceLoader, Arc<Repository>)>,
}

/// The serving controller as the framework runs it: a changed
/// InferenceService is reconciled (or unloaded when gone); a changed
/// TrainedModel brings every multi-model server in line.
struct Reconcile(ServingController);

impl oxflow_controller::Reconciler for Reconcile {
    fn reconcile<'a>(
        &'a self,
        key: &'a ResourceKey,
        _ctx: &'a oxflow_controller::Context,
    ) -> futures::future::BoxFuture<
        'a,
        Result<oxflow_controller::Action, oxflow_controller::ReconcileError>,
    > {
        Box::pin(async move {
            if key.kind == crate::kinds::TRAINED_MODEL.kind {
                self.0.resync_trained().await;
            } else {
                self.0.reconcile_key(&key.namespace, &key.name).await?;
            }
            Ok(oxflow_controller::Action::Done)
        })
    }

    fn keys(
        &self,
    ) -> futures::future::BoxFuture<'_, Result<Vec<ResourceKey>, oxflow_controller::ReconcileError>>
    {
        Box::pin(async move {
            let mut keys = Vec::new();
            for kind in crate::kinds::kinds() {
                let (objects, _) = self
                    .0
                    .inner
                    .resources
                    .list(kind, None, &Default::default(), &Default::default())
                    .await?;
                keys.extend(objects.iter().filter_map(|o| {
                    Some(ResourceKey {
                        group: kind.group.to_owned(),
                        kind: kind.kind.to_owned(),
                        namespace: o["metadata"]["namespace"].as_str()?.to_owned(),
                        name: o["metadata"]["name"].as_str()?.to_owned(),
                    })
                }));
            }
            // Services gone while nothing watched (deleted by another
            // process) are unloaded by reconciling their keys too.
            let loaded: Vec<Key> = self
                .0
                .inner
                .services
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .keys()
                .cloned()
                .collect();
            for (ns, name) in loaded {
                let key = ResourceKey {
                    group: INFERENCE_SERVICE.group.to_owned(),
                    kind: INFERENCE_SERVICE.kind.to_owned(),
                    namespace: ns.as_str().to_owned(),
                    name,
                };
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            Ok(keys)
        })
    }
}

impl ServingController {
    /// A controller over the serving kinds of `resources`; nothing is
    /// loaded until [`Self::start`] or an apply.
    pub fn new(resources: Resources, config: ControllerConfig) -> ServingController {
        ServingController {
            inner: Arc::new(Inner {
                storage: Storage::new(&config.home)
                    .with_local_roots(LocalRoots::for_server(&config.home, &config.model_roots))
                    .with_volumes(oxflow_volumes::LocalVolumes::new(
                        resources.clone(),
                        config.home.join("volumes"),
                    )),
                events: oxflow_resources::Recorder::new(
                    resources.clone(),
                    "inferenceservice-controller",
                ),
                pods: pods::CommandPods::new(resources.clone(), config.home.clone()),
                resources,
                config,
                metrics: RwLock::new(HashMap::new()),
                services: RwLock::new(HashMap::new()),
                stop: Notify::new(),
                changes: tokio::sync::watch::channel(0).0,
                status_writes: tokio::sync::Mutex::new(()),
                trained: trained::TrainedModels::default(),
                framework: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Registers every stored service (their models start loading), then
    /// runs the controller on the framework (woken by the change feed,
    /// resyncing every `resync`) and scales idle models down until
    /// [`Self::shutdown`]. Awaited before the server accepts requests, so
    /// that a request for a stored service right after a restart waits for
    /// its model instead of finding no such service.
    pub async fn start(&self) -> tokio::task::JoinHandle<()> {
        // Before any copy starts, so only an earlier run's pods are removed.
        self.inner.pods.start().await;
        if let Err(e) = self.resync().await {
            tracing::warn!(error = %e, "Could not read the stored inference services.");
        }
        let mut config = oxflow_controller::ControllerConfig::new("serving");
        config.resync = Some(self.inner.config.resync);
        let framework = oxflow_controller::Controller::start(
            self.inner.resources.store().clone(),
            Some(&self.inner.resources),
            &crate::kinds::kinds(),
            Arc::new(Reconcile(self.clone())),
            config,
        );
        let _ = self.inner.framework.set(framework);
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(this.inner.config.resync) => {}
                    _ = this.inner.stop.notified() => return,
                }
                this.scale_down_idle().await;
            }
        })
    }

    /// Where command copies' pods write their output (`pods/NAME/log`).
    pub fn pod_logs(&self) -> pods::CommandPods {
        self.inner.pods.clone()
    }

    /// Unloads the models of `minReplicas: 0` predictors that have been
    /// idle for `scale_to_zero_after`; returns how many. A loop started by
    /// `start` calls it; the next request for one loads it again.
    pub async fn scale_down_idle(&self) -> usize {
        let idle = self.inner.config.scale_to_zero_after;
        let scaled: Vec<Key> = {
            let services = self
                .inner
                .services
                .read()
                .unwrap_or_else(|e| e.into_inner());
            services
                .iter()
                .filter(|(_, e)| {
                    let mut any = false;
                    for r in e.revisions() {
                        if let Some(s) = &r.scale
                            && s.scale_down_if_idle(idle)
                        {
                            tracing::info!(revision = %r.name, "Scaled to zero.");
                            any = true;
                        }
                    }
                    any
                })
                .map(|(k, _)| k.clone())
                .collect()
        };
        for key in &scaled {
            self.settle(key).await;
        }
        scaled.len()
    }

    /// Stops the controller and the scale-down loop (loaded models stay
    /// until the controller is dropped).
    pub fn shutdown(&self) {
        if let Some(f) = self.inner.framework.get() {
            f.stop();
        }
        self.inner.stop.notify_waiters();
        self.inner.stop.notify_one();
    }

    /// The resource model the controller reads and writes.
    pub fn resources(&self) -> &Resources {
        &self.inner.resources
    }

    /// The stored services.
    async fn stored_services(&self) -> Result<Vec<InferenceServiceRecord>, ServingError> {
        Ok(self.stored_all(&INFERENCE_SERVICE).await?)
    }

    /// Every stored object of one of the serving kinds (every namespace).
    pub(super) async fn stored_all(
        &self,
        kind: &'static oxflow_core::object::Kind,
    ) -> Result<Vec<Stored>, ResourceError> {
        let (objects, _) = self
            .inner
            .resources
            .list(kind, None, &Default::default(), &Default::default())
            .await?;
        Ok(objects.iter().filter_map(Stored::from_object).collect())
    }

    /// Brings the in-memory services in line with the store: new or changed
    /// ones are reconciled, deleted ones are unloaded.
    pub async fn resync(&self) -> Result<(), ServingError> {
        let records = self.stored_services().await?;
        let live: std::collections::HashSet<Key> = records
            .iter()
            .map(|r| (r.namespace.clone(), r.name.clone()))
            .collect();
        let gone: Vec<Key> = self
            .inner
            .services
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .filter(|k| !live.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            self.forget(&key).await;
        }
        for record in records {
            self.reconcile(&record).await;
        }
        self.resync_trained().await;
        Ok(())
    }

    /// Reconciles one service from its stored state: unloaded when it is
    /// gone.
    async fn reconcile_key(&self, namespace: &str, name: &str) -> Result<(), ServingError> {
        let Ok(ns) = Namespace::new(namespace.to_owned()) else {
            return Ok(());
        };
        match self
            .inner
            .resources
            .get(&INFERENCE_SERVICE, Some(namespace), name)
            .await
        {
            Ok(object) => {
                if let Some(record) = Stored::from_object(&object) {
                    self.reconcile(&record).await;
                }
            }
            Err(ResourceError::NotFound { .. }) => {
                self.forget(&(ns, name.to_owned())).await;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Unloads a deleted service's models.
    async fn forget(&self, key: &Key) {
        let removed = self
            .inner
            .services
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key)
            .is_some();
        self.inner
            .metrics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        if removed {
            tracing::info!(service = %format!("{}/{}", key.0, key.1), "Inference service deleted; its models are unloaded.");
            // Its TrainedModels stay, saying that their service is gone.
            self.settle_trained(Some(key)).await;
            self.inner.changes.send_modify(|n| *n += 1);
        }
    }

    /// The stored service; `NotFound` when there is none.
    pub async fn get(
        &self,
        namespace: &Namespace,
        name: &str,
    ) -> Result<InferenceServiceRecord, ServingError> {
        self.stored(&INFERENCE_SERVICE, namespace, name).await
    }

    /// A stored object of one of the serving kinds, as the controller
    /// reads it.
    pub(super) async fn stored(
        &self,
        kind: &'static oxflow_core::object::Kind,
        namespace: &Namespace,
        name: &str,
    ) -> Result<Stored, ServingError> {
        let object = self
            .inner
            .resources
            .get(kind, Some(namespace.as_str()), name)
            .await?;
        Stored::from_object(&object).ok_or_else(|| {
            ServingError::Spec(SpecError::new(
                "metadata",
                "the stored object has no uid or namespace",
            ))
        })
    }

    /// Stores `service` in `namespace` (the file's own namespace wins when
    /// it names one) and reconciles it.
    pub async fn apply(
        &self,
        namespace: &Namespace,
        service: &InferenceService,
    ) -> Result<(InferenceServiceRecord, Applied), ServingError> {
        let ns = service
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.clone());
        let (_, applied) = crate::kinds::apply(
            &self.inner.resources,
            &INFERENCE_SERVICE,
            &ns,
            stored_spec(service, &ns),
        )
        .await?;
        let record = self.get(&ns, service.name.as_str()).await?;
        self.reconcile(&record).await;
        Ok((self.get(&ns, &record.name).await?, applied))
    }

    /// Stores a new service (a conflict if the name is taken) and reconciles it.
    pub async fn create(
        &self,
        namespace: &Namespace,
        service: &InferenceService,
    ) -> Result<InferenceServiceRecord, ServingError> {
        self.inner
            .resources
            .create(
                &INFERENCE_SERVICE,
                Some(namespace.as_str()),
                stored_spec(service, namespace),
                &WriteOptions::default(),
            )
            .await?;
        let record = self.get(namespace, service.name.as_str()).await?;
        self.reconcile(&record).await;
        self.get(namespace, &record.name).await
    }

    /// Deletes the service and unloads its models; false when there was none.
    pub async fn delete(&self, namespace: &Namespace, name: &str) -> Result<bool, ServingError> {
        let deleted = match self
            .inner
            .resources
            .delete(
                &INFERENCE_SERVICE,
                Some(namespace.as_str()),
                name,
                &Default::default(),
            )
            .await
        {
            Ok(_) => true,
            Err(ResourceError::NotFound { .. }) => false,
            Err(e) => return Err(e.into()),
        };
        self.forget(&(namespace.clone(), name.to_owned())).await;
        Ok(deleted)
    }

    /// A receiver that sees a new value after every status the controller
    /// writes (for waiting on a service's readiness).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// The Prometheus text of one service's requests (every revision of
    /// it), or `None` for an unknown service. Reading it is not a request
    /// to the service: it neither wakes a scaled-to-zero model nor counts
    /// as traffic.
    pub fn service_metrics(&self, namespace: &Namespace, name: &str) -> Option<String> {
        let key = (namespace.clone(), name.to_owned());
        let requests = self
            .inner
            .metrics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .map(|m| m.render());
        let replicas = self.replica_metrics(&key);
        match (requests, replicas) {
            (None, None) => None,
            (requests, replicas) => {
                Some(requests.unwrap_or_default() + &replicas.unwrap_or_default())
            }
        }
    }

    /// The copies each command revision of a service runs, is ready with,
    /// and was asked for (Knative's actual and desired replicas).
    fn replica_metrics(&self, key: &Key) -> Option<String> {
        let services = self
            .inner
            .services
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let entry = services.get(key)?;
        let mut seen = std::collections::HashSet::new();
        let mut lines = Vec::new();
        for r in entry.revisions() {
            let Some(replicas) = &r.replicas else {
                continue;
            };
            if !seen.insert(r.name.clone()) {
                continue;
            }
            let (running, ready) = replicas.counts();
            let label = format!("revision=\"{}\"", r.name);
            lines.push(("oxflow_serving_replicas", format!("{{{label}}} {running}")));
            lines.push((
                "oxflow_serving_ready_replicas",
                format!("{{{label}}} {ready}"),
            ));
            lines.push((
                "oxflow_serving_desired_replicas",
                format!("{{{label}}} {}", replicas.wanted()),
            ));
        }
        let mut out = String::new();
        for (metric, help) in [
            ("oxflow_serving_replicas", "Copies of the command running."),
            (
                "oxflow_serving_ready_replicas",
                "Copies of the command answering.",
            ),
            (
                "oxflow_serving_desired_replicas",
                "Copies of the command the autoscaler asks for.",
            ),
        ] {
            let mine: Vec<&String> = lines
                .iter()
                .filter(|(m, _)| *m == metric)
                .map(|(_, l)| l)
                .collect();
            if mine.is_empty() {
                continue;
            }
            out.push_str(&format!("# HELP {metric} {help}\n# TYPE {metric} gauge\n"));
            for l in mine {
                out.push_str(&format!("{metric}{l}\n"));
            }
        }
        Some(out)
    }

    /// The metrics registry of a service, created on first use: each
    /// service has its own, so that same-named services of two namespaces
    /// never share counters.
    fn metrics_for(&self, key: &Key) -> Arc<Metrics> {
        if let Some(m) = self
            .inner
            .metrics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            return m.clone();
        }
        self.inner
            .metrics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone()
    }

    /// Makes the record's generation servable, unless it already is:
    /// revisions whose predictor did not change are kept (loaded), new ones
    /// are created and loaded in the background.
    async fn reconcile(&self, record: &InferenceServiceRecord) {
        let key = (record.namespace.clone(), record.name.clone());
        // The revisions in use now, by predictor key; a failed one is
        // never reused (applying again retries it).
        let (existing, existing_host): (Vec<Arc<Revision>>, Option<Arc<PredictorHost>>) = {
            let services = self
                .inner
                .services
                .read()
                .unwrap_or_else(|e| e.into_inner());
            match services.get(&key) {
                Some(e) if e.id == record.id && e.generation == record.generation => return,
                Some(e) if e.id == record.id => {
                    (e.revisions().cloned().collect(), e.predictor_host.clone())
                }
                _ => (Vec::new(), None),
            }
        };
        // The secrets named by serviceAccountName (S3 credentials), read
        // before planning (planning does no I/O).
        let secrets = self.service_account_secrets(record).await;
        let reuse = |k: &str| {
            existing
                .iter()
                .find(|r| r.key == k && !matches!(r.phase(), Phase::Failed(_)))
                .cloned()
        };
        let mut to_load: Vec<Planned> = Vec::new();
        let revision_for = |p: &PredictorSpec,
                            json: &Value,
                            name: String,
                            endpoint: &str,
                            to_load: &mut Vec<Planned>| {
            let k = predictor_key(json);
            if let Some(r) = reuse(&k) {
                return Ok(r);
            }
            let planned = self.plan(record, p, json, k, name, endpoint, &secrets)?;
            let r = planned.revision.clone();
            to_load.push(planned);
            Ok::<_, Failure>(r)
        };

        // After a restart, revisions keep the names the stored status gave
        // them when it describes this very spec.
        let restarted = existing.is_empty() && record.observed_generation == record.generation;
        let stored_name = |v: &Value| v.as_str().filter(|_| restarted).map(str::to_owned);
        let parsed = InferenceService::from_json_value(record.spec.clone());
        let mut failure = None;
        let mut latest = None;
        let mut canaries = Vec::new();
        let mut canary_percent = None;
        let mut tag_routing = false;
        let mut transformer = None;
        let mut explainer = None;
        let mut predictor_host = None;
        match &parsed {
            Err(e) => failure = Some(Failure::new("InvalidPredictorSpec", e.to_string())),
            Ok(service) => {
                tag_routing = service.tag_routing();
                let spec = &service.spec;
                if let Some(why) = unsupported(service) {
                    failure = Some(why);
                } else {
                    let predictor = &record.spec["spec"]["predictor"];
                    match revision_for(
                        &spec.predictor,
                        predictor,
                        stored_name(
                            &record.status["components"]["predictor"]["latestCreatedRevision"],
                        )
                        .unwrap_or_else(|| {
                            format!("{}-predictor-{:05}", record.name, record.generation)
                        }),
                        "default",
                        &mut to_load,
                    ) {
                        Ok(r) => latest = Some(r),
                        Err(f) => failure = Some(f),
                    }
                    canary_percent = spec
                        .predictor
                        .component
                        .canary_traffic_percent
                        .map(|p| p.get());
                    for (i, c) in spec.canary.iter().enumerate() {
                        let json = &record.spec["spec"]["canary"][i]["predictor"];
                        match revision_for(
                            &c.predictor,
                            json,
                            stored_name(&record.status["canaryStatuses"][i]["revisionName"])
                                .unwrap_or_else(|| {
                                    format!("{}-{}-{:05}", record.name, c.name(), record.generation)
                                }),
                            c.name(),
                            &mut to_load,
                        ) {
                            Ok(r) => canaries.push(Canary {
                                name: c.name().to_owned(),
                                percent: c.traffic_percent.get(),
                                revision: r,
                            }),
                            Err(f) => {
                                failure = Some(Failure::new(
                                    f.reason,
                                    format!("spec.canary[{i}]: {}", f.message),
                                ));
                            }
                        }
                    }
                    if let Err(f) = self.plan_sidecars(
                        record,
                        service,
                        existing_host.clone(),
                        &reuse,
                        (&mut transformer, &mut explainer, &mut predictor_host),
                    ) {
                        failure = Some(f);
                    }
                }
            }
        }
        // The revision rolled out before a restart, when the current spec
        // is a canary of another predictor.
        let mut restored = None;
        if existing.is_empty()
            && let Some(prev) = record.rolled_out()
            && let Some(json) = prev.get("predictor")
            && latest.as_ref().is_none_or(|l| l.key != predictor_key(json))
        {
            match predictor_from_json(&record.name, json) {
                Ok(p) => {
                    let name = prev["revision"].as_str().unwrap_or("previous").to_owned();
                    match revision_for(&p, json, name, "default", &mut to_load) {
                        Ok(r) => restored = Some(r),
                        Err(f) => {
                            tracing::warn!(reason = f.reason, message = %f.message, "Could not restore the previous rollout.")
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "The stored previous rollout is not a valid predictor.")
                }
            }
        }
        {
            let mut services = self
                .inner
                .services
                .write()
                .unwrap_or_else(|e| e.into_inner());
            let entry = services.entry(key.clone()).or_insert_with(|| Entry {
                id: record.id.clone(),
                generation: 0,
                spec: Value::Null,
                failure: None,
                latest: None,
                rolled_out: None,
                canary_percent: None,
                canaries: Vec::new(),
                transformer: None,
                explainer: None,
                predictor_host: None,
                tag_routing: false,
                transitions: transitions_from(&record.status),
                reported: ready_of(&record.status).map(|(s, r, _)| (s, r)),
                requests: Arc::new(AtomicU64::new(0)),
            });
            if entry.id != record.id {
                // Deleted and created again under the same name.
                entry.rolled_out = None;
                entry.transitions.clear();
                entry.reported = None;
            }
            if restored.is_some() {
                entry.rolled_out = restored;
            }
            entry.id = record.id.clone();
            entry.generation = record.generation;
            entry.spec = record.spec.clone();
            entry.failure = failure;
            entry.latest = latest;
            entry.canary_percent = canary_percent;
            entry.canaries = canaries;
            entry.transformer = transformer;
            entry.explainer = explainer;
            entry.predictor_host = predictor_host;
            entry.tag_routing = tag_routing;
        }
        tracing::info!(service = %format!("{}/{}", key.0, key.1), generation = record.generation, loading = to_load.len(), "Reconciling inference service.");
        self.settle(&key).await;
        for planned in to_load {
            let Some((loader, repository)) = planned.load else {
                continue;
            };
            if let Some(server) = self.inner.trained.server_of(&key, &planned.revision) {
                self.load_multi_model(key.clone(), planned.revision, server)
                    .await;
                continue;
            }
            let this = self.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let model = key.1.clone();
                let phase = match loader.load_source(&model).await {
                    Ok(m) => {
                        repository.set(&model, ModelState::Ready(m));
                        Phase::Loaded
                    }
                    Err(why) => {
                        repository.set(&model, ModelState::Failed(why.clone()));
                        Phase::Failed(Failure::new("ModelLoadFailed", why))
                    }
                };
                *planned
                    .revision
                    .phase
                    .write()
                    .unwrap_or_else(|e| e.into_inner()) = phase;
                this.settle(&key).await;
            });
        }
    }

    /// After a change: promotes the latest revision when it took all the
    /// traffic, then writes the status (which records the promotion).
    async fn settle(&self, key: &Key) {
        let _serial = self.inner.status_writes.lock().await;
        {
            let mut services = self
                .inner
                .services
                .write()
                .unwrap_or_else(|e| e.into_inner());
            let Some(entry) = services.get_mut(key) else {
                return;
            };
            let layout = entry.layout();
            let split = traffic::split(&layout);
            let latest_takes_all = split
                .iter()
                .any(|(t, p)| *t == traffic::Target::Latest && *p > 0)
                && !split
                    .iter()
                    .any(|(t, p)| *t == traffic::Target::Previous && *p > 0);
            let first = entry.rolled_out.is_none();
            if let Some(l) = &entry.latest
                && l.phase() == Phase::Loaded
                && (first || latest_takes_all && entry.canary_percent.is_none_or(|p| p == 100))
                && !entry.rolled_out.as_ref().is_some_and(|r| Arc::ptr_eq(r, l))
            {
                entry.rolled_out = Some(l.clone());
            }
        }
        self.write_status(key).await;
        self.write_trained_statuses(Some(key)).await;
    }

    /// A revision for `predictor` and the loader of its model, or why it
    /// cannot be served.
    #[allow(clippy::too_many_arguments)]
    fn plan(
        &self,
        record: &InferenceServiceRecord,
        predictor: &PredictorSpec,
        json: &Value,
        key: String,
        name: String,
        endpoint: &str,
        secrets: &HashMap<String, Option<oxflow_store::SecretData>>,
    ) -> Result<Planned, Failure> {
        let url = self.url(&record.namespace, &record.name);
        let policy = policy::Policy::new(
            &predictor.component,
            policy::Identity {
                service: &record.name,
                namespace: record.namespace.as_str(),
                endpoint,
                url: &url,
            },
        )?;
        let model = match &predictor.implementation {
            Predictor::Model(m) => m,
            Predictor::Custom(c) => {
                let revision = self.command_revision(
                    record,
                    "predictor",
                    &c.spec,
                    Vec::new(),
                    key,
                    name,
                    json.clone(),
                    &predictor.component,
                    policy,
                )?;
                return Ok(Planned {
                    revision,
                    load: None,
                });
            }
        };
        if model.format.name.local_server().is_none() {
            return Err(Failure::new(
                "NoSupportingRuntime",
                format!(
                    "spec.predictor.model.modelFormat.name: Oxflow has no runtime for {:?}; it serves onnx, xgboost, lightgbm and sklearn",
                    model.format.name.as_str()
                ),
            ));
        }
        // No model location at all: a multi-model server, which serves
        // the TrainedModels that name the service.
        let multi_model = trained::is_multi_model(predictor);
        let uri = match &model.storage_uri {
            Some(uri) => Some(uri),
            None if multi_model => None,
            None => {
                return Err(Failure::new(
                    "InvalidPredictorSpec",
                    "spec.predictor.model.storageUri: required; give the model's location",
                ));
            }
        };
        let model_name = record.name.clone();
        let metrics = self.metrics_for(&(record.namespace.clone(), record.name.clone()));
        let mut runtime = self.inner.config.runtime.clone();
        let worker_count = runtime
            .python
            .workers
            .max(predictor.component.min_replicas as usize)
            .max(1);
        runtime.python.workers = worker_count;
        runtime.python.logs_dir =
            crate::logs::service_log_dir(&self.inner.config.home, &record.namespace, &record.name);
        let mut storage = self.inner.storage.clone();
        if let Some(account) = &predictor.pod.service_account_name {
            match secrets.get(account) {
                Some(Some(data)) => {
                    storage = storage
                        .with_s3(crate::storage::S3Config::from_env_and(data))
                        .with_gcs(crate::storage::GcsConfig::from_env_and(data));
                }
                _ if uri.is_some_and(|u| u.as_str().starts_with("s3://")) => {
                    return Err(Failure::new(
                        "InvalidPredictorSpec",
                        format!(
                            "serviceAccountName: no secret {account:?} in namespace {}; create it with `oxflow secrets create {account} --from-literal AWS_ACCESS_KEY_ID=… --from-literal AWS_SECRET_ACCESS_KEY=…` (and S3_ENDPOINT for an S3-compatible server)",
                            record.namespace
                        ),
                    ));
                }
                _ if uri.is_some_and(|u| u.as_str().starts_with("gs://")) => {
                    return Err(Failure::new(
                        "InvalidPredictorSpec",
                        format!(
                            "serviceAccountName: no secret {account:?} in namespace {}; create it with `oxflow secrets create {account} --from-literal {}=\"$(cat KEY.json)\"` (a service account key)",
                            record.namespace,
                            crate::storage::gcs::SECRET_KEY
                        ),
                    ));
                }
                _ => {}
            }
        }
        let mut loader = SourceLoader::new(
            storage,
            runtime,
            record.namespace.as_str(),
            uri.map(|uri| ModelSource {
                name: model_name.clone(),
                uri: uri.as_str().to_owned(),
                format: Some(model.format.name.clone()),
            })
            .into_iter()
            .collect(),
        );
        if let Some(b) = &predictor.component.batcher {
            loader = loader.with_batching(
                BatchConfig {
                    max_batch_size: b.max_batch_size.get() as usize,
                    max_latency: Duration::from_millis(u64::from(b.max_latency_ms.get())),
                },
                metrics.clone(),
            );
        }
        let (server, repository) = if multi_model {
            let (server, repository) = trained::ModelServer::new(
                loader.clone(),
                model.format.name.clone(),
                name.clone(),
                self.inner.config.hold,
            );
            (Some(server), repository)
        } else {
            let repository = Arc::new(Repository::new(
                Some(Arc::new(loader.clone()) as Arc<dyn Loader>),
                self.inner.config.hold,
            ));
            repository.set(&model_name, ModelState::Loading);
            (None, repository)
        };
        // A multi-model server is not scaled to zero: its models come and
        // go with their TrainedModels.
        let scale = (predictor.component.min_replicas == 0 && server.is_none())
            .then(|| scale::ScaleToZero::new(repository.clone(), model_name.clone()));
        // scikit-learn's worker processes are its replicas (a multi-model
        // server's models each have their own workers, not scaled).
        let (workers, meter) = if model.format.name.as_str() == "sklearn" && server.is_none() {
            let workers: Arc<dyn autoscale::Scalable> = Arc::new(autoscale::ModelWorkers::new(
                repository.clone(),
                model_name.clone(),
                worker_count,
            ));
            let scaling = autoscale::Scaling::new(
                &predictor.component,
                &annotations_of(record),
                &self.inner.config.autoscale,
                cores(),
            )
            .map_err(|e| Failure::new("InvalidPredictorSpec", e))?;
            let meter = scaling.map(|s| self.autoscale(&workers, s, &name));
            (Some(workers), meter)
        } else {
            (None, None)
        };
        // The controller decides what this revision serves, and the
        // service's status says so: the repository API must not change it.
        let plane = Arc::new(DataPlane {
            repository: repository.clone(),
            metrics,
            config: PlaneConfig {
                control: ModelControl::Managed {
                    owner: format!("InferenceService {}/{}", record.namespace, record.name),
                },
                ..PlaneConfig::default()
            },
        });
        let revision = Arc::new(Revision {
            key,
            name,
            generation: record.generation,
            predictor: json.clone(),
            router: oxflow_inference::rest::router(plane.clone()),
            policy,
            phase: Arc::new(RwLock::new(Phase::Loading)),
            replicas: workers,
            meter,
            scale,
            grpc: Some(oxflow_inference::grpc::router(plane.clone())),
            log_path: None,
        });
        if let Some(server) = &server {
            let service = (record.namespace.clone(), record.name.clone());
            self.inner.trained.register(&service, &revision, server);
        }
        Ok(Planned {
            revision,
            load: Some((loader, repository)),
        })
    }

    /// The secrets the service's predictors name as `serviceAccountName`
    /// (Oxflow has no service accounts: the secret of that name stands for
    /// the account's credentials), or `None` for missing ones.
    async fn service_account_secrets(
        &self,
        record: &InferenceServiceRecord,
    ) -> HashMap<String, Option<oxflow_store::SecretData>> {
        let spec = &record.spec["spec"];
        let mut names: Vec<&str> = Vec::new();
        names.extend(spec["predictor"]["serviceAccountName"].as_str());
        for c in spec["canary"].as_array().into_iter().flatten() {
            names.extend(c["predictor"]["serviceAccountName"].as_str());
        }
        if let Some(prev) = record.rolled_out() {
            names.extend(prev["predictor"]["serviceAccountName"].as_str());
        }
        let mut out = HashMap::new();
        for name in names {
            let secret = match self
                .inner
                .resources
                .store()
                .get_secret(&record.namespace, name)
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(secret = name, error = %e, "Could not read a service account's secret.");
                    None
                }
            };
            out.insert(name.to_owned(), secret);
        }
        out
    }

    /// A revision served by a command (a custom predictor, a transformer,
    /// an explainer), started now under the runtime.
    #[allow(clippy::too_many_arguments)]
    fn command_revision(
        &self,
        record: &InferenceServiceRecord,
        part: &str,
        container: &crate::spec::ContainerSpec,
        kserve_flags: Vec<(String, String)>,
        key: String,
        name: String,
        json: Value,
        component: &crate::spec::ComponentExtension,
        policy: policy::Policy,
    ) -> Result<Arc<Revision>, Failure> {
        let Some(runtime) = self.inner.config.workloads.clone() else {
            return Err(Failure::new(
                "RuntimeNotRecognized",
                "this server runs no commands; custom containers need `oxflow up`",
            ));
        };
        let home = &self.inner.config.home;
        // The autoscaler's bounds and target; a bad annotation is the
        // spec's fault, named.
        let scaling = autoscale::Scaling::new(
            component,
            &annotations_of(record),
            &self.inner.config.autoscale,
            cores(),
        )
        .map_err(|e| Failure::new("InvalidPredictorSpec", e))?;
        let phase = Arc::new(RwLock::new(Phase::Loading));
        let weak = Arc::downgrade(&self.inner);
        let key_of = (record.namespace.clone(), record.name.clone());
        let changed: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            if let Some(inner) = weak.upgrade() {
                let this = ServingController { inner };
                let key = key_of.clone();
                tokio::spawn(async move { this.settle(&key).await });
            }
        });
        let dir = crate::logs::service_log_dir(home, &record.namespace, &record.name);
        // minReplicas copies of the command, each on its own port; the
        // proxy spreads requests over the ready ones, and the autoscaler
        // adds copies up to maxReplicas under load.
        let replicas = process::Replicas::start(
            runtime,
            process::CommandSpec {
                name: name.clone(),
                container: container.clone(),
                kserve_flags,
                port_flags: true,
                log_path: dir.join(format!("{name}.log")),
                working_dir: home
                    .join("serving")
                    .join(record.namespace.as_str())
                    .join(&record.name),
                python: self.inner.config.runtime.python.python.clone(),
                pods: Some(self.inner.pods.template(
                    pods::Owner {
                        namespace: record.namespace.clone(),
                        name: record.name.clone(),
                        uid: record.id.clone(),
                        component: part.to_owned(),
                    },
                    &name,
                    serde_json::json!({
                        "name": pods::CONTAINER,
                        "image": container.image.clone().unwrap_or_default(),
                        "command": container.command,
                        "args": container.args,
                    }),
                )),
            },
            (component.min_replicas as usize).max(1),
            phase.clone(),
            changed,
            policy.resizer(),
        )?;
        let router = process::proxy(replicas.clone());
        let replicas: Arc<dyn autoscale::Scalable> = replicas;
        let meter = scaling.map(|s| self.autoscale(&replicas, s, &name));
        Ok(Arc::new(Revision {
            key,
            name: name.clone(),
            generation: record.generation,
            predictor: json,
            router,
            policy,
            phase,
            replicas: Some(replicas),
            meter,
            scale: None,
            grpc: None,
            log_path: Some(dir.join(format!("{name}.log"))),
        }))
    }

    /// Starts the autoscaler of `target`; returns the meter its requests
    /// must go through.
    fn autoscale(
        &self,
        target: &Arc<dyn autoscale::Scalable>,
        scaling: autoscale::Scaling,
        name: &str,
    ) -> Arc<autoscale::Meter> {
        let meter = Arc::new(autoscale::Meter::default());
        autoscale::spawn(
            Arc::downgrade(target),
            meter.clone(),
            autoscale::Decider::new(scaling),
            self.inner.config.autoscale.tick,
            name.to_owned(),
        );
        meter
    }

    /// The transformer and explainer of `service` (reused when unchanged)
    /// and the loopback predictor host they call.
    #[allow(clippy::type_complexity)]
    fn plan_sidecars(
        &self,
        record: &InferenceServiceRecord,
        service: &InferenceService,
        existing_host: Option<Arc<PredictorHost>>,
        reuse: &dyn Fn(&str) -> Option<Arc<Revision>>,
        out: (
            &mut Option<Arc<Revision>>,
            &mut Option<Arc<Revision>>,
            &mut Option<Arc<PredictorHost>>,
        ),
    ) -> Result<(), Failure> {
        let spec = &service.spec;
        let explainer_container = match spec.explainer.as_ref().map(|e| &e.implementation) {
            Some(crate::spec::Explainer::Custom(c)) => Some(c),
            _ => None,
        };
        if spec.transformer.is_none() && explainer_container.is_none() {
            return Ok(());
        }
        let host = match existing_host {
            Some(h) => h,
            None => Arc::new(self.predictor_host(&record.namespace, &record.name)?),
        };
        let flags = vec![
            ("--model_name".to_owned(), record.name.clone()),
            ("--predictor_host".to_owned(), host.addr.to_string()),
            (
                "--protocol".to_owned(),
                spec.predictor.protocol().as_str().to_owned(),
            ),
        ];
        let url = self.url(&record.namespace, &record.name);
        let component = |part: &str,
                         container: &crate::spec::ContainerSpec,
                         ext: &crate::spec::ComponentExtension|
         -> Result<Arc<Revision>, Failure> {
            let json = record.spec["spec"][part].clone();
            let k = format!("{part}:{json}");
            if let Some(r) = reuse(&k) {
                return Ok(r);
            }
            let policy = policy::Policy::new(
                ext,
                policy::Identity {
                    service: &record.name,
                    namespace: record.namespace.as_str(),
                    endpoint: "default",
                    url: &url,
                },
            )?;
            self.command_revision(
                record,
                part,
                container,
                flags.clone(),
                k,
                format!("{}-{part}-{:05}", record.name, record.generation),
                json,
                ext,
                policy,
            )
            .map_err(|f| Failure::new(f.reason, format!("spec.{part}: {}", f.message)))
        };
        if let Some(t) = &spec.transformer {
            *out.0 = Some(component("transformer", &t.container.spec, &t.component)?);
        }
        if let (Some(c), Some(e)) = (explainer_container, &spec.explainer) {
            *out.1 = Some(component("explainer", &c.spec, &e.component)?);
        }
        *out.2 = Some(host);
        Ok(())
    }

    /// Starts the loopback listener that serves the predictor of
    /// `namespace/name` to its transformer and explainer.
    fn predictor_host(&self, namespace: &Namespace, name: &str) -> Result<PredictorHost, Failure> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(tokio::net::TcpListener::from_std)
            .map_err(|e| {
                Failure::new(
                    "RuntimeUnhealthy",
                    format!("no local port for the predictor: {e}"),
                )
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Failure::new("RuntimeUnhealthy", e.to_string()))?;
        let weak = Arc::downgrade(&self.inner);
        let (ns, name) = (namespace.as_str().to_owned(), name.to_owned());
        let app = axum::Router::new().fallback(move |request: Request<Body>| {
            let weak = weak.clone();
            let (ns, name) = (ns.clone(), name.clone());
            async move {
                match weak.upgrade() {
                    Some(inner) => {
                        ServingController { inner }
                            .dispatch_route(&ns, &name, Route::Predictor, request)
                            .await
                    }
                    None => error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the server is stopping".into(),
                    ),
                }
            }
        });
        // Only the service's own transformer and explainer call it, on
        // loopback, and they are KServe's unmodified code that sends no
        // credentials (as inside a cluster, where the predictor's Service is
        // reached without them); it is still served through the edge like
        // every listener, which refuses an open listener off loopback.
        let config = oxflow_edge::ServeConfig::new(
            oxflow_edge::HostPolicy::loopback(),
            oxflow_edge::Access::Open,
        );
        let task = tokio::spawn(async move {
            let _ = oxflow_edge::serve(listener, app, config, std::future::pending()).await;
        });
        Ok(PredictorHost { addr, task })
    }

    /// Sends `request` (its path already relative to the service, e.g.
    /// `/v2/models/NAME/infer`) to a revision chosen by the traffic split;
    /// with a `tag` (`latest`, `prev`: tag routing), to that revision.
    pub async fn dispatch(&self, namespace: &str, name: &str, request: Request<Body>) -> Response {
        self.dispatch_route(namespace, name, Route::Service, request)
            .await
    }

    async fn dispatch_route(
        &self,
        namespace: &str,
        name: &str,
        route: Route,
        request: Request<Body>,
    ) -> Response {
        let revision = {
            let services = self
                .inner
                .services
                .read()
                .unwrap_or_else(|e| e.into_inner());
            let Ok(ns) = Namespace::new(namespace.to_owned()) else {
                return not_found(namespace, name);
            };
            let Some(e) = services.get(&(ns, name.to_owned())) else {
                return not_found(namespace, name);
            };
            let explain = request.uri().path().ends_with(":explain");
            let chosen = match route {
                Route::Service if explain && e.explainer.is_some() => e.explainer.as_ref(),
                Route::Service if e.transformer.is_some() => e.transformer.as_ref(),
                _ => self.choose(e, route),
            };
            match chosen {
                Some(r) => r.clone(),
                None => {
                    let why = match (&e.failure, e.latest.as_ref().map(|r| r.phase())) {
                        (Some(f), _) => f.message.clone(),
                        (None, Some(Phase::Failed(f))) => f.message,
                        _ => "no revision can take requests".into(),
                    };
                    return error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("inference service {namespace}/{name} is not ready: {why}"),
                    );
                }
            }
        };
        let _in_flight = revision.scale.as_ref().map(|s| {
            let (guard, woke) = s.enter();
            if woke {
                tracing::info!(revision = %revision.name, "Scaling up from zero.");
                let this = self.clone();
                if let Ok(ns) = Namespace::new(namespace.to_owned()) {
                    let key = (ns, name.to_owned());
                    tokio::spawn(async move { this.settle(&key).await });
                }
            }
            guard
        });
        let _metered = revision.meter.as_ref().map(|m| m.enter());
        revision
            .policy
            .handle(revision.router.clone(), request)
            .await
    }

    /// The predictor revision that takes the next request for `route`
    /// (the traffic split, or a tag's revision).
    fn choose<'e>(&self, e: &'e Entry, route: Route) -> Option<&'e Arc<Revision>> {
        match route {
            Route::Latest => e.latest.as_ref(),
            Route::Previous => e.rolled_out.as_ref(),
            Route::Service | Route::Predictor => {
                let split = traffic::split(&e.layout());
                let n = e.requests.fetch_add(1, Ordering::Relaxed);
                traffic::pick(&split, n).and_then(|t| e.target(t))
            }
        }
    }

    /// Dispatches by `Host` when it names a service (see [`Self::resolve_host`]);
    /// gives the request back otherwise.
    pub async fn dispatch_host(
        &self,
        host: &str,
        request: Request<Body>,
    ) -> Result<Response, Request<Body>> {
        match self.resolve(host) {
            Some((name, ns, route)) => Ok(self.dispatch_route(&ns, &name, route, request).await),
            None => Err(request),
        }
    }

    /// The service a `Host` header names: `NAME.NS.<domain>` (KServe's
    /// URL), or `NAME-predictor.NS.<domain>` (its predictor's, bypassing a
    /// transformer). `None` for any other host, so that the server's own
    /// routes answer those.
    pub fn resolve_host(&self, host: &str) -> Option<(String, String)> {
        self.resolve(host).map(|(name, ns, _)| (name, ns))
    }

    /// Like [`Self::resolve_host`], also `latest-NAME-predictor.NS.<domain>`
    /// and `prev-…` for services with tag routing.
    fn resolve(&self, host: &str) -> Option<(String, String, Route)> {
        let host = host.split(':').next()?;
        let mut labels = host.split('.');
        let (first, ns) = (labels.next()?, labels.next()?);
        let ns_key = Namespace::new(ns.to_owned()).ok()?;
        let services = self
            .inner
            .services
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let exists = |n: &str| services.get(&(ns_key.clone(), n.to_owned()));
        if exists(first).is_some() {
            return Some((first.to_owned(), ns.to_owned(), Route::Service));
        }
        if let Some(n) = first.strip_suffix("-predictor")
            && exists(n).is_some()
        {
            return Some((n.to_owned(), ns.to_owned(), Route::Predictor));
        }
        for (tag, route) in [("latest", Route::Latest), ("prev", Route::Previous)] {
            if let Some(n) = first
                .strip_prefix(tag)
                .and_then(|r| r.strip_prefix('-'))
                .and_then(|r| r.strip_suffix("-predictor").or(Some(r)))
                && exists(n).is_some_and(|e| e.tag_routing)
            {
                return Some((n.to_owned(), ns.to_owned(), route));
            }
        }
        None
    }

    /// The log of one revision (or a numbered copy of it) of a service's
    /// commands, current or past.
    pub fn revision_log_path(
        &self,
        namespace: &Namespace,
        name: &str,
        revision: &str,
    ) -> Result<PathBuf, crate::logs::RevisionLogError> {
        crate::logs::revision_log(&self.inner.config.home, namespace, name, revision)
    }

    /// The log of a service's command: `component` is `predictor` (the
    /// latest revision), `transformer` or `explainer`. `None` when that
    /// component is not a command (model predictors log nothing of their own).
    pub fn log_path(&self, namespace: &Namespace, name: &str, component: &str) -> Option<PathBuf> {
        let services = self
            .inner
            .services
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let e = services.get(&(namespace.clone(), name.to_owned()))?;
        let revision = match component {
            "predictor" => e.latest.as_ref(),
            "transformer" => e.transformer.as_ref(),
            "explainer" => e.explainer.as_ref(),
            _ => None,
        }?;
        revision.log_path.clone()
    }

    /// The service's URL in this server.
    pub fn url(&self, namespace: &Namespace, name: &str) -> String {
        format!(
            "{}/serving/{namespace}/{name}",
            self.inner.config.base_url.trim_end_matches('/')
        )
    }

    /// Computes the service's status and stores it; called by `settle`
    /// with `status_writes` held.
    async fn write_status(&self, key: &Key) {
        let (id, generation, status, event) = {
            let mut services = self
                .inner
                .services
                .write()
                .unwrap_or_else(|e| e.into_inner());
            let Some(entry) = services.get_mut(key) else {
                return;
            };
            let url = self.url(&key.0, &key.1);
            let mut status = status::status_json(entry, &url);
            if let Some(r) = &entry.rolled_out {
                status[ROLLED_OUT] = json!({"revision": r.name, "generation": r.generation, "predictor": r.predictor});
            }
            // Readiness gained or lost is an event (once per change).
            let ready = ready_of(&status);
            let event = match &ready {
                Some((s, r, m)) if entry.reported.as_ref() != Some(&(s.clone(), r.clone())) => {
                    entry.reported = Some((s.clone(), r.clone()));
                    match s.as_str() {
                        "True" => Some((
                            oxflow_resources::EventType::Normal,
                            "InferenceServiceReady".to_owned(),
                            format!("InferenceService {} is ready at {url}", key.1),
                        )),
                        // A revision still loading or starting is not a
                        // failure; anything else keeping it unready is.
                        "False" if !r.is_empty() && !TRANSITIONAL.contains(&r.as_str()) => {
                            Some((oxflow_resources::EventType::Warning, r.clone(), m.clone()))
                        }
                        _ => None,
                    }
                }
                _ => None,
            };
            (entry.id.clone(), entry.generation, status, event)
        };
        // Recorded before the status that shows it, so whoever sees the
        // new Ready condition finds its event.
        if let Some((kind, reason, message)) = event {
            let object = json!({
                "apiVersion": INFERENCE_SERVICE.api_version(),
                "kind": INFERENCE_SERVICE.kind,
                "metadata": {"name": key.1, "namespace": key.0.as_str(), "uid": id},
            });
            self.inner
                .events
                .record(&object, kind, &reason, &message)
                .await;
        }
        if let Err(e) = self
            .inner
            .resources
            .write_observed_status(
                &INFERENCE_SERVICE,
                Some(key.0.as_str()),
                &key.1,
                (&id, generation),
                &status,
                None,
            )
            .await
        {
            tracing::warn!(service = %format!("{}/{}", key.0, key.1), error = %e, "Could not record an inference service's status.");
        }
        self.inner.changes.send_modify(|n| *n += 1);
    }
}

/// Ready-condition reasons of a service on its way up.
const TRANSITIONAL: [&str; 2] = ["ModelLoading", "Starting"];

/// A status's Ready condition: (status, reason, message).
fn ready_of(status: &Value) -> Option<(String, String, String)> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| {
            let text = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (text("status"), text("reason"), text("message"))
        })
}

/// What the controller cannot serve yet, whatever the predictor.
fn unsupported(service: &InferenceService) -> Option<Failure> {
    if let Some(e) = &service.spec.explainer
        && let crate::spec::Explainer::Art(_) = e.implementation
    {
        return Some(Failure::new(
            "RuntimeNotRecognized",
            "spec.explainer.art: KServe's ART explainer image cannot run here; give the explainer as containers with a command",
        ));
    }
    None
}

/// A predictor's identity: its JSON without the traffic share, so that
/// changing only `canaryTrafficPercent` keeps the loaded revision.
/// The service's `metadata.annotations`.
fn annotations_of(record: &InferenceServiceRecord) -> std::collections::BTreeMap<String, String> {
    serde_json::from_value(record.spec["metadata"]["annotations"].clone()).unwrap_or_default()
}

/// The cores of this machine: the most replicas worth running when
/// `maxReplicas` leaves it open.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn predictor_key(predictor: &Value) -> String {
    let mut p = predictor.clone();
    if let Some(o) = p.as_object_mut() {
        o.remove("canaryTrafficPercent");
    }
    p.to_string()
}

/// Reads a stored predictor back through the spec's own parser.
fn predictor_from_json(name: &str, predictor: &Value) -> Result<PredictorSpec, SpecError> {
    let doc = json!({
        "apiVersion": crate::spec::API_VERSION_V1BETA1,
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {"predictor": predictor},
    });
    Ok(InferenceService::from_json_value(doc)?.spec.predictor)
}

/// The spec as stored: KServe's shape with defaults, in its namespace
/// (what `apply` writes; the CLI writes the same when no server runs).
pub fn stored_spec(service: &InferenceService, namespace: &Namespace) -> Value {
    let mut s = service.clone();
    s.namespace = Some(namespace.clone());
    s.to_kserve_value()
}

fn not_found(namespace: &str, name: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no inference service {name} in namespace {namespace}"),
    )
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// Whether a status says the service serves (its `Ready` condition).
pub fn is_ready(status: &Value) -> bool {
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}
