//! The resource model every Oxflow crate shares.
//!
//! Architecture invariant: `core` does no I/O. It holds the vocabulary (ids,
//! namespaces, lifecycle states, timestamps and the [`Workload`] description)
//! so that the store, the runtimes and the controllers agree on it without
//! depending on each other, and [`spec`], the parsing machinery that every
//! reader of a Kubeflow resource file (Katib, KServe, …) shares.

mod namespace;
pub mod object;
pub mod patch;
pub mod secret;
pub mod selector;
pub mod spec;
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

#[cfg(test)]
mod tests {
    /// The workspace enables serde_json's `float_roundtrip`: without it a
    /// float written by one Oxflow process (or a client) can come back one
    /// ulp off, e.g. a trial's objective or a pipeline's float parameter.
    #[test]
    fn json_floats_round_trip_exactly() {
        for text in [
            "0.10081815462983691",
            "0.1",
            "1e-7",
            "2.2250738585072014e-308",
        ] {
            let std: f64 = text.parse().unwrap();
            let json: f64 = serde_json::from_str(text).unwrap();
            assert_eq!(json.to_bits(), std.to_bits(), "{text}");
            let back: f64 = serde_json::from_str(&serde_json::to_string(&std).unwrap()).unwrap();
            assert_eq!(back.to_bits(), std.to_bits(), "{text}");
        }
    }
}
