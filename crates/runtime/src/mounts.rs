//! Bind mounts in a private mount namespace.
//!
//! The parent checks the sources, creates missing targets and prepares every
//! path as a C string; the child (between fork and exec, or in the exec shim,
//! which receives the prepared plan in its arguments) unshares its mount
//! namespace, makes `/` private so nothing leaks back to the host, and binds
//! each source onto its target. Missing targets are created on the host before
//! the workload starts and stay there (empty) afterwards: a mount point must
//! exist in the namespace the mount is made from.

use std::{
    ffi::{CStr, CString},
    io,
    os::unix::ffi::OsStrExt,
    path::Path,
};

use nix::{
    libc,
    sys::statvfs::{FsFlags, statvfs},
};
use oxflow_core::Mount;

use crate::{
    error::RuntimeError,
    spawn::{Stage, StageFailure, fail},
};

/// Mounts ready to apply in the child.
pub(crate) struct MountPlan {
    binds: Vec<Bind>,
    /// The working directory, entered again after the mounts so that a working
    /// directory inside a mount target sees the mounted content.
    cwd: CString,
    uid_map: CString,
    gid_map: CString,
}

struct Bind {
    mount: Mount,
    source: CString,
    target: CString,
    /// Flags the read-only remount must keep (nosuid, nodev, …): the kernel
    /// refuses to clear them inside a user namespace.
    keep_flags: libc::c_ulong,
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the path contains a NUL byte"))
}

/// Checks and prepares `mounts`; `None` when nothing needs mounting (no mounts,
/// or only mounts whose source is their target).
pub(crate) fn prepare(mounts: &[Mount], cwd: &Path) -> Result<Option<MountPlan>, RuntimeError> {
    let mut needed: Vec<&Mount> = mounts
        .iter()
        .filter(|m| !same_place(&m.source, &m.target))
        .collect();
    if needed.is_empty() {
        return Ok(None);
    }
    // Parents before children, so that /data/in is not hidden by a later /data.
    needed.sort_by_key(|m| m.target.components().count());

    let mut binds = Vec::with_capacity(needed.len());
    for mount in needed {
        let path_error = |what, error| RuntimeError::MountPath {
            mount: mount.clone(),
            what,
            error,
        };
        let source_meta = std::fs::metadata(&mount.source)
            .map_err(|e| path_error("the source is not usable", e))?;
        if std::fs::symlink_metadata(&mount.target).is_err() {
            create_target(&mount.target, source_meta.is_dir())
                .map_err(|e| path_error("could not create the target", e))?;
        }
        let keep_flags = statvfs(&mount.source)
            .map(|s| locked_flags(s.flags()))
            .unwrap_or(0);
        binds.push(Bind {
            mount: mount.clone(),
            source: c_path(&mount.source).map_err(|e| path_error("the source is not usable", e))?,
            target: c_path(&mount.target).map_err(|e| path_error("the target is not usable", e))?,
            keep_flags,
        });
    }
    let cwd = c_path(cwd).map_err(|error| RuntimeError::WorkingDir {
        path: cwd.to_path_buf(),
        error,
    })?;
    let (uid_map, gid_map) = id_maps();
    Ok(Some(MountPlan {
        binds,
        cwd,
        uid_map,
        gid_map,
    }))
}

/// The user namespace id maps that map our own effective ids to themselves.
fn id_maps() -> (CString, CString) {
    let uid = nix::unistd::geteuid();
    let gid = nix::unistd::getegid();
    // Digits, spaces and a newline: never a NUL byte.
    let map = |line: String| CString::new(line).unwrap_or_default();
    (
        map(format!("{uid} {uid} 1\n")),
        map(format!("{gid} {gid} 1\n")),
    )
}

/// One bind mount as the exec shim receives it.
pub(crate) struct ShimBind {
    pub source: CString,
    pub target: CString,
    pub read_only: bool,
    pub keep_flags: libc::c_ulong,
}

