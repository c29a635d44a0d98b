//! Tasks: the nodes of a run's graph, keyed by `(run_id, path)`, and
//! [`Store::finish_task`], which records a task's results atomically.

use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;
use tracing::debug;

use super::artifacts::{insert_artifact, upsert_cache};
use super::{DbContext, Reader, json_text, opt_millis};
use crate::{ArtifactRecord, CacheEntry, Result, Store, TaskRecord, TaskSummary};

macro_rules! task_columns {
    () => {
        "id, run_id, path, parent_path, name, display_name, kind, state, attempt, cached, \
         inputs, outputs, error, log_path, cache_key, created_at, started_at, finished_at"
    };
}

/// Insert or update by `(run_id, path)`; every column but `id`, `run_id` and
/// `path` is overwritten, so the row's first id survives restarts of the run.
const UPSERT_TASK: &str = concat!(
    "INSERT INTO tasks (",
    task_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
     ON CONFLICT (run_id, path) DO UPDATE SET \
     parent_path = excluded.parent_path, name = excluded.name, \
     display_name = excluded.display_name, kind = excluded.kind, state = excluded.state, \
     attempt = excluded.attempt, cached = excluded.cached, inputs = excluded.inputs, \
     outputs = excluded.outputs, error = excluded.error, log_path = excluded.log_path, \
     cache_key = excluded.cache_key, created_at = excluded.created_at, \
     started_at = excluded.started_at, finished_at = excluded.finished_at \
     RETURNING id"
);

fn task_from_row(row: &AnyRow) -> Result<TaskRecord> {
    let run_id: String = Reader::new(row, "a task row".into()).get("run_id")?;
    let path: String = Reader::new(row, format!("a task of run {run_id}")).get("path")?;
    let r = Reader::new(row, format!("task {path} of run {run_id}"));
    Ok(TaskRecord {
        id: r.get("id")?,
        run_id,
        path,
        parent_path: r.get("parent_path")?,
        name: r.get("name")?,
        display_name: r.get("display_name")?,
        kind: r.get("kind")?,
        state: r.parse("state")?,
        attempt: r.get("attempt")?,
        cached: r.flag("cached")?,
        inputs: r.json("inputs")?,
        outputs: r.json("outputs")?,
        error: r.get("error")?,
        log_path: r.get("log_path")?,
        cache_key: r.get("cache_key")?,
        created_at: r.timestamp("created_at")?,
        started_at: r.opt_timestamp("started_at")?,
        finished_at: r.opt_timestamp("finished_at")?,
    })
}

/// The body of [`Store::upsert_task`], on a connection or in a transaction.
async fn upsert_task_on(conn: &mut AnyConnection, t: &TaskRecord) -> Result<String> {
    let id = sqlx::query(UPSERT_TASK)
        .bind(&t.id)
        .bind(&t.run_id)
        .bind(&t.path)
        .bind(&t.parent_path)
        .bind(&t.name)
        .bind(&t.display_name)
        .bind(&t.kind)
        .bind(t.state.as_str())
        .bind(t.attempt)
        .bind(i64::from(t.cached))
        .bind(json_text(&t.inputs))
        .bind(json_text(&t.outputs))
        .bind(t.error.as_deref())
        .bind(t.log_path.as_deref())
        .bind(t.cache_key.as_deref())
        .bind(t.created_at.millis())
        .bind(opt_millis(t.started_at))
        .bind(opt_millis(t.finished_at))
        .fetch_one(&mut *conn)
        .await
        .and_then(|row| row.try_get::<String, _>(0))
        .context(|| format!("saving task {} of run {}", t.path, t.run_id))?;
    Ok(id)
}

