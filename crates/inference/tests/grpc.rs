//! The gRPC front end over a real socket with the generated client: typed
//! and raw contents, metadata, errors as gRPC status codes, repository.

use std::sync::Arc;
use std::time::Duration;

use oxflow_inference::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use oxflow_inference::grpc::proto::model_infer_request::{
    InferInputTensor, InferRequestedOutputTensor,
};
use oxflow_inference::grpc::proto::{self, InferTensorContents};
use oxflow_inference::metrics::Metrics;
use oxflow_inference::{DataPlane, ModelControl, ModelState, PlaneConfig, Repository};
use tonic::transport::Channel;

mod common;
use common::RowSum;

async fn start() -> (
    GrpcInferenceServiceClient<Channel>,
    tokio::sync::oneshot::Sender<()>,
) {
    start_with(None, PlaneConfig::default()).await
}

async fn start_with(
    loader: Option<Arc<dyn oxflow_inference::Loader>>,
    config: PlaneConfig,
) -> (
    GrpcInferenceServiceClient<Channel>,
    tokio::sync::oneshot::Sender<()>,
) {
    let repository = Arc::new(Repository::new(loader, Duration::from_secs(1)));
    repository.set("sum", ModelState::Ready(Arc::new(RowSum::new("sum"))));
    repository.set("broken", ModelState::Failed("bad file".into()));
    let plane = Arc::new(DataPlane {
        repository,
        metrics: Arc::new(Metrics::default()),
        config,
    });
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = grpc.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(oxflow_inference::server::serve(
        plane,
        (http, loopback()),
        Some((grpc, loopback())),
        async move {
            let _ = rx.await;
        },
    ));
    let client = GrpcInferenceServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    (client, tx)
}

fn loopback() -> oxflow_edge::ServeConfig {
    oxflow_edge::ServeConfig::new(
        oxflow_edge::HostPolicy::loopback(),
        oxflow_edge::Access::Open,
    )
}

fn input(
    name: &str,
    datatype: &str,
    shape: Vec<i64>,
    contents: Option<InferTensorContents>,
) -> InferInputTensor {
    InferInputTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape,
        parameters: Default::default(),
        contents,
    }
}

