//! Per-attempt scratch space for what must never enter the artifact store:
//! the values of secrets mounted with `use_secret_as_volume`.
//!
//! Layout: `<data dir>/scratch/secrets/<owner>/<attempt>/<n>/<key>`, where
//! `<owner>` is the engine's owner id (`host:pid:start-ticks`), `<attempt>`
//! is unique per task attempt and `<n>` numbers the attempt's secret
//! volumes (secret names never become paths). Directories are 0700, files
//! 0600. The runtime bind-mounts `<n>` read-only at the mount path the
//! component asked for, so the component sees the same files as before.
//!
//! An attempt's directory is removed when its [`AttemptDir`] drops: when
//! the attempt ends, whether it succeeded, failed or was cancelled, and
//! when its future is dropped. A process that dies leaves its owner
//! directory behind; [`SecretScratch::sweep`], run whenever an engine
//! starts, removes the directories of owners on this host that are gone.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The secret scratch space of one engine.
#[derive(Debug)]
pub(crate) struct SecretScratch {
    base: PathBuf,
    owner: String,
}

impl SecretScratch {
    /// Scratch space under `base` (`<data dir>/scratch/secrets`) for the
    /// engine whose owner id is `owner`.
    pub(crate) fn new(base: PathBuf, owner: String) -> Self {
        Self { base, owner }
    }

    /// Removes what engines on this host that no longer run left behind.
    /// Returns how many owner directories it removed.
    pub(crate) fn sweep(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.base) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(owner) = name.to_str() else { continue };
            if owner == self.owner || !oxflow_runtime::owner::local_owner_gone(owner) {
                continue;
            }
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => {
                    removed += 1;
                    tracing::info!(
                        owner,
                        "Removed the secret scratch space of a stopped Oxflow process."
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(error) => {
                    tracing::warn!(dir = %entry.path().display(), %error, "Could not remove a stopped process's secret scratch space.");
                }
            }
        }
        removed
    }

    /// A fresh, empty directory for one task attempt.
    pub(crate) fn attempt(&self) -> io::Result<AttemptDir> {
        let owner_dir = self.base.join(&self.owner);
        private_dir_all(&owner_dir)?;
        let path = owner_dir.join(oxflow_core::new_id());
        private_dir(&path)?;
        Ok(AttemptDir { path: Some(path) })
    }
}

/// Creates `dir` and its missing parents with mode 0700, and makes sure
/// `dir` itself is 0700 even if it existed.
fn private_dir_all(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| at(dir, e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| at(dir, e))
}

/// Creates the new directory `dir` with mode 0700 (an existing one is an error).
fn private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|e| at(dir, e))
}

/// `e` with the path in its message (`io::Error` has no place for one).
fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// One attempt's secret files; removed on drop.
#[derive(Debug)]
pub(crate) struct AttemptDir {
    path: Option<PathBuf>,
}

impl AttemptDir {
    /// Writes the `n`-th secret volume of the attempt, one 0600 file per
    /// key, and returns its directory (the bind mount's source). Keys that
    /// are not plain file names are skipped, as Kubernetes refuses them.
    pub(crate) fn write_secret(
        &self,
        n: usize,
        data: &BTreeMap<String, String>,
    ) -> io::Result<PathBuf> {
        let base = self
            .path
            .as_deref()
            .ok_or_else(|| io::Error::other("the attempt ended"))?;
        let dir = base.join(n.to_string());
        private_dir(&dir)?;
        for (key, value) in data {
            if key.is_empty() || key == "." || key == ".." || key.contains(['/', '\0']) {
                continue;
            }
            let file = dir.join(key);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&file)
                .map_err(|e| at(&file, e))?;
            f.write_all(value.as_bytes()).map_err(|e| at(&file, e))?;
        }
        Ok(dir)
    }
}

impl Drop for AttemptDir {
    fn drop(&mut self) {
        if let Some(dir) = self.path.take()
            && let Err(error) = std::fs::remove_dir_all(&dir)
            && error.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), %error, "Could not remove a task attempt's secret files.");
        }
    }
}

