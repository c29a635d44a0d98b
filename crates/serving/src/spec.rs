//! KServe's `serving.kserve.io` resources: parsed, defaulted, validated.
//!
//! [`parse_documents`] reads a YAML (or JSON) file of KServe resources —
//! `InferenceService` (v1beta1), `TrainedModel`, `ServingRuntime` and
//! `ClusterServingRuntime` (v1alpha1) — into [`Resource`]s;
//! [`InferenceService::from_yaml`] reads exactly one service. Both apply the
//! defaults of KServe's mutating webhook (legacy framework keys such as
//! `sklearn:` become `model: {modelFormat: {name: sklearn}}`, protocol
//! versions, `minReplicas: 1`, batcher sizes, the deployment mode) and the
//! rules of its validating webhook, and refuse what Oxflow cannot serve, each
//! time with an error that names the field (`spec.predictor.canaryTrafficPercent`).
//!
//! What comes out is a typed model in which contradictory states cannot be
//! expressed: a predictor has exactly one implementation ([`Predictor`]), a
//! storage URI has a known scheme ([`StorageUri`]), quantities are parsed
//! ([`Quantity`]), percentages are at most 100 ([`Percent`]).
//! `to_kserve_value` writes a resource back in KServe's shape with every
//! default spelled out, which is what `oxflow isvc get -o yaml` prints; parsing
//! that again gives an equal value.
//!
//! Unknown fields are refused with their path: KServe's CRDs are structural
//! and would prune them silently, so a typo (`minReplica`) would change the
//! service without a word. Kubernetes fields Oxflow does not interpret
//! (security contexts, volumes, affinity, …) are accepted and kept.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use oxflow_core::Namespace;
use oxflow_core::spec::{Expected, ReadOptions, YamlBudget, read_document, read_documents};
use serde_json::Value;

mod kube;
mod quantity;
mod render;
mod runtime;
mod validate;
mod values;
mod wire;

#[cfg(test)]
mod tests;

pub use kube::{
    Container, ContainerPort, ContainerSpec, DEFAULT_HTTP_PORT, EnvValue, EnvVar, HttpGetAction,
    PROTOCOL_ENV, PodOptions, PortProtocol, PortRef, Probe, ProbeAction, ResourceRequirements,
    SERVING_CONTAINER_NAME, STORAGE_URI_ENV, TRANSFORMER_CONTAINER_NAME,
};
pub use oxflow_core::spec::SpecError;
pub use quantity::{Quantity, QuantityError};
pub use runtime::{
    RuntimeScope, ServingRuntime, ServingRuntimeSpec, SupportedModelFormat, TrainedModel,
    TrainedModelSpec, TrainedModelStorage,
};
pub use values::{HttpUrl, IsvcName, ObjectName, Percent, StorageScheme, StorageUri};

/// `apiVersion` of InferenceService.
pub const API_VERSION_V1BETA1: &str = "serving.kserve.io/v1beta1";
/// `apiVersion` of TrainedModel, ServingRuntime and ClusterServingRuntime.
pub const API_VERSION_V1ALPHA1: &str = "serving.kserve.io/v1alpha1";
/// Inputs larger than this are refused before parsing.
pub const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;
/// KServe's `DefaultMinReplicas`.
pub const DEFAULT_MIN_REPLICAS: u32 = 1;
/// The batcher's default `maxBatchSize` (KServe's agent, `pkg/batcher`).
pub const DEFAULT_MAX_BATCH_SIZE: u32 = 32;
/// The batcher's default `maxLatency` in milliseconds.
pub const DEFAULT_MAX_LATENCY_MS: u32 = 5000;
/// Where KServe mounts a model (`DefaultModelLocalMountPath`), and the
/// default `storageUris[].mountPath`.
pub const DEFAULT_MODEL_MOUNT_PATH: &str = "/mnt/models";
/// The annotation that selects KServe's deployment mode.
pub const DEPLOYMENT_MODE_ANNOTATION: &str = "serving.kserve.io/deploymentMode";
/// The annotation that gives a Knative canary `latest-`/`prev-` URLs.
pub const TAG_ROUTING_ANNOTATION: &str = "serving.kserve.io/enable-tag-routing";

