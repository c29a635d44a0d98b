//! Oxflow's own JSON API (`/oxflow/v1/...`): what the dashboard needs beyond
//! the KFP v2beta1 shapes.
//!
//! - `GET /runs/{id}` — a run with its spec, every task with its resolved
//!   inputs and outputs (artifact metadata included) and the run's artifact
//!   records. Times are epoch milliseconds (`null` when unset).
//! - `GET /runs/{id}/events` — server-sent events: `snapshot` first, then
//!   `task` and `run` changes as the engine makes them, and `end` once the
//!   run is terminal (the stream closes after it).
//! - `GET /runs/{id}/tasks/{path}/log` — a task's log; `?follow=true`
//!   streams appended bytes until the task ends.
//! - `GET /artifacts?uri=…` — the bytes of an artifact inside the artifact
//!   store (a JSON listing for a directory), opened beneath the store's
//!   root without following symlinks; tasks' internal files (`.kfp/`) are
//!   refused and left out of listings. `GET /artifacts` without `uri`
//!   lists the artifacts of the newest runs.
//! - `GET /namespaces` — the namespaces the dashboard offers.
//!
//! Errors use the same JSON shape as the KFP API (`crate::ApiError`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::SeekFrom;
use std::path::Path as FsPath;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use oxflow_artifacts::{ArtifactError, ArtifactStore, EntryKind, Listing, Opened};
use oxflow_core::{Namespace, RunState, TaskState, Timestamp};
use oxflow_pipelines::RunEvent;
use oxflow_store::{ArtifactRecord, RunQuery, RunRecord, TaskRecord};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{broadcast, mpsc};
use utoipa::IntoParams;

use crate::AppState;
use crate::caller::Who;
use crate::error::{ApiError, ApiResult};
#[allow(unused_imports)] // named by the `#[utoipa::path]` annotations
use crate::openapi::schemas::{ApiErrorBody, ArtifactsJson, NamespaceList, RunDetail};
use crate::routes::Routes;
use oxflow_auth::Verb;

/// How often an event stream re-reads the store: catches runs executed by
/// another Oxflow process (whose events never reach this one) and events a
/// lagging subscriber missed.
const RESYNC: Duration = Duration::from_secs(2);

/// How often a followed log is checked for new bytes.
const LOG_POLL: Duration = Duration::from_millis(250);

/// Bytes read from a file per streamed chunk.
const CHUNK: usize = 64 * 1024;

/// At most this many entries in a directory listing.
const MAX_LISTING: usize = 1000;

pub(crate) fn routes() -> Routes {
    Routes::new()
        .route("/namespaces", get(namespaces))
        .route("/runs/{id}", get(get_run))
        .route("/runs/{id}/events", get(run_events))
        .route("/runs/{id}/tasks/{*rest}", get(task_resource))
        .route("/artifacts", get(artifacts))
}

fn ms(t: Option<Timestamp>) -> Value {
    t.map(|t| json!(t.millis())).unwrap_or(Value::Null)
}

#[utoipa::path(
    get,
    path = "/oxflow/v1/namespaces",
    tag = "namespaces",
    responses((status = 200, description = "The namespaces the dashboard offers.", body = NamespaceList)),
)]
pub(crate) async fn namespaces(State(state): State<AppState>, who: Who) -> ApiResult<Json<Value>> {
    // Until profiles exist, a namespace is one that holds something (the
    // default one always): what `oxflow apply` or the API created in
    // `team-a` can be picked in the dashboard. Only those the caller may
    // reach are offered.
    let mut names = vec![state.default_namespace.clone()];
    for ns in state.store.namespaces_in_use().await? {
        if !names.contains(&ns) {
            names.push(ns);
        }
    }
    names.retain(|n| who.sees(n.as_str()));
    Ok(Json(json!({
        "namespaces": names.iter().map(|n| json!({"name": n.as_str()})).collect::<Vec<_>>(),
        "default": state.default_namespace.as_str(),
    })))
}

// ------------------------------------------------------------------- runs

/// The run `id` (or a unique prefix), if `who` may do `verb` in its
/// namespace.
async fn load_run(state: &AppState, who: &Who, verb: Verb, id: &str) -> ApiResult<RunRecord> {
    let run = state.store.find_run(id).await?;
    who.may(verb, &run.namespace)?;
    Ok(run)
}

