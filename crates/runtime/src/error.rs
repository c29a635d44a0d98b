use std::{io, path::PathBuf};

use nix::errno::Errno;
use oxflow_core::Mount;

/// Why a runtime could not run a workload (a workload that runs and fails is
/// an [`Outcome`](crate::Outcome), not an error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The program could not be started.
    #[error("could not start `{program}`: {error}{hint}", hint = spawn_hint(.error))]
    Spawn {
        /// The program as the workload named it.
        program: String,
        /// What the operating system said.
        error: io::Error,
    },

    /// The exec shim (see `LocalConfig::spawn_shim`) could not be started, or
    /// it did not start the program.
    #[error(
        "could not start `{program}` through the spawn shim {}: {message}; the shim must be an \
         executable whose main calls oxflow_runtime::shim::run_if_requested() first, from the \
         same Oxflow build (or configure no shim to fork instead)",
        .shim.display()
    )]
    SpawnShim {
        /// The program as the workload named it.
        program: String,
        /// The configured shim.
        shim: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// The log file (or its directory) could not be created.
    #[error("could not create the log file {}: {error}", .path.display())]
    LogFile {
        /// The workload's `log_path`.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },

    /// The working directory could not be created.
    #[error("could not prepare the working directory {}: {error}", .path.display())]
    WorkingDir {
        /// The working directory (the workload's or a scratch directory).
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },

    /// A mount's source does not exist or its target could not be created.
    #[error(
        "mount {} -> {}: {what}: {error}",
        .mount.source.display(),
        .mount.target.display()
    )]
    MountPath {
        /// The mount as the workload asked for it.
        mount: Mount,
        /// Which part failed ("the source is not usable", "could not create the target").
        what: &'static str,
        /// What the operating system said.
        error: io::Error,
    },

    /// The workload could not get a private mount namespace.
    #[error(
        "cannot mount {} -> {}: creating a private mount namespace failed ({errno}); \
         bind mounts need root (CAP_SYS_ADMIN) or unprivileged user namespaces \
         (sysctl user.max_user_namespaces > 0, and kernel.unprivileged_userns_clone=1 where it exists); \
         run Oxflow as root, enable user namespaces, or remove the mount",
        .mount.source.display(),
        .mount.target.display()
    )]
    MountNamespace {
        /// The first mount of the workload.
        mount: Mount,
        /// What the kernel said.
        errno: Errno,
    },

    /// A bind mount (or its read-only remount) failed inside the namespace.
    #[error(
        "could not bind-mount {} onto {}{}: {errno}; this needs CAP_SYS_ADMIN in the workload's \
         mount namespace (root, or an unprivileged user namespace) and a source the Oxflow user can read",
        .mount.source.display(),
        .mount.target.display(),
        if *.read_only_step { " read-only" } else { "" }
    )]
    Mount {
        /// The mount that failed.
        mount: Mount,
        /// Whether the read-only remount (rather than the bind itself) failed.
        read_only_step: bool,
        /// What the kernel said.
        errno: Errno,
    },

    /// Preparing the child process failed before the program could start.
    #[error("could not prepare the process for `{program}` ({step}): {errno}")]
    Setup {
        /// The program as the workload named it.
        program: String,
        /// The step that failed (`setsid`, `prctl(PR_SET_PDEATHSIG)`, …).
        step: &'static str,
        /// What the kernel said.
        errno: Errno,
    },

    /// Waiting for the process failed; its fate is unknown.
    #[error("lost track of `{program}`: {error}")]
    Wait {
        /// The program as the workload named it.
        program: String,
        /// What the operating system said.
        error: io::Error,
    },

    /// The warm Python executor failed while serving the workload.
    #[error(
        "the warm Python executor for `{program}` failed: {message}; \
         running the workload again starts a fresh executor (or set warm_python to false for this workload)"
    )]
    WarmExecutor {
        /// The interpreter the fork server runs.
        program: String,
        /// What happened.
        message: String,
    },
}

fn spawn_hint(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::NotFound => " (is it installed and on PATH?)",
        io::ErrorKind::PermissionDenied => " (is it executable?)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount() -> Mount {
        Mount {
            source: "/data/in".into(),
            target: "/mnt/in".into(),
            read_only: true,
        }
    }

    #[test]
    fn messages_name_what_failed() {
        let check = |e: RuntimeError, parts: &[&str]| {
            let text = e.to_string();
            for part in parts {
                assert!(text.contains(part), "{text:?} should mention {part:?}");
            }
        };
        check(
            RuntimeError::Spawn {
                program: "nope".into(),
                error: io::Error::from(io::ErrorKind::NotFound),
            },
            &["`nope`", "installed and on PATH"],
        );
        check(
            RuntimeError::MountNamespace {
                mount: mount(),
                errno: Errno::EPERM,
            },
            &["/data/in", "/mnt/in", "EPERM", "root", "user namespaces"],
        );
        check(
            RuntimeError::Mount {
                mount: mount(),
                read_only_step: true,
                errno: Errno::EPERM,
            },
            &["/data/in", "/mnt/in", "read-only", "CAP_SYS_ADMIN"],
        );
        check(
            RuntimeError::SpawnShim {
                program: "true".into(),
                shim: "/opt/oxflow-spawn".into(),
                message: "No such file or directory (os error 2)".into(),
            },
            &[
                "`true`",
                "/opt/oxflow-spawn",
                "No such file",
                "run_if_requested",
            ],
        );
        check(
            RuntimeError::LogFile {
                path: "/logs/a.log".into(),
                error: io::Error::from(io::ErrorKind::PermissionDenied),
            },
            &["/logs/a.log"],
        );
    }
}
