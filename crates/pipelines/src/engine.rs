//! The DAG engine: executes a stored run to completion, writing every task's
//! state and outputs through the store as it goes.
//!
//! Execution is level-triggered in the sense that matters for crashes: a run
//! is re-entered from its stored records. Task paths are deterministic (task
//! names plus loop indices), so on resume a leaf whose record says SUCCEEDED
//! is not executed again — its stored outputs are used — and everything else
//! runs (again).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use oxflow_artifacts::{ArtifactStore, INTERNAL_DIR};
use oxflow_core::{Mount, Namespace, Resources, RunState, TaskState, Timestamp, Workload};
use oxflow_runtime::{Runtime, RuntimeError};
use oxflow_store::{ArtifactRecord, CacheEntry, RunRecord, Store, TaskRecord};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, mpsc::UnboundedSender};
use tokio_util::sync::CancellationToken;

use crate::cel;
use crate::error::{PipelineError, Result};
use crate::executor::{self, JobInfo, LeafInputs, LeafOutputs, OutputPlan, Placeholders};
use crate::ir::{
    ComponentSpec, ContainerSpec, ExecutorSpec, InputParameterSpec, KubernetesExecutorConfig,
    ParameterType, TaskSpec, TriggerStrategy,
};
use crate::load::{DagGraph, Pipeline};
use crate::pods::{TaskEnd, TaskPod};
use crate::python::PythonEnvs;
use crate::scratch::{AttemptDir, SecretScratch};
use crate::value;

/// How long an engine may stay silent before another may take its runs over.
pub const HEARTBEAT_STALE: Duration = Duration::from_secs(60);
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// How often an executing run checks for a termination asked by another
/// process (one in this process cancels at once, through its token).
const CANCEL_CHECK_EVERY: Duration = Duration::from_millis(500);

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The data directory (`$OXFLOW_HOME`): envs, volumes and secret mounts live under it.
    pub data_dir: PathBuf,
    /// Leaf tasks executing at once, across all runs of this engine.
    pub max_parallel: usize,
    /// The interpreter for lightweight components (default: `python3` on `PATH`).
    pub python: Option<PathBuf>,
}

/// Per-run options, stored with the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunOptions {
    /// Use the cache for tasks that allow it (`--no-cache` turns it off).
    #[serde(default = "yes")]
    pub enable_cache: bool,
    /// Relative importer URIs resolve against this directory (the CLI's working directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_dir: Option<String>,
}

fn yes() -> bool {
    true
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            enable_cache: true,
            base_dir: None,
        }
    }
}

impl RunOptions {
    /// Defaults, with relative importer URIs resolved against this
    /// process's working directory (where `oxflow run` or `oxflow up` was
    /// started), as kfp.local resolves them.
    pub fn in_current_dir() -> Self {
        Self {
            base_dir: std::env::current_dir()
                .ok()
                .map(|d| d.to_string_lossy().into_owned()),
            ..Self::default()
        }
    }
}

/// What a user asks for when starting a run.
#[derive(Debug, Clone, Default)]
pub struct SubmitRequest {
    /// Owning namespace.
    pub namespace: Namespace,
    /// Run name (defaults to `<pipeline>-<time>`).
    pub display_name: Option<String>,
    /// Parameters as given (text from the CLI or JSON from the API); checked and defaulted here.
    pub parameters: BTreeMap<String, Value>,
    /// Options.
    pub options: RunOptions,
}

/// A progress event for displays.
#[derive(Debug, Clone)]
pub struct TaskEvent {
    /// Task path.
    pub path: String,
    /// Display name.
    pub display_name: String,
    /// `container`, `importer`, `dag`, `loop`, `iteration`.
    pub kind: &'static str,
    /// New state.
    pub state: TaskState,
    /// Served from the cache.
    pub cached: bool,
    /// Attempt number.
    pub attempt: i64,
}

/// Executes pipeline runs.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    runtime: Arc<dyn Runtime>,
    artifacts: ArtifactStore,
    pythons: PythonEnvs,
    slots: Arc<Semaphore>,
    slots_total: usize,
    owner: String,
    data_dir: PathBuf,
    /// Where attempts' secret files live, outside the artifact store.
    secrets: SecretScratch,
    /// Where tasks are shown as pods (the server's resource model).
    pods: std::sync::OnceLock<Arc<dyn crate::pods::TaskPods>>,
    /// PersistentVolumeClaims: the server's resource model when it set
    /// them, else one over this engine's store (`oxflow run`).
    volumes: std::sync::OnceLock<oxflow_volumes::LocalVolumes>,
}

impl Inner {
    /// The claims tasks' volumes are: those set, else claims over this
    /// engine's own store (the embedded `oxflow run`, with no server).
    fn volumes(&self) -> &oxflow_volumes::LocalVolumes {
        self.volumes.get_or_init(|| {
            let resources = oxflow_resources::Resources::new(
                self.store.clone(),
                oxflow_resources::Registry::new(oxflow_resources::builtin::kinds()),
            );
            oxflow_volumes::LocalVolumes::new(resources, self.data_dir.join("volumes"))
        })
    }
}

impl Engine {
    /// An engine over these parts.
    pub fn new(
        store: Store,
        runtime: Arc<dyn Runtime>,
        artifacts: ArtifactStore,
        config: EngineConfig,
    ) -> Self {
        let pythons = PythonEnvs::new(config.data_dir.join("envs"), config.python.clone());
        let owner = owner_id();
        // What a process that died left behind is removed before anything runs.
        let secrets = SecretScratch::new(
            config.data_dir.join("scratch").join("secrets"),
            owner.clone(),
        );
        secrets.sweep();
        crate::scratch::sweep_legacy_secrets(
            artifacts.root(),
            &config
                .data_dir
                .join("scratch")
                .join(".legacy-secrets-swept"),
        );
        Self {
            inner: Arc::new(Inner {
                store,
                runtime,
                artifacts,
                pythons,
                slots: Arc::new(Semaphore::new(config.max_parallel.max(1))),
                slots_total: config.max_parallel.max(1),
                owner,
                pods: std::sync::OnceLock::new(),
                volumes: std::sync::OnceLock::new(),
                data_dir: config.data_dir,
                secrets,
            }),
        }
    }

    /// The store behind this engine.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The artifact store behind this engine.
    pub fn artifacts(&self) -> &ArtifactStore {
        &self.inner.artifacts
    }

    /// Validates parameters and writes a PENDING run. Nothing is written if anything is wrong.
    ///
    /// The returned record's `spec` is `null`: the spec is written as text
    /// straight from `pipeline` (for a 10,000-task pipeline, its JSON value
    /// would be tens of MiB held by the caller for the whole run); read it
    /// back with [`Store::get_run`] when needed.
    pub async fn submit(&self, pipeline: &Pipeline, req: SubmitRequest) -> Result<RunRecord> {
        let run = self.prepare_without_spec(pipeline, req)?;
        let spec = pipeline.to_stored_text();
        self.inner.store.insert_run_with_spec(&run, &spec).await?;
        tracing::info!(run = %run.id, pipeline = %run.pipeline_name, "Run submitted.");
        Ok(run)
    }

    /// Validates parameters and builds the PENDING run record without
    /// writing it, for callers that add their own fields (experiment, …)
    /// before inserting it.
    pub fn prepare(&self, pipeline: &Pipeline, req: SubmitRequest) -> Result<RunRecord> {
        let mut run = self.prepare_without_spec(pipeline, req)?;
        run.spec = pipeline.to_stored_json();
        Ok(run)
    }

    /// [`Engine::prepare`] with `spec` left `null`.
    fn prepare_without_spec(&self, pipeline: &Pipeline, req: SubmitRequest) -> Result<RunRecord> {
        let params = pipeline.bind_parameters(&req.parameters)?;
        let now = Timestamp::now();
        let name = req.display_name.unwrap_or_else(|| {
            format!(
                "{}-{}",
                pipeline.spec.pipeline_info.name,
                now.to_rfc3339()
                    .replace([':', 'T'], "-")
                    .trim_end_matches('Z')
            )
        });
        let run = RunRecord {
            id: oxflow_core::new_id(),
            namespace: req.namespace,
            display_name: name,
            pipeline_name: pipeline.spec.pipeline_info.name.clone(),
            spec: Value::Null,
            parameters: Value::Object(params),
            options: serde_json::to_value(&req.options).unwrap_or_default(),
            state: RunState::Pending,
            error: None,
            outputs: json!({}),
            created_at: now,
            started_at: None,
            finished_at: None,
            owner: None,
            heartbeat_at: None,
            ..Default::default()
        };
        Ok(run)
    }

    /// Starts what `pipeline`'s lightweight components will need (the
    /// interpreter check and its warm executor) in the background, so the
    /// first task does not wait for them. Idempotent; [`Engine::execute`]
    /// calls it too, a caller that knows the pipeline early may call it sooner.
    pub fn prewarm(&self, pipeline: &Pipeline) {
        let Some(kfp_req) = first_plain_lightweight(pipeline) else {
            return;
        };
        // The base interpreter's executor starts at once, in parallel with
        // checking that it can import kfp (it nearly always can; if not, the
        // unused executor costs one idle process).
        if let Ok(base) = self.inner.pythons.base() {
            self.inner.runtime.prewarm_python(&base);
        }
        let inner = self.inner.clone();
        tokio::spawn(async move {
            if let Ok(py) = inner.pythons.interpreter(&[], &[], &kfp_req).await {
                inner.runtime.prewarm_python(&py);
            }
        });
    }

    /// Shows every task's process as a pod through `pods` from now on
    /// (once; a second call is ignored).
    pub fn set_pods(&self, pods: Arc<dyn crate::pods::TaskPods>) {
        let _ = self.inner.pods.set(pods);
    }

    /// Provides tasks' volumes (`CreatePVC`, `mount_pvc`, `DeletePVC`) as
    /// claims of `volumes` (the server's resource model, whose watchers
    /// see them); before any task used one, else ignored.
    pub fn set_volumes(&self, volumes: oxflow_volumes::LocalVolumes) {
        let _ = self.inner.volumes.set(volumes);
    }

    /// Deletes a run that is not executing: its directory in the artifact
    /// store (outputs, logs, executor files) first, then its records, so a
    /// failure leaves the run listed and the delete can be retried. The one
    /// implementation behind `oxflow runs delete` and the API's delete
    /// (through [`crate::RunController::delete_run`], which stops the run
    /// first). Returns `false` when the run's records were already gone.
    pub async fn delete_run(&self, run: &RunRecord) -> Result<bool> {
        if !run.state.is_terminal() && run.state != RunState::Pending {
            return Err(PipelineError::RunState {
                run_id: run.id.clone(),
                message: format!(
                    "the run is {}; terminate it or wait for it to finish before deleting it",
                    run.state
                ),
            });
        }
        self.inner
            .artifacts
            .delete_run(run.namespace.as_str(), &run.id)?;
        let deleted = self.inner.store.delete_run(&run.id).await?;
        if let Some(pods) = self.inner.pods.get() {
            pods.run_deleted(&run.namespace, &run.id).await;
        }
        tracing::info!(run = %run.id, "Run deleted.");
        Ok(deleted)
    }

