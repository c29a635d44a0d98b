//! Requests, responses and metadata in Oxflow's own shape; the codecs in
//! [`crate::json`], [`crate::v1`] and the gRPC service map wire formats onto
//! these.

use crate::tensor::{DataType, Parameters, Tensor};

/// One inference request, whichever protocol carried it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InferRequest {
    /// The client's request id, echoed in the response.
    pub id: Option<String>,
    /// Request-level parameters (`content_type`, …); the binary-extension
    /// keys are consumed by the codec.
    pub parameters: Parameters,
    /// Input tensors, in the order sent.
    pub inputs: Vec<Tensor>,
    /// The outputs the client asked for; empty means the model's defaults.
    pub outputs: Vec<RequestedOutput>,
}

impl InferRequest {
    /// The input called `name`.
    pub fn input(&self, name: &str) -> Option<&Tensor> {
        self.inputs.iter().find(|t| t.name == name)
    }
}

/// An output the client asked for, with its per-output parameters
/// (`binary_data`, `classification`…).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestedOutput {
    /// The output's name.
    pub name: String,
    /// Per-output parameters as sent.
    pub parameters: Parameters,
}

/// One inference response.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InferResponse {
    /// The model that answered.
    pub model_name: String,
    /// Its version, when the model has versions.
    pub model_version: Option<String>,
    /// The request's id, echoed.
    pub id: Option<String>,
    /// Response-level parameters.
    pub parameters: Parameters,
    /// Output tensors.
    pub outputs: Vec<Tensor>,
}

/// An input's or output's declared name, datatype and shape (`-1` for a
/// variable dimension).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TensorMetadata {
    /// Tensor name.
    pub name: String,
    /// Element type, as on the wire.
    #[serde(serialize_with = "ser_datatype")]
    pub datatype: DataType,
    /// Dimensions; `-1` is variable.
    pub shape: Vec<i64>,
}

fn ser_datatype<S: serde::Serializer>(d: &DataType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(d.as_str())
}

/// What `GET /v2/models/{name}` answers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelMetadata {
    /// The model's name.
    pub name: String,
    /// Versions available (empty when unversioned).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
    /// `<runtime>_<format>`, e.g. `onnx_onnxv1`, `xgboost_json`.
    pub platform: String,
    /// Declared inputs.
    pub inputs: Vec<TensorMetadata>,
    /// Declared outputs; the first is the default a V1 `:predict` returns.
    pub outputs: Vec<TensorMetadata>,
}
