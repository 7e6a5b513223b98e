//! The audit log's rows.

use super::{Store, is_unique_violation, with_pool};
use crate::error::{Error, Result};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub details: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CheckpointRow {
    pub seq: i64,
    pub hash: Vec<u8>,
    pub at: i64,
    pub signature: Vec<u8>,
    pub cert_serial: String,
}

/// An entry before it has its place in the chain.
#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub details: String,
}

/// An entry with its place in the chain, as it is inserted.
#[derive(Debug, Clone)]
pub struct AuditInsert<'a> {
    pub seq: i64,
    pub at: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub subject: &'a str,
    pub details: &'a str,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// Links `entries` onto the chain ending at `start`: their rows, sequence numbers, and the new
/// end of the chain.
pub(crate) fn link_rows<'a>(
    entries: &'a [NewAuditEntry],
    link: LinkFn,
    start: ChainTail,
) -> (Vec<AuditInsert<'a>>, Vec<i64>, ChainTail) {
    let (mut seq, mut prev) = start;
    let mut seqs = Vec::with_capacity(entries.len());
    let mut rows = Vec::with_capacity(entries.len());
    for e in entries {
        seq += 1;
        let hash = link(&prev, seq, e);
        rows.push(AuditInsert {
            seq,
            at: e.at,
            actor: &e.actor,
            action: &e.action,
            subject: &e.subject,
            details: &e.details,
            prev_hash: std::mem::replace(&mut prev, hash.clone()),
            hash,
        });
        seqs.push(seq);
    }
    (rows, seqs, (seq, prev))
}

/// How an entry's hash is computed from the previous hash, its sequence number and the entry
/// (`crate::audit::link`).
pub type LinkFn = fn(&[u8], i64, &NewAuditEntry) -> Vec<u8>;

/// The end of the audit chain: the last entry's sequence number and hash.
pub type ChainTail = (i64, Vec<u8>);

/// Most entries appended in one statement (8 bound values each: within SQLite's 32,766 and
/// PostgreSQL's 65,535 parameters).
pub const MAX_AUDIT_BATCH: usize = 1024;

const AUDIT_COLUMNS: &str =
    "SELECT seq, at, actor, action, subject, details, prev_hash, hash FROM audit_log";

/// Where the subject index ends: every entry up to this one is in `audit_subjects`.
pub(crate) const SUBJECTS_DONE: &str = "SELECT seq FROM audit_subjects_done WHERE id = 1";
/// The log's last entry (0 when empty).
pub(crate) const AUDIT_END: &str = "SELECT COALESCE(MAX(seq), 0) FROM audit_log";
/// Indexes the entries in `($1, $2]`, in index order (one pass over the B-tree's leaves).
pub(crate) const INDEX_SUBJECTS: &str = "INSERT INTO audit_subjects (subject, seq) \
     SELECT subject, seq FROM audit_log WHERE seq > $1 AND seq <= $2 ORDER BY subject, seq \
     ON CONFLICT DO NOTHING";
/// Moves the end of the subject index.
pub(crate) const SET_SUBJECTS_DONE: &str = "INSERT INTO audit_subjects_done (id, seq) VALUES (1, $1) \
     ON CONFLICT (id) DO UPDATE SET seq = excluded.seq";

impl Store {
    /// The end of the chain: the last entry's sequence number and hash (`(0, [0; 32])` when the
    /// log is empty).
    pub async fn audit_tail(&self) -> Result<ChainTail> {
        let last: Option<(i64, Vec<u8>)> = with_pool!(self, pool => {
            sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(pool)
                .await?
        });
        Ok(last.unwrap_or((0, vec![0u8; 32])))
    }

