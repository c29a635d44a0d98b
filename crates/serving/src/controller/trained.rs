//! TrainedModels under `oxflow up`: KServe's multi-model serving (the
//! `serving.kserve.io/v1alpha1` kind that predates ModelMesh).
//!
//! An InferenceService whose model predictor has no model location of its
//! own (no `storageUri`, `storage` or `storageUris`) is a multi-model
//! server: each of its model revisions gets a [`ModelServer`], a repository
//! that starts empty and then holds every TrainedModel naming the service,
//! each under the TrainedModel's name (so `/v1/models/<tm>:predict`,
//! `/v2/models/<tm>/infer` and gRPC `model_name: <tm>` reach it).
//!
//! The store stays the source of truth. Every change — an apply or delete
//! here, a resync that finds another process's writes, a new revision —
//! re-reads the service's models from the store and brings each of its
//! servers in line ([`ModelServer::sync`]). Syncs of one service are
//! serialised by a lock and always start from a fresh read, so a slow one
//! cannot undo a later one. A new revision loads every model before it
//! counts as loaded, so it takes traffic with all of them.
//!
//! Status follows KServe's TrainedModel controller: `url` and `address`
//! (the service's URL plus the protocol's predict path) and the conditions
//! FrameworkSupported, InferenceServiceReady, IsMMSPredictor,
//! MemoryResourceAvailable and Ready. KServe's model agent reports load
//! failures only in its log; here Ready also says whether the model loaded,
//! and why not. MemoryResourceAvailable is KServe's allocation: models
//! fit in the predictor's memory limit in creation order, and one that
//! does not is not loaded until room is made. Unlike KServe, a
//! TrainedModel whose service does not exist is kept (with
//! InferenceServiceReady False) rather than deleted, so applying the
//! models before their service works.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use oxflow_core::{Namespace, Timestamp};
use oxflow_inference::{Loader, Model, ModelState, Repository};
use oxflow_resources::{ResourceError, WriteOptions};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{Entry, Key, Phase, Revision, ServingController, ServingError};
use crate::kinds::{Applied, TRAINED_MODEL, TrainedModelRecord};
use crate::local::{ModelSource, SourceLoader};
use crate::spec::{
    InferenceService, ModelFormatName, Predictor, PredictorSpec, Protocol, Resource, SpecError,
    TrainedModel,
};

/// The conditions of a TrainedModel's status, in the order KServe lists
/// them (by type).
const CONDITIONS: [&str; 5] = [
    "FrameworkSupported",
    "InferenceServiceReady",
    "IsMMSPredictor",
    "MemoryResourceAvailable",
    "Ready",
];

/// Whether `predictor` serves TrainedModels: a model predictor with no
/// model location of its own (KServe's `IsMMSPredictor`).
pub(super) fn is_multi_model(predictor: &PredictorSpec) -> bool {
    matches!(&predictor.implementation,
        Predictor::Model(m) if m.storage_uri.is_none() && m.storage.is_none())
        && predictor.storage_uris.is_empty()
}

/// Where one TrainedModel is in one server.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Outcome {
    Loading,
    Loaded,
    /// The reason, as the loader gave it.
    Failed(String),
}

/// One TrainedModel as servers should hold it (a version of it: id and
/// generation).
#[derive(Debug, Clone)]
struct Wanted {
    name: String,
    id: String,
    generation: i64,
    uri: String,
    framework: ModelFormatName,
}

/// The version of a model a server was last told to hold, and how loading
/// it went (receivers wait on it).
struct Assigned {
    id: String,
    generation: i64,
    source: ModelSource,
    outcome: watch::Sender<Outcome>,
}

/// The repository of one multi-model revision and the models assigned to
/// it. It is that repository's loader too (the repository API's `load`
/// reloads an assigned model), which is why it holds the repository
/// weakly: the revision's data plane owns the repository, the repository
/// owns this, and dropping the revision drops every model it loaded.
pub(super) struct ModelServer {
    /// The predictor's model format; models of another framework are not
    /// loaded (their FrameworkSupported condition says so).
    format: ModelFormatName,
    /// Storage, runtime settings, namespace and batching of the revision,
    /// with no model of its own.
    base: SourceLoader,
    /// Set once, right after the repository is made.
    repository: OnceLock<Weak<Repository>>,
    assigned: Mutex<BTreeMap<String, Assigned>>,
    /// The revision's name, for logs.
    revision: String,
}

impl ModelServer {
    /// A server for models of `format` and its (empty) repository, which
    /// the revision's data plane serves.
    pub(super) fn new(
        base: SourceLoader,
        format: ModelFormatName,
        revision: String,
        hold: Duration,
    ) -> (Arc<ModelServer>, Arc<Repository>) {
        let server = Arc::new(ModelServer {
            format,
            base,
            repository: OnceLock::new(),
            assigned: Mutex::new(BTreeMap::new()),
            revision,
        });
        let repository = Arc::new(Repository::new(
            Some(server.clone() as Arc<dyn Loader>),
            hold,
        ));
        let _ = server.repository.set(Arc::downgrade(&repository));
        (server, repository)
    }

