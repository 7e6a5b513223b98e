//! The canonical license record and its issuer signature (COSE_Sign1, ES256).
//!
//! The record is JSON with object keys sorted (by UTF-8 bytes), no insignificant white space,
//! and only strings, integers, booleans, null, arrays and objects — the subset on which this
//! canonical form equals RFC 8785 (JCS) for the keys our schemas use. It is the COSE payload, so a
//! verifier needs only the COSE structure and the issuer's certificate.

use crate::error::{Error, Result};
use crate::pki::Signer;
use coset::{CborSerializable, CoseSign1, iana};
use serde_json::Value;

/// Serialises a JSON value canonically (sorted keys, compact).
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                if let Some(val) = map.get(*k) {
                    write_canonical(val, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Serialises a JSON value with object keys sorted, whatever the map type: the building block of
/// the canonical structs below, which declare their own fields in sorted order.
pub struct Canonical<'a>(pub &'a Value);

impl serde::Serialize for Canonical<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            // serde_json's map (a BTreeMap unless its `preserve_order` feature is on) iterates
            // in key order already: written as it comes, unless some dependency turned that
            // feature on.
            Value::Object(map) if map.keys().is_sorted() => {
                let mut m = s.serialize_map(Some(map.len()))?;
                for (k, v) in map {
                    m.serialize_entry(k, &Canonical(v))?;
                }
                m.end()
            }
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let mut m = s.serialize_map(Some(keys.len()))?;
                for k in keys {
                    if let Some(v) = map.get(k) {
                        m.serialize_entry(k, &Canonical(v))?;
                    }
                }
                m.end()
            }
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(&Canonical(v))?;
                }
                seq.end()
            }
            other => other.serialize(s),
        }
    }
}

/// A code and a name, in canonical field order.
#[derive(serde::Serialize)]
pub struct CodeName<'a> {
    pub code: &'a str,
    pub name: &'a str,
}

/// A holder in canonical field order.
#[derive(serde::Serialize)]
pub struct CanonicalHolder<'a> {
    pub code: &'a str,
    pub code_type: &'a str,
    pub name: &'a str,
}

/// The signed license record. Fields are declared in sorted order, so serde_json writes the
/// canonical form directly (equal to [`canonical_json`] of the same object).
#[derive(serde::Serialize)]
pub struct Record<'a> {
    /// The face fields' canonical JSON ([`Canonical`]), made once per request: the request's
    /// hash covers the same text.
    pub fields: &'a serde_json::value::RawValue,
    pub holder: CanonicalHolder<'a>,
    pub id: &'a str,
    pub issue_date: &'a str,
    pub issuer: CodeName<'a>,
    pub number: &'a str,
    pub region: &'a str,
    #[serde(rename = "type")]
    pub type_: CodeName<'a>,
    pub valid_from: &'a str,
    /// `长期` for long-term.
    pub valid_to: &'a str,
    pub version: u16,
}

impl Record<'_> {
    pub fn to_canonical_json(&self) -> Result<String> {
        // Sized up front: `serde_json::to_string` starts at 128 bytes and doubles, so a record
        // of 600 bytes was copied three times on the way (record serialization went from 4.4%
        // to 2.7-3.3% of the PostgreSQL import's samples, `perf record` of `bench
        // --issuance-only` read by hand). The face fields are the part of open size; keys,
        // punctuation and the other values fit in 512 bytes for the records we issue, and a
        // longer one costs a regrowth, not an error. `from_utf8` checks the bytes once more
        // (`to_string` skips that with `unsafe`, which this crate forbids): one pass over them.
        let size = self.fields.get().len() + 512;
        let mut out = Vec::with_capacity(size);
        serde_json::to_writer(&mut out, self)
            .map_err(|e| Error::internal(format!("record: {e}")))?;
        String::from_utf8(out).map_err(|e| Error::internal(format!("record: {e}")))
    }
}

/// Appends the head of a CBOR item of `major` type with argument `n`, in its shortest form
/// (RFC 8949 §4.2.1, as coset/ciborium write it).
fn cbor_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

fn cbor_bytes(out: &mut Vec<u8>, b: &[u8]) {
    cbor_head(out, 2, b.len() as u64);
    out.extend_from_slice(b);
}

