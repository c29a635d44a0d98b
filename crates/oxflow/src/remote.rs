//! The CLI against a running `oxflow up` (`--server URL`): the same commands
//! and the same output as embedded mode, through the server's HTTP API.
//!
//! The client is a small HTTP/1.1 one over a plain TCP connection (one
//! request per connection): Oxflow servers are reached on loopback or a
//! trusted network, and this keeps the binary free of a second HTTP stack.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use oxflow_core::{Namespace, RunState, TaskState, Timestamp};
use oxflow_pipelines::{Pipeline, TaskEvent};
use oxflow_store::{RunRecord, TaskRecord};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cli::{Cli, Command, RunArgs, RunsCommand};
use crate::output;

/// How often a followed run is polled.
const POLL: Duration = Duration::from_millis(200);
/// Longest one request may take (logs are read whole).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the server is.
#[derive(Debug, Clone)]
pub struct Server {
    /// The URL as the user gave it (for messages).
    url: String,
    /// `host:port` to connect to, also sent as `Host`.
    authority: String,
    /// Path prefix without a trailing slash (`""` normally).
    prefix: String,
    /// Sent as `Authorization: Bearer` (never printed).
    token: Option<String>,
}

/// A response: status code, reason phrase and the body.
struct Response {
    status: u16,
    reason: String,
    body: Vec<u8>,
}

