use std::path::PathBuf;

/// Everything that can go wrong loading or running a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The file is not YAML/JSON.
    #[error("{source_name}: not valid YAML or JSON: {message}")]
    Syntax {
        /// The file or request it came from.
        source_name: String,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A field is missing, mistyped or refers to something that does not exist.
    #[error("{source_name}: {}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
    Invalid {
        /// The file or request it came from.
        source_name: String,
        /// Field path, e.g. `root.dag.tasks.train.inputs.parameters.lr`.
        path: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A run parameter is unknown, missing or of the wrong type.
    #[error("parameter {name:?} (root.inputDefinitions.parameters.{name}): {message}")]
    Parameter {
        /// The parameter.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] oxflow_store::StoreError),
    /// The artifact store failed.
    #[error(transparent)]
    Artifact(#[from] oxflow_artifacts::ArtifactError),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A Python environment for lightweight components could not be prepared.
    #[error("preparing the Python environment {what}: {message}")]
    PythonEnv {
        /// Which environment.
        what: String,
        /// What failed (pip's output tail included).
        message: String,
    },
    /// The run is not in a state that allows the operation.
    #[error("run {run_id}: {message}")]
    RunState {
        /// The run.
        run_id: String,
        /// What is wrong.
        message: String,
    },
}

impl PipelineError {
    /// An [`PipelineError::Invalid`] for `path` in `source_name`.
    pub fn invalid(source_name: &str, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            source_name: source_name.to_owned(),
            path: path.into(),
            message: message.into(),
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = PipelineError> = std::result::Result<T, E>;