    /// Finds runs whose engine died (RUNNING with a dead owner): their
    /// interrupted tasks are marked FAILED and the run goes back to PENDING so
    /// that [`Engine::execute`] resumes it. Returns the ids it reset.
    pub async fn recover(&self) -> Result<Vec<String>> {
        let store = &self.inner.store;
        let q = oxflow_store::RunQuery {
            states: vec![RunState::Running, RunState::Canceling],
            limit: Some(10_000),
            ..Default::default()
        };
        let mut reset = Vec::new();
        let now = Timestamp::now();
        for mut run in store.list_runs(&q).await? {
            if owner_alive(run.owner.as_deref(), run.heartbeat_at, now) {
                continue;
            }
            for mut t in store.list_tasks(&run.id).await? {
                if t.state == TaskState::Running || t.state == TaskState::Pending {
                    t.state = TaskState::Failed;
                    t.error = Some(format!(
                        "interrupted: the Oxflow process running this task stopped (attempt {})",
                        t.attempt
                    ));
                    t.finished_at = Some(now);
                    store.upsert_task(&t).await?;
                }
            }
            if run.state == RunState::Canceling {
                run.state = RunState::Canceled;
                run.finished_at = Some(now);
            } else {
                run.state = RunState::Pending;
                run.error = Some("interrupted: the engine stopped; the run will resume".into());
            }
            run.owner = None;
            run.heartbeat_at = None;
            store.update_run(&run).await?;
            tracing::warn!(run = %run.id, "Recovered an interrupted run.");
            reset.push(run.id);
        }
        Ok(reset)
    }

    /// Executes (or resumes) a run until it ends. Cancelling `cancel` stops
    /// its tasks and ends the run CANCELED.
    pub async fn execute(
        &self,
        run_id: &str,
        events: Option<UnboundedSender<TaskEvent>>,
        cancel: CancellationToken,
    ) -> Result<RunRecord> {
        let store = &self.inner.store;
        let mut run = match store.get_run_without_spec(run_id).await? {
            Some(run) => run,
            None => {
                // A prefix: resolve it, then keep only what execution needs.
                let mut run = store.find_run(run_id).await?;
                run.spec = Value::Null;
                run
            }
        };
        if run.state.is_terminal() {
            return Ok(run);
        }
        let now = Timestamp::now();
        let stale = Timestamp(now.0 - HEARTBEAT_STALE.as_millis() as i64);
        if !store
            .claim_run(&run.id, &self.inner.owner, now, stale)
            .await?
        {
            return Err(PipelineError::RunState {
                run_id: run.id,
                message: "another Oxflow process is executing this run".into(),
            });
        }
        // Read straight into the typed structs: the JSON form of a large
        // pipeline is several times bigger (update_run never writes the spec).
        let spec_text =
            store
                .get_run_spec_text(&run.id)
                .await?
                .ok_or_else(|| PipelineError::RunState {
                    run_id: run.id.clone(),
                    message: "the run disappeared while starting".into(),
                })?;
        let pipeline = Pipeline::from_stored_text(&spec_text, &format!("run {}", run.id))?;
        drop(spec_text);
        let opts: RunOptions = serde_json::from_value(run.options.clone()).unwrap_or_default();
        let existing: HashMap<String, TaskRecord> = store
            .list_tasks(&run.id)
            .await?
            .into_iter()
            .map(|t| (t.path.clone(), t))
            .collect();
        run.state = RunState::Running;
        run.error = None;
        run.started_at.get_or_insert(now);
        run.owner = Some(self.inner.owner.clone());
        run.heartbeat_at = Some(now);
        durable("recording the run's start", || store.update_run(&run)).await?;
        tracing::info!(run = %run.id, resumed = !existing.is_empty(), "Run started.");
        // A terminate is stored intent (CANCELING), asked by this process or
        // any other: watch the run's state for it while it executes.
        let cancel_watch = {
            let store = store.clone();
            let run_id = run.id.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                loop {
                    match store.run_state(&run_id).await {
                        Ok(Some(RunState::Canceling)) => {
                            tracing::info!(run = %run_id, "Run termination requested; stopping its tasks.");
                            cancel.cancel();
                            return;
                        }
                        Ok(_) => {}
                        Err(e) => tracing::debug!(error = %e, "Checking for a termination failed."),
                    }
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(CANCEL_CHECK_EVERY) => {}
                    }
                }
            })
        };

        let heartbeat = {
            let store = store.clone();
            let owner = self.inner.owner.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(HEARTBEAT_EVERY).await;
                    if let Err(e) = store.heartbeat(&owner, Timestamp::now()).await {
                        tracing::warn!(error = %e, "Heartbeat failed.");
                    }
                }
            })
        };
        // The context needs the run's identity, not a second copy of its spec.
        let mut run_meta = run.clone();
        run_meta.spec = Value::Null;
        let ctx = Arc::new(RunCtx {
            engine: self.inner.clone(),
            run: run_meta,
            pipeline,
            opts,
            existing,
            cancel: cancel.clone(),
            events,
            digests: Mutex::new(HashMap::new()),
        });
        // Overlap finding the interpreter and starting its warm executor with
        // the first task's setup.
        self.prewarm(&ctx.pipeline);
        let root_params = match &run.parameters {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        let scope = Scope {
            params: root_params,
            artifacts: BTreeMap::new(),
        };
        let outcome = run_dag(ctx.clone(), None, Arc::new(scope), String::new()).await;
        heartbeat.abort();
        cancel_watch.abort();

        // `run` is this engine's copy (its spec already dropped); re-reading
        // the record would load the whole spec again at the run's peak.
        // update_run writes only status fields, so nothing newer is lost.
        drop(ctx);
        let end = Timestamp::now();
        run.finished_at = Some(end);
        run.owner = None;
        run.heartbeat_at = None;
        match outcome {
            Ok(res) => {
                run.state = match res.state {
                    TaskState::Succeeded | TaskState::Skipped => RunState::Succeeded,
                    TaskState::Canceled => RunState::Canceled,
                    _ => RunState::Failed,
                };
                if cancel.is_cancelled() && run.state != RunState::Succeeded {
                    run.state = RunState::Canceled;
                }
                run.error = res.error;
                let mut outs = Map::new();
                for (k, v) in res.outputs.params {
                    outs.insert(k, v);
                }
                for (k, v) in res.outputs.artifacts {
                    outs.insert(k, Value::Array(v));
                }
                run.outputs = Value::Object(outs);
            }
            Err(e) => {
                run.state = RunState::Failed;
                run.error = Some(e.to_string());
            }
        }
        durable("recording the run's end", || store.update_run(&run)).await?;
        tracing::info!(run = %run.id, state = %run.state, "Run finished.");
        Ok(run)
    }
}

