//! Mutual recognition between regions: signed trust lists, their import, and verification of
//! another region's licenses through that region's endpoint.
//!
//! A trust list (`ELT1:` + base64url COSE_Sign1 by the service signer, certificate in
//! `x5chain`) names the region, its root, its authorities with their certificates, its signer,
//! its CRL and its verification endpoint. Importing one requires the root's SHA-256, obtained
//! out of band (the regions' agreement), so a list cannot introduce its own trust anchor.

use crate::app::App;
use crate::error::{Error, Result};
use crate::license::record::Canonical;
use crate::store::ForeignRegionRow;
use base64::Engine;
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// Text form prefix of a trust list.
pub const PREFIX: &str = "ELT1:";
/// A trust list is valid for a week.
pub const VALID_SECONDS: i64 = 7 * 86_400;

fn b64(d: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(d)
}

/// This region's trust list, signed now.
pub async fn export(app: &App) -> Result<String> {
    let region = app.pki.region().await?;
    let root = app.pki.root().await?;
    let signer = app.pki.service_signer().await?;
    let mut authorities = Vec::new();
    for a in app.store.authorities().await? {
        if let Some(c) = app.store.certificate(&a.cert_serial).await? {
            authorities.push(
                json!({"credit_code": a.credit_code, "name": a.name, "certificate": b64(&c.der),
                                    "revoked_at": c.revoked_at}),
            );
        }
    }
    let now = app.clock.unix();
    let base = app.config.public_url.trim_end_matches('/');
    let payload = json!({
        "v": 1, "region": {"code": region.code, "name": region.name},
        "issued_at": now, "next_update": now + VALID_SECONDS,
        "root": b64(&root.der), "signers": [b64(&signer.der)], "authorities": authorities,
        "crl": format!("{base}/v1/pki/crl"),
        "verification_endpoint": app.config.public_tls_url.clone(),
    });
    let bytes = serde_json::to_vec(&Canonical(&payload)).map_err(Error::internal)?;
    let cose = super::receipt::sign_x5chain(&app.pki, &bytes).await?;
    Ok(format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(cose)
    ))
}

/// A trust list that verified.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TrustList {
    pub code: String,
    pub name: String,
    #[serde(skip)]
    pub root_der: Vec<u8>,
    pub authorities: Vec<String>,
    /// (credit code, certificate DER) of each authority.
    #[serde(skip)]
    pub authority_certs: Vec<(String, Vec<u8>)>,
    pub endpoint: Option<String>,
    pub issued_at: i64,
    pub next_update: i64,
}

fn bad(why: &str) -> Error {
    Error::BadTrustList {
        reason: why.to_string(),
    }
}

/// Decodes a trust list's text form; returns the COSE bytes and the root certificate it names
/// (not yet trusted: nothing is until its signature chains to a pinned root).
fn unpack(text: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    let b = text
        .trim()
        .strip_prefix(PREFIX)
        .ok_or_else(|| bad("does not start with ELT1:"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b)
        .map_err(|_| bad("not base64url"))?;
    let sign1 = <coset::CoseSign1 as coset::CborSerializable>::from_slice(&bytes)
        .map_err(|_| bad("not a COSE_Sign1 structure"))?;
    let root_der = sign1
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_slice::<Value>(p).ok())
        .and_then(|v| v.get("root").and_then(Value::as_str).map(String::from))
        .and_then(|r| base64::engine::general_purpose::STANDARD.decode(r).ok())
        .ok_or_else(|| bad("no root certificate"))?;
    Ok((bytes, root_der))
}

/// Checks the signature of an unpacked list against `root_der` and reads its contents.
fn read(bytes: &[u8], root_der: Vec<u8>) -> Result<TrustList> {
    let (payload, _) =
        super::receipt::open_x5chain(bytes, std::slice::from_ref(&root_der), "issued_at")
            .map_err(|e| bad(&e))?;
    let s = |p: &str| payload.pointer(p).and_then(Value::as_str).map(String::from);
    let i = |k: &str| payload.get(k).and_then(Value::as_i64).unwrap_or(0);
    let authority_certs: Vec<(String, Vec<u8>)> = payload
        .get("authorities")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| {
                    let code = x.get("credit_code")?.as_str()?.to_string();
                    let der = base64::engine::general_purpose::STANDARD
                        .decode(x.get("certificate")?.as_str()?)
                        .ok()?;
                    Some((code, der))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(TrustList {
        authorities: authority_certs.iter().map(|(c, _)| c.clone()).collect(),
        authority_certs,
        code: s("/region/code").ok_or_else(|| bad("no region code"))?,
        name: s("/region/name").unwrap_or_default(),
        root_der,
        endpoint: s("/verification_endpoint"),
        issued_at: i("issued_at"),
        next_update: i("next_update"),
    })
}

/// Checks a trust list against the pinned SHA-256 (hex) of its root.
pub fn open(text: &str, root_sha256: &str) -> Result<TrustList> {
    let (bytes, root_der) = unpack(text)?;
    let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, &root_der));
    if !digest.eq_ignore_ascii_case(root_sha256.trim()) {
        return Err(bad(&format!(
            "the root's SHA-256 is {digest}, not the pinned value"
        )));
    }
    read(&bytes, root_der)
}

