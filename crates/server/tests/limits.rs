//! No single caller exhausts the server: fields are bounded when written
//! (400 naming the field and its limit), Kubernetes-style objects as
//! Kubernetes bounds them, and every listing is paged under a byte cap.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use oxflow_server::AppState;
use serde_json::{Value, json};
use tower::ServiceExt;

const KFP: &str = "/apis/v2beta1";
const ISVCS: &str = "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices";
const EXPERIMENTS: &str = "/apis/kubeflow.org/v1beta1/namespaces/default/experiments";

/// The byte budget of one list page (`limits::MAX_LIST_BYTES`).
const MAX_LIST_BYTES: usize = 4 * 1024 * 1024;

struct Harness {
    dir: tempfile::TempDir,
    state: AppState,
}

struct Reply {
    status: StatusCode,
    json: Value,
    bytes: usize,
}

impl Harness {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = common::app_state(dir.path()).await;
        Self { dir, state }
    }

    async fn call(&self, method: &str, uri: &str, content_type: &str, body: Vec<u8>) -> Reply {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap();
        let resp = common::router(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            bytes: bytes.len(),
        }
    }

    async fn post(&self, uri: &str, body: &Value) -> Reply {
        self.call(
            "POST",
            uri,
            "application/json",
            body.to_string().into_bytes(),
        )
        .await
    }

    async fn get(&self, uri: &str) -> Reply {
        self.call("GET", uri, "application/json", Vec::new()).await
    }
}

/// Asserts a 400 whose message is `message` (or starts with it, when it
/// ends with `…`).
fn refused(r: &Reply, message: &str) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    let got = r.json["message"].as_str().unwrap_or_default();
    match message.strip_suffix('…') {
        Some(prefix) => assert!(got.starts_with(prefix), "{got}"),
        None => assert_eq!(got, message),
    }
}

/// Asserts a Kubernetes `Status` refusal (400 BadRequest, or 422 Invalid
/// with the field at fault in `details.causes`) whose message holds
/// `message` (up to a trailing `…`).
fn kube_refused(r: &Reply, message: &str) {
    assert!(
        matches!(r.status.as_u16(), 400 | 422),
        "{} {}",
        r.status,
        r.json
    );
    assert_eq!(r.json["kind"], "Status", "{}", r.json);
    let got = r.json["message"].as_str().unwrap_or_default();
    let want = message.strip_suffix('…').unwrap_or(message);
    assert!(got.contains(want), "{want:?} in {got:?}");
    if r.status == StatusCode::UNPROCESSABLE_ENTITY {
        let field = message.split(':').next().unwrap_or_default();
        assert_eq!(r.json["details"]["causes"][0]["field"], field, "{}", r.json);
    }
}

/// A pipeline with one string parameter whose only task does nothing.
fn pipeline_spec() -> Value {
    json!({
        "pipelineInfo": {"name": "limits"},
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.17.3",
        "root": {
            "inputDefinitions": {"parameters": {"text": {"parameterType": "STRING"}}},
            "dag": {"tasks": {"noop": {
                "taskInfo": {"name": "noop"},
                "componentRef": {"name": "comp-noop"},
            }}},
        },
        "components": {"comp-noop": {"executorLabel": "exec-noop"}},
        "deploymentSpec": {"executors": {"exec-noop": {"container": {
            "image": "alpine", "command": ["true"],
        }}}},
    })
}

fn run(description: &str, text: &str) -> Value {
    json!({
        "display_name": "r",
        "description": description,
        "pipeline_spec": pipeline_spec(),
        "runtime_config": {"parameters": {"text": text}},
    })
}

