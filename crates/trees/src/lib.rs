//! Native evaluators for gradient-boosted tree models, so that the model
//! server can serve XGBoost and LightGBM models without linking their C++
//! libraries.
//!
//! ```no_run
//! # fn main() -> Result<(), oxflow_trees::TreeError> {
//! use oxflow_trees::TreeModel;
//! let model = TreeModel::load(std::path::Path::new("model.json"))?;
//! let x = vec![0.5f32; 2 * model.num_features()]; // two rows, NaN means missing
//! let probabilities = model.predict(&x, 2)?; // 2 × model.num_outputs()
//! # Ok(()) }
//! ```
//!
//! # Formats
//!
//! - **XGBoost** models saved by `Booster.save_model` as JSON (`.json`) or
//!   Universal Binary JSON (`.ubj`, the same document in binary), schema of
//!   XGBoost 1.6 to 3.x: `gbtree`, `dart` and `gblinear` boosters, random
//!   forests (`num_parallel_tree`), multi-class and multi-target models
//!   (one output per tree, or vector leaves from
//!   `multi_strategy="multi_output_tree"`), categorical splits, and a vector
//!   `base_score`. The legacy binary format is refused with a message saying
//!   how to re-save the model.
//! - **LightGBM** text models saved by `Booster.save_model`: numerical splits
//!   with all missing-value types, categorical splits, linear trees
//!   (`linear_tree=True`), random forests (`boosting="rf"`) and multi-class
//!   models. LightGBM's JSON dump (`dump_model`) is refused.
//!
//! Categorical features are given as their integer codes, as the libraries
//! see them after pandas' category codes; NaN is missing.
//!
//! # Accuracy
//!
//! Predictions reproduce the libraries' own arithmetic: XGBoost sums `f32`
//! leaf values in tree order starting from the intercept, like its CPU
//! predictor, and LightGBM sums `f64` tree outputs from zero, so that
//! predictions equal `xgboost.Booster.predict(DMatrix(x))` and
//! `lightgbm.Booster.predict(x)` for `f32` inputs. [`TreeModel::predict`]
//! returns `f32` (XGBoost's type); [`TreeModel::predict_f64`] returns
//! LightGBM's `f64` results unrounded.
//!
//! # Architecture Invariant
//!
//! This crate does no I/O besides reading the model file in
//! [`TreeModel::load`], never panics on any model bytes or input, and knows
//! nothing about HTTP or the serving protocols: the server converts its wire
//! tensors into row-major `f32` slices.

#![warn(missing_docs)]

mod doc;
mod error;
#[cfg(test)]
mod fixtures;
mod forest;
mod lightgbm;
mod xgboost;

use std::path::Path;

pub use error::TreeError;
pub use lightgbm::LgbModel;
pub use xgboost::XgbModel;

/// What a model predicts, which decides what its outputs and labels mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Real values (squared error, absolute error, quantiles, Poisson, gamma, Tweedie, ...),
    /// one column per target.
    Regression,
    /// One probability (or score) of the positive class per row.
    BinaryClassification,
    /// One column per class: softmax probabilities, or one-vs-all sigmoids.
    /// For XGBoost's `multi:softmax`, `predict` returns the class index in one column.
    MultiClass {
        /// Number of classes.
        classes: usize,
    },
    /// Several independent binary labels per row (XGBoost multi-target `binary:logistic`).
    MultiLabel {
        /// Number of labels.
        labels: usize,
    },
    /// Ranking scores (learning to rank); only their order within a query matters.
    Ranking,
    /// Survival analysis (XGBoost `survival:cox` hazard ratios, `survival:aft` times).
    Survival,
}

/// A loaded model; immutable, `Send + Sync`, cheap to call concurrently.
#[derive(Debug)]
pub enum TreeModel {
    /// A model from XGBoost.
    XGBoost(XgbModel),
    /// A model from LightGBM.
    LightGbm(LgbModel),
}