/// How [`parse_documents`] and [`InferenceService::from_yaml`] read text.
const READ: ReadOptions<'static> = ReadOptions {
    max_bytes: MAX_DOCUMENT_BYTES,
    input: "input",
    yaml_budget: YamlBudget::Strict,
};

/// One KServe resource of a file.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    /// `serving.kserve.io/v1beta1` `InferenceService`.
    InferenceService(Box<InferenceService>),
    /// `serving.kserve.io/v1alpha1` `TrainedModel`.
    TrainedModel(TrainedModel),
    /// `serving.kserve.io/v1alpha1` `ServingRuntime` or `ClusterServingRuntime`
    /// (see [`ServingRuntime::scope`]).
    ServingRuntime(ServingRuntime),
}

impl Resource {
    /// Reads one resource from a parsed document, choosing the kind from
    /// `apiVersion` and `kind`.
    pub fn from_json_value(doc: Value) -> Result<Self, SpecError> {
        validate::resource(doc)
    }

    /// The resource in KServe's shape with defaults spelled out.
    pub fn to_kserve_value(&self) -> Value {
        match self {
            Self::InferenceService(s) => s.to_kserve_value(),
            Self::TrainedModel(m) => m.to_kserve_value(),
            Self::ServingRuntime(r) => r.to_kserve_value(),
        }
    }

    /// KServe's `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InferenceService(_) => "InferenceService",
            Self::TrainedModel(_) => "TrainedModel",
            Self::ServingRuntime(r) => r.scope.kind(),
        }
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        match self {
            Self::InferenceService(s) => s.name.as_str(),
            Self::TrainedModel(m) => m.name.as_str(),
            Self::ServingRuntime(r) => r.name.as_str(),
        }
    }
}

/// Parses every document of a YAML stream (documents separated by `---`;
/// a JSON object is one document) into resources, in order. Empty documents
/// are skipped. When the stream holds several documents, an error's path
/// starts with the document's 1-based number among the non-empty ones:
/// `[document 2].spec.predictor`.
pub fn parse_documents(text: &str) -> Result<Vec<Resource>, SpecError> {
    let docs = read_documents(text, &READ)?;
    let several = docs.len() > 1;
    let mut out = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        let resource = Resource::from_json_value(doc)
            .map_err(|e| if several { e.in_document(i + 1) } else { e })?;
        out.push(resource);
    }
    if out.is_empty() {
        return Err(SpecError::new(
            "",
            "the file holds no resources; expected KServe YAML such as an InferenceService (apiVersion: serving.kserve.io/v1beta1)",
        ));
    }
    Ok(out)
}

