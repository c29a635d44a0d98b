//! End to end: pipelines compiled by the real kfp SDK, run by the real binary.

mod common;

use common::{Env, out_param, task};
use serde_json::json;

#[test]
fn parameters_of_every_type_with_defaults_and_overrides() {
    let env = Env::new();
    let run = env.run_ok("params", &[]);
    assert_eq!(
        run["outputs"]["Output"],
        "DEMO:TRUE:6:[('K', 1)]:3.5 n=3 mean=2.0 labels=['x1', 'x2', 'x3']"
    );
    assert_eq!(out_param(&run, "stats", "count"), &json!(3));
    assert_eq!(
        out_param(&run, "stats", "labels"),
        &json!(["x1", "x2", "x3"])
    );
    assert_eq!(out_param(&run, "add", "Output"), &json!(3.5));
    // Parameters as stored keep integers as integers.
    assert_eq!(run["parameters"]["items"], json!([1, 2, 3]));
    assert_eq!(run["parameters"]["a"], json!(3));

    let run = env.run_ok(
        "params",
        &[
            "-p",
            "a=10",
            "-p",
            "items=[4, 5]",
            "-p",
            "flag=false",
            "-p",
            r#"cfg={"z": 2}"#,
            "-p",
            "name=x y",
        ],
    );
    assert_eq!(
        run["outputs"]["Output"],
        "X Y:FALSE:9:[('Z', 2)]:10.5 n=2 mean=4.5 labels=['x4', 'x5']"
    );
}

#[test]
fn artifacts_metrics_importer_and_paths() {
    let env = Env::new();
    std::fs::write(env.work.path().join("import_me.txt"), "imported content\n").unwrap();
    let run = env.run_ok("artifacts", &["-p", "n=20"]);
    assert_eq!(run["outputs"]["Output"], "imported content|external");
    let train = task(&run, "train");
    let arts = &train["outputs"]["artifacts"];
    assert_eq!(arts["metrics"][0]["metadata"]["accuracy"], json!(1));
    assert_eq!(arts["metrics"][0]["metadata"]["n"], json!(20));
    assert_eq!(arts["model"][0]["metadata"]["framework"], "threshold");
    let cm = &arts["cm"][0]["metadata"];
    assert_eq!(
        cm["confusionMatrix"]["annotationSpecs"][0]["displayName"],
        "neg"
    );
    assert_eq!(cm["confidenceMetrics"].as_array().unwrap().len(), 3);
    // Artifacts live in the artifact store, addressed by URI = path.
    let model_uri = arts["model"][0]["uri"].as_str().unwrap();
    assert!(
        model_uri.starts_with(env.home.path().to_str().unwrap()),
        "{model_uri}"
    );
    assert_eq!(
        std::fs::read_to_string(model_uri).unwrap(),
        r#"{"threshold": 0.5}"#
    );
    let md = arts["report"][0]["uri"].as_str().unwrap();
    assert!(std::fs::read_to_string(md).unwrap().starts_with("# Report"));
    let html = arts["page"][0]["uri"].as_str().unwrap();
    assert!(std::fs::read_to_string(html).unwrap().contains("<h1>"));
    // InputPath/OutputPath and metadata flowing downstream.
    let eval = task(&run, "evaluate");
    assert_eq!(eval["outputs"]["parameters"]["Output"], json!(0.5));
    assert_eq!(
        eval["outputs"]["parameters"]["summary_path"],
        "thr=0.5 n=20 framework=threshold"
    );
    // The importer's artifact is the user's file, made absolute.
    let imp = task(&run, "importer");
    let uri = imp["outputs"]["artifacts"]["artifact"][0]["uri"]
        .as_str()
        .unwrap();
    assert_eq!(uri, env.work.path().join("import_me.txt").to_str().unwrap());
}

#[test]
fn container_components_and_placeholders() {
    let env = Env::new();
    let run = env.run_ok("containers", &["-p", "n=7"]);
    assert_eq!(run["outputs"]["Output"], json!(7));
    let note = out_param(&run, "count-lines", "note").as_str().unwrap();
    let id = run["id"].as_str().unwrap();
    let words: Vec<&str> = note.split(' ').collect();
    assert_eq!(words[0..2], ["--verbose", "true"], "{note}");
    assert!(
        words[2].starts_with("uri=/") && words[2].ends_with("/write-lines/out"),
        "{note}"
    );
    assert_eq!(words[3..], ["count-lines", id], "{note}");
    // Run and task placeholders as default values of a lightweight component.
    let info = out_param(&run, "job-info", "Output").as_str().unwrap();
    let parts: Vec<&str> = info.split('|').collect();
    assert_eq!(parts[0], run["name"].as_str().unwrap(), "{info}");
    assert_eq!(parts[1..3], [id, id], "{info}");
    assert_eq!(parts[3], "job-info", "{info}");
    assert_eq!(
        parts[4],
        task(&run, "job-info")["id"].as_str().unwrap(),
        "{info}"
    );
    assert_eq!(parts[5], run["created_at"].as_str().unwrap(), "{info}");
    assert!(parts[6].ends_with(id), "{info}");
}

