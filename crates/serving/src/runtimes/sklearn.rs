//! scikit-learn models (joblib or pickle) through worker processes running
//! the real scikit-learn.
//!
//! Unpickling runs arbitrary code and needs the very library versions the
//! model was saved with, so this stays in Python, in the user's interpreter.
//! Each worker is one long-lived process that loaded the model once, run
//! as a workload of the runtime (its own process group, killed with
//! Oxflow, its output in a log file); the server talks to it over a Unix
//! socket with the binary tensor layout, so a request costs one round trip
//! and no JSON of the data. Several workers serve concurrent requests; a
//! worker that dies is started again on the next request, and the request
//! that was in flight gets a 500 naming the cause.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use oxflow_core::Workload;
use oxflow_inference::json::{decode_raw, encode_raw, raw_size};
use oxflow_inference::{
    DataType, InferError, InferRequest, Model, ModelMetadata, Tensor, TensorMetadata, WorkerCounts,
    Workers,
};
use oxflow_runtime::Runtime;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::sync::CancellationToken;

/// The worker program, passed to `python -c`.
const WORKER: &str = include_str!("sklearn_worker.py");
/// How long a worker may take to import scikit-learn and load the model.
const STARTUP: Duration = Duration::from_secs(300);

/// How to start workers.
#[derive(Clone)]
pub struct PythonConfig {
    /// The interpreter that has scikit-learn (the user's).
    pub python: PathBuf,
    /// Worker processes per model (at least 1).
    pub workers: usize,
    /// Runs the workers.
    pub runtime: Arc<dyn Runtime>,
    /// Where the workers' output goes (one file per worker).
    pub logs_dir: PathBuf,
}

impl std::fmt::Debug for PythonConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonConfig")
            .field("python", &self.python)
            .field("workers", &self.workers)
            .field("runtime", &self.runtime.name())
            .field("logs_dir", &self.logs_dir)
            .finish()
    }
}

/// A scikit-learn model served by worker processes.
pub struct SklearnModel {
    meta: ModelMetadata,
    pool: Arc<Pool>,
}

/// One worker's place: empty after its worker died, until a request
/// starts another.
type Slot = Arc<tokio::sync::Mutex<Option<Worker>>>;

/// The workers of one model; an autoscaler may resize it.
struct Pool {
    spawn: Spawn,
    /// Replaced whole on a resize, so that a request picks from one
    /// consistent list; a slot taken out stops its worker once the
    /// request it serves is answered (the last reference goes).
    workers: std::sync::RwLock<Arc<[Slot]>>,
    next: AtomicUsize,
    /// Workers started and still loading the model.
    starting: AtomicUsize,
    /// The size last asked for.
    wanted: AtomicUsize,
}

#[derive(Clone)]
struct Spawn {
    name: String,
    python: PathBuf,
    model: PathBuf,
    runtime: Arc<dyn Runtime>,
    logs_dir: PathBuf,
    /// Numbers the workers started (log files, socket names).
    started: Arc<AtomicU64>,
}

