//! Katib's `kubeflow.org/v1beta1` `Experiment`: parsed, defaulted, validated.
//!
//! [`Experiment::from_yaml`] is the only way in: it reads Katib's YAML (or
//! JSON), applies the defaults of Katib's mutating webhook and the rules of
//! its validating webhook, and refuses what Oxflow cannot run yet with an
//! error that names the field. What comes out is a typed model in which
//! unsupported or contradictory states cannot be expressed (a JSON file
//! collector has no regex filter, an early-stopping rule has both settings,
//! the search space already passed [`oxflow_suggest::SearchSpace::new`]).
//! [`Experiment::to_katib_value`] writes it back in Katib's shape with every
//! default spelled out, which is what `experiments get -o yaml` prints.

use std::collections::BTreeMap;
use std::fmt;

use oxflow_core::Namespace;
use oxflow_core::spec::{
    Expected, ReadOptions, UnknownFields, YamlBudget, from_value, read_document,
};
use oxflow_suggest::{Param, SearchSpace};
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod trial;
mod validate;
mod wire;

#[cfg(test)]
mod tests;

pub use oxflow_core::spec::SpecError;
pub use trial::{TrialRun, format_assignment, parse_assignment};

/// The only `apiVersion` accepted.
pub const API_VERSION: &str = "kubeflow.org/v1beta1";
/// The only `kind` accepted.
pub const KIND: &str = "Experiment";
/// Katib's `DefaultTrialParallelCount`.
pub const DEFAULT_PARALLEL_TRIAL_COUNT: u32 = 3;
/// Katib's `DefaultFilePath` for the `File` collector.
pub const DEFAULT_FILE_PATH: &str = "/var/log/katib/metrics.log";
/// Katib's `DefaultTensorflowEventDirPath` for the `TensorFlowEvent` collector.
pub const DEFAULT_TF_EVENT_DIR: &str = "/var/log/katib/tfevent/";
/// Katib's `DefaultJobSuccessCondition` (a GJSON path on the Job's status).
pub const JOB_SUCCESS_CONDITION: &str =
    r#"status.conditions.#(type=="Complete")#|#(status=="True")#"#;
/// Katib's `DefaultJobFailureCondition`.
pub const JOB_FAILURE_CONDITION: &str =
    r#"status.conditions.#(type=="Failed")#|#(status=="True")#"#;
/// Inputs larger than this are refused before parsing.
pub const MAX_EXPERIMENT_BYTES: usize = 4 * 1024 * 1024;

/// How [`Experiment::from_yaml`] reads text.
const READ: ReadOptions<'static> = ReadOptions {
    max_bytes: MAX_EXPERIMENT_BYTES,
    input: "experiment",
    yaml_budget: YamlBudget::Library,
};

/// What [`Experiment::from_yaml`] expects, for its messages.
const EXPECTED: Expected<'static> = Expected {
    kind: "Experiment",
    description: "a Katib Experiment (apiVersion: kubeflow.org/v1beta1, kind: Experiment)",
};

/// A validated Katib Experiment with Katib's defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    /// `metadata.name`: `^[a-z]([-a-z0-9]*[a-z0-9])?$`, at most 40 characters.
    pub name: String,
    /// `metadata.namespace`, when the file names one.
    pub namespace: Option<Namespace>,
    /// `metadata.labels`, kept for display.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`, kept for display.
    pub annotations: BTreeMap<String, String>,
    /// `spec`.
    pub spec: ExperimentSpec,
}

/// `spec` of an Experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentSpec {
    /// `parameters`, already parsed into numbers and checked; in the file's order.
    pub parameters: Vec<Param>,
    /// `objective`, with one metric strategy per collected metric.
    pub objective: Objective,
    /// `algorithm`; its settings were accepted by [`oxflow_suggest::build`].
    pub algorithm: AlgorithmSpec,
    /// `earlyStopping`.
    pub early_stopping: Option<EarlyStopping>,
    /// `trialTemplate`.
    pub trial_template: TrialTemplate,
    /// `parallelTrialCount` (default 3), never above `max_trial_count`.
    pub parallel_trial_count: u32,
    /// `maxTrialCount`; `None` runs until the goal or the algorithm's end.
    pub max_trial_count: Option<u32>,
    /// `maxFailedTrialCount`; never above `max_trial_count`.
    pub max_failed_trial_count: Option<u32>,
    /// `metricsCollectorSpec` (default `StdOut`).
    pub metrics_collector: MetricsCollector,
    /// `resumePolicy` (default `Never`).
    pub resume_policy: ResumePolicy,
}

