//! Region, keys, certificates, CRLs, authorities and API tokens.

use super::{Store, is_unique_violation, with_pool};
use crate::error::{Error, Result};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RegionRow {
    pub code: String,
    pub name: String,
    pub root_serial: String,
    pub created_at: i64,
}

#[derive(Clone, sqlx::FromRow)]
pub struct KeyRow {
    pub id: String,
    pub algorithm: String,
    pub public_key: Vec<u8>,
    pub sealed: Vec<u8>,
    pub created_at: i64,
}

impl std::fmt::Debug for KeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRow")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CertRow {
    pub serial: String,
    pub kind: String,
    pub subject: String,
    pub owner: Option<String>,
    /// The key-store key of this certificate; `None` when the key is not ours (clients).
    pub key_id: Option<String>,
    pub der: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    pub revoked_at: Option<i64>,
    pub revocation_reason: Option<String>,
    pub created_at: i64,
}

impl CertRow {
    /// The key-store id of the certificate's key, for certificates whose key we hold.
    pub fn key(&self) -> Result<&str> {
        self.key_id.as_deref().ok_or_else(|| {
            Error::internal(format!(
                "certificate {} has no key in the key store",
                self.serial
            ))
        })
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CrlRow {
    pub number: i64,
    pub der: Vec<u8>,
    pub this_update: i64,
    pub next_update: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuthorityRow {
    pub credit_code: String,
    pub name: String,
    pub level: String,
    pub cert_serial: String,
    pub created_at: i64,
}

impl Store {
    pub async fn region(&self) -> Result<Option<RegionRow>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, RegionRow>(
                "SELECT code, name, root_serial, created_at FROM region WHERE singleton = 1",
            )
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Creates the region with its root key and certificate, atomically.
    pub async fn insert_region(
        &self,
        region: &RegionRow,
        key: &KeyRow,
        root: &CertRow,
    ) -> Result<()> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            insert_key_q(key).execute(&mut *tx).await?;
            insert_cert_q(root).execute(&mut *tx).await?;
            let r = sqlx::query(
                "INSERT INTO region (singleton, code, name, root_serial, created_at) VALUES (1, $1, $2, $3, $4)",
            )
            .bind(&region.code)
            .bind(&region.name)
            .bind(&region.root_serial)
            .bind(region.created_at)
            .execute(&mut *tx)
            .await;
            match r {
                Err(e) if is_unique_violation(&e) => {
                    return Err(Error::AlreadyExists { what: "the region".into() });
                }
                other => other?,
            };
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn key(&self, id: &str) -> Result<Option<KeyRow>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, KeyRow>(
                "SELECT id, algorithm, public_key, sealed, created_at FROM keys WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        }))
    }

    pub async fn certificate(&self, serial: &str) -> Result<Option<CertRow>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, CertRow>(&format!("{CERT_COLUMNS} WHERE serial = $1"))
                .bind(serial)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn revoked_certificates(&self) -> Result<Vec<CertRow>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, CertRow>(&format!(
                "{CERT_COLUMNS} WHERE revoked_at IS NOT NULL ORDER BY revoked_at, serial"
            ))
            .fetch_all(pool)
            .await?
        }))
    }

    /// Marks a certificate revoked; false when it was not found or already revoked.
    pub async fn revoke_certificate(&self, serial: &str, at: i64, reason: &str) -> Result<bool> {
        let n = with_pool!(self, pool => {
            sqlx::query(
                "UPDATE certificates SET revoked_at = $2, revocation_reason = $3 WHERE serial = $1 AND revoked_at IS NULL",
            )
            .bind(serial)
            .bind(at)
            .bind(reason)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Stores a CRL of `issuer` (`root` or `client-ca`) under the next number; returns the row.
    /// The numbers are one sequence over both issuers, so each issuer's only increase.
    pub async fn insert_crl_next(
        &self,
        issuer: &str,
        make: impl FnOnce(i64) -> Result<CrlRow>,
    ) -> Result<CrlRow> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_with(super::write_begin(pool)).await?;
            let last: Option<i64> = sqlx::query_scalar("SELECT MAX(number) FROM crls")
                .fetch_one(&mut *tx)
                .await?;
            let row = make(last.unwrap_or(0) + 1)?;
            sqlx::query("INSERT INTO crls (number, der, this_update, next_update, issuer) VALUES ($1, $2, $3, $4, $5)")
                .bind(row.number)
                .bind(&row.der)
                .bind(row.this_update)
                .bind(row.next_update)
                .bind(issuer)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(row)
        })
    }

    /// The newest CRL of `issuer` (`root` or `client-ca`).
    pub async fn latest_crl(&self, issuer: &str) -> Result<Option<CrlRow>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, CrlRow>(
                "SELECT number, der, this_update, next_update FROM crls WHERE issuer = $1 ORDER BY number DESC LIMIT 1",
            )
            .bind(issuer)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Stores a certificate (and its key, when we hold it) in one transaction.
    pub async fn insert_certificate(&self, cert: &CertRow, key: Option<&KeyRow>) -> Result<()> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            if let Some(k) = key {
                insert_key_q(k).execute(&mut *tx).await?;
            }
            insert_cert_q(cert).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The newest unrevoked certificate of a kind (e.g. the TLS server certificate).
    pub async fn latest_certificate(&self, kind: &str) -> Result<Option<CertRow>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, CertRow>(&format!(
                "{CERT_COLUMNS} WHERE kind = $1 AND revoked_at IS NULL ORDER BY created_at DESC, serial LIMIT 1"
            ))
            .bind(kind)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Every unrevoked certificate of a kind, newest first (e.g. the client CAs a client
    /// certificate may be issued by while one CA is renewed).
    pub async fn certificates_of_kind(&self, kind: &str) -> Result<Vec<CertRow>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, CertRow>(&format!(
                "{CERT_COLUMNS} WHERE kind = $1 AND revoked_at IS NULL ORDER BY created_at DESC, serial"
            ))
            .bind(kind)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Creates an authority with its key and certificate and the types it may issue, atomically.
    pub async fn insert_authority(
        &self,
        authority: &AuthorityRow,
        key: &KeyRow,
        cert: &CertRow,
        types: &[String],
    ) -> Result<()> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            insert_key_q(key).execute(&mut *tx).await?;
            insert_cert_q(cert).execute(&mut *tx).await?;
            let r = sqlx::query(
                "INSERT INTO authorities (credit_code, name, level, cert_serial, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&authority.credit_code)
            .bind(&authority.name)
            .bind(&authority.level)
            .bind(&authority.cert_serial)
            .bind(authority.created_at)
            .execute(&mut *tx)
            .await;
            match r {
                Err(e) if is_unique_violation(&e) => {
                    return Err(Error::AlreadyExists {
                        what: format!("authority {}", authority.credit_code),
                    });
                }
                other => other?,
            };
            for t in types {
                sqlx::query("INSERT INTO authority_types (authority, type_code) VALUES ($1, $2)")
                    .bind(&authority.credit_code)
                    .bind(t)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn authority(&self, code: &str) -> Result<Option<AuthorityRow>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, AuthorityRow>(
                "SELECT credit_code, name, level, cert_serial, created_at FROM authorities WHERE credit_code = $1",
            )
            .bind(code)
            .fetch_optional(pool)
            .await?
        }))
    }

    pub async fn authorities(&self) -> Result<Vec<AuthorityRow>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, AuthorityRow>(
                "SELECT credit_code, name, level, cert_serial, created_at FROM authorities ORDER BY credit_code",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn authority_types(&self, code: &str) -> Result<Vec<String>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_scalar::<_, String>(
                "SELECT type_code FROM authority_types WHERE authority = $1 ORDER BY type_code",
            )
            .bind(code)
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn insert_token(&self, hash: &[u8], name: &str, at: i64) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("INSERT INTO api_tokens (token_hash, name, created_at) VALUES ($1, $2, $3)")
                .bind(hash)
                .bind(name)
                .bind(at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The name of the live token with this hash, if any.
    pub async fn token_name(&self, hash: &[u8]) -> Result<Option<String>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_scalar::<_, String>(
                "SELECT name FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
            )
            .bind(hash)
            .fetch_optional(pool)
            .await?
        }))
    }
}

