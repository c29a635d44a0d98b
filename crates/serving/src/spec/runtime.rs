//! The `serving.kserve.io/v1alpha1` resources next to InferenceService:
//! `TrainedModel` (a model loaded into a multi-model predictor) and
//! `ServingRuntime` / `ClusterServingRuntime` (which server serves which
//! model formats and protocols).

use std::collections::BTreeMap;

use oxflow_core::Namespace;
use serde_json::Value;

use super::kube::{Container, PodOptions};
use super::quantity::Quantity;
use super::validate::{Result, container_spec, err, named_container, protocol, storage_uri};
use super::values::{IsvcName, ObjectName};
use super::wire;
use super::{
    ModelFormat, ModelFormatName, Protocol, SERVING_CONTAINER_NAME, SpecError, StorageUri,
};

/// A TrainedModel: one more model for an InferenceService's predictor to
/// load (KServe's older multi-model serving).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedModel {
    /// `metadata.name`: also the model's name in inference URLs.
    pub name: ObjectName,
    /// `metadata.namespace`, when the file names one.
    pub namespace: Option<Namespace>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `spec`.
    pub spec: TrainedModelSpec,
}

/// `spec` of a TrainedModel.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedModelSpec {
    /// `inferenceService`: the service (same namespace) whose predictor
    /// loads the model.
    pub inference_service: IsvcName,
    /// `model`.
    pub model: TrainedModelStorage,
}

/// `spec.model` of a TrainedModel; every field is required.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedModelStorage {
    /// `storageUri`.
    pub storage_uri: StorageUri,
    /// `framework`: the model format.
    pub framework: ModelFormatName,
    /// `memory`: what the model needs once loaded (positive); KServe packs
    /// models into predictors by it.
    pub memory: Quantity,
}

impl TrainedModel {
    /// The model in KServe's shape.
    pub fn to_kserve_value(&self) -> Value {
        super::render::trained_model(self)
    }
}

/// Whether a runtime is namespaced or cluster-wide.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuntimeScope {
    /// `kind: ServingRuntime`, usable by services in its namespace (the file's
    /// `metadata.namespace`, or the caller's).
    Namespaced(Option<Namespace>),
    /// `kind: ClusterServingRuntime`, usable everywhere; has no namespace.
    Cluster,
}

impl RuntimeScope {
    /// KServe's `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Namespaced(_) => "ServingRuntime",
            Self::Cluster => "ClusterServingRuntime",
        }
    }
}

