//! The records the store keeps. JSON-valued columns are `serde_json::Value`
//! here and TEXT in the database (the `Any` driver carries no JSON type).

use std::fmt;
use std::str::FromStr;

use oxflow_core::{ExperimentPhase, Namespace, RunState, TaskState, Timestamp, TrialPhase};
use serde::{Deserialize, Serialize};

/// A pipeline run: the spec the user submitted and the status the engine observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Primary key (UUID text).
    pub id: String,
    /// Owning namespace.
    pub namespace: Namespace,
    /// Human-readable name (KFP `display_name`).
    pub display_name: String,
    /// `pipelineInfo.name` of the spec.
    pub pipeline_name: String,
    /// The compiled pipeline as submitted: `{"pipeline_spec": …, "platform_spec": …}`.
    pub spec: serde_json::Value,
    /// Run parameters after defaults were applied and types checked.
    pub parameters: serde_json::Value,
    /// Engine options for this run (caching, parallelism, python, …).
    pub options: serde_json::Value,
    /// Current state.
    pub state: RunState,
    /// Why the run failed, if it did.
    pub error: Option<String>,
    /// Pipeline outputs (`dag.outputs` of the root) once known.
    pub outputs: serde_json::Value,
    /// When it was submitted.
    pub created_at: Timestamp,
    /// When an engine first started it.
    pub started_at: Option<Timestamp>,
    /// When it reached a terminal state.
    pub finished_at: Option<Timestamp>,
    /// Which engine owns it while RUNNING (`<host>:<pid>:<start-time>`), for crash recovery.
    pub owner: Option<String>,
    /// The owner's last sign of life.
    pub heartbeat_at: Option<Timestamp>,
    /// The experiment it belongs to (KFP `experiment_id`). Not a foreign key:
    /// deleting an experiment leaves its runs (as KFP does).
    #[serde(default)]
    pub experiment_id: Option<String>,
    /// Free text the user gave at submission.
    #[serde(default)]
    pub description: String,
    /// Archived runs are hidden from default listings but kept. Changed only
    /// with [`crate::Store::set_run_storage_state`], never by `update_run`.
    #[serde(default)]
    pub storage_state: StorageState,
    /// The stored pipeline it was started from, if any (KFP `pipeline_version_reference`).
    #[serde(default)]
    pub pipeline_id: Option<String>,
    /// The stored pipeline version it was started from, if any.
    #[serde(default)]
    pub pipeline_version_id: Option<String>,
    /// The recurring run that created it, if any.
    #[serde(default)]
    pub recurring_run_id: Option<String>,
    /// Every state the run entered, oldest first. Maintained by the store:
    /// `insert_run` fills an empty history with the initial state and
    /// `update_run` appends an entry whenever the state changes.
    #[serde(default)]
    pub state_history: Vec<StateChange>,
    /// The time slot a recurring run created it for; otherwise (KFP) the
    /// submission time, or `None`.
    #[serde(default)]
    pub scheduled_at: Option<Timestamp>,
}

/// Every field empty: JSON fields `{}` (the spec `null`), state PENDING,
/// namespace `default`, times at the epoch, storage AVAILABLE. For struct
/// literals that set what they know and end with `..Default::default()`.
impl Default for RunRecord {
    fn default() -> Self {
        Self {
            id: String::new(),
            namespace: Namespace::default(),
            display_name: String::new(),
            pipeline_name: String::new(),
            spec: serde_json::Value::Null,
            parameters: empty_object(),
            options: empty_object(),
            state: RunState::Pending,
            error: None,
            outputs: empty_object(),
            created_at: Timestamp(0),
            started_at: None,
            finished_at: None,
            owner: None,
            heartbeat_at: None,
            experiment_id: None,
            description: String::new(),
            storage_state: StorageState::Available,
            pipeline_id: None,
            pipeline_version_id: None,
            recurring_run_id: None,
            state_history: Vec::new(),
            scheduled_at: None,
        }
    }
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// One entry of [`RunRecord::state_history`] (KFP `RuntimeStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    /// When the run entered `state`.
    pub update_time: Timestamp,
    /// The state entered.
    pub state: RunState,
    /// The run's error at that moment, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Whether a run or experiment is archived (KFP `storage_state`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StorageState {
    /// Listed normally.
    #[default]
    Available,
    /// Hidden from default listings, kept for reference.
    Archived,
}

impl StorageState {
    /// The wire name (`AVAILABLE`, `ARCHIVED`), also what the store keeps.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "AVAILABLE",
            Self::Archived => "ARCHIVED",
        }
    }
}

/// A storage state name that is not `AVAILABLE` or `ARCHIVED`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown storage state {0:?} (expected AVAILABLE or ARCHIVED)")]
pub struct UnknownStorageState(pub String);

impl FromStr for StorageState {
    type Err = UnknownStorageState;
    fn from_str(s: &str) -> Result<Self, UnknownStorageState> {
        match s {
            "AVAILABLE" => Ok(Self::Available),
            "ARCHIVED" => Ok(Self::Archived),
            other => Err(UnknownStorageState(other.to_owned())),
        }
    }
}

