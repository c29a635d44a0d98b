//! KServe's kinds in the resource model: the registry entries of
//! InferenceService and TrainedModel (their names, printer columns,
//! defaulting and validation), and [`Stored`], the serving controller's
//! view of one stored object.
//!
//! Defaulting and validation are the spec parser's: an object is read
//! through [`Resource::from_json_value`] and its `spec` is stored as the
//! parser renders it back (every default spelled out), as KServe's
//! admission webhook does. So what kubectl, an SDK or the CLI writes is
//! held to the same rules, and a stored spec always parses.

use oxflow_core::object::{Column, FieldError, Kind};
use oxflow_core::{Namespace, Timestamp};
use serde_json::{Value, json};

use crate::spec::Resource;

/// KServe's columns that both kinds print.
const URL: Column = Column {
    name: "URL",
    type_: "string",
    json_path: ".status.url",
    priority: 0,
    description: "Where it answers.",
    compute: None,
};
const READY: Column = Column {
    name: "Ready",
    type_: "string",
    json_path: ".status.conditions[?(@.type=='Ready')].status",
    priority: 0,
    description: "Whether it serves.",
    compute: None,
};
const AGE: Column = Column {
    name: "Age",
    type_: "date",
    json_path: ".metadata.creationTimestamp",
    priority: 0,
    description: "How long ago it was created.",
    compute: None,
};

/// `serving.kserve.io/v1beta1` InferenceService (`isvc`), printed with
/// KServe's own columns.
pub static INFERENCE_SERVICE: Kind = Kind {
    group: "serving.kserve.io",
    version: "v1beta1",
    kind: "InferenceService",
    plural: "inferenceservices",
    singular: "inferenceservice",
    short_names: &["isvc"],
    categories: &[],
    namespaced: true,
    columns: &[
        URL,
        READY,
        Column {
            name: "Prev",
            type_: "integer",
            json_path: ".status.components.predictor.traffic[?(@.tag=='prev')].percent",
            priority: 0,
            description: "The share of traffic of the previous rollout.",
            compute: None,
        },
        Column {
            name: "Latest",
            type_: "integer",
            json_path: ".status.components.predictor.traffic[?(@.latestRevision==true)].percent",
            priority: 0,
            description: "The share of traffic of the latest revision.",
            compute: None,
        },
        Column {
            name: "PrevRolledoutRevision",
            type_: "string",
            json_path: ".status.components.predictor.traffic[?(@.tag=='prev')].revisionName",
            priority: 0,
            description: "The revision rolled out before.",
            compute: None,
        },
        Column {
            name: "LatestReadyRevision",
            type_: "string",
            json_path: ".status.components.predictor.traffic[?(@.latestRevision==true)].revisionName",
            priority: 0,
            description: "The latest revision that is ready.",
            compute: None,
        },
        AGE,
    ],
    status_subresource: true,
    fields: &["spec", "status"],
    builtin: false,
    validate: validate_inference_service,
    validate_update: None,
};

/// `serving.kserve.io/v1alpha1` TrainedModel (`tm`): one more model for a
/// multi-model InferenceService's predictor.
pub static TRAINED_MODEL: Kind = Kind {
    group: "serving.kserve.io",
    version: "v1alpha1",
    kind: "TrainedModel",
    plural: "trainedmodels",
    singular: "trainedmodel",
    short_names: &["tm"],
    categories: &[],
    namespaced: true,
    columns: &[URL, READY, AGE],
    status_subresource: true,
    fields: &["spec", "status"],
    builtin: false,
    validate: validate_trained_model,
    validate_update: None,
};

/// The serving kinds, for the server's registry.
pub fn kinds() -> [&'static Kind; 2] {
    [&INFERENCE_SERVICE, &TRAINED_MODEL]
}

fn validate_inference_service(object: &mut Value) -> Result<(), Vec<FieldError>> {
    default_spec(object)
}

fn validate_trained_model(object: &mut Value) -> Result<(), Vec<FieldError>> {
    default_spec(object)
}

/// Parses the object as the user wrote it and stores its `spec` as the
/// parser renders it back.
fn default_spec(object: &mut Value) -> Result<(), Vec<FieldError>> {
    let resource =
        Resource::from_json_value(user_view(object)).map_err(|e| vec![FieldError::from(e)])?;
    let rendered = resource.to_kserve_value();
    object["spec"] = rendered.get("spec").cloned().unwrap_or_else(|| json!({}));
    Ok(())
}

pub use oxflow_core::object::user_view;

