use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use oxflow_artifacts::ArtifactStore;
use oxflow_core::{Namespace, RunState};
use oxflow_pipelines::{Engine, EngineConfig, Pipeline, RunOptions, SubmitRequest};
use oxflow_runtime::{LocalConfig, LocalRuntime};
use oxflow_store::{RunQuery, RunRecord, Store};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::output;

/// Kubeflow's ML platform as one binary.
#[derive(Debug, Parser)]
#[command(name = "oxflow", version, about)]
pub struct Cli {
    /// Data directory (SQLite database, artifacts, logs, Python environments).
    #[arg(long, env = "OXFLOW_HOME", global = true)]
    pub home: Option<PathBuf>,
    /// Database URL: a SQLite path or postgres://USER@HOST/DB (default: SQLite in the data directory).
    #[arg(long, env = "OXFLOW_DATABASE", global = true)]
    pub database: Option<String>,
    /// Namespace (Kubeflow profile) to work in.
    #[arg(short = 'n', long, env = "OXFLOW_NAMESPACE", global = true, default_value = Namespace::DEFAULT)]
    pub namespace: String,
    /// Log what the engine does.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Work against a running `oxflow up` at this URL (http://HOST:PORT) instead of
    /// the local data directory: `run`, `runs list|get|delete` and `logs`.
    #[arg(long, env = "OXFLOW_SERVER", global = true, value_name = "URL")]
    pub server: Option<String>,
    /// The token to send to that server (default: the data directory's,
    /// which `oxflow token` prints).
    #[arg(
        long,
        env = "OXFLOW_TOKEN",
        global = true,
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the platform: the KFP-compatible API on http://127.0.0.1:8080 (Ctrl-C stops it).
    Up(UpArgs),
    /// Run a pipeline package compiled by the kfp SDK and wait for it.
    Run(RunArgs),
    /// Check a pipeline package without running it.
    Validate {
        /// The compiled pipeline (YAML or JSON).
        file: PathBuf,
    },
    /// Inspect and manage runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Print a pod's output, as `kubectl logs` (`oxflow logs POD [-c
    /// CONTAINER] [-f] [--tail N]`), or a pipeline run task's log
    /// (`oxflow logs RUN TASK`).
    Logs(crate::get::LogsArgs),
    /// Print the path of the kubeconfig `oxflow up` writes (for
    /// `export KUBECONFIG=$(oxflow kubeconfig)`).
    Kubeconfig,
    /// Print the data directory's token (what clients send as
    /// `Authorization: Bearer`, and what the dashboard's login page takes).
    Token,
    /// Manage secrets that pipelines use through kfp-kubernetes.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Run a Katib Experiment (kubeflow.org/v1beta1 YAML) and wait for it.
    Tune {
        /// The Experiment YAML (or JSON).
        file: PathBuf,
        /// Print the finished experiment as JSON (Katib's shape) instead of a summary.
        #[arg(short = 'o', long, value_parser = ["text", "json"], default_value = "text")]
        output: String,
    },
    /// Inspect and manage Katib experiments.
    #[command(subcommand)]
    Experiments(crate::tune::ExperimentsCommand),
    /// Serve models over KServe's V1 and the Open Inference Protocol (V2 REST and gRPC).
    Serve(crate::serve::ServeArgs),
    /// Create or update objects from a file (KServe InferenceServices and
    /// TrainedModels, or any kind `oxflow get` lists), as `kubectl apply -f`.
    Apply(crate::isvc::ApplyArgs),
    /// Inspect and manage KServe InferenceServices.
    #[command(subcommand, visible_alias = "inferenceservices")]
    Isvc(crate::isvc::IsvcCommand),
    /// Inspect and manage KServe TrainedModels (models loaded into a
    /// multi-model InferenceService).
    #[command(subcommand, name = "trainedmodel", visible_aliases = ["tm", "trainedmodels"])]
    TrainedModel(crate::trainedmodel::TrainedModelCommand),
    /// List objects of any kind, with the kind's own columns (`oxflow get
    /// isvc`, `oxflow get cm -l app=demo -o yaml`), as kubectl does.
    Get(crate::get::GetArgs),
    /// Show one object of any kind: metadata, spec, status, conditions
    /// and the events about it.
    Describe(crate::get::DescribeArgs),
    /// Delete objects of any kind by name.
    Delete(crate::get::DeleteArgs),
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Address to listen on (loopback by default; anything else exposes the API).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
    /// Address of the Open Inference Protocol's gRPC endpoint for every
    /// InferenceService (routed by `:authority` NAME.NAMESPACE or by model name).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub grpc_addr: std::net::SocketAddr,
    /// Python interpreter for lightweight components (default: python3 on PATH).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Tasks running at once across all runs (default: 2 × CPUs).
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Runs executing at once.
    #[arg(long, default_value_t = 8)]
    pub max_runs: usize,
    /// Show every pipeline step's process as a Pod (`kubectl get pods -l
    /// pipeline/runid=RUN`, `kubectl logs`, deleting one kills the step);
    /// `--step-pods=false` keeps steps off the Kubernetes API.
    #[arg(long, env = "OXFLOW_STEP_PODS", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub step_pods: bool,
    /// A directory that InferenceServices' local storageUri paths may lie
    /// under (repeatable; the environment variable takes a ':'-separated
    /// list). `$OXFLOW_HOME/models` and `$OXFLOW_HOME/volumes` always may;
    /// any other host path is refused.
    #[arg(
        long = "model-root",
        value_name = "DIR",
        env = "OXFLOW_MODEL_ROOTS",
        value_delimiter = ':'
    )]
    pub model_roots: Vec<PathBuf>,
    #[command(flatten)]
    pub edge: EdgeArgs,
}