/// A validated InferenceService with KServe's defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct InferenceService {
    /// `metadata.name`.
    pub name: IsvcName,
    /// `metadata.namespace`, when the file names one; the caller supplies
    /// its own (the CLI's `--namespace`, the request path) otherwise.
    pub namespace: Option<Namespace>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`, without [`DEPLOYMENT_MODE_ANNOTATION`] (see
    /// `deployment_mode`).
    pub annotations: BTreeMap<String, String>,
    /// The `serving.kserve.io/deploymentMode` annotation, normalised.
    pub deployment_mode: DeploymentMode,
    /// `spec`.
    pub spec: InferenceServiceSpec,
}

impl InferenceService {
    /// Parses exactly one InferenceService from YAML or JSON text, applies
    /// KServe's defaults and validates it. Use [`parse_documents`] for files
    /// with several resources.
    pub fn from_yaml(text: &str) -> Result<Self, SpecError> {
        let expected = Expected {
            kind: "InferenceService",
            description: "an InferenceService (apiVersion: serving.kserve.io/v1beta1, kind: InferenceService)",
        };
        Self::from_json_value(read_document(text, &READ, &expected)?)
    }

    /// Like [`InferenceService::from_yaml`] for an already parsed document (a
    /// REST request body).
    pub fn from_json_value(doc: Value) -> Result<Self, SpecError> {
        match validate::resource(doc)? {
            Resource::InferenceService(s) => Ok(*s),
            other => Err(SpecError::new(
                "kind",
                format!(
                    "{:?} is not an InferenceService; expected kind: InferenceService",
                    other.kind()
                ),
            )),
        }
    }

    /// The service in KServe's shape (`apiVersion`, `kind`, `metadata`,
    /// `spec` as KServe stores it after its webhooks: framework keys as
    /// `model`, every default written out). [`InferenceService::from_json_value`]
    /// of the result gives back an equal service.
    pub fn to_kserve_value(&self) -> Value {
        render::inference_service(self)
    }

    /// Whether `serving.kserve.io/enable-tag-routing` is `"true"`.
    pub fn tag_routing(&self) -> bool {
        self.annotations
            .get(TAG_ROUTING_ANNOTATION)
            .is_some_and(|v| v == "true")
    }
}

/// How KServe would deploy the service (the `serving.kserve.io/deploymentMode`
/// annotation). Oxflow serves both the same way locally; the mode decides
/// which canary style is allowed and what the Kubernetes runtime emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeploymentMode {
    /// `Standard` (also the legacy `RawDeployment`): Deployments, Services,
    /// autoscalers; KServe's `DefaultDeployment`.
    #[default]
    Standard,
    /// `Knative` (also the legacy `Serverless`): Knative revisions.
    Knative,
}

impl DeploymentMode {
    /// KServe's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "Standard",
            Self::Knative => "Knative",
        }
    }
}

/// `spec` of an InferenceService.
#[derive(Debug, Clone, PartialEq)]
pub struct InferenceServiceSpec {
    /// `predictor`: the model server.
    pub predictor: PredictorSpec,
    /// `transformer`: pre- and post-processing in front of the predictor.
    pub transformer: Option<TransformerSpec>,
    /// `explainer`: serves `:explain`.
    pub explainer: Option<ExplainerSpec>,
    /// `canary` (Standard mode, KServe 0.20): named predictor variants that
    /// get a share of the traffic; names unique, shares summing to at most 100.
    pub canary: Vec<CanarySpec>,
}

/// `spec.predictor` (and `spec.canary[].predictor`).
#[derive(Debug, Clone, PartialEq)]
pub struct PredictorSpec {
    /// `name`: the variant name (a DNS-1123 label); required for canaries.
    pub name: Option<String>,
    /// What serves: a model on a serving runtime, or a custom container.
    pub implementation: Predictor,
    /// `containers` other than the serving one (sidecars, a collocated
    /// `transformer-container`), in their order.
    pub sidecars: Vec<Container>,
    /// `storageUris`: several model locations with mount paths; never
    /// together with a `storageUri`.
    pub storage_uris: Vec<StorageMount>,
    /// `storageContainerName`: which ClusterStorageContainer fetches the model.
    pub storage_container_name: Option<String>,
    /// Pod fields.
    pub pod: PodOptions,
    /// Scaling, traffic, batching and logging.
    pub component: ComponentExtension,
}

impl PredictorSpec {
    /// The protocol clients speak to the predictor.
    pub fn protocol(&self) -> Protocol {
        self.implementation.protocol()
    }

    /// The model location of the serving implementation: `storageUri` of a
    /// model, or the `STORAGE_URI` environment variable of a custom
    /// container. (`storage_uris` are separate.)
    pub fn storage_uri(&self) -> Option<StorageUri> {
        match &self.implementation {
            Predictor::Model(m) => m.storage_uri.clone(),
            Predictor::Custom(c) => custom_storage_uri(&c.spec),
        }
    }
}

/// The predictor's implementation: KServe's "exactly one of" rule as a type.
// One per predictor, never in bulk: boxing the larger variant would only
// make matching clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Predictor {
    /// `model:` (or a framework key such as `sklearn:`, which KServe turns
    /// into `model:`): a model format served by a serving runtime.
    Model(ModelSpec),
    /// `containers:` with a `kserve-container` (or a single container): a
    /// command that serves the V1 or V2 protocol over HTTP on a port.
    Custom(Container),
}

impl Predictor {
    /// The protocol: the model's `protocolVersion`, or for a custom
    /// container its `PROTOCOL` environment variable (default `v1`).
    pub fn protocol(&self) -> Protocol {
        match self {
            Self::Model(m) => m.protocol,
            Self::Custom(c) => c
                .spec
                .env_value(PROTOCOL_ENV)
                .and_then(Protocol::parse)
                .unwrap_or(Protocol::V1),
        }
    }
}

/// `STORAGE_URI` of a custom container; validated when the resource loaded.
fn custom_storage_uri(c: &ContainerSpec) -> Option<StorageUri> {
    c.env_value(STORAGE_URI_ENV)
        .and_then(|v| StorageUri::parse(v).ok())
}

/// `predictor.model`: a model and how to serve it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// `modelFormat`.
    pub format: ModelFormat,
    /// `runtime`: the (Cluster)ServingRuntime to use; auto-selected by
    /// format and protocol when absent.
    pub runtime: Option<String>,
    /// `runtimeVersion`: the runtime image's tag.
    pub runtime_version: Option<String>,
    /// `protocolVersion` after KServe's defaults (see [`Protocol`]).
    pub protocol: Protocol,
    /// `storageUri`.
    pub storage_uri: Option<StorageUri>,
    /// `storage`: a model location in a storage secret.
    pub storage: Option<ModelStorageSpec>,
    /// Container fields that override the runtime's container (`resources`,
    /// `env`, `args`, `image`, `ports`, …).
    pub container: ContainerSpec,
}

/// `modelFormat`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelFormat {
    /// `name`.
    pub name: ModelFormatName,
    /// `version` (runtimes match `name` or `name:version`).
    pub version: Option<String>,
}

/// A model format name. The known names are KServe's
/// `SupportedModel*` constants, matched exactly (KServe matches formats as
/// case-sensitive labels); any other name is kept as [`ModelFormatName::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModelFormatName {
    /// `sklearn`.
    Sklearn,
    /// `xgboost`.
    Xgboost,
    /// `lightgbm`.
    Lightgbm,
    /// `onnx`.
    Onnx,
    /// `tensorflow`.
    Tensorflow,
    /// `pytorch`.
    Pytorch,
    /// `triton` (Triton's own model repository layout).
    Triton,
    /// `pmml`.
    Pmml,
    /// `paddle`.
    Paddle,
    /// `huggingface`.
    Huggingface,
    /// `mlflow`.
    Mlflow,
    /// Any other name (`vLLM`, `openvino_ir`, a custom runtime's format);
    /// never one of the names above (use [`ModelFormatName::from_name`]).
    Other(String),
}

