//! LightGBM text models (`Booster.save_model`, `LGBMModel.booster_.save_model`):
//! the header, `Tree=N` blocks with numerical and categorical splits and
//! linear leaves, and the objectives' output conversions.
//!
//! Predictions follow `GBDT::Predict` and `Tree::Predict`: each row's scores
//! start at zero and add the trees' outputs in `f64`, iteration by iteration;
//! random-forest models (`average_output`) divide by the number of
//! iterations before the conversion (but not for raw scores, as LightGBM's
//! `PredictRaw` does not); values with `|x| <= 1e-35` are read as 0, as
//! LightGBM's dense-row reader does.

use std::collections::HashMap;

use crate::forest::{self, CATEGORICAL, Forest, Lgb, NAN_LEFT, Part, Root, SrcNode, ZERO_MISSING};
use crate::{Task, TreeError};

/// Rows predicted together: each group of trees is walked for a block of rows while it is in cache.
const BLOCK: usize = 64;
/// Trees walked in lockstep for one row.
const LANES: usize = 8;

/// The objectives this crate knows, for error messages.
pub(crate) const SUPPORTED: &str = "regression, regression_l1, huber, fair, quantile, mape, \
    poisson, gamma, tweedie, binary, multiclass, multiclassova, cross_entropy, \
    cross_entropy_lambda, lambdarank, rank_xendcg, custom (and LightGBM's aliases of these)";

/// How raw scores become predictions (`ObjectiveFunction::ConvertOutput`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Objective {
    /// The regression family; `sqrt` squares the output back (`reg_sqrt=True`).
    Regression {
        sqrt: bool,
    },
    /// poisson, gamma, tweedie.
    Exp,
    Binary {
        sigmoid: f64,
    },
    MultiClass,
    MultiClassOva {
        sigmoid: f64,
    },
    /// cross_entropy (xentropy): a plain sigmoid.
    CrossEntropy,
    /// cross_entropy_lambda: `log(1 + exp(x))`.
    CrossEntropyLambda,
    Ranking,
    /// No objective, or a custom one: raw scores.
    Raw,
}

/// LightGBM's `ParseObjectiveAlias`.
fn objective_alias(name: &str) -> &str {
    match name {
        "regression"
        | "regression_l2"
        | "mean_squared_error"
        | "mse"
        | "l2"
        | "l2_root"
        | "root_mean_squared_error"
        | "rmse" => "regression",
        "regression_l1" | "mean_absolute_error" | "l1" | "mae" => "regression_l1",
        "multiclass" | "softmax" => "multiclass",
        "multiclassova" | "multiclass_ova" | "ova" | "ovr" => "multiclassova",
        "xentropy" | "cross_entropy" => "cross_entropy",
        "xentlambda" | "cross_entropy_lambda" => "cross_entropy_lambda",
        "mean_absolute_percentage_error" | "mape" => "mape",
        "rank_xendcg" | "xendcg" | "xe_ndcg" | "xe_ndcg_mart" | "xendcg_mart" => "rank_xendcg",
        "none" | "null" | "custom" | "na" => "custom",
        other => other,
    }
}

/// A loaded LightGBM model.
#[derive(Debug)]
pub struct LgbModel {
    num_features: usize,
    /// Trees per iteration, which is also the number of output columns.
    per_iteration: usize,
    objective_text: String,
    objective: Objective,
    average_output: bool,
    feature_names: Option<Vec<String>>,
    forest: Forest,
    trees: Vec<LgbTree>,
    leaf_values: Vec<f64>,
    /// Parallel to `leaf_values` when any tree has linear leaves.
    linear: Vec<LinearLeaf>,
    linear_features: Vec<u32>,
    linear_coeffs: Vec<f64>,
}

#[derive(Debug, Clone, Copy)]
struct LgbTree {
    root: Root,
    linear: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct LinearLeaf {
    constant: f64,
    start: u32,
    len: u32,
}

/// The `key=value` lines of one section, with the line number of each key.
struct Section<'a> {
    name: String,
    values: HashMap<&'a str, &'a str>,
}

