//! The models a server knows by name, and the state each is in.
//!
//! A request for a model that is still loading waits (up to the server's
//! hold timeout) instead of failing: that is how a scaled-to-zero model
//! answers its first request, and how a model being reloaded keeps
//! serving clients that arrive meanwhile.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::error::InferError;
use crate::model::Model;

/// Where a model is in its life.
#[derive(Clone)]
pub enum ModelState {
    /// Being loaded; requests wait for it.
    Loading,
    /// Serving.
    Ready(Arc<dyn Model>),
    /// Loading failed; the reason is what `ready` and `infer` report.
    Failed(String),
    /// Unloaded on request; `load` brings it back.
    Unloaded,
}

impl ModelState {
    /// The state's name as the repository index reports it (Triton's
    /// spelling).
    pub fn label(&self) -> &'static str {
        match self {
            ModelState::Loading => "LOADING",
            ModelState::Ready(_) => "READY",
            ModelState::Failed(_) => "UNAVAILABLE",
            ModelState::Unloaded => "UNAVAILABLE",
        }
    }

    /// Why the model is not ready, if it is not.
    pub fn reason(&self) -> Option<String> {
        match self {
            ModelState::Loading => Some("the model is loading".into()),
            ModelState::Ready(_) => None,
            ModelState::Failed(why) => Some(format!("loading failed: {why}")),
            ModelState::Unloaded => Some("the model is unloaded".into()),
        }
    }
}

/// Loads models by name: a model directory, or the serving controller.
pub trait Loader: Send + Sync + 'static {
    /// Loads (or reloads) `name`. `Err` carries the reason shown in status.
    fn load(&self, name: &str) -> BoxFuture<'static, Result<Arc<dyn Model>, String>>;
    /// Names this loader could load, whether loaded or not (for the
    /// repository index).
    fn available(&self) -> Vec<String> {
        Vec::new()
    }
    /// Whether this loader has a model called `name` to load. The
    /// repository asks before it records anything for a name, so a caller
    /// who sends names the loader never had leaves no trace behind.
    fn has(&self, name: &str) -> bool {
        self.available().iter().any(|n| n == name)
    }
}

/// Name → state, shared by every protocol front end.
pub struct Repository {
    models: RwLock<BTreeMap<String, watch::Sender<ModelState>>>,
    loader: Option<Arc<dyn Loader>>,
    hold: Duration,
}

/// One row of the repository index.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IndexEntry {
    /// Model name.
    pub name: String,
    /// `READY`, `LOADING` or `UNAVAILABLE`.
    pub state: String,
    /// Why it is not ready.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

impl Repository {
    /// An empty repository. Requests for a loading model wait up to `hold`.
    pub fn new(loader: Option<Arc<dyn Loader>>, hold: Duration) -> Repository {
        Repository {
            models: RwLock::new(BTreeMap::new()),
            loader,
            hold,
        }
    }