/// Opens a trust list whose file is itself the trust anchor (an officer's configured list):
/// the root inside it is trusted as given, and the signature must still chain to it.
pub fn open_self_pinned(text: &str) -> Result<TrustList> {
    let (bytes, root_der) = unpack(text)?;
    read(&bytes, root_der)
}

/// Imports another region's trust list, optionally with the client certificate and key that
/// region issued us for calling its verification endpoint (the key is sealed in our key store).
pub async fn import(
    app: &App,
    text: &str,
    root_sha256: &str,
    client: Option<(&[u8], &[u8])>,
) -> Result<TrustList> {
    let tl = open(text, root_sha256)?;
    let now = app.clock.unix();
    if tl.next_update < now {
        return Err(Error::BadTrustList {
            reason: "the trust list is out of date".into(),
        });
    }
    if tl.code == app.pki.region().await?.code {
        return Err(Error::BadTrustList {
            reason: "this is our own region".into(),
        });
    }
    let (client_cert, key) = match client {
        Some((cert, pkcs8)) => {
            let (row, _) = app.pki.keys().import_pkcs8(pkcs8, now)?;
            (Some(cert.to_vec()), Some(row))
        }
        None => (None, None),
    };
    let row = ForeignRegionRow {
        code: tl.code.clone(),
        name: tl.name.clone(),
        root_der: tl.root_der.clone(),
        trust_list: text.trim().to_string(),
        authorities: serde_json::to_string(&tl.authorities).unwrap_or_default(),
        endpoint: tl.endpoint.clone(),
        client_cert,
        client_key_id: key.as_ref().map(|k| k.id.clone()),
        issued_at: tl.issued_at,
        next_update: tl.next_update,
        imported_at: now,
    };
    app.store.upsert_foreign_region(&row, key.as_ref()).await?;
    app.audit
        .append(crate::audit::Entry::new(
            "operator",
            "region.import",
            &tl.code,
            json!({"root_sha256": root_sha256, "authorities": tl.authorities, "endpoint": tl.endpoint}),
        ))
        .await?;
    Ok(tl)
}

/// The foreign region whose authority issued `issuer_code`, if any.
pub async fn region_of_issuer(app: &App, issuer_code: &str) -> Result<Option<ForeignRegionRow>> {
    Ok(app.store.foreign_regions().await?.into_iter().find(|r| {
        serde_json::from_str::<Vec<String>>(&r.authorities)
            .unwrap_or_default()
            .iter()
            .any(|a| a == issuer_code)
    }))
}

/// Every trusted root: ours and those of imported regions (for receipts).
pub async fn trusted_roots(app: &App) -> Result<Vec<Vec<u8>>> {
    let mut roots = vec![app.pki.root().await?.der];
    roots.extend(
        app.store
            .foreign_regions()
            .await?
            .into_iter()
            .map(|r| r.root_der),
    );
    Ok(roots)
}

/// Accepts any server certificate for a transport whose content carries its own signature (a
/// trust list, checked against a pinned root); the handshake signature is still verified, so
/// the connection is with whoever holds that certificate's key.
#[derive(Debug)]
struct SignedContentOnly(rustls::crypto::WebPkiSupportedAlgorithms);

impl Default for SignedContentOnly {
    fn default() -> Self {
        SignedContentOnly(
            rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }
}

impl rustls::client::danger::ServerCertVerifier for SignedContentOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// Fetches a trust list from an `https://` URL (another region's HTTPS listener, which serves it
/// without a client certificate) or an `http://` one. The list is signed, so the transport needs
/// no protection of its own: the server certificate is not judged (the other region's root is
/// not known yet), the pinned root decides. At most 1 MiB, 10 seconds.
pub async fn fetch(url: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bad = |why: String| Error::BadTrustList { reason: why };
    let (tls, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        _ => {
            return Err(bad(
                "only https:// and http:// URLs are fetched; give a file otherwise".into(),
            ));
        }
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, format!("/{p}")),
        None => (rest, "/".to_string()),
    };
    let (host, addr) = match authority.rsplit_once(':') {
        Some((h, _)) if !authority.ends_with(']') => (h, authority.to_string()),
        _ => (
            authority,
            format!("{authority}:{}", if tls { 443 } else { 80 }),
        ),
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    let io = async {
        let mut tcp = tokio::net::TcpStream::connect(&addr).await?;
        let mut out = Vec::new();
        if tls {
            let name = rustls_pki_types::ServerName::try_from(host)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SignedContentOnly::default()))
            .with_no_client_auth();
            let mut s = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await?;
            s.write_all(req.as_bytes()).await?;
            // A server may close without close_notify; what was read is judged by the pin.
            match (&mut s).take(1 << 20).read_to_end(&mut out).await {
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
                other => {
                    other?;
                }
            }
        } else {
            tcp.write_all(req.as_bytes()).await?;
            (&mut tcp).take(1 << 20).read_to_end(&mut out).await?;
        }
        Ok::<_, std::io::Error>(out)
    };
    let out = tokio::time::timeout(std::time::Duration::from_secs(10), io)
        .await
        .map_err(|_| bad(format!("{url} timed out")))?
        .map_err(|e| bad(format!("{url}: {e}")))?;
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("malformed HTTP response".into()))?;
    if head.split(' ').nth(1) != Some("200") {
        return Err(bad(format!(
            "{url} answered {}",
            head.lines().next().unwrap_or("")
        )));
    }
    Ok(body.trim().to_string())
}