impl<'a> Section<'a> {
    fn err(&self, key: &str, message: impl Into<String>) -> TreeError {
        let field = if self.name.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.name)
        };
        TreeError::field(field, message)
    }

    fn get(&self, key: &str) -> Option<&'a str> {
        self.values.get(key).copied()
    }

    fn req(&self, key: &str) -> Result<&'a str, TreeError> {
        self.get(key).ok_or_else(|| self.err(key, "missing"))
    }

    fn int(&self, key: &str, min: i64, max: i64) -> Result<i64, TreeError> {
        let s = self.req(key)?;
        s.trim()
            .parse::<i64>()
            .ok()
            .filter(|v| (min..=max).contains(v))
            .ok_or_else(|| self.err(key, format!("expected an integer between {min} and {max}")))
    }

    /// A space-separated array of exactly `n` values (`n == 0` accepts a missing key).
    fn array<T: std::str::FromStr>(&self, key: &str, n: usize) -> Result<Vec<T>, TreeError> {
        let Some(s) = self.get(key) else {
            return if n == 0 {
                Ok(Vec::new())
            } else {
                Err(self.err(key, "missing"))
            };
        };
        let mut out = Vec::with_capacity(n.min(s.len() / 2 + 1));
        for (i, tok) in s.split_ascii_whitespace().enumerate() {
            if i >= n {
                return Err(self.err(
                    key,
                    format!(
                        "expected {n} values, found {}",
                        s.split_ascii_whitespace().count()
                    ),
                ));
            }
            let v = tok
                .parse::<T>()
                .map_err(|_| self.err(&format!("{key}[{i}]"), "expected a number"))?;
            out.push(v);
        }
        if out.len() != n {
            return Err(self.err(key, format!("expected {n} values, found {}", out.len())));
        }
        Ok(out)
    }
}

/// Splits the text into the header section and one section per `Tree=N` block.
fn sections(text: &str) -> Result<(Section<'_>, Vec<Section<'_>>), TreeError> {
    let mut header = Section {
        name: String::new(),
        values: HashMap::new(),
    };
    let mut trees: Vec<Section<'_>> = Vec::new();
    for raw in text.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line == "end of trees" {
            break;
        }
        if let Some(id) = line.strip_prefix("Tree=") {
            let expected = trees.len();
            if id.trim().parse::<usize>().ok() != Some(expected) {
                return Err(TreeError::field(
                    format!("Tree={id}"),
                    format!("expected tree number {expected}"),
                ));
            }
            trees.push(Section {
                name: format!("Tree={expected}"),
                values: HashMap::new(),
            });
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        let section = trees.last_mut().unwrap_or(&mut header);
        section.values.insert(key, value);
    }
    Ok((header, trees))
}

