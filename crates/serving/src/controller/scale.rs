//! Scale to zero (`minReplicas: 0`), as Knative does it for KServe: a
//! model revision that has had no request for a while is unloaded (its
//! memory and, for scikit-learn, its worker processes are given back); the
//! next request loads it again and waits for it (the activator's job),
//! bounded by the hold time, instead of failing.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oxflow_core::Timestamp;
use oxflow_inference::{ModelState, Repository};

/// The scale state of one revision whose `minReplicas` is 0.
pub(super) struct ScaleToZero {
    repository: Arc<Repository>,
    model: String,
    last_used: AtomicI64,
    in_flight: AtomicUsize,
    /// Whether it is scaled to zero now. Changed only under this lock,
    /// which also covers the in-flight check, so a request arriving while
    /// the revision scales down always finds it either loaded or loading.
    zero: Mutex<bool>,
}

/// Counts a request in flight until dropped.
pub(super) struct InFlight(Arc<ScaleToZero>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .last_used
            .store(Timestamp::now().millis(), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ScaleToZero {
    pub(super) fn new(repository: Arc<Repository>, model: String) -> Arc<ScaleToZero> {
        Arc::new(ScaleToZero {
            repository,
            model,
            last_used: AtomicI64::new(Timestamp::now().millis()),
            in_flight: AtomicUsize::new(0),
            zero: Mutex::new(false),
        })
    }

    /// Whether the revision is scaled to zero now.
    pub(super) fn is_zero(&self) -> bool {
        *self.zero.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks a request in flight; wakes the revision (starts loading its
    /// model in the background) when it was scaled to zero. Returns whether
    /// it woke it.
    pub(super) fn enter(self: &Arc<Self>) -> (InFlight, bool) {
        let mut zero = self.zero.lock().unwrap_or_else(|e| e.into_inner());
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.last_used
            .store(Timestamp::now().millis(), Ordering::Release);
        let woke = *zero;
        if woke {
            *zero = false;
            // Loading before the lock is released: the request that
            // follows waits for the model instead of finding it unloaded.
            self.repository.set(&self.model, ModelState::Loading);
            let repository = self.repository.clone();
            let model = self.model.clone();
            tokio::spawn(async move {
                if let Err(e) = repository.load(&model).await {
                    tracing::warn!(model = %model, error = %e, "Could not scale a model back up.");
                }
            });
        }
        (InFlight(self.clone()), woke)
    }

    /// Unloads the model when nothing is in flight and nothing came for
    /// `idle`; returns whether it did.
    pub(super) fn scale_down_if_idle(&self, idle: Duration) -> bool {
        let mut zero = self.zero.lock().unwrap_or_else(|e| e.into_inner());
        if *zero || self.in_flight.load(Ordering::Acquire) > 0 {
            return false;
        }
        let since = Timestamp::now().millis() - self.last_used.load(Ordering::Acquire);
        if since < idle.as_millis() as i64 {
            return false;
        }
        // Only a loaded model scales down (not one loading or failed).
        if !matches!(
            self.repository.state(&self.model),
            Some(ModelState::Ready(_))
        ) {
            return false;
        }
        self.repository.set(&self.model, ModelState::Unloaded);
        *zero = true;
        true
    }
}
