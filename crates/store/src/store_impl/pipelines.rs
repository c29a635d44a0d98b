//! Stored pipelines and their versions. A pipeline is unique by
//! `(namespace, name)`, with `''` as the namespace of shared pipelines; a
//! version is unique by `(pipeline_id, name)` and cannot outlive its pipeline
//! (foreign key).

use oxflow_core::Namespace;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tracing::debug;

use super::listing::{Resource, SortKey, text, time};
use super::{DbContext, Reader, db_err, is_foreign_key_violation, is_unique_violation, json_text};
use crate::{ListQuery, Page, PipelineRecord, PipelineVersionRecord, Result, Store, StoreError};

macro_rules! pipeline_columns {
    () => {
        "id, namespace, name, display_name, description, created_at"
    };
}

macro_rules! version_columns {
    () => {
        "id, pipeline_id, name, display_name, description, created_at, spec, code_source_url"
    };
}

const SORT_KEYS: &[SortKey] = &[
    SortKey {
        names: &["created_at"],
        expr: "created_at",
        int: true,
    },
    SortKey {
        names: &["name"],
        expr: "name",
        int: false,
    },
    SortKey {
        names: &["display_name"],
        expr: "display_name",
        int: false,
    },
];

/// What [`Store::list_pipelines`] filters and sorts on.
const PIPELINES: Resource = Resource {
    kind: "pipelines",
    table: "pipelines",
    columns: pipeline_columns!(),
    namespace_column: Some("namespace"),
    fields: &[
        text(&["name"], "name", false),
        text(&["display_name"], "display_name", false),
        text(&["description"], "description", false),
        // "" for shared pipelines.
        text(&["namespace"], "namespace", false),
        time(&["created_at"], "created_at", false),
    ],
    sorts: SORT_KEYS,
};

/// What [`Store::list_pipeline_versions`] filters and sorts on.
const VERSIONS: Resource = Resource {
    kind: "pipeline versions",
    table: "pipeline_versions",
    columns: version_columns!(),
    namespace_column: None,
    fields: &[
        text(&["name"], "name", false),
        text(&["display_name"], "display_name", false),
        text(&["description"], "description", false),
        time(&["created_at"], "created_at", false),
    ],
    sorts: SORT_KEYS,
};

/// The stored form of a pipeline's namespace: `''` when shared.
fn namespace_text(ns: Option<&Namespace>) -> &str {
    ns.map_or("", Namespace::as_str)
}

fn pipeline_from_row(row: &AnyRow) -> Result<PipelineRecord> {
    let r = Reader::keyed(row, "pipeline", "id")?;
    let namespace: String = r.get("namespace")?;
    let namespace = if namespace.is_empty() {
        None
    } else {
        Some(r.namespace("namespace")?)
    };
    Ok(PipelineRecord {
        id: r.get("id")?,
        namespace,
        name: r.get("name")?,
        display_name: r.get("display_name")?,
        description: r.get("description")?,
        created_at: r.timestamp("created_at")?,
    })
}

fn version_from_row(row: &AnyRow) -> Result<PipelineVersionRecord> {
    let r = Reader::keyed(row, "pipeline version", "id")?;
    Ok(PipelineVersionRecord {
        id: r.get("id")?,
        pipeline_id: r.get("pipeline_id")?,
        name: r.get("name")?,
        display_name: r.get("display_name")?,
        description: r.get("description")?,
        created_at: r.timestamp("created_at")?,
        spec: r.json("spec")?,
        code_source_url: r.get("code_source_url")?,
    })
}

async fn insert_pipeline_on(conn: &mut AnyConnection, p: &PipelineRecord) -> sqlx::Result<()> {
    sqlx::query(concat!(
        "INSERT INTO pipelines (",
        pipeline_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6)"
    ))
    .bind(&p.id)
    .bind(namespace_text(p.namespace.as_ref()))
    .bind(&p.name)
    .bind(&p.display_name)
    .bind(&p.description)
    .bind(p.created_at.millis())
    .execute(conn)
    .await
    .map(drop)
}

/// Inserts `v` under `pipeline_id` (which wins over `v.pipeline_id`).
async fn insert_version_on(
    conn: &mut AnyConnection,
    v: &PipelineVersionRecord,
    pipeline_id: &str,
) -> sqlx::Result<()> {
    sqlx::query(concat!(
        "INSERT INTO pipeline_versions (",
        version_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ))
    .bind(&v.id)
    .bind(pipeline_id)
    .bind(&v.name)
    .bind(&v.display_name)
    .bind(&v.description)
    .bind(v.created_at.millis())
    .bind(json_text(&v.spec))
    .bind(v.code_source_url.as_deref())
    .execute(conn)
    .await
    .map(drop)
}

