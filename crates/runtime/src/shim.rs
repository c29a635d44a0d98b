//! The exec shim: starting workloads without forking Oxflow.
//!
//! A `pre_exec` hook makes std `fork` the whole Oxflow process for every
//! workload, and `fork` copies the page tables: with a few hundred MiB
//! resident, each start costs milliseconds more. With a shim, the runtime
//! starts a small program with a plain `Command` (std then uses
//! `posix_spawn`, which glibc implements with `CLONE_VM | CLONE_VFORK`:
//! nothing is copied, whatever Oxflow's size), and that program does what the
//! hook did — new session, parent-death signal, memory limit, cgroup, mount
//! namespace, with the very same code — and then `exec`s the workload's
//! program.
//!
//! The shim is any executable whose `main` calls [`run_if_requested`] first:
//! the `oxflow` binary itself, or `oxflow-spawn` from this crate. The runtime
//! uses one when [`LocalConfig::spawn_shim`](crate::LocalConfig::spawn_shim)
//! names it.
//!
//! The protocol is private to one build of Oxflow (the version in the marker
//! only turns a mix-up into a clear error):
//! - argv: `shim __oxflow_spawn_v1 [options] -- program args…`, with the
//!   options `--parent PID`, `--rlimit-as BYTES`, `--cgroup-procs PATH`,
//!   `--mount-cwd PATH` and, per bind mount in mount order,
//!   `--bind ro|rw KEEP_FLAGS SOURCE TARGET`. Every value is an argument of
//!   its own, so paths travel as raw bytes.
//! - stdin: the write end of the report pipe. The shim moves it to a
//!   close-on-exec descriptor, gives the program /dev/null as stdin, and
//!   writes the same records as the fork path's hook, plus
//!   an "exec reached" record just before `execvp`. A successful `exec` closes the
//!   pipe. Passing the pipe as stdin means Oxflow never holds an inheritable
//!   descriptor (std `dup2`s it onto fd 0 in the child only), so a process
//!   that another thread starts at the same moment cannot keep the pipe open.
//! - environment, working directory, stdout and stderr: the workload's, set
//!   by the runtime on the shim's own `Command`.
//! - signals: the program gets what a forked child gets — the default for
//!   SIGPIPE, Oxflow's dispositions otherwise (see
//!   `restore_internal_signals` for the two that glibc's `posix_spawn`
//!   changes), and the spawner thread's signal mask.

