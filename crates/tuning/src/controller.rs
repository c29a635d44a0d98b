//! The experiment controller: Katib's experiment, suggestion and trial
//! controllers and its metrics collectors collapsed into one reconcile loop
//! per experiment.
//!
//! Every pass re-reads the experiment and its trials from the store, decides
//! whether the experiment has ended (goal → too many failures → max trials,
//! Katib's order), asks the algorithm for as many new trials as
//! `parallelTrialCount` allows, stores them *before* starting them, and waits
//! for a trial to end (or a resync tick, which is how a `stop` from another
//! process is noticed). Because suggestions are stored before they run and
//! algorithms are pure functions of the stored history, a controller that
//! dies loses nothing: the next one re-runs the interrupted trials with the
//! same parameters and continues exactly where the first stopped.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oxflow_core::{ExperimentPhase, Mount, Namespace, Timestamp, TrialPhase, Workload, new_id};
use oxflow_runtime::Runtime;
use oxflow_store::{
    ObservationLogRecord, Store, StoreError, TuningExperimentRecord, TuningTrialRecord,
};
use oxflow_suggest::{Algorithm, Budget, Outcome, SearchSpace, TrialRecord};
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics::{self, MetricLog};
use crate::spec::{
    CollectorKind, Experiment, FileFormat, MetricsCollector, ObjectiveType, ParameterAssignment,
    ResumePolicy, SpecError,
};
use crate::status::push_condition;

/// How often a running experiment re-reads its record without being nudged
/// (how quickly a `stop` from another process takes effect).
const RESYNC: Duration = Duration::from_millis(500);
/// How often a running trial's output is read for metrics and early stopping.
const TAIL: Duration = Duration::from_millis(100);
/// A controller whose heartbeat is older than this is presumed dead.
const STALE: Duration = Duration::from_secs(30);

/// What can go wrong driving experiments.
#[derive(Debug, thiserror::Error)]
pub enum TuningError {
    /// The Experiment YAML is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request does not fit the experiment's state (resume a running one, …).
    #[error("{0}")]
    Invalid(String),
    /// A stored experiment can no longer be read (written by another version).
    #[error("experiment {name}: {message}")]
    Corrupt {
        /// The experiment.
        name: String,
        /// What is wrong.
        message: String,
    },
}

type Result<T> = std::result::Result<T, TuningError>;

/// Mints the credential a trial sends with its metrics push: given the
/// push's path ([`report_path`]), a token good for `POST` to that path only.
pub type ReportTokens = std::sync::Arc<dyn Fn(&str) -> String + Send + Sync>;

/// The path a trial pushes its metrics to (`oxflow_katib.report_metrics`
/// builds the same one).
pub fn report_path(namespace: &str, trial: &str) -> String {
    format!("/apis/kubeflow.org/v1beta1/namespaces/{namespace}/trials/{trial}/metrics")
}

/// Where the controller keeps trial output.
#[derive(Clone)]
pub struct TuningConfig {
    /// Trial logs: `<logs_dir>/<namespace>/<experiment>/<trial>.log`.
    pub logs_dir: PathBuf,
    /// Per-trial scratch directories (metrics files, TensorFlow events):
    /// `<work_dir>/<namespace>/<experiment>/<trial>/`.
    pub work_dir: PathBuf,
    /// Base URL trials push metrics to (`kind: Push`), given to them as
    /// `OXFLOW_METRICS_URL`; `None` when nothing listens.
    pub report_url: Option<String>,
    /// Tokens for the push, given to each trial as `OXFLOW_METRICS_TOKEN`
    /// (scoped to its own push, never the owner's token); `None` when the
    /// endpoint asks for none.
    pub report_tokens: Option<ReportTokens>,
    /// A directory with the `oxflow_katib` Python helper, put first on the
    /// trials' `PYTHONPATH`.
    pub python_path: Option<PathBuf>,
    /// This process's identity as an owner (`oxflow_runtime::owner::owner_id`).
    pub owner: String,
}

fn owner_alive(owner: Option<&str>, heartbeat: Option<Timestamp>, now: Timestamp) -> bool {
    oxflow_runtime::owner::owner_alive(owner, heartbeat, now, STALE)
}

/// A change worth showing live.
#[derive(Debug, Clone, PartialEq)]
pub enum TuningEvent {
    /// A trial changed phase.
    Trial {
        /// The experiment's id.
        experiment_id: String,
        /// The trial's name.
        trial: String,
        /// Its new phase.
        phase: TrialPhase,
        /// Its objective value, once known.
        objective: Option<f64>,
    },
    /// The experiment changed phase.
    Experiment {
        /// The experiment's id.
        experiment_id: String,
        /// Its new phase.
        phase: ExperimentPhase,
    },
}

/// Drives Katib experiments.
#[derive(Clone)]
pub struct TuningController {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    runtime: Arc<dyn Runtime>,
    config: TuningConfig,
    events: broadcast::Sender<TuningEvent>,
    /// Experiments whose loop runs in this process, with the token that stops it.
    active: Mutex<HashMap<String, CancellationToken>>,
    nudge: Notify,
    shutdown: CancellationToken,
}

/// What the loop needs from the spec, parsed once per (re)start.
struct Ctx {
    record: TuningExperimentRecord,
    exp: Experiment,
    space: SearchSpace,
    algorithm: Box<dyn Algorithm>,
    metric_names: Vec<String>,
}

impl TuningController {
    /// A controller storing in `store` and running trials on `runtime`.
    pub fn new(store: Store, runtime: Arc<dyn Runtime>, config: TuningConfig) -> Self {
        let (events, _) = broadcast::channel(4096);
        Self {
            inner: Arc::new(Inner {
                store,
                runtime,
                config,
                events,
                active: Mutex::new(HashMap::new()),
                nudge: Notify::new(),
                shutdown: CancellationToken::new(),
            }),
        }
    }

