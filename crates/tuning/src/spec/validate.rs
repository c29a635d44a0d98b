//! Wire shape → typed model: Katib's webhook defaults and validator rules,
//! plus Oxflow's refusals of what it cannot run; and the way back.
//!
//! Checks run in a fixed order and the first failure is returned, so a user
//! fixes one clearly named field at a time.

use std::collections::BTreeSet;

use oxflow_core::spec::{Object, ObjectMeta, ScalarOrBool, matches_dns1035_label};
use oxflow_suggest::{Budget, Distribution, Domain, Param, SearchSpace, SettingsError};
use serde_json::Value;

use super::wire;
use super::{
    API_VERSION, AlgorithmSetting, AlgorithmSpec, DEFAULT_FILE_PATH, DEFAULT_PARALLEL_TRIAL_COUNT,
    DEFAULT_TF_EVENT_DIR, EarlyStopping, Experiment, ExperimentSpec, FileFormat,
    JOB_FAILURE_CONDITION, JOB_SUCCESS_CONDITION, KIND, MedianStop, MetricStrategy,
    MetricStrategySpec, MetricsCollector, Objective, ObjectiveType, ResumePolicy, SpecError,
    TrialParameter, TrialReference, TrialTemplate,
};
use crate::metrics::text::compile_filter;

type Result<T> = std::result::Result<T, SpecError>;

fn err<T>(path: impl Into<String>, message: impl Into<String>) -> Result<T> {
    Err(SpecError::new(path, message))
}

/// Kinds of Kubeflow training jobs Katib can use as trials.
const TRAINING_JOB_KINDS: [&str; 5] = ["TFJob", "PyTorchJob", "XGBoostJob", "MPIJob", "TrainJob"];

/// Longest experiment name Katib accepts (trial names append a suffix).
const MAX_NAME_LEN: usize = 40;

pub(super) fn experiment(w: wire::Experiment) -> Result<Experiment> {
    match w.api_version.as_deref() {
        Some(API_VERSION) => {}
        None => {
            return err(
                "apiVersion",
                format!("missing; set apiVersion: {API_VERSION}"),
            );
        }
        Some(other) => {
            return err(
                "apiVersion",
                format!(
                    "{other:?} is not supported; Oxflow reads Katib's {API_VERSION} Experiment"
                ),
            );
        }
    }
    match w.kind.as_deref() {
        Some(KIND) => {}
        None => return err("kind", "missing; set kind: Experiment"),
        Some(other) => {
            return err(
                "kind",
                format!("{other:?} is not supported; expected Experiment"),
            );
        }
    }
    w.refuse_status("experiment controller")?;
    let meta = w.metadata.unwrap_or_default();
    // The name first, then the namespace: one error at a time, in the
    // order of the file.
    let name = experiment_name(meta.name.as_deref())?;
    let meta = meta.check()?;
    let Some(spec) = w.spec else {
        return err("spec", "missing; an Experiment needs a spec");
    };
    Ok(Experiment {
        name,
        namespace: meta.namespace,
        labels: meta.labels,
        annotations: meta.annotations,
        spec: spec_from_wire(spec)?,
    })
}

fn experiment_name(name: Option<&str>) -> Result<String> {
    let path = "metadata.name";
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return err(path, "missing; every Experiment needs a name");
    };
    if !matches_dns1035_label(name) {
        return err(
            path,
            format!(
                "{name:?} is not a valid name: use lower case letters, digits and '-', start with a letter and end with a letter or digit (e.g. 'my-name' or 'abc-123')"
            ),
        );
    }
    if name.len() > MAX_NAME_LEN {
        return err(
            path,
            format!(
                "{name:?} is {} characters long; the limit is {MAX_NAME_LEN}",
                name.len()
            ),
        );
    }
    Ok(name.to_owned())
}

fn count(v: Option<i64>, path: &str) -> Result<Option<u32>> {
    match v {
        None => Ok(None),
        Some(n) => u32::try_from(n)
            .ok()
            .filter(|n| *n <= i32::MAX as u32)
            .map(Some)
            .ok_or_else(|| SpecError::new(path, format!("{n} is out of range"))),
    }
}

