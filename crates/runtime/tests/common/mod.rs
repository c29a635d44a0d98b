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

/// A temporary directory with helpers to build workloads inside it.
pub struct Tmp {
    pub dir: tempfile::TempDir,
}

impl Tmp {
    pub fn new() -> Self {
        // RUST_LOG=oxflow_runtime=debug shows what the runtime did.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        Tmp {
            dir: tempfile::tempdir().unwrap(),
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