    /// Holds exactly the `wanted` models of this server's format: models no
    /// longer wanted are removed (their requests get 404), new versions are
    /// loaded in the background while an older version keeps serving.
    /// Returns a receiver per wanted model of this format, to wait for
    /// their loads.
    fn sync(self: &Arc<Self>, wanted: &[Wanted]) -> Vec<watch::Receiver<Outcome>> {
        let Some(repository) = self.repository() else {
            return Vec::new();
        };
        let wanted: Vec<&Wanted> = wanted
            .iter()
            .filter(|w| w.framework == self.format)
            .collect();
        let names: BTreeSet<&str> = wanted.iter().map(|w| w.name.as_str()).collect();
        let mut receivers = Vec::new();
        let mut to_load = Vec::new();
        {
            let mut assigned = self.assigned.lock().unwrap_or_else(|e| e.into_inner());
            assigned.retain(|name, _| {
                let keep = names.contains(name.as_str());
                if !keep {
                    tracing::info!(revision = %self.revision, model = %name, "Unloading trained model.");
                    repository.remove(name);
                }
                keep
            });
            for w in wanted {
                if let Some(a) = assigned.get(&w.name)
                    && a.id == w.id
                    && a.generation == w.generation
                {
                    receivers.push(a.outcome.subscribe());
                    continue;
                }
                let (tx, rx) = watch::channel(Outcome::Loading);
                let source = ModelSource {
                    name: w.name.clone(),
                    uri: w.uri.clone(),
                    format: Some(w.framework.clone()),
                };
                assigned.insert(
                    w.name.clone(),
                    Assigned {
                        id: w.id.clone(),
                        generation: w.generation,
                        source: source.clone(),
                        outcome: tx,
                    },
                );
                if !matches!(repository.state(&w.name), Some(ModelState::Ready(_))) {
                    repository.set(&w.name, ModelState::Loading);
                }
                receivers.push(rx);
                to_load.push((w.clone(), source));
            }
        }
        for (w, source) in to_load {
            let this = self.clone();
            tokio::spawn(async move { this.load(w, source).await });
        }
        receivers
    }

    /// Loads one version of a model and, unless another version was
    /// assigned meanwhile (or the model was removed), puts it in the
    /// repository.
    async fn load(self: Arc<Self>, w: Wanted, source: ModelSource) {
        tracing::info!(revision = %self.revision, model = %w.name, generation = w.generation, "Loading trained model.");
        let result = self.base.with_source(source).load_source(&w.name).await;
        let Some(repository) = self.repository() else {
            return;
        };
        let assigned = self.assigned.lock().unwrap_or_else(|e| e.into_inner());
        let Some(a) = assigned
            .get(&w.name)
            .filter(|a| a.id == w.id && a.generation == w.generation)
        else {
            // Superseded or removed while it loaded.
            return;
        };
        match result {
            Ok(model) => {
                repository.set(&w.name, ModelState::Ready(model));
                a.outcome.send_replace(Outcome::Loaded);
            }
            Err(why) => {
                tracing::warn!(revision = %self.revision, model = %w.name, reason = %why, "A trained model failed to load.");
                // An older version that serves goes on serving.
                if !matches!(repository.state(&w.name), Some(ModelState::Ready(_))) {
                    repository.set(&w.name, ModelState::Failed(why.clone()));
                }
                a.outcome.send_replace(Outcome::Failed(why));
            }
        }
    }

    fn repository(&self) -> Option<Arc<Repository>> {
        self.repository.get().and_then(Weak::upgrade)
    }

    /// How loading this version of the model went here; `None` when the
    /// server was not given this version.
    fn outcome(&self, name: &str, id: &str, generation: i64) -> Option<Outcome> {
        let assigned = self.assigned.lock().unwrap_or_else(|e| e.into_inner());
        assigned
            .get(name)
            .filter(|a| a.id == id && a.generation == generation)
            .map(|a| a.outcome.borrow().clone())
    }
}

impl Loader for ModelServer {
    fn load(&self, name: &str) -> BoxFuture<'static, Result<Arc<dyn Model>, String>> {
        let source = self
            .assigned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .map(|a| a.source.clone());
        let base = self.base.clone();
        let name = name.to_owned();
        Box::pin(async move {
            match source {
                Some(s) => base.with_source(s).load_source(&name).await,
                None => Err(format!(
                    "no TrainedModel {name} is assigned to this InferenceService"
                )),
            }
        })
    }

    fn available(&self) -> Vec<String> {
        self.assigned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }
}

/// A TrainedModel as the controller last read it, with what its status
/// needs to stay stable.
struct Known {
    record: TrainedModelRecord,
    /// When each condition last changed status ("True", "False", "Unknown").
    transitions: HashMap<&'static str, (&'static str, Timestamp)>,
    /// The status last written (or read back after a restart); a status
    /// equal to it is not written again.
    written: Value,
}

