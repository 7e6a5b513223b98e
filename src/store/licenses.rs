//! Licenses, their versions and events, serial counters and import progress.

use super::{Store, is_unique_violation, with_pool};
use crate::error::{Error, Result};

/// Appends an event with the next sequence number of its lineage, inside a transaction.
macro_rules! insert_event {
    ($tx:expr, $lineage:expr, $at:expr, $action:expr, $from:expr, $to:expr, $version:expr, $reason:expr, $actor:expr) => {{
        let seq: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM license_events WHERE lineage = $1",
        )
        .bind($lineage)
        .fetch_one(&mut *$tx)
        .await?;
        sqlx::query(
            "INSERT INTO license_events (lineage, seq, at, action, from_status, to_status, version, reason, actor) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind($lineage)
        .bind(seq)
        .bind($at)
        .bind($action)
        .bind($from)
        .bind($to)
        .bind($version)
        .bind($reason)
        .bind($actor)
        .execute(&mut *$tx)
        .await?;
    }};
}

/// Records import progress inside a transaction (when there is progress to record).
/// Records an import's progress (one row per file).
pub(super) const UPSERT_PROGRESS: &str = "INSERT INTO import_runs (file_hash, file_name, lines_done, issued, skipped, failed, finished, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (file_hash) DO UPDATE SET lines_done = excluded.lines_done, issued = excluded.issued, \
     skipped = excluded.skipped, failed = excluded.failed, finished = excluded.finished, updated_at = excluded.updated_at";

/// One license row, in [`LICENSE_COLUMNS`] order (the direct SQLite path inserts row by row
/// with it, prepared once).
pub(super) const INSERT_LICENSE_ONE: &str = "INSERT INTO licenses (lineage, id, version, type_code, number, issuer, holder_name, holder_code, \
     holder_code_type, issue_date, valid_from, valid_to, status, record, signature, source_hash, issued_by, \
     created_at, updated_at, status_index) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)";

macro_rules! upsert_progress {
    ($tx:expr, $progress:expr) => {{
        if let Some(p) = $progress {
            sqlx::query(UPSERT_PROGRESS)
                .bind(&p.file_hash)
                .bind(&p.file_name)
                .bind(p.lines_done)
                .bind(p.issued)
                .bind(p.skipped)
                .bind(p.failed)
                .bind(p.finished)
                .bind(p.updated_at)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}

/// Inserts licenses with multi-row statements, inside a transaction.
macro_rules! insert_rows {
    ($tx:expr, $rows:expr) => {{
        for chunk in $rows.chunks(INSERT_CHUNK) {
            let mut qb = sqlx::QueryBuilder::new(
                "INSERT INTO licenses (lineage, id, version, type_code, number, issuer, holder_name, holder_code, \
                 holder_code_type, issue_date, valid_from, valid_to, status, record, signature, source_hash, issued_by, \
                 created_at, updated_at, status_index) ",
            );
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(&r.lineage).push_bind(&r.id).push_bind(r.version).push_bind(&r.type_code)
                    .push_bind(&r.number).push_bind(&r.issuer).push_bind(&r.holder_name)
                    .push_bind(&r.holder_code).push_bind(&r.holder_code_type).push_bind(&r.issue_date)
                    .push_bind(&r.valid_from).push_bind(&r.valid_to).push_bind(&r.status)
                    .push_bind(&r.record).push_bind(&r.signature).push_bind(&r.source_hash)
                    .push_bind(&r.issued_by).push_bind(r.created_at).push_bind(r.updated_at)
                    .push_bind(r.status_index);
            });
            qb.build().execute(&mut *$tx).await?;
        }
    }};
}

/// Fewer rows than this added at once leave the planner's statistics to autovacuum: below it a
/// walk of the whole table costs milliseconds.
const ANALYZE_MIN_ROWS: u64 = 10_000;

/// The columns that queries of `licenses` filter or order by: the ones whose statistics the
/// planner reads. The signed record, its signature and the other wide columns are left to
/// autovacuum's full ANALYZE, which at the same sample size took about twice as long after a
/// fresh import (docs/PERFORMANCE.md).
const ANALYZE_LICENSES: &str = "ANALYZE licenses (lineage, type_code, number, issuer, holder_code, \
     status, valid_to, status_index)";

/// The statistics target of that ANALYZE (PostgreSQL's default is 100). It samples 300 rows
/// per unit, so 3,000 rows instead of 30,000. That is enough for what the planner needs right
/// after an import (the table's size, that lineage, number and holder code are all but unique,
/// the few types and statuses) and takes a tenth of the time. It holds only until autovacuum's
/// own full ANALYZE, which still comes: an ANALYZE of some columns leaves the table's count of
/// changes since its last analysis as it was (the kill -9 import test checks it). A target an
/// operator set on a column (`ALTER TABLE licenses ALTER COLUMN ... SET STATISTICS`) overrides
/// this one.
const SET_ANALYZE_TARGET: &str = "SET LOCAL default_statistics_target = 10";

/// The COPY statement for `licenses`, in the column order of [`copy_fields`].
const COPY_LICENSES: &str = "COPY licenses (lineage, id, version, type_code, number, issuer, holder_name, holder_code, \
     holder_code_type, issue_date, valid_from, valid_to, status, record, signature, source_hash, issued_by, created_at, \
     updated_at, status_index) FROM STDIN WITH (FORMAT binary)";

/// How much of a `COPY licenses` body is built before it is sent: the body is streamed in
/// pieces of about this size rather than built whole (28 MB for a batch of 20,000, a fresh
/// allocation whose pages were faulted in again for every batch).
const COPY_CHUNK: usize = 1 << 20;

/// The start of a `COPY` body in PostgreSQL's binary format: signature, flags, header
/// extension length.
fn copy_header(out: &mut Vec<u8>) {
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
}

/// The end of a binary `COPY` body.
fn copy_trailer(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i16).to_be_bytes());
}