/// Runs a store write the engine must not drop, retrying it while the store
/// says the failure is transient (a full disk, an I/O error, a lock held
/// too long, the database unreachable): the run waits, and continues by
/// itself once the cause goes away, instead of failing a task that worked
/// or leaving its run RUNNING with nobody to finish it. Other errors are
/// returned at once.
async fn durable<T, F, Fut>(
    what: &str,
    mut write: F,
) -> std::result::Result<T, oxflow_store::StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, oxflow_store::StoreError>>,
{
    let mut delay = Duration::from_millis(100);
    loop {
        match write().await {
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "Store write failed while {what}; retrying.");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// The kfp requirement of the first lightweight component without
/// `packages_to_install`, if the pipeline has one.
fn first_plain_lightweight(p: &Pipeline) -> Option<String> {
    p.spec.deployment_spec.executors.values().find_map(|e| {
        let lw = executor::classify(&e.container.as_ref()?.command)?;
        lw.packages.is_empty().then(|| kfp_requirement(&lw, p))
    })
}

fn kfp_requirement(lw: &executor::Lightweight, p: &Pipeline) -> String {
    lw.kfp_requirement.clone().unwrap_or_else(|| {
        let v = p.spec.sdk_version.trim_start_matches("kfp-");
        if v.is_empty() {
            "kfp".to_owned()
        } else {
            format!("kfp=={v}")
        }
    })
}

use oxflow_runtime::owner::{hostname, owner_id};

/// Whether the engine that claimed a run still exists.
fn owner_alive(owner: Option<&str>, heartbeat: Option<Timestamp>, now: Timestamp) -> bool {
    oxflow_runtime::owner::owner_alive(owner, heartbeat, now, HEARTBEAT_STALE)
}

struct RunCtx {
    engine: Arc<Inner>,
    run: RunRecord,
    pipeline: Pipeline,
    opts: RunOptions,
    existing: HashMap<String, TaskRecord>,
    cancel: CancellationToken,
    events: Option<UnboundedSender<TaskEvent>>,
    /// Content digests of artifacts produced in this run, by URI (for cache keys).
    digests: Mutex<HashMap<String, Option<String>>>,
}

#[derive(Debug, Clone, Default)]
struct Scope {
    params: Map<String, Value>,
    artifacts: BTreeMap<String, Vec<Value>>,
}

#[derive(Debug, Clone)]
struct NodeResult {
    state: TaskState,
    outputs: LeafOutputs,
    error: Option<String>,
}

impl NodeResult {
    fn new(state: TaskState, error: Option<String>) -> Self {
        Self {
            state,
            outputs: LeafOutputs::default(),
            error,
        }
    }
}

/// A task's id: stable for a (run, path), so a resumed run keeps its task ids.
fn task_id(run_id: &str, path: &str) -> String {
    let mut h = Sha256::new();
    h.update(run_id.as_bytes());
    h.update([0]);
    h.update(path.as_bytes());
    let b = h.finalize();
    let x = hex::encode(&b[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

impl RunCtx {
    /// Values for `{{$.pipeline_job_name}}`, `{{$.pipeline_task_uuid}}` and friends.
    fn job_info(&self, task_name: &str, path: &str) -> JobInfo {
        let run_dir = self
            .engine
            .artifacts
            .run_dir(self.run.namespace.as_str(), &self.run.id);
        JobInfo {
            job_name: self.run.display_name.clone(),
            job_resource_name: self.run.id.clone(),
            job_uuid: self.run.id.clone(),
            task_name: task_name.to_owned(),
            task_uuid: self
                .existing
                .get(path)
                .map(|t| t.id.clone())
                .unwrap_or_else(|| task_id(&self.run.id, path)),
            pipeline_root: run_dir.to_string_lossy().into_owned(),
            create_time: self.run.created_at.to_rfc3339(),
            schedule_time: self.run.created_at.to_rfc3339(),
            workspace_path: run_dir
                .join(path)
                .join(INTERNAL_DIR)
                .join("work")
                .to_string_lossy()
                .into_owned(),
        }
    }
    fn emit(&self, t: &TaskRecord, kind: &'static str) {
        if let Some(tx) = &self.events {
            let _ = tx.send(TaskEvent {
                path: t.path.clone(),
                display_name: t.display_name.clone(),
                kind,
                state: t.state,
                cached: t.cached,
                attempt: t.attempt,
            });
        }
    }

    fn new_task(&self, path: &str, name: &str, display: &str, kind: &'static str) -> TaskRecord {
        let parent = path
            .rsplit_once('/')
            .map(|(p, _)| p.to_owned())
            .unwrap_or_default();
        let existing = self.existing.get(path);
        TaskRecord {
            id: existing
                .map(|t| t.id.clone())
                .unwrap_or_else(|| task_id(&self.run.id, path)),
            run_id: self.run.id.clone(),
            path: path.to_owned(),
            parent_path: parent,
            name: name.to_owned(),
            display_name: if display.is_empty() {
                name.to_owned()
            } else {
                display.to_owned()
            },
            kind: kind.to_owned(),
            state: TaskState::Pending,
            attempt: 0,
            cached: false,
            inputs: json!({}),
            outputs: json!({}),
            error: None,
            log_path: None,
            cache_key: None,
            created_at: existing
                .map(|t| t.created_at)
                .unwrap_or_else(Timestamp::now),
            started_at: None,
            finished_at: None,
        }
    }

    async fn save(&self, t: &TaskRecord, kind: &'static str) -> Result<()> {
        durable("recording a task", || self.engine.store.upsert_task(t)).await?;
        self.emit(t, kind);
        Ok(())
    }

    /// Records a terminal state for a task that did not execute (skipped, failed before start).
    async fn settle(
        &self,
        path: &str,
        spec: &TaskSpec,
        name: &str,
        kind: &'static str,
        state: TaskState,
        error: Option<String>,
    ) -> Result<NodeResult> {
        let mut t = self.new_task(path, name, &spec.task_info.name, kind);
        t.state = state;
        t.error = error.clone();
        t.finished_at = Some(Timestamp::now());
        self.save(&t, kind).await?;
        Ok(NodeResult::new(state, error))
    }
}

/// What [`run_dag`] knows of its tasks while it runs, by task index (see
/// [`DagGraph`]). A finished task's result (its outputs) is kept only until
/// every task downstream of it has started, and for the end if the DAG's
/// outputs select it; its state is kept as one byte. The engine's memory
/// for a long DAG then grows by a few bytes per task, not by every task's
/// outputs.
struct DagBook {
    /// Upstream tasks not finished yet.
    waiting: Vec<u32>,
    /// Downstream tasks that have not read the result yet (one more, never
    /// released, when a DAG output selects the task).
    readers: Vec<u32>,
    /// Terminal state of each finished task.
    states: Vec<Option<TaskState>>,
    /// Results still to be read.
    results: HashMap<usize, NodeResult>,
    /// Tasks whose upstream tasks have all finished, in the order they became ready.
    ready: VecDeque<usize>,
}

impl DagBook {
    fn new(graph: &DagGraph, dag: &crate::ir::DagSpec) -> Self {
        let n = graph.len();
        let waiting: Vec<u32> = (0..n).map(|t| graph.upstream(t).len() as u32).collect();
        let mut readers: Vec<u32> = (0..n).map(|t| graph.downstream(t).len() as u32).collect();
        let selected = dag
            .outputs
            .parameters
            .values()
            .flat_map(|o| {
                let one = o.value_from_parameter.iter();
                let oneof = o
                    .value_from_oneof
                    .iter()
                    .flat_map(|s| &s.parameter_selectors);
                one.chain(oneof).map(|s| s.producer_subtask.as_str())
            })
            .chain(
                dag.outputs
                    .artifacts
                    .values()
                    .flat_map(|o| &o.artifact_selectors)
                    .map(|s| s.producer_subtask.as_str()),
            );
        for name in selected {
            if let Some(t) = dag.tasks.index_of(name) {
                readers[t] = readers[t].saturating_add(1);
            }
        }
        let ready = (0..n).filter(|t| waiting[*t] == 0).collect();
        Self {
            waiting,
            readers,
            states: vec![None; n],
            results: HashMap::new(),
            ready,
        }
    }

    /// Task `t` has read its upstream results (or will not need them).
    fn release_upstream(&mut self, graph: &DagGraph, t: usize) {
        for &u in graph.upstream(t) {
            let r = &mut self.readers[u as usize];
            *r = r.saturating_sub(1);
            if *r == 0 {
                self.results.remove(&(u as usize));
            }
        }
    }

    /// Task `t` ended with `r`: its dependents may become ready.
    fn finish(&mut self, graph: &DagGraph, t: usize, r: NodeResult) {
        self.states[t] = Some(r.state);
        if self.readers[t] > 0 {
            self.results.insert(t, r);
        }
        for &d in graph.downstream(t) {
            let w = &mut self.waiting[d as usize];
            *w -= 1;
            if *w == 0 {
                self.ready.push_back(d as usize);
            }
        }
    }
}

/// Runs the DAG of component `comp_name` (the root when `None`) in `scope`.
fn run_dag(
    ctx: Arc<RunCtx>,
    comp_name: Option<String>,
    scope: Arc<Scope>,
    prefix: String,
) -> BoxFuture<'static, Result<NodeResult>> {
    Box::pin(async move {
        let spec = &ctx.pipeline.spec;
        let comp = match &comp_name {
            None => &spec.root,
            Some(n) => spec.components.get(n).ok_or_else(|| {
                PipelineError::invalid("run", format!("components.{n}"), "missing")
            })?,
        };
        let Some(dag) = &comp.dag else {
            return Err(PipelineError::invalid(
                "run",
                "dag",
                "component is not a DAG",
            ));
        };
        let graph = DagGraph::new(dag);
        let mut book = DagBook::new(&graph, dag);
        let mut running = FuturesUnordered::new();
        // The first task that failed, with its error: later tasks are
        // skipped because of it, and it is the DAG's error.
        let mut first_failure: Option<(usize, Option<String>)> = None;
        // Tasks are started when they are ready and there is room, not all
        // at once: a task in flight holds its inputs, records and future,
        // and a 10,000-wide DAG would otherwise hold 10,000 of them while
        // they wait for the engine's slots. As for loops, a few more than
        // the slots keeps the slots busy.
        let max_running = ctx.engine.slots_total.saturating_mul(4).max(64);

        loop {
            while running.len() < max_running
                && let Some(t) = book.ready.pop_front()
            {
                let (name, tspec) = dag.tasks.at(t);
                let path = join(&prefix, name);
                let all_completed = tspec.trigger_policy.as_ref().and_then(|p| p.strategy)
                    == Some(TriggerStrategy::AllUpstreamTasksCompleted);
                let ups = graph.upstream(t);
                let upstream_with = |f: fn(TaskState) -> bool| {
                    ups.iter()
                        .find(|u| book.states[**u as usize].is_some_and(f))
                        .map(|u| dag.tasks.at(*u as usize).0)
                };
                let upstream_failed =
                    upstream_with(|s| matches!(s, TaskState::Failed | TaskState::Canceled));
                let upstream_skipped = upstream_with(|s| s == TaskState::Skipped);
                let kind = task_kind(&ctx, tspec);
                let decided = if ctx.cancel.is_cancelled() {
                    Some((
                        TaskState::Canceled,
                        "the run was cancelled before this task started".to_owned(),
                    ))
                } else if all_completed {
                    None
                } else if let Some(u) = upstream_failed {
                    Some((
                        TaskState::Skipped,
                        format!("not run: upstream task {u:?} did not succeed"),
                    ))
                } else if let Some((f, _)) = &first_failure {
                    let f = dag.tasks.at(*f).0;
                    Some((TaskState::Skipped, format!("not run: task {f:?} failed")))
                } else {
                    upstream_skipped.map(|u| {
                        (
                            TaskState::Skipped,
                            format!("skipped: upstream task {u:?} was skipped"),
                        )
                    })
                };
                if let Some((state, why)) = decided {
                    book.release_upstream(&graph, t);
                    let r = ctx
                        .settle(&path, tspec, name, kind, state, Some(why))
                        .await?;
                    book.finish(&graph, t, r);
                    continue;
                }
                let upstream: HashMap<String, NodeResult> = ups
                    .iter()
                    .filter_map(|u| {
                        let r = book.results.get(&(*u as usize))?;
                        Some((dag.tasks.at(*u as usize).0.clone(), r.clone()))
                    })
                    .collect();
                book.release_upstream(&graph, t);
                let fut = run_task(
                    ctx.clone(),
                    comp_name.clone(),
                    name.to_owned(),
                    path,
                    scope.clone(),
                    upstream,
                );
                running.push(async move { (t, fut.await) });
            }
            let Some((t, res)) = running.next().await else {
                break;
            };
            let res = res?;
            if res.state == TaskState::Failed && first_failure.is_none() {
                first_failure = Some((t, res.error.clone()));
            }
            book.finish(&graph, t, res);
        }

        // The DAG's own state and outputs.
        let any = |s: TaskState| book.states.contains(&Some(s));
        let state = if any(TaskState::Failed) {
            TaskState::Failed
        } else if any(TaskState::Canceled) || ctx.cancel.is_cancelled() {
            TaskState::Canceled
        } else {
            TaskState::Succeeded
        };
        let error = first_failure.map(|(t, e)| {
            format!(
                "task {:?} failed: {}",
                dag.tasks.at(t).0,
                e.unwrap_or_default()
            )
        });
        let succeeded = |producer: &str| {
            let t = dag.tasks.index_of(producer)?;
            book.results
                .get(&t)
                .filter(|r| r.state == TaskState::Succeeded)
        };
        let mut outputs = LeafOutputs::default();
        for (oname, o) in &dag.outputs.parameters {
            let sels: Vec<_> = match (&o.value_from_parameter, &o.value_from_oneof) {
                (Some(s), _) => vec![s.clone()],
                (None, Some(one)) => one.parameter_selectors.clone(),
                _ => vec![],
            };
            for s in sels {
                if let Some(v) = succeeded(&s.producer_subtask)
                    .and_then(|r| r.outputs.params.get(&s.output_parameter_key))
                {
                    outputs.params.insert(oname.clone(), v.clone());
                    break;
                }
            }
        }
        for (oname, o) in &dag.outputs.artifacts {
            for s in &o.artifact_selectors {
                if let Some(v) = succeeded(&s.producer_subtask)
                    .and_then(|r| r.outputs.artifacts.get(&s.output_artifact_key))
                {
                    outputs.artifacts.insert(oname.clone(), v.clone());
                    break;
                }
            }
        }
        Ok(NodeResult {
            state,
            outputs,
            error,
        })
    })
}

fn task_kind(ctx: &RunCtx, t: &TaskSpec) -> &'static str {
    let comp = ctx.pipeline.spec.components.get(&t.component_ref.name);
    if t.parameter_iterator.is_some() || t.artifact_iterator.is_some() {
        "loop"
    } else if comp.is_some_and(|c| c.dag.is_some()) {
        "dag"
    } else if comp
        .and_then(|c| c.executor_label.as_ref())
        .and_then(|l| ctx.pipeline.spec.deployment_spec.executors.get(l))
        .is_some_and(|e| e.importer.is_some())
    {
        "importer"
    } else {
        "container"
    }
}

/// Executes one task of a DAG: resolves inputs, evaluates its condition, then
/// runs it as a loop, a sub-DAG or a leaf.
fn run_task(
    ctx: Arc<RunCtx>,
    dag_comp: Option<String>,
    name: String,
    path: String,
    scope: Arc<Scope>,
    upstream: HashMap<String, NodeResult>,
) -> BoxFuture<'static, Result<NodeResult>> {
    Box::pin(async move {
        let spec = &ctx.pipeline.spec;
        let parent = match &dag_comp {
            None => &spec.root,
            Some(n) => &spec.components[n],
        };
        let Some(tspec) = parent.dag.as_ref().and_then(|d| d.tasks.get(&name)) else {
            return Err(PipelineError::invalid(
                "run",
                path,
                "task vanished from the spec",
            ));
        };
        let kind = task_kind(&ctx, tspec);
        let Some(comp) = spec.components.get(&tspec.component_ref.name) else {
            return Err(PipelineError::invalid(
                "run",
                path,
                "component vanished from the spec",
            ));
        };
        let inputs = match resolve_inputs(&ctx, tspec, comp, &scope, &upstream, &name, &path) {
            Ok(i) => i,
            Err(msg) => {
                return ctx
                    .settle(&path, tspec, &name, kind, TaskState::Failed, Some(msg))
                    .await;
            }
        };
        if let Some(cond) = tspec
            .trigger_policy
            .as_ref()
            .and_then(|p| p.condition.as_ref())
        {
            let verdict = cel::parse(cond)
                .and_then(|e| cel::eval(&e, &cel::kfp_vars(&inputs.params, None)))
                .and_then(|v| match v {
                    Value::Bool(b) => Ok(b),
                    other => Err(format!(
                        "condition must be a boolean, got {}",
                        value::kind(&other)
                    )),
                });
            let settled = match verdict {
                Ok(true) => None,
                Ok(false) => Some((TaskState::Skipped, format!("condition is false: {cond}"))),
                Err(msg) => Some((TaskState::Failed, format!("condition {cond:?}: {msg}"))),
            };
            if let Some((state, why)) = settled {
                return ctx
                    .settle(&path, tspec, &name, kind, state, Some(why))
                    .await;
            }
        }
        if tspec.parameter_iterator.is_some() || tspec.artifact_iterator.is_some() {
            return run_loop(ctx.clone(), tspec.clone(), name, path, inputs).await;
        }
        if comp.dag.is_some() {
            let mut t = ctx.new_task(&path, &name, &tspec.task_info.name, "dag");
            t.state = TaskState::Running;
            t.started_at = Some(Timestamp::now());
            t.inputs = inputs_json(&inputs);
            ctx.save(&t, "dag").await?;
            let sub = Scope {
                params: inputs.params,
                artifacts: inputs.artifacts,
            };
            let res = run_dag(
                ctx.clone(),
                Some(tspec.component_ref.name.clone()),
                Arc::new(sub),
                path.clone(),
            )
            .await?;
            t.state = res.state;
            t.error = res.error.clone();
            t.outputs = outputs_json(&res.outputs);
            t.finished_at = Some(Timestamp::now());
            ctx.save(&t, "dag").await?;
            return Ok(res);
        }
        run_leaf(ctx.clone(), tspec.clone(), name, path, inputs, upstream).await
    })
}

fn inputs_json(i: &LeafInputs) -> Value {
    json!({"parameters": i.params, "artifacts": i.artifacts})
}

fn outputs_json(o: &LeafOutputs) -> Value {
    json!({"parameters": o.params, "artifacts": o.artifacts})
}

fn outputs_from_json(v: &Value) -> LeafOutputs {
    let params = v
        .get("parameters")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let artifacts = v
        .get("artifacts")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_array().cloned().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    LeafOutputs { params, artifacts }
}

/// Resolves a task's inputs from its scope and upstream results, applies
/// selectors and defaults, and casts to the component's declared types.
fn resolve_inputs(
    ctx: &RunCtx,
    t: &TaskSpec,
    comp: &ComponentSpec,
    scope: &Scope,
    upstream: &HashMap<String, NodeResult>,
    task_name: &str,
    path: &str,
) -> std::result::Result<LeafInputs, String> {
    let mut params = Map::new();
    for (name, p) in &t.inputs.parameters {
        let v = resolve_param(ctx, p, scope, upstream)
            .map_err(|m| format!("input parameter {name:?}: {m}"))?;
        let Some(mut v) = v else { continue };
        if let Some(sel) = &p.parameter_expression_selector {
            v = cel::parse(sel)
                .and_then(|e| cel::eval(&e, &cel::kfp_vars(&Map::new(), Some(&v))))
                .map_err(|m| format!("input parameter {name:?}: selector {sel:?}: {m}"))?;
        }
        params.insert(name.clone(), v);
    }
    // f-string inputs refer to sibling inputs through placeholders.
    let snapshot = params.clone();
    for v in params.values_mut() {
        if let Value::String(s) = v
            && s.contains("{{$.inputs.parameters[")
        {
            let li = LeafInputs {
                params: snapshot.clone(),
                artifacts: BTreeMap::new(),
            };
            let ph = Placeholders {
                inputs: &li,
                plan: &OutputPlan::default(),
                job: &JobInfo::default(),
                executor_input_json: String::new(),
            };
            *s = ph.substitute(s);
        }
    }
    let mut out = LeafInputs::default();
    // A loop's item input is bound per iteration, not by the loop task.
    let item_input = t
        .parameter_iterator
        .as_ref()
        .map(|i| i.item_input.as_str())
        .or(t.artifact_iterator.as_ref().map(|i| i.item_input.as_str()));
    for (name, def) in &comp.input_definitions.parameters {
        if Some(name.as_str()) == item_input {
            continue;
        }
        let v = match params.remove(name) {
            Some(v) => v,
            None => match &def.default_value {
                Some(d) => d.clone(),
                None if def.is_optional => continue,
                None => {
                    return Err(format!(
                        "input parameter {name:?} has no value and no default"
                    ));
                }
            },
        };
        let v = value::coerce(def.parameter_type, &v)
            .map_err(|m| format!("input parameter {name:?}: {m}"))?;
        out.params.insert(name.clone(), v);
    }
    // Defaults and constants may be run/task placeholders
    // (`dsl.PIPELINE_JOB_NAME_PLACEHOLDER` as a default value).
    if out
        .params
        .values()
        .any(|v| v.as_str().is_some_and(|s| s.contains("{{$.")))
    {
        let job = ctx.job_info(task_name, path);
        let empty = LeafInputs::default();
        let ph = Placeholders {
            inputs: &empty,
            plan: &OutputPlan::default(),
            job: &job,
            executor_input_json: String::new(),
        };
        for v in out.params.values_mut() {
            if let Value::String(s) = v
                && s.contains("{{$.")
            {
                *s = ph.substitute(s);
            }
        }
    }
    for (name, a) in &t.inputs.artifacts {
        let arts = if let Some(to) = &a.task_output_artifact {
            match upstream.get(&to.producer_task) {
                Some(r) if r.state == TaskState::Succeeded => {
                    r.outputs.artifacts.get(&to.output_artifact_key).cloned()
                }
                _ => None,
            }
        } else if let Some(ci) = &a.component_input_artifact {
            scope.artifacts.get(ci).cloned()
        } else {
            None
        };
        if let Some(arts) = arts {
            out.artifacts.insert(name.clone(), arts);
        }
    }
    for (name, def) in &comp.input_definitions.artifacts {
        if !out.artifacts.contains_key(name)
            && !def.is_optional
            && Some(name.as_str()) != item_input
        {
            return Err(format!("input artifact {name:?} has no value"));
        }
    }
    Ok(out)
}

fn resolve_param(
    ctx: &RunCtx,
    p: &InputParameterSpec,
    scope: &Scope,
    upstream: &HashMap<String, NodeResult>,
) -> std::result::Result<Option<Value>, String> {
    if let Some(ci) = &p.component_input_parameter {
        return Ok(scope.params.get(ci).cloned());
    }
    if let Some(to) = &p.task_output_parameter {
        return match upstream.get(&to.producer_task) {
            Some(r) if r.state == TaskState::Succeeded => {
                match r.outputs.params.get(&to.output_parameter_key) {
                    Some(v) => Ok(Some(v.clone())),
                    None => Err(format!(
                        "task {:?} produced no output {:?}",
                        to.producer_task, to.output_parameter_key
                    )),
                }
            }
            _ => Ok(None),
        };
    }
    if let Some(rv) = &p.runtime_value {
        return Ok(Some(rv.constant.clone()));
    }
    if let Some(fs) = &p.task_final_status {
        let r = upstream.get(&fs.producer_task);
        let state = match r.map(|r| r.state) {
            Some(TaskState::Succeeded) | Some(TaskState::Skipped) => "SUCCEEDED",
            Some(TaskState::Canceled) => "CANCELLED",
            _ => "FAILED",
        };
        let mut status = json!({
            "state": state,
            "pipeline_task_name": fs.producer_task,
            "pipeline_job_resource_name": ctx.run.id,
        });
        if state != "SUCCEEDED" {
            let msg = r
                .and_then(|r| r.error.clone())
                .unwrap_or_else(|| format!("Task {} failed.", fs.producer_task));
            status["error"] = json!({"code": 1, "message": msg});
        }
        return Ok(Some(status));
    }
    Ok(None)
}

/// Fans a loop out over its items; iterations run up to `parallelismLimit`
/// at a time and their outputs are collected in iteration order.
async fn run_loop(
    ctx: Arc<RunCtx>,
    t: TaskSpec,
    name: String,
    path: String,
    inputs: LeafInputs,
) -> Result<NodeResult> {
    let mut rec = ctx.new_task(&path, &name, &t.task_info.name, "loop");
    rec.state = TaskState::Running;
    rec.started_at = Some(Timestamp::now());
    rec.inputs = inputs_json(&inputs);
    ctx.save(&rec, "loop").await?;
    let comp_name = t.component_ref.name.clone();
    let comp = &ctx.pipeline.spec.components[&comp_name];

    // The items and the input each one binds to.
    let items: std::result::Result<(String, Vec<Scope>), String> = (|| {
        if let Some(it) = &t.parameter_iterator {
            let list = if let Some(raw) = &it.items.raw {
                serde_json::from_str::<Value>(raw).map_err(|e| format!("items.raw: {e}"))?
            } else {
                let ip = it.items.input_parameter.as_deref().unwrap_or_default();
                let v = inputs
                    .params
                    .get(ip)
                    .cloned()
                    .ok_or_else(|| format!("loop input {ip:?} has no value"))?;
                match v {
                    Value::String(s) => serde_json::from_str::<Value>(&s)
                        .map_err(|e| format!("loop input {ip:?} is not a JSON list: {e}"))?,
                    other => other,
                }
            };
            let Value::Array(list) = value::normalize_numbers(list) else {
                return Err("loop items are not a list".to_owned());
            };
            let item_ty = comp
                .input_definitions
                .parameters
                .get(&it.item_input)
                .map(|d| d.parameter_type);
            let scopes = list
                .into_iter()
                .map(|item| {
                    let mut s = Scope {
                        params: inputs.params.clone(),
                        artifacts: inputs.artifacts.clone(),
                    };
                    let item = match item_ty {
                        Some(ty) => value::coerce(ty, &item).unwrap_or(item),
                        None => item,
                    };
                    s.params.insert(it.item_input.clone(), item);
                    s
                })
                .collect();
            Ok((it.item_input.clone(), scopes))
        } else if let Some(it) = &t.artifact_iterator {
            let arts = inputs
                .artifacts
                .get(&it.items.input_artifact)
                .cloned()
                .unwrap_or_default();
            let scopes = arts
                .into_iter()
                .map(|a| {
                    let mut s = Scope {
                        params: inputs.params.clone(),
                        artifacts: inputs.artifacts.clone(),
                    };
                    s.artifacts.insert(it.item_input.clone(), vec![a]);
                    s
                })
                .collect();
            Ok((it.item_input.clone(), scopes))
        } else {
            Err("not a loop".to_owned())
        }
    })();
    let scopes = match items {
        Ok((_, s)) => s,
        Err(msg) => {
            rec.state = TaskState::Failed;
            rec.error = Some(msg.clone());
            rec.finished_at = Some(Timestamp::now());
            ctx.save(&rec, "loop").await?;
            return Ok(NodeResult::new(TaskState::Failed, Some(msg)));
        }
    };
    let n = scopes.len();
    // Unlimited loops are still bounded by the engine's slots; keeping a
    // few more iterations in flight than slots keeps them busy without
    // holding thousands of iteration records open at once.
    let in_flight = ctx.engine.slots_total.saturating_mul(4).max(64);
    let limit = t
        .iterator_policy
        .as_ref()
        .map(|p| p.parallelism_limit)
        .filter(|l| *l > 0)
        .map(|l| l as usize)
        .unwrap_or(in_flight)
        .clamp(1, n.max(1));
    let iterations = futures::stream::iter(scopes.into_iter().enumerate().map(|(i, s)| {
        let ctx = ctx.clone();
        let comp_name = comp_name.clone();
        let ipath = join(&path, &i.to_string());
        async move {
            let mut it = ctx.new_task(
                &ipath,
                &i.to_string(),
                &format!("iteration {i}"),
                "iteration",
            );
            it.state = TaskState::Running;
            it.started_at = Some(Timestamp::now());
            ctx.save(&it, "iteration").await?;
            let r = run_dag(ctx.clone(), Some(comp_name), Arc::new(s), ipath).await?;
            it.state = r.state;
            it.error = r.error.clone();
            it.outputs = outputs_json(&r.outputs);
            it.finished_at = Some(Timestamp::now());
            ctx.save(&it, "iteration").await?;
            Ok::<_, PipelineError>(r)
        }
    }))
    .buffered(limit)
    .collect::<Vec<_>>()
    .await;
    let mut results = Vec::with_capacity(n);
    for r in iterations {
        results.push(r?);
    }
    let mut outputs = LeafOutputs::default();
    for (oname, def) in &comp.output_definitions.parameters {
        let collected: Vec<Value> = results
            .iter()
            .filter_map(|r| r.outputs.params.get(oname).cloned())
            .collect();
        let v = if def.parameter_type == ParameterType::List {
            Value::Array(collected)
        } else {
            collected.into_iter().last().unwrap_or(Value::Null)
        };
        outputs.params.insert(oname.clone(), v);
    }
    for oname in comp.output_definitions.artifacts.keys() {
        let collected: Vec<Value> = results
            .iter()
            .filter_map(|r| r.outputs.artifacts.get(oname))
            .flatten()
            .cloned()
            .collect();
        outputs.artifacts.insert(oname.clone(), collected);
    }
    let state = if results.iter().any(|r| r.state == TaskState::Failed) {
        TaskState::Failed
    } else if results.iter().any(|r| r.state == TaskState::Canceled) {
        TaskState::Canceled
    } else {
        TaskState::Succeeded
    };
    let error = results
        .iter()
        .find_map(|r| r.error.clone().filter(|_| r.state == TaskState::Failed));
    rec.state = state;
    rec.error = error.clone();
    rec.outputs = outputs_json(&outputs);
    rec.finished_at = Some(Timestamp::now());
    ctx.save(&rec, "loop").await?;
    Ok(NodeResult {
        state,
        outputs,
        error,
    })
}

/// Parses KFP durations (`"1s"`, `"1.5s"`, `"10m"`, `"1h"`, `"250ms"`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num.trim().parse().ok()?;
    (v >= 0.0 && v.is_finite()).then(|| Duration::from_secs_f64(v * mult))
}

/// The delay before retry number `retry` (0 for the first retry).
pub fn backoff(policy: &crate::ir::RetryPolicy, retry: u32) -> Duration {
    let base = policy
        .backoff_duration
        .as_deref()
        .and_then(parse_duration)
        .unwrap_or(Duration::ZERO);
    let factor = policy.backoff_factor.filter(|f| *f >= 1.0).unwrap_or(2.0);
    let max = policy
        .backoff_max_duration
        .as_deref()
        .and_then(parse_duration)
        .unwrap_or(Duration::from_secs(3600));
    let d = base.as_secs_f64() * factor.powi(retry as i32);
    Duration::from_secs_f64(d.min(max.as_secs_f64()))
}

/// Executes a leaf (container or importer), with caching and retries.
async fn run_leaf(
    ctx: Arc<RunCtx>,
    t: TaskSpec,
    name: String,
    path: String,
    inputs: LeafInputs,
    upstream: HashMap<String, NodeResult>,
) -> Result<NodeResult> {
    let spec = &ctx.pipeline.spec;
    let comp = &spec.components[&t.component_ref.name];
    let label = comp.executor_label.clone().unwrap_or_default();
    let exec: &ExecutorSpec = &spec.deployment_spec.executors[&label];
    let kind = if exec.importer.is_some() {
        "importer"
    } else {
        "container"
    };

    // Resume: a leaf that already succeeded keeps its outputs.
    if let Some(prev) = ctx.existing.get(&path)
        && prev.state == TaskState::Succeeded
    {
        let outputs = outputs_from_json(&prev.outputs);
        ctx.emit(prev, kind);
        return Ok(NodeResult {
            state: TaskState::Succeeded,
            outputs,
            error: None,
        });
    }
    let mut rec = ctx.new_task(&path, &name, &t.task_info.name, kind);
    rec.inputs = inputs_json(&inputs);
    rec.started_at = Some(Timestamp::now());

    if let Some(imp) = &exec.importer {
        let uri = match (
            &imp.artifact_uri.constant,
            &imp.artifact_uri.runtime_parameter,
        ) {
            (Some(c), _) => Some(value::to_text(c)),
            (None, Some(p)) => inputs.params.get(p).map(value::to_text),
            _ => None,
        };
        let Some(mut uri) = uri.filter(|u| !u.is_empty()) else {
            return ctx
                .settle(
                    &path,
                    &t,
                    &name,
                    kind,
                    TaskState::Failed,
                    Some("importer has no artifact URI".into()),
                )
                .await;
        };
        if !uri.contains("://") && !uri.starts_with('/') {
            let base = ctx.opts.base_dir.clone().unwrap_or_else(|| ".".into());
            uri = Path::new(&base).join(&uri).to_string_lossy().into_owned();
        }
        let meta = imp.metadata.clone().unwrap_or_else(|| json!({}));
        let art = executor::runtime_artifact("artifact", &imp.type_schema, &uri, meta.clone());
        let digest = ctx.engine.artifacts.digest(&uri).ok().flatten();
        let mut outputs = LeafOutputs::default();
        outputs.artifacts.insert("artifact".into(), vec![art]);
        rec.state = TaskState::Succeeded;
        rec.attempt = 1;
        rec.outputs = outputs_json(&outputs);
        rec.finished_at = Some(Timestamp::now());
        let ar = ArtifactRecord {
            id: oxflow_core::new_id(),
            namespace: ctx.run.namespace.clone(),
            run_id: ctx.run.id.clone(),
            task_path: path.clone(),
            output_key: "artifact".into(),
            name: "artifact".into(),
            uri: uri.clone(),
            schema_title: imp.type_schema.schema_title.clone(),
            metadata: meta,
            digest: digest.clone(),
            created_at: Timestamp::now(),
        };
        ctx.digests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uri, digest);
        durable("recording a finished task", || {
            ctx.engine
                .store
                .finish_task(&rec, std::slice::from_ref(&ar), None)
        })
        .await?;
        ctx.emit(&rec, kind);
        return Ok(NodeResult {
            state: TaskState::Succeeded,
            outputs,
            error: None,
        });
    }
    let Some(container) = exec.container.clone() else {
        return ctx
            .settle(
                &path,
                &t,
                &name,
                kind,
                TaskState::Failed,
                Some("executor has no container".into()),
            )
            .await;
    };
    let k8s = ctx
        .pipeline
        .kubernetes
        .get(&label)
        .cloned()
        .unwrap_or_default();

    if container.image.starts_with("argostub/createpvc")
        || container.image.starts_with("argostub/deletepvc")
    {
        return run_pvc_stub(&ctx, &container, rec, kind, inputs).await;
    }

    // Where this task's files go.
    let task_dir = ctx
        .engine
        .artifacts
        .run_dir(ctx.run.namespace.as_str(), &ctx.run.id)
        .join(&path);
    let kfp_dir = task_dir.join(INTERNAL_DIR);
    let mut plan = OutputPlan {
        output_file: kfp_dir.join("executor_output.json"),
        ..Default::default()
    };
    for (pname, def) in &comp.output_definitions.parameters {
        plan.params.insert(
            pname.clone(),
            (def.parameter_type, kfp_dir.join("params").join(pname)),
        );
    }
    for (aname, def) in &comp.output_definitions.artifacts {
        let uri =
            ctx.engine
                .artifacts
                .output_uri(ctx.run.namespace.as_str(), &ctx.run.id, &path, aname);
        plan.artifacts.insert(
            aname.clone(),
            executor::runtime_artifact(aname, &def.artifact_type, &uri, json!({})),
        );
    }
    let log_path = kfp_dir.join("log");
    rec.log_path = Some(log_path.to_string_lossy().into_owned());

    // A slot is taken before the task touches the store or starts: a
    // 10,000-wide DAG then has at most `max_parallel` tasks in flight, not
    // 10,000 store writes queued on the connection pool.
    let mut permit = Some(
        ctx.engine
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| PipelineError::RunState {
                run_id: ctx.run.id.clone(),
                message: format!("the engine is shutting down: {e}"),
            })?,
    );

    // Cache lookup (the key digests input artifacts, so only when caching).
    let caching =
        ctx.opts.enable_cache && t.caching_options.as_ref().is_some_and(|c| c.enable_cache);
    let cache_key = caching.then(|| {
        cache_key(
            &ctx,
            comp,
            &container,
            &k8s,
            &inputs,
            t.caching_options
                .as_ref()
                .and_then(|c| c.cache_key.as_deref()),
        )
    });
    rec.cache_key = cache_key.clone();
    if let Some(cache_key) = &cache_key
        && let Some(entry) = ctx
            .engine
            .store
            .get_cache(&ctx.run.namespace, cache_key)
            .await?
    {
        if cache_entry_valid(&ctx, &entry) {
            let outputs = outputs_from_json(&entry.outputs);
            rec.state = TaskState::Succeeded;
            rec.cached = true;
            rec.attempt = 1;
            rec.outputs = outputs_json(&outputs);
            rec.finished_at = Some(Timestamp::now());
            let arts = artifact_records(&ctx, &path, comp, &outputs, &entry.outputs);
            durable("recording a finished task", || {
                ctx.engine.store.finish_task(&rec, &arts, None)
            })
            .await?;
            ctx.emit(&rec, kind);
            tracing::info!(run = %ctx.run.id, task = %path, "Cache hit.");
            return Ok(NodeResult {
                state: TaskState::Succeeded,
                outputs,
                error: None,
            });
        }
        ctx.engine
            .store
            .delete_cache(&ctx.run.namespace, cache_key)
            .await?;
    }

    // Requests and limits are recorded always, whatever the runtime enforces.
    rec.inputs["resources"] = serde_json::to_value(resources(&container)).unwrap_or_default();
    rec.inputs["enforced_limits"] =
        json!(ctx.engine.runtime.enforced_limits(&resources(&container)));
    rec.inputs["image"] = Value::String(container.image.clone());
    if !k8s.other.is_empty() {
        // Node selectors, tolerations, pod metadata: kept for the Kubernetes runtime.
        rec.inputs["kubernetes"] = serde_json::to_value(&k8s.other).unwrap_or_default();
    }
    let retry = t.retry_policy.clone().unwrap_or_default();
    let mut max_attempts = 1 + retry.max_retry_count.max(0);
    let mut attempt = 1;
    if let Some(prev) = ctx.existing.get(&path)
        && prev.state != TaskState::Pending
        && prev.attempt > 0
    {
        attempt = prev.attempt + 1;
        // An attempt cut short by Oxflow stopping is not the task's failure.
        let interrupted = prev
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("interrupted"));
        if interrupted || prev.state != TaskState::Failed {
            max_attempts = max_attempts.max(attempt);
        } else {
            max_attempts += prev.attempt;
        }
    }
    let job = ctx.job_info(&name, &path);
    // Input values may name this task's outputs
    // (`dsl.PIPELINE_TASK_EXECUTOR_OUTPUT_PATH_PLACEHOLDER` as a default).
    let mut inputs = inputs;
    if inputs
        .params
        .values()
        .any(|v| v.as_str().is_some_and(|s| s.contains("{{$.outputs")))
    {
        let snapshot = inputs.clone();
        let ph = Placeholders {
            inputs: &snapshot,
            plan: &plan,
            job: &job,
            executor_input_json: String::new(),
        };
        for v in inputs.params.values_mut() {
            if let Value::String(s) = v
                && s.contains("{{$.outputs")
            {
                *s = ph.substitute(s);
            }
        }
    }
    let ei = executor::executor_input(&inputs, &plan);
    let ph = Placeholders {
        inputs: &inputs,
        plan: &plan,
        job: &job,
        executor_input_json: ei.to_string(),
    };

    let mut last_error = String::new();
    let mut final_state = TaskState::Failed;
    let mut outputs = LeafOutputs::default();
    loop {
        if permit.is_none() {
            permit = Some(
                ctx.engine
                    .slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|e| PipelineError::RunState {
                        run_id: ctx.run.id.clone(),
                        message: format!("the engine is shutting down: {e}"),
                    })?,
            );
        }
        rec.attempt = attempt;
        rec.state = TaskState::Running;
        rec.error = None;
        rec.started_at = Some(Timestamp::now());
        rec.finished_at = None;
        ctx.save(&rec, kind).await?;
        let result = async {
            prepare_dirs(&kfp_dir, &plan)?;
            // Where the component's executor writes: checked before it
            // starts, and again if it fails, so that a directory Oxflow
            // cannot write is named in the error, not hidden in the log.
            let output_dirs = output_dirs(&kfp_dir, &plan);
            check_writable(&output_dirs)?;
            // Secret files live outside the artifact store for as long as
            // this attempt runs: dropped (removed) when this block ends,
            // however it ends.
            let mut secrets = None;
            let workload = build_workload(
                &ctx,
                &container,
                &k8s,
                &ph,
                &inputs,
                &upstream,
                &task_dir,
                &log_path,
                &path,
                &mut secrets,
            )
            .await?;
            append_log(
                &log_path,
                &format!(
                    "--- oxflow: attempt {attempt} of {max_attempts}: {} {}\n",
                    workload.program,
                    short_args(&workload.args)
                ),
            );
            // Its pod, beside the process (written in the background: a
            // step's start does not wait for it); deleting it kills this
            // attempt.
            let kill = ctx.cancel.child_token();
            let pod = ctx.engine.pods.get().map(|pods| {
                let (labels, annotations) = pod_metadata(&k8s);
                let pod = TaskPod {
                    namespace: ctx.run.namespace.clone(),
                    run_id: ctx.run.id.clone(),
                    task_path: path.clone(),
                    attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                    image: container.image.clone(),
                    command: std::iter::once(workload.program.clone())
                        .chain(workload.args.iter().cloned())
                        .collect(),
                    log_path: log_path.clone(),
                    labels,
                    annotations,
                    started: Timestamp::now(),
                };
                let start = tokio::spawn(pods.started(&pod, kill.clone()));
                (pods.clone(), pod, start)
            });
            let ran = ctx.engine.runtime.run(&workload, kill.clone()).await;
            if let Some((pods, pod, start)) = pod {
                let end = match &ran {
                    Ok(o) if o.success() => TaskEnd::Succeeded,
                    Ok(o) if o.canceled => TaskEnd::Killed,
                    Ok(o) => TaskEnd::Failed {
                        exit_code: o.exit_code.or(o.signal.map(|s| 128 + s)),
                        message: o.describe(),
                    },
                    Err(e) => TaskEnd::Failed {
                        exit_code: None,
                        message: e.to_string(),
                    },
                };
                tokio::spawn(async move {
                    let _ = start.await;
                    pods.ended(&pod, end).await;
                });
            }
            let outcome = ran.map_err(|e| match &e {
                RuntimeError::LogFile { path, error }
                | RuntimeError::WorkingDir { path, error } => cannot_write(path, error),
                _ => e.to_string(),
            })?;
            if outcome.canceled {
                if kill.is_cancelled() && !ctx.cancel.is_cancelled() {
                    return Err("its pod was deleted, which ended its process".to_owned());
                }
                return Ok(None);
            }
            if !outcome.success() {
                if let Err(msg) = check_writable(&output_dirs) {
                    return Err(format!(
                        "{msg}; the task's outputs cannot be stored there (the task failed: {})",
                        outcome.describe()
                    ));
                }
                return Err(format!(
                    "{} (see `oxflow logs {} {}`)",
                    outcome.describe(),
                    short_id(&ctx.run.id),
                    path
                ));
            }
            executor::read_outputs(comp, &plan).map(Some)
        }
        .await;
        match result {
            Ok(Some(o)) => {
                outputs = o;
                final_state = TaskState::Succeeded;
                break;
            }
            Ok(None) => {
                final_state = TaskState::Canceled;
                last_error = "canceled".into();
                break;
            }
            Err(msg) => {
                append_log(
                    &log_path,
                    &format!("--- oxflow: attempt {attempt} failed: {msg}\n"),
                );
                last_error = msg;
                if attempt >= max_attempts || ctx.cancel.is_cancelled() {
                    break;
                }
                let delay = backoff(&retry, (attempt - 1) as u32);
                // Waiting to retry is not a terminal failure.
                rec.state = TaskState::Pending;
                rec.error = Some(format!(
                    "attempt {attempt} failed, retrying in {delay:?}: {last_error}"
                ));
                rec.finished_at = Some(Timestamp::now());
                ctx.save(&rec, kind).await?;
                // The slot is free while waiting to retry.
                drop(permit.take());
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = ctx.cancel.cancelled() => {}
                }
                attempt += 1;
            }
        }
    }
    rec.state = final_state;
    rec.finished_at = Some(Timestamp::now());
    if final_state != TaskState::Succeeded {
        rec.error = Some(last_error.clone());
        ctx.save(&rec, kind).await?;
        return Ok(NodeResult::new(final_state, Some(last_error)));
    }
    // Digest what was produced, for lineage, caching and cache validation.
    let mut digests = Map::new();
    for arts in outputs.artifacts.values() {
        for a in arts {
            if let Some(uri) = a.get("uri").and_then(Value::as_str) {
                let d = ctx.engine.artifacts.digest(uri).ok().flatten();
                ctx.digests
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(uri.to_owned(), d.clone());
                digests.insert(uri.to_owned(), d.map(Value::String).unwrap_or(Value::Null));
            }
        }
    }
    let mut stored = outputs_json(&outputs);
    stored["digests"] = Value::Object(digests);
    rec.outputs = stored.clone();
    rec.error = None;
    let arts = artifact_records(&ctx, &path, comp, &outputs, &stored);
    let entry = cache_key.map(|key| CacheEntry {
        key,
        namespace: ctx.run.namespace.clone(),
        outputs: stored,
        run_id: ctx.run.id.clone(),
        task_path: path.clone(),
        created_at: Timestamp::now(),
    });
    durable("recording a finished task", || {
        ctx.engine.store.finish_task(&rec, &arts, entry.as_ref())
    })
    .await?;
    ctx.emit(&rec, kind);
    Ok(NodeResult {
        state: TaskState::Succeeded,
        outputs,
        error: None,
    })
}

