//! Unit tests of the Experiment spec: one `check` per rule and default.

use oxflow_core::spec::testing::{assert_error, at, remove, set};
use oxflow_suggest::{Distribution, Domain, SearchSpace, Value as PValue};
use serde_json::{Value, json};

use super::*;

const BASE: &str = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: demo
  namespace: kubeflow
spec:
  objective:
    type: minimize
    objectiveMetricName: loss
  algorithm:
    algorithmName: random
  maxTrialCount: 6
  parameters:
    - name: lr
      parameterType: double
      feasibleSpace: {min: "0.01", max: "0.1"}
    - name: layers
      parameterType: int
      feasibleSpace: {min: "1", max: "4"}
    - name: opt
      parameterType: categorical
      feasibleSpace: {list: [sgd, adam]}
  trialTemplate:
    primaryContainerName: main
    trialParameters:
      - {name: lr, reference: lr, description: Learning rate}
      - {name: layers, reference: layers}
      - {name: opt, reference: opt}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: sidecar
                image: busybox
                command: [sleep, "1"]
              - name: main
                image: python:3.12
                command: [python3, train.py]
                args: ["--lr=${trialParameters.lr}", "--layers=${trialParameters.layers}", "--opt=${trialParameters.opt}"]
                workingDir: /work
                env:
                  - {name: MODE, value: tune}
                resources:
                  limits: {cpu: "500m", memory: 1Gi}
                  requests: {cpu: 0.25}
            restartPolicy: Never
"#;

fn base() -> Value {
    serde_saphyr::from_str::<Value>(BASE).unwrap()
}

fn load(v: Value) -> Result<Experiment, SpecError> {
    Experiment::from_json_value(v)
}

fn edited(edit: impl FnOnce(&mut Value)) -> Result<Experiment, SpecError> {
    let mut v = base();
    edit(&mut v);
    load(v)
}

fn ok(edit: impl FnOnce(&mut Value)) -> Experiment {
    edited(edit).unwrap_or_else(|e| panic!("expected to load: {e}"))
}

/// The edit makes the experiment fail at `path` with a message containing `msg`.
#[track_caller]
fn check(edit: impl FnOnce(&mut Value), path: &str, msg: &str) {
    assert_error(edited(edit), path, msg);
}

const MAIN: &str = "/spec/trialTemplate/trialSpec/spec/template/spec/containers/1";

#[test]
fn the_base_experiment_loads_with_katibs_defaults() {
    let e = load(base()).unwrap();
    assert_eq!(e.name, "demo");
    assert_eq!(e.namespace.as_ref().map(|n| n.as_str()), Some("kubeflow"));
    let s = &e.spec;
    assert_eq!(s.parallel_trial_count, 3);
    assert_eq!(s.max_trial_count, Some(6));
    assert_eq!(s.max_failed_trial_count, None);
    assert_eq!(s.resume_policy, ResumePolicy::Never);
    assert_eq!(
        s.metrics_collector,
        MetricsCollector::StdOut {
            metrics_format: vec![]
        }
    );
    assert_eq!(s.metrics_collector.text_filters(), Some(&[][..]));
    assert_eq!(s.early_stopping, None);
    assert_eq!(
        s.objective.metric_strategies,
        [MetricStrategySpec {
            name: "loss".into(),
            value: MetricStrategy::Min
        }]
    );
    assert_eq!(s.objective.strategy("loss"), MetricStrategy::Min);
    assert_eq!(s.objective.strategy("other"), MetricStrategy::Latest);
    assert_eq!(s.metric_names(), ["loss"]);
    assert_eq!(
        s.parameters[0].domain,
        Domain::Double {
            min: 0.01,
            max: 0.1,
            step: None,
            distribution: Distribution::Uniform
        }
    );
    assert_eq!(
        s.parameters[1].domain,
        Domain::Int {
            min: 1,
            max: 4,
            step: None,
            distribution: Distribution::Uniform
        }
    );
    assert_eq!(
        s.parameters[2].domain,
        Domain::Categorical {
            list: vec!["sgd".into(), "adam".into()]
        }
    );
    assert_eq!(
        s.search_space(),
        SearchSpace::new(s.parameters.clone()).unwrap()
    );
    let t = &s.trial_template;
    assert_eq!(t.primary_container_name, "main");
    assert_eq!(
        t.trial_parameters[0].description.as_deref(),
        Some("Learning rate")
    );
    assert_eq!(
        t.trial_parameters[0].reference,
        TrialReference::Parameter("lr".into())
    );
    assert!(!t.retain);
    assert_eq!(s.algorithm.algorithm_name, "random");
    assert!(s.algorithm.settings().is_empty());
}

#[test]
fn to_katib_value_spells_out_defaults_and_round_trips() {
    let e = load(base()).unwrap();
    let v = e.to_katib_value();
    assert_eq!(v["apiVersion"], "kubeflow.org/v1beta1");
    assert_eq!(v["kind"], "Experiment");
    assert_eq!(
        v["metadata"],
        json!({"name": "demo", "namespace": "kubeflow"})
    );
    let s = &v["spec"];
    assert_eq!(s["parallelTrialCount"], 3);
    assert_eq!(s["maxTrialCount"], 6);
    assert_eq!(s["resumePolicy"], "Never");
    assert_eq!(
        s["metricsCollectorSpec"],
        json!({"collector": {"kind": "StdOut"}})
    );
    assert_eq!(
        s["objective"]["metricStrategies"],
        json!([{"name": "loss", "value": "min"}])
    );
    assert_eq!(
        s["parameters"][0]["feasibleSpace"],
        json!({"max": "0.1", "min": "0.01", "distribution": "uniform"})
    );
    assert_eq!(
        s["parameters"][1]["feasibleSpace"],
        json!({"max": "4", "min": "1", "distribution": "uniform"})
    );
    assert_eq!(
        s["parameters"][2]["feasibleSpace"],
        json!({"list": ["sgd", "adam"], "distribution": "uniform"})
    );
    assert_eq!(
        s["trialTemplate"]["successCondition"],
        JOB_SUCCESS_CONDITION
    );
    assert_eq!(
        s["trialTemplate"]["failureCondition"],
        JOB_FAILURE_CONDITION
    );
    assert!(s.get("earlyStopping").is_none());
    assert_eq!(load(v).unwrap(), e);

    // A richer experiment round-trips too, through YAML text.
    let e = ok(|v| {
        set("/spec/objective/type", json!("maximize"))(v);
        set("/spec/objective/goal", json!(0.99))(v);
        set("/spec/objective/additionalMetricNames", json!(["loss2"]))(v);
        set(
            "/spec/earlyStopping",
            json!({"algorithmName": "medianstop"}),
        )(v);
        set("/spec/resumePolicy", json!("LongRunning"))(v);
        set("/spec/maxFailedTrialCount", json!(2))(v);
        set("/spec/parameters/0/feasibleSpace/step", json!("0.01"))(v);
        set(
            "/spec/parameters/0/feasibleSpace/distribution",
            json!("logUniform"),
        )(v);
        set(
            "/spec/metricsCollectorSpec",
            json!({"collector": {"kind": "File"}, "source": {"filter": {"metricsFormat": ["(\\w+): (\\S+)"]}}}),
        )(v);
        set("/spec/trialTemplate/retain", json!(true))(v);
        set(
            "/spec/trialTemplate/primaryPodLabels",
            json!({"role": "main"}),
        )(v);
        set("/metadata/labels", json!({"team": "a"}))(v);
    });
    let v = e.to_katib_value();
    assert_eq!(v["spec"]["objective"]["goal"], 0.99);
    assert_eq!(
        v["spec"]["earlyStopping"],
        json!({"algorithmName": "medianstop", "algorithmSettings": [
            {"name": "min_trials_required", "value": "3"}, {"name": "start_step", "value": "4"}]})
    );
    assert_eq!(
        v["spec"]["metricsCollectorSpec"]["source"]["fileSystemPath"],
        json!({"path": DEFAULT_FILE_PATH, "kind": "File", "format": "TEXT"})
    );
    let yaml = serde_json::to_string_pretty(&v).unwrap();
    assert_eq!(Experiment::from_yaml(&yaml).unwrap(), e);
}

