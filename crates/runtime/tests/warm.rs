//! The warm Python executor (fork server), driven through the `Runtime` trait
//! with the `python3` on PATH.

#[macro_use]
mod common;

use std::{collections::BTreeSet, time::Duration};

use common::{Spawn, Tmp, alive, assert_gone, eventually, field, running};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use oxflow_core::{Mount, Resources, Workload};
use oxflow_runtime::{CpuEnforcement, LocalRuntime, Runtime, RuntimeError};
use tokio_util::sync::CancellationToken;

/// A step module: reports what it sees, then does what its flags say.
const STEP: &str = r#"
import os, subprocess, sys, time

def main():
    args = sys.argv[1:]
    print("argv=" + " ".join(args))
    print("argv0=" + os.path.basename(sys.argv[0]))
    print("cwd=" + os.getcwd())
    print("env=" + os.environ.get("OX_STEP", "<unset>"))
    print("pid=%d" % os.getpid())
    print("ppid=%d" % os.getppid())
    print("name=" + __name__)
    print("path0=" + sys.path[0])
    print("to-stderr", file=sys.stderr)
    sys.stdout.flush()
    for a in args:
        if a.startswith("--exit="):
            sys.exit(int(a[len("--exit="):]))
        if a == "--exit-text":
            sys.exit("bad input")
        if a == "--crash":
            os.kill(os.getpid(), 9)
        if a == "--raise":
            raise ValueError("boom")
        if a == "--alloc":
            b = bytearray(1 << 30)
            print("allocated", len(b))
        if a == "--cgroup":
            print("cgroup=" + open("/proc/self/cgroup").read().replace("\n", " "))
        if a == "--spawn":
            child = subprocess.Popen(["sleep", "1000"])
            print("child=%d" % child.pid, flush=True)
        if a == "--sleep":
            print("sleeping", flush=True)
            time.sleep(1000)

if __name__ == "__main__":
    main()
"#;

struct Steps {
    t: Tmp,
    rt: LocalRuntime,
}

impl Steps {
    fn new(spawn: Spawn) -> Self {
        Self::with_preload(
            spawn,
            vec!["json".into(), "no_such_module_for_oxflow".into()],
        )
    }

    fn with_preload(spawn: Spawn, preload: Vec<String>) -> Self {
        let t = Tmp::with(spawn);
        std::fs::write(t.path().join("oxstep.py"), STEP).unwrap();
        let rt = t.runtime_with(true, preload);
        Steps { t, rt }
    }

    fn step(&self, name: &str, args: &[&str]) -> Workload {
        let mut all = vec!["-m", "oxstep"];
        all.extend_from_slice(args);
        let mut w = self.t.workload(name, "python3", &all);
        w.warm_python = true;
        w.env.insert("OX_STEP".into(), format!("{name}-env"));
        w
    }

    async fn run(&self, w: &Workload) -> oxflow_runtime::Outcome {
        self.rt.run(w, CancellationToken::new()).await.unwrap()
    }

    fn log(&self, w: &Workload) -> String {
        self.t.log(w)
    }

    fn pid(&self, w: &Workload, key: &str) -> i32 {
        field(&self.log(w), key)
            .unwrap_or_else(|| panic!("no {key} in {:?}", self.log(w)))
            .parse()
            .unwrap()
    }
}

async fn warm_step_sees_what_a_fresh_interpreter_sees(spawn: Spawn) {
    let s = Steps::new(spawn);
    let w = s.step("basic", &["a", "b c"]);
    let o = s.run(&w).await;
    assert!(o.success() && o.warm, "{o:?}: {}", s.log(&w));
    let log = s.log(&w);
    assert_eq!(field(&log, "argv"), Some("a b c"));
    assert_eq!(field(&log, "argv0"), Some("oxstep.py"));
    assert_eq!(field(&log, "cwd"), s.t.path().to_str());
    assert_eq!(field(&log, "env"), Some("basic-env"));
    assert_eq!(field(&log, "name"), Some("__main__"));
    assert_eq!(field(&log, "path0"), s.t.path().to_str());
    assert!(log.contains("to-stderr\n"));

    // The same step in a fresh interpreter logs the same lines (pids aside).
    let cold = Steps::new(spawn);
    let mut w = cold.step("basic", &["a", "b c"]);
    w.warm_python = false;
    w.working_dir = Some(s.t.path().to_path_buf());
    let o = cold.run(&w).await;
    assert!(o.success() && !o.warm);
    let strip = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|l| !l.starts_with("pid=") && !l.starts_with("ppid="))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(strip(&cold.log(&w)), strip(&log));
}

