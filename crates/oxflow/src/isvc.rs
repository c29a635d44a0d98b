//! `oxflow apply` and `oxflow isvc`: KServe InferenceServices (and, through
//! `apply`, TrainedModels; see `trainedmodel`).
//!
//! Without `--server` they work on the local data directory: `apply` stores
//! the service and a running `oxflow up` on the same data directory serves
//! it within its resync interval (as `kubectl apply` leaves the work to the
//! controller). With `--server` they go through its Kubernetes API.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use oxflow_core::object::Kind;
use oxflow_core::{Namespace, Timestamp};
use oxflow_serving::controller::{is_ready, stored_spec};
use oxflow_serving::kinds::{INFERENCE_SERVICE, TRAINED_MODEL};
use oxflow_serving::spec::{Resource, parse_documents};
use serde_json::Value;

use crate::cli::Cli;
use crate::objects::{Backend, item_path};
use crate::remote::encode_path;

#[derive(Debug, Subcommand)]
pub enum IsvcCommand {
    /// List inference services with their URL and readiness.
    List {
        /// Output format.
        #[arg(short = 'o', long, value_parser = ["text", "json"], default_value = "text")]
        output: String,
        /// Every namespace, not only --namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// Show one inference service in KServe's shape, with its status.
    Get {
        /// The service's name.
        name: String,
        /// Output format.
        #[arg(short = 'o', long, value_parser = ["text", "json", "yaml"], default_value = "text")]
        output: String,
    },
    /// Delete an inference service (its models are unloaded).
    Delete {
        /// The service's name.
        name: String,
    },
    /// Print the output of a service's command (a custom predictor, a
    /// transformer or an explainer).
    Logs {
        /// The service's name.
        name: String,
        /// Which component.
        #[arg(short, long, value_parser = ["predictor", "transformer", "explainer"], default_value = "predictor")]
        component: String,
        /// One revision's log instead (`NAME-predictor-00001`, or a
        /// further copy `…-00001-1`), also of a revision no longer in use.
        #[arg(long, conflicts_with = "component")]
        revision: Option<String>,
    },
}

/// Arguments of `oxflow apply`.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// KServe YAML or JSON (several documents separated by `---`).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Wait until every service applied is Ready (or failed), at most this
    /// many seconds; 0 returns at once.
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub wait: u64,
}

