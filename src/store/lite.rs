//! Direct SQLite connections for the two hottest statements of a verification: the license
//! lookup and the audit log's group commit.
//!
//! sqlx runs every SQLite connection on a worker thread of its own, so each query is a round
//! trip between threads: the request goes to the worker, the rows come back one message each,
//! and returning the connection to the pool sends one more. Under the verification load that
//! hand-off cost more CPU than SQLite itself (`perf record --call-graph dwarf` of
//! `elicense bench --verify-only`: docs/PERFORMANCE.md). Here a point lookup by primary key
//! runs where it is asked for, on a connection taken from a small free list: on cached pages it
//! takes microseconds, less than one thread switch. The audit batch, which waits for the disk
//! (synchronous=FULL), runs on tokio's blocking pool instead, one hand-off per batch.
//!
//! Everything else stays on sqlx. Both see the same file; WAL mode lets readers run beside the
//! one writer, and a read transaction sees every commit made before it began, whichever
//! connection made it.

use super::{AuditInsert, ChainTail, ImportRunRow, LicenseRow, LinkFn, NewAuditEntry};
use crate::error::{Error, Result};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Idle reader connections kept for reuse (more are opened when more are busy at once, and
/// closed when they come back to a full list).
const IDLE_READERS: usize = 8;

/// WAL size (pages) at which a commit on the writer connection checkpoints. The checkpoint runs
/// inside the commit that crosses it, while every request waiting on that audit batch waits
/// with it: SQLite's default of 1,000 pages (16 MB at our page size) made a verification's p99
/// the checkpoint's copy time. With 150, `bench --verify-only --quick --verify-seconds 10` in
/// three alternating runs each: p99 7.3-8.2 ms against 12.7-13.4 ms (memo warm), for 0.27-0.32
/// of the raw rate against 0.33-0.34; bulk issuance unchanged (docs/PERFORMANCE.md). The sqlx
/// pool's connections keep the default: they commit issuance, where batches are large anyway.
pub const WRITER_AUTOCHECKPOINT_PAGES: i64 = 150;

/// The SQLite file's direct connections.
#[derive(Debug)]
pub struct Lite {
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
    writer: Mutex<Option<Connection>>,
}

fn open(path: &std::path::Path, read_only: bool) -> rusqlite::Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let c = Connection::open_with_flags(path, flags)?;
    // The same settings as the sqlx pool's connections (store::Store::connect).
    c.busy_timeout(Duration::from_secs(10))?;
    c.pragma_update(None, "foreign_keys", true)?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.pragma_update(None, "temp_store", "memory")?;
    // Readers' caches are small: in WAL mode a connection drops its whole page cache when
    // another one has committed since its last read, which the audit writer does all the time
    // under load. The writer keeps its cache (64 MiB, as the pool's connections): the audit
    // index's insert points are spread over the whole index.
    c.pragma_update(None, "cache_size", if read_only { -16384 } else { -65536 })?;
    c.set_prepared_statement_cache_capacity(32);
    if !read_only {
        c.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)?;
    }
    Ok(c)
}

/// SQLite's "busy" and "locked" mean another connection holds the database: the same
/// unavailable answer the sqlx path gives; anything else is an internal error.
pub(crate) fn db_error(e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            Error::DatabaseUnavailableFor {
                reason: e.to_string(),
            }
        }
        _ => Error::Internal(format!("database: {e}")),
    }
}

/// True when the error is a primary-key or unique-constraint violation.
pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

impl Lite {
    /// Direct connections to the SQLite file at `path`; `None` for an in-memory database, which
    /// another connection could not see.
    pub fn new(path: &std::path::Path) -> Option<Arc<Lite>> {
        let name = path.to_string_lossy();
        if name.is_empty() || name == ":memory:" || name.starts_with("file::memory:") {
            return None;
        }
        Some(Arc::new(Lite {
            path: path.to_path_buf(),
            readers: Mutex::new(Vec::new()),
            writer: Mutex::new(None),
        }))
    }

    /// Runs `f` on the writer connection (opened on first use), blocking. A connection that
    /// `f` left inside a transaction after an error is not reused as it is.
    fn with_writer<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut slot = self
            .writer
            .lock()
            .map_err(|_| Error::internal("writer connection poisoned"))?;
        if slot.is_none() {
            *slot = Some(open(&self.path, false).map_err(db_error)?);
        }
        let conn = slot
            .as_mut()
            .ok_or_else(|| Error::internal("writer connection missing"))?;
        let r = f(conn);
        if r.is_err() && !conn.is_autocommit() {
            *slot = None;
        }
        r
    }

    /// Runs `f` on a reader connection, here and now.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let idle = self.readers.lock().ok().and_then(|mut v| v.pop());
        let conn = match idle {
            Some(c) => c,
            None => open(&self.path, true).map_err(db_error)?,
        };
        let r = f(&conn);
        if let Ok(mut v) = self.readers.lock()
            && v.len() < IDLE_READERS
        {
            v.push(conn);
        }
        r.map_err(db_error)
    }

    /// The newest version of a license, by lineage.
    pub fn license_by_lineage(&self, lineage: &str) -> Result<Option<LicenseRow>> {
        self.read(|c| {
            c.prepare_cached(super::licenses::LICENSE_BY_LINEAGE)?
                .query_row([lineage], license_row)
                .optional()
        })
    }

    /// The license of a type with a number.
    pub fn license_by_number(&self, type_code: &str, number: &str) -> Result<Option<LicenseRow>> {
        self.read(|c| {
            c.prepare_cached(super::licenses::LICENSE_BY_NUMBER)?
                .query_row([type_code, number], license_row)
                .optional()
        })
    }

    /// Appends entries at the end of the audit chain in one transaction on the writer
    /// connection; blocks while SQLite commits (synchronous=FULL: the entries are on disk when
    /// this returns). Semantics as [`super::Store::append_audit`]: `tail` is where the caller
    /// last saw the chain end (`None`: read it); when another writer took the sequence numbers,
    /// the primary key refuses the batch, and it is relinked onto the chain's new end.
    pub fn append_audit(
        &self,
        entries: &[NewAuditEntry],
        link: LinkFn,
        tail: &mut Option<ChainTail>,
    ) -> Result<Vec<i64>> {
        self.with_writer(|conn| {
            for _ in 0..20 {
                let start = match tail.take() {
                    Some(t) => t,
                    None => conn
                        .prepare_cached("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                        .and_then(|mut st| {
                            st.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional()
                        })
                        .map_err(db_error)?
                        .unwrap_or((0, vec![0u8; 32])),
                };
                let (rows, seqs, end) = super::audit::link_rows(entries, link, start);
                match insert_audit(conn, &rows) {
                    Ok(()) => {
                        *tail = Some(end);
                        return Ok(seqs);
                    }
                    // Another writer took the sequence numbers: relink onto the new end.
                    Err(e) if is_unique_violation(&e) && conn.is_autocommit() => {}
                    Err(e) => return Err(db_error(e)),
                }
            }
            Err(Error::internal(
                "audit append kept conflicting with other nodes",
            ))
        })
    }
}