/// A stored InferenceService or TrainedModel as the controller reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// `metadata.uid`: a service deleted and created again under the same
    /// name is another one.
    pub id: String,
    /// `metadata.namespace`.
    pub namespace: Namespace,
    /// `metadata.name`.
    pub name: String,
    /// The object as the user wrote it, defaulted ([`user_view`]).
    pub spec: Value,
    /// `metadata.generation`.
    pub generation: i64,
    /// `status` (`{}` until the controller first writes one).
    pub status: Value,
    /// `status.observedGeneration` (0 until the controller first writes).
    pub observed_generation: i64,
    /// `metadata.creationTimestamp`.
    pub created_at: Timestamp,
}

/// A stored InferenceService.
pub type InferenceServiceRecord = Stored;
/// A stored TrainedModel.
pub type TrainedModelRecord = Stored;

/// Where the serving controller keeps the revision that last took all
/// the traffic: `status.rolledOut` `{revision, generation, predictor}`
/// (Oxflow's addition to KServe's status; KServe keeps it in a Knative
/// Revision). During a canary rollout the rest of the traffic goes to it,
/// also after a restart.
pub const ROLLED_OUT: &str = "rolledOut";

impl Stored {
    /// The controller's view of a stored object; `None` for one without a
    /// valid namespace or uid (which the resource model never stores).
    pub fn from_object(object: &Value) -> Option<Stored> {
        let meta = object.get("metadata")?;
        let status = match object.get("status") {
            Some(s) if s.is_object() => s.clone(),
            _ => json!({}),
        };
        Some(Stored {
            id: meta.get("uid")?.as_str()?.to_owned(),
            namespace: Namespace::new(meta.get("namespace")?.as_str()?.to_owned()).ok()?,
            name: meta.get("name")?.as_str()?.to_owned(),
            spec: user_view(object),
            generation: meta.get("generation").and_then(Value::as_i64).unwrap_or(1),
            observed_generation: status
                .get("observedGeneration")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            status,
            created_at: meta
                .get("creationTimestamp")
                .and_then(Value::as_str)
                .and_then(Timestamp::parse_rfc3339)
                .unwrap_or_else(Timestamp::now),
        })
    }

    /// The revision that last took all the traffic ([`ROLLED_OUT`]).
    pub fn rolled_out(&self) -> Option<&Value> {
        self.status.get(ROLLED_OUT).filter(|v| v.is_object())
    }

    /// A TrainedModel's `spec.inferenceService` (empty for a service).
    pub fn inference_service(&self) -> &str {
        self.spec["spec"]["inferenceService"].as_str().unwrap_or("")
    }
}

/// Whether an apply created the object or changed an existing one.
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

