//! What starting a workload costs with each spawn strategy, first with a small
//! parent, then with MIB MiB allocated and touched in the parent (as a busy
//! Oxflow would have resident).
//!
//! ```text
//! cargo run --release -p oxflow-runtime --example spawn_cost -- [RUNS] [MIB] [SHIM]
//! ```
//! RUNS (default 500) sequential `true` workloads per strategy, each with its
//! own log file and working directory, through `LocalRuntime::run`; MIB
//! defaults to 256. This binary is its own exec shim (through
//! `/proc/self/exe`), as the `oxflow` binary is; SHIM adds a line for another
//! shim executable, e.g. `target/release/oxflow-spawn`. A bare
//! `Command::new("true").status()` (posix_spawn, nothing else) is the floor.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use oxflow_core::Workload;
use oxflow_runtime::{LocalConfig, LocalRuntime, Runtime};
use tokio_util::sync::CancellationToken;

fn main() {
    oxflow_runtime::shim::run_if_requested();
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);
    let mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(256);
    let other_shim = args.next().map(std::path::PathBuf::from);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(measure(runs, mib, other_shim));
}

async fn measure(runs: usize, mib: usize, other_shim: Option<std::path::PathBuf>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = |spawn_shim| LocalConfig {
        scratch_dir: dir.path().join("scratch"),
        spawn_shim,
        ..Default::default()
    };
    let mut strategies = vec![
        (
            "fork + pre_exec".to_string(),
            LocalRuntime::new(config(None)),
        ),
        (
            "shim /proc/self/exe".to_string(),
            LocalRuntime::new(config(Some("/proc/self/exe".into()))),
        ),
    ];
    if let Some(shim) = other_shim {
        let label = format!("shim {}", shim.file_name().unwrap_or_default().display());
        strategies.push((label, LocalRuntime::new(config(Some(shim)))));
    }
    println!("{runs} sequential `true` workloads per line; ms per workload: mean, median, p90");
    let mut ballast = Vec::new();
    for size in [0, mib] {
        // Every page written, so that it is resident and fork must copy its
        // page table entries.
        ballast = vec![1u8; size << 20];
        std::hint::black_box(&mut ballast);
        println!("\nparent VmRSS {} MiB:", vm_rss_mib());
        let times = (0..runs)
            .map(|_| {
                let t = Instant::now();
                let status = std::process::Command::new("true").status();
                assert!(status.is_ok_and(|s| s.success()));
                t.elapsed()
            })
            .collect();
        print_line("bare Command::status (floor)", times);
        for (label, runtime) in &strategies {
            for i in 0..5 {
                run(runtime, dir.path(), &format!("warmup-{label}-{i}")).await;
            }
            let mut times = Vec::with_capacity(runs);
            for i in 0..runs {
                let t = Instant::now();
                run(runtime, dir.path(), &format!("{size}-{label}-{i}")).await;
                times.push(t.elapsed());
            }
            print_line(label, times);
        }
    }
    drop(ballast);
}

async fn run(runtime: &LocalRuntime, dir: &Path, name: &str) {
    let name = name.replace(' ', "_");
    let task = dir.join("tasks").join(&name);
    let workload = Workload {
        name: name.clone(),
        program: "true".into(),
        args: vec![name],
        working_dir: Some(task.join("work")),
        log_path: task.join("log"),
        ..Default::default()
    };
    let outcome = runtime
        .run(&workload, CancellationToken::new())
        .await
        .expect("the workload runs");
    assert!(outcome.success(), "{outcome:?}");
}

fn print_line(label: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = ms(times.iter().sum::<Duration>()) / times.len() as f64;
    let at = |q: f64| ms(times[((times.len() - 1) as f64 * q) as usize]);
    println!("  {label:<30} {mean:7.3} {:7.3} {:7.3}", at(0.5), at(0.9));
}

fn vm_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib / 1024)
}