/// How Oxflow serves a model format without a user-supplied runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocalServer {
    /// Natively, inside Oxflow (ONNX, XGBoost and LightGBM models).
    Native,
    /// In a Python worker process (pickled scikit-learn models).
    PythonWorker,
}

impl ModelFormatName {
    /// The format called `name`.
    pub fn from_name(name: &str) -> Self {
        match name {
            "sklearn" => Self::Sklearn,
            "xgboost" => Self::Xgboost,
            "lightgbm" => Self::Lightgbm,
            "onnx" => Self::Onnx,
            "tensorflow" => Self::Tensorflow,
            "pytorch" => Self::Pytorch,
            "triton" => Self::Triton,
            "pmml" => Self::Pmml,
            "paddle" => Self::Paddle,
            "huggingface" => Self::Huggingface,
            "mlflow" => Self::Mlflow,
            other => Self::Other(other.to_owned()),
        }
    }

    /// KServe's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Sklearn => "sklearn",
            Self::Xgboost => "xgboost",
            Self::Lightgbm => "lightgbm",
            Self::Onnx => "onnx",
            Self::Tensorflow => "tensorflow",
            Self::Pytorch => "pytorch",
            Self::Triton => "triton",
            Self::Pmml => "pmml",
            Self::Paddle => "paddle",
            Self::Huggingface => "huggingface",
            Self::Mlflow => "mlflow",
            Self::Other(s) => s,
        }
    }

    /// How Oxflow serves this format itself; `None` for formats that need a
    /// serving runtime Oxflow does not have (the controller reports "no
    /// runtime" for those unless the service names a custom one).
    pub fn local_server(&self) -> Option<LocalServer> {
        match self {
            Self::Onnx | Self::Xgboost | Self::Lightgbm => Some(LocalServer::Native),
            Self::Sklearn => Some(LocalServer::PythonWorker),
            _ => None,
        }
    }
}