use std::{
    ffi::{CStr, CString, OsStr, OsString},
    io,
    os::{
        fd::OwnedFd,
        unix::ffi::{OsStrExt, OsStringExt},
    },
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use nix::{errno::Errno, fcntl::OFlag, libc, unistd::pipe2};
use tokio::{io::AsyncReadExt, process::Command};

use crate::{
    mounts::{MountPlan, ShimBind},
    spawn::{ChildSetup, EXEC_REACHED, Stage, StageFailure, fail, failures, records, send},
};

/// The first argument that makes a binary act as the shim.
const MARKER: &str = "__oxflow_spawn_v1";

/// Any version of the marker: a binary of another Oxflow version says so
/// instead of running its normal `main` with odd arguments.
const MARKER_PREFIX: &str = "__oxflow_spawn";

/// Exit code of the shim when it could not prepare the process (the reason is
/// on stderr, i.e. in the workload's log, and in the report).
const EXIT_SETUP_FAILED: i32 = 125;
/// Exit code when the program exists but could not be executed (as in shells).
const EXIT_CANNOT_EXECUTE: i32 = 126;
/// Exit code when the program was not found (as in shells).
const EXIT_NOT_FOUND: i32 = 127;

/// Acts as the exec shim when this process was started as one, and returns
/// immediately otherwise.
///
/// Call it as the first statement of `main` of a binary that serves as
/// [`LocalConfig::spawn_shim`](crate::LocalConfig::spawn_shim), before any
/// thread, runtime or logger starts (the mount namespace step needs a
/// single-threaded process). When `argv[1]` is the shim marker it never
/// returns: it `exec`s the workload's program, or exits with 125 (the process
/// could not be prepared, or the arguments come from another Oxflow version),
/// 126 (the program could not be executed) or 127 (the program was not
/// found), after writing the reason to stderr.
pub fn run_if_requested() {
    ENTRY_CALLED.store(true, Ordering::Relaxed);
    let mut args = std::env::args_os().skip(1);
    let Some(first) = args.next() else {
        return;
    };
    if !first.as_bytes().starts_with(MARKER_PREFIX.as_bytes()) {
        return;
    }
    std::process::exit(shim_main(&first, args));
}

/// Set by [`run_if_requested`]: this binary can be its own shim.
static ENTRY_CALLED: AtomicBool = AtomicBool::new(false);

/// Whether `shim` is this very binary although its `main` never called
/// [`run_if_requested`]: it would then run as a whole new Oxflow for every
/// workload, with odd arguments.
pub(crate) fn is_self_without_entry(shim: &Path) -> bool {
    if ENTRY_CALLED.load(Ordering::Relaxed) {
        return false;
    }
    let own = std::env::current_exe().and_then(std::fs::canonicalize);
    matches!((std::fs::canonicalize(shim), own), (Ok(a), Ok(b)) if a == b)
}

fn shim_main(marker: &OsStr, args: impl Iterator<Item = OsString>) -> i32 {
    let report = take_report_pipe();
    let request = if marker == MARKER {
        decode(args)
    } else {
        Err(format!(
            "this binary speaks {MARKER}, but was started with {}: \
             the runtime and the shim come from different Oxflow versions",
            marker.to_string_lossy()
        ))
    };
    let request = match request {
        Ok(request) => request,
        Err(message) => {
            send(report, Stage::ShimArgs.code(), libc::EINVAL);
            say(format_args!("{message}"));
            return EXIT_SETUP_FAILED;
        }
    };
    restore_internal_signals(request.setup.parent_pid);
    // Everything that allocates happens above: the memory limit applies from
    // here on, and it may be small.
    let mut argv: Vec<*const libc::c_char> = request.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let prepared = null_stdin(report).and_then(|()| request.setup.apply(report));
    if let Err(failure) = prepared {
        say(format_args!(
            "could not prepare the process for `{}` ({}): {}",
            request.program.to_string_lossy(),
            failure.stage.describe(),
            failure.errno
        ));
        return EXIT_SETUP_FAILED;
    }
    // Written while SIGPIPE is still ignored: a runtime that stopped waiting
    // (timeout, cancellation) makes the write fail instead of killing us.
    send(report, EXEC_REACHED, 0);
    // SAFETY: signal dispositions, then execvp on NUL-terminated strings owned
    // by `request` and a null-terminated pointer array (it only returns on
    // failure). std ignored SIGPIPE when this process started, and an ignored
    // signal stays ignored across exec: the program gets the default, as the
    // fork path's child does.
    let errno = unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::execvp(request.program.as_ptr(), argv.as_ptr());
        let errno = Errno::last();
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        errno
    };
    send(report, Stage::Exec.code(), errno as i32);
    say(format_args!(
        "could not execute `{}`: {errno}",
        request.program.to_string_lossy(),
    ));
    if errno == Errno::ENOENT {
        EXIT_NOT_FOUND
    } else {
        EXIT_CANNOT_EXECUTE
    }
}

/// Writes one line to stderr (the workload's log) in a single `write` and
/// without allocating: the memory limit may already apply. Long lines are cut.
fn say(message: std::fmt::Arguments) {
    use std::io::Write;
    let mut buf = [0u8; 1024];
    let mut line = io::Cursor::new(&mut buf[..]);
    let complete = writeln!(line, "oxflow spawn shim: {message}").is_ok();
    let len = line.position() as usize;
    if !complete {
        buf[len - 1] = b'\n';
    }
    // SAFETY: writing an initialized stack buffer to stderr.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), len);
    }
}

/// Moves the report pipe (stdin) to a close-on-exec descriptor; -1 (reports
/// go nowhere) when stdin is not a pipe, i.e. the shim was started by hand.
fn take_report_pipe() -> libc::c_int {
    // SAFETY: fstat into a zeroed stat buffer and fcntl on fd 0.
    unsafe {
        let mut stat: libc::stat = std::mem::zeroed();
        if libc::fstat(0, &mut stat) != 0 || stat.st_mode & libc::S_IFMT != libc::S_IFIFO {
            return -1;
        }
        libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3)
    }
}