    fn sender(&self, name: &str) -> Option<watch::Sender<ModelState>> {
        self.models
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Sets `name`'s state, adding the name if it is new.
    pub fn set(&self, name: &str, state: ModelState) {
        let mut models = self.models.write().unwrap_or_else(|e| e.into_inner());
        match models.get(name) {
            Some(tx) => {
                tx.send_replace(state);
            }
            None => {
                models.insert(name.to_string(), watch::channel(state).0);
            }
        }
    }

    /// Forgets `name` entirely (its requests then get 404).
    pub fn remove(&self, name: &str) {
        let removed = self
            .models
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        if let Some(tx) = removed {
            tx.send_replace(ModelState::Unloaded);
        }
    }

    /// The state of `name`, if known.
    pub fn state(&self, name: &str) -> Option<ModelState> {
        self.sender(name).map(|tx| tx.borrow().clone())
    }

    /// The ready model called `name`, waiting while it loads.
    pub async fn get(&self, name: &str) -> Result<Arc<dyn Model>, InferError> {
        let Some(tx) = self.sender(name) else {
            return Err(InferError::ModelNotFound(name.to_string()));
        };
        if let ModelState::Ready(model) = &*tx.borrow() {
            return Ok(model.clone());
        }
        let mut rx = tx.subscribe();
        let wait = rx.wait_for(|s| !matches!(s, ModelState::Loading));
        match tokio::time::timeout(self.hold, wait).await {
            Ok(Ok(state)) => match &*state {
                ModelState::Ready(model) => Ok(model.clone()),
                other => Err(not_ready(name, other)),
            },
            Ok(Err(_)) => Err(InferError::ModelNotFound(name.to_string())),
            Err(_) => Err(InferError::NotReady {
                name: name.to_string(),
                reason: format!("still loading after {} ms", self.hold.as_millis()),
            }),
        }
    }

    /// Whether `name` is ready now (no waiting).
    pub fn ready(&self, name: &str) -> Result<bool, InferError> {
        match self.state(name) {
            None => Err(InferError::ModelNotFound(name.to_string())),
            Some(state) => Ok(matches!(state, ModelState::Ready(_))),
        }
    }

    /// True when every known model is ready (server readiness).
    pub fn all_ready(&self) -> bool {
        let models = self.models.read().unwrap_or_else(|e| e.into_inner());
        models
            .values()
            .all(|tx| matches!(*tx.borrow(), ModelState::Ready(_) | ModelState::Unloaded))
    }

    /// Names of the known models.
    pub fn names(&self) -> Vec<String> {
        self.models
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Every known model with its state, plus the loader's models that
    /// were never loaded.
    pub fn index(&self) -> Vec<IndexEntry> {
        let mut rows: BTreeMap<String, IndexEntry> = BTreeMap::new();
        if let Some(loader) = &self.loader {
            for name in loader.available() {
                rows.insert(
                    name.clone(),
                    IndexEntry {
                        name,
                        state: "UNAVAILABLE".into(),
                        reason: "unloaded".into(),
                    },
                );
            }
        }
        for (name, tx) in self.models.read().unwrap_or_else(|e| e.into_inner()).iter() {
            let state = tx.borrow();
            rows.insert(
                name.clone(),
                IndexEntry {
                    name: name.clone(),
                    state: state.label().into(),
                    reason: state.reason().unwrap_or_default(),
                },
            );
        }
        rows.into_values().collect()
    }

    /// Loads (or reloads) `name` through the loader. While it loads, a
    /// model already serving under that name goes on serving.
    ///
    /// A name that is neither known here nor one the loader has is
    /// refused with 404 and recorded nowhere: the repository holds only
    /// the models it was given, whatever names callers send.
    pub async fn load(&self, name: &str) -> Result<(), InferError> {
        let Some(loader) = self.loader.clone() else {
            return Err(InferError::invalid(
                "this server has no model repository to load from",
            ));
        };
        if self.sender(name).is_none() && !loader.has(name) {
            return Err(InferError::ModelNotFound(name.to_string()));
        }
        let serving = matches!(self.state(name), Some(ModelState::Ready(_)));
        if !serving {
            self.set(name, ModelState::Loading);
        }
        match loader.load(name).await {
            Ok(model) => {
                self.set(name, ModelState::Ready(model));
                Ok(())
            }
            Err(reason) => {
                if !serving {
                    self.set(name, ModelState::Failed(reason.clone()));
                }
                Err(InferError::invalid(format!(
                    "failed to load model {name}: {reason}"
                )))
            }
        }
    }

    /// Unloads `name`; its requests get 503 until it is loaded again.
    pub fn unload(&self, name: &str) -> Result<(), InferError> {
        match self.sender(name) {
            None => Err(InferError::ModelNotFound(name.to_string())),
            Some(tx) => {
                tx.send_replace(ModelState::Unloaded);
                Ok(())
            }
        }
    }
}

fn not_ready(name: &str, state: &ModelState) -> InferError {
    InferError::NotReady {
        name: name.to_string(),
        reason: state.reason().unwrap_or_else(|| "unknown".into()),
    }
}
