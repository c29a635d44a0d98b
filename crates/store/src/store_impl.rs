//! Opening the database (URL rules, pool settings, migrations) and the
//! helpers every query module shares: error context and row decoding.
//!
//! The query modules below hold one `impl Store` block per resource.

/// The states `RunState::is_terminal` calls terminal, as stored, for
/// `concat!`. A unit test in `runs` keeps this in step with `core`.
macro_rules! terminal_states {
    () => {
        "('SUCCEEDED', 'FAILED', 'CANCELED')"
    };
}

mod artifacts;
mod experiments;
mod leases;
mod legacy_kserve;
pub use leases::Fence;
pub use legacy_kserve::{LegacyKServeKind, LegacyKServeRow};
mod listing;
mod namespaces;
mod pipelines;
mod recurring_runs;
mod resources;
pub use resources::{ResourceEvent, ResourceKey, StoredResource, WatchEventType};
mod runs;
mod secrets;
mod tasks;
mod tuning;

pub use runs::{DEFAULT_RUN_LIMIT, MIN_ID_PREFIX};

use std::borrow::Cow;
use std::fmt::Display;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use oxflow_core::{Namespace, Timestamp};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyConnection, Connection, Decode, Executor, Row, SqlSafeStr, Type};
use tracing::{info, warn};

use crate::{Dialect, Result, Store, StoreError};

/// One migration: version, description, SQLite text, PostgreSQL text.
///
/// Both dialects must have the same versions; a new migration adds one file
/// to each directory and one line here.
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../migrations/sqlite/0001_initial.sql"),
        include_str!("../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "kfp resources",
        include_str!("../migrations/sqlite/0002_kfp_resources.sql"),
        include_str!("../migrations/postgres/0002_kfp_resources.sql"),
    ),
    (
        3,
        "tuning",
        include_str!("../migrations/sqlite/0003_tuning.sql"),
        include_str!("../migrations/postgres/0003_tuning.sql"),
    ),
    (
        4,
        "run specs",
        include_str!("../migrations/sqlite/0004_run_specs.sql"),
        include_str!("../migrations/postgres/0004_run_specs.sql"),
    ),
    (
        5,
        "inference services",
        include_str!("../migrations/sqlite/0005_inference_services.sql"),
        include_str!("../migrations/postgres/0005_inference_services.sql"),
    ),
    (
        6,
        "trained models",
        include_str!("../migrations/sqlite/0006_trained_models.sql"),
        include_str!("../migrations/postgres/0006_trained_models.sql"),
    ),
    (
        7,
        "resources",
        include_str!("../migrations/sqlite/0007_resources.sql"),
        include_str!("../migrations/postgres/0007_resources.sql"),
    ),
    (
        8,
        "trial observations",
        include_str!("../migrations/sqlite/0008_trial_observations.sql"),
        include_str!("../migrations/postgres/0008_trial_observations.sql"),
    ),
];

/// How long a caller waits for a free pooled connection (or for the server to
/// answer at start-up) before the store reports an error.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Pragmas every SQLite connection needs: wait up to 5 s for another writer,
/// enforce foreign keys, and fsync only at checkpoints (safe with WAL: a crash
/// can lose the last commits but never corrupts the file). `journal_mode` is
/// absent on purpose: WAL is a property of the file, set once in [`open_target`].
/// Each connection's page cache is capped at 512 KiB (SQLite's default is
/// 2 MiB): a long pipeline run touches every connection of the pool, and
/// each would keep its 2 MiB of pages, while the pages an engine writes and
/// reads again are few and the OS caches the file anyway.
const SQLITE_CONNECTION_PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; \
     PRAGMA synchronous = NORMAL; PRAGMA cache_size = -512;";

/// What a database URL resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A SQLite database: `url` is what the `Any` driver gets.
    Sqlite {
        /// `sqlite://…` with a `mode` parameter.
        url: String,
        /// The database lives in the connection; every connection would get
        /// its own, so the pool must keep exactly one alive.
        memory: bool,
    },
    /// A PostgreSQL server.
    Postgres {
        /// The URL as given.
        url: String,
    },
}

/// See [`Store::open`].
pub(crate) async fn open(url: &str) -> Result<Store> {
    let target = parse_url(url)?;
    open_target(target).await
}

