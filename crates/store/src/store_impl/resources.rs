//! The one resource table: every Kubernetes-shaped object, keyed by
//! (group, kind, namespace, name), with its resourceVersion from one
//! monotonic sequence, and the change log watches resume from.
//!
//! The store knows nothing of kinds: the caller (the resource layer) has
//! validated and completed the object; the store only makes each write
//! atomic with its version and its change-log entry, and turns a stale
//! `resourceVersion` into [`StoreError::Stale`].

use serde_json::Value;
use sqlx::any::AnyRow;

use super::{DbContext, Reader, is_unique_violation};
use crate::{Dialect, Fence, Result, Store, StoreError};

/// Change-log entries kept (older ones are trimmed; a watch from before
/// them is answered `410 Expired`, as etcd's compaction does).
const KEEP_EVENTS: i64 = 100_000;

/// Which object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    /// API group (`""` for the core group).
    pub group: String,
    /// Kind (`Experiment`).
    pub kind: String,
    /// Namespace (`""` for cluster-scoped kinds).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ResourceKey {
    /// `kind ns/name`, for messages.
    pub fn describe(&self) -> String {
        if self.namespace.is_empty() {
            format!("{} {:?}", self.kind, self.name)
        } else {
            format!("{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// An object as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResource {
    /// Its key.
    pub key: ResourceKey,
    /// metadata.uid.
    pub uid: String,
    /// metadata.resourceVersion.
    pub resource_version: i64,
    /// metadata.generation.
    pub generation: i64,
    /// The whole object, metadata.resourceVersion included.
    pub object: Value,
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl WatchEventType {
    /// As a watch event's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ADDED" => Self::Added,
            "MODIFIED" => Self::Modified,
            "DELETED" => Self::Deleted,
            _ => return None,
        })
    }
}

/// One entry of the change log.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceEvent {
    /// The version the write made.
    pub resource_version: i64,
    /// What it did.
    pub event_type: WatchEventType,
    /// Which object.
    pub key: ResourceKey,
    /// The object after the write (for a delete: its last state, with the
    /// delete's version).
    pub object: Value,
}

fn resource_from_row(row: &AnyRow) -> Result<StoredResource> {
    let r = Reader::keyed(row, "resource", "name")?;
    Ok(StoredResource {
        key: ResourceKey {
            group: r.get("api_group")?,
            kind: r.get("kind")?,
            namespace: r.get("namespace")?,
            name: r.get("name")?,
        },
        uid: r.get("uid")?,
        resource_version: r.get("resource_version")?,
        generation: r.get("generation")?,
        object: r.json("object")?,
    })
}

fn event_from_row(row: &AnyRow) -> Result<ResourceEvent> {
    let r = Reader::keyed(row, "resource event", "name")?;
    let t: String = r.get("type")?;
    Ok(ResourceEvent {
        resource_version: r.get("resource_version")?,
        event_type: WatchEventType::parse(&t)
            .ok_or_else(|| r.corrupt(format!("unknown event type {t:?}")))?,
        key: ResourceKey {
            group: r.get("api_group")?,
            kind: r.get("kind")?,
            namespace: r.get("namespace")?,
            name: r.get("name")?,
        },
        object: r.json("object")?,
    })
}

/// `' uid1 uid2 '` of the object's ownerReferences.
fn owner_uids(object: &Value) -> String {
    let mut out = String::from(" ");
    if let Some(refs) = object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
    {
        for r in refs {
            if let Some(uid) = r.get("uid").and_then(Value::as_str) {
                out.push_str(uid);
                out.push(' ');
            }
        }
    }
    out
}

fn set_version(object: &mut Value, rv: i64) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

macro_rules! resource_columns {
    () => {
        "api_group, kind, namespace, name, uid, resource_version, generation, owner_uids, object"
    };
}

impl Store {
    /// The next resourceVersion, taken inside `tx` (writers queue here, so
    /// versions follow commit order).
    async fn next_version(tx: &mut sqlx::Transaction<'_, sqlx::Any>, what: &str) -> Result<i64> {
        let row = sqlx::query(
            "UPDATE resource_version SET value = value + 1 WHERE id = 1 RETURNING value",
        )
        .fetch_one(&mut **tx)
        .await
        .context(|| format!("taking a resource version for {what}"))?;
        Reader::new(&row, "resource version".into()).get("value")
    }

