//! What the embedded SQLite store promises under an unlucky operator: other
//! SQLite clients opening and closing the database, and a full disk. Every
//! write the store acknowledged must be in the file afterwards, and the
//! store must recover from a full disk by itself.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{experiment, run};
use oxflow_store::Store;
use sqlx::Row;

/// The Python the test suite installed (`OXFLOW_TEST_PYTHON`), else
/// `python3`: its `sqlite3` module is the "other SQLite client".
fn python() -> String {
    std::env::var("OXFLOW_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Runs `script` in a separate Python process with the database path as
/// `sys.argv[1]`, and returns its standard output.
fn outside_client(db: &Path, script: &str) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(db)
        .output()
        .expect("start python3 for the outside SQLite client");
    assert!(
        out.status.success(),
        "the outside SQLite client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Descriptors of this process that point at a deleted `-wal` or `-shm`:
/// what the store would be writing into after an outside client unlinked
/// them.
fn deleted_wal_descriptors() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p: PathBuf| p.display().to_string())
        .filter(|p| (p.contains("-wal") || p.contains("-shm")) && p.ends_with("(deleted)"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_clients_closing_the_database_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("oxflow.db");
    let store = Store::open_in_dir(dir.path()).await.unwrap();

    // Every pooled connection is opened before the outside clients come, so
    // each of them would have lost its lock had the store dropped it.
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(store.pool().acquire().await.unwrap());
    }
    drop(held);

    // One open-read-close of the database by another process, as the
    // `sqlite3` shell, a backup script or a monitoring probe does.
    let probe = "import sqlite3, sys\n\
                 c = sqlite3.connect(sys.argv[1])\n\
                 print(c.execute('SELECT COUNT(*) FROM runs').fetchone()[0])\n\
                 c.close()\n";
    let mut acknowledged = BTreeSet::new();
    for round in 0..20 {
        for i in 0..5 {
            let id = format!("run-{round:02}-{i}");
            store
                .insert_run(&run(&id, "default", round * 10 + i))
                .await
                .unwrap();
            acknowledged.insert(id);
        }
        let seen: usize = outside_client(&db, probe).trim().parse().unwrap();
        assert_eq!(
            seen,
            acknowledged.len(),
            "round {round}: the outside client must see every committed run"
        );
        let deleted = deleted_wal_descriptors();
        assert!(
            deleted.is_empty(),
            "round {round}: an outside client's close unlinked the live WAL under the store: {deleted:?}"
        );
    }

    // Another process reading the file alone (the store's WAL not
    // checkpointed on purpose: the store stays open) sees every run.
    let ids = outside_client(
        &db,
        "import sqlite3, sys\n\
         c = sqlite3.connect(sys.argv[1])\n\
         print('\\n'.join(r[0] for r in c.execute('SELECT id FROM runs')))\n\
         c.close()\n",
    );
    let found: BTreeSet<String> = ids.lines().map(str::to_owned).collect();
    assert_eq!(found, acknowledged);
    // And a store opened afresh on the same file, after this one is gone.
    store.pool().close().await;
    let reopened = Store::open_in_dir(dir.path()).await.unwrap();
    for id in &acknowledged {
        assert!(
            reopened.get_run(id).await.unwrap().is_some(),
            "acknowledged run {id} is gone"
        );
    }
}

/// Sets SQLite's page limit on every connection of the pool (it is a
/// per-connection setting): `pages` of 4 KiB, or no limit with `None`.
async fn set_page_limit(store: &Store, pages: Option<i64>) {
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut conn = store.pool().acquire().await.unwrap();
        let limit = pages.unwrap_or(i64::from(u32::MAX) - 1);
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA max_page_count = {limit}"
        )))
        .execute(&mut *conn)
        .await
        .unwrap();
        held.push(conn);
    }
}

