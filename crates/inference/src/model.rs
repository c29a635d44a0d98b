//! The interface every runtime implements.

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::error::InferError;
use crate::tensor::Tensor;
use crate::types::{InferRequest, ModelMetadata};

/// A loaded model that answers inference requests.
///
/// Native runtimes (ONNX, trees) compute inline and return a ready future;
/// runtimes in another process (a Python worker, a custom predictor) await
/// their I/O. Implementations are shared between concurrent requests.
pub trait Model: Send + Sync + 'static {
    /// Name, platform and declared inputs and outputs.
    fn metadata(&self) -> &ModelMetadata;

    /// Runs the model. Returns every output the model produces for this
    /// request or only those in `request.outputs` (the data plane filters
    /// and checks names afterwards, so either is fine); the first output is
    /// the model's primary prediction (what V1 `:predict` returns).
    fn infer(&self, request: InferRequest) -> BoxFuture<'_, Result<Vec<Tensor>, InferError>>;

    /// Whether rows of separate requests may be joined into one batch along
    /// the first dimension and split again afterwards (true for tabular
    /// models whose rows are independent).
    fn batchable(&self) -> bool {
        false
    }

    /// The most rows one call accepts, when the model has a limit; the
    /// batcher never joins requests beyond it.
    fn max_batch_size(&self) -> Option<usize> {
        None
    }

    /// The worker processes behind the model, when it runs in several
    /// that can be added or stopped (an autoscaler resizes them); `None`
    /// for models computed in this process.
    fn workers(&self) -> Option<&dyn Workers> {
        None
    }

    /// Answers V1 `:explain` with the explainer's JSON. Models without an
    /// explainer refuse.
    fn explain(&self, body: Bytes) -> BoxFuture<'_, Result<Bytes, InferError>> {
        let _ = body;
        let name = self.metadata().name.clone();
        Box::pin(async move {
            Err(InferError::invalid(format!(
                "model {name} has no explainer"
            )))
        })
    }

    /// For models behind another V1 server (custom predictors, transformers):
    /// the `:predict` body is forwarded as sent, since V1 payloads need not
    /// be tensors. `None` (the default) decodes it into tensors instead.
    fn predict_v1_raw(&self, body: Bytes) -> Option<BoxFuture<'_, Result<Bytes, InferError>>> {
        let _ = body;
        None
    }
}

/// A resizable set of worker processes serving one model.
pub trait Workers: Send + Sync {
    /// The workers serving now and those still starting.
    fn counts(&self) -> WorkerCounts;

    /// Starts or stops workers until there are `count` (at least one).
    /// Returns at once: new workers join as they become ready, and a
    /// stopped worker first answers the request it is serving.
    fn resize(&self, count: usize);
}

/// How many workers a model has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WorkerCounts {
    /// Serving requests.
    pub ready: usize,
    /// Started and loading the model.
    pub starting: usize,
}
