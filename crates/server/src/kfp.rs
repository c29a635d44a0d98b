//! The KFP v2beta1 REST API (`/apis/v2beta1/...`) as the real `kfp.Client`
//! and the KFP UI use it. Shapes follow `kfp-server-api` 2.17: snake_case
//! fields, enums as names, RFC 3339 times (`1970-01-01T00:00:00Z` when
//! unset), int64 accepted as numbers or strings.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Multipart, Path, Query, State};
use axum::routing::{get, post};
use oxflow_core::{Namespace, RunState, TaskState, Timestamp};
use oxflow_pipelines::{Pipeline, RunOptions, SubmitRequest};
use oxflow_store::{
    ExperimentRecord, Filter, FilterOp, FilterValue, ListQuery, Page, PipelineRecord,
    PipelineVersionRecord, RunRecord, Sort, StorageState, StoreError, TaskRecord,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::caller::Who;
use crate::error::{ApiError, ApiResult};
use crate::limits;
use crate::routes::Routes;
use oxflow_auth::Verb;

#[path = "recurring.rs"]
mod recurring;

pub(crate) fn routes() -> Routes {
    Routes::new()
        .route("/healthz", get(healthz))
        .route(
            "/experiments",
            post(create_experiment).get(list_experiments),
        )
        .route(
            "/experiments/{id}",
            get(get_experiment)
                .delete(delete_experiment)
                .post(experiment_verb),
        )
        .route("/runs", post(create_run).get(list_runs))
        .route("/runs/{id}", get(get_run).delete(delete_run).post(run_verb))
        .route("/pipelines", get(list_pipelines).post(create_pipeline))
        .route("/pipelines/upload", post(upload_pipeline))
        .route("/pipelines/upload_version", post(upload_pipeline_version))
        .route("/pipelines/names/{name}", get(get_pipeline_by_name))
        .route("/pipelines/{id}", get(get_pipeline).delete(delete_pipeline))
        .route("/pipelines/{id}/versions", get(list_pipeline_versions))
        .route(
            "/pipelines/{id}/versions/{vid}",
            get(get_pipeline_version).delete(delete_pipeline_version),
        )
        .merge(recurring::routes())
}

const EPOCH: &str = "1970-01-01T00:00:00Z";

fn ts(t: Option<Timestamp>) -> String {
    t.map(|t| t.to_rfc3339())
        .unwrap_or_else(|| EPOCH.to_owned())
}

async fn healthz() -> Json<Value> {
    Json(json!({
        "multi_user": false,
        "pipeline_store": "database",
        "commit_sha": env!("CARGO_PKG_VERSION"),
        "tag_name": format!("oxflow-{}", env!("CARGO_PKG_VERSION")),
    }))
}

// ---------------------------------------------------------------- queries

/// `page_token`, `page_size`, `sort_by`, `filter`, `namespace`, `experiment_id`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListParams {
    page_token: Option<String>,
    page_size: Option<String>,
    sort_by: Option<String>,
    filter: Option<String>,
    namespace: Option<String>,
    experiment_id: Option<String>,
    #[serde(rename = "resource_reference_key.id")]
    reference_id: Option<String>,
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl ListParams {
    fn namespace(&self, state: &AppState) -> ApiResult<Namespace> {
        match non_empty(&self.namespace) {
            None => Ok(state.default_namespace.clone()),
            Some(n) => {
                Namespace::new(n).map_err(|e| ApiError::bad_request(format!("namespace: {e}")))
            }
        }
    }

    fn query(&self, default_sort: &str) -> ApiResult<ListQuery> {
        let page_size = match non_empty(&self.page_size) {
            None => 20,
            Some(s) => s.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!("page_size: {s:?} is not an integer"))
            })?,
        };
        if page_size < 0 {
            return Err(ApiError::bad_request("page_size: must not be negative"));
        }
        // KFP clamps larger pages to its maximum rather than refusing them.
        let page_size = page_size.min(limits::MAX_PAGE_SIZE);
        let sort = match non_empty(&self.sort_by) {
            None => Sort {
                field: default_sort.to_owned(),
                desc: false,
            },
            Some(s) => {
                let mut parts = s.split_whitespace();
                let field = parts.next().unwrap_or(default_sort).to_owned();
                let desc = match parts.next() {
                    None | Some("asc") | Some("ASC") => false,
                    Some("desc") | Some("DESC") => true,
                    Some(other) => {
                        return Err(ApiError::bad_request(format!(
                            "sort_by: expected \"FIELD\" or \"FIELD desc\", got direction {other:?}"
                        )));
                    }
                };
                Sort { field, desc }
            }
        };
        let filters = match non_empty(&self.filter) {
            None => Vec::new(),
            Some(f) => parse_filter(f)?,
        };
        Ok(ListQuery {
            namespace: None,
            filters,
            sort,
            page_size: if page_size == 0 { 20 } else { page_size },
            page_token: non_empty(&self.page_token).map(str::to_owned),
        })
    }
}

