//! Why a model could not be loaded.

use std::path::PathBuf;

/// A load failure, with what the user should do about it.
///
/// Request-time failures are [`oxflow_inference::InferError`]s instead: a
/// model that loaded answers every request, possibly with a 400.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The model file could not be read.
    #[error("cannot read ONNX model {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The bytes are not an ONNX `ModelProto` (wrong file, truncated upload,
    /// another format).
    #[error("model {name} is not a valid ONNX file: {reason}")]
    NotOnnx {
        /// The model's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The graph uses operators the runtime does not implement.
    #[error(
        "model {name} uses operators that Oxflow's ONNX runtime (tract) does not implement: {}. \
         Re-export the model without them or serve it with another runtime",
        .operators.join(", ")
    )]
    UnsupportedOperators {
        /// The model's name.
        name: String,
        /// One entry per distinct operator: `domain.Op (node 'name')`.
        operators: Vec<String>,
    },
    /// The graph has a shape the runtime cannot serve (a non-tensor output,
    /// an input without a rank, an input type the protocol cannot carry…).
    #[error("model {name} cannot be served: {reason}")]
    Unsupported {
        /// The model's name.
        name: String,
        /// Why, and what to change in the export.
        reason: String,
    },
    /// tract failed to analyse, type or optimise the graph.
    #[error("model {name} could not be prepared for inference: {reason}")]
    Invalid {
        /// The model's name.
        name: String,
        /// tract's error chain.
        reason: String,
    },
}
