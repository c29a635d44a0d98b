//! End to end: Katib experiments with the real binary and real trial
//! processes — search, persistence across a kill -9, stop and resume, early
//! stopping, every metrics collector, failure accounting and bad input.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::Env;
use serde_json::Value;

/// The trial program: evaluates `loss = (x - 0.3)^2 (+ y)` and reports it
/// the way the experiment's collector expects.
const TRIAL: &str = r#"
import json, os, sys, time
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
x = float(args.get("x", "0"))
y = float(args.get("y", "0"))
loss = (x - 0.3) ** 2 + y
mode = args.get("mode", "stdout")
sleep_file = args.get("sleep-file")
if sleep_file and os.path.exists(sleep_file):
    time.sleep(float(open(sleep_file).read().strip() or "0"))
if args.get("fail") == "1":
    print("failing on purpose", file=sys.stderr)
    sys.exit(3)
if mode == "stdout":
    print(f"epoch 1 accuracy={1 - loss:.6f}")
    print(f"loss={loss!r}")
elif mode == "silent":
    print("no metrics here")
elif mode == "epochs":
    # Early stopping: loss per epoch; bad trials (x > 0.5) stall after two epochs.
    for epoch in range(1, 5):
        print(f"loss={loss * (1 + 1 / epoch)!r}", flush=True)
        if x > 0.5 and epoch >= 2:
            time.sleep(60)
        time.sleep(0.05)
elif mode == "file-text":
    with open(args["path"], "a") as f:
        f.write(f"2026-01-01T00:00:01Z {{metricName: loss, metricValue: {loss * 2:.12f}}}\n")
        f.write(f"2026-01-01T00:00:02Z {{metricName: loss, metricValue: {loss:.12f}}}\n")
elif mode == "file-json":
    with open(args["path"], "a") as f:
        f.write(json.dumps({"loss": str(loss * 3), "timestamp": "2026-01-01T00:00:01Z"}) + "\n")
        f.write(json.dumps({"loss": str(loss), "timestamp": "2026-01-01T00:00:02Z"}) + "\n")
elif mode == "push":
    import oxflow_katib
    oxflow_katib.report_metrics({"loss": loss * 5})
    oxflow_katib.report_metrics({"loss": loss})
elif mode == "tfevents":
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
    w = EventFileWriter(os.path.join(args["path"], "test"))
    for step, v in enumerate([loss * 4, loss]):
        s = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="loss", simple_value=v)])
        w.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=s))
    w.close()
"#;

struct Exp {
    name: String,
    algorithm: String,
    settings: String,
    objective: String,
    params: String,
    extra_spec: String,
    args: Vec<String>,
    collector: String,
}

impl Exp {
    fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            algorithm: "random".into(),
            settings: String::new(),
            objective: "type: minimize\n    objectiveMetricName: loss".into(),
            params: r#"
    - name: x
      parameterType: double
      feasibleSpace: {min: "-1", max: "1"}"#
                .into(),
            extra_spec: "parallelTrialCount: 2\n  maxTrialCount: 4".into(),
            args: vec!["--x=${trialParameters.x}".into()],
            collector: String::new(),
        }
    }

    fn yaml(&self, python: &Path, trial: &Path) -> String {
        let trial_params: String = self
            .params
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- name: "))
            .map(|n| format!("\n      - name: {n}\n        reference: {n}"))
            .collect();
        let mut command = vec![
            format!("\"{}\"", python.display()),
            format!("\"{}\"", trial.display()),
        ];
        command.extend(self.args.iter().map(|a| format!("\"{a}\"")));
        format!(
            r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: {name}
spec:
  objective:
    {objective}
  algorithm:
    algorithmName: {algorithm}{settings}
  {extra}
  parameters:{params}{collector}
  trialTemplate:
    primaryContainerName: training-container
    trialParameters:{trial_params}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: training-container
                image: python:3.11
                command: [{command}]
            restartPolicy: Never
"#,
            name = self.name,
            objective = self.objective,
            algorithm = self.algorithm,
            settings = self.settings,
            extra = self.extra_spec,
            params = self.params,
            collector = self.collector,
            command = command.join(", "),
        )
    }
}

struct Tune {
    env: Env,
    trial: std::path::PathBuf,
}

impl Tune {
    fn new() -> Self {
        let env = Env::new();
        let trial = env.work.path().join("trial.py");
        std::fs::write(&trial, TRIAL).unwrap();
        Self { env, trial }
    }

