//! Runs each test against every backend: a SQLite file in a temporary
//! directory and a fresh schema on the PostgreSQL server named by
//! `OXFLOW_TEST_POSTGRES` (default `postgres://oxflow_test:oxflow_test@127.0.0.1:5432/oxflow_test`).
//!
//! An unreachable PostgreSQL fails the test; set `OXFLOW_SKIP_POSTGRES=1` to
//! run the SQLite half only.

#![allow(dead_code)] // Each test binary uses its own subset of the fixtures.

use std::future::Future;

use oxflow_core::{Namespace, RunState, TaskState, Timestamp};
use oxflow_store::{
    ArtifactRecord, CacheEntry, ExperimentRecord, PipelineRecord, PipelineVersionRecord,
    RecurringRunRecord, RunRecord, StateChange, StorageState, Store, TaskRecord,
};
use serde_json::json;
use sqlx::{AnyConnection, AssertSqlSafe, Connection};

const DEFAULT_POSTGRES: &str = "postgres://oxflow_test:oxflow_test@127.0.0.1:5432/oxflow_test";

/// One database a test runs against.
pub struct Backend {
    /// `sqlite` or `postgres`, for messages.
    pub name: &'static str,
    /// The URL the store was opened with (to open it again).
    pub url: String,
    /// The store under test.
    pub store: Store,
}

/// Runs `test` once per backend, each on a database of its own, and removes
/// the database afterwards even when the test panics.
pub async fn each_backend<F, Fut>(test: F)
where
    F: Fn(Backend) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = dir.path().join("oxflow.db").display().to_string();
    let store = Store::open(&url).await.expect("open SQLite");
    let outcome = tokio::spawn(test(Backend {
        name: "sqlite",
        url,
        store,
    }))
    .await;
    rethrow("sqlite", outcome);

    if std::env::var("OXFLOW_SKIP_POSTGRES").as_deref() == Ok("1") {
        return;
    }
    let schema = PgSchema::create().await;
    let store = Store::open(&schema.url).await.expect("open PostgreSQL");
    let outcome = tokio::spawn(test(Backend {
        name: "postgres",
        url: schema.url.clone(),
        store: store.clone(),
    }))
    .await;
    store.pool().close().await;
    schema.drop().await;
    rethrow("postgres", outcome);
}

/// Like [`each_backend`], but hands the test only the URL of an empty
/// database (a new SQLite file, a new PostgreSQL schema): for tests that
/// prepare the schema themselves before opening a [`Store`].
pub async fn each_empty_database<F, Fut>(test: F)
where
    F: Fn(&'static str, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("oxflow.db").display()
    );
    rethrow("sqlite", tokio::spawn(test("sqlite", url)).await);

    if std::env::var("OXFLOW_SKIP_POSTGRES").as_deref() == Ok("1") {
        return;
    }
    let schema = PgSchema::create().await;
    let outcome = tokio::spawn(test("postgres", schema.url.clone())).await;
    schema.drop().await;
    rethrow("postgres", outcome);
}

fn rethrow(backend: &str, outcome: Result<(), tokio::task::JoinError>) {
    if let Err(e) = outcome {
        eprintln!("test failed on {backend}");
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("test on {backend} did not finish: {e}"),
        }
    }
}

/// A schema of its own on the test server, so parallel tests and reruns
/// never see each other's tables.
struct PgSchema {
    admin: AnyConnection,
    name: String,
    url: String,
}

impl PgSchema {
    async fn create() -> Self {
        sqlx::any::install_default_drivers();
        let base =
            std::env::var("OXFLOW_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_POSTGRES.into());
        // A direct connection, not a pool: its error says why it failed.
        let mut admin = AnyConnection::connect(&base).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {base} is unreachable ({e}). Start it, point \
                     OXFLOW_TEST_POSTGRES at one, or set OXFLOW_SKIP_POSTGRES=1 to skip \
                     the PostgreSQL half of the store tests."
            )
        });
        let name = format!("t_{}", oxflow_core::new_id().replace('-', ""));
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut admin)
            .await
            .expect("create test schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
        Self { admin, name, url }
    }

    async fn drop(mut self) {
        let dropped = sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {} CASCADE", self.name)))
            .execute(&mut self.admin)
            .await;
        if let Err(e) = dropped {
            eprintln!("could not drop test schema {}: {e}", self.name);
        }
        let _ = self.admin.close().await;
    }
}

pub fn ns(name: &str) -> Namespace {
    Namespace::new(name).expect("valid namespace")
}

