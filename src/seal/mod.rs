//! Digital seals (电子印章) and PAdES sealing of PDFs.
//!
//! A seal is an organisation's image plus a certificate and key from the region CA. Sealing a
//! PDF appends revisions to it: the signature (B-B; with a signature time-stamp from B-T), then
//! for B-LT a DSS with the chain and CRLs, then for B-LTA a document time-stamp.

pub mod appearance;
pub mod cms;
pub mod pades;
pub mod tsa;
pub mod verify;

use crate::app::App;
use crate::error::{Error, FieldError, Result};
use crate::pdf::write::Update;
use crate::pdf::{Pdf, Source};
use crate::store::SealRow;
use appearance::Appearance;
use lopdf::{Dictionary, Object, Stream};
use pades::{Level, Placement, Request, Timestamper};
use std::sync::Arc;

pub const KINDS: &[&str] = &["official", "contract", "license", "finance"];

/// A seal as the API shows it (never its key).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct SealView {
    pub id: String,
    /// Unified social credit code of the owner.
    pub owner: String,
    /// official | contract | license | finance
    pub kind: String,
    pub name: String,
    /// active | suspended | revoked
    pub status: String,
    pub certificate_serial: String,
    /// Certificate validity end (Unix seconds).
    pub not_after: i64,
    pub created_at: i64,
}

/// A seal to create.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
pub struct NewSeal {
    pub owner: String,
    pub kind: String,
    pub name: String,
    /// The owner's organisation name (for the certificate); the seal name when absent.
    #[serde(default)]
    pub organisation: Option<String>,
    /// PNG with transparency, base64 (API) — absent: the red round demo seal is drawn.
    #[serde(default, skip)]
    pub image: Option<Vec<u8>>,
}

async fn view(app: &App, s: &SealRow) -> Result<SealView> {
    let cert = app.store.certificate(&s.cert_serial).await?;
    Ok(SealView {
        id: s.id.clone(),
        owner: s.owner.clone(),
        kind: s.kind.clone(),
        name: s.name.clone(),
        status: s.status.clone(),
        certificate_serial: s.cert_serial.clone(),
        not_after: cert.map(|c| c.not_after).unwrap_or(0),
        created_at: s.created_at,
    })
}

fn random_id() -> Result<String> {
    let mut b = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| Error::internal("random generator failed"))?;
    Ok(format!("seal-{}", hex::encode(b)))
}

/// Creates a seal: key in the key store, certificate from the region CA, image.
pub async fn add(app: &App, n: NewSeal) -> Result<SealView> {
    let mut errs = Vec::new();
    if let Err(e) = crate::license::credit_code::validate_field(&n.owner, "/owner") {
        errs.push(e);
    }
    if !KINDS.contains(&n.kind.as_str()) {
        errs.push(FieldError::new(
            "/kind",
            format!("must be one of {}", KINDS.join(", ")),
        ));
    }
    if n.name.trim().is_empty() || n.name.chars().count() > 100 {
        errs.push(FieldError::new("/name", "must be 1 to 100 characters"));
    }
    if !errs.is_empty() {
        return Err(Error::InvalidFields { errors: errs });
    }
    let image = match n.image {
        Some(i) => i,
        None => appearance::demo_seal_png(256)?,
    };
    Appearance::from_png(&image)?;
    let org = n
        .organisation
        .clone()
        .or(app.store.authority(&n.owner).await?.map(|a| a.name))
        .unwrap_or_else(|| n.name.clone());
    let (key, cert) = app.pki.new_seal_cert(&n.owner, &org, &n.name).await?;
    let now = app.clock.unix();
    let row = SealRow {
        id: random_id()?,
        owner: n.owner,
        kind: n.kind,
        name: n.name,
        cert_serial: cert.serial.clone(),
        image,
        status: "active".into(),
        created_at: now,
        updated_at: now,
    };
    app.store.insert_seal(&row, &key, &cert).await?;
    app.audit
        .append(crate::audit::Entry::new(
            "operator",
            "seal.add",
            &row.id,
            serde_json::json!({"owner": row.owner, "kind": row.kind, "certificate": row.cert_serial}),
        ))
        .await?;
    view(app, &row).await
}

