//! KServe's `status` of an InferenceService, computed from the
//! controller's view of its revisions and traffic.

use std::collections::HashMap;
use std::sync::Arc;

use oxflow_core::Timestamp;
use serde_json::{Value, json};

use super::traffic::{self, Target};
use super::{Entry, Failure, Phase, Revision};

/// The conditions Oxflow reports, in KServe's names.
const CONDITIONS: [&str; 6] = [
    "IngressReady",
    "PredictorReady",
    "CanaryPredictorReady",
    "TransformerReady",
    "ExplainerReady",
    "Ready",
];

/// The condition times of a stored status, so that a restart keeps them.
pub(super) fn transitions_from(status: &Value) -> HashMap<&'static str, (bool, Timestamp)> {
    let mut out = HashMap::new();
    for c in status["conditions"].as_array().into_iter().flatten() {
        let (Some(kind), Some(time)) = (
            c["type"].as_str(),
            c["lastTransitionTime"]
                .as_str()
                .and_then(Timestamp::parse_rfc3339),
        ) else {
            continue;
        };
        let Some(kind) = CONDITIONS.iter().find(|k| **k == kind) else {
            continue;
        };
        out.insert(*kind, (c["status"] == "True", time));
    }
    out
}

/// `modelStatus` of one revision (or of a spec that has none).
fn model_status(
    revision: Option<&Arc<Revision>>,
    failure: Option<&Failure>,
    serving: bool,
) -> Value {
    let phase = match (failure, revision) {
        (Some(f), _) => Phase::Failed(f.clone()),
        (None, Some(r)) => r.phase(),
        (None, None) => Phase::Loading,
    };
    let (transition, target) = match &phase {
        Phase::Loading => ("InProgress", "Loading"),
        Phase::Loaded => ("UpToDate", "Loaded"),
        Phase::Failed(f) if f.reason == "ModelLoadFailed" => {
            ("BlockedByFailedLoad", "FailedToLoad")
        }
        Phase::Failed(_) => ("InvalidSpec", "FailedToLoad"),
    };
    let mut states = json!({ "targetModelState": target });
    let standby = revision.is_some_and(|r| r.scale.as_ref().is_some_and(|s| s.is_zero()));
    if standby && phase == Phase::Loaded {
        // Scaled to zero: the next request loads it again.
        states["activeModelState"] = json!("Standby");
    } else if serving || phase == Phase::Loaded {
        states["activeModelState"] = json!("Loaded");
    } else if phase == Phase::Loading {
        states["activeModelState"] = json!("Pending");
    }
    let mut out = json!({
        "transitionStatus": transition,
        "states": states,
        "copies": {
            "failedCopies": i32::from(matches!(phase, Phase::Failed(_))),
            "totalCopies": 1,
        },
    });
    if let Phase::Failed(f) = &phase {
        let mut info = json!({
            "reason": f.reason,
            "message": f.message,
            "time": f.at.to_rfc3339(),
        });
        if let Some(r) = revision {
            info["modelRevisionName"] = json!(r.name);
        }
        out["lastFailureInfo"] = info;
    }
    out
}