/// A ServingRuntime or ClusterServingRuntime.
#[derive(Debug, Clone, PartialEq)]
pub struct ServingRuntime {
    /// The kind, and the namespace of a namespaced runtime.
    pub scope: RuntimeScope,
    /// `metadata.name`: what `predictor.model.runtime` refers to.
    pub name: ObjectName,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations` (`serving.kserve.io/server-type` names the
    /// server: mlserver, triton, …).
    pub annotations: BTreeMap<String, String>,
    /// `spec`.
    pub spec: ServingRuntimeSpec,
}

impl ServingRuntime {
    /// The runtime in KServe's shape.
    pub fn to_kserve_value(&self) -> Value {
        super::render::serving_runtime(self)
    }
}

/// `spec` of a ServingRuntime.
#[derive(Debug, Clone, PartialEq)]
pub struct ServingRuntimeSpec {
    /// `supportedModelFormats`.
    pub supported_model_formats: Vec<SupportedModelFormat>,
    /// `multiModel` (default false): the server loads several models
    /// (TrainedModels) at once.
    pub multi_model: bool,
    /// `disabled` (default false): never selected.
    pub disabled: bool,
    /// `protocolVersions`; empty means any protocol.
    pub protocol_versions: Vec<Protocol>,
    /// `containers`: at least one; the one named `kserve-container` serves.
    /// Arguments may hold Go templates (`{{.Name}}`) that the controller fills.
    pub containers: Vec<Container>,
    /// Pod fields (`nodeSelector`, `tolerations`, `affinity`; `volumes`,
    /// `imagePullSecrets`, … kept). Never has a service account.
    pub pod: PodOptions,
    /// `labels` for the runtime's pods.
    pub labels: BTreeMap<String, String>,
    /// `annotations` for the runtime's pods (e.g. `prometheus.kserve.io/port`).
    pub annotations: BTreeMap<String, String>,
    /// ModelMesh fields (`grpcEndpoint`, `grpcDataEndpoint`,
    /// `httpDataEndpoint`, `replicas`, `storageHelper`, `builtInAdapter`),
    /// kept as written.
    pub model_mesh: BTreeMap<String, Value>,
}

impl ServingRuntimeSpec {
    /// Whether the runtime can serve `format` over `protocol`, by KServe's
    /// rules (`RuntimeSupportsModel`, `IsProtocolVersionSupported`): a
    /// format matches `name` or `name:version`, and only entries with
    /// `autoSelect: true` count unless the service names this runtime
    /// (`explicit`). A disabled runtime supports nothing.
    pub fn supports(&self, format: &ModelFormat, protocol: Protocol, explicit: bool) -> bool {
        if self.disabled {
            return false;
        }
        let protocol_ok =
            self.protocol_versions.is_empty() || self.protocol_versions.contains(&protocol);
        protocol_ok
            && self.supported_model_formats.iter().any(|f| {
                (explicit || f.auto_select)
                    && f.name == format.name
                    && match &format.version {
                        None => true,
                        Some(v) => f.version.as_ref() == Some(v),
                    }
            })
    }

    /// The `priority` of the first entry for format `name` (KServe's
    /// `GetPriority`): higher wins among runtimes that support a model.
    pub fn priority(&self, name: &ModelFormatName) -> Option<u32> {
        self.supported_model_formats
            .iter()
            .find(|f| f.name == *name)
            .and_then(|f| f.priority)
    }

    /// The serving container: the one named `kserve-container`, else the
    /// first.
    pub fn serving_container(&self) -> Option<&Container> {
        self.containers
            .iter()
            .find(|c| c.name == SERVING_CONTAINER_NAME)
            .or_else(|| self.containers.first())
    }
}

/// One `supportedModelFormats` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportedModelFormat {
    /// `name`.
    pub name: ModelFormatName,
    /// `version`.
    pub version: Option<String>,
    /// `autoSelect` (default false): the runtime may be chosen for services
    /// that name no runtime.
    pub auto_select: bool,
    /// `priority` (at least 1).
    pub priority: Option<u32>,
}

pub(super) fn trained_model(w: wire::TrainedModel) -> Result<TrainedModel> {
    w.refuse_status("controller")?;
    let meta = w.metadata.unwrap_or_default().check()?;
    let Some(name) = meta.name else {
        return err("metadata.name", "missing; every TrainedModel needs a name");
    };
    let name = ObjectName::new(name).map_err(|e| SpecError::new("metadata.name", e))?;
    let Some(spec) = w.spec else {
        return err(
            "spec",
            "missing; a TrainedModel needs spec.inferenceService and spec.model",
        );
    };
    let Some(isvc) = spec.inference_service.filter(|s| !s.is_empty()) else {
        return err(
            "spec.inferenceService",
            "missing; name the InferenceService whose predictor loads the model",
        );
    };
    let inference_service =
        IsvcName::new(isvc).map_err(|e| SpecError::new("spec.inferenceService", e))?;
    let Some(model) = spec.model else {
        return err(
            "spec.model",
            "missing; give storageUri, framework and memory",
        );
    };
    let Some(uri) = model.storage_uri else {
        return err(
            "spec.model.storageUri",
            "missing; give the model's location",
        );
    };
    let storage_uri = storage_uri(&uri, "spec.model.storageUri")?;
    let Some(framework) = model.framework.filter(|f| !f.is_empty()) else {
        return err(
            "spec.model.framework",
            "missing; name the model's format (sklearn, xgboost, …)",
        );
    };
    let Some(memory) = model.memory else {
        return err(
            "spec.model.memory",
            "missing; give the memory the loaded model needs (e.g. 256Mi)",
        );
    };
    let memory = Quantity::parse(&memory.0)
        .map_err(|e| SpecError::new("spec.model.memory", e.to_string()))?;
    if memory.nanos() <= 0 {
        return err("spec.model.memory", format!("{memory} must be more than 0"));
    }
    Ok(TrainedModel {
        name,
        namespace: meta.namespace,
        labels: meta.labels,
        annotations: meta.annotations,
        spec: TrainedModelSpec {
            inference_service,
            model: TrainedModelStorage {
                storage_uri,
                framework: ModelFormatName::from_name(&framework),
                memory,
            },
        },
    })
}

pub(super) fn serving_runtime(w: wire::ServingRuntime) -> Result<ServingRuntime> {
    w.refuse_status("controller")?;
    let cluster = w.kind.as_deref() == Some("ClusterServingRuntime");
    let meta = w.metadata.unwrap_or_default().check()?;
    let Some(name) = meta.name else {
        return err("metadata.name", "missing; every runtime needs a name");
    };
    let name = ObjectName::new(name).map_err(|e| SpecError::new("metadata.name", e))?;
    let scope = if cluster {
        if meta.namespace.is_some() {
            return err(
                "metadata.namespace",
                "a ClusterServingRuntime is cluster-wide and has no namespace; remove it, or make it a ServingRuntime",
            );
        }
        RuntimeScope::Cluster
    } else {
        RuntimeScope::Namespaced(meta.namespace)
    };
    let Some(mut s) = w.spec else {
        return err(
            "spec",
            "missing; a runtime needs spec.supportedModelFormats and spec.containers",
        );
    };
    if s.worker_spec.is_some() {
        return err(
            "spec.workerSpec",
            "multi-node serving (workerSpec) is not supported; serve the model from one process",
        );
    }
    let mut supported_model_formats: Vec<SupportedModelFormat> = Vec::new();
    for (i, f) in s
        .supported_model_formats
        .take()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let path = format!("spec.supportedModelFormats[{i}]");
        let Some(fname) = f.name.filter(|n| !n.is_empty()) else {
            return err(format!("{path}.name"), "missing; name the model format");
        };
        let priority = match f.priority {
            None => None,
            Some(p) if p < 1 || p > i64::from(i32::MAX) => {
                return err(
                    format!("{path}.priority"),
                    format!("{p} must be at least 1"),
                );
            }
            Some(p) => u32::try_from(p).ok(),
        };
        let entry = SupportedModelFormat {
            name: ModelFormatName::from_name(&fname),
            version: f.version.map(|v| v.0).filter(|v| !v.is_empty()),
            auto_select: f.auto_select.unwrap_or(false),
            priority,
        };
        // KServe's validateModelFormatPrioritySame.
        if entry.auto_select
            && let Some(other) = supported_model_formats.iter().find(|o| {
                o.auto_select
                    && o.name == entry.name
                    && o.priority.is_some()
                    && entry.priority.is_some()
            })
            && other.priority != entry.priority
        {
            return err(
                format!("{path}.priority"),
                format!(
                    "differs from the priority of another {} entry; give every entry of one format the same priority",
                    entry.name
                ),
            );
        }
        supported_model_formats.push(entry);
    }
    let mut protocol_versions = Vec::new();
    for (i, p) in s
        .protocol_versions
        .take()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let p = protocol(&p, &format!("spec.protocolVersions[{i}]"))?;
        if !protocol_versions.contains(&p) {
            protocol_versions.push(p);
        }
    }
    let wire_containers = s.containers.take().unwrap_or_default();
    if wire_containers.is_empty() {
        return err(
            "spec.containers",
            "missing; a runtime needs the container that serves (named kserve-container)",
        );
    }
    let mut containers: Vec<Container> = Vec::new();
    for (i, mut c) in wire_containers.into_iter().enumerate() {
        let path = format!("spec.containers[{i}]");
        // An unnamed first container is the serving one.
        if c.name.as_deref().is_none_or(str::is_empty) && i == 0 {
            c.name = None;
            containers.push(Container {
                name: SERVING_CONTAINER_NAME.to_owned(),
                spec: container_spec(c, &path)?,
            });
            continue;
        }
        let c = named_container(c, &path)?;
        if containers.iter().any(|o| o.name == c.name) {
            return err(
                format!("{path}.name"),
                format!(
                    "two containers are named {:?}; container names must be unique",
                    c.name
                ),
            );
        }
        containers.push(c);
    }
    let mut model_mesh = s.take_kept();
    let pod = PodOptions {
        service_account_name: None,
        node_selector: s.node_selector.take().unwrap_or_default(),
        tolerations: s.tolerations.take().unwrap_or_default(),
        affinity: s.affinity.take(),
        init_containers: Vec::new(),
        kubernetes: split_pod_kept(&mut model_mesh),
    };
    Ok(ServingRuntime {
        scope,
        name,
        labels: meta.labels,
        annotations: meta.annotations,
        spec: ServingRuntimeSpec {
            supported_model_formats,
            multi_model: s.multi_model.unwrap_or(false),
            disabled: s.disabled.unwrap_or(false),
            protocol_versions,
            containers,
            pod,
            labels: s.labels.take().unwrap_or_default(),
            annotations: s.annotations.take().unwrap_or_default(),
            model_mesh,
        },
    })
}

/// The kept ServingRuntime fields that are pod fields (the rest are
/// ModelMesh's).
pub(super) const POD_KEPT: [&str; 5] = [
    "volumes",
    "imagePullSecrets",
    "hostIPC",
    "schedulerName",
    "resourceClaims",
];

fn split_pod_kept(kept: &mut BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    POD_KEPT
        .iter()
        .filter_map(|k| kept.remove(*k).map(|v| ((*k).to_owned(), v)))
        .collect()
}