/// KFP's `Filter` JSON: `{"predicates": [{"operation": 1 | "EQUALS", "key": …, "string_value" | "stringValue" | …}]}`.
fn parse_filter(text: &str) -> ApiResult<Vec<Filter>> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("filter: not valid JSON: {e}")))?;
    let preds = v
        .get("predicates")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::with_capacity(preds.len());
    for (i, p) in preds.iter().enumerate() {
        let here = |m: &str| ApiError::bad_request(format!("filter.predicates[{i}]: {m}"));
        let key = p
            .get("key")
            .and_then(Value::as_str)
            .ok_or_else(|| here("missing key"))?
            .to_owned();
        let op = match p.get("operation").or_else(|| p.get("op")) {
            Some(Value::Number(n)) => match n.as_i64() {
                Some(1) => FilterOp::Equals,
                Some(2) => FilterOp::NotEquals,
                Some(3) => FilterOp::GreaterThan,
                Some(5) => FilterOp::GreaterThanEquals,
                Some(6) => FilterOp::LessThan,
                Some(7) => FilterOp::LessThanEquals,
                Some(8) => FilterOp::In,
                Some(9) => FilterOp::IsSubstring,
                _ => return Err(here(&format!("unknown operation {n}"))),
            },
            Some(Value::String(s)) => match s.as_str() {
                "EQUALS" => FilterOp::Equals,
                "NOT_EQUALS" => FilterOp::NotEquals,
                "GREATER_THAN" => FilterOp::GreaterThan,
                "GREATER_THAN_EQUALS" => FilterOp::GreaterThanEquals,
                "LESS_THAN" => FilterOp::LessThan,
                "LESS_THAN_EQUALS" => FilterOp::LessThanEquals,
                "IN" => FilterOp::In,
                "IS_SUBSTRING" => FilterOp::IsSubstring,
                other => return Err(here(&format!("unknown operation {other:?}"))),
            },
            _ => return Err(here("missing operation")),
        };
        let field = |snake: &str, camel: &str| p.get(snake).or_else(|| p.get(camel)).cloned();
        let int = |v: &Value| -> Option<i64> {
            match v {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            }
        };
        let value = if let Some(s) = field("string_value", "stringValue") {
            FilterValue::String(s.as_str().unwrap_or_default().to_owned())
        } else if let Some(n) =
            field("int_value", "intValue").or_else(|| field("long_value", "longValue"))
        {
            FilterValue::Int(int(&n).ok_or_else(|| here("int_value must be an integer"))?)
        } else if let Some(t) = field("timestamp_value", "timestampValue") {
            let t = t
                .as_str()
                .and_then(Timestamp::parse_rfc3339)
                .ok_or_else(|| here("timestamp_value must be RFC 3339"))?;
            FilterValue::Timestamp(t)
        } else if let Some(l) = field("string_values", "stringValues") {
            let items = l
                .get("values")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            FilterValue::Strings(
                items
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect(),
            )
        } else if let Some(l) =
            field("int_values", "intValues").or_else(|| field("long_values", "longValues"))
        {
            let items = l
                .get("values")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            FilterValue::Ints(items.iter().filter_map(int).collect())
        } else {
            return Err(here(
                "needs a value (string_value, int_value, long_value, timestamp_value, string_values, int_values)",
            ));
        };
        out.push(Filter {
            field: key,
            op,
            value,
        });
    }
    Ok(out)
}

/// Rows read from the store at a time while a page is assembled: a page of
/// large items is never held whole before it is cut.
const LIST_CHUNK: i64 = 50;

/// One page of a listing in KFP's shape (`{key: [...], total_size,
/// next_page_token}`), read through `fetch` and rendered with `render`.
///
/// The page holds `q.page_size` items unless their JSON would pass
/// [`limits::MAX_LIST_BYTES`]: then it ends after the items that fit (at
/// least one) and `next_page_token` continues right after them. Rows are
/// read [`LIST_CHUNK`] at a time; a page cut inside a chunk is read again
/// with just the rows that fit, so that the store issues the token that
/// follows them.
async fn list_page<T, Fut>(
    q: ListQuery,
    key: &str,
    fetch: impl Fn(ListQuery) -> Fut,
    render: impl Fn(T) -> Value,
) -> ApiResult<Value>
where
    Fut: std::future::Future<Output = Result<Page<T>, StoreError>>,
{
    let want = q.effective_page_size().min(limits::MAX_PAGE_SIZE);
    let mut items: Vec<Value> = Vec::new();
    let mut bytes = 0usize;
    let mut token = q.page_token.clone();
    let mut total_size: i64;
    let next_page_token = loop {
        let remaining = want - items.len() as i64;
        let chunk = ListQuery {
            page_size: remaining.min(LIST_CHUNK),
            page_token: token.clone(),
            ..q.clone()
        };
        let page = fetch(chunk.clone()).await?;
        total_size = page.total_size;
        let (rows, next) = (page.items, page.next_page_token);
        let read = rows.len();
        let mut fit = Vec::with_capacity(read);
        for row in rows {
            let v = render(row);
            let n = limits::json_len(&v) + 1;
            if bytes + n > limits::MAX_LIST_BYTES && !(items.is_empty() && fit.is_empty()) {
                break;
            }
            bytes += n;
            fit.push(v);
        }
        if fit.len() < read {
            if fit.is_empty() {
                // Nothing of this chunk fits: the page ends where it began.
                break token;
            }
            let again = fetch(ListQuery {
                page_size: fit.len() as i64,
                ..chunk
            })
            .await?;
            items.extend(again.items.into_iter().map(&render));
            break again.next_page_token;
        }
        items.extend(fit);
        if next.is_none() || items.len() as i64 >= want {
            break next;
        }
        token = next;
    };
    let mut m = Map::new();
    if !items.is_empty() {
        m.insert(key.into(), Value::Array(items));
    }
    m.insert("total_size".into(), json!(total_size));
    if let Some(t) = next_page_token {
        m.insert("next_page_token".into(), json!(t));
    }
    Ok(Value::Object(m))
}

