//! The store's public API, round-tripped through SQLite and PostgreSQL.

mod common;

use common::{Backend, artifact, cache_entry, each_backend, ns, run, task};
use oxflow_core::{Namespace, RunState, TaskState, Timestamp};
use oxflow_store::{Dialect, RunQuery, RunRecord, SecretData, Store, StoreError};
use serde_json::json;
use sqlx::Row;

#[tokio::test]
async fn migrations_are_idempotent() {
    each_backend(|b: Backend| async move {
        b.store.insert_run(&run("r1", "team-a", 1)).await.unwrap();
        // A second process (or a restart) opens the same database.
        let again = Store::open(&b.url).await.unwrap();
        assert_eq!(again.get_run("r1").await.unwrap().unwrap().id, "r1");
        let third = Store::open(&b.url).await.unwrap();
        third.insert_run(&run("r2", "team-a", 2)).await.unwrap();
        assert!(b.store.get_run("r2").await.unwrap().is_some());
        let dialect = if b.name == "sqlite" {
            Dialect::Sqlite
        } else {
            Dialect::Postgres
        };
        assert_eq!(again.dialect(), dialect);
    })
    .await;
}

#[tokio::test]
async fn runs_round_trip() {
    each_backend(|b: Backend| async move {
        let mut full = run("full", "kubeflow-user-example-com", 1_700_000_000_123);
        full.display_name = "Ünïcödé 'quoted' \"run\" ✓".into();
        full.spec = json!({
            "pipeline_spec": {"root": {"dag": {"tasks": {"a": {"x": [1, 2.5, null, true]}}}}},
            "platform_spec": {"big": "x".repeat(100_000)}
        });
        full.parameters = json!({"n": 3, "s": "a\nb", "nested": {"k": []}});
        full.options = json!({"caching": false, "parallelism": 4});
        full.state = RunState::Failed;
        full.error = Some("task train failed: exit code 1".into());
        full.outputs = json!({"Output": 42});
        full.started_at = Some(Timestamp(1_700_000_001_000));
        full.finished_at = Some(Timestamp(1_700_000_002_000));
        full.owner = Some("host:123:456".into());
        full.heartbeat_at = Some(Timestamp(1_700_000_001_500));
        let mut negative_time = run("old", "default", -5);
        negative_time.state = RunState::Canceling;

        let mut cases = vec![run("minimal", "default", 0), full, negative_time];
        for (i, state) in [
            RunState::Pending,
            RunState::Running,
            RunState::Succeeded,
            RunState::Failed,
            RunState::Canceling,
            RunState::Canceled,
        ]
        .into_iter()
        .enumerate()
        {
            let mut r = run(&format!("state-{i}"), "default", i as i64);
            r.state = state;
            cases.push(r);
        }

        for case in &cases {
            b.store.insert_run(case).await.unwrap();
        }
        for case in &cases {
            let got = b.store.get_run(&case.id).await.unwrap();
            assert_eq!(got.as_ref(), Some(case), "{}: {}", b.name, case.id);
        }
        assert_eq!(b.store.get_run("missing").await.unwrap(), None);
        // Ids are unique.
        let dup = b.store.insert_run(&cases[0]).await.unwrap_err();
        assert!(
            matches!(dup, StoreError::Database { ref context, .. } if context == "inserting run minimal"),
            "{dup}"
        );
    })
    .await;
}

#[tokio::test]
async fn update_run_writes_every_mutable_field() {
    each_backend(|b: Backend| async move {
        let original = run("r1", "team-a", 10);
        b.store.insert_run(&original).await.unwrap();

        type Change = fn(&mut RunRecord);
        let cases: Vec<(&str, Change)> = vec![
            ("display_name", |r| r.display_name = "renamed".into()),
            ("state", |r| r.state = RunState::Running),
            ("error", |r| r.error = Some("boom".into())),
            ("error cleared", |r| r.error = None),
            ("outputs", |r| r.outputs = json!({"a": [1, 2]})),
            ("started_at", |r| r.started_at = Some(Timestamp(11))),
            ("finished_at", |r| r.finished_at = Some(Timestamp(12))),
            ("owner", |r| r.owner = Some("engine-1".into())),
            ("heartbeat_at", |r| r.heartbeat_at = Some(Timestamp(13))),
            ("options", |r| r.options = json!({"caching": true})),
            ("all cleared", |r| {
                r.started_at = None;
                r.finished_at = None;
                r.owner = None;
                r.heartbeat_at = None;
            }),
        ];
        let mut expected = original.clone();
        for (what, change) in cases {
            change(&mut expected);
            b.store.update_run(&expected).await.unwrap();
            let got = b.store.get_run("r1").await.unwrap().unwrap();
            // The history is the store's; kfp.rs checks how it grows.
            expected.state_history = got.state_history.clone();
            assert_eq!(got, expected, "{}: {what}", b.name);
        }
        let states: Vec<RunState> = expected.state_history.iter().map(|c| c.state).collect();
        assert_eq!(states, [RunState::Pending, RunState::Running]);

        // The submission itself is immutable.
        let mut tampered = expected.clone();
        tampered.spec = json!({"other": true});
        tampered.parameters = json!({"x": 1});
        tampered.pipeline_name = "other".into();
        tampered.created_at = Timestamp(99);
        tampered.namespace = ns("team-b");
        b.store.update_run(&tampered).await.unwrap();
        assert_eq!(b.store.get_run("r1").await.unwrap().unwrap(), expected);

        let missing = b.store.update_run(&run("nope", "team-a", 1)).await;
        assert!(
            matches!(missing, Err(StoreError::NotFound { kind: "run", ref id }) if id == "nope"),
            "{missing:?}"
        );
    })
    .await;
}

