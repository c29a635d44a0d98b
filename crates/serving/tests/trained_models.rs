//! TrainedModels (KServe's multi-model serving) under the serving
//! controller, over a real SQLite store: models loaded into a service
//! without a storageUri and answering by name, their status conditions,
//! updates, deletes, new revisions, restarts and other writers.

use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use oxflow_core::Namespace;
use oxflow_serving::controller::{ServingController, is_ready, stored_trained_model_spec};
use oxflow_serving::kinds::{Applied, INFERENCE_SERVICE, TRAINED_MODEL};
use oxflow_serving::spec::{InferenceService, Resource, TrainedModel, parse_documents};
use oxflow_serving::test_models::xgboost_stump;
use oxflow_serving::test_models::{events_about, find_object, observed, resources};
use oxflow_store::Store;
use serde_json::{Value, json};

fn write_model(dir: &Path, name: &str, left: f64, right: f64) -> String {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("model.json"), xgboost_stump(left, right)).unwrap();
    d.display().to_string()
}

fn isvc(yaml: &str) -> InferenceService {
    InferenceService::from_yaml(yaml).unwrap()
}

/// A multi-model xgboost service: a predictor with a format and no storageUri.
fn mms(name: &str, protocol: &str) -> InferenceService {
    isvc(&format!(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {{name: {name}}}\n\
         spec:\n  predictor:\n    model:\n      modelFormat: {{name: xgboost}}\n      protocolVersion: {protocol}\n"
    ))
}

fn trained(name: &str, service: &str, framework: &str, uri: &str) -> TrainedModel {
    let yaml = format!(
        "apiVersion: serving.kserve.io/v1alpha1\nkind: TrainedModel\nmetadata: {{name: {name}}}\n\
         spec:\n  inferenceService: {service}\n  model: {{storageUri: \"{uri}\", framework: {framework}, memory: 64Mi}}\n"
    );
    match parse_documents(&yaml).unwrap().remove(0) {
        Resource::TrainedModel(m) => m,
        other => panic!("not a TrainedModel: {other:?}"),
    }
}

fn controller(store: &Store, home: &Path) -> ServingController {
    ServingController::new(
        resources(store),
        oxflow_serving::test_models::controller_config(home, "http://127.0.0.1:9"),
    )
}

async fn setup() -> (tempfile::TempDir, Store, ServingController) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_dir(dir.path()).await.unwrap();
    let c = controller(&store, dir.path());
    (dir, store, c)
}

/// Waits (on the controller's change notifications, bounded by a
/// deadline) until `read` gives a value that satisfies `done`.
async fn wait_until<F, Fut>(
    c: &ServingController,
    what: &str,
    read: F,
    done: impl Fn(&Value) -> bool,
) -> Value
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    let mut changes = c.changes();
    let wait = async {
        loop {
            changes.borrow_and_update();
            let v = read().await;
            if done(&v) {
                return v;
            }
            changes.changed().await.unwrap();
        }
    };
    match tokio::time::timeout(Duration::from_secs(30), wait).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not settle: {:#}", read().await),
    }
}

/// The TrainedModel as the API shows it, once its status describes its
/// generation and satisfies `done`.
async fn wait_tm(
    c: &ServingController,
    store: &Store,
    name: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let ns = Namespace::default();
    wait_until(
        c,
        name,
        || async {
            match find_object(store, &TRAINED_MODEL, &ns, name).await {
                Some(v) if observed(&v) => v,
                Some(v) => json!({ "pending": v }),
                None => Value::Null,
            }
        },
        move |v| v.get("pending").is_none() && !v.is_null() && done(v),
    )
    .await
}

async fn wait_isvc(
    c: &ServingController,
    store: &Store,
    name: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let ns = Namespace::default();
    wait_until(
        c,
        name,
        || async {
            match find_object(store, &INFERENCE_SERVICE, &ns, name).await {
                Some(v) if observed(&v) => v,
                _ => Value::Null,
            }
        },
        move |v| !v.is_null() && done(v),
    )
    .await
}

fn condition<'v>(v: &'v Value, kind: &str) -> &'v Value {
    v["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .unwrap_or(&Value::Null)
}

fn holds(kind: &'static str, status: &'static str) -> impl Fn(&Value) -> bool {
    move |v| condition(v, kind)["status"] == status
}

