//! `storageUri` → a local path holding the model.
//!
//! Local paths and `file://` are used in place; `pvc://NAME/PATH` is a
//! path in the namespace's PersistentVolumeClaim `NAME` (under `oxflow up`
//! the claim must exist and is bound first, as pipelines' mounts are; `oxflow
//! serve` maps it to the same directory without claims);
//! `http(s)://` downloads a single file or a tar/zip archive (unpacked)
//! into a cache under the data directory. A cached download is revalidated
//! with the server's ETag / Last-Modified, so a restart does not download
//! again, and it is used as is when the server cannot be reached. Each
//! cache entry records the SHA-256 of what was downloaded.
//!
//! `s3://BUCKET/KEY` follows KServe's storage initializer: one object when
//! the key names one, else every object under `KEY/`, a lone archive
//! unpacked; the cache entry records each object's ETag and size, and a
//! later fetch lists again and downloads only what changed (see [`s3`]).
//! `gs://BUCKET/KEY` reads the same way from Google Cloud Storage (see
//! [`gcs`]).

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub mod gcs;
pub mod s3;

pub use gcs::GcsConfig;
pub use s3::S3Config;

/// Why a model could not be fetched; the message names the URI.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The URI's scheme is not one Oxflow can read.
    #[error(
        "storageUri {uri}: the {scheme}:// scheme is not supported here; use a local path, file://, pvc://, http(s)://, s3://, gs://"
    )]
    Unsupported {
        /// The URI as given.
        uri: String,
        /// Its scheme.
        scheme: String,
    },
    /// The local path lies outside every directory models may be read
    /// from (`oxflow up` confines them; see [`LocalRoots`]).
    #[error(
        "storageUri {uri}: {path} is outside the directories models may be read from ({roots}); \
         put the model under one of them, or start `oxflow up` with --model-root DIR"
    )]
    Outside {
        /// The URI as given.
        uri: String,
        /// The local path it maps to.
        path: PathBuf,
        /// The allowed directories, comma-separated.
        roots: String,
    },
    /// The path does not exist.
    #[error("storageUri {uri}: {path} does not exist")]
    Missing {
        /// The URI as given.
        uri: String,
        /// The local path it maps to.
        path: PathBuf,
    },
    /// The store answered, but nothing is at the URI (no such bucket, no
    /// objects under the prefix).
    #[error("storageUri {uri}: {message}")]
    NotFound {
        /// The URI as given.
        uri: String,
        /// What is missing.
        message: String,
    },
    /// The URI is malformed, or the settings to reach it are.
    #[error("storageUri {uri}: {message}")]
    Invalid {
        /// The URI as given.
        uri: String,
        /// What is wrong.
        message: String,
    },
    /// Downloading failed.
    #[error("storageUri {uri}: download failed: {message}")]
    Download {
        /// The URI as given.
        uri: String,
        /// What went wrong.
        message: String,
    },
    /// Reading, writing or unpacking failed.
    #[error("storageUri {uri}: {message}")]
    Io {
        /// The URI as given.
        uri: String,
        /// What went wrong.
        message: String,
    },
}

/// Which local paths (bare, `file://`, `pvc://`) a [`Storage`] may read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LocalRoots {
    /// Any path: the operator typed it (`oxflow serve PATH`).
    #[default]
    Any,
    /// Only paths that, with every symlink resolved, lie under one of these
    /// directories: an InferenceService's author must not read the host's
    /// files through the server (`oxflow up`).
    Within(Vec<PathBuf>),
}

impl LocalRoots {
    /// The roots `oxflow up` allows: `<home>/models`, the volumes of
    /// `pvc://` (`<home>/volumes`) and `extra`.
    pub fn for_server(home: &Path, extra: &[PathBuf]) -> LocalRoots {
        let mut roots = vec![home.join("models"), home.join("volumes")];
        roots.extend(extra.iter().cloned());
        LocalRoots::Within(roots)
    }

