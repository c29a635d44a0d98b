//! Times sequential Python steps started cold (a fresh interpreter each time)
//! and warm (forked from the fork server).
//!
//! ```text
//! cargo run --release -p oxflow-runtime --example warm_vs_cold -- [RUNS] [HEAVY_MODULES]
//! ```
//! RUNS defaults to 50. HEAVY_MODULES is a comma-separated list of modules the
//! "heavy" step imports (and the warm server preloads); it defaults to
//! `email.mime.multipart,http.server,json,argparse`, try `boto3` where installed.

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use oxflow_core::Workload;
use oxflow_runtime::{LocalConfig, LocalRuntime, Runtime};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    let heavy = args
        .next()
        .unwrap_or_else(|| "email.mime.multipart,http.server,json,argparse".to_string());
    let heavy: Vec<String> = heavy.split(',').map(str::to_string).collect();

    // The interpreter itself, not a wrapper such as a pyenv shim (which would
    // add a shell start to every cold run).
    let python = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 on PATH");
    let python = String::from_utf8(python.stdout).unwrap().trim().to_string();

    let dir = tempfile::tempdir().unwrap();
    let step = format!(
        "import {}\nimport sys\nprint('ok', sys.argv[1:])\n",
        heavy.join(", ")
    );
    std::fs::write(dir.path().join("heavy_step.py"), step).unwrap();

    let config = |warm_python| LocalConfig {
        scratch_dir: dir.path().join("scratch"),
        warm_python,
        preload_modules: heavy
            .iter()
            .cloned()
            .chain(["json.tool".to_string()])
            .collect(),
        ..Default::default()
    };
    let cold = LocalRuntime::new(config(false));
    let warm = LocalRuntime::new(config(true));

    println!("python: {python}; {runs} sequential runs each; heavy step imports {heavy:?}");
    for (label, module_args) in [
        ("json.tool --help", vec!["-m", "json.tool", "--help"]),
        ("heavy_step", vec!["-m", "heavy_step", "x"]),
    ] {
        let workload = Workload {
            name: "bench".into(),
            program: python.clone(),
            args: module_args.iter().map(|s| s.to_string()).collect(),
            env: BTreeMap::new(),
            working_dir: Some(dir.path().to_path_buf()),
            log_path: dir.path().join("bench.log"),
            warm_python: true,
            ..Default::default()
        };
        for (mode, rt) in [("cold", &cold), ("warm", &warm)] {
            // One untimed run: the warm server starts here.
            let first = Instant::now();
            let o = rt.run(&workload, CancellationToken::new()).await.unwrap();
            assert!(o.success(), "{}", log(&workload.log_path));
            let first = first.elapsed();
            let mut times = Vec::with_capacity(runs);
            for _ in 0..runs {
                let start = Instant::now();
                let o = rt.run(&workload, CancellationToken::new()).await.unwrap();
                times.push(start.elapsed());
                assert!(o.success() && o.warm == (mode == "warm"), "{o:?}");
            }
            println!(
                "{label:>18} {mode}: {}  (first run {:.1} ms)",
                summary(&mut times),
                ms(first)
            );
        }
    }
    warm.shutdown().await;
}

fn log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(times: &mut [Duration]) -> String {
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    format!(
        "mean {:6.1} ms  median {:6.1} ms  p95 {:6.1} ms  min {:6.1} ms",
        ms(mean),
        ms(at(0.5)),
        ms(at(0.95)),
        ms(times[0])
    )
}
