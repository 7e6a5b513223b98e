//! Bearer-token authentication of operators and issuing systems.
//!
//! Tokens are random 256-bit values shown once at creation; only their SHA-256 is stored. The
//! name of the token is the actor recorded in each license's history.

use super::error::ApiError;
use crate::app::{App, token_hash};
use crate::error::Error;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// Who made a request (the token's name), for the history.
#[derive(Debug, Clone)]
pub struct Actor(pub String);

/// Middleware: requires a valid bearer token and records its name as the [`Actor`].
pub async fn require_token(
    State(app): State<App>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::Unauthenticated {
            reason: "an Authorization: Bearer token is required".into(),
        })?;
    let token = header
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 200)
        .ok_or_else(|| Error::Unauthenticated {
            reason: "the Authorization header must be `Bearer <token>`".into(),
        })?;
    let name = app
        .store
        .token_name(&token_hash(token))
        .await?
        .ok_or_else(|| Error::Unauthenticated {
            reason: "the token is unknown or revoked".into(),
        })?;
    req.extensions_mut().insert(Actor(name));
    Ok(next.run(req).await)
}
