//! `oxflow tune` and `oxflow experiments`: Katib experiments from the command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use oxflow_core::{ExperimentPhase, TrialPhase};
use oxflow_resources::Resources;
use oxflow_runtime::{LocalConfig, LocalRuntime};
use oxflow_tuning::kinds::EXPERIMENT;
use oxflow_tuning::{
    StoredExperiment, StoredTrial, TuningConfig, TuningController, TuningEvent, trial_objects,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Ctx, SHIM_MIN_RSS};

/// The Python helper trials import to push metrics (`kind: Push`).
const PYTHON_HELPER: &str = include_str!("../python/oxflow_katib.py");

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_in_tables_are_short() {
        use super::num;
        assert_eq!(num(0.032999909647354775), "0.033");
        assert_eq!(num(-0.18584772871786437), "-0.185848");
        assert_eq!(num(2.0), "2");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(1.5e-7), "1.5000e-7");
        assert_eq!(num(1686.25), "1686.25");
    }
}

#[derive(Debug, Subcommand)]
pub enum ExperimentsCommand {
    /// List experiments with their status and best objective.
    List {
        /// Output format.
        #[arg(short = 'o', long, value_parser = ["text", "json"], default_value = "text")]
        output: String,
    },
    /// Show an experiment; `-o yaml|json` prints it in Katib's shape.
    Get {
        /// Experiment name.
        name: String,
        /// Output format.
        #[arg(short = 'o', long, value_parser = ["text", "json", "yaml"], default_value = "text")]
        output: String,
    },
    /// List an experiment's trials with parameters, metrics and state.
    Trials {
        /// Experiment name.
        name: String,
        /// Output format.
        #[arg(short = 'o', long, value_parser = ["text", "json"], default_value = "text")]
        output: String,
    },
    /// Stop an experiment: its running trials are killed; it can be resumed.
    Stop {
        /// Experiment name.
        name: String,
    },
    /// Resume a stopped, interrupted or finished experiment and wait for it.
    Resume {
        /// Experiment name.
        name: String,
        /// A larger maxTrialCount (needed to resume one that reached its maximum).
        #[arg(long)]
        max_trial_count: Option<u32>,
        /// Only mark it for resuming (a running `oxflow up` picks it up).
        #[arg(long)]
        detach: bool,
    },
    /// Delete an experiment with its trials, metrics and logs.
    Delete {
        /// Experiment name.
        name: String,
    },
    /// Print a trial's output.
    Logs {
        /// Trial name.
        trial: String,
    },
}

impl Ctx {
    /// A tuning controller over this data directory's `resources`;
    /// `report_url` is where trials push metrics, when something serves it.
    pub(crate) fn tuning(
        &self,
        resources: Resources,
        report_url: Option<String>,
        report_tokens: Option<oxflow_tuning::ReportTokens>,
    ) -> Result<(TuningController, Arc<LocalRuntime>)> {
        let runtime = Arc::new(LocalRuntime::new(LocalConfig {
            scratch_dir: self.home.join("scratch"),
            warm_python: false,
            preload_modules: Vec::new(),
            preload_env: Default::default(),
            spawn_shim: std::env::var_os("OXFLOW_FORK_SPAWN")
                .is_none()
                .then(|| PathBuf::from("/proc/self/exe")),
            // Small processes fork faster than they start the shim.
            shim_min_rss_bytes: SHIM_MIN_RSS,
        }));
        let python = self.home.join("python");
        std::fs::create_dir_all(&python)
            .with_context(|| format!("creating {}", python.display()))?;
        let helper = python.join("oxflow_katib.py");
        if std::fs::read_to_string(&helper).ok().as_deref() != Some(PYTHON_HELPER) {
            std::fs::write(&helper, PYTHON_HELPER)
                .with_context(|| format!("writing {}", helper.display()))?;
        }
        let controller = TuningController::new(
            resources,
            runtime.clone(),
            TuningConfig {
                logs_dir: self.home.join("logs").join("tuning"),
                work_dir: self.home.join("tuning"),
                report_url,
                report_tokens,
                python_path: Some(python),
                owner: oxflow_runtime::owner::owner_id(),
            },
        );
        Ok((controller, runtime))
    }
}

