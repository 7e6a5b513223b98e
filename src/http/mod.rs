//! HTTP: routes, authentication, the error mapping and the OpenAPI document.
//!
//! [`router`] builds the whole application from an [`App`] without binding a socket, so tests
//! drive it in process; [`serve`] binds and runs it.

pub mod admin;
pub mod auth;
pub mod error;
pub mod licenses;
pub mod openapi;

use crate::app::App;
use crate::error::Error;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use error::ApiError;

/// Builds the router.
pub fn router(app: App) -> Router {
    let body_limit = app.config.max_body_bytes;
    let import_limit = app.config.max_import_bytes;
    let protected = Router::new()
        .route("/v1/licenses", get(licenses::list).post(licenses::issue))
        .route(
            "/v1/licenses/{id}",
            get(licenses::show).patch(licenses::amend),
        )
        .route("/v1/licenses/{id}/status", post(licenses::set_status))
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
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(admin::healthz))
        .route("/openapi.json", get(openapi::document))
        .route("/v1/region", get(admin::region))
        .route("/v1/pki/root", get(admin::root_pem))
        .route("/v1/pki/crl", get(admin::crl))
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(on_panic))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(app)
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

/// Binds `listen` and serves until Ctrl-C or SIGTERM.
pub async fn serve(app: App, listen: &str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
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
