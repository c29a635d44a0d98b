//! The CLI against a running server (`oxflow --server URL …`): runs submitted
//! through the HTTP API, followed to the end, listed, inspected, their logs read.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use common::{Env, path_with_python, pipeline, task};
use serde_json::Value;

/// An `oxflow up` on a free loopback port with its own data directory.
struct Server {
    child: Child,
    url: String,
    _home: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        let home = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_oxflow"))
            .args(["up", "--addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"])
            .env("OXFLOW_HOME", home.path())
            .env("PATH", path_with_python())
            .env_remove("OXFLOW_DATABASE")
            .env_remove("OXFLOW_NAMESPACE")
            .env_remove("OXFLOW_SERVER")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting oxflow up");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = String::new();
        let url = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                panic!("oxflow up exited before serving:\n{seen}");
            };
            seen.push_str(&line);
            seen.push('\n');
            if let Some(rest) = line.split("serving on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        // Keep draining the server's stderr so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let token = std::fs::read_to_string(home.path().join("token"))
            .expect("oxflow up writes its token")
            .trim()
            .to_owned();
        TOKENS.lock().unwrap().insert(url.clone(), token);
        Self {
            child,
            url,
            _home: home,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The token of each server started here, by URL.
static TOKENS: std::sync::Mutex<std::collections::BTreeMap<String, String>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// `oxflow --server URL ARGS…` from an environment with no local data,
/// with the server's token in `OXFLOW_TOKEN` (as a user on another machine
/// passes it).
fn remote(env: &Env, url: &str, args: &[&str]) -> Output {
    let token = TOKENS.lock().unwrap().get(url).cloned();
    remote_with_token(env, url, token.as_deref(), args)
}

fn remote_with_token(env: &Env, url: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = env.cmd();
    cmd.env_remove("OXFLOW_TOKEN");
    if let Some(t) = token {
        cmd.env("OXFLOW_TOKEN", t);
    }
    cmd.arg("--server")
        .arg(url)
        .args(args)
        .output()
        .expect("running oxflow")
}

#[test]
fn the_server_refuses_a_client_without_its_token() {
    let server = Server::start();
    let env = Env::new();
    for token in [None, Some("oxf_not_the_token_of_this_server_000000000")] {
        let out = remote_with_token(&env, &server.url, token, &["runs", "list"]);
        assert!(!out.status.success(), "{token:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("401") && stderr.contains("oxflow token"),
            "{token:?}: {stderr}"
        );
    }
    let out = remote(&env, &server.url, &["runs", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}); exit {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn runs_list_get_and_logs_through_a_server() {
    let server = Server::start();
    let env = Env::new();
    let params = pipeline("params");
    let out = remote(
        &env,
        &server.url,
        &["run", params.to_str().unwrap(), "-p", "a=10", "-o", "json"],
    );
    let run = json_of(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(run["state"], "SUCCEEDED");
    assert_eq!(
        run["outputs"]["Output"],
        "DEMO:TRUE:6:[('K', 1)]:10.5 n=3 mean=2.0 labels=['x1', 'x2', 'x3']"
    );
    assert_eq!(task(&run, "add")["outputs"]["parameters"]["Output"], 10.5);
    // Progress lines as in embedded mode.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("submitted"), "{stderr}");
    assert!(stderr.contains("done  add"), "{stderr}");
    let id = run["id"].as_str().unwrap();
    // Nothing was written locally.
    assert!(!env.home.path().join("oxflow.db").exists());

    let out = remote(&env, &server.url, &["runs", "list", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let list = json_of(&out);
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("run {id} not listed: {list}"));
    assert_eq!(listed["state"], "SUCCEEDED");
    assert_eq!(listed["pipeline"], run["pipeline"]);
    let out = remote(&env, &server.url, &["runs", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(id));

    // `runs get` by id and by prefix, JSON and text.
    let out = remote(&env, &server.url, &["runs", "get", id, "-o", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let got = json_of(&out);
    assert_eq!(got["outputs"], run["outputs"]);
    assert_eq!(got["tasks"].as_array().unwrap().len(), 4);
    let out = remote(&env, &server.url, &["runs", "get", &id[..8]]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SUCCEEDED") && text.contains("add"), "{text}");

    // Logs by path and by name.
    let out = remote(&env, &server.url, &["logs", id, "add"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.stdout.is_empty());
    let out = remote(&env, &server.url, &["logs", id, "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no task \"nope\""));
}

#[test]
fn failures_and_errors_through_a_server() {
    let server = Server::start();
    let env = Env::new();

    // A failing run exits 1 with the run as JSON.
    let p = pipeline("exit_handler");
    let out = remote(
        &env,
        &server.url,
        &["run", p.to_str().unwrap(), "-p", "fail=true", "-o", "json"],
    );
    let run = json_of(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(run["state"], "FAILED");
    assert_eq!(task(&run, "exit-handler-1/work")["state"], "FAILED");
    assert_eq!(task(&run, "notify")["state"], "SUCCEEDED");
    let out = remote(
        &env,
        &server.url,
        &["logs", run["id"].as_str().unwrap(), "exit-handler-1/work"],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Traceback"));

    // A bad parameter is refused before anything runs.
    let p = pipeline("params");
    let out = remote(
        &env,
        &server.url,
        &["run", p.to_str().unwrap(), "-p", "a=abc"],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("root.inputDefinitions.parameters.a"),
        "{stderr}"
    );

    // The server's own errors are shown with the status.
    let out = remote(&env, &server.url, &["runs", "get", "no-such-run"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("404"), "{stderr}");

    // Unsupported options and commands say so.
    let out = remote(
        &env,
        &server.url,
        &["run", p.to_str().unwrap(), "--no-cache"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not supported with --server"));
    // Secrets are `v1` Secrets on the server: the alias writes and lists
    // them, and they read back as objects with base64 values.
    let out = remote(
        &env,
        &server.url,
        &["secrets", "create", "db", "--from-literal", "password=pw"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = remote(&env, &server.url, &["secrets", "list"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "db\n");
    let out = remote(&env, &server.url, &["get", "secret", "db", "-o", "json"]);
    let secret = json_of(&out);
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(secret["data"]["password"], "cHc=");
    assert!(secret.get("stringData").is_none(), "{secret}");
    let out = remote(&env, &server.url, &["secrets", "delete", "db"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = remote(&env, &server.url, &["secrets", "delete", "db"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no secret \"db\""));

    let out = remote(&env, &server.url, &["experiments", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not supported with --server"));
}

#[test]
fn an_unreachable_server_is_reported_clearly() {
    // A port that was free a moment ago.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = Env::new();
    let url = format!("http://127.0.0.1:{port}");
    let out = remote(&env, &url, &["runs", "list"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("no Oxflow server at {url}")) && stderr.contains("oxflow up"),
        "{stderr}"
    );
    let out = remote(&env, "https://127.0.0.1:1", &["runs", "list"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("https is not supported yet"));
    // Through the environment variable too.
    let out = env
        .cmd()
        .env("OXFLOW_SERVER", &url)
        .args(["runs", "list"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Oxflow server"));
}