#[test]
fn syntax_and_document_errors() {
    let e = Experiment::from_yaml("spec: [unclosed").unwrap_err();
    assert_eq!(e.path, "");
    assert!(e.message.contains("not valid YAML"), "{e}");
    let two = format!("{BASE}\n---\n{BASE}");
    let e = Experiment::from_yaml(&two).unwrap_err();
    assert!(e.message.contains("found 2 YAML documents"), "{e}");
    assert!(
        Experiment::from_yaml("")
            .unwrap_err()
            .message
            .contains("empty")
    );
    assert!(
        Experiment::from_yaml("- a\n- b\n")
            .unwrap_err()
            .message
            .contains("expected a Katib Experiment")
    );
    // JSON text works, and a leading `---` is one document.
    let json = serde_json::to_string(&base()).unwrap();
    assert!(Experiment::from_yaml(&json).is_ok());
    assert!(Experiment::from_yaml(&format!("---\n{BASE}")).is_ok());
    let e = SpecError::new("spec.parameters[1].feasibleSpace.min", "bad");
    assert_eq!(e.to_string(), "spec.parameters[1].feasibleSpace.min: bad");
    assert_eq!(SpecError::new("", "bad").to_string(), "bad");
}

#[test]
fn unknown_fields_are_named() {
    check(
        set("/spec/parallelTrials", json!(2)),
        "spec.parallelTrials",
        "unknown field `parallelTrials`",
    );
    check(
        set("/spec/parameters/1/feasibleSpace/mini", json!("1")),
        "spec.parameters[1].feasibleSpace.mini",
        "unknown field `mini`",
    );
    check(
        set("/metadata/uid", json!("x")),
        "metadata.uid",
        "unknown field `uid`",
    );
    check(
        set(
            "/spec/objective/metricStrategies",
            json!([{"name": "loss", "value": "min", "x": 1}]),
        ),
        "spec.objective.metricStrategies[0].x",
        "unknown field",
    );
    check(
        set("/spec/trialTemplate/trialParameter", json!([])),
        "spec.trialTemplate.trialParameter",
        "unknown field",
    );
    check(set("/status", json!({})), "status", "remove it");
}

#[test]
fn header_and_metadata() {
    check(remove("/apiVersion"), "apiVersion", "kubeflow.org/v1beta1");
    check(
        set("/apiVersion", json!("kubeflow.org/v1alpha3")),
        "apiVersion",
        "not supported",
    );
    check(set("/kind", json!("Trial")), "kind", "expected Experiment");
    check(remove("/kind"), "kind", "missing");
    check(remove("/metadata/name"), "metadata.name", "missing");
    for bad in ["Demo", "1demo", "-demo", "demo-", "de_mo", "de.mo"] {
        check(
            set("/metadata/name", json!(bad)),
            "metadata.name",
            "not a valid name",
        );
    }
    check(
        set("/metadata/name", json!("a".repeat(41))),
        "metadata.name",
        "the limit is 40",
    );
    ok(set(
        "/metadata/name",
        json!(format!("a{}", "-b".repeat(19))),
    ));
    check(
        set("/metadata/namespace", json!("Bad_NS")),
        "metadata.namespace",
        "invalid namespace",
    );
    assert_eq!(ok(remove("/metadata/namespace")).namespace, None);
    check(remove("/spec"), "spec", "missing");
    check(
        set("/metadata/name", json!(3)),
        "metadata.name",
        "invalid type",
    );
}

#[test]
fn trial_counts() {
    check(
        set("/spec/maxTrialCount", json!(0)),
        "spec.maxTrialCount",
        "must be greater than 0",
    );
    check(
        set("/spec/parallelTrialCount", json!(0)),
        "spec.parallelTrialCount",
        "must be greater than 0",
    );
    check(
        set("/spec/maxFailedTrialCount", json!(-1)),
        "spec.maxFailedTrialCount",
        "not be less than 0",
    );
    check(
        set("/spec/maxFailedTrialCount", json!(7)),
        "spec.maxFailedTrialCount",
        "less than or equal to spec.maxTrialCount",
    );
    check(
        set("/spec/parallelTrialCount", json!(7)),
        "spec.parallelTrialCount",
        "less than or equal to spec.maxTrialCount",
    );
    // The default parallelism (3) counts against maxTrialCount as in Katib.
    check(
        set("/spec/maxTrialCount", json!(2)),
        "spec.parallelTrialCount",
        "3, the default",
    );
    check(
        set("/spec/maxTrialCount", json!("6")),
        "spec.maxTrialCount",
        "invalid type",
    );
    check(
        set("/spec/maxTrialCount", json!(5_000_000_000i64)),
        "spec.maxTrialCount",
        "out of range",
    );
    let e = ok(|v| {
        remove("/spec/maxTrialCount")(v);
        set("/spec/parallelTrialCount", json!(10))(v);
        set("/spec/maxFailedTrialCount", json!(0))(v);
    });
    assert_eq!(
        (
            e.spec.max_trial_count,
            e.spec.parallel_trial_count,
            e.spec.max_failed_trial_count
        ),
        (None, 10, Some(0))
    );
}

