//! One controller framework for every Oxflow controller.
//!
//! A controller is a [`Reconciler`] — "make the world match this object's
//! stored state" — run by [`Controller`]: keys come from the change feed of
//! the kinds it watches (and from whoever calls [`Controller::enqueue`]),
//! wait in a [`WorkQueue`] (each key once, never reconciled twice at a
//! time), and are reconciled by a few workers; a failure comes back after a
//! growing delay, a reconcile may ask to be called again later, and a full
//! resync now and then catches anything missed. Reconciles are
//! level-triggered: they read stored state, never an event's payload, so
//! after any crash reconciling again is the recovery.
//!
//! With a lease, only the process holding it reconciles, and its writes
//! carry the lease's fencing token ([`Context::fence`]): the store refuses
//! them in the same statement once another process has taken the lease, so
//! a process that lost its lease cannot write.

mod limit;
mod queue;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use oxflow_core::Timestamp;
use oxflow_core::object::Kind;
use oxflow_resources::Resources;
use oxflow_store::{Fence, ResourceKey, Store};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use limit::TokenBucket;
pub use queue::{Outcome, WorkQueue};

/// What a reconcile asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the object changes.
    Done,
    /// Look again after this long.
    RequeueAfter(Duration),
}

/// Why a reconcile failed (logged; the key comes back after a backoff).
pub type ReconcileError = Box<dyn std::error::Error + Send + Sync>;

/// What a reconcile gets besides its key.
#[derive(Debug, Clone)]
pub struct Context {
    /// The lease this process holds, for fenced writes
    /// (`Resources::replace_status_fenced`); `None` for a controller
    /// without a lease.
    pub fence: Option<Fence>,
}

/// A controller's logic.
pub trait Reconciler: Send + Sync + 'static {
    /// Makes the world match the stored state of `key` (which may be gone).
    fn reconcile<'a>(
        &'a self,
        key: &'a ResourceKey,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Action, ReconcileError>>;

    /// Every key it is responsible for now (for the start and resyncs);
    /// none by default.
    fn keys(&self) -> BoxFuture<'_, Result<Vec<ResourceKey>, ReconcileError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// Leading through a lease.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// This process (host:pid:start, as owners are named).
    pub holder: String,
    /// How long a lease lasts without renewal; renewed every third of it.
    pub ttl: Duration,
}

/// How a controller runs.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Its name (and its lease's).
    pub name: String,
    /// Reconciles at once.
    pub workers: usize,
    /// First retry delay after a failure (doubling from there).
    pub backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// A full pass over [`Reconciler::keys`] this often (`None`: at start
    /// only).
    pub resync: Option<Duration>,
    /// Lead through a lease (`None`: always lead).
    pub lease: Option<LeaseConfig>,
}

impl ControllerConfig {
    /// Defaults: 2 workers, backoff 100 ms to 30 s, resync every 5 minutes,
    /// no lease.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            workers: 2,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            resync: Some(Duration::from_secs(300)),
            lease: None,
        }
    }
}

/// A running controller's handle.
#[derive(Clone)]
pub struct Controller {
    queue: Arc<WorkQueue>,
    leader: watch::Receiver<Option<Fence>>,
    stop: CancellationToken,
}

impl Controller {
    /// Starts `reconciler` with `config` over `store`, woken by `resources`'
    /// change feed for `kinds`. Returns at once; the controller runs until
    /// [`Controller::stop`] (which gives its lease back).
    pub fn start(
        store: Store,
        resources: Option<&Resources>,
        kinds: &[&'static Kind],
        reconciler: Arc<dyn Reconciler>,
        config: ControllerConfig,
    ) -> Self {
        let queue = Arc::new(WorkQueue::new(config.backoff, config.max_backoff));
        let stop = CancellationToken::new();
        // Without a lease this process always leads, with a zero token.
        let initial = config.lease.is_none().then(|| Fence {
            lease: String::new(),
            holder: String::new(),
            token: 0,
        });
        let (leader_tx, leader) = watch::channel(initial);
        let lead_always = config.lease.is_none();
        if let Some(lease) = config.lease.clone() {
            tokio::spawn(elect(
                store.clone(),
                config.name.clone(),
                lease,
                leader_tx,
                stop.clone(),
            ));
        } else {
            drop(leader_tx);
        }
        if let Some(resources) = resources {
            let feed = resources.subscribe();
            let kinds: Vec<(&'static str, &'static str)> =
                kinds.iter().map(|k| (k.group, k.kind)).collect();
            tokio::spawn(follow_feed(
                feed,
                kinds,
                queue.clone(),
                reconciler.clone(),
                stop.clone(),
            ));
        }
        tokio::spawn(resync(
            reconciler.clone(),
            queue.clone(),
            config.resync,
            stop.clone(),
        ));
        for worker in 0..config.workers.max(1) {
            tokio::spawn(work(
                worker,
                config.name.clone(),
                reconciler.clone(),
                queue.clone(),
                leader.clone(),
                lead_always,
                stop.clone(),
            ));
        }
        Self {
            queue,
            leader,
            stop,
        }
    }

    /// Queues `key` (another controller's or an API's nudge).
    pub fn enqueue(&self, key: ResourceKey) {
        self.queue.add(key);
    }

    /// The queue (for tests and metrics).
    pub fn queue(&self) -> &WorkQueue {
        &self.queue
    }

    /// The fence this process leads with, while it leads (a controller
    /// without a lease reports a zero token).
    pub fn leading(&self) -> Option<Fence> {
        self.leader.borrow().clone()
    }

    /// Waits until this process leads (or the controller stops).
    pub async fn until_leading(&self) -> Option<Fence> {
        let mut rx = self.leader.clone();
        loop {
            if let Some(f) = rx.borrow_and_update().clone() {
                return Some(f);
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return None },
                () = self.stop.cancelled() => return None,
            }
        }
    }

