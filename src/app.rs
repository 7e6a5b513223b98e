//! The service assembled from its configuration: one [`App`] holds the store, the key store, the
//! CA and the license service, and is shared by the HTTP server and the CLI.

use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::license::Licenses;
use crate::pki::{KeyStore, MasterKey, Pki};
use crate::store::Store;
use std::sync::Arc;

/// Everything a request or a command needs; cloning it is one reference-count increment
/// (axum clones the state for every request).
#[derive(Clone, Debug)]
pub struct App(Arc<Parts>);

impl std::ops::Deref for App {
    type Target = Parts;
    fn deref(&self) -> &Parts {
        &self.0
    }
}

/// What an [`App`] holds.
#[derive(Debug)]
pub struct Parts {
    pub config: Arc<Config>,
    pub store: Store,
    pub pki: Pki,
    pub licenses: Licenses,
    pub audit: crate::audit::Audit,
    /// Issuer facts for verification, shared by all requests of this node.
    pub issuers: Arc<crate::verify::IssuerCache>,
    /// Client-certificate revocations, shared by all requests of this node.
    pub revocations: Arc<crate::verify::clients::RevocationCache>,
    /// Keys the online show-code check trusts, shared by all requests of this node.
    pub show_code_trust: Arc<crate::present::TrustCache>,
    /// Issuer signatures that verified, so a license checked again skips the ECDSA check.
    pub signature_memo: crate::verify::memo::SignatureMemo,
    pub clock: SharedClock,
}

impl App {
    /// Opens the database (applying migrations) and the key store. With `create_master_key`,
    /// a missing master key file is created (first start); otherwise it must exist.
    pub async fn open(config: Config, create_master_key: bool) -> Result<App> {
        Self::open_with_clock(config, create_master_key, Arc::new(SystemClock)).await
    }

    pub async fn open_with_clock(
        config: Config,
        create_master_key: bool,
        clock: SharedClock,
    ) -> Result<App> {
        config.ensure_data_dir()?;
        let master = if create_master_key {
            MasterKey::load_or_create(&config.master_key_file)?
        } else {
            MasterKey::load(&config.master_key_file)?
        };
        let store = Store::connect(&config.database_url).await?;
        let keys = Arc::new(KeyStore::new(master, store.clone()));
        let pki = Pki::new(
            store.clone(),
            keys,
            clock.clone(),
            config.public_url.clone(),
        );
        let audit = crate::audit::Audit::start_with(
            store.clone(),
            pki.clone(),
            clock.clone(),
            std::time::Duration::from_secs(config.audit_checkpoint_seconds),
        );
        let licenses = Licenses::new(store.clone(), pki.clone(), clock.clone(), audit.clone());
        licenses.ensure_builtin_types().await?;
        Ok(App(Arc::new(Parts {
            signature_memo: crate::verify::memo::SignatureMemo::new(config.signature_memo_entries),
            config: Arc::new(config),
            store,
            pki,
            licenses,
            audit,
            issuers: Arc::new(crate::verify::IssuerCache::default()),
            revocations: Arc::new(crate::verify::clients::RevocationCache::default()),
            show_code_trust: Arc::new(crate::present::TrustCache::default()),
            clock,
        })))
    }

    /// Creates an API token, stores its hash, and returns the token (shown once).
    pub async fn create_token(&self, name: &str) -> Result<String> {
        use base64::Engine;
        use ring::rand::SecureRandom;
        let mut raw = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| Error::internal("random generator failed"))?;
        let token = format!(
            "elt_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
        );
        self.store
            .insert_token(&token_hash(&token), name, self.clock.unix())
            .await?;
        Ok(token)
    }
}

impl App {
    /// The TLS server certificate: the newest one, or a new one for the configured host names
    /// when there is none or it expires within 30 days.
    pub async fn server_certificate(&self) -> Result<crate::store::CertRow> {
        if let Some(c) = self.store.latest_certificate("server").await?
            && c.not_after > self.clock.unix() + 30 * 86_400
        {
            return Ok(c);
        }
        self.pki.issue_server_cert(&self.config.tls_hostnames).await
    }
}

/// What the database keeps of a token.
pub fn token_hash(token: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}
