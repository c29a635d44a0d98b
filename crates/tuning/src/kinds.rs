//! Katib's kinds in the resource model: the registry entries of
//! Experiment, Trial and Suggestion (`kubeflow.org/v1beta1`, printed with
//! Katib's own columns), the labels and annotations Oxflow keeps on them,
//! and the migration of a data directory's experiments from the tables
//! they had before.
//!
//! An Experiment's defaulting and validation are the spec parser's: the
//! object is read through [`Experiment::from_json_value`] and its `spec` is
//! stored as the parser renders it back (every default spelled out), as
//! Katib's admission webhook does, so a stored spec always parses. Trials
//! and Suggestions are written by the tuning controller; what a user may
//! write to them is only checked for shape.

use oxflow_core::object::{Column, FieldError, Kind, user_view};
use serde_json::{Value, json};

use crate::spec::Experiment;

/// The label Katib puts on an experiment's trials (and their pods).
pub const EXPERIMENT_LABEL: &str = "katib.kubeflow.org/experiment";
/// The label Katib puts on a trial's pods.
pub const TRIAL_LABEL: &str = "katib.kubeflow.org/trial";
/// A trial's position in its experiment's history, from 0 (Oxflow's): the
/// order the algorithms replay, so it must not change with a trial's status.
pub const SEQ_ANNOTATION: &str = "tuning.oxflow.dev/seq";
/// Where trials run when their container names no `workingDir`
/// (`oxflow tune` sets the directory it was started in).
pub const WORKING_DIR_ANNOTATION: &str = "tuning.oxflow.dev/working-dir";

/// Katib's columns: the newest condition's type and status.
const TYPE: Column = Column {
    name: "Type",
    type_: "string",
    json_path: ".status.conditions[-1:].type",
    priority: 0,
    description: "The newest condition.",
    compute: None,
};
const STATUS: Column = Column {
    name: "Status",
    type_: "string",
    json_path: ".status.conditions[-1:].status",
    priority: 0,
    description: "Whether the newest condition holds.",
    compute: None,
};
const AGE: Column = Column {
    name: "Age",
    type_: "date",
    json_path: ".metadata.creationTimestamp",
    priority: 0,
    description: "How long ago it was created.",
    compute: None,
};

/// `kubeflow.org/v1beta1` Experiment.
pub static EXPERIMENT: Kind = Kind {
    group: "kubeflow.org",
    version: "v1beta1",
    kind: "Experiment",
    plural: "experiments",
    singular: "experiment",
    short_names: &[],
    categories: &["all", "kubeflow", "katib"],
    namespaced: true,
    columns: &[TYPE, STATUS, AGE],
    status_subresource: true,
    fields: &["spec", "status"],
    builtin: false,
    validate: validate_experiment,
    validate_update: Some(experiment_update),
};

/// `kubeflow.org/v1beta1` Trial: one set of parameter values, run once.
pub static TRIAL: Kind = Kind {
    group: "kubeflow.org",
    version: "v1beta1",
    kind: "Trial",
    plural: "trials",
    singular: "trial",
    short_names: &[],
    categories: &["all", "kubeflow", "katib"],
    namespaced: true,
    columns: &[TYPE, STATUS, AGE],
    status_subresource: true,
    fields: &["spec", "status"],
    builtin: false,
    validate: validate_shape,
    validate_update: None,
};

/// `kubeflow.org/v1beta1` Suggestion: what an experiment's algorithm has
/// suggested so far (one per experiment, under its name).
pub static SUGGESTION: Kind = Kind {
    group: "kubeflow.org",
    version: "v1beta1",
    kind: "Suggestion",
    plural: "suggestions",
    singular: "suggestion",
    short_names: &[],
    categories: &["all", "kubeflow", "katib"],
    namespaced: true,
    columns: &[
        TYPE,
        STATUS,
        Column {
            name: "Requested",
            type_: "string",
            json_path: ".spec.requests",
            priority: 0,
            description: "Suggestions asked for.",
            compute: None,
        },
        Column {
            name: "Assigned",
            type_: "string",
            json_path: ".status.suggestionCount",
            priority: 0,
            description: "Suggestions made.",
            compute: None,
        },
        AGE,
    ],
    status_subresource: true,
    fields: &["spec", "status"],
    builtin: false,
    validate: validate_shape,
    validate_update: None,
};

/// The tuning kinds, for the server's registry.
pub fn kinds() -> [&'static Kind; 3] {
    [&EXPERIMENT, &TRIAL, &SUGGESTION]
}

