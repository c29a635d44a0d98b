//! Authentication and the per-object namespace check, through the real
//! router: every route (walked from the route table, so a new route is
//! covered without a new case) refuses a request without the token over a
//! real connection, and id-keyed routes authorize against the namespace
//! stored with the object, not one the request names.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use oxflow_auth::{Caller, Credentials, Scope};
use oxflow_edge::{Access, Gate, HostPolicy, ServeConfig};
use oxflow_server::AppState;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

const TOKEN: &str = "oxf_test_token_0123456789abcdef0123456789";

/// A path with every `{param}` filled in with something routable.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with("{*") {
                "a/b".to_owned()
            } else if seg.starts_with('{') {
                "x".to_owned()
            } else {
                seg.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The methods `path` is routed for: those the owner's in-process router
/// answers with something other than 405.
async fn methods(state: &AppState, path: &str) -> Vec<Method> {
    let mut found = Vec::new();
    for m in [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ] {
        let resp = common::router(state.clone())
            .oneshot(
                Request::builder()
                    .method(m.clone())
                    .uri(path)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&body);
        if status != StatusCode::METHOD_NOT_ALLOWED && !text.contains("no such route") {
            found.push(m);
        }
    }
    found
}

/// One request over TCP; the status code.
async fn send(addr: std::net::SocketAddr, method: &Method, path: &str, auth: Option<&str>) -> u16 {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_a_request_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let state = common::app_state(dir.path()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gate = Arc::new(Gate::new(Credentials::from_token(TOKEN.into()), true));
    let config = ServeConfig::new(
        HostPolicy::for_listener(addr, &[], &[]).unwrap(),
        Access::Token(gate),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(oxflow_server::serve_on(
        listener,
        oxflow_server::router(state.clone()),
        config,
        stop.clone(),
    ));
    let _stop = stop.drop_guard();

    let paths = oxflow_server::route_paths();
    assert!(paths.len() > 30, "the route table looks empty: {paths:?}");
    let mut checked = 0;
    for path in &paths {
        let uri = concrete(path);
        let found = methods(&state, &uri).await;
        assert!(
            !found.is_empty(),
            "{path} (as {uri}) is routed for no method: the test cannot reach it"
        );
        for m in found {
            for auth in [
                None,
                Some("Bearer not-the-token"),
                Some("Basic b3duZXI6eA=="),
            ] {
                let code = send(addr, &m, &uri, auth).await;
                assert_eq!(code, 401, "{m} {uri} with {auth:?} answered {code}");
            }
            checked += 1;
        }
    }
    // The data plane, routed by Host or by path, too.
    for uri in ["/serving/default/x/v2/models/x/infer", "/v2/models/x/infer"] {
        assert_eq!(send(addr, &Method::POST, uri, None).await, 401, "{uri}");
    }
    // With the token, a request goes through.
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        send(addr, &Method::GET, "/apis/v2beta1/healthz", Some(&bearer)).await,
        200
    );
    assert!(checked > paths.len(), "{checked} method/path pairs checked");
}

#[test]
fn routes_are_only_added_through_the_route_table() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") || path.ends_with("routes.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            // `Routes::route` is the recording one; axum's own
            // `Router::route`/`route_service` would bypass the table.
            // A listener of its own (not `oxflow up`'s) says so.
            if line.contains("route table: own listener") {
                continue;
            }
            if line.contains("Router::new()") || line.contains(".route_service(") {
                offenders.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "routes must be added through routes::Routes so the auth test walks them:\n{}",
        offenders.join("\n")
    );
}

/// A caller who may reach only namespace `team-a`.
fn team_a() -> Caller {
    Caller {
        name: "alice".into(),
        scope: Scope::Namespaces(vec!["team-a".into()]),
    }
}

async fn call(
    state: &AppState,
    caller: Caller,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    let body = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let resp = common::as_caller(state.clone(), caller)
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes))),
    )
}

