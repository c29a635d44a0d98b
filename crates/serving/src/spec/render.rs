//! Typed model → KServe's shape, as KServe stores a resource after its
//! mutating webhook: framework keys written as `model:`, the serving
//! container named `kserve-container`, every default spelled out. Parsing
//! the result gives back an equal value.

use std::collections::BTreeMap;

use oxflow_core::spec::{Object, ObjectMeta};
use serde::Serialize;
use serde_json::Value;

use super::kube::{
    Container, ContainerSpec, EnvValue, PodOptions, PortRef, Probe, ProbeAction,
    ResourceRequirements,
};
use super::runtime::{POD_KEPT, RuntimeScope, ServingRuntime, TrainedModel};
use super::values::format_go_duration;
use super::wire::{self, IntOrString, Scalar};
use super::{
    API_VERSION_V1ALPHA1, API_VERSION_V1BETA1, ArtExplainer, ComponentExtension,
    DEPLOYMENT_MODE_ANNOTATION, Explainer, ExplainerSpec, InferenceService, ModelSpec,
    ModelStorageSpec, Predictor, PredictorSpec, StorageMount, TransformerSpec,
};

/// Serialising plain data structures with string keys cannot fail.
fn to_value(v: impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn non_empty<T: Clone>(v: &[T]) -> Option<Vec<T>> {
    (!v.is_empty()).then(|| v.to_vec())
}

fn non_empty_map<V: Clone>(m: &BTreeMap<String, V>) -> Option<BTreeMap<String, V>> {
    (!m.is_empty()).then(|| m.clone())
}

pub(super) fn inference_service(s: &InferenceService) -> Value {
    let mut annotations = s.annotations.clone();
    annotations.insert(
        DEPLOYMENT_MODE_ANNOTATION.to_owned(),
        s.deployment_mode.as_str().to_owned(),
    );
    let spec = &s.spec;
    let doc = Object::new(
        API_VERSION_V1BETA1,
        "InferenceService",
        ObjectMeta::new(
            s.name.as_str(),
            s.namespace.as_ref().map(|n| n.as_str()),
            &s.labels,
            &annotations,
        ),
        wire::InferenceServiceSpec {
            predictor: Some(Box::new(predictor(&spec.predictor))),
            transformer: spec.transformer.as_ref().map(|t| Box::new(transformer(t))),
            explainer: spec.explainer.as_ref().map(|e| Box::new(explainer(e))),
            canary: non_empty(
                &spec
                    .canary
                    .iter()
                    .map(|c| wire::Canary {
                        predictor: Some(Box::new(predictor(&c.predictor))),
                        traffic_percent: Some(i64::from(c.traffic_percent.get())),
                    })
                    .collect::<Vec<_>>(),
            ),
        },
    );
    to_value(doc)
}

fn predictor(p: &PredictorSpec) -> wire::PredictorSpec {
    let mut w = wire::PredictorSpec {
        name: p.name.clone(),
        storage_uris: storage_uris(&p.storage_uris),
        storage_container_name: p.storage_container_name.clone(),
        ..Default::default()
    };
    let mut containers = Vec::new();
    match &p.implementation {
        Predictor::Model(m) => w.model = Some(Box::new(model(m))),
        Predictor::Custom(c) => containers.push(container(c)),
    }
    containers.extend(p.sidecars.iter().map(container));
    w.put_pod(pod(&p.pod, containers));
    w.put_extension(extension(&p.component));
    w
}

fn model(m: &ModelSpec) -> wire::ModelSpec {
    let mut w = wire::ModelSpec {
        model_format: Some(wire::ModelFormat {
            name: Some(m.format.name.as_str().to_owned()),
            version: m.format.version.clone().map(Scalar),
        }),
        runtime: m.runtime.clone(),
        storage_uri: m.storage_uri.as_ref().map(|u| u.as_str().to_owned()),
        runtime_version: m.runtime_version.clone(),
        protocol_version: Some(m.protocol.as_str().to_owned()),
        storage: m.storage.as_ref().map(model_storage),
        confidential: None,
        ..Default::default()
    };
    w.put_container(container_spec(&m.container));
    w
}

fn model_storage(s: &ModelStorageSpec) -> wire::ModelStorage {
    wire::ModelStorage {
        key: s.key.clone(),
        path: s.path.clone(),
        parameters: non_empty_map(&s.parameters),
        schema_path: s.schema_path.clone(),
    }
}

fn storage_uris(mounts: &[StorageMount]) -> Option<Vec<wire::StorageUriEntry>> {
    non_empty(
        &mounts
            .iter()
            .map(|m| wire::StorageUriEntry {
                uri: Some(m.uri.as_str().to_owned()),
                mount_path: Some(m.mount_path.clone()),
            })
            .collect::<Vec<_>>(),
    )
}

fn transformer(t: &TransformerSpec) -> wire::TransformerSpec {
    let mut w = wire::TransformerSpec {
        storage_uris: storage_uris(&t.storage_uris),
        ..Default::default()
    };
    let containers = std::iter::once(&t.container)
        .chain(&t.sidecars)
        .map(container)
        .collect();
    w.put_pod(pod(&t.pod, containers));
    w.put_extension(extension(&t.component));
    w
}

fn explainer(e: &ExplainerSpec) -> wire::ExplainerSpec {
    let mut w = wire::ExplainerSpec {
        storage_uris: storage_uris(&e.storage_uris),
        ..Default::default()
    };
    let mut containers = Vec::new();
    match &e.implementation {
        Explainer::Art(a) => w.art = Some(Box::new(art(a))),
        Explainer::Custom(c) => containers.push(container(c)),
    }
    containers.extend(e.sidecars.iter().map(container));
    w.put_pod(pod(&e.pod, containers));
    w.put_extension(extension(&e.component));
    w
}

fn art(a: &ArtExplainer) -> wire::ArtExplainer {
    let mut w = wire::ArtExplainer {
        explainer_type: Some(a.explainer_type.clone()),
        storage_uri: a.storage_uri.as_ref().map(|u| u.as_str().to_owned()),
        runtime_version: a.runtime_version.clone(),
        config: non_empty_map(&a.config),
        storage: a.storage.as_ref().map(model_storage),
        ..Default::default()
    };
    w.put_container(container_spec(&a.container));
    w
}

fn pod(p: &PodOptions, containers: Vec<wire::Container>) -> wire::PodSpec {
    wire::PodSpec {
        containers: non_empty(&containers),
        init_containers: non_empty(&p.init_containers.iter().map(container).collect::<Vec<_>>()),
        service_account_name: p.service_account_name.clone(),
        node_selector: non_empty_map(&p.node_selector),
        tolerations: non_empty(&p.tolerations),
        affinity: p.affinity.clone(),
        kept: p.kubernetes.clone(),
    }
}

fn extension(c: &ComponentExtension) -> wire::Extension {
    wire::Extension {
        min_replicas: Some(i64::from(c.min_replicas)),
        max_replicas: c.max_replicas.map(|n| i64::from(n.get())),
        scale_target: c.scale_target.map(|n| i64::from(n.get())),
        scale_metric: c.scale_metric.map(|m| m.as_str().to_owned()),
        scale_metric_type: c.scale_metric_type.map(|m| m.as_str().to_owned()),
        auto_scaling: c.autoscaling.clone(),
        container_concurrency: c.container_concurrency.map(|n| i64::from(n.get())),
        timeout: c.timeout_seconds.map(|n| i64::from(n.get())),
        canary_traffic_percent: c.canary_traffic_percent.map(|p| i64::from(p.get())),
        logger: c.logger.as_ref().map(|l| wire::Logger {
            url: l.url.as_ref().map(|u| u.as_str().to_owned()),
            mode: Some(l.mode.as_str().to_owned()),
            metadata_headers: non_empty(&l.metadata_headers),
            metadata_annotations: non_empty(&l.metadata_annotations),
            storage: l.storage.as_ref().map(|s| wire::LoggerStorage {
                path: Some(s.path.clone()),
                parameters: Some(s.parameters.clone()),
                key: Some(s.key.clone()),
                service_account_name: s.service_account_name.clone(),
            }),
            marshaller_url: l.marshaller_url.as_ref().map(|u| u.as_str().to_owned()),
            batch_size: l.batch_size.map(|n| i64::from(n.get())),
            batch_interval: l.batch_interval.map(format_go_duration),
        }),
        batcher: c.batcher.map(|b| wire::Batcher {
            max_batch_size: Some(i64::from(b.max_batch_size.get())),
            max_latency: Some(i64::from(b.max_latency_ms.get())),
            timeout: b.timeout_seconds.map(|n| i64::from(n.get())),
        }),
        labels: non_empty_map(&c.labels),
        annotations: non_empty_map(&c.annotations),
        deployment_strategy: c.deployment_strategy.clone(),
    }
}

fn container(c: &Container) -> wire::Container {
    let mut w = container_spec(&c.spec);
    w.name = Some(c.name.clone());
    w
}

fn container_spec(c: &ContainerSpec) -> wire::Container {
    let mut w = wire::Container {
        name: None,
        image: c.image.clone(),
        command: non_empty(&c.command),
        args: non_empty(&c.args),
        working_dir: c.working_dir.clone(),
        ports: non_empty(
            &c.ports
                .iter()
                .map(|p| wire::ContainerPort {
                    container_port: Some(i64::from(p.container_port)),
                    name: p.name.clone(),
                    protocol: Some(p.protocol.as_str().to_owned()),
                    host_port: p.host_port.map(i64::from),
                    host_ip: p.host_ip.clone(),
                })
                .collect::<Vec<_>>(),
        ),
        env: non_empty(
            &c.env
                .iter()
                .map(|e| match &e.value {
                    EnvValue::Literal(v) => wire::EnvVar {
                        name: Some(e.name.clone()),
                        value: Some(v.clone()),
                        value_from: None,
                    },
                    EnvValue::From(f) => wire::EnvVar {
                        name: Some(e.name.clone()),
                        value: None,
                        value_from: Some(f.clone()),
                    },
                })
                .collect::<Vec<_>>(),
        ),
        resources: (!c.resources.is_empty()).then(|| Box::new(resources(&c.resources))),
        liveness_probe: c.liveness_probe.as_ref().map(|p| Box::new(probe(p))),
        readiness_probe: c.readiness_probe.as_ref().map(|p| Box::new(probe(p))),
        startup_probe: c.startup_probe.as_ref().map(|p| Box::new(probe(p))),
        ..Default::default()
    };
    w.put_kept(&c.kubernetes);
    w
}

fn resources(r: &ResourceRequirements) -> wire::Resources {
    let list = |m: &BTreeMap<String, super::Quantity>| {
        (!m.is_empty()).then(|| {
            m.iter()
                .map(|(k, q)| (k.clone(), Scalar(q.as_str().to_owned())))
                .collect()
        })
    };
    wire::Resources {
        limits: list(&r.limits),
        requests: list(&r.requests),
        claims: r.claims.clone(),
    }
}

fn port_ref(p: &PortRef) -> IntOrString {
    match p {
        PortRef::Number(n) => IntOrString::Int(i64::from(*n)),
        PortRef::Name(s) => IntOrString::Str(s.clone()),
    }
}

fn probe(p: &Probe) -> wire::Probe {
    let mut w = wire::Probe {
        initial_delay_seconds: Some(i64::from(p.initial_delay_seconds)),
        period_seconds: Some(i64::from(p.period_seconds)),
        timeout_seconds: Some(i64::from(p.timeout_seconds)),
        success_threshold: Some(i64::from(p.success_threshold)),
        failure_threshold: Some(i64::from(p.failure_threshold)),
        termination_grace_period_seconds: p
            .termination_grace_period_seconds
            .and_then(|n| i64::try_from(n).ok()),
        ..Default::default()
    };
    match &p.action {
        ProbeAction::Exec { command } => {
            w.exec = Some(wire::ExecAction {
                command: Some(command.clone()),
            });
        }
        ProbeAction::HttpGet(h) => {
            w.http_get = Some(wire::HttpGetAction {
                path: Some(h.path.clone()),
                port: Some(port_ref(&h.port)),
                host: h.host.clone(),
                scheme: Some(if h.https { "HTTPS" } else { "HTTP" }.to_owned()),
                http_headers: non_empty(
                    &h.http_headers
                        .iter()
                        .map(|(n, v)| wire::HttpHeader {
                            name: Some(n.clone()),
                            value: Some(v.clone()),
                        })
                        .collect::<Vec<_>>(),
                ),
            });
        }
        ProbeAction::TcpSocket { port, host } => {
            w.tcp_socket = Some(wire::TcpSocketAction {
                port: Some(port_ref(port)),
                host: host.clone(),
            });
        }
        ProbeAction::Grpc { port, service } => {
            w.grpc = Some(wire::GrpcAction {
                port: Some(i64::from(*port)),
                service: service.clone(),
            });
        }
    }
    w
}

pub(super) fn trained_model(m: &TrainedModel) -> Value {
    let doc = Object::new(
        API_VERSION_V1ALPHA1,
        "TrainedModel",
        ObjectMeta::new(
            m.name.as_str(),
            m.namespace.as_ref().map(|n| n.as_str()),
            &m.labels,
            &m.annotations,
        ),
        wire::TrainedModelSpec {
            inference_service: Some(m.spec.inference_service.as_str().to_owned()),
            model: Some(wire::TrainedModelModel {
                storage_uri: Some(m.spec.model.storage_uri.as_str().to_owned()),
                framework: Some(m.spec.model.framework.as_str().to_owned()),
                memory: Some(Scalar(m.spec.model.memory.as_str().to_owned())),
            }),
        },
    );
    to_value(doc)
}

pub(super) fn serving_runtime(r: &ServingRuntime) -> Value {
    let s = &r.spec;
    let namespace = match &r.scope {
        RuntimeScope::Namespaced(ns) => ns.as_ref().map(|n| n.as_str()),
        RuntimeScope::Cluster => None,
    };
    let mut kept = s.model_mesh.clone();
    for k in POD_KEPT {
        if let Some(v) = s.pod.kubernetes.get(k) {
            kept.insert(k.to_owned(), v.clone());
        }
    }
    let mut spec = wire::ServingRuntimeSpec {
        supported_model_formats: non_empty(
            &s.supported_model_formats
                .iter()
                .map(|f| wire::SupportedModelFormat {
                    name: Some(f.name.as_str().to_owned()),
                    version: f.version.clone().map(Scalar),
                    auto_select: Some(f.auto_select),
                    priority: f.priority.map(i64::from),
                })
                .collect::<Vec<_>>(),
        ),
        multi_model: Some(s.multi_model),
        disabled: Some(s.disabled),
        protocol_versions: non_empty(
            &s.protocol_versions
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect::<Vec<_>>(),
        ),
        worker_spec: None,
        containers: Some(s.containers.iter().map(container).collect()),
        node_selector: non_empty_map(&s.pod.node_selector),
        affinity: s.pod.affinity.clone(),
        tolerations: non_empty(&s.pod.tolerations),
        labels: non_empty_map(&s.labels),
        annotations: non_empty_map(&s.annotations),
        ..Default::default()
    };
    spec.put_kept(&kept);
    let doc = Object::new(
        API_VERSION_V1ALPHA1,
        r.scope.kind(),
        ObjectMeta::new(r.name.as_str(), namespace, &r.labels, &r.annotations),
        spec,
    );
    to_value(doc)
}
