//! Kubernetes write semantics over the one resource table: what create,
//! replace, patch, the status subresource and delete do to an object, in
//! one place for every kind, every API and the CLI.
//!
//! Invariants kept here:
//! - `metadata.resourceVersion` comes from the store's one sequence; a
//!   write that names a version other than the object's gets `Conflict`.
//! - `metadata.generation` moves only when something other than
//!   `metadata` and `status` changes.
//! - For kinds with a status subresource, writes to the object keep the
//!   stored `status`, and `/status` writes change nothing else.
//! - Labels and annotations are kept verbatim.
//! - An object with finalizers is only marked (`deletionTimestamp`) by a
//!   delete; it goes when its last finalizer is removed. Deleting an owner
//!   deletes what it owns (background and foreground), or orphans it.
//! - Writes are serialized in this process, so the change feed delivers
//!   events in resourceVersion order.

use std::sync::Arc;

use oxflow_core::Timestamp;
use oxflow_core::object::{FieldError, Kind, parse_meta};
use oxflow_core::patch::{check_merge_patch, json_patch, merge_patch};
use oxflow_core::selector::{FieldSelector, LabelSelector};
use oxflow_store::{Fence, ResourceEvent, ResourceKey, Store, StoreError, StoredResource};
use serde_json::{Map, Value};
use tokio::sync::{Mutex, broadcast};
use tracing::debug;

use crate::cache::{Cache, Cached};
use crate::{Change, Registry, ResourceError, Result};

/// How unknown fields in a write are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Refused with 400, naming each field (kubectl sends this).
    Strict,
    /// Dropped, with a warning (the API server's default).
    #[default]
    Warn,
    /// Dropped silently.
    Ignore,
}

/// Options of one write.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Validate and answer, but store nothing (`dryRun=All`).
    pub dry_run: bool,
    /// What to do with unknown fields.
    pub validation: FieldValidation,
    /// A controller's lease: a create is refused
    /// ([`ResourceError::Fenced`]) once another process holds it.
    pub fence: Option<Fence>,
    /// A controller creating an object with its first status in one write
    /// (the API never sets this: a client's create ignores `status`).
    pub with_status: bool,
}

/// What a write returns: the object and the warnings to send back
/// (`Warning` headers).
#[derive(Debug, Clone)]
pub struct Written {
    /// The object as stored (or as it would be, for a dry run).
    pub object: Value,
    /// Unknown fields dropped, and the like.
    pub warnings: Vec<String>,
    /// Whether the write created the object (201 rather than 200).
    pub created: bool,
}

/// A patch's media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/strategic-merge-patch+json`: built-in kinds only (as a
    /// merge patch); the API server refuses it for custom kinds with 415.
    StrategicMerge,
    /// `application/apply-patch+yaml`: server-side apply, here create or
    /// merge (no field ownership).
    Apply,
}

/// Deletion propagation (`propagationPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// Delete the object, then what it owns.
    #[default]
    Background,
    /// Delete what it owns first; the object shows a deletionTimestamp
    /// meanwhile.
    Foreground,
    /// Leave what it owns, without the owner reference.
    Orphan,
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// What happens to owned objects.
    pub propagation: Propagation,
    /// Delete only at this resourceVersion.
    pub resource_version: Option<String>,
    /// Delete only the object with this uid.
    pub uid: Option<String>,
    /// Answer without deleting.
    pub dry_run: bool,
}

/// The resource model over a store: every kind of the registry.
#[derive(Clone)]
pub struct Resources {
    store: Store,
    registry: Arc<Registry>,
    feed: broadcast::Sender<Arc<Change>>,
    /// Held across each write and its broadcast, so events go out in
    /// resourceVersion order.
    writing: Arc<Mutex<()>>,
    /// Every listed kind's objects, parsed and serialized once.
    cache: Arc<Cache>,
}

/// Events a slow watcher may fall behind by before it re-reads the log.
const FEED_CAPACITY: usize = 4096;
/// The finalizer foreground deletion holds an owner with.
const FOREGROUND: &str = "foregroundDeletion";

impl Resources {
    /// The resource model of `registry` over `store`.
    pub fn new(store: Store, registry: Registry) -> Self {
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        Self {
            store,
            registry: Arc::new(registry),
            feed,
            writing: Arc::new(Mutex::new(())),
            cache: Arc::new(Cache::default()),
        }
    }

