//! The work queue: object keys waiting to be reconciled, each at most once
//! in the queue and never reconciled twice at the same time; a key added
//! while it is being reconciled comes round again once that ends; failures
//! come back after a growing delay.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use oxflow_store::ResourceKey;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Keys to reconcile.
#[derive(Debug)]
pub struct WorkQueue {
    state: Mutex<State>,
    wake: Notify,
    base: Duration,
    max: Duration,
}

#[derive(Debug, Default)]
struct State {
    ready: VecDeque<ResourceKey>,
    queued: HashSet<ResourceKey>,
    active: HashSet<ResourceKey>,
    /// Added again while being reconciled.
    dirty: HashSet<ResourceKey>,
    /// When each delayed key is due (seq breaks ties).
    delayed: BTreeMap<(Instant, u64), ResourceKey>,
    seq: u64,
    failures: HashMap<ResourceKey, u32>,
}

impl State {
    fn push(&mut self, key: ResourceKey) {
        if self.active.contains(&key) {
            self.dirty.insert(key);
        } else if self.queued.insert(key.clone()) {
            self.ready.push_back(key);
        }
    }

    /// Moves due delayed keys to the ready queue; the next due time.
    fn promote(&mut self, now: Instant) -> Option<Instant> {
        while let Some((&(at, seq), _)) = self.delayed.first_key_value() {
            if at > now {
                return Some(at);
            }
            if let Some(key) = self.delayed.remove(&(at, seq)) {
                self.push(key);
            }
        }
        None
    }
}

/// How a reconcile of a key ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done; nothing to do until the key changes.
    Done,
    /// Done for now; look again after this long (a deadline, a poll of
    /// something outside the store).
    RequeueAfter(Duration),
    /// Failed: again after the backoff for the key's failures so far.
    Failed,
}

impl WorkQueue {
    /// A queue whose failure backoff starts at `base` and doubles up to
    /// `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            base,
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `key` (once, however often it is added before it is taken).
    pub fn add(&self, key: ResourceKey) {
        self.lock().push(key);
        self.wake.notify_one();
    }

    /// Queues `key` after `delay`.
    pub fn add_after(&self, key: ResourceKey, delay: Duration) {
        {
            let mut s = self.lock();
            s.seq += 1;
            let seq = s.seq;
            s.delayed.insert((Instant::now() + delay, seq), key);
        }
        self.wake.notify_one();
    }

    /// The next key to reconcile, waiting for one; it is active until
    /// [`Self::done`].
    pub async fn next(&self) -> ResourceKey {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let due = {
                let mut s = self.lock();
                let due = s.promote(Instant::now());
                if let Some(key) = s.ready.pop_front() {
                    s.queued.remove(&key);
                    s.active.insert(key.clone());
                    // Another worker may take what else is ready.
                    if !s.ready.is_empty() {
                        self.wake.notify_one();
                    }
                    return key;
                }
                due
            };
            match due {
                Some(at) => {
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Ends the reconcile of `key` with `outcome`.
    pub fn done(&self, key: &ResourceKey, outcome: Outcome) {
        let mut s = self.lock();
        s.active.remove(key);
        let again = s.dirty.remove(key);
        let delay = match outcome {
            Outcome::Done => {
                s.failures.remove(key);
                None
            }
            Outcome::RequeueAfter(d) => {
                s.failures.remove(key);
                Some(d)
            }
            Outcome::Failed => {
                let n = s.failures.entry(key.clone()).or_insert(0);
                *n += 1;
                let factor = 1u32 << (*n - 1).min(16);
                Some((self.base * factor).min(self.max))
            }
        };
        if again {
            // It changed while being reconciled: at once, whatever the
            // outcome (a level-triggered reconcile reads the new state).
            s.push(key.clone());
        } else if let Some(d) = delay {
            s.seq += 1;
            let seq = s.seq;
            s.delayed.insert((Instant::now() + d, seq), key.clone());
        }
        drop(s);
        self.wake.notify_one();
    }

    /// Keys waiting now (ready, not delayed).
    pub fn len(&self) -> usize {
        self.lock().ready.len()
    }

    /// Whether nothing is ready.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Failures in a row for `key` (0 after a success).
    pub fn failures(&self, key: &ResourceKey) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(name: &str) -> ResourceKey {
        ResourceKey {
            group: "g".into(),
            kind: "K".into(),
            namespace: "default".into(),
            name: name.into(),
        }
    }

    #[tokio::test]
    async fn keys_are_deduplicated_and_never_active_twice() {
        let q = WorkQueue::new(Duration::from_millis(10), Duration::from_secs(1));
        q.add(k("a"));
        q.add(k("a"));
        q.add(k("b"));
        assert_eq!(q.len(), 2);
        let a = q.next().await;
        assert_eq!(a, k("a"));
        // Added while active: not ready now, ready once done.
        q.add(k("a"));
        assert_eq!(q.next().await, k("b"));
        assert!(q.is_empty());
        q.done(&a, Outcome::Done);
        assert_eq!(q.next().await, k("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_and_success_resets() {
        let q = WorkQueue::new(Duration::from_millis(100), Duration::from_millis(350));
        q.add(k("a"));
        let mut key = q.next().await;
        let mut waits = Vec::new();
        for _ in 0..4 {
            let t = Instant::now();
            q.done(&key, Outcome::Failed);
            key = q.next().await;
            waits.push(t.elapsed().as_millis());
        }
        assert_eq!(waits, [100, 200, 350, 350]);
        assert_eq!(q.failures(&key), 4);
        q.done(&key, Outcome::Done);
        assert_eq!(q.failures(&key), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn requeue_after_comes_back_when_due() {
        let q = WorkQueue::new(Duration::from_millis(10), Duration::from_secs(1));
        q.add(k("a"));
        let key = q.next().await;
        let t = Instant::now();
        q.done(&key, Outcome::RequeueAfter(Duration::from_secs(5)));
        assert_eq!(q.next().await, k("a"));
        assert_eq!(t.elapsed(), Duration::from_secs(5));
    }
}
