//! Engine overhead: what the pipelines engine adds on top of running a process,
//! and how its memory grows with the size of the DAG (issue #2).
//!
//! ```text
//! cargo bench -p oxflow-pipelines --bench engine_overhead
//! ```
//!
//! The pipeline is generated here as IR JSON: N container tasks running
//! `true` (as `kfp` compiles a container component with `command=['true']`),
//! either as a chain (each task `dependentTasks` its predecessor) or as a wide
//! fan-out (N independent tasks). Every measurement runs in a fresh child
//! process (this binary re-executed with `__measure KIND SHAPE N PARALLEL
//! CACHE BALLAST_MIB`), so that one measurement's allocations never show up in the next
//! one's peak RSS and every run starts from an empty SQLite store:
//!
//! - `spawn`: `std::process::Command::new("true").status()`, N times: the bare
//!   cost of a process on this host, for context.
//! - `runtime`: the same N workloads straight through `LocalRuntime::run`,
//!   shaped as the engine shapes them (own log file and working directory,
//!   both created by the runtime), `PARALLEL` at a time. This is the baseline.
//!   One variant first allocates and touches 256 MiB (about the engine's peak
//!   RSS at 10,000 tasks), to show what a bigger process costs every spawn.
//! - `engine`: the generated pipeline submitted to an [`Engine`] over a
//!   tempdir SQLite store and a `LocalRuntime`, executed to the end with
//!   `max_parallel = PARALLEL`. The child builds the pipeline as a JSON value
//!   first, so its peak RSS includes that copy.
//! - `file`: what `oxflow run FILE` does, for the peak RSS a user sees: the
//!   child streams the generated IR to a file (never holding it whole), then
//!   `Pipeline::load_file`, `Engine::submit`, drops the pipeline and
//!   executes the run with a progress receiver that keeps every task's state,
//!   as the CLI's does.
//!
//! Overhead per task = (engine − runtime) / N at the same parallelism, taken
//! within each round and then the median over rounds (rounds interleave the
//! cases, and the host drifts between them). Peak RSS is the child's `VmHWM`
//! at the end of the run. Each engine run must succeed with every task
//! executed (none served from the cache), or the measurement is reported as
//! failed and the bench exits non-zero after writing its results.
//!
//! `__write-ir chain|fanout N FILE` only writes the generated IR, to run the
//! real binary on it (`/usr/bin/time -v oxflow run FILE --no-cache`).
//!
//! Environment: `OXFLOW_BENCH_SIZES` (default `1000,10000`; above 1,000 only
//! the baseline, the chain and the wide fan-out run, once each),
//! `OXFLOW_BENCH_ROUNDS` (default 3), and
//! `OXFLOW_BENCH_TMPDIR` (default: Cargo's target tmp dir, on the same disk as
//! the repository). Results are printed as markdown and written to
//! `bench/out/engine_overhead.json`. Without `--bench` (as `cargo test
//! --all-targets` runs it) it does one small round, as a smoke test.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use oxflow_artifacts::ArtifactStore;
use oxflow_core::{RunState, TaskState, Workload};
use oxflow_pipelines::{Engine, EngineConfig, Pipeline, RunOptions, SubmitRequest, TaskEvent};
use oxflow_runtime::{LocalConfig, LocalRuntime, Runtime};
use oxflow_store::{RunRecord, Store};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The marker before the one JSON line a measuring child prints.
const RESULT_MARKER: &str = "OXFLOW_BENCH_RESULT ";