struct Worker {
    write: OwnedWriteHalf,
    read: BufReader<OwnedReadHalf>,
    /// How the process ended, once it has (`None` while it runs).
    exit: tokio::sync::watch::Receiver<Option<String>>,
    log_path: PathBuf,
    /// Cancelled when the worker is dropped: the runtime kills it.
    stop: CancellationToken,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[derive(serde::Deserialize)]
struct Ready {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    n_features_in: usize,
    #[serde(default)]
    n_classes: usize,
    #[serde(default)]
    classes_kind: String,
    #[serde(default, rename = "type")]
    kind: String,
}

#[derive(serde::Deserialize)]
struct Reply {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    outputs: Vec<OutputSpec>,
}

#[derive(serde::Deserialize)]
struct OutputSpec {
    name: String,
    #[serde(default)]
    missing: bool,
    #[serde(default)]
    datatype: String,
    #[serde(default)]
    shape: Vec<usize>,
    #[serde(default)]
    size: usize,
}

impl Spawn {
    async fn start(&self) -> Result<(Worker, Ready), String> {
        let n = self.started.fetch_add(1, Ordering::Relaxed);
        // Unix socket paths are short (108 bytes): the temp directory.
        let socket = std::env::temp_dir().join(format!(
            "oxflow-sk-{}-{}.sock",
            std::process::id(),
            SOCKETS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&socket);
        let listener = tokio::net::UnixListener::bind(&socket)
            .map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
        let _cleanup = RemoveOnDrop(socket.clone());
        let name = format!("{}-sklearn-{n}", self.name);
        let log_path = self.logs_dir.join(format!("{name}.log"));
        let workload = Workload {
            name: name.clone(),
            program: self.python.display().to_string(),
            args: vec![
                "-c".into(),
                WORKER.into(),
                self.model.display().to_string(),
                socket.display().to_string(),
            ],
            env: [("PYTHONUNBUFFERED".to_owned(), "1".to_owned())].into(),
            log_path: log_path.clone(),
            ..Default::default()
        };
        let stop = CancellationToken::new();
        let (exit_tx, exit) = tokio::sync::watch::channel(None);
        {
            let runtime = self.runtime.clone();
            let token = stop.clone();
            tokio::spawn(async move {
                let how = match runtime.run(&workload, token).await {
                    Ok(o) => match (o.exit_code, o.signal) {
                        (Some(c), _) => format!("exit status: {c}"),
                        (_, Some(s)) => format!("signal: {s}"),
                        _ => "stopped".into(),
                    },
                    Err(e) => format!("could not run: {e}"),
                };
                let _ = exit_tx.send(Some(how));
            });
        }
        let mut exited = exit.clone();
        let accepted = tokio::select! {
            a = tokio::time::timeout(STARTUP, listener.accept()) => a,
            how = exited.wait_for(|e| e.is_some()) => {
                let how = how.map(|h| h.clone().unwrap_or_default()).unwrap_or_default();
                stop.cancel();
                return Err(format!(
                    "the scikit-learn worker exited before it started ({how}){}",
                    log_tail(&log_path)
                ));
            }
        };
        let stream = match accepted {
            Ok(Ok((stream, _))) => stream,
            Ok(Err(e)) => {
                stop.cancel();
                return Err(format!("the scikit-learn worker did not connect: {e}"));
            }
            Err(_) => {
                stop.cancel();
                return Err(format!(
                    "the scikit-learn worker did not start within {} s{}",
                    STARTUP.as_secs(),
                    log_tail(&log_path)
                ));
            }
        };
        let (read, write) = stream.into_split();
        let mut worker = Worker {
            write,
            read: BufReader::new(read),
            exit,
            log_path,
            stop,
        };
        let (header, _) = match worker.read_frame(|_: &serde_json::Value| 0).await {
            Ok(frame) => frame,
            Err(e) => return Err(worker.died(&e).await),
        };
        let ready: Ready =
            serde_json::from_value(header).map_err(|e| format!("bad worker reply: {e}"))?;
        if let Some(error) = ready.error {
            return Err(error);
        }
        Ok((worker, ready))
    }
}

/// Numbers the sockets of this process.
static SOCKETS: AtomicU64 = AtomicU64::new(0);

/// Removes a socket file once the worker connected (or failed to).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The last lines of a worker's log, for error messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(20)..];
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {}", tail.join("\n"))
    }
}

impl Worker {
    /// Reads one frame: the header, then as many payload bytes as
    /// `payload_size(header)` says.
    async fn read_frame(
        &mut self,
        payload_size: impl Fn(&serde_json::Value) -> usize,
    ) -> std::io::Result<(serde_json::Value, Vec<u8>)> {
        let n = self.read.read_u32_le().await? as usize;
        let mut head = vec![0; n];
        self.read.read_exact(&mut head).await?;
        let header: serde_json::Value = serde_json::from_slice(&head)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let mut payload = vec![0; payload_size(&header)];
        self.read.read_exact(&mut payload).await?;
        Ok((header, payload))
    }

    /// Explains a broken connection: the exit status and the end of the log.
    async fn died(&mut self, error: &std::io::Error) -> String {
        let status =
            match tokio::time::timeout(Duration::from_secs(2), self.exit.wait_for(|e| e.is_some()))
                .await
            {
                Ok(Ok(how)) => how.clone().unwrap_or_default(),
                _ => {
                    self.stop.cancel();
                    format!("no exit status ({error})")
                }
            };
        format!(
            "the scikit-learn worker exited ({status}){}",
            log_tail(&self.log_path)
        )
    }
}

/// Kills the worker when a request is abandoned mid-exchange (a timeout
/// or a client that went away): its reply would otherwise be read as the
/// answer to the next request.
struct InFlight<'a> {
    slot: &'a mut Option<Worker>,
    done: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.done {
            *self.slot = None;
        }
    }
}

