//! The resource model: every Kubernetes-shaped kind as one object shape in
//! one store table, described by a [`Registry`] entry, with the write
//! semantics of the Kubernetes API ([`Resources`]) and watches over the
//! change feed.
//!
//! Architecture invariant: this crate knows no HTTP. The API layer
//! (`server`) parses requests into these calls and renders their results;
//! controllers use the same calls, so an object written by kubectl, an SDK,
//! the CLI or a controller goes through the same rules.

pub mod builtin;
mod cache;
mod events;
pub mod logs;
mod objects;
pub mod pods;
mod registry;
mod watch;

use oxflow_core::object::{FieldError, Kind};
use oxflow_store::StoreError;

pub use cache::Cached;
pub use events::{EventType, Recorder};
pub use objects::{
    DeleteOptions, FieldValidation, PatchType, Propagation, Resources, WriteOptions, Written,
    matches,
};
pub use registry::Registry;
pub use watch::{WatchItem, WatchRequest};

/// Where a pod's output is. The controllers that show their workloads as
/// Pods answer for their own; the API's `pods/NAME/log` asks each in turn.
pub trait PodLogs: Send + Sync {
    /// The file holding `pod`'s output (a stored Pod object), if this
    /// controller runs it. Derived from what the controller itself put on
    /// the pod (its namespace and labels, validated names), never a path
    /// written by the pod's author, so that a pod can only show output of
    /// its own namespace.
    fn log_path(&self, pod: &serde_json::Value) -> Option<std::path::PathBuf>;
}

/// Why a resource call failed, in the Kubernetes API's terms (each maps
/// to one `Status` reason and code).
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// 404 `NotFound`.
    #[error("{} {name:?} not found", kind.resource_name())]
    NotFound {
        /// The kind.
        kind: &'static Kind,
        /// The name asked for.
        name: String,
    },
    /// 409 `AlreadyExists`.
    #[error("{} {name:?} already exists", kind.resource_name())]
    AlreadyExists {
        /// The kind.
        kind: &'static Kind,
        /// The name taken.
        name: String,
    },
    /// 409 `Conflict`: the object changed since the version given.
    #[error(
        "Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your changes to the latest version and try again",
        kind.resource_name()
    )]
    Conflict {
        /// The kind.
        kind: &'static Kind,
        /// The object.
        name: String,
    },
    /// 422 `Invalid`: fields that break the kind's rules.
    #[error("{} {name:?} is invalid: {}", kind.resource_name(), causes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Invalid {
        /// The kind.
        kind: &'static Kind,
        /// The object.
        name: String,
        /// Each field at fault.
        causes: Vec<FieldError>,
    },
    /// 400 `BadRequest`.
    #[error("{message}")]
    BadRequest {
        /// What is wrong.
        message: String,
        /// The fields at fault, if any (unknown fields under Strict).
        causes: Vec<FieldError>,
    },
    /// 415 `UnsupportedMediaType`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A controller's write after it lost its lease (the fencing token is
    /// stale): it must stop; its successor writes from now on.
    #[error("lease {lease:?} has passed to another process (fencing token {token} is stale)")]
    Fenced {
        /// The lease.
        lease: String,
        /// The stale token.
        token: i64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A committed change as the feed delivers it, with its watch-stream line
/// serialized once for every watcher that sends it.
#[derive(Debug)]
pub struct Change {
    /// The change.
    pub event: oxflow_store::ResourceEvent,
    line: std::sync::OnceLock<std::sync::Arc<str>>,
}

impl Change {
    /// Wraps a change.
    pub fn new(event: oxflow_store::ResourceEvent) -> Self {
        Self {
            event,
            line: std::sync::OnceLock::new(),
        }
    }

    /// `{"type":…,"object":…}` and a newline: one watch event as JSON.
    pub fn json_line(&self) -> std::sync::Arc<str> {
        self.line
            .get_or_init(|| {
                format!(
                    "{{\"type\":\"{}\",\"object\":{}}}\n",
                    self.event.event_type.as_str(),
                    self.event.object
                )
                .into()
            })
            .clone()
    }
}

/// Results of resource calls.
pub type Result<T, E = ResourceError> = std::result::Result<T, E>;