    /// Appends entries at the end of the chain; `link` computes an entry's hash from the
    /// previous hash, its sequence number and the entry. Returns their sequence numbers.
    ///
    /// `tail` is where the caller last saw the chain end (`None`: read it). The entries go in as
    /// one multi-row INSERT, which commits atomically on its own: one round trip to the database
    /// per batch. When another process or node appended in between, the first sequence number
    /// is taken and the INSERT fails as a whole on the primary key; the tail is then read afresh
    /// and the batch relinked. On return `tail` holds the new end of the chain, or `None` when
    /// it is unknown.
    pub async fn append_audit(
        &self,
        entries: &[NewAuditEntry],
        link: LinkFn,
        tail: &mut Option<ChainTail>,
    ) -> Result<Vec<i64>> {
        if entries.len() > MAX_AUDIT_BATCH {
            return Err(Error::internal("audit batch too large"));
        }
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        if let Store::Sqlite(_, lite) = self {
            // The direct connection's path (what this node's audit writer thread runs).
            let (lite, entries, start) = (lite.clone(), entries.to_vec(), tail.take());
            let (r, end) = tokio::task::spawn_blocking(move || {
                let mut end = start;
                let r = lite.append_audit(&entries, link, &mut end);
                (r, end)
            })
            .await
            .map_err(|e| Error::internal(format!("audit append: {e}")))?;
            *tail = end;
            return r;
        }
        for _ in 0..20 {
            let start = match tail.take() {
                Some(t) => t,
                None => self.audit_tail().await?,
            };
            let (rows, seqs, end) = link_rows(entries, link, start);
            let r: std::result::Result<_, sqlx::Error> = with_pool!(self, pool => {
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash) ",
                );
                qb.push_values(&rows, |mut b, r| {
                    b.push_bind(r.seq)
                        .push_bind(r.at)
                        .push_bind(r.actor)
                        .push_bind(r.action)
                        .push_bind(r.subject)
                        .push_bind(r.details)
                        .push_bind(&r.prev_hash)
                        .push_bind(&r.hash);
                });
                qb.build().execute(pool).await.map(|_| ())
            });
            match r {
                Ok(()) => {
                    *tail = Some(end);
                    return Ok(seqs);
                }
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::internal(
            "audit append kept conflicting with other nodes",
        ))
    }

    /// Copies `(subject, seq)` of up to `limit` committed entries after the end of the subject
    /// index into `audit_subjects` and moves its end past them, in one transaction; returns
    /// how many entries it indexed. Committed entries always form an unbroken prefix of the
    /// chain (an entry links to the committed hash of the one before), so the index covers
    /// exactly the entries up to its end. Several nodes may run it at once: on PostgreSQL the
    /// end's row is locked for the transaction, on SQLite the write lock serialises them, and
    /// a row indexed twice is skipped.
    pub async fn index_audit_subjects(&self, limit: i64) -> Result<i64> {
        if let Store::Sqlite(_, lite) = self {
            let lite = lite.clone();
            return tokio::task::spawn_blocking(move || lite.index_audit_subjects(limit))
                .await
                .map_err(|e| Error::internal(format!("audit subject index: {e}")))?;
        }
        let done_sql = match self {
            Store::Postgres(_) => format!("{SUBJECTS_DONE} FOR UPDATE"),
            Store::Sqlite(..) => SUBJECTS_DONE.to_string(),
        };
        Ok(with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let done: i64 = sqlx::query_scalar(&done_sql)
                .fetch_optional(&mut *tx)
                .await?
                .unwrap_or(0);
            let end: i64 = sqlx::query_scalar(AUDIT_END).fetch_one(&mut *tx).await?;
            let hi = end.min(done.saturating_add(limit));
            if hi <= done {
                0
            } else {
                sqlx::query(INDEX_SUBJECTS).bind(done).bind(hi).execute(&mut *tx).await?;
                sqlx::query(SET_SUBJECTS_DONE).bind(hi).execute(&mut *tx).await?;
                tx.commit().await?;
                hi - done
            }
        }))
    }

    /// The first disagreement between the subject index and the log, if any: an entry up to
    /// the index's end that it does not list (the holder's access list would not show it), a
    /// listed entry the log does not have under that subject, or an end beyond the log's.
    pub async fn audit_subjects_problem(&self) -> Result<Option<String>> {
        let (done, end): (Option<i64>, i64) = with_pool!(self, pool => {
            let done: Option<i64> = sqlx::query_scalar(SUBJECTS_DONE).fetch_optional(pool).await?;
            let end: i64 = sqlx::query_scalar(AUDIT_END).fetch_one(pool).await?;
            (done, end)
        });
        let Some(done) = done else {
            return Ok(Some("the subject index has no end recorded".into()));
        };
        if done > end {
            return Ok(Some(format!(
                "the subject index claims entries up to {done}, but the log ends at {end}"
            )));
        }
        let missing: Option<i64> = with_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT l.seq FROM audit_log l WHERE l.seq <= $1 AND NOT EXISTS \
                 (SELECT 1 FROM audit_subjects s WHERE s.subject = l.subject AND s.seq = l.seq) \
                 ORDER BY l.seq LIMIT 1",
            )
            .bind(done)
            .fetch_optional(pool)
            .await?
        });
        if let Some(seq) = missing {
            return Ok(Some(format!(
                "entry {seq} is missing from the subject index: the holder's access list would not show it"
            )));
        }
        let extra: Option<i64> = with_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT s.seq FROM audit_subjects s WHERE NOT EXISTS \
                 (SELECT 1 FROM audit_log l WHERE l.seq = s.seq AND l.subject = s.subject) \
                 ORDER BY s.seq LIMIT 1",
            )
            .fetch_optional(pool)
            .await?
        });
        Ok(extra.map(|seq| {
            format!("the subject index lists entry {seq} under a subject the entry is not about")
        }))
    }

    /// A page of the log from `after` (exclusive), in order.
    pub async fn audit_page(&self, after: i64, limit: i64) -> Result<Vec<AuditRow>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, AuditRow>(&format!("{AUDIT_COLUMNS} WHERE seq > $1 ORDER BY seq LIMIT $2"))
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    pub async fn insert_checkpoint(&self, c: &CheckpointRow) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO audit_checkpoints (seq, hash, at, signature, cert_serial) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (seq) DO NOTHING",
            )
            .bind(c.seq)
            .bind(&c.hash)
            .bind(c.at)
            .bind(&c.signature)
            .bind(&c.cert_serial)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn checkpoints(&self) -> Result<Vec<CheckpointRow>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, CheckpointRow>(
                "SELECT seq, hash, at, signature, cert_serial FROM audit_checkpoints ORDER BY seq",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn last_checkpoint_seq(&self) -> Result<i64> {
        Ok(with_pool!(self, pool => {
            sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(seq) FROM audit_checkpoints")
                .fetch_one(pool)
                .await?
                .unwrap_or(0)
        }))
    }
}
