//! The gRPC front end: `inference.GRPCInferenceService` (the Open Inference
//! Protocol's service as KServe ships it, plus Triton's repository index so
//! `tritonclient.grpc` works unchanged), over the same [`DataPlane`] as REST.
//!
//! Tensors arrive either as typed `contents` or as `raw_input_contents`;
//! responses answer in kind (raw when the request was raw, which is what
//! Triton's clients send by default).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tonic::{Request, Response, Status};

use crate::error::InferError;
use crate::json::{decode_raw, encode_raw};
use crate::rest::{DataPlane, EXTENSIONS};
use crate::tensor::{DataType, Parameters, Tensor, TensorData, element_count};
use crate::types::{InferRequest, InferResponse, RequestedOutput};

/// The generated protobuf messages, client and server.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("inference");
}

use proto::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use proto::infer_parameter::ParameterChoice;
use proto::{InferParameter, InferTensorContents};

/// The tonic service for `plane`, ready to add to a `tonic` server.
pub fn service(plane: Arc<DataPlane>) -> GrpcInferenceServiceServer<GrpcPlane> {
    let max = plane.config.max_body_bytes;
    GrpcInferenceServiceServer::new(GrpcPlane { plane })
        .max_decoding_message_size(max)
        .max_encoding_message_size(usize::MAX)
}

/// The gRPC service for `plane` as an axum router (to be served over
/// HTTP/2, or called with `oneshot` by a dispatcher in front of several
/// planes).
pub fn router(plane: Arc<DataPlane>) -> axum::Router {
    tonic::service::Routes::new(service(plane)).into_axum_router()
}

/// The data plane seen through gRPC.
pub struct GrpcPlane {
    plane: Arc<DataPlane>,
}

fn status(e: &InferError) -> Status {
    Status::new(tonic::Code::from_i32(e.grpc_code()), e.to_string())
}

fn parameters_in(map: HashMap<String, InferParameter>) -> Parameters {
    // Sorted, so that parameters compare and print the same on every run.
    let mut entries: Vec<_> = map.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
        .into_iter()
        .filter_map(|(k, p)| {
            let v: serde_json::Value = match p.parameter_choice? {
                ParameterChoice::BoolParam(b) => b.into(),
                ParameterChoice::Int64Param(i) => i.into(),
                ParameterChoice::StringParam(s) => s.into(),
                ParameterChoice::DoubleParam(d) => d.into(),
                ParameterChoice::Uint64Param(u) => u.into(),
            };
            Some((k, v))
        })
        .collect()
}

fn parameters_out(map: &Parameters) -> HashMap<String, InferParameter> {
    map.iter()
        .filter_map(|(k, v)| {
            let choice = match v {
                serde_json::Value::Bool(b) => ParameterChoice::BoolParam(*b),
                serde_json::Value::String(s) => ParameterChoice::StringParam(s.clone()),
                serde_json::Value::Number(n) => {
                    if let Some(i) = n.as_i64() {
                        ParameterChoice::Int64Param(i)
                    } else if let Some(u) = n.as_u64() {
                        ParameterChoice::Uint64Param(u)
                    } else {
                        ParameterChoice::DoubleParam(n.as_f64().unwrap_or_default())
                    }
                }
                _ => return None,
            };
            Some((
                k.clone(),
                InferParameter {
                    parameter_choice: Some(choice),
                },
            ))
        })
        .collect()
}

/// Typed contents of one input, checked against its datatype.
fn from_contents(datatype: DataType, c: InferTensorContents) -> Result<TensorData, String> {
    fn narrow<T: TryFrom<i32>>(v: Vec<i32>, name: &str) -> Result<Vec<T>, String> {
        v.into_iter()
            .enumerate()
            .map(|(i, x)| {
                T::try_from(x).map_err(|_| format!("element {i} ({x}) is out of range for {name}"))
            })
            .collect()
    }
    fn narrow_u<T: TryFrom<u32>>(v: Vec<u32>, name: &str) -> Result<Vec<T>, String> {
        v.into_iter()
            .enumerate()
            .map(|(i, x)| {
                T::try_from(x).map_err(|_| format!("element {i} ({x}) is out of range for {name}"))
            })
            .collect()
    }
    Ok(match datatype {
        DataType::Bool => TensorData::Bool(c.bool_contents),
        DataType::Int8 => TensorData::Int8(narrow(c.int_contents, "INT8")?),
        DataType::Int16 => TensorData::Int16(narrow(c.int_contents, "INT16")?),
        DataType::Int32 => TensorData::Int32(c.int_contents),
        DataType::Int64 => TensorData::Int64(c.int64_contents),
        DataType::Uint8 => TensorData::Uint8(narrow_u(c.uint_contents, "UINT8")?),
        DataType::Uint16 => TensorData::Uint16(narrow_u(c.uint_contents, "UINT16")?),
        DataType::Uint32 => TensorData::Uint32(c.uint_contents),
        DataType::Uint64 => TensorData::Uint64(c.uint64_contents),
        DataType::Fp32 => TensorData::Fp32(c.fp32_contents),
        DataType::Fp64 => TensorData::Fp64(c.fp64_contents),
        DataType::Bytes => TensorData::Bytes(c.bytes_contents),
        DataType::Fp16 | DataType::Bf16 => {
            return Err(format!(
                "{datatype} tensors can only be sent in raw_input_contents"
            ));
        }
    })
}