/// Signs `payload` as a COSE_Sign1 with ES256; `kid` goes in the protected header. Returns the
/// structure with the payload detached (nil): the record is stored beside it once, not twice;
/// [`attach`] puts it back for relying parties.
///
/// Every license is signed here, so the two fixed-shape structures are written directly
/// rather than built as CBOR values by coset (about 3% of a bulk import's CPU went to that,
/// docs/PERFORMANCE.md); the bytes are exactly coset's (a test compares them), and reading a
/// COSE structure stays with coset.
pub fn sign_detached(payload: &[u8], kid: &[u8], signer: &dyn Signer) -> Result<Vec<u8>> {
    // The protected header {1 (alg): -7 (ES256), 3 (content type): 50 (JSON), 4 (kid): kid},
    // in coset's order of its known labels; coset leaves an empty kid out.
    let mut protected = Vec::with_capacity(16 + kid.len());
    protected.push(if kid.is_empty() { 0xa2 } else { 0xa3 });
    protected.extend_from_slice(&[0x01, 0x26, 0x03, 0x18, 0x32]);
    if !kid.is_empty() {
        protected.push(0x04);
        cbor_bytes(&mut protected, kid);
    }
    // Sig_structure (RFC 9052 §4.4): ["Signature1", protected, external_aad (empty), payload].
    let mut tbs = Vec::with_capacity(32 + protected.len() + payload.len());
    tbs.push(0x84);
    tbs.push(0x6a);
    tbs.extend_from_slice(b"Signature1");
    cbor_bytes(&mut tbs, &protected);
    tbs.push(0x40);
    cbor_bytes(&mut tbs, payload);
    let signature = signer.sign_fixed(&tbs)?;
    // COSE_Sign1: [protected, unprotected {}, payload nil (detached), signature].
    let mut out = Vec::with_capacity(8 + protected.len() + signature.len());
    out.push(0x84);
    cbor_bytes(&mut out, &protected);
    out.push(0xa0);
    out.push(0xf6);
    cbor_bytes(&mut out, &signature);
    Ok(out)
}

/// Puts the payload back into a detached COSE_Sign1.
pub fn attach(detached: &[u8], payload: &[u8]) -> Result<Vec<u8>> {
    let mut sign1 = CoseSign1::from_slice(detached)
        .map_err(|e| Error::internal(format!("stored COSE_Sign1: {e}")))?;
    sign1.payload = Some(payload.to_vec());
    sign1
        .to_vec()
        .map_err(|e| Error::internal(format!("COSE encoding: {e}")))
}

/// Why a signed record does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("not a COSE_Sign1 structure")]
    Malformed,
    #[error("algorithm is not ES256")]
    Algorithm,
    #[error("no payload")]
    NoPayload,
    #[error("signature does not verify with the issuer's key")]
    BadSignature,
}

/// Verifies a COSE_Sign1 with an uncompressed P-256 public key and returns its payload.
pub fn verify(cose: &[u8], public_key: &[u8]) -> Result<Vec<u8>, SignatureError> {
    let sign1 = CoseSign1::from_slice(cose).map_err(|_| SignatureError::Malformed)?;
    if sign1.protected.header.alg
        != Some(coset::RegisteredLabelWithPrivate::Assigned(
            iana::Algorithm::ES256,
        ))
    {
        return Err(SignatureError::Algorithm);
    }
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        public_key,
    );
    sign1
        .verify_signature(b"", |sig, tbs| key.verify(tbs, sig))
        .map_err(|_| SignatureError::BadSignature)?;
    sign1.payload.ok_or(SignatureError::NoPayload)
}