    /// Sends a committed change to the cache and the feed (under the
    /// writing lock, so in version order).
    fn publish(&self, event: ResourceEvent) {
        self.cache.apply(&event);
        let _ = self.feed.send(Arc::new(Change::new(event)));
    }

    /// The kinds served.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The store underneath (for the change log).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Reads every kind of the registry into the object cache (what
    /// `oxflow up` does at start, so the first list is as fast as the
    /// next).
    pub async fn warm(&self) -> Result<()> {
        for kind in self.registry.kinds() {
            self.cache
                .snapshot(&self.store, kind.group, kind.kind, None)
                .await?;
        }
        Ok(())
    }

    /// How many watches (and other subscribers) are open: what an
    /// abandoned watch must give back.
    pub fn watchers(&self) -> usize {
        self.feed.receiver_count()
    }

    /// Every committed change from now on, in resourceVersion order.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.feed.subscribe()
    }

    fn key(kind: &Kind, namespace: Option<&str>, name: &str) -> ResourceKey {
        ResourceKey {
            group: kind.group.to_owned(),
            kind: kind.kind.to_owned(),
            namespace: if kind.namespaced {
                namespace.unwrap_or("").to_owned()
            } else {
                String::new()
            },
            name: name.to_owned(),
        }
    }

    fn what(kind: &Kind, name: &str) -> String {
        format!("{} {name:?}", kind.resource_name())
    }

    fn store_err(kind: &'static Kind, name: &str, e: StoreError) -> ResourceError {
        match e {
            StoreError::AlreadyExists { .. } => ResourceError::AlreadyExists {
                kind,
                name: name.to_owned(),
            },
            StoreError::Stale { .. } => ResourceError::Conflict {
                kind,
                name: name.to_owned(),
            },
            StoreError::NotFound { .. } => ResourceError::NotFound {
                kind,
                name: name.to_owned(),
            },
            StoreError::Fenced { lease, token, .. } => ResourceError::Fenced { lease, token },
            other => ResourceError::Store(other),
        }
    }

    /// The object, or `NotFound`.
    pub async fn get(
        &self,
        kind: &'static Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value> {
        Ok(self.get_stored(kind, namespace, name).await?.object)
    }

    /// The object as a reconcile reads it: the object cache's copy when
    /// its kind is cached (no read; current with this process's writes and
    /// with every list, which catches the cache up), the store's otherwise.
    /// Writes based on it stay conditional on its resourceVersion.
    pub async fn get_cached(
        &self,
        kind: &'static Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value> {
        let key = Self::key(kind, namespace, name);
        if let Some(c) = self
            .cache
            .get(&key.group, &key.kind, &key.namespace, &key.name)
        {
            return Ok(c.object.clone());
        }
        self.get(kind, namespace, name).await
    }

    async fn get_stored(
        &self,
        kind: &'static Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<StoredResource> {
        self.store
            .get_resource(&Self::key(kind, namespace, name))
            .await?
            .ok_or_else(|| ResourceError::NotFound {
                kind,
                name: name.to_owned(),
            })
    }

    /// The objects of a kind (in `namespace`, or all) that the selectors
    /// match, by namespace and name, and the resourceVersion the list is a
    /// snapshot of.
    pub async fn list(
        &self,
        kind: &'static Kind,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Result<(Vec<Value>, i64)> {
        let (items, rv) = self.list_cached(kind, namespace, labels, fields).await?;
        Ok((items.iter().map(|c| c.object.clone()).collect(), rv))
    }

    /// [`Self::list`] as the cache holds the objects, parsed and serialized
    /// (what the API renders lists from without copying them).
    pub async fn list_cached(
        &self,
        kind: &'static Kind,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Result<(Vec<Arc<Cached>>, i64)> {
        let ns = if kind.namespaced { namespace } else { None };
        let snap = self
            .cache
            .snapshot(&self.store, kind.group, kind.kind, ns)
            .await?;
        let items = snap
            .objects
            .into_iter()
            .filter(|c| matches(&c.object, labels, fields))
            .collect();
        Ok((items, snap.rv))
    }

    /// Creates an object (POST).
    pub async fn create(
        &self,
        kind: &'static Kind,
        namespace: Option<&str>,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Written> {
        let mut warnings = Vec::new();
        let (mut object, mut meta) = self.admit(kind, namespace, body, opts, &mut warnings)?;
        if meta.name.is_empty() {
            match meta.generate_name.as_deref().filter(|g| !g.is_empty()) {
                Some(prefix) => meta.name = format!("{prefix}{}", random_suffix()),
                None => {
                    return Err(ResourceError::Invalid {
                        kind,
                        name: String::new(),
                        causes: vec![FieldError {
                            field: "metadata.name".into(),
                            message: "name or generateName is required".into(),
                            reason: "FieldValueRequired",
                        }],
                    });
                }
            }
        }
        check_name(kind, &meta.name)?;
        if meta
            .resource_version
            .as_deref()
            .is_some_and(|r| !r.is_empty())
        {
            return Err(ResourceError::BadRequest {
                message: "resourceVersion should not be set on objects to be created".into(),
                causes: vec![],
            });
        }
        let uid = uuid::Uuid::new_v4().to_string();
        meta.uid = Some(uid.clone());
        meta.creation_timestamp = Some(Timestamp::now().to_rfc3339());
        meta.generation = 1;
        meta.deletion_timestamp = None;
        meta.resource_version = None;
        let status = if opts.with_status {
            object.get("status").cloned().filter(|s| !s.is_null())
        } else {
            None
        };
        if kind.status_subresource
            && let Some(m) = object.as_object_mut()
        {
            m.remove("status");
        }
        let name = meta.name.clone();
        let object = assemble(kind, &meta, object);
        let mut object = validate(kind, &name, object)?;
        if let Some(s) = status {
            object["status"] = s;
        }
        if opts.dry_run {
            return Ok(Written {
                object,
                warnings,
                created: true,
            });
        }
        let key = Self::key(kind, meta.namespace.as_deref(), &name);
        let _writing = self.writing.lock().await;
        let (stored, event) = self
            .store
            .create_resource_fenced(
                &key,
                &uid,
                1,
                object,
                &Self::what(kind, &name),
                opts.fence.as_ref(),
            )
            .await
            .map_err(|e| Self::store_err(kind, &name, e))?;
        self.publish(event);
        debug!(kind = kind.kind, name = %name, "Object created.");
        Ok(Written {
            object: stored.object,
            warnings,
            created: true,
        })
    }

    /// Stores an object carried over from an older schema as it was: its
    /// uid, generation, creation time and status are kept (a data
    /// directory's migration). `AlreadyExists` when it was carried over
    /// before, so a migration interrupted by a crash can run again.
    pub async fn restore(&self, kind: &'static Kind, object: Value) -> Result<Value> {
        let name_of = |o: &Value| {
            o.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let mut meta =
            parse_meta(object.get("metadata")).map_err(|causes| ResourceError::Invalid {
                kind,
                name: name_of(&object),
                causes,
            })?;
        check_name(kind, &meta.name)?;
        let uid = meta
            .uid
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        meta.uid = Some(uid.clone());
        meta.generation = meta.generation.max(1);
        meta.resource_version = None;
        meta.deletion_timestamp = None;
        if meta.creation_timestamp.is_none() {
            meta.creation_timestamp = Some(Timestamp::now().to_rfc3339());
        }
        let status = object.get("status").cloned();
        let name = meta.name.clone();
        let mut object = validate(kind, &name, assemble(kind, &meta, object))?;
        if let Some(s) = status.filter(|s| !s.is_null()) {
            object["status"] = s;
        }
        let key = Self::key(kind, meta.namespace.as_deref(), &name);
        let _writing = self.writing.lock().await;
        let (stored, event) = self
            .store
            .create_resource(
                &key,
                &uid,
                meta.generation,
                object,
                &Self::what(kind, &name),
            )
            .await
            .map_err(|e| Self::store_err(kind, &name, e))?;
        self.publish(event);
        Ok(stored.object)
    }

    /// Replaces an object (PUT): its `metadata.resourceVersion`, when
    /// given, must be the stored one.
    pub async fn replace(
        &self,
        kind: &'static Kind,
        namespace: Option<&str>,
        name: &str,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Written> {
        // The API server compares the names before it reads the object.
        if let Some(own) = body.pointer("/metadata/name").and_then(Value::as_str)
            && !own.is_empty()
            && own != name
        {
            return Err(ResourceError::BadRequest {
                message: format!(
                    "the name of the object ({own}) does not match the name on the URL ({name})"
                ),
                causes: vec![],
            });
        }
        // Without a resourceVersion a replace is unconditional: a write
        // that lands between the read and this one (a controller's status)
        // is read again and the replace retried, as the API server's
        // GuaranteedUpdate does.
        let unconditional = body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        let mut tries = 0;
        loop {
            let existing = self.get_stored(kind, namespace, name).await?;
            match self
                .update_from(kind, namespace, name, existing, body.clone(), opts, true)
                .await
            {
                Err(ResourceError::Conflict { .. }) if unconditional && tries < 8 => tries += 1,
                other => return other,
            }
        }
    }

    /// The update path shared by replace and patch: `body` is the whole
    /// new object; `precondition` makes its resourceVersion a condition.
    #[allow(clippy::too_many_arguments)]
    async fn update_from(
        &self,
        kind: &'static Kind,
        namespace: Option<&str>,
        name: &str,
        existing: StoredResource,
        body: Value,
        opts: &WriteOptions,
        precondition: bool,
    ) -> Result<Written> {
        let mut warnings = Vec::new();
        let (mut object, mut meta) = self.admit(kind, namespace, body, opts, &mut warnings)?;
        if !meta.name.is_empty() && meta.name != name {
            return Err(ResourceError::BadRequest {
                message: format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    meta.name
                ),
                causes: vec![],
            });
        }
        meta.name = name.to_owned();
        let old_meta = parse_meta(existing.object.get("metadata")).unwrap_or_default();
        if precondition
            && let Some(rv) = meta.resource_version.as_deref().filter(|r| !r.is_empty())
            && rv != existing.resource_version.to_string()
        {
            return Err(ResourceError::Conflict {
                kind,
                name: name.to_owned(),
            });
        }
        meta.uid = old_meta.uid.clone();
        meta.creation_timestamp = old_meta.creation_timestamp.clone();
        meta.deletion_timestamp = old_meta.deletion_timestamp.clone();
        meta.resource_version = None;
        if kind.status_subresource
            && let Some(m) = object.as_object_mut()
        {
            match existing.object.get("status") {
                Some(s) => {
                    m.insert("status".into(), s.clone());
                }
                None => {
                    m.remove("status");
                }
            }
        }
        // Validation defaults the body, so the generation is decided on
        // the defaulted object: re-applying what was applied is no change.
        meta.generation = existing.generation;
        let mut object = validate(kind, name, assemble(kind, &meta, object))?;
        if let Some(check) = kind.validate_update {
            check(&existing.object, &object).map_err(|causes| ResourceError::Invalid {
                kind,
                name: name.to_owned(),
                causes,
            })?;
        }
        let generation = if body_of(&object) == body_of(&existing.object) {
            existing.generation
        } else {
            existing.generation + 1
        };
        object["metadata"]["generation"] = Value::from(generation);
        let mut unchanged = object.clone();
        unchanged["metadata"]["resourceVersion"] =
            existing.object["metadata"]["resourceVersion"].clone();
        if unchanged == existing.object {
            // Nothing changed: no write, no new version (as the API server).
            return Ok(Written {
                object: existing.object,
                warnings,
                created: false,
            });
        }
        if opts.dry_run {
            return Ok(Written {
                object,
                warnings,
                created: false,
            });
        }
        let finalize = meta.deletion_timestamp.is_some() && meta.finalizers.is_empty();
        let stored = self
            .write_update(kind, name, &existing, generation, object, None)
            .await?;
        if finalize {
            self.remove(kind, &stored, Propagation::Background).await?;
        }
        Ok(Written {
            object: stored.object,
            warnings,
            created: false,
        })
    }

    async fn write_update(
        &self,
        kind: &'static Kind,
        name: &str,
        existing: &StoredResource,
        generation: i64,
        object: Value,
        fence: Option<&Fence>,
    ) -> Result<StoredResource> {
        let _writing = self.writing.lock().await;
        let (stored, event) = self
            .store
            .update_resource(
                &existing.key,
                existing.resource_version,
                generation,
                object,
                &Self::what(kind, name),
                fence,
            )
            .await
            .map_err(|e| Self::store_err(kind, name, e))?;
        self.publish(event);
        Ok(stored)
    }

    /// Writes the status subresource (PUT `/status`): only `status`
    /// changes.
    pub async fn replace_status(
        &self,
        kind: &'static Kind,
        namespace: Option<&str>,
        name: &str,
        body: Value,
    ) -> Result<Written> {
        self.write_status(kind, namespace, name, body, None).await
    }

    /// [`Self::replace_status`] by a controller under its lease: refused
    /// ([`ResourceError::Fenced`]) once another process holds the lease.
    pub async fn replace_status_fenced(
        &self,
        kind: &'static Kind,
        namespace: Option<&str>,
        name: &str,
        body: Value,
        fence: &Fence,
    ) -> Result<Written> {
        self.write_status(kind, namespace, name, body, Some(fence))
            .await
    }

    async fn write_status(
        &self,
        kind: &'static Kind,
        namespace: Option<&str>,
        name: &str,
        body: Value,
        fence: Option<&Fence>,
    ) -> Result<Written> {
        // The cached object first; the store's when the cache turns out to
        // be behind (another process wrote the object).
        for fresh in [false, true] {
            let existing = if fresh {
                self.get_stored(kind, namespace, name).await?
            } else {
                self.get_for_update(kind, namespace, name).await?
            };
            if let Some(rv) = body
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
                && rv != existing.resource_version.to_string()
            {
                if fresh {
                    return Err(ResourceError::Conflict {
                        kind,
                        name: name.to_owned(),
                    });
                }
                continue;
            }
            let mut object = existing.object.clone();
            match body.get("status") {
                Some(s) if !s.is_null() => object["status"] = s.clone(),
                _ => {
                    if let Some(m) = object.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            if object == existing.object {
                return Ok(Written {
                    object,
                    warnings: vec![],
                    created: false,
                });
            }
            match self
                .write_update(kind, name, &existing, existing.generation, object, fence)
                .await
            {
                Err(ResourceError::Conflict { .. }) if !fresh => continue,
                Err(e) => return Err(e),
                Ok(stored) => {
                    return Ok(Written {
                        object: stored.object,
                        warnings: vec![],
                        created: false,
                    });
                }
            }
        }
        Err(ResourceError::Conflict {
            kind,
            name: name.to_owned(),
        })
    }

    /// The object to base a write conditional on its resourceVersion on:
    /// the cache's copy when its kind is cached (no read), else the
    /// store's. A cached copy behind another process's write makes that
    /// write fail with `Conflict`, and the caller reads the store then.
    async fn get_for_update(
        &self,
        kind: &'static Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<StoredResource> {
        let key = Self::key(kind, namespace, name);
        if let Some(c) = self
            .cache
            .get(&key.group, &key.kind, &key.namespace, &key.name)
        {
            let meta = &c.object["metadata"];
            if let Some(uid) = meta["uid"].as_str() {
                return Ok(StoredResource {
                    uid: uid.to_owned(),
                    resource_version: c.rv,
                    generation: meta["generation"].as_i64().unwrap_or(1),
                    object: c.object.clone(),
                    key,
                });
            }
        }
        self.get_stored(kind, namespace, name).await
    }

    /// A controller's status for what it observed: written only while the
    /// object is the one with `uid` at `generation`, so a reconcile that
    /// finished an older spec (or a deleted and re-created object) cannot
    /// overwrite the status of a newer one. Returns whether it was written
    /// (or already equal); `false` means a newer reconcile will write.
    pub async fn write_observed_status(
        &self,
        kind: &'static Kind,
        namespace: Option<&str>,
        name: &str,
        observed: (&str, i64),
        status: &Value,
        fence: Option<&Fence>,
    ) -> Result<bool> {
        let (uid, generation) = observed;
        // A concurrent write to the object (a label, a finalizer) moves its
        // resourceVersion without changing what was observed: try again.
        // The cached object first (no read); the store's after a conflict
        // or when the cached one is not the object observed.
        for attempt in 0..6 {
            let fresh = attempt > 0;
            let existing = match if fresh {
                self.get_stored(kind, namespace, name).await
            } else {
                self.get_for_update(kind, namespace, name).await
            } {
                Ok(e) => e,
                Err(ResourceError::NotFound { .. }) => return Ok(false),
                Err(e) => return Err(e),
            };
            if existing.uid != uid || existing.generation != generation {
                if fresh {
                    return Ok(false);
                }
                continue;
            }
            if existing.object.get("status") == Some(status) {
                return Ok(true);
            }
            let mut object = existing.object.clone();
            object["status"] = status.clone();
            match self
                .write_update(kind, name, &existing, existing.generation, object, fence)
                .await
            {
                Ok(_) => return Ok(true),
                Err(ResourceError::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// Patches an object (PATCH), or its status (`status: true`). A patch
    /// that carries `metadata.resourceVersion` applies only to that
    /// version; others are retried on a concurrent write, as the API
    /// server does.
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        kind: &'static Kind,
        namespace: Option<&str>,
        name: &str,
        patch_type: PatchType,
        patch: Value,
        status: bool,
        opts: &WriteOptions,
    ) -> Result<Written> {
        let patch_type = match patch_type {
            PatchType::StrategicMerge if kind.builtin => PatchType::Merge,
            PatchType::StrategicMerge => {
                return Err(ResourceError::UnsupportedMediaType(format!(
                    "the body of the request was in an unknown format - accepted media types include: \
                     application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml \
                     (strategic merge patch is not supported for {})",
                    kind.resource_name()
                )));
            }
            other => other,
        };
        if matches!(patch_type, PatchType::Merge | PatchType::Apply) {
            check_merge_patch(&patch).map_err(|e| ResourceError::BadRequest {
                message: e.to_string(),
                causes: vec![],
            })?;
        }
        let pinned = patch
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|r| !r.is_empty());
        let mut attempts = 0;
        loop {
            attempts += 1;
            let existing = match self.get_stored(kind, namespace, name).await {
                Ok(e) => e,
                Err(ResourceError::NotFound { .. })
                    if patch_type == PatchType::Apply && !status =>
                {
                    let mut written = self.create(kind, namespace, patch.clone(), opts).await?;
                    written.created = true;
                    return Ok(written);
                }
                Err(e) => return Err(e),
            };
            let mut object = existing.object.clone();
            match patch_type {
                PatchType::Json => {
                    json_patch(&mut object, &patch).map_err(|e| ResourceError::BadRequest {
                        message: e.to_string(),
                        causes: vec![],
                    })?
                }
                _ => merge_patch(&mut object, &patch),
            }
            let result = if status {
                self.replace_status(kind, namespace, name, object).await
            } else {
                self.update_from(kind, namespace, name, existing, object, opts, true)
                    .await
            };
            match result {
                Err(ResourceError::Conflict { .. }) if !pinned && attempts < 8 => continue,
                other => return other,
            }
        }
    }

    /// Deletes an object (DELETE). Returns the object as it was removed, or
    /// as it now stands marked for deletion (finalizers, foreground).
    pub async fn delete(
        &self,
        kind: &'static Kind,
        namespace: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value> {
        let existing = self.get_stored(kind, namespace, name).await?;
        if let Some(rv) = opts.resource_version.as_deref().filter(|r| !r.is_empty())
            && rv != existing.resource_version.to_string()
        {
            return Err(ResourceError::Conflict {
                kind,
                name: name.to_owned(),
            });
        }
        if let Some(uid) = opts.uid.as_deref().filter(|u| !u.is_empty())
            && uid != existing.uid
        {
            return Err(ResourceError::Conflict {
                kind,
                name: name.to_owned(),
            });
        }
        if opts.dry_run {
            return Ok(existing.object);
        }
        let meta = parse_meta(existing.object.get("metadata")).unwrap_or_default();
        let foreground = opts.propagation == Propagation::Foreground;
        if meta.finalizers.is_empty() && !foreground {
            return Ok(self.remove(kind, &existing, opts.propagation).await?.object);
        }
        // Marked: stays with a deletionTimestamp until its finalizers go.
        let mut object = existing.object.clone();
        if meta.deletion_timestamp.is_none() {
            object["metadata"]["deletionTimestamp"] = Value::String(Timestamp::now().to_rfc3339());
        }
        if foreground {
            let list = object["metadata"].as_object_mut().map(|m| {
                m.entry("finalizers")
                    .or_insert_with(|| Value::Array(vec![]))
            });
            if let Some(Value::Array(list)) = list
                && !list.iter().any(|f| f == FOREGROUND)
            {
                list.push(Value::String(FOREGROUND.into()));
            }
        }
        let marked = if object == existing.object {
            existing
        } else {
            self.write_update(kind, name, &existing, existing.generation, object, None)
                .await?
        };
        if !foreground {
            return Ok(marked.object);
        }
        // Foreground: what it owns goes first, then its own finalizer.
        self.delete_dependents(&marked.uid, Propagation::Foreground)
            .await?;
        let mut object = marked.object.clone();
        if let Some(Value::Array(list)) = object["metadata"].get_mut("finalizers") {
            list.retain(|f| f != FOREGROUND);
            if list.is_empty()
                && let Some(m) = object["metadata"].as_object_mut()
            {
                m.remove("finalizers");
            }
        }
        let stored = self
            .write_update(kind, name, &marked, marked.generation, object, None)
            .await?;
        let left = parse_meta(stored.object.get("metadata")).unwrap_or_default();
        if left.finalizers.is_empty() {
            return Ok(self
                .remove(kind, &stored, Propagation::Background)
                .await?
                .object);
        }
        Ok(stored.object)
    }

    /// Removes the row, then deals with what the object owned.
    async fn remove(
        &self,
        kind: &'static Kind,
        existing: &StoredResource,
        propagation: Propagation,
    ) -> Result<StoredResource> {
        let name = existing.key.name.clone();
        let removed = {
            let _writing = self.writing.lock().await;
            let removed = self
                .store
                .delete_resource(
                    &existing.key,
                    Some(existing.resource_version),
                    &Self::what(kind, &name),
                )
                .await
                .map_err(|e| Self::store_err(kind, &name, e))?;
            let Some((stored, event)) = removed else {
                return Err(ResourceError::NotFound { kind, name });
            };
            self.publish(event);
            stored
        };
        match propagation {
            Propagation::Orphan => self.orphan_dependents(&removed.uid).await?,
            p => self.delete_dependents(&removed.uid, p).await?,
        }
        Ok(removed)
    }

    /// Deletes every object owned by `uid` (the garbage collector's work).
    fn delete_dependents<'a>(
        &'a self,
        uid: &'a str,
        propagation: Propagation,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(async move {
            for dep in self.store.resources_owned_by(uid).await? {
                let Some(kind) = self.registry.by_kind(&dep.key.group, &dep.key.kind) else {
                    continue;
                };
                let ns = (!dep.key.namespace.is_empty()).then_some(dep.key.namespace.as_str());
                let opts = DeleteOptions {
                    propagation,
                    ..Default::default()
                };
                match self.delete(kind, ns, &dep.key.name, &opts).await {
                    Ok(_) | Err(ResourceError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
    }

    /// Takes the owner reference to `uid` off every object that has it.
    async fn orphan_dependents(&self, uid: &str) -> Result<()> {
        for dep in self.store.resources_owned_by(uid).await? {
            let Some(kind) = self.registry.by_kind(&dep.key.group, &dep.key.kind) else {
                continue;
            };
            let mut object = dep.object.clone();
            if let Some(Value::Array(refs)) = object["metadata"].get_mut("ownerReferences") {
                refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
                if refs.is_empty()
                    && let Some(m) = object["metadata"].as_object_mut()
                {
                    m.remove("ownerReferences");
                }
            }
            match self
                .write_update(
                    kind,
                    &dep.key.name.clone(),
                    &dep,
                    dep.generation,
                    object,
                    None,
                )
                .await
            {
                Ok(_)
                | Err(ResourceError::NotFound { .. })
                | Err(ResourceError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Checks `apiVersion`, `kind`, top-level and metadata fields and the
    /// namespace of an incoming object; returns the object without
    /// unknown fields (non-strict) and its metadata.
    fn admit(
        &self,
        kind: &'static Kind,
        namespace: Option<&str>,
        body: Value,
        opts: &WriteOptions,
        warnings: &mut Vec<String>,
    ) -> Result<(Value, oxflow_core::object::ObjectMeta)> {
        let Value::Object(mut map) = body else {
            return Err(ResourceError::BadRequest {
                message: "the request body is not a JSON object".into(),
                causes: vec![],
            });
        };
        // A null field is an absent one (the Python client sends them).
        map.retain(|_, v| !v.is_null());
        let api_version = kind.api_version();
        if let Some(v) = map.get("apiVersion").and_then(Value::as_str)
            && v != api_version
        {
            return Err(ResourceError::BadRequest {
                message: format!(
                    "the API version in the data ({v}) does not match the expected API version ({api_version})"
                ),
                causes: vec![],
            });
        }
        if let Some(k) = map.get("kind").and_then(Value::as_str)
            && k != kind.kind
        {
            return Err(ResourceError::BadRequest {
                message: format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    kind.kind
                ),
                causes: vec![],
            });
        }
        let mut unknown: Vec<FieldError> = map
            .keys()
            .filter(|k| {
                !matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                    && !kind.fields.contains(&k.as_str())
            })
            .map(|k| FieldError::unknown(k.clone()))
            .collect();
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            meta.retain(|_, v| !v.is_null());
            for k in meta.keys() {
                if !META_FIELDS.contains(&k.as_str()) {
                    unknown.push(FieldError::unknown(format!("metadata.{k}")));
                }
            }
        }
        if !unknown.is_empty() {
            if opts.validation == FieldValidation::Strict {
                return Err(ResourceError::BadRequest {
                    message: format!(
                        "strict decoding error: {}",
                        unknown
                            .iter()
                            .map(|e| e.message.clone())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    causes: unknown,
                });
            }
            for e in &unknown {
                if let Some(rest) = e.field.strip_prefix("metadata.") {
                    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
                        meta.remove(rest);
                    }
                } else {
                    map.remove(&e.field);
                }
                if opts.validation == FieldValidation::Warn {
                    warnings.push(e.message.clone());
                }
            }
        }
        let mut meta =
            parse_meta(map.get("metadata")).map_err(|causes| ResourceError::Invalid {
                kind,
                name: String::new(),
                causes,
            })?;
        if kind.namespaced {
            let ns = namespace.unwrap_or("");
            match meta.namespace.as_deref() {
                Some(m) if !m.is_empty() && m != ns => {
                    return Err(ResourceError::BadRequest {
                        message: "the namespace of the provided object does not match the namespace sent on the request".into(),
                        causes: vec![],
                    });
                }
                _ => meta.namespace = Some(ns.to_owned()),
            }
        } else {
            meta.namespace = None;
        }
        map.remove("metadata");
        Ok((Value::Object(map), meta))
    }
}

/// The metadata fields Kubernetes defines (anything else is unknown).
const META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
    "selfLink",
];

/// `apiVersion`, `kind`, `metadata`, then the body's fields in their order.
fn assemble(kind: &Kind, meta: &oxflow_core::object::ObjectMeta, body: Value) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(kind.api_version()));
    out.insert("kind".into(), Value::String(kind.kind.to_owned()));
    out.insert(
        "metadata".into(),
        serde_json::to_value(meta).unwrap_or(Value::Null),
    );
    if let Value::Object(m) = body {
        for (k, v) in m {
            if !matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                out.insert(k, v);
            }
        }
    }
    Value::Object(out)
}

fn validate(kind: &'static Kind, name: &str, mut object: Value) -> Result<Value> {
    (kind.validate)(&mut object).map_err(|causes| ResourceError::Invalid {
        kind,
        name: name.to_owned(),
        causes,
    })?;
    Ok(object)
}

/// What generation tracks: everything but `metadata` and `status`.
fn body_of(object: &Value) -> Value {
    let mut m = object.as_object().cloned().unwrap_or_default();
    m.remove("metadata");
    m.remove("status");
    Value::Object(m)
}

/// A DNS-1123 subdomain, as Kubernetes requires of most names.
fn check_name(kind: &'static Kind, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(ResourceError::Invalid {
            kind,
            name: name.to_owned(),
            causes: vec![FieldError::invalid(
                "metadata.name",
                format!(
                    "{name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
                     '-' or '.', and must start and end with an alphanumeric character"
                ),
            )],
        })
    }
}

/// Five characters for `generateName`, as the API server adds them.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[..5]
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// Whether `object` matches the selectors.
pub fn matches(object: &Value, labels: &LabelSelector, fields: &FieldSelector) -> bool {
    if !labels.is_empty() {
        let map = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        if !labels.matches(&map) {
            return false;
        }
    }
    fields.matches(|field| {
        let pointer = format!("/{}", field.replace('.', "/"));
        object.pointer(&pointer).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    })
}
