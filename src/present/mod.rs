//! Show codes (亮证码): a holder shows a license as a QR code that discloses only the fields
//! they chose, and an officer checks it — offline from a trust list.
//!
//! `EL1:` + Base45(zlib(COSE_Sign1(CWT))), after the EU Digital COVID Certificate pipeline. The
//! CWT carries `iss` (issuer credit code), `iat`, `exp`, `cti` (16 random bytes) and a `lic`
//! claim: license id, type, number, region, the chosen fields only, and the stapled status with
//! its as-of time. It is signed (ES256) by the issuing authority's key — the same key and
//! certificate that sign the license record, so a verifier needs exactly the authority
//! certificates a trust list already carries; `kid` is the first 8 bytes of SHA-256 of that
//! certificate.

pub mod qr;
pub mod status_list;

use crate::error::{Error, FieldError, Result};
use crate::license::Status;
use crate::license::id::LicenseId;
use crate::pki::cert_kid;
use ciborium::Value as Cbor;
use coset::{
    CborSerializable, CoseSign1, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable, iana,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::io::{Read, Write};

/// Text prefix of a show code.
pub const PREFIX: &str = "EL1:";
/// Phone codes live this long by default.
pub const PHONE_SECONDS: i64 = 300;
/// Stapled status older than this is reported stale when no fresher status is at hand.
pub const STATUS_FRESH_SECONDS: i64 = 24 * 3600;
/// Largest decompressed code accepted (a code is a few hundred bytes).
const MAX_INFLATED: u64 = 16 * 1024;

/// What the holder asks for.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShowCodeRequest {
    pub license_id: String,
    /// Fields to disclose; the type's default disclosable fields when empty.
    #[serde(default)]
    pub fields: Vec<String>,
    /// A printed code lives as long as the license (and uses stronger error correction).
    #[serde(default)]
    pub printed: bool,
}

/// A show code ready to display.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ShowCode {
    /// `EL1:...`, what the QR code contains.
    pub code: String,
    pub expires_at: i64,
    pub disclosed: Vec<String>,
    /// The QR code as SVG.
    pub qr_svg: String,
}

