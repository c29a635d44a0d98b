//! Secrets: the local stand-in for Kubernetes Secrets, one JSON object per
//! `(namespace, name)`. Stored in plain text, like an unencrypted etcd:
//! protect the database file (or server) accordingly.

use oxflow_core::Namespace;
use sqlx::Row;

use super::{DbContext, Reader};
use crate::{Result, SecretData, Store, StoreError};

impl Store {
    /// Creates or replaces the secret `name` in `ns`.
    pub async fn put_secret(&self, ns: &Namespace, name: &str, data: &SecretData) -> Result<()> {
        let text = serde_json::to_string(data).map_err(|e| StoreError::Corrupt {
            what: format!("secret {name} in namespace {ns}"),
            detail: format!("cannot be encoded as JSON: {e}"),
        })?;
        sqlx::query(
            "INSERT INTO secrets (namespace, name, data) VALUES ($1, $2, $3) \
             ON CONFLICT (namespace, name) DO UPDATE SET data = excluded.data",
        )
        .bind(ns.as_str())
        .bind(name)
        .bind(text)
        .execute(&self.pool)
        .await
        .context(|| format!("saving secret {name} in namespace {ns}"))?;
        Ok(())
    }

    /// The secret `name` in `ns`, if it exists.
    pub async fn get_secret(&self, ns: &Namespace, name: &str) -> Result<Option<SecretData>> {
        let row = sqlx::query("SELECT data FROM secrets WHERE namespace = $1 AND name = $2")
            .bind(ns.as_str())
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .context(|| format!("reading secret {name} in namespace {ns}"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let r = Reader::new(&row, format!("secret {name} in namespace {ns}"));
        let text: String = r.get("data")?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| r.corrupt(format!("data is not a JSON object of strings: {e}")))
    }

    /// The names of the secrets in `ns`, sorted (values are not returned, so
    /// listing never exposes them).
    pub async fn list_secrets(&self, ns: &Namespace) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT name FROM secrets WHERE namespace = $1 ORDER BY name")
            .bind(ns.as_str())
            .fetch_all(&self.pool)
            .await
            .context(|| format!("listing secrets in namespace {ns}"))?;
        rows.iter()
            .map(|row| row.try_get::<String, _>(0))
            .collect::<Result<_, _>>()
            .context(|| format!("listing secrets in namespace {ns}"))
    }

    /// Deletes the secret. Returns whether it existed.
    pub async fn delete_secret(&self, ns: &Namespace, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM secrets WHERE namespace = $1 AND name = $2")
            .bind(ns.as_str())
            .bind(name)
            .execute(&self.pool)
            .await
            .context(|| format!("deleting secret {name} in namespace {ns}"))?;
        Ok(done.rows_affected() == 1)
    }
}