/// Verifies a COSE_Sign1 whose payload is detached against `payload`.
pub fn verify_detached(
    cose: &[u8],
    payload: &[u8],
    public_key: &[u8],
) -> Result<(), SignatureError> {
    let sign1 = CoseSign1::from_slice(cose).map_err(|_| SignatureError::Malformed)?;
    if sign1.protected.header.alg
        != Some(coset::RegisteredLabelWithPrivate::Assigned(
            iana::Algorithm::ES256,
        ))
    {
        return Err(SignatureError::Algorithm);
    }
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        public_key,
    );
    sign1
        .verify_detached_signature(payload, b"", |sig, tbs| key.verify(tbs, sig))
        .map_err(|_| SignatureError::BadSignature)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A throw-away P-256 key for tests, generated at test time.
    pub(crate) struct TestKey(ring::signature::EcdsaKeyPair, ring::rand::SystemRandom);

    impl TestKey {
        pub(crate) fn generate() -> Self {
            use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING as ALG, EcdsaKeyPair};
            let rng = ring::rand::SystemRandom::new();
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ALG, &rng).unwrap();
            TestKey(
                EcdsaKeyPair::from_pkcs8(&ALG, pkcs8.as_ref(), &rng).unwrap(),
                rng,
            )
        }
    }

    impl Signer for TestKey {
        fn key_id(&self) -> &str {
            "test"
        }
        fn public_key(&self) -> &[u8] {
            use ring::signature::KeyPair;
            self.0.public_key().as_ref()
        }
        fn sign_fixed(&self, msg: &[u8]) -> Result<Vec<u8>> {
            Ok(self
                .0
                .sign(&self.1, msg)
                .map_err(|_| Error::internal("sign"))?
                .as_ref()
                .to_vec())
        }
        fn sign_der(&self, _: &[u8]) -> Result<Vec<u8>> {
            Err(Error::internal("unused"))
        }
    }

    #[test]
    fn detached_signature_attaches_and_verifies() {
        let key = TestKey::generate();
        let detached = sign_detached(b"{\"a\":1}", &[1; 8], &key).unwrap();
        assert!(CoseSign1::from_slice(&detached).unwrap().payload.is_none());
        let attached = attach(&detached, b"{\"a\":1}").unwrap();
        assert_eq!(verify(&attached, key.public_key()).unwrap(), b"{\"a\":1}");
        assert_eq!(
            verify_detached(&detached, b"{\"a\":1}", key.public_key()),
            Ok(())
        );
        assert_eq!(
            verify_detached(&detached, b"{\"a\":2}", key.public_key()),
            Err(SignatureError::BadSignature)
        );
    }

    /// The hand-written structures are coset's, byte for byte, across CBOR's length forms.
    #[test]
    fn detached_signature_is_cosets_encoding() {
        use coset::{CoseSign1Builder, HeaderBuilder};
        /// Signs with a fixed "signature" (the message's SHA-256, twice), so that two encodings
        /// of the same structure compare equal.
        struct Fixed;
        impl Signer for Fixed {
            fn key_id(&self) -> &str {
                "fixed"
            }
            fn public_key(&self) -> &[u8] {
                &[]
            }
            fn sign_fixed(&self, msg: &[u8]) -> Result<Vec<u8>> {
                let d = ring::digest::digest(&ring::digest::SHA256, msg);
                Ok([d.as_ref(), d.as_ref()].concat())
            }
            fn sign_der(&self, _: &[u8]) -> Result<Vec<u8>> {
                Err(Error::internal("unused"))
            }
        }
        for (kid_len, len) in [
            (8, 0),
            (8, 23),
            (8, 24),
            (0, 255),
            (30, 256),
            (8, 65535),
            (8, 65536),
        ] {
            let (kid, payload) = (vec![7u8; kid_len], vec![b'x'; len]);
            let protected = HeaderBuilder::new()
                .algorithm(iana::Algorithm::ES256)
                .key_id(kid.clone())
                .content_format(iana::CoapContentFormat::Json)
                .build();
            let expected = CoseSign1Builder::new()
                .protected(protected)
                .try_create_detached_signature(&payload, b"", |tbs| Fixed.sign_fixed(tbs))
                .unwrap()
                .build()
                .to_vec()
                .unwrap();
            assert_eq!(
                sign_detached(&payload, &kid, &Fixed).unwrap(),
                expected,
                "kid {kid_len} bytes, payload {len} bytes"
            );
        }
    }

    #[test]
    fn record_struct_is_canonical() {
        let fields = serde_json::json!({"z": [1, {"b": 2, "a": "中\"文"}], "a": null});
        let fields = serde_json::value::to_raw_value(&Canonical(&fields)).unwrap();
        let r = Record {
            fields: &fields,
            holder: CanonicalHolder {
                code: "c",
                code_type: "111",
                name: "张三",
            },
            id: "1.2",
            issue_date: "2026-01-01",
            issuer: CodeName {
                code: "i",
                name: "局",
            },
            number: "n",
            region: "340600",
            type_: CodeName {
                code: "t",
                name: "证",
            },
            valid_from: "2026-01-01",
            valid_to: "长期",
            version: 1,
        };
        let via_value = canonical_json(&serde_json::to_value(&r).unwrap());
        assert_eq!(r.to_canonical_json().unwrap(), via_value);
    }

    #[test]
    fn canonical_json_sorts_and_compacts() {
        let v = serde_json::json!({"b": 1, "a": {"z": "中", "y": [true, null]}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"y":[true,null],"z":"中"},"b":1}"#
        );
    }
}