/// The fields of a row, as they go into a binary `COPY`: bytes (text as UTF-8) or NULL.
fn copy_fields(r: &LicenseRow) -> [CopyField<'_>; 20] {
    use CopyField::{Bytes, Int8};
    fn text(s: &str) -> CopyField<'_> {
        Bytes(Some(s.as_bytes()))
    }
    [
        text(&r.lineage),
        text(&r.id),
        Int8(r.version),
        text(&r.type_code),
        text(&r.number),
        text(&r.issuer),
        text(&r.holder_name),
        text(&r.holder_code),
        text(&r.holder_code_type),
        text(&r.issue_date),
        text(&r.valid_from),
        Bytes(r.valid_to.as_deref().map(str::as_bytes)),
        text(&r.status),
        text(&r.record),
        Bytes(Some(&r.signature)),
        Bytes(r.source_hash.as_deref()),
        text(&r.issued_by),
        Int8(r.created_at),
        Int8(r.updated_at),
        Int8(r.status_index),
    ]
}

/// One column's value in a binary `COPY` (bigint as 8 bytes big-endian).
enum CopyField<'a> {
    Bytes(Option<&'a [u8]>),
    Int8(i64),
}

/// Appends one row of `licenses` in PostgreSQL's binary `COPY` format ([`COPY_LICENSES`]
/// column order). The server then parses no CSV (a fifth of its CPU per license in `perf` of
/// `bench --issuance-only`, docs/PERFORMANCE.md) and decodes no hex. Fields longer than the
/// format's 2 GiB are refused.
fn copy_row(out: &mut Vec<u8>, r: &LicenseRow) -> Result<()> {
    let fields = copy_fields(r);
    out.extend_from_slice(&(fields.len() as i16).to_be_bytes());
    for f in fields {
        match f {
            CopyField::Bytes(Some(b)) => {
                let len = i32::try_from(b.len())
                    .map_err(|_| Error::internal("a license field longer than COPY allows"))?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(b);
            }
            CopyField::Bytes(None) => out.extend_from_slice(&(-1i32).to_be_bytes()),
            CopyField::Int8(v) => {
                out.extend_from_slice(&8i32.to_be_bytes());
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
    }
    Ok(())
}

/// A unique violation on insert means the license number was taken meanwhile.
fn insert_error(e: sqlx::Error) -> Error {
    if is_unique_violation(&e) {
        Error::AlreadyExists {
            what: "a license with one of these numbers".into(),
        }
    } else {
        e.into()
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LicenseRow {
    pub lineage: String,
    pub id: String,
    pub version: i64,
    pub type_code: String,
    pub number: String,
    pub issuer: String,
    pub holder_name: String,
    pub holder_code: String,
    pub holder_code_type: String,
    pub issue_date: String,
    pub valid_from: String,
    pub valid_to: Option<String>,
    pub status: String,
    pub record: String,
    pub signature: Vec<u8>,
    pub source_hash: Option<Vec<u8>>,
    pub issued_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Place in the region's status list.
    pub status_index: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VersionRow {
    pub id: String,
    pub lineage: String,
    pub version: i64,
    pub record: String,
    pub signature: Vec<u8>,
    pub reason: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub lineage: String,
    pub seq: i64,
    pub at: i64,
    pub action: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub version: i64,
    pub reason: Option<String>,
    pub actor: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ImportRunRow {
    pub file_hash: String,
    pub file_name: String,
    pub lines_done: i64,
    pub issued: i64,
    pub skipped: i64,
    pub failed: i64,
    pub finished: i64,
    pub updated_at: i64,
}

/// A license that already holds a number of a type.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExistingNumber {
    pub number: String,
    pub id: String,
    pub source_hash: Option<Vec<u8>>,
}

/// Filters of a license listing. `status` is a status code; `05` (expired) is derived from the
/// validity end date compared with `today`.
#[derive(Debug, Clone, Default)]
pub struct LicenseFilter {
    pub type_code: Option<String>,
    pub holder_code: Option<String>,
    pub issuer: Option<String>,
    pub status: Option<String>,
    pub after: Option<String>,
    pub limit: i64,
}

/// The license columns, in [`LicenseRow`] order, as one literal so the lookups below are
/// constants too (no SQL text built per query).
macro_rules! license_select {
    () => {
        "SELECT lineage, id, version, type_code, number, issuer, holder_name, holder_code, \
         holder_code_type, issue_date, valid_from, valid_to, status, record, signature, source_hash, issued_by, created_at, updated_at, \
         status_index FROM licenses"
    };
}

pub(super) const LICENSE_COLUMNS: &str = license_select!();
/// The license with lineage `$1`.
pub(super) const LICENSE_BY_LINEAGE: &str = concat!(license_select!(), " WHERE lineage = $1");
/// The license of type `$1` with number `$2`.
pub(super) const LICENSE_BY_NUMBER: &str =
    concat!(license_select!(), " WHERE type_code = $1 AND number = $2");

/// Reserves `$1` status-list indexes; returns the next free one after them.
const STATUS_INDEX_RESERVE: &str = "INSERT INTO serial_counters (type_code, issuer, year, next) VALUES ('*status-list*', '', 0, $1) \
     ON CONFLICT (type_code, issuer, year) DO UPDATE SET next = serial_counters.next + $1 RETURNING next";

/// Rows per multi-row INSERT: keeps under SQLite's 32,766 bound parameters.
const INSERT_CHUNK: usize = 500;

impl Store {
    /// Reserves `n` consecutive serial numbers; returns the first. Gaps (from failed issuance)
    /// are harmless: serials only need to be unique.
    pub async fn reserve_serials(
        &self,
        type_code: &str,
        issuer: &str,
        year: i32,
        n: i64,
    ) -> Result<i64> {
        with_pool!(self, pool => {
            let next: i64 = sqlx::query_scalar(
                "INSERT INTO serial_counters (type_code, issuer, year, next) VALUES ($1, $2, $3, $4 + 1) \
                 ON CONFLICT (type_code, issuer, year) DO UPDATE SET next = serial_counters.next + $4 \
                 RETURNING next",
            )
            .bind(type_code)
            .bind(issuer)
            .bind(i64::from(year))
            .bind(n)
            .fetch_one(pool)
            .await?;
            Ok(next - n)
        })
    }

    /// Reserves `n` consecutive status-list indexes; returns the first.
    pub async fn reserve_status_indexes(&self, n: i64) -> Result<i64> {
        with_pool!(self, pool => {
            let next: i64 = sqlx::query_scalar(STATUS_INDEX_RESERVE)
                .bind(n)
                .fetch_one(pool)
                .await?;
            Ok(next - n)
        })
    }

    /// Every license's status-list index with its status and validity end, in index order.
    pub async fn status_entries(&self) -> Result<Vec<(i64, String, Option<String>)>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, (i64, String, Option<String>)>(
                "SELECT status_index, status, valid_to FROM licenses WHERE status_index >= 0 ORDER BY status_index",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// Which of `numbers` of a type are already issued.
    pub async fn existing_numbers(
        &self,
        type_code: &str,
        numbers: &[String],
    ) -> Result<Vec<ExistingNumber>> {
        let mut out = Vec::new();
        match self {
            // An array parameter, each number looked up through the unique index. (A long IN
            // list of parameters is matched linearly per row; a plain join with the array, or
            // `= ANY`, is planned as a hash join over a sequential scan of the whole table for
            // a batch of thousands: 160 ms against 36 ms for 20,000 numbers on 280,000 rows
            // here, and growing with the table. LIMIT keeps the subquery from being flattened
            // into such a join.)
            Store::Postgres(pool) => {
                out = sqlx::query_as::<_, ExistingNumber>(
                    "SELECT l.number, l.id, l.source_hash FROM unnest($2::text[]) AS n(number) \
                     CROSS JOIN LATERAL (SELECT number, id, source_hash FROM licenses \
                     WHERE type_code = $1 AND number = n.number LIMIT 1) l",
                )
                .bind(type_code)
                .bind(numbers)
                .fetch_all(pool)
                .await?;
            }
            Store::Sqlite(pool, _) => {
                for chunk in numbers.chunks(INSERT_CHUNK) {
                    let mut qb = sqlx::QueryBuilder::new(
                        "SELECT number, id, source_hash FROM licenses WHERE type_code = ",
                    );
                    qb.push_bind(type_code).push(" AND number IN (");
                    let mut sep = qb.separated(", ");
                    for n in chunk {
                        sep.push_bind(n);
                    }
                    qb.push(")");
                    out.extend(
                        qb.build_query_as::<ExistingNumber>()
                            .fetch_all(pool)
                            .await?,
                    );
                }
            }
        }
        Ok(out)
    }

    /// Stores newly issued licenses and, when given, the import progress that covers them — all
    /// in one transaction (SQLite inserts them on the blocking pool).
    pub async fn insert_licenses(
        &self,
        rows: std::sync::Arc<Vec<LicenseRow>>,
        progress: Option<ImportRunRow>,
    ) -> Result<()> {
        let progress = progress.as_ref();
        let r: std::result::Result<(), sqlx::Error> = match self {
            // COPY costs the server several times less than multi-row INSERTs.
            Store::Postgres(pool) => {
                async {
                    let mut tx = pool.begin().await?;
                    let mut copy = tx.copy_in_raw(COPY_LICENSES).await?;
                    let mut buf = Vec::with_capacity(COPY_CHUNK + 4096);
                    copy_header(&mut buf);
                    let mut failed = None;
                    for r in rows.iter() {
                        if let Err(e) = copy_row(&mut buf, r) {
                            failed = Some(sqlx::Error::Protocol(e.to_string()));
                            break;
                        }
                        if buf.len() >= COPY_CHUNK {
                            if let Err(e) = copy.send(buf.as_slice()).await {
                                failed = Some(e);
                                break;
                            }
                            buf.clear();
                        }
                    }
                    if let Some(e) = failed {
                        // Ended explicitly, and its answer read, so the connection is in step
                        // with the server for the rollback (a dropped COPY only queues its end).
                        let _ = copy.abort(e.to_string()).await;
                        return Err(e);
                    }
                    copy_trailer(&mut buf);
                    copy.send(buf).await?;
                    copy.finish().await?;
                    upsert_progress!(tx, progress);
                    tx.commit().await
                }
                .await
            }
            Store::Sqlite(_, lite) => {
                let (lite, progress) = (lite.clone(), progress.cloned());
                return tokio::task::spawn_blocking(move || {
                    lite.insert_licenses(&rows, progress.as_ref())
                })
                .await
                .map_err(|e| Error::internal(format!("license insert: {e}")))?;
            }
        };
        r.map_err(insert_error)
    }

    /// Brings the planner's statistics of `licenses` up to date after `added` rows went in at
    /// once, when PostgreSQL's autovacuum would analyze the table for it (more rows than a tenth
    /// of what the planner knows of, the default `autovacuum_analyze_scale_factor`, or a table
    /// never analyzed): now, rather than on autovacuum's next round (`autovacuum_naptime`, a
    /// minute by default). A table filled by `COPY` has no statistics until then, and a holder
    /// query may walk the primary key meanwhile (docs/PERFORMANCE.md). SQLite's planner picks
    /// the holder index for these queries without statistics, and its ANALYZE reads whole
    /// indexes: nothing to do there. Returns whether it analyzed.
    pub async fn refresh_license_stats(&self, added: u64) -> Result<bool> {
        let Store::Postgres(pool) = self else {
            return Ok(false);
        };
        if added < ANALYZE_MIN_ROWS {
            return Ok(false);
        }
        // -1 for a table never vacuumed or analyzed.
        let known: f32 =
            sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = 'licenses'::regclass")
                .fetch_one(pool)
                .await?;
        if known >= 0.0 && (added as f64) < 0.1 * f64::from(known) {
            return Ok(false);
        }
        let mut tx = pool.begin().await?;
        sqlx::query(SET_ANALYZE_TARGET).execute(&mut *tx).await?;
        sqlx::query(ANALYZE_LICENSES).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Issues one license in one transaction: reserves the next serial of (type, issuer, year),
    /// lets `make` build and sign the row for it, and stores the row.
    pub async fn insert_issued(
        &self,
        counter: (&str, &str, i32),
        make: impl FnOnce(i64) -> Result<LicenseRow>,
    ) -> Result<LicenseRow> {
        let (type_code, issuer, year) = counter;
        let r: std::result::Result<Result<LicenseRow>, sqlx::Error> = with_pool!(self, pool => {
            async {
                let mut tx = pool.begin().await?;
                let next: i64 = sqlx::query_scalar(
                    "INSERT INTO serial_counters (type_code, issuer, year, next) VALUES ($1, $2, $3, 2) \
                     ON CONFLICT (type_code, issuer, year) DO UPDATE SET next = serial_counters.next + 1 \
                     RETURNING next",
                )
                .bind(type_code)
                .bind(issuer)
                .bind(i64::from(year))
                .fetch_one(&mut *tx)
                .await?;
                let index: i64 = sqlx::query_scalar(STATUS_INDEX_RESERVE)
                    .bind(1_i64)
                    .fetch_one(&mut *tx)
                    .await?;
                let mut row = match make(next - 1) {
                    Ok(row) => row,
                    Err(e) => return Ok(Err(e)),
                };
                row.status_index = index - 1;
                let rows = std::slice::from_ref(&row);
                insert_rows!(tx, rows);
                tx.commit().await?;
                Ok(Ok(row))
            }.await
        });
        r.map_err(insert_error)?
    }

    pub async fn import_run(&self, file_hash: &str) -> Result<Option<ImportRunRow>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, ImportRunRow>(
                "SELECT file_hash, file_name, lines_done, issued, skipped, failed, finished, updated_at FROM import_runs WHERE file_hash = $1",
            )
            .bind(file_hash)
            .fetch_optional(pool)
            .await?
        }))
    }

    pub async fn license_by_lineage(&self, lineage: &str) -> Result<Option<LicenseRow>> {
        if let Store::Sqlite(_, lite) = self {
            return lite.license_by_lineage(lineage);
        }
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, LicenseRow>(LICENSE_BY_LINEAGE)
                .bind(lineage)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn license_by_number(
        &self,
        type_code: &str,
        number: &str,
    ) -> Result<Option<LicenseRow>> {
        if let Store::Sqlite(_, lite) = self {
            return lite.license_by_number(type_code, number);
        }
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, LicenseRow>(LICENSE_BY_NUMBER)
                .bind(type_code)
                .bind(number)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn list_licenses(&self, f: &LicenseFilter, today: &str) -> Result<Vec<LicenseRow>> {
        Ok(with_pool!(self, pool => {
            let mut qb = sqlx::QueryBuilder::new(LICENSE_COLUMNS);
            qb.push(" WHERE 1 = 1");
            if let Some(t) = &f.type_code {
                // The lineage starts with the type code: a range on the primary key.
                qb.push(" AND lineage >= ").push_bind(format!("{t}."));
                qb.push(" AND lineage < ").push_bind(format!("{t}/"));
            }
            if let Some(h) = &f.holder_code {
                qb.push(" AND holder_code = ").push_bind(h);
            }
            if let Some(i) = &f.issuer {
                qb.push(" AND issuer = ").push_bind(i);
            }
            match f.status.as_deref() {
                Some("05") => {
                    qb.push(" AND status = '01' AND valid_to IS NOT NULL AND valid_to < ").push_bind(today);
                }
                Some("01") => {
                    qb.push(" AND status = '01' AND (valid_to IS NULL OR valid_to >= ").push_bind(today).push(")");
                }
                Some(s) => {
                    // The status index covers only licenses that are not valid (0010).
                    qb.push(" AND status = ").push_bind(s).push(" AND status <> '01'");
                }
                None => {}
            }
            if let Some(a) = &f.after {
                qb.push(" AND lineage > ").push_bind(a);
            }
            qb.push(" ORDER BY lineage LIMIT ").push_bind(f.limit);
            qb.build_query_as::<LicenseRow>().fetch_all(pool).await?
        }))
    }

    /// `k` license identifiers picked at random (a full scan: for benchmarks).
    pub async fn sample_license_ids(&self, k: i64) -> Result<Vec<String>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_scalar::<_, String>("SELECT id FROM licenses ORDER BY random() LIMIT $1")
                .bind(k)
                .fetch_all(pool)
                .await?
        }))
    }

    pub async fn count_licenses(&self) -> Result<i64> {
        Ok(with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM licenses").fetch_one(pool).await?
        }))
    }

    /// The lineage of any version's identifier.
    pub async fn lineage_of(&self, id: &str) -> Result<Option<String>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_scalar::<_, String>("SELECT lineage FROM license_versions WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn versions(&self, lineage: &str) -> Result<Vec<VersionRow>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, VersionRow>(
                "SELECT id, lineage, version, record, signature, reason, created_at FROM license_versions WHERE lineage = $1 ORDER BY version",
            )
            .bind(lineage)
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn events(&self, lineage: &str) -> Result<Vec<EventRow>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, EventRow>(
                "SELECT lineage, seq, at, action, from_status, to_status, version, reason, actor FROM license_events WHERE lineage = $1 ORDER BY seq",
            )
            .bind(lineage)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Changes the status if it is still `from`; false when another change came first.
    pub async fn set_status(
        &self,
        lineage: &str,
        from: &str,
        to: &str,
        at: i64,
        reason: &str,
        actor: &str,
    ) -> Result<bool> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query("UPDATE licenses SET status = $3, updated_at = $4 WHERE lineage = $1 AND status = $2")
                .bind(lineage)
                .bind(from)
                .bind(to)
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n != 1 {
                return Ok(false);
            }
            let version: i64 = sqlx::query_scalar("SELECT version FROM licenses WHERE lineage = $1")
                .bind(lineage)
                .fetch_one(&mut *tx)
                .await?;
            insert_event!(tx, lineage, at, "status", Some(from), to, version, Some(reason), actor);
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Replaces the current version `old` with `new` if `old` is still current; `old` moves to
    /// the superseded versions.
    pub async fn amend(
        &self,
        new: &LicenseRow,
        old: &LicenseRow,
        reason: &str,
        actor: &str,
    ) -> Result<bool> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE licenses SET id = $3, version = $4, holder_name = $5, holder_code = $6, holder_code_type = $7, \
                 valid_from = $8, valid_to = $9, record = $10, signature = $11, updated_at = $12 \
                 WHERE lineage = $1 AND version = $2",
            )
            .bind(&new.lineage)
            .bind(old.version)
            .bind(&new.id)
            .bind(new.version)
            .bind(&new.holder_name)
            .bind(&new.holder_code)
            .bind(&new.holder_code_type)
            .bind(&new.valid_from)
            .bind(&new.valid_to)
            .bind(&new.record)
            .bind(&new.signature)
            .bind(new.updated_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n != 1 {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO license_versions (id, lineage, version, record, signature, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&old.id)
            .bind(&old.lineage)
            .bind(old.version)
            .bind(&old.record)
            .bind(&old.signature)
            .bind(reason)
            .bind(old.updated_at)
            .execute(&mut *tx)
            .await?;
            insert_event!(tx, &new.lineage, new.updated_at, "amended", Some(&new.status), &new.status, new.version, Some(reason), actor);
            tx.commit().await?;
            Ok(true)
        })
    }
}
