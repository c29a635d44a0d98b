//! Recurring runs: schedules that create runs. The scheduler's one piece of
//! shared state is `last_fired_at`, advanced only by compare-and-set so that
//! two schedulers never create a run for the same slot.

use oxflow_core::Timestamp;
use sqlx::any::AnyRow;

use super::listing::{Resource, SortKey, int, text, time};
use super::{DbContext, Reader, json_text, opt_millis};
use crate::{ListQuery, Page, RecurringRunRecord, Result, Store, StoreError};

macro_rules! recurring_run_columns {
    () => {
        "id, namespace, display_name, description, experiment_id, pipeline_id, \
         pipeline_version_id, spec, runtime_config, trigger_spec, max_concurrency, no_catchup, \
         enabled, created_at, updated_at, last_fired_at"
    };
}

/// What [`Store::list_recurring_runs`] filters and sorts on.
const RECURRING_RUNS: Resource = Resource {
    kind: "recurring runs",
    table: "recurring_runs",
    columns: recurring_run_columns!(),
    namespace_column: Some("namespace"),
    fields: &[
        text(&["display_name", "name"], "display_name", false),
        text(&["description"], "description", false),
        text(&["experiment_id"], "experiment_id", true),
        text(&["pipeline_id"], "pipeline_id", true),
        text(&["pipeline_version_id"], "pipeline_version_id", true),
        int(&["enabled"], "enabled"),
        time(&["created_at"], "created_at", false),
        time(&["updated_at"], "updated_at", false),
    ],
    sorts: &[
        SortKey {
            names: &["created_at"],
            expr: "created_at",
            int: true,
        },
        SortKey {
            names: &["display_name", "name"],
            expr: "display_name",
            int: false,
        },
    ],
};

fn recurring_run_from_row(row: &AnyRow) -> Result<RecurringRunRecord> {
    let r = Reader::keyed(row, "recurring run", "id")?;
    let spec = match r.get::<Option<String>>("spec")? {
        None => None,
        Some(_) => Some(r.json("spec")?),
    };
    Ok(RecurringRunRecord {
        id: r.get("id")?,
        namespace: r.namespace("namespace")?,
        display_name: r.get("display_name")?,
        description: r.get("description")?,
        experiment_id: r.get("experiment_id")?,
        pipeline_id: r.get("pipeline_id")?,
        pipeline_version_id: r.get("pipeline_version_id")?,
        spec,
        runtime_config: r.json("runtime_config")?,
        trigger: r.json("trigger_spec")?,
        max_concurrency: r.get("max_concurrency")?,
        no_catchup: r.flag("no_catchup")?,
        enabled: r.flag("enabled")?,
        created_at: r.timestamp("created_at")?,
        updated_at: r.timestamp("updated_at")?,
        last_fired_at: r.opt_timestamp("last_fired_at")?,
    })
}

impl Store {
    /// Stores a new recurring run. Fails (a database error) if the id exists;
    /// names need not be unique (as in KFP).
    pub async fn insert_recurring_run(&self, rr: &RecurringRunRecord) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO recurring_runs (",
            recurring_run_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        ))
        .bind(&rr.id)
        .bind(rr.namespace.as_str())
        .bind(&rr.display_name)
        .bind(&rr.description)
        .bind(rr.experiment_id.as_deref())
        .bind(rr.pipeline_id.as_deref())
        .bind(rr.pipeline_version_id.as_deref())
        .bind(rr.spec.as_ref().map(json_text))
        .bind(json_text(&rr.runtime_config))
        .bind(json_text(&rr.trigger))
        .bind(rr.max_concurrency)
        .bind(i64::from(rr.no_catchup))
        .bind(i64::from(rr.enabled))
        .bind(rr.created_at.millis())
        .bind(rr.updated_at.millis())
        .bind(opt_millis(rr.last_fired_at))
        .execute(&self.pool)
        .await
        .context(|| format!("inserting recurring run {}", rr.id))?;
        Ok(())
    }

    /// The recurring run with this id, if any.
    pub async fn get_recurring_run(&self, id: &str) -> Result<Option<RecurringRunRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            recurring_run_columns!(),
            " FROM recurring_runs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .context(|| format!("reading recurring run {id}"))?;
        row.as_ref().map(recurring_run_from_row).transpose()
    }

    /// One page of recurring runs.
    ///
    /// Filters: `display_name` (alias `name`), `description`,
    /// `experiment_id`, `pipeline_id`, `pipeline_version_id` (text);
    /// `enabled` (integer 0 or 1: a scheduler lists `enabled` EQUALS 1);
    /// `created_at`, `updated_at` (timestamps). Sorts: `created_at`
    /// (default), `display_name` (alias `name`).
    pub async fn list_recurring_runs(&self, q: &ListQuery) -> Result<Page<RecurringRunRecord>> {
        RECURRING_RUNS
            .plan(q, None)?
            .fetch(&self.pool, recurring_run_from_row)
            .await
    }

    /// Enables or disables a recurring run (KFP `:enable` / `:disable`);
    /// `updated_at` becomes `now`.
    pub async fn set_recurring_run_enabled(
        &self,
        id: &str,
        enabled: bool,
        now: Timestamp,
    ) -> Result<()> {
        let done =
            sqlx::query("UPDATE recurring_runs SET enabled = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(i64::from(enabled))
                .bind(now.millis())
                .execute(&self.pool)
                .await
                .context(|| format!("setting enabled = {enabled} on recurring run {id}"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                kind: "recurring run",
                id: id.to_owned(),
            });
        }
        Ok(())
    }

    /// Advances `last_fired_at` to `fired` if it still is `expected`, in one
    /// conditional UPDATE: of several schedulers that read the same
    /// `expected` and try to fire the next slot, exactly one gets `true` and
    /// creates the run. `false` also when the recurring run does not exist.
    pub async fn set_last_fired(
        &self,
        id: &str,
        expected: Option<Timestamp>,
        fired: Timestamp,
    ) -> Result<bool> {
        // `IS NOT DISTINCT FROM` is PostgreSQL's and `IS` SQLite's; two
        // statements say the same thing in both.
        let query = match expected {
            Some(previous) => sqlx::query(
                "UPDATE recurring_runs SET last_fired_at = $2 \
                 WHERE id = $1 AND last_fired_at = $3",
            )
            .bind(id)
            .bind(fired.millis())
            .bind(previous.millis()),
            None => sqlx::query(
                "UPDATE recurring_runs SET last_fired_at = $2 \
                 WHERE id = $1 AND last_fired_at IS NULL",
            )
            .bind(id)
            .bind(fired.millis()),
        };
        let done = query
            .execute(&self.pool)
            .await
            .context(|| format!("recording that recurring run {id} fired for {fired}"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes the recurring run. The runs it created are kept. Returns
    /// whether it existed.
    pub async fn delete_recurring_run(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM recurring_runs WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .context(|| format!("deleting recurring run {id}"))?;
        Ok(done.rows_affected() == 1)
    }
}
