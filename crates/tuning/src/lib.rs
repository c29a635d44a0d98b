//! Katib v1beta1 hyperparameter tuning for Oxflow.
//!
//! Users bring Katib's own `kubeflow.org/v1beta1` `Experiment` YAML, so this
//! crate reads that format exactly: [`spec`] parses it, applies the defaults
//! Katib's mutating webhook applies, enforces the rules Katib's validating
//! webhook enforces (plus clear refusals for what Oxflow cannot run yet), and
//! renders trials from the template. [`metrics`] re-implements Katib's
//! metrics collectors (TEXT lines, JSON lines, TensorFlow event files) as
//! parsers and reduces observations the way Katib's trial controller does.
//!
//! [`kinds`] are Experiment, Trial and Suggestion as resource-model kinds.
//! [`TuningController`] is the rest of Katib (experiment, suggestion and
//! trial controllers, metrics collection, early stopping): on the
//! controller framework, one loop per running experiment over its objects
//! and a [`oxflow_runtime::Runtime`].
//!
//! Architecture invariant: [`spec`] and [`metrics`] do no process management
//! and no storage; the controller feeds them text and files and stores what
//! they return. Their only I/O is reading TensorFlow event files on request.
//! The controller knows Katib's semantics but not HTTP: the server crate
//! maps its calls onto Katib's resource paths.

mod controller;
pub mod kinds;
pub mod metrics;
mod migrate;
pub mod spec;
pub mod status;
pub mod stored;

pub use controller::{
    ReportTokens, TuningConfig, TuningController, TuningError, TuningEvent, find_trial,
    get_experiment, get_trials, report_metrics, report_path, trial_objects,
};
pub use migrate::{Migrated, migrate_legacy};
pub use status::experiment_status;
pub use stored::{StoredExperiment, StoredTrial};

pub use metrics::{
    JsonParser, MetricLog, MetricSummary, MetricsError, TextParser, objective_value, reduce,
};
pub use spec::{
    AlgorithmSetting, AlgorithmSpec, CollectorKind, EarlyStopping, Experiment, ExperimentSpec,
    FileFormat, MedianStop, MetricStrategy, MetricStrategySpec, MetricsCollector, Objective,
    ObjectiveType, ParameterAssignment, ResumePolicy, SpecError, TrialParameter, TrialReference,
    TrialRun, TrialTemplate, format_assignment, parse_assignment,
};