impl LgbModel {
    /// Parses a LightGBM text model.
    pub(crate) fn from_text(bytes: &[u8]) -> Result<LgbModel, TreeError> {
        let text = std::str::from_utf8(bytes).map_err(|e| TreeError::Syntax {
            format: "LightGBM text model",
            offset: e.valid_up_to(),
            message: "the file is not valid UTF-8".into(),
        })?;
        let (header, tree_sections) = sections(text)?;

        let num_class = header.int("num_class", 1, 1 << 16)? as usize;
        let per_iteration = match header.get("num_tree_per_iteration") {
            Some(_) => header.int("num_tree_per_iteration", 1, 1 << 16)? as usize,
            None => num_class,
        };
        if per_iteration != num_class {
            return Err(TreeError::unsupported(
                "num_tree_per_iteration",
                format!("{per_iteration} trees per iteration with num_class={num_class}"),
            ));
        }
        let max_feature_idx = header.int("max_feature_idx", 0, forest::MAX_FEATURES as i64 - 1)?;
        let num_features = max_feature_idx as usize + 1;
        let average_output = header.get("average_output").is_some();

        let objective_text = header
            .get("objective")
            .unwrap_or("custom")
            .trim()
            .to_string();
        let objective = parse_objective(&objective_text, num_class)
            .map_err(|message| header.err("objective", message))?;
        let objective = match objective {
            Some(o) => o,
            None => {
                return Err(TreeError::UnknownObjective {
                    field: "objective".into(),
                    supported: SUPPORTED,
                });
            }
        };

        if tree_sections.is_empty() {
            return Err(header.err("Tree=0", "the model has no trees"));
        }
        if tree_sections.len() % per_iteration != 0 {
            return Err(header.err(
                "num_tree_per_iteration",
                format!(
                    "the model has {} trees, which is not a multiple of {per_iteration}",
                    tree_sections.len()
                ),
            ));
        }

        let mut model = LgbModel {
            num_features,
            per_iteration,
            objective_text,
            objective,
            average_output,
            feature_names: header
                .get("feature_names")
                .map(|n| n.split(' ').map(str::to_string).collect::<Vec<_>>())
                .filter(|names| names.len() == num_features),
            forest: Forest::new(num_features),
            trees: Vec::with_capacity(tree_sections.len()),
            leaf_values: Vec::new(),
            linear: Vec::new(),
            linear_features: Vec::new(),
            linear_coeffs: Vec::new(),
        };
        for section in &tree_sections {
            model.load_tree(section)?;
        }
        if u32::try_from(model.leaf_values.len()).is_err() {
            return Err(header.err("Tree=0", "the model has too many leaves"));
        }
        Ok(model)
    }

