//! Direct SQLite connections for the hottest statements: the license lookup, the audit log's
//! group commit, the audit subject index and the bulk license insert.
//!
//! sqlx runs every SQLite connection on a worker thread of its own, so each query is a round
//! trip between threads: the request goes to the worker, the rows come back one message each,
//! and returning the connection to the pool sends one more. Under the verification load that
//! hand-off cost more CPU than SQLite itself (`perf record --call-graph dwarf` of
//! `elicense bench --verify-only`: docs/PERFORMANCE.md). Here a point lookup by primary key
//! runs where it is asked for, on a connection taken from a small free list: on cached pages it
//! takes microseconds, less than one thread switch. The writes, which wait for the disk
//! (synchronous=FULL), run on tokio's blocking pool instead, one hand-off per batch.
//!
//! Each write has a connection of its own, so none waits behind another in this process:
//! the audit log's commits go to the audit file (`audit_file_path`), which nothing else here
//! writes; the subject indexer writes the main file, reading the log through the attached
//! audit file; bulk imports write the main file. SQLite still runs one writer at a time per
//! file, so the indexer and an import take turns on the main file, while the log's commits,
//! which every verification waits for, never wait for either.
//!
//! Everything else stays on sqlx. Both see the same files; WAL mode lets readers run beside the
//! one writer, and a read transaction sees every commit made before it began, whichever
//! connection made it. In WAL mode a connection drops its whole page cache when its file has
//! changed since its last read: with the log in the main file, every audit commit made every
//! license reader read its pages again.

use super::{AuditInsert, ChainTail, ImportRunRow, LicenseRow, LinkFn, NewAuditEntry};
use crate::error::{Error, Result};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Idle reader connections kept for reuse (more are opened when more are busy at once, and
/// closed when they come back to a full list).
const IDLE_READERS: usize = 8;

/// WAL size (pages) at which a commit on the audit writer's connection checkpoints. The
/// checkpoint runs inside the commit that crosses it, while every request waiting on that
/// audit batch waits with it: SQLite's default of 1,000 pages made a verification's p99 the
/// checkpoint's copy time. With 150 (then 16 KiB pages, in the main file), `bench --verify-only
/// --quick --verify-seconds 10` in three alternating runs each: p99 7.3-8.2 ms against
/// 12.7-13.4 ms (memo warm), for 0.27-0.32 of the raw rate against 0.33-0.34
/// (docs/PERFORMANCE.md). The other connections keep the default: they commit imports and the
/// subject index, where batches are large anyway.
pub const WRITER_AUTOCHECKPOINT_PAGES: i64 = 150;

/// What a direct connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// License lookups: the main file, read-only.
    Reader,
    /// Bulk license inserts: the main file.
    Writer,
    /// The audit log's group commit: the audit file, opened as the connection's main schema.
    AuditWriter,
    /// The subject index: the main file, with the audit file attached as `audit` to read the
    /// log from.
    Indexer,
}

/// The SQLite files' direct connections.
#[derive(Debug)]
pub struct Lite {
    path: PathBuf,
    audit_path: PathBuf,
    readers: Mutex<Vec<Connection>>,
    writer: Mutex<Option<Connection>>,
    audit_writer: Mutex<Option<Connection>>,
    indexer: Mutex<Option<Connection>>,
}

fn open(lite: &Lite, role: Role) -> rusqlite::Result<Connection> {
    let (file, read_only) = match role {
        Role::Reader => (&lite.path, true),
        Role::Writer | Role::Indexer => (&lite.path, false),
        Role::AuditWriter => (&lite.audit_path, false),
    };
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let c = Connection::open_with_flags(file, flags)?;
    // The same settings as the sqlx pool's connections (store::Store::connect).
    c.busy_timeout(Duration::from_secs(10))?;
    c.pragma_update(None, "foreign_keys", true)?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.pragma_update(None, "temp_store", "memory")?;
    // Readers keep 16 MiB of license pages each; the writers of the main file 64 MiB, as the
    // pool's connections (an import's and the index's insert points are spread over whole
    // indexes); the audit writer only ever appends.
    let cache_kib = match role {
        Role::Reader | Role::AuditWriter => 16384,
        Role::Writer | Role::Indexer => 65536,
    };
    c.pragma_update(None, "cache_size", -cache_kib)?;
    c.set_prepared_statement_cache_capacity(32);
    match role {
        Role::AuditWriter => {
            c.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)?;
        }
        Role::Indexer => {
            // Read-only: `BEGIN IMMEDIATE` takes the write lock of every attached file that
            // can be written, so with the audit file attached read-write each index run held
            // the log's write lock and the log's commits (every verification's) waited for it.
            c.execute(
                "ATTACH DATABASE ?1 AS audit",
                [read_only_uri(&lite.audit_path)],
            )?;
        }
        Role::Reader | Role::Writer => {}
    }
    Ok(c)
}