impl fmt::Display for StorageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A KFP experiment: a named group of runs and recurring runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentRecord {
    /// Primary key (UUID text).
    pub id: String,
    /// Owning namespace.
    pub namespace: Namespace,
    /// The name users see; unique within the namespace.
    pub display_name: String,
    /// Free text.
    pub description: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// Archived experiments are hidden from default listings.
    pub storage_state: StorageState,
    /// When its newest run was created (see [`crate::Store::touch_last_run`]).
    pub last_run_created_at: Option<Timestamp>,
}

/// A stored pipeline: a name under which versions of a compiled spec are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineRecord {
    /// Primary key (UUID text).
    pub id: String,
    /// Owning namespace; `None` for a shared pipeline every namespace sees.
    pub namespace: Option<Namespace>,
    /// Unique within the namespace (or among shared pipelines).
    pub name: String,
    /// The name users see.
    pub display_name: String,
    /// Free text.
    pub description: String,
    /// When it was created.
    pub created_at: Timestamp,
}

/// One version of a stored pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineVersionRecord {
    /// Primary key (UUID text).
    pub id: String,
    /// The pipeline it belongs to.
    pub pipeline_id: String,
    /// Unique within the pipeline.
    pub name: String,
    /// The name users see.
    pub display_name: String,
    /// Free text.
    pub description: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// The compiled pipeline: `{"pipeline_spec": …, "platform_spec": …}`.
    pub spec: serde_json::Value,
    /// Where its source code lives, if the uploader said.
    pub code_source_url: Option<String>,
}

/// A schedule that creates runs (KFP recurring run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecurringRunRecord {
    /// Primary key (UUID text).
    pub id: String,
    /// Owning namespace.
    pub namespace: Namespace,
    /// The name users see.
    pub display_name: String,
    /// Free text.
    pub description: String,
    /// The experiment its runs go to.
    pub experiment_id: Option<String>,
    /// The stored pipeline its runs use, when not given inline.
    pub pipeline_id: Option<String>,
    /// The stored pipeline version its runs use, when not given inline.
    pub pipeline_version_id: Option<String>,
    /// The inline compiled pipeline, when not a stored version.
    pub spec: Option<serde_json::Value>,
    /// `{"parameters": {…}, "pipeline_root": "…"}` for every run it creates.
    pub runtime_config: serde_json::Value,
    /// `{"cron_schedule": {…}}` or `{"periodic_schedule": {…}}`, as the API sent it.
    pub trigger: serde_json::Value,
    /// At most this many of its runs may be active at once.
    pub max_concurrency: i64,
    /// When true, missed slots are skipped instead of back-filled.
    pub no_catchup: bool,
    /// Whether it creates runs at all.
    pub enabled: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last changed (enabled or disabled).
    pub updated_at: Timestamp,
    /// The last scheduled time a run was created for
    /// (see [`crate::Store::set_last_fired`]).
    pub last_fired_at: Option<Timestamp>,
}

/// A task without its inputs and outputs: what a run's summary table shows.
///
/// A run's inputs and outputs are most of its size (KiBs per task); listing a
/// 10,000-task run as full [`TaskRecord`]s costs tens of MiB that a table of
/// states and durations does not need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSummary {
    /// Position in the graph (see [`TaskRecord::path`]).
    pub path: String,
    /// `container`, `importer`, `dag`, `loop`, `iteration`.
    pub kind: String,
    /// Current state.
    pub state: TaskState,
    /// 1 for the first attempt, incremented per retry.
    pub attempt: i64,
    /// Outputs were taken from the cache.
    pub cached: bool,
    /// Why it failed or was skipped.
    pub error: Option<String>,
    /// When its current attempt started.
    pub started_at: Option<Timestamp>,
    /// When it reached a terminal state.
    pub finished_at: Option<Timestamp>,
}

impl From<&TaskRecord> for TaskSummary {
    fn from(t: &TaskRecord) -> Self {
        TaskSummary {
            path: t.path.clone(),
            kind: t.kind.clone(),
            state: t.state,
            attempt: t.attempt,
            cached: t.cached,
            error: t.error.clone(),
            started_at: t.started_at,
            finished_at: t.finished_at,
        }
    }
}