    fn load_tree(&mut self, s: &Section<'_>) -> Result<(), TreeError> {
        let num_leaves = s.int("num_leaves", 1, i64::from(i32::MAX))? as usize;
        let num_cat = s.int("num_cat", 0, i64::from(i32::MAX))? as usize;
        let leaf_values: Vec<f64> = s.array("leaf_value", num_leaves)?;
        let linear = match s.get("is_linear") {
            Some(_) => s.int("is_linear", 0, 1)? == 1,
            None => false,
        };

        let first_slot = self.leaf_values.len();
        self.leaf_values.extend_from_slice(&leaf_values);
        if linear {
            self.load_linear_leaves(s, num_leaves)?;
        } else if !self.linear.is_empty() {
            self.linear
                .resize(self.leaf_values.len(), LinearLeaf::default());
        }

        let root = if num_leaves == 1 {
            self.forest
                .push_tree(&[SrcNode::Leaf {
                    slot: first_slot as u32,
                }])
                .map_err(|e| s.err("num_leaves", e.message))?
        } else {
            let n = num_leaves - 1;
            let lefts: Vec<i64> = s.array("left_child", n)?;
            let rights: Vec<i64> = s.array("right_child", n)?;
            let features: Vec<i64> = s.array("split_feature", n)?;
            let thresholds: Vec<f64> = s.array("threshold", n)?;
            let decision: Vec<i64> = match s.get("decision_type") {
                Some(_) => s.array("decision_type", n)?,
                None => vec![0; n],
            };

            // Category sets of this tree, pushed once each.
            let mut cat_sets = Vec::with_capacity(num_cat);
            if num_cat > 0 {
                let bounds: Vec<i64> = s.array("cat_boundaries", num_cat + 1)?;
                let total = usize::try_from(*bounds.last().unwrap_or(&0))
                    .map_err(|_| s.err("cat_boundaries", "must not be negative"))?;
                let words: Vec<u32> = s.array("cat_threshold", total)?;
                for i in 0..num_cat {
                    let range = usize::try_from(bounds[i])
                        .ok()
                        .zip(usize::try_from(bounds[i + 1]).ok())
                        .filter(|(a, b)| a <= b && *b <= total)
                        .ok_or_else(|| {
                            s.err(
                                &format!("cat_boundaries[{i}]"),
                                "boundaries must be increasing and within cat_threshold",
                            )
                        })?;
                    let id = self
                        .forest
                        .push_cat_set(&words[range.0..range.1])
                        .map_err(|m| s.err("cat_threshold", m))?;
                    cat_sets.push(id);
                }
            }

            let child = |c: i64| -> usize {
                if c >= 0 {
                    c as usize
                } else {
                    // Leaf `!c` follows the n internal nodes; out-of-range values fail in the builder.
                    usize::try_from(!c).map_or(usize::MAX, |l| {
                        if l < num_leaves { n + l } else { usize::MAX }
                    })
                }
            };
            let mut src = Vec::with_capacity(n + num_leaves);
            for i in 0..n {
                let dt = decision[i];
                let default_left = dt & 2 != 0;
                let missing_type = (dt >> 2) & 3;
                let (flags, data) = if num_cat > 0 && dt & 1 != 0 {
                    // The threshold of a categorical split is the index of its category set.
                    let idx = thresholds[i];
                    let set = (idx >= 0.0 && idx < num_cat as f64)
                        .then(|| cat_sets[idx as usize])
                        .ok_or_else(|| {
                            s.err(
                                &format!("threshold[{i}]"),
                                format!("category set {idx} does not exist ({num_cat} sets)"),
                            )
                        })?;
                    // CategoricalDecision sends NaN right.
                    (CATEGORICAL, set)
                } else {
                    let t = thresholds[i];
                    let flags = match missing_type {
                        // NaN: missing values take the default direction.
                        2 => default_left_flag(default_left),
                        // Zero: NaN is read as 0, and zeros take the default direction.
                        1 => default_left_flag(default_left) | ZERO_MISSING,
                        // None: NaN is read as 0 and compared.
                        _ => default_left_flag(0.0 <= t),
                    };
                    (flags, forest::lgb_threshold(t).to_bits())
                };
                let feature = usize::try_from(features[i]).unwrap_or(usize::MAX);
                src.push(SrcNode::Split {
                    feature,
                    flags,
                    data,
                    left: child(lefts[i]),
                    right: child(rights[i]),
                });
            }
            for l in 0..num_leaves {
                src.push(SrcNode::Leaf {
                    slot: (first_slot + l) as u32,
                });
            }
            self.forest.push_tree(&src).map_err(|e| {
                let field = match e.part {
                    Part::Feature => "split_feature",
                    Part::Right => "right_child",
                    Part::Categories => "threshold",
                    Part::Left | Part::Tree => "left_child",
                };
                if e.node < n {
                    s.err(&format!("{field}[{}]", e.node), e.message)
                } else {
                    s.err("left_child", format!("leaf {}: {}", e.node - n, e.message))
                }
            })?
        };
        self.trees.push(LgbTree { root, linear });
        Ok(())
    }

    fn load_linear_leaves(&mut self, s: &Section<'_>, num_leaves: usize) -> Result<(), TreeError> {
        let constants: Vec<f64> = match s.get("leaf_const") {
            Some(_) => s.array("leaf_const", num_leaves)?,
            None => vec![0.0; num_leaves],
        };
        let counts: Vec<u32> = match s.get("num_features") {
            Some(_) => s.array("num_features", num_leaves)?,
            None => vec![0; num_leaves],
        };
        let total = counts
            .iter()
            .try_fold(0usize, |a, &c| a.checked_add(c as usize))
            .ok_or_else(|| s.err("num_features", "too many features"))?;
        let features: Vec<i64> = s.array("leaf_features", total)?;
        let coeffs: Vec<f64> = s.array("leaf_coeff", total)?;
        for (i, &f) in features.iter().enumerate() {
            if !(0..self.num_features as i64).contains(&f) {
                return Err(s.err(
                    &format!("leaf_features[{i}]"),
                    format!(
                        "feature {f} is out of range (the model has {} features)",
                        self.num_features
                    ),
                ));
            }
        }
        // Earlier trees without linear leaves get empty linear models.
        self.linear
            .resize(self.leaf_values.len() - num_leaves, LinearLeaf::default());
        let mut at = 0usize;
        for (l, &count) in counts.iter().enumerate() {
            let start = self.linear_features.len();
            let start = u32::try_from(start).map_err(|_| s.err("leaf_features", "too many"))?;
            self.linear_features
                .extend(features[at..at + count as usize].iter().map(|&f| f as u32));
            self.linear_coeffs
                .extend_from_slice(&coeffs[at..at + count as usize]);
            at += count as usize;
            self.linear.push(LinearLeaf {
                constant: constants[l],
                start,
                len: count,
            });
        }
        Ok(())
    }

