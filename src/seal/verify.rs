//! Verifying the signatures of a PDF: byte-range integrity, the CMS signature, the signer and its
//! chain, revocation at signing time, time-stamps, coverage, and what changed after each
//! signature (allowed: later signatures, DSS updates, form filling; anything else is reported).

use super::cms::{ID_MESSAGE_DIGEST, ID_SIGNATURE_TIMESTAMP};
use crate::error::{Error, Result};
use crate::pdf::{Entry, Pdf, Source};
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::{Decode, Encode};
use lopdf::{Dictionary, Object};
use serde::Serialize;
use std::collections::{BTreeSet, HashSet};
use x509_cert::Certificate;

const ID_TIMESTAMPING_DER: [u8; 8] = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08];
const MAX_SIGNATURES: usize = 200;
const MAX_CHANGES_LISTED: usize = 200;

/// What to trust: root certificates (DER) and CRLs (DER) known to the verifier.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    pub roots: Vec<Vec<u8>>,
    pub crls: Vec<Vec<u8>>,
    /// Certificate serial (hex) → seal id and name, for naming our own seals.
    pub seals: Vec<(String, String, String)>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// valid: every signature valid and nothing illegal changed; otherwise the worst verdict.
    pub verdict: String,
    pub bytes: u64,
    pub revisions: usize,
    pub signatures: Vec<SignatureReport>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SignatureReport {
    pub field: String,
    /// ETSI.CAdES.detached, adbe.pkcs7.detached, ETSI.RFC3161 (document time-stamp)...
    pub sub_filter: String,
    /// valid | invalid | modified | untrusted
    pub verdict: String,
    /// The digest of the byte ranges matches and the signature verifies with the signer's key.
    pub intact: bool,
    pub problems: Vec<String>,
    pub signer: Option<Signer>,
    /// The seal (our own seals only), as `id: name`.
    pub seal: Option<String>,
    /// The chain to a trusted root at the signing time.
    pub trusted: bool,
    pub chain: Vec<String>,
    /// good | revoked | revoked_after_signing | unknown
    pub revocation: String,
    /// Time claimed by the signer (/M), RFC 3339.
    pub claimed_time: Option<String>,
    pub timestamp: Option<Timestamp>,
    pub byte_range: [u64; 4],
    /// The length of the revision the signature covers (all of it but its own /Contents), and
    /// whether that is the whole file.
    pub covered_bytes: u64,
    pub covers_whole_file: bool,
    /// Certified (DocMDP) with this permission level.
    pub certification: Option<i64>,
    /// What changed after this signature.
    pub changes_after: Vec<Change>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Signer {
    pub subject: String,
    pub serial: String,
    pub issuer: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Timestamp {
    pub time: String,
    pub intact: bool,
    pub trusted: bool,
    pub authority: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Change {
    pub object: u32,
    /// later_signature | dss | form_filling | appearance | metadata | modification
    pub kind: String,
    pub allowed: bool,
    pub what: String,
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Parses a PDF date `D:YYYYMMDDHHmmSS...` (offsets honoured) into Unix seconds.
fn pdf_date(s: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(s).ok()?.trim_start_matches("D:");
    let num = |r: std::ops::Range<usize>, d: i64| -> i64 {
        s.get(r).and_then(|x| x.parse().ok()).unwrap_or(d)
    };
    let (y, mo, d) = (num(0..4, 1970), num(4..6, 1), num(6..8, 1));
    let (h, mi, se) = (num(8..10, 0), num(10..12, 0), num(12..14, 0));
    let date = time::Date::from_calendar_date(
        i32::try_from(y).ok()?,
        time::Month::try_from(u8::try_from(mo).ok()?).ok()?,
        u8::try_from(d).ok()?,
    )
    .ok()?;
    let t = date
        .with_hms(
            u8::try_from(h).ok()?,
            u8::try_from(mi).ok()?,
            u8::try_from(se).ok()?,
        )
        .ok()?
        .assume_utc()
        .unix_timestamp();
    let off = match s.get(14..15) {
        Some("+") | Some("-") => {
            let sign = if s.get(14..15) == Some("-") { -1 } else { 1 };
            let oh: i64 = s.get(15..17).and_then(|x| x.parse().ok()).unwrap_or(0);
            let om: i64 = s.get(18..20).and_then(|x| x.parse().ok()).unwrap_or(0);
            sign * (oh * 3600 + om * 60)
        }
        _ => 0,
    };
    Some(t - off)
}

fn name_of(d: &Dictionary, key: &[u8]) -> String {
    match d.get(key) {
        Ok(Object::Name(n)) => String::from_utf8_lossy(n).into_owned(),
        _ => String::new(),
    }
}

fn text_of(o: &Object) -> String {
    match o {
        Object::String(b, _) => {
            if b.starts_with(&[0xfe, 0xff]) {
                let units: Vec<u16> = b
                    .get(2..)
                    .unwrap_or_default()
                    .chunks_exact(2)
                    .map(|c| {
                        u16::from_be_bytes([
                            c.first().copied().unwrap_or(0),
                            c.get(1).copied().unwrap_or(0),
                        ])
                    })
                    .collect();
                String::from_utf16_lossy(&units)
            } else {
                String::from_utf8_lossy(b).into_owned()
            }
        }
        _ => String::new(),
    }
}

/// Signature fields with a value, found through the form (fields and their kids, bounded).
fn signature_fields<S: Source + ?Sized>(pdf: &Pdf<'_, S>) -> Result<Vec<(String, Dictionary)>> {
    let cat = pdf.catalog()?;
    let Ok(form) = cat.get(b"AcroForm") else {
        return Ok(Vec::new());
    };
    let form = pdf.dict(form)?;
    let fields = match form.get(b"Fields") {
        Ok(o) => match pdf.resolve(o)? {
            Object::Array(a) => a,
            _ => Vec::new(),
        },
        Err(_) => Vec::new(),
    };
    let mut out = Vec::new();
    let mut stack: Vec<(Object, String, usize)> = fields
        .into_iter()
        .rev()
        .map(|f| (f, String::new(), 0))
        .collect();
    let mut seen = HashSet::new();
    while let Some((f, prefix, depth)) = stack.pop() {
        if depth > 16 || out.len() >= MAX_SIGNATURES || seen.len() > 50_000 {
            break;
        }
        if let Object::Reference(r) = &f
            && !seen.insert(r.0)
        {
            continue;
        }
        let d = pdf.dict(&f)?;
        let t = d.get(b"T").map(text_of).unwrap_or_default();
        let full = match (prefix.is_empty(), t.is_empty()) {
            (true, _) => t.clone(),
            (false, true) => prefix.clone(),
            (false, false) => format!("{prefix}.{t}"),
        };
        if matches!(d.get(b"FT"), Ok(Object::Name(n)) if n == b"Sig")
            && let Ok(v) = d.get(b"V")
        {
            let v = pdf.dict(v)?;
            out.push((full.clone(), v));
        }
        if let Ok(kids) = d.get(b"Kids")
            && let Object::Array(k) = pdf.resolve(kids)?
        {
            for kid in k.into_iter().rev() {
                stack.push((kid, full.clone(), depth + 1));
            }
        }
    }
    Ok(out)
}

struct Cms {
    data: SignedData,
    info: SignerInfo,
    signer: Option<Certificate>,
    certs: Vec<Certificate>,
}

fn parse_cms(der: &[u8]) -> std::result::Result<Cms, String> {
    let mut reader = der::SliceReader::new(der).map_err(|e| format!("CMS: {e}"))?;
    let ci: ContentInfo = der::Decode::decode(&mut reader).map_err(|e| format!("CMS: {e}"))?;
    let content = ci.content.to_der().map_err(|e| format!("CMS: {e}"))?;
    let data = SignedData::from_der(&content).map_err(|e| format!("SignedData: {e}"))?;
    let info = data
        .signer_infos
        .0
        .iter()
        .next()
        .cloned()
        .ok_or("no signer")?;
    let certs: Vec<Certificate> = data
        .certificates
        .as_ref()
        .map(|s| {
            s.0.iter()
                .filter_map(|c| match c {
                    cms::cert::CertificateChoices::Certificate(c) => Some(c.clone()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let signer = certs
        .iter()
        .find(|c| match &info.sid {
            SignerIdentifier::IssuerAndSerialNumber(i) => {
                c.tbs_certificate.issuer == i.issuer
                    && c.tbs_certificate.serial_number == i.serial_number
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => {
                c.tbs_certificate.extensions.iter().flatten().any(|e| {
                    e.extn_id == const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER
                        && e.extn_value.as_bytes().ends_with(ski.0.as_bytes())
                })
            }
        })
        .cloned();
    Ok(Cms {
        data,
        info,
        signer,
        certs,
    })
}

fn digest_alg(oid: &der::asn1::ObjectIdentifier) -> Option<&'static ring::digest::Algorithm> {
    match oid.to_string().as_str() {
        "2.16.840.1.101.3.4.2.1" => Some(&ring::digest::SHA256),
        "2.16.840.1.101.3.4.2.2" => Some(&ring::digest::SHA384),
        "2.16.840.1.101.3.4.2.3" => Some(&ring::digest::SHA512),
        _ => None,
    }
}

/// Checks the signed attributes' message digest against `digest` and the signature over them.
fn check_signer(cms: &Cms, content_digest: &[u8]) -> std::result::Result<(), String> {
    let signer = cms
        .signer
        .as_ref()
        .ok_or("the signer's certificate is not in the CMS")?;
    let attrs = cms
        .info
        .signed_attrs
        .as_ref()
        .ok_or("no signed attributes")?;
    let md = attrs
        .iter()
        .find(|a| a.oid == ID_MESSAGE_DIGEST)
        .and_then(|a| a.values.iter().next())
        .ok_or("no message-digest attribute")?;
    let md = der::asn1::OctetString::from_der(&md.to_der().map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    if md.as_bytes() != content_digest {
        return Err(
            "the digest of the signed bytes does not match (the document was changed)".into(),
        );
    }
    let signed = attrs.to_der().map_err(|e| e.to_string())?;
    let spki = &signer.tbs_certificate.subject_public_key_info;
    let key = spki.subject_public_key.raw_bytes();
    let sig_oid = cms.info.signature_algorithm.oid.to_string();
    let digest_oid = cms.info.digest_alg.oid.to_string();
    let alg: &dyn ring::signature::VerificationAlgorithm = match (
        spki.algorithm.oid.to_string().as_str(),
        sig_oid.as_str(),
        digest_oid.as_str(),
    ) {
        ("1.2.840.10045.2.1", "1.2.840.10045.4.3.2", _) => &ring::signature::ECDSA_P256_SHA256_ASN1,
        ("1.2.840.10045.2.1", "1.2.840.10045.4.3.3", _) => &ring::signature::ECDSA_P384_SHA384_ASN1,
        ("1.2.840.10045.2.1", "1.2.840.10045.2.1", "2.16.840.1.101.3.4.2.1") => {
            &ring::signature::ECDSA_P256_SHA256_ASN1
        }
        ("1.2.840.113549.1.1.1", "1.2.840.113549.1.1.11", _)
        | ("1.2.840.113549.1.1.1", "1.2.840.113549.1.1.1", "2.16.840.1.101.3.4.2.1") => {
            &ring::signature::RSA_PKCS1_2048_8192_SHA256
        }
        ("1.2.840.113549.1.1.1", "1.2.840.113549.1.1.12", _)
        | ("1.2.840.113549.1.1.1", "1.2.840.113549.1.1.1", "2.16.840.1.101.3.4.2.2") => {
            &ring::signature::RSA_PKCS1_2048_8192_SHA384
        }
        ("1.2.840.113549.1.1.1", "1.2.840.113549.1.1.13", _)
        | ("1.2.840.113549.1.1.1", "1.2.840.113549.1.1.1", "2.16.840.1.101.3.4.2.3") => {
            &ring::signature::RSA_PKCS1_2048_8192_SHA512
        }
        (k, s, _) => return Err(format!("unsupported key/signature algorithm {k}/{s}")),
    };
    ring::signature::UnparsedPublicKey::new(alg, key)
        .verify(&signed, cms.info.signature.as_bytes())
        .map_err(|_| "the signature does not verify with the signer's key".to_string())
}

fn subject(c: &Certificate) -> String {
    c.tbs_certificate.subject.to_string()
}

/// Chain check with webpki at `at`, for `eku` (required when present on the leaf).
fn chain(
    leaf: &Certificate,
    extra: &[Certificate],
    trust: &Trust,
    at: i64,
    eku: &'static [u8],
) -> std::result::Result<Vec<String>, String> {
    use crate::pki::path;
    let leaf_der = leaf.to_der().map_err(|e| e.to_string())?;
    let inter: Vec<Vec<u8>> = extra.iter().filter_map(|c| c.to_der().ok()).collect();
    if trust.roots.is_empty() {
        return Err("no trusted roots".into());
    }
    let valid = path::validate(&path::Request {
        intermediates: &inter,
        ..path::Request::new(
            &leaf_der,
            &trust.roots,
            at,
            path::Usage::RequiredIfPresent(eku),
        )
    })
    .map_err(|e| match e {
        path::PathError::Malformed(m) => format!("signer certificate: {m}"),
        e => e.to_string(),
    })?;
    let mut out = vec![subject(leaf)];
    for c in &valid.intermediates {
        if let Ok(c) = Certificate::from_der(c) {
            out.push(subject(&c));
        }
    }
    if let Some(root) = trust
        .roots
        .get(valid.anchor)
        .and_then(|r| Certificate::from_der(r).ok())
    {
        out.push(subject(&root));
    }
    Ok(out)
}

/// Revocation of `cert` at `at` from the CRLs whose signature verifies with a known issuer.
fn revocation(cert: &Certificate, issuers: &[Vec<u8>], crls: &[Vec<u8>], at: i64) -> String {
    use x509_parser::prelude::FromDer;
    let serial = cert.tbs_certificate.serial_number.as_bytes().to_vec();
    let issuer_der = cert.tbs_certificate.issuer.to_der().unwrap_or_default();
    let mut covered = false;
    let mut revoked: Option<i64> = None;
    for crl in crls {
        let Ok((_, crl)) = x509_parser::revocation_list::CertificateRevocationList::from_der(crl)
        else {
            continue;
        };
        if crl.tbs_cert_list.issuer.as_raw() != issuer_der.as_slice() {
            continue;
        }
        let signed_by_issuer = issuers.iter().any(|i| {
            x509_parser::certificate::X509Certificate::from_der(i).is_ok_and(|(_, ic)| {
                ic.subject().as_raw() == issuer_der.as_slice()
                    && crl.verify_signature(ic.public_key()).is_ok()
            })
        });
        if !signed_by_issuer {
            continue;
        }
        covered = true;
        for r in crl.iter_revoked_certificates() {
            if r.raw_serial() == serial.as_slice() {
                revoked = Some(r.revocation_date.timestamp());
            }
        }
    }
    match (covered, revoked) {
        (false, _) => "unknown".into(),
        (true, None) => "good".into(),
        (true, Some(t)) if t <= at => "revoked".into(),
        (true, Some(_)) => "revoked_after_signing".into(),
    }
}

/// Verifies an RFC 3161 token over `digest`: (time, intact, trusted, authority).
fn check_timestamp(token: &[u8], digest: &[u8], trust: &Trust, extra: &[Certificate]) -> Timestamp {
    let mut t = Timestamp {
        time: String::new(),
        intact: false,
        trusted: false,
        authority: String::new(),
    };
    let Ok(cms) = parse_cms(token) else {
        return t;
    };
    let Some(content) = cms
        .data
        .encap_content_info
        .econtent
        .as_ref()
        .map(|a| a.value().to_vec())
    else {
        return t;
    };
    let Ok(info) = x509_tsp::TstInfo::from_der(&content) else {
        return t;
    };
    let gen_time = info.gen_time.to_unix_duration().as_secs() as i64;
    t.time = rfc3339(gen_time);
    let imprint_ok = info.message_imprint.hashed_message.as_bytes() == digest;
    let content_digest = ring::digest::digest(&ring::digest::SHA256, &content);
    let alg_ok = digest_alg(&cms.info.digest_alg.oid).is_some();
    let inner = match digest_alg(&cms.info.digest_alg.oid) {
        Some(a) => ring::digest::digest(a, &content).as_ref().to_vec(),
        None => content_digest.as_ref().to_vec(),
    };
    t.intact = imprint_ok && alg_ok && check_signer(&cms, &inner).is_ok();
    if let Some(s) = &cms.signer {
        t.authority = subject(s);
        let mut pool = cms.certs.clone();
        pool.extend_from_slice(extra);
        t.trusted = chain(s, &pool, trust, gen_time, &ID_TIMESTAMPING_DER).is_ok();
    }
    t
}

/// DSS certificates and CRLs, if the document has a DSS.
fn dss<S: Source + ?Sized>(pdf: &Pdf<'_, S>) -> (Vec<Certificate>, Vec<Vec<u8>>) {
    let mut certs = Vec::new();
    let mut crls = Vec::new();
    let Ok(cat) = pdf.catalog() else {
        return (certs, crls);
    };
    let Ok(d) = cat.get(b"DSS").cloned() else {
        return (certs, crls);
    };
    let Ok(d) = pdf.dict(&d) else {
        return (certs, crls);
    };
    for (key, is_cert) in [(&b"Certs"[..], true), (b"CRLs", false)] {
        let Ok(arr) = d.get(key) else { continue };
        let Ok(Object::Array(arr)) = pdf.resolve(arr) else {
            continue;
        };
        for item in arr.iter().take(1000) {
            if let Ok(Object::Stream(s)) = pdf.resolve(item)
                && let Ok(data) = pdf.stream_data(&s)
            {
                if is_cert {
                    if let Ok(c) = Certificate::from_der(&data) {
                        certs.push(c);
                    }
                } else {
                    crls.push(data);
                }
            }
        }
    }
    (certs, crls)
}

/// The object `id` as it was in the revision that ends at `end` (None: it did not exist).
fn object_before<S: Source + ?Sized>(pdf: &Pdf<'_, S>, id: u32, end: u64) -> Option<Object> {
    for s in pdf.sections.iter().filter(|s| s.offset < end) {
        if let Some((_, e)) = s.entries.iter().find(|(i, _)| *i == id) {
            return match e {
                Entry::Free => None,
                Entry::InFile { offset, .. } => {
                    pdf.object_at(*offset, Some(id), &mut HashSet::new()).ok()
                }
                Entry::InStream { .. } => pdf.get((id, 0)).ok(),
            };
        }
    }
    None
}

fn as_dict(o: &Object) -> Option<&Dictionary> {
    match o {
        Object::Dictionary(d) => Some(d),
        Object::Stream(s) => Some(&s.dict),
        _ => None,
    }
}

fn is_sig_widget_or_field(d: &Dictionary) -> bool {
    matches!(d.get(b"FT"), Ok(Object::Name(n)) if n == b"Sig")
        || matches!(d.get(b"Parent"), Ok(Object::Reference(_)))
            && matches!(d.get(b"Subtype"), Ok(Object::Name(n)) if n == b"Widget")
}

fn changed_keys(old: &Dictionary, new: &Dictionary) -> BTreeSet<Vec<u8>> {
    let mut keys = BTreeSet::new();
    for (k, v) in new.iter() {
        if old.get(k).ok() != Some(v) {
            keys.insert(k.clone());
        }
    }
    for (k, _) in old.iter() {
        if !new.has(k) {
            keys.insert(k.clone());
        }
    }
    keys
}

fn refs_appended(old: &Object, new: &Object) -> Option<Vec<Object>> {
    match (old, new) {
        (Object::Array(o), Object::Array(n)) if n.len() >= o.len() && n.starts_with(o) => {
            n.get(o.len()..).map(|s| s.to_vec())
        }
        _ => None,
    }
}

/// Classifies one object changed after a signature.
fn classify<S: Source + ?Sized>(pdf: &Pdf<'_, S>, id: u32, end: u64) -> Change {
    let new = pdf.get((id, 0)).unwrap_or(Object::Null);
    let old = object_before(pdf, id, end);
    let ch = |kind: &str, allowed: bool, what: String| Change {
        object: id,
        kind: kind.into(),
        allowed,
        what,
    };
    let annot_ok = |o: &Object| -> bool {
        pdf.dict(o).is_ok_and(|d| {
            is_sig_widget_or_field(&d)
                || matches!(d.get(b"Name"), Ok(Object::Name(n)) if n == b"CrossPageSeal")
        })
    };
    let nd = as_dict(&new);
    let ty = nd.map(|d| name_of(d, b"Type")).unwrap_or_default();
    let Some(old) = old else {
        // A new object: harmless unless it is content that a changed page would show.
        return match (nd, ty.as_str()) {
            (Some(_), "Sig" | "DocTimeStamp") => {
                ch("later_signature", true, "signature dictionary".into())
            }
            (Some(_), "XRef") => ch("appearance", true, "cross-reference stream".into()),
            (Some(_), "XObject") => ch("appearance", true, "appearance of a later seal".into()),
            (Some(d), _) if is_sig_widget_or_field(d) => {
                ch("later_signature", true, "signature field".into())
            }
            (Some(d), "Annot") if matches!(d.get(b"Name"), Ok(Object::Name(n)) if n == b"CrossPageSeal") => {
                ch("later_signature", true, "cross-page seal slice".into())
            }
            (Some(d), _)
                if d.has(b"Certs") || d.has(b"CRLs") || d.has(b"OCSPs") || d.has(b"VRI") =>
            {
                ch("dss", true, "document security store".into())
            }
            (Some(d), _) if d.has(b"Fields") => ch("later_signature", true, "form".into()),
            (Some(_), "Page" | "Pages") => ch("modification", false, format!("new {ty} object")),
            (Some(_), "Annot") => ch("modification", false, "new annotation".into()),
            (Some(_), _) => ch("appearance", true, "new object".into()),
            (None, _) => ch("appearance", true, "new object".into()),
        };
    };
    if old == new {
        return ch("appearance", true, "rewritten unchanged".into());
    }
    if let (Some(od), Some(nd)) = (as_dict(&old), nd) {
        let keys = changed_keys(od, nd);
        let only = |allowed: &[&[u8]]| keys.iter().all(|k| allowed.contains(&k.as_slice()));
        if ty == "Catalog" && only(&[b"DSS", b"AcroForm", b"Extensions", b"Version", b"Metadata"]) {
            return ch(
                "later_signature",
                true,
                "catalog: form, DSS, version or metadata".into(),
            );
        }
        if ty == "Metadata" {
            return ch("metadata", true, "XMP metadata updated".into());
        }
        if nd.has(b"Fields") && only(&[b"Fields", b"SigFlags", b"DR", b"DA", b"NeedAppearances"]) {
            let grown = match (od.get(b"Fields"), nd.get(b"Fields")) {
                (Ok(o), Ok(n)) => refs_appended(o, n).is_some() || o == n,
                (Err(_), Ok(_)) => true,
                _ => false,
            };
            if grown {
                return ch("later_signature", true, "form fields added".into());
            }
        }
        if (ty == "Page" || nd.has(b"MediaBox") && nd.has(b"Contents")) && only(&[b"Annots"]) {
            let added = match (od.get(b"Annots"), nd.get(b"Annots")) {
                (Ok(o), Ok(n)) => refs_appended(o, n),
                (Err(_), Ok(Object::Array(n))) => Some(n.clone()),
                _ => None,
            };
            if let Some(added) = added
                && added.iter().all(annot_ok)
            {
                return ch("later_signature", true, "page: seal widgets added".into());
            }
            return ch("modification", false, "page annotations changed".into());
        }
        if is_sig_widget_or_field(nd) && only(&[b"V", b"AP", b"Rect", b"P", b"F"]) && !od.has(b"V")
        {
            return ch(
                "later_signature",
                true,
                "pre-created signature field signed".into(),
            );
        }
        let ft = name_of(nd, b"FT");
        if matches!(ft.as_str(), "Tx" | "Btn" | "Ch") && only(&[b"V", b"AP", b"AS"]) {
            return ch("form_filling", true, "form field filled".into());
        }
        if od.has(b"Certs") || od.has(b"CRLs") || od.has(b"VRI") {
            return ch("dss", true, "document security store".into());
        }
        if ty == "XRef" {
            return ch("appearance", true, "cross-reference stream".into());
        }
        let keys: Vec<String> = keys
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        let what = if ty == "Pages" {
            "the page tree changed (pages added, removed or reordered)".to_string()
        } else if matches!(new, Object::Stream(_)) {
            format!(
                "{} stream content or dictionary changed",
                if ty.is_empty() { "a" } else { &ty }
            )
        } else {
            format!(
                "{} changed: {}",
                if ty.is_empty() { "object" } else { &ty },
                keys.join(", ")
            )
        };
        return ch("modification", false, what);
    }
    if let Some(added) = refs_appended(&old, &new)
        && added.iter().all(annot_ok)
    {
        return ch("later_signature", true, "seal widgets appended".into());
    }
    ch("modification", false, "object changed".into())
}

/// Decodes a CMS SignedData (signature or time-stamp token) and checks its signer against a
/// content digest, the way verification does: for fuzzing and diagnostics. `Err` names what is
/// wrong; never panics on any input.
pub fn check_cms(der: &[u8], content_digest: &[u8]) -> std::result::Result<Option<String>, String> {
    let cms = parse_cms(der)?;
    check_signer(&cms, content_digest)?;
    Ok(cms.signer.as_ref().map(subject))
}

/// Checks an RFC 3161 token over `digest` with no trusted roots: (time, intact).
pub fn inspect_timestamp(token: &[u8], digest: &[u8]) -> (String, bool) {
    let t = check_timestamp(token, digest, &Trust::default(), &[]);
    (t.time, t.intact)
}

/// Verifies every signature of the document.
pub fn verify_document<S: Source + ?Sized>(src: &S, trust: &Trust, now: i64) -> Result<Report> {
    let pdf = Pdf::open(src)?;
    let len = pdf.len();
    let fields = signature_fields(&pdf)?;
    let (dss_certs, dss_crls) = dss(&pdf);
    let mut crls = trust.crls.clone();
    crls.extend(dss_crls);
    let mut issuers: Vec<Vec<u8>> = trust.roots.clone();
    issuers.extend(dss_certs.iter().filter_map(|c| c.to_der().ok()));
    let mut reports = Vec::new();
    for (field, sig) in fields {
        let sub_filter = name_of(&sig, b"SubFilter");
        let mut problems = Vec::new();
        let br: Vec<u64> = match sig.get(b"ByteRange") {
            Ok(Object::Array(a)) => a
                .iter()
                .map(|o| match o {
                    Object::Integer(i) if *i >= 0 => *i as u64,
                    _ => u64::MAX,
                })
                .collect(),
            _ => Vec::new(),
        };
        let br: [u64; 4] = match <[u64; 4]>::try_from(br.as_slice()) {
            Ok(b) if b[0] == 0 && b[1] < b[2] && b[2].saturating_add(b[3]) <= len => b,
            _ => {
                problems.push("the byte range is malformed or points outside the file".into());
                [0; 4]
            }
        };
        let contents = match sig.get(b"Contents") {
            Ok(Object::String(c, _)) => c.clone(),
            _ => Vec::new(),
        };
        // The gap must be exactly the hex string holding /Contents.
        if problems.is_empty() {
            let gap = pdf.read(br[1], (br[2] - br[1]).min(1 << 22) as usize)?;
            let ok = gap.first() == Some(&b'<')
                && gap.last() == Some(&b'>')
                && hex::decode(
                    gap.get(1..gap.len().saturating_sub(1))
                        .unwrap_or_default()
                        .iter()
                        .copied()
                        .filter(|b| !b.is_ascii_whitespace())
                        .collect::<Vec<u8>>(),
                )
                .is_ok_and(|g| g == contents);
            if !ok {
                problems.push("the unsigned gap is not exactly the signature's /Contents".into());
            }
        }
        let end = br[2] + br[3];
        let digest = |alg: &'static ring::digest::Algorithm| -> Result<Vec<u8>> {
            let mut ctx = ring::digest::Context::new(alg);
            pdf.stream_range(br[0], br[0] + br[1], |b| ctx.update(b))?;
            pdf.stream_range(br[2], end, |b| ctx.update(b))?;
            Ok(ctx.finish().as_ref().to_vec())
        };
        let claimed = match sig.get(b"M") {
            Ok(Object::String(m, _)) => pdf_date(m),
            _ => None,
        };
        let mut rep = SignatureReport {
            field: field.clone(),
            sub_filter: sub_filter.clone(),
            verdict: String::new(),
            intact: false,
            problems: Vec::new(),
            signer: None,
            seal: None,
            trusted: false,
            chain: Vec::new(),
            revocation: "unknown".into(),
            claimed_time: claimed.map(rfc3339),
            timestamp: None,
            byte_range: br,
            covered_bytes: end,
            covers_whole_file: end == len,
            certification: None,
            changes_after: Vec::new(),
        };
        if let Ok(Object::Array(refs)) = sig.get(b"Reference") {
            for r in refs {
                if let Ok(r) = pdf.dict(r)
                    && name_of(&r, b"TransformMethod") == "DocMDP"
                {
                    let p = r
                        .get(b"TransformParams")
                        .ok()
                        .and_then(|p| pdf.dict(p).ok())
                        .and_then(|p| match p.get(b"P") {
                            Ok(Object::Integer(i)) => Some(*i),
                            _ => None,
                        })
                        .unwrap_or(2);
                    rep.certification = Some(p);
                }
            }
        }
        if problems.is_empty() {
            match parse_cms(&contents) {
                Err(e) => problems.push(e),
                Ok(cms) if sub_filter == "ETSI.RFC3161" => {
                    let alg = digest_alg(
                        &x509_tsp::TstInfo::from_der(
                            cms.data
                                .encap_content_info
                                .econtent
                                .as_ref()
                                .map(|a| a.value())
                                .unwrap_or_default(),
                        )
                        .map(|t| t.message_imprint.hash_algorithm.oid)
                        .unwrap_or(super::cms::ID_SHA256),
                    )
                    .unwrap_or(&ring::digest::SHA256);
                    let d = digest(alg)?;
                    let mut pool = cms.certs.clone();
                    pool.extend(dss_certs.iter().cloned());
                    let ts = check_timestamp(&contents, &d, trust, &pool);
                    rep.intact = ts.intact;
                    rep.trusted = ts.trusted;
                    if !ts.intact {
                        problems.push("the document time-stamp does not match the document".into());
                    }
                    if let Some(s) = &cms.signer {
                        rep.signer = Some(Signer {
                            subject: subject(s),
                            serial: hex::encode(s.tbs_certificate.serial_number.as_bytes()),
                            issuer: s.tbs_certificate.issuer.to_string(),
                        });
                        rep.revocation = revocation(s, &issuers, &crls, now);
                    }
                    rep.timestamp = Some(ts);
                }
                Ok(cms) => {
                    let alg = digest_alg(&cms.info.digest_alg.oid);
                    match alg {
                        None => problems.push("unsupported digest algorithm".into()),
                        Some(alg) => {
                            let d = digest(alg)?;
                            match check_signer(&cms, &d) {
                                Ok(()) => rep.intact = true,
                                Err(e) => problems.push(e),
                            }
                        }
                    }
                    // The signature time-stamp, if any.
                    let mut pool = cms.certs.clone();
                    pool.extend(dss_certs.iter().cloned());
                    if let Some(tok) = cms
                        .info
                        .unsigned_attrs
                        .as_ref()
                        .and_then(|u| u.iter().find(|a| a.oid == ID_SIGNATURE_TIMESTAMP))
                        .and_then(|a| a.values.iter().next())
                        .and_then(|v| v.to_der().ok())
                    {
                        let sd = ring::digest::digest(
                            &ring::digest::SHA256,
                            cms.info.signature.as_bytes(),
                        );
                        let ts = check_timestamp(&tok, sd.as_ref(), trust, &pool);
                        if !ts.intact {
                            problems.push(
                                "the signature time-stamp does not match the signature".into(),
                            );
                        }
                        rep.timestamp = Some(ts);
                    }
                    if let Some(s) = &cms.signer {
                        let serial = hex::encode(s.tbs_certificate.serial_number.as_bytes());
                        rep.seal = trust
                            .seals
                            .iter()
                            .find(|(cs, _, _)| *cs == serial)
                            .map(|(_, id, name)| format!("{id}: {name}"));
                        rep.signer = Some(Signer {
                            subject: subject(s),
                            serial,
                            issuer: s.tbs_certificate.issuer.to_string(),
                        });
                        let at = rep
                            .timestamp
                            .as_ref()
                            .filter(|t| t.intact && t.trusted)
                            .and_then(|t| {
                                time::OffsetDateTime::parse(
                                    &t.time,
                                    &time::format_description::well_known::Rfc3339,
                                )
                                .ok()
                            })
                            .map(|t| t.unix_timestamp())
                            .or(claimed)
                            .unwrap_or(now);
                        match chain(
                            s,
                            &pool,
                            trust,
                            at,
                            &crate::pki::ca::EKU_DOCUMENT_SIGNING_DER,
                        ) {
                            Ok(c) => {
                                rep.trusted = true;
                                rep.chain = c;
                            }
                            Err(e) => problems.push(e),
                        }
                        rep.revocation = revocation(s, &issuers, &crls, at);
                        if rep.revocation == "revoked" {
                            rep.trusted = false;
                            problems.push(
                                "the signer's certificate was revoked at signing time".into(),
                            );
                        }
                    }
                }
            }
        }
        // What changed after the revision this signature covers.
        if rep.intact && end < len {
            let mut ids = BTreeSet::new();
            for s in pdf.sections.iter().filter(|s| s.offset >= end) {
                for (id, _) in &s.entries {
                    ids.insert(*id);
                }
            }
            for id in ids {
                if id == 0 {
                    continue;
                }
                let c = classify(&pdf, id, end);
                if rep.changes_after.len() < MAX_CHANGES_LISTED || !c.allowed {
                    rep.changes_after.push(c);
                }
            }
            if let Some(p) = rep.certification {
                for c in rep.changes_after.iter_mut() {
                    if p == 1 && c.kind != "dss" {
                        c.allowed = false;
                    }
                }
            }
            // Bytes appended without a cross-reference section are not a revision at all.
            let last = pdf.sections.first().map(|s| s.offset).unwrap_or(0);
            if last < end {
                rep.changes_after.push(Change {
                    object: 0,
                    kind: "modification".into(),
                    allowed: false,
                    what: "bytes appended after the signed revision".into(),
                });
            }
        }
        rep.verdict = if !rep.intact {
            "invalid"
        } else if rep.changes_after.iter().any(|c| !c.allowed) {
            "modified"
        } else if !rep.trusted || !problems.is_empty() {
            "untrusted"
        } else {
            "valid"
        }
        .into();
        rep.problems = problems;
        reports.push(rep);
    }
    let verdict = if reports.is_empty() {
        "unsigned"
    } else if reports.iter().any(|r| r.verdict == "invalid") {
        "invalid"
    } else if reports.iter().any(|r| r.verdict == "modified") {
        "modified"
    } else if reports.iter().any(|r| r.verdict == "untrusted") {
        "untrusted"
    } else {
        "valid"
    };
    Ok(Report {
        verdict: verdict.into(),
        bytes: len,
        revisions: pdf.sections.len(),
        signatures: reports,
    })
}

/// Rejects what is not a PDF early with the PDF error code (used by callers before trust setup).
pub fn looks_like_pdf(b: &[u8]) -> Result<()> {
    if b.starts_with(b"%PDF-") {
        Ok(())
    } else {
        Err(Error::BadPdf {
            reason: "no %PDF- header".into(),
        })
    }
}
