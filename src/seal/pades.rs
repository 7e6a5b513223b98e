//! PAdES signatures as incremental updates.
//!
//! The update adds a signature dictionary (SubFilter ETSI.CAdES.detached) with a zero-filled
//! /Contents placeholder, a merged signature field + widget on a page, and the form entries that
//! point at it. The byte ranges around the placeholder are hashed as a stream — the original file
//! straight from its source, then the update — so a 100 MB scan is never in memory.

use super::appearance::Appearance;
use super::cms::{ID_DATA, Signed};
use crate::error::{Error, Result};
use crate::pdf::write::Update;
use crate::pdf::{Pdf, Source};
use crate::pki::keystore::Signer;
use lopdf::{Dictionary, Object, ObjectId, StringFormat};

/// Bytes reserved for the CMS blob (hex-encoded in the file: twice this).
pub const CONTENTS_BYTES: usize = 16 * 1024;
const BYTE_RANGE_PLACEHOLDER: &[u8] = b"9999999999 9999999999 9999999999";

/// PAdES baseline levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Level {
    #[serde(rename = "B-B")]
    BB,
    #[serde(rename = "B-T")]
    BT,
    #[serde(rename = "B-LT")]
    BLT,
    #[serde(rename = "B-LTA")]
    BLTA,
}

impl std::str::FromStr for Level {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_uppercase().as_str() {
            "B-B" => Ok(Level::BB),
            "B-T" => Ok(Level::BT),
            "B-LT" => Ok(Level::BLT),
            "B-LTA" => Ok(Level::BLTA),
            _ => Err(Error::bad_request(
                "the level must be one of B-B, B-T, B-LT, B-LTA",
            )),
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Level::BB => "B-B",
            Level::BT => "B-T",
            Level::BLT => "B-LT",
            Level::BLTA => "B-LTA",
        })
    }
}

/// Where a visible seal goes: page (1-based) and rectangle in PDF points from the lower left.
#[derive(Debug, Clone)]
pub struct Placement {
    pub page: usize,
    pub x: f32,
    pub y: f32,
    pub width: f32,
}

/// Gets an RFC 3161 time-stamp token (DER ContentInfo) over a SHA-256 digest.
pub trait Timestamper: Send + Sync {
    fn timestamp(&self, digest: &[u8; 32]) -> Result<Vec<u8>>;
}

/// What one signing does besides the signature itself.
pub struct Request<'a> {
    /// The certificate chain, the signer's first.
    pub chain: &'a [Vec<u8>],
    pub signer: &'a dyn Signer,
    pub appearance: Option<(Appearance, Placement)>,
    /// A cross-page seal: one signature, its image cut into slices on the pages' right edges.
    pub cross_page: Option<(Appearance, super::CrossPage)>,
    /// Certify (DocMDP, P=2: form filling and signing allowed) with this many empty signature
    /// fields created for later seals.
    pub certify: Option<usize>,
    pub timestamper: Option<&'a dyn Timestamper>,
    /// The signer's name, reason and location shown by viewers.
    pub name: String,
    pub reason: Option<String>,
    pub location: Option<String>,
    /// Signing time for /M (Unix seconds).
    pub time: i64,
}

/// What the signer wrote, for reports and tests.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub field: String,
    pub byte_range: [u64; 4],
    pub bytes: u64,
}

/// A prepared revision: the update bytes with a placeholder, and where to patch them.
pub struct Prepared {
    pub bytes: Vec<u8>,
    /// Offset (in `bytes`) of the `<` that opens /Contents.
    pub contents_at: usize,
    /// Offset (in `bytes`) of the ByteRange placeholder digits.
    pub range_at: usize,
    pub base: u64,
    pub field: String,
}

impl Prepared {
    pub fn byte_range(&self) -> [u64; 4] {
        let a = self.base + self.contents_at as u64;
        let b = a + 2 + 2 * CONTENTS_BYTES as u64;
        let total = self.base + self.bytes.len() as u64;
        [0, a, b, total - b]
    }