    pub(crate) fn num_features(&self) -> usize {
        self.num_features
    }

    pub(crate) fn num_outputs(&self) -> usize {
        self.per_iteration
    }

    pub(crate) fn feature_names(&self) -> Option<&[String]> {
        self.feature_names.as_deref()
    }

    pub(crate) fn objective(&self) -> &str {
        &self.objective_text
    }

    pub(crate) fn num_trees(&self) -> usize {
        self.trees.len()
    }

    pub(crate) fn task(&self) -> Task {
        match self.objective {
            Objective::Binary { .. } => Task::BinaryClassification,
            Objective::MultiClass | Objective::MultiClassOva { .. } => Task::MultiClass {
                classes: self.per_iteration,
            },
            Objective::Ranking => Task::Ranking,
            Objective::Regression { .. }
            | Objective::Exp
            | Objective::CrossEntropy
            | Objective::CrossEntropyLambda
            | Objective::Raw => Task::Regression,
        }
    }

    /// The output of a tree whose leaf for `row` is `slot` (`Tree::Predict`).
    #[inline(always)]
    fn tree_output(&self, tree: LgbTree, slot: usize, row: &[f32]) -> f64 {
        if !tree.linear {
            return self.leaf_values[slot];
        }
        let leaf = self.linear[slot];
        let mut out = leaf.constant;
        let range = leaf.start as usize..(leaf.start + leaf.len) as usize;
        for (&f, &c) in self.linear_features[range.clone()]
            .iter()
            .zip(&self.linear_coeffs[range])
        {
            let x = row[f as usize];
            if x.is_nan() {
                // Tree::Predict falls back to the plain leaf value.
                return self.leaf_values[slot];
            }
            let x = if x.abs() <= forest::LGB_ZERO { 0.0 } else { x };
            out += c * f64::from(x);
        }
        out
    }

    /// Raw scores (`raw_score=True`), `rows × num_outputs`. Leaves are found `LANES` trees
    /// at a time but added in tree order, so the `f64` sums are LightGBM's.
    pub(crate) fn raw(&self, x: &[f32], rows: usize) -> Vec<f64> {
        let k = self.per_iteration;
        let nf = self.num_features;
        let mut out = vec![0f64; rows * k];
        for (b, chunk) in out.chunks_mut(BLOCK * k).enumerate() {
            let block = &x[b * BLOCK * nf..];
            let block_rows = chunk.len() / k;
            let mut first = 0;
            for trees in self.trees.chunks(LANES) {
                if let Ok(lanes) = <&[LgbTree; LANES]>::try_from(trees) {
                    let roots = lanes.map(|t| t.root);
                    for r in 0..block_rows {
                        let row = &block[r * nf..(r + 1) * nf];
                        let slots = self.forest.leaves::<Lgb, LANES>(&roots, row);
                        for (j, slot) in slots.into_iter().enumerate() {
                            chunk[r * k + (first + j) % k] +=
                                self.tree_output(lanes[j], slot as usize, row);
                        }
                    }
                } else {
                    for (j, &tree) in trees.iter().enumerate() {
                        for r in 0..block_rows {
                            let row = &block[r * nf..(r + 1) * nf];
                            let slot = self.forest.leaf::<Lgb>(tree.root, row) as usize;
                            chunk[r * k + (first + j) % k] += self.tree_output(tree, slot, row);
                        }
                    }
                }
                first += trees.len();
            }
        }
        out
    }