/// See [`Store::open_in_dir`]: a file path, never interpreted as a URL.
pub(crate) async fn open_sqlite_file(path: &Path) -> Result<Store> {
    open_target(sqlite_file_target(path)).await
}

/// Classifies `url` (see [`Store::open`] for the accepted forms).
pub(crate) fn parse_url(url: &str) -> Result<Target> {
    let url = url.trim();
    if url.is_empty() {
        return Err(StoreError::BadUrl(String::new()));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Target::Postgres {
            url: url.to_owned(),
        });
    }
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let (database, query) = match rest.split_once('?') {
            Some((d, q)) => (d, Some(q)),
            None => (rest, None),
        };
        let database = database.trim_start_matches("//");
        let params: Vec<&str> = query
            .map(|q| q.split('&').filter(|p| !p.is_empty()).collect())
            .unwrap_or_default();
        let memory = database == ":memory:" || params.contains(&"mode=memory");
        if database.is_empty() && !memory {
            return Err(StoreError::BadUrl(redact(url)));
        }
        // sqlx opens an existing file only unless told otherwise; a store
        // that creates its own schema should create its own file too.
        let has_mode = params.iter().any(|p| p.starts_with("mode="));
        let url = if memory || has_mode {
            url.to_owned()
        } else if query.is_some() {
            format!("{url}&mode=rwc")
        } else {
            format!("{url}?mode=rwc")
        };
        return Ok(Target::Sqlite { url, memory });
    }
    if url.contains("://") {
        return Err(StoreError::BadUrl(redact(url)));
    }
    Ok(sqlite_file_target(Path::new(url)))
}

/// A plain file path as a `sqlite://` URL that means exactly that file.
fn sqlite_file_target(path: &Path) -> Target {
    // URL parsing would fold `..` segments and treat the first segment of a
    // relative path as a host. An absolute path without `.`/`..` avoids both;
    // canonicalizing the parent (which must exist for SQLite anyway) gives one.
    let absolute = match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            match parent.canonicalize() {
                Ok(dir) => dir.join(name),
                Err(_) => path.to_path_buf(),
            }
        }
        _ => path.to_path_buf(),
    };
    let mut encoded = String::new();
    for c in absolute.to_string_lossy().chars() {
        match c {
            // sqlx percent-decodes the path, and `?`/`#` would end it.
            '%' => encoded.push_str("%25"),
            '?' => encoded.push_str("%3F"),
            '#' => encoded.push_str("%23"),
            c => encoded.push(c),
        }
    }
    Target::Sqlite {
        url: format!("sqlite://{encoded}?mode=rwc"),
        memory: false,
    }
}

/// `url` without a password, for error messages.
fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            return format!("{scheme}://***@{}", &rest[at + 1..]);
        }
    }
    url.to_owned()
}

