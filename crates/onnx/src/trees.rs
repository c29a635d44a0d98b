//! `ai.onnx.ml.TreeEnsembleClassifier` and `TreeEnsembleRegressor`, the
//! operators scikit-learn's forests and boosted trees export to.
//!
//! tract 0.23 has a TreeEnsembleClassifier but no regressor, and its
//! classifier is unusable for serving: it rescans the whole leaf table on
//! every leaf it reaches (12 ms for one row of a 100-tree, depth-8 forest,
//! measured here; this evaluator takes 10 µs),
//! it labels every row of a binary scikit-learn forest with the first class
//! (the argmax runs over `[p, 0]`), and it reads `BRANCH_GTE` nodes as
//! leaves. Both operators are therefore implemented here, over one flat
//! forest layout, with onnxruntime's semantics (the reference every export
//! is tested against): its aggregation, its treatment of missing values, and
//! its binary-classification conventions (see [`Classifier::finish_binary`]).

use std::collections::HashMap;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::tract_core::ops::cast::cast;

/// How a branch compares the feature with its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

/// One node of the flattened forest.
#[derive(Debug, Clone, Copy)]
struct Node {
    mode: Mode,
    /// Branches: go to `yes` when a missing (NaN) feature is seen.
    nan_yes: bool,
    feature: u32,
    threshold: f32,
    /// Branches: child indices. Leaves: the range `yes..no` of `weights`.
    yes: u32,
    no: u32,
}

/// Every tree of an ensemble, flattened.
#[derive(Debug)]
struct Forest {
    roots: Vec<u32>,
    nodes: Vec<Node>,
    /// `(output column, weight)` per leaf contribution.
    weights: Vec<(u32, f32)>,
    /// Columns of the score output (classes or targets).
    n_outputs: usize,
    /// The input must have more columns than the largest feature used.
    min_features: usize,
}

impl Forest {
    /// The leaf `row` reaches in tree `t`. Children were checked at load to
    /// form trees (no cycles, every index in range), so the walk ends.
    #[inline]
    fn leaf(&self, t: usize, row: &[f32]) -> &Node {
        let mut node = &self.nodes[self.roots[t] as usize];
        loop {
            if node.mode == Mode::Leaf {
                return node;
            }
            let x = row[node.feature as usize];
            let th = node.threshold;
            // onnxruntime: `x CMP threshold || (nan_yes && isnan(x))`.
            let yes = match node.mode {
                Mode::Leq => x <= th,
                Mode::Lt => x < th,
                Mode::Gte => x >= th,
                Mode::Gt => x > th,
                Mode::Eq => x == th,
                Mode::Neq => x != th,
                Mode::Leaf => false, // returned above
            } || (node.nan_yes && x.is_nan());
            node = &self.nodes[if yes { node.yes } else { node.no } as usize];
        }
    }

    fn leaf_weights(&self, leaf: &Node) -> &[(u32, f32)] {
        &self.weights[leaf.yes as usize..leaf.no as usize]
    }

    /// Folds every leaf weight each row of `x` (`[rows, features]`,
    /// row-major) reaches into `acc` (`[rows, n_outputs]`) with `combine`,
    /// tree by tree in order. Going tree-major keeps one tree in cache for
    /// all rows; the order of contributions per score stays that of the
    /// trees, as with a row-by-row walk.
    fn accumulate(
        &self,
        x: &[f32],
        features: usize,
        acc: &mut [Score],
        combine: impl Fn(&mut Score, f32),
    ) {
        let n = self.n_outputs;
        for t in 0..self.roots.len() {
            for (r, scores) in acc.chunks_exact_mut(n).enumerate() {
                let row = &x[r * features..][..features];
                for &(k, w) in self.leaf_weights(self.leaf(t, row)) {
                    let s = &mut scores[k as usize];
                    combine(s, w);
                    s.set = true;
                }
            }
        }
    }
}

/// An accumulated score and whether any leaf contributed to it
/// (onnxruntime's `ScoreValue`).
#[derive(Debug, Clone, Copy, Default)]
struct Score {
    value: f32,
    set: bool,
}

