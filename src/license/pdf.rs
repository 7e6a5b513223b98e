//! The license face as a PDF: Chinese text in an embedded subset of a CJK font (so every viewer
//! shows it without font packs), the holder fields, and the printed show code as a vector QR
//! code. The caller seals it with the issuing authority's license seal.

use crate::error::{Error, Result};
use lopdf::{Dictionary, Document, Object, Stream, StringFormat};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Where CJK fonts live on common systems (Debian's fonts-noto-cjk first).
const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
];

/// A loaded font file and the face to use (the Simplified Chinese face of a collection).
pub struct CjkFont {
    data: Vec<u8>,
    index: u32,
    pub name: String,
}

fn font_cache() -> &'static Mutex<BTreeMap<PathBuf, Arc<CjkFont>>> {
    static CACHE: OnceLock<Mutex<BTreeMap<PathBuf, Arc<CjkFont>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(BTreeMap::new()))
}

impl CjkFont {
    /// Loads `configured`, or the first CJK font found in the usual places; cached per path.
    pub fn find(configured: Option<&Path>) -> Result<Arc<CjkFont>> {
        let candidates: Vec<PathBuf> = match configured {
            Some(p) => vec![p.to_path_buf()],
            None => FONT_CANDIDATES.iter().map(PathBuf::from).collect(),
        };
        for path in candidates {
            if let Some(f) = font_cache().lock().ok().and_then(|c| c.get(&path).cloned()) {
                return Ok(f);
            }
            let Ok(data) = std::fs::read(&path) else {
                continue;
            };
            let count = ttf_parser::fonts_in_collection(&data).unwrap_or(1);
            let mut chosen = None;
            for i in 0..count {
                if let Ok(face) = ttf_parser::Face::parse(&data, i) {
                    let family = face
                        .names()
                        .into_iter()
                        .filter(|n| n.name_id == ttf_parser::name_id::FULL_NAME)
                        .find_map(|n| n.to_string())
                        .unwrap_or_default();
                    let has_han = face.glyph_index('证').is_some();
                    if has_han && (chosen.is_none() || family.contains(" SC")) {
                        chosen = Some((i, family));
                    }
                }
            }
            if let Some((index, name)) = chosen {
                let f = Arc::new(CjkFont { data, index, name });
                if let Ok(mut c) = font_cache().lock() {
                    c.insert(path, f.clone());
                }
                return Ok(f);
            }
        }
        Err(Error::NoCjkFont)
    }
}

/// One line of text to draw.
struct Text {
    x: f32,
    y: f32,
    size: f32,
    text: String,
    grey: bool,
}

/// What the face shows.
pub struct Face {
    pub title: String,
    pub subtitle: String,
    /// (label, value) rows.
    pub rows: Vec<(String, String)>,
    pub footer: Vec<String>,
    /// The printed show code (QR content).
    pub code: Option<String>,
}

/// Where the seal goes on the rendered page (x, y, width in points).
pub const SEAL_PLACE: (f32, f32, f32) = (400.0, 120.0, 130.0);