#[test]
fn objective_rules_and_strategy_defaults() {
    check(remove("/spec/objective"), "spec.objective", "missing");
    check(
        remove("/spec/objective/type"),
        "spec.objective.type",
        "minimize or maximize",
    );
    check(
        set("/spec/objective/type", json!("min")),
        "spec.objective.type",
        "must be minimize or maximize",
    );
    check(
        remove("/spec/objective/objectiveMetricName"),
        "spec.objective.objectiveMetricName",
        "missing",
    );
    check(
        set(
            "/spec/objective/additionalMetricNames",
            json!(["acc", "loss"]),
        ),
        "spec.objective.additionalMetricNames[1]",
        "must not contain spec.objective.objectiveMetricName",
    );
    check(
        set(
            "/spec/objective/additionalMetricNames",
            json!(["acc", "acc"]),
        ),
        "spec.objective.additionalMetricNames[1]",
        "listed twice",
    );
    check(
        set(
            "/spec/objective/metricStrategies",
            json!([{"name": "acc", "value": "max"}]),
        ),
        "spec.objective.metricStrategies[0].name",
        "neither the objective metric",
    );
    check(
        set(
            "/spec/objective/metricStrategies",
            json!([{"name": "loss", "value": "median"}]),
        ),
        "spec.objective.metricStrategies[0].value",
        "min, max or latest",
    );
    check(
        set(
            "/spec/objective/metricStrategies",
            json!([{"name": "loss", "value": "min"}, {"name": "loss", "value": "max"}]),
        ),
        "spec.objective.metricStrategies[1].name",
        "two strategies",
    );
    check(
        set("/spec/objective/goal", json!("low")),
        "spec.objective.goal",
        "not a finite number",
    );

    // Katib's defaulting: every metric without a strategy follows the type.
    let e = ok(|v| {
        set("/spec/objective/type", json!("maximize"))(v);
        set(
            "/spec/objective/additionalMetricNames",
            json!(["acc", "f1"]),
        )(v);
        set(
            "/spec/objective/metricStrategies",
            json!([{"name": "f1", "value": "latest"}]),
        )(v);
        set("/spec/objective/goal", json!("0.9"))(v);
    });
    let o = &e.spec.objective;
    let got: Vec<(&str, MetricStrategy)> = o
        .metric_strategies
        .iter()
        .map(|s| (s.name.as_str(), s.value))
        .collect();
    assert_eq!(
        got,
        [
            ("f1", MetricStrategy::Latest),
            ("loss", MetricStrategy::Max),
            ("acc", MetricStrategy::Max)
        ]
    );
    assert_eq!(o.goal, Some(0.9));
    assert_eq!(o.metric_names(), ["loss", "acc", "f1"]);
}

#[test]
fn algorithm_rules() {
    check(remove("/spec/algorithm"), "spec.algorithm", "missing");
    check(
        set("/spec/algorithm/algorithmName", json!("")),
        "spec.algorithm.algorithmName",
        "missing",
    );
    check(
        set("/spec/algorithm/algorithmName", json!("enas")),
        "spec.algorithm.algorithmName",
        "neural architecture search",
    );
    check(
        set("/spec/algorithm/algorithmName", json!("darts")),
        "spec.algorithm.algorithmName",
        "not supported yet",
    );
    check(
        set("/spec/algorithm/algorithmName", json!("pbt")),
        "spec.algorithm.algorithmName",
        "pbt (population-based training) is not supported yet",
    );
    check(
        set("/spec/algorithm/algorithmName", json!("annealing")),
        "spec.algorithm.algorithmName",
        "unknown algorithm \"annealing\"",
    );
    check(
        set("/spec/algorithm/algorithmSettings", json!([{"value": "1"}])),
        "spec.algorithm.algorithmSettings[0].name",
        "missing",
    );
    check(
        set(
            "/spec/algorithm/algorithmSettings",
            json!([{"name": "random_state", "value": "1"}, {"name": "random_state", "value": "2"}]),
        ),
        "spec.algorithm.algorithmSettings[1].name",
        "given twice",
    );
    check(
        set("/spec/nasConfig", json!({"graphConfig": {"numLayers": 1}})),
        "spec.nasConfig",
        "not supported yet",
    );
    // Settings values may be YAML numbers.
    let e = ok(set(
        "/spec/algorithm/algorithmSettings",
        json!([{"name": "random_state", "value": 10}]),
    ));
    assert_eq!(
        e.spec.algorithm.settings(),
        [("random_state".to_owned(), "10".to_owned())]
    );
}

/// Settings are checked by the algorithm itself; errors point at the entry.
#[test]
fn algorithm_settings_are_validated_by_the_algorithm() {
    let algo = |name: &'static str, settings: Value| {
        move |v: &mut Value| {
            set(
                "/spec/algorithm",
                json!({"algorithmName": name, "algorithmSettings": settings}),
            )(v);
        }
    };
    check(
        algo("random", json!([{"name": "random_state", "value": "-1"}])),
        "spec.algorithm.algorithmSettings[0]",
        "random_state",
    );
    check(
        algo(
            "random",
            json!([{"name": "random_state", "value": "1"}, {"name": "gamma", "value": "0.1"}]),
        ),
        "spec.algorithm.algorithmSettings[1]",
        "gamma",
    );
    check(
        algo("tpe", json!([{"name": "n_EI_candidates", "value": "x"}])),
        "spec.algorithm.algorithmSettings[0]",
        "n_EI_candidates",
    );
    check(
        algo("tpe", json!([{"name": "unknown", "value": "1"}])),
        "spec.algorithm.algorithmSettings[0]",
        "unknown",
    );
    check(
        algo(
            "bayesianoptimization",
            json!([{"name": "acq_func", "value": "XX"}]),
        ),
        "spec.algorithm.algorithmSettings[0]",
        "acq_func",
    );
    check(
        |v| {
            algo("grid", json!([{"name": "foo", "value": "1"}]))(v);
            set("/spec/parameters/0/feasibleSpace/step", json!("0.01"))(v);
        },
        "spec.algorithm.algorithmSettings[0]",
        "foo",
    );
    ok(algo(
        "bayesianoptimization",
        json!([{"name": "random_state", "value": "10"}]),
    ));
    ok(algo(
        "multivariate-tpe",
        json!([{"name": "n_startup_trials", "value": "5"}]),
    ));
    ok(algo("sobol", json!([])));
}

