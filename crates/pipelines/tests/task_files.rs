//! What the engine writes for a task, and where: secret values only in a
//! per-attempt scratch directory outside the artifact store (removed when
//! the attempt ends, however it ends), a deleted run leaves nothing behind,
//! and a task that fails because Oxflow could not write says so.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;

use common::engine;
use oxflow_core::{Namespace, RunState, TaskState};
use oxflow_pipelines::Engine;
use oxflow_store::{RunRecord, Store, TaskRecord};
use tokio_util::sync::CancellationToken;

struct Harness {
    dir: tempfile::TempDir,
    store: Store,
    engine: Engine,
}

impl Harness {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in_dir(dir.path()).await.unwrap();
        let engine = engine(&store, dir.path());
        Self { dir, store, engine }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    async fn submit(&self, yaml: &str) -> RunRecord {
        common::submit(&self.engine, yaml).await
    }

    async fn run(&self, yaml: &str) -> (RunRecord, Vec<TaskRecord>) {
        let run = self.submit(yaml).await;
        let run = self
            .engine
            .execute(&run.id, None, CancellationToken::new())
            .await
            .unwrap();
        let tasks = self.store.list_tasks(&run.id).await.unwrap();
        (run, tasks)
    }

    /// A `v1` Secret as the resource layer stores it (values in base64).
    async fn put_secret(&self, name: &str, key: &str, value: &str) {
        let ns = Namespace::default();
        let object = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": ns.as_str()},
            "type": "Opaque",
            "data": {key: oxflow_core::secret::encode(value.as_bytes())},
        });
        let key = oxflow_store::ResourceKey {
            group: String::new(),
            kind: "Secret".into(),
            namespace: ns.as_str().to_owned(),
            name: name.to_owned(),
        };
        self.store
            .create_resource(&key, &oxflow_core::new_id(), 1, object, "secret")
            .await
            .unwrap();
    }

    /// Every attempt directory of the secret scratch space.
    fn secret_attempts(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let base = self.path("scratch/secrets");
        for owner in std::fs::read_dir(base).into_iter().flatten().flatten() {
            for attempt in std::fs::read_dir(owner.path()).unwrap().flatten() {
                out.push(attempt.path());
            }
        }
        out
    }
}

/// Every file under `dir` whose bytes contain one of `needles`.
fn files_containing(dir: &Path, needles: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let bytes = std::fs::read(e.path()).unwrap();
                let text = String::from_utf8_lossy(&bytes);
                if needles.iter().any(|n| text.contains(n)) {
                    found.push(e.path());
                }
            }
        }
    }
    found
}

fn task<'a>(tasks: &'a [TaskRecord], path: &str) -> &'a TaskRecord {
    tasks
        .iter()
        .find(|t| t.path == path)
        .unwrap_or_else(|| panic!("no task {path}"))
}

/// Polls `cond` until it holds or 20 seconds pass.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `reader` reads a secret mounted at MOUNT and another from its
/// environment, prints only their lengths, then waits for GATE;
/// `failer` mounts the same secret and fails.
const SECRETS: &str = r#"
pipelineInfo: {name: secrets}
schemaVersion: 2.1.0
sdkVersion: kfp-2.17.3
root:
  dag:
    tasks:
      reader:
        taskInfo: {name: reader}
        componentRef: {name: comp-reader}
      failer:
        taskInfo: {name: failer}
        componentRef: {name: comp-failer}
        dependentTasks: [reader]
components:
  comp-reader:
    executorLabel: exec-reader
  comp-failer:
    executorLabel: exec-failer
deploymentSpec:
  executors:
    exec-reader:
      container:
        image: alpine
        command: [sh, -c, 'crt=$(cat MOUNT/crt) || exit 3; echo "crt ${#crt} bytes, password ${#DB_PASSWORD} bytes"; while [ ! -e "GATE" ]; do sleep 0.02; done']
    exec-failer:
      container:
        image: alpine
        command: [sh, -c, 'test -s MOUNT/crt && exit 7']