impl Score {
    /// What onnxruntime writes out: a score nothing contributed to is 0,
    /// even when base values were added to it.
    fn output(self) -> f32 {
        if self.set { self.value } else { 0.0 }
    }
}

/// Reads the `nodes_*` attributes and the leaf attributes with `prefix`
/// (`class` or `target`) into a [`Forest`]. Every index is checked, so a
/// malformed model is a load error, never an out-of-bounds read or an
/// endless walk at inference.
fn parse_forest(node: &NodeProto, prefix: &str, n_outputs: usize) -> TractResult<Forest> {
    let weights_as_tensor = format!("{prefix}_weights_as_tensor");
    for name in [
        "nodes_values_as_tensor",
        "nodes_hitrates_as_tensor",
        "base_values_as_tensor",
        &weights_as_tensor,
    ] {
        if node.attribute.iter().any(|a| a.name == name) {
            bail!(
                "attribute {name} (double-precision trees) is not supported; export the model with float inputs"
            );
        }
    }
    let n_nodes = node.get_attr_slice::<i64>("nodes_featureids")?.len();
    node.expect_attr("nodes_featureids", n_nodes != 0, "at least one node")?;
    let ints = |name: &str, len: usize| -> TractResult<Vec<i64>> {
        let v = node.get_attr_slice::<i64>(name)?.to_vec();
        node.expect_attr(name, v.len() == len, || {
            format!("{len} values, got {}", v.len())
        })?;
        Ok(v)
    };
    let tree_ids = ints("nodes_treeids", n_nodes)?;
    let node_ids = ints("nodes_nodeids", n_nodes)?;
    let feature_ids = ints("nodes_featureids", n_nodes)?;
    let true_ids = ints("nodes_truenodeids", n_nodes)?;
    let false_ids = ints("nodes_falsenodeids", n_nodes)?;
    let values = node.get_attr_slice::<f32>("nodes_values")?.to_vec();
    node.expect_attr(
        "nodes_values",
        values.len() == n_nodes,
        "one value per node",
    )?;
    let nan_yes = match node.get_attr_opt_slice::<i64>("nodes_missing_value_tracks_true")? {
        Some(v) => {
            node.expect_attr(
                "nodes_missing_value_tracks_true",
                v.len() == n_nodes,
                "one value per node",
            )?;
            v.iter().map(|&x| x != 0).collect()
        }
        None => vec![false; n_nodes],
    };
    let modes = node
        .get_attr_vec::<String>("nodes_modes")?
        .iter()
        .map(|m| {
            Ok(match m.as_str() {
                "BRANCH_LEQ" => Mode::Leq,
                "BRANCH_LT" => Mode::Lt,
                "BRANCH_GTE" => Mode::Gte,
                "BRANCH_GT" => Mode::Gt,
                "BRANCH_EQ" => Mode::Eq,
                "BRANCH_NEQ" => Mode::Neq,
                "LEAF" => Mode::Leaf,
                other => bail!("unknown node mode {other}"),
            })
        })
        .collect::<TractResult<Vec<_>>>()?;
    node.expect_attr("nodes_modes", modes.len() == n_nodes, "one mode per node")?;

    // Node index by (tree, node id), in the order given.
    let mut index: HashMap<(i64, i64), u32> = HashMap::with_capacity(n_nodes);
    // Tree ids in order of first appearance, and each tree's position.
    let mut trees: Vec<i64> = Vec::new();
    let mut tree_pos: HashMap<i64, usize> = HashMap::new();
    for i in 0..n_nodes {
        if index.insert((tree_ids[i], node_ids[i]), i as u32).is_some() {
            bail!(
                "node {} of tree {} is defined twice",
                node_ids[i],
                tree_ids[i]
            );
        }
        tree_pos.entry(tree_ids[i]).or_insert_with(|| {
            trees.push(tree_ids[i]);
            trees.len() - 1
        });
    }
    let mut nodes = Vec::with_capacity(n_nodes);
    let mut is_child = vec![false; n_nodes];
    let mut min_features = 0;
    for i in 0..n_nodes {
        let (yes, no, feature) = if modes[i] == Mode::Leaf {
            (0, 0, 0)
        } else {
            let child = |id: i64| {
                index.get(&(tree_ids[i], id)).copied().ok_or_else(|| {
                    format_err!(
                        "node {} of tree {} points to missing node {id}",
                        node_ids[i],
                        tree_ids[i]
                    )
                })
            };
            let (yes, no) = (child(true_ids[i])?, child(false_ids[i])?);
            is_child[yes as usize] = true;
            is_child[no as usize] = true;
            let feature = u32::try_from(feature_ids[i])
                .map_err(|_| format_err!("invalid feature id {}", feature_ids[i]))?;
            min_features = min_features.max(feature as usize + 1);
            (yes, no, feature)
        };
        nodes.push(Node {
            mode: modes[i],
            nan_yes: nan_yes[i],
            feature,
            threshold: values[i],
            yes,
            no,
        });
    }
    // The root of a tree is its one node that is nobody's child.
    let mut roots: Vec<Option<u32>> = vec![None; trees.len()];
    for i in (0..n_nodes).filter(|&i| !is_child[i]) {
        let root = &mut roots[tree_pos[&tree_ids[i]]];
        if root.replace(i as u32).is_some() {
            bail!("tree {} has more than one root", tree_ids[i]);
        }
    }
    let roots = roots
        .into_iter()
        .zip(&trees)
        .map(|(r, t)| r.ok_or_else(|| format_err!("tree {t} has no root")))
        .collect::<TractResult<Vec<u32>>>()?;
    // Each node reachable once from its root: no cycles, no shared nodes,
    // so every walk ends at a leaf.
    let mut seen = vec![false; n_nodes];
    let mut stack: Vec<u32> = roots.clone();
    while let Some(n) = stack.pop() {
        let n = n as usize;
        if std::mem::replace(&mut seen[n], true) {
            bail!(
                "node {} of tree {} is reached twice: not a tree",
                node_ids[n],
                tree_ids[n]
            );
        }
        if nodes[n].mode != Mode::Leaf {
            stack.push(nodes[n].yes);
            stack.push(nodes[n].no);
        }
    }
    if let Some(n) = seen.iter().position(|s| !s) {
        bail!(
            "node {} of tree {} is not reachable from the tree's root",
            node_ids[n],
            tree_ids[n]
        );
    }

    // Leaf weights.
    let n_weights = node.get_attr_slice::<i64>(&format!("{prefix}_ids"))?.len();
    let w_tree = ints(&format!("{prefix}_treeids"), n_weights)?;
    let w_node = ints(&format!("{prefix}_nodeids"), n_weights)?;
    let w_out = ints(&format!("{prefix}_ids"), n_weights)?;
    let w_value = node
        .get_attr_slice::<f32>(&format!("{prefix}_weights"))?
        .to_vec();
    node.expect_attr(
        &format!("{prefix}_weights"),
        w_value.len() == n_weights,
        "one weight per id",
    )?;
    let mut per_leaf: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n_nodes];
    for k in 0..n_weights {
        let leaf = *index.get(&(w_tree[k], w_node[k])).ok_or_else(|| {
            format_err!(
                "a weight targets missing node {} of tree {}",
                w_node[k],
                w_tree[k]
            )
        })?;
        if nodes[leaf as usize].mode != Mode::Leaf {
            bail!(
                "a weight targets node {} of tree {}, which is not a leaf",
                w_node[k],
                w_tree[k]
            );
        }
        let out = usize::try_from(w_out[k])
            .ok()
            .filter(|&o| o < n_outputs)
            .ok_or_else(|| {
                format_err!(
                    "weight {k} is for output {} but there are {n_outputs}",
                    w_out[k]
                )
            })?;
        per_leaf[leaf as usize].push((out as u32, w_value[k]));
    }
    let mut weights = Vec::with_capacity(n_weights);
    for (i, w) in per_leaf.into_iter().enumerate() {
        if nodes[i].mode == Mode::Leaf {
            nodes[i].yes = weights.len() as u32;
            weights.extend(w);
            nodes[i].no = weights.len() as u32;
        }
    }
    Ok(Forest {
        roots,
        nodes,
        weights,
        n_outputs,
        min_features,
    })
}

