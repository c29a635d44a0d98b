//! KServe model serving for Oxflow.
//!
//! Users bring KServe's own `serving.kserve.io` YAML (`InferenceService`
//! v1beta1, `TrainedModel`, `ServingRuntime` and `ClusterServingRuntime`
//! v1alpha1), so [`spec`] reads that format exactly: it parses it with field
//! paths in every error, applies the defaults KServe's mutating webhook
//! applies, enforces the rules of KServe's validating webhook, and refuses
//! what Oxflow cannot serve with a message that says what to change.
//!
//! [`controller`] makes the stored InferenceServices servable under
//! `oxflow up` (one data plane per revision, KServe's status); [`storage`]
//! fetches `storageUri`s into a local cache; [`runtimes`] loads models by
//! format; [`local`] serves models straight from paths (`oxflow serve`).
//!
//! Architecture invariant: [`spec`] does no I/O; the wire shapes of KServe
//! stay inside it and everything else sees the typed model.

pub mod controller;
pub mod kinds;
pub mod local;
pub mod logs;
pub mod runtimes;
pub mod spec;
pub mod storage;
#[doc(hidden)]
pub mod test_models;
