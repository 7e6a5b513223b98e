//! Mutual-recognition verification: what a case-handling system learns about a license while
//! it processes a case.
//!
//! Authenticity is decided from the signature and the issuer's certificate chain, never from
//! the database alone: a row changed behind the service's back fails here.

pub mod clients;
pub mod grants;
pub mod memo;
pub mod merkle;
pub mod receipt;
pub mod remote;
pub mod trust;

use crate::app::App;
use crate::error::{Error, FieldError, Result};
use crate::license::Status;
use crate::license::id::LicenseId;
use crate::store::LicenseRow;
use clients::Client;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A verification request: the case it serves, and which license.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// Matter code (事项编码) of the case.
    pub matter_code: String,
    /// Case number (办件编号).
    pub case_number: String,
    /// The license identifier; or `type` with `number`; or `type` with `holder_code`.
    #[serde(default)]
    pub license_id: Option<String>,
    #[serde(default, rename = "type")]
    pub type_code: Option<String>,
    #[serde(default)]
    pub number: Option<String>,
    #[serde(default)]
    pub holder_code: Option<String>,
    /// Instead of the above: a show code (`EL1:...`) the holder presented. It names the
    /// license, and the fields the holder disclosed in it are released to the client as the
    /// holder's consent (`basis: "show_code"`), within the client's scope, while the code lives.
    #[serde(default)]
    pub show_code: Option<String>,
}

/// What a show code brought to a verification: the holder's disclosure.
#[derive(Debug, Clone)]
struct Shown {
    /// The disclosed fields, as the code's signed token carries them.
    fields: Map<String, Value>,
    /// The code's unique id (hex), for the audit log.
    cti: Option<String>,
}

impl Shown {
    /// The audit entry's `extra` details, with the show code's id when one was presented.
    fn noted(shown: &Option<Shown>, mut extra: Value) -> Value {
        if let (Some(s), Some(d)) = (shown, extra.as_object_mut()) {
            d.insert("show_code".into(), serde_json::json!(s.cti));
        }
        extra
    }
}

/// Checks a request's show code, if it has one, against the authority keys this deployment
/// trusts (its own and imported regions'), and names the license it shows in the request.
async fn open_show_code(app: &App, r: &mut VerifyRequest) -> Result<Option<Shown>> {
    let Some(code) = r.show_code.take() else {
        return Ok(None);
    };
    if r.license_id.is_some()
        || r.type_code.is_some()
        || r.number.is_some()
        || r.holder_code.is_some()
    {
        return Err(Error::InvalidFields {
            errors: vec![FieldError::new(
                "/show_code",
                "give a show code or a license identifier, not both",
            )],
        });
    }
    let trust = app.show_code_trust.get(app).await?;
    let c = crate::present::check(&code, &trust, app.clock.unix());
    use crate::present::Verdict;
    match c.verdict {
        Verdict::Malformed => Err(Error::ShowCodeMalformed { reason: c.reason }),
        Verdict::Forged | Verdict::UnknownIssuer => {
            Err(Error::ShowCodeNotAuthentic { reason: c.reason })
        }
        Verdict::CodeExpired => Err(Error::ShowCodeExpired),
        Verdict::Valid | Verdict::Suspended | Verdict::Revoked | Verdict::NotInForce => {
            let Some(id) = c.license_id else {
                return Err(Error::ShowCodeMalformed {
                    reason: "it names no license".into(),
                });
            };
            r.license_id = Some(id);
            Ok(Some(Shown {
                fields: c.fields,
                cti: c.cti,
            }))
        }
    }
}

/// The issuer signature check.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SignatureCheck {
    /// The COSE signature verifies with the issuer's certificate over the stored record.
    pub valid: bool,
    /// The issuer's certificate chains to this region's root (document-signing use).
    pub chain_trusted: bool,
    pub issuer_certificate_serial: String,
    /// Revoked after (or before) the license was issued; see `authentic`.
    pub issuer_certificate_revoked_at: Option<i64>,
}

