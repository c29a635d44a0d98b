//! `/openapi.json` describes Oxflow's own API (`/oxflow/v1`) as the router
//! really serves it: every route with its methods and parameters, each
//! documented path answered by a handler (not the fallback), and the
//! documented JSON shapes matching real responses field for field.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use oxflow_core::Namespace;
use oxflow_pipelines::{Pipeline, RunOptions, SubmitRequest};
use oxflow_server::AppState;
use serde_json::Value;
use tower::ServiceExt;

/// Every route of `/oxflow/v1` (in OpenAPI path syntax), its methods and its
/// parameters. A route added to `api::routes()` must be added here and
/// documented.
const ROUTES: &[(&str, &[&str], &[&str])] = &[
    ("/oxflow/v1/namespaces", &["get"], &[]),
    ("/oxflow/v1/runs/{id}", &["get"], &["id"]),
    ("/oxflow/v1/runs/{id}/events", &["get"], &["id"]),
    (
        "/oxflow/v1/runs/{id}/tasks/{task_path}/log",
        &["get"],
        &["id", "task_path", "follow"],
    ),
    (
        "/oxflow/v1/artifacts",
        &["get"],
        &[
            "uri",
            "max_bytes",
            "download",
            "type",
            "namespace",
            "run_id",
            "limit",
        ],
    ),
];

const ECHO: &str = r#"
pipelineInfo: {name: echo}
schemaVersion: 2.1.0
sdkVersion: kfp-2.17.3
root:
  dag:
    tasks:
      hello:
        taskInfo: {name: hello}
        componentRef: {name: comp-echo}
components:
  comp-echo:
    executorLabel: exec-echo
deploymentSpec:
  executors:
    exec-echo:
      container:
        image: alpine
        command: [sh, -c, 'echo hi']
"#;

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

    async fn get(&self, uri: &str) -> axum::response::Response {
        common::router(self.state.clone())
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn get_json(&self, uri: &str) -> Value {
        let resp = self.get(uri).await;
        assert_eq!(resp.status(), StatusCode::OK, "GET {uri}");
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// Runs the one-task pipeline to its end and returns the run id.
    async fn finished_run(&self) -> String {
        let pipeline = Pipeline::load_str(ECHO, "echo.yaml").unwrap();
        let run = self
            .state
            .controller
            .engine()
            .submit(
                &pipeline,
                SubmitRequest {
                    namespace: Namespace::default(),
                    display_name: Some("echo".into()),
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
        for _ in 0..600 {
            let v = self.get_json(&format!("/oxflow/v1/runs/{}", run.id)).await;
            match v["run"]["state"].as_str() {
                Some("SUCCEEDED") => return run.id,
                Some("FAILED") | Some("CANCELED") => panic!("run ended {v}"),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        panic!("the run did not finish");
    }
}

/// The property names of component schema `name` (following `allOf`).
fn properties(doc: &Value, name: &str) -> BTreeSet<String> {
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "no schema {name}");
    let mut out = BTreeSet::new();
    collect_properties(doc, schema, &mut out);
    out
}

fn collect_properties(doc: &Value, schema: &Value, out: &mut BTreeSet<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        return collect_properties(doc, &doc["components"]["schemas"][name], out);
    }
    if let Some(p) = schema["properties"].as_object() {
        out.extend(p.keys().cloned());
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        collect_properties(doc, part, out);
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_covers_the_api() {
    let h = Harness::new().await;
    let resp = h.get("/openapi.json").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let doc: Value = serde_json::from_slice(&bytes).expect("the document is JSON");
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "openapi: {}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string());

    // Exactly the routes of /oxflow/v1, with their methods and parameters.
    let paths = doc["paths"].as_object().expect("paths");
    let documented: BTreeSet<&str> = paths
        .keys()
        .map(String::as_str)
        .filter(|p| p.starts_with("/oxflow/v1/"))
        .collect();
    let expected: BTreeSet<&str> = ROUTES.iter().map(|r| r.0).collect();
    assert_eq!(documented, expected);
    for (path, methods, params) in ROUTES {
        let item = paths[*path].as_object().unwrap();
        let got: BTreeSet<&str> = item
            .keys()
            .map(String::as_str)
            .filter(|k| ["get", "put", "post", "delete", "patch", "head", "options"].contains(k))
            .collect();
        assert_eq!(got, methods.iter().copied().collect(), "methods of {path}");
        for m in *methods {
            let op = &item[*m];
            let names: BTreeSet<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert_eq!(
                names,
                params.iter().copied().collect(),
                "parameters of {m} {path}"
            );
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                let placeholder = format!("{{{name}}}");
                assert_eq!(
                    p["in"].as_str().unwrap() == "path",
                    path.contains(&placeholder),
                    "{name} of {path}"
                );
            }
            assert!(
                op["responses"]["200"].is_object(),
                "{m} {path} documents 200"
            );
        }
    }

    // Each documented path is answered by its handler, for a real run.
    let run_id = h.finished_run().await;
    let root = h.dir.path().join("artifacts");
    let dir = root.join("default").join(&run_id).join("extra");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "hello").unwrap();
    for (path, _, _) in ROUTES {
        let uri = path
            .replace("{id}", &run_id)
            .replace("{task_path}", "hello");
        let resp = h.get(&uri).await;
        assert_eq!(resp.status(), StatusCode::OK, "GET {uri}");
    }
    // (An undocumented path falls through to the fallback.)
    let resp = h.get("/oxflow/v1/no-such-thing").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    // The documented shapes are the real ones.
    let ns = h.get_json("/oxflow/v1/namespaces").await;
    assert_eq!(keys(&ns), properties(&doc, "NamespaceList"));
    assert_eq!(
        keys(&ns["namespaces"][0]),
        properties(&doc, "NamespaceEntry")
    );

    let detail = h.get_json(&format!("/oxflow/v1/runs/{run_id}")).await;
    assert_eq!(keys(&detail), properties(&doc, "RunDetail"));
    assert_eq!(keys(&detail["run"]), properties(&doc, "RunSummary"));
    let tasks = detail["tasks"].as_array().unwrap();
    assert!(!tasks.is_empty());
    for t in tasks {
        assert_eq!(keys(t), properties(&doc, "Task"));
    }

    let list = h.get_json("/oxflow/v1/artifacts").await;
    assert_eq!(keys(&list), properties(&doc, "ArtifactList"));
    for a in list["artifacts"].as_array().unwrap() {
        assert_eq!(keys(a), properties(&doc, "ListedArtifact"));
    }

    let listing = h
        .get_json(&format!(
            "/oxflow/v1/artifacts?uri={}",
            dir.to_string_lossy().replace('/', "%2F")
        ))
        .await;
    assert_eq!(keys(&listing), properties(&doc, "DirectoryListing"));
    assert_eq!(
        keys(&listing["entries"][0]),
        properties(&doc, "DirectoryEntry")
    );

    // The error shape.
    let resp = h.get("/oxflow/v1/runs/no-such-run").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let err: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(keys(&err), properties(&doc, "ApiErrorBody"));
}
