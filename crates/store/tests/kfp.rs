//! The KFP resources (experiments, pipelines, versions, recurring runs, the
//! run fields the API adds) and the generic listing, on SQLite and PostgreSQL.

mod common;

use std::borrow::Cow;
use std::collections::HashSet;
use std::future::Future;

use common::{
    Backend, each_backend, each_empty_database, experiment, ns, pipeline, recurring_run, run,
    version,
};
use oxflow_core::{RunState, Timestamp};
use oxflow_store::{
    Dialect, Filter, FilterOp, FilterValue, ListQuery, Page, RunRecord, Sort, StateChange,
    StorageState, Store, StoreError,
};
use serde_json::json;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Row, SqlSafeStr};

use FilterOp::*;

fn s(v: &str) -> FilterValue {
    FilterValue::String(v.into())
}

fn t(ms: i64) -> FilterValue {
    FilterValue::Timestamp(Timestamp(ms))
}

fn strings(v: &[&str]) -> FilterValue {
    FilterValue::Strings(v.iter().map(|x| x.to_string()).collect())
}

fn f(field: &str, op: FilterOp, value: FilterValue) -> Filter {
    Filter::new(field, op, value)
}

fn filtered(filters: Vec<Filter>) -> ListQuery {
    ListQuery {
        filters,
        page_size: 1000,
        ..ListQuery::default()
    }
}

fn ids<T>(page: &Page<T>, id: fn(&T) -> &str) -> Vec<String> {
    page.items.iter().map(|x| id(x).to_owned()).collect()
}

fn run_id(r: &RunRecord) -> &str {
    &r.id
}

/// Fetches every page of a listing, asserting that each page but the last
/// is full and that `total_size` is the same on every page.
async fn all_pages<T, F, Fut>(mut q: ListQuery, fetch: F) -> Vec<Vec<T>>
where
    F: Fn(ListQuery) -> Fut,
    Fut: Future<Output = Result<Page<T>, StoreError>>,
{
    let mut pages = Vec::new();
    let mut total = None;
    loop {
        let page = fetch(q.clone()).await.unwrap();
        assert_eq!(*total.get_or_insert(page.total_size), page.total_size);
        let done = page.next_page_token.is_none();
        if !done {
            assert_eq!(page.items.len() as i64, q.effective_page_size());
        }
        pages.push(page.items);
        if done {
            return pages;
        }
        q.page_token = page.next_page_token;
    }
}

#[tokio::test]
async fn runs_new_fields_round_trip() {
    each_backend(|b: Backend| async move {
        let mut full = run("full", "team-a", 1_000);
        full.experiment_id = Some("e1".into());
        full.description = "Ünïcödé 'description'".into();
        full.storage_state = StorageState::Archived;
        full.pipeline_id = Some("p1".into());
        full.pipeline_version_id = Some("v1".into());
        full.recurring_run_id = Some("rr1".into());
        full.scheduled_at = Some(Timestamp(900));
        full.state = RunState::Failed;
        full.error = Some("boom".into());
        full.state_history = vec![
            StateChange {
                update_time: Timestamp(1_000),
                state: RunState::Pending,
                error: None,
            },
            StateChange {
                update_time: Timestamp(1_500),
                state: RunState::Failed,
                error: Some("boom".into()),
            },
        ];
        b.store.insert_run(&full).await.unwrap();
        assert_eq!(b.store.get_run("full").await.unwrap(), Some(full.clone()));

        // An empty history is filled with the initial state (and error).
        let bare = RunRecord {
            id: "bare".into(),
            created_at: Timestamp(2_000),
            state: RunState::Running,
            error: Some("already odd".into()),
            ..RunRecord::default()
        };
        b.store.insert_run(&bare).await.unwrap();
        let got = b.store.get_run("bare").await.unwrap().unwrap();
        let expected = RunRecord {
            state_history: vec![StateChange {
                update_time: Timestamp(2_000),
                state: RunState::Running,
                error: Some("already odd".into()),
            }],
            ..bare.clone()
        };
        assert_eq!(got, expected, "{}", b.name);
        assert_eq!(got.storage_state, StorageState::Available);
        assert_eq!(got.namespace, ns("default"));

        // The history is stored as the documented JSON.
        let text: String = sqlx::query("SELECT state_history FROM runs WHERE id = 'full'")
            .fetch_one(b.store.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        let stored: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            stored,
            json!([
                {"update_time": 1000, "state": "PENDING"},
                {"update_time": 1500, "state": "FAILED", "error": "boom"}
            ])
        );

        // A history that is not a list of state changes is reported, not panicked on.
        sqlx::query("UPDATE runs SET state_history = '[{\"state\": \"DONE\"}]' WHERE id = 'bare'")
            .execute(b.store.pool())
            .await
            .unwrap();
        let err = b.store.get_run("bare").await.unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt { ref what, .. } if what == "run bare"),
            "{err}"
        );
    })
    .await;
}

