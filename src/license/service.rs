//! Issuance and lifecycle: validate → assign identifier → sign the canonical record → store.

use super::holder::Holder;
use super::id::LicenseId;
use super::record;
use super::types::{HolderKind, LicenseType, TypeDefinition};
use crate::audit::Entry;
use crate::clock::SharedClock;
use crate::error::{Error, FieldError, Result};
use crate::pki::{Pki, Signer, cert_kid};
use crate::store::{AuthorityRow, CertRow, LicenseFilter, LicenseRow, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use time::Date;
use time::format_description::well_known::Iso8601;

/// A request to issue one license (API body, CLI input, one line of a bulk import).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    /// License type code (21 characters).
    #[serde(rename = "type")]
    pub type_code: String,
    /// Credit code of the issuing authority.
    pub issuer: String,
    /// The license number printed on it (证照编号); unique within the type.
    pub number: String,
    pub holder: Holder,
    /// `YYYY-MM-DD`; today (UTC+8) when absent.
    #[serde(default)]
    pub issue_date: Option<String>,
    /// `YYYY-MM-DD`; the issue date when absent.
    #[serde(default)]
    pub valid_from: Option<String>,
    /// `YYYY-MM-DD`; from the type's validity rule when absent; `"长期"` for long-term.
    #[serde(default)]
    pub valid_to: Option<String>,
    /// Face fields, checked against the type's JSON Schema.
    #[schema(value_type = Object)]
    pub fields: Value,
}

/// Status codes of the national convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Valid,
    Suspended,
    Withdrawn,
    Cancelled,
    Expired,
    Revoked,
}

impl Status {
    pub fn code(self) -> &'static str {
        match self {
            Status::Valid => "01",
            Status::Suspended => "02",
            Status::Withdrawn => "03",
            Status::Cancelled => "04",
            Status::Expired => "05",
            Status::Revoked => "07",
        }
    }

    pub fn from_code(code: &str) -> Option<Status> {
        Some(match code {
            "01" => Status::Valid,
            "02" => Status::Suspended,
            "03" => Status::Withdrawn,
            "04" => Status::Cancelled,
            "05" => Status::Expired,
            "07" => Status::Revoked,
            _ => return None,
        })
    }

    /// Accepts a name (`suspended`) or a code (`02`).
    pub fn parse(s: &str) -> Option<Status> {
        Status::from_code(s).or_else(|| serde_json::from_value(Value::String(s.to_string())).ok())
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Valid => "valid",
            Status::Suspended => "suspended",
            Status::Withdrawn => "withdrawn",
            Status::Cancelled => "cancelled",
            Status::Expired => "expired",
            Status::Revoked => "revoked",
        }
    }

    /// May a license go from `self` (as stored) to `to`?
    pub fn can_become(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (Valid, Suspended | Withdrawn | Cancelled | Revoked)
                | (Suspended, Valid | Withdrawn | Cancelled | Revoked)
        )
    }
}

/// A license as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LicenseView {
    /// Identifier of the current version.
    pub id: String,
    pub version: i64,
    #[serde(rename = "type")]
    pub type_code: String,
    /// The type's name, as signed in the record.
    pub type_name: String,
    pub number: String,
    pub issuer: String,
    pub holder: Holder,
    pub issue_date: String,
    pub valid_from: String,
    pub valid_to: Option<String>,
    /// Effective status (expiry derived from `valid_to`).
    pub status: Status,
    pub status_code: String,
    #[schema(value_type = Object)]
    pub fields: Value,
    pub signature: SignatureView,
}

/// The issuer's signature over the canonical record.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SignatureView {
    /// Always `ES256`.
    pub alg: String,
    /// First 8 bytes of SHA-256 of the signer certificate, hex.
    pub kid: String,
    /// Serial (hex) of the authority certificate that signed.
    pub certificate_serial: String,
    /// The COSE_Sign1 structure (base64); its payload is the canonical record.
    pub cose_sign1: String,
    /// The canonical record that was signed (the COSE payload, as text).
    pub record: String,
}

