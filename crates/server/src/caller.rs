//! The caller of each request, as the edge established it, and the one
//! authorization question handlers ask once they know the namespace of
//! what a request touches — for id-keyed routes (runs, experiments,
//! recurring runs, artifacts, logs) the namespace stored with the object,
//! never one the request names.

use axum::extract::{FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use oxflow_auth::{Caller, Scope, Verb, authorize};
use oxflow_core::Namespace;

use crate::error::{ApiError, ApiResult};

/// Refuses a request that reached the router without a [`Caller`] (a
/// router served other than through `oxflow_edge::serve`): fail closed.
pub(crate) async fn require(request: Request, next: Next) -> Response {
    if request.extensions().get::<Caller>().is_none() {
        return unauthenticated().into_response();
    }
    next.run(request).await
}

fn unauthenticated() -> ApiError {
    ApiError {
        status: StatusCode::UNAUTHORIZED,
        message: "authentication required".into(),
    }
}

/// The request's caller (an extractor).
#[derive(Debug, Clone)]
pub(crate) struct Who(pub(crate) Caller);

impl<S: Send + Sync> FromRequestParts<S> for Who {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .map(Who)
            .ok_or_else(unauthenticated)
    }
}

impl Who {
    /// May the caller do `verb` in `namespace`? 403 if not.
    pub(crate) fn may(&self, verb: Verb, namespace: &Namespace) -> ApiResult<()> {
        authorize(&self.0, verb, namespace.as_str()).map_err(|denied| ApiError {
            status: StatusCode::FORBIDDEN,
            message: denied.to_string(),
        })
    }

    /// For what belongs to no namespace (shared pipelines): anyone
    /// authenticated may read it; changing it takes a caller who may reach
    /// every namespace.
    pub(crate) fn may_shared(&self, verb: Verb) -> ApiResult<()> {
        let reads = matches!(verb, Verb::Get | Verb::List | Verb::Watch);
        if reads || self.0.scope == Scope::Everything {
            Ok(())
        } else {
            Err(ApiError {
                status: StatusCode::FORBIDDEN,
                message: format!(
                    "{:?} may not {} shared objects (they belong to every namespace)",
                    self.0.name,
                    verb.as_str()
                ),
            })
        }
    }

    /// For lists across every namespace: only a caller who may reach them
    /// all (others name a namespace).
    pub(crate) fn may_everywhere(&self, verb: Verb) -> ApiResult<()> {
        if self.0.scope == Scope::Everything {
            Ok(())
        } else {
            Err(ApiError {
                status: StatusCode::FORBIDDEN,
                message: format!(
                    "{:?} may not {} across all namespaces; name a namespace",
                    self.0.name,
                    verb.as_str()
                ),
            })
        }
    }

    /// For lists across namespaces: whether items of `namespace` are
    /// shown to the caller.
    pub(crate) fn sees(&self, namespace: &str) -> bool {
        authorize(&self.0, Verb::List, namespace).is_ok()
    }

    /// The owner of an optional namespace: `may` for `Some`, `may_shared`
    /// for `None`.
    pub(crate) fn may_in(&self, verb: Verb, namespace: Option<&Namespace>) -> ApiResult<()> {
        match namespace {
            Some(ns) => self.may(verb, ns),
            None => self.may_shared(verb),
        }
    }
}
