//! Wire shape → typed model: KServe's webhook defaults and validation rules,
//! Kubernetes' rules for the container fields Oxflow interprets, and
//! Oxflow's refusals of what it cannot serve.
//!
//! Checks run in a fixed order and the first failure is returned, so a user
//! fixes one clearly named field at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;

use oxflow_core::spec::{UnknownFields, from_value};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::kube::{
    Container, ContainerPort, ContainerSpec, EnvValue, EnvVar, HttpGetAction, PROTOCOL_ENV,
    PodOptions, PortProtocol, PortRef, Probe, ProbeAction, ResourceRequirements,
    SERVING_CONTAINER_NAME, STORAGE_URI_ENV, TRANSFORMER_CONTAINER_NAME,
};
use super::quantity::Quantity;
use super::values::{HttpUrl, IsvcName, ObjectName, Percent, is_dns1123_label, parse_go_duration};
use super::wire::{self, IntOrString};
use super::{
    API_VERSION_V1ALPHA1, API_VERSION_V1BETA1, ArtExplainer, Batcher, CanarySpec,
    ComponentExtension, DEFAULT_MIN_REPLICAS, DEFAULT_MODEL_MOUNT_PATH, DEPLOYMENT_MODE_ANNOTATION,
    DeploymentMode, Explainer, ExplainerSpec, InferenceService, InferenceServiceSpec, LoggerMode,
    LoggerSpec, LoggerStorage, MetricTargetType, ModelFormat, ModelFormatName, ModelSpec,
    ModelStorageSpec, Predictor, PredictorSpec, Protocol, Resource, ScaleMetric, SpecError,
    StorageMount, StorageUri, TransformerSpec,
};

pub(super) type Result<T> = std::result::Result<T, SpecError>;

pub(super) fn err<T>(path: impl Into<String>, message: impl Into<String>) -> Result<T> {
    Err(SpecError::new(path, message))
}

/// Environment variables KServe refuses in any container
/// (`validation.DefaultBlockedEnvVars`).
const BLOCKED_ENV_VARS: [&str; 1] = ["PYTHONPATH"];

/// KServe's serving runtimes whose protocol defaults to `v2` when a model
/// names them without a `protocolVersion` (`SetRuntimeDefaults` by name).
const V2_RUNTIMES: [&str; 2] = ["kserve-mlserver", "kserve-tritonserver"];

/// The legacy framework keys of a predictor, in KServe's order
/// (`PredictorSpec.GetImplementations`), with the protocol KServe's
/// webhook gives each when none is set.
const FRAMEWORK_KEYS: [(&str, Protocol); 10] = [
    ("xgboost", Protocol::V1),
    ("pytorch", Protocol::V1),
    ("triton", Protocol::V2),
    ("sklearn", Protocol::V1),
    ("tensorflow", Protocol::V1),
    ("onnx", Protocol::V2),
    ("pmml", Protocol::V1),
    ("lightgbm", Protocol::V1),
    ("paddle", Protocol::V1),
    ("huggingface", Protocol::V2),
];

/// Reads `doc` into the wire type `T`, naming the field of any type error
/// and suggesting the closest field for an unknown one.
pub(super) fn deserialize<T: DeserializeOwned>(doc: Value) -> Result<T> {
    from_value(doc, UnknownFields::Suggested { api: "KServe" })
}

/// Kinds of the `serving.kserve.io` group that Oxflow does not read yet.
const UNSUPPORTED_KINDS: [&str; 8] = [
    "InferenceGraph",
    "LLMInferenceService",
    "LLMInferenceServiceConfig",
    "LocalModelCache",
    "LocalModelNamespaceCache",
    "LocalModelNode",
    "LocalModelNodeGroup",
    "ClusterStorageContainer",
];

/// Chooses the kind from `apiVersion` and `kind`, then reads it.
pub(super) fn resource(doc: Value) -> Result<Resource> {
    let Value::Object(map) = &doc else {
        return err(
            "",
            "expected a KServe resource (an object with apiVersion, kind, metadata and spec)",
        );
    };
    let text = |key: &str| match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => err(key, format!("expected a string, found {other}")),
    };
    let api_version = text("apiVersion")?;
    let kind = text("kind")?;
    let Some(kind) = kind else {
        return err(
            "kind",
            "missing; set kind: InferenceService (or TrainedModel, ServingRuntime, ClusterServingRuntime)",
        );
    };
    let expected = match kind.as_str() {
        "InferenceService" => API_VERSION_V1BETA1,
        "TrainedModel" | "ServingRuntime" | "ClusterServingRuntime" => API_VERSION_V1ALPHA1,
        k if UNSUPPORTED_KINDS.contains(&k) => {
            return err(
                "kind",
                format!(
                    "{k} is not supported by Oxflow yet; it serves InferenceService, TrainedModel, ServingRuntime and ClusterServingRuntime"
                ),
            );
        }
        k => {
            return err(
                "kind",
                format!(
                    "{k:?} is not a KServe resource Oxflow reads; expected InferenceService, TrainedModel, ServingRuntime or ClusterServingRuntime"
                ),
            );
        }
    };
    match api_version.as_deref() {
        Some(v) if v == expected => {}
        None => {
            return err("apiVersion", format!("missing; set apiVersion: {expected}"));
        }
        Some(v) if v.starts_with("serving.kubeflow.org/") => {
            return err(
                "apiVersion",
                format!(
                    "{v:?} is KFServing's API, which KServe replaced; set apiVersion: {expected} (the v1beta1 fields are the same)"
                ),
            );
        }
        Some(v) => {
            return err(
                "apiVersion",
                format!("{v:?} is not supported; Oxflow reads {kind} as {expected}"),
            );
        }
    }
    match kind.as_str() {
        "InferenceService" => Ok(Resource::InferenceService(Box::new(inference_service(
            deserialize(doc)?,
        )?))),
        "TrainedModel" => Ok(Resource::TrainedModel(super::runtime::trained_model(
            deserialize(doc)?,
        )?)),
        _ => Ok(Resource::ServingRuntime(super::runtime::serving_runtime(
            deserialize(doc)?,
        )?)),
    }
}

