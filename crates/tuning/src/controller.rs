//! The experiment controller: Katib's experiment, suggestion and trial
//! controllers and its metrics collectors, over Experiment, Trial and
//! Suggestion objects of the resource model.
//!
//! The controller framework reconciles Experiments: one that has not ended
//! gets a loop in the process that takes its lease (`experiment/<uid>`);
//! every write of that loop carries the lease's fencing token, so a process
//! that lost the lease cannot write. Each pass of the loop re-reads the
//! experiment and its trials, decides whether the experiment has ended
//! (goal → too many failures → max trials, Katib's order), asks the
//! algorithm for as many new trials as `parallelTrialCount` allows, stores
//! them as Trial objects *before* starting them, and waits for a trial to
//! end, a nudge (a change to the experiment) or a resync tick (how a write
//! by another process is noticed). Because suggestions are stored before
//! they run and algorithms are pure functions of the stored history, a
//! controller that dies loses nothing: the next one re-runs the
//! interrupted trials with the same parameters and continues exactly where
//! the first stopped.
//!
//! Stopping and resuming are stored intent: a `Stopped` or `Restarting`
//! condition written to the experiment's status (by any process), which
//! the loop (or the next reconcile) acts on.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oxflow_core::selector::{FieldSelector, LabelSelector};
use oxflow_core::{ExperimentPhase, Mount, Namespace, Timestamp, TrialPhase, Workload};
use oxflow_resources::builtin::POD;
use oxflow_resources::{
    Cached, DeleteOptions, EventType, Recorder, ResourceError, Resources, WriteOptions,
};
use oxflow_runtime::Runtime;
use oxflow_store::{Fence, ObservationLogRecord, ResourceKey, Store, StoreError};
use oxflow_suggest::{Algorithm, Budget, Outcome, SearchSpace, TrialRecord};
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::kinds::{
    EXPERIMENT, EXPERIMENT_LABEL, SEQ_ANNOTATION, SUGGESTION, TRIAL, TRIAL_LABEL,
    WORKING_DIR_ANNOTATION,
};
use crate::metrics::{self, MetricLog};
use crate::spec::{
    CollectorKind, Experiment, FileFormat, MetricsCollector, ObjectiveType, ParameterAssignment,
    ResumePolicy, SpecError,
};
use crate::status::{experiment_status, push_condition};
use crate::stored::{
    StoredExperiment, StoredTrial, new_trial_object, owned_by, owner_reference, started_status,
};

/// How often a running experiment re-reads its object without being
/// nudged (how quickly a `stop` from another process takes effect; one
/// from this process, or any change through its API, nudges at once).
const RESYNC: Duration = Duration::from_secs(1);
/// Experiment loops started at once, and per second after that: a burst
/// of created experiments is accepted at the API's pace and started at
/// this one (a Kubernetes controller's client is bounded the same way,
/// controller-runtime's by 20 requests per second with bursts of 30).
const START_BURST: u32 = 30;
const STARTS_PER_SECOND: u32 = 20;
/// While experiments keep arriving (one less than this apart), starts wait
/// for the burst to end, at most [`MAX_START_DEFERRAL`]: the API takes a
/// burst of creates first, as the API server's priority and fairness puts
/// a client's requests before controllers' background work.
const BURST_QUIET: Duration = Duration::from_millis(200);
const MAX_START_DEFERRAL: Duration = Duration::from_secs(2);
/// How often, at most, a running experiment's Suggestion is written (and
/// once more when its loop ends).
const SUGGESTION_EVERY: Duration = Duration::from_secs(1);
/// How often a running trial's output is read for metrics and early stopping.
const TAIL: Duration = Duration::from_millis(100);
/// How long an experiment's lease lasts unrenewed: a controller that died
/// is replaced after this long (renewed every third of it).
const LEASE_TTL: Duration = Duration::from_secs(30);

/// What can go wrong driving experiments.
#[derive(Debug, thiserror::Error)]
pub enum TuningError {
    /// The Experiment YAML is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The resource model refused or failed (not found, a conflict, a lost lease).
    #[error(transparent)]
    Resource(#[from] ResourceError),
    /// The request does not fit the experiment's state (resume a running one, …).
    #[error("{0}")]
    Invalid(String),
    /// A stored experiment can no longer be read (written by another version).
    #[error("experiment {name}: {message}")]
    Corrupt {
        /// The experiment.
        name: String,
        /// What is wrong.
        message: String,
    },
}

type Result<T> = std::result::Result<T, TuningError>;

/// Mints the credential a trial sends with its metrics push: given the
/// push's path ([`report_path`]), a token good for `POST` to that path only.
pub type ReportTokens = std::sync::Arc<dyn Fn(&str) -> String + Send + Sync>;

/// The path a trial pushes its metrics to (`oxflow_katib.report_metrics`
/// builds the same one).
pub fn report_path(namespace: &str, trial: &str) -> String {
    format!("/apis/kubeflow.org/v1beta1/namespaces/{namespace}/trials/{trial}/metrics")
}

/// Where the controller keeps trial output.
#[derive(Clone)]
pub struct TuningConfig {
    /// Trial logs: `<logs_dir>/<namespace>/<experiment>/<trial>.log`.
    pub logs_dir: PathBuf,
    /// Per-trial scratch directories (metrics files, TensorFlow events):
    /// `<work_dir>/<namespace>/<experiment>/<trial>/`.
    pub work_dir: PathBuf,
    /// Base URL trials push metrics to (`kind: Push`), given to them as
    /// `OXFLOW_METRICS_URL`; `None` when nothing listens.
    pub report_url: Option<String>,
    /// Tokens for the push, given to each trial as `OXFLOW_METRICS_TOKEN`
    /// (scoped to its own push, never the owner's token); `None` when the
    /// endpoint asks for none.
    pub report_tokens: Option<ReportTokens>,
    /// A directory with the `oxflow_katib` Python helper, put first on the
    /// trials' `PYTHONPATH`.
    pub python_path: Option<PathBuf>,
    /// This process's identity as a lease holder (`oxflow_runtime::owner::owner_id`).
    pub owner: String,
}

/// A change worth showing live.
#[derive(Debug, Clone, PartialEq)]
pub enum TuningEvent {
    /// A trial changed phase.
    Trial {
        /// The experiment's uid.
        experiment_id: String,
        /// The trial's name.
        trial: String,
        /// Its new phase.
        phase: TrialPhase,
        /// Its objective value, once known.
        objective: Option<f64>,
        /// Its parameter assignments (`[{name, value}]`), so that a
        /// listener needs no read to show them.
        assignments: Value,
    },
    /// The experiment changed phase.
    Experiment {
        /// The experiment's uid.
        experiment_id: String,
        /// Its new phase.
        phase: ExperimentPhase,
    },
}

/// Drives Katib experiments.
#[derive(Clone)]
pub struct TuningController {
    inner: Arc<Inner>,
}

/// An experiment whose loop runs in this process.
struct Active {
    namespace: Namespace,
    name: String,
    /// Ends the loop (a stop, the experiment's deletion, shutdown).
    cancel: CancellationToken,
    /// Makes the loop look again now (its experiment changed).
    nudge: Arc<Notify>,
    /// Told when the loop has let go of the experiment.
    done: tokio::sync::watch::Receiver<bool>,
}

struct Inner {
    resources: Resources,
    runtime: Arc<dyn Runtime>,
    config: TuningConfig,
    events: broadcast::Sender<TuningEvent>,
    /// Experiments (by uid) whose loop runs in this process.
    active: Mutex<HashMap<String, Active>>,
    shutdown: CancellationToken,
    /// The framework controller that runs the reconciles, once started.
    framework: std::sync::OnceLock<oxflow_controller::Controller>,
    /// Records the experiments' events (started, ended, failed).
    recorder: Recorder,
    /// Bounds how fast the framework starts experiment loops.
    starts: oxflow_controller::TokenBucket,
    /// Experiments (by uid) whose loop waits for its start.
    starting: Mutex<std::collections::HashSet<String>>,
    /// The resourceVersion each experiment's loop last wrote (by uid): the
    /// change event of its own write needs no second look.
    own_writes: Mutex<HashMap<String, String>>,
    /// Until when the current burst of new experiments defers starts.
    burst_until: Mutex<std::time::Instant>,
    /// The pods of trials running in this process, by (namespace, name):
    /// deleting one ends its trial's process.
    pods: Mutex<HashMap<(String, String), CancellationToken>>,
}

/// What the loop needs from the spec, parsed once per (re)start.
struct Ctx {
    record: StoredExperiment,
    exp: Experiment,
    space: SearchSpace,
    algorithm: Box<dyn Algorithm>,
    metric_names: Vec<String>,
    /// The experiment's lease, carried by every write of the loop.
    fence: Fence,
    /// Writes the loop started in the background (trials' pods), awaited
    /// before the loop lets the experiment go.
    background: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// When the Suggestion was last written (at most once a second while
    /// the loop runs, and once more when it ends).
    suggested_at: Mutex<Option<std::time::Instant>>,
}

/// The framework's view of the controller: a changed Experiment is
/// reconciled (its loop started, nudged or stopped).
struct Reconcile(TuningController);

impl oxflow_controller::Reconciler for Reconcile {
    fn reconcile<'a>(
        &'a self,
        key: &'a ResourceKey,
        _ctx: &'a oxflow_controller::Context,
    ) -> futures::future::BoxFuture<
        'a,
        std::result::Result<oxflow_controller::Action, oxflow_controller::ReconcileError>,
    > {
        Box::pin(async move {
            if key.kind == POD.kind && key.group == POD.group {
                self.0.reconcile_pod(&key.namespace, &key.name).await?;
                return Ok(oxflow_controller::Action::Done);
            }
            let ns = Namespace::new(key.namespace.clone())
                .map_err(|e| TuningError::Invalid(format!("namespace: {e}")))?;
            Ok(self.0.reconcile_key(&ns, &key.name).await?)
        })
    }