/// Renders the face as a one-page A4 PDF.
pub fn render(face: &Face, font: &CjkFont) -> Result<Vec<u8>> {
    let ttf = ttf_parser::Face::parse(&font.data, font.index)
        .map_err(|e| Error::internal(format!("font: {e}")))?;
    let upem = f32::from(ttf.units_per_em().max(1));
    let mut items = Vec::new();
    let (left, mut y) = (56.0f32, 770.0f32);
    items.push(Text {
        x: left,
        y,
        size: 20.0,
        text: face.title.clone(),
        grey: false,
    });
    y -= 24.0;
    items.push(Text {
        x: left,
        y,
        size: 10.0,
        text: face.subtitle.clone(),
        grey: true,
    });
    y -= 40.0;
    for (label, value) in &face.rows {
        items.push(Text {
            x: left,
            y,
            size: 9.0,
            text: label.clone(),
            grey: true,
        });
        items.push(Text {
            x: left + 150.0,
            y,
            size: 12.0,
            text: value.clone(),
            grey: false,
        });
        y -= 24.0;
        if y < 200.0 {
            break;
        }
    }
    let mut fy = 90.0;
    for line in &face.footer {
        items.push(Text {
            x: left,
            y: fy,
            size: 7.5,
            text: line.clone(),
            grey: true,
        });
        fy -= 12.0;
    }
    if face.code.is_some() {
        items.push(Text {
            x: 420.0,
            y: 560.0,
            size: 9.0,
            text: "扫码核验 Scan to verify".into(),
            grey: true,
        });
    }

    // Glyphs: map every character, subset the font to them.
    let mut remapper = subsetter::GlyphRemapper::new();
    let mut unicode: BTreeMap<u16, char> = BTreeMap::new();
    let mut widths: BTreeMap<u16, f32> = BTreeMap::new();
    let mut encoded: Vec<Vec<u8>> = Vec::new();
    for it in &items {
        let mut bytes = Vec::new();
        for ch in it.text.chars() {
            let gid = ttf.glyph_index(ch).unwrap_or(ttf_parser::GlyphId(0));
            let new = remapper.remap(gid.0);
            unicode.entry(new).or_insert(ch);
            let adv = f32::from(ttf.glyph_hor_advance(gid).unwrap_or(0)) * 1000.0 / upem;
            widths.insert(new, adv);
            bytes.extend_from_slice(&new.to_be_bytes());
        }
        encoded.push(bytes);
    }
    let subset = subsetter::subset(&font.data, font.index, &remapper)
        .map_err(|e| Error::internal(format!("font subset: {e:?}")))?;
    let is_cff = ttf.tables().cff.is_some() || ttf.tables().cff2.is_some();

    let mut doc = Document::with_version("1.7");
    let mut content = String::new();
    // A thin frame and the QR code.
    content.push_str("q 0.75 0.1 0.1 RG 2 w 36 36 523 770 re S Q\n");
    if let Some(code) = &face.code {
        content.push_str(&qr_path(code, 420.0, 575.0, 130.0)?);
    }
    for (it, bytes) in items.iter().zip(&encoded) {
        let grey = if it.grey { "0.35 g" } else { "0 g" };
        content.push_str(&format!(
            "BT {grey} /F1 {:.2} Tf {:.2} {:.2} Td <{}> Tj ET\n",
            it.size,
            it.x,
            it.y,
            hex::encode_upper(bytes)
        ));
    }

    let mut file_dict = Dictionary::new();
    if is_cff {
        file_dict.set("Subtype", Object::Name(b"OpenType".to_vec()));
    } else {
        file_dict.set("Length1", subset.len() as i64);
    }
    let font_file = doc.add_object(Stream::new(file_dict, subset));
    let mut desc = Dictionary::new();
    desc.set("Type", Object::Name(b"FontDescriptor".to_vec()));
    desc.set("FontName", Object::Name(b"ELSUBS+CJK".to_vec()));
    desc.set("Flags", 4);
    desc.set(
        "FontBBox",
        Object::Array(vec![
            (-1000).into(),
            (-300).into(),
            2000.into(),
            1100.into(),
        ]),
    );
    desc.set("ItalicAngle", 0);
    desc.set("Ascent", 880);
    desc.set("Descent", -120);
    desc.set("CapHeight", 733);
    desc.set("StemV", 80);
    desc.set(
        if is_cff { "FontFile3" } else { "FontFile2" },
        Object::Reference(font_file),
    );
    let desc_id = doc.add_object(desc);
    let mut w = Vec::new();
    for (gid, adv) in &widths {
        w.push(Object::Integer(i64::from(*gid)));
        w.push(Object::Array(vec![Object::Integer(adv.round() as i64)]));
    }
    let mut cid = Dictionary::new();
    cid.set("Type", Object::Name(b"Font".to_vec()));
    cid.set(
        "Subtype",
        Object::Name(if is_cff {
            b"CIDFontType0".to_vec()
        } else {
            b"CIDFontType2".to_vec()
        }),
    );
    cid.set("BaseFont", Object::Name(b"ELSUBS+CJK".to_vec()));
    let mut info = Dictionary::new();
    info.set(
        "Registry",
        Object::String(b"Adobe".to_vec(), StringFormat::Literal),
    );
    info.set(
        "Ordering",
        Object::String(b"Identity".to_vec(), StringFormat::Literal),
    );
    info.set("Supplement", 0);
    cid.set("CIDSystemInfo", info);
    cid.set("FontDescriptor", Object::Reference(desc_id));
    cid.set("DW", 1000);
    cid.set("W", Object::Array(w));
    if !is_cff {
        cid.set("CIDToGIDMap", Object::Name(b"Identity".to_vec()));
    }
    let cid_id = doc.add_object(cid);
    let to_unicode = doc.add_object(Stream::new(Dictionary::new(), to_unicode_cmap(&unicode)));
    let mut type0 = Dictionary::new();
    type0.set("Type", Object::Name(b"Font".to_vec()));
    type0.set("Subtype", Object::Name(b"Type0".to_vec()));
    type0.set("BaseFont", Object::Name(b"ELSUBS+CJK".to_vec()));
    type0.set("Encoding", Object::Name(b"Identity-H".to_vec()));
    type0.set(
        "DescendantFonts",
        Object::Array(vec![Object::Reference(cid_id)]),
    );
    type0.set("ToUnicode", Object::Reference(to_unicode));
    let font_id = doc.add_object(type0);

    let mut stream = Stream::new(Dictionary::new(), content.into_bytes());
    let _ = stream.compress();
    let content_id = doc.add_object(stream);
    let pages_id = doc.new_object_id();
    let mut fonts = Dictionary::new();
    fonts.set("F1", Object::Reference(font_id));
    let mut res = Dictionary::new();
    res.set("Font", fonts);
    let mut page = Dictionary::new();
    page.set("Type", Object::Name(b"Page".to_vec()));
    page.set("Parent", Object::Reference(pages_id));
    page.set(
        "MediaBox",
        Object::Array(vec![0.into(), 0.into(), 595.into(), 842.into()]),
    );
    page.set("Contents", Object::Reference(content_id));
    page.set("Resources", res);
    let page_id = doc.add_object(page);
    let mut pages = Dictionary::new();
    pages.set("Type", Object::Name(b"Pages".to_vec()));
    pages.set("Kids", Object::Array(vec![Object::Reference(page_id)]));
    pages.set("Count", 1);
    doc.objects.insert(pages_id, Object::Dictionary(pages));
    let mut catalog = Dictionary::new();
    catalog.set("Type", Object::Name(b"Catalog".to_vec()));
    catalog.set("Pages", Object::Reference(pages_id));
    let catalog_id = doc.add_object(catalog);
    doc.trailer.set("Root", Object::Reference(catalog_id));
    let mut out = Vec::new();
    doc.save_to(&mut out)
        .map_err(|e| Error::internal(format!("writing the license PDF: {e}")))?;
    Ok(out)
}

