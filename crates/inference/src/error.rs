//! The one error type of the data plane, with the HTTP status and gRPC code
//! each kind maps to.

/// Why a request could not be answered. Every variant's message is what the
/// client reads in `{"error": "..."}` (REST) or the gRPC status message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InferError {
    /// The request is malformed or does not fit the model (400).
    #[error("{0}")]
    InvalidInput(String),
    /// No model by that name (or version) is known (404).
    #[error("Model {0} not found")]
    ModelNotFound(String),
    /// The model exists but is not ready: loading, failed or unloaded (503).
    #[error("Model {name} is not ready: {reason}")]
    NotReady {
        /// The model's name.
        name: String,
        /// What it is doing instead (loading, failed to load because …).
        reason: String,
    },
    /// The server is at its limit and refused the request rather than queue
    /// it without bound (503).
    #[error("{0}")]
    Overloaded(String),
    /// The request is not allowed on this server: loading or unloading a
    /// model that a controller manages (403).
    #[error("{0}")]
    Forbidden(String),
    /// The request body is larger than the server accepts (413).
    #[error("{0}")]
    TooLarge(String),
    /// The request took longer than the component's timeout (504).
    #[error("{0}")]
    Timeout(String),
    /// The model or its runtime failed while computing (500).
    #[error("{0}")]
    Internal(String),
}

impl InferError {
    /// A 400 error with `message`.
    pub fn invalid(message: impl Into<String>) -> InferError {
        InferError::InvalidInput(message.into())
    }

    /// A 500 error with `message`.
    pub fn internal(message: impl Into<String>) -> InferError {
        InferError::Internal(message.into())
    }

    /// The HTTP status code KServe's and Triton's servers use for this kind.
    pub fn http_status(&self) -> u16 {
        match self {
            InferError::InvalidInput(_) => 400,
            InferError::ModelNotFound(_) => 404,
            InferError::Forbidden(_) => 403,
            InferError::TooLarge(_) => 413,
            InferError::NotReady { .. } | InferError::Overloaded(_) => 503,
            InferError::Timeout(_) => 504,
            InferError::Internal(_) => 500,
        }
    }

    /// The gRPC status code (as its number, to keep this crate free of
    /// tonic) for this kind.
    pub fn grpc_code(&self) -> i32 {
        match self {
            InferError::InvalidInput(_) => 3,  // INVALID_ARGUMENT
            InferError::ModelNotFound(_) => 5, // NOT_FOUND
            InferError::Forbidden(_) => 7,     // PERMISSION_DENIED
            InferError::TooLarge(_) => 8,      // RESOURCE_EXHAUSTED
            InferError::NotReady { .. } => 14, // UNAVAILABLE
            InferError::Overloaded(_) => 14,   // UNAVAILABLE
            InferError::Timeout(_) => 4,       // DEADLINE_EXCEEDED
            InferError::Internal(_) => 13,     // INTERNAL
        }
    }
}