/// Makes a show code for one of `holder`'s licenses.
pub async fn issue(app: &crate::app::App, holder: &str, req: ShowCodeRequest) -> Result<ShowCode> {
    let (row, _) = app.licenses.find(&req.license_id).await?;
    if row.holder_code != holder {
        return Err(Error::LicenseNotFound { id: req.license_id });
    }
    let t = app.licenses.license_type(&row.type_code).await?;
    // The type's minimum always; then the holder's choice (the type's default choice when none),
    // which must come from the type's disclosable fields.
    let chosen_by_holder = if req.fields.is_empty() {
        t.def.disclosable.clone()
    } else {
        req.fields.clone()
    };
    if let Some(f) = chosen_by_holder
        .iter()
        .find(|f| !t.def.disclosable.contains(f) && !t.def.disclose_minimum.contains(f))
    {
        return Err(Error::InvalidFields {
            errors: vec![FieldError::new(
                "/fields",
                format!("{f:?} may not be disclosed in a show code of this type"),
            )],
        });
    }
    let mut fields = t.def.disclose_minimum.clone();
    for f in chosen_by_holder {
        if !fields.contains(&f) {
            fields.push(f);
        }
    }
    let record: Value = serde_json::from_str(&row.record).map_err(Error::internal)?;
    let all = record
        .get("fields")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut chosen = Map::new();
    for f in &fields {
        let v = match f.as_str() {
            "holder_name" => record.pointer("/holder/name").cloned(),
            "holder_code" => record.pointer("/holder/code").cloned(),
            _ => all.get(f).cloned(),
        };
        match v {
            Some(v) => {
                chosen.insert(f.clone(), v);
            }
            None => {
                return Err(Error::InvalidFields {
                    errors: vec![FieldError::new(
                        "/fields",
                        format!("{f:?} is not a field of this license"),
                    )],
                });
            }
        }
    }
    let now = app.clock.unix();
    let exp = if req.printed {
        row.valid_to
            .as_deref()
            .and_then(|d| {
                time::Date::parse(d, &time::format_description::well_known::Iso8601::DATE).ok()
            })
            .map(|d| {
                d.midnight()
                    .assume_offset(crate::clock::CST)
                    .unix_timestamp()
                    + 86_400
            })
            .unwrap_or(now + 10 * 365 * 86_400)
    } else {
        now + app.config.show_code_seconds
    };
    let status = app.licenses.effective_status(&row);
    let auth = app.licenses.signing_authority(&row.issuer).await?;
    let region = app.licenses.region_code().await?;
    let mut cti = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut cti)
        .map_err(|_| Error::internal("random generator failed"))?;
    let lic = Cbor::Map(vec![
        (Cbor::Text("id".into()), Cbor::Text(row.id.clone())),
        (Cbor::Text("type".into()), Cbor::Text(row.type_code.clone())),
        (Cbor::Text("number".into()), Cbor::Text(row.number.clone())),
        (Cbor::Text("region".into()), Cbor::Text(region)),
        (
            Cbor::Text("fields".into()),
            json_to_cbor(&Value::Object(chosen)),
        ),
        (
            Cbor::Text("status".into()),
            Cbor::Text(status.code().into()),
        ),
        (Cbor::Text("status_as_of".into()), Cbor::Integer(now.into())),
        (
            Cbor::Text("status_index".into()),
            Cbor::Integer(row.status_index.into()),
        ),
    ]);
    let claims = Cbor::Map(vec![
        (Cbor::Integer(1.into()), Cbor::Text(row.issuer.clone())),
        (Cbor::Integer(4.into()), Cbor::Integer(exp.into())),
        (Cbor::Integer(6.into()), Cbor::Integer(now.into())),
        (Cbor::Integer(7.into()), Cbor::Bytes(cti.to_vec())),
        (Cbor::Text("lic".into()), lic),
    ]);
    let mut payload = Vec::new();
    ciborium::into_writer(&claims, &mut payload)
        .map_err(|e| Error::internal(format!("CBOR: {e}")))?;
    let protected = HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES256)
        .key_id(auth.kid.to_vec())
        .build();
    let sign1 = CoseSign1Builder::new()
        .protected(protected)
        .payload(payload)
        .try_create_signature(b"", |tbs| auth.signer.sign_fixed(tbs))?
        .build();
    let cose = sign1
        .to_tagged_vec()
        .map_err(|e| Error::internal(format!("COSE: {e}")))?;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&cose).map_err(Error::internal)?;
    let compressed = z.finish().map_err(Error::internal)?;
    let code = format!("{PREFIX}{}", base45::encode(compressed));
    Ok(ShowCode {
        qr_svg: qr::svg(&code, req.printed)?,
        code,
        expires_at: exp,
        disclosed: fields,
    })
}

fn json_to_cbor(v: &Value) -> Cbor {
    match v {
        Value::Null => Cbor::Null,
        Value::Bool(b) => Cbor::Bool(*b),
        Value::Number(n) => n
            .as_i64()
            .map(|i| Cbor::Integer(i.into()))
            .unwrap_or_else(|| Cbor::Float(n.as_f64().unwrap_or(0.0))),
        Value::String(s) => Cbor::Text(s.clone()),
        Value::Array(a) => Cbor::Array(a.iter().map(json_to_cbor).collect()),
        Value::Object(o) => Cbor::Map(
            o.iter()
                .map(|(k, v)| (Cbor::Text(k.clone()), json_to_cbor(v)))
                .collect(),
        ),
    }
}

