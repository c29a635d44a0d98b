//! Katib experiments, their trials and the trials' metric reports.
//!
//! A trial's end (its phase, observation summary and metric reports) is one
//! transaction, so a crash never leaves a finished trial without its metrics
//! or metrics without their trial's outcome.

use oxflow_core::{ExperimentPhase, Namespace, Timestamp};
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

async fn insert_logs(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    trial_id: &str,
    logs: &[ObservationLogRecord],
) -> Result<()> {
    for l in logs {
        sqlx::query(
            "INSERT INTO observation_logs (trial_id, time, metric_name, value) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(trial_id)
        .bind(opt_millis(l.time))
        .bind(&l.metric_name)
        .bind(&l.value)
        .execute(&mut **tx)
        .await
        .context(|| format!("recording metrics of trial {trial_id}"))?;
    }
    Ok(())
}

/// sqlx's `Any` driver binds a missing `f64` as a PostgreSQL `float4` NULL
/// (sqlx 0.9 swaps Real and Double for NULLs). A statement first prepared
/// with that NULL then rejects a real `float8` on the same connection
/// ("incorrect binary data format"), so a missing objective is written as
/// the literal NULL, in a statement of its own that has no such parameter.
async fn update_trial_on(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    t: &TuningTrialRecord,
) -> Result<()> {
    // Parameters $1-$9, the same in both statements.
    fn common<'q>(
        q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
        t: &'q TuningTrialRecord,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        q.bind(&t.id)
            .bind(t.phase.as_str())
            .bind(&t.message)
            .bind(json_text(&t.observation))
            .bind(&t.log_path)
            .bind(t.attempt)
            .bind(opt_millis(t.started_at))
            .bind(opt_millis(t.finished_at))
            .bind(json_text(&t.tags))
    }
    let query = match t.objective {
        Some(objective) => common(
            sqlx::query(
                "UPDATE trials SET phase = $2, message = $3, observation = $4, log_path = $5, \
                 attempt = $6, started_at = $7, finished_at = $8, tags = $9, objective = $10 \
                 WHERE id = $1",
            ),
            t,
        )
        .bind(objective),
        None => common(
            sqlx::query(
                "UPDATE trials SET phase = $2, message = $3, observation = $4, log_path = $5, \
                 attempt = $6, started_at = $7, finished_at = $8, tags = $9, objective = NULL \
                 WHERE id = $1",
            ),
            t,
        ),
    };
    let done = query
        .execute(&mut **tx)
        .await
        .context(|| format!("updating trial {}", t.name))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound {
            kind: "trial",
            id: t.name.clone(),
        });
    }
    Ok(())
}

impl Store {
    /// Stores a new tuning experiment.
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

    /// The experiment of that name in `namespace`.
    pub async fn get_tuning_experiment(
        &self,
        namespace: &Namespace,
        name: &str,
    ) -> Result<TuningExperimentRecord> {
        let row = sqlx::query(concat!(
            "SELECT ",
            experiment_columns!(),
            " FROM tuning_experiments WHERE namespace = $1 AND name = $2"
        ))
        .bind(namespace.as_str())
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .context(|| format!("reading experiment {name}"))?;
        match row {
            Some(row) => experiment_from_row(&row),
            None => Err(StoreError::NotFound {
                kind: "experiment",
                id: name.to_owned(),
            }),
        }
    }

    /// The experiment with that id.
    pub async fn get_tuning_experiment_by_id(&self, id: &str) -> Result<TuningExperimentRecord> {
        let row = sqlx::query(concat!(
            "SELECT ",
            experiment_columns!(),
            " FROM tuning_experiments WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .context(|| format!("reading experiment {id}"))?;
        match row {
            Some(row) => experiment_from_row(&row),
            None => Err(StoreError::NotFound {
                kind: "experiment",
                id: id.to_owned(),
            }),
        }
    }

    /// Experiments, oldest first, of one namespace or of all.
    pub async fn list_tuning_experiments(
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

    /// Experiments in one of `phases`, oldest first: what a controller looks for.
    pub async fn list_tuning_experiments_in(
        &self,
        phases: &[ExperimentPhase],
    ) -> Result<Vec<TuningExperimentRecord>> {
        let all = self.list_tuning_experiments(None).await?;
        Ok(all
            .into_iter()
            .filter(|e| phases.contains(&e.phase))
            .collect())
    }

    /// Writes the experiment's spec and status (everything but id, namespace,
    /// name, seed and creation time).
    pub async fn update_tuning_experiment(&self, e: &TuningExperimentRecord) -> Result<()> {
        let done = sqlx::query(
            "UPDATE tuning_experiments SET spec = $2, phase = $3, conditions = $4, \
             optimal_trial = $5, started_at = $6, finished_at = $7, owner = $8, heartbeat_at = $9 \
             WHERE id = $1",
        )
        .bind(&e.id)
        .bind(json_text(&e.spec))
        .bind(e.phase.as_str())
        .bind(json_text(&e.conditions))
        .bind(&e.optimal_trial)
        .bind(opt_millis(e.started_at))
        .bind(opt_millis(e.finished_at))
        .bind(&e.owner)
        .bind(opt_millis(e.heartbeat_at))
        .execute(&self.pool)
        .await
        .context(|| format!("updating experiment {}", e.name))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                kind: "experiment",
                id: e.name.clone(),
            });
        }
        Ok(())
    }