/// One version of a license.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VersionView {
    pub id: String,
    pub version: i64,
    /// Why a later version replaced this one (absent on the current version).
    pub superseded_because: Option<String>,
    /// When this version was signed (Unix seconds).
    pub created_at: i64,
    /// COSE_Sign1 with its payload (the version's record), base64.
    pub cose_sign1: String,
}

/// One status change or amendment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub seq: i64,
    pub at: i64,
    pub action: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub version: i64,
    pub reason: Option<String>,
    pub actor: String,
}

/// A license with its full history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LicenseDetail {
    #[serde(flatten)]
    pub license: LicenseView,
    /// The identifier asked for, when it names an older version.
    pub requested_version: Option<String>,
    pub versions: Vec<VersionView>,
    pub events: Vec<EventView>,
    /// PEM of the authority certificate that signed the current version.
    pub issuer_certificate: String,
}

/// An amendment: the parts that change; a new version is signed.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Amendment {
    #[serde(default)]
    pub holder: Option<Holder>,
    #[serde(default)]
    pub valid_to: Option<String>,
    /// Replaces the face fields as a whole.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub fields: Option<Value>,
    pub reason: String,
}

/// An authority ready to sign.
pub struct SigningAuthority {
    pub row: AuthorityRow,
    pub cert: CertRow,
    pub kid: [u8; 8],
    pub signer: Arc<dyn Signer>,
    pub types: Vec<String>,
}

/// A request that passed validation, with its derived dates.
pub struct Checked {
    pub req: IssueRequest,
    /// The face fields as canonical JSON (what the record and the request's hash contain).
    pub fields: Box<serde_json::value::RawValue>,
    pub issue_date: String,
    pub valid_from: String,
    pub valid_to: Option<String>,
    pub source_hash: Vec<u8>,
}

/// Issues and manages licenses.
#[derive(Clone)]
pub struct Licenses {
    store: Store,
    pki: Pki,
    clock: SharedClock,
    types: Arc<RwLock<HashMap<String, Arc<LicenseType>>>>,
    region: Arc<std::sync::OnceLock<String>>,
    audit: crate::audit::Audit,
}

impl std::fmt::Debug for Licenses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Licenses(..)")
    }
}

fn parse_date(s: &str, path: &str) -> std::result::Result<Date, FieldError> {
    let bad = || FieldError::new(path, "must be a date YYYY-MM-DD");
    if s.len() != 10 {
        return Err(bad());
    }
    Date::parse(s, &Iso8601::DATE).map_err(|_| bad())
}

/// `YYYY-MM-DD`.
pub fn fmt_date_pub(d: Date) -> String {
    fmt_date(d)
}

fn fmt_date(d: Date) -> String {
    // Three per license on the bulk path: digits by hand rather than through `format!`.
    let (y, m, day) = (d.year(), u8::from(d.month()), d.day());
    if !(0..=9999).contains(&y) {
        return format!("{y:04}-{m:02}-{day:02}");
    }
    let y = y as u32;
    let digit = |n: u32| char::from(b'0' + (n % 10) as u8);
    let mut s = String::with_capacity(10);
    for n in [y / 1000, y / 100, y / 10, y] {
        s.push(digit(n));
    }
    s.push('-');
    s.push(digit(u32::from(m) / 10));
    s.push(digit(u32::from(m)));
    s.push('-');
    s.push(digit(u32::from(day) / 10));
    s.push(digit(u32::from(day)));
    s
}

