//! The warm Python executor: one fork server per interpreter.
//!
//! A pipeline step is usually `<python> -m <module> …`; starting a fresh
//! interpreter and importing the step's libraries costs 50–400 ms. A fork
//! server (`forkserver.py`) imports the configured modules once and then
//! forks a child per step, which costs a few milliseconds. The child resets
//! everything a fresh `python -m` would see (session, environment, cwd,
//! sys.path, sys.argv, stdio) before running the module.
//!
//! Protocol: JSON lines over the server's stdin/stdout. Many requests share one
//! server: writes go through a mutex, and one reader task dispatches replies to
//! the waiting requests by id.

use std::{
    collections::{BTreeMap, HashMap},
    ffi::OsStr,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc, Mutex, OnceLock, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use nix::{
    sys::signal::{Signal, kill, killpg},
    unistd::{Pid, getpid},
};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines},
    process::{Child, ChildStderr, ChildStdin, ChildStdout, Command},
    sync::oneshot,
    time::{Instant, timeout},
};
use tokio_util::sync::CancellationToken;

use crate::{
    spawn::{ChildSetup, spawn},
    supervise::ExitInfo,
};

const SCRIPT: &str = include_str!("forkserver.py");

/// How long a server may take to import its preload modules.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a server may take to fork a requested child (normally a few
/// milliseconds); a server that takes longer is considered hung.
pub(crate) const PID_TIMEOUT: Duration = Duration::from_secs(30);

/// After a server failed to start, workloads for that interpreter run cold
/// for this long before another start is tried.
const START_RETRY: Duration = Duration::from_secs(30);

/// Environment variables that a fresh interpreter reads at start-up and that
/// the fork server's child re-applies itself. Any other `PYTHON*` variable a
/// workload changes makes it run cold, since the warm interpreter was started
/// with the old value.
const EMULATED_ENV: [&str; 4] = [
    "PYTHONPATH",
    "PYTHONUNBUFFERED",
    "PYTHONIOENCODING",
    "PYTHONDONTWRITEBYTECODE",
];

/// `-m MODULE …` → `MODULE`.
pub(crate) fn warm_module(args: &[String]) -> Option<&str> {
    match args {
        [flag, module, ..] if flag == "-m" && !module.is_empty() && !module.starts_with('-') => {
            Some(module)
        }
        _ => None,
    }
}

/// Only programs named like an interpreter (`python`, `python3`,
/// `python3.11`) are sent the server script: anything else would run Python
/// source as its own language.
pub(crate) fn looks_like_python(program: &Path) -> bool {
    program
        .file_name()
        .and_then(OsStr::to_str)
        .is_some_and(|name| {
            name.strip_prefix("python")
                .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == '.'))
        })
}

/// Whether the warm interpreter can honour the workload's environment.
pub(crate) fn env_is_emulated(
    env: &BTreeMap<String, String>,
    process_env: impl Fn(&str) -> Option<String>,
) -> bool {
    env.iter().all(|(key, value)| {
        !key.starts_with("PYTHON")
            || EMULATED_ENV.contains(&key.as_str())
            || process_env(key).as_deref() == Some(value)
    })
}

