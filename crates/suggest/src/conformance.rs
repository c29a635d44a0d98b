//! What every algorithm promises, checked through [`crate::build`]: points
//! inside the space, no duplicates within a batch or against the history
//! (running and failed trials included), the same suggestions for the same
//! seed and history, and the errors for names Oxflow does not serve.

use crate::common::test_support::*;
use crate::{
    Budget, Distribution, Domain, Outcome, SearchSpace, SettingsError, TrialRecord, build,
};

fn s(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

const BUDGET: Budget = Budget {
    max_trial_count: Some(30),
    parallel_trial_count: 5,
};

/// The algorithms and the settings they need on [`mixed_space`].
fn algorithms() -> Vec<(&'static str, Vec<(String, String)>)> {
    vec![
        ("random", vec![]),
        ("sobol", vec![]),
        ("tpe", s(&[("n_startup_trials", "5")])),
        ("multivariate-tpe", s(&[("n_startup_trials", "5")])),
        ("cmaes", vec![]),
        // layers is an int 2..10 step 2: with eta 5, r_l 10 the rungs use 2 and 10.
        (
            "hyperband",
            s(&[("resource_name", "layers"), ("r_l", "10"), ("eta", "5")]),
        ),
    ]
}

/// Runs `name` for up to `trials` trials in batches of 3, leaving every
/// third trial running and failing every fifth; checks each batch.
fn drive(
    name: &str,
    settings: &[(String, String)],
    space: &SearchSpace,
    seed: u64,
    trials: usize,
) -> Vec<TrialRecord> {
    let alg = build(name, settings, space, BUDGET, seed).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut history: Vec<TrialRecord> = Vec::new();
    let mut idle = 0;
    while history.len() < trials && idle < 3 {
        let batch = alg.suggest(&history, 3).unwrap();
        assert_eq!(
            batch,
            alg.suggest(&history, 3).unwrap(),
            "{name}: same history, same batch"
        );
        let mut seen: Vec<_> = history.iter().map(|t| &t.assignment).collect();
        for sg in &batch {
            assert!(
                space.contains(&sg.assignment),
                "{name}: {:?} is outside the space",
                sg.assignment
            );
            assert!(
                !seen.contains(&&sg.assignment),
                "{name}: duplicate {:?}",
                sg.assignment
            );
            seen.push(&sg.assignment);
        }
        idle = if batch.is_empty() { idle + 1 } else { 0 };
        for sg in &batch {
            let i = history.len();
            let outcome = match i {
                _ if i % 5 == 4 => Outcome::Failed,
                _ if i % 3 == 2 => Outcome::Pending,
                _ => Outcome::Completed(sg.assignment.len() as f64 * (i as f64).sin()),
            };
            history.push(record(sg, outcome));
        }
        // Hyperband waits for its rungs: finish what is running when stuck.
        if batch.is_empty() {
            for t in history.iter_mut().filter(|t| t.outcome == Outcome::Pending) {
                t.outcome = Outcome::Completed(1.0);
            }
        }
    }
    history
}

#[test]
fn every_algorithm_stays_inside_a_mixed_space_without_duplicates() {
    let space = mixed_space();
    for (name, settings) in algorithms() {
        let h = drive(name, &settings, &space, 7, 30);
        // Hyperband's whole schedule here is 5 + 1 trials, then 2.
        let want = if name == "hyperband" { 8 } else { 30 };
        assert_eq!(h.len(), want, "{name}");
    }
}

#[test]
fn every_algorithm_is_reproducible_and_depends_on_the_seed() {
    let space = mixed_space();
    for (name, settings) in algorithms() {
        let a = drive(name, &settings, &space, 1, 15);
        let b = drive(name, &settings, &space, 1, 15);
        assert_eq!(a, b, "{name}: same seed, different runs");
        let c = drive(name, &settings, &space, 2, 15);
        assert_ne!(a, c, "{name}: the seed changes nothing");
        // random_state overrides the seed argument.
        let mut with_state = settings.clone();
        with_state.push(("random_state".into(), "1".into()));
        assert_eq!(
            drive(name, &with_state, &space, 2, 15),
            a,
            "{name}: random_state ignored"
        );
    }
}

#[test]
fn every_algorithm_rejects_unknown_settings_by_name() {
    let space = mixed_space();
    for (name, mut settings) in algorithms().into_iter().chain([("grid", vec![])]) {
        settings.push(("no_such_setting".into(), "1".into()));
        match build(name, &settings, &space, BUDGET, 0) {
            Err(SettingsError::Setting { name: n, .. }) => {
                assert_eq!(n, "no_such_setting", "{name}")
            }
            Err(e) => panic!("{name}: {e}"),
            Ok(_) => panic!("{name} accepted an unknown setting"),
        }
    }
}

#[test]
fn grid_covers_a_stepped_mixed_space_exactly_once() {
    let mut space = mixed_space();
    space.params[0].domain = Domain::Double {
        min: 1e-4,
        max: 1e-3,
        step: Some(3e-4),
        distribution: Distribution::LogUniform,
    };
    space.params[4].domain = Domain::Double {
        min: 0.5,
        max: 0.9,
        step: Some(0.2),
        distribution: Distribution::Uniform,
    };
    // 4 · 5 · 3 · 3 · 3 points.
    let h = drive("grid", &[], &space, 0, 10_000);
    assert_eq!(h.len(), 540);
}

#[test]
fn names_oxflow_does_not_serve() {
    let space = mixed_space();
    for name in ["enas", "darts", "pbt"] {
        match build(name, &[], &space, BUDGET, 0) {
            Err(e @ SettingsError::Unsupported { .. }) => {
                assert!(e.to_string().contains("not supported yet"), "{e}")
            }
            Err(e) => panic!("{name}: {e}"),
            Ok(_) => panic!("{name} built"),
        }
    }
    assert_eq!(
        build("hyperopt", &[], &space, BUDGET, 0).err(),
        Some(SettingsError::UnknownAlgorithm("hyperopt".into()))
    );
}
