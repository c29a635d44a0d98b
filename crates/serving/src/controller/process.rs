//! Components that are commands: custom predictors, transformers and
//! explainers. Each runs as a workload of the runtime, on a port Oxflow
//! chooses, supervised (restarted with backoff after it exits, as a
//! Deployment's pod would be) and reached through a small HTTP proxy.
//!
//! The port is given to the command the way Knative and KServe give it:
//! `PORT` in the environment and `$(PORT)` in `command`/`args` (Kubernetes
//! expands `$(VAR)` from the container's environment), and, for KServe
//! model servers, `--http_port` (plus `--grpc_port`), added unless the
//! arguments already name the port. A command that serves its own way
//! reads `$(PORT)` and is passed nothing else.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderName, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use oxflow_core::Workload;
use oxflow_runtime::Runtime;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Failure, Phase};
use crate::spec::{ContainerSpec, EnvValue, ProbeAction};

/// How long a command may take to start answering before it counts as failed.
const STARTUP_DEADLINE: Duration = Duration::from_secs(300);
/// Largest body the proxy carries.
const MAX_PROXY_BYTES: usize = 64 << 20;

/// What to run.
#[derive(Clone)]
pub(super) struct CommandSpec {
    /// The workload's name (logs, process titles).
    pub name: String,
    pub container: ContainerSpec,
    /// Flags KServe's controller adds (`--model_name`, `--predictor_host`),
    /// each added only when the arguments lack it.
    pub kserve_flags: Vec<(String, String)>,
    /// Add `--http_port`/`--grpc_port` (KServe model servers).
    pub port_flags: bool,
    pub log_path: PathBuf,
    pub working_dir: PathBuf,
    /// The interpreter that replaces a bare `python`/`python3` command.
    pub python: PathBuf,
    /// Where its copies show as Pods (`oxflow up`); none for `oxflow serve`.
    pub pods: Option<super::pods::PodTemplate>,
}

/// A running, supervised command; stopping it (drop) kills it.
pub(super) struct Process {
    pub port: u16,
    cancel: CancellationToken,
}

impl Drop for Process {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A free loopback port, chosen by the kernel.
fn free_port() -> Result<u16, Failure> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Failure::new("RuntimeUnhealthy", format!("no free local port: {e}")))
}