fn multipart(field: &str, file: &str, content: &str) -> (String, Vec<u8>) {
    let boundary = "limits-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n{content}\r\n--{boundary}--\r\n"
    );
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kfp_fields_are_bounded_and_errors_name_the_field_and_limit() {
    let h = Harness::new().await;
    let long_name = "n".repeat(257);
    let name_error =
        "display_name: 257 characters is more than the limit of 256; use a shorter name";
    let description_error = "description: 8193 bytes is more than the limit of 8192 bytes…";

    // Experiments.
    let r = h
        .post(
            &format!("{KFP}/experiments"),
            &json!({"display_name": long_name}),
        )
        .await;
    refused(&r, name_error);
    let r = h
        .post(
            &format!("{KFP}/experiments"),
            &json!({"display_name": "e", "description": "d".repeat(8193)}),
        )
        .await;
    refused(&r, description_error);
    let ok = h
        .post(
            &format!("{KFP}/experiments"),
            &json!({"display_name": "n".repeat(256), "description": "d".repeat(8192)}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.json);

    // Runs: the issue's 30 MB description, a long name, too many parameter bytes.
    let r = h
        .post(&format!("{KFP}/runs"), &run(&"d".repeat(30_000_000), "x"))
        .await;
    refused(
        &r,
        "description: 30000000 bytes is more than the limit of 8192 bytes…",
    );
    let mut long = run("", "x");
    long["display_name"] = json!(long_name);
    refused(&h.post(&format!("{KFP}/runs"), &long).await, name_error);
    let r = h
        .post(&format!("{KFP}/runs"), &run("", &"p".repeat(1024 * 1024)))
        .await;
    refused(
        &r,
        "runtime_config.parameters: 1048587 bytes of JSON is more than the limit of 1048576 bytes",
    );

    // Pipelines, created and uploaded.
    let r = h
        .post(
            &format!("{KFP}/pipelines"),
            &json!({"display_name": "p", "description": "d".repeat(8193)}),
        )
        .await;
    refused(&r, description_error);
    let r = h
        .post(
            &format!("{KFP}/pipelines"),
            &json!({"display_name": "p", "name": long_name}),
        )
        .await;
    refused(
        &r,
        "name: 257 characters is more than the limit of 256; use a shorter name",
    );
    let (ct, body) = multipart("uploadfile", "p.json", &pipeline_spec().to_string());
    let r = h
        .call(
            "POST",
            &format!("{KFP}/pipelines/upload?name={long_name}"),
            &ct,
            body.clone(),
        )
        .await;
    refused(
        &r,
        "name: 257 characters is more than the limit of 256; use a shorter name",
    );
    let r = h
        .call(
            "POST",
            &format!(
                "{KFP}/pipelines/upload?name=p&description={}",
                "d".repeat(8193)
            ),
            &ct,
            body.clone(),
        )
        .await;
    refused(&r, description_error);

    // Recurring runs.
    let recurring = |extra: Value| {
        let mut v = json!({
            "display_name": "rr",
            "pipeline_spec": pipeline_spec(),
            "runtime_config": {"parameters": {"text": "x"}},
            "trigger": {"periodic_schedule": {"interval_second": 3600}},
            "mode": "DISABLE",
        });
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    let r = h
        .post(
            &format!("{KFP}/recurringruns"),
            &recurring(json!({"description": "d".repeat(8193)})),
        )
        .await;
    refused(&r, description_error);
    let r = h
        .post(
            &format!("{KFP}/recurringruns"),
            &recurring(json!({"display_name": long_name})),
        )
        .await;
    refused(&r, name_error);
    let r = h
        .post(
            &format!("{KFP}/recurringruns"),
            &recurring(json!({"trigger": {"cron_schedule": {"cron": "x".repeat(5000)}}})),
        )
        .await;
    refused(
        &r,
        "trigger: 5029 bytes of JSON is more than the limit of 4096 bytes",
    );
    let r = h
        .post(
            &format!("{KFP}/recurringruns"),
            &recurring(
                json!({"runtime_config": {"parameters": {"text": "p".repeat(1024 * 1024)}}}),
            ),
        )
        .await;
    refused(&r, "runtime_config.parameters: 1048587 bytes…");

    // Nothing refused was stored: only the one experiment that fit.
    assert_eq!(
        h.get(&format!("{KFP}/experiments")).await.json["total_size"],
        1
    );
    assert_eq!(h.get(&format!("{KFP}/runs")).await.json["total_size"], 0);
    assert_eq!(
        h.get(&format!("{KFP}/pipelines")).await.json["total_size"],
        0
    );
    assert_eq!(
        h.get(&format!("{KFP}/recurringruns")).await.json["total_size"],
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kfp_lists_are_paged_under_a_byte_cap_and_kfps_page_size_cap() {
    let h = Harness::new().await;
    // Six runs of ~0.9 MB each (parameters under the 1 MiB limit): 5.4 MB
    // in all, more than one page may hold.
    let text = "t".repeat(900_000);
    for _ in 0..6 {
        let r = h.post(&format!("{KFP}/runs"), &run("d", &text)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let r = h
            .get(&format!("{KFP}/runs?page_size=100&page_token={token}"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        pages += 1;
        assert!(
            r.bytes <= MAX_LIST_BYTES + 4096,
            "page of {} bytes",
            r.bytes
        );
        assert_eq!(r.json["total_size"], 6);
        for run in r.json["runs"].as_array().unwrap() {
            assert!(seen.insert(run["run_id"].as_str().unwrap().to_owned()));
        }
        match r.json["next_page_token"].as_str() {
            Some(t) => token = t.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    assert_eq!(pages, 2, "4 runs fit in 4 MiB, then 2");

    // page_size beyond KFP's 200 is clamped, with a token for the rest.
    for i in 0..205 {
        let r = h
            .post(
                &format!("{KFP}/experiments"),
                &json!({"display_name": format!("e{i}")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = h.get(&format!("{KFP}/experiments?page_size=1000")).await;
    assert_eq!(r.json["experiments"].as_array().unwrap().len(), 200);
    assert_eq!(r.json["total_size"], 205);
    let token = r.json["next_page_token"].as_str().unwrap();
    let r = h
        .get(&format!(
            "{KFP}/experiments?page_size=1000&page_token={token}"
        ))
        .await;
    assert_eq!(r.json["experiments"].as_array().unwrap().len(), 5);
    assert!(r.json.get("next_page_token").is_none());
}

fn isvc(name: &str, uri: &str, annotation_bytes: usize, label: &str) -> String {
    format!(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: {name}\n\
         \x20 labels:\n    app: \"{label}\"\n  annotations:\n    note: \"{}\"\n\
         spec:\n  predictor:\n    model:\n      modelFormat:\n        name: xgboost\n      storageUri: {uri}\n",
        "a".repeat(annotation_bytes)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_objects_are_bounded_as_kubernetes_bounds_them() {
    let h = Harness::new().await;
    let uri = h.dir.path().join("models/none").display().to_string();
    let create = |body: String| h.call("POST", ISVCS, "application/yaml", body.into_bytes());
    // Annotations over 256 KiB, a label value over 63 characters, an object
    // over 1.5 MiB, a body over 4 MiB.
    kube_refused(
        &create(isvc("a", &uri, 256 * 1024, "x")).await,
        "metadata.annotations: the annotations are 262148 bytes, keys and values together; the \
         limit is 262144 bytes",
    );
    kube_refused(
        &create(isvc("a", &uri, 1, &"v".repeat(64))).await,
        "metadata.labels.app: 64 characters is more than the limit of 63 for a label value",
    );
    kube_refused(
        &create(isvc("a", &uri, 2 * 1024 * 1024, "x")).await,
        "the object is 2097…",
    );
    let r = create(isvc("a", &uri, 5 * 1024 * 1024, "x")).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.json);
    // Katib's experiments are objects of the same API.
    let katib = |annotation: usize| {
        format!(
            "apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nmetadata:\n  name: big\n  \
             annotations:\n    note: \"{}\"\nspec: {{}}\n",
            "a".repeat(annotation)
        )
    };
    let r = h
        .call(
            "POST",
            EXPERIMENTS,
            "application/yaml",
            katib(300 * 1024).into_bytes(),
        )
        .await;
    kube_refused(
        &r,
        "metadata.annotations: the annotations are 307204 bytes…",
    );
    let r = h
        .call(
            "POST",
            EXPERIMENTS,
            "application/yaml",
            katib(2 << 20).into_bytes(),
        )
        .await;
    kube_refused(&r, "the object is 2097…");
    // Nothing was stored.
    assert_eq!(h.get(ISVCS).await.json["items"], json!([]));
    assert_eq!(h.get(EXPERIMENTS).await.json["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_lists_are_paged_with_limit_continue_and_a_byte_cap() {
    let h = Harness::new().await;
    let uri = h.dir.path().join("models/none").display().to_string();
    // 20 services with ~250 KiB of annotations each: 5 MB, more than a page.
    for i in 0..20 {
        let r = h
            .call(
                "POST",
                ISVCS,
                "application/yaml",
                isvc(&format!("s{i:02}"), &uri, 250 * 1024, "x").into_bytes(),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    }
    let mut names = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let r = h.get(&format!("{ISVCS}?continue={token}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        assert!(
            r.bytes <= MAX_LIST_BYTES + 4096,
            "page of {} bytes",
            r.bytes
        );
        pages += 1;
        for item in r.json["items"].as_array().unwrap() {
            names.push(item["metadata"]["name"].as_str().unwrap().to_owned());
        }
        match r.json["metadata"]["continue"].as_str() {
            Some(t) => token = t.to_owned(),
            None => break,
        }
    }
    let expected: Vec<String> = (0..20).map(|i| format!("s{i:02}")).collect();
    assert_eq!(names, expected);
    assert_eq!(pages, 2);
    // `limit` pages by count, in every namespace's listing too.
    let r = h
        .get("/apis/serving.kserve.io/v1beta1/inferenceservices?limit=15")
        .await;
    assert_eq!(r.json["items"].as_array().unwrap().len(), 15);
    let token = r.json["metadata"]["continue"].as_str().unwrap().to_owned();
    let r = h
        .get(&format!(
            "/apis/serving.kserve.io/v1beta1/inferenceservices?limit=15&continue={token}"
        ))
        .await;
    assert_eq!(r.json["items"].as_array().unwrap().len(), 5);
    assert!(r.json["metadata"].get("continue").is_none());
    let r = h.get(&format!("{ISVCS}?continue=nonsense")).await;
    kube_refused(&r, "continue: \"nonsense\" is not a token this server gave");
}
