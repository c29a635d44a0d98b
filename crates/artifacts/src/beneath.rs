//! Opening paths beneath a directory without following symbolic links at
//! any step.
//!
//! Checking a path and then opening it is a race: a task that swaps one of
//! the path's directories for a symlink between the check and the open gets
//! the symlink's target read. Here nothing is checked by name: the kernel
//! resolves the path relative to a descriptor of the root with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, or, where `openat2` is
//! missing (Linux before 5.6, some seccomp profiles), the walk goes one
//! component at a time with `openat(O_NOFOLLOW)`, each relative to the
//! descriptor of the directory before it. Either way a symlink anywhere in
//! the path fails the open with `ELOOP`.

use std::{
    ffi::OsStr,
    io,
    os::fd::{AsFd, OwnedFd},
    path::{Component, Path},
    sync::atomic::{AtomicBool, Ordering},
};

use nix::{
    errno::Errno,
    fcntl::{OFlag, OpenHow, ResolveFlag, openat, openat2},
    sys::stat::Mode,
};

/// How a path is resolved; [`Walk::Auto`] outside tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Walk {
    /// `openat2` when the kernel has it, else [`Walk::Components`].
    Auto,
    /// `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` only.
    #[cfg(test)]
    Openat2,
    /// One `openat(O_NOFOLLOW)` per component.
    #[cfg(test)]
    Components,
}

/// Set once `openat2` was found missing, so that the fallback is taken
/// at once from then on.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Flags of the final open: read-only, never a symlink, never the
/// controlling terminal, and without blocking on a FIFO a task left there
/// (the caller refuses anything that is not a file or a directory).
fn final_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW | OFlag::O_NOCTTY | OFlag::O_NONBLOCK
}

/// Opens the directory `root` (following symlinks: the root is the
/// operator's choice, not a task's).
pub(crate) fn open_root(root: &Path) -> io::Result<OwnedFd> {
    let fd = nix::fcntl::open(
        root,
        OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_DIRECTORY,
        Mode::empty(),
    )?;
    Ok(fd)
}

/// Opens `rel` (relative, made of normal components only) beneath `root`
/// read-only, refusing symlinks at every step (`ELOOP`).
pub(crate) fn open_beneath(root: &impl AsFd, rel: &Path, walk: Walk) -> io::Result<OwnedFd> {
    let parts = components(rel)?;
    let use_openat2 = match walk {
        Walk::Auto => !NO_OPENAT2.load(Ordering::Relaxed),
        #[cfg(test)]
        Walk::Openat2 => true,
        #[cfg(test)]
        Walk::Components => false,
    };
    if use_openat2 {
        let how = OpenHow::new().flags(final_flags()).resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
        let path = if parts.is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let mut tries = 0;
        loop {
            match openat2(root.as_fd(), path, how) {
                Ok(fd) => return Ok(fd),
                // No openat2 here (old kernel, or a seccomp filter that
                // answers EPERM for system calls it does not know).
                Err(Errno::ENOSYS | Errno::EPERM) if walk == Walk::Auto => {
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                    break;
                }
                // The kernel could not rule out a race with a rename; retry.
                Err(Errno::EAGAIN) if tries < 16 => tries += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }
    walk_components(root, &parts)
}

fn components(rel: &Path) -> io::Result<Vec<&OsStr>> {
    rel.components()
        .map(|c| match c {
            Component::Normal(s) => Ok(s),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a plain relative path", rel.display()),
            )),
        })
        .collect()
}

/// The fallback: each directory opened relative to the one before it with
/// `O_NOFOLLOW | O_DIRECTORY`, so a component swapped for a symlink at any
/// moment fails the walk instead of leading out.
fn walk_components(root: &impl AsFd, parts: &[&OsStr]) -> io::Result<OwnedFd> {
    let dir_flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW | OFlag::O_DIRECTORY;
    let Some((last, dirs)) = parts.split_last() else {
        return Ok(openat(root.as_fd(), ".", dir_flags, Mode::empty())?);
    };
    let mut current: Option<OwnedFd> = None;
    for part in dirs {
        let parent = match &current {
            None => root.as_fd(),
            Some(fd) => fd.as_fd(),
        };
        let next = match openat(parent, *part, dir_flags, Mode::empty()) {
            Ok(fd) => fd,
            // `O_DIRECTORY | O_NOFOLLOW` on a symlink fails with ENOTDIR;
            // report it as openat2 does.
            Err(Errno::ENOTDIR) if is_symlink(parent, part) => return Err(Errno::ELOOP.into()),
            Err(e) => return Err(e.into()),
        };
        current = Some(next);
    }
    let fd = match &current {
        None => openat(root.as_fd(), *last, final_flags(), Mode::empty())?,
        Some(fd) => openat(fd.as_fd(), *last, final_flags(), Mode::empty())?,
    };
    Ok(fd)
}

