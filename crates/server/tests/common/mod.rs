//! What the server's integration tests share: an `AppState` over a fresh
//! SQLite store, a local runtime and a running controller, in `dir`.

use std::path::Path;
use std::sync::Arc;

use oxflow_artifacts::ArtifactStore;
use oxflow_core::Namespace;
use oxflow_pipelines::{Engine, EngineConfig, RunController};
use oxflow_runtime::{LocalConfig, LocalRuntime};
use oxflow_server::AppState;
use oxflow_store::Store;

pub async fn app_state(dir: &Path) -> AppState {
    let store = Store::open_in_dir(dir).await.unwrap();
    let runtime = Arc::new(LocalRuntime::new(LocalConfig {
        scratch_dir: dir.join("scratch"),
        warm_python: false,
        ..Default::default()
    }));
    let engine = Engine::new(
        store.clone(),
        runtime.clone(),
        ArtifactStore::new(dir.join("artifacts")),
        EngineConfig {
            data_dir: dir.to_path_buf(),
            max_parallel: 2,
            python: None,
        },
    );
    let resources = oxflow_resources::Resources::new(store.clone(), oxflow_server::registry());
    let task_pods =
        oxflow_server::task_pods::PipelinePods::new(resources.clone(), engine.artifacts().clone());
    engine.set_pods(Arc::new(task_pods.clone()));
    let controller = RunController::new(engine, 2);
    controller.start();
    let tuning = oxflow_tuning::TuningController::new(
        resources.clone(),
        runtime.clone(),
        oxflow_tuning::TuningConfig {
            logs_dir: dir.join("logs").join("tuning"),
            work_dir: dir.join("tuning"),
            report_url: None,
            report_tokens: None,
            python_path: None,
            owner: oxflow_runtime::owner::owner_id(),
        },
    );
    tuning.start();
    let serving = oxflow_serving::controller::ServingController::new(resources.clone(), {
        let mut config = oxflow_serving::test_models::controller_config(dir, "http://oxflow.test");
        config.runtime.python.runtime = runtime.clone();
        config.scale_to_zero_after = std::time::Duration::from_secs(60);
        config
    });
    // Woken by the change feed, as in `oxflow up`.
    drop(serving.start().await);
    AppState {
        controller,
        resources,
        store: store.clone(),
        default_namespace: Namespace::default(),
        pod_logs: vec![Arc::new(tuning.clone()), Arc::new(task_pods)],
        tuning: Some(tuning),
        serving: Some(serving),
    }
}

/// The server's router as the owner calls it (the edge puts the caller in
/// each request; without one the router refuses with 401).
pub fn router(state: AppState) -> axum::Router {
    as_caller(state, oxflow_auth::Caller::owner())
}

/// The server's router with every request made by `caller`.
pub fn as_caller(state: AppState, caller: oxflow_auth::Caller) -> axum::Router {
    oxflow_server::router(state).layer(axum::Extension(caller))
}
