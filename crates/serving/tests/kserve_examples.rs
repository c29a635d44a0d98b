//! Golden tests: KServe's own example resources (copied unmodified, each
//! file names its source in a `# Source:` header) either load with the
//! expected facts and defaults, or fail with the expected field and reason.
//! Every loaded document renders back into KServe's shape, and that parses
//! again into an equal value, also through YAML text.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use oxflow_serving::spec::{
    Batcher, DeploymentMode, EnvValue, Explainer, InferenceService, LocalServer, LoggerMode,
    ModelFormatName, PortProtocol, Predictor, Protocol, Resource, RuntimeScope, ScaleMetric,
    ServingRuntime, StorageScheme, TrainedModel, parse_documents,
};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kserve-examples")
}

fn read(file: &str) -> String {
    std::fs::read_to_string(dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn nz(n: u32) -> Option<NonZeroU32> {
    NonZeroU32::new(n)
}

/// What one document of an example must give.
enum Expect {
    /// An InferenceService with these facts.
    Isvc(fn(&InferenceService)),
    /// A TrainedModel with these facts.
    Model(fn(&TrainedModel)),
    /// A ServingRuntime or ClusterServingRuntime with these facts.
    Runtime(fn(&ServingRuntime)),
    /// Fails at this path with a message containing this text.
    Fails(&'static str, &'static str),
}

use Expect::{Fails, Isvc, Model, Runtime};

/// The model of a predictor that must be `model:`.
fn model(s: &InferenceService) -> &oxflow_serving::spec::ModelSpec {
    match &s.spec.predictor.implementation {
        Predictor::Model(m) => m,
        Predictor::Custom(c) => panic!("expected a model predictor, got container {c:?}"),
    }
}

/// What every example service shares unless it says otherwise.
fn plain(s: &InferenceService) {
    assert_eq!(s.namespace, None);
    assert_eq!(s.deployment_mode, DeploymentMode::Standard);
    assert!(s.spec.canary.is_empty());
    let c = &s.spec.predictor.component;
    assert_eq!(c.max_replicas, None);
    assert_eq!(c.container_concurrency, None);
    assert!(s.spec.predictor.sidecars.is_empty());
    assert!(s.spec.predictor.storage_uris.is_empty());
}

fn gs(s: &InferenceService, location: &str) {
    let uri = model(s).storage_uri.as_ref().expect("a storageUri");
    assert_eq!(uri.scheme(), StorageScheme::Gcs);
    assert_eq!(uri.location(), location);
}

fn sklearn_v2(s: &InferenceService) {
    plain(s);
    assert_eq!(s.name.as_str(), "sklearn-iris");
    let m = model(s);
    assert_eq!(m.format.name, ModelFormatName::Sklearn);
    assert_eq!(m.format.version, None);
    assert_eq!(
        m.format.name.local_server(),
        Some(LocalServer::PythonWorker)
    );
    assert_eq!(m.protocol, Protocol::V2);
    assert_eq!(m.runtime.as_deref(), Some("kserve-sklearnserver"));
    gs(s, "kfserving-examples/models/sklearn/1.0/model");
    assert_eq!(s.spec.predictor.component.min_replicas, 1);
    assert!(s.spec.transformer.is_none() && s.spec.explainer.is_none());
}

fn canary_base(s: &InferenceService) {
    assert_eq!(s.name.as_str(), "sklearn-iris");
    assert_eq!(
        s.namespace.as_ref().map(|n| n.as_str()),
        Some("kserve-test")
    );
    let m = model(s);
    assert_eq!(m.format.name, ModelFormatName::Sklearn);
    assert_eq!(m.protocol, Protocol::V1);
    gs(s, "kserve-examples/models/sklearn/1.0/model-2");
    let core = m.container.resources.to_core();
    assert_eq!(core.cpu_request_millis, Some(100));
    assert_eq!(core.cpu_limit_millis, Some(100));
    assert_eq!(core.memory_request_bytes, Some(256 << 20));
    assert_eq!(core.memory_limit_bytes, Some(256 << 20));
}

fn flowers(s: &InferenceService) {
    plain(s);
    assert_eq!(s.name.as_str(), "flowers-sample");
    let m = model(s);
    assert_eq!(m.format.name, ModelFormatName::Tensorflow);
    assert_eq!(m.format.name.local_server(), None);
    assert_eq!(m.protocol, Protocol::V1);
    gs(s, "kfserving-examples/models/tensorflow/flowers");
}

fn trained_model(m: &TrainedModel) {
    assert_eq!(m.spec.inference_service.as_str(), "sklearn-iris-example");
    assert_eq!(m.spec.model.framework, ModelFormatName::Sklearn);
    assert_eq!(m.spec.model.memory.as_str(), "256Mi");
    assert_eq!(m.spec.model.memory.value(), Some(256 << 20));
    assert_eq!(
        m.spec.model.storage_uri.as_str(),
        "gs://kfserving-examples/models/sklearn/1.0/model"
    );
}

fn expectations() -> Vec<(&'static str, Vec<Expect>)> {
    vec![
        ("01-sklearn-v2.yaml", vec![Isvc(sklearn_v2)]),
        (
            "02-sklearn-v1-legacy.yaml",
            vec![Isvc(|s| {
                plain(s);
                // The legacy `sklearn:` key becomes model.modelFormat sklearn, V1.
                let m = model(s);
                assert_eq!(m.format.name, ModelFormatName::Sklearn);
                assert_eq!(m.protocol, Protocol::V1);
                assert_eq!(m.runtime, None);
                gs(s, "kfserving-examples/models/sklearn/1.0/model");
            })],
        ),
        (
            "03-xgboost-v2.yaml",
            vec![Isvc(|s| {
                plain(s);
                assert_eq!(s.name.as_str(), "xgboost-iris");
                let m = model(s);
                assert_eq!(m.format.name, ModelFormatName::Xgboost);
                assert_eq!(m.format.name.local_server(), Some(LocalServer::Native));
                assert_eq!(m.protocol, Protocol::V2);
                assert_eq!(m.runtime.as_deref(), Some("kserve-xgbserver"));
                gs(s, "kfserving-examples/models/xgboost/iris");
            })],
        ),
        (
            "04-onnx-v2.yaml",
            vec![Isvc(|s| {
                plain(s);
                assert_eq!(s.name.as_str(), "style-sample");
                let m = model(s);
                assert_eq!(m.format.name, ModelFormatName::Onnx);
                assert_eq!(m.format.name.local_server(), Some(LocalServer::Native));
                assert_eq!(m.protocol, Protocol::V2);
                assert_eq!(m.runtime, None);
                let r = &m.container.resources;
                assert_eq!(r.requests["cpu"].as_str(), "100m");
                assert_eq!(r.limits["memory"].as_str(), "1Gi");
                let core = r.to_core();
                assert_eq!(core.cpu_request_millis, Some(100));
                assert_eq!(core.cpu_limit_millis, Some(1000));
                assert_eq!(core.memory_request_bytes, Some(512 << 20));
                assert_eq!(core.memory_limit_bytes, Some(1 << 30));
                assert_eq!(core.accelerator, None);
            })],
        ),
        (
            "05-canary-rollout.yaml",
            vec![
                Isvc(|s| {
                    canary_base(s);
                    let p = s.spec.predictor.component.canary_traffic_percent;
                    assert_eq!(p.map(|p| p.get()), Some(10));
                    assert!(!s.tag_routing());
                }),
                Isvc(|s| {
                    canary_base(s);
                    // 0 rolls back: all traffic to the previous revision.
                    let p = s.spec.predictor.component.canary_traffic_percent;
                    assert_eq!(p.map(|p| p.get()), Some(0));
                }),
                Isvc(|s| {
                    canary_base(s);
                    let p = s.spec.predictor.component.canary_traffic_percent;
                    assert_eq!(p.map(|p| p.get()), Some(10));
                    assert!(s.tag_routing());
                }),
            ],
        ),
        (
            "06-transformer.yaml",
            vec![
                Isvc(|s| {
                    plain(s);
                    assert_eq!(s.name.as_str(), "torch-transformer");
                    let m = model(s);
                    assert_eq!(m.format.name, ModelFormatName::Pytorch);
                    assert_eq!(m.protocol, Protocol::V1);
                    let t = s.spec.transformer.as_ref().expect("a transformer");
                    assert_eq!(t.container.name, "kserve-container");
                    assert_eq!(
                        t.container.spec.image.as_deref(),
                        Some("kserve/image-transformer:latest")
                    );
                    assert_eq!(t.container.spec.command, ["python", "-m", "model"]);
                    assert_eq!(t.container.spec.args, ["--model_name", "mnist"]);
                    assert_eq!(t.container.spec.arg_value("--model_name"), Some("mnist"));
                    assert_eq!(t.container.spec.arg_value("--predictor_host"), None);
                    assert_eq!(t.container.spec.http_port(), 8080);
                    assert_eq!(t.protocol(), Protocol::V1);
                    let core = t.container.spec.resources.to_core();
                    assert_eq!(core.cpu_limit_millis, Some(1000));
                    assert_eq!(core.memory_limit_bytes, Some(2 << 30));
                    assert_eq!(t.component.min_replicas, 1);
                    assert!(t.sidecars.is_empty());
                }),
                Isvc(|s| {
                    plain(s);
                    assert_eq!(s.name.as_str(), "torch-grpc-transformer");
                    let m = model(s);
                    assert_eq!(m.format.name, ModelFormatName::Pytorch);
                    assert_eq!(m.runtime.as_deref(), Some("kserve-tritonserver"));
                    assert_eq!(m.runtime_version.as_deref(), Some("20.10-py3"));
                    // KServe's Triton runtime defaults the protocol to v2.
                    assert_eq!(m.protocol, Protocol::V2);
                    let port = &m.container.ports[0];
                    assert_eq!(port.name.as_deref(), Some("h2c"));
                    assert_eq!(port.container_port, 9000);
                    assert_eq!(port.protocol, PortProtocol::Tcp);
                    assert_eq!(m.container.http_port(), 9000);
                    let t = s.spec.transformer.as_ref().expect("a transformer");
                    assert_eq!(
                        t.container.spec.args,
                        ["--model_name", "cifar10", "--protocol", "grpc-v2"]
                    );
                }),
            ],
        ),
        (
            "07-explainer-alibi.yaml",
            vec![Isvc(|s| {
                plain(s);
                assert_eq!(s.name.as_str(), "income");
                let m = model(s);
                assert_eq!(m.format.name, ModelFormatName::Sklearn);
                assert_eq!(
                    m.container.resources.to_core().cpu_request_millis,
                    Some(100)
                );
                let e = s.spec.explainer.as_ref().expect("an explainer");
                let Explainer::Custom(c) = &e.implementation else {
                    panic!("expected a custom explainer");
                };
                assert_eq!(c.name, "kserve-container");
                assert_eq!(
                    c.spec.image.as_deref(),
                    Some("kserve/alibi-explainer:v0.12.1")
                );
                assert!(
                    c.spec
                        .args
                        .contains(&"--predictor_host=income-predictor.default".to_owned())
                );
                assert_eq!(
                    c.spec.args.last().map(String::as_str),
                    Some("AnchorTabular")
                );
                assert_eq!(
                    c.spec.arg_value("--predictor_host"),
                    Some("income-predictor.default")
                );
                assert_eq!(c.spec.arg_value("--http_port"), Some("8080"));
                assert_eq!(
                    c.spec.env_value("STORAGE_URI"),
                    Some("gs://kfserving-examples/models/sklearn/1.3/income/explainer")
                );
                assert_eq!(e.component.min_replicas, 1);
                assert_eq!(c.spec.resources.to_core().memory_limit_bytes, Some(4 << 30));
            })],
        ),
        (
            "08-batcher.yaml",
            vec![Isvc(|s| {
                plain(s);
                assert_eq!(s.name.as_str(), "torchserve");
                assert_eq!(model(s).format.name, ModelFormatName::Pytorch);
                let c = &s.spec.predictor.component;
                assert_eq!(c.timeout_seconds, nz(60));
                assert_eq!(
                    c.batcher,
                    Some(Batcher {
                        max_batch_size: NonZeroU32::new(32).unwrap(),
                        max_latency_ms: NonZeroU32::new(500).unwrap(),
                        timeout_seconds: None,
                    })
                );
            })],
        ),
        (
            "09-autoscale-scale-to-zero.yaml",
            vec![
                Isvc(|s| {
                    flowers(s);
                    let c = &s.spec.predictor.component;
                    assert_eq!(c.scale_target, nz(1));
                    assert_eq!(c.scale_metric, Some(ScaleMetric::Concurrency));
                    assert_eq!(c.min_replicas, 1);
                }),
                Isvc(|s| {
                    let c = &s.spec.predictor.component;
                    assert_eq!(c.scale_metric, None);
                    s.spec
                        .predictor
                        .component
                        .container_concurrency
                        .expect("a limit");
                    assert_eq!(c.container_concurrency, nz(10));
                }),
                Isvc(|s| {
                    flowers(s);
                    assert_eq!(s.spec.predictor.component.min_replicas, 0);
                }),
            ],
        ),
        (
            "10-logger.yaml",
            vec![Isvc(|s| {
                plain(s);
                let l = s
                    .spec
                    .predictor
                    .component
                    .logger
                    .as_ref()
                    .expect("a logger");
                assert_eq!(l.mode, LoggerMode::All);
                assert_eq!(
                    l.url.as_ref().map(|u| u.as_str()),
                    Some("http://message-dumper.default.svc.cluster.local")
                );
                assert_eq!(l.storage, None);
            })],
        ),
        (
            "11-multimodel-trainedmodel.yaml",
            vec![
                // KServe's webhook refuses `name` inside a model predictor
                // since kserve/kserve#4535, so its own sample no longer applies.
                Fails(
                    "spec.predictor.sklearn.name",
                    "not allowed in a model predictor",
                ),
                Model(|m| {
                    assert_eq!(m.name.as_str(), "model1-sklearn");
                    trained_model(m);
                }),
                Model(|m| {
                    assert_eq!(m.name.as_str(), "model2-sklearn");
                    trained_model(m);
                }),
            ],
        ),
        (
            "12-servingruntime-mlserver-sklearn.yaml",
            vec![
                Runtime(|r| {
                    assert_eq!(r.scope, RuntimeScope::Cluster);
                    assert_eq!(r.name.as_str(), "kserve-mlserver");
                    assert_eq!(r.annotations["serving.kserve.io/server-type"], "mlserver");
                    let s = &r.spec;
                    assert_eq!(s.supported_model_formats.len(), 8);
                    assert_eq!(s.protocol_versions, [Protocol::V2]);
                    assert!(!s.multi_model && !s.disabled);
                    assert_eq!(s.annotations["prometheus.kserve.io/port"], "8080");
                    let c = s.serving_container().expect("a container");
                    assert_eq!(c.name, "kserve-container");
                    assert_eq!(c.spec.image.as_deref(), Some("mlserver:replace"));
                    assert_eq!(
                        c.spec.env_value("MLSERVER_MODEL_IMPLEMENTATION"),
                        Some("{{.Labels.modelClass}}")
                    );
                    assert!(c.spec.kubernetes.contains_key("securityContext"));
                    assert_eq!(c.spec.resources.to_core().cpu_limit_millis, Some(1000));
                    let sklearn = |v: Option<&str>| oxflow_serving::spec::ModelFormat {
                        name: ModelFormatName::Sklearn,
                        version: v.map(str::to_owned),
                    };
                    assert!(s.supports(&sklearn(None), Protocol::V2, false));
                    assert!(s.supports(&sklearn(Some("1")), Protocol::V2, false));
                    assert!(!s.supports(&sklearn(Some("2")), Protocol::V2, false));
                    assert!(!s.supports(&sklearn(None), Protocol::V1, false));
                    assert_eq!(s.priority(&ModelFormatName::Sklearn), Some(2));
                    assert_eq!(s.priority(&ModelFormatName::Mlflow), Some(1));
                }),
                Runtime(|r| {
                    assert_eq!(r.scope, RuntimeScope::Cluster);
                    assert_eq!(r.name.as_str(), "kserve-sklearnserver");
                    let s = &r.spec;
                    assert_eq!(s.protocol_versions, [Protocol::V1, Protocol::V2]);
                    let f = &s.supported_model_formats[0];
                    assert_eq!(f.name, ModelFormatName::Sklearn);
                    assert_eq!(f.version.as_deref(), Some("1"));
                    assert!(f.auto_select);
                    assert_eq!(f.priority, Some(1));
                    let c = s.serving_container().expect("a container");
                    assert_eq!(
                        c.spec.args,
                        [
                            "--model_name={{.Name}}",
                            "--model_dir=/mnt/models",
                            "--http_port=8080"
                        ]
                    );
                }),
            ],
        ),
        (
            "13-storage-https-uri.yaml",
            vec![Isvc(|s| {
                plain(s);
                assert_eq!(s.name.as_str(), "sklearn-from-uri");
                let m = model(s);
                assert_eq!(m.format.name, ModelFormatName::Sklearn);
                assert_eq!(m.protocol, Protocol::V1);
                let uri = m.storage_uri.as_ref().expect("a storageUri");
                assert_eq!(uri.scheme(), StorageScheme::Https);
                assert!(uri.as_str().ends_with("model.joblib?raw=true"));
            })],
        ),
    ]
}

/// Facts of the rendered shape every service shares: the form KServe
/// stores after its webhooks.
fn check_rendered_isvc(file: &str, s: &InferenceService, v: &Value) {
    assert_eq!(v["apiVersion"], "serving.kserve.io/v1beta1", "{file}");
    assert_eq!(v["kind"], "InferenceService", "{file}");
    assert_eq!(v["metadata"]["name"], s.name.as_str(), "{file}");
    assert_eq!(
        v["metadata"]["annotations"]["serving.kserve.io/deploymentMode"], "Standard",
        "{file}"
    );
    let p = &v["spec"]["predictor"];
    assert_eq!(
        p["minReplicas"], s.spec.predictor.component.min_replicas,
        "{file}"
    );
    if let Predictor::Model(m) = &s.spec.predictor.implementation {
        let model = &p["model"];
        assert_eq!(
            model["modelFormat"]["name"],
            m.format.name.as_str(),
            "{file}"
        );
        assert_eq!(model["protocolVersion"], m.protocol.as_str(), "{file}");
        for key in ["sklearn", "xgboost", "onnx", "pytorch", "tensorflow"] {
            assert!(
                p.get(key).is_none(),
                "{file}: framework key {key} left in {p}"
            );
        }
    }
    if let Some(b) = s.spec.predictor.component.batcher {
        assert_eq!(
            p["batcher"]["maxBatchSize"],
            b.max_batch_size.get(),
            "{file}"
        );
        assert_eq!(p["batcher"]["maxLatency"], b.max_latency_ms.get(), "{file}");
    }
    if let Some(l) = &s.spec.predictor.component.logger {
        assert_eq!(p["logger"]["mode"], l.mode.as_str(), "{file}");
    }
    if s.spec.transformer.is_some() {
        assert_eq!(
            v["spec"]["transformer"]["containers"][0]["name"], "kserve-container",
            "{file}"
        );
    }
}

/// The resource renders back and parses again into an equal value, from
/// the JSON value and from YAML text.
fn round_trip(file: &str, r: &Resource) {
    let v = r.to_kserve_value();
    if let Resource::InferenceService(s) = r {
        check_rendered_isvc(file, s, &v);
    }
    let again = Resource::from_json_value(v.clone())
        .unwrap_or_else(|e| panic!("{file} after to_kserve_value: {e}\n{v:#}"));
    assert_eq!(&again, r, "{file} round trip");
    let yaml = serde_saphyr::to_string(&v).unwrap();
    let from_yaml =
        parse_documents(&yaml).unwrap_or_else(|e| panic!("{file} as YAML: {e}\n{yaml}"));
    assert_eq!(from_yaml, std::slice::from_ref(r), "{file} YAML round trip");
}

#[test]
fn every_kserve_example_loads_or_fails_as_expected() {
    let table = expectations();
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    let named: Vec<String> = table.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(files, named, "every example has exactly one expectation");
    assert_eq!(files.len(), 13);

    let mut failures = Vec::new();
    for (file, expects) in table {
        let text = read(file);
        assert!(text.starts_with("# Source:"), "{file} names its source");
        let docs: Vec<Value> = serde_saphyr::from_multiple::<Value>(&text)
            .unwrap()
            .into_iter()
            .filter(|d| !d.is_null())
            .collect();
        assert_eq!(
            docs.len(),
            expects.len(),
            "{file}: one expectation per document"
        );
        for (i, (doc, expect)) in docs.into_iter().zip(expects).enumerate() {
            let at = format!("{file} document {}", i + 1);
            let result = Resource::from_json_value(doc);
            match (expect, result) {
                (Isvc(f), Ok(r @ Resource::InferenceService(_))) => {
                    if let Resource::InferenceService(s) = &r {
                        f(s);
                    }
                    round_trip(&at, &r);
                }
                (Model(f), Ok(r @ Resource::TrainedModel(_))) => {
                    if let Resource::TrainedModel(m) = &r {
                        f(m);
                    }
                    round_trip(&at, &r);
                }
                (Runtime(f), Ok(r @ Resource::ServingRuntime(_))) => {
                    if let Resource::ServingRuntime(rt) = &r {
                        f(rt);
                    }
                    round_trip(&at, &r);
                }
                (Fails(path, msg), Err(e)) => {
                    if e.path != path || !e.message.contains(msg) {
                        failures.push(format!("{at}: expected {path}: …{msg}…, got {e}"));
                    }
                }
                (Fails(path, _), Ok(_)) => {
                    failures.push(format!("{at}: expected an error at {path}, it loaded"));
                }
                (_, Err(e)) => failures.push(format!("{at}: expected to load, got {e}")),
                (_, Ok(r)) => failures.push(format!("{at}: unexpected kind {}", r.kind())),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Whole files through `parse_documents`: all documents in order, or the
/// first error with its document number.
#[test]
fn whole_files_parse_in_order() {
    for (file, kinds) in [
        ("01-sklearn-v2.yaml", &["InferenceService"][..]),
        ("05-canary-rollout.yaml", &["InferenceService"; 3][..]),
        ("06-transformer.yaml", &["InferenceService"; 2][..]),
        (
            "09-autoscale-scale-to-zero.yaml",
            &["InferenceService"; 3][..],
        ),
        (
            "12-servingruntime-mlserver-sklearn.yaml",
            &["ClusterServingRuntime"; 2][..],
        ),
    ] {
        let got: Vec<&str> = parse_documents(&read(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .iter()
            .map(Resource::kind)
            .collect();
        assert_eq!(got, kinds, "{file}");
    }
    let e = parse_documents(&read("11-multimodel-trainedmodel.yaml")).unwrap_err();
    assert_eq!(e.path, "[document 1].spec.predictor.sklearn.name");
    // A single service file reads the same through either entry point.
    let one = InferenceService::from_yaml(&read("10-logger.yaml")).unwrap();
    let all = parse_documents(&read("10-logger.yaml")).unwrap();
    assert_eq!(all, [Resource::InferenceService(Box::new(one))]);
    // Several documents are refused by the single-service entry point.
    let e = InferenceService::from_yaml(&read("05-canary-rollout.yaml")).unwrap_err();
    assert!(e.message.contains("found 3 YAML documents"), "{e}");
}

/// Mutated examples (truncated at every line, values swapped for values of
/// other types, keys dropped) never panic: they load or fail with an error.
#[test]
fn mutated_examples_never_panic() {
    let replacements = [
        "",
        "0",
        "-1",
        "101",
        "2147483648",
        "\"\"",
        "[]",
        "{}",
        "null",
        "true",
        "x y",
        "\"s3://\"",
        "\"ftp://h/m\"",
        "1e999",
        "\"1.5Gi\"",
        "&a [*a]",
        "\"{{.Name}}\"",
    ];
    let mut checked = 0usize;
    for entry in std::fs::read_dir(dir()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // Truncations.
        for n in 0..=lines.len() {
            let _ = parse_documents(&lines[..n].join("\n"));
            checked += 1;
        }
        for (i, line) in lines.iter().enumerate() {
            // Dropping a line.
            let mut dropped = lines.clone();
            dropped.remove(i);
            let _ = parse_documents(&dropped.join("\n"));
            checked += 1;
            // Flipping the value of a `key: value` line.
            let Some((key, _)) = line.split_once(": ") else {
                continue;
            };
            for r in replacements {
                let mut flipped = lines.clone();
                let new_line = format!("{key}: {r}");
                flipped[i] = &new_line;
                if let Err(e) = parse_documents(&flipped.join("\n")) {
                    assert!(!e.message.is_empty());
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 1000, "{checked}");
    // Whatever loads still renders and parses back to itself.
    for entry in std::fs::read_dir(dir()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for (i, line) in text.lines().enumerate() {
            let Some((key, _)) = line.split_once(": ") else {
                continue;
            };
            for r in ["0", "1", "7", "\"v2\"", "\"/mnt/m\""] {
                let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
                lines[i] = format!("{key}: {r}");
                if let Ok(resources) = parse_documents(&lines.join("\n")) {
                    for res in resources {
                        let again = Resource::from_json_value(res.to_kserve_value());
                        assert_eq!(again.as_ref(), Ok(&res), "{line} -> {r}");
                    }
                }
            }
        }
    }
}

/// Environment variables are kept in order with their sources.
#[test]
fn explainer_env_keeps_literals() {
    let r = parse_documents(&read("07-explainer-alibi.yaml")).unwrap();
    let Resource::InferenceService(s) = &r[0] else {
        panic!()
    };
    let Some(e) = &s.spec.explainer else { panic!() };
    let Explainer::Custom(c) = &e.implementation else {
        panic!()
    };
    assert_eq!(c.spec.env.len(), 1);
    assert_eq!(c.spec.env[0].name, "STORAGE_URI");
    assert!(matches!(&c.spec.env[0].value, EnvValue::Literal(v) if v.starts_with("gs://")));
}
