//! Golden tests: Katib's own example Experiments (copied unmodified from
//! kubeflow/katib, see `katib-examples/SOURCES.md`) either load with the
//! expected facts and defaults, or fail with the expected field and reason.

use std::path::{Path, PathBuf};

use oxflow_suggest::{Budget, Distribution, Domain};
use oxflow_tuning::spec::DEFAULT_PARALLEL_TRIAL_COUNT;
use oxflow_tuning::{
    CollectorKind, EarlyStopping, Experiment, FileFormat, MedianStop, MetricStrategy,
    MetricsCollector, ParameterAssignment, ResumePolicy, format_assignment, parse_assignment,
};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/katib-examples")
}

fn read(file: &str) -> String {
    std::fs::read_to_string(dir().join(file)).unwrap()
}

fn load(file: &str) -> Experiment {
    Experiment::from_yaml(&read(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// What loading one example must give.
enum Expect {
    /// Loads; the algorithm, the number of parameters, the collector kind,
    /// then file-specific facts.
    Loads(&'static str, usize, CollectorKind, fn(&Experiment)),
    /// Fails at this path with a message containing this text.
    Fails(&'static str, &'static str),
}

use Expect::{Fails, Loads};

fn defaults(e: &Experiment) {
    let s = &e.spec;
    assert_eq!(s.parallel_trial_count, DEFAULT_PARALLEL_TRIAL_COUNT);
    assert_eq!(s.max_trial_count, Some(12));
    assert_eq!(s.max_failed_trial_count, Some(3));
    assert_eq!(s.resume_policy, ResumePolicy::Never);
    assert_eq!(s.early_stopping, None);
    assert_eq!(s.objective.goal, Some(0.001));
    assert_eq!(s.objective.strategy("loss"), MetricStrategy::Min);
    assert_eq!(
        s.metrics_collector,
        MetricsCollector::StdOut {
            metrics_format: vec![]
        }
    );
    for p in &s.parameters {
        if let Domain::Double { distribution, .. } = p.domain {
            assert_eq!(distribution, Distribution::Uniform);
        }
    }
}

fn expectations() -> Vec<(&'static str, Expect)> {
    vec![
        (
            "random.yaml",
            Loads("random", 2, CollectorKind::StdOut, defaults),
        ),
        (
            "grid.yaml",
            Loads("grid", 2, CollectorKind::StdOut, |e| {
                defaults(e);
                assert_eq!(
                    e.spec.parameters[0].domain,
                    Domain::Double {
                        min: 0.01,
                        max: 0.05,
                        step: Some(0.005),
                        distribution: Distribution::Uniform
                    }
                );
                assert_eq!(e.spec.search_space().size(), Some(9 * 5));
            }),
        ),
        (
            "bayesian-optimization.yaml",
            Loads("bayesianoptimization", 2, CollectorKind::StdOut, |e| {
                defaults(e);
                assert_eq!(
                    e.spec.algorithm.settings(),
                    [("random_state".to_owned(), "10".to_owned())]
                );
            }),
        ),
        ("tpe.yaml", Loads("tpe", 2, CollectorKind::StdOut, defaults)),
        (
            "multivariate-tpe.yaml",
            Loads("multivariate-tpe", 2, CollectorKind::StdOut, defaults),
        ),
        (
            "cma-es.yaml",
            Loads("cmaes", 2, CollectorKind::StdOut, |e| {
                defaults(e);
                assert_eq!(e.name, "cmaes");
                assert_eq!(
                    e.spec.algorithm.settings(),
                    [("restart_strategy".to_owned(), "ipop".to_owned())]
                );
            }),
        ),
        // Katib overwrites `num-epochs` (declared 1..1) with the budgets up
        // to r_l = 2; so does Oxflow's hyperband.
        (
            "hyperband.yaml",
            Loads("hyperband", 3, CollectorKind::StdOut, |e| {
                assert_eq!(e.spec.parallel_trial_count, 2);
                assert_eq!(e.spec.max_trial_count, Some(2));
                assert_eq!(e.spec.algorithm.algorithm_name, "hyperband");
            }),
        ),
        (
            "sobol.yaml",
            Loads("sobol", 2, CollectorKind::StdOut, defaults),
        ),
        (
            "simple-pbt.yaml",
            Fails(
                "spec.algorithm.algorithmName",
                "pbt (population-based training) is not supported yet",
            ),
        ),
        (
            "optuna-distribution.yaml",
            Loads("tpe", 4, CollectorKind::StdOut, |e| {
                let p = &e.spec.parameters;
                assert_eq!(
                    p[0].domain,
                    Domain::Double {
                        min: 1.0,
                        max: 5.0,
                        step: Some(0.1),
                        distribution: Distribution::Uniform
                    }
                );
                assert_eq!(
                    p[1].domain,
                    Domain::Double {
                        min: 0.001,
                        max: 3.0,
                        step: None,
                        distribution: Distribution::LogUniform
                    }
                );
                assert_eq!(
                    p[3].domain,
                    Domain::Int {
                        min: 32,
                        max: 64,
                        step: None,
                        distribution: Distribution::LogUniform
                    }
                );
                assert_eq!(e.spec.objective.goal, Some(0.05));
            }),
        ),
        (
            "hyperopt-distribution.yaml",
            Loads("random", 4, CollectorKind::StdOut, |e| {
                let d: Vec<Distribution> =
                    e.spec
                        .parameters
                        .iter()
                        .map(|p| match p.domain {
                            Domain::Double { distribution, .. }
                            | Domain::Int { distribution, .. } => distribution,
                            _ => unreachable!(),
                        })
                        .collect();
                assert_eq!(
                    d,
                    [
                        Distribution::Normal,
                        Distribution::Uniform,
                        Distribution::LogUniform,
                        Distribution::LogNormal
                    ]
                );
            }),
        ),
        (
            "median-stop.yaml",
            Loads("random", 2, CollectorKind::StdOut, |e| {
                assert_eq!(
                    e.spec.early_stopping,
                    Some(EarlyStopping::MedianStop(MedianStop {
                        min_trials_required: 1,
                        start_step: 2
                    }))
                );
                assert!(e.spec.trial_template.retain);
                assert_eq!(
                    (e.spec.parallel_trial_count, e.spec.max_trial_count),
                    (2, Some(15))
                );
            }),
        ),
        (
            "median-stop-with-json-format.yaml",
            Loads("random", 2, CollectorKind::File, |e| {
                assert_eq!(
                    e.spec.metrics_collector,
                    MetricsCollector::File {
                        path: "/katib/mnist.json".into(),
                        format: FileFormat::Json
                    }
                );
                assert_eq!(
                    e.spec.early_stopping,
                    Some(EarlyStopping::MedianStop(MedianStop {
                        min_trials_required: 1,
                        start_step: 2
                    }))
                );
                assert_eq!(e.spec.objective.strategy("accuracy"), MetricStrategy::Max);
                assert_eq!(e.spec.objective.strategy("loss"), MetricStrategy::Max);
            }),
        ),
        (
            "file-metrics-collector.yaml",
            Loads("random", 2, CollectorKind::File, |e| {
                assert_eq!(
                    e.spec.metrics_collector,
                    MetricsCollector::File {
                        path: "/katib/mnist.log".into(),
                        format: FileFormat::Text {
                            metrics_format: vec![
                                r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}".into()
                            ]
                        },
                    }
                );
                assert_eq!(e.spec.metric_names(), ["accuracy", "loss"]);
            }),
        ),
        (
            "file-metrics-collector-with-json-format.yaml",
            Loads("random", 2, CollectorKind::File, |e| {
                assert_eq!(
                    e.spec.metrics_collector,
                    MetricsCollector::File {
                        path: "/katib/mnist.json".into(),
                        format: FileFormat::Json
                    }
                );
            }),
        ),
        (
            "custom-metrics-collector.yaml",
            Fails(
                "spec.metricsCollectorSpec.collector.kind",
                "Custom is not supported",
            ),
        ),
        (
            "metrics-collection-strategy.yaml",
            Loads("tpe", 2, CollectorKind::StdOut, |e| {
                let s: Vec<(&str, MetricStrategy)> = e
                    .spec
                    .objective
                    .metric_strategies
                    .iter()
                    .map(|s| (s.name.as_str(), s.value))
                    .collect();
                assert_eq!(
                    s,
                    [
                        ("accuracy", MetricStrategy::Max),
                        ("loss", MetricStrategy::Min)
                    ]
                );
            }),
        ),
        (
            "tfjob-mnist-with-summaries.yaml",
            Fails(
                "spec.trialTemplate.trialSpec.kind",
                "TFJob trials are not supported: TFJob/PyTorchJob trials need training jobs, which Oxflow does not run yet",
            ),
        ),
        (
            "pytorchjob-mnist.yaml",
            Fails(
                "spec.trialTemplate.trialSpec.kind",
                "PyTorchJob trials are not supported: TFJob/PyTorchJob trials need training jobs",
            ),
        ),
        (
            "from-volume-resume.yaml",
            Loads("random", 2, CollectorKind::StdOut, |e| {
                assert_eq!(e.spec.resume_policy, ResumePolicy::FromVolume);
            }),
        ),
        (
            "long-running-resume.yaml",
            Loads("random", 2, CollectorKind::StdOut, |e| {
                assert_eq!(e.spec.resume_policy, ResumePolicy::LongRunning);
            }),
        ),
        (
            "trial-metadata-substitution.yaml",
            Loads("random", 2, CollectorKind::StdOut, |e| {
                assert_eq!(e.spec.trial_template.trial_parameters.len(), 8);
            }),
        ),
        (
            "trial-configmap-source.yaml",
            Fails("spec.trialTemplate.configMap", "no ConfigMaps locally"),
        ),
        (
            "enas-cpu.yaml",
            Fails("spec.nasConfig", "neural architecture search"),
        ),
        (
            "darts-cpu.yaml",
            Fails("spec.nasConfig", "neural architecture search"),
        ),
    ]
}

#[test]
fn every_katib_example_loads_or_fails_as_expected() {
    let table = expectations();
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    let mut named: Vec<String> = table.iter().map(|(f, _)| f.to_string()).collect();
    named.sort();
    assert_eq!(files, named, "every example has exactly one expectation");
    assert_eq!(files.len(), 25);

    let mut failures = Vec::new();
    for (file, expect) in table {
        let result = Experiment::from_yaml(&read(file));
        match (expect, result) {
            (Loads(algorithm, params, kind, more), Ok(e)) => {
                assert_eq!(e.spec.algorithm.algorithm_name, algorithm, "{file}");
                assert_eq!(e.spec.parameters.len(), params, "{file}");
                assert_eq!(e.spec.metrics_collector.kind(), kind, "{file}");
                assert_eq!(
                    e.namespace.as_ref().map(|n| n.as_str()),
                    Some("kubeflow"),
                    "{file}"
                );
                more(&e);
                // What `experiments get -o yaml` prints loads back unchanged.
                let again = Experiment::from_json_value(e.to_katib_value())
                    .unwrap_or_else(|err| panic!("{file} after to_katib_value: {err}"));
                assert_eq!(again, e, "{file} round trip");
            }
            (Fails(path, msg), Err(err)) => {
                if err.path != path || !err.message.contains(msg) {
                    failures.push(format!("{file}: expected {path}: …{msg}…, got {err}"));
                }
            }
            (Loads(..), Err(err)) => failures.push(format!("{file}: expected to load, got {err}")),
            (Fails(path, _), Ok(_)) => {
                failures.push(format!("{file}: expected an error at {path}, it loaded"))
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn assignments(pairs: &[(&str, &str)]) -> Vec<ParameterAssignment> {
    pairs
        .iter()
        .map(|(n, v)| ParameterAssignment {
            name: n.to_string(),
            value: v.to_string(),
        })
        .collect()
}

#[test]
fn random_example_renders_its_command() {
    let e = load("random.yaml");
    let run = e
        .render_trial(
            "random-8x2kq9",
            "kubeflow",
            &assignments(&[("lr", "0.031"), ("momentum", "0.72")]),
        )
        .unwrap();
    assert_eq!(
        run.command,
        [
            "python3",
            "/opt/pytorch-mnist/mnist.py",
            "--epochs=1",
            "--batch-size=16",
            "--lr=0.031",
            "--momentum=0.72"
        ]
    );
    assert_eq!(
        run.image.as_deref(),
        Some("ghcr.io/kubeflow/katib/pytorch-mnist-cpu:latest")
    );
    assert_eq!(run.resources.cpu_limit_millis, Some(500));
    assert_eq!(run.resources.memory_limit_bytes, Some(1 << 30));
    assert!(run.env.is_empty());
    assert_eq!(run.spec["metadata"]["name"], "random-8x2kq9");
    assert_eq!(run.spec["metadata"]["namespace"], "kubeflow");
}

#[test]
fn trial_metadata_substitution_example_renders_metadata() {
    let e = load("trial-metadata-substitution.yaml");
    let run = e
        .render_trial(
            "trial-metadata-substitution-abc",
            "team-a",
            &assignments(&[("momentum", "0.6"), ("lr", "0.02")]),
        )
        .unwrap();
    assert!(
        run.command.contains(&"--lr=0.02".to_owned()),
        "{:?}",
        run.command
    );
    assert!(
        run.command.contains(&"--momentum=0.6".to_owned()),
        "{:?}",
        run.command
    );
    let env: Vec<(&str, &str)> = run
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        env,
        [
            ("TRIAL_NAME", "trial-metadata-substitution-abc"),
            ("TRIAL_NAMESPACE", "team-a"),
            ("TRIAL_KIND", "Job"),
            ("TRIAL_API_VERSION", "batch/v1"),
            ("TRIAL_LABEL_CUSTOM", "custom-label"),
            ("TRIAL_ANNOTATION_CUSTOM", "custom-annotation"),
        ]
    );
    // The template's own labels and annotations stay on the rendered Job.
    assert_eq!(run.spec["metadata"]["labels"]["custom-key"], "custom-label");
    assert_eq!(
        run.spec["metadata"]["name"],
        "trial-metadata-substitution-abc"
    );
}

/// Suggestions from the experiment's own algorithm render into commands and
/// read back from their text form unchanged.
#[test]
fn suggested_trials_render_and_parse_back() {
    for file in [
        "random.yaml",
        "hyperopt-distribution.yaml",
        "optuna-distribution.yaml",
        "grid.yaml",
    ] {
        let e = load(file);
        let space = e.spec.search_space();
        let budget = Budget {
            max_trial_count: e.spec.max_trial_count,
            parallel_trial_count: e.spec.parallel_trial_count,
        };
        let algo = oxflow_suggest::build(
            &e.spec.algorithm.algorithm_name,
            &e.spec.algorithm.settings(),
            &space,
            budget,
            7,
        )
        .unwrap_or_else(|err| panic!("{file}: {err}"));
        let suggestions = algo.suggest(&[], 3).unwrap();
        assert_eq!(suggestions.len(), 3, "{file}");
        for (i, s) in suggestions.iter().enumerate() {
            let formatted = format_assignment(&space, &s.assignment);
            assert_eq!(
                parse_assignment(&space, &formatted).unwrap(),
                s.assignment,
                "{file}"
            );
            let run = e
                .render_trial(&format!("{}-{i}", e.name), "kubeflow", &formatted)
                .unwrap();
            let lr = formatted.iter().find(|a| a.name == "lr").unwrap();
            assert!(
                run.command.contains(&format!("--lr={}", lr.value)),
                "{file}: {:?}",
                run.command
            );
            assert!(
                !run.command.iter().any(|a| a.contains("${")),
                "{file}: {:?}",
                run.command
            );
        }
    }
}
