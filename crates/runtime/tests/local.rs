//! The local process runtime, driven through the `Runtime` trait with real processes.

#[macro_use]
mod common;

use std::time::Duration;

use common::{Spawn, Tmp, alive, assert_gone, eventually, field, pid_from_file, running};
use oxflow_core::{Mount, Resources, Workload};
use oxflow_runtime::{CpuEnforcement, LocalConfig, LocalRuntime, Outcome, Runtime, RuntimeError};
use tokio_util::sync::CancellationToken;

async fn run(rt: &dyn Runtime, w: &oxflow_core::Workload) -> Outcome {
    rt.run(w, CancellationToken::new()).await.unwrap()
}

async fn exit_codes_and_signals(spawn: Spawn) {
    let t = Tmp::with(spawn);
    let rt = t.runtime(false);
    let check = async |script: &str, code: Option<i32>, signal: Option<i32>, text: &str| {
        let o = run(&rt, &t.sh("status", script)).await;
        assert_eq!((o.exit_code, o.signal), (code, signal), "{script}");
        assert_eq!(o.describe(), text, "{script}");
        assert_eq!(o.success(), code == Some(0), "{script}");
        assert!(!o.timed_out && !o.canceled && !o.warm);
    };
    check("exit 0", Some(0), None, "exit code 0").await;
    check("exit 3", Some(3), None, "exit code 3").await;
    check("kill -9 $$", None, Some(9), "killed by signal 9").await;
    check("kill -TERM $$", None, Some(15), "killed by signal 15").await;
    assert_eq!(rt.name(), "local");
}

async fn both_streams_are_appended_to_one_log(spawn: Spawn) {
    let t = Tmp::with(spawn);
    let rt = t.runtime(false);
    let mut w = t.sh("streams", "echo out; echo err >&2; echo out2");
    w.log_path = t.path().join("deep/er/streams.log");
    run(&rt, &w).await;
    assert_eq!(t.log(&w), "out\nerr\nout2\n");
    run(&rt, &w).await;
    assert_eq!(
        t.log(&w),
        "out\nerr\nout2\n".repeat(2),
        "a second run appends"
    );
}

