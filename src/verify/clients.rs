//! Case-handling systems as clients: registration, client certificates, and authentication of
//! the certificate a TLS connection presented.
//!
//! The TLS layer accepts any client certificate whose holder proves possession of its key; the
//! decision is made here, per request, so that each refusal gets its own error code and a
//! revocation takes effect on the next request without a restart.

use crate::app::App;
use crate::error::{Error, FieldError, Result};
use crate::pki::path;
use crate::store::ClientRow;
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

/// A registration request.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    /// Short identifier: lower-case letters, digits and `-`, 3 to 40 characters.
    pub id: String,
    pub name: String,
    pub department: String,
    /// License types it may verify.
    pub types: Vec<String>,
    /// Face fields it may see (`*` for all), when a holder grant or its statutory basis allows.
    pub fields: Vec<String>,
    /// May see fields without a holder grant (enforcement); every such access is labelled.
    #[serde(default)]
    pub statutory: bool,
    /// Certificate validity in days (default 365).
    #[serde(default)]
    pub days: Option<i64>,
}

/// A registered client as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClientView {
    pub id: String,
    pub name: String,
    pub department: String,
    pub types: Vec<String>,
    pub fields: Vec<String>,
    pub statutory: bool,
    pub certificate_serial: String,
    pub certificate_revoked: bool,
}

/// A new client with its certificate and key, handed over once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ClientBundle {
    pub client: ClientView,
    /// The client certificate (PEM).
    pub certificate: String,
    /// The client's private key (PKCS#8 PEM). Not kept by the service: store it now.
    pub private_key: String,
    /// The region's client CA that issued the certificate (PEM); a TLS client may send it
    /// after its certificate, the service does not need it to.
    pub client_ca_certificate: String,
    /// The region root, to verify the service's TLS certificate.
    pub root_certificate: String,
}

impl std::fmt::Debug for ClientBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBundle")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// An authenticated client, for the rest of the request.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub types: Vec<String>,
    pub fields: Vec<String>,
    pub statutory: bool,
    pub cert_serial: String,
}

impl Client {
    pub fn may_see(&self, field: &str) -> bool {
        self.fields.iter().any(|f| f == "*" || f == field)
    }
}

