//! Linear scikit-learn exports evaluated without tract's plan.
//!
//! A `LogisticRegression` exported by skl2onnx is a `LinearClassifier`,
//! perhaps behind a `Scaler` (a `StandardScaler` in the pipeline) and in
//! front of an L1 `Normalizer` and a label `Cast`. Its arithmetic is a few
//! dozen multiply-adds per row, but tract's plan spends more on bookkeeping
//! (an execution state, a tensor per node, symbol resolution): 5.3 µs a
//! one-row call against 1.8 µs here (`cargo bench -p oxflow-onnx`), and
//! 1.5× the throughput for `oxflow serve` at concurrency 32 (BENCHMARKS.md).
//! Such graphs are recognised at load and evaluated here directly.
//!
//! What is recognised: one input `[batch, features]` (FP32, or INT32/INT64/
//! FP64 when only linear operators read it), no initializers, and nodes
//! that are all `Identity`, no-op `Cast`s, `Scaler`, L1 `Normalizer`,
//! `LinearClassifier` (post-transform NONE, LOGISTIC, SOFTMAX or
//! SOFTMAX_ZERO) and `LinearRegressor` (post-transform NONE). Anything else
//! — or any attribute this module does not take exactly as tract and
//! onnxruntime do — leaves the model to tract.
//!
//! Answers are tract's, bit for bit, where tract's plan implements the
//! operator as onnxruntime does (the tests compare the two paths on every
//! operator and shape here). The post-transforms and reductions call the
//! `tract_linalg` kernels tract's ops call, on buffers aligned as tract's
//! tensors are (its reductions split a row at vector boundaries), and the
//! scores are the chain of fused multiply-adds over the features that
//! tract's matrix-product kernels compute per output. (Where tract has no
//! SIMD kernel for the machine, its generic kernel rounds products and sums
//! separately, and scores can differ in the last place.) Where tract and
//! onnxruntime disagree, this follows onnxruntime, the reference the
//! exports are tested against (`tests/models.rs`, within 1e-6):
//!
//! * the label is the first class with the largest *raw* score (tract takes
//!   the argmax after the post-transform, where two saturated
//!   probabilities can tie);
//! * a `LinearClassifier` with one intercept and two labels (a single
//!   binary model) answers `[1 - s, s]` for score `s`, through the logistic
//!   function when the post-transform is LOGISTIC and as is otherwise
//!   (tract answers `[-s, s]`, or a softmax of it);
//! * an L1 row norm of zero leaves the row as is, and a NaN norm makes the
//!   row NaN (tract multiplies by `1 / max(norm, 1e-12)`; below 1e-12 the
//!   two differ, onnxruntime divides by the norm itself);
//! * SOFTMAX_ZERO, which tract refuses, is onnxruntime's
//!   `ComputeSoftmaxZero`.

use std::collections::HashMap;

use oxflow_inference::{DataType, InferError, Tensor, TensorData};
use tract_onnx::pb::tensor_proto::DataType as OnnxType;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as OnnxDim;
use tract_onnx::pb::{GraphProto, NodeProto, type_proto};
use tract_onnx::prelude::{DatumType, Tensor as TractTensor};
use tract_onnx::tract_hir::tract_core::tract_linalg::Func;
use tract_onnx::tract_hir::tract_core::tract_linalg::element_wise::ElementWise;
use tract_onnx::tract_hir::tract_core::tract_linalg::reduce::{MapReduce, Reduce};

/// A recognised linear graph, ready to evaluate.
#[derive(Debug)]
pub(crate) struct LinearGraph {
    /// The graph input's name.
    pub(crate) input: String,
    /// Its declared element type (what requests are converted to).
    pub(crate) input_type: DatumType,
    /// The name of its first (batch) dimension.
    pub(crate) batch: String,
    /// Its second dimension.
    pub(crate) features: usize,
    /// What each value slot holds; slot 0 is the input as floats.
    slots: Vec<Kind>,
    steps: Vec<Step>,
    /// The graph outputs in order: name and slot.
    outputs: Vec<(String, usize)>,
    kernels: Kernels,
}

/// The kind of value a slot holds, for every row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `[rows, columns]` floats.
    Floats(usize),
    /// `[rows]` integer labels.
    Ints,
    /// `[rows]` string labels.
    Strings,
}

