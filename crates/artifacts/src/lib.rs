//! The artifact store: where task outputs live, addressed by URI.
//!
//! The local backend mints URIs that *are* absolute paths under the store's
//! root, exactly as `kfp.local` does: the KFP SDK then hands components
//! `artifact.path == artifact.uri`, nothing is copied before or after a task,
//! and `/gcs/…`-style FUSE paths never need to exist.
//!
//! Architecture invariant: URIs never escape the store's root through `..`;
//! [`ArtifactStore::resolve`] refuses any URI that would.
//!
//! Architecture invariant: what [`ArtifactStore::open`] hands out is opened
//! beneath the root without following a symlink at any step, and never lies
//! in Oxflow's internal task files ([`is_internal_name`]).

mod beneath;

use std::{
    ffi::OsStr,
    fs, io,
    os::unix::ffi::OsStrExt,
    path::{Component, Path, PathBuf},
};

use nix::sys::stat::{FileStat, SFlag};
use sha2::{Digest, Sha256};

/// The directory beside a task's outputs that holds Oxflow's own files for
/// the task: executor input and output, parameter files, the component's
/// source, its working directory and its log.
pub const INTERNAL_DIR: &str = ".kfp";

/// Whether a file name inside the store is Oxflow's own ([`INTERNAL_DIR`],
/// or a name starting with `.oxflow`): such paths are never served or listed.
///
/// Names that tasks' outputs get are sanitised so that they never start
/// with a dot, so no output can be hidden by this.
pub fn is_internal_name(name: &OsStr) -> bool {
    let b = name.as_bytes();
    b == INTERNAL_DIR.as_bytes() || b.starts_with(b".oxflow")
}

/// What can go wrong with artifact storage.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The URI's scheme has no backend here.
    #[error(
        "artifact URI {0:?} uses a scheme this artifact store cannot read (only local paths and file:// URIs are supported by the local store)"
    )]
    UnsupportedScheme(String),
    /// The URI would leave the store (for writes) or contains `..`.
    #[error("artifact URI {0:?} is not a normalised absolute path")]
    NotNormalised(String),
    /// The URI names a path outside the store's root.
    #[error(
        "artifact {0:?} is outside the artifact store; only artifacts Oxflow stored can be read here"
    )]
    Outside(String),
    /// The URI names Oxflow's internal files of a task (see [`is_internal_name`]).
    #[error(
        "artifact {0:?} lies in Oxflow's internal task files ({INTERNAL_DIR}), which the artifact store never serves; read a task's log with `oxflow logs` or /oxflow/v1/runs/RUN/tasks/TASK/log"
    )]
    Internal(String),
    /// A component of the path is a symbolic link.
    #[error(
        "artifact {0:?} goes through a symbolic link; the artifact store serves files only without following links"
    )]
    Symlink(String),
    /// Nothing is stored under the URI.
    #[error("artifact {0:?} does not exist (any more)")]
    NotFound(String),
    /// The URI names something that is neither a regular file nor a directory.
    #[error("artifact {0:?} is neither a file nor a directory")]
    NotAFile(String),
    /// File system error on a path.
    #[error("artifact I/O on {path}: {source}")]
    Io {
        /// The path being read or written.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// What [`ArtifactStore::open`] found.
#[derive(Debug)]
pub enum Opened {
    /// A regular file, opened for reading.
    File {
        /// The open file.
        file: fs::File,
        /// Its size in bytes when it was opened.
        len: u64,
    },
    /// A directory, opened for listing.
    Directory(Directory),
}

/// An open directory of the store.
#[derive(Debug)]
pub struct Directory {
    dir: nix::dir::Dir,
    path: PathBuf,
}

/// What a directory entry is (symlinks are reported, never followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// Anything else (FIFO, socket, device).
    Other,
}

/// One entry of a [`Listing`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The file name (lossily UTF-8).
    pub name: String,
    /// What it is.
    pub kind: EntryKind,
    /// The size of a regular file.
    pub size: Option<u64>,
}

/// A directory's entries, sorted by name.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The entries, Oxflow's internal ones left out.
    pub entries: Vec<DirEntry>,
    /// Whether there were more than the listing's limit.
    pub truncated: bool,
}