fn spec_from_wire(s: wire::Spec) -> Result<ExperimentSpec> {
    // What Oxflow cannot run is refused first: no other fix would help.
    if s.nas_config.is_some() {
        return err(
            "spec.nasConfig",
            "neural architecture search (nasConfig, algorithms enas and darts) is not supported yet; tune hyperparameters with spec.parameters and a hyperparameter algorithm instead",
        );
    }
    let algorithm = algorithm(s.algorithm)?;

    // Counts (Katib's ValidateExperiment checks these first).
    if let Some(n) = s.max_failed_trial_count
        && n < 0
    {
        return err(
            "spec.maxFailedTrialCount",
            format!("{n} must not be less than 0"),
        );
    }
    if let Some(n) = s.max_trial_count
        && n <= 0
    {
        return err("spec.maxTrialCount", format!("{n} must be greater than 0"));
    }
    if let Some(n) = s.parallel_trial_count
        && n <= 0
    {
        return err(
            "spec.parallelTrialCount",
            format!("{n} must be greater than 0"),
        );
    }
    let max_trial_count = count(s.max_trial_count, "spec.maxTrialCount")?;
    let max_failed_trial_count = count(s.max_failed_trial_count, "spec.maxFailedTrialCount")?;
    let parallel_trial_count = count(s.parallel_trial_count, "spec.parallelTrialCount")?
        .unwrap_or(DEFAULT_PARALLEL_TRIAL_COUNT);
    if let (Some(failed), Some(max)) = (max_failed_trial_count, max_trial_count)
        && failed > max
    {
        return err(
            "spec.maxFailedTrialCount",
            format!("{failed} must be less than or equal to spec.maxTrialCount ({max})"),
        );
    }
    if let Some(max) = max_trial_count
        && parallel_trial_count > max
    {
        let default = if s.parallel_trial_count.is_none() {
            ", the default"
        } else {
            ""
        };
        return err(
            "spec.parallelTrialCount",
            format!(
                "{parallel_trial_count}{default} must be less than or equal to spec.maxTrialCount ({max}); set spec.parallelTrialCount"
            ),
        );
    }

    let objective = objective(s.objective)?;
    let parameters = parameters(s.parameters)?;
    let metrics_collector = metrics_collector(s.metrics_collector_spec)?;
    let early_stopping = s.early_stopping.map(early_stopping).transpose()?;
    let resume_policy = match s.resume_policy.as_deref() {
        None | Some("") | Some("Never") => ResumePolicy::Never,
        Some("LongRunning") => ResumePolicy::LongRunning,
        Some("FromVolume") => ResumePolicy::FromVolume,
        Some(other) => {
            return err(
                "spec.resumePolicy",
                format!("{other:?} is not a resume policy; use Never, LongRunning or FromVolume"),
            );
        }
    };
    let trial_template = trial_template(s.trial_template, &parameters)?;

    let spec = ExperimentSpec {
        parameters,
        objective,
        algorithm,
        early_stopping,
        trial_template,
        parallel_trial_count,
        max_trial_count,
        max_failed_trial_count,
        metrics_collector,
        resume_policy,
    };
    algorithm_fits(&spec)?;
    Ok(spec)
}

fn objective(o: Option<wire::Objective>) -> Result<Objective> {
    let base = "spec.objective";
    let Some(o) = o else {
        return err(
            base,
            "missing; set objective.type and objective.objectiveMetricName",
        );
    };
    let objective_type = match o.objective_type.as_deref() {
        Some("minimize") => ObjectiveType::Minimize,
        Some("maximize") => ObjectiveType::Maximize,
        None | Some("") => return err(format!("{base}.type"), "missing; use minimize or maximize"),
        Some(other) => {
            return err(
                format!("{base}.type"),
                format!("{other:?} must be minimize or maximize"),
            );
        }
    };
    let Some(metric) = o.objective_metric_name.filter(|m| !m.is_empty()) else {
        return err(
            format!("{base}.objectiveMetricName"),
            "missing; name the metric the trials report (e.g. loss)",
        );
    };
    let additional = o.additional_metric_names.unwrap_or_default();
    let mut seen = BTreeSet::new();
    for (i, m) in additional.iter().enumerate() {
        let path = format!("{base}.additionalMetricNames[{i}]");
        if m.is_empty() {
            return err(path, "must not be empty");
        }
        if *m == metric {
            return err(
                path,
                format!(
                    "{m:?} is the objective metric; spec.objective.additionalMetricNames must not contain spec.objective.objectiveMetricName"
                ),
            );
        }
        if !seen.insert(m.as_str()) {
            return err(path, format!("{m:?} is listed twice"));
        }
    }

    // Explicit strategies first, then Katib's defaults (setDefaultObjective).
    let mut strategies: Vec<MetricStrategySpec> = Vec::new();
    for (i, s) in o
        .metric_strategies
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let path = format!("{base}.metricStrategies[{i}]");
        let Some(name) = s.name.filter(|n| !n.is_empty()) else {
            return err(
                format!("{path}.name"),
                "missing; name the metric this strategy applies to",
            );
        };
        if name != metric && !additional.contains(&name) {
            return err(
                format!("{path}.name"),
                format!(
                    "{name:?} is neither the objective metric nor one of spec.objective.additionalMetricNames"
                ),
            );
        }
        if strategies.iter().any(|s| s.name == name) {
            return err(
                format!("{path}.name"),
                format!("{name:?} has two strategies"),
            );
        }
        let value = match s.value.as_deref() {
            Some("min") => MetricStrategy::Min,
            Some("max") => MetricStrategy::Max,
            Some("latest") => MetricStrategy::Latest,
            None | Some("") => {
                return err(format!("{path}.value"), "missing; use min, max or latest");
            }
            Some(other) => {
                return err(
                    format!("{path}.value"),
                    format!("{other:?} must be min, max or latest"),
                );
            }
        };
        strategies.push(MetricStrategySpec { name, value });
    }
    for name in std::iter::once(&metric).chain(&additional) {
        if !strategies.iter().any(|s| &s.name == name) {
            strategies.push(MetricStrategySpec {
                name: name.clone(),
                value: objective_type.default_strategy(),
            });
        }
    }
    Ok(Objective {
        objective_type,
        goal: o.goal.map(|g| g.0),
        objective_metric_name: metric,
        additional_metric_names: additional,
        metric_strategies: strategies,
    })
}

