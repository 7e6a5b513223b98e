//! Registered case-handling systems.

use super::{Store, is_unique_violation, with_pool};
use crate::error::{Error, Result};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClientRow {
    pub id: String,
    pub name: String,
    pub department: String,
    pub types: String,
    pub fields: String,
    pub statutory: i64,
    pub cert_serial: String,
    pub created_at: i64,
}

const CLIENT_COLUMNS: &str =
    "SELECT id, name, department, types, fields, statutory, cert_serial, created_at FROM clients";

impl Store {
    pub async fn insert_client(&self, c: &ClientRow) -> Result<()> {
        let r = with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO clients (id, name, department, types, fields, statutory, cert_serial, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&c.id)
            .bind(&c.name)
            .bind(&c.department)
            .bind(&c.types)
            .bind(&c.fields)
            .bind(c.statutory)
            .bind(&c.cert_serial)
            .bind(c.created_at)
            .execute(pool)
            .await
            .map(|_| ())
        });
        match r {
            Ok(()) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(Error::AlreadyExists {
                what: format!("client {}", c.id),
            }),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn client(&self, id: &str) -> Result<Option<ClientRow>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, ClientRow>(&format!("{CLIENT_COLUMNS} WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn client_by_cert(&self, serial: &str) -> Result<Option<ClientRow>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, ClientRow>(&format!("{CLIENT_COLUMNS} WHERE cert_serial = $1"))
                .bind(serial)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn clients(&self) -> Result<Vec<ClientRow>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, ClientRow>(&format!("{CLIENT_COLUMNS} ORDER BY id"))
                .fetch_all(pool)
                .await?
        }))
    }
}