fn cbor_to_json(v: &Cbor) -> Value {
    match v {
        Cbor::Null => Value::Null,
        Cbor::Bool(b) => Value::Bool(*b),
        Cbor::Integer(i) => i64::try_from(i128::from(*i))
            .map(Value::from)
            .unwrap_or(Value::Null),
        Cbor::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Cbor::Text(s) => Value::String(s.clone()),
        Cbor::Bytes(b) => Value::String(hex::encode(b)),
        Cbor::Array(a) => Value::Array(a.iter().map(cbor_to_json).collect()),
        Cbor::Map(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Cbor::Text(t) => t.clone(),
                        Cbor::Integer(i) => i128::from(*i).to_string(),
                        _ => String::new(),
                    };
                    (key, cbor_to_json(v))
                })
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// An authority key an offline verifier trusts, checked once when the trust is built.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub kid: [u8; 8],
    /// Uncompressed P-256 point.
    pub public_key: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    /// The certificate's signature chains to its region root for document signing.
    pub chained: bool,
}

/// The keys an offline verifier trusts: authority certificates and their region roots.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    pub keys: Vec<TrustedKey>,
}

impl Trust {
    /// Adds an authority certificate, checking its chain to `root` once.
    pub fn add(&mut self, cert: &[u8], root: &[u8]) {
        let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert) else {
            return;
        };
        let not_before = parsed.validity().not_before.timestamp();
        let not_after = parsed.validity().not_after.timestamp();
        use crate::pki::path;
        let anchors = [root.to_vec()];
        let chained = path::validate(&path::Request::new(
            cert,
            &anchors,
            not_before + 1,
            path::Usage::Required(&crate::pki::ca::EKU_DOCUMENT_SIGNING_DER),
        ))
        .is_ok();
        self.keys.push(TrustedKey {
            kid: cert_kid(cert),
            public_key: parsed.public_key().subject_public_key.data.to_vec(),
            not_before,
            not_after,
            chained,
        });
    }

    /// From trust lists that verified (`trust::open`).
    pub fn from_lists(lists: &[crate::verify::trust::TrustList]) -> Self {
        let mut t = Trust::default();
        for l in lists {
            for (_, der) in &l.authority_certs {
                t.add(der, &l.root_der);
            }
        }
        t
    }
}

/// The officer's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Authentic, unexpired code; the license is valid as of the status shown.
    Valid,
    Suspended,
    Revoked,
    /// The license itself is expired, cancelled or withdrawn.
    NotInForce,
    /// The code's own lifetime is over: ask the holder for a fresh one.
    CodeExpired,
    /// The signature does not verify: altered or forged.
    Forged,
    /// Signed by a key not in the trust list (another region not imported, or unknown).
    UnknownIssuer,
    /// Not a show code.
    Malformed,
}

/// How current the status in the verdict is.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StatusInfo {
    pub code: String,
    pub as_of: i64,
    /// `fresh`, `stale` (older than a day: check online or with a status list), or `unknown`.
    pub freshness: String,
    /// `stapled` (in the code) or `online`.
    pub source: String,
}

/// The result of checking a show code.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Check {
    pub verdict: Verdict,
    /// Why, in words.
    pub reason: String,
    pub license_id: Option<String>,
    #[serde(rename = "type")]
    pub type_code: Option<String>,
    pub number: Option<String>,
    pub issuer: Option<String>,
    pub region: Option<String>,
    /// Exactly the fields the holder disclosed.
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
    pub status: Option<StatusInfo>,
    pub issued_at: Option<i64>,
    pub expires_at: Option<i64>,
    /// Hex of the code's unique id (for replay detection online).
    pub cti: Option<String>,
    /// The license's place in its region's status list.
    pub status_index: Option<i64>,
}

fn verdict_only(verdict: Verdict, reason: &str) -> Check {
    Check {
        verdict,
        reason: reason.to_string(),
        license_id: None,
        type_code: None,
        number: None,
        issuer: None,
        region: None,
        fields: Map::new(),
        status: None,
        issued_at: None,
        expires_at: None,
        cti: None,
        status_index: None,
    }
}