    /// The store it writes to.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Live trial and experiment changes.
    pub fn subscribe(&self) -> broadcast::Receiver<TuningEvent> {
        self.inner.events.subscribe()
    }

    fn emit(&self, e: TuningEvent) {
        let _ = self.inner.events.send(e);
    }

    fn lock_active(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.inner.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Validates an Experiment (YAML or JSON) and stores it as `Created`.
    /// `namespace` applies when the YAML names none; `working_dir` is where
    /// trials run when their container names no `workingDir`.
    pub async fn create(
        &self,
        text: &str,
        namespace: &Namespace,
        working_dir: Option<&Path>,
    ) -> Result<TuningExperimentRecord> {
        let exp = Experiment::from_yaml(text)?;
        let namespace = exp.namespace.clone().unwrap_or_else(|| namespace.clone());
        let now = Timestamp::now();
        let id = new_id();
        // The seed is fixed now so that every later suggestion (after a
        // restart too) is reproducible; `random_state` in the settings wins.
        let seed = seed_from(&id);
        let mut conditions = json!([]);
        push_condition(
            &mut conditions,
            ExperimentPhase::Created,
            "ExperimentCreated",
            "Experiment is created",
            now,
        );
        let mut spec = exp.to_katib_value();
        if let Some(meta) = spec.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("namespace".into(), json!(namespace.as_str()));
        }
        let record = TuningExperimentRecord {
            id,
            namespace,
            name: exp.name.clone(),
            spec,
            seed,
            options: json!({"workingDir": working_dir.map(|d| d.display().to_string())}),
            phase: ExperimentPhase::Created,
            conditions,
            optimal_trial: None,
            created_at: now,
            started_at: None,
            finished_at: None,
            owner: None,
            heartbeat_at: None,
        };
        self.inner.store.insert_tuning_experiment(&record).await?;
        info!(experiment = %record.name, namespace = %record.namespace, "Experiment created.");
        self.inner.nudge.notify_one();
        Ok(record)
    }

    /// Stops an experiment: its running trials are killed and it ends as
    /// `Stopped` (it can be resumed). Stopping an ended experiment is a no-op.
    pub async fn stop(&self, namespace: &Namespace, name: &str) -> Result<TuningExperimentRecord> {
        let mut e = self
            .inner
            .store
            .get_tuning_experiment(namespace, name)
            .await?;
        if e.phase.is_terminal() {
            return Ok(e);
        }
        let now = Timestamp::now();
        e.phase = ExperimentPhase::Stopped;
        e.finished_at = Some(now);
        push_condition(
            &mut e.conditions,
            ExperimentPhase::Stopped,
            "ExperimentStopped",
            "Experiment was stopped by a user",
            now,
        );
        self.inner.store.update_tuning_experiment(&e).await?;
        // A loop in this process stops at once; one in another process sees
        // the phase at its next resync.
        if let Some(token) = self.lock_active().get(&e.id) {
            token.cancel();
        }
        self.emit(TuningEvent::Experiment {
            experiment_id: e.id.clone(),
            phase: e.phase,
        });
        Ok(e)
    }

    /// Resumes an ended experiment (Katib's restart): a stopped one always,
    /// a succeeded one only when it ended on `maxTrialCount`, its
    /// `resumePolicy` is not `Never`, and `max_trial_count` is larger than
    /// the number of trials it has.
    pub async fn resume(
        &self,
        namespace: &Namespace,
        name: &str,
        max_trial_count: Option<u32>,
    ) -> Result<TuningExperimentRecord> {
        let store = &self.inner.store;
        let mut e = store.get_tuning_experiment(namespace, name).await?;
        let exp = parse_stored(&e)?;
        let trials = store.list_trials(&e.id).await?.len() as u32;
        match e.phase {
            ExperimentPhase::Stopped | ExperimentPhase::Failed => {}
            ExperimentPhase::Succeeded => {
                if crate::status::latest_reason(&e) != "ExperimentMaxTrialsReached" {
                    return Err(TuningError::Invalid(format!(
                        "experiment {name} succeeded with reason {}; only an experiment that reached maxTrialCount can be resumed",
                        crate::status::latest_reason(&e)
                    )));
                }
                if exp.spec.resume_policy == ResumePolicy::Never {
                    return Err(TuningError::Invalid(format!(
                        "experiment {name} has resumePolicy Never; set LongRunning or FromVolume to resume it"
                    )));
                }
                match max_trial_count {
                    Some(m) if m > trials => {}
                    _ => {
                        return Err(TuningError::Invalid(format!(
                            "experiment {name} has {trials} trials; give a maxTrialCount larger than that to resume it"
                        )));
                    }
                }
            }
            other => {
                return Err(TuningError::Invalid(format!(
                    "experiment {name} is {other}; only an ended experiment can be resumed"
                )));
            }
        }
        if let Some(m) = max_trial_count {
            if m <= trials {
                return Err(TuningError::Invalid(format!(
                    "maxTrialCount {m} must be larger than the {trials} trials experiment {name} already has"
                )));
            }
            e.spec["spec"]["maxTrialCount"] = json!(m);
            // Revalidate: the new count must still fit the rest of the spec.
            parse_stored(&e)?;
        }
        let now = Timestamp::now();
        e.phase = ExperimentPhase::Restarting;
        e.finished_at = None;
        push_condition(
            &mut e.conditions,
            ExperimentPhase::Restarting,
            "ExperimentRestarting",
            "Experiment is restarting",
            now,
        );
        store.update_tuning_experiment(&e).await?;
        self.inner.nudge.notify_one();
        self.emit(TuningEvent::Experiment {
            experiment_id: e.id.clone(),
            phase: e.phase,
        });
        Ok(e)
    }