fn run_summary(r: &RunRecord) -> Value {
    json!({
        "id": r.id,
        "display_name": r.display_name,
        "namespace": r.namespace,
        "pipeline_name": r.pipeline_name,
        "state": r.state.as_str(),
        "error": r.error,
        "parameters": r.parameters,
        "outputs": r.outputs,
        "options": r.options,
        "description": r.description,
        "experiment_id": r.experiment_id,
        "pipeline_id": r.pipeline_id,
        "pipeline_version_id": r.pipeline_version_id,
        "recurring_run_id": r.recurring_run_id,
        "storage_state": r.storage_state.as_str(),
        "created_at": r.created_at.millis(),
        "started_at": ms(r.started_at),
        "finished_at": ms(r.finished_at),
    })
}

/// A task as the event stream carries it: enough to colour a graph node.
fn task_brief(t: &TaskRecord) -> Value {
    json!({
        "path": t.path,
        "display_name": t.display_name,
        "kind": t.kind,
        "state": t.state.as_str(),
        "cached": t.cached,
        "attempt": t.attempt,
        "started_at": ms(t.started_at),
        "finished_at": ms(t.finished_at),
    })
}

/// Marks each artifact of `{"artifacts": {name: [..]}}` with `in_store`, so
/// the dashboard knows which ones it can preview (imported artifacts live
/// outside the store and are never served).
fn with_in_store(v: &Value, store: &ArtifactStore) -> Value {
    let mut v = v.clone();
    if let Some(arts) = v.get_mut("artifacts").and_then(Value::as_object_mut) {
        for list in arts.values_mut() {
            for a in list.as_array_mut().into_iter().flatten() {
                let owned = a
                    .get("uri")
                    .and_then(Value::as_str)
                    .is_some_and(|u| store.owns(u));
                if let Some(o) = a.as_object_mut() {
                    o.insert("in_store".into(), json!(owned));
                }
            }
        }
    }
    v
}

fn task_full(t: &TaskRecord, store: &ArtifactStore) -> Value {
    json!({
        "id": t.id,
        "path": t.path,
        "parent_path": t.parent_path,
        "name": t.name,
        "display_name": t.display_name,
        "kind": t.kind,
        "state": t.state.as_str(),
        "cached": t.cached,
        "attempt": t.attempt,
        "inputs": with_in_store(&t.inputs, store),
        "outputs": with_in_store(&t.outputs, store),
        "error": t.error,
        "has_log": t.log_path.is_some(),
        "created_at": t.created_at.millis(),
        "started_at": ms(t.started_at),
        "finished_at": ms(t.finished_at),
    })
}

fn artifact_json(a: &ArtifactRecord, in_store: bool) -> Value {
    json!({
        "id": a.id,
        "namespace": a.namespace,
        "run_id": a.run_id,
        "task_path": a.task_path,
        "output_key": a.output_key,
        "name": a.name,
        "uri": a.uri,
        "schema_title": a.schema_title,
        "metadata": a.metadata,
        "digest": a.digest,
        "created_at": a.created_at.millis(),
        "in_store": in_store,
    })
}

#[utoipa::path(
    get,
    path = "/oxflow/v1/runs/{id}",
    tag = "runs",
    params(("id" = String, Path, description = "Run id (a unique prefix is enough)")),
    responses(
        (status = 200, description = "The run, its spec, every task and its artifact records.", body = RunDetail),
        (status = 404, description = "No such run.", body = ApiErrorBody),
    ),
)]
pub(crate) async fn get_run(
    State(state): State<AppState>,
    who: Who,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let run = load_run(&state, &who, Verb::Get, &id).await?;
    let tasks = state.store.list_tasks(&run.id).await?;
    let artifacts = state.store.list_artifacts(&run.id).await?;
    let store = state.controller.engine().artifacts();
    Ok(Json(json!({
        "run": run_summary(&run),
        "pipeline_spec": run.spec,
        "tasks": tasks.iter().map(|t| task_full(t, store)).collect::<Vec<_>>(),
        "artifacts": artifacts.iter().map(|a| artifact_json(a, store.owns(&a.uri))).collect::<Vec<_>>(),
    })))
}

