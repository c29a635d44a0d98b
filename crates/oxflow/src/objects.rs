//! Objects of any registry kind, for the CLI: in the local data directory
//! (through the resource model, with the same rules as the server) or on a
//! server (through its Kubernetes API). `oxflow apply`, `oxflow isvc` and
//! `oxflow trainedmodel` are built on these calls.

use anyhow::{Context, Result, bail};
use oxflow_core::Namespace;
use oxflow_core::object::Kind;
use oxflow_resources::{ResourceError, Resources};
use serde_json::Value;

use crate::cli::{Cli, Ctx};
use crate::remote::{Server, encode_path};

/// Where objects are: the local data directory, or a server's API.
pub(crate) enum Backend {
    /// The data directory (a running `oxflow up` on it picks up what is
    /// written within its resync interval).
    Local {
        /// The data directory.
        ctx: Ctx,
        /// Its resource model.
        resources: Resources,
    },
    /// A server, through its Kubernetes API.
    Remote(Server),
}

/// `/apis/{group}/{version}` (`/api/v1` for the core group).
fn group_path(kind: &Kind) -> String {
    if kind.group.is_empty() {
        format!("/api/{}", kind.version)
    } else {
        format!("/apis/{}/{}", kind.group, kind.version)
    }
}

/// A kind's collection, in a namespace or across all of them.
fn collection_path(kind: &Kind, ns: Option<&Namespace>) -> String {
    match ns.filter(|_| kind.namespaced) {
        Some(ns) => format!(
            "{}/namespaces/{}/{}",
            group_path(kind),
            encode_path(ns.as_str()),
            kind.plural
        ),
        None => format!("{}/{}", group_path(kind), kind.plural),
    }
}

/// One object's path.
pub(crate) fn item_path(kind: &Kind, ns: &Namespace, name: &str) -> String {
    format!("{}/{}", collection_path(kind, Some(ns)), encode_path(name))
}

/// Moves a data directory's objects from before the resource model onto
/// it (every start does; once moved, it reads two empty tables).
pub(crate) async fn migrate_legacy(resources: &Resources) -> Result<()> {
    oxflow_serving::kinds::migrate_legacy(resources)
        .await
        .context("moving the stored InferenceServices and TrainedModels to the resource model")?;
    oxflow_tuning::migrate_legacy(resources)
        .await
        .context("moving the stored Katib experiments to the resource model")?;
    oxflow_resources::builtin::migrate_legacy_secrets(resources)
        .await
        .context("moving the stored secrets to the resource model")?;
    Ok(())
}

impl Backend {
    /// The server given by `--server`, else the local data directory
    /// (whose objects from before the resource model are moved onto it
    /// first, as `oxflow up` does).
    pub(crate) async fn open(cli: &Cli) -> Result<Backend> {
        Ok(
            match cli.server.as_deref().filter(|u| !u.trim().is_empty()) {
                Some(url) => {
                    Backend::Remote(Server::parse(url)?.with_token(crate::cli::client_token(cli)?))
                }
                None => {
                    let ctx = Ctx::open(cli).await?;
                    let resources = Resources::new(ctx.store.clone(), oxflow_server::registry());
                    migrate_legacy(&resources).await?;
                    Backend::Local { ctx, resources }
                }
            },
        )
    }

    /// The local data directory, when that is where objects are.
    pub(crate) fn local(&self) -> Option<&Ctx> {
        match self {
            Backend::Local { ctx, .. } => Some(ctx),
            Backend::Remote(_) => None,
        }
    }

    /// The server, when that is where objects are.
    pub(crate) fn remote(&self) -> Option<&Server> {
        match self {
            Backend::Local { .. } => None,
            Backend::Remote(s) => Some(s),
        }
    }

    /// The object; an error naming it when there is none.
    pub(crate) async fn get(
        &self,
        kind: &'static Kind,
        ns: &Namespace,
        name: &str,
    ) -> Result<Value> {
        match self {
            Backend::Local { resources, .. } => {
                Ok(resources.get(kind, Some(ns.as_str()), name).await?)
            }
            Backend::Remote(s) => s.json("GET", &item_path(kind, ns, name), None).await,
        }
    }

    /// The objects of a namespace (or of all: `None`), by namespace and name.
    pub(crate) async fn list(
        &self,
        kind: &'static Kind,
        ns: Option<&Namespace>,
    ) -> Result<Vec<Value>> {
        match self {
            Backend::Local { resources, .. } => {
                let (items, _) = resources
                    .list(
                        kind,
                        ns.map(Namespace::as_str),
                        &Default::default(),
                        &Default::default(),
                    )
                    .await?;
                Ok(items)
            }
            Backend::Remote(s) => s.list_items(&collection_path(kind, ns)).await,
        }
    }

    /// Creates the object or replaces the one of its name (its status
    /// stays); returns `created`, `configured` or `unchanged`, as `kubectl
    /// apply` says.
    pub(crate) async fn apply(
        &self,
        kind: &'static Kind,
        ns: &Namespace,
        object: Value,
    ) -> Result<&'static str> {
        match self {
            Backend::Local { resources, .. } => {
                let (_, applied) =
                    oxflow_serving::kinds::apply(resources, kind, ns, object).await?;
                Ok(applied.as_str())
            }
            Backend::Remote(s) => {
                let name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
                let path = item_path(kind, ns, &name);
                // A replace names the version it read: a concurrent change
                // gets 409 and the read is done again.
                for _ in 0..5 {
                    let Some(before) = s.json_opt("GET", &path, None).await? else {
                        s.json("POST", &collection_path(kind, Some(ns)), Some(&object))
                            .await?;
                        return Ok("created");
                    };
                    let mut body = object.clone();
                    body["metadata"]["resourceVersion"] =
                        before["metadata"]["resourceVersion"].clone();
                    match s.json("PUT", &path, Some(&body)).await {
                        Ok(after) => {
                            let generation = |v: &Value| v["metadata"]["generation"].as_i64();
                            return Ok(if generation(&before) == generation(&after) {
                                "unchanged"
                            } else {
                                "configured"
                            });
                        }
                        Err(e) if e.to_string().contains(" 409 ") => continue,
                        Err(e) => return Err(e),
                    }
                }
                bail!(
                    "{} {name:?} kept changing while it was being applied; try again",
                    kind.resource_name()
                )
            }
        }
    }

    /// Deletes the object; false when there was none.
    pub(crate) async fn delete(
        &self,
        kind: &'static Kind,
        ns: &Namespace,
        name: &str,
    ) -> Result<bool> {
        match self {
            Backend::Local { resources, .. } => {
                match resources
                    .delete(kind, Some(ns.as_str()), name, &Default::default())
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(ResourceError::NotFound { .. }) => Ok(false),
                    Err(e) => Err(e.into()),
                }
            }
            Backend::Remote(s) => Ok(s
                .json_opt("DELETE", &item_path(kind, ns, name), None)
                .await?
                .is_some()),
        }
    }
}
