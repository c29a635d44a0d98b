//! Terminate is stored intent: asked by another process (another
//! controller over the same database), it stops the run where it executes;
//! asked while the executing process is gone, a restart finishes it.

mod common;

use std::time::{Duration, Instant};

use oxflow_core::{RunState, Timestamp};
use oxflow_pipelines::RunController;
use oxflow_store::Store;

/// One long task: it would run for minutes unless stopped.
const LONG: &str = r#"
pipelineInfo: {name: long}
schemaVersion: 2.1.0
sdkVersion: kfp-2.17.3
root:
  dag:
    tasks:
      wait:
        taskInfo: {name: wait}
        componentRef: {name: comp-wait}
components:
  comp-wait:
    executorLabel: exec-wait
deploymentSpec:
  executors:
    exec-wait:
      container:
        image: alpine
        command: [sh, -c, 'echo started; sleep 300']
"#;

async fn wait_for(store: &Store, id: &str, want: RunState, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let state = store.run_state(id).await.unwrap();
        if state == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "run {id} is {state:?}, not {want:?}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminate_from_another_process_stops_the_run_where_it_executes() {
    let dir = tempfile::tempdir().unwrap();
    // Process A executes; process B only terminates (its own store handle
    // and controller over the same database, never executing the run).
    let store_a = Store::open_in_dir(dir.path()).await.unwrap();
    let a = RunController::new(common::engine(&store_a, dir.path()), 2);
    let run = common::submit(a.engine(), LONG).await;
    a.start();
    a.nudge();
    wait_for(
        &store_a,
        &run.id,
        RunState::Running,
        Duration::from_secs(30),
    )
    .await;
    // The task is really running.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tasks = store_a.list_tasks(&run.id).await.unwrap();
        if tasks
            .iter()
            .any(|t| t.state == oxflow_core::TaskState::Running)
        {
            break;
        }
        assert!(Instant::now() < deadline, "the task never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let store_b = Store::open_in_dir(dir.path()).await.unwrap();
    let b = RunController::new(common::engine(&store_b, dir.path()), 2);
    b.terminate(&run.id).await.unwrap();
    assert_eq!(
        store_b.run_state(&run.id).await.unwrap(),
        Some(RunState::Canceling),
        "B stores the intent"
    );
    // A notices it and stops the task well before the task's 300 s.
    wait_for(
        &store_a,
        &run.id,
        RunState::Canceled,
        Duration::from_secs(20),
    )
    .await;
    let record = store_a.get_run(&run.id).await.unwrap().unwrap();
    assert!(record.finished_at.is_some());
    let history: Vec<RunState> = record.state_history.iter().map(|c| c.state).collect();
    assert!(
        history.ends_with(&[RunState::Canceling, RunState::Canceled]),
        "{history:?}"
    );
    a.stop();
}

#[tokio::test]
async fn a_terminate_stored_while_the_engine_is_gone_is_finished_by_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_dir(dir.path()).await.unwrap();
    let engine = common::engine(&store, dir.path());
    let run = common::submit(&engine, LONG).await;
    // A run claimed by an engine that then died (no heartbeat for long).
    let long_ago = Timestamp(Timestamp::now().0 - 3_600_000);
    assert!(
        store
            .claim_run(&run.id, "gone-host:1:1", long_ago, long_ago)
            .await
            .unwrap()
    );
    let c = RunController::new(engine.clone(), 1);
    c.terminate(&run.id).await.unwrap();
    assert_eq!(
        store.run_state(&run.id).await.unwrap(),
        Some(RunState::Canceling)
    );
    // An engine that was started before the terminate cannot take the run
    // back to RUNNING.
    let mut stale = store.get_run(&run.id).await.unwrap().unwrap();
    stale.state = RunState::Running;
    store.update_run(&stale).await.unwrap();
    assert_eq!(
        store.run_state(&run.id).await.unwrap(),
        Some(RunState::Canceling)
    );
    // The restart's recovery ends it.
    let reset = engine.recover().await.unwrap();
    assert_eq!(reset, vec![run.id.clone()]);
    assert_eq!(
        store.run_state(&run.id).await.unwrap(),
        Some(RunState::Canceled)
    );

    // A PENDING run nobody claimed is CANCELED at once; an ended run stays.
    let pending = common::submit(&engine, LONG).await;
    c.terminate(&pending.id).await.unwrap();
    assert_eq!(
        store.run_state(&pending.id).await.unwrap(),
        Some(RunState::Canceled)
    );
    assert_eq!(
        store
            .cancel_run(&pending.id, Timestamp::now())
            .await
            .unwrap(),
        RunState::Canceled
    );
}