pub async fn list(app: &App, owner: Option<&str>) -> Result<Vec<SealView>> {
    let mut out = Vec::new();
    for s in app.store.seals(owner).await? {
        out.push(view(app, &s).await?);
    }
    Ok(out)
}

pub async fn get(app: &App, id: &str) -> Result<SealRow> {
    app.store
        .seal(id)
        .await?
        .ok_or_else(|| Error::SealNotFound { id: id.to_string() })
}

/// Suspends, reinstates or revokes a seal. Revocation also revokes its certificate (it lands in
/// the CRL) and is final.
pub async fn set_status(app: &App, id: &str, status: &str, reason: &str) -> Result<SealView> {
    let s = get(app, id).await?;
    let allowed = matches!(
        (s.status.as_str(), status),
        ("active", "suspended") | ("suspended", "active") | ("active" | "suspended", "revoked")
    );
    if !allowed {
        return Err(Error::IllegalTransition {
            from: s.status.clone(),
            to: status.to_string(),
        });
    }
    if status == "revoked" {
        app.pki.revoke(&s.cert_serial, reason).await?;
    }
    app.store
        .set_seal_status(id, status, app.clock.unix())
        .await?;
    app.audit
        .append(crate::audit::Entry::new(
            "operator",
            &format!("seal.{status}"),
            id,
            serde_json::json!({"reason": reason}),
        ))
        .await?;
    view(app, &get(app, id).await?).await
}

/// How to seal a document.
#[derive(Debug, Clone)]
pub struct SignOptions {
    pub level: Level,
    /// Visible seal at this place; invisible when absent.
    pub placement: Option<Placement>,
    /// Cross-page seal (骑缝章) over these pages (1-based; empty = all), at this height and width.
    pub cross_page: Option<CrossPage>,
    /// Certify with this many empty fields for later seals.
    pub certify: Option<usize>,
    pub reason: Option<String>,
    pub location: Option<String>,
}

impl CrossPage {
    /// Parses a page list: "all" or comma-separated page numbers (1-based).
    pub fn parse(spec: &str, y: Option<f32>, width: f32) -> Result<Self> {
        let pages = if spec.trim() == "all" {
            Vec::new()
        } else {
            spec.split(',')
                .map(|n| n.trim().parse::<usize>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| Error::bad_request("cross-page takes page numbers or \"all\""))?
        };
        Ok(CrossPage { pages, y, width })
    }
}

#[derive(Debug, Clone)]
pub struct CrossPage {
    pub pages: Vec<usize>,
    /// Lower edge of the slices (points from the bottom); the middle of the page when absent.
    pub y: Option<f32>,
    /// Width of the whole seal (points).
    pub width: f32,
}

/// Everything a blocking signing run needs, loaded from the store.
pub struct SealKit {
    pub seal: SealRow,
    pub signer: Arc<dyn crate::pki::keystore::Signer>,
    pub chain: Vec<Vec<u8>>,
    pub tsa: Option<Arc<dyn Timestamper>>,
    /// CRL and TSA chain for the DSS.
    pub crls: Vec<Vec<u8>>,
    pub tsa_chain: Vec<Vec<u8>>,
    pub time: i64,
}

/// The time-stamp authority: the configured external one, or the built-in one.
pub async fn timestamper(app: &App) -> Result<(Arc<dyn Timestamper>, Vec<Vec<u8>>)> {
    if let Some(url) = &app.config.tsa_url {
        return Ok((Arc::new(tsa::ExternalTsa { url: url.clone() }), Vec::new()));
    }
    let (tsa, chain) = builtin_tsa(app).await?;
    Ok((Arc::new(tsa), chain))
}

/// The built-in time-stamp authority and its chain (its certificate, then the root).
pub async fn builtin_tsa(app: &App) -> Result<(tsa::BuiltinTsa, Vec<Vec<u8>>)> {
    let cert = app.pki.tsa_signer().await?;
    let key = app.pki.keys().signer(cert.key()?).await?;
    let root = app.pki.root().await?;
    let chain = vec![cert.der.clone(), root.der.clone()];
    Ok((
        tsa::BuiltinTsa::new(key, chain.clone(), app.clock.clone()),
        chain,
    ))
}

