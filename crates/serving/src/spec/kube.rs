//! The Kubernetes parts of KServe resources that Oxflow interprets:
//! containers (command, arguments, environment, ports, resources, probes)
//! and the pod fields a component carries. Fields Oxflow does not interpret
//! locally (security contexts, volume mounts, volumes, …) are kept as JSON
//! under their Kubernetes names, so that a resource renders back whole and
//! the Kubernetes runtime can pass them on.

use std::collections::BTreeMap;

use serde_json::Value;

use super::quantity::Quantity;

/// KServe's name for the container that serves (`kserve-container`).
pub const SERVING_CONTAINER_NAME: &str = "kserve-container";
/// KServe's name for a transformer collocated in the predictor's pod.
pub const TRANSFORMER_CONTAINER_NAME: &str = "transformer-container";
/// The port a KServe model server listens on when none is declared
/// (`InferenceServiceDefaultHttpPort`).
pub const DEFAULT_HTTP_PORT: u16 = 8080;
/// The environment variable that gives a custom container its model
/// location (`CustomSpecStorageUriEnvVarKey`).
pub const STORAGE_URI_ENV: &str = "STORAGE_URI";
/// The environment variable that declares a custom container's protocol
/// (`CustomSpecProtocolEnvVarKey`).
pub const PROTOCOL_ENV: &str = "PROTOCOL";

/// A named container (`containers[]`, `initContainers[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    /// `name`: a DNS-1123 label, unique in its pod.
    pub name: String,
    /// Everything else.
    pub spec: ContainerSpec,
}

/// The fields of a Kubernetes container other than its name. KServe inlines
/// them into `model:` (and the framework keys) to override the runtime's
/// container.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerSpec {
    /// `image`.
    pub image: Option<String>,
    /// `command`: the entry point; empty means the image's.
    pub command: Vec<String>,
    /// `args`.
    pub args: Vec<String>,
    /// `workingDir`.
    pub working_dir: Option<String>,
    /// `env`, in order (later entries may refer to earlier ones).
    pub env: Vec<EnvVar>,
    /// `ports`.
    pub ports: Vec<ContainerPort>,
    /// `resources`, quantities parsed; every request is at most its limit.
    pub resources: ResourceRequirements,
    /// `livenessProbe`.
    pub liveness_probe: Option<Probe>,
    /// `readinessProbe`: when a local serving process counts as ready.
    pub readiness_probe: Option<Probe>,
    /// `startupProbe`.
    pub startup_probe: Option<Probe>,
    /// The remaining Kubernetes container fields as written (`securityContext`,
    /// `volumeMounts`, `envFrom`, `imagePullPolicy`, `lifecycle`, …), keyed by
    /// their Kubernetes names; kept, not interpreted locally.
    pub kubernetes: BTreeMap<String, Value>,
}

impl ContainerSpec {
    /// The literal value of environment variable `name` (the last one wins,
    /// as in Kubernetes); `None` when unset or taken from a reference.
    pub fn env_value(&self, name: &str) -> Option<&str> {
        match &self.env.iter().rev().find(|e| e.name == name)?.value {
            EnvValue::Literal(v) => Some(v),
            EnvValue::From(_) => None,
        }
    }

    /// The value of command-line flag `flag` in `args`, written either
    /// `--flag=value` or `--flag value` (an empty string for a flag without
    /// a value). KServe adds `--model_name`, `--predictor_host` and
    /// `--http_port` to transformers and explainers only when absent.
    pub fn arg_value(&self, flag: &str) -> Option<&str> {
        let mut args = self.args.iter();
        while let Some(a) = args.next() {
            if a == flag {
                return Some(args.next().map_or("", String::as_str));
            }
            if let Some(v) = a.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
                return Some(v);
            }
        }
        None
    }

    /// The port the container serves HTTP on: its first declared
    /// `containerPort`, else KServe's default 8080.
    pub fn http_port(&self) -> u16 {
        self.ports
            .first()
            .map_or(DEFAULT_HTTP_PORT, |p| p.container_port)
    }

    /// Whether nothing is set (an override that changes nothing).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One `env` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvVar {
    /// `name`.
    pub name: String,
    /// `value` or `valueFrom`.
    pub value: EnvValue,
}

/// Where an environment variable's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum EnvValue {
    /// `value` (empty when neither `value` nor `valueFrom` is given).
    Literal(String),
    /// `valueFrom` (`secretKeyRef`, `configMapKeyRef`, `fieldRef`, …), kept as
    /// written for the controller to resolve.
    From(Value),
}

/// One `ports` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPort {
    /// `containerPort`, 1-65535.
    pub container_port: u16,
    /// `name` (KServe reads `h2c` as "this port speaks gRPC").
    pub name: Option<String>,
    /// `protocol` (default `TCP`).
    pub protocol: PortProtocol,
    /// `hostPort`.
    pub host_port: Option<u16>,
    /// `hostIP`.
    pub host_ip: Option<String>,
}

/// `ports[].protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PortProtocol {
    /// `TCP`, Kubernetes' default.
    #[default]
    Tcp,
    /// `UDP`.
    Udp,
    /// `SCTP`.
    Sctp,
}