    /// Writes the byte range into the placeholder.
    fn patch_range(&mut self) -> Result<()> {
        let r = self.byte_range();
        let text = format!("{} {} {}", r[1], r[2], r[3]);
        if text.len() > BYTE_RANGE_PLACEHOLDER.len() {
            return Err(Error::PdfLimit {
                reason: "the document is too large to sign".into(),
            });
        }
        let mut padded = text.into_bytes();
        padded.resize(BYTE_RANGE_PLACEHOLDER.len(), b' ');
        let slot = self
            .bytes
            .get_mut(self.range_at..self.range_at + BYTE_RANGE_PLACEHOLDER.len())
            .ok_or_else(|| Error::internal("byte range placeholder out of place"))?;
        slot.copy_from_slice(&padded);
        Ok(())
    }

    /// SHA-256 over the byte ranges: the original from its source, then the update.
    pub fn digest<S: Source + ?Sized>(&self, pdf: &Pdf<'_, S>) -> Result<[u8; 32]> {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        pdf.stream_range(0, self.base, |b| ctx.update(b))?;
        ctx.update(self.bytes.get(..self.contents_at).unwrap_or_default());
        let after = self.contents_at + 2 + 2 * CONTENTS_BYTES;
        ctx.update(self.bytes.get(after..).unwrap_or_default());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        Ok(out)
    }

    /// Puts the signature (DER) into /Contents.
    pub fn fill(&mut self, der: &[u8]) -> Result<()> {
        if der.len() > CONTENTS_BYTES {
            return Err(Error::internal(format!(
                "the signature ({} bytes) does not fit the reserved {CONTENTS_BYTES}",
                der.len()
            )));
        }
        let hexed = hex::encode_upper(der);
        let slot = self
            .bytes
            .get_mut(self.contents_at + 1..self.contents_at + 1 + hexed.len())
            .ok_or_else(|| Error::internal("contents placeholder out of place"))?;
        slot.copy_from_slice(hexed.as_bytes());
        Ok(())
    }
}

fn bad(reason: impl Into<String>) -> Error {
    Error::BadPdf {
        reason: reason.into(),
    }
}

fn name(s: &str) -> Object {
    Object::Name(s.as_bytes().to_vec())
}

fn text(s: &str) -> Object {
    // PDF text strings: UTF-16BE with a BOM when not plain ASCII.
    if s.is_ascii() {
        Object::String(s.as_bytes().to_vec(), StringFormat::Literal)
    } else {
        let mut v = vec![0xfe, 0xff];
        for u in s.encode_utf16() {
            v.extend_from_slice(&u.to_be_bytes());
        }
        Object::String(v, StringFormat::Hexadecimal)
    }
}

