//! Storage: one [`Store`] over SQLite (embedded default) or PostgreSQL (several nodes).
//!
//! The SQL is written once, with `$N` placeholders that both backends accept, and run against
//! whichever pool the store holds ([`with_pool!`] expands the same body for each backend). Schema
//! differences live in `migrations/sqlite` and `migrations/postgres`.

mod audit;
mod clients;
mod grants;
mod licenses;
pub mod lite;
mod pki;
mod regions;
mod seals;
mod types;

pub use audit::*;
pub use clients::*;
pub use grants::*;
pub use licenses::*;
pub use pki::*;
pub use regions::*;
pub use seals::*;
pub use types::*;

use crate::error::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
/// The SQLite audit log's own file (its migrations are recorded in that file).
static SQLITE_AUDIT_MIGRATIONS: sqlx::migrate::Migrator =
    sqlx::migrate!("./migrations/sqlite-audit");

/// The file that holds a SQLite database's audit log: `NAME-audit.EXT` beside `NAME.EXT`
/// (`elicense.db` → `elicense-audit.db`).
pub fn audit_file_path(main: &std::path::Path) -> std::path::PathBuf {
    let stem = main
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match main.extension() {
        Some(ext) => format!("{stem}-audit.{}", ext.to_string_lossy()),
        None => format!("{stem}-audit"),
    };
    main.with_file_name(name)
}

/// Creates the audit file if needed (4 KiB pages: an entry is a few hundred bytes, and each
/// commit writes the pages it touched to the WAL) and applies its migrations.
async fn prepare_audit_file(path: &std::path::Path) -> Result<()> {
    use sqlx::Connection;
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .page_size(4096);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts).await?;
    SQLITE_AUDIT_MIGRATIONS
        .run(&mut conn)
        .await
        .map_err(|e| Error::internal(format!("audit file migrations: {e}")))?;
    conn.close().await?;
    Ok(())
}

/// A database written before the audit log had a file of its own has the log in its main file
/// (migrations 0003 and 0011); this copies it into the audit file, in a transaction that writes
/// the audit file only, so a crash leaves either the whole copy or none. Idempotent: rows
/// already copied are skipped. Migration 0012 then drops the old tables, after checking that
/// every row arrived.
async fn copy_legacy_audit(pool: &SqlitePool) -> Result<()> {
    let legacy: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM main.sqlite_master WHERE type = 'table' AND name = 'audit_log'",
    )
    .fetch_one(pool)
    .await?;
    if legacy == 0 {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT OR IGNORE INTO audit.audit_log (seq, at, actor, action, subject, details, prev_hash, hash) \
         SELECT seq, at, actor, action, subject, details, prev_hash, hash FROM main.audit_log",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT OR IGNORE INTO audit.audit_checkpoints (seq, hash, at, signature, cert_serial) \
         SELECT seq, hash, at, signature, cert_serial FROM main.audit_checkpoints",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Refuses to go on with an audit file other than the one this database was written with
/// (migration 0012 records it, in the transaction that moves the log there): one restored from
/// a different backup, or a new empty one because the file was lost (which would start the
/// chain afresh and hide every earlier entry).
async fn bind_audit_file(pool: &SqlitePool, path: &std::path::Path, existed: bool) -> Result<()> {
    let theirs: String = sqlx::query_scalar("SELECT file_id FROM audit.audit_meta")
        .fetch_one(pool)
        .await?;
    let ours: Option<String> = sqlx::query_scalar("SELECT file_id FROM main.audit_file")
        .fetch_optional(pool)
        .await?;
    match ours {
        Some(ours) if ours == theirs => Ok(()),
        ours => {
            let reason = match (ours, existed) {
                (None, _) => "this database has no record of the audit file it was written \
                              with (migration 0012 wrote one; it was removed): restore the \
                              database and its audit file from one backup"
                    .to_string(),
                (Some(ours), true) => format!(
                    "it is audit file {theirs}, but this database was written with audit file \
                     {ours}; restore the audit file taken with the database"
                ),
                (Some(ours), false) => format!(
                    "it is missing; this database was written with audit file {ours}: restore \
                     it from the backup taken with the database"
                ),
            };
            pool.close().await;
            if !existed {
                // The empty file this start created is not the log: leave no decoy behind.
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(with_suffix(path, suffix));
                }
            }
            Err(Error::AuditFile {
                path: path.display().to_string(),
                reason,
            })
        }
    }
}