/// Loads a seal for signing: it must be active with a valid, unrevoked certificate.
pub async fn kit(app: &App, id: &str, level: Level) -> Result<SealKit> {
    let seal = get(app, id).await?;
    if seal.status != "active" {
        return Err(Error::SealInactive {
            id: seal.id.clone(),
            status: seal.status.clone(),
        });
    }
    let cert = app
        .store
        .certificate(&seal.cert_serial)
        .await?
        .ok_or_else(|| Error::internal("seal certificate missing"))?;
    let now = app.clock.unix();
    if cert.revoked_at.is_some() || now < cert.not_before || now > cert.not_after {
        return Err(Error::SealInactive {
            id: seal.id.clone(),
            status: "without a valid certificate".into(),
        });
    }
    let key = app.pki.keys().signer(cert.key()?).await?;
    let root = app.pki.root().await?;
    let (tsa, tsa_chain) = if level == Level::BB {
        (None, Vec::new())
    } else {
        let (t, c) = timestamper(app).await?;
        (Some(t), c)
    };
    let crls = if matches!(level, Level::BLT | Level::BLTA) {
        vec![app.pki.current_crl().await?.der]
    } else {
        Vec::new()
    };
    Ok(SealKit {
        seal,
        signer: key,
        chain: vec![cert.der.clone(), root.der.clone()],
        tsa,
        crls,
        tsa_chain,
        time: now,
    })
}

/// A source followed by bytes appended in memory: the document as it grows revision by revision.
pub struct Grown<'a, S: Source + ?Sized> {
    pub base: &'a S,
    pub tail: Vec<u8>,
}

impl<S: Source + ?Sized> Source for Grown<'_, S> {
    fn len(&self) -> u64 {
        self.base.len() + self.tail.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let blen = self.base.len();
        if offset < blen {
            let want = buf.len().min((blen - offset) as usize);
            let n = self
                .base
                .read_at(offset, buf.get_mut(..want).unwrap_or_default())?;
            if n < want || want == buf.len() {
                return Ok(n);
            }
            let m = self
                .tail
                .as_slice()
                .read_at(0, buf.get_mut(want..).unwrap_or_default())?;
            Ok(n + m)
        } else {
            self.tail.as_slice().read_at(offset - blen, buf)
        }
    }
}

/// What sealing produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sealed {
    pub seal: String,
    pub field: String,
    pub level: String,
    pub byte_range: [u64; 4],
    /// Total size of the sealed document.
    pub bytes: u64,
}

/// Seals the document in `src`; returns the bytes to append to it (every new revision).
pub fn seal_document<S: Source + ?Sized>(
    src: &S,
    kit: &SealKit,
    opts: &SignOptions,
) -> Result<(Vec<u8>, Sealed)> {
    let image = if opts.placement.is_some() || opts.cross_page.is_some() {
        Some(Appearance::from_png(&kit.seal.image)?)
    } else {
        None
    };
    let req = Request {
        chain: &kit.chain,
        signer: kit.signer.as_ref(),
        appearance: match (&image, &opts.placement) {
            (Some(a), Some(p)) => Some((a.clone(), p.clone())),
            _ => None,
        },
        cross_page: match (&image, &opts.cross_page) {
            (Some(a), Some(c)) => Some((a.clone(), c.clone())),
            _ => None,
        },
        certify: opts.certify,
        timestamper: kit.tsa.as_deref(),
        name: kit.seal.name.clone(),
        reason: opts.reason.clone(),
        location: opts.location.clone(),
        time: kit.time,
    };
    let pdf = Pdf::open(src)?;
    let (prepared, outcome) = pades::sign(&pdf, &req, opts.level)?;
    let mut grown = Grown {
        base: src,
        tail: prepared.bytes,
    };
    if matches!(opts.level, Level::BLT | Level::BLTA) {
        let mut certs = kit.chain.clone();
        for c in &kit.tsa_chain {
            if !certs.contains(c) {
                certs.push(c.clone());
            }
        }
        let dss = {
            let pdf = Pdf::open(&grown)?;
            add_dss(&pdf, &certs, &kit.crls)?
        };
        grown.tail.extend_from_slice(&dss);
    }
    if opts.level == Level::BLTA {
        let more = {
            let pdf = Pdf::open(&grown)?;
            pades::doc_timestamp(&pdf, &req)?.bytes
        };
        grown.tail.extend_from_slice(&more);
    }
    let total = grown.len();
    Ok((
        grown.tail,
        Sealed {
            seal: kit.seal.id.clone(),
            field: outcome.field,
            level: opts.level.to_string(),
            byte_range: outcome.byte_range,
            bytes: total,
        },
    ))
}

