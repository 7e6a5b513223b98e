//! License routes: issue, list, show, amend, change status, bulk import.

use super::auth::Actor;
use super::error::{ApiResult, ErrorBody, Json, Path, Query};
use crate::app::App;
use crate::error::{Error, FieldError};
use crate::license::service::{Amendment, LicenseDetail, LicenseView};
use crate::license::{IssueRequest, Status};
use crate::store::LicenseFilter;
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// Listing filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// License type code.
    #[serde(rename = "type")]
    pub type_code: Option<String>,
    /// Holder identity code.
    pub holder_code: Option<String>,
    /// Issuer credit code.
    pub issuer: Option<String>,
    /// Status name (`valid`, `suspended`, ...) or code (`01`...).
    pub status: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// Cursor: the `next` value of the previous page.
    pub after: Option<String>,
}

/// A page of licenses.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LicensePage {
    pub items: Vec<LicenseView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
}

#[utoipa::path(get, path = "/v1/licenses", tag = "licenses", params(ListQuery),
    responses((status = 200, body = LicensePage), (status = 400, body = ErrorBody), (status = 422, description = "a filter is out of range (e.g. limit)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(app): State<App>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<LicensePage>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Error::InvalidFields {
            errors: vec![FieldError::new("/limit", "must be 1 to 500")],
        }
        .into());
    }
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(
            Status::parse(s)
                .ok_or_else(|| Error::bad_request(format!("unknown status {s:?}")))?
                .code()
                .to_string(),
        ),
    };
    let filter = LicenseFilter {
        type_code: q.type_code,
        holder_code: q.holder_code,
        issuer: q.issuer,
        status,
        after: q.after,
        limit,
    };
    let items = app.licenses.list(&filter).await?;
    let next = if items.len() as i64 == limit {
        items.last().and_then(|l| {
            crate::license::id::LicenseId::parse(&l.id)
                .ok()
                .map(|i| i.lineage())
        })
    } else {
        None
    };
    Ok(axum::Json(LicensePage { items, next }))
}

#[utoipa::path(post, path = "/v1/licenses", tag = "licenses", request_body = IssueRequest,
    responses((status = 201, description = "issued", body = LicenseView),
              (status = 200, description = "the same request was issued before; nothing new issued", body = LicenseView),
              (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn issue(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    Json(req): Json<IssueRequest>,
) -> ApiResult<(StatusCode, axum::Json<LicenseView>)> {
    let (view, created) = app.licenses.issue(req, &actor.0).await?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, axum::Json(view)))
}

#[utoipa::path(get, path = "/v1/licenses/{id}", tag = "licenses",
    params(("id" = String, Path, description = "License identifier (any version)")),
    responses((status = 200, body = LicenseDetail), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<LicenseDetail>> {
    Ok(axum::Json(app.licenses.detail(&id).await?))
}

#[utoipa::path(get, path = "/v1/licenses/{id}/pdf", tag = "licenses",
    params(("id" = String, Path, description = "License identifier (any version)")),
    responses((status = 200, description = "The license face as a PDF, sealed (PAdES B-T) with the issuing authority's license seal", content_type = "application/pdf"),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn pdf(
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<impl axum::response::IntoResponse> {
    let pdf = crate::seal::sealed_license_pdf(&app, &id).await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/pdf")], pdf))
}

/// A status change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    /// `valid` (reinstate), `suspended`, `withdrawn`, `cancelled` or `revoked`.
    pub status: Status,
    pub reason: String,
}

#[utoipa::path(post, path = "/v1/licenses/{id}/status", tag = "licenses",
    params(("id" = String, Path, description = "License identifier (current version)")),
    request_body = StatusChange,
    responses((status = 200, body = LicenseView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_status(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Json(c): Json<StatusChange>,
) -> ApiResult<axum::Json<LicenseView>> {
    Ok(axum::Json(
        app.licenses
            .set_status(&id, c.status, &c.reason, &actor.0)
            .await?,
    ))
}

#[utoipa::path(patch, path = "/v1/licenses/{id}", tag = "licenses",
    params(("id" = String, Path, description = "License identifier (current version)")),
    request_body = Amendment,
    responses((status = 200, description = "the new version", body = LicenseView),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn amend(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Json(a): Json<Amendment>,
) -> ApiResult<axum::Json<LicenseView>> {
    Ok(axum::Json(app.licenses.amend(&id, a, &actor.0).await?))
}

/// The result of a bulk import.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportResult {
    pub file_hash: String,
    pub lines: u64,
    /// Issued from this file over all runs.
    pub issued: u64,
    /// Issued by this request.
    pub issued_this_run: u64,
    pub skipped: u64,
    pub failed: u64,
    pub already_complete: bool,
    /// The first 1,000 bad lines: `{line, code, message, details}`.
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<crate::license::import::LineError>,
}

#[derive(Default)]
struct Collect(Vec<crate::license::import::LineError>);

impl crate::license::import::ImportObserver for Collect {
    fn bad_line(&mut self, e: &crate::license::import::LineError) {
        if self.0.len() < 1000 {
            self.0.push(e.clone());
        }
    }
}

#[utoipa::path(post, path = "/v1/imports", tag = "licenses",
    request_body(content = String, content_type = "application/x-ndjson", description = "One license request (as for POST /v1/licenses) per line"),
    responses((status = 200, body = ImportResult), (status = 413, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn import(
    State(app): State<App>,
    Extension(actor): Extension<Actor>,
    body: axum::body::Bytes,
) -> ApiResult<axum::Json<ImportResult>> {
    use std::io::Write;
    // Keep the upload as a file: the import is resumable by file content.
    let mut tmp = tempfile::NamedTempFile::new_in(&app.config.data_dir)
        .map_err(|e| Error::internal(format!("temporary file: {e}")))?;
    tmp.write_all(&body)
        .map_err(|e| Error::internal(format!("temporary file: {e}")))?;
    let opts = crate::license::import::ImportOptions {
        actor: actor.0,
        ..Default::default()
    };
    let mut obs = Collect::default();
    let s = crate::license::import::import_file(&app.licenses, tmp.path(), &opts, &mut obs).await?;
    Ok(axum::Json(ImportResult {
        file_hash: s.file_hash,
        lines: s.lines,
        issued: s.issued,
        issued_this_run: s.issued_this_run,
        skipped: s.skipped,
        failed: s.failed,
        already_complete: s.already_complete,
        errors: obs.0,
    }))
}