#[tokio::test]
async fn state_history_grows_on_state_changes() {
    each_backend(|b: Backend| async move {
        let original = run("r1", "team-a", 10);
        b.store.insert_run(&original).await.unwrap();
        let before = Timestamp::now();

        // (change, expected states in the history afterwards)
        type Change = fn(&mut RunRecord);
        let steps: Vec<(Change, Vec<RunState>)> = vec![
            (
                |r| r.display_name = "renamed".into(),
                vec![RunState::Pending],
            ),
            (
                |r| r.state = RunState::Running,
                vec![RunState::Pending, RunState::Running],
            ),
            (
                |r| r.heartbeat_at = Some(Timestamp(99)),
                vec![RunState::Pending, RunState::Running],
            ),
            // The caller's copy of the history is ignored.
            (
                |r| r.state_history.clear(),
                vec![RunState::Pending, RunState::Running],
            ),
            (
                |r| {
                    r.state = RunState::Failed;
                    r.error = Some("task train failed".into());
                },
                vec![RunState::Pending, RunState::Running, RunState::Failed],
            ),
            // A retried run goes back to RUNNING: a new entry, not a dedup.
            (
                |r| {
                    r.state = RunState::Running;
                    r.error = None;
                },
                vec![
                    RunState::Pending,
                    RunState::Running,
                    RunState::Failed,
                    RunState::Running,
                ],
            ),
        ];
        let mut record = original.clone();
        for (i, (change, states)) in steps.into_iter().enumerate() {
            change(&mut record);
            b.store.update_run(&record).await.unwrap();
            let got = b.store.get_run("r1").await.unwrap().unwrap();
            let got_states: Vec<RunState> = got.state_history.iter().map(|c| c.state).collect();
            assert_eq!(got_states, states, "{}: step {i}", b.name);
            assert_eq!(got.state, record.state);
        }
        let history = b.store.get_run("r1").await.unwrap().unwrap().state_history;
        assert_eq!(history[0].update_time, Timestamp(10));
        assert_eq!(history[2].error.as_deref(), Some("task train failed"));
        assert_eq!(history[3].error, None);
        for pair in history[1..].windows(2) {
            assert!(pair[0].update_time <= pair[1].update_time, "{history:?}");
        }
        assert!(history[1].update_time >= before);

        // Concurrent writers of the same new state record it once.
        b.store.insert_run(&run("r2", "team-a", 10)).await.unwrap();
        let mut writers = tokio::task::JoinSet::new();
        for i in 0..6 {
            let store = b.store.clone();
            let mut r = run("r2", "team-a", 10);
            r.state = RunState::Canceling;
            r.heartbeat_at = Some(Timestamp(i));
            writers.spawn(async move { store.update_run(&r).await.unwrap() });
        }
        while let Some(done) = writers.join_next().await {
            done.unwrap();
        }
        let states: Vec<RunState> = b
            .store
            .get_run("r2")
            .await
            .unwrap()
            .unwrap()
            .state_history
            .iter()
            .map(|c| c.state)
            .collect();
        assert_eq!(
            states,
            [RunState::Pending, RunState::Canceling],
            "{}",
            b.name
        );

        let missing = b.store.update_run(&run("nope", "team-a", 1)).await;
        assert!(
            matches!(missing, Err(StoreError::NotFound { kind: "run", ref id }) if id == "nope"),
            "{missing:?}"
        );
        let mut missing = run("nope", "team-a", 1);
        missing.state = RunState::Running;
        let missing = b.store.update_run(&missing).await;
        assert!(
            matches!(missing, Err(StoreError::NotFound { kind: "run", .. })),
            "{missing:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn storage_state_survives_engine_updates() {
    each_backend(|b: Backend| async move {
        let mut r = run("r1", "team-a", 10);
        r.experiment_id = Some("e1".into());
        r.description = "first".into();
        b.store.insert_run(&r).await.unwrap();
        b.store
            .set_run_storage_state("r1", StorageState::Archived)
            .await
            .unwrap();
        // An engine writes back the copy it read before the archive, with
        // submission-time fields tampered: none of them change.
        let mut stale = r.clone();
        stale.state = RunState::Running;
        stale.experiment_id = Some("other".into());
        stale.description = "changed".into();
        stale.pipeline_version_id = Some("v9".into());
        stale.recurring_run_id = Some("rr9".into());
        stale.scheduled_at = Some(Timestamp(5));
        b.store.update_run(&stale).await.unwrap();
        let got = b.store.get_run("r1").await.unwrap().unwrap();
        assert_eq!(got.storage_state, StorageState::Archived);
        assert_eq!(got.experiment_id.as_deref(), Some("e1"));
        assert_eq!(got.description, "first");
        assert_eq!(got.pipeline_version_id, None);
        assert_eq!(got.recurring_run_id, None);
        assert_eq!(got.scheduled_at, None);
        assert_eq!(got.state, RunState::Running);

        b.store
            .set_run_storage_state("r1", StorageState::Available)
            .await
            .unwrap();
        assert_eq!(
            b.store.get_run("r1").await.unwrap().unwrap().storage_state,
            StorageState::Available
        );
        let missing = b
            .store
            .set_run_storage_state("nope", StorageState::Archived)
            .await;
        assert!(
            matches!(missing, Err(StoreError::NotFound { kind: "run", .. })),
            "{missing:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn experiments_round_trip_and_conflict_on_names() {
    each_backend(|b: Backend| async move {
        let mut full = experiment("e1", "team-a", "demo-exp", 100);
        full.storage_state = StorageState::Archived;
        full.last_run_created_at = Some(Timestamp(150));
        full.description = "Ünïcödé 'quoted'".into();
        let cases = [
            full.clone(),
            experiment("e2", "team-a", "Demo-Exp", 200),
            // Same name, other namespace.
            experiment("e3", "team-b", "demo-exp", 300),
            experiment("e4", "team-a", "", 400),
        ];
        for e in &cases {
            b.store.insert_experiment(e).await.unwrap();
        }
        for e in &cases {
            assert_eq!(b.store.get_experiment(&e.id).await.unwrap().as_ref(), Some(e));
            assert_eq!(
                b.store
                    .get_experiment_by_name(&e.namespace, &e.display_name)
                    .await
                    .unwrap()
                    .as_ref(),
                Some(e)
            );
        }
        assert_eq!(b.store.get_experiment("nope").await.unwrap(), None);
        assert_eq!(
            b.store
                .get_experiment_by_name(&ns("team-c"), "demo-exp")
                .await
                .unwrap(),
            None
        );

        // (record, expected error): a taken name in the same namespace is a
        // conflict, archived or not; a taken id is a database error.
        let dup_name = experiment("e9", "team-a", "demo-exp", 500);
        let dup_id = experiment("e1", "team-c", "fresh", 500);
        let err = b.store.insert_experiment(&dup_name).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict { kind: "experiment", ref name } if name == "demo-exp"),
            "{}: {err}",
            b.name
        );
        assert_eq!(
            err.to_string(),
            "experiment \"demo-exp\" already exists; choose another name"
        );
        let err = b.store.insert_experiment(&dup_id).await.unwrap_err();
        assert!(matches!(err, StoreError::Database { .. }), "{err}");
        assert_eq!(b.store.get_experiment("e9").await.unwrap(), None);

        // touch_last_run only moves forward.
        for (at, expected) in [(100, 150), (160, 160), (155, 160), (1_000, 1_000)] {
            b.store.touch_last_run("e1", Timestamp(at)).await.unwrap();
            let got = b.store.get_experiment("e1").await.unwrap().unwrap();
            assert_eq!(got.last_run_created_at, Some(Timestamp(expected)), "{at}");
        }
        b.store.touch_last_run("e2", Timestamp(7)).await.unwrap();
        assert_eq!(
            b.store.get_experiment("e2").await.unwrap().unwrap().last_run_created_at,
            Some(Timestamp(7))
        );
        let missing = b.store.touch_last_run("nope", Timestamp(1)).await;
        assert!(
            matches!(missing, Err(StoreError::NotFound { kind: "experiment", .. })),
            "{missing:?}"
        );

        // Deleting keeps the runs, which still name the experiment.
        let mut r = run("r1", "team-a", 1);
        r.experiment_id = Some("e2".into());
        b.store.insert_run(&r).await.unwrap();
        assert!(b.store.delete_experiment("e2").await.unwrap());
        assert!(!b.store.delete_experiment("e2").await.unwrap());
        assert_eq!(b.store.get_experiment("e2").await.unwrap(), None);
        assert_eq!(
            b.store.get_run("r1").await.unwrap().unwrap().experiment_id.as_deref(),
            Some("e2")
        );
        // The name is free again.
        b.store
            .insert_experiment(&experiment("e5", "team-a", "Demo-Exp", 600))
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn archiving_an_experiment_archives_its_runs_and_stops_its_schedules() {
    each_backend(|b: Backend| async move {
        b.store
            .insert_experiment(&experiment("e1", "team-a", "one", 1))
            .await
            .unwrap();
        b.store
            .insert_experiment(&experiment("e2", "team-a", "two", 2))
            .await
            .unwrap();
        for (id, exp) in [
            ("r1", Some("e1")),
            ("r2", Some("e1")),
            ("r3", Some("e2")),
            ("r4", None),
        ] {
            let mut r = run(id, "team-a", 1);
            r.experiment_id = exp.map(Into::into);
            b.store.insert_run(&r).await.unwrap();
        }
        for (id, exp, enabled) in [
            ("rr1", "e1", true),
            ("rr2", "e1", false),
            ("rr3", "e2", true),
        ] {
            let mut rr = recurring_run(id, "team-a", 1);
            rr.experiment_id = Some(exp.into());
            rr.enabled = enabled;
            b.store.insert_recurring_run(&rr).await.unwrap();
        }

        b.store
            .set_experiment_storage_state("e1", StorageState::Archived, Timestamp(50))
            .await
            .unwrap();
        let storage = |id: &'static str| {
            let store = b.store.clone();
            async move { store.get_run(id).await.unwrap().unwrap().storage_state }
        };
        let schedule = |id: &'static str| {
            let store = b.store.clone();
            async move {
                let rr = store.get_recurring_run(id).await.unwrap().unwrap();
                (rr.enabled, rr.updated_at.millis())
            }
        };
        assert_eq!(
            b.store
                .get_experiment("e1")
                .await
                .unwrap()
                .unwrap()
                .storage_state,
            StorageState::Archived
        );
        assert_eq!(storage("r1").await, StorageState::Archived);
        assert_eq!(storage("r2").await, StorageState::Archived);
        assert_eq!(storage("r3").await, StorageState::Available);
        assert_eq!(storage("r4").await, StorageState::Available);
        assert_eq!(schedule("rr1").await, (false, 50));
        // Already disabled: untouched.
        assert_eq!(schedule("rr2").await, (false, 1));
        assert_eq!(schedule("rr3").await, (true, 1));

        // Restoring the experiment leaves its runs archived (as KFP does).
        b.store
            .set_experiment_storage_state("e1", StorageState::Available, Timestamp(60))
            .await
            .unwrap();
        assert_eq!(
            b.store
                .get_experiment("e1")
                .await
                .unwrap()
                .unwrap()
                .storage_state,
            StorageState::Available
        );
        assert_eq!(storage("r1").await, StorageState::Archived);
        assert_eq!(schedule("rr1").await, (false, 50));

        let missing = b
            .store
            .set_experiment_storage_state("nope", StorageState::Archived, Timestamp(1))
            .await;
        assert!(
            matches!(
                missing,
                Err(StoreError::NotFound {
                    kind: "experiment",
                    ..
                })
            ),
            "{missing:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn pipelines_and_versions_round_trip() {
    each_backend(|b: Backend| async move {
        let shared = pipeline("p1", "", "hello", 10);
        let mine = pipeline("p2", "team-a", "hello", 20);
        let theirs = pipeline("p3", "team-b", "hello", 30);
        for p in [&shared, &mine, &theirs] {
            b.store.insert_pipeline(p).await.unwrap();
        }
        for p in [&shared, &mine, &theirs] {
            assert_eq!(b.store.get_pipeline(&p.id).await.unwrap().as_ref(), Some(p));
            assert_eq!(
                b.store
                    .get_pipeline_by_name(p.namespace.as_ref(), "hello")
                    .await
                    .unwrap()
                    .as_ref(),
                Some(p)
            );
        }
        assert_eq!(b.store.get_pipeline("nope").await.unwrap(), None);
        assert_eq!(
            b.store.get_pipeline_by_name(None, "other").await.unwrap(),
            None
        );
        assert_eq!(
            b.store
                .get_pipeline_by_name(Some(&ns("team-c")), "hello")
                .await
                .unwrap(),
            None
        );

        // Names are unique per namespace, and among shared pipelines.
        for dup in [pipeline("p9", "", "hello", 1), pipeline("p9", "team-a", "hello", 1)] {
            let err = b.store.insert_pipeline(&dup).await.unwrap_err();
            assert!(
                matches!(err, StoreError::Conflict { kind: "pipeline", ref name } if name == "hello"),
                "{}: {err}",
                b.name
            );
        }
        let err = b
            .store
            .insert_pipeline(&pipeline("p1", "team-c", "fresh", 1))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Database { .. }), "{err}");

        // Versions.
        let mut v1 = version("v1", "p2", "v1", 100);
        v1.code_source_url = Some("https://example.com/src.py".into());
        v1.description = "first".into();
        let v2 = version("v2", "p2", "v2", 200);
        let v3 = version("v3", "p1", "v1", 300);
        for v in [&v1, &v2, &v3] {
            b.store.insert_pipeline_version(v).await.unwrap();
        }
        for v in [&v1, &v2, &v3] {
            assert_eq!(b.store.get_pipeline_version(&v.id).await.unwrap().as_ref(), Some(v));
        }
        assert_eq!(b.store.get_pipeline_version("nope").await.unwrap(), None);
        let listed = b
            .store
            .list_pipeline_versions("p2", &ListQuery::default())
            .await
            .unwrap();
        assert_eq!(listed.items, vec![v1.clone(), v2.clone()]);
        assert_eq!(listed.total_size, 2);
        let newest = b
            .store
            .list_pipeline_versions(
                "p2",
                &ListQuery {
                    sort: Sort::desc("created_at"),
                    page_size: 1,
                    ..ListQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(newest.items, vec![v2.clone()]);
        assert!(newest.next_page_token.is_some());
        assert_eq!(
            b.store
                .list_pipeline_versions("nope", &ListQuery::default())
                .await
                .unwrap()
                .items,
            vec![]
        );

        let err = b
            .store
            .insert_pipeline_version(&version("v9", "p2", "v1", 1))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict { kind: "pipeline version", ref name } if name == "v1"),
            "{}: {err}",
            b.name
        );
        let err = b
            .store
            .insert_pipeline_version(&version("v9", "missing", "v1", 1))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::NotFound { kind: "pipeline", ref id } if id == "missing"),
            "{}: {err}",
            b.name
        );
        assert_eq!(b.store.get_pipeline_version("v9").await.unwrap(), None);

        assert!(b.store.delete_pipeline_version("v2").await.unwrap());
        assert!(!b.store.delete_pipeline_version("v2").await.unwrap());
        assert_eq!(
            b.store
                .list_pipeline_versions("p2", &ListQuery::default())
                .await
                .unwrap()
                .items,
            vec![v1]
        );
    })
    .await;
}

#[tokio::test]
async fn pipeline_with_first_version_is_atomic() {
    each_backend(|b: Backend| async move {
        b.store
            .insert_pipeline_with_version(
                &pipeline("p1", "team-a", "one", 1),
                &version("v1", "ignored", "v1", 1),
            )
            .await
            .unwrap();
        // The version is stored under the new pipeline whatever it said.
        assert_eq!(
            b.store
                .get_pipeline_version("v1")
                .await
                .unwrap()
                .unwrap()
                .pipeline_id,
            "p1"
        );

        // (pipeline, version, what must have failed)
        let cases = [
            // The version's id is taken: the pipeline insert is rolled back.
            (
                pipeline("p2", "team-a", "two", 2),
                version("v1", "p2", "v1", 2),
                "database",
            ),
            // The pipeline's name is taken: nothing of the version is written.
            (
                pipeline("p3", "team-a", "one", 3),
                version("v3", "p3", "v1", 3),
                "conflict",
            ),
        ];
        for (p, v, expected) in cases {
            let err = b
                .store
                .insert_pipeline_with_version(&p, &v)
                .await
                .unwrap_err();
            let kind = match err {
                StoreError::Database { .. } => "database",
                StoreError::Conflict {
                    kind: "pipeline", ..
                } => "conflict",
                ref other => panic!("{}: {other}", b.name),
            };
            assert_eq!(kind, expected, "{}: {err}", b.name);
            assert_eq!(
                b.store.get_pipeline(&p.id).await.unwrap(),
                None,
                "{}",
                b.name
            );
            if v.id != "v1" {
                assert_eq!(b.store.get_pipeline_version(&v.id).await.unwrap(), None);
            }
        }
        let all = b.store.list_pipelines(&ListQuery::default()).await.unwrap();
        assert_eq!(all.total_size, 1);
        // The pool is healthy afterwards: no transaction left open.
        b.store
            .insert_pipeline_with_version(
                &pipeline("p2", "team-a", "two", 2),
                &version("v2", "p2", "v1", 2),
            )
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn deleting_a_pipeline_needs_cascade_when_it_has_versions() {
    each_backend(|b: Backend| async move {
        b.store
            .insert_pipeline_with_version(&pipeline("p1", "", "one", 1), &version("v1", "p1", "a", 1))
            .await
            .unwrap();
        b.store
            .insert_pipeline_version(&version("v2", "p1", "b", 2))
            .await
            .unwrap();
        b.store
            .insert_pipeline(&pipeline("p2", "", "two", 2))
            .await
            .unwrap();

        let err = b.store.delete_pipeline("p1", false).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::NotEmpty { kind: "pipeline", ref id, children: "pipeline versions", count: 2 }
                    if id == "p1"
            ),
            "{}: {err}",
            b.name
        );
        assert!(err.to_string().contains("cascading"), "{err}");
        assert!(b.store.get_pipeline("p1").await.unwrap().is_some());
        assert!(b.store.get_pipeline_version("v1").await.unwrap().is_some());

        // (id, cascade, existed)
        for (id, cascade, existed) in [
            ("p2", false, true),
            ("p2", false, false),
            ("p1", true, true),
            ("p1", true, false),
            ("nope", true, false),
        ] {
            assert_eq!(
                b.store.delete_pipeline(id, cascade).await.unwrap(),
                existed,
                "{}: {id} {cascade}",
                b.name
            );
            assert_eq!(b.store.get_pipeline(id).await.unwrap(), None);
        }
        assert_eq!(b.store.get_pipeline_version("v1").await.unwrap(), None);
        assert_eq!(b.store.get_pipeline_version("v2").await.unwrap(), None);
        // The names are free again.
        b.store
            .insert_pipeline_with_version(&pipeline("p3", "", "one", 3), &version("v3", "p3", "a", 3))
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn recurring_runs_round_trip() {
    each_backend(|b: Backend| async move {
        let mut from_version = recurring_run("rr2", "team-a", 20);
        from_version.spec = None;
        from_version.pipeline_id = Some("p1".into());
        from_version.pipeline_version_id = Some("v1".into());
        from_version.experiment_id = Some("e1".into());
        from_version.trigger = json!({"periodic_schedule": {"interval_second": 3600}});
        from_version.max_concurrency = 10;
        from_version.no_catchup = true;
        from_version.enabled = false;
        from_version.last_fired_at = Some(Timestamp(19));
        from_version.description = "every hour".into();
        let cases = [recurring_run("rr1", "team-a", 10), from_version];
        for rr in &cases {
            b.store.insert_recurring_run(rr).await.unwrap();
        }
        for rr in &cases {
            assert_eq!(
                b.store.get_recurring_run(&rr.id).await.unwrap().as_ref(),
                Some(rr)
            );
        }
        assert_eq!(b.store.get_recurring_run("nope").await.unwrap(), None);
        let dup = b.store.insert_recurring_run(&cases[0]).await.unwrap_err();
        assert!(matches!(dup, StoreError::Database { .. }), "{dup}");

        for (enabled, now) in [(false, 30), (false, 31), (true, 40)] {
            b.store
                .set_recurring_run_enabled("rr1", enabled, Timestamp(now))
                .await
                .unwrap();
            let got = b.store.get_recurring_run("rr1").await.unwrap().unwrap();
            assert_eq!((got.enabled, got.updated_at), (enabled, Timestamp(now)));
            assert_eq!(got.created_at, Timestamp(10));
        }
        let missing = b
            .store
            .set_recurring_run_enabled("nope", true, Timestamp(1))
            .await;
        assert!(
            matches!(
                missing,
                Err(StoreError::NotFound {
                    kind: "recurring run",
                    ..
                })
            ),
            "{missing:?}"
        );

        // Active runs: not terminal, of this schedule only.
        for (id, rr, state) in [
            ("a", Some("rr1"), RunState::Pending),
            ("b", Some("rr1"), RunState::Running),
            ("c", Some("rr1"), RunState::Canceling),
            ("d", Some("rr1"), RunState::Succeeded),
            ("e", Some("rr1"), RunState::Failed),
            ("f", Some("rr1"), RunState::Canceled),
            ("g", Some("rr2"), RunState::Running),
            ("h", None, RunState::Running),
        ] {
            let mut r = run(id, "team-a", 1);
            r.recurring_run_id = rr.map(Into::into);
            r.state = state;
            b.store.insert_run(&r).await.unwrap();
        }
        assert_eq!(b.store.count_active_runs("rr1").await.unwrap(), 3);
        assert_eq!(b.store.count_active_runs("rr2").await.unwrap(), 1);
        assert_eq!(b.store.count_active_runs("nope").await.unwrap(), 0);

        assert!(b.store.delete_recurring_run("rr1").await.unwrap());
        assert!(!b.store.delete_recurring_run("rr1").await.unwrap());
        assert_eq!(b.store.get_recurring_run("rr1").await.unwrap(), None);
        // Its runs stay.
        assert!(b.store.get_run("a").await.unwrap().is_some());
    })
    .await;
}

#[tokio::test]
async fn set_last_fired_is_compare_and_set() {
    each_backend(|b: Backend| async move {
        b.store
            .insert_recurring_run(&recurring_run("rr1", "team-a", 1))
            .await
            .unwrap();
        // (expected, fired, succeeds, last_fired_at afterwards)
        let steps: [(Option<i64>, i64, bool, Option<i64>); 7] = [
            (Some(100), 200, false, None),
            (None, 100, true, Some(100)),
            (None, 200, false, Some(100)),
            (Some(99), 200, false, Some(100)),
            (Some(100), 200, true, Some(200)),
            (Some(100), 300, false, Some(200)),
            (Some(200), 300, true, Some(300)),
        ];
        for (i, (expected, fired, succeeds, after)) in steps.into_iter().enumerate() {
            let got = b
                .store
                .set_last_fired("rr1", expected.map(Timestamp), Timestamp(fired))
                .await
                .unwrap();
            assert_eq!(got, succeeds, "{}: step {i}", b.name);
            let rr = b.store.get_recurring_run("rr1").await.unwrap().unwrap();
            assert_eq!(
                rr.last_fired_at,
                after.map(Timestamp),
                "{}: step {i}",
                b.name
            );
        }
        assert!(
            !b.store
                .set_last_fired("nope", None, Timestamp(1))
                .await
                .unwrap()
        );

        // Schedulers racing for the same slot: exactly one wins, from a
        // NULL start and from a set one.
        b.store
            .insert_recurring_run(&recurring_run("rr2", "team-a", 1))
            .await
            .unwrap();
        for (id, expected, fired) in [("rr2", None, 1_000), ("rr1", Some(300), 400)] {
            let mut racers = tokio::task::JoinSet::new();
            for _ in 0..8 {
                let store = b.store.clone();
                racers.spawn(async move {
                    store
                        .set_last_fired(id, expected.map(Timestamp), Timestamp(fired))
                        .await
                        .unwrap()
                });
            }
            let mut winners = 0;
            while let Some(won) = racers.join_next().await {
                winners += usize::from(won.unwrap());
            }
            assert_eq!(winners, 1, "{}: {id}", b.name);
            let rr = b.store.get_recurring_run(id).await.unwrap().unwrap();
            assert_eq!(rr.last_fired_at, Some(Timestamp(fired)));
        }
    })
    .await;
}

/// Runs with a spread of every filterable field; r4 has every optional
/// field unset, r6 lives in another namespace.
async fn filter_fixture(store: &Store) {
    // (id, namespace, display_name, state, experiment, created, finished,
    //  storage, recurring run, pipeline version)
    type Row = (
        &'static str,
        &'static str,
        &'static str,
        RunState,
        Option<&'static str>,
        i64,
        Option<i64>,
        StorageState,
        Option<&'static str>,
        Option<&'static str>,
    );
    use RunState::*;
    use StorageState::*;
    let rows: [Row; 6] = [
        (
            "r1",
            "team-a",
            "Alpha run",
            Succeeded,
            Some("e1"),
            100,
            Some(150),
            Available,
            Some("rr1"),
            Some("v1"),
        ),
        (
            "r2",
            "team-a",
            "beta",
            Running,
            Some("e1"),
            200,
            None,
            Archived,
            None,
            Some("v2"),
        ),
        (
            "r3",
            "team-a",
            "Gamma_50%",
            Failed,
            Some("e2"),
            300,
            Some(400),
            Available,
            Some("rr1"),
            None,
        ),
        (
            "r4", "team-a", "alphabet", Pending, None, 400, None, Available, None, None,
        ),
        (
            "r5",
            "team-a",
            "delta!",
            Canceled,
            Some("e2"),
            500,
            Some(550),
            Archived,
            Some("rr2"),
            Some("v2"),
        ),
        (
            "r6",
            "team-b",
            "beta",
            Running,
            Some("e1"),
            600,
            None,
            Available,
            None,
            None,
        ),
    ];
    for (id, namespace, name, state, exp, created, finished, storage, rr, pv) in rows {
        let mut r = run(id, namespace, created);
        r.display_name = name.into();
        r.state = state;
        r.experiment_id = exp.map(Into::into);
        r.finished_at = finished.map(Timestamp);
        r.storage_state = storage;
        r.recurring_run_id = rr.map(Into::into);
        r.pipeline_version_id = pv.map(Into::into);
        r.scheduled_at = Some(Timestamp(created - 10));
        store.insert_run(&r).await.unwrap();
    }
}

#[tokio::test]
async fn run_filters_cover_every_operation() {
    each_backend(|b: Backend| async move {
        filter_fixture(&b.store).await;
        let cases: Vec<(Vec<Filter>, Vec<&str>)> = vec![
            (vec![], vec!["r1", "r2", "r3", "r4", "r5", "r6"]),
            // Strings: bytewise, case-sensitive comparisons.
            (vec![f("display_name", Equals, s("beta"))], vec!["r2", "r6"]),
            (vec![f("display_name", Equals, s("Beta"))], vec![]),
            (vec![f("name", Equals, s("beta"))], vec!["r2", "r6"]),
            (
                vec![f("display_name", NotEquals, s("beta"))],
                vec!["r1", "r3", "r4", "r5"],
            ),
            (
                vec![f("display_name", GreaterThan, s("alpha"))],
                vec!["r2", "r4", "r5", "r6"],
            ),
            (
                vec![f("display_name", GreaterThanEquals, s("beta"))],
                vec!["r2", "r5", "r6"],
            ),
            (
                vec![f("display_name", LessThan, s("alpha"))],
                vec!["r1", "r3"],
            ),
            (
                vec![f("display_name", LessThanEquals, s("alphabet"))],
                vec!["r1", "r3", "r4"],
            ),
            (
                vec![f("display_name", In, strings(&["beta", "delta!", "nope"]))],
                vec!["r2", "r5", "r6"],
            ),
            (vec![f("display_name", In, strings(&[]))], vec![]),
            // Substrings: ASCII case folded, LIKE wildcards literal.
            (
                vec![f("display_name", IsSubstring, s("ALPHA"))],
                vec!["r1", "r4"],
            ),
            (vec![f("display_name", IsSubstring, s("a_5"))], vec!["r3"]),
            (vec![f("display_name", IsSubstring, s("%"))], vec!["r3"]),
            (vec![f("display_name", IsSubstring, s("_"))], vec!["r3"]),
            (vec![f("display_name", IsSubstring, s("!"))], vec!["r5"]),
            (vec![f("display_name", IsSubstring, s("a%"))], vec![]),
            (
                vec![f("display_name", IsSubstring, s(""))],
                vec!["r1", "r2", "r3", "r4", "r5", "r6"],
            ),
            (vec![f("state", Equals, s("RUNNING"))], vec!["r2", "r6"]),
            (
                vec![f("state", In, strings(&["SUCCEEDED", "FAILED"]))],
                vec!["r1", "r3"],
            ),
            // Unset fields: never equal, always "not equal".
            (
                vec![f("experiment_id", Equals, s("e1"))],
                vec!["r1", "r2", "r6"],
            ),
            (
                vec![f("experiment_id", NotEquals, s("e1"))],
                vec!["r3", "r4", "r5"],
            ),
            (
                vec![f("experiment_id", In, strings(&["e2"]))],
                vec!["r3", "r5"],
            ),
            (
                vec![f("storage_state", Equals, s("ARCHIVED"))],
                vec!["r2", "r5"],
            ),
            (
                vec![f("storage_state", NotEquals, s("ARCHIVED"))],
                vec!["r1", "r3", "r4", "r6"],
            ),
            (
                vec![f("recurring_run_id", Equals, s("rr1"))],
                vec!["r1", "r3"],
            ),
            (vec![f("pipeline_version_id", Equals, s("v1"))], vec!["r1"]),
            // Timestamps.
            (vec![f("created_at", Equals, t(300))], vec!["r3"]),
            (
                vec![f("created_at", NotEquals, t(300))],
                vec!["r1", "r2", "r4", "r5", "r6"],
            ),
            (vec![f("created_at", GreaterThan, t(400))], vec!["r5", "r6"]),
            (
                vec![f("created_at", GreaterThanEquals, t(400))],
                vec!["r4", "r5", "r6"],
            ),
            (vec![f("created_at", LessThan, t(200))], vec!["r1"]),
            (
                vec![f("created_at", LessThanEquals, t(200))],
                vec!["r1", "r2"],
            ),
            (
                vec![f("finished_at", GreaterThan, t(200))],
                vec!["r3", "r5"],
            ),
            (
                vec![f("finished_at", NotEquals, t(150))],
                vec!["r2", "r3", "r4", "r5", "r6"],
            ),
            (vec![f("scheduled_at", LessThan, t(100))], vec!["r1"]),
            // Predicates combine with AND.
            (
                vec![
                    f("experiment_id", Equals, s("e2")),
                    f("created_at", LessThan, t(450)),
                ],
                vec!["r3"],
            ),
            (
                vec![
                    f("display_name", Equals, s("beta")),
                    f("storage_state", NotEquals, s("ARCHIVED")),
                ],
                vec!["r6"],
            ),
        ];
        for (filters, expected) in cases {
            let q = filtered(filters.clone());
            let page = b.store.list_runs_page(&q).await.unwrap();
            assert_eq!(ids(&page, run_id), expected, "{}: {filters:?}", b.name);
            assert_eq!(page.total_size, expected.len() as i64, "{filters:?}");
            assert_eq!(page.next_page_token, None);
        }

        // The namespace restricts as a predicate would.
        let q = ListQuery {
            namespace: Some(ns("team-b")),
            ..filtered(vec![f("display_name", Equals, s("beta"))])
        };
        assert_eq!(
            ids(&b.store.list_runs_page(&q).await.unwrap(), run_id),
            ["r6"]
        );
    })
    .await;
}

#[tokio::test]
async fn other_resources_filter_too() {
    each_backend(|b: Backend| async move {
        for (id, namespace, name, created, archived) in [
            ("e1", "team-a", "Default", 10, false),
            ("e2", "team-a", "nightly-xgb", 20, true),
            ("e3", "team-b", "Default", 30, false),
            ("e4", "team-c", "Ärger", 40, false),
        ] {
            let mut e = experiment(id, namespace, name, created);
            if archived {
                e.storage_state = StorageState::Archived;
            }
            b.store.insert_experiment(&e).await.unwrap();
        }
        b.store.touch_last_run("e2", Timestamp(99)).await.unwrap();
        let cases: Vec<(Option<&str>, Vec<Filter>, Vec<&str>)> = vec![
            // kfp.Client.create_experiment's lookup.
            (
                Some("team-a"),
                vec![f("display_name", Equals, s("Default"))],
                vec!["e1"],
            ),
            (
                None,
                vec![f("name", Equals, s("Default"))],
                vec!["e1", "e3"],
            ),
            (
                None,
                vec![f("display_name", IsSubstring, s("XGB"))],
                vec!["e2"],
            ),
            (
                None,
                vec![f("storage_state", Equals, s("ARCHIVED"))],
                vec!["e2"],
            ),
            (
                None,
                vec![f("created_at", GreaterThanEquals, t(20))],
                vec!["e2", "e3", "e4"],
            ),
            (
                None,
                vec![f("last_run_created_at", GreaterThan, t(0))],
                vec!["e2"],
            ),
            // Only ASCII letters fold, in both databases.
            (
                None,
                vec![f("display_name", IsSubstring, s("RGER"))],
                vec!["e4"],
            ),
            (
                None,
                vec![f("display_name", IsSubstring, s("Ä"))],
                vec!["e4"],
            ),
            (None, vec![f("display_name", IsSubstring, s("ä"))], vec![]),
            (
                None,
                vec![f("description", IsSubstring, s("about d"))],
                vec!["e1", "e3"],
            ),
        ];
        for (namespace, filters, expected) in cases {
            let q = ListQuery {
                namespace: namespace.map(ns),
                ..filtered(filters.clone())
            };
            let page = b.store.list_experiments(&q).await.unwrap();
            let got: Vec<&str> = page.items.iter().map(|e| e.id.as_str()).collect();
            assert_eq!(got, expected, "{}: {filters:?}", b.name);
        }

        for p in [
            pipeline("p1", "", "shared-one", 10),
            pipeline("p2", "team-a", "mine", 20),
            pipeline("p3", "team-b", "theirs", 30),
        ] {
            b.store.insert_pipeline(&p).await.unwrap();
        }
        let cases: Vec<(Option<&str>, Vec<Filter>, Vec<&str>)> = vec![
            (None, vec![], vec!["p1", "p2", "p3"]),
            (Some("team-a"), vec![], vec!["p2"]),
            (None, vec![f("namespace", Equals, s(""))], vec!["p1"]),
            // What a user of team-a may see: their own and the shared ones.
            (
                None,
                vec![f("namespace", In, strings(&["team-a", ""]))],
                vec!["p1", "p2"],
            ),
            // kfp.Client.get_pipeline_id's lookup.
            (None, vec![f("display_name", Equals, s("MINE"))], vec!["p2"]),
            (
                None,
                vec![f("name", NotEquals, s("mine"))],
                vec!["p1", "p3"],
            ),
            (
                None,
                vec![f("created_at", LessThan, t(30))],
                vec!["p1", "p2"],
            ),
        ];
        for (namespace, filters, expected) in cases {
            let q = ListQuery {
                namespace: namespace.map(ns),
                ..filtered(filters.clone())
            };
            let page = b.store.list_pipelines(&q).await.unwrap();
            let got: Vec<&str> = page.items.iter().map(|p| p.id.as_str()).collect();
            assert_eq!(got, expected, "{}: {filters:?}", b.name);
        }

        for (id, name, created) in [("v1", "first", 1), ("v2", "second", 2), ("v3", "third", 3)] {
            b.store
                .insert_pipeline_version(&version(id, "p2", name, created))
                .await
                .unwrap();
        }
        let cases: Vec<(Vec<Filter>, Vec<&str>)> = vec![
            (
                vec![f("name", In, strings(&["first", "third"]))],
                vec!["v1", "v3"],
            ),
            (vec![f("display_name", IsSubstring, s("COND"))], vec!["v2"]),
            (vec![f("created_at", GreaterThan, t(1))], vec!["v2", "v3"]),
        ];
        for (filters, expected) in cases {
            let page = b
                .store
                .list_pipeline_versions("p2", &filtered(filters.clone()))
                .await
                .unwrap();
            let got: Vec<&str> = page.items.iter().map(|v| v.id.as_str()).collect();
            assert_eq!(got, expected, "{}: {filters:?}", b.name);
        }

        for (id, exp, enabled, created) in [
            ("rr1", Some("e1"), true, 10),
            ("rr2", Some("e2"), false, 20),
            ("rr3", None, true, 30),
        ] {
            let mut rr = recurring_run(id, "team-a", created);
            rr.experiment_id = exp.map(Into::into);
            rr.enabled = enabled;
            b.store.insert_recurring_run(&rr).await.unwrap();
        }
        let ints = |v: &[i64]| FilterValue::Ints(v.to_vec());
        let cases: Vec<(Vec<Filter>, Vec<&str>)> = vec![
            // Integers.
            (
                vec![f("enabled", Equals, FilterValue::Int(1))],
                vec!["rr1", "rr3"],
            ),
            (
                vec![f("enabled", NotEquals, FilterValue::Int(1))],
                vec!["rr2"],
            ),
            (
                vec![f("enabled", GreaterThan, FilterValue::Int(0))],
                vec!["rr1", "rr3"],
            ),
            (
                vec![f("enabled", GreaterThanEquals, FilterValue::Int(0))],
                vec!["rr1", "rr2", "rr3"],
            ),
            (
                vec![f("enabled", LessThan, FilterValue::Int(1))],
                vec!["rr2"],
            ),
            (
                vec![f("enabled", LessThanEquals, FilterValue::Int(0))],
                vec!["rr2"],
            ),
            (vec![f("enabled", In, ints(&[0]))], vec!["rr2"]),
            (
                vec![f("enabled", In, ints(&[0, 1]))],
                vec!["rr1", "rr2", "rr3"],
            ),
            (vec![f("enabled", In, ints(&[]))], vec![]),
            (vec![f("experiment_id", Equals, s("e1"))], vec!["rr1"]),
            (
                vec![f("experiment_id", NotEquals, s("e1"))],
                vec!["rr2", "rr3"],
            ),
            (
                vec![f("updated_at", GreaterThan, t(15))],
                vec!["rr2", "rr3"],
            ),
        ];
        for (filters, expected) in cases {
            let page = b
                .store
                .list_recurring_runs(&filtered(filters.clone()))
                .await
                .unwrap();
            let got: Vec<&str> = page.items.iter().map(|r| r.id.as_str()).collect();
            assert_eq!(got, expected, "{}: {filters:?}", b.name);
        }
    })
    .await;
}

#[tokio::test]
async fn bad_queries_name_the_field() {
    each_backend(|b: Backend| async move {
        filter_fixture(&b.store).await;
        let by_name = ListQuery {
            sort: Sort::asc("display_name"),
            page_size: 2,
            ..ListQuery::default()
        };
        let name_token = b
            .store
            .list_runs_page(&by_name)
            .await
            .unwrap()
            .next_page_token
            .unwrap();
        let experiment_token = {
            for i in 0..3 {
                b.store
                    .insert_experiment(&experiment(&format!("e{i}"), "team-a", &format!("x{i}"), i))
                    .await
                    .unwrap();
            }
            b.store
                .list_experiments(&ListQuery {
                    page_size: 1,
                    ..ListQuery::default()
                })
                .await
                .unwrap()
                .next_page_token
                .unwrap()
        };
        let with_token = |token: &str| ListQuery {
            page_token: Some(token.to_owned()),
            ..ListQuery::default()
        };
        // (query, the field the error must name, a phrase of its message)
        let cases: Vec<(ListQuery, &str, &str)> = vec![
            (filtered(vec![f("owner", Equals, s("x"))]), "owner", "use one of: display_name, name, state"),
            (filtered(vec![f("Display_Name", Equals, s("x"))]), "Display_Name", "cannot be filtered"),
            (filtered(vec![f("display_name", Equals, FilterValue::Int(3))]), "display_name", "takes a string, not an integer"),
            (filtered(vec![f("created_at", Equals, s("2026-01-01T00:00:00Z"))]), "created_at", "takes a timestamp"),
            (filtered(vec![f("created_at", Equals, FilterValue::Int(5))]), "created_at", "takes a timestamp"),
            (filtered(vec![f("created_at", In, FilterValue::Ints(vec![5]))]), "created_at", "IN on created_at"),
            (filtered(vec![f("created_at", IsSubstring, s("2026"))]), "created_at", "only text fields"),
            (filtered(vec![f("display_name", In, s("beta"))]), "display_name", "takes a list of strings"),
            (filtered(vec![f("display_name", Equals, strings(&["beta"]))]), "display_name", "not a list of strings"),
            (filtered(vec![f("display_name", IsSubstring, strings(&["beta"]))]), "display_name", "IS_SUBSTRING"),
            (
                ListQuery { sort: Sort::asc("heartbeat_at"), ..ListQuery::default() },
                "heartbeat_at",
                "cannot be sorted by \"heartbeat_at\"; use one of: created_at, display_name, name, finished_at",
            ),
            (with_token("not a token!"), "page_token", "start again without one"),
            (with_token("bm90IGpzb24"), "page_token", "start again without one"),
            (with_token(&name_token), "page_token", "sort_by \"display_name\", not \"created_at\""),
            (
                ListQuery { sort: Sort::desc("display_name"), ..with_token(&name_token) },
                "page_token",
                "not \"display_name desc\"",
            ),
            (with_token(&experiment_token), "page_token", "issued for listing experiments, not runs"),
        ];
        for (q, field, phrase) in cases {
            match b.store.list_runs_page(&q).await {
                Err(StoreError::BadQuery { field: got, message }) => {
                    assert_eq!(got, field, "{}: {q:?}", b.name);
                    assert!(message.contains(phrase), "{message:?} lacks {phrase:?}");
                }
                other => panic!("{}: {q:?}: {other:?}", b.name),
            }
        }
        // Each resource has its own whitelist.
        let cases: Vec<(&str, Filter)> = vec![
            ("experiments", f("state", Equals, s("RUNNING"))),
            ("pipelines", f("experiment_id", Equals, s("e1"))),
            ("pipeline versions", f("namespace", Equals, s(""))),
            ("recurring runs", f("enabled", Equals, s("true"))),
        ];
        for (kind, filter) in cases {
            let q = filtered(vec![filter.clone()]);
            let err = match kind {
                "experiments" => b.store.list_experiments(&q).await.map(drop),
                "pipelines" => b.store.list_pipelines(&q).await.map(drop),
                "pipeline versions" => b.store.list_pipeline_versions("p", &q).await.map(drop),
                _ => b.store.list_recurring_runs(&q).await.map(drop),
            }
            .unwrap_err();
            assert!(
                matches!(err, StoreError::BadQuery { ref field, .. } if *field == filter.field),
                "{kind}: {err}"
            );
            assert!(err.to_string().contains(&format!("{:?}", filter.field)), "{err}");
        }
    })
    .await;
}

/// The order a listing must produce: by key then id, both in one direction.
fn expected_order(runs: &[RunRecord], sort: &str, desc: bool) -> Vec<String> {
    let mut keyed: Vec<(String, i64, String)> = runs
        .iter()
        .map(|r| {
            let (text, int) = match sort {
                "display_name" | "name" => (r.display_name.clone(), 0),
                "finished_at" => (String::new(), r.finished_at.map_or(i64::MIN + 1, |t| t.0)),
                _ => (String::new(), r.created_at.0),
            };
            (text, int, r.id.clone())
        })
        .collect();
    keyed.sort();
    if desc {
        keyed.reverse();
    }
    keyed.into_iter().map(|(_, _, id)| id).collect()
}

#[tokio::test]
async fn pages_return_every_row_once_in_order() {
    each_backend(|b: Backend| async move {
        // Ties on every sort key, so the id tie-break matters; names
        // differ in case and bytes; a third of the runs are unfinished.
        let names = ["b", "B", "a", "ä", "a b"];
        let runs: Vec<RunRecord> = (0..25)
            .map(|i| {
                let mut r = run(&format!("r{:02}", (i * 7) % 25), "pages", i / 3);
                r.display_name = names[i as usize % names.len()].into();
                r.finished_at = (i % 3 != 0).then_some(Timestamp(100 - i / 4));
                r
            })
            .collect();
        for r in &runs {
            b.store.insert_run(r).await.unwrap();
        }
        b.store
            .insert_run(&run("other", "elsewhere", 1))
            .await
            .unwrap();

        for sort in ["created_at", "display_name", "name", "finished_at"] {
            for desc in [false, true] {
                let q = ListQuery {
                    namespace: Some(ns("pages")),
                    sort: Sort {
                        field: sort.into(),
                        desc,
                    },
                    page_size: 10,
                    ..ListQuery::default()
                };
                let store = b.store.clone();
                let pages = all_pages(q, |q| {
                    let store = store.clone();
                    async move { store.list_runs_page(&q).await }
                })
                .await;
                let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
                assert_eq!(sizes, [10, 10, 5], "{}: {sort} {desc}", b.name);
                let got: Vec<String> = pages.concat().into_iter().map(|r| r.id).collect();
                assert_eq!(
                    got,
                    expected_order(&runs, sort, desc),
                    "{}: {sort} desc={desc}",
                    b.name
                );
            }
        }

        // With a filter, and a page size that divides the rows exactly: the
        // last full page knows it is the last (no empty page follows).
        let q = ListQuery {
            filters: vec![f("finished_at", GreaterThan, t(0))],
            page_size: 8,
            ..ListQuery::default()
        };
        let store = b.store.clone();
        let pages = all_pages(q, |q| {
            let store = store.clone();
            async move { store.list_runs_page(&q).await }
        })
        .await;
        let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
        assert_eq!(sizes, [8, 8], "{}", b.name);
        let finished: Vec<RunRecord> = runs
            .iter()
            .filter(|r| r.finished_at.is_some())
            .cloned()
            .collect();
        let got: Vec<String> = pages.concat().into_iter().map(|r| r.id).collect();
        assert_eq!(got, expected_order(&finished, "created_at", false));
    })
    .await;
}

#[tokio::test]
async fn pages_stay_correct_while_rows_are_inserted() {
    each_backend(|b: Backend| async move {
        for i in 0..25 {
            b.store
                .insert_run(&run(&format!("r{i:02}"), "team-a", i * 10))
                .await
                .unwrap();
        }
        for desc in [false, true] {
            let mut q = ListQuery {
                namespace: Some(ns("team-a")),
                sort: Sort {
                    field: "created_at".into(),
                    desc,
                },
                page_size: 10,
                ..ListQuery::default()
            };
            let mut got: Vec<RunRecord> = Vec::new();
            let mut inserted_behind = Vec::new();
            let mut inserted_ahead = Vec::new();
            for page_no in 0.. {
                let page = b.store.list_runs_page(&q).await.unwrap();
                got.extend(page.items.iter().cloned());
                let Some(token) = page.next_page_token else {
                    break;
                };
                // Rows before the cursor must never show up; rows after it
                // (including one tying with the last row's time and a larger
                // id in the walking direction) must.
                let last = page.items.last().unwrap();
                let step = if desc { -1 } else { 1 };
                let tag = format!("{}{page_no}", if desc { "d" } else { "a" });
                let behind = [
                    run(&format!("b0-{tag}"), "team-a", last.created_at.0 - 5 * step),
                    run(&format!("b1-{tag}"), "team-a", -1_000 * step),
                ];
                // For ids, "after" is larger ascending and smaller descending.
                let tie_after = if desc {
                    format!("a-{tag}")
                } else {
                    format!("s-{tag}")
                };
                let ahead = [
                    run(&tie_after, "team-a", last.created_at.0),
                    // Far ahead, and further for each page: the cursor may by
                    // then sit on an earlier one of these.
                    run(
                        &format!("f-{tag}"),
                        "team-a",
                        (10_000 + 100 * page_no) * step,
                    ),
                ];
                for r in behind.iter().chain(&ahead) {
                    b.store.insert_run(r).await.unwrap();
                }
                // Their mirror images tie with the cursor's time but have ids
                // on the wrong side: behind.
                let tie_behind = if desc {
                    format!("s-{tag}")
                } else {
                    format!("a-{tag}")
                };
                let r = run(&tie_behind, "team-a", last.created_at.0);
                b.store.insert_run(&r).await.unwrap();
                inserted_behind.extend(behind.into_iter().map(|r| r.id));
                inserted_behind.push(r.id);
                inserted_ahead.extend(ahead.into_iter().map(|r| r.id));
                q.page_token = Some(token);
            }
            let ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
            // In order, without repeats.
            let keys: Vec<(i64, &str)> = got
                .iter()
                .map(|r| (r.created_at.0, r.id.as_str()))
                .collect();
            let mut sorted = keys.clone();
            sorted.sort();
            if desc {
                sorted.reverse();
            }
            assert_eq!(keys, sorted, "{}: desc={desc}", b.name);
            assert_eq!(
                ids.iter().collect::<HashSet<_>>().len(),
                ids.len(),
                "{}: {ids:?}",
                b.name
            );
            for i in 0..25 {
                let id = format!("r{i:02}");
                assert!(ids.contains(&id.as_str()), "{}: {id} missing", b.name);
            }
            for id in &inserted_ahead {
                assert!(
                    ids.contains(&id.as_str()),
                    "{}: {id} missing: {ids:?}",
                    b.name
                );
            }
            for id in &inserted_behind {
                assert!(
                    !ids.contains(&id.as_str()),
                    "{}: {id} seen: {ids:?}",
                    b.name
                );
            }
        }
    })
    .await;
}

/// Inserts concurrently on PostgreSQL (group commits keep it quick); SQLite
/// serializes writers anyway.
async fn insert_runs(store: &Store, runs: Vec<RunRecord>) {
    let width = if store.dialect() == Dialect::Postgres {
        8
    } else {
        1
    };
    let mut chunks: Vec<Vec<RunRecord>> = vec![Vec::new(); width];
    for (i, r) in runs.into_iter().enumerate() {
        chunks[i % width].push(r);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in chunks {
        let store = store.clone();
        tasks.spawn(async move {
            for r in chunk {
                store.insert_run(&r).await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

#[tokio::test]
async fn pages_of_ten_thousand_runs_use_an_index_and_clamp_their_size() {
    each_backend(|b: Backend| async move {
        const N: i64 = 10_000;
        let runs: Vec<RunRecord> = (0..N)
            .map(|i| {
                let mut r = run(&format!("big-{:05}", (i * 7919) % N), "big", i / 2);
                r.experiment_id = Some(format!("e{}", i % 4));
                if i % 10 == 0 {
                    r.storage_state = StorageState::Archived;
                }
                r
            })
            .collect();
        insert_runs(&b.store, runs).await;
        if b.store.dialect() == Dialect::Postgres {
            sqlx::query("ANALYZE runs")
                .execute(b.store.pool())
                .await
                .unwrap();
        }

        // (page_size asked, rows returned)
        for (asked, returned) in [
            (0, 20),
            (-1, 20),
            (1, 1),
            (50, 50),
            (1000, 1000),
            (1001, 1000),
            (i64::MAX, 1000),
        ] {
            let page = b
                .store
                .list_runs_page(&ListQuery {
                    page_size: asked,
                    ..ListQuery::default()
                })
                .await
                .unwrap();
            assert_eq!(page.items.len(), returned, "{}: {asked}", b.name);
            assert_eq!(page.total_size, N);
            assert!(page.next_page_token.is_some());
        }

        // The UI's run list: newest first, archived hidden, page 3 of 50.
        let mut q = ListQuery {
            namespace: Some(ns("big")),
            filters: vec![f("storage_state", NotEquals, s("ARCHIVED"))],
            sort: Sort::desc("created_at"),
            page_size: 50,
            page_token: None,
        };
        for _ in 0..2 {
            q.page_token = b.store.list_runs_page(&q).await.unwrap().next_page_token;
        }
        let page = b.store.list_runs_page(&q).await.unwrap();
        assert_eq!(page.items.len(), 50);
        assert_eq!(page.total_size, N - N / 10);
        assert!(
            page.items
                .iter()
                .all(|r| r.storage_state == StorageState::Available)
        );

        let experiment_page = ListQuery {
            namespace: None,
            filters: vec![f("experiment_id", Equals, s("e1"))],
            ..q.clone()
        };
        let across_namespaces = ListQuery {
            namespace: None,
            filters: vec![],
            sort: Sort::asc("created_at"),
            page_token: b
                .store
                .list_runs_page(&ListQuery {
                    page_size: 50,
                    ..ListQuery::default()
                })
                .await
                .unwrap()
                .next_page_token,
            ..q.clone()
        };
        for (what, q) in [
            ("namespace", &q),
            ("experiment", &experiment_page),
            ("all", &across_namespaces),
        ] {
            let plan = b.store.explain_list_runs(q).await.unwrap().join("\n");
            match b.store.dialect() {
                Dialect::Sqlite => {
                    assert!(plan.contains("USING INDEX runs_"), "{what}: {plan}");
                    // Sorting one run's spec pieces is fine; sorting runs is not.
                    assert!(
                        plan.lines()
                            .filter(|l| l.contains("TEMP B-TREE"))
                            .all(|l| l.contains("FOR string_agg(ORDER BY)")),
                        "{what}: {plan}"
                    );
                    assert!(!plan.starts_with("SCAN runs"), "{what}: {plan}");
                }
                Dialect::Postgres => {
                    assert!(plan.contains("Index Scan"), "{what}: {plan}");
                    assert!(plan.contains("Index Cond"), "{what}: {plan}");
                    assert!(!plan.contains("Sort"), "{what}: {plan}");
                    assert!(!plan.contains("Seq Scan"), "{what}: {plan}");
                }
            }
        }
    })
    .await;
}

#[tokio::test]
async fn migrating_from_0001_keeps_existing_runs() {
    each_empty_database(|name, url| async move {
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        let sql = if name == "sqlite" {
            include_str!("../migrations/sqlite/0001_initial.sql")
        } else {
            include_str!("../migrations/postgres/0001_initial.sql")
        };
        let first_only = Migrator::with_migrations(vec![Migration::new(
            1,
            Cow::Borrowed("initial"),
            MigrationType::Simple,
            sql.into_sql_str(),
            false,
        )]);
        first_only.run(&pool).await.unwrap();
        // A run and a task written by the previous release.
        sqlx::query(
            "INSERT INTO runs (id, namespace, display_name, pipeline_name, spec, parameters, \
             options, state, error, outputs, created_at, started_at, finished_at, owner, \
             heartbeat_at) VALUES ('old', 'team-a', 'Old run', 'hello', '{\"pipeline_spec\": {}}', \
             '{\"n\": 1}', '{}', 'SUCCEEDED', NULL, '{\"Output\": 2}', 100, 110, 120, NULL, NULL)",
        )
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO tasks (id, run_id, path, parent_path, name, display_name, kind, state, \
             attempt, cached, inputs, outputs, created_at) VALUES ('t1', 'old', 'train', '', \
             'train', 'train', 'container', 'SUCCEEDED', 1, 0, '{}', '{}', 105)",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let store = Store::open(&url).await.unwrap();
        let got = store.get_run("old").await.unwrap().unwrap();
        let expected = RunRecord {
            id: "old".into(),
            namespace: ns("team-a"),
            display_name: "Old run".into(),
            pipeline_name: "hello".into(),
            spec: json!({"pipeline_spec": {}}),
            parameters: json!({"n": 1}),
            state: RunState::Succeeded,
            outputs: json!({"Output": 2}),
            created_at: Timestamp(100),
            started_at: Some(Timestamp(110)),
            finished_at: Some(Timestamp(120)),
            ..RunRecord::default()
        };
        assert_eq!(got, expected, "{name}");
        assert_eq!(store.list_tasks("old").await.unwrap().len(), 1);
        let versions: Vec<i64> =
            sqlx::query("SELECT version FROM _sqlx_migrations ORDER BY version")
                .fetch_all(store.pool())
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get(0).unwrap())
                .collect();
        assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8]);

        // The migrated run works with the new API: listed, filtered,
        // archived, and its history starts at its next state change.
        let page = store
            .list_runs_page(&filtered(vec![f("storage_state", Equals, s("AVAILABLE"))]))
            .await
            .unwrap();
        assert_eq!(page.items, vec![got.clone()]);
        let mut retried = got.clone();
        retried.state = RunState::Running;
        store.update_run(&retried).await.unwrap();
        let states: Vec<RunState> = store
            .get_run("old")
            .await
            .unwrap()
            .unwrap()
            .state_history
            .iter()
            .map(|c| c.state)
            .collect();
        assert_eq!(states, [RunState::Running]);
        store.pool().close().await;
    })
    .await;
}
