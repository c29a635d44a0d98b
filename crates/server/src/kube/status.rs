//! Errors on the Kubernetes API paths, as `Status` objects: what kubectl
//! prints from (`Error from server (NotFound): configmaps "x" not found`)
//! and what the client libraries raise.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oxflow_core::object::{FieldError, Kind};
use oxflow_resources::ResourceError;
use serde_json::{Value, json};

/// A Kubernetes `Status` failure.
#[derive(Debug)]
pub(crate) struct KubeError {
    pub(crate) code: StatusCode,
    pub(crate) reason: &'static str,
    pub(crate) message: String,
    pub(crate) details: Option<Value>,
}

pub(crate) type KubeResult<T> = Result<T, KubeError>;

impl KubeError {
    pub(crate) fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    pub(crate) fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message)
    }

    /// The Status object.
    pub(crate) fn body(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

fn details(kind: &Kind, name: &str) -> Value {
    json!({"name": name, "group": kind.group, "kind": kind.plural})
}

fn causes(list: &[FieldError]) -> Value {
    Value::Array(
        list.iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect(),
    )
}

impl From<ResourceError> for KubeError {
    fn from(e: ResourceError) -> Self {
        let message = e.to_string();
        match &e {
            ResourceError::NotFound { kind, name } => Self {
                code: StatusCode::NOT_FOUND,
                reason: "NotFound",
                message: format!("{} {name:?} not found", kind.resource_name()),
                details: Some(details(kind, name)),
            },
            ResourceError::AlreadyExists { kind, name } => Self {
                code: StatusCode::CONFLICT,
                reason: "AlreadyExists",
                message,
                details: Some(details(kind, name)),
            },
            ResourceError::Conflict { kind, name } => Self {
                code: StatusCode::CONFLICT,
                reason: "Conflict",
                message,
                details: Some(details(kind, name)),
            },
            ResourceError::Invalid {
                kind,
                name,
                causes: c,
            } => {
                let mut d = details(kind, name);
                d["kind"] = json!(kind.kind);
                d["causes"] = causes(c);
                Self {
                    code: StatusCode::UNPROCESSABLE_ENTITY,
                    reason: "Invalid",
                    message,
                    details: Some(d),
                }
            }
            ResourceError::BadRequest { causes: c, .. } => Self {
                code: StatusCode::BAD_REQUEST,
                reason: "BadRequest",
                message,
                details: (!c.is_empty()).then(|| json!({"causes": causes(c)})),
            },
            ResourceError::UnsupportedMediaType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                message,
            ),
            ResourceError::Fenced { .. } => Self::new(StatusCode::CONFLICT, "Conflict", message),
            ResourceError::Store(_) => {
                tracing::error!(error = %message, "A resource request failed in the store.");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
            }
        }
    }
}

impl IntoResponse for KubeError {
    fn into_response(self) -> Response {
        let mut resp = (self.code, axum::Json(self.body())).into_response();
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, private"),
        );
        resp
    }
}
