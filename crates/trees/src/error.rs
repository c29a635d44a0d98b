//! The crate's one error type.

use std::path::PathBuf;

/// Why a model could not be loaded or a prediction could not be made.
///
/// Messages name the offending part of the model file (a JSON path such as
/// `learner.gradient_booster.model.trees[3].split_indices[5]`, or a LightGBM
/// `Tree=N` block and key) so that a user can find it, and say what to do
/// when there is something to do. They never quote the file's bytes: a
/// server may be asked to load any file, and its error is shown to whoever
/// asked, so a message says what was expected and where, not what was
/// found there.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The model file could not be read.
    #[error("cannot read model file {path}: {source}")]
    Io {
        /// The file that was being read.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// The bytes are none of the supported model formats. `detail` says
    /// what kind of file it seems to be, without quoting it.
    #[error(
        "unrecognised model format: {detail}; expected an XGBoost model saved as JSON or UBJ \
         (Booster.save_model('model.json') or 'model.ubj') or a LightGBM text model \
         (Booster.save_model('model.txt'))"
    )]
    UnknownFormat {
        /// What kind of file it seems to be.
        detail: &'static str,
    },

    /// An XGBoost model in the deprecated binary format.
    #[error(
        "this looks like an XGBoost model in the legacy binary format, which is not supported: \
         re-save the model as JSON or UBJ with Booster.save_model('model.json')"
    )]
    LegacyXgboostBinary,

    /// The JSON or UBJSON document itself is malformed (not its content).
    #[error("malformed {format} at byte {offset}: {message}")]
    Syntax {
        /// `JSON` or `UBJSON`.
        format: &'static str,
        /// Byte offset of the problem in the file.
        offset: usize,
        /// What was wrong.
        message: String,
    },

    /// A field of the model is missing, has the wrong type or an invalid value.
    #[error("{field}: {message}")]
    Field {
        /// Where in the model: a JSON path for XGBoost, `Tree=N.key` or a header key for LightGBM.
        field: String,
        /// What is wrong with it.
        message: String,
    },

    /// The model's objective is not one this crate knows how to transform.
    #[error("{field}: unknown objective; supported objectives: {supported}")]
    UnknownObjective {
        /// Where the objective is named in the file.
        field: String,
        /// The supported names, comma-separated.
        supported: &'static str,
    },

    /// The model uses a feature that this crate refuses rather than predicting wrongly.
    #[error("{field}: unsupported model feature: {message}")]
    Unsupported {
        /// Where in the model the feature is declared.
        field: String,
        /// What is unsupported and what to do instead.
        message: String,
    },

    /// The input matrix does not have the model's number of features.
    #[error(
        "wrong number of features: the model expects {expected} features per row, \
         but the input has {given} values for {rows} rows ({given_per_row})"
    )]
    FeatureCount {
        /// Features per row the model was trained on.
        expected: usize,
        /// Length of the input slice.
        given: usize,
        /// Number of rows the caller declared.
        rows: usize,
        /// The number of features per row the input implies, in words.
        given_per_row: String,
    },
}

impl TreeError {
    /// A field error at `field`.
    pub(crate) fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        TreeError::Field {
            field: field.into(),
            message: message.into(),
        }
    }

    /// An unsupported-feature error at `field`.
    pub(crate) fn unsupported(field: impl Into<String>, message: impl Into<String>) -> Self {
        TreeError::Unsupported {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The error for an input of `given` values for `rows` rows when `expected` features are needed.
    pub(crate) fn feature_count(expected: usize, given: usize, rows: usize) -> Self {
        let given_per_row = if rows == 0 {
            "no rows were declared".to_string()
        } else if given.is_multiple_of(rows) {
            format!("{} features per row", given / rows)
        } else {
            "not a whole number of features per row".to_string()
        };
        TreeError::FeatureCount {
            expected,
            given,
            rows,
            given_per_row,
        }
    }
}