impl SklearnModel {
    /// Starts the workers for the model file at `path` and waits until
    /// every one has loaded it; the first failure is the load error.
    pub async fn load(
        name: &str,
        path: &Path,
        config: &PythonConfig,
    ) -> Result<SklearnModel, String> {
        std::fs::create_dir_all(&config.logs_dir)
            .map_err(|e| format!("creating {}: {e}", config.logs_dir.display()))?;
        let spawn = Spawn {
            name: name.into(),
            python: config.python.clone(),
            model: path.to_path_buf(),
            runtime: config.runtime.clone(),
            logs_dir: config.logs_dir.clone(),
            started: Arc::new(AtomicU64::new(0)),
        };
        // Every worker loads the model now, in parallel, so the first
        // concurrent requests do not pay for interpreter start-up.
        let started =
            futures::future::join_all((0..config.workers.max(1)).map(|_| spawn.start())).await;
        let mut workers: Vec<Slot> = Vec::with_capacity(started.len());
        let mut ready = None;
        for result in started {
            let (worker, info) = result?;
            ready.get_or_insert(info);
            workers.push(Arc::new(tokio::sync::Mutex::new(Some(worker))));
        }
        let ready = ready.ok_or("no worker started")?;
        let meta = metadata(name, &ready);
        tracing::info!(model = %name, kind = %ready.kind, workers = workers.len(), "scikit-learn model loaded.");
        Ok(SklearnModel {
            meta,
            pool: Arc::new(Pool {
                spawn,
                wanted: AtomicUsize::new(workers.len()),
                workers: std::sync::RwLock::new(workers.into()),
                next: AtomicUsize::new(0),
                starting: AtomicUsize::new(0),
            }),
        })
    }

    async fn call(&self, request: InferRequest) -> Result<Vec<Tensor>, InferError> {
        let workers = self
            .pool
            .workers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let n = workers.len();
        let start = self.pool.next.fetch_add(1, Ordering::Relaxed) % n;
        // A free worker if there is one, else wait for ours in turn.
        let mut guard = None;
        for i in 0..n {
            if let Ok(g) = workers[(start + i) % n].clone().try_lock_owned() {
                guard = Some(g);
                break;
            }
        }
        let mut guard = match guard {
            Some(g) => g,
            None => workers[start].clone().lock_owned().await,
        };
        drop(workers);
        if guard.is_none() {
            let (worker, _) = self.pool.spawn.start().await.map_err(|e| {
                InferError::internal(format!(
                    "model {}: restarting the worker failed: {e}",
                    self.meta.name
                ))
            })?;
            *guard = Some(worker);
        }
        let mut in_flight = InFlight {
            slot: &mut guard,
            done: false,
        };
        let result = exchange(
            in_flight.slot.as_mut().expect("worker started above"),
            &request,
        )
        .await;
        match result {
            Ok(reply) => {
                in_flight.done = true;
                reply
            }
            Err(e) => {
                let why = match in_flight.slot.as_mut() {
                    Some(w) => w.died(&e).await,
                    None => e.to_string(),
                };
                // Leave the slot empty (the guard's drop): the next request
                // starts a fresh worker.
                Err(InferError::internal(format!(
                    "model {}: {why}",
                    self.meta.name
                )))
            }
        }
    }
}

/// Sends one request and reads its reply. An `Err` means the pipe broke.
async fn exchange(
    worker: &mut Worker,
    request: &InferRequest,
) -> std::io::Result<Result<Vec<Tensor>, InferError>> {
    let mut payload = Vec::new();
    let inputs: Vec<serde_json::Value> = request
        .inputs
        .iter()
        .map(|t| {
            let before = payload.len();
            encode_raw(&t.data, &mut payload);
            serde_json::json!({
                "name": t.name,
                "datatype": t.datatype().as_str(),
                "shape": t.shape,
                "size": payload.len() - before,
            })
        })
        .collect();
    let outputs: Vec<&str> = request.outputs.iter().map(|o| o.name.as_str()).collect();
    let header = serde_json::to_vec(&serde_json::json!({ "inputs": inputs, "outputs": outputs }))?;
    let mut frame = Vec::with_capacity(4 + header.len() + payload.len());
    frame.extend_from_slice(&(header.len() as u32).to_le_bytes());
    frame.extend_from_slice(&header);
    frame.extend_from_slice(&payload);
    worker.write.write_all(&frame).await?;
    worker.write.flush().await?;
    let (header, payload) = worker
        .read_frame(|h| {
            h.get("outputs")
                .and_then(|o| o.as_array())
                .map(|o| {
                    o.iter()
                        .filter_map(|t| t.get("size").and_then(|s| s.as_u64()))
                        .sum::<u64>() as usize
                })
                .unwrap_or(0)
        })
        .await?;
    let reply: Reply = serde_json::from_value(header)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    if let Some(error) = reply.error {
        return Ok(Err(match reply.kind.as_deref() {
            Some("invalid") => InferError::invalid(error),
            _ => InferError::internal(error),
        }));
    }
    let mut tensors = Vec::with_capacity(reply.outputs.len());
    let mut pos = 0;
    for spec in reply.outputs.into_iter().filter(|s| !s.missing) {
        let bytes = payload.get(pos..pos + spec.size).unwrap_or_default();
        pos += spec.size;
        let datatype = DataType::parse(&spec.datatype).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad datatype {}", spec.datatype),
            )
        })?;
        let count = oxflow_inference::tensor::element_count(&spec.shape).unwrap_or(0);
        let data = decode_raw(bytes, datatype, count)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        debug_assert_eq!(raw_size(&data), spec.size);
        match Tensor::new(spec.name, spec.shape, data) {
            Ok(t) => tensors.push(t),
            Err(e) => return Ok(Err(e)),
        }
    }
    Ok(Ok(tensors))
}