/// Expands `$(NAME)` from `env` as Kubernetes does (`$$(` stays literal;
/// unknown names are left as written).
fn expand(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("$(") {
        if i > 0 && rest[..i].ends_with('$') {
            out.push_str(&rest[..i - 1]);
            out.push_str("$(");
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find(')') {
            Some(j) if env.contains_key(&after[..j]) => {
                out.push_str(&env[&after[..j]]);
                rest = &after[j + 1..];
            }
            _ => {
                out.push_str("$(");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The workload for `spec` on `port`.
fn workload(spec: &CommandSpec, port: u16, grpc_port: u16) -> Result<Workload, Failure> {
    let c = &spec.container;
    let mut env = BTreeMap::new();
    for e in &c.env {
        match &e.value {
            EnvValue::Literal(v) => {
                let v = expand(v, &env);
                env.insert(e.name.clone(), v);
            }
            EnvValue::From(_) => {
                return Err(Failure::new(
                    "InvalidPredictorSpec",
                    format!(
                        "env {}: valueFrom is not supported locally; give a value",
                        e.name
                    ),
                ));
            }
        }
    }
    env.insert("PORT".into(), port.to_string());
    let mut words: Vec<String> = c
        .command
        .iter()
        .chain(c.args.iter())
        .map(|w| expand(w, &env))
        .collect();
    if words.is_empty() {
        return Err(Failure::new(
            "InvalidPredictorSpec",
            format!(
                "containers[{}].command: required locally (an image's entry point cannot run on this machine); give the command that serves",
                spec.name
            ),
        ));
    }
    let names_port = c
        .command
        .iter()
        .chain(c.args.iter())
        .any(|w| w.contains("$(PORT)"));
    for (flag, value) in &spec.kserve_flags {
        if c.arg_value(flag).is_none() {
            words.push(flag.clone());
            words.push(value.clone());
        }
    }
    if spec.port_flags && !names_port && c.arg_value("--http_port").is_none() {
        words.extend(["--http_port".into(), port.to_string()]);
        if c.arg_value("--grpc_port").is_none() {
            words.extend(["--grpc_port".into(), grpc_port.to_string()]);
        }
    }
    let program = match words[0].as_str() {
        "python" | "python3" => spec.python.display().to_string(),
        other => other.to_owned(),
    };
    Ok(Workload {
        name: spec.name.clone(),
        program,
        args: words[1..].to_vec(),
        env,
        working_dir: Some(
            c.working_dir
                .as_ref()
                .map_or_else(|| spec.working_dir.clone(), PathBuf::from),
        ),
        log_path: spec.log_path.clone(),
        image: c.image.clone(),
        ..Default::default()
    })
}

/// Starts `spec` under `runtime`; `phase` follows it (Loading until it
/// answers, Loaded, Failed while it restarts) and `changed` is called on
/// every change.
pub(super) fn start(
    runtime: Arc<dyn Runtime>,
    spec: CommandSpec,
    phase: Arc<RwLock<Phase>>,
    changed: Arc<dyn Fn() + Send + Sync>,
) -> Result<Process, Failure> {
    let port = free_port()?;
    let grpc_port = free_port()?;
    let workload = workload(&spec, port, grpc_port)?;
    std::fs::create_dir_all(&spec.working_dir).map_err(|e| {
        Failure::new(
            "RuntimeUnhealthy",
            format!("creating {}: {e}", spec.working_dir.display()),
        )
    })?;
    let probe = Probe::for_container(&spec.container, port);
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    let set = move |p: Phase| {
        *phase.write().unwrap_or_else(|e| e.into_inner()) = p;
        changed();
    };
    let copy = spec.name.clone();
    let pods = spec.pods.clone();
    tokio::spawn(async move {
        let mut pod = None;
        supervise(
            runtime, workload, probe, port, token, set, &copy, pods, &mut pod,
        )
        .await;
        // The copy is gone: so is its pod.
        if let Some(p) = pod {
            p.remove().await;
        }
    });
    Ok(Process { port, cancel })
}

/// Runs a copy's process until `token` is cancelled: started again (after
/// a growing delay) whenever it exits, at once when its pod was deleted.
#[allow(clippy::too_many_arguments)]
async fn supervise(
    runtime: Arc<dyn Runtime>,
    workload: Workload,
    probe: Probe,
    port: u16,
    token: CancellationToken,
    set: impl Fn(Phase),
    copy: &str,
    pods: Option<super::pods::PodTemplate>,
    pod: &mut Option<super::pods::CopyPod>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let run_token = token.child_token();
        // The same pod across restarts; a new one once it was deleted.
        if let Some(template) = &pods {
            match pod {
                Some(p) if !p.deleted().is_cancelled() => p.starting(true).await,
                _ => {
                    let mut p = template.create(copy).await;
                    p.starting(false).await;
                    *pod = Some(p);
                }
            }
        }
        let deleted = pod.as_ref().map(super::pods::CopyPod::deleted);
        if let Some(deleted) = deleted.clone() {
            let kill = run_token.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = deleted.cancelled() => kill.cancel(),
                    () = kill.cancelled() => {}
                }
            });
        }
        let rt = runtime.clone();
        let w = workload.clone();
        let run_kill = run_token.clone();
        let mut run = tokio::spawn(async move { rt.run(&w, run_kill).await });
        let started = Instant::now();
        // Wait until it answers, exits or takes too long.
        let ready = loop {
            if token.is_cancelled() {
                run_token.cancel();
                let _ = run.await;
                return;
            }
            if run.is_finished() || run_token.is_cancelled() {
                break false;
            }
            if probe.check().await {
                break true;
            }
            if started.elapsed() > STARTUP_DEADLINE {
                break false;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = token.cancelled() => {}
                _ = run_token.cancelled() => {}
            }
        };
        if ready {
            set(Phase::Loaded);
            backoff = Duration::from_secs(1);
            if let Some(p) = pod.as_mut() {
                p.ready().await;
            }
        }
        let outcome = tokio::select! {
            r = &mut run => r,
            _ = token.cancelled() => {
                let _ = run.await;
                return;
            }
        };
        if token.is_cancelled() {
            return;
        }
        let exit_code = match &outcome {
            Ok(Ok(o)) => o
                .exit_code
                .or_else(|| o.signal.map(|s| 128 + s))
                .unwrap_or(0),
            _ => 1,
        };
        if deleted
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
        {
            // Its pod was deleted: a new copy under a new pod, at once.
            *pod = None;
            set(Phase::Loading);
            continue;
        }
        if let Some(p) = pod.as_mut() {
            p.exited(exit_code).await;
        }
        let how = match outcome {
            Ok(Ok(o)) => match (o.exit_code, o.signal) {
                (Some(c), _) => format!("exited with code {c}"),
                (_, Some(s)) => format!("was killed by signal {s}"),
                _ => "stopped".into(),
            },
            Ok(Err(e)) => format!("could not run: {e}"),
            Err(e) => format!("was lost: {e}"),
        };
        let how = if !ready && started.elapsed() > STARTUP_DEADLINE {
            format!(
                "did not answer on port {port} within {} s",
                STARTUP_DEADLINE.as_secs()
            )
        } else {
            how
        };
        let tail = log_tail(&workload.log_path);
        set(Phase::Failed(Failure::new(
            "ModelLoadFailed",
            format!(
                "{} {how}; restarting in {} s (log {}){tail}",
                workload.name,
                backoff.as_secs(),
                workload.log_path.display()
            ),
        )));
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = token.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// The last lines of a log, for failure messages.
fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {}", tail.join(" | "))
    }
}

/// How readiness is checked: the container's readiness probe when it has
/// an HTTP or TCP one, else "answers HTTP on its port".
enum Probe {
    Http {
        port: u16,
        path: String,
        any_status: bool,
    },
    Tcp {
        port: u16,
    },
}

impl Probe {
    fn for_container(c: &ContainerSpec, port: u16) -> Probe {
        match c.readiness_probe.as_ref().map(|p| &p.action) {
            Some(ProbeAction::HttpGet(h)) => Probe::Http {
                port,
                path: h.path.clone(),
                any_status: false,
            },
            Some(ProbeAction::TcpSocket { .. }) => Probe::Tcp { port },
            _ => Probe::Http {
                port,
                path: "/".into(),
                any_status: true,
            },
        }
    }

    async fn check(&self) -> bool {
        match self {
            Probe::Tcp { port } => tokio::net::TcpStream::connect(("127.0.0.1", *port))
                .await
                .is_ok(),
            Probe::Http {
                port,
                path,
                any_status,
            } => {
                let Ok(client) = client() else {
                    return false;
                };
                match client
                    .get(format!("http://127.0.0.1:{port}{path}"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                {
                    Ok(r) => *any_status || r.status().is_success() || r.status().is_redirection(),
                    Err(_) => false,
                }
            }
        }
    }
}

/// The shared HTTP client of probes and proxies.
fn client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    if let Some(c) = CLIENT.get() {
        return Ok(c);
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = reqwest::Client::builder()
        .no_proxy()
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot set up an HTTP client: {e}"))?;
    Ok(CLIENT.get_or_init(|| c))
}

/// The copies of one command (`minReplicas` of them, more while the
/// autoscaler asks for more): started, stopped, and chosen per request.
pub(super) struct Replicas {
    runtime: Arc<dyn Runtime>,
    /// The first copy's spec; the others are numbered after it.
    template: CommandSpec,
    list: RwLock<Vec<Arc<Replica>>>,
    next: AtomicUsize,
    /// What the autoscaler last asked for.
    wanted: AtomicUsize,
    /// The revision's phase, derived from its copies'.
    phase: Arc<RwLock<Phase>>,
    /// Whether every copy was once ready at the same time: a revision
    /// first becomes ready when all its copies are (a Deployment's
    /// rollout); after that one ready copy keeps it serving.
    rolled_out: AtomicBool,
    /// Called after the revision's phase may have changed.
    on_change: Arc<dyn Fn() + Send + Sync>,
    /// Called with the new number of copies.
    on_resize: Box<dyn Fn(usize) + Send + Sync>,
}

/// One running copy.
struct Replica {
    index: usize,
    port: u16,
    phase: Arc<RwLock<Phase>>,
    in_flight: AtomicUsize,
    _process: Process,
}

/// How long a copy being scaled down may finish its requests.
const DRAIN_DEADLINE: Duration = Duration::from_secs(60);

impl Replicas {
    /// Starts `count` copies of `template`; `phase` follows them.
    pub(super) fn start(
        runtime: Arc<dyn Runtime>,
        template: CommandSpec,
        count: usize,
        phase: Arc<RwLock<Phase>>,
        on_change: Arc<dyn Fn() + Send + Sync>,
        on_resize: Box<dyn Fn(usize) + Send + Sync>,
    ) -> Result<Arc<Replicas>, Failure> {
        let replicas = Arc::new(Replicas {
            runtime,
            template,
            list: RwLock::new(Vec::new()),
            next: AtomicUsize::new(0),
            wanted: AtomicUsize::new(count),
            phase,
            rolled_out: AtomicBool::new(false),
            on_change,
            on_resize,
        });
        replicas.grow(count)?;
        Ok(replicas)
    }

    /// The name of copy `index`: the revision's for the first, numbered
    /// for the others (their logs sit next to the first's).
    fn spec(&self, index: usize) -> CommandSpec {
        let mut spec = self.template.clone();
        if index > 0 {
            spec.name = format!("{}-{index}", self.template.name);
            spec.log_path = self
                .template
                .log_path
                .with_file_name(format!("{}.log", spec.name));
        }
        spec
    }

    /// Starts copies until there are `count`.
    fn grow(self: &Arc<Self>, count: usize) -> Result<(), Failure> {
        let weak = Arc::downgrade(self);
        let changed: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            if let Some(r) = weak.upgrade() {
                r.recompute();
            }
        });
        {
            let mut list = self.list.write().unwrap_or_else(|e| e.into_inner());
            while list.len() < count {
                let index = (0..)
                    .find(|i| !list.iter().any(|r| r.index == *i))
                    .unwrap_or(0);
                let phase = Arc::new(RwLock::new(Phase::Loading));
                let process = start(
                    self.runtime.clone(),
                    self.spec(index),
                    phase.clone(),
                    changed.clone(),
                )?;
                list.push(Arc::new(Replica {
                    index,
                    port: process.port,
                    phase,
                    in_flight: AtomicUsize::new(0),
                    _process: process,
                }));
            }
        }
        self.recompute();
        Ok(())
    }

    /// Stops copies until there are `count`: those not ready first, then
    /// the newest. A stopped copy takes no new requests and is killed once
    /// its requests in flight are answered.
    fn shrink(&self, count: usize) {
        let gone: Vec<Arc<Replica>> = {
            let mut list = self.list.write().unwrap_or_else(|e| e.into_inner());
            let mut order: Vec<usize> = (0..list.len()).collect();
            order.sort_by_key(|&i| (list[i].is_ready(), std::cmp::Reverse(list[i].index)));
            let mut victims: Vec<usize> = order
                .into_iter()
                .take(list.len().saturating_sub(count))
                .collect();
            victims.sort_unstable_by(|a, b| b.cmp(a));
            victims.into_iter().map(|i| list.remove(i)).collect()
        };
        for replica in gone {
            tokio::spawn(async move {
                let deadline = Instant::now() + DRAIN_DEADLINE;
                while replica.in_flight.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                // Dropping the last reference stops the process.
            });
        }
        self.recompute();
    }

    fn recompute(&self) {
        let each: Vec<Phase> = self
            .list
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|r| r.phase())
            .collect();
        if !each.is_empty() && each.iter().all(|p| *p == Phase::Loaded) {
            self.rolled_out.store(true, Ordering::Release);
        }
        let serving = if self.rolled_out.load(Ordering::Acquire) {
            each.contains(&Phase::Loaded)
        } else {
            !each.is_empty() && each.iter().all(|p| *p == Phase::Loaded)
        };
        let overall = if serving {
            Phase::Loaded
        } else if each.contains(&Phase::Loading) {
            Phase::Loading
        } else {
            each.into_iter()
                .find(|p| matches!(p, Phase::Failed(_)))
                .unwrap_or(Phase::Loading)
        };
        *self.phase.write().unwrap_or_else(|e| e.into_inner()) = overall;
        (self.on_change)();
    }

    /// The copies running now and how many of them are ready.
    pub(super) fn counts(&self) -> (usize, usize) {
        let list = self.list.read().unwrap_or_else(|e| e.into_inner());
        (list.len(), list.iter().filter(|r| r.is_ready()).count())
    }

    /// What the autoscaler last asked for.
    pub(super) fn wanted(&self) -> usize {
        self.wanted.load(Ordering::Acquire)
    }

    /// The copy that takes the next request: among the ready ones, the
    /// one with the fewest requests in flight, in turn when several tie
    /// (the first copy when none is ready, so that the error says why).
    fn pick(&self) -> Option<Arc<Replica>> {
        let list = self.list.read().unwrap_or_else(|e| e.into_inner());
        let n = list.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        (0..n)
            .map(|i| &list[(start + i) % n])
            .filter(|r| r.is_ready())
            .min_by_key(|r| r.in_flight.load(Ordering::Acquire))
            .or_else(|| list.first())
            .cloned()
    }
}

