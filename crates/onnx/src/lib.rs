//! The ONNX runtime: serves `.onnx` models through
//! [`oxflow_inference::Model`], computing with tract (pure Rust, no
//! native onnxruntime).
//!
//! A model is parsed, typed and optimised once at load; requests then run the
//! one optimised plan. What this crate adds to tract:
//!
//! * **Symbolic batch dimension.** Exporters leave the row count open:
//!   skl2onnx writes `[None, 20]` (a dimension with neither value nor
//!   name), others a named `dim_param` such as `N`. Open dimensions become
//!   tract symbols (unnamed first dimensions all share the symbol `batch`),
//!   so the graph is typed and optimised once and the same plan serves every
//!   batch size; the symbols are bound per call from the request's shapes.
//!   Measured against plans concretised per batch size, the symbolic plan
//!   costs a few µs per call on small models and nothing on large ones, and
//!   it needs no per-size compilation or memory.
//! * **scikit-learn exports.** `ZipMap` (skl2onnx's default classifier
//!   output, a sequence of maps) is stripped at load: its output name then
//!   carries the `[N, classes]` probability tensor, exactly as if the model
//!   had been exported with `options={'zipmap': False}`. `Scaler` (which
//!   tract lacks) is wired from tract's arithmetic in `ops`;
//!   `TreeEnsembleClassifier` and `TreeEnsembleRegressor` (tract has no
//!   regressor, and its classifier is slow and mislabels binary forests)
//!   are implemented in `trees`; string-labelled `LinearClassifier`s,
//!   which tract cannot type, get integer labels mapped back to strings by
//!   a `CategoryMapper` (`rewrite`).
//! * **Linear models without tract.** Graphs made only of linear ONNX-ML
//!   operators (`LinearClassifier`, `LinearRegressor`, `Scaler`, an L1
//!   `Normalizer`, no-op casts: what skl2onnx writes for linear models and
//!   their scalers) are evaluated by `linear` instead of tract's plan, whose
//!   per-call bookkeeping costs more than the arithmetic and than the HTTP
//!   path around it. [`OnnxModel::engine`] says which path a model took.
//! * **Protocol mapping.** Request tensors are matched to inputs by name
//!   (a single-input model accepts a single tensor under any name), checked
//!   against the declared ranks and fixed dimensions, and converted between
//!   numeric datatypes without silent truncation.
//!
//! Architecture Invariant: this crate knows ONNX and tract, not HTTP or
//! gRPC; it sees requests only as [`oxflow_inference::Tensor`]s.
//!
//! Architecture Invariant: inference computes inline on the caller's thread
//! (no thread pool of its own); concurrent requests each take a tract
//! execution state from a small pool (the linear path needs none).
//!
//! Architecture Invariant: which path evaluates a model is invisible on the
//! wire: the same metadata, datatypes and shapes, and the same answers
//! (`linear`'s docs list the few inputs where tract strayed from
//! onnxruntime and the linear path follows onnxruntime).

mod convert;
mod error;
mod linear;
mod ops;
mod rewrite;
mod trees;

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use oxflow_inference::{
    DataType, InferError, InferRequest, Model, ModelMetadata, Tensor, TensorMetadata,
};
use tracing::{debug, info};
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::{
    DatumType, Framework, InferenceFact, InferenceModelExt, Symbol, SymbolScope, TDim, TValue,
    TVec, TypedModel, TypedSimplePlan, TypedSimpleState,
};
use tract_onnx::tract_hir::infer::Factoid;

pub use error::OnnxError;

/// The platform string V2 metadata reports, as Triton spells it.
pub const PLATFORM: &str = "onnx_onnxv1";

/// The name of the symbol given to open first dimensions.
const BATCH_SYMBOL: &str = "batch";

/// How to serve a model.
#[derive(Debug, Clone, Default)]
pub struct OnnxOptions {
    /// Largest first dimension (batch size) a request may have on a
    /// batchable model; larger requests are refused with a 400 that states
    /// the limit. `None` accepts any size.
    pub max_batch_size: Option<usize>,
}

