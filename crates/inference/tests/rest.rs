//! The REST front end against in-process test models: every route, the
//! binary extension, V1, errors and the repository extension.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use oxflow_inference::metrics::Metrics;
use oxflow_inference::{
    DataPlane, Loader, Model, ModelControl, ModelState, PlaneConfig, Repository,
};
use serde_json::{Value, json};
use tower::ServiceExt;

mod common;
use common::RowSum;

/// Loads `RowSum` models named `sum-*`, fails others, counting loads.
struct TestLoader {
    loads: AtomicUsize,
    gate: tokio::sync::Semaphore,
}

/// The repository owns its loader; the test keeps a handle to the same state.
struct Shared(Arc<TestLoader>);

impl Loader for Shared {
    fn load(&self, name: &str) -> BoxFuture<'static, Result<Arc<dyn Model>, String>> {
        let this = self.0.clone();
        let name = name.to_string();
        Box::pin(async move {
            // Loading waits for the test to open the gate, so the test can
            // send requests while the model is still loading.
            let _permit = this.gate.acquire().await.map_err(|e| e.to_string())?;
            this.loads.fetch_add(1, Ordering::SeqCst);
            if name.starts_with("sum-") {
                Ok(Arc::new(RowSum::new(&name)) as Arc<dyn Model>)
            } else {
                Err(format!("no model file for {name}"))
            }
        })
    }

    fn available(&self) -> Vec<String> {
        vec!["broken".into(), "sum-lazy".into()]
    }
}

