//! Starting child processes: the long-lived spawner thread and the setup a
//! workload's process does before it `exec`s the program — between `fork` and
//! `exec` in a `pre_exec` hook, or in the exec shim (see [`crate::shim`]).

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd, OwnedFd},
    panic::AssertUnwindSafe,
    sync::{OnceLock, mpsc},
};

use nix::{
    errno::Errno,
    fcntl::OFlag,
    libc,
    sys::signal::{Signal, killpg},
    unistd::{Pid, pipe2, read},
};
use tokio::{
    process::{Child, Command},
    sync::oneshot,
};

use crate::mounts::MountPlan;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Spawns `cmd` from the process-wide spawner thread.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that created the child exits,
/// not the process. Tokio's blocking-pool threads exit after being idle for a
/// few seconds, and a current-thread runtime may live on a short-lived thread,
/// so a child started from there would be SIGKILLed at a random later moment.
/// One thread that lives as long as the process starts every child instead,
/// which makes the parent-death signal mean what we want: Oxflow died. This
/// holds for `posix_spawn` (the shim path) as much as for `fork`: the child's
/// parent is the calling thread either way.
pub(crate) async fn spawn(mut cmd: Command) -> io::Result<Child> {
    let handle = tokio::runtime::Handle::current();
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _runtime = handle.enter();
        let result = cmd.spawn().map(|child| Delivery(Some(child)));
        // Close our copies of the pipes moved into the pre_exec closure before
        // the caller reads the child's setup report.
        drop(cmd);
        let _ = tx.send(result);
    });
    spawner()
        .send(job)
        .map_err(|_| io::Error::other("the Oxflow process spawner thread is not running"))?;
    let mut delivery = rx.await.map_err(|_| {
        io::Error::other("the Oxflow process spawner thread failed while starting the process")
    })??;
    delivery
        .0
        .take()
        .ok_or_else(|| io::Error::other("the started process was lost"))
}

/// A started child on its way to the caller. If the caller's `run` future is
/// dropped before it takes the child, nobody would supervise the workload:
/// dropping the delivery kills the child's process group (the `Child` itself
/// is killed and reaped by tokio's `kill_on_drop`).
struct Delivery(Option<Child>);

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(pid) = self.0.as_ref().and_then(Child::id) {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

fn spawner() -> &'static mpsc::Sender<Job> {
    static SPAWNER: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let started = std::thread::Builder::new()
            .name("oxflow-spawner".into())
            .spawn(move || {
                for job in rx {
                    // A panic must not end this thread: its exit would SIGKILL every child.
                    if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
                        tracing::error!("A process spawn panicked on the spawner thread.");
                    }
                }
            });
        if let Err(error) = started {
            // `spawn` then reports that the thread is not running.
            tracing::error!(%error, "Could not start the process spawner thread.");
        }
        tx
    })
}

/// A step of the child's preparation, reported back through a pipe so that
/// the parent can say which step failed (std only passes back an errno).
///
/// The numeric codes are part of the shim protocol (see [`crate::shim`]):
/// change them only together with its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Setsid,
    Pdeathsig,
    ParentGone,
    /// Non-fatal: the memory limit could not be set.
    Rlimit,
    /// Non-fatal: the child could not join its cgroup.
    Cgroup,
    Unshare,
    UserNamespaceMaps,
    MakePrivate,
    Bind(u32),
    RemountReadOnly(u32),
    Chdir,
    /// Shim only: moving the report pipe off stdin and giving the program
    /// /dev/null instead.
    Stdin,
    /// Shim only: `execvp` of the program failed.
    Exec,
    /// Shim only: the shim could not read its arguments (an Oxflow of another
    /// version, or a bug).
    ShimArgs,
}

/// Not a failure: the shim is about to `exec` the program. A report that ends
/// without it (and without a failure) comes from a process that is not a shim.
pub(crate) const EXEC_REACHED: u32 = 100;

impl Stage {
    pub(crate) fn code(self) -> u32 {
        match self {
            Stage::Setsid => 1,
            Stage::Pdeathsig => 2,
            Stage::ParentGone => 3,
            Stage::Rlimit => 4,
            Stage::Cgroup => 5,
            Stage::Unshare => 6,
            Stage::UserNamespaceMaps => 7,
            Stage::MakePrivate => 8,
            Stage::Chdir => 9,
            Stage::Stdin => 10,
            Stage::Exec => 11,
            Stage::ShimArgs => 12,
            Stage::Bind(i) => 0x1000_0000 | i,
            Stage::RemountReadOnly(i) => 0x2000_0000 | i,
        }
    }