async fn environment_is_inherited_with_overrides(spawn: Spawn) {
    let t = Tmp::with(spawn);
    let rt = t.runtime(false);
    let mut w = t.sh("env", r#"echo "$OX_A|$HOME|${PATH:+inherited}""#);
    w.env.insert("OX_A".into(), "a value".into());
    w.env.insert("HOME".into(), "/custom/home".into());
    run(&rt, &w).await;
    assert_eq!(t.log(&w), "a value|/custom/home|inherited\n");
}

async fn working_directory_given_or_scratch(spawn: Spawn) {
    let t = Tmp::with(spawn);
    let rt = t.runtime(false);
    let mut w = t.sh("cwd", "pwd");
    let given = t.path().join("work/dir");
    w.working_dir = Some(given.clone());
    run(&rt, &w).await;
    assert_eq!(
        t.log(&w).trim(),
        given.to_str().unwrap(),
        "a missing working dir is created"
    );

    let mut w = t.sh("scratch", "pwd; touch left-behind");
    w.working_dir = None;
    let o = run(&rt, &w).await;
    assert!(o.success());
    let scratch = std::path::PathBuf::from(t.log(&w).trim());
    assert!(
        scratch.starts_with(t.path().join("scratch")),
        "{}",
        scratch.display()
    );
    assert!(
        !scratch.exists(),
        "the scratch directory is removed afterwards"
    );
}

const TWO_SLEEPS: &str = "sleep 1000 & echo $! > bg.pid; echo $$ > sh.pid; wait";

async fn timeout_kills_the_whole_process_group(spawn: Spawn) {
    let t = Tmp::with(spawn);
    let rt = t.runtime(false);
    let mut w = t.sh("timeout", TWO_SLEEPS);
    w.timeout = Some(Duration::from_millis(300));
    let o = run(&rt, &w).await;
    assert!(o.timed_out && !o.canceled && !o.success());
    assert_eq!(o.signal, Some(15), "SIGTERM is enough for sh");
    assert!(
        o.duration >= Duration::from_millis(300) && o.duration < Duration::from_secs(5),
        "{:?}",
        o.duration
    );
    assert!(
        o.describe().starts_with("timed out after"),
        "{}",
        o.describe()
    );
    for file in ["sh.pid", "bg.pid"] {
        assert_gone(pid_from_file(t.path().join(file)).await).await;
    }

    // A deadline that passes while the process is still being prepared.
    let mut w = t.sh("instant", "sleep 1000");
    w.timeout = Some(Duration::ZERO);
    let o = run(&rt, &w).await;
    assert!(o.timed_out && o.signal.is_some(), "{o:?}");
}

async fn timeout_escalates_to_sigkill(spawn: Spawn) {
    let t = Tmp::with(spawn);
    let rt = t.runtime(false);
    let mut w = t.sh(
        "stubborn",
        "trap '' TERM; echo $$ > sh.pid; while :; do sleep 0.05; done",
    );
    w.timeout = Some(Duration::from_millis(200));
    let o = run(&rt, &w).await;
    assert!(o.timed_out);
    assert_eq!(
        o.signal,
        Some(9),
        "ignores SIGTERM, so it gets SIGKILL after the grace period"
    );
    assert_gone(pid_from_file(t.path().join("sh.pid")).await).await;
}

async fn cancellation_kills_the_whole_process_group(spawn: Spawn) {
    let t = Tmp::with(spawn);
    let rt = t.runtime(false);
    let w = t.sh("cancel", TWO_SLEEPS);
    let cancel = CancellationToken::new();
    let task = {
        let (rt, w, cancel) = (rt.clone(), w.clone(), cancel.clone());
        tokio::spawn(async move { rt.run(&w, cancel).await })
    };
    let sh = pid_from_file(t.path().join("sh.pid")).await;
    let bg = pid_from_file(t.path().join("bg.pid")).await;
    assert!(alive(sh) && alive(bg));
    cancel.cancel();
    let o = task.await.unwrap().unwrap();
    assert!(o.canceled && !o.timed_out && !o.success());
    assert_eq!(o.describe(), "canceled");
    assert_gone(sh).await;
    assert_gone(bg).await;

    // Canceled before it starts: nothing runs.
    let w = t.sh("never", "touch ran");
    let cancel = CancellationToken::new();
    cancel.cancel();
    let o = rt.run(&w, cancel).await.unwrap();
    assert!(o.canceled);
    assert!(!t.path().join("ran").exists());
}

async fn leftover_background_processes_are_stopped_when_the_workload_exits(spawn: Spawn) {
    let t = Tmp::with(spawn);
    let rt = t.runtime(false);
    let o = run(
        &rt,
        &t.sh("leftover", "sleep 1000 & echo $! > bg.pid; exit 0"),
    )
    .await;
    assert!(o.success());
    assert_gone(pid_from_file(t.path().join("bg.pid")).await).await;
}

async fn dropping_the_run_future_kills_the_group(spawn: Spawn) {
    let t = Tmp::with(spawn);
    let rt = t.runtime(false);
    let w = t.sh("dropped", TWO_SLEEPS);
    let task = {
        let (rt, w) = (rt.clone(), w.clone());
        tokio::spawn(async move { rt.run(&w, CancellationToken::new()).await })
    };
    let sh = pid_from_file(t.path().join("sh.pid")).await;
    let bg = pid_from_file(t.path().join("bg.pid")).await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_gone(sh).await;
    assert_gone(bg).await;
}

const ALLOCATE_1GIB: &str = "b = bytearray(1 << 30); print('allocated', len(b))";

async fn memory_limit_is_enforced(spawn: Spawn) {
    let t = Tmp::with(spawn);
    let rt = t.runtime(false);
    let mut w = t.workload("alloc", "python3", &["-c", ALLOCATE_1GIB]);
    w.resources = Resources {
        memory_limit_bytes: Some(200 << 20),
        ..Default::default()
    };
    assert!(
        rt.enforced_limits(&w.resources)
            .contains(&"memory_limit_bytes")
    );
    let o = run(&rt, &w).await;
    assert_eq!(o.exit_code, Some(1), "{}", t.log(&w));
    assert!(t.log(&w).contains("MemoryError"), "{}", t.log(&w));

    let mut w = t.workload("alloc-unlimited", "python3", &["-c", ALLOCATE_1GIB]);
    w.resources = Resources::default();
    let o = run(&rt, &w).await;
    assert!(
        o.success(),
        "the same program without the limit succeeds: {}",
        t.log(&w)
    );
}

async fn cpu_limit_is_enforced_where_cgroups_allow(spawn: Spawn) {
    let t = Tmp::with(spawn);
    let rt = t.runtime(false);
    let resources = Resources {
        cpu_limit_millis: Some(200),
        ..Default::default()
    };
    let enforced = rt.enforced_limits(&resources).contains(&"cpu_limit_millis");
    assert_eq!(enforced, rt.cpu_enforcement() != CpuEnforcement::None);
    if !enforced {
        return;
    }
    // Spin for one second of wall time; at 200 millicores that is ~0.2 s of CPU.
    let script = "import os, time\n\
                  t = time.time()\n\
                  while time.time() - t < 1.0: pass\n\
                  c = os.times()\n\
                  print('cpu=%.3f' % (c.user + c.system))\n\
                  print('cgroup=' + open('/proc/self/cgroup').read().replace(chr(10), ' '))\n";
    let mut w = t.workload("cpu", "python3", &["-c", script]);
    w.resources = resources;
    let o = run(&rt, &w).await;
    assert!(o.success(), "{}", t.log(&w));
    let log = t.log(&w);
    assert!(field(&log, "cgroup").unwrap().contains("oxflow-"), "{log}");
    let cpu: f64 = field(&log, "cpu").unwrap().parse().unwrap();
    assert!(cpu < 0.6, "throttled to 200m, but used {cpu}s of CPU in 1s");
}

async fn bind_mounts_in_a_private_namespace(spawn: Spawn) {
    let t = Tmp::with(spawn);
    let rt = t.runtime(false);
    let source = t.path().join("source");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("hello.txt"), "hello through the mount\n").unwrap();
    let target = t.path().join("missing/target");

    let script = "cat target/hello.txt; if touch target/new 2>/dev/null; then echo writable; else echo read-only; fi";
    let mut w = t.sh("mount-ro", &format!("cd missing && {script}"));
    w.mounts = vec![Mount {
        source: source.clone(),
        target: target.clone(),
        read_only: true,
    }];
    let result = rt.run(&w, CancellationToken::new()).await;
    if !nix::unistd::geteuid().is_root() {
        // Unprivileged: either user namespaces work, or the error says what is missing.
        if let Err(e) = &result {
            assert!(matches!(e, RuntimeError::MountNamespace { .. }), "{e}");
            assert!(e.to_string().contains("user namespaces"), "{e}");
            return;
        }
    }
    assert!(result.unwrap().success(), "{}", t.log(&w));
    assert_eq!(t.log(&w), "hello through the mount\nread-only\n");
    assert!(
        target.is_dir(),
        "the missing target was created on the host"
    );
    assert_eq!(
        std::fs::read_dir(&target).unwrap().count(),
        0,
        "the mount is not visible on the host"
    );

    let mut w = t.sh("mount-rw", &format!("cd missing && {script} && pwd"));
    w.mounts = vec![Mount {
        source: source.clone(),
        target: target.clone(),
        read_only: false,
    }];
    assert!(run(&rt, &w).await.success());
    assert!(t.log(&w).contains("writable"));
    assert!(source.join("new").exists(), "writes go to the source");

    // A working directory inside the target sees the mounted content.
    let mut w = t.sh("mount-cwd", "cat hello.txt");
    w.working_dir = Some(target.clone());
    w.mounts = vec![Mount {
        source: source.clone(),
        target: target.clone(),
        read_only: true,
    }];
    assert!(run(&rt, &w).await.success(), "{}", t.log(&w));
    assert_eq!(t.log(&w), "hello through the mount\n");

    // source == target: nothing to mount, runs normally.
    let mut w = t.sh("mount-same", "cat source/hello.txt");
    w.mounts = vec![Mount {
        source: source.clone(),
        target: source.clone(),
        read_only: true,
    }];
    assert!(run(&rt, &w).await.success());
}