/// Which code evaluates a loaded model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// tract's optimised plan.
    Tract,
    /// Oxflow's own evaluator of linear ONNX-ML graphs (scikit-learn's
    /// linear models and their scalers).
    Linear,
}

/// A loaded, optimised ONNX model, ready to answer concurrent requests.
pub struct OnnxModel {
    metadata: ModelMetadata,
    inputs: Vec<InputSpec>,
    evaluator: Evaluator,
    /// The dimension rows are counted along, when the model is batchable:
    /// the first dimension of every input and output.
    batch: Option<Symbol>,
    max_batch_size: Option<usize>,
}

enum Evaluator {
    Tract(TractPlan),
    Linear(linear::LinearGraph),
}

struct TractPlan {
    output_names: Vec<String>,
    plan: Arc<TypedSimplePlan>,
    /// Idle execution states. A state holds per-run scratch (resolved
    /// symbols, intermediate values), so one request uses one at a time;
    /// reusing them saves building a fresh state per call.
    states: Mutex<Vec<TypedSimpleState>>,
    /// How many idle states to keep; more are dropped after use.
    max_idle_states: usize,
}

/// One graph input as requests must provide it.
#[derive(Debug)]
struct InputSpec {
    name: String,
    datum_type: DatumType,
    dims: Vec<Dim>,
}

#[derive(Debug, Clone, PartialEq)]
enum Dim {
    Fixed(usize),
    /// Bound per request; inputs that share a symbol must agree.
    Symbol(Symbol),
}

