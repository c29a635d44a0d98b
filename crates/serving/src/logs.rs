//! Where the commands of a service (custom predictors, transformers,
//! explainers) write their output: one file per revision copy under
//! `<home>/logs/serving/<namespace>/<service>/`, named after the revision
//! (`NAME-predictor-00002.log`; further copies `…-00002-1.log`). The files
//! outlive their revisions, so the output of a revision that was rolled
//! back or replaced can still be read, as `kubectl logs --previous` reads
//! a restarted container's.

use std::path::{Path, PathBuf};

use oxflow_core::Namespace;

/// The log directory of one service.
pub fn service_log_dir(home: &Path, namespace: &Namespace, service: &str) -> PathBuf {
    home.join("logs")
        .join("serving")
        .join(namespace.as_str())
        .join(service)
}

/// Why a revision's log cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RevisionLogError {
    /// Not a revision name: lower-case letters, digits and `-` only.
    #[error("revision {0:?} is not a revision name (lower-case letters, digits and '-')")]
    BadName(String),
    /// No such log; `available` lists the revisions that have one.
    #[error("revision {revision:?} has no log{}", match available.as_slice() {
        [] => " (no revision of this service has run a command)".to_owned(),
        some => format!("; logs exist for: {}", some.join(", ")),
    })]
    Missing {
        revision: String,
        available: Vec<String>,
    },
}

/// The log of `revision` (or of a numbered copy of it, `REV-1`) of a service.
pub fn revision_log(
    home: &Path,
    namespace: &Namespace,
    service: &str,
    revision: &str,
) -> Result<PathBuf, RevisionLogError> {
    if revision.is_empty()
        || !revision
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(RevisionLogError::BadName(revision.to_owned()));
    }
    let dir = service_log_dir(home, namespace, service);
    let path = dir.join(format!("{revision}.log"));
    if path.is_file() {
        return Ok(path);
    }
    let mut available: Vec<String> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".log"))
                .map(str::to_owned)
        })
        .collect();
    available.sort();
    Err(RevisionLogError::Missing {
        revision: revision.to_owned(),
        available,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_logs_are_found_named_and_listed() {
        let home = tempfile::tempdir().unwrap();
        let ns = Namespace::default();
        let dir = service_log_dir(home.path(), &ns, "svc");
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "svc-predictor-00002",
            "svc-predictor-00001",
            "svc-predictor-00002-1",
        ] {
            std::fs::write(dir.join(format!("{name}.log")), name).unwrap();
        }
        let p = revision_log(home.path(), &ns, "svc", "svc-predictor-00001").unwrap();
        assert_eq!(std::fs::read_to_string(p).unwrap(), "svc-predictor-00001");
        assert!(revision_log(home.path(), &ns, "svc", "svc-predictor-00002-1").is_ok());
        let e = revision_log(home.path(), &ns, "svc", "svc-predictor-00009").unwrap_err();
        assert_eq!(
            e.to_string(),
            "revision \"svc-predictor-00009\" has no log; logs exist for: svc-predictor-00001, svc-predictor-00002, svc-predictor-00002-1"
        );
        for bad in ["../svc", "", "Svc", "a/b", "a.log"] {
            assert_eq!(
                revision_log(home.path(), &ns, "svc", bad),
                Err(RevisionLogError::BadName(bad.to_owned()))
            );
        }
        let e = revision_log(home.path(), &ns, "other", "x").unwrap_err();
        assert!(e.to_string().contains("no revision of this service"), "{e}");
    }
}