/// Checks a show code offline: signature with an authority key from `trust` whose certificate
/// chains to its region root, the code's lifetime at `now`, and the stapled status.
pub fn check(text: &str, trust: &Trust, now: i64) -> Check {
    let malformed = |why: &str| verdict_only(Verdict::Malformed, why);
    let Some(b45) = text.trim().strip_prefix(PREFIX) else {
        return malformed("does not start with EL1:");
    };
    let Ok(compressed) = base45::decode(b45) else {
        return malformed("not Base45");
    };
    let mut cose = Vec::new();
    let inflated = flate2::read::ZlibDecoder::new(compressed.as_slice())
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut cose);
    if inflated.is_err() || cose.len() as u64 > MAX_INFLATED {
        return malformed("not zlib data of a sensible size");
    }
    let sign1 = match CoseSign1::from_tagged_slice(&cose).or_else(|_| CoseSign1::from_slice(&cose))
    {
        Ok(s) => s,
        Err(_) => return malformed("not a COSE_Sign1 structure"),
    };
    if sign1.protected.header.alg
        != Some(coset::RegisteredLabelWithPrivate::Assigned(
            iana::Algorithm::ES256,
        ))
    {
        return verdict_only(Verdict::Forged, "not signed with ES256");
    }
    let kid = sign1.protected.header.key_id.clone();
    let Some(key) = trust
        .keys
        .iter()
        .find(|k| k.kid.as_slice() == kid.as_slice())
    else {
        return verdict_only(
            Verdict::UnknownIssuer,
            "the signing key is not in the trust list",
        );
    };
    let public = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        &key.public_key,
    );
    if sign1
        .verify_signature(b"", |sig, tbs| public.verify(tbs, sig))
        .is_err()
    {
        return verdict_only(
            Verdict::Forged,
            "the signature does not verify: the code was altered or forged",
        );
    }
    let Some(claims) = sign1
        .payload
        .as_deref()
        .and_then(|p| ciborium::from_reader::<Cbor, _>(p).ok())
        .map(|c| cbor_to_json(&c))
    else {
        return verdict_only(Verdict::Forged, "signed content is not CBOR");
    };
    let iat = claims.get("6").and_then(Value::as_i64);
    let exp = claims.get("4").and_then(Value::as_i64);
    // The authority certificate must chain to its root and be valid when the code was made.
    let made = iat.unwrap_or(0);
    if !key.chained || made < key.not_before || made > key.not_after {
        return verdict_only(
            Verdict::UnknownIssuer,
            "the signer's certificate does not chain to a trusted root",
        );
    }
    let lic = claims.get("lic").cloned().unwrap_or(Value::Null);
    let s = |k: &str| lic.get(k).and_then(Value::as_str).map(String::from);
    let status_code = s("status").unwrap_or_default();
    let as_of = lic.get("status_as_of").and_then(Value::as_i64).unwrap_or(0);
    let id_ok = s("id").is_some_and(|id| LicenseId::parse(&id).is_ok());
    let mut c = Check {
        verdict: Verdict::Valid,
        reason: String::new(),
        license_id: s("id"),
        type_code: s("type"),
        number: s("number"),
        issuer: claims.get("1").and_then(Value::as_str).map(String::from),
        region: s("region"),
        fields: lic
            .get("fields")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        status: Some(StatusInfo {
            code: status_code.clone(),
            as_of,
            freshness: if now - as_of <= STATUS_FRESH_SECONDS {
                "fresh"
            } else {
                "stale"
            }
            .into(),
            source: "stapled".into(),
        }),
        issued_at: iat,
        expires_at: exp,
        cti: claims.get("7").and_then(Value::as_str).map(String::from),
        status_index: lic.get("status_index").and_then(Value::as_i64),
    };
    if !id_ok {
        c.verdict = Verdict::Forged;
        c.reason = "the signed content is not a license".into();
    } else if exp.is_none_or(|e| now > e) {
        c.verdict = Verdict::CodeExpired;
        c.reason = "the code has expired: ask for a fresh one".into();
    } else {
        c.verdict = match Status::from_code(&status_code) {
            Some(Status::Valid) => Verdict::Valid,
            Some(Status::Suspended) => Verdict::Suspended,
            Some(Status::Revoked) => Verdict::Revoked,
            _ => Verdict::NotInForce,
        };
        c.reason = format!("authentic; status {} as of the code", status_code);
    }
    c
}