/// `oxflow apply -f FILE`: every resource is checked before any is stored,
/// so a file with one bad document changes nothing. A file of KServe
/// documents is read by KServe's parser (its errors name `[document N]`
/// and the field); any other file document by document through the kind
/// registry, each held to its kind's rules, so every kind the server
/// serves can be applied.
pub async fn apply(cli: &Cli, args: &ApplyArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let file = args.file.display().to_string();
    let docs = oxflow_core::spec::read_documents(
        &text,
        &oxflow_core::spec::ReadOptions {
            max_bytes: oxflow_serving::spec::MAX_DOCUMENT_BYTES,
            input: "file",
            yaml_budget: oxflow_core::spec::YamlBudget::Strict,
        },
    )
    .map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
    let default_ns = Namespace::new(cli.namespace.clone())?;
    let kserve_only = docs.iter().all(|d| {
        d["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("serving.kserve.io/"))
    });
    // (kind, namespace, object), checked, in the order they are stored.
    let mut objects: Vec<(&'static Kind, Namespace, Value)> = Vec::new();
    if kserve_only {
        let resources = parse_documents(&text).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
        for (i, r) in resources.into_iter().enumerate() {
            match r {
                Resource::InferenceService(s) => {
                    let ns = s.namespace.clone().unwrap_or_else(|| default_ns.clone());
                    let object = stored_spec(&s, &ns);
                    objects.push((&INFERENCE_SERVICE, ns, object));
                }
                Resource::TrainedModel(m) => {
                    let ns = m.namespace.clone().unwrap_or_else(|| default_ns.clone());
                    let object = oxflow_serving::controller::stored_trained_model_spec(&m, &ns);
                    objects.push((&TRAINED_MODEL, ns, object));
                }
                other => bail!(
                    "{file}: document {}: {} {:?}: Oxflow picks the runtime for each model format itself (onnx, xgboost, lightgbm, sklearn) and applies no ServingRuntimes; remove this document",
                    i + 1,
                    other.kind(),
                    other.name()
                ),
            }
        }
    } else {
        let registry = oxflow_server::registry();
        for (i, mut doc) in docs.into_iter().enumerate() {
            let at = |what: String| anyhow::anyhow!("{file}: document {}: {what}", i + 1);
            let api_version = doc["apiVersion"].as_str().unwrap_or_default().to_owned();
            let kind_name = doc["kind"].as_str().unwrap_or_default().to_owned();
            let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
            let Some(kind) = registry
                .by_kind(group, &kind_name)
                .filter(|k| k.api_version() == api_version)
            else {
                let hint = if kind_name == "Experiment" {
                    " (run a Katib Experiment with `oxflow tune -f`)"
                } else {
                    ""
                };
                return Err(at(format!(
                    "{kind_name:?} of apiVersion {api_version:?} is not a kind this server serves{hint}; `oxflow get <kind>` takes the kinds it does"
                )));
            };
            let ns = match doc["metadata"]["namespace"].as_str() {
                Some(n) => Namespace::new(n.to_owned())
                    .map_err(|e| at(format!("metadata.namespace: {e}")))?,
                None => default_ns.clone(),
            };
            if kind.namespaced {
                doc["metadata"]["namespace"] = Value::String(ns.as_str().to_owned());
            }
            if let Some(unknown) = doc.as_object().and_then(|m| {
                m.keys().find(|k| {
                    !matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                        && !kind.fields.contains(&k.as_str())
                })
            }) {
                return Err(at(format!("{unknown}: unknown field of a {kind_name}")));
            }
            let mut probe = doc.clone();
            (kind.validate)(&mut probe).map_err(|causes| {
                at(causes
                    .iter()
                    .map(|c| format!("{}: {}", c.field, c.message))
                    .collect::<Vec<_>>()
                    .join("; "))
            })?;
            objects.push((kind, ns, doc));
        }
        // TrainedModels after their services, so a file with both serves
        // its models at once.
        objects.sort_by_key(|(k, _, _)| std::ptr::eq(*k, &TRAINED_MODEL));
    }
    let backend = Backend::open(cli).await?;
    let mut applied = Vec::new();
    let mut applied_models = Vec::new();
    for (kind, ns, object) in objects {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let what = backend.apply(kind, &ns, object).await?;
        let shown = if kind.group.is_empty() {
            kind.singular.to_owned()
        } else {
            format!("{}.{}", kind.singular, kind.group)
        };
        println!("{shown}/{name} {what}");
        if std::ptr::eq(kind, &INFERENCE_SERVICE) {
            applied.push((ns, name));
        } else if std::ptr::eq(kind, &TRAINED_MODEL) {
            applied_models.push((ns, name));
        }
    }
    if args.wait == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = Instant::now() + Duration::from_secs(args.wait);
    let mut failed = false;
    for (ns, name) in &applied {
        loop {
            let v = backend.get(&INFERENCE_SERVICE, ns, name).await?;
            let status = &v["status"];
            let current =
                status["observedGeneration"].as_i64() == v["metadata"]["generation"].as_i64();
            if current
                && is_ready(status)
                && status["modelStatus"]["transitionStatus"] == "UpToDate"
            {
                println!(
                    "{name} is ready at {}",
                    status["url"].as_str().unwrap_or("-")
                );
                break;
            }
            if current && let Some(why) = failure(status) {
                eprintln!("{name} failed: {why}");
                failed = true;
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "{name} is not ready after {}s (is `oxflow up` running on this data directory?)",
                    args.wait
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for (ns, name) in &applied_models {
        if !crate::trainedmodel::wait_ready(&backend, ns, name, deadline, args.wait).await? {
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Why the latest revision (or its transformer or explainer) cannot
/// serve, when it has failed.
fn failure(status: &Value) -> Option<String> {
    let info = &status["modelStatus"]["lastFailureInfo"];
    let blocked = matches!(
        status["modelStatus"]["transitionStatus"].as_str(),
        Some("BlockedByFailedLoad" | "InvalidSpec")
    );
    if blocked {
        return Some(format!(
            "{}: {}",
            info["reason"].as_str().unwrap_or("Failed"),
            info["message"].as_str().unwrap_or("")
        ));
    }
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| {
            matches!(
                c["type"].as_str(),
                Some("TransformerReady" | "ExplainerReady")
            ) && c["status"] == "False"
                && c["reason"] != "Starting"
        })
        .map(|c| {
            format!(
                "{}: {}",
                c["reason"].as_str().unwrap_or("Failed"),
                c["message"].as_str().unwrap_or("")
            )
        })
}

/// `oxflow isvc ...`.
pub async fn isvc(cli: &Cli, cmd: &IsvcCommand) -> Result<ExitCode> {
    let backend = Backend::open(cli).await?;
    let ns = Namespace::new(cli.namespace.clone())?;
    match cmd {
        IsvcCommand::List {
            output,
            all_namespaces,
        } => {
            let items = backend
                .list(&INFERENCE_SERVICE, (!*all_namespaces).then_some(&ns))
                .await?;
            if output == "json" {
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                print_table(&items, *all_namespaces);
            }
        }
        IsvcCommand::Get { name, output } => {
            let v = backend.get(&INFERENCE_SERVICE, &ns, name).await?;
            match output.as_str() {
                "json" => println!("{}", serde_json::to_string_pretty(&v)?),
                "yaml" => print!("{}", serde_saphyr::to_string(&v)?),
                _ => print_one(&v),
            }
        }
        IsvcCommand::Logs {
            name,
            component,
            revision,
        } => match backend.remote() {
            Some(server) => {
                let query = match revision {
                    Some(r) => format!("revision={}", encode_path(r)),
                    None => format!("component={component}"),
                };
                let text = server
                    .text(
                        "GET",
                        &format!("{}/logs?{query}", item_path(&INFERENCE_SERVICE, &ns, name)),
                    )
                    .await?;
                print!("{text}");
            }
            None => {
                let ctx = backend.local().context("no local data directory")?;
                let v = backend.get(&INFERENCE_SERVICE, &ns, name).await?;
                let revision = match revision {
                    Some(r) => r.clone(),
                    None => v["status"]["components"][component.as_str()]["latestCreatedRevision"]
                        .as_str()
                        .map(str::to_owned)
                        .with_context(|| {
                            format!(
                                "{name} has no {component} (or `oxflow up` has not seen it yet)"
                            )
                        })?,
                };
                let path = oxflow_serving::logs::revision_log(&ctx.home, &ns, name, &revision)
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "{name}: {e} (only commands — custom containers — write a log)"
                        )
                    })?;
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                print!("{text}");
            }
        },
        IsvcCommand::Delete { name } => {
            if !backend.delete(&INFERENCE_SERVICE, &ns, name).await? {
                bail!("inference service {name:?} not found in namespace {ns}");
            }
            println!("inferenceservice.serving.kserve.io \"{name}\" deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn ready_word(status: &Value) -> &'static str {
    if is_ready(status) {
        "True"
    } else if status["conditions"]
        .as_array()
        .is_some_and(|c| !c.is_empty())
    {
        "False"
    } else {
        "Unknown"
    }
}

/// How long ago a resource was created, as `kubectl get` shows it.
pub(crate) fn age(v: &Value) -> String {
    let Some(created) = v["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(Timestamp::parse_rfc3339)
    else {
        return "-".into();
    };
    let s = created.millis_until(Timestamp::now()).max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

fn print_table(items: &[Value], with_ns: bool) {
    if with_ns {
        print!("{:<16} ", "NAMESPACE");
    }
    println!(
        "{:<24} {:<52} {:<7} {:<32} AGE",
        "NAME", "URL", "READY", "LATESTREADYREVISION"
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
            "{:<24} {:<52} {:<7} {:<32} {}",
            v["metadata"]["name"].as_str().unwrap_or("-"),
            status["url"].as_str().unwrap_or("-"),
            ready_word(status),
            status["components"]["predictor"]["latestReadyRevision"]
                .as_str()
                .unwrap_or("-"),
            age(v)
        );
    }
}

fn print_one(v: &Value) {
    let status = &v["status"];
    let meta = &v["metadata"];
    println!("name        {}", meta["name"].as_str().unwrap_or("-"));
    println!("namespace   {}", meta["namespace"].as_str().unwrap_or("-"));
    println!("generation  {}", meta["generation"]);
    println!("url         {}", status["url"].as_str().unwrap_or("-"));
    println!("ready       {}", ready_word(status));
    let model = &v["spec"]["predictor"]["model"];
    if model.is_object() {
        println!(
            "model       {} from {}",
            model["modelFormat"]["name"].as_str().unwrap_or("-"),
            model["storageUri"].as_str().unwrap_or("-")
        );
    }
    let ms = &status["modelStatus"];
    if ms.is_object() {
        println!(
            "model state {} ({})",
            ms["states"]["activeModelState"].as_str().unwrap_or("-"),
            ms["transitionStatus"].as_str().unwrap_or("-")
        );
    }
    if let Some(why) = failure(status) {
        println!("failure     {why}");
    }
    for c in status["conditions"].as_array().into_iter().flatten() {
        let mut line = format!(
            "condition   {:<15} {:<6}",
            c["type"].as_str().unwrap_or("-"),
            c["status"].as_str().unwrap_or("-")
        );
        if let Some(m) = c["message"].as_str() {
            line.push_str(&format!(" {m}"));
        }
        println!("{}", line.trim_end());
    }
}