fn inference_service(w: wire::InferenceService) -> Result<InferenceService> {
    w.refuse_status("controller")?;
    let mut meta = w.metadata.unwrap_or_default().check()?;
    let Some(name) = meta.name.take() else {
        return err(
            "metadata.name",
            "missing; every InferenceService needs a name",
        );
    };
    let name = IsvcName::new(name).map_err(|e| SpecError::new("metadata.name", e))?;
    let deployment_mode = deployment_mode(meta.annotations.remove(DEPLOYMENT_MODE_ANNOTATION))?;
    let Some(spec) = w.spec else {
        return err("spec", "missing; an InferenceService needs spec.predictor");
    };
    let Some(predictor_w) = spec.predictor else {
        return err(
            "spec.predictor",
            "missing; set spec.predictor.model (modelFormat and storageUri) or spec.predictor.containers",
        );
    };
    let predictor = predictor(*predictor_w, "spec.predictor")?;
    let transformer = spec
        .transformer
        .map(|t| transformer(*t, "spec.transformer"))
        .transpose()?;
    let explainer = spec
        .explainer
        .map(|e| explainer(*e, "spec.explainer"))
        .transpose()?;
    let canary = canaries(spec.canary.unwrap_or_default(), &predictor, deployment_mode)?;
    Ok(InferenceService {
        name,
        namespace: meta.namespace,
        labels: meta.labels,
        annotations: meta.annotations,
        deployment_mode,
        spec: InferenceServiceSpec {
            predictor,
            transformer,
            explainer,
            canary,
        },
    })
}

fn deployment_mode(annotation: Option<String>) -> Result<DeploymentMode> {
    let path = format!("metadata.annotations.{DEPLOYMENT_MODE_ANNOTATION}");
    match annotation.as_deref() {
        // KServe's `DefaultDeployment`.
        None | Some("") | Some("Standard") | Some("RawDeployment") => Ok(DeploymentMode::Standard),
        Some("Knative") | Some("Serverless") => Ok(DeploymentMode::Knative),
        Some("ModelMesh") => err(
            path,
            "ModelMesh is not supported: Oxflow loads models into its own servers; remove the annotation (several TrainedModels can share one predictor instead)",
        ),
        Some(other) => err(
            path,
            format!("{other:?} is not a deployment mode; use Standard or Knative"),
        ),
    }
}

// ---------------------------------------------------------------------------
// Predictor.

fn predictor(mut w: wire::PredictorSpec, path: &str) -> Result<PredictorSpec> {
    if w.worker_spec.is_some() {
        return err(
            format!("{path}.workerSpec"),
            "multi-node serving (workerSpec) is not supported; serve the model from one process",
        );
    }
    let name = match w.name.take().filter(|n| !n.is_empty()) {
        None => None,
        Some(n) if is_dns1123_label(&n) => Some(n),
        Some(n) => {
            return err(
                format!("{path}.name"),
                format!(
                    "{n:?} is not a valid predictor name: use 1-63 lower case letters, digits and '-', starting and ending with a letter or digit"
                ),
            );
        }
    };

    // KServe's "exactly one implementation": `model`, one framework key, or
    // containers (one named kserve-container, or a single one).
    let mut models: Vec<(String, wire::ModelSpec, Option<Legacy>)> = Vec::new();
    for (key, protocol) in FRAMEWORK_KEYS {
        let slot = match key {
            "xgboost" => w.xgboost.take(),
            "pytorch" => w.pytorch.take(),
            "triton" => w.triton.take(),
            "sklearn" => w.sklearn.take(),
            "tensorflow" => w.tensorflow.take(),
            "onnx" => w.onnx.take(),
            "pmml" => w.pmml.take(),
            "lightgbm" => w.lightgbm.take(),
            "paddle" => w.paddle.take(),
            _ => w.huggingface.take(),
        };
        if let Some(m) = slot {
            models.push((
                format!("{path}.{key}"),
                *m,
                Some((ModelFormatName::from_name(key), protocol)),
            ));
        }
    }
    if let Some(m) = w.model.take() {
        models.push((format!("{path}.model"), *m, None));
    }
    if models.len() > 1 {
        return err(
            models[1].0.clone(),
            format!(
                "conflicts with {}: a predictor has exactly one implementation (model, one framework key such as sklearn, or containers)",
                models[0].0
            ),
        );
    }

    let pod = w.take_pod();
    let (pod, containers) = pod_options(pod, path)?;
    let named_serving: Vec<usize> = containers
        .iter()
        .enumerate()
        .filter(|(_, c)| c.name.as_deref() == Some(SERVING_CONTAINER_NAME))
        .map(|(i, _)| i)
        .collect();
    if let Some((model_path, _, _)) = models.first()
        && let Some(&i) = named_serving.first()
    {
        return err(
            format!("{path}.containers[{i}]"),
            format!(
                "is named {SERVING_CONTAINER_NAME}, which makes it a second implementation next to {model_path}; rename the sidecar or remove {model_path}"
            ),
        );
    }
    if named_serving.len() > 1 {
        return err(
            format!("{path}.containers[{}].name", named_serving[1]),
            format!(
                "a second container is named {SERVING_CONTAINER_NAME}; exactly one container serves"
            ),
        );
    }

    let mut sidecars = Vec::new();
    let implementation = if let Some((model_path, m, legacy)) = models.pop() {
        for (i, c) in containers.into_iter().enumerate() {
            sidecars.push(named_container(c, &format!("{path}.containers[{i}]"))?);
        }
        Predictor::Model(model_spec(m, &model_path, legacy)?)
    } else if containers.is_empty() {
        return err(
            path,
            "has no implementation: set model (modelFormat and storageUri), a framework key such as sklearn, or containers",
        );
    } else {
        let serving = match named_serving.first() {
            Some(&i) => i,
            // KServe's CustomPredictor.Default names a single container, or
            // an unnamed first one, kserve-container.
            None if containers.len() == 1 || containers[0].name.is_none() => 0,
            None => {
                return err(
                    format!("{path}.containers"),
                    format!(
                        "none of the {} containers is named {SERVING_CONTAINER_NAME}; name the one that serves {SERVING_CONTAINER_NAME}",
                        containers.len()
                    ),
                );
            }
        };
        let mut serving_container = None;
        for (i, mut c) in containers.into_iter().enumerate() {
            let cpath = format!("{path}.containers[{i}]");
            if i == serving {
                c.name = None;
                let spec = container_spec(c, &cpath)?;
                serving_env(&spec, &cpath, &[Protocol::V1, Protocol::V2])?;
                serving_container = Some(Container {
                    name: SERVING_CONTAINER_NAME.to_owned(),
                    spec,
                });
            } else {
                sidecars.push(named_container(c, &cpath)?);
            }
        }
        match serving_container {
            Some(c) => Predictor::Custom(c),
            None => return err(format!("{path}.containers"), "no serving container"),
        }
    };
    unique_names(
        std::iter::once(match &implementation {
            Predictor::Custom(c) => Some(c.name.as_str()),
            Predictor::Model(_) => None,
        })
        .flatten()
        .chain(sidecars.iter().map(|c| c.name.as_str()))
        .chain(pod.init_containers.iter().map(|c| c.name.as_str())),
        &format!("{path}.containers"),
    )?;
    // KServe's validateCollocationStorageURI.
    for (i, c) in sidecars.iter().enumerate() {
        if c.name == TRANSFORMER_CONTAINER_NAME
            && let Some(j) = c.spec.env.iter().position(|e| e.name == STORAGE_URI_ENV)
        {
            return err(
                format!("{path}.containers[{i}].env[{j}]"),
                "a collocated transformer-container must not set STORAGE_URI; give the model's location to the predictor",
            );
        }
    }

    let storage_uris = storage_uris(w.storage_uris.take(), path)?;
    let own_uri = match &implementation {
        Predictor::Model(m) => m.storage_uri.is_some(),
        Predictor::Custom(c) => c.spec.env_value(STORAGE_URI_ENV).is_some(),
    };
    if own_uri && !storage_uris.is_empty() {
        return err(
            format!("{path}.storageUris"),
            "cannot be combined with a storageUri (or STORAGE_URI); give every model location in storageUris, or just one storageUri",
        );
    }
    let storage_container_name = match w.storage_container_name.take() {
        None => None,
        Some(n) => Some(
            ObjectName::new(&n)
                .map_err(|e| SpecError::new(format!("{path}.storageContainerName"), e))?
                .as_str()
                .to_owned(),
        ),
    };
    let component = extension(w.take_extension(), path)?;
    Ok(PredictorSpec {
        name,
        implementation,
        sidecars,
        storage_uris,
        storage_container_name,
        pod,
        component,
    })
}

