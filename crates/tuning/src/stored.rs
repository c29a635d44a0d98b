//! The tuning controller's view of stored Experiment and Trial objects:
//! typed fields read from an object's metadata, spec and status, and the
//! objects and statuses it writes back in Katib's shape.
//!
//! Katib keeps an experiment's phase only as its condition list; so does
//! Oxflow: the phase is the newest condition that holds.

use oxflow_core::object::user_view;
use oxflow_core::{ExperimentPhase, Namespace, Timestamp, TrialPhase};
use serde_json::{Map, Value, json};

use crate::kinds::{EXPERIMENT, EXPERIMENT_LABEL, SEQ_ANNOTATION, TRIAL, WORKING_DIR_ANNOTATION};

/// A stored Experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredExperiment {
    /// `metadata.uid`: an experiment deleted and created again under the
    /// same name is another one.
    pub id: String,
    /// `metadata.namespace`.
    pub namespace: Namespace,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.resourceVersion`: status writes are conditional on it.
    pub resource_version: String,
    /// `metadata.generation`.
    pub generation: i64,
    /// The Experiment as its user wrote it, defaulted (what
    /// [`crate::Experiment::from_json_value`] reads).
    pub spec: Value,
    /// What every suggestion's randomness derives from (the uid's hash).
    pub seed: i64,
    /// [`WORKING_DIR_ANNOTATION`].
    pub working_dir: Option<String>,
    /// The newest condition that holds (`Created` before any).
    pub phase: ExperimentPhase,
    /// Katib's condition list, newest last.
    pub conditions: Value,
    /// `status.currentOptimalTrial.bestTrialName`, when there is one.
    pub optimal_trial: Option<String>,
    /// `metadata.creationTimestamp`.
    pub created_at: Timestamp,
    /// `status.startTime`.
    pub started_at: Option<Timestamp>,
    /// `status.completionTime`.
    pub finished_at: Option<Timestamp>,
    /// `status` as stored (`null` before the controller wrote one): a
    /// status computed equal to it is not written again.
    pub status: Value,
}

/// A stored Trial.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTrial {
    /// `metadata.uid` (its metric reports are kept under it).
    pub id: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.generation` (status writes are for it).
    pub generation: i64,
    /// [`SEQ_ANNOTATION`].
    pub seq: i64,
    /// `spec.parameterAssignments`: a list of `{name, value}`.
    pub assignments: Value,
    /// `spec.labels`: the suggesting algorithm's bookkeeping.
    pub tags: Value,
    /// The newest condition that holds (`Created` before any).
    pub phase: TrialPhase,
    /// That condition's message, when it has one.
    pub message: Option<String>,
    /// `status.oxflow.objective`: the objective metric's value under its
    /// strategy.
    pub objective: Option<f64>,
    /// `status.observation.metrics`: `{name, min, max, latest}` per metric.
    pub observation: Value,
    /// `status.oxflow.attempt`: how many times it was started.
    pub attempt: i64,
    /// `metadata.creationTimestamp`.
    pub created_at: Timestamp,
    /// `status.startTime`.
    pub started_at: Option<Timestamp>,
    /// `status.completionTime`.
    pub finished_at: Option<Timestamp>,
}

fn time(v: Option<&Value>) -> Option<Timestamp> {
    v.and_then(Value::as_str).and_then(Timestamp::parse_rfc3339)
}

/// The newest condition with `status: "True"` whose type `parse` accepts,
/// skipping `Created` unless it is the only one.
fn newest_true<P>(conditions: &Value, parse: impl Fn(&str) -> Option<P>) -> Option<(P, &Value)> {
    let list = conditions.as_array()?;
    let mut created = None;
    for c in list.iter().rev() {
        if c.get("status").and_then(Value::as_str) != Some("True") {
            continue;
        }
        let Some(kind) = c.get("type").and_then(Value::as_str) else {
            continue;
        };
        if kind == "Created" {
            created = created.or_else(|| parse(kind).map(|p| (p, c)));
            continue;
        }
        if let Some(p) = parse(kind) {
            return Some((p, c));
        }
    }
    created
}

