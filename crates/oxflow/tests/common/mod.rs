//! Shared helpers for the end-to-end tests: compile the test pipelines with
//! the real kfp SDK once, and drive the real `oxflow` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

/// The Python with kfp installed (the test command sets OXFLOW_TEST_PYTHON).
pub fn python() -> PathBuf {
    let p = std::env::var_os("OXFLOW_TEST_PYTHON")
        .map(PathBuf::from)
        .expect("OXFLOW_TEST_PYTHON must point at a Python with kfp installed; run the tests through scripts/test");
    assert!(
        p.exists(),
        "OXFLOW_TEST_PYTHON={} does not exist",
        p.display()
    );
    p
}

/// The directory holding `python`, put first on PATH so `python3` there is the kfp one.
pub fn path_with_python() -> String {
    let py = python();
    let dir = py.parent().unwrap().to_path_buf();
    let old = std::env::var("PATH").unwrap_or_default();
    format!("{}:{old}", dir.display())
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Compiled pipelines (`<name>.yaml`), built once per test binary with the real SDK.
pub fn compiled() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("oxflow-e2e-pipelines-{}", std::process::id()));
        let out = Command::new(python())
            .arg("-W")
            .arg("ignore")
            .arg(repo_root().join("tests/pipelines/build.py"))
            .arg(&dir)
            .output()
            .expect("running the kfp compiler");
        assert!(
            out.status.success(),
            "compiling test pipelines failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// A compiled pipeline's path.
pub fn pipeline(name: &str) -> PathBuf {
    let p = compiled().join(format!("{name}.yaml"));
    assert!(p.exists(), "no compiled pipeline {}", p.display());
    p
}

/// An isolated Oxflow data directory plus a working directory.
pub struct Env {
    pub home: tempfile::TempDir,
    pub work: tempfile::TempDir,
    pub database: Option<String>,
}

impl Env {
    pub fn new() -> Self {
        Self {
            home: tempfile::tempdir().unwrap(),
            work: tempfile::tempdir().unwrap(),
            database: None,
        }
    }

    /// The `oxflow` command with this environment.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_oxflow"));
        c.env("OXFLOW_HOME", self.home.path())
            .env("PATH", path_with_python())
            .env_remove("OXFLOW_DATABASE")
            .env_remove("OXFLOW_NAMESPACE")
            .current_dir(self.work.path());
        if let Some(db) = &self.database {
            c.env("OXFLOW_DATABASE", db);
        }
        c
    }

    /// Runs `oxflow ARGS…` to completion.
    pub fn oxflow(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("running oxflow")
    }

    /// `oxflow run PIPELINE -o json PARAMS…`: exit code and the run as JSON.
    pub fn run(&self, name: &str, extra: &[&str]) -> (i32, Value) {
        let p = pipeline(name);
        let mut args = vec!["run", p.to_str().unwrap(), "-o", "json"];
        args.extend_from_slice(extra);
        let out = self.oxflow(&args);
        let code = out.status.code().unwrap_or(-1);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "oxflow run {name} printed no JSON ({e}); exit {code}\nstdout:\n{stdout}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (code, v)
    }

    /// Runs and asserts success.
    pub fn run_ok(&self, name: &str, extra: &[&str]) -> Value {
        let (code, v) = self.run(name, extra);
        assert_eq!(
            code,
            0,
            "run of {name} failed: {}",
            serde_json::to_string_pretty(&v).unwrap()
        );
        assert_eq!(v["state"], "SUCCEEDED");
        v
    }
}

/// The task at `path` in a run's JSON.
pub fn task<'a>(run: &'a Value, path: &str) -> &'a Value {
    run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["path"] == path)
        .unwrap_or_else(|| {
            let paths: Vec<&Value> = run["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| &t["path"])
                .collect();
            panic!("no task {path}; tasks: {paths:?}")
        })
}

/// A task's output parameter.
pub fn out_param<'a>(run: &'a Value, path: &str, key: &str) -> &'a Value {
    &task(run, path)["outputs"]["parameters"][key]
}

/// Runs `test` with the URL of a fresh schema on the test PostgreSQL server
/// (`OXFLOW_TEST_POSTGRES`, default the local `test` database), and drops
/// the schema afterwards even when the test panics.
pub fn with_postgres_schema(name: &str, test: impl FnOnce(String) + std::panic::UnwindSafe) {
    let url = std::env::var("OXFLOW_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://oxflow_test:oxflow_test@127.0.0.1:5432/oxflow_test".into());
    let schema = format!("e2e_{name}_{}", std::process::id());
    let psql = |sql: &str| {
        let out = Command::new("psql")
            .args([url.as_str(), "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    psql(&format!("CREATE SCHEMA {schema}"));
    let sep = if url.contains('?') { '&' } else { '?' };
    let database = format!("{url}{sep}options=-c%20search_path%3D{schema}");
    let result = std::panic::catch_unwind(move || test(database));
    psql(&format!("DROP SCHEMA {schema} CASCADE"));
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}
