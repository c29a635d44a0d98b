//! The one door every Oxflow listener serves through.
//!
//! - [`HostPolicy`]: the `Host` names a listener answers to and the
//!   `Origin`s allowed to change state, so that neither DNS rebinding nor a
//!   page on another origin can drive the server (see `hosts`).
//! - [`serve`]: a router served with a deadline for request headers, a cap
//!   on connections and eviction of idle ones, behind that check.
//!
//! Architecture invariant: every TCP listener of Oxflow that speaks HTTP
//! (`oxflow up`, `oxflow serve`, gRPC, the Katib push endpoint, the
//! predictor host of transformers) is served by [`serve`], which runs the
//! check on every request before the router, so no listener can be opened
//! without it.

mod guard;
mod hosts;
mod serve;

use std::sync::Arc;

pub use hosts::{HostPolicy, PatternError};
pub use serve::{ServeConfig, serve};

/// `router` behind the Host/Origin check of `policy` (what [`serve`]
/// applies; for routers served some other way, such as in-process tests).
pub fn protect(router: axum::Router, policy: Arc<HostPolicy>) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(policy, guard::check))
}