/// An online check request.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnlineCheck {
    /// The show code (`EL1:...`).
    pub code: String,
    /// Where the check happens (officer, checkpoint), recorded for replay reports.
    #[serde(default)]
    pub place: Option<String>,
}

/// An earlier sighting of the same code.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Replay {
    pub first_seen_at: i64,
    pub first_seen_at_place: String,
}

/// The online verdict: the offline one, the live status, and replay detection.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OnlineResult {
    #[serde(flatten)]
    pub check: Check,
    /// Set when this code was seen before.
    pub replay: Option<Replay>,
}

/// [`deployment_trust`], rebuilt at most every [`TRUST_TTL`]: building it reads every
/// authority and imported trust list and checks each certificate chain, which is no work for
/// every online check.
#[derive(Debug, Default)]
pub struct TrustCache(tokio::sync::RwLock<Option<(std::time::Instant, std::sync::Arc<Trust>)>>);

/// How long the online check reuses the trusted keys (a new authority or imported region is
/// accepted within this time).
pub const TRUST_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl TrustCache {
    pub async fn get(&self, app: &crate::app::App) -> Result<std::sync::Arc<Trust>> {
        if let Some((at, t)) = self.0.read().await.as_ref()
            && at.elapsed() < TRUST_TTL
        {
            return Ok(t.clone());
        }
        let t = std::sync::Arc::new(deployment_trust(app).await?);
        *self.0.write().await = Some((std::time::Instant::now(), t.clone()));
        Ok(t)
    }
}

/// The authority keys this deployment trusts: its own and those of imported regions.
pub async fn deployment_trust(app: &crate::app::App) -> Result<Trust> {
    let root = app.pki.root().await?.der;
    let mut t = Trust::default();
    for a in app.store.authorities().await? {
        if let Some(c) = app.store.certificate(&a.cert_serial).await? {
            t.add(&c.der, &root);
        }
    }
    for r in app.store.foreign_regions().await? {
        if let Ok(tl) = crate::verify::trust::open_self_pinned(&r.trust_list) {
            for (_, der) in tl.authority_certs {
                t.add(&der, &r.root_der);
            }
        }
    }
    Ok(t)
}

/// Checks a code online: as offline, then the live status for our own licenses, and whether
/// the same code (cti) was seen before.
pub async fn check_online(app: &crate::app::App, req: OnlineCheck) -> Result<OnlineResult> {
    let now = app.clock.unix();
    let trust = app.show_code_trust.get(app).await?;
    let mut c = check(&req.code, &trust, now);
    let authentic = !matches!(
        c.verdict,
        Verdict::Forged | Verdict::UnknownIssuer | Verdict::Malformed
    );
    if authentic
        && let Some(id) = c.license_id.clone()
        && let Ok((row, _)) = app.licenses.find(&id).await
    {
        let live = app.licenses.effective_status(&row);
        c.status = Some(StatusInfo {
            code: live.code().into(),
            as_of: now,
            freshness: "fresh".into(),
            source: "online".into(),
        });
        if c.verdict != Verdict::CodeExpired {
            c.verdict = match live {
                Status::Valid => Verdict::Valid,
                Status::Suspended => Verdict::Suspended,
                Status::Revoked => Verdict::Revoked,
                _ => Verdict::NotInForce,
            };
            c.reason = format!("authentic; live status {}", live.code());
        }
    }
    let mut replay = None;
    if authentic && let (Some(cti), Some(id)) = (&c.cti, &c.license_id) {
        let place = req
            .place
            .unwrap_or_default()
            .chars()
            .take(100)
            .collect::<String>();
        replay = app.store.sight_show_code(cti, id, now, &place).await?.map(
            |(first_seen_at, first_seen_at_place)| Replay {
                first_seen_at,
                first_seen_at_place,
            },
        );
    }
    Ok(OnlineResult { check: c, replay })
}
