//! Other regions.

use super::{KeyRow, Store, with_pool};
use crate::error::Result;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ForeignRegionRow {
    pub code: String,
    pub name: String,
    pub root_der: Vec<u8>,
    pub trust_list: String,
    pub authorities: String,
    pub endpoint: Option<String>,
    pub client_cert: Option<Vec<u8>>,
    pub client_key_id: Option<String>,
    pub issued_at: i64,
    pub next_update: i64,
    pub imported_at: i64,
}

const COLUMNS: &str = "SELECT code, name, root_der, trust_list, authorities, endpoint, client_cert, client_key_id, \
     issued_at, next_update, imported_at FROM foreign_regions";

impl Store {
    /// Stores (or replaces with a newer list) a foreign region, with its client key if given.
    pub async fn upsert_foreign_region(
        &self,
        r: &ForeignRegionRow,
        key: Option<&KeyRow>,
    ) -> Result<()> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            if let Some(k) = key {
                sqlx::query("INSERT INTO keys (id, algorithm, public_key, sealed, created_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(&k.id)
                    .bind(&k.algorithm)
                    .bind(&k.public_key)
                    .bind(&k.sealed)
                    .bind(k.created_at)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "INSERT INTO foreign_regions (code, name, root_der, trust_list, authorities, endpoint, client_cert, \
                 client_key_id, issued_at, next_update, imported_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (code) DO UPDATE SET name = excluded.name, trust_list = excluded.trust_list, \
                 authorities = excluded.authorities, endpoint = excluded.endpoint, \
                 client_cert = COALESCE(excluded.client_cert, foreign_regions.client_cert), \
                 client_key_id = COALESCE(excluded.client_key_id, foreign_regions.client_key_id), \
                 issued_at = excluded.issued_at, next_update = excluded.next_update, imported_at = excluded.imported_at",
            )
            .bind(&r.code)
            .bind(&r.name)
            .bind(&r.root_der)
            .bind(&r.trust_list)
            .bind(&r.authorities)
            .bind(&r.endpoint)
            .bind(&r.client_cert)
            .bind(&r.client_key_id)
            .bind(r.issued_at)
            .bind(r.next_update)
            .bind(r.imported_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn foreign_regions(&self) -> Result<Vec<ForeignRegionRow>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, ForeignRegionRow>(&format!("{COLUMNS} ORDER BY code"))
                .fetch_all(pool)
                .await?
        }))
    }

    pub async fn foreign_region(&self, code: &str) -> Result<Option<ForeignRegionRow>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, ForeignRegionRow>(&format!("{COLUMNS} WHERE code = $1"))
                .bind(code)
                .fetch_optional(pool)
                .await?
        }))
    }
}

impl Store {
    /// Records the first sighting of a show code; returns the earlier sighting when there was one.
    pub async fn sight_show_code(
        &self,
        cti: &str,
        license_id: &str,
        at: i64,
        place: &str,
    ) -> Result<Option<(i64, String)>> {
        with_pool!(self, pool => {
            let n = sqlx::query(
                "INSERT INTO show_code_sightings (cti, license_id, first_seen_at, first_seen_at_place) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (cti) DO NOTHING",
            )
            .bind(cti)
            .bind(license_id)
            .bind(at)
            .bind(place)
            .execute(pool)
            .await?
            .rows_affected();
            if n == 1 {
                return Ok(None);
            }
            Ok(sqlx::query_as::<_, (i64, String)>(
                "SELECT first_seen_at, first_seen_at_place FROM show_code_sightings WHERE cti = $1",
            )
            .bind(cti)
            .fetch_optional(pool)
            .await?)
        })
    }
}