/// glibc's `posix_spawn` leaves its two internal signals (32 and 33, which
/// it uses for thread cancellation and `setuid` in threaded programs)
/// ignored in the child, and an ignored signal stays ignored across `exec`.
/// A forked child inherits Oxflow's disposition instead: ignored if Oxflow
/// ignores the signal, the default after `exec` otherwise. Restore that.
fn restore_internal_signals(parent: libc::pid_t) {
    let ignored_by_parent = std::fs::read_to_string(format!("/proc/{parent}/status"))
        .ok()
        .and_then(|status| {
            let mask = status.lines().find_map(|l| l.strip_prefix("SigIgn:"))?;
            u64::from_str_radix(mask.trim(), 16).ok()
        })
        .unwrap_or(0);
    for signal in [32, 33] {
        if ignored_by_parent & (1 << (signal - 1)) == 0 {
            // glibc's sigaction refuses these signals, so the system call
            // itself: an all-zero kernel `struct sigaction` is SIG_DFL with no
            // flags and an empty mask, whatever the architecture's layout.
            let default = [0u64; 4];
            // SAFETY: a valid, large enough action buffer; no old action.
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    signal,
                    default.as_ptr(),
                    std::ptr::null::<u64>(),
                    8,
                );
            }
        }
    }
}

/// Gives the program /dev/null as stdin, as the fork path does.
fn null_stdin(report: libc::c_int) -> Result<(), StageFailure> {
    // SAFETY: open/dup2/close on descriptors this process owns.
    unsafe {
        let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(fail(report, Stage::Stdin));
        }
        // The duplicate on fd 0 does not inherit O_CLOEXEC.
        if fd != 0 && libc::dup2(fd, 0) < 0 {
            let failure = fail(report, Stage::Stdin);
            libc::close(fd);
            return Err(failure);
        }
        if fd != 0 {
            libc::close(fd);
        }
    }
    Ok(())
}

/// What the shim was asked to do.
struct Request {
    setup: ChildSetup,
    program: CString,
    /// `program` and its arguments.
    argv: Vec<CString>,
}

/// The shim's arguments (after the marker) for `setup` and the workload's
/// program and arguments.
fn encode(setup: &ChildSetup, program: &str, args: &[String]) -> Vec<OsString> {
    let mut out: Vec<OsString> = vec![
        MARKER.into(),
        "--parent".into(),
        setup.parent_pid.to_string().into(),
    ];
    if let Some(limit) = setup.memory_limit {
        out.extend(["--rlimit-as".into(), limit.to_string().into()]);
    }
    let raw = |s: &CStr| OsStr::from_bytes(s.to_bytes()).to_os_string();
    if let Some(procs) = &setup.cgroup_procs {
        out.extend(["--cgroup-procs".into(), raw(procs)]);
    }
    if let Some(plan) = &setup.mounts {
        let (cwd, binds) = plan.for_shim();
        out.extend(["--mount-cwd".into(), raw(cwd)]);
        for (source, target, read_only, keep_flags) in binds {
            out.extend([
                "--bind".into(),
                if read_only { "ro" } else { "rw" }.into(),
                keep_flags.to_string().into(),
                raw(source),
                raw(target),
            ]);
        }
    }
    out.push("--".into());
    out.push(program.into());
    out.extend(args.iter().map(OsString::from));
    out
}

