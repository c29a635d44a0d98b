//! A run whose store fills up while a task runs waits for space instead of
//! failing or being left RUNNING, and finishes by itself once space returns.

use std::time::{Duration, Instant};

mod common;

use oxflow_core::{RunState, TaskState};
use oxflow_store::Store;
use tokio_util::sync::CancellationToken;

/// `first` waits for GATE, then `second` runs after it.
const TWO_STEPS: &str = r#"
pipelineInfo: {name: store-full}
schemaVersion: 2.1.0
sdkVersion: kfp-2.17.3
root:
  dag:
    tasks:
      first:
        taskInfo: {name: first}
        componentRef: {name: comp-first}
      second:
        taskInfo: {name: second}
        componentRef: {name: comp-second}
        dependentTasks: [first]
components:
  comp-first:
    executorLabel: exec-first
  comp-second:
    executorLabel: exec-second
deploymentSpec:
  executors:
    exec-first:
      container:
        image: alpine
        command: [sh, -c, 'touch STARTED; while [ ! -e "GATE" ]; do sleep 0.02; done']
    exec-second:
      container:
        image: alpine
        command: [sh, -c, 'echo second']
"#;

/// A small tmpfs for the database, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` where this process may not mount (not root).
    fn mount() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Self { dir })
    }

    /// Fills the filesystem with one file; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let filler = self.dir.path().join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        while f.write_all(&chunk[..64]).is_ok() {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_waits_out_a_full_store_and_finishes() {
    let Some(disk) = SmallDisk::mount() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to mount a tmpfs (it runs as root)"
        );
        eprintln!("skipped: this process may not mount a tmpfs (not root)");
        return;
    };
    // The database on the small disk; the artifacts and the tasks' files
    // elsewhere, so that only the store's writes fail.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_dir(disk.dir.path()).await.unwrap();
    let engine = common::engine(&store, dir.path());
    let (started, gate) = (dir.path().join("started"), dir.path().join("gate"));
    let yaml = TWO_STEPS
        .replace("STARTED", &started.to_string_lossy())
        .replace("GATE", &gate.to_string_lossy());
    let run = common::submit(&engine, &yaml).await;
    let execution = {
        let engine = engine.clone();
        let id = run.id.clone();
        tokio::spawn(async move { engine.execute(&id, None, CancellationToken::new()).await })
    };
    eventually("the first task to start", || started.exists()).await;

    // The disk fills while the task runs.
    let filler = disk.fill();
    std::fs::write(&gate, b"").unwrap();

    // The task has finished, but its record cannot be written: the run
    // must neither fail nor end; it waits.
    let waiting_since = Instant::now();
    while waiting_since.elapsed() < Duration::from_millis(1500) {
        if execution.is_finished() {
            let outcome = execution.await.unwrap();
            panic!("the run ended while its store was full: {outcome:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Space returns: the run goes on by itself and succeeds, every task
    // recorded.
    std::fs::remove_file(&filler).unwrap();
    let finished = tokio::time::timeout(Duration::from_secs(60), execution)
        .await
        .expect("the run did not go on once space returned")
        .unwrap()
        .unwrap();
    assert_eq!(finished.state, RunState::Succeeded, "{:?}", finished.error);
    let stored = store.get_run(&run.id).await.unwrap().unwrap();
    assert_eq!(stored.state, RunState::Succeeded);
    let tasks = store.list_tasks(&run.id).await.unwrap();
    for name in ["first", "second"] {
        let t = tasks
            .iter()
            .find(|t| t.path == name)
            .unwrap_or_else(|| panic!("no task {name}"));
        assert_eq!(t.state, TaskState::Succeeded, "{name}");
    }
}
