//! The `oxflow-spawn` exec shim started by hand: what a person sees when it
//! fails (the runtime side is tested in `local.rs`, through both strategies).

use std::process::{Command, Output, Stdio};

const SHIM: &str = env!("CARGO_BIN_EXE_oxflow-spawn");

fn shim(args: &[&str]) -> Output {
    Command::new(SHIM)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn check(args: &[&str], code: i32, stderr: &str) {
    let out = shim(args);
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {text}");
    assert!(
        text.contains(stderr),
        "{args:?}: {text:?} should mention {stderr:?}"
    );
}

#[test]
fn failures_have_distinct_codes_and_messages() {
    let me = std::process::id().to_string();
    check(&[], 2, "not meant to be run by hand");
    check(&["run"], 2, "not meant to be run by hand");
    check(
        &["__oxflow_spawn_v0", "--parent", &me, "--", "true"],
        125,
        "different Oxflow versions",
    );
    check(
        &[
            "__oxflow_spawn_v1",
            "--parent",
            &me,
            "--bogus",
            "--",
            "true",
        ],
        125,
        "unknown argument",
    );
    // The pid it was told is not its parent: Oxflow died during the start.
    check(
        &["__oxflow_spawn_v1", "--parent", "1", "--", "true"],
        125,
        "the Oxflow process exited during the start",
    );
    // An absolute path: a PATH search says EACCES instead when a directory
    // on PATH is not searchable (as /root/.cargo/bin is for nobody).
    check(
        &[
            "__oxflow_spawn_v1",
            "--parent",
            &me,
            "--",
            "/nonexistent/oxflow-program",
        ],
        127,
        "could not execute `/nonexistent/oxflow-program`: ENOENT",
    );
    check(
        &["__oxflow_spawn_v1", "--parent", &me, "--", "/dev/null"],
        126,
        "EACCES",
    );
}

#[test]
fn it_starts_the_program_in_a_session_of_its_own() {
    let me = std::process::id().to_string();
    let script = "cat /proc/$$/stat; readlink /proc/$$/fd/0; exit 7";
    let out = shim(&[
        "__oxflow_spawn_v1",
        "--parent",
        &me,
        "--",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(out.status.code(), Some(7), "the program's own exit code");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines = stdout.lines();
    let stat = lines.next().unwrap();
    let pid = stat.split(' ').next().unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    assert_eq!(fields[1], me, "the shim's parent is the program's parent");
    assert_eq!(
        (fields[2], fields[3]),
        (pid, pid),
        "group and session: {stat}"
    );
    assert_eq!(lines.next(), Some("/dev/null"));
}
