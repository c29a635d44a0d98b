//! The resource model every Oxflow crate shares.
//!
//! Architecture invariant: `core` does no I/O. It holds the vocabulary (ids,
//! namespaces, lifecycle states, timestamps and the [`Workload`] description)
//! so that the store, the runtimes and the controllers agree on it without
//! depending on each other.

mod namespace;
mod state;
mod timestamp;
mod workload;

pub use namespace::{Namespace, NamespaceError};
pub use state::{ExperimentPhase, RunState, TaskState, TrialPhase, UnknownState};
pub use timestamp::Timestamp;
pub use workload::{Mount, Resources, Workload};

/// A new random identifier in the form Kubeflow uses for runs and tasks (UUID text).
///
/// UUIDv7 sorts by creation time, which keeps primary-key indexes append-only.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
