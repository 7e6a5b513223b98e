//! Holder grants (用证授权): which client — or which matter — may see which fields of one of
//! the holder's licenses, until when, and whether once.

use crate::app::App;
use crate::error::{Error, FieldError, Result};
use crate::store::GrantRow;
use serde::{Deserialize, Serialize};

/// A grant as the holder asks for it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    /// One of the holder's licenses (any version's identifier).
    pub license_id: String,
    /// The client allowed; or give `matter_code` to allow any client working on that matter.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub matter_code: Option<String>,
    /// Face fields released (`holder_name` and `holder_code` name the holder's own data).
    pub fields: Vec<String>,
    /// Unix seconds; at most a year ahead.
    pub valid_until: i64,
    #[serde(default)]
    pub single_use: bool,
}

/// A grant as the holder sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GrantView {
    pub id: String,
    pub license_lineage: String,
    pub client_id: Option<String>,
    pub matter_code: Option<String>,
    pub fields: Vec<String>,
    pub valid_until: i64,
    pub single_use: bool,
    pub used_at: Option<i64>,
    pub withdrawn_at: Option<i64>,
    pub created_at: i64,
    /// In force now.
    pub active: bool,
}

fn view(g: &GrantRow, now: i64) -> GrantView {
    GrantView {
        id: g.id.clone(),
        license_lineage: g.lineage.clone(),
        client_id: g.client_id.clone(),
        matter_code: g.matter_code.clone(),
        fields: serde_json::from_str(&g.fields).unwrap_or_default(),
        valid_until: g.valid_until,
        single_use: g.single_use != 0,
        used_at: g.used_at,
        withdrawn_at: g.withdrawn_at,
        created_at: g.created_at,
        active: g.withdrawn_at.is_none()
            && g.valid_until > now
            && (g.single_use == 0 || g.used_at.is_none()),
    }
}

/// Creates a grant for one of the holder's own licenses.
pub async fn create(app: &App, holder: &str, g: NewGrant) -> Result<GrantView> {
    let now = app.clock.unix();
    let mut errs = Vec::new();
    match (&g.client_id, &g.matter_code) {
        (Some(_), None) | (None, Some(_)) => {}
        _ => errs.push(FieldError::new(
            "/client_id",
            "give exactly one of client_id and matter_code",
        )),
    }
    if g.fields.is_empty()
        || g.fields.len() > 64
        || g.fields.iter().any(|f| f.is_empty() || f.len() > 64)
    {
        errs.push(FieldError::new("/fields", "1 to 64 field names"));
    }
    if g.valid_until <= now || g.valid_until > now + 366 * 86_400 {
        errs.push(FieldError::new(
            "/valid_until",
            "must be in the future, at most a year ahead",
        ));
    }
    if !errs.is_empty() {
        return Err(Error::InvalidFields { errors: errs });
    }
    let (row, _) = app.licenses.find(&g.license_id).await?;
    if row.holder_code != holder {
        // Not the holder's: answer as if it did not exist.
        return Err(Error::LicenseNotFound { id: g.license_id });
    }
    if let Some(c) = &g.client_id
        && app.store.client(c).await?.is_none()
    {
        return Err(Error::InvalidFields {
            errors: vec![FieldError::new("/client_id", "no such client")],
        });
    }
    let id = {
        use ring::rand::SecureRandom;
        let mut b = [0u8; 12];
        ring::rand::SystemRandom::new()
            .fill(&mut b)
            .map_err(|_| Error::internal("random generator failed"))?;
        format!("gr_{}", hex::encode(b))
    };
    let row = GrantRow {
        id,
        holder_code: holder.to_string(),
        lineage: row.lineage,
        client_id: g.client_id,
        matter_code: g.matter_code,
        fields: serde_json::to_string(&g.fields).unwrap_or_default(),
        valid_until: g.valid_until,
        single_use: i64::from(g.single_use),
        used_at: None,
        withdrawn_at: None,
        created_at: now,
    };
    app.store.insert_grant(&row).await?;
    app.audit
        .append(crate::audit::Entry::new(
            &format!("holder:{holder}"),
            "grant.create",
            &row.id,
            serde_json::json!({"lineage": row.lineage, "client_id": row.client_id, "matter_code": row.matter_code,
                               "fields": g.fields, "valid_until": row.valid_until, "single_use": g.single_use}),
        ))
        .await?;
    Ok(view(&row, now))
}

pub async fn list(app: &App, holder: &str) -> Result<Vec<GrantView>> {
    let now = app.clock.unix();
    Ok(app
        .store
        .grants_of_holder(holder)
        .await?
        .iter()
        .map(|g| view(g, now))
        .collect())
}

pub async fn withdraw(app: &App, holder: &str, id: &str) -> Result<()> {
    if !app
        .store
        .withdraw_grant(id, holder, app.clock.unix())
        .await?
    {
        return Err(Error::GrantNotFound { id: id.to_string() });
    }
    app.audit
        .append(crate::audit::Entry::new(
            &format!("holder:{holder}"),
            "grant.withdraw",
            id,
            serde_json::json!({}),
        ))
        .await?;
    Ok(())
}

/// The fields the holder's grants release to this client for this matter now, and the grants
/// used. Single-use grants are consumed here.
pub async fn released(
    app: &App,
    lineage: &str,
    client_id: &str,
    matter_code: &str,
) -> Result<(Vec<String>, Vec<String>)> {
    let now = app.clock.unix();
    let mut fields = Vec::new();
    let mut used = Vec::new();
    for g in app
        .store
        .active_grants(lineage, client_id, matter_code, now)
        .await?
    {
        if g.single_use != 0 && !app.store.use_grant(&g.id, now).await? {
            continue;
        }
        for f in serde_json::from_str::<Vec<String>>(&g.fields).unwrap_or_default() {
            if !fields.contains(&f) {
                fields.push(f);
            }
        }
        used.push(g.id);
    }
    Ok((fields, used))
}