/// onnxruntime's post-transforms (PROBIT is refused at load).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Post {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
}

fn parse_post(node: &NodeProto) -> TractResult<Post> {
    Ok(
        match node
            .get_attr_opt::<&str>("post_transform")?
            .unwrap_or("NONE")
        {
            "NONE" => Post::None,
            "LOGISTIC" => Post::Logistic,
            "SOFTMAX" => Post::Softmax,
            "SOFTMAX_ZERO" => Post::SoftmaxZero,
            other => bail!("post_transform {other} is not supported"),
        },
    )
}

fn logistic(x: f32) -> f32 {
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 { 1.0 - v } else { v }
}

fn apply_post(post: Post, scores: &mut [f32]) {
    match post {
        Post::None => {}
        Post::Logistic => scores.iter_mut().for_each(|s| *s = logistic(*s)),
        Post::Softmax => {
            let max = scores.iter().copied().fold(f32::MIN, f32::max);
            let mut sum = 0.0;
            for s in scores.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            scores.iter_mut().for_each(|s| *s /= sum);
        }
        Post::SoftmaxZero => {
            let max = scores.iter().copied().fold(f32::MIN, f32::max);
            let exp_neg_max = (-max).exp();
            let mut sum = 0.0;
            for s in scores.iter_mut() {
                if s.abs() > 1e-7 {
                    *s = (*s - max).exp();
                    sum += *s;
                } else {
                    *s *= exp_neg_max;
                }
            }
            scores.iter_mut().for_each(|s| *s /= sum);
        }
    }
}