/// The answer to a verification.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Verification {
    pub checked_at: i64,
    pub matter_code: String,
    pub case_number: String,
    pub client: String,
    /// Signature valid, chain trusted, and the issuer's certificate not revoked before issuance.
    pub authentic: bool,
    pub signature: SignatureCheck,
    pub license_id: String,
    #[serde(rename = "type")]
    pub type_code: String,
    pub number: String,
    pub issuer: String,
    pub issuer_name: String,
    pub valid_from: String,
    pub valid_to: Option<String>,
    /// Status as of `checked_at`.
    pub status: Status,
    pub status_code: String,
    /// `grant` when holder grants released the fields, `statutory` when the client's statutory
    /// basis did, `show_code` when the holder's disclosure in a presented show code did (with
    /// grants, perhaps), `none` when no field was released.
    pub basis: String,
    /// The holder grants applied (single-use ones are now used).
    pub grants: Vec<String>,
    /// Released fields only (the client's scope, and a basis to see them).
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
    pub fields_withheld: Vec<String>,
    /// The region that issued the license, when it is not ours (resolved through its endpoint).
    pub region: Option<String>,
    /// That region's own signed receipt, which our answer relies on.
    pub foreign_receipt: Option<String>,
    /// Signed receipt of this answer (`ELR2:` + base64url statements + `.` + base64url COSE
    /// Receipt of RFC 9942) for the case file;
    /// verify it with `elicense receipt verify` or `POST /v1/receipts/verify`.
    pub receipt: String,
}

/// The parts of a signed record that a verification can release (the rest is skipped unread).
#[derive(Debug, Default, Deserialize)]
struct RecordFace {
    #[serde(default)]
    fields: Map<String, Value>,
    #[serde(default)]
    holder: Option<HolderFace>,
}

#[derive(Debug, Default, Deserialize)]
struct HolderFace {
    #[serde(default)]
    name: Value,
    #[serde(default)]
    code: Value,
}

fn text_ok(s: &str) -> bool {
    let n = s.chars().count();
    n > 0 && n <= 64 && !s.chars().any(char::is_control)
}

/// Finds the license a request names.
async fn find(app: &App, r: &VerifyRequest) -> Result<LicenseRow> {
    match (&r.license_id, &r.type_code, &r.number, &r.holder_code) {
        (Some(id), None, None, None) => Ok(app.licenses.find(id).await?.0),
        (None, Some(t), Some(n), None) => {
            app.store
                .license_by_number(t, n)
                .await?
                .ok_or_else(|| Error::LicenseNotFound {
                    id: format!("{t}/{n}"),
                })
        }
        (None, Some(t), None, Some(h)) => {
            let filter = crate::store::LicenseFilter {
                type_code: Some(t.clone()),
                holder_code: Some(h.clone()),
                limit: 100,
                ..Default::default()
            };
            let today = app.clock.today().to_string();
            let rows = app.store.list_licenses(&filter, &today).await?;
            // The holder's newest license of the type that is still in force, else the newest.
            let in_force = |r: &&LicenseRow| {
                matches!(
                    app.licenses.effective_status(r),
                    Status::Valid | Status::Suspended
                )
            };
            rows.iter()
                .filter(in_force)
                .max_by_key(|r| r.created_at)
                .or_else(|| rows.iter().max_by_key(|r| r.created_at))
                .cloned()
                .ok_or_else(|| Error::LicenseNotFound {
                    id: format!("{t}/holder"),
                })
        }
        _ => Err(Error::InvalidFields {
            errors: vec![FieldError::new(
                "/",
                "give license_id, or type with number, or type with holder_code, or show_code",
            )],
        }),
    }
}

