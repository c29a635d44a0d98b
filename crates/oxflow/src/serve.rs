//! `oxflow serve`: one process serving models over V1/V2 REST and V2 gRPC,
//! without the rest of the platform (no database).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use oxflow_inference::batcher::BatchConfig;
use oxflow_inference::metrics::Metrics;
use oxflow_inference::{DataPlane, Loader, ModelState, PlaneConfig, Repository};
use oxflow_serving::local::{ModelSource, SourceLoader, scan_repository};
use oxflow_serving::runtimes::{PythonConfig, RuntimeConfig};
use oxflow_serving::spec::ModelFormatName;
use oxflow_serving::storage::Storage;

use crate::cli::Cli;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Models to serve: a model file or directory, a storage URI (file://,
    /// pvc://, http(s)://), NAME=URI, or a repository directory whose
    /// subdirectories are models.
    #[arg(required = true, value_name = "MODEL")]
    pub models: Vec<String>,
    /// The model's name (with a single MODEL; default: its file or directory name).
    #[arg(long)]
    pub name: Option<String>,
    /// The model format when it cannot be told from the files: onnx, xgboost, lightgbm, sklearn.
    #[arg(long)]
    pub format: Option<String>,
    /// REST (V1 and V2) listen address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
    /// gRPC (V2) listen address.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub grpc_addr: std::net::SocketAddr,
    /// Python interpreter with scikit-learn, for sklearn models (default: python3 on PATH).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Worker processes per scikit-learn model.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Largest request body, in MiB.
    #[arg(long, default_value_t = 64)]
    pub max_body_mib: usize,
    /// Load models only when first requested or loaded through the repository API.
    #[arg(long)]
    pub lazy: bool,
    /// Join concurrent requests into batches of up to this many rows (KServe's batcher).
    #[arg(long, value_name = "ROWS")]
    pub max_batch_size: Option<usize>,
    /// With --max-batch-size: how long a request waits for others, in milliseconds.
    #[arg(long, default_value_t = 5, value_name = "MS")]
    pub max_latency_ms: u64,
    #[command(flatten)]
    pub edge: crate::cli::EdgeArgs,
}

/// A model name KServe would accept (a DNS-1035 label), made from a path.
fn name_from_path(uri: &str) -> String {
    let last = uri.trim_end_matches('/').rsplit('/').next().unwrap_or(uri);
    let stem = last.split('.').next().unwrap_or(last);
    let mut name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    name = name.trim_matches('-').to_string();
    if name.is_empty() {
        "model".into()
    } else {
        name
    }
}