/// A revision adding (or extending) the Document Security Store with certificates and CRLs.
pub fn add_dss<S: Source + ?Sized>(
    pdf: &Pdf<'_, S>,
    certs: &[Vec<u8>],
    crls: &[Vec<u8>],
) -> Result<Vec<u8>> {
    let root = pdf.root_id()?;
    let mut catalog = pdf.catalog()?;
    let mut dss = match catalog.get(b"DSS") {
        Ok(o) => pdf.dict(o)?,
        Err(_) => Dictionary::new(),
    };
    let mut update = Update::new(pdf);
    for (key, items) in [(&b"Certs"[..], certs), (b"CRLs", crls)] {
        let mut arr = match dss.get(key) {
            Ok(o) => match pdf.resolve(o)? {
                Object::Array(a) => a,
                _ => Vec::new(),
            },
            Err(_) => Vec::new(),
        };
        for item in items {
            let id = update.add(Stream::new(Dictionary::new(), item.clone()));
            arr.push(Object::Reference(id));
        }
        dss.set(key.to_vec(), Object::Array(arr));
    }
    let dss_id = update.add(dss);
    catalog.set("DSS", Object::Reference(dss_id));
    update.set(root, catalog);
    Ok(update.write(pdf)?.bytes)
}

/// Seals the file `input` into `out` (written beside it and renamed, so a crash leaves either no
/// output or a whole one). The input is read in windows, never whole.
pub async fn seal_file(
    app: &App,
    kit: SealKit,
    input: &std::path::Path,
    out: &std::path::Path,
    opts: SignOptions,
) -> Result<Sealed> {
    let (input, out) = (input.to_path_buf(), out.to_path_buf());
    let seal_id = kit.seal.id.clone();
    let sealed = tokio::task::spawn_blocking(move || -> Result<Sealed> {
        let src = crate::pdf::FileSource::open(&input)?;
        let (tail, sealed) = seal_document(&src, &kit, &opts)?;
        let io = |e: std::io::Error| Error::bad_request(format!("writing {}: {e}", out.display()));
        let dir = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        {
            use std::io::{Read, Write};
            let mut f = std::fs::File::open(&input).map_err(io)?;
            std::io::copy(&mut (&mut f).take(src.len()), tmp.as_file_mut()).map_err(io)?;
            tmp.as_file_mut().write_all(&tail).map_err(io)?;
            tmp.as_file_mut().sync_all().map_err(io)?;
        }
        tmp.persist(&out).map_err(|e| io(e.error))?;
        Ok(sealed)
    })
    .await
    .map_err(|e| Error::internal(format!("sealing task: {e}")))??;
    audit_sign(app, &seal_id, &sealed).await?;
    Ok(sealed)
}

/// Seals a document held in memory; returns the whole sealed document.
pub async fn seal_bytes(
    app: &App,
    kit: SealKit,
    pdf: Vec<u8>,
    opts: SignOptions,
) -> Result<(Vec<u8>, Sealed)> {
    let seal_id = kit.seal.id.clone();
    let (doc, sealed) = tokio::task::spawn_blocking(move || -> Result<(Vec<u8>, Sealed)> {
        let (tail, sealed) = seal_document(&pdf, &kit, &opts)?;
        let mut doc = pdf;
        doc.extend_from_slice(&tail);
        Ok((doc, sealed))
    })
    .await
    .map_err(|e| Error::internal(format!("sealing task: {e}")))??;
    audit_sign(app, &seal_id, &sealed).await?;
    Ok((doc, sealed))
}

async fn audit_sign(app: &App, seal_id: &str, s: &Sealed) -> Result<()> {
    app.audit
        .append(crate::audit::Entry::new(
            "operator",
            "seal.sign",
            seal_id,
            serde_json::json!({"field": s.field, "level": s.level, "byte_range": s.byte_range, "bytes": s.bytes}),
        ))
        .await?;
    Ok(())
}