    async fn log_event(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        rv: i64,
        event_type: WatchEventType,
        key: &ResourceKey,
        object: &Value,
    ) -> Result<()> {
        let what = || format!("recording the change to {}", key.describe());
        sqlx::query(
            "INSERT INTO resource_events (resource_version, api_group, kind, namespace, name, type, object) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(rv)
        .bind(&key.group)
        .bind(&key.kind)
        .bind(&key.namespace)
        .bind(&key.name)
        .bind(event_type.as_str())
        .bind(object.to_string())
        .execute(&mut **tx)
        .await
        .context(what)?;
        // Trim now and then rather than on every write.
        if rv % 1024 == 0 {
            sqlx::query("DELETE FROM resource_events WHERE resource_version <= $1")
                .bind(rv - KEEP_EVENTS)
                .execute(&mut **tx)
                .await
                .context(what)?;
        }
        Ok(())
    }

    /// Stores a new object under `key` (its metadata complete but for the
    /// resourceVersion, which this sets). [`StoreError::AlreadyExists`] if
    /// the key is taken.
    pub async fn create_resource(
        &self,
        key: &ResourceKey,
        uid: &str,
        generation: i64,
        object: Value,
        what: &str,
    ) -> Result<(StoredResource, ResourceEvent)> {
        self.create_resource_fenced(key, uid, generation, object, what, None)
            .await
    }

    /// [`Self::create_resource`] by a controller under its lease: with a
    /// `fence`, only while that lease holds, checked in the same statement
    /// ([`StoreError::Fenced`] otherwise).
    pub async fn create_resource_fenced(
        &self,
        key: &ResourceKey,
        uid: &str,
        generation: i64,
        mut object: Value,
        what: &str,
        fence: Option<&Fence>,
    ) -> Result<(StoredResource, ResourceEvent)> {
        let context = || format!("creating {}", key.describe());
        let mut tx = self.pool.begin().await.context(context)?;
        let rv = Self::next_version(&mut tx, what).await?;
        set_version(&mut object, rv);
        let (lease, holder, token) = match fence {
            Some(f) => (f.lease.as_str(), f.holder.as_str(), f.token),
            None => ("", "", 0),
        };
        let inserted = sqlx::query(concat!(
            "INSERT INTO resources (",
            resource_columns!(),
            ") SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
             WHERE ($10 = '' OR EXISTS (SELECT 1 FROM leases WHERE leases.name = $10 AND leases.holder = $11 \
                  AND leases.token = $12 AND leases.expires_at > $13))"
        ))
        .bind(&key.group)
        .bind(&key.kind)
        .bind(&key.namespace)
        .bind(&key.name)
        .bind(uid)
        .bind(rv)
        .bind(generation)
        .bind(owner_uids(&object))
        .bind(object.to_string())
        .bind(lease)
        .bind(holder)
        .bind(token)
        .bind(oxflow_core::Timestamp::now().millis())
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(done) if done.rows_affected() == 0 => {
                return Err(StoreError::Fenced {
                    what: what.to_owned(),
                    lease: lease.to_owned(),
                    token,
                });
            }
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::AlreadyExists {
                    what: what.to_owned(),
                });
            }
            Err(e) => return Err(e).context(context),
        }
        Self::log_event(&mut tx, rv, WatchEventType::Added, key, &object).await?;
        tx.commit().await.context(context)?;
        let stored = StoredResource {
            key: key.clone(),
            uid: uid.to_owned(),
            resource_version: rv,
            generation,
            object: object.clone(),
        };
        Ok((
            stored,
            ResourceEvent {
                resource_version: rv,
                event_type: WatchEventType::Added,
                key: key.clone(),
                object,
            },
        ))
    }

    /// Replaces the object under `key` if its resourceVersion is still
    /// `expected`: [`StoreError::Stale`] if it changed since,
    /// [`StoreError::NotFound`] if it is gone. With a `fence`, only while
    /// that lease holds, checked in the same statement
    /// ([`StoreError::Fenced`] otherwise).
    pub async fn update_resource(
        &self,
        key: &ResourceKey,
        expected: i64,
        generation: i64,
        mut object: Value,
        what: &str,
        fence: Option<&Fence>,
    ) -> Result<(StoredResource, ResourceEvent)> {
        let context = || format!("updating {}", key.describe());
        let mut tx = self.pool.begin().await.context(context)?;
        let rv = Self::next_version(&mut tx, what).await?;
        set_version(&mut object, rv);
        let (lease, holder, token) = match fence {
            Some(f) => (f.lease.as_str(), f.holder.as_str(), f.token),
            None => ("", "", 0),
        };
        let row = sqlx::query(concat!(
            "UPDATE resources SET resource_version = $5, generation = $6, owner_uids = $7, object = $8 \
             WHERE api_group = $1 AND kind = $2 AND namespace = $3 AND name = $4 AND resource_version = $9 \
             AND ($10 = '' OR EXISTS (SELECT 1 FROM leases WHERE leases.name = $10 AND leases.holder = $11 \
                  AND leases.token = $12 AND leases.expires_at > $13)) \
             RETURNING ",
            resource_columns!()
        ))
        .bind(&key.group)
        .bind(&key.kind)
        .bind(&key.namespace)
        .bind(&key.name)
        .bind(rv)
        .bind(generation)
        .bind(owner_uids(&object))
        .bind(object.to_string())
        .bind(expected)
        .bind(lease)
        .bind(holder)
        .bind(token)
        .bind(oxflow_core::Timestamp::now().millis())
        .fetch_optional(&mut *tx)
        .await
        .context(context)?;
        let Some(row) = row else {
            drop(tx);
            return Err(match self.get_resource(key).await? {
                Some(current) if current.resource_version == expected && fence.is_some() => {
                    StoreError::Fenced {
                        what: what.to_owned(),
                        lease: lease.to_owned(),
                        token,
                    }
                }
                Some(_) => StoreError::Stale {
                    what: what.to_owned(),
                },
                None => StoreError::NotFound {
                    kind: "resource",
                    id: what.to_owned(),
                },
            });
        };
        let stored = resource_from_row(&row)?;
        Self::log_event(&mut tx, rv, WatchEventType::Modified, key, &object).await?;
        tx.commit().await.context(context)?;
        Ok((
            stored,
            ResourceEvent {
                resource_version: rv,
                event_type: WatchEventType::Modified,
                key: key.clone(),
                object,
            },
        ))
    }

    /// Removes the object under `key` (only at resourceVersion `expected`,
    /// when given). `None` if there was none.
    pub async fn delete_resource(
        &self,
        key: &ResourceKey,
        expected: Option<i64>,
        what: &str,
    ) -> Result<Option<(StoredResource, ResourceEvent)>> {
        let context = || format!("deleting {}", key.describe());
        let mut tx = self.pool.begin().await.context(context)?;
        let rv = Self::next_version(&mut tx, what).await?;
        let row = sqlx::query(concat!(
            "DELETE FROM resources \
             WHERE api_group = $1 AND kind = $2 AND namespace = $3 AND name = $4 \
             AND ($5 < 0 OR resource_version = $5) RETURNING ",
            resource_columns!()
        ))
        .bind(&key.group)
        .bind(&key.kind)
        .bind(&key.namespace)
        .bind(&key.name)
        .bind(expected.unwrap_or(-1))
        .fetch_optional(&mut *tx)
        .await
        .context(context)?;
        let Some(row) = row else {
            drop(tx);
            return match (expected, self.get_resource(key).await?) {
                (Some(_), Some(_)) => Err(StoreError::Stale {
                    what: what.to_owned(),
                }),
                _ => Ok(None),
            };
        };
        let mut stored = resource_from_row(&row)?;
        set_version(&mut stored.object, rv);
        stored.resource_version = rv;
        Self::log_event(&mut tx, rv, WatchEventType::Deleted, key, &stored.object).await?;
        tx.commit().await.context(context)?;
        let event = ResourceEvent {
            resource_version: rv,
            event_type: WatchEventType::Deleted,
            key: key.clone(),
            object: stored.object.clone(),
        };
        Ok(Some((stored, event)))
    }

    /// The object under `key`.
    pub async fn get_resource(&self, key: &ResourceKey) -> Result<Option<StoredResource>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            resource_columns!(),
            " FROM resources WHERE api_group = $1 AND kind = $2 AND namespace = $3 AND name = $4"
        ))
        .bind(&key.group)
        .bind(&key.kind)
        .bind(&key.namespace)
        .bind(&key.name)
        .fetch_optional(&self.pool)
        .await
        .context(|| format!("reading {}", key.describe()))?;
        row.as_ref().map(resource_from_row).transpose()
    }

    /// Every object of a kind (in one namespace, or all), by namespace and
    /// name, with the resourceVersion they are a snapshot of.
    pub async fn list_resources(
        &self,
        group: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<(Vec<StoredResource>, i64)> {
        let context = || format!("listing {kind} objects");
        let mut tx = self.pool.begin().await.context(context)?;
        if self.dialect == Dialect::Postgres {
            // One snapshot for both statements (SQLite's read transaction
            // already is one).
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await
                .context(context)?;
        }
        let row = sqlx::query("SELECT value FROM resource_version WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .context(context)?;
        let rv: i64 = Reader::new(&row, "resource version".into()).get("value")?;
        let rows = match namespace {
            Some(ns) => sqlx::query(concat!(
                "SELECT ",
                resource_columns!(),
                " FROM resources WHERE api_group = $1 AND kind = $2 AND namespace = $3 \
                 ORDER BY namespace, name"
            ))
            .bind(group)
            .bind(kind)
            .bind(ns)
            .fetch_all(&mut *tx)
            .await
            .context(context)?,
            None => sqlx::query(concat!(
                "SELECT ",
                resource_columns!(),
                " FROM resources WHERE api_group = $1 AND kind = $2 ORDER BY namespace, name"
            ))
            .bind(group)
            .bind(kind)
            .fetch_all(&mut *tx)
            .await
            .context(context)?,
        };
        tx.commit().await.context(context)?;
        let items = rows
            .iter()
            .map(resource_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok((items, rv))
    }

    /// Every object that names `uid` among its owners.
    pub async fn resources_owned_by(&self, uid: &str) -> Result<Vec<StoredResource>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            resource_columns!(),
            " FROM resources WHERE owner_uids LIKE $1"
        ))
        .bind(format!("% {uid} %"))
        .fetch_all(&self.pool)
        .await
        .context(|| format!("finding the objects owned by {uid}"))?;
        rows.iter().map(resource_from_row).collect()
    }

    /// Change-log entries after version `after`, oldest first, at most
    /// `limit`.
    pub async fn resource_events_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ResourceEvent>> {
        let rows = sqlx::query(
            "SELECT resource_version, api_group, kind, namespace, name, type, object \
             FROM resource_events WHERE resource_version > $1 ORDER BY resource_version LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .context(|| format!("reading changes after version {after}"))?;
        rows.iter().map(event_from_row).collect()
    }

    /// Change-log entries of one kind after version `after`, oldest first,
    /// at most `limit` (an index serves it, however busy other kinds are).
    pub async fn resource_events_of_kind_after(
        &self,
        group: &str,
        kind: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ResourceEvent>> {
        let rows = sqlx::query(
            "SELECT resource_version, api_group, kind, namespace, name, type, object \
             FROM resource_events WHERE api_group = $1 AND kind = $2 AND resource_version > $3 \
             ORDER BY resource_version LIMIT $4",
        )
        .bind(group)
        .bind(kind)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .context(|| format!("reading {kind} changes after version {after}"))?;
        rows.iter().map(event_from_row).collect()
    }

    /// The oldest version a watch can resume from: changes after it are all
    /// in the log.
    pub async fn resource_history_start(&self) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COALESCE((SELECT MIN(resource_version) FROM resource_events), \
                             (SELECT value + 1 FROM resource_version WHERE id = 1)) - 1 AS start",
        )
        .fetch_one(&self.pool)
        .await
        .context(|| "reading the start of the change log".into())?;
        Reader::new(&row, "change log".into()).get("start")
    }

    /// The newest resourceVersion given out.
    pub async fn current_resource_version(&self) -> Result<i64> {
        let row = sqlx::query("SELECT value FROM resource_version WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .context(|| "reading the resource version".into())?;
        Reader::new(&row, "resource version".into()).get("value")
    }
}
