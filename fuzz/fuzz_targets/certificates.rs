//! Certificates as PEM text (trust files) and DER (client certificates over mutual TLS), through
//! the parsers the service hands them to, and path validation.
#![no_main]
use libfuzzer_sys::fuzz_target;
use x509_parser::prelude::FromDer;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        for der in elicense::pki::pem_certificates(s) {
            let _ = x509_parser::parse_x509_certificate(&der);
        }
    }
    let _ = x509_parser::parse_x509_certificate(data);
    let der = rustls_pki_types::CertificateDer::from(data);
    let _ = webpki::EndEntityCert::try_from(&der);
    let _ = x509_parser::revocation_list::CertificateRevocationList::from_der(data);
    // The path validation every chain check goes through: the input as end entity, as trust
    // anchor and as CRL.
    use elicense::pki::path::{Request, Usage, validate};
    let bytes = [data.to_vec()];
    let _ = validate(&Request::new(data, &bytes, 1_700_000_000, Usage::ClientAuth));
    let _ = validate(&Request {
        crls: &bytes,
        ..Request::new(data, &bytes, 1_700_000_000, Usage::ServerAuth)
    });
});