/// A framework key's format and the protocol KServe defaults it to.
type Legacy = (ModelFormatName, Protocol);

fn model_spec(mut m: wire::ModelSpec, path: &str, legacy: Option<Legacy>) -> Result<ModelSpec> {
    if m.confidential.is_some() {
        return err(
            format!("{path}.confidential"),
            "confidential model serving is not supported; remove it",
        );
    }
    // An empty name is no name (KServe's Python SDK sends `name: ""` from
    // its model defaults; Go reads it as unset).
    if m.name.as_deref().is_some_and(|n| !n.is_empty()) {
        return err(
            format!("{path}.name"),
            "the 'name' field is not allowed in a model predictor (KServe's webhook refuses it too: the container is always kserve-container); remove it, or set spec.predictor.name to name the predictor variant",
        );
    }
    let (format, legacy_protocol) = match legacy {
        Some((name, protocol)) => {
            let key = path.rsplit('.').next().unwrap_or_default();
            if m.model_format.is_some() {
                return err(
                    format!("{path}.modelFormat"),
                    format!(
                        "belongs to spec.predictor.model; under {key}: the format is {key} (move the fields to spec.predictor.model to choose another)"
                    ),
                );
            }
            if m.runtime.is_some() {
                return err(
                    format!("{path}.runtime"),
                    format!(
                        "belongs to spec.predictor.model; write model: {{modelFormat: {{name: {key}}}, runtime: …}} to choose a runtime"
                    ),
                );
            }
            (
                ModelFormat {
                    name,
                    version: None,
                },
                Some(protocol),
            )
        }
        None => {
            let Some(f) = m.model_format.take() else {
                return err(
                    format!("{path}.modelFormat"),
                    "missing; name the model's format, e.g. modelFormat: {name: sklearn}",
                );
            };
            let Some(name) = f.name.filter(|n| !n.is_empty()) else {
                return err(
                    format!("{path}.modelFormat.name"),
                    "missing; name the model's format (sklearn, xgboost, lightgbm, onnx, tensorflow, pytorch, …)",
                );
            };
            let version = f.version.map(|v| v.0).filter(|v| !v.is_empty());
            (
                ModelFormat {
                    name: ModelFormatName::from_name(&name),
                    version,
                },
                None,
            )
        }
    };
    let runtime = match m.runtime.take().filter(|r| !r.is_empty()) {
        None => None,
        Some(r) => Some(
            ObjectName::new(&r)
                .map_err(|e| SpecError::new(format!("{path}.runtime"), e))?
                .as_str()
                .to_owned(),
        ),
    };
    let explicit = match m.protocol_version.take() {
        None => None,
        Some(p) => Some(protocol(&p, &format!("{path}.protocolVersion"))?),
    };
    let protocol = explicit.unwrap_or_else(|| {
        let v2_format =
            matches!(format.name, ModelFormatName::Triton) || format.name.as_str() == "vLLM";
        let v2_runtime = runtime.as_deref().is_some_and(|r| V2_RUNTIMES.contains(&r));
        match legacy_protocol {
            Some(p) => p,
            None if v2_format || v2_runtime => Protocol::V2,
            None => Protocol::V1,
        }
    });
    let storage_uri = m
        .storage_uri
        .take()
        .map(|u| storage_uri(&u, &format!("{path}.storageUri")))
        .transpose()?;
    let storage = m.storage.take().map(model_storage);
    let runtime_version = m.runtime_version.take().filter(|v| !v.is_empty());
    let container = container_spec(m.take_container(), path)?;
    Ok(ModelSpec {
        format,
        runtime,
        runtime_version,
        protocol,
        storage_uri,
        storage,
        container,
    })
}

pub(super) fn protocol(p: &str, path: &str) -> Result<Protocol> {
    Protocol::parse(p).ok_or_else(|| {
        SpecError::new(
            path,
            format!("{p:?} is not a protocol version; use v1, v2, grpc-v1 or grpc-v2"),
        )
    })
}

pub(super) fn storage_uri(uri: &str, path: &str) -> Result<StorageUri> {
    StorageUri::parse(uri).map_err(|e| SpecError::new(path, e))
}

fn model_storage(s: wire::ModelStorage) -> ModelStorageSpec {
    ModelStorageSpec {
        key: s.key.filter(|k| !k.is_empty()),
        path: s.path.filter(|p| !p.is_empty()),
        parameters: s.parameters.unwrap_or_default(),
        schema_path: s.schema_path.filter(|p| !p.is_empty()),
    }
}