/// One node of a run's graph: a container step, an importer, a sub-DAG, a loop or one iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Primary key (UUID text).
    pub id: String,
    /// The run it belongs to.
    pub run_id: String,
    /// Position in the graph, unique within the run and stable across restarts:
    /// `train`, `for-loop-2/3/square` (iteration 3 of loop `for-loop-2`), `exit-handler-1/work`.
    pub path: String,
    /// The enclosing node's path (`""` for tasks of the root DAG).
    pub parent_path: String,
    /// The task name in its DAG (`square`).
    pub name: String,
    /// `taskInfo.name`, which `set_display_name` changes.
    pub display_name: String,
    /// `container`, `importer`, `dag`, `loop`, `iteration`.
    pub kind: String,
    /// Current state.
    pub state: TaskState,
    /// 1 for the first attempt, incremented per retry.
    pub attempt: i64,
    /// Outputs were taken from the cache.
    pub cached: bool,
    /// Resolved inputs: `{"parameters": {...}, "artifacts": {...}}`.
    pub inputs: serde_json::Value,
    /// Outputs: `{"parameters": {...}, "artifacts": {name: [RuntimeArtifact...]}}`.
    pub outputs: serde_json::Value,
    /// Why it failed or was skipped.
    pub error: Option<String>,
    /// Where its log is (container tasks).
    pub log_path: Option<String>,
    /// The cache key it was looked up under.
    pub cache_key: Option<String>,
    /// When it was first seen.
    pub created_at: Timestamp,
    /// When its current attempt started.
    pub started_at: Option<Timestamp>,
    /// When it reached a terminal state.
    pub finished_at: Option<Timestamp>,
}

/// An artifact produced by a task (or imported), addressed by URI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    /// Primary key (UUID text).
    pub id: String,
    /// Owning namespace.
    pub namespace: Namespace,
    /// The run that produced it.
    pub run_id: String,
    /// The producing task's path.
    pub task_path: String,
    /// The output key (`model`, `Output`, `artifact` for importers).
    pub output_key: String,
    /// The artifact's name.
    pub name: String,
    /// Where its bytes are.
    pub uri: String,
    /// `system.Model`, `system.Metrics`, …
    pub schema_title: String,
    /// Artifact metadata (metrics values live here).
    pub metadata: serde_json::Value,
    /// `sha256:<hex>` of the content when the content existed at production time.
    pub digest: Option<String>,
    /// When it was recorded.
    pub created_at: Timestamp,
}

/// A cache entry: the outputs of a successful task under its cache key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// sha256 over the task's fingerprint.
    pub key: String,
    /// Entries are only shared within a namespace.
    pub namespace: Namespace,
    /// Outputs in the shape of [`TaskRecord::outputs`].
    pub outputs: serde_json::Value,
    /// Which run and task produced them.
    pub run_id: String,
    /// The producing task's path.
    pub task_path: String,
    /// When they were produced.
    pub created_at: Timestamp,
}

/// Filters and paging for [`crate::Store::list_runs`].
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    /// Only runs in this namespace.
    pub namespace: Option<Namespace>,
    /// Only runs in one of these states.
    pub states: Vec<RunState>,
    /// Newest first when true (default: oldest first).
    pub newest_first: bool,
    /// At most this many (default 100).
    pub limit: Option<i64>,
    /// Skip this many.
    pub offset: i64,
}

/// A Katib experiment: the spec the user wrote (Katib's shape, defaults
/// applied) and the status the tuning controller observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuningExperimentRecord {
    /// Primary key (UUID text).
    pub id: String,
    /// Owning namespace.
    pub namespace: Namespace,
    /// Katib's `metadata.name`; unique within the namespace.
    pub name: String,
    /// The Experiment as JSON in Katib's shape.
    pub spec: serde_json::Value,
    /// What every suggestion's randomness derives from.
    pub seed: i64,
    /// Oxflow's own settings beside Katib's spec (`{"workingDir": …}`).
    pub options: serde_json::Value,
    /// Where the experiment is in its lifecycle.
    pub phase: ExperimentPhase,
    /// Katib's condition list, newest last.
    pub conditions: serde_json::Value,
    /// Name of the best trial so far.
    pub optimal_trial: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When a controller first started it.
    pub started_at: Option<Timestamp>,
    /// When it last ended.
    pub finished_at: Option<Timestamp>,
    /// The controller process that runs it (`host:pid:start`), if any.
    pub owner: Option<String>,
    /// When that controller last said it is alive.
    pub heartbeat_at: Option<Timestamp>,
}

/// One trial of a Katib experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuningTrialRecord {
    /// Primary key (UUID text).
    pub id: String,
    /// The experiment's id.
    pub experiment_id: String,
    /// Katib's trial name (`<experiment>-<suffix>`), unique in the experiment.
    pub name: String,
    /// Creation order within the experiment, from 0.
    pub seq: i64,
    /// Katib's `parameterAssignments`: a list of `{name, value}`.
    pub assignments: serde_json::Value,
    /// The suggesting algorithm's bookkeeping (an object of strings).
    pub tags: serde_json::Value,
    /// Where the trial is in its lifecycle.
    pub phase: TrialPhase,
    /// Why it failed or stopped.
    pub message: Option<String>,
    /// The objective metric's value under its strategy.
    pub objective: Option<f64>,
    /// Per-metric `{name, min, max, latest}` summaries.
    pub observation: serde_json::Value,
    /// Where its process's output goes.
    pub log_path: Option<String>,
    /// How many times it was started.
    pub attempt: i64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its (latest) process started.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
}

/// One metric value a trial reported (Katib's `observation_logs` row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservationLogRecord {
    /// When the trial reported it, if its output said.
    pub time: Option<Timestamp>,
    /// The metric's name.
    pub metric_name: String,
    /// The value as reported (Katib keeps text: `unavailable` is a value too).
    pub value: String,
}