// ----------------------------------------------------------------- events

/// What a task looked like when last sent, to send only changes.
type Seen = HashMap<String, (TaskState, bool, i64)>;

fn sse_json(kind: &str, v: &Value) -> Event {
    Event::default().event(kind).data(v.to_string())
}

async fn snapshot(state: &AppState, run_id: &str, seen: &mut Seen) -> ApiResult<(Event, RunState)> {
    // The stream's caller was authorized when it opened.
    let run = state.store.find_run(run_id).await?;
    let tasks = state.store.list_tasks(run_id).await?;
    seen.clear();
    for t in &tasks {
        seen.insert(t.path.clone(), (t.state, t.cached, t.attempt));
    }
    let v = json!({
        "run": run_summary(&run),
        "tasks": tasks.iter().map(task_brief).collect::<Vec<_>>(),
    });
    Ok((sse_json("snapshot", &v), run.state))
}

/// Server-sent events: `snapshot` (`SnapshotEvent`) first, then `task`
/// (`TaskBrief`) and `run` (`RunStateEvent`) as the run changes, and `end`
/// (`RunStateEvent`) once it is terminal, after which the stream closes.
/// `error` (`StreamError`) ends a stream whose run could not be read.
#[utoipa::path(
    get,
    path = "/oxflow/v1/runs/{id}/events",
    tag = "runs",
    params(("id" = String, Path, description = "Run id (a unique prefix is enough)")),
    responses(
        (status = 200, description = "An event stream; each event's `data` is one JSON object (see the description).", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such run.", body = ApiErrorBody),
    ),
)]
pub(crate) async fn run_events(
    State(state): State<AppState>,
    who: Who,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>> {
    // Subscribe before reading the snapshot so no change falls in between;
    // changes already in the snapshot may come again, which is harmless.
    let events = state.controller.subscribe();
    let run = load_run(&state, &who, Verb::Watch, &id).await?;
    let (tx, rx) = mpsc::channel::<Event>(64);
    tokio::spawn(stream_run(state, run.id, events, tx));
    let stream =
        futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
        );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Feeds one client's event stream until the run is terminal or the client
/// goes away.
async fn stream_run(
    state: AppState,
    run_id: String,
    mut events: broadcast::Receiver<RunEvent>,
    tx: mpsc::Sender<Event>,
) {
    let mut seen = Seen::new();
    let run_state = match snapshot(&state, &run_id, &mut seen).await {
        Ok((ev, s)) => {
            if tx.send(ev).await.is_err() {
                return;
            }
            s
        }
        Err(e) => {
            let _ = tx
                .send(sse_json("error", &json!({"message": e.message})))
                .await;
            return;
        }
    };
    if run_state.is_terminal() {
        let _ = tx.send(end_event(run_state)).await;
        return;
    }
    let mut last_run_state = run_state;
    let mut tick = tokio::time::interval(RESYNC);
    tick.tick().await;
    loop {
        let out: Vec<Event> = tokio::select! {
            _ = tx.closed() => return,
            ev = events.recv() => match ev {
                Ok(RunEvent::Task { run_id: r, event }) if r == run_id => {
                    let key = (event.state, event.cached, event.attempt);
                    if seen.get(&event.path) == Some(&key) {
                        continue;
                    }
                    seen.insert(event.path.clone(), key);
                    vec![sse_json("task", &json!({
                        "path": event.path,
                        "display_name": event.display_name,
                        "kind": event.kind,
                        "state": event.state.as_str(),
                        "cached": event.cached,
                        "attempt": event.attempt,
                    }))]
                }
                Ok(RunEvent::Run { run_id: r, state: s }) if r == run_id => {
                    if s.is_terminal() {
                        // Every task record is final by now: one last
                        // consistent picture, then the end.
                        let mut out = Vec::new();
                        if let Ok((snap, _)) = snapshot(&state, &run_id, &mut seen).await {
                            out.push(snap);
                        }
                        out.push(end_event(s));
                        send_all(&tx, out).await;
                        return;
                    }
                    last_run_state = s;
                    vec![sse_json("run", &json!({"state": s.as_str()}))]
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    match resync(&state, &run_id, &mut seen, &mut last_run_state).await {
                        Some(r) => r,
                        None => return,
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                match resync(&state, &run_id, &mut seen, &mut last_run_state).await {
                    Some(r) => r,
                    None => return,
                }
            }
        };
        let done = last_run_state.is_terminal();
        if !send_all(&tx, out).await || done {
            return;
        }
    }
}

fn end_event(s: RunState) -> Event {
    sse_json("end", &json!({"state": s.as_str()}))
}

async fn send_all(tx: &mpsc::Sender<Event>, events: Vec<Event>) -> bool {
    for e in events {
        if tx.send(e).await.is_err() {
            return false;
        }
    }
    true
}

/// Compares the store with what was sent and returns the differences (and
/// `end` when the run became terminal). `None` when the run is gone.
async fn resync(
    state: &AppState,
    run_id: &str,
    seen: &mut Seen,
    last: &mut RunState,
) -> Option<Vec<Event>> {
    let run = state.store.get_run(run_id).await.ok()??;
    let tasks = state.store.list_tasks(run_id).await.ok()?;
    let mut out = Vec::new();
    for t in &tasks {
        let key = (t.state, t.cached, t.attempt);
        if seen.get(&t.path) != Some(&key) {
            seen.insert(t.path.clone(), key);
            out.push(sse_json("task", &task_brief(t)));
        }
    }
    if run.state != *last {
        *last = run.state;
        out.push(sse_json("run", &json!({"state": run.state.as_str()})));
    }
    if run.state.is_terminal() {
        out.push(end_event(run.state));
    }
    Some(out)
}

// ------------------------------------------------------------------- logs

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogParams {
    /// `true` (or `1`, `yes`, empty) keeps the response open and streams
    /// appended bytes until the task ends.
    #[param(value_type = Option<bool>)]
    follow: Option<String>,
}

fn truthy(v: &Option<String>) -> bool {
    matches!(
        v.as_deref(),
        Some("true") | Some("1") | Some("yes") | Some("")
    )
}

/// `/runs/{id}/tasks/{task path}/log` (task paths contain slashes, so the
/// route captures the rest and the resource is its last segment).
#[utoipa::path(
    get,
    path = "/oxflow/v1/runs/{id}/tasks/{task_path}/log",
    tag = "runs",
    params(
        ("id" = String, Path, description = "Run id (a unique prefix is enough)"),
        ("task_path" = String, Path, description = "The task's path; it may contain slashes (`loop/iteration-0/step`)"),
        LogParams,
    ),
    responses(
        (status = 200, description = "The task's log (empty while it has written nothing).", content_type = "text/plain; charset=utf-8", body = String),
        (status = 404, description = "No such run or task, or the task (a DAG) has no log of its own.", body = ApiErrorBody),
    ),
)]
pub(crate) async fn task_resource(
    State(state): State<AppState>,
    who: Who,
    Path((id, rest)): Path<(String, String)>,
    Query(q): Query<LogParams>,
) -> ApiResult<Response> {
    let rest = rest.trim_start_matches('/');
    let Some(path) = rest.strip_suffix("/log") else {
        return Err(ApiError::not_found(format!(
            "no such task resource: {rest:?} (use /runs/{id}/tasks/TASK_PATH/log)"
        )));
    };
    let run = load_run(&state, &who, Verb::Get, &id).await?;
    let task = state
        .store
        .get_task(&run.id, path)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {} has no task {path:?}", run.id)))?;
    if !matches!(task.kind.as_str(), "container" | "importer") && task.log_path.is_none() {
        return Err(ApiError::not_found(format!(
            "task {path:?} is a {} and has no log of its own; open one of its child tasks",
            task.kind
        )));
    }
    let follow = q.follow.is_some() && truthy(&q.follow);
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    tokio::spawn(stream_log(state, run.id, task, follow, tx));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(resp)
}

/// Sends the log from the start; when following, keeps sending appended
/// bytes until the task is terminal, then the rest, then ends.
async fn stream_log(
    state: AppState,
    run_id: String,
    mut task: TaskRecord,
    follow: bool,
    tx: mpsc::Sender<Bytes>,
) {
    let mut pos: u64 = 0;
    loop {
        // Observe the state *before* reading: once a terminal state has been
        // seen, the read that follows gets every byte the task wrote.
        let done = !follow || task.state.is_terminal();
        if let Some(log) = task.log_path.clone() {
            match send_from(&log, &mut pos, &tx).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(run = %run_id, task = %task.path, error = %e, "Reading a task log failed.");
                    return;
                }
            }
        }
        if done {
            return;
        }
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(LOG_POLL) => {}
        }
        match state.store.get_task(&run_id, &task.path).await {
            Ok(Some(t)) => task = t,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(run = %run_id, task = %task.path, error = %e, "Re-reading a task failed.");
                return;
            }
        }
    }
}