fn algorithm(a: Option<wire::Algorithm>) -> Result<AlgorithmSpec> {
    let base = "spec.algorithm";
    let Some(a) = a else {
        return err(base, "missing; set algorithm.algorithmName (e.g. random)");
    };
    let Some(name) = a.algorithm_name.filter(|n| !n.is_empty()) else {
        return err(
            format!("{base}.algorithmName"),
            "missing; use one of Katib's algorithms (e.g. random, grid, tpe, bayesianoptimization)",
        );
    };
    match name.as_str() {
        "enas" | "darts" => {
            return err(
                format!("{base}.algorithmName"),
                format!(
                    "{name} is a neural architecture search algorithm, which is not supported yet; use a hyperparameter algorithm (e.g. random, tpe, bayesianoptimization)"
                ),
            );
        }
        "pbt" => {
            return err(
                format!("{base}.algorithmName"),
                "pbt (population-based training) is not supported yet: it needs trials that hand checkpoints to each other; use another algorithm (e.g. tpe, bayesianoptimization, hyperband)",
            );
        }
        _ => {}
    }
    let mut settings: Vec<AlgorithmSetting> = Vec::new();
    for (i, s) in a
        .algorithm_settings
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let path = format!("{base}.algorithmSettings[{i}]");
        let Some(sname) = s.name.filter(|n| !n.is_empty()) else {
            return err(
                format!("{path}.name"),
                "missing; every setting needs a name",
            );
        };
        if settings.iter().any(|x| x.name == sname) {
            return err(
                format!("{path}.name"),
                format!("setting {sname:?} is given twice"),
            );
        }
        settings.push(AlgorithmSetting {
            name: sname,
            value: s.value.map(|v| v.0).unwrap_or_default(),
        });
    }
    Ok(AlgorithmSpec {
        algorithm_name: name,
        algorithm_settings: settings,
    })
}

/// A Katib string field is unset when absent or empty (`omitempty`).
fn present(s: Option<ScalarOrBool>) -> Option<String> {
    s.map(|s| s.0).filter(|s| !s.is_empty())
}

fn parameters(ps: Option<Vec<wire::Parameter>>) -> Result<Vec<Param>> {
    let ps = ps.unwrap_or_default();
    if ps.is_empty() {
        return err(
            "spec.parameters",
            "missing; list the hyperparameters to tune (name, parameterType, feasibleSpace)",
        );
    }
    let mut out: Vec<Param> = Vec::with_capacity(ps.len());
    for (i, p) in ps.into_iter().enumerate() {
        let param = parameter(i, p)?;
        if out.iter().any(|q| q.name == param.name) {
            return err(
                format!("spec.parameters[{i}].name"),
                format!("parameter {:?} is defined twice", param.name),
            );
        }
        out.push(param);
    }
    let names: Vec<String> = out.iter().map(|p| p.name.clone()).collect();
    let space = SearchSpace::new(out).map_err(|e| {
        let i = names.iter().position(|n| *n == e.name).unwrap_or(0);
        SpecError::new(format!("spec.parameters[{i}]"), e.message)
    })?;
    Ok(space.params)
}

fn parameter(i: usize, p: wire::Parameter) -> Result<Param> {
    let base = format!("spec.parameters[{i}]");
    let Some(name) = p.name.filter(|n| !n.is_empty()) else {
        return err(
            format!("{base}.name"),
            "missing; every parameter needs a name",
        );
    };
    let ptype = match p.parameter_type.as_deref() {
        Some(t @ ("double" | "int" | "discrete" | "categorical")) => t.to_owned(),
        None | Some("") => {
            return err(
                format!("{base}.parameterType"),
                "missing; use double, int, discrete or categorical",
            );
        }
        Some(other) => {
            return err(
                format!("{base}.parameterType"),
                format!(
                    "parameterType {other:?} is not supported; use double, int, discrete or categorical"
                ),
            );
        }
    };
    let fs = p.feasible_space.unwrap_or_default();
    let fpath = format!("{base}.feasibleSpace");
    let min = present(fs.min);
    let max = present(fs.max);
    let step = present(fs.step);
    let list: Vec<String> = fs
        .list
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.0)
        .collect();
    let distribution = match fs.distribution.as_deref() {
        None | Some("") => None,
        Some("uniform") => Some(Distribution::Uniform),
        Some("logUniform") => Some(Distribution::LogUniform),
        Some("normal") => Some(Distribution::Normal),
        Some("logNormal") => Some(Distribution::LogNormal),
        Some(other) => {
            return err(
                format!("{fpath}.distribution"),
                format!(
                    "distribution {other:?} is not supported; use uniform, logUniform, normal or logNormal"
                ),
            );
        }
    };
    if min.is_none() && max.is_none() && step.is_none() && list.is_empty() && distribution.is_none()
    {
        return err(fpath, "missing; feasibleSpace must be specified");
    }
    let domain = match ptype.as_str() {
        "double" | "int" => {
            if !list.is_empty() {
                return err(
                    format!("{fpath}.list"),
                    format!(
                        "feasibleSpace.list is not supported for parameterType {ptype}; give min and max (and optionally step)"
                    ),
                );
            }
            let (Some(min), Some(max)) = (min.clone(), max) else {
                let which = if min.is_none() { "min" } else { "max" };
                return err(
                    format!("{fpath}.{which}"),
                    format!(
                        "feasibleSpace.min and feasibleSpace.max must be specified for parameterType {ptype}"
                    ),
                );
            };
            let distribution = distribution.unwrap_or_default();
            if ptype == "double" {
                let num = |s: &str, field: &str| -> Result<f64> {
                    match s.trim().parse::<f64>() {
                        Ok(v) if v.is_finite() => Ok(v),
                        _ => err(format!("{fpath}.{field}"), format!("{s:?} is not a number")),
                    }
                };
                Domain::Double {
                    min: num(&min, "min")?,
                    max: num(&max, "max")?,
                    step: step.as_deref().map(|s| num(s, "step")).transpose()?,
                    distribution,
                }
            } else {
                let int = |s: &str, field: &str| -> Result<i64> {
                    s.trim().parse::<i64>().or_else(|_| {
                        err(
                            format!("{fpath}.{field}"),
                            format!("{s:?} is not an integer (parameterType int)"),
                        )
                    })
                };
                Domain::Int {
                    min: int(&min, "min")?,
                    max: int(&max, "max")?,
                    step: step.as_deref().map(|s| int(s, "step")).transpose()?,
                    distribution,
                }
            }
        }
        _ => {
            if min.is_some() || max.is_some() || step.is_some() {
                return err(
                    fpath,
                    format!(
                        "feasibleSpace min, max and step are not supported for parameterType {ptype}; list the values in feasibleSpace.list"
                    ),
                );
            }
            if !matches!(distribution, None | Some(Distribution::Uniform)) {
                return err(
                    format!("{fpath}.distribution"),
                    format!(
                        "a distribution applies only to double and int parameters; every value of a {ptype} list is equally likely"
                    ),
                );
            }
            if list.is_empty() {
                return err(
                    format!("{fpath}.list"),
                    format!("missing; parameterType {ptype} needs a non-empty list of values"),
                );
            }
            if ptype == "discrete" {
                let mut values = Vec::with_capacity(list.len());
                for (j, item) in list.iter().enumerate() {
                    match item.trim().parse::<f64>() {
                        Ok(v) if v.is_finite() => values.push(v),
                        _ => {
                            return err(
                                format!("{fpath}.list[{j}]"),
                                format!(
                                    "{item:?} is not a number; a discrete parameter lists numbers (use categorical for strings)"
                                ),
                            );
                        }
                    }
                }
                Domain::Discrete { list, values }
            } else {
                Domain::Categorical { list }
            }
        }
    };
    Ok(Param { name, domain })
}

