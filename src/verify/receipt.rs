//! Signed verification receipts.
//!
//! A case-handling system keeps the receipt in its case file as proof of what it was told:
//! license and version, status as of the check, which fields were released (as SHA-256 hashes of
//! their canonical values, so the receipt itself holds no personal data), client, matter, case
//! number, time, and the audit entry. It is a COSE_Sign1 (ES256) by the service signer, whose
//! certificate travels in the `x5chain` header: anyone with the region root verifies it offline.

use crate::error::{Error, Result};
use crate::license::record::Canonical;
use crate::pki::{Pki, Signer, cert_kid};
use base64::Engine;
use coset::{CborSerializable, CoseSign1, CoseSign1Builder, HeaderBuilder, iana};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// Text form prefix of a receipt (base64url of the COSE_Sign1 follows).
pub const PREFIX: &str = "ELR1:";

/// What a receipt states.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub region: &'a str,
    pub license_id: &'a str,
    pub license_version: i64,
    pub status_code: &'a str,
    pub authentic: bool,
    pub fields: &'a Map<String, Value>,
    pub basis: &'a str,
    pub client: &'a str,
    pub matter_code: &'a str,
    pub case_number: &'a str,
    pub verified_at: i64,
    pub audit_seq: i64,
}

fn field_hash(v: &Value) -> String {
    let text = serde_json::to_string(&Canonical(v)).unwrap_or_default();
    hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()))
}

/// Signs a receipt; returns its text form.
pub async fn issue(pki: &Pki, f: &Facts<'_>) -> Result<String> {
    let released: Map<String, Value> = f
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(field_hash(v))))
        .collect();
    let payload = json!({
        "v": 1, "region": f.region, "license_id": f.license_id, "license_version": f.license_version,
        "status": f.status_code, "status_as_of": f.verified_at, "authentic": f.authentic,
        "fields_sha256": released, "basis": f.basis, "client": f.client,
        "matter_code": f.matter_code, "case_number": f.case_number,
        "verified_at": f.verified_at, "audit_seq": f.audit_seq,
    });
    let payload = serde_json::to_vec(&Canonical(&payload)).map_err(Error::internal)?;
    let bytes = sign_x5chain(pki, &payload).await?;
    Ok(format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// Signs JSON `payload` as a COSE_Sign1 (ES256) with the service signer, whose certificate goes
/// in the `x5chain` header. Used for receipts and trust lists.
pub async fn sign_x5chain(pki: &Pki, payload: &[u8]) -> Result<Vec<u8>> {
    let signer_cert = pki.service_signer().await?;
    let key = pki.keys().signer(signer_cert.key()?).await?;
    let protected = HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES256)
        .key_id(cert_kid(&signer_cert.der).to_vec())
        .content_format(iana::CoapContentFormat::Json)
        .build();
    let unprotected = HeaderBuilder::new()
        .value(
            iana::HeaderParameter::X5Chain as i64,
            ciborium::Value::Bytes(signer_cert.der.clone()),
        )
        .build();
    let mut err = None;
    let sign1 = CoseSign1Builder::new()
        .protected(protected)
        .unprotected(unprotected)
        .payload(payload.to_vec())
        .create_signature(b"", |tbs| match key.sign_fixed(tbs) {
            Ok(s) => s,
            Err(e) => {
                err = Some(e);
                Vec::new()
            }
        })
        .build();
    if let Some(e) = err {
        return Err(e);
    }
    sign1
        .to_vec()
        .map_err(|e| Error::internal(format!("COSE: {e}")))
}

/// A receipt that verified.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Checked {
    /// The receipt's statements.
    #[schema(value_type = Object)]
    pub payload: Value,
    /// Subject of the certificate that signed it.
    pub signer: String,
}

/// Verifies a receipt against trusted roots (DER), offline: the signer certificate must chain
/// to one of them for document signing at the receipt's time, and the signature must hold.
pub fn verify(text: &str, roots: &[Vec<u8>]) -> Result<Checked> {
    let bad = |why: &str| Error::BadReceipt {
        reason: why.to_string(),
    };
    let b64 = text
        .trim()
        .strip_prefix(PREFIX)
        .ok_or_else(|| bad("does not start with ELR1:"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| bad("not base64url"))?;
    let (payload, signer) = open_x5chain(&bytes, roots, "verified_at").map_err(|e| bad(&e))?;
    Ok(Checked { payload, signer })
}

/// Opens a COSE_Sign1 made by [`sign_x5chain`]: checks the signature with the certificate in
/// `x5chain`, and that certificate's chain to one of `roots` for document signing at the time in
/// the payload's `time_field`. Returns the payload and the signer's subject; errors in words.
pub fn open_x5chain(
    bytes: &[u8],
    roots: &[Vec<u8>],
    time_field: &str,
) -> std::result::Result<(Value, String), String> {
    let sign1 =
        CoseSign1::from_slice(bytes).map_err(|_| "not a COSE_Sign1 structure".to_string())?;
    if sign1.protected.header.alg
        != Some(coset::RegisteredLabelWithPrivate::Assigned(
            iana::Algorithm::ES256,
        ))
    {
        return Err("algorithm is not ES256".into());
    }
    let cert_der = sign1
        .unprotected
        .rest
        .iter()
        .find(|(l, _)| *l == coset::Label::Int(iana::HeaderParameter::X5Chain as i64))
        .and_then(|(_, v)| v.as_bytes().cloned())
        .ok_or("no signer certificate (x5chain)")?;
    if sign1.protected.header.key_id != cert_kid(&cert_der) {
        return Err("the key id does not match the signer certificate".into());
    }
    let payload_bytes = sign1.payload.clone().ok_or("no payload")?;
    let payload: Value =
        serde_json::from_slice(&payload_bytes).map_err(|_| "payload is not JSON")?;
    let at = payload
        .get(time_field)
        .and_then(Value::as_i64)
        .ok_or("no time in the payload")?;
    let (_, cert) = x509_parser::parse_x509_certificate(&cert_der)
        .map_err(|_| "signer certificate unparsable")?;
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        cert.public_key().subject_public_key.data.to_vec(),
    );
    sign1
        .verify_signature(b"", |sig, tbs| key.verify(tbs, sig))
        .map_err(|_| "the signature does not verify")?;
    use crate::pki::path;
    let checked = path::validate(&path::Request::new(
        &cert_der,
        roots,
        at,
        path::Usage::Required(&crate::pki::ca::EKU_DOCUMENT_SIGNING_DER),
    ));
    if let Err(path::PathError::Malformed(_)) = checked {
        return Err("signer certificate unparsable".into());
    }
    if checked.is_err() {
        return Err("the signer certificate does not chain to a trusted root".into());
    }
    Ok((payload, cert.subject().to_string()))
}
