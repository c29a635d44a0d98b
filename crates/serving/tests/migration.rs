//! A data directory from before the resource model: the test fills the old
//! KServe tables (store migrations 0005 and 0006) as the old store wrote
//! them, reopens the directory as an upgraded `oxflow up` does, and checks
//! that every service and model is an object with its uid, generation,
//! creation time and status, that nothing invalid is lost, that a run cut
//! short goes on, and that the migrated service is served.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use oxflow_core::{Namespace, Timestamp};
use oxflow_serving::controller::{ServingController, stored_spec, stored_trained_model_spec};
use oxflow_serving::kinds::{INFERENCE_SERVICE, Migrated, TRAINED_MODEL, migrate_legacy};
use oxflow_serving::spec::{InferenceService, Resource, parse_documents};
use oxflow_serving::test_models::{controller_config, find_object, resources, xgboost_stump};
use oxflow_store::{LegacyKServeKind, LegacyKServeRow, Store};
use serde_json::{Value, json};

fn isvc(name: &str, uri: &str) -> InferenceService {
    InferenceService::from_yaml(&format!(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: {name}\n  labels:\n    team: a\n\
         spec:\n  predictor:\n    model:\n      modelFormat:\n        name: xgboost\n      protocolVersion: v2\n      storageUri: {uri}\n"
    ))
    .unwrap()
}

fn old_row(
    kind: LegacyKServeKind,
    id: &str,
    name: &str,
    spec: Value,
    status: Value,
) -> LegacyKServeRow {
    LegacyKServeRow {
        kind,
        id: id.into(),
        namespace: "default".into(),
        name: name.into(),
        spec,
        generation: 2,
        observed_generation: 2,
        status,
        rolled_out: None,
        created_at: Timestamp::parse_rfc3339("2026-01-02T03:04:05Z").unwrap(),
    }
}

#[tokio::test]
async fn an_old_data_directory_moves_onto_the_resource_model() {
    let dir = tempfile::tempdir().unwrap();
    let ns = Namespace::default();
    let model = dir.path().join("m");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("model.json"), xgboost_stump(-1.0, 1.0)).unwrap();
    let uri = model.display().to_string();

    // The old store's rows: a service that served generation 2 with a
    // rolled-out revision, a TrainedModel, and a row that is no longer a
    // valid InferenceService.
    let mut service = old_row(
        LegacyKServeKind::InferenceService,
        "0193-isvc",
        "iris",
        stored_spec(&isvc("iris", &uri), &ns),
        json!({
            "observedGeneration": 2,
            "url": "http://old/serving/default/iris",
            "components": {"predictor": {"latestCreatedRevision": "iris-predictor-00002"}},
            "conditions": [{"type": "Ready", "status": "True"}],
        }),
    );
    service.rolled_out = Some(json!({
        "revision": "iris-predictor-00002", "generation": 2,
        "predictor": service.spec["spec"]["predictor"].clone(),
    }));
    let tm = match parse_documents(&format!(
        "apiVersion: serving.kserve.io/v1alpha1\nkind: TrainedModel\nmetadata:\n  name: extra\n\
         spec:\n  inferenceService: iris\n  model:\n    storageUri: {uri}\n    framework: xgboost\n    memory: 64Mi\n"
    ))
    .unwrap()
    .remove(0)
    {
        Resource::TrainedModel(m) => m,
        other => panic!("{other:?}"),
    };
    let trained = old_row(
        LegacyKServeKind::TrainedModel,
        "0193-tm",
        "extra",
        stored_trained_model_spec(&tm, &ns),
        json!({"observedGeneration": 2}),
    );
    let mut broken = old_row(
        LegacyKServeKind::InferenceService,
        "0193-bad",
        "broken",
        stored_spec(&isvc("broken", &uri), &ns),
        json!({}),
    );
    broken.spec["spec"]["predictor"] = json!({"nonsense": true});
    {
        let store = Store::open_in_dir(dir.path()).await.unwrap();
        for row in [&service, &trained, &broken] {
            store.insert_legacy_kserve_row(row).await.unwrap();
        }
    }

    // The upgraded server opens the directory again.
    let store = Store::open_in_dir(dir.path()).await.unwrap();
    let r = resources(&store);
    assert_eq!(
        migrate_legacy(&r).await.unwrap(),
        Migrated { moved: 2, kept: 1 }
    );
    let v = find_object(&store, &INFERENCE_SERVICE, &ns, "iris")
        .await
        .unwrap();
    assert_eq!(v["metadata"]["uid"], "0193-isvc");
    assert_eq!(v["metadata"]["generation"], 2);
    assert_eq!(v["metadata"]["creationTimestamp"], "2026-01-02T03:04:05Z");
    assert_eq!(v["metadata"]["labels"]["team"], "a");
    assert_eq!(v["spec"], service.spec["spec"]);
    assert_eq!(v["status"]["url"], "http://old/serving/default/iris");
    assert_eq!(v["status"]["rolledOut"]["revision"], "iris-predictor-00002");
    let m = find_object(&store, &TRAINED_MODEL, &ns, "extra")
        .await
        .unwrap();
    assert_eq!(
        (&m["metadata"]["uid"], &m["spec"]["inferenceService"]),
        (&json!("0193-tm"), &json!("iris"))
    );
    // The invalid row is kept where it was, not lost and not half-moved.
    let left = store.legacy_kserve_rows().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].name, "broken");
    assert!(
        find_object(&store, &INFERENCE_SERVICE, &ns, "broken")
            .await
            .is_none()
    );

    // Every start runs it: nothing more to move. A run cut short after
    // storing an object but before removing its row goes on.
    assert_eq!(
        migrate_legacy(&r).await.unwrap(),
        Migrated { moved: 0, kept: 1 }
    );
    store.insert_legacy_kserve_row(&trained).await.unwrap();
    assert_eq!(
        migrate_legacy(&r).await.unwrap(),
        Migrated { moved: 1, kept: 1 }
    );
    assert_eq!(store.legacy_kserve_rows().await.unwrap().len(), 1);

    // And the migrated service is served under its old revision's name.
    let c = ServingController::new(
        r.clone(),
        controller_config(dir.path(), "http://127.0.0.1:9"),
    );
    c.resync().await.unwrap();
    let mut changes = c.changes();
    let ready = async {
        loop {
            changes.borrow_and_update();
            let v = find_object(&store, &INFERENCE_SERVICE, &ns, "iris")
                .await
                .unwrap();
            if v["status"]["modelStatus"]["transitionStatus"] == "UpToDate" {
                return v;
            }
            changes.changed().await.unwrap();
        }
    };
    let v = tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .expect("the migrated service never became ready");
    assert_eq!(
        v["status"]["components"]["predictor"]["latestReadyRevision"],
        "iris-predictor-00002"
    );
    let body =
        json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [0.0, 0.0]}]});
    let response = c
        .dispatch(
            "default",
            "iris",
            Request::post("/v2/models/iris/infer")
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}