fn metrics_collector(m: Option<wire::MetricsCollectorSpec>) -> Result<MetricsCollector> {
    let base = "spec.metricsCollectorSpec";
    let m = m.unwrap_or_default();
    let kind = match m.collector {
        None => "StdOut".to_owned(),
        Some(c) => {
            let kind = c.kind.unwrap_or_default();
            if c.custom_collector.is_some() && kind != "Custom" {
                return err(
                    format!("{base}.collector.customCollector"),
                    "is only used by collector kind Custom; remove it",
                );
            }
            kind
        }
    };
    let kpath = format!("{base}.collector.kind");
    let spath = format!("{base}.source");
    let source = m.source.unwrap_or_default();
    let not_used = |field: &str, kind: &str| {
        err(
            format!("{spath}.{field}"),
            format!("is not used by collector kind {kind}; remove it"),
        )
    };
    let filters = |source: &wire::Source| -> Result<Vec<String>> {
        let formats = source
            .filter
            .as_ref()
            .and_then(|f| f.metrics_format.clone())
            .unwrap_or_default();
        for (i, f) in formats.iter().enumerate() {
            compile_filter(f)
                .map_err(|e| SpecError::new(format!("{spath}.filter.metricsFormat[{i}]"), e))?;
        }
        Ok(formats)
    };
    match kind.as_str() {
        "StdOut" => {
            if source.http_get.is_some() {
                return not_used("httpGet", "StdOut");
            }
            if source.file_system_path.is_some() {
                return err(
                    format!("{spath}.fileSystemPath"),
                    "is not used by collector kind StdOut, which reads the trial's standard output; remove it or use kind: File",
                );
            }
            Ok(MetricsCollector::StdOut {
                metrics_format: filters(&source)?,
            })
        }
        "File" => {
            if source.http_get.is_some() {
                return not_used("httpGet", "File");
            }
            let fsp = source.file_system_path.clone().unwrap_or_default();
            let ppath = format!("{spath}.fileSystemPath");
            match fsp.kind.as_deref() {
                None | Some("") | Some("File") => {}
                Some(other) => {
                    return err(
                        format!("{ppath}.kind"),
                        format!("{other:?} must be File for collector kind File"),
                    );
                }
            }
            let path = fsp
                .path
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| DEFAULT_FILE_PATH.to_owned());
            if !path.starts_with('/') {
                return err(
                    format!("{ppath}.path"),
                    format!("{path:?} must be an absolute path to the metrics file"),
                );
            }
            let format = match fsp.format.as_deref() {
                None | Some("") | Some("TEXT") => FileFormat::Text {
                    metrics_format: filters(&source)?,
                },
                Some("JSON") => {
                    if source.filter.is_some() {
                        return err(
                            format!("{spath}.filter"),
                            "must be omitted when the metrics file's format is JSON",
                        );
                    }
                    FileFormat::Json
                }
                Some(other) => {
                    return err(
                        format!("{ppath}.format"),
                        format!("{other:?} is not a metrics file format; use TEXT or JSON"),
                    );
                }
            };
            Ok(MetricsCollector::File { path, format })
        }
        "TensorFlowEvent" => {
            if source.http_get.is_some() {
                return not_used("httpGet", "TensorFlowEvent");
            }
            if source.filter.is_some() {
                return not_used("filter", "TensorFlowEvent");
            }
            let fsp = source.file_system_path.clone().unwrap_or_default();
            let ppath = format!("{spath}.fileSystemPath");
            match fsp.kind.as_deref() {
                None | Some("") | Some("Directory") => {}
                Some(other) => {
                    return err(
                        format!("{ppath}.kind"),
                        format!("{other:?} must be Directory for collector kind TensorFlowEvent"),
                    );
                }
            }
            if let Some(f) = fsp.format.as_deref().filter(|f| !f.is_empty()) {
                return err(
                    format!("{ppath}.format"),
                    format!("{f:?} must be empty for collector kind TensorFlowEvent"),
                );
            }
            let path = fsp
                .path
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| DEFAULT_TF_EVENT_DIR.to_owned());
            if !path.starts_with('/') {
                return err(
                    format!("{ppath}.path"),
                    format!("{path:?} must be an absolute path to the directory of event files"),
                );
            }
            Ok(MetricsCollector::TensorFlowEvent { path })
        }
        "Push" => {
            if source.http_get.is_some()
                || source.file_system_path.is_some()
                || source.filter.is_some()
            {
                return err(
                    spath,
                    "is not used by collector kind Push (the trial reports its metrics itself); remove it",
                );
            }
            Ok(MetricsCollector::Push)
        }
        "PrometheusMetric" => err(
            kpath,
            "PrometheusMetric is not supported yet: Oxflow does not scrape metrics endpoints; print metrics to standard output (StdOut), write a file (File) or report them (Push)",
        ),
        "Custom" => err(
            kpath,
            "Custom is not supported: Oxflow does not run custom collector containers; print metrics to standard output (StdOut), write a file (File) or report them (Push)",
        ),
        "None" => err(
            kpath,
            "kind None was renamed to Push in Katib; use kind: Push",
        ),
        "" => err(kpath, "missing; use StdOut, File, TensorFlowEvent or Push"),
        other => err(
            kpath,
            format!(
                "{other:?} is not a metrics collector kind; use StdOut, File, TensorFlowEvent or Push"
            ),
        ),
    }
}

