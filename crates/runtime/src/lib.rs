//! Runs workloads.
//!
//! Controllers describe what to run as an [`oxflow_core::Workload`] and hand it
//! to a [`Runtime`], which runs it to completion (or until it times out or is
//! canceled) and reports an [`Outcome`]. Controllers never know which runtime
//! they use.
//!
//! Only [`LocalRuntime`] exists today: every workload is a supervised process
//! group on this host, with its output in the workload's log file, limits
//! enforced where the host allows it, and Python steps served by a warm,
//! pre-imported interpreter (a fork server) when the workload allows it. A
//! Kubernetes runtime will implement the same trait.
//!
//! Binaries that let the local runtime start workloads through an exec shim
//! (see [`LocalConfig::spawn_shim`]) call [`shim::run_if_requested`] first
//! in `main`.
//!
//! Architecture invariant: this crate knows processes, files and cgroups, not
//! pipelines, runs or the store. It takes a `Workload` and returns an `Outcome`.

#![warn(missing_docs)]

mod cgroup;
mod error;
mod local;
mod mounts;
pub mod owner;
pub mod shim;
mod spawn;
mod supervise;
mod warm;

use std::time::Duration;

use futures::future::BoxFuture;
use oxflow_core::Workload;
use tokio_util::sync::CancellationToken;

pub use cgroup::CpuEnforcement;
pub use error::RuntimeError;
pub use local::{LocalConfig, LocalRuntime};

/// How a workload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The exit code, when the process exited by itself (`exit(3)` gives `Some(3)`).
    pub exit_code: Option<i32>,
    /// The signal that ended the process, when it was killed.
    pub signal: Option<i32>,
    /// The workload ran past its `timeout` and was killed.
    pub timed_out: bool,
    /// The caller canceled the workload and it was killed.
    pub canceled: bool,
    /// Wall-clock time from start until the workload exited, or until the
    /// runtime decided to stop it (timeout or cancellation); the time spent
    /// killing it afterwards is not included.
    pub duration: Duration,
    /// The workload was served by the warm Python executor (a fork server)
    /// rather than by a fresh process.
    pub warm: bool,
}

impl Outcome {
    /// Whether the workload ran to completion with exit code 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out && !self.canceled
    }

    /// A short phrase for status messages: `exit code 1`, `killed by signal 9`,
    /// `timed out after 5s`, `canceled`.
    pub fn describe(&self) -> String {
        if self.canceled {
            "canceled".to_string()
        } else if self.timed_out {
            format!("timed out after {}", format_duration(self.duration))
        } else if let Some(signal) = self.signal {
            format!("killed by signal {signal}")
        } else if let Some(code) = self.exit_code {
            format!("exit code {code}")
        } else {
            "ended without an exit status".to_string()
        }
    }
}

/// `5s`, `2.5s`, `250ms`: rounded to what a person wants to read.
fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let tenths = (ms + 50) / 100;
    if tenths.is_multiple_of(10) {
        format!("{}s", tenths / 10)
    } else {
        format!("{}.{}s", tenths / 10, tenths % 10)
    }
}

/// Something that can run workloads: the local process runtime today, Kubernetes later.
pub trait Runtime: Send + Sync {
    /// Runs the workload to completion (or timeout / cancellation), writing
    /// stdout and stderr, interleaved, to `workload.log_path`.
    ///
    /// A workload that fails (non-zero exit, signal, timeout, cancellation) is
    /// an `Ok` [`Outcome`]; `Err` means the runtime could not run it at all or
    /// lost track of it.
    fn run<'a>(
        &'a self,
        workload: &'a Workload,
        cancel: CancellationToken,
    ) -> BoxFuture<'a, Result<Outcome, RuntimeError>>;

    /// A short name for logs and status (`local`, `kubernetes`).
    fn name(&self) -> &'static str;

    /// Which of `resources`' limits this runtime enforces (field names of
    /// [`oxflow_core::Resources`]), so callers can record it next to the
    /// limits themselves.
    fn enforced_limits(&self, resources: &oxflow_core::Resources) -> Vec<&'static str> {
        let _ = resources;
        Vec::new()
    }

    /// A hint that `python -m …` workloads of this interpreter are coming:
    /// a runtime with warm interpreters may start one now, in the
    /// background, so the first step does not wait for it.
    fn prewarm_python(&self, program: &std::path::Path) {
        let _ = program;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome() -> Outcome {
        Outcome {
            exit_code: None,
            signal: None,
            timed_out: false,
            canceled: false,
            duration: Duration::from_secs(5),
            warm: false,
        }
    }

    #[test]
    fn describe() {
        let check = |o: Outcome, text: &str, success: bool| {
            assert_eq!(o.describe(), text);
            assert_eq!(o.success(), success, "{text}");
        };
        check(
            Outcome {
                exit_code: Some(0),
                ..outcome()
            },
            "exit code 0",
            true,
        );
        check(
            Outcome {
                exit_code: Some(1),
                ..outcome()
            },
            "exit code 1",
            false,
        );
        check(
            Outcome {
                signal: Some(9),
                ..outcome()
            },
            "killed by signal 9",
            false,
        );
        check(
            Outcome {
                signal: Some(15),
                timed_out: true,
                duration: Duration::from_millis(5003),
                ..outcome()
            },
            "timed out after 5s",
            false,
        );
        check(
            Outcome {
                timed_out: true,
                duration: Duration::from_millis(2460),
                ..outcome()
            },
            "timed out after 2.5s",
            false,
        );
        check(
            Outcome {
                timed_out: true,
                duration: Duration::from_millis(250),
                ..outcome()
            },
            "timed out after 250ms",
            false,
        );
        check(
            Outcome {
                exit_code: Some(0),
                canceled: true,
                ..outcome()
            },
            "canceled",
            false,
        );
        check(outcome(), "ended without an exit status", false);
    }
}