/// `objective.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectiveType {
    /// Lower objective values are better.
    Minimize,
    /// Higher objective values are better.
    Maximize,
}

impl ObjectiveType {
    /// Katib's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minimize => "minimize",
            Self::Maximize => "maximize",
        }
    }

    /// The metric strategy Katib's webhook gives metrics without one.
    pub fn default_strategy(self) -> MetricStrategy {
        match self {
            Self::Minimize => MetricStrategy::Min,
            Self::Maximize => MetricStrategy::Max,
        }
    }

    /// The same, as [`oxflow_suggest`]'s early stopping takes it.
    pub fn direction(self) -> oxflow_suggest::Direction {
        match self {
            Self::Minimize => oxflow_suggest::Direction::Minimize,
            Self::Maximize => oxflow_suggest::Direction::Maximize,
        }
    }
}

/// Which of a trial's reported values counts (`metricStrategies[].value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricStrategy {
    /// The smallest value reported.
    Min,
    /// The largest value reported.
    Max,
    /// The value with the newest timestamp.
    Latest,
}

impl MetricStrategy {
    /// Katib's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Min => "min",
            Self::Max => "max",
            Self::Latest => "latest",
        }
    }
}

/// One `metricStrategies` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricStrategySpec {
    /// The metric it applies to: the objective metric or an additional one.
    pub name: String,
    /// The strategy.
    pub value: MetricStrategy,
}

/// `objective`.
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    /// `type`.
    pub objective_type: ObjectiveType,
    /// `goal`: the experiment succeeds once the best trial reaches it.
    pub goal: Option<f64>,
    /// `objectiveMetricName`.
    pub objective_metric_name: String,
    /// `additionalMetricNames`: collected and stored, not optimised.
    pub additional_metric_names: Vec<String>,
    /// `metricStrategies` after defaulting: exactly one entry per metric of
    /// [`Objective::metric_names`], explicit ones first (Katib's order).
    pub metric_strategies: Vec<MetricStrategySpec>,
}

impl Objective {
    /// Every collected metric, the objective metric first (Katib's order
    /// when it hands metric names to a collector).
    pub fn metric_names(&self) -> Vec<String> {
        std::iter::once(self.objective_metric_name.clone())
            .chain(self.additional_metric_names.iter().cloned())
            .collect()
    }

    /// The strategy for `metric` (`Latest` for a metric the experiment does
    /// not collect).
    pub fn strategy(&self, metric: &str) -> MetricStrategy {
        self.metric_strategies
            .iter()
            .find(|s| s.name == metric)
            .map_or(MetricStrategy::Latest, |s| s.value)
    }
}

/// `algorithm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlgorithmSpec {
    /// `algorithmName` (`random`, `grid`, `tpe`, …).
    pub algorithm_name: String,
    /// `algorithmSettings`, in the file's order, names unique.
    pub algorithm_settings: Vec<AlgorithmSetting>,
}

impl AlgorithmSpec {
    /// The settings as `(name, value)` pairs, the form
    /// [`oxflow_suggest::build`] takes.
    pub fn settings(&self) -> Vec<(String, String)> {
        self.algorithm_settings
            .iter()
            .map(|s| (s.name.clone(), s.value.clone()))
            .collect()
    }
}

/// One `algorithmSettings` entry; values are strings in Katib.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlgorithmSetting {
    /// The setting's name (`random_state`, `n_initial_points`, …).
    pub name: String,
    /// Its value, as written.
    pub value: String,
}

/// `earlyStopping`: Katib ships one algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EarlyStopping {
    /// `algorithmName: medianstop`.
    MedianStop(MedianStop),
}

impl EarlyStopping {
    /// The rule computer of [`oxflow_suggest`] with these settings.
    pub fn median_stop(&self) -> oxflow_suggest::MedianStop {
        match self {
            Self::MedianStop(m) => oxflow_suggest::MedianStop {
                min_trials_required: m.min_trials_required as usize,
                start_step: m.start_step as usize,
            },
        }
    }
}

