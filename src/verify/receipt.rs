//! Signed verification receipts.
//!
//! A case-handling system keeps the receipt in its case file as proof of what it was told:
//! license and version, status as of the check, which fields were released (as SHA-256 hashes of
//! their canonical values, so the receipt itself holds no personal data), client, matter, case
//! number, time, and the audit entry.
//!
//! A receipt is `ELR2:` + base64url(the statements, canonical JSON) + `.` + base64url(a COSE
//! Receipt of RFC 9942): a COSE_Sign1 (ES256) by the service signer, whose certificate travels
//! in the `x5chain` header, over the root of an RFC 9162 Merkle tree (verifiable data structure
//! `RFC9162_SHA256`, detached payload) with the inclusion proof of these statements in its
//! unprotected header. The receipts of one audit batch share one signature: once the batch has
//! committed, the audit writer hands their statements (which cite their entries) to a task that
//! signs the tree's root once and answers them all (`crate::audit::Audit::append_with_receipt`);
//! one ECDSA signature per batch instead of one per answer, the most expensive step of a
//! verification after the transport. Anyone with the region root verifies a receipt offline: the statements' leaf hash
//! and the inclusion proof give the root, and the signature over that root must hold. A batch's
//! tree is padded with empty leaves to a power of two, and the verifier requires the tree size
//! to be `2^len(path)`: otherwise a changed size in the (unsigned) proof could still lead to the
//! same root, and a receipt must fail when any of its bytes changes. Each
//! statement carries a random nonce, so the sibling hashes in a proof reveal nothing about the
//! other answers of its batch.
//!
//! Receipts of the first form (`ELR1:` + base64url COSE_Sign1 with the statements as its
//! payload), issued before, still verify.

use crate::error::{Error, Result};
use crate::license::record::Canonical;
use crate::pki::{Pki, Signer, cert_kid};
use base64::Engine;
use coset::{CborSerializable, CoseSign1, CoseSign1Builder, HeaderBuilder, iana};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// Text form prefix of a batched receipt (RFC 9942 COSE Receipt).
pub const PREFIX: &str = "ELR2:";
/// Text form prefix of a receipt of the first form (one signature per receipt).
pub const PREFIX_V1: &str = "ELR1:";

/// COSE header parameter `vds` (RFC 9942): the verifiable data structure.
const HEADER_VDS: i64 = 395;
/// COSE header parameter `vdp` (RFC 9942): verifiable data structure proofs.
const HEADER_VDP: i64 = 396;
/// `RFC9162_SHA256` in the COSE Verifiable Data Structures registry.
const VDS_RFC9162_SHA256: i64 = 1;
/// Inclusion proofs in a `vdp` map.
const VDP_INCLUSION: i64 = -1;

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

/// SHA-256 (hex) of a released field's value as canonical JSON, as a receipt states it.
pub(crate) fn field_hash(v: &Value) -> String {
    let text = serde_json::to_string(&Canonical(v)).unwrap_or_default();
    hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()))
}

/// The statements of a receipt, as canonical JSON (a leaf of its batch's tree).
pub fn statements(f: &Facts<'_>) -> Result<Vec<u8>> {
    use ring::rand::SecureRandom;
    let released: Map<String, Value> = f
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(field_hash(v))))
        .collect();
    let mut nonce = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| Error::internal("random generator failed"))?;
    let payload = json!({
        "v": 2, "region": f.region, "license_id": f.license_id, "license_version": f.license_version,
        "status": f.status_code, "status_as_of": f.verified_at, "authentic": f.authentic,
        "fields_sha256": released, "basis": f.basis, "client": f.client,
        "matter_code": f.matter_code, "case_number": f.case_number,
        "verified_at": f.verified_at, "audit_seq": f.audit_seq, "nonce": hex::encode(nonce),
    });
    serde_json::to_vec(&Canonical(&payload)).map_err(Error::internal)
}

