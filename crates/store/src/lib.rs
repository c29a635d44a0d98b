//! Persistence for every Oxflow resource: one API over SQLite and PostgreSQL.
//!
//! Architecture invariant: this is the only crate that knows SQL. Both
//! dialects run through one code path (`sqlx::AnyPool`); only the migration
//! files differ. Every write that must be atomic is one transaction.

#![warn(missing_docs)]

mod query;
mod records;

use std::collections::BTreeMap;
use std::path::Path;

pub use query::{
    DEFAULT_PAGE_SIZE, Filter, FilterOp, FilterValue, ListQuery, MAX_PAGE_SIZE, Page, Sort,
};
pub use records::{
    ArtifactRecord, CacheEntry, ExperimentRecord, ObservationLogRecord, PipelineRecord,
    PipelineVersionRecord, RecurringRunRecord, RunQuery, RunRecord, StateChange, StorageState,
    TaskRecord, TaskSummary, TuningExperimentRecord, TuningTrialRecord, UnknownStorageState,
};
pub use store_impl::{
    DEFAULT_RUN_LIMIT, Fence, LegacyKServeKind, LegacyKServeRow, MIN_ID_PREFIX, ResourceEvent,
    ResourceKey, StoredResource, WatchEventType,
};

/// What can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not one we support.
    #[error(
        "unsupported database URL {0:?}: use a SQLite file path, sqlite://PATH or postgres://USER@HOST/DB"
    )]
    BadUrl(String),
    /// The database could not be reached or a statement failed.
    #[error("database error while {context}: {source}")]
    Database {
        /// What the store was doing.
        context: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Migrations failed.
    #[error("could not migrate the database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row could not be decoded (corrupt or written by a newer Oxflow).
    #[error("stored {what} is corrupt: {detail}")]
    Corrupt {
        /// Which record.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// No such record.
    #[error("{kind} {id:?} not found")]
    NotFound {
        /// `run`, `task`, …
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// An id prefix matched more than one record.
    #[error(
        "{kind} id prefix {prefix:?} is ambiguous: it matches {matches} records; give more characters"
    )]
    Ambiguous {
        /// `run`, …
        kind: &'static str,
        /// The prefix given.
        prefix: String,
        /// How many matched.
        matches: usize,
    },
    /// A record with this name already exists where names must be unique.
    #[error("{kind} {name:?} already exists; choose another name")]
    Conflict {
        /// `experiment`, `pipeline`, `pipeline version`.
        kind: &'static str,
        /// The name that is taken.
        name: String,
    },
    /// A record cannot be deleted while others depend on it.
    #[error(
        "{kind} {id:?} still has {count} {children}; delete them first, or ask for a cascading delete"
    )]
    NotEmpty {
        /// `pipeline`.
        kind: &'static str,
        /// The record asked to be deleted.
        id: String,
        /// What depends on it (`pipeline versions`).
        children: &'static str,
        /// How many.
        count: i64,
    },
    /// A write under a lease that its writer no longer holds.
    #[error(
        "{what}: the lease {lease:?} has passed to another process (fencing token {token} is stale); this process must stop writing"
    )]
    Fenced {
        /// What was being written.
        what: String,
        /// The lease.
        lease: String,
        /// The token the writer held.
        token: i64,
    },
    /// An object with this key already exists.
    #[error("{what} already exists")]
    AlreadyExists {
        /// `experiments.kubeflow.org "x"`.
        what: String,
    },
    /// A write named a resourceVersion that is no longer the object's.
    #[error(
        "Operation cannot be fulfilled on {what}: the object has been modified; please apply your changes to the latest version and try again"
    )]
    Stale {
        /// `experiments.kubeflow.org "x"`.
        what: String,
    },
    /// A list request names a field, operation, value or page token the
    /// store cannot use.
    #[error("bad query on {field:?}: {message}")]
    BadQuery {
        /// The field (or `page_token`) at fault.
        field: String,
        /// What is wrong and what would work.
        message: String,
    },
}

impl StoreError {
    /// Whether the same call may succeed later without anything changing on
    /// the caller's side: a full disk or an I/O error (space may return),
    /// a lock held too long, a server or pool that is unreachable for now.
    /// Callers that must not drop a write (the engine recording a task)
    /// retry these; anything else (a constraint, a corrupt row) is final.
    pub fn is_transient(&self) -> bool {
        let Self::Database { source, .. } = self else {
            return false;
        };
        match source {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => true,
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                // SQLite's primary result code is the low byte of the extended
                // one: 5 BUSY, 6 LOCKED, 10 IOERR, 13 FULL, 14 CANTOPEN.
                // PostgreSQL: class 08 (connection), 53 (insufficient
                // resources: disk full, out of memory), 57P0x (shutting
                // down), 40001/40P01 (serialization failure, deadlock).
                let sqlite = code
                    .parse::<i64>()
                    .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13 | 14));
                let postgres = code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("57P0")
                    || code == "40001"
                    || code == "40P01";
                sqlite || postgres
            }
            _ => false,
        }
    }
}

/// Result alias for store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// A file under the data directory (the embedded default).
    Sqlite,
    /// A PostgreSQL server (scale-out).
    Postgres,
}

/// The store handle. Cheap to clone (a pool inside).
#[derive(Clone, Debug)]
pub struct Store {
    pool: sqlx::AnyPool,
    dialect: Dialect,
}

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    ///
    /// `url` is `postgres://…`, `postgresql://…`, `sqlite://PATH`, `sqlite::memory:` or a plain file path.
    /// SQLite files are created when missing (unless the URL sets its own `mode=`) and use WAL,
    /// `synchronous=NORMAL`, foreign keys and a 5 s busy timeout. `sqlite::memory:` (for tests)
    /// gets a pool of exactly one connection, since each connection would see its own database.
    /// Opening twice is harmless: migrations already applied are skipped.
    pub async fn open(url: &str) -> Result<Store> {
        store_impl::open(url).await
    }

    /// Opens the embedded default: `oxflow.db` in `dir` (which must exist).
    pub async fn open_in_dir(dir: &Path) -> Result<Store> {
        // Taken as a path, never parsed as a URL, so any directory name works.
        store_impl::open_sqlite_file(&dir.join("oxflow.db")).await
    }

    /// The dialect behind this store.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The underlying pool, for crates that add their own tables later.
    pub fn pool(&self) -> &sqlx::AnyPool {
        &self.pool
    }
}

mod store_impl;

/// Secrets are plain key/value maps per namespace (the local stand-in for Kubernetes Secrets).
pub type SecretData = BTreeMap<String, String>;
