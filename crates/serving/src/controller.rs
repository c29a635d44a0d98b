//! The InferenceService controller of `oxflow up`: it makes every stored
//! service servable in this process and reports KServe's status for it.
//!
//! The store is the source of truth, as the Kubernetes API is for KServe:
//! `apply` writes the spec (bumping its generation) and then reconciles at
//! once; a resync loop also reconciles what other processes wrote (an
//! `oxflow apply` beside a running `oxflow up`) and removes what they
//! deleted. Every generation of a service becomes a *revision*
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
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use oxflow_core::{Namespace, Timestamp};
use oxflow_inference::batcher::BatchConfig;
use oxflow_inference::metrics::Metrics;
use oxflow_inference::{DataPlane, Loader, ModelState, PlaneConfig, Repository};
use oxflow_store::{Applied, InferenceServiceRecord, Store, StoreError};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tower::ServiceExt;

use crate::local::{ModelSource, SourceLoader};
use crate::runtimes::RuntimeConfig;
use crate::spec::{InferenceService, Predictor, SpecError};
use crate::storage::Storage;

/// How the controller serves.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Oxflow's data directory (model cache, `pvc://` volumes).
    pub home: PathBuf,
    /// How models are run (the Python for scikit-learn, …).
    pub runtime: RuntimeConfig,
    /// Where clients reach the server (`http://127.0.0.1:8080`), for the
    /// URLs in each service's status.
    pub base_url: String,
    /// How long a request waits for a model that is still loading.
    pub hold: Duration,
    /// How often the store is re-read for changes made by other processes.
    pub resync: Duration,
}

/// Errors of the controller's API.
#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    /// The resource is not a valid InferenceService.
    #[error("{0}")]
    Spec(#[from] SpecError),
    /// The store failed or the service does not exist.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What happens to a revision's model, as KServe's `modelStatus` says it.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Loading,
    Loaded,
    /// `reason` is KServe's `lastFailureInfo.reason`.
    Failed {
        reason: &'static str,
        message: String,
        at: Timestamp,
    },
}

/// One generation of a service with its own data plane.
struct Revision {
    generation: i64,
    name: String,
    router: axum::Router,
    repository: Arc<Repository>,
}

struct Entry {
    id: String,
    generation: i64,
    /// The newest revision that became ready: it gets the traffic.
    serving: Option<Arc<Revision>>,
    /// The revision of `generation`, while it loads or after it failed.
    latest: Option<Arc<Revision>>,
    phase: Phase,
    spec: Value,
    /// When each condition type last changed status.
    transitions: HashMap<&'static str, (bool, Timestamp)>,
}

type Key = (Namespace, String);

struct Inner {
    store: Store,
    storage: Storage,
    config: ControllerConfig,
    metrics: Arc<Metrics>,
    services: RwLock<HashMap<Key, Entry>>,
    stop: Notify,
    /// Bumped after every status write, so that callers can wait for a
    /// service to settle without polling the store.
    changes: tokio::sync::watch::Sender<u64>,
}

/// Serves the stored InferenceServices; cheap to clone.
#[derive(Clone)]
pub struct ServingController {
    inner: Arc<Inner>,
}

impl ServingController {
    /// A controller over `store`; nothing is loaded until [`Self::start`]
    /// or an apply.
    pub fn new(store: Store, config: ControllerConfig) -> ServingController {
        ServingController {
            inner: Arc::new(Inner {
                storage: Storage::new(&config.home),
                store,
                config,
                metrics: Arc::new(Metrics::default()),
                services: RwLock::new(HashMap::new()),
                stop: Notify::new(),
                changes: tokio::sync::watch::channel(0).0,
            }),
        }
    }