fn sources(args: &ServeArgs, format: Option<ModelFormatName>) -> Result<Vec<ModelSource>> {
    if args.name.is_some() && args.models.len() > 1 {
        bail!("--name names a single model; give several as NAME=URI");
    }
    let mut out = Vec::new();
    for spec in &args.models {
        let (name, uri) = match spec.split_once('=') {
            Some((n, u)) if !n.contains('/') && !n.contains(':') => {
                (Some(n.to_string()), u.to_string())
            }
            _ => (args.name.clone(), spec.clone()),
        };
        // A directory of models (without a name of its own) becomes one
        // model per entry.
        if name.is_none()
            && format.is_none()
            && let Some(found) = scan_repository(std::path::Path::new(&uri))
        {
            out.extend(found);
            continue;
        }
        out.push(ModelSource {
            name: name.unwrap_or_else(|| name_from_path(&uri)),
            uri,
            format: format.clone(),
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    for s in &out {
        if !seen.insert(s.name.clone()) {
            bail!("two models are called {}; name them with NAME=URI", s.name);
        }
    }
    Ok(out)
}

pub async fn serve(cli: &Cli, args: &ServeArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let format = match &args.format {
        None => None,
        Some(f) => match ModelFormatName::from_name(f) {
            ModelFormatName::Other(name) => {
                bail!(
                    "--format {name}: Oxflow serves onnx, xgboost, lightgbm and sklearn models itself"
                )
            }
            known => Some(known),
        },
    };
    let sources = sources(args, format)?;
    let home = crate::cli::data_dir(cli)?;
    // The data directory's token, as for `oxflow up` (`oxflow token`).
    let gate = Arc::new(oxflow_edge::Gate::new(
        crate::cli::credentials(&home)?,
        false,
    ));
    let python = match &args.python {
        Some(p) => p.clone(),
        None => PathBuf::from("python3"),
    };
    // scikit-learn workers run as workloads of the local runtime (their
    // own process groups, killed with this process, output in a log).
    let runtime = Arc::new(oxflow_runtime::LocalRuntime::new(
        oxflow_runtime::LocalConfig {
            scratch_dir: home.join("scratch"),
            warm_python: false,
            ..Default::default()
        },
    ));
    let config = RuntimeConfig {
        python: PythonConfig {
            python,
            workers: args.workers.max(1),
            runtime,
            logs_dir: home.join("logs").join("serve"),
        },
        max_batch_size: None,
    };
    let metrics = Arc::new(Metrics::default());
    let mut loader = SourceLoader::new(Storage::new(&home), config, cli.namespace.clone(), sources);
    if let Some(rows) = args.max_batch_size {
        let batch = BatchConfig {
            max_batch_size: rows.max(1),
            max_latency: Duration::from_millis(args.max_latency_ms),
        };
        loader = loader.with_batching(batch, metrics.clone());
    }
    let names = loader.names();
    let repository = Arc::new(Repository::new(
        Some(Arc::new(loader.clone()) as Arc<dyn Loader>),
        Duration::from_secs(60),
    ));
    let plane = Arc::new(DataPlane {
        repository: repository.clone(),
        metrics,
        config: PlaneConfig {
            max_body_bytes: args.max_body_mib << 20,
            ..PlaneConfig::default()
        },
    });
    // Listen first: requests that arrive while models load wait for them.
    let http = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("listening on {}", args.addr))?;
    let grpc = tokio::net::TcpListener::bind(args.grpc_addr)
        .await
        .with_context(|| format!("listening on {}", args.grpc_addr))?;
    let (http_addr, grpc_addr) = (http.local_addr()?, grpc.local_addr()?);
    if args.lazy {
        for name in &names {
            repository.set(name, ModelState::Unloaded);
        }
    } else {
        for name in &names {
            repository.set(name, ModelState::Loading);
        }
        for name in names.clone() {
            let repository = repository.clone();
            let loader = loader.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                match loader.load_source(&name).await {
                    Ok(model) => {
                        let platform = model.metadata().platform.clone();
                        repository.set(&name, ModelState::Ready(model));
                        eprintln!(
                            "model {name} ready ({platform}, loaded in {} ms, {} ms after start)",
                            t.elapsed().as_millis(),
                            started.elapsed().as_millis()
                        );
                    }
                    Err(why) => {
                        eprintln!("model {name} failed to load: {why}");
                        repository.set(&name, ModelState::Failed(why));
                    }
                }
            });
        }
    }
    let shutdown = {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
        let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            crate::output::note("stopping...");
        }
    };
    // Tests and scripts wait for this line.
    eprintln!(
        "oxflow is serving {} on http://{http_addr} (REST V1/V2) and {grpc_addr} (gRPC V2)",
        names.join(", ")
    );
    let (http_edge, grpc_edge) = (
        args.edge.serve_config(http_addr, &gate)?,
        args.edge.serve_config(grpc_addr, &gate)?,
    );
    oxflow_inference::server::serve(plane, (http, http_edge), Some((grpc, grpc_edge)), shutdown)
        .await
        .context("serving")?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_paths() {
        assert_eq!(name_from_path("/models/sklearn-rf/"), "sklearn-rf");
        assert_eq!(name_from_path("https://h/x/Model_V2.onnx"), "model-v2");
        assert_eq!(name_from_path("/"), "model");
    }
}