/// Creates `object` of `kind`, or replaces the spec, labels and
/// annotations of the one with its name (`oxflow apply`, an SDK's
/// create-or-replace). The stored status stays; the generation moves only
/// when the defaulted spec changed.
pub async fn apply(
    resources: &oxflow_resources::Resources,
    kind: &'static Kind,
    namespace: &Namespace,
    object: Value,
) -> Result<(Value, Applied), oxflow_resources::ResourceError> {
    use oxflow_resources::{ResourceError, WriteOptions};
    let name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
    let opts = WriteOptions::default();
    // A create that loses a race to another apply becomes a replace, and a
    // replace that loses one is tried again on the newer object.
    for _ in 0..5 {
        match resources.get(kind, Some(namespace.as_str()), &name).await {
            Err(ResourceError::NotFound { .. }) => {
                match resources
                    .create(kind, Some(namespace.as_str()), object.clone(), &opts)
                    .await
                {
                    Ok(w) => return Ok((w.object, Applied::Created)),
                    Err(ResourceError::AlreadyExists { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
            Ok(before) => {
                let mut body = object.clone();
                body["metadata"]["resourceVersion"] = before["metadata"]["resourceVersion"].clone();
                match resources
                    .replace(kind, Some(namespace.as_str()), &name, body, &opts)
                    .await
                {
                    Ok(w) => {
                        let applied = if w.object["metadata"]["generation"]
                            == before["metadata"]["generation"]
                        {
                            Applied::Unchanged
                        } else {
                            Applied::Configured
                        };
                        return Ok((w.object, applied));
                    }
                    Err(ResourceError::Conflict { .. } | ResourceError::NotFound { .. }) => {
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Err(ResourceError::Conflict { kind, name })
}

/// What [`migrate_legacy`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// Rows stored as objects (or found stored by an earlier, interrupted
    /// run) and removed from the old tables.
    pub moved: usize,
    /// Rows the resource model refused (a spec no longer valid): left in
    /// the old tables, with a warning, rather than lost.
    pub kept: usize,
}

/// Moves the InferenceServices and TrainedModels of a data directory from
/// before the resource model (the tables of store migrations 0005 and
/// 0006) onto it, keeping each one's uid, generation, creation time and
/// status (and a service's rolled-out revision), so that a restart after
/// the upgrade serves the same revisions. Row by row, each removed only
/// once its object is stored: run at every start, it does nothing once the
/// tables are empty, and a run cut short goes on where it stopped.
pub async fn migrate_legacy(
    resources: &oxflow_resources::Resources,
) -> Result<Migrated, oxflow_resources::ResourceError> {
    use oxflow_resources::ResourceError;
    use oxflow_store::LegacyKServeKind;
    let mut done = Migrated::default();
    for row in resources.store().legacy_kserve_rows().await? {
        let kind = match row.kind {
            LegacyKServeKind::InferenceService => &INFERENCE_SERVICE,
            LegacyKServeKind::TrainedModel => &TRAINED_MODEL,
        };
        let mut object = user_view(&row.spec);
        object["apiVersion"] = json!(kind.api_version());
        object["kind"] = json!(kind.kind);
        let meta = &mut object["metadata"];
        meta["name"] = json!(row.name);
        meta["namespace"] = json!(row.namespace);
        meta["uid"] = json!(row.id);
        meta["generation"] = json!(row.generation);
        meta["creationTimestamp"] = json!(row.created_at.to_rfc3339());
        let mut status = if row.status.is_object() {
            row.status.clone()
        } else {
            json!({})
        };
        if row.observed_generation > 0 && status.get("observedGeneration").is_none() {
            status["observedGeneration"] = json!(row.observed_generation);
        }
        if let Some(r) = &row.rolled_out {
            status[ROLLED_OUT] = r.clone();
        }
        object["status"] = status;
        match resources.restore(kind, object).await {
            Ok(_) | Err(ResourceError::AlreadyExists { .. }) => {
                resources.store().delete_legacy_kserve_row(&row).await?;
                done.moved += 1;
            }
            Err(e @ (ResourceError::Invalid { .. } | ResourceError::BadRequest { .. })) => {
                tracing::warn!(kind = kind.kind, namespace = %row.namespace, name = %row.name, error = %e,
                    "A stored object from before the resource model is no longer valid; it is kept in its old table and not served.");
                done.kept += 1;
            }
            Err(e) => return Err(e),
        }
    }
    if done.moved > 0 {
        tracing::info!(
            moved = done.moved,
            "InferenceServices and TrainedModels moved onto the resource model."
        );
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn isvc(spec: Value) -> Value {
        json!({
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": "iris", "namespace": "default", "uid": "u1",
                         "resourceVersion": "7", "generation": 2},
            "spec": spec,
        })
    }

    #[test]
    fn a_service_is_stored_with_its_defaults_and_read_back() {
        let mut v = isvc(json!({"predictor": {"sklearn": {"storageUri": "file:///m"}}}));
        validate_inference_service(&mut v).unwrap();
        // The parser's defaults are spelled out, and parse again.
        let once = v["spec"].clone();
        assert_ne!(
            once,
            json!({"predictor": {"sklearn": {"storageUri": "file:///m"}}})
        );
        validate_inference_service(&mut v).unwrap();
        assert_eq!(v["spec"], once, "defaulting is idempotent");
        v["status"] = json!({"observedGeneration": 2, ROLLED_OUT: {"revision": "r"}});
        let s = Stored::from_object(&v).unwrap();
        assert_eq!(
            (s.id.as_str(), s.generation, s.observed_generation),
            ("u1", 2, 2)
        );
        assert_eq!(s.rolled_out().unwrap()["revision"], "r");
        assert!(s.spec["metadata"].get("uid").is_none());
    }

    #[test]
    fn a_bad_spec_names_the_field() {
        let mut v = isvc(json!({"predictor": {"sklearn": {"storageUri": 3}}}));
        let causes = validate_inference_service(&mut v).unwrap_err();
        assert!(causes[0].field.contains("storageUri"), "{:?}", causes[0]);
        let mut v = isvc(json!({"predictor": {"sklearn": {"storgeUri": "file:///m"}}}));
        let causes = validate_inference_service(&mut v).unwrap_err();
        assert!(
            causes[0].field.contains("storgeUri") || causes[0].message.contains("storgeUri"),
            "{:?}",
            causes[0]
        );
    }
}