/// What this service trusts for seal verification: its root, imported regions' roots, its
/// current CRL, and its seals (to name them), plus `extra_roots`.
pub async fn trust(app: &App, extra_roots: Vec<Vec<u8>>) -> Result<verify::Trust> {
    let mut roots = crate::verify::trust::trusted_roots(app).await?;
    roots.extend(extra_roots);
    let crls = vec![app.pki.current_crl().await?.der];
    let seals = app.store.seal_directory().await?;
    Ok(verify::Trust { roots, crls, seals })
}

/// Verifies a document held in memory (on a blocking thread).
pub async fn verify_bytes(app: &App, pdf: Vec<u8>) -> Result<verify::Report> {
    let trust = trust(app, Vec::new()).await?;
    let now = app.clock.unix();
    tokio::task::spawn_blocking(move || verify::verify_document(&pdf, &trust, now))
        .await
        .map_err(|e| Error::internal(format!("verification task: {e}")))?
}

/// The license face rendered as a PDF and sealed (B-T, visible) with the issuing authority's
/// active license seal.
pub async fn sealed_license_pdf(app: &App, id: &str) -> Result<Vec<u8>> {
    let detail = app.licenses.detail(id).await?;
    let l = &detail.license;
    let t = app.licenses.license_type(&l.type_code).await?;
    let authority = app
        .store
        .authority(&l.issuer)
        .await?
        .map(|a| a.name)
        .unwrap_or_else(|| l.issuer.clone());
    let code = crate::present::issue(
        app,
        &l.holder.code,
        crate::present::ShowCodeRequest {
            license_id: l.id.clone(),
            fields: Vec::new(),
            printed: true,
        },
    )
    .await
    .ok()
    .map(|c| c.code);
    let mut rows = vec![
        ("持证人 Holder".to_string(), l.holder.name.clone()),
        ("证件号码 Holder code".to_string(), l.holder.code.clone()),
        ("证照编号 Number".to_string(), l.number.clone()),
    ];
    let props = t.def.schema.get("properties").and_then(|p| p.as_object());
    if let Some(fields) = l.fields.as_object() {
        for (k, v) in fields {
            let label = props
                .and_then(|p| p.get(k))
                .and_then(|p| p.get("description"))
                .and_then(|d| d.as_str())
                .map(|d| format!("{d} {k}"))
                .unwrap_or_else(|| k.clone());
            let value = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            rows.push((label, value));
        }
    }
    rows.push((
        "有效期限 Validity".into(),
        format!(
            "{} 至 {}",
            l.valid_from,
            l.valid_to
                .clone()
                .unwrap_or_else(|| "长期 long-term".into())
        ),
    ));
    rows.push(("发证机关 Issuer".into(), authority));
    rows.push(("签发日期 Issued".into(), l.issue_date.clone()));
    rows.push((
        "状态 Status".into(),
        format!("{:?}", l.status).to_lowercase(),
    ));
    let face = crate::license::pdf::Face {
        title: l.type_name.clone(),
        subtitle: "电子证照 Electronic license".into(),
        rows,
        footer: vec![
            format!("证照标识 License identifier: {}", l.id),
            format!(
                "Signed by the issuing authority (COSE_Sign1 ES256, certificate {}).",
                l.signature.certificate_serial
            ),
            "Sealed with its license seal (PAdES); verify with any PDF signature validator or scan the code.".into(),
        ],
        code,
    };
    let font_path = app.config.pdf_font.clone();
    let pdf = tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
        let font = crate::license::pdf::CjkFont::find(font_path.as_deref())?;
        crate::license::pdf::render(&face, &font)
    })
    .await
    .map_err(|e| Error::internal(format!("rendering task: {e}")))??;
    let seal = app
        .store
        .seals(Some(&l.issuer))
        .await?
        .into_iter()
        .find(|s| s.kind == "license" && s.status == "active")
        .ok_or_else(|| Error::SealNotFound {
            id: format!("active license seal of authority {}", l.issuer),
        })?;
    let kit = kit(app, &seal.id, Level::BT).await?;
    let (x, y, width) = crate::license::pdf::SEAL_PLACE;
    let opts = SignOptions {
        level: Level::BT,
        placement: Some(Placement {
            page: 1,
            x,
            y,
            width,
        }),
        cross_page: None,
        certify: None,
        reason: Some("电子证照签章 e-license seal".into()),
        location: None,
    };
    Ok(seal_bytes(app, kit, pdf, opts).await?.0)
}
