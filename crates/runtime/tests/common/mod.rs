//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use nix::{errno::Errno, sys::signal::kill, unistd::Pid};
use oxflow_core::Workload;
use oxflow_runtime::{LocalConfig, LocalRuntime};

/// How the runtime under test starts cold workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spawn {
    /// `fork` with a `pre_exec` hook (no shim configured).
    Fork,
    /// `posix_spawn` of this crate's `oxflow-spawn` shim.
    Shim,
}

impl Spawn {
    pub fn shim(self) -> Option<PathBuf> {
        match self {
            Spawn::Fork => None,
            Spawn::Shim => Some(env!("CARGO_BIN_EXE_oxflow-spawn").into()),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Spawn::Fork => "fork",
            Spawn::Shim => "shim",
        }
    }

    pub fn from_name(name: &str) -> Option<Spawn> {
        [Spawn::Fork, Spawn::Shim]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

/// Defines every listed `async fn name(spawn: Spawn)` as two tests,
/// `fork::name` and `shim::name`, one per way of starting workloads. Each
/// entry carries its test attribute: `#[tokio::test] name`.
macro_rules! for_each_spawn_strategy {
    ($(#[$attr:meta] $name:ident),* $(,)?) => {
        mod fork {
            $(#[$attr] async fn $name() { super::$name(super::Spawn::Fork).await })*
        }
        mod shim {
            $(#[$attr] async fn $name() { super::$name(super::Spawn::Shim).await })*
        }
    };
}

/// A temporary directory with helpers to build workloads inside it.
pub struct Tmp {
    pub dir: tempfile::TempDir,
    /// How the runtimes made by [`Tmp::runtime`] start workloads.
    pub spawn: Spawn,
}

impl Tmp {
    pub fn new() -> Self {
        Self::with(Spawn::Fork)
    }

    pub fn with(spawn: Spawn) -> Self {
        // RUST_LOG=oxflow_runtime=debug shows what the runtime did.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        Tmp {
            dir: tempfile::tempdir().unwrap(),
            spawn,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn runtime(&self, warm_python: bool) -> LocalRuntime {
        self.runtime_with(warm_python, Vec::new())
    }

    pub fn runtime_with(&self, warm_python: bool, preload_modules: Vec<String>) -> LocalRuntime {
        LocalRuntime::new(LocalConfig {
            scratch_dir: self.path().join("scratch"),
            warm_python,
            preload_modules,
            spawn_shim: self.spawn.shim(),
            ..Default::default()
        })
    }

    /// A workload running `program args…` in the temporary directory, logging to `<name>.log`.
    pub fn workload(&self, name: &str, program: &str, args: &[&str]) -> Workload {
        Workload {
            name: name.to_string(),
            program: program.to_string(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: BTreeMap::new(),
            working_dir: Some(self.path().to_path_buf()),
            log_path: self.path().join("logs").join(format!("{name}.log")),
            ..Default::default()
        }
    }

    /// `sh -c script`.
    pub fn sh(&self, name: &str, script: &str) -> Workload {
        self.workload(name, "sh", &["-c", script])
    }

    pub fn log(&self, workload: &Workload) -> String {
        std::fs::read_to_string(&workload.log_path).unwrap_or_default()
    }
}

/// The path of `program` on PATH.
pub fn on_path(program: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("{program} is not on PATH"))
}

/// Polls `f` until it returns `Some`, failing the test after `limit`.
pub async fn eventually<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads a pid a workload wrote to `path`, waiting for it to appear.
pub async fn pid_from_file(path: PathBuf) -> i32 {
    eventually(
        &format!("{}", path.display()),
        Duration::from_secs(20),
        || {
            std::fs::read_to_string(&path)
                .ok()
                .filter(|s| s.ends_with('\n'))
                .and_then(|s| s.trim().parse().ok())
        },
    )
    .await
}

/// Whether a process runs: it exists and is not a zombie (an orphan's zombie
/// lingers until init reaps it).
pub fn running(pid: i32) -> bool {
    alive(pid)
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let state = stat[stat.rfind(')')? + 1..].trim_start().chars().next()?;
                Some(state != 'Z' && state != 'X')
            })
            .unwrap_or(false)
}

/// Whether a process exists (`kill(pid, 0)`).
pub fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None) != Err(Errno::ESRCH)
}

/// Asserts that the process disappears (is killed and reaped) within a few seconds.
pub async fn assert_gone(pid: i32) {
    eventually(
        &format!("process {pid} to disappear"),
        Duration::from_secs(10),
        || (!alive(pid)).then_some(()),
    )
    .await;
}

/// The value of `key=` lines in a log.
pub fn field<'a>(log: &'a str, key: &str) -> Option<&'a str> {
    log.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}
