//! HTTP: routes, authentication, the error mapping and the OpenAPI document.
//!
//! [`router`] builds the whole application from an [`App`] without binding a socket, so tests
//! drive it in process; [`serve`] binds and runs it.

pub mod admin;
pub mod auth;
pub mod error;
pub mod holder;
pub mod licenses;
pub mod openapi;
pub mod seals;
pub mod tls;
pub mod verify;

use crate::app::App;
use crate::error::Error;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use error::ApiError;

/// The routes every listener serves (public pages and the operator API).
fn routes(app: &App) -> Router<App> {
    let import_limit = app.config.max_import_bytes;
    let pdf_limit = app.config.max_pdf_bytes;
    let protected = Router::new()
        .route("/v1/licenses", get(licenses::list).post(licenses::issue))
        .route(
            "/v1/licenses/{id}",
            get(licenses::show).patch(licenses::amend),
        )
        .route("/v1/licenses/{id}/status", post(licenses::set_status))
        .route("/v1/licenses/{id}/pdf", get(licenses::pdf))
        .route(
            "/v1/imports",
            post(licenses::import).layer(DefaultBodyLimit::max(import_limit)),
        )
        .route(
            "/v1/authorities",
            get(admin::authorities).post(admin::add_authority),
        )
        .route("/v1/authorities/{code}", get(admin::authority))
        .route(
            "/v1/authorities/{code}/certificate/revoke",
            post(admin::revoke_authority_cert),
        )
        .route("/v1/types", get(admin::types).post(admin::add_type))
        .route("/v1/types/{code}", get(admin::license_type))
        .route(
            "/v1/clients",
            get(verify::list_clients).post(verify::add_client),
        )
        .route("/v1/clients/{id}/revoke", post(verify::revoke_client))
        .route("/v1/seals", get(seals::list).post(seals::add))
        .route("/v1/seals/{id}/status", post(seals::set_status))
        .route(
            "/v1/seals/{id}/sign",
            post(seals::sign).layer(DefaultBodyLimit::max(pdf_limit)),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::require_token,
        ));
    let holder = Router::new()
        .route("/v1/holder/licenses", get(holder::licenses))
        .route(
            "/v1/holder/grants",
            get(holder::list_grants).post(holder::create_grant),
        )
        .route(
            "/v1/holder/grants/{id}",
            axum::routing::delete(holder::withdraw_grant),
        )
        .route("/v1/holder/accesses", get(holder::accesses))
        .route("/v1/holder/show-codes", post(holder::show_code))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            holder::require_holder,
        ));
    Router::new()
        .route("/healthz", get(admin::healthz))
        .route("/v1/holder/sessions", post(holder::dev_sign_in))
        .route("/v1/receipts/verify", post(verify::verify_receipt))
        .merge(holder)
        .route("/openapi.json", get(openapi::document))
        .route("/v1/region", get(admin::region))
        .route("/v1/pki/root", get(admin::root_pem))
        .route("/v1/pki/service-signer", get(admin::service_signer_pem))
        .route("/v1/pki/crl", get(admin::crl))
        .route("/v1/pki/client-ca", get(admin::client_ca_pem))
        .route("/v1/pki/client-ca/{serial}/crl", get(admin::client_ca_crl))
        .route("/v1/trust-list", get(admin::trust_list))
        .route("/v1/status-list", get(admin::status_list))
        .route(
            "/v1/show-codes/verify-image",
            post(admin::verify_show_code_image),
        )
        .route("/wallet", get(crate::web::wallet))
        .route("/check", get(crate::web::check))
        .route("/v1/show-codes/verify", post(admin::verify_show_code))
        .route("/tsa", post(seals::tsa))
        .route(
            "/v1/seals/verify",
            post(seals::verify).layer(DefaultBodyLimit::max(pdf_limit)),
        )
        .merge(protected)
}

/// Fallbacks, limits, panic and trace layers, and the state.
fn finish(app: App, routes: Router<App>) -> Router {
    let body_limit = app.config.max_body_bytes;
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(on_panic))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(app)
}

