//! A data directory from before the resource model, filled through the old
//! schema, moves onto it: every experiment with its trials (ids as uids,
//! outcomes, the best trial, metric reports kept), row by row and only
//! once; one whose spec no longer validates stays in its table; and an
//! experiment that was running when the old version stopped is continued
//! by the controller.

use std::time::Duration;

use oxflow_core::{ExperimentPhase, Namespace, Timestamp, TrialPhase, new_id};
use oxflow_resources::Resources;
use oxflow_store::{ObservationLogRecord, Store, TuningExperimentRecord, TuningTrialRecord};
use oxflow_tuning::kinds::{EXPERIMENT, EXPERIMENT_LABEL, TRIAL};
use oxflow_tuning::spec::Experiment;
use oxflow_tuning::{Migrated, TuningEvent, migrate_legacy};
use serde_json::json;

mod common;

fn legacy_experiment(
    name: &str,
    spec: serde_json::Value,
    phase: ExperimentPhase,
) -> TuningExperimentRecord {
    let now = Timestamp::now();
    TuningExperimentRecord {
        id: new_id(),
        namespace: Namespace::default(),
        name: name.to_owned(),
        spec,
        seed: 7,
        options: json!({"workingDir": "/tmp"}),
        phase,
        conditions: json!([
            {"type": "Created", "status": "True", "reason": "ExperimentCreated", "message": "Experiment is created"},
            {"type": "Running", "status": "True", "reason": "ExperimentRunning", "message": "Experiment is running"},
        ]),
        optimal_trial: Some(format!("{name}-t0")),
        created_at: Timestamp(now.0 - 60_000),
        started_at: Some(now),
        finished_at: None,
        owner: Some("dead-host:4294967294:1".into()),
        heartbeat_at: Some(Timestamp(now.0 - 3_600_000)),
    }
}

fn legacy_trial(
    e: &TuningExperimentRecord,
    seq: i64,
    x: &str,
    phase: TrialPhase,
) -> TuningTrialRecord {
    TuningTrialRecord {
        id: new_id(),
        experiment_id: e.id.clone(),
        name: format!("{}-t{seq}", e.name),
        seq,
        assignments: json!([{"name": "x", "value": x}]),
        tags: json!({}),
        phase,
        message: None,
        objective: (phase == TrialPhase::Succeeded).then(|| x.parse().unwrap()),
        observation: if phase == TrialPhase::Succeeded {
            json!([{"name": "loss", "min": x, "max": x, "latest": x}])
        } else {
            json!([])
        },
        log_path: None,
        attempt: 1,
        created_at: Timestamp::now(),
        started_at: Some(Timestamp::now()),
        finished_at: (phase == TrialPhase::Succeeded).then(Timestamp::now),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_data_directory_moves_onto_the_resource_model_and_runs_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_dir(dir.path()).await.unwrap();
    // Filled through the old schema: a running experiment with one trial
    // done (and its metric reports) and one interrupted, and one whose
    // stored spec no longer validates.
    let spec = Experiment::from_yaml(&common::experiment_yaml("legacy"))
        .unwrap()
        .to_katib_value();
    let e = legacy_experiment("legacy", spec.clone(), ExperimentPhase::Running);
    store.insert_tuning_experiment(&e).await.unwrap();
    let done = legacy_trial(&e, 0, "0.25", TrialPhase::Succeeded);
    let interrupted = legacy_trial(&e, 1, "0.75", TrialPhase::Running);
    store
        .insert_trials(&[done.clone(), interrupted.clone()])
        .await
        .unwrap();
    let report = ObservationLogRecord {
        time: Some(Timestamp(5_000)),
        metric_name: "loss".into(),
        value: "0.25".into(),
    };
    store
        .append_observation_logs(&done.id, std::slice::from_ref(&report))
        .await
        .unwrap();
    let mut broken_spec = spec.clone();
    broken_spec["spec"]["maxTrialCount"] = json!(-3);
    let broken = legacy_experiment("broken", broken_spec, ExperimentPhase::Succeeded);
    store.insert_tuning_experiment(&broken).await.unwrap();

    let resources = Resources::new(store.clone(), common::registry());
    assert_eq!(
        migrate_legacy(&resources).await.unwrap(),
        Migrated { moved: 1, kept: 1 }
    );
    // Once moved, a second start moves nothing; the broken one stays put.
    assert_eq!(
        migrate_legacy(&resources).await.unwrap(),
        Migrated { moved: 0, kept: 1 }
    );
    let left = store.legacy_tuning_experiments(None).await.unwrap();
    assert_eq!(
        left.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["broken"]
    );

    let object = resources
        .get(&EXPERIMENT, Some("default"), "legacy")
        .await
        .unwrap();
    assert_eq!(object["metadata"]["uid"], e.id);
    assert_eq!(
        object["metadata"]["creationTimestamp"],
        e.created_at.to_rfc3339()
    );
    assert_eq!(
        object["metadata"]["annotations"]["tuning.oxflow.dev/working-dir"],
        "/tmp"
    );
    assert_eq!(object["spec"], spec["spec"]);
    assert_eq!(
        object["status"]["currentOptimalTrial"]["bestTrialName"],
        "legacy-t0"
    );
    assert_eq!(object["status"]["trialsSucceeded"], 1);
    assert_eq!(object["status"]["trialsRunning"], 1);
    let trial = resources
        .get(&TRIAL, Some("default"), "legacy-t0")
        .await
        .unwrap();
    assert_eq!(trial["metadata"]["uid"], done.id);
    assert_eq!(trial["metadata"]["labels"][EXPERIMENT_LABEL], "legacy");
    assert_eq!(trial["metadata"]["ownerReferences"][0]["uid"], e.id);
    assert_eq!(trial["status"]["oxflow"]["objective"], 0.25);
    assert_eq!(trial["status"]["conditions"][1]["type"], "Succeeded");
    // Its metric reports are still its own.
    assert_eq!(
        store.list_observation_logs(&done.id).await.unwrap(),
        vec![report]
    );

    // The running one is continued, as after a restart.
    let controller = common::controller(dir.path(), resources.clone());
    let mut events = controller.subscribe();
    let handle = controller.start();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(TuningEvent::Experiment {
                experiment_id,
                phase,
            }) = events.recv().await
                && experiment_id == e.id
                && phase.is_terminal()
            {
                return;
            }
        }
    })
    .await
    .expect("the migrated experiment did not finish");
    controller.shutdown();
    handle.await.unwrap();
    let finished = controller
        .experiment(&Namespace::default(), "legacy")
        .await
        .unwrap();
    assert_eq!(finished.phase, ExperimentPhase::Succeeded);
    let trials = controller.trials(&finished).await.unwrap();
    assert_eq!(trials.len(), 3);
    assert_eq!(trials[0].id, done.id);
    assert_eq!(trials[0].attempt, 1, "a finished trial is left alone");
    assert_eq!(trials[1].id, interrupted.id);
    assert_eq!(trials[1].attempt, 2, "the interrupted trial ran again");
    assert_eq!(trials[1].objective, Some(0.75));
}