#[test]
fn grid_and_hyperband_rules() {
    let grid = set("/spec/algorithm/algorithmName", json!("grid"));
    check(
        grid,
        "spec.parameters[0].feasibleSpace.step",
        "grid search needs a step",
    );
    // 10 × 4 × 2 = 80 points (0.01..0.1 step 0.01), enough for 6 trials, not for 100.
    ok(|v| {
        set("/spec/algorithm/algorithmName", json!("grid"))(v);
        set("/spec/parameters/0/feasibleSpace/step", json!("0.01"))(v);
    });
    check(
        |v| {
            set("/spec/algorithm/algorithmName", json!("grid"))(v);
            set("/spec/parameters/0/feasibleSpace/step", json!("0.05"))(v);
            set("/spec/maxTrialCount", json!(100))(v);
        },
        "spec.maxTrialCount",
        "more than the 16 points of the grid",
    );
    check(
        |v| {
            set(
                "/spec/algorithm",
                json!({"algorithmName": "hyperband", "algorithmSettings": [
                {"name": "resource_name", "value": "layers"}, {"name": "eta", "value": "3"}, {"name": "r_l", "value": "9"}]}),
            )(v);
            set("/spec/maxTrialCount", json!(20))(v);
        },
        "spec.parallelTrialCount",
        "at least 9",
    );
}

#[test]
fn parameter_rules() {
    check(remove("/spec/parameters"), "spec.parameters", "missing");
    check(
        set("/spec/parameters", json!([])),
        "spec.parameters",
        "missing",
    );
    check(
        remove("/spec/parameters/1/name"),
        "spec.parameters[1].name",
        "missing",
    );
    check(
        set("/spec/parameters/1/name", json!("lr")),
        "spec.parameters[1].name",
        "defined twice",
    );
    check(
        remove("/spec/parameters/1/parameterType"),
        "spec.parameters[1].parameterType",
        "missing",
    );
    check(
        set("/spec/parameters/1/parameterType", json!("float")),
        "spec.parameters[1].parameterType",
        "not supported",
    );
    check(
        set("/spec/parameters/1/parameterType", json!("unknown")),
        "spec.parameters[1].parameterType",
        "not supported",
    );
    check(
        remove("/spec/parameters/1/feasibleSpace"),
        "spec.parameters[1].feasibleSpace",
        "must be specified",
    );
    check(
        set("/spec/parameters/0/feasibleSpace/list", json!(["1"])),
        "spec.parameters[0].feasibleSpace.list",
        "not supported for parameterType double",
    );
    check(
        remove("/spec/parameters/0/feasibleSpace/min"),
        "spec.parameters[0].feasibleSpace.min",
        "must be specified",
    );
    check(
        remove("/spec/parameters/0/feasibleSpace/max"),
        "spec.parameters[0].feasibleSpace.max",
        "must be specified",
    );
    check(
        set("/spec/parameters/0/feasibleSpace/min", json!("")),
        "spec.parameters[0].feasibleSpace.min",
        "must be specified",
    );
    check(
        set("/spec/parameters/0/feasibleSpace/min", json!("abc")),
        "spec.parameters[0].feasibleSpace.min",
        "not a number",
    );
    check(
        set("/spec/parameters/0/feasibleSpace/step", json!("inf")),
        "spec.parameters[0].feasibleSpace.step",
        "not a number",
    );
    check(
        set("/spec/parameters/1/feasibleSpace/max", json!("4.5")),
        "spec.parameters[1].feasibleSpace.max",
        "not an integer",
    );
    check(
        set("/spec/parameters/0/feasibleSpace/min", json!("0.5")),
        "spec.parameters[0]",
        "greater than max",
    );
    check(
        set("/spec/parameters/1/feasibleSpace/step", json!("0")),
        "spec.parameters[1]",
        "positive",
    );
    check(
        |v| {
            set("/spec/parameters/0/feasibleSpace/min", json!("0"))(v);
            set(
                "/spec/parameters/0/feasibleSpace/distribution",
                json!("logUniform"),
            )(v);
        },
        "spec.parameters[0]",
        "log distribution",
    );
    check(
        set(
            "/spec/parameters/0/feasibleSpace/distribution",
            json!("beta"),
        ),
        "spec.parameters[0].feasibleSpace.distribution",
        "not supported",
    );
    check(
        set("/spec/parameters/2/feasibleSpace/min", json!("1")),
        "spec.parameters[2].feasibleSpace",
        "not supported for parameterType categorical",
    );
    check(
        set("/spec/parameters/2/feasibleSpace/list", json!([])),
        "spec.parameters[2].feasibleSpace",
        "must be specified",
    );
    check(
        |v| {
            set("/spec/parameters/2/feasibleSpace/list", json!([]))(v);
            set(
                "/spec/parameters/2/feasibleSpace/distribution",
                json!("uniform"),
            )(v);
        },
        "spec.parameters[2].feasibleSpace.list",
        "non-empty list",
    );
    check(
        set(
            "/spec/parameters/2/feasibleSpace/distribution",
            json!("normal"),
        ),
        "spec.parameters[2].feasibleSpace.distribution",
        "only to double and int",
    );
    check(
        |v| {
            set("/spec/parameters/2/parameterType", json!("discrete"))(v);
        },
        "spec.parameters[2].feasibleSpace.list[0]",
        "not a number",
    );

    // Numbers may be YAML numbers; discrete lists keep their text.
    let e = ok(|v| {
        set(
            "/spec/parameters/0/feasibleSpace",
            json!({"min": 0.01, "max": 1, "step": 0.01, "distribution": "normal"}),
        )(v);
        set(
            "/spec/parameters/1/feasibleSpace",
            json!({"min": 1, "max": 64, "distribution": "logUniform"}),
        )(v);
        set(
            "/spec/parameters/2",
            json!({"name": "opt", "parameterType": "discrete", "feasibleSpace": {"list": [1, "2.5", 1e3]}}),
        )(v);
    });
    let p = &e.spec.parameters;
    assert_eq!(
        p[0].domain,
        Domain::Double {
            min: 0.01,
            max: 1.0,
            step: Some(0.01),
            distribution: Distribution::Normal
        }
    );
    assert_eq!(
        p[1].domain,
        Domain::Int {
            min: 1,
            max: 64,
            step: None,
            distribution: Distribution::LogUniform
        }
    );
    assert_eq!(
        p[2].domain,
        Domain::Discrete {
            list: vec!["1".into(), "2.5".into(), "1000.0".into()],
            values: vec![1.0, 2.5, 1000.0]
        }
    );
    assert_eq!(load(e.to_katib_value()).unwrap(), e);
}