async fn warm_exit_codes_and_errors(spawn: Spawn) {
    let s = Steps::new(spawn);
    let check = async |args: &[&str], code: Option<i32>, signal: Option<i32>, in_log: &str| {
        let w = s.step("codes", args);
        let o = s.run(&w).await;
        assert!(o.warm);
        assert_eq!(
            (o.exit_code, o.signal),
            (code, signal),
            "{args:?}: {}",
            s.log(&w)
        );
        assert!(s.log(&w).contains(in_log), "{args:?}: {}", s.log(&w));
    };
    check(&[], Some(0), None, "to-stderr").await;
    check(&["--exit=3"], Some(3), None, "argv=--exit=3").await;
    check(&["--exit-text"], Some(1), None, "bad input").await;
    check(&["--raise"], Some(1), None, "ValueError: boom").await;
    check(&["--crash"], None, Some(9), "argv=--crash").await;

    let mut w = s.step("no-module", &[]);
    w.args = vec!["-m".into(), "no_such_module_for_oxflow".into()];
    let o = s.run(&w).await;
    assert_eq!(o.exit_code, Some(1));
    assert!(
        s.log(&w)
            .contains("No module named no_such_module_for_oxflow"),
        "{}",
        s.log(&w)
    );
}

async fn twenty_parallel_warm_steps_share_one_server(spawn: Spawn) {
    let s = Steps::new(spawn);
    let workloads: Vec<_> = (0..20)
        .map(|i| s.step(&format!("par-{i}"), &[&format!("token-{i}")]))
        .collect();
    let outcomes = futures::future::join_all(
        workloads
            .iter()
            .map(|w| s.rt.run(w, CancellationToken::new())),
    )
    .await;
    let mut servers = BTreeSet::new();
    for (i, (w, o)) in workloads.iter().zip(outcomes).enumerate() {
        let o = o.unwrap();
        assert!(o.success() && o.warm, "{o:?}");
        let log = s.log(w);
        assert_eq!(field(&log, "argv"), Some(format!("token-{i}").as_str()));
        assert_eq!(field(&log, "env"), Some(format!("par-{i}-env").as_str()));
        assert_eq!(
            log.matches("argv=").count(),
            1,
            "only its own output: {log}"
        );
        servers.insert(s.pid(w, "ppid"));
    }
    assert_eq!(servers.len(), 1, "one fork server per interpreter");
}

async fn a_crashing_step_does_not_take_the_server_down(spawn: Spawn) {
    let s = Steps::new(spawn);
    let first = s.step("first", &[]);
    s.run(&first).await;
    let crash = s.step("crash", &["--crash"]);
    assert_eq!(s.run(&crash).await.signal, Some(9));
    let after = s.step("after", &[]);
    assert!(s.run(&after).await.success());
    assert_eq!(s.pid(&first, "ppid"), s.pid(&after, "ppid"), "same server");
}

async fn a_killed_server_is_replaced_and_its_running_steps_fail_clearly(spawn: Spawn) {
    let s = Steps::new(spawn);
    let first = s.step("first", &[]);
    assert!(s.run(&first).await.warm);
    let server = s.pid(&first, "ppid");

    // A step in flight when the server dies fails with a clear error, and dies too.
    let sleeper = s.step("sleeper", &["--sleep"]);
    let task = {
        let (rt, w) = (s.rt.clone(), sleeper.clone());
        tokio::spawn(async move { rt.run(&w, CancellationToken::new()).await })
    };
    eventually("the sleeper to start", Duration::from_secs(20), || {
        s.log(&sleeper).contains("sleeping").then_some(())
    })
    .await;
    let step_pid = s.pid(&sleeper, "pid");
    kill(Pid::from_raw(server), Signal::SIGKILL).unwrap();
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, RuntimeError::WarmExecutor { .. }), "{err}");
    assert!(err.to_string().contains("exited"), "{err}");
    assert_gone(step_pid).await;

    // The next step gets a new server.
    let next = s.step("next", &[]);
    let o = s.run(&next).await;
    assert!(o.success() && o.warm, "{o:?}");
    assert_ne!(s.pid(&next, "ppid"), server);
}

async fn a_server_killed_between_steps_is_replaced_transparently(spawn: Spawn) {
    let s = Steps::new(spawn);
    let first = s.step("first", &[]);
    s.run(&first).await;
    let server = s.pid(&first, "ppid");
    kill(Pid::from_raw(server), Signal::SIGKILL).unwrap();
    // No waiting: the request may find the old server's pipe broken; it is
    // then sent to a new server.
    let next = s.step("next", &[]);
    let o = s.run(&next).await;
    assert!(o.success() && o.warm, "{o:?}: {}", s.log(&next));
    assert_ne!(s.pid(&next, "ppid"), server);
}