fn early_stopping(e: wire::Algorithm) -> Result<EarlyStopping> {
    let base = "spec.earlyStopping";
    match e.algorithm_name.as_deref() {
        Some("medianstop") => {}
        None | Some("") => return err(format!("{base}.algorithmName"), "missing; use medianstop"),
        Some(other) => {
            return err(
                format!("{base}.algorithmName"),
                format!(
                    "{other:?} is not an early-stopping algorithm; Katib (and Oxflow) provide medianstop"
                ),
            );
        }
    }
    let mut ms = MedianStop::default();
    let mut seen = BTreeSet::new();
    for (i, s) in e
        .algorithm_settings
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let path = format!("{base}.algorithmSettings[{i}]");
        let name = s.name.unwrap_or_default();
        if !seen.insert(name.clone()) {
            return err(
                format!("{path}.name"),
                format!("setting {name:?} is given twice"),
            );
        }
        let value = s.value.map(|v| v.0).unwrap_or_default();
        let parsed = value.trim().parse::<i64>().ok();
        match name.as_str() {
            "min_trials_required" => match parsed {
                Some(n) if n > 0 && n <= i64::from(u32::MAX) => ms.min_trials_required = n as u32,
                _ => {
                    return err(
                        format!("{path}.value"),
                        format!("min_trials_required {value:?} must be an integer greater than 0"),
                    );
                }
            },
            "start_step" => match parsed {
                Some(n) if n >= 1 && n <= i64::from(u32::MAX) => ms.start_step = n as u32,
                _ => {
                    return err(
                        format!("{path}.value"),
                        format!("start_step {value:?} must be an integer of at least 1"),
                    );
                }
            },
            _ => {
                return err(
                    format!("{path}.name"),
                    format!(
                        "unknown medianstop setting {name:?}; medianstop accepts min_trials_required and start_step"
                    ),
                );
            }
        }
    }
    Ok(EarlyStopping::MedianStop(ms))
}

/// `${trialSpec.<key>}` as a whole reference.
fn meta_reference(reference: &str) -> Option<std::result::Result<TrialReference, String>> {
    let key = reference.strip_prefix("${trialSpec.")?.strip_suffix('}')?;
    let parsed = match key {
        "Name" => Ok(TrialReference::Name),
        "Namespace" => Ok(TrialReference::Namespace),
        "Kind" => Ok(TrialReference::Kind),
        "APIVersion" => Ok(TrialReference::ApiVersion),
        _ => {
            let indexed = key
                .strip_suffix(']')
                .and_then(|k| k.split_once('['))
                .filter(|(_, idx)| !idx.is_empty());
            match indexed {
                Some(("Labels", k)) => Ok(TrialReference::Label(k.to_owned())),
                Some(("Annotations", k)) => Ok(TrialReference::Annotation(k.to_owned())),
                _ => Err(format!(
                    "{reference:?} is not trial metadata; use ${{trialSpec.Name}}, ${{trialSpec.Namespace}}, ${{trialSpec.Kind}}, ${{trialSpec.APIVersion}}, ${{trialSpec.Labels[key]}} or ${{trialSpec.Annotations[key]}}"
                )),
            }
        }
    };
    Some(parsed)
}