async fn errors_name_what_is_wrong(spawn: Spawn) {
    let t = Tmp::with(spawn);
    let rt = t.runtime(false);

    let w = t.workload("missing", "oxflow-no-such-program", &[]);
    let e = rt.run(&w, CancellationToken::new()).await.unwrap_err();
    assert!(matches!(e, RuntimeError::Spawn { .. }), "{e}");
    assert!(e.to_string().contains("oxflow-no-such-program"), "{e}");

    let mut w = t.sh("log", "true");
    w.log_path = "/dev/null/cannot/exist.log".into();
    let e = rt.run(&w, CancellationToken::new()).await.unwrap_err();
    assert!(matches!(e, RuntimeError::LogFile { .. }), "{e}");
    assert!(e.to_string().contains("/dev/null/cannot/exist.log"), "{e}");

    let mut w = t.sh("mount-source", "true");
    w.mounts = vec![Mount {
        source: t.path().join("no-source"),
        target: t.path().join("t"),
        read_only: true,
    }];
    let e = rt.run(&w, CancellationToken::new()).await.unwrap_err();
    assert!(matches!(e, RuntimeError::MountPath { .. }), "{e}");
    assert!(e.to_string().contains("no-source"), "{e}");

    // A directory cannot be bound onto a file: the child reports which step
    // of which mount failed.
    let dir = t.path().join("a-dir");
    std::fs::create_dir(&dir).unwrap();
    let file = t.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let mut w = t.sh("mount-onto-file", "touch ran");
    w.mounts = vec![Mount {
        source: dir,
        target: file,
        read_only: false,
    }];
    let e = rt.run(&w, CancellationToken::new()).await.unwrap_err();
    let unprivileged = !nix::unistd::geteuid().is_root();
    if !(unprivileged && matches!(e, RuntimeError::MountNamespace { .. })) {
        assert!(
            matches!(
                e,
                RuntimeError::Mount {
                    read_only_step: false,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("a-file"), "{e}");
        assert!(e.to_string().contains("ENOTDIR"), "{e}");
    }
    assert!(!t.path().join("ran").exists(), "the program never started");
}

/// What a program inherits beyond its arguments and environment: the shell's
/// open descriptors, then its ignored and blocked signals (with builtins
/// only: dash blocks signals and holds pipes while it starts a command).
const INHERITED: &str = r#"for f in /proc/$$/fd/*; do printf '%s ' "${f##*/}"; done; echo
while read -r key value; do case $key in SigIgn:|SigBlk:) echo "$key $value";; esac; done < /proc/$$/status"#;

async fn each_workload_leads_its_own_session(spawn: Spawn) {
    let t = Tmp::with(spawn);
    let rt = t.runtime(false);
    let w = t.sh(
        "session",
        &format!("cat /proc/$$/stat; readlink /proc/$$/fd/0; {INHERITED}"),
    );
    assert!(run(&rt, &w).await.success(), "{}", t.log(&w));
    let log = t.log(&w);
    let (stat, rest) = log.split_once('\n').unwrap();
    let fields: Vec<i64> = stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .skip(1)
        .take(3)
        .map(|f| f.parse().unwrap())
        .collect();
    let pid: i64 = stat.split(' ').next().unwrap().parse().unwrap();
    let (ppid, pgrp, session) = (fields[0], fields[1], fields[2]);
    assert_eq!(ppid, i64::from(std::process::id()), "Oxflow is the parent");
    assert_eq!(
        (pgrp, session),
        (pid, pid),
        "its own group and session: {stat}"
    );
    let (stdin, inherited) = rest.split_once('\n').unwrap();
    assert_eq!(stdin, "/dev/null");
    let fds = inherited.lines().next().unwrap();
    for standard in ["0", "1", "2"] {
        assert!(fds.split(' ').any(|fd| fd == standard), "{fds}");
    }
    let sig_ign = inherited
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn: "))
        .map(|mask| u64::from_str_radix(mask.trim(), 16).unwrap());
    let sigpipe = 1 << (nix::libc::SIGPIPE - 1);
    assert_eq!(
        sig_ign.map(|mask| mask & sigpipe),
        Some(0),
        "SIGPIPE is not ignored"
    );
    // Nothing of the start leaks into the program: it inherits what a forked
    // program inherits (the standard descriptors and whatever the test
    // harness passed down; the same signal dispositions and mask).
    if spawn == Spawn::Shim {
        let forked = Tmp::with(Spawn::Fork);
        let w = forked.sh("inherited", INHERITED);
        assert!(run(&forked.runtime(false), &w).await.success());
        assert_eq!(forked.log(&w), inherited, "the same as the fork path");
    }
}

const PARENT_DEATH_DIR: &str = "OXFLOW_TEST_PARENT_DEATH_DIR";
const PARENT_DEATH_SPAWN: &str = "OXFLOW_TEST_PARENT_DEATH_SPAWN";

/// Not a test on its own: `workload_dies_with_oxflow` runs it in a process of
/// its own, as the Oxflow whose death the workload must not survive.
#[tokio::test]
async fn parent_death_helper() {
    let (Some(dir), Some(spawn)) = (
        std::env::var_os(PARENT_DEATH_DIR).map(std::path::PathBuf::from),
        std::env::var(PARENT_DEATH_SPAWN)
            .ok()
            .and_then(|s| Spawn::from_name(&s)),
    ) else {
        return;
    };
    let rt = LocalRuntime::new(LocalConfig {
        scratch_dir: dir.join("scratch"),
        spawn_shim: spawn.shim(),
        ..Default::default()
    });
    let w = Workload {
        name: "orphan".into(),
        program: "sh".into(),
        args: vec![
            "-c".into(),
            "echo $$ > workload.pid; exec sleep 1000".into(),
        ],
        working_dir: Some(dir.clone()),
        log_path: dir.join("orphan.log"),
        ..Default::default()
    };
    let o = run(&rt, &w).await;
    panic!("the workload should have been killed with its parent first: {o:?}");
}

async fn workload_dies_with_oxflow(spawn: Spawn) {
    let t = Tmp::with(spawn);
    let mut oxflow = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "parent_death_helper", "--nocapture"])
        .env(PARENT_DEATH_DIR, t.path())
        .env(PARENT_DEATH_SPAWN, spawn.name())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let workload = pid_from_file(t.path().join("workload.pid")).await;
    assert!(running(workload));
    oxflow.kill().unwrap();
    oxflow.wait().unwrap();
    eventually(
        "the workload to die with its parent",
        Duration::from_secs(10),
        || (!running(workload)).then_some(()),
    )
    .await;
}