    /// Converted predictions (`Booster.predict`), `rows × num_outputs`.
    pub(crate) fn predict(&self, x: &[f32], rows: usize) -> Vec<f64> {
        let mut out = self.raw(x, rows);
        let k = self.per_iteration;
        if self.average_output {
            let iterations = (self.trees.len() / k) as f64;
            out.iter_mut().for_each(|v| *v /= iterations);
        }
        let sigmoid = |s: f64, v: f64| 1.0 / (1.0 + (-s * v).exp());
        match self.objective {
            Objective::Regression { sqrt: true } => out
                .iter_mut()
                .for_each(|v| *v = v.signum_or_zero() * *v * *v),
            Objective::Regression { sqrt: false } | Objective::Ranking | Objective::Raw => {}
            Objective::Exp => out.iter_mut().for_each(|v| *v = v.exp()),
            Objective::Binary { sigmoid: s } | Objective::MultiClassOva { sigmoid: s } => {
                out.iter_mut().for_each(|v| *v = sigmoid(s, *v))
            }
            Objective::CrossEntropy => out.iter_mut().for_each(|v| *v = sigmoid(1.0, *v)),
            Objective::CrossEntropyLambda => out.iter_mut().for_each(|v| *v = v.exp().ln_1p()),
            Objective::MultiClass => out.chunks_mut(k).for_each(softmax),
        }
        out
    }

    /// Class labels as `LGBMClassifier.predict` computes them (class indices).
    pub(crate) fn labels(&self, x: &[f32], rows: usize) -> Option<Vec<i64>> {
        match self.objective {
            Objective::Binary { .. } => Some(
                self.predict(x, rows)
                    .iter()
                    .map(|&p| i64::from(p > 0.5))
                    .collect(),
            ),
            Objective::MultiClass | Objective::MultiClassOva { .. } => Some(
                self.predict(x, rows)
                    .chunks(self.per_iteration)
                    .map(|p| crate::argmax(p) as i64)
                    .collect(),
            ),
            _ => None,
        }
    }
}

fn default_left_flag(left: bool) -> u32 {
    if left { NAN_LEFT } else { 0 }
}

/// `Common::Sign`: -1, 0 or 1.
trait SignOrZero {
    fn signum_or_zero(self) -> f64;
}

impl SignOrZero for f64 {
    fn signum_or_zero(self) -> f64 {
        if self > 0.0 {
            1.0
        } else if self < 0.0 {
            -1.0
        } else {
            0.0
        }
    }
}

/// `Common::Softmax` in f64.
fn softmax(row: &mut [f64]) {
    let Some(&first) = row.first() else { return };
    let wmax = row[1..].iter().fold(first, |m, &v| v.max(m));
    let mut wsum = 0f64;
    for v in row.iter_mut() {
        *v = (*v - wmax).exp();
        wsum += *v;
    }
    row.iter_mut().for_each(|v| *v /= wsum);
}

