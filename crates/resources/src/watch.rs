//! Watches: every change to a kind's objects from a resourceVersion on,
//! in version order, from the change feed of this process and, for what it
//! missed (a slow reader, a write by another process, a restart between
//! two requests of the client), the store's change log.

use std::sync::Arc;
use std::time::Duration;

use oxflow_core::object::Kind;
use oxflow_core::selector::{FieldSelector, LabelSelector};
use oxflow_store::{ResourceEvent, WatchEventType};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

use crate::objects::matches;
use crate::{Change, Resources, Result};

/// What to watch.
#[derive(Debug, Clone)]
pub struct WatchRequest {
    /// The kind.
    pub kind: &'static Kind,
    /// One namespace, or all.
    pub namespace: Option<String>,
    /// Only objects with these labels.
    pub labels: LabelSelector,
    /// Only objects with these fields.
    pub fields: FieldSelector,
    /// Changes after this version; `None` (or 0) sends every current
    /// object as `ADDED` first.
    pub from: Option<i64>,
}

/// One item of a watch stream.
#[derive(Debug, Clone)]
pub enum WatchItem {
    /// A change (shared by every watcher it goes to).
    Event(Arc<Change>),
    /// The version asked for is older than the kept history (410).
    Expired(String),
}

/// Changes read from the log per query.
const PAGE: i64 = 500;
/// How often a watch looks at the log for writes it was not told of.
const POLL: Duration = Duration::from_secs(1);

impl Resources {
    /// Starts a watch; its items arrive on the receiver until the receiver
    /// is dropped (which ends the watch and frees what it holds).
    pub async fn watch(&self, req: WatchRequest) -> Result<mpsc::Receiver<WatchItem>> {
        let (tx, rx) = mpsc::channel(256);
        // Subscribed before anything is read, so no change falls between
        // the snapshot (or the log) and the feed.
        let feed = self.subscribe();
        let last = match req.from.filter(|v| *v > 0) {
            None => {
                let (items, rv) = self
                    .list(req.kind, req.namespace.as_deref(), &req.labels, &req.fields)
                    .await?;
                let this = self.clone();
                tokio::spawn(async move {
                    for object in items {
                        let item = WatchItem::Event(Arc::new(Change::new(added(req.kind, object))));
                        if tx.send(item).await.is_err() {
                            return;
                        }
                    }
                    this.follow(req, feed, rv, tx).await;
                });
                return Ok(rx);
            }
            Some(from) => from,
        };
        let start = self.store().resource_history_start().await?;
        if last < start {
            let _ = tx
                .send(WatchItem::Expired(format!(
                    "too old resource version: {last} ({start})"
                )))
                .await;
            return Ok(rx);
        }
        let this = self.clone();
        tokio::spawn(async move { this.follow(req, feed, last, tx).await });
        Ok(rx)
    }

    /// Sends the changes after `last`: from the log, then as they come.
    async fn follow(
        &self,
        req: WatchRequest,
        mut feed: broadcast::Receiver<Arc<Change>>,
        mut last: i64,
        tx: mpsc::Sender<WatchItem>,
    ) {
        if !self.catch_up(&req, &mut last, &tx).await {
            return;
        }
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = tx.closed() => return,
                event = feed.recv() => match event {
                    Ok(change) => {
                        let event = &change.event;
                        if event.resource_version <= last {
                            continue;
                        }
                        if event.resource_version > last + 1 {
                            // Versions went to other kinds, or were written
                            // elsewhere: the log says which.
                            if !self.catch_up(&req, &mut last, &tx).await {
                                return;
                            }
                            if event.resource_version <= last {
                                continue;
                            }
                        }
                        last = event.resource_version;
                        if !send(&req, &change, &tx).await {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if !self.catch_up(&req, &mut last, &tx).await {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = poll.tick() => {
                    if !self.catch_up(&req, &mut last, &tx).await {
                        return;
                    }
                }
            }
        }
    }

    /// Sends what the log holds after `last`; false once the client is
    /// gone (or the log cannot be read, which ends the watch: the client
    /// re-watches, as after any ended stream).
    async fn catch_up(
        &self,
        req: &WatchRequest,
        last: &mut i64,
        tx: &mpsc::Sender<WatchItem>,
    ) -> bool {
        loop {
            let events = match self.store().resource_events_after(*last, PAGE).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "A watch could not read the change log; ending it.");
                    return false;
                }
            };
            let n = events.len();
            for event in events {
                *last = event.resource_version;
                if !send(req, &Arc::new(Change::new(event)), tx).await {
                    return false;
                }
            }
            if (n as i64) < PAGE {
                return true;
            }
        }
    }
}

/// Sends `event` if the watch wants it; false once the client is gone.
async fn send(req: &WatchRequest, change: &Arc<Change>, tx: &mpsc::Sender<WatchItem>) -> bool {
    let event = &change.event;
    let k = &event.key;
    if k.group != req.kind.group || k.kind != req.kind.kind {
        return true;
    }
    if let Some(ns) = &req.namespace
        && req.kind.namespaced
        && &k.namespace != ns
    {
        return true;
    }
    if !matches(&event.object, &req.labels, &req.fields) {
        return true;
    }
    tx.send(WatchItem::Event(change.clone())).await.is_ok()
}

/// A current object as the ADDED event a watch starts with.
fn added(kind: &Kind, object: Value) -> ResourceEvent {
    let text = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    ResourceEvent {
        resource_version: text("/metadata/resourceVersion").parse().unwrap_or(0),
        event_type: WatchEventType::Added,
        key: oxflow_store::ResourceKey {
            group: kind.group.to_owned(),
            kind: kind.kind.to_owned(),
            namespace: text("/metadata/namespace"),
            name: text("/metadata/name"),
        },
        object,
    }
}