impl Kind {
    fn datatype(self) -> DataType {
        match self {
            Kind::Floats(_) => DataType::Fp32,
            Kind::Ints => DataType::Int64,
            Kind::Strings => DataType::Bytes,
        }
    }

    /// The shape the protocol's metadata reports (`-1`: any number of rows).
    pub(crate) fn wire_shape(self) -> Vec<i64> {
        match self {
            Kind::Floats(cols) => vec![-1, cols as i64],
            Kind::Ints | Kind::Strings => vec![-1],
        }
    }
}

/// One slot's value for the rows of a request.
#[derive(Debug, Clone)]
enum Value {
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    Strings(Vec<Vec<u8>>),
}

#[derive(Debug)]
enum Step {
    /// `(x - offset) * scale` per column.
    Scaler {
        x: usize,
        out: usize,
        offset: Vec<f32>,
        scale: Vec<f32>,
    },
    /// Each row divided by the sum of its absolute values.
    NormalizeL1 {
        x: usize,
        out: usize,
    },
    Classifier {
        x: usize,
        label: usize,
        scores: usize,
        op: Classifier,
    },
    Regressor {
        x: usize,
        out: usize,
        op: Affine,
    },
}

/// `x · Wᵀ + b`: the scores of `LinearClassifier` and `LinearRegressor`.
#[derive(Debug)]
struct Affine {
    features: usize,
    /// `[targets, features]`, row-major, as the `coefficients` attribute.
    coefficients: Vec<f32>,
    /// One per target, when given (an absent bias adds nothing, not `+0.0`,
    /// which would turn `-0.0` scores into `0.0`).
    intercepts: Option<Vec<f32>>,
}

impl Affine {
    fn targets(&self) -> usize {
        self.coefficients.len() / self.features
    }

    /// The `[rows, targets]` scores of `x` (`[rows, features]`).
    ///
    /// Each score is the fused multiply-add chain over the features in
    /// order, then the intercept: what tract's matrix-product kernels
    /// compute per output (one accumulator per output, one FMA per step of
    /// the shared dimension, the bias added on store).
    fn scores(&self, x: &[f32]) -> Vec<f32> {
        let targets = self.targets();
        let mut out = Vec::with_capacity(x.len() / self.features * targets);
        for row in x.chunks_exact(self.features) {
            for (t, w) in self.coefficients.chunks_exact(self.features).enumerate() {
                let dot = dot(row, w);
                out.push(match &self.intercepts {
                    Some(b) => dot + b[t],
                    None => dot,
                });
            }
        }
        out
    }
}

/// `Σ a[i]·b[i]` as a chain of fused multiply-adds, first to last.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has FMA, checked just above.
        return unsafe { dot_fma(a, b) };
    }
    a.iter().zip(b).fold(0.0, |acc, (x, y)| x.mul_add(*y, acc))
}

/// [`dot`] compiled with FMA instructions, so that `mul_add` is one
/// instruction rather than a call into libm (the same rounding either way).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
fn dot_fma(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0.0, |acc, (x, y)| x.mul_add(*y, acc))
}

/// onnxruntime's post-transforms that the native path takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Post {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
}

#[derive(Debug)]
struct Classifier {
    affine: Affine,
    labels: Labels,
    post: Post,
}

#[derive(Debug)]
enum Labels {
    Ints(Vec<i64>),
    Strings(Vec<Vec<u8>>),
}

impl Labels {
    fn len(&self) -> usize {
        match self {
            Labels::Ints(v) => v.len(),
            Labels::Strings(v) => v.len(),
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Labels::Ints(_) => Kind::Ints,
            Labels::Strings(_) => Kind::Strings,
        }
    }

    fn pick(&self, indices: &[usize]) -> Value {
        match self {
            Labels::Ints(v) => Value::Ints(indices.iter().map(|&i| v[i]).collect()),
            Labels::Strings(v) => Value::Strings(indices.iter().map(|&i| v[i].clone()).collect()),
        }
    }
}

/// tract's kernels for this machine, chosen once.
struct Kernels {
    sigmoid: Box<dyn ElementWise<f32>>,
    max: Box<dyn Reduce<f32>>,
    exp_sum: Box<dyn MapReduce<f32, f32>>,
    scale: Box<dyn ElementWise<f32, f32>>,
    sum: Box<dyn Reduce<f32>>,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernels")
            .field("sigmoid", &self.sigmoid.name())
            .field("exp_sum", &self.exp_sum.name())
            .finish_non_exhaustive()
    }
}

