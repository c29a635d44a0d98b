//! The KServe tables of migrations 0005 and 0006 (`inference_services`,
//! `trained_models`), from before InferenceServices and TrainedModels moved
//! onto the resource model. Nothing writes them any more: at start-up
//! `oxflow_serving::kinds::migrate_legacy` reads their rows, stores each as
//! an object and deletes the row, one by one, so a migration cut short by
//! a crash goes on where it stopped.

use oxflow_core::Timestamp;
use serde_json::Value;
use sqlx::any::AnyRow;

use super::{DbContext, Reader, json_text};
use crate::{Result, Store};

/// Which of the two tables a row is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyKServeKind {
    /// `inference_services`.
    InferenceService,
    /// `trained_models`.
    TrainedModel,
}

impl LegacyKServeKind {
    fn table(self) -> &'static str {
        match self {
            Self::InferenceService => "inference_services",
            Self::TrainedModel => "trained_models",
        }
    }
}

/// One row of the old tables.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyKServeRow {
    /// Its table.
    pub kind: LegacyKServeKind,
    /// The row's id (the object's uid from now on).
    pub id: String,
    /// Its namespace, as stored.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The object in KServe's shape, defaulted (`apiVersion`, `kind`,
    /// `metadata`, `spec`).
    pub spec: Value,
    /// `metadata.generation`.
    pub generation: i64,
    /// KServe's status as last written.
    pub status: Value,
    /// The generation the status describes.
    pub observed_generation: i64,
    /// An InferenceService's rolled-out revision (`{revision, generation,
    /// predictor}`), if one was.
    pub rolled_out: Option<Value>,
    /// When it was first applied.
    pub created_at: Timestamp,
}

fn row_of(kind: LegacyKServeKind, row: &AnyRow) -> Result<LegacyKServeRow> {
    let r = Reader::keyed(row, kind.table(), "name")?;
    let rolled_out = match kind {
        LegacyKServeKind::TrainedModel => None,
        LegacyKServeKind::InferenceService => match r.get::<Option<String>>("rolled_out")? {
            None => None,
            Some(text) => Some(
                serde_json::from_str(&text)
                    .map_err(|e| r.corrupt(format!("column rolled_out is not valid JSON: {e}")))?,
            ),
        },
    };
    Ok(LegacyKServeRow {
        kind,
        id: r.get("id")?,
        namespace: r.get("namespace")?,
        name: r.get("name")?,
        spec: r.json("spec")?,
        generation: r.get("generation")?,
        status: r.json("status")?,
        observed_generation: r.get("observed_generation")?,
        rolled_out,
        created_at: r.timestamp("created_at")?,
    })
}

impl Store {
    /// Every row left in the old KServe tables: services first, by
    /// namespace and name.
    pub async fn legacy_kserve_rows(&self) -> Result<Vec<LegacyKServeRow>> {
        let mut out = Vec::new();
        for (kind, sql) in [
            (
                LegacyKServeKind::InferenceService,
                "SELECT id, namespace, name, spec, generation, status, observed_generation, \
                 rolled_out, created_at FROM inference_services ORDER BY namespace, name",
            ),
            (
                LegacyKServeKind::TrainedModel,
                "SELECT id, namespace, name, spec, generation, status, observed_generation, \
                 created_at FROM trained_models ORDER BY namespace, name",
            ),
        ] {
            let rows = sqlx::query(sql)
                .fetch_all(&self.pool)
                .await
                .context(|| format!("reading the old {} table", kind.table()))?;
            for row in &rows {
                out.push(row_of(kind, row)?);
            }
        }
        Ok(out)
    }

    /// Deletes a row that has been carried over.
    pub async fn delete_legacy_kserve_row(&self, row: &LegacyKServeRow) -> Result<()> {
        let sql = match row.kind {
            LegacyKServeKind::InferenceService => "DELETE FROM inference_services WHERE id = $1",
            LegacyKServeKind::TrainedModel => "DELETE FROM trained_models WHERE id = $1",
        };
        sqlx::query(sql)
            .bind(&row.id)
            .execute(&self.pool)
            .await
            .context(|| {
                format!(
                    "deleting {} from the old {} table",
                    row.name,
                    row.kind.table()
                )
            })?;
        Ok(())
    }

    /// Writes a row into the old tables, as the store before the resource
    /// model did: for the test that migrates a data directory.
    #[doc(hidden)]
    pub async fn insert_legacy_kserve_row(&self, row: &LegacyKServeRow) -> Result<()> {
        let millis = row.created_at.millis();
        let query = match row.kind {
            LegacyKServeKind::InferenceService => sqlx::query(
                "INSERT INTO inference_services (id, namespace, name, spec, generation, status, \
                 observed_generation, rolled_out, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
            )
            .bind(&row.id)
            .bind(&row.namespace)
            .bind(&row.name)
            .bind(json_text(&row.spec))
            .bind(row.generation)
            .bind(json_text(&row.status))
            .bind(row.observed_generation)
            .bind(row.rolled_out.as_ref().map(json_text))
            .bind(millis),
            LegacyKServeKind::TrainedModel => sqlx::query(
                "INSERT INTO trained_models (id, namespace, name, inference_service, spec, \
                 generation, status, observed_generation, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
            )
            .bind(&row.id)
            .bind(&row.namespace)
            .bind(&row.name)
            .bind(
                row.spec["spec"]["inferenceService"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
            .bind(json_text(&row.spec))
            .bind(row.generation)
            .bind(json_text(&row.status))
            .bind(row.observed_generation)
            .bind(millis),
        };
        query
            .execute(&self.pool)
            .await
            .context(|| format!("storing {} in the old {} table", row.name, row.kind.table()))?;
        Ok(())
    }
}