/// `STORAGE_URI` and `PROTOCOL` of a custom serving container.
fn serving_env(spec: &ContainerSpec, path: &str, protocols: &[Protocol]) -> Result<()> {
    for (i, e) in spec.env.iter().enumerate() {
        let EnvValue::Literal(v) = &e.value else {
            continue;
        };
        let vpath = format!("{path}.env[{i}].value");
        if e.name == STORAGE_URI_ENV {
            storage_uri(v, &vpath)?;
        }
        if e.name == PROTOCOL_ENV && !Protocol::parse(v).is_some_and(|p| protocols.contains(&p)) {
            let allowed: Vec<&str> = protocols.iter().map(|p| p.as_str()).collect();
            return err(
                vpath,
                format!(
                    "{v:?} is not a protocol this container may declare; use {}",
                    allowed.join(" or ")
                ),
            );
        }
    }
    Ok(())
}

fn storage_uris(
    entries: Option<Vec<wire::StorageUriEntry>>,
    path: &str,
) -> Result<Vec<StorageMount>> {
    let mut out: Vec<StorageMount> = Vec::new();
    for (i, e) in entries.unwrap_or_default().into_iter().enumerate() {
        let epath = format!("{path}.storageUris[{i}]");
        let Some(uri) = e.uri else {
            return err(format!("{epath}.uri"), "missing; give the model's location");
        };
        let uri = storage_uri(&uri, &format!("{epath}.uri"))?;
        let mount_path = e
            .mount_path
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| DEFAULT_MODEL_MOUNT_PATH.to_owned());
        let mpath = format!("{epath}.mountPath");
        if !mount_path.starts_with('/') {
            return err(mpath, format!("{mount_path:?} must be an absolute path"));
        }
        if mount_path.trim_end_matches('/').is_empty() {
            return err(mpath, "must not be /; mount the model in a directory");
        }
        if mount_path.split('/').any(|s| s == "..") {
            return err(mpath, format!("{mount_path:?} must not contain '..'"));
        }
        if mount_path.len() > 255 {
            return err(mpath, "is longer than 255 characters");
        }
        if out.iter().any(|m| m.mount_path == mount_path) {
            return err(
                mpath,
                format!("{mount_path:?} is used twice; give each model its own mount path"),
            );
        }
        out.push(StorageMount { uri, mount_path });
    }
    // KServe: downloaded (non-PVC) models must share a parent directory
    // other than / (they are fetched into one volume).
    let downloaded: Vec<&str> = out
        .iter()
        .filter(|m| m.uri.scheme() != super::StorageScheme::Pvc)
        .map(|m| m.mount_path.as_str())
        .collect();
    if downloaded.len() > 1 && common_parent(&downloaded) == "/" {
        return err(
            format!("{path}.storageUris"),
            format!(
                "the mount paths {} have no common parent directory other than /; put them under one directory (e.g. /mnt/models/a and /mnt/models/b)",
                downloaded.join(", ")
            ),
        );
    }
    Ok(out)
}

/// The longest common directory of absolute paths (`/` when none).
fn common_parent(paths: &[&str]) -> String {
    let split: Vec<Vec<&str>> = paths
        .iter()
        .map(|p| p.split('/').filter(|s| !s.is_empty()).collect())
        .collect();
    let mut common: Vec<&str> = Vec::new();
    'outer: for (i, seg) in split[0].iter().enumerate() {
        for other in &split[1..] {
            if other.get(i) != Some(seg) {
                break 'outer;
            }
        }
        common.push(seg);
    }
    // A path that is itself the common prefix has no parent inside it.
    if split.iter().any(|s| s.len() == common.len()) {
        common.pop();
    }
    format!("/{}", common.join("/"))
}

// ---------------------------------------------------------------------------
// Transformer, explainer, canary.

fn transformer(mut w: wire::TransformerSpec, path: &str) -> Result<TransformerSpec> {
    let (pod, containers) = pod_options(w.take_pod(), path)?;
    let (container, sidecars) = first_serving(
        containers,
        path,
        "a transformer is a custom container (containers: [{image, command, args}])",
    )?;
    serving_env(
        &container.spec,
        &format!("{path}.containers[0]"),
        &Protocol::ALL,
    )?;
    check_names(&container, &sidecars, &pod, path)?;
    let storage_uris = storage_uris(w.storage_uris.take(), path)?;
    storage_conflict(&container, &storage_uris, path)?;
    Ok(TransformerSpec {
        container,
        sidecars,
        storage_uris,
        pod,
        component: extension(w.take_extension(), path)?,
    })
}

fn explainer(mut w: wire::ExplainerSpec, path: &str) -> Result<ExplainerSpec> {
    for (key, present) in [("alibi", w.alibi.is_some()), ("aix", w.aix.is_some())] {
        if present {
            return err(
                format!("{path}.{key}"),
                format!(
                    "KServe removed the built-in {key} explainer; run it as a custom container (explainer.containers with the explainer image and --predictor_host), or use art"
                ),
            );
        }
    }
    let (pod, containers) = pod_options(w.take_pod(), path)?;
    let storage_uris = storage_uris(w.storage_uris.take(), path)?;
    let (implementation, sidecars) = match w.art.take() {
        Some(art) => {
            if !containers.is_empty() {
                return err(
                    format!("{path}.containers"),
                    format!(
                        "conflicts with {path}.art: an explainer has exactly one implementation (art or containers)"
                    ),
                );
            }
            let art = art_explainer(*art, &format!("{path}.art"))?;
            if art.storage_uri.is_some() && !storage_uris.is_empty() {
                return err(
                    format!("{path}.storageUris"),
                    format!("cannot be combined with {path}.art.storageUri"),
                );
            }
            (Explainer::Art(art), Vec::new())
        }
        None => {
            let (container, sidecars) = first_serving(
                containers,
                path,
                "set art or containers (e.g. an Alibi explainer image with --predictor_host)",
            )?;
            serving_env(
                &container.spec,
                &format!("{path}.containers[0]"),
                &Protocol::ALL,
            )?;
            check_names(&container, &sidecars, &pod, path)?;
            storage_conflict(&container, &storage_uris, path)?;
            (Explainer::Custom(container), sidecars)
        }
    };
    Ok(ExplainerSpec {
        implementation,
        sidecars,
        storage_uris,
        pod,
        component: extension(w.take_extension(), path)?,
    })
}

