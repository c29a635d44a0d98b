//! The experiment controller on the controller framework (what `oxflow up`
//! runs) takes over an experiment whose controller died once its lease
//! lapses: finished trials stay as they are, the interrupted one runs again
//! with the same parameters, the experiment completes with exactly
//! maxTrialCount trials, and the dead controller's lease can no longer
//! write.

use std::time::Duration;

use oxflow_core::{ExperimentPhase, Namespace, Timestamp, TrialPhase};
use oxflow_resources::{ResourceError, Resources, WriteOptions};
use oxflow_store::Store;
use oxflow_tuning::kinds::{EXPERIMENT, TRIAL};
use oxflow_tuning::stored::new_trial_object;
use oxflow_tuning::{StoredTrial, TuningEvent};

mod common;
use common::{controller, experiment_yaml, registry};
use serde_json::json;

/// Waits (on the controller's own events) until the experiment ends.
async fn ended(
    events: &mut tokio::sync::broadcast::Receiver<TuningEvent>,
    id: &str,
) -> ExperimentPhase {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(TuningEvent::Experiment {
                experiment_id,
                phase,
            }) = events.recv().await
                && experiment_id == id
                && phase.is_terminal()
            {
                return phase;
            }
        }
    })
    .await
    .expect("the experiment did not end within a minute")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_experiment_whose_controller_died_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_dir(dir.path()).await.unwrap();
    let resources = Resources::new(store.clone(), registry());
    let controller = controller(dir.path(), resources.clone());
    let ns = Namespace::default();
    // What a controller that died mid-trial leaves behind: the experiment
    // running under its (now lapsed) lease, one trial done, one interrupted.
    let mut e = controller
        .create(&experiment_yaml("orphan"), &ns, None)
        .await
        .unwrap();
    let dead = store
        .acquire_lease(
            &format!("experiment/{}", e.id),
            "dead-host:1:1",
            Timestamp::now(),
            1,
        )
        .await
        .unwrap()
        .unwrap();
    let now = Timestamp::now();
    e.started_at = Some(now);
    let status = json!({
        "startTime": now.to_rfc3339(),
        "conditions": [
            {"type": "Created", "status": "True", "reason": "ExperimentCreated", "message": ""},
            {"type": "Running", "status": "True", "reason": "ExperimentRunning", "message": ""},
        ],
    });
    resources
        .replace_status(
            &EXPERIMENT,
            Some("default"),
            "orphan",
            json!({"status": status}),
        )
        .await
        .unwrap();
    let mut stored = Vec::new();
    for (seq, x, phase) in [
        (0, "0.25", TrialPhase::Succeeded),
        (1, "0.75", TrialPhase::Running),
    ] {
        let name = format!("orphan-t{seq}");
        let object = new_trial_object(
            &e,
            &name,
            seq,
            &json!([{"name": "x", "value": x}]),
            &json!({}),
            None,
        );
        let created = resources
            .create(&TRIAL, Some("default"), object, &WriteOptions::default())
            .await
            .unwrap()
            .object;
        let mut t = StoredTrial::from_object(&created).unwrap();
        t.phase = phase;
        t.attempt = 1;
        t.started_at = Some(now);
        t.finished_at = (phase == TrialPhase::Succeeded).then_some(now);
        t.objective = (phase == TrialPhase::Succeeded).then(|| x.parse().unwrap());
        let written = resources
            .replace_status(
                &TRIAL,
                Some("default"),
                &name,
                json!({"status": t.status()}),
            )
            .await
            .unwrap();
        stored.push(StoredTrial::from_object(&written.object).unwrap());
    }
    let (done, interrupted) = (stored[0].clone(), stored[1].clone());

    let mut events = controller.subscribe();
    let handle = controller.start();
    assert_eq!(ended(&mut events, &e.id).await, ExperimentPhase::Succeeded);
    let finished = controller.experiment(&ns, "orphan").await.unwrap();
    assert_eq!(finished.phase, ExperimentPhase::Succeeded);
    assert_eq!(finished.latest_reason(), "ExperimentMaxTrialsReached");

    // The dead controller's lease was taken over: it cannot write.
    let refused = resources
        .replace_status_fenced(
            &EXPERIMENT,
            Some("default"),
            "orphan",
            json!({"status": {}}),
            &dead,
        )
        .await;
    assert!(
        matches!(refused, Err(ResourceError::Fenced { .. })),
        "{refused:?}"
    );

    controller.shutdown();
    handle.await.unwrap();
    let trials = controller.trials(&finished).await.unwrap();
    assert_eq!(trials.len(), 3, "{trials:?}");
    // The finished trial was left alone.
    assert_eq!(trials[0], done);
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
    // Katib's status: counts and the best trial's parameters.
    let object = resources
        .get(&EXPERIMENT, Some("default"), "orphan")
        .await
        .unwrap();
    assert_eq!(object["status"]["trials"], 3);
    assert_eq!(object["status"]["trialsSucceeded"], 3);
    assert_eq!(
        object["status"]["currentOptimalTrial"]["parameterAssignments"],
        best.assignments
    );
    // The suggestion records what was suggested.
    let suggestion = resources
        .get(&oxflow_tuning::kinds::SUGGESTION, Some("default"), "orphan")
        .await
        .unwrap();
    assert_eq!(suggestion["status"]["suggestionCount"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_is_stored_and_a_deleted_experiment_takes_its_trials() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_dir(dir.path()).await.unwrap();
    let resources = Resources::new(store.clone(), registry());
    let controller = controller(dir.path(), resources.clone());
    let ns = Namespace::default();
    let slow = experiment_yaml("orphan").replace(
        "echo loss=${trialParameters.x}",
        "echo x=${trialParameters.x}; sleep 600",
    );
    let e = controller.create(&slow, &ns, None).await.unwrap();
    let mut events = controller.subscribe();
    let handle = controller.start();
    // Wait for the first trial to run.
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(TuningEvent::Trial {
                phase: TrialPhase::Running,
                ..
            }) = events.recv().await
            {
                return;
            }
        }
    })
    .await
    .expect("no trial started");
    // A stop from anywhere is a condition in the stored status.
    let stopped = controller.stop(&ns, "orphan").await.unwrap();
    assert_eq!(stopped.phase, ExperimentPhase::Stopped);
    assert_eq!(ended(&mut events, &e.id).await, ExperimentPhase::Stopped);
    let object = resources
        .get(&EXPERIMENT, Some("default"), "orphan")
        .await
        .unwrap();
    let last = object["status"]["conditions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["type"], "Stopped");
    assert_eq!(last["reason"], "ExperimentStopped");
    // The running trial was killed, not left running.
    let trials = controller.trials(&stopped).await.unwrap();
    assert_eq!(trials.len(), 1);
    assert_eq!(trials[0].phase, TrialPhase::Killed);
    // Its status counts the killed trial once the loop let go.
    let object = resources
        .get(&EXPERIMENT, Some("default"), "orphan")
        .await
        .unwrap();
    assert_eq!(object["status"]["trialsKilled"], 1, "{}", object["status"]);
    // Deleting the experiment deletes its trials and suggestion (owner references).
    controller.delete(&ns, "orphan").await.unwrap();
    let (left, _) = resources
        .list(
            &TRIAL,
            Some("default"),
            &Default::default(),
            &Default::default(),
        )
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    assert!(matches!(
        resources
            .get(&oxflow_tuning::kinds::SUGGESTION, Some("default"), "orphan")
            .await,
        Err(ResourceError::NotFound { .. })
    ));
    controller.shutdown();
    handle.await.unwrap();
}