/// A `file:` URI that opens `path` read-only (SQLite is built with URI file names on;
/// `%`, `?` and `#` in the path are escaped).
fn read_only_uri(path: &Path) -> String {
    let path = path.to_string_lossy();
    let mut uri = String::from(if path.starts_with('/') {
        "file://"
    } else {
        "file:"
    });
    for ch in path.chars() {
        match ch {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?mode=ro");
    uri
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
    /// Direct connections to the SQLite file at `path` and its audit file at `audit_path`
    /// (both exist and are migrated: store::Store::connect).
    pub fn new(path: &Path, audit_path: &Path) -> Lite {
        Lite {
            path: path.to_path_buf(),
            audit_path: audit_path.to_path_buf(),
            readers: Mutex::new(Vec::new()),
            writer: Mutex::new(None),
            audit_writer: Mutex::new(None),
            indexer: Mutex::new(None),
        }
    }

    /// Runs `f` on the connection of a writing `role` (opened on first use), blocking. A
    /// connection that `f` left inside a transaction after an error is not reused as it is.
    fn with<T>(&self, role: Role, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let slot = match role {
            Role::Writer => &self.writer,
            Role::AuditWriter => &self.audit_writer,
            Role::Indexer => &self.indexer,
            Role::Reader => return Err(Error::internal("readers come from the free list")),
        };
        let mut slot = slot
            .lock()
            .map_err(|_| Error::internal("writer connection poisoned"))?;
        if slot.is_none() {
            *slot = Some(open(self, role).map_err(db_error)?);
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
            None => open(self, Role::Reader).map_err(db_error)?,
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

    /// Appends entries at the end of the audit chain in one transaction on the audit file's
    /// writer connection; blocks while SQLite commits (synchronous=FULL: the entries are on disk when
    /// this returns). Semantics as [`super::Store::append_audit`]: `tail` is where the caller
    /// last saw the chain end (`None`: read it); when another writer took the sequence numbers,
    /// the primary key refuses the batch, and it is relinked onto the chain's new end.
    pub fn append_audit(
        &self,
        entries: &[NewAuditEntry],
        link: LinkFn,
        tail: &mut Option<ChainTail>,
    ) -> Result<Vec<i64>> {
        self.with(Role::AuditWriter, |conn| {
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
    /// [`super::Store::index_audit_subjects`] on the indexer's connection (blocks while SQLite
    /// commits; an import's batch may hold the main file meanwhile; the audit file is attached
    /// read-only, so the audit log's commits never wait for it).
    pub fn index_audit_subjects(&self, limit: i64) -> Result<i64> {
        self.with(Role::Indexer, |conn| {
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
    /// one transaction on the main file's writer connection (blocks while SQLite commits). A
    /// number that is already taken refuses the whole batch.
    pub fn insert_licenses(
        &self,
        rows: &[LicenseRow],
        progress: Option<&ImportRunRow>,
    ) -> Result<()> {
        self.with(Role::Writer, |conn| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_uris_escape_what_a_uri_would_read() {
        assert_eq!(
            read_only_uri(Path::new("/data/a?b#c%d-audit.db")),
            "file:///data/a%3fb%23c%25d-audit.db?mode=ro"
        );
        assert_eq!(read_only_uri(Path::new("x/y.db")), "file:x/y.db?mode=ro");
    }

    /// The subject indexer writes the main file only: while it is inside its transaction the
    /// audit log can still commit, at once, and the indexer cannot write the log.
    #[tokio::test]
    async fn the_indexer_never_holds_the_audit_files_write_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = crate::store::Store::connect(&url).await.expect("store");
        let crate::store::Store::Sqlite(_, lite) = &store else {
            panic!("a SQLite store")
        };
        lite.with(Role::Indexer, |ix| {
            let tx = ix
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(db_error)?;
            let n: i64 = tx
                .query_row("SELECT COUNT(*) FROM audit.audit_log", [], |r| r.get(0))
                .map_err(db_error)?;
            assert_eq!(n, 0);
            assert!(
                tx.execute("DELETE FROM audit.audit_log", []).is_err(),
                "the indexer could write the audit file"
            );
            lite.with(Role::AuditWriter, |w| {
                w.busy_timeout(Duration::ZERO).map_err(db_error)?;
                let r = w
                    .execute_batch("BEGIN IMMEDIATE; COMMIT;")
                    .map_err(db_error);
                w.busy_timeout(Duration::from_secs(10)).map_err(db_error)?;
                r
            })
            .expect("the audit file's write lock is free while the indexer runs");
            tx.commit().map_err(db_error)
        })
        .expect("indexer transaction");
    }
}
