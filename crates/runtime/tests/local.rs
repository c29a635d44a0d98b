//! The local process runtime, driven through the `Runtime` trait with real processes.

mod common;

use std::time::Duration;

use common::{Tmp, alive, assert_gone, field, pid_from_file};
use oxflow_core::{Mount, Resources};
use oxflow_runtime::{CpuEnforcement, Outcome, Runtime, RuntimeError};
use tokio_util::sync::CancellationToken;

async fn run(rt: &dyn Runtime, w: &oxflow_core::Workload) -> Outcome {
    rt.run(w, CancellationToken::new()).await.unwrap()
}

#[tokio::test]
async fn exit_codes_and_signals() {
    let t = Tmp::new();
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

#[tokio::test]
async fn both_streams_are_appended_to_one_log() {
    let t = Tmp::new();
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

#[tokio::test]
async fn environment_is_inherited_with_overrides() {
    let t = Tmp::new();
    let rt = t.runtime(false);
    let mut w = t.sh("env", r#"echo "$OX_A|$HOME|${PATH:+inherited}""#);
    w.env.insert("OX_A".into(), "a value".into());
    w.env.insert("HOME".into(), "/custom/home".into());
    run(&rt, &w).await;
    assert_eq!(t.log(&w), "a value|/custom/home|inherited\n");
}

#[tokio::test]
async fn working_directory_given_or_scratch() {
    let t = Tmp::new();
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

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let t = Tmp::new();
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
}

#[tokio::test]
async fn timeout_escalates_to_sigkill() {
    let t = Tmp::new();
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

#[tokio::test]
async fn cancellation_kills_the_whole_process_group() {
    let t = Tmp::new();
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

#[tokio::test]
async fn leftover_background_processes_are_stopped_when_the_workload_exits() {
    let t = Tmp::new();
    let rt = t.runtime(false);
    let o = run(
        &rt,
        &t.sh("leftover", "sleep 1000 & echo $! > bg.pid; exit 0"),
    )
    .await;
    assert!(o.success());
    assert_gone(pid_from_file(t.path().join("bg.pid")).await).await;
}

#[tokio::test]
async fn dropping_the_run_future_kills_the_group() {
    let t = Tmp::new();
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

#[tokio::test]
async fn memory_limit_is_enforced() {
    let t = Tmp::new();
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

#[tokio::test]
async fn cpu_limit_is_enforced_where_cgroups_allow() {
    let t = Tmp::new();
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

#[tokio::test]
async fn bind_mounts_in_a_private_namespace() {
    let t = Tmp::new();
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

#[tokio::test]
async fn errors_name_what_is_wrong() {
    let t = Tmp::new();
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_runs_keep_their_own_output() {
    let t = Tmp::new();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_survive_the_thread_that_started_them() {
    // PR_SET_PDEATHSIG follows the *thread* that forked the child. Start the
    // workload from a short-lived thread, let the thread end, and check that
    // the workload keeps running to a normal exit.
    let t = Tmp::new();
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
