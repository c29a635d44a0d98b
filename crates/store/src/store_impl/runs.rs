//! Runs: submission, status updates, listing, and engine ownership.

use oxflow_core::{RunState, Timestamp};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use tracing::debug;

use super::listing::{Resource, SortKey, text, time};
use super::{DbContext, Reader, json_text, opt_millis};
use crate::{
    ListQuery, Page, Result, RunQuery, RunRecord, StateChange, StorageState, Store, StoreError,
};

/// The columns [`run_from_row`] reads (by name), for `SELECT … FROM runs`:
/// the spec is put together from its pieces in `run_specs`.
macro_rules! run_columns {
    () => {
        "id, namespace, display_name, pipeline_name, \
         COALESCE((SELECT string_agg(run_specs.chunk, '' ORDER BY run_specs.seq) \
         FROM run_specs WHERE run_specs.run_id = runs.id), 'null') AS spec, \
         parameters, options, state, error, \
         outputs, created_at, started_at, finished_at, owner, heartbeat_at, experiment_id, \
         description, storage_state, pipeline_id, pipeline_version_id, recurring_run_id, \
         state_history, scheduled_at"
    };
}

/// The columns of `runs` itself, in the order [`Store::insert_run_with_spec`] binds them.
macro_rules! run_table_columns {
    () => {
        "id, namespace, display_name, pipeline_name, parameters, options, state, error, \
         outputs, created_at, started_at, finished_at, owner, heartbeat_at, experiment_id, \
         description, storage_state, pipeline_id, pipeline_version_id, recurring_run_id, \
         state_history, scheduled_at"
    };
}

/// What [`Store::list_runs_page`] filters and sorts on.
const RUNS: Resource = Resource {
    kind: "runs",
    table: "runs",
    columns: run_columns!(),
    namespace_column: Some("namespace"),
    fields: &[
        text(&["display_name", "name"], "display_name", false),
        text(&["state"], "state", false),
        text(&["experiment_id"], "experiment_id", true),
        text(&["storage_state"], "storage_state", false),
        text(&["recurring_run_id"], "recurring_run_id", true),
        text(&["pipeline_id"], "pipeline_id", true),
        text(&["pipeline_version_id"], "pipeline_version_id", true),
        text(&["description"], "description", false),
        time(&["created_at"], "created_at", false),
        time(&["finished_at"], "finished_at", true),
        time(&["scheduled_at"], "scheduled_at", true),
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
        // Unfinished runs sort as the oldest: where MySQL (KFP's database)
        // puts NULLs. The literal is i64::MIN + 1, which PostgreSQL still
        // reads as a BIGINT (i64::MIN itself would become NUMERIC).
        SortKey {
            names: &["finished_at"],
            expr: "COALESCE(finished_at, -9223372036854775807)",
            int: true,
        },
    ],
};

/// The largest piece of a spec in `run_specs`, in bytes: every copy the
/// driver and SQLite make of a piece while writing or reading it is this
/// small, whatever the pipeline's size.
const SPEC_CHUNK_BYTES: usize = 64 * 1024;