#[tokio::test]
async fn a_shim_that_does_not_work_is_a_clear_error() {
    let t = Tmp::new();
    let with_shim = |shim: std::path::PathBuf| {
        LocalRuntime::new(LocalConfig {
            scratch_dir: t.path().join("scratch"),
            spawn_shim: Some(shim),
            ..Default::default()
        })
    };
    let w = t.sh("shimmed", "touch ran");

    let rt = with_shim(t.path().join("no-such-shim"));
    let e = rt.run(&w, CancellationToken::new()).await.unwrap_err();
    assert!(matches!(e, RuntimeError::SpawnShim { .. }), "{e}");
    assert!(e.to_string().contains("no-such-shim"), "{e}");
    assert!(e.to_string().contains("run_if_requested"), "{e}");

    // This test binary is no shim (its main does not call run_if_requested):
    // the runtime forks instead of starting a second test run per workload.
    let rt = with_shim("/proc/self/exe".into());
    let o = rt.run(&w, CancellationToken::new()).await.unwrap();
    assert!(o.success() && t.path().join("ran").exists(), "{o:?}");
    std::fs::remove_file(t.path().join("ran")).unwrap();

    // `true` ignores the shim's arguments and exits without starting anything.
    let rt = with_shim(common::on_path("true"));
    let e = rt.run(&w, CancellationToken::new()).await.unwrap_err();
    assert!(matches!(e, RuntimeError::SpawnShim { .. }), "{e}");
    assert!(e.to_string().contains("did not report starting"), "{e}");
    assert!(!t.path().join("ran").exists());
}