fn main() -> ExitCode {
    oxflow_runtime::shim::run_if_requested();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if let Some(i) = args.iter().position(|a| a == "__measure") {
        measure_child(&args[i + 1..])
    } else if let Some(i) = args.iter().position(|a| a == "__write-ir") {
        write_ir_command(&args[i + 1..])
    } else {
        orchestrate(args.iter().any(|a| a == "--bench"))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("engine_overhead: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------
// What one child measures.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Spawn,
    Runtime,
    Engine,
    File,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Chain,
    Fanout,
}

#[derive(Debug, Clone, Copy)]
struct Case {
    kind: Kind,
    shape: Shape,
    n: usize,
    parallel: usize,
    cache: bool,
    /// Heap the child allocates and touches before measuring (runtime only):
    /// shows what a bigger parent process costs each spawn.
    ballast_mib: usize,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Spawn => "spawn",
            Kind::Runtime => "runtime",
            Kind::Engine => "engine",
            Kind::File => "file",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Kind::Spawn, Kind::Runtime, Kind::Engine, Kind::File]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

impl Shape {
    fn as_str(self) -> &'static str {
        match self {
            Shape::Chain => "chain",
            Shape::Fanout => "fanout",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Shape::Chain, Shape::Fanout]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

impl Case {
    fn args(&self) -> Vec<String> {
        vec![
            "__measure".into(),
            self.kind.as_str().into(),
            self.shape.as_str().into(),
            self.n.to_string(),
            self.parallel.to_string(),
            if self.cache { "cache" } else { "no-cache" }.into(),
            self.ballast_mib.to_string(),
        ]
    }

    fn parse(args: &[String]) -> Result<Self, BoxError> {
        let usage = "usage: __measure spawn|runtime|engine|file chain|fanout N PARALLEL cache|no-cache BALLAST_MIB";
        let [kind, shape, n, parallel, cache, ballast] = args else {
            return Err(usage.into());
        };
        Ok(Case {
            kind: Kind::parse(kind).ok_or(usage)?,
            shape: Shape::parse(shape).ok_or(usage)?,
            n: n.parse()?,
            parallel: parallel.parse::<usize>()?.max(1),
            cache: cache == "cache",
            ballast_mib: ballast.parse()?,
        })
    }

    fn label(&self) -> String {
        match self.kind {
            Kind::Spawn => "bare spawn of `true`".to_owned(),
            Kind::Runtime if self.ballast_mib > 0 => format!(
                "LocalRuntime::run, {} at a time, {} MiB heap touched first",
                self.parallel, self.ballast_mib
            ),
            Kind::Runtime => format!("LocalRuntime::run, {} at a time", self.parallel),
            Kind::Engine => format!(
                "engine, {}, max_parallel={}{}",
                self.shape.as_str(),
                self.parallel,
                if self.cache { "" } else { ", --no-cache" }
            ),
            Kind::File => format!(
                "`oxflow run` path (IR file), {}, max_parallel={}{}",
                self.shape.as_str(),
                self.parallel,
                if self.cache { "" } else { ", --no-cache" }
            ),
        }
    }
}

/// What a child reports.
#[derive(Debug, Clone, Default)]
struct Sample {
    /// Wall time of the measured part.
    wall: Duration,
    /// Parsing and validating the generated IR (engine only; not in `wall`).
    load: Duration,
    /// VmRSS when the child started measuring, in KiB.
    rss_start_kib: u64,
    /// VmHWM at the end, in KiB.
    hwm_kib: u64,
}

fn measure_child(args: &[String]) -> Result<(), BoxError> {
    let case = Case::parse(args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let base = tmp_base();
    std::fs::create_dir_all(&base)?;
    let dir = tempfile::Builder::new()
        .prefix("engine-overhead-")
        .tempdir_in(&base)?;
    let sample = rt.block_on(async {
        match case.kind {
            Kind::Spawn => measure_spawn(&case),
            Kind::Runtime => measure_runtime(&case, dir.path()).await,
            Kind::Engine => measure_engine(&case, dir.path()).await,
            Kind::File => measure_file(&case, dir.path()).await,
        }
    })?;
    let line = json!({
        "wall_s": sample.wall.as_secs_f64(),
        "load_s": sample.load.as_secs_f64(),
        "rss_start_kib": sample.rss_start_kib,
        "hwm_kib": sample.hwm_kib,
    });
    println!("{RESULT_MARKER}{line}");
    Ok(())
}

fn measure_spawn(case: &Case) -> Result<Sample, BoxError> {
    let rss_start_kib = proc_status_kib("VmRSS")?;
    let t0 = Instant::now();
    for _ in 0..case.n {
        let status = Command::new("true").stdin(Stdio::null()).status()?;
        if !status.success() {
            return Err(format!("`true` exited with {status}").into());
        }
    }
    Ok(Sample {
        wall: t0.elapsed(),
        rss_start_kib,
        hwm_kib: proc_status_kib("VmHWM")?,
        ..Default::default()
    })
}

fn local_runtime(dir: &Path) -> LocalRuntime {
    // As `oxflow run` configures it; container tasks are never served warm.
    LocalRuntime::new(LocalConfig {
        scratch_dir: dir.join("scratch"),
        warm_python: false,
        preload_modules: Vec::new(),
        spawn_shim: Some(PathBuf::from("/proc/self/exe")),
        ..Default::default()
    })
}

/// The workload the engine builds for task `i` of [`pipeline_ir`]: `true i`,
/// with its own log file and working directory under the task's folder.
fn true_workload(dir: &Path, i: usize) -> Workload {
    let kfp = dir.join(task_name(i)).join(".kfp");
    Workload {
        name: format!("bench-{}", task_name(i)),
        program: "true".to_owned(),
        args: vec![i.to_string()],
        env: BTreeMap::new(),
        working_dir: Some(kfp.join("work")),
        log_path: kfp.join("log"),
        image: Some("alpine".to_owned()),
        ..Default::default()
    }
}

async fn measure_runtime(case: &Case, dir: &Path) -> Result<Sample, BoxError> {
    let runtime = local_runtime(dir);
    // Touched (not just reserved), so that it is resident like an engine's heap.
    let ballast = std::hint::black_box(vec![1u8; case.ballast_mib << 20]);
    let workloads: Vec<Workload> = (0..case.n)
        .map(|i| true_workload(&dir.join("tasks"), i))
        .collect();
    let rss_start_kib = proc_status_kib("VmRSS")?;
    let t0 = Instant::now();
    let mut runs = stream::iter(&workloads)
        .map(|w| runtime.run(w, CancellationToken::new()))
        .buffer_unordered(case.parallel);
    while let Some(outcome) = runs.next().await {
        let outcome = outcome?;
        if !outcome.success() {
            return Err(format!("a `true` workload ended with {}", outcome.describe()).into());
        }
    }
    let wall = t0.elapsed();
    drop(ballast);
    Ok(Sample {
        wall,
        rss_start_kib,
        hwm_kib: proc_status_kib("VmHWM")?,
        ..Default::default()
    })
}

fn bench_engine(store: &Store, dir: &Path, parallel: usize) -> Engine {
    Engine::new(
        store.clone(),
        Arc::new(local_runtime(dir)),
        ArtifactStore::new(dir.join("artifacts")),
        EngineConfig {
            data_dir: dir.to_path_buf(),
            max_parallel: parallel,
            python: None,
        },
    )
}

fn submit_request(case: &Case) -> SubmitRequest {
    SubmitRequest {
        options: RunOptions {
            enable_cache: case.cache,
            base_dir: None,
        },
        ..Default::default()
    }
}

async fn measure_engine(case: &Case, dir: &Path) -> Result<Sample, BoxError> {
    let store = Store::open_in_dir(dir).await?;
    let engine = bench_engine(&store, dir, case.parallel);
    let ir = pipeline_ir(case.shape, case.n);
    let rss_start_kib = proc_status_kib("VmRSS")?;
    let t0 = Instant::now();
    let pipeline = Pipeline::from_json(ir, "engine_overhead bench")?;
    let load = t0.elapsed();
    let t1 = Instant::now();
    let run = engine.submit(&pipeline, submit_request(case)).await?;
    let done = engine
        .execute(&run.id, None, CancellationToken::new())
        .await?;
    let wall = t1.elapsed();
    let hwm_kib = proc_status_kib("VmHWM")?;
    check_run(case, &store, &done).await?;
    Ok(Sample {
        wall,
        load,
        rss_start_kib,
        hwm_kib,
    })
}

/// `oxflow run FILE` as the CLI does it (`crates/oxflow/src/cli.rs`): load
/// the file, submit, drop the pipeline (the engine reads the stored spec
/// back), execute with a progress receiver. The IR is streamed to the file
/// first, so nothing of the bench's own is N-sized.
async fn measure_file(case: &Case, dir: &Path) -> Result<Sample, BoxError> {
    let file = dir.join("pipeline.json");
    write_pipeline_ir(case.shape, case.n, &file)?;
    let store = Store::open_in_dir(dir).await?;
    let engine = bench_engine(&store, dir, case.parallel);
    let rss_start_kib = proc_status_kib("VmRSS")?;
    let t0 = Instant::now();
    let pipeline = Pipeline::load_file(&file)?;
    let load = t0.elapsed();
    let t1 = Instant::now();
    engine.prewarm(&pipeline);
    let run = engine.submit(&pipeline, submit_request(case)).await?;
    drop(pipeline);
    // The CLI's progress display keeps the latest state of every task path.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<TaskEvent>();
    let progress = tokio::spawn(async move {
        let mut states: HashMap<String, TaskState> = HashMap::new();
        while let Some(ev) = rx.recv().await {
            states.insert(ev.path, ev.state);
        }
        states.len()
    });
    let done = engine
        .execute(&run.id, Some(tx), CancellationToken::new())
        .await?;
    let seen = progress.await?;
    let wall = t1.elapsed();
    let hwm_kib = proc_status_kib("VmHWM")?;
    if seen != case.n {
        return Err(format!("progress saw {seen} of {} tasks", case.n).into());
    }
    check_run(case, &store, &done).await?;
    Ok(Sample {
        wall,
        load,
        rss_start_kib,
        hwm_kib,
    })
}

/// Every task of the run succeeded and executed (a cache hit would measure a
/// lookup, not a task).
async fn check_run(case: &Case, store: &Store, done: &RunRecord) -> Result<(), BoxError> {
    if done.state != RunState::Succeeded {
        return Err(format!("the run ended {} ({:?})", done.state, done.error).into());
    }
    let tasks = store.list_tasks(&done.id).await?;
    let ok = tasks
        .iter()
        .filter(|t| t.state == TaskState::Succeeded)
        .count();
    if ok != case.n {
        return Err(format!(
            "{ok} of {} tasks succeeded ({} recorded)",
            case.n,
            tasks.len()
        )
        .into());
    }
    let cached = tasks.iter().filter(|t| t.cached).count();
    if cached > 0 {
        return Err(format!("{cached} of {} tasks were served from the cache", case.n).into());
    }
    Ok(())
}

fn task_name(i: usize) -> String {
    format!("true-{i:05}")
}

/// The IR `kfp` compiles for N container components with `command=['true']`
/// and `args=[i]`, chained with `.after()` or independent. Every task passes
/// its own index, as a constant input, to its single argument, so cache keys
/// differ (identical tasks would be served from the cache after the first
/// one) and every task resolves an input and a placeholder, as real steps do.
/// All tasks share one component and executor, so the spec itself stays small
/// and memory growth is the engine's.
fn pipeline_ir(shape: Shape, n: usize) -> Value {
    let mut ir = ir_skeleton(shape, n);
    ir["root"]["dag"]["tasks"] =
        Value::Object((0..n).map(|i| (task_name(i), task_ir(shape, i))).collect());
    ir
}

/// [`pipeline_ir`] without its tasks.
fn ir_skeleton(shape: Shape, n: usize) -> Value {
    json!({
        "components": {"comp-true": {
            "executorLabel": "exec-true",
            "inputDefinitions": {"parameters": {"i": {"parameterType": "NUMBER_INTEGER"}}},
        }},
        "deploymentSpec": {"executors": {"exec-true": {"container": {
            "image": "alpine",
            "command": ["true"],
            "args": ["{{$.inputs.parameters['i']}}"],
        }}}},
        "pipelineInfo": {"name": format!("{}-{n}", shape.as_str())},
        "root": {"dag": {"tasks": {}}},
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.17.3",
    })
}

/// Task `i` of [`pipeline_ir`].
fn task_ir(shape: Shape, i: usize) -> Value {
    let mut t = json!({
        "cachingOptions": {"enableCache": true},
        "componentRef": {"name": "comp-true"},
        "inputs": {"parameters": {"i": {"runtimeValue": {"constant": i}}}},
        "taskInfo": {"name": task_name(i)},
    });
    if shape == Shape::Chain && i > 0 {
        t["dependentTasks"] = json!([task_name(i - 1)]);
    }
    t
}

/// Writes [`pipeline_ir`] as JSON text, one task at a time.
fn write_pipeline_ir(shape: Shape, n: usize, path: &Path) -> Result<(), BoxError> {
    use std::io::Write;
    let skeleton = serde_json::to_string(&ir_skeleton(shape, n))?;
    let (head, tail) = skeleton
        .split_once(r#""tasks":{}"#)
        .ok_or("the IR skeleton has no tasks")?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    write!(out, r#"{head}"tasks":{{"#)?;
    for i in 0..n {
        if i > 0 {
            out.write_all(b",")?;
        }
        write!(out, "{}:{}", Value::String(task_name(i)), task_ir(shape, i))?;
    }
    write!(out, "}}{tail}")?;
    out.flush()?;
    Ok(())
}

/// `__write-ir chain|fanout N FILE`.
fn write_ir_command(args: &[String]) -> Result<(), BoxError> {
    let usage = "usage: __write-ir chain|fanout N FILE";
    let [shape, n, file] = args else {
        return Err(usage.into());
    };
    let shape = Shape::parse(shape).ok_or(usage)?;
    write_pipeline_ir(shape, n.parse()?, Path::new(file))
}

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`).
fn proc_status_kib(field: &str) -> Result<u64, BoxError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/self/status").into())
}

fn tmp_base() -> PathBuf {
    std::env::var_os("OXFLOW_BENCH_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
}

// ---------------------------------------------------------------------------
// The parent: runs the children, summarises.

/// One child's answer: a sample, or why the measurement failed (a failure is
/// a result too: it is reported, and the bench goes on).
type Outcome = Result<Sample, String>;

struct Row {
    case: Case,
    samples: Vec<Outcome>,
}

impl Row {
    fn ok(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter_map(|s| s.as_ref().ok())
    }

    fn failures(&self) -> impl Iterator<Item = &str> {
        self.samples
            .iter()
            .filter_map(|s| s.as_ref().err().map(String::as_str))
    }

    fn median_wall(&self) -> f64 {
        median(self.ok().map(|s| s.wall.as_secs_f64()).collect())
    }

    fn max_hwm_kib(&self) -> Option<u64> {
        self.ok().map(|s| s.hwm_kib).max()
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn env_list(name: &str, default: &[usize]) -> Result<Vec<usize>, BoxError> {
    match std::env::var(name) {
        Ok(s) => s
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                p.trim()
                    .parse::<usize>()
                    .map_err(|e| format!("{name}={s:?}: {e}").into())
            })
            .collect(),
        Err(_) => Ok(default.to_vec()),
    }
}

/// What runs at size `n`. Above 1,000 tasks only the rows the issue asks
/// about run (the baseline, the chain, the wide fan-out), once each, to keep
/// the bench within a few minutes on 2 cores.
fn plan(n: usize, wide: usize, ballast_mib: usize) -> Vec<Case> {
    let case = |kind, shape, parallel, cache| Case {
        kind,
        shape,
        n,
        parallel,
        cache,
        ballast_mib: 0,
    };
    let mut cases = vec![
        case(Kind::Spawn, Shape::Chain, 1, true),
        case(Kind::Runtime, Shape::Chain, 1, true),
        case(Kind::Engine, Shape::Chain, 1, true),
        case(Kind::File, Shape::Chain, 1, true),
    ];
    if n <= 1_000 {
        cases.push(case(Kind::Engine, Shape::Chain, 1, false));
        // What the engine's peak RSS at 10,000 tasks does to every spawn.
        cases.push(Case {
            ballast_mib,
            ..case(Kind::Runtime, Shape::Chain, 1, true)
        });
        cases.push(case(Kind::Engine, Shape::Fanout, 1, true));
        cases.push(case(Kind::Runtime, Shape::Fanout, wide, true));
    }
    cases.push(case(Kind::Engine, Shape::Fanout, wide, true));
    cases
}

fn orchestrate(bench: bool) -> Result<(), BoxError> {
    let (sizes, rounds) = if bench {
        let rounds = env_list("OXFLOW_BENCH_ROUNDS", &[3])?
            .first()
            .copied()
            .unwrap_or(3)
            .max(1);
        (env_list("OXFLOW_BENCH_SIZES", &[1_000, 10_000])?, rounds)
    } else {
        (vec![20], 1)
    };
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    // `oxflow run`'s default parallelism.
    let wide = cpus * 2;
    // About the engine's peak RSS at 10,000 tasks; the smoke test keeps it small.
    let ballast_mib = if bench { 256 } else { 16 };
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    for &n in &sizes {
        let first = rows.len();
        rows.extend(plan(n, wide, ballast_mib).into_iter().map(|case| Row {
            case,
            samples: Vec::new(),
        }));
        // Rounds interleave the cases, so that a burst of load on the host
        // hits all of them rather than one.
        let rounds = if n > 1_000 { 1 } else { rounds };
        for round in 0..rounds {
            for row in &mut rows[first..] {
                let sample = run_child(&exe, &row.case)?;
                let what = match &sample {
                    Ok(s) => format!(
                        "{:>8.3} s  peak RSS {:>7.1} MiB",
                        s.wall.as_secs_f64(),
                        s.hwm_kib as f64 / 1024.0
                    ),
                    Err(e) => format!("FAILED: {e}"),
                };
                eprintln!(
                    "N={n} round {}/{rounds}: {:<45} {what}",
                    round + 1,
                    row.case.label(),
                );
                row.samples.push(sample);
            }
        }
    }
    let total = started.elapsed();
    println!("{}", render(&rows, &sizes, cpus, total));
    if bench {
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/out");
        std::fs::create_dir_all(&out)?;
        let path = out.join("engine_overhead.json");
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&to_json(&rows, cpus, total))?,
        )?;
        eprintln!("raw results: {}", path.display());
    }
    let failed = rows
        .iter()
        .filter(|r| r.failures().next().is_some())
        .count();
    if failed > 0 {
        return Err(format!("{failed} measurement(s) failed; see the table").into());
    }
    Ok(())
}

/// Runs one measurement in a fresh process. `Err` only when the child could
/// not be started; a measurement that failed is an `Ok(Err(why))`.
fn run_child(exe: &Path, case: &Case) -> Result<Outcome, BoxError> {
    let out = Command::new(exe)
        .args(case.args())
        .stdin(Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout.lines().find_map(|l| l.strip_prefix(RESULT_MARKER));
    let (true, Some(line)) = (out.status.success(), line) else {
        let why = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message");
        return Ok(Err(format!("{} ({why})", out.status)));
    };
    let v: Value = serde_json::from_str(line)?;
    let secs = |k: &str| Duration::from_secs_f64(v[k].as_f64().unwrap_or(0.0).max(0.0));
    Ok(Ok(Sample {
        wall: secs("wall_s"),
        load: secs("load_s"),
        rss_start_kib: v["rss_start_kib"].as_u64().unwrap_or(0),
        hwm_kib: v["hwm_kib"].as_u64().unwrap_or(0),
    }))
}

/// The baseline an engine row is compared with: the runtime at the same
/// parallelism and size.
fn baseline<'a>(rows: &'a [Row], c: &Case) -> Option<&'a Row> {
    rows.iter().find(|r| {
        r.case.kind == Kind::Runtime
            && r.case.n == c.n
            && r.case.parallel == c.parallel
            && r.case.ballast_mib == 0
    })
}

/// Milliseconds per task over the baseline: the median over rounds of the
/// difference within each round. Rounds are paired because the host drifts
/// between them (on ext4 every mkdir gets slower for a while after the
/// thousands of directories a previous measurement removed), and both sides
/// of one round see the same state.
fn overhead_ms(rows: &[Row], r: &Row) -> Option<f64> {
    let b = baseline(rows, &r.case)?;
    let diffs: Vec<f64> = r
        .samples
        .iter()
        .zip(&b.samples)
        .filter_map(|(x, y)| {
            Some(x.as_ref().ok()?.wall.as_secs_f64() - y.as_ref().ok()?.wall.as_secs_f64())
        })
        .map(|d| d * 1e3 / r.case.n as f64)
        .collect();
    Some(median(diffs)).filter(|d| d.is_finite())
}

fn mib(kib: Option<u64>) -> String {
    kib.map(|k| format!("{:.1}", k as f64 / 1024.0))
        .unwrap_or_else(|| "—".into())
}

fn render(rows: &[Row], sizes: &[usize], cpus: usize, total: Duration) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n### Engine overhead ({cpus} CPUs; medians; every sample in a fresh process)\n"
    );
    let _ = writeln!(
        s,
        "| N | measurement | samples (s) | median (s) | per task (ms) | overhead vs runtime, paired by round (ms/task) | peak RSS (MiB) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for r in rows {
        let c = r.case;
        let med = r.median_wall();
        let samples: Vec<String> = r
            .samples
            .iter()
            .map(|x| match x {
                Ok(x) => format!("{:.3}", x.wall.as_secs_f64()),
                Err(_) => "FAILED".to_owned(),
            })
            .collect();
        let overhead = match c.kind {
            Kind::Engine | Kind::File => overhead_ms(rows, r)
                .map(|d| format!("{d:+.3}"))
                .unwrap_or_else(|| "—".into()),
            Kind::Runtime if c.ballast_mib > 0 => overhead_ms(rows, r)
                .map(|d| format!("{d:+.3} (bigger parent, same work)"))
                .unwrap_or_else(|| "—".into()),
            Kind::Runtime if c.parallel == 1 => "(baseline)".into(),
            Kind::Runtime => format!("(baseline, {} at a time)", c.parallel),
            Kind::Spawn => "—".into(),
        };
        let per_task = if med.is_finite() {
            format!("{:.3}", med * 1e3 / c.n as f64)
        } else {
            "—".into()
        };
        let med = if med.is_finite() {
            format!("{med:.3}")
        } else {
            "—".into()
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {med} | {per_task} | {overhead} | {} |",
            c.n,
            c.label(),
            samples.join(", "),
            mib(r.max_hwm_kib()),
        );
    }
    let failures: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            r.failures()
                .map(move |e| format!("- N={}, {}: {e}", r.case.n, r.case.label()))
        })
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(s, "\nFailed measurements:\n{}", failures.join("\n"));
    }
    // Memory slope between the smallest and the largest size.
    if let (Some(&lo), Some(&hi)) = (sizes.iter().min(), sizes.iter().max())
        && hi > lo
    {
        let _ = writeln!(s, "\n### Memory growth from N={lo} to N={hi} (peak RSS)\n");
        let _ = writeln!(
            s,
            "| measurement | peak RSS at N={lo} (MiB) | at N={hi} (MiB) | growth per task (KiB) |"
        );
        let _ = writeln!(s, "|---|---|---|---|");
        for r in rows.iter().filter(|r| r.case.n == lo) {
            let c = r.case;
            let Some(big) = rows.iter().find(|b| {
                b.case.n == hi
                    && b.case.kind == c.kind
                    && b.case.shape == c.shape
                    && b.case.parallel == c.parallel
                    && b.case.cache == c.cache
                    && b.case.ballast_mib == c.ballast_mib
            }) else {
                continue;
            };
            let slope = match (r.max_hwm_kib(), big.max_hwm_kib()) {
                (Some(a), Some(b)) => {
                    format!("{:.2}", (b as f64 - a as f64) / (hi - lo) as f64)
                }
                _ => "—".into(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {slope} |",
                c.label(),
                mib(r.max_hwm_kib()),
                mib(big.max_hwm_kib()),
            );
        }
    }
    let load: Vec<String> = rows
        .iter()
        .filter(|r| r.case.kind == Kind::Engine && r.case.shape == Shape::Chain && r.case.cache)
        .map(|r| {
            format!(
                "N={}: {:.1} ms",
                r.case.n,
                median(r.ok().map(|x| x.load.as_secs_f64() * 1e3).collect())
            )
        })
        .collect();
    let _ = writeln!(
        s,
        "\nParsing and validating the generated IR (not in the times above): {}.",
        load.join(", ")
    );
    let _ = writeln!(s, "Total bench time: {:.0} s.", total.as_secs_f64());
    s
}

fn to_json(rows: &[Row], cpus: usize, total: Duration) -> Value {
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            let c = r.case;
            let samples: Vec<Value> = r
                .samples
                .iter()
                .map(|x| match x {
                    Ok(x) => json!({
                        "wall_s": x.wall.as_secs_f64(),
                        "load_s": x.load.as_secs_f64(),
                        "rss_start_kib": x.rss_start_kib,
                        "hwm_kib": x.hwm_kib,
                    }),
                    Err(e) => json!({"error": e}),
                })
                .collect();
            json!({
                "kind": c.kind.as_str(),
                "shape": c.shape.as_str(),
                "n": c.n,
                "parallel": c.parallel,
                "cache": c.cache,
                "ballast_mib": c.ballast_mib,
                "label": c.label(),
                "median_wall_s": Some(r.median_wall()).filter(|m| m.is_finite()),
                "overhead_ms_per_task": (matches!(c.kind, Kind::Engine | Kind::File) || c.ballast_mib > 0)
                    .then(|| overhead_ms(rows, r))
                    .flatten(),
                "samples": samples,
            })
        })
        .collect();
    json!({
        "bench": "engine_overhead",
        "command": "cargo bench -p oxflow-pipelines --bench engine_overhead",
        "cpus": cpus,
        "total_s": total.as_secs_f64(),
        "unix_time": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        "rows": rows,
    })
}