/// Verifies a license for a client in the course of a case.
pub async fn verify(app: &App, client: &Client, mut r: VerifyRequest) -> Result<Verification> {
    let mut errs = Vec::new();
    if !text_ok(&r.matter_code) {
        errs.push(FieldError::new(
            "/matter_code",
            "must be 1 to 64 printable characters",
        ));
    }
    if !text_ok(&r.case_number) {
        errs.push(FieldError::new(
            "/case_number",
            "must be 1 to 64 printable characters",
        ));
    }
    if !errs.is_empty() {
        return Err(Error::InvalidFields { errors: errs });
    }
    let shown = open_show_code(app, &mut r).await?;
    let row = match find(app, &r).await {
        Ok(row) => row,
        Err(Error::LicenseNotFound { id }) => {
            // Perhaps another region's license: resolved through that region's endpoint.
            let foreign = match r.license_id.as_deref().map(LicenseId::parse) {
                Some(Ok(parsed)) => trust::region_of_issuer(app, &parsed.issuer_code)
                    .await?
                    .map(|region| (region, parsed)),
                _ => None,
            };
            return match foreign {
                Some((region, parsed)) => {
                    verify_foreign(app, client, r, region, parsed, shown).await
                }
                None => Err(Error::LicenseNotFound { id }),
            };
        }
        Err(e) => return Err(e),
    };
    if !client.types.contains(&row.type_code) {
        return Err(Error::OutOfScope {
            client: client.id.clone(),
            type_code: row.type_code.clone(),
        });
    }
    let issuer = app.issuers.get(app, &row.issuer).await?;
    let cert = &issuer.cert;
    let valid = app
        .signature_memo
        .verify_detached(&row.signature, row.record.as_bytes(), &issuer.public_key)
        .is_ok()
        && LicenseId::parse(&row.id).is_ok_and(|id| id.lineage() == row.lineage);
    let chain_trusted =
        issuer.chain_signatures_ok && (cert.not_before..=cert.not_after).contains(&row.created_at);
    let revoked_before = cert.revoked_at.is_some_and(|at| at <= row.created_at);
    let authentic = valid && chain_trusted && !revoked_before;
    let status = app.licenses.effective_status(&row);
    // Fields come from the signed record, and only when the signature holds.
    let face: RecordFace = serde_json::from_str(&row.record).unwrap_or_default();
    let mut all = face.fields;
    if let Some(h) = face.holder {
        all.insert("holder_name".into(), h.name);
        all.insert("holder_code".into(), h.code);
    }
    // What may be released: the client's scope, and a basis — holder grants for this client or
    // matter, or the client's statutory basis (which covers its whole scope).
    // A statutory client's basis already covers its whole scope: no grant is needed or used.
    let (granted, grants_used) = if authentic && !client.statutory {
        grants::released(app, &row.lineage, &client.id, &r.matter_code).await?
    } else {
        (Vec::new(), Vec::new())
    };
    // A show code's disclosure is the holder's consent to exactly those fields; their values
    // still come from the signed record.
    let shown_ok = |k: &str| shown.as_ref().is_some_and(|s| s.fields.contains_key(k));
    let mut fields = Map::new();
    let mut withheld = Vec::new();
    for (k, v) in all {
        let basis_ok = client.statutory || granted.contains(&k) || shown_ok(&k);
        if authentic && basis_ok && client.may_see(&k) {
            fields.insert(k, v);
        } else {
            withheld.push(k);
        }
    }
    let basis = if fields.is_empty() {
        "none"
    } else if client.statutory {
        "statutory"
    } else if fields.keys().all(|k| granted.contains(k)) {
        "grant"
    } else {
        "show_code"
    };
    let extra = Shown::noted(&shown, serde_json::json!({"grants": grants_used}));
    let outcome = Outcome {
        license_id: &row.id,
        license_version: row.version,
        status,
        authentic,
        fields: &fields,
        basis,
        extra,
    };
    let (checked_at, receipt) = record_outcome(app, client, &r, &outcome).await?;
    Ok(Verification {
        checked_at,
        receipt,
        region: None,
        foreign_receipt: None,
        matter_code: r.matter_code,
        case_number: r.case_number,
        client: client.id.clone(),
        authentic,
        signature: SignatureCheck {
            valid,
            chain_trusted,
            issuer_certificate_serial: cert.serial.clone(),
            issuer_certificate_revoked_at: cert.revoked_at,
        },
        license_id: row.id.clone(),
        type_code: row.type_code.clone(),
        number: row.number.clone(),
        issuer: row.issuer.clone(),
        issuer_name: issuer.name.clone(),
        valid_from: row.valid_from.clone(),
        valid_to: row.valid_to.clone(),
        status,
        status_code: status.code().to_string(),
        basis: basis.into(),
        grants: grants_used,
        fields,
        fields_withheld: withheld,
    })
}

/// What a verification concluded, for the audit log and the receipt.
struct Outcome<'a> {
    license_id: &'a str,
    license_version: i64,
    status: Status,
    authentic: bool,
    fields: &'a Map<String, Value>,
    basis: &'a str,
    /// Added to the audit entry's details (grants used, the other region).
    extra: Value,
}