    fn write(&self, exp: &Exp) -> std::path::PathBuf {
        let p = self.env.work.path().join(format!("{}.yaml", exp.name));
        std::fs::write(&p, exp.yaml(&common::python(), &self.trial)).unwrap();
        p
    }

    /// `oxflow tune FILE -o json`: exit code, the experiment and stderr.
    fn tune(&self, exp: &Exp) -> (i32, Value, String) {
        let p = self.write(exp);
        let out = self
            .env
            .oxflow(&["tune", p.to_str().unwrap(), "-o", "json"]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), v, stderr)
    }

    /// `oxflow tune FILE` in the background; its stderr goes to
    /// `<work>/<name>.stderr`, which `wait_for` failures print.
    fn spawn_tune(&self, exp: &Exp) -> Child {
        let p = self.write(exp);
        let err = std::fs::File::create(self.env.work.path().join(format!("{}.stderr", exp.name)))
            .unwrap();
        self.env
            .cmd()
            .args(["tune", p.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap()
    }

    fn tune_stderr(&self, name: &str) -> String {
        std::fs::read_to_string(self.env.work.path().join(format!("{name}.stderr")))
            .unwrap_or_default()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.env.oxflow(args);
        assert!(
            out.status.success(),
            "oxflow {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn experiment(&self, name: &str) -> Value {
        self.json(&["experiments", "get", name, "-o", "json"])
    }

    fn trials(&self, name: &str) -> Vec<Value> {
        self.json(&["experiments", "trials", name, "-o", "json"])
            .as_array()
            .unwrap()
            .clone()
    }
}

/// A trial's phase: its newest condition (Created, then the phase;
/// `Created` before the controller wrote any).
fn phase(t: &Value) -> &str {
    t["status"]["conditions"]
        .as_array()
        .and_then(|c| c.last())
        .and_then(|c| c["type"].as_str())
        .unwrap_or("Created")
}

fn condition(e: &Value) -> (String, String) {
    let c = e["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|c| c["status"] == "True" && c["type"] != "Created")
        .expect("an active phase condition");
    (
        c["type"].as_str().unwrap().to_owned(),
        c["reason"].as_str().unwrap().to_owned(),
    )
}

fn assignments(t: &Value) -> String {
    t["spec"]["parameterAssignments"].to_string()
}

/// Polls `cond` (for at most a minute) while a background `oxflow tune`
/// runs; a timeout shows what it printed and the trials.
fn wait_for_tune(t: &Tune, name: &str, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > Duration::from_secs(60) {
            let out = t.env.oxflow(&["experiments", "trials", name]);
            panic!(
                "timed out waiting for {what}\ntune's stderr:\n{}\ntrials:\n{}{}",
                t.tune_stderr(name),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Processes that open a fresh data directory at the same moment (`oxflow
/// tune` and an `oxflow experiments` polling beside it) must not both try to
/// create the schema.
#[test]
fn concurrent_first_opens_of_a_data_directory_all_succeed() {
    for _ in 0..5 {
        let env = Env::new();
        let children: Vec<Child> = (0..6)
            .map(|_| {
                env.cmd()
                    .args(["experiments", "list", "-o", "json"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn random_search_finds_and_reports_the_best_trial() {
    let t = Tune::new();
    let (code, e, stderr) = t.tune(&Exp::new("rand"));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        condition(&e),
        ("Succeeded".into(), "ExperimentMaxTrialsReached".into())
    );
    assert_eq!(e["status"]["trials"], 4);
    assert_eq!(e["status"]["trialsSucceeded"], 4);
    let trials = t.trials("rand");
    assert_eq!(trials.len(), 4);
    // The best trial is the one with the lowest loss, and its observation is Katib's.
    let best = trials
        .iter()
        .min_by(|a, b| {
            a["status"]["oxflow"]["objective"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["status"]["oxflow"]["objective"].as_f64().unwrap())
        })
        .unwrap();
    let optimal = &e["status"]["currentOptimalTrial"];
    assert_eq!(optimal["bestTrialName"], best["metadata"]["name"]);
    let loss = optimal["observation"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "loss")
        .unwrap();
    assert_eq!(
        loss["min"].as_str().unwrap().parse::<f64>().unwrap(),
        best["status"]["oxflow"]["objective"].as_f64().unwrap()
    );
    // Each trial ran with its own x, and loss is (x - 0.3)^2 of that x.
    let mut seen = BTreeSet::new();
    for tr in &trials {
        let x: f64 = tr["spec"]["parameterAssignments"][0]["value"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((-1.0..=1.0).contains(&x));
        let loss = tr["status"]["oxflow"]["objective"].as_f64().unwrap();
        assert!((loss - (x - 0.3).powi(2)).abs() < 1e-9, "{tr}");
        assert!(seen.insert(assignments(tr)), "duplicate suggestion {tr}");
    }
    // The trial's output is kept and readable.
    let name = best["metadata"]["name"].as_str().unwrap();
    let out = t.env.oxflow(&["experiments", "logs", name]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("loss="));
    // Katib's shape in YAML too.
    let out = t.env.oxflow(&["experiments", "get", "rand", "-o", "yaml"]);
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(
        yaml.contains("currentOptimalTrial:") && yaml.contains("kind: Experiment"),
        "{yaml}"
    );
    let list = t.json(&["experiments", "list", "-o", "json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[test]
fn experiments_run_on_postgres() {
    common::with_postgres_schema("tuning", |database| {
        let mut t = Tune::new();
        t.env.database = Some(database);
        let (code, e, stderr) = t.tune(&Exp::new("pg"));
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(e["status"]["trialsSucceeded"], 4, "{stderr}");
        let trials = t.trials("pg");
        assert!(
            trials
                .iter()
                .all(|tr| tr["status"]["oxflow"]["objective"].is_number())
        );
        assert!(!t.env.home.path().join("oxflow.db").exists());
    });
}

#[test]
fn bad_experiments_name_the_field_and_store_nothing() {
    let t = Tune::new();
    let mut e = Exp::new("bad");
    e.params = r#"
    - name: x
      parameterType: double
      feasibleSpace: {min: "2", max: "1"}"#
        .into();
    let (code, _, stderr) = t.tune(&e);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("spec.parameters[0]"), "{stderr}");
    let mut e = Exp::new("bad2");
    e.algorithm = "annealing".into();
    let (code, _, stderr) = t.tune(&e);
    assert_eq!(code, 2);
    assert!(stderr.contains("spec.algorithm"), "{stderr}");
    assert_eq!(
        t.json(&["experiments", "list", "-o", "json"]),
        serde_json::json!([])
    );
}

#[test]
fn a_killed_experiment_resumes_without_losing_or_repeating_trials() {
    let t = Tune::new();
    let sleep = t.env.work.path().join("sleep");
    std::fs::write(&sleep, "0.4").unwrap();
    let mut e = Exp::new("crash");
    e.settings =
        "\n    algorithmSettings:\n      - name: random_state\n        value: \"7\"".into();
    e.extra_spec = "parallelTrialCount: 1\n  maxTrialCount: 5".into();
    e.args.push(format!("--sleep-file={}", sleep.display()));
    let mut child = t.spawn_tune(&e);
    wait_for_tune(&t, "crash", "two finished trials and a running one", || {
        let out = t
            .env
            .oxflow(&["experiments", "trials", "crash", "-o", "json"]);
        let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) else {
            return false;
        };
        let ts = v.as_array().cloned().unwrap_or_default();
        ts.iter().filter(|t| phase(t) == "Succeeded").count() >= 2
            && ts.iter().any(|t| phase(t) == "Running")
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let before = t.trials("crash");
    let interrupted: Vec<String> = before
        .iter()
        .filter(|t| phase(t) == "Running")
        .map(|t| t["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(interrupted.len(), 1);

    let out = t.env.oxflow(&["experiments", "resume", "crash"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = t.trials("crash");
    assert_eq!(after.len(), 5);
    assert!(after.iter().all(|t| phase(t) == "Succeeded"));
    // Nothing lost: every trial stored before the kill is still there, in
    // order, with its parameters; the interrupted one ran again (attempt 2).
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b["metadata"]["name"], a["metadata"]["name"]);
        assert_eq!(assignments(b), assignments(a));
    }
    let rerun = after
        .iter()
        .find(|t| t["metadata"]["name"] == interrupted[0].as_str())
        .unwrap();
    assert_eq!(rerun["status"]["oxflow"]["attempt"], 2);
    // Nothing repeated, and the same suggestions as an uninterrupted experiment with the same seed.
    std::fs::write(&sleep, "0").unwrap();
    let mut same = Exp::new("nocrash");
    same.settings = e.settings.clone();
    same.extra_spec = e.extra_spec.clone();
    same.args = e.args.clone();
    let (code, _, stderr) = t.tune(&same);
    assert_eq!(code, 0, "{stderr}");
    let reference: Vec<String> = t.trials("nocrash").iter().map(assignments).collect();
    let resumed: Vec<String> = after.iter().map(assignments).collect();
    assert_eq!(resumed, reference);
}

#[test]
fn stop_from_another_process_then_resume_and_extend() {
    let t = Tune::new();
    let sleep = t.env.work.path().join("sleep");
    std::fs::write(&sleep, "60").unwrap();
    let mut e = Exp::new("stoppable");
    e.args.push(format!("--sleep-file={}", sleep.display()));
    e.extra_spec = "parallelTrialCount: 2\n  maxTrialCount: 3\n  resumePolicy: LongRunning".into();
    let mut child = t.spawn_tune(&e);
    wait_for_tune(&t, "stoppable", "two running trials", || {
        let out = t
            .env
            .oxflow(&["experiments", "trials", "stoppable", "-o", "json"]);
        serde_json::from_slice::<Value>(&out.stdout)
            .map(|v| {
                v.as_array()
                    .map(|a| a.iter().filter(|t| phase(t) == "Running").count())
                    .unwrap_or(0)
                    == 2
            })
            .unwrap_or(false)
    });
    let out = t.env.oxflow(&["experiments", "stop", "stoppable"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "tune ends unsuccessfully when stopped"
    );
    let e1 = t.experiment("stoppable");
    assert_eq!(condition(&e1).0, "Stopped");
    let trials = t.trials("stoppable");
    assert!(trials.iter().all(|t| phase(t) == "Killed"), "{trials:?}");

    // Resume: the experiment continues and reaches maxTrialCount.
    std::fs::write(&sleep, "0").unwrap();
    let out = t.env.oxflow(&["experiments", "resume", "stoppable"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e2 = t.experiment("stoppable");
    assert_eq!(
        condition(&e2),
        ("Succeeded".into(), "ExperimentMaxTrialsReached".into())
    );
    assert_eq!(e2["status"]["trials"], 3);
    // A finished LongRunning experiment takes a larger maxTrialCount.
    let out = t.env.oxflow(&["experiments", "resume", "stoppable"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("maxTrialCount"));
    let out = t.env.oxflow(&[
        "experiments",
        "resume",
        "stoppable",
        "--max-trial-count",
        "5",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e3 = t.experiment("stoppable");
    assert_eq!(e3["status"]["trials"], 5);
    assert_eq!(e3["spec"]["maxTrialCount"], 5);
    assert_eq!(condition(&e3).0, "Succeeded");
    let names: BTreeSet<String> = t
        .trials("stoppable")
        .iter()
        .map(|t| t["metadata"]["name"].to_string())
        .collect();
    assert_eq!(names.len(), 5);
}

#[test]
fn a_never_resume_policy_refuses_to_extend() {
    let t = Tune::new();
    let (code, _, stderr) = t.tune(&Exp::new("never"));
    assert_eq!(code, 0, "{stderr}");
    let out = t
        .env
        .oxflow(&["experiments", "resume", "never", "--max-trial-count", "8"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("resumePolicy"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn medianstop_stops_trials_worse_than_the_median() {
    let t = Tune::new();
    let mut e = Exp::new("median");
    e.algorithm = "grid".into();
    e.params = r#"
    - name: x
      parameterType: discrete
      feasibleSpace:
        list: ["0.3", "0.35", "0.9", "0.95"]"#
        .into();
    e.args.push("--mode=epochs".into());
    e.extra_spec = "parallelTrialCount: 1\n  maxTrialCount: 4\n  earlyStopping:\n    algorithmName: medianstop\n    algorithmSettings:\n      - name: min_trials_required\n        value: \"2\"\n      - name: start_step\n        value: \"2\"".into();
    let (code, e, stderr) = t.tune(&e);
    assert_eq!(code, 0, "{stderr}");
    let trials = t.trials("median");
    let phases: Vec<&str> = trials.iter().map(phase).collect();
    assert_eq!(
        phases,
        ["Succeeded", "Succeeded", "EarlyStopped", "EarlyStopped"],
        "{trials:?}"
    );
    assert_eq!(e["status"]["trialsEarlyStopped"], 2);
    // The best trial is a succeeded one.
    assert_eq!(
        e["status"]["currentOptimalTrial"]["bestTrialName"],
        trials[0]["metadata"]["name"]
    );
}

#[test]
fn every_metrics_collector_reads_the_objective() {
    let t = Tune::new();
    let cases = [
        (
            "file-text",
            "\n  metricsCollectorSpec:\n    source:\n      fileSystemPath:\n        path: /var/log/katib/oxflow-test/metrics.log\n        kind: File\n      filter:\n        metricsFormat:\n          - \"{metricName: ([\\\\w|-]+), metricValue: ((-?\\\\d+)(\\\\.\\\\d+)?)}\"\n    collector:\n      kind: File",
            "--path=/var/log/katib/oxflow-test/metrics.log",
        ),
        (
            "file-json",
            "\n  metricsCollectorSpec:\n    source:\n      fileSystemPath:\n        path: /var/log/katib/oxflow-test/metrics.json\n        kind: File\n        format: JSON\n    collector:\n      kind: File",
            "--path=/var/log/katib/oxflow-test/metrics.json",
        ),
        (
            "push",
            "\n  metricsCollectorSpec:\n    collector:\n      kind: Push",
            "",
        ),
        (
            "tfevents",
            "\n  metricsCollectorSpec:\n    source:\n      fileSystemPath:\n        path: /var/log/katib/tfevent/\n        kind: Directory\n    collector:\n      kind: TensorFlowEvent",
            "--path=/var/log/katib/tfevent",
        ),
    ];
    for (mode, collector, extra_arg) in cases {
        let mut e = Exp::new(mode);
        e.collector = collector.into();
        if mode == "tfevents" {
            e.objective = "type: minimize\n    objectiveMetricName: test/loss".into();
        }
        e.args.push(format!("--mode={mode}"));
        if !extra_arg.is_empty() {
            e.args.push(extra_arg.into());
        }
        // Latest strategy for the objective: the second (smaller) report counts.
        let (code, ex, stderr) = t.tune(&e);
        assert_eq!(code, 0, "{mode}: {stderr}");
        assert_eq!(ex["status"]["trialsSucceeded"], 4, "{mode}: {ex}");
        for tr in t.trials(mode) {
            let x: f64 = tr["spec"]["parameterAssignments"][0]["value"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let loss = tr["status"]["oxflow"]["objective"].as_f64().unwrap();
            let expected = (x - 0.3).powi(2);
            // TensorBoard stores float32; the text format has 12 decimals.
            assert!(
                (loss - expected).abs() <= 1e-6 * expected.max(1.0),
                "{mode}: {tr}"
            );
            let m = &tr["status"]["observation"]["metrics"][0];
            assert!(
                m["max"].as_str().unwrap().parse::<f64>().unwrap() >= loss,
                "{mode}: {m}"
            );
        }
    }
}

#[test]
fn failures_goals_and_missing_metrics_end_experiments_as_katib_does() {
    let t = Tune::new();
    // Every trial fails: the experiment fails at maxFailedTrialCount.
    let mut e = Exp::new("failing");
    e.args.push("--fail=1".into());
    e.extra_spec = "parallelTrialCount: 1\n  maxTrialCount: 5\n  maxFailedTrialCount: 2".into();
    let (code, ex, _) = t.tune(&e);
    assert_eq!(code, 1);
    assert_eq!(condition(&ex), ("Failed".into(), "ExperimentFailed".into()));
    assert_eq!(ex["status"]["trialsFailed"], 2);
    let failed = t.trials("failing");
    let log = t.env.oxflow(&[
        "experiments",
        "logs",
        failed[0]["metadata"]["name"].as_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&log.stdout).contains("failing on purpose"));

    // A trial that never prints the objective is MetricsUnavailable.
    let mut e = Exp::new("silent");
    e.args.push("--mode=silent".into());
    e.extra_spec = "parallelTrialCount: 1\n  maxTrialCount: 2".into();
    let (code, ex, _) = t.tune(&e);
    assert_eq!(code, 0);
    assert_eq!(ex["status"]["trialMetricsUnavailable"], 2);
    let tr = &t.trials("silent")[0];
    assert_eq!(
        tr["status"]["observation"]["metrics"][0]["latest"],
        "unavailable"
    );

    // Reaching the goal ends the experiment early (maximize accuracy ≥ 0).
    let mut e = Exp::new("goal");
    e.objective = "type: maximize\n    goal: -100\n    objectiveMetricName: accuracy\n    additionalMetricNames: [loss]".into();
    e.extra_spec = "parallelTrialCount: 1\n  maxTrialCount: 10".into();
    let (code, ex, _) = t.tune(&e);
    assert_eq!(code, 0);
    assert_eq!(
        condition(&ex),
        ("Succeeded".into(), "ExperimentGoalReached".into())
    );
    assert_eq!(ex["status"]["trials"], 1);
    let metrics = t.trials("goal")[0]["status"]["observation"]["metrics"].clone();
    let names: Vec<&str> = metrics
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["accuracy", "loss"]);
}