async fn send(
    c: &ServingController,
    service: &str,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = c.dispatch("default", service, request).await;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A V2 request for model `model` of `service` with x0 as the first feature.
async fn infer_v2(
    c: &ServingController,
    service: &str,
    model: &str,
    x0: f32,
) -> (StatusCode, Value) {
    let body =
        json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [x0, 0.0]}]});
    send(c, service, &format!("/v2/models/{model}/infer"), body).await
}

fn v2_prediction(v: &Value) -> f64 {
    v["outputs"][0]["data"][0].as_f64().unwrap()
}

/// Polls (bounded by a deadline) until `model` of `service` answers with
/// `expected` (a new version replacing an old one keeps answering meanwhile).
async fn answers(c: &ServingController, service: &str, model: &str, x0: f32, expected: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (code, out) = infer_v2(c, service, model, x0).await;
        if code == StatusCode::OK && v2_prediction(&out) == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{service}/{model} never answered {expected}: {code} {out}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn two_trained_models_answer_by_name_in_one_service() {
    let (dir, store, c) = setup().await;
    let ns = Namespace::default();
    let a = write_model(dir.path(), "a", -1.0, 1.0);
    let b = write_model(dir.path(), "b", 10.0, 20.0);

    // A predictor with a format and no storageUri is ready with no model.
    c.apply(&ns, &mms("mms", "v2")).await.unwrap();
    let v = wait_isvc(&c, &store, "mms", |v| is_ready(&v["status"])).await;
    assert_eq!(v["status"]["url"], "http://127.0.0.1:9/serving/default/mms");

    let (rec, applied) = c
        .apply_trained_model(&ns, &trained("tm-a", "mms", "xgboost", &a))
        .await
        .unwrap();
    assert_eq!((applied, rec.generation), (Applied::Created, 1));
    c.apply_trained_model(&ns, &trained("tm-b", "mms", "xgboost", &b))
        .await
        .unwrap();
    let v = wait_tm(&c, &store, "tm-a", holds("Ready", "True")).await;
    assert_eq!(
        v["status"]["url"],
        "http://127.0.0.1:9/serving/default/mms/v2/models/tm-a/infer"
    );
    assert_eq!(v["status"]["address"]["url"], v["status"]["url"]);
    assert_eq!(v["status"]["observedGeneration"], 1);
    let kinds: Vec<(&str, &str)> = v["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["type"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("FrameworkSupported", "True"),
            ("InferenceServiceReady", "True"),
            ("IsMMSPredictor", "True"),
            ("MemoryResourceAvailable", "True"),
            ("Ready", "True"),
        ]
    );
    assert!(
        condition(&v, "Ready")["lastTransitionTime"].is_string(),
        "{v}"
    );
    assert_eq!(v["metadata"]["uid"], rec.id.as_str());
    assert_eq!(v["spec"]["model"]["memory"], "64Mi");
    wait_tm(&c, &store, "tm-b", holds("Ready", "True")).await;

    // Each name reaches its own model: base score 0.5 plus the leaf.
    let (code, out) = infer_v2(&c, "mms", "tm-a", 0.0).await;
    assert_eq!((code, v2_prediction(&out)), (StatusCode::OK, -0.5), "{out}");
    let (code, out) = infer_v2(&c, "mms", "tm-b", 1.0).await;
    assert_eq!((code, v2_prediction(&out)), (StatusCode::OK, 20.5), "{out}");
    // The service's own name is no model here.
    let (code, _) = infer_v2(&c, "mms", "mms", 0.0).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    // V1 reaches them too.
    let (code, out) = send(
        &c,
        "mms",
        "/v1/models/tm-b:predict",
        json!({"instances": [[0.0, 0.0]]}),
    )
    .await;
    assert_eq!(
        (code, out["predictions"][0].as_f64()),
        (StatusCode::OK, Some(10.5)),
        "{out}"
    );

    // The same file again changes nothing.
    let (_, applied) = c
        .apply_trained_model(&ns, &trained("tm-a", "mms", "xgboost", &a))
        .await
        .unwrap();
    assert_eq!(applied, Applied::Unchanged);
}