fn trial_template(t: Option<wire::TrialTemplate>, params: &[Param]) -> Result<TrialTemplate> {
    let base = "spec.trialTemplate";
    let Some(t) = t else {
        return err(
            base,
            "missing; set trialTemplate with a batch/v1 Job under trialSpec",
        );
    };
    if t.trial_spec.is_some() && t.config_map.is_some() {
        return err(
            base,
            "only one of spec.trialTemplate.trialSpec and spec.trialTemplate.configMap can be specified",
        );
    }
    if t.config_map.is_some() {
        return err(
            format!("{base}.configMap"),
            "trial templates from ConfigMaps are not supported: there are no ConfigMaps locally; put the Job inline under spec.trialTemplate.trialSpec",
        );
    }
    let Some(primary) = t.primary_container_name.filter(|n| !n.is_empty()) else {
        return err(
            format!("{base}.primaryContainerName"),
            "missing; name the container of the trial's Job that runs the training code",
        );
    };
    let spath = format!("{base}.trialSpec");
    let Some(trial_spec) = t.trial_spec else {
        return err(spath, "missing; set trialSpec to a batch/v1 Job");
    };
    let Some(obj) = trial_spec.as_object() else {
        return err(spath, "must be an object (a batch/v1 Job)");
    };
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    if api_version.is_empty() {
        return err(
            format!("{spath}.apiVersion"),
            "missing; set apiVersion: batch/v1",
        );
    }
    if kind.is_empty() {
        return err(format!("{spath}.kind"), "missing; set kind: Job");
    }
    if TRAINING_JOB_KINDS.contains(&kind) {
        return err(
            format!("{spath}.kind"),
            format!(
                "{kind} trials are not supported: TFJob/PyTorchJob trials need training jobs, which Oxflow does not run yet; use a batch/v1 Job whose container runs the training script"
            ),
        );
    }
    if kind != "Job" {
        return err(
            format!("{spath}.kind"),
            format!("{kind:?} trials are not supported; Oxflow runs batch/v1 Job trials"),
        );
    }
    if api_version != "batch/v1" {
        return err(
            format!("{spath}.apiVersion"),
            format!("{api_version:?} is not supported for kind Job; use batch/v1"),
        );
    }
    let meta = obj.get("metadata");
    if let Some(meta) = meta
        && !meta.is_object()
    {
        return err(format!("{spath}.metadata"), "must be an object");
    }
    if meta.and_then(|m| m.get("name")).is_some() || meta.and_then(|m| m.get("namespace")).is_some()
    {
        return err(
            format!("{spath}.metadata"),
            "metadata.name and metadata.namespace must be omitted: every trial's Job is named after the trial",
        );
    }
    for (field, value, default) in [
        (
            "successCondition",
            &t.success_condition,
            JOB_SUCCESS_CONDITION,
        ),
        (
            "failureCondition",
            &t.failure_condition,
            JOB_FAILURE_CONDITION,
        ),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty())
            && v != default
        {
            return err(
                format!("{base}.{field}"),
                format!(
                    "custom conditions are not supported: a trial's Job succeeds or fails with its primary container's exit status; remove {field} (the default for Job is {default})"
                ),
            );
        }
    }

    let Some(wire_params) = t.trial_parameters else {
        return err(
            format!("{base}.trialParameters"),
            "missing; map each ${trialParameters.<name>} placeholder of trialSpec to a parameter",
        );
    };
    let ppath = format!("{base}.trialParameters");
    let mut template = serde_json::to_string(&trial_spec)
        .map_err(|e| SpecError::new(spath.clone(), format!("cannot be serialised: {e}")))?;
    let mut trial_parameters: Vec<TrialParameter> = Vec::with_capacity(wire_params.len());
    let mut references = BTreeSet::new();
    for (i, tp) in wire_params.into_iter().enumerate() {
        let name = tp.name.unwrap_or_default();
        let reference = tp.reference.unwrap_or_default();
        if name.is_empty() || reference.is_empty() || name.contains('{') || name.contains('}') {
            return err(
                format!("{ppath}[{i}]"),
                "name and reference must be specified and name must not contain '{' or '}'",
            );
        }
        if trial_parameters.iter().any(|p| p.name == name) {
            return err(
                format!("{ppath}[{i}].name"),
                format!("trial parameter {name:?} is defined twice"),
            );
        }
        if !references.insert(reference.clone()) {
            return err(
                format!("{ppath}[{i}].reference"),
                format!("reference {reference:?} is used twice"),
            );
        }
        let reference = match meta_reference(&reference) {
            Some(Ok(r)) => r,
            Some(Err(message)) => return err(format!("{ppath}[{i}].reference"), message),
            None => {
                if !params.iter().any(|p| p.name == reference) {
                    let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
                    return err(
                        format!("{ppath}[{i}].reference"),
                        format!(
                            "{reference:?} is not a parameter in spec.parameters ({}) nor trial metadata such as ${{trialSpec.Name}}",
                            names.join(", ")
                        ),
                    );
                }
                TrialReference::Parameter(reference)
            }
        };
        if let TrialReference::Label(k) | TrialReference::Annotation(k) = &reference {
            let field = if matches!(reference, TrialReference::Label(_)) {
                "labels"
            } else {
                "annotations"
            };
            if meta
                .and_then(|m| m.get(field))
                .and_then(|l| l.get(k))
                .is_none()
            {
                return err(
                    format!("{ppath}[{i}].reference"),
                    format!("trialSpec.metadata.{field} has no key {k:?}"),
                );
            }
        }
        let placeholder = format!("${{trialParameters.{name}}}");
        if !template.contains(&placeholder) {
            return err(
                format!("{ppath}[{i}].name"),
                format!(
                    "{placeholder} does not occur in spec.trialTemplate.trialSpec; put it where the value belongs or remove this trial parameter"
                ),
            );
        }
        template = template.replace(&placeholder, "test-value");
        trial_parameters.push(TrialParameter {
            name,
            description: tp.description,
            reference,
        });
    }
    let leftover: BTreeSet<&str> = placeholder_regex()
        .find_iter(&template)
        .map(|m| m.as_str())
        .collect();
    if !leftover.is_empty() {
        let list: Vec<&str> = leftover.into_iter().collect();
        return err(
            spath,
            format!(
                "{} in trialSpec have no entry in spec.trialTemplate.trialParameters; add one per placeholder",
                list.join(", ")
            ),
        );
    }
    // Katib creates a trial only when every parameter feeds a trial
    // parameter; failing at load time beats failing at the first trial.
    for (j, p) in params.iter().enumerate() {
        let used = trial_parameters
            .iter()
            .any(|tp| tp.reference == TrialReference::Parameter(p.name.clone()));
        if !used {
            return err(
                format!("spec.parameters[{j}]"),
                format!(
                    "parameter {:?} is not referenced by spec.trialTemplate.trialParameters; add a trial parameter with reference: {}",
                    p.name, p.name
                ),
            );
        }
    }
    super::trial::check_job(&trial_spec, &primary)?;
    Ok(TrialTemplate {
        primary_container_name: primary,
        trial_parameters,
        trial_spec,
        primary_pod_labels: t.primary_pod_labels.unwrap_or_default(),
        retain: t.retain.unwrap_or(false),
    })
}