impl Lite {
    /// [`super::Store::index_audit_subjects`] on the writer connection (blocks while SQLite
    /// commits); the audit log's batches wait for it, as for any write.
    pub fn index_audit_subjects(&self, limit: i64) -> Result<i64> {
        self.with_writer(|conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(db_error)?;
            let indexed = (|| -> rusqlite::Result<i64> {
                let done: i64 = tx
                    .prepare_cached(super::audit::SUBJECTS_DONE)?
                    .query_row([], |r| r.get(0))
                    .optional()?
                    .unwrap_or(0);
                let end: i64 = tx
                    .prepare_cached(super::audit::AUDIT_END)?
                    .query_row([], |r| r.get(0))?;
                let hi = end.min(done.saturating_add(limit));
                if hi <= done {
                    return Ok(0);
                }
                tx.prepare_cached(super::audit::INDEX_SUBJECTS)?
                    .execute(params![done, hi])?;
                tx.prepare_cached(super::audit::SET_SUBJECTS_DONE)?
                    .execute(params![hi])?;
                Ok(hi - done)
            })()
            .map_err(db_error)?;
            tx.commit().map_err(db_error)?;
            Ok(indexed)
        })
    }

    /// Stores newly issued licenses and, when given, the import progress that covers them, in
    /// one transaction on the writer connection (blocks while SQLite commits). A number that
    /// is already taken refuses the whole batch.
    pub fn insert_licenses(
        &self,
        rows: &[LicenseRow],
        progress: Option<&ImportRunRow>,
    ) -> Result<()> {
        self.with_writer(|conn| {
            insert_licenses(conn, rows, progress).map_err(|e| {
                if is_unique_violation(&e) {
                    Error::AlreadyExists {
                        what: "a license with one of these numbers".into(),
                    }
                } else {
                    db_error(e)
                }
            })
        })
    }
}

/// Prepared single-row INSERTs: unlike a multi-row INSERT, a one-row statement that fails on a
/// constraint has nothing of its own to undo, so SQLite keeps no statement journal for it.
fn insert_licenses(
    c: &mut Connection,
    rows: &[LicenseRow],
    progress: Option<&ImportRunRow>,
) -> rusqlite::Result<()> {
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut st = tx.prepare_cached(super::licenses::INSERT_LICENSE_ONE)?;
        for r in rows {
            st.execute(params![
                r.lineage,
                r.id,
                r.version,
                r.type_code,
                r.number,
                r.issuer,
                r.holder_name,
                r.holder_code,
                r.holder_code_type,
                r.issue_date,
                r.valid_from,
                r.valid_to,
                r.status,
                r.record,
                r.signature,
                r.source_hash,
                r.issued_by,
                r.created_at,
                r.updated_at,
                r.status_index
            ])?;
        }
    }
    if let Some(p) = progress {
        tx.prepare_cached(super::licenses::UPSERT_PROGRESS)?
            .execute(params![
                p.file_hash,
                p.file_name,
                p.lines_done,
                p.issued,
                p.skipped,
                p.failed,
                p.finished,
                p.updated_at
            ])?;
    }
    tx.commit()
}

/// Inserts linked audit rows in one transaction.
fn insert_audit(c: &mut Connection, rows: &[AuditInsert<'_>]) -> rusqlite::Result<()> {
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut st = tx.prepare_cached(
            "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for r in rows {
            st.execute(params![
                r.seq,
                r.at,
                r.actor,
                r.action,
                r.subject,
                r.details,
                r.prev_hash,
                r.hash
            ])?;
        }
    }
    tx.commit()
}

/// A license row in [`super::licenses::LICENSE_COLUMNS`] order.
fn license_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LicenseRow> {
    Ok(LicenseRow {
        lineage: r.get(0)?,
        id: r.get(1)?,
        version: r.get(2)?,
        type_code: r.get(3)?,
        number: r.get(4)?,
        issuer: r.get(5)?,
        holder_name: r.get(6)?,
        holder_code: r.get(7)?,
        holder_code_type: r.get(8)?,
        issue_date: r.get(9)?,
        valid_from: r.get(10)?,
        valid_to: r.get(11)?,
        status: r.get(12)?,
        record: r.get(13)?,
        signature: r.get(14)?,
        source_hash: r.get(15)?,
        issued_by: r.get(16)?,
        created_at: r.get(17)?,
        updated_at: r.get(18)?,
        status_index: r.get(19)?,
    })
}