/// Parses the Experiment as the user wrote it and stores its `spec` as the
/// parser renders it back.
fn validate_experiment(object: &mut Value) -> Result<(), Vec<FieldError>> {
    let exp =
        Experiment::from_json_value(user_view(object)).map_err(|e| vec![FieldError::from(e)])?;
    let rendered = exp.to_katib_value();
    object["spec"] = rendered.get("spec").cloned().unwrap_or_else(|| json!({}));
    Ok(())
}

/// The fields of an Experiment's spec that may change after creation (its
/// budget), as Katib's webhook allows.
const EDITABLE: [&str; 3] = ["parallelTrialCount", "maxTrialCount", "maxFailedTrialCount"];

/// Katib's webhook on an update: only the budget may change; every other
/// spec field that differs is named.
fn experiment_update(old: &Value, new: &Value) -> Result<(), Vec<FieldError>> {
    let fields = |o: &Value| {
        o.get("spec")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (old, new) = (fields(old), fields(new));
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    let causes: Vec<FieldError> = names
        .into_iter()
        .filter(|f| !EDITABLE.contains(&f.as_str()) && old.get(*f) != new.get(*f))
        .map(|f| {
            FieldError::invalid(
                format!("spec.{f}"),
                format!(
                    "only {} can be changed after the experiment is created",
                    EDITABLE.join(", ")
                ),
            )
        })
        .collect();
    if causes.is_empty() {
        Ok(())
    } else {
        Err(causes)
    }
}

/// `spec`, when given, is an object.
fn validate_shape(object: &mut Value) -> Result<(), Vec<FieldError>> {
    match object.get("spec") {
        None | Some(Value::Object(_)) => Ok(()),
        Some(_) => Err(vec![FieldError::invalid("spec", "must be an object")]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment() -> Value {
        json!({
            "apiVersion": "kubeflow.org/v1beta1",
            "kind": "Experiment",
            "metadata": {"name": "random", "namespace": "default", "uid": "u"},
            "spec": {
                "objective": {"type": "minimize", "objectiveMetricName": "loss"},
                "algorithm": {"algorithmName": "random"},
                "maxTrialCount": 4,
                "parameters": [{"name": "lr", "parameterType": "double",
                                "feasibleSpace": {"min": "0.01", "max": "0.1"}}],
                "trialTemplate": {
                    "primaryContainerName": "training-container",
                    "trialParameters": [{"name": "lr", "reference": "lr"}],
                    "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                        "containers": [{"name": "training-container", "image": "python:3.11",
                                        "command": ["python", "-c", "print('loss=${trialParameters.lr}')"]}],
                        "restartPolicy": "Never"}}}}
                }
            }
        })
    }

    #[test]
    fn an_experiment_is_stored_with_katibs_defaults() {
        let mut o = experiment();
        validate_experiment(&mut o).unwrap();
        assert_eq!(o["spec"]["parallelTrialCount"], 3);
        assert_eq!(o["spec"]["resumePolicy"], "Never");
        assert_eq!(
            o["spec"]["metricsCollectorSpec"]["collector"]["kind"],
            "StdOut"
        );
        // Defaulting twice changes nothing.
        let once = o.clone();
        validate_experiment(&mut o).unwrap();
        assert_eq!(o, once);
    }

    #[test]
    fn a_bad_experiment_names_its_field() {
        let mut o = experiment();
        o["spec"]["maxTrialCount"] = json!(-1);
        let causes = validate_experiment(&mut o).unwrap_err();
        assert!(causes[0].field.contains("maxTrialCount"), "{causes:?}");
        let mut o = experiment();
        o["spec"]["algorithm"]["algorithmNmae"] = json!("random");
        let causes = validate_experiment(&mut o).unwrap_err();
        assert_eq!(causes[0].reason, "FieldValueUnknown", "{causes:?}");
        assert!(causes[0].field.contains("algorithm"), "{causes:?}");
    }

    #[test]
    fn after_creation_only_the_budget_changes() {
        let mut old = experiment();
        validate_experiment(&mut old).unwrap();
        let mut new = old.clone();
        new["spec"]["maxTrialCount"] = json!(9);
        new["spec"]["parallelTrialCount"] = json!(1);
        assert!(experiment_update(&old, &new).is_ok());
        new["spec"]["algorithm"]["algorithmName"] = json!("tpe");
        new["spec"]["resumePolicy"] = json!("LongRunning");
        let causes = experiment_update(&old, &new).unwrap_err();
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["spec.algorithm", "spec.resumePolicy"]);
        assert!(causes[0].message.contains("maxTrialCount"), "{causes:?}");
    }

    #[test]
    fn trials_and_suggestions_need_an_object_spec() {
        assert!(validate_shape(&mut json!({"spec": {}})).is_ok());
        assert!(validate_shape(&mut json!({})).is_ok());
        assert_eq!(
            validate_shape(&mut json!({"spec": 3})).unwrap_err()[0].field,
            "spec"
        );
    }
}