/// Signs the root of the tree over `leaves` once and returns each leaf's receipt text.
pub async fn sign_batch(pki: &Pki, leaves: &[&[u8]]) -> Result<Vec<String>> {
    use super::merkle;
    // Padded to a power of two with empty leaves, so that the proof's size is the only one
    // that leads to the root (merkle::root_from_perfect_path).
    let mut hashes: Vec<merkle::Hash> = leaves.iter().map(|l| merkle::leaf_hash(l)).collect();
    hashes.resize(leaves.len().next_power_of_two(), merkle::leaf_hash(b""));
    let tree = merkle::Tree::new(hashes).ok_or_else(|| Error::internal("empty receipt batch"))?;
    let root = tree.root();
    let signer_cert = pki.service_signer().await?;
    let key = pki.keys().signer(signer_cert.key()?).await?;
    let protected = HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES256)
        .key_id(cert_kid(&signer_cert.der).to_vec())
        .value(
            HEADER_VDS,
            ciborium::Value::Integer(VDS_RFC9162_SHA256.into()),
        )
        .build();
    let signed = CoseSign1Builder::new()
        .protected(protected)
        .try_create_detached_signature(&root, b"", |tbs| key.sign_fixed(tbs))?
        .build();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let size = tree.size();
    leaves
        .iter()
        .enumerate()
        .map(|(i, leaf)| {
            let path: Vec<ciborium::Value> = tree
                .path(i)
                .iter()
                .map(|h| ciborium::Value::Bytes(h.to_vec()))
                .collect();
            let proof = ciborium::Value::Array(vec![
                ciborium::Value::Integer(size.into()),
                ciborium::Value::Integer(i.into()),
                ciborium::Value::Array(path),
            ]);
            let mut proof_bytes = Vec::new();
            ciborium::into_writer(&proof, &mut proof_bytes)
                .map_err(|e| Error::internal(format!("CBOR: {e}")))?;
            let vdp = ciborium::Value::Map(vec![(
                ciborium::Value::Integer(VDP_INCLUSION.into()),
                ciborium::Value::Array(vec![ciborium::Value::Bytes(proof_bytes)]),
            )]);
            let mut one = signed.clone();
            one.unprotected = HeaderBuilder::new()
                .value(
                    iana::HeaderParameter::X5Chain as i64,
                    ciborium::Value::Bytes(signer_cert.der.clone()),
                )
                .value(HEADER_VDP, vdp)
                .build();
            let bytes = one
                .to_vec()
                .map_err(|e| Error::internal(format!("COSE: {e}")))?;
            Ok(format!(
                "{PREFIX}{}.{}",
                b64.encode(leaf),
                b64.encode(bytes)
            ))
        })
        .collect()
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
    let sign1 = CoseSign1Builder::new()
        .protected(protected)
        .unprotected(unprotected)
        .payload(payload.to_vec())
        .try_create_signature(b"", |tbs| key.sign_fixed(tbs))?
        .build();
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
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let text = text.trim();
    if let Some(rest) = text.strip_prefix(PREFIX_V1) {
        let bytes = b64.decode(rest).map_err(|_| bad("not base64url"))?;
        let (payload, signer) = open_x5chain(&bytes, roots, "verified_at").map_err(|e| bad(&e))?;
        return Ok(Checked { payload, signer });
    }
    let rest = text
        .strip_prefix(PREFIX)
        .ok_or_else(|| bad("does not start with ELR2: (or ELR1:)"))?;
    let (statements, cose) = rest
        .split_once('.')
        .ok_or_else(|| bad("no . between the statements and the signature"))?;
    let statements = b64.decode(statements).map_err(|_| bad("not base64url"))?;
    let cose = b64.decode(cose).map_err(|_| bad("not base64url"))?;
    let (payload, signer) = open_batched(&statements, &cose, roots).map_err(|e| bad(&e))?;
    Ok(Checked { payload, signer })
}

