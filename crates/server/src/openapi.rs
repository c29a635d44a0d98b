//! The OpenAPI document of Oxflow's own API (`/oxflow/v1`), served at
//! `/openapi.json`.
//!
//! Generated from the code: each handler in `api` carries a
//! `#[utoipa::path]` annotation next to its route, and the JSON shapes those
//! handlers build are described by the types below (the handlers assemble
//! their bodies with `json!`, so these types exist for the document only;
//! `tests/openapi.rs` checks that real responses carry exactly the fields
//! described here, and that every documented path is routed).
//!
//! The KFP v2beta1 API (`/apis/v2beta1`) is KFP's and is documented by KFP.

use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;

use crate::api;

/// The document, built once per request (it is small and rarely fetched).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Oxflow API",
        description = "Oxflow's own JSON API: what the dashboard needs beyond the KFP v2beta1 \
            API (which is served at /apis/v2beta1 and documented by Kubeflow Pipelines). \
            Times are epoch milliseconds, null when unset. Errors share the KFP API's shape \
            (`ApiErrorBody`).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        api::namespaces,
        api::get_run,
        api::run_events,
        api::task_resource,
        api::artifacts,
    ),
    components(schemas(
        schemas::ApiErrorBody,
        schemas::NamespaceList,
        schemas::NamespaceEntry,
        schemas::RunDetail,
        schemas::RunSummary,
        schemas::RunState,
        schemas::TaskState,
        schemas::Task,
        schemas::TaskBrief,
        schemas::Artifact,
        schemas::ArtifactList,
        schemas::ArtifactsJson,
        schemas::ListedArtifact,
        schemas::DirectoryListing,
        schemas::DirectoryEntry,
        schemas::EntryKind,
        schemas::SnapshotEvent,
        schemas::RunStateEvent,
        schemas::StreamError,
    )),
    tags(
        (name = "namespaces", description = "Namespaces the dashboard offers."),
        (name = "runs", description = "Runs with their tasks, live events and logs."),
        (name = "artifacts", description = "Artifact records and the bytes in the artifact store."),
    ),
)]
pub(crate) struct ApiDoc;