impl fmt::Display for ModelFormatName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The inference protocol a component speaks (`protocolVersion`).
///
/// KServe's defaults, applied when the field is absent: `v2` for the legacy
/// `triton:`, `onnx:` and `huggingface:` keys and for the `triton` and `vLLM`
/// model formats (mutating webhook, `setPredictorModelDefaults`); `v2` when
/// `runtime` names KServe's MLServer or Triton runtime (`SetRuntimeDefaults`,
/// by runtime name); `v1` otherwise (`GetProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// `v1`: `/v1/models/<name>:predict` with `{"instances": …}`.
    V1,
    /// `v2`: the Open Inference Protocol over REST (`/v2/models/<name>/infer`).
    V2,
    /// `grpc-v1`.
    GrpcV1,
    /// `grpc-v2`: the Open Inference Protocol over gRPC.
    GrpcV2,
}

impl Protocol {
    /// Every protocol, in KServe's order of preference.
    pub const ALL: [Protocol; 4] = [Self::V1, Self::V2, Self::GrpcV1, Self::GrpcV2];

    /// KServe's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
            Self::GrpcV1 => "grpc-v1",
            Self::GrpcV2 => "grpc-v2",
        }
    }

    /// The protocol spelled `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `storage`: a model location held in a storage secret (`key` names the
/// entry, `path` the object, `parameters` override the entry's settings).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelStorageSpec {
    /// `key`.
    pub key: Option<String>,
    /// `path`.
    pub path: Option<String>,
    /// `parameters`.
    pub parameters: BTreeMap<String, String>,
    /// `schemaPath`: where the model's input/output schema is.
    pub schema_path: Option<String>,
}

/// One `storageUris` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageMount {
    /// `uri`.
    pub uri: StorageUri,
    /// `mountPath` (default `/mnt/models`): absolute, not `/`, no `..`.
    pub mount_path: String,
}

/// `spec.transformer`: a custom container that pre- and post-processes
/// requests and calls the predictor.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformerSpec {
    /// The first container, which KServe names `kserve-container`; KServe
    /// adds `--model_name`, `--predictor_host` and `--http_port` arguments
    /// unless present.
    pub container: Container,
    /// The other containers.
    pub sidecars: Vec<Container>,
    /// `storageUris`.
    pub storage_uris: Vec<StorageMount>,
    /// Pod fields.
    pub pod: PodOptions,
    /// Scaling, traffic, batching and logging.
    pub component: ComponentExtension,
}

impl TransformerSpec {
    /// The protocol the transformer speaks to the predictor: its `PROTOCOL`
    /// environment variable, default `v1`.
    pub fn protocol(&self) -> Protocol {
        self.container
            .spec
            .env_value(PROTOCOL_ENV)
            .and_then(Protocol::parse)
            .unwrap_or(Protocol::V1)
    }