impl super::autoscale::Scalable for Replicas {
    fn counts(&self) -> (usize, usize) {
        Replicas::counts(self)
    }

    fn wanted(&self) -> usize {
        Replicas::wanted(self)
    }

    fn scale_to(self: Arc<Self>, count: usize) {
        self.wanted.store(count, Ordering::Release);
        let (now, _) = self.counts();
        if count > now {
            if let Err(f) = self.grow(count) {
                tracing::warn!(command = %self.template.name, reason = f.reason, message = %f.message, "Could not scale up.");
            }
        } else if count < now {
            self.shrink(count);
        }
        (self.on_resize)(self.counts().0);
    }
}

impl Replica {
    fn phase(&self) -> Phase {
        self.phase.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn is_ready(&self) -> bool {
        self.phase() == Phase::Loaded
    }
}

/// A router that forwards every request to one of the copies.
pub(super) fn proxy(replicas: Arc<Replicas>) -> axum::Router {
    axum::Router::new().fallback(move |request: Request<Body>| {
        let replica = replicas.pick();
        async move {
            let Some(replica) = replica else {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no copy of the command is running".into(),
                );
            };
            replica.in_flight.fetch_add(1, Ordering::AcqRel);
            let response = forward(replica.port, request).await;
            replica.in_flight.fetch_sub(1, Ordering::AcqRel);
            response
        }
    })
}