/// A multi-model revision and its server, neither kept alive by this.
type ServerRef = (Weak<Revision>, Weak<ModelServer>);

/// The controller's TrainedModel state (a field of its `Inner`).
#[derive(Default)]
pub(super) struct TrainedModels {
    /// Each multi-model service's servers, one per revision. Weak both
    /// ways: a revision that is dropped takes its server with it.
    servers: Mutex<HashMap<Key, Vec<ServerRef>>>,
    /// One lock per service that serialises its syncs.
    syncs: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
    /// Every TrainedModel by (namespace, name).
    known: Mutex<BTreeMap<Key, Known>>,
}

impl TrainedModels {
    /// Records `server` as the model server of `revision` of `service`.
    pub(super) fn register(
        &self,
        service: &Key,
        revision: &Arc<Revision>,
        server: &Arc<ModelServer>,
    ) {
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        let list = servers.entry(service.clone()).or_default();
        list.retain(|(r, s)| r.strong_count() > 0 && s.strong_count() > 0);
        list.push((Arc::downgrade(revision), Arc::downgrade(server)));
    }

    /// The model server of `revision`, if it is a multi-model one.
    pub(super) fn server_of(
        &self,
        service: &Key,
        revision: &Arc<Revision>,
    ) -> Option<Arc<ModelServer>> {
        let servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        servers
            .get(service)?
            .iter()
            .find(|(r, _)| std::ptr::eq(r.as_ptr(), Arc::as_ptr(revision)))
            .and_then(|(_, s)| s.upgrade())
    }

    /// The live servers of `service` with their revisions.
    fn live(&self, service: &Key) -> Vec<(Arc<Revision>, Arc<ModelServer>)> {
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        let Some(list) = servers.get_mut(service) else {
            return Vec::new();
        };
        list.retain(|(r, s)| r.strong_count() > 0 && s.strong_count() > 0);
        let out = list
            .iter()
            .filter_map(|(r, s)| Some((r.upgrade()?, s.upgrade()?)))
            .collect();
        if list.is_empty() {
            servers.remove(service);
        }
        out
    }

    /// Forgets servers whose revisions are gone.
    fn prune(&self) {
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        servers.retain(|_, list| {
            list.retain(|(r, s)| r.strong_count() > 0 && s.strong_count() > 0);
            !list.is_empty()
        });
    }

    fn sync_lock(&self, service: &Key) -> Arc<tokio::sync::Mutex<()>> {
        self.syncs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(service.clone())
            .or_default()
            .clone()
    }

    /// Takes `records` as the current TrainedModels of `service`: adds or
    /// updates them and forgets the service's models that are not among
    /// them (deleted, or moved to another service).
    fn remember(&self, service: &Key, records: &[TrainedModelRecord]) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let names: BTreeSet<&str> = records.iter().map(|r| r.name.as_str()).collect();
        known.retain(|(ns, name), k| {
            *ns != service.0
                || k.record.inference_service() != service.1
                || names.contains(name.as_str())
        });
        for r in records {
            let key = (r.namespace.clone(), r.name.clone());
            match known.get_mut(&key) {
                Some(k) if k.record.id == r.id => k.record = r.clone(),
                _ => {
                    known.insert(
                        key,
                        Known {
                            record: r.clone(),
                            transitions: transitions_from(&r.status),
                            written: r.status.clone(),
                        },
                    );
                }
            }
        }
    }

    /// The service of the TrainedModel `namespace/name`, if there is one
    /// (gRPC requests that name a model but no service are routed by it).
    pub(super) fn service_of(&self, namespace: &Namespace, name: &str) -> Option<String> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known
            .get(&(namespace.clone(), name.to_owned()))
            .map(|k| k.record.inference_service().to_owned())
    }
}

/// The condition times of a stored status, so that a restart keeps them.
/// KServe's default memory limit for a predictor container that sets none
/// (the resource defaults of its `inferenceservice-config`).
const DEFAULT_MEMORY_LIMIT: &str = "2Gi";

/// The predictor memory limit of the service whose stored spec is `spec`
/// and its spelling, in bytes; `None` when the spec does not parse.
fn memory_limit(spec: &Value) -> Option<(u64, String)> {
    let service = InferenceService::from_json_value(spec.clone()).ok()?;
    let limit = match &service.spec.predictor.implementation {
        Predictor::Model(m) => m.container.resources.limits.get("memory").cloned(),
        Predictor::Custom(_) => None,
    };
    let limit = match limit {
        Some(q) => q,
        None => crate::spec::Quantity::parse(DEFAULT_MEMORY_LIMIT).ok()?,
    };
    Some((limit.value()?, limit.as_str().to_owned()))
}