async fn page_count(store: &Store) -> i64 {
    sqlx::query("PRAGMA page_count")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

/// Acknowledged writes, by kind, to look for afterwards.
#[derive(Default)]
struct Acknowledged {
    runs: BTreeSet<String>,
    experiments: BTreeSet<String>,
}

impl Acknowledged {
    /// Asserts that a store opened afresh on `dir` has every one of them.
    async fn assert_all_present(&self, dir: &Path) {
        let reopened = Store::open_in_dir(dir).await.unwrap();
        let mut missing = Vec::new();
        for id in &self.runs {
            if reopened.get_run(id).await.unwrap().is_none() {
                missing.push(id.clone());
            }
        }
        for id in &self.experiments {
            if reopened.get_experiment(id).await.unwrap().is_none() {
                missing.push(id.clone());
            }
        }
        reopened.pool().close().await;
        assert!(
            missing.is_empty(),
            "{} of {} acknowledged writes are gone: {missing:?}",
            missing.len(),
            self.runs.len() + self.experiments.len()
        );
    }
}

/// `n` rounds of two concurrent writes of about 6 KiB each: a run with its
/// spec (a transaction of several statements) and an experiment (one
/// statement). Returns the error messages of those that failed.
async fn write_rounds(
    store: &Store,
    prefix: &str,
    n: i64,
    acked: &mut Acknowledged,
) -> Vec<String> {
    let big = "x".repeat(6000);
    let mut failures = Vec::new();
    for i in 0..n {
        let run_id = format!("{prefix}-run-{i:03}");
        let exp_id = format!("{prefix}-exp-{i:03}");
        let mut r = run(&run_id, "default", i);
        r.display_name = big.clone();
        let mut e = experiment(&exp_id, "default", &exp_id, i);
        e.description = big.clone();
        let spec = format!("{{\"pad\": \"{big}\"}}");
        let (a, b) = tokio::join!(
            store.insert_run_with_spec(&r, &spec),
            store.insert_experiment(&e)
        );
        match a {
            Ok(()) => {
                acked.runs.insert(run_id);
            }
            Err(err) => failures.push(describe(&err)),
        }
        match b {
            Ok(()) => {
                acked.experiments.insert(exp_id);
            }
            Err(err) => failures.push(describe(&err)),
        }
    }
    failures
}

/// The error as the assertions read it: its message, marked when the store
/// does not call it transient (a full disk must be retried, not given up).
fn describe(err: &oxflow_store::StoreError) -> String {
    if err.is_transient() {
        err.to_string()
    } else {
        format!("NOT TRANSIENT: {err}")
    }
}

/// Asserts that `failures` are many, and each says the disk is full (not
/// that the database is locked).
fn assert_failed_as_full(failures: &[String]) {
    assert!(
        failures.len() >= 10,
        "the full disk should have refused writes, got {} failures",
        failures.len()
    );
    assert!(
        failures
            .iter()
            .all(|f| f.contains("full") && !f.starts_with("NOT TRANSIENT")),
        "a full disk must be reported as such, not as a lock: {failures:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_limit_fails_writes_cleanly_and_lifting_it_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_dir(dir.path()).await.unwrap();
    let mut acked = Acknowledged::default();

    // "The disk fills": the file may grow by a few pages only.
    let pages = page_count(&store).await;
    set_page_limit(&store, Some(pages + 6)).await;
    let failures = write_rounds(&store, "full", 60, &mut acked).await;
    assert_failed_as_full(&failures);

    // "Space returns": every write now succeeds, none blocked by a
    // connection left inside a transaction.
    set_page_limit(&store, None).await;
    let failures = write_rounds(&store, "after", 40, &mut acked).await;
    assert!(
        failures.is_empty(),
        "writes after the limit was lifted failed: {failures:?}"
    );
    store.pool().close().await;
    acked.assert_all_present(dir.path()).await;
}

/// A small tmpfs mounted on a temporary directory, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` where this process may not mount (not root): the test then
    /// says so, and fails under CI, which runs as root.
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Self { dir })
    }

    /// Fills the filesystem with one file; returns its path.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.dir.path().join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        while f.write_all(&chunk[..64]).is_ok() {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_filesystem_fails_writes_cleanly_and_the_store_recovers_by_itself() {
    let Some(disk) = SmallDisk::mount("8m") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to mount a tmpfs (it runs as root)"
        );
        eprintln!("skipped: this process may not mount a tmpfs (not root)");
        return;
    };
    let store = Store::open_in_dir(disk.dir.path()).await.unwrap();
    let mut acked = Acknowledged::default();

    let filler = disk.fill();
    let failures = write_rounds(&store, "full", 60, &mut acked).await;
    assert_failed_as_full(&failures);

    // Space returns; the store must take writes again at once, without a
    // restart, and within the busy timeout (no connection holds the lock).
    std::fs::remove_file(&filler).unwrap();
    let started = Instant::now();
    let failures = write_rounds(&store, "after", 40, &mut acked).await;
    assert!(
        failures.is_empty(),
        "writes after space returned failed: {failures:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "writes after space returned waited on a lock ({:?})",
        started.elapsed()
    );
    store.pool().close().await;
    acked.assert_all_present(disk.dir.path()).await;
}