async fn open_target(target: Target) -> Result<Store> {
    // Every `AnyPool` needs the drivers; installing is idempotent.
    sqlx::any::install_default_drivers();
    let (url, dialect, memory) = match &target {
        Target::Sqlite { url, memory } => (url.as_str(), Dialect::Sqlite, *memory),
        Target::Postgres { url } => (url.as_str(), Dialect::Postgres, false),
    };
    let options = AnyConnectOptions::from_str(url)
        .map_err(|e| db_err(format!("parsing the database URL {:?}", redact(url)), e))?;
    if !memory {
        // The pool reports an unreachable server only as "timed out"; one
        // direct connection first surfaces the real cause (refused,
        // authentication, no such database, unwritable directory).
        let probe = AnyConnection::connect_with(&options)
            .await
            .map_err(|e| db_err(format!("connecting to {:?}", redact(url)), e))?;
        // Closing politely can only fail on a connection that is already gone.
        let _ = probe.close().await;
    }
    let pool_options = match (dialect, memory) {
        (Dialect::Sqlite, true) => AnyPoolOptions::new()
            // An in-memory database lives and dies with its one connection.
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None),
        (Dialect::Sqlite, false) => AnyPoolOptions::new().max_connections(8),
        (Dialect::Postgres, _) => AnyPoolOptions::new().max_connections(10),
    };
    let pool_options = if dialect == Dialect::Sqlite {
        pool_options
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(SQLITE_CONNECTION_PRAGMAS).await?;
                    Ok(())
                })
            })
            .after_release(|conn, _meta| Box::pin(sqlite_connection_is_clean(conn)))
    } else {
        pool_options
    };
    let pool = pool_options
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|e| db_err(format!("connecting to {:?}", redact(url)), e))?;

    // Two processes opening a fresh SQLite file at once (`oxflow tune` and
    // an `oxflow experiments` beside it) would both see no migrations applied
    // and both create the tables, and one's switch to WAL could fail with
    // "database is locked" while the other holds the file; sqlx locks
    // migrations on PostgreSQL but not SQLite. An advisory lock serialises
    // both steps. It is taken on a file of its own, never on the database:
    // closing *any* descriptor of a file drops every fcntl lock the process
    // holds on it, SQLite's own included, and a connection that has lost its
    // SHARED lock lets the next outside client that closes (the `sqlite3`
    // shell, a backup script) checkpoint and unlink the live `-wal` and
    // `-shm` under us.
    let _migrating = match (dialect, memory) {
        (Dialect::Sqlite, false) => lock_sqlite_file(url).await,
        _ => None,
    };
    if dialect == Dialect::Sqlite && !memory {
        // WAL lets readers run while one writer commits. It is stored in the
        // file, so setting it once per open is enough; doing it per connection
        // could race for the exclusive lock the switch needs.
        let row = sqlx::query("PRAGMA journal_mode = WAL")
            .fetch_one(&pool)
            .await
            .map_err(|e| db_err("switching SQLite to WAL mode", e))?;
        let mode: String = row
            .try_get(0)
            .map_err(|e| db_err("reading the SQLite journal mode", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            warn!(journal_mode = %mode, "SQLite refused WAL mode; concurrent readers will block on writers.");
        }
    }

    migrator(dialect).run(&pool).await?;
    drop(_migrating);
    info!(dialect = ?dialect, "Store opened.");
    Ok(Store { pool, dialect })
}

/// Whether a SQLite connection handed back to the pool may serve the next
/// caller: only when it is outside any transaction (else the pool closes
/// it, which rolls back whatever it holds).
///
/// After `SQLITE_FULL` or `SQLITE_IOERR` SQLite may or may not have rolled
/// the transaction back itself, and sqlx's count of open transactions can
/// then disagree with SQLite's. A connection left inside a transaction
/// keeps the write lock, so every other writer fails with "database is
/// locked", and it puts each later statement it runs into that transaction,
/// which is never committed: writes answered as done, lost on a restart.
/// `BEGIN` fails exactly when a transaction is open; it runs after any
/// rollback sqlx queued for a dropped transaction, so it sees the outcome.
/// Both statements go in one call (one round trip to the connection's
/// thread: this runs after every query); a failing `BEGIN` stops it there.
async fn sqlite_connection_is_clean(conn: &mut AnyConnection) -> sqlx::Result<bool> {
    if conn.execute("BEGIN; ROLLBACK").await.is_err() {
        warn!("A database connection was left inside a transaction; closing it.");
        return Ok(false);
    }
    Ok(!conn.is_in_transaction())
}

/// The path of the migration lock beside the SQLite file named by `url`:
/// `<file>-oxflow.lock`, next to SQLite's own `-wal` and `-shm`.
fn sqlite_lock_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite:")?.trim_start_matches("//");
    let path = rest.split('?').next()?;
    let path = path
        .replace("%3F", "?")
        .replace("%23", "#")
        .replace("%25", "%");
    Some(std::path::PathBuf::from(format!("{path}-oxflow.lock")))
}

