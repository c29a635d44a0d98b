//! Artifacts (what tasks produced) and the step cache (what they may reuse).
//! Both are written only through [`Store::finish_task`].

use oxflow_core::Namespace;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::{DbContext, Reader, json_text};
use crate::{ArtifactRecord, CacheEntry, Result, Store};

macro_rules! artifact_columns {
    () => {
        "id, namespace, run_id, task_path, output_key, name, uri, schema_title, metadata, \
         digest, created_at"
    };
}

macro_rules! cache_columns {
    () => {
        "namespace, key, outputs, run_id, task_path, created_at"
    };
}

fn artifact_from_row(row: &AnyRow) -> Result<ArtifactRecord> {
    let r = Reader::keyed(row, "artifact", "id")?;
    Ok(ArtifactRecord {
        id: r.get("id")?,
        namespace: r.namespace("namespace")?,
        run_id: r.get("run_id")?,
        task_path: r.get("task_path")?,
        output_key: r.get("output_key")?,
        name: r.get("name")?,
        uri: r.get("uri")?,
        schema_title: r.get("schema_title")?,
        metadata: r.json("metadata")?,
        digest: r.get("digest")?,
        created_at: r.timestamp("created_at")?,
    })
}

fn cache_from_row(row: &AnyRow) -> Result<CacheEntry> {
    let r = Reader::keyed(row, "cache entry", "key")?;
    Ok(CacheEntry {
        key: r.get("key")?,
        namespace: r.namespace("namespace")?,
        outputs: r.json("outputs")?,
        run_id: r.get("run_id")?,
        task_path: r.get("task_path")?,
        created_at: r.timestamp("created_at")?,
    })
}

/// Inserts one artifact, replacing the row (id included) that has the same
/// `(run_id, task_path, output_key, uri)`: a retried task re-records its outputs.
pub(super) async fn insert_artifact(conn: &mut AnyConnection, a: &ArtifactRecord) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO artifacts (",
        artifact_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (run_id, task_path, output_key, uri) DO UPDATE SET \
         id = excluded.id, namespace = excluded.namespace, name = excluded.name, \
         schema_title = excluded.schema_title, metadata = excluded.metadata, \
         digest = excluded.digest, created_at = excluded.created_at"
    ))
    .bind(&a.id)
    .bind(a.namespace.as_str())
    .bind(&a.run_id)
    .bind(&a.task_path)
    .bind(&a.output_key)
    .bind(&a.name)
    .bind(&a.uri)
    .bind(&a.schema_title)
    .bind(json_text(&a.metadata))
    .bind(a.digest.as_deref())
    .bind(a.created_at.millis())
    .execute(&mut *conn)
    .await
    .context(|| {
        format!(
            "recording artifact {} ({}) of task {} of run {}",
            a.output_key, a.uri, a.task_path, a.run_id
        )
    })?;
    Ok(())
}

/// Inserts or replaces the cache entry with the same `(namespace, key)`.
pub(super) async fn upsert_cache(conn: &mut AnyConnection, c: &CacheEntry) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO cache_entries (",
        cache_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (namespace, key) DO UPDATE SET \
         outputs = excluded.outputs, run_id = excluded.run_id, \
         task_path = excluded.task_path, created_at = excluded.created_at"
    ))
    .bind(c.namespace.as_str())
    .bind(&c.key)
    .bind(json_text(&c.outputs))
    .bind(&c.run_id)
    .bind(&c.task_path)
    .bind(c.created_at.millis())
    .execute(&mut *conn)
    .await
    .context(|| format!("saving cache entry {} in namespace {}", c.key, c.namespace))?;
    Ok(())
}

impl Store {
    /// Every artifact the run's tasks recorded, oldest first (ties by id).
    pub async fn list_artifacts(&self, run_id: &str) -> Result<Vec<ArtifactRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            artifact_columns!(),
            " FROM artifacts WHERE run_id = $1 ORDER BY created_at, id"
        ))
        .bind(run_id)
        .fetch_all(&self.pool)
        .await
        .context(|| format!("listing the artifacts of run {run_id}"))?;
        rows.iter().map(artifact_from_row).collect()
    }

    /// The cached outputs under `key`, looked up only within `ns` so that
    /// namespaces never see each other's results.
    pub async fn get_cache(&self, ns: &Namespace, key: &str) -> Result<Option<CacheEntry>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            cache_columns!(),
            " FROM cache_entries WHERE namespace = $1 AND key = $2"
        ))
        .bind(ns.as_str())
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .context(|| format!("reading cache entry {key} in namespace {ns}"))?;
        row.as_ref().map(cache_from_row).transpose()
    }

    /// Forgets a cache entry (its outputs were found missing, or the user
    /// asked for a fresh run). Returns whether there was one.
    pub async fn delete_cache(&self, ns: &Namespace, key: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM cache_entries WHERE namespace = $1 AND key = $2")
            .bind(ns.as_str())
            .bind(key)
            .execute(&self.pool)
            .await
            .context(|| format!("deleting cache entry {key} in namespace {ns}"))?;
        Ok(done.rows_affected() == 1)
    }
}