/// Checks the input and returns it as `[rows, features]` floats.
fn rows_of<'a>(forest: &Forest, input: &'a TValue) -> TractResult<(Cow<'a, Tensor>, usize, usize)> {
    let input = input.cast_to::<f32>()?;
    ensure!(
        input.rank() == 2,
        "tree ensembles take [rows, features], got {:?}",
        input.shape()
    );
    let (rows, features) = (input.shape()[0], input.shape()[1]);
    ensure!(
        features >= forest.min_features,
        "the trees use feature {} but the input has {features} columns",
        forest.min_features - 1
    );
    Ok((input, rows, features))
}

// ---------------------------------------------------------------------------
// Classifier

/// The evaluated classifier: `[N, F]` → labels `[N]`, scores `[N, classes]`.
#[derive(Debug, Clone)]
struct Classifier {
    forest: Arc<Forest>,
    /// `classlabels_int64s` (I64) or `classlabels_strings` (String).
    labels: Arc<Tensor>,
    base_values: Vec<f32>,
    post: Post,
    /// Two classes and every weight for the same one (scikit-learn's binary
    /// forests): the scores are `[1 - p, p]` or `[-s, s]`.
    binary_case: bool,
    weights_all_positive: bool,
}

// Ops compare equal only to themselves: enough for tract's graph
// rewrites, and the forest is too large to compare.
impl PartialEq for Classifier {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.forest, &other.forest)
    }
}
impl Eq for Classifier {}

fn classifier(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let labels = match (
        node.get_attr_opt_slice::<i64>("classlabels_int64s")?,
        node.get_attr_opt_tvec::<String>("classlabels_strings")?,
    ) {
        (Some(ints), None) => rctensor1(ints),
        (None, Some(strings)) => rctensor1(&strings.into_iter().collect::<Vec<_>>()),
        _ => bail!("exactly one of classlabels_int64s and classlabels_strings must be set"),
    };
    let n_classes = labels.len();
    node.expect_attr("classlabels_int64s", n_classes >= 2, "at least two classes")?;
    let forest = parse_forest(node, "class", n_classes)?;
    let base_values = node
        .get_attr_opt_vec::<f32>("base_values")?
        .unwrap_or_default();
    let post = parse_post(node)?;
    let mut used = forest.weights.iter().map(|w| w.0);
    let first = used.next();
    let binary_case = n_classes == 2 && used.all(|c| Some(c) == first);
    let weights_all_positive = forest.weights.iter().all(|w| w.1 >= 0.0);
    let op = Classifier {
        forest: Arc::new(forest),
        labels,
        base_values,
        post,
        binary_case,
        weights_all_positive,
    };
    Ok((expand(ClassifierExpansion(op)), vec![]))
}

