//! Digital seals.

use super::{CertRow, KeyRow, Store, insert_cert_q, insert_key_q, with_pool};
use crate::error::Result;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SealRow {
    pub id: String,
    pub owner: String,
    pub kind: String,
    pub name: String,
    pub cert_serial: String,
    pub image: Vec<u8>,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const SEAL_COLUMNS: &str =
    "SELECT id, owner, kind, name, cert_serial, image, status, created_at, updated_at FROM seals";

impl Store {
    /// Stores a seal with its key and certificate, in one transaction.
    pub async fn insert_seal(&self, s: &SealRow, key: &KeyRow, cert: &CertRow) -> Result<()> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            insert_key_q(key).execute(&mut *tx).await?;
            insert_cert_q(cert).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO seals (id, owner, kind, name, cert_serial, image, status, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&s.id)
            .bind(&s.owner)
            .bind(&s.kind)
            .bind(&s.name)
            .bind(&s.cert_serial)
            .bind(&s.image)
            .bind(&s.status)
            .bind(s.created_at)
            .bind(s.updated_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn seal(&self, id: &str) -> Result<Option<SealRow>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, SealRow>(&format!("{SEAL_COLUMNS} WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn seals(&self, owner: Option<&str>) -> Result<Vec<SealRow>> {
        Ok(with_pool!(self, pool => {
            match owner {
                Some(o) => sqlx::query_as::<_, SealRow>(&format!("{SEAL_COLUMNS} WHERE owner = $1 ORDER BY created_at, id"))
                    .bind(o)
                    .fetch_all(pool)
                    .await?,
                None => sqlx::query_as::<_, SealRow>(&format!("{SEAL_COLUMNS} ORDER BY created_at, id"))
                    .fetch_all(pool)
                    .await?,
            }
        }))
    }

    /// Every seal's certificate serial, id and name (no images): for naming seals in reports.
    pub async fn seal_directory(&self) -> Result<Vec<(String, String, String)>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, (String, String, String)>(
                "SELECT cert_serial, id, name FROM seals ORDER BY created_at, id",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// Sets a seal's status; false when there is no such seal.
    pub async fn set_seal_status(&self, id: &str, status: &str, now: i64) -> Result<bool> {
        let n = with_pool!(self, pool => {
            sqlx::query("UPDATE seals SET status = $1, updated_at = $2 WHERE id = $3")
                .bind(status)
                .bind(now)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }
}
