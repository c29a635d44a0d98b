//! Katib's kinds through the real router (the Kubernetes API for the
//! objects, Katib's own routes for the rest) and a real tuning controller:
//! create from YAML, validation errors naming the field, listing, trials,
//! pushed metrics, stop, resume and delete.

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use oxflow_server::AppState;
use serde_json::{Value, json};
use tower::ServiceExt;

const BASE: &str = "/apis/kubeflow.org/v1beta1/namespaces/default";

struct Harness {
    _dir: tempfile::TempDir,
    state: AppState,
}

impl Harness {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = common::app_state(dir.path()).await;
        Self { _dir: dir, state }
    }

    async fn call(&self, method: &str, uri: &str, body: &str) -> (StatusCode, Value, String) {
        let resp = common::router(self.state.clone())
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    // Experiments are written as YAML, as `kubectl apply` can.
                    .header(
                        "content-type",
                        if body.trim_start().starts_with('{') || body.is_empty() {
                            "application/json"
                        } else {
                            "application/yaml"
                        },
                    )
                    .body(Body::from(body.to_owned()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        )
    }

    async fn wait_for(&self, what: &str, mut cond: impl AsyncFnMut(&Self) -> bool) {
        let start = Instant::now();
        while !cond(self).await {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn experiment(name: &str, command: &str, collector: &str, max: u32) -> String {
    format!(
        r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: {name}
spec:
  objective:
    type: maximize
    objectiveMetricName: score
  algorithm:
    algorithmName: random
  parallelTrialCount: 2
  maxTrialCount: {max}
  resumePolicy: LongRunning{collector}
  parameters:
    - name: a
      parameterType: int
      feasibleSpace: {{min: "1", max: "9"}}
  trialTemplate:
    primaryContainerName: main
    trialParameters:
      - name: a
        reference: a
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                image: busybox
                command: ["sh", "-c", "{command}"]
            restartPolicy: Never
"#
    )
}

/// The newest condition that holds ("" before the controller wrote any).
fn phase(e: &Value) -> String {
    e["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().rfind(|c| c["status"] == "True"))
        .and_then(|c| c["type"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiments_run_through_the_api() {
    let h = Harness::new().await;
    // Bad input names the field and stores nothing.
    let bad = experiment("bad", "echo score=1", "", 3).replace("max: \"9\"", "max: \"zero\"");
    let (status, body, _) = h.call("POST", &format!("{BASE}/experiments"), &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["reason"], "Invalid", "{body}");
    assert_eq!(
        body["details"]["causes"][0]["field"], "spec.parameters[0].feasibleSpace.max",
        "{body}"
    );
    let (_, list, _) = h.call("GET", &format!("{BASE}/experiments"), "").await;
    assert_eq!(list["items"], json!([]));

    // A good one runs to completion in the background controller.
    let yaml = experiment("api-exp", "echo score=${trialParameters.a}", "", 3);
    let (status, created, text) = h.call("POST", &format!("{BASE}/experiments"), &yaml).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    assert_eq!(created["metadata"]["name"], "api-exp");
    let (status, _, _) = h.call("POST", &format!("{BASE}/experiments"), &yaml).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "names are unique in a namespace"
    );
    h.wait_for("the experiment to succeed", async |h: &Harness| {
        let (_, e, _) = h
            .call("GET", &format!("{BASE}/experiments/api-exp"), "")
            .await;
        phase(&e) == "Succeeded"
    })
    .await;
    let (_, e, _) = h
        .call("GET", &format!("{BASE}/experiments/api-exp"), "")
        .await;
    assert_eq!(e["status"]["trialsSucceeded"], 3);
    let (_, trials, _) = h
        .call("GET", &format!("{BASE}/experiments/api-exp/trials"), "")
        .await;
    let items = trials["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    // maximize: the best trial has the largest a (score = a).
    let best = items
        .iter()
        .max_by_key(|t| {
            t["spec"]["parameterAssignments"][0]["value"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .unwrap()
        })
        .unwrap();
    assert_eq!(
        e["status"]["currentOptimalTrial"]["bestTrialName"],
        best["metadata"]["name"]
    );
    let name = best["metadata"]["name"].as_str().unwrap();
    let (status, _, log) = h
        .call("GET", &format!("{BASE}/trials/{name}/logs"), "")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(log.starts_with("score="), "{log}");
    let (_, metrics, _) = h
        .call("GET", &format!("{BASE}/trials/{name}/metrics"), "")
        .await;
    assert_eq!(metrics["metricLogs"][0]["metric"]["name"], "score");

    // Resume with a larger maxTrialCount (LongRunning), then delete.
    let (status, _, text) = h
        .call(
            "POST",
            &format!("{BASE}/experiments/api-exp/resume"),
            r#"{"maxTrialCount": 2}"#,
        )
        .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{text}");
    let (status, _, text) = h
        .call(
            "POST",
            &format!("{BASE}/experiments/api-exp/resume"),
            r#"{"maxTrialCount": 4}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    h.wait_for("the resumed experiment to succeed", async |h: &Harness| {
        let (_, e, _) = h
            .call("GET", &format!("{BASE}/experiments/api-exp"), "")
            .await;
        phase(&e) == "Succeeded" && e["status"]["trials"] == 4
    })
    .await;
    let (status, _, _) = h
        .call("DELETE", &format!("{BASE}/experiments/api-exp"), "")
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = h
        .call("GET", &format!("{BASE}/experiments/api-exp"), "")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_metrics_and_stop() {
    let h = Harness::new().await;
    // Trials wait for a marker file, so the test pushes their metrics while they run.
    let gate = h._dir.path().join("gate");
    let cmd = format!(
        "echo a=${{trialParameters.a}}; while [ ! -f {} ]; do sleep 0.05; done",
        gate.display()
    );
    let yaml = experiment(
        "pushy",
        &cmd,
        "\n  metricsCollectorSpec:\n    collector:\n      kind: Push",
        2,
    );
    let (status, _, text) = h.call("POST", &format!("{BASE}/experiments"), &yaml).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    h.wait_for("two running trials", async |h: &Harness| {
        let (_, e, _) = h
            .call("GET", &format!("{BASE}/experiments/pushy"), "")
            .await;
        e["status"]["trialsRunning"] == 2
    })
    .await;
    let (_, trials, _) = h
        .call("GET", &format!("{BASE}/experiments/pushy/trials"), "")
        .await;
    let names: Vec<String> = trials["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    for (i, n) in names.iter().enumerate() {
        let (status, body, text) = h
            .call(
                "POST",
                &format!("{BASE}/trials/{n}/metrics"),
                &format!(r#"{{"metrics": {{"score": {}}}}}"#, i + 10),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_eq!(body["recorded"], 1);
    }
    let (status, _, _) = h
        .call(
            "POST",
            &format!("{BASE}/trials/{}/metrics", names[0]),
            r#"{"metrics": {"score": [1]}}"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    std::fs::write(&gate, "").unwrap();
    h.wait_for("the experiment to succeed", async |h: &Harness| {
        let (_, e, _) = h
            .call("GET", &format!("{BASE}/experiments/pushy"), "")
            .await;
        phase(&e) == "Succeeded"
    })
    .await;
    let (_, e, _) = h
        .call("GET", &format!("{BASE}/experiments/pushy"), "")
        .await;
    assert_eq!(
        e["status"]["currentOptimalTrial"]["bestTrialName"].as_str(),
        Some(names[1].as_str())
    );
    // A finished trial no longer accepts reports.
    let (status, _, _) = h
        .call(
            "POST",
            &format!("{BASE}/trials/{}/metrics", names[0]),
            r#"{"metrics": {"score": 1}}"#,
        )
        .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);

    // Stop: a running experiment ends Stopped with its trials killed.
    std::fs::remove_file(&gate).unwrap();
    let yaml = experiment("stopme", &cmd, "", 5);
    h.call("POST", &format!("{BASE}/experiments"), &yaml).await;
    h.wait_for("running trials", async |h: &Harness| {
        let (_, e, _) = h
            .call("GET", &format!("{BASE}/experiments/stopme"), "")
            .await;
        e["status"]["trialsRunning"] == 2
    })
    .await;
    let (status, _, _) = h
        .call("POST", &format!("{BASE}/experiments/stopme/stop"), "")
        .await;
    assert_eq!(status, StatusCode::OK);
    h.wait_for("killed trials", async |h: &Harness| {
        let (_, e, _) = h
            .call("GET", &format!("{BASE}/experiments/stopme"), "")
            .await;
        e["status"]["trialsKilled"] == 2
    })
    .await;
    let (_, e, _) = h
        .call("GET", &format!("{BASE}/experiments/stopme"), "")
        .await;
    assert_eq!(phase(&e), "Stopped");
}

/// A running trial's pod: its log followed as the trial writes it, to the
/// end of the trial; a pod of another namespace that names the trial in
/// its labels shows nothing of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_trials_pod_log_is_followed_to_its_end() {
    let h = Harness::new().await;
    let gate = h._dir.path().join("gate");
    let cmd = format!(
        "echo first=${{trialParameters.a}}; while [ ! -f {} ]; do sleep 0.05; done; echo score=3",
        gate.display()
    );
    let (status, _, text) = h
        .call(
            "POST",
            &format!("{BASE}/experiments"),
            &experiment("follow", &cmd, "", 2),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let pods =
        "/api/v1/namespaces/default/pods?labelSelector=katib.kubeflow.org%2Fexperiment%3Dfollow";
    h.wait_for("a running pod", async |h: &Harness| {
        let (_, list, _) = h.call("GET", pods, "").await;
        list["items"][0]["status"]["phase"] == "Running"
    })
    .await;
    let (_, list, _) = h.call("GET", pods, "").await;
    let pod = list["items"][0].clone();
    let name = pod["metadata"]["name"].as_str().unwrap().to_owned();
    let trial = pod["metadata"]["labels"]["katib.kubeflow.org/trial"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        pod["metadata"]["ownerReferences"][0]["name"],
        trial.as_str()
    );
    assert_eq!(pod["spec"]["containers"][0]["name"], "main");

    let resp = common::router(h.state.clone())
        .oneshot(
            Request::builder()
                .uri(format!(
                    "/api/v1/namespaces/default/pods/{name}/log?follow=true&container=main"
                ))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut seen = String::new();
    while !seen.contains('\n') {
        let frame = body.frame().await.expect("the log ended early").unwrap();
        seen.push_str(&String::from_utf8_lossy(&frame.into_data().unwrap()));
    }
    assert!(seen.starts_with("first="), "{seen}");
    // Deleting the other trial's pod ends its process; its trial fails, saying so.
    h.wait_for("two running pods", async |h: &Harness| {
        let (_, list, _) = h.call("GET", pods, "").await;
        list["items"][1]["status"]["phase"] == "Running"
    })
    .await;
    let (_, list, _) = h.call("GET", pods, "").await;
    let other = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["metadata"]["name"] != name.as_str())
        .unwrap()
        .clone();
    let other_trial = other["metadata"]["labels"]["katib.kubeflow.org/trial"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, text) = h
        .call(
            "DELETE",
            &format!(
                "/api/v1/namespaces/default/pods/{}",
                other["metadata"]["name"].as_str().unwrap()
            ),
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    h.wait_for("the other trial to fail", async |h: &Harness| {
        let (_, t, _) = h
            .call("GET", &format!("{BASE}/trials/{other_trial}"), "")
            .await;
        phase(&t) == "Failed"
    })
    .await;
    let (_, t, _) = h
        .call("GET", &format!("{BASE}/trials/{other_trial}"), "")
        .await;
    let last = t["status"]["conditions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("pod was deleted"),
        "{last}"
    );
    // The first trial goes on: what it writes next arrives, then the stream ends.
    std::fs::write(&gate, "").unwrap();
    while let Some(frame) = body.frame().await {
        seen.push_str(&String::from_utf8_lossy(
            &frame.unwrap().into_data().unwrap(),
        ));
    }
    assert!(seen.ends_with("score=3\n"), "{seen}");
    let (_, pod, _) = h
        .call(
            "GET",
            &format!("/api/v1/namespaces/default/pods/{name}"),
            "",
        )
        .await;
    assert_eq!(pod["status"]["phase"], "Succeeded");
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        0
    );
    let (status, _, text) = h
        .call(
            "GET",
            &format!("/api/v1/namespaces/default/pods/{name}/log?tailLines=1"),
            "",
        )
        .await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "score=3\n"));
    let (status, body, _) = h
        .call(
            "GET",
            &format!("/api/v1/namespaces/default/pods/{name}/log?container=other"),
            "",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Someone's pod in another namespace, labelled as this trial's.
    let forged = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "forged", "labels": {
            "katib.kubeflow.org/experiment": "follow",
            "katib.kubeflow.org/trial": trial,
        }},
        "spec": {"containers": [{"name": "main"}]},
    });
    let (status, _, text) = h
        .call("POST", "/api/v1/namespaces/other/pods", &forged.to_string())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let (status, _, text) = h
        .call("GET", "/api/v1/namespaces/other/pods/forged/log", "")
        .await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, ""));
}
