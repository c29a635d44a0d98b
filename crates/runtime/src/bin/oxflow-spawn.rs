//! `oxflow-spawn`: the exec shim of the local runtime as a binary of its own
//! (see `oxflow_runtime::shim`). Set `LocalConfig::spawn_shim` to its path.

fn main() -> std::process::ExitCode {
    oxflow_runtime::shim::run_if_requested();
    eprintln!(
        "oxflow-spawn starts workloads for the Oxflow local runtime and is not meant to be run \
         by hand; point LocalConfig::spawn_shim at it."
    );
    std::process::ExitCode::from(2)
}
