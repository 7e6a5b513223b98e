//! Certificate path validation: the one place where elicense decides whether a certificate
//! chains to a trusted root — seal and authority certificates, case-system client certificates,
//! the signers of receipts, show codes and trust lists, and the authorities of other regions.
//!
//! Path building and the RFC 5280 checks are rustls-webpki's. On top of it, two checks webpki
//! leaves out and a government PKI wants (both found by the x509-limbo suite, see
//! `tests/x509_limbo.rs`):
//! - the trust anchor's own validity period: an expired root no longer vouches for anything
//!   (webpki reduces anchors to name and key);
//! - a CRL used for revocation must carry a non-critical CRL number (RFC 5280 5.2.3), and be
//!   issued by a certificate whose key usage allows cRLSign.

use rustls_pki_types::{CertificateDer, UnixTime};

/// What the end-entity certificate must be good for.
#[derive(Debug, Clone, Copy)]
pub enum Usage {
    /// TLS server (id-kp-serverAuth).
    ServerAuth,
    /// TLS client (id-kp-clientAuth).
    ClientAuth,
    /// This extended key usage (DER of the OID's value) must be present.
    Required(&'static [u8]),
    /// If the certificate lists extended key usages, this one must be among them.
    RequiredIfPresent(&'static [u8]),
}

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// The end-entity certificate (or a CRL) could not be parsed.
    Malformed(String),
    /// A certificate on the best path was expired at the validation time.
    Expired,
    /// A certificate on the best path was not yet valid at the validation time.
    NotYetValid,
    /// A certificate on the path is revoked by one of the CRLs given.
    Revoked,
    /// No path to a trusted root for this usage (the detail says webpki's reason).
    Untrusted(String),
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathError::Malformed(m) => write!(f, "malformed: {m}"),
            PathError::Expired => f.write_str("a certificate on the path has expired"),
            PathError::NotYetValid => f.write_str("a certificate on the path is not yet valid"),
            PathError::Revoked => f.write_str("a certificate on the path is revoked"),
            PathError::Untrusted(m) => write!(f, "no path to a trusted root ({m})"),
        }
    }
}

/// A validated path: the intermediates between the end entity and the anchor, leaf first, and
/// the index in `anchors` of the root it ends at.
#[derive(Debug, Clone)]
pub struct ValidPath {
    pub intermediates: Vec<Vec<u8>>,
    pub anchor: usize,
}

/// The inputs of one validation.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub end_entity: &'a [u8],
    pub intermediates: &'a [Vec<u8>],
    pub anchors: &'a [Vec<u8>],
    /// Validation time, seconds since the Unix epoch.
    pub at: i64,
    pub usage: Usage,
    /// CRLs (DER) to check every certificate of the path against; empty: no revocation check
    /// here (the caller checks status its own way).
    pub crls: &'a [Vec<u8>],
    /// With CRLs: a certificate no CRL speaks for is refused (true) or allowed (false).
    pub require_status: bool,
}

impl<'a> Request<'a> {
    /// A request without CRLs.
    pub fn new(end_entity: &'a [u8], anchors: &'a [Vec<u8>], at: i64, usage: Usage) -> Self {
        Request {
            end_entity,
            intermediates: &[],
            anchors,
            at,
            usage,
            crls: &[],
            require_status: false,
        }
    }
}

fn unix(at: i64) -> UnixTime {
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(at).unwrap_or(0),
    ))
}

/// The validity window of a certificate, if it parses.
fn validity(der: &[u8]) -> Option<(i64, i64)> {
    let (_, c) = x509_parser::parse_x509_certificate(der).ok()?;
    Some((
        c.validity().not_before.timestamp(),
        c.validity().not_after.timestamp(),
    ))
}

/// RFC 5280 5.2.3 and 5.1.2.3/4.2.1.3: a CRL carries a non-critical CRL number, and a
/// certificate that issues CRLs (here: one of the path's candidates with the CRL's issuer name)
/// has cRLSign in its key usage. webpki checks neither.
fn crl_profile(der: &[u8], certs: &[&[u8]]) -> Result<(), String> {
    use x509_parser::extensions::ParsedExtension;
    let (_, crl) = x509_parser::parse_x509_crl(der).map_err(|e| format!("CRL: {e}"))?;
    let number = crl
        .extensions()
        .iter()
        .find(|e| matches!(e.parsed_extension(), ParsedExtension::CRLNumber(_)))
        .ok_or("CRL without a CRL number")?;
    if number.critical {
        return Err("CRL number marked critical".into());
    }
    for c in certs {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(c) else {
            continue;
        };
        if cert.subject().as_raw() == crl.issuer().as_raw()
            && let Ok(Some(ku)) = cert.key_usage()
            && !ku.value.crl_sign()
        {
            return Err("CRL issuer's key usage lacks cRLSign".into());
        }
    }
    Ok(())
}