// ------------------------------------------------------------ experiments

fn experiment_json(e: ExperimentRecord) -> Value {
    json!({
        "experiment_id": e.id,
        "display_name": e.display_name,
        "description": e.description,
        "created_at": e.created_at.to_rfc3339(),
        "namespace": e.namespace,
        "storage_state": storage_name(e.storage_state),
        "last_run_created_at": ts(e.last_run_created_at),
    })
}

fn storage_name(s: StorageState) -> &'static str {
    match s {
        StorageState::Available => "AVAILABLE",
        StorageState::Archived => "ARCHIVED",
    }
}

fn body_namespace(state: &AppState, v: &Value) -> ApiResult<Namespace> {
    match v
        .get("namespace")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => Ok(state.default_namespace.clone()),
        Some(n) => Namespace::new(n).map_err(|e| ApiError::bad_request(format!("namespace: {e}"))),
    }
}

/// The body's `namespace` when it names one (`None` when absent or empty).
fn explicit_namespace(v: &Value) -> ApiResult<Option<Namespace>> {
    match v.get("namespace") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Namespace::new(s.trim())
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("namespace: {e}"))),
        Some(other) => Err(ApiError::bad_request(format!(
            "namespace: expected a string, got {other}"
        ))),
    }
}

/// The namespace a run or recurring run goes to: the one its experiment
/// is in, which the request's own `namespace`, when it names one, must
/// agree with (a run never lands in another namespace than the one asked
/// for). Without an experiment: the request's, else the default.
pub(crate) async fn run_namespace(
    state: &AppState,
    requested: Option<Namespace>,
    experiment_id: Option<&str>,
) -> ApiResult<Namespace> {
    let Some(eid) = experiment_id else {
        return Ok(requested.unwrap_or_else(|| state.default_namespace.clone()));
    };
    let e = state.store().get_experiment(eid).await?.ok_or_else(|| {
        ApiError::bad_request(format!("experiment_id: experiment {eid:?} not found"))
    })?;
    match requested {
        Some(ns) if ns != e.namespace => Err(ApiError::bad_request(format!(
            "experiment_id: experiment {eid:?} is in namespace {:?}, but the request names namespace {:?}; \
             use an experiment of namespace {:?}, or leave namespace out to use the experiment's",
            e.namespace.as_str(),
            ns.as_str(),
            ns.as_str()
        ))),
        _ => Ok(e.namespace),
    }
}

/// Refuses a pipeline (version) reference whose pipeline belongs to
/// another namespace than `namespace` (shared pipelines, with no
/// namespace, may be used from any).
pub(crate) async fn check_pipeline_namespace(
    state: &AppState,
    pipeline_ref: Option<&(String, String)>,
    namespace: &Namespace,
) -> ApiResult<()> {
    let Some((pid, _)) = pipeline_ref else {
        return Ok(());
    };
    let Some(p) = state.store().get_pipeline(pid).await? else {
        return Ok(());
    };
    match &p.namespace {
        Some(ns) if ns != namespace => Err(ApiError::bad_request(format!(
            "pipeline_version_reference.pipeline_id: pipeline {pid:?} is in namespace {:?}, but the run would be in namespace {:?}; \
             upload the pipeline to namespace {:?} or without a namespace (shared)",
            ns.as_str(),
            namespace.as_str(),
            namespace.as_str()
        ))),
        _ => Ok(()),
    }
}

/// `experiment_id` and `namespace` both given to a list: they must agree
/// (an unknown experiment lists nothing, as before).
pub(crate) async fn check_list_namespace(
    state: &AppState,
    p: &ListParams,
    eid: &str,
) -> ApiResult<()> {
    if non_empty(&p.namespace).is_none() {
        return Ok(());
    }
    let ns = p.namespace(state)?;
    match state.store().get_experiment(eid).await? {
        Some(e) if e.namespace != ns => Err(ApiError::bad_request(format!(
            "experiment_id: experiment {eid:?} is in namespace {:?}, but the request names namespace {:?}; give one of them",
            e.namespace.as_str(),
            ns.as_str()
        ))),
        _ => Ok(()),
    }
}

/// Scopes a KFP list to one experiment (whose stored namespace is the one
/// listed) or to the request's namespace, once `who` may list there.
pub(crate) async fn scope_list(
    state: &AppState,
    who: &Who,
    p: &ListParams,
    experiment: Option<&str>,
    q: &mut ListQuery,
) -> ApiResult<()> {
    match experiment {
        Some(eid) => {
            let ns = match state.store().get_experiment(eid).await? {
                Some(e) => e.namespace,
                None => p.namespace(state)?,
            };
            who.may(Verb::List, &ns)?;
            q.filters.push(Filter::new(
                "experiment_id",
                FilterOp::Equals,
                FilterValue::String(eid.to_owned()),
            ));
        }
        None => {
            let ns = p.namespace(state)?;
            who.may(Verb::List, &ns)?;
            q.namespace = Some(ns);
        }
    }
    Ok(())
}

