//! KServe TrainedModels: the spec as applied, with a generation, and the
//! status the serving controller observed for a generation.
//!
//! The same rules as for inference services (see `inference_services`): an
//! apply is one statement that bumps the generation only when the spec
//! changed, and a status is written only for the generation it describes.

use oxflow_core::{Namespace, Timestamp};
use serde_json::Value;
use sqlx::any::AnyRow;

use super::{Applied, DbContext, Reader, db_err, is_unique_violation, json_text};
use crate::{Result, Store, StoreError, TrainedModelRecord};

macro_rules! tm_columns {
    () => {
        "id, namespace, name, inference_service, spec, generation, status, \
         observed_generation, created_at, updated_at"
    };
}

fn tm_from_row(row: &AnyRow) -> Result<TrainedModelRecord> {
    let r = Reader::keyed(row, "trained model", "name")?;
    Ok(TrainedModelRecord {
        id: r.get("id")?,
        namespace: r.namespace("namespace")?,
        name: r.get("name")?,
        inference_service: r.get("inference_service")?,
        spec: r.json("spec")?,
        generation: r.get("generation")?,
        status: r.json("status")?,
        observed_generation: r.get("observed_generation")?,
        created_at: r.timestamp("created_at")?,
        updated_at: r.timestamp("updated_at")?,
    })
}

impl Store {
    /// Creates the model, or replaces the spec of the one with the same
    /// namespace and name (bumping its generation when the spec differs).
    /// `inference_service` is the spec's `inferenceService`, kept in a
    /// column of its own for [`Store::list_trained_models_of`].
    pub async fn apply_trained_model(
        &self,
        namespace: &Namespace,
        name: &str,
        inference_service: &str,
        spec: &Value,
    ) -> Result<(TrainedModelRecord, Applied)> {
        let now = Timestamp::now().millis();
        let before = self.find_trained_model(namespace, name).await?;
        let row = sqlx::query(concat!(
            "INSERT INTO trained_models (",
            tm_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, 1, '{}', 0, $6, $6) \
             ON CONFLICT (namespace, name) DO UPDATE SET \
             spec = excluded.spec, \
             inference_service = excluded.inference_service, \
             generation = CASE WHEN trained_models.spec = excluded.spec \
                 THEN trained_models.generation ELSE trained_models.generation + 1 END, \
             updated_at = CASE WHEN trained_models.spec = excluded.spec \
                 THEN trained_models.updated_at ELSE excluded.updated_at END \
             RETURNING ",
            tm_columns!()
        ))
        .bind(oxflow_core::new_id())
        .bind(namespace.as_str())
        .bind(name)
        .bind(inference_service)
        .bind(json_text(spec))
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .context(|| format!("storing trained model {namespace}/{name}"))?;
        let record = tm_from_row(&row)?;
        let applied = match before {
            None => Applied::Created,
            Some(b) if b.generation == record.generation && b.id == record.id => Applied::Unchanged,
            Some(_) => Applied::Configured,
        };
        Ok((record, applied))
    }

    /// Creates the model; [`StoreError::Conflict`] when one with that name
    /// exists in the namespace (a REST `POST`).
    pub async fn create_trained_model(
        &self,
        namespace: &Namespace,
        name: &str,
        inference_service: &str,
        spec: &Value,
    ) -> Result<TrainedModelRecord> {
        let now = Timestamp::now().millis();
        let row = sqlx::query(concat!(
            "INSERT INTO trained_models (",
            tm_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, 1, '{}', 0, $6, $6) RETURNING ",
            tm_columns!()
        ))
        .bind(oxflow_core::new_id())
        .bind(namespace.as_str())
        .bind(name)
        .bind(inference_service)
        .bind(json_text(spec))
        .bind(now)
        .fetch_one(&self.pool)
        .await;
        match row {
            Ok(row) => tm_from_row(&row),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict {
                kind: "trained model",
                name: name.to_owned(),
            }),
            Err(e) => Err(db_err(
                format!("storing trained model {namespace}/{name}"),
                e,
            )),
        }
    }

    /// The model, if it exists.
    pub async fn find_trained_model(
        &self,
        namespace: &Namespace,
        name: &str,
    ) -> Result<Option<TrainedModelRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            tm_columns!(),
            " FROM trained_models WHERE namespace = $1 AND name = $2"
        ))
        .bind(namespace.as_str())
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .context(|| format!("reading trained model {namespace}/{name}"))?;
        row.as_ref().map(tm_from_row).transpose()
    }

    /// The model; [`StoreError::NotFound`] when it does not exist.
    pub async fn get_trained_model(
        &self,
        namespace: &Namespace,
        name: &str,
    ) -> Result<TrainedModelRecord> {
        self.find_trained_model(namespace, name)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "trained model",
                id: format!("{namespace}/{name}"),
            })
    }

    /// Models of one namespace or of all, by namespace and name.
    pub async fn list_trained_models(
        &self,
        namespace: Option<&Namespace>,
    ) -> Result<Vec<TrainedModelRecord>> {
        let rows = match namespace {
            Some(ns) => sqlx::query(concat!(
                "SELECT ",
                tm_columns!(),
                " FROM trained_models WHERE namespace = $1 ORDER BY namespace, name"
            ))
            .bind(ns.as_str()),
            None => sqlx::query(concat!(
                "SELECT ",
                tm_columns!(),
                " FROM trained_models ORDER BY namespace, name"
            )),
        }
        .fetch_all(&self.pool)
        .await
        .context(|| "listing trained models".to_owned())?;
        rows.iter().map(tm_from_row).collect()
    }

    /// The models that name `inference_service` of `namespace`, by name.
    pub async fn list_trained_models_of(
        &self,
        namespace: &Namespace,
        inference_service: &str,
    ) -> Result<Vec<TrainedModelRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            tm_columns!(),
            " FROM trained_models WHERE namespace = $1 AND inference_service = $2 ORDER BY name"
        ))
        .bind(namespace.as_str())
        .bind(inference_service)
        .fetch_all(&self.pool)
        .await
        .context(|| format!("listing the trained models of {namespace}/{inference_service}"))?;
        rows.iter().map(tm_from_row).collect()
    }

    /// Records `status` as what the controller observed for `generation` of
    /// the model with this id. Returns false (writing nothing) when the
    /// model was deleted or its spec has moved on to another generation.
    pub async fn set_trained_model_status(
        &self,
        id: &str,
        generation: i64,
        status: &Value,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE trained_models SET status = $3, observed_generation = $2, updated_at = $4 \
             WHERE id = $1 AND generation = $2",
        )
        .bind(id)
        .bind(generation)
        .bind(json_text(status))
        .bind(Timestamp::now().millis())
        .execute(&self.pool)
        .await
        .context(|| format!("recording the status of trained model {id}"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes the model; false when there was none.
    pub async fn delete_trained_model(&self, namespace: &Namespace, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM trained_models WHERE namespace = $1 AND name = $2")
            .bind(namespace.as_str())
            .bind(name)
            .execute(&self.pool)
            .await
            .context(|| format!("deleting trained model {namespace}/{name}"))?;
        Ok(done.rows_affected() == 1)
    }
}