impl Classifier {
    /// One row's label index and scores from its per-class sums.
    fn finish(&self, sums: &mut [Score], out: &mut [f32]) -> usize {
        if sums.len() > 2 {
            for (s, &b) in sums.iter_mut().zip(&self.base_values) {
                s.value += b;
                s.set = true;
            }
            let mut best: Option<(usize, f32)> = None;
            for (k, s) in sums.iter().enumerate() {
                if s.set && best.is_none_or(|(_, v)| s.value > v) {
                    best = Some((k, s.value));
                }
            }
            for (o, s) in out.iter_mut().zip(sums.iter()) {
                *o = s.output();
            }
            apply_post(self.post, out);
            return best.map_or(0, |b| b.0);
        }
        self.finish_binary(sums, out)
    }

    /// onnxruntime's two-class conventions (`TreeAggregatorClassifier::
    /// FinalizeScores` and `write_scores`), followed literally: base values
    /// are folded into the positive score, the label comes from the
    /// positive score (above 0.5 when every weight is positive, above 0
    /// otherwise), and a single score `s` is written as `[1 - s, s]`
    /// (positive weights) or `[-s, s]` / `[s, -s]` (mixed weights), or
    /// through the logistic function. One deviation: where onnxruntime
    /// answers the literal labels 1 and 0 (two classes with weights on
    /// both), this answers the model's second and first class labels.
    fn finish_binary(&self, sums: &mut [Score], out: &mut [f32]) -> usize {
        // How a lone score becomes two columns (onnxruntime's
        // `add_second_class`), and how many scores there are.
        let mut layout = -1;
        let mut len = 2;
        match self.base_values.len() {
            2 => {
                if sums[1].set {
                    sums[1].value = self.base_values[1] + sums[0].value;
                    sums[0].value = -sums[1].value;
                } else {
                    sums[1].value += self.base_values[1];
                    sums[0].value += self.base_values[0];
                }
            }
            1 => {
                sums[0].value += self.base_values[0];
                if !sums[1].set {
                    len = 1;
                }
            }
            0 => {
                layout = 3;
                if !sums[1].set {
                    len = 1;
                }
            }
            _ => {}
        }
        let positive = if len == 2 && sums[1].set {
            sums[1].value
        } else if sums[0].set {
            sums[0].value
        } else {
            0.0
        };
        let label = if self.binary_case {
            let (l, label) = match (self.weights_all_positive, positive) {
                (true, p) if p > 0.5 => (0, 1),
                (true, _) => (1, 0),
                (false, p) if p > 0.0 => (2, 1),
                (false, _) => (3, 0),
            };
            layout = l;
            label
        } else {
            usize::from(positive > 0.0)
        };
        if len == 2 {
            out[0] = sums[0].output();
            out[1] = sums[1].output();
            apply_post(self.post, out);
        } else {
            let s = sums[0].output();
            let (a, b) = match layout {
                0 | 1 => (1.0 - s, s),
                2 | 3 if self.post == Post::Logistic => (logistic(-s), logistic(s)),
                2 => (-s, s),
                3 => (s, -s),
                _ => (s, 0.0),
            };
            out[0] = a;
            out[1] = b;
        }
        label
    }
}