impl Kernels {
    fn new() -> Option<Kernels> {
        Some(Kernels {
            sigmoid: Func::Sigmoid.ew_f32().ok()?,
            max: Func::ReduceMax.reduce_f32().ok()?,
            exp_sum: Func::Softmax2.map_reduce_f32().ok()?,
            scale: Func::MulByScalar.ew_f32_param().ok()?,
            sum: Func::ReduceSum.reduce_f32().ok()?,
        })
    }

    /// tract's `Sigmoid` over every value.
    fn sigmoid(&self, v: &mut [f32]) -> Result<(), InferError> {
        self.sigmoid.run(v).map_err(kernel_error)
    }

    /// tract's `Softmax` over one row: the max, `exp(x - max)` summed, then
    /// a multiply by the sum's reciprocal.
    fn softmax(&self, row: &mut [f32]) -> Result<(), InferError> {
        let max = self.max.run(row).map_err(kernel_error)?;
        let sum = self
            .exp_sum
            .run_with_params(row, max)
            .map_err(kernel_error)?;
        self.scale
            .run_with_params(row, sum.recip())
            .map_err(kernel_error)
    }

    /// tract's `ReduceSum` over one row: its kernel from four values up, a
    /// plain sum below.
    fn sum(&self, row: &[f32]) -> Result<f32, InferError> {
        if row.len() >= 4 {
            self.sum.run(row).map_err(kernel_error)
        } else {
            Ok(row.iter().copied().sum())
        }
    }
}

/// Runs `f` on a copy of `values` that sits in memory as tract's tensors
/// do, then copies the result back.
///
/// tract's reduction kernels handle the part of a slice before the first
/// vector-aligned address apart from the rest, so a row's sum depends on
/// where the row starts. tract's tensors start on a vector boundary, with
/// rows at multiples of their length from there; this buffer too.
fn aligned_like_tract<R>(
    values: &mut [f32],
    f: impl FnOnce(&mut [f32]) -> Result<R, InferError>,
) -> Result<R, InferError> {
    let mut buffer = TractTensor::zero::<f32>(&[values.len()]).map_err(kernel_error)?;
    let mut plain = buffer.try_as_plain_ram_mut().map_err(kernel_error)?;
    let scratch = plain.as_slice_mut::<f32>().map_err(kernel_error)?;
    scratch.copy_from_slice(values);
    let result = f(scratch)?;
    values.copy_from_slice(scratch);
    Ok(result)
}

fn kernel_error(e: impl std::fmt::Display) -> InferError {
    InferError::internal(format!("a tract kernel failed: {e:#}"))
}