impl Server {
    /// Parses `http://HOST[:PORT][/PREFIX]` (a bare `HOST:PORT` means http).
    pub fn parse(url: &str) -> Result<Self> {
        let trimmed = url.trim();
        let rest = if let Some(r) = trimmed.strip_prefix("http://") {
            r
        } else if trimmed.starts_with("https://") {
            bail!(
                "--server {url}: https is not supported yet; use http:// (loopback or a trusted network)"
            );
        } else if trimmed.contains("://") {
            bail!("--server {url}: expected an http:// URL");
        } else {
            trimmed
        };
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            bail!("--server {url}: no host in the URL");
        }
        let authority = if authority.rsplit_once(':').is_some_and(|(_, p)| {
            !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) && !p.contains(']')
        }) {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            url: trimmed.trim_end_matches('/').to_owned(),
            authority,
            prefix: prefix.to_owned(),
            token: None,
        })
    }

    /// The same server, called with `token`.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Response> {
        let fut = self.send_inner(method, path, body);
        match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
            Ok(r) => r,
            Err(_) => bail!(
                "{method} {}{path}: no answer within {}s",
                self.url,
                REQUEST_TIMEOUT.as_secs()
            ),
        }
    }

    async fn send_inner(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Response> {
        let mut stream = self.request(method, path, body).await?;
        let ctx = || format!("talking to the Oxflow server at {}", self.url);
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.with_context(ctx)?;
        parse_response(&raw).with_context(|| format!("reading the answer from {}", self.url))
    }

    /// A GET whose body is copied to `out` as it arrives (a followed log:
    /// no time limit, the server ends it); an HTTP error becomes the
    /// server's message.
    pub(crate) async fn stream_to(
        &self,
        path: &str,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<()> {
        let mut stream = self.request("GET", path, None).await?;
        let ctx = || format!("reading the answer from {}", self.url);
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let n = stream.read(&mut chunk).await.with_context(ctx)?;
            if n == 0 {
                bail!(
                    "{}: the connection closed before a complete HTTP response",
                    self.url
                );
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let ok = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .is_some_and(|s| (200..300).contains(&s));
        if !ok {
            stream.read_to_end(&mut buf).await.with_context(ctx)?;
            Self::check(parse_response(&buf).with_context(ctx)?)?;
            bail!("{}: unexpected answer", self.url);
        }
        let chunked = head
            .lines()
            .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
        let mut body = buf.split_off(end + 4);
        loop {
            if chunked {
                // Whole chunks out of what has arrived; a zero-size one ends it.
                while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
                    let size_text = std::str::from_utf8(&body[..eol]).with_context(ctx)?;
                    let size =
                        usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                            .with_context(|| format!("bad chunk size {size_text:?}"))?;
                    if size == 0 {
                        return Ok(());
                    }
                    if body.len() < eol + 2 + size + 2 {
                        break;
                    }
                    out.write_all(&body[eol + 2..eol + 2 + size])?;
                    out.flush()?;
                    body.drain(..eol + 2 + size + 2);
                }
            } else {
                out.write_all(&body)?;
                out.flush()?;
                body.clear();
            }
            let n = stream.read(&mut chunk).await.with_context(ctx)?;
            if n == 0 {
                if chunked {
                    bail!("{}: the log's stream ended early", self.url);
                }
                return Ok(());
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }

    /// Connects and sends a request; the stream is left to read the answer.
    async fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<TcpStream> {
        let mut stream = match TcpStream::connect(&self.authority).await {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
                ) =>
            {
                bail!(
                    "no Oxflow server at {} (start one with `oxflow up`)",
                    self.url
                )
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("connecting to the Oxflow server at {}", self.url));
            }
        };
        let payload = match body {
            Some(v) => serde_json::to_vec(v)?,
            None => Vec::new(),
        };
        let mut req = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: oxflow/{}\r\nAccept: */*\r\nConnection: close\r\n",
            self.prefix,
            self.authority,
            env!("CARGO_PKG_VERSION")
        );
        if body.is_some() {
            req.push_str("Content-Type: application/json\r\n");
        }
        if let Some(token) = &self.token {
            req.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n", payload.len()));
        let ctx = || format!("talking to the Oxflow server at {}", self.url);
        stream.write_all(req.as_bytes()).await.with_context(ctx)?;
        stream.write_all(&payload).await.with_context(ctx)?;
        stream.flush().await.with_context(ctx)?;
        Ok(stream)
    }

    /// A request whose answer is JSON; HTTP errors become the server's message.
    pub(crate) async fn json(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        let r = self.ok(method, path, body).await?;
        serde_json::from_slice(&r.body)
            .with_context(|| format!("{method} {}{path}: the answer is not JSON", self.url))
    }

    /// [`Self::json`], with `None` for a 404 (an object that is not there).
    pub(crate) async fn json_opt(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>> {
        let r = self.send(method, path, body).await?;
        if r.status == 404 {
            return Ok(None);
        }
        let r = Self::check(r)?;
        serde_json::from_slice(&r.body)
            .map(Some)
            .with_context(|| format!("{method} {}{path}: the answer is not JSON", self.url))
    }

    /// Every item of a Kubernetes-style list at `path`, following its
    /// pages (`metadata.continue`).
    pub(crate) async fn list_items(&self, path: &str) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page_path = match &token {
                Some(t) => format!("{path}?continue={}", encode_query(t)),
                None => path.to_owned(),
            };
            let page = self.json("GET", &page_path, None).await?;
            items.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["metadata"]["continue"].as_str() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(items),
            }
        }
    }

    /// A request whose answer is text (logs).
    pub(crate) async fn text(&self, method: &str, path: &str) -> Result<String> {
        let r = self.ok(method, path, None).await?;
        Ok(String::from_utf8_lossy(&r.body).into_owned())
    }

    /// A request that must succeed (2xx).
    async fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Response> {
        Self::check(self.send(method, path, body).await?)
    }

    /// The answer if it is a success (2xx), else the server's message as
    /// the error.
    fn check(r: Response) -> Result<Response> {
        if (200..300).contains(&r.status) {
            return Ok(r);
        }
        let message = serde_json::from_slice::<Value>(&r.body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&r.body).trim().to_owned());
        bail!("the server answered {} {}: {message}", r.status, r.reason)
    }
}

fn parse_response(raw: &[u8]) -> Result<Response> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("the connection closed before a complete HTTP response")?;
    let head = std::str::from_utf8(&raw[..end]).context("response headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/") {
        bail!("not an HTTP response: {status_line:?}");
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let reason = parts.next().unwrap_or_default().to_owned();
    let mut chunked = false;
    let mut length = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim(), v.trim());
            if k.eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
            {
                chunked = true;
            } else if k.eq_ignore_ascii_case("content-length") {
                length = v.parse::<usize>().ok();
            }
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        if rest.len() < n {
            bail!(
                "the response body ended early ({} of {n} bytes)",
                rest.len()
            );
        }
        rest[..n].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        reason,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("a chunked response ended early")?;
        let size_text = std::str::from_utf8(&data[..eol])?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            bail!("a chunked response ended early");
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
}

/// Percent-encodes a path segment list (keeps `/`).
pub(crate) fn encode_path(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes a query value.
pub(crate) fn encode_query(s: &str) -> String {
    encode_path(s).replace('/', "%2F")
}

// ------------------------------------------------------------- conversions

fn ts_millis(v: &Value) -> Option<Timestamp> {
    v.as_i64().map(Timestamp)
}

/// A run from `/oxflow/v1/runs/{id}` (`run`) as the store's record.
fn run_from_v1(v: &Value) -> Result<RunRecord> {
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let state: RunState = serde_json::from_value(v.get("state").cloned().unwrap_or_default())
        .with_context(|| format!("unexpected run state {}", v["state"]))?;
    Ok(RunRecord {
        id: s("id"),
        namespace: Namespace::new(s("namespace")).unwrap_or_default(),
        display_name: s("display_name"),
        pipeline_name: s("pipeline_name"),
        parameters: v.get("parameters").cloned().unwrap_or(json!({})),
        options: v.get("options").cloned().unwrap_or(json!({})),
        state,
        error: v.get("error").and_then(Value::as_str).map(str::to_owned),
        outputs: v.get("outputs").cloned().unwrap_or(json!({})),
        created_at: ts_millis(&v["created_at"]).unwrap_or(Timestamp(0)),
        started_at: ts_millis(&v["started_at"]),
        finished_at: ts_millis(&v["finished_at"]),
        description: s("description"),
        experiment_id: v
            .get("experiment_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        ..Default::default()
    })
}

/// Drops the dashboard's `in_store` marks from `{"artifacts": {k: [..]}}`.
fn without_in_store(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(arts) = v.get_mut("artifacts").and_then(Value::as_object_mut) {
        for list in arts.values_mut() {
            for a in list.as_array_mut().into_iter().flatten() {
                if let Some(o) = a.as_object_mut() {
                    o.remove("in_store");
                }
            }
        }
    }
    v
}

/// A task from `/oxflow/v1/runs/{id}` (`tasks[]`) as the store's record.
fn task_from_v1(run_id: &str, v: &Value) -> Result<TaskRecord> {
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let state: TaskState = serde_json::from_value(v.get("state").cloned().unwrap_or_default())
        .with_context(|| format!("unexpected task state {}", v["state"]))?;
    Ok(TaskRecord {
        id: s("id"),
        run_id: run_id.to_owned(),
        path: s("path"),
        parent_path: s("parent_path"),
        name: s("name"),
        display_name: s("display_name"),
        kind: s("kind"),
        state,
        attempt: v.get("attempt").and_then(Value::as_i64).unwrap_or(1),
        cached: v.get("cached").and_then(Value::as_bool).unwrap_or(false),
        inputs: without_in_store(v.get("inputs").unwrap_or(&json!({}))),
        outputs: without_in_store(v.get("outputs").unwrap_or(&json!({}))),
        error: v.get("error").and_then(Value::as_str).map(str::to_owned),
        // The log lives on the server: `oxflow --server URL logs RUN TASK`.
        log_path: None,
        cache_key: None,
        created_at: ts_millis(&v["created_at"]).unwrap_or(Timestamp(0)),
        started_at: ts_millis(&v["started_at"]),
        finished_at: ts_millis(&v["finished_at"]),
    })
}

/// `GET /oxflow/v1/runs/{id}` (a unique id prefix works too): the run and its tasks.
async fn fetch_run(server: &Server, id: &str) -> Result<(RunRecord, Vec<TaskRecord>, Value)> {
    let v = server
        .json("GET", &format!("/oxflow/v1/runs/{}", encode_path(id)), None)
        .await?;
    let run = run_from_v1(&v["run"])?;
    let tasks = v["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| task_from_v1(&run.id, t))
        .collect::<Result<Vec<_>>>()?;
    Ok((run, tasks, v))
}

/// A run from the KFP list (`runs[]` of `GET /apis/v2beta1/runs`).
fn run_from_kfp(v: &Value) -> Result<RunRecord> {
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let time = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .and_then(Timestamp::parse_rfc3339)
            .filter(|t| t.millis() > 0)
    };
    let state: RunState = serde_json::from_value(v.get("state").cloned().unwrap_or_default())
        .with_context(|| format!("unexpected run state {}", v["state"]))?;
    let history = v["state_history"].as_array().cloned().unwrap_or_default();
    let started_at = history
        .iter()
        .find(|h| h["state"] == "RUNNING")
        .and_then(|h| h["update_time"].as_str())
        .and_then(Timestamp::parse_rfc3339);
    let spec = &v["pipeline_spec"];
    let spec = spec.get("pipeline_spec").unwrap_or(spec);
    Ok(RunRecord {
        id: s("run_id"),
        namespace: Namespace::new(s("namespace")).unwrap_or_default(),
        display_name: s("display_name"),
        pipeline_name: spec["pipelineInfo"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        parameters: v["runtime_config"]["parameters"].clone(),
        state,
        error: v["error"]["message"].as_str().map(str::to_owned),
        outputs: json!({}),
        created_at: time("created_at").unwrap_or(Timestamp(0)),
        started_at,
        finished_at: if state.is_terminal() {
            time("finished_at")
        } else {
            None
        },
        description: s("description"),
        ..Default::default()
    })
}

// ---------------------------------------------------------------- commands

/// Runs `cli`'s command against the server at `url`.
pub async fn main(cli: &Cli, url: &str) -> Result<ExitCode> {
    let server = Server::parse(url)?.with_token(crate::cli::client_token(cli)?);
    match &cli.command {
        Command::Run(args) => run(cli, &server, args).await,
        Command::Runs(RunsCommand::List {
            output,
            state,
            limit,
        }) => list(cli, &server, output, state.as_deref(), *limit).await,
        Command::Runs(RunsCommand::Get { run, output }) => {
            let (run, tasks, _) = fetch_run(&server, run).await?;
            print_run(&run, &tasks, output)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Runs(RunsCommand::Delete { run }) => {
            let (record, _, _) = fetch_run(&server, run).await?;
            if !record.state.is_terminal() && record.state != RunState::Pending {
                bail!(
                    "run {} is {}; wait for it to finish first",
                    record.id,
                    record.state
                );
            }
            server
                .ok(
                    "DELETE",
                    &format!("/apis/v2beta1/runs/{}", encode_path(&record.id)),
                    None,
                )
                .await?;
            println!("deleted run {}", record.id);
            Ok(ExitCode::SUCCESS)
        }
        Command::Logs(args) => match &args.task {
            Some(task) => logs(&server, &args.target, task).await,
            None => crate::get::pod_logs(cli, args).await,
        },
        // `cli::main` runs these without coming here; an error rather than a
        // panic if the two lists ever disagree.
        Command::Validate { .. }
        | Command::Serve(_)
        | Command::Kubeconfig
        | Command::Token
        | Command::Apply(_)
        | Command::Isvc(_)
        | Command::TrainedModel(_)
        | Command::Secrets(_)
        | Command::Get(_)
        | Command::Describe(_)
        | Command::Delete(_) => {
            bail!("internal error: this command runs locally and never through --server")
        }
        Command::Up(_) => {
            bail!("`oxflow up` starts a server; it does not take --server (unset OXFLOW_SERVER)")
        }
        Command::Runs(RunsCommand::Resume { .. })
        | Command::Tune { .. }
        | Command::Experiments(_) => bail!(
            "this command is not supported with --server yet; with --server, oxflow supports \
             `run`, `runs list`, `runs get`, `runs delete`, `logs` and `validate`"
        ),
    }
}

fn print_run(run: &RunRecord, tasks: &[TaskRecord], output: &str) -> Result<()> {
    if output == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&output::run_json(run, tasks))?
        );
    } else {
        let summaries: Vec<_> = tasks.iter().map(Into::into).collect();
        output::print_summary(run, &summaries);
    }
    Ok(())
}

async fn list(
    cli: &Cli,
    server: &Server,
    output: &str,
    state: Option<&str>,
    limit: i64,
) -> Result<ExitCode> {
    let mut query = format!(
        "/apis/v2beta1/runs?page_size={}&sort_by={}",
        limit.max(1),
        encode_query("created_at desc")
    );
    if cli.namespace != Namespace::DEFAULT {
        query.push_str(&format!("&namespace={}", encode_query(&cli.namespace)));
    }
    if let Some(s) = state {
        let s = s
            .to_ascii_uppercase()
            .parse::<RunState>()
            .map_err(|e| anyhow::anyhow!("--state: {e}"))?;
        let filter = json!({"predicates": [
            {"key": "state", "operation": "EQUALS", "string_value": s.as_str()}
        ]});
        query.push_str(&format!("&filter={}", encode_query(&filter.to_string())));
    }
    let v = server.json("GET", &query, None).await?;
    let runs = v["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(run_from_kfp)
        .collect::<Result<Vec<_>>>()?;
    if output == "json" {
        let v: Vec<Value> = runs.iter().map(|r| output::run_json(r, &[])).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        output::print_runs(&runs);
    }
    Ok(ExitCode::SUCCESS)
}

async fn logs(server: &Server, run: &str, task: &str) -> Result<ExitCode> {
    let (run, tasks, raw) = fetch_run(server, run).await?;
    let has_log = |path: &str| {
        raw["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["path"] == path && t["has_log"] == true)
    };
    let t = tasks
        .iter()
        .find(|t| t.path == task)
        .or_else(|| {
            let by_name: Vec<_> = tasks
                .iter()
                .filter(|t| t.name == task || t.display_name == task)
                .collect();
            (by_name.len() == 1).then(|| by_name[0])
        })
        .with_context(|| {
            let names: Vec<&str> = tasks
                .iter()
                .filter(|t| has_log(&t.path))
                .map(|t| t.path.as_str())
                .collect();
            format!(
                "run {} has no task {task:?} (tasks with logs: {})",
                run.id,
                names.join(", ")
            )
        })?;
    if !has_log(&t.path) {
        if matches!(t.kind.as_str(), "container" | "importer") {
            bail!("task {} has not written a log yet", t.path);
        }
        bail!("task {} is a {} and has no log", t.path, t.kind);
    }
    let r = server
        .ok(
            "GET",
            &format!(
                "/oxflow/v1/runs/{}/tasks/{}/log",
                encode_path(&run.id),
                encode_path(&t.path)
            ),
            None,
        )
        .await?;
    use std::io::Write;
    std::io::stdout().write_all(&r.body)?;
    Ok(ExitCode::SUCCESS)
}

fn kind_str(kind: &str) -> &'static str {
    match kind {
        "container" => "container",
        "importer" => "importer",
        "dag" => "dag",
        "loop" => "loop",
        "iteration" => "iteration",
        _ => "other",
    }
}

async fn run(cli: &Cli, server: &Server, args: &RunArgs) -> Result<ExitCode> {
    if args.no_cache {
        bail!("--no-cache is not supported with --server (the KFP run API has no such option)");
    }
    if args.python.is_some() || args.parallelism.is_some() {
        bail!(
            "--python and --parallelism are not supported with --server; give them to `oxflow up`"
        );
    }
    // Validate here first, so mistakes are reported without a round trip
    // (and the server checks again).
    let pipeline = Pipeline::load_file(&args.file)?;
    let params = crate::cli::parse_params(&args.params)?;
    pipeline.bind_parameters(&params)?;
    let display_name = args.name.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            pipeline.spec.pipeline_info.name,
            Timestamp::now()
                .to_rfc3339()
                .replace([':', 'T'], "-")
                .trim_end_matches('Z')
        )
    });
    let mut body = json!({
        "display_name": display_name,
        "pipeline_spec": pipeline.to_stored_json(),
        "runtime_config": {"parameters": params},
    });
    if cli.namespace != Namespace::DEFAULT {
        body["namespace"] = json!(cli.namespace);
    }
    drop(pipeline);
    let created = server
        .json("POST", "/apis/v2beta1/runs", Some(&body))
        .await?;
    let run_id = created["run_id"]
        .as_str()
        .context("the server's answer has no run_id")?
        .to_owned();
    eprintln!("run {run_id} ({display_name}) submitted to {}", server.url);

    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let progress = tokio::spawn(output::progress(rx));
    let ctrl_c = {
        let server = server.clone();
        let run_id = run_id.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("cancelling the run (Ctrl-C again to stop following it)...");
                let path = format!("/apis/v2beta1/runs/{}:terminate", encode_path(&run_id));
                if let Err(e) = server.ok("POST", &path, Some(&json!({}))).await {
                    eprintln!("error: cancelling run {run_id}: {e:#}");
                }
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        })
    };
    let result = follow(server, &run_id, tx).await;
    ctrl_c.abort();
    let _ = progress.await;
    let (run, tasks) = result?;
    print_run(&run, &tasks, &args.output)?;
    Ok(if run.state == RunState::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Polls the run until it ends, sending task changes to `tx`.
async fn follow(
    server: &Server,
    run_id: &str,
    tx: tokio::sync::mpsc::UnboundedSender<TaskEvent>,
) -> Result<(RunRecord, Vec<TaskRecord>)> {
    let mut seen: HashMap<String, (TaskState, bool, i64)> = HashMap::new();
    loop {
        let (run, tasks, _) = fetch_run(server, run_id)
            .await
            .with_context(|| format!("following run {run_id}"))?;
        // In the order they ended (then parents before children), as the
        // engine reports them.
        let ordered: BTreeMap<(i64, usize, &str), &TaskRecord> = tasks
            .iter()
            .map(|t| {
                let ended = t.finished_at.map_or(i64::MAX, Timestamp::millis);
                ((ended, t.path.matches('/').count(), t.path.as_str()), t)
            })
            .collect();
        for t in ordered.values() {
            let now = (t.state, t.cached, t.attempt);
            if seen.get(&t.path) != Some(&now) {
                seen.insert(t.path.clone(), now);
                let _ = tx.send(TaskEvent {
                    path: t.path.clone(),
                    display_name: t.display_name.clone(),
                    kind: kind_str(&t.kind),
                    state: t.state,
                    cached: t.cached,
                    attempt: t.attempt,
                });
            }
        }
        if run.state.is_terminal() {
            return Ok((run, tasks));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let s = Server::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(s.authority, "127.0.0.1:8080");
        assert_eq!(s.prefix, "");
        let s = Server::parse("localhost:9000/oxflow").unwrap();
        assert_eq!(s.authority, "localhost:9000");
        assert_eq!(s.prefix, "/oxflow");
        let s = Server::parse("http://example").unwrap();
        assert_eq!(s.authority, "example:80");
        let e = Server::parse("https://x").unwrap_err().to_string();
        assert!(e.contains("https is not supported yet"), "{e}");
    }

    #[test]
    fn decodes_responses() {
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"abcde");
        let r = parse_response(b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!(
            (r.status, r.reason.as_str(), &r.body[..]),
            (404, "Not Found", &b"{}"[..])
        );
    }
}