    /// `path` when it may be read, canonicalised (symlinks resolved, so
    /// what is read is what was checked).
    fn check(&self, uri: &str, path: PathBuf) -> Result<PathBuf, StorageError> {
        let LocalRoots::Within(roots) = self else {
            return if path.exists() {
                Ok(path)
            } else {
                Err(StorageError::Missing {
                    uri: uri.into(),
                    path,
                })
            };
        };
        // Roots are compared in both spellings: as configured and with
        // their own symlinks resolved (a root that does not exist yet has
        // only the first).
        let canonical_roots: Vec<PathBuf> = roots
            .iter()
            .map(|r| absolute(r))
            .flat_map(|r| {
                let c = std::fs::canonicalize(&r).ok();
                std::iter::once(r).chain(c)
            })
            .collect();
        let inside = |p: &Path| canonical_roots.iter().any(|r| p.starts_with(r));
        let outside = || StorageError::Outside {
            uri: uri.into(),
            path: path.clone(),
            roots: roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        };
        match std::fs::canonicalize(&path) {
            Ok(real) if inside(&real) => Ok(real),
            Ok(_) => Err(outside()),
            // Whether a path outside the roots exists is not told either.
            Err(_) if inside(&absolute(&path)) => Err(StorageError::Missing {
                uri: uri.into(),
                path: path.clone(),
            }),
            Err(_) => Err(outside()),
        }
    }
}

/// `path` made absolute against the working directory, with `.` and `..`
/// resolved by name (no file system access).
fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Where URIs are resolved: the data directory holds the download cache
/// and the volume directories.
#[derive(Debug, Clone)]
pub struct Storage {
    data_dir: PathBuf,
    /// The claims `pvc://` names (`oxflow up`); without them `pvc://NAME`
    /// is `<home>/volumes/<ns>/NAME` as is.
    volumes: Option<oxflow_volumes::LocalVolumes>,
    /// Which local paths may be read.
    local_roots: LocalRoots,
    /// Built on the first download: loading the system's root certificates
    /// is the slowest part of starting, and most models are local. Shared
    /// by http(s):// and s3:// downloads.
    client: std::sync::Arc<std::sync::OnceLock<reqwest::Client>>,
    /// How to reach S3; `None` reads KServe's environment variables at each
    /// s3:// fetch.
    s3: Option<S3Config>,
    /// How to reach GCS; `None` reads Google's environment variables at
    /// each gs:// fetch.
    gcs: Option<GcsConfig>,
}

/// A resolved model location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// A file or directory holding the model.
    pub path: PathBuf,
    /// SHA-256 of the downloaded bytes, for downloads.
    pub digest: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct CacheMeta {
    uri: String,
    etag: Option<String>,
    last_modified: Option<String>,
    sha256: String,
    /// The file name or archive root inside the entry directory.
    entry: String,
    /// For s3://: every object downloaded, by key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    objects: Vec<s3::CachedObject>,
}

impl Storage {
    /// Storage rooted at `data_dir` (`$OXFLOW_HOME`).
    pub fn new(data_dir: impl Into<PathBuf>) -> Storage {
        Storage {
            data_dir: data_dir.into(),
            volumes: None,
            local_roots: LocalRoots::Any,
            client: Default::default(),
            s3: None,
            gcs: None,
        }
    }

    /// Resolves `pvc://NAME` through `volumes`' claims: a missing or
    /// deleting claim is an error naming it, a pending one is bound first.
    pub fn with_volumes(mut self, volumes: oxflow_volumes::LocalVolumes) -> Storage {
        self.volumes = Some(volumes);
        self
    }

    /// Reads local paths (bare, `file://`, `pvc://`) only within `roots`.
    pub fn with_local_roots(mut self, roots: LocalRoots) -> Storage {
        self.local_roots = roots;
        self
    }