/// onnxruntime's `ComputeSoftmaxZero`: a softmax that leaves zeros (to
/// 1e-7) at zero.
fn softmax_zero(row: &mut [f32]) {
    let max = row
        .iter()
        .copied()
        .fold(-f32::MAX, |m, v| if v > m { v } else { m });
    let exp_neg_max = (-max).exp();
    let mut sum = 0f32;
    for v in row.iter_mut() {
        if *v > 0.000_000_1 || *v < -0.000_000_1 {
            *v = (*v - max).exp();
            sum += *v;
        } else {
            *v *= exp_neg_max;
        }
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

impl Classifier {
    /// Label indices and `[rows, classes]` scores of `x`.
    fn run(&self, x: &[f32], kernels: &Kernels) -> Result<(Vec<usize>, Vec<f32>), InferError> {
        let raw = self.affine.scores(x);
        let targets = self.affine.targets();
        if targets == 1 {
            // One binary model: onnxruntime's labels and `[1 - s, s]`.
            let labels = raw.iter().map(|&s| usize::from(s > 0.0)).collect();
            let mut p = raw;
            if self.post == Post::Logistic {
                kernels.sigmoid(&mut p)?;
            }
            let scores = p.iter().flat_map(|&s| [1.0 - s, s]).collect();
            return Ok((labels, scores));
        }
        let labels = raw.chunks_exact(targets).map(first_argmax).collect();
        let mut scores = raw;
        match self.post {
            Post::None => {}
            Post::Logistic => kernels.sigmoid(&mut scores)?,
            Post::Softmax => aligned_like_tract(&mut scores, |scores| {
                scores
                    .chunks_exact_mut(targets)
                    .try_for_each(|row| kernels.softmax(row))
            })?,
            Post::SoftmaxZero => scores.chunks_exact_mut(targets).for_each(softmax_zero),
        }
        Ok((labels, scores))
    }
}

/// The first index of the largest value, as onnxruntime picks a class
/// (NaN never wins against the first score).
fn first_argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate().skip(1) {
        if v > row[best] {
            best = j;
        }
    }
    best
}

/// Why a graph is left to tract (logged at debug level).
type Refusal = String;

impl LinearGraph {
    /// Recognises `graph` (ZipMaps already stripped) as a linear graph the
    /// native path evaluates, or says why not.
    pub(crate) fn recognise(graph: &GraphProto) -> Result<LinearGraph, Refusal> {
        if graph.input.len() != 1 {
            return Err(format!("{} inputs", graph.input.len()));
        }
        if !graph.initializer.is_empty() || !graph.sparse_initializer.is_empty() {
            return Err("the graph has initializers".into());
        }
        let input = &graph.input[0];
        let Some(type_proto::Value::TensorType(tensor)) =
            input.r#type.as_ref().and_then(|t| t.value.as_ref())
        else {
            return Err("the input is not a tensor".into());
        };
        let input_type = match OnnxType::try_from(tensor.elem_type) {
            Ok(OnnxType::Float) => DatumType::F32,
            Ok(OnnxType::Double) => DatumType::F64,
            Ok(OnnxType::Int64) => DatumType::I64,
            Ok(OnnxType::Int32) => DatumType::I32,
            _ => return Err("the input's element type".into()),
        };
        let dims = tensor
            .shape
            .as_ref()
            .map(|s| s.dim.as_slice())
            .unwrap_or(&[]);
        let [rows, cols] = dims else {
            return Err("the input is not a matrix".into());
        };
        // The names tract gives open dimensions (see the crate docs): an
        // unnamed one is `batch`, a named one keeps its name.
        let batch = match &rows.value {
            None => crate::BATCH_SYMBOL.to_owned(),
            Some(OnnxDim::DimValue(v)) if *v < 0 => crate::BATCH_SYMBOL.to_owned(),
            Some(OnnxDim::DimParam(p)) if p == "?" || p.is_empty() || p.starts_with("unk__") => {
                crate::BATCH_SYMBOL.to_owned()
            }
            Some(OnnxDim::DimParam(p))
                if p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !p.starts_with(|c: char| c.is_ascii_digit()) =>
            {
                p.clone()
            }
            _ => return Err("the input's first dimension is not a plain variable".into()),
        };
        let features = match cols.value {
            Some(OnnxDim::DimValue(n)) if n > 0 => n as usize,
            _ => return Err("the input's second dimension is not a number".into()),
        };

        let mut slots = vec![Kind::Floats(features)];
        let mut by_name: HashMap<&str, usize> = HashMap::from([(input.name.as_str(), 0)]);
        let mut steps = Vec::new();
        // Whether an operator reads the raw input as it is. Requests are
        // converted to floats up front, which is what the linear operators
        // and a Cast to float do with integers and doubles themselves, but
        // not what the others do.
        let mut raw_input_as_is = false;
        for node in &graph.node {
            let op = node.op_type.as_str();
            let ml = node.domain == "ai.onnx.ml";
            let core = node.domain.is_empty() || node.domain == "ai.onnx";
            let refuse = |why: &str| format!("node '{}' ({op}): {why}", node.name);
            let attr_error = |e: tract_onnx::prelude::TractError| refuse(&format!("{e:#}"));
            let [x] = node.input.as_slice() else {
                return Err(refuse("not one input"));
            };
            let &x = by_name
                .get(x.as_str())
                .ok_or_else(|| refuse("its input is not computed natively"))?;
            let kind = slots[x];
            let single_output = || match node.output.as_slice() {
                [out] => Ok(out.as_str()),
                _ => Err(refuse("not one output")),
            };
            let twice = || refuse("an output name is empty or defined twice");
            match (op, core, ml) {
                ("Identity", true, _) => {
                    raw_input_as_is |= x == 0;
                    alias(&mut by_name, single_output()?, x).ok_or_else(twice)?;
                }
                ("Cast", true, _) => {
                    let to = node.get_attr_opt::<DatumType>("to").map_err(attr_error)?;
                    let same = matches!(
                        (to, kind),
                        (Some(DatumType::F32), Kind::Floats(_))
                            | (Some(DatumType::I64), Kind::Ints)
                            | (Some(DatumType::String), Kind::Strings)
                    );
                    if !same {
                        return Err(refuse("a Cast that changes the value"));
                    }
                    alias(&mut by_name, single_output()?, x).ok_or_else(twice)?;
                }
                ("Scaler", _, true) => {
                    let Kind::Floats(cols) = kind else {
                        return Err(refuse("not applied to floats"));
                    };
                    let expand = |attr: &str, default: f32| -> Result<Vec<f32>, Refusal> {
                        let v = node
                            .get_attr_opt_vec::<f32>(attr)
                            .map_err(attr_error)?
                            .unwrap_or_else(|| vec![default]);
                        match v.len() {
                            1 => Ok(vec![v[0]; cols]),
                            n if n == cols => Ok(v),
                            _ => Err(refuse(&format!("{attr} has neither 1 nor {cols} values"))),
                        }
                    };
                    let (offset, scale) = (expand("offset", 0.0)?, expand("scale", 1.0)?);
                    raw_input_as_is |= x == 0;
                    let out = define(&mut slots, &mut by_name, single_output()?, kind)
                        .ok_or_else(twice)?;
                    steps.push(Step::Scaler {
                        x,
                        out,
                        offset,
                        scale,
                    });
                }
                ("Normalizer", _, true) => {
                    let norm = node
                        .get_attr_opt::<&str>("norm")
                        .map_err(attr_error)?
                        .unwrap_or("MAX");
                    if !norm.eq_ignore_ascii_case("L1") || !matches!(kind, Kind::Floats(_)) {
                        return Err(refuse("only the L1 norm of floats is native"));
                    }
                    raw_input_as_is |= x == 0;
                    let out = define(&mut slots, &mut by_name, single_output()?, kind)
                        .ok_or_else(twice)?;
                    steps.push(Step::NormalizeL1 { x, out });
                }
                ("LinearClassifier", _, true) => {
                    let Kind::Floats(cols) = kind else {
                        return Err(refuse("not applied to floats"));
                    };
                    let op = classifier(node, cols).map_err(|why| refuse(&why))?;
                    let [label_name, scores_name] = node.output.as_slice() else {
                        return Err(refuse("not two outputs"));
                    };
                    let classes = op.labels.len();
                    let label = define(&mut slots, &mut by_name, label_name, op.labels.kind())
                        .ok_or_else(twice)?;
                    let scores =
                        define(&mut slots, &mut by_name, scores_name, Kind::Floats(classes))
                            .ok_or_else(twice)?;
                    steps.push(Step::Classifier {
                        x,
                        label,
                        scores,
                        op,
                    });
                }
                ("LinearRegressor", _, true) => {
                    let Kind::Floats(cols) = kind else {
                        return Err(refuse("not applied to floats"));
                    };
                    let op = regressor(node, cols).map_err(|why| refuse(&why))?;
                    let out = define(
                        &mut slots,
                        &mut by_name,
                        single_output()?,
                        Kind::Floats(op.targets()),
                    )
                    .ok_or_else(twice)?;
                    steps.push(Step::Regressor { x, out, op });
                }
                _ => return Err(refuse("not a native operator")),
            }
        }
        let mut outputs = Vec::new();
        for o in &graph.output {
            let &slot = by_name
                .get(o.name.as_str())
                .ok_or_else(|| format!("output {} is not computed natively", o.name))?;
            check_declared(o, slots[slot])?;
            raw_input_as_is |= slot == 0;
            outputs.push((o.name.clone(), slot));
        }
        if raw_input_as_is && input_type != DatumType::F32 {
            return Err("a non-float input is used as it is".into());
        }
        if outputs.is_empty() {
            return Err("no outputs".into());
        }
        let kernels = Kernels::new().ok_or("tract has no kernels for this machine")?;
        Ok(LinearGraph {
            input: input.name.clone(),
            input_type,
            batch,
            features,
            slots,
            steps,
            outputs,
            kernels,
        })
    }

    /// The outputs' names, protocol datatypes and shapes.
    pub(crate) fn output_metadata(&self) -> impl Iterator<Item = (&str, DataType, Vec<i64>)> {
        self.outputs.iter().map(|(name, slot)| {
            let kind = self.slots[*slot];
            (name.as_str(), kind.datatype(), kind.wire_shape())
        })
    }

    /// Evaluates the graph on `rows` rows of `x` (`[rows, features]`).
    pub(crate) fn run(&self, x: Vec<f32>, rows: usize) -> Result<Vec<Tensor>, InferError> {
        let mut values: Vec<Option<Value>> = vec![None; self.slots.len()];
        values[0] = Some(Value::Floats(x));
        for step in &self.steps {
            match step {
                Step::Scaler {
                    x,
                    out,
                    offset,
                    scale,
                } => {
                    let mut v = floats(&values, *x)?.to_vec();
                    for row in v.chunks_exact_mut(offset.len()) {
                        for ((v, o), s) in row.iter_mut().zip(offset).zip(scale) {
                            *v = (*v - o) * s;
                        }
                    }
                    values[*out] = Some(Value::Floats(v));
                }
                Step::NormalizeL1 { x, out } => {
                    let Kind::Floats(cols) = self.slots[*x] else {
                        return Err(InferError::internal("Normalizer over non-floats"));
                    };
                    let mut v = floats(&values, *x)?.to_vec();
                    if cols > 0 {
                        let mut abs: Vec<f32> = v.iter().map(|v| v.abs()).collect();
                        let norms = aligned_like_tract(&mut abs, |abs| {
                            abs.chunks_exact(cols)
                                .map(|row| self.kernels.sum(row))
                                .collect::<Result<Vec<f32>, _>>()
                        })?;
                        for (row, norm) in v.chunks_exact_mut(cols).zip(norms) {
                            // A zero norm leaves the row as is (onnxruntime);
                            // tract multiplies by the reciprocal rather than
                            // divide (its `Div` becomes `Mul` by `Recip`).
                            if norm != 0.0 {
                                let inverse = norm.recip();
                                row.iter_mut().for_each(|v| *v *= inverse);
                            }
                        }
                    }
                    values[*out] = Some(Value::Floats(v));
                }
                Step::Classifier {
                    x,
                    label,
                    scores,
                    op,
                } => {
                    let (indices, s) = op.run(floats(&values, *x)?, &self.kernels)?;
                    values[*label] = Some(op.labels.pick(&indices));
                    values[*scores] = Some(Value::Floats(s));
                }
                Step::Regressor { x, out, op } => {
                    let s = op.scores(floats(&values, *x)?);
                    values[*out] = Some(Value::Floats(s));
                }
            }
        }
        let mut tensors = Vec::with_capacity(self.outputs.len());
        for (i, (name, slot)) in self.outputs.iter().enumerate() {
            let again = self.outputs[i + 1..].iter().any(|(_, s)| s == slot);
            let value = if again {
                values[*slot].clone()
            } else {
                values[*slot].take()
            };
            let (shape, data) = match (value, self.slots[*slot]) {
                (Some(Value::Floats(v)), Kind::Floats(cols)) => {
                    (vec![rows, cols], TensorData::Fp32(v))
                }
                (Some(Value::Ints(v)), _) => (vec![rows], TensorData::Int64(v)),
                (Some(Value::Strings(v)), _) => (vec![rows], TensorData::Bytes(v)),
                _ => {
                    return Err(InferError::internal(format!(
                        "output {name} was not computed"
                    )));
                }
            };
            tensors.push(
                Tensor::new(name.clone(), shape, data)
                    .map_err(|e| InferError::internal(e.to_string()))?,
            );
        }
        Ok(tensors)
    }
}

fn floats(values: &[Option<Value>], slot: usize) -> Result<&[f32], InferError> {
    match values.get(slot) {
        Some(Some(Value::Floats(v))) => Ok(v),
        _ => Err(InferError::internal(
            "a linear step's input was not computed",
        )),
    }
}

/// Gives `name` the value of `slot`; `None` if the name is taken.
fn alias<'g>(by_name: &mut HashMap<&'g str, usize>, name: &'g str, slot: usize) -> Option<()> {
    (!name.is_empty() && !by_name.contains_key(name)).then(|| {
        by_name.insert(name, slot);
    })
}