const CERT_COLUMNS: &str = "SELECT serial, kind, subject, owner, key_id, der, not_before, not_after, \
     revoked_at, revocation_reason, created_at FROM certificates";

type Q<'a, DB> = sqlx::query::Query<'a, DB, <DB as sqlx::Database>::Arguments<'a>>;

pub(crate) fn insert_key_q<'a, DB: sqlx::Database>(k: &'a KeyRow) -> Q<'a, DB>
where
    String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Vec<u8>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    sqlx::query(
        "INSERT INTO keys (id, algorithm, public_key, sealed, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(k.id.clone())
    .bind(k.algorithm.clone())
    .bind(k.public_key.clone())
    .bind(k.sealed.clone())
    .bind(k.created_at)
}

pub(crate) fn insert_cert_q<'a, DB: sqlx::Database>(c: &'a CertRow) -> Q<'a, DB>
where
    String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<String>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Vec<u8>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    sqlx::query(
        "INSERT INTO certificates (serial, kind, subject, owner, key_id, der, not_before, not_after, revoked_at, revocation_reason, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(c.serial.clone())
    .bind(c.kind.clone())
    .bind(c.subject.clone())
    .bind(c.owner.clone())
    .bind(c.key_id.clone())
    .bind(c.der.clone())
    .bind(c.not_before)
    .bind(c.not_after)
    .bind(c.revoked_at)
    .bind(c.revocation_reason.clone())
    .bind(c.created_at)
}
