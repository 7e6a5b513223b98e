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

/// A connection pool to one of the two supported databases.
#[derive(Clone, Debug)]
pub enum Store {
    /// The pool, and direct connections to the same file for the hottest statements (`None`
    /// for an in-memory database).
    Sqlite(SqlitePool, Option<std::sync::Arc<lite::Lite>>),
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
            // One connection per core, one for the writer and one for a long read: SQLite runs
            // one writer at a time, and each pooled connection is a thread of its own; more
            // than the cores can run only add thread switches (8 connections on 2 cores cost
            // about 15% more CPU per verification than 4 in `elicense bench --verify-only`, with
            // builds differing only in this number: docs/PERFORMANCE.md).
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            let lite = lite::Lite::new(opts.get_filename());
            let pool = SqlitePoolOptions::new()
                .max_connections(u32::try_from(cores + 2).unwrap_or(u32::MAX))
                // A connection to a local file has nothing to lose on the way: no ping (one more
                // round trip to the connection's worker thread) before every query.
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await?;
            SQLITE_MIGRATIONS
                .run(&pool)
                .await
                .map_err(|e| Error::internal(format!("migrations: {e}")))?;
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

    /// Bytes the database takes on disk (SQLite: pages in use; PostgreSQL: the database).
    pub async fn database_bytes(&self) -> Result<u64> {
        let n: i64 =
            match self {
                Store::Sqlite(pool, _) => sqlx::query_scalar(
                    "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
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