    /// Uses `config` for s3:// URIs instead of the environment (the
    /// controller passes credentials from a secret this way).
    pub fn with_s3(mut self, config: S3Config) -> Storage {
        self.s3 = Some(config);
        self
    }

    /// Uses `config` for gs:// URIs instead of the environment.
    pub fn with_gcs(mut self, config: GcsConfig) -> Storage {
        self.gcs = Some(config);
        self
    }

    /// The shared HTTP client, built on first use. A failed build (no TLS
    /// roots, a bad TLS setup) is an error for this fetch and is tried again
    /// on the next one.
    fn client(&self, uri: &str) -> Result<&reqwest::Client, StorageError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        // One TLS stack for the whole binary (ring). Installing it is
        // process-wide; a second install is refused harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(concat!("oxflow/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| StorageError::Download {
                uri: uri.into(),
                message: format!("cannot set up the HTTP client: {}", error_chain(&e)),
            })?;
        // Two fetches may race to build it; either client will do.
        Ok(self.client.get_or_init(|| client))
    }

    /// Resolves `uri` for a model in `namespace`, downloading when needed.
    pub async fn fetch(&self, uri: &str, namespace: &str) -> Result<Fetched, StorageError> {
        let (scheme, rest) = match uri.split_once("://") {
            Some((s, r)) => (s.to_ascii_lowercase(), r),
            None => ("".into(), uri),
        };
        match scheme.as_str() {
            "" => self.local(uri, PathBuf::from(uri)),
            "file" => self.local(uri, PathBuf::from(rest)),
            "pvc" => {
                let (pvc, path) = rest.split_once('/').unwrap_or((rest, ""));
                if matches!(pvc, "" | "." | "..") || path.split('/').any(|c| c == "..") {
                    return Err(StorageError::Invalid {
                        uri: uri.into(),
                        message: "expected pvc://CLAIM-NAME/PATH without '..'".into(),
                    });
                }
                let base =
                    match &self.volumes {
                        Some(volumes) => volumes.path(namespace, pvc).await.map_err(|e| {
                            StorageError::NotFound {
                                uri: uri.into(),
                                message: e.to_string(),
                            }
                        })?,
                        None => self.data_dir.join("volumes").join(namespace).join(pvc),
                    };
                self.local(uri, base.join(path))
            }
            "http" | "https" => self.download(uri).await,
            "s3" => self.fetch_s3(uri, rest).await,
            "gs" => self.fetch_gs(uri, rest).await,
            other => Err(StorageError::Unsupported {
                uri: uri.into(),
                scheme: other.into(),
            }),
        }
    }

    fn local(&self, uri: &str, path: PathBuf) -> Result<Fetched, StorageError> {
        let path = self.local_roots.check(uri, path)?;
        Ok(Fetched { path, digest: None })
    }

    fn cache_dir(&self, uri: &str) -> PathBuf {
        let key = hex::encode(Sha256::digest(uri.as_bytes()));
        self.data_dir.join("models").join("cache").join(&key[..32])
    }

    async fn download(&self, uri: &str) -> Result<Fetched, StorageError> {
        let dir = self.cache_dir(uri);
        let cached = read_meta(&dir);
        let mut request = self.client(uri)?.get(uri);
        if let Some(meta) = &cached {
            if let Some(etag) = &meta.etag {
                request = request.header(reqwest::header::IF_NONE_MATCH, etag);
            }
            if let Some(lm) = &meta.last_modified {
                request = request.header(reqwest::header::IF_MODIFIED_SINCE, lm);
            }
        }
        let err = |message: String| StorageError::Download {
            uri: uri.into(),
            message,
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                // Offline: serve the copy we have rather than fail.
                if let Some(meta) = cached {
                    tracing::warn!(uri, error = %e, "Model server unreachable; using the cached copy.");
                    return Ok(Fetched {
                        path: dir.join(&meta.entry),
                        digest: Some(meta.sha256),
                    });
                }
                return Err(err(e.to_string()));
            }
        };
        if response.status() == reqwest::StatusCode::NOT_MODIFIED
            && let Some(meta) = cached
        {
            return Ok(Fetched {
                path: dir.join(&meta.entry),
                digest: Some(meta.sha256),
            });
        }
        if !response.status().is_success() {
            return Err(err(format!("the server answered {}", response.status())));
        }
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let etag = header(reqwest::header::ETAG);
        let last_modified = header(reqwest::header::LAST_MODIFIED);
        let bytes = response.bytes().await.map_err(|e| err(e.to_string()))?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let file_name = file_name(uri);
        // Unpack into a fresh directory, then swap it in, so a crash never
        // leaves a half-written model where a complete one is expected.
        let uri_owned = uri.to_string();
        let dir_clone = dir.clone();
        let entry = tokio::task::spawn_blocking(move || {
            install(&uri_owned, &dir_clone, &file_name, &bytes, |entry| {
                CacheMeta {
                    uri: uri_owned.clone(),
                    etag,
                    last_modified,
                    sha256: hex::encode(Sha256::digest(&bytes)),
                    entry,
                    objects: Vec::new(),
                }
            })
        })
        .await
        .map_err(|e| StorageError::Io {
            uri: uri.into(),
            message: e.to_string(),
        })??;
        Ok(Fetched {
            path: dir.join(entry),
            digest: Some(sha256),
        })
    }
}