    /// Deletes an experiment with its trials, metrics and logs. A running
    /// one is stopped first.
    pub async fn delete(&self, namespace: &Namespace, name: &str) -> Result<()> {
        let e = self.stop(namespace, name).await?;
        // Wait for a local loop to let go of it, so no trial writes after the delete.
        while self.lock_active().contains_key(&e.id) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.inner.store.delete_tuning_experiment(&e.id).await?;
        let dir = |base: &Path| base.join(e.namespace.as_str()).join(&e.name);
        for d in [
            dir(&self.inner.config.logs_dir),
            dir(&self.inner.config.work_dir),
        ] {
            if let Err(err) = std::fs::remove_dir_all(&d)
                && err.kind() != std::io::ErrorKind::NotFound
            {
                warn!(dir = %d.display(), error = %err, "Could not remove an experiment's files.");
            }
        }
        Ok(())
    }

    /// Starts the background loop that runs every experiment waiting for a
    /// controller (created, restarting, or running under a dead one); returns at once.
    pub fn start(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = this.pass().await {
                    warn!(error = %e, "Tuning controller pass failed.");
                }
                tokio::select! {
                    _ = this.inner.shutdown.cancelled() => return,
                    _ = this.inner.nudge.notified() => {}
                    _ = tokio::time::sleep(RESYNC * 4) => {}
                }
            }
        })
    }

    /// Stops the background loop and every experiment loop of this process.
    /// Their trials die with the process and are re-run by the next one.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    async fn pass(&self) -> Result<()> {
        let now = Timestamp::now();
        let waiting = self
            .inner
            .store
            .list_tuning_experiments_in(&[
                ExperimentPhase::Created,
                ExperimentPhase::Restarting,
                ExperimentPhase::Running,
            ])
            .await?;
        for e in waiting {
            if self.lock_active().contains_key(&e.id) {
                continue;
            }
            if e.phase == ExperimentPhase::Running
                && owner_alive(e.owner.as_deref(), e.heartbeat_at, now)
            {
                continue;
            }
            let this = self.clone();
            let token = self.inner.shutdown.child_token();
            tokio::spawn(async move {
                if let Err(err) = this.run(&e.id, token).await {
                    warn!(experiment = %e.name, error = %err, "Experiment loop ended with an error.");
                }
            });
        }
        Ok(())
    }

    /// Runs the experiment until it ends (or `cancel` fires, which leaves it
    /// to the next controller as after a crash) and returns its final record.
    pub async fn run(&self, id: &str, cancel: CancellationToken) -> Result<TuningExperimentRecord> {
        {
            let mut active = self.lock_active();
            if active.contains_key(id) {
                return Err(TuningError::Invalid(format!(
                    "experiment {id} is already running in this process"
                )));
            }
            active.insert(id.to_owned(), cancel.clone());
        }
        let result = self.run_claimed(id, cancel).await;
        self.lock_active().remove(id);
        result
    }

    async fn run_claimed(
        &self,
        id: &str,
        cancel: CancellationToken,
    ) -> Result<TuningExperimentRecord> {
        let store = &self.inner.store;
        let now = Timestamp::now();
        let stale = Timestamp(now.0 - STALE.as_millis() as i64);
        let record = store.get_tuning_experiment_by_id(id).await?;
        if record.phase.is_terminal() {
            return Ok(record);
        }
        // A live owner elsewhere keeps it; a dead one's claim is taken over.
        let owner_alive = owner_alive(record.owner.as_deref(), record.heartbeat_at, now);
        let stale = if owner_alive {
            stale
        } else {
            Timestamp(i64::MAX)
        };
        if !store
            .claim_tuning_experiment(id, &self.inner.config.owner, now, stale)
            .await?
        {
            return Err(TuningError::Invalid(format!(
                "experiment {} is run by another live controller ({})",
                record.name,
                record.owner.as_deref().unwrap_or("unknown")
            )));
        }
        let mut record = store.get_tuning_experiment_by_id(id).await?;
        let ctx = match Ctx::new(record.clone()) {
            Ok(ctx) => ctx,
            Err(err) => {
                self.finish(
                    &mut record,
                    ExperimentPhase::Failed,
                    "ExperimentFailed",
                    &err.to_string(),
                )
                .await?;
                return Ok(record);
            }
        };
        let ctx = Arc::new(ctx);
        if record.phase != ExperimentPhase::Running || record.started_at.is_none() {
            record.started_at.get_or_insert(now);
            record.phase = ExperimentPhase::Running;
            push_condition(
                &mut record.conditions,
                ExperimentPhase::Running,
                "ExperimentRunning",
                "Experiment is running",
                now,
            );
            store.update_tuning_experiment(&record).await?;
            self.emit(TuningEvent::Experiment {
                experiment_id: record.id.clone(),
                phase: record.phase,
            });
        }
        info!(experiment = %record.name, "Experiment running.");

        let heartbeat = {
            let store = store.clone();
            let owner = self.inner.config.owner.clone();
            let token = CancellationToken::new();
            let t = token.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = t.cancelled() => return,
                        _ = tokio::time::sleep(STALE / 3) => {
                            let _ = store.heartbeat_tuning(&owner, Timestamp::now()).await;
                        }
                    }
                }
            });
            token.drop_guard()
        };

        let mut running: JoinSet<(String, Result<TrialPhase>)> = JoinSet::new();
        let mut tokens: HashMap<String, CancellationToken> = HashMap::new();
        // Trials a dead controller left behind run again, from the start.
        for t in store.list_trials(id).await? {
            if !t.phase.is_terminal() {
                self.spawn_trial(&ctx, t, &mut running, &mut tokens);
            }
        }
        let result = self
            .reconcile(&ctx, &mut running, &mut tokens, &cancel)
            .await;
        drop(heartbeat);
        // Whatever ended the loop, no trial of this loop may outlive it.
        for t in tokens.values() {
            t.cancel();
        }
        while running.join_next().await.is_some() {}
        let mut fresh = store.get_tuning_experiment_by_id(id).await?;
        if fresh.owner.as_deref() == Some(self.inner.config.owner.as_str()) {
            fresh.owner = None;
            store.update_tuning_experiment(&fresh).await?;
        }
        result?;
        Ok(fresh)
    }

    async fn reconcile(
        &self,
        ctx: &Arc<Ctx>,
        running: &mut JoinSet<(String, Result<TrialPhase>)>,
        tokens: &mut HashMap<String, CancellationToken>,
        cancel: &CancellationToken,
    ) -> Result<()> {
        let store = &self.inner.store;
        let id = ctx.record.id.as_str();
        loop {
            let mut record = store.get_tuning_experiment_by_id(id).await?;
            if record.phase == ExperimentPhase::Stopped {
                self.kill_all(running, tokens, "Experiment was stopped")
                    .await;
                return Ok(());
            }
            if cancel.is_cancelled() {
                // Shutdown: trials die with the process and run again later.
                return Ok(());
            }
            let trials = store.list_trials(id).await?;
            let best = best_trial(ctx, &trials);
            let best_name = best.map(|t| t.name.clone());
            if record.optimal_trial != best_name {
                record.optimal_trial = best_name;
                store.update_tuning_experiment(&record).await?;
            }
            if let Some((phase, reason, message)) = termination(ctx, &trials, best) {
                self.kill_all(running, tokens, "Experiment has ended").await;
                self.finish(&mut record, phase, reason, &message).await?;
                return Ok(());
            }
            // Katib asks for min(parallel, max - completed) - active; every
            // stored trial is either active or completed, so that is "up to
            // parallel running, never more than maxTrialCount in total".
            let active = running.len() as u32;
            let parallel = ctx.exp.spec.parallel_trial_count;
            let mut want = parallel.saturating_sub(active);
            if let Some(max) = ctx.exp.spec.max_trial_count {
                want = want.min(max.saturating_sub(trials.len() as u32));
            }
            let want = want as usize;
            if want > 0 {
                let history = history(ctx, &trials)?;
                let ctx2 = ctx.clone();
                let suggestions =
                    tokio::task::spawn_blocking(move || ctx2.algorithm.suggest(&history, want))
                        .await
                        .map_err(|e| {
                            TuningError::Invalid(format!("the suggestion task failed: {e}"))
                        })?;
                let suggestions = match suggestions {
                    Ok(s) => s,
                    Err(err) => {
                        self.kill_all(running, tokens, "Experiment failed").await;
                        self.finish(
                            &mut record,
                            ExperimentPhase::Failed,
                            "ExperimentFailed",
                            &format!("suggestion failed: {err}"),
                        )
                        .await?;
                        return Ok(());
                    }
                };
                if suggestions.is_empty() && active == 0 {
                    self.finish(
                        &mut record,
                        ExperimentPhase::Succeeded,
                        "ExperimentSuggestionEndReached",
                        "The search space is exhausted",
                    )
                    .await?;
                    return Ok(());
                }
                let now = Timestamp::now();
                let mut new = Vec::with_capacity(suggestions.len());
                for (seq, s) in (trials.len() as i64..).zip(suggestions) {
                    let assignments = crate::spec::format_assignment(&ctx.space, &s.assignment);
                    new.push(TuningTrialRecord {
                        id: new_id(),
                        experiment_id: id.to_owned(),
                        name: trial_name(&ctx.record.name, &ctx.record.id, seq),
                        seq,
                        assignments: serde_json::to_value(&assignments).unwrap_or(json!([])),
                        tags: serde_json::to_value(&s.tags).unwrap_or(json!({})),
                        phase: TrialPhase::Created,
                        message: None,
                        objective: None,
                        observation: json!([]),
                        log_path: None,
                        attempt: 0,
                        created_at: now,
                        started_at: None,
                        finished_at: None,
                    });
                }
                store.insert_trials(&new).await?;
                for t in new {
                    self.emit(TuningEvent::Trial {
                        experiment_id: id.to_owned(),
                        trial: t.name.clone(),
                        phase: TrialPhase::Created,
                        objective: None,
                    });
                    self.spawn_trial(ctx, t, running, tokens);
                }
                continue;
            }
            tokio::select! {
                Some(done) = running.join_next() => {
                    if let Ok((trial_id, result)) = done {
                        tokens.remove(&trial_id);
                        if let Err(e) = result {
                            warn!(experiment = %ctx.record.name, error = %e, "A trial could not be recorded.");
                        }
                    }
                }
                _ = cancel.cancelled() => {}
                _ = tokio::time::sleep(RESYNC) => {}
            }
        }
    }

    async fn kill_all(
        &self,
        running: &mut JoinSet<(String, Result<TrialPhase>)>,
        tokens: &mut HashMap<String, CancellationToken>,
        _why: &str,
    ) {
        for t in tokens.values() {
            t.cancel();
        }
        while running.join_next().await.is_some() {}
        tokens.clear();
    }

    async fn finish(
        &self,
        record: &mut TuningExperimentRecord,
        phase: ExperimentPhase,
        reason: &str,
        message: &str,
    ) -> Result<()> {
        let now = Timestamp::now();
        record.phase = phase;
        record.finished_at = Some(now);
        push_condition(&mut record.conditions, phase, reason, message, now);
        self.inner.store.update_tuning_experiment(record).await?;
        info!(experiment = %record.name, phase = %phase, reason, "Experiment ended.");
        self.emit(TuningEvent::Experiment {
            experiment_id: record.id.clone(),
            phase,
        });
        Ok(())
    }

    fn spawn_trial(
        &self,
        ctx: &Arc<Ctx>,
        trial: TuningTrialRecord,
        running: &mut JoinSet<(String, Result<TrialPhase>)>,
        tokens: &mut HashMap<String, CancellationToken>,
    ) {
        let token = CancellationToken::new();
        tokens.insert(trial.id.clone(), token.clone());
        let this = self.clone();
        let ctx = ctx.clone();
        running.spawn(async move {
            let id = trial.id.clone();
            (id, this.run_trial(&ctx, trial, token).await)
        });
    }

    /// Runs one trial to its end and records it (phase, metrics) atomically.
    async fn run_trial(
        &self,
        ctx: &Ctx,
        mut trial: TuningTrialRecord,
        kill: CancellationToken,
    ) -> Result<TrialPhase> {
        let store = &self.inner.store;
        let cfg = &self.inner.config;
        let ns = ctx.record.namespace.as_str();
        let exp_name = &ctx.record.name;
        let log_path = cfg
            .logs_dir
            .join(ns)
            .join(exp_name)
            .join(format!("{}.log", trial.name));
        let work = cfg.work_dir.join(ns).join(exp_name).join(&trial.name);
        let now = Timestamp::now();
        trial.phase = TrialPhase::Running;
        trial.attempt += 1;
        trial.started_at = Some(now);
        trial.finished_at = None;
        trial.message = None;
        trial.log_path = Some(log_path.display().to_string());
        let prepared = self.prepare_trial(ctx, &trial, &log_path, &work);
        // Fresh output for this attempt: an interrupted one's metrics go.
        store.restart_trial(&trial).await?;
        self.emit(TuningEvent::Trial {
            experiment_id: ctx.record.id.clone(),
            trial: trial.name.clone(),
            phase: TrialPhase::Running,
            objective: None,
        });
        let (workload, metrics_source) = match prepared {
            Ok(p) => p,
            Err(message) => {
                return self
                    .end_trial(ctx, trial, TrialPhase::Failed, Some(message), Vec::new())
                    .await;
            }
        };
        let rule = self.stop_rule(ctx).await?;
        let runtime = self.inner.runtime.clone();
        let wl_token = kill.child_token();
        let mut run = {
            let wl_token = wl_token.clone();
            let workload = workload.clone();
            tokio::spawn(async move { runtime.run(&workload, wl_token).await })
        };
        let mut tail = Tail::new(metrics_source.clone(), ctx);
        let mut early_stopped = false;
        let outcome = loop {
            tokio::select! {
                res = &mut run => break res,
                _ = tokio::time::sleep(TAIL) => {
                    tail.read();
                    if let Some(rule) = &rule
                        && !early_stopped
                        && rule.should_stop(&tail.objective_series(&ctx.exp.spec.objective.objective_metric_name))
                    {
                        info!(trial = %trial.name, "Early stopping rule met; stopping the trial.");
                        early_stopped = true;
                        wl_token.cancel();
                    }
                }
            }
        };
        tail.read();
        let outcome = match outcome {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                return self
                    .end_trial(
                        ctx,
                        trial,
                        TrialPhase::Failed,
                        Some(e.to_string()),
                        tail.logs,
                    )
                    .await;
            }
            Err(e) => {
                return self
                    .end_trial(
                        ctx,
                        trial,
                        TrialPhase::Failed,
                        Some(format!("the trial task failed: {e}")),
                        tail.logs,
                    )
                    .await;
            }
        };
        let mut logs = tail.logs;
        match &metrics_source {
            MetricsSource::TfEvents(dir) => match metrics::read_event_dir(dir, &ctx.metric_names) {
                Ok(l) => logs = l,
                Err(e) => {
                    warn!(trial = %trial.name, error = %e, "Could not read TensorFlow events.")
                }
            },
            MetricsSource::Push => {
                logs = store
                    .list_observation_logs(&trial.id)
                    .await?
                    .into_iter()
                    .map(|l| MetricLog {
                        time: l.time,
                        name: l.metric_name,
                        value: l.value,
                    })
                    .collect();
            }
            _ => {}
        }
        let (phase, message) = if early_stopped {
            (
                TrialPhase::EarlyStopped,
                Some("stopped by the early-stopping rule".to_owned()),
            )
        } else if outcome.canceled || kill.is_cancelled() {
            (
                TrialPhase::Killed,
                Some("killed: the experiment ended or was stopped".to_owned()),
            )
        } else if outcome.success() {
            (TrialPhase::Succeeded, None)
        } else {
            (
                TrialPhase::Failed,
                Some(format!(
                    "the trial's process failed: {}",
                    outcome.describe()
                )),
            )
        };
        self.end_trial(ctx, trial, phase, message, logs).await
    }

    async fn end_trial(
        &self,
        ctx: &Ctx,
        mut trial: TuningTrialRecord,
        mut phase: TrialPhase,
        message: Option<String>,
        logs: Vec<MetricLog>,
    ) -> Result<TrialPhase> {
        let summaries = metrics::reduce(&logs, &ctx.metric_names);
        let objective = metrics::objective_value(&summaries, &ctx.exp.spec.objective);
        if phase == TrialPhase::Succeeded && objective.is_none() {
            phase = TrialPhase::MetricsUnavailable;
        }
        trial.phase = phase;
        trial.message = if phase == TrialPhase::MetricsUnavailable {
            Some(format!(
                "the trial succeeded but never reported {}",
                ctx.exp.spec.objective.objective_metric_name
            ))
        } else {
            message
        };
        trial.objective = objective;
        trial.observation = observation_json(&summaries);
        trial.finished_at = Some(Timestamp::now());
        // Pushed metrics are stored already; collected ones go with the outcome.
        let new_logs: Vec<ObservationLogRecord> =
            if ctx.exp.spec.metrics_collector.kind() == CollectorKind::Push {
                Vec::new()
            } else {
                let mut l: Vec<ObservationLogRecord> = logs
                    .into_iter()
                    .map(|l| ObservationLogRecord {
                        time: l.time,
                        metric_name: l.name,
                        value: l.value,
                    })
                    .collect();
                if !l
                    .iter()
                    .any(|l| l.metric_name == ctx.exp.spec.objective.objective_metric_name)
                {
                    // Katib records the objective as "unavailable" when it never appeared.
                    l.push(ObservationLogRecord {
                        time: None,
                        metric_name: ctx.exp.spec.objective.objective_metric_name.clone(),
                        value: "unavailable".into(),
                    });
                }
                l
            };
        self.inner.store.finish_trial(&trial, &new_logs).await?;
        info!(trial = %trial.name, phase = %phase, objective = ?objective, "Trial ended.");
        self.emit(TuningEvent::Trial {
            experiment_id: ctx.record.id.clone(),
            trial: trial.name.clone(),
            phase,
            objective,
        });
        Ok(phase)
    }

    /// The workload for a trial and where its metrics come from; `Err` is a
    /// message for a trial that cannot start.
    fn prepare_trial(
        &self,
        ctx: &Ctx,
        trial: &TuningTrialRecord,
        log_path: &Path,
        work: &Path,
    ) -> std::result::Result<(Workload, MetricsSource), String> {
        let cfg = &self.inner.config;
        let assignments: Vec<ParameterAssignment> =
            serde_json::from_value(trial.assignments.clone())
                .map_err(|e| format!("stored parameter assignments are unreadable: {e}"))?;
        let run = ctx
            .exp
            .render_trial(&trial.name, ctx.record.namespace.as_str(), &assignments)
            .map_err(|e| e.to_string())?;
        let _ = std::fs::remove_dir_all(work);
        std::fs::create_dir_all(work).map_err(|e| format!("creating {}: {e}", work.display()))?;
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        // Truncate the log of an earlier attempt.
        std::fs::write(log_path, b"")
            .map_err(|e| format!("creating {}: {e}", log_path.display()))?;
        let mut env: BTreeMap<String, String> = run.env.iter().cloned().collect();
        env.insert("KATIB_TRIAL_NAME".into(), trial.name.clone());
        if let Some(url) = &cfg.report_url {
            env.insert("OXFLOW_METRICS_URL".into(), url.clone());
            if let Some(mint) = &cfg.report_tokens {
                let path = report_path(ctx.record.namespace.as_str(), &trial.name);
                env.insert("OXFLOW_METRICS_TOKEN".into(), mint(&path));
            }
        }
        env.insert(
            "OXFLOW_NAMESPACE".into(),
            ctx.record.namespace.as_str().to_owned(),
        );
        if let Some(py) = &cfg.python_path {
            let existing = env
                .get("PYTHONPATH")
                .cloned()
                .or_else(|| std::env::var("PYTHONPATH").ok())
                .filter(|p| !p.is_empty());
            let value = match existing {
                Some(p) => format!("{}:{p}", py.display()),
                None => py.display().to_string(),
            };
            env.insert("PYTHONPATH".into(), value);
        }
        let mut mounts = Vec::new();
        let source = match &ctx.exp.spec.metrics_collector {
            MetricsCollector::StdOut { .. } => MetricsSource::Text(log_path.to_path_buf()),
            MetricsCollector::Push => MetricsSource::Push,
            MetricsCollector::File { path, format } => {
                // Each trial gets its own copy of the collector's directory,
                // bound where the trial expects it: parallel trials writing
                // /var/log/katib/metrics.log do not share one file.
                let path = PathBuf::from(path);
                let parent = path.parent().unwrap_or(Path::new("/")).to_path_buf();
                let own = work.join("metrics");
                std::fs::create_dir_all(&own)
                    .map_err(|e| format!("creating {}: {e}", own.display()))?;
                mounts.push(Mount {
                    source: own.clone(),
                    target: parent,
                    read_only: false,
                });
                let file = own.join(path.file_name().unwrap_or_default());
                match format {
                    FileFormat::Json => MetricsSource::Json(file),
                    FileFormat::Text { .. } => MetricsSource::Text(file),
                }
            }
            MetricsCollector::TensorFlowEvent { path } => {
                let own = work.join("tfevent");
                std::fs::create_dir_all(&own)
                    .map_err(|e| format!("creating {}: {e}", own.display()))?;
                mounts.push(Mount {
                    source: own.clone(),
                    target: PathBuf::from(path),
                    read_only: false,
                });
                MetricsSource::TfEvents(own)
            }
        };
        let working_dir = run
            .working_dir
            .map(PathBuf::from)
            .or_else(|| {
                ctx.record
                    .options
                    .get("workingDir")
                    .and_then(Value::as_str)
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| work.to_path_buf());
        let mut command = run.command.into_iter();
        let program = command
            .next()
            .ok_or("the trial's container has no command")?;
        Ok((
            Workload {
                name: trial.name.clone(),
                program,
                args: command.collect(),
                env,
                working_dir: Some(working_dir),
                log_path: log_path.to_path_buf(),
                resources: run.resources,
                timeout: None,
                image: run.image,
                mounts,
                warm_python: false,
                kubernetes: Some(run.spec),
            },
            source,
        ))
    }

    /// The early-stopping rule for a trial starting now, from the trials
    /// that succeeded so far.
    async fn stop_rule(&self, ctx: &Ctx) -> Result<Option<StopRule>> {
        let Some(es) = &ctx.exp.spec.early_stopping else {
            return Ok(None);
        };
        let store = &self.inner.store;
        let metric = &ctx.exp.spec.objective.objective_metric_name;
        let mut series = Vec::new();
        for t in store.list_trials(&ctx.record.id).await? {
            if t.phase != TrialPhase::Succeeded {
                continue;
            }
            let values: Vec<f64> = store
                .list_observation_logs(&t.id)
                .await?
                .into_iter()
                .filter(|l| &l.metric_name == metric)
                .filter_map(|l| l.value.parse().ok())
                .collect();
            series.push(values);
        }
        Ok(StopRule::compute(
            es,
            ctx.exp.spec.objective.objective_type,
            &series,
        ))
    }
}