/// KServe's memory check: a service's TrainedModels are allocated to its
/// predictor in the order they were created, each while the memory they
/// ask for together stays within the predictor's memory limit. Returns
/// the models that do not fit, with why; those are not loaded.
fn memory_misfits<'a>(
    service_spec: &Value,
    records: impl IntoIterator<Item = &'a TrainedModelRecord>,
) -> HashMap<String, String> {
    let Some((limit, spelled)) = memory_limit(service_spec) else {
        return HashMap::new();
    };
    let mut records: Vec<&TrainedModelRecord> = records.into_iter().collect();
    records.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
    let mut used: u128 = 0;
    let mut misfits = HashMap::new();
    for r in records {
        let Ok(m) = parse_stored(&r.spec) else {
            continue;
        };
        let memory = &m.spec.model.memory;
        let asked = u128::from(memory.value().unwrap_or(u64::MAX));
        if used + asked <= u128::from(limit) {
            used += asked;
        } else {
            misfits.insert(
                r.name.clone(),
                format!(
                    "spec.model.memory: {memory} does not fit: the predictor of InferenceService {} has a memory limit of {spelled} and {} of it is taken by the TrainedModels created before this one; raise spec.predictor.model.resources.limits.memory or lower spec.model.memory",
                    r.inference_service(),
                    human_bytes(used)
                ),
            );
        }
    }
    misfits
}

fn human_bytes(n: u128) -> String {
    const UNITS: [(&str, u128); 4] = [
        ("Ti", 1 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if n >= size && n.is_multiple_of(size) {
            return format!("{}{unit}", n / size);
        }
    }
    n.to_string()
}

fn transitions_from(status: &Value) -> HashMap<&'static str, (&'static str, Timestamp)> {
    let mut out = HashMap::new();
    for c in status["conditions"].as_array().into_iter().flatten() {
        let (Some(kind), Some(time)) = (
            c["type"]
                .as_str()
                .and_then(|t| CONDITIONS.iter().find(|k| **k == t)),
            c["lastTransitionTime"]
                .as_str()
                .and_then(Timestamp::parse_rfc3339),
        ) else {
            continue;
        };
        let value = match c["status"].as_str() {
            Some("True") => "True",
            Some("False") => "False",
            _ => "Unknown",
        };
        out.insert(*kind, (value, time));
    }
    out
}

/// Reads a stored TrainedModel back through the spec's own parser.
fn parse_stored(spec: &Value) -> Result<TrainedModel, SpecError> {
    match Resource::from_json_value(spec.clone())? {
        Resource::TrainedModel(m) => Ok(m),
        other => Err(SpecError::new(
            "kind",
            format!("{:?} is not a TrainedModel", other.kind()),
        )),
    }
}

/// The stored spec of `model` in `namespace`: KServe's shape with the
/// namespace filled in (what the CLI writes when no server runs, too).
pub fn stored_trained_model_spec(model: &TrainedModel, namespace: &Namespace) -> Value {
    let mut m = model.clone();
    m.namespace = Some(namespace.clone());
    m.to_kserve_value()
}

/// The event a TrainedModel's new status calls for: its Ready condition
/// became True (Normal `TrainedModelReady`), or False for a reason waiting
/// will not fix (Warning, that reason); `None` when Ready did not change or
/// the model is on its way (loading, its service starting).
fn ready_event(
    before: &Value,
    after: &Value,
    name: &str,
) -> Option<(oxflow_resources::EventType, String, String)> {
    let (status, reason, message) = super::ready_of(after)?;
    let was = super::ready_of(before).map(|(s, r, _)| (s, r));
    if was.as_ref() == Some(&(status.clone(), reason.clone())) {
        return None;
    }
    match status.as_str() {
        "True" => Some((
            oxflow_resources::EventType::Normal,
            "TrainedModelReady".into(),
            format!("TrainedModel {name} is loaded and ready"),
        )),
        "False"
            if !matches!(
                reason.as_str(),
                "" | "ModelLoading" | "InferenceServiceNotReady"
            ) =>
        {
            Some((oxflow_resources::EventType::Warning, reason, message))
        }
        _ => None,
    }
}

/// KServe's `PredictPath`: where a model of a V1 or V2 predictor answers.
fn predict_path(name: &str, protocol: Protocol) -> String {
    match protocol {
        Protocol::V2 | Protocol::GrpcV2 => format!("/v2/models/{name}/infer"),
        Protocol::V1 | Protocol::GrpcV1 => format!("/v1/models/{name}:predict"),
    }
}

/// Whether the service is Ready, by the same rule as its status: a ready
/// revision takes traffic and its transformer and explainer run.
fn service_ready(entry: &Entry) -> bool {
    let layout = entry.layout();
    let split = super::traffic::split(&layout);
    super::traffic::serving(&split, &layout)
        && entry
            .transformer
            .iter()
            .chain(entry.explainer.iter())
            .all(|r| r.phase() == Phase::Loaded)
}

/// One condition as it is computed, before its transition time.
struct Condition {
    kind: &'static str,
    /// "True", "False" or "Unknown".
    status: &'static str,
    reason: Option<&'static str>,
    message: Option<String>,
}

