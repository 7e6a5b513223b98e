//! Seal routes: create, list, change status, seal a PDF; and the RFC 3161 time-stamp authority.

use super::error::{ApiResult, ErrorBody, Json, Path, PdfBody, Query};
use crate::app::App;
use crate::error::Error;
use crate::seal::{self, SealView};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Deserialize;

/// A seal to create.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSealBody {
    /// Unified social credit code of the owner.
    pub owner: String,
    /// official | contract | license | finance
    pub kind: String,
    pub name: String,
    /// The owner's organisation name for the certificate.
    #[serde(default)]
    pub organisation: Option<String>,
    /// The seal image: a PNG with transparency, base64. A red round seal is drawn when absent.
    #[serde(default)]
    pub image_png_base64: Option<String>,
}

#[utoipa::path(post, path = "/v1/seals", tag = "seals", request_body = NewSealBody,
    responses((status = 201, body = SealView), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add(
    State(app): State<App>,
    Json(b): Json<NewSealBody>,
) -> ApiResult<(axum::http::StatusCode, axum::Json<SealView>)> {
    use base64::Engine;
    let image = match b.image_png_base64 {
        Some(s) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map_err(|_| Error::bad_request("image_png_base64 is not base64"))?,
        ),
        None => None,
    };
    let v = seal::add(
        &app,
        seal::NewSeal {
            owner: b.owner,
            kind: b.kind,
            name: b.name,
            organisation: b.organisation,
            image,
        },
    )
    .await?;
    Ok((axum::http::StatusCode::CREATED, axum::Json(v)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SealFilter {
    /// Only this owner's seals.
    pub owner: Option<String>,
}

#[utoipa::path(get, path = "/v1/seals", tag = "seals", params(SealFilter),
    responses((status = 200, body = Vec<SealView>)), security(("bearer" = [])))]
pub async fn list(
    State(app): State<App>,
    Query(f): Query<SealFilter>,
) -> ApiResult<axum::Json<Vec<SealView>>> {
    Ok(axum::Json(seal::list(&app, f.owner.as_deref()).await?))
}

/// A seal status change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SealStatus {
    /// active | suspended | revoked (revoked is final and lands the certificate in the CRL)
    pub status: String,
    /// For revocation: unspecified | keyCompromise | affiliationChanged | superseded | cessationOfOperation
    #[serde(default = "unspecified")]
    pub reason: String,
}

fn unspecified() -> String {
    "unspecified".into()
}

#[utoipa::path(post, path = "/v1/seals/{id}/status", tag = "seals", request_body = SealStatus,
    params(("id" = String, Path)),
    responses((status = 200, body = SealView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_status(
    State(app): State<App>,
    Path(id): Path<String>,
    Json(b): Json<SealStatus>,
) -> ApiResult<axum::Json<SealView>> {
    Ok(axum::Json(
        seal::set_status(&app, &id, &b.status, &b.reason).await?,
    ))
}

/// Where and how to seal (query parameters).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignParams {
    /// B-B | B-T (default) | B-LT | B-LTA
    pub level: Option<String>,
    /// Page (1-based) of a visible seal; with `x`/`y`.
    pub page: Option<usize>,
    /// Lower-left corner of a visible seal (points); invisible when neither x nor y nor page is given.
    pub x: Option<f32>,
    pub y: Option<f32>,
    /// Seal width in points (default 120).
    pub width: Option<f32>,
    /// Cross-page seal over these pages: "all" or "1,2,3".
    pub cross_page: Option<String>,
    /// Certify the document, reserving this many fields for later seals.
    pub certify: Option<usize>,
    pub reason: Option<String>,
    pub location: Option<String>,
}

#[utoipa::path(post, path = "/v1/seals/{id}/sign", tag = "seals", params(("id" = String, Path), SignParams),
    request_body(content = Vec<u8>, content_type = "application/pdf", description = "The PDF, as the body or as the `file` part of multipart/form-data"),
    responses((status = 200, description = "The sealed PDF (the original bytes plus new revisions)", content_type = "application/pdf"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn sign(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(p): Query<SignParams>,
    PdfBody(body): PdfBody,
) -> ApiResult<impl IntoResponse> {
    let level: seal::pades::Level = p.level.as_deref().unwrap_or("B-T").parse()?;
    let width = p.width.unwrap_or(120.0);
    if !(10.0..=600.0).contains(&width) {
        return Err(Error::bad_request("width must be between 10 and 600 points").into());
    }
    let cross_page = p
        .cross_page
        .as_deref()
        .map(|spec| seal::CrossPage::parse(spec, p.y, width))
        .transpose()?;
    let visible = p.page.is_some() || p.x.is_some() || p.y.is_some();
    let placement = (visible && cross_page.is_none()).then(|| seal::pades::Placement {
        page: p.page.unwrap_or(1),
        x: p.x.unwrap_or(400.0),
        y: p.y.unwrap_or(60.0),
        width,
    });
    let opts = seal::SignOptions {
        level,
        placement,
        cross_page,
        certify: p.certify,
        reason: p.reason,
        location: p.location,
    };
    let kit = seal::kit(&app, &id, level).await?;
    let (doc, sealed) = seal::seal_bytes(&app, kit, body, opts).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (
                header::HeaderName::from_static("x-seal-field"),
                sealed.field.clone(),
            ),
        ],
        doc,
    ))
}

#[utoipa::path(post, path = "/tsa", tag = "seals",
    request_body(content = Vec<u8>, content_type = "application/timestamp-query", description = "RFC 3161 TimeStampReq (DER)"),
    responses((status = 200, description = "RFC 3161 TimeStampResp (DER)", content_type = "application/timestamp-reply"),
        (status = 400, body = ErrorBody)))]
pub async fn tsa(
    State(app): State<App>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<impl IntoResponse> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !ct.starts_with("application/timestamp-query") {
        return Err(Error::BadTimestampRequest {
            reason: "the content type must be application/timestamp-query".into(),
        }
        .into());
    }
    let (tsa, _) = seal::builtin_tsa(&app).await?;
    let resp = tsa.respond(&body)?;
    Ok((
        [(header::CONTENT_TYPE, "application/timestamp-reply")],
        resp,
    ))
}

#[utoipa::path(post, path = "/v1/seals/verify", tag = "seals",
    request_body(content = Vec<u8>, content_type = "application/pdf"),
    responses((status = 200, body = crate::seal::verify::Report,
        description = "Every signature: integrity, signer and seal, chain to this region's or an imported region's root, revocation at signing time, time-stamps, coverage, changes after it"),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn verify(
    State(app): State<App>,
    PdfBody(body): PdfBody,
) -> ApiResult<axum::Json<crate::seal::verify::Report>> {
    Ok(axum::Json(seal::verify_bytes(&app, body).await?))
}