/// The interpreter `program` names, found the way `execvp` would find it with
/// `path` as PATH. Relative paths with a slash depend on the cwd: `None`.
pub(crate) fn resolve_program(program: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    if program.contains('/') {
        let p = Path::new(program);
        return p.is_absolute().then(|| p.to_path_buf());
    }
    std::env::split_paths(path?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Oxflow's environment with `overrides` on top, or `None` when a variable is
/// not UTF-8 (the protocol is JSON).
pub(crate) fn full_env(overrides: &BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    for (key, value) in std::env::vars_os() {
        env.insert(key.into_string().ok()?, value.into_string().ok()?);
    }
    env.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
    Some(env)
}

/// One step for the fork server.
#[derive(Debug, Serialize)]
pub(crate) struct WarmRequest {
    pub module: String,
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: String,
    pub log_path: String,
    pub rlimit_as: Option<u64>,
    pub cgroup_procs: Option<String>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    id: u64,
    #[serde(flatten)]
    request: &'a WarmRequest,
}

#[derive(Debug, Deserialize)]
struct Reply {
    id: Option<u64>,
    pid: Option<i32>,
    exit_code: Option<i32>,
    signal: Option<i32>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Ready {
    pid: u32,
    version: String,
    threads: usize,
    #[serde(default)]
    preload_errors: BTreeMap<String, String>,
}

/// The fork servers of one runtime, one per interpreter path.
pub(crate) struct WarmPool {
    preload: Vec<String>,
    preload_env: BTreeMap<String, String>,
    scratch: PathBuf,
    slots: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<Slot>>>>,
}

#[derive(Default)]
struct Slot {
    server: Option<Arc<ForkServer>>,
    retry_after: Option<Instant>,
}

impl WarmPool {
    pub(crate) fn new(
        preload: Vec<String>,
        preload_env: BTreeMap<String, String>,
        scratch: PathBuf,
    ) -> Self {
        WarmPool {
            preload,
            preload_env,
            scratch,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// A running server for `program`, started on first use or after the last
    /// one died; `None` when it cannot start (the caller runs the workload cold).
    pub(crate) async fn server(&self, program: &Path) -> Option<Arc<ForkServer>> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            slots.entry(program.to_path_buf()).or_default().clone()
        };
        // Held across the start, so concurrent first requests wait for one server.
        let mut slot = slot.lock().await;
        if let Some(server) = &slot.server
            && server.is_alive()
        {
            return Some(server.clone());
        }
        slot.server = None;
        if slot.retry_after.is_some_and(|t| Instant::now() < t) {
            return None;
        }
        match ForkServer::start(program, &self.preload, &self.preload_env, &self.scratch).await {
            Ok(server) => {
                slot.retry_after = None;
                slot.server = Some(server.clone());
                Some(server)
            }
            Err(message) => {
                tracing::warn!(
                    program = %program.display(),
                    %message,
                    "Could not start the warm Python executor; Python steps run as fresh processes for now."
                );
                slot.retry_after = Some(Instant::now() + START_RETRY);
                None
            }
        }
    }

    /// Stops every server (their running children are killed).
    pub(crate) async fn shutdown(&self) {
        let slots: Vec<_> = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            slots.drain().map(|(_, slot)| slot).collect()
        };
        for slot in slots {
            let server = slot.lock().await.server.take();
            if let Some(server) = server {
                server.shutdown().await;
            }
        }
    }
}

/// A running fork server.
pub(crate) struct ForkServer {
    program: PathBuf,
    pid: u32,
    stdin: tokio::sync::Mutex<Option<ChildStdin>>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    broken: AtomicBool,
}

/// What the reader task shares with the requests.
struct Shared {
    /// `None` once the server is gone: registering then fails at once.
    pending: Mutex<Option<HashMap<u64, Pending>>>,
    death: OnceLock<String>,
    gone: CancellationToken,
}

struct Pending {
    started: Option<oneshot::Sender<StartedChild>>,
    finished: oneshot::Sender<Result<ExitInfo, String>>,
}

/// The pid of a forked child on its way to its request. If the request's
/// `run` future was dropped before it took the pid, nobody would supervise the
/// child: dropping this kills it (the child may not have reached its `setsid`
/// yet, hence the plain `kill` as well).
pub(crate) struct StartedChild {
    pid: i32,
    taken: bool,
}

impl StartedChild {
    /// Takes the pid; the caller now supervises the child.
    pub(crate) fn take(mut self) -> i32 {
        self.taken = true;
        self.pid
    }
}

impl Drop for StartedChild {
    fn drop(&mut self) {
        if !self.taken && self.pid > 1 {
            let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        }
    }
}

/// A request the server accepted.
pub(crate) struct Submitted {
    /// The child's pid, as soon as it is forked.
    pub started: oneshot::Receiver<StartedChild>,
    /// How the child ended, or why the server could not run it.
    pub finished: oneshot::Receiver<Result<ExitInfo, String>>,
}

impl ForkServer {
    async fn start(
        program: &Path,
        preload: &[String],
        preload_env: &BTreeMap<String, String>,
        scratch: &Path,
    ) -> Result<Arc<ForkServer>, String> {
        tokio::fs::create_dir_all(scratch).await.map_err(|e| {
            format!(
                "could not create the scratch directory {}: {e}",
                scratch.display()
            )
        })?;
        let mut cmd = Command::new(program);
        cmd.arg("-c")
            .arg(SCRIPT)
            .args(preload)
            .envs(preload_env)
            .current_dir(scratch)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let setup = ChildSetup {
            parent_pid: getpid().as_raw(),
            memory_limit: None,
            cgroup_procs: None,
            mounts: None,
        };
        let report = setup
            .install(&mut cmd)
            .map_err(|e| format!("could not prepare the start: {e}"))?;
        let mut child = spawn(cmd)
            .await
            .map_err(|e| format!("could not start {}: {e}", program.display()))?;
        if let Some(failure) = report.read().into_iter().find(|f| f.stage.is_fatal()) {
            return Err(format!(
                "{} failed: {}",
                failure.stage.describe(),
                failure.errno
            ));
        }
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("the server's pipes are missing".to_string());
        };
        let name = program.display().to_string();
        tokio::spawn(forward_stderr(name.clone(), stderr));

        let mut lines = BufReader::new(stdout).lines();
        let first = match timeout(READY_TIMEOUT, lines.next_line()).await {
            Err(_) => {
                return Err(format!(
                    "not ready after {}s (slow preload imports?)",
                    READY_TIMEOUT.as_secs()
                ));
            }
            Ok(Err(e)) => return Err(format!("reading from it failed: {e}")),
            Ok(Ok(None)) => {
                let status = child
                    .wait()
                    .await
                    .map(|s| s.to_string())
                    .unwrap_or_else(|e| e.to_string());
                return Err(format!(
                    "it exited before it was ready ({status}); its stderr is logged above"
                ));
            }
            Ok(Ok(Some(line))) => line,
        };
        let ready: Ready = serde_json::from_str(&first)
            .map_err(|e| format!("unexpected first line {first:?}: {e}"))?;
        if ready.threads > 1 {
            return Err(format!(
                "the preload modules started {} threads; forking a threaded interpreter is unsafe, \
                 so remove the module that starts them from preload_modules",
                ready.threads - 1
            ));
        }
        for (module, error) in &ready.preload_errors {
            tracing::warn!(program = %name, %module, %error, "A preload module failed to import; steps import it themselves.");
        }
        tracing::info!(program = %name, pid = ready.pid, version = %ready.version, "Warm Python executor ready.");

        let shared = Arc::new(Shared {
            pending: Mutex::new(Some(HashMap::new())),
            death: OnceLock::new(),
            gone: CancellationToken::new(),
        });
        let Some(pid) = child.id() else {
            return Err("it exited right after starting".to_string());
        };
        tokio::spawn(read_replies(lines, child, shared.clone(), name));
        Ok(Arc::new(ForkServer {
            program: program.to_path_buf(),
            pid,
            stdin: tokio::sync::Mutex::new(Some(stdin)),
            shared,
            next_id: AtomicU64::new(1),
            broken: AtomicBool::new(false),
        }))
    }

    fn is_alive(&self) -> bool {
        !self.broken.load(Ordering::Acquire)
            && self
                .shared
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some()
    }

    /// Why the server is gone, for error messages.
    pub(crate) fn death(&self) -> String {
        match self.shared.death.get() {
            Some(reason) => reason.clone(),
            None => format!("the fork server (pid {}) stopped", self.pid),
        }
    }

    /// Sends a request. `Err` means the server never received it (nothing
    /// started), so the caller may retry on a fresh server.
    pub(crate) async fn submit(&self, request: &WarmRequest) -> Result<Submitted, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (started_tx, started) = oneshot::channel();
        let (finished_tx, finished) = oneshot::channel();
        {
            let mut pending = self
                .shared
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let Some(pending) = pending.as_mut() else {
                return Err(self.death());
            };
            pending.insert(
                id,
                Pending {
                    started: Some(started_tx),
                    finished: finished_tx,
                },
            );
        }
        let mut line = serde_json::to_vec(&Envelope { id, request }).map_err(|e| e.to_string())?;
        line.push(b'\n');
        let written = {
            let mut stdin = self.stdin.lock().await;
            match stdin.as_mut() {
                Some(stdin) => match stdin.write_all(&line).await {
                    Ok(()) => stdin.flush().await,
                    Err(e) => Err(e),
                },
                None => Err(std::io::Error::other("the fork server is shutting down")),
            }
        };
        if let Err(e) = written {
            if let Some(pending) = self
                .shared
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_mut()
            {
                pending.remove(&id);
            }
            self.mark_broken();
            return Err(format!(
                "could not send the request to the fork server: {e}"
            ));
        }
        Ok(Submitted { started, finished })
    }

    /// Takes the server out of service and kills it (the reader task then
    /// fails whatever is still pending).
    pub(crate) fn mark_broken(&self) {
        self.broken.store(true, Ordering::Release);
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
    }

    async fn shutdown(&self) {
        self.broken.store(true, Ordering::Release);
        // EOF on its stdin: the server kills its children (its spare
        // included), reaps them and exits at once, without an interpreter
        // teardown, so nothing of it is left when this returns.
        drop(self.stdin.lock().await.take());
        if timeout(Duration::from_secs(5), self.shared.gone.cancelled())
            .await
            .is_err()
        {
            tracing::warn!(program = %self.program.display(), pid = self.pid, "The fork server did not stop; killing it.");
            let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
            let _ = timeout(Duration::from_secs(5), self.shared.gone.cancelled()).await;
        }
    }
}