    fn keys(
        &self,
    ) -> futures::future::BoxFuture<
        '_,
        std::result::Result<Vec<ResourceKey>, oxflow_controller::ReconcileError>,
    > {
        Box::pin(async move {
            let (objects, _) = self
                .0
                .inner
                .resources
                .list(
                    &EXPERIMENT,
                    None,
                    &LabelSelector::default(),
                    &FieldSelector::default(),
                )
                .await?;
            let mut keys: Vec<ResourceKey> = objects
                .iter()
                .filter_map(|o| {
                    Some(experiment_key(
                        o["metadata"]["namespace"].as_str()?,
                        o["metadata"]["name"].as_str()?,
                    ))
                })
                .collect();
            // Loops of experiments deleted while nothing watched end too.
            for (ns, name) in self.0.active_names() {
                let key = experiment_key(ns.as_str(), &name);
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            Ok(keys)
        })
    }
}

fn experiment_key(namespace: &str, name: &str) -> ResourceKey {
    ResourceKey {
        group: EXPERIMENT.group.to_owned(),
        kind: EXPERIMENT.kind.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    }
}

/// Marks an ended experiment for restarting (Katib's `Restarting`).
fn mark_restarting(e: &mut StoredExperiment) {
    let now = Timestamp::now();
    e.phase = ExperimentPhase::Restarting;
    e.finished_at = None;
    push_condition(
        &mut e.conditions,
        ExperimentPhase::Restarting,
        "ExperimentRestarting",
        "Experiment is restarting",
        now,
    );
}

/// The lease an experiment's loop holds.
fn lease_name(uid: &str) -> String {
    format!("experiment/{uid}")
}

/// A Kubernetes object name Oxflow could have written (lowercase letters,
/// digits, `-` and `.`, no `..`): safe as one path segment.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// A trial's pod: where its output is, from the pod's namespace and its
/// Katib labels (never from a path on the pod), so a pod shows only the
/// output of a trial of its own namespace.
impl oxflow_resources::PodLogs for TuningController {
    fn log_path(&self, pod: &Value) -> Option<PathBuf> {
        let meta = pod.get("metadata")?;
        let ns = meta.get("namespace")?.as_str()?;
        let labels = meta.get("labels")?;
        let experiment = labels.get(EXPERIMENT_LABEL)?.as_str()?;
        let trial = labels.get(TRIAL_LABEL)?.as_str()?;
        if ![ns, experiment, trial].iter().all(|n| plain_name(n)) {
            return None;
        }
        Some(
            self.inner
                .config
                .logs_dir
                .join(ns)
                .join(experiment)
                .join(format!("{trial}.log")),
        )
    }
}

/// A trial's pod status for its phase: the primary container's state
/// (running, or terminated with an exit code), its restarts the trial's
/// earlier attempts.
fn pod_status(trial: &StoredTrial, primary: &str, spec: &Value) -> Value {
    use oxflow_resources::pods::{ContainerState, PodState, container_image};
    let state = match trial.phase {
        TrialPhase::Created => ContainerState::Waiting,
        TrialPhase::Running => ContainerState::Running,
        ended => {
            let (exit_code, reason) = match ended {
                TrialPhase::Succeeded | TrialPhase::MetricsUnavailable => (0, "Completed"),
                TrialPhase::Failed => (1, "Error"),
                _ => (137, "Error"),
            };
            ContainerState::Terminated {
                exit_code,
                finished: trial.finished_at.unwrap_or_else(Timestamp::now),
                reason: reason.to_owned(),
            }
        }
    };
    oxflow_resources::pods::pod_status(&PodState {
        container: primary,
        image: container_image(spec, primary),
        started: trial.started_at.unwrap_or_else(Timestamp::now),
        restarts: trial.attempt - 1,
        state,
    })
}

/// Runs `f` when dropped.
fn scopeguard_remove(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

/// The name of a trial's pod: `<trial>-<5 characters>` from its uid, as a
/// Job names its pod.
fn pod_name(trial: &StoredTrial) -> String {
    use sha2::{Digest, Sha256};
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = Sha256::digest(trial.id.as_bytes())
        .iter()
        .take(5)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    format!("{}-{suffix}", trial.name)
}

/// The trials of `experiment` (labelled with its name and owned by it), in
/// creation order, as the object cache holds them (not copied: a loop that
/// reads them at every trial's end stays linear in the number of trials).
async fn cached_trials(
    resources: &Resources,
    experiment: &StoredExperiment,
) -> std::result::Result<Vec<Arc<Cached>>, ResourceError> {
    let labels =
        LabelSelector::parse(&format!("{EXPERIMENT_LABEL}={}", experiment.name)).map_err(|e| {
            ResourceError::BadRequest {
                message: format!("experiment name {:?}: {e}", experiment.name),
                causes: vec![],
            }
        })?;
    let (mut objects, _) = resources
        .list_cached(
            &TRIAL,
            Some(experiment.namespace.as_str()),
            &labels,
            &FieldSelector::default(),
        )
        .await?;
    objects.retain(|c| owned_by(&c.object, &experiment.id));
    // The sequence annotation read once per trial, not per comparison.
    objects.sort_by_cached_key(|c| {
        let meta = &c.object["metadata"];
        let seq = meta["annotations"][SEQ_ANNOTATION]
            .as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(i64::MAX);
        (seq, meta["name"].as_str().unwrap_or_default().to_owned())
    });
    Ok(objects)
}

/// The trials of `experiment` (labelled with its name and owned by it), in
/// creation order.
pub async fn trial_objects(
    resources: &Resources,
    experiment: &StoredExperiment,
) -> std::result::Result<Vec<Value>, ResourceError> {
    Ok(cached_trials(resources, experiment)
        .await?
        .iter()
        .map(|c| c.object.clone())
        .collect())
}

/// The stored experiment `name` in `namespace`.
pub async fn get_experiment(
    resources: &Resources,
    namespace: &Namespace,
    name: &str,
) -> Result<StoredExperiment> {
    let object = resources
        .get(&EXPERIMENT, Some(namespace.as_str()), name)
        .await?;
    StoredExperiment::from_object(&object).ok_or_else(|| TuningError::Corrupt {
        name: name.to_owned(),
        message: "the stored object has no namespace or uid".into(),
    })
}

/// The trials of `experiment`, in creation order.
pub async fn get_trials(
    resources: &Resources,
    experiment: &StoredExperiment,
) -> Result<Vec<StoredTrial>> {
    Ok(cached_trials(resources, experiment)
        .await?
        .iter()
        .filter_map(|c| StoredTrial::from_object(&c.object))
        .collect())
}

/// The Trial `name` in `namespace`, with the experiment that owns it.
pub async fn find_trial(
    resources: &Resources,
    namespace: &Namespace,
    name: &str,
) -> Result<(StoredExperiment, StoredTrial, Value)> {
    let object = resources
        .get(&TRIAL, Some(namespace.as_str()), name)
        .await?;
    let trial = StoredTrial::from_object(&object).ok_or_else(|| TuningError::Corrupt {
        name: name.to_owned(),
        message: "the stored trial has no uid".into(),
    })?;
    let experiment = object
        .pointer("/metadata/labels")
        .and_then(|l| l.get(EXPERIMENT_LABEL))
        .and_then(Value::as_str)
        .ok_or_else(|| TuningError::Invalid(format!("trial {name} belongs to no experiment")))?;
    let e = get_experiment(resources, namespace, experiment).await?;
    if !owned_by(&object, &e.id) {
        return Err(TuningError::Invalid(format!(
            "trial {name} is not a trial of experiment {experiment}"
        )));
    }
    Ok((e, trial, object))
}

impl TuningController {
    /// A controller over the tuning kinds of `resources`, running trials
    /// on `runtime`; nothing runs until [`Self::start`] or [`Self::run`].
    pub fn new(resources: Resources, runtime: Arc<dyn Runtime>, config: TuningConfig) -> Self {
        let (events, _) = broadcast::channel(4096);
        Self {
            inner: Arc::new(Inner {
                recorder: Recorder::new(resources.clone(), "experiment-controller"),
                resources,
                runtime,
                config,
                events,
                active: Mutex::new(HashMap::new()),
                shutdown: CancellationToken::new(),
                framework: std::sync::OnceLock::new(),
                starts: oxflow_controller::TokenBucket::new(START_BURST, STARTS_PER_SECOND),
                pods: Mutex::new(HashMap::new()),
                starting: Mutex::new(std::collections::HashSet::new()),
                own_writes: Mutex::new(HashMap::new()),
                burst_until: Mutex::new(std::time::Instant::now()),
            }),
        }
    }

    /// The resource model it reads and writes.
    pub fn resources(&self) -> &Resources {
        &self.inner.resources
    }

    /// The store underneath (trials' metric reports).
    pub fn store(&self) -> &Store {
        self.inner.resources.store()
    }

    /// Live trial and experiment changes.
    pub fn subscribe(&self) -> broadcast::Receiver<TuningEvent> {
        self.inner.events.subscribe()
    }

    fn emit(&self, e: TuningEvent) {
        let _ = self.inner.events.send(e);
    }

    fn lock_active(&self) -> std::sync::MutexGuard<'_, HashMap<String, Active>> {
        self.inner.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn active_names(&self) -> Vec<(Namespace, String)> {
        self.lock_active()
            .values()
            .map(|a| (a.namespace.clone(), a.name.clone()))
            .collect()
    }

    /// The stored experiment `name` in `namespace`.
    pub async fn experiment(&self, namespace: &Namespace, name: &str) -> Result<StoredExperiment> {
        get_experiment(&self.inner.resources, namespace, name).await
    }

    /// Where trial `trial` of `e` writes its output.
    pub fn log_path(&self, e: &StoredExperiment, trial: &str) -> PathBuf {
        self.inner
            .config
            .logs_dir
            .join(e.namespace.as_str())
            .join(&e.name)
            .join(format!("{trial}.log"))
    }

    /// The experiment's trials in creation order.
    pub async fn trials(&self, e: &StoredExperiment) -> Result<Vec<StoredTrial>> {
        get_trials(&self.inner.resources, e).await
    }

    /// Validates an Experiment (YAML or JSON) and stores it. `namespace`
    /// applies when the YAML names none; `working_dir` is where trials run
    /// when their container names no `workingDir`.
    pub async fn create(
        &self,
        text: &str,
        namespace: &Namespace,
        working_dir: Option<&Path>,
    ) -> Result<StoredExperiment> {
        let exp = Experiment::from_yaml(text)?;
        let namespace = exp.namespace.clone().unwrap_or_else(|| namespace.clone());
        let mut object = exp.to_katib_value();
        object["metadata"]["namespace"] = json!(namespace.as_str());
        if let Some(dir) = working_dir {
            let meta = &mut object["metadata"];
            if !meta["annotations"].is_object() {
                meta["annotations"] = json!({});
            }
            meta["annotations"][WORKING_DIR_ANNOTATION] = json!(dir.display().to_string());
        }
        let written = self
            .inner
            .resources
            .create(
                &EXPERIMENT,
                Some(namespace.as_str()),
                object,
                &WriteOptions::default(),
            )
            .await?;
        info!(experiment = %exp.name, namespace = %namespace, "Experiment created.");
        StoredExperiment::from_object(&written.object).ok_or_else(|| TuningError::Corrupt {
            name: exp.name.clone(),
            message: "the stored object has no namespace or uid".into(),
        })
    }

    /// Writes `e`'s status (computed from its fields and `trials`) if it
    /// is still at the resourceVersion `e` was read at. `None` when it has
    /// moved on (read it again and decide anew).
    async fn write_status(
        &self,
        e: &StoredExperiment,
        trials: &[StoredTrial],
        fence: Option<&Fence>,
    ) -> Result<Option<StoredExperiment>> {
        let status = experiment_status(e, trials);
        if status == e.status {
            return Ok(Some(e.clone()));
        }
        let body = json!({
            "metadata": {"resourceVersion": e.resource_version},
            "status": status,
        });
        let resources = &self.inner.resources;
        let ns = Some(e.namespace.as_str());
        let written = match fence {
            Some(f) => {
                resources
                    .replace_status_fenced(&EXPERIMENT, ns, &e.name, body, f)
                    .await
            }
            None => {
                resources
                    .replace_status(&EXPERIMENT, ns, &e.name, body)
                    .await
            }
        };
        match written {
            Ok(w) => {
                let now = StoredExperiment::from_object(&w.object);
                if now.as_ref().is_some_and(|n| n.id != e.id) {
                    // Deleted and created again under the name meanwhile:
                    // this status was not for it (a conflict, in effect).
                    return Ok(None);
                }
                if let (Some(n), Some(_)) = (&now, fence) {
                    self.inner
                        .own_writes
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(n.id.clone(), n.resource_version.clone());
                }
                Ok(now)
            }
            Err(ResourceError::Conflict { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Stops an experiment: its running trials are killed and it ends as
    /// `Stopped` (it can be resumed). Stopping an ended experiment is a no-op.
    pub async fn stop(&self, namespace: &Namespace, name: &str) -> Result<StoredExperiment> {
        loop {
            let mut e = self.experiment(namespace, name).await?;
            if e.phase.is_terminal() {
                return Ok(e);
            }
            let trials = self.trials(&e).await?;
            let now = Timestamp::now();
            e.phase = ExperimentPhase::Stopped;
            e.finished_at = Some(now);
            push_condition(
                &mut e.conditions,
                ExperimentPhase::Stopped,
                "ExperimentStopped",
                "Experiment was stopped by a user",
                now,
            );
            let Some(stopped) = self.write_status(&e, &trials, None).await? else {
                continue;
            };
            // A loop in this process stops at once (and is waited for: its
            // trials are killed and counted when this returns); one in
            // another process sees the condition at its next resync.
            let done = self.lock_active().get(&stopped.id).map(|a| {
                a.cancel.cancel();
                a.done.clone()
            });
            if let Some(mut done) = done {
                let _ = done.wait_for(|d| *d).await;
            }
            let stopped = match self.experiment(namespace, name).await {
                Ok(now) if now.id == stopped.id => now,
                _ => stopped,
            };
            self.event(
                &stopped,
                EventType::Normal,
                "ExperimentStopped",
                "Experiment was stopped by a user",
            )
            .await;
            self.emit(TuningEvent::Experiment {
                experiment_id: stopped.id.clone(),
                phase: stopped.phase,
            });
            return Ok(stopped);
        }
    }

    /// Resumes an ended experiment (Katib's restart): a stopped or failed
    /// one always, a succeeded one only when it ended on `maxTrialCount`,
    /// its `resumePolicy` is not `Never`, and `max_trial_count` is larger
    /// than the number of trials it has.
    pub async fn resume(
        &self,
        namespace: &Namespace,
        name: &str,
        max_trial_count: Option<u32>,
    ) -> Result<StoredExperiment> {
        let e = self.experiment(namespace, name).await?;
        let exp = parse_stored(&e)?;
        let trials = self.trials(&e).await?.len() as u32;
        match e.phase {
            ExperimentPhase::Stopped | ExperimentPhase::Failed => {}
            ExperimentPhase::Succeeded => {
                if e.latest_reason() != "ExperimentMaxTrialsReached" {
                    return Err(TuningError::Invalid(format!(
                        "experiment {name} succeeded with reason {}; only an experiment that reached maxTrialCount can be resumed",
                        e.latest_reason()
                    )));
                }
                if exp.spec.resume_policy == ResumePolicy::Never {
                    return Err(TuningError::Invalid(format!(
                        "experiment {name} has resumePolicy Never; set LongRunning or FromVolume to resume it"
                    )));
                }
                match max_trial_count {
                    Some(m) if m > trials => {}
                    _ => {
                        return Err(TuningError::Invalid(format!(
                            "experiment {name} has {trials} trials; give a maxTrialCount larger than that to resume it"
                        )));
                    }
                }
            }
            other => {
                return Err(TuningError::Invalid(format!(
                    "experiment {name} is {other}; only an ended experiment can be resumed"
                )));
            }
        }
        if let Some(m) = max_trial_count {
            if m <= trials {
                return Err(TuningError::Invalid(format!(
                    "maxTrialCount {m} must be larger than the {trials} trials experiment {name} already has"
                )));
            }
            // The validation hook checks the new count against the rest of the spec.
            self.inner
                .resources
                .patch(
                    &EXPERIMENT,
                    Some(namespace.as_str()),
                    name,
                    oxflow_resources::PatchType::Merge,
                    json!({"metadata": {"uid": e.id}, "spec": {"maxTrialCount": m}}),
                    false,
                    &WriteOptions::default(),
                )
                .await?;
        }
        loop {
            let mut e = self.experiment(namespace, name).await?;
            if !e.phase.is_terminal() {
                return Ok(e);
            }
            let trials = self.trials(&e).await?;
            mark_restarting(&mut e);
            if let Some(e) = self.write_status(&e, &trials, None).await? {
                self.nudge(&e);
                self.emit(TuningEvent::Experiment {
                    experiment_id: e.id.clone(),
                    phase: e.phase,
                });
                return Ok(e);
            }
        }
    }

    /// Deletes an experiment with its trials, suggestion, metrics and logs.
    /// A running one is stopped first.
    pub async fn delete(&self, namespace: &Namespace, name: &str) -> Result<()> {
        // Stopped first (a local loop is waited for), so that no trial
        // writes after the delete.
        let e = self.stop(namespace, name).await?;
        match self
            .inner
            .resources
            .delete(
                &EXPERIMENT,
                Some(namespace.as_str()),
                name,
                &DeleteOptions {
                    uid: Some(e.id.clone()),
                    ..Default::default()
                },
            )
            .await
        {
            Ok(_) | Err(ResourceError::NotFound { .. }) => {}
            Err(err) => return Err(err.into()),
        }
        self.forget(namespace, name).await;
        Ok(())
    }

    /// Removes what a deleted experiment leaves behind: its trials' files
    /// and metric reports, and trials its loop stored while the deletion
    /// went on (owned by no experiment that exists).
    async fn forget(&self, namespace: &Namespace, name: &str) {
        let resources = &self.inner.resources;
        let current = self.experiment(namespace, name).await.ok().map(|e| e.id);
        if let Ok(labels) = LabelSelector::parse(&format!("{EXPERIMENT_LABEL}={name}"))
            && let Ok((trials, _)) = resources
                .list(
                    &TRIAL,
                    Some(namespace.as_str()),
                    &labels,
                    &FieldSelector::default(),
                )
                .await
        {
            for t in trials {
                if current.as_deref().is_some_and(|uid| owned_by(&t, uid)) {
                    continue;
                }
                let trial = t["metadata"]["name"].as_str().unwrap_or_default();
                match resources
                    .delete(
                        &TRIAL,
                        Some(namespace.as_str()),
                        trial,
                        &DeleteOptions::default(),
                    )
                    .await
                {
                    Ok(_) | Err(ResourceError::NotFound { .. }) => {}
                    Err(e) => {
                        warn!(trial, error = %e, "Could not delete a trial of a deleted experiment.")
                    }
                }
            }
        }
        if current.is_some() {
            // Created again under the name: its files are its own now.
            return;
        }
        let dir = |base: &Path| base.join(namespace.as_str()).join(name);
        for d in [
            dir(&self.inner.config.logs_dir),
            dir(&self.inner.config.work_dir),
        ] {
            if let Err(err) = std::fs::remove_dir_all(&d)
                && err.kind() != std::io::ErrorKind::NotFound
            {
                warn!(dir = %d.display(), error = %err, "Could not remove an experiment's files.");
            }
        }
        if let Err(e) = self
            .store()
            .delete_orphan_observation_logs((TRIAL.group, TRIAL.kind))
            .await
        {
            warn!(error = %e, "Could not drop the metrics of deleted trials.");
        }
    }

    /// Makes the experiment's loop in this process (if any) look again, and
    /// the framework reconcile it.
    fn nudge(&self, e: &StoredExperiment) {
        if let Some(a) = self.lock_active().get(&e.id) {
            a.nudge.notify_one();
        }
        if let Some(f) = self.inner.framework.get() {
            f.enqueue(experiment_key(e.namespace.as_str(), &e.name));
        }
    }

    /// Starts the framework controller that runs every experiment waiting
    /// for a controller (created, restarting, or held by a dead one);
    /// returns at once. The handle ends with [`Self::shutdown`].
    pub fn start(&self) -> tokio::task::JoinHandle<()> {
        let mut config = oxflow_controller::ControllerConfig::new("tuning");
        // Experiments whose lease another process held come back when it lapses.
        config.resync = Some(LEASE_TTL);
        let framework = oxflow_controller::Controller::start(
            self.store().clone(),
            Some(&self.inner.resources),
            &[&EXPERIMENT, &POD],
            Arc::new(Reconcile(self.clone())),
            config,
        );
        let _ = self.inner.framework.set(framework.clone());
        let shutdown = self.inner.shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            framework.stop();
        })
    }

    /// Stops the framework controller and every experiment loop of this
    /// process. Their trials die with the process and are re-run by the
    /// next one.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// Brings one experiment in line: a loop for one that has not ended
    /// (if this process can take its lease), none for one that has ended or
    /// is gone; a succeeded one whose `maxTrialCount` was raised above its
    /// trials restarts, as in Katib.
    async fn reconcile_key(
        &self,
        namespace: &Namespace,
        name: &str,
    ) -> Result<oxflow_controller::Action> {
        use oxflow_controller::Action;
        // The cached copy: a burst of creates is reconciled without a read
        // each (the loop and the start read the store).
        let cached = self
            .inner
            .resources
            .get_cached(&EXPERIMENT, Some(namespace.as_str()), name)
            .await
            .map_err(TuningError::from)
            .and_then(|o| {
                StoredExperiment::from_object(&o).ok_or_else(|| TuningError::Corrupt {
                    name: name.to_owned(),
                    message: "the stored object has no namespace or uid".into(),
                })
            });
        let e = match cached {
            Ok(e) => e,
            Err(TuningError::Resource(ResourceError::NotFound { .. })) => {
                let gone: Vec<CancellationToken> = self
                    .lock_active()
                    .values()
                    .filter(|a| &a.namespace == namespace && a.name == name)
                    .map(|a| a.cancel.clone())
                    .collect();
                for c in gone {
                    c.cancel();
                }
                self.forget(namespace, name).await;
                return Ok(Action::Done);
            }
            Err(e) => return Err(e),
        };
        if let Some(a) = self.lock_active().get(&e.id) {
            let own = self
                .inner
                .own_writes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&e.id)
                == Some(&e.resource_version);
            if e.phase.is_terminal() {
                a.cancel.cancel();
            } else if !own {
                a.nudge.notify_one();
            }
            return Ok(Action::Done);
        }
        let mut e = e;
        if e.phase.is_terminal() {
            if !self.raised_budget(&e).await? {
                return Ok(Action::Done);
            }
            let trials = self.trials(&e).await?;
            mark_restarting(&mut e);
            match self.write_status(&e, &trials, None).await? {
                Some(restarting) => e = restarting,
                // Changed meanwhile: its own change event brings it back.
                None => return Ok(Action::Done),
            }
        }
        // Started at the bucket's pace, once: the start waits for its
        // slot in a task of its own (no requeue storm of a burst's keys),
        // then takes the lease and runs.
        if !self.lock_starting().insert(e.id.clone()) {
            return Ok(Action::Done);
        }
        let deadline = std::time::Instant::now() + MAX_START_DEFERRAL;
        *self.lock_burst() = std::time::Instant::now() + BURST_QUIET;
        let wait = self.inner.starts.reserve();
        let this = self.clone();
        let token = self.inner.shutdown.child_token();
        let (ns, name) = (e.namespace.clone(), e.name.clone());
        tokio::spawn(async move {
            let uid = e.id.clone();
            let slot = async {
                tokio::time::sleep(wait).await;
                loop {
                    let now = std::time::Instant::now();
                    let until = (*this.lock_burst()).min(deadline);
                    if now >= until {
                        break;
                    }
                    tokio::time::sleep(until - now).await;
                }
            };
            tokio::select! {
                () = slot => {
                    if let Err(err) = this.start_loop(&ns, &name, &uid, token).await {
                        warn!(experiment = %name, namespace = %ns, error = %err, "Experiment loop ended with an error.");
                    }
                }
                () = token.cancelled() => {}
            }
            this.lock_starting().remove(&uid);
        });
        Ok(Action::Done)
    }

    /// Starts the loop of experiment `uid` in this process, if it still
    /// needs one and its lease is free (else the framework looks again when
    /// the lease may have lapsed).
    async fn start_loop(
        &self,
        namespace: &Namespace,
        name: &str,
        uid: &str,
        token: CancellationToken,
    ) -> Result<()> {
        let e = match self.experiment(namespace, name).await {
            Ok(e) if e.id == uid && !e.phase.is_terminal() => e,
            Ok(_) | Err(TuningError::Resource(ResourceError::NotFound { .. })) => return Ok(()),
            Err(err) => return Err(err),
        };
        let Some(fence) = self.acquire(&e).await? else {
            if let Some(f) = self.inner.framework.get() {
                f.queue()
                    .add_after(experiment_key(namespace.as_str(), name), LEASE_TTL / 3);
            }
            return Ok(());
        };
        self.run_leased(e, fence, token).await
    }

    fn lock_burst(&self) -> std::sync::MutexGuard<'_, std::time::Instant> {
        self.inner
            .burst_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn lock_starting(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.inner
            .starting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// A deleted pod of a trial running here ends the trial's process (the
    /// trial fails, saying so).
    async fn reconcile_pod(&self, namespace: &str, name: &str) -> Result<()> {
        let key = (namespace.to_owned(), name.to_owned());
        let Some(token) = self.lock_pods().get(&key).cloned() else {
            return Ok(());
        };
        match self.inner.resources.get(&POD, Some(namespace), name).await {
            Err(ResourceError::NotFound { .. }) => {
                info!(
                    pod = name,
                    namespace, "A trial's pod was deleted; ending its process."
                );
                token.cancel();
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn lock_pods(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), CancellationToken>> {
        self.inner.pods.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a succeeded experiment's budget was raised (Katib's
    /// `edit_experiment_budget`): it ended on `maxTrialCount`, may be
    /// resumed, and its `maxTrialCount` is now above its trials.
    async fn raised_budget(&self, e: &StoredExperiment) -> Result<bool> {
        if e.phase != ExperimentPhase::Succeeded
            || e.latest_reason() != "ExperimentMaxTrialsReached"
        {
            return Ok(false);
        }
        let Ok(exp) = parse_stored(e) else {
            return Ok(false);
        };
        if exp.spec.resume_policy == ResumePolicy::Never {
            return Ok(false);
        }
        let trials = self.trials(e).await?.len() as u32;
        Ok(exp.spec.max_trial_count.is_some_and(|m| m > trials))
    }

    /// Takes (or renews) the experiment's lease for this process: free,
    /// expired, or held by a process of this host that no longer exists
    /// (an `oxflow tune` killed mid-run: its experiment is resumed at once
    /// rather than after the lease's time).
    async fn acquire(&self, e: &StoredExperiment) -> Result<Option<Fence>> {
        let store = self.store();
        let (lease, me) = (lease_name(&e.id), &self.inner.config.owner);
        let ttl = LEASE_TTL.as_millis() as i64;
        if let Some(f) = store
            .acquire_lease(&lease, me, Timestamp::now(), ttl)
            .await?
        {
            return Ok(Some(f));
        }
        match store.lease_holder(&lease).await? {
            Some(gone) if oxflow_runtime::owner::local_owner_gone(&gone) => Ok(store
                .take_lease_from(&lease, &gone, me, Timestamp::now(), ttl)
                .await?),
            _ => Ok(None),
        }
    }

    /// Runs the experiment in this process until it ends (or `cancel`
    /// fires, which leaves it to the next controller as after a crash) and
    /// returns it as it ended (`oxflow tune`, `oxflow experiments resume`).
    pub async fn run(
        &self,
        namespace: &Namespace,
        name: &str,
        cancel: CancellationToken,
    ) -> Result<StoredExperiment> {
        let e = self.experiment(namespace, name).await?;
        if e.phase.is_terminal() {
            return Ok(e);
        }
        let Some(fence) = self.acquire(&e).await? else {
            return Err(TuningError::Invalid(format!(
                "experiment {name} is run by another live controller"
            )));
        };
        self.run_leased(e, fence, cancel).await?;
        match self.experiment(namespace, name).await {
            Ok(e) => Ok(e),
            Err(TuningError::Resource(ResourceError::NotFound { .. })) => Err(
                TuningError::Invalid(format!("experiment {name} was deleted while it ran")),
            ),
            Err(e) => Err(e),
        }
    }

    /// Runs the loop of `e` under `fence`: registered as this process's,
    /// its lease renewed while it runs and given back when it ends.
    async fn run_leased(
        &self,
        e: StoredExperiment,
        fence: Fence,
        cancel: CancellationToken,
    ) -> Result<()> {
        let nudge = Arc::new(Notify::new());
        let (done_tx, done) = tokio::sync::watch::channel(false);
        {
            let mut active = self.lock_active();
            if active.contains_key(&e.id) {
                return Err(TuningError::Invalid(format!(
                    "experiment {} is already running in this process",
                    e.name
                )));
            }
            active.insert(
                e.id.clone(),
                Active {
                    namespace: e.namespace.clone(),
                    name: e.name.clone(),
                    cancel: cancel.clone(),
                    nudge: nudge.clone(),
                    done,
                },
            );
        }
        // The lease is renewed while the loop runs; lost, the loop ends.
        let renew = {
            let store = self.store().clone();
            let fence = fence.clone();
            let cancel = cancel.clone();
            let token = CancellationToken::new();
            let t = token.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = t.cancelled() => return,
                        _ = tokio::time::sleep(LEASE_TTL / 3) => {
                            match store.acquire_lease(&fence.lease, &fence.holder, Timestamp::now(),
                                LEASE_TTL.as_millis() as i64).await {
                                Ok(Some(f)) if f.token == fence.token => {}
                                Ok(_) => {
                                    warn!(lease = %fence.lease, "Lost an experiment's lease; its loop stops.");
                                    cancel.cancel();
                                    return;
                                }
                                Err(e) => warn!(lease = %fence.lease, error = %e, "Could not renew an experiment's lease."),
                            }
                        }
                    }
                }
            });
            token.drop_guard()
        };
        let (id, ns, name) = (e.id.clone(), e.namespace.clone(), e.name.clone());
        let result = self.run_claimed(e, fence.clone(), nudge, cancel).await;
        // Trials killed on the way out (a stop) are counted in the status.
        if let Err(err) = self.refresh_status(&ns, &name, &id, &fence).await {
            warn!(experiment = %name, error = %err, "Could not bring an experiment's status up to date.");
        }
        drop(renew);
        if let Err(err) = self.store().release_lease(&fence).await {
            warn!(lease = %fence.lease, error = %err, "Could not give an experiment's lease back.");
        }
        self.lock_active().remove(&id);
        self.inner
            .own_writes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        let _ = done_tx.send(true);
        result
    }

    /// Writes the experiment's status from its trials as they are now.
    async fn refresh_status(
        &self,
        namespace: &Namespace,
        name: &str,
        uid: &str,
        fence: &Fence,
    ) -> Result<()> {
        for _ in 0..5 {
            let e = match self.experiment(namespace, name).await {
                Ok(e) if e.id == uid => e,
                Ok(_) | Err(TuningError::Resource(ResourceError::NotFound { .. })) => return Ok(()),
                Err(e) => return Err(e),
            };
            let trials = self.trials(&e).await?;
            if self.write_status(&e, &trials, Some(fence)).await?.is_some() {
                return Ok(());
            }
        }
        Ok(())
    }

    async fn run_claimed(
        &self,
        record: StoredExperiment,
        fence: Fence,
        nudge: Arc<Notify>,
        cancel: CancellationToken,
    ) -> Result<()> {
        // Pods into the object cache: their status writes then need no read.
        if let Err(e) = self
            .inner
            .resources
            .list_cached(
                &POD,
                Some(record.namespace.as_str()),
                &LabelSelector::default(),
                &FieldSelector::default(),
            )
            .await
        {
            warn!(error = %e, "Could not read the pods into the cache.");
        }
        let ctx = match Ctx::new(record.clone(), fence) {
            Ok(ctx) => ctx,
            Err(err) => {
                let trials = self.trials(&record).await?;
                let mut record = record;
                let now = Timestamp::now();
                record.phase = ExperimentPhase::Failed;
                record.finished_at = Some(now);
                push_condition(
                    &mut record.conditions,
                    ExperimentPhase::Failed,
                    "ExperimentFailed",
                    &err.to_string(),
                    now,
                );
                self.write_status(&record, &trials, None).await?;
                return Ok(());
            }
        };
        let ctx = Arc::new(ctx);
        let mut running: JoinSet<(String, Result<TrialPhase>)> = JoinSet::new();
        let mut tokens: HashMap<String, CancellationToken> = HashMap::new();
        // Trials a dead controller left behind run again, from the start.
        for t in self.trials(&record).await? {
            if !t.phase.is_terminal() {
                self.spawn_trial(&ctx, t, false, &mut running, &mut tokens);
            }
        }
        let result = self
            .reconcile(&ctx, &mut running, &mut tokens, &nudge, &cancel)
            .await;
        // Whatever ended the loop, no trial of this loop may outlive it,
        // nor a write of it.
        for t in tokens.values() {
            t.cancel();
        }
        while running.join_next().await.is_some() {}
        let writes = std::mem::take(&mut *ctx.background.lock().unwrap_or_else(|p| p.into_inner()));
        for w in writes {
            let _ = w.await;
        }
        // The Suggestion as the loop leaves it (writes were spaced out).
        if let Ok(e) = self
            .experiment(&ctx.record.namespace, &ctx.record.name)
            .await
            && e.id == ctx.record.id
            && let Ok(trials) = self.trials(&e).await
            && let Err(err) = self.record_suggestions(&ctx, &e, &trials).await
        {
            warn!(experiment = %e.name, error = %err, "Could not record an experiment's suggestions.");
        }
        result
    }

    /// Marks the experiment running (once per (re)start), under the lease.
    async fn mark_running(
        &self,
        ctx: &Ctx,
        e: &StoredExperiment,
        trials: &[StoredTrial],
    ) -> Result<Option<StoredExperiment>> {
        let mut e = e.clone();
        let now = Timestamp::now();
        e.started_at.get_or_insert(now);
        e.finished_at = None;
        if e.conditions.as_array().is_none_or(|c| c.is_empty()) {
            push_condition(
                &mut e.conditions,
                ExperimentPhase::Created,
                "ExperimentCreated",
                "Experiment is created",
                now,
            );
        }
        e.phase = ExperimentPhase::Running;
        push_condition(
            &mut e.conditions,
            ExperimentPhase::Running,
            "ExperimentRunning",
            "Experiment is running",
            now,
        );
        let written = self.write_status(&e, trials, Some(&ctx.fence)).await?;
        if let Some(w) = &written {
            info!(experiment = %w.name, "Experiment running.");
            self.event(
                w,
                EventType::Normal,
                "ExperimentRunning",
                "Experiment is running",
            )
            .await;
            self.emit(TuningEvent::Experiment {
                experiment_id: w.id.clone(),
                phase: w.phase,
            });
        }
        Ok(written)
    }

    async fn event(&self, e: &StoredExperiment, kind: EventType, reason: &str, message: &str) {
        let object = json!({
            "apiVersion": EXPERIMENT.api_version(),
            "kind": EXPERIMENT.kind,
            "metadata": {"name": e.name, "namespace": e.namespace.as_str(), "uid": e.id},
        });
        self.inner
            .recorder
            .record(&object, kind, reason, message)
            .await;
    }

    async fn reconcile(
        &self,
        ctx: &Arc<Ctx>,
        running: &mut JoinSet<(String, Result<TrialPhase>)>,
        tokens: &mut HashMap<String, CancellationToken>,
        nudge: &Notify,
        cancel: &CancellationToken,
    ) -> Result<()> {
        let (ns, name) = (&ctx.record.namespace, ctx.record.name.as_str());
        loop {
            if cancel.is_cancelled() {
                // Shutdown, a stop or a lost lease: trials die with the
                // loop (a stopped experiment's for good, the others run
                // again under the next controller).
                return Ok(());
            }
            let record = match self.experiment(ns, name).await {
                Ok(e) if e.id == ctx.record.id => e,
                Ok(_) | Err(TuningError::Resource(ResourceError::NotFound { .. })) => {
                    self.kill_all(running, tokens).await;
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            if record.phase.is_terminal() {
                self.kill_all(running, tokens).await;
                return Ok(());
            }
            let trials = self.trials(&record).await?;
            if record.phase != ExperimentPhase::Running {
                // Created or restarting: running from now on (read again
                // either way, written or changed meanwhile).
                self.mark_running(ctx, &record, &trials).await?;
                continue;
            }
            let best = best_trial(ctx, &trials);
            let mut record = record;
            record.optimal_trial = best.map(|t| t.name.clone());
            if let Some((phase, reason, message)) = termination(ctx, &trials, best) {
                self.kill_all(running, tokens).await;
                if self
                    .finish(ctx, record, &trials, phase, reason, &message)
                    .await?
                {
                    return Ok(());
                }
                continue;
            }
            // Katib asks for min(parallel, max - completed) - active; every
            // stored trial is either active or completed, so that is "up to
            // parallel running, never more than maxTrialCount in total".
            let active = running.len() as u32;
            let parallel = ctx.exp.spec.parallel_trial_count;
            let mut want = parallel.saturating_sub(active);
            if let Some(max) = ctx.exp.spec.max_trial_count {
                want = want.min(max.saturating_sub(trials.len() as u32));
            }
            let want = want as usize;
            if want == 0 {
                // The status follows the trials (counts, lists, the best
                // one); with new trials to start it is written after them.
                if self
                    .write_status(&record, &trials, Some(&ctx.fence))
                    .await?
                    .is_none()
                {
                    continue;
                }
            }
            if want > 0 {
                let history = history(ctx, &trials)?;
                let ctx2 = ctx.clone();
                let suggestions =
                    tokio::task::spawn_blocking(move || ctx2.algorithm.suggest(&history, want))
                        .await
                        .map_err(|e| {
                            TuningError::Invalid(format!("the suggestion task failed: {e}"))
                        })?;
                let suggestions = match suggestions {
                    Ok(s) => s,
                    Err(err) => {
                        self.kill_all(running, tokens).await;
                        self.finish(
                            ctx,
                            record,
                            &trials,
                            ExperimentPhase::Failed,
                            "ExperimentFailed",
                            &format!("suggestion failed: {err}"),
                        )
                        .await?;
                        return Ok(());
                    }
                };
                if suggestions.is_empty() && active == 0 {
                    if self
                        .finish(
                            ctx,
                            record,
                            &trials,
                            ExperimentPhase::Succeeded,
                            "ExperimentSuggestionEndReached",
                            "The search space is exhausted",
                        )
                        .await?
                    {
                        return Ok(());
                    }
                    continue;
                }
                let mut new = Vec::with_capacity(suggestions.len());
                for (seq, s) in (trials.len() as i64..).zip(suggestions) {
                    let assignments = crate::spec::format_assignment(&ctx.space, &s.assignment);
                    let trial = trial_name(&ctx.record.name, &ctx.record.id, seq);
                    let run_spec = ctx
                        .exp
                        .render_trial(&trial, ns.as_str(), &assignments)
                        .ok()
                        .map(|r| r.spec);
                    let mut object = new_trial_object(
                        &record,
                        &trial,
                        seq,
                        &serde_json::to_value(&assignments).unwrap_or(json!([])),
                        &serde_json::to_value(&s.tags).unwrap_or(json!({})),
                        run_spec,
                    );
                    // Started at once: stored running, in one write.
                    object["status"] = started_status(Timestamp::now());
                    new.push(self.store_trial(ctx, object, &trial).await?);
                }
                let mut all = trials;
                all.extend(new.iter().map(|(t, _)| t.clone()));
                for (t, created) in new {
                    self.emit(TuningEvent::Trial {
                        experiment_id: ctx.record.id.clone(),
                        trial: t.name.clone(),
                        phase: TrialPhase::Created,
                        objective: None,
                        assignments: t.assignments.clone(),
                    });
                    self.spawn_trial(ctx, t, created, running, tokens);
                }
                // Recorded once the trials are on their way (off the path
                // from one trial's end to the next one's start).
                self.write_status(&record, &all, Some(&ctx.fence)).await?;
                let due = ctx
                    .suggested_at
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_none_or(|at| at.elapsed() >= SUGGESTION_EVERY);
                if due {
                    self.record_suggestions(ctx, &record, &all).await?;
                }
                continue;
            }
            tokio::select! {
                Some(done) = running.join_next() => {
                    if let Ok((trial_id, result)) = done {
                        tokens.remove(&trial_id);
                        if let Err(e) = result {
                            warn!(experiment = %ctx.record.name, error = %e, "A trial could not be recorded.");
                        }
                    }
                }
                _ = cancel.cancelled() => {}
                _ = nudge.notified() => {}
                _ = tokio::time::sleep(RESYNC) => {}
            }
        }
    }

    /// Stores a suggested trial under the lease, with the status `object`
    /// carries; one stored before (by a pass that crashed before starting
    /// it) is taken as it is. The flag says whether this call stored it.
    async fn store_trial(
        &self,
        ctx: &Ctx,
        object: Value,
        name: &str,
    ) -> Result<(StoredTrial, bool)> {
        let resources = &self.inner.resources;
        let ns = Some(ctx.record.namespace.as_str());
        let opts = WriteOptions {
            fence: Some(ctx.fence.clone()),
            with_status: true,
            ..Default::default()
        };
        let mut created = true;
        let stored = match resources.create(&TRIAL, ns, object, &opts).await {
            Ok(w) => w.object,
            Err(ResourceError::AlreadyExists { .. }) => {
                let existing = resources.get(&TRIAL, ns, name).await?;
                if !owned_by(&existing, &ctx.record.id) {
                    return Err(TuningError::Invalid(format!(
                        "a trial named {name} exists and belongs to another experiment"
                    )));
                }
                created = false;
                existing
            }
            Err(e) => return Err(e.into()),
        };
        let trial = StoredTrial::from_object(&stored).ok_or_else(|| TuningError::Corrupt {
            name: ctx.record.name.clone(),
            message: format!("trial {name} was stored without a uid"),
        })?;
        Ok((trial, created))
    }

    /// Keeps the experiment's Suggestion in line with what was suggested:
    /// `spec.requests` and `status.suggestions` (every trial's parameters).
    async fn record_suggestions(
        &self,
        ctx: &Ctx,
        e: &StoredExperiment,
        trials: &[StoredTrial],
    ) -> Result<()> {
        let resources = &self.inner.resources;
        let ns = Some(e.namespace.as_str());
        let spec = json!({
            "algorithm": e.spec.pointer("/spec/algorithm").cloned().unwrap_or(Value::Null),
            "requests": trials.len(),
            "resumePolicy": e.spec.pointer("/spec/resumePolicy").cloned().unwrap_or(Value::Null),
        });
        let object = match resources.get(&SUGGESTION, ns, &e.name).await {
            Ok(o) if owned_by(&o, &e.id) && o.get("spec") == Some(&spec) => o,
            Ok(o) if owned_by(&o, &e.id) => {
                let mut body = o.clone();
                body["spec"] = spec;
                resources
                    .replace(&SUGGESTION, ns, &e.name, body, &WriteOptions::default())
                    .await?
                    .object
            }
            // A leftover of an earlier experiment of the name, being deleted.
            Ok(_) => return Ok(()),
            Err(ResourceError::NotFound { .. }) => {
                let body = json!({
                    "apiVersion": SUGGESTION.api_version(),
                    "kind": SUGGESTION.kind,
                    "metadata": {
                        "name": e.name,
                        "namespace": e.namespace.as_str(),
                        "labels": {EXPERIMENT_LABEL: e.name},
                        "ownerReferences": [owner_reference(e)],
                    },
                    "spec": spec,
                });
                let opts = WriteOptions {
                    fence: Some(ctx.fence.clone()),
                    ..Default::default()
                };
                resources.create(&SUGGESTION, ns, body, &opts).await?.object
            }
            Err(err) => return Err(err.into()),
        };
        let uid = object["metadata"]["uid"].as_str().unwrap_or_default();
        let generation = object["metadata"]["generation"].as_i64().unwrap_or(1);
        let created = object["metadata"]["creationTimestamp"].clone();
        let status = json!({
            "startTime": created,
            "suggestionCount": trials.len(),
            "suggestions": trials.iter().map(|t| json!({
                "name": t.name,
                "parameterAssignments": t.assignments,
                "labels": t.tags,
            })).collect::<Vec<_>>(),
            "conditions": [
                {"type": "Created", "status": "True", "reason": "SuggestionCreated",
                 "message": "Suggestion is created", "lastUpdateTime": created, "lastTransitionTime": created},
                {"type": "Running", "status": "True", "reason": "SuggestionRunning",
                 "message": "Suggestion is running", "lastUpdateTime": created, "lastTransitionTime": created},
            ],
        });
        resources
            .write_observed_status(
                &SUGGESTION,
                ns,
                &e.name,
                (uid, generation),
                &status,
                Some(&ctx.fence),
            )
            .await?;
        *ctx.suggested_at.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(std::time::Instant::now());
        Ok(())
    }

    async fn kill_all(
        &self,
        running: &mut JoinSet<(String, Result<TrialPhase>)>,
        tokens: &mut HashMap<String, CancellationToken>,
    ) {
        for t in tokens.values() {
            t.cancel();
        }
        while running.join_next().await.is_some() {}
        tokens.clear();
    }

    /// Ends the experiment with `phase`; false when it changed meanwhile
    /// (the caller reads it again).
    async fn finish(
        &self,
        ctx: &Ctx,
        mut record: StoredExperiment,
        trials: &[StoredTrial],
        phase: ExperimentPhase,
        reason: &str,
        message: &str,
    ) -> Result<bool> {
        let now = Timestamp::now();
        record.phase = phase;
        record.finished_at = Some(now);
        push_condition(&mut record.conditions, phase, reason, message, now);
        // Trials killed on the way out are stored by now: count them.
        let trials = match self.trials(&record).await {
            Ok(t) => t,
            Err(_) => trials.to_vec(),
        };
        let Some(done) = self
            .write_status(&record, &trials, Some(&ctx.fence))
            .await?
        else {
            return Ok(false);
        };
        info!(experiment = %done.name, phase = %phase, reason, "Experiment ended.");
        let kind = if phase == ExperimentPhase::Failed {
            EventType::Warning
        } else {
            EventType::Normal
        };
        self.event(&done, kind, reason, message).await;
        self.emit(TuningEvent::Experiment {
            experiment_id: done.id.clone(),
            phase,
        });
        Ok(true)
    }

    /// Runs `trial` in the background; `started` when it was stored
    /// running in this attempt already (see [`started_status`]).
    fn spawn_trial(
        &self,
        ctx: &Arc<Ctx>,
        trial: StoredTrial,
        started: bool,
        running: &mut JoinSet<(String, Result<TrialPhase>)>,
        tokens: &mut HashMap<String, CancellationToken>,
    ) {
        let token = CancellationToken::new();
        tokens.insert(trial.id.clone(), token.clone());
        let this = self.clone();
        let ctx = ctx.clone();
        running.spawn(async move {
            let id = trial.id.clone();
            (id, this.run_trial(&ctx, trial, started, token).await)
        });
    }

    /// Writes a trial's status under the lease; false when the trial is
    /// gone or no longer the one started.
    async fn write_trial(&self, ctx: &Ctx, trial: &StoredTrial) -> Result<bool> {
        Ok(self
            .inner
            .resources
            .write_observed_status(
                &TRIAL,
                Some(ctx.record.namespace.as_str()),
                &trial.name,
                (&trial.id, trial.generation),
                &trial.status(),
                Some(&ctx.fence),
            )
            .await?)
    }

    /// Shows a trial's process as its pod (created on its first start,
    /// owned by the trial): its container's state for the trial's phase.
    /// A pod deleted while its trial ran is not created again (`create`
    /// false: the trial's end is only recorded on a pod that exists).
    async fn write_pod(
        &self,
        ctx: &Ctx,
        trial: &StoredTrial,
        create: bool,
    ) -> Result<Option<Value>> {
        let resources = &self.inner.resources;
        let ns = ctx.record.namespace.as_str();
        let name = pod_name(trial);
        let primary = ctx.exp.spec.trial_template.primary_container_name.as_str();
        // A trial's first start has no pod yet: created with its status in
        // one write, without a read first.
        let existing = if create && trial.attempt <= 1 {
            None
        } else {
            match resources.get(&POD, Some(ns), &name).await {
                Ok(o) => Some(o),
                Err(ResourceError::NotFound { .. }) if !create => return Ok(None),
                Err(ResourceError::NotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            }
        };
        if let Some(object) = existing {
            self.update_pod(ctx, trial, &object).await?;
            return Ok(Some(object));
        }
        let assignments: Vec<ParameterAssignment> =
            serde_json::from_value(trial.assignments.clone()).unwrap_or_default();
        let spec = ctx
            .exp
            .render_trial(&trial.name, ns, &assignments)
            .ok()
            .and_then(|r| r.spec.pointer("/spec/template/spec").cloned())
            .unwrap_or_else(|| json!({"containers": [{"name": primary}]}));
        let body = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": {
                    EXPERIMENT_LABEL: ctx.record.name,
                    TRIAL_LABEL: trial.name,
                    "job-name": trial.name,
                    "batch.kubernetes.io/job-name": trial.name,
                },
                "ownerReferences": [{
                    "apiVersion": TRIAL.api_version(),
                    "kind": TRIAL.kind,
                    "name": trial.name,
                    "uid": trial.id,
                    "controller": true,
                    "blockOwnerDeletion": true,
                }],
            },
            "status": pod_status(trial, primary, &spec),
            "spec": spec,
        });
        let opts = WriteOptions {
            fence: Some(ctx.fence.clone()),
            with_status: true,
            ..Default::default()
        };
        match resources.create(&POD, Some(ns), body, &opts).await {
            Ok(w) => Ok(Some(w.object)),
            // Left by an earlier attempt: its status is brought up to date.
            Err(ResourceError::AlreadyExists { .. }) => {
                let object = resources.get(&POD, Some(ns), &name).await?;
                self.update_pod(ctx, trial, &object).await?;
                Ok(Some(object))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the status of `pod` (stored) for the trial's phase.
    async fn update_pod(&self, ctx: &Ctx, trial: &StoredTrial, pod: &Value) -> Result<()> {
        let primary = ctx.exp.spec.trial_template.primary_container_name.as_str();
        let status = pod_status(trial, primary, &pod["spec"]);
        let meta = &pod["metadata"];
        self.inner
            .resources
            .write_observed_status(
                &POD,
                meta["namespace"].as_str(),
                meta["name"].as_str().unwrap_or_default(),
                (
                    meta["uid"].as_str().unwrap_or_default(),
                    meta["generation"].as_i64().unwrap_or(1),
                ),
                &status,
                Some(&ctx.fence),
            )
            .await?;
        Ok(())
    }

    /// Runs one trial to its end and records it (metrics, then phase).
    async fn run_trial(
        &self,
        ctx: &Arc<Ctx>,
        mut trial: StoredTrial,
        started: bool,
        kill: CancellationToken,
    ) -> Result<TrialPhase> {
        let store = self.store();
        let cfg = &self.inner.config;
        let ns = ctx.record.namespace.as_str();
        let exp_name = &ctx.record.name;
        let log_path = self.log_path(&ctx.record, &trial.name);
        let work = cfg.work_dir.join(ns).join(exp_name).join(&trial.name);
        if !started {
            let now = Timestamp::now();
            trial.phase = TrialPhase::Running;
            trial.attempt += 1;
            trial.started_at = Some(now);
            trial.finished_at = None;
            trial.message = None;
            trial.objective = None;
            trial.observation = json!([]);
        }
        let prepared = self.prepare_trial(ctx, &trial, &log_path, &work);
        if trial.attempt > 1 {
            // Fresh output for this attempt: an interrupted one's metrics go.
            store.clear_observation_logs(&trial.id).await?;
        }
        // Running before its process starts: a pushing trial may report
        // from its first line.
        if !started && !self.write_trial(ctx, &trial).await? {
            return Ok(TrialPhase::Killed);
        }
        // Its pod is written beside the process's start, not before it.
        let pod = {
            let (this, ctx, trial) = (self.clone(), ctx.clone(), trial.clone());
            tokio::spawn(async move { this.write_pod(&ctx, &trial, true).await })
        };
        let pod = Some(pod);
        self.emit(TuningEvent::Trial {
            experiment_id: ctx.record.id.clone(),
            trial: trial.name.clone(),
            phase: TrialPhase::Running,
            objective: None,
            assignments: trial.assignments.clone(),
        });
        let (workload, metrics_source) = match prepared {
            Ok(p) => p,
            Err(message) => {
                return self
                    .end_trial(
                        ctx,
                        trial,
                        TrialPhase::Failed,
                        Some(message),
                        Vec::new(),
                        pod,
                    )
                    .await;
            }
        };
        let rule = self.stop_rule(ctx).await?;
        let runtime = self.inner.runtime.clone();
        let wl_token = kill.child_token();
        // Deleting the trial's pod ends its process (unregistered when the
        // trial ends, whichever way).
        let pod_key = (ns.to_owned(), pod_name(&trial));
        let pod_gone = CancellationToken::new();
        self.lock_pods().insert(pod_key.clone(), pod_gone.clone());
        let _unregister = {
            let this = self.clone();
            let key = pod_key.clone();
            scopeguard_remove(move || {
                this.lock_pods().remove(&key);
            })
        };
        let mut pod_deleted = false;
        let mut run = {
            let wl_token = wl_token.clone();
            let workload = workload.clone();
            tokio::spawn(async move { runtime.run(&workload, wl_token).await })
        };
        let mut tail = Tail::new(metrics_source.clone(), ctx);
        let mut early_stopped = false;
        let outcome = loop {
            tokio::select! {
                res = &mut run => break res,
                _ = pod_gone.cancelled(), if !pod_deleted => {
                    pod_deleted = true;
                    wl_token.cancel();
                }
                _ = tokio::time::sleep(TAIL) => {
                    tail.read();
                    if let Some(rule) = &rule
                        && !early_stopped
                        && rule.should_stop(&tail.objective_series(&ctx.exp.spec.objective.objective_metric_name))
                    {
                        info!(trial = %trial.name, "Early stopping rule met; stopping the trial.");
                        early_stopped = true;
                        wl_token.cancel();
                    }
                }
            }
        };
        tail.read();
        let outcome = match outcome {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                return self
                    .end_trial(
                        ctx,
                        trial,
                        TrialPhase::Failed,
                        Some(e.to_string()),
                        tail.logs,
                        pod,
                    )
                    .await;
            }
            Err(e) => {
                return self
                    .end_trial(
                        ctx,
                        trial,
                        TrialPhase::Failed,
                        Some(format!("the trial task failed: {e}")),
                        tail.logs,
                        pod,
                    )
                    .await;
            }
        };
        let mut logs = tail.logs;
        match &metrics_source {
            MetricsSource::TfEvents(dir) => match metrics::read_event_dir(dir, &ctx.metric_names) {
                Ok(l) => logs = l,
                Err(e) => {
                    warn!(trial = %trial.name, error = %e, "Could not read TensorFlow events.")
                }
            },
            MetricsSource::Push => {
                logs = store
                    .list_observation_logs(&trial.id)
                    .await?
                    .into_iter()
                    .map(|l| MetricLog {
                        time: l.time,
                        name: l.metric_name,
                        value: l.value,
                    })
                    .collect();
            }
            _ => {}
        }
        let (phase, message) = if pod_deleted {
            (
                TrialPhase::Failed,
                Some("its pod was deleted, which ended its process".to_owned()),
            )
        } else if early_stopped {
            (
                TrialPhase::EarlyStopped,
                Some("stopped by the early-stopping rule".to_owned()),
            )
        } else if outcome.canceled || kill.is_cancelled() {
            (
                TrialPhase::Killed,
                Some("killed: the experiment ended or was stopped".to_owned()),
            )
        } else if outcome.success() {
            (TrialPhase::Succeeded, None)
        } else {
            (
                TrialPhase::Failed,
                Some(format!(
                    "the trial's process failed: {}",
                    outcome.describe()
                )),
            )
        };
        self.end_trial(ctx, trial, phase, message, logs, pod).await
    }

    async fn end_trial(
        &self,
        ctx: &Arc<Ctx>,
        mut trial: StoredTrial,
        mut phase: TrialPhase,
        message: Option<String>,
        logs: Vec<MetricLog>,
        pod: Option<tokio::task::JoinHandle<Result<Option<Value>>>>,
    ) -> Result<TrialPhase> {
        let summaries = metrics::reduce(&logs, &ctx.metric_names);
        let objective = metrics::objective_value(&summaries, &ctx.exp.spec.objective);
        if phase == TrialPhase::Succeeded && objective.is_none() {
            phase = TrialPhase::MetricsUnavailable;
        }
        trial.phase = phase;
        trial.message = if phase == TrialPhase::MetricsUnavailable {
            Some(format!(
                "the trial succeeded but never reported {}",
                ctx.exp.spec.objective.objective_metric_name
            ))
        } else {
            message
        };
        trial.objective = objective;
        trial.observation = observation_json(&summaries);
        trial.finished_at = Some(Timestamp::now());
        // Pushed metrics are stored already; collected ones go with the outcome.
        let new_logs: Vec<ObservationLogRecord> =
            if ctx.exp.spec.metrics_collector.kind() == CollectorKind::Push {
                Vec::new()
            } else {
                let mut l: Vec<ObservationLogRecord> = logs
                    .into_iter()
                    .map(|l| ObservationLogRecord {
                        time: l.time,
                        metric_name: l.name,
                        value: l.value,
                    })
                    .collect();
                if !l
                    .iter()
                    .any(|l| l.metric_name == ctx.exp.spec.objective.objective_metric_name)
                {
                    // Katib records the objective as "unavailable" when it never appeared.
                    l.push(ObservationLogRecord {
                        time: None,
                        metric_name: ctx.exp.spec.objective.objective_metric_name.clone(),
                        value: "unavailable".into(),
                    });
                }
                l
            };
        // The reports first: a crash between the two leaves a trial that
        // has not ended, which the next controller runs again afresh.
        self.store()
            .append_observation_logs(&trial.id, &new_logs)
            .await?;
        if !self.write_trial(ctx, &trial).await? {
            return Ok(phase);
        }
        // The pod's end after its start, in the background: the loop goes
        // on to the next trial meanwhile and waits for it before it lets
        // the experiment go.
        let (this, ctx2, ended) = (self.clone(), ctx.clone(), trial.clone());
        let write = tokio::spawn(async move {
            // The pod its start wrote (its uid and generation: no read);
            // one deleted meanwhile is not written again.
            let started = match pod {
                Some(start) => start.await.ok().and_then(|r| r.ok()).flatten(),
                None => None,
            };
            let written = match started {
                Some(pod) => this.update_pod(&ctx2, &ended, &pod).await,
                None => this.write_pod(&ctx2, &ended, false).await.map(|_| ()),
            };
            if let Err(e) = written {
                warn!(trial = %ended.name, error = %e, "Could not record a trial's pod.");
            }
        });
        let mut background = ctx.background.lock().unwrap_or_else(|p| p.into_inner());
        background.retain(|w| !w.is_finished());
        background.push(write);
        info!(trial = %trial.name, phase = %phase, objective = ?objective, "Trial ended.");
        self.emit(TuningEvent::Trial {
            experiment_id: ctx.record.id.clone(),
            trial: trial.name.clone(),
            phase,
            objective,
            assignments: trial.assignments.clone(),
        });
        Ok(phase)
    }

    /// The workload for a trial and where its metrics come from; `Err` is a
    /// message for a trial that cannot start.
    fn prepare_trial(
        &self,
        ctx: &Ctx,
        trial: &StoredTrial,
        log_path: &Path,
        work: &Path,
    ) -> std::result::Result<(Workload, MetricsSource), String> {
        let cfg = &self.inner.config;
        let assignments: Vec<ParameterAssignment> =
            serde_json::from_value(trial.assignments.clone())
                .map_err(|e| format!("stored parameter assignments are unreadable: {e}"))?;
        let run = ctx
            .exp
            .render_trial(&trial.name, ctx.record.namespace.as_str(), &assignments)
            .map_err(|e| e.to_string())?;
        let _ = std::fs::remove_dir_all(work);
        std::fs::create_dir_all(work).map_err(|e| format!("creating {}: {e}", work.display()))?;
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        // Truncate the log of an earlier attempt.
        std::fs::write(log_path, b"")
            .map_err(|e| format!("creating {}: {e}", log_path.display()))?;
        let mut env: BTreeMap<String, String> = run.env.iter().cloned().collect();
        env.insert("KATIB_TRIAL_NAME".into(), trial.name.clone());
        if let Some(url) = &cfg.report_url {
            env.insert("OXFLOW_METRICS_URL".into(), url.clone());
            if let Some(mint) = &cfg.report_tokens {
                let path = report_path(ctx.record.namespace.as_str(), &trial.name);
                env.insert("OXFLOW_METRICS_TOKEN".into(), mint(&path));
            }
        }
        env.insert(
            "OXFLOW_NAMESPACE".into(),
            ctx.record.namespace.as_str().to_owned(),
        );
        if let Some(py) = &cfg.python_path {
            let existing = env
                .get("PYTHONPATH")
                .cloned()
                .or_else(|| std::env::var("PYTHONPATH").ok())
                .filter(|p| !p.is_empty());
            let value = match existing {
                Some(p) => format!("{}:{p}", py.display()),
                None => py.display().to_string(),
            };
            env.insert("PYTHONPATH".into(), value);
        }
        let mut mounts = Vec::new();
        let source = match &ctx.exp.spec.metrics_collector {
            MetricsCollector::StdOut { .. } => MetricsSource::Text(log_path.to_path_buf()),
            MetricsCollector::Push => MetricsSource::Push,
            MetricsCollector::File { path, format } => {
                // Each trial gets its own copy of the collector's directory,
                // bound where the trial expects it: parallel trials writing
                // /var/log/katib/metrics.log do not share one file.
                let path = PathBuf::from(path);
                let parent = path.parent().unwrap_or(Path::new("/")).to_path_buf();
                let own = work.join("metrics");
                std::fs::create_dir_all(&own)
                    .map_err(|e| format!("creating {}: {e}", own.display()))?;
                mounts.push(Mount {
                    source: own.clone(),
                    target: parent,
                    read_only: false,
                });
                let file = own.join(path.file_name().unwrap_or_default());
                match format {
                    FileFormat::Json => MetricsSource::Json(file),
                    FileFormat::Text { .. } => MetricsSource::Text(file),
                }
            }
            MetricsCollector::TensorFlowEvent { path } => {
                let own = work.join("tfevent");
                std::fs::create_dir_all(&own)
                    .map_err(|e| format!("creating {}: {e}", own.display()))?;
                mounts.push(Mount {
                    source: own.clone(),
                    target: PathBuf::from(path),
                    read_only: false,
                });
                MetricsSource::TfEvents(own)
            }
        };
        let working_dir = run
            .working_dir
            .map(PathBuf::from)
            .or_else(|| ctx.record.working_dir.as_ref().map(PathBuf::from))
            .unwrap_or_else(|| work.to_path_buf());
        let mut command = run.command.into_iter();
        let program = command
            .next()
            .ok_or("the trial's container has no command")?;
        Ok((
            Workload {
                name: trial.name.clone(),
                program,
                args: command.collect(),
                env,
                working_dir: Some(working_dir),
                log_path: log_path.to_path_buf(),
                resources: run.resources,
                timeout: None,
                image: run.image,
                mounts,
                warm_python: false,
                kubernetes: Some(run.spec),
            },
            source,
        ))
    }

    /// The early-stopping rule for a trial starting now, from the trials
    /// that succeeded so far.
    async fn stop_rule(&self, ctx: &Ctx) -> Result<Option<StopRule>> {
        let Some(es) = &ctx.exp.spec.early_stopping else {
            return Ok(None);
        };
        let store = self.store();
        let metric = &ctx.exp.spec.objective.objective_metric_name;
        let mut series = Vec::new();
        for t in self.trials(&ctx.record).await? {
            if t.phase != TrialPhase::Succeeded {
                continue;
            }
            let values: Vec<f64> = store
                .list_observation_logs(&t.id)
                .await?
                .into_iter()
                .filter(|l| &l.metric_name == metric)
                .filter_map(|l| l.value.parse().ok())
                .collect();
            series.push(values);
        }
        Ok(StopRule::compute(
            es,
            ctx.exp.spec.objective.objective_type,
            &series,
        ))
    }
}

/// Records metrics a trial pushed (Katib's `ReportObservationLog`; the
/// trial names itself with `KATIB_TRIAL_NAME`). Only a running trial may
/// report; the controller reads them when the trial ends.
pub async fn report_metrics(
    resources: &Resources,
    namespace: &Namespace,
    trial: &str,
    logs: &[ObservationLogRecord],
) -> Result<()> {
    let (_e, t, _) = find_trial(resources, namespace, trial).await?;
    if t.phase != TrialPhase::Running {
        return Err(TuningError::Invalid(format!(
            "trial {trial} is {}; only a running trial can report metrics",
            t.phase
        )));
    }
    resources
        .store()
        .append_observation_logs(&t.id, logs)
        .await?;
    Ok(())
}

/// Where a running trial's metrics come from.
#[derive(Debug, Clone)]
enum MetricsSource {
    /// TEXT lines in this file (stdout's log, or a File collector's file).
    Text(PathBuf),
    /// JSON lines in this file.
    Json(PathBuf),
    /// Event files under this directory, read when the trial ends.
    TfEvents(PathBuf),
    /// Reported by the trial over HTTP into the store.
    Push,
}

/// Reads a growing metrics file incrementally, whole lines only.
struct Tail {
    source: MetricsSource,
    offset: u64,
    partial: String,
    text: Option<metrics::TextParser>,
    json: Option<metrics::JsonParser>,
    logs: Vec<MetricLog>,
}

impl Tail {
    fn new(source: MetricsSource, ctx: &Ctx) -> Self {
        let text = match &source {
            MetricsSource::Text(_) => metrics::TextParser::new(
                &ctx.metric_names,
                ctx.exp
                    .spec
                    .metrics_collector
                    .text_filters()
                    .unwrap_or_default(),
            )
            .ok(),
            _ => None,
        };
        let json = match &source {
            MetricsSource::Json(_) => Some(metrics::JsonParser::new(&ctx.metric_names)),
            _ => None,
        };
        Self {
            source,
            offset: 0,
            partial: String::new(),
            text,
            json,
            logs: Vec::new(),
        }
    }

    fn read(&mut self) {
        use std::io::{Read, Seek, SeekFrom};
        let path = match &self.source {
            MetricsSource::Text(p) | MetricsSource::Json(p) => p,
            _ => return,
        };
        let Ok(mut f) = std::fs::File::open(path) else {
            return;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return;
        }
        self.offset += buf.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&buf));
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            self.parse_line(line.trim_end_matches(['\n', '\r']));
        }
    }

    fn parse_line(&mut self, line: &str) {
        if let Some(p) = &self.text {
            self.logs.extend(p.parse_line(line));
        } else if let Some(p) = &self.json {
            // A line that is not JSON is skipped, as Katib's collector does.
            if let Ok(l) = p.parse_line(line) {
                self.logs.extend(l);
            }
        }
    }

    fn objective_series(&self, metric: &str) -> Vec<f64> {
        self.logs
            .iter()
            .filter(|l| l.name == metric)
            .filter_map(|l| l.value.parse().ok())
            .collect()
    }
}

impl Ctx {
    fn new(record: StoredExperiment, fence: Fence) -> Result<Self> {
        let exp = parse_stored(&record)?;
        let space = exp.spec.search_space();
        let budget = Budget {
            max_trial_count: exp.spec.max_trial_count,
            parallel_trial_count: exp.spec.parallel_trial_count,
        };
        let algorithm = oxflow_suggest::build(
            &exp.spec.algorithm.algorithm_name,
            &exp.spec.algorithm.settings(),
            &space,
            budget,
            record.seed as u64,
        )
        .map_err(|e| TuningError::Spec(SpecError::new("spec.algorithm", e.to_string())))?;
        let metric_names = exp.spec.metric_names();
        Ok(Self {
            record,
            exp,
            space,
            algorithm,
            metric_names,
            fence,
            background: Mutex::new(Vec::new()),
            suggested_at: Mutex::new(None),
        })
    }
}

fn parse_stored(e: &StoredExperiment) -> Result<Experiment> {
    Experiment::from_json_value(e.spec.clone()).map_err(|err| TuningError::Corrupt {
        name: e.name.clone(),
        message: format!("its stored spec no longer validates: {err}"),
    })
}

/// Katib's `observation.metrics`: `"unavailable"` where a value is missing.
fn observation_json(summaries: &[metrics::MetricSummary]) -> Value {
    let text = |v: &Option<String>| json!(v.as_deref().unwrap_or(metrics::UNAVAILABLE));
    Value::Array(
        summaries
            .iter()
            .map(|s| json!({"name": s.name, "min": text(&s.min), "max": text(&s.max), "latest": text(&s.latest)}))
            .collect(),
    )
}

/// The trials as the algorithms see them: losses (lower is better).
fn history(ctx: &Ctx, trials: &[StoredTrial]) -> Result<Vec<TrialRecord>> {
    let sign = match ctx.exp.spec.objective.objective_type {
        ObjectiveType::Minimize => 1.0,
        ObjectiveType::Maximize => -1.0,
    };
    trials
        .iter()
        .map(|t| {
            let assignments: Vec<ParameterAssignment> =
                serde_json::from_value(t.assignments.clone()).map_err(|e| {
                    TuningError::Corrupt {
                        name: ctx.record.name.clone(),
                        message: format!("trial {} has unreadable assignments: {e}", t.name),
                    }
                })?;
            let assignment =
                crate::spec::parse_assignment(&ctx.space, &assignments).map_err(|e| {
                    TuningError::Corrupt {
                        name: ctx.record.name.clone(),
                        message: format!("trial {}: {e}", t.name),
                    }
                })?;
            let outcome = match t.phase {
                TrialPhase::Created | TrialPhase::Running => Outcome::Pending,
                TrialPhase::Succeeded => match t.objective {
                    Some(v) => Outcome::Completed(sign * v),
                    None => Outcome::Failed,
                },
                TrialPhase::EarlyStopped => Outcome::EarlyStopped {
                    last: t.objective.map(|v| sign * v),
                },
                TrialPhase::Failed | TrialPhase::Killed | TrialPhase::MetricsUnavailable => {
                    Outcome::Failed
                }
            };
            let tags = t
                .tags
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.as_str()
                                    .map(str::to_owned)
                                    .unwrap_or_else(|| v.to_string()),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(TrialRecord {
                assignment,
                outcome,
                tags,
            })
        })
        .collect()
}

/// The best trial with an objective value (succeeded or early-stopped).
fn best_trial<'a>(ctx: &Ctx, trials: &'a [StoredTrial]) -> Option<&'a StoredTrial> {
    let better = |a: f64, b: f64| match ctx.exp.spec.objective.objective_type {
        ObjectiveType::Minimize => a < b,
        ObjectiveType::Maximize => a > b,
    };
    let mut best: Option<&StoredTrial> = None;
    for t in trials {
        if !matches!(t.phase, TrialPhase::Succeeded | TrialPhase::EarlyStopped) {
            continue;
        }
        let Some(v) = t.objective else { continue };
        if best.is_none_or(|b| better(v, b.objective.unwrap_or(f64::NAN))) {
            best = Some(t);
        }
    }
    best
}