fn required_str<'a>(v: &'a Value, field: &str) -> ApiResult<&'a str> {
    match v.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            Err(ApiError::bad_request(format!("{field}: required")))
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "{field}: expected a string, got {other}"
        ))),
    }
}

fn optional_str(v: &Value, field: &str) -> ApiResult<String> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(ApiError::bad_request(format!(
            "{field}: expected a string, got {other}"
        ))),
    }
}

fn json_body(body: axum::body::Bytes) -> ApiResult<Value> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("request body: not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "request body: expected a JSON object",
        ));
    }
    Ok(v)
}

async fn create_experiment(
    State(state): State<AppState>,
    who: Who,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let v = json_body(body)?;
    let name = required_str(&v, "display_name")?;
    limits::name("display_name", name)?;
    let description = optional_str(&v, "description")?;
    limits::description("description", &description)?;
    let namespace = body_namespace(&state, &v)?;
    who.may(Verb::Create, &namespace)?;
    let e = ExperimentRecord {
        id: oxflow_core::new_id(),
        namespace,
        display_name: name.to_owned(),
        description,
        created_at: Timestamp::now(),
        storage_state: StorageState::Available,
        last_run_created_at: None,
    };
    state.store().insert_experiment(&e).await?;
    Ok(Json(experiment_json(e)))
}

async fn list_experiments(
    State(state): State<AppState>,
    who: Who,
    Query(p): Query<ListParams>,
) -> ApiResult<Json<Value>> {
    let mut q = p.query("created_at")?;
    let ns = p.namespace(&state)?;
    who.may(Verb::List, &ns)?;
    q.namespace = Some(ns);
    let store = state.store();
    let page = list_page(
        q,
        "experiments",
        |q| async move { store.list_experiments(&q).await },
        experiment_json,
    )
    .await?;
    Ok(Json(page))
}

/// The experiment `id`, if `who` may do `verb` in its namespace.
async fn load_experiment(
    state: &AppState,
    who: &Who,
    verb: Verb,
    id: &str,
) -> ApiResult<ExperimentRecord> {
    let e = state
        .store()
        .get_experiment(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("experiment {id:?} not found")))?;
    who.may(verb, &e.namespace)?;
    Ok(e)
}

async fn get_experiment(
    State(state): State<AppState>,
    who: Who,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(experiment_json(
        load_experiment(&state, &who, Verb::Get, &id).await?,
    )))
}

async fn delete_experiment(
    State(state): State<AppState>,
    who: Who,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    load_experiment(&state, &who, Verb::Delete, &id).await?;
    if !state.store().delete_experiment(&id).await? {
        return Err(ApiError::not_found(format!("experiment {id:?} not found")));
    }
    Ok(Json(json!({})))
}

async fn experiment_verb(
    State(state): State<AppState>,
    who: Who,
    Path(id_verb): Path<String>,
) -> ApiResult<Json<Value>> {
    let (id, verb) = split_verb(&id_verb)?;
    let storage = match verb {
        "archive" => StorageState::Archived,
        "unarchive" => StorageState::Available,
        other => {
            return Err(ApiError::not_found(format!(
                "unknown experiment action {other:?} (archive, unarchive)"
            )));
        }
    };
    load_experiment(&state, &who, Verb::Update, id).await?;
    state
        .store()
        .set_experiment_storage_state(id, storage, Timestamp::now())
        .await?;
    Ok(Json(json!({})))
}

fn split_verb(id_verb: &str) -> ApiResult<(&str, &str)> {
    id_verb.split_once(':').ok_or_else(|| {
        ApiError::not_found(format!(
            "no such route: POST .../{id_verb} (use {id_verb}:ACTION)"
        ))
    })
}

// ------------------------------------------------------------------- runs

fn state_name(s: RunState) -> &'static str {
    s.as_str()
}

fn task_json(
    run_id: &str,
    t: &TaskRecord,
    by_path: &BTreeMap<&str, &TaskRecord>,
    children: &BTreeMap<&str, Vec<&TaskRecord>>,
) -> Value {
    let parent_id = by_path
        .get(t.parent_path.as_str())
        .map(|p| p.id.clone())
        .unwrap_or_default();
    let artifact_ids = |v: &Value| -> Value {
        let mut m = Map::new();
        if let Some(arts) = v.get("artifacts").and_then(Value::as_object) {
            for (k, list) in arts {
                let uris: Vec<Value> = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.get("uri").cloned())
                    .collect();
                m.insert(k.clone(), json!({"artifact_ids": uris}));
            }
        }
        Value::Object(m)
    };
    let mut history = Vec::new();
    if let Some(s) = t.started_at {
        history.push(json!({"update_time": s.to_rfc3339(), "state": "RUNNING"}));
    }
    if t.state.is_terminal() {
        history.push(json!({"update_time": ts(t.finished_at), "state": t.state.as_str()}));
    }
    let mut v = json!({
        "run_id": run_id,
        "task_id": t.id,
        "display_name": t.display_name,
        "create_time": t.created_at.to_rfc3339(),
        "start_time": ts(t.started_at),
        "end_time": ts(t.finished_at),
        "state": if t.cached && t.state == TaskState::Succeeded { "SKIPPED" } else { t.state.as_str() },
        "execution_id": t.id,
        "inputs": artifact_ids(&t.inputs),
        "outputs": artifact_ids(&t.outputs),
        "parent_task_id": parent_id,
        // The pod its last attempt's process ran as (`task_pods`); none for
        // a DAG, a cached task or one not started.
        "pod_name": if t.log_path.is_some() && t.attempt >= 1 && !t.cached {
            crate::task_pods::pod_name(run_id, &t.path, u32::try_from(t.attempt).unwrap_or(u32::MAX))
        } else {
            String::new()
        },
        "state_history": history,
        "child_tasks": children.get(t.path.as_str()).into_iter().flatten().map(|c| json!({"task_id": c.id, "pod_name": ""})).collect::<Vec<_>>(),
    });
    if let Some(e) = &t.error
        && t.state == TaskState::Failed
    {
        v["error"] = json!({"code": 2, "message": e});
    }
    v
}