/// Sends the bytes of `path` from `pos` to its current end. `Ok(false)`
/// when the client went away. A file that shrank (a new attempt rewrote
/// it) is sent again from the start.
async fn send_from(path: &str, pos: &mut u64, tx: &mpsc::Sender<Bytes>) -> std::io::Result<bool> {
    let mut f = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(e),
    };
    let len = f.metadata().await?.len();
    if len < *pos {
        *pos = 0;
    }
    f.seek(SeekFrom::Start(*pos)).await?;
    let mut buf = vec![0u8; CHUNK];
    while *pos < len {
        let want = ((len - *pos) as usize).min(CHUNK);
        let n = f.read(&mut buf[..want]).await?;
        if n == 0 {
            break;
        }
        *pos += n as u64;
        if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

// -------------------------------------------------------------- artifacts

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ArtifactParams {
    /// An artifact URI inside the artifact store: answers its bytes, or a
    /// `DirectoryListing` for a directory. Without it, lists artifact records.
    uri: Option<String>,
    /// With `uri`: send at most this many bytes (`x-oxflow-truncated` tells).
    #[param(value_type = Option<u64>)]
    max_bytes: Option<String>,
    /// With `uri`: `true` answers `Content-Disposition: attachment`.
    #[param(value_type = Option<bool>)]
    download: Option<String>,
    /// With `uri`: the KFP type (`system.Markdown`, ...) choosing the media
    /// type; defaults to the type recorded for the URI.
    #[serde(rename = "type")]
    schema_title: Option<String>,
    /// Without `uri`: the namespace whose newest runs are listed (default:
    /// the default namespace).
    namespace: Option<String>,
    /// Without `uri`: list this run's artifacts only.
    run_id: Option<String>,
    /// Without `uri`: how many of the newest runs (1 to 200, default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    limit: Option<String>,
}

#[utoipa::path(
    get,
    path = "/oxflow/v1/artifacts",
    tag = "artifacts",
    params(ArtifactParams),
    responses(
        (status = 200, description = "Without `uri`: the artifact records of the newest runs (`ArtifactList`). \
            With `uri` naming a directory: a `DirectoryListing`. With `uri` naming a file: its bytes, with the \
            media type of its KFP type or file name, and `x-oxflow-size`, `x-oxflow-truncated` and \
            `x-oxflow-artifact-type` headers.",
            content(
                (ArtifactsJson = "application/json"),
                ("application/octet-stream"),
            ),
            headers(
                ("x-oxflow-size" = u64, description = "With `uri` naming a file: its full size in bytes"),
                ("x-oxflow-truncated" = bool, description = "With `uri` naming a file: whether `max_bytes` cut it short"),
                ("x-oxflow-artifact-type" = String, description = "With `uri` naming a file: its KFP type, when known"),
            ),
        ),
        (status = 400, description = "A malformed `max_bytes`, `limit` or `namespace`.", body = ApiErrorBody),
        (status = 403, description = "`uri` lies outside the artifact store, in a task's internal files (`.kfp`), or goes through a symbolic link (never followed).", body = ApiErrorBody),
        (status = 404, description = "No such artifact or run.", body = ApiErrorBody),
    ),
)]
pub(crate) async fn artifacts(
    State(state): State<AppState>,
    who: Who,
    Query(q): Query<ArtifactParams>,
) -> ApiResult<Response> {
    match q.uri.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(uri) => artifact_content(&state, &who, uri, &q).await,
        None => list_artifacts(&state, &who, &q)
            .await
            .map(IntoResponse::into_response),
    }
}

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::FORBIDDEN,
        message: message.into(),
    }
}

