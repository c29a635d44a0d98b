//! Katib's tables from before the resource model (what the migration
//! reads and removes) and the trials' metric reports, on both backends.

mod common;

use common::{Backend, each_backend};
use oxflow_core::new_id;
use oxflow_core::{ExperimentPhase, Namespace, Timestamp, TrialPhase};
use oxflow_store::ResourceKey;
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
async fn legacy_rows_are_read_and_removed_without_their_metrics() {
    each_backend(|b: Backend| async move {
        let store = b.store;
        let e = experiment("tune-a");
        store.insert_tuning_experiment(&e).await.unwrap();
        assert!(matches!(
            store.insert_tuning_experiment(&experiment("tune-a")).await,
            Err(StoreError::Conflict { .. })
        ));
        let (t0, t1) = (trial(&e, 0), trial(&e, 1));
        store
            .insert_trials(&[t1.clone(), t0.clone()])
            .await
            .unwrap();
        assert_eq!(
            store.legacy_tuning_experiments(None).await.unwrap(),
            vec![e.clone()]
        );
        assert_eq!(
            store.legacy_trials(&e.id).await.unwrap(),
            vec![t0.clone(), t1.clone()]
        );
        let logs = vec![ObservationLogRecord {
            time: Some(Timestamp(5)),
            metric_name: "loss".into(),
            value: "0.5".into(),
        }];
        store.append_observation_logs(&t0.id, &logs).await.unwrap();

        // While the legacy trial exists, its reports are no orphans.
        assert_eq!(
            store
                .delete_orphan_observation_logs(("kubeflow.org", "Trial"))
                .await
                .unwrap(),
            0
        );
        assert!(store.delete_legacy_tuning_experiment(&e.id).await.unwrap());
        assert!(store.legacy_trials(&e.id).await.unwrap().is_empty());
        assert!(!store.delete_legacy_tuning_experiment(&e.id).await.unwrap());
        assert_eq!(store.list_observation_logs(&t0.id).await.unwrap(), logs);

        // Owned by a Trial object under the legacy id, they stay; once
        // that is gone too, they go.
        let key = ResourceKey {
            group: "kubeflow.org".into(),
            kind: "Trial".into(),
            namespace: "default".into(),
            name: t0.name.clone(),
        };
        store
            .create_resource(
                &key,
                &t0.id,
                1,
                json!({"metadata": {"name": t0.name}}),
                "trial",
            )
            .await
            .unwrap();
        assert_eq!(
            store
                .delete_orphan_observation_logs(("kubeflow.org", "Trial"))
                .await
                .unwrap(),
            0
        );
        store.delete_resource(&key, None, "trial").await.unwrap();
        assert_eq!(
            store
                .delete_orphan_observation_logs(("kubeflow.org", "Trial"))
                .await
                .unwrap(),
            1
        );
        assert!(
            store
                .list_observation_logs(&t0.id)
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn a_trials_metrics_append_in_order_and_clear() {
    each_backend(|b: Backend| async move {
        let store = b.store;
        let uid = new_id();
        let log = |v: &str, t: Option<i64>| ObservationLogRecord {
            time: t.map(Timestamp),
            metric_name: "loss".into(),
            value: v.into(),
        };
        store
            .append_observation_logs(&uid, &[log("0.5", Some(1)), log("0.25", None)])
            .await
            .unwrap();
        store.append_observation_logs(&uid, &[]).await.unwrap();
        store
            .append_observation_logs(&uid, &[log("unavailable", None)])
            .await
            .unwrap();
        assert_eq!(
            store.list_observation_logs(&uid).await.unwrap(),
            vec![
                log("0.5", Some(1)),
                log("0.25", None),
                log("unavailable", None)
            ]
        );
        store.clear_observation_logs(&uid).await.unwrap();
        assert!(store.list_observation_logs(&uid).await.unwrap().is_empty());
    })
    .await;
}
