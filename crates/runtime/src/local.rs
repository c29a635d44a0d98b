//! The local process runtime: every workload is a supervised process group on
//! this host.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use futures::future::BoxFuture;
use nix::unistd::getpid;
use oxflow_core::{Resources, Workload};
use tokio::{
    process::{Child, Command},
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    Outcome, Runtime,
    cgroup::{CpuCgroups, CpuEnforcement, WorkloadCgroup},
    error::RuntimeError,
    mounts::{self, MountPlan},
    shim::{self, ShimReport},
    spawn::{ChildSetup, Report, Stage, StageFailure, spawn},
    supervise::{ExitInfo, ProcessGroup, Supervised, supervise},
    warm::{self, WarmPool, WarmRequest},
};

/// Settings of the local runtime.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Where workloads without a working directory get a fresh one (removed
    /// when the workload ends), and where the fork servers run.
    pub scratch_dir: PathBuf,
    /// Serve `python -m module` workloads that allow it from a warm fork
    /// server (one per interpreter).
    pub warm_python: bool,
    /// Modules the warm interpreters import up front, e.g.
    /// `kfp.dsl.executor_main`. A module that fails to import is logged and
    /// skipped. A module that starts threads at import disables the fork
    /// server for that interpreter (forking a threaded process is unsafe).
    pub preload_modules: Vec<String>,
    /// Environment variables set while the warm interpreters import
    /// `preload_modules` (e.g. `_KFP_RUNTIME=true`, which makes importing kfp
    /// ten times cheaper). Each step still gets exactly its own environment.
    pub preload_env: BTreeMap<String, String>,
    /// Start workloads through this exec shim instead of forking Oxflow: an
    /// executable whose `main` calls [`crate::shim::run_if_requested`] first,
    /// such as Oxflow's own binary (`/proc/self/exe`) or `oxflow-spawn`. The
    /// shim is started with `posix_spawn`, whose cost does not grow with
    /// Oxflow's resident memory as `fork`'s does, and prepares the process
    /// exactly as the fork path does. A relative path is made absolute when
    /// the runtime is created. `None` (the default) forks. Fork servers of
    /// the warm Python executor start by forking either way.
    pub spawn_shim: Option<PathBuf>,
    /// Use the shim only while this process's resident memory is at least
    /// this many bytes; below it, forking is cheaper than starting the shim
    /// (about 1 ms less per workload for a process of a few tens of MiB).
    /// 0 (the default) always uses the shim when one is configured.
    pub shim_min_rss_bytes: u64,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            scratch_dir: std::env::temp_dir().join("oxflow-scratch"),
            warm_python: false,
            preload_modules: Vec::new(),
            preload_env: BTreeMap::new(),
            spawn_shim: None,
            shim_min_rss_bytes: 0,
        }
    }
}

/// Runs workloads as local processes.
///
/// Each workload runs in its own session and process group, with
/// `PR_SET_PDEATHSIG=SIGKILL` so that it dies with Oxflow; timeout and
/// cancellation stop the whole group (SIGTERM, then SIGKILL two seconds
/// later), and a group member left behind by a workload that exited is
/// stopped the same way. Memory limits are enforced with `RLIMIT_AS`, CPU
/// limits with cgroups where the host allows it (see
/// [`LocalRuntime::enforced_limits`]). Workloads start by forking Oxflow, or,
/// with [`LocalConfig::spawn_shim`], through an exec shim started with
/// `posix_spawn`, whose cost does not grow with Oxflow's resident memory;
/// both prepare the process the same way and report a failed step alike.
///
/// Cloning is cheap and clones share the fork servers. Requires a tokio
/// runtime with I/O and time enabled; use one runtime for the lifetime of a
/// `LocalRuntime` (the fork servers' reader tasks live on it).
#[derive(Clone)]
pub struct LocalRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    config: LocalConfig,
    cgroups: Option<&'static CpuCgroups>,
    warm: WarmPool,
    next_scratch: AtomicU64,
}

