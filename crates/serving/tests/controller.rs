//! The InferenceService controller over a real SQLite store: status,
//! generations and rolling updates, failures, routing, restarts and
//! changes made by other processes.

use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use oxflow_core::Namespace;
use oxflow_serving::controller::{ServingController, is_ready};
use oxflow_serving::kinds::{Applied, INFERENCE_SERVICE};
use oxflow_serving::spec::InferenceService;
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

fn service(name: &str, format: &str, uri: &str) -> InferenceService {
    InferenceService::from_yaml(&format!(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: {name}\n\
         spec:\n  predictor:\n    model:\n      modelFormat:\n        name: {format}\n      storageUri: {uri}\n"
    ))
    .unwrap()
}

fn controller(store: &Store, home: &Path) -> ServingController {
    let mut config = oxflow_serving::test_models::controller_config(home, "http://127.0.0.1:9");
    // Idle means "nothing in flight": scale_down_idle is called by hand.
    config.scale_to_zero_after = Duration::ZERO;
    ServingController::new(resources(store), config)
}

/// A fresh data directory, its store and a controller over them.
async fn setup() -> (tempfile::TempDir, Store, ServingController) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_dir(dir.path()).await.unwrap();
    let c = controller(&store, dir.path());
    (dir, store, c)
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
            if let Some(v) = find_object(store, &INFERENCE_SERVICE, &ns, name).await
                && observed(&v)
                && done(&v)
            {
                return v;
            }
            changes.changed().await.unwrap();
        }
    };
    match tokio::time::timeout(Duration::from_secs(30), wait).await {
        Ok(v) => v,
        Err(_) => {
            let last = find_object(store, &INFERENCE_SERVICE, &ns, name).await;
            panic!("{name} did not settle: {:#}", last.unwrap_or_default())
        }
    }
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