/// Which names and pages a server answers to (every listener checks the
/// `Host` of each request and the `Origin` of each state change).
#[derive(Debug, Clone, Args)]
pub struct EdgeArgs {
    /// More `Host` names to answer to, besides loopback names, the bound
    /// address and KServe's example.com: `NAME`, or `*.DOMAIN` for a domain
    /// and its subdomains (repeatable or comma-separated). Needed behind a
    /// reverse proxy or DNS name; a name not listed is refused, which is
    /// what stops DNS rebinding.
    #[arg(
        long,
        value_name = "HOST",
        env = "OXFLOW_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,
    /// Web origins (`https://HOST[:PORT]`) besides the server's own whose
    /// pages may change state, e.g. a proxy's public address.
    #[arg(
        long,
        value_name = "ORIGIN",
        env = "OXFLOW_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,
    /// Who may call: `token` (every request carries the data directory's
    /// token or a dashboard session: `oxflow token`, `oxflow kubeconfig`) or
    /// `none` (anyone who can reach the port; only on a loopback address).
    #[arg(long, value_enum, default_value_t = AuthMode::Token, env = "OXFLOW_AUTH")]
    pub auth: AuthMode,
}

/// How a server authenticates its callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// The data directory's token, a scoped token or a dashboard session.
    Token,
    /// No authentication (loopback addresses only).
    None,
}

impl EdgeArgs {
    /// The edge configuration of a listener bound to `bound`, admitting
    /// what `gate` accepts (or anyone, with `--auth none`, which only a
    /// loopback address may be served with).
    pub fn serve_config(
        &self,
        bound: std::net::SocketAddr,
        gate: &Arc<oxflow_edge::Gate>,
    ) -> Result<oxflow_edge::ServeConfig> {
        let hosts = oxflow_edge::HostPolicy::for_listener(
            bound,
            &self.allowed_hosts,
            &self.allowed_origins,
        )?;
        let access = match self.auth {
            AuthMode::Token => oxflow_edge::Access::Token(gate.clone()),
            AuthMode::None if bound.ip().is_loopback() => oxflow_edge::Access::Open,
            AuthMode::None => bail!(
                "--auth none: refusing to serve {bound} without authentication; \
                 only a loopback address (127.0.0.1, ::1) may be served without it"
            ),
        };
        Ok(oxflow_edge::ServeConfig::new(hosts, access))
    }
}