/// Appends the verification to the audit log, then signs the receipt that cites the entry.
/// Returns the time of the check and the receipt.
async fn record_outcome(
    app: &App,
    client: &Client,
    r: &VerifyRequest,
    o: &Outcome<'_>,
) -> Result<(i64, String)> {
    let mut details = serde_json::json!({
        "matter_code": r.matter_code, "case_number": r.case_number, "basis": o.basis,
        "fields_released": o.fields.keys().collect::<Vec<_>>(), "authentic": o.authentic,
        "status": o.status.code(),
    });
    if let (Some(d), Some(extra)) = (details.as_object_mut(), o.extra.as_object()) {
        d.extend(extra.clone());
    }
    // The receipt cites the audit entry and its time: its statements are made once the entry
    // has its place, and signed with the rest of its batch.
    let region = app.licenses.region_code().await?;
    let (license_id, status_code, fields, basis) = (
        o.license_id.to_string(),
        o.status.code(),
        o.fields.clone(),
        o.basis.to_string(),
    );
    let (client_id, matter_code, case_number) = (
        client.id.clone(),
        r.matter_code.clone(),
        r.case_number.clone(),
    );
    let (license_version, authentic) = (o.license_version, o.authentic);
    let statements: crate::audit::Statements = Box::new(move |audit_seq, at| {
        receipt::statements(&receipt::Facts {
            region: &region,
            license_id: &license_id,
            license_version,
            status_code,
            authentic,
            fields: &fields,
            basis: &basis,
            client: &client_id,
            matter_code: &matter_code,
            case_number: &case_number,
            verified_at: at,
            audit_seq,
        })
    });
    let entry = crate::audit::Entry::new(&client.id, "verification", o.license_id, details);
    let (_, checked_at, receipt) = app.audit.append_with_receipt(entry, statements).await?;
    Ok((checked_at, receipt))
}

/// Verifies another region's license by asking that region (mutual TLS, our cross-region client
/// certificate), checking its signed receipt against its pinned root, and releasing to our
/// client only what that region released and our client's scope and statutory basis allow.
async fn verify_foreign(
    app: &App,
    client: &Client,
    r: VerifyRequest,
    region: crate::store::ForeignRegionRow,
    parsed: LicenseId,
    shown: Option<Shown>,
) -> Result<Verification> {
    if !client.types.contains(&parsed.type_code) {
        return Err(Error::OutOfScope {
            client: client.id.clone(),
            type_code: parsed.type_code.clone(),
        });
    }
    let id = parsed.to_string();
    let ask = serde_json::json!({"matter_code": r.matter_code, "case_number": r.case_number, "license_id": id});
    let (status, answer) = remote::post(app, &region, "/v1/verifications", &ask).await?;
    let fail = |why: String| Error::ForeignRegion {
        region: region.code.clone(),
        reason: why,
    };
    match status {
        200 => {}
        404 => return Err(Error::LicenseNotFound { id }),
        s => {
            return Err(fail(format!(
                "it answered {s} {}",
                answer.get("code").and_then(Value::as_str).unwrap_or("")
            )));
        }
    }
    let their_receipt = answer
        .get("receipt")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let checked = receipt::verify(&their_receipt, std::slice::from_ref(&region.root_der))
        .map_err(|e| fail(format!("its receipt does not verify: {e}")))?;
    let s = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let receipt_status = s(&checked.payload, "status");
    let status_code = s(&answer, "status_code");
    if s(&checked.payload, "license_id") != s(&answer, "license_id")
        || receipt_status != status_code
    {
        return Err(fail("its answer and its receipt disagree".into()));
    }
    // The fields it released are those its signed receipt states, value for value.
    let empty = Map::new();
    let theirs = answer
        .get("fields")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let stated = checked
        .payload
        .get("fields_sha256")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if theirs.len() != stated.len()
        || theirs.iter().any(|(k, v)| {
            stated.get(k).and_then(Value::as_str) != Some(receipt::field_hash(v).as_str())
        })
    {
        return Err(fail(
            "the fields of its answer are not those its receipt states".into(),
        ));
    }
    let authentic = answer.get("authentic") == Some(&Value::Bool(true))
        && checked.payload.get("authentic") == Some(&Value::Bool(true));
    let status = Status::from_code(&status_code).ok_or_else(|| fail("unknown status".into()))?;
    let mut fields = Map::new();
    let mut withheld = Vec::new();
    for (k, v) in theirs {
        if authentic && client.statutory && client.may_see(k) {
            fields.insert(k.clone(), v.clone());
        } else {
            withheld.push(k.clone());
        }
    }
    // What the holder disclosed in a show code (signed by that region's authority, checked
    // against its trust list) is theirs to release to our client, within our client's scope.
    let mut by_code = false;
    if let Some(s) = &shown {
        for (k, v) in &s.fields {
            if fields.contains_key(k) {
                continue;
            }
            if authentic && client.may_see(k) {
                withheld.retain(|w| w != k);
                fields.insert(k.clone(), v.clone());
                by_code = true;
            } else if !withheld.contains(k) {
                withheld.push(k.clone());
            }
        }
    }
    let basis = if fields.is_empty() {
        "none"
    } else if by_code {
        "show_code"
    } else {
        "statutory"
    };
    let extra = Shown::noted(&shown, serde_json::json!({"region": region.code}));
    let outcome = Outcome {
        license_id: &id,
        license_version: i64::from(parsed.version),
        status,
        authentic,
        fields: &fields,
        basis,
        extra,
    };
    let (checked_at, receipt) = record_outcome(app, client, &r, &outcome).await?;
    let sig = answer.get("signature").cloned().unwrap_or(Value::Null);
    Ok(Verification {
        checked_at,
        matter_code: r.matter_code,
        case_number: r.case_number,
        client: client.id.clone(),
        authentic,
        signature: SignatureCheck {
            valid: sig.get("valid") == Some(&Value::Bool(true)),
            chain_trusted: sig.get("chain_trusted") == Some(&Value::Bool(true)),
            issuer_certificate_serial: s(&sig, "issuer_certificate_serial"),
            issuer_certificate_revoked_at: sig
                .get("issuer_certificate_revoked_at")
                .and_then(Value::as_i64),
        },
        license_id: id,
        type_code: parsed.type_code.clone(),
        number: s(&answer, "number"),
        issuer: parsed.issuer_code.clone(),
        issuer_name: s(&answer, "issuer_name"),
        valid_from: s(&answer, "valid_from"),
        valid_to: answer
            .get("valid_to")
            .and_then(Value::as_str)
            .map(String::from),
        status,
        status_code: status.code().to_string(),
        basis: basis.into(),
        grants: Vec::new(),
        fields,
        fields_withheld: withheld,
        receipt,
        region: Some(region.code.clone()),
        foreign_receipt: Some(their_receipt),
    })
}

