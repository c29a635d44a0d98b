//! Katib's tables from before Experiments and Trials moved onto the
//! resource model (migration 0003's `tuning_experiments` and `trials`),
//! and the trials' metric reports (`trial_observations`, keyed by the
//! Trial object's uid).
//!
//! Nothing but the migration writes the old tables: at start-up
//! `oxflow_tuning::kinds::migrate_legacy` reads each experiment with its
//! trials, stores them as objects (the ids become uids, so their metric
//! reports stay theirs) and deletes the rows, one experiment at a time.
//! The insert functions are kept for the test that fills a data directory
//! through the old schema before migrating it.
use oxflow_core::Namespace;
use sqlx::any::AnyRow;

use super::{DbContext, Reader, is_unique_violation, json_text, opt_millis};
use crate::{
    ObservationLogRecord, Result, Store, StoreError, TuningExperimentRecord, TuningTrialRecord,
};

macro_rules! experiment_columns {
    () => {
        "id, namespace, name, spec, seed, options, phase, conditions, optimal_trial, created_at, \
         started_at, finished_at, owner, heartbeat_at"
    };
}

macro_rules! trial_columns {
    () => {
        "id, experiment_id, name, seq, assignments, tags, phase, message, objective, \
         observation, log_path, attempt, created_at, started_at, finished_at"
    };
}

fn experiment_from_row(row: &AnyRow) -> Result<TuningExperimentRecord> {
    let r = Reader::keyed(row, "tuning experiment", "name")?;
    Ok(TuningExperimentRecord {
        id: r.get("id")?,
        namespace: r.namespace("namespace")?,
        name: r.get("name")?,
        spec: r.json("spec")?,
        seed: r.get("seed")?,
        options: r.json("options")?,
        phase: r.parse("phase")?,
        conditions: r.json("conditions")?,
        optimal_trial: r.get("optimal_trial")?,
        created_at: r.timestamp("created_at")?,
        started_at: r.opt_timestamp("started_at")?,
        finished_at: r.opt_timestamp("finished_at")?,
        owner: r.get("owner")?,
        heartbeat_at: r.opt_timestamp("heartbeat_at")?,
    })
}

fn trial_from_row(row: &AnyRow) -> Result<TuningTrialRecord> {
    let r = Reader::keyed(row, "trial", "name")?;
    Ok(TuningTrialRecord {
        id: r.get("id")?,
        experiment_id: r.get("experiment_id")?,
        name: r.get("name")?,
        seq: r.get("seq")?,
        assignments: r.json("assignments")?,
        tags: r.json("tags")?,
        phase: r.parse("phase")?,
        message: r.get("message")?,
        objective: r.get("objective")?,
        observation: r.json("observation")?,
        log_path: r.get("log_path")?,
        attempt: r.get("attempt")?,
        created_at: r.timestamp("created_at")?,
        started_at: r.opt_timestamp("started_at")?,
        finished_at: r.opt_timestamp("finished_at")?,
    })
}

fn log_from_row(row: &AnyRow) -> Result<ObservationLogRecord> {
    let r = Reader::new(row, "observation log".to_owned());
    Ok(ObservationLogRecord {
        time: r.opt_timestamp("time")?,
        metric_name: r.get("metric_name")?,
        value: r.get("value")?,
    })
}

