//! Unit tests of the KServe spec: one `check` per rule and default.

use std::num::NonZeroU32;
use std::time::Duration;

use oxflow_core::spec::testing::{assert_error, remove, set};
use serde_json::{Value, json};

use super::*;

const BASE: &str = r#"
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: demo
  namespace: team-a
  labels: {app: demo}
  annotations: {team: ml}
spec:
  predictor:
    maxReplicas: 3
    serviceAccountName: models-reader
    nodeSelector: {disk: ssd}
    tolerations: [{key: gpu, operator: Exists}]
    volumes: [{name: cache, emptyDir: {}}]
    model:
      modelFormat: {name: sklearn, version: "1"}
      storageUri: s3://models/iris
      resources:
        requests: {cpu: 100m, memory: 256Mi}
        limits: {cpu: "1", memory: 1Gi}
      env:
        - {name: MODE, value: fast}
        - name: TOKEN
          valueFrom: {secretKeyRef: {name: s, key: token}}
      volumeMounts: [{name: cache, mountPath: /cache}]
"#;

fn base() -> Value {
    serde_saphyr::from_str::<Value>(BASE).unwrap()
}

fn edited(edit: impl FnOnce(&mut Value)) -> Result<InferenceService, SpecError> {
    let mut v = base();
    edit(&mut v);
    InferenceService::from_json_value(v)
}

#[track_caller]
fn ok(edit: impl FnOnce(&mut Value)) -> InferenceService {
    let s = edited(edit).unwrap_or_else(|e| panic!("expected to load: {e}"));
    let again = InferenceService::from_json_value(s.to_kserve_value())
        .unwrap_or_else(|e| panic!("rendered service does not load: {e}"));
    assert_eq!(again, s, "round trip");
    s
}

/// The edit makes the service fail at `path` with a message containing `msg`.
#[track_caller]
fn check(edit: impl FnOnce(&mut Value), path: &str, msg: &str) {
    assert_error(edited(edit), path, msg);
}

/// Replaces the predictor with `p`.
fn predictor(p: Value) -> impl FnOnce(&mut Value) {
    set("/spec/predictor", p)
}

fn model_of(s: &InferenceService) -> &ModelSpec {
    match &s.spec.predictor.implementation {
        Predictor::Model(m) => m,
        Predictor::Custom(_) => panic!("expected a model"),
    }
}

const MODEL: &str = "/spec/predictor/model";

#[test]
fn base_loads_with_kserve_defaults() {
    let s = ok(|_| {});
    assert_eq!(s.name.as_str(), "demo");
    assert_eq!(s.namespace.as_ref().map(|n| n.as_str()), Some("team-a"));
    assert_eq!(s.labels["app"], "demo");
    assert_eq!(s.annotations["team"], "ml");
    assert_eq!(s.deployment_mode, DeploymentMode::Standard);
    let p = &s.spec.predictor;
    assert_eq!(p.name, None);
    assert_eq!(p.protocol(), Protocol::V1);
    assert_eq!(p.storage_uri().map(|u| u.scheme()), Some(StorageScheme::S3));
    assert_eq!(
        p.component,
        ComponentExtension {
            max_replicas: NonZeroU32::new(3),
            ..ComponentExtension::default()
        }
    );
    assert_eq!(p.component.min_replicas, DEFAULT_MIN_REPLICAS);
    assert_eq!(p.pod.service_account_name.as_deref(), Some("models-reader"));
    assert_eq!(p.pod.node_selector["disk"], "ssd");
    assert_eq!(p.pod.tolerations.len(), 1);
    assert_eq!(
        p.pod.kubernetes["volumes"],
        json!([{"name": "cache", "emptyDir": {}}])
    );
    let m = model_of(&s);
    assert_eq!(
        m.format,
        ModelFormat {
            name: ModelFormatName::Sklearn,
            version: Some("1".to_owned()),
        }
    );
    assert_eq!(m.runtime, None);
    assert_eq!(m.container.env_value("MODE"), Some("fast"));
    assert_eq!(m.container.env_value("TOKEN"), None);
    assert!(matches!(m.container.env[1].value, EnvValue::From(_)));
    assert_eq!(
        m.container.kubernetes["volumeMounts"],
        json!([{"name": "cache", "mountPath": "/cache"}])
    );
    let core = m.container.resources.to_core();
    assert_eq!(core.cpu_request_millis, Some(100));
    assert_eq!(core.memory_limit_bytes, Some(1 << 30));

    let v = s.to_kserve_value();
    assert_eq!(
        v["metadata"]["annotations"]["serving.kserve.io/deploymentMode"],
        "Standard"
    );
    assert_eq!(v["metadata"]["annotations"]["team"], "ml");
    assert_eq!(v["spec"]["predictor"]["minReplicas"], 1);
    assert_eq!(v["spec"]["predictor"]["model"]["protocolVersion"], "v1");
    assert_eq!(
        v["spec"]["predictor"]["model"]["resources"]["limits"]["cpu"],
        "1"
    );
    assert_eq!(v["spec"]["predictor"]["volumes"][0]["name"], "cache");
}

#[test]
fn errors_display_their_path() {
    let e = SpecError::new("spec.predictor.canaryTrafficPercent", "bad");
    assert_eq!(e.to_string(), "spec.predictor.canaryTrafficPercent: bad");
    assert_eq!(SpecError::new("", "bad").to_string(), "bad");
}

#[test]
fn unknown_fields_are_named() {
    check(
        set("/spec/predictor/minReplica", json!(2)),
        "spec.predictor.minReplica",
        "unknown field `minReplica`",
    );
    check(
        set(&format!("{MODEL}/storageURI"), json!("s3://b/m")),
        "spec.predictor.model.storageURI",
        "unknown field `storageURI`",
    );
    check(
        set(&format!("{MODEL}/resources/limit"), json!({})),
        "spec.predictor.model.resources.limit",
        "unknown field",
    );
    check(
        set(&format!("{MODEL}/modelFormat/versions"), json!("1")),
        "spec.predictor.model.modelFormat.versions",
        "unknown field",
    );
    check(
        set("/spec/predictor/logger", json!({"modes": "all"})),
        "spec.predictor.logger.modes",
        "unknown field",
    );
    check(
        set("/metadata/uid", json!("x")),
        "metadata.uid",
        "unknown field `uid`",
    );
    check(
        set("/spec/predicter", json!({})),
        "spec.predicter",
        "unknown field",
    );
    check(
        set(
            "/spec/predictor/containers",
            json!([{"name": "a", "image": "x", "imagePullPolicyy": "Always"}]),
        ),
        "spec.predictor.containers[0].imagePullPolicyy",
        "unknown field",
    );
    check(set("/status", json!({})), "status", "remove it");
    // The closest known field is suggested instead of KServe's whole list.
    check(
        set("/spec/predictor/minReplica", json!(2)),
        "spec.predictor.minReplica",
        "did you mean `minReplicas`?",
    );
    check(
        set("/spec/predictor/canarytrafficpercent", json!(2)),
        "spec.predictor.canarytrafficpercent",
        "did you mean `canaryTrafficPercent`?",
    );
    check(
        set("/spec/predictor/frobnicate", json!(2)),
        "spec.predictor.frobnicate",
        "KServe would drop it silently",
    );
    let e = edited(set("/spec/predictor/frobnicate", json!(2))).unwrap_err();
    assert!(!e.message.contains("hostnameOverride"), "{e}");
}