fn placeholder_regex() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    // Katib's TrialTemplateParamReplaceFormatRegex; the pattern is a constant.
    RE.get_or_init(|| regex::Regex::new(r"\$\{trialParameters\..+?\}").expect("constant regex"))
}

/// Rules that depend on the algorithm and the rest of the spec, then the
/// algorithm's own settings check.
fn algorithm_fits(spec: &ExperimentSpec) -> Result<()> {
    let name = spec.algorithm.algorithm_name.as_str();
    let space = spec.search_space();
    if name == "grid" {
        for (i, p) in spec.parameters.iter().enumerate() {
            if let Domain::Double { step: None, .. } = p.domain {
                return err(
                    format!("spec.parameters[{i}].feasibleSpace.step"),
                    format!(
                        "grid search needs a step for every double parameter; set feasibleSpace.step of {:?}",
                        p.name
                    ),
                );
            }
        }
        if let (Some(size), Some(max)) = (space.size(), spec.max_trial_count)
            && u128::from(max) > size
        {
            return err(
                "spec.maxTrialCount",
                format!(
                    "{max} is more than the {size} points of the grid; lower spec.maxTrialCount or refine the grid"
                ),
            );
        }
    }
    if name == "hyperband" {
        hyperband_parallelism(spec)?;
    }
    let settings = spec.algorithm.settings();
    let budget = Budget {
        max_trial_count: spec.max_trial_count,
        parallel_trial_count: spec.parallel_trial_count,
    };
    match oxflow_suggest::build(name, &settings, &space, budget, 0) {
        Ok(_) => Ok(()),
        Err(e) => Err(settings_error(spec, e)),
    }
}

/// Katib's hyperband `ValidateAlgorithmSettings`: a bracket's first rung
/// must run in parallel. Malformed settings are left to the algorithm.
fn hyperband_parallelism(spec: &ExperimentSpec) -> Result<()> {
    let get = |n: &str| {
        spec.algorithm
            .algorithm_settings
            .iter()
            .find(|s| s.name == n)
            .map(|s| s.value.trim().to_owned())
    };
    let Some(r_l) = get("r_l")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|r| *r > 0.0 && r.is_finite())
    else {
        return Ok(());
    };
    let eta = match get("eta") {
        None => 3.0,
        Some(v) => match v.parse::<f64>() {
            Ok(e) if e.trunc() > 0.0 => e.trunc(),
            Ok(_) => 3.0,
            Err(_) => return Ok(()),
        },
    };
    if eta <= 1.0 {
        return Ok(());
    }
    let s_max = (r_l.ln() / eta.ln()).trunc();
    let needed = eta.powf(s_max).ceil();
    if f64::from(spec.parallel_trial_count) < needed {
        return err(
            "spec.parallelTrialCount",
            format!(
                "hyperband with eta={eta} and r_l={r_l} runs {needed} trials at once in its first bracket; set spec.parallelTrialCount to at least {needed}"
            ),
        );
    }
    Ok(())
}

fn settings_error(spec: &ExperimentSpec, e: SettingsError) -> SpecError {
    let name_path = "spec.algorithm.algorithmName";
    match e {
        SettingsError::UnknownAlgorithm(name) => SpecError::new(
            name_path,
            format!(
                "unknown algorithm {name:?}; use one of Katib's hyperparameter algorithms (random, grid, sobol, tpe, multivariate-tpe, cmaes, bayesianoptimization, hyperband)"
            ),
        ),
        SettingsError::Unsupported { .. } | SettingsError::Space(_) => {
            SpecError::new(name_path, e.to_string())
        }
        SettingsError::Setting { ref name, .. } => {
            let path = match spec
                .algorithm
                .algorithm_settings
                .iter()
                .position(|s| s.name == *name)
            {
                Some(i) => format!("spec.algorithm.algorithmSettings[{i}]"),
                None => "spec.algorithm.algorithmSettings".to_owned(),
            };
            SpecError::new(path, e.to_string())
        }
    }
}

// ---------------------------------------------------------------------------
// Typed model → Katib's shape.

fn f64_text(v: f64) -> String {
    format!("{v:?}")
}

fn param_to_wire(p: &Param) -> wire::Parameter {
    let s = |v: String| Some(ScalarOrBool(v));
    let (ptype, fs) = match &p.domain {
        Domain::Double {
            min,
            max,
            step,
            distribution,
        } => (
            "double",
            wire::FeasibleSpace {
                min: s(f64_text(*min)),
                max: s(f64_text(*max)),
                step: step.map(f64_text).map(ScalarOrBool),
                distribution: Some(distribution_name(*distribution).to_owned()),
                list: None,
            },
        ),
        Domain::Int {
            min,
            max,
            step,
            distribution,
        } => (
            "int",
            wire::FeasibleSpace {
                min: s(min.to_string()),
                max: s(max.to_string()),
                step: step.map(|v| ScalarOrBool(v.to_string())),
                distribution: Some(distribution_name(*distribution).to_owned()),
                list: None,
            },
        ),
        Domain::Discrete { list, .. } | Domain::Categorical { list } => (
            if matches!(p.domain, Domain::Discrete { .. }) {
                "discrete"
            } else {
                "categorical"
            },
            wire::FeasibleSpace {
                list: Some(list.iter().cloned().map(ScalarOrBool).collect()),
                // Katib's webhook defaults the distribution of every parameter.
                distribution: Some("uniform".to_owned()),
                ..Default::default()
            },
        ),
    };
    wire::Parameter {
        name: Some(p.name.clone()),
        parameter_type: Some(ptype.to_owned()),
        feasible_space: Some(fs),
    }
}