/// Reads what [`encode`] wrote (without the marker).
fn decode(args: impl Iterator<Item = OsString>) -> Result<Request, String> {
    let mut args = args.map(OsString::into_vec);
    let mut next = |what: &str| {
        args.next()
            .ok_or_else(|| format!("missing {what} in the arguments"))
    };
    let number = |bytes: Vec<u8>, what: &str| {
        String::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| format!("{what} is not a number"))
    };
    let c_string = |bytes: Vec<u8>| {
        CString::new(bytes).map_err(|_| "an argument contains a NUL byte".to_string())
    };
    let mut parent_pid = None;
    let mut memory_limit = None;
    let mut cgroup_procs = None;
    let mut mount_cwd = None;
    let mut binds = Vec::new();
    loop {
        let option = next("`--`")?;
        match option.as_slice() {
            b"--" => break,
            b"--parent" => {
                let pid = number(next("the parent pid")?, "the parent pid")?;
                parent_pid =
                    Some(libc::pid_t::try_from(pid).map_err(|_| "the parent pid is out of range")?);
            }
            b"--rlimit-as" => {
                memory_limit = Some(number(next("the memory limit")?, "the memory limit")?)
            }
            b"--cgroup-procs" => cgroup_procs = Some(c_string(next("the cgroup.procs path")?)?),
            b"--mount-cwd" => mount_cwd = Some(c_string(next("the working directory")?)?),
            b"--bind" => {
                let read_only = match next("the bind mode")?.as_slice() {
                    b"ro" => true,
                    b"rw" => false,
                    _ => return Err("the bind mode is neither ro nor rw".to_string()),
                };
                let keep_flags = number(next("the bind flags")?, "the bind flags")?;
                binds.push(ShimBind {
                    read_only,
                    keep_flags: keep_flags as libc::c_ulong,
                    source: c_string(next("the bind source")?)?,
                    target: c_string(next("the bind target")?)?,
                });
            }
            other => {
                return Err(format!(
                    "unknown argument {:?}",
                    String::from_utf8_lossy(other)
                ));
            }
        }
    }
    let argv = std::iter::from_fn(|| args.next())
        .map(c_string)
        .collect::<Result<Vec<_>, _>>()?;
    let program = argv
        .first()
        .cloned()
        .ok_or("missing the program after `--`")?;
    let mounts = match (mount_cwd, binds.is_empty()) {
        (_, true) => None,
        (Some(cwd), false) => Some(Arc::new(MountPlan::from_shim(cwd, binds))),
        (None, false) => return Err("--bind without --mount-cwd".to_string()),
    };
    Ok(Request {
        setup: ChildSetup {
            parent_pid: parent_pid.ok_or("missing --parent")?,
            memory_limit,
            cgroup_procs,
            mounts,
        },
        program,
        argv,
    })
}

/// The command that starts `program args…` through `shim` with `setup`, and
/// the report to await once it is spawned. The caller sets the environment,
/// working directory, stdout and stderr; stdin is the report pipe.
pub(crate) fn command(
    shim: &Path,
    setup: &ChildSetup,
    program: &str,
    args: &[String],
) -> io::Result<(Command, ShimReport)> {
    // O_CLOEXEC on both ends: the shim gets the write end as its stdin
    // through dup2, which clears the flag on the copy only.
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC)?;
    let mut cmd = Command::new(shim);
    cmd.args(encode(setup, program, args))
        .stdin(Stdio::from(write_end));
    Ok((cmd, ShimReport(read_end)))
}

/// The read end of a shim's report pipe.
pub(crate) struct ShimReport(OwnedFd);

/// What a shim reported.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ShimRecords {
    /// Steps that failed, fatal or not.
    pub failures: Vec<StageFailure>,
    /// The shim got as far as `exec`.
    pub exec_reached: bool,
}

impl ShimReport {
    /// Waits until the shim has `exec`ed the program or exited, and returns
    /// what it reported. Call after the command was spawned and dropped (the
    /// parent's copy of the write end must be closed).
    pub(crate) async fn read(self) -> io::Result<ShimRecords> {
        let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(self.0)?;
        let mut bytes = Vec::new();
        pipe.read_to_end(&mut bytes).await?;
        Ok(parse(&bytes))
    }
}

fn parse(bytes: &[u8]) -> ShimRecords {
    ShimRecords {
        failures: failures(bytes),
        exec_reached: records(bytes).any(|(code, _)| code == EXEC_REACHED),
    }
}

