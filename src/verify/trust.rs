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
    pub endpoint: Option<String>,
    pub issued_at: i64,
    pub next_update: i64,
}

/// Checks a trust list against the pinned SHA-256 (hex) of its root.
pub fn open(text: &str, root_sha256: &str) -> Result<TrustList> {
    let bad = |why: &str| Error::BadTrustList {
        reason: why.to_string(),
    };
    let b = text
        .trim()
        .strip_prefix(PREFIX)
        .ok_or_else(|| bad("does not start with ELT1:"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b)
        .map_err(|_| bad("not base64url"))?;
    // The root comes from the list itself but must match the pin before anything is trusted.
    let sign1 = <coset::CoseSign1 as coset::CborSerializable>::from_slice(&bytes)
        .map_err(|_| bad("not a COSE_Sign1 structure"))?;
    let unverified: Value = sign1
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_slice(p).ok())
        .ok_or_else(|| bad("payload is not JSON"))?;
    let root_der = unverified
        .get("root")
        .and_then(Value::as_str)
        .and_then(|r| base64::engine::general_purpose::STANDARD.decode(r).ok())
        .ok_or_else(|| bad("no root certificate"))?;
    let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, &root_der));
    if !digest.eq_ignore_ascii_case(root_sha256.trim()) {
        return Err(bad(&format!(
            "the root's SHA-256 is {digest}, not the pinned value"
        )));
    }
    let (payload, _) =
        super::receipt::open_x5chain(&bytes, std::slice::from_ref(&root_der), "issued_at")
            .map_err(|e| bad(&e))?;
    let s = |p: &str| payload.pointer(p).and_then(Value::as_str).map(String::from);
    let authorities = payload
        .get("authorities")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| {
                    x.get("credit_code")
                        .and_then(Value::as_str)
                        .map(String::from)
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(TrustList {
        code: s("/region/code").ok_or_else(|| bad("no region code"))?,
        name: s("/region/name").unwrap_or_default(),
        root_der,
        authorities,
        endpoint: s("/verification_endpoint"),
        issued_at: payload
            .get("issued_at")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        next_update: payload
            .get("next_update")
            .and_then(Value::as_i64)
            .unwrap_or(0),
    })
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