/// A new slot of `kind` named `name`; `None` if the name is taken.
fn define<'g>(
    slots: &mut Vec<Kind>,
    by_name: &mut HashMap<&'g str, usize>,
    name: &'g str,
    kind: Kind,
) -> Option<usize> {
    slots.push(kind);
    let slot = slots.len() - 1;
    alias(by_name, name, slot).map(|()| slot)
}

/// A graph output's declared type, when it has one, must be the value's.
fn check_declared(output: &tract_onnx::pb::ValueInfoProto, kind: Kind) -> Result<(), Refusal> {
    let Some(value) = output.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Ok(());
    };
    let type_proto::Value::TensorType(t) = value;
    let declared = OnnxType::try_from(t.elem_type).ok();
    let expected = match kind {
        Kind::Floats(_) => OnnxType::Float,
        Kind::Ints => OnnxType::Int64,
        Kind::Strings => OnnxType::String,
    };
    if declared.is_some_and(|d| d != expected && d != OnnxType::Undefined) {
        return Err(format!(
            "output {} is declared as {declared:?}",
            output.name
        ));
    }
    if let Some(shape) = &t.shape {
        let rank = kind.wire_shape().len();
        if shape.dim.len() != rank {
            return Err(format!(
                "output {} is declared with rank {}",
                output.name,
                shape.dim.len()
            ));
        }
        if let (Kind::Floats(cols), Some(OnnxDim::DimValue(n))) =
            (kind, shape.dim.get(1).and_then(|d| d.value.as_ref()))
            && *n != cols as i64
        {
            return Err(format!(
                "output {} is declared with {n} columns",
                output.name
            ));
        }
    }
    Ok(())
}

