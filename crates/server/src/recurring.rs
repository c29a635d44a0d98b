//! KFP v2beta1 recurring runs: `POST/GET /recurringruns`,
//! `GET/DELETE /recurringruns/{id}`, `POST /recurringruns/{id}:enable|:disable`.
//! Shapes follow `kfp-server-api` 2.17 (`V2beta1RecurringRun`; the list key
//! is camelCase `recurringRuns`). The runs themselves are created by
//! `oxflow_pipelines::RecurringRunScheduler`, which reads what is stored here.
//!
//! A child module of `kfp` so that it shares that module's request helpers.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use oxflow_core::Timestamp;
use oxflow_pipelines::{RunOptions, SubmitRequest, Trigger, check_max_concurrency};
use oxflow_store::RecurringRunRecord;
use serde_json::{Value, json};

use super::{
    ListParams, check_list_namespace, check_pipeline_namespace, explicit_namespace, json_body,
    list_page, non_empty, optional_str, required_str, resolve_spec, run_namespace, scope_list,
    split_verb,
};
use crate::AppState;
use crate::caller::Who;
use crate::error::{ApiError, ApiResult};
use crate::limits;
use crate::routes::Routes;
use oxflow_auth::Verb;

pub(super) fn routes() -> Routes {
    Routes::new()
        .route(
            "/recurringruns",
            post(create_recurring_run).get(list_recurring_runs),
        )
        .route(
            "/recurringruns/{id}",
            get(get_recurring_run)
                .delete(delete_recurring_run)
                .post(recurring_run_verb),
        )
}

/// The wire shape of a stored recurring run.
fn recurring_run_json(rr: RecurringRunRecord) -> Value {
    let (mode, status) = if rr.enabled {
        ("ENABLE", "ENABLED")
    } else {
        ("DISABLE", "DISABLED")
    };
    let mut v = json!({
        "recurring_run_id": rr.id,
        "display_name": rr.display_name,
        "description": rr.description,
        "runtime_config": rr.runtime_config,
        "service_account": "pipeline-runner",
        "max_concurrency": rr.max_concurrency,
        "trigger": rr.trigger,
        "mode": mode,
        "created_at": rr.created_at.to_rfc3339(),
        "updated_at": rr.updated_at.to_rfc3339(),
        "status": status,
        "no_catchup": rr.no_catchup,
        "namespace": rr.namespace,
        "experiment_id": rr.experiment_id.unwrap_or_default(),
    });
    if let Some(spec) = rr.spec {
        // Stored as {"pipeline_spec", "platform_spec"}; KFP answers the bare
        // spec unless there is a platform spec (as for runs).
        v["pipeline_spec"] = if spec.get("platform_spec").is_some() {
            spec
        } else {
            spec.get("pipeline_spec").cloned().unwrap_or(spec)
        };
    }
    if let (Some(p), Some(pv)) = (rr.pipeline_id, rr.pipeline_version_id) {
        v["pipeline_version_reference"] = json!({"pipeline_id": p, "pipeline_version_id": pv});
        v["pipeline_version_id"] = json!(pv);
    }
    v
}

/// `max_concurrency`: int64 as a number or a string; absent means 1.
fn max_concurrency(v: &Value) -> ApiResult<i64> {
    let n = match v.get("max_concurrency") {
        None | Some(Value::Null) => return Ok(1),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(1),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(_) => None,
    };
    let n = n.ok_or_else(|| {
        ApiError::bad_request(format!(
            "max_concurrency: expected an integer, got {}",
            v["max_concurrency"]
        ))
    })?;
    check_max_concurrency(n).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// `mode`: `ENABLE` (also when absent or unspecified) or `DISABLE`.
fn enabled(v: &Value) -> ApiResult<bool> {
    match v.get("mode") {
        None | Some(Value::Null) => Ok(true),
        Some(Value::String(s)) => match s.as_str() {
            "" | "ENABLE" | "MODE_UNSPECIFIED" => Ok(true),
            "DISABLE" => Ok(false),
            other => Err(ApiError::bad_request(format!(
                "mode: unknown mode {other:?} (ENABLE or DISABLE)"
            ))),
        },
        Some(other) => Err(ApiError::bad_request(format!(
            "mode: expected \"ENABLE\" or \"DISABLE\", got {other}"
        ))),
    }
}

fn no_catchup(v: &Value) -> ApiResult<bool> {
    match v.get("no_catchup") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(ApiError::bad_request(format!(
            "no_catchup: expected true or false, got {other}"
        ))),
    }
}

