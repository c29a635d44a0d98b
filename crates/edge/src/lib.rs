//! The one door every Oxflow listener serves through.
//!
//! - [`HostPolicy`]: the `Host` names a listener answers to and the
//!   `Origin`s allowed to change state, so that neither DNS rebinding nor a
//!   page on another origin can drive the server (see `hosts`).
//! - [`Access`] and [`Gate`]: authentication — the data directory's token,
//!   a scoped token or a dashboard session on every request, the login
//!   page, and the refusal to serve a non-loopback address without it.
//! - [`tls_identity`]: TLS from a local CA, on the same port as plain HTTP
//!   (kubectl sends its token only over TLS).
//! - [`serve`]: a router served with a deadline for request headers, a cap
//!   on connections and eviction of idle ones, behind those checks; the
//!   router sees each request's [`Caller`] in its extensions.
//!
//! Architecture invariant: every TCP listener of Oxflow that speaks HTTP
//! (`oxflow up`, `oxflow serve`, gRPC, the Katib push endpoint, the
//! predictor host of transformers) is served by [`serve`], which runs the
//! check on every request before the router, so no listener can be opened
//! without it.

mod access;
mod guard;
mod hosts;
mod serve;
mod tls;

use std::sync::Arc;

pub use access::{Access, CSRF_HEADER, Gate};
pub use hosts::{HostPolicy, PatternError};
pub use oxflow_auth::{Caller, Credentials};
pub use serve::{ServeConfig, serve};
pub use tls::{TlsError, TlsIdentity, load_or_create as tls_identity};

/// `router` behind the Host/Origin check of `policy`, with every request
/// made by the owner (for routers served some other way, such as
/// in-process tests; [`serve`] also authenticates).
pub fn protect(router: axum::Router, policy: Arc<HostPolicy>) -> axum::Router {
    router
        .layer(axum::middleware::from_fn_with_state(policy, guard::check))
        .layer(axum::Extension(Caller::owner()))
}
