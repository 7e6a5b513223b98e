//! The region's PKI: root CA, authority seal certificates, CRLs, and the key store.
//!
//! Certificate profiles (all ECDSA P-256 / SHA-256; serials are 128 random bits; every
//! non-root certificate carries the authority key identifier). `docs/PKI.md` has the same table.
//!
//! | profile | validity | basicConstraints | keyUsage (critical) | extKeyUsage | subject |
//! | --- | --- | --- | --- | --- | --- |
//! | root CA | 20 years | CA, critical | keyCertSign, cRLSign | — | C=CN, O=region, CN=region Root CA |
//! | authority seal | 5 years, within the root | not a CA | digitalSignature, nonRepudiation | documentSigning (1.3.6.1.5.5.7.3.36) | C=CN, O=authority, organizationIdentifier=NTRCN-credit code, CN=authority |
//! | client CA | 10 years, within the root | CA, path length 0 | keyCertSign, cRLSign | clientAuth | C=CN, O=region, CN=region Client CA |
//! | TLS client | 1 to 3 years, within the client CA | not a CA | digitalSignature | clientAuth | C=CN, O=region, OU=system, CN=client id |
//!
//! CRLs: the root's (everything it issued, the client CA included) and each client CA's (its
//! client certificates); CRL number + AKI, next update 7 days after this update, reissued on
//! every revocation. `docs/PKI.md` has the rest of the profiles.

pub mod ca;
pub mod keystore;
pub mod path;

pub use ca::Pki;
pub use keystore::{KeyStore, MasterKey, Signer};

/// Renders DER as PEM with the given label.
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// `kid` for a signer certificate: the first 8 bytes of SHA-256 of its DER.
pub fn cert_kid(der: &[u8]) -> [u8; 8] {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    let mut kid = [0u8; 8];
    kid.copy_from_slice(d.as_ref().get(..8).unwrap_or(&[0u8; 8]));
    kid
}

/// Every CERTIFICATE block of a PEM text, as DER.
pub fn pem_certificates(text: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(text.as_bytes())
        .filter_map(|p| p.ok())
        .filter(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
        .collect()
}
