//! End to end: task configuration, caching, crash recovery, bad input,
//! kfp-kubernetes features and PostgreSQL — with the real kfp SDK and binary.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Env, out_param, pipeline, task};
use serde_json::{Value, json};

fn read_count(dir: &Path, file: &str) -> i64 {
    std::fs::read_to_string(dir.join(file))
        .map(|s| s.trim().parse().unwrap())
        .unwrap_or(0)
}

/// Polls `cond` until it holds or `limit` passes.
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn six_version(python: &Path) -> String {
    let out = std::process::Command::new(python)
        .args(["-c", "import six; print(six.__version__)"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn env_packages_retries_and_caching() {
    let env = Env::new();
    let markers = env.work.path().join("markers");
    std::fs::create_dir_all(&markers).unwrap();
    let m = format!("marker_dir={}", markers.display());
    let user_six = six_version(&common::python());

    let run = env.run_ok("task_config", &["-p", &m]);
    assert_eq!(
        run["outputs"]["Output"], "hello",
        "set_env_variable reaches the task"
    );
    assert_eq!(task(&run, "env-echo")["display_name"], "print env");
    // packages_to_install went into a cached venv under the data directory.
    let pkgs = out_param(&run, "with-pkgs", "Output").as_str().unwrap();
    let (ver, prefix) = pkgs.split_once(':').unwrap();
    assert_eq!(ver, "1.16.0");
    assert!(
        prefix.starts_with(env.home.path().join("envs").to_str().unwrap()),
        "{prefix}"
    );
    assert_eq!(
        six_version(&common::python()),
        user_six,
        "the user's environment is untouched"
    );
    // Resources are recorded with the task.
    let res = &task(&run, "with-pkgs")["inputs"]["resources"];
    assert_eq!(res["cpu_limit_millis"], json!(1000), "{res}");
    assert_eq!(res["memory_limit_bytes"], json!(2u64 << 30), "{res}");
    // set_retry: failed twice, succeeded on the third attempt.
    assert_eq!(task(&run, "flaky")["attempt"], json!(3));
    assert_eq!(read_count(&markers, "attempts"), 3);
    assert_eq!(read_count(&markers, "runs-cached"), 1);
    assert_eq!(read_count(&markers, "runs-uncached"), 1);

    // Second run: the cacheable task is a hit, the opted-out ones run again.
    let run = env.run_ok("task_config", &["-p", &m]);
    assert_eq!(task(&run, "stamp")["cached"], json!(true));
    assert_eq!(task(&run, "stamp-2")["cached"], json!(false));
    assert_eq!(task(&run, "flaky")["cached"], json!(false));
    assert_eq!(read_count(&markers, "runs-cached"), 1);
    assert_eq!(read_count(&markers, "runs-uncached"), 2);
    assert_eq!(read_count(&markers, "attempts"), 4);

    // --no-cache runs everything.
    let run = env.run_ok("task_config", &["-p", &m, "--no-cache"]);
    assert_eq!(task(&run, "stamp")["cached"], json!(false));
    assert_eq!(read_count(&markers, "runs-cached"), 2);
}

#[test]
fn a_cache_hit_never_returns_missing_artifacts() {
    let env = Env::new();
    std::fs::write(env.work.path().join("import_me.txt"), "x\n").unwrap();
    let first = env.run_ok("artifacts", &[]);
    let again = env.run_ok("artifacts", &[]);
    assert_eq!(task(&again, "make-data")["cached"], json!(true));
    // Delete make-data's dataset: the next run must produce it again.
    let uri = task(&first, "make-data")["outputs"]["artifacts"]["data"][0]["uri"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::remove_file(&uri).unwrap();
    let third = env.run_ok("artifacts", &[]);
    assert_eq!(task(&third, "make-data")["cached"], json!(false));
    let new_uri = task(&third, "make-data")["outputs"]["artifacts"]["data"][0]["uri"]
        .as_str()
        .unwrap();
    assert!(Path::new(new_uri).exists());
    // As in KFP, an input artifact's identity is part of the key: the
    // downstream task of a re-executed producer runs again too.
    assert_eq!(task(&third, "train")["cached"], json!(false));
    let fourth = env.run_ok("artifacts", &[]);
    assert_eq!(task(&fourth, "train")["cached"], json!(true));
    // Changing a file that a cached result points at also invalidates it.
    let model = task(&fourth, "train")["outputs"]["artifacts"]["model"][0]["uri"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(&model, "tampered").unwrap();
    let fifth = env.run_ok("artifacts", &[]);
    assert_eq!(task(&fifth, "train")["cached"], json!(false));
    let fresh = task(&fifth, "train")["outputs"]["artifacts"]["model"][0]["uri"]
        .as_str()
        .unwrap();
    assert_ne!(
        fresh, model,
        "the new model lives in the new run's directory"
    );
    assert_eq!(
        std::fs::read_to_string(fresh).unwrap(),
        r#"{"threshold": 0.5}"#
    );
}

/// Processes whose working directory is under `dir` (the tasks of a data directory).
fn processes_under(dir: &Path) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cwd) = std::fs::read_link(e.path().join("cwd"))
            && cwd.starts_with(dir)
        {
            out.push(pid);
        }
    }
    out
}

/// Starts `oxflow run slow.yaml` whose second task sleeps 120 s, and
/// returns once that task is running (with the marker directory).
fn start_slow_run(env: &Env) -> (std::process::Child, std::path::PathBuf) {
    let markers = env.work.path().join("markers");
    std::fs::create_dir_all(&markers).unwrap();
    std::fs::write(markers.join("sleep-second"), "120").unwrap();
    let p = pipeline("slow");
    let child = env
        .cmd()
        .args([
            "run",
            p.to_str().unwrap(),
            "-p",
            &format!("marker_dir={}", markers.display()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the second task to start", Duration::from_secs(60), || {
        markers.join("started-second").exists()
    });
    (child, markers)
}

#[test]
fn killing_oxflow_mid_run_loses_nothing_and_the_run_resumes() {
    let env = Env::new();
    let (mut child, markers) = start_slow_run(&env);
    let home = env.home.path().canonicalize().unwrap();
    assert!(
        !processes_under(&home).is_empty(),
        "the task runs with its cwd in the data directory"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // The task process dies with Oxflow: no orphan keeps running.
    wait_for("the orphaned task to die", Duration::from_secs(10), || {
        processes_under(&home).is_empty()
    });

    // The next start finds the run intact and not stuck in RUNNING.
    let out = env.oxflow(&["runs", "list", "-o", "json"]);
    assert!(out.status.success());
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let run_id = runs[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(runs[0]["state"], "PENDING", "{runs}");
    let out = env.oxflow(&["runs", "get", &run_id, "-o", "json"]);
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(task(&run, "sleeper")["state"], "SUCCEEDED");
    assert_eq!(task(&run, "sleeper-2")["state"], "FAILED");
    assert!(
        task(&run, "sleeper-2")["error"]
            .as_str()
            .unwrap()
            .starts_with("interrupted")
    );

    // Resume: finished work is kept, the interrupted task runs again.
    std::fs::write(markers.join("sleep-second"), "0").unwrap();
    let out = env.oxflow(&["runs", "resume", &run_id[..13]]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env.oxflow(&["runs", "get", &run_id, "-o", "json"]);
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["state"], "SUCCEEDED");
    assert_eq!(run["outputs"]["Output"], "third");
    assert_eq!(
        read_count(&markers, "started-first"),
        1,
        "a succeeded task is not re-run"
    );
    assert_eq!(read_count(&markers, "started-second"), 2);
    assert_eq!(read_count(&markers, "started-third"), 1);
    assert_eq!(task(&run, "sleeper-2")["attempt"], json!(2));
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_input_names_the_field_and_writes_nothing() {
    let env = Env::new();
    let dir = env.work.path();
    let cases: Vec<(&str, String, Vec<&str>, Vec<&str>)> = vec![
        (
            "malformed.yaml",
            "root: [unclosed\n  dag: {\n".into(),
            vec![],
            vec!["not valid YAML", "line"],
        ),
        (
            "version.yaml",
            std::fs::read_to_string(pipeline("params"))
                .unwrap()
                .replace("schemaVersion: 2.1.0", "schemaVersion: 3.0.0"),
            vec![],
            vec!["schemaVersion", "unsupported schema version"],
        ),
        (
            "unknown-ref.yaml",
            std::fs::read_to_string(pipeline("params"))
                .unwrap()
                .replace("name: comp-stats", "name: comp-nope"),
            vec![],
            vec!["root.dag.tasks.stats.componentRef.name", "comp-nope"],
        ),
        (
            "cycle.yaml",
            std::fs::read_to_string(pipeline("seq10"))
                .unwrap()
                .replacen(
                    "      inc:\n",
                    "      inc:\n        dependentTasks:\n        - inc-10\n",
                    1,
                ),
            vec![],
            vec!["root.dag.tasks", "dependency cycle"],
        ),
        (
            "wrong-type.yaml",
            std::fs::read_to_string(pipeline("params")).unwrap(),
            vec!["-p", "a=abc"],
            vec!["root.inputDefinitions.parameters.a", "expected an integer"],
        ),
        (
            "missing.yaml",
            std::fs::read_to_string(pipeline("task_config")).unwrap(),
            vec![],
            vec![
                "root.inputDefinitions.parameters.marker_dir",
                "required parameter is missing",
            ],
        ),
        (
            "unknown-param.yaml",
            std::fs::read_to_string(pipeline("params")).unwrap(),
            vec!["-p", "epochs=3"],
            vec!["\"epochs\"", "no such parameter"],
        ),
    ];
    for (file, text, extra, expect) in cases {
        let path = dir.join(file);
        std::fs::write(&path, text).unwrap();
        let mut args = vec!["run", path.to_str().unwrap()];
        args.extend(extra);
        let out = env.oxflow(&args);
        assert_eq!(out.status.code(), Some(2), "{file}: {}", stderr_of(&out));
        let err = stderr_of(&out);
        for e in expect {
            assert!(err.contains(e), "{file}: {err:?} should mention {e:?}");
        }
        assert!(!err.contains("panicked"), "{file}: {err}");
        let v = env.oxflow(&["validate", path.to_str().unwrap()]);
        if file != "wrong-type.yaml" && file != "missing.yaml" && file != "unknown-param.yaml" {
            assert_eq!(v.status.code(), Some(2), "validate {file}");
        }
    }
    // Nothing was half-written.
    let out = env.oxflow(&["runs", "list", "-o", "json"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        json!([])
    );
    let v = env.oxflow(&["validate", pipeline("loops").to_str().unwrap()]);
    assert!(v.status.success(), "{}", stderr_of(&v));
}

#[test]
fn kubernetes_secrets_and_volumes() {
    let env = Env::new();
    // Without the secret the task fails with a message saying how to create it.
    let (code, run) = env.run("k8s_platform", &[]);
    assert_eq!(code, 1);
    let err = task(&run, "use-secret")["error"].as_str().unwrap();
    assert!(err.contains("oxflow secrets create db-creds"), "{err}");

    for args in [
        [
            "secrets",
            "create",
            "db-creds",
            "--from-literal",
            "password=s3cret",
        ],
        ["secrets", "create", "tls", "--from-literal", "crt=CERT"],
    ] {
        let out = env.oxflow(&args);
        assert!(out.status.success(), "{}", stderr_of(&out));
    }
    let run = env.run_ok("k8s_platform", &[]);
    assert_eq!(run["outputs"]["Output"], "s3cret|['crt']|CERT|");
    assert_eq!(
        out_param(&run, "read-volume", "Output"),
        "data",
        "the volume is shared between tasks"
    );
    let pvc = out_param(&run, "createpvc", "name").as_str().unwrap();
    assert!(pvc.ends_with("-scratch"), "{pvc}");
    assert!(
        !env.home.path().join("volumes/default").join(pvc).exists(),
        "DeletePVC removed the volume"
    );
    // Secrets are per namespace.
    let out = env.oxflow(&["-n", "team-b", "secrets", "list"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
}

#[test]
fn runs_and_tasks_are_stored_in_postgres() {
    common::with_postgres_schema("engine", |database| {
        let mut env = Env::new();
        env.database = Some(database);
        let run = env.run_ok("params", &["-p", "a=1"]);
        assert_eq!(
            run["outputs"]["Output"],
            "DEMO:TRUE:6:[('K', 1)]:1.5 n=3 mean=2.0 labels=['x1', 'x2', 'x3']"
        );
        let out = env.oxflow(&["runs", "get", run["id"].as_str().unwrap(), "-o", "json"]);
        let again: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(again["tasks"].as_array().unwrap().len(), 4);
        assert!(
            !env.home.path().join("oxflow.db").exists(),
            "no SQLite file when PostgreSQL is used"
        );
    });
}

#[test]
fn independent_tasks_run_in_parallel_and_loops_respect_parallelism() {
    let env = Env::new();
    let markers = env.work.path().join("markers");
    std::fs::create_dir_all(&markers).unwrap();
    // `rendezvous` a and b each wait for the other: they pass only if they run at once.
    let run = env.run_ok(
        "concurrency",
        &[
            "-p",
            &format!("marker_dir={}", markers.display()),
            "--parallelism",
            "4",
        ],
    );
    // ParallelFor(parallelism=1): never more than one iteration at a time.
    assert_eq!(run["outputs"]["Output"], json!(1));
    assert_eq!(out_param(&run, "rendezvous", "Output"), "a");
    assert_eq!(out_param(&run, "rendezvous-2", "Output"), "b");
}

#[test]
fn memory_limits_and_timeouts_are_enforced_and_recorded() {
    let env = Env::new();
    let (code, run) = env.run("limits", &[]);
    assert_eq!(code, 1);
    let hog = task(&run, "hog");
    assert_eq!(hog["state"], "FAILED");
    assert_eq!(
        hog["inputs"]["resources"]["memory_limit_bytes"],
        json!(1u64 << 30)
    );
    assert_eq!(
        hog["inputs"]["enforced_limits"],
        json!(["memory_limit_bytes"])
    );
    let out = env.oxflow(&["logs", run["id"].as_str().unwrap(), "hog"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("MemoryError"));
    let nap = task(&run, "nap");
    assert_eq!(nap["state"], "FAILED");
    assert!(
        nap["error"]
            .as_str()
            .unwrap()
            .starts_with("timed out after 1s"),
        "{}",
        nap["error"]
    );
}

#[test]
fn platform_settings_for_kubernetes_are_kept() {
    let env = Env::new();
    for args in [
        [
            "secrets",
            "create",
            "db-creds",
            "--from-literal",
            "password=pw",
        ],
        ["secrets", "create", "tls", "--from-literal", "crt=C"],
    ] {
        assert!(env.oxflow(&args).status.success());
    }
    let run = env.run_ok("k8s_platform", &[]);
    let k8s = &task(&run, "use-secret")["inputs"]["kubernetes"];
    assert_eq!(
        k8s["nodeSelector"]["labels"]["cloud.google.com/gke-accelerator"],
        "nvidia-tesla-t4"
    );
    assert_eq!(k8s["tolerations"][0]["key"], "nvidia.com/gpu");
    assert_eq!(k8s["podMetadata"]["labels"]["team"], "ml");
}

#[test]
fn kfp_is_installed_into_a_cached_env_when_python_lacks_it() {
    let env = Env::new();
    let bare = env.work.path().join("bare");
    let out = std::process::Command::new("python3")
        .args(["-m", "venv"])
        .arg(&bare)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bare_python = bare.join("bin/python");
    let p = pipeline("task_config");
    let markers = env.work.path().join("m");
    std::fs::create_dir_all(&markers).unwrap();
    let out = env.oxflow(&[
        "run",
        p.to_str().unwrap(),
        "--python",
        bare_python.to_str().unwrap(),
        "-p",
        &format!("marker_dir={}", markers.display()),
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["outputs"]["Output"], "hello");
    // The bare interpreter itself was not changed.
    let check = std::process::Command::new(&bare_python)
        .args(["-c", "import kfp"])
        .output()
        .unwrap();
    assert!(
        !check.status.success(),
        "kfp must not be installed into the user's interpreter"
    );
    let envs: Vec<_> = std::fs::read_dir(env.home.path().join("envs"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join(".ready").exists())
        .collect();
    assert_eq!(envs.len(), 2, "one env with kfp, one with kfp and six");
}

#[test]
fn ctrl_c_cancels_the_run_and_its_tasks() {
    let env = Env::new();
    let (mut child, markers) = start_slow_run(&env);
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(1), "a cancelled run is not a success");
    let home = env.home.path().canonicalize().unwrap();
    assert!(
        processes_under(&home).is_empty(),
        "cancelled tasks are killed before oxflow exits"
    );
    let out = env.oxflow(&["runs", "list", "-o", "json"]);
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs[0]["state"], "CANCELED");
    let out = env.oxflow(&["runs", "get", runs[0]["id"].as_str().unwrap(), "-o", "json"]);
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(task(&run, "sleeper")["state"], "SUCCEEDED");
    assert_eq!(task(&run, "sleeper-2")["state"], "CANCELED");
    assert_eq!(task(&run, "sleeper-3")["state"], "CANCELED");
    assert_eq!(read_count(&markers, "started-third"), 0);
}