/// `path` with `suffix` appended to its file name (SQLite's `-wal` and `-shm` beside a file).
fn with_suffix(path: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    p.into()
}

/// True for SQLite's in-memory databases, which another connection could not see: `:memory:`
/// (sqlx names it `file:sqlx-in-memory-N`), `file::memory:`, and any file opened with
/// `?mode=memory` (which keeps the file's name).
fn is_in_memory(url: &str, file: &std::path::Path) -> bool {
    let name = file.to_string_lossy();
    name.is_empty()
        || name == ":memory:"
        || name.starts_with("file::memory:")
        || name.starts_with("file:sqlx-in-memory-")
        || url
            .split_once('?')
            .is_some_and(|(_, q)| q.split('&').any(|kv| kv == "mode=memory"))
}

/// How long a start waits for another process that is setting up the same SQLite files.
const SETUP_LOCK_WAIT: Duration = Duration::from_secs(300);

/// An exclusive advisory lock (`flock`) on the SQLite database's directory for the set-up of
/// a start: creating and migrating the two files and binding them. sqlx's SQLite migrator
/// takes no lock of its own, so two processes starting at once on a new database both ran the
/// first migrations and one failed ("table already exists"). The directory, not the database
/// file: closing any descriptor of the database file would drop every POSIX lock this
/// process's SQLite connections hold on it (a known way to corrupt SQLite), while a lock on
/// the directory is apart from them. Starts on other databases of the same directory wait
/// for each other's set-up too, which is brief.
async fn setup_lock(main: &std::path::Path) -> Result<std::fs::File> {
    let dir = match main.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let file = std::fs::File::open(dir)
        .map_err(|e| Error::bad_request(format!("cannot open {}: {e}", dir.display())))?;
    let start = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < SETUP_LOCK_WAIT => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::DatabaseUnavailableFor {
                    reason: format!(
                        "another process has been setting up a database in {} for {} s",
                        dir.display(),
                        SETUP_LOCK_WAIT.as_secs()
                    ),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::internal(format!(
                    "cannot lock {}: {e}",
                    dir.display()
                )));
            }
        }
    }
}

/// A connection pool to one of the two supported databases.
#[derive(Clone, Debug)]
pub enum Store {
    /// The pool (the main file, with the audit log's file attached as `audit`), and direct
    /// connections to the same files for the hottest statements.
    Sqlite(SqlitePool, std::sync::Arc<lite::Lite>),
    Postgres(PgPool),
}

/// Runs the same body against whichever pool `$store` holds, binding it to `$pool`.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite($pool, _) => $body,
            $crate::store::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