fn art_explainer(mut a: wire::ArtExplainer, path: &str) -> Result<ArtExplainer> {
    let Some(explainer_type) = a.explainer_type.take().filter(|t| !t.is_empty()) else {
        return err(
            format!("{path}.type"),
            "missing; set the ART explainer type (SquareAttack)",
        );
    };
    let storage_uri = a
        .storage_uri
        .take()
        .filter(|u| !u.is_empty())
        .map(|u| storage_uri(&u, &format!("{path}.storageUri")))
        .transpose()?;
    let mut c = a.take_container();
    // KServe names the ART container kserve-container whatever it was called.
    c.name = None;
    Ok(ArtExplainer {
        explainer_type,
        storage_uri,
        runtime_version: a.runtime_version.take().filter(|v| !v.is_empty()),
        config: a.config.take().unwrap_or_default(),
        storage: a.storage.take().map(model_storage),
        container: container_spec(c, path)?,
    })
}

/// Transformers and explainers: the first container serves and KServe
/// names it kserve-container; the others need names.
fn first_serving(
    containers: Vec<wire::Container>,
    path: &str,
    missing: &str,
) -> Result<(Container, Vec<Container>)> {
    let mut it = containers.into_iter();
    let Some(mut first) = it.next() else {
        return err(format!("{path}.containers"), format!("missing; {missing}"));
    };
    first.name = None;
    let container = Container {
        name: SERVING_CONTAINER_NAME.to_owned(),
        spec: container_spec(first, &format!("{path}.containers[0]"))?,
    };
    let sidecars = it
        .enumerate()
        .map(|(i, c)| named_container(c, &format!("{path}.containers[{}]", i + 1)))
        .collect::<Result<Vec<_>>>()?;
    Ok((container, sidecars))
}

fn check_names(c: &Container, sidecars: &[Container], pod: &PodOptions, path: &str) -> Result<()> {
    unique_names(
        std::iter::once(c.name.as_str())
            .chain(sidecars.iter().map(|s| s.name.as_str()))
            .chain(pod.init_containers.iter().map(|s| s.name.as_str())),
        &format!("{path}.containers"),
    )
}

fn storage_conflict(c: &Container, uris: &[StorageMount], path: &str) -> Result<()> {
    if c.spec.env_value(STORAGE_URI_ENV).is_some() && !uris.is_empty() {
        return err(
            format!("{path}.storageUris"),
            "cannot be combined with the container's STORAGE_URI; give every location in storageUris",
        );
    }
    Ok(())
}

fn unique_names<'a>(names: impl Iterator<Item = &'a str>, path: &str) -> Result<()> {
    let mut seen = BTreeSet::new();
    for n in names {
        if !seen.insert(n) {
            return err(
                path,
                format!("two containers are named {n:?}; container names must be unique in a pod"),
            );
        }
    }
    Ok(())
}