impl Op for Classifier {
    fn name(&self) -> StaticName {
        "OxflowTreeEnsembleClassifier".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{} trees, {} classes, post {:?}, binary case {}",
            self.forest.roots.len(),
            self.labels.len(),
            self.post,
            self.binary_case
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for Classifier {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let forest = &*self.forest;
        let (input, rows, features) = rows_of(forest, &inputs[0])?;
        let x = input.try_as_plain_ram()?.as_slice::<f32>()?;
        let n = forest.n_outputs;
        let mut sums = vec![Score::default(); rows * n];
        forest.accumulate(x, features, &mut sums, |s, w| s.value += w);
        let mut scores = vec![0f32; rows * n];
        let label_ix: Vec<usize> = sums
            .chunks_exact_mut(n)
            .zip(scores.chunks_exact_mut(n))
            .map(|(sums, out)| self.finish(sums, out))
            .collect();
        let labels = if self.labels.datum_type() == DatumType::String {
            let names = self.labels.try_as_plain_ram()?.as_slice::<String>()?;
            let v: Vec<String> = label_ix.iter().map(|&i| names[i].clone()).collect();
            tract_ndarray::Array1::from_vec(v).into_tensor()
        } else {
            let ids = self.labels.try_as_plain_ram()?.as_slice::<i64>()?;
            let v: Vec<i64> = label_ix.iter().map(|&i| ids[i]).collect();
            Tensor::from_shape(&[rows], &v)?
        };
        Ok(tvec!(
            labels.into_tvalue(),
            Tensor::from_shape(&[rows, n], &scores)?.into_tvalue()
        ))
    }
}

impl TypedOp for Classifier {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let rows = inputs[0].shape[0].clone();
        Ok(tvec!(
            self.labels.datum_type().fact([rows.clone()]),
            f32::fact([rows, self.labels.len().to_dim()])
        ))
    }

    as_op!();
}

/// The analysis-time face of [`Classifier`].
#[derive(Debug, Clone)]
struct ClassifierExpansion(Classifier);

impl Expansion for ClassifierExpansion {
    fn name(&self) -> StaticName {
        "TreeEnsembleClassifier".into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(2)
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 2)?;
        s.equals(&inputs[0].rank, 2)?;
        s.equals(&outputs[0].datum_type, self.0.labels.datum_type())?;
        s.equals(&outputs[0].rank, 1)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].datum_type, DatumType::F32)?;
        s.equals(&outputs[1].rank, 2)?;
        s.equals(&outputs[1].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].shape[1], self.0.labels.len().to_dim())?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let x = as_float(prefix, model, inputs[0])?;
        model.wire_node(prefix, self.0.clone(), &[x])
    }
}

// ---------------------------------------------------------------------------
// Regressor

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

/// The evaluated regressor: `[N, F]` → `[N, n_targets]`.
#[derive(Debug, Clone)]
struct Regressor {
    forest: Arc<Forest>,
    aggregate: Aggregate,
    base_values: Vec<f32>,
}

impl PartialEq for Regressor {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.forest, &other.forest)
    }
}
impl Eq for Regressor {}

fn regressor(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let n_targets: usize = node.get_attr("n_targets")?;
    node.expect_attr("n_targets", n_targets > 0, "at least one target")?;
    let forest = parse_forest(node, "target", n_targets)?;
    let aggregate = match node
        .get_attr_opt::<&str>("aggregate_function")?
        .unwrap_or("SUM")
    {
        "SUM" => Aggregate::Sum,
        "AVERAGE" => Aggregate::Average,
        "MIN" => Aggregate::Min,
        "MAX" => Aggregate::Max,
        other => bail!("aggregate_function {other} is not supported"),
    };
    if parse_post(node)? != Post::None {
        bail!("TreeEnsembleRegressor with a post_transform other than NONE is not supported");
    }
    let base_values = node
        .get_attr_opt_vec::<f32>("base_values")?
        .unwrap_or_default();
    // onnxruntime uses base values only when there is one per target (or a
    // single one for a single target), and ignores them otherwise.
    let base_values = if base_values.len() == n_targets {
        base_values
    } else {
        vec![0.0; n_targets]
    };
    let op = Regressor {
        forest: Arc::new(forest),
        aggregate,
        base_values,
    };
    Ok((expand(RegressorExpansion(op)), vec![]))
}

