//! Katib's routes beside the Kubernetes API: Experiments, Trials and
//! Suggestions themselves are resource-model kinds, served (list, get,
//! create, replace, patch, delete, watch) by the generic Kubernetes API
//! at `/apis/kubeflow.org/v1beta1/…`. What Katib does not express as
//! objects lives here:
//!
//! - `GET …/namespaces/{ns}/experiments/{name}/trials` — a `TrialList` of
//!   the experiment's trials in creation order.
//! - `POST …/experiments/{name}/stop`, `POST …/experiments/{name}/resume`
//!   (body `{"maxTrialCount": N}`, optional): stored intent (a `Stopped`
//!   or `Restarting` condition); they answer the experiment.
//! - `GET …/trials/{trial}/logs` — the trial's output.
//! - `GET …/trials/{trial}/metrics` — its observation log (Katib's
//!   `GetObservationLog` shape); `POST` reports metrics for a running trial
//!   (`kind: Push`): `{"metrics": {"loss": 0.1}}`, optionally with
//!   `"timestamp"` (RFC 3339), or Katib's `{"metricLogs": [{"timeStamp",
//!   "metric": {"name", "value"}}]}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use oxflow_core::{Namespace, Timestamp};
use oxflow_resources::Resources;
use oxflow_store::ObservationLogRecord;
use oxflow_tuning::kinds::EXPERIMENT;
use oxflow_tuning::{TuningController, TuningError};
use serde_json::{Value, json};

use crate::AppState;
use crate::caller::Who;
use crate::error::{ApiError, ApiResult};
use crate::routes::Routes;
use oxflow_auth::Verb;

/// The routes under `/apis/kubeflow.org/v1beta1`.
pub(crate) fn routes() -> Routes {
    Routes::new()
        .route(
            "/namespaces/{ns}/experiments/{name}/trials",
            get(list_trials),
        )
        .route(
            "/namespaces/{ns}/experiments/{name}/stop",
            post(stop_experiment),
        )
        .route(
            "/namespaces/{ns}/experiments/{name}/resume",
            post(resume_experiment),
        )
        .route("/namespaces/{ns}/trials/{trial}/logs", get(trial_logs))
        .route(
            "/namespaces/{ns}/trials/{trial}/metrics",
            get(trial_metrics).post(report_metrics),
        )
        .with(|r| {
            r.layer(axum::extract::DefaultBodyLimit::max(
                oxflow_tuning::spec::MAX_EXPERIMENT_BYTES,
            ))
        })
}

/// Only the push endpoint, for `oxflow tune`, which serves nothing else.
pub fn report_router(resources: Resources) -> axum::Router {
    axum::Router::new() // route table: own listener (`oxflow tune`'s, behind the same edge)
        .route(
            "/apis/kubeflow.org/v1beta1/namespaces/{ns}/trials/{trial}/metrics",
            post(
                |State(resources): State<Resources>,
                 Path((ns, trial)): Path<(String, String)>,
                 body: Bytes| async move {
                    report(&resources, &ns, &trial, &body).await
                },
            ),
        )
        .with_state(resources)
}

impl From<TuningError> for ApiError {
    fn from(e: TuningError) -> Self {
        match e {
            TuningError::Spec(e) => ApiError::bad_request(e.to_string()),
            TuningError::Store(e) => e.into(),
            TuningError::Resource(e) => e.into(),
            TuningError::Invalid(m) => ApiError {
                status: StatusCode::PRECONDITION_FAILED,
                message: m,
            },
            e @ TuningError::Corrupt { .. } => ApiError::internal(e.to_string()),
        }
    }
}

fn namespace(ns: &str) -> ApiResult<Namespace> {
    Namespace::new(ns.to_owned()).map_err(|e| ApiError::bad_request(format!("namespace: {e}")))
}

fn tuning(state: &AppState) -> ApiResult<&TuningController> {
    state
        .tuning
        .as_ref()
        .ok_or_else(|| ApiError::internal("hyperparameter tuning is not enabled on this server"))
}

async fn list_trials(
    State(state): State<AppState>,
    who: Who,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&ns)?;
    who.may(Verb::List, &ns)?;
    let e = oxflow_tuning::get_experiment(&state.resources, &ns, &name).await?;
    let items = oxflow_tuning::trial_objects(&state.resources, &e)
        .await
        .map_err(ApiError::from)?;
    Ok(Json(json!({
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "TrialList",
        "metadata": {},
        "items": items,
    })))
}

/// The experiment as stored now.
async fn experiment_object(state: &AppState, ns: &Namespace, name: &str) -> ApiResult<Json<Value>> {
    let object = state
        .resources
        .get(&EXPERIMENT, Some(ns.as_str()), name)
        .await
        .map_err(ApiError::from)?;
    Ok(Json(object))
}

async fn stop_experiment(
    State(state): State<AppState>,
    who: Who,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&ns)?;
    who.may(Verb::Update, &ns)?;
    tuning(&state)?.stop(&ns, &name).await?;
    experiment_object(&state, &ns, &name).await
}

async fn resume_experiment(
    State(state): State<AppState>,
    who: Who,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&ns)?;
    who.may(Verb::Update, &ns)?;
    let max = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("body: not JSON: {e}")))?;
        match v.get("maxTrialCount") {
            None | Some(Value::Null) => None,
            Some(m) => Some(
                m.as_u64()
                    .and_then(|m| u32::try_from(m).ok())
                    .filter(|m| *m > 0)
                    .ok_or_else(|| {
                        ApiError::bad_request("maxTrialCount: must be a positive integer")
                    })?,
            ),
        }
    };
    tuning(&state)?.resume(&ns, &name, max).await?;
    experiment_object(&state, &ns, &name).await
}