impl Condition {
    fn ok(kind: &'static str) -> Condition {
        Condition {
            kind,
            status: "True",
            reason: None,
            message: None,
        }
    }

    fn not(kind: &'static str, reason: &'static str, message: String) -> Condition {
        Condition {
            kind,
            status: "False",
            reason: Some(reason),
            message: Some(message),
        }
    }

    fn unknown(kind: &'static str, reason: &'static str, message: String) -> Condition {
        Condition {
            status: "Unknown",
            ..Condition::not(kind, reason, message)
        }
    }
}

impl ServingController {
    /// The stored TrainedModels (of every namespace).
    async fn stored_trained_models(&self) -> Result<Vec<TrainedModelRecord>, ResourceError> {
        self.stored_all(&TRAINED_MODEL).await
    }

    /// The stored TrainedModel; `NotFound` when there is none.
    pub async fn get_trained_model(
        &self,
        namespace: &Namespace,
        name: &str,
    ) -> Result<TrainedModelRecord, ServingError> {
        self.stored(&TRAINED_MODEL, namespace, name).await
    }

    /// Stores `model` in `namespace` (the file's own namespace wins when it
    /// names one) and loads it into its service's servers.
    pub async fn apply_trained_model(
        &self,
        namespace: &Namespace,
        model: &TrainedModel,
    ) -> Result<(TrainedModelRecord, Applied), ServingError> {
        let ns = model.namespace.clone().unwrap_or_else(|| namespace.clone());
        let (_, applied) = crate::kinds::apply(
            &self.inner.resources,
            &TRAINED_MODEL,
            &ns,
            stored_trained_model_spec(model, &ns),
        )
        .await?;
        self.resync_trained().await;
        Ok((
            self.get_trained_model(&ns, model.name.as_str()).await?,
            applied,
        ))
    }

    /// Stores a new TrainedModel (a conflict if the name is taken) and
    /// loads it.
    pub async fn create_trained_model(
        &self,
        namespace: &Namespace,
        model: &TrainedModel,
    ) -> Result<TrainedModelRecord, ServingError> {
        self.inner
            .resources
            .create(
                &TRAINED_MODEL,
                Some(namespace.as_str()),
                stored_trained_model_spec(model, namespace),
                &WriteOptions::default(),
            )
            .await?;
        self.resync_trained().await;
        self.get_trained_model(namespace, model.name.as_str()).await
    }