impl Store {
    /// Turns a failed pipeline insert into [`StoreError::Conflict`] when the
    /// name is taken (the id's primary key is unique too).
    async fn pipeline_insert_error(&self, p: &PipelineRecord, err: sqlx::Error) -> StoreError {
        if is_unique_violation(&err) {
            match self
                .get_pipeline_by_name(p.namespace.as_ref(), &p.name)
                .await
            {
                Ok(Some(_)) => {
                    return StoreError::Conflict {
                        kind: "pipeline",
                        name: p.name.clone(),
                    };
                }
                Ok(None) => {}
                Err(e) => return e,
            }
        }
        db_err(format!("inserting pipeline {}", p.id), err)
    }

    /// Turns a failed version insert into [`StoreError::NotFound`] (no such
    /// pipeline) or [`StoreError::Conflict`] (the name is taken).
    async fn version_insert_error(
        &self,
        v: &PipelineVersionRecord,
        pipeline_id: &str,
        err: sqlx::Error,
    ) -> StoreError {
        if is_foreign_key_violation(&err) {
            return StoreError::NotFound {
                kind: "pipeline",
                id: pipeline_id.to_owned(),
            };
        }
        if is_unique_violation(&err) {
            let taken = sqlx::query(
                "SELECT COUNT(*) FROM pipeline_versions WHERE pipeline_id = $1 AND name = $2",
            )
            .bind(pipeline_id)
            .bind(&v.name)
            .fetch_one(&self.pool)
            .await
            .and_then(|row| row.try_get::<i64, _>(0));
            match taken {
                Ok(n) if n > 0 => {
                    return StoreError::Conflict {
                        kind: "pipeline version",
                        name: v.name.clone(),
                    };
                }
                Ok(_) => {}
                Err(e) => {
                    return db_err(
                        format!("looking up version {:?} of pipeline {pipeline_id}", v.name),
                        e,
                    );
                }
            }
        }
        db_err(
            format!("inserting version {} of pipeline {pipeline_id}", v.id),
            err,
        )
    }