/// Katib's termination rules, in Katib's order.
fn termination(
    ctx: &Ctx,
    trials: &[StoredTrial],
    best: Option<&StoredTrial>,
) -> Option<(ExperimentPhase, &'static str, String)> {
    let spec = &ctx.exp.spec;
    if let (Some(goal), Some(v)) = (spec.objective.goal, best.and_then(|b| b.objective)) {
        let reached = match spec.objective.objective_type {
            ObjectiveType::Minimize => v <= goal,
            ObjectiveType::Maximize => v >= goal,
        };
        if reached {
            return Some((
                ExperimentPhase::Succeeded,
                "ExperimentGoalReached",
                format!(
                    "Experiment has succeeded because the objective goal {goal} has been reached"
                ),
            ));
        }
    }
    let count = |p: &[TrialPhase]| trials.iter().filter(|t| p.contains(&t.phase)).count() as u32;
    let failed = count(&[TrialPhase::Failed, TrialPhase::MetricsUnavailable]);
    if let Some(max_failed) = spec.max_failed_trial_count
        && failed > 0
        && failed >= max_failed
    {
        return Some((
            ExperimentPhase::Failed,
            "ExperimentFailed",
            format!(
                "Experiment has failed because {failed} trials failed (maxFailedTrialCount {max_failed})"
            ),
        ));
    }
    let completed = count(&[
        TrialPhase::Succeeded,
        TrialPhase::Failed,
        TrialPhase::Killed,
        TrialPhase::EarlyStopped,
        TrialPhase::MetricsUnavailable,
    ]);
    if let Some(max) = spec.max_trial_count
        && completed >= max
    {
        return Some((
            ExperimentPhase::Succeeded,
            "ExperimentMaxTrialsReached",
            format!("Experiment has succeeded because max trial count {max} has reached"),
        ));
    }
    None
}

/// `<experiment>-<8 characters>`, as Katib names trials; derived from the
/// experiment id and the trial's position so a re-run of a suggestion pass
/// that crashed before storing cannot produce a second name for it.
fn trial_name(experiment: &str, experiment_id: &str, seq: i64) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{experiment_id}/{seq}").as_bytes());
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = digest
        .iter()
        .take(8)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    format!("{experiment}-{suffix}")
}

/// Katib's medianstop rule, made once per trial start.
struct StopRule(oxflow_suggest::earlystop::StopRule);

impl StopRule {
    fn compute(
        es: &crate::spec::EarlyStopping,
        objective: ObjectiveType,
        succeeded: &[Vec<f64>],
    ) -> Option<Self> {
        es.median_stop()
            .rule(succeeded.iter().map(Vec::as_slice), objective.direction())
            .map(Self)
    }

    fn should_stop(&self, series: &[f64]) -> bool {
        self.0.should_stop(series)
    }
}
