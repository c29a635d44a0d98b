//! Model formats → runtimes: which file in a model directory is the model
//! (KServe's conventions) and what serves it.
//!
//! | format | files looked for | runtime |
//! |---|---|---|
//! | `onnx` | `model.onnx`, else the one `*.onnx`, also Triton's `NAME/VERSION/model.onnx` | tract, in process |
//! | `xgboost` | `model.bst`, `model.json`, `model.ubj` | native evaluator |
//! | `lightgbm` | `model.bst`, `model.txt` | native evaluator |
//! | `sklearn` | `model.joblib`, `model.pkl`, `model.pickle` | Python worker processes |
//!
//! A path that is a file is taken as the model itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use oxflow_inference::Model;

use crate::spec::ModelFormatName;

pub mod sklearn;
pub mod trees;

pub use sklearn::PythonConfig;

/// What loading needs besides the model: the Python interpreter for
/// scikit-learn, and limits.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// For `sklearn` models.
    pub python: PythonConfig,
    /// Largest batch a model accepts in one request (ONNX).
    pub max_batch_size: Option<usize>,
}

/// Files that hold a model of each format, in KServe's order of preference.
fn candidates(format: &ModelFormatName) -> &'static [&'static str] {
    match format {
        ModelFormatName::Onnx => &["model.onnx"],
        ModelFormatName::Xgboost => &["model.bst", "model.json", "model.ubj"],
        ModelFormatName::Lightgbm => &["model.bst", "model.txt"],
        ModelFormatName::Sklearn => &["model.joblib", "model.pkl", "model.pickle"],
        _ => &[],
    }
}

fn extensions(format: &ModelFormatName) -> &'static [&'static str] {
    match format {
        ModelFormatName::Onnx => &["onnx"],
        ModelFormatName::Xgboost => &["json", "ubj", "bst"],
        ModelFormatName::Lightgbm => &["txt", "bst", "model"],
        ModelFormatName::Sklearn => &["joblib", "pkl", "pickle"],
        _ => &[],
    }
}

/// The model file for `format` under `path`.
pub fn find_model_file(path: &Path, format: &ModelFormatName) -> Result<PathBuf, String> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    for name in candidates(format) {
        let p = path.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    // Otherwise exactly one file with a matching extension, here or (for
    // Triton's repository layout) one or two directories down.
    let mut found = Vec::new();
    collect(path, extensions(format), 0, &mut found);
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(format!(
            "no {format} model in {}: expected one of {}",
            path.display(),
            candidates(format).join(", ")
        )),
        _ => Err(format!(
            "{} holds several {format} models ({}); point storageUri at one of them",
            path.display(),
            found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn collect(dir: &Path, exts: &[&str], depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let p = entry.path();
        if p.is_dir() && depth < 2 {
            collect(&p, exts, depth + 1, out);
        } else if p.is_file()
            && p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.contains(&e))
        {
            out.push(p);
        }
    }
}

/// Loads the model at `path` (a file or directory) of `format` as `name`.
pub async fn load(
    name: &str,
    format: &ModelFormatName,
    path: &Path,
    config: &RuntimeConfig,
) -> Result<Arc<dyn Model>, String> {
    let file = find_model_file(path, format)?;
    match format {
        ModelFormatName::Onnx => {
            let name = name.to_string();
            let options = oxflow_onnx::OnnxOptions {
                max_batch_size: config.max_batch_size,
            };
            tokio::task::spawn_blocking(move || {
                oxflow_onnx::OnnxModel::load(&name, &file, &options)
                    .map(|m| Arc::new(m) as Arc<dyn Model>)
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())?
        }
        ModelFormatName::Xgboost | ModelFormatName::Lightgbm => {
            let name = name.to_string();
            let expected = format.clone();
            tokio::task::spawn_blocking(move || {
                let model = oxflow_trees::TreeModel::load(&file).map_err(|e| e.to_string())?;
                if model.framework() != expected.as_str() {
                    return Err(format!(
                        "{} is a {} model, but the model format is {expected}",
                        file.display(),
                        model.framework()
                    ));
                }
                Ok(Arc::new(trees::TreeServing::new(&name, model)) as Arc<dyn Model>)
            })
            .await
            .map_err(|e| e.to_string())?
        }
        ModelFormatName::Sklearn => {
            let model = sklearn::SklearnModel::load(name, &file, &config.python).await?;
            Ok(Arc::new(model))
        }
        other => Err(format!(
            "Oxflow has no built-in runtime for the {other} format; serve it with a custom predictor (containers)"
        )),
    }
}

/// Guesses a model's format from the files at `path` (for `oxflow serve`
/// without `--format`).
pub fn detect_format(path: &Path) -> Option<ModelFormatName> {
    let formats = [
        ModelFormatName::Onnx,
        ModelFormatName::Sklearn,
        ModelFormatName::Xgboost,
        ModelFormatName::Lightgbm,
    ];
    if path.is_file() {
        let ext = path.extension()?.to_str()?;
        return match ext {
            "onnx" => Some(ModelFormatName::Onnx),
            "joblib" | "pkl" | "pickle" => Some(ModelFormatName::Sklearn),
            "json" | "ubj" => Some(ModelFormatName::Xgboost),
            "txt" | "bst" | "model" => {
                // LightGBM text models start with a "tree" line; XGBoost's
                // binary .bst does not.
                let head = std::fs::read(path).ok()?;
                if head.starts_with(b"tree") {
                    Some(ModelFormatName::Lightgbm)
                } else {
                    Some(ModelFormatName::Xgboost)
                }
            }
            _ => None,
        };
    }
    // model.bst is ambiguous between XGBoost and LightGBM: look inside.
    let bst = path.join("model.bst");
    if bst.is_file() {
        return detect_format(&bst);
    }
    formats
        .into_iter()
        .find(|f| find_model_file(path, f).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_files_by_kserve_conventions() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("model.json"), "{}").unwrap();
        assert_eq!(
            find_model_file(d, &ModelFormatName::Xgboost).unwrap(),
            d.join("model.json")
        );
        assert_eq!(detect_format(d), Some(ModelFormatName::Xgboost));
        let e = find_model_file(d, &ModelFormatName::Sklearn).unwrap_err();
        assert!(
            e.contains("expected one of model.joblib, model.pkl, model.pickle"),
            "{e}"
        );
        // Triton's layout: NAME/1/model.onnx.
        std::fs::create_dir_all(d.join("iris/1")).unwrap();
        std::fs::write(d.join("iris/1/model.onnx"), "x").unwrap();
        assert_eq!(
            find_model_file(d, &ModelFormatName::Onnx).unwrap(),
            d.join("iris/1/model.onnx")
        );
        std::fs::create_dir_all(d.join("other/1")).unwrap();
        std::fs::write(d.join("other/1/net.onnx"), "x").unwrap();
        let e = find_model_file(d, &ModelFormatName::Onnx).unwrap_err();
        assert!(e.contains("several onnx models"), "{e}");
        // A LightGBM model.bst is told apart from XGBoost's by its content.
        let l = tempfile::tempdir().unwrap();
        std::fs::write(l.path().join("model.bst"), "tree\nversion=v4\n").unwrap();
        assert_eq!(detect_format(l.path()), Some(ModelFormatName::Lightgbm));
    }
}