impl PortProtocol {
    /// Kubernetes' spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
        }
    }
}

/// `resources`: requests and limits per resource name (`cpu`, `memory`,
/// `nvidia.com/gpu`, …).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResourceRequirements {
    /// `requests`; no quantity is negative.
    pub requests: BTreeMap<String, Quantity>,
    /// `limits`; no quantity is negative.
    pub limits: BTreeMap<String, Quantity>,
    /// `claims` (dynamic resource allocation), kept as written.
    pub claims: Option<Value>,
}

impl ResourceRequirements {
    /// Whether nothing is requested or limited.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.limits.is_empty() && self.claims.is_none()
    }

    /// The resources as Oxflow's runtime takes them: CPU in millicores,
    /// memory in bytes, and the first GPU-like extended resource (`*/gpu`)
    /// of the limits (Kubernetes requires GPU requests to equal limits).
    pub fn to_core(&self) -> oxflow_core::Resources {
        let milli = |m: &BTreeMap<String, Quantity>| m.get("cpu").and_then(Quantity::milli_value);
        let bytes = |m: &BTreeMap<String, Quantity>| m.get("memory").and_then(Quantity::value);
        let accelerator = self
            .limits
            .iter()
            .chain(&self.requests)
            .find(|(k, _)| k.ends_with("/gpu"))
            .and_then(|(k, q)| Some((k.clone(), u32::try_from(q.value()?).ok()?)));
        oxflow_core::Resources {
            cpu_request_millis: milli(&self.requests),
            cpu_limit_millis: milli(&self.limits),
            memory_request_bytes: bytes(&self.requests),
            memory_limit_bytes: bytes(&self.limits),
            accelerator,
        }
    }
}

/// A probe (`readinessProbe`, `livenessProbe`, `startupProbe`) with
/// Kubernetes' defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The check: exactly one of `exec`, `httpGet`, `tcpSocket`, `grpc`.
    pub action: ProbeAction,
    /// `initialDelaySeconds` (default 0).
    pub initial_delay_seconds: u32,
    /// `periodSeconds` (default 10, at least 1).
    pub period_seconds: u32,
    /// `timeoutSeconds` (default 1, at least 1).
    pub timeout_seconds: u32,
    /// `successThreshold` (default 1, at least 1; 1 for liveness and startup).
    pub success_threshold: u32,
    /// `failureThreshold` (default 3, at least 1).
    pub failure_threshold: u32,
    /// `terminationGracePeriodSeconds`, when set.
    pub termination_grace_period_seconds: Option<u64>,
}

/// What a probe checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAction {
    /// `exec.command`: succeeds when the command exits 0.
    Exec {
        /// The command.
        command: Vec<String>,
    },
    /// `httpGet`: succeeds on a 2xx or 3xx answer.
    HttpGet(HttpGetAction),
    /// `tcpSocket`: succeeds when the port accepts a connection.
    TcpSocket {
        /// `port`.
        port: PortRef,
        /// `host` (default: the pod's address).
        host: Option<String>,
    },
    /// `grpc`: the gRPC health checking protocol.
    Grpc {
        /// `port`.
        port: u16,
        /// `service` (default: the server as a whole).
        service: Option<String>,
    },
}

/// `httpGet` of a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGetAction {
    /// `path` (default `/`).
    pub path: String,
    /// `port`.
    pub port: PortRef,
    /// `host` (default: the pod's address).
    pub host: Option<String>,
    /// `scheme`: `true` for `HTTPS` (default `HTTP`).
    pub https: bool,
    /// `httpHeaders` as `(name, value)` pairs.
    pub http_headers: Vec<(String, String)>,
}

/// A port given by number or by the name of a declared container port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortRef {
    /// 1-65535.
    Number(u16),
    /// An IANA service name (a `ports[].name`).
    Name(String),
}

impl PortRef {
    /// The port number, looking names up in `ports`.
    pub fn resolve(&self, ports: &[ContainerPort]) -> Option<u16> {
        match self {
            Self::Number(n) => Some(*n),
            Self::Name(name) => ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name))
                .map(|p| p.container_port),
        }
    }
}

/// The pod fields of a component (KServe inlines a `PodSpec` into the
/// predictor, transformer and explainer). Containers are not here: each
/// component says which one serves.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodOptions {
    /// `serviceAccountName`: whose credentials fetch the model.
    pub service_account_name: Option<String>,
    /// `nodeSelector`, kept for the Kubernetes runtime.
    pub node_selector: BTreeMap<String, String>,
    /// `tolerations`, kept for the Kubernetes runtime.
    pub tolerations: Vec<Value>,
    /// `affinity`, kept for the Kubernetes runtime.
    pub affinity: Option<Value>,
    /// `initContainers`.
    pub init_containers: Vec<Container>,
    /// The remaining pod fields as written (`volumes`, `imagePullSecrets`,
    /// `securityContext`, `priorityClassName`, …), keyed by their Kubernetes
    /// names; kept, not interpreted locally.
    pub kubernetes: BTreeMap<String, Value>,
}
