//! Python interpreters for lightweight components.
//!
//! The user's own `python3` (first on `PATH`, or `--python`) runs components
//! when it can import `kfp`: that is where their libraries are. Otherwise, and
//! whenever a component lists `packages_to_install`, the component runs in a
//! cached virtualenv under `<data dir>/envs/<key>`, keyed by the interpreter,
//! the requirement set and the kfp version. Such venvs see the base
//! interpreter's site-packages, so a component still finds what the user has;
//! nothing is ever installed into the user's own environment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::error::{PipelineError, Result};

/// Finds or builds interpreters; one per process, shared by all runs.
#[derive(Debug)]
pub struct PythonEnvs {
    envs_dir: PathBuf,
    base: Option<PathBuf>,
    /// Memoised answers: interpreter → can it import kfp's executor? One
    /// probe per interpreter even when many tasks ask at once.
    probes: Mutex<HashMap<PathBuf, Arc<tokio::sync::OnceCell<bool>>>>,
    /// One builder at a time per env key within this process (a file lock covers other processes).
    building: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The import a lightweight component needs.
const PROBE: &str = "import kfp.dsl.executor_main";

impl PythonEnvs {
    /// `envs_dir` holds the cached venvs; `base` overrides `python3` from `PATH`.
    pub fn new(envs_dir: PathBuf, base: Option<PathBuf>) -> Self {
        Self {
            envs_dir,
            base,
            probes: Mutex::new(HashMap::new()),
            building: Mutex::new(HashMap::new()),
        }
    }

    /// The base interpreter: `--python` or the first `python3` on `PATH`.
    pub fn base(&self) -> Result<PathBuf> {
        if let Some(b) = &self.base {
            return Ok(b.clone());
        }
        which("python3").ok_or_else(|| PipelineError::PythonEnv {
            what: "python3".into(),
            message: "no python3 on PATH; install Python 3 or pass --python PATH".into(),
        })
    }

    /// The interpreter that runs a component with these requirements.
    pub async fn interpreter(
        &self,
        packages: &[String],
        pip_options: &[String],
        kfp_requirement: &str,
    ) -> Result<PathBuf> {
        let base = self.base()?;
        if packages.is_empty() && self.can_import_kfp(&base).await {
            return Ok(base);
        }
        let mut reqs: Vec<String> = packages.to_vec();
        reqs.sort();
        reqs.dedup();
        let mut h = Sha256::new();
        h.update(
            std::fs::canonicalize(&base)
                .unwrap_or(base.clone())
                .to_string_lossy()
                .as_bytes(),
        );
        for part in reqs
            .iter()
            .chain(pip_options)
            .chain(std::iter::once(&kfp_requirement.to_owned()))
        {
            h.update([0]);
            h.update(part.as_bytes());
        }
        let key = hex::encode(&h.finalize()[..8]);
        let dir = self.envs_dir.join(&key);
        let python = dir.join("bin").join("python");
        if dir.join(".ready").exists() {
            return Ok(python);
        }
        let guard = {
            let mut b = self.building.lock().unwrap_or_else(|p| p.into_inner());
            b.entry(key.clone()).or_default().clone()
        };
        let _g = guard.lock().await;
        if dir.join(".ready").exists() {
            return Ok(python);
        }
        self.build(&base, &dir, &reqs, pip_options, kfp_requirement)
            .await?;
        Ok(python)
    }

    async fn can_import_kfp(&self, python: &Path) -> bool {
        let cell = self
            .probes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(python.to_path_buf())
            .or_default()
            .clone();
        *cell
            .get_or_init(|| async {
                Command::new(python)
                    .args(["-c", PROBE])
                    .env("_KFP_RUNTIME", "true")
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .await
                    .map(|s| s.success())
                    .unwrap_or(false)
            })
            .await
    }

    async fn build(
        &self,
        base: &Path,
        dir: &Path,
        reqs: &[String],
        pip_options: &[String],
        kfp_requirement: &str,
    ) -> Result<()> {
        let what = dir.display().to_string();
        let fail = |message: String| PipelineError::PythonEnv {
            what: what.clone(),
            message,
        };
        std::fs::create_dir_all(&self.envs_dir)
            .map_err(|e| PipelineError::io(&self.envs_dir, e))?;
        // Another Oxflow process may be building the same env: take a file lock.
        let lock_path = dir.with_extension("lock");
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| PipelineError::io(&lock_path, e))?;
        let _lock = tokio::task::spawn_blocking(move || {
            nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        })
        .await
        .map_err(|e| fail(format!("lock task failed: {e}")))?
        .map_err(|(_, e)| fail(format!("cannot lock {}: {e}", lock_path.display())))?;
        if dir.join(".ready").exists() {
            return Ok(());
        }
        if dir.exists() {
            // A half-built env from an interrupted build.
            std::fs::remove_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
        }
        tracing::info!(env = %dir.display(), packages = ?reqs, "Creating Python environment.");
        run_checked(
            Command::new(base)
                .args(["-m", "venv", "--system-site-packages"])
                .arg(dir),
            "python -m venv",
        )
        .await
        .map_err(fail)?;
        let python = dir.join("bin").join("python");
        if !reqs.is_empty() {
            let mut c = Command::new(&python);
            c.args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-warn-script-location",
            ])
            .args(pip_options)
            .args(reqs);
            run_checked(&mut c, "pip install").await.map_err(fail)?;
        }
        if !self.can_import_kfp(&python).await {
            let mut c = Command::new(&python);
            c.args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-warn-script-location",
                "--no-deps",
            ])
            .args(pip_options)
            .arg(kfp_requirement);
            run_checked(&mut c, "pip install kfp").await.map_err(fail)?;
            self.probes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&python);
            if !self.can_import_kfp(&python).await {
                return Err(fail(format!(
                    "{kfp_requirement} installed but `{PROBE}` still fails"
                )));
            }
        }
        std::fs::write(dir.join(".ready"), reqs.join("\n"))
            .map_err(|e| PipelineError::io(dir, e))?;
        Ok(())
    }
}

async fn run_checked(cmd: &mut Command, what: &str) -> std::result::Result<(), String> {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("{what}: could not start: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let mut msg = String::from_utf8_lossy(&out.stderr).into_owned();
    if msg.trim().is_empty() {
        msg = String::from_utf8_lossy(&out.stdout).into_owned();
    }
    let tail: String = msg
        .lines()
        .rev()
        .take(15)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    Err(format!("{what} failed ({}):\n{tail}", out.status))
}

/// The first executable `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}
