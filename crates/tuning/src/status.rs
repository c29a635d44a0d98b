//! Katib's view of stored experiments and trials: the `status` block with
//! its condition list, trial counters and `currentOptimalTrial`, and Trial
//! objects, rendered from Oxflow's records.

use oxflow_core::{ExperimentPhase, Timestamp, TrialPhase};
use oxflow_store::{TuningExperimentRecord, TuningTrialRecord};
use serde_json::{Map, Value, json};

/// One entry of Katib's condition list.
pub(crate) fn condition(kind: &str, reason: &str, message: &str, now: Timestamp) -> Value {
    json!({
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastUpdateTime": now.to_rfc3339(),
        "lastTransitionTime": now.to_rfc3339(),
    })
}

/// Appends a condition as Katib does: the new one is `True`, the earlier
/// phase conditions (Running, Restarting, Succeeded, Failed, Stopped) flip to
/// `False`, `Created` stays.
pub(crate) fn push_condition(
    conditions: &mut Value,
    phase: ExperimentPhase,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let list = conditions.as_array_mut().expect("made an array above");
    for c in list.iter_mut() {
        let kind = c.get("type").and_then(Value::as_str).unwrap_or_default();
        if kind != "Created" && c.get("status").and_then(Value::as_str) == Some("True") {
            c["status"] = json!("False");
            c["lastUpdateTime"] = json!(now.to_rfc3339());
        }
    }
    // One entry per type, as in Katib: replace an earlier one of the same type.
    list.retain(|c| c.get("type").and_then(Value::as_str) != Some(phase.as_str()));
    list.push(condition(phase.as_str(), reason, message, now));
}

