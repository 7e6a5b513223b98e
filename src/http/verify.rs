//! Verification routes (mutual TLS only) and client registration (operator token).

use super::error::{ApiError, ApiResult, ErrorBody, Json, Path};
use super::tls::TlsPeer;
use crate::app::App;
use crate::verify::clients::{self, Client, ClientBundle, ClientView, NewClient};
use crate::verify::{Verification, VerifyRequest};
use axum::Extension;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

/// Middleware: the connection's client certificate must identify a registered client now.
pub async fn require_client(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<TlsPeer>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    match clients::authenticate(&app, peer.client_cert.as_deref(), &peer.auth).await {
        Ok(client) => {
            req.extensions_mut().insert(client);
            Ok(next.run(req).await)
        }
        Err(e) => {
            app.audit
                .append(crate::audit::Entry::new(
                    "unauthenticated",
                    "verification.refused",
                    req.uri().path(),
                    serde_json::json!({"code": e.code(), "reason": e.to_string(), "remote": peer.remote.to_string()}),
                ))
                .await?;
            Err(e.into())
        }
    }
}

#[utoipa::path(post, path = "/v1/verifications", tag = "verification", request_body = VerifyRequest,
    responses((status = 200, body = Verification),
              (status = 400, description = "malformed body (REQ-0001), license identifier (LIC-0001), or show code: not one, not authentic, expired (SHW-0001..0003)", body = ErrorBody),
              (status = 401, description = "no, untrusted, expired, revoked or unregistered client certificate (MTLS-0001..0005)", body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 503, description = "the issuing region could not be asked, or its answer disagreed with its receipt (TRL-0002); database unavailable (SYS-0503)", body = ErrorBody)),
    description = "Mutual TLS only: served on the HTTPS listener to clients with a certificate from `elicense client add`.")]
pub async fn verify(
    State(app): State<App>,
    Extension(client): Extension<Client>,
    Json(r): Json<VerifyRequest>,
) -> ApiResult<axum::Json<Verification>> {
    let subject = r
        .license_id
        .clone()
        .or_else(|| r.type_code.clone())
        .or_else(|| r.show_code.as_ref().map(|_| "show_code".to_string()))
        .unwrap_or_default();
    let (matter, case) = (r.matter_code.clone(), r.case_number.clone());
    match crate::verify::verify(&app, &client, r).await {
        Ok(v) => Ok(axum::Json(v)),
        Err(e) => {
            app.audit
                .append(crate::audit::Entry::new(
                    &client.id,
                    "verification.refused",
                    &subject,
                    serde_json::json!({"code": e.code(), "matter_code": matter, "case_number": case}),
                ))
                .await?;
            Err(e.into())
        }
    }
}

#[utoipa::path(post, path = "/v1/clients", tag = "verification", request_body = NewClient,
    responses((status = 201, description = "the client, its certificate and its private key (shown once)", body = ClientBundle),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_client(
    State(app): State<App>,
    Json(c): Json<NewClient>,
) -> ApiResult<(StatusCode, axum::Json<ClientBundle>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(clients::register(&app, c).await?),
    ))
}

#[utoipa::path(get, path = "/v1/clients", tag = "verification",
    responses((status = 200, body = Vec<ClientView>)), security(("bearer" = [])))]
pub async fn list_clients(State(app): State<App>) -> ApiResult<axum::Json<Vec<ClientView>>> {
    Ok(axum::Json(clients::list(&app).await?))
}

#[utoipa::path(post, path = "/v1/clients/{id}/revoke", tag = "verification",
    params(("id" = String, Path, description = "Client id")), request_body = super::admin::Revocation,
    responses((status = 200, body = ClientView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_client(
    State(app): State<App>,
    Path(id): Path<String>,
    Json(r): Json<super::admin::Revocation>,
) -> ApiResult<axum::Json<ClientView>> {
    Ok(axum::Json(clients::revoke(&app, &id, &r.reason).await?))
}

/// A receipt to check.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptCheck {
    /// `ELR2:...` (or `ELR1:...`) as returned in a verification answer.
    pub receipt: String,
}

#[utoipa::path(post, path = "/v1/receipts/verify", tag = "verification", request_body = ReceiptCheck,
    responses((status = 200, body = crate::verify::receipt::Checked),
              (status = 400, description = "not a valid receipt (RCP-0001)", body = ErrorBody)))]
pub async fn verify_receipt(
    State(app): State<App>,
    Json(r): Json<ReceiptCheck>,
) -> ApiResult<axum::Json<crate::verify::receipt::Checked>> {
    let roots = crate::verify::trust::trusted_roots(&app).await?;
    Ok(axum::Json(crate::verify::receipt::verify(
        &r.receipt, &roots,
    )?))
}
