//! The experiment controller's background loop (what `oxflow up` runs) picks
//! up an experiment whose controller died: finished trials stay as they are,
//! the interrupted one runs again with the same parameters, and the
//! experiment completes with exactly maxTrialCount trials.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oxflow_core::{ExperimentPhase, Namespace, Timestamp, TrialPhase, new_id};
use oxflow_runtime::{LocalConfig, LocalRuntime};
use oxflow_store::{Store, TuningTrialRecord};
use oxflow_tuning::{TuningConfig, TuningController};
use serde_json::json;

const EXPERIMENT: &str = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: orphan
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: random}
  parallelTrialCount: 1
  maxTrialCount: 3
  parameters:
    - name: x
      parameterType: double
      feasibleSpace: {min: "0", max: "1"}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{name: x, reference: x}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                image: busybox
                command: ["sh", "-c", "echo loss=${trialParameters.x}"]
            restartPolicy: Never
"#;

fn trial(experiment_id: &str, seq: i64, x: &str, phase: TrialPhase) -> TuningTrialRecord {
    TuningTrialRecord {
        id: new_id(),
        experiment_id: experiment_id.into(),
        name: format!("orphan-t{seq}"),
        seq,
        assignments: json!([{"name": "x", "value": x}]),
        tags: json!({}),
        phase,
        message: None,
        objective: (phase == TrialPhase::Succeeded).then(|| x.parse().unwrap()),
        observation: json!([]),
        log_path: None,
        attempt: 1,
        created_at: Timestamp::now(),
        started_at: Some(Timestamp::now()),
        finished_at: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphaned_experiment_is_continued_by_the_next_controller() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_dir(dir.path()).await.unwrap();
    let runtime = Arc::new(LocalRuntime::new(LocalConfig {
        scratch_dir: dir.path().join("scratch"),
        warm_python: false,
        ..Default::default()
    }));
    let controller = TuningController::new(
        store.clone(),
        runtime,
        TuningConfig {
            logs_dir: dir.path().join("logs"),
            work_dir: dir.path().join("work"),
            report_url: None,
            report_tokens: None,
            python_path: None,
            owner: oxflow_runtime::owner::owner_id(),
        },
    );
    // What a controller that died mid-trial leaves behind: the experiment
    // Running under a dead owner, one trial done, one interrupted.
    let mut e = controller
        .create(EXPERIMENT, &Namespace::default(), None)
        .await
        .unwrap();
    e.phase = ExperimentPhase::Running;
    e.started_at = Some(Timestamp::now());
    e.owner = Some(format!(
        "{}:{}:1",
        oxflow_runtime::owner::hostname(),
        u32::MAX - 1
    ));
    store.update_tuning_experiment(&e).await.unwrap();
    let done = trial(&e.id, 0, "0.25", TrialPhase::Succeeded);
    let interrupted = trial(&e.id, 1, "0.75", TrialPhase::Running);
    store
        .insert_trials(&[done.clone(), interrupted.clone()])
        .await
        .unwrap();

    let handle = controller.start();
    let start = Instant::now();
    let finished = loop {
        let now = store.get_tuning_experiment_by_id(&e.id).await.unwrap();
        if now.phase.is_terminal() {
            break now;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the orphaned experiment was not continued: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    controller.shutdown();
    handle.abort();
    assert_eq!(finished.phase, ExperimentPhase::Succeeded);
    let trials = store.list_trials(&e.id).await.unwrap();
    assert_eq!(trials.len(), 3, "{trials:?}");
    // The finished trial was left alone.
    assert_eq!(trials[0].id, done.id);
    assert_eq!(trials[0].attempt, 1);
    // The interrupted one ran again with its own parameters.
    assert_eq!(trials[1].id, interrupted.id);
    assert_eq!(trials[1].attempt, 2);
    assert_eq!(trials[1].phase, TrialPhase::Succeeded);
    assert_eq!(trials[1].objective, Some(0.75));
    assert_eq!(trials[1].assignments, interrupted.assignments);
    // One new trial completed the budget; the best is the smallest loss.
    assert_eq!(trials[2].seq, 2);
    let best = trials
        .iter()
        .min_by(|a, b| a.objective.unwrap().total_cmp(&b.objective.unwrap()))
        .unwrap();
    assert_eq!(finished.optimal_trial.as_deref(), Some(best.name.as_str()));
}