fn run_json(r: RunRecord, tasks: Option<&[TaskRecord]>) -> Value {
    let spec = r.spec.clone();
    let pipeline_spec = if spec.get("platform_spec").is_some() {
        spec
    } else {
        spec.get("pipeline_spec").cloned().unwrap_or(spec)
    };
    let history: Vec<Value> = r
        .state_history
        .iter()
        .map(|h| {
            let mut o =
                json!({"update_time": h.update_time.to_rfc3339(), "state": h.state.as_str()});
            if let Some(e) = &h.error {
                o["error"] = json!({"code": 2, "message": e});
            }
            o
        })
        .collect();
    let mut v = json!({
        "run_id": r.id,
        "experiment_id": r.experiment_id.clone().unwrap_or_default(),
        "display_name": r.display_name,
        "description": r.description,
        "storage_state": storage_name(r.storage_state),
        "pipeline_spec": pipeline_spec,
        "runtime_config": {"parameters": r.parameters, "pipeline_root": ""},
        "service_account": "pipeline-runner",
        "created_at": r.created_at.to_rfc3339(),
        "scheduled_at": ts(r.scheduled_at.or(Some(r.created_at))),
        "finished_at": ts(r.finished_at),
        "state": state_name(r.state),
        "state_history": history,
        "recurring_run_id": r.recurring_run_id.clone().unwrap_or_default(),
        "namespace": r.namespace,
    });
    if let (Some(p), Some(pv)) = (&r.pipeline_id, &r.pipeline_version_id) {
        v["pipeline_version_reference"] = json!({"pipeline_id": p, "pipeline_version_id": pv});
        v["pipeline_version_id"] = json!(pv);
    }
    if let Some(e) = &r.error
        && r.state == RunState::Failed
    {
        v["error"] = json!({"code": 2, "message": e});
    }
    if let Some(tasks) = tasks {
        let by_path: BTreeMap<&str, &TaskRecord> =
            tasks.iter().map(|t| (t.path.as_str(), t)).collect();
        let mut children: BTreeMap<&str, Vec<&TaskRecord>> = BTreeMap::new();
        for t in tasks {
            children.entry(t.parent_path.as_str()).or_default().push(t);
        }
        let details: Vec<Value> = tasks
            .iter()
            .map(|t| task_json(&r.id, t, &by_path, &children))
            .collect();
        v["run_details"] = json!({"pipeline_context_id": "", "pipeline_run_context_id": "", "task_details": details});
    }
    v
}

async fn create_run(
    State(state): State<AppState>,
    who: Who,
    Query(q): Query<BTreeMap<String, String>>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let v = json_body(body)?;
    let display_name = required_str(&v, "display_name")?.to_owned();
    limits::name("display_name", &display_name)?;
    let description = optional_str(&v, "description")?;
    limits::description("description", &description)?;
    let experiment_id = v
        .get("experiment_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| q.get("experiment_id").filter(|s| !s.is_empty()).cloned());
    let namespace =
        run_namespace(&state, explicit_namespace(&v)?, experiment_id.as_deref()).await?;
    who.may(Verb::Create, &namespace)?;
    let (pipeline, pipeline_ref) = resolve_spec(&state, &v).await?;
    check_pipeline_namespace(&state, pipeline_ref.as_ref(), &namespace).await?;
    let params = match v.get("runtime_config").and_then(|c| c.get("parameters")) {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(p @ Value::Object(m)) => {
            limits::json_field("runtime_config.parameters", p, limits::MAX_PARAMETERS_BYTES)?;
            m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "runtime_config.parameters: expected an object, got {other}"
            )));
        }
    };
    let req = SubmitRequest {
        namespace,
        display_name: Some(display_name),
        parameters: params,
        options: RunOptions::in_current_dir(),
    };
    let engine = state.controller.engine();
    let mut run = engine.prepare(&pipeline, req)?;
    run.experiment_id = experiment_id.clone();
    run.description = description;
    if let Some((p, pv)) = pipeline_ref {
        run.pipeline_id = Some(p);
        run.pipeline_version_id = Some(pv);
    }
    state.store().insert_run(&run).await?;
    if let Some(eid) = &experiment_id {
        state.store().touch_last_run(eid, run.created_at).await?;
    }
    state.controller.nudge();
    Ok(Json(run_json(run, None)))
}