fn is_symlink(dir: std::os::fd::BorrowedFd<'_>, name: &OsStr) -> bool {
    nix::sys::stat::fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        .is_ok_and(|st| st.st_mode & nix::libc::S_IFMT == nix::libc::S_IFLNK)
}

#[cfg(test)]
mod tests {
    use std::{
        io::Read,
        sync::{
            Arc,
            atomic::{AtomicBool, AtomicU64},
        },
    };

    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};

    use super::*;

    fn read(fd: OwnedFd) -> io::Result<String> {
        let mut s = String::new();
        std::fs::File::from(fd).read_to_string(&mut s)?;
        Ok(s)
    }

    fn check(walk: Walk) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/f"), "inside").unwrap();
        std::fs::write(d.path().join("secret"), "outside").unwrap();
        std::os::unix::fs::symlink(d.path(), root.join("a/up")).unwrap();
        std::os::unix::fs::symlink("b", root.join("a/rel")).unwrap();
        std::os::unix::fs::symlink("f", root.join("a/b/g")).unwrap();
        let fd = open_root(&root).unwrap();
        let open = |p: &str| open_beneath(&fd, Path::new(p), walk);

        assert_eq!(read(open("a/b/f").unwrap()).unwrap(), "inside");
        assert!(open("").is_ok(), "the root itself");
        assert!(open("a/b").is_ok(), "a directory");
        for p in ["a/up/secret", "a/up", "a/rel/f", "a/b/g"] {
            let e = open(p).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc_eloop()), "{walk:?} {p}: {e}");
        }
        assert_eq!(
            open("a/nope").unwrap_err().kind(),
            io::ErrorKind::NotFound,
            "{walk:?}"
        );
        assert_eq!(
            open("a/b/f/x").unwrap_err().raw_os_error(),
            Some(Errno::ENOTDIR as i32)
        );
        for p in ["../secret", "/etc/passwd", "a/../a/b/f"] {
            assert!(open(p).is_err(), "{walk:?} {p}");
        }
    }

    fn libc_eloop() -> i32 {
        Errno::ELOOP as i32
    }

    #[test]
    fn symlinks_are_refused_at_every_step() {
        check(Walk::Openat2);
        check(Walk::Components);
        check(Walk::Auto);
    }

    /// A second thread swaps directory `a` with a symlink to a directory
    /// outside the root as fast as it can while this thread opens `a/f`
    /// again and again: no open may ever read the outside file.
    fn race(walk: Walk, attempts: u64) -> (u64, u64) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let outside = d.path().join("outside");
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("a/f"), "inside").unwrap();
        std::fs::write(outside.join("f"), "outside").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("swap")).unwrap();

        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicU64::new(0));
        let swapper = {
            let (stop, swaps, root) = (stop.clone(), swaps.clone(), root.clone());
            std::thread::spawn(move || {
                let (a, b) = (root.join("a"), root.join("swap"));
                while !stop.load(Ordering::Relaxed) {
                    renameat2(AT_FDCWD, &a, AT_FDCWD, &b, RenameFlags::RENAME_EXCHANGE).unwrap();
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let fd = open_root(&root).unwrap();
        let (mut inside, mut outside_reads) = (0, 0);
        for _ in 0..attempts {
            if let Ok(f) = open_beneath(&fd, Path::new("a/f"), walk) {
                match read(f).as_deref() {
                    Ok("inside") => inside += 1,
                    Ok(_) => outside_reads += 1,
                    Err(_) => {}
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();
        assert!(swaps.load(Ordering::Relaxed) > 0, "the swapper ran");
        (inside, outside_reads)
    }

    #[test]
    fn a_directory_swapped_for_a_symlink_never_leads_outside() {
        const ATTEMPTS: u64 = 20_000;
        for walk in [Walk::Openat2, Walk::Components] {
            let (inside, outside) = race(walk, ATTEMPTS);
            eprintln!(
                "{walk:?}: {ATTEMPTS} opens during swaps, {inside} read inside, {outside} outside"
            );
            assert_eq!(outside, 0, "{walk:?}: reads of the outside file");
            assert!(inside > 0, "{walk:?}: some opens found the directory");
        }
    }
}
