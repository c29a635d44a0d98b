//! The route table: every route the server answers is added through
//! [`Routes`], which records its path as it adds it to the router, so that
//! the authentication test walks exactly the routes that exist (a route
//! added any other way fails `tests/auth.rs`'s scan of the sources).

use axum::Router;
use axum::routing::MethodRouter;

use crate::AppState;

/// A router and the paths it routes.
pub(crate) struct Routes {
    router: Router<AppState>,
    paths: Vec<String>,
}

impl Routes {
    pub(crate) fn new() -> Self {
        Self {
            router: Router::new(),
            paths: Vec::new(),
        }
    }

    /// `Router::route`, recording `path`.
    pub(crate) fn route(mut self, path: &str, methods: MethodRouter<AppState>) -> Self {
        self.paths.push(path.to_owned());
        self.router = self.router.route(path, methods);
        self
    }

    /// `Router::nest`, recording the nested paths under `prefix`.
    pub(crate) fn nest(mut self, prefix: &str, inner: Routes) -> Self {
        self.paths
            .extend(inner.paths.iter().map(|p| format!("{prefix}{p}")));
        self.router = self.router.nest(prefix, inner.router);
        self
    }

    /// `Router::merge`.
    pub(crate) fn merge(mut self, other: Routes) -> Self {
        self.paths.extend(other.paths);
        self.router = self.router.merge(other.router);
        self
    }

    /// Applies `f` (a layer, usually) to the router built so far.
    pub(crate) fn with(mut self, f: impl FnOnce(Router<AppState>) -> Router<AppState>) -> Self {
        self.router = f(self.router);
        self
    }

    pub(crate) fn into_parts(self) -> (Router<AppState>, Vec<String>) {
        (self.router, self.paths)
    }
}