/// SHA-256 of the canonical form of a request: equal requests (whatever their key order or
/// white space) hash alike, so a re-sent request is recognised.
fn request_hash(req: &IssueRequest, fields: &serde_json::value::RawValue) -> Result<Vec<u8>> {
    #[derive(Serialize)]
    struct Canon<'a> {
        fields: &'a serde_json::value::RawValue,
        holder: record::CanonicalHolder<'a>,
        issue_date: Option<&'a str>,
        issuer: &'a str,
        number: &'a str,
        #[serde(rename = "type")]
        type_code: &'a str,
        valid_from: Option<&'a str>,
        valid_to: Option<&'a str>,
    }
    // Sized up front, as the record is (`Record::to_canonical_json`).
    let mut text = Vec::with_capacity(fields.get().len() + 512);
    serde_json::to_writer(
        &mut text,
        &Canon {
            fields,
            holder: record::CanonicalHolder {
                code: &req.holder.code,
                code_type: &req.holder.code_type,
                name: &req.holder.name,
            },
            issue_date: req.issue_date.as_deref(),
            issuer: &req.issuer,
            number: &req.number,
            type_code: &req.type_code,
            valid_from: req.valid_from.as_deref(),
            valid_to: req.valid_to.as_deref(),
        },
    )
    .map_err(|e| Error::internal(format!("request hash: {e}")))?;
    Ok(ring::digest::digest(&ring::digest::SHA256, &text)
        .as_ref()
        .to_vec())
}

/// Long-term validity as written on Chinese licenses.
pub const LONG_TERM: &str = "长期";