#[tokio::test]
async fn conditions_say_why_a_trained_model_cannot_serve() {
    let (dir, store, c) = setup().await;
    let ns = Namespace::default();
    let a = write_model(dir.path(), "a", -1.0, 1.0);

    // No such service: kept, waiting for it.
    c.apply_trained_model(&ns, &trained("early", "later", "xgboost", &a))
        .await
        .unwrap();
    let v = wait_tm(&c, &store, "early", holds("InferenceServiceReady", "False")).await;
    let cond = condition(&v, "InferenceServiceReady");
    assert_eq!(cond["reason"], "InferenceServiceNotFound", "{v}");
    assert!(cond["message"].as_str().unwrap().contains("later"), "{v}");
    assert_eq!(condition(&v, "IsMMSPredictor")["status"], "False");
    assert_eq!(condition(&v, "Ready")["reason"], "InferenceServiceNotFound");
    assert!(v["status"].get("url").is_none(), "{v}");
    // Its service appears: the model is loaded into it.
    c.apply(&ns, &mms("later", "v1")).await.unwrap();
    let v = wait_tm(&c, &store, "early", holds("Ready", "True")).await;
    assert_eq!(
        v["status"]["url"],
        "http://127.0.0.1:9/serving/default/later/v1/models/early:predict"
    );
    answers(&c, "later", "early", 0.0, -0.5).await;

    // A framework the predictor does not serve.
    c.apply_trained_model(&ns, &trained("lgb", "later", "lightgbm", &a))
        .await
        .unwrap();
    let v = wait_tm(&c, &store, "lgb", holds("FrameworkSupported", "False")).await;
    let cond = condition(&v, "FrameworkSupported");
    assert_eq!(cond["reason"], "FrameworkNotSupported");
    let message = cond["message"].as_str().unwrap();
    assert!(message.contains("spec.model.framework"), "{message}");
    assert!(
        message.contains("lightgbm") && message.contains("xgboost"),
        "{message}"
    );
    assert_eq!(condition(&v, "Ready")["status"], "False");
    // A reason waiting will not fix is a Warning event about the model.
    let about: Vec<_> = events_about(&store, &v["metadata"]["uid"])
        .await
        .iter()
        .map(|e| (e["type"].clone(), e["reason"].clone()))
        .collect();
    assert_eq!(
        about,
        [(json!("Warning"), condition(&v, "Ready")["reason"].clone())]
    );
    let (code, _) = infer_v2(&c, "later", "lgb", 0.0).await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // A service that serves its own model is no multi-model server.
    let single = isvc(&format!(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {{name: single}}\n\
         spec:\n  predictor:\n    model:\n      modelFormat: {{name: xgboost}}\n      storageUri: {a}\n"
    ));
    c.apply(&ns, &single).await.unwrap();
    c.apply_trained_model(&ns, &trained("stray", "single", "xgboost", &a))
        .await
        .unwrap();
    let v = wait_tm(&c, &store, "stray", holds("IsMMSPredictor", "False")).await;
    let cond = condition(&v, "IsMMSPredictor");
    assert_eq!(cond["reason"], "IsNotMMSPredictor");
    assert!(
        cond["message"].as_str().unwrap().contains("storageUri"),
        "{v}"
    );
    let (code, _) = infer_v2(&c, "single", "stray", 0.0).await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // A service that cannot serve at all: its reason reaches the model.
    let tf = isvc(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: tf}\n\
         spec:\n  predictor:\n    model:\n      modelFormat: {name: tensorflow}\n",
    );
    c.apply(&ns, &tf).await.unwrap();
    c.apply_trained_model(&ns, &trained("tf-model", "tf", "tensorflow", &a))
        .await
        .unwrap();
    let v = wait_tm(&c, &store, "tf-model", |v| {
        condition(v, "InferenceServiceReady")["message"]
            .as_str()
            .is_some_and(|m| m.contains("no runtime for \"tensorflow\""))
    })
    .await;
    assert_eq!(
        condition(&v, "Ready")["reason"],
        "InferenceServiceNotReady",
        "{v}"
    );

    // A model that does not load: Ready says why; the others still serve.
    let missing = dir.path().join("nowhere").display().to_string();
    c.apply_trained_model(&ns, &trained("broken", "later", "xgboost", &missing))
        .await
        .unwrap();
    let v = wait_tm(&c, &store, "broken", holds("Ready", "False")).await;
    let v = if condition(&v, "Ready")["reason"] == "ModelLoading" {
        wait_tm(&c, &store, "broken", |v| {
            condition(v, "Ready")["reason"] == "ModelLoadFailed"
        })
        .await
    } else {
        v
    };
    let ready = condition(&v, "Ready");
    assert_eq!(ready["reason"], "ModelLoadFailed", "{v}");
    assert!(
        ready["message"].as_str().unwrap().contains("nowhere"),
        "{v}"
    );
    assert_eq!(condition(&v, "InferenceServiceReady")["status"], "True");
    answers(&c, "later", "early", 1.0, 1.5).await;

    // Deleting the service leaves its models, saying so.
    assert!(c.delete(&ns, "later").await.unwrap());
    let v = wait_tm(&c, &store, "early", holds("InferenceServiceReady", "False")).await;
    assert_eq!(
        condition(&v, "InferenceServiceReady")["reason"],
        "InferenceServiceNotFound"
    );
}