impl Directory {
    /// At most `max` of its entries (in directory order, then sorted by
    /// name), leaving out `.`, `..` and Oxflow's internal names.
    pub fn list(mut self, max: usize) -> Result<Listing> {
        let io_err = |e: nix::errno::Errno| ArtifactError::Io {
            path: self.path.clone(),
            source: e.into(),
        };
        let mut names = Vec::new();
        let mut truncated = false;
        for entry in self.dir.iter() {
            let entry = entry.map_err(io_err)?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes()).to_owned();
            if name == "." || name == ".." || is_internal_name(&name) {
                continue;
            }
            if names.len() >= max {
                truncated = true;
                break;
            }
            names.push(name);
        }
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            // Never following a link: an entry is described as it is.
            let st = nix::sys::stat::fstatat(
                &self.dir,
                name.as_os_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            );
            let (kind, size) = match st {
                Ok(st) => match file_kind(&st) {
                    EntryKind::File => (EntryKind::File, Some(st.st_size as u64)),
                    k => (k, None),
                },
                // Removed meanwhile: left out.
                Err(nix::errno::Errno::ENOENT) => continue,
                Err(e) => return Err(io_err(e)),
            };
            entries.push(DirEntry {
                name: name.to_string_lossy().into_owned(),
                kind,
                size,
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Listing { entries, truncated })
    }
}

fn file_kind(st: &FileStat) -> EntryKind {
    match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG => EntryKind::File,
        SFlag::S_IFDIR => EntryKind::Directory,
        SFlag::S_IFLNK => EntryKind::Symlink,
        _ => EntryKind::Other,
    }
}

/// Result alias for artifact operations.
pub type Result<T, E = ArtifactError> = std::result::Result<T, E>;

/// The local-directory artifact store.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    root: PathBuf,
}

impl ArtifactStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory everything lives under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The URI for output `key` of the task at `task_path` in `run_id`.
    ///
    /// `task_path` segments (`for-loop-2/3/square`) become directories, so each
    /// loop iteration gets its own folder, as in kfp.local.
    pub fn output_uri(&self, namespace: &str, run_id: &str, task_path: &str, key: &str) -> String {
        let mut p = self.root.join(sanitize(namespace)).join(sanitize(run_id));
        for seg in task_path.split('/') {
            p.push(sanitize(seg));
        }
        p.push(sanitize(key));
        p.to_string_lossy().into_owned()
    }

    /// The directory for a run's scratch files (executor outputs, logs).
    pub fn run_dir(&self, namespace: &str, run_id: &str) -> PathBuf {
        self.root.join(sanitize(namespace)).join(sanitize(run_id))
    }

    /// The local path that holds the bytes of `uri`.
    ///
    /// Accepts absolute paths and `file://` URIs; remote schemes are rejected
    /// until an object-store backend exists.
    pub fn resolve(&self, uri: &str) -> Result<PathBuf> {
        let raw = if let Some(rest) = uri.strip_prefix("file://") {
            rest
        } else if uri.contains("://") {
            return Err(ArtifactError::UnsupportedScheme(uri.to_owned()));
        } else {
            uri
        };
        let path = Path::new(raw);
        if !path.is_absolute()
            || path
                .components()
                .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        {
            return Err(ArtifactError::NotNormalised(uri.to_owned()));
        }
        Ok(path.to_path_buf())
    }

    /// Opens what `uri` names inside the store for reading, without
    /// following a symlink at any step and without checking a path before
    /// opening it (see [`beneath`]): a task that swaps a directory for a
    /// symlink while this runs makes the open fail, never lead out of the
    /// store. Oxflow's internal task files are refused.
    pub fn open(&self, uri: &str) -> Result<Opened> {
        self.open_with(uri, beneath::Walk::Auto)
    }

    fn open_with(&self, uri: &str, walk: beneath::Walk) -> Result<Opened> {
        let path = self.resolve(uri)?;
        let rel = path
            .strip_prefix(&self.root)
            .map_err(|_| ArtifactError::Outside(uri.to_owned()))?;
        if rel.components().any(|c| is_internal_name(c.as_os_str())) {
            return Err(ArtifactError::Internal(uri.to_owned()));
        }
        let classify =
            |e: io::Error, at: &Path| match e.raw_os_error().map(nix::errno::Errno::from_raw) {
                Some(nix::errno::Errno::ELOOP) => ArtifactError::Symlink(uri.to_owned()),
                Some(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR) => {
                    ArtifactError::NotFound(uri.to_owned())
                }
                Some(nix::errno::Errno::EXDEV) => ArtifactError::Outside(uri.to_owned()),
                _ => ArtifactError::Io {
                    path: at.to_path_buf(),
                    source: e,
                },
            };
        let root = beneath::open_root(&self.root).map_err(|e| classify(e, &self.root))?;
        let fd = beneath::open_beneath(&root, rel, walk).map_err(|e| classify(e, &path))?;
        let st = nix::sys::stat::fstat(&fd).map_err(|e| classify(e.into(), &path))?;
        match file_kind(&st) {
            EntryKind::File => Ok(Opened::File {
                file: fs::File::from(fd),
                len: st.st_size as u64,
            }),
            EntryKind::Directory => Ok(Opened::Directory(Directory {
                dir: nix::dir::Dir::from_fd(fd).map_err(|e| classify(e.into(), &path))?,
                path,
            })),
            _ => Err(ArtifactError::NotAFile(uri.to_owned())),
        }
    }

    /// Whether `uri` lies inside this store (as opposed to an imported external file).
    pub fn owns(&self, uri: &str) -> bool {
        self.resolve(uri)
            .map(|p| p.starts_with(&self.root))
            .unwrap_or(false)
    }

    /// `sha256:<hex>` of the content at `uri`, or `None` when nothing is there.
    ///
    /// A directory digests as the sorted list of its relative file paths and
    /// their contents, so the same tree always gives the same digest.
    pub fn digest(&self, uri: &str) -> Result<Option<String>> {
        let path = self.resolve(uri)?;
        digest_path(&path)
    }

    /// Removes everything stored for a run.
    pub fn delete_run(&self, namespace: &str, run_id: &str) -> Result<()> {
        let dir = self.run_dir(namespace, run_id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ArtifactError::Io { path: dir, source }),
        }
    }
}