/// The pipeline a run or recurring run executes: inline `pipeline_spec`
/// (bare or wrapped with `platform_spec`) or `pipeline_version_reference`.
async fn resolve_spec(
    state: &AppState,
    v: &Value,
) -> ApiResult<(Pipeline, Option<(String, String)>)> {
    if let Some(spec) = v.get("pipeline_spec").filter(|s| !s.is_null()) {
        let p = Pipeline::from_json(spec.clone(), "pipeline_spec")?;
        return Ok((p, None));
    }
    let reference = v.get("pipeline_version_reference").filter(|r| !r.is_null());
    let legacy = v
        .get("pipeline_version_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let version_id = reference
        .and_then(|r| r.get("pipeline_version_id"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or(legacy);
    let pipeline_id = reference
        .and_then(|r| r.get("pipeline_id"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let version = match (pipeline_id, version_id) {
        (pid, Some(vid)) => {
            let version = state
                .store()
                .get_pipeline_version(vid)
                .await?
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "pipeline_version_reference.pipeline_version_id: version {vid:?} not found"
                    ))
                })?;
            if let Some(pid) = pid
                && pid != version.pipeline_id
            {
                return Err(ApiError::bad_request(format!(
                    "pipeline_version_reference.pipeline_version_id: version {vid:?} belongs to pipeline {:?}, not to pipeline_id {pid:?}",
                    version.pipeline_id
                )));
            }
            version
        }
        (Some(pid), None) => {
            let q = ListQuery {
                sort: Sort {
                    field: "created_at".into(),
                    desc: true,
                },
                page_size: 1,
                ..Default::default()
            };
            state
                .store()
                .list_pipeline_versions(pid, &q)
                .await?
                .items
                .into_iter()
                .next()
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "pipeline_version_reference.pipeline_id: pipeline {pid:?} has no versions"
                    ))
                })?
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "pipeline_spec: required (or pipeline_version_reference with pipeline_id / pipeline_version_id)",
            ));
        }
    };
    let p = Pipeline::from_json(version.spec.clone(), "pipeline version")?;
    Ok((p, Some((version.pipeline_id, version.id))))
}

async fn list_runs(
    State(state): State<AppState>,
    who: Who,
    Query(p): Query<ListParams>,
) -> ApiResult<Json<Value>> {
    let mut q = p.query("created_at")?;
    let exp = non_empty(&p.experiment_id).or(non_empty(&p.reference_id));
    if let Some(eid) = exp {
        check_list_namespace(&state, &p, eid).await?;
    }
    scope_list(&state, &who, &p, exp, &mut q).await?;
    let store = state.store();
    let page = list_page(
        q,
        "runs",
        |q| async move { store.list_runs_page(&q).await },
        |r| run_json(r, None),
    )
    .await?;
    Ok(Json(page))
}

async fn get_run(
    State(state): State<AppState>,
    who: Who,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let run = state
        .store()
        .get_run(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {id:?} not found")))?;
    who.may(Verb::Get, &run.namespace)?;
    let tasks = state.store().list_tasks(&run.id).await?;
    Ok(Json(run_json(run, Some(&tasks))))
}

async fn delete_run(
    State(state): State<AppState>,
    who: Who,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let run = state
        .store()
        .get_run(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {id:?} not found")))?;
    who.may(Verb::Delete, &run.namespace)?;
    // What `oxflow runs delete` removes: the artifacts directory too.
    state.controller.delete_run(&run).await?;
    Ok(Json(json!({})))
}

async fn run_verb(
    State(state): State<AppState>,
    who: Who,
    Path(id_verb): Path<String>,
) -> ApiResult<Json<Value>> {
    let (id, verb) = split_verb(&id_verb)?;
    let mut run = state
        .store()
        .get_run(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {id:?} not found")))?;
    who.may(Verb::Update, &run.namespace)?;
    match verb {
        "terminate" => state.controller.terminate(&run.id).await?,
        "archive" | "unarchive" => {
            let s = if verb == "archive" {
                StorageState::Archived
            } else {
                StorageState::Available
            };
            state.store().set_run_storage_state(&run.id, s).await?;
        }
        "retry" => {
            if !matches!(run.state, RunState::Failed | RunState::Canceled) {
                return Err(ApiError {
                    status: axum::http::StatusCode::PRECONDITION_FAILED,
                    message: format!(
                        "run {id:?} is {}; only failed or canceled runs can be retried",
                        run.state
                    ),
                });
            }
            // Its succeeded tasks are kept; the engine re-runs the rest.
            run.state = RunState::Pending;
            run.finished_at = None;
            run.error = None;
            state.store().update_run(&run).await?;
            state.controller.nudge();
        }
        other => {
            return Err(ApiError::not_found(format!(
                "unknown run action {other:?} (terminate, retry, archive, unarchive)"
            )));
        }
    }
    Ok(Json(json!({})))
}

// -------------------------------------------------------------- pipelines

fn pipeline_json(p: PipelineRecord) -> Value {
    json!({
        "pipeline_id": p.id,
        "display_name": p.display_name,
        "name": p.name,
        "description": p.description,
        "created_at": p.created_at.to_rfc3339(),
        "namespace": p.namespace.map(|n| n.to_string()).unwrap_or_default(),
    })
}

fn version_json(v: PipelineVersionRecord) -> Value {
    let spec = v.spec;
    let pipeline_spec = if spec.get("platform_spec").is_some() {
        spec
    } else {
        spec.get("pipeline_spec").cloned().unwrap_or(spec)
    };
    json!({
        "pipeline_id": v.pipeline_id,
        "pipeline_version_id": v.id,
        "display_name": v.display_name,
        "name": v.name,
        "description": v.description,
        "created_at": v.created_at.to_rfc3339(),
        "pipeline_spec": pipeline_spec,
        "code_source_url": v.code_source_url.unwrap_or_default(),
    })
}

/// The uploaded file (`uploadfile` part), parsed as a pipeline package.
async fn read_upload(mut mp: Multipart) -> ApiResult<(Pipeline, String)> {
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("uploadfile: malformed multipart body: {e}")))?
    {
        if field.name() != Some("uploadfile") {
            continue;
        }
        let filename = field.file_name().unwrap_or("pipeline.yaml").to_owned();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| ApiError::bad_request(format!("uploadfile: {e}")))?;
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            ApiError::bad_request(format!(
                "uploadfile: {filename} is not UTF-8 text; upload the compiled pipeline YAML or JSON"
            ))
        })?;
        let p = Pipeline::load_str(text, &filename)?;
        let stem = filename
            .rsplit_once('.')
            .map(|(s, _)| s.to_owned())
            .unwrap_or(filename);
        return Ok((p, stem));
    }
    Err(ApiError::bad_request(
        "uploadfile: the multipart body has no part named uploadfile",
    ))
}