/// `components.predictor.traffic` as (revision, percent) pairs.
fn traffic(status: &Value) -> Vec<(String, u64)> {
    status["components"]["predictor"]["traffic"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["revisionName"].as_str().unwrap().to_owned(),
                t["percent"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn prediction(v: &Value) -> f64 {
    v["outputs"][0]["data"][0].as_f64().unwrap()
}

#[tokio::test]
async fn a_service_rolls_forward_only_to_revisions_that_load() {
    let (dir, store, c) = setup().await;
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
    assert_eq!(
        traffic(status),
        [
            ("stump-predictor-00002".into(), 0),
            ("stump-predictor-00001".into(), 100)
        ]
    );
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
    let (_dir, store, c) = setup().await;
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
    // The failure is a Warning event about the service, recorded once
    // (before the status that shows it).
    let about: Vec<_> = events_about(&store, &v["metadata"]["uid"])
        .await
        .iter()
        .map(|e| (e["type"].clone(), e["reason"].clone(), e["count"].clone()))
        .collect();
    assert_eq!(
        about,
        [(json!("Warning"), json!("NoSupportingRuntime"), json!(1))]
    );
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

    // A gs:// model whose serviceAccountName names no secret: the status
    // says how to create one with a service account key.
    let mut gs = service("gs", "xgboost", "gs://bucket/model");
    gs.spec.predictor.pod.service_account_name = Some("gcs-reader".into());
    c.apply(&ns, &gs).await.unwrap();
    let v = wait_for(&c, &store, "gs", blocked).await;
    let failure = &v["status"]["modelStatus"]["lastFailureInfo"];
    let message = failure["message"].as_str().unwrap();
    assert!(
        message.contains("no secret \"gcs-reader\"")
            && message.contains("gcloud-application-credentials.json"),
        "{failure}"
    );
}

#[tokio::test]
async fn host_files_are_refused_as_storage_uris_and_never_quoted() {
    let (dir, store, c) = setup().await;
    let ns = Namespace::default();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let first = passwd.lines().next().unwrap().to_string();
    assert!(!first.is_empty());
    // A host file, by path and by file://: refused for where it is.
    for (name, uri) in [
        ("passwd", "/etc/passwd".to_string()),
        ("passwd-file", "file:///etc/passwd".to_string()),
        (
            "passwd-dotdot",
            format!(
                "{}/models/../../../../../../../etc/passwd",
                dir.path().display()
            ),
        ),
    ] {
        c.apply(&ns, &service(name, "xgboost", &uri)).await.unwrap();
        let v = wait_for(&c, &store, name, blocked).await;
        let text = v.to_string();
        assert!(!text.contains(&first), "{text}");
        let message = v["status"]["modelStatus"]["lastFailureInfo"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            message.starts_with(&format!("storageUri {uri}: "))
                && message.contains("is outside the directories models may be read from")
                && message.contains(&dir.path().join("models").display().to_string())
                && message.contains("--model-root"),
            "{message}"
        );
    }
    // A file of the host's content under a model root: it fails to load,
    // and the status says what was expected, not what the file holds.
    let copy = dir.path().join("models/copy");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::write(copy.join("model.json"), &passwd).unwrap();
    std::fs::write(copy.join("model.txt"), &passwd).unwrap();
    for (name, format) in [("copy-xgb", "xgboost"), ("copy-lgb", "lightgbm")] {
        c.apply(&ns, &service(name, format, &copy.display().to_string()))
            .await
            .unwrap();
        let v = wait_for(&c, &store, name, blocked).await;
        let text = v.to_string();
        assert!(!text.contains(&first), "{text}");
        assert!(
            text.contains("the file is text, but neither JSON nor a LightGBM text model"),
            "{text}"
        );
    }
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
    oxflow_serving::kinds::apply(&resources(&store), &INFERENCE_SERVICE, &ns, other)
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
    resources(&store)
        .delete(
            &INFERENCE_SERVICE,
            Some("default"),
            "added",
            &Default::default(),
        )
        .await
        .unwrap();
    c.resync().await.unwrap();
    let (code, _) = infer(&c, "added", 0.0).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = infer(&c, "kept", 0.0).await;
    assert_eq!(code, StatusCode::OK);
}

fn knative_canary(uri: &str, percent: Option<u8>) -> InferenceService {
    let extra = percent
        .map(|p| format!("    canaryTrafficPercent: {p}\n"))
        .unwrap_or_default();
    InferenceService::from_yaml(&format!(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: rollout\n\
         spec:\n  predictor:\n{extra}    model:\n      modelFormat:\n        name: xgboost\n      storageUri: {uri}\n"
    ))
    .unwrap()
}

/// How many of 100 consecutive requests each prediction answered.
async fn answers(c: &ServingController, name: &str) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for _ in 0..100 {
        let (code, v) = infer(c, name, 1.0).await;
        assert_eq!(code, StatusCode::OK, "{v}");
        *out.entry(prediction(&v).to_string()).or_default() += 1;
    }
    out
}

fn counts(pairs: &[(&str, usize)]) -> std::collections::BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[tokio::test]
async fn canary_traffic_percent_rolls_out_and_back_and_survives_a_restart() {
    let (dir, store, c) = setup().await;
    let ns = Namespace::default();
    // v1 answers 1.5 for x0 = 1, v2 answers 2.5.
    let v1 = write_model(dir.path(), "v1", 0.0, 1.0);
    let v2 = write_model(dir.path(), "v2", 0.0, 2.0);
    c.apply(&ns, &knative_canary(&v1, None)).await.unwrap();
    wait_for(&c, &store, "rollout", up_to_date).await;

    // A new model with 25 % of the traffic; the rolled-out one keeps 75 %.
    c.apply(&ns, &knative_canary(&v2, Some(25))).await.unwrap();
    let v = wait_for(&c, &store, "rollout", up_to_date).await;
    let status = &v["status"];
    assert_eq!(
        traffic(status),
        [
            ("rollout-predictor-00002".into(), 25),
            ("rollout-predictor-00001".into(), 75)
        ]
    );
    let predictor = &status["components"]["predictor"];
    assert_eq!(
        predictor["latestRolledoutRevision"],
        "rollout-predictor-00001"
    );
    assert_eq!(
        predictor["previousRolledoutRevision"],
        "rollout-predictor-00001"
    );
    assert_eq!(
        answers(&c, "rollout").await,
        counts(&[("1.5", 75), ("2.5", 25)])
    );

    // Roll back: the same predictor at 0 % keeps its revision (no reload).
    let (r, _) = c.apply(&ns, &knative_canary(&v2, Some(0))).await.unwrap();
    assert_eq!(r.generation, 3);
    let v = wait_for(&c, &store, "rollout", up_to_date).await;
    assert_eq!(
        traffic(&v["status"]),
        [
            ("rollout-predictor-00002".into(), 0),
            ("rollout-predictor-00001".into(), 100)
        ]
    );
    assert_eq!(answers(&c, "rollout").await, counts(&[("1.5", 100)]));

    // Back to 25 %, then a restart: the previous rollout is restored from
    // the store and the split is the same.
    c.apply(&ns, &knative_canary(&v2, Some(25))).await.unwrap();
    wait_for(&c, &store, "rollout", up_to_date).await;
    drop(c);
    let c = controller(&store, dir.path());
    c.resync().await.unwrap();
    let v = wait_for(&c, &store, "rollout", |v| {
        up_to_date(v) && traffic(&v["status"]).len() == 2 && traffic(&v["status"])[1].1 == 75
    })
    .await;
    assert_eq!(
        traffic(&v["status"]),
        [
            ("rollout-predictor-00002".into(), 25),
            ("rollout-predictor-00001".into(), 75)
        ]
    );
    assert_eq!(
        answers(&c, "rollout").await,
        counts(&[("1.5", 75), ("2.5", 25)])
    );

    // Promote: without the field the latest takes everything and becomes
    // the rolled-out revision.
    c.apply(&ns, &knative_canary(&v2, None)).await.unwrap();
    let v = wait_for(&c, &store, "rollout", up_to_date).await;
    assert_eq!(
        traffic(&v["status"]),
        [("rollout-predictor-00002".into(), 100)]
    );
    assert_eq!(
        v["status"]["components"]["predictor"]["latestRolledoutRevision"],
        "rollout-predictor-00002"
    );
    assert_eq!(answers(&c, "rollout").await, counts(&[("2.5", 100)]));
    let stored = c.get(&ns, "rollout").await.unwrap();
    assert_eq!(
        stored.rolled_out().unwrap()["revision"],
        "rollout-predictor-00002"
    );
}

fn standard_canary(
    stable_name: Option<&str>,
    stable_uri: &str,
    canary: Option<(&str, u8, &str)>,
) -> InferenceService {
    let name = stable_name
        .map(|n| format!("    name: {n}\n"))
        .unwrap_or_default();
    let canary = canary
        .map(|(n, p, uri)| {
            format!(
                "  canary:\n  - trafficPercent: {p}\n    predictor:\n      name: {n}\n      model:\n        \
                 modelFormat:\n          name: xgboost\n        storageUri: {uri}\n"
            )
        })
        .unwrap_or_default();
    InferenceService::from_yaml(&format!(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: variants\n\
         spec:\n  predictor:\n{name}    model:\n      modelFormat:\n        name: xgboost\n      storageUri: {stable_uri}\n{canary}"
    ))
    .unwrap()
}

#[tokio::test]
async fn canary_variants_get_traffic_only_when_ready_and_promote_without_a_reload() {
    let (dir, store, c) = setup().await;
    let ns = Namespace::default();
    let stable = write_model(dir.path(), "stable", 0.0, 1.0);
    let next = write_model(dir.path(), "next", 0.0, 2.0);
    let missing = dir.path().join("missing").display().to_string();

    // A canary that cannot load gets nothing; the stable predictor serves all.
    c.apply(
        &ns,
        &standard_canary(Some("v1"), &stable, Some(("v2", 30, &missing))),
    )
    .await
    .unwrap();
    let v = wait_for(&c, &store, "variants", |v| {
        v["status"]["canaryStatuses"][0]["modelStatus"]["transitionStatus"] == "BlockedByFailedLoad"
            && up_to_date(v)
    })
    .await;
    let status = &v["status"];
    assert!(is_ready(status), "{status}");
    assert_eq!(status["canaryStatuses"][0]["trafficPercent"], 0);
    assert_eq!(status["canaryStatuses"][0]["ready"], false);
    let canary_ready = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "CanaryPredictorReady")
        .unwrap();
    assert_eq!(canary_ready["status"], "False", "{canary_ready}");
    assert!(
        canary_ready["message"]
            .as_str()
            .unwrap()
            .contains("missing"),
        "{canary_ready}"
    );
    assert_eq!(answers(&c, "variants").await, counts(&[("1.5", 100)]));

    // A loadable canary gets exactly its 30 %.
    c.apply(
        &ns,
        &standard_canary(Some("v1"), &stable, Some(("v2", 30, &next))),
    )
    .await
    .unwrap();
    let v = wait_for(&c, &store, "variants", |v| {
        v["status"]["canaryStatuses"][0]["ready"] == true
    })
    .await;
    assert_eq!(v["status"]["canaryStatuses"][0]["trafficPercent"], 30);
    assert_eq!(
        traffic(&v["status"]),
        [("variants-predictor-00001".into(), 70)]
    );
    assert_eq!(
        answers(&c, "variants").await,
        counts(&[("1.5", 70), ("2.5", 30)])
    );

    // Promotion as KServe documents it: the stable predictor becomes the
    // canary (its name and model) and the entry goes. The canary's loaded
    // revision takes over; nothing loads again.
    let canary_revision = v["status"]["canaryStatuses"][0]["revisionName"]
        .as_str()
        .unwrap()
        .to_owned();
    c.apply(&ns, &standard_canary(Some("v2"), &next, None))
        .await
        .unwrap();
    let v = wait_for(&c, &store, "variants", up_to_date).await;
    assert_eq!(traffic(&v["status"]), [(canary_revision, 100)]);
    assert!(
        v["status"].get("canaryStatuses").is_none(),
        "{}",
        v["status"]
    );
    assert_eq!(answers(&c, "variants").await, counts(&[("2.5", 100)]));
}

#[tokio::test]
async fn tag_routing_reaches_each_side_of_a_rollout() {
    let (dir, store, c) = setup().await;
    let ns = Namespace::default();
    let v1 = write_model(dir.path(), "v1", 0.0, 1.0);
    let v2 = write_model(dir.path(), "v2", 0.0, 2.0);
    let tagged = |uri: &str, percent: &str| {
        InferenceService::from_yaml(&format!(
            "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: tagged\n  \
             annotations:\n    serving.kserve.io/enable-tag-routing: \"true\"\n\
             spec:\n  predictor:\n{percent}    model:\n      modelFormat:\n        name: xgboost\n      storageUri: {uri}\n"
        ))
        .unwrap()
    };
    c.apply(&ns, &tagged(&v1, "")).await.unwrap();
    wait_for(&c, &store, "tagged", up_to_date).await;
    c.apply(&ns, &tagged(&v2, "    canaryTrafficPercent: 10\n"))
        .await
        .unwrap();
    let v = wait_for(&c, &store, "tagged", up_to_date).await;
    let tags: Vec<&str> = v["status"]["components"]["predictor"]["traffic"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["latest", "prev"]);
    for (host, want) in [
        ("latest-tagged-predictor.default.example.com", 2.5),
        ("prev-tagged-predictor.default.example.com:8080", 1.5),
    ] {
        for _ in 0..20 {
            let request = Request::post("/v2/models/tagged/infer")
                .body(Body::from(
                    json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 0.0]}]})
                        .to_string(),
                ))
                .unwrap();
            let response = c.dispatch_host(host, request).await.ok().unwrap();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(prediction(&v), want, "{host}");
        }
    }
    // Without the annotation, tags are not hosts of the service.
    assert!(
        c.resolve_host("latest-rollout-predictor.default.example.com")
            .is_none()
    );
}

