//! The artifact store: where task outputs live, addressed by URI.
//!
//! The local backend mints URIs that *are* absolute paths under the store's
//! root, exactly as `kfp.local` does: the KFP SDK then hands components
//! `artifact.path == artifact.uri`, nothing is copied before or after a task,
//! and `/gcs/…`-style FUSE paths never need to exist.
//!
//! Architecture invariant: URIs never escape the store's root through `..`;
//! [`ArtifactStore::resolve`] refuses any URI that would.

use std::{
    fs, io,
    path::{Component, Path, PathBuf},
};

use sha2::{Digest, Sha256};

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
