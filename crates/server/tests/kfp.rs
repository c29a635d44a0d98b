//! The KFP v2beta1 API through the real router and a running controller:
//! deleting a run removes what `oxflow runs delete` removes.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use oxflow_server::AppState;
use serde_json::{Value, json};
use tower::ServiceExt;

const KFP: &str = "/apis/v2beta1";

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

    async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = oxflow_server::router(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let body = body.map_or(Body::empty(), |b| Body::from(b.to_string()));
        self.send(
            Request::builder()
                .method(method)
                .uri(uri)
                .header("content-type", "application/json")
                .body(body)
                .unwrap(),
        )
        .await
    }

    async fn wait_for_state(&self, run_id: &str, states: &[&str]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, run) = self
                .call("GET", &format!("{KFP}/runs/{run_id}"), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{run}");
            if states.contains(&run["state"].as_str().unwrap_or_default()) {
                return run;
            }
            assert!(Instant::now() < deadline, "run {run_id}: {run}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn run_dir(&self, namespace: &str, run_id: &str) -> PathBuf {
        self.dir
            .path()
            .join("artifacts")
            .join(namespace)
            .join(run_id)
    }
}

/// A one-task pipeline running `script` with `sh -c`.
fn pipeline(script: &str) -> Value {
    json!({
        "pipelineInfo": {"name": "p"},
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.17.3",
        "root": {"dag": {"tasks": {"t": {
            "taskInfo": {"name": "t"},
            "componentRef": {"name": "comp-t"},
        }}}},
        "components": {"comp-t": {"executorLabel": "exec-t"}},
        "deploymentSpec": {"executors": {"exec-t": {"container": {
            "image": "alpine",
            "command": ["sh", "-c", script],
        }}}},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_run_removes_its_artifacts_too() {
    let h = Harness::new().await;
    let body = json!({"display_name": "done", "pipeline_spec": pipeline("echo hello")});
    let (status, run) = h.call("POST", &format!("{KFP}/runs"), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    let id = run["run_id"].as_str().unwrap().to_owned();
    h.wait_for_state(&id, &["SUCCEEDED"]).await;
    let dir = h.run_dir("default", &id);
    assert!(dir.join("t/.kfp/log").exists(), "the task wrote its log");

    let (status, _) = h.call("DELETE", &format!("{KFP}/runs/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!dir.exists(), "the run's artifacts directory is removed");
    let (status, _) = h.call("GET", &format!("{KFP}/runs/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_running_run_stops_it_first() {
    let h = Harness::new().await;
    let never = h.dir.path().join("never");
    let script = format!(
        "echo started; while [ ! -e '{}' ]; do sleep 0.02; done",
        never.display()
    );
    let body = json!({"display_name": "running", "pipeline_spec": pipeline(&script)});
    let (status, run) = h.call("POST", &format!("{KFP}/runs"), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    let id = run["run_id"].as_str().unwrap().to_owned();
    let log = h.run_dir("default", &id).join("t/.kfp/log");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("started")) {
        assert!(Instant::now() < deadline, "the task did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (status, v) = h.call("DELETE", &format!("{KFP}/runs/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // The delete returned after the run's tasks stopped: nothing writes
    // the directory again.
    assert!(!h.run_dir("default", &id).exists());
    let (status, _) = h.call("GET", &format!("{KFP}/runs/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!h.run_dir("default", &id).exists());
}