impl Licenses {
    pub fn new(store: Store, pki: Pki, clock: SharedClock, audit: crate::audit::Audit) -> Self {
        Licenses {
            store,
            pki,
            clock,
            types: Arc::new(RwLock::new(HashMap::new())),
            region: Arc::new(std::sync::OnceLock::new()),
            audit,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    pub fn audit(&self) -> &crate::audit::Audit {
        &self.audit
    }

    /// The region's division code (it never changes once the region exists).
    pub async fn region_code(&self) -> Result<String> {
        if let Some(code) = self.region.get() {
            return Ok(code.clone());
        }
        let code = self.pki.region().await?.code;
        let _ = self.region.set(code.clone());
        Ok(code)
    }

    /// Registers the built-in types that are not yet registered.
    pub async fn ensure_builtin_types(&self) -> Result<()> {
        for def in super::types::builtins() {
            if self.store.license_type(&def.code).await?.is_none() {
                let t = LicenseType::compile(def, true)?;
                match self.store.insert_type(&t.to_row(self.clock.unix())).await {
                    Ok(()) | Err(Error::AlreadyExists { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Registers a new type.
    pub async fn register_type(&self, def: TypeDefinition) -> Result<Arc<LicenseType>> {
        let t = Arc::new(LicenseType::compile(def, false)?);
        self.store.insert_type(&t.to_row(self.clock.unix())).await?;
        Ok(t)
    }

    /// A registered type (compiled once, then cached: types are immutable once registered).
    pub async fn license_type(&self, code: &str) -> Result<Arc<LicenseType>> {
        if let Some(t) = self.types.read().ok().and_then(|m| m.get(code).cloned()) {
            return Ok(t);
        }
        let row = self
            .store
            .license_type(code)
            .await?
            .ok_or_else(|| Error::UnknownType {
                code: code.to_string(),
            })?;
        let t = Arc::new(LicenseType::from_row(&row)?);
        if let Ok(mut m) = self.types.write() {
            m.insert(code.to_string(), t.clone());
        }
        Ok(t)
    }

    pub async fn list_types(&self) -> Result<Vec<TypeDefinition>> {
        let mut out = Vec::new();
        for row in self.store.license_types().await? {
            out.push(LicenseType::from_row(&row)?.def);
        }
        Ok(out)
    }

    /// Registers an authority: validates its credit code, issues its seal certificate.
    pub async fn add_authority(
        &self,
        credit_code: &str,
        name: &str,
        level: &str,
        types: &[String],
    ) -> Result<AuthorityRow> {
        let mut errs = Vec::new();
        if let Err(e) = super::credit_code::validate_field(credit_code, "/credit_code") {
            errs.push(e);
        }
        let n = name.trim().chars().count();
        if n == 0 || n > 100 {
            errs.push(FieldError::new("/name", "must be 1 to 100 characters"));
        }
        if !["national", "provincial", "municipal", "district"].contains(&level) {
            errs.push(FieldError::new(
                "/level",
                "must be national, provincial, municipal or district",
            ));
        }
        if !errs.is_empty() {
            return Err(Error::InvalidFields { errors: errs });
        }
        for t in types {
            self.license_type(t).await?;
        }
        let (key, cert) = self.pki.new_authority_cert(credit_code, name).await?;
        let row = AuthorityRow {
            credit_code: credit_code.to_string(),
            name: name.to_string(),
            level: level.to_string(),
            cert_serial: cert.serial.clone(),
            created_at: self.clock.unix(),
        };
        self.store
            .insert_authority(&row, &key, &cert, types)
            .await?;
        Ok(row)
    }

    /// Loads an authority with its certificate and signer, checking it may sign now.
    pub async fn signing_authority(&self, code: &str) -> Result<SigningAuthority> {
        let row = self
            .store
            .authority(code)
            .await?
            .ok_or_else(|| Error::UnknownAuthority {
                code: code.to_string(),
            })?;
        let cert = self
            .store
            .certificate(&row.cert_serial)
            .await?
            .ok_or_else(|| Error::internal("authority certificate missing"))?;
        let now = self.clock.unix();
        if cert.revoked_at.is_some() || now < cert.not_before || now > cert.not_after {
            return Err(Error::AuthorityCertUnusable {
                authority: code.to_string(),
            });
        }
        let signer = self.pki.keys().signer(cert.key()?).await?;
        let types = self.store.authority_types(code).await?;
        Ok(SigningAuthority {
            kid: cert_kid(&cert.der),
            row,
            cert,
            signer,
            types,
        })
    }

    /// Validates a request against its type; no database access beyond the (cached) type.
    pub fn check(&self, t: &LicenseType, req: IssueRequest) -> Result<Checked> {
        let mut errs = req.holder.validate();
        match (t.def.holder_kind, req.holder.code_type.as_str()) {
            (HolderKind::Person, super::holder::CODE_CREDIT) => errs.push(FieldError::new(
                "/holder/code_type",
                "this license type is held by persons",
            )),
            (HolderKind::Organisation, super::holder::CODE_RESIDENT_ID) => {
                errs.push(FieldError::new(
                    "/holder/code_type",
                    "this license type is held by organisations",
                ))
            }
            _ => {}
        }
        let number_len = req.number.chars().count();
        if number_len == 0 || number_len > 64 || req.number.chars().any(char::is_control) {
            errs.push(FieldError::new(
                "/number",
                "must be 1 to 64 printable characters",
            ));
        }
        errs.extend(t.validate_fields(&req.fields));
        let today = self.clock.today();
        let issue = match req.issue_date.as_deref() {
            Some(s) => parse_date(s, "/issue_date").map_err(|e| errs.push(e)).ok(),
            None => Some(today),
        };
        let from = match req.valid_from.as_deref() {
            Some(s) => parse_date(s, "/valid_from").map_err(|e| errs.push(e)).ok(),
            None => issue,
        };
        let to: Option<Date> = match (req.valid_to.as_deref(), from) {
            (Some(LONG_TERM), _) => None,
            (Some(s), _) => parse_date(s, "/valid_to").map_err(|e| errs.push(e)).ok(),
            (None, Some(f)) => t
                .def
                .validity_years
                .and_then(|y| {
                    f.replace_year(f.year() + i32::from(y)).ok().or_else(|| {
                        // 29 February → 28 February
                        f.replace_day(28)
                            .ok()?
                            .replace_year(f.year() + i32::from(y))
                            .ok()
                    })
                })
                .and_then(|d| d.previous_day()),
            (None, None) => None,
        };
        if let (Some(f), Some(t)) = (from, to)
            && t < f
        {
            errs.push(FieldError::new(
                "/valid_to",
                "must not be before valid_from",
            ));
        }
        if !errs.is_empty() {
            return Err(Error::InvalidFields { errors: errs });
        }
        let fields = serde_json::value::to_raw_value(&record::Canonical(&req.fields))
            .map_err(|e| Error::internal(format!("fields: {e}")))?;
        let source_hash = request_hash(&req, &fields)?;
        Ok(Checked {
            fields,
            issue_date: issue.map(fmt_date).unwrap_or_default(),
            valid_from: from.map(fmt_date).unwrap_or_default(),
            valid_to: to.map(fmt_date),
            req,
            source_hash,
        })
    }

    /// Builds and signs the record of a checked request under an identifier.
    #[allow(clippy::too_many_arguments)]
    pub fn sign_row(
        &self,
        region: &str,
        t: &LicenseType,
        auth: &SigningAuthority,
        c: &Checked,
        id: &LicenseId,
        status: Status,
        now: i64,
        actor: &str,
    ) -> Result<LicenseRow> {
        let id_text = id.to_string();
        let record = record::Record {
            fields: &c.fields,
            holder: record::CanonicalHolder {
                code: &c.req.holder.code,
                code_type: &c.req.holder.code_type,
                name: &c.req.holder.name,
            },
            id: &id_text,
            issue_date: &c.issue_date,
            issuer: record::CodeName {
                code: &auth.row.credit_code,
                name: &auth.row.name,
            },
            number: &c.req.number,
            region,
            type_: record::CodeName {
                code: &t.def.code,
                name: &t.def.name,
            },
            valid_from: &c.valid_from,
            valid_to: c.valid_to.as_deref().unwrap_or(LONG_TERM),
            version: id.version,
        }
        .to_canonical_json()?;
        let signature = record::sign_detached(record.as_bytes(), &auth.kid, auth.signer.as_ref())?;
        Ok(LicenseRow {
            lineage: id.lineage(),
            id: id_text,
            version: i64::from(id.version),
            type_code: t.def.code.clone(),
            number: c.req.number.clone(),
            issuer: auth.row.credit_code.clone(),
            holder_name: c.req.holder.name.clone(),
            holder_code: c.req.holder.code.clone(),
            holder_code_type: c.req.holder.code_type.clone(),
            issue_date: c.issue_date.clone(),
            valid_from: c.valid_from.clone(),
            valid_to: c.valid_to.clone(),
            status: status.code().to_string(),
            record,
            signature,
            source_hash: Some(c.source_hash.clone()),
            issued_by: actor.to_string(),
            created_at: now,
            updated_at: now,
            status_index: -1,
        })
    }

    /// Serial part of an identifier: the year and an 8-digit sequence.
    pub fn serial(year: i32, n: i64) -> String {
        format!("{year:04}{n:08}")
    }

    /// Issues one license. Re-sending the same request returns the license it issued
    /// (`Ok((view, false))`) instead of issuing twice.
    pub async fn issue(&self, req: IssueRequest, actor: &str) -> Result<(LicenseView, bool)> {
        let t = self.license_type(&req.type_code).await?;
        let auth = self.signing_authority(&req.issuer).await?;
        if !auth.types.contains(&t.def.code) {
            return Err(Error::TypeNotAllowed {
                authority: auth.row.credit_code.clone(),
                type_code: t.def.code.clone(),
            });
        }
        let checked = self.check(&t, req)?;
        if let Some(existing) = self
            .store
            .license_by_number(&t.def.code, &checked.req.number)
            .await?
        {
            if existing.source_hash.as_deref() == Some(checked.source_hash.as_slice()) {
                return Ok((self.view(&existing, &auth.cert)?, false));
            }
            return Err(Error::DuplicateLicense {
                type_code: t.def.code.clone(),
                number: checked.req.number.clone(),
                id: existing.id,
            });
        }
        let region = self.region_code().await?;
        let now = self.clock.unix();
        let year = self.clock.today().year();
        let (code, issuer) = (t.def.code.clone(), auth.row.credit_code.clone());
        let r = self
            .store
            .insert_issued((&code, &issuer, year), |n| {
                let id = LicenseId::new(&code, &issuer, &Self::serial(year, n), 1)
                    .map_err(|e| Error::internal(format!("generated identifier: {e}")))?;
                self.sign_row(&region, &t, &auth, &checked, &id, Status::Valid, now, actor)
            })
            .await;
        match r {
            Ok(row) => {
                self.audit
                    .append(Entry::new(
                        actor,
                        "license.issue",
                        &row.id,
                        serde_json::json!({"type": row.type_code, "number": row.number, "issuer": row.issuer}),
                    ))
                    .await?;
                Ok((self.view(&row, &auth.cert)?, true))
            }
            // Another request took the number between our check and insert.
            Err(Error::AlreadyExists { .. }) => Box::pin(self.issue(checked.req, actor)).await,
            Err(e) => Err(e),
        }
    }

    /// Resolves any version's identifier to the current row; also returns whether the
    /// identifier named an older version.
    pub async fn find(&self, id: &str) -> Result<(LicenseRow, bool)> {
        let parsed = LicenseId::parse(id).map_err(|e| Error::InvalidIdentifier {
            reason: e.to_string(),
        })?;
        let not_found = || Error::LicenseNotFound { id: id.to_string() };
        let row = self
            .store
            .license_by_lineage(&parsed.lineage())
            .await?
            .ok_or_else(not_found)?;
        if row.id == id {
            return Ok((row, false));
        }
        match self.store.lineage_of(id).await? {
            Some(_) => Ok((row, true)),
            None => Err(not_found()),
        }
    }

    /// Effective status: stored status, with expiry derived from the validity end.
    pub fn effective_status(&self, row: &LicenseRow) -> Status {
        let stored = Status::from_code(&row.status).unwrap_or(Status::Valid);
        if stored == Status::Valid
            && let Some(to) = &row.valid_to
            && to.as_str() < fmt_date(self.clock.today()).as_str()
        {
            return Status::Expired;
        }
        stored
    }

    pub fn view(&self, row: &LicenseRow, cert: &CertRow) -> Result<LicenseView> {
        use base64::Engine;
        let rec: Value = serde_json::from_str(&row.record)
            .map_err(|e| Error::internal(format!("stored record: {e}")))?;
        let status = self.effective_status(row);
        Ok(LicenseView {
            id: row.id.clone(),
            version: row.version,
            type_code: row.type_code.clone(),
            type_name: rec
                .pointer("/type/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            number: row.number.clone(),
            issuer: row.issuer.clone(),
            holder: Holder {
                name: row.holder_name.clone(),
                code: row.holder_code.clone(),
                code_type: row.holder_code_type.clone(),
            },
            issue_date: row.issue_date.clone(),
            valid_from: row.valid_from.clone(),
            valid_to: row.valid_to.clone(),
            status,
            status_code: status.code().to_string(),
            fields: rec.get("fields").cloned().unwrap_or(Value::Null),
            signature: SignatureView {
                alg: "ES256".into(),
                kid: hex::encode(cert_kid(&cert.der)),
                certificate_serial: cert.serial.clone(),
                cose_sign1: base64::engine::general_purpose::STANDARD
                    .encode(record::attach(&row.signature, row.record.as_bytes())?),
                record: row.record.clone(),
            },
        })
    }

    /// The certificate that signed a row: found by the kid in its COSE header among the
    /// issuer's certificates (today each authority has one).
    async fn signer_cert(&self, row: &LicenseRow) -> Result<CertRow> {
        let auth = self
            .store
            .authority(&row.issuer)
            .await?
            .ok_or_else(|| Error::internal("issuer of a stored license missing"))?;
        self.store
            .certificate(&auth.cert_serial)
            .await?
            .ok_or_else(|| Error::internal("authority certificate missing"))
    }

    /// A license with its versions and events.
    pub async fn detail(&self, id: &str) -> Result<LicenseDetail> {
        use base64::Engine;
        let (row, older) = self.find(id).await?;
        let cert = self.signer_cert(&row).await?;
        let mut versions = Vec::new();
        for v in self.store.versions(&row.lineage).await? {
            versions.push(VersionView {
                id: v.id,
                version: v.version,
                superseded_because: v.reason,
                created_at: v.created_at,
                cose_sign1: base64::engine::general_purpose::STANDARD
                    .encode(record::attach(&v.signature, v.record.as_bytes())?),
            });
        }
        versions.push(VersionView {
            id: row.id.clone(),
            version: row.version,
            superseded_because: None,
            created_at: row.updated_at,
            cose_sign1: base64::engine::general_purpose::STANDARD
                .encode(record::attach(&row.signature, row.record.as_bytes())?),
        });
        let mut events = vec![EventView {
            seq: 0,
            at: row.created_at,
            action: "issued".into(),
            from_status: None,
            to_status: Status::Valid.code().into(),
            version: 1,
            reason: None,
            actor: row.issued_by.clone(),
        }];
        events.extend(
            self.store
                .events(&row.lineage)
                .await?
                .into_iter()
                .map(|e| EventView {
                    seq: e.seq,
                    at: e.at,
                    action: e.action,
                    from_status: e.from_status,
                    to_status: e.to_status,
                    version: e.version,
                    reason: e.reason,
                    actor: e.actor,
                }),
        );
        Ok(LicenseDetail {
            license: self.view(&row, &cert)?,
            requested_version: older.then(|| id.to_string()),
            versions,
            events,
            issuer_certificate: crate::pki::pem("CERTIFICATE", &cert.der),
        })
    }

    /// A page of licenses.
    pub async fn list(&self, filter: &LicenseFilter) -> Result<Vec<LicenseView>> {
        let rows = self
            .store
            .list_licenses(filter, &fmt_date(self.clock.today()))
            .await?;
        let mut certs: HashMap<String, CertRow> = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            if !certs.contains_key(&row.issuer) {
                let c = self.signer_cert(row).await?;
                certs.insert(row.issuer.clone(), c);
            }
            if let Some(c) = certs.get(&row.issuer) {
                out.push(self.view(row, c)?);
            }
        }
        Ok(out)
    }

    /// Changes the status (suspend, reinstate, withdraw, cancel, revoke).
    pub async fn set_status(
        &self,
        id: &str,
        to: Status,
        reason: &str,
        actor: &str,
    ) -> Result<LicenseView> {
        if reason.trim().is_empty() || reason.chars().count() > 500 {
            return Err(Error::InvalidFields {
                errors: vec![FieldError::new("/reason", "must be 1 to 500 characters")],
            });
        }
        let (row, _) = self.find(id).await?;
        let from = Status::from_code(&row.status).unwrap_or(Status::Valid);
        if to == Status::Expired || !from.can_become(to) {
            return Err(Error::IllegalTransition {
                from: from.name().into(),
                to: to.name().into(),
            });
        }
        if !self
            .store
            .set_status(
                &row.lineage,
                from.code(),
                to.code(),
                self.clock.unix(),
                reason,
                actor,
            )
            .await?
        {
            // Someone else changed it first: report against the state we now see.
            let (now_row, _) = self.find(id).await?;
            return Err(Error::IllegalTransition {
                from: Status::from_code(&now_row.status)
                    .unwrap_or(Status::Valid)
                    .name()
                    .into(),
                to: to.name().into(),
            });
        }
        self.audit
            .append(Entry::new(
                actor,
                "license.status",
                &row.id,
                serde_json::json!({"from": from.code(), "to": to.code(), "reason": reason}),
            ))
            .await?;
        let (row, _) = self.find(&row.id).await?;
        let cert = self.signer_cert(&row).await?;
        self.view(&row, &cert)
    }

    /// Amends a license: signs a new version with the version part of its identifier bumped.
    pub async fn amend(&self, id: &str, a: Amendment, actor: &str) -> Result<LicenseView> {
        let (row, older) = self.find(id).await?;
        if older {
            return Err(Error::IllegalTransition {
                from: "superseded version".into(),
                to: "amended".into(),
            });
        }
        let status = Status::from_code(&row.status).unwrap_or(Status::Valid);
        if !matches!(status, Status::Valid | Status::Suspended) {
            return Err(Error::IllegalTransition {
                from: status.name().into(),
                to: "amended".into(),
            });
        }
        if a.reason.trim().is_empty() {
            return Err(Error::InvalidFields {
                errors: vec![FieldError::new("/reason", "must not be empty")],
            });
        }
        let rec: Value = serde_json::from_str(&row.record)
            .map_err(|e| Error::internal(format!("stored record: {e}")))?;
        let t = self.license_type(&row.type_code).await?;
        let auth = self.signing_authority(&row.issuer).await?;
        let req = IssueRequest {
            type_code: row.type_code.clone(),
            issuer: row.issuer.clone(),
            number: row.number.clone(),
            holder: a.holder.unwrap_or(Holder {
                name: row.holder_name.clone(),
                code: row.holder_code.clone(),
                code_type: row.holder_code_type.clone(),
            }),
            issue_date: Some(row.issue_date.clone()),
            valid_from: Some(row.valid_from.clone()),
            valid_to: Some(
                a.valid_to
                    .or_else(|| row.valid_to.clone())
                    .unwrap_or_else(|| LONG_TERM.into()),
            ),
            fields: a
                .fields
                .unwrap_or_else(|| rec.get("fields").cloned().unwrap_or(Value::Null)),
        };
        let checked = self.check(&t, req)?;
        let old_id = LicenseId::parse(&row.id).map_err(|e| Error::internal(e.to_string()))?;
        let next = u16::try_from(row.version + 1)
            .ok()
            .filter(|v| *v <= 999)
            .ok_or_else(|| Error::bad_request("version limit (999) reached"))?;
        let new_id = old_id
            .with_version(next)
            .map_err(|e| Error::internal(e.to_string()))?;
        let region = self.region_code().await?;
        let now = self.clock.unix();
        let mut new_row = self.sign_row(
            &region,
            &t,
            &auth,
            &checked,
            &new_id,
            status,
            now,
            &row.issued_by,
        )?;
        new_row.created_at = row.created_at;
        new_row.status_index = row.status_index;
        if !self.store.amend(&new_row, &row, &a.reason, actor).await? {
            return Err(Error::IllegalTransition {
                from: "changed concurrently".into(),
                to: "amended".into(),
            });
        }
        self.audit
            .append(Entry::new(
                actor,
                "license.amend",
                &new_row.id,
                serde_json::json!({"previous": row.id, "reason": a.reason}),
            ))
            .await?;
        self.view(&new_row, &auth.cert)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_written_as_iso_8601() {
        for (y, m, d) in [
            (2026, 1, 2),
            (1949, 12, 31),
            (9999, 12, 31),
            (5, 3, 9),
            (-1, 1, 1),
        ] {
            let date = Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d).unwrap();
            assert_eq!(
                fmt_date(date),
                format!("{y:04}-{m:02}-{d:02}"),
                "{y}-{m}-{d}"
            );
        }
    }

    /// The request hash is SHA-256 of the canonical JSON of the request (absent dates as
    /// null), whatever the key order or white space it came in: licenses issued by earlier
    /// builds are recognised by it when their request is sent again.
    #[test]
    fn request_hash_is_sha256_of_the_canonical_request() {
        let text = r#"{"type": "T", "issuer": "I", "number": "N1",
            "holder": {"name": "王芳", "code": "C", "code_type": "111"},
            "issue_date": "2026-01-02",
            "fields": {"z": [1, {"b": "\"", "a": null}], "a": "中文"}}"#;
        let req: IssueRequest = serde_json::from_str(text).unwrap();
        let fields = serde_json::value::to_raw_value(&record::Canonical(&req.fields)).unwrap();
        let mut v: Value = serde_json::from_str(text).unwrap();
        v["valid_from"] = Value::Null;
        v["valid_to"] = Value::Null;
        let expected =
            ring::digest::digest(&ring::digest::SHA256, record::canonical_json(&v).as_bytes());
        assert_eq!(request_hash(&req, &fields).unwrap(), expected.as_ref());
    }
}
