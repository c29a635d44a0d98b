//! Models served straight from paths or URIs (`oxflow serve`), and model
//! repositories: a directory whose subdirectories are models, loaded and
//! unloaded by name through the repository API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use oxflow_inference::batcher::{BatchConfig, Batched};
use oxflow_inference::metrics::Metrics;
use oxflow_inference::{Loader, Model};

use crate::runtimes::{self, RuntimeConfig};
use crate::spec::ModelFormatName;
use crate::storage::Storage;

/// One model to serve: where it is and, optionally, its format.
#[derive(Debug, Clone)]
pub struct ModelSource {
    /// The name clients use.
    pub name: String,
    /// A local path or a storage URI.
    pub uri: String,
    /// The format; detected from the files when `None`.
    pub format: Option<ModelFormatName>,
}

/// Loads [`ModelSource`]s by name, fetching them through [`Storage`].
#[derive(Clone)]
pub struct SourceLoader {
    storage: Storage,
    config: RuntimeConfig,
    namespace: String,
    sources: BTreeMap<String, ModelSource>,
    batching: Option<(BatchConfig, Arc<Metrics>)>,
}

impl SourceLoader {
    /// A loader for `sources`.
    pub fn new(
        storage: Storage,
        config: RuntimeConfig,
        namespace: impl Into<String>,
        sources: Vec<ModelSource>,
    ) -> SourceLoader {
        let sources = sources.into_iter().map(|s| (s.name.clone(), s)).collect();
        SourceLoader {
            storage,
            config,
            namespace: namespace.into(),
            sources,
            batching: None,
        }
    }

    /// Puts every batchable model it loads behind an adaptive batcher that
    /// reports batch sizes to `metrics`.
    pub fn with_batching(mut self, config: BatchConfig, metrics: Arc<Metrics>) -> SourceLoader {
        self.batching = Some((config, metrics));
        self
    }

    /// This loader with `source` added (replacing one of the same name):
    /// a multi-model server gains its models one at a time, each fetched
    /// and run like a single model.
    pub fn with_source(&self, source: ModelSource) -> SourceLoader {
        let mut out = self.clone();
        out.sources.insert(source.name.clone(), source);
        out
    }

    /// Names of the sources, in order.
    pub fn names(&self) -> Vec<String> {
        self.sources.keys().cloned().collect()
    }

    /// Fetches and loads `name`.
    pub async fn load_source(&self, name: &str) -> Result<Arc<dyn Model>, String> {
        let source = self
            .sources
            .get(name)
            .ok_or_else(|| format!("no model called {name} in this server's repository"))?;
        let fetched = self
            .storage
            .fetch(&source.uri, &self.namespace)
            .await
            .map_err(|e| e.to_string())?;
        let format = match &source.format {
            Some(f) => f.clone(),
            None => runtimes::detect_format(&fetched.path).ok_or_else(|| {
                format!(
                    "cannot tell the model format of {}; name it with --format (onnx, xgboost, lightgbm, sklearn)",
                    fetched.path.display()
                )
            })?,
        };
        let model = runtimes::load(name, &format, &fetched.path, &self.config).await?;
        Ok(match &self.batching {
            Some((config, metrics)) if model.batchable() => {
                Arc::new(Batched::new(model, *config, Some(metrics.model(name)))) as Arc<dyn Model>
            }
            _ => model,
        })
    }
}

impl Loader for SourceLoader {
    fn load(&self, name: &str) -> BoxFuture<'static, Result<Arc<dyn Model>, String>> {
        let this = self.clone();
        let name = name.to_string();
        Box::pin(async move { this.load_source(&name).await })
    }

    fn available(&self) -> Vec<String> {
        self.names()
    }
}

/// The models in a repository directory: each subdirectory (or model file)
/// is a model named after it. `None` when `dir` holds a model itself.
pub fn scan_repository(dir: &Path) -> Option<Vec<ModelSource>> {
    if !dir.is_dir()
        || runtimes::detect_format(dir).is_some_and(|f| {
            // A model directly in `dir` (not only deeper down) makes it a model.
            direct_model(dir, &f)
        })
    {
        return None;
    }
    let mut sources = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if stem.starts_with('.') {
            continue;
        }
        if let Some(format) = runtimes::detect_format(&path) {
            sources.push(ModelSource {
                name: stem.to_string(),
                uri: path.display().to_string(),
                format: Some(format),
            });
        }
    }
    (!sources.is_empty()).then_some(sources)
}

fn direct_model(dir: &Path, format: &ModelFormatName) -> bool {
    runtimes::find_model_file(dir, format).is_ok_and(|f| f.parent() == Some(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_are_directories_of_models() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("iris")).unwrap();
        std::fs::write(d.join("iris/model.onnx"), "x").unwrap();
        std::fs::create_dir_all(d.join("churn")).unwrap();
        std::fs::write(d.join("churn/model.joblib"), "x").unwrap();
        std::fs::write(d.join("ranker.json"), "{}").unwrap();
        std::fs::write(d.join("README.md"), "not a model").unwrap();
        std::fs::create_dir_all(d.join(".cache")).unwrap();
        let found = scan_repository(d).unwrap();
        let names: Vec<(&str, Option<&ModelFormatName>)> = found
            .iter()
            .map(|s| (s.name.as_str(), s.format.as_ref()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("churn", Some(&ModelFormatName::Sklearn)),
                ("iris", Some(&ModelFormatName::Onnx)),
                ("ranker", Some(&ModelFormatName::Xgboost)),
            ]
        );
        // A directory that holds a model itself is one model, not a repository.
        assert!(scan_repository(&d.join("iris")).is_none());
        // Not a directory, or nothing servable inside.
        assert!(scan_repository(&d.join("ranker.json")).is_none());
        assert!(scan_repository(&d.join(".cache")).is_none());
    }
}