/// An artifact store refusal as an API answer: 404 for what is not there,
/// 403 for what is never served (outside the store, Oxflow's internal task
/// files, paths through a symlink).
fn artifact_error(e: ArtifactError) -> ApiError {
    match e {
        ArtifactError::NotFound(_) => ApiError::not_found(e.to_string()),
        ArtifactError::Io { .. } => ApiError::internal(e.to_string()),
        ArtifactError::UnsupportedScheme(_) | ArtifactError::NotNormalised(_) => forbidden(
            format!("{e}; only artifacts inside the artifact store can be read"),
        ),
        ArtifactError::Outside(_)
        | ArtifactError::Internal(_)
        | ArtifactError::Symlink(_)
        | ArtifactError::NotAFile(_) => forbidden(e.to_string()),
    }
}

/// The media type for an artifact's bytes: by its KFP type, else by the
/// file name.
fn content_type(schema_title: Option<&str>, path: &FsPath) -> &'static str {
    match schema_title {
        Some("system.Markdown") => return "text/markdown; charset=utf-8",
        Some("system.HTML") => return "text/html; charset=utf-8",
        Some("system.Metrics")
        | Some("system.ClassificationMetrics")
        | Some("system.SlicedClassificationMetrics") => return "application/json",
        Some("system.Dataset") | Some("system.Model") => return "text/plain; charset=utf-8",
        _ => {}
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("md") | Some("markdown") => "text/markdown; charset=utf-8",
        Some("html") | Some("htm") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        Some("csv") => "text/csv; charset=utf-8",
        Some("txt") | Some("log") | Some("yaml") | Some("yml") | Some("py") | Some("tsv") => {
            "text/plain; charset=utf-8"
        }
        Some("png") => "image/png",
        Some("jpg") | Some("jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("svg") => "image/svg+xml",
        _ if schema_title.is_some() => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The KFP type of the artifact recorded under exactly this URI, found
/// through the run its path names (`<root>/<namespace>/<run>/…`).
async fn recorded_type(
    state: &AppState,
    root: &FsPath,
    path: &FsPath,
    uri: &str,
) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let run_id = rel.components().nth(1)?.as_os_str().to_str()?;
    let records = state.store.list_artifacts(run_id).await.ok()?;
    records
        .into_iter()
        .find(|a| a.uri == uri || FsPath::new(&a.uri) == path)
        .map(|a| a.schema_title)
}

/// The namespace an artifact path belongs to: that of the run it lies
/// under (`<root>/<namespace>/<run>/…`), read from the run's record; a
/// path under no recorded run belongs to the namespace its first segment
/// names (and the store root itself to every namespace).
async fn artifact_namespace(
    state: &AppState,
    root: &FsPath,
    path: &FsPath,
) -> ApiResult<Option<Namespace>> {
    let Ok(rel) = path.strip_prefix(root) else {
        return Ok(None);
    };
    let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy());
    let Some(first) = parts.next() else {
        return Ok(None);
    };
    if let Some(run_id) = parts.next()
        && let Some(run) = state.store.get_run(&run_id).await?
    {
        return Ok(Some(run.namespace));
    }
    Namespace::new(first.into_owned())
        .map(Some)
        .map_err(|_| forbidden(format!("{} is not inside a namespace", path.display())))
}