fn plane(loader: Option<Arc<TestLoader>>) -> Arc<DataPlane> {
    let loader: Option<Arc<dyn Loader>> = loader.map(|l| Arc::new(Shared(l)) as Arc<dyn Loader>);
    let repository = Arc::new(Repository::new(loader, Duration::from_secs(5)));
    repository.set("sum", ModelState::Ready(Arc::new(RowSum::new("sum"))));
    Arc::new(DataPlane {
        repository,
        metrics: Arc::new(Metrics::default()),
        config: PlaneConfig {
            max_body_bytes: 4096,
            ..PlaneConfig::default()
        },
    })
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

async fn call(
    plane: &Arc<DataPlane>,
    method: &str,
    uri: &str,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let response = oxflow_inference::rest::router(plane.clone())
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

async fn get(plane: &Arc<DataPlane>, uri: &str) -> Reply {
    call(plane, "GET", uri, vec![], &[]).await
}

async fn post(plane: &Arc<DataPlane>, uri: &str, body: Value) -> Reply {
    call(plane, "POST", uri, serde_json::to_vec(&body).unwrap(), &[]).await
}

#[tokio::test]
async fn health_metadata_and_listing() {
    let p = plane(None);
    assert_eq!(
        get(&p, "/v2/health/live").await.json(),
        json!({"live": true})
    );
    assert_eq!(
        get(&p, "/v2/health/ready").await.json(),
        json!({"ready": true})
    );
    let server = get(&p, "/v2").await.json();
    assert_eq!(server["name"], "oxflow");
    assert!(
        server["extensions"]
            .as_array()
            .unwrap()
            .contains(&json!("binary_tensor_data"))
    );
    assert_eq!(
        get(&p, "/v2/models").await.json(),
        json!({"models": ["sum"]})
    );
    let meta = get(&p, "/v2/models/sum").await.json();
    assert_eq!(meta["platform"], "test_rowsum");
    assert_eq!(
        meta["inputs"][0],
        json!({"name": "x", "datatype": "FP64", "shape": [-1, -1]})
    );
    assert_eq!(
        get(&p, "/v2/models/sum/versions/1").await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&p, "/v2/models/sum/ready").await.json(),
        json!({"name": "sum", "ready": true})
    );
    let missing = get(&p, "/v2/models/nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json(), json!({"error": "Model nope not found"}));
    let missing = get(&p, "/v2/models/nope/ready").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let route = get(&p, "/v3/anything").await;
    assert_eq!(route.status, StatusCode::NOT_FOUND);
    assert!(
        route.json()["error"]
            .as_str()
            .unwrap()
            .contains("/v3/anything")
    );
}

#[tokio::test]
async fn json_inference_echoes_id_and_selects_outputs() {
    let p = plane(None);
    let r = post(
        &p,
        "/v2/models/sum/infer",
        json!({"id": "abc", "inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [[1, 2, 3], [4, 5, 6.5]]}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(
        r.json(),
        json!({"model_name": "sum", "id": "abc", "outputs": [
            {"name": "sum", "datatype": "FP64", "shape": [2], "data": [6.0, 15.5]},
            {"name": "rows", "datatype": "INT64", "shape": [1], "data": [2]}]})
    );
    let r = post(
        &p,
        "/v2/models/sum/versions/1/infer",
        json!({"inputs": [{"name": "x", "shape": [1, 1], "datatype": "INT32", "data": [7]}], "outputs": [{"name": "rows"}]}),
    )
    .await;
    let v = r.json();
    assert_eq!(v["model_version"], "1");
    assert_eq!(v["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(v["outputs"][0]["name"], "rows");
    let r = post(
        &p,
        "/v2/models/sum/infer",
        json!({"inputs": [{"name": "x", "shape": [1, 1], "datatype": "INT32", "data": [7]}], "outputs": [{"name": "proba"}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json()["error"],
        "unknown output 'proba' requested from model sum; it has sum, rows"
    );
}

#[tokio::test]
async fn binary_extension_in_and_out() {
    let p = plane(None);
    let x: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect();
    let header = serde_json::to_vec(&json!({
        "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "parameters": {"binary_data_size": 16}}],
        "outputs": [{"name": "sum", "parameters": {"binary_data": true}}, {"name": "rows", "parameters": {"binary_data": false}}],
    }))
    .unwrap();
    let mut body = header.clone();
    body.extend_from_slice(&x);
    let r = call(
        &p,
        "POST",
        "/v2/models/sum/infer",
        body,
        &[
            ("Inference-Header-Content-Length", header.len().to_string()),
            ("content-type", "application/octet-stream".into()),
        ],
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let n: usize = r.headers["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let head: Value = serde_json::from_slice(&r.body[..n]).unwrap();
    assert_eq!(head["outputs"][0]["parameters"]["binary_data_size"], 16);
    assert_eq!(head["outputs"][1]["data"], json!([2]));
    let sums: Vec<f64> = r.body[n..]
        .chunks(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(sums, vec![3.0, 7.0]);
    // binary_data_output asks for every output in binary.
    let r = post(
        &p,
        "/v2/models/sum/infer",
        json!({"parameters": {"binary_data_output": true}, "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}),
    )
    .await;
    let n: usize = r.headers["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(r.body.len() - n, 8 + 8);
}

#[tokio::test]
async fn bad_requests_get_json_errors_and_the_server_keeps_serving() {
    let p = plane(None);
    type Case = (
        Vec<u8>,
        Vec<(&'static str, String)>,
        StatusCode,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (b"{not json".to_vec(), vec![], StatusCode::BAD_REQUEST, "invalid inference request"),
        (
            serde_json::to_vec(&json!({"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1]}]})).unwrap(),
            vec![],
            StatusCode::BAD_REQUEST,
            "needs 3 elements",
        ),
        (vec![b' '; 5000], vec![], StatusCode::PAYLOAD_TOO_LARGE, "larger than the server's limit of 4096"),
        (b"{}".to_vec(), vec![("Inference-Header-Content-Length", "x".into())], StatusCode::BAD_REQUEST, "byte count"),
        (
            serde_json::to_vec(&json!({"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["a"]}]})).unwrap(),
            vec![],
            StatusCode::BAD_REQUEST,
            "x must be numeric",
        ),
    ];
    for (body, headers, status, message) in cases {
        let r = call(&p, "POST", "/v2/models/sum/infer", body, &headers).await;
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
        assert!(
            r.json()["error"].as_str().unwrap().contains(message),
            "{}",
            r.json()
        );
    }
    let r = post(&p, "/v2/models/ghost/infer", json!({"inputs": []})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = post(
        &p,
        "/v2/models/sum/infer",
        json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let metrics = String::from_utf8(get(&p, "/metrics").await.body).unwrap();
    assert!(
        metrics
            .contains(r#"oxflow_inference_requests_total{model="sum",protocol="v2",code="400"} 4"#),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"oxflow_inference_requests_total{model="sum",protocol="v2",code="413"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"oxflow_inference_requests_total{model="sum",protocol="v2",code="200"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn v1_predict_and_status() {
    let p = plane(None);
    assert_eq!(
        get(&p, "/v1/models").await.json(),
        json!({"models": ["sum"]})
    );
    assert_eq!(
        get(&p, "/v1/models/sum").await.json(),
        json!({"name": "sum", "ready": true})
    );
    let r = post(
        &p,
        "/v1/models/sum:predict",
        json!({"instances": [[1, 2], [3, 4.5]]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"predictions": [3.0, 7.5]}));
    let r = post(&p, "/v1/models/sum:explain", json!({"instances": [[1]]})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"], "model sum has no explainer");
    let r = post(&p, "/v1/models/sum:train", json!({})).await;
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("unknown verb ':train'")
    );
    let r = post(&p, "/v1/models/sum", json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = post(&p, "/v1/models/none:predict", json!({"instances": [[1]]})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = post(
        &p,
        "/v1/models/sum:predict",
        json!({"instances": [[1], [2, 3]]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn repository_load_unload_and_requests_held_while_loading() {
    let loader = Arc::new(TestLoader {
        loads: AtomicUsize::new(0),
        gate: tokio::sync::Semaphore::new(0),
    });
    let p = plane(Some(loader.clone()));
    let index = post(&p, "/v2/repository/index", json!({})).await.json();
    assert_eq!(
        index,
        json!([{"name": "broken", "state": "UNAVAILABLE", "reason": "unloaded"}, {"name": "sum", "state": "READY"}, {"name": "sum-lazy", "state": "UNAVAILABLE", "reason": "unloaded"}])
    );
    // Start loading; a request sent meanwhile waits for the load instead of failing.
    let loading = tokio::spawn({
        let p = p.clone();
        async move { post(&p, "/v2/repository/models/sum-lazy/load", json!({})).await }
    });
    let infer = tokio::spawn({
        let p = p.clone();
        async move {
            post(&p, "/v2/models/sum-lazy/infer", json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]})).await
        }
    });
    // Wait until the repository shows the model as loading, then open the gate.
    let mut state = None;
    for _ in 0..1000 {
        state = p.repository.state("sum-lazy").map(|s| s.label());
        if state == Some("LOADING") {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(state, Some("LOADING"));
    assert_eq!(
        get(&p, "/v2/health/ready").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(!infer.is_finished());
    loader.gate.add_permits(10);
    assert_eq!(loading.await.unwrap().status, StatusCode::OK);
    let r = infer.await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["outputs"][0]["data"], json!([3.0]));
    assert_eq!(loader.loads.load(Ordering::SeqCst), 1);
    // Unload: 503 with the reason; load again: served.
    assert_eq!(
        post(&p, "/v2/repository/models/sum-lazy/unload", json!({}))
            .await
            .status,
        StatusCode::OK
    );
    let r = get(&p, "/v2/models/sum-lazy/ready").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        r.json()["error"],
        "Model sum-lazy is not ready: the model is unloaded"
    );
    assert_eq!(
        get(&p, "/v1/models/sum-lazy").await.json(),
        json!({"name": "sum-lazy", "ready": false})
    );
    assert_eq!(
        post(&p, "/v2/repository/models/sum-lazy/load", json!({}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get(&p, "/v2/models/sum-lazy/ready").await.status,
        StatusCode::OK
    );
    // A failing load reports why, on load and on ready.
    let r = post(&p, "/v2/repository/models/broken/load", json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json()["error"],
        "failed to load model broken: no model file for broken"
    );
    let r = get(&p, "/v2/models/broken/ready").await;
    assert_eq!(
        r.json()["error"],
        "Model broken is not ready: loading failed: no model file for broken"
    );
    let ready_only = post(&p, "/v2/repository/index", json!({"ready": true}))
        .await
        .json();
    assert_eq!(ready_only.as_array().unwrap().len(), 2);
}

/// This process's resident set size in bytes (Linux), for the figure the
/// flood test reports.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test]
async fn loads_of_names_the_loader_never_had_leave_no_trace() {
    let loader = Arc::new(TestLoader {
        loads: AtomicUsize::new(0),
        gate: tokio::sync::Semaphore::new(100),
    });
    let p = plane(Some(loader.clone()));
    assert_eq!(get(&p, "/v2/health/ready").await.status, StatusCode::OK);
    let names_before = p.repository.names();
    let rss_before = rss_bytes();
    // One caller sends 20,000 names the repository never had (each long,
    // so that a record per name would show in memory).
    for i in 0..20_000 {
        let name = format!("no-such-model-{i}-{}", "x".repeat(200));
        let r = post(&p, &format!("/v2/repository/models/{name}/load"), json!({})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{name}");
        if i == 0 {
            assert_eq!(r.json()["error"], format!("Model {name} not found"));
        }
    }
    let rss_after = rss_bytes();
    eprintln!(
        "RSS before 20,000 unknown-name loads: {:.1} MB, after: {:.1} MB",
        rss_before as f64 / 1e6,
        rss_after as f64 / 1e6
    );
    // Nothing recorded, the loader never asked, and the server stays ready.
    // (Counts first: a failure should not print 20,000 names.)
    assert_eq!(p.repository.names().len(), names_before.len());
    assert_eq!(p.repository.names(), names_before);
    assert_eq!(p.repository.index().len(), 3);
    assert_eq!(loader.loads.load(Ordering::SeqCst), 0);
    assert_eq!(get(&p, "/v2/health/ready").await.status, StatusCode::OK);
    // Unloading an unknown name is a 404 that records nothing either.
    let r = post(&p, "/v2/repository/models/nope/unload", json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(p.repository.names(), names_before);
    // 20,000 records of 200-byte names are several megabytes; none are kept.
    assert!(
        rss_after < rss_before + 8_000_000,
        "RSS grew from {rss_before} to {rss_after} bytes"
    );
}

#[tokio::test]
async fn managed_planes_refuse_load_and_unload() {
    let loader = Arc::new(TestLoader {
        loads: AtomicUsize::new(0),
        gate: tokio::sync::Semaphore::new(100),
    });
    let open = plane(Some(loader.clone()));
    let p = Arc::new(DataPlane {
        repository: open.repository.clone(),
        metrics: Arc::new(Metrics::default()),
        config: PlaneConfig {
            control: ModelControl::Managed {
                owner: "InferenceService ns/iris".into(),
            },
            ..PlaneConfig::default()
        },
    });
    for verb in ["load", "unload"] {
        for name in ["sum", "sum-lazy", "unknown"] {
            let r = post(
                &p,
                &format!("/v2/repository/models/{name}/{verb}"),
                json!({}),
            )
            .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{verb} {name}");
            assert_eq!(
                r.json()["error"],
                "the models of InferenceService ns/iris are managed by its controller and cannot \
                 be loaded or unloaded through the repository API; change the InferenceService \
                 ns/iris instead"
            );
        }
    }
    // The model went on serving and nothing was loaded; the index still
    // answers, and the same repository on an open plane still loads.
    assert_eq!(get(&p, "/v2/models/sum/ready").await.status, StatusCode::OK);
    assert_eq!(loader.loads.load(Ordering::SeqCst), 0);
    assert_eq!(
        post(&p, "/v2/repository/index", json!({})).await.status,
        StatusCode::OK
    );
    assert_eq!(
        post(&open, "/v2/repository/models/sum-lazy/load", json!({}))
            .await
            .status,
        StatusCode::OK
    );
}
