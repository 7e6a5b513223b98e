//! Region, PKI, authority and type routes, and the health check.

use super::error::{ApiResult, ErrorBody, Json, Path};
use crate::app::App;
use crate::error::Error;
use crate::license::types::TypeDefinition;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

/// Health of this node.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` or `degraded`.
    pub status: String,
    /// `ok` or `unavailable`.
    pub database: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
}

#[utoipa::path(get, path = "/healthz", tag = "service",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn healthz(State(app): State<App>) -> (StatusCode, axum::Json<Health>) {
    let db_ok = app.store.ping().await.is_ok();
    let h = Health {
        status: if db_ok { "ok" } else { "degraded" }.into(),
        database: if db_ok { "ok" } else { "unavailable" }.into(),
        backend: app.store.backend().into(),
    };
    let code = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(h))
}

/// The region this service serves.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RegionView {
    pub code: String,
    pub name: String,
    pub root_serial: String,
    /// The root CA certificate (PEM).
    pub root_certificate: String,
}

#[utoipa::path(get, path = "/v1/region", tag = "pki",
    responses((status = 200, body = RegionView), (status = 500, body = ErrorBody)))]
pub async fn region(State(app): State<App>) -> ApiResult<axum::Json<RegionView>> {
    let r = app.pki.region().await?;
    let root = app.pki.root().await?;
    Ok(axum::Json(RegionView {
        code: r.code,
        name: r.name,
        root_serial: r.root_serial,
        root_certificate: crate::pki::pem("CERTIFICATE", &root.der),
    }))
}

/// A certificate as a PEM file.
fn certificate_pem(c: &crate::store::CertRow) -> impl IntoResponse + use<> {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        crate::pki::pem("CERTIFICATE", &c.der),
    )
}

#[utoipa::path(get, path = "/v1/pki/root", tag = "pki",
    responses((status = 200, description = "The root CA certificate", content_type = "application/x-pem-file", body = String)))]
pub async fn root_pem(State(app): State<App>) -> ApiResult<impl IntoResponse> {
    Ok(certificate_pem(&app.pki.root().await?))
}

#[utoipa::path(get, path = "/v1/pki/service-signer", tag = "pki",
    responses((status = 200, description = "The service signer's certificate (signs verification receipts, show codes' status lists and trust lists)", content_type = "application/x-pem-file", body = String)))]
pub async fn service_signer_pem(State(app): State<App>) -> ApiResult<impl IntoResponse> {
    Ok(certificate_pem(&app.pki.service_signer().await?))
}

#[utoipa::path(get, path = "/v1/pki/crl", tag = "pki",
    responses((status = 200, description = "The current CRL (DER)", content_type = "application/pkix-crl", body = Vec<u8>)))]
pub async fn crl(State(app): State<App>) -> ApiResult<impl IntoResponse> {
    let crl = app.pki.current_crl().await?;
    Ok(([(header::CONTENT_TYPE, "application/pkix-crl")], crl.der))
}

#[utoipa::path(get, path = "/v1/pki/client-ca", tag = "pki",
    responses((status = 200, description = "The region's client CA (issues the TLS client certificates of case-handling systems)", content_type = "application/x-pem-file", body = String)))]
pub async fn client_ca_pem(State(app): State<App>) -> ApiResult<impl IntoResponse> {
    Ok(certificate_pem(&app.pki.client_ca().await?))
}

#[utoipa::path(get, path = "/v1/pki/client-ca/{serial}/crl", tag = "pki",
    params(("serial" = String, Path, description = "The client CA's serial (hex), as in the CRL distribution point of its client certificates")),
    responses((status = 200, description = "The current CRL of that client CA (DER)", content_type = "application/pkix-crl", body = Vec<u8>),
        (status = 404, description = "No unrevoked client CA has that serial (REQ-0404)", body = ErrorBody)))]
pub async fn client_ca_crl(
    State(app): State<App>,
    Path(serial): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let crl = app
        .pki
        .current_client_crl(&serial)
        .await?
        .ok_or(Error::RouteNotFound)?;
    Ok(([(header::CONTENT_TYPE, "application/pkix-crl")], crl.der))
}

/// An issuing authority.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuthorityView {
    pub credit_code: String,
    pub name: String,
    pub level: String,
    /// License types it may issue.
    pub types: Vec<String>,
    pub certificate_serial: String,
    /// Its seal-signing certificate (PEM).
    pub certificate: String,
    pub certificate_revoked: bool,
}

async fn authority_view(
    app: &App,
    row: crate::store::AuthorityRow,
) -> crate::error::Result<AuthorityView> {
    let cert = app
        .store
        .certificate(&row.cert_serial)
        .await?
        .ok_or_else(|| Error::internal("authority certificate missing"))?;
    Ok(AuthorityView {
        types: app.store.authority_types(&row.credit_code).await?,
        credit_code: row.credit_code,
        name: row.name,
        level: row.level,
        certificate_serial: cert.serial,
        certificate: crate::pki::pem("CERTIFICATE", &cert.der),
        certificate_revoked: cert.revoked_at.is_some(),
    })
}

#[utoipa::path(get, path = "/v1/authorities", tag = "authorities",
    responses((status = 200, body = Vec<AuthorityView>)), security(("bearer" = [])))]
pub async fn authorities(State(app): State<App>) -> ApiResult<axum::Json<Vec<AuthorityView>>> {
    let mut out = Vec::new();
    for row in app.store.authorities().await? {
        out.push(authority_view(&app, row).await?);
    }
    Ok(axum::Json(out))
}