async fn artifact_content(
    state: &AppState,
    who: &Who,
    uri: &str,
    q: &ArtifactParams,
) -> ApiResult<Response> {
    let store = state.controller.engine().artifacts().clone();
    let resolved = store.resolve(uri).map_err(artifact_error)?;
    match artifact_namespace(state, store.root(), &resolved).await? {
        Some(ns) => who.may(Verb::Get, &ns)?,
        None => who.may_everywhere(Verb::List)?,
    }
    // Opened beneath the store's root without following links, with no
    // check of the path before the open that a task could race.
    enum Content {
        File(std::fs::File, u64),
        Listing(Listing),
    }
    let owned_uri = uri.to_owned();
    let content = tokio::task::spawn_blocking(move || match store.open(&owned_uri)? {
        Opened::Directory(dir) => dir.list(MAX_LISTING).map(Content::Listing),
        Opened::File { file, len } => Ok(Content::File(file, len)),
    })
    .await
    .map_err(|e| ApiError::internal(format!("reading artifact {uri:?}: {e}")))?
    .map_err(artifact_error)?;
    let (file, size) = match content {
        Content::File(file, size) => (file, size),
        Content::Listing(listing) => {
            return Ok(Json(listing_json(uri, &resolved, listing)).into_response());
        }
    };
    let store = state.controller.engine().artifacts();
    let max = match q
        .max_bytes
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(s) => Some(s.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("max_bytes: {s:?} is not a non-negative integer"))
        })?),
    };
    let send = max.map_or(size, |m| m.min(size));
    let schema = match q.schema_title.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(s.to_owned()),
        None => recorded_type(state, store.root(), &resolved, uri).await,
    };
    let ctype = content_type(schema.as_deref(), &resolved);
    let file = tokio::fs::File::from_std(file);
    let stream = futures::stream::unfold((file, send), |(mut f, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; (left as usize).min(CHUNK)];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((
                    Ok::<_, std::io::Error>(Bytes::from(buf)),
                    (f, left - n as u64),
                ))
            }
            Err(e) => Some((Err(e), (f, 0))),
        }
    });
    let name = resolved
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("artifact")
        .replace(
            |c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')),
            "_",
        );
    let disposition = if q.download.is_some() && truthy(&q.download) {
        "attachment"
    } else {
        "inline"
    };
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    let hv = |s: String| HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static(""));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CONTENT_LENGTH, hv(send.to_string()));
    h.insert(
        header::CONTENT_DISPOSITION,
        hv(format!("{disposition}; filename=\"{name}\"")),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Artifact bytes are user content: opened directly in a browser they
    // must not run scripts in the dashboard's origin.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-oxflow-size", hv(size.to_string()));
    h.insert(
        "x-oxflow-truncated",
        HeaderValue::from_static(if send < size { "true" } else { "false" }),
    );
    if let Some(s) = schema {
        h.insert("x-oxflow-artifact-type", hv(s));
    }
    Ok(resp)
}

