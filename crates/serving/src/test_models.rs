//! Tiny models for tests of crates that serve (this one, the server, the
//! CLI): real model files, written from their documented formats, whose
//! predictions follow from the model by hand; and the archives models are
//! published in.

use serde_json::json;

/// A `reg:squarederror` XGBoost JSON model over two features with one
/// stump: rows with `x0 < 0.5` (or missing) get `left`, others `right`,
/// plus the base score 0.5.
pub fn xgboost_stump(left: f64, right: f64) -> String {
    json!({"learner": {
        "attributes": {}, "feature_names": [], "feature_types": [],
        "gradient_booster": {"name": "gbtree", "model": {
            "gbtree_model_param": {"num_parallel_tree": "1", "num_trees": "1"},
            "iteration_indptr": [0, 1],
            "tree_info": [0],
            "trees": [{"id": 0,
                "tree_param": {"num_deleted": "0", "num_feature": "2", "num_nodes": "3", "size_leaf_vector": "1"},
                "left_children": [1, -1, -1], "right_children": [2, -1, -1],
                "parents": [2147483647, 0, 0], "split_indices": [0, 0, 0],
                "split_conditions": [0.5, left, right], "default_left": [1, 0, 0],
                "split_type": [0, 0, 0], "categories": [], "categories_nodes": [],
                "categories_segments": [], "categories_sizes": [],
                "base_weights": [0.0, left, right], "loss_changes": [1.0, 0.0, 0.0],
                "sum_hessian": [2.0, 1.0, 1.0]}]}},
        "learner_model_param": {"base_score": "[5E-1]", "boost_from_average": "1",
            "num_class": "0", "num_feature": "2", "num_target": "1"},
        "objective": {"name": "reg:squarederror", "reg_loss_param": {"scale_pos_weight": "1"}}
    }, "version": [3, 2, 0]})
    .to_string()
}

/// A `.tar.gz` archive of `(path, bytes)` entries, as a model might be
/// published behind a storage URI.
pub fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder
            .append_data(&mut h, name, *data)
            .expect("writing to memory");
    }
    builder
        .into_inner()
        .and_then(|gz| gz.finish())
        .expect("writing to memory")
}

/// A `.zip` archive of `(path, bytes)` entries.
pub fn zip_bytes(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .expect("writing to memory");
        w.write_all(data).expect("writing to memory");
    }
    w.finish().expect("writing to memory").into_inner()
}

/// A controller configuration for tests: everything under `home`, models
/// read from anywhere under the temporary directory, the
/// local runtime, `python3`, one worker, a resync that never comes by
/// itself (tests call it), and the given base URL. Callers change the
/// fields their test is about.
pub fn controller_config(
    home: &std::path::Path,
    base_url: &str,
) -> crate::controller::ControllerConfig {
    use std::time::Duration;
    crate::controller::ControllerConfig {
        home: home.to_path_buf(),
        // Tests keep their models in temporary directories.
        model_roots: vec![std::env::temp_dir()],
        runtime: crate::runtimes::RuntimeConfig {
            python: crate::runtimes::PythonConfig {
                python: "python3".into(),
                workers: 1,
                runtime: std::sync::Arc::new(oxflow_runtime::LocalRuntime::new(
                    oxflow_runtime::LocalConfig {
                        scratch_dir: home.join("scratch"),
                        ..Default::default()
                    },
                )),
                logs_dir: home.join("logs"),
            },
            max_batch_size: None,
        },
        base_url: base_url.into(),
        hold: Duration::from_secs(10),
        resync: Duration::from_secs(3600),
        workloads: None,
        scale_to_zero_after: Duration::from_secs(3600),
        autoscale: Default::default(),
    }
}

/// The serving kinds' resource model over `store`, as one process has it
/// (each call is another process's view of the same store).
pub fn resources(store: &oxflow_store::Store) -> oxflow_resources::Resources {
    oxflow_resources::Resources::new(
        store.clone(),
        oxflow_resources::Registry::new(crate::kinds::kinds()),
    )
}

/// The stored object of `kind` named `name` in `namespace`, if any.
pub async fn find_object(
    store: &oxflow_store::Store,
    kind: &'static oxflow_core::object::Kind,
    namespace: &oxflow_core::Namespace,
    name: &str,
) -> Option<serde_json::Value> {
    match resources(store)
        .get(kind, Some(namespace.as_str()), name)
        .await
    {
        Ok(v) => Some(v),
        Err(oxflow_resources::ResourceError::NotFound { .. }) => None,
        Err(e) => panic!("reading {name}: {e}"),
    }
}

/// Whether the object's status describes its current generation.
pub fn observed(v: &serde_json::Value) -> bool {
    v["status"]["observedGeneration"].as_i64().is_some()
        && v["status"]["observedGeneration"] == v["metadata"]["generation"]
}

/// The events about the object with `uid`.
pub async fn events_about(
    store: &oxflow_store::Store,
    uid: &serde_json::Value,
) -> Vec<serde_json::Value> {
    let (events, _) = resources(store)
        .list(
            &oxflow_resources::builtin::EVENT,
            None,
            &Default::default(),
            &Default::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("listing events: {e}"));
    events
        .into_iter()
        .filter(|e| e["involvedObject"]["uid"] == *uid)
        .collect()
}
