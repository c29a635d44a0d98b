//! The KFP v2beta1 API through the real router and a running controller:
//! deleting a run removes what `oxflow runs delete` removes, and a request
//! whose namespace disagrees with an object it names is refused.

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
        let resp = common::router(self.state.clone())
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

    /// `POST …/pipelines/upload` or `…/upload_version` with `spec` as the file.
    async fn upload(&self, path_and_query: &str, spec: &Value) -> (StatusCode, Value) {
        let boundary = "oxflow-test-boundary";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"uploadfile\"; filename=\"p.json\"\r\n\
             Content-Type: application/json\r\n\r\n{spec}\r\n--{boundary}--\r\n"
        );
        self.send(
            Request::post(format!("{KFP}{path_and_query}"))
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(Body::from(body))
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

    async fn run_ids(&self, namespace: &str) -> Vec<String> {
        let (status, v) = self
            .call("GET", &format!("{KFP}/runs?namespace={namespace}"), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        v["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["run_id"].as_str().unwrap().to_owned())
            .collect()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_that_disagrees_with_a_named_object_is_refused() {
    let h = Harness::new().await;
    let (status, exp) = h
        .call(
            "POST",
            &format!("{KFP}/experiments"),
            Some(json!({"display_name": "e", "namespace": "team-b"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{exp}");
    let eid = exp["experiment_id"].as_str().unwrap().to_owned();
    let spec = pipeline("true");

    let check = |status: StatusCode, v: &Value, field: &str| {
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
        let m = v["message"].as_str().unwrap();
        assert!(m.starts_with(&format!("{field}: ")), "{m}");
        assert!(m.contains("team-a") && m.contains("team-b"), "{m}");
    };

    // A run asking for team-a with an experiment of team-b.
    let run = json!({"display_name": "r", "namespace": "team-a", "experiment_id": eid, "pipeline_spec": spec});
    let (status, v) = h.call("POST", &format!("{KFP}/runs"), Some(run)).await;
    check(status, &v, "experiment_id");
    // A recurring run likewise.
    let rr = json!({
        "display_name": "rr", "namespace": "team-a", "experiment_id": eid, "pipeline_spec": spec,
        "trigger": {"periodic_schedule": {"interval_second": 3600}}, "mode": "DISABLE",
    });
    let (status, v) = h
        .call("POST", &format!("{KFP}/recurringruns"), Some(rr))
        .await;
    check(status, &v, "experiment_id");
    // Listing team-a's runs of team-b's experiment.
    for list in ["runs", "recurringruns"] {
        let (status, v) = h
            .call(
                "GET",
                &format!("{KFP}/{list}?namespace=team-a&experiment_id={eid}"),
                None,
            )
            .await;
        check(status, &v, "experiment_id");
    }
    // Nothing was created anywhere.
    assert!(h.run_ids("team-a").await.is_empty());
    assert!(h.run_ids("team-b").await.is_empty());
    let (_, v) = h
        .call(
            "GET",
            &format!("{KFP}/recurringruns?namespace=team-a"),
            None,
        )
        .await;
    assert!(v.get("recurringRuns").is_none(), "{v}");

    // Agreeing, or leaving the namespace to the experiment, works.
    for ns in [json!("team-b"), Value::Null] {
        let run = json!({"display_name": "r", "namespace": ns, "experiment_id": eid, "pipeline_spec": spec});
        let (status, v) = h.call("POST", &format!("{KFP}/runs"), Some(run)).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["namespace"], "team-b");
    }

    // A pipeline of team-b run in team-a.
    let (status, p) = h.upload("/pipelines/upload?namespace=team-b", &spec).await;
    assert_eq!(status, StatusCode::OK, "{p}");
    let pid = p["pipeline_id"].as_str().unwrap().to_owned();
    let (_, versions) = h
        .call("GET", &format!("{KFP}/pipelines/{pid}/versions"), None)
        .await;
    let vid = versions["pipeline_versions"][0]["pipeline_version_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_ref = |ns: &str| {
        json!({"display_name": "r", "namespace": ns,
               "pipeline_version_reference": {"pipeline_id": pid, "pipeline_version_id": vid}})
    };
    let (status, v) = h
        .call("POST", &format!("{KFP}/runs"), Some(by_ref("team-a")))
        .await;
    check(status, &v, "pipeline_version_reference.pipeline_id");
    let (status, v) = h
        .call("POST", &format!("{KFP}/runs"), Some(by_ref("team-b")))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // A version named together with another pipeline.
    let (status, other) = h.upload("/pipelines/upload?name=other", &spec).await;
    assert_eq!(status, StatusCode::OK, "{other}");
    let mixed = json!({"display_name": "r",
        "pipeline_version_reference": {"pipeline_id": other["pipeline_id"], "pipeline_version_id": vid}});
    let (status, v) = h.call("POST", &format!("{KFP}/runs"), Some(mixed)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("pipeline_version_reference.pipeline_version_id: "),
        "{v}"
    );
    // A version uploaded to team-a's namespace for team-b's pipeline.
    let (status, v) = h
        .upload(
            &format!("/pipelines/upload_version?pipelineid={pid}&namespace=team-a"),
            &spec,
        )
        .await;
    check(status, &v, "namespace");
    let (status, v) = h
        .upload(
            &format!("/pipelines/upload_version?pipelineid={pid}&namespace=team-b&name=v2"),
            &spec,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
}