fn canaries(
    entries: Vec<wire::Canary>,
    stable: &PredictorSpec,
    mode: DeploymentMode,
) -> Result<Vec<CanarySpec>> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    if mode != DeploymentMode::Standard {
        return err(
            "spec.canary",
            "is only supported in the Standard deployment mode; remove the Knative deploymentMode annotation, or use spec.predictor.canaryTrafficPercent",
        );
    }
    if stable.component.canary_traffic_percent.is_some() {
        return err(
            "spec.canary",
            "cannot be combined with spec.predictor.canaryTrafficPercent; use one canary style",
        );
    }
    if matches!(stable.implementation, Predictor::Custom(_)) && stable.storage_uri().is_none() {
        return err(
            "spec.canary",
            "requires a stable predictor with a model (model.storageUri); a custom container without STORAGE_URI cannot have canaries",
        );
    }
    let mut out: Vec<CanarySpec> = Vec::new();
    let mut total: u32 = 0;
    for (i, c) in entries.into_iter().enumerate() {
        let path = format!("spec.canary[{i}]");
        let Some(percent) = c.traffic_percent else {
            return err(
                format!("{path}.trafficPercent"),
                "missing; give the canary's share of traffic (0 to 100; 0 deploys it without traffic)",
            );
        };
        let traffic_percent = u8::try_from(percent)
            .ok()
            .and_then(Percent::new)
            .ok_or_else(|| {
                SpecError::new(
                    format!("{path}.trafficPercent"),
                    format!("{percent} is not between 0 and 100"),
                )
            })?;
        let ppath = format!("{path}.predictor");
        let Some(p) = c.predictor else {
            return err(ppath, "missing; a canary is a named predictor variant");
        };
        let name = p.name.clone().filter(|n| !n.is_empty());
        let Some(name) = name else {
            return err(
                format!("{ppath}.name"),
                "missing; every canary predictor needs a name (its variant name)",
            );
        };
        if out.iter().any(|o| o.name() == name) {
            return err(
                format!("{ppath}.name"),
                format!("{name:?} is used by another canary; canary names must be unique"),
            );
        }
        if stable.name.as_deref() == Some(name.as_str()) {
            return err(
                format!("{ppath}.name"),
                format!("{name:?} is the stable predictor's name; give the canary another"),
            );
        }
        // Canaries run a fixed number of replicas (KServe's validateCanarySpecs).
        for (field, set) in [
            ("maxReplicas", p.max_replicas.is_some_and(|m| m > 0)),
            ("scaleTarget", p.scale_target.is_some()),
            ("scaleMetric", p.scale_metric.is_some()),
            ("autoScaling", p.auto_scaling.is_some()),
        ] {
            if set {
                return err(
                    format!("{ppath}.{field}"),
                    "must not be set on a canary: canaries run a fixed number of replicas (minReplicas)",
                );
            }
        }
        let explicit_min = p.min_replicas;
        let predictor = predictor(*p, &ppath)?;
        if explicit_min.is_some()
            && predictor.component.min_replicas > stable.component.min_replicas
        {
            return err(
                format!("{ppath}.minReplicas"),
                format!(
                    "{} must not exceed the stable predictor's minReplicas ({})",
                    predictor.component.min_replicas, stable.component.min_replicas
                ),
            );
        }
        total += u32::from(traffic_percent.get());
        out.push(CanarySpec {
            traffic_percent,
            predictor,
        });
    }
    if total > 100 {
        return err(
            "spec.canary",
            format!(
                "the trafficPercent values sum to {total}; the canaries' shares must add up to at most 100"
            ),
        );
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Component extension.

fn count(v: i64, path: &str) -> Result<u32> {
    u32::try_from(v)
        .ok()
        .filter(|n| *n <= i32::MAX as u32)
        .ok_or_else(|| SpecError::new(path, format!("{v} is out of range")))
}

/// A setting that must be at least 1.
fn positive(v: i64, path: &str, what: &str) -> Result<NonZeroU32> {
    if v < 1 {
        return err(path, format!("{v} must be at least 1{what}"));
    }
    NonZeroU32::new(count(v, path)?).ok_or_else(|| SpecError::new(path, "must be at least 1"))
}

fn extension(e: wire::Extension, path: &str) -> Result<ComponentExtension> {
    let p = |f: &str| format!("{path}.{f}");
    let min_replicas = match e.min_replicas {
        None => DEFAULT_MIN_REPLICAS,
        Some(n) if n < 0 => {
            return err(p("minReplicas"), format!("{n} must not be less than 0"));
        }
        Some(n) => count(n, &p("minReplicas"))?,
    };
    let max_replicas = match e.max_replicas {
        None | Some(0) => None,
        Some(n) if n < 0 => {
            return err(
                p("maxReplicas"),
                format!("{n} must not be less than 0 (0 leaves the maximum to the autoscaler)"),
            );
        }
        Some(n) => NonZeroU32::new(count(n, &p("maxReplicas"))?),
    };
    if let Some(max) = max_replicas
        && min_replicas > max.get()
    {
        return err(
            p("minReplicas"),
            format!("{min_replicas} must not be greater than maxReplicas ({max})"),
        );
    }
    let scale_metric = match e.scale_metric.as_deref() {
        None => None,
        Some("cpu") => Some(ScaleMetric::Cpu),
        Some("memory") => Some(ScaleMetric::Memory),
        Some("concurrency") => Some(ScaleMetric::Concurrency),
        Some("rps") => Some(ScaleMetric::Rps),
        Some(other) => {
            return err(
                p("scaleMetric"),
                format!("{other:?} is not a scale metric; use concurrency, rps, cpu or memory"),
            );
        }
    };
    let scale_target = e
        .scale_target
        .map(|t| positive(t, &p("scaleTarget"), ""))
        .transpose()?;
    if let (Some(t), Some(ScaleMetric::Cpu)) = (scale_target, scale_metric)
        && t.get() > 100
    {
        return err(
            p("scaleTarget"),
            format!("{t} is not a CPU utilisation percentage; use 1 to 100"),
        );
    }
    let scale_metric_type = match e.scale_metric_type.as_deref() {
        None => None,
        Some("Utilization") => Some(MetricTargetType::Utilization),
        Some("AverageValue") => Some(MetricTargetType::AverageValue),
        Some("Value") => Some(MetricTargetType::Value),
        Some(other) => {
            return err(
                p("scaleMetricType"),
                format!(
                    "{other:?} is not a metric target type; use Utilization, AverageValue or Value"
                ),
            );
        }
    };
    let container_concurrency = match e.container_concurrency {
        None | Some(0) => None,
        Some(n) if n < 0 => {
            return err(
                p("containerConcurrency"),
                format!("{n} must not be less than 0 (0 means unlimited)"),
            );
        }
        Some(n) => NonZeroU32::new(count(n, &p("containerConcurrency"))?),
    };
    let timeout_seconds = e
        .timeout
        .map(|t| positive(t, &p("timeout"), " second; remove it for no limit"))
        .transpose()?;
    let canary_traffic_percent = match e.canary_traffic_percent {
        None => None,
        Some(n) => Some(u8::try_from(n).ok().and_then(Percent::new).ok_or_else(|| {
            SpecError::new(
                p("canaryTrafficPercent"),
                format!("{n} is not between 0 and 100"),
            )
        })?),
    };
    Ok(ComponentExtension {
        min_replicas,
        max_replicas,
        scale_target,
        scale_metric,
        scale_metric_type,
        autoscaling: e.auto_scaling,
        container_concurrency,
        timeout_seconds,
        canary_traffic_percent,
        logger: e.logger.map(|l| logger(l, &p("logger"))).transpose()?,
        batcher: e.batcher.map(|b| batcher(b, &p("batcher"))).transpose()?,
        labels: e.labels.unwrap_or_default(),
        annotations: e.annotations.unwrap_or_default(),
        deployment_strategy: e.deployment_strategy,
    })
}

fn logger(l: wire::Logger, path: &str) -> Result<LoggerSpec> {
    let p = |f: &str| format!("{path}.{f}");
    let mode = match l.mode.as_deref() {
        // KServe documents `all` as the default (and its agent uses it).
        None | Some("") | Some("all") => LoggerMode::All,
        Some("request") => LoggerMode::Request,
        Some("response") => LoggerMode::Response,
        Some(other) => {
            return err(
                p("mode"),
                format!("{other:?} is not a logger mode; use all, request or response"),
            );
        }
    };
    let url = |u: Option<String>, field: &str| {
        u.filter(|u| !u.is_empty())
            .map(|u| HttpUrl::parse(&u).map_err(|e| SpecError::new(p(field), e)))
            .transpose()
    };
    let storage = match l.storage {
        None => None,
        Some(s) => {
            let sp = p("storage");
            let need = |v: Option<String>, field: &str| {
                v.filter(|v| !v.is_empty()).ok_or_else(|| {
                    SpecError::new(
                        format!("{sp}.{field}"),
                        "missing; logger storage needs path, key and parameters",
                    )
                })
            };
            let path = need(s.path, "path")?;
            let key = need(s.key, "key")?;
            let Some(parameters) = s.parameters else {
                return err(
                    format!("{sp}.parameters"),
                    "missing; logger storage needs path, key and parameters",
                );
            };
            Some(LoggerStorage {
                path,
                key,
                parameters,
                service_account_name: s.service_account_name.filter(|n| !n.is_empty()),
            })
        }
    };
    let batch_size = l
        .batch_size
        .map(|n| positive(n, &p("batchSize"), ""))
        .transpose()?;
    let batch_interval = l
        .batch_interval
        .map(|d| parse_go_duration(&d).map_err(|e| SpecError::new(p("batchInterval"), e)))
        .transpose()?;
    Ok(LoggerSpec {
        mode,
        url: url(l.url, "url")?,
        storage,
        metadata_headers: l.metadata_headers.unwrap_or_default(),
        metadata_annotations: l.metadata_annotations.unwrap_or_default(),
        marshaller_url: url(l.marshaller_url, "marshallerUrl")?,
        batch_size,
        batch_interval,
    })
}

fn batcher(b: wire::Batcher, path: &str) -> Result<Batcher> {
    let p = |f: &str| format!("{path}.{f}");
    let d = Batcher::default();
    Ok(Batcher {
        max_batch_size: b
            .max_batch_size
            .map(|n| {
                positive(
                    n,
                    &p("maxBatchSize"),
                    " request; remove it for the default (32)",
                )
            })
            .transpose()?
            .unwrap_or(d.max_batch_size),
        max_latency_ms: b
            .max_latency
            .map(|n| {
                positive(
                    n,
                    &p("maxLatency"),
                    " millisecond; remove it for the default (5000)",
                )
            })
            .transpose()?
            .unwrap_or(d.max_latency_ms),
        timeout_seconds: b
            .timeout
            .map(|n| positive(n, &p("timeout"), " second"))
            .transpose()?,
    })
}

// ---------------------------------------------------------------------------
// Kubernetes: pods and containers.

/// The pod fields, and the containers for the caller to assign.
pub(super) fn pod_options(
    p: wire::PodSpec,
    path: &str,
) -> Result<(PodOptions, Vec<wire::Container>)> {
    let service_account_name = match p.service_account_name.filter(|n| !n.is_empty()) {
        None => None,
        Some(n) => Some(
            ObjectName::new(&n)
                .map_err(|e| SpecError::new(format!("{path}.serviceAccountName"), e))?
                .as_str()
                .to_owned(),
        ),
    };
    let init_containers = p
        .init_containers
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, c)| named_container(c, &format!("{path}.initContainers[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    Ok((
        PodOptions {
            service_account_name,
            node_selector: p.node_selector.unwrap_or_default(),
            tolerations: p.tolerations.unwrap_or_default(),
            affinity: p.affinity,
            init_containers,
            kubernetes: p.kept,
        },
        p.containers.unwrap_or_default(),
    ))
}

