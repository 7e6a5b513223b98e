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

const AUDIT_COLUMNS: &str =
    "SELECT seq, at, actor, action, subject, details, prev_hash, hash FROM audit_log";

impl Store {
    /// Appends entries at the end of the chain in one transaction; `link` computes an entry's
    /// hash from the previous hash, its sequence number and the entry. Retries when another
    /// node appended first. Returns the sequence numbers and the last hash.
    pub async fn append_audit(
        &self,
        entries: &[NewAuditEntry],
        link: impl Fn(&[u8], i64, &NewAuditEntry) -> Vec<u8>,
    ) -> Result<(Vec<i64>, Vec<u8>)> {
        for _ in 0..20 {
            let r: std::result::Result<(Vec<i64>, Vec<u8>), sqlx::Error> = with_pool!(self, pool => {
                async {
                    let mut tx = pool.begin_with(super::write_begin(pool)).await?;
                    let last: Option<(i64, Vec<u8>)> =
                        sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                            .fetch_optional(&mut *tx)
                            .await?;
                    let (mut seq, mut prev) = last.unwrap_or((0, vec![0u8; 32]));
                    let mut seqs = Vec::with_capacity(entries.len());
                    let mut rows = Vec::with_capacity(entries.len());
                    for e in entries {
                        seq += 1;
                        let hash = link(&prev, seq, e);
                        rows.push((seq, e, std::mem::replace(&mut prev, hash.clone()), hash));
                        seqs.push(seq);
                    }
                    for chunk in rows.chunks(500) {
                        let mut qb = sqlx::QueryBuilder::new(
                            "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash) ",
                        );
                        qb.push_values(chunk, |mut b, (seq, e, prev, hash)| {
                            b.push_bind(*seq)
                                .push_bind(e.at)
                                .push_bind(&e.actor)
                                .push_bind(&e.action)
                                .push_bind(&e.subject)
                                .push_bind(&e.details)
                                .push_bind(prev)
                                .push_bind(hash);
                        });
                        qb.build().execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    Ok((seqs, prev))
                }
                .await
            });
            match r {
                Ok(v) => return Ok(v),
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::internal(
            "audit append kept conflicting with other nodes",
        ))
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