/// The inclusion proof in a COSE Receipt's `vdp` header: tree size, leaf index, path.
fn inclusion_proof(
    sign1: &CoseSign1,
) -> std::result::Result<(u64, u64, Vec<super::merkle::Hash>), String> {
    let vdp = sign1
        .unprotected
        .rest
        .iter()
        .find(|(l, _)| *l == coset::Label::Int(HEADER_VDP))
        .and_then(|(_, v)| v.as_map())
        .ok_or("no verifiable data structure proofs (vdp)")?;
    let proofs = vdp
        .iter()
        .find(|(k, _)| k.as_integer() == Some(VDP_INCLUSION.into()))
        .and_then(|(_, v)| v.as_array())
        .ok_or("no inclusion proof")?;
    let [proof] = proofs.as_slice() else {
        return Err("not exactly one inclusion proof".into());
    };
    let bytes = proof
        .as_bytes()
        .ok_or("inclusion proof is not a byte string")?;
    let value: ciborium::Value =
        ciborium::from_reader(bytes.as_slice()).map_err(|_| "inclusion proof is not CBOR")?;
    let mut again = Vec::new();
    ciborium::into_writer(&value, &mut again).map_err(|_| "inclusion proof is not CBOR")?;
    if again != *bytes {
        return Err("the inclusion proof is not in its canonical encoding".into());
    }
    let parts = value.as_array().ok_or("inclusion proof is not an array")?;
    let [size, index, path] = parts.as_slice() else {
        return Err("inclusion proof is not [size, index, path]".into());
    };
    let int = |v: &ciborium::Value| {
        v.as_integer()
            .and_then(|i| u64::try_from(i).ok())
            .ok_or("inclusion proof size or index is not an unsigned integer")
    };
    let path = path
        .as_array()
        .ok_or("inclusion path is not an array")?
        .iter()
        .map(|h| {
            h.as_bytes()
                .and_then(|b| <super::merkle::Hash>::try_from(b.as_slice()).ok())
                .ok_or("inclusion path entry is not a 32-byte hash")
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((int(size)?, int(index)?, path))
}

/// Opens a batched receipt: the statements' leaf and the inclusion proof lead to the root the
/// signature covers; the signer certificate chains to one of `roots` at `verified_at`.
fn open_batched(
    statements: &[u8],
    cose: &[u8],
    roots: &[Vec<u8>],
) -> std::result::Result<(Value, String), String> {
    let sign1 =
        CoseSign1::from_slice(cose).map_err(|_| "not a COSE_Sign1 structure".to_string())?;
    // Only the encoding the signer writes: the unprotected parts are not signed, and a CBOR
    // decoder reads some values two ways (undefined as nil).
    if sign1.clone().to_vec().ok().as_deref() != Some(cose) {
        return Err("the COSE Receipt is not in its canonical encoding".into());
    }
    if sign1.protected.header.alg
        != Some(coset::RegisteredLabelWithPrivate::Assigned(
            iana::Algorithm::ES256,
        ))
    {
        return Err("algorithm is not ES256".into());
    }
    let vds = sign1
        .protected
        .header
        .rest
        .iter()
        .find(|(l, _)| *l == coset::Label::Int(HEADER_VDS))
        .and_then(|(_, v)| v.as_integer());
    if vds != Some(VDS_RFC9162_SHA256.into()) {
        return Err("not an RFC9162_SHA256 receipt".into());
    }
    if sign1.payload.is_some() {
        return Err("the payload is not detached".into());
    }
    let (size, index, path) = inclusion_proof(&sign1)?;
    let leaf = super::merkle::leaf_hash(statements);
    let root = super::merkle::root_from_perfect_path(index, size, &leaf, &path)
        .ok_or("the inclusion proof does not fit its tree")?;
    let payload: Value =
        serde_json::from_slice(statements).map_err(|_| "the statements are not JSON")?;
    let at = payload
        .get("verified_at")
        .and_then(Value::as_i64)
        .ok_or("no time in the statements")?;
    let cert_der = x5chain_cert(&sign1)?;
    let cert = check_signer(&cert_der, roots, at, |key| {
        sign1.verify_detached_signature(&root, b"", |sig, tbs| key.verify(tbs, sig))
    })?;
    Ok((payload, cert))
}

/// The signer certificate in `x5chain`, whose key id the protected header must name.
fn x5chain_cert(sign1: &CoseSign1) -> std::result::Result<Vec<u8>, String> {
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
    Ok(cert_der)
}

/// Checks a signature with the signer certificate's key (`check`), then the certificate's
/// chain to one of `roots` for document signing at `at`. Returns the signer's subject.
fn check_signer(
    cert_der: &[u8],
    roots: &[Vec<u8>],
    at: i64,
    check: impl FnOnce(
        &ring::signature::UnparsedPublicKey<Vec<u8>>,
    ) -> std::result::Result<(), ring::error::Unspecified>,
) -> std::result::Result<String, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|_| "signer certificate unparsable")?;
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        cert.public_key().subject_public_key.data.to_vec(),
    );
    check(&key).map_err(|_| "the signature does not verify")?;
    use crate::pki::path;
    let checked = path::validate(&path::Request::new(
        cert_der,
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
    Ok(cert.subject().to_string())
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
    let cert_der = x5chain_cert(&sign1)?;
    let payload_bytes = sign1.payload.clone().ok_or("no payload")?;
    let payload: Value =
        serde_json::from_slice(&payload_bytes).map_err(|_| "payload is not JSON")?;
    let at = payload
        .get(time_field)
        .and_then(Value::as_i64)
        .ok_or("no time in the payload")?;
    let signer = check_signer(&cert_der, roots, at, |key| {
        sign1.verify_signature(b"", |sig, tbs| key.verify(tbs, sig))
    })?;
    Ok((payload, signer))
}