/// The message of the newest condition, for tables.
pub fn latest_reason(e: &TuningExperimentRecord) -> String {
    e.conditions
        .as_array()
        .and_then(|l| l.last())
        .and_then(|c| c.get("reason"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn list_key(phase: TrialPhase) -> (&'static str, &'static str) {
    match phase {
        TrialPhase::Created => ("pendingTrialList", "trialsPending"),
        TrialPhase::Running => ("runningTrialList", "trialsRunning"),
        TrialPhase::Succeeded => ("succeededTrialList", "trialsSucceeded"),
        TrialPhase::Failed => ("failedTrialList", "trialsFailed"),
        TrialPhase::Killed => ("killedTrialList", "trialsKilled"),
        TrialPhase::EarlyStopped => ("earlyStoppedTrialList", "trialsEarlyStopped"),
        TrialPhase::MetricsUnavailable => {
            ("metricsUnavailableTrialList", "trialMetricsUnavailable")
        }
    }
}

/// The experiment in Katib's shape: the stored spec plus a `status` block
/// computed from its trials.
pub fn experiment_json(e: &TuningExperimentRecord, trials: &[TuningTrialRecord]) -> Value {
    let mut doc = e.spec.clone();
    if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("namespace".into(), json!(e.namespace.as_str()));
        meta.insert("uid".into(), json!(e.id));
        meta.insert("creationTimestamp".into(), json!(e.created_at.to_rfc3339()));
    }
    let mut status = Map::new();
    if let Some(t) = e.started_at {
        status.insert("startTime".into(), json!(t.to_rfc3339()));
    }
    if let Some(t) = e.finished_at
        && e.phase.is_terminal()
    {
        status.insert("completionTime".into(), json!(t.to_rfc3339()));
    }
    status.insert("conditions".into(), e.conditions.clone());
    let mut lists: Map<String, Value> = Map::new();
    let mut counts: Map<String, Value> = Map::new();
    for t in trials {
        let (list, count) = list_key(t.phase);
        lists
            .entry(list)
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("lists are arrays")
            .push(json!(t.name));
        let n = counts.get(count).and_then(Value::as_u64).unwrap_or(0);
        counts.insert(count.into(), json!(n + 1));
    }
    status.extend(lists);
    status.insert("trials".into(), json!(trials.len()));
    status.extend(counts);
    if let Some(best) = e
        .optimal_trial
        .as_ref()
        .and_then(|name| trials.iter().find(|t| &t.name == name))
    {
        status.insert(
            "currentOptimalTrial".into(),
            json!({
                "bestTrialName": best.name,
                "parameterAssignments": best.assignments,
                "observation": {"metrics": best.observation},
            }),
        );
    } else {
        status.insert(
            "currentOptimalTrial".into(),
            json!({"bestTrialName": "", "parameterAssignments": [], "observation": {"metrics": []}}),
        );
    }
    doc["status"] = Value::Object(status);
    doc
}

/// A trial in Katib's `Trial` shape.
pub fn trial_json(e: &TuningExperimentRecord, t: &TuningTrialRecord) -> Value {
    let objective = e
        .spec
        .pointer("/spec/objective")
        .cloned()
        .unwrap_or(Value::Null);
    let mut status = Map::new();
    if let Some(s) = t.started_at {
        status.insert("startTime".into(), json!(s.to_rfc3339()));
    }
    if let Some(f) = t.finished_at
        && t.phase.is_terminal()
    {
        status.insert("completionTime".into(), json!(f.to_rfc3339()));
    }
    let reason = match t.phase {
        TrialPhase::Created => "TrialCreated",
        TrialPhase::Running => "TrialRunning",
        TrialPhase::Succeeded => "TrialSucceeded",
        TrialPhase::Failed => "TrialFailed",
        TrialPhase::Killed => "TrialKilled",
        TrialPhase::EarlyStopped => "TrialEarlyStopped",
        TrialPhase::MetricsUnavailable => "MetricsUnavailable",
    };
    let at = t.finished_at.or(t.started_at).unwrap_or(t.created_at);
    status.insert(
        "conditions".into(),
        json!([condition(
            t.phase.as_str(),
            reason,
            t.message.as_deref().unwrap_or_default(),
            at
        )]),
    );
    status.insert("observation".into(), json!({"metrics": t.observation}));
    json!({
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Trial",
        "metadata": {
            "name": t.name,
            "namespace": e.namespace.as_str(),
            "uid": t.id,
            "creationTimestamp": t.created_at.to_rfc3339(),
            "labels": {"katib.kubeflow.org/experiment": e.name},
        },
        "spec": {
            "objective": objective,
            "parameterAssignments": t.assignments,
            "primaryContainerName": e.spec.pointer("/spec/trialTemplate/primaryContainerName").cloned().unwrap_or(Value::Null),
            "labels": t.tags,
        },
        "status": Value::Object(status),
        // Oxflow's own fields, outside Katib's shape.
        "oxflow": {"seq": t.seq, "attempt": t.attempt, "objective": t.objective, "logPath": t.log_path},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_phase_condition_turns_the_previous_one_false() {
        let mut c = json!([]);
        push_condition(
            &mut c,
            ExperimentPhase::Created,
            "ExperimentCreated",
            "",
            Timestamp(1),
        );
        push_condition(
            &mut c,
            ExperimentPhase::Running,
            "ExperimentRunning",
            "",
            Timestamp(2),
        );
        push_condition(
            &mut c,
            ExperimentPhase::Succeeded,
            "ExperimentMaxTrialsReached",
            "",
            Timestamp(3),
        );
        let statuses: Vec<(&str, &str)> = c
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["type"].as_str().unwrap(), c["status"].as_str().unwrap()))
            .collect();
        assert_eq!(
            statuses,
            [
                ("Created", "True"),
                ("Running", "False"),
                ("Succeeded", "True")
            ]
        );
        // Running again (a restart) replaces the old Running entry.
        push_condition(
            &mut c,
            ExperimentPhase::Running,
            "ExperimentRunning",
            "",
            Timestamp(4),
        );
        assert_eq!(c.as_array().unwrap().len(), 3);
        assert_eq!(c[2]["type"], "Running");
        assert_eq!(c[1]["status"], "False");
    }
}