/// Records metrics a trial pushed (Katib's `ReportObservationLog`; the
/// trial names itself with `KATIB_TRIAL_NAME`). Only a running trial may
/// report; the controller reads them when the trial ends.
pub async fn report_metrics(
    store: &Store,
    namespace: &Namespace,
    trial: &str,
    logs: &[ObservationLogRecord],
) -> Result<()> {
    let (_e, t) = store.find_trial(namespace, trial).await?;
    if t.phase != TrialPhase::Running {
        return Err(TuningError::Invalid(format!(
            "trial {trial} is {}; only a running trial can report metrics",
            t.phase
        )));
    }
    store.append_observation_logs(&t.id, logs).await?;
    Ok(())
}

/// Where a running trial's metrics come from.
#[derive(Debug, Clone)]
enum MetricsSource {
    /// TEXT lines in this file (stdout's log, or a File collector's file).
    Text(PathBuf),
    /// JSON lines in this file.
    Json(PathBuf),
    /// Event files under this directory, read when the trial ends.
    TfEvents(PathBuf),
    /// Reported by the trial over HTTP into the store.
    Push,
}

/// Reads a growing metrics file incrementally, whole lines only.
struct Tail {
    source: MetricsSource,
    offset: u64,
    partial: String,
    text: Option<metrics::TextParser>,
    json: Option<metrics::JsonParser>,
    logs: Vec<MetricLog>,
}