impl Store {
    /// Connects to `url` (`sqlite://PATH` or `postgres://...`) and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Store> {
        let store = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)
                .map_err(|e| Error::bad_request(format!("database URL: {e}")))?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(opts)
                .await?;
            POSTGRES_MIGRATIONS
                .run(&pool)
                .await
                .map_err(|e| Error::internal(format!("migrations: {e}")))?;
            Store::Postgres(pool)
        } else if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|e| Error::bad_request(format!("database URL: {e}")))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a commit that returned is on disk even after a power cut.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                .page_size(16384)
                .pragma("temp_store", "memory")
                .pragma("cache_size", "-65536");
            let main_path = opts.get_filename().to_path_buf();
            if is_in_memory(url, &main_path) {
                return Err(Error::bad_request(
                    "SQLite needs a file (its audit log is a second file beside it), not an \
                     in-memory database",
                ));
            }
            // Held until both files are migrated and bound (dropped at the end of this block).
            let _setup = setup_lock(&main_path).await?;
            let audit_path = audit_file_path(&main_path);
            let audit_existed = audit_path.exists();
            let audit_wal = with_suffix(&audit_path, "-wal");
            if !audit_existed && audit_wal.exists() {
                // SQLite would replay that log into a new, empty file, and a refused start
                // would then remove it: perhaps the last copy of the newest entries.
                return Err(Error::AuditFile {
                    path: audit_path.display().to_string(),
                    reason: format!(
                        "it is missing, but its write-ahead log {} is there: restore the audit \
                         file from the backup taken with the database and keep the log beside it",
                        audit_wal.display()
                    ),
                });
            }
            prepare_audit_file(&audit_path).await?;
            // One connection per core, one for the writer and one for a long read: SQLite runs
            // one writer at a time, and each pooled connection is a thread of its own; more
            // than the cores can run only add thread switches (8 connections on 2 cores cost
            // about 15% more CPU per verification than 4 in `elicense bench --verify-only`, with
            // builds differing only in this number: docs/PERFORMANCE.md).
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            let attach = audit_path.to_string_lossy().into_owned();
            let pool = SqlitePoolOptions::new()
                .max_connections(u32::try_from(cores + 2).unwrap_or(u32::MAX))
                // A connection to a local file has nothing to lose on the way: no ping (one more
                // round trip to the connection's worker thread) before every query.
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(10))
                // Every pooled connection sees the audit log's file as the schema `audit`; its
                // tables are found by their plain names, so the SQL is the PostgreSQL SQL.
                .after_connect(move |conn, _| {
                    let attach = attach.clone();
                    Box::pin(async move {
                        sqlx::query("ATTACH DATABASE $1 AS audit")
                            .bind(attach)
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA audit.synchronous = FULL")
                            .execute(&mut *conn)
                            .await?;
                        Ok(())
                    })
                })
                .connect_with(opts)
                .await?;
            copy_legacy_audit(&pool).await?;
            SQLITE_MIGRATIONS
                .run(&pool)
                .await
                .map_err(|e| Error::internal(format!("migrations: {e}")))?;
            bind_audit_file(&pool, &audit_path, audit_existed).await?;
            let lite = std::sync::Arc::new(lite::Lite::new(&main_path, &audit_path));
            Store::Sqlite(pool, lite)
        } else {
            return Err(Error::bad_request(
                "database URL must start with sqlite: or postgres://",
            ));
        };
        Ok(store)
    }

    /// Which backend this is, for logs and benchmarks.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(..) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Bytes the database takes on disk (SQLite: pages in use, both files; PostgreSQL: the
    /// database).
    pub async fn database_bytes(&self) -> Result<u64> {
        let n: i64 =
            match self {
                Store::Sqlite(pool, _) => sqlx::query_scalar(
                    "SELECT (SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()) \
                     + (SELECT page_count * page_size FROM pragma_page_count('audit'), pragma_page_size('audit'))",
                )
                .fetch_one(pool)
                .await?,
                Store::Postgres(pool) => {
                    sqlx::query_scalar("SELECT pg_database_size(current_database())")
                        .fetch_one(pool)
                        .await?
                }
            };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }
}

/// The statement that opens a transaction which reads and then writes. On SQLite a deferred
/// transaction that reads first fails with SQLITE_BUSY_SNAPSHOT when another connection commits
/// before it writes; `BEGIN IMMEDIATE` takes the write lock up front (waiting on busy_timeout).
pub(crate) fn write_begin<DB: sqlx::Database>(_: &sqlx::Pool<DB>) -> &'static str {
    if DB::NAME == "SQLite" {
        "BEGIN IMMEDIATE"
    } else {
        "BEGIN"
    }
}

/// True when a database error is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}