impl LocalRuntime {
    /// Creates the runtime; finds out which limits this host lets it enforce.
    /// Fork servers start lazily, on the first warm workload.
    pub fn new(mut config: LocalConfig) -> Self {
        config.spawn_shim = config.spawn_shim.take().map(shim::absolute);
        if let Some(path) = &config.spawn_shim
            && shim::is_self_without_entry(path)
        {
            tracing::error!(
                shim = %path.display(),
                "The spawn shim is this program, but its main does not call \
                 oxflow_runtime::shim::run_if_requested() first; workloads start by forking instead."
            );
            config.spawn_shim = None;
        }
        match &config.spawn_shim {
            Some(shim) => {
                tracing::info!(shim = %shim.display(), "Workloads start through the spawn shim.")
            }
            None => tracing::debug!("Workloads start by forking Oxflow."),
        }
        let cgroups = CpuCgroups::detect();
        match &cgroups {
            Some(c) => {
                tracing::info!(cpu = ?c.enforcement(), "CPU limits are enforced with cgroups.")
            }
            None => tracing::info!(
                "CPU limits are not enforced: no writable cgroup with the cpu controller."
            ),
        }
        let warm = WarmPool::new(
            config.preload_modules.clone(),
            config.preload_env.clone(),
            config.scratch_dir.join("forkservers"),
        );
        LocalRuntime {
            inner: Arc::new(Inner {
                config,
                cgroups,
                warm,
                next_scratch: AtomicU64::new(0),
            }),
        }
    }

    /// How CPU limits are enforced on this host.
    pub fn cpu_enforcement(&self) -> CpuEnforcement {
        self.inner
            .cgroups
            .as_ref()
            .map_or(CpuEnforcement::None, |c| c.enforcement())
    }