/// A container that must carry its own name (sidecars, init containers,
/// runtime containers).
pub(super) fn named_container(mut c: wire::Container, path: &str) -> Result<Container> {
    let name = match c.name.take().filter(|n| !n.is_empty()) {
        None => {
            return err(
                format!("{path}.name"),
                "missing; every container but the serving one needs a name",
            );
        }
        Some(n) if is_dns1123_label(&n) => n,
        Some(n) => {
            return err(
                format!("{path}.name"),
                format!(
                    "{n:?} is not a valid container name: use 1-63 lower case letters, digits and '-', starting and ending with a letter or digit"
                ),
            );
        }
    };
    Ok(Container {
        name,
        spec: container_spec(c, path)?,
    })
}

/// The container fields other than `name` (the caller takes the name).
pub(super) fn container_spec(mut c: wire::Container, path: &str) -> Result<ContainerSpec> {
    let p = |f: &str| format!("{path}.{f}");
    let kubernetes = c.take_kept();
    let mut env = Vec::new();
    for (i, e) in c.env.take().unwrap_or_default().into_iter().enumerate() {
        let epath = format!("{path}.env[{i}]");
        let Some(name) = e.name.filter(|n| !n.is_empty()) else {
            return err(
                format!("{epath}.name"),
                "missing; every variable needs a name",
            );
        };
        if BLOCKED_ENV_VARS.contains(&name.as_str()) {
            return err(
                format!("{epath}.name"),
                format!(
                    "setting {name} is not allowed for security reasons (KServe refuses it too): it would change which code the server imports; put packages into the image or the runtime's environment instead"
                ),
            );
        }
        let value = match (e.value, e.value_from) {
            (Some(_), Some(_)) => {
                return err(
                    format!("{epath}.valueFrom"),
                    "cannot be combined with value; set one of them",
                );
            }
            (_, Some(from)) => EnvValue::From(from),
            (v, None) => EnvValue::Literal(v.unwrap_or_default()),
        };
        env.push(EnvVar { name, value });
    }
    let mut ports: Vec<ContainerPort> = Vec::new();
    for (i, port) in c.ports.take().unwrap_or_default().into_iter().enumerate() {
        let ppath = format!("{path}.ports[{i}]");
        let Some(n) = port.container_port else {
            return err(
                format!("{ppath}.containerPort"),
                "missing; give the port number",
            );
        };
        let container_port = port_number(n, &format!("{ppath}.containerPort"))?;
        let host_port = port
            .host_port
            .filter(|h| *h != 0)
            .map(|h| port_number(h, &format!("{ppath}.hostPort")))
            .transpose()?;
        let protocol = match port.protocol.as_deref() {
            None | Some("") | Some("TCP") => PortProtocol::Tcp,
            Some("UDP") => PortProtocol::Udp,
            Some("SCTP") => PortProtocol::Sctp,
            Some(other) => {
                return err(
                    format!("{ppath}.protocol"),
                    format!("{other:?} is not a port protocol; use TCP, UDP or SCTP"),
                );
            }
        };
        let name = match port.name.filter(|n| !n.is_empty()) {
            None => None,
            Some(n) if is_port_name(&n) => Some(n),
            Some(n) => {
                return err(
                    format!("{ppath}.name"),
                    format!(
                        "{n:?} is not a valid port name: 1-15 lower case letters, digits and '-', with a letter"
                    ),
                );
            }
        };
        if let Some(n) = &name
            && ports.iter().any(|q| q.name.as_ref() == Some(n))
        {
            return err(format!("{ppath}.name"), format!("{n:?} names two ports"));
        }
        ports.push(ContainerPort {
            container_port,
            name,
            protocol,
            host_port,
            host_ip: port.host_ip.filter(|h| !h.is_empty()),
        });
    }
    let probe_at = |probe_w: Option<Box<wire::Probe>>, field: &str, liveness_like: bool| {
        probe_w
            .map(|pr| probe(*pr, &p(field), liveness_like))
            .transpose()
    };
    Ok(ContainerSpec {
        image: c.image.take().filter(|i| !i.is_empty()),
        command: c.command.take().unwrap_or_default(),
        args: c.args.take().unwrap_or_default(),
        working_dir: c.working_dir.take().filter(|w| !w.is_empty()),
        env,
        ports,
        resources: resources(c.resources.take().map(|r| *r), &p("resources"))?,
        liveness_probe: probe_at(c.liveness_probe.take(), "livenessProbe", true)?,
        readiness_probe: probe_at(c.readiness_probe.take(), "readinessProbe", false)?,
        startup_probe: probe_at(c.startup_probe.take(), "startupProbe", true)?,
        kubernetes,
    })
}