#[test]
fn metrics_collector_rules_and_defaults() {
    let mc = |value: Value| set("/spec/metricsCollectorSpec", value);
    let collector = |value: Value| load_collector(mc(value));
    assert_eq!(
        collector(json!({"collector": {"kind": "File"}})),
        MetricsCollector::File {
            path: DEFAULT_FILE_PATH.into(),
            format: FileFormat::Text {
                metrics_format: vec![]
            }
        }
    );
    assert_eq!(
        collector(
            json!({"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/out/m.json", "kind": "File", "format": "JSON"}}})
        ),
        MetricsCollector::File {
            path: "/out/m.json".into(),
            format: FileFormat::Json
        }
    );
    assert_eq!(
        collector(json!({"collector": {"kind": "TensorFlowEvent"}})),
        MetricsCollector::TensorFlowEvent {
            path: DEFAULT_TF_EVENT_DIR.into()
        }
    );
    assert_eq!(
        collector(json!({"collector": {"kind": "Push"}})),
        MetricsCollector::Push
    );
    assert_eq!(
        collector(json!({"collector": {"kind": "Push"}})).kind(),
        CollectorKind::Push
    );
    let filter = json!({"filter": {"metricsFormat": ["([\\w-]+)=(Genotype.*)"]}});
    assert_eq!(
        collector(json!({"collector": {"kind": "StdOut"}, "source": filter})),
        MetricsCollector::StdOut {
            metrics_format: vec!["([\\w-]+)=(Genotype.*)".into()]
        }
    );

    let k = "spec.metricsCollectorSpec.collector.kind";
    let src = "spec.metricsCollectorSpec.source";
    check(
        mc(json!({"collector": {"kind": "PrometheusMetric"}})),
        k,
        "PrometheusMetric is not supported yet",
    );
    check(
        mc(
            json!({"collector": {"kind": "Custom", "customCollector": {"name": "c", "image": "x"}}}),
        ),
        k,
        "Custom is not supported",
    );
    check(
        mc(json!({"collector": {"kind": "None"}})),
        k,
        "renamed to Push",
    );
    check(
        mc(json!({"collector": {"kind": "Sidecar"}})),
        k,
        "not a metrics collector kind",
    );
    check(mc(json!({"collector": {}})), k, "missing");
    check(
        mc(json!({"collector": {"kind": "StdOut", "customCollector": {}}})),
        "spec.metricsCollectorSpec.collector.customCollector",
        "only used by collector kind Custom",
    );
    check(
        mc(json!({"collector": {"kind": "StdOut"}, "source": {"fileSystemPath": {"path": "/a"}}})),
        &format!("{src}.fileSystemPath"),
        "use kind: File",
    );
    check(
        mc(json!({"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "m.log"}}})),
        &format!("{src}.fileSystemPath.path"),
        "absolute",
    );
    check(
        mc(
            json!({"collector": {"kind": "File"}, "source": {"fileSystemPath": {"kind": "Directory"}}}),
        ),
        &format!("{src}.fileSystemPath.kind"),
        "must be File",
    );
    check(
        mc(json!({"collector": {"kind": "File"}, "source": {"fileSystemPath": {"format": "XML"}}})),
        &format!("{src}.fileSystemPath.format"),
        "TEXT or JSON",
    );
    check(
        mc(
            json!({"collector": {"kind": "File"}, "source": {"fileSystemPath": {"format": "JSON"}, "filter": {"metricsFormat": ["(a)(b)"]}}}),
        ),
        &format!("{src}.filter"),
        "JSON",
    );
    check(
        mc(json!({"collector": {"kind": "File"}, "source": {"httpGet": {"port": 8080}}})),
        &format!("{src}.httpGet"),
        "not used",
    );
    check(
        mc(
            json!({"collector": {"kind": "TensorFlowEvent"}, "source": {"fileSystemPath": {"kind": "File"}}}),
        ),
        &format!("{src}.fileSystemPath.kind"),
        "must be Directory",
    );
    check(
        mc(
            json!({"collector": {"kind": "TensorFlowEvent"}, "source": {"fileSystemPath": {"format": "TEXT"}}}),
        ),
        &format!("{src}.fileSystemPath.format"),
        "must be empty",
    );
    check(
        mc(
            json!({"collector": {"kind": "TensorFlowEvent"}, "source": {"fileSystemPath": {"path": "logs"}}}),
        ),
        &format!("{src}.fileSystemPath.path"),
        "absolute",
    );
    check(
        mc(json!({"collector": {"kind": "TensorFlowEvent"}, "source": filter.clone()})),
        &format!("{src}.filter"),
        "not used",
    );
    check(
        mc(json!({"collector": {"kind": "Push"}, "source": filter})),
        src,
        "not used by collector kind Push",
    );
    check(
        mc(json!({"source": {"filter": {"metricsFormat": ["(\\w+)=\\S+"]}}})),
        &format!("{src}.filter.metricsFormat[0]"),
        "two capture groups",
    );
    check(
        mc(json!({"source": {"filter": {"metricsFormat": ["(a)(b)", "(a)(b"]}}})),
        &format!("{src}.filter.metricsFormat[1]"),
        "not a valid regular expression",
    );
    check(
        mc(json!({"source": {"fileSystemPath": {"path": "/a", "mode": "x"}}})),
        &format!("{src}.fileSystemPath.mode"),
        "unknown field",
    );
}

fn load_collector(edit: impl FnOnce(&mut Value)) -> MetricsCollector {
    ok(edit).spec.metrics_collector
}

#[test]
fn early_stopping_rules_and_defaults() {
    let es = |value: Value| set("/spec/earlyStopping", value);
    let e = ok(es(json!({"algorithmName": "medianstop"})));
    assert_eq!(
        e.spec.early_stopping,
        Some(EarlyStopping::MedianStop(MedianStop {
            min_trials_required: 3,
            start_step: 4
        }))
    );
    let e = ok(es(
        json!({"algorithmName": "medianstop", "algorithmSettings": [
        {"name": "min_trials_required", "value": "1"}, {"name": "start_step", "value": 2}]}),
    ));
    assert_eq!(
        e.spec.early_stopping,
        Some(EarlyStopping::MedianStop(MedianStop {
            min_trials_required: 1,
            start_step: 2
        }))
    );
    let ms = e.spec.early_stopping.as_ref().unwrap().median_stop();
    assert_eq!((ms.min_trials_required, ms.start_step), (1, 2));
    assert_eq!(
        e.spec.objective.objective_type.direction(),
        oxflow_suggest::Direction::Minimize
    );
    let p = "spec.earlyStopping";
    check(es(json!({})), &format!("{p}.algorithmName"), "missing");
    check(
        es(json!({"algorithmName": "hyperband"})),
        &format!("{p}.algorithmName"),
        "provide medianstop",
    );
    check(
        es(
            json!({"algorithmName": "medianstop", "algorithmSettings": [{"name": "patience", "value": "1"}]}),
        ),
        &format!("{p}.algorithmSettings[0].name"),
        "min_trials_required and start_step",
    );
    check(
        es(
            json!({"algorithmName": "medianstop", "algorithmSettings": [{"name": "min_trials_required", "value": "0"}]}),
        ),
        &format!("{p}.algorithmSettings[0].value"),
        "greater than 0",
    );
    check(
        es(
            json!({"algorithmName": "medianstop", "algorithmSettings": [{"name": "start_step", "value": "0"}]}),
        ),
        &format!("{p}.algorithmSettings[0].value"),
        "at least 1",
    );
    check(
        es(
            json!({"algorithmName": "medianstop", "algorithmSettings": [{"name": "start_step", "value": "two"}]}),
        ),
        &format!("{p}.algorithmSettings[0].value"),
        "integer",
    );
    check(
        es(
            json!({"algorithmName": "medianstop", "algorithmSettings": [{"name": "start_step", "value": "2"}, {"name": "start_step", "value": "3"}]}),
        ),
        &format!("{p}.algorithmSettings[1].name"),
        "twice",
    );
}

#[test]
fn resume_policy() {
    assert_eq!(
        ok(set("/spec/resumePolicy", json!("LongRunning")))
            .spec
            .resume_policy,
        ResumePolicy::LongRunning
    );
    assert_eq!(
        ok(set("/spec/resumePolicy", json!("FromVolume")))
            .spec
            .resume_policy,
        ResumePolicy::FromVolume
    );
    assert_eq!(
        ok(set("/spec/resumePolicy", json!("Never")))
            .spec
            .resume_policy,
        ResumePolicy::Never
    );
    check(
        set("/spec/resumePolicy", json!("Always")),
        "spec.resumePolicy",
        "Never, LongRunning or FromVolume",
    );
}

#[test]
fn trial_template_rules() {
    let t = "spec.trialTemplate";
    check(remove("/spec/trialTemplate"), t, "missing");
    check(
        remove("/spec/trialTemplate/primaryContainerName"),
        &format!("{t}.primaryContainerName"),
        "missing",
    );
    check(
        set(
            "/spec/trialTemplate/configMap",
            json!({"configMapName": "a"}),
        ),
        t,
        "only one of",
    );
    check(
        |v| {
            remove("/spec/trialTemplate/trialSpec")(v);
            set(
                "/spec/trialTemplate/configMap",
                json!({"configMapName": "t", "configMapNamespace": "k", "templatePath": "p"}),
            )(v);
        },
        &format!("{t}.configMap"),
        "no ConfigMaps locally",
    );
    check(
        remove("/spec/trialTemplate/trialSpec"),
        &format!("{t}.trialSpec"),
        "missing",
    );
    check(
        set("/spec/trialTemplate/trialSpec", json!("Job")),
        &format!("{t}.trialSpec"),
        "must be an object",
    );
    check(
        remove("/spec/trialTemplate/trialSpec/apiVersion"),
        &format!("{t}.trialSpec.apiVersion"),
        "missing",
    );
    check(
        remove("/spec/trialTemplate/trialSpec/kind"),
        &format!("{t}.trialSpec.kind"),
        "missing",
    );
    for kind in ["TFJob", "PyTorchJob", "MPIJob", "XGBoostJob", "TrainJob"] {
        check(
            set("/spec/trialTemplate/trialSpec/kind", json!(kind)),
            &format!("{t}.trialSpec.kind"),
            "TFJob/PyTorchJob trials need training jobs, which Oxflow does not run yet",
        );
    }
    check(
        set("/spec/trialTemplate/trialSpec/kind", json!("Deployment")),
        &format!("{t}.trialSpec.kind"),
        "Oxflow runs batch/v1 Job trials",
    );
    check(
        set(
            "/spec/trialTemplate/trialSpec/apiVersion",
            json!("batch/v2"),
        ),
        &format!("{t}.trialSpec.apiVersion"),
        "use batch/v1",
    );
    check(
        set("/spec/trialTemplate/trialSpec/metadata/name", json!("x")),
        &format!("{t}.trialSpec.metadata"),
        "must be omitted",
    );
    check(
        set(
            "/spec/trialTemplate/trialSpec/metadata/namespace",
            json!("x"),
        ),
        &format!("{t}.trialSpec.metadata"),
        "must be omitted",
    );
    check(
        set(
            "/spec/trialTemplate/successCondition",
            json!("status.succeeded"),
        ),
        &format!("{t}.successCondition"),
        "exit status",
    );
    check(
        set(
            "/spec/trialTemplate/failureCondition",
            json!("status.failed"),
        ),
        &format!("{t}.failureCondition"),
        "exit status",
    );
    ok(|v| {
        set(
            "/spec/trialTemplate/successCondition",
            json!(JOB_SUCCESS_CONDITION),
        )(v);
        set(
            "/spec/trialTemplate/failureCondition",
            json!(JOB_FAILURE_CONDITION),
        )(v);
    });

    let tp = "spec.trialTemplate.trialParameters";
    check(remove("/spec/trialTemplate/trialParameters"), tp, "missing");
    check(
        remove("/spec/trialTemplate/trialParameters/0/reference"),
        &format!("{tp}[0]"),
        "name and reference must be specified",
    );
    check(
        set("/spec/trialTemplate/trialParameters/0/name", json!("{lr}")),
        &format!("{tp}[0]"),
        "must not contain",
    );
    check(
        set("/spec/trialTemplate/trialParameters/1/name", json!("lr")),
        &format!("{tp}[1].name"),
        "defined twice",
    );
    check(
        set(
            "/spec/trialTemplate/trialParameters/1/reference",
            json!("lr"),
        ),
        &format!("{tp}[1].reference"),
        "used twice",
    );
    check(
        set(
            "/spec/trialTemplate/trialParameters/1/reference",
            json!("depth"),
        ),
        &format!("{tp}[1].reference"),
        "not a parameter in spec.parameters (lr, layers, opt)",
    );
    check(
        set(
            "/spec/trialTemplate/trialParameters/1/reference",
            json!("${trialSpec.Uid}"),
        ),
        &format!("{tp}[1].reference"),
        "not trial metadata",
    );
    check(
        set(
            "/spec/trialTemplate/trialParameters/1/reference",
            json!("${trialSpec.Labels[team]}"),
        ),
        &format!("{tp}[1].reference"),
        "labels has no key \"team\"",
    );
    check(
        |v| {
            let tps = at(v, "/spec/trialTemplate/trialParameters")
                .as_array_mut()
                .unwrap();
            tps.push(json!({"name": "unused", "reference": "${trialSpec.Name}"}));
        },
        &format!("{tp}[3].name"),
        "${trialParameters.unused} does not occur",
    );
    check(
        |v| {
            let args = at(v, &format!("{MAIN}/args")).as_array_mut().unwrap();
            args.push(json!("--seed=${trialParameters.seed}"));
        },
        &format!("{t}.trialSpec"),
        "${trialParameters.seed} in trialSpec have no entry",
    );
    check(
        |v| {
            at(v, "/spec/trialTemplate/trialParameters")
                .as_array_mut()
                .unwrap()
                .remove(1);
            set(
                "/spec/trialTemplate/trialSpec/spec/template/spec/containers/1/args",
                json!(["--lr=${trialParameters.lr}", "--opt=${trialParameters.opt}"]),
            )(v);
        },
        "spec.parameters[1]",
        "not referenced by spec.trialTemplate.trialParameters",
    );

    let c = "spec.trialTemplate.trialSpec.spec.template.spec.containers";
    check(
        set("/spec/trialTemplate/primaryContainerName", json!("trainer")),
        &format!("{t}.primaryContainerName"),
        "no container named \"trainer\"",
    );
    check(
        |v| {
            let spec = at(v, "/spec/trialTemplate/trialSpec/spec/template/spec")
                .as_object_mut()
                .unwrap();
            let containers = spec.remove("containers").unwrap();
            spec.insert("initContainers".into(), containers);
        },
        c,
        "missing",
    );
    check(
        remove(&format!("{MAIN}/command")),
        &format!("{c}[1].command"),
        "cannot read an image's entrypoint",
    );
    check(
        set(&format!("{MAIN}/command"), json!([])),
        &format!("{c}[1].command"),
        "set command",
    );
    check(
        set(&format!("{MAIN}/command"), json!(["python3", 3])),
        &format!("{c}[1].command[1]"),
        "must be a string",
    );
    check(
        set(
            &format!("{MAIN}/env"),
            json!([{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]),
        ),
        &format!("{c}[1].env[0].valueFrom"),
        "set a literal value",
    );
    check(
        set(
            &format!("{MAIN}/envFrom"),
            json!([{"configMapRef": {"name": "c"}}]),
        ),
        &format!("{c}[1].envFrom"),
        "not supported",
    );
    check(
        set(&format!("{MAIN}/resources/limits/cpu"), json!("lots")),
        &format!("{c}[1].resources.limits.cpu"),
        "not a Kubernetes quantity",
    );
}

#[test]
fn trial_metadata_references() {
    let e = ok(|v| {
        set(
            "/spec/trialTemplate/trialSpec/metadata",
            json!({"labels": {"team": "a"}, "annotations": {"note": "b"}}),
        )(v);
        let tps = at(v, "/spec/trialTemplate/trialParameters")
            .as_array_mut()
            .unwrap();
        for (name, reference) in [
            ("trialName", "${trialSpec.Name}"),
            ("ns", "${trialSpec.Namespace}"),
            ("kind", "${trialSpec.Kind}"),
            ("api", "${trialSpec.APIVersion}"),
            ("team", "${trialSpec.Labels[team]}"),
            ("note", "${trialSpec.Annotations[note]}"),
        ] {
            tps.push(json!({"name": name, "reference": reference}));
        }
        set(
            "/spec/trialTemplate/trialSpec/spec/template/spec/containers/1/env",
            json!([{"name": "ALL", "value": "${trialParameters.trialName}/${trialParameters.ns}/${trialParameters.kind}/${trialParameters.api}/${trialParameters.team}/${trialParameters.note}"}]),
        )(v);
    });
    let refs: Vec<&TrialReference> = e
        .spec
        .trial_template
        .trial_parameters
        .iter()
        .map(|p| &p.reference)
        .collect();
    assert_eq!(
        &refs[3..],
        [
            &TrialReference::Name,
            &TrialReference::Namespace,
            &TrialReference::Kind,
            &TrialReference::ApiVersion,
            &TrialReference::Label("team".into()),
            &TrialReference::Annotation("note".into()),
        ]
    );
    let run = e
        .render_trial("demo-abc", "team-ns", &assignment("0.05", "2", "adam"))
        .unwrap();
    assert_eq!(
        run.env,
        [(
            "ALL".to_owned(),
            "demo-abc/team-ns/Job/batch/v1/a/b".to_owned()
        )]
    );
    // References print back in Katib's spelling.
    let v = e.to_katib_value();
    assert_eq!(
        v["spec"]["trialTemplate"]["trialParameters"][7]["reference"],
        "${trialSpec.Labels[team]}"
    );
    assert_eq!(load(v).unwrap(), e);
}

fn assignment(lr: &str, layers: &str, opt: &str) -> Vec<ParameterAssignment> {
    [("lr", lr), ("layers", layers), ("opt", opt)]
        .iter()
        .map(|(n, v)| ParameterAssignment {
            name: n.to_string(),
            value: v.to_string(),
        })
        .collect()
}

#[test]
fn render_trial_substitutes_and_extracts_the_primary_container() {
    let e = load(base()).unwrap();
    let run = e
        .render_trial("demo-x7k2", "kubeflow", &assignment("0.05", "3", "adam"))
        .unwrap();
    assert_eq!(
        run.command,
        [
            "python3",
            "train.py",
            "--lr=0.05",
            "--layers=3",
            "--opt=adam"
        ]
    );
    assert_eq!(run.env, [("MODE".to_owned(), "tune".to_owned())]);
    assert_eq!(run.working_dir.as_deref(), Some("/work"));
    assert_eq!(run.image.as_deref(), Some("python:3.12"));
    assert_eq!(run.resources.cpu_limit_millis, Some(500));
    assert_eq!(run.resources.memory_limit_bytes, Some(1 << 30));
    assert_eq!(run.resources.cpu_request_millis, Some(250));
    assert_eq!(
        run.spec["metadata"],
        json!({"name": "demo-x7k2", "namespace": "kubeflow"})
    );
    assert_eq!(
        run.spec["spec"]["template"]["spec"]["containers"][1]["args"][0],
        "--lr=0.05"
    );
    // The template itself is untouched.
    assert!(
        e.spec.trial_template.trial_spec["spec"]
            .to_string()
            .contains("${trialParameters.lr}")
    );

    // Values are inserted as text, escaped for the JSON string they land in.
    let run = e
        .render_trial("t", "ns", &assignment("0.05", "3", "say \"hi\" \\ bye"))
        .unwrap();
    assert_eq!(run.command[4], "--opt=say \"hi\" \\ bye");

    // Order of assignments does not matter; missing or unknown ones do.
    let mut a = assignment("0.05", "3", "adam");
    a.reverse();
    assert!(e.render_trial("t", "ns", &a).is_ok());
    let err = e.render_trial("t", "ns", &a[..2]).unwrap_err();
    assert_eq!(err.path, "parameterAssignments");
    assert!(
        err.message.contains("no value for parameter \"lr\""),
        "{err}"
    );
    a.push(ParameterAssignment {
        name: "momentum".into(),
        value: "0.9".into(),
    });
    assert_eq!(
        e.render_trial("t", "ns", &a).unwrap_err().path,
        "parameterAssignments[3].name"
    );
    a.pop();
    a.push(ParameterAssignment {
        name: "lr".into(),
        value: "0.9".into(),
    });
    assert!(
        e.render_trial("t", "ns", &a)
            .unwrap_err()
            .message
            .contains("assigned twice")
    );

    // A quantity that only exists after substitution is checked then.
    let e = ok(|v| {
        let tps = at(v, "/spec/trialTemplate/trialParameters")
            .as_array_mut()
            .unwrap();
        tps[1] = json!({"name": "layers", "reference": "layers"});
        set(
            "/spec/trialTemplate/trialSpec/spec/template/spec/containers/1/resources/limits/cpu",
            json!("${trialParameters.layers}"),
        )(v);
        set(
            "/spec/trialTemplate/trialSpec/spec/template/spec/containers/1/args",
            json!(["--lr=${trialParameters.lr}", "--opt=${trialParameters.opt}"]),
        )(v);
    });
    let run = e
        .render_trial("t", "ns", &assignment("0.05", "2", "adam"))
        .unwrap();
    assert_eq!(run.resources.cpu_limit_millis, Some(2000));
    assert_eq!(
        run.command,
        ["python3", "train.py", "--lr=0.05", "--opt=adam"]
    );
}

#[test]
fn accelerators_from_extended_resources() {
    let e = ok(set(
        "/spec/trialTemplate/trialSpec/spec/template/spec/containers/1/resources",
        json!({"limits": {"nvidia.com/gpu": 1, "memory": "512Mi"}}),
    ));
    let run = e
        .render_trial("t", "ns", &assignment("0.05", "2", "adam"))
        .unwrap();
    assert_eq!(
        run.resources.accelerator,
        Some(("nvidia.com/gpu".to_owned(), 1))
    );
    assert_eq!(run.resources.memory_limit_bytes, Some(512 << 20));
    assert_eq!(run.resources.cpu_limit_millis, None);
}

#[test]
fn assignments_format_and_parse() {
    let space = SearchSpace::new(vec![
        oxflow_suggest::Param {
            name: "lr".into(),
            domain: Domain::Double {
                min: 1e-9,
                max: 10.0,
                step: None,
                distribution: Distribution::LogUniform,
            },
        },
        oxflow_suggest::Param {
            name: "n".into(),
            domain: Domain::Int {
                min: -5,
                max: 5,
                step: None,
                distribution: Distribution::Uniform,
            },
        },
        oxflow_suggest::Param {
            name: "bs".into(),
            domain: Domain::Discrete {
                list: vec!["32".into(), "64.0".into()],
                values: vec![32.0, 64.0],
            },
        },
        oxflow_suggest::Param {
            name: "opt".into(),
            domain: Domain::Categorical {
                list: vec!["sgd".into(), "adam".into()],
            },
        },
    ])
    .unwrap();
    let cases: [(f64, &str); 5] = [
        (0.01, "0.01"),
        (1.0, "1.0"),
        (1e-7, "1e-7"),
        (0.1 + 0.2, "0.30000000000000004"),
        (2.5, "2.5"),
    ];
    for (x, text) in cases {
        let a = vec![
            PValue::Double(x),
            PValue::Int(-3),
            PValue::Choice(1),
            PValue::Choice(0),
        ];
        let f = format_assignment(&space, &a);
        let got: Vec<(&str, &str)> = f
            .iter()
            .map(|p| (p.name.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [("lr", text), ("n", "-3"), ("bs", "64.0"), ("opt", "sgd")]
        );
        assert_eq!(parse_assignment(&space, &f).unwrap(), a);
    }
    let pa = |pairs: &[(&str, &str)]| -> Vec<ParameterAssignment> {
        pairs
            .iter()
            .map(|(n, v)| ParameterAssignment {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect()
    };
    // Any order.
    let a = parse_assignment(
        &space,
        &pa(&[("opt", "adam"), ("bs", "32"), ("n", "5"), ("lr", "3")]),
    )
    .unwrap();
    assert_eq!(
        a,
        vec![
            PValue::Double(3.0),
            PValue::Int(5),
            PValue::Choice(0),
            PValue::Choice(1)
        ]
    );
    let err = |pairs: &[(&str, &str)]| parse_assignment(&space, &pa(pairs)).unwrap_err();
    let e = err(&[("lr", "x"), ("n", "1"), ("bs", "32"), ("opt", "sgd")]);
    assert_eq!(e.path, "parameterAssignments[0].value");
    assert_eq!(
        err(&[("lr", "1"), ("n", "1.5"), ("bs", "32"), ("opt", "sgd")]).path,
        "parameterAssignments[1].value"
    );
    let e = err(&[("lr", "1"), ("n", "1"), ("bs", "32.0"), ("opt", "sgd")]);
    assert!(
        e.message.contains("not one of the values of bs (32, 64.0)"),
        "{e}"
    );
    assert!(
        err(&[("lr", "1"), ("n", "1"), ("bs", "32")])
            .message
            .contains("no value for parameter \"opt\"")
    );
    assert_eq!(
        err(&[
            ("lr", "1"),
            ("x", "1"),
            ("n", "1"),
            ("bs", "32"),
            ("opt", "sgd")
        ])
        .path,
        "parameterAssignments[1].name"
    );
    assert!(
        err(&[
            ("lr", "1"),
            ("lr", "2"),
            ("n", "1"),
            ("bs", "32"),
            ("opt", "sgd")
        ])
        .message
        .contains("twice")
    );
}
