//! KServe's JSON/YAML shapes, field for field.
//!
//! Every struct denies unknown fields: KServe's CRDs would prune them
//! silently, but a typo in a field name would then change the service
//! without a word, so Oxflow rejects them and names the field. Enumerations
//! stay plain strings here so that `validate` can say which values are
//! allowed, with the field path, instead of serde's generic "unknown variant".
//! Kubernetes fields Oxflow keeps without interpreting are `Value`s.
//!
//! KServe inlines Go structs into each other (`corev1.Container` into
//! `model:`, `PodSpec` and `ComponentExtensionSpec` into each component).
//! serde's `flatten` cannot be combined with `deny_unknown_fields` and loses
//! error paths, so the inlined field lists are spelled out once, in the
//! macros below, which also generate the code that moves them in and out.

use std::collections::BTreeMap;

use oxflow_core::spec::Object;
pub(crate) use oxflow_core::spec::Scalar;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A Kubernetes `IntOrString` (probe ports).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum IntOrString {
    Int(i64),
    Str(String),
}

impl Serialize for IntOrString {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Int(i) => s.serialize_i64(*i),
            Self::Str(v) => s.serialize_str(v),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = IntOrString;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a port number or a port name")
            }
            fn visit_str<E>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::Str(v.to_owned()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<IntOrString, E> {
                Ok(IntOrString::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<IntOrString, E> {
                i64::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::custom("the number is out of range"))
            }
        }
        d.deserialize_any(V)
    }
}