fn parse_list(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

fn view(row: &ClientRow, revoked: bool) -> ClientView {
    ClientView {
        id: row.id.clone(),
        name: row.name.clone(),
        department: row.department.clone(),
        types: parse_list(&row.types),
        fields: parse_list(&row.fields),
        statutory: row.statutory != 0,
        certificate_serial: row.cert_serial.clone(),
        certificate_revoked: revoked,
    }
}

/// Registers a client and issues its certificate.
pub async fn register(app: &App, c: NewClient) -> Result<ClientBundle> {
    let mut errs = Vec::new();
    let id_ok = (3..=40).contains(&c.id.len())
        && c.id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !id_ok {
        errs.push(FieldError::new(
            "/id",
            "3 to 40 lower-case letters, digits or -",
        ));
    }
    for (path, v) in [("/name", &c.name), ("/department", &c.department)] {
        if v.trim().is_empty() || v.chars().count() > 100 {
            errs.push(FieldError::new(path, "must be 1 to 100 characters"));
        }
    }
    if c.types.is_empty() {
        errs.push(FieldError::new("/types", "at least one license type"));
    }
    if !errs.is_empty() {
        return Err(Error::InvalidFields { errors: errs });
    }
    for t in &c.types {
        app.licenses.license_type(t).await?;
    }
    if app.store.client(&c.id).await?.is_some() {
        return Err(Error::AlreadyExists {
            what: format!("client {}", c.id),
        });
    }
    let (cert, key) = app
        .pki
        .issue_client_cert(&c.id, &c.name, c.days.unwrap_or(365))
        .await?;
    let client_ca = app
        .pki
        .client_cas()
        .await?
        .into_iter()
        .find(|ca| crate::pki::ca::issued_by(&cert.der, &ca.der))
        .ok_or_else(|| Error::internal("the client CA that issued the certificate is missing"))?;
    let row = ClientRow {
        id: c.id,
        name: c.name,
        department: c.department,
        types: serde_json::to_string(&c.types).unwrap_or_default(),
        fields: serde_json::to_string(&c.fields).unwrap_or_default(),
        statutory: i64::from(c.statutory),
        cert_serial: cert.serial.clone(),
        created_at: app.clock.unix(),
    };
    app.store.insert_client(&row).await?;
    app.audit
        .append(crate::audit::Entry::new(
            "operator",
            "client.add",
            &row.id,
            serde_json::json!({"certificate": row.cert_serial, "types": row.types, "fields": row.fields, "statutory": row.statutory != 0}),
        ))
        .await?;
    Ok(ClientBundle {
        client: view(&row, false),
        certificate: crate::pki::pem("CERTIFICATE", &cert.der),
        private_key: key.to_string(),
        client_ca_certificate: crate::pki::pem("CERTIFICATE", &client_ca.der),
        root_certificate: crate::pki::pem("CERTIFICATE", &app.pki.root().await?.der),
    })
}

/// Lists clients.
pub async fn list(app: &App) -> Result<Vec<ClientView>> {
    let mut out = Vec::new();
    for row in app.store.clients().await? {
        let revoked = app
            .store
            .certificate(&row.cert_serial)
            .await?
            .is_none_or(|c| c.revoked_at.is_some());
        out.push(view(&row, revoked));
    }
    Ok(out)
}

/// Revokes a client's certificate (a new CRL lists it; the next request is refused).
pub async fn revoke(app: &App, id: &str, reason: &str) -> Result<ClientView> {
    let row = app
        .store
        .client(id)
        .await?
        .ok_or_else(|| Error::bad_request(format!("no client {id}")))?;
    app.pki.revoke(&row.cert_serial, reason).await?;
    app.revocations.mark_revoked(&row.cert_serial);
    app.audit
        .append(crate::audit::Entry::new(
            "operator",
            "client.revoke",
            &row.id,
            serde_json::json!({"certificate": row.cert_serial, "reason": reason}),
        ))
        .await?;
    Ok(view(&row, true))
}

/// What one connection's certificate was found to be: the chain check and the registration
/// lookup are done once per connection; validity and revocation are checked on every request.
pub type ConnectionAuth = std::sync::Arc<std::sync::OnceLock<(Client, i64)>>;

/// Decides whether the certificate a connection presented identifies a registered client now.
pub async fn authenticate(
    app: &App,
    cert: Option<&CertificateDer<'static>>,
    cache: &ConnectionAuth,
) -> Result<Client> {
    if let Some((client, not_after)) = cache.get() {
        let serial = client.cert_serial.clone();
        if app.revocations.is_revoked(app, &serial).await? {
            return Err(Error::ClientCertRevoked { serial });
        }
        if app.clock.unix() > *not_after {
            return Err(Error::ClientCertExpired { serial });
        }
        return Ok(client.clone());
    }
    let client = authenticate_fully(app, cert).await?;
    let not_after = app
        .store
        .certificate(&client.cert_serial)
        .await?
        .map(|c| c.not_after)
        .unwrap_or(0);
    let _ = cache.set((client.clone(), not_after));
    Ok(client)
}

async fn authenticate_fully(app: &App, cert: Option<&CertificateDer<'static>>) -> Result<Client> {
    let cert = cert.ok_or(Error::ClientCertMissing)?;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|_| {
        Error::ClientCertUntrusted {
            reason: "not a valid X.509 certificate".into(),
        }
    })?;
    let serial = hex::encode(parsed.raw_serial());
    // Revocation first: a revoked certificate is refused as revoked even once it has expired.
    let stored = app.store.certificate(&serial).await?;
    if let Some(s) = &stored
        && s.der == cert.as_ref()
        && s.revoked_at.is_some()
    {
        return Err(Error::ClientCertRevoked { serial });
    }
    // The path must run through one of the region's unrevoked client CAs: a certificate the
    // root issued directly (a seal's, the server's, one from before the client CA) is no
    // client certificate, whatever its key usage says.
    let root = app.pki.root().await?;
    let anchors = [root.der.clone()];
    let client_cas: Vec<Vec<u8>> = app
        .pki
        .client_cas()
        .await?
        .into_iter()
        .map(|c| c.der)
        .collect();
    let mut request = path::Request::new(
        cert.as_ref(),
        &anchors,
        app.clock.unix(),
        path::Usage::ClientAuth,
    );
    request.intermediates = &client_cas;
    match path::validate(&request) {
        Ok(p) if p.intermediates.len() == 1 => {}
        Ok(_) => {
            return Err(Error::ClientCertUntrusted {
                reason: "was not issued by this region's client CA".into(),
            });
        }
        Err(path::PathError::Expired) | Err(path::PathError::NotYetValid) => {
            return Err(Error::ClientCertExpired { serial });
        }
        Err(path::PathError::Malformed(_)) => {
            return Err(Error::ClientCertUntrusted {
                reason: "not a valid X.509 certificate".into(),
            });
        }
        Err(e) => {
            return Err(Error::ClientCertUntrusted {
                reason: format!("does not chain to this region's client CA for client use: {e}"),
            });
        }
    }
    let row = match (&stored, app.store.client_by_cert(&serial).await?) {
        (Some(s), Some(row)) if s.der == cert.as_ref() => row,
        _ => return Err(Error::UnknownClient { id: serial }),
    };
    Ok(Client {
        types: parse_list(&row.types),
        fields: parse_list(&row.fields),
        statutory: row.statutory != 0,
        id: row.id,
        name: row.name,
        cert_serial: serial,
    })
}

/// Client-certificate revocation as this node knows it: a revocation made on this node applies
/// at once; one made on another node of the same database applies within [`REVOCATION_TTL`].
#[derive(Debug, Default)]
pub struct RevocationCache(
    std::sync::RwLock<std::collections::HashMap<String, (std::time::Instant, bool)>>,
);

/// How long a "not revoked" answer from the database is reused.
pub const REVOCATION_TTL: std::time::Duration = std::time::Duration::from_secs(1);

impl RevocationCache {
    pub async fn is_revoked(&self, app: &App, serial: &str) -> Result<bool> {
        if let Some((at, revoked)) = self.0.read().ok().and_then(|m| m.get(serial).copied())
            && (revoked || at.elapsed() < REVOCATION_TTL)
        {
            return Ok(revoked);
        }
        let revoked = app
            .store
            .certificate(serial)
            .await?
            .is_none_or(|c| c.revoked_at.is_some());
        if let Ok(mut m) = self.0.write() {
            m.insert(serial.to_string(), (std::time::Instant::now(), revoked));
        }
        Ok(revoked)
    }

    pub fn mark_revoked(&self, serial: &str) {
        if let Ok(mut m) = self.0.write() {
            m.insert(serial.to_string(), (std::time::Instant::now(), true));
        }
    }
}
