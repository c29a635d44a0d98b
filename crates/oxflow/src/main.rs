//! `oxflow`: Kubeflow's ML platform as one binary. This crate only wires the
//! others together and talks to the terminal; it holds no platform logic.

mod cli;
mod get;
mod isvc;
mod kubeconfig;
mod objects;
mod output;
mod remote;
mod serve;
mod trainedmodel;
mod trim;
mod tune;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // When the local runtime starts a workload through this binary
    // (LocalConfig::spawn_shim), act as the exec shim: this never returns.
    oxflow_runtime::shim::run_if_requested();
    let args = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("OXFLOW_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if args.verbose { "info" } else { "warn" })
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match rt.block_on(cli::main(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