#[test]
fn conditions_and_oneof() {
    let env = Env::new();
    let run = env.run_ok("conditions", &["-p", "seed=1", "-p", "x=9"]);
    assert_eq!(run["outputs"]["Output"], "tails!");
    let states: Vec<(String, String)> = run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["path"].as_str().unwrap().to_owned(),
                t["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let state = |p: &str| {
        states
            .iter()
            .find(|(q, _)| q == p)
            .map(|(_, s)| s.as_str())
            .unwrap_or("<none>")
    };
    assert_eq!(
        state("condition-branches-1/condition-2"),
        "SKIPPED",
        "{states:?}"
    );
    assert_eq!(
        state("condition-branches-1/condition-3"),
        "SUCCEEDED",
        "{states:?}"
    );
    assert_eq!(
        state("condition-branches-1/condition-4"),
        "SKIPPED",
        "{states:?}"
    );
    // 9 * 7 % 100 = 63: the "high" branch ran, the "low" one did not.
    assert_eq!(state("condition-5"), "SUCCEEDED", "{states:?}");
    assert_eq!(state("condition-6"), "SKIPPED", "{states:?}");
    let run = env.run_ok("conditions", &["-p", "seed=3", "-p", "x=1"]);
    assert_eq!(run["outputs"]["Output"], "heads!");
}

#[test]
fn parallel_for_and_collected_in_order() {
    let env = Env::new();
    let run = env.run_ok("loops", &["-p", "n=5"]);
    assert_eq!(run["outputs"]["Output"], json!(30), "0+1+4+9+16");
    assert_eq!(out_param(&run, "join-strs", "Output"), "x1,y2");
    assert_eq!(out_param(&run, "merge", "Output"), "a+b+c");
    assert_eq!(out_param(&run, "for-loop-4/3/square", "Output"), &json!(9));
    let run = env.run_ok("loops", &["-p", "n=0", "-p", r#"names=["q"]"#]);
    assert_eq!(run["outputs"]["Output"], json!(0));
    assert_eq!(out_param(&run, "merge", "Output"), "q");
}

#[test]
fn exit_handler_sees_the_final_status() {
    let env = Env::new();
    let run = env.run_ok("exit_handler", &[]);
    assert_eq!(out_param(&run, "notify", "Output"), "ops:SUCCEEDED");

    let (code, run) = env.run("exit_handler", &["-p", "fail=true"]);
    assert_eq!(code, 1);
    assert_eq!(run["state"], "FAILED");
    assert_eq!(task(&run, "exit-handler-1/work")["state"], "FAILED");
    assert_eq!(task(&run, "exit-handler-1/work-2")["state"], "SKIPPED");
    assert_eq!(task(&run, "notify")["state"], "SUCCEEDED");
    assert_eq!(out_param(&run, "notify", "Output"), "ops:FAILED");
    // The failing task's log has the traceback.
    let out = env.oxflow(&["logs", run["id"].as_str().unwrap(), "exit-handler-1/work"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("RuntimeError: boom"));
}

#[test]
fn pipelines_as_components() {
    let env = Env::new();
    let run = env.run_ok("nested", &["-p", "x=10"]);
    assert_eq!(run["outputs"]["Output"], "11/11");
}

#[test]
fn the_readme_example_is_current_and_runs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    // The committed YAML is exactly what the kfp compiler writes from hello.py.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("hello.py");
    std::fs::copy(root.join("hello.py"), &src).unwrap();
    let out = std::process::Command::new(common::python())
        .args(["-W", "ignore"])
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh = std::fs::read_to_string(tmp.path().join("hello.yaml")).unwrap();
    let committed = std::fs::read_to_string(root.join("hello.yaml")).unwrap();
    assert!(
        fresh == committed,
        "examples/hello.yaml is stale: run `python examples/hello.py`"
    );

    let env = Env::new();
    let yaml = root.join("hello.yaml");
    let out = env.oxflow(&["run", yaml.to_str().unwrap(), "-p", "n=12", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["outputs"]["Output"], "sums of powers: [78, 650, 6084]");
    assert_eq!(task(&run, "condition-2/celebrate")["state"], "SUCCEEDED");
    let metrics = &task(&run, "report")["outputs"]["artifacts"]["metrics"][0]["metadata"];
    assert_eq!(metrics["sum_of_powers_2"], json!(650));
    // The text view and the run list agree with the JSON.
    let out = env.oxflow(&["runs", "list"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains(run["id"].as_str().unwrap()) && listing.contains("SUCCEEDED"),
        "{listing}"
    );
}
