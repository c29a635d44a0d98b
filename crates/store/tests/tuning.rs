//! Katib experiments, trials and observation logs, on both backends.

mod common;

use common::{Backend, each_backend};
use oxflow_core::new_id;
use oxflow_core::{ExperimentPhase, Namespace, Timestamp, TrialPhase};
use oxflow_store::{ObservationLogRecord, StoreError, TuningExperimentRecord, TuningTrialRecord};
use serde_json::json;

fn experiment(name: &str) -> TuningExperimentRecord {
    TuningExperimentRecord {
        id: new_id(),
        namespace: Namespace::default(),
        name: name.to_owned(),
        spec: json!({"spec": {"maxTrialCount": 3}}),
        seed: 42,
        options: json!({"workingDir": "/tmp"}),
        phase: ExperimentPhase::Created,
        conditions: json!([]),
        optimal_trial: None,
        created_at: Timestamp::now(),
        started_at: None,
        finished_at: None,
        owner: None,
        heartbeat_at: None,
    }
}

fn trial(e: &TuningExperimentRecord, seq: i64) -> TuningTrialRecord {
    TuningTrialRecord {
        id: new_id(),
        experiment_id: e.id.clone(),
        name: format!("{}-{seq}", e.name),
        seq,
        assignments: json!([{"name": "lr", "value": "0.1"}]),
        tags: json!({}),
        phase: TrialPhase::Created,
        message: None,
        objective: None,
        observation: json!([]),
        log_path: None,
        attempt: 0,
        created_at: Timestamp::now(),
        started_at: None,
        finished_at: None,
    }
}

#[tokio::test]
async fn experiments_trials_and_metrics_round_trip() {
    each_backend(|b: Backend| async move {
        let store = b.store;
        let mut e = experiment("tune-a");
        store.insert_tuning_experiment(&e).await.unwrap();
        assert!(matches!(
            store.insert_tuning_experiment(&experiment("tune-a")).await,
            Err(StoreError::Conflict { .. })
        ));
        e.phase = ExperimentPhase::Running;
        e.conditions = json!([{"type": "Running"}]);
        store.update_tuning_experiment(&e).await.unwrap();
        assert_eq!(
            store
                .get_tuning_experiment(&e.namespace, "tune-a")
                .await
                .unwrap(),
            e
        );
        assert_eq!(
            store
                .list_tuning_experiments_in(&[ExperimentPhase::Running])
                .await
                .unwrap()
                .len(),
            1
        );

        let (t0, t1) = (trial(&e, 0), trial(&e, 1));
        store
            .insert_trials(&[t0.clone(), t1.clone()])
            .await
            .unwrap();
        // A batch with a taken seq writes nothing.
        let mut dup = trial(&e, 1);
        dup.name = "other".into();
        let t2 = trial(&e, 2);
        assert!(matches!(
            store.insert_trials(&[t2, dup]).await,
            Err(StoreError::Conflict { .. })
        ));
        assert_eq!(
            store.list_trials(&e.id).await.unwrap(),
            vec![t0.clone(), t1]
        );

        let mut done = t0.clone();
        done.phase = TrialPhase::Succeeded;
        done.objective = Some(0.25);
        done.observation = json!([{"name": "loss", "min": "0.25"}]);
        let logs = vec![
            ObservationLogRecord {
                time: Some(Timestamp(5)),
                metric_name: "loss".into(),
                value: "0.5".into(),
            },
            ObservationLogRecord {
                time: None,
                metric_name: "loss".into(),
                value: "0.25".into(),
            },
        ];
        store.finish_trial(&done, &logs).await.unwrap();
        assert_eq!(store.list_observation_logs(&t0.id).await.unwrap(), logs);
        assert_eq!(store.list_trials(&e.id).await.unwrap()[0], done);

        store.restart_trial(&t0).await.unwrap();
        assert!(
            store
                .list_observation_logs(&t0.id)
                .await
                .unwrap()
                .is_empty()
        );

        assert!(store.delete_tuning_experiment(&e.id).await.unwrap());
        assert!(store.list_trials(&e.id).await.unwrap().is_empty());
        assert!(!store.delete_tuning_experiment(&e.id).await.unwrap());
    })
    .await;
}

/// A trial's objective is first missing (running), then set, then missing
/// again (re-run), on the same connections: on PostgreSQL a statement first
/// prepared with a NULL must still take a real number afterwards.
#[tokio::test]
async fn objectives_go_from_missing_to_set_and_back() {
    each_backend(|b: Backend| async move {
        let store = b.store;
        let e = experiment("tune-c");
        store.insert_tuning_experiment(&e).await.unwrap();
        let mut with = trial(&e, 0);
        with.objective = Some(0.5);
        store.insert_trials(&[trial(&e, 1), with]).await.unwrap();
        for round in 0..3 {
            for objective in [None, Some(0.125 + round as f64), None, Some(-3.5)] {
                let mut t = store.list_trials(&e.id).await.unwrap()[1].clone();
                t.objective = objective;
                store.update_trial(&t).await.unwrap();
                store.finish_trial(&t, &[]).await.unwrap();
                assert_eq!(
                    store.list_trials(&e.id).await.unwrap()[1].objective,
                    objective,
                    "{}",
                    b.name
                );
            }
        }
        assert_eq!(
            store.list_trials(&e.id).await.unwrap()[0].objective,
            Some(0.5)
        );
    })
    .await;
}

#[tokio::test]
async fn claims_respect_a_live_owner() {
    each_backend(|b: Backend| async move {
        let store = b.store;
        let e = experiment("tune-b");
        store.insert_tuning_experiment(&e).await.unwrap();
        let now = Timestamp(10_000);
        assert!(
            store
                .claim_tuning_experiment(&e.id, "a", now, Timestamp(0))
                .await
                .unwrap()
        );
        assert!(
            !store
                .claim_tuning_experiment(&e.id, "b", now, Timestamp(0))
                .await
                .unwrap()
        );
        // Once a's heartbeat is older than the staleness bound, b may take it.
        assert!(
            store
                .claim_tuning_experiment(&e.id, "b", Timestamp(20_000), Timestamp(15_000))
                .await
                .unwrap()
        );
    })
    .await;
}