/// The router of the plain-HTTP listener: no verification routes (they need mutual TLS).
pub fn router(app: App) -> Router {
    // The verification route exists here only to say where it is served (MTLS-0001), so a
    // caller on the wrong listener gets a clear answer instead of a 404.
    let r = routes(&app).route("/v1/verifications", post(needs_mutual_tls));
    finish(app, r)
}

async fn needs_mutual_tls() -> ApiError {
    ApiError(Error::ClientCertMissing)
}

/// The router of the HTTPS listener: everything, plus the mutual-TLS verification routes.
pub fn tls_router(app: App) -> Router {
    let mtls = Router::new()
        .route("/v1/verifications", post(verify::verify))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            verify::require_client,
        ));
    let r = routes(&app).merge(mtls);
    finish(app, r)
}

async fn not_found() -> ApiError {
    ApiError(Error::RouteNotFound)
}

async fn method_not_allowed() -> ApiError {
    ApiError(Error::MethodNotAllowed)
}

fn on_panic(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    ApiError(Error::internal("handler panicked")).into_response()
}

/// Refuses a plain-HTTP address that is not loopback: plain HTTP is for local use (a reverse
/// proxy or tooling on the same machine). Holder sessions, operator tokens and the public pages
/// reach other machines only through the HTTPS listener, which serves every route.
pub async fn check_plain_listen(listen: &str) -> crate::error::Result<()> {
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host(listen)
        .await
        .map_err(|e| Error::bad_request(format!("listen address {listen}: {e}")))?
        .collect();
    match addrs.iter().find(|a| !a.ip().is_loopback()) {
        None if !addrs.is_empty() => Ok(()),
        _ => Err(Error::bad_request(format!(
            "the plain-HTTP listener binds loopback only (127.0.0.1, ::1, localhost); {listen} is \
             not: serve other machines through --tls-listen, which serves every route"
        ))),
    }
}

/// Serves plain HTTP on `listen` (loopback only) and, when given, HTTPS with mutual TLS on
/// `tls_listen`, until Ctrl-C or SIGTERM.
pub async fn serve(app: App, listen: &str, tls_listen: Option<&str>) -> anyhow::Result<()> {
    check_plain_listen(listen)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", e.code()))?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "listening (HTTP)");
    let plain =
        axum::serve(listener, router(app.clone())).with_graceful_shutdown(shutdown_signal());
    match tls_listen {
        None => plain.await?,
        Some(addr) => {
            let tls = bind_tls(&app, addr).await?;
            tracing::info!(addr = %axum::serve::Listener::local_addr(&tls)?.remote, "listening (HTTPS, mutual TLS)");
            let secure = axum::serve(
                tls,
                tls_router(app).into_make_service_with_connect_info::<tls::TlsPeer>(),
            )
            .with_graceful_shutdown(shutdown_signal());
            let (a, b) = tokio::join!(plain.into_future(), secure.into_future());
            a?;
            b?;
        }
    }
    Ok(())
}

/// Binds the HTTPS listener with the region's current server certificate.
pub async fn bind_tls(app: &App, addr: &str) -> anyhow::Result<tls::TlsListener> {
    let cert = app.server_certificate().await?;
    let root = app.pki.root().await?;
    let client_ca = app.pki.client_ca().await?;
    let key = app.pki.keys().signer(cert.key()?).await?;
    let config = tls::server_config(&cert.der, &root.der, &client_ca.der, key)?;
    Ok(tls::bind(addr, std::sync::Arc::new(config)).await?)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

#[cfg(test)]
mod tests {
    use super::check_plain_listen;

    #[tokio::test]
    async fn the_plain_listener_binds_loopback_only() {
        for ok in ["127.0.0.1:8080", "127.0.0.1:0", "[::1]:0", "localhost:0"] {
            assert!(check_plain_listen(ok).await.is_ok(), "{ok}");
        }
        for bad in ["0.0.0.0:8080", "[::]:0", "192.0.2.1:80", "not an address"] {
            let e = check_plain_listen(bad).await.unwrap_err();
            assert_eq!(e.code(), "REQ-0001", "{bad}");
        }
    }
}