#[tokio::test]
async fn updates_reload_and_deletes_unload() {
    let (dir, store, c) = setup().await;
    let ns = Namespace::default();
    let a = write_model(dir.path(), "a", -1.0, 1.0);
    let b = write_model(dir.path(), "b", 10.0, 20.0);
    let a2 = write_model(dir.path(), "a2", 5.0, 6.0);
    c.apply(&ns, &mms("mms", "v2")).await.unwrap();
    c.apply_trained_model(&ns, &trained("one", "mms", "xgboost", &a))
        .await
        .unwrap();
    c.apply_trained_model(&ns, &trained("two", "mms", "xgboost", &b))
        .await
        .unwrap();
    wait_tm(&c, &store, "one", holds("Ready", "True")).await;
    wait_tm(&c, &store, "two", holds("Ready", "True")).await;
    answers(&c, "mms", "one", 0.0, -0.5).await;

    // A new storageUri: a new generation, loaded in place of the old one.
    let (rec, applied) = c
        .apply_trained_model(&ns, &trained("one", "mms", "xgboost", &a2))
        .await
        .unwrap();
    assert_eq!((applied, rec.generation), (Applied::Configured, 2));
    let v = wait_tm(&c, &store, "one", holds("Ready", "True")).await;
    assert_eq!(v["status"]["observedGeneration"], 2);
    answers(&c, "mms", "one", 0.0, 5.5).await;

    // Deleted: its URL 404s, the other model still answers.
    assert!(c.delete_trained_model(&ns, "one").await.unwrap());
    assert!(!c.delete_trained_model(&ns, "one").await.unwrap());
    assert!(
        find_object(&store, &TRAINED_MODEL, &ns, "one")
            .await
            .is_none()
    );
    let (code, out) = infer_v2(&c, "mms", "one", 0.0).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{out}");
    let (code, out) = infer_v2(&c, "mms", "two", 0.0).await;
    assert_eq!((code, v2_prediction(&out)), (StatusCode::OK, 10.5));

    // A new revision of the service (its predictor changed) loads the
    // models before it takes traffic.
    let mut changed = mms("mms", "v2");
    changed.spec.predictor.component.min_replicas = 2;
    c.apply(&ns, &changed).await.unwrap();
    let v = wait_isvc(&c, &store, "mms", |v| {
        v["status"]["components"]["predictor"]["latestReadyRevision"] == "mms-predictor-00002"
    })
    .await;
    assert!(is_ready(&v["status"]), "{v}");
    let traffic = &v["status"]["components"]["predictor"]["traffic"];
    assert_eq!(traffic[0]["revisionName"], "mms-predictor-00002", "{v}");
    assert_eq!(traffic[0]["percent"], 100, "{v}");
    let (code, out) = infer_v2(&c, "mms", "two", 1.0).await;
    assert_eq!((code, v2_prediction(&out)), (StatusCode::OK, 20.5), "{out}");
    wait_tm(&c, &store, "two", holds("Ready", "True")).await;
}