/// Settings of `medianstop`, defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MedianStop {
    /// `min_trials_required` (default 3, > 0): succeeded trials needed
    /// before any trial is stopped.
    pub min_trials_required: u32,
    /// `start_step` (default 4, ≥ 1): reports of a running trial before the
    /// rule applies to it, and reports averaged per finished trial.
    pub start_step: u32,
}

impl Default for MedianStop {
    fn default() -> Self {
        Self {
            min_trials_required: 3,
            start_step: 4,
        }
    }
}

/// `resumePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum ResumePolicy {
    /// Katib's default: a finished experiment cannot be restarted.
    #[default]
    Never,
    /// A finished experiment may be restarted with a larger `maxTrialCount`.
    LongRunning,
    /// As `LongRunning`; Katib keeps the algorithm's state on a volume. Oxflow's
    /// algorithms rebuild their state from the trial history, so the two
    /// behave the same here.
    FromVolume,
}

impl ResumePolicy {
    /// Katib's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Never => "Never",
            Self::LongRunning => "LongRunning",
            Self::FromVolume => "FromVolume",
        }
    }
}

/// `trialTemplate` of a `batch/v1` `Job` trial (the only kind Oxflow runs).
#[derive(Debug, Clone, PartialEq)]
pub struct TrialTemplate {
    /// `primaryContainerName`: the container of the Job's pod template whose
    /// command runs as the trial.
    pub primary_container_name: String,
    /// `trialParameters`.
    pub trial_parameters: Vec<TrialParameter>,
    /// `trialSpec`: the Job, placeholders still in it.
    pub trial_spec: Value,
    /// `primaryPodLabels`: kept for display; a local trial has one process.
    pub primary_pod_labels: BTreeMap<String, String>,
    /// `retain`: keep the trial's Job after it finishes.
    pub retain: bool,
}

/// One `trialParameters` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialParameter {
    /// The placeholder name: `${trialParameters.<name>}` in `trialSpec`.
    pub name: String,
    /// `description`.
    pub description: Option<String>,
    /// What the placeholder is replaced with.
    pub reference: TrialReference,
}

/// `trialParameters[].reference`: a parameter or a piece of trial metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrialReference {
    /// The value assigned to this `spec.parameters` entry.
    Parameter(String),
    /// `${trialSpec.Name}`: the trial's name.
    Name,
    /// `${trialSpec.Namespace}`.
    Namespace,
    /// `${trialSpec.Kind}` of the template.
    Kind,
    /// `${trialSpec.APIVersion}` of the template.
    ApiVersion,
    /// `${trialSpec.Labels[key]}` of the template's metadata.
    Label(String),
    /// `${trialSpec.Annotations[key]}` of the template's metadata.
    Annotation(String),
}

impl fmt::Display for TrialReference {
    /// Katib's spelling of the reference.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Parameter(p) => f.write_str(p),
            Self::Name => f.write_str("${trialSpec.Name}"),
            Self::Namespace => f.write_str("${trialSpec.Namespace}"),
            Self::Kind => f.write_str("${trialSpec.Kind}"),
            Self::ApiVersion => f.write_str("${trialSpec.APIVersion}"),
            Self::Label(k) => write!(f, "${{trialSpec.Labels[{k}]}}"),
            Self::Annotation(k) => write!(f, "${{trialSpec.Annotations[{k}]}}"),
        }
    }
}

/// `metricsCollectorSpec`: where a trial's metrics come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsCollector {
    /// `StdOut` (the default): the trial's standard output, read as TEXT.
    StdOut {
        /// `source.filter.metricsFormat`; empty means Katib's default filter.
        metrics_format: Vec<String>,
    },
    /// `File`: a file the trial writes.
    File {
        /// `source.fileSystemPath.path` (absolute; default
        /// [`DEFAULT_FILE_PATH`]).
        path: String,
        /// `source.fileSystemPath.format` with the filter TEXT may carry.
        format: FileFormat,
    },
    /// `TensorFlowEvent`: a directory of TensorFlow event files.
    TensorFlowEvent {
        /// `source.fileSystemPath.path` (absolute; default
        /// [`DEFAULT_TF_EVENT_DIR`]).
        path: String,
    },
    /// `Push`: the trial reports its metrics itself (Katib SDK
    /// `report_metrics`).
    Push,
}