    /// Stops the workers and gives the lease back.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// Holds (or waits for) the lease; publishes the fence while it holds.
async fn elect(
    store: Store,
    name: String,
    lease: LeaseConfig,
    leader: watch::Sender<Option<Fence>>,
    stop: CancellationToken,
) {
    let ttl_ms = i64::try_from(lease.ttl.as_millis()).unwrap_or(i64::MAX);
    let every = lease.ttl / 3;
    loop {
        match store
            .acquire_lease(&name, &lease.holder, Timestamp::now(), ttl_ms)
            .await
        {
            Ok(Some(fence)) => {
                let changed = leader.borrow().as_ref() != Some(&fence);
                if changed {
                    info!(controller = %name, token = fence.token, "Leading.");
                    let _ = leader.send(Some(fence));
                }
            }
            Ok(None) => {
                if leader.borrow().is_some() {
                    warn!(controller = %name, "Lost the lease; another process leads now.");
                    let _ = leader.send(None);
                }
            }
            Err(e) => {
                // Unsure: stop leading; the fence makes a late write fail
                // anyway.
                warn!(controller = %name, error = %e, "Could not renew the lease.");
                if leader.borrow().is_some() {
                    let _ = leader.send(None);
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => {
                let held = leader.borrow().clone();
                if let Some(f) = held {
                    let _ = store.release_lease(&f).await;
                }
                let _ = leader.send(None);
                return;
            }
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// Queues the keys of changed objects of `kinds`; on falling behind, all
/// of the reconciler's keys.
async fn follow_feed(
    mut feed: broadcast::Receiver<Arc<oxflow_resources::Change>>,
    kinds: Vec<(&'static str, &'static str)>,
    queue: Arc<WorkQueue>,
    reconciler: Arc<dyn Reconciler>,
    stop: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            e = feed.recv() => e,
        };
        match event {
            Ok(change) => {
                let key = &change.event.key;
                if kinds.iter().any(|(g, k)| key.group == *g && key.kind == *k) {
                    queue.add(key.clone());
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                debug!(missed = n, "The change feed ran ahead; queueing every key.");
                if let Ok(keys) = reconciler.keys().await {
                    for k in keys {
                        queue.add(k);
                    }
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn resync(
    reconciler: Arc<dyn Reconciler>,
    queue: Arc<WorkQueue>,
    every: Option<Duration>,
    stop: CancellationToken,
) {
    loop {
        match reconciler.keys().await {
            Ok(keys) => {
                for k in keys {
                    queue.add(k);
                }
            }
            Err(e) => warn!(error = %e, "Listing a controller's keys failed."),
        }
        let Some(every) = every else { return };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn work(
    worker: usize,
    name: String,
    reconciler: Arc<dyn Reconciler>,
    queue: Arc<WorkQueue>,
    mut leader: watch::Receiver<Option<Fence>>,
    lead_always: bool,
    stop: CancellationToken,
) {
    loop {
        // Only the leader reconciles.
        let fence = if lead_always {
            None
        } else {
            loop {
                if let Some(f) = leader.borrow_and_update().clone() {
                    break Some(f);
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    r = leader.changed() => if r.is_err() { return },
                }
            }
        };
        let key = tokio::select! {
            () = stop.cancelled() => return,
            k = queue.next() => k,
        };
        let ctx = Context { fence };
        let outcome = match reconciler.reconcile(&key, &ctx).await {
            Ok(Action::Done) => Outcome::Done,
            Ok(Action::RequeueAfter(d)) => Outcome::RequeueAfter(d),
            Err(e) => {
                warn!(controller = %name, worker, key = %key.describe(), error = %e, "Reconcile failed; retrying after a backoff.");
                Outcome::Failed
            }
        };
        queue.done(&key, outcome);
    }
}