fn listing_json(uri: &str, resolved: &FsPath, listing: Listing) -> Value {
    let entries: Vec<Value> = listing
        .entries
        .into_iter()
        .map(|e| {
            json!({
                "uri": resolved.join(&e.name).to_string_lossy(),
                "name": e.name,
                "kind": match e.kind {
                    EntryKind::Symlink => "symlink",
                    EntryKind::Directory => "directory",
                    EntryKind::File | EntryKind::Other => "file",
                },
                "size": e.size,
            })
        })
        .collect();
    json!({
        "uri": uri,
        "kind": "directory",
        "entries": entries,
        "truncated": listing.truncated,
    })
}

/// The artifacts of the newest runs of a namespace (or of one run).
async fn list_artifacts(state: &AppState, who: &Who, q: &ArtifactParams) -> ApiResult<Json<Value>> {
    let store = state.controller.engine().artifacts();
    let runs: Vec<RunRecord> = match q.run_id.as_deref().filter(|s| !s.is_empty()) {
        Some(id) => vec![load_run(state, who, Verb::List, id).await?],
        None => {
            let namespace = match q
                .namespace
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                None => state.default_namespace.clone(),
                Some(n) => Namespace::new(n)
                    .map_err(|e| ApiError::bad_request(format!("namespace: {e}")))?,
            };
            who.may(Verb::List, &namespace)?;
            let limit = match q.limit.as_deref().filter(|s| !s.is_empty()) {
                None => 20,
                Some(s) => s
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=200).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "limit: {s:?} must be a number of runs from 1 to 200"
                        ))
                    })?,
            };
            state
                .store
                .list_runs(&RunQuery {
                    namespace: Some(namespace),
                    newest_first: true,
                    limit: Some(limit),
                    ..Default::default()
                })
                .await?
        }
    };
    let mut out = Vec::new();
    for run in &runs {
        for a in state.store.list_artifacts(&run.id).await? {
            let mut v = artifact_json(&a, store.owns(&a.uri));
            v["run_name"] = json!(run.display_name);
            out.push(v);
        }
    }
    Ok(Json(json!({"artifacts": out})))
}