    /// Its `STORAGE_URI` environment variable.
    pub fn storage_uri(&self) -> Option<StorageUri> {
        custom_storage_uri(&self.container.spec)
    }
}

/// `spec.explainer`: serves `/v1/models/<name>:explain` (a V1 feature).
#[derive(Debug, Clone, PartialEq)]
pub struct ExplainerSpec {
    /// What explains.
    pub implementation: Explainer,
    /// Containers after the first of a custom explainer.
    pub sidecars: Vec<Container>,
    /// `storageUris`.
    pub storage_uris: Vec<StorageMount>,
    /// Pod fields.
    pub pod: PodOptions,
    /// Scaling, traffic, batching and logging.
    pub component: ComponentExtension,
}

/// The explainer's implementation.
#[derive(Debug, Clone, PartialEq)]
pub enum Explainer {
    /// `art:`: KServe's built-in Adversarial Robustness Toolbox explainer.
    Art(ArtExplainer),
    /// `containers:` (the first one, named `kserve-container`), e.g. an
    /// Alibi explainer image with `--predictor_host`.
    Custom(Container),
}

/// `explainer.art`.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtExplainer {
    /// `type` (`SquareAttack`).
    pub explainer_type: String,
    /// `storageUri`.
    pub storage_uri: Option<StorageUri>,
    /// `runtimeVersion`.
    pub runtime_version: Option<String>,
    /// `config`: passed as `--<key> <value>` arguments.
    pub config: BTreeMap<String, String>,
    /// `storage`.
    pub storage: Option<ModelStorageSpec>,
    /// Container overrides.
    pub container: ContainerSpec,
}

/// One `spec.canary` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct CanarySpec {
    /// `trafficPercent`: 0 deploys without traffic (dark launch).
    pub traffic_percent: Percent,
    /// `predictor`; its `name` is always set, unique among canaries and
    /// different from the stable predictor's.
    pub predictor: PredictorSpec,
}

impl CanarySpec {
    /// The canary's name (`predictor.name`).
    pub fn name(&self) -> &str {
        self.predictor.name.as_deref().unwrap_or_default()
    }
}

/// The fields KServe's `ComponentExtensionSpec` adds to each component.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentExtension {
    /// `minReplicas` (default 1); 0 scales to zero when idle.
    pub min_replicas: u32,
    /// `maxReplicas`; `None` (KServe's 0) leaves it to the autoscaler. Never
    /// below `min_replicas`.
    pub max_replicas: Option<NonZeroU32>,
    /// `scaleTarget`: the autoscaler's target for `scale_metric` (a
    /// utilisation percentage of at most 100 for `cpu`).
    pub scale_target: Option<NonZeroU32>,
    /// `scaleMetric`; absent means the mode's default (concurrency for
    /// Knative, cpu for Standard).
    pub scale_metric: Option<ScaleMetric>,
    /// `scaleMetricType`.
    pub scale_metric_type: Option<MetricTargetType>,
    /// `autoScaling` (HPA/KEDA metrics and behaviour), kept for the
    /// Kubernetes runtime.
    pub autoscaling: Option<Value>,
    /// `containerConcurrency`: the hard limit of requests in flight per
    /// replica; `None` (KServe's 0) is unlimited.
    pub container_concurrency: Option<NonZeroU32>,
    /// `timeout`: seconds a request may take.
    pub timeout_seconds: Option<NonZeroU32>,
    /// `canaryTrafficPercent`: the share of traffic the newest revision gets
    /// while the previous rolled-out one keeps the rest; `None` sends all
    /// traffic to the newest, 0 rolls back.
    pub canary_traffic_percent: Option<Percent>,
    /// `logger`.
    pub logger: Option<LoggerSpec>,
    /// `batcher`.
    pub batcher: Option<Batcher>,
    /// `labels` for the component's pods.
    pub labels: BTreeMap<String, String>,
    /// `annotations` for the component's pods.
    pub annotations: BTreeMap<String, String>,
    /// `deploymentStrategy`, kept for the Kubernetes runtime.
    pub deployment_strategy: Option<Value>,
}