async fn trial_logs(
    State(state): State<AppState>,
    who: Who,
    Path((ns, trial)): Path<(String, String)>,
) -> ApiResult<Response> {
    let ns = namespace(&ns)?;
    who.may(Verb::Get, &ns)?;
    let (e, t, _) = oxflow_tuning::find_trial(&state.resources, &ns, &trial).await?;
    if t.attempt == 0 {
        return Err(ApiError::not_found(format!(
            "trial {trial} has not started yet"
        )));
    }
    let path = tuning(&state)?.log_path(&e, &t.name);
    let bytes = match tokio::fs::read(&path).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(ApiError::internal(format!(
                "reading the log of trial {trial}: {e}"
            )));
        }
    };
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], bytes).into_response())
}

async fn trial_metrics(
    State(state): State<AppState>,
    who: Who,
    Path((ns, trial)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&ns)?;
    who.may(Verb::Get, &ns)?;
    let (_e, t, _) = oxflow_tuning::find_trial(&state.resources, &ns, &trial).await?;
    let logs = state.store().list_observation_logs(&t.id).await?;
    Ok(Json(json!({
        "metricLogs": logs.iter().map(|l| json!({
            "timeStamp": l.time.map(|t| t.to_rfc3339()),
            "metric": {"name": l.metric_name, "value": l.value},
        })).collect::<Vec<_>>(),
    })))
}

async fn report_metrics(
    State(state): State<AppState>,
    Path((ns, trial)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    report(&state.resources, &ns, &trial, &body).await
}

async fn report(resources: &Resources, ns: &str, trial: &str, body: &[u8]) -> ApiResult<Response> {
    let ns = namespace(ns)?;
    let logs = parse_report(body)?;
    oxflow_tuning::report_metrics(resources, &ns, trial, &logs).await?;
    Ok(Json(json!({"recorded": logs.len()})).into_response())
}

/// Both report shapes, every value kept as text (Katib stores text).
fn parse_report(body: &[u8]) -> ApiResult<Vec<ObservationLogRecord>> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("body: not JSON: {e}")))?;
    let text = |v: &Value, field: &str| -> ApiResult<String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(ApiError::bad_request(format!(
                "{field}: must be a number or a string"
            ))),
        }
    };
    let time = |v: Option<&Value>, field: &str| -> ApiResult<Option<Timestamp>> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Timestamp::parse_rfc3339(s).map(Some).ok_or_else(|| {
                ApiError::bad_request(format!("{field}: not an RFC 3339 time: {s:?}"))
            }),
            Some(_) => Err(ApiError::bad_request(format!(
                "{field}: must be an RFC 3339 string"
            ))),
        }
    };
    let mut out = Vec::new();
    if let Some(m) = v.get("metrics") {
        let m = m
            .as_object()
            .ok_or_else(|| ApiError::bad_request("metrics: must be an object of name → value"))?;
        let at = time(v.get("timestamp"), "timestamp")?.or_else(|| Some(Timestamp::now()));
        for (name, value) in m {
            out.push(ObservationLogRecord {
                time: at,
                metric_name: name.clone(),
                value: text(value, &format!("metrics.{name}"))?,
            });
        }
    } else if let Some(list) = v.get("metricLogs") {
        let list = list
            .as_array()
            .ok_or_else(|| ApiError::bad_request("metricLogs: must be a list"))?;
        for (i, l) in list.iter().enumerate() {
            let field = format!("metricLogs[{i}]");
            let metric = l
                .get("metric")
                .ok_or_else(|| ApiError::bad_request(format!("{field}.metric: missing")))?;
            let name = metric
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| ApiError::bad_request(format!("{field}.metric.name: missing")))?;
            let value = metric
                .get("value")
                .ok_or_else(|| ApiError::bad_request(format!("{field}.metric.value: missing")))?;
            out.push(ObservationLogRecord {
                time: time(l.get("timeStamp"), &format!("{field}.timeStamp"))?
                    .or_else(|| Some(Timestamp::now())),
                metric_name: name.to_owned(),
                value: text(value, &format!("{field}.metric.value"))?,
            });
        }
    } else {
        return Err(ApiError::bad_request(
            "body: expected {\"metrics\": {name: value}} or {\"metricLogs\": [...]}",
        ));
    }
    if out.is_empty() {
        return Err(ApiError::bad_request("metrics: nothing to record"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_in_both_shapes() {
        let l = parse_report(
            br#"{"metrics": {"loss": 0.5, "acc": "0.9"}, "timestamp": "2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        // In the order the client wrote them (serde_json keeps it).
        let got: Vec<(&str, &str)> = l
            .iter()
            .map(|l| (l.metric_name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(got, [("loss", "0.5"), ("acc", "0.9")]);
        assert_eq!(l[0].time, Timestamp::parse_rfc3339("2026-01-01T00:00:00Z"));
        let l = parse_report(br#"{"metricLogs": [{"timeStamp": null, "metric": {"name": "loss", "value": "1e-3"}}]}"#)
            .unwrap();
        assert_eq!(l[0].value, "1e-3");
        for (bad, field) in [
            (&br#"{"metrics": {"loss": [1]}}"#[..], "metrics.loss"),
            (br#"{"metrics": 3}"#, "metrics"),
            (
                br#"{"metricLogs": [{"metric": {"value": "1"}}]}"#,
                "metricLogs[0].metric.name",
            ),
            (br#"{"other": 1}"#, "body"),
            (br#"{"metrics": {}}"#, "metrics"),
            (b"nope", "body"),
        ] {
            let err = parse_report(bad).unwrap_err();
            assert!(err.message.starts_with(field), "{}: {}", field, err.message);
        }
    }
}