/// Validates `req.end_entity` up to one of `req.anchors` for `req.usage` at `req.at`.
pub fn validate(req: &Request<'_>) -> Result<ValidPath, PathError> {
    let ee_der = CertificateDer::from(req.end_entity);
    let ee = webpki::EndEntityCert::try_from(&ee_der)
        .map_err(|e| PathError::Malformed(format!("certificate: {e:?}")))?;
    let anchor_ders: Vec<CertificateDer<'_>> = req
        .anchors
        .iter()
        .map(|a| CertificateDer::from(a.as_slice()))
        .collect();
    // Anchors that do not parse are left out; their validity windows are kept beside them.
    let mut anchors = Vec::new();
    let mut windows = Vec::new();
    for (i, d) in anchor_ders.iter().enumerate() {
        if let Ok(a) = webpki::anchor_from_trusted_cert(d) {
            anchors.push(a);
            windows.push((i, validity(d)));
        }
    }
    if anchors.is_empty() {
        return Err(PathError::Untrusted("no usable trust anchor".into()));
    }
    let inter: Vec<CertificateDer<'_>> = req
        .intermediates
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let mut crls = Vec::new();
    for d in req.crls {
        let certs: Vec<&[u8]> = req
            .anchors
            .iter()
            .chain(req.intermediates)
            .map(Vec::as_slice)
            .collect();
        crl_profile(d, &certs).map_err(PathError::Malformed)?;
        let crl = webpki::BorrowedCertRevocationList::from_der(d)
            .map_err(|e| PathError::Malformed(format!("CRL: {e:?}")))?;
        crls.push(webpki::CertRevocationList::from(crl));
    }
    let crl_refs: Vec<&webpki::CertRevocationList<'_>> = crls.iter().collect();
    let revocation = webpki::RevocationOptionsBuilder::new(&crl_refs)
        .ok()
        .map(|b| {
            b.with_depth(webpki::RevocationCheckDepth::Chain)
                .with_status_policy(if req.require_status {
                    webpki::UnknownStatusPolicy::Deny
                } else {
                    webpki::UnknownStatusPolicy::Allow
                })
                .with_expiration_policy(webpki::ExpirationPolicy::Enforce)
                .build()
        });
    let time = unix(req.at);
    // Which anchor a path ends at: the anchor whose subject and key the path's anchor has.
    let anchor_index = |path: &webpki::VerifiedPath<'_>| -> Option<usize> {
        let a = path.anchor();
        anchors
            .iter()
            .position(|x| {
                x.subject.as_ref() == a.subject.as_ref()
                    && x.subject_public_key_info.as_ref() == a.subject_public_key_info.as_ref()
            })
            .and_then(|p| windows.get(p).map(|w| w.0))
    };
    // The anchor must itself be within its validity period; webpki then tries other paths.
    let anchor_valid = |path: &webpki::VerifiedPath<'_>| -> Result<(), webpki::Error> {
        let window = anchor_index(path).and_then(|i| windows.iter().find(|w| w.0 == i)?.1);
        match window {
            Some((nb, _)) if req.at < nb => Err(webpki::Error::CertNotValidYet {
                time,
                not_before: unix(nb),
            }),
            Some((_, na)) if req.at > na => Err(webpki::Error::CertExpired {
                time,
                not_after: unix(na),
            }),
            _ => Ok(()),
        }
    };
    let result = match req.usage {
        Usage::ServerAuth => ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &inter,
            time,
            webpki::KeyUsage::server_auth(),
            revocation,
            Some(&anchor_valid),
        ),
        Usage::ClientAuth => ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &inter,
            time,
            webpki::KeyUsage::client_auth(),
            revocation,
            Some(&anchor_valid),
        ),
        Usage::Required(oid) => ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &inter,
            time,
            webpki::KeyUsage::required(oid),
            revocation,
            Some(&anchor_valid),
        ),
        Usage::RequiredIfPresent(oid) => ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &inter,
            time,
            webpki::KeyUsage::required_if_present(oid),
            revocation,
            Some(&anchor_valid),
        ),
    };
    match result {
        Ok(path) => Ok(ValidPath {
            intermediates: path
                .intermediate_certificates()
                .map(|c| c.der().to_vec())
                .collect(),
            anchor: anchor_index(&path).unwrap_or(0),
        }),
        Err(webpki::Error::CertExpired { .. }) => Err(PathError::Expired),
        Err(webpki::Error::CertNotValidYet { .. }) => Err(PathError::NotYetValid),
        Err(webpki::Error::CertRevoked) => Err(PathError::Revoked),
        Err(e) => Err(PathError::Untrusted(format!("{e:?}"))),
    }
}

/// Is `end_entity` valid for the DNS name or IP address `name`? (TLS server identity.)
pub fn valid_for_name(end_entity: &[u8], name: &str) -> Result<(), PathError> {
    let der = CertificateDer::from(end_entity);
    let ee = webpki::EndEntityCert::try_from(&der)
        .map_err(|e| PathError::Malformed(format!("certificate: {e:?}")))?;
    let server_name = rustls_pki_types::ServerName::try_from(name)
        .map_err(|_| PathError::Malformed(format!("not a DNS name or IP address: {name}")))?;
    ee.verify_is_valid_for_subject_name(&server_name)
        .map_err(|e| PathError::Untrusted(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let anchors = vec![vec![0x30, 0x03, 0x02, 0x01, 0x00]];
        let r = validate(&Request::new(b"\x30\x80", &anchors, 0, Usage::ClientAuth));
        assert!(matches!(r, Err(PathError::Malformed(_))), "{r:?}");
    }
}