    /// The fields of `resources` this runtime enforces, by name
    /// (`memory_limit_bytes` through `RLIMIT_AS`, `cpu_limit_millis` through a
    /// cgroup), so that callers can record what was enforced. Requests and
    /// accelerators are never enforced locally.
    pub fn enforced_limits(&self, resources: &Resources) -> Vec<&'static str> {
        let mut enforced = Vec::new();
        if resources.memory_limit_bytes.is_some() {
            enforced.push("memory_limit_bytes");
        }
        if resources.cpu_limit_millis.is_some() && self.inner.cgroups.is_some() {
            enforced.push("cpu_limit_millis");
        }
        enforced
    }

    /// Stops the fork servers; warm workloads still running are killed.
    /// Later warm workloads start a new server.
    pub async fn shutdown(&self) {
        self.inner.warm.shutdown().await;
    }

    async fn run_workload(
        &self,
        workload: &Workload,
        cancel: CancellationToken,
    ) -> Result<Outcome, RuntimeError> {
        if cancel.is_cancelled() {
            return Ok(Outcome {
                exit_code: None,
                signal: None,
                timed_out: false,
                canceled: true,
                duration: Default::default(),
                warm: false,
            });
        }
        if let Some(image) = &workload.image {
            tracing::debug!(%image, "The local runtime runs on the host; the image is only recorded.");
        }
        let log_path = absolute(&workload.log_path).map_err(|error| RuntimeError::LogFile {
            path: workload.log_path.clone(),
            error,
        })?;
        let log = open_log(&log_path).await?;
        let (cwd, scratch) = self.working_dir(workload).await?;
        let cgroup = self.cgroup(workload);

        let result = self
            .run_prepared(workload, &log_path, log, &cwd, cgroup.as_ref(), cancel)
            .await;

        if let Some(cgroup) = cgroup {
            cgroup.remove().await;
        }
        if let Some(scratch) = scratch {
            scratch.remove().await;
        }
        match &result {
            Ok(outcome) => {
                tracing::debug!(outcome = %outcome.describe(), warm = outcome.warm, "Workload ended.")
            }
            Err(error) => tracing::debug!(%error, "Workload could not run."),
        }
        result
    }

    async fn run_prepared(
        &self,
        workload: &Workload,
        log_path: &Path,
        log: std::fs::File,
        cwd: &Path,
        cgroup: Option<&WorkloadCgroup>,
        cancel: CancellationToken,
    ) -> Result<Outcome, RuntimeError> {
        if let Some((program, module)) = self.warm_target(workload)
            && let Some(result) = self
                .run_warm(workload, &program, module, log_path, cwd, cgroup, &cancel)
                .await
        {
            return result;
        }
        let mounts = mounts::prepare(&workload.mounts, cwd)?.map(Arc::new);
        self.run_cold(workload, log, cwd, cgroup, mounts, &cancel)
            .await
    }

    /// The interpreter and module, when the workload may be served warm.
    fn warm_target<'w>(&self, workload: &'w Workload) -> Option<(PathBuf, &'w str)> {
        if !self.inner.config.warm_python || !workload.warm_python || !workload.mounts.is_empty() {
            return None;
        }
        let module = warm::warm_module(&workload.args)?;
        let path = match workload.env.get("PATH") {
            Some(path) => Some(path.into()),
            None => std::env::var_os("PATH"),
        };
        let program = warm::resolve_program(&workload.program, path.as_deref())?;
        if !warm::looks_like_python(&program) {
            return None;
        }
        if !warm::env_is_emulated(&workload.env, |key| std::env::var(key).ok()) {
            tracing::debug!(
                "The workload changes interpreter start-up variables; running it cold."
            );
            return None;
        }
        Some((program, module))
    }

    /// Runs the workload on a fork server; `None` when it could not be handed
    /// to one (nothing was started: the caller runs it cold).
    #[allow(clippy::too_many_arguments)]
    async fn run_warm(
        &self,
        workload: &Workload,
        program: &Path,
        module: &str,
        log_path: &Path,
        cwd: &Path,
        cgroup: Option<&WorkloadCgroup>,
        cancel: &CancellationToken,
    ) -> Option<Result<Outcome, RuntimeError>> {
        let request = WarmRequest {
            module: module.to_string(),
            argv: workload.args[2..].to_vec(),
            env: warm::full_env(&workload.env)?,
            cwd: cwd.to_str()?.to_string(),
            log_path: log_path.to_str()?.to_string(),
            rlimit_as: workload.resources.memory_limit_bytes,
            cgroup_procs: match cgroup {
                Some(cgroup) => Some(cgroup.procs_path().to_str()?.to_string()),
                None => None,
            },
        };
        let name = program.display().to_string();
        let mut accepted = None;
        // A server that died since its last request is noticed when the write
        // fails, or when it disappears before reporting the child's pid. In
        // both cases the step's code has not run (a child forked just before
        // the server died is killed by its parent-death signal, or stops at
        // its parent check, before it imports anything), so the request goes
        // to a fresh server; after two such failures it runs cold.
        for _ in 0..2 {
            let server = self.inner.warm.server(program).await?;
            // The workload's clock starts now, not while a server starts.
            let started = Instant::now();
            let handle = match server.submit(&request).await {
                Ok(handle) => handle,
                Err(message) => {
                    tracing::debug!(%message, "Retrying on a fresh fork server.");
                    continue;
                }
            };
            let reply = match tokio::time::timeout(warm::PID_TIMEOUT, handle.started).await {
                Ok(reply) => reply,
                Err(_) => {
                    server.mark_broken();
                    let message = format!(
                        "the fork server did not start the workload within {}s; it was stopped",
                        warm::PID_TIMEOUT.as_secs()
                    );
                    return Some(Err(RuntimeError::WarmExecutor {
                        program: name,
                        message,
                    }));
                }
            };
            match reply {
                Ok(child) => {
                    accepted = Some((server, child.take(), handle.finished, started));
                    break;
                }
                Err(_) => match handle.finished.await {
                    // The server refused it (fork failed): a real error.
                    Ok(Err(message)) => {
                        return Some(Err(RuntimeError::WarmExecutor {
                            program: name,
                            message,
                        }));
                    }
                    _ => tracing::debug!(
                        reason = %server.death(),
                        "The fork server died before starting the workload; retrying on a fresh one."
                    ),
                },
            }
        }
        let (server, pid, finished, started) = accepted?;
        tracing::debug!(pid, %module, "Workload started on the warm Python executor.");
        let Some(mut group) = ProcessGroup::new(pid) else {
            let message = format!("the fork server reported an invalid pid {pid}");
            return Some(Err(RuntimeError::WarmExecutor {
                program: name,
                message,
            }));
        };
        let exit = async {
            match finished.await {
                Ok(Ok(exit)) => Ok(exit),
                Ok(Err(message)) => Err(RuntimeError::WarmExecutor {
                    program: name.clone(),
                    message,
                }),
                Err(_) => Err(RuntimeError::WarmExecutor {
                    program: name.clone(),
                    message: format!(
                        "{} while the workload was running; the workload was killed",
                        server.death()
                    ),
                }),
            }
        };
        let deadline = workload.timeout.map(|t| started + t);
        Some(
            supervise(&mut group, exit, deadline, cancel, started)
                .await
                .map(|s| outcome(s, true)),
        )
    }

    async fn run_cold(
        &self,
        workload: &Workload,
        log: std::fs::File,
        cwd: &Path,
        cgroup: Option<&WorkloadCgroup>,
        mounts: Option<Arc<MountPlan>>,
        cancel: &CancellationToken,
    ) -> Result<Outcome, RuntimeError> {
        let program = &workload.program;
        let log_error = |error| RuntimeError::LogFile {
            path: workload.log_path.clone(),
            error,
        };
        let spawn_error = |error| RuntimeError::Spawn {
            program: program.clone(),
            error,
        };
        let setup = ChildSetup {
            parent_pid: getpid().as_raw(),
            memory_limit: workload.resources.memory_limit_bytes,
            cgroup_procs: cgroup.and_then(WorkloadCgroup::procs_c_path),
            mounts: mounts.clone(),
        };
        let shim_path = self
            .inner
            .config
            .spawn_shim
            .as_deref()
            .filter(|_| self.worth_the_shim());
        let (mut cmd, pending) = match shim_path {
            None => {
                let mut cmd = Command::new(program);
                cmd.args(&workload.args).stdin(Stdio::null());
                let report = setup.install(&mut cmd).map_err(spawn_error)?;
                (cmd, Pending::Fork(report))
            }
            Some(shim_path) => {
                let (cmd, report) = shim::command(shim_path, &setup, program, &workload.args)
                    .map_err(spawn_error)?;
                (cmd, Pending::Shim(shim_path, report))
            }
        };
        cmd.envs(&workload.env)
            .current_dir(cwd)
            .stdout(log.try_clone().map_err(log_error)?)
            .stderr(log)
            .kill_on_drop(true);
        let started = Instant::now();
        let deadline = workload.timeout.map(|t| started + t);
        let spawned = spawn(cmd).await;
        let (mut child, mut group) = match pending {
            Pending::Fork(report) => forked(program, mounts.as_deref(), spawned, report)?,
            Pending::Shim(shim_path, report) => {
                let shimmed = Shimmed {
                    program,
                    shim_path,
                    mounts: mounts.as_deref(),
                    deadline,
                    cancel,
                };
                shimmed.prepared(spawned, report).await?
            }
        };
        tracing::debug!(pid = child.id(), %program, shim = shim_path.is_some(), "Workload started.");
        let exit = async {
            child
                .wait()
                .await
                .map(ExitInfo::from)
                .map_err(|error| RuntimeError::Wait {
                    program: program.clone(),
                    error,
                })
        };
        supervise(&mut group, exit, deadline, cancel, started)
            .await
            .map(|s| outcome(s, false))
    }

    async fn working_dir(
        &self,
        workload: &Workload,
    ) -> Result<(PathBuf, Option<ScratchDir>), RuntimeError> {
        let (dir, scratch) = match &workload.working_dir {
            Some(dir) => (dir.clone(), false),
            None => {
                let n = self.inner.next_scratch.fetch_add(1, Ordering::Relaxed);
                let name = format!("{}-{}-{n}", sanitize(&workload.name), std::process::id());
                (self.inner.config.scratch_dir.join(name), true)
            }
        };
        let dir = absolute(&dir).map_err(|error| RuntimeError::WorkingDir {
            path: dir.clone(),
            error,
        })?;
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|error| RuntimeError::WorkingDir {
                path: dir.clone(),
                error,
            })?;
        let guard = scratch.then(|| ScratchDir(Some(dir.clone())));
        Ok((dir, guard))
    }

    /// Whether spawning through the shim beats forking right now (see
    /// [`LocalConfig::shim_min_rss_bytes`]).
    fn worth_the_shim(&self) -> bool {
        let min = self.inner.config.shim_min_rss_bytes;
        min == 0 || resident_bytes().is_none_or(|rss| rss >= min)
    }

    fn cgroup(&self, workload: &Workload) -> Option<WorkloadCgroup> {
        let millis = workload.resources.cpu_limit_millis?;
        let cgroups = self.inner.cgroups?;
        cgroups
            .create(millis)
            .map_err(|error| tracing::warn!(%error, "Could not create a cgroup; the CPU limit is not enforced."))
            .ok()
    }
}