/// What verification needs to know about an issuing authority, cached for a few seconds: the
/// certificate, its public key, and whether its signatures chain to the region root for
/// document signing (time-independent; the validity window is checked per license).
#[derive(Debug)]
pub struct IssuerInfo {
    pub name: String,
    pub cert: crate::store::CertRow,
    pub public_key: Vec<u8>,
    pub chain_signatures_ok: bool,
}

/// Issuer facts per authority code; entries are reloaded after [`ISSUER_TTL`], so a revoked
/// authority certificate shows within that time on every node.
#[derive(Debug, Default)]
pub struct IssuerCache(
    std::sync::RwLock<
        std::collections::HashMap<String, (std::time::Instant, std::sync::Arc<IssuerInfo>)>,
    >,
);

/// How long issuer facts are reused.
pub const ISSUER_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl IssuerCache {
    pub async fn get(&self, app: &App, code: &str) -> Result<std::sync::Arc<IssuerInfo>> {
        if let Some((at, info)) = self.0.read().ok().and_then(|m| m.get(code).cloned())
            && at.elapsed() < ISSUER_TTL
        {
            return Ok(info);
        }
        let auth = app
            .store
            .authority(code)
            .await?
            .ok_or_else(|| Error::internal("issuer of a stored license missing"))?;
        let cert = app
            .store
            .certificate(&auth.cert_serial)
            .await?
            .ok_or_else(|| Error::internal("authority certificate missing"))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert.der)
            .map_err(|e| Error::internal(format!("authority certificate: {e}")))?;
        let public_key = parsed.public_key().subject_public_key.data.to_vec();
        let chain_signatures_ok = chain_ok(app, &cert.der, cert.not_before + 1).await?;
        let info = std::sync::Arc::new(IssuerInfo {
            name: auth.name,
            cert,
            public_key,
            chain_signatures_ok,
        });
        if let Ok(mut m) = self.0.write() {
            m.insert(code.to_string(), (std::time::Instant::now(), info.clone()));
        }
        Ok(info)
    }

    /// Forgets an authority (after its certificate changed on this node).
    pub fn forget(&self, code: &str) {
        if let Ok(mut m) = self.0.write() {
            m.remove(code);
        }
    }
}

/// Does an authority certificate chain to the region root for document signing at `at`?
async fn chain_ok(app: &App, der: &[u8], at: i64) -> Result<bool> {
    use crate::pki::path;
    let root = app.pki.root().await?;
    let anchors = [root.der.clone()];
    Ok(path::validate(&path::Request::new(
        der,
        &anchors,
        at,
        path::Usage::Required(&crate::pki::ca::EKU_DOCUMENT_SIGNING_DER),
    ))
    .is_ok())
}