fn port_number(n: i64, path: &str) -> Result<u16> {
    u16::try_from(n)
        .ok()
        .filter(|n| *n != 0)
        .ok_or_else(|| SpecError::new(path, format!("{n} is not a port number (1 to 65535)")))
}

/// Kubernetes' IANA_SVC_NAME: at most 15 characters, lower case letters,
/// digits and '-', at least one letter, no leading, trailing or double '-'.
fn is_port_name(n: &str) -> bool {
    n.len() <= 15
        && is_dns1123_label(n)
        && !n.contains("--")
        && n.bytes().any(|b| b.is_ascii_lowercase())
}

fn resources(r: Option<wire::Resources>, path: &str) -> Result<ResourceRequirements> {
    let Some(r) = r else {
        return Ok(ResourceRequirements::default());
    };
    let list = |m: Option<BTreeMap<String, wire::Scalar>>,
                field: &str|
     -> Result<BTreeMap<String, Quantity>> {
        let mut out = BTreeMap::new();
        for (k, v) in m.unwrap_or_default() {
            let qpath = format!("{path}.{field}.{k}");
            let q = Quantity::parse(&v.0).map_err(|e| SpecError::new(&qpath, e.to_string()))?;
            if q.is_negative() {
                return err(qpath, format!("{q} must not be negative"));
            }
            out.insert(k, q);
        }
        Ok(out)
    };
    let requests = list(r.requests, "requests")?;
    let limits = list(r.limits, "limits")?;
    for (k, req) in &requests {
        if let Some(lim) = limits.get(k)
            && req.cmp_value(lim).is_gt()
        {
            return err(
                format!("{path}.requests.{k}"),
                format!("{req} must not be more than the limit ({lim})"),
            );
        }
    }
    Ok(ResourceRequirements {
        requests,
        limits,
        claims: r.claims,
    })
}

fn probe(w: wire::Probe, path: &str, liveness_like: bool) -> Result<Probe> {
    let p = |f: &str| format!("{path}.{f}");
    let handlers = [
        w.exec.is_some(),
        w.http_get.is_some(),
        w.tcp_socket.is_some(),
        w.grpc.is_some(),
    ]
    .into_iter()
    .filter(|h| *h)
    .count();
    if handlers != 1 {
        return err(
            path,
            if handlers == 0 {
                "has no check; set one of exec, httpGet, tcpSocket or grpc"
            } else {
                "has several checks; set only one of exec, httpGet, tcpSocket or grpc"
            },
        );
    }
    let port_ref = |v: Option<IntOrString>, ppath: String| -> Result<PortRef> {
        match v {
            None => err(ppath, "missing; give a port number or a port name"),
            Some(IntOrString::Int(n)) => Ok(PortRef::Number(port_number(n, &ppath)?)),
            Some(IntOrString::Str(s)) if is_port_name(&s) => Ok(PortRef::Name(s)),
            Some(IntOrString::Str(s)) => match s.parse::<i64>() {
                Ok(n) => Ok(PortRef::Number(port_number(n, &ppath)?)),
                Err(_) => err(ppath, format!("{s:?} is not a port number or a port name")),
            },
        }
    };
    let action = if let Some(e) = w.exec {
        let command = e.command.unwrap_or_default();
        if command.is_empty() {
            return err(p("exec.command"), "missing; give the command to run");
        }
        ProbeAction::Exec { command }
    } else if let Some(h) = w.http_get {
        let https = match h.scheme.as_deref() {
            None | Some("") | Some("HTTP") => false,
            Some("HTTPS") => true,
            Some(other) => {
                return err(
                    p("httpGet.scheme"),
                    format!("{other:?} is not a scheme; use HTTP or HTTPS"),
                );
            }
        };
        let mut http_headers = Vec::new();
        for (i, hd) in h.http_headers.unwrap_or_default().into_iter().enumerate() {
            let Some(name) = hd.name.filter(|n| !n.is_empty()) else {
                return err(p(&format!("httpGet.httpHeaders[{i}].name")), "missing");
            };
            http_headers.push((name, hd.value.unwrap_or_default()));
        }
        ProbeAction::HttpGet(HttpGetAction {
            path: h
                .path
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "/".to_owned()),
            port: port_ref(h.port, p("httpGet.port"))?,
            host: h.host.filter(|h| !h.is_empty()),
            https,
            http_headers,
        })
    } else if let Some(t) = w.tcp_socket {
        ProbeAction::TcpSocket {
            port: port_ref(t.port, p("tcpSocket.port"))?,
            host: t.host.filter(|h| !h.is_empty()),
        }
    } else if let Some(g) = w.grpc {
        let Some(port) = g.port else {
            return err(p("grpc.port"), "missing; give the port number");
        };
        ProbeAction::Grpc {
            port: port_number(port, &p("grpc.port"))?,
            service: g.service.filter(|s| !s.is_empty()),
        }
    } else {
        return err(path, "has no check");
    };
    let at_least = |v: Option<i64>, field: &str, min: i64, default: u32| -> Result<u32> {
        match v {
            None => Ok(default),
            Some(n) if n < min => err(p(field), format!("{n} must be at least {min}")),
            Some(n) => count(n, &p(field)),
        }
    };
    let success_threshold = at_least(w.success_threshold, "successThreshold", 1, 1)?;
    if liveness_like && success_threshold != 1 {
        return err(
            p("successThreshold"),
            format!("{success_threshold} must be 1 for liveness and startup probes"),
        );
    }
    Ok(Probe {
        action,
        initial_delay_seconds: at_least(w.initial_delay_seconds, "initialDelaySeconds", 0, 0)?,
        period_seconds: at_least(w.period_seconds, "periodSeconds", 1, 10)?,
        timeout_seconds: at_least(w.timeout_seconds, "timeoutSeconds", 1, 1)?,
        success_threshold,
        failure_threshold: at_least(w.failure_threshold, "failureThreshold", 1, 3)?,
        termination_grace_period_seconds: w
            .termination_grace_period_seconds
            .map(|n| {
                u64::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
                    SpecError::new(
                        p("terminationGracePeriodSeconds"),
                        format!("{n} must be at least 1"),
                    )
                })
            })
            .transpose()?,
    })
}