impl Runtime for LocalRuntime {
    fn run<'a>(
        &'a self,
        workload: &'a Workload,
        cancel: CancellationToken,
    ) -> BoxFuture<'a, Result<Outcome, RuntimeError>> {
        let span = tracing::info_span!("workload", name = %workload.name);
        Box::pin(self.run_workload(workload, cancel).instrument(span))
    }

    fn name(&self) -> &'static str {
        "local"
    }

    fn enforced_limits(&self, resources: &Resources) -> Vec<&'static str> {
        LocalRuntime::enforced_limits(self, resources)
    }

    fn prewarm_python(&self, program: &Path) {
        if !self.inner.config.warm_python {
            return;
        }
        let this = self.clone();
        let program = program.to_path_buf();
        tokio::spawn(async move {
            let _ = this.inner.warm.server(&program).await;
        });
    }
}

fn outcome(s: Supervised, warm: bool) -> Outcome {
    Outcome {
        exit_code: s.exit.code,
        signal: s.exit.signal,
        timed_out: s.timed_out,
        canceled: s.canceled,
        duration: s.duration,
        warm,
    }
}

/// A started child's setup report, waiting to be read.
enum Pending<'a> {
    /// Read right after `spawn`: std returns once the forked child `exec`ed.
    Fork(Report),
    /// Read asynchronously: `spawn` returns once the shim runs, before it
    /// prepared the process.
    Shim(&'a Path, ShimReport),
}

