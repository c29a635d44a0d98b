//! XGBoost models: the JSON/UBJ schema of XGBoost 1.6 to 3.x, `gbtree`, `dart`
//! and `gblinear` boosters, and the objectives' output transforms.
//!
//! Predictions follow XGBoost's CPU predictor step by step so that they equal
//! `Booster.predict(DMatrix(x))` bit for bit where the arithmetic allows:
//! margins start at the intercept (`base_score` passed through the
//! objective's link, e.g. logit for `binary:logistic`), leaf values are added
//! in `f32` in tree order, a `dart` tree's leaf is multiplied by its
//! `weight_drop` before it is added, and the transforms use `f32` `exp` like
//! XGBoost's `common::Sigmoid` and `common::Softmax`.

use crate::doc::{At, Value};
use crate::forest::{self, CATEGORICAL, Forest, NAN_LEFT, Part, Root, SrcNode, Xgb};
use crate::{Task, TreeError};

/// Rows predicted together: each group of trees is walked for a block of rows while it is in cache.
const BLOCK: usize = 64;
/// Trees walked in lockstep for one row.
const LANES: usize = 8;

/// The objectives this crate knows, for error messages.
pub(crate) const SUPPORTED: &str = "reg:squarederror, reg:linear, reg:squaredlogerror, \
    reg:pseudohubererror, reg:absoluteerror, reg:quantileerror, reg:logistic, binary:logistic, \
    binary:logitraw, binary:hinge, count:poisson, reg:gamma, reg:tweedie, survival:cox, \
    survival:aft, multi:softprob, multi:softmax, rank:pairwise, rank:ndcg, rank:map";

/// How margins become predictions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transform {
    Identity,
    Sigmoid,
    Exp,
    /// `binary:hinge`: 1 if the margin is positive, else 0.
    Hinge,
    /// `multi:softprob`: softmax over the classes.
    Softmax,
    /// `multi:softmax`: the index of the largest margin.
    ArgMax,
}

/// How `base_score` (stored in prediction space) becomes a margin (`ObjFunction::ProbToMargin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Identity,
    Logit,
    Log,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Regression,
    Binary,
    MultiClass,
    Ranking,
    Survival,
}

fn objective(name: &str) -> Option<(Transform, Link, Kind)> {
    use {Kind::*, Link as L, Transform as T};
    Some(match name {
        "reg:squarederror"
        | "reg:linear"
        | "reg:squaredlogerror"
        | "reg:pseudohubererror"
        | "reg:absoluteerror"
        | "reg:quantileerror" => (T::Identity, L::Identity, Regression),
        "reg:logistic" => (T::Sigmoid, L::Logit, Regression),
        "binary:logistic" => (T::Sigmoid, L::Logit, Binary),
        "binary:logitraw" => (T::Identity, L::Identity, Binary),
        "binary:hinge" => (T::Hinge, L::Identity, Binary),
        "count:poisson" | "reg:gamma" | "reg:tweedie" => (T::Exp, L::Log, Regression),
        "survival:cox" | "survival:aft" => (T::Exp, L::Log, Survival),
        "multi:softprob" => (T::Softmax, L::Identity, MultiClass),
        "multi:softmax" => (T::ArgMax, L::Identity, MultiClass),
        "rank:pairwise" | "rank:ndcg" | "rank:map" => (T::Identity, L::Identity, Ranking),
        _ => return None,
    })
}

/// A loaded XGBoost model.
#[derive(Debug)]
pub struct XgbModel {
    num_features: usize,
    /// Margin columns: `max(num_class, num_target, 1)`.
    outputs: usize,
    /// The intercept per output, in margin space.
    base_margin: Vec<f32>,
    objective: String,
    transform: Transform,
    kind: Kind,
    booster: Booster,
    feature_names: Option<Vec<String>>,
}

#[derive(Debug)]
enum Booster {
    Trees(Trees),
    Linear(Linear),
}

