//! API errors: an HTTP status and a `google.rpc.Status`-shaped JSON body
//! (`{"code", "message", "details"}`), which is what the KFP client and UI
//! expect, with the field at fault named in the message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use oxflow_pipelines::PipelineError;
use oxflow_store::StoreError;

/// An error answered to an API client.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong and, for bad input, which field.
    pub message: String,
}

impl ApiError {
    /// 400 with a message naming the field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            message: message.into(),
        }
    }

    /// 500: something broke on our side; the message is logged and returned.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }

    /// The gRPC code KFP puts in `code`.
    fn grpc_code(&self) -> i32 {
        match self.status {
            StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => 3,
            StatusCode::NOT_FOUND => 5,
            StatusCode::CONFLICT => 6,
            StatusCode::FORBIDDEN => 7,
            StatusCode::UNAUTHORIZED => 16,
            StatusCode::PRECONDITION_FAILED => 9,
            _ => 13,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, message = %self.message, "Request failed.");
        }
        let body = serde_json::json!({
            "code": self.grpc_code(),
            "message": self.message,
            "error": self.message,
            "details": [],
        });
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NotFound { .. } => Self::not_found(e.to_string()),
            StoreError::Ambiguous { .. } => Self::bad_request(e.to_string()),
            StoreError::Conflict { .. }
            | StoreError::AlreadyExists { .. }
            | StoreError::Stale { .. } => Self::conflict(e.to_string()),
            StoreError::BadQuery { .. } => Self::bad_request(e.to_string()),
            StoreError::NotEmpty { .. } => Self {
                status: StatusCode::PRECONDITION_FAILED,
                message: e.to_string(),
            },
            _ => Self::internal(e.to_string()),
        }
    }
}

/// The resource model's refusals on Oxflow's own routes (the Kubernetes
/// API answers them as `Status` objects instead).
impl From<oxflow_resources::ResourceError> for ApiError {
    fn from(e: oxflow_resources::ResourceError) -> Self {
        use oxflow_resources::ResourceError as E;
        let status = match &e {
            E::NotFound { .. } => StatusCode::NOT_FOUND,
            E::AlreadyExists { .. } | E::Conflict { .. } | E::Fenced { .. } => StatusCode::CONFLICT,
            E::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            E::BadRequest { .. } => StatusCode::BAD_REQUEST,
            E::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            E::Store(_) => {
                tracing::error!(error = %e, "A resource request failed in the store.");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError {
            status,
            message: e.to_string(),
        }
    }
}

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Store(s) => s.into(),
            PipelineError::Syntax { .. }
            | PipelineError::Invalid { .. }
            | PipelineError::Parameter { .. } => Self::bad_request(e.to_string()),
            PipelineError::RunState { .. } => Self {
                status: StatusCode::PRECONDITION_FAILED,
                message: e.to_string(),
            },
            other => Self::internal(other.to_string()),
        }
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;
