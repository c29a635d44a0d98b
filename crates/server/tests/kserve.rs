//! KServe's InferenceServices and TrainedModels through the Kubernetes API
//! and the services' data plane, through the real router and a real
//! serving controller woken by the change feed: create, validation errors
//! naming the field, conflicts, replace with a new generation, routing by
//! path and by `Host`, delete.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use oxflow_server::AppState;
use serde_json::{Value, json};
use tower::ServiceExt;

const BASE: &str = "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices";

struct Harness {
    dir: tempfile::TempDir,
    state: AppState,
}

impl Harness {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = common::app_state(dir.path()).await;
        Self { dir, state }
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        host: Option<&str>,
        body: &str,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(h) = host {
            req = req.header("host", h);
        }
        // The Kubernetes API reads YAML when the content type says so, as
        // kubectl's `--raw` and curl users send it.
        if !body.is_empty() && !body.trim_start().starts_with('{') && !uri.starts_with("/serving/")
        {
            req = req.header("content-type", "application/yaml");
        }
        let resp = common::router(self.state.clone())
            .oneshot(req.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A model directory holding an XGBoost stump (`left` for x0 < 0.5).
    fn model(&self, name: &str, left: f64, right: f64) -> String {
        let d = self.dir.path().join("models").join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("model.json"),
            oxflow_serving::test_models::xgboost_stump(left, right),
        )
        .unwrap();
        d.display().to_string()
    }

    /// Waits on the controller's notifications until `name`'s current
    /// generation reports `transition`.
    async fn settled(&self, name: &str, transition: &str) -> Value {
        let serving = self.state.serving.as_ref().unwrap();
        let mut changes = serving.changes();
        let wait = async {
            loop {
                changes.borrow_and_update();
                let (code, v) = self.call("GET", &format!("{BASE}/{name}"), None, "").await;
                assert_eq!(code, StatusCode::OK, "{v}");
                if v["status"]["observedGeneration"] == v["metadata"]["generation"]
                    && v["status"]["modelStatus"]["transitionStatus"] == transition
                {
                    return v;
                }
                changes.changed().await.unwrap();
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), wait)
            .await
            .unwrap_or_else(|_| panic!("{name} never reached {transition}"))
    }
}

impl Harness {
    /// The events about `name`, found as kubectl describe finds them.
    async fn events_about(&self, name: &str) -> Value {
        let (code, events) = self
            .call(
                "GET",
                &format!(
                    "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name={name}"
                ),
                None,
                "",
            )
            .await;
        assert_eq!(code, StatusCode::OK, "{events}");
        events
    }

    /// Waits on the controller's notifications until a data-plane call
    /// answers `want` (the controller acts on a deletion when the change
    /// feed reaches it, not within the API call).
    async fn until_answer(&self, uri: &str, want: StatusCode) {
        let serving = self.state.serving.as_ref().unwrap();
        let mut changes = serving.changes();
        let wait = async {
            loop {
                changes.borrow_and_update();
                let (code, _) = self.call("POST", uri, None, &infer_body(0.0)).await;
                if code == want {
                    return;
                }
                changes.changed().await.unwrap();
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), wait)
            .await
            .unwrap_or_else(|_| panic!("{uri} never answered {want}"))
    }
}

fn yaml(name: &str, uri: &str, extra: &str) -> String {
    format!(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: {name}\n{extra}\
         spec:\n  predictor:\n    model:\n      modelFormat:\n        name: xgboost\n      storageUri: {uri}\n"
    )
}

fn infer_body(x0: f32) -> String {
    json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [x0, 0.0]}]})
        .to_string()
}