/// kfp-kubernetes `podMetadata`: the labels and annotations a task's pod
/// carries.
fn pod_metadata(
    k8s: &crate::ir::KubernetesExecutorConfig,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let map = |field: &str| -> BTreeMap<String, String> {
        k8s.other
            .get("podMetadata")
            .and_then(|m| m.get(field))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    };
    (map("labels"), map("annotations"))
}

fn short_id(id: &str) -> &str {
    &id[..id.len().min(8)]
}

/// The last 8 characters of a run id, lowercased (a UUID's random part).
fn run_tail(id: &str) -> String {
    let chars: Vec<char> = id.chars().filter(char::is_ascii_alphanumeric).collect();
    chars[chars.len().saturating_sub(8)..]
        .iter()
        .collect::<String>()
        .to_ascii_lowercase()
}

fn short_args(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.len() > 60 {
                format!(
                    "{}…",
                    &a[..a.char_indices().nth(57).map(|(i, _)| i).unwrap_or(a.len())]
                )
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn append_log(path: &Path, line: &str) {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// The error of a task that failed because Oxflow itself could not write
/// one of its files: the path and what the system said, so that the cause
/// is in the task's and the run's error rather than only in the task log.
fn cannot_write(path: &Path, e: &std::io::Error) -> String {
    format!("Oxflow could not write {}: {e}", path.display())
}

/// Fresh output locations for an attempt: stale outputs of a failed attempt must not be read back.
fn prepare_dirs(kfp_dir: &Path, plan: &OutputPlan) -> std::result::Result<(), String> {
    let params = kfp_dir.join("params");
    std::fs::create_dir_all(&params).map_err(|e| cannot_write(&params, &e))?;
    let gone = |p: &Path, r: std::io::Result<()>| match r {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(cannot_write(p, &e)),
        _ => Ok(()),
    };
    gone(&plan.output_file, std::fs::remove_file(&plan.output_file))?;
    for (_, f) in plan.params.values() {
        gone(f, std::fs::remove_file(f))?;
    }
    for a in plan.artifacts.values() {
        if let Some(uri) = a.get("uri").and_then(Value::as_str) {
            let p = Path::new(uri);
            if p.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                gone(p, std::fs::remove_dir_all(p))?;
            } else {
                gone(p, std::fs::remove_file(p))?;
            }
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(|e| cannot_write(parent, &e))?;
            }
        }
    }
    Ok(())
}

/// The directories the component's executor writes into: the task's
/// internal directory (executor output), its parameter files' directory
/// when it has output parameters, and its output artifacts' parents.
fn output_dirs(kfp_dir: &Path, plan: &OutputPlan) -> Vec<PathBuf> {
    let mut dirs = vec![kfp_dir.to_path_buf()];
    if !plan.params.is_empty() {
        dirs.push(kfp_dir.join("params"));
    }
    for a in plan.artifacts.values() {
        if let Some(parent) = a
            .get("uri")
            .and_then(Value::as_str)
            .and_then(|u| Path::new(u).parent())
            && !dirs.iter().any(|d| d == parent)
        {
            dirs.push(parent.to_path_buf());
        }
    }
    dirs
}

/// Checks that a file can be created in each of `dirs` (a directory that
/// turned read-only, vanished or was replaced by a file fails), with a
/// probe file whose name the artifact API treats as internal.
fn check_writable(dirs: &[PathBuf]) -> std::result::Result<(), String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    for dir in dirs {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let probe = dir.join(format!(".oxflow-write-probe-{}-{n}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
        {
            Ok(_) => {
                let _ = std::fs::remove_file(&probe);
            }
            Err(e) => return Err(cannot_write(dir, &e)),
        }
    }
    Ok(())
}

/// Turns a container executor into a workload: placeholders resolved, the
/// lightweight preamble dropped, platform config applied.
#[allow(clippy::too_many_arguments)]
async fn build_workload(
    ctx: &RunCtx,
    c: &ContainerSpec,
    k8s: &KubernetesExecutorConfig,
    ph: &Placeholders<'_>,
    inputs: &LeafInputs,
    upstream: &HashMap<String, NodeResult>,
    task_dir: &Path,
    log_path: &Path,
    path: &str,
    secrets: &mut Option<AttemptDir>,
) -> std::result::Result<Workload, String> {
    let mut env: BTreeMap<String, String> = c
        .env
        .iter()
        .map(|e| (e.name.clone(), ph.substitute(&e.value)))
        .collect();
    let args = ph.resolve_all(&c.args)?;
    let (program, full_args, warm) = match executor::classify(&c.command) {
        Some(lw) => {
            let kfp_req = kfp_requirement(&lw, &ctx.pipeline);
            let python = ctx
                .engine
                .pythons
                .interpreter(&lw.packages, &lw.pip_options, &kfp_req)
                .await
                .map_err(|e| e.to_string())?;
            let src_dir = task_dir.join(INTERNAL_DIR);
            let src = executor::write_component_source(&src_dir, &lw.source)
                .map_err(|e| cannot_write(&src_dir.join(executor::COMPONENT_FILE), &e))?;
            env.insert("_KFP_RUNTIME".into(), "true".into());
            let mut a = vec![
                "-m".to_owned(),
                "kfp.dsl.executor_main".to_owned(),
                "--component_module_path".to_owned(),
                src.to_string_lossy().into_owned(),
            ];
            a.extend(args);
            (python.to_string_lossy().into_owned(), a, true)
        }
        None => {
            let mut cmd = ph.resolve_all(&c.command)?;
            cmd.extend(args);
            if cmd.is_empty() {
                return Err(format!(
                    "container executor for image {:?} has no command; the local runtime cannot run an image's entrypoint",
                    c.image
                ));
            }
            let program = cmd.remove(0);
            (program, cmd, false)
        }
    };
    // Secrets and volumes from the kfp-kubernetes platform spec.
    let mut mounts = Vec::new();
    for s in &k8s.secret_as_env {
        let name = secret_name(
            &s.secret_name,
            s.secret_name_parameter.as_ref(),
            inputs,
            upstream,
        );
        let Some(data) = load_secret(ctx, &name, s.optional).await? else {
            continue;
        };
        for kv in &s.key_to_env {
            match data.get(&kv.secret_key) {
                Some(v) => {
                    env.insert(kv.env_var.clone(), v.clone());
                }
                None if s.optional => {}
                None => {
                    return Err(format!(
                        "secret {name:?} in namespace {} has no key {:?}",
                        ctx.run.namespace, kv.secret_key
                    ));
                }
            }
        }
    }
    for (n, s) in k8s.secret_as_volume.iter().enumerate() {
        let name = secret_name(
            &s.secret_name,
            s.secret_name_parameter.as_ref(),
            inputs,
            upstream,
        );
        let Some(data) = load_secret(ctx, &name, s.optional).await? else {
            continue;
        };
        let attempt = match secrets {
            Some(a) => a,
            None => secrets.insert(ctx.engine.secrets.attempt().map_err(|e| {
                format!("Oxflow could not write the files of secret {name:?}: {e}")
            })?),
        };
        let dir = attempt
            .write_secret(n, &data)
            .map_err(|e| format!("Oxflow could not write the files of secret {name:?}: {e}"))?;
        mounts.push(Mount {
            source: dir,
            target: PathBuf::from(&s.mount_path),
            read_only: true,
        });
    }
    for m in &k8s.pvc_mount {
        let pvc = m
            .pvc_name_parameter
            .as_ref()
            .and_then(|p| param_value(p, inputs, upstream))
            .or_else(|| {
                m.task_output_parameter.as_ref().and_then(|to| {
                    upstream
                        .get(&to.producer_task)?
                        .outputs
                        .params
                        .get(&to.output_parameter_key)
                        .map(value::to_text)
                })
            })
            .or_else(|| m.constant.clone())
            .or_else(|| {
                m.component_input_parameter
                    .as_ref()
                    .and_then(|c| inputs.params.get(c).map(value::to_text))
            })
            .ok_or_else(|| format!("cannot resolve the PVC name for mount {:?}", m.mount_path))?;
        let dir = ctx
            .engine
            .volumes()
            .path(ctx.run.namespace.as_str(), &pvc)
            .await
            .map_err(|e| e.to_string())?;
        mounts.push(Mount {
            source: dir,
            target: PathBuf::from(&m.mount_path),
            read_only: false,
        });
    }
    for f in &k8s.field_path_as_env {
        let v = match f.field_path.as_str() {
            "metadata.name" => format!("{}-{}", short_id(&ctx.run.id), path.replace('/', "-")),
            "metadata.namespace" => ctx.run.namespace.to_string(),
            "spec.nodeName" => hostname(),
            "status.podIP" | "status.hostIP" => "127.0.0.1".to_owned(),
            "spec.serviceAccountName" => "pipeline-runner".to_owned(),
            _ => String::new(),
        };
        env.insert(f.name.clone(), v);
    }
    let timeout = k8s.active_deadline_seconds.as_ref().and_then(|v| match v {
        Value::String(s) => s.parse::<u64>().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    });
    let kubernetes = if k8s.other.is_empty() {
        None
    } else {
        Some(serde_json::to_value(&k8s.other).unwrap_or_default())
    };
    let workspace = task_dir.join(INTERNAL_DIR).join("work");
    std::fs::create_dir_all(&workspace).map_err(|e| cannot_write(&workspace, &e))?;
    Ok(Workload {
        name: format!("{}-{}", short_id(&ctx.run.id), path.replace('/', "-")),
        program,
        args: full_args,
        env,
        working_dir: Some(workspace),
        log_path: log_path.to_path_buf(),
        resources: resources(c),
        timeout: timeout.filter(|t| *t > 0).map(Duration::from_secs),
        image: Some(c.image.clone()),
        mounts,
        warm_python: warm,
        kubernetes,
    })
}

/// A secret of the run's namespace; `None` when it is missing and optional.
async fn load_secret(
    ctx: &RunCtx,
    name: &str,
    optional: bool,
) -> std::result::Result<Option<oxflow_store::SecretData>, String> {
    let data = ctx
        .engine
        .store
        .get_secret(&ctx.run.namespace, name)
        .await
        .map_err(|e| e.to_string())?;
    match data {
        Some(d) => Ok(Some(d)),
        None if optional => Ok(None),
        None => Err(format!(
            "secret {name:?} not found in namespace {ns}; create it with `oxflow secrets create {name} -n {ns} --from-literal KEY=VALUE`",
            ns = ctx.run.namespace
        )),
    }
}

fn resources(c: &ContainerSpec) -> Resources {
    let Some(r) = &c.resources else {
        return Resources::default();
    };
    let cpu = |s: &Option<String>, f: Option<f64>| {
        s.as_deref()
            .and_then(Resources::parse_cpu)
            .or_else(|| f.map(|v| (v * 1000.0).round() as u64))
    };
    let mem = |s: &Option<String>, f: Option<f64>| {
        s.as_deref()
            .and_then(Resources::parse_memory)
            .or_else(|| f.map(|v| (v * 1e9).round() as u64))
    };
    let accelerator = r.accelerator.as_ref().and_then(|a| {
        let ty = a.resource_type.clone().or_else(|| a.kind.clone())?;
        let count = a
            .resource_count
            .as_deref()
            .and_then(|c| c.parse().ok())
            .or_else(|| {
                a.count
                    .as_ref()
                    .and_then(|c| value::to_text(c).parse().ok())
            })
            .unwrap_or(1);
        Some((ty, count))
    });
    Resources {
        cpu_request_millis: cpu(&r.resource_cpu_request, r.cpu_request),
        cpu_limit_millis: cpu(&r.resource_cpu_limit, r.cpu_limit),
        memory_request_bytes: mem(&r.resource_memory_request, r.memory_request),
        memory_limit_bytes: mem(&r.resource_memory_limit, r.memory_limit),
        accelerator,
    }
}

fn param_value(
    p: &InputParameterSpec,
    inputs: &LeafInputs,
    upstream: &HashMap<String, NodeResult>,
) -> Option<String> {
    if let Some(rv) = &p.runtime_value {
        return Some(value::to_text(&rv.constant));
    }
    if let Some(ci) = &p.component_input_parameter {
        return inputs.params.get(ci).map(value::to_text);
    }
    if let Some(to) = &p.task_output_parameter {
        return upstream
            .get(&to.producer_task)?
            .outputs
            .params
            .get(&to.output_parameter_key)
            .map(value::to_text);
    }
    None
}

fn secret_name(
    legacy: &str,
    p: Option<&InputParameterSpec>,
    inputs: &LeafInputs,
    upstream: &HashMap<String, NodeResult>,
) -> String {
    p.and_then(|p| param_value(p, inputs, upstream))
        .unwrap_or_else(|| legacy.to_owned())
}

/// `kubernetes.CreatePVC` / `DeletePVC`: a PersistentVolumeClaim of the
/// run's namespace (locally, a directory of its own), created and bound, or
/// deleted with its directory.
async fn run_pvc_stub(
    ctx: &RunCtx,
    c: &ContainerSpec,
    mut rec: TaskRecord,
    kind: &'static str,
    inputs: LeafInputs,
) -> Result<NodeResult> {
    let create = c.image.starts_with("argostub/createpvc");
    let text = |k: &str| {
        inputs
            .params
            .get(k)
            .map(value::to_text)
            .filter(|s| !s.is_empty())
    };
    let name = if create {
        text("pvc_name").unwrap_or_else(|| {
            // Unique per run, as KFP's names are: the random tail of the
            // run's id (its head is a timestamp that runs started in the
            // same minute share).
            format!(
                "{}{}",
                run_tail(&ctx.run.id),
                text("pvc_name_suffix").unwrap_or_default()
            )
        })
    } else {
        text("pvc_name").unwrap_or_default()
    };
    let volumes = ctx.engine.volumes();
    let ns = ctx.run.namespace.as_str();
    let result = if create {
        let access_modes = match inputs.params.get("access_modes") {
            Some(Value::Array(modes)) => modes.iter().map(value::to_text).collect(),
            _ => vec!["ReadWriteOnce".to_owned()],
        };
        let claim = oxflow_volumes::Claim {
            storage: text("size").unwrap_or_else(|| "1Gi".to_owned()),
            access_modes,
            storage_class: text("storage_class_name"),
        };
        let labels = serde_json::json!({"pipeline/runid": ctx.run.id});
        volumes.create(ns, &name, &claim, &labels).await.map(drop)
    } else {
        volumes.delete(ns, &name).await.map(drop)
    }
    .map_err(|e| e.to_string());
    rec.attempt = 1;
    rec.finished_at = Some(Timestamp::now());
    let mut outputs = LeafOutputs::default();
    match result {
        Ok(()) => {
            if create {
                outputs.params.insert("name".into(), Value::String(name));
            }
            rec.state = TaskState::Succeeded;
            rec.outputs = outputs_json(&outputs);
            durable("recording a finished task", || {
                ctx.engine.store.finish_task(&rec, &[], None)
            })
            .await?;
            ctx.emit(&rec, kind);
            Ok(NodeResult {
                state: TaskState::Succeeded,
                outputs,
                error: None,
            })
        }
        Err(msg) => {
            rec.state = TaskState::Failed;
            rec.error = Some(msg.clone());
            ctx.save(&rec, kind).await?;
            Ok(NodeResult::new(TaskState::Failed, Some(msg)))
        }
    }
}

fn artifact_records(
    ctx: &RunCtx,
    path: &str,
    comp: &ComponentSpec,
    outputs: &LeafOutputs,
    stored: &Value,
) -> Vec<ArtifactRecord> {
    let mut out = Vec::new();
    for (key, arts) in &outputs.artifacts {
        let schema = comp
            .output_definitions
            .artifacts
            .get(key)
            .map(|d| d.artifact_type.schema_title.clone())
            .unwrap_or_default();
        for a in arts {
            let uri = a
                .get("uri")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let digest = stored
                .get("digests")
                .and_then(|d| d.get(&uri))
                .and_then(Value::as_str)
                .map(str::to_owned);
            out.push(ArtifactRecord {
                id: oxflow_core::new_id(),
                namespace: ctx.run.namespace.clone(),
                run_id: ctx.run.id.clone(),
                task_path: path.to_owned(),
                output_key: key.clone(),
                name: a
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or(key)
                    .to_owned(),
                uri,
                schema_title: schema.clone(),
                metadata: a.get("metadata").cloned().unwrap_or_else(|| json!({})),
                digest,
                created_at: Timestamp::now(),
            });
        }
    }
    out
}

/// The cache key: everything that determines a task's outputs.
fn cache_key(
    ctx: &RunCtx,
    comp: &ComponentSpec,
    c: &ContainerSpec,
    k8s: &KubernetesExecutorConfig,
    inputs: &LeafInputs,
    custom: Option<&str>,
) -> String {
    let mut arts = Map::new();
    for (name, list) in &inputs.artifacts {
        let described: Vec<Value> = list
            .iter()
            .map(|a| {
                let uri = a.get("uri").and_then(Value::as_str).unwrap_or_default();
                let digest = ctx
                    .digests
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(uri)
                    .cloned()
                    .unwrap_or_else(|| ctx.engine.artifacts.digest(uri).ok().flatten());
                json!({"uri": uri, "digest": digest, "metadata": a.get("metadata"), "type": a.get("type")})
            })
            .collect();
        arts.insert(name.clone(), Value::Array(described));
    }
    let fp = json!({
        "v": 1,
        "inputDefinitions": comp.input_definitions,
        "outputDefinitions": comp.output_definitions,
        "image": c.image,
        "command": c.command,
        "args": c.args,
        "env": c.env,
        "parameters": inputs.params,
        "artifacts": arts,
        "cacheKey": custom,
        "secrets": k8s.secret_as_env.iter().map(|s| &s.secret_name).collect::<Vec<_>>(),
    });
    let mut h = Sha256::new();
    h.update(fp.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// A cache hit is only usable if every artifact it points at still holds
/// what was produced.
fn cache_entry_valid(ctx: &RunCtx, entry: &CacheEntry) -> bool {
    let Some(digests) = entry.outputs.get("digests").and_then(Value::as_object) else {
        return true;
    };
    digests.iter().all(|(uri, d)| match d {
        Value::String(expected) => {
            ctx.engine.artifacts.digest(uri).ok().flatten().as_deref() == Some(expected.as_str())
        }
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::RetryPolicy;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("-1s"), None);
    }

    #[test]
    fn a_dag_keeps_results_only_while_they_are_needed() {
        // a → b, a → c; c is selected by the DAG's outputs; d stands alone.
        let dag: crate::ir::DagSpec = serde_json::from_value(json!({
            "tasks": {
                "a": {"componentRef": {"name": "x"}},
                "b": {"componentRef": {"name": "x"}, "dependentTasks": ["a"]},
                "c": {"componentRef": {"name": "x"}, "dependentTasks": ["a"]},
                "d": {"componentRef": {"name": "x"}}
            },
            "outputs": {"parameters": {"o": {"valueFromParameter":
                {"producerSubtask": "c", "outputParameterKey": "y"}}}}
        }))
        .unwrap();
        let (a, b, c, d) = (0, 1, 2, 3);
        let g = DagGraph::new(&dag);
        let mut book = DagBook::new(&g, &dag);
        let ok = || NodeResult::new(TaskState::Succeeded, None);
        let kept = |book: &DagBook| {
            let mut k: Vec<usize> = book.results.keys().copied().collect();
            k.sort();
            k
        };
        assert_eq!(book.ready, [a, d]);
        book.ready.clear();
        book.finish(&g, d, ok());
        assert_eq!(kept(&book), [] as [usize; 0], "nobody reads d");
        book.finish(&g, a, ok());
        assert_eq!(book.ready, [b, c]);
        assert_eq!(kept(&book), [a]);
        book.release_upstream(&g, b);
        assert_eq!(kept(&book), [a], "c has not read it yet");
        book.release_upstream(&g, c);
        assert_eq!(kept(&book), [] as [usize; 0]);
        book.finish(&g, b, ok());
        book.finish(&g, c, ok());
        assert_eq!(kept(&book), [c], "the DAG's outputs read c at the end");
        assert!(book.states.iter().all(|s| *s == Some(TaskState::Succeeded)));
    }

    #[test]
    fn backoff_grows_and_caps() {
        let p = RetryPolicy {
            max_retry_count: 3,
            backoff_duration: Some("1s".into()),
            backoff_factor: Some(2.0),
            backoff_max_duration: Some("3s".into()),
        };
        let got: Vec<u64> = (0..4).map(|r| backoff(&p, r).as_millis() as u64).collect();
        assert_eq!(got, vec![1000, 2000, 3000, 3000]);
        assert_eq!(backoff(&RetryPolicy::default(), 2), Duration::ZERO);
    }
}
