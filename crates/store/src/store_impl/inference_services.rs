//! KServe InferenceServices: the spec as applied, with a generation, and
//! the status the serving controller observed for a generation.
//!
//! An apply is one statement (insert, or update that bumps the generation
//! only when the spec changed), so two concurrent applies never lose one and
//! re-applying the same file is a no-op, as with `kubectl apply`. A status
//! is written only for the generation it describes, so a controller that
//! finished reconciling an older spec cannot overwrite a newer one's status.

use oxflow_core::{Namespace, Timestamp};
use serde_json::Value;
use sqlx::any::AnyRow;

use super::{DbContext, Reader, db_err, is_unique_violation, json_text};
use crate::{InferenceServiceRecord, Result, Store, StoreError};

macro_rules! isvc_columns {
    () => {
        "id, namespace, name, spec, generation, status, observed_generation, rolled_out, \
         created_at, updated_at"
    };
}

fn isvc_from_row(row: &AnyRow) -> Result<InferenceServiceRecord> {
    let r = Reader::keyed(row, "inference service", "name")?;
    Ok(InferenceServiceRecord {
        id: r.get("id")?,
        namespace: r.namespace("namespace")?,
        name: r.get("name")?,
        spec: r.json("spec")?,
        generation: r.get("generation")?,
        status: r.json("status")?,
        observed_generation: r.get("observed_generation")?,
        rolled_out: match r.get::<Option<String>>("rolled_out")? {
            None => None,
            Some(text) => Some(
                serde_json::from_str(&text)
                    .map_err(|e| r.corrupt(format!("column rolled_out is not valid JSON: {e}")))?,
            ),
        },
        created_at: r.timestamp("created_at")?,
        updated_at: r.timestamp("updated_at")?,
    })
}

/// Whether an apply created the service or changed an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// It did not exist.
    Created,
    /// It existed with another spec; the generation was bumped.
    Configured,
    /// It existed with the same spec; nothing changed.
    Unchanged,
}

impl Applied {
    /// `kubectl apply`'s word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Applied::Created => "created",
            Applied::Configured => "configured",
            Applied::Unchanged => "unchanged",
        }
    }
}

impl Store {
    /// Creates the service, or replaces the spec of the one with the same
    /// namespace and name (bumping its generation when the spec differs).
    /// Returns the stored record and what happened.
    pub async fn apply_inference_service(
        &self,
        namespace: &Namespace,
        name: &str,
        spec: &Value,
    ) -> Result<(InferenceServiceRecord, Applied)> {
        let now = Timestamp::now().millis();
        let spec_text = json_text(spec);
        let before = self.find_inference_service(namespace, name).await?;
        let row = sqlx::query(concat!(
            "INSERT INTO inference_services (",
            isvc_columns!(),
            ") VALUES ($1, $2, $3, $4, 1, '{}', 0, NULL, $5, $5) \
             ON CONFLICT (namespace, name) DO UPDATE SET \
             spec = excluded.spec, \
             generation = CASE WHEN inference_services.spec = excluded.spec \
                 THEN inference_services.generation ELSE inference_services.generation + 1 END, \
             updated_at = CASE WHEN inference_services.spec = excluded.spec \
                 THEN inference_services.updated_at ELSE excluded.updated_at END \
             RETURNING ",
            isvc_columns!()
        ))
        .bind(oxflow_core::new_id())
        .bind(namespace.as_str())
        .bind(name)
        .bind(&spec_text)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .context(|| format!("storing inference service {namespace}/{name}"))?;
        let record = isvc_from_row(&row)?;
        let applied = match before {
            None => Applied::Created,
            Some(b) if b.generation == record.generation && b.id == record.id => Applied::Unchanged,
            Some(_) => Applied::Configured,
        };
        Ok((record, applied))
    }