impl Tail {
    fn new(source: MetricsSource, ctx: &Ctx) -> Self {
        let text = match &source {
            MetricsSource::Text(_) => metrics::TextParser::new(
                &ctx.metric_names,
                ctx.exp
                    .spec
                    .metrics_collector
                    .text_filters()
                    .unwrap_or_default(),
            )
            .ok(),
            _ => None,
        };
        let json = match &source {
            MetricsSource::Json(_) => Some(metrics::JsonParser::new(&ctx.metric_names)),
            _ => None,
        };
        Self {
            source,
            offset: 0,
            partial: String::new(),
            text,
            json,
            logs: Vec::new(),
        }
    }

    fn read(&mut self) {
        use std::io::{Read, Seek, SeekFrom};
        let path = match &self.source {
            MetricsSource::Text(p) | MetricsSource::Json(p) => p,
            _ => return,
        };
        let Ok(mut f) = std::fs::File::open(path) else {
            return;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return;
        }
        self.offset += buf.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&buf));
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            self.parse_line(line.trim_end_matches(['\n', '\r']));
        }
    }

    fn parse_line(&mut self, line: &str) {
        if let Some(p) = &self.text {
            self.logs.extend(p.parse_line(line));
        } else if let Some(p) = &self.json {
            // A line that is not JSON is skipped, as Katib's collector does.
            if let Ok(l) = p.parse_line(line) {
                self.logs.extend(l);
            }
        }
    }

    fn objective_series(&self, metric: &str) -> Vec<f64> {
        self.logs
            .iter()
            .filter(|l| l.name == metric)
            .filter_map(|l| l.value.parse().ok())
            .collect()
    }
}

