//! The InferenceService controller over a real SQLite store: status,
//! generations and rolling updates, failures, routing, restarts and
//! changes made by other processes.

use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use oxflow_core::Namespace;
use oxflow_serving::controller::{ControllerConfig, ServingController, is_ready, isvc_json};
use oxflow_serving::runtimes::{PythonConfig, RuntimeConfig};
use oxflow_serving::spec::InferenceService;
use oxflow_serving::test_models::xgboost_stump;
use oxflow_store::{Applied, Store};
use serde_json::{Value, json};

fn write_model(dir: &Path, name: &str, left: f64, right: f64) -> String {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("model.json"), xgboost_stump(left, right)).unwrap();
    d.display().to_string()
}

fn service(name: &str, format: &str, uri: &str) -> InferenceService {
    InferenceService::from_yaml(&format!(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: {name}\n\
         spec:\n  predictor:\n    model:\n      modelFormat:\n        name: {format}\n      storageUri: {uri}\n"
    ))
    .unwrap()
}

fn controller(store: &Store, home: &Path) -> ServingController {
    ServingController::new(
        store.clone(),
        ControllerConfig {
            home: home.to_path_buf(),
            runtime: RuntimeConfig {
                python: PythonConfig {
                    python: "python3".into(),
                    workers: 1,
                },
                max_batch_size: None,
            },
            base_url: "http://127.0.0.1:9".into(),
            hold: Duration::from_secs(10),
            resync: Duration::from_secs(3600),
        },
    )
}

/// Waits (on the controller's change notifications, not a timer) until the
/// stored status of `name` satisfies `done`, and returns the service.
async fn wait_for(
    c: &ServingController,
    store: &Store,
    name: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let ns = Namespace::default();
    let mut changes = c.changes();
    let wait = async {
        loop {
            changes.borrow_and_update();
            if let Some(r) = store.find_inference_service(&ns, name).await.unwrap() {
                let v = isvc_json(&r);
                if r.observed_generation == r.generation && done(&v) {
                    return v;
                }
            }
            changes.changed().await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("{name} did not settle"))
}

fn up_to_date(v: &Value) -> bool {
    v["status"]["modelStatus"]["transitionStatus"] == "UpToDate"
}

fn blocked(v: &Value) -> bool {
    matches!(
        v["status"]["modelStatus"]["transitionStatus"].as_str(),
        Some("BlockedByFailedLoad" | "InvalidSpec")
    )
}

async fn infer(c: &ServingController, name: &str, x0: f32) -> (StatusCode, Value) {
    let body =
        json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [x0, 0.0]}]});
    let request = Request::post(format!("/v2/models/{name}/infer"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = c.dispatch("default", name, request).await;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn prediction(v: &Value) -> f64 {
    v["outputs"][0]["data"][0].as_f64().unwrap()
}

#[tokio::test]
async fn a_service_rolls_forward_only_to_revisions_that_load() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_dir(dir.path()).await.unwrap();
    let c = controller(&store, dir.path());
    let ns = Namespace::default();
    let v1 = write_model(dir.path(), "v1", -1.0, 1.0);

    let (record, applied) = c
        .apply(&ns, &service("stump", "xgboost", &v1))
        .await
        .unwrap();
    assert_eq!((applied, record.generation), (Applied::Created, 1));
    let v = wait_for(&c, &store, "stump", up_to_date).await;
    let status = &v["status"];
    assert!(is_ready(status), "{status}");
    assert_eq!(status["url"], "http://127.0.0.1:9/serving/default/stump");
    assert_eq!(
        status["components"]["predictor"]["latestReadyRevision"],
        "stump-predictor-00001"
    );
    assert_eq!(
        status["components"]["predictor"]["traffic"][0]["percent"],
        100
    );
    assert_eq!(
        status["modelStatus"]["states"]["activeModelState"],
        "Loaded"
    );
    // base score 0.5 plus the leaf: -1 left of 0.5, +1 right.
    let (code, out) = infer(&c, "stump", 0.0).await;
    assert_eq!(code, StatusCode::OK, "{out}");
    assert_eq!(prediction(&out), -0.5);

    // Applying the same spec again is a no-op.
    let (same, applied) = c
        .apply(&ns, &service("stump", "xgboost", &v1))
        .await
        .unwrap();
    assert_eq!((applied, same.generation), (Applied::Unchanged, 1));

    // A new generation whose model is missing fails to load; the first
    // revision keeps serving and the status says why.
    let missing = dir.path().join("nowhere").display().to_string();
    let (r2, applied) = c
        .apply(&ns, &service("stump", "xgboost", &missing))
        .await
        .unwrap();
    assert_eq!((applied, r2.generation), (Applied::Configured, 2));
    let v = wait_for(&c, &store, "stump", blocked).await;
    let status = &v["status"];
    assert!(is_ready(status), "the old revision still serves: {status}");
    let predictor = &status["components"]["predictor"];
    assert_eq!(predictor["latestCreatedRevision"], "stump-predictor-00002");
    assert_eq!(predictor["latestReadyRevision"], "stump-predictor-00001");
    assert_eq!(predictor["traffic"][0]["latestRevision"], false);
    let failure = &status["modelStatus"]["lastFailureInfo"];
    assert_eq!(failure["reason"], "ModelLoadFailed");
    assert!(
        failure["message"].as_str().unwrap().contains("nowhere"),
        "{failure}"
    );
    assert_eq!(status["modelStatus"]["copies"]["failedCopies"], 1);
    let (code, out) = infer(&c, "stump", 0.0).await;
    assert_eq!((code, prediction(&out)), (StatusCode::OK, -0.5));

    // A good third generation takes over.
    let v3 = write_model(dir.path(), "v3", -2.0, 2.0);
    c.apply(&ns, &service("stump", "xgboost", &v3))
        .await
        .unwrap();
    let v = wait_for(&c, &store, "stump", up_to_date).await;
    assert_eq!(
        v["status"]["components"]["predictor"]["latestReadyRevision"],
        "stump-predictor-00003"
    );
    let (code, out) = infer(&c, "stump", 1.0).await;
    assert_eq!((code, prediction(&out)), (StatusCode::OK, 2.5));

    // Deleted: its route is gone.
    assert!(c.delete(&ns, "stump").await.unwrap());
    assert!(!c.delete(&ns, "stump").await.unwrap());
    let (code, out) = infer(&c, "stump", 0.0).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{out}");
}

#[tokio::test]
async fn services_that_cannot_be_served_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_dir(dir.path()).await.unwrap();
    let c = controller(&store, dir.path());
    let ns = Namespace::default();
    c.apply(&ns, &service("tf", "tensorflow", "/models/tf"))
        .await
        .unwrap();
    let v = wait_for(&c, &store, "tf", blocked).await;
    let status = &v["status"];
    assert!(!is_ready(status), "{status}");
    assert_eq!(
        status["modelStatus"]["lastFailureInfo"]["reason"],
        "NoSupportingRuntime"
    );
    let ready = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "False");
    assert!(
        ready["message"].as_str().unwrap().contains("tensorflow"),
        "{ready}"
    );
    assert!(
        status.get("url").is_none(),
        "no URL before it serves: {status}"
    );
    let (code, out) = infer(&c, "tf", 0.0).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{out}");
    assert!(
        out["error"].as_str().unwrap().contains("tensorflow"),
        "{out}"
    );
}