    /// Creates the service; [`StoreError::Conflict`] when one with that name
    /// exists in the namespace (a REST `POST`).
    pub async fn create_inference_service(
        &self,
        namespace: &Namespace,
        name: &str,
        spec: &Value,
    ) -> Result<InferenceServiceRecord> {
        let now = Timestamp::now().millis();
        let row = sqlx::query(concat!(
            "INSERT INTO inference_services (",
            isvc_columns!(),
            ") VALUES ($1, $2, $3, $4, 1, '{}', 0, NULL, $5, $5) RETURNING ",
            isvc_columns!()
        ))
        .bind(oxflow_core::new_id())
        .bind(namespace.as_str())
        .bind(name)
        .bind(json_text(spec))
        .bind(now)
        .fetch_one(&self.pool)
        .await;
        match row {
            Ok(row) => isvc_from_row(&row),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict {
                kind: "inference service",
                name: name.to_owned(),
            }),
            Err(e) => Err(db_err(
                format!("storing inference service {namespace}/{name}"),
                e,
            )),
        }
    }

    /// The service, if it exists.
    pub async fn find_inference_service(
        &self,
        namespace: &Namespace,
        name: &str,
    ) -> Result<Option<InferenceServiceRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            isvc_columns!(),
            " FROM inference_services WHERE namespace = $1 AND name = $2"
        ))
        .bind(namespace.as_str())
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .context(|| format!("reading inference service {namespace}/{name}"))?;
        row.as_ref().map(isvc_from_row).transpose()
    }

    /// The service; [`StoreError::NotFound`] when it does not exist.
    pub async fn get_inference_service(
        &self,
        namespace: &Namespace,
        name: &str,
    ) -> Result<InferenceServiceRecord> {
        self.find_inference_service(namespace, name)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "inference service",
                id: format!("{namespace}/{name}"),
            })
    }

    /// Services of one namespace or of all, by namespace and name.
    pub async fn list_inference_services(
        &self,
        namespace: Option<&Namespace>,
    ) -> Result<Vec<InferenceServiceRecord>> {
        let rows = match namespace {
            Some(ns) => sqlx::query(concat!(
                "SELECT ",
                isvc_columns!(),
                " FROM inference_services WHERE namespace = $1 ORDER BY namespace, name"
            ))
            .bind(ns.as_str()),
            None => sqlx::query(concat!(
                "SELECT ",
                isvc_columns!(),
                " FROM inference_services ORDER BY namespace, name"
            )),
        }
        .fetch_all(&self.pool)
        .await
        .context(|| "listing inference services".to_owned())?;
        rows.iter().map(isvc_from_row).collect()
    }

    /// Records `status` as what the controller observed for `generation` of
    /// the service with this id. Returns false (writing nothing) when the
    /// service was deleted or its spec has moved on to another generation.
    pub async fn set_inference_service_status(
        &self,
        id: &str,
        generation: i64,
        status: &Value,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE inference_services SET status = $3, observed_generation = $2, updated_at = $4 \
             WHERE id = $1 AND generation = $2",
        )
        .bind(id)
        .bind(generation)
        .bind(json_text(status))
        .bind(Timestamp::now().millis())
        .execute(&self.pool)
        .await
        .context(|| format!("recording the status of inference service {id}"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Records the revision that now takes all the traffic (see
    /// [`InferenceServiceRecord::rolled_out`]); false when the service was
    /// deleted.
    pub async fn set_inference_service_rolled_out(
        &self,
        id: &str,
        rolled_out: &Value,
    ) -> Result<bool> {
        let done = sqlx::query("UPDATE inference_services SET rolled_out = $2 WHERE id = $1")
            .bind(id)
            .bind(json_text(rolled_out))
            .execute(&self.pool)
            .await
            .context(|| format!("recording the rolled-out revision of inference service {id}"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes the service; false when there was none.
    pub async fn delete_inference_service(
        &self,
        namespace: &Namespace,
        name: &str,
    ) -> Result<bool> {
        let done = sqlx::query("DELETE FROM inference_services WHERE namespace = $1 AND name = $2")
            .bind(namespace.as_str())
            .bind(name)
            .execute(&self.pool)
            .await
            .context(|| format!("deleting inference service {namespace}/{name}"))?;
        Ok(done.rows_affected() == 1)
    }
}