impl Ctx {
    fn new(record: TuningExperimentRecord) -> Result<Self> {
        let exp = parse_stored(&record)?;
        let space = exp.spec.search_space();
        let budget = Budget {
            max_trial_count: exp.spec.max_trial_count,
            parallel_trial_count: exp.spec.parallel_trial_count,
        };
        let algorithm = oxflow_suggest::build(
            &exp.spec.algorithm.algorithm_name,
            &exp.spec.algorithm.settings(),
            &space,
            budget,
            record.seed as u64,
        )
        .map_err(|e| TuningError::Spec(SpecError::new("spec.algorithm", e.to_string())))?;
        let metric_names = exp.spec.metric_names();
        Ok(Self {
            record,
            exp,
            space,
            algorithm,
            metric_names,
        })
    }
}

fn parse_stored(e: &TuningExperimentRecord) -> Result<Experiment> {
    Experiment::from_yaml(&e.spec.to_string()).map_err(|err| TuningError::Corrupt {
        name: e.name.clone(),
        message: format!("its stored spec no longer validates: {err}"),
    })
}

/// Katib's `observation.metrics`: `"unavailable"` where a value is missing.
fn observation_json(summaries: &[metrics::MetricSummary]) -> Value {
    let text = |v: &Option<String>| json!(v.as_deref().unwrap_or(metrics::UNAVAILABLE));
    Value::Array(
        summaries
            .iter()
            .map(|s| json!({"name": s.name, "min": text(&s.min), "max": text(&s.max), "latest": text(&s.latest)}))
            .collect(),
    )
}