/// The fork path: std returned once the child `exec`ed the program or
/// failed, so the report is complete.
fn forked(
    program: &str,
    mounts: Option<&MountPlan>,
    spawned: std::io::Result<Child>,
    report: Report,
) -> Result<(Child, ProcessGroup), RuntimeError> {
    let failures = report.read();
    warn_unenforced(&failures);
    let child =
        spawned.map_err(
            |error| match failures.into_iter().find(|f| f.stage.is_fatal()) {
                Some(failure) => setup_error(program, mounts, failure),
                None => RuntimeError::Spawn {
                    program: program.to_string(),
                    error,
                },
            },
        )?;
    let group = process_group(program, &child)?;
    Ok((child, group))
}

/// The shim path: `spawn` returned once the shim runs; the shim then
/// prepares the process and `exec`s the program, or reports why not.
struct Shimmed<'a> {
    program: &'a str,
    shim_path: &'a Path,
    mounts: Option<&'a MountPlan>,
    deadline: Option<Instant>,
    cancel: &'a CancellationToken,
}

impl Shimmed<'_> {
    /// Waits for the shim's report (or for the timeout or cancellation,
    /// which supervision then carries out) and returns the started workload.
    async fn prepared(
        &self,
        spawned: std::io::Result<Child>,
        report: ShimReport,
    ) -> Result<(Child, ProcessGroup), RuntimeError> {
        let mut child = spawned.map_err(|error| {
            // Not found or not executable: the shim, not the program (the
            // shim reports on the program).
            let shim_at_fault = matches!(
                error.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ) || error.raw_os_error() == Some(nix::libc::ENOEXEC);
            if shim_at_fault {
                self.shim_error(error.to_string())
            } else {
                self.spawn_error(error)
            }
        })?;
        // Before any await: dropping the `run` future from here on kills the
        // group, and `kill_on_drop` the shim itself should it not have called
        // `setsid` yet.
        let group = process_group(self.program, &child)?;
        // Timeout and cancellation apply while the shim prepares the process
        // too (a mount may hang).
        let timer = async {
            match self.deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        let records = tokio::select! {
            records = report.read() => records.map_err(|error| RuntimeError::Wait {
                program: self.program.to_string(),
                error,
            })?,
            () = self.cancel.cancelled() => return Ok((child, group)),
            () = timer => return Ok((child, group)),
        };
        warn_unenforced(&records.failures);
        let fatal = records.failures.into_iter().find(|f| f.stage.is_fatal());
        if fatal.is_none() && records.exec_reached {
            return Ok((child, group));
        }
        // The shim exits by itself (a process that is not a shim may not);
        // its pid stays reserved until it is reaped below.
        drop(group);
        let _ = child.start_kill();
        let status = match child.wait().await {
            Ok(status) => status.to_string(),
            Err(error) => error.to_string(),
        };
        Err(match fatal {
            Some(failure) if failure.stage == Stage::Exec => self.spawn_error(failure.io_error()),
            Some(failure) if failure.stage == Stage::ShimArgs => self.shim_error(format!(
                "it rejected its arguments ({}; the workload's log says why)",
                failure.errno
            )),
            Some(failure) => setup_error(self.program, self.mounts, failure),
            None => self.shim_error(format!("it did not report starting the program ({status})")),
        })
    }

    fn spawn_error(&self, error: std::io::Error) -> RuntimeError {
        RuntimeError::Spawn {
            program: self.program.to_string(),
            error,
        }
    }

    fn shim_error(&self, message: String) -> RuntimeError {
        RuntimeError::SpawnShim {
            program: self.program.to_string(),
            shim: self.shim_path.to_path_buf(),
            message,
        }
    }
}