async fn many_concurrent_runs_keep_their_own_output(spawn: Spawn) {
    let t = Tmp::with(spawn);
    let rt = t.runtime(false);
    let workloads: Vec<_> = (0..100)
        .map(|i| {
            t.sh(
                &format!("many-{i}"),
                &format!("echo run-{i}; exit {}", i % 3),
            )
        })
        .collect();
    let outcomes = futures::future::join_all(
        workloads
            .iter()
            .map(|w| rt.run(w, CancellationToken::new())),
    )
    .await;
    for (i, (w, o)) in workloads.iter().zip(outcomes).enumerate() {
        assert_eq!(o.unwrap().exit_code, Some(i as i32 % 3));
        assert_eq!(t.log(w), format!("run-{i}\n"));
    }
}

async fn workloads_survive_the_thread_that_started_them(spawn: Spawn) {
    // PR_SET_PDEATHSIG follows the *thread* that forked the child. Start the
    // workload from a short-lived thread, let the thread end, and check that
    // the workload keeps running to a normal exit.
    let t = Tmp::with(spawn);
    let rt = t.runtime(false);
    let w = t.sh(
        "thread",
        "echo $$ > sh.pid; while [ ! -e go ]; do sleep 0.01; done; echo done",
    );
    let handle = tokio::runtime::Handle::current();
    let pid_file = t.path().join("sh.pid");
    let mut run = {
        let (rt, w) = (rt.clone(), w.clone());
        Box::pin(async move { rt.run(&w, CancellationToken::new()).await })
    };
    let mut run = std::thread::spawn(move || {
        handle.block_on(async {
            tokio::select! {
                _ = &mut run => panic!("ended early"),
                _ = pid_from_file(pid_file) => {}
            }
        });
        run
    })
    .join()
    .unwrap();
    let sh = pid_from_file(t.path().join("sh.pid")).await;
    std::fs::write(t.path().join("go"), "").unwrap();
    let o = (&mut run).await.unwrap();
    assert!(o.success(), "{o:?}: {}", t.log(&w));
    assert!(t.log(&w).contains("done"));
    assert_gone(sh).await;
}

for_each_spawn_strategy! {
    #[tokio::test] exit_codes_and_signals,
    #[tokio::test] both_streams_are_appended_to_one_log,
    #[tokio::test] environment_is_inherited_with_overrides,
    #[tokio::test] working_directory_given_or_scratch,
    #[tokio::test] timeout_kills_the_whole_process_group,
    #[tokio::test] timeout_escalates_to_sigkill,
    #[tokio::test] cancellation_kills_the_whole_process_group,
    #[tokio::test] leftover_background_processes_are_stopped_when_the_workload_exits,
    #[tokio::test] dropping_the_run_future_kills_the_group,
    #[tokio::test] memory_limit_is_enforced,
    #[tokio::test] cpu_limit_is_enforced_where_cgroups_allow,
    #[tokio::test] bind_mounts_in_a_private_namespace,
    #[tokio::test] errors_name_what_is_wrong,
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)] many_concurrent_runs_keep_their_own_output,
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)] workloads_survive_the_thread_that_started_them,
    #[tokio::test] workload_dies_with_oxflow,
    #[tokio::test] each_workload_leads_its_own_session,
}