/// Declares a struct of optional fields that also carries every field of a
/// Kubernetes container inline, with `take_container`/`put_container` to
/// move those out as a [`Container`] and back.
macro_rules! with_container_fields {
    (
        $(#[$meta:meta])*
        pub(crate) struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, Deserialize, Serialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub(crate) struct $name {
            $(
                $(#[$fmeta])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub name: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub image: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub command: Option<Vec<String>>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub args: Option<Vec<String>>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub working_dir: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub ports: Option<Vec<ContainerPort>>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub env: Option<Vec<EnvVar>>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub resources: Option<Box<Resources>>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub liveness_probe: Option<Box<Probe>>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub readiness_probe: Option<Box<Probe>>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub startup_probe: Option<Box<Probe>>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub env_from: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub resize_policy: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub restart_policy: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub restart_policy_rules: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub volume_mounts: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub volume_devices: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub lifecycle: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub termination_message_path: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub termination_message_policy: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub image_pull_policy: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub security_context: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub stdin: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub stdin_once: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub tty: Option<Value>,
        }

        impl $name {
            /// Moves the container fields out.
            #[allow(dead_code)]
            pub(crate) fn take_container(&mut self) -> Container {
                Container {
                    name: self.name.take(),
                    image: self.image.take(),
                    command: self.command.take(),
                    args: self.args.take(),
                    working_dir: self.working_dir.take(),
                    ports: self.ports.take(),
                    env: self.env.take(),
                    resources: self.resources.take(),
                    liveness_probe: self.liveness_probe.take(),
                    readiness_probe: self.readiness_probe.take(),
                    startup_probe: self.startup_probe.take(),
                    env_from: self.env_from.take(),
                    resize_policy: self.resize_policy.take(),
                    restart_policy: self.restart_policy.take(),
                    restart_policy_rules: self.restart_policy_rules.take(),
                    volume_mounts: self.volume_mounts.take(),
                    volume_devices: self.volume_devices.take(),
                    lifecycle: self.lifecycle.take(),
                    termination_message_path: self.termination_message_path.take(),
                    termination_message_policy: self.termination_message_policy.take(),
                    image_pull_policy: self.image_pull_policy.take(),
                    security_context: self.security_context.take(),
                    stdin: self.stdin.take(),
                    stdin_once: self.stdin_once.take(),
                    tty: self.tty.take(),
                }
            }

            /// Sets the container fields from `c`.
            #[allow(dead_code)]
            pub(crate) fn put_container(&mut self, c: Container) {
                self.name = c.name;
                self.image = c.image;
                self.command = c.command;
                self.args = c.args;
                self.working_dir = c.working_dir;
                self.ports = c.ports;
                self.env = c.env;
                self.resources = c.resources;
                self.liveness_probe = c.liveness_probe;
                self.readiness_probe = c.readiness_probe;
                self.startup_probe = c.startup_probe;
                self.env_from = c.env_from;
                self.resize_policy = c.resize_policy;
                self.restart_policy = c.restart_policy;
                self.restart_policy_rules = c.restart_policy_rules;
                self.volume_mounts = c.volume_mounts;
                self.volume_devices = c.volume_devices;
                self.lifecycle = c.lifecycle;
                self.termination_message_path = c.termination_message_path;
                self.termination_message_policy = c.termination_message_policy;
                self.image_pull_policy = c.image_pull_policy;
                self.security_context = c.security_context;
                self.stdin = c.stdin;
                self.stdin_once = c.stdin_once;
                self.tty = c.tty;
            }
        }
    };
}

with_container_fields! {
    /// A Kubernetes container.
    pub(crate) struct Container {}
}

impl Container {
    /// The fields Oxflow keeps without interpreting, by Kubernetes name.
    pub(crate) fn take_kept(&mut self) -> BTreeMap<String, Value> {
        let mut m = BTreeMap::new();
        for (k, v) in [
            ("envFrom", self.env_from.take()),
            ("resizePolicy", self.resize_policy.take()),
            ("restartPolicy", self.restart_policy.take()),
            ("restartPolicyRules", self.restart_policy_rules.take()),
            ("volumeMounts", self.volume_mounts.take()),
            ("volumeDevices", self.volume_devices.take()),
            ("lifecycle", self.lifecycle.take()),
            (
                "terminationMessagePath",
                self.termination_message_path.take(),
            ),
            (
                "terminationMessagePolicy",
                self.termination_message_policy.take(),
            ),
            ("imagePullPolicy", self.image_pull_policy.take()),
            ("securityContext", self.security_context.take()),
            ("stdin", self.stdin.take()),
            ("stdinOnce", self.stdin_once.take()),
            ("tty", self.tty.take()),
        ] {
            if let Some(v) = v {
                m.insert(k.to_owned(), v);
            }
        }
        m
    }

    /// The inverse of [`Container::take_kept`].
    pub(crate) fn put_kept(&mut self, kept: &BTreeMap<String, Value>) {
        let get = |k: &str| kept.get(k).cloned();
        self.env_from = get("envFrom");
        self.resize_policy = get("resizePolicy");
        self.restart_policy = get("restartPolicy");
        self.restart_policy_rules = get("restartPolicyRules");
        self.volume_mounts = get("volumeMounts");
        self.volume_devices = get("volumeDevices");
        self.lifecycle = get("lifecycle");
        self.termination_message_path = get("terminationMessagePath");
        self.termination_message_policy = get("terminationMessagePolicy");
        self.image_pull_policy = get("imagePullPolicy");
        self.security_context = get("securityContext");
        self.stdin = get("stdin");
        self.stdin_once = get("stdinOnce");
        self.tty = get("tty");
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ContainerPort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<i64>,
    #[serde(default, rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct EnvVar {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<BTreeMap<String, Scalar>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<BTreeMap<String, Scalar>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Probe {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ExecAction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct HttpGetAction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_headers: Option<Vec<HttpHeader>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct HttpHeader {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct TcpSocketAction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct GrpcAction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// The pod fields KServe inlines into a component (its `PodSpec`), as
/// moved out of a component by `take_pod`.
#[derive(Debug, Clone, Default)]
pub(crate) struct PodSpec {
    pub containers: Option<Vec<Container>>,
    pub init_containers: Option<Vec<Container>>,
    pub service_account_name: Option<String>,
    pub node_selector: Option<BTreeMap<String, String>>,
    pub tolerations: Option<Vec<Value>>,
    pub affinity: Option<Value>,
    /// The kept fields, by Kubernetes name.
    pub kept: BTreeMap<String, Value>,
}

/// KServe's `ComponentExtensionSpec`, as moved out of a component by
/// `take_extension`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extension {
    pub min_replicas: Option<i64>,
    pub max_replicas: Option<i64>,
    pub scale_target: Option<i64>,
    pub scale_metric: Option<String>,
    pub scale_metric_type: Option<String>,
    pub auto_scaling: Option<Value>,
    pub container_concurrency: Option<i64>,
    pub timeout: Option<i64>,
    pub canary_traffic_percent: Option<i64>,
    pub logger: Option<Logger>,
    pub batcher: Option<Batcher>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
    pub deployment_strategy: Option<Value>,
}

/// Declares a component struct: its own optional fields, then KServe's
/// inlined `PodSpec` and `ComponentExtensionSpec` fields, with
/// `take_pod`/`put_pod` and `take_extension`/`put_extension`.
macro_rules! component {
    (
        $(#[$meta:meta])*
        pub(crate) struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, Deserialize, Serialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub(crate) struct $name {
            $(
                $(#[$fmeta])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
            // PodSpec, interpreted.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub containers: Option<Vec<Container>>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub init_containers: Option<Vec<Container>>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub service_account_name: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub node_selector: Option<BTreeMap<String, String>>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub tolerations: Option<Vec<Value>>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub affinity: Option<Value>,
            // PodSpec, kept.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub volumes: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub ephemeral_containers: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub restart_policy: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub termination_grace_period_seconds: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub active_deadline_seconds: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub dns_policy: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub service_account: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub automount_service_account_token: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub node_name: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub host_network: Option<Value>,
            #[serde(default, rename = "hostPID", skip_serializing_if = "Option::is_none")]
            pub host_pid: Option<Value>,
            #[serde(default, rename = "hostIPC", skip_serializing_if = "Option::is_none")]
            pub host_ipc: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub share_process_namespace: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub security_context: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub image_pull_secrets: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub hostname: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub subdomain: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub scheduler_name: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub host_aliases: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub priority_class_name: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub priority: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub dns_config: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub readiness_gates: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub runtime_class_name: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub enable_service_links: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub preemption_policy: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub overhead: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub topology_spread_constraints: Option<Value>,
            #[serde(default, rename = "setHostnameAsFQDN", skip_serializing_if = "Option::is_none")]
            pub set_hostname_as_fqdn: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub os: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub host_users: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub scheduling_gates: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub resource_claims: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub resources: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub hostname_override: Option<Value>,
            // ComponentExtensionSpec.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub min_replicas: Option<i64>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub max_replicas: Option<i64>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub scale_target: Option<i64>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub scale_metric: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub scale_metric_type: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub auto_scaling: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub container_concurrency: Option<i64>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub timeout: Option<i64>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub canary_traffic_percent: Option<i64>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub logger: Option<Logger>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub batcher: Option<Batcher>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub labels: Option<BTreeMap<String, String>>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub annotations: Option<BTreeMap<String, String>>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub deployment_strategy: Option<Value>,
        }

        impl $name {
            /// Moves the pod fields out.
            pub(crate) fn take_pod(&mut self) -> PodSpec {
                let mut kept = BTreeMap::new();
                for (k, v) in [
                    ("volumes", self.volumes.take()),
                    ("ephemeralContainers", self.ephemeral_containers.take()),
                    ("restartPolicy", self.restart_policy.take()),
                    ("terminationGracePeriodSeconds", self.termination_grace_period_seconds.take()),
                    ("activeDeadlineSeconds", self.active_deadline_seconds.take()),
                    ("dnsPolicy", self.dns_policy.take()),
                    ("serviceAccount", self.service_account.take()),
                    ("automountServiceAccountToken", self.automount_service_account_token.take()),
                    ("nodeName", self.node_name.take()),
                    ("hostNetwork", self.host_network.take()),
                    ("hostPID", self.host_pid.take()),
                    ("hostIPC", self.host_ipc.take()),
                    ("shareProcessNamespace", self.share_process_namespace.take()),
                    ("securityContext", self.security_context.take()),
                    ("imagePullSecrets", self.image_pull_secrets.take()),
                    ("hostname", self.hostname.take()),
                    ("subdomain", self.subdomain.take()),
                    ("schedulerName", self.scheduler_name.take()),
                    ("hostAliases", self.host_aliases.take()),
                    ("priorityClassName", self.priority_class_name.take()),
                    ("priority", self.priority.take()),
                    ("dnsConfig", self.dns_config.take()),
                    ("readinessGates", self.readiness_gates.take()),
                    ("runtimeClassName", self.runtime_class_name.take()),
                    ("enableServiceLinks", self.enable_service_links.take()),
                    ("preemptionPolicy", self.preemption_policy.take()),
                    ("overhead", self.overhead.take()),
                    ("topologySpreadConstraints", self.topology_spread_constraints.take()),
                    ("setHostnameAsFQDN", self.set_hostname_as_fqdn.take()),
                    ("os", self.os.take()),
                    ("hostUsers", self.host_users.take()),
                    ("schedulingGates", self.scheduling_gates.take()),
                    ("resourceClaims", self.resource_claims.take()),
                    ("resources", self.resources.take()),
                    ("hostnameOverride", self.hostname_override.take()),
                ] {
                    if let Some(v) = v {
                        kept.insert(k.to_owned(), v);
                    }
                }
                PodSpec {
                    containers: self.containers.take(),
                    init_containers: self.init_containers.take(),
                    service_account_name: self.service_account_name.take(),
                    node_selector: self.node_selector.take(),
                    tolerations: self.tolerations.take(),
                    affinity: self.affinity.take(),
                    kept,
                }
            }

            /// Sets the pod fields from `p`.
            pub(crate) fn put_pod(&mut self, p: PodSpec) {
                let get = |k: &str| p.kept.get(k).cloned();
                self.volumes = get("volumes");
                self.ephemeral_containers = get("ephemeralContainers");
                self.restart_policy = get("restartPolicy");
                self.termination_grace_period_seconds = get("terminationGracePeriodSeconds");
                self.active_deadline_seconds = get("activeDeadlineSeconds");
                self.dns_policy = get("dnsPolicy");
                self.service_account = get("serviceAccount");
                self.automount_service_account_token = get("automountServiceAccountToken");
                self.node_name = get("nodeName");
                self.host_network = get("hostNetwork");
                self.host_pid = get("hostPID");
                self.host_ipc = get("hostIPC");
                self.share_process_namespace = get("shareProcessNamespace");
                self.security_context = get("securityContext");
                self.image_pull_secrets = get("imagePullSecrets");
                self.hostname = get("hostname");
                self.subdomain = get("subdomain");
                self.scheduler_name = get("schedulerName");
                self.host_aliases = get("hostAliases");
                self.priority_class_name = get("priorityClassName");
                self.priority = get("priority");
                self.dns_config = get("dnsConfig");
                self.readiness_gates = get("readinessGates");
                self.runtime_class_name = get("runtimeClassName");
                self.enable_service_links = get("enableServiceLinks");
                self.preemption_policy = get("preemptionPolicy");
                self.overhead = get("overhead");
                self.topology_spread_constraints = get("topologySpreadConstraints");
                self.set_hostname_as_fqdn = get("setHostnameAsFQDN");
                self.os = get("os");
                self.host_users = get("hostUsers");
                self.scheduling_gates = get("schedulingGates");
                self.resource_claims = get("resourceClaims");
                self.resources = get("resources");
                self.hostname_override = get("hostnameOverride");
                self.containers = p.containers;
                self.init_containers = p.init_containers;
                self.service_account_name = p.service_account_name;
                self.node_selector = p.node_selector;
                self.tolerations = p.tolerations;
                self.affinity = p.affinity;
            }

            /// Moves the `ComponentExtensionSpec` fields out.
            pub(crate) fn take_extension(&mut self) -> Extension {
                Extension {
                    min_replicas: self.min_replicas.take(),
                    max_replicas: self.max_replicas.take(),
                    scale_target: self.scale_target.take(),
                    scale_metric: self.scale_metric.take(),
                    scale_metric_type: self.scale_metric_type.take(),
                    auto_scaling: self.auto_scaling.take(),
                    container_concurrency: self.container_concurrency.take(),
                    timeout: self.timeout.take(),
                    canary_traffic_percent: self.canary_traffic_percent.take(),
                    logger: self.logger.take(),
                    batcher: self.batcher.take(),
                    labels: self.labels.take(),
                    annotations: self.annotations.take(),
                    deployment_strategy: self.deployment_strategy.take(),
                }
            }

            /// Sets the `ComponentExtensionSpec` fields from `e`.
            pub(crate) fn put_extension(&mut self, e: Extension) {
                self.min_replicas = e.min_replicas;
                self.max_replicas = e.max_replicas;
                self.scale_target = e.scale_target;
                self.scale_metric = e.scale_metric;
                self.scale_metric_type = e.scale_metric_type;
                self.auto_scaling = e.auto_scaling;
                self.container_concurrency = e.container_concurrency;
                self.timeout = e.timeout;
                self.canary_traffic_percent = e.canary_traffic_percent;
                self.logger = e.logger;
                self.batcher = e.batcher;
                self.labels = e.labels;
                self.annotations = e.annotations;
                self.deployment_strategy = e.deployment_strategy;
            }
        }
    };
}

/// An InferenceService with its Kubernetes envelope and metadata.
pub(crate) type InferenceService = Object<InferenceServiceSpec>;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct InferenceServiceSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictor: Option<Box<PredictorSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transformer: Option<Box<TransformerSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explainer: Option<Box<ExplainerSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Vec<Canary>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Canary {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictor: Option<Box<PredictorSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_percent: Option<i64>,
}

component! {
    pub(crate) struct PredictorSpec {
        pub name: String,
        pub model: Box<ModelSpec>,
        pub sklearn: Box<ModelSpec>,
        pub xgboost: Box<ModelSpec>,
        pub tensorflow: Box<ModelSpec>,
        pub pytorch: Box<ModelSpec>,
        pub triton: Box<ModelSpec>,
        pub onnx: Box<ModelSpec>,
        pub huggingface: Box<ModelSpec>,
        pub pmml: Box<ModelSpec>,
        pub lightgbm: Box<ModelSpec>,
        pub paddle: Box<ModelSpec>,
        pub storage_uris: Vec<StorageUriEntry>,
        pub storage_container_name: String,
        /// Multi-node serving; accepted only to refuse it clearly.
        pub worker_spec: Value,
    }
}

component! {
    pub(crate) struct TransformerSpec {
        pub storage_uris: Vec<StorageUriEntry>,
    }
}

component! {
    pub(crate) struct ExplainerSpec {
        pub art: Box<ArtExplainer>,
        pub storage_uris: Vec<StorageUriEntry>,
        /// KServe's removed built-in explainers; accepted only to refuse
        /// them with directions.
        pub alibi: Value,
        pub aix: Value,
    }
}

with_container_fields! {
    /// `model:` and the framework keys (`sklearn:`, …), which share KServe's
    /// `PredictorExtensionSpec`; `modelFormat` and `runtime` belong to
    /// `model:` only.
    pub(crate) struct ModelSpec {
        pub model_format: ModelFormat,
        pub runtime: String,
        pub storage_uri: String,
        pub runtime_version: String,
        pub protocol_version: String,
        pub storage: ModelStorage,
        /// Confidential computing; accepted only to refuse it clearly.
        pub confidential: Value,
    }
}

with_container_fields! {
    pub(crate) struct ArtExplainer {
        #[serde(rename = "type")]
        pub explainer_type: String,
        pub storage_uri: String,
        pub runtime_version: String,
        pub config: BTreeMap<String, String>,
        pub storage: ModelStorage,
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ModelFormat {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Scalar>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ModelStorage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_path: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct StorageUriEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_path: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Logger {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_headers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_annotations: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<LoggerStorage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marshaller_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_interval: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct LoggerStorage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Batcher {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch_size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
}

/// A TrainedModel with its Kubernetes envelope and metadata.
pub(crate) type TrainedModel = Object<TrainedModelSpec>;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct TrainedModelSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<TrainedModelModel>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct TrainedModelModel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Scalar>,
}

/// A (Cluster)ServingRuntime with its Kubernetes envelope and metadata.
pub(crate) type ServingRuntime = Object<ServingRuntimeSpec>;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ServingRuntimeSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported_model_formats: Option<Vec<SupportedModelFormat>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_model: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_versions: Option<Vec<String>>,
    /// Multi-node serving; accepted only to refuse it clearly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_spec: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containers: Option<Vec<Container>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    // Kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Value>,
    #[serde(default, rename = "hostIPC", skip_serializing_if = "Option::is_none")]
    pub host_ipc: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_name: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_claims: Option<Value>,
    #[serde(
        default,
        rename = "grpcEndpoint",
        skip_serializing_if = "Option::is_none"
    )]
    pub grpc_endpoint: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_data_endpoint: Option<Value>,
    #[serde(
        default,
        rename = "httpDataEndpoint",
        skip_serializing_if = "Option::is_none"
    )]
    pub http_data_endpoint: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_helper: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_in_adapter: Option<Value>,
}

impl ServingRuntimeSpec {
    /// The kept fields, by Kubernetes name.
    pub(crate) fn take_kept(&mut self) -> BTreeMap<String, Value> {
        let mut m = BTreeMap::new();
        for (k, v) in [
            ("volumes", self.volumes.take()),
            ("imagePullSecrets", self.image_pull_secrets.take()),
            ("hostIPC", self.host_ipc.take()),
            ("schedulerName", self.scheduler_name.take()),
            ("resourceClaims", self.resource_claims.take()),
            ("grpcEndpoint", self.grpc_endpoint.take()),
            ("grpcDataEndpoint", self.grpc_data_endpoint.take()),
            ("httpDataEndpoint", self.http_data_endpoint.take()),
            ("replicas", self.replicas.take()),
            ("storageHelper", self.storage_helper.take()),
            ("builtInAdapter", self.built_in_adapter.take()),
        ] {
            if let Some(v) = v {
                m.insert(k.to_owned(), v);
            }
        }
        m
    }

    /// The inverse of [`ServingRuntimeSpec::take_kept`].
    pub(crate) fn put_kept(&mut self, kept: &BTreeMap<String, Value>) {
        let get = |k: &str| kept.get(k).cloned();
        self.volumes = get("volumes");
        self.image_pull_secrets = get("imagePullSecrets");
        self.host_ipc = get("hostIPC");
        self.scheduler_name = get("schedulerName");
        self.resource_claims = get("resourceClaims");
        self.grpc_endpoint = get("grpcEndpoint");
        self.grpc_data_endpoint = get("grpcDataEndpoint");
        self.http_data_endpoint = get("httpDataEndpoint");
        self.replicas = get("replicas");
        self.storage_helper = get("storageHelper");
        self.built_in_adapter = get("builtInAdapter");
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SupportedModelFormat {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_select: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
}