async fn create_recurring_run(
    State(state): State<AppState>,
    who: Who,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let v = json_body(body)?;
    let display_name = required_str(&v, "display_name")?.to_owned();
    limits::name("display_name", &display_name)?;
    let description = optional_str(&v, "description")?;
    limits::description("description", &description)?;
    let trigger_json = v.get("trigger").unwrap_or(&Value::Null);
    limits::json_field("trigger", trigger_json, limits::MAX_SMALL_FIELD_BYTES)?;
    let trigger =
        Trigger::from_json(trigger_json).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let max_concurrency = max_concurrency(&v)?;
    let enabled = enabled(&v)?;
    let no_catchup = no_catchup(&v)?;
    let experiment_id = v
        .get("experiment_id")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let namespace =
        run_namespace(&state, explicit_namespace(&v)?, experiment_id.as_deref()).await?;
    who.may(Verb::Create, &namespace)?;
    let (pipeline, pipeline_ref) = resolve_spec(&state, &v).await?;
    check_pipeline_namespace(&state, pipeline_ref.as_ref(), &namespace).await?;
    let runtime_config = v.get("runtime_config").cloned().unwrap_or(Value::Null);
    let parameters = match runtime_config.get("parameters") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(p @ Value::Object(m)) => {
            limits::json_field("runtime_config.parameters", p, limits::MAX_PARAMETERS_BYTES)?;
            m.clone()
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "runtime_config.parameters: expected an object, got {other}"
            )));
        }
    };
    // Every run it creates must start: check the parameters now, as a run
    // submission would (nothing is written).
    state.controller.engine().prepare(
        &pipeline,
        SubmitRequest {
            namespace: namespace.clone(),
            display_name: Some(display_name.clone()),
            parameters: parameters
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
            options: RunOptions::in_current_dir(),
        },
    )?;
    let pipeline_root = runtime_config
        .get("pipeline_root")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if pipeline_root.len() > limits::MAX_SMALL_FIELD_BYTES {
        return Err(ApiError::bad_request(format!(
            "runtime_config.pipeline_root: {} bytes is more than the limit of {} bytes",
            pipeline_root.len(),
            limits::MAX_SMALL_FIELD_BYTES
        )));
    }
    let now = Timestamp::now();
    let (pipeline_id, pipeline_version_id) = match pipeline_ref {
        Some((p, pv)) => (Some(p), Some(pv)),
        None => (None, None),
    };
    let rr = RecurringRunRecord {
        id: oxflow_core::new_id(),
        namespace,
        display_name,
        description,
        experiment_id,
        spec: pipeline_version_id
            .is_none()
            .then(|| pipeline.to_stored_json()),
        pipeline_id,
        pipeline_version_id,
        runtime_config: json!({"parameters": parameters, "pipeline_root": pipeline_root}),
        trigger: trigger.to_json(),
        max_concurrency,
        no_catchup,
        enabled,
        created_at: now,
        updated_at: now,
        last_fired_at: None,
    };
    state.store().insert_recurring_run(&rr).await?;
    tracing::info!(recurring_run = %rr.id, name = %rr.display_name, enabled, "Recurring run created.");
    Ok(Json(recurring_run_json(rr)))
}

async fn list_recurring_runs(
    State(state): State<AppState>,
    who: Who,
    Query(p): Query<ListParams>,
) -> ApiResult<Json<Value>> {
    let mut q = p.query("created_at")?;
    if let Some(eid) = non_empty(&p.experiment_id) {
        check_list_namespace(&state, &p, eid).await?;
    }
    scope_list(&state, &who, &p, non_empty(&p.experiment_id), &mut q).await?;
    let store = state.store();
    let page = list_page(
        q,
        "recurringRuns",
        |q| async move { store.list_recurring_runs(&q).await },
        recurring_run_json,
    )
    .await?;
    Ok(Json(page))
}

/// The recurring run `id`, if `who` may do `verb` in its namespace.
async fn load(state: &AppState, who: &Who, verb: Verb, id: &str) -> ApiResult<RecurringRunRecord> {
    let rr = state
        .store()
        .get_recurring_run(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("recurring run {id:?} not found")))?;
    who.may(verb, &rr.namespace)?;
    Ok(rr)
}

async fn get_recurring_run(
    State(state): State<AppState>,
    who: Who,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(recurring_run_json(
        load(&state, &who, Verb::Get, &id).await?,
    )))
}

/// Deletes the schedule; the runs it created are kept (as in KFP).
async fn delete_recurring_run(
    State(state): State<AppState>,
    who: Who,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    load(&state, &who, Verb::Delete, &id).await?;
    if !state.store().delete_recurring_run(&id).await? {
        return Err(ApiError::not_found(format!(
            "recurring run {id:?} not found"
        )));
    }
    Ok(Json(json!({})))
}

async fn recurring_run_verb(
    State(state): State<AppState>,
    who: Who,
    Path(id_verb): Path<String>,
) -> ApiResult<Json<Value>> {
    let (id, verb) = split_verb(&id_verb)?;
    let enable = match verb {
        "enable" => true,
        "disable" => false,
        other => {
            return Err(ApiError::not_found(format!(
                "unknown recurring run action {other:?} (enable, disable)"
            )));
        }
    };
    let rr = load(&state, &who, Verb::Update, id).await?;
    // Enabling an enabled one must not move `updated_at`: slots before
    // the last enabling are never fired, so that would drop waiting ones.
    if rr.enabled != enable {
        state
            .store()
            .set_recurring_run_enabled(&rr.id, enable, Timestamp::now())
            .await?;
    }
    Ok(Json(json!({})))
}