    fn from_code(code: u32) -> Option<Stage> {
        Some(match code {
            1 => Stage::Setsid,
            2 => Stage::Pdeathsig,
            3 => Stage::ParentGone,
            4 => Stage::Rlimit,
            5 => Stage::Cgroup,
            6 => Stage::Unshare,
            7 => Stage::UserNamespaceMaps,
            8 => Stage::MakePrivate,
            9 => Stage::Chdir,
            10 => Stage::Stdin,
            11 => Stage::Exec,
            12 => Stage::ShimArgs,
            c if c & 0xF000_0000 == 0x1000_0000 => Stage::Bind(c & 0x0FFF_FFFF),
            c if c & 0xF000_0000 == 0x2000_0000 => Stage::RemountReadOnly(c & 0x0FFF_FFFF),
            _ => return None,
        })
    }

    /// Whether the step failing stops the workload (limits never do).
    pub(crate) fn is_fatal(self) -> bool {
        !matches!(self, Stage::Rlimit | Stage::Cgroup)
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Stage::Setsid => "setsid",
            Stage::Pdeathsig => "prctl(PR_SET_PDEATHSIG)",
            Stage::ParentGone => "the Oxflow process exited during the start",
            Stage::Rlimit => "setrlimit(RLIMIT_AS)",
            Stage::Cgroup => "joining the workload's cgroup",
            Stage::Unshare => "unshare(CLONE_NEWNS)",
            Stage::UserNamespaceMaps => "writing the user namespace id maps",
            Stage::MakePrivate => "making / a private mount",
            Stage::Bind(_) => "bind mount",
            Stage::RemountReadOnly(_) => "read-only remount",
            Stage::Chdir => "chdir",
            Stage::Stdin => "replacing stdin with /dev/null",
            Stage::Exec => "exec",
            Stage::ShimArgs => "reading the spawn shim's arguments",
        }
    }
}

/// What the child does before it `exec`s the program, prepared in the parent
/// so that a forked child only makes system calls (no allocation after
/// `fork`). The exec shim decodes the same setup from its arguments and runs
/// the same code.
pub(crate) struct ChildSetup {
    /// The pid the child expects as its parent; when it differs, Oxflow died
    /// before the parent-death signal was armed.
    pub parent_pid: libc::pid_t,
    /// `RLIMIT_AS` in bytes.
    pub memory_limit: Option<u64>,
    /// The `cgroup.procs` file of the workload's cgroup.
    pub cgroup_procs: Option<CString>,
    /// A private mount namespace with these bind mounts.
    pub mounts: Option<std::sync::Arc<MountPlan>>,
}

/// One record of the child's setup report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StageFailure {
    pub stage: Stage,
    pub errno: Errno,
}

impl StageFailure {
    /// The errno as an `io::Error` (no allocation: usable after `fork`).
    pub(crate) fn io_error(self) -> io::Error {
        io::Error::from_raw_os_error(self.errno as i32)
    }
}

/// The read end of the setup report pipe.
pub(crate) struct Report(OwnedFd);

impl ChildSetup {
    /// Installs the setup as `cmd`'s pre_exec hook and returns the pipe on
    /// which the child reports failed steps.
    pub(crate) fn install(self, cmd: &mut Command) -> io::Result<Report> {
        // O_CLOEXEC: the child's copy closes at exec, so a successful start
        // leaves nothing behind; O_NONBLOCK on the read end because other
        // threads' children may hold the write end briefly.
        let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC)?;
        nix::fcntl::fcntl(&read_end, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        let setup = self;
        // SAFETY: the closure only makes async-signal-safe system calls on data
        // prepared before fork; it does not allocate or take locks.
        unsafe {
            cmd.pre_exec(move || {
                setup
                    .apply(write_end.as_raw_fd())
                    .map_err(StageFailure::io_error)
            });
        }
        Ok(Report(read_end))
    }