#[derive(Debug, Default, Deserialize)]
struct UploadParams {
    name: Option<String>,
    display_name: Option<String>,
    description: Option<String>,
    namespace: Option<String>,
    pipelineid: Option<String>,
}

impl UploadParams {
    /// The limits on the names and description given in the query.
    fn check(&self) -> ApiResult<()> {
        for (field, value) in [("name", &self.name), ("display_name", &self.display_name)] {
            if let Some(v) = value {
                limits::name(field, v)?;
            }
        }
        if let Some(d) = &self.description {
            limits::description("description", d)?;
        }
        Ok(())
    }
}

async fn upload_pipeline(
    State(state): State<AppState>,
    who: Who,
    Query(q): Query<UploadParams>,
    mp: Multipart,
) -> ApiResult<Json<Value>> {
    q.check()?;
    let (pipeline, stem) = read_upload(mp).await?;
    let name = non_empty(&q.name)
        .or(non_empty(&q.display_name))
        .map(str::to_owned)
        .unwrap_or_else(|| pipeline.spec.pipeline_info.name.clone());
    let _ = stem;
    limits::name("name", &name)?;
    let namespace = match non_empty(&q.namespace) {
        None => None,
        Some(n) => {
            Some(Namespace::new(n).map_err(|e| ApiError::bad_request(format!("namespace: {e}")))?)
        }
    };
    who.may_in(Verb::Create, namespace.as_ref())?;
    let now = Timestamp::now();
    let p = PipelineRecord {
        id: oxflow_core::new_id(),
        namespace,
        name: name.clone(),
        display_name: non_empty(&q.display_name).unwrap_or(&name).to_owned(),
        description: q.description.clone().unwrap_or_default(),
        created_at: now,
    };
    let v = PipelineVersionRecord {
        id: oxflow_core::new_id(),
        pipeline_id: p.id.clone(),
        name: name.clone(),
        display_name: name,
        description: q.description.unwrap_or_default(),
        created_at: now,
        spec: pipeline.to_stored_json(),
        code_source_url: None,
    };
    state.store().insert_pipeline_with_version(&p, &v).await?;
    Ok(Json(pipeline_json(p)))
}

async fn upload_pipeline_version(
    State(state): State<AppState>,
    who: Who,
    Query(q): Query<UploadParams>,
    mp: Multipart,
) -> ApiResult<Json<Value>> {
    q.check()?;
    let pid = non_empty(&q.pipelineid)
        .ok_or_else(|| ApiError::bad_request("pipelineid: required"))?
        .to_owned();
    let parent =
        state.store().get_pipeline(&pid).await?.ok_or_else(|| {
            ApiError::not_found(format!("pipelineid: pipeline {pid:?} not found"))
        })?;
    who.may_in(Verb::Update, parent.namespace.as_ref())?;
    if let Some(n) = non_empty(&q.namespace) {
        let ns = Namespace::new(n).map_err(|e| ApiError::bad_request(format!("namespace: {e}")))?;
        if parent.namespace.as_ref() != Some(&ns) {
            return Err(ApiError::bad_request(format!(
                "namespace: pipeline {pid:?} is {}, but the request names namespace {:?}; leave namespace out (a version belongs to its pipeline's namespace)",
                match &parent.namespace {
                    Some(p) => format!("in namespace {:?}", p.as_str()),
                    None => "shared (no namespace)".to_owned(),
                },
                ns.as_str()
            )));
        }
    }
    let (pipeline, stem) = read_upload(mp).await?;
    let name = non_empty(&q.name)
        .or(non_empty(&q.display_name))
        .map(str::to_owned)
        .unwrap_or(stem);
    limits::name("name", &name)?;
    let v = PipelineVersionRecord {
        id: oxflow_core::new_id(),
        pipeline_id: parent.id,
        name: name.clone(),
        display_name: non_empty(&q.display_name).unwrap_or(&name).to_owned(),
        description: q.description.unwrap_or_default(),
        created_at: Timestamp::now(),
        spec: pipeline.to_stored_json(),
        code_source_url: None,
    };
    state.store().insert_pipeline_version(&v).await?;
    Ok(Json(version_json(v)))
}