#[test]
fn wrong_types_name_the_field() {
    check(
        set("/spec/predictor/minReplicas", json!("one")),
        "spec.predictor.minReplicas",
        "invalid type",
    );
    check(
        set("/spec/predictor/canaryTrafficPercent", json!("10")),
        "spec.predictor.canaryTrafficPercent",
        "invalid type",
    );
    check(
        set("/spec/predictor/containers", json!({"name": "x"})),
        "spec.predictor.containers",
        "invalid type",
    );
    check(
        set(&format!("{MODEL}/env/0/value"), json!(8080)),
        "spec.predictor.model.env[0].value",
        "invalid type",
    );
    check(
        set("/metadata/annotations/team", json!(true)),
        "metadata.annotations.team",
        "invalid type",
    );
    check(
        set(&format!("{MODEL}/resources/limits/cpu"), json!([1])),
        "spec.predictor.model.resources.limits.cpu",
        "a string or a number",
    );
    check(set("/spec", json!("predictor")), "spec", "invalid type");
}

#[test]
fn documents_must_be_kserve_resources() {
    check(
        remove("/apiVersion"),
        "apiVersion",
        "missing; set apiVersion: serving.kserve.io/v1beta1",
    );
    check(
        set("/apiVersion", json!("serving.kserve.io/v1alpha1")),
        "apiVersion",
        "Oxflow reads InferenceService as serving.kserve.io/v1beta1",
    );
    check(
        set("/apiVersion", json!("serving.kubeflow.org/v1alpha2")),
        "apiVersion",
        "KFServing",
    );
    check(
        set("/apiVersion", json!(1)),
        "apiVersion",
        "expected a string",
    );
    check(
        remove("/kind"),
        "kind",
        "missing; set kind: InferenceService",
    );
    check(
        set("/kind", json!("Deployment")),
        "kind",
        "not a KServe resource",
    );
    check(
        set("/kind", json!("InferenceGraph")),
        "kind",
        "not supported by Oxflow yet",
    );
    check(
        set("/kind", json!("TrainedModel")),
        "apiVersion",
        "serving.kserve.io/v1alpha1",
    );
    assert_eq!(
        InferenceService::from_json_value(json!([1]))
            .unwrap_err()
            .path,
        ""
    );
    // A TrainedModel is not an InferenceService.
    let tm = json!({"apiVersion": API_VERSION_V1ALPHA1, "kind": "TrainedModel", "metadata": {"name": "m"},
        "spec": {"inferenceService": "demo", "model": {"storageUri": "s3://b/m", "framework": "sklearn", "memory": "1Gi"}}});
    let e = InferenceService::from_json_value(tm).unwrap_err();
    assert_eq!(
        (
            e.path.as_str(),
            e.message.contains("not an InferenceService")
        ),
        ("kind", true)
    );
}

#[test]
fn metadata_rules() {
    check(remove("/metadata/name"), "metadata.name", "missing");
    check(
        set("/metadata/name", json!("Sklearn_Iris")),
        "metadata.name",
        "not a valid InferenceService name",
    );
    check(
        set("/metadata/name", json!("1abc")),
        "metadata.name",
        "start with a letter",
    );
    check(
        set("/metadata/name", json!("a".repeat(64))),
        "metadata.name",
        "the limit is 63",
    );
    check(
        set("/metadata/namespace", json!("Team_A")),
        "metadata.namespace",
        "invalid namespace",
    );
    let s = ok(remove("/metadata/namespace"));
    assert_eq!(s.namespace, None);
}

#[test]
fn deployment_mode_annotation() {
    let mode = |value: &str| {
        set(
            "/metadata/annotations",
            json!({ DEPLOYMENT_MODE_ANNOTATION: value, "team": "ml" }),
        )
    };
    for (value, want) in [
        ("Standard", DeploymentMode::Standard),
        ("RawDeployment", DeploymentMode::Standard),
        ("Knative", DeploymentMode::Knative),
        ("Serverless", DeploymentMode::Knative),
    ] {
        let s = ok(mode(value));
        assert_eq!(s.deployment_mode, want, "{value}");
        assert!(!s.annotations.contains_key(DEPLOYMENT_MODE_ANNOTATION));
        assert_eq!(
            s.to_kserve_value()["metadata"]["annotations"][DEPLOYMENT_MODE_ANNOTATION],
            want.as_str()
        );
    }
    let path = "metadata.annotations.serving.kserve.io/deploymentMode";
    check(mode("ModelMesh"), path, "ModelMesh is not supported");
    check(mode("Raw"), path, "use Standard or Knative");
}

#[test]
fn exactly_one_predictor_implementation() {
    check(
        set("/spec/predictor/sklearn", json!({"storageUri": "s3://b/m"})),
        "spec.predictor.model",
        "conflicts with spec.predictor.sklearn",
    );
    check(
        predictor(
            json!({"xgboost": {"storageUri": "s3://b/m"}, "lightgbm": {"storageUri": "s3://b/m"}}),
        ),
        "spec.predictor.lightgbm",
        "conflicts with spec.predictor.xgboost",
    );
    check(
        set(
            "/spec/predictor/containers",
            json!([{"name": "kserve-container", "image": "x"}]),
        ),
        "spec.predictor.containers[0]",
        "second implementation next to spec.predictor.model",
    );
    check(
        predictor(json!({"minReplicas": 1})),
        "spec.predictor",
        "has no implementation",
    );
    check(
        predictor(json!({"containers": [
            {"name": "kserve-container", "image": "a"},
            {"name": "kserve-container", "image": "b"}]})),
        "spec.predictor.containers[1].name",
        "a second container is named kserve-container",
    );
    check(
        predictor(
            json!({"containers": [{"name": "a", "image": "a"}, {"name": "b", "image": "b"}]}),
        ),
        "spec.predictor.containers",
        "none of the 2 containers is named kserve-container",
    );
    check(remove("/spec/predictor"), "spec.predictor", "missing");
    check(remove("/spec"), "spec", "missing");
}