/// The trials as the algorithms see them: losses (lower is better).
fn history(ctx: &Ctx, trials: &[TuningTrialRecord]) -> Result<Vec<TrialRecord>> {
    let sign = match ctx.exp.spec.objective.objective_type {
        ObjectiveType::Minimize => 1.0,
        ObjectiveType::Maximize => -1.0,
    };
    trials
        .iter()
        .map(|t| {
            let assignments: Vec<ParameterAssignment> =
                serde_json::from_value(t.assignments.clone()).map_err(|e| {
                    TuningError::Corrupt {
                        name: ctx.record.name.clone(),
                        message: format!("trial {} has unreadable assignments: {e}", t.name),
                    }
                })?;
            let assignment =
                crate::spec::parse_assignment(&ctx.space, &assignments).map_err(|e| {
                    TuningError::Corrupt {
                        name: ctx.record.name.clone(),
                        message: format!("trial {}: {e}", t.name),
                    }
                })?;
            let outcome = match t.phase {
                TrialPhase::Created | TrialPhase::Running => Outcome::Pending,
                TrialPhase::Succeeded => match t.objective {
                    Some(v) => Outcome::Completed(sign * v),
                    None => Outcome::Failed,
                },
                TrialPhase::EarlyStopped => Outcome::EarlyStopped {
                    last: t.objective.map(|v| sign * v),
                },
                TrialPhase::Failed | TrialPhase::Killed | TrialPhase::MetricsUnavailable => {
                    Outcome::Failed
                }
            };
            let tags = t
                .tags
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.as_str()
                                    .map(str::to_owned)
                                    .unwrap_or_else(|| v.to_string()),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(TrialRecord {
                assignment,
                outcome,
                tags,
            })
        })
        .collect()
}

