//! What the tuning controller's tests share.

use std::sync::Arc;

use oxflow_resources::Resources;
use oxflow_runtime::{LocalConfig, LocalRuntime};
use oxflow_tuning::{TuningConfig, TuningController};

/// A tuning controller over `resources`, running trials as local
/// processes with their files under `dir`.
pub fn controller(dir: &std::path::Path, resources: Resources) -> TuningController {
    let runtime = Arc::new(LocalRuntime::new(LocalConfig {
        scratch_dir: dir.join("scratch"),
        warm_python: false,
        ..Default::default()
    }));
    TuningController::new(
        resources,
        runtime,
        TuningConfig {
            logs_dir: dir.join("logs"),
            work_dir: dir.join("work"),
            report_url: None,
            report_tokens: None,
            python_path: None,
            owner: oxflow_runtime::owner::owner_id(),
        },
    )
}

/// The builtin and tuning kinds.
pub fn registry() -> oxflow_resources::Registry {
    oxflow_resources::Registry::new(
        oxflow_resources::builtin::kinds()
            .into_iter()
            .chain(oxflow_tuning::kinds::kinds()),
    )
}