impl TreeModel {
    /// Loads a model file, recognising the format by its content: XGBoost JSON
    /// or UBJ (`.json`, `.ubj`), or a LightGBM text model (`.txt`, `.model`,
    /// `.bst`...).
    pub fn load(path: &Path) -> Result<TreeModel, TreeError> {
        let bytes = std::fs::read(path).map_err(|source| TreeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        TreeModel::from_bytes(&bytes)
    }

    /// Parses a model from its bytes, recognising the format by its content.
    pub fn from_bytes(bytes: &[u8]) -> Result<TreeModel, TreeError> {
        match detect(bytes) {
            Format::XgbJson => Ok(TreeModel::XGBoost(XgbModel::from_document(
                &doc::parse_json(bytes)?,
            )?)),
            Format::XgbUbj => Ok(TreeModel::XGBoost(XgbModel::from_document(
                &doc::parse_ubjson(bytes)?,
            )?)),
            Format::LightGbm => Ok(TreeModel::LightGbm(LgbModel::from_text(bytes)?)),
            Format::XgbLegacy => Err(TreeError::LegacyXgboostBinary),
            Format::Unknown(detail) => Err(TreeError::UnknownFormat { detail }),
        }
    }

    /// `"xgboost"` or `"lightgbm"`.
    pub fn framework(&self) -> &'static str {
        match self {
            TreeModel::XGBoost(_) => "xgboost",
            TreeModel::LightGbm(_) => "lightgbm",
        }
    }

    /// The objective as the model file names it, e.g. `binary:logistic` or `binary sigmoid:1`.
    pub fn objective(&self) -> &str {
        match self {
            TreeModel::XGBoost(m) => m.objective(),
            TreeModel::LightGbm(m) => m.objective(),
        }
    }

    /// The feature names saved with the model, one per feature, if it has them (LightGBM
    /// always saves names, `Column_0`... by default; XGBoost only when trained with names).
    pub fn feature_names(&self) -> Option<&[String]> {
        match self {
            TreeModel::XGBoost(m) => m.feature_names(),
            TreeModel::LightGbm(m) => m.feature_names(),
        }
    }

    /// Number of trees (0 for XGBoost's linear booster).
    pub fn num_trees(&self) -> usize {
        match self {
            TreeModel::XGBoost(m) => m.num_trees(),
            TreeModel::LightGbm(m) => m.num_trees(),
        }
    }

    /// Number of features each input row must have.
    pub fn num_features(&self) -> usize {
        match self {
            TreeModel::XGBoost(m) => m.num_features(),
            TreeModel::LightGbm(m) => m.num_features(),
        }
    }

    /// Number of output columns per row of [`predict`](Self::predict): 1 for regression and
    /// binary classification, K for K-class probabilities or K targets, and 1 for XGBoost's
    /// `multi:softmax`, which predicts the class index.
    pub fn num_outputs(&self) -> usize {
        match self {
            TreeModel::XGBoost(m) => m.num_outputs(),
            TreeModel::LightGbm(m) => m.num_outputs(),
        }
    }

    /// Number of output columns per row of [`predict_margin`](Self::predict_margin); differs
    /// from [`num_outputs`](Self::num_outputs) only for XGBoost's `multi:softmax` (K margins).
    pub fn num_margin_outputs(&self) -> usize {
        match self {
            TreeModel::XGBoost(m) => m.num_margin_outputs(),
            TreeModel::LightGbm(m) => m.num_outputs(),
        }
    }

    /// What the model predicts.
    pub fn task(&self) -> Task {
        match self {
            TreeModel::XGBoost(m) => m.task(),
            TreeModel::LightGbm(m) => m.task(),
        }
    }

    fn check(&self, x: &[f32], rows: usize) -> Result<(), TreeError> {
        let nf = self.num_features();
        if rows.checked_mul(nf) != Some(x.len()) {
            return Err(TreeError::feature_count(nf, x.len(), rows));
        }
        Ok(())
    }

    /// Predictions exactly like `xgboost.Booster.predict(DMatrix(x))` or
    /// `lightgbm.Booster.predict(x)`: probabilities for logistic and softmax objectives,
    /// `exp` of the margin for Poisson, gamma and Tweedie, raw values for regression and
    /// ranking. `x` is row-major, `rows × num_features`, NaN meaning missing; the result is
    /// row-major `rows × num_outputs`. LightGBM's `f64` results are rounded to `f32`; see
    /// [`predict_f64`](Self::predict_f64).
    pub fn predict(&self, x: &[f32], rows: usize) -> Result<Vec<f32>, TreeError> {
        self.check(x, rows)?;
        Ok(match self {
            TreeModel::XGBoost(m) => m.predict(x, rows),
            TreeModel::LightGbm(m) => m.predict(x, rows).into_iter().map(|v| v as f32).collect(),
        })
    }