/// `GET /openapi.json`.
pub(crate) async fn serve() -> Response {
    let mut resp = Json(ApiDoc::openapi()).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// Wire shapes of `/oxflow/v1`, for the document only (never constructed).
#[allow(dead_code)]
pub(crate) mod schemas {
    use serde_json::Value;
    use utoipa::ToSchema;

    /// An error: `google.rpc.Status` as the KFP API answers it.
    #[derive(ToSchema)]
    pub struct ApiErrorBody {
        /// The gRPC status code (3 invalid argument, 5 not found, 7 permission denied, ...).
        pub code: i32,
        /// What went wrong; for bad input, the field at fault.
        pub message: String,
        /// The same as `message` (older KFP clients read this one).
        pub error: String,
        /// Always empty.
        pub details: Vec<Value>,
    }

    /// `GET /oxflow/v1/namespaces`.
    #[derive(ToSchema)]
    pub struct NamespaceList {
        pub namespaces: Vec<NamespaceEntry>,
        /// The namespace used when a request names none.
        pub default: String,
    }

    #[derive(ToSchema)]
    pub struct NamespaceEntry {
        pub name: String,
    }

    /// A run's state.
    #[derive(ToSchema)]
    #[allow(clippy::upper_case_acronyms, non_camel_case_types)]
    pub enum RunState {
        PENDING,
        RUNNING,
        SUCCEEDED,
        FAILED,
        CANCELING,
        CANCELED,
    }

    /// A task's state.
    #[derive(ToSchema)]
    #[allow(clippy::upper_case_acronyms, non_camel_case_types)]
    pub enum TaskState {
        PENDING,
        RUNNING,
        SUCCEEDED,
        SKIPPED,
        FAILED,
        CANCELED,
    }

    /// `GET /oxflow/v1/runs/{id}`: a run with its spec, tasks and artifacts.
    #[derive(ToSchema)]
    pub struct RunDetail {
        pub run: RunSummary,
        /// The compiled KFP pipeline spec the run executes.
        pub pipeline_spec: Value,
        /// Every task, DAGs included, with resolved inputs and outputs.
        pub tasks: Vec<Task>,
        /// The artifacts the run recorded.
        pub artifacts: Vec<Artifact>,
    }

    /// A run.
    #[derive(ToSchema)]
    pub struct RunSummary {
        pub id: String,
        pub display_name: String,
        pub namespace: String,
        pub pipeline_name: String,
        pub state: RunState,
        /// Why the run failed.
        pub error: Option<String>,
        /// Runtime parameters by name.
        pub parameters: Value,
        /// The pipeline's outputs by name, once known.
        pub outputs: Value,
        /// Run options (caching, base directory).
        pub options: Value,
        pub description: Option<String>,
        pub experiment_id: Option<String>,
        pub pipeline_id: Option<String>,
        pub pipeline_version_id: Option<String>,
        /// The recurring run that started this run.
        pub recurring_run_id: Option<String>,
        /// `AVAILABLE` or `ARCHIVED`.
        pub storage_state: String,
        /// Epoch milliseconds.
        pub created_at: i64,
        /// Epoch milliseconds.
        pub started_at: Option<i64>,
        /// Epoch milliseconds.
        pub finished_at: Option<i64>,
    }

    /// A task of a run, with its resolved inputs and outputs.
    #[derive(ToSchema)]
    pub struct Task {
        pub id: String,
        /// Slash-separated path from the root DAG (`train`, `loop/iteration-0/step`).
        pub path: String,
        pub parent_path: Option<String>,
        pub name: String,
        pub display_name: String,
        /// `container`, `importer`, `dag`, `loop`, `condition`, ...
        pub kind: String,
        pub state: TaskState,
        /// Whether the result came from the cache.
        pub cached: bool,
        pub attempt: i64,
        /// `{"parameters": {..}, "artifacts": {name: [artifact, ..]}}`; each
        /// artifact carries `in_store` (whether `/oxflow/v1/artifacts?uri=` serves it).
        pub inputs: Value,
        /// Same shape as `inputs`.
        pub outputs: Value,
        pub error: Option<String>,
        /// Whether `/oxflow/v1/runs/{id}/tasks/{path}/log` has something to show.
        pub has_log: bool,
        /// Epoch milliseconds.
        pub created_at: i64,
        /// Epoch milliseconds.
        pub started_at: Option<i64>,
        /// Epoch milliseconds.
        pub finished_at: Option<i64>,
    }

    /// A task as the event stream carries it (data of a `task` event).
    #[derive(ToSchema)]
    pub struct TaskBrief {
        pub path: String,
        pub display_name: String,
        pub kind: String,
        pub state: TaskState,
        pub cached: bool,
        pub attempt: i64,
        /// Epoch milliseconds (absent from events sent as the engine acts).
        pub started_at: Option<i64>,
        /// Epoch milliseconds (absent from events sent as the engine acts).
        pub finished_at: Option<i64>,
    }

    /// Data of a `snapshot` event: the whole run, sent first and once more
    /// just before `end`.
    #[derive(ToSchema)]
    pub struct SnapshotEvent {
        pub run: RunSummary,
        pub tasks: Vec<TaskBrief>,
    }

    /// Data of a `run` event (the run changed state) and of the final `end` event.
    #[derive(ToSchema)]
    pub struct RunStateEvent {
        pub state: RunState,
    }

    /// Data of an `error` event (the run could not be read).
    #[derive(ToSchema)]
    pub struct StreamError {
        pub message: String,
    }

    /// An artifact record.
    #[derive(ToSchema, serde::Serialize)]
    pub struct Artifact {
        pub id: String,
        pub namespace: String,
        pub run_id: String,
        pub task_path: String,
        pub output_key: String,
        pub name: String,
        pub uri: String,
        /// The KFP type (`system.Model`, `system.Metrics`, ...).
        pub schema_title: String,
        pub metadata: Value,
        pub digest: Option<String>,
        /// Epoch milliseconds.
        pub created_at: i64,
        /// Whether the bytes are inside the artifact store (and so readable
        /// through `/oxflow/v1/artifacts?uri=`); imported artifacts are not.
        pub in_store: bool,
    }

    /// An artifact record in a listing, with its run's display name.
    #[derive(ToSchema, serde::Serialize)]
    pub struct ListedArtifact {
        #[serde(flatten)]
        pub artifact: Artifact,
        pub run_name: String,
    }

    /// `GET /oxflow/v1/artifacts` without `uri`.
    #[derive(ToSchema, serde::Serialize)]
    pub struct ArtifactList {
        pub artifacts: Vec<ListedArtifact>,
    }

    /// `GET /oxflow/v1/artifacts?uri=` naming a directory.
    #[derive(ToSchema, serde::Serialize)]
    pub struct DirectoryListing {
        pub uri: String,
        /// Always `directory`.
        pub kind: String,
        /// Sorted by name.
        pub entries: Vec<DirectoryEntry>,
        /// Whether entries were left out (at most 1000 are listed).
        pub truncated: bool,
    }

    #[derive(ToSchema, serde::Serialize)]
    pub struct DirectoryEntry {
        pub name: String,
        /// Pass this as `uri` to read the entry.
        pub uri: String,
        pub kind: EntryKind,
        /// Bytes, for files.
        pub size: Option<u64>,
    }

    #[derive(ToSchema, serde::Serialize)]
    #[allow(non_camel_case_types)]
    pub enum EntryKind {
        file,
        directory,
        symlink,
    }

    /// The JSON answers of `GET /oxflow/v1/artifacts`: a listing of records
    /// (without `uri`) or of a directory (`uri` naming one).
    #[derive(ToSchema, serde::Serialize)]
    #[serde(untagged)]
    pub enum ArtifactsJson {
        Records(ArtifactList),
        Directory(DirectoryListing),
    }
}