#[tokio::test]
async fn health_and_metadata() {
    let (mut c, _stop) = start().await;
    assert!(
        c.server_live(proto::ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    // A failed model keeps the server from being ready.
    assert!(
        !c.server_ready(proto::ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let ready = c
        .model_ready(proto::ModelReadyRequest {
            name: "sum".into(),
            version: String::new(),
        })
        .await;
    assert!(ready.unwrap().into_inner().ready);
    let missing = c
        .model_ready(proto::ModelReadyRequest {
            name: "nope".into(),
            version: String::new(),
        })
        .await;
    assert_eq!(missing.unwrap_err().code(), tonic::Code::NotFound);
    let meta = c
        .server_metadata(proto::ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meta.name, "oxflow");
    let meta = c
        .model_metadata(proto::ModelMetadataRequest {
            name: "sum".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meta.platform, "test_rowsum");
    assert_eq!(meta.inputs[0].shape, vec![-1, -1]);
    assert_eq!(meta.outputs[1].datatype, "INT64");
    let broken = c
        .model_metadata(proto::ModelMetadataRequest {
            name: "broken".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(broken.code(), tonic::Code::Unavailable);
    assert_eq!(
        broken.message(),
        "Model broken is not ready: loading failed: bad file"
    );
}

#[tokio::test]
async fn typed_and_raw_inference() {
    let (mut c, _stop) = start().await;
    let typed = proto::ModelInferRequest {
        model_name: "sum".into(),
        id: "7".into(),
        inputs: vec![input(
            "x",
            "FP32",
            vec![2, 2],
            Some(InferTensorContents {
                fp32_contents: vec![1.0, 2.0, 3.0, 4.5],
                ..Default::default()
            }),
        )],
        ..Default::default()
    };
    let r = c.model_infer(typed).await.unwrap().into_inner();
    assert_eq!(r.model_name, "sum");
    assert_eq!(r.id, "7");
    assert!(r.raw_output_contents.is_empty());
    assert_eq!(
        r.outputs[0].contents.as_ref().unwrap().fp64_contents,
        vec![3.0, 7.5]
    );
    assert_eq!(
        r.outputs[1].contents.as_ref().unwrap().int64_contents,
        vec![2]
    );

    let raw: Vec<u8> = [1i64, 2, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
    let request = proto::ModelInferRequest {
        model_name: "sum".into(),
        inputs: vec![input("x", "INT64", vec![1, 3], None)],
        outputs: vec![InferRequestedOutputTensor {
            name: "sum".into(),
            parameters: Default::default(),
        }],
        raw_input_contents: vec![raw],
        ..Default::default()
    };
    let r = c.model_infer(request).await.unwrap().into_inner();
    assert_eq!(r.outputs.len(), 1);
    assert_eq!(r.raw_output_contents.len(), 1);
    assert_eq!(
        f64::from_le_bytes(r.raw_output_contents[0][..8].try_into().unwrap()),
        6.0
    );
}

#[tokio::test]
async fn errors_are_grpc_status_codes() {
    let (mut c, _stop) = start().await;
    let cases = [
        (
            proto::ModelInferRequest {
                model_name: "nope".into(),
                ..Default::default()
            },
            tonic::Code::NotFound,
            "Model nope not found",
        ),
        (
            proto::ModelInferRequest {
                model_name: "sum".into(),
                inputs: vec![input(
                    "x",
                    "FP32",
                    vec![3],
                    Some(InferTensorContents {
                        fp32_contents: vec![1.0],
                        ..Default::default()
                    }),
                )],
                ..Default::default()
            },
            tonic::Code::InvalidArgument,
            "needs 3 elements but 1",
        ),
        (
            proto::ModelInferRequest {
                model_name: "sum".into(),
                inputs: vec![input(
                    "x",
                    "INT8",
                    vec![1],
                    Some(InferTensorContents {
                        int_contents: vec![300],
                        ..Default::default()
                    }),
                )],
                ..Default::default()
            },
            tonic::Code::InvalidArgument,
            "element 0 (300) is out of range for INT8",
        ),
        (
            proto::ModelInferRequest {
                model_name: "sum".into(),
                inputs: vec![input("x", "FP32", vec![1], None)],
                raw_input_contents: vec![vec![0; 3]],
                ..Default::default()
            },
            tonic::Code::InvalidArgument,
            "3 bytes of FP32 data for 1 elements; expected 4",
        ),
        (
            proto::ModelInferRequest {
                model_name: "sum".into(),
                inputs: vec![
                    input("x", "FP32", vec![1], None),
                    input("y", "FP32", vec![1], None),
                ],
                raw_input_contents: vec![vec![0; 4]],
                ..Default::default()
            },
            tonic::Code::InvalidArgument,
            "raw_input_contents has 1 entries for 2 inputs",
        ),
    ];
    for (request, code, message) in cases {
        let e = c.model_infer(request).await.unwrap_err();
        assert_eq!(e.code(), code, "{}", e.message());
        assert!(e.message().contains(message), "{}", e.message());
    }
    let index = c
        .repository_index(proto::RepositoryIndexRequest::default())
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = index
        .models
        .iter()
        .map(|m| (m.name.as_str(), m.state.as_str()))
        .collect();
    assert_eq!(names, vec![("broken", "UNAVAILABLE"), ("sum", "READY")]);
    let unload = proto::RepositoryModelUnloadRequest {
        model_name: String::new(),
        triton_model_name: "sum".into(),
    };
    assert!(
        c.repository_model_unload(unload)
            .await
            .unwrap()
            .into_inner()
            .is_unloaded
    );
    let ready = c
        .model_ready(proto::ModelReadyRequest {
            name: "sum".into(),
            version: String::new(),
        })
        .await;
    assert!(!ready.unwrap().into_inner().ready);
    let load = proto::RepositoryModelLoadRequest {
        model_name: "sum".into(),
        triton_model_name: String::new(),
    };
    let e = c.repository_model_load(load).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("no model repository"),
        "{}",
        e.message()
    );
}

/// Loads `sum` again; knows no other name.
struct SumLoader;

impl oxflow_inference::Loader for SumLoader {
    fn load(
        &self,
        name: &str,
    ) -> futures::future::BoxFuture<'static, Result<Arc<dyn oxflow_inference::Model>, String>> {
        let name = name.to_string();
        Box::pin(
            async move { Ok(Arc::new(RowSum::new(&name)) as Arc<dyn oxflow_inference::Model>) },
        )
    }

    fn available(&self) -> Vec<String> {
        vec!["sum".into()]
    }
}

#[tokio::test]
async fn repository_load_of_unknown_names_and_managed_planes() {
    let (mut c, _stop) = start_with(Some(Arc::new(SumLoader)), PlaneConfig::default()).await;
    let load = |name: &str| proto::RepositoryModelLoadRequest {
        model_name: name.into(),
        triton_model_name: String::new(),
    };
    for i in 0..100 {
        let e = c
            .repository_model_load(load(&format!("nope-{i}")))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
        assert_eq!(e.message(), format!("Model nope-{i} not found"));
    }
    let index = c
        .repository_index(proto::RepositoryIndexRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(index.models.len(), 2, "{:?}", index.models);
    assert!(c.repository_model_load(load("sum")).await.is_ok());

    let managed = PlaneConfig {
        control: ModelControl::Managed {
            owner: "InferenceService ns/iris".into(),
        },
        ..PlaneConfig::default()
    };
    let (mut c, _stop) = start_with(Some(Arc::new(SumLoader)), managed).await;
    let e = c.repository_model_load(load("sum")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(
        e.message()
            .starts_with("the models of InferenceService ns/iris are managed by its controller"),
        "{}",
        e.message()
    );
    let e = c
        .repository_model_unload(proto::RepositoryModelUnloadRequest {
            model_name: "sum".into(),
            triton_model_name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    let ready = c
        .model_ready(proto::ModelReadyRequest {
            name: "sum".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ready.ready);
}
