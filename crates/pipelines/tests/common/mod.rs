//! What the engine tests share: an engine over a data directory with the
//! local runtime, and submitting a pipeline given as YAML.

#![allow(dead_code)] // Each test binary uses its own subset.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use oxflow_artifacts::ArtifactStore;
use oxflow_core::Namespace;
use oxflow_pipelines::{Engine, EngineConfig, Pipeline, RunOptions, SubmitRequest};
use oxflow_runtime::{LocalConfig, LocalRuntime};
use oxflow_store::{RunRecord, Store};

/// An engine over `store`, with `dir` as its data directory (artifacts,
/// scratch space) and the local runtime.
pub fn engine(store: &Store, dir: &Path) -> Engine {
    Engine::new(
        store.clone(),
        Arc::new(LocalRuntime::new(LocalConfig {
            scratch_dir: dir.join("scratch"),
            ..Default::default()
        })),
        ArtifactStore::new(dir.join("artifacts")),
        EngineConfig {
            data_dir: dir.to_path_buf(),
            max_parallel: 4,
            python: None,
        },
    )
}

/// Submits the compiled pipeline `yaml` without caching; the PENDING run.
pub async fn submit(engine: &Engine, yaml: &str) -> RunRecord {
    let pipeline = Pipeline::load_str(yaml, "test.yaml").unwrap();
    engine
        .submit(
            &pipeline,
            SubmitRequest {
                namespace: Namespace::default(),
                display_name: None,
                parameters: BTreeMap::new(),
                options: RunOptions {
                    enable_cache: false,
                    base_dir: None,
                },
            },
        )
        .await
        .unwrap()
}