/// The record of a complete cache entry, if `dir` holds one.
fn read_meta(dir: &Path) -> Option<CacheMeta> {
    std::fs::read(dir.join("oxflow-cache.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// An error and its sources, as one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        // Wrappers often repeat their source's message; say it once.
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The last path segment of a URL, without its query.
fn file_name(uri: &str) -> String {
    let path = uri.split(['?', '#']).next().unwrap_or(uri);
    let name = path.rsplit('/').next().unwrap_or("");
    if name.is_empty() || name == ".." || name == "." {
        "model".into()
    } else {
        name.into()
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Archive {
    Tar,
    TarGz,
    Zip,
}

fn archive_kind(name: &str) -> Option<Archive> {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
        Some(Archive::TarGz)
    } else if lower.ends_with(".tar") {
        Some(Archive::Tar)
    } else if lower.ends_with(".zip") {
        Some(Archive::Zip)
    } else {
        None
    }
}

/// Writes `bytes` (unpacked when an archive) into `dir` atomically and
/// returns the entry name inside it.
fn install(
    uri: &str,
    dir: &Path,
    file_name: &str,
    bytes: &[u8],
    meta: impl FnOnce(String) -> CacheMeta,
) -> Result<String, StorageError> {
    let io = |e: std::io::Error| StorageError::Io {
        uri: uri.into(),
        message: e.to_string(),
    };
    let staging = staging_dir(uri, dir)?;
    let entry = match archive_kind(file_name) {
        None => {
            std::fs::write(staging.path().join(file_name), bytes).map_err(io)?;
            file_name.to_string()
        }
        Some(kind) => {
            let root = staging.path().join("model");
            std::fs::create_dir_all(&root).map_err(io)?;
            unpack(uri, kind, std::io::Cursor::new(bytes), &root)?;
            "model".to_string()
        }
    };
    commit(uri, dir, staging, &meta(entry.clone()))?;
    Ok(entry)
}

/// A fresh directory beside the cache entry `dir`, to fill and then
/// [`commit`].
fn staging_dir(uri: &str, dir: &Path) -> Result<tempfile::TempDir, StorageError> {
    let io = |e: std::io::Error| StorageError::Io {
        uri: uri.into(),
        message: format!("cannot create the download directory: {e}"),
    };
    let parent = dir.parent().ok_or_else(|| StorageError::Io {
        uri: uri.into(),
        message: "bad cache path".into(),
    })?;
    std::fs::create_dir_all(parent).map_err(io)?;
    tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(parent)
        .map_err(io)
}

/// Writes `meta` into `staging` and swaps it in for `dir`, so a crash never
/// leaves a half-written model where a complete one is expected.
fn commit(
    uri: &str,
    dir: &Path,
    staging: tempfile::TempDir,
    meta: &CacheMeta,
) -> Result<(), StorageError> {
    let io = |e: std::io::Error| StorageError::Io {
        uri: uri.into(),
        message: e.to_string(),
    };
    let meta = serde_json::to_vec_pretty(meta).map_err(|e| StorageError::Io {
        uri: uri.into(),
        message: e.to_string(),
    })?;
    std::fs::write(staging.path().join("oxflow-cache.json"), meta).map_err(io)?;
    // The old entry moves aside under a name of its own (an empty directory
    // that the rename replaces), so concurrent fetches of other URIs never
    // collide on it. Until the swap, `staging` is removed on any error.
    let old = match dir.parent() {
        Some(parent) if dir.exists() => {
            let old = tempfile::Builder::new()
                .prefix(".old-")
                .tempdir_in(parent)
                .map_err(io)?;
            std::fs::rename(dir, old.path()).map_err(io)?;
            Some(old)
        }
        _ => None,
    };
    if let Err(e) = std::fs::rename(staging.path(), dir) {
        // Put the previous entry back: a cached copy beats none.
        if let Some(old) = old {
            let _ = std::fs::rename(old.keep(), dir);
        }
        return Err(io(e));
    }
    // Its path is now `dir`'s; the old entry goes when `old` drops.
    let _ = staging.keep();
    drop(old);
    Ok(())
}

/// Unpacks an archive, refusing entries that would escape `root`.
fn unpack<R: Read + Seek>(
    uri: &str,
    kind: Archive,
    reader: R,
    root: &Path,
) -> Result<(), StorageError> {
    let bad = |message: String| StorageError::Io {
        uri: uri.into(),
        message,
    };
    match kind {
        Archive::Tar | Archive::TarGz => {
            let reader: Box<dyn Read + '_> = if kind == Archive::TarGz {
                Box::new(flate2::read::GzDecoder::new(reader))
            } else {
                Box::new(reader)
            };
            let mut archive = tar::Archive::new(reader);
            archive.set_preserve_permissions(false);
            let entries = archive
                .entries()
                .map_err(|e| bad(format!("not a valid tar archive: {e}")))?;
            for entry in entries {
                let mut entry = entry.map_err(|e| bad(format!("corrupt tar archive: {e}")))?;
                // `unpack_in` refuses paths outside `root` (.. and absolute).
                let inside = entry
                    .unpack_in(root)
                    .map_err(|e| bad(format!("unpacking failed: {e}")))?;
                if !inside {
                    let path = entry
                        .path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    return Err(bad(format!(
                        "archive entry {path} points outside the archive"
                    )));
                }
            }
        }
        Archive::Zip => {
            let mut archive = zip::ZipArchive::new(reader)
                .map_err(|e| bad(format!("not a valid zip archive: {e}")))?;
            for i in 0..archive.len() {
                let mut file = archive
                    .by_index(i)
                    .map_err(|e| bad(format!("corrupt zip archive: {e}")))?;
                let Some(relative) = file.enclosed_name() else {
                    return Err(bad(format!(
                        "archive entry {} points outside the archive",
                        file.name()
                    )));
                };
                let target = root.join(relative);
                if file.is_dir() {
                    std::fs::create_dir_all(&target).map_err(|e| bad(e.to_string()))?;
                    continue;
                }
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| bad(e.to_string()))?;
                }
                let mut out = std::fs::File::create(&target).map_err(|e| bad(e.to_string()))?;
                std::io::copy(&mut file, &mut out)
                    .map_err(|e| bad(format!("unpacking failed: {e}")))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
