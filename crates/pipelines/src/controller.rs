//! The run controller: what `oxflow up` uses to execute runs submitted
//! through the API. Level-triggered: it looks for PENDING runs in the store
//! (on a nudge, and on a short interval so nothing is missed), claims them
//! and executes them, at most `max_runs` at a time. Restart recovery is the
//! same loop: `Engine::recover` resets runs whose engine died to PENDING and
//! the next pass picks them up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oxflow_core::{RunState, Timestamp};
use oxflow_store::RunQuery;
use tokio::sync::{Notify, broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, TaskEvent};
use crate::error::{PipelineError, Result};

/// How often the controller looks for work without being nudged.
const RESYNC: Duration = Duration::from_secs(2);

/// How long a delete waits for a terminated run's tasks to stop.
const STOP_WAIT: Duration = Duration::from_secs(30);

/// A change the dashboard may want to show live.
#[derive(Debug, Clone)]
pub enum RunEvent {
    /// A task of `run_id` changed state.
    Task {
        /// The run.
        run_id: String,
        /// The task's new state.
        event: TaskEvent,
    },
    /// The run itself changed state.
    Run {
        /// The run.
        run_id: String,
        /// Its new state.
        state: RunState,
    },
}

/// Executes PENDING runs in the background.
#[derive(Clone)]
pub struct RunController {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    max_runs: usize,
    nudge: Notify,
    running: Mutex<HashMap<String, CancellationToken>>,
    /// Notified whenever a run leaves `running`.
    stopped: Notify,
    events: broadcast::Sender<RunEvent>,
    shutdown: CancellationToken,
}

impl RunController {
    /// A controller over `engine` executing at most `max_runs` runs at once.
    pub fn new(engine: Engine, max_runs: usize) -> Self {
        let (events, _) = broadcast::channel(4096);
        Self {
            inner: Arc::new(Inner {
                engine,
                max_runs: max_runs.max(1),
                nudge: Notify::new(),
                running: Mutex::new(HashMap::new()),
                stopped: Notify::new(),
                events,
                shutdown: CancellationToken::new(),
            }),
        }
    }

    /// The engine it drives.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Live run and task changes (lagging receivers miss events, never block the engine).
    pub fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.inner.events.subscribe()
    }

    /// Tells the controller there may be new work (a run was just created).
    pub fn nudge(&self) {
        self.inner.nudge.notify_one();
    }

    /// Starts the reconcile loop; returns at once.
    pub fn start(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move { this.run_loop().await })
    }

    /// Stops taking new runs. Runs executing here are not cancelled: their
    /// tasks end with the process, and the next start resumes the runs
    /// (the same path as after a crash), so a restart loses nothing.
    pub fn stop(&self) {
        self.inner.shutdown.cancel();
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.inner.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Terminates a run, as stored intent (see [`oxflow_store::Store::cancel_run`]):
    /// a PENDING run nobody claimed ends CANCELED at once; one that is
    /// executing becomes CANCELING, which its engine turns into CANCELED
    /// once its tasks have stopped — at once when it executes here, within
    /// a moment when it executes in another process — and which survives a
    /// restart (recovery ends it CANCELED).
    pub async fn terminate(&self, run_id: &str) -> Result<()> {
        let store = self.inner.engine.store();
        let run = store.find_run(run_id).await?;
        let state = store.cancel_run(&run.id, Timestamp::now()).await?;
        if state == RunState::Canceling
            && let Some(token) = self.lock_running().get(&run.id)
        {
            token.cancel();
        }
        if state != run.state {
            self.emit_run(&run.id, state);
        }
        tracing::info!(run = %run.id, state = %state, "Run termination requested.");
        Ok(())
    }

    /// Deletes a run with [`Engine::delete_run`] (its artifacts directory,
    /// then its records), terminating it first if it has not ended and
    /// waiting until its tasks have stopped, so nothing writes into the
    /// directory after it is removed. Returns `false` when its records
    /// were already gone.
    pub async fn delete_run(&self, run: &oxflow_store::RunRecord) -> Result<bool> {
        let store = self.inner.engine.store();
        let mut run = run.clone();
        if !run.state.is_terminal() {
            self.terminate(&run.id).await?;
            self.wait_stopped(&run.id).await?;
            match store.get_run_without_spec(&run.id).await? {
                Some(now) => run = now,
                None => return Ok(false),
            }
        }
        self.inner.engine.delete_run(&run).await
    }

    /// Waits until `run_id` is not executing here any more.
    async fn wait_stopped(&self, run_id: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + STOP_WAIT;
        loop {
            let stopped = self.inner.stopped.notified();
            tokio::pin!(stopped);
            // Registered before the check, so a run that stops in between
            // still wakes this up.
            stopped.as_mut().enable();
            if !self.lock_running().contains_key(run_id) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, stopped).await.is_err() {
                return Err(PipelineError::RunState {
                    run_id: run_id.to_owned(),
                    message: format!(
                        "its tasks were still stopping after {}s; try again",
                        STOP_WAIT.as_secs()
                    ),
                });
            }
        }
    }

    fn emit_run(&self, run_id: &str, state: RunState) {
        let _ = self.inner.events.send(RunEvent::Run {
            run_id: run_id.to_owned(),
            state,
        });
    }

    async fn run_loop(&self) {
        if let Err(e) = self.inner.engine.recover().await {
            tracing::error!(error = %e, "Recovering interrupted runs failed.");
        }
        loop {
            if let Err(e) = self.pass().await {
                tracing::error!(error = %e, "Run controller pass failed; retrying.");
            }
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                _ = self.inner.nudge.notified() => {}
                _ = tokio::time::sleep(RESYNC) => {}
            }
        }
    }

    /// One reconcile pass: start PENDING runs while there is capacity.
    async fn pass(&self) -> Result<()> {
        let free = self
            .inner
            .max_runs
            .saturating_sub(self.lock_running().len());
        if free == 0 || self.inner.shutdown.is_cancelled() {
            return Ok(());
        }
        let q = RunQuery {
            states: vec![RunState::Pending],
            limit: Some(free as i64 + 16),
            ..Default::default()
        };
        let pending = self.inner.engine.store().list_runs(&q).await?;
        let mut started = 0;
        for run in pending {
            if started >= free {
                break;
            }
            let token = CancellationToken::new();
            {
                let mut running = self.lock_running();
                if running.contains_key(&run.id) {
                    continue;
                }
                running.insert(run.id.clone(), token.clone());
            }
            started += 1;
            let this = self.clone();
            tokio::spawn(async move { this.execute(run.id, token).await });
        }
        Ok(())
    }

    async fn execute(&self, run_id: String, token: CancellationToken) {
        let (tx, mut rx) = mpsc::unbounded_channel::<TaskEvent>();
        let events = self.inner.events.clone();
        let rid = run_id.clone();
        let forward = tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let _ = events.send(RunEvent::Task {
                    run_id: rid.clone(),
                    event,
                });
            }
        });
        self.emit_run(&run_id, RunState::Running);
        match self.inner.engine.execute(&run_id, Some(tx), token).await {
            Ok(run) => self.emit_run(&run_id, run.state),
            Err(e) => tracing::warn!(run = %run_id, error = %e, "Run could not be executed."),
        }
        let _ = forward.await;
        self.lock_running().remove(&run_id);
        self.inner.stopped.notify_waiters();
        // Capacity freed: look for more work.
        self.nudge();
    }
}
