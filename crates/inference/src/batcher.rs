//! Adaptive server-side batching (KServe's `batcher`, MLServer's adaptive
//! batching): concurrent requests to one model are joined along their first
//! dimension, run once, and the outputs are split back.
//!
//! A batch closes when it holds `max_batch_size` rows or `max_latency` has
//! passed since its first request, whichever comes first. Only requests
//! that agree on input names, datatypes, trailing dimensions and requested
//! outputs are joined; the others wait for a batch of their own. Models
//! whose rows are not independent ([`Model::batchable`] false) are not
//! wrapped.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use crate::error::InferError;
use crate::metrics::ModelMetrics;
use crate::model::Model;
use crate::tensor::{Tensor, TensorData};
use crate::types::{InferRequest, ModelMetadata};

/// When to close a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Rows in one batch at most (KServe's `maxBatchSize`, default 32).
    pub max_batch_size: usize,
    /// Longest a request waits for others (KServe's `maxLatency`).
    pub max_latency: Duration,
}

/// Requests waiting for the batcher beyond this are refused (503).
const QUEUE_LIMIT: usize = 8192;

struct Pending {
    request: InferRequest,
    rows: usize,
    reply: oneshot::Sender<Result<Vec<Tensor>, InferError>>,
}

/// A model behind a batcher; itself a [`Model`].
pub struct Batched {
    inner: Arc<dyn Model>,
    queue: mpsc::Sender<Pending>,
}

impl Batched {
    /// Wraps `inner`; the batching task runs on the current Tokio runtime
    /// and ends when the returned model is dropped.
    pub fn new(
        inner: Arc<dyn Model>,
        config: BatchConfig,
        metrics: Option<Arc<ModelMetrics>>,
    ) -> Batched {
        let (tx, rx) = mpsc::channel(QUEUE_LIMIT);
        let mut config = config;
        if let Some(limit) = inner.max_batch_size() {
            config.max_batch_size = config.max_batch_size.min(limit.max(1));
        }
        tokio::spawn(collect(inner.clone(), config, rx, metrics));
        Batched { inner, queue: tx }
    }
}

/// The first dimension shared by every input, the batch's row count.
fn rows_of(request: &InferRequest) -> Result<usize, InferError> {
    let mut rows = None;
    for t in &request.inputs {
        let r = *t.shape.first().ok_or_else(|| {
            InferError::invalid(format!(
                "input '{}' is a scalar; batching needs a first (row) dimension",
                t.name
            ))
        })?;
        match rows {
            None => rows = Some(r),
            Some(prev) if prev != r => {
                return Err(InferError::invalid(format!(
                    "inputs disagree on the number of rows ({prev} and {r} for '{}')",
                    t.name
                )));
            }
            _ => {}
        }
    }
    rows.ok_or_else(|| InferError::invalid("the request has no inputs"))
}

/// What two requests must share to be joined.
fn signature(request: &InferRequest) -> Vec<(String, crate::tensor::DataType, Vec<usize>)> {
    let mut sig: Vec<_> = request
        .inputs
        .iter()
        .map(|t| (t.name.clone(), t.datatype(), t.shape[1..].to_vec()))
        .collect();
    sig.extend(request.outputs.iter().map(|o| {
        (
            format!("out:{}", o.name),
            crate::tensor::DataType::Bytes,
            vec![],
        )
    }));
    sig
}

async fn collect(
    model: Arc<dyn Model>,
    config: BatchConfig,
    mut rx: mpsc::Receiver<Pending>,
    metrics: Option<Arc<ModelMetrics>>,
) {
    let mut carry: Vec<Pending> = Vec::new();
    loop {
        // Start a batch with a leftover request, or wait for a new one.
        let first = match carry.pop() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let sig = signature(&first.request);
        let mut rows = first.rows;
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + config.max_latency;
        // Leftovers that fit join first.
        let mut i = 0;
        while i < carry.len() {
            if rows + carry[i].rows <= config.max_batch_size && signature(&carry[i].request) == sig
            {
                let p = carry.swap_remove(i);
                rows += p.rows;
                batch.push(p);
            } else {
                i += 1;
            }
        }
        while rows < config.max_batch_size {
            let next = match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(p)) => p,
                Ok(None) | Err(_) => break,
            };
            if rows + next.rows <= config.max_batch_size && signature(&next.request) == sig {
                rows += next.rows;
                batch.push(next);
            } else {
                carry.push(next);
                if rows + carry.last().map_or(0, |p| p.rows) > config.max_batch_size {
                    // Full for this signature: run what we have.
                    break;
                }
            }
        }
        if let Some(m) = &metrics {
            m.batch(rows);
        }
        let model = model.clone();
        tokio::spawn(run_batch(model, batch, rows));
    }
}