    /// Deletes the TrainedModel and unloads it from its service; false when
    /// there was none.
    pub async fn delete_trained_model(
        &self,
        namespace: &Namespace,
        name: &str,
    ) -> Result<bool, ServingError> {
        match self
            .inner
            .resources
            .delete(
                &TRAINED_MODEL,
                Some(namespace.as_str()),
                name,
                &Default::default(),
            )
            .await
        {
            Ok(_) => {}
            Err(ResourceError::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        self.resync_trained().await;
        Ok(true)
    }

    /// The service that answers for a model called `model` in `namespace`:
    /// the service of that name, else the service of the TrainedModel of
    /// that name, else `model` itself (which then finds no service).
    pub(super) fn service_serving(&self, namespace: &str, model: String) -> String {
        let Ok(ns) = Namespace::new(namespace.to_owned()) else {
            return model;
        };
        let is_service = self
            .inner
            .services
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&(ns.clone(), model.clone()));
        if is_service {
            return model;
        }
        self.inner.trained.service_of(&ns, &model).unwrap_or(model)
    }

    /// Loads a new multi-model revision: its models are assigned now (so
    /// that requests for them wait instead of finding no model), and it
    /// counts as loaded (and may take traffic) once each has loaded or
    /// failed in it.
    pub(super) async fn load_multi_model(
        &self,
        service: Key,
        revision: Arc<Revision>,
        server: Arc<ModelServer>,
    ) {
        let receivers = self
            .sync_trained(&service)
            .await
            .into_iter()
            .find(|(s, _)| Arc::ptr_eq(s, &server))
            .map(|(_, rx)| rx)
            .unwrap_or_default();
        let this = self.clone();
        tokio::spawn(async move {
            for mut rx in receivers {
                // An error means the assignment was replaced: nothing to wait for.
                let _ = rx.wait_for(|o| *o != Outcome::Loading).await;
            }
            *revision.phase.write().unwrap_or_else(|e| e.into_inner()) = Phase::Loaded;
            this.settle(&service).await;
        });
    }

    /// Re-reads the TrainedModels of `service` from the store and brings
    /// every server of it in line; their statuses are written once the
    /// loads it started end. Returns each server's receivers.
    async fn sync_trained(
        &self,
        service: &Key,
    ) -> Vec<(Arc<ModelServer>, Vec<watch::Receiver<Outcome>>)> {
        let lock = self.inner.trained.sync_lock(service);
        let _serial = lock.lock().await;
        let records = match self.stored_trained_models().await {
            Ok(r) => r
                .into_iter()
                .filter(|r| r.namespace == service.0 && r.inference_service() == service.1)
                .collect::<Vec<_>>(),
            Err(e) => {
                tracing::warn!(service = %format!("{}/{}", service.0, service.1), error = %e, "Could not read the trained models of a service.");
                return Vec::new();
            }
        };
        self.inner.trained.remember(service, &records);
        let service_spec = self
            .inner
            .services
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(service)
            .map(|e| e.spec.clone());
        let misfits = service_spec
            .map(|spec| memory_misfits(&spec, &records))
            .unwrap_or_default();
        let wanted: Vec<Wanted> = records
            .iter()
            .filter(|r| !misfits.contains_key(&r.name))
            .filter_map(|r| {
                let m = parse_stored(&r.spec).ok()?;
                Some(Wanted {
                    name: r.name.clone(),
                    id: r.id.clone(),
                    generation: r.generation,
                    uri: m.spec.model.storage_uri.as_str().to_owned(),
                    framework: m.spec.model.framework,
                })
            })
            .collect();
        let synced: Vec<_> = self
            .inner
            .trained
            .live(service)
            .into_iter()
            .map(|(_, server)| {
                let rx = server.sync(&wanted);
                (server, rx)
            })
            .collect();
        let pending: Vec<watch::Receiver<Outcome>> = synced
            .iter()
            .flat_map(|(_, rx)| rx.iter())
            .filter(|rx| *rx.borrow() == Outcome::Loading)
            .cloned()
            .collect();
        if !pending.is_empty() {
            let this = self.clone();
            let key = service.clone();
            tokio::spawn(async move {
                for mut rx in pending {
                    let _ = rx.wait_for(|o| *o != Outcome::Loading).await;
                }
                this.settle_trained(Some(&key)).await;
            });
        }
        synced
    }

    /// Picks up TrainedModels that other processes wrote or deleted, and
    /// refreshes every TrainedModel's status. Called by `resync`.
    pub(super) async fn resync_trained(&self) {
        let records = match self.stored_trained_models().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "Could not read the stored trained models.");
                return;
            }
        };
        let mut stale: BTreeSet<Key> = BTreeSet::new();
        {
            let known = self
                .inner
                .trained
                .known
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let service_of =
                |r: &TrainedModelRecord| (r.namespace.clone(), r.inference_service().to_owned());
            let mut live = BTreeSet::new();
            for r in &records {
                let key = (r.namespace.clone(), r.name.clone());
                match known.get(&key) {
                    Some(k)
                        if k.record.id == r.id
                            && k.record.generation == r.generation
                            && k.record.inference_service() == r.inference_service() => {}
                    Some(k) => {
                        stale.insert(service_of(&k.record));
                        stale.insert(service_of(r));
                    }
                    None => {
                        stale.insert(service_of(r));
                    }
                }
                live.insert(key);
            }
            for (key, k) in known.iter() {
                if !live.contains(key) {
                    stale.insert(service_of(&k.record));
                }
            }
        }
        for service in &stale {
            self.sync_trained(service).await;
        }
        self.inner.trained.prune();
        self.settle_trained(None).await;
        if !stale.is_empty() {
            // What is served changed (a model loaded or unloaded), whether
            // or not a status did.
            self.inner.changes.send_modify(|n| *n += 1);
        }
    }

    /// Writes the changed statuses of the TrainedModels of `service` (of
    /// every service: `None`), in turn with the services' own statuses.
    pub(super) async fn settle_trained(&self, service: Option<&Key>) {
        let _serial = self.inner.status_writes.lock().await;
        self.write_trained_statuses(service).await;
    }

    /// Computes TrainedModel statuses and stores those that changed; called
    /// with `status_writes` held.
    pub(super) async fn write_trained_statuses(&self, service: Option<&Key>) {
        type Event = Option<(oxflow_resources::EventType, String, String)>;
        let updates: Vec<(Key, String, i64, Value, Event)> = {
            let services = self
                .inner
                .services
                .read()
                .unwrap_or_else(|e| e.into_inner());
            let mut known = self
                .inner
                .trained
                .known
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let mut updates = Vec::new();
            let mut misfits: HashMap<Key, HashMap<String, String>> = HashMap::new();
            for k in known.values() {
                let service_key = (
                    k.record.namespace.clone(),
                    k.record.inference_service().to_owned(),
                );
                if misfits.contains_key(&service_key) {
                    continue;
                }
                let found = services
                    .get(&service_key)
                    .map(|e| {
                        memory_misfits(
                            &e.spec,
                            known
                                .values()
                                .filter(|o| {
                                    o.record.namespace == service_key.0
                                        && o.record.inference_service() == service_key.1
                                })
                                .map(|o| &o.record),
                        )
                    })
                    .unwrap_or_default();
                misfits.insert(service_key, found);
            }
            for k in known.values_mut() {
                let service_key = (
                    k.record.namespace.clone(),
                    k.record.inference_service().to_owned(),
                );
                if service.is_some_and(|s| *s != service_key) {
                    continue;
                }
                let misfit = misfits
                    .get(&service_key)
                    .and_then(|m| m.get(&k.record.name))
                    .cloned();
                let status = self.trained_status(services.get(&service_key), k, misfit);
                if status != k.written {
                    let event = ready_event(&k.written, &status, &k.record.name);
                    k.written = status.clone();
                    updates.push((
                        (k.record.namespace.clone(), k.record.name.clone()),
                        k.record.id.clone(),
                        k.record.generation,
                        status,
                        event,
                    ));
                }
            }
            updates
        };
        if updates.is_empty() {
            return;
        }
        for ((ns, name), id, generation, status, event) in updates {
            // Recorded before the status that shows it (as for services).
            if let Some((kind, reason, message)) = event {
                let object = json!({
                    "apiVersion": TRAINED_MODEL.api_version(),
                    "kind": TRAINED_MODEL.kind,
                    "metadata": {"name": name, "namespace": ns.as_str(), "uid": id},
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
                    &TRAINED_MODEL,
                    Some(ns.as_str()),
                    &name,
                    (&id, generation),
                    &status,
                    None,
                )
                .await
            {
                tracing::warn!(trained_model = %id, error = %e, "Could not record a trained model's status.");
            }
        }
        self.inner.changes.send_modify(|n| *n += 1);
    }

    /// KServe's status of one TrainedModel, given its service's entry.
    fn trained_status(
        &self,
        entry: Option<&Entry>,
        k: &mut Known,
        misfit: Option<String>,
    ) -> Value {
        let record = &k.record;
        // Ready as stored for this very spec: a restarted server loading
        // the service and its models again (requests wait for the load)
        // keeps it Ready rather than flipping it False and back, as models
        // whose pods outlive the KServe controller do; a failure still
        // turns it False.
        let reloading = record.observed_generation == record.generation
            && matches!(k.transitions.get("Ready"), Some(("True", _)));
        let name = record.name.as_str();
        let isvc = record.inference_service();
        let ns = &record.namespace;
        let model = parse_stored(&record.spec);
        let service = entry.map(|e| InferenceService::from_json_value(e.spec.clone()));
        let mut url = None;
        let mut conditions: Vec<Condition> = Vec::new();
        match (entry, &service) {
            (None, _) | (_, None) => {
                let why = format!(
                    "no InferenceService {isvc} in namespace {ns}; create one whose predictor has a model format and no storageUri (e.g. predictor: {{sklearn: {{}}}}) to serve this TrainedModel"
                );
                conditions.push(Condition::not(
                    "InferenceServiceReady",
                    "InferenceServiceNotFound",
                    why.clone(),
                ));
                conditions.push(Condition::not(
                    "IsMMSPredictor",
                    "InferenceServiceNotFound",
                    why.clone(),
                ));
                conditions.push(Condition::unknown(
                    "FrameworkSupported",
                    "InferenceServiceNotFound",
                    why,
                ));
            }
            (Some(_), Some(Err(e))) => {
                let why = format!("InferenceService {isvc} is not valid: {e}");
                conditions.push(Condition::not(
                    "InferenceServiceReady",
                    "InferenceServiceNotReady",
                    why.clone(),
                ));
                conditions.push(Condition::unknown(
                    "IsMMSPredictor",
                    "InferenceServiceNotReady",
                    why.clone(),
                ));
                conditions.push(Condition::unknown(
                    "FrameworkSupported",
                    "InferenceServiceNotReady",
                    why,
                ));
            }
            (Some(e), Some(Ok(s))) => {
                let predictor = &s.spec.predictor;
                let base = self.url(ns, isvc);
                url = Some(format!(
                    "{base}{}",
                    predict_path(name, predictor.protocol())
                ));
                let service_loading = e.failure.is_none()
                    && !matches!(e.latest.as_ref().map(|r| r.phase()), Some(Phase::Failed(_)));
                conditions.push(if service_ready(e) || (reloading && service_loading) {
                    Condition::ok("InferenceServiceReady")
                } else {
                    // Why the service cannot serve, when it cannot at all.
                    let why = e
                        .failure
                        .as_ref()
                        .or(match e.latest.as_ref().map(|r| r.phase()) {
                            Some(Phase::Failed(f)) => Some(f),
                            _ => None,
                        }.as_ref())
                        .map(|f| format!(": {}", f.message))
                        .unwrap_or_default();
                    Condition::not(
                        "InferenceServiceReady",
                        "InferenceServiceNotReady",
                        format!(
                            "InferenceService {isvc} needs to be ready before TrainedModel {name} can be ready{why}"
                        ),
                    )
                });
                conditions.push(match &predictor.implementation {
                    _ if is_multi_model(predictor) => Condition::ok("IsMMSPredictor"),
                    Predictor::Custom(_) => Condition::not(
                        "IsMMSPredictor",
                        "IsNotMMSPredictor",
                        format!(
                            "InferenceService {isvc}'s predictor is a custom container, which cannot load TrainedModels; give it a model format and no storageUri (e.g. predictor: {{sklearn: {{}}}})"
                        ),
                    ),
                    Predictor::Model(_) => Condition::not(
                        "IsMMSPredictor",
                        "IsNotMMSPredictor",
                        format!(
                            "InferenceService {isvc}'s predictor serves a model of its own (spec.predictor.model.storageUri); remove storageUri to make it a multi-model server"
                        ),
                    ),
                });
                conditions.push(match (&predictor.implementation, &model) {
                    (Predictor::Model(m), Ok(tm)) if m.format.name != tm.spec.model.framework => {
                        Condition::not(
                            "FrameworkSupported",
                            "FrameworkNotSupported",
                            format!(
                                "spec.model.framework: InferenceService {isvc} serves {} models, not {}; name a service whose predictor has modelFormat {} or change the framework",
                                m.format.name, tm.spec.model.framework, tm.spec.model.framework
                            ),
                        )
                    }
                    (Predictor::Model(_), _) => Condition::ok("FrameworkSupported"),
                    (Predictor::Custom(_), _) => Condition::unknown(
                        "FrameworkSupported",
                        "IsNotMMSPredictor",
                        format!("InferenceService {isvc}'s predictor has no model format"),
                    ),
                });
            }
        }
        conditions.push(match misfit {
            None => Condition::ok("MemoryResourceAvailable"),
            Some(why) => {
                Condition::not("MemoryResourceAvailable", "MemoryResourceNotAvailable", why)
            }
        });

        // Ready: every other condition holds and the model is loaded where
        // the service serves.
        let blocking = conditions
            .iter()
            .find(|c| c.status != "True")
            .map(|c| (c.reason, c.message.clone()));
        let ready = match (blocking, &model) {
            (Some((reason, message)), _) => Condition {
                kind: "Ready",
                status: "False",
                reason,
                message,
            },
            (None, Err(e)) => Condition::not("Ready", "InvalidSpec", e.to_string()),
            (None, Ok(_)) => match self.trained_outcome(entry, record) {
                Outcome::Loaded => Condition::ok("Ready"),
                // Loading again what was Ready (see `reloading`).
                Outcome::Loading if reloading => Condition::ok("Ready"),
                Outcome::Loading => Condition::not(
                    "Ready",
                    "ModelLoading",
                    format!("TrainedModel {name} is loading"),
                ),
                Outcome::Failed(why) => Condition::not(
                    "Ready",
                    "ModelLoadFailed",
                    format!("TrainedModel {name} failed to load: {why}"),
                ),
            },
        };
        conditions.push(ready);
        conditions.sort_by_key(|c| c.kind);

        let now = Timestamp::now();
        let conditions: Vec<Value> = conditions
            .into_iter()
            .map(|c| {
                let since = match k.transitions.get(c.kind) {
                    Some((was, at)) if *was == c.status => *at,
                    _ => {
                        k.transitions.insert(c.kind, (c.status, now));
                        now
                    }
                };
                let mut v = json!({
                    "type": c.kind,
                    "status": c.status,
                    "lastTransitionTime": since.to_rfc3339(),
                });
                if let Some(r) = c.reason {
                    v["reason"] = json!(r);
                }
                if let Some(m) = c.message {
                    v["message"] = json!(m);
                }
                v
            })
            .collect();
        let mut status = json!({
            "observedGeneration": record.generation,
            "conditions": conditions,
        });
        if let Some(u) = url {
            status["url"] = json!(u);
            status["address"] = json!({ "url": u });
        }
        status
    }

    /// Where this version of the model is in the servers of its service
    /// that take traffic (all of them while none does yet).
    fn trained_outcome(&self, entry: Option<&Entry>, record: &TrainedModelRecord) -> Outcome {
        let Some(entry) = entry else {
            return Outcome::Loading;
        };
        let service = (
            record.namespace.clone(),
            record.inference_service().to_owned(),
        );
        let in_use: Vec<(Arc<Revision>, Arc<ModelServer>)> = self
            .inner
            .trained
            .live(&service)
            .into_iter()
            .filter(|(r, _)| entry.revisions().any(|e| Arc::ptr_eq(e, r)))
            .collect();
        let serving: Vec<&Arc<ModelServer>> = in_use
            .iter()
            .filter(|(r, _)| r.phase() == Phase::Loaded)
            .map(|(_, s)| s)
            .collect();
        let considered: Vec<&Arc<ModelServer>> = if serving.is_empty() {
            in_use.iter().map(|(_, s)| s).collect()
        } else {
            serving
        };
        if considered.is_empty() {
            return Outcome::Loading;
        }
        let mut all_loaded = true;
        for server in considered {
            match server.outcome(&record.name, &record.id, record.generation) {
                Some(Outcome::Failed(why)) => return Outcome::Failed(why),
                Some(Outcome::Loaded) => {}
                Some(Outcome::Loading) | None => all_loaded = false,
            }
        }
        if all_loaded {
            Outcome::Loaded
        } else {
            Outcome::Loading
        }
    }
}