    /// Registers every stored service (their models start loading), then
    /// keeps resyncing with the store until [`Self::shutdown`]. Awaited
    /// before the server accepts requests, so that a request for a stored
    /// service right after a restart waits for its model instead of
    /// finding no such service.
    pub async fn start(&self) -> tokio::task::JoinHandle<()> {
        if let Err(e) = self.resync().await {
            tracing::warn!(error = %e, "Could not read the stored inference services.");
        }
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(this.inner.config.resync) => {}
                    _ = this.inner.stop.notified() => return,
                }
                if let Err(e) = this.resync().await {
                    tracing::warn!(error = %e, "Could not resync inference services.");
                }
            }
        })
    }

    /// Stops the resync loop (loaded models stay until the controller is dropped).
    pub fn shutdown(&self) {
        self.inner.stop.notify_waiters();
        self.inner.stop.notify_one();
    }

    /// Brings the in-memory services in line with the store: new or changed
    /// ones are reconciled, deleted ones are unloaded.
    pub async fn resync(&self) -> Result<(), ServingError> {
        let records = self.inner.store.list_inference_services(None).await?;
        let live: std::collections::HashSet<Key> = records
            .iter()
            .map(|r| (r.namespace.clone(), r.name.clone()))
            .collect();
        self.inner
            .services
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| live.contains(k));
        for record in records {
            self.reconcile(&record).await;
        }
        Ok(())
    }

    /// Validates `text`'s InferenceService, stores it in `namespace` (the
    /// file's own namespace wins when it names one) and reconciles it.
    pub async fn apply(
        &self,
        namespace: &Namespace,
        service: &InferenceService,
    ) -> Result<(InferenceServiceRecord, Applied), ServingError> {
        let ns = service
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.clone());
        let spec = stored_spec(service, &ns);
        let (record, applied) = self
            .inner
            .store
            .apply_inference_service(&ns, service.name.as_str(), &spec)
            .await?;
        self.reconcile(&record).await;
        Ok((
            self.inner
                .store
                .get_inference_service(&ns, &record.name)
                .await?,
            applied,
        ))
    }

    /// Stores a new service (a conflict if the name is taken) and reconciles it.
    pub async fn create(
        &self,
        namespace: &Namespace,
        service: &InferenceService,
    ) -> Result<InferenceServiceRecord, ServingError> {
        let spec = stored_spec(service, namespace);
        let record = self
            .inner
            .store
            .create_inference_service(namespace, service.name.as_str(), &spec)
            .await?;
        self.reconcile(&record).await;
        Ok(self
            .inner
            .store
            .get_inference_service(namespace, &record.name)
            .await?)
    }

    /// Deletes the service and unloads its models; false when there was none.
    pub async fn delete(&self, namespace: &Namespace, name: &str) -> Result<bool, ServingError> {
        let deleted = self
            .inner
            .store
            .delete_inference_service(namespace, name)
            .await?;
        self.inner
            .services
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(namespace.clone(), name.to_owned()));
        Ok(deleted)
    }

    /// A receiver that sees a new value after every status the controller
    /// writes (for waiting on a service's readiness).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// The metrics of every service's models.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Makes the record's generation servable, unless it already is.
    async fn reconcile(&self, record: &InferenceServiceRecord) {
        let key = (record.namespace.clone(), record.name.clone());
        {
            let services = self
                .inner
                .services
                .read()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(e) = services.get(&key)
                && e.id == record.id
                && e.generation == record.generation
            {
                return;
            }
        }
        let planned = self.plan(record);
        let (revision, phase, load) = match planned {
            Ok((revision, loader)) => (Some(revision), Phase::Loading, Some(loader)),
            Err((reason, message)) => (
                None,
                Phase::Failed {
                    reason,
                    message,
                    at: Timestamp::now(),
                },
                None,
            ),
        };
        {
            let mut services = self
                .inner
                .services
                .write()
                .unwrap_or_else(|e| e.into_inner());
            let entry = services.entry(key.clone()).or_insert_with(|| Entry {
                id: record.id.clone(),
                generation: 0,
                serving: None,
                latest: None,
                phase: Phase::Loading,
                spec: Value::Null,
                transitions: transitions_from(&record.status),
            });
            if entry.id != record.id {
                // Deleted and created again under the same name.
                entry.serving = None;
                entry.transitions.clear();
            }
            entry.id = record.id.clone();
            entry.generation = record.generation;
            entry.latest = revision.clone();
            entry.phase = phase;
            entry.spec = record.spec.clone();
        }
        tracing::info!(service = %format!("{}/{}", key.0, key.1), generation = record.generation, "Reconciling inference service.");
        self.write_status(&key).await;
        if let (Some(revision), Some(loader)) = (revision, load) {
            let this = self.clone();
            tokio::spawn(async move {
                let model = key.1.clone();
                let outcome = loader.load_source(&model).await;
                let phase = match outcome {
                    Ok(m) => {
                        revision.repository.set(&model, ModelState::Ready(m));
                        Phase::Loaded
                    }
                    Err(why) => {
                        revision
                            .repository
                            .set(&model, ModelState::Failed(why.clone()));
                        Phase::Failed {
                            reason: "ModelLoadFailed",
                            message: why,
                            at: Timestamp::now(),
                        }
                    }
                };
                this.loaded(&key, &revision, phase).await;
            });
        }
    }

    /// Records the outcome of loading `revision`; a ready one takes the
    /// traffic if it is still the newest.
    async fn loaded(&self, key: &Key, revision: &Arc<Revision>, phase: Phase) {
        {
            let mut services = self
                .inner
                .services
                .write()
                .unwrap_or_else(|e| e.into_inner());
            let Some(entry) = services.get_mut(key) else {
                return;
            };
            if entry.generation != revision.generation
                || !entry
                    .latest
                    .as_ref()
                    .is_some_and(|l| Arc::ptr_eq(l, revision))
            {
                return;
            }
            if phase == Phase::Loaded {
                entry.serving = Some(revision.clone());
            }
            entry.phase = phase;
        }
        self.write_status(key).await;
    }

    /// A revision and the loader of its model, or why the service cannot
    /// be served (KServe's failure reason and a message).
    fn plan(
        &self,
        record: &InferenceServiceRecord,
    ) -> Result<(Arc<Revision>, SourceLoader), (&'static str, String)> {
        let service = InferenceService::from_json_value(record.spec.clone())
            .map_err(|e| ("InvalidPredictorSpec", e.to_string()))?;
        let spec = &service.spec;
        if spec.transformer.is_some() {
            return Err((
                "RuntimeNotRecognized",
                "spec.transformer: transformers are not served by Oxflow yet".into(),
            ));
        }
        if spec.explainer.is_some() {
            return Err((
                "RuntimeNotRecognized",
                "spec.explainer: explainers are not served by Oxflow yet".into(),
            ));
        }
        if !spec.canary.is_empty() {
            return Err((
                "RuntimeNotRecognized",
                "spec.canary: canary predictors are not served by Oxflow yet".into(),
            ));
        }
        let predictor = &spec.predictor;
        let model = match &predictor.implementation {
            Predictor::Model(m) => m,
            Predictor::Custom(_) => {
                return Err((
                    "RuntimeNotRecognized",
                    "spec.predictor.containers: custom predictors are not served by Oxflow yet"
                        .into(),
                ));
            }
        };
        if model.format.name.local_server().is_none() {
            return Err((
                "NoSupportingRuntime",
                format!(
                    "spec.predictor.model.modelFormat.name: Oxflow has no runtime for {:?}; it serves onnx, xgboost, lightgbm and sklearn",
                    model.format.name.as_str()
                ),
            ));
        }
        let Some(uri) = &model.storage_uri else {
            return Err((
                "InvalidPredictorSpec",
                "spec.predictor.model.storageUri: required; give the model's location".into(),
            ));
        };
        let name = record.name.clone();
        let mut runtime = self.inner.config.runtime.clone();
        runtime.python.workers = runtime
            .python
            .workers
            .max(predictor.component.min_replicas as usize)
            .max(1);
        let mut loader = SourceLoader::new(
            self.inner.storage.clone(),
            runtime,
            record.namespace.as_str(),
            vec![ModelSource {
                name: name.clone(),
                uri: uri.as_str().to_owned(),
                format: Some(model.format.name.clone()),
            }],
        );
        if let Some(b) = &predictor.component.batcher {
            loader = loader.with_batching(
                BatchConfig {
                    max_batch_size: b.max_batch_size.get() as usize,
                    max_latency: Duration::from_millis(u64::from(b.max_latency_ms.get())),
                },
                self.inner.metrics.clone(),
            );
        }
        let repository = Arc::new(Repository::new(
            Some(Arc::new(loader.clone()) as Arc<dyn Loader>),
            self.inner.config.hold,
        ));
        repository.set(&name, ModelState::Loading);
        let plane = Arc::new(DataPlane {
            repository: repository.clone(),
            metrics: self.inner.metrics.clone(),
            config: PlaneConfig::default(),
        });
        Ok((
            Arc::new(Revision {
                generation: record.generation,
                name: revision_name(&name, record.generation),
                router: oxflow_inference::rest::router(plane),
                repository,
            }),
            loader,
        ))
    }

    /// Sends `request` (its path already relative to the service, e.g.
    /// `/v2/models/NAME/infer`) to the service's serving revision, or to
    /// the loading one when none is ready yet.
    pub async fn dispatch(&self, namespace: &str, name: &str, request: Request<Body>) -> Response {
        let router = {
            let services = self
                .inner
                .services
                .read()
                .unwrap_or_else(|e| e.into_inner());
            let Ok(ns) = Namespace::new(namespace.to_owned()) else {
                return not_found(namespace, name);
            };
            match services.get(&(ns, name.to_owned())) {
                None => return not_found(namespace, name),
                Some(e) => match e.serving.as_ref().or(e.latest.as_ref()) {
                    Some(r) => r.router.clone(),
                    None => {
                        let why = match &e.phase {
                            Phase::Failed { message, .. } => message.clone(),
                            _ => "it has no revision yet".into(),
                        };
                        return error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("inference service {namespace}/{name} is not ready: {why}"),
                        );
                    }
                },
            }
        };
        match router.oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }

    /// The service a `Host` header names: `NAME.NS.<domain>` (KServe's
    /// URL), or `NAME-predictor.NS.<domain>` (its predictor's). `None` for
    /// any other host, so that the server's own routes answer those.
    pub fn resolve_host(&self, host: &str) -> Option<(String, String)> {
        let host = host.split(':').next()?;
        let mut labels = host.split('.');
        let (first, ns) = (labels.next()?, labels.next()?);
        let ns_key = Namespace::new(ns.to_owned()).ok()?;
        let services = self
            .inner
            .services
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let candidates = [Some(first), first.strip_suffix("-predictor")];
        candidates
            .into_iter()
            .flatten()
            .find(|n| services.contains_key(&(ns_key.clone(), (*n).to_owned())))
            .map(|n| (n.to_owned(), ns.to_owned()))
    }

    /// The service's URL in this server.
    pub fn url(&self, namespace: &Namespace, name: &str) -> String {
        format!(
            "{}/serving/{namespace}/{name}",
            self.inner.config.base_url.trim_end_matches('/')
        )
    }

    /// Computes the service's status from its entry and stores it.
    async fn write_status(&self, key: &Key) {
        let (id, generation, status) = {
            let mut services = self
                .inner
                .services
                .write()
                .unwrap_or_else(|e| e.into_inner());
            let Some(entry) = services.get_mut(key) else {
                return;
            };
            let url = self.url(&key.0, &key.1);
            let status = status_json(entry, &key.1, &url);
            (entry.id.clone(), entry.generation, status)
        };
        if let Err(e) = self
            .inner
            .store
            .set_inference_service_status(&id, generation, &status)
            .await
        {
            tracing::warn!(service = %format!("{}/{}", key.0, key.1), error = %e, "Could not record an inference service's status.");
        }
        self.inner.changes.send_modify(|n| *n += 1);
    }
}