    /// Stores a new pipeline without versions.
    ///
    /// Errors: [`StoreError::Conflict`] when its namespace (or the shared
    /// space) already has a pipeline of that `name`.
    pub async fn insert_pipeline(&self, p: &PipelineRecord) -> Result<()> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .context(|| format!("inserting pipeline {}", p.id))?;
        let inserted = insert_pipeline_on(&mut conn, p).await;
        drop(conn);
        match inserted {
            Ok(()) => Ok(()),
            Err(err) => Err(self.pipeline_insert_error(p, err).await),
        }
    }

    /// Stores a new pipeline and its first version in one transaction (KFP's
    /// upload): either both exist afterwards or neither. The version is
    /// stored under `p.id` whatever its `pipeline_id` says.
    ///
    /// Errors as [`Store::insert_pipeline`] and [`Store::insert_pipeline_version`].
    pub async fn insert_pipeline_with_version(
        &self,
        p: &PipelineRecord,
        v: &PipelineVersionRecord,
    ) -> Result<()> {
        let context = || format!("inserting pipeline {} with version {}", p.id, v.id);
        let mut tx = self.pool.begin().await.context(context)?;
        if let Err(err) = insert_pipeline_on(&mut tx, p).await {
            // Roll back before looking at what conflicted.
            drop(tx);
            return Err(self.pipeline_insert_error(p, err).await);
        }
        if let Err(err) = insert_version_on(&mut tx, v, &p.id).await {
            drop(tx);
            return Err(self.version_insert_error(v, &p.id, err).await);
        }
        tx.commit().await.context(context)?;
        debug!(pipeline = %p.id, version = %v.id, "Pipeline stored.");
        Ok(())
    }

    /// Stores a new version of an existing pipeline.
    ///
    /// Errors: [`StoreError::NotFound`] when the pipeline does not exist,
    /// [`StoreError::Conflict`] when it already has a version of that `name`.
    pub async fn insert_pipeline_version(&self, v: &PipelineVersionRecord) -> Result<()> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .context(|| format!("inserting version {} of pipeline {}", v.id, v.pipeline_id))?;
        let inserted = insert_version_on(&mut conn, v, &v.pipeline_id).await;
        drop(conn);
        match inserted {
            Ok(()) => Ok(()),
            Err(err) => Err(self.version_insert_error(v, &v.pipeline_id, err).await),
        }
    }

    /// The pipeline with this id, if any.
    pub async fn get_pipeline(&self, id: &str) -> Result<Option<PipelineRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            pipeline_columns!(),
            " FROM pipelines WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .context(|| format!("reading pipeline {id}"))?;
        row.as_ref().map(pipeline_from_row).transpose()
    }

    /// The pipeline called `name` in `ns` (`None`: among shared pipelines), if any.
    pub async fn get_pipeline_by_name(
        &self,
        ns: Option<&Namespace>,
        name: &str,
    ) -> Result<Option<PipelineRecord>> {
        let ns = namespace_text(ns);
        let row = sqlx::query(concat!(
            "SELECT ",
            pipeline_columns!(),
            " FROM pipelines WHERE namespace = $1 AND name = $2"
        ))
        .bind(ns)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .context(|| format!("reading pipeline {name:?} in namespace {ns:?}"))?;
        row.as_ref().map(pipeline_from_row).transpose()
    }

    /// One page of pipelines. [`ListQuery::namespace`] selects one
    /// namespace's own pipelines; shared ones are those whose `namespace`
    /// is `""` (filter on it, e.g. IN `["team-a", ""]` for both).
    ///
    /// Filters: `name`, `display_name`, `description`, `namespace` (text);
    /// `created_at` (timestamp). Sorts: `created_at` (default), `name`, `display_name`.
    pub async fn list_pipelines(&self, q: &ListQuery) -> Result<Page<PipelineRecord>> {
        PIPELINES
            .plan(q, None)?
            .fetch(&self.pool, pipeline_from_row)
            .await
    }

    /// One page of the versions of `pipeline_id` (none if it does not
    /// exist). [`ListQuery::namespace`] is ignored: versions live in their
    /// pipeline's namespace.
    ///
    /// Filters: `name`, `display_name`, `description` (text); `created_at`
    /// (timestamp). Sorts: `created_at` (default), `name`, `display_name`.
    pub async fn list_pipeline_versions(
        &self,
        pipeline_id: &str,
        q: &ListQuery,
    ) -> Result<Page<PipelineVersionRecord>> {
        VERSIONS
            .plan(q, Some(("pipeline_id", pipeline_id)))?
            .fetch(&self.pool, version_from_row)
            .await
    }

    /// The pipeline version with this id, if any.
    pub async fn get_pipeline_version(&self, id: &str) -> Result<Option<PipelineVersionRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            version_columns!(),
            " FROM pipeline_versions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .context(|| format!("reading pipeline version {id}"))?;
        row.as_ref().map(version_from_row).transpose()
    }

    /// Deletes one version. Runs started from it keep their reference.
    /// Returns whether it existed.
    pub async fn delete_pipeline_version(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM pipeline_versions WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .context(|| format!("deleting pipeline version {id}"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a pipeline, in one transaction. With `cascade` its versions
    /// go with it; without, a pipeline that still has versions is refused
    /// with [`StoreError::NotEmpty`] and nothing changes. Runs and recurring
    /// runs that reference it keep their reference. Returns whether the
    /// pipeline existed.
    pub async fn delete_pipeline(&self, id: &str, cascade: bool) -> Result<bool> {
        let context = || format!("deleting pipeline {id}");
        let mut tx = self.pool.begin().await.context(context)?;
        if cascade {
            sqlx::query("DELETE FROM pipeline_versions WHERE pipeline_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .context(context)?;
        } else {
            let versions: i64 =
                sqlx::query("SELECT COUNT(*) FROM pipeline_versions WHERE pipeline_id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await
                    .and_then(|row| row.try_get(0))
                    .context(context)?;
            if versions > 0 {
                return Err(StoreError::NotEmpty {
                    kind: "pipeline",
                    id: id.to_owned(),
                    children: "pipeline versions",
                    count: versions,
                });
            }
        }
        // A version added since the count makes this fail (foreign key)
        // rather than leave an orphan.
        let done = sqlx::query("DELETE FROM pipelines WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .context(context)?;
        tx.commit().await.context(context)?;
        Ok(done.rows_affected() == 1)
    }
}