impl StoredExperiment {
    /// The view of a stored Experiment; `None` for an object without a
    /// valid namespace or uid (which the resource model never stores).
    pub fn from_object(object: &Value) -> Option<Self> {
        let meta = object.get("metadata")?;
        let id = meta.get("uid")?.as_str()?.to_owned();
        let status = object.get("status").cloned().unwrap_or(Value::Null);
        let conditions = match status.get("conditions") {
            Some(c) if c.is_array() => c.clone(),
            _ => json!([]),
        };
        let phase = newest_true(&conditions, |k| k.parse().ok())
            .map(|(p, _)| p)
            .unwrap_or(ExperimentPhase::Created);
        Some(Self {
            seed: seed_from(&id),
            id,
            namespace: Namespace::new(meta.get("namespace")?.as_str()?.to_owned()).ok()?,
            name: meta.get("name")?.as_str()?.to_owned(),
            resource_version: meta
                .get("resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            generation: meta.get("generation").and_then(Value::as_i64).unwrap_or(1),
            spec: user_view(object),
            working_dir: meta
                .pointer(&format!(
                    "/annotations/{}",
                    WORKING_DIR_ANNOTATION.replace('/', "~1")
                ))
                .and_then(Value::as_str)
                .map(str::to_owned),
            phase,
            conditions,
            optimal_trial: status
                .pointer("/currentOptimalTrial/bestTrialName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .map(str::to_owned),
            created_at: time(meta.get("creationTimestamp")).unwrap_or_else(Timestamp::now),
            started_at: time(status.get("startTime")),
            finished_at: time(status.get("completionTime")),
            status,
        })
    }

    /// The message of the newest condition.
    pub fn latest_reason(&self) -> String {
        self.conditions
            .as_array()
            .and_then(|l| l.last())
            .and_then(|c| c.get("reason"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    /// The experiment's objective (`spec.objective`), as Katib copies it
    /// into each trial.
    pub fn objective(&self) -> Value {
        self.spec
            .pointer("/spec/objective")
            .cloned()
            .unwrap_or(Value::Null)
    }
}

impl StoredTrial {
    /// The view of a stored Trial; `None` for one without a uid or name.
    pub fn from_object(object: &Value) -> Option<Self> {
        let meta = object.get("metadata")?;
        let status = object.get("status").unwrap_or(&Value::Null);
        let conditions = status.get("conditions").unwrap_or(&Value::Null);
        let newest = newest_true(conditions, |k| k.parse::<TrialPhase>().ok());
        let oxflow = status.get("oxflow");
        Some(Self {
            id: meta.get("uid")?.as_str()?.to_owned(),
            name: meta.get("name")?.as_str()?.to_owned(),
            generation: meta.get("generation").and_then(Value::as_i64).unwrap_or(1),
            seq: meta
                .get("annotations")
                .and_then(|a| a.get(SEQ_ANNOTATION))
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .unwrap_or(i64::MAX),
            assignments: object
                .pointer("/spec/parameterAssignments")
                .cloned()
                .unwrap_or_else(|| json!([])),
            tags: object
                .pointer("/spec/labels")
                .cloned()
                .unwrap_or_else(|| json!({})),
            phase: newest.map(|(p, _)| p).unwrap_or(TrialPhase::Created),
            message: newest
                .and_then(|(_, c)| c.get("message"))
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
                .map(str::to_owned),
            objective: oxflow
                .and_then(|o| o.get("objective"))
                .and_then(Value::as_f64),
            observation: status
                .pointer("/observation/metrics")
                .cloned()
                .unwrap_or_else(|| json!([])),
            attempt: oxflow
                .and_then(|o| o.get("attempt"))
                .and_then(Value::as_i64)
                .unwrap_or(0),
            created_at: time(meta.get("creationTimestamp")).unwrap_or_else(Timestamp::now),
            started_at: time(status.get("startTime")),
            finished_at: time(status.get("completionTime")),
        })
    }

    /// The trial's `status` in Katib's shape, with Oxflow's `oxflow`
    /// block (`attempt`, `objective`).
    pub fn status(&self) -> Value {
        let mut status = Map::new();
        if let Some(s) = self.started_at {
            status.insert("startTime".into(), json!(s.to_rfc3339()));
        }
        if let Some(f) = self.finished_at
            && self.phase.is_terminal()
        {
            status.insert("completionTime".into(), json!(f.to_rfc3339()));
        }
        let reason = match self.phase {
            TrialPhase::Created => "TrialCreated",
            TrialPhase::Running => "TrialRunning",
            TrialPhase::Succeeded => "TrialSucceeded",
            TrialPhase::Failed => "TrialFailed",
            TrialPhase::Killed => "TrialKilled",
            TrialPhase::EarlyStopped => "TrialEarlyStopped",
            TrialPhase::MetricsUnavailable => "MetricsUnavailable",
        };
        let at = self
            .finished_at
            .filter(|_| self.phase.is_terminal())
            .or(self.started_at)
            .unwrap_or(self.created_at);
        let mut conditions = vec![crate::status::condition(
            "Created",
            "TrialCreated",
            "Trial is created",
            self.created_at,
        )];
        if self.phase != TrialPhase::Created {
            conditions.push(crate::status::condition(
                self.phase.as_str(),
                reason,
                self.message.as_deref().unwrap_or_default(),
                at,
            ));
        }
        status.insert("conditions".into(), Value::Array(conditions));
        status.insert("observation".into(), json!({"metrics": self.observation}));
        status.insert(
            "oxflow".into(),
            json!({"attempt": self.attempt, "objective": self.objective}),
        );
        Value::Object(status)
    }
}

/// The status of a trial started as it is created (`Created`, then
/// `Running` in its first attempt, both at `now`): stored with the object,
/// so that starting a trial costs one write, not two.
pub fn started_status(now: Timestamp) -> Value {
    StoredTrial {
        id: String::new(),
        name: String::new(),
        generation: 1,
        seq: 0,
        assignments: json!([]),
        tags: json!({}),
        phase: TrialPhase::Running,
        message: None,
        objective: None,
        observation: json!([]),
        attempt: 1,
        created_at: now,
        started_at: Some(now),
        finished_at: None,
    }
    .status()
}

/// A new Trial object of `experiment` at position `seq` (not yet started),
/// owned by the experiment so that deleting it deletes its trials.
pub fn new_trial_object(
    experiment: &StoredExperiment,
    name: &str,
    seq: i64,
    assignments: &Value,
    tags: &Value,
    run_spec: Option<Value>,
) -> Value {
    let mut spec = json!({
        "objective": experiment.objective(),
        "parameterAssignments": assignments,
        "primaryContainerName": experiment
            .spec
            .pointer("/spec/trialTemplate/primaryContainerName")
            .cloned()
            .unwrap_or(Value::Null),
        "labels": tags,
    });
    if let Some(run) = run_spec {
        spec["runSpec"] = run;
    }
    json!({
        "apiVersion": TRIAL.api_version(),
        "kind": TRIAL.kind,
        "metadata": {
            "name": name,
            "namespace": experiment.namespace.as_str(),
            "labels": {EXPERIMENT_LABEL: experiment.name},
            "annotations": {SEQ_ANNOTATION: seq.to_string()},
            "ownerReferences": [owner_reference(experiment)],
        },
        "spec": spec,
    })
}

/// The reference by which an experiment owns its trials and suggestion.
pub fn owner_reference(experiment: &StoredExperiment) -> Value {
    json!({
        "apiVersion": EXPERIMENT.api_version(),
        "kind": EXPERIMENT.kind,
        "name": experiment.name,
        "uid": experiment.id,
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Whether `object` is owned by the experiment with uid `experiment`.
pub fn owned_by(object: &Value, experiment: &str) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r.get("uid").and_then(Value::as_str) == Some(experiment))
        })
}

/// The seed of an experiment with uid `id`: fixed by its identity, so that
/// every later suggestion (after a restart too) is reproducible;
/// `random_state` in the algorithm's settings wins.
pub fn seed_from(id: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(id.as_bytes());
    i64::from_le_bytes(d[..8].try_into().expect("8 bytes")) & i64::MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trial_reads_back_what_its_status_says() {
        let t = StoredTrial {
            id: "u".into(),
            name: "exp-abc".into(),
            generation: 1,
            seq: 4,
            assignments: json!([{"name": "lr", "value": "0.1"}]),
            tags: json!({}),
            phase: TrialPhase::EarlyStopped,
            message: Some("stopped by the early-stopping rule".into()),
            objective: Some(0.25),
            observation: json!([{"name": "loss", "min": "0.25", "max": "1", "latest": "0.25"}]),
            attempt: 2,
            created_at: Timestamp(1_000),
            started_at: Some(Timestamp(2_000)),
            finished_at: Some(Timestamp(3_000)),
        };
        let object = json!({
            "metadata": {"uid": "u", "name": "exp-abc", "generation": 1,
                         "creationTimestamp": Timestamp(1_000).to_rfc3339(),
                         "annotations": {SEQ_ANNOTATION: "4"}},
            "spec": {"parameterAssignments": t.assignments, "labels": {}},
            "status": t.status(),
        });
        assert_eq!(StoredTrial::from_object(&object).unwrap(), t);
        assert_eq!(object["status"]["conditions"][1]["type"], "EarlyStopped");
        assert_eq!(
            object["status"]["completionTime"],
            Timestamp(3_000).to_rfc3339()
        );
    }

    #[test]
    fn the_phase_is_the_newest_condition_that_holds() {
        let c = json!([
            {"type": "Created", "status": "True"},
            {"type": "Running", "status": "False"},
            {"type": "Succeeded", "status": "True"},
        ]);
        assert_eq!(
            newest_true(&c, |k| k.parse::<ExperimentPhase>().ok())
                .unwrap()
                .0,
            ExperimentPhase::Succeeded
        );
        let c =
            json!([{"type": "Created", "status": "True"}, {"type": "Running", "status": "False"}]);
        assert_eq!(
            newest_true(&c, |k| k.parse::<ExperimentPhase>().ok())
                .unwrap()
                .0,
            ExperimentPhase::Created
        );
        assert!(newest_true(&json!([]), |k| k.parse::<ExperimentPhase>().ok()).is_none());
    }
}