const ECHO: &str = r#"{"pipelineInfo":{"name":"echo"},"schemaVersion":"2.1.0","sdkVersion":"kfp-2.17.3",
 "root":{"dag":{"tasks":{"echo":{"taskInfo":{"name":"echo"},"componentRef":{"name":"comp-echo"}}}}},
 "components":{"comp-echo":{"executorLabel":"exec-echo"}},
 "deploymentSpec":{"executors":{"exec-echo":{"container":{"image":"alpine","command":["sh","-c","echo hi"]}}}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_keyed_routes_authorize_against_the_objects_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let state = common::app_state(dir.path()).await;
    let owner = Caller::owner;
    let spec: Value = serde_json::from_str(ECHO).unwrap();

    // What the owner makes in namespace `default`.
    let (s, e) = call(
        &state,
        owner(),
        Method::POST,
        "/apis/v2beta1/experiments",
        Some(json!({"display_name": "e", "namespace": "default"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let eid = e["experiment_id"].as_str().unwrap().to_owned();
    let (s, r) = call(
        &state,
        owner(),
        Method::POST,
        "/apis/v2beta1/runs",
        Some(json!({"display_name": "r", "experiment_id": eid, "pipeline_spec": spec})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let rid = r["run_id"].as_str().unwrap().to_owned();
    let (s, rr) = call(
        &state,
        owner(),
        Method::POST,
        "/apis/v2beta1/recurringruns",
        Some(json!({"display_name": "rr", "experiment_id": eid, "pipeline_spec": spec,
                    "mode": "DISABLE", "trigger": {"periodic_schedule": {"interval_second": "3600"}}})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{rr}");
    let rrid = rr["recurring_run_id"].as_str().unwrap().to_owned();
    let (s, p) = call(
        &state,
        owner(),
        Method::POST,
        "/apis/v2beta1/pipelines",
        Some(json!({"display_name": "p", "namespace": "default"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let pid = p["pipeline_id"].as_str().unwrap().to_owned();
    let artifact = dir
        .path()
        .join("artifacts")
        .join("default")
        .join(&rid)
        .join("echo");
    let artifact_uri = format!(
        "/oxflow/v1/artifacts?uri={}",
        artifact.to_string_lossy().replace('/', "%2F")
    );

    // Alice (team-a only) reaches none of it by id, whatever the request
    // says about namespaces.
    let denied: Vec<(Method, String)> = vec![
        (Method::GET, format!("/apis/v2beta1/experiments/{eid}")),
        (Method::DELETE, format!("/apis/v2beta1/experiments/{eid}")),
        (
            Method::POST,
            format!("/apis/v2beta1/experiments/{eid}:archive"),
        ),
        (Method::GET, format!("/apis/v2beta1/runs/{rid}")),
        (Method::DELETE, format!("/apis/v2beta1/runs/{rid}")),
        (Method::POST, format!("/apis/v2beta1/runs/{rid}:terminate")),
        (
            Method::GET,
            format!("/apis/v2beta1/runs?experiment_id={eid}"),
        ),
        (Method::GET, format!("/apis/v2beta1/recurringruns/{rrid}")),
        (
            Method::DELETE,
            format!("/apis/v2beta1/recurringruns/{rrid}"),
        ),
        (
            Method::POST,
            format!("/apis/v2beta1/recurringruns/{rrid}:enable"),
        ),
        (Method::GET, format!("/apis/v2beta1/pipelines/{pid}")),
        (Method::DELETE, format!("/apis/v2beta1/pipelines/{pid}")),
        (
            Method::GET,
            format!("/apis/v2beta1/pipelines/{pid}/versions"),
        ),
        (Method::GET, "/apis/v2beta1/pipelines".to_owned()),
        (Method::GET, format!("/oxflow/v1/runs/{rid}")),
        (Method::GET, format!("/oxflow/v1/runs/{}", &rid[..8])),
        (Method::GET, format!("/oxflow/v1/runs/{rid}/events")),
        (Method::GET, format!("/oxflow/v1/runs/{rid}/tasks/echo/log")),
        (Method::GET, format!("/oxflow/v1/artifacts?run_id={rid}")),
        (Method::GET, artifact_uri.clone()),
        (
            Method::GET,
            "/apis/v2beta1/runs?namespace=default".to_owned(),
        ),
        (
            Method::GET,
            "/apis/kubeflow.org/v1beta1/namespaces/default/experiments".to_owned(),
        ),
        (
            Method::GET,
            "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices/x".to_owned(),
        ),
        (
            Method::DELETE,
            "/apis/serving.kserve.io/v1alpha1/namespaces/default/trainedmodels/x".to_owned(),
        ),
        // Workloads' pods and their output.
        (Method::GET, "/api/v1/namespaces/default/pods".to_owned()),
        (
            Method::GET,
            "/api/v1/namespaces/default/pods/x/log?follow=true".to_owned(),
        ),
        (
            Method::DELETE,
            "/api/v1/namespaces/default/pods/x".to_owned(),
        ),
        // Katib's routes beside its objects.
        (
            Method::GET,
            "/apis/kubeflow.org/v1beta1/namespaces/default/experiments/x/trials".to_owned(),
        ),
        (
            Method::POST,
            "/apis/kubeflow.org/v1beta1/namespaces/default/experiments/x/stop".to_owned(),
        ),
        (
            Method::GET,
            "/apis/kubeflow.org/v1beta1/namespaces/default/trials/x/logs".to_owned(),
        ),
    ];
    for (m, uri) in &denied {
        let (s, body) = call(&state, team_a(), m.clone(), uri, None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{m} {uri}: {body}");
        assert!(
            body.to_string().contains("namespace")
                || body.to_string().contains("across all namespaces"),
            "{m} {uri}: {body}"
        );
    }
    // The owner reaches the same objects.
    for uri in [
        format!("/apis/v2beta1/runs/{rid}"),
        format!("/apis/v2beta1/experiments/{eid}"),
        format!("/apis/v2beta1/recurringruns/{rrid}"),
        format!("/apis/v2beta1/pipelines/{pid}"),
        format!("/oxflow/v1/runs/{rid}"),
    ] {
        let (s, body) = call(&state, owner(), Method::GET, &uri, None).await;
        assert_eq!(s, StatusCode::OK, "{uri}: {body}");
    }
    // Alice works in her own namespace, and lists across namespaces show
    // her only what is hers.
    let (s, body) = call(
        &state,
        team_a(),
        Method::POST,
        "/apis/v2beta1/experiments",
        Some(json!({"display_name": "mine", "namespace": "team-a"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = call(&state, team_a(), Method::GET, "/oxflow/v1/namespaces", None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let names: Vec<&str> = body["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert_eq!(names, vec!["team-a"], "{body}");
}
