//! Holder sessions and grants.

use super::{Store, with_pool};
use crate::error::Result;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GrantRow {
    pub id: String,
    pub holder_code: String,
    pub lineage: String,
    pub client_id: Option<String>,
    pub matter_code: Option<String>,
    pub fields: String,
    pub valid_until: i64,
    pub single_use: i64,
    pub used_at: Option<i64>,
    pub withdrawn_at: Option<i64>,
    pub created_at: i64,
}

const GRANT_COLUMNS: &str = "SELECT id, holder_code, lineage, client_id, matter_code, fields, valid_until, \
     single_use, used_at, withdrawn_at, created_at FROM grants";

impl Store {
    pub async fn insert_holder_session(
        &self,
        hash: &[u8],
        holder: &str,
        expires: i64,
        now: i64,
    ) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("INSERT INTO holder_sessions (token_hash, holder_code, expires_at, created_at) VALUES ($1, $2, $3, $4)")
                .bind(hash)
                .bind(holder)
                .bind(expires)
                .bind(now)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The holder of a live session.
    pub async fn holder_session(&self, hash: &[u8], now: i64) -> Result<Option<String>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_scalar::<_, String>(
                "SELECT holder_code FROM holder_sessions WHERE token_hash = $1 AND expires_at > $2",
            )
            .bind(hash)
            .bind(now)
            .fetch_optional(pool)
            .await?
        }))
    }

    pub async fn insert_grant(&self, g: &GrantRow) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO grants (id, holder_code, lineage, client_id, matter_code, fields, valid_until, single_use, \
                 used_at, withdrawn_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&g.id)
            .bind(&g.holder_code)
            .bind(&g.lineage)
            .bind(&g.client_id)
            .bind(&g.matter_code)
            .bind(&g.fields)
            .bind(g.valid_until)
            .bind(g.single_use)
            .bind(g.used_at)
            .bind(g.withdrawn_at)
            .bind(g.created_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn grants_of_holder(&self, holder: &str) -> Result<Vec<GrantRow>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, GrantRow>(&format!("{GRANT_COLUMNS} WHERE holder_code = $1 ORDER BY created_at, id"))
                .bind(holder)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Grants that are in force now for a license and a client or matter.
    pub async fn active_grants(
        &self,
        lineage: &str,
        client_id: &str,
        matter_code: &str,
        now: i64,
    ) -> Result<Vec<GrantRow>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, GrantRow>(&format!(
                "{GRANT_COLUMNS} WHERE lineage = $1 AND (client_id = $2 OR matter_code = $3) AND valid_until > $4 \
                 AND withdrawn_at IS NULL AND (single_use = 0 OR used_at IS NULL) ORDER BY created_at, id"
            ))
            .bind(lineage)
            .bind(client_id)
            .bind(matter_code)
            .bind(now)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Consumes a single-use grant; false when another request used it first.
    pub async fn use_grant(&self, id: &str, now: i64) -> Result<bool> {
        let n = with_pool!(self, pool => {
            sqlx::query("UPDATE grants SET used_at = $2 WHERE id = $1 AND used_at IS NULL AND withdrawn_at IS NULL")
                .bind(id)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Withdraws a holder's grant; false when it is not theirs or already withdrawn.
    pub async fn withdraw_grant(&self, id: &str, holder: &str, now: i64) -> Result<bool> {
        let n = with_pool!(self, pool => {
            sqlx::query("UPDATE grants SET withdrawn_at = $3 WHERE id = $1 AND holder_code = $2 AND withdrawn_at IS NULL")
                .bind(id)
                .bind(holder)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Audit entries about any of `subjects` whose action starts with `prefix`, newest first.
    ///
    /// The entries up to the end of the subject index are found through it; the ones after,
    /// which the indexer has not reached yet (about a second of the log, unless the
    /// indexer is behind), by a scan of that tail. The end is read first: an index that moves
    /// on meanwhile only makes the two parts overlap. Every row found is checked against the
    /// subjects once more, so a forged index row cannot show a holder someone else's entry.
    pub async fn audit_about(
        &self,
        subjects: &[String],
        prefix: &str,
        limit: i64,
    ) -> Result<Vec<super::AuditRow>> {
        let done: i64 = with_pool!(self, pool => {
            sqlx::query_scalar(super::audit::SUBJECTS_DONE)
                .fetch_optional(pool)
                .await?
                .unwrap_or(0)
        });
        let mut out = Vec::new();
        for chunk in subjects.chunks(200) {
            with_pool!(self, pool => {
                let mut qb = sqlx::QueryBuilder::new(
                    "SELECT seq, at, actor, action, subject, details, prev_hash, hash FROM audit_log \
                     WHERE seq IN (SELECT seq FROM audit_subjects WHERE subject IN (",
                );
                let mut sep = qb.separated(", ");
                for s in chunk {
                    sep.push_bind(s);
                }
                qb.push(") UNION ALL SELECT seq FROM audit_log WHERE seq > ")
                    .push_bind(done)
                    .push(" AND subject IN (");
                let mut sep = qb.separated(", ");
                for s in chunk {
                    sep.push_bind(s);
                }
                qb.push(")) AND action LIKE ")
                    .push_bind(format!("{prefix}%"))
                    .push(" AND subject IN (");
                let mut sep = qb.separated(", ");
                for s in chunk {
                    sep.push_bind(s);
                }
                qb.push(") ORDER BY seq DESC LIMIT ").push_bind(limit);
                out.extend(qb.build_query_as::<super::AuditRow>().fetch_all(pool).await?);
            });
        }
        out.sort_by_key(|r| std::cmp::Reverse(r.seq));
        out.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(out)
    }

    /// Every identifier (all versions) of a holder's licenses.
    pub async fn holder_license_ids(&self, holder: &str) -> Result<Vec<String>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_scalar::<_, String>(
                "SELECT id FROM licenses WHERE holder_code = $1 \
                 UNION SELECT v.id FROM license_versions v JOIN licenses l ON l.lineage = v.lineage WHERE l.holder_code = $1",
            )
            .bind(holder)
            .fetch_all(pool)
            .await?
        }))
    }
}