/// Parses the `objective=` line: a type (or alias) and `key:value` parameters.
/// `Ok(None)` means the type is unknown.
fn parse_objective(text: &str, num_class: usize) -> Result<Option<Objective>, String> {
    let mut tokens = text.split_ascii_whitespace();
    let name = objective_alias(tokens.next().unwrap_or("custom"));
    let params: Vec<&str> = tokens.collect();
    let param = |key: &str| {
        params
            .iter()
            .find_map(|p| p.split_once(':').filter(|(k, _)| *k == key).map(|(_, v)| v))
    };
    let sigmoid = || -> Result<f64, String> {
        let s = param("sigmoid").ok_or("missing the sigmoid parameter")?;
        s.parse::<f64>()
            .ok()
            .filter(|v| *v > 0.0)
            .ok_or_else(|| "sigmoid must be a positive number".to_string())
    };
    let classes = || -> Result<(), String> {
        let s = param("num_class").ok_or("missing the num_class parameter")?;
        match s.parse::<usize>() {
            Ok(k) if k == num_class => Ok(()),
            _ => Err(format!(
                "its num_class does not match the header's num_class={num_class}"
            )),
        }
    };
    let sqrt = params.contains(&"sqrt");
    Ok(Some(match name {
        "regression" | "regression_l1" | "quantile" | "fair" | "mape" => {
            Objective::Regression { sqrt }
        }
        // RegressionHuberLoss disables sqrt in its constructor.
        "huber" => Objective::Regression { sqrt: false },
        "poisson" | "gamma" | "tweedie" => Objective::Exp,
        "binary" => Objective::Binary {
            sigmoid: sigmoid()?,
        },
        "multiclass" => {
            classes()?;
            Objective::MultiClass
        }
        "multiclassova" => {
            classes()?;
            Objective::MultiClassOva {
                sigmoid: sigmoid()?,
            }
        }
        "cross_entropy" => Objective::CrossEntropy,
        "cross_entropy_lambda" => Objective::CrossEntropyLambda,
        "lambdarank" | "rank_xendcg" => Objective::Ranking,
        "custom" => Objective::Raw,
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objectives_parse_with_parameters_and_aliases() {
        let check = |text: &str, k: usize, want: Objective| {
            assert_eq!(parse_objective(text, k), Ok(Some(want)), "{text}");
        };
        check("binary sigmoid:0.5", 1, Objective::Binary { sigmoid: 0.5 });
        check("regression sqrt", 1, Objective::Regression { sqrt: true });
        check("l2", 1, Objective::Regression { sqrt: false });
        check("huber sqrt", 1, Objective::Regression { sqrt: false });
        check("multiclass num_class:3", 3, Objective::MultiClass);
        check(
            "multiclassova num_class:3 sigmoid:2",
            3,
            Objective::MultiClassOva { sigmoid: 2.0 },
        );
        check("xentropy", 1, Objective::CrossEntropy);
        check("tweedie", 1, Objective::Exp);
        check("none", 1, Objective::Raw);
        check("lambdarank", 1, Objective::Ranking);
        assert_eq!(parse_objective("nope", 1), Ok(None));
        assert!(parse_objective("binary", 1).is_err());
        assert!(parse_objective("binary sigmoid:-1", 1).is_err());
        assert!(parse_objective("multiclass num_class:4", 3).is_err());
    }

    fn model(tree: &str) -> String {
        format!(
            "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n\
             max_feature_idx=1\nobjective=regression\nfeature_names=a b\n\
             feature_infos=none none\ntree_sizes=1\n\nTree=0\n{tree}\n\nend of trees\n"
        )
    }

    #[test]
    fn decision_type_bits() {
        // One split on feature 0 at 0.5; leaves 1 (left) and 2 (right).
        let check = |decision_type: i64, threshold: f64, x: f32, want: f64| {
            let text = model(&format!(
                "num_leaves=2\nnum_cat=0\nsplit_feature=0\nthreshold={threshold}\n\
                 decision_type={decision_type}\nleft_child=-1\nright_child=-2\n\
                 leaf_value=1 2\nshrinkage=1"
            ));
            let m = LgbModel::from_text(text.as_bytes()).unwrap();
            assert_eq!(
                m.raw(&[x, 0.0], 1),
                vec![want],
                "decision_type={decision_type} threshold={threshold} x={x}"
            );
        };
        // Missing type None (0): NaN is read as 0.
        check(0, 0.5, f32::NAN, 1.0);
        check(0, -0.5, f32::NAN, 2.0);
        check(2, -0.5, f32::NAN, 2.0); // default-left is ignored for None
        check(0, 0.5, 0.5, 1.0); // <=
        // Zero (4): zeros and NaN take the default direction.
        check(4, 0.5, 0.0, 2.0);
        check(4 | 2, 0.5, 0.0, 1.0);
        check(4 | 2, -0.5, f32::NAN, 1.0);
        check(4, 0.5, 1e-36, 2.0);
        check(4, 0.5, 0.25, 1.0);
        // NaN (8): NaN takes the default direction, zero is compared.
        check(8, 0.5, f32::NAN, 2.0);
        check(8 | 2, -0.5, f32::NAN, 1.0);
        check(8 | 2, -0.5, 0.0, 2.0);
    }

    #[test]
    fn categorical_bitsets() {
        // Categories {1, 33} go left; set 0 holds two words.
        let text = model(
            "num_leaves=2\nnum_cat=1\nsplit_feature=1\nthreshold=0\ndecision_type=1\n\
             left_child=-1\nright_child=-2\nleaf_value=1 2\ncat_boundaries=0 2\n\
             cat_threshold=2 2\nshrinkage=1",
        );
        let m = LgbModel::from_text(text.as_bytes()).unwrap();
        for (x, want) in [
            (1.0, 1.0),
            (33.0, 1.0),
            (1.7, 1.0),
            (0.0, 2.0),
            (2.0, 2.0),
            (64.0, 2.0),
            (-1.0, 2.0),
            (f32::NAN, 2.0),
        ] {
            assert_eq!(m.raw(&[0.0, x], 1), vec![want], "x={x}");
        }
    }

    #[test]
    fn linear_leaves_fall_back_on_nan() {
        let text = model(
            "num_leaves=2\nnum_cat=0\nsplit_feature=0\nthreshold=0\ndecision_type=8\n\
             left_child=-1\nright_child=-2\nleaf_value=1 2\nis_linear=1\nleaf_const=10 20\n\
             num_features=1 2\nleaf_features=1  0 1 \nleaf_coeff=2  3 4 \nshrinkage=1",
        );
        let m = LgbModel::from_text(text.as_bytes()).unwrap();
        assert_eq!(m.raw(&[-1.0, 5.0], 1), vec![10.0 + 2.0 * 5.0]);
        assert_eq!(m.raw(&[1.0, 5.0], 1), vec![20.0 + 3.0 + 4.0 * 5.0]);
        assert_eq!(m.raw(&[1.0, f32::NAN], 1), vec![2.0]);
    }

    #[test]
    fn malformed_trees_name_the_field() {
        let check = |tree: &str, want: &str| {
            let err = LgbModel::from_text(model(tree).as_bytes()).unwrap_err();
            assert!(
                err.to_string().contains(want),
                "{err} does not contain {want}"
            );
        };
        let base = "num_leaves=2\nnum_cat=0\nsplit_feature=0\nthreshold=0\n\
                    left_child=-1\nright_child=-2\nleaf_value=1 2";
        check(
            &base.replace("leaf_value=1 2", "leaf_value=1"),
            "Tree=0.leaf_value: expected 2 values, found 1",
        );
        check(
            &base.replace("split_feature=0", "split_feature=7"),
            "Tree=0.split_feature[0]: split feature 7",
        );
        check(
            &base.replace("right_child=-2", "right_child=-3"),
            "right child",
        );
        check(
            &base.replace("right_child=-2", "right_child=0"),
            "reached twice",
        );
        check(
            &base.replace("threshold=0", "threshold=x"),
            "Tree=0.threshold[0]: expected a number",
        );
        check(
            &base.replace("num_leaves=2", "num_leaves=0"),
            "Tree=0.num_leaves",
        );
        let text = model(base).replace("objective=regression", "objective=rmsle_custom x:1");
        let err = LgbModel::from_text(text.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("objective: unknown objective; supported"),
            "{err}"
        );
        let text = model(base).replace("num_class=1\n", "");
        let err = LgbModel::from_text(text.as_bytes())
            .unwrap_err()
            .to_string();
        assert_eq!(err, "num_class: missing");
    }
}