/// Digest of a file or directory tree; `None` when the path does not exist.
pub fn digest_path(path: &Path) -> Result<Option<String>> {
    let io_err = |source| ArtifactError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    let mut h = Sha256::new();
    if meta.is_dir() {
        let mut files = Vec::new();
        walk(path, path, &mut files)?;
        files.sort();
        for rel in files {
            h.update(rel.to_string_lossy().as_bytes());
            h.update([0]);
            let full = path.join(&rel);
            hash_file(&full, &mut h)?;
            h.update([0]);
        }
    } else {
        hash_file(path, &mut h)?;
    }
    Ok(Some(format!("sha256:{}", hex::encode(h.finalize()))))
}

fn hash_file(path: &Path, h: &mut Sha256) -> Result<()> {
    let mut f = fs::File::open(path).map_err(|source| ArtifactError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    io::copy(&mut f, h).map_err(|source| ArtifactError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(())
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let rd = fs::read_dir(dir).map_err(|source| ArtifactError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in rd {
        let entry = entry.map_err(|source| ArtifactError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let p = entry.path();
        if p.is_dir() {
            walk(base, &p, out)?;
        } else if let Ok(rel) = p.strip_prefix(base) {
            out.push(rel.to_path_buf());
        }
    }
    Ok(())
}

/// Keeps a path segment to a safe character set so no user-chosen name can
/// produce `..`, an absolute path or a hidden file.
fn sanitize(seg: &str) -> String {
    let s: String = seg
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("_{s}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_uris_stay_under_the_root() {
        let s = ArtifactStore::new("/srv/a");
        assert_eq!(
            s.output_uri("default", "r1", "for-loop-2/3/square", "Output"),
            "/srv/a/default/r1/for-loop-2/3/square/Output"
        );
        let evil = s.output_uri("default", "r1", "../../etc", "..");
        assert!(s.owns(&evil), "{evil}");
        assert!(!evil.contains("/../"));
    }

    #[test]
    fn resolve_rejects_traversal_and_remote() {
        let s = ArtifactStore::new("/srv/a");
        assert_eq!(s.resolve("file:///x/y").unwrap(), PathBuf::from("/x/y"));
        assert!(matches!(
            s.resolve("gs://b/k"),
            Err(ArtifactError::UnsupportedScheme(_))
        ));
        assert!(matches!(
            s.resolve("/srv/a/../../etc/passwd"),
            Err(ArtifactError::NotNormalised(_))
        ));
        assert!(matches!(
            s.resolve("relative/x"),
            Err(ArtifactError::NotNormalised(_))
        ));
        assert!(!s.owns("/etc/passwd"));
    }

    fn opened(s: &ArtifactStore, p: &Path) -> Result<Opened> {
        s.open(&p.to_string_lossy())
    }

    #[test]
    fn open_reads_files_and_lists_directories_without_internal_names() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("artifacts");
        let s = ArtifactStore::new(&root);
        let task = root.join("default/r1/train");
        fs::create_dir_all(task.join(".kfp/secrets/tls")).unwrap();
        fs::create_dir_all(task.join("model")).unwrap();
        fs::write(task.join(".kfp/secrets/tls/crt"), "CERT").unwrap();
        fs::write(task.join(".kfp/log"), "log").unwrap();
        fs::write(task.join(".oxflow-write-probe-1"), "").unwrap();
        fs::write(task.join("metrics"), "12345").unwrap();
        std::os::unix::fs::symlink("metrics", task.join("link")).unwrap();

        match opened(&s, &task.join("metrics")).unwrap() {
            Opened::File { file, len } => {
                assert_eq!(len, 5);
                assert_eq!(io::read_to_string(file).unwrap(), "12345");
            }
            other => panic!("{other:?}"),
        }
        let Opened::Directory(dir) = opened(&s, &task).unwrap() else {
            panic!("a directory")
        };
        let listing = dir.list(100).unwrap();
        let names: Vec<_> = listing.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["link", "metrics", "model"]);
        assert_eq!(listing.entries[0].kind, EntryKind::Symlink);
        assert_eq!(listing.entries[1].size, Some(5));
        assert_eq!(listing.entries[2].kind, EntryKind::Directory);
        assert!(!listing.truncated);
        let Opened::Directory(dir) = opened(&s, &task).unwrap() else {
            panic!("a directory")
        };
        let listing = dir.list(2).unwrap();
        assert_eq!(listing.entries.len(), 2);
        assert!(listing.truncated);

        for internal in [
            task.join(".kfp"),
            task.join(".kfp/log"),
            task.join(".kfp/secrets/tls/crt"),
            task.join(".oxflow-write-probe-1"),
        ] {
            let e = opened(&s, &internal).unwrap_err();
            assert!(matches!(e, ArtifactError::Internal(_)), "{internal:?}: {e}");
        }
        let uri = format!("file://{}/.kfp//secrets/tls/crt", task.display());
        assert!(matches!(s.open(&uri), Err(ArtifactError::Internal(_))));
        assert!(matches!(
            opened(&s, &task.join("link")),
            Err(ArtifactError::Symlink(_))
        ));
        assert!(matches!(
            opened(&s, &task.join("nope")),
            Err(ArtifactError::NotFound(_))
        ));
        assert!(matches!(
            opened(&s, &task.join("metrics/x")),
            Err(ArtifactError::NotFound(_))
        ));
        assert!(matches!(
            opened(&s, Path::new("/etc/passwd")),
            Err(ArtifactError::Outside(_))
        ));
        assert!(matches!(
            opened(&s, &d.path().join("artifacts-evil/x")),
            Err(ArtifactError::Outside(_))
        ));
    }

    #[test]
    fn digests_files_and_trees() {
        let d = tempfile::tempdir().unwrap();
        let s = ArtifactStore::new(d.path());
        let f = d.path().join("f");
        let uri = f.to_string_lossy().into_owned();
        assert_eq!(s.digest(&uri).unwrap(), None);
        fs::write(&f, "hello").unwrap();
        let a = s.digest(&uri).unwrap().unwrap();
        assert!(a.starts_with("sha256:2cf24dba"));
        let dir = d.path().join("tree");
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("sub/x"), "1").unwrap();
        fs::write(dir.join("y"), "2").unwrap();
        let t1 = digest_path(&dir).unwrap().unwrap();
        fs::write(dir.join("y"), "3").unwrap();
        let t2 = digest_path(&dir).unwrap().unwrap();
        assert_ne!(t1, t2);
    }
}
