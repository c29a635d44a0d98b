//! KServe model serving for Oxflow.
//!
//! Users bring KServe's own `serving.kserve.io` YAML (`InferenceService`
//! v1beta1, `TrainedModel`, `ServingRuntime` and `ClusterServingRuntime`
//! v1alpha1), so [`spec`] reads that format exactly: it parses it with field
//! paths in every error, applies the defaults KServe's mutating webhook
//! applies, enforces the rules of KServe's validating webhook, and refuses
//! what Oxflow cannot serve with a message that says what to change.
//!
//! The crate will also hold the InferenceService controller (one reconcile
//! loop per service over the store and the runtime), the inference router
//! (V1/V2 REST and gRPC, canary splits, batching, payload logging) and model
//! storage (fetching `storageUri`s into a local cache).
//!
//! Architecture invariant: [`spec`] does no I/O; the wire shapes of KServe
//! stay inside it and everything else sees the typed model.

pub mod local;
pub mod runtimes;
pub mod spec;
pub mod storage;
