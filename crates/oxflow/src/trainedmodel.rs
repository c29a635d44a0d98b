//! `oxflow trainedmodel` (alias `tm`): KServe TrainedModels, the models a
//! multi-model InferenceService (a predictor with a model format and no
//! storageUri) loads by name. `oxflow apply -f` stores them.
//!
//! Like `oxflow isvc`, without `--server` this works on the local data
//! directory (a running `oxflow up` on it loads what is stored within its
//! resync interval); with `--server` it goes through the server's
//! Kubernetes API.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Subcommand;
use oxflow_core::Namespace;
use oxflow_serving::kinds::TRAINED_MODEL;
use serde_json::Value;

use crate::cli::Cli;
use crate::isvc::age;
use crate::objects::Backend;

#[derive(Debug, Subcommand)]
pub enum TrainedModelCommand {
    /// List trained models with their service, URL and readiness.
    List {
        /// Output format.
        #[arg(short = 'o', long, value_parser = ["text", "json"], default_value = "text")]
        output: String,
        /// Every namespace, not only --namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// Show one trained model in KServe's shape, with its status.
    Get {
        /// The model's name.
        name: String,
        /// Output format.
        #[arg(short = 'o', long, value_parser = ["text", "json", "yaml"], default_value = "text")]
        output: String,
    },
    /// Delete a trained model (its service unloads it).
    Delete {
        /// The model's name.
        name: String,
    },
}

/// A TrainedModel condition by type.
fn condition<'v>(status: &'v Value, kind: &str) -> Option<&'v Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// Why the model cannot serve, when waiting longer would not help: a
/// failed load, a framework or a service that cannot take it. A missing
/// or not-ready service may still come (`oxflow up` picks it up).
fn failure(status: &Value) -> Option<String> {
    let ready = condition(status, "Ready")?;
    let reason = ready["reason"].as_str()?;
    matches!(
        reason,
        "ModelLoadFailed" | "FrameworkNotSupported" | "IsNotMMSPredictor" | "InvalidSpec"
    )
    .then(|| format!("{reason}: {}", ready["message"].as_str().unwrap_or("")))
}

fn is_ready(status: &Value) -> bool {
    condition(status, "Ready").is_some_and(|c| c["status"] == "True")
}

/// Waits until the model's current generation is Ready (true) or has
/// failed (false, the reason printed); an error once `deadline` passes.
pub(crate) async fn wait_ready(
    backend: &Backend,
    ns: &Namespace,
    name: &str,
    deadline: Instant,
    wait_s: u64,
) -> Result<bool> {
    loop {
        let v = backend.get(&TRAINED_MODEL, ns, name).await?;
        let status = &v["status"];
        let current = status["observedGeneration"].as_i64() == v["metadata"]["generation"].as_i64();
        if current && is_ready(status) {
            println!(
                "trained model {name} is ready at {}",
                status["url"].as_str().unwrap_or("-")
            );
            return Ok(true);
        }
        if current && let Some(why) = failure(status) {
            eprintln!("trained model {name} failed: {why}");
            return Ok(false);
        }
        if Instant::now() >= deadline {
            let why = condition(status, "Ready")
                .and_then(|c| c["message"].as_str())
                .unwrap_or("no status yet; is `oxflow up` running on this data directory?");
            bail!("trained model {name} is not ready after {wait_s}s: {why}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `oxflow trainedmodel ...`.
pub async fn trained_model(cli: &Cli, cmd: &TrainedModelCommand) -> Result<ExitCode> {
    let backend = Backend::open(cli).await?;
    let ns = Namespace::new(cli.namespace.clone())?;
    match cmd {
        TrainedModelCommand::List {
            output,
            all_namespaces,
        } => {
            let items = backend
                .list(&TRAINED_MODEL, (!*all_namespaces).then_some(&ns))
                .await?;
            if output == "json" {
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                print_table(&items, *all_namespaces);
            }
        }
        TrainedModelCommand::Get { name, output } => {
            let v = backend.get(&TRAINED_MODEL, &ns, name).await?;
            match output.as_str() {
                "json" => println!("{}", serde_json::to_string_pretty(&v)?),
                "yaml" => print!("{}", serde_saphyr::to_string(&v)?),
                _ => print_one(&v),
            }
        }
        TrainedModelCommand::Delete { name } => {
            if !backend.delete(&TRAINED_MODEL, &ns, name).await? {
                bail!("trained model {name:?} not found in namespace {ns}");
            }
            println!("trainedmodel.serving.kserve.io \"{name}\" deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn ready_word(status: &Value) -> &'static str {
    match condition(status, "Ready").and_then(|c| c["status"].as_str()) {
        Some("True") => "True",
        Some("False") => "False",
        _ => "Unknown",
    }
}

fn print_table(items: &[Value], with_ns: bool) {
    if with_ns {
        print!("{:<16} ", "NAMESPACE");
    }
    println!(
        "{:<24} {:<24} {:<64} {:<7} AGE",
        "NAME", "INFERENCESERVICE", "URL", "READY"
    );
    for v in items {
        let status = &v["status"];
        if with_ns {
            print!(
                "{:<16} ",
                v["metadata"]["namespace"].as_str().unwrap_or("-")
            );
        }
        println!(
            "{:<24} {:<24} {:<64} {:<7} {}",
            v["metadata"]["name"].as_str().unwrap_or("-"),
            v["spec"]["inferenceService"].as_str().unwrap_or("-"),
            status["url"].as_str().unwrap_or("-"),
            ready_word(status),
            age(v)
        );
    }
}

fn print_one(v: &Value) {
    let status = &v["status"];
    let meta = &v["metadata"];
    let model = &v["spec"]["model"];
    println!("name              {}", meta["name"].as_str().unwrap_or("-"));
    println!(
        "namespace         {}",
        meta["namespace"].as_str().unwrap_or("-")
    );
    println!("generation        {}", meta["generation"]);
    println!(
        "inferenceService  {}",
        v["spec"]["inferenceService"].as_str().unwrap_or("-")
    );
    println!(
        "model             {} from {} ({})",
        model["framework"].as_str().unwrap_or("-"),
        model["storageUri"].as_str().unwrap_or("-"),
        model["memory"].as_str().unwrap_or("-")
    );
    println!(
        "url               {}",
        status["url"].as_str().unwrap_or("-")
    );
    println!("ready             {}", ready_word(status));
    for c in status["conditions"].as_array().into_iter().flatten() {
        let mut line = format!(
            "condition         {:<24} {:<7}",
            c["type"].as_str().unwrap_or("-"),
            c["status"].as_str().unwrap_or("-")
        );
        if let Some(m) = c["message"].as_str() {
            line.push_str(&format!(" {m}"));
        }
        println!("{}", line.trim_end());
    }
}