fn post_transform(node: &NodeProto) -> Result<Post, String> {
    match node
        .get_attr_opt::<&str>("post_transform")
        .map_err(|e| e.to_string())?
        .unwrap_or("NONE")
    {
        "NONE" => Ok(Post::None),
        "LOGISTIC" => Ok(Post::Logistic),
        "SOFTMAX" => Ok(Post::Softmax),
        "SOFTMAX_ZERO" => Ok(Post::SoftmaxZero),
        other => Err(format!("post_transform {other}")),
    }
}

fn affine(node: &NodeProto, features: usize, targets: usize) -> Result<Affine, String> {
    let coefficients = node
        .get_attr_opt_vec::<f32>("coefficients")
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    if targets == 0 || coefficients.len() != targets * features {
        return Err(format!(
            "{} coefficients for {targets} targets of {features} features",
            coefficients.len()
        ));
    }
    let intercepts = node
        .get_attr_opt_vec::<f32>("intercepts")
        .map_err(|e| e.to_string())?;
    if intercepts.as_ref().is_some_and(|b| b.len() != targets) {
        return Err("intercepts do not match the targets".into());
    }
    Ok(Affine {
        features,
        coefficients,
        intercepts,
    })
}

/// onnxruntime's `LinearClassifier`: one model per intercept, classes
/// labelled in order, or one intercept and two labels (a binary model).
fn classifier(node: &NodeProto, features: usize) -> Result<Classifier, String> {
    let ints = node
        .get_attr_opt_slice::<i64>("classlabels_ints")
        .map_err(|e| e.to_string())?;
    let strings = node
        .get_attr_opt_tvec::<&str>("classlabels_strings")
        .map_err(|e| e.to_string())?;
    let labels = match (ints, strings) {
        (Some(v), None) if !v.is_empty() => Labels::Ints(v.to_vec()),
        (None, Some(v)) if !v.is_empty() => {
            Labels::Strings(v.iter().map(|s| s.as_bytes().to_vec()).collect())
        }
        _ => return Err("not exactly one set of class labels".into()),
    };
    let targets = node
        .get_attr_opt_vec::<f32>("intercepts")
        .map_err(|e| e.to_string())?
        .map_or(0, |b| b.len());
    let fits = (targets >= 2 && labels.len() == targets) || (targets == 1 && labels.len() == 2);
    if !fits {
        return Err(format!("{targets} intercepts for {} labels", labels.len()));
    }
    Ok(Classifier {
        affine: affine(node, features, targets)?,
        labels,
        post: post_transform(node)?,
    })
}

/// onnxruntime's `LinearRegressor`, without a post-transform (the only
/// one scikit-learn exports; onnxruntime ignores it for one target, tract
/// does not).
fn regressor(node: &NodeProto, features: usize) -> Result<Affine, String> {
    let targets = node
        .get_attr_opt::<i64>("targets")
        .map_err(|e| e.to_string())?
        .unwrap_or(1);
    if post_transform(node)? != Post::None {
        return Err("a post_transform".into());
    }
    let targets = usize::try_from(targets).map_err(|_| "negative targets".to_string())?;
    affine(node, features, targets)
}

#[cfg(test)]
mod tests;