/// Logs the limits the child could not apply (they never stop the workload).
fn warn_unenforced(failures: &[StageFailure]) {
    for failure in failures.iter().filter(|f| !f.stage.is_fatal()) {
        tracing::warn!(
            step = failure.stage.describe(),
            errno = %failure.errno,
            "A resource limit could not be enforced for this workload."
        );
    }
}

/// The process group a started child leads (or will lead, once the shim
/// called `setsid`).
fn process_group(program: &str, child: &Child) -> Result<ProcessGroup, RuntimeError> {
    let lost = |message: String| RuntimeError::Wait {
        program: program.to_string(),
        error: std::io::Error::other(message),
    };
    let pid = child
        .id()
        .ok_or_else(|| lost("the process was reaped before it could be watched".to_string()))?;
    i32::try_from(pid)
        .ok()
        .and_then(ProcessGroup::new)
        .ok_or_else(|| lost(format!("invalid pid {pid}")))
}

fn setup_error(program: &str, mounts: Option<&MountPlan>, failure: StageFailure) -> RuntimeError {
    match mounts {
        Some(plan) => plan.error(program, failure),
        None => RuntimeError::Setup {
            program: program.to_string(),
            step: failure.stage.describe(),
            errno: failure.errno,
        },
    }
}

fn absolute(path: &Path) -> std::io::Result<PathBuf> {
    std::path::absolute(path)
}

/// Opens the log in append mode (stdout and stderr share it), creating its directory.
async fn open_log(path: &Path) -> Result<std::fs::File, RuntimeError> {
    let error = |error| RuntimeError::LogFile {
        path: path.to_path_buf(),
        error,
    };
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(error)?;
    }
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .map_err(error)?;
    Ok(file.into_std().await)
}

/// A workload name as a directory name.
fn sanitize(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if clean.is_empty() || clean.chars().all(|c| c == '.') {
        "workload".to_string()
    } else {
        clean
    }
}

/// A scratch working directory, removed when the workload ends (also when the
/// `run` future is dropped).
struct ScratchDir(Option<PathBuf>);

impl ScratchDir {
    async fn remove(mut self) {
        if let Some(dir) = self.0.take()
            && let Err(error) = tokio::fs::remove_dir_all(&dir).await
        {
            tracing::debug!(dir = %dir.display(), %error, "Could not remove a scratch directory.");
        }
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// This process's resident memory, from `/proc/self/statm`.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { nix::libc::sysconf(nix::libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok().filter(|p| *p > 0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shim_is_used_only_above_its_resident_size() {
        let rss = resident_bytes().expect("statm is readable");
        assert!(rss > 1 << 20 && rss < 1 << 40, "{rss}");
        let rt = |min| {
            LocalRuntime::new(LocalConfig {
                shim_min_rss_bytes: min,
                ..Default::default()
            })
        };
        assert!(rt(0).worth_the_shim(), "0 means always");
        assert!(rt(1).worth_the_shim());
        assert!(!rt(u64::MAX).worth_the_shim());
    }

    #[test]
    fn names_become_directory_names() {
        assert_eq!(sanitize("train-step_1.v2"), "train-step_1.v2");
        assert_eq!(sanitize("a/b c"), "a_b_c");
        assert_eq!(sanitize(""), "workload");
        assert_eq!(sanitize(".."), "workload");
        assert_eq!(sanitize(&"x".repeat(100)).len(), 64);
    }
}