/// The QR code of `text` as filled squares, `size` points wide, lower-left at (x, y).
fn qr_path(text: &str, x: f32, y: f32, size: f32) -> Result<String> {
    let code = qrcode::QrCode::with_error_correction_level(
        text.as_bytes(),
        crate::present::qr::level(true),
    )
    .map_err(|e| Error::internal(format!("QR code: {e}")))?;
    let n = code.width();
    let quiet = 4usize;
    let module = size / (n + 2 * quiet) as f32;
    let colors = code.to_colors();
    let mut out = String::from("q 1 g ");
    out.push_str(&format!("{x:.2} {y:.2} {size:.2} {size:.2} re f 0 g\n"));
    for (i, c) in colors.iter().enumerate() {
        if *c == qrcode::Color::Dark {
            let (row, col) = (i / n, i % n);
            let mx = x + (col + quiet) as f32 * module;
            let my = y + size - (row + quiet + 1) as f32 * module;
            out.push_str(&format!("{mx:.3} {my:.3} {module:.3} {module:.3} re\n"));
        }
    }
    out.push_str("f Q\n");
    Ok(out)
}

fn to_unicode_cmap(map: &BTreeMap<u16, char>) -> Vec<u8> {
    let mut s = String::from(
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
         /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
         /CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n\
         1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
    );
    let entries: Vec<(&u16, &char)> = map.iter().collect();
    for chunk in entries.chunks(100) {
        s.push_str(&format!("{} beginbfchar\n", chunk.len()));
        for (gid, ch) in chunk {
            let mut units = [0u16; 2];
            let utf16: String = ch
                .encode_utf16(&mut units)
                .iter()
                .map(|u| format!("{u:04X}"))
                .collect();
            s.push_str(&format!("<{gid:04X}> <{utf16}>\n"));
        }
        s.push_str("endbfchar\n");
    }
    s.push_str("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n");
    s.into_bytes()
}