impl Op for Regressor {
    fn name(&self) -> StaticName {
        "OxflowTreeEnsembleRegressor".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{} trees, {} targets, {:?}",
            self.forest.roots.len(),
            self.forest.n_outputs,
            self.aggregate
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for Regressor {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let forest = &*self.forest;
        let (input, rows, features) = rows_of(forest, &inputs[0])?;
        let x = input.try_as_plain_ram()?.as_slice::<f32>()?;
        let n = forest.n_outputs;
        let n_trees = forest.roots.len() as f32;
        let mut acc = vec![Score::default(); rows * n];
        forest.accumulate(x, features, &mut acc, |s, w| {
            s.value = match self.aggregate {
                Aggregate::Sum | Aggregate::Average => s.value + w,
                Aggregate::Min if s.set => s.value.min(w),
                Aggregate::Max if s.set => s.value.max(w),
                Aggregate::Min | Aggregate::Max => w,
            }
        });
        let mut out = vec![0f32; rows * n];
        for r in 0..rows {
            for (k, o) in out[r * n..][..n].iter_mut().enumerate() {
                let s = acc[r * n + k];
                // With several targets, onnxruntime writes 0 for a target no
                // leaf contributed to, base value or not (its `ScoreValue`
                // conversion); a single target always gets its base value.
                *o = if s.set || n == 1 {
                    let v = match self.aggregate {
                        Aggregate::Average => s.value / n_trees,
                        _ => s.value,
                    };
                    v + self.base_values[k]
                } else {
                    0.0
                };
            }
        }
        Ok(tvec!(Tensor::from_shape(&[rows, n], &out)?.into_tvalue()))
    }
}

impl TypedOp for Regressor {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact([
            inputs[0].shape[0].clone(),
            self.forest.n_outputs.to_dim()
        ])))
    }

    as_op!();
}

#[derive(Debug, Clone)]
struct RegressorExpansion(Regressor);

impl Expansion for RegressorExpansion {
    fn name(&self) -> StaticName {
        "TreeEnsembleRegressor".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].rank, 2)?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[0].shape[1], self.0.forest.n_outputs.to_dim())?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let x = as_float(prefix, model, inputs[0])?;
        model.wire_node(prefix, self.0.clone(), &[x])
    }
}

/// Casts `x` to float unless it is already (ONNX allows double and integer
/// features; the thresholds are floats).
fn as_float(prefix: &str, model: &mut TypedModel, x: OutletId) -> TractResult<OutletId> {
    if model.outlet_fact(x)?.datum_type == DatumType::F32 {
        return Ok(x);
    }
    Ok(model.wire_node(format!("{prefix}.cast"), cast(DatumType::F32), &[x])?[0])
}

/// Adds the two tree operators to tract's ONNX operator table, replacing
/// tract's classifier.
pub(crate) fn register(reg: &mut tract_onnx::model::OnnxOpRegister) {
    reg.insert("TreeEnsembleClassifier", classifier);
    reg.insert("TreeEnsembleRegressor", regressor);
}

#[cfg(test)]
mod tests {
    use tract_onnx::pb::AttributeProto;
    use tract_onnx::pb::attribute_proto::AttributeType;