/// `source.fileSystemPath.format` of a `File` collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileFormat {
    /// `TEXT` (the default): lines matched by regular expressions.
    Text {
        /// `source.filter.metricsFormat`; empty means Katib's default filter.
        metrics_format: Vec<String>,
    },
    /// `JSON`: one JSON object per line; no filter allowed.
    Json,
}

/// `collector.kind` without its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CollectorKind {
    /// See [`MetricsCollector::StdOut`].
    StdOut,
    /// See [`MetricsCollector::File`].
    File,
    /// See [`MetricsCollector::TensorFlowEvent`].
    TensorFlowEvent,
    /// See [`MetricsCollector::Push`].
    Push,
}

impl CollectorKind {
    /// Katib's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StdOut => "StdOut",
            Self::File => "File",
            Self::TensorFlowEvent => "TensorFlowEvent",
            Self::Push => "Push",
        }
    }
}

impl MetricsCollector {
    /// The collector's kind.
    pub fn kind(&self) -> CollectorKind {
        match self {
            Self::StdOut { .. } => CollectorKind::StdOut,
            Self::File { .. } => CollectorKind::File,
            Self::TensorFlowEvent { .. } => CollectorKind::TensorFlowEvent,
            Self::Push => CollectorKind::Push,
        }
    }

    /// The `metricsFormat` filters when the collector reads TEXT (`StdOut`,
    /// `File` with `TEXT`); `None` for the others. An empty slice means
    /// Katib's default filter.
    pub fn text_filters(&self) -> Option<&[String]> {
        match self {
            Self::StdOut { metrics_format }
            | Self::File {
                format: FileFormat::Text { metrics_format },
                ..
            } => Some(metrics_format),
            _ => None,
        }
    }
}

/// A parameter's value for one trial, as Katib writes it
/// (`parameterAssignments[]`): always a string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParameterAssignment {
    /// The parameter (`spec.parameters[].name`).
    pub name: String,
    /// Its value for this trial, as text (see [`format_assignment`]).
    pub value: String,
}

impl Experiment {
    /// Parses a Katib Experiment from YAML or JSON text, applies Katib's
    /// defaults and validates it. A file with several YAML documents is
    /// refused: one file, one experiment.
    pub fn from_yaml(text: &str) -> Result<Self, SpecError> {
        Self::from_json_value(read_document(text, &READ, &EXPECTED)?)
    }

    /// Like [`Experiment::from_yaml`] for an already parsed JSON value (a REST
    /// request body).
    pub fn from_json_value(doc: Value) -> Result<Self, SpecError> {
        if !doc.is_object() {
            return Err(SpecError::new(
                "",
                "expected a Katib Experiment object (apiVersion: kubeflow.org/v1beta1, kind: Experiment)",
            ));
        }
        let raw: wire::Experiment = from_value(doc, UnknownFields::Listed)?;
        validate::experiment(raw)
    }

    /// The experiment in Katib's shape (`apiVersion`, `kind`, `metadata`,
    /// `spec` with every default written out, camelCase), as
    /// `experiments get -o yaml` prints it. [`Experiment::from_json_value`]
    /// of the result gives back an equal experiment.
    pub fn to_katib_value(&self) -> Value {
        validate::to_wire(self)
    }

    /// Katib's substitution for one trial: `${trialParameters.x}` replaced
    /// with the assigned values and trial metadata, `metadata.name` and
    /// `namespace` set, and the primary container extracted as the command
    /// to run. The caller adds `KATIB_TRIAL_NAME` to the environment.
    pub fn render_trial(
        &self,
        trial_name: &str,
        namespace: &str,
        assignments: &[ParameterAssignment],
    ) -> Result<TrialRun, SpecError> {
        trial::render(self, trial_name, namespace, assignments)
    }
}

impl ExperimentSpec {
    /// The search space for [`oxflow_suggest`]: the parameters, already
    /// checked by [`SearchSpace::new`] when the experiment was loaded.
    pub fn search_space(&self) -> SearchSpace {
        SearchSpace {
            params: self.parameters.clone(),
        }
    }

    /// Every collected metric, the objective metric first.
    pub fn metric_names(&self) -> Vec<String> {
        self.objective.metric_names()
    }
}