#[test]
fn model_sidecars_keep_their_names() {
    let s = ok(set(
        "/spec/predictor/containers",
        json!([{"name": "agent", "image": "agent:1", "args": ["--x"]}]),
    ));
    assert_eq!(s.spec.predictor.sidecars.len(), 1);
    assert_eq!(s.spec.predictor.sidecars[0].name, "agent");
    check(
        set("/spec/predictor/containers", json!([{"image": "agent:1"}])),
        "spec.predictor.containers[0].name",
        "needs a name",
    );
    check(
        set(
            "/spec/predictor/containers",
            json!([{"name": "Agent", "image": "agent:1"}]),
        ),
        "spec.predictor.containers[0].name",
        "not a valid container name",
    );
    check(
        set(
            "/spec/predictor/containers",
            json!([{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]),
        ),
        "spec.predictor.containers",
        "two containers are named \"a\"",
    );
    // KServe's validateCollocationStorageURI.
    check(
        set(
            "/spec/predictor/containers",
            json!([{"name": "transformer-container", "image": "t",
            "env": [{"name": "STORAGE_URI", "value": "s3://b/m"}]}]),
        ),
        "spec.predictor.containers[0].env[0]",
        "must not set STORAGE_URI",
    );
}

#[test]
fn legacy_framework_keys_become_models() {
    for (key, format, protocol) in [
        ("sklearn", ModelFormatName::Sklearn, Protocol::V1),
        ("xgboost", ModelFormatName::Xgboost, Protocol::V1),
        ("lightgbm", ModelFormatName::Lightgbm, Protocol::V1),
        ("tensorflow", ModelFormatName::Tensorflow, Protocol::V1),
        ("pytorch", ModelFormatName::Pytorch, Protocol::V1),
        ("pmml", ModelFormatName::Pmml, Protocol::V1),
        ("paddle", ModelFormatName::Paddle, Protocol::V1),
        // KServe's webhook gives these v2 "for backward compatibility".
        ("onnx", ModelFormatName::Onnx, Protocol::V2),
        ("triton", ModelFormatName::Triton, Protocol::V2),
        ("huggingface", ModelFormatName::Huggingface, Protocol::V2),
    ] {
        let s = ok(predictor(
            json!({ key: {"storageUri": "gs://b/m", "resources": {"limits": {"cpu": 2}}} }),
        ));
        let m = model_of(&s);
        assert_eq!(m.format.name, format, "{key}");
        assert_eq!(m.protocol, protocol, "{key}");
        assert_eq!(m.container.resources.limits["cpu"].as_str(), "2");
        let v = s.to_kserve_value();
        assert_eq!(v["spec"]["predictor"]["model"]["modelFormat"]["name"], key);
        assert!(v["spec"]["predictor"].get(key).is_none());
        // An explicit protocol wins.
        let s = ok(predictor(
            json!({ key: {"storageUri": "gs://b/m", "protocolVersion": "grpc-v2"} }),
        ));
        assert_eq!(model_of(&s).protocol, Protocol::GrpcV2, "{key}");
    }
    check(
        predictor(json!({"sklearn": {"modelFormat": {"name": "xgboost"}}})),
        "spec.predictor.sklearn.modelFormat",
        "belongs to spec.predictor.model",
    );
    check(
        predictor(json!({"sklearn": {"runtime": "kserve-mlserver"}})),
        "spec.predictor.sklearn.runtime",
        "belongs to spec.predictor.model",
    );
    check(
        predictor(json!({"sklearn": {"name": "sklearn-iris-predictor"}})),
        "spec.predictor.sklearn.name",
        "not allowed in a model predictor",
    );
    // KServe's Python SDK sends an empty name from its model defaults.
    let s = ok(predictor(
        json!({"model": {"name": "", "modelFormat": {"name": "sklearn"}, "storageUri": "gs://b/m"}}),
    ));
    assert!(
        s.to_kserve_value()["spec"]["predictor"]["model"]
            .get("name")
            .is_none()
    );
}

#[test]
fn protocol_defaults_follow_kserve() {
    let with = |format: &str, runtime: Option<&str>| {
        let mut m = json!({"modelFormat": {"name": format}, "storageUri": "gs://b/m"});
        if let Some(r) = runtime {
            m["runtime"] = json!(r);
        }
        model_of(&ok(set(MODEL, m))).protocol
    };
    assert_eq!(with("sklearn", None), Protocol::V1);
    assert_eq!(with("onnx", None), Protocol::V1);
    assert_eq!(with("triton", None), Protocol::V2);
    assert_eq!(with("vLLM", None), Protocol::V2);
    assert_eq!(with("sklearn", Some("kserve-mlserver")), Protocol::V2);
    assert_eq!(with("pytorch", Some("kserve-tritonserver")), Protocol::V2);
    assert_eq!(with("pytorch", Some("kserve-torchserve")), Protocol::V1);
    assert_eq!(with("sklearn", Some("my-runtime")), Protocol::V1);
    check(
        set(&format!("{MODEL}/protocolVersion"), json!("v3")),
        "spec.predictor.model.protocolVersion",
        "use v1, v2, grpc-v1 or grpc-v2",
    );
    check(
        set(&format!("{MODEL}/runtime"), json!("My_Runtime")),
        "spec.predictor.model.runtime",
        "not a valid Kubernetes name",
    );
}

#[test]
fn model_formats() {
    check(
        remove(&format!("{MODEL}/modelFormat")),
        "spec.predictor.model.modelFormat",
        "missing",
    );
    check(
        set(&format!("{MODEL}/modelFormat"), json!({"version": "1"})),
        "spec.predictor.model.modelFormat.name",
        "missing",
    );
    let s = ok(set(
        &format!("{MODEL}/modelFormat"),
        json!({"name": "openvino_ir", "version": 2}),
    ));
    let f = &model_of(&s).format;
    assert_eq!(f.name, ModelFormatName::Other("openvino_ir".to_owned()));
    assert_eq!(f.name.local_server(), None);
    assert_eq!(f.version.as_deref(), Some("2"));
    // KServe matches format names exactly.
    assert_eq!(
        ModelFormatName::from_name("SKLearn"),
        ModelFormatName::Other("SKLearn".to_owned())
    );
    for name in [
        "sklearn",
        "xgboost",
        "lightgbm",
        "onnx",
        "tensorflow",
        "pytorch",
        "triton",
        "pmml",
        "paddle",
        "huggingface",
        "mlflow",
    ] {
        assert_eq!(ModelFormatName::from_name(name).as_str(), name);
    }
}

#[test]
fn storage_uris_are_checked() {
    let uri = format!("{MODEL}/storageUri");
    check(
        set(&uri, json!("ftp://host/model")),
        "spec.predictor.model.storageUri",
        "unsupported scheme \"ftp\"",
    );
    check(
        set(&uri, json!("")),
        "spec.predictor.model.storageUri",
        "is empty",
    );
    check(
        set(&uri, json!("s3://")),
        "spec.predictor.model.storageUri",
        "names no bucket",
    );
    for (u, scheme) in [
        ("/mnt/models/iris", StorageScheme::LocalPath),
        ("file:///tmp/iris", StorageScheme::File),
        ("pvc://claim/iris", StorageScheme::Pvc),
        ("hf://org/model", StorageScheme::HuggingFace),
        ("oci://registry/model:1", StorageScheme::Oci),
        ("https://host/model.joblib", StorageScheme::Https),
    ] {
        let s = ok(set(&uri, json!(u)));
        assert_eq!(
            model_of(&s).storage_uri.as_ref().map(|u| u.scheme()),
            Some(scheme)
        );
    }
    // No storageUri at all: a multi-model server that loads TrainedModels.
    let s = ok(remove(&uri));
    assert_eq!(s.spec.predictor.storage_uri(), None);
}

#[test]
fn storage_uris_lists() {
    let two = |a: &'static str, b: &'static str| {
        move |v: &mut Value| {
            remove(&format!("{MODEL}/storageUri"))(v);
            set(
                "/spec/predictor/storageUris",
                json!([
                {"uri": "s3://b/base", "mountPath": a}, {"uri": "pvc://claim/adapter", "mountPath": b}]),
            )(v);
        }
    };
    let s = ok(two("/mnt/models/base", "/mnt/adapter"));
    let m = &s.spec.predictor.storage_uris;
    assert_eq!(m.len(), 2);
    assert_eq!(m[1].uri.scheme(), StorageScheme::Pvc);
    let s = ok(|v| {
        remove(&format!("{MODEL}/storageUri"))(v);
        set("/spec/predictor/storageUris", json!([{"uri": "s3://b/m"}]))(v);
    });
    assert_eq!(
        s.spec.predictor.storage_uris[0].mount_path,
        DEFAULT_MODEL_MOUNT_PATH
    );
    check(
        set("/spec/predictor/storageUris", json!([{"uri": "s3://b/m"}])),
        "spec.predictor.storageUris",
        "cannot be combined with a storageUri",
    );
    check(
        two("models", "/mnt/b"),
        "spec.predictor.storageUris[0].mountPath",
        "must be an absolute path",
    );
    check(
        two("/", "/mnt/b"),
        "spec.predictor.storageUris[0].mountPath",
        "must not be /",
    );
    check(
        two("/mnt/../etc", "/mnt/b"),
        "spec.predictor.storageUris[0].mountPath",
        "must not contain '..'",
    );
    check(
        two("/mnt/a", "/mnt/a"),
        "spec.predictor.storageUris[1].mountPath",
        "is used twice",
    );
    check(
        |v: &mut Value| {
            remove(&format!("{MODEL}/storageUri"))(v);
            set(
                "/spec/predictor/storageUris",
                json!([
                {"uri": "s3://b/a", "mountPath": "/a"}, {"uri": "s3://b/b", "mountPath": "/b"}]),
            )(v);
        },
        "spec.predictor.storageUris",
        "no common parent directory",
    );
    check(
        set(
            "/spec/predictor/storageUris",
            json!([{"mountPath": "/mnt/a"}]),
        ),
        "spec.predictor.storageUris[0].uri",
        "missing",
    );
}

#[test]
fn resources_are_kubernetes_quantities() {
    let r = format!("{MODEL}/resources");
    check(
        set(&format!("{r}/requests/cpu"), json!("lots")),
        "spec.predictor.model.resources.requests.cpu",
        "not a Kubernetes quantity",
    );
    check(
        set(&format!("{r}/limits/memory"), json!("-1Gi")),
        "spec.predictor.model.resources.limits.memory",
        "must not be negative",
    );
    check(
        set(&format!("{r}/requests/cpu"), json!("2")),
        "spec.predictor.model.resources.requests.cpu",
        "must not be more than the limit (1)",
    );
    let s = ok(set(
        &format!("{r}/limits"),
        json!({"cpu": 0.5, "memory": "1e9", "nvidia.com/gpu": 1}),
    ));
    let core = model_of(&s).container.resources.to_core();
    assert_eq!(core.cpu_limit_millis, Some(500));
    assert_eq!(core.memory_limit_bytes, Some(1_000_000_000));
    assert_eq!(core.accelerator, Some(("nvidia.com/gpu".to_owned(), 1)));
}

#[test]
fn canary_traffic_percent() {
    let path = "spec.predictor.canaryTrafficPercent";
    check(
        set("/spec/predictor/canaryTrafficPercent", json!(101)),
        path,
        "not between 0 and 100",
    );
    check(
        set("/spec/predictor/canaryTrafficPercent", json!(-1)),
        path,
        "not between 0 and 100",
    );
    for p in [0, 10, 100] {
        let s = ok(set("/spec/predictor/canaryTrafficPercent", json!(p)));
        assert_eq!(
            s.spec
                .predictor
                .component
                .canary_traffic_percent
                .map(Percent::get),
            Some(p)
        );
    }
}

#[test]
fn replicas_and_scaling() {
    check(
        set("/spec/predictor/minReplicas", json!(4)),
        "spec.predictor.minReplicas",
        "must not be greater than maxReplicas (3)",
    );
    check(
        set("/spec/predictor/minReplicas", json!(-1)),
        "spec.predictor.minReplicas",
        "must not be less than 0",
    );
    check(
        set("/spec/predictor/maxReplicas", json!(-1)),
        "spec.predictor.maxReplicas",
        "must not be less than 0",
    );
    check(
        set("/spec/predictor/minReplicas", json!(5_000_000_000i64)),
        "spec.predictor.minReplicas",
        "out of range",
    );
    let s = ok(|v| {
        set("/spec/predictor/maxReplicas", json!(0))(v);
        set("/spec/predictor/minReplicas", json!(0))(v);
    });
    assert_eq!(s.spec.predictor.component.max_replicas, None);
    assert_eq!(s.spec.predictor.component.min_replicas, 0);
    check(
        set("/spec/predictor/scaleMetric", json!("latency")),
        "spec.predictor.scaleMetric",
        "use concurrency, rps, cpu or memory",
    );
    check(
        set("/spec/predictor/scaleTarget", json!(0)),
        "spec.predictor.scaleTarget",
        "must be at least 1",
    );
    check(
        |v: &mut Value| {
            set("/spec/predictor/scaleMetric", json!("cpu"))(v);
            set("/spec/predictor/scaleTarget", json!(150))(v);
        },
        "spec.predictor.scaleTarget",
        "CPU utilisation percentage",
    );
    check(
        set("/spec/predictor/scaleMetricType", json!("Average")),
        "spec.predictor.scaleMetricType",
        "Utilization, AverageValue or Value",
    );
    let s = ok(|v| {
        set("/spec/predictor/scaleMetric", json!("rps"))(v);
        set("/spec/predictor/scaleTarget", json!(200))(v);
        set("/spec/predictor/scaleMetricType", json!("AverageValue"))(v);
        set(
            "/spec/predictor/autoScaling",
            json!({"metrics": [{"type": "Resource"}]}),
        )(v);
    });
    let c = &s.spec.predictor.component;
    assert_eq!(
        (c.scale_metric, c.scale_target),
        (Some(ScaleMetric::Rps), NonZeroU32::new(200))
    );
    assert_eq!(c.scale_metric_type, Some(MetricTargetType::AverageValue));
    assert!(c.autoscaling.is_some());
    check(
        set("/spec/predictor/containerConcurrency", json!(-1)),
        "spec.predictor.containerConcurrency",
        "0 means unlimited",
    );
    assert_eq!(
        ok(set("/spec/predictor/containerConcurrency", json!(0)))
            .spec
            .predictor
            .component
            .container_concurrency,
        None
    );
    check(
        set("/spec/predictor/timeout", json!(0)),
        "spec.predictor.timeout",
        "must be at least 1 second",
    );
}

#[test]
fn batcher_defaults_and_limits() {
    let s = ok(set("/spec/predictor/batcher", json!({})));
    assert_eq!(s.spec.predictor.component.batcher, Some(Batcher::default()));
    let b = Batcher::default();
    assert_eq!((b.max_batch_size.get(), b.max_latency_ms.get()), (32, 5000));
    let v = s.to_kserve_value();
    assert_eq!(
        v["spec"]["predictor"]["batcher"],
        json!({"maxBatchSize": 32, "maxLatency": 5000})
    );
    let s = ok(set(
        "/spec/predictor/batcher",
        json!({"maxBatchSize": 8, "maxLatency": 50, "timeout": 3}),
    ));
    assert_eq!(
        s.spec
            .predictor
            .component
            .batcher
            .and_then(|b| b.timeout_seconds),
        NonZeroU32::new(3)
    );
    check(
        set("/spec/predictor/batcher", json!({"maxBatchSize": 0})),
        "spec.predictor.batcher.maxBatchSize",
        "must be at least 1",
    );
    check(
        set("/spec/predictor/batcher", json!({"maxLatency": -5})),
        "spec.predictor.batcher.maxLatency",
        "must be at least 1",
    );
    check(
        set("/spec/predictor/batcher", json!({"timeout": 0})),
        "spec.predictor.batcher.timeout",
        "must be at least 1",
    );
}

#[test]
fn logger_rules() {
    let s = ok(set(
        "/spec/predictor/logger",
        json!({"url": "https://sink.example.com/events"}),
    ));
    let l = s.spec.predictor.component.logger.as_ref().unwrap();
    assert_eq!(l.mode, LoggerMode::All);
    assert_eq!(
        s.to_kserve_value()["spec"]["predictor"]["logger"]["mode"],
        "all"
    );
    for (mode, want) in [
        ("request", LoggerMode::Request),
        ("response", LoggerMode::Response),
    ] {
        let s = ok(set("/spec/predictor/logger", json!({"mode": mode})));
        assert_eq!(
            s.spec.predictor.component.logger.as_ref().unwrap().mode,
            want
        );
    }
    check(
        set("/spec/predictor/logger", json!({"mode": "everything"})),
        "spec.predictor.logger.mode",
        "use all, request or response",
    );
    check(
        set("/spec/predictor/logger", json!({"url": "message-dumper"})),
        "spec.predictor.logger.url",
        "not an http:// or https:// URL",
    );
    check(
        set("/spec/predictor/logger", json!({"url": "ftp://x/y"})),
        "spec.predictor.logger.url",
        "not an http://",
    );
    check(
        set(
            "/spec/predictor/logger",
            json!({"marshallerUrl": "http://"}),
        ),
        "spec.predictor.logger.marshallerUrl",
        "has no host",
    );
    check(
        set(
            "/spec/predictor/logger",
            json!({"storage": {"path": "/logs", "parameters": {}}}),
        ),
        "spec.predictor.logger.storage.key",
        "needs path, key and parameters",
    );
    check(
        set("/spec/predictor/logger", json!({"batchInterval": "5 s"})),
        "spec.predictor.logger.batchInterval",
        "not a duration",
    );
    check(
        set("/spec/predictor/logger", json!({"batchSize": 0})),
        "spec.predictor.logger.batchSize",
        "must be at least 1",
    );
    let s = ok(set(
        "/spec/predictor/logger",
        json!({
        "mode": "request", "storage": {"path": "/logs", "key": "blob", "parameters": {"type": "s3"}},
        "batchSize": 10, "batchInterval": "1m30s", "metadataHeaders": ["x-id"]}),
    ));
    let l = s.spec.predictor.component.logger.as_ref().unwrap();
    assert_eq!(l.batch_interval, Some(Duration::from_secs(90)));
    assert_eq!(l.storage.as_ref().map(|s| s.key.as_str()), Some("blob"));
    assert_eq!(l.metadata_headers, ["x-id"]);
}

#[test]
fn custom_predictor_is_a_serving_command() {
    let s = ok(predictor(json!({"containers": [{
        "image": "my/server:1",
        "command": ["python", "-m", "server"],
        "args": ["--port", "9000"],
        "env": [{"name": "PROTOCOL", "value": "v2"}, {"name": "STORAGE_URI", "value": "gs://b/m"}],
        "ports": [{"containerPort": 9000, "name": "http1"}],
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http1"}},
    }]})));
    let Predictor::Custom(c) = &s.spec.predictor.implementation else {
        panic!("expected a custom predictor");
    };
    assert_eq!(c.name, SERVING_CONTAINER_NAME);
    assert_eq!(c.spec.command, ["python", "-m", "server"]);
    assert_eq!(c.spec.http_port(), 9000);
    assert_eq!(s.spec.predictor.protocol(), Protocol::V2);
    assert_eq!(
        s.spec.predictor.storage_uri().map(|u| u.scheme()),
        Some(StorageScheme::Gcs)
    );
    let probe = c.spec.readiness_probe.as_ref().unwrap();
    assert_eq!(
        (
            probe.period_seconds,
            probe.timeout_seconds,
            probe.success_threshold,
            probe.failure_threshold,
            probe.initial_delay_seconds
        ),
        (10, 1, 1, 3, 0)
    );
    let ProbeAction::HttpGet(h) = &probe.action else {
        panic!("expected httpGet")
    };
    assert_eq!((h.path.as_str(), h.https), ("/v2/health/ready", false));
    assert_eq!(h.port.resolve(&c.spec.ports), Some(9000));
    let v = s.to_kserve_value();
    assert_eq!(
        v["spec"]["predictor"]["containers"][0]["name"],
        "kserve-container"
    );
    assert_eq!(
        v["spec"]["predictor"]["containers"][0]["readinessProbe"]["periodSeconds"],
        10
    );

    // The serving container is the one named kserve-container, wherever it is.
    let s = ok(predictor(json!({"containers": [
        {"name": "agent", "image": "a"}, {"name": "kserve-container", "image": "b"}]})));
    let Predictor::Custom(c) = &s.spec.predictor.implementation else {
        panic!()
    };
    assert_eq!(c.spec.image.as_deref(), Some("b"));
    assert_eq!(s.spec.predictor.sidecars[0].name, "agent");
    assert_eq!(s.spec.predictor.protocol(), Protocol::V1);

    check(
        predictor(
            json!({"containers": [{"image": "x", "env": [{"name": "PROTOCOL", "value": "grpc-v2"}]}]}),
        ),
        "spec.predictor.containers[0].env[0].value",
        "use v1 or v2",
    );
    check(
        predictor(
            json!({"containers": [{"image": "x", "env": [{"name": "STORAGE_URI", "value": "ftp://x/y"}]}]}),
        ),
        "spec.predictor.containers[0].env[0].value",
        "unsupported scheme",
    );
    check(
        predictor(
            json!({"containers": [{"image": "x", "env": [{"name": "STORAGE_URI", "value": "s3://b/m"}]}],
            "storageUris": [{"uri": "s3://b/n"}]}),
        ),
        "spec.predictor.storageUris",
        "cannot be combined",
    );
}

#[test]
fn container_rules() {
    let c = "/spec/predictor/containers/0";
    let with = |field: &str, value: Value| {
        let field = field.to_owned();
        move |v: &mut Value| {
            predictor(json!({"containers": [{"image": "x"}]}))(v);
            set(&format!("{c}/{field}"), value)(v);
        }
    };
    let p = "spec.predictor.containers[0]";
    check(
        with("env", json!([{"name": "PYTHONPATH", "value": "/x"}])),
        &format!("{p}.env[0].name"),
        "not allowed for security reasons",
    );
    check(
        with("env", json!([{"value": "x"}])),
        &format!("{p}.env[0].name"),
        "missing",
    );
    check(
        with("env", json!([{"name": "A", "value": "x", "valueFrom": {}}])),
        &format!("{p}.env[0].valueFrom"),
        "cannot be combined with value",
    );
    check(
        with("ports", json!([{"name": "http"}])),
        &format!("{p}.ports[0].containerPort"),
        "missing",
    );
    check(
        with("ports", json!([{"containerPort": 70000}])),
        &format!("{p}.ports[0].containerPort"),
        "not a port number",
    );
    check(
        with("ports", json!([{"containerPort": 80, "protocol": "HTTP"}])),
        &format!("{p}.ports[0].protocol"),
        "use TCP, UDP or SCTP",
    );
    check(
        with(
            "ports",
            json!([{"containerPort": 80, "name": "this-name-is-too-long"}]),
        ),
        &format!("{p}.ports[0].name"),
        "not a valid port name",
    );
    check(
        with(
            "ports",
            json!([{"containerPort": 80, "name": "h"}, {"containerPort": 81, "name": "h"}]),
        ),
        &format!("{p}.ports[1].name"),
        "names two ports",
    );
    check(
        with("readinessProbe", json!({"periodSeconds": 5})),
        &format!("{p}.readinessProbe"),
        "has no check",
    );
    check(
        with(
            "readinessProbe",
            json!({"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}}),
        ),
        &format!("{p}.readinessProbe"),
        "set only one of",
    );
    check(
        with("readinessProbe", json!({"tcpSocket": {"port": 0}})),
        &format!("{p}.readinessProbe.tcpSocket.port"),
        "not a port number",
    );
    check(
        with("readinessProbe", json!({"httpGet": {"path": "/"}})),
        &format!("{p}.readinessProbe.httpGet.port"),
        "missing",
    );
    check(
        with(
            "readinessProbe",
            json!({"httpGet": {"port": 80, "scheme": "FTP"}}),
        ),
        &format!("{p}.readinessProbe.httpGet.scheme"),
        "use HTTP or HTTPS",
    );
    check(
        with(
            "readinessProbe",
            json!({"grpc": {"port": 9000}, "periodSeconds": 0}),
        ),
        &format!("{p}.readinessProbe.periodSeconds"),
        "must be at least 1",
    );
    check(
        with(
            "livenessProbe",
            json!({"exec": {"command": ["true"]}, "successThreshold": 2}),
        ),
        &format!("{p}.livenessProbe.successThreshold"),
        "must be 1 for liveness",
    );
    check(
        with("startupProbe", json!({"exec": {"command": []}})),
        &format!("{p}.startupProbe.exec.command"),
        "missing",
    );
    // Everything Kubernetes has that Oxflow does not interpret is kept.
    let s = ok(with("securityContext", json!({"runAsNonRoot": true})));
    let Predictor::Custom(k) = &s.spec.predictor.implementation else {
        panic!()
    };
    assert_eq!(
        k.spec.kubernetes["securityContext"],
        json!({"runAsNonRoot": true})
    );
    let s = ok(with(
        "livenessProbe",
        json!({"tcpSocket": {"port": "8080"}, "initialDelaySeconds": 5,
        "terminationGracePeriodSeconds": 30}),
    ));
    let Predictor::Custom(k) = &s.spec.predictor.implementation else {
        panic!()
    };
    let probe = k.spec.liveness_probe.as_ref().unwrap();
    assert_eq!(
        probe.action,
        ProbeAction::TcpSocket {
            port: PortRef::Number(8080),
            host: None
        }
    );
    assert_eq!(probe.termination_grace_period_seconds, Some(30));
    // Init containers are containers too.
    check(
        set(
            "/spec/predictor/initContainers",
            json!([{"name": "init", "env": [{"name": "PYTHONPATH", "value": "x"}]}]),
        ),
        "spec.predictor.initContainers[0].env[0].name",
        "not allowed",
    );
}

#[test]
fn refusals_name_the_field() {
    check(
        set("/spec/predictor/workerSpec", json!({})),
        "spec.predictor.workerSpec",
        "multi-node serving",
    );
    check(
        set(&format!("{MODEL}/confidential"), json!({"enabled": true})),
        "spec.predictor.model.confidential",
        "not supported",
    );
    check(
        set(&format!("{MODEL}/name"), json!("x")),
        "spec.predictor.model.name",
        "not allowed in a model predictor",
    );
    check(
        set("/spec/predictor/name", json!("Blue")),
        "spec.predictor.name",
        "not a valid predictor name",
    );
    check(
        set("/spec/predictor/serviceAccountName", json!("Bad_SA")),
        "spec.predictor.serviceAccountName",
        "not a valid Kubernetes name",
    );
}

#[test]
fn transformers() {
    let s = ok(set(
        "/spec/transformer",
        json!({
        "minReplicas": 2,
        "containers": [{"name": "mine", "image": "t:1", "args": ["--model_name", "demo"],
            "env": [{"name": "PROTOCOL", "value": "grpc-v2"}]}]}),
    ));
    let t = s.spec.transformer.as_ref().unwrap();
    assert_eq!(
        t.container.name, SERVING_CONTAINER_NAME,
        "KServe renames the first container"
    );
    assert_eq!(t.protocol(), Protocol::GrpcV2);
    assert_eq!(t.component.min_replicas, 2);
    check(
        set("/spec/transformer", json!({"minReplicas": 1})),
        "spec.transformer.containers",
        "missing; a transformer is a custom container",
    );
    check(
        set(
            "/spec/transformer",
            json!({"containers": [{"image": "t", "env": [{"name": "PROTOCOL", "value": "v9"}]}]}),
        ),
        "spec.transformer.containers[0].env[0].value",
        "not a protocol",
    );
    check(
        set(
            "/spec/transformer",
            json!({"containers": [{"image": "t"}], "canaryTrafficPercent": 200}),
        ),
        "spec.transformer.canaryTrafficPercent",
        "not between 0 and 100",
    );
    check(
        set(
            "/spec/transformer",
            json!({"containers": [{"image": "t"}, {"image": "u"}]}),
        ),
        "spec.transformer.containers[1].name",
        "needs a name",
    );
}

#[test]
fn explainers() {
    let s = ok(set(
        "/spec/explainer",
        json!({"art": {"type": "SquareAttack", "config": {"nb_classes": "10"}}}),
    ));
    let Explainer::Art(a) = &s.spec.explainer.as_ref().unwrap().implementation else {
        panic!()
    };
    assert_eq!(a.explainer_type, "SquareAttack");
    assert_eq!(a.config["nb_classes"], "10");
    check(
        set("/spec/explainer", json!({"art": {"config": {}}})),
        "spec.explainer.art.type",
        "missing",
    );
    check(
        set(
            "/spec/explainer",
            json!({"art": {"type": "SquareAttack"}, "containers": [{"image": "x"}]}),
        ),
        "spec.explainer.containers",
        "conflicts with spec.explainer.art",
    );
    check(
        set(
            "/spec/explainer",
            json!({"alibi": {"type": "AnchorTabular"}}),
        ),
        "spec.explainer.alibi",
        "KServe removed the built-in alibi explainer",
    );
    check(
        set("/spec/explainer", json!({"minReplicas": 1})),
        "spec.explainer.containers",
        "missing; set art or containers",
    );
    check(
        set(
            "/spec/explainer",
            json!({"art": {"type": "SquareAttack", "storageUri": "gs://b/e"}, "storageUris": [{"uri": "gs://b/f"}]}),
        ),
        "spec.explainer.storageUris",
        "cannot be combined",
    );
}

fn canary(name: &str, percent: i64) -> Value {
    json!({"trafficPercent": percent, "predictor": {"name": name,
        "model": {"modelFormat": {"name": "sklearn"}, "storageUri": format!("s3://models/{name}")}}})
}

#[test]
fn standard_mode_canaries() {
    let s = ok(set(
        "/spec/canary",
        json!([canary("v2", 10), canary("v3", 0)]),
    ));
    let c = &s.spec.canary;
    assert_eq!(c.len(), 2);
    assert_eq!((c[0].name(), c[0].traffic_percent.get()), ("v2", 10));
    assert_eq!((c[1].name(), c[1].traffic_percent.get()), ("v3", 0));
    assert_eq!(
        s.to_kserve_value()["spec"]["canary"][0]["trafficPercent"],
        10
    );
    check(
        |v: &mut Value| {
            set(
                "/metadata/annotations",
                json!({DEPLOYMENT_MODE_ANNOTATION: "Knative"}),
            )(v);
            set("/spec/canary", json!([canary("v2", 10)]))(v);
        },
        "spec.canary",
        "only supported in the Standard deployment mode",
    );
    check(
        set("/spec/canary", json!([canary("v2", 60), canary("v3", 50)])),
        "spec.canary",
        "sum to 110",
    );
    check(
        set("/spec/canary", json!([canary("v2", 101)])),
        "spec.canary[0].trafficPercent",
        "not between 0 and 100",
    );
    check(
        set("/spec/canary", json!([canary("v2", 1), canary("v2", 1)])),
        "spec.canary[1].predictor.name",
        "used by another canary",
    );
    check(
        |v: &mut Value| {
            set("/spec/predictor/name", json!("v2"))(v);
            set("/spec/canary", json!([canary("v2", 1)]))(v);
        },
        "spec.canary[0].predictor.name",
        "stable predictor's name",
    );
    check(
        set(
            "/spec/canary",
            json!([{"trafficPercent": 5, "predictor": {"model": {"modelFormat": {"name": "sklearn"}}}}]),
        ),
        "spec.canary[0].predictor.name",
        "missing",
    );
    check(
        set("/spec/canary", json!([{"predictor": {"name": "v2"}}])),
        "spec.canary[0].trafficPercent",
        "missing",
    );
    check(
        set("/spec/canary", json!([{"trafficPercent": 5}])),
        "spec.canary[0].predictor",
        "missing",
    );
    check(
        |v: &mut Value| {
            let mut c = canary("v2", 5);
            c["predictor"]["maxReplicas"] = json!(4);
            set("/spec/canary", json!([c]))(v);
        },
        "spec.canary[0].predictor.maxReplicas",
        "fixed number of replicas",
    );
    check(
        |v: &mut Value| {
            let mut c = canary("v2", 5);
            c["predictor"]["minReplicas"] = json!(2);
            set("/spec/canary", json!([c]))(v);
        },
        "spec.canary[0].predictor.minReplicas",
        "must not exceed the stable predictor's minReplicas (1)",
    );
    check(
        |v: &mut Value| {
            set("/spec/predictor/canaryTrafficPercent", json!(10))(v);
            set("/spec/canary", json!([canary("v2", 10)]))(v);
        },
        "spec.canary",
        "cannot be combined with spec.predictor.canaryTrafficPercent",
    );
    check(
        |v: &mut Value| {
            predictor(json!({"containers": [{"image": "x"}]}))(v);
            set("/spec/canary", json!([canary("v2", 10)]))(v);
        },
        "spec.canary",
        "requires a stable predictor with a model",
    );
    check(
        |v: &mut Value| {
            let mut c = canary("v2", 5);
            c["predictor"]["model"]["storageUri"] = json!("ftp://x/y");
            set("/spec/canary", json!([c]))(v);
        },
        "spec.canary[0].predictor.model.storageUri",
        "unsupported scheme",
    );
}

// ---------------------------------------------------------------------------
// Files, documents and the other kinds.

const RUNTIME: &str = r#"
apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata:
  name: my-runtime
  namespace: team-a
spec:
  supportedModelFormats:
    - {name: sklearn, version: "1", autoSelect: true, priority: 3}
    - {name: xgboost}
  protocolVersions: [v1, v2]
  multiModel: true
  volumes: [{name: cache, emptyDir: {}}]
  grpcEndpoint: "port:8085"
  containers:
    - name: kserve-container
      image: my/server:1
      args: ["--model_name={{.Name}}"]
"#;

fn runtime(edit: impl FnOnce(&mut Value)) -> Result<ServingRuntime, SpecError> {
    let mut v = serde_saphyr::from_str::<Value>(RUNTIME).unwrap();
    edit(&mut v);
    match Resource::from_json_value(v)? {
        Resource::ServingRuntime(r) => Ok(r),
        other => panic!("unexpected {}", other.kind()),
    }
}

#[track_caller]
fn check_runtime(edit: impl FnOnce(&mut Value), path: &str, msg: &str) {
    let e = runtime(edit).expect_err("expected an error");
    assert_eq!(e.path, path, "{e}");
    assert!(e.message.contains(msg), "{e}");
}

#[test]
fn serving_runtimes() {
    let r = runtime(|_| {}).unwrap();
    assert_eq!(
        r.scope,
        RuntimeScope::Namespaced(Some(Namespace::new("team-a").unwrap()))
    );
    let s = &r.spec;
    assert!(s.multi_model && !s.disabled);
    assert_eq!(s.protocol_versions, [Protocol::V1, Protocol::V2]);
    assert_eq!(s.pod.kubernetes["volumes"][0]["name"], "cache");
    assert_eq!(s.model_mesh["grpcEndpoint"], "port:8085");
    assert_eq!(s.priority(&ModelFormatName::Sklearn), Some(3));
    assert_eq!(s.priority(&ModelFormatName::Xgboost), None);
    let xgb = ModelFormat {
        name: ModelFormatName::Xgboost,
        version: None,
    };
    // Without autoSelect the runtime serves xgboost only when named.
    assert!(!s.supports(&xgb, Protocol::V1, false));
    assert!(s.supports(&xgb, Protocol::V1, true));
    assert!(!s.supports(&xgb, Protocol::GrpcV2, true));
    let again = Resource::from_json_value(r.to_kserve_value()).unwrap();
    assert_eq!(again, Resource::ServingRuntime(r.clone()));
    let disabled = runtime(set("/spec/disabled", json!(true))).unwrap();
    assert!(!disabled.spec.supports(&xgb, Protocol::V1, true));
    // A single unnamed container serves.
    let r = runtime(set("/spec/containers", json!([{"image": "x"}]))).unwrap();
    assert_eq!(
        r.spec.serving_container().map(|c| c.name.as_str()),
        Some(SERVING_CONTAINER_NAME)
    );

    check_runtime(
        set("/kind", json!("ClusterServingRuntime")),
        "metadata.namespace",
        "cluster-wide and has no namespace",
    );
    check_runtime(
        set("/spec/containers", json!([])),
        "spec.containers",
        "missing",
    );
    check_runtime(
        set("/spec/supportedModelFormats/0/priority", json!(0)),
        "spec.supportedModelFormats[0].priority",
        "at least 1",
    );
    check_runtime(
        set(
            "/spec/supportedModelFormats/1",
            json!({"name": "sklearn", "version": "2", "autoSelect": true, "priority": 1}),
        ),
        "spec.supportedModelFormats[1].priority",
        "same priority",
    );
    check_runtime(
        set("/spec/supportedModelFormats/1", json!({"version": "1"})),
        "spec.supportedModelFormats[1].name",
        "missing",
    );
    check_runtime(
        set("/spec/protocolVersions", json!(["v1", "http"])),
        "spec.protocolVersions[1]",
        "not a protocol version",
    );
    check_runtime(
        set("/spec/workerSpec", json!({})),
        "spec.workerSpec",
        "multi-node",
    );
    check_runtime(
        set(
            "/spec/containers/0/env",
            json!([{"name": "PYTHONPATH", "value": "x"}]),
        ),
        "spec.containers[0].env[0].name",
        "not allowed",
    );
    check_runtime(
        set("/spec/serviceAccountName", json!("x")),
        "spec.serviceAccountName",
        "unknown field",
    );
    check_runtime(
        set("/metadata/name", json!("My_Runtime")),
        "metadata.name",
        "not a valid Kubernetes name",
    );
    check_runtime(
        set("/apiVersion", json!(API_VERSION_V1BETA1)),
        "apiVersion",
        "Oxflow reads ServingRuntime as serving.kserve.io/v1alpha1",
    );
}

const TRAINED: &str = r#"
apiVersion: serving.kserve.io/v1alpha1
kind: TrainedModel
metadata: {name: model1}
spec:
  inferenceService: demo
  model: {storageUri: "s3://b/m", framework: xgboost, memory: 256Mi}
"#;

#[test]
fn trained_models() {
    let load = |pointer: &str, value: Option<Value>| {
        let mut v = serde_saphyr::from_str::<Value>(TRAINED).unwrap();
        match value {
            Some(value) => set(pointer, value)(&mut v),
            None if pointer.is_empty() => {}
            None => remove(pointer)(&mut v),
        }
        Resource::from_json_value(v)
    };
    let Resource::TrainedModel(m) = load("", None).unwrap() else {
        panic!()
    };
    assert_eq!(m.spec.inference_service.as_str(), "demo");
    assert_eq!(m.spec.model.framework, ModelFormatName::Xgboost);
    assert_eq!(m.spec.model.memory.value(), Some(256 << 20));
    assert_eq!(
        Resource::from_json_value(m.to_kserve_value()),
        Ok(Resource::TrainedModel(m))
    );
    for (pointer, value, path, msg) in [
        ("/spec/model/memory", None, "spec.model.memory", "missing"),
        (
            "/spec/model/memory",
            Some(json!(0)),
            "spec.model.memory",
            "must be more than 0",
        ),
        (
            "/spec/model/memory",
            Some(json!("lots")),
            "spec.model.memory",
            "not a Kubernetes quantity",
        ),
        (
            "/spec/model/storageUri",
            Some(json!("ftp://x/y")),
            "spec.model.storageUri",
            "unsupported scheme",
        ),
        (
            "/spec/model/storageUri",
            None,
            "spec.model.storageUri",
            "missing",
        ),
        (
            "/spec/model/framework",
            None,
            "spec.model.framework",
            "missing",
        ),
        (
            "/spec/inferenceService",
            Some(json!("Demo")),
            "spec.inferenceService",
            "not a valid InferenceService name",
        ),
        (
            "/spec/inferenceService",
            None,
            "spec.inferenceService",
            "missing",
        ),
        ("/spec/model", None, "spec.model", "missing"),
        (
            "/spec/model/memoryy",
            Some(json!(1)),
            "spec.model.memoryy",
            "unknown field",
        ),
        (
            "/metadata/name",
            Some(json!("Model_1")),
            "metadata.name",
            "not a valid Kubernetes name",
        ),
        ("/status", Some(json!({})), "status", "remove it"),
    ] {
        let e = load(pointer, value).unwrap_err();
        assert_eq!(e.path, path, "{e}");
        assert!(e.message.contains(msg), "{e}");
    }
}

#[test]
fn documents_are_numbered_in_errors() {
    let isvc = serde_saphyr::to_string(&base()).unwrap();
    let bad = BASE.replace("maxReplicas: 3", "maxReplicas: -3");
    // Several documents: the error names the document; empty documents
    // (`---` twice) hold nothing and are not counted.
    let text = format!("{isvc}\n---\n---\n{bad}");
    let e = parse_documents(&text).unwrap_err();
    assert_eq!(e.path, "[document 2].spec.predictor.maxReplicas", "{e}");
    let e = parse_documents(&format!("{isvc}\n---\n{isvc}\n---\n{bad}")).unwrap_err();
    assert_eq!(e.path, "[document 3].spec.predictor.maxReplicas", "{e}");
    let e = parse_documents(&format!("{isvc}\n---\nkind: Deployment\n")).unwrap_err();
    assert_eq!(e.path, "[document 2].kind");
    let e = parse_documents(&format!("{isvc}\n---\n[1, 2]\n")).unwrap_err();
    assert_eq!(e.path, "[document 2]");
    // One document: no prefix.
    let e = parse_documents(&bad).unwrap_err();
    assert_eq!(e.path, "spec.predictor.maxReplicas");
    // Mixed kinds, in order.
    let all = parse_documents(&format!("{BASE}\n---\n{RUNTIME}\n---\n{TRAINED}")).unwrap();
    let kinds: Vec<&str> = all.iter().map(Resource::kind).collect();
    assert_eq!(
        kinds,
        ["InferenceService", "ServingRuntime", "TrainedModel"]
    );
    let names: Vec<&str> = all.iter().map(Resource::name).collect();
    assert_eq!(names, ["demo", "my-runtime", "model1"]);
    // JSON is one document.
    let json_text = serde_json::to_string(&base()).unwrap();
    assert_eq!(parse_documents(&json_text).unwrap().len(), 1);
    assert!(InferenceService::from_yaml(&json_text).is_ok());
    // Nothing at all.
    for empty in ["", "---\n", "# just a comment\n"] {
        assert!(
            parse_documents(empty)
                .unwrap_err()
                .message
                .contains("no resources")
        );
        assert!(
            InferenceService::from_yaml(empty)
                .unwrap_err()
                .message
                .contains("empty")
        );
    }
}

#[test]
fn malformed_yaml_gives_line_and_column() {
    let e = parse_documents("apiVersion: x\nkind: [\n  a,\nspec: {\n").unwrap_err();
    assert_eq!(e.path, "");
    assert!(e.message.starts_with("not valid YAML or JSON"), "{e}");
    assert!(e.message.contains("line"), "{e}");
    let e = parse_documents("a: 1\na: 2\n").unwrap_err();
    assert!(e.message.contains("not valid YAML"), "duplicate keys: {e}");
    // JSON that is not valid falls back to YAML and reports its position.
    let e = parse_documents("{\"a\": [1,\n").unwrap_err();
    assert!(e.message.contains("line"), "{e}");
}

#[test]
fn oversized_and_explosive_inputs_are_refused() {
    let big = format!("{BASE}\n#{}", "x".repeat(MAX_DOCUMENT_BYTES));
    let e = parse_documents(&big).unwrap_err();
    assert!(e.message.contains("the limit is 4194304"), "{e}");
    assert!(InferenceService::from_yaml(&big).is_err());
    // "Billion laughs": nine levels of ten aliases would expand to 10^9 nodes.
    let mut bomb = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let started = std::time::Instant::now();
    let e = parse_documents(&bomb).unwrap_err();
    assert!(e.message.contains("not valid YAML"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // Deep nesting is refused too.
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    assert!(parse_documents(&deep).is_err());
}

#[test]
fn kept_kubernetes_fields_round_trip() {
    let s = ok(|v| {
        set("/spec/predictor/affinity", json!({"nodeAffinity": {}}))(v);
        set(
            "/spec/predictor/imagePullSecrets",
            json!([{"name": "regcred"}]),
        )(v);
        set("/spec/predictor/hostIPC", json!(false))(v);
        set("/spec/predictor/setHostnameAsFQDN", json!(true))(v);
        set("/spec/predictor/labels", json!({"tier": "gold"}))(v);
        set(
            "/spec/predictor/deploymentStrategy",
            json!({"type": "Recreate"}),
        )(v);
        set(
            &format!("{MODEL}/ports"),
            json!([{"containerPort": 8081, "hostIP": "127.0.0.1", "hostPort": 18081}]),
        )(v);
        set(
            &format!("{MODEL}/storage"),
            json!({"key": "localMinIO", "path": "iris", "parameters": {"bucket": "m"}}),
        )(v);
        set(&format!("{MODEL}/runtimeVersion"), json!("1.5.0"))(v);
    });
    let p = &s.spec.predictor;
    assert_eq!(p.pod.kubernetes["hostIPC"], json!(false));
    assert_eq!(p.pod.kubernetes["setHostnameAsFQDN"], json!(true));
    assert_eq!(p.component.labels["tier"], "gold");
    let m = model_of(&s);
    assert_eq!(m.container.ports[0].host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        m.storage.as_ref().and_then(|s| s.key.as_deref()),
        Some("localMinIO")
    );
    let v = s.to_kserve_value();
    assert_eq!(v["spec"]["predictor"]["hostIPC"], false);
    assert_eq!(
        v["spec"]["predictor"]["model"]["ports"][0]["hostIP"],
        "127.0.0.1"
    );
    assert!(v.get("status").is_none());
}