impl Dim {
    fn wire(&self) -> i64 {
        match self {
            Dim::Fixed(n) => *n as i64,
            Dim::Symbol(_) => -1,
        }
    }
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("metadata", &self.metadata)
            .field("engine", &self.engine())
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl OnnxModel {
    /// Loads the `.onnx` file at `path` as the model `name`. Tensors stored
    /// as external data are resolved relative to the file's directory.
    pub fn load(name: &str, path: &Path, options: &OnnxOptions) -> Result<OnnxModel, OnnxError> {
        let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
            path: path.to_owned(),
            source,
        })?;
        let dir = path.parent().and_then(Path::to_str);
        Self::build(name, &bytes, dir, options)
    }

    /// Loads a model from the bytes of an `.onnx` file.
    pub fn from_bytes(
        name: &str,
        bytes: &[u8],
        options: &OnnxOptions,
    ) -> Result<OnnxModel, OnnxError> {
        Self::build(name, bytes, None, options)
    }

    fn build(
        name: &str,
        bytes: &[u8],
        dir: Option<&str>,
        options: &OnnxOptions,
    ) -> Result<OnnxModel, OnnxError> {
        // tract validates what it reads, but it is a large parser fed with
        // user uploads: a panic deep inside it must fail this load, not the
        // server.
        match catch_unwind(AssertUnwindSafe(|| {
            let started = std::time::Instant::now();
            let proto = framework()
                .proto_model_for_read(&mut &*bytes)
                .map_err(|e| OnnxError::NotOnnx {
                    name: name.to_owned(),
                    reason: format!("{e:#}"),
                })?;
            Self::build_proto(name, proto, dir, options, true, started)
        })) {
            Ok(result) => result,
            Err(panic) => Err(OnnxError::Invalid {
                name: name.to_owned(),
                reason: format!("the ONNX parser crashed: {}", panic_message(&panic)),
            }),
        }
    }

    /// Builds the model of a decoded file; `allow_linear: false` keeps the
    /// graph on tract (tests compare the two paths on the same graph).
    fn build_proto(
        name: &str,
        mut proto: ModelProto,
        dir: Option<&str>,
        options: &OnnxOptions,
        allow_linear: bool,
        started: std::time::Instant,
    ) -> Result<OnnxModel, OnnxError> {
        let onnx = framework();
        let not_onnx = |reason: String| OnnxError::NotOnnx {
            name: name.to_owned(),
            reason,
        };
        // Protobuf decoding is lenient (unknown fields are skipped), so some
        // non-ONNX files decode into an empty message.
        let Some(graph) = proto.graph.as_mut() else {
            return Err(not_onnx("it contains no graph".into()));
        };
        if graph.output.is_empty() {
            return Err(not_onnx("its graph has no outputs".into()));
        }
        let stripped = rewrite::strip_zipmaps(name, graph)?;
        if allow_linear {
            match linear::LinearGraph::recognise(graph) {
                Ok(linear) => {
                    return Ok(Self::linear(name, linear, options, &stripped, started));
                }
                Err(why) => debug!(model = %name, why = %why, "Not a linear graph; using tract."),
            }
        }
        rewrite::index_string_labels(graph);
        let mut unsupported = Vec::new();
        rewrite::unsupported_operators(graph, &onnx.op_register, &mut unsupported);
        if !unsupported.is_empty() {
            return Err(OnnxError::UnsupportedOperators {
                name: name.to_owned(),
                operators: unsupported,
            });
        }
        let output_names: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();

        let invalid = |e: tract_onnx::prelude::TractError| OnnxError::Invalid {
            name: name.to_owned(),
            reason: format!("{e:#}"),
        };
        let unsupported = |reason: String| OnnxError::Unsupported {
            name: name.to_owned(),
            reason,
        };
        let parsed = onnx.parse(&proto, dir).map_err(invalid)?;
        if !parsed.unresolved_inputs.is_empty() {
            return Err(not_onnx(format!(
                "its graph uses tensors that nothing defines: {}",
                parsed.unresolved_inputs.join(", ")
            )));
        }
        let mut model = parsed.model;

        // Give every open dimension a symbol so that tract can type the
        // graph once for all request shapes.
        let batch = model.symbols.sym(BATCH_SYMBOL);
        let mut input_names = Vec::new();
        for (ix, outlet) in model
            .input_outlets()
            .map_err(invalid)?
            .to_vec()
            .into_iter()
            .enumerate()
        {
            let input_name = model.node(outlet.node).name.clone();
            let fact = model.input_fact(ix).map_err(invalid)?.clone();
            let dt = fact.datum_type.concretize().ok_or_else(|| {
                unsupported(format!("input {input_name} has no declared element type"))
            })?;
            if fact.shape.is_open() {
                return Err(unsupported(format!(
                    "input {input_name} has no declared shape; re-export it with a shape (use None for a variable dimension)"
                )));
            }
            let dims: TVec<TDim> = fact
                .shape
                .dims()
                .enumerate()
                .map(|(axis, d)| match d.concretize() {
                    Some(d) => d,
                    None if axis == 0 => TDim::Sym(batch.clone()),
                    None => TDim::Sym(model.symbols.sym(&format!("{input_name}_{axis}"))),
                })
                .collect();
            model
                .set_input_fact(ix, InferenceFact::dt_shape(dt, dims))
                .map_err(invalid)?;
            input_names.push(input_name);
        }

        let typed: TypedModel = model.into_optimized().map_err(invalid)?;
        let mut inputs = Vec::new();
        for (ix, input_name) in input_names.into_iter().enumerate() {
            let fact = typed.input_fact(ix).map_err(invalid)?;
            let dims = fact
                .shape
                .iter()
                .map(|d| match d {
                    TDim::Val(n) if *n >= 0 => Ok(Dim::Fixed(*n as usize)),
                    TDim::Sym(s) => Ok(Dim::Symbol(s.clone())),
                    other => Err(unsupported(format!(
                        "input {input_name} has dimension {other}; only numbers and plain symbols are supported"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            inputs.push(InputSpec {
                name: input_name,
                datum_type: fact.datum_type,
                dims,
            });
        }
        // The batch dimension: the first dimension of the first input, when
        // it is variable (named by the exporter or given `batch` above).
        let batch = match inputs.first().and_then(|i| i.dims.first()) {
            Some(Dim::Symbol(s)) => Some(s.clone()),
            _ => None,
        };
        let mut outputs_meta = Vec::new();
        let mut batch_outputs = true;
        for (ix, output_name) in output_names.iter().enumerate() {
            let fact = typed.output_fact(ix).map_err(invalid)?;
            let datatype = convert::wire_datatype(fact.datum_type).ok_or_else(|| {
                unsupported(format!(
                    "output {output_name} has element type {:?}, which the inference protocol cannot carry",
                    fact.datum_type
                ))
            })?;
            batch_outputs &= batch
                .as_ref()
                .is_some_and(|b| fact.shape.iter().next() == Some(&TDim::Sym(b.clone())));
            outputs_meta.push(TensorMetadata {
                name: output_name.clone(),
                datatype,
                shape: fact
                    .shape
                    .iter()
                    .map(|d| d.as_i64().unwrap_or(-1))
                    .collect(),
            });
        }
        let mut inputs_meta = Vec::new();
        for input in &inputs {
            let datatype = convert::wire_datatype(input.datum_type)
                .filter(|_| input.datum_type != DatumType::TDim)
                .ok_or_else(|| {
                    unsupported(format!(
                        "input {} has element type {:?}, which the inference protocol cannot carry",
                        input.name, input.datum_type
                    ))
                })?;
            inputs_meta.push(TensorMetadata {
                name: input.name.clone(),
                datatype,
                shape: input.dims.iter().map(Dim::wire).collect(),
            });
        }
        let batch = batch.filter(|b| {
            batch_outputs
                && inputs
                    .iter()
                    .all(|i| i.dims.first() == Some(&Dim::Symbol(b.clone())))
        });

        let plan = TypedSimplePlan::new(typed).map_err(invalid)?;
        let max_idle_states = std::thread::available_parallelism()
            .map_or(4, |n| n.get())
            .saturating_mul(2);
        let model = OnnxModel {
            metadata: ModelMetadata {
                name: name.to_owned(),
                versions: Vec::new(),
                platform: PLATFORM.to_owned(),
                inputs: inputs_meta,
                outputs: outputs_meta,
            },
            inputs,
            evaluator: Evaluator::Tract(TractPlan {
                output_names,
                plan,
                states: Mutex::new(Vec::new()),
                max_idle_states,
            }),
            batch,
            max_batch_size: options.max_batch_size,
        };
        model.log_loaded(&stripped, started);
        Ok(model)
    }

    /// A model evaluated by the linear path. Its metadata is what tract
    /// reports for the same graph: the input's declared type, `[-1, F]`
    /// with the first dimension the batch, labels `[-1]` and floats
    /// `[-1, columns]`.
    fn linear(
        name: &str,
        graph: linear::LinearGraph,
        options: &OnnxOptions,
        stripped: &[String],
        started: std::time::Instant,
    ) -> OnnxModel {
        let batch = SymbolScope::default().sym(&graph.batch);
        let input = InputSpec {
            name: graph.input.clone(),
            datum_type: graph.input_type,
            dims: vec![Dim::Symbol(batch.clone()), Dim::Fixed(graph.features)],
        };
        let inputs_meta = vec![TensorMetadata {
            name: input.name.clone(),
            // Every input type `linear` accepts travels on the wire.
            datatype: convert::wire_datatype(input.datum_type).unwrap_or(DataType::Fp32),
            shape: input.dims.iter().map(Dim::wire).collect(),
        }];
        let outputs_meta = graph
            .output_metadata()
            .map(|(name, datatype, shape)| TensorMetadata {
                name: name.to_owned(),
                datatype,
                shape,
            })
            .collect();
        let model = OnnxModel {
            metadata: ModelMetadata {
                name: name.to_owned(),
                versions: Vec::new(),
                platform: PLATFORM.to_owned(),
                inputs: inputs_meta,
                outputs: outputs_meta,
            },
            inputs: vec![input],
            evaluator: Evaluator::Linear(graph),
            batch: Some(batch),
            max_batch_size: options.max_batch_size,
        };
        model.log_loaded(stripped, started);
        model
    }

    fn log_loaded(&self, stripped: &[String], started: std::time::Instant) {
        let meta = &self.metadata;
        info!(
            model = %meta.name,
            inputs = ?meta.inputs.iter().map(|i| (&i.name, i.datatype.as_str(), &i.shape)).collect::<Vec<_>>(),
            outputs = ?meta.outputs.iter().map(|o| (&o.name, o.datatype.as_str(), &o.shape)).collect::<Vec<_>>(),
            batchable = self.batch.is_some(),
            engine = ?self.engine(),
            stripped_zipmap = ?stripped,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "ONNX model loaded."
        );
    }

    /// Which code evaluates this model.
    pub fn engine(&self) -> Engine {
        match self.evaluator {
            Evaluator::Tract(_) => Engine::Tract,
            Evaluator::Linear(_) => Engine::Linear,
        }
    }

    /// The largest batch a request may carry, when the model is batchable
    /// and a limit was configured (what a batcher joining requests must
    /// stay within).
    pub fn max_batch_size(&self) -> Option<usize> {
        self.batch.as_ref().and(self.max_batch_size)
    }

    /// Runs the model on `request`'s inputs, synchronously (what
    /// [`Model::infer`] wraps in a ready future).
    pub fn run(&self, request: InferRequest) -> Result<Vec<Tensor>, InferError> {
        let values = self.prepare(request)?;
        match &self.evaluator {
            Evaluator::Tract(plan) => self.run_tract(plan, values),
            Evaluator::Linear(graph) => {
                let [x] = values.as_slice() else {
                    return Err(InferError::internal("a linear graph has one input"));
                };
                let rows = x.shape().first().copied().unwrap_or(0);
                let x = linear_input(x).map_err(InferError::internal)?;
                graph.run(x, rows)
            }
        }
    }

    fn run_tract(
        &self,
        tract: &TractPlan,
        values: TVec<TValue>,
    ) -> Result<Vec<Tensor>, InferError> {
        let mut state = match tract.states.lock().ok().and_then(|mut s| s.pop()) {
            Some(state) => state,
            None => tract
                .plan
                .spawn()
                .map_err(|e| InferError::internal(format!("{e:#}")))?,
        };
        let outputs = match catch_unwind(AssertUnwindSafe(|| state.run(values))) {
            Ok(Ok(outputs)) => {
                // Only a state whose run completed is clean enough to reuse:
                // a failed run leaves its symbols bound.
                if let Ok(mut idle) = tract.states.lock()
                    && idle.len() < tract.max_idle_states
                {
                    idle.push(state);
                }
                outputs
            }
            Ok(Err(e)) => {
                return Err(InferError::internal(format!(
                    "model {} failed: {e:#}",
                    self.metadata.name
                )));
            }
            Err(panic) => {
                return Err(InferError::internal(format!(
                    "model {} crashed: {}",
                    self.metadata.name,
                    panic_message(&panic)
                )));
            }
        };
        outputs
            .into_iter()
            .zip(&tract.output_names)
            .map(|(value, name)| convert::from_tract(name, value).map_err(InferError::internal))
            .collect()
    }

    /// Matches, checks and converts the request's tensors to the graph's
    /// inputs, in the graph's order.
    fn prepare(&self, request: InferRequest) -> Result<TVec<TValue>, InferError> {
        let model = &self.metadata.name;
        let mut given = request.inputs;
        for (i, t) in given.iter().enumerate() {
            if given[..i].iter().any(|u| u.name == t.name) {
                return Err(InferError::invalid(format!(
                    "input {} is given twice",
                    t.name
                )));
            }
        }
        let mut by_input: Vec<Option<Tensor>> = Vec::with_capacity(self.inputs.len());
        if self.inputs.len() == 1 && given.len() == 1 {
            // Clients name the only input freely (Triton's `input-0`,
            // KServe V1 has no names at all).
            by_input.push(given.pop());
        } else {
            for spec in &self.inputs {
                let pos = given.iter().position(|t| t.name == spec.name);
                by_input.push(pos.map(|p| given.swap_remove(p)));
            }
            if let Some(extra) = given.first() {
                return Err(InferError::invalid(format!(
                    "model {model} has no input named {}; its inputs are {}",
                    extra.name,
                    self.describe_inputs()
                )));
            }
        }
        let mut bound: HashMap<&Symbol, (usize, &str)> = HashMap::new();
        let mut values = TVec::new();
        for (spec, tensor) in self.inputs.iter().zip(by_input) {
            let Some(tensor) = tensor else {
                return Err(InferError::invalid(format!(
                    "input {} is missing; model {model} needs {}",
                    spec.name,
                    self.describe_inputs()
                )));
            };
            let shape_error = || {
                InferError::invalid(format!(
                    "input {} has shape {:?} but model {model} expects {:?} (-1: any size)",
                    spec.name,
                    tensor.shape,
                    spec.dims.iter().map(Dim::wire).collect::<Vec<_>>()
                ))
            };
            if tensor.shape.len() != spec.dims.len() {
                return Err(shape_error());
            }
            for (dim, &n) in spec.dims.iter().zip(&tensor.shape) {
                match dim {
                    Dim::Fixed(expected) if *expected != n => return Err(shape_error()),
                    Dim::Fixed(_) => {}
                    Dim::Symbol(s) => match bound.get(s) {
                        Some(&(m, other)) if m != n => {
                            return Err(InferError::invalid(format!(
                                "inputs {other} and {} must agree on dimension {s}: {m} != {n}",
                                spec.name
                            )));
                        }
                        _ => {
                            bound.insert(s, (n, &spec.name));
                        }
                    },
                }
            }
            if let (Some(limit), Some(batch), Some(Dim::Symbol(s)), Some(&n)) = (
                self.max_batch_size,
                &self.batch,
                spec.dims.first(),
                tensor.shape.first(),
            ) && s == batch
                && n > limit
            {
                return Err(InferError::invalid(format!(
                    "input {} has {n} rows but model {model} accepts at most {limit} per request",
                    spec.name
                )));
            }
            let given_type = tensor.datatype();
            let value = convert::to_tract(tensor, spec.datum_type).map_err(|reason| {
                InferError::invalid(format!(
                    "input {} ({given_type}) does not fit model {model}: {reason}",
                    spec.name
                ))
            })?;
            values.push(value.into());
        }
        Ok(values)
    }

    fn describe_inputs(&self) -> String {
        self.metadata
            .inputs
            .iter()
            .map(|i| format!("{} ({} {:?})", i.name, i.datatype, i.shape))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Model for OnnxModel {
    fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    fn infer(&self, request: InferRequest) -> BoxFuture<'_, Result<Vec<Tensor>, InferError>> {
        let result = self.run(request);
        if let Err(e) = &result {
            debug!(model = %self.metadata.name, error = %e, "ONNX inference failed.");
        }
        Box::pin(futures::future::ready(result))
    }

    fn batchable(&self) -> bool {
        self.batch.is_some()
    }

    fn max_batch_size(&self) -> Option<usize> {
        OnnxModel::max_batch_size(self)
    }
}

/// A checked input of a linear graph as floats, converted as ONNX's `Cast`
/// and the linear operators convert (`as`: round to nearest).
fn linear_input(x: &TValue) -> Result<Vec<f32>, String> {
    let plain = x.try_as_plain_ram().map_err(|e| format!("{e:#}"))?;
    let err = |e: tract_onnx::prelude::TractError| format!("{e:#}");
    Ok(match x.datum_type() {
        DatumType::F32 => plain.as_slice::<f32>().map_err(err)?.to_vec(),
        DatumType::F64 => plain
            .as_slice::<f64>()
            .map_err(err)?
            .iter()
            .map(|&v| v as f32)
            .collect(),
        DatumType::I64 => plain
            .as_slice::<i64>()
            .map_err(err)?
            .iter()
            .map(|&v| v as f32)
            .collect(),
        DatumType::I32 => plain
            .as_slice::<i32>()
            .map_err(err)?
            .iter()
            .map(|&v| v as f32)
            .collect(),
        other => return Err(format!("a linear graph cannot take {other:?}")),
    })
}

/// tract's ONNX parser with Oxflow's extra operators.
fn framework() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    ops::register(&mut onnx.op_register);
    onnx
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