    /// [`predict`](Self::predict) in `f64`: exactly LightGBM's values; XGBoost's `f32`
    /// values widened.
    pub fn predict_f64(&self, x: &[f32], rows: usize) -> Result<Vec<f64>, TreeError> {
        self.check(x, rows)?;
        Ok(match self {
            TreeModel::XGBoost(m) => m.predict(x, rows).into_iter().map(f64::from).collect(),
            TreeModel::LightGbm(m) => m.predict(x, rows),
        })
    }

    /// Raw margins, like `output_margin=True` (XGBoost) or `raw_score=True` (LightGBM):
    /// row-major `rows × num_margin_outputs`. For a LightGBM random forest these are the
    /// sums of the trees, not their average, as LightGBM returns them.
    pub fn predict_margin(&self, x: &[f32], rows: usize) -> Result<Vec<f32>, TreeError> {
        self.check(x, rows)?;
        Ok(match self {
            TreeModel::XGBoost(m) => m.margins(x, rows),
            TreeModel::LightGbm(m) => m.raw(x, rows).into_iter().map(|v| v as f32).collect(),
        })
    }

    /// [`predict_margin`](Self::predict_margin) in `f64`.
    pub fn predict_margin_f64(&self, x: &[f32], rows: usize) -> Result<Vec<f64>, TreeError> {
        self.check(x, rows)?;
        Ok(match self {
            TreeModel::XGBoost(m) => m.margins(x, rows).into_iter().map(f64::from).collect(),
            TreeModel::LightGbm(m) => m.raw(x, rows),
        })
    }

    /// Class labels like scikit-learn's `XGBClassifier.predict` and
    /// `LGBMClassifier.predict`, as class indices: `prediction > 0.5` for binary models
    /// (for `binary:logitraw` that is the margin, as XGBoost's wrapper does), the first
    /// largest probability for multi-class models, and one 0/1 label per column for
    /// multi-label models (`rows × labels`). `None` for other tasks.
    pub fn predict_labels(&self, x: &[f32], rows: usize) -> Result<Option<Vec<i64>>, TreeError> {
        self.check(x, rows)?;
        Ok(match self {
            TreeModel::XGBoost(m) => m.labels(x, rows),
            TreeModel::LightGbm(m) => m.labels(x, rows),
        })
    }
}

/// The index of the first largest value, or of the first NaN, like `numpy.argmax`.
pub(crate) fn argmax<T: PartialOrd + Copy>(row: &[T]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        #[allow(clippy::eq_op)]
        let is_nan = v != v;
        if is_nan {
            return i;
        }
        if v > row[best] {
            best = i;
        }
    }
    best
}

