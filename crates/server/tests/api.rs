//! Oxflow's own API (`/oxflow/v1`) through the real router: artifact reads
//! confined to the artifact store, the run event stream, task logs, and the
//! dashboard's files.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use oxflow_core::Namespace;
use oxflow_pipelines::{Pipeline, RunOptions, SubmitRequest};
use oxflow_server::AppState;
use serde_json::Value;
use tower::ServiceExt;

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

    fn root(&self) -> PathBuf {
        self.dir.path().join("artifacts")
    }

    async fn get(&self, uri: &str) -> axum::response::Response {
        common::router(self.state.clone())
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    /// Submits a pipeline whose only leaf waits for `gate` to exist, so a
    /// test decides when it finishes.
    async fn submit_gated(&self, gate: &Path) -> String {
        let yaml = GATED.replace("GATE", &gate.to_string_lossy());
        self.submit(&yaml, "gated").await
    }

    /// Submits the pipeline `yaml` (caching off) and nudges the controller.
    async fn submit(&self, yaml: &str, name: &str) -> String {
        let pipeline = Pipeline::load_str(yaml, &format!("{name}.yaml")).unwrap();
        let run = self
            .state
            .controller
            .engine()
            .submit(
                &pipeline,
                SubmitRequest {
                    namespace: Namespace::default(),
                    display_name: Some(name.into()),
                    parameters: BTreeMap::new(),
                    options: RunOptions {
                        enable_cache: false,
                        base_dir: None,
                    },
                },
            )
            .await
            .unwrap();
        self.state.controller.nudge();
        run.id
    }
}

/// `first` prints, waits for the gate file, prints again; `second` runs after it.
const GATED: &str = r#"
pipelineInfo: {name: gated}
schemaVersion: 2.1.0
sdkVersion: kfp-2.17.3
root:
  dag:
    tasks:
      first:
        taskInfo: {name: first}
        componentRef: {name: comp-wait}
      second:
        taskInfo: {name: second}
        componentRef: {name: comp-echo}
        dependentTasks: [first]
components:
  comp-wait:
    executorLabel: exec-wait
  comp-echo:
    executorLabel: exec-echo
deploymentSpec:
  executors:
    exec-wait:
      container:
        image: alpine
        command: [sh, -c, 'echo started; while [ ! -e "GATE" ]; do sleep 0.02; done; echo finished']
    exec-echo:
      container:
        image: alpine
        command: [sh, -c, 'echo second says hi']
"#;