#[utoipa::path(get, path = "/v1/authorities/{code}", tag = "authorities",
    params(("code" = String, Path, description = "Credit code")),
    responses((status = 200, body = AuthorityView), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn authority(
    State(app): State<App>,
    Path(code): Path<String>,
) -> ApiResult<axum::Json<AuthorityView>> {
    let row = app
        .store
        .authority(&code)
        .await?
        .ok_or(Error::UnknownAuthority { code })?;
    Ok(axum::Json(authority_view(&app, row).await?))
}

/// A new issuing authority.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAuthority {
    pub credit_code: String,
    pub name: String,
    /// national | provincial | municipal | district
    pub level: String,
    /// License type codes it may issue.
    pub types: Vec<String>,
}

#[utoipa::path(post, path = "/v1/authorities", tag = "authorities", request_body = NewAuthority,
    responses((status = 201, body = AuthorityView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_authority(
    State(app): State<App>,
    Json(a): Json<NewAuthority>,
) -> ApiResult<(StatusCode, axum::Json<AuthorityView>)> {
    let row = app
        .licenses
        .add_authority(&a.credit_code, &a.name, &a.level, &a.types)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(authority_view(&app, row).await?),
    ))
}

/// Revocation of an authority's certificate.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// unspecified | keyCompromise | affiliationChanged | superseded | cessationOfOperation
    pub reason: String,
}

#[utoipa::path(post, path = "/v1/authorities/{code}/certificate/revoke", tag = "authorities",
    params(("code" = String, Path, description = "Credit code")), request_body = Revocation,
    responses((status = 200, body = AuthorityView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_authority_cert(
    State(app): State<App>,
    Path(code): Path<String>,
    Json(r): Json<Revocation>,
) -> ApiResult<axum::Json<AuthorityView>> {
    let row = app
        .store
        .authority(&code)
        .await?
        .ok_or(Error::UnknownAuthority { code })?;
    app.pki.revoke(&row.cert_serial, &r.reason).await?;
    app.issuers.forget(&row.credit_code);
    Ok(axum::Json(authority_view(&app, row).await?))
}

#[utoipa::path(get, path = "/v1/types", tag = "types",
    responses((status = 200, body = Vec<TypeDefinition>)), security(("bearer" = [])))]
pub async fn types(State(app): State<App>) -> ApiResult<axum::Json<Vec<TypeDefinition>>> {
    Ok(axum::Json(app.licenses.list_types().await?))
}

#[utoipa::path(get, path = "/v1/types/{code}", tag = "types",
    params(("code" = String, Path, description = "Type code")),
    responses((status = 200, body = TypeDefinition), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn license_type(
    State(app): State<App>,
    Path(code): Path<String>,
) -> ApiResult<axum::Json<TypeDefinition>> {
    Ok(axum::Json(
        app.licenses.license_type(&code).await?.def.clone(),
    ))
}

#[utoipa::path(post, path = "/v1/types", tag = "types", request_body = TypeDefinition,
    responses((status = 201, body = TypeDefinition), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_type(
    State(app): State<App>,
    Json(def): Json<TypeDefinition>,
) -> ApiResult<(StatusCode, axum::Json<TypeDefinition>)> {
    let t = app.licenses.register_type(def).await?;
    Ok((StatusCode::CREATED, axum::Json(t.def.clone())))
}

#[utoipa::path(get, path = "/v1/trust-list", tag = "pki",
    responses((status = 200, description = "This region's signed trust list (`ELT1:` + base64url COSE_Sign1)", content_type = "text/plain", body = String)))]
pub async fn trust_list(State(app): State<App>) -> ApiResult<impl IntoResponse> {
    let tl = crate::verify::trust::export(&app).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain")], tl))
}

#[utoipa::path(post, path = "/v1/show-codes/verify", tag = "holder", request_body = crate::present::OnlineCheck,
    responses((status = 200, description = "The verdict with the live status and replay detection", body = crate::present::OnlineResult),
              (status = 400, body = ErrorBody)))]
pub async fn verify_show_code(
    State(app): State<App>,
    Json(r): Json<crate::present::OnlineCheck>,
) -> ApiResult<axum::Json<crate::present::OnlineResult>> {
    if r.code.len() > 4096 {
        return Err(Error::bad_request("a show code is at most 4096 characters").into());
    }
    Ok(axum::Json(crate::present::check_online(&app, r).await?))
}

#[utoipa::path(get, path = "/v1/status-list", tag = "pki",
    responses((status = 200, description = "This region's signed status list (`ELS1:` + base64url COSE_Sign1; 2 bits a license)", content_type = "text/plain", body = String)))]
pub async fn status_list(State(app): State<App>) -> ApiResult<impl IntoResponse> {
    let list = crate::present::status_list::build(&app).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        list,
    ))
}

#[utoipa::path(post, path = "/v1/show-codes/verify-image", tag = "holder",
    request_body(content = Vec<u8>, content_type = "image/png", description = "A photo or scan of the QR code"),
    responses((status = 200, body = crate::present::OnlineResult), (status = 400, body = ErrorBody)))]
pub async fn verify_show_code_image(
    State(app): State<App>,
    body: axum::body::Bytes,
) -> ApiResult<axum::Json<crate::present::OnlineResult>> {
    let code = crate::present::qr::decode_png(&body)?;
    let req = crate::present::OnlineCheck {
        code,
        place: Some("officer page (image)".into()),
    };
    Ok(axum::Json(crate::present::check_online(&app, req).await?))
}