#[derive(Debug, PartialEq)]
enum Lookup {
    Run(&'static str),
    Missing,
    Ambiguous(usize),
}

#[tokio::test]
async fn find_run_resolves_unique_prefixes() {
    each_backend(|b: Backend| async move {
        for id in [
            "0192aaaa-0001",
            "0192aaaa-0002",
            "0192bbbb-0001",
            "ab",
            "x%y_z",
            "x9y9z",
        ] {
            b.store.insert_run(&run(id, "default", 1)).await.unwrap();
        }
        let cases = [
            ("0192aaaa-0001", Lookup::Run("0192aaaa-0001")),
            ("0192aaaa-0002", Lookup::Run("0192aaaa-0002")),
            ("0192b", Lookup::Run("0192bbbb-0001")),
            ("0192bbbb-0001", Lookup::Run("0192bbbb-0001")),
            ("0192aaaa-", Lookup::Ambiguous(2)),
            ("0192", Lookup::Ambiguous(3)),
            // Too short to be a prefix, but exact ids always resolve.
            ("019", Lookup::Missing),
            ("ab", Lookup::Run("ab")),
            ("a", Lookup::Missing),
            ("", Lookup::Missing),
            // Case-sensitive in both databases.
            ("0192B", Lookup::Missing),
            ("0192aaaa-0001-more", Lookup::Missing),
            ("9999", Lookup::Missing),
            // LIKE wildcards are plain characters.
            ("x%y_", Lookup::Run("x%y_z")),
            ("x_y", Lookup::Missing),
            ("x%", Lookup::Missing),
        ];
        for (input, expected) in cases {
            let got = match b.store.find_run(input).await {
                Ok(r) => Lookup::Run(
                    [
                        "0192aaaa-0001",
                        "0192aaaa-0002",
                        "0192bbbb-0001",
                        "ab",
                        "x%y_z",
                        "x9y9z",
                    ]
                    .into_iter()
                    .find(|id| *id == r.id)
                    .expect("a fixture id"),
                ),
                Err(StoreError::NotFound { kind: "run", id }) => {
                    assert_eq!(id, input);
                    Lookup::Missing
                }
                Err(StoreError::Ambiguous {
                    kind: "run",
                    prefix,
                    matches,
                }) => {
                    assert_eq!(prefix, input);
                    Lookup::Ambiguous(matches)
                }
                Err(e) => panic!("{}: {input:?}: {e}", b.name),
            };
            assert_eq!(got, expected, "{}: {input:?}", b.name);
        }
    })
    .await;
}

#[tokio::test]
async fn list_runs_filters_and_orders() {
    each_backend(|b: Backend| async move {
        // (id, namespace, created_at, state); r3 and r4 tie on created_at.
        let fixture = [
            ("r1", "team-a", 10, RunState::Succeeded),
            ("r2", "team-b", 20, RunState::Running),
            ("r4", "team-a", 30, RunState::Running),
            ("r3", "team-a", 30, RunState::Pending),
            ("r5", "team-a", 40, RunState::Failed),
            ("r6", "team-b", 5, RunState::Pending),
        ];
        for (id, namespace, created, state) in fixture {
            let mut r = run(id, namespace, created);
            r.state = state;
            b.store.insert_run(&r).await.unwrap();
        }
        let q =
            |namespace: Option<&str>, states: &[RunState], newest_first, limit, offset| RunQuery {
                namespace: namespace.map(ns),
                states: states.to_vec(),
                newest_first,
                limit,
                offset,
            };
        use RunState::*;
        let cases: Vec<(RunQuery, Vec<&str>)> = vec![
            (
                RunQuery::default(),
                vec!["r6", "r1", "r2", "r3", "r4", "r5"],
            ),
            (
                q(None, &[], true, None, 0),
                vec!["r5", "r4", "r3", "r2", "r1", "r6"],
            ),
            (
                q(Some("team-a"), &[], false, None, 0),
                vec!["r1", "r3", "r4", "r5"],
            ),
            (q(Some("team-a"), &[], true, Some(2), 0), vec!["r5", "r4"]),
            (q(Some("team-a"), &[], true, Some(2), 2), vec!["r3", "r1"]),
            (q(Some("team-a"), &[], true, Some(2), 4), vec![]),
            (
                q(Some("team-a"), &[Running, Pending], false, None, 0),
                vec!["r3", "r4"],
            ),
            (q(None, &[Pending], false, None, 0), vec!["r6", "r3"]),
            (q(None, &[Canceled], false, None, 0), vec![]),
            (q(Some("nobody"), &[], false, None, 0), vec![]),
            (q(None, &[], false, Some(0), 0), vec![]),
            // Nonsense paging is clamped, not an error.
            (q(None, &[], false, Some(-1), -3), vec![]),
            (q(None, &[], false, Some(1), -3), vec!["r6"]),
        ];
        for (query, expected) in cases {
            let got: Vec<String> = b
                .store
                .list_runs(&query)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect();
            assert_eq!(got, expected, "{}: {query:?}", b.name);
        }
    })
    .await;
}

#[tokio::test]
async fn list_runs_pages_through_thousands_of_runs() {
    each_backend(|b: Backend| async move {
        const N: i64 = 3_000;
        // Three runs per millisecond, so the id tie-break matters; every
        // tenth run is RUNNING. Inserted out of order.
        let mut all: Vec<RunRecord> = (0..N)
            .map(|i| {
                let mut r = run(&format!("big-{:05}", (i * 7919) % N), "big", i / 3);
                if i % 10 == 0 {
                    r.state = RunState::Running;
                }
                r
            })
            .collect();
        all.reverse();
        let others: Vec<RunRecord> = (0..100)
            .map(|i| run(&format!("other-{i}"), "other", i))
            .collect();
        insert_all(&b.store, all.iter().chain(&others).cloned().collect()).await;

        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        let ids = |runs: &[RunRecord]| runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>();

        let page = b
            .store
            .list_runs(&RunQuery {
                namespace: Some(ns("big")),
                newest_first: true,
                limit: Some(50),
                offset: 100,
                ..RunQuery::default()
            })
            .await
            .unwrap();
        let newest: Vec<RunRecord> = all.iter().rev().skip(100).take(50).cloned().collect();
        assert_eq!(ids(&page), ids(&newest), "{}", b.name);
        assert_eq!(page, newest);

        let oldest = b
            .store
            .list_runs(&RunQuery {
                namespace: Some(ns("big")),
                limit: Some(50),
                ..RunQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(ids(&oldest), ids(&all[..50]));

        let everything = b
            .store
            .list_runs(&RunQuery {
                namespace: Some(ns("big")),
                limit: Some(10 * N),
                ..RunQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(everything.len() as i64, N);
        assert_eq!(ids(&everything), ids(&all));

        let running = b
            .store
            .list_runs(&RunQuery {
                namespace: Some(ns("big")),
                states: vec![RunState::Running],
                limit: Some(10 * N),
                ..RunQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(running.len() as i64, N / 10);
        assert!(running.iter().all(|r| r.state == RunState::Running));

        let default_page = b.store.list_runs(&RunQuery::default()).await.unwrap();
        assert_eq!(default_page.len() as i64, oxflow_store::DEFAULT_RUN_LIMIT);

        assert_page_uses_index(&b).await;
    })
    .await;
}

/// Inserts concurrently: PostgreSQL commits in groups that way, which keeps
/// thousands of single-row transactions quick. SQLite serializes writers anyway.
async fn insert_all(store: &Store, runs: Vec<RunRecord>) {
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

/// The page query must walk an index in `created_at` order instead of sorting
/// the whole namespace: that is what keeps a page fast at any size. (Which
/// index is the planner's choice: PostgreSQL prefers `runs_created` when one
/// namespace holds nearly every row, as here.)
async fn assert_page_uses_index(b: &Backend) {
    let page_sql = "SELECT * FROM runs WHERE namespace = 'big' \
                    ORDER BY created_at DESC, id DESC LIMIT 50 OFFSET 100";
    let plan: Vec<String> = match b.store.dialect() {
        Dialect::Sqlite => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "EXPLAIN QUERY PLAN {page_sql}"
            )))
            .fetch_all(b.store.pool())
            .await
            .unwrap();
            rows.iter()
                .map(|r| r.try_get::<String, _>("detail").unwrap())
                .collect()
        }
        Dialect::Postgres => {
            sqlx::query("ANALYZE runs")
                .execute(b.store.pool())
                .await
                .unwrap();
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {page_sql}")))
                .fetch_all(b.store.pool())
                .await
                .unwrap();
            rows.iter()
                .map(|r| r.try_get::<String, _>(0).unwrap())
                .collect()
        }
    };
    let plan = plan.join("\n");
    assert!(
        plan.contains("INDEX runs_namespace_created") || plan.contains("Index Scan"),
        "{}: {plan}",
        b.name
    );
    assert!(!plan.contains("TEMP B-TREE"), "{}: {plan}", b.name);
    assert!(!plan.contains("Sort"), "{}: {plan}", b.name);
}

#[tokio::test]
async fn claim_run_gives_each_run_one_owner() {
    each_backend(|b: Backend| async move {
        b.store.insert_run(&run("r1", "team-a", 1)).await.unwrap();
        let mut done = run("done", "team-a", 1);
        done.state = RunState::Succeeded;
        b.store.insert_run(&done).await.unwrap();

        enum Step {
            /// owner, now, stale_before, expected result.
            Claim(&'static str, i64, i64, bool),
            Release(&'static str, bool),
            Heartbeat(&'static str, i64, u64),
            SetState(RunState),
        }
        use Step::*;
        // (step, owner and heartbeat_at of r1 afterwards)
        let steps: Vec<(Step, Option<&str>, Option<i64>)> = vec![
            (Claim("a", 1000, 500, true), Some("a"), Some(1000)),
            // b sees a fresh heartbeat: refused, nothing changes.
            (Claim("b", 1100, 900, false), Some("a"), Some(1000)),
            // The owner may claim again (after a restart with the same id).
            (Claim("a", 1200, 1100, true), Some("a"), Some(1200)),
            (Heartbeat("a", 1500, 1), Some("a"), Some(1500)),
            (Heartbeat("b", 1600, 0), Some("a"), Some(1500)),
            // Stale means strictly older than stale_before.
            (Claim("b", 2000, 1500, false), Some("a"), Some(1500)),
            (Claim("b", 2000, 1501, true), Some("b"), Some(2000)),
            (Claim("a", 2100, 1000, false), Some("b"), Some(2000)),
            (Heartbeat("a", 2200, 0), Some("b"), Some(2000)),
            (Release("a", false), Some("b"), Some(2000)),
            (Release("b", true), None, Some(2000)),
            (Release("b", false), None, Some(2000)),
            // Unowned: anyone may claim, however fresh the old heartbeat.
            (Claim("a", 2300, 0, true), Some("a"), Some(2300)),
            // Terminal runs are never claimed, not even by their owner.
            (SetState(RunState::Failed), Some("a"), Some(2300)),
            (Claim("a", 2400, 0, false), Some("a"), Some(2300)),
            (Claim("b", 9000, 9000, false), Some("a"), Some(2300)),
            (SetState(RunState::Canceling), Some("a"), Some(2300)),
            (Claim("b", 9000, 9000, true), Some("b"), Some(9000)),
        ];
        for (i, (step, owner, heartbeat)) in steps.into_iter().enumerate() {
            match step {
                Claim(who, now, stale, expected) => {
                    let got = b
                        .store
                        .claim_run("r1", who, Timestamp(now), Timestamp(stale))
                        .await
                        .unwrap();
                    assert_eq!(got, expected, "{}: step {i}: claim by {who}", b.name);
                }
                Release(who, expected) => {
                    assert_eq!(
                        b.store.release_run("r1", who).await.unwrap(),
                        expected,
                        "step {i}"
                    );
                }
                Heartbeat(who, now, expected) => {
                    let n = b.store.heartbeat(who, Timestamp(now)).await.unwrap();
                    assert_eq!(n, expected, "{}: step {i}: heartbeat by {who}", b.name);
                }
                SetState(state) => {
                    let mut r = b.store.get_run("r1").await.unwrap().unwrap();
                    r.state = state;
                    b.store.update_run(&r).await.unwrap();
                }
            }
            let r = b.store.get_run("r1").await.unwrap().unwrap();
            assert_eq!(r.owner.as_deref(), owner, "{}: step {i}", b.name);
            assert_eq!(
                r.heartbeat_at,
                heartbeat.map(Timestamp),
                "{}: step {i}",
                b.name
            );
        }

        assert!(
            !b.store
                .claim_run("done", "a", Timestamp(1), Timestamp(0))
                .await
                .unwrap()
        );
        assert!(
            !b.store
                .claim_run("missing", "a", Timestamp(1), Timestamp(0))
                .await
                .unwrap()
        );

        // An owner that never sent a heartbeat counts as stale.
        let mut orphan = run("orphan", "team-a", 1);
        orphan.owner = Some("ghost".into());
        b.store.insert_run(&orphan).await.unwrap();
        assert!(
            b.store
                .claim_run("orphan", "a", Timestamp(5), Timestamp(0))
                .await
                .unwrap()
        );

        // A heartbeat covers every run of its owner.
        b.store.insert_run(&run("r2", "team-a", 1)).await.unwrap();
        assert!(
            b.store
                .claim_run("r2", "b", Timestamp(1), Timestamp(0))
                .await
                .unwrap()
        );
        assert_eq!(b.store.heartbeat("b", Timestamp(10_000)).await.unwrap(), 2);
    })
    .await;
}

#[tokio::test]
async fn concurrent_claims_have_one_winner() {
    each_backend(|b: Backend| async move {
        b.store.insert_run(&run("r1", "team-a", 1)).await.unwrap();
        let mut claims = tokio::task::JoinSet::new();
        for i in 0..8 {
            let store = b.store.clone();
            claims.spawn(async move {
                store
                    .claim_run("r1", &format!("engine-{i}"), Timestamp(100), Timestamp(50))
                    .await
                    .unwrap()
            });
        }
        let mut winners = 0;
        while let Some(won) = claims.join_next().await {
            winners += usize::from(won.unwrap());
        }
        assert_eq!(winners, 1, "{}", b.name);
    })
    .await;
}

#[tokio::test]
async fn tasks_upsert_by_run_and_path() {
    each_backend(|b: Backend| async move {
        b.store.insert_run(&run("r1", "team-a", 1)).await.unwrap();
        b.store.insert_run(&run("r2", "team-a", 1)).await.unwrap();

        let mut full = task("r1", "for-loop-2/3/square", 20);
        full.kind = "iteration".into();
        full.state = TaskState::Succeeded;
        full.attempt = 3;
        full.cached = true;
        full.inputs = json!({"parameters": {"x": 3}, "artifacts": {"m": [{"uri": "s3://b/k"}]}});
        full.outputs = json!({"parameters": {"Output": 9}});
        full.error = Some("retried twice".into());
        full.log_path = Some("/data/logs/r1/square.log".into());
        full.cache_key = Some("sha256:abc".into());
        full.started_at = Some(Timestamp(21));
        full.finished_at = Some(Timestamp(22));
        // Same created_at as `full`: ordered by path.
        let mut dag = task("r1", "for-loop-2", 20);
        dag.kind = "loop".into();
        let first = task("r1", "train", 10);
        let other_run = task("r2", "train", 0);
        let cases = [full.clone(), dag.clone(), first.clone(), other_run.clone()];
        for t in &cases {
            assert_eq!(b.store.upsert_task(t).await.unwrap(), t.id, "{}", b.name);
        }
        for t in &cases {
            let got = b.store.get_task(&t.run_id, &t.path).await.unwrap();
            assert_eq!(got.as_ref(), Some(t), "{}: {}", b.name, t.path);
        }
        let paths = |tasks: Vec<oxflow_store::TaskRecord>| {
            tasks.into_iter().map(|t| t.path).collect::<Vec<_>>()
        };
        assert_eq!(
            paths(b.store.list_tasks("r1").await.unwrap()),
            ["train", "for-loop-2", "for-loop-2/3/square"]
        );
        assert_eq!(b.store.list_tasks("r2").await.unwrap(), vec![other_run]);
        assert_eq!(b.store.list_tasks("nope").await.unwrap(), vec![]);
        assert_eq!(b.store.get_task("r1", "nope").await.unwrap(), None);
        assert_eq!(b.store.get_task("nope", "train").await.unwrap(), None);

        // An engine restarted with a fresh record: the stored id survives,
        // every other field is overwritten.
        let mut again = task("r1", "train", 30);
        again.state = TaskState::Running;
        again.attempt = 2;
        again.error = None;
        assert_ne!(again.id, first.id);
        assert_eq!(b.store.upsert_task(&again).await.unwrap(), first.id);
        let expected = oxflow_store::TaskRecord {
            id: first.id.clone(),
            ..again.clone()
        };
        assert_eq!(
            b.store.get_task("r1", "train").await.unwrap(),
            Some(expected)
        );
        assert_eq!(b.store.list_tasks("r1").await.unwrap().len(), 3);

        // Tasks belong to existing runs.
        let orphan = b.store.upsert_task(&task("missing-run", "train", 1)).await;
        assert!(
            matches!(orphan, Err(StoreError::Database { .. })),
            "{orphan:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn task_summaries_and_pages_cover_every_task_once() {
    each_backend(|b: Backend| async move {
        b.store.insert_run(&run("r1", "team-a", 1)).await.unwrap();
        b.store.insert_run(&run("r2", "team-a", 1)).await.unwrap();
        // 23 tasks over 5 distinct created_at values: pages of 4 must break
        // ties by path without skipping or repeating one.
        let mut all = Vec::new();
        for i in 0..23 {
            let mut t = task("r1", &format!("loop/{i:02}/step"), i64::from(i % 5));
            t.state = if i % 2 == 0 {
                TaskState::Succeeded
            } else {
                TaskState::Failed
            };
            t.cached = i == 3;
            t.attempt = 1 + i64::from(i % 3);
            t.error = (i % 2 == 1).then(|| format!("boom {i}"));
            t.outputs = json!({"parameters": {"big": "x".repeat(100)}});
            t.started_at = Some(Timestamp(100 + i64::from(i)));
            t.finished_at = Some(Timestamp(200 + i64::from(i)));
            b.store.upsert_task(&t).await.unwrap();
            all.push(t);
        }
        b.store.upsert_task(&task("r2", "other", 0)).await.unwrap();
        let listed = b.store.list_tasks("r1").await.unwrap();
        assert_eq!(listed.len(), 23, "{}", b.name);

        let summaries = b.store.list_task_summaries("r1").await.unwrap();
        let expected: Vec<oxflow_store::TaskSummary> = listed.iter().map(Into::into).collect();
        assert_eq!(summaries, expected, "{}", b.name);

        let mut paged = Vec::new();
        loop {
            let page = b
                .store
                .list_tasks_page("r1", paged.last(), 4)
                .await
                .unwrap();
            assert!(page.len() <= 4, "{}", b.name);
            let done = page.len() < 4;
            paged.extend(page);
            if done {
                break;
            }
        }
        assert_eq!(paged, listed, "{}", b.name);
        assert_eq!(
            b.store.list_tasks_page("nope", None, 4).await.unwrap(),
            vec![]
        );
        assert_eq!(b.store.list_task_summaries("nope").await.unwrap(), vec![]);
    })
    .await;
}

#[tokio::test]
async fn finish_task_records_task_artifacts_and_cache() {
    each_backend(|b: Backend| async move {
        b.store.insert_run(&run("r1", "team-a", 1)).await.unwrap();
        let mut t = task("r1", "train", 10);
        b.store.upsert_task(&t).await.unwrap();

        t.state = TaskState::Succeeded;
        t.outputs = json!({"artifacts": {"model": [{"uri": "s3://b/model"}]}});
        t.finished_at = Some(Timestamp(20));
        let model = artifact("r1", "train", "model", "s3://b/model");
        let mut metrics = artifact("r1", "train", "metrics", "s3://b/metrics");
        metrics.schema_title = "system.Metrics".into();
        metrics.digest = None;
        metrics.created_at = Timestamp(5_001);
        let entry = cache_entry("team-a", "sha256:k1", "r1");
        b.store
            .finish_task(&t, &[model.clone(), metrics.clone()], Some(&entry))
            .await
            .unwrap();
        assert_eq!(
            b.store.get_task("r1", "train").await.unwrap(),
            Some(t.clone())
        );
        assert_eq!(
            b.store.list_artifacts("r1").await.unwrap(),
            vec![model.clone(), metrics.clone()]
        );
        assert_eq!(
            b.store.get_cache(&ns("team-a"), "sha256:k1").await.unwrap(),
            Some(entry.clone())
        );

        // A retry re-records the same outputs: rows with the same
        // (run, task, key, uri) are replaced, not duplicated.
        let mut model2 = artifact("r1", "train", "model", "s3://b/model");
        model2.metadata = json!({"accuracy": 0.95});
        model2.created_at = Timestamp(5_002);
        let mut entry2 = cache_entry("team-a", "sha256:k1", "r1");
        entry2.outputs = json!({"parameters": {"Output": 5}});
        t.attempt = 2;
        b.store
            .finish_task(&t, &[model2.clone()], Some(&entry2))
            .await
            .unwrap();
        assert_eq!(
            b.store.list_artifacts("r1").await.unwrap(),
            vec![metrics.clone(), model2.clone()]
        );
        assert_eq!(
            b.store.get_cache(&ns("team-a"), "sha256:k1").await.unwrap(),
            Some(entry2)
        );

        // Without a cache entry and artifacts it is a plain task update.
        let mut skipped = task("r1", "cond-1/evaluate", 30);
        skipped.state = TaskState::Skipped;
        b.store.finish_task(&skipped, &[], None).await.unwrap();
        assert_eq!(
            b.store.get_task("r1", "cond-1/evaluate").await.unwrap(),
            Some(skipped)
        );
        assert_eq!(b.store.list_artifacts("r1").await.unwrap().len(), 2);
        assert_eq!(b.store.list_artifacts("nope").await.unwrap(), vec![]);
    })
    .await;
}

#[tokio::test]
async fn finish_task_is_all_or_nothing() {
    each_backend(|b: Backend| async move {
        b.store.insert_run(&run("r1", "team-a", 1)).await.unwrap();
        let mut running = task("r1", "train", 10);
        running.state = TaskState::Running;
        b.store.upsert_task(&running).await.unwrap();
        let kept = artifact("r1", "prepare", "data", "s3://b/data");
        b.store
            .finish_task(&task("r1", "prepare", 5), std::slice::from_ref(&kept), None)
            .await
            .unwrap();

        let mut finished = running.clone();
        finished.state = TaskState::Succeeded;
        finished.outputs = json!({"parameters": {"Output": 1}});
        let good = artifact("r1", "train", "model", "s3://b/model");
        // Violates the foreign key to runs: the second insert fails after
        // the task update and the first artifact already ran.
        let bad = artifact("no-such-run", "train", "model", "s3://b/other");
        let entry = cache_entry("team-a", "sha256:k9", "r1");

        // Failures at each position: the last artifact, the first, and the
        // task itself (a task of a missing run).
        let mut orphan_task = finished.clone();
        orphan_task.run_id = "no-such-run".into();
        let attempts = [
            (finished.clone(), vec![good.clone(), bad.clone()]),
            (finished.clone(), vec![bad.clone(), good.clone()]),
            (orphan_task, vec![good.clone()]),
        ];
        for (i, (t, artifacts)) in attempts.into_iter().enumerate() {
            let err = b
                .store
                .finish_task(&t, &artifacts, Some(&entry))
                .await
                .unwrap_err();
            assert!(
                matches!(err, StoreError::Database { .. }),
                "{}: attempt {i}: {err}",
                b.name
            );
            assert_eq!(
                b.store.get_task("r1", "train").await.unwrap(),
                Some(running.clone()),
                "{}: attempt {i}",
                b.name
            );
            assert_eq!(
                b.store.list_artifacts("r1").await.unwrap(),
                vec![kept.clone()]
            );
            assert_eq!(
                b.store.get_cache(&ns("team-a"), "sha256:k9").await.unwrap(),
                None
            );
        }
        // The pool is healthy afterwards: no transaction left open.
        b.store
            .finish_task(&finished, std::slice::from_ref(&good), Some(&entry))
            .await
            .unwrap();
        assert_eq!(
            b.store.get_task("r1", "train").await.unwrap(),
            Some(finished)
        );
    })
    .await;
}

#[tokio::test]
async fn cache_entries_are_per_namespace() {
    each_backend(|b: Backend| async move {
        b.store.insert_run(&run("r1", "team-a", 1)).await.unwrap();
        let a = cache_entry("team-a", "sha256:k", "r1");
        let mut other = cache_entry("team-b", "sha256:k", "r1");
        other.outputs = json!({"parameters": {"Output": "team b"}});
        let t = task("r1", "square", 1);
        b.store.finish_task(&t, &[], Some(&a)).await.unwrap();
        b.store.finish_task(&t, &[], Some(&other)).await.unwrap();

        let cases = [
            ("team-a", "sha256:k", Some(a.clone())),
            ("team-b", "sha256:k", Some(other.clone())),
            ("team-c", "sha256:k", None),
            ("team-a", "sha256:K", None),
        ];
        for (namespace, key, expected) in cases {
            let got = b.store.get_cache(&ns(namespace), key).await.unwrap();
            assert_eq!(got, expected, "{}: {namespace}/{key}", b.name);
        }
        assert!(
            b.store
                .delete_cache(&ns("team-a"), "sha256:k")
                .await
                .unwrap()
        );
        assert!(
            !b.store
                .delete_cache(&ns("team-a"), "sha256:k")
                .await
                .unwrap()
        );
        assert_eq!(
            b.store.get_cache(&ns("team-a"), "sha256:k").await.unwrap(),
            None
        );
        assert_eq!(
            b.store.get_cache(&ns("team-b"), "sha256:k").await.unwrap(),
            Some(other)
        );
    })
    .await;
}

/// Workloads read a Secret object's values decoded; the table from before
/// the resource model is only read (and cleared) by its migration.
#[tokio::test]
async fn secrets_are_read_from_secret_objects() {
    each_backend(|b: Backend| async move {
        let key = |namespace: &str, name: &str| oxflow_store::ResourceKey {
            group: String::new(),
            kind: "Secret".into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        let put = |namespace: &'static str, name: &'static str, data: serde_json::Value| {
            let store = b.store.clone();
            async move {
                let object = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": name, "namespace": namespace}, "data": data});
                store
                    .create_resource(&key(namespace, name), &format!("uid-{namespace}-{name}"), 1, object, "secret")
                    .await
                    .unwrap();
            }
        };
        let enc = |s: &str| oxflow_core::secret::encode(s.as_bytes());
        put("team-a", "s3-creds", serde_json::json!({"AWS_ACCESS_KEY_ID": enc("AKIA"), "AWS_SECRET_ACCESS_KEY": enc("x/y+z=")})).await;
        put("team-a", "Unicode.Name", serde_json::json!({"ключ": enc("значение ✓")})).await;
        put("team-b", "s3-creds", serde_json::json!({"AWS_ACCESS_KEY_ID": enc("other")})).await;
        put("team-a", "binary", serde_json::json!({"blob": oxflow_core::secret::encode(&[0xff, 0x00])})).await;
        put("team-a", "empty", serde_json::Value::Null).await;

        let data = |pairs: &[(&str, &str)]| -> SecretData {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            b.store.get_secret(&ns("team-a"), "s3-creds").await.unwrap(),
            Some(data(&[("AWS_ACCESS_KEY_ID", "AKIA"), ("AWS_SECRET_ACCESS_KEY", "x/y+z=")]))
        );
        assert_eq!(
            b.store.get_secret(&ns("team-a"), "Unicode.Name").await.unwrap(),
            Some(data(&[("ключ", "значение ✓")]))
        );
        assert_eq!(
            b.store.get_secret(&ns("team-b"), "s3-creds").await.unwrap(),
            Some(data(&[("AWS_ACCESS_KEY_ID", "other")]))
        );
        assert_eq!(
            b.store.get_secret(&ns("team-a"), "empty").await.unwrap(),
            Some(SecretData::new())
        );
        assert_eq!(b.store.get_secret(&ns("team-c"), "s3-creds").await.unwrap(), None);
        match b.store.get_secret(&ns("team-a"), "binary").await {
            Err(StoreError::Corrupt { what, detail }) => {
                assert_eq!(what, "secret binary in namespace team-a");
                assert!(detail.contains("data[blob]"), "{detail}");
            }
            other => panic!("{}: {other:?}", b.name),
        }

        // The old table: listed for the migration, then cleared by it.
        b.store.put_legacy_secret("team-a", "old", &data(&[("K", "v")])).await.unwrap();
        assert_eq!(
            b.store.legacy_secrets().await.unwrap(),
            vec![("team-a".to_owned(), "old".to_owned(), data(&[("K", "v")]))]
        );
        b.store.drop_legacy_secret("team-a", "old").await.unwrap();
        assert_eq!(b.store.legacy_secrets().await.unwrap(), vec![]);
    })
    .await;
}

/// A spec given as text is stored as written and read back by every way of
/// reading a run; status updates and heartbeats leave it alone.
#[tokio::test]
async fn a_run_spec_given_as_text_is_kept_apart_from_its_status() {
    each_backend(|b: Backend| async move {
        // Large enough to be stored in pieces, with characters of several
        // bytes where the pieces are cut.
        let names = (0..20_000).map(|i| format!("\"tâsk-{i}\""));
        let text = format!(
            r#"{{"pipeline_spec":{{"root":{{"dag":{{"tasks":[{}]}}}}}},"platform_spec":{{"platforms":{{}}}}}}"#,
            names.collect::<Vec<_>>().join(",")
        );
        assert!(text.len() > 200_000);
        let text = text.as_str();
        let mut r = run("r1", "team-a", 1);
        r.spec = json!("ignored: the text is stored");
        b.store.insert_run_with_spec(&r, text).await.unwrap();
        let spec: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            b.store.get_run_spec_text("r1").await.unwrap().as_deref(),
            Some(text)
        );
        assert_eq!(b.store.get_run("r1").await.unwrap().unwrap().spec, spec);
        assert_eq!(b.store.find_run("r1").await.unwrap().spec, spec);
        let listed = b.store.list_runs(&RunQuery::default()).await.unwrap();
        assert_eq!(listed[0].spec, spec);
        let bare = b.store.get_run_without_spec("r1").await.unwrap().unwrap();
        assert_eq!(bare.spec, serde_json::Value::Null);

        r.state = RunState::Running;
        r.owner = Some("me".into());
        b.store.update_run(&r).await.unwrap();
        b.store.heartbeat("me", Timestamp(5)).await.unwrap();
        assert_eq!(
            b.store.get_run_spec_text("r1").await.unwrap().as_deref(),
            Some(text)
        );
        // The spec has no column in `runs` to rewrite.
        let in_runs = sqlx::query("SELECT * FROM runs WHERE id = 'r1'")
            .fetch_one(b.store.pool())
            .await
            .unwrap();
        assert!(in_runs.try_get::<String, _>("spec").is_err());

        assert!(b.store.delete_run("r1").await.unwrap());
        assert_eq!(b.store.get_run_spec_text("r1").await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn delete_run_removes_its_rows_but_not_the_cache() {
    each_backend(|b: Backend| async move {
        for id in ["r1", "r2"] {
            b.store.insert_run(&run(id, "team-a", 1)).await.unwrap();
            let t = task(id, "train", 2);
            let a = artifact(id, "train", "model", &format!("s3://b/{id}/model"));
            let c = cache_entry("team-a", &format!("key-{id}"), id);
            b.store.finish_task(&t, &[a], Some(&c)).await.unwrap();
        }
        assert!(b.store.delete_run("r1").await.unwrap());
        assert_eq!(b.store.get_run("r1").await.unwrap(), None);
        assert_eq!(b.store.list_tasks("r1").await.unwrap(), vec![]);
        assert_eq!(b.store.list_artifacts("r1").await.unwrap(), vec![]);
        assert!(
            b.store
                .get_cache(&ns("team-a"), "key-r1")
                .await
                .unwrap()
                .is_some()
        );

        assert!(b.store.get_run("r2").await.unwrap().is_some());
        assert_eq!(b.store.list_tasks("r2").await.unwrap().len(), 1);
        assert_eq!(b.store.list_artifacts("r2").await.unwrap().len(), 1);

        assert!(!b.store.delete_run("r1").await.unwrap());
        // The id is free again.
        b.store.insert_run(&run("r1", "team-b", 3)).await.unwrap();
        assert_eq!(b.store.list_tasks("r1").await.unwrap(), vec![]);
    })
    .await;
}

#[tokio::test]
async fn corrupt_rows_are_reported_not_panicked_on() {
    each_backend(|b: Backend| async move {
        b.store.insert_run(&run("r1", "team-a", 1)).await.unwrap();
        b.store.upsert_task(&task("r1", "train", 1)).await.unwrap();
        b.store
            .put_legacy_secret("team-a", "s", &SecretData::new())
            .await
            .unwrap();

        // (corrupting statement, undo statement, what the error names)
        let cases = [
            (
                "UPDATE run_specs SET chunk = 'not json'",
                "UPDATE run_specs SET chunk = '{}'",
                "run r1",
            ),
            (
                "UPDATE runs SET state = 'DONE'",
                "UPDATE runs SET state = 'PENDING'",
                "run r1",
            ),
            (
                "UPDATE runs SET namespace = 'Team_A'",
                "UPDATE runs SET namespace = 'team-a'",
                "run r1",
            ),
            (
                "UPDATE tasks SET state = 'WAITING'",
                "UPDATE tasks SET state = 'PENDING'",
                "task train of run r1",
            ),
            (
                "UPDATE tasks SET outputs = '{'",
                "UPDATE tasks SET outputs = '{}'",
                "task train of run r1",
            ),
            (
                "UPDATE secrets SET data = '[1]'",
                "UPDATE secrets SET data = '{}'",
                "secret s in namespace team-a",
            ),
        ];
        for (corrupt, undo, what_expected) in cases {
            sqlx::query(corrupt).execute(b.store.pool()).await.unwrap();
            let results = [
                b.store.get_run("r1").await.map(drop),
                b.store.list_runs(&RunQuery::default()).await.map(drop),
                b.store.find_run("r1").await.map(drop),
                b.store.get_task("r1", "train").await.map(drop),
                b.store.list_tasks("r1").await.map(drop),
                b.store.legacy_secrets().await.map(drop),
            ];
            let errors: Vec<_> = results.into_iter().filter_map(Result::err).collect();
            assert!(!errors.is_empty(), "{}: {corrupt}", b.name);
            for e in errors {
                match e {
                    StoreError::Corrupt { what, .. } => {
                        assert_eq!(what, what_expected, "{corrupt}")
                    }
                    other => panic!("{}: {corrupt}: {other}", b.name),
                }
            }
            sqlx::query(undo).execute(b.store.pool()).await.unwrap();
        }
        assert!(b.store.get_run("r1").await.unwrap().is_some());
    })
    .await;
}

#[tokio::test]
async fn open_explains_why_it_cannot_connect() {
    // (url, expected context): the driver's own error must come through
    // (not a pool timeout), and passwords never appear in messages.
    let cases = [
        (
            "postgres://oxflow:hunter2@127.0.0.1:1/db",
            "connecting to \"postgres://***@127.0.0.1:1/db\"",
        ),
        (
            "/nonexistent-oxflow-dir/oxflow.db",
            "connecting to \"sqlite:///nonexistent-oxflow-dir/oxflow.db?mode=rwc\"",
        ),
    ];
    for (url, expected) in cases {
        match Store::open(url).await {
            Err(StoreError::Database { context, source }) => {
                assert_eq!(context, expected, "{url}");
                assert!(
                    !matches!(source, sqlx::Error::PoolTimedOut),
                    "{url}: {source}"
                );
                assert!(!source.to_string().contains("hunter2"), "{url}: {source}");
            }
            Err(other) => panic!("{url}: {other}"),
            Ok(_) => panic!("{url}: opened"),
        }
    }
}

#[tokio::test]
async fn namespaces_in_use_are_those_holding_something() {
    each_backend(|b: Backend| async move {
        assert_eq!(
            b.store.namespaces_in_use().await.unwrap(),
            Vec::<Namespace>::new()
        );
        b.store
            .put_legacy_secret("team-b", "creds", &SecretData::new())
            .await
            .unwrap();
        let isvc = |namespace: &str, name: &str| oxflow_store::ResourceKey {
            group: "serving.kserve.io".into(),
            kind: "InferenceService".into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        for (namespace, name) in [("team-a", "iris"), ("team-b", "wine")] {
            b.store
                .create_resource(
                    &isvc(namespace, name),
                    &format!("uid-{name}"),
                    1,
                    serde_json::json!({"metadata": {"name": name, "namespace": namespace}}),
                    name,
                )
                .await
                .unwrap();
        }
        assert_eq!(
            b.store.namespaces_in_use().await.unwrap(),
            [ns("team-a"), ns("team-b")],
            "{}",
            b.name
        );
        b.store
            .delete_resource(&isvc("team-a", "iris"), None, "iris")
            .await
            .unwrap();
        // A Namespace object is a namespace in use, holding something or not.
        b.store
            .create_resource(
                &oxflow_store::ResourceKey {
                    group: String::new(),
                    kind: "Namespace".into(),
                    namespace: String::new(),
                    name: "team-c".into(),
                },
                "uid-team-c",
                1,
                serde_json::json!({"metadata": {"name": "team-c"}}),
                "team-c",
            )
            .await
            .unwrap();
        assert_eq!(
            b.store.namespaces_in_use().await.unwrap(),
            [ns("team-b"), ns("team-c")],
            "{}",
            b.name
        );
    })
    .await;
}