/// Removes the secret files that Oxflow before the scratch space wrote into
/// the artifact store (`<task dir>/.kfp/secrets/`), once per data
/// directory: `marker` records that it ran. Walks directories only and never
/// follows a symlink. Returns how many `secrets` directories it removed.
pub(crate) fn sweep_legacy_secrets(artifacts_root: &Path, marker: &Path) -> usize {
    if marker.exists() || !artifacts_root.is_dir() {
        return 0;
    }
    let mut removed = 0;
    let mut stack = vec![artifacts_root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            if entry.file_name() == oxflow_artifacts::INTERNAL_DIR {
                let secrets = path.join("secrets");
                if std::fs::symlink_metadata(&secrets).is_ok_and(|m| m.is_dir()) {
                    match std::fs::remove_dir_all(&secrets) {
                        Ok(()) => removed += 1,
                        Err(error) => tracing::warn!(dir = %secrets.display(), %error,
                            "Could not remove secret files an older Oxflow left in the artifact store."),
                    }
                }
            } else {
                stack.push(path);
            }
        }
    }
    if removed > 0 {
        tracing::info!(
            removed,
            "Removed secret files an older Oxflow left in the artifact store."
        );
    }
    if let Some(parent) = marker.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if let Err(error) = std::fs::write(marker, b"") {
        tracing::warn!(marker = %marker.display(), %error, "Could not record the legacy secret sweep; it runs again next start.");
    }
    removed
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o777
    }

    #[test]
    fn attempts_are_private_and_removed_when_they_end() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("scratch/secrets");
        let s = SecretScratch::new(base.clone(), oxflow_runtime::owner::owner_id());
        let attempt = s.attempt().unwrap();
        let data = BTreeMap::from([
            ("crt".to_owned(), "CERT".to_owned()),
            (".dockerconfigjson".to_owned(), "{}".to_owned()),
            ("../escape".to_owned(), "x".to_owned()),
            ("..".to_owned(), "x".to_owned()),
        ]);
        let dir = attempt.write_secret(0, &data).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("crt")).unwrap(), "CERT");
        assert!(dir.join(".dockerconfigjson").exists());
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [".dockerconfigjson", "crt"]);
        assert_eq!(mode(&base), 0o700);
        assert_eq!(mode(dir.parent().unwrap()), 0o700);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("crt")), 0o600);
        let second = s.attempt().unwrap();
        assert!(
            second.write_secret(0, &data).is_ok(),
            "attempts are separate"
        );
        drop(attempt);
        assert!(!dir.exists(), "removed when the attempt ends");
        drop(second);
        let owner_dir = base.join(oxflow_runtime::owner::owner_id());
        assert_eq!(std::fs::read_dir(owner_dir).unwrap().count(), 0);
    }

    #[test]
    fn the_sweep_removes_only_what_stopped_processes_left() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("secrets");
        let host = oxflow_runtime::owner::hostname();
        let dead = format!("{host}:{}:1", u32::MAX - 1);
        let me = oxflow_runtime::owner::owner_id();
        let elsewhere = "another-host:1:1".to_owned();
        for owner in [&dead, &me, &elsewhere] {
            std::fs::create_dir_all(base.join(owner).join("attempt/0")).unwrap();
            std::fs::write(base.join(owner).join("attempt/0/key"), "value").unwrap();
        }
        // Another engine of this process (the CLI opens several) keeps its own.
        let other_engine = SecretScratch::new(base.clone(), "x".into());
        assert_eq!(other_engine.sweep(), 1);
        assert!(
            !base.join(&dead).exists(),
            "a stopped process's files are removed"
        );
        assert!(
            base.join(&me).join("attempt/0/key").exists(),
            "a live process keeps its files"
        );
        assert!(
            base.join(&elsewhere).exists(),
            "another host's process is not judged"
        );
        assert_eq!(SecretScratch::new(d.path().join("none"), me).sweep(), 0);
    }

    #[test]
    fn the_legacy_sweep_removes_old_secret_files_once() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("artifacts");
        let marker = d.path().join("scratch").join(".legacy-secrets-swept");
        let nested = root.join("default/run1/outer/inner/.kfp/secrets/tls");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::write(nested.join("crt"), b"SECRET").unwrap();
        let flat = root.join("team/run2/task/.kfp/secrets/db");
        std::fs::create_dir_all(&flat).unwrap();
        std::fs::write(flat.join("password"), b"SECRET").unwrap();
        // Other internal files and outputs stay.
        std::fs::write(root.join("team/run2/task/.kfp/executor_input.json"), b"{}").unwrap();
        std::fs::write(root.join("team/run2/task/model.bin"), b"m").unwrap();
        assert_eq!(sweep_legacy_secrets(&root, &marker), 2);
        assert!(!root.join("default/run1/outer/inner/.kfp/secrets").exists());
        assert!(!root.join("team/run2/task/.kfp/secrets").exists());
        assert!(
            root.join("team/run2/task/.kfp/executor_input.json")
                .exists()
        );
        assert!(root.join("team/run2/task/model.bin").exists());
        assert!(marker.exists());
        // Once per data directory.
        std::fs::create_dir_all(&flat).unwrap();
        assert_eq!(sweep_legacy_secrets(&root, &marker), 0);
        assert!(flat.exists());
    }
}