/// The data directory `cli` names (`--home`, `$OXFLOW_HOME`, else
/// `~/.oxflow`), created if missing, as an absolute path.
pub(crate) fn data_dir(cli: &Cli) -> Result<PathBuf> {
    let home = match &cli.home {
        Some(h) => h.clone(),
        None => dirs_home().join(".oxflow"),
    };
    std::fs::create_dir_all(&home)
        .with_context(|| format!("creating the data directory {}", home.display()))?;
    // Paths under the data directory are handed to tasks that run
    // elsewhere (their own working directories): make them absolute.
    home.canonicalize()
        .with_context(|| format!("resolving the data directory {}", home.display()))
}

/// The token a client sends to `--server`: `--token` (`$OXFLOW_TOKEN`),
/// else the data directory's if it has one.
pub(crate) fn client_token(cli: &Cli) -> Result<Option<String>> {
    if let Some(t) = cli
        .token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        return Ok(Some(t.to_owned()));
    }
    let home = match &cli.home {
        Some(h) => h.clone(),
        None => dirs_home().join(".oxflow"),
    };
    let path = home.join(oxflow_auth::TOKEN_FILE);
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(
        oxflow_auth::Credentials::load(&path)?.token().to_owned(),
    ))
}

/// The data directory's credentials (its token file made on first use).
pub(crate) fn credentials(home: &std::path::Path) -> Result<oxflow_auth::Credentials> {
    Ok(oxflow_auth::Credentials::load_or_create(home)?)
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The compiled pipeline (YAML or JSON).
    pub file: PathBuf,
    /// A pipeline parameter, NAME=VALUE (repeatable). Lists and dicts as JSON.
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Run name.
    #[arg(long)]
    pub name: Option<String>,
    /// Do not use cached task results.
    #[arg(long)]
    pub no_cache: bool,
    /// Python interpreter for lightweight components (default: python3 on PATH).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Tasks running at once (default: 2 × CPUs).
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Print the finished run as JSON instead of a summary.
    #[arg(short = 'o', long, value_parser = ["text", "json"], default_value = "text")]
    pub output: String,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first.
    List {
        /// Output format.
        #[arg(short = 'o', long, value_parser = ["text", "json"], default_value = "text")]
        output: String,
        /// Only runs in this state (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED).
        #[arg(long)]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Show one run with its tasks, states, durations and outputs.
    Get {
        /// Run id (or a unique prefix).
        run: String,
        /// Output format.
        #[arg(short = 'o', long, value_parser = ["text", "json"], default_value = "text")]
        output: String,
    },
    /// Resume a run that was interrupted (or retry a failed one's failed tasks).
    Resume {
        /// Run id (or a unique prefix).
        run: String,
        /// Python interpreter for lightweight components.
        #[arg(long)]
        python: Option<PathBuf>,
        /// Tasks running at once.
        #[arg(long)]
        parallelism: Option<usize>,
    },
    /// Delete a finished run, its records and its artifacts.
    Delete {
        /// Run id (or a unique prefix).
        run: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Create or replace a secret.
    Create {
        /// Secret name.
        name: String,
        /// KEY=VALUE (repeatable).
        #[arg(long = "from-literal", value_name = "KEY=VALUE", required = true)]
        literals: Vec<String>,
    },
    /// List secret names.
    List,
    /// Delete a secret.
    Delete {
        /// Secret name.
        name: String,
    },
}

/// Below this resident size `fork` starts a workload faster than the exec
/// shim; above it the shim wins (fork's cost grows with the page tables).
pub(crate) const SHIM_MIN_RSS: u64 = 64 << 20;

pub(crate) struct Ctx {
    pub(crate) home: PathBuf,
    pub(crate) store: Store,
    pub(crate) namespace: Namespace,
}

impl Ctx {
    pub(crate) async fn open(cli: &Cli) -> Result<Self> {
        let home = data_dir(cli)?;
        let store = match &cli.database {
            Some(url) => Store::open(url).await?,
            None => Store::open_in_dir(&home).await?,
        };
        let namespace = Namespace::new(cli.namespace.clone())?;
        Ok(Self {
            home,
            store,
            namespace,
        })
    }

    fn engine(
        &self,
        python: Option<PathBuf>,
        parallelism: Option<usize>,
    ) -> (Engine, Arc<LocalRuntime>) {
        let runtime = Arc::new(LocalRuntime::new(LocalConfig {
            scratch_dir: self.home.join("scratch"),
            warm_python: std::env::var_os("OXFLOW_NO_WARM_PYTHON").is_none(),
            // `shutil` and `locale` are what executor_main imports lazily
            // (through argparse); preloading them saves ~4 ms per step.
            preload_modules: vec![
                "kfp.dsl.executor_main".into(),
                "shutil".into(),
                "locale".into(),
            ],
            preload_env: [("_KFP_RUNTIME".to_owned(), "true".to_owned())].into(),
            // Start workloads through this very binary with posix_spawn
            // instead of forking a process that may hold hundreds of MiB
            // (OXFLOW_FORK_SPAWN=1 forks directly instead).
            spawn_shim: std::env::var_os("OXFLOW_FORK_SPAWN")
                .is_none()
                .then(|| PathBuf::from("/proc/self/exe")),
            // Small processes fork faster than they start the shim.
            shim_min_rss_bytes: SHIM_MIN_RSS,
        }));
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let engine = Engine::new(
            self.store.clone(),
            runtime.clone(),
            ArtifactStore::new(self.home.join("artifacts")),
            EngineConfig {
                data_dir: self.home.clone(),
                max_parallel: parallelism.unwrap_or(cpus * 2),
                python,
            },
        );
        (engine, runtime)
    }
}

fn dirs_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub async fn main(cli: Cli) -> Result<ExitCode> {
    if let Some(url) = cli.server.as_deref().filter(|u| !u.trim().is_empty())
        && !matches!(
            cli.command,
            Command::Validate { .. }
                | Command::Kubeconfig
                | Command::Token
                | Command::Serve(_)
                | Command::Apply(_)
                | Command::Isvc(_)
                | Command::TrainedModel(_)
                | Command::Secrets(_)
                | Command::Get(_)
                | Command::Describe(_)
                | Command::Delete(_)
        )
    {
        return crate::remote::main(&cli, url).await;
    }
    match &cli.command {
        Command::Validate { file } => {
            let p = Pipeline::load_file(file)?;
            println!(
                "{}: ok (pipeline {:?}, {} components, {} parameters)",
                file.display(),
                p.spec.pipeline_info.name,
                p.spec.components.len(),
                p.spec.root.input_definitions.parameters.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => run(&cli, args).await,
        Command::Up(args) => up(&cli, args).await,
        Command::Kubeconfig => {
            let home = data_dir(&cli)?;
            println!("{}", home.join(crate::kubeconfig::FILE).display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Token => {
            let home = data_dir(&cli)?;
            println!("{}", credentials(&home)?.token());
            Ok(ExitCode::SUCCESS)
        }
        Command::Tune { file, output } => crate::tune::tune(&cli, file, output).await,
        Command::Experiments(cmd) => crate::tune::experiments(&cli, cmd).await,
        Command::Serve(args) => crate::serve::serve(&cli, args).await,
        Command::Apply(args) => crate::isvc::apply(&cli, args).await,
        Command::Isvc(cmd) => crate::isvc::isvc(&cli, cmd).await,
        Command::TrainedModel(cmd) => crate::trainedmodel::trained_model(&cli, cmd).await,
        Command::Get(args) => crate::get::get(&cli, args).await,
        Command::Describe(args) => crate::get::describe(&cli, args).await,
        Command::Delete(args) => crate::get::delete(&cli, args).await,
        Command::Runs(cmd) => runs(&cli, cmd).await,
        Command::Logs(args) if args.task.is_none() => crate::get::pod_logs(&cli, args).await,
        Command::Logs(args) => {
            let (run, task) = (&args.target, args.task.as_deref().unwrap_or_default());
            let ctx = Ctx::open(&cli).await?;
            let run = ctx.store.find_run(run).await?;
            let tasks = ctx.store.list_tasks(&run.id).await?;
            let t = tasks
                .iter()
                .find(|t| t.path == *task)
                .or_else(|| {
                    let by_name: Vec<_> = tasks
                        .iter()
                        .filter(|t| t.name == *task || t.display_name == *task)
                        .collect();
                    (by_name.len() == 1).then(|| by_name[0])
                })
                .with_context(|| {
                    let names: Vec<&str> = tasks
                        .iter()
                        .filter(|t| t.log_path.is_some())
                        .map(|t| t.path.as_str())
                        .collect();
                    format!(
                        "run {} has no task {task:?} (tasks with logs: {})",
                        run.id,
                        names.join(", ")
                    )
                })?;
            let Some(log) = &t.log_path else {
                bail!("task {} is a {} and has no log", t.path, t.kind);
            };
            match std::fs::read(log) {
                Ok(bytes) => {
                    use std::io::Write;
                    std::io::stdout().write_all(&bytes)?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    bail!("task {} has not written a log yet", t.path)
                }
                Err(e) => return Err(e).with_context(|| format!("reading {log}")),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Secrets(cmd) => {
            // A thin alias over `v1` Secrets (`oxflow get secrets` and
            // kubectl see the same objects), locally or on `--server`.
            use oxflow_resources::builtin::SECRET;
            let ns = Namespace::new(cli.namespace.clone())?;
            let backend = crate::objects::Backend::open(&cli).await?;
            match cmd {
                SecretsCommand::Create { name, literals } => {
                    let mut data = serde_json::Map::new();
                    for l in literals {
                        let (k, v) = l
                            .split_once('=')
                            .with_context(|| format!("--from-literal {l:?}: expected KEY=VALUE"))?;
                        if k.is_empty() {
                            bail!("--from-literal {l:?}: the key is empty");
                        }
                        data.insert(k.to_owned(), Value::String(v.to_owned()));
                    }
                    let object = serde_json::json!({
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "metadata": {"name": name, "namespace": ns.as_str()},
                        "type": oxflow_core::secret::OPAQUE,
                        "stringData": data,
                    });
                    backend.apply(&SECRET, &ns, object).await?;
                    println!("secret {name} saved in namespace {ns}");
                }
                SecretsCommand::List => {
                    for s in backend.list(&SECRET, Some(&ns)).await? {
                        println!("{}", s["metadata"]["name"].as_str().unwrap_or_default());
                    }
                }
                SecretsCommand::Delete { name } => {
                    if !backend.delete(&SECRET, &ns, name).await? {
                        bail!("no secret {name:?} in namespace {ns}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) fn parse_params(raw: &[String]) -> Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    for p in raw {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("-p {p:?}: expected NAME=VALUE"))?;
        if out
            .insert(k.trim().to_owned(), Value::String(v.to_owned()))
            .is_some()
        {
            bail!("-p {k}: given twice");
        }
    }
    Ok(out)
}

async fn run(cli: &Cli, args: &RunArgs) -> Result<ExitCode> {
    let pipeline = Pipeline::load_file(&args.file)?;
    let params = parse_params(&args.params)?;
    let ctx = Ctx::open(cli).await?;
    let (engine, runtime) = ctx.engine(args.python.clone(), args.parallelism);
    engine.prewarm(&pipeline);
    recover_and_report(&engine).await?;
    let req = SubmitRequest {
        namespace: ctx.namespace.clone(),
        display_name: args.name.clone(),
        parameters: params,
        options: RunOptions {
            enable_cache: !args.no_cache,
            base_dir: std::env::current_dir()
                .ok()
                .map(|d| d.to_string_lossy().into_owned()),
        },
    };
    let run = engine.submit(&pipeline, req).await?;
    // The engine re-reads the spec from the run record; a large pipeline
    // should not be held twice while it executes.
    drop(pipeline);
    eprintln!("run {} ({}) submitted", run.id, run.display_name);
    let finished = execute_with_progress(&engine, &run.id).await;
    runtime.shutdown().await;
    let finished = finished?;
    print_run(&ctx.store, &finished, &args.output).await?;
    Ok(exit_for(finished.state))
}

/// Prints a run with its tasks, as JSON (`-o json`) or a summary table.
/// Neither holds every task's inputs and outputs at once: the table reads
/// summaries and the JSON is written a page of tasks at a time, so printing
/// a 10,000-task run costs no more memory than running it.
async fn print_run(store: &Store, run: &RunRecord, output: &str) -> Result<()> {
    if output == "json" {
        const PAGE: u32 = 256;
        let out = std::io::BufWriter::new(std::io::stdout());
        let mut writer = output::RunJsonWriter::begin(out, run)?;
        let mut last = None;
        loop {
            let page = store.list_tasks_page(&run.id, last.as_ref(), PAGE).await?;
            for t in &page {
                writer.task(t)?;
            }
            let full = page.len() == PAGE as usize;
            last = page.into_iter().last();
            if !full {
                break;
            }
        }
        writer.finish()?;
    } else {
        let tasks = store.list_task_summaries(&run.id).await?;
        output::print_summary(run, &tasks);
    }
    Ok(())
}

fn exit_for(state: RunState) -> ExitCode {
    if state == RunState::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn recover_and_report(engine: &Engine) -> Result<()> {
    for id in engine.recover().await? {
        eprintln!("note: run {id} was interrupted; resume it with `oxflow runs resume {id}`");
    }
    Ok(())
}

/// Executes a run while showing progress; Ctrl-C cancels it.
async fn execute_with_progress(engine: &Engine, run_id: &str) -> Result<oxflow_store::RunRecord> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let progress = tokio::spawn(output::progress(rx));
    let ctrl_c = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("cancelling the run (Ctrl-C again to force)...");
                cancel.cancel();
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        })
    };
    let result = engine.execute(run_id, Some(tx), cancel).await;
    ctrl_c.abort();
    let _ = progress.await;
    Ok(result?)
}

async fn runs(cli: &Cli, cmd: &RunsCommand) -> Result<ExitCode> {
    let ctx = Ctx::open(cli).await?;
    match cmd {
        RunsCommand::List {
            output,
            state,
            limit,
        } => {
            let (engine, _rt) = ctx.engine(None, None);
            engine.recover().await?;
            let states = match state {
                Some(s) => vec![
                    s.to_ascii_uppercase()
                        .parse::<RunState>()
                        .map_err(|e| anyhow::anyhow!("--state: {e}"))?,
                ],
                None => vec![],
            };
            let q = RunQuery {
                namespace: Some(ctx.namespace.clone()),
                states,
                newest_first: true,
                limit: Some(*limit),
                offset: 0,
            };
            let runs = ctx.store.list_runs(&q).await?;
            if output == "json" {
                let v: Vec<Value> = runs.iter().map(|r| output::run_json(r, &[])).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                output::print_runs(&runs);
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Get { run, output } => {
            let (engine, _rt) = ctx.engine(None, None);
            engine.recover().await?;
            let run = ctx.store.find_run(run).await?;
            print_run(&ctx.store, &run, output).await?;
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Resume {
            run,
            python,
            parallelism,
        } => {
            let (engine, runtime) = ctx.engine(python.clone(), *parallelism);
            recover_and_report(&engine).await?;
            let mut record = ctx.store.find_run(run).await?;
            if record.state == RunState::Failed {
                // Retrying a failed run re-runs only what did not succeed.
                record.state = RunState::Pending;
                record.finished_at = None;
                ctx.store.update_run(&record).await?;
            } else if record.state.is_terminal() {
                bail!(
                    "run {} already ended {}; only interrupted or failed runs can be resumed",
                    record.id,
                    record.state
                );
            }
            let finished = execute_with_progress(&engine, &record.id).await;
            runtime.shutdown().await;
            let finished = finished?;
            print_run(&ctx.store, &finished, "text").await?;
            Ok(exit_for(finished.state))
        }
        RunsCommand::Delete { run } => {
            let (engine, _rt) = ctx.engine(None, None);
            engine.recover().await?;
            let record = ctx.store.find_run(run).await?;
            if !record.state.is_terminal() && record.state != RunState::Pending {
                bail!(
                    "run {} is {}; wait for it to finish first",
                    record.id,
                    record.state
                );
            }
            engine.delete_run(&record).await?;
            println!("deleted run {}", record.id);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The names the server's TLS certificate carries: loopback, the
/// addresses bound, and the hosts allowed with `--allowed-hosts`.
fn tls_names(bound: &[std::net::SocketAddr], allowed: &[String]) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    for addr in bound {
        if !addr.ip().is_unspecified() {
            names.push(addr.ip().to_string());
        }
    }
    for host in allowed {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_owned());
        }
    }
    names.sort();
    names.dedup();
    names
}

/// The namespace Oxflow works in by default exists as an object (as
/// `default` does on every Kubernetes cluster), so `kubectl get ns` shows it.
async fn ensure_default_namespace(
    resources: &oxflow_resources::Resources,
    namespace: &Namespace,
) -> Result<()> {
    let body = serde_json::json!({"metadata": {"name": namespace.as_str()}});
    match resources
        .create(
            &oxflow_resources::builtin::NAMESPACE,
            None,
            body,
            &Default::default(),
        )
        .await
    {
        Ok(_) | Err(oxflow_resources::ResourceError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e).context("creating the default namespace"),
    }
}

/// `oxflow up`: the API server with a run controller, until Ctrl-C.
async fn up(cli: &Cli, args: &UpArgs) -> Result<ExitCode> {
    let ctx = Ctx::open(cli).await?;
    let credentials = credentials(&ctx.home)?;
    // The API and dashboard listener serves the login page; the gRPC one
    // takes tokens only.
    let gate = Arc::new(oxflow_edge::Gate::new(credentials.clone(), true));
    let grpc_gate = Arc::new(oxflow_edge::Gate::new(credentials.clone(), false));
    let (engine, runtime) = ctx.engine(args.python.clone(), args.parallelism);
    crate::trim::start();
    let resources = oxflow_resources::Resources::new(ctx.store.clone(), oxflow_server::registry());
    ensure_default_namespace(&resources, &ctx.namespace).await?;
    crate::objects::migrate_legacy(&resources).await?;
    resources
        .warm()
        .await
        .context("reading the stored objects into memory")?;
    // Pipeline steps show as pods from the first run on (unless asked not to).
    let task_pods =
        oxflow_server::task_pods::PipelinePods::new(resources.clone(), engine.artifacts().clone());
    if args.step_pods {
        engine.set_pods(Arc::new(task_pods.clone()));
    }
    // PersistentVolumeClaims: bound to directories by their controller
    // (those written through the API) and by the engine inline (a step's
    // CreatePVC), over the same objects.
    let volumes = oxflow_volumes::LocalVolumes::new(resources.clone(), ctx.home.join("volumes"));
    engine.set_volumes(volumes.clone());
    let _volume_controller = oxflow_volumes::VolumeController::start(volumes);
    let controller = oxflow_pipelines::RunController::new(engine, args.max_runs);
    let loop_handle = controller.start();
    // Recurring runs: creates their runs as slots come due (catching up after downtime).
    let scheduler = oxflow_pipelines::RecurringRunScheduler::new(
        controller.clone(),
        Arc::new(oxflow_pipelines::SystemClock),
    );
    let scheduler_handle = scheduler.start();
    for addr in [args.addr, args.grpc_addr] {
        if args.edge.auth == AuthMode::None && !addr.ip().is_loopback() {
            bail!(
                "--auth none: refusing to serve {addr} without authentication; \
                 only a loopback address (127.0.0.1, ::1) may be served without it"
            );
        }
    }
    // Bound before anything else starts, so that trials of Katib
    // experiments can be told where to push metrics (port 0 included).
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("listening on {}", args.addr))?;
    let bound = listener.local_addr()?;
    let report_host = if bound.ip().is_unspecified() {
        std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), bound.port())
    } else {
        bound
    };
    let (tuning, tuning_runtime) = ctx.tuning(
        resources.clone(),
        Some(format!("http://{report_host}")),
        Some(crate::tune::report_tokens(&credentials)),
    )?;
    let tuning_handle = tuning.start();
    let serving = oxflow_serving::controller::ServingController::new(
        resources.clone(),
        oxflow_serving::controller::ControllerConfig {
            home: ctx.home.clone(),
            model_roots: args.model_roots.clone(),
            runtime: oxflow_serving::runtimes::RuntimeConfig {
                python: oxflow_serving::runtimes::PythonConfig {
                    python: args
                        .python
                        .clone()
                        .unwrap_or_else(|| PathBuf::from("python3")),
                    workers: 1,
                    runtime: runtime.clone(),
                    logs_dir: ctx.home.join("logs").join("serving"),
                },
                max_batch_size: None,
            },
            base_url: format!("http://{report_host}"),
            hold: std::time::Duration::from_secs(60),
            resync: std::time::Duration::from_secs(2),
            workloads: Some(runtime.clone() as Arc<dyn oxflow_runtime::Runtime>),
            scale_to_zero_after: std::time::Duration::from_secs(60),
            autoscale: Default::default(),
        },
    );
    let serving_handle = serving.start().await;
    let grpc_listener = tokio::net::TcpListener::bind(args.grpc_addr)
        .await
        .with_context(|| {
            format!(
                "listening on {} for inference gRPC (choose another address with --grpc-addr)",
                args.grpc_addr
            )
        })?;
    let grpc_bound = grpc_listener.local_addr()?;
    // TLS on the same ports as plain HTTP, from the data directory's
    // local CA: kubectl sends the kubeconfig's token only over TLS.
    let tls = oxflow_edge::tls_identity(
        &ctx.home.join("tls"),
        &tls_names(&[bound, grpc_bound], &args.edge.allowed_hosts),
    )?;
    let mut edge = args.edge.serve_config(bound, &gate)?;
    edge.tls = Some(tls.config.clone());
    let mut grpc_edge = args.edge.serve_config(grpc_bound, &grpc_gate)?;
    grpc_edge.tls = Some(tls.config.clone());
    let base_url = format!("http://{report_host}");
    let kubeconfig = crate::kubeconfig::write(
        &ctx.home,
        &format!("https://{report_host}"),
        gate.credentials().token(),
        &tls.ca_pem,
    )?;
    let state = oxflow_server::AppState {
        controller: controller.clone(),
        resources,
        store: ctx.store.clone(),
        default_namespace: ctx.namespace.clone(),
        pod_logs: vec![
            Arc::new(tuning.clone()),
            Arc::new(task_pods),
            Arc::new(serving.pod_logs()),
        ],
        tuning: Some(tuning.clone()),
        serving: Some(serving.clone()),
    };
    let shutdown = CancellationToken::new();
    {
        use tokio::signal::unix::{SignalKind, signal};
        // Registered here, before the "serving on" line is printed, so a
        // Ctrl-C (or SIGTERM from a service manager) that follows it is
        // always handled as a clean stop.
        let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
        let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            // Stop first: a stderr nobody reads any more (the parent that
            // started us is gone) must not keep the server from stopping.
            shutdown.cancel();
            crate::output::note("stopping...");
        });
    }
    // Tests and scripts wait for the first line. One write, ignoring a
    // stderr nobody reads any more: a server must not die because the
    // process that started it stopped listening.
    let mut banner = format!(
        "oxflow is serving on http://{bound} (data in {}; inference gRPC on {grpc_bound})",
        ctx.home.display()
    );
    match args.edge.auth {
        AuthMode::Token => banner.push_str(&format!(
            "\n  dashboard (this link logs in once): {}\n  kubectl: export KUBECONFIG={}\n  token: `oxflow token`",
            gate.login_url(&base_url),
            kubeconfig.display()
        )),
        AuthMode::None => banner.push_str(&format!(
            "\n  authentication is off (--auth none): anyone who can reach {bound} may do anything"
        )),
    }
    crate::output::note(&banner);
    let grpc_task = tokio::spawn(oxflow_serving::controller::serve_grpc(
        serving.clone(),
        grpc_listener,
        grpc_edge,
        shutdown.clone(),
    ));
    oxflow_server::serve_on(
        listener,
        oxflow_server::router(state),
        edge,
        shutdown.clone(),
    )
    .await
    .with_context(|| format!("serving on {bound}"))?;
    // Runs still executing are left as they are (no state is written for
    // them now): their tasks stop when this process exits, and the next
    // `oxflow up` resumes them, as after a crash.
    scheduler.stop();
    scheduler_handle.abort();
    controller.stop();
    loop_handle.abort();
    tuning.shutdown();
    tuning_handle.abort();
    serving.shutdown();
    serving_handle.abort();
    grpc_task.abort();
    drop(serving);
    drop(tuning_runtime);
    drop(runtime);
    Ok(ExitCode::SUCCESS)
}
