//! Secrets for workloads. A Secret is a `v1` object in the one resource
//! table (the resource layer admits and writes it); this reads its values
//! decoded, for the controllers that hand them to a process as environment
//! variables or files. Stored in plain text, like an unencrypted etcd:
//! protect the database file (or server) accordingly.
//!
//! Before the resource model, secrets had their own `secrets` table; the
//! `legacy_*` functions are what moving them onto the model reads and
//! clears.

use oxflow_core::Namespace;
use sqlx::Row;

use super::{DbContext, Reader};
use crate::{ResourceKey, Result, SecretData, Store, StoreError};

/// The key of Secret `name` in `ns`.
fn secret_key(ns: &Namespace, name: &str) -> ResourceKey {
    ResourceKey {
        group: String::new(),
        kind: "Secret".into(),
        namespace: ns.as_str().to_owned(),
        name: name.to_owned(),
    }
}

impl Store {
    /// The values of Secret `name` in `ns`, decoded, if it exists. A value
    /// that is not UTF-8 text is reported, naming its key.
    pub async fn get_secret(&self, ns: &Namespace, name: &str) -> Result<Option<SecretData>> {
        let Some(stored) = self.get_resource(&secret_key(ns, name)).await? else {
            return Ok(None);
        };
        oxflow_core::secret::values(&stored.object)
            .map(Some)
            .map_err(|detail| StoreError::Corrupt {
                what: format!("secret {name} in namespace {ns}"),
                detail,
            })
    }

    /// The secrets still in the table from before the resource model, as
    /// `(namespace, name, values)`, oldest namespace and name first.
    pub async fn legacy_secrets(&self) -> Result<Vec<(String, String, SecretData)>> {
        let rows =
            sqlx::query("SELECT namespace, name, data FROM secrets ORDER BY namespace, name")
                .fetch_all(&self.pool)
                .await
                .context(|| "reading the secrets stored before the resource model".to_owned())?;
        rows.iter()
            .map(|row| {
                let ns: String = row
                    .try_get(0)
                    .context(|| "reading a stored secret's namespace".to_owned())?;
                let name: String = row
                    .try_get(1)
                    .context(|| "reading a stored secret's name".to_owned())?;
                let r = Reader::new(row, format!("secret {name} in namespace {ns}"));
                let text: String = r.get("data")?;
                let data = serde_json::from_str(&text)
                    .map_err(|e| r.corrupt(format!("data is not a JSON object of strings: {e}")))?;
                Ok((ns, name, data))
            })
            .collect()
    }

    /// Removes a secret from the table from before the resource model,
    /// once it has been moved onto it.
    pub async fn drop_legacy_secret(&self, ns: &str, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM secrets WHERE namespace = $1 AND name = $2")
            .bind(ns)
            .bind(name)
            .execute(&self.pool)
            .await
            .context(|| format!("removing the moved secret {name} in namespace {ns}"))?;
        Ok(())
    }

    /// Writes a secret into the table from before the resource model, as
    /// an old Oxflow did: only for tests that prove such data directories
    /// migrate.
    #[doc(hidden)]
    pub async fn put_legacy_secret(&self, ns: &str, name: &str, data: &SecretData) -> Result<()> {
        let text = serde_json::to_string(data).map_err(|e| StoreError::Corrupt {
            what: format!("secret {name} in namespace {ns}"),
            detail: format!("cannot be encoded as JSON: {e}"),
        })?;
        sqlx::query(
            "INSERT INTO secrets (namespace, name, data) VALUES ($1, $2, $3) \
             ON CONFLICT (namespace, name) DO UPDATE SET data = excluded.data",
        )
        .bind(ns)
        .bind(name)
        .bind(text)
        .execute(&self.pool)
        .await
        .context(|| format!("saving secret {name} in namespace {ns}"))?;
        Ok(())
    }
}