async fn run_batch(model: Arc<dyn Model>, mut batch: Vec<Pending>, rows: usize) {
    if batch.len() == 1 {
        let p = batch.pop().expect("one request");
        let _ = p.reply.send(model.infer(p.request).await);
        return;
    }
    // Join inputs along the first dimension.
    let template = &batch[0].request;
    let mut inputs: Vec<Tensor> = template
        .inputs
        .iter()
        .map(|t| Tensor {
            name: t.name.clone(),
            shape: std::iter::once(rows)
                .chain(t.shape[1..].iter().copied())
                .collect(),
            data: TensorData::with_capacity(t.datatype(), t.data.len() / t.shape[0].max(1) * rows),
            parameters: t.parameters.clone(),
        })
        .collect();
    for p in &batch {
        for (joined, t) in inputs.iter_mut().zip(&p.request.inputs) {
            if let Err(e) = joined.data.extend_from(&t.data) {
                fail_all(batch, e);
                return;
            }
        }
    }
    let merged = InferRequest {
        id: None,
        parameters: template.parameters.clone(),
        inputs,
        outputs: template.outputs.clone(),
    };
    let outputs = match model.infer(merged).await {
        Ok(o) => o,
        Err(e) => {
            fail_all(batch, e);
            return;
        }
    };
    if let Some(bad) = outputs.iter().find(|t| t.shape.first() != Some(&rows)) {
        // Not row-shaped: the outputs cannot be split, so each request runs
        // on its own instead.
        tracing::debug!(output = %bad.name, "Output is not row-shaped; running the batch's requests one by one.");
        for p in batch {
            let _ = p.reply.send(model.infer(p.request).await);
        }
        return;
    }
    let mut start = 0;
    for p in batch {
        let end = start + p.rows;
        let parts = outputs
            .iter()
            .map(|t| {
                let per_row = t.data.len() / rows.max(1);
                Tensor {
                    name: t.name.clone(),
                    shape: std::iter::once(p.rows)
                        .chain(t.shape[1..].iter().copied())
                        .collect(),
                    data: t.data.slice(start * per_row..end * per_row),
                    parameters: t.parameters.clone(),
                }
            })
            .collect();
        let _ = p.reply.send(Ok(parts));
        start = end;
    }
}

fn fail_all(batch: Vec<Pending>, error: InferError) {
    for p in batch {
        let _ = p.reply.send(Err(error.clone()));
    }
}

impl Model for Batched {
    fn metadata(&self) -> &ModelMetadata {
        self.inner.metadata()
    }

