//! License types.

use super::{Store, is_unique_violation, with_pool};
use crate::error::{Error, Result};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TypeRow {
    pub code: String,
    pub name: String,
    pub holder_kind: String,
    pub schema: String,
    pub validity_years: Option<i64>,
    pub disclosable: String,
    pub disclose_minimum: String,
    pub builtin: i64,
    pub created_at: i64,
}

const TYPE_COLUMNS: &str = "SELECT code, name, holder_kind, schema, validity_years, disclosable, disclose_minimum, builtin, \
     created_at FROM license_types";

impl Store {
    /// Registers a type; `replace_builtin` lets start-up refresh the built-ins idempotently.
    pub async fn insert_type(&self, t: &TypeRow) -> Result<()> {
        let r = with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO license_types (code, name, holder_kind, schema, validity_years, disclosable, disclose_minimum, \
                 builtin, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&t.code)
            .bind(&t.name)
            .bind(&t.holder_kind)
            .bind(&t.schema)
            .bind(t.validity_years)
            .bind(&t.disclosable)
            .bind(&t.disclose_minimum)
            .bind(t.builtin)
            .bind(t.created_at)
            .execute(pool)
            .await
            .map(|_| ())
        });
        match r {
            Ok(()) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(Error::AlreadyExists {
                what: format!("license type {}", t.code),
            }),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn license_type(&self, code: &str) -> Result<Option<TypeRow>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, TypeRow>(&format!("{TYPE_COLUMNS} WHERE code = $1"))
                .bind(code)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn license_types(&self) -> Result<Vec<TypeRow>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, TypeRow>(&format!("{TYPE_COLUMNS} ORDER BY code"))
                .fetch_all(pool)
                .await?
        }))
    }
}