/// A minimal pending run, with the history `insert_run` would give it.
pub fn run(id: &str, namespace: &str, created_at: i64) -> RunRecord {
    RunRecord {
        id: id.into(),
        namespace: ns(namespace),
        display_name: format!("run {id}"),
        pipeline_name: "hello-world".into(),
        spec: json!({"pipeline_spec": {"pipelineInfo": {"name": "hello-world"}}}),
        parameters: json!({}),
        options: json!({}),
        state: RunState::Pending,
        error: None,
        outputs: json!({}),
        created_at: Timestamp(created_at),
        started_at: None,
        finished_at: None,
        owner: None,
        heartbeat_at: None,
        state_history: vec![StateChange {
            update_time: Timestamp(created_at),
            state: RunState::Pending,
            error: None,
        }],
        ..RunRecord::default()
    }
}

pub fn experiment(id: &str, namespace: &str, name: &str, created_at: i64) -> ExperimentRecord {
    ExperimentRecord {
        id: id.into(),
        namespace: ns(namespace),
        display_name: name.into(),
        description: format!("about {name}"),
        created_at: Timestamp(created_at),
        storage_state: StorageState::Available,
        last_run_created_at: None,
    }
}

/// A pipeline in `namespace`, or shared when `namespace` is empty.
pub fn pipeline(id: &str, namespace: &str, name: &str, created_at: i64) -> PipelineRecord {
    PipelineRecord {
        id: id.into(),
        namespace: (!namespace.is_empty()).then(|| ns(namespace)),
        name: name.into(),
        display_name: name.to_uppercase(),
        description: format!("pipeline {name}"),
        created_at: Timestamp(created_at),
    }
}

pub fn version(id: &str, pipeline_id: &str, name: &str, created_at: i64) -> PipelineVersionRecord {
    PipelineVersionRecord {
        id: id.into(),
        pipeline_id: pipeline_id.into(),
        name: name.into(),
        display_name: format!("{name} display"),
        description: String::new(),
        created_at: Timestamp(created_at),
        spec: json!({
            "pipeline_spec": {"pipelineInfo": {"name": name}, "root": {"dag": {"tasks": {}}}},
            "platform_spec": {}
        }),
        code_source_url: None,
    }
}

pub fn recurring_run(id: &str, namespace: &str, created_at: i64) -> RecurringRunRecord {
    RecurringRunRecord {
        id: id.into(),
        namespace: ns(namespace),
        display_name: format!("schedule {id}"),
        description: String::new(),
        experiment_id: None,
        pipeline_id: None,
        pipeline_version_id: None,
        spec: Some(json!({"pipeline_spec": {"pipelineInfo": {"name": "nightly"}}})),
        runtime_config: json!({"parameters": {"x": 3}}),
        trigger: json!({"cron_schedule": {"cron": "0 0 2 * * *"}}),
        max_concurrency: 1,
        no_catchup: false,
        enabled: true,
        created_at: Timestamp(created_at),
        updated_at: Timestamp(created_at),
        last_fired_at: None,
    }
}

/// A minimal pending container task.
pub fn task(run_id: &str, path: &str, created_at: i64) -> TaskRecord {
    let name = path.rsplit('/').next().unwrap_or(path);
    let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
    TaskRecord {
        id: oxflow_core::new_id(),
        run_id: run_id.into(),
        path: path.into(),
        parent_path: parent.into(),
        name: name.into(),
        display_name: name.into(),
        kind: "container".into(),
        state: TaskState::Pending,
        attempt: 1,
        cached: false,
        inputs: json!({"parameters": {}, "artifacts": {}}),
        outputs: json!({}),
        error: None,
        log_path: None,
        cache_key: None,
        created_at: Timestamp(created_at),
        started_at: None,
        finished_at: None,
    }
}

pub fn artifact(run_id: &str, task_path: &str, key: &str, uri: &str) -> ArtifactRecord {
    ArtifactRecord {
        id: oxflow_core::new_id(),
        namespace: ns("team-a"),
        run_id: run_id.into(),
        task_path: task_path.into(),
        output_key: key.into(),
        name: key.into(),
        uri: uri.into(),
        schema_title: "system.Model".into(),
        metadata: json!({"accuracy": 0.91}),
        digest: Some("sha256:00ff".into()),
        created_at: Timestamp(5_000),
    }
}

pub fn cache_entry(namespace: &str, key: &str, run_id: &str) -> CacheEntry {
    CacheEntry {
        key: key.into(),
        namespace: ns(namespace),
        outputs: json!({"parameters": {"Output": 4}, "artifacts": {}}),
        run_id: run_id.into(),
        task_path: "square".into(),
        created_at: Timestamp(6_000),
    }
}