/// `text` in pieces of at most [`SPEC_CHUNK_BYTES`] (one more byte per
/// character cut at a boundary at worst), split between characters.
fn spec_chunks(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = rest.len().min(SPEC_CHUNK_BYTES);
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

/// Shortest prefix [`Store::find_run`] resolves: shorter ones match too much
/// to be what the user meant.
pub const MIN_ID_PREFIX: usize = 4;

/// Page size when [`RunQuery::limit`] is `None`.
pub const DEFAULT_RUN_LIMIT: i64 = 100;

/// The claim statement: `$1` id, `$2` owner, `$3` now, `$4` stale_before.
const CLAIM_SQL: &str = concat!(
    "UPDATE runs SET owner = $2, heartbeat_at = $3 WHERE id = $1 AND state NOT IN ",
    terminal_states!(),
    " AND (owner IS NULL OR owner = $2 OR heartbeat_at IS NULL OR heartbeat_at < $4)"
);

fn run_from_row(row: &AnyRow) -> Result<RunRecord> {
    let r = Reader::keyed(row, "run", "id")?;
    Ok(RunRecord {
        id: r.get("id")?,
        namespace: r.namespace("namespace")?,
        display_name: r.get("display_name")?,
        pipeline_name: r.get("pipeline_name")?,
        spec: r.json("spec")?,
        parameters: r.json("parameters")?,
        options: r.json("options")?,
        state: r.parse("state")?,
        error: r.get("error")?,
        outputs: r.json("outputs")?,
        created_at: r.timestamp("created_at")?,
        started_at: r.opt_timestamp("started_at")?,
        finished_at: r.opt_timestamp("finished_at")?,
        owner: r.get("owner")?,
        heartbeat_at: r.opt_timestamp("heartbeat_at")?,
        experiment_id: r.get("experiment_id")?,
        description: r.get("description")?,
        storage_state: r.parse("storage_state")?,
        pipeline_id: r.get("pipeline_id")?,
        pipeline_version_id: r.get("pipeline_version_id")?,
        recurring_run_id: r.get("recurring_run_id")?,
        state_history: history(&r)?,
        scheduled_at: r.opt_timestamp("scheduled_at")?,
    })
}

fn history(r: &Reader<'_>) -> Result<Vec<StateChange>> {
    let text: String = r.get("state_history")?;
    serde_json::from_str(&text).map_err(|e| {
        r.corrupt(format!(
            "column state_history is not a list of state changes: {e}"
        ))
    })
}

fn history_text(history: &[StateChange]) -> String {
    // A list of plain structs of strings and integers always serializes.
    serde_json::to_string(history).unwrap_or_else(|_| "[]".to_owned())
}

/// The fields [`Store::update_run`] writes, for `concat!`: `$1` is the id,
/// `$3` the state.
/// A stored cancel (CANCELING) is an intent no engine may undo: a write
/// that would take the run back to PENDING or RUNNING leaves the row alone.
macro_rules! update_run_set {
    () => {
        "UPDATE runs SET display_name = $2, state = $3, error = $4, outputs = $5, \
         started_at = $6, finished_at = $7, owner = $8, heartbeat_at = $9, options = $10 \
         WHERE id = $1 AND NOT (state = 'CANCELING' AND $3 IN ('PENDING', 'RUNNING'))"
    };
}

impl Store {
    /// Stores a newly submitted run. Fails (a database error) if the id exists:
    /// runs are created once and changed with [`Store::update_run`].
    ///
    /// An empty [`RunRecord::state_history`] is stored as one entry: the
    /// run's state at `created_at`. The run's experiment is not touched:
    /// call [`Store::touch_last_run`] for that.
    pub async fn insert_run(&self, run: &RunRecord) -> Result<()> {
        self.insert_run_with_spec(run, &json_text(&run.spec)).await
    }

    /// [`Store::insert_run`] with the spec given as JSON text, which is
    /// stored in place of `run.spec`: a large pipeline then need not be
    /// built as a `serde_json::Value` (several times its typed size) just to
    /// be written. The text must be valid JSON.
    pub async fn insert_run_with_spec(&self, run: &RunRecord, spec_json: &str) -> Result<()> {
        let history = if run.state_history.is_empty() {
            vec![StateChange {
                update_time: run.created_at,
                state: run.state,
                error: run.error.clone(),
            }]
        } else {
            run.state_history.clone()
        };
        let context = || format!("inserting run {}", run.id);
        let mut tx = self.pool.begin().await.context(context)?;
        sqlx::query(concat!(
            "INSERT INTO runs (",
            run_table_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
             $16, $17, $18, $19, $20, $21, $22)"
        ))
        .bind(&run.id)
        .bind(run.namespace.as_str())
        .bind(&run.display_name)
        .bind(&run.pipeline_name)
        .bind(json_text(&run.parameters))
        .bind(json_text(&run.options))
        .bind(run.state.as_str())
        .bind(run.error.as_deref())
        .bind(json_text(&run.outputs))
        .bind(run.created_at.millis())
        .bind(opt_millis(run.started_at))
        .bind(opt_millis(run.finished_at))
        .bind(run.owner.as_deref())
        .bind(opt_millis(run.heartbeat_at))
        .bind(run.experiment_id.as_deref())
        .bind(&run.description)
        .bind(run.storage_state.as_str())
        .bind(run.pipeline_id.as_deref())
        .bind(run.pipeline_version_id.as_deref())
        .bind(run.recurring_run_id.as_deref())
        .bind(history_text(&history))
        .bind(opt_millis(run.scheduled_at))
        .execute(&mut *tx)
        .await
        .context(context)?;
        for (seq, chunk) in spec_chunks(spec_json).enumerate() {
            sqlx::query("INSERT INTO run_specs (run_id, seq, chunk) VALUES ($1, $2, $3)")
                .bind(&run.id)
                .bind(seq as i64)
                .bind(chunk)
                .execute(&mut *tx)
                .await
                .context(context)?;
        }
        tx.commit().await.context(context)?;
        debug!(run = %run.id, namespace = %run.namespace, "Run stored.");
        Ok(())
    }

    /// The run with exactly this id, if any.
    pub async fn get_run(&self, id: &str) -> Result<Option<RunRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .context(|| format!("reading run {id}"))?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// The run with exactly this id, without its spec (`spec` is `null`):
    /// what an engine needs to execute it, without holding a large
    /// pipeline's JSON while it builds the typed copy from
    /// [`Store::get_run_spec_text`].
    pub async fn get_run_without_spec(&self, id: &str) -> Result<Option<RunRecord>> {
        let row = sqlx::query(
            "SELECT id, namespace, display_name, pipeline_name, 'null' AS spec, parameters, options, \
             state, error, outputs, created_at, started_at, finished_at, owner, heartbeat_at, \
             experiment_id, description, storage_state, pipeline_id, pipeline_version_id, \
             recurring_run_id, state_history, scheduled_at FROM runs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .context(|| format!("reading run {id}"))?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// The stored spec of a run as JSON text, as it was written. Read piece
    /// by piece into one buffer of the final size, so that no copy of the
    /// whole text is made on the way (the spec of a large pipeline is MiBs).
    pub async fn get_run_spec_text(&self, id: &str) -> Result<Option<String>> {
        let context = || format!("reading the spec of run {id}");
        let total: Option<i64> =
            sqlx::query("SELECT SUM(octet_length(chunk)) FROM run_specs WHERE run_id = $1")
                .bind(id)
                .fetch_one(&self.pool)
                .await
                .and_then(|row| row.try_get(0))
                .context(context)?;
        let Some(total) = total else {
            return Ok(None);
        };
        let mut text = String::with_capacity(usize::try_from(total).unwrap_or(0));
        for seq in 0i64.. {
            let row = sqlx::query("SELECT chunk FROM run_specs WHERE run_id = $1 AND seq = $2")
                .bind(id)
                .bind(seq)
                .fetch_optional(&self.pool)
                .await
                .context(context)?;
            let Some(row) = row else { break };
            let chunk: &str = row.try_get(0).context(context)?;
            text.push_str(chunk);
        }
        Ok(Some(text))
    }

    /// Resolves what a user typed: an exact id, else the one run whose id
    /// starts with `id_or_prefix` (at least [`MIN_ID_PREFIX`] characters), so
    /// that CLIs can accept short ids as `git` does.
    ///
    /// Errors: [`StoreError::NotFound`] when nothing matches (or the prefix is
    /// too short to try), [`StoreError::Ambiguous`] when several runs match.
    /// Ids are UUIDv7, whose leading characters encode the creation time:
    /// runs submitted close together share long prefixes.
    pub async fn find_run(&self, id_or_prefix: &str) -> Result<RunRecord> {
        if let Some(run) = self.get_run(id_or_prefix).await? {
            return Ok(run);
        }
        let not_found = || StoreError::NotFound {
            kind: "run",
            id: id_or_prefix.to_owned(),
        };
        let chars = id_or_prefix.chars().count();
        if chars < MIN_ID_PREFIX {
            return Err(not_found());
        }
        let Ok(chars) = i32::try_from(chars) else {
            return Err(not_found());
        };
        // The range lets both databases walk the primary key (ids compare
        // bytewise in both: BINARY in SQLite, COLLATE "C" in PostgreSQL);
        // `substr` makes the match exact whatever follows the prefix. LIKE
        // would be case-insensitive in SQLite only and treat `_`/`%` as wildcards.
        let upper = format!("{id_or_prefix}\u{10FFFF}");
        let rows = sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE id >= $1 AND id < $2 AND substr(id, 1, $3) = $1 ORDER BY id LIMIT 2"
        ))
        .bind(id_or_prefix)
        .bind(&upper)
        .bind(chars)
        .fetch_all(&self.pool)
        .await
        .context(|| format!("looking up runs whose id starts with {id_or_prefix:?}"))?;
        match rows.as_slice() {
            [] => Err(not_found()),
            [row] => run_from_row(row),
            _ => {
                let matches: i64 = sqlx::query(
                    "SELECT COUNT(*) FROM runs WHERE id >= $1 AND id < $2 AND substr(id, 1, $3) = $1",
                )
                .bind(id_or_prefix)
                .bind(&upper)
                .bind(chars)
                .fetch_one(&self.pool)
                .await
                .and_then(|row| row.try_get(0))
                .context(|| format!("counting runs whose id starts with {id_or_prefix:?}"))?;
                Err(StoreError::Ambiguous {
                    kind: "run",
                    prefix: id_or_prefix.to_owned(),
                    matches: usize::try_from(matches).unwrap_or(usize::MAX),
                })
            }
        }
    }

    /// One page of runs, filtered by namespace and states, ordered by
    /// submission time (ties broken by id so pages never overlap).
    ///
    /// Served by the `(namespace, created_at, id)` index: a page costs the
    /// same however many runs the namespace holds (plus the offset skipped).
    pub async fn list_runs(&self, q: &RunQuery) -> Result<Vec<RunRecord>> {
        let mut sql = String::from(concat!("SELECT ", run_columns!(), " FROM runs"));
        let mut conditions = Vec::new();
        let mut n = 0;
        let mut placeholder = || {
            n += 1;
            format!("${n}")
        };
        if q.namespace.is_some() {
            conditions.push(format!("namespace = {}", placeholder()));
        }
        if !q.states.is_empty() {
            let list: Vec<String> = q.states.iter().map(|_| placeholder()).collect();
            conditions.push(format!("state IN ({})", list.join(", ")));
        }
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        let dir = if q.newest_first { "DESC" } else { "ASC" };
        let (limit, offset) = (placeholder(), placeholder());
        sql.push_str(&format!(
            " ORDER BY created_at {dir}, id {dir} LIMIT {limit} OFFSET {offset}"
        ));

        // Only placeholders and fixed keywords were formatted into `sql`.
        let mut query = sqlx::query(AssertSqlSafe(sql));
        if let Some(ns) = &q.namespace {
            query = query.bind(ns.as_str());
        }
        for state in &q.states {
            query = query.bind(state.as_str());
        }
        let rows = query
            .bind(q.limit.unwrap_or(DEFAULT_RUN_LIMIT).max(0))
            .bind(q.offset.max(0))
            .fetch_all(&self.pool)
            .await
            .context(|| format!("listing runs ({q:?})"))?;
        rows.iter().map(run_from_row).collect()
    }

    /// Writes every field the engine changes after submission:
    /// `display_name`, `state`, `error`, `outputs`, `started_at`,
    /// `finished_at`, `owner`, `heartbeat_at` and `options`. Everything else
    /// (spec, parameters, namespace, creation time, experiment, pipeline
    /// references, description, `scheduled_at`) is immutable and ignored;
    /// `storage_state` changes only with [`Store::set_run_storage_state`], so
    /// an engine holding an old copy cannot undo an archive.
    ///
    /// `state_history` is the store's: the record's copy is ignored, and when
    /// the stored state differs from `run.state` an entry
    /// `{update_time: now, state, error}` is appended. The common case (state
    /// unchanged) is one UPDATE; a state change is one transaction that locks
    /// the row before reading the history, so concurrent writers never lose
    /// an entry.
    ///
    /// Note that this overwrites `owner`: an engine that lost its claim (see
    /// [`Store::claim_run`]) must not write a stale record back.
    pub async fn update_run(&self, run: &RunRecord) -> Result<()> {
        let context = || format!("updating run {}", run.id);
        let bind = |sql: &'static str| {
            sqlx::query(sql)
                .bind(run.id.clone())
                .bind(run.display_name.clone())
                .bind(run.state.as_str())
                .bind(run.error.clone())
                .bind(json_text(&run.outputs))
                .bind(opt_millis(run.started_at))
                .bind(opt_millis(run.finished_at))
                .bind(run.owner.clone())
                .bind(opt_millis(run.heartbeat_at))
                .bind(json_text(&run.options))
        };
        let same_state = bind(concat!(update_run_set!(), " AND state = $3"))
            .execute(&self.pool)
            .await
            .context(context)?;
        if same_state.rows_affected() == 1 {
            return Ok(());
        }

        // The state changes (or the run is missing). Writing first takes the
        // row lock (PostgreSQL) or the write lock (SQLite), so the history
        // read below is the latest and nobody appends in between.
        let mut tx = self.pool.begin().await.context(context)?;
        let done = bind(update_run_set!())
            .execute(&mut *tx)
            .await
            .context(context)?;
        if done.rows_affected() == 0 {
            drop(tx);
            return match self.run_state(&run.id).await? {
                // Terminated meanwhile: the cancel stands; the engine sees
                // it and ends the run CANCELED.
                Some(RunState::Canceling) => Ok(()),
                _ => Err(StoreError::NotFound {
                    kind: "run",
                    id: run.id.clone(),
                }),
            };
        }
        let row = sqlx::query("SELECT id, state_history FROM runs WHERE id = $1")
            .bind(&run.id)
            .fetch_one(&mut *tx)
            .await
            .context(context)?;
        let mut history = history(&Reader::keyed(&row, "run", "id")?)?;
        // A concurrent writer may already have recorded this very state.
        if history.last().map(|c| c.state) != Some(run.state) {
            history.push(StateChange {
                update_time: Timestamp::now(),
                state: run.state,
                error: run.error.clone(),
            });
            sqlx::query("UPDATE runs SET state_history = $2 WHERE id = $1")
                .bind(&run.id)
                .bind(history_text(&history))
                .execute(&mut *tx)
                .await
                .context(context)?;
        }
        tx.commit().await.context(context)?;
        debug!(run = %run.id, state = %run.state, "Run state changed.");
        Ok(())
    }

    /// The run's state alone (what an executing engine checks for a cancel
    /// asked by any process); `None` if the run is gone.
    pub async fn run_state(&self, id: &str) -> Result<Option<RunState>> {
        let row = sqlx::query("SELECT id, state FROM runs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .context(|| format!("reading the state of run {id}"))?;
        row.map(|r| Reader::keyed(&r, "run", "id")?.parse("state"))
            .transpose()
    }

    /// Asks for a run to stop, as stored intent: a PENDING run no engine has
    /// claimed ends CANCELED at once; a claimed or RUNNING one becomes
    /// CANCELING, which the engine executing it (in this process or
    /// another) turns into CANCELED once its tasks have stopped, and which a
    /// restart finishes if that engine died. Ended runs are left as they
    /// are. One statement decides, so no engine write can slip in between;
    /// returns the state the run is in afterwards.
    pub async fn cancel_run(&self, id: &str, now: Timestamp) -> Result<RunState> {
        let context = || format!("terminating run {id}");
        let mut tx = self.pool.begin().await.context(context)?;
        let row = sqlx::query(
            "UPDATE runs SET \
               state = CASE \
                 WHEN state = 'PENDING' AND owner IS NULL THEN 'CANCELED' \
                 WHEN state IN ('PENDING', 'RUNNING') THEN 'CANCELING' \
                 ELSE state END, \
               finished_at = CASE \
                 WHEN state = 'PENDING' AND owner IS NULL THEN $2 \
                 ELSE finished_at END \
             WHERE id = $1 RETURNING id, state, state_history",
        )
        .bind(id)
        .bind(now.millis())
        .fetch_optional(&mut *tx)
        .await
        .context(context)?;
        let Some(row) = row else {
            return Err(StoreError::NotFound {
                kind: "run",
                id: id.to_owned(),
            });
        };
        let r = Reader::keyed(&row, "run", "id")?;
        let state: RunState = r.parse("state")?;
        let mut history = history(&r)?;
        if history.last().map(|c| c.state) != Some(state) {
            history.push(StateChange {
                update_time: now,
                state,
                error: None,
            });
            sqlx::query("UPDATE runs SET state_history = $2 WHERE id = $1")
                .bind(id)
                .bind(history_text(&history))
                .execute(&mut *tx)
                .await
                .context(context)?;
        }
        tx.commit().await.context(context)?;
        debug!(run = %id, state = %state, "Run termination requested.");
        Ok(state)
    }

    /// Archives or restores a run (KFP `:archive` / `:unarchive`).
    pub async fn set_run_storage_state(&self, id: &str, state: StorageState) -> Result<()> {
        let done = sqlx::query("UPDATE runs SET storage_state = $2 WHERE id = $1")
            .bind(id)
            .bind(state.as_str())
            .execute(&self.pool)
            .await
            .context(|| format!("setting the storage state of run {id} to {state}"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                kind: "run",
                id: id.to_owned(),
            });
        }
        Ok(())
    }

    /// One page of runs for the KFP API.
    ///
    /// Filters: `display_name` (alias `name`), `state`, `experiment_id`,
    /// `storage_state`, `recurring_run_id`, `pipeline_id`,
    /// `pipeline_version_id`, `description` (text); `created_at`,
    /// `finished_at`, `scheduled_at` (timestamps). Sorts: `created_at`
    /// (default), `display_name` (alias `name`), `finished_at` (unfinished
    /// runs first when ascending). Pages sorted by `created_at` walk an
    /// index, alone, within a namespace or within an experiment.
    pub async fn list_runs_page(&self, q: &ListQuery) -> Result<Page<RunRecord>> {
        RUNS.plan(q, None)?.fetch(&self.pool, run_from_row).await
    }

    /// The database's query plan for the page [`Store::list_runs_page`]
    /// would fetch, one line per plan node: for diagnosing slow pages (and
    /// for tests that pin index use).
    pub async fn explain_list_runs(&self, q: &ListQuery) -> Result<Vec<String>> {
        RUNS.plan(q, None)?.explain(&self.pool, self.dialect).await
    }

    /// How many runs a recurring run created that are not terminal yet, for
    /// enforcing its `max_concurrency`.
    pub async fn count_active_runs(&self, recurring_run_id: &str) -> Result<i64> {
        sqlx::query(concat!(
            "SELECT COUNT(*) FROM runs WHERE recurring_run_id = $1 AND state NOT IN ",
            terminal_states!()
        ))
        .bind(recurring_run_id)
        .fetch_one(&self.pool)
        .await
        .and_then(|row| row.try_get(0))
        .context(|| format!("counting the active runs of recurring run {recurring_run_id}"))
    }

    /// Makes `owner` the engine responsible for the run, in one conditional
    /// UPDATE so two engines can never both win.
    ///
    /// Succeeds when the run exists, is not terminal, and is unowned, already
    /// owned by `owner`, or owned by an engine whose last heartbeat is older
    /// than `stale_before` (or that never sent one). Sets `heartbeat_at = now`.
    /// Returns whether `owner` holds the run afterwards.
    pub async fn claim_run(
        &self,
        id: &str,
        owner: &str,
        now: Timestamp,
        stale_before: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(CLAIM_SQL)
            .bind(id)
            .bind(owner)
            .bind(now.millis())
            .bind(stale_before.millis())
            .execute(&self.pool)
            .await
            .context(|| format!("claiming run {id} for {owner}"))?;
        let claimed = done.rows_affected() == 1;
        debug!(run = %id, owner, claimed, "Run claim attempted.");
        Ok(claimed)
    }

    /// Gives the run up if `owner` holds it (an engine shutting down cleanly),
    /// so another engine can claim it at once instead of waiting for staleness.
    /// Returns whether it was released.
    pub async fn release_run(&self, id: &str, owner: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE runs SET owner = NULL WHERE id = $1 AND owner = $2")
            .bind(id)
            .bind(owner)
            .execute(&self.pool)
            .await
            .context(|| format!("releasing run {id} held by {owner}"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that `owner` is alive: `heartbeat_at = now` on every run it
    /// owns. Returns how many runs that was; fewer than the engine believes
    /// it holds means another engine took some over.
    pub async fn heartbeat(&self, owner: &str, now: Timestamp) -> Result<u64> {
        let done = sqlx::query("UPDATE runs SET heartbeat_at = $2 WHERE owner = $1")
            .bind(owner)
            .bind(now.millis())
            .execute(&self.pool)
            .await
            .context(|| format!("recording a heartbeat for {owner}"))?;
        Ok(done.rows_affected())
    }

    /// Deletes the run with its tasks and artifacts, in one transaction so no
    /// orphaned rows remain if it fails half-way. Cache entries it produced
    /// stay: other runs may reuse them. Returns whether the run existed.
    pub async fn delete_run(&self, id: &str) -> Result<bool> {
        let context = || format!("deleting run {id}");
        let mut tx = self.pool.begin().await.context(context)?;
        sqlx::query("DELETE FROM artifacts WHERE run_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .context(context)?;
        sqlx::query("DELETE FROM tasks WHERE run_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .context(context)?;
        sqlx::query("DELETE FROM run_specs WHERE run_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .context(context)?;
        let done = sqlx::query("DELETE FROM runs WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .context(context)?;
        tx.commit().await.context(context)?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use oxflow_core::RunState;

    use super::{SPEC_CHUNK_BYTES, spec_chunks};

    #[test]
    fn specs_are_cut_between_characters() {
        let n = SPEC_CHUNK_BYTES;
        // (text, expected piece lengths)
        let cases = [
            (String::new(), vec![]),
            ("{}".to_owned(), vec![2]),
            ("a".repeat(n), vec![n]),
            ("a".repeat(n + 1), vec![n, 1]),
            // A two-byte character across the limit goes with the first piece.
            (
                format!("{}é{}", "a".repeat(n - 1), "b".repeat(3)),
                vec![n + 1, 3],
            ),
            ("é".repeat(n), vec![n, n]),
        ];
        for (text, lens) in cases {
            let pieces: Vec<&str> = spec_chunks(&text).collect();
            assert_eq!(pieces.iter().map(|p| p.len()).collect::<Vec<_>>(), lens);
            assert_eq!(pieces.concat(), text);
        }
    }

    #[test]
    fn terminal_states_match_core() {
        let all = [
            RunState::Pending,
            RunState::Running,
            RunState::Succeeded,
            RunState::Failed,
            RunState::Canceling,
            RunState::Canceled,
        ];
        let terminal: Vec<String> = all
            .iter()
            .filter(|s| s.is_terminal())
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        let expected = format!("({})", terminal.join(", "));
        assert_eq!(terminal_states!(), expected);
    }
}