    /// Makes `owner` the experiment's controller unless another live one
    /// holds it: succeeds when it has no owner, is already `owner`'s, or its
    /// owner's heartbeat is older than `stale_before`. Returns whether it did.
    pub async fn claim_tuning_experiment(
        &self,
        id: &str,
        owner: &str,
        now: Timestamp,
        stale_before: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE tuning_experiments SET owner = $2, heartbeat_at = $3 WHERE id = $1 \
             AND (owner IS NULL OR owner = $2 OR heartbeat_at IS NULL OR heartbeat_at < $4)",
        )
        .bind(id)
        .bind(owner)
        .bind(now.millis())
        .bind(stale_before.millis())
        .execute(&self.pool)
        .await
        .context(|| format!("claiming experiment {id}"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that `owner` is alive for every experiment it holds.
    pub async fn heartbeat_tuning(&self, owner: &str, now: Timestamp) -> Result<u64> {
        let done = sqlx::query("UPDATE tuning_experiments SET heartbeat_at = $2 WHERE owner = $1")
            .bind(owner)
            .bind(now.millis())
            .execute(&self.pool)
            .await
            .context(|| format!("recording a heartbeat for {owner}"))?;
        Ok(done.rows_affected())
    }

    /// Deletes the experiment with its trials and their metrics, in one
    /// transaction. Returns whether it existed.
    pub async fn delete_tuning_experiment(&self, id: &str) -> Result<bool> {
        let context = || format!("deleting experiment {id}");
        let mut tx = self.pool.begin().await.context(context)?;
        sqlx::query(
            "DELETE FROM observation_logs WHERE trial_id IN \
             (SELECT id FROM trials WHERE experiment_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .context(context)?;
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

    /// Stores new trials of one experiment together: either all of a batch
    /// of suggestions exist afterwards or none.
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

    /// The experiment's trials in creation order.
    pub async fn list_trials(&self, experiment_id: &str) -> Result<Vec<TuningTrialRecord>> {
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

    /// The trial of that name in `namespace` (Katib's trial names are unique
    /// in a namespace: they are Kubernetes object names) with its experiment.
    pub async fn find_trial(
        &self,
        namespace: &Namespace,
        name: &str,
    ) -> Result<(TuningExperimentRecord, TuningTrialRecord)> {
        let row = sqlx::query(
            "SELECT t.experiment_id FROM trials t JOIN tuning_experiments e \
             ON e.id = t.experiment_id WHERE e.namespace = $1 AND t.name = $2",
        )
        .bind(namespace.as_str())
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .context(|| format!("finding trial {name}"))?;
        let Some(row) = row else {
            return Err(StoreError::NotFound {
                kind: "trial",
                id: name.to_owned(),
            });
        };
        let experiment_id: String =
            Reader::new(&row, format!("trial {name}")).get("experiment_id")?;
        let experiment = self.get_tuning_experiment_by_id(&experiment_id).await?;
        let trial = self
            .list_trials(&experiment_id)
            .await?
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| StoreError::NotFound {
                kind: "trial",
                id: name.to_owned(),
            })?;
        Ok((experiment, trial))
    }

    /// Writes a trial's status (phase, message, objective, observation, log
    /// path, attempt, times, tags).
    pub async fn update_trial(&self, t: &TuningTrialRecord) -> Result<()> {
        let context = || format!("updating trial {}", t.name);
        let mut tx = self.pool.begin().await.context(context)?;
        update_trial_on(&mut tx, t).await?;
        tx.commit().await.context(context)?;
        Ok(())
    }

    /// Writes a trial's status and appends its metric reports, atomically.
    pub async fn finish_trial(
        &self,
        t: &TuningTrialRecord,
        logs: &[ObservationLogRecord],
    ) -> Result<()> {
        let context = || format!("finishing trial {}", t.name);
        let mut tx = self.pool.begin().await.context(context)?;
        update_trial_on(&mut tx, t).await?;
        insert_logs(&mut tx, &t.id, logs).await?;
        tx.commit().await.context(context)?;
        Ok(())
    }

    /// Appends metric reports of a running trial (Katib's `ReportObservationLog`).
    pub async fn append_observation_logs(
        &self,
        trial_id: &str,
        logs: &[ObservationLogRecord],
    ) -> Result<()> {
        let context = || format!("recording metrics of trial {trial_id}");
        let mut tx = self.pool.begin().await.context(context)?;
        insert_logs(&mut tx, trial_id, logs).await?;
        tx.commit().await.context(context)?;
        Ok(())
    }

    /// A trial's metric reports in the order they were recorded.
    pub async fn list_observation_logs(&self, trial_id: &str) -> Result<Vec<ObservationLogRecord>> {
        let rows = sqlx::query(
            "SELECT time, metric_name, value FROM observation_logs WHERE trial_id = $1 ORDER BY id",
        )
        .bind(trial_id)
        .fetch_all(&self.pool)
        .await
        .context(|| format!("reading metrics of trial {trial_id}"))?;
        rows.iter().map(log_from_row).collect()
    }

    /// Starts a trial's attempt afresh: its earlier attempt's metric reports
    /// are dropped and its status written, in one transaction (an
    /// interrupted trial is re-run from the start with the same parameters).
    pub async fn restart_trial(&self, t: &TuningTrialRecord) -> Result<()> {
        let context = || format!("restarting trial {}", t.name);
        let mut tx = self.pool.begin().await.context(context)?;
        sqlx::query("DELETE FROM observation_logs WHERE trial_id = $1")
            .bind(&t.id)
            .execute(&mut *tx)
            .await
            .context(context)?;
        update_trial_on(&mut tx, t).await?;
        tx.commit().await.context(context)?;
        Ok(())
    }
}