/// The spec as stored: KServe's shape with defaults, in its namespace
/// (what `apply` writes; the CLI writes the same when no server runs).
pub fn stored_spec(service: &InferenceService, namespace: &Namespace) -> Value {
    let mut s = service.clone();
    s.namespace = Some(namespace.clone());
    s.to_kserve_value()
}

/// KServe's revision naming (`sklearn-iris-predictor-00001`).
fn revision_name(name: &str, generation: i64) -> String {
    format!("{name}-predictor-{generation:05}")
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

/// The condition times of a stored status, so that a restart keeps them.
fn transitions_from(status: &Value) -> HashMap<&'static str, (bool, Timestamp)> {
    let mut out = HashMap::new();
    for c in status["conditions"].as_array().into_iter().flatten() {
        let (Some(kind), Some(time)) = (
            c["type"].as_str(),
            c["lastTransitionTime"]
                .as_str()
                .and_then(Timestamp::parse_rfc3339),
        ) else {
            continue;
        };
        let Some(kind) = CONDITIONS.iter().find(|k| **k == kind) else {
            continue;
        };
        out.insert(*kind, (c["status"] == "True", time));
    }
    out
}

const CONDITIONS: [&str; 3] = ["IngressReady", "PredictorReady", "Ready"];

/// KServe's `status` for the entry.
fn status_json(entry: &mut Entry, name: &str, url: &str) -> Value {
    let now = Timestamp::now();
    let serving = entry.serving.as_ref();
    let ready = serving.is_some();
    let latest_name = revision_name(name, entry.generation);
    let (reason, message) = match &entry.phase {
        Phase::Loading if ready => (
            Some("RevisionLoading"),
            Some(format!(
                "revision {latest_name} is loading; the previous one serves"
            )),
        ),
        Phase::Loading => (
            Some("ModelLoading"),
            Some(format!("revision {latest_name} is loading")),
        ),
        Phase::Loaded => (None, None),
        Phase::Failed {
            reason, message, ..
        } => (Some(*reason), Some(message.clone())),
    };
    let mut condition =
        |kind: &'static str, ok: bool, reason: Option<&str>, message: Option<&str>| {
            let since = match entry.transitions.get(kind) {
                Some((was, at)) if *was == ok => *at,
                _ => {
                    entry.transitions.insert(kind, (ok, now));
                    now
                }
            };
            let mut c = json!({
                "type": kind,
                "status": if ok { "True" } else { "False" },
                "lastTransitionTime": since.to_rfc3339(),
            });
            if !ok || reason.is_some() {
                if let Some(r) = reason {
                    c["reason"] = json!(r);
                }
                if let Some(m) = message {
                    c["message"] = json!(m);
                }
            }
            c
        };
    let predictor_ready = matches!(entry.phase, Phase::Loaded) || ready;
    let conditions = vec![
        condition("IngressReady", true, None, None),
        condition(
            "PredictorReady",
            predictor_ready,
            reason.filter(|_| !predictor_ready),
            message.as_deref().filter(|_| !predictor_ready),
        ),
        condition(
            "Ready",
            ready,
            reason.filter(|_| !ready),
            message.as_deref().filter(|_| !ready),
        ),
    ];
    let (transition, active, target) = match &entry.phase {
        Phase::Loading => (
            "InProgress",
            if ready { "Loaded" } else { "Pending" },
            "Loading",
        ),
        Phase::Loaded => ("UpToDate", "Loaded", "Loaded"),
        Phase::Failed { reason, .. } if *reason == "ModelLoadFailed" => (
            "BlockedByFailedLoad",
            if ready { "Loaded" } else { "" },
            "FailedToLoad",
        ),
        Phase::Failed { .. } => (
            "InvalidSpec",
            if ready { "Loaded" } else { "" },
            "FailedToLoad",
        ),
    };
    let mut states = json!({ "targetModelState": target });
    if !active.is_empty() {
        states["activeModelState"] = json!(active);
    }
    let mut model_status = json!({
        "transitionStatus": transition,
        "states": states,
        "copies": {
            "failedCopies": i32::from(matches!(entry.phase, Phase::Failed { .. })),
            "totalCopies": 1,
        },
    });
    if let Phase::Failed {
        reason,
        message,
        at,
    } = &entry.phase
    {
        model_status["lastFailureInfo"] = json!({
            "reason": reason,
            "message": message,
            "modelRevisionName": latest_name,
            "time": at.to_rfc3339(),
        });
    }
    let mut predictor = json!({
        "url": url,
        "restUrl": url,
        "latestCreatedRevision": latest_name,
    });
    if let Some(r) = serving {
        predictor["latestReadyRevision"] = json!(r.name);
        predictor["latestRolledoutRevision"] = json!(r.name);
        predictor["traffic"] = json!([{
            "revisionName": r.name,
            "percent": 100,
            "latestRevision": r.generation == entry.generation,
        }]);
    }
    let mode = entry.spec["metadata"]["annotations"][crate::spec::DEPLOYMENT_MODE_ANNOTATION]
        .as_str()
        .unwrap_or("Standard")
        .to_owned();
    let mut status = json!({
        "observedGeneration": entry.generation,
        "conditions": conditions,
        "components": { "predictor": predictor },
        "modelStatus": model_status,
        "deploymentMode": mode,
    });
    if ready {
        status["url"] = json!(url);
        status["address"] = json!({ "url": url });
    }
    status
}

/// The service as KServe's API returns it: the stored spec with
/// `metadata` filled in (uid, generation, creation time) and the status.
pub fn isvc_json(record: &InferenceServiceRecord) -> Value {
    let mut v = record.spec.clone();
    if !v.is_object() {
        v = json!({});
    }
    v["apiVersion"] = json!(crate::spec::API_VERSION_V1BETA1);
    v["kind"] = json!("InferenceService");
    if !v["metadata"].is_object() {
        v["metadata"] = json!({});
    }
    let m = &mut v["metadata"];
    m["name"] = json!(record.name);
    m["namespace"] = json!(record.namespace.as_str());
    m["uid"] = json!(record.id);
    m["generation"] = json!(record.generation);
    m["creationTimestamp"] = json!(record.created_at.to_rfc3339());
    v["status"] = if record.status.is_object() {
        record.status.clone()
    } else {
        json!({})
    };
    v
}

/// Whether a status says the service serves (its `Ready` condition).
pub fn is_ready(status: &Value) -> bool {
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}