async fn create_pipeline(
    State(state): State<AppState>,
    who: Who,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let v = json_body(body)?;
    let display = required_str(&v, "display_name")?.to_owned();
    limits::name("display_name", &display)?;
    let description = optional_str(&v, "description")?;
    limits::description("description", &description)?;
    let namespace = match v
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(n) => {
            Some(Namespace::new(n).map_err(|e| ApiError::bad_request(format!("namespace: {e}")))?)
        }
    };
    who.may_in(Verb::Create, namespace.as_ref())?;
    let p = PipelineRecord {
        id: oxflow_core::new_id(),
        namespace,
        name: v
            .get("name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or(&display)
            .to_owned(),
        display_name: display,
        description,
        created_at: Timestamp::now(),
    };
    limits::name("name", &p.name)?;
    state.store().insert_pipeline(&p).await?;
    Ok(Json(pipeline_json(p)))
}

async fn list_pipelines(
    State(state): State<AppState>,
    who: Who,
    Query(p): Query<ListParams>,
) -> ApiResult<Json<Value>> {
    // Every namespace's pipelines and the shared ones.
    who.may_everywhere(Verb::List)?;
    let q = p.query("created_at")?;
    let store = state.store();
    let page = list_page(
        q,
        "pipelines",
        |q| async move { store.list_pipelines(&q).await },
        pipeline_json,
    )
    .await?;
    Ok(Json(page))
}

/// The pipeline `id`, if `who` may do `verb` to it.
async fn load_pipeline(
    state: &AppState,
    who: &Who,
    verb: Verb,
    id: &str,
) -> ApiResult<PipelineRecord> {
    let p = state
        .store()
        .get_pipeline(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("pipeline {id:?} not found")))?;
    who.may_in(verb, p.namespace.as_ref())?;
    Ok(p)
}

async fn get_pipeline(
    State(state): State<AppState>,
    who: Who,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let p = load_pipeline(&state, &who, Verb::Get, &id).await?;
    Ok(Json(pipeline_json(p)))
}

async fn get_pipeline_by_name(
    State(state): State<AppState>,
    who: Who,
    Path(name): Path<String>,
    Query(p): Query<ListParams>,
) -> ApiResult<Json<Value>> {
    let ns = match non_empty(&p.namespace) {
        None => None,
        Some(n) => {
            Some(Namespace::new(n).map_err(|e| ApiError::bad_request(format!("namespace: {e}")))?)
        }
    };
    let rec = state
        .store()
        .get_pipeline_by_name(ns.as_ref(), &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("pipeline named {name:?} not found")))?;
    who.may_in(Verb::Get, rec.namespace.as_ref())?;
    Ok(Json(pipeline_json(rec)))
}

#[derive(Debug, Default, Deserialize)]
struct DeleteParams {
    cascade: Option<String>,
}

async fn delete_pipeline(
    State(state): State<AppState>,
    who: Who,
    Path(id): Path<String>,
    Query(q): Query<DeleteParams>,
) -> ApiResult<Json<Value>> {
    load_pipeline(&state, &who, Verb::Delete, &id).await?;
    let cascade = matches!(q.cascade.as_deref(), Some("true") | Some("1"));
    if !state.store().delete_pipeline(&id, cascade).await? {
        return Err(ApiError::not_found(format!("pipeline {id:?} not found")));
    }
    Ok(Json(json!({})))
}

async fn list_pipeline_versions(
    State(state): State<AppState>,
    who: Who,
    Path(id): Path<String>,
    Query(p): Query<ListParams>,
) -> ApiResult<Json<Value>> {
    load_pipeline(&state, &who, Verb::List, &id).await?;
    let q = p.query("created_at")?;
    let store = state.store();
    let id = &id;
    let page = list_page(
        q,
        "pipeline_versions",
        |q| async move { store.list_pipeline_versions(id, &q).await },
        version_json,
    )
    .await?;
    Ok(Json(page))
}

async fn get_pipeline_version(
    State(state): State<AppState>,
    who: Who,
    Path((id, vid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    load_pipeline(&state, &who, Verb::Get, &id).await?;
    let v = state
        .store()
        .get_pipeline_version(&vid)
        .await?
        .filter(|v| v.pipeline_id == id)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "pipeline version {vid:?} of pipeline {id:?} not found"
            ))
        })?;
    Ok(Json(version_json(v)))
}

async fn delete_pipeline_version(
    State(state): State<AppState>,
    who: Who,
    Path((id, vid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    load_pipeline(&state, &who, Verb::Update, &id).await?;
    let exists = state
        .store()
        .get_pipeline_version(&vid)
        .await?
        .is_some_and(|v| v.pipeline_id == id);
    if !exists || !state.store().delete_pipeline_version(&vid).await? {
        return Err(ApiError::not_found(format!(
            "pipeline version {vid:?} of pipeline {id:?} not found"
        )));
    }
    Ok(Json(json!({})))
}