/// Scoped tokens for trials' metrics pushes, under `credentials`.
pub(crate) fn report_tokens(credentials: &oxflow_auth::Credentials) -> oxflow_tuning::ReportTokens {
    let credentials = credentials.clone();
    Arc::new(move |path: &str| credentials.scoped_token("POST", path))
}

/// Serves the metrics-push endpoint on an ephemeral loopback port for as
/// long as the returned token is not cancelled, admitting the data
/// directory's token and trials' scoped tokens; returns its base URL.
async fn serve_reports(
    resources: Resources,
    credentials: &oxflow_auth::Credentials,
    stop: CancellationToken,
) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("listening for pushed metrics on loopback")?;
    let addr = listener.local_addr()?;
    let app = oxflow_server::katib_report_router(resources);
    let gate = Arc::new(oxflow_edge::Gate::new(credentials.clone(), false));
    tokio::spawn(async move {
        let config = oxflow_edge::ServeConfig::new(
            oxflow_edge::HostPolicy::loopback(),
            oxflow_edge::Access::Token(gate),
        );
        let _ = oxflow_server::serve_on(listener, app, config, stop).await;
    });
    Ok(format!("http://{addr}"))
}

pub(crate) async fn tune(cli: &Cli, file: &Path, output: &str) -> Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let ctx = Ctx::open(cli).await?;
    let resources = local_resources(&ctx).await?;
    let stop_reports = CancellationToken::new();
    let _guard = stop_reports.clone().drop_guard();
    let credentials = crate::cli::credentials(&ctx.home)?;
    let url = serve_reports(resources.clone(), &credentials, stop_reports.clone()).await?;
    let (tuning, runtime) = ctx.tuning(resources, Some(url), Some(report_tokens(&credentials)))?;
    let cwd = std::env::current_dir().ok();
    let e = match tuning.create(&text, &ctx.namespace, cwd.as_deref()).await {
        Ok(e) => e,
        Err(oxflow_tuning::TuningError::Spec(err)) => {
            eprintln!("{}: {err}", file.display());
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    eprintln!("experiment {} created in namespace {}", e.name, e.namespace);
    let code = drive(&tuning, e, output).await;
    runtime.shutdown().await;
    code
}

/// The data directory's objects, those from before the resource model
/// moved onto it first.
async fn local_resources(ctx: &Ctx) -> Result<Resources> {
    let resources = Resources::new(ctx.store.clone(), oxflow_server::registry());
    crate::objects::migrate_legacy(&resources).await?;
    Ok(resources)
}

/// The stored experiment object (Katib's shape, with its status).
async fn experiment_object(resources: &Resources, e: &StoredExperiment) -> Result<Value> {
    Ok(resources
        .get(&EXPERIMENT, Some(e.namespace.as_str()), &e.name)
        .await?)
}

/// Runs an experiment in the foreground with live output; Ctrl-C stops it.
async fn drive(tuning: &TuningController, e: StoredExperiment, output: &str) -> Result<ExitCode> {
    let mut events = tuning.subscribe();
    let cancel = CancellationToken::new();
    let runner = {
        let tuning = tuning.clone();
        let cancel = cancel.clone();
        let (ns, name) = (e.namespace.clone(), e.name.clone());
        tokio::spawn(async move { tuning.run(&ns, &name, cancel).await })
    };
    let ctrl_c = {
        let tuning = tuning.clone();
        let (ns, name) = (e.namespace.clone(), e.name.clone());
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("stopping the experiment (Ctrl-C again to force)...");
                let _ = tuning.stop(&ns, &name).await;
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        })
    };
    let printer = {
        let exp_id = e.id.clone();
        let maximize = e
            .spec
            .pointer("/spec/objective/type")
            .and_then(Value::as_str)
            == Some("maximize");
        let metric = e
            .spec
            .pointer("/spec/objective/objectiveMetricName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        tokio::spawn(async move {
            let mut best: Option<(String, f64)> = None;
            eprintln!("{:<19} {:<30} {:>14}  parameters", "STATE", "TRIAL", metric);
            while let Ok(ev) = events.recv().await {
                let TuningEvent::Trial {
                    experiment_id,
                    trial,
                    phase,
                    objective,
                    assignments,
                } = ev
                else {
                    continue;
                };
                if experiment_id != exp_id || !(phase.is_terminal() || phase == TrialPhase::Running)
                {
                    continue;
                }
                let params = assignments_text(&assignments);
                if let Some(v) = objective
                    && matches!(phase, TrialPhase::Succeeded | TrialPhase::EarlyStopped)
                    && best
                        .as_ref()
                        .is_none_or(|(_, b)| if maximize { v > *b } else { v < *b })
                {
                    best = Some((trial.clone(), v));
                }
                let value = objective.map(num).unwrap_or_else(|| "-".into());
                let best_text = best
                    .as_ref()
                    .map(|(n, v)| format!("   best: {} ({n})", num(*v)))
                    .unwrap_or_default();
                eprintln!(
                    "{:<19} {:<30} {:>14}  {params}{}",
                    phase.as_str(),
                    trial,
                    value,
                    if phase.is_terminal() {
                        best_text
                    } else {
                        String::new()
                    }
                );
            }
        })
    };
    let result = runner.await.context("the experiment task failed")?;
    ctrl_c.abort();
    printer.abort();
    let finished = result?;
    let trials = tuning.trials(&finished).await?;
    if output == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&experiment_object(tuning.resources(), &finished).await?)?
        );
    } else {
        print_summary(&finished, &trials);
    }
    Ok(if finished.phase == ExperimentPhase::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A metric value for a table: six significant figures, the full value
/// stays in `-o json`.
fn num(v: f64) -> String {
    if v == 0.0 || (1e-3..1e6).contains(&v.abs()) {
        let s = format!("{v:.6}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_owned()
    } else {
        format!("{v:.4e}")
    }
}

/// `name=value …` of a trial's parameter assignments.
fn assignments_text(assignments: &Value) -> String {
    assignments
        .as_array()
        .map(|l| {
            l.iter()
                .map(|a| {
                    format!(
                        "{}={}",
                        a.get("name").and_then(Value::as_str).unwrap_or("?"),
                        a.get("value").and_then(Value::as_str).unwrap_or("?")
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn print_summary(e: &StoredExperiment, trials: &[StoredTrial]) {
    let reason = e.latest_reason();
    println!(
        "experiment {}: {} ({reason}), {} trials",
        e.name,
        e.phase,
        trials.len()
    );
    let mut counts = std::collections::BTreeMap::new();
    for t in trials {
        *counts.entry(t.phase.as_str()).or_insert(0) += 1;
    }
    let counts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    if !counts.is_empty() {
        println!("  trials: {}", counts.join(", "));
    }
    match e
        .optimal_trial
        .as_ref()
        .and_then(|n| trials.iter().find(|t| &t.name == n))
    {
        Some(best) => {
            println!(
                "  best trial: {} with objective {}",
                best.name,
                best.objective.map(|v| v.to_string()).unwrap_or_default()
            );
            println!("    parameters: {}", assignments_text(&best.assignments));
        }
        None => println!("  no trial has reported the objective yet"),
    }
}

pub(crate) async fn experiments(cli: &Cli, cmd: &ExperimentsCommand) -> Result<ExitCode> {
    let ctx = Ctx::open(cli).await?;
    let resources = local_resources(&ctx).await?;
    let ns = &ctx.namespace;
    let tuning_of = |report: Option<(String, oxflow_tuning::ReportTokens)>| {
        let (url, tokens) = report.unzip();
        ctx.tuning(resources.clone(), url, tokens)
    };
    let (tuning, _rt) = tuning_of(None)?;
    match cmd {
        ExperimentsCommand::List { output } => {
            let (objects, _) = resources
                .list(
                    &EXPERIMENT,
                    Some(ns.as_str()),
                    &Default::default(),
                    &Default::default(),
                )
                .await?;
            if output == "json" {
                println!("{}", serde_json::to_string_pretty(&objects)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<28} {:<11} {:<31} {:>7} {:>14}  BEST TRIAL",
                "NAME", "STATE", "REASON", "TRIALS", "OBJECTIVE"
            );
            for e in objects.iter().filter_map(StoredExperiment::from_object) {
                let trials = tuning.trials(&e).await?;
                let best = e
                    .optimal_trial
                    .as_ref()
                    .and_then(|n| trials.iter().find(|t| &t.name == n));
                println!(
                    "{:<28} {:<11} {:<31} {:>7} {:>14}  {}",
                    e.name,
                    e.phase.as_str(),
                    e.latest_reason(),
                    trials.len(),
                    best.and_then(|b| b.objective)
                        .map(num)
                        .unwrap_or_else(|| "-".into()),
                    best.map(|b| b.name.as_str()).unwrap_or("-")
                );
            }
        }
        ExperimentsCommand::Get { name, output } => {
            let e = tuning.experiment(ns, name).await?;
            match output.as_str() {
                "json" => println!(
                    "{}",
                    serde_json::to_string_pretty(&experiment_object(&resources, &e).await?)?
                ),
                "yaml" => print!(
                    "{}",
                    serde_saphyr::to_string(&experiment_object(&resources, &e).await?)
                        .context("rendering YAML")?
                ),
                _ => print_summary(&e, &tuning.trials(&e).await?),
            }
        }
        ExperimentsCommand::Trials { name, output } => {
            let e = tuning.experiment(ns, name).await?;
            if output == "json" {
                let items = trial_objects(&resources, &e).await?;
                println!("{}", serde_json::to_string_pretty(&items)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<30} {:<19} {:>14}  PARAMETERS",
                "TRIAL", "STATE", "OBJECTIVE"
            );
            for t in &tuning.trials(&e).await? {
                let best = e.optimal_trial.as_deref() == Some(t.name.as_str());
                println!(
                    "{:<30} {:<19} {:>14}  {}{}",
                    t.name,
                    t.phase.as_str(),
                    t.objective.map(num).unwrap_or_else(|| "-".into()),
                    assignments_text(&t.assignments),
                    if best { "   (best)" } else { "" }
                );
            }
        }
        ExperimentsCommand::Stop { name } => {
            let e = tuning.stop(ns, name).await?;
            println!("experiment {} is {}", e.name, e.phase);
        }
        ExperimentsCommand::Resume {
            name,
            max_trial_count,
            detach,
        } => {
            let e = tuning.experiment(ns, name).await?;
            let stop_reports = CancellationToken::new();
            let _guard = stop_reports.clone().drop_guard();
            let credentials = crate::cli::credentials(&ctx.home)?;
            let url = serve_reports(resources.clone(), &credentials, stop_reports.clone()).await?;
            let (tuning, runtime) = tuning_of(Some((url, report_tokens(&credentials))))?;
            let e = if e.phase.is_terminal() {
                tuning.resume(ns, name, *max_trial_count).await?
            } else if max_trial_count.is_some() {
                bail!(
                    "experiment {name} is {}; --max-trial-count applies to an ended experiment",
                    e.phase
                )
            } else {
                // Interrupted (its controller died): continue it here.
                e
            };
            if *detach {
                println!("experiment {} is {}", e.name, e.phase);
                return Ok(ExitCode::SUCCESS);
            }
            let code = drive(&tuning, e, "text").await;
            runtime.shutdown().await;
            return code;
        }
        ExperimentsCommand::Delete { name } => {
            tuning.delete(ns, name).await?;
            println!("experiment {name} deleted");
        }
        ExperimentsCommand::Logs { trial } => {
            let (e, t, _) = oxflow_tuning::find_trial(&resources, ns, trial).await?;
            if t.attempt == 0 {
                bail!("trial {trial} has not started yet");
            }
            let log = tuning.log_path(&e, &t.name);
            match std::fs::read(&log) {
                Ok(bytes) => {
                    use std::io::Write;
                    std::io::stdout().write_all(&bytes)?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    bail!("trial {trial} has not written a log yet")
                }
                Err(e) => return Err(e).with_context(|| format!("reading {}", log.display())),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