async fn body_text(resp: axum::response::Response) -> String {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

async fn body_json(resp: axum::response::Response) -> Value {
    serde_json::from_str(&body_text(resp).await).unwrap()
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads a streamed body until `pred` holds for what was read so far (or it ends).
async fn read_until(body: &mut Body, seen: &mut String, pred: impl Fn(&str) -> bool) -> bool {
    while !pred(seen) {
        match body.frame().await {
            Some(Ok(f)) => {
                if let Some(d) = f.data_ref() {
                    seen.push_str(&String::from_utf8_lossy(d));
                }
            }
            _ => return pred(seen),
        }
    }
    true
}

// --------------------------------------------------------------- artifacts

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_are_read_only_inside_the_store() {
    let h = Harness::new().await;
    let root = h.root();
    let task = root.join("default/r1/train");
    std::fs::create_dir_all(&task).unwrap();
    std::fs::write(task.join("model"), "weights 0123456789").unwrap();
    std::fs::write(task.join("report"), "# Title\n\nbody").unwrap();
    // Outside the store: a secret, a sibling whose name starts like the root.
    let secret = h.dir.path().join("secret.txt");
    std::fs::write(&secret, "top secret").unwrap();
    let sibling = h.dir.path().join("artifacts-evil");
    std::fs::create_dir_all(&sibling).unwrap();
    std::fs::write(sibling.join("x"), "evil").unwrap();
    std::os::unix::fs::symlink(&secret, task.join("link-out")).unwrap();
    std::os::unix::fs::symlink(h.dir.path(), task.join("dir-out")).unwrap();
    std::os::unix::fs::symlink(task.join("model"), task.join("link-in")).unwrap();

    let r = |p: &Path| p.to_string_lossy().into_owned();
    let model = r(&task.join("model"));

    // Allowed.
    let resp = h
        .get(&format!("/oxflow/v1/artifacts?uri={}", enc(&model)))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-oxflow-truncated"], "false");
    assert!(
        resp.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("sandbox")
    );
    assert_eq!(body_text(resp).await, "weights 0123456789");
    let resp = h
        .get(&format!(
            "/oxflow/v1/artifacts?uri={}",
            enc(&format!("file://{model}"))
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    // Refused, each with a JSON error.
    let refused = [
        format!("{}/../secret.txt", r(&root)),
        format!("{}/default/r1/train/../../../secret.txt", r(&root)),
        r(&secret),
        r(&sibling.join("x")),
        r(&task.join("link-out")),
        r(&task.join("dir-out")),
        // Links are never followed, not even to a file inside the store.
        r(&task.join("link-in")),
        r(&task.join("dir-out/secret.txt")),
        "/etc/passwd".to_owned(),
        "gs://bucket/key".to_owned(),
        "relative/path".to_owned(),
        format!("file://{}/../secret.txt", r(&root)),
    ];
    for uri in refused {
        let resp = h
            .get(&format!("/oxflow/v1/artifacts?uri={}", enc(&uri)))
            .await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{uri}");
        let v = body_json(resp).await;
        assert!(
            v["message"].as_str().unwrap().contains("artifact store"),
            "{uri}: {v}"
        );
    }

    // Missing inside the store: 404.
    let resp = h
        .get(&format!(
            "/oxflow/v1/artifacts?uri={}",
            enc(&r(&task.join("nope")))
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_task_files_are_neither_served_nor_listed() {
    let h = Harness::new().await;
    let root = h.root();
    let task = root.join("default/r1/train");
    std::fs::create_dir_all(task.join(".kfp/secrets/tls")).unwrap();
    std::fs::create_dir_all(task.join("model")).unwrap();
    std::fs::write(task.join(".kfp/secrets/tls/crt"), "CERT").unwrap();
    std::fs::write(task.join(".kfp/executor_output.json"), "{}").unwrap();
    std::fs::write(task.join(".kfp/log"), "log").unwrap();
    std::fs::write(task.join("model/weights"), "w").unwrap();
    let t = task.to_string_lossy();
    for uri in [
        format!("{t}/.kfp"),
        format!("{t}/.kfp/"),
        format!("{t}/.kfp/log"),
        format!("{t}/.kfp/executor_output.json"),
        format!("{t}/.kfp/secrets/tls/crt"),
        format!("{t}//.kfp//secrets/tls/crt"),
        format!("file://{t}/.kfp/secrets/tls/crt"),
        format!("{t}/.kfp/../model/weights"),
    ] {
        let resp = h
            .get(&format!("/oxflow/v1/artifacts?uri={}", enc(&uri)))
            .await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{uri}");
        let text = body_text(resp).await;
        assert!(!text.contains("CERT"), "{uri}: {text}");
        assert!(text.contains("artifact store"), "{uri}: {text}");
    }
    let resp = h
        .get(&format!("/oxflow/v1/artifacts?uri={}", enc(&t)))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v = body_json(resp).await;
    let names: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["model"], "{v}");
    // Output files inside an artifact are still served.
    let resp = h
        .get(&format!(
            "/oxflow/v1/artifacts?uri={}",
            enc(&format!("{t}/model/weights"))
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

/// A task swaps one of its directories for a symlink to a directory
/// outside the store while the API serves a file beneath it: no answer may
/// ever carry the outside file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifact_reads_never_follow_a_directory_swapped_for_a_symlink() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    const ATTEMPTS: usize = 3000;
    let h = Harness::new().await;
    let task = h.root().join("default/r1/train");
    let outside = h.dir.path().join("outside");
    std::fs::create_dir_all(task.join("out")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(task.join("out/f"), "inside").unwrap();
    std::fs::write(outside.join("f"), "OUTSIDE").unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let swapper = {
        let (stop, swaps, task) = (stop.clone(), swaps.clone(), task.clone());
        std::thread::spawn(move || {
            let (dir, parked) = (task.join("out"), task.join("parked"));
            while !stop.load(Ordering::Relaxed) {
                std::fs::rename(&dir, &parked).unwrap();
                std::os::unix::fs::symlink(&outside, &dir).unwrap();
                std::fs::remove_file(&dir).unwrap();
                std::fs::rename(&parked, &dir).unwrap();
                swaps.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let uri = format!(
        "/oxflow/v1/artifacts?uri={}",
        enc(&task.join("out/f").to_string_lossy())
    );
    let app = common::router(h.state.clone());
    let (mut inside, mut leaked, mut refused) = (0, 0, 0);
    for _ in 0..ATTEMPTS {
        let resp = app
            .clone()
            .oneshot(Request::get(&uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let text = body_text(resp).await;
        if text.contains("OUTSIDE") {
            leaked += 1;
        } else if status == StatusCode::OK {
            inside += 1;
        } else {
            refused += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    eprintln!(
        "{ATTEMPTS} reads during {} swaps: {inside} inside, {refused} refused or missing, {leaked} outside",
        swaps.load(Ordering::Relaxed)
    );
    assert_eq!(leaked, 0, "answers that carried the file outside the store");
    assert!(inside > 0, "some reads found the directory in place");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifact_previews_downloads_and_listings() {
    let h = Harness::new().await;
    let task = h.root().join("default/r1/train");
    std::fs::create_dir_all(task.join("sub")).unwrap();
    std::fs::write(task.join("page"), "<h1>hi</h1><script>alert(1)</script>").unwrap();
    std::fs::write(task.join("sub/a.csv"), "x,y\n1,2\n").unwrap();
    let page = task.join("page").to_string_lossy().into_owned();

    let resp = h
        .get(&format!(
            "/oxflow/v1/artifacts?uri={}&max_bytes=4&type=system.HTML",
            enc(&page)
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let hd = resp.headers().clone();
    assert_eq!(hd["content-type"], "text/html; charset=utf-8");
    assert_eq!(hd["x-oxflow-truncated"], "true");
    assert_eq!(hd["x-oxflow-size"], "36");
    assert_eq!(hd["x-content-type-options"], "nosniff");
    assert!(
        hd["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline")
    );
    assert_eq!(body_text(resp).await, "<h1>");

    let resp = h
        .get(&format!(
            "/oxflow/v1/artifacts?uri={}&download=true&type=system.Markdown",
            enc(&page)
        ))
        .await;
    assert_eq!(
        resp.headers()["content-type"],
        "text/markdown; charset=utf-8"
    );
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"page\""
    );

    let resp = h
        .get(&format!(
            "/oxflow/v1/artifacts?uri={}&max_bytes=lots",
            enc(&page)
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    let resp = h
        .get(&format!(
            "/oxflow/v1/artifacts?uri={}",
            enc(&task.to_string_lossy())
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v = body_json(resp).await;
    assert_eq!(v["kind"], "directory");
    let names: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["page", "sub"]);
    assert_eq!(v["entries"][1]["kind"], "directory");

    let csv = task.join("sub/a.csv").to_string_lossy().into_owned();
    let resp = h
        .get(&format!("/oxflow/v1/artifacts?uri={}", enc(&csv)))
        .await;
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
}

// ------------------------------------------------------ events and logs

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_events_stream_snapshot_changes_and_end() {
    let h = Harness::new().await;
    let gate = h.dir.path().join("gate");
    let run_id = h.submit_gated(&gate).await;

    let resp = h.get(&format!("/oxflow/v1/runs/{run_id}/events")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    let mut seen = String::new();
    assert!(read_until(&mut body, &mut seen, |s| s.contains("event: snapshot")).await);
    assert!(
        seen.trim_start().starts_with("event: snapshot"),
        "the snapshot comes first: {seen}"
    );
    // The gated task is running before the test lets it finish.
    assert!(
        read_until(&mut body, &mut seen, |s| s.contains(r#""path":"first""#)
            && s.contains(r#""state":"RUNNING""#))
        .await,
        "{seen}"
    );
    std::fs::write(&gate, "").unwrap();
    // The stream ends by itself once the run is terminal.
    let mut rest = String::new();
    while let Some(frame) = body.frame().await {
        if let Some(d) = frame.unwrap().data_ref() {
            rest.push_str(&String::from_utf8_lossy(d));
        }
    }
    assert!(rest.contains("event: task"), "{rest}");
    assert!(
        rest.contains(r#""path":"second""#) && rest.contains(r#""state":"SUCCEEDED""#),
        "{rest}"
    );
    let end = rest.rfind("event: end").expect("an end event");
    assert!(rest[end..].contains("SUCCEEDED"), "{rest}");

    // A terminal run: its snapshot, then the end at once.
    let resp = h.get(&format!("/oxflow/v1/runs/{run_id}/events")).await;
    let text = body_text(resp).await;
    let snap = text.find("event: snapshot").unwrap();
    let end = text.find("event: end").unwrap();
    assert!(snap < end, "{text}");

    let resp = h.get("/oxflow/v1/runs/no-such-run/events").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_logs_follow_until_the_task_ends() {
    let h = Harness::new().await;
    let gate = h.dir.path().join("gate");
    let run_id = h.submit_gated(&gate).await;

    // Once the engine has recorded the task (the event stream says so),
    // its log can be followed.
    let mut events = h
        .get(&format!("/oxflow/v1/runs/{run_id}/events"))
        .await
        .into_body();
    let mut ev = String::new();
    assert!(
        read_until(&mut events, &mut ev, |s| s.contains(r#""path":"first""#)).await,
        "{ev}"
    );
    let resp = h
        .get(&format!(
            "/oxflow/v1/runs/{run_id}/tasks/first/log?follow=true"
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/plain; charset=utf-8");
    let mut body = resp.into_body();
    let mut seen = String::new();
    assert!(read_until(&mut body, &mut seen, |s| s.contains("started")).await);
    assert!(!seen.contains("finished"));
    std::fs::write(&gate, "").unwrap();
    // The body ends once the task is terminal, with everything it wrote.
    let complete = read_until(&mut body, &mut seen, |_| false).await;
    assert!(!complete);
    assert!(
        seen.contains("started") && seen.contains("finished"),
        "{seen}"
    );

    // Wait for the whole run through its event stream, then read a log plainly.
    let _ = body_text(h.get(&format!("/oxflow/v1/runs/{run_id}/events")).await).await;
    let resp = h
        .get(&format!("/oxflow/v1/runs/{run_id}/tasks/second/log"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(body_text(resp).await.contains("second says hi"));

    // The full run view carries tasks and their outputs.
    let v = body_json(h.get(&format!("/oxflow/v1/runs/{run_id}")).await).await;
    assert_eq!(v["run"]["state"], "SUCCEEDED");
    let paths: Vec<&str> = v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"first") && paths.contains(&"second"), "{v}");
    assert!(v["pipeline_spec"].is_object());

    // Unknown tasks and resources: 404 with a JSON error naming them.
    let resp = h
        .get(&format!(
            "/oxflow/v1/runs/{run_id}/tasks/for-loop-9/3/nope/log"
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let v = body_json(resp).await;
    assert!(
        v["message"].as_str().unwrap().contains("for-loop-9/3/nope"),
        "{v}"
    );
    let resp = h
        .get(&format!("/oxflow/v1/runs/{run_id}/tasks/first/stdout"))
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

// --------------------------------------------------------------- dashboard

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_with_its_assets() {
    let h = Harness::new().await;
    let resp = h.get("/").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let hd = resp.headers().clone();
    assert_eq!(hd["content-type"], "text/html; charset=utf-8");
    assert!(
        hd["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    let etag = hd["etag"].to_str().unwrap().to_owned();
    assert!(body_text(resp).await.contains("/ui/js/app.js"));

    let resp = common::router(h.state.clone())
        .oneshot(
            Request::get("/")
                .header("if-none-match", &etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);

    let resp = h.get("/ui/js/app.js").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    for missing in ["/ui/nope.js", "/ui/../Cargo.toml", "/ui/%2e%2e/Cargo.toml"] {
        let resp = h.get(missing).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{missing}");
    }
    let v = body_json(h.get("/oxflow/v1/namespaces").await).await;
    assert_eq!(v["default"], "default");
    assert_eq!(v["namespaces"], serde_json::json!([{"name": "default"}]));
}

#[tokio::test]
async fn namespaces_holding_something_are_offered() {
    let h = Harness::new().await;
    let team = oxflow_core::Namespace::new("team-a".to_owned()).unwrap();
    h.state
        .resources
        .create(
            &oxflow_resources::builtin::SECRET,
            Some(team.as_str()),
            serde_json::json!({"apiVersion": "v1", "kind": "Secret",
                               "metadata": {"name": "creds"}, "stringData": {"k": "v"}}),
            &Default::default(),
        )
        .await
        .unwrap();
    let v = body_json(h.get("/oxflow/v1/namespaces").await).await;
    assert_eq!(
        v["namespaces"],
        serde_json::json!([{"name": "default"}, {"name": "team-a"}])
    );
    assert_eq!(v["default"], "default");
}

// --------------------------------------------------------------- task pods

/// A pipeline step runs as a Pod: KFP's labels, running while its process
/// runs, its log through `pods/NAME/log`; deleting the pod ends the
/// process and fails the task, saying so; a finished step's pod has
/// succeeded; deleting the run deletes its pods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_steps_are_pods() {
    let h = Harness::new().await;
    let gate = h.dir.path().join("gate-pods");
    let run_id = h.submit_gated(&gate).await;
    let pods = "/api/v1/namespaces/default/pods";
    let selector = format!("labelSelector={}", enc(&format!("pipeline/runid={run_id}")));

    // The first step's pod appears, running (watched, not polled).
    let mut watch = h
        .get(&format!("{pods}?watch=true&{selector}"))
        .await
        .into_body();
    let mut seen = String::new();
    assert!(
        read_until(&mut watch, &mut seen, |s| s
            .contains(r#""phase":"Running""#))
        .await,
        "{seen}"
    );
    let line = seen
        .lines()
        .find(|l| l.contains(r#""phase":"Running""#))
        .unwrap();
    let pod: Value = serde_json::from_str(line).unwrap();
    let pod = &pod["object"];
    let name = pod["metadata"]["name"].as_str().unwrap().to_owned();
    assert_eq!(
        pod["metadata"]["labels"]["pipelines.kubeflow.org/v2_component"],
        "true"
    );
    assert_eq!(
        pod["metadata"]["annotations"]["pipelines.kubeflow.org/task-path"],
        "first"
    );
    assert_eq!(pod["spec"]["containers"][0]["name"], "main");
    assert_eq!(pod["spec"]["containers"][0]["image"], "alpine");

    // Its output, followed while it runs.
    let mut log = h
        .get(&format!("{pods}/{name}/log?follow=true"))
        .await
        .into_body();
    let mut out = String::new();
    assert!(
        read_until(&mut log, &mut out, |s| s.contains("started")).await,
        "{out}"
    );

    // Deleting the pod ends the step's process: the task fails, saying why.
    let resp = common::router(h.state.clone())
        .oneshot(
            Request::delete(format!("{pods}/{name}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let events = body_text(h.get(&format!("/oxflow/v1/runs/{run_id}/events")).await).await;
    let end = events.rfind("event: end").expect("an end event");
    assert!(events[end..].contains("FAILED"), "{events}");
    let tasks = h
        .state
        .controller
        .engine()
        .store()
        .list_tasks(&run_id)
        .await
        .unwrap();
    let first = tasks.iter().find(|t| t.path == "first").unwrap();
    assert!(
        first
            .error
            .as_deref()
            .is_some_and(|e| e.contains("its pod was deleted")),
        "{:?}",
        first.error
    );

    // Steps that run to their end: their pods succeed with exit code 0,
    // then go (Argo's OnPodSuccess GC), all seen by a watch from before.
    let list = body_json(h.get(pods).await).await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(&gate, "").unwrap();
    let run2 = h.submit_gated(&gate).await;
    let selector2 = format!("labelSelector={}", enc(&format!("pipeline/runid={run2}")));
    let mut watch = h
        .get(&format!(
            "{pods}?watch=true&resourceVersion={rv}&{selector2}"
        ))
        .await
        .into_body();
    let mut seen = String::new();
    assert!(
        read_until(&mut watch, &mut seen, |s| s
            .matches(r#""type":"DELETED""#)
            .count()
            == 2)
        .await,
        "{seen}"
    );
    let mut succeeded = Vec::new();
    for line in seen.lines().filter(|l| !l.trim().is_empty()) {
        let e: Value = serde_json::from_str(line).unwrap();
        let o = &e["object"];
        if e["type"] == "MODIFIED" && o["status"]["phase"] == "Succeeded" {
            let code = &o["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"];
            assert_eq!(code, 0, "{o}");
            succeeded.push(o["metadata"]["name"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(succeeded.len(), 2, "{seen}");
    let list = body_json(h.get(&format!("{pods}?{selector2}")).await).await;
    assert_eq!(list["items"], serde_json::json!([]), "{list}");
    // KFP's run details name the same pods.
    let _ = body_text(h.get(&format!("/oxflow/v1/runs/{run2}/events")).await).await;
    let run = body_json(h.get(&format!("/apis/v2beta1/runs/{run2}")).await).await;
    let details = run["run_details"]["task_details"].as_array().unwrap();
    let mut named: Vec<String> = details
        .iter()
        .filter_map(|t| t["pod_name"].as_str().filter(|n| !n.is_empty()))
        .map(str::to_owned)
        .collect();
    named.sort();
    succeeded.sort();
    assert_eq!(named, succeeded);

    // A step that fails keeps its pod (Failed, its exit code) until its
    // run is deleted.
    let run3 = h.submit(FAILING, "failing").await;
    let selector3 = format!("labelSelector={}", enc(&format!("pipeline/runid={run3}")));
    let mut watch = h
        .get(&format!("{pods}?watch=true&{selector3}"))
        .await
        .into_body();
    let mut seen = String::new();
    assert!(
        read_until(&mut watch, &mut seen, |s| s.contains(r#""phase":"Failed""#)).await,
        "{seen}"
    );
    let _ = body_text(h.get(&format!("/oxflow/v1/runs/{run3}/events")).await).await;
    let list = body_json(h.get(&format!("{pods}?{selector3}")).await).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    let code = &items[0]["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"];
    assert_eq!(code, 3, "{list}");
    let name3 = items[0]["metadata"]["name"].as_str().unwrap();
    let text = body_text(h.get(&format!("{pods}/{name3}/log")).await).await;
    assert!(text.contains("oops"), "{text}");
    let resp = common::router(h.state.clone())
        .oneshot(
            Request::delete(format!("/apis/v2beta1/runs/{run3}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let list = body_json(h.get(&format!("{pods}?{selector3}")).await).await;
    assert_eq!(list["items"], serde_json::json!([]), "{list}");
}

/// One step that prints and exits 3.
const FAILING: &str = r#"
pipelineInfo: {name: failing}
schemaVersion: 2.1.0
sdkVersion: kfp-2.17.3
root:
  dag:
    tasks:
      fail:
        taskInfo: {name: fail}
        componentRef: {name: comp-fail}
components:
  comp-fail:
    executorLabel: exec-fail
deploymentSpec:
  executors:
    exec-fail:
      container:
        image: alpine
        command: [sh, -c, 'echo oops; exit 3']
"#;
