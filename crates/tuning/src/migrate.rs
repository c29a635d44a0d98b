//! Moving a data directory's experiments from the tables they had before
//! the resource model (store migration 0003) onto it.

use oxflow_core::object::user_view;
use oxflow_resources::{ResourceError, Resources};
use oxflow_store::{TuningExperimentRecord, TuningTrialRecord};
use serde_json::{Value, json};

use crate::kinds::{EXPERIMENT, TRIAL, WORKING_DIR_ANNOTATION};
use crate::status::experiment_status;
use crate::stored::{StoredExperiment, StoredTrial, new_trial_object};

/// What [`migrate_legacy`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// Experiments stored as objects with their trials (or found stored by
    /// an earlier, interrupted run) and removed from the old tables.
    pub moved: usize,
    /// Experiments the resource model refused (a spec no longer valid):
    /// left in the old tables, with a warning, rather than lost.
    pub kept: usize,
}

/// Moves every experiment of the old tables, with its trials, onto the
/// resource model: ids become uids (so the seed, the trial names derived
/// from them and the trials' metric reports stay theirs), creation times,
/// conditions, the best trial and each trial's outcome are kept. An
/// experiment that was running continues under the next controller, as
/// after a restart. Experiment by experiment, each removed only once it and
/// its trials are stored: run at every start, it does nothing once the
/// tables are empty, and a run cut short goes on where it stopped.
pub async fn migrate_legacy(resources: &Resources) -> Result<Migrated, ResourceError> {
    let store = resources.store();
    let mut done = Migrated::default();
    for e in store.legacy_tuning_experiments(None).await? {
        let trials = store.legacy_trials(&e.id).await?;
        match restore(resources, &e, &trials).await {
            Ok(()) => {
                store.delete_legacy_tuning_experiment(&e.id).await?;
                done.moved += 1;
            }
            Err(err @ (ResourceError::Invalid { .. } | ResourceError::BadRequest { .. })) => {
                tracing::warn!(namespace = %e.namespace, name = %e.name, error = %err,
                    "A stored experiment from before the resource model is no longer valid; it is kept in its old table and not run.");
                done.kept += 1;
            }
            Err(err) => return Err(err),
        }
    }
    if done.moved > 0 {
        tracing::info!(
            moved = done.moved,
            "Experiments moved onto the resource model."
        );
    }
    Ok(done)
}

async fn restore(
    resources: &Resources,
    e: &TuningExperimentRecord,
    trials: &[TuningTrialRecord],
) -> Result<(), ResourceError> {
    let mut object = user_view(&e.spec);
    object["apiVersion"] = json!(EXPERIMENT.api_version());
    object["kind"] = json!(EXPERIMENT.kind);
    let meta = &mut object["metadata"];
    meta["name"] = json!(e.name);
    meta["namespace"] = json!(e.namespace.as_str());
    meta["uid"] = json!(e.id);
    meta["creationTimestamp"] = json!(e.created_at.to_rfc3339());
    let working_dir = e
        .options
        .get("workingDir")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(dir) = &working_dir {
        if !meta["annotations"].is_object() {
            meta["annotations"] = json!({});
        }
        meta["annotations"][WORKING_DIR_ANNOTATION] = json!(dir);
    }
    let view = StoredExperiment {
        id: e.id.clone(),
        namespace: e.namespace.clone(),
        name: e.name.clone(),
        resource_version: String::new(),
        generation: 1,
        spec: object.clone(),
        seed: e.seed,
        working_dir,
        phase: e.phase,
        conditions: e.conditions.clone(),
        optimal_trial: e.optimal_trial.clone(),
        created_at: e.created_at,
        started_at: e.started_at,
        finished_at: e.finished_at,
        status: Value::Null,
    };
    let views: Vec<StoredTrial> = trials
        .iter()
        .map(|t| StoredTrial {
            id: t.id.clone(),
            name: t.name.clone(),
            generation: 1,
            seq: t.seq,
            assignments: t.assignments.clone(),
            tags: t.tags.clone(),
            phase: t.phase,
            message: t.message.clone(),
            objective: t.objective,
            observation: t.observation.clone(),
            attempt: t.attempt,
            created_at: t.created_at,
            started_at: t.started_at,
            finished_at: t.finished_at,
        })
        .collect();
    object["status"] = experiment_status(&view, &views);
    match resources.restore(&EXPERIMENT, object).await {
        Ok(_) | Err(ResourceError::AlreadyExists { .. }) => {}
        Err(err) => return Err(err),
    }
    for t in &views {
        let mut trial = new_trial_object(&view, &t.name, t.seq, &t.assignments, &t.tags, None);
        trial["metadata"]["uid"] = json!(t.id);
        trial["metadata"]["creationTimestamp"] = json!(t.created_at.to_rfc3339());
        trial["status"] = t.status();
        match resources.restore(&TRIAL, trial).await {
            Ok(_) | Err(ResourceError::AlreadyExists { .. }) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}