impl Default for ComponentExtension {
    fn default() -> Self {
        Self {
            min_replicas: DEFAULT_MIN_REPLICAS,
            max_replicas: None,
            scale_target: None,
            scale_metric: None,
            scale_metric_type: None,
            autoscaling: None,
            container_concurrency: None,
            timeout_seconds: None,
            canary_traffic_percent: None,
            logger: None,
            batcher: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            deployment_strategy: None,
        }
    }
}

/// `scaleMetric`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScaleMetric {
    /// `cpu`: utilisation percentage.
    Cpu,
    /// `memory`.
    Memory,
    /// `concurrency`: requests in flight per replica.
    Concurrency,
    /// `rps`: requests per second per replica.
    Rps,
}

impl ScaleMetric {
    /// KServe's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Memory => "memory",
            Self::Concurrency => "concurrency",
            Self::Rps => "rps",
        }
    }
}

/// `scaleMetricType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricTargetType {
    /// `Utilization`.
    Utilization,
    /// `AverageValue`.
    AverageValue,
    /// `Value`.
    Value,
}

impl MetricTargetType {
    /// KServe's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Utilization => "Utilization",
            Self::AverageValue => "AverageValue",
            Self::Value => "Value",
        }
    }
}

/// `logger`: copies of requests and responses sent as CloudEvents.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggerSpec {
    /// `mode` (default `all`).
    pub mode: LoggerMode,
    /// `url`: the sink; `None` means the platform's default sink (KServe's
    /// `logger.defaultUrl`) or `storage`.
    pub url: Option<HttpUrl>,
    /// `storage`: write batches of events to blob storage instead.
    pub storage: Option<LoggerStorage>,
    /// `metadataHeaders`: request headers copied into the events.
    pub metadata_headers: Vec<String>,
    /// `metadataAnnotations`: service annotations copied into the events.
    pub metadata_annotations: Vec<String>,
    /// `marshallerUrl`.
    pub marshaller_url: Option<HttpUrl>,
    /// `batchSize` for storage (default 1).
    pub batch_size: Option<NonZeroU32>,
    /// `batchInterval` for storage (a Go duration such as `5s`).
    pub batch_interval: Option<Duration>,
}

/// `logger.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LoggerMode {
    /// `all`: requests and responses (the default).
    #[default]
    All,
    /// `request`.
    Request,
    /// `response`.
    Response,
}

impl LoggerMode {
    /// KServe's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Request => "request",
            Self::Response => "response",
        }
    }
}

/// `logger.storage`: all of `path`, `key` and `parameters` are required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggerStorage {
    /// `path`.
    pub path: String,
    /// `key`: the storage secret's entry.
    pub key: String,
    /// `parameters`.
    pub parameters: BTreeMap<String, String>,
    /// `serviceAccountName`.
    pub service_account_name: Option<String>,
}

/// `batcher`: concurrent V1 requests merged into one call, defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batcher {
    /// `maxBatchSize` (default 32): instances that trigger a batch.
    pub max_batch_size: NonZeroU32,
    /// `maxLatency` in milliseconds (default 5000): the longest a request
    /// waits for others.
    pub max_latency_ms: NonZeroU32,
    /// `timeout` in seconds of a batch.
    pub timeout_seconds: Option<NonZeroU32>,
}

impl Default for Batcher {
    fn default() -> Self {
        Self {
            max_batch_size: NonZeroU32::new(DEFAULT_MAX_BATCH_SIZE).unwrap_or(NonZeroU32::MIN),
            max_latency_ms: NonZeroU32::new(DEFAULT_MAX_LATENCY_MS).unwrap_or(NonZeroU32::MIN),
            timeout_seconds: None,
        }
    }
}