#[tokio::test]
async fn inference_services_are_managed_and_served() {
    let h = Harness::new().await;
    let uri = h.model("a", -1.0, 1.0);

    let (code, v) = h.call("POST", BASE, None, &yaml("stump", &uri, "")).await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    assert_eq!(v["kind"], "InferenceService");
    assert_eq!(v["metadata"]["namespace"], "default");
    assert_eq!(v["metadata"]["generation"], 1);
    // KServe's defaults are spelled out.
    assert_eq!(v["spec"]["predictor"]["model"]["protocolVersion"], "v1");
    assert_eq!(v["spec"]["predictor"]["minReplicas"], 1);

    let (code, v) = h.call("POST", BASE, None, &yaml("stump", &uri, "")).await;
    assert_eq!(code, StatusCode::CONFLICT, "{v}");

    let v = h.settled("stump", "UpToDate").await;
    assert_eq!(
        v["status"]["url"],
        "http://oxflow.test/serving/default/stump"
    );
    // Becoming ready is an event about the service, found as kubectl
    // describe finds it; recorded once, however often the status is written.
    let events = h.events_about("stump").await;
    let items = events["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{events}");
    assert_eq!(
        (&items[0]["type"], &items[0]["reason"], &items[0]["count"]),
        (&json!("Normal"), &json!("InferenceServiceReady"), &json!(1))
    );
    assert_eq!(items[0]["involvedObject"]["uid"], v["metadata"]["uid"]);
    assert_eq!(
        items[0]["source"]["component"],
        "inferenceservice-controller"
    );

    // By path, V2 and V1; then by Host, as KServe's docs call it.
    let (code, v) = h
        .call(
            "POST",
            "/serving/default/stump/v2/models/stump/infer",
            None,
            &infer_body(0.0),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["outputs"][0]["data"][0], -0.5);
    let (code, v) = h
        .call(
            "POST",
            "/v1/models/stump:predict",
            Some("stump.default.example.com"),
            r#"{"instances": [[1.0, 0.0]]}"#,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["predictions"][0], 1.5);
    // The control plane's view of the service's metrics: one V2 and one V1
    // request so far; reading them twice counts nothing.
    for _ in 0..2 {
        let resp = common::router(h.state.clone())
            .oneshot(
                Request::get(format!("{BASE}/stump/metrics"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let text = String::from_utf8(
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap();
        for line in [
            "oxflow_inference_requests_total{model=\"stump\",protocol=\"v2\",code=\"200\"} 1",
            "oxflow_inference_requests_total{model=\"stump\",protocol=\"v1\",code=\"200\"} 1",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
    // Without a matching Host the server's own routes answer.
    let (code, v) = h
        .call(
            "POST",
            "/v1/models/stump:predict",
            Some("127.0.0.1:8080"),
            "{}",
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{v}");
    let (code, v) = h.call("GET", "/serving/default/nope/v2", None, "").await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{v}");
    assert!(v["error"].as_str().unwrap().contains("nope"), "{v}");

    // PUT replaces the spec: a new generation, served once loaded.
    let uri_b = h.model("b", -3.0, 3.0);
    let (code, v) = h
        .call(
            "PUT",
            &format!("{BASE}/stump"),
            None,
            &yaml("stump", &uri_b, ""),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["metadata"]["generation"], 2);
    let v = h.settled("stump", "UpToDate").await;
    assert_eq!(
        v["status"]["components"]["predictor"]["latestReadyRevision"],
        "stump-predictor-00002"
    );
    let (_, v) = h
        .call(
            "POST",
            "/serving/default/stump/v2/models/stump/infer",
            None,
            &infer_body(1.0),
        )
        .await;
    assert_eq!(v["outputs"][0]["data"][0], 3.5);

    let (code, v) = h.call("GET", BASE, None, "").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(v["kind"], "InferenceServiceList");
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    let (_, v) = h
        .call(
            "GET",
            "/apis/serving.kserve.io/v1beta1/inferenceservices",
            None,
            "",
        )
        .await;
    assert_eq!(v["items"][0]["metadata"]["name"], "stump");

    let (code, v) = h.call("DELETE", &format!("{BASE}/stump"), None, "").await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let (code, _) = h.call("DELETE", &format!("{BASE}/stump"), None, "").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = h.call("GET", &format!("{BASE}/stump"), None, "").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    // Its events went with it (they are owned by the service).
    let events = h.events_about("stump").await;
    assert_eq!(events["items"], json!([]), "{events}");
    h.until_answer(
        "/serving/default/stump/v2/models/stump/infer",
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn bad_requests_name_the_field_and_store_nothing() {
    let h = Harness::new().await;
    let uri = h.model("a", -1.0, 1.0);
    let cases = [
        (
            yaml("stump", &uri, "  namespace: team-b\n"),
            "namespace of the provided object",
        ),
        (yaml("Bad_Name", &uri, ""), "metadata.name"),
        (
            yaml("stump", &uri, "").replace("storageUri", "storageUrl"),
            "spec.predictor.model.storageUrl",
        ),
        ("not: [yaml".to_owned(), ""),
    ];
    for (body, field) in cases {
        let (code, v) = h.call("POST", BASE, None, &body).await;
        assert!(matches!(code.as_u16(), 400 | 422), "{body}: {code} {v}");
        assert_eq!(v["kind"], "Status", "{v}");
        assert!(v.to_string().contains(field), "{field} in {v}");
    }
    // PUT under another name than the document's.
    let (code, v) = h
        .call(
            "PUT",
            &format!("{BASE}/other"),
            None,
            &yaml("stump", &uri, ""),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["message"].as_str().unwrap().contains("other"), "{v}");
    let (_, v) = h
        .call(
            "GET",
            "/apis/serving.kserve.io/v1beta1/inferenceservices",
            None,
            "",
        )
        .await;
    assert_eq!(v["items"], json!([]), "nothing was stored");
}

const TM_BASE: &str = "/apis/serving.kserve.io/v1alpha1/namespaces/default/trainedmodels";

fn tm_yaml(name: &str, service: &str, uri: &str) -> String {
    format!(
        "apiVersion: serving.kserve.io/v1alpha1\nkind: TrainedModel\nmetadata:\n  name: {name}\n\
         spec:\n  inferenceService: {service}\n  model:\n    storageUri: {uri}\n    framework: xgboost\n    memory: 64Mi\n"
    )
}

impl Harness {
    /// Waits on the controller's notifications until the TrainedModel's
    /// current generation has a Ready condition with `status`.
    async fn tm_ready(&self, name: &str, status: &str) -> Value {
        let serving = self.state.serving.as_ref().unwrap();
        let mut changes = serving.changes();
        let wait = async {
            loop {
                changes.borrow_and_update();
                let (code, v) = self
                    .call("GET", &format!("{TM_BASE}/{name}"), None, "")
                    .await;
                assert_eq!(code, StatusCode::OK, "{v}");
                let ready = v["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == status);
                if v["status"]["observedGeneration"] == v["metadata"]["generation"] && ready {
                    return v;
                }
                changes.changed().await.unwrap();
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), wait)
            .await
            .unwrap_or_else(|_| panic!("{name} never had Ready {status}"))
    }
}

#[tokio::test]
async fn trained_models_are_managed_and_served_under_their_service() {
    let h = Harness::new().await;
    let a = h.model("a", -1.0, 1.0);
    let b = h.model("b", 10.0, 20.0);
    let mms = "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: mms\n\
               spec:\n  predictor:\n    xgboost:\n      protocolVersion: v2\n";
    let (code, v) = h.call("POST", BASE, None, mms).await;
    assert_eq!(code, StatusCode::CREATED, "{v}");

    let (code, v) = h
        .call("POST", TM_BASE, None, &tm_yaml("ma", "mms", &a))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    assert_eq!(v["kind"], "TrainedModel");
    assert_eq!(v["apiVersion"], "serving.kserve.io/v1alpha1");
    assert_eq!(v["metadata"]["namespace"], "default");
    assert_eq!(v["metadata"]["generation"], 1);
    assert_eq!(v["spec"]["inferenceService"], "mms");
    let (code, v) = h
        .call("POST", TM_BASE, None, &tm_yaml("ma", "mms", &a))
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "{v}");
    // PUT replaces (200, a new generation); on a missing object it is
    // 404, as the API server answers for custom resources.
    let (code, v) = h
        .call(
            "PUT",
            &format!("{TM_BASE}/mb"),
            None,
            &tm_yaml("mb", "mms", &a),
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{v}");
    let (code, v) = h
        .call("POST", TM_BASE, None, &tm_yaml("mb", "mms", &a))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let (code, v) = h
        .call(
            "PUT",
            &format!("{TM_BASE}/mb"),
            None,
            &tm_yaml("mb", "mms", &b),
        )
        .await;
    assert_eq!(
        (code, &v["metadata"]["generation"]),
        (StatusCode::OK, &json!(2)),
        "{v}"
    );

    let v = h.tm_ready("ma", "True").await;
    assert_eq!(
        v["status"]["url"],
        "http://oxflow.test/serving/default/mms/v2/models/ma/infer"
    );
    // Its readiness is an event about it (recorded once).
    let events = h.events_about("ma").await;
    let reasons: Vec<_> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].clone(), e["reason"].clone(), e["count"].clone()))
        .collect();
    assert_eq!(
        reasons,
        [(json!("Normal"), json!("TrainedModelReady"), json!(1))],
        "{events}"
    );
    assert_eq!(events["items"][0]["involvedObject"]["kind"], "TrainedModel");
    let v = h.tm_ready("mb", "True").await;
    assert_eq!(v["status"]["observedGeneration"], 2);
    for (model, x0, expected) in [("ma", 0.0, -0.5), ("mb", 1.0, 20.5)] {
        let (code, v) = h
            .call(
                "POST",
                &format!("/serving/default/mms/v2/models/{model}/infer"),
                None,
                &infer_body(x0),
            )
            .await;
        assert_eq!(code, StatusCode::OK, "{model}: {v}");
        assert_eq!(v["outputs"][0]["data"][0], expected, "{model}: {v}");
    }
    // By Host, as KServe's docs call a TrainedModel.
    let (code, v) = h
        .call(
            "POST",
            "/v2/models/mb/infer",
            Some("mms.default.example.com"),
            &infer_body(0.0),
        )
        .await;
    assert_eq!(
        (code, &v["outputs"][0]["data"][0]),
        (StatusCode::OK, &json!(10.5)),
        "{v}"
    );

    // Lists: per namespace and across namespaces.
    let (_, v) = h.call("GET", TM_BASE, None, "").await;
    assert_eq!(v["kind"], "TrainedModelList");
    let names: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ma", "mb"]);
    let (_, v) = h
        .call(
            "GET",
            "/apis/serving.kserve.io/v1alpha1/trainedmodels",
            None,
            "",
        )
        .await;
    assert_eq!(v["items"].as_array().unwrap().len(), 2);

    // Delete: 404 for its URL and for a second delete; the other answers.
    let (code, v) = h.call("DELETE", &format!("{TM_BASE}/ma"), None, "").await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let (code, _) = h.call("DELETE", &format!("{TM_BASE}/ma"), None, "").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = h.call("GET", &format!("{TM_BASE}/ma"), None, "").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    h.until_answer(
        "/serving/default/mms/v2/models/ma/infer",
        StatusCode::NOT_FOUND,
    )
    .await;
    let (code, _) = h
        .call(
            "POST",
            "/serving/default/mms/v2/models/mb/infer",
            None,
            &infer_body(0.0),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test]
async fn bad_trained_models_name_the_field_and_store_nothing() {
    let h = Harness::new().await;
    let uri = h.model("a", -1.0, 1.0);
    let good = tm_yaml("m", "mms", &uri);
    let cases = [
        (
            good.replace("metadata:\n", "metadata:\n  namespace: team-b\n"),
            "namespace of the provided object",
        ),
        (
            good.replace("name: m\n", "name: Bad_Name\n"),
            "metadata.name",
        ),
        (good.replace("    memory: 64Mi\n", ""), "spec.model.memory"),
        (
            good.replace("framework", "frameworks"),
            "spec.model.frameworks",
        ),
        (
            good.replace("inferenceService: mms", "inferenceService: \"\""),
            "spec.inferenceService",
        ),
        (yaml("stump", &uri, ""), "kind"),
        (format!("{good}---\n{good}"), "exactly one"),
        ("not: [yaml".to_owned(), ""),
    ];
    for (body, field) in cases {
        let (code, v) = h.call("POST", TM_BASE, None, &body).await;
        assert!(matches!(code.as_u16(), 400 | 422), "{body}: {code} {v}");
        assert_eq!(v["kind"], "Status", "{v}");
        assert!(v.to_string().contains(field), "{field} in {v}");
    }
    let (code, v) = h
        .call("PUT", &format!("{TM_BASE}/other"), None, &good)
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["message"].as_str().unwrap().contains("other"), "{v}");
    let (_, v) = h
        .call(
            "GET",
            "/apis/serving.kserve.io/v1alpha1/trainedmodels",
            None,
            "",
        )
        .await;
    assert_eq!(v["items"], json!([]), "nothing was stored");
}