#[derive(Debug)]
struct Trees {
    forest: Forest,
    trees: Vec<TreeRef>,
    /// Leaf values; a vector leaf occupies `outputs` consecutive values.
    leaf_values: Vec<f32>,
    /// `dart`'s per-tree weights.
    weight_drop: Option<Vec<f32>>,
}

#[derive(Debug, Clone, Copy)]
struct TreeRef {
    root: Root,
    /// The output column of a scalar-leaf tree; `None` for a vector-leaf (multi-target) tree.
    group: Option<u32>,
}

#[derive(Debug)]
struct Linear {
    /// `(num_feature + 1) * outputs`: feature-major weights, then the biases.
    weights: Vec<f32>,
}

impl XgbModel {
    /// Loads a model from a parsed JSON or UBJ document.
    pub(crate) fn from_document(doc: &Value<'_>) -> Result<XgbModel, TreeError> {
        let root = At::root(doc);
        if root.opt("learner").is_none() && root.opt("tree_info").is_some() {
            return Err(root.err(
                "this is LightGBM's dump_model() JSON, which cannot be loaded; \
                 save the model with Booster.save_model('model.txt') instead",
            ));
        }
        let learner = root.get("learner")?;
        let param = learner.get("learner_model_param")?;
        let nf = param.get("num_feature")?;
        let num_features: usize = nf.parse_str("a feature count")?;
        if num_features == 0 || num_features > forest::MAX_FEATURES {
            return Err(nf.err(format!(
                "{num_features} features: a model needs between 1 and {} features",
                forest::MAX_FEATURES
            )));
        }
        let nc = param.get("num_class")?;
        let num_class: usize = nc.parse_str("a class count")?;
        let num_target: usize = match param.opt("num_target") {
            Some(t) => t.parse_str("a target count")?,
            None => 1,
        };
        let outputs = num_class.max(num_target).max(1);
        if outputs > 1 << 16 {
            return Err(nc.err(format!("{outputs} outputs are more than supported")));
        }

        let obj = learner.get("objective")?.get("name")?;
        let name = obj.str()?;
        let (transform, link, kind) =
            objective(name).ok_or_else(|| TreeError::UnknownObjective {
                field: obj.path.clone(),
                supported: SUPPORTED,
            })?;
        if matches!(transform, Transform::Softmax | Transform::ArgMax) && num_class < 1 {
            return Err(nc.err(format!(
                "the objective needs num_class of at least 1, found {num_class}"
            )));
        }

        let bs = param.get("base_score")?;
        let mut base = parse_base_score(bs.str()?)
            .ok_or_else(|| bs.err("expected a number or a list of finite numbers"))?;
        if base.len() == 1 {
            base = vec![base[0]; outputs];
        } else if base.len() != outputs {
            return Err(bs.err(format!(
                "has {} values but the model has {outputs} outputs",
                base.len()
            )));
        }
        let base_margin: Vec<f32> = base.iter().map(|&b| to_margin(link, b)).collect();

        let gb = learner.get("gradient_booster")?;
        let gb_name = gb.get("name")?;
        let booster = match gb_name.str()? {
            "gbtree" => Booster::Trees(load_trees(&gb.get("model")?, num_features, outputs, None)?),
            "dart" => {
                let inner = gb.get("gbtree")?;
                let w = gb.get("weight_drop")?;
                Booster::Trees(load_trees(
                    &inner.get("model")?,
                    num_features,
                    outputs,
                    Some((w.f32s()?, w.path.clone())),
                )?)
            }
            "gblinear" => {
                let model = gb.get("model")?;
                let w = model.get("weights")?;
                let weights = w.f32s()?;
                let want = (num_features + 1) * outputs;
                if weights.len() != want {
                    return Err(w.err(format!(
                        "has {} weights, expected (num_feature + 1) × outputs = {want}",
                        weights.len()
                    )));
                }
                Booster::Linear(Linear { weights })
            }
            _ => {
                return Err(gb_name.err("unknown booster; supported: gbtree, dart, gblinear"));
            }
        };

        // Names are informational: kept only when there is one string per feature.
        let feature_names = learner
            .opt("feature_names")
            .and_then(|n| n.items().ok())
            .and_then(|items| {
                items
                    .iter()
                    .map(|i| i.str().ok().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
            })
            .filter(|names| names.len() == num_features);

        Ok(XgbModel {
            num_features,
            outputs,
            base_margin,
            objective: name.to_string(),
            transform,
            kind,
            booster,
            feature_names,
        })
    }

    pub(crate) fn num_features(&self) -> usize {
        self.num_features
    }

    pub(crate) fn num_outputs(&self) -> usize {
        if self.transform == Transform::ArgMax {
            1
        } else {
            self.outputs
        }
    }

    pub(crate) fn num_margin_outputs(&self) -> usize {
        self.outputs
    }

    pub(crate) fn feature_names(&self) -> Option<&[String]> {
        self.feature_names.as_deref()
    }

    pub(crate) fn objective(&self) -> &str {
        &self.objective
    }

    pub(crate) fn num_trees(&self) -> usize {
        match &self.booster {
            Booster::Trees(t) => t.trees.len(),
            Booster::Linear(_) => 0,
        }
    }

    pub(crate) fn task(&self) -> Task {
        match self.kind {
            Kind::Regression => Task::Regression,
            Kind::Binary if self.outputs == 1 => Task::BinaryClassification,
            Kind::Binary => Task::MultiLabel {
                labels: self.outputs,
            },
            Kind::MultiClass => Task::MultiClass {
                classes: self.outputs,
            },
            Kind::Ranking => Task::Ranking,
            Kind::Survival => Task::Survival,
        }
    }

    /// Raw margins, `rows × num_margin_outputs`. `x` has been checked to be `rows × num_features`.
    pub(crate) fn margins(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let g = self.outputs;
        let nf = self.num_features;
        let mut out = vec![0f32; rows * g];
        match &self.booster {
            Booster::Trees(trees) => {
                for (b, chunk) in out.chunks_mut(BLOCK * g).enumerate() {
                    let block = &x[b * BLOCK * nf..];
                    trees.add_block(block, nf, g, &self.base_margin, chunk);
                }
            }
            Booster::Linear(lin) => {
                // GBLinear::PredictBatchInternal uses the first intercept for every group.
                let base = self.base_margin[0];
                for (r, o) in out.chunks_mut(g).enumerate() {
                    let row = &x[r * nf..(r + 1) * nf];
                    for (gid, o) in o.iter_mut().enumerate() {
                        let mut psum = lin.weights[nf * g + gid] + base;
                        for (f, &v) in row.iter().enumerate() {
                            // Missing values are absent from XGBoost's sparse rows.
                            if !v.is_nan() {
                                psum += v * lin.weights[f * g + gid];
                            }
                        }
                        *o = psum;
                    }
                }
            }
        }
        out
    }

    /// Transformed predictions, `rows × num_outputs`.
    pub(crate) fn predict(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut m = self.margins(x, rows);
        let g = self.outputs;
        match self.transform {
            Transform::Identity => m,
            Transform::Sigmoid => {
                m.iter_mut().for_each(|v| *v = sigmoid(*v));
                m
            }
            Transform::Exp => {
                m.iter_mut().for_each(|v| *v = v.exp());
                m
            }
            Transform::Hinge => {
                m.iter_mut()
                    .for_each(|v| *v = if *v > 0.0 { 1.0 } else { 0.0 });
                m
            }
            Transform::Softmax => {
                m.chunks_mut(g).for_each(softmax);
                m
            }
            Transform::ArgMax => m.chunks(g).map(|row| find_max_index(row) as f32).collect(),
        }
    }

    /// Class labels as `XGBClassifier.predict` computes them from `predict`'s output.
    pub(crate) fn labels(&self, x: &[f32], rows: usize) -> Option<Vec<i64>> {
        match self.kind {
            Kind::Binary => Some(
                self.predict(x, rows)
                    .iter()
                    .map(|&p| i64::from(p > 0.5))
                    .collect(),
            ),
            Kind::MultiClass if self.transform == Transform::ArgMax => {
                Some(self.predict(x, rows).iter().map(|&c| c as i64).collect())
            }
            Kind::MultiClass => Some(
                self.predict(x, rows)
                    .chunks(self.outputs)
                    .map(|p| crate::argmax(p) as i64)
                    .collect(),
            ),
            _ => None,
        }
    }
}

impl Trees {
    /// Adds the trees' leaves for a block of rows to `out` (`rows × g`), which starts at the
    /// intercept. Leaves are found `LANES` trees at a time but added in tree order, so the
    /// `f32` sums are XGBoost's.
    fn add_block(&self, x: &[f32], nf: usize, g: usize, base: &[f32], out: &mut [f32]) {
        let rows = out.len() / g;
        for o in out.chunks_mut(g) {
            o.copy_from_slice(base);
        }
        let mut first = 0;
        for chunk in self.trees.chunks(LANES) {
            if let Ok(lanes) = <&[TreeRef; LANES]>::try_from(chunk) {
                let roots = lanes.map(|t| t.root);
                for r in 0..rows {
                    let row = &x[r * nf..(r + 1) * nf];
                    let slots = self.forest.leaves::<Xgb, LANES>(&roots, row);
                    for (k, slot) in slots.into_iter().enumerate() {
                        self.add(first + k, slot as usize, &mut out[r * g..(r + 1) * g]);
                    }
                }
            } else {
                for (k, tree) in chunk.iter().enumerate() {
                    for r in 0..rows {
                        let row = &x[r * nf..(r + 1) * nf];
                        let slot = self.forest.leaf::<Xgb>(tree.root, row) as usize;
                        self.add(first + k, slot, &mut out[r * g..(r + 1) * g]);
                    }
                }
            }
            first += chunk.len();
        }
    }

