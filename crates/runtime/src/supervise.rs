//! Watching a running process group: timeout, cancellation, and making sure
//! nothing of it outlives the workload.

use std::{future::Future, os::unix::process::ExitStatusExt, time::Duration};

use nix::{
    errno::Errno,
    sys::{
        signal::{Signal, kill, killpg},
        wait::{WaitPidFlag, WaitStatus, waitpid},
    },
    unistd::Pid,
};
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::error::RuntimeError;

/// How long a workload has between SIGTERM and SIGKILL.
pub(crate) const GRACE: Duration = Duration::from_secs(2);

/// How long to wait for SIGKILLed processes to disappear before giving up.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// How often a group is checked while it is being emptied.
const POLL: Duration = Duration::from_millis(10);

/// How the leader of a process group ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl From<std::process::ExitStatus> for ExitInfo {
    fn from(status: std::process::ExitStatus) -> Self {
        ExitInfo {
            code: status.code(),
            signal: status.signal(),
        }
    }
}

/// What [`supervise`] observed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Supervised {
    pub exit: ExitInfo,
    pub timed_out: bool,
    pub canceled: bool,
    pub duration: Duration,
}

/// A workload's process group (its leader called `setsid`, so the group id is
/// the leader's pid). Dropping it before [`ProcessGroup::finish`] SIGKILLs the
/// whole group: a `run` future that is dropped leaves nothing running.
#[derive(Debug)]
pub(crate) struct ProcessGroup {
    pgid: Pid,
    armed: bool,
}

impl ProcessGroup {
    /// `None` for pids that are not a process (0 and negative pids address
    /// our own group or every process and must never be signalled).
    pub(crate) fn new(leader: i32) -> Option<Self> {
        (leader > 1).then(|| ProcessGroup {
            pgid: Pid::from_raw(leader),
            armed: true,
        })
    }

    /// Signals the group while its leader is known not to be reaped. Falls
    /// back to the leader alone when the group does not exist yet (a warm
    /// child that has not reached its `setsid`).
    fn stop(&self, signal: Signal) {
        if killpg(self.pgid, signal) == Err(Errno::ESRCH) {
            let _ = kill(self.pgid, signal);
        }
    }

    /// Whether any member of the group is still running (zombies waiting for
    /// their parent do not count).
    fn has_live_members(&self) -> bool {
        self.reap_strays();
        match killpg(self.pgid, None) {
            Err(Errno::ESRCH) => false,
            Ok(()) => live_members_in_proc(self.pgid.as_raw()),
            Err(_) => true,
        }
    }

    /// Reaps members that became our children: when Oxflow is PID 1 in a
    /// container (or a subreaper) orphans are reparented to it, and nobody
    /// else would wait for them. Only called after the leader was reaped, so
    /// this cannot steal the leader's status from tokio.
    fn reap_strays(&self) {
        let group = Pid::from_raw(-self.pgid.as_raw());
        while let Ok(status) = waitpid(group, Some(WaitPidFlag::WNOHANG)) {
            if status == WaitStatus::StillAlive {
                break;
            }
        }
    }

    async fn wait_until_empty(&self, deadline: Instant) -> bool {
        loop {
            if !self.has_live_members() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            sleep(POLL).await;
        }
    }

    /// After the leader has ended: stops what is left of the group (SIGTERM,
    /// then SIGKILL after the grace period counted from `terminated_at`).
    pub(crate) async fn finish(&mut self, terminated_at: Option<Instant>) {
        if self.has_live_members() {
            let terminated_at = terminated_at.unwrap_or_else(|| {
                let _ = killpg(self.pgid, Signal::SIGTERM);
                Instant::now()
            });
            if !self.wait_until_empty(terminated_at + GRACE).await {
                let _ = killpg(self.pgid, Signal::SIGKILL);
                if !self.wait_until_empty(Instant::now() + KILL_WAIT).await {
                    tracing::warn!(
                        pgid = self.pgid.as_raw(),
                        "Processes of a killed workload are still running."
                    );
                }
            }
        }
        self.armed = false;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if self.armed {
            let _ = killpg(self.pgid, Signal::SIGKILL);
        }
    }
}

/// Scans /proc for members of the group that are not zombies.
fn live_members_in_proc(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else { return false };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
        matches!(parse_stat(&stat), Some((state, group)) if group == pgid && state != 'Z' && state != 'X')
    })
}

/// State and process group from /proc/<pid>/stat (`pid (comm) S ppid pgrp …`;
/// comm may contain spaces and parentheses, so parse from the last `)`).
fn parse_stat(stat: &str) -> Option<(char, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    TimedOut,
    Canceled,
}

/// Waits for `exit` (the leader's end) unless the deadline passes or `cancel`
/// fires first; then SIGTERMs the group, SIGKILLs it after [`GRACE`], and in
/// every case leaves no member of the group running.
pub(crate) async fn supervise<F>(
    group: &mut ProcessGroup,
    exit: F,
    deadline: Option<Instant>,
    cancel: &CancellationToken,
    started: Instant,
) -> Result<Supervised, RuntimeError>
where
    F: Future<Output = Result<ExitInfo, RuntimeError>>,
{
    tokio::pin!(exit);
    let timer = async {
        match deadline {
            Some(deadline) => sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    let stop = tokio::select! {
        result = &mut exit => {
            let duration = started.elapsed();
            group.finish(None).await;
            return result.map(|exit| Supervised { exit, timed_out: false, canceled: false, duration });
        }
        () = cancel.cancelled() => Stop::Canceled,
        () = timer => Stop::TimedOut,
    };
    let duration = started.elapsed();
    group.stop(Signal::SIGTERM);
    let terminated_at = Instant::now();
    let result = match tokio::time::timeout(GRACE, &mut exit).await {
        Ok(result) => result,
        Err(_) => {
            group.stop(Signal::SIGKILL);
            exit.await
        }
    };
    group.finish(Some(terminated_at)).await;
    result.map(|exit| Supervised {
        exit,
        timed_out: stop == Stop::TimedOut,
        canceled: stop == Stop::Canceled,
        duration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines() {
        assert_eq!(parse_stat("123 (sleep) S 1 120 120 0 -1"), Some(('S', 120)));
        assert_eq!(parse_stat("7 (a (weird) name) Z 1 7 7 0"), Some(('Z', 7)));
        assert_eq!(parse_stat("garbage"), None);
    }
}