/// The shim path as the runtime uses it: absolute, because `posix_spawn`
/// changes into the workload's working directory before it executes the shim,
/// and a bare name would be searched on the workload's `PATH` (and make std
/// fall back to `fork`).
pub(crate) fn absolute(shim: PathBuf) -> PathBuf {
    std::path::absolute(&shim).unwrap_or(shim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mounts;
    use oxflow_core::Mount;

    fn decoded(setup: &ChildSetup, program: &str, args: &[&str]) -> Request {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let encoded = encode(setup, program, &args);
        assert_eq!(encoded[0], MARKER);
        decode(encoded.into_iter().skip(1)).unwrap()
    }

    #[test]
    fn setup_round_trips_through_the_arguments() {
        let plain = ChildSetup {
            parent_pid: 4242,
            memory_limit: None,
            cgroup_procs: None,
            mounts: None,
        };
        let r = decoded(&plain, "true", &[]);
        assert_eq!(r.setup.parent_pid, 4242);
        assert_eq!(r.setup.memory_limit, None);
        assert!(r.setup.cgroup_procs.is_none() && r.setup.mounts.is_none());
        assert_eq!(r.program.as_c_str(), c"true");
        assert_eq!(r.argv, vec![c"true".to_owned()]);

        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("odd \u{e9} source");
        std::fs::create_dir(&source).unwrap();
        let target = dir.path().join("t");
        let plan = mounts::prepare(
            &[Mount {
                source: source.clone(),
                target: target.clone(),
                read_only: true,
            }],
            dir.path(),
        )
        .unwrap()
        .unwrap();
        let full = ChildSetup {
            parent_pid: 1,
            memory_limit: Some(200 << 20),
            cgroup_procs: Some(c"/sys/fs/cgroup/x/cgroup.procs".to_owned()),
            mounts: Some(Arc::new(plan)),
        };
        // Arguments that look like options are the program's.
        let r = decoded(&full, "sh", &["-c", "--", "--parent"]);
        assert_eq!(r.setup.memory_limit, Some(200 << 20));
        assert_eq!(
            r.setup.cgroup_procs.as_deref(),
            Some(c"/sys/fs/cgroup/x/cgroup.procs")
        );
        let argv: Vec<_> = r.argv.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(argv, ["sh", "-c", "--", "--parent"]);
        let plan = r.setup.mounts.unwrap();
        let (cwd, binds) = plan.for_shim();
        assert_eq!(cwd.to_bytes(), dir.path().as_os_str().as_bytes());
        let binds: Vec<_> = binds.collect();
        assert_eq!(binds.len(), 1);
        assert_eq!(binds[0].0.to_bytes(), source.as_os_str().as_bytes());
        assert_eq!(binds[0].1.to_bytes(), target.as_os_str().as_bytes());
        assert!(binds[0].2, "read-only");
    }

    #[test]
    fn bad_arguments_are_rejected() {
        let check = |args: &[&str], expected: &str| {
            let args = args.iter().map(OsString::from);
            let err = decode(args).err().unwrap();
            assert!(
                err.contains(expected),
                "{err:?} should mention {expected:?}"
            );
        };
        check(&[], "missing `--`");
        check(&["--parent", "1", "--"], "missing the program");
        check(&["--", "true"], "missing --parent");
        check(&["--parent", "x", "--", "true"], "not a number");
        check(
            &["--parent", "1", "--what", "--", "true"],
            "unknown argument",
        );
        check(
            &[
                "--parent", "1", "--bind", "rw", "0", "/a", "/b", "--", "true",
            ],
            "without --mount-cwd",
        );
        check(
            &["--parent", "1", "--bind", "maybe", "0", "/a", "/b"],
            "neither ro nor rw",
        );
    }

    #[test]
    fn records_say_whether_exec_was_reached() {
        let record = |code: u32, errno: i32| {
            let mut r = code.to_le_bytes().to_vec();
            r.extend_from_slice(&errno.to_le_bytes());
            r
        };
        assert_eq!(parse(&[]), ShimRecords::default());
        let mut bytes = record(Stage::Cgroup.code(), libc::EACCES);
        bytes.extend(record(EXEC_REACHED, 0));
        bytes.extend(record(Stage::Exec.code(), libc::ENOENT));
        let parsed = parse(&bytes);
        assert!(parsed.exec_reached);
        assert_eq!(
            parsed.failures,
            vec![
                StageFailure {
                    stage: Stage::Cgroup,
                    errno: Errno::EACCES
                },
                StageFailure {
                    stage: Stage::Exec,
                    errno: Errno::ENOENT
                },
            ]
        );
    }
}