/// The server's live children, from /proc.
fn children_of(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

async fn a_spare_child_serves_the_next_step_and_a_dead_one_is_replaced(spawn: Spawn) {
    let s = Steps::new(spawn);
    let first = s.step("first", &[]);
    s.run(&first).await;
    let server = s.pid(&first, "ppid");
    // After a step, a spare child waits (prepared) for the next one.
    let spare = eventually("a spare child", Duration::from_secs(20), || {
        children_of(server).first().copied()
    })
    .await;
    let second = s.step("second", &[]);
    let o = s.run(&second).await;
    assert!(o.success() && o.warm, "{o:?}: {}", s.log(&second));
    assert_eq!(
        s.pid(&second, "pid"),
        spare,
        "the spare ran the second step"
    );
    // A spare that dies while waiting costs nothing but a fresh fork.
    let spare = eventually("another spare", Duration::from_secs(20), || {
        children_of(server).first().copied()
    })
    .await;
    kill(Pid::from_raw(spare), Signal::SIGKILL).unwrap();
    // Once the server has reaped it (a request racing the kill itself would
    // reach the dying spare, like one racing any crash).
    eventually(
        "the server to reap the spare",
        Duration::from_secs(20),
        || (!children_of(server).contains(&spare)).then_some(()),
    )
    .await;
    let third = s.step("third", &[]);
    let o = s.run(&third).await;
    assert!(o.success() && o.warm, "{o:?}: {}", s.log(&third));
    assert_eq!(s.pid(&third, "ppid"), server, "the same server served it");
    assert_ne!(s.pid(&third, "pid"), spare);
}

async fn warm_timeout_and_cancel_kill_the_step_and_its_children(spawn: Spawn) {
    let s = Steps::new(spawn);
    let mut w = s.step("timeout", &["--spawn", "--sleep"]);
    w.timeout = Some(Duration::from_millis(500));
    let o = s.run(&w).await;
    assert!(o.timed_out && o.warm, "{o:?}");
    assert_eq!(o.signal, Some(15));
    assert_gone(s.pid(&w, "pid")).await;
    assert_gone(s.pid(&w, "child")).await;

    let w = s.step("cancel", &["--spawn", "--sleep"]);
    let cancel = CancellationToken::new();
    let task = {
        let (rt, w, cancel) = (s.rt.clone(), w.clone(), cancel.clone());
        tokio::spawn(async move { rt.run(&w, cancel).await })
    };
    eventually("the step to start", Duration::from_secs(20), || {
        s.log(&w).contains("sleeping").then_some(())
    })
    .await;
    let (pid, child) = (s.pid(&w, "pid"), s.pid(&w, "child"));
    assert!(alive(pid) && alive(child));
    cancel.cancel();
    let o = task.await.unwrap().unwrap();
    assert!(o.canceled && o.warm);
    assert_gone(pid).await;
    assert_gone(child).await;
}

async fn dropping_a_warm_run_kills_the_step_and_its_children(spawn: Spawn) {
    let s = Steps::new(spawn);
    let w = s.step("dropped", &["--spawn", "--sleep"]);
    let task = {
        let (rt, w) = (s.rt.clone(), w.clone());
        tokio::spawn(async move { rt.run(&w, CancellationToken::new()).await })
    };
    eventually("the step to start", Duration::from_secs(20), || {
        s.log(&w).contains("sleeping").then_some(())
    })
    .await;
    let (pid, child) = (s.pid(&w, "pid"), s.pid(&w, "child"));
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_gone(pid).await;
    assert_gone(child).await;
}

async fn warm_memory_limit(spawn: Spawn) {
    let s = Steps::new(spawn);
    let mut w = s.step("alloc", &["--alloc"]);
    w.resources = Resources {
        memory_limit_bytes: Some(200 << 20),
        ..Default::default()
    };
    let o = s.run(&w).await;
    assert!(o.warm);
    assert_eq!(o.exit_code, Some(1), "{}", s.log(&w));
    assert!(s.log(&w).contains("MemoryError"));
}

async fn warm_cpu_limit_joins_the_workload_cgroup(spawn: Spawn) {
    let s = Steps::new(spawn);
    let mut w = s.step("cpu", &["--cgroup"]);
    w.resources = Resources {
        cpu_limit_millis: Some(500),
        ..Default::default()
    };
    let o = s.run(&w).await;
    assert!(o.success() && o.warm, "{}", s.log(&w));
    let joined = field(&s.log(&w), "cgroup").unwrap().contains("oxflow-");
    assert_eq!(
        joined,
        s.rt.cpu_enforcement() != CpuEnforcement::None,
        "{}",
        s.log(&w)
    );
}

async fn environment_rules_for_warm_steps(spawn: Spawn) {
    let s = Steps::new(spawn);
    // PYTHONPATH is applied by the child: the module lives elsewhere.
    let lib = s.t.path().join("lib");
    std::fs::create_dir(&lib).unwrap();
    std::fs::write(
        lib.join("elsewhere.py"),
        "import sys\nprint('found', sys.argv[1:])\n",
    )
    .unwrap();
    let mut w = s.step("pythonpath", &[]);
    w.args = vec!["-m".into(), "elsewhere".into(), "x".into()];
    w.working_dir = Some(s.t.path().join("other"));
    w.env
        .insert("PYTHONPATH".into(), lib.to_str().unwrap().into());
    let o = s.run(&w).await;
    assert!(o.success() && o.warm, "{}", s.log(&w));
    assert_eq!(s.log(&w), "found ['x']\n");

    // A start-up variable the server cannot re-apply: runs cold.
    let mut w = s.step("hashseed", &[]);
    w.env.insert("PYTHONHASHSEED".into(), "123".into());
    let o = s.run(&w).await;
    assert!(o.success() && !o.warm);
}

async fn steps_that_cannot_be_warm_run_cold(spawn: Spawn) {
    let s = Steps::new(spawn);
    // Mounts need a namespace the fork server cannot give.
    let mut w = s.step("mounts", &[]);
    w.mounts = vec![Mount {
        source: s.t.path().into(),
        target: s.t.path().into(),
        read_only: true,
    }];
    assert!(!s.run(&w).await.warm);
    // Not `-m module`.
    let mut w = s.step("script", &[]);
    w.args = vec!["oxstep.py".into()];
    let o = s.run(&w).await;
    assert!(o.success() && !o.warm);
    // The workload did not ask for it.
    let mut w = s.step("not-asked", &[]);
    w.warm_python = false;
    assert!(!s.run(&w).await.warm);
    // Not an interpreter: never sent the server script.
    let mut w = s.step("sh", &[]);
    w.program = "sh".into();
    let o = s.run(&w).await;
    assert!(!o.warm && !o.success());
    // The runtime has it off.
    let cold = s.t.runtime(false);
    let w = s.step("off", &[]);
    assert!(!cold.run(&w, CancellationToken::new()).await.unwrap().warm);
}

async fn a_missing_interpreter_falls_back_to_a_clear_spawn_error(spawn: Spawn) {
    let s = Steps::new(spawn);
    let mut w = s.step("missing", &[]);
    w.program = "/nonexistent/python3".into();
    let err = s.rt.run(&w, CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, RuntimeError::Spawn { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/python3"), "{err}");
}

async fn shutdown_stops_the_server_and_a_later_step_starts_another(spawn: Spawn) {
    let s = Steps::new(spawn);
    let first = s.step("first", &[]);
    s.run(&first).await;
    let server = s.pid(&first, "ppid");
    let spare = eventually("a spare child", Duration::from_secs(20), || {
        children_of(server).first().copied()
    })
    .await;
    s.rt.shutdown().await;
    // The server and its spare are gone by the time shutdown returns (no
    // waiting here: a process left behind would still be alive now).
    assert!(
        !running(server) && !running(spare),
        "server {server} or spare {spare} outlived shutdown"
    );
    let next = s.step("next", &[]);
    let o = s.run(&next).await;
    assert!(o.success() && o.warm);
    assert_ne!(s.pid(&next, "ppid"), server);
}

for_each_spawn_strategy! {
    #[tokio::test] warm_step_sees_what_a_fresh_interpreter_sees,
    #[tokio::test] warm_exit_codes_and_errors,
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)] twenty_parallel_warm_steps_share_one_server,
    #[tokio::test] a_crashing_step_does_not_take_the_server_down,
    #[tokio::test] a_killed_server_is_replaced_and_its_running_steps_fail_clearly,
    #[tokio::test] a_server_killed_between_steps_is_replaced_transparently,
    #[tokio::test] a_spare_child_serves_the_next_step_and_a_dead_one_is_replaced,
    #[tokio::test] warm_timeout_and_cancel_kill_the_step_and_its_children,
    #[tokio::test] dropping_a_warm_run_kills_the_step_and_its_children,
    #[tokio::test] warm_memory_limit,
    #[tokio::test] warm_cpu_limit_joins_the_workload_cgroup,
    #[tokio::test] environment_rules_for_warm_steps,
    #[tokio::test] steps_that_cannot_be_warm_run_cold,
    #[tokio::test] a_missing_interpreter_falls_back_to_a_clear_spawn_error,
    #[tokio::test] shutdown_stops_the_server_and_a_later_step_starts_another,
}