---
platforms:
  kubernetes:
    deploymentSpec:
      executors:
        exec-reader:
          secretAsVolume:
          - {secretName: tls, mountPath: MOUNT}
          secretAsEnv:
          - secretName: db
            keyToEnv:
            - {secretKey: password, envVar: DB_PASSWORD}
        exec-failer:
          secretAsVolume:
          - {secretName: tls, mountPath: MOUNT}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_never_enter_the_artifact_store() {
    let h = Harness::new().await;
    let crt = format!("CERT-{}", oxflow_core::new_id());
    let password = format!("PW-{}", oxflow_core::new_id());
    h.put_secret("tls", "crt", &crt).await;
    h.put_secret("db", "password", &password).await;
    let gate = h.path("gate");
    let yaml = SECRETS
        .replace("MOUNT", &h.path("mnt/tls").to_string_lossy())
        .replace("GATE", &gate.to_string_lossy());
    let run = h.submit(&yaml).await;
    let engine = h.engine.clone();
    let id = run.id.clone();
    let exec =
        tokio::spawn(async move { engine.execute(&id, None, CancellationToken::new()).await });

    // While `reader` runs, its secret is in a private scratch directory.
    eventually("the reader's secret files", || {
        h.secret_attempts().len() == 1
    })
    .await;
    let attempt = h.secret_attempts().remove(0);
    let file = attempt.join("0/crt");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), crt);
    use std::os::unix::fs::MetadataExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&attempt), 0o700);
    assert_eq!(mode(&h.path("scratch/secrets")), 0o700);
    assert!(!file.starts_with(h.path("artifacts")));
    std::fs::write(&gate, "").unwrap();

    let run = exec.await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Failed, "{:?}", run.error);
    let tasks = h.store.list_tasks(&run.id).await.unwrap();
    let reader = task(&tasks, "reader");
    assert_eq!(reader.state, TaskState::Succeeded);
    let log = std::fs::read_to_string(reader.log_path.as_ref().unwrap()).unwrap();
    assert!(
        log.contains(&format!(
            "crt {} bytes, password {} bytes",
            crt.len(),
            password.len()
        )),
        "{log}"
    );
    let failer = task(&tasks, "failer");
    assert_eq!(failer.state, TaskState::Failed);
    assert!(
        failer.error.as_deref().unwrap().contains("exit code 7"),
        "the failing task read the secret too: {:?}",
        failer.error
    );

    // Removed after the attempt that succeeded and after the one that failed.
    assert_eq!(h.secret_attempts(), Vec::<PathBuf>::new());
    let leaks = files_containing(&h.path("artifacts"), &[&crt, &password]);
    assert!(leaks.is_empty(), "secret values under artifacts: {leaks:?}");
    let records = serde_json::to_string(&(
        &tasks,
        h.store.get_run(&run.id).await.unwrap(),
        h.store.list_artifacts(&run.id).await.unwrap(),
    ))
    .unwrap();
    assert!(!records.contains(&crt) && !records.contains(&password));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_attempt_removes_its_secret_files() {
    let h = Harness::new().await;
    h.put_secret("tls", "crt", "CERT").await;
    h.put_secret("db", "password", "pw").await;
    let yaml = SECRETS
        .replace("MOUNT", &h.path("mnt/tls").to_string_lossy())
        .replace("GATE", &h.path("never").to_string_lossy());
    let run = h.submit(&yaml).await;
    let engine = h.engine.clone();
    let cancel = CancellationToken::new();
    let (id, token) = (run.id.clone(), cancel.clone());
    let exec = tokio::spawn(async move { engine.execute(&id, None, token).await });
    eventually("the reader's secret files", || {
        h.secret_attempts().len() == 1
    })
    .await;
    cancel.cancel();
    let run = exec.await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Canceled);
    assert_eq!(h.secret_attempts(), Vec::<PathBuf>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_starting_removes_secret_files_a_dead_process_left() {
    let h = Harness::new().await;
    let host = oxflow_runtime::owner::hostname();
    let left = h.path(&format!(
        "scratch/secrets/{host}:{}:1/attempt/0",
        u32::MAX - 1
    ));
    std::fs::create_dir_all(&left).unwrap();
    std::fs::write(left.join("crt"), "CERT").unwrap();
    let _restarted = engine(&h.store, h.dir.path());
    assert!(!left.exists());
    assert!(!left.parent().unwrap().parent().unwrap().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_run_removes_its_directory_and_records() {
    let h = Harness::new().await;
    let yaml = SECRETS
        .replace("MOUNT", &h.path("mnt/tls").to_string_lossy())
        .replace("GATE", &h.path("gate").to_string_lossy());
    h.put_secret("tls", "crt", "CERT").await;
    h.put_secret("db", "password", "pw").await;
    std::fs::write(h.path("gate"), "").unwrap();
    let run = h.submit(&yaml).await;
    let run = h
        .engine
        .execute(&run.id, None, CancellationToken::new())
        .await
        .unwrap();
    let dir = h.path("artifacts/default").join(&run.id);
    assert!(dir.join("reader/.kfp/log").exists());

    // A run that is executing is refused.
    let mut running = run.clone();
    running.state = RunState::Running;
    let e = h.engine.delete_run(&running).await.unwrap_err();
    assert!(e.to_string().contains("terminate it"), "{e}");
    assert!(dir.exists());

    assert!(h.engine.delete_run(&run).await.unwrap());
    assert!(!dir.exists());
    assert!(h.store.get_run(&run.id).await.unwrap().is_none());
    assert!(h.store.list_tasks(&run.id).await.unwrap().is_empty());
    assert!(!h.engine.delete_run(&run).await.unwrap(), "already gone");
}

/// One task with an output parameter, running `script` as `sh -c script
/// PARAM_FILE` (the parameter's file is `$0`).
fn with_output(script: &str) -> String {
    format!(
        r#"
pipelineInfo: {{name: writes}}
schemaVersion: 2.1.0
sdkVersion: kfp-2.17.3
root:
  dag:
    tasks:
      t:
        taskInfo: {{name: t}}
        componentRef: {{name: comp-t}}
components:
  comp-t:
    executorLabel: exec-t
    outputDefinitions:
      parameters:
        out: {{parameterType: STRING}}
deploymentSpec:
  executors:
    exec-t:
      container:
        image: alpine
        command: [sh, -c, '{script}']
        args: ["{{{{$.outputs.parameters['out'].output_file}}}}"]
"#
    )
}

/// Runs `yaml` after `obstruct` spoiled the task's directory; returns the
/// task's and the run's errors.
async fn failing_run(h: &Harness, yaml: &str, obstruct: impl FnOnce(&Path)) -> (String, String) {
    let run = h.submit(yaml).await;
    obstruct(&h.path("artifacts/default").join(&run.id).join("t/.kfp"));
    let run = h
        .engine
        .execute(&run.id, None, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(run.state, RunState::Failed);
    let tasks = h.store.list_tasks(&run.id).await.unwrap();
    let t = task(&tasks, "t");
    assert_eq!(t.state, TaskState::Failed);
    (t.error.clone().unwrap(), run.error.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_oxflow_cannot_write_for_says_so() {
    let h = Harness::new().await;
    let (ok, tasks) = h.run(&with_output("echo v > \"$0\"")).await;
    assert_eq!(ok.state, RunState::Succeeded, "{:?} {tasks:?}", ok.error);

    // Each case spoils one of the places Oxflow writes (a file where a
    // directory must be, a directory where a file must be: what root
    // cannot be kept from writing), and the error names it.
    type Spoil = fn(&Path);
    let cases: [(&str, Spoil, &str, &str); 3] = [
        (
            "echo v > \"$0\"",
            |kfp| {
                std::fs::create_dir_all(kfp).unwrap();
                std::fs::write(kfp.join("params"), "").unwrap();
            },
            "params",
            "File exists",
        ),
        (
            "echo v > \"$0\"",
            |kfp| std::fs::create_dir_all(kfp.join("log")).unwrap(),
            "log",
            "Is a directory",
        ),
        // The directory becomes unusable while the task runs.
        (
            "d=$(dirname \"$0\"); rm -rf \"$d\" && : > \"$d\" && echo v > \"$0\"",
            |_| {},
            "params",
            "Not a directory",
        ),
    ];
    for (script, spoil, name, why) in cases {
        let (task_error, run_error) = failing_run(&h, &with_output(script), spoil).await;
        eprintln!("{name}: {task_error}");
        assert!(
            task_error.starts_with("Oxflow could not write "),
            "{name}: {task_error}"
        );
        assert!(
            task_error.contains(&format!(".kfp/{name}: {why}")),
            "{name}: {task_error}"
        );
        assert_eq!(run_error, format!("task \"t\" failed: {task_error}"));
    }
}