#[tokio::test]
async fn restarts_and_other_writers_are_picked_up_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_dir(dir.path()).await.unwrap();
    let ns = Namespace::default();
    let a = write_model(dir.path(), "a", -1.0, 1.0);
    let b = write_model(dir.path(), "b", 10.0, 20.0);
    let first_ready_at;
    {
        let c = controller(&store, dir.path());
        c.apply(&ns, &mms("mms", "v2")).await.unwrap();
        c.apply_trained_model(&ns, &trained("kept", "mms", "xgboost", &a))
            .await
            .unwrap();
        let v = wait_tm(&c, &store, "kept", holds("Ready", "True")).await;
        first_ready_at = condition(&v, "Ready")["lastTransitionTime"].clone();
    }
    // A new process loads the service and its models from the store.
    let before_restart = store.current_resource_version().await.unwrap();
    let c = controller(&store, dir.path());
    let (code, _) = infer_v2(&c, "mms", "kept", 0.0).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let resync = c.start().await;
    let (code, out) = infer_v2(&c, "mms", "kept", 0.0).await;
    assert_eq!((code, v2_prediction(&out)), (StatusCode::OK, -0.5), "{out}");
    let v = wait_tm(&c, &store, "kept", holds("Ready", "True")).await;
    assert_eq!(
        condition(&v, "Ready")["lastTransitionTime"],
        first_ready_at,
        "a restart keeps the transition time"
    );
    // Nor did it show the model not Ready while loading it again: every
    // status the new process wrote says Ready.
    let written = store
        .resource_events_of_kind_after("serving.kserve.io", "TrainedModel", before_restart, 1000)
        .await
        .unwrap();
    for e in &written {
        assert_eq!(
            condition(&e.object, "Ready")["status"],
            "True",
            "{}",
            e.object
        );
    }

    // Another process (the CLI without a server) adds a model ...
    let other = trained("added", "mms", "xgboost", &b);
    oxflow_serving::kinds::apply(
        &resources(&store),
        &TRAINED_MODEL,
        &ns,
        stored_trained_model_spec(&other, &ns),
    )
    .await
    .unwrap();
    c.resync().await.unwrap();
    let v = wait_tm(&c, &store, "added", holds("Ready", "True")).await;
    assert_eq!(v["status"]["observedGeneration"], 1);
    answers(&c, "mms", "added", 1.0, 20.5).await;
    // ... and deletes one: gone after the next resync.
    resources(&store)
        .delete(&TRAINED_MODEL, Some("default"), "kept", &Default::default())
        .await
        .unwrap();
    c.resync().await.unwrap();
    let (code, _) = infer_v2(&c, "mms", "kept", 0.0).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    answers(&c, "mms", "added", 0.0, 10.5).await;
    c.shutdown();
    resync.await.unwrap();
}

/// KServe's memory check: models are allocated in creation order while
/// their memory together fits the predictor's limit; the rest are not
/// loaded, and say why, until memory is freed.
#[tokio::test]
async fn trained_models_beyond_the_predictor_memory_limit_wait_for_room() {
    let (dir, store, c) = setup().await;
    let ns = Namespace::default();
    let uri = write_model(dir.path(), "m", 1.0, 2.0);
    c.apply(
        &ns,
        &isvc(
            "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: tight}\n\
             spec:\n  predictor:\n    model:\n      modelFormat: {name: xgboost}\n      protocolVersion: v2\n\
             \x20     resources: {limits: {memory: 100Mi}}\n",
        ),
    )
    .await
    .unwrap();
    wait_isvc(&c, &store, "tight", |v| is_ready(&v["status"])).await;
    let sized = |name: &str, memory: &str| {
        let mut m = trained(name, "tight", "xgboost", &uri);
        m.spec.model.memory = oxflow_serving::spec::Quantity::parse(memory).unwrap();
        m
    };
    for (name, memory) in [("t1", "64Mi"), ("t2", "32Mi"), ("t3", "64Mi")] {
        c.apply_trained_model(&ns, &sized(name, memory))
            .await
            .unwrap();
    }
    wait_tm(&c, &store, "t1", holds("Ready", "True")).await;
    wait_tm(&c, &store, "t2", holds("Ready", "True")).await;
    let v = wait_tm(&c, &store, "t3", holds("MemoryResourceAvailable", "False")).await;
    let memory = condition(&v, "MemoryResourceAvailable");
    assert_eq!(memory["reason"], "MemoryResourceNotAvailable", "{v}");
    let message = memory["message"].as_str().unwrap();
    assert!(
        message.starts_with("spec.model.memory: 64Mi does not fit")
            && message.contains("memory limit of 100Mi and 96Mi of it is taken"),
        "{message}"
    );
    assert_eq!(condition(&v, "Ready")["status"], "False");
    assert_eq!(
        condition(&v, "Ready")["reason"],
        "MemoryResourceNotAvailable"
    );
    let (code, _) = infer_v2(&c, "tight", "t3", 0.0).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    answers(&c, "tight", "t2", 0.0, 1.5).await;

    // Deleting the first model makes room for the third.
    assert!(c.delete_trained_model(&ns, "t1").await.unwrap());
    let v = wait_tm(&c, &store, "t3", holds("Ready", "True")).await;
    assert_eq!(condition(&v, "MemoryResourceAvailable")["status"], "True");
    answers(&c, "tight", "t3", 1.0, 2.5).await;
}
