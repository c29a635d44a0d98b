//! The namespaces that hold something: a namespace exists once anything was
//! created in it (a Namespace object included, whose own namespace is the
//! empty one): the dashboard's namespace selector lists these.

use oxflow_core::Namespace;
use sqlx::Row;

use super::DbContext;
use crate::{Result, Store};

/// Every table with a namespace column; KFP's shared pipelines have the
/// empty namespace, which is no namespace.
const IN_USE: &str = "SELECT DISTINCT namespace FROM (\
     SELECT namespace FROM runs \
     UNION SELECT namespace FROM experiments \
     UNION SELECT namespace FROM pipelines \
     UNION SELECT namespace FROM recurring_runs \
     UNION SELECT namespace FROM tuning_experiments \
     UNION SELECT namespace FROM resources \
     UNION SELECT name FROM resources WHERE api_group = '' AND kind = 'Namespace' \
     UNION SELECT namespace FROM secrets\
     ) AS used WHERE namespace <> '' ORDER BY namespace";

impl Store {
    /// The namespaces something was created in, sorted. Names that are
    /// not valid namespaces (written by hand into the database) are left
    /// out rather than failing the list.
    pub async fn namespaces_in_use(&self) -> Result<Vec<Namespace>> {
        let rows = sqlx::query(IN_USE)
            .fetch_all(&self.pool)
            .await
            .context(|| "listing the namespaces in use".to_owned())?;
        Ok(rows
            .iter()
            .filter_map(|r| r.try_get::<String, _>(0).ok())
            .filter_map(|n| Namespace::new(n).ok())
            .collect())
    }
}
