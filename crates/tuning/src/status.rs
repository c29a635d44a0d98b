//! Katib's experiment `status`: its condition list, trial counters and
//! lists, and `currentOptimalTrial`, computed from the experiment and its
//! trials whenever either changes.

use oxflow_core::{ExperimentPhase, Timestamp, TrialPhase};
use serde_json::{Map, Value, json};

use crate::stored::{StoredExperiment, StoredTrial};

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

/// The experiment's `status` in Katib's shape, from its own fields (times,
/// conditions, best trial) and its trials.
pub fn experiment_status(e: &StoredExperiment, trials: &[StoredTrial]) -> Value {
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
    let best = e
        .optimal_trial
        .as_ref()
        .and_then(|name| trials.iter().find(|t| &t.name == name));
    status.insert(
        "currentOptimalTrial".into(),
        match best {
            Some(best) => json!({
                "bestTrialName": best.name,
                "parameterAssignments": best.assignments,
                "observation": {"metrics": best.observation},
            }),
            None => json!({"bestTrialName": "", "parameterAssignments": [], "observation": {"metrics": []}}),
        },
    );
    Value::Object(status)
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