/// An exclusive `flock` on the lock file beside the SQLite file named by
/// `url` (see [`sqlite_lock_path`]), held until the returned file is
/// dropped; `None` when it cannot be created or locked (migrations then run
/// unserialised, as before). The lock file is never removed: removing it
/// would let two processes lock two different files of the same name.
async fn lock_sqlite_file(url: &str) -> Option<std::fs::File> {
    let path = sqlite_lock_path(url)?;
    tokio::task::spawn_blocking(move || {
        let file = match std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) => {
                warn!(path = %path.display(), error = %e, "Could not create the migration lock file.");
                return None;
            }
        };
        match file.lock() {
            Ok(()) => Some(file),
            Err(e) => {
                warn!(path = %path.display(), error = %e, "Could not lock the database for migrations.");
                None
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// The embedded migrations of one dialect.
fn migrator(dialect: Dialect) -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|&(version, description, sqlite, postgres)| {
            let sql = match dialect {
                Dialect::Sqlite => sqlite,
                Dialect::Postgres => postgres,
            };
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

/// Whether the statement broke a UNIQUE constraint (or a primary key).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Whether the statement referenced a row that does not exist.
pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

/// Wraps a driver error with what the store was doing.
pub(crate) fn db_err(context: impl Into<String>, source: sqlx::Error) -> StoreError {
    StoreError::Database {
        context: context.into(),
        source,
    }
}

/// Adds context to a driver result.
pub(crate) trait DbContext<T> {
    /// Maps the error into [`StoreError::Database`] with `context()`.
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> DbContext<T> for std::result::Result<T, sqlx::Error> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| db_err(context(), e))
    }
}

/// Decodes the columns of one row, naming the record in every error.
pub(crate) struct Reader<'r> {
    row: &'r AnyRow,
    what: String,
}

impl<'r> Reader<'r> {
    /// `what` names the record (`run 0192…`) in errors.
    pub(crate) fn new(row: &'r AnyRow, what: String) -> Self {
        Self { row, what }
    }

    /// A reader whose record name ends with the row's `key_column`.
    pub(crate) fn keyed(row: &'r AnyRow, kind: &str, key_column: &str) -> Result<Self> {
        let key: String = row
            .try_get(key_column)
            .map_err(|e| db_err(format!("reading column {key_column} of a {kind} row"), e))?;
        Ok(Self::new(row, format!("{kind} {key}")))
    }

    pub(crate) fn get<T>(&self, column: &str) -> Result<T>
    where
        T: Decode<'r, Any> + Type<Any>,
    {
        self.row
            .try_get(column)
            .map_err(|e| db_err(format!("reading column {column} of {}", self.what), e))
    }

    pub(crate) fn corrupt(&self, detail: String) -> StoreError {
        StoreError::Corrupt {
            what: self.what.clone(),
            detail,
        }
    }

    pub(crate) fn json(&self, column: &str) -> Result<serde_json::Value> {
        let text: String = self.get(column)?;
        serde_json::from_str(&text)
            .map_err(|e| self.corrupt(format!("column {column} is not valid JSON: {e}")))
    }

    pub(crate) fn parse<T>(&self, column: &str) -> Result<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        let text: String = self.get(column)?;
        text.parse()
            .map_err(|e| self.corrupt(format!("column {column}: {e}")))
    }

    pub(crate) fn namespace(&self, column: &str) -> Result<Namespace> {
        let text: String = self.get(column)?;
        Namespace::new(text).map_err(|e| self.corrupt(format!("column {column}: {e}")))
    }

    pub(crate) fn timestamp(&self, column: &str) -> Result<Timestamp> {
        Ok(Timestamp(self.get(column)?))
    }

    pub(crate) fn opt_timestamp(&self, column: &str) -> Result<Option<Timestamp>> {
        Ok(self.get::<Option<i64>>(column)?.map(Timestamp))
    }

    /// Booleans are stored as 0/1 integers (see the migrations).
    pub(crate) fn flag(&self, column: &str) -> Result<bool> {
        match self.get::<i64>(column)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(self.corrupt(format!("column {column} is {other}, not 0 or 1"))),
        }
    }
}

/// JSON as the TEXT the columns hold.
pub(crate) fn json_text(value: &serde_json::Value) -> String {
    value.to_string()
}