fn to_contents(data: TensorData) -> InferTensorContents {
    let mut c = InferTensorContents::default();
    match data {
        TensorData::Bool(v) => c.bool_contents = v,
        TensorData::Int8(v) => c.int_contents = v.into_iter().map(i32::from).collect(),
        TensorData::Int16(v) => c.int_contents = v.into_iter().map(i32::from).collect(),
        TensorData::Int32(v) => c.int_contents = v,
        TensorData::Int64(v) => c.int64_contents = v,
        TensorData::Uint8(v) => c.uint_contents = v.into_iter().map(u32::from).collect(),
        TensorData::Uint16(v) => c.uint_contents = v.into_iter().map(u32::from).collect(),
        TensorData::Uint32(v) => c.uint_contents = v,
        TensorData::Uint64(v) => c.uint64_contents = v,
        TensorData::Fp32(v) => c.fp32_contents = v,
        TensorData::Fp64(v) => c.fp64_contents = v,
        TensorData::Bytes(v) => c.bytes_contents = v,
        // No typed field exists: send the IEEE bits widened to FP32.
        TensorData::Fp16(v) => {
            c.fp32_contents = v.into_iter().map(crate::tensor::f16_to_f32).collect()
        }
        TensorData::Bf16(v) => {
            c.fp32_contents = v
                .into_iter()
                .map(|h| f32::from_bits((h as u32) << 16))
                .collect()
        }
    }
    c
}

/// Converts a `ModelInferRequest`; returns whether it used raw contents.
pub fn decode_infer(r: proto::ModelInferRequest) -> Result<(InferRequest, bool), InferError> {
    let raw = !r.raw_input_contents.is_empty();
    if raw && r.raw_input_contents.len() != r.inputs.len() {
        return Err(InferError::invalid(format!(
            "raw_input_contents has {} entries for {} inputs; send one per input, in order",
            r.raw_input_contents.len(),
            r.inputs.len()
        )));
    }
    let mut raw_contents = r.raw_input_contents.into_iter();
    let mut inputs = Vec::with_capacity(r.inputs.len());
    for (i, input) in r.inputs.into_iter().enumerate() {
        let at = |m: String| InferError::invalid(format!("inputs[{i}] ('{}'): {m}", input.name));
        let datatype = DataType::parse(&input.datatype)
            .ok_or_else(|| at(format!("unknown datatype '{}'", input.datatype)))?;
        let shape: Vec<usize> = input
            .shape
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| at(format!("dimension {d} is negative"))))
            .collect::<Result<_, _>>()?;
        let count = element_count(&shape).ok_or_else(|| at("shape is too large".into()))?;
        let data = if raw {
            if input.contents.is_some() {
                return Err(at(
                    "has contents while the request uses raw_input_contents".into()
                ));
            }
            let bytes = raw_contents.next().unwrap_or_default();
            decode_raw(&bytes, datatype, count).map_err(at)?
        } else {
            let contents = input.contents.ok_or_else(|| at("has no contents".into()))?;
            from_contents(datatype, contents).map_err(at)?
        };
        let mut tensor = Tensor::new(input.name, shape, data)?;
        tensor.parameters = parameters_in(input.parameters);
        inputs.push(tensor);
    }
    let outputs = r
        .outputs
        .into_iter()
        .map(|o| RequestedOutput {
            name: o.name,
            parameters: parameters_in(o.parameters),
        })
        .collect();
    let id = (!r.id.is_empty()).then_some(r.id);
    Ok((
        InferRequest {
            id,
            parameters: parameters_in(r.parameters),
            inputs,
            outputs,
        },
        raw,
    ))
}

/// Converts a response, raw or typed.
pub fn encode_infer(response: InferResponse, raw: bool) -> proto::ModelInferResponse {
    let mut outputs = Vec::with_capacity(response.outputs.len());
    let mut raw_outputs = Vec::new();
    for t in response.outputs {
        let datatype = t.datatype().as_str().to_string();
        let shape = t.shape.iter().map(|&d| d as i64).collect();
        let parameters = parameters_out(&t.parameters);
        let contents = if raw {
            let mut bytes = Vec::with_capacity(crate::json::raw_size(&t.data));
            encode_raw(&t.data, &mut bytes);
            raw_outputs.push(bytes);
            None
        } else {
            Some(to_contents(t.data))
        };
        outputs.push(proto::model_infer_response::InferOutputTensor {
            name: t.name,
            datatype,
            shape,
            parameters,
            contents,
        });
    }
    proto::ModelInferResponse {
        model_name: response.model_name,
        model_version: response.model_version.unwrap_or_default(),
        id: response.id.unwrap_or_default(),
        parameters: parameters_out(&response.parameters),
        outputs,
        raw_output_contents: raw_outputs,
    }
}