fn metadata(name: &str, ready: &Ready) -> ModelMetadata {
    let features = if ready.n_features_in > 0 {
        ready.n_features_in as i64
    } else {
        -1
    };
    let label_type = match ready.classes_kind.as_str() {
        "i" | "u" => DataType::Int64,
        "b" => DataType::Bool,
        "f" => DataType::Fp64,
        "" => DataType::Fp64,
        _ => DataType::Bytes,
    };
    let mut outputs = Vec::new();
    for m in &ready.methods {
        let (datatype, shape) = match m.as_str() {
            "predict" => (label_type, vec![-1]),
            "predict_proba" => (DataType::Fp64, vec![-1, ready.n_classes.max(1) as i64]),
            _ => (DataType::Fp64, vec![-1, -1]),
        };
        outputs.push(TensorMetadata {
            name: m.clone(),
            datatype,
            shape,
        });
    }
    ModelMetadata {
        name: name.into(),
        versions: vec![],
        platform: "sklearn_joblib".into(),
        inputs: vec![TensorMetadata {
            name: "input-0".into(),
            datatype: DataType::Fp64,
            shape: vec![-1, features],
        }],
        outputs,
    }
}

impl Model for SklearnModel {
    fn metadata(&self) -> &ModelMetadata {
        &self.meta
    }

    fn infer(&self, request: InferRequest) -> BoxFuture<'_, Result<Vec<Tensor>, InferError>> {
        Box::pin(self.call(request))
    }

    fn batchable(&self) -> bool {
        true
    }

    fn workers(&self) -> Option<&dyn Workers> {
        Some(self)
    }
}

impl Workers for SklearnModel {
    fn counts(&self) -> WorkerCounts {
        WorkerCounts {
            ready: self
                .pool
                .workers
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .len(),
            starting: self.pool.starting.load(Ordering::Acquire),
        }
    }

    fn resize(&self, count: usize) {
        let count = count.max(1);
        let pool = &self.pool;
        pool.wanted.store(count, Ordering::Release);
        let ready = {
            let mut workers = pool.workers.write().unwrap_or_else(|e| e.into_inner());
            if count < workers.len() {
                *workers = workers[..count].to_vec().into();
            }
            workers.len()
        };
        let starting = pool.starting.load(Ordering::Acquire);
        if count <= ready + starting {
            return;
        }
        let more = count - ready - starting;
        pool.starting.fetch_add(more, Ordering::AcqRel);
        let pool = pool.clone();
        let name = self.meta.name.clone();
        tokio::spawn(async move {
            let started = futures::future::join_all((0..more).map(|_| pool.spawn.start())).await;
            for result in started {
                pool.starting.fetch_sub(1, Ordering::AcqRel);
                match result {
                    Ok((worker, _)) => {
                        let mut workers = pool.workers.write().unwrap_or_else(|e| e.into_inner());
                        // Not wanted any more (scaled in meanwhile): dropped, so stopped.
                        if workers.len() < pool.wanted.load(Ordering::Acquire) {
                            let mut grown = workers.to_vec();
                            grown.push(Arc::new(tokio::sync::Mutex::new(Some(worker))));
                            *workers = grown.into();
                        }
                    }
                    Err(e) => {
                        tracing::warn!(model = %name, error = %e, "Could not start another scikit-learn worker.");
                    }
                }
            }
        });
    }
}
