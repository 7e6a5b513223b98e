//! Holders (持证主体) signing in, behind an identity-provider seam.
//!
//! A holder session is a random bearer token (only its SHA-256 is stored) bound to a holder
//! code, valid for [`SESSION_SECONDS`]. Today one provider creates sessions: the **development
//! provider**, which believes any holder code it is given — enabled only by
//! `dev_holder_login = true` in the configuration (or `serve --demo`), never in production. A
//! region's OpenID Connect provider plugs in at [`start_session`]: verify its ID token, map the
//! verified identity-number claim to the holder code, and start the same session.

use crate::app::{App, token_hash};
use crate::error::{Error, Result};
use crate::license::holder::Holder;
use serde::{Deserialize, Serialize};

/// Sessions last an hour.
pub const SESSION_SECONDS: i64 = 3600;

/// Development sign-in request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevSignIn {
    /// The holder code to act as (resident identity number or credit code).
    pub holder_code: String,
}

/// A holder session.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Session {
    /// Send as `Authorization: Bearer ...` to the holder routes.
    pub token: String,
    pub holder_code: String,
    pub expires_at: i64,
    /// Which provider vouched for the holder (`development` today).
    pub provider: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("holder_code", &self.holder_code)
            .finish_non_exhaustive()
    }
}

/// A signed-in holder, for the rest of the request.
#[derive(Debug, Clone)]
pub struct SignedIn(pub String);

/// Starts a session for a holder whose identity a provider has established.
pub async fn start_session(app: &App, holder_code: &str, provider: &str) -> Result<Session> {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut raw = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| Error::internal("random generator failed"))?;
    let token = format!(
        "elh_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let now = app.clock.unix();
    let expires_at = now + SESSION_SECONDS;
    app.store
        .insert_holder_session(&token_hash(&token), holder_code, expires_at, now)
        .await?;
    Ok(Session {
        token,
        holder_code: holder_code.to_string(),
        expires_at,
        provider: provider.to_string(),
    })
}

/// The development provider: enabled only by configuration.
pub async fn dev_sign_in(app: &App, req: DevSignIn) -> Result<Session> {
    if !app.config.dev_holder_login {
        return Err(Error::DevLoginDisabled);
    }
    let code_type = if req.holder_code.len() == 18
        && req.holder_code.bytes().take(17).all(|b| b.is_ascii_digit())
    {
        crate::license::holder::CODE_RESIDENT_ID
    } else {
        crate::license::holder::CODE_CREDIT
    };
    let errs = Holder {
        name: "-".into(),
        code: req.holder_code.clone(),
        code_type: code_type.into(),
    }
    .validate();
    if !errs.is_empty() {
        return Err(Error::InvalidFields { errors: errs });
    }
    start_session(app, &req.holder_code, "development").await
}

/// Resolves a holder bearer token.
pub async fn authenticate(app: &App, token: &str) -> Result<SignedIn> {
    app.store
        .holder_session(&token_hash(token), app.clock.unix())
        .await?
        .map(SignedIn)
        .ok_or_else(|| Error::Unauthenticated {
            reason: "the holder session is unknown or expired".into(),
        })
}