impl Store {
    /// Records a task's current state, inserting it the first time its
    /// `(run_id, path)` is seen and overwriting it afterwards. The stored row
    /// keeps the id it was first inserted with; that id is returned (it
    /// differs from `t.id` when the task already existed).
    ///
    /// The run must exist (foreign key), else a database error.
    pub async fn upsert_task(&self, t: &TaskRecord) -> Result<String> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .context(|| format!("saving task {} of run {}", t.path, t.run_id))?;
        let id = upsert_task_on(&mut conn, t).await?;
        debug!(run = %t.run_id, task = %t.path, state = %t.state, "Task saved.");
        Ok(id)
    }

    /// Every task of the run, in the order they were first seen (ties by path).
    pub async fn list_tasks(&self, run_id: &str) -> Result<Vec<TaskRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE run_id = $1 ORDER BY created_at, path"
        ))
        .bind(run_id)
        .fetch_all(&self.pool)
        .await
        .context(|| format!("listing the tasks of run {run_id}"))?;
        rows.iter().map(task_from_row).collect()
    }

    /// Every task of the run without inputs and outputs, in
    /// [`Store::list_tasks`]'s order: a run's summary stays small however
    /// large its tasks' data.
    pub async fn list_task_summaries(&self, run_id: &str) -> Result<Vec<TaskSummary>> {
        let rows = sqlx::query(
            "SELECT path, kind, state, attempt, cached, error, started_at, finished_at \
             FROM tasks WHERE run_id = $1 ORDER BY created_at, path",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await
        .context(|| format!("listing the tasks of run {run_id}"))?;
        rows.iter()
            .map(|row| {
                let path: String =
                    Reader::new(row, format!("a task of run {run_id}")).get("path")?;
                let r = Reader::new(row, format!("task {path} of run {run_id}"));
                Ok(TaskSummary {
                    kind: r.get("kind")?,
                    state: r.parse("state")?,
                    attempt: r.get("attempt")?,
                    cached: r.flag("cached")?,
                    error: r.get("error")?,
                    started_at: r.opt_timestamp("started_at")?,
                    finished_at: r.opt_timestamp("finished_at")?,
                    path,
                })
            })
            .collect()
    }

    /// One page of the run's tasks in [`Store::list_tasks`]'s order: at most
    /// `limit` tasks after `after` (the last task of the previous page; `None`
    /// for the first page). A caller writing out every task of a large run
    /// (`runs get -o json`) then holds one page, not the run.
    ///
    /// Pages are keyed on `(created_at, path)`, which is unique within a run,
    /// so no task is skipped or repeated between pages.
    pub async fn list_tasks_page(
        &self,
        run_id: &str,
        after: Option<&TaskRecord>,
        limit: u32,
    ) -> Result<Vec<TaskRecord>> {
        let query = match after {
            None => sqlx::query(concat!(
                "SELECT ",
                task_columns!(),
                " FROM tasks WHERE run_id = $1 ORDER BY created_at, path LIMIT $2"
            ))
            .bind(run_id)
            .bind(i64::from(limit)),
            Some(last) => sqlx::query(concat!(
                "SELECT ",
                task_columns!(),
                " FROM tasks WHERE run_id = $1 \
                 AND (created_at > $2 OR (created_at = $2 AND path > $3)) \
                 ORDER BY created_at, path LIMIT $4"
            ))
            .bind(run_id)
            .bind(last.created_at.millis())
            .bind(last.path.clone())
            .bind(i64::from(limit)),
        };
        let rows = query
            .fetch_all(&self.pool)
            .await
            .context(|| format!("listing the tasks of run {run_id}"))?;
        rows.iter().map(task_from_row).collect()
    }

    /// The task at `path` in the run, if it has been recorded.
    pub async fn get_task(&self, run_id: &str, path: &str) -> Result<Option<TaskRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE run_id = $1 AND path = $2"
        ))
        .bind(run_id)
        .bind(path)
        .fetch_optional(&self.pool)
        .await
        .context(|| format!("reading task {path} of run {run_id}"))?;
        row.as_ref().map(task_from_row).transpose()
    }

    /// Records a finished task in ONE transaction: the task row, its output
    /// artifacts (replacing rows with the same `(run_id, task_path,
    /// output_key, uri)`) and, when given, its cache entry (replacing the one
    /// with the same `(namespace, key)`).
    ///
    /// Atomic so that a crash or a failed insert never leaves a SUCCEEDED task
    /// without its artifacts, or a cache entry pointing at outputs that were
    /// not recorded; on error nothing is written.
    pub async fn finish_task(
        &self,
        t: &TaskRecord,
        artifacts: &[ArtifactRecord],
        cache: Option<&CacheEntry>,
    ) -> Result<()> {
        let context = || format!("finishing task {} of run {}", t.path, t.run_id);
        // The first statement writes, so SQLite takes the write lock at once
        // (waiting on busy_timeout) instead of failing to upgrade a read lock.
        let mut tx = self.pool.begin().await.context(context)?;
        upsert_task_on(&mut tx, t).await?;
        for artifact in artifacts {
            insert_artifact(&mut tx, artifact).await?;
        }
        if let Some(entry) = cache {
            upsert_cache(&mut tx, entry).await?;
        }
        tx.commit().await.context(context)?;
        debug!(
            run = %t.run_id,
            task = %t.path,
            state = %t.state,
            artifacts = artifacts.len(),
            cached = cache.is_some(),
            "Task finished."
        );
        Ok(())
    }
}