/// KServe's `status` for the entry.
pub(super) fn status_json(entry: &mut Entry, url: &str) -> Value {
    let now = Timestamp::now();
    let layout = entry.layout();
    let split = traffic::split(&layout);
    let serving = traffic::serving(&split, &layout);
    let latest = entry.latest.clone();
    let latest_phase = latest.as_ref().map(|r| r.phase());
    let latest_failure = match &latest_phase {
        Some(Phase::Failed(f)) => Some(f.clone()),
        _ => None,
    };
    let failure = entry.failure.clone().or(latest_failure);
    let (reason, message) = match (&failure, &latest_phase) {
        (Some(f), _) => (Some(f.reason), Some(f.message.clone())),
        (None, Some(Phase::Loading)) => (
            Some(if serving {
                "RevisionLoading"
            } else {
                "ModelLoading"
            }),
            Some(format!(
                "revision {} is loading",
                latest.as_ref().map(|r| r.name.as_str()).unwrap_or("-")
            )),
        ),
        _ => (None, None),
    };

    // Traffic, as Knative's TrafficTarget list.
    let mut traffic_json = Vec::new();
    for (target, percent) in &split {
        if matches!(target, Target::Canary(_)) {
            continue;
        }
        let Some(r) = entry.target(*target) else {
            continue;
        };
        let mut t = json!({
            "revisionName": r.name,
            "percent": percent,
            "latestRevision": *target == Target::Latest,
        });
        if entry.tag_routing {
            t["tag"] = json!(if *target == Target::Latest {
                "latest"
            } else {
                "prev"
            });
        }
        traffic_json.push(t);
    }
    let latest_ready = latest_phase == Some(Phase::Loaded);
    let ready_revision = if latest_ready {
        latest.as_ref()
    } else {
        entry
            .rolled_out
            .as_ref()
            .filter(|r| r.phase() == Phase::Loaded)
    };
    let mut predictor = json!({ "url": url, "restUrl": url });
    if let Some(l) = &latest {
        predictor["latestCreatedRevision"] = json!(l.name);
    }
    if let Some(r) = ready_revision {
        predictor["latestReadyRevision"] = json!(r.name);
    }
    if let Some(r) = &entry.rolled_out {
        predictor["latestRolledoutRevision"] = json!(r.name);
        if latest.as_ref().is_some_and(|l| !Arc::ptr_eq(l, r)) {
            predictor["previousRolledoutRevision"] = json!(r.name);
        }
    }
    if !traffic_json.is_empty() {
        predictor["traffic"] = json!(traffic_json);
    }

    // spec.canary[] variants.
    let canary_statuses: Vec<Value> = entry
        .canaries
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let share = split
                .iter()
                .find(|(t, _)| *t == Target::Canary(i))
                .map_or(0, |(_, p)| *p);
            json!({
                "name": c.name,
                "revisionName": c.revision.name,
                "ready": c.revision.phase() == Phase::Loaded,
                "trafficPercent": share,
                "modelStatus": model_status(Some(&c.revision), None, false),
            })
        })
        .collect();
    let canaries_ready = entry
        .canaries
        .iter()
        .all(|c| c.revision.phase() == Phase::Loaded);
    let canary_failure = entry
        .canaries
        .iter()
        .find_map(|c| match c.revision.phase() {
            Phase::Failed(f) => Some(format!("canary {}: {}", c.name, f.message)),
            _ => None,
        });

    let mut condition =
        |kind: &'static str, ok: bool, reason: Option<&str>, message: Option<&str>| {
            let since = match entry.transitions.get(kind) {
                Some((was, at)) if *was == ok => *at,
                _ => {
                    entry.transitions.insert(kind, (ok, now));
                    now
                }
            };
            let mut c = json!({
                "type": kind,
                "status": if ok { "True" } else { "False" },
                "lastTransitionTime": since.to_rfc3339(),
            });
            if !ok {
                if let Some(r) = reason {
                    c["reason"] = json!(r);
                }
                if let Some(m) = message {
                    c["message"] = json!(m);
                }
            }
            c
        };
    // The transformer and explainer, as components of their own.
    let mut sidecars = Vec::new();
    for (part, condition_type, revision) in [
        ("transformer", "TransformerReady", entry.transformer.clone()),
        ("explainer", "ExplainerReady", entry.explainer.clone()),
    ] {
        if let Some(r) = revision {
            sidecars.push((part, condition_type, r));
        }
    }
    let sidecars_ready = sidecars.iter().all(|(_, _, r)| r.phase() == Phase::Loaded);
    let ready = serving && sidecars_ready;
    let predictor_ready = latest_ready || serving;
    let mut conditions = vec![
        condition("IngressReady", true, None, None),
        condition(
            "PredictorReady",
            predictor_ready,
            reason,
            message.as_deref(),
        ),
    ];
    if !entry.canaries.is_empty() {
        conditions.push(condition(
            "CanaryPredictorReady",
            canaries_ready,
            Some(if canary_failure.is_some() {
                "ModelLoadFailed"
            } else {
                "ModelLoading"
            }),
            canary_failure.as_deref(),
        ));
    }
    let mut components = json!({ "predictor": predictor });
    let mut sidecar_failure = None;
    for (part, condition_type, r) in &sidecars {
        let phase = r.phase();
        let mut c = json!({ "url": url, "latestCreatedRevision": r.name });
        if phase == Phase::Loaded {
            c["latestReadyRevision"] = json!(r.name);
        }
        components[*part] = c;
        let (why, text) = match &phase {
            Phase::Failed(f) => (Some(f.reason), Some(f.message.clone())),
            Phase::Loading => (Some("Starting"), Some(format!("{} is starting", r.name))),
            Phase::Loaded => (None, None),
        };
        if sidecar_failure.is_none() && phase != Phase::Loaded {
            sidecar_failure = Some((why, text.clone()));
        }
        conditions.push(condition(
            condition_type,
            phase == Phase::Loaded,
            why,
            text.as_deref(),
        ));
    }
    let (reason, message) = match (&reason, &sidecar_failure) {
        (None, Some((r, m))) => (*r, m.clone()),
        _ => (reason, message),
    };
    conditions.push(condition("Ready", ready, reason, message.as_deref()));

    let mode = entry.spec["metadata"]["annotations"][crate::spec::DEPLOYMENT_MODE_ANNOTATION]
        .as_str()
        .unwrap_or("Standard")
        .to_owned();
    let mut status = json!({
        "observedGeneration": entry.generation,
        "conditions": conditions,
        "components": components,
        "modelStatus": model_status(latest.as_ref(), entry.failure.as_ref(), serving),
        "deploymentMode": mode,
    });
    if !canary_statuses.is_empty() {
        status["canaryStatuses"] = json!(canary_statuses);
    }
    if ready {
        status["url"] = json!(url);
        status["address"] = json!({ "url": url });
    }
    status
}