/// PDF date string of a Unix time (UTC).
pub fn pdf_date(unix: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "D:{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The signature dictionary with placeholders.
fn sig_dict(req: &Request<'_>, sub_filter: &str, certify_ref: Option<bool>) -> Dictionary {
    let mut d = Dictionary::new();
    if sub_filter == "ETSI.RFC3161" {
        d.set("Type", name("DocTimeStamp"));
    } else {
        d.set("Type", name("Sig"));
    }
    d.set("Filter", name("Adobe.PPKLite"));
    d.set("SubFilter", name(sub_filter));
    d.set(
        "ByteRange",
        Object::Array(vec![
            Object::Integer(0),
            Object::Integer(9_999_999_999),
            Object::Integer(9_999_999_999),
            Object::Integer(9_999_999_999),
        ]),
    );
    d.set(
        "Contents",
        Object::String(vec![0u8; CONTENTS_BYTES], StringFormat::Hexadecimal),
    );
    if sub_filter != "ETSI.RFC3161" {
        d.set(
            "M",
            Object::String(pdf_date(req.time).into_bytes(), StringFormat::Literal),
        );
        d.set("Name", text(&req.name));
        if let Some(r) = &req.reason {
            d.set("Reason", text(r));
        }
        if let Some(l) = &req.location {
            d.set("Location", text(l));
        }
    }
    if certify_ref == Some(true) {
        let mut params = Dictionary::new();
        params.set("Type", name("TransformParams"));
        params.set("P", 2);
        params.set("V", name("1.2"));
        let mut r = Dictionary::new();
        r.set("Type", name("SigRef"));
        r.set("TransformMethod", name("DocMDP"));
        r.set("TransformParams", params);
        d.set("Reference", Object::Array(vec![Object::Dictionary(r)]));
    }
    d
}

/// The form of a document: where /AcroForm lives and its fields.
struct Form {
    /// The AcroForm dictionary as it is now.
    dict: Dictionary,
    /// Its object id when it is indirect.
    id: Option<ObjectId>,
    /// The field references, and the id of the /Fields array when that is indirect.
    fields: Vec<Object>,
    fields_id: Option<ObjectId>,
}

fn read_form<S: Source + ?Sized>(pdf: &Pdf<'_, S>, catalog: &Dictionary) -> Result<Form> {
    let (dict, id) = match catalog.get(b"AcroForm") {
        Ok(Object::Reference(r)) => (pdf.dict(&Object::Reference(*r))?, Some(*r)),
        Ok(Object::Dictionary(d)) => (d.clone(), None),
        _ => (Dictionary::new(), None),
    };
    let (fields, fields_id) = match dict.get(b"Fields") {
        Ok(Object::Array(a)) => (a.clone(), None),
        Ok(Object::Reference(r)) => match pdf.get(*r)? {
            Object::Array(a) => (a, Some(*r)),
            _ => return Err(bad("/Fields is not an array")),
        },
        _ => (Vec::new(), None),
    };
    Ok(Form {
        dict,
        id,
        fields,
        fields_id,
    })
}

/// An existing signature field the new seal may fill: (field id, its dictionary).
fn empty_sig_field<S: Source + ?Sized>(
    pdf: &Pdf<'_, S>,
    form: &Form,
) -> Result<Option<(ObjectId, Dictionary)>> {
    for f in form.fields.iter().take(10_000) {
        if let Object::Reference(r) = f {
            let d = pdf.dict(f)?;
            if matches!(d.get(b"FT"), Ok(Object::Name(n)) if n == b"Sig") && !d.has(b"V") {
                return Ok(Some((*r, d)));
            }
        }
    }
    Ok(None)
}

fn field_names<S: Source + ?Sized>(pdf: &Pdf<'_, S>, form: &Form) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for f in form.fields.iter().take(10_000) {
        if let Ok(d) = pdf.dict(f)
            && let Ok(Object::String(t, _)) = d.get(b"T")
        {
            out.push(t.clone());
        }
    }
    Ok(out)
}

/// The first `prefixN` (N from 1) that no top-level field of the form is named.
fn free_field_name<S: Source + ?Sized>(
    pdf: &Pdf<'_, S>,
    form: &Form,
    prefix: &str,
) -> Result<String> {
    let existing = field_names(pdf, form)?;
    let mut n = 1;
    while existing.contains(&format!("{prefix}{n}").into_bytes()) {
        n += 1;
    }
    Ok(format!("{prefix}{n}"))
}