/// The best trial with an objective value (succeeded or early-stopped).
fn best_trial<'a>(ctx: &Ctx, trials: &'a [TuningTrialRecord]) -> Option<&'a TuningTrialRecord> {
    let better = |a: f64, b: f64| match ctx.exp.spec.objective.objective_type {
        ObjectiveType::Minimize => a < b,
        ObjectiveType::Maximize => a > b,
    };
    let mut best: Option<&TuningTrialRecord> = None;
    for t in trials {
        if !matches!(t.phase, TrialPhase::Succeeded | TrialPhase::EarlyStopped) {
            continue;
        }
        let Some(v) = t.objective else { continue };
        if best.is_none_or(|b| better(v, b.objective.unwrap_or(f64::NAN))) {
            best = Some(t);
        }
    }
    best
}

/// Katib's termination rules, in Katib's order.
fn termination(
    ctx: &Ctx,
    trials: &[TuningTrialRecord],
    best: Option<&TuningTrialRecord>,
) -> Option<(ExperimentPhase, &'static str, String)> {
    let spec = &ctx.exp.spec;
    if let (Some(goal), Some(v)) = (spec.objective.goal, best.and_then(|b| b.objective)) {
        let reached = match spec.objective.objective_type {
            ObjectiveType::Minimize => v <= goal,
            ObjectiveType::Maximize => v >= goal,
        };
        if reached {
            return Some((
                ExperimentPhase::Succeeded,
                "ExperimentGoalReached",
                format!(
                    "Experiment has succeeded because the objective goal {goal} has been reached"
                ),
            ));
        }
    }
    let count = |p: &[TrialPhase]| trials.iter().filter(|t| p.contains(&t.phase)).count() as u32;
    let failed = count(&[TrialPhase::Failed, TrialPhase::MetricsUnavailable]);
    if let Some(max_failed) = spec.max_failed_trial_count
        && failed > 0
        && failed >= max_failed
    {
        return Some((
            ExperimentPhase::Failed,
            "ExperimentFailed",
            format!(
                "Experiment has failed because {failed} trials failed (maxFailedTrialCount {max_failed})"
            ),
        ));
    }
    let completed = count(&[
        TrialPhase::Succeeded,
        TrialPhase::Failed,
        TrialPhase::Killed,
        TrialPhase::EarlyStopped,
        TrialPhase::MetricsUnavailable,
    ]);
    if let Some(max) = spec.max_trial_count
        && completed >= max
    {
        return Some((
            ExperimentPhase::Succeeded,
            "ExperimentMaxTrialsReached",
            format!("Experiment has succeeded because max trial count {max} has reached"),
        ));
    }
    None
}

/// `<experiment>-<8 characters>`, as Katib names trials; derived from the
/// experiment id and the trial's position so a re-run of a suggestion pass
/// that crashed before storing cannot produce a second name for it.
fn trial_name(experiment: &str, experiment_id: &str, seq: i64) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{experiment_id}/{seq}").as_bytes());
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = digest
        .iter()
        .take(8)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    format!("{experiment}-{suffix}")
}

fn seed_from(id: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(id.as_bytes());
    i64::from_le_bytes(d[..8].try_into().expect("8 bytes")) & i64::MAX
}

/// Katib's medianstop rule, made once per trial start.
struct StopRule(oxflow_suggest::earlystop::StopRule);

impl StopRule {
    fn compute(
        es: &crate::spec::EarlyStopping,
        objective: ObjectiveType,
        succeeded: &[Vec<f64>],
    ) -> Option<Self> {
        es.median_stop()
            .rule(succeeded.iter().map(Vec::as_slice), objective.direction())
            .map(Self)
    }

    fn should_stop(&self, series: &[f64]) -> bool {
        self.0.should_stop(series)
    }
}