    fn infer(&self, request: InferRequest) -> BoxFuture<'_, Result<Vec<Tensor>, InferError>> {
        Box::pin(async move {
            let rows = rows_of(&request)?;
            let (tx, rx) = oneshot::channel();
            self.queue
                .try_send(Pending {
                    request,
                    rows,
                    reply: tx,
                })
                .map_err(|e| match e {
                    mpsc::error::TrySendError::Full(_) => InferError::Overloaded(format!(
                        "model {} has {QUEUE_LIMIT} requests waiting for its batcher; retry later",
                        self.inner.metadata().name
                    )),
                    mpsc::error::TrySendError::Closed(_) => {
                        InferError::internal("the batcher stopped")
                    }
                })?;
            rx.await
                .map_err(|_| InferError::internal("the batcher dropped the request"))?
        })
    }

    fn batchable(&self) -> bool {
        true
    }

    fn workers(&self) -> Option<&dyn crate::model::Workers> {
        self.inner.workers()
    }

    fn max_batch_size(&self) -> Option<usize> {
        self.inner.max_batch_size()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::tensor::DataType;
    use crate::types::TensorMetadata;

    /// Doubles its input and records the row count of every call.
    struct Double {
        meta: ModelMetadata,
        calls: Mutex<Vec<usize>>,
    }

    impl Model for Double {
        fn metadata(&self) -> &ModelMetadata {
            &self.meta
        }
        fn infer(&self, request: InferRequest) -> BoxFuture<'_, Result<Vec<Tensor>, InferError>> {
            let x = &request.inputs[0];
            self.calls.lock().unwrap().push(x.shape[0]);
            let data = x.data.to_f32().unwrap().iter().map(|v| v * 2.0).collect();
            let out = Tensor::new("y", x.shape.clone(), TensorData::Fp32(data));
            Box::pin(std::future::ready(out.map(|t| vec![t])))
        }
    }

    fn double() -> Arc<Double> {
        Arc::new(Double {
            meta: ModelMetadata {
                name: "double".into(),
                versions: vec![],
                platform: "test".into(),
                inputs: vec![TensorMetadata {
                    name: "x".into(),
                    datatype: DataType::Fp32,
                    shape: vec![-1, 2],
                }],
                outputs: vec![],
            },
            calls: Mutex::new(vec![]),
        })
    }

    fn request(rows: usize, base: f32) -> InferRequest {
        let data = (0..rows * 2).map(|i| base + i as f32).collect();
        InferRequest {
            inputs: vec![Tensor::new("x", vec![rows, 2], TensorData::Fp32(data)).unwrap()],
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_share_one_call_and_get_their_own_rows() {
        let inner = double();
        let batched = Arc::new(Batched::new(
            inner.clone(),
            BatchConfig {
                max_batch_size: 8,
                max_latency: Duration::from_millis(50),
            },
            None,
        ));
        let tasks: Vec<_> = (0..3)
            .map(|i| {
                let b = batched.clone();
                tokio::spawn(async move { b.infer(request(i + 1, 100.0 * i as f32)).await })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            let out = t.await.unwrap().unwrap();
            let rows = i + 1;
            assert_eq!(out[0].shape, vec![rows, 2]);
            let want: Vec<f32> = (0..rows * 2)
                .map(|j| 2.0 * (100.0 * i as f32 + j as f32))
                .collect();
            assert_eq!(out[0].data, TensorData::Fp32(want));
        }
        assert_eq!(*inner.calls.lock().unwrap(), vec![6]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_runs_without_waiting_for_the_latency() {
        let inner = double();
        let batched = Arc::new(Batched::new(
            inner.clone(),
            BatchConfig {
                max_batch_size: 4,
                max_latency: Duration::from_secs(3600),
            },
            None,
        ));
        let a = tokio::spawn({
            let b = batched.clone();
            async move { b.infer(request(2, 0.0)).await }
        });
        let b2 = tokio::spawn({
            let b = batched.clone();
            async move { b.infer(request(2, 10.0)).await }
        });
        // With the clock paused, the hour-long latency would never pass
        // unless the batch closed on size.
        a.await.unwrap().unwrap();
        b2.await.unwrap().unwrap();
        assert_eq!(*inner.calls.lock().unwrap(), vec![4]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_request_runs_after_the_latency_and_mismatches_run_apart() {
        let inner = double();
        let batched = Arc::new(Batched::new(
            inner.clone(),
            BatchConfig {
                max_batch_size: 32,
                max_latency: Duration::from_millis(10),
            },
            None,
        ));
        let odd = InferRequest {
            inputs: vec![
                Tensor::new("x", vec![1, 3], TensorData::Fp32(vec![1.0, 2.0, 3.0])).unwrap(),
            ],
            ..Default::default()
        };
        let (r1, r2) = tokio::join!(batched.infer(request(1, 0.0)), batched.infer(odd));
        assert_eq!(r1.unwrap()[0].shape, vec![1, 2]);
        assert_eq!(r2.unwrap()[0].data, TensorData::Fp32(vec![2.0, 4.0, 6.0]));
        let mut calls = inner.calls.lock().unwrap().clone();
        calls.sort();
        assert_eq!(calls, vec![1, 1]);
        let err = batched.infer(InferRequest::default()).await.unwrap_err();
        assert!(err.to_string().contains("no inputs"));
    }
}
