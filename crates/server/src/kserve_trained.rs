//! KServe's TrainedModels over HTTP (`serving.kserve.io/v1alpha1`), at the
//! Kubernetes-style paths `kubectl get trainedmodels` uses:
//!
//! - `GET  /apis/serving.kserve.io/v1alpha1/namespaces/{ns}/trainedmodels`
//!   — a `TrainedModelList`; `POST` creates one from KServe YAML or JSON
//!   (201; 409 when the name is taken; 400 names the field at fault).
//! - `GET | PUT | DELETE …/trainedmodels/{name}` — one model in KServe's
//!   shape with its status; `PUT` creates or replaces it.
//! - `GET /apis/serving.kserve.io/v1alpha1/trainedmodels` — every namespace.
//!
//! The models themselves answer under their service's URL
//! (`/serving/{ns}/{service}/v1/models/{name}:predict`), see `kserve`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use oxflow_core::Namespace;
use oxflow_serving::controller::trained_model_json;
use oxflow_serving::spec::{Resource, TrainedModel, parse_documents};
use serde_json::Value;

use crate::AppState;
use crate::caller::Who;
use crate::error::{ApiError, ApiResult};
use crate::kserve::{
    body_text, deleted, list_json, namespace, put_status, same_name, same_namespace, serving,
};
use crate::limits::KubeListParams;
use crate::routes::Routes;
use oxflow_auth::Verb;

const API_VERSION: &str = "serving.kserve.io/v1alpha1";

/// The routes under `/apis/serving.kserve.io/v1alpha1`.
pub(crate) fn routes() -> Routes {
    Routes::new()
        .route("/trainedmodels", get(list_all))
        .route("/namespaces/{ns}/trainedmodels", get(list).post(create))
        .route(
            "/namespaces/{ns}/trainedmodels/{name}",
            get(read).put(replace).delete(delete),
        )
        .with(|r| {
            r.layer(axum::extract::DefaultBodyLimit::max(
                super::kserve::MAX_RESOURCE_BODY_BYTES,
            ))
        })
}

/// The body as one TrainedModel whose namespace, if it names one, is `ns`.
fn parse(body: &Bytes, ns: &Namespace) -> ApiResult<TrainedModel> {
    let mut resources =
        parse_documents(body_text(body)?).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if resources.len() != 1 {
        return Err(ApiError::bad_request(format!(
            "the body holds {} documents; send exactly one TrainedModel",
            resources.len()
        )));
    }
    let model = match resources.remove(0) {
        Resource::TrainedModel(m) => m,
        other => {
            return Err(ApiError::bad_request(format!(
                "kind: {:?} is not a TrainedModel; send it to its own API, or set kind: TrainedModel",
                other.kind()
            )));
        }
    };
    same_namespace(model.namespace.as_ref(), ns)?;
    Ok(model)
}

fn tm_list(
    params: &KubeListParams,
    records: Vec<oxflow_store::TrainedModelRecord>,
) -> ApiResult<Json<Value>> {
    list_json(
        API_VERSION,
        "TrainedModelList",
        params,
        records,
        |r| (r.namespace.to_string(), r.name.clone()),
        trained_model_json,
    )
}

async fn list_all(
    State(state): State<AppState>,
    who: Who,
    axum::extract::Query(params): axum::extract::Query<KubeListParams>,
) -> ApiResult<Json<Value>> {
    let mut records = state.store().list_trained_models(None).await?;
    // Across namespaces: only those the caller may list.
    records.retain(|r| who.sees(r.namespace.as_str()));
    tm_list(&params, records)
}

async fn list(
    State(state): State<AppState>,
    who: Who,
    Path(ns): Path<String>,
    axum::extract::Query(params): axum::extract::Query<KubeListParams>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&ns)?;
    who.may(Verb::List, &ns)?;
    let records = state.store().list_trained_models(Some(&ns)).await?;
    tm_list(&params, records)
}

async fn create(
    State(state): State<AppState>,
    who: Who,
    Path(ns): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let ns = namespace(&ns)?;
    who.may(Verb::Create, &ns)?;
    let model = parse(&body, &ns)?;
    let record = serving(&state)?.create_trained_model(&ns, &model).await?;
    Ok((StatusCode::CREATED, Json(trained_model_json(&record))).into_response())
}

async fn read(
    State(state): State<AppState>,
    who: Who,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&ns)?;
    who.may(Verb::Get, &ns)?;
    let record = state.store().get_trained_model(&ns, &name).await?;
    Ok(Json(trained_model_json(&record)))
}

async fn replace(
    State(state): State<AppState>,
    who: Who,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let ns = namespace(&ns)?;
    who.may(Verb::Update, &ns)?;
    let model = parse(&body, &ns)?;
    same_name(model.name.as_str(), &name)?;
    let (record, applied) = serving(&state)?.apply_trained_model(&ns, &model).await?;
    Ok((put_status(applied), Json(trained_model_json(&record))).into_response())
}

async fn delete(
    State(state): State<AppState>,
    who: Who,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&ns)?;
    who.may(Verb::Delete, &ns)?;
    if !serving(&state)?.delete_trained_model(&ns, &name).await? {
        return Err(ApiError::not_found(format!(
            "trained model {name:?} not found in namespace {ns}"
        )));
    }
    Ok(deleted(&name, "trainedmodels"))
}