enum Format {
    XgbJson,
    XgbUbj,
    LightGbm,
    XgbLegacy,
    Unknown(&'static str),
}

fn detect(bytes: &[u8]) -> Format {
    // UBJ is binary: XGBoost writes `{` followed by the first key's length marker.
    if let [b'{', m, ..] = bytes
        && matches!(m, b'i' | b'U' | b'I' | b'l' | b'L' | b'$' | b'#' | b'N')
    {
        return Format::XgbUbj;
    }
    let text = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let text = &text[start..];
    if text.starts_with(b"{") {
        return Format::XgbJson;
    }
    let first_line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let first_line = first_line.strip_suffix(b"\r").unwrap_or(first_line);
    if first_line == b"tree" || first_line.starts_with(b"version=") {
        return Format::LightGbm;
    }
    if text.is_empty() {
        return Format::Unknown("the file is empty");
    }
    // The legacy binary format starts with a parameter struct (or "binf") and names its
    // objective and booster in plain text soon after.
    let head = &bytes[..bytes.len().min(1024)];
    let mentions = |s: &[u8]| head.windows(s.len()).any(|w| w == s);
    if bytes.starts_with(b"binf")
        || mentions(b"gbtree")
        || mentions(b"gblinear")
        || mentions(b"dart")
    {
        return Format::XgbLegacy;
    }
    // Described, never quoted: the file may be anything on the host.
    let head = &text[..text.len().min(1024)];
    if std::str::from_utf8(head)
        .is_ok_and(|t| t.chars().all(|c| !c.is_control() || c.is_whitespace()))
    {
        Format::Unknown("the file is text, but neither JSON nor a LightGBM text model")
    } else {
        Format::Unknown("the file is binary, but not UBJSON")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{LGB_TEXT, XGB_JSON};
    use proptest::prelude::*;

    fn xgb_ubj(json: &str) -> Vec<u8> {
        let mut out = Vec::new();
        doc::tests::to_ubj(&doc::parse_json(json.as_bytes()).unwrap(), &mut out);
        out
    }

    fn sigmoid(x: f32) -> f32 {
        1.0 / (1.0 + (-x).exp())
    }

    #[test]
    fn model_is_send_and_sync() {
        fn assert<T: Send + Sync>() {}
        assert::<TreeModel>();
    }

    #[test]
    fn numpy_argmax() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(argmax(&[1.0, f64::NAN, 3.0]), 1);
        assert_eq!(argmax::<f64>(&[]), 0);
    }

    #[test]
    fn xgboost_fixture_in_json_and_ubj() {
        let ubj = xgb_ubj(XGB_JSON);
        assert_eq!(ubj[0], b'{');
        for bytes in [XGB_JSON.as_bytes(), &ubj] {
            let m = TreeModel::from_bytes(bytes).unwrap();
            assert_eq!(m.framework(), "xgboost");
            assert_eq!(m.task(), Task::BinaryClassification);
            assert_eq!(m.feature_names(), None);
            assert_eq!(
                (m.num_features(), m.num_outputs(), m.num_trees()),
                (2, 1, 2)
            );
            let x = [0.0, 1.0, f32::NAN, 2.0, 0.5, 3.0, 0.7, -1.0];
            // base_score 0.5 is a margin of 0; categories {1, 3} go right.
            let margins = [-1.0 - 0.25, -1.0 + 0.25, 1.0 - 0.25, 1.0 + 0.25];
            assert_eq!(m.predict_margin(&x, 4).unwrap(), margins);
            let p = m.predict(&x, 4).unwrap();
            for (p, m) in p.iter().zip(margins) {
                assert!((p - sigmoid(m)).abs() < 1e-6);
            }
            assert_eq!(m.predict_labels(&x, 4).unwrap(), Some(vec![0, 0, 1, 1]));
        }
    }

    #[test]
    fn lightgbm_fixture() {
        let m = TreeModel::from_bytes(LGB_TEXT.as_bytes()).unwrap();
        assert_eq!(m.framework(), "lightgbm");
        assert_eq!(m.objective(), "binary sigmoid:1");
        assert_eq!(
            m.feature_names(),
            Some(&["a".to_string(), "b".to_string()][..])
        );
        assert_eq!(m.task(), Task::BinaryClassification);
        let x = [
            0.0,
            5.0,
            1.0,
            3.0,
            1.0,
            2.0,
            f32::NAN,
            f32::NAN,
            -1.0,
            f32::NAN,
        ];
        let raw = m.predict_margin_f64(&x, 5).unwrap();
        assert_eq!(
            raw,
            vec![
                -0.5 - 0.5,   // x0 <= 0.25; x0 = 0 is missing for tree 1: right
                0.5 - 0.5,    // category 3 -> left
                0.25 - 0.5,   // category 2 -> right
                -0.5 - 0.5,   // NaN: default left; zero-missing tree: NaN -> default right
                -0.5 + 0.125, // linear leaf with a NaN feature falls back to the leaf value
            ]
        );
        let p = m.predict_f64(&x, 5).unwrap();
        assert_eq!(p[0], 1.0 / (1.0 + 1f64.exp()));
    }

    #[test]
    fn xgboost_errors_name_the_field() {
        let check = |from: &str, to: &str, want: &str| {
            assert!(XGB_JSON.contains(from), "{from}");
            let json = XGB_JSON.replacen(from, to, 1);
            for bytes in [json.as_bytes().to_vec(), xgb_ubj(&json)] {
                let err = TreeModel::from_bytes(&bytes).unwrap_err().to_string();
                assert!(err.contains(want), "{err}\ndoes not contain\n{want}");
            }
        };
        check(
            r#""split_indices": [1, 0, 0]"#,
            r#""split_indices": [1, 0]"#,
            "learner.gradient_booster.model.trees[1].split_indices: has 2 entries but the tree has 3 nodes",
        );
        check(
            r#""split_indices": [1, 0, 0]"#,
            r#""split_indices": [7, 0, 0]"#,
            "learner.gradient_booster.model.trees[1].split_indices[0]: split feature 7 is out of range (the model has 2 features)",
        );
        check(
            r#""right_children": [2, -1, -1]"#,
            r#""right_children": [0, -1, -1]"#,
            "learner.gradient_booster.model.trees[0].right_children[0]: right child 0 is reached twice",
        );
        check(
            r#""binary:logistic""#,
            r#""reg:nope""#,
            "learner.objective.name: unknown objective; supported objectives: reg:squarederror",
        );
        check(
            r#""gbtree", "model""#,
            r#""gbforest", "model""#,
            "unknown booster; supported: gbtree, dart, gblinear",
        );
        check(
            r#""num_trees": "2""#,
            r#""num_trees": "3""#,
            "learner.gradient_booster.model.gbtree_model_param.num_trees: says 3 trees but learner.gradient_booster.model.trees has 2",
        );
        check(
            r#""base_score": "[5E-1]""#,
            r#""base_score": "[5E-1,1E0]""#,
            "learner.learner_model_param.base_score: has 2 values but the model has 1 outputs",
        );
        check(
            r#""categories_sizes": [2]"#,
            r#""categories_sizes": [3]"#,
            "categories_segments[0]: segment 0 of size 3 does not fit in 2 categories",
        );
        check(
            r#""tree_info": [0, 0]"#,
            r#""tree_info": [0, 1]"#,
            "tree_info[1]: output group 1 is out of range for 1 outputs",
        );
        check(
            r#""num_feature": "2", "num_target""#,
            r#""num_feature": "x", "num_target""#,
            "learner.learner_model_param.num_feature: expected a feature count, found another string",
        );
        check(
            r#""id": 1"#,
            r#""id": 0"#,
            "trees[1].id: id 0 is used by two trees",
        );
    }

    #[test]
    fn truncated_files_are_syntax_errors() {
        let json = XGB_JSON.as_bytes();
        let err = TreeModel::from_bytes(&json[..json.len() / 2]).unwrap_err();
        assert!(
            matches!(err, TreeError::Syntax { format: "JSON", .. }),
            "{err}"
        );
        let ubj = xgb_ubj(XGB_JSON);
        let err = TreeModel::from_bytes(&ubj[..ubj.len() / 2]).unwrap_err();
        assert!(
            matches!(
                err,
                TreeError::Syntax {
                    format: "UBJSON",
                    ..
                }
            ),
            "{err}"
        );
        let err = TreeModel::from_bytes(&LGB_TEXT.as_bytes()[..300]).unwrap_err();
        assert!(err.to_string().starts_with("Tree=0."), "{err}");
    }

    #[test]
    fn wrong_feature_counts_are_refused() {
        let m = TreeModel::from_bytes(XGB_JSON.as_bytes()).unwrap();
        for (len, rows) in [(3, 1), (6, 2), (5, 2), (2, 0)] {
            let err = m.predict(&vec![0.0; len], rows).unwrap_err();
            assert!(
                matches!(err, TreeError::FeatureCount { expected: 2, .. }),
                "{err}"
            );
        }
        let err = m.predict(&[0.0; 3], 1).unwrap_err().to_string();
        assert!(err.contains("expects 2 features per row, but the input has 3 values for 1 rows (3 features per row)"), "{err}");
    }

    #[test]
    fn unknown_and_legacy_formats_are_explained() {
        let err = TreeModel::from_bytes(b"").unwrap_err().to_string();
        assert!(err.contains("empty"), "{err}");
        let err = TreeModel::from_bytes(b"\x00\x00\x00?bin")
            .unwrap_err()
            .to_string();
        assert!(err.contains("the file is binary, but not UBJSON"), "{err}");
        let mut legacy = vec![0u8; 136];
        legacy.extend_from_slice(b"\x0f\x00\x00\x00\x00\x00\x00\x00binary:logistic");
        legacy.extend_from_slice(b"\x06\x00\x00\x00\x00\x00\x00\x00gbtree");
        let err = TreeModel::from_bytes(&legacy).unwrap_err().to_string();
        assert!(err.contains("Booster.save_model('model.json')"), "{err}");
        let err = TreeModel::from_bytes(br#"{"name": "tree", "version": "v4", "tree_info": []}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("Booster.save_model('model.txt')"), "{err}");
    }

    /// A server may be pointed at any file and shows the error to whoever
    /// pointed it: no message quotes the file, only what was expected.
    #[test]
    fn errors_never_quote_the_file() {
        let secret = "hunter2-Secret";
        let files: Vec<String> = vec![
            format!("root:x:0:0:{secret}:/root:/bin/bash\n"),
            format!("{secret}\n"),
            format!("  {secret}"),
            format!("{{\"{secret}\": 1}}"),
            format!("{{\"learner\": \"{secret}\"}}"),
            format!("{{{secret}}}"),
            XGB_JSON.replace("binary:logistic", secret),
            XGB_JSON.replace("\"gbtree\", \"model\"", &format!("\"{secret}\", \"model\"")),
            XGB_JSON.replace(
                "\"num_feature\": \"2\"",
                &format!("\"num_feature\": \"{secret}\""),
            ),
            XGB_JSON.replace(
                "\"base_score\": \"[5E-1]\"",
                &format!("\"base_score\": \"{secret}\""),
            ),
            XGB_JSON.replace("\"id\": 1", "\"id\": 123456789.5"),
            format!("tree\nversion=v4\nobjective={secret}\n"),
            LGB_TEXT.replacen("objective=", &format!("objective={secret} "), 1),
            LGB_TEXT.replacen("max_feature_idx=", &format!("max_feature_idx={secret}"), 1),
            LGB_TEXT.replacen("leaf_value=", &format!("leaf_value={secret} "), 1),
        ];
        for file in files {
            let mut bytes = file.clone().into_bytes();
            let err = TreeModel::from_bytes(&bytes).unwrap_err().to_string();
            assert!(
                !err.contains(secret) && !err.contains("root:x") && !err.contains("123456789"),
                "{err}\nfrom: {file}"
            );
            // The same bytes as binary.
            bytes.insert(0, 0);
            let err = TreeModel::from_bytes(&bytes).unwrap_err().to_string();
            assert!(!err.contains(secret) && !err.contains("root:x"), "{err}");
        }
        let err = TreeModel::from_bytes(b"root:x:0:0")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the file is text, but neither JSON nor a LightGBM text model"),
            "{err}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Truncated and mutated model bytes give an error or a model that predicts; never a panic.
        #[test]
        fn hostile_bytes_never_panic(
            which in 0usize..3,
            cut in 0.0f64..1.2,
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        ) {
            let ubj = xgb_ubj(XGB_JSON);
            let base: &[u8] = match which {
                0 => XGB_JSON.as_bytes(),
                1 => &ubj,
                _ => LGB_TEXT.as_bytes(),
            };
            let len = ((base.len() as f64 * cut) as usize).min(base.len());
            let mut bytes = base[..len].to_vec();
            for (at, v) in edits {
                if !bytes.is_empty() {
                    let n = bytes.len();
                    bytes[at % n] = v;
                }
            }
            if let Ok(m) = TreeModel::from_bytes(&bytes) {
                let nf = m.num_features();
                let x: Vec<f32> = [f32::NAN, 0.0, 1.0, 3.0, -7.5, 1e30]
                    .iter()
                    .flat_map(|&v| std::iter::repeat_n(v, nf))
                    .collect();
                let rows = x.len().checked_div(nf).unwrap_or(0);
                let p = m.predict(&x, rows).unwrap();
                prop_assert_eq!(p.len(), rows * m.num_outputs());
                let _ = m.predict_margin(&x, rows).unwrap();
                let _ = m.predict_labels(&x, rows).unwrap();
            }
        }
    }
}