fn distribution_name(d: Distribution) -> &'static str {
    match d {
        Distribution::Uniform => "uniform",
        Distribution::LogUniform => "logUniform",
        Distribution::Normal => "normal",
        Distribution::LogNormal => "logNormal",
    }
}

fn collector_to_wire(m: &MetricsCollector) -> wire::MetricsCollectorSpec {
    let filter = |f: &[String]| {
        (!f.is_empty()).then(|| wire::Filter {
            metrics_format: Some(f.to_vec()),
        })
    };
    let (kind, source) = match m {
        MetricsCollector::StdOut { metrics_format } => (
            "StdOut",
            filter(metrics_format).map(|f| wire::Source {
                filter: Some(f),
                ..Default::default()
            }),
        ),
        MetricsCollector::File { path, format } => {
            let (fmt, flt) = match format {
                FileFormat::Text { metrics_format } => ("TEXT", filter(metrics_format)),
                FileFormat::Json => ("JSON", None),
            };
            (
                "File",
                Some(wire::Source {
                    file_system_path: Some(wire::FileSystemPath {
                        path: Some(path.clone()),
                        kind: Some("File".to_owned()),
                        format: Some(fmt.to_owned()),
                    }),
                    filter: flt,
                    http_get: None,
                }),
            )
        }
        MetricsCollector::TensorFlowEvent { path } => (
            "TensorFlowEvent",
            Some(wire::Source {
                file_system_path: Some(wire::FileSystemPath {
                    path: Some(path.clone()),
                    kind: Some("Directory".to_owned()),
                    format: None,
                }),
                ..Default::default()
            }),
        ),
        MetricsCollector::Push => ("Push", None),
    };
    wire::MetricsCollectorSpec {
        source,
        collector: Some(wire::Collector {
            kind: Some(kind.to_owned()),
            custom_collector: None,
        }),
    }
}

pub(super) fn to_wire(e: &Experiment) -> Value {
    let s = &e.spec;
    let o = &s.objective;
    let settings = |v: &[AlgorithmSetting]| {
        (!v.is_empty()).then(|| {
            v.iter()
                .map(|x| wire::Setting {
                    name: Some(x.name.clone()),
                    value: Some(ScalarOrBool(x.value.clone())),
                })
                .collect()
        })
    };
    let early_stopping = s.early_stopping.as_ref().map(|es| match es {
        EarlyStopping::MedianStop(m) => wire::Algorithm {
            algorithm_name: Some("medianstop".to_owned()),
            algorithm_settings: Some(vec![
                wire::Setting {
                    name: Some("min_trials_required".to_owned()),
                    value: Some(ScalarOrBool(m.min_trials_required.to_string())),
                },
                wire::Setting {
                    name: Some("start_step".to_owned()),
                    value: Some(ScalarOrBool(m.start_step.to_string())),
                },
            ]),
        },
    });
    let t = &s.trial_template;
    let metadata = ObjectMeta::new(
        &e.name,
        e.namespace.as_ref().map(|n| n.as_str()),
        &e.labels,
        &e.annotations,
    );
    let doc = Object::new(
        API_VERSION,
        KIND,
        metadata,
        wire::Spec {
            parameters: Some(s.parameters.iter().map(param_to_wire).collect()),
            objective: Some(wire::Objective {
                objective_type: Some(o.objective_type.as_str().to_owned()),
                goal: o.goal.map(wire::Number),
                objective_metric_name: Some(o.objective_metric_name.clone()),
                additional_metric_names: (!o.additional_metric_names.is_empty())
                    .then(|| o.additional_metric_names.clone()),
                metric_strategies: Some(
                    o.metric_strategies
                        .iter()
                        .map(|m| wire::MetricStrategy {
                            name: Some(m.name.clone()),
                            value: Some(m.value.as_str().to_owned()),
                        })
                        .collect(),
                ),
            }),
            algorithm: Some(wire::Algorithm {
                algorithm_name: Some(s.algorithm.algorithm_name.clone()),
                algorithm_settings: settings(&s.algorithm.algorithm_settings),
            }),
            early_stopping,
            trial_template: Some(wire::TrialTemplate {
                retain: t.retain.then_some(true),
                trial_spec: Some(t.trial_spec.clone()),
                config_map: None,
                trial_parameters: Some(
                    t.trial_parameters
                        .iter()
                        .map(|p| wire::TrialParameter {
                            name: Some(p.name.clone()),
                            description: p.description.clone(),
                            reference: Some(p.reference.to_string()),
                        })
                        .collect(),
                ),
                primary_pod_labels: (!t.primary_pod_labels.is_empty())
                    .then(|| t.primary_pod_labels.clone()),
                primary_container_name: Some(t.primary_container_name.clone()),
                success_condition: Some(JOB_SUCCESS_CONDITION.to_owned()),
                failure_condition: Some(JOB_FAILURE_CONDITION.to_owned()),
            }),
            parallel_trial_count: Some(i64::from(s.parallel_trial_count)),
            max_trial_count: s.max_trial_count.map(i64::from),
            max_failed_trial_count: s.max_failed_trial_count.map(i64::from),
            metrics_collector_spec: Some(collector_to_wire(&s.metrics_collector)),
            nas_config: None,
            resume_policy: Some(s.resume_policy.as_str().to_owned()),
        },
    );
    // Serialising plain data structures with string keys cannot fail.
    serde_json::to_value(doc).unwrap_or(Value::Null)
}