#[tokio::test]
async fn restarts_and_other_writers_are_picked_up_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_dir(dir.path()).await.unwrap();
    let ns = Namespace::default();
    let uri = write_model(dir.path(), "m", 3.0, 4.0);
    {
        let c = controller(&store, dir.path());
        c.apply(&ns, &service("kept", "xgboost", &uri))
            .await
            .unwrap();
        wait_for(&c, &store, "kept", up_to_date).await;
    }
    // A new process: nothing in memory until it resyncs with the store.
    let c = controller(&store, dir.path());
    let (code, _) = infer(&c, "kept", 0.0).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    // Another process (the CLI without a server) writes a second service.
    let other = oxflow_serving::controller::stored_spec(&service("added", "xgboost", &uri), &ns);
    store
        .apply_inference_service(&ns, "added", &other)
        .await
        .unwrap();
    c.resync().await.unwrap();
    wait_for(&c, &store, "kept", up_to_date).await;
    wait_for(&c, &store, "added", up_to_date).await;
    let (code, out) = infer(&c, "kept", 0.0).await;
    assert_eq!((code, prediction(&out)), (StatusCode::OK, 3.5));
    let (code, out) = infer(&c, "added", 1.0).await;
    assert_eq!((code, prediction(&out)), (StatusCode::OK, 4.5));

    // Hosts name services as KServe's URLs do.
    assert_eq!(
        c.resolve_host("kept.default.example.com"),
        Some(("kept".into(), "default".into()))
    );
    assert_eq!(
        c.resolve_host("kept-predictor.default.svc.cluster.local:8080"),
        Some(("kept".into(), "default".into()))
    );
    assert_eq!(c.resolve_host("kept.other.example.com"), None);
    assert_eq!(c.resolve_host("127.0.0.1:8080"), None);
    assert_eq!(c.resolve_host("localhost"), None);

    // Deleted by another process: gone after the next resync.
    store.delete_inference_service(&ns, "added").await.unwrap();
    c.resync().await.unwrap();
    let (code, _) = infer(&c, "added", 0.0).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = infer(&c, "kept", 0.0).await;
    assert_eq!(code, StatusCode::OK);
}
