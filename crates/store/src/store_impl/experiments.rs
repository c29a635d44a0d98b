//! Experiments: named groups of runs, unique by `(namespace, display_name)`.

use oxflow_core::{Namespace, Timestamp};
use sqlx::any::AnyRow;

use super::listing::{Resource, SortKey, text, time};
use super::{DbContext, Reader, db_err, is_unique_violation, opt_millis};
use crate::{ExperimentRecord, ListQuery, Page, Result, StorageState, Store, StoreError};

macro_rules! experiment_columns {
    () => {
        "id, namespace, display_name, description, created_at, storage_state, last_run_created_at"
    };
}

/// What [`Store::list_experiments`] filters and sorts on.
const EXPERIMENTS: Resource = Resource {
    kind: "experiments",
    table: "experiments",
    columns: experiment_columns!(),
    namespace_column: Some("namespace"),
    fields: &[
        text(&["display_name", "name"], "display_name", false),
        text(&["description"], "description", false),
        text(&["storage_state"], "storage_state", false),
        time(&["created_at"], "created_at", false),
        time(&["last_run_created_at"], "last_run_created_at", true),
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

fn experiment_from_row(row: &AnyRow) -> Result<ExperimentRecord> {
    let r = Reader::keyed(row, "experiment", "id")?;
    Ok(ExperimentRecord {
        id: r.get("id")?,
        namespace: r.namespace("namespace")?,
        display_name: r.get("display_name")?,
        description: r.get("description")?,
        created_at: r.timestamp("created_at")?,
        storage_state: r.parse("storage_state")?,
        last_run_created_at: r.opt_timestamp("last_run_created_at")?,
    })
}

impl Store {
    /// Stores a new experiment.
    ///
    /// Errors: [`StoreError::Conflict`] when the namespace already has an
    /// experiment of that `display_name` (archived ones included, as in KFP);
    /// a database error when the id exists.
    pub async fn insert_experiment(&self, e: &ExperimentRecord) -> Result<()> {
        let inserted = sqlx::query(concat!(
            "INSERT INTO experiments (",
            experiment_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(&e.id)
        .bind(e.namespace.as_str())
        .bind(&e.display_name)
        .bind(&e.description)
        .bind(e.created_at.millis())
        .bind(e.storage_state.as_str())
        .bind(opt_millis(e.last_run_created_at))
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(err) => {
                // The id's primary key is unique too: only a taken name is a conflict.
                if is_unique_violation(&err)
                    && self
                        .get_experiment_by_name(&e.namespace, &e.display_name)
                        .await?
                        .is_some()
                {
                    return Err(StoreError::Conflict {
                        kind: "experiment",
                        name: e.display_name.clone(),
                    });
                }
                Err(db_err(format!("inserting experiment {}", e.id), err))
            }
        }
    }

    /// The experiment with this id, if any.
    pub async fn get_experiment(&self, id: &str) -> Result<Option<ExperimentRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            experiment_columns!(),
            " FROM experiments WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .context(|| format!("reading experiment {id}"))?;
        row.as_ref().map(experiment_from_row).transpose()
    }

    /// The experiment of `ns` called `display_name`, if any.
    pub async fn get_experiment_by_name(
        &self,
        ns: &Namespace,
        display_name: &str,
    ) -> Result<Option<ExperimentRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            experiment_columns!(),
            " FROM experiments WHERE namespace = $1 AND display_name = $2"
        ))
        .bind(ns.as_str())
        .bind(display_name)
        .fetch_optional(&self.pool)
        .await
        .context(|| format!("reading experiment {display_name:?} in namespace {ns}"))?;
        row.as_ref().map(experiment_from_row).transpose()
    }

    /// One page of experiments.
    ///
    /// Filters: `display_name` (alias `name`), `description`,
    /// `storage_state` (text); `created_at`, `last_run_created_at`
    /// (timestamps). Sorts: `created_at` (default), `display_name` (alias `name`).
    pub async fn list_experiments(&self, q: &ListQuery) -> Result<Page<ExperimentRecord>> {
        EXPERIMENTS
            .plan(q, None)?
            .fetch(&self.pool, experiment_from_row)
            .await
    }

    /// Archives or restores an experiment, with KFP's semantics: archiving
    /// also archives every run of the experiment and disables its recurring
    /// runs (their `updated_at` becomes `now`), all in one transaction;
    /// restoring touches the experiment only, its runs stay archived.
    pub async fn set_experiment_storage_state(
        &self,
        id: &str,
        state: StorageState,
        now: Timestamp,
    ) -> Result<()> {
        let context = || format!("setting the storage state of experiment {id} to {state}");
        let mut tx = self.pool.begin().await.context(context)?;
        let done = sqlx::query("UPDATE experiments SET storage_state = $2 WHERE id = $1")
            .bind(id)
            .bind(state.as_str())
            .execute(&mut *tx)
            .await
            .context(context)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                kind: "experiment",
                id: id.to_owned(),
            });
        }
        if state == StorageState::Archived {
            sqlx::query("UPDATE runs SET storage_state = $2 WHERE experiment_id = $1")
                .bind(id)
                .bind(state.as_str())
                .execute(&mut *tx)
                .await
                .context(context)?;
            sqlx::query(
                "UPDATE recurring_runs SET enabled = 0, updated_at = $2 \
                 WHERE experiment_id = $1 AND enabled = 1",
            )
            .bind(id)
            .bind(now.millis())
            .execute(&mut *tx)
            .await
            .context(context)?;
        }
        tx.commit().await.context(context)
    }

    /// Records that a run of the experiment was created at `at`: sets
    /// `last_run_created_at` unless it is already later (so out-of-order
    /// calls never move it back).
    pub async fn touch_last_run(&self, experiment_id: &str, at: Timestamp) -> Result<()> {
        // CASE instead of MAX/GREATEST, which the two databases spell differently.
        let done = sqlx::query(
            "UPDATE experiments SET last_run_created_at = CASE \
             WHEN last_run_created_at IS NULL OR last_run_created_at < $2 THEN $2 \
             ELSE last_run_created_at END WHERE id = $1",
        )
        .bind(experiment_id)
        .bind(at.millis())
        .execute(&self.pool)
        .await
        .context(|| format!("recording a new run in experiment {experiment_id}"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                kind: "experiment",
                id: experiment_id.to_owned(),
            });
        }
        Ok(())
    }

    /// Deletes the experiment row only. As in KFP, its runs and recurring
    /// runs are kept and still name it in `experiment_id` (there is no
    /// foreign key): a caller that wants them gone deletes them first.
    /// Returns whether the experiment existed.
    pub async fn delete_experiment(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM experiments WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .context(|| format!("deleting experiment {id}"))?;
        Ok(done.rows_affected() == 1)
    }
}
