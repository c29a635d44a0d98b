//! The records the store keeps. JSON-valued columns are `serde_json::Value`
//! here and TEXT in the database (the `Any` driver carries no JSON type).

use oxflow_core::{Namespace, RunState, TaskState, Timestamp};
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
