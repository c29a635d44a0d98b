//! The inference data plane.
//!
//! Tensors and requests in one typed model ([`tensor`], [`types`]), the wire
//! codecs that map the Open Inference Protocol's REST JSON (with the binary
//! tensor extension) and KServe's V1 protocol onto it ([`json`], [`v1`]),
//! and the [`Model`] trait the runtimes implement. Runtimes themselves live
//! elsewhere (ONNX in `oxflow-onnx`, trees in `oxflow-trees`, Python and
//! custom predictors in `oxflow-serving`): this crate knows the protocols,
//! not the frameworks.

pub mod batcher;
pub mod error;
pub mod grpc;
pub mod json;
pub mod metrics;
pub mod model;
pub mod repository;
pub mod rest;
pub mod server;
pub mod tensor;
pub mod types;
pub mod v1;

pub use error::InferError;
pub use model::{Model, WorkerCounts, Workers};
pub use repository::{Loader, ModelState, Repository};
pub use rest::{DataPlane, ModelControl, PlaneConfig};
pub use tensor::{DataType, Parameters, Tensor, TensorData};
pub use types::{InferRequest, InferResponse, ModelMetadata, RequestedOutput, TensorMetadata};