/// Optional timestamps as the nullable integers the columns hold.
pub(crate) fn opt_millis(t: Option<Timestamp>) -> Option<i64> {
    t.map(Timestamp::millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(url: &str, memory: bool) -> Target {
        Target::Sqlite {
            url: url.to_owned(),
            memory,
        }
    }

    #[test]
    fn classifies_urls() {
        let cases = [
            (
                "postgres://u@h/db",
                Target::Postgres {
                    url: "postgres://u@h/db".into(),
                },
            ),
            (
                "postgresql://u@h:5/db?sslmode=disable",
                Target::Postgres {
                    url: "postgresql://u@h:5/db?sslmode=disable".into(),
                },
            ),
            ("sqlite::memory:", sqlite("sqlite::memory:", true)),
            ("sqlite://:memory:", sqlite("sqlite://:memory:", true)),
            (
                "sqlite://?mode=memory",
                sqlite("sqlite://?mode=memory", true),
            ),
            (
                "sqlite:///tmp/x.db",
                sqlite("sqlite:///tmp/x.db?mode=rwc", false),
            ),
            (
                "sqlite:///tmp/x.db?cache=shared",
                sqlite("sqlite:///tmp/x.db?cache=shared&mode=rwc", false),
            ),
            (
                "sqlite:///tmp/x.db?mode=ro",
                sqlite("sqlite:///tmp/x.db?mode=ro", false),
            ),
            // A file in a directory that does not exist is passed through as is.
            (
                "/nonexistent-oxflow/a b%?#.db",
                sqlite(
                    "sqlite:///nonexistent-oxflow/a b%25%3F%23.db?mode=rwc",
                    false,
                ),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_url(input).unwrap(), expected, "{input}");
        }
    }

    #[test]
    fn relative_paths_become_absolute() {
        let Target::Sqlite { url, memory } = parse_url("oxflow-test.db").unwrap() else {
            panic!("not sqlite");
        };
        let cwd = std::env::current_dir().unwrap().canonicalize().unwrap();
        assert_eq!(
            url,
            format!("sqlite://{}/oxflow-test.db?mode=rwc", cwd.display())
        );
        assert!(!memory);
    }

    #[test]
    fn rejects_other_schemes_without_leaking_passwords() {
        for (input, shown) in [
            ("mysql://root:hunter2@db/x", "mysql://***@db/x"),
            ("http://example.com/x", "http://example.com/x"),
            ("", ""),
            ("sqlite://", "sqlite://"),
        ] {
            match parse_url(input) {
                Err(StoreError::BadUrl(u)) => assert_eq!(u, shown, "{input}"),
                other => panic!("{input}: {other:?}"),
            }
        }
    }

    #[test]
    fn both_dialects_have_the_same_migrations() {
        let versions = |d| migrator(d).iter().map(|m| m.version).collect::<Vec<_>>();
        assert_eq!(versions(Dialect::Sqlite), versions(Dialect::Postgres));
    }

    #[tokio::test]
    async fn in_memory_database_keeps_its_data() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        assert_eq!(store.dialect(), Dialect::Sqlite);
        sqlx::query("INSERT INTO secrets (namespace, name, data) VALUES ('a', 'b', '{}')")
            .execute(store.pool())
            .await
            .unwrap();
        // A second statement on the pool must see the same database.
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM secrets")
            .fetch_one(store.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn sqlite_connections_get_their_pragmas() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in_dir(dir.path()).await.unwrap();
        let pragma = |name: &'static str| {
            let pool = store.pool().clone();
            async move {
                let row = sqlx::query(name).fetch_one(&pool).await.unwrap();
                // `journal_mode` answers text, the others integers.
                row.try_get::<String, _>(0)
                    .or_else(|_| row.try_get::<i64, _>(0).map(|n| n.to_string()))
                    .unwrap()
            }
        };
        assert_eq!(pragma("PRAGMA journal_mode").await, "wal");
        assert_eq!(pragma("PRAGMA foreign_keys").await, "1");
        assert_eq!(pragma("PRAGMA synchronous").await, "1"); // NORMAL
        assert_eq!(pragma("PRAGMA busy_timeout").await, "5000");
        assert_eq!(pragma("PRAGMA cache_size").await, "-512"); // KiB
        assert!(dir.path().join("oxflow.db").exists());
    }

    #[tokio::test]
    async fn the_release_probe_tells_a_connection_inside_a_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in_dir(dir.path()).await.unwrap();
        let mut conn = store.pool().acquire().await.unwrap();
        // Clean: the probe's own BEGIN is rolled back, nothing stays open.
        assert!(sqlite_connection_is_clean(&mut conn).await.unwrap());
        assert!(sqlite_connection_is_clean(&mut conn).await.unwrap());
        // A transaction sqlx does not know of (what a failed COMMIT leaves).
        conn.execute("BEGIN IMMEDIATE").await.unwrap();
        assert!(!sqlite_connection_is_clean(&mut conn).await.unwrap());
        // The probe left it as it was: the write lock is still held here.
        conn.execute("ROLLBACK").await.unwrap();
        assert!(sqlite_connection_is_clean(&mut conn).await.unwrap());
    }
}