fn same_place(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Creates an empty directory (or, for a file source, an empty file) to mount onto.
fn create_target(target: &Path, dir: bool) -> io::Result<()> {
    if dir {
        return std::fs::create_dir_all(target);
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(target)
        .map(drop)
}

fn locked_flags(flags: FsFlags) -> libc::c_ulong {
    let pairs = [
        (FsFlags::ST_NOSUID, libc::MS_NOSUID),
        (FsFlags::ST_NODEV, libc::MS_NODEV),
        (FsFlags::ST_NOEXEC, libc::MS_NOEXEC),
        (FsFlags::ST_NOATIME, libc::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, libc::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, libc::MS_RELATIME),
    ];
    pairs
        .iter()
        .filter(|(st, _)| flags.contains(*st))
        .fold(0, |acc, (_, ms)| acc | ms)
}

impl MountPlan {
    /// The plan as the exec shim rebuilds it from its arguments. The id maps
    /// are computed again: the shim runs with the runtime's effective ids.
    pub(crate) fn from_shim(cwd: CString, binds: Vec<ShimBind>) -> MountPlan {
        let binds = binds
            .into_iter()
            .map(|b| Bind {
                mount: Mount {
                    source: std::ffi::OsStr::from_bytes(b.source.as_bytes()).into(),
                    target: std::ffi::OsStr::from_bytes(b.target.as_bytes()).into(),
                    read_only: b.read_only,
                },
                source: b.source,
                target: b.target,
                keep_flags: b.keep_flags,
            })
            .collect();
        let (uid_map, gid_map) = id_maps();
        MountPlan {
            binds,
            cwd,
            uid_map,
            gid_map,
        }
    }

    /// The plan as the exec shim needs it: the working directory and each
    /// bind, in mount order.
    pub(crate) fn for_shim(
        &self,
    ) -> (
        &CStr,
        impl Iterator<Item = (&CStr, &CStr, bool, libc::c_ulong)>,
    ) {
        let binds = self.binds.iter().map(|b| {
            (
                b.source.as_c_str(),
                b.target.as_c_str(),
                b.mount.read_only,
                b.keep_flags,
            )
        });
        (self.cwd.as_c_str(), binds)
    }

    /// Runs in the forked child or the exec shim. Async-signal-safe system calls only.
    pub(crate) fn apply_in_child(&self, report: libc::c_int) -> Result<(), StageFailure> {
        // SAFETY (whole function): libc calls on NUL-terminated buffers owned by
        // `self`, in the single-threaded child between fork and exec, or in
        // the single-threaded exec shim.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNS) < 0 {
                // Not privileged: a user namespace grants the mount capability
                // over a mount namespace of our own, mapping our ids to themselves.
                let first = nix::errno::Errno::last_raw();
                if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) < 0 {
                    *libc::__errno_location() = first;
                    return Err(fail(report, Stage::Unshare));
                }
                let maps: [(&[u8], &[u8]); 3] = [
                    (b"/proc/self/setgroups\0", b"deny"),
                    (b"/proc/self/uid_map\0", self.uid_map.as_bytes()),
                    (b"/proc/self/gid_map\0", self.gid_map.as_bytes()),
                ];
                for (path, content) in maps {
                    let fd = libc::open(path.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(fail(report, Stage::UserNamespaceMaps));
                    }
                    let written = libc::write(fd, content.as_ptr().cast(), content.len());
                    libc::close(fd);
                    if written != content.len() as isize {
                        return Err(fail(report, Stage::UserNamespaceMaps));
                    }
                }
            }
            let none = std::ptr::null::<libc::c_char>();
            if libc::mount(
                none,
                c"/".as_ptr(),
                none,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) < 0
            {
                return Err(fail(report, Stage::MakePrivate));
            }
            for (i, bind) in self.binds.iter().enumerate() {
                let i = i as u32;
                let (source, target) = (bind.source.as_ptr(), bind.target.as_ptr());
                if libc::mount(
                    source,
                    target,
                    none,
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ) < 0
                {
                    return Err(fail(report, Stage::Bind(i)));
                }
                if bind.mount.read_only {
                    let flags =
                        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | bind.keep_flags;
                    if libc::mount(none, target, none, flags, std::ptr::null()) < 0 {
                        return Err(fail(report, Stage::RemountReadOnly(i)));
                    }
                }
            }
            if libc::chdir(self.cwd.as_ptr()) < 0 {
                return Err(fail(report, Stage::Chdir));
            }
        }
        Ok(())
    }

    /// The error for a failed step the child reported.
    pub(crate) fn error(&self, program: &str, failure: StageFailure) -> RuntimeError {
        let first = || self.binds[0].mount.clone();
        let bind = |i: u32| {
            self.binds
                .get(i as usize)
                .map(|b| b.mount.clone())
                .unwrap_or_else(first)
        };
        match failure.stage {
            Stage::Unshare | Stage::UserNamespaceMaps | Stage::MakePrivate => {
                RuntimeError::MountNamespace {
                    mount: first(),
                    errno: failure.errno,
                }
            }
            Stage::Bind(i) => RuntimeError::Mount {
                mount: bind(i),
                read_only_step: false,
                errno: failure.errno,
            },
            Stage::RemountReadOnly(i) => RuntimeError::Mount {
                mount: bind(i),
                read_only_step: true,
                errno: failure.errno,
            },
            stage => RuntimeError::Setup {
                program: program.to_string(),
                step: stage.describe(),
                errno: failure.errno,
            },
        }
    }

    /// The targets, in mount order (for tests and logs).
    #[cfg(test)]
    fn targets(&self) -> Vec<std::path::PathBuf> {
        self.binds.iter().map(|b| b.mount.target.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use nix::errno::Errno;

    use super::*;

    fn mount(source: &Path, target: &Path, read_only: bool) -> Mount {
        Mount {
            source: source.to_path_buf(),
            target: target.to_path_buf(),
            read_only,
        }
    }

    #[test]
    fn same_source_and_target_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let plan = prepare(&[mount(dir.path(), dir.path(), true)], dir.path()).unwrap();
        assert!(plan.is_none());
        assert!(prepare(&[], dir.path()).unwrap().is_none());
    }

    #[test]
    fn missing_targets_are_created_parents_first() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("f.txt"), "x").unwrap();
        let deep = dir.path().join("t/a/b");
        let shallow = dir.path().join("t/a");
        let file_target = dir.path().join("files/f.txt");
        let plan = prepare(
            &[
                mount(&src, &deep, false),
                mount(&src, &shallow, true),
                mount(&src.join("f.txt"), &file_target, true),
            ],
            dir.path(),
        )
        .unwrap()
        .unwrap();
        assert!(deep.is_dir());
        assert!(shallow.is_dir());
        assert!(
            file_target.is_file(),
            "a file source gets an empty file as its target"
        );
        assert_eq!(
            plan.targets(),
            vec![shallow, file_target, deep],
            "stable order by depth"
        );
    }

    #[test]
    fn missing_source_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = prepare(
            &[mount(
                &dir.path().join("nope"),
                &dir.path().join("t"),
                false,
            )],
            dir.path(),
        )
        .err()
        .unwrap();
        let text = err.to_string();
        assert!(
            text.contains("nope") && text.contains("source is not usable"),
            "{text}"
        );
        assert!(
            !dir.path().join("t").exists(),
            "no target is created for a bad source"
        );
    }

    #[test]
    fn child_failures_name_the_mount() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::create_dir(&a).unwrap();
        let plan = prepare(&[mount(&a, &b, true)], dir.path())
            .unwrap()
            .unwrap();
        let ns = plan.error(
            "python3",
            StageFailure {
                stage: Stage::Unshare,
                errno: Errno::EPERM,
            },
        );
        assert!(matches!(ns, RuntimeError::MountNamespace { .. }), "{ns}");
        assert!(ns.to_string().contains("user namespaces"));
        let ro = plan.error(
            "python3",
            StageFailure {
                stage: Stage::RemountReadOnly(0),
                errno: Errno::EPERM,
            },
        );
        assert!(
            matches!(ro, RuntimeError::Mount { read_only_step: true, ref mount, .. } if mount.target == b)
        );
        let other = plan.error(
            "python3",
            StageFailure {
                stage: Stage::Setsid,
                errno: Errno::EPERM,
            },
        );
        assert!(other.to_string().contains("setsid"));
    }
}