    use super::*;

    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::Ints as i32,
            ints: v.to_vec(),
            ..Default::default()
        }
    }

    fn floats(name: &str, v: &[f32]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::Floats as i32,
            floats: v.to_vec(),
            ..Default::default()
        }
    }

    fn strings(name: &str, v: &[&str]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::Strings as i32,
            strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
            ..Default::default()
        }
    }

    /// A one-tree regressor: `x[0] <= 0.5 ? 1.0 : 2.0`, with `change`
    /// applied to its attributes.
    fn regressor_node(change: impl FnOnce(&mut Vec<AttributeProto>)) -> NodeProto {
        let mut attrs = vec![
            ints("n_targets", &[]),
            ints("nodes_treeids", &[0, 0, 0]),
            ints("nodes_nodeids", &[0, 1, 2]),
            ints("nodes_featureids", &[0, 0, 0]),
            floats("nodes_values", &[0.5, 0.0, 0.0]),
            strings("nodes_modes", &["BRANCH_LEQ", "LEAF", "LEAF"]),
            ints("nodes_truenodeids", &[1, 0, 0]),
            ints("nodes_falsenodeids", &[2, 0, 0]),
            ints("target_treeids", &[0, 0]),
            ints("target_nodeids", &[1, 2]),
            ints("target_ids", &[0, 0]),
            floats("target_weights", &[1.0, 2.0]),
        ];
        attrs[0] = AttributeProto {
            name: "n_targets".into(),
            r#type: AttributeType::Int as i32,
            i: 1,
            ..Default::default()
        };
        change(&mut attrs);
        NodeProto {
            name: "trees".into(),
            op_type: "TreeEnsembleRegressor".into(),
            attribute: attrs,
            ..Default::default()
        }
    }

    fn set(attrs: &mut [AttributeProto], new: AttributeProto) {
        let slot = attrs.iter_mut().find(|a| a.name == new.name).unwrap();
        *slot = new;
    }

    /// Parses the changed model and checks the error mentions `expected`.
    fn check_refused(change: impl FnOnce(&mut Vec<AttributeProto>), expected: &str) {
        let err = parse_forest(&regressor_node(change), "target", 1).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(expected), "{msg:?} lacks {expected:?}");
    }

    #[test]
    fn malformed_trees_are_refused_at_load() {
        assert!(parse_forest(&regressor_node(|_| {}), "target", 1).is_ok());
        check_refused(
            |a| set(a, ints("nodes_truenodeids", &[7, 0, 0])),
            "points to missing node 7",
        );
        check_refused(
            |a| {
                set(
                    a,
                    strings("nodes_modes", &["BRANCH_LEQ", "LEAF", "BRANCH_LT"]),
                );
                set(a, ints("nodes_truenodeids", &[1, 0, 2]));
                set(a, ints("nodes_falsenodeids", &[2, 0, 1]));
            },
            "reached twice: not a tree",
        );
        check_refused(
            |a| set(a, ints("nodes_truenodeids", &[0, 0, 0])),
            "node 0 of tree 0 is not reachable from the tree's root",
        );
        check_refused(
            |a| set(a, strings("nodes_modes", &["LEAF", "LEAF", "LEAF"])),
            "tree 0 has more than one root",
        );
        check_refused(
            |a| set(a, ints("nodes_nodeids", &[0, 1, 1])),
            "node 1 of tree 0 is defined twice",
        );
        check_refused(
            |a| set(a, ints("target_nodeids", &[0, 2])),
            "which is not a leaf",
        );
        check_refused(
            |a| set(a, ints("target_nodeids", &[1, 9])),
            "missing node 9",
        );
        check_refused(
            |a| set(a, ints("target_ids", &[0, 3])),
            "is for output 3 but there are 1",
        );
        check_refused(|a| set(a, floats("nodes_values", &[0.5])), "nodes_values");
        check_refused(
            |a| set(a, strings("nodes_modes", &["BRANCH_XOR", "LEAF", "LEAF"])),
            "unknown node mode BRANCH_XOR",
        );
        check_refused(
            |a| set(a, ints("nodes_featureids", &[-1, 0, 0])),
            "invalid feature id -1",
        );
        check_refused(
            |a| {
                a.push(AttributeProto {
                    name: "nodes_values_as_tensor".into(),
                    r#type: AttributeType::Tensor as i32,
                    ..Default::default()
                })
            },
            "double-precision trees",
        );
    }

    #[test]
    fn inputs_narrower_than_the_features_used_are_errors() {
        let node = regressor_node(|a| set(a, ints("nodes_featureids", &[4, 0, 0])));
        let forest = Arc::new(parse_forest(&node, "target", 1).unwrap());
        let op = Regressor {
            forest,
            aggregate: Aggregate::Sum,
            base_values: vec![0.0],
        };
        let ok = op.eval(
            &EvalContext::out_of_plan(),
            tvec![tensor2(&[[0f32; 5]]).into_tvalue()],
        );
        assert_eq!(
            ok.unwrap()[0]
                .try_as_plain_ram()
                .unwrap()
                .as_slice::<f32>()
                .unwrap(),
            &[1.0]
        );
        let err = op
            .eval(
                &EvalContext::out_of_plan(),
                tvec![tensor2(&[[0f32; 2]]).into_tvalue()],
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("the trees use feature 4 but the input has 2 columns"),
            "{err}"
        );
    }
}