async fn forward(port: u16, request: Request<Body>) -> Response {
    let client = match client() {
        Ok(c) => c,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_PROXY_BYTES).await {
        Ok(b) => b,
        Err(e) => return error(StatusCode::PAYLOAD_TOO_LARGE, format!("request body: {e}")),
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = client.request(
        parts.method.clone(),
        format!("http://127.0.0.1:{port}{path}"),
    );
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) && name != "host" && name != "content-length" {
            req = req.header(name, value);
        }
    }
    match req.body(body).send().await {
        Ok(r) => {
            let status = r.status();
            let headers = r.headers().clone();
            let bytes = match r.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    return error(
                        StatusCode::BAD_GATEWAY,
                        format!("reading the component's answer: {e}"),
                    );
                }
            };
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            for (name, value) in &headers {
                if !hop_by_hop(name) && name != "content-length" {
                    response.headers_mut().append(name, value.clone());
                }
            }
            response
        }
        Err(e) => error(
            StatusCode::BAD_GATEWAY,
            format!("the component on port {port} did not answer: {e}"),
        ),
    }
}

fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "trailer"
    )
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_expand_as_kubernetes_does() {
        let env: BTreeMap<String, String> = [("PORT".into(), "9000".into())].into();
        assert_eq!(expand("--port=$(PORT)", &env), "--port=9000");
        assert_eq!(expand("$(PORT)$(PORT)", &env), "90009000");
        assert_eq!(expand("$$(PORT)", &env), "$(PORT)");
        assert_eq!(expand("$(OTHER) $(", &env), "$(OTHER) $(");
    }
}