    /// Adds tree `t`'s leaf `slot` to one row's margins.
    #[inline(always)]
    fn add(&self, t: usize, slot: usize, out: &mut [f32]) {
        match self.trees[t].group {
            Some(group) => {
                let v = self.leaf_values[slot];
                out[group as usize] += match &self.weight_drop {
                    Some(w) => v * w[t],
                    None => v,
                };
            }
            None => {
                for (o, v) in out.iter_mut().zip(&self.leaf_values[slot..]) {
                    *o += v;
                }
            }
        }
    }
}

/// Parses `base_score`: `"5E-1"`, or a list like `"[5E-1]"` or `"[1E0,2E0]"` (XGBoost ≥ 3.1).
fn parse_base_score(s: &str) -> Option<Vec<f32>> {
    let s = s.trim();
    let inner = s
        .strip_prefix(['[', '('])
        .and_then(|t| t.strip_suffix([']', ')']))
        .unwrap_or(s);
    let values: Option<Vec<f32>> = inner
        .split(',')
        .map(|v| v.trim().parse::<f32>().ok().filter(|v| v.is_finite()))
        .collect();
    values.filter(|v| !v.is_empty())
}

/// `ObjFunction::ProbToMargin` in `f32`, as XGBoost computes it.
fn to_margin(link: Link, b: f32) -> f32 {
    match link {
        Link::Identity => b,
        Link::Logit => {
            const EPS: f32 = 1e-6;
            // common::Min/Max: NaN passes through rather than panicking.
            #[allow(clippy::manual_clamp)]
            let b = b.max(EPS).min(1.0 - EPS);
            -(1.0f32 / b - 1.0).ln()
        }
        Link::Log => b.ln(),
    }
}

/// `common::Sigmoid(float)`.
fn sigmoid(x: f32) -> f32 {
    const EPS: f32 = 1e-16;
    let x = (-x).min(88.7);
    1.0 / (x.exp() + 1.0 + EPS)
}

/// `common::Softmax`: f32 exponentials summed in f64.
fn softmax(row: &mut [f32]) {
    let Some(&first) = row.first() else { return };
    let wmax = row[1..].iter().fold(first, |m, &v| v.max(m));
    let mut wsum = 0f64;
    for v in row.iter_mut() {
        *v = (*v - wmax).exp();
        wsum += f64::from(*v);
    }
    let wsum = wsum as f32;
    row.iter_mut().for_each(|v| *v /= wsum);
}

/// `common::FindMaxIndex`: the index of the first largest value (NaN is never larger).
fn find_max_index(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Loads `gradient_booster.model` of a `gbtree` (or the inner model of a `dart`).
fn load_trees(
    model: &At<'_, '_>,
    num_features: usize,
    outputs: usize,
    weight_drop: Option<(Vec<f32>, String)>,
) -> Result<Trees, TreeError> {
    let param = model.get("gbtree_model_param")?;
    let nt = param.get("num_trees")?;
    let num_trees: usize = nt.parse_str("a tree count")?;
    let trees_at = model.get("trees")?;
    let items = trees_at.items()?;
    if items.len() != num_trees {
        return Err(nt.err(format!(
            "says {num_trees} trees but {} has {}",
            trees_at.path,
            items.len()
        )));
    }
    let info_at = model.get("tree_info")?;
    let tree_info = info_at.i64s()?;
    if tree_info.len() != num_trees {
        return Err(info_at.err(format!(
            "has {} entries for {num_trees} trees",
            tree_info.len()
        )));
    }
    if let Some((w, path)) = &weight_drop
        && w.len() != num_trees
    {
        return Err(TreeError::field(
            path.clone(),
            format!("has {} weights for {num_trees} trees", w.len()),
        ));
    }

    // Trees are stored at the position given by their `id`, as GBTreeModel::LoadModel does.
    let mut order: Vec<Option<usize>> = vec![None; num_trees];
    for (i, item) in items.iter().enumerate() {
        let id_at = item.get("id")?;
        let id = id_at.int()?;
        let slot = usize::try_from(id)
            .ok()
            .and_then(|id| order.get_mut(id))
            .ok_or_else(|| id_at.err(format!("id {id} is out of range for {num_trees} trees")))?;
        if slot.is_some() {
            return Err(id_at.err(format!("id {id} is used by two trees")));
        }
        *slot = Some(i);
    }

    let mut forest = Forest::new(num_features);
    let mut leaf_values = Vec::new();
    let mut trees = Vec::with_capacity(num_trees);
    for (id, pos) in order.iter().enumerate() {
        // Every id is in range and unique, so each position is filled.
        let Some(pos) = pos else {
            return Err(trees_at.err(format!("no tree has id {id}")));
        };
        let group = tree_info[id];
        let group_ok = usize::try_from(group).is_ok_and(|g| g < outputs);
        let tree = load_tree(&items[*pos], &mut forest, &mut leaf_values, outputs)?;
        let group = match tree.vector_leaf {
            true => None,
            false if group_ok => Some(group as u32),
            false => {
                return Err(TreeError::field(
                    format!("{}[{id}]", info_at.path),
                    format!("output group {group} is out of range for {outputs} outputs"),
                ));
            }
        };
        if group.is_none() && weight_drop.is_some() {
            return Err(TreeError::unsupported(
                items[*pos].path.clone(),
                "dart models with vector leaves (XGBoost itself cannot predict them)",
            ));
        }
        trees.push(TreeRef {
            root: tree.root,
            group,
        });
    }
    if u32::try_from(leaf_values.len()).is_err() {
        return Err(trees_at.err("the model has too many leaves"));
    }
    Ok(Trees {
        forest,
        trees,
        leaf_values,
        weight_drop: weight_drop.map(|(w, _)| w),
    })
}

struct LoadedTree {
    root: Root,
    vector_leaf: bool,
}

/// Reads one entry of `trees` and flattens it into `forest`.
fn load_tree(
    t: &At<'_, '_>,
    forest: &mut Forest,
    leaf_values: &mut Vec<f32>,
    outputs: usize,
) -> Result<LoadedTree, TreeError> {
    let param = t.get("tree_param")?;
    let nn = param.get("num_nodes")?;
    let n: usize = nn.parse_str("a node count")?;
    if n == 0 {
        return Err(nn.err("a tree needs at least one node"));
    }
    // Older models write 0 for scalar leaves.
    let leaf_size: usize = match param.opt("size_leaf_vector") {
        Some(s) => s.parse_str::<usize>("a leaf vector size")?.max(1),
        None => 1,
    };
    let vector_leaf = leaf_size > 1;
    if vector_leaf && leaf_size != outputs {
        return Err(param.err(format!(
            "size_leaf_vector is {leaf_size} but the model has {outputs} outputs"
        )));
    }

    let array = |key: &str| -> Result<(At<'_, '_>, usize), TreeError> {
        let a = t.get(key)?;
        let len = match a.value {
            Value::Array(v) => v.len(),
            Value::Typed(v) => v.len,
            v => return Err(a.err(format!("expected an array, found {}", v.kind()))),
        };
        Ok((a, len))
    };
    let sized = |key: &str| -> Result<At<'_, '_>, TreeError> {
        let (a, len) = array(key)?;
        if len != n {
            return Err(a.err(format!("has {len} entries but the tree has {n} nodes")));
        }
        Ok(a)
    };
    let lefts = sized("left_children")?.i64s()?;
    let rights_at = sized("right_children")?;
    let rights = rights_at.i64s()?;
    let features = sized("split_indices")?.i64s()?;
    let conds = sized("split_conditions")?.f32s()?;
    let default_left = sized("default_left")?.bools()?;

    // Categorical splits: a set of categories per categorical node.
    let mut cat_set_of: Vec<Option<u32>> = vec![None; n];
    if t.opt("split_type").is_some() {
        let split_type = sized("split_type")?.i64s()?;
        let cat_nodes_at = t.get("categories_nodes")?;
        let cat_nodes = cat_nodes_at.i64s()?;
        let segs_at = t.get("categories_segments")?;
        let segs = segs_at.i64s()?;
        let sizes_at = t.get("categories_sizes")?;
        let sizes = sizes_at.i64s()?;
        let cats_at = t.get("categories")?;
        let cats = cats_at.i64s()?;
        if segs.len() != cat_nodes.len() || sizes.len() != cat_nodes.len() {
            return Err(cat_nodes_at.err(format!(
                "has {} entries but categories_segments has {} and categories_sizes {}",
                cat_nodes.len(),
                segs.len(),
                sizes.len()
            )));
        }
        let mut sets = vec![None; n];
        for (k, &node) in cat_nodes.iter().enumerate() {
            let node = usize::try_from(node)
                .ok()
                .filter(|&v| v < n)
                .ok_or_else(|| {
                    TreeError::field(
                        format!("{}[{k}]", cat_nodes_at.path),
                        format!("node {node} is out of range for {n} nodes"),
                    )
                })?;
            let range = usize::try_from(segs[k])
                .ok()
                .zip(usize::try_from(sizes[k]).ok())
                .and_then(|(s, len)| Some(s..s.checked_add(len)?))
                .filter(|r| r.end <= cats.len())
                .ok_or_else(|| {
                    TreeError::field(
                        format!("{}[{k}]", segs_at.path),
                        format!(
                            "segment {} of size {} does not fit in {} categories",
                            segs[k],
                            sizes[k],
                            cats.len()
                        ),
                    )
                })?;
            // Categories that no valid input can hit (negative, or at least 2^24, which
            // XGBoost sends left as invalid) are left out of the set.
            let members: Vec<u32> = cats[range]
                .iter()
                .filter(|&&c| (0..1 << 24).contains(&c))
                .map(|&c| c as u32)
                .collect();
            sets[node] = Some(members);
        }
        for (i, kind) in split_type.iter().enumerate() {
            match kind {
                0 => {}
                1 => {
                    // A categorical node without categories sends every valid category left.
                    let members = sets[i].take().unwrap_or_default();
                    let id = forest
                        .push_cat_set(&forest::bitset(&members))
                        .map_err(|m| cats_at.err(m))?;
                    cat_set_of[i] = Some(id);
                }
                other => {
                    return Err(TreeError::field(
                        format!("{}.split_type[{i}]", t.path),
                        format!("unknown split type {other} (0 numerical, 1 categorical)"),
                    ));
                }
            }
        }
    }

    // Leaves: scalar leaves keep their value in split_conditions; vector leaves index
    // leaf_weights through right_children (XGBoost ≥ 3.1) or use base_weights (older).
    let vector_values = if vector_leaf {
        match t.opt("leaf_weights") {
            Some(lw) => Some((lw.f32s()?, true, lw.path.clone())),
            None => {
                let bw = t.get("base_weights")?;
                let v = bw.f32s()?;
                if v.len() != n * leaf_size {
                    return Err(bw.err(format!(
                        "has {} values, expected {n} nodes × {leaf_size}",
                        v.len()
                    )));
                }
                Some((v, false, bw.path.clone()))
            }
        }
    } else {
        None
    };

    let mut src = Vec::with_capacity(n);
    for i in 0..n {
        if lefts[i] == -1 {
            let slot = leaf_values.len();
            match &vector_values {
                None => leaf_values.push(conds[i]),
                Some((values, by_leaf_index, path)) => {
                    let index = if *by_leaf_index {
                        usize::try_from(rights[i]).ok()
                    } else {
                        Some(i)
                    };
                    let range = index
                        .and_then(|j| j.checked_mul(leaf_size))
                        .map(|s| s..s + leaf_size)
                        .filter(|r| r.end <= values.len())
                        .ok_or_else(|| {
                            TreeError::field(path.clone(), format!("no leaf vector for node {i}"))
                        })?;
                    leaf_values.extend_from_slice(&values[range]);
                }
            }
            src.push(SrcNode::Leaf { slot: slot as u32 });
        } else {
            let to_index = |v: i64| usize::try_from(v).unwrap_or(usize::MAX);
            let (flags, data) = match cat_set_of[i] {
                Some(set) => (CATEGORICAL, set),
                None => (0, conds[i].to_bits()),
            };
            src.push(SrcNode::Split {
                feature: to_index(features[i]),
                flags: flags | if default_left[i] { NAN_LEFT } else { 0 },
                data,
                left: to_index(lefts[i]),
                right: to_index(rights[i]),
            });
        }
    }
    let root = forest.push_tree(&src).map_err(|e| {
        let field = match e.part {
            Part::Tree => return t.err(e.message),
            Part::Feature => "split_indices",
            Part::Left => "left_children",
            Part::Right => "right_children",
            Part::Categories => "categories_nodes",
        };
        TreeError::field(format!("{}.{field}[{}]", t.path, e.node), e.message)
    })?;
    Ok(LoadedTree { root, vector_leaf })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_score_forms() {
        assert_eq!(parse_base_score("5E-1"), Some(vec![0.5]));
        assert_eq!(parse_base_score("[5E-1]"), Some(vec![0.5]));
        assert_eq!(
            parse_base_score("[1E0, -2.5E-1,3]"),
            Some(vec![1.0, -0.25, 3.0])
        );
        assert_eq!(parse_base_score("(1,2)"), Some(vec![1.0, 2.0]));
        assert_eq!(parse_base_score("[]"), None);
        assert_eq!(parse_base_score("[NaN]"), None);
        assert_eq!(parse_base_score("abc"), None);
    }

    #[test]
    fn links_match_xgboost() {
        assert_eq!(to_margin(Link::Logit, 0.5), 0.0);
        assert!((to_margin(Link::Logit, 0.25) - (1.0f32 / 3.0).ln()).abs() < 1e-7);
        // Clamped away from 0 and 1.
        assert!(to_margin(Link::Logit, 0.0).is_finite());
        assert!(to_margin(Link::Logit, 1.0).is_finite());
        assert_eq!(to_margin(Link::Log, 1.0), 0.0);
    }

    #[test]
    fn transforms() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert!(sigmoid(-1000.0) > 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        let mut row = [1.0f32, 2.0, 3.0];
        softmax(&mut row);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(row[2] > row[1] && row[1] > row[0]);
        assert_eq!(find_max_index(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(find_max_index(&[f32::NAN, 3.0]), 0);
    }
}