impl Shared {
    fn dispatch(&self, line: &str) {
        let reply: Reply = match serde_json::from_str(line) {
            Ok(reply) => reply,
            Err(error) => {
                tracing::warn!(%error, line, "Unexpected line from the fork server.");
                return;
            }
        };
        let Some(id) = reply.id else { return };
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(pending) = pending.as_mut() else {
            return;
        };
        if let Some(pid) = reply.pid.filter(|&pid| pid > 1) {
            if let Some(started) = pending.get_mut(&id).and_then(|p| p.started.take()) {
                let _ = started.send(StartedChild { pid, taken: false });
            }
            return;
        }
        let result = match reply.error {
            Some(error) => Err(error),
            None => Ok(ExitInfo {
                code: reply.exit_code,
                signal: reply.signal,
            }),
        };
        if let Some(entry) = pending.remove(&id) {
            let _ = entry.finished.send(result);
        }
    }

    fn close(&self, reason: String) {
        let _ = self.death.set(reason);
        // Dropping the senders wakes every waiting request with an error.
        drop(
            self.pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        self.gone.cancel();
    }
}

async fn read_replies(
    mut lines: Lines<BufReader<ChildStdout>>,
    mut child: Child,
    shared: Arc<Shared>,
    program: String,
) {
    let why = loop {
        match lines.next_line().await {
            Ok(Some(line)) => shared.dispatch(&line),
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    let pid = child.id();
    // Already exited in the normal case; otherwise its protocol is broken.
    let _ = child.start_kill();
    let (status, clean) = match child.wait().await {
        Ok(status) => (status.to_string(), status.success()),
        Err(e) => (format!("status unknown: {e}"), false),
    };
    let read_failed = why.is_some();
    let reason = match (why, pid) {
        (Some(e), _) => {
            format!("reading from the fork server failed ({e}); it was stopped ({status})")
        }
        (None, Some(pid)) => format!("the fork server (pid {pid}) exited ({status})"),
        (None, None) => format!("the fork server exited ({status})"),
    };
    if clean && !read_failed {
        // A server exits 0 only when asked to (EOF on its stdin at shutdown).
        tracing::debug!(%program, %reason, "Warm Python executor stopped.");
    } else {
        tracing::warn!(%program, %reason, "Warm Python executor stopped.");
    }
    shared.close(reason);
}

async fn forward_stderr(program: String, stderr: ChildStderr) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::warn!(%program, "fork server: {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn module_from_args() {
        let check = |list: &[&str], expected: Option<&str>| {
            assert_eq!(warm_module(&args(list)), expected, "{list:?}")
        };
        check(
            &["-m", "kfp.dsl.executor_main", "--executor_input", "{}"],
            Some("kfp.dsl.executor_main"),
        );
        check(&["-m", "json.tool"], Some("json.tool"));
        check(&["-m"], None);
        check(&["-u", "-m", "json.tool"], None);
        check(&["script.py"], None);
        check(&["-m", "-c"], None);
        check(&[], None);
    }

    #[test]
    fn interpreter_names() {
        for name in [
            "python",
            "python3",
            "python3.11",
            "/usr/bin/python3",
            "/venv/bin/python",
        ] {
            assert!(looks_like_python(Path::new(name)), "{name}");
        }
        for name in [
            "sh",
            "pythonw-wrapper",
            "ipython",
            "/usr/bin/env",
            "python3-config",
        ] {
            assert!(!looks_like_python(Path::new(name)), "{name}");
        }
    }

    #[test]
    fn environment_rules() {
        let process = |key: &str| (key == "PYTHONHASHSEED").then(|| "0".to_string());
        let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(env_is_emulated(
            &env(&[("A", "1"), ("PYTHONPATH", "/x"), ("PYTHONUNBUFFERED", "1")]),
            process
        ));
        assert!(
            env_is_emulated(&env(&[("PYTHONHASHSEED", "0")]), process),
            "same as the server's"
        );
        assert!(!env_is_emulated(&env(&[("PYTHONHASHSEED", "1")]), process));
        assert!(!env_is_emulated(&env(&[("PYTHONOPTIMIZE", "2")]), process));
    }

    #[test]
    fn program_resolution() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("python3");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = dir.path().join("python9");
        std::fs::write(&plain, "").unwrap();
        let path = std::env::join_paths(["/nonexistent", dir.path().to_str().unwrap()]).unwrap();
        assert_eq!(resolve_program("python3", Some(&path)), Some(exe));
        assert_eq!(
            resolve_program("python9", Some(&path)),
            None,
            "not executable"
        );
        assert_eq!(
            resolve_program("/opt/py/bin/python", None),
            Some(PathBuf::from("/opt/py/bin/python"))
        );
        assert_eq!(resolve_program("./python3", Some(&path)), None);
    }

    #[test]
    fn request_shape() {
        let request = WarmRequest {
            module: "m".into(),
            argv: args(&["a"]),
            env: BTreeMap::new(),
            cwd: "/w".into(),
            log_path: "/l".into(),
            rlimit_as: None,
            cgroup_procs: None,
        };
        let line = serde_json::to_string(&Envelope {
            id: 7,
            request: &request,
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"id":7,"module":"m","argv":["a"],"env":{},"cwd":"/w","log_path":"/l","rlimit_as":null,"cgroup_procs":null}"#
        );
    }
}
