//! The object cache (the API server's watch cache): every object of each
//! kind that has been listed, parsed and serialized once, kept current from
//! this process's writes and caught up from the store's change log before
//! each read, so a list of 10,000 objects is a filter over memory and a
//! concatenation of ready JSON, not 10,000 rows parsed and serialized again.
//!
//! Invariant: a kind's entry reflects every change of that kind with a
//! resourceVersion up to its `rv`; a change is applied to an object only if
//! it is newer than the object held (so replaying the log is harmless).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use oxflow_store::{ResourceEvent, Store, WatchEventType};
use serde_json::Value;

use crate::Result;

/// One object, parsed and serialized.
#[derive(Debug)]
pub struct Cached {
    /// The object.
    pub object: Value,
    /// Its JSON text.
    pub json: String,
    /// Its `metadata` as JSON text (for Table rows).
    pub meta_json: String,
    /// Its resourceVersion.
    pub rv: i64,
}

impl Cached {
    fn new(object: Value, rv: i64) -> Arc<Self> {
        Arc::new(Self {
            json: object.to_string(),
            meta_json: object
                .get("metadata")
                .map(Value::to_string)
                .unwrap_or_else(|| "{}".into()),
            object,
            rv,
        })
    }
}

#[derive(Debug, Default)]
struct KindCache {
    /// Every change of the kind up to here is applied.
    rv: i64,
    /// By (namespace, name).
    objects: BTreeMap<(String, String), Arc<Cached>>,
}

impl KindCache {
    fn apply(&mut self, event: &ResourceEvent) {
        let key = (event.key.namespace.clone(), event.key.name.clone());
        let newer = self
            .objects
            .get(&key)
            .is_none_or(|c| c.rv < event.resource_version);
        match event.event_type {
            WatchEventType::Deleted => {
                if newer {
                    self.objects.remove(&key);
                }
            }
            _ => {
                if newer {
                    self.objects.insert(
                        key,
                        Cached::new(event.object.clone(), event.resource_version),
                    );
                }
            }
        }
    }
}

/// Change-log entries read per query while catching up.
const PAGE: i64 = 2000;

/// The cache of every kind listed so far.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    kinds: RwLock<HashMap<(String, String), KindCache>>,
    /// One loader at a time (a first list of a kind reads every row).
    loading: tokio::sync::Mutex<()>,
}

/// A snapshot of one kind: its objects (in namespace, name order) and the
/// version it is current to.
pub(crate) struct Snapshot {
    pub objects: Vec<Arc<Cached>>,
    pub rv: i64,
}

impl Cache {
    /// Applies one of this process's writes at once (the log catch-up
    /// before the next read would too; this keeps reads in this process
    /// from lagging behind its own writes).
    pub(crate) fn apply(&self, event: &ResourceEvent) {
        let mut kinds = self.kinds.write().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = kinds.get_mut(&(event.key.group.clone(), event.key.kind.clone())) {
            k.apply(event);
        }
        // Every kind current to the version just before this one is current
        // to this one too (it is of that kind and applied, or of another),
        // so interleaved writes of several kinds by this process never send
        // a list back to the log; a version written by another process
        // leaves a gap, which the next snapshot reads from the log.
        for k in kinds.values_mut() {
            if event.resource_version == k.rv + 1 {
                k.rv = event.resource_version;
            }
        }
    }

    /// One object as the cache holds it, when its kind is loaded: current
    /// with this process's writes, possibly behind other processes' (only a
    /// write conditional on its resourceVersion may rely on it).
    pub(crate) fn get(
        &self,
        group: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<Cached>> {
        let kinds = self.kinds.read().unwrap_or_else(|e| e.into_inner());
        kinds
            .get(&(group.to_owned(), kind.to_owned()))?
            .objects
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// The kind's objects in `namespace` (or all), current with the store.
    pub(crate) async fn snapshot(
        &self,
        store: &Store,
        group: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<Snapshot> {
        let id = (group.to_owned(), kind.to_owned());
        let loaded = self
            .kinds
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .map(|k| k.rv);
        match loaded {
            None => self.load(store, &id).await?,
            Some(rv) => {
                // Past the kept history: read the whole kind again.
                if rv < store.resource_history_start().await? {
                    self.kinds
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&id);
                    self.load(store, &id).await?;
                } else {
                    self.catch_up(store, &id, rv).await?;
                }
            }
        }
        let kinds = self.kinds.read().unwrap_or_else(|e| e.into_inner());
        let Some(k) = kinds.get(&id) else {
            return Ok(Snapshot {
                objects: Vec::new(),
                rv: 0,
            });
        };
        let objects = match namespace {
            Some(ns) => k
                .objects
                .range((ns.to_owned(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, c)| c.clone())
                .collect(),
            None => k.objects.values().cloned().collect(),
        };
        Ok(Snapshot { objects, rv: k.rv })
    }

    async fn load(&self, store: &Store, id: &(String, String)) -> Result<()> {
        let _one = self.loading.lock().await;
        if self
            .kinds
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(id)
        {
            return Ok(());
        }
        let (items, rv) = store.list_resources(&id.0, &id.1, None).await?;
        let mut k = KindCache {
            rv,
            objects: BTreeMap::new(),
        };
        for s in items {
            k.objects.insert(
                (s.key.namespace.clone(), s.key.name.clone()),
                Cached::new(s.object, s.resource_version),
            );
        }
        self.kinds
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), k);
        Ok(())
    }

    async fn catch_up(&self, store: &Store, id: &(String, String), mut after: i64) -> Result<()> {
        loop {
            let events = store
                .resource_events_of_kind_after(&id.0, &id.1, after, PAGE)
                .await?;
            let n = events.len();
            let mut kinds = self.kinds.write().unwrap_or_else(|e| e.into_inner());
            let Some(k) = kinds.get_mut(id) else {
                return Ok(());
            };
            for e in &events {
                k.apply(e);
                after = after.max(e.resource_version);
            }
            // Nothing of the kind changed up to the newest version read.
            k.rv = k.rv.max(after);
            if (n as i64) < PAGE {
                return Ok(());
            }
        }
    }
}