    /// Runs in the child (forked, or the exec shim) and reports failed steps
    /// on `report`. Async-signal-safe system calls only; a failure of a fatal
    /// step is returned after it was reported.
    pub(crate) fn apply(&self, report: libc::c_int) -> Result<(), StageFailure> {
        // SAFETY (whole function): plain libc calls on valid, NUL-terminated
        // buffers owned by `self`, in a single-threaded child.
        unsafe {
            if libc::setsid() < 0 {
                return Err(fail(report, Stage::Setsid));
            }
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) < 0
            {
                return Err(fail(report, Stage::Pdeathsig));
            }
            if libc::getppid() != self.parent_pid {
                let failure = StageFailure {
                    stage: Stage::ParentGone,
                    errno: Errno::ESRCH,
                };
                send(report, failure.stage.code(), libc::ESRCH);
                return Err(failure);
            }
            if let Some(limit) = self.memory_limit {
                let mut current = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                let mut limit = limit as libc::rlim_t;
                if libc::getrlimit(libc::RLIMIT_AS, &mut current) == 0
                    && current.rlim_max != libc::RLIM_INFINITY
                {
                    limit = limit.min(current.rlim_max);
                }
                // The hard limit too, so the workload cannot raise it again.
                let new = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &new) < 0 {
                    fail(report, Stage::Rlimit);
                }
            }
            if let Some(procs) = &self.cgroup_procs {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    fail(report, Stage::Cgroup);
                }
                if fd >= 0 {
                    libc::close(fd);
                }
            }
            if let Some(plan) = &self.mounts {
                plan.apply_in_child(report)?;
            }
        }
        Ok(())
    }
}

/// Reports `stage` with the current errno and returns it as a failure.
pub(crate) fn fail(report: libc::c_int, stage: Stage) -> StageFailure {
    let errno = Errno::last_raw();
    send(report, stage.code(), errno);
    StageFailure {
        stage,
        errno: Errno::from_raw(errno),
    }
}

/// Writes one 8-byte record (code, errno; little-endian) to the report pipe.
/// Async-signal-safe; a closed or invalid descriptor is ignored.
pub(crate) fn send(report: libc::c_int, code: u32, errno: i32) {
    let mut record = [0u8; 8];
    record[..4].copy_from_slice(&code.to_le_bytes());
    record[4..].copy_from_slice(&errno.to_le_bytes());
    // SAFETY: writing a stack buffer to a descriptor we own.
    unsafe {
        libc::write(report, record.as_ptr().cast(), record.len());
    }
}

impl Report {
    /// The steps the child reported as failed. Call after `spawn` returned:
    /// by then the child has written everything it will write.
    pub(crate) fn read(self) -> Vec<StageFailure> {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n @ 1..) = read(&self.0, &mut buf) {
            bytes.extend_from_slice(&buf[..n]);
        }
        failures(&bytes)
    }
}

/// The raw records of a report: (code, errno).
pub(crate) fn records(bytes: &[u8]) -> impl Iterator<Item = (u32, i32)> + '_ {
    bytes.chunks_exact(8).map(|r| {
        let code = u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
        let errno = i32::from_le_bytes([r[4], r[5], r[6], r[7]]);
        (code, errno)
    })
}

/// The failed steps of a report (other records are skipped).
pub(crate) fn failures(bytes: &[u8]) -> Vec<StageFailure> {
    records(bytes)
        .filter_map(|(code, errno)| {
            Some(StageFailure {
                stage: Stage::from_code(code)?,
                errno: Errno::from_raw(errno),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_codes_round_trip() {
        for stage in [
            Stage::Setsid,
            Stage::Pdeathsig,
            Stage::ParentGone,
            Stage::Rlimit,
            Stage::Cgroup,
            Stage::Unshare,
            Stage::UserNamespaceMaps,
            Stage::MakePrivate,
            Stage::Chdir,
            Stage::Stdin,
            Stage::Exec,
            Stage::ShimArgs,
            Stage::Bind(0),
            Stage::Bind(7),
            Stage::RemountReadOnly(3),
        ] {
            assert_eq!(Stage::from_code(stage.code()), Some(stage));
        }
        assert_eq!(Stage::from_code(0), None);
        assert_eq!(
            Stage::from_code(EXEC_REACHED),
            None,
            "a marker, not a stage"
        );
        assert!(!Stage::Cgroup.is_fatal());
        assert!(Stage::Bind(0).is_fatal());
    }
}
