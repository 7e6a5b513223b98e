//! Holder routes: sign-in (development provider), own licenses, grants, and who used them.

use super::error::{ApiError, ApiResult, ErrorBody, Json, Path};
use crate::app::App;
use crate::error::Error;
use crate::holder::{DevSignIn, Session, SignedIn};
use crate::license::service::LicenseView;
use crate::verify::grants::{self, GrantView, NewGrant};
use axum::Extension;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;

/// Middleware: a holder session token.
pub async fn require_holder(
    State(app): State<App>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 200)
        .ok_or_else(|| Error::Unauthenticated {
            reason: "a holder session (Authorization: Bearer) is required".into(),
        })?
        .to_string();
    let holder = crate::holder::authenticate(&app, &token).await?;
    req.extensions_mut().insert(holder);
    Ok(next.run(req).await)
}

#[utoipa::path(post, path = "/v1/holder/sessions", tag = "holder", request_body = DevSignIn,
    responses((status = 201, body = Session), (status = 403, description = "development sign-in disabled (HOL-0001)", body = ErrorBody),
              (status = 422, body = ErrorBody)),
    description = "Development identity provider: signs in as any holder code. Enabled only by `dev_holder_login = true` (or `serve --demo`).")]
pub async fn dev_sign_in(
    State(app): State<App>,
    Json(r): Json<DevSignIn>,
) -> ApiResult<(StatusCode, axum::Json<Session>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(crate::holder::dev_sign_in(&app, r).await?),
    ))
}

/// A holder's license with what a show code of its type must and may disclose.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HolderLicense {
    #[serde(flatten)]
    pub license: LicenseView,
    /// Always in a show code.
    pub disclose_minimum: Vec<String>,
    /// The holder's choice.
    pub disclose_optional: Vec<String>,
}

#[utoipa::path(get, path = "/v1/holder/licenses", tag = "holder",
    responses((status = 200, body = Vec<HolderLicense>), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn licenses(
    State(app): State<App>,
    Extension(h): Extension<SignedIn>,
) -> ApiResult<axum::Json<Vec<HolderLicense>>> {
    let f = crate::store::LicenseFilter {
        holder_code: Some(h.0),
        limit: 500,
        ..Default::default()
    };
    let mut out = Vec::new();
    for license in app.licenses.list(&f).await? {
        let t = app.licenses.license_type(&license.type_code).await?;
        out.push(HolderLicense {
            disclose_minimum: t.def.disclose_minimum.clone(),
            disclose_optional: t
                .def
                .disclosable
                .iter()
                .filter(|f| !t.def.disclose_minimum.contains(f))
                .cloned()
                .collect(),
            license,
        });
    }
    Ok(axum::Json(out))
}

#[utoipa::path(get, path = "/v1/holder/grants", tag = "holder",
    responses((status = 200, body = Vec<GrantView>)), security(("bearer" = [])))]
pub async fn list_grants(
    State(app): State<App>,
    Extension(h): Extension<SignedIn>,
) -> ApiResult<axum::Json<Vec<GrantView>>> {
    Ok(axum::Json(grants::list(&app, &h.0).await?))
}

#[utoipa::path(post, path = "/v1/holder/grants", tag = "holder", request_body = NewGrant,
    responses((status = 201, body = GrantView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_grant(
    State(app): State<App>,
    Extension(h): Extension<SignedIn>,
    Json(g): Json<NewGrant>,
) -> ApiResult<(StatusCode, axum::Json<GrantView>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(grants::create(&app, &h.0, g).await?),
    ))
}

#[utoipa::path(delete, path = "/v1/holder/grants/{id}", tag = "holder",
    params(("id" = String, Path, description = "Grant id")),
    responses((status = 204, description = "withdrawn"), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn withdraw_grant(
    State(app): State<App>,
    Extension(h): Extension<SignedIn>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    grants::withdraw(&app, &h.0, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One use of the holder's licenses.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Access {
    pub at: i64,
    /// The client (case-handling system), or `unauthenticated`.
    pub client: String,
    pub license_id: String,
    /// `verification` or `verification.refused`.
    pub action: String,
    /// Matter code, case number, basis (`grant`, `statutory`, `none`), fields released, grants.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

#[utoipa::path(get, path = "/v1/holder/accesses", tag = "holder",
    responses((status = 200, body = Vec<Access>)), security(("bearer" = [])))]
pub async fn accesses(
    State(app): State<App>,
    Extension(h): Extension<SignedIn>,
) -> ApiResult<axum::Json<Vec<Access>>> {
    let ids = app.store.holder_license_ids(&h.0).await?;
    let rows = app.store.audit_about(&ids, "verification", 500).await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|r| Access {
                at: r.at,
                client: r.actor,
                license_id: r.subject,
                action: r.action,
                details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
            })
            .collect(),
    ))
}

#[utoipa::path(post, path = "/v1/holder/show-codes", tag = "holder", request_body = crate::present::ShowCodeRequest,
    responses((status = 201, body = crate::present::ShowCode), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show_code(
    State(app): State<App>,
    Extension(h): Extension<SignedIn>,
    Json(r): Json<crate::present::ShowCodeRequest>,
) -> ApiResult<(StatusCode, axum::Json<crate::present::ShowCode>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(crate::present::issue(&app, &h.0, r).await?),
    ))
}