impl Store {
    /// Stores an experiment in the old table (for the migration's test).
    ///
    /// Errors: [`StoreError::Conflict`] when the namespace already has an
    /// experiment of that name.
    pub async fn insert_tuning_experiment(&self, e: &TuningExperimentRecord) -> Result<()> {
        let inserted = sqlx::query(concat!(
            "INSERT INTO tuning_experiments (",
            experiment_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind(&e.id)
        .bind(e.namespace.as_str())
        .bind(&e.name)
        .bind(json_text(&e.spec))
        .bind(e.seed)
        .bind(json_text(&e.options))
        .bind(e.phase.as_str())
        .bind(json_text(&e.conditions))
        .bind(&e.optimal_trial)
        .bind(e.created_at.millis())
        .bind(opt_millis(e.started_at))
        .bind(opt_millis(e.finished_at))
        .bind(&e.owner)
        .bind(opt_millis(e.heartbeat_at))
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(err) if is_unique_violation(&err) => Err(StoreError::Conflict {
                kind: "experiment",
                name: e.name.clone(),
            }),
            Err(err) => Err(super::db_err(format!("storing experiment {}", e.name), err)),
        }
    }

    /// The old table's experiments, oldest first, of one namespace or of all.
    pub async fn legacy_tuning_experiments(
        &self,
        namespace: Option<&Namespace>,
    ) -> Result<Vec<TuningExperimentRecord>> {
        let rows = match namespace {
            Some(ns) => {
                sqlx::query(concat!(
                    "SELECT ",
                    experiment_columns!(),
                    " FROM tuning_experiments WHERE namespace = $1 ORDER BY created_at, id"
                ))
                .bind(ns.as_str())
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(concat!(
                    "SELECT ",
                    experiment_columns!(),
                    " FROM tuning_experiments ORDER BY created_at, id"
                ))
                .fetch_all(&self.pool)
                .await
            }
        }
        .context(|| "listing experiments".to_owned())?;
        rows.iter().map(experiment_from_row).collect()
    }

    /// Removes an experiment and its trials from the old tables (once the
    /// migration stored them as objects). Their metric reports stay: they
    /// belong to the Trial objects now. Returns whether it existed.
    pub async fn delete_legacy_tuning_experiment(&self, id: &str) -> Result<bool> {
        let context = || format!("deleting migrated experiment {id}");
        let mut tx = self.pool.begin().await.context(context)?;
        sqlx::query("DELETE FROM trials WHERE experiment_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .context(context)?;
        let done = sqlx::query("DELETE FROM tuning_experiments WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .context(context)?;
        tx.commit().await.context(context)?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores trials in the old table (for the migration's test).
    ///
    /// Errors: [`StoreError::Conflict`] when a `seq` or name is taken (two
    /// controllers raced to extend the same history).
    pub async fn insert_trials(&self, trials: &[TuningTrialRecord]) -> Result<()> {
        let Some(first) = trials.first() else {
            return Ok(());
        };
        let context = || format!("storing trials of experiment {}", first.experiment_id);
        let mut tx = self.pool.begin().await.context(context)?;
        for t in trials {
            // The objective goes in as a literal NULL when missing (see
            // `update_trial_on`), so $9 is only ever a float8.
            let query = sqlx::query(match t.objective {
                Some(_) => concat!(
                    "INSERT INTO trials (",
                    trial_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
                ),
                None => concat!(
                    "INSERT INTO trials (",
                    trial_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, $10, $11, $12, $13, $14)"
                ),
            })
            .bind(&t.id)
            .bind(&t.experiment_id)
            .bind(&t.name)
            .bind(t.seq)
            .bind(json_text(&t.assignments))
            .bind(json_text(&t.tags))
            .bind(t.phase.as_str())
            .bind(&t.message);
            let query = match t.objective {
                Some(objective) => query.bind(objective),
                None => query,
            };
            let inserted = query
                .bind(json_text(&t.observation))
                .bind(&t.log_path)
                .bind(t.attempt)
                .bind(t.created_at.millis())
                .bind(opt_millis(t.started_at))
                .bind(opt_millis(t.finished_at))
                .execute(&mut *tx)
                .await;
            match inserted {
                Ok(_) => {}
                Err(err) if is_unique_violation(&err) => {
                    return Err(StoreError::Conflict {
                        kind: "trial",
                        name: t.name.clone(),
                    });
                }
                Err(err) => return Err(super::db_err(context(), err)),
            }
        }
        tx.commit().await.context(context)?;
        Ok(())
    }

    /// The old table's trials of an experiment, in creation order.
    pub async fn legacy_trials(&self, experiment_id: &str) -> Result<Vec<TuningTrialRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            trial_columns!(),
            " FROM trials WHERE experiment_id = $1 ORDER BY seq"
        ))
        .bind(experiment_id)
        .fetch_all(&self.pool)
        .await
        .context(|| format!("listing trials of experiment {experiment_id}"))?;
        rows.iter().map(trial_from_row).collect()
    }

    /// Appends metric reports of a trial (Katib's `ReportObservationLog`),
    /// in one transaction.
    pub async fn append_observation_logs(
        &self,
        trial_uid: &str,
        logs: &[ObservationLogRecord],
    ) -> Result<()> {
        if logs.is_empty() {
            return Ok(());
        }
        let context = || format!("recording metrics of trial {trial_uid}");
        let mut tx = self.pool.begin().await.context(context)?;
        for l in logs {
            sqlx::query(
                "INSERT INTO trial_observations (trial_uid, time, metric_name, value) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(trial_uid)
            .bind(opt_millis(l.time))
            .bind(&l.metric_name)
            .bind(&l.value)
            .execute(&mut *tx)
            .await
            .context(context)?;
        }
        tx.commit().await.context(context)?;
        Ok(())
    }

    /// A trial's metric reports in the order they were recorded.
    pub async fn list_observation_logs(
        &self,
        trial_uid: &str,
    ) -> Result<Vec<ObservationLogRecord>> {
        let rows = sqlx::query(
            "SELECT time, metric_name, value FROM trial_observations WHERE trial_uid = $1 ORDER BY id",
        )
        .bind(trial_uid)
        .fetch_all(&self.pool)
        .await
        .context(|| format!("reading metrics of trial {trial_uid}"))?;
        rows.iter().map(log_from_row).collect()
    }

    /// Drops a trial's metric reports (a trial re-run from the start).
    pub async fn clear_observation_logs(&self, trial_uid: &str) -> Result<()> {
        sqlx::query("DELETE FROM trial_observations WHERE trial_uid = $1")
            .bind(trial_uid)
            .execute(&self.pool)
            .await
            .context(|| format!("dropping metrics of trial {trial_uid}"))?;
        Ok(())
    }

    /// Drops the metric reports of trials that no longer exist, neither as
    /// Trial objects (`trial_kind`: its group and kind) nor in the old
    /// table; returns how many went.
    pub async fn delete_orphan_observation_logs(&self, trial_kind: (&str, &str)) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM trial_observations WHERE trial_uid NOT IN \
             (SELECT uid FROM resources WHERE api_group = $1 AND kind = $2) \
             AND trial_uid NOT IN (SELECT id FROM trials)",
        )
        .bind(trial_kind.0)
        .bind(trial_kind.1)
        .execute(&self.pool)
        .await
        .context(|| "dropping the metrics of deleted trials".to_owned())?;
        Ok(done.rows_affected())
    }
}