fn version(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

#[tonic::async_trait]
impl GrpcInferenceService for GrpcPlane {
    async fn server_live(
        &self,
        _: Request<proto::ServerLiveRequest>,
    ) -> Result<Response<proto::ServerLiveResponse>, Status> {
        Ok(Response::new(proto::ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<proto::ServerReadyRequest>,
    ) -> Result<Response<proto::ServerReadyResponse>, Status> {
        Ok(Response::new(proto::ServerReadyResponse {
            ready: self.plane.repository.all_ready(),
        }))
    }

    async fn model_ready(
        &self,
        request: Request<proto::ModelReadyRequest>,
    ) -> Result<Response<proto::ModelReadyResponse>, Status> {
        let name = request.into_inner().name;
        let ready = self.plane.repository.ready(&name).map_err(|e| status(&e))?;
        Ok(Response::new(proto::ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<proto::ServerMetadataRequest>,
    ) -> Result<Response<proto::ServerMetadataResponse>, Status> {
        let c = &self.plane.config;
        Ok(Response::new(proto::ServerMetadataResponse {
            name: c.server_name.clone(),
            version: c.server_version.clone(),
            extensions: EXTENSIONS.iter().map(|s| s.to_string()).collect(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<proto::ModelMetadataRequest>,
    ) -> Result<Response<proto::ModelMetadataResponse>, Status> {
        let r = request.into_inner();
        let model = self
            .plane
            .repository
            .get(&r.name)
            .await
            .map_err(|e| status(&e))?;
        let meta = model.metadata();
        crate::rest::check_version(meta, &r.name, version(&r.version)).map_err(|e| status(&e))?;
        let tensors = |ts: &[crate::types::TensorMetadata]| {
            ts.iter()
                .map(|t| proto::model_metadata_response::TensorMetadata {
                    name: t.name.clone(),
                    datatype: t.datatype.as_str().to_string(),
                    shape: t.shape.clone(),
                })
                .collect()
        };
        Ok(Response::new(proto::ModelMetadataResponse {
            name: meta.name.clone(),
            versions: meta.versions.clone(),
            platform: meta.platform.clone(),
            inputs: tensors(&meta.inputs),
            outputs: tensors(&meta.outputs),
        }))
    }

    async fn model_infer(
        &self,
        request: Request<proto::ModelInferRequest>,
    ) -> Result<Response<proto::ModelInferResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let name = r.model_name.clone();
        let model_version = version(&r.model_version).map(str::to_string);
        let result = async {
            let (request, raw) = decode_infer(r)?;
            let response = self
                .plane
                .infer(&name, model_version.as_deref(), request)
                .await?;
            Ok::<_, InferError>(encode_infer(response, raw))
        }
        .await;
        let metrics = self.plane.metrics.model(&name);
        match result {
            Ok(response) => {
                metrics.request("grpc", 200, started.elapsed());
                Ok(Response::new(response))
            }
            Err(e) => {
                metrics.request("grpc", e.http_status(), started.elapsed());
                Err(status(&e))
            }
        }
    }

    async fn repository_index(
        &self,
        request: Request<proto::RepositoryIndexRequest>,
    ) -> Result<Response<proto::RepositoryIndexResponse>, Status> {
        let ready_only = request.into_inner().ready;
        let models = self
            .plane
            .repository
            .index()
            .into_iter()
            .filter(|e| !ready_only || e.state == "READY")
            .map(|e| proto::repository_index_response::ModelIndex {
                name: e.name,
                version: String::new(),
                state: e.state,
                reason: e.reason,
            })
            .collect();
        Ok(Response::new(proto::RepositoryIndexResponse { models }))
    }

    async fn repository_model_load(
        &self,
        request: Request<proto::RepositoryModelLoadRequest>,
    ) -> Result<Response<proto::RepositoryModelLoadResponse>, Status> {
        let r = request.into_inner();
        let name = if r.triton_model_name.is_empty() {
            r.model_name
        } else {
            r.triton_model_name
        };
        self.plane.load_model(&name).await.map_err(|e| status(&e))?;
        Ok(Response::new(proto::RepositoryModelLoadResponse {
            model_name: name,
            is_loaded: true,
        }))
    }

    async fn repository_model_unload(
        &self,
        request: Request<proto::RepositoryModelUnloadRequest>,
    ) -> Result<Response<proto::RepositoryModelUnloadResponse>, Status> {
        let r = request.into_inner();
        let name = if r.triton_model_name.is_empty() {
            r.model_name
        } else {
            r.triton_model_name
        };
        self.plane.unload_model(&name).map_err(|e| status(&e))?;
        Ok(Response::new(proto::RepositoryModelUnloadResponse {
            model_name: name,
            is_unloaded: true,
        }))
    }
}