fn with_component(name: &str, uri: &str, component: &str) -> InferenceService {
    InferenceService::from_yaml(&format!(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: {name}\n\
         spec:\n  predictor:\n{component}    model:\n      modelFormat:\n        name: xgboost\n      storageUri: {uri}\n"
    ))
    .unwrap()
}

/// `oxflow_inference_batch_size_count{model="NAME"}`: model executions.
fn executions(c: &ServingController, name: &str) -> u64 {
    let text = c
        .service_metrics(&Namespace::default(), name)
        .unwrap_or_default();
    let prefix = format!("oxflow_inference_batch_size_count{{model=\"{name}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test]
async fn container_concurrency_queues_and_bounds_and_timeout_cuts_off() {
    let (dir, store, c) = setup().await;
    let ns = Namespace::default();
    let uri = write_model(dir.path(), "m", 0.0, 1.0);
    // The batcher holds a lone request up to 200 ms for a partner: two
    // concurrent requests make one execution of 2 rows, unless
    // containerConcurrency lets only one in at a time.
    let batcher = "    batcher:\n      maxBatchSize: 2\n      maxLatency: 200\n";
    c.apply(&ns, &with_component("free", &uri, batcher))
        .await
        .unwrap();
    c.apply(
        &ns,
        &with_component(
            "one",
            &uri,
            &format!("{batcher}    containerConcurrency: 1\n"),
        ),
    )
    .await
    .unwrap();
    wait_for(&c, &store, "free", up_to_date).await;
    wait_for(&c, &store, "one", up_to_date).await;
    for (name, want) in [("free", 1), ("one", 2)] {
        let (a, b) = tokio::join!(infer(&c, name, 1.0), infer(&c, name, 0.0));
        assert_eq!(
            (a.0, b.0),
            (StatusCode::OK, StatusCode::OK),
            "{name}: {a:?} {b:?}"
        );
        assert_eq!((prediction(&a.1), prediction(&b.1)), (1.5, 0.5), "{name}");
        assert_eq!(executions(&c, name), want, "{name}: model executions");
    }

    // One in flight and ten queued; the twelfth is turned away at once.
    let calls: Vec<_> = (0..12).map(|_| infer(&c, "one", 1.0)).collect();
    let results = futures::future::join_all(calls).await;
    let refused: Vec<&Value> = results
        .iter()
        .filter(|(code, _)| *code == StatusCode::SERVICE_UNAVAILABLE)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(refused.len(), 1, "{results:?}");
    assert!(
        refused[0]["error"]
            .as_str()
            .unwrap()
            .contains("containerConcurrency"),
        "{refused:?}"
    );
    assert_eq!(
        results
            .iter()
            .filter(|(code, _)| *code == StatusCode::OK)
            .count(),
        11
    );

    // A request held longer than the timeout gets 504 (the batcher waits
    // 3 s for a partner; the component allows 1 s).
    c.apply(
        &ns,
        &with_component(
            "slow",
            &uri,
            "    batcher:\n      maxBatchSize: 2\n      maxLatency: 3000\n    timeout: 1\n",
        ),
    )
    .await
    .unwrap();
    wait_for(&c, &store, "slow", up_to_date).await;
    let (code, v) = infer(&c, "slow", 1.0).await;
    assert_eq!(code, StatusCode::GATEWAY_TIMEOUT, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("timeout of 1 s"),
        "{v}"
    );
}

#[tokio::test]
async fn the_logger_sends_request_and_response_as_cloudevents() {
    use axum::http::HeaderMap;
    // A sink that hands every event it receives to the test.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(HeaderMap, Value)>();
    let sink = axum::Router::new().route(
        "/events",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let tx = tx.clone();
            async move {
                tx.send((
                    headers,
                    serde_json::from_slice(&body).unwrap_or(Value::Null),
                ))
                .unwrap();
                StatusCode::ACCEPTED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, sink).await });

    let (dir, store, c) = setup().await;
    let ns = Namespace::default();
    let uri = write_model(dir.path(), "m", 0.0, 1.0);
    let logger = format!(
        "    logger:\n      mode: all\n      url: http://{addr}/events\n      metadataHeaders: [x-trace]\n"
    );
    c.apply(&ns, &with_component("logged", &uri, &logger))
        .await
        .unwrap();
    wait_for(&c, &store, "logged", up_to_date).await;

    let body = json!({"id": "r-1", "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 0.0]}]});
    let request = Request::post("/v2/models/logged/infer")
        .header("x-trace", "abc")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = c.dispatch("default", "logged", request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = serde_json::from_slice(
        &axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(prediction(&answer), 1.5);

    let mut events = Vec::new();
    for _ in 0..2 {
        let e = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("an event within 10 s")
            .unwrap();
        events.push(e);
    }
    events.sort_by_key(|(h, _)| h["ce-type"].to_str().unwrap().to_owned());
    let ((req_h, req_body), (resp_h, resp_body)) = (&events[0], &events[1]);
    assert_eq!(req_h["ce-type"], "org.kubeflow.serving.inference.request");
    assert_eq!(resp_h["ce-type"], "org.kubeflow.serving.inference.response");
    assert_eq!(req_h["ce-id"], resp_h["ce-id"], "one id per exchange");
    for h in [req_h, resp_h] {
        assert_eq!(h["ce-specversion"], "1.0");
        assert_eq!(h["ce-inferenceservicename"], "logged");
        assert_eq!(h["ce-namespace"], "default");
        assert_eq!(h["ce-component"], "predictor");
        assert_eq!(h["ce-source"], "http://127.0.0.1:9/serving/default/logged");
        assert_eq!(h["content-type"], "application/json");
    }
    assert_eq!(req_h["ce-metadata"], r#"{"x-trace":["abc"]}"#);
    assert_eq!(*req_body, body);
    assert_eq!(*resp_body, answer);
    // Health checks and metadata reads are not logged.
    let (code, _) = {
        let r = c
            .dispatch(
                "default",
                "logged",
                Request::get("/v2/models/logged/ready")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        (r.status(), ())
    };
    assert_eq!(code, StatusCode::OK);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err(),
        "no event for a GET"
    );
}

#[tokio::test]
async fn min_replicas_zero_unloads_when_idle_and_the_next_request_waits_for_the_model() {
    let (dir, store, c) = setup().await;
    let ns = Namespace::default();
    let uri = write_model(dir.path(), "m", 0.0, 1.0);
    c.apply(&ns, &with_component("sleepy", &uri, "    minReplicas: 0\n"))
        .await
        .unwrap();
    c.apply(&ns, &with_component("awake", &uri, ""))
        .await
        .unwrap();
    wait_for(&c, &store, "sleepy", up_to_date).await;
    wait_for(&c, &store, "awake", up_to_date).await;

    // Only the minReplicas: 0 predictor scales down.
    assert_eq!(c.scale_down_idle().await, 1);
    let active = |v: &Value| v["status"]["modelStatus"]["states"]["activeModelState"].clone();
    let v = wait_for(&c, &store, "sleepy", |v| active(v) == "Standby").await;
    assert!(
        is_ready(&v["status"]),
        "a service scaled to zero is still ready"
    );
    let index = c
        .dispatch(
            "default",
            "sleepy",
            Request::post("/v2/repository/index")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let index: Value = serde_json::from_slice(
        &axum::body::to_bytes(index.into_body(), 1 << 20)
            .await
            .unwrap(),
    )
    .unwrap();
    // Any request wakes it: this one found it unloaded and loading again
    // (a loaded model would say READY).
    assert_eq!(index[0]["state"], "LOADING", "{index}");
    let v = find_object(&store, &INFERENCE_SERVICE, &ns, "awake")
        .await
        .unwrap();
    assert_eq!(active(&v), "Loaded");

    // The next request loads the model again and is answered.
    let (code, out) = infer(&c, "sleepy", 1.0).await;
    assert_eq!((code, prediction(&out)), (StatusCode::OK, 1.5), "{out}");
    wait_for(&c, &store, "sleepy", |v| active(v) == "Loaded").await;
    // Idle again, it goes back to zero.
    assert_eq!(c.scale_down_idle().await, 1);
    assert_eq!(c.scale_down_idle().await, 0, "already at zero");
}