/// Is the document certified in a way that forbids any change (DocMDP P=1)?
fn docmdp_forbids<S: Source + ?Sized>(pdf: &Pdf<'_, S>, catalog: &Dictionary) -> Result<bool> {
    let Ok(perms) = catalog.get(b"Perms") else {
        return Ok(false);
    };
    let perms = pdf.dict(perms)?;
    let Ok(sig) = perms.get(b"DocMDP") else {
        return Ok(false);
    };
    let sig = pdf.dict(sig)?;
    if let Ok(Object::Array(refs)) = sig.get(b"Reference") {
        for r in refs {
            let r = pdf.dict(r)?;
            if let Ok(p) = r.get(b"TransformParams") {
                let p = pdf.dict(p)?;
                if matches!(p.get(b"P"), Ok(Object::Integer(1))) {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

fn page_annots<S: Source + ?Sized>(
    pdf: &Pdf<'_, S>,
    update: &mut Update,
    page: ObjectId,
    widgets: &[ObjectId],
) -> Result<()> {
    let mut page_dict = pdf.dict(&Object::Reference(page))?;
    match page_dict.get(b"Annots") {
        Ok(Object::Reference(r)) => {
            let r = *r;
            let mut arr = match pdf.get(r)? {
                Object::Array(a) => a,
                _ => return Err(bad("/Annots is not an array")),
            };
            arr.extend(widgets.iter().map(|w| Object::Reference(*w)));
            update.set(r, Object::Array(arr));
        }
        Ok(Object::Array(a)) => {
            let mut arr = a.clone();
            arr.extend(widgets.iter().map(|w| Object::Reference(*w)));
            page_dict.set("Annots", Object::Array(arr));
            update.set(page, page_dict);
        }
        _ => {
            page_dict.set(
                "Annots",
                Object::Array(widgets.iter().map(|w| Object::Reference(*w)).collect()),
            );
            update.set(page, page_dict);
        }
    }
    Ok(())
}

/// Builds the revision that adds one signature (or document time-stamp) with placeholders.
pub fn prepare<S: Source + ?Sized>(
    pdf: &Pdf<'_, S>,
    req: &Request<'_>,
    doc_timestamp: bool,
) -> Result<Prepared> {
    let catalog = pdf.catalog()?;
    let root = pdf.root_id()?;
    if docmdp_forbids(pdf, &catalog)? {
        return Err(Error::DocumentLocked);
    }
    let pages = pdf.pages()?;
    let mut form = read_form(pdf, &catalog)?;
    let mut update = Update::new(pdf);
    let sub_filter = if doc_timestamp {
        "ETSI.RFC3161"
    } else {
        "ETSI.CAdES.detached"
    };
    let certify = !doc_timestamp && req.certify.is_some();
    if certify && catalog.has(b"Perms") {
        return Err(Error::bad_request(
            "the document is certified already; only approval seals can be added",
        ));
    }
    if certify && !form.fields.is_empty() {
        return Err(Error::bad_request(
            "only a document without signatures or form fields can be certified",
        ));
    }
    let sig_id = update.add(sig_dict(req, sub_filter, Some(certify)));

    // The field: a pre-created empty one (when not placing a visible seal), or a new one.
    let reuse = if req.appearance.is_none() && !doc_timestamp {
        empty_sig_field(pdf, &form)?
    } else {
        None
    };
    let mut new_fields = Vec::new();
    let mut widgets_on_pages: Vec<(ObjectId, ObjectId)> = Vec::new();
    let field_name = if let Some((fid, mut fd)) = reuse {
        fd.set("V", Object::Reference(sig_id));
        let fname = match fd.get(b"T") {
            Ok(Object::String(t, _)) => String::from_utf8_lossy(t).into_owned(),
            _ => "Seal".into(),
        };
        update.set(fid, fd);
        fname
    } else if let Some((app, cp)) = req.cross_page.as_ref().filter(|_| !doc_timestamp) {
        let fname = free_field_name(pdf, &form, "CrossPageSeal")?;
        let chosen: Vec<usize> = if cp.pages.is_empty() {
            (1..=pages.len()).collect()
        } else {
            cp.pages.clone()
        };
        if chosen.len() < 2 {
            return Err(Error::bad_request(
                "a cross-page seal needs at least two pages",
            ));
        }
        let count = chosen.len();
        let width = cp.width.clamp(20.0, 400.0);
        let slice_w = width / count as f32;
        let h = width * app.aspect();
        let image = app.write_image(&mut update);
        // The first slice is the signature's widget; the others are locked stamp annotations
        // added in the same signed revision (validators such as poppler read a signature field
        // with several widgets as several unsigned fields).
        let field_id = update.alloc();
        for (i, p) in chosen.iter().enumerate() {
            let page = *p.checked_sub(1).and_then(|i| pages.get(i)).ok_or_else(|| {
                Error::bad_request(format!("the document has {} pages", pages.len()))
            })?;
            let bx = pdf.page_box(page)?;
            let y = cp.y.unwrap_or((bx[1] + bx[3]) / 2.0 - h / 2.0);
            let rect = [bx[2] - slice_w, y, bx[2], y + h];
            let ap = Appearance::write_slice(image, &mut update, i, count, slice_w, h);
            let mut w = Dictionary::new();
            w.set("Type", name("Annot"));
            if i == 0 {
                w.set("Subtype", name("Widget"));
                w.set("FT", name("Sig"));
                w.set("T", text(&fname));
                w.set("V", Object::Reference(sig_id));
            } else {
                w.set("Subtype", name("Stamp"));
                w.set("Name", name("CrossPageSeal"));
                w.set("NM", text(&format!("{fname}-{}", i + 1)));
                w.set(
                    "Contents",
                    text(&format!(
                        "Cross-page seal {fname}, slice {} of {count}",
                        i + 1
                    )),
                );
            }
            w.set("F", 132);
            w.set(
                "Rect",
                Object::Array(rect.iter().map(|v| Object::Real(*v)).collect()),
            );
            w.set("P", Object::Reference(page));
            let mut apd = Dictionary::new();
            apd.set("N", Object::Reference(ap));
            w.set("AP", apd);
            let wid = if i == 0 {
                update.set(field_id, w);
                field_id
            } else {
                update.add(w)
            };
            widgets_on_pages.push((page, wid));
        }
        new_fields.push(field_id);
        fname
    } else {
        let prefix = if doc_timestamp {
            "DocTimeStamp"
        } else {
            "Seal"
        };
        let fname = free_field_name(pdf, &form, prefix)?;
        let (page_index, rect, ap) = match &req.appearance {
            Some((app, place)) if !doc_timestamp => {
                let idx = place
                    .page
                    .checked_sub(1)
                    .filter(|i| *i < pages.len())
                    .ok_or_else(|| {
                        Error::bad_request(format!("the document has {} pages", pages.len()))
                    })?;
                let height = place.width * app.aspect();
                let rect = [place.x, place.y, place.x + place.width, place.y + height];
                let ap = app.write(&mut update, place.width, height)?;
                (idx, rect, ap)
            }
            _ => {
                let ap = Appearance::empty(&mut update);
                (0, [0.0; 4], ap)
            }
        };
        let page = *pages.get(page_index).ok_or_else(|| bad("page missing"))?;
        let mut f = Dictionary::new();
        f.set("FT", name("Sig"));
        f.set("T", text(&fname));
        f.set("V", Object::Reference(sig_id));
        f.set("Type", name("Annot"));
        f.set("Subtype", name("Widget"));
        f.set("F", 132);
        f.set(
            "Rect",
            Object::Array(rect.iter().map(|v| Object::Real(*v)).collect()),
        );
        f.set("P", Object::Reference(page));
        let mut apd = Dictionary::new();
        apd.set("N", Object::Reference(ap));
        f.set("AP", apd);
        let fid = update.add(f);
        new_fields.push(fid);
        widgets_on_pages.push((page, fid));
        fname
    };

    // Empty fields for later approval seals, created with the certification so that filling
    // them later is an allowed change.
    let mut widgets_on_first = widgets_on_pages;
    if certify {
        let first_page = *pages.first().ok_or_else(|| bad("no pages"))?;
        for i in 0..req.certify.unwrap_or(0).min(20) {
            let ap = Appearance::empty(&mut update);
            let mut f = Dictionary::new();
            f.set("FT", name("Sig"));
            f.set("T", text(&format!("Seal{}", i + 2)));
            f.set("Type", name("Annot"));
            f.set("Subtype", name("Widget"));
            f.set("F", 132);
            f.set(
                "Rect",
                Object::Array(vec![0.into(), 0.into(), 0.into(), 0.into()]),
            );
            f.set("P", Object::Reference(first_page));
            let mut apd = Dictionary::new();
            apd.set("N", Object::Reference(ap));
            f.set("AP", apd);
            let fid = update.add(f);
            new_fields.push(fid);
            widgets_on_first.push((first_page, fid));
        }
    }
    // Widgets go into their pages' /Annots (grouped per page).
    let mut by_page: Vec<(ObjectId, Vec<ObjectId>)> = Vec::new();
    for (p, w) in widgets_on_first {
        match by_page.iter_mut().find(|e| e.0 == p) {
            Some(e) => e.1.push(w),
            None => by_page.push((p, vec![w])),
        }
    }
    for (p, ws) in &by_page {
        page_annots(pdf, &mut update, *p, ws)?;
    }

    // The form and the catalog.
    let mut catalog_changed = false;
    let mut catalog = catalog;
    if !new_fields.is_empty() {
        form.fields
            .extend(new_fields.iter().map(|f| Object::Reference(*f)));
        match form.fields_id {
            Some(id) => update.set(id, Object::Array(form.fields.clone())),
            None => form.dict.set("Fields", Object::Array(form.fields.clone())),
        }
    }
    form.dict.set("SigFlags", 3);
    match form.id {
        Some(id) => update.set(id, form.dict.clone()),
        None => {
            let id = update.add(form.dict.clone());
            catalog.set("AcroForm", Object::Reference(id));
            catalog_changed = true;
        }
    }
    if certify {
        let mut perms = Dictionary::new();
        perms.set("DocMDP", Object::Reference(sig_id));
        catalog.set("Perms", perms);
        catalog_changed = true;
    }
    if catalog_changed {
        update.set(root, catalog);
    }

    let written = update.write(pdf)?;
    let at = written
        .offsets
        .get(&sig_id.0)
        .copied()
        .ok_or_else(|| Error::internal("signature dictionary not written"))?;
    let obj = written.bytes.get(at..).unwrap_or_default();
    let range_at = at
        + crate::pdf::find(obj, BYTE_RANGE_PLACEHOLDER)
            .ok_or_else(|| Error::internal("byte range placeholder missing"))?;
    let contents_key = crate::pdf::find(obj, b"/Contents")
        .ok_or_else(|| Error::internal("contents placeholder missing"))?;
    let lt = crate::pdf::find(obj.get(contents_key..).unwrap_or_default(), b"<")
        .ok_or_else(|| Error::internal("contents placeholder missing"))?;
    let mut prepared = Prepared {
        bytes: written.bytes,
        contents_at: at + contents_key + lt,
        range_at,
        base: pdf.len(),
        field: field_name,
    };
    prepared.patch_range()?;
    Ok(prepared)
}

/// Signs: prepares the revision, hashes the ranges, builds the CMS (with a signature time-stamp
/// from B-T on) and returns the bytes to append to the original.
pub fn sign<S: Source + ?Sized>(
    pdf: &Pdf<'_, S>,
    req: &Request<'_>,
    level: Level,
) -> Result<(Prepared, Outcome)> {
    let mut p = prepare(pdf, req, false)?;
    let digest = p.digest(pdf)?;
    let mut signed = Signed::new(req.signer, req.chain, ID_DATA, &digest, None)?;
    if level != Level::BB {
        let tsa = req.timestamper.ok_or_else(|| {
            Error::bad_request(format!("level {level} needs a time-stamp authority"))
        })?;
        let sig = super::cms::sha256(&signed.signature());
        let token = tsa.timestamp(&sig)?;
        signed.add_timestamp(&token)?;
    }
    p.fill(&signed.to_der()?)?;
    let outcome = Outcome {
        field: p.field.clone(),
        byte_range: p.byte_range(),
        bytes: p.base + p.bytes.len() as u64,
    };
    Ok((p, outcome))
}

/// Adds a document time-stamp (PAdES B-LTA) as a new revision.
pub fn doc_timestamp<S: Source + ?Sized>(pdf: &Pdf<'_, S>, req: &Request<'_>) -> Result<Prepared> {
    let tsa = req
        .timestamper
        .ok_or_else(|| Error::bad_request("B-LTA needs a time-stamp authority"))?;
    let mut p = prepare(pdf, req, true)?;
    let digest = p.digest(pdf)?;
    let token = tsa.timestamp(&digest)?;
    p.fill(&token)?;
    Ok(p)
}
