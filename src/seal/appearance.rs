//! Seal images: PNG in, PDF image XObject (+ soft mask for the transparency) and appearance
//! streams out; and the red round seal the demo draws for a newcomer.

use crate::error::{Error, Result};
use crate::pdf::write::Update;
use lopdf::{Dictionary, Object, ObjectId, Stream};
use std::io::Write;

/// The largest seal image we accept (pixels per side).
const MAX_SIDE: u32 = 2048;

/// A decoded seal image, ready to embed.
#[derive(Clone)]
pub struct Appearance {
    width: u32,
    height: u32,
    /// Zlib-compressed RGB samples.
    rgb: Vec<u8>,
    /// Zlib-compressed alpha samples (the soft mask).
    alpha: Vec<u8>,
}

fn zlib(data: &[u8]) -> Result<Vec<u8>> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data)
        .and_then(|_| e.finish())
        .map_err(|e| Error::internal(format!("compressing an image: {e}")))
}

fn name(s: &str) -> Object {
    Object::Name(s.as_bytes().to_vec())
}

impl Appearance {
    /// Decodes a PNG (any colour type; transparency kept as a soft mask).
    pub fn from_png(png_bytes: &[u8]) -> Result<Self> {
        let bad =
            |e: String| Error::bad_request(format!("the seal image is not a usable PNG: {e}"));
        let mut dec = png::Decoder::new(std::io::Cursor::new(png_bytes));
        dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = dec.read_info().map_err(|e| bad(e.to_string()))?;
        let (w, h) = {
            let info = reader.info();
            (info.width, info.height)
        };
        if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
            return Err(bad(format!("{w}x{h} pixels (at most {MAX_SIDE} per side)")));
        }
        let size = reader
            .output_buffer_size()
            .ok_or_else(|| bad("image too large".into()))?;
        let mut buf = vec![0u8; size];
        let frame = reader
            .next_frame(&mut buf)
            .map_err(|e| bad(e.to_string()))?;
        let px = (w * h) as usize;
        let mut rgb = Vec::with_capacity(px * 3);
        let mut alpha = Vec::with_capacity(px);
        let data = buf.get(..frame.buffer_size()).unwrap_or_default();
        match frame.color_type {
            png::ColorType::Rgba => {
                for p in data.chunks_exact(4) {
                    rgb.extend_from_slice(p.get(..3).unwrap_or_default());
                    alpha.push(p.get(3).copied().unwrap_or(255));
                }
            }
            png::ColorType::Rgb => {
                rgb.extend_from_slice(data);
                alpha.resize(px, 255);
            }
            png::ColorType::GrayscaleAlpha => {
                for p in data.chunks_exact(2) {
                    let g = p.first().copied().unwrap_or(0);
                    rgb.extend_from_slice(&[g, g, g]);
                    alpha.push(p.get(1).copied().unwrap_or(255));
                }
            }
            png::ColorType::Grayscale => {
                for &g in data {
                    rgb.extend_from_slice(&[g, g, g]);
                }
                alpha.resize(px, 255);
            }
            png::ColorType::Indexed => return Err(bad("palette not expanded".into())),
        }
        if rgb.len() != px * 3 || alpha.len() != px {
            return Err(bad("unexpected sample count".into()));
        }
        Ok(Appearance {
            width: w,
            height: h,
            rgb: zlib(&rgb)?,
            alpha: zlib(&alpha)?,
        })
    }

    /// Height over width.
    pub fn aspect(&self) -> f32 {
        self.height as f32 / self.width as f32
    }

    /// Adds the image XObject (with its soft mask) and returns its id.
    pub fn write_image(&self, update: &mut Update) -> ObjectId {
        let mut m = Dictionary::new();
        m.set("Type", name("XObject"));
        m.set("Subtype", name("Image"));
        m.set("Width", i64::from(self.width));
        m.set("Height", i64::from(self.height));
        m.set("ColorSpace", name("DeviceGray"));
        m.set("BitsPerComponent", 8);
        m.set("Filter", name("FlateDecode"));
        let mask = update.add(Stream::new(m, self.alpha.clone()).with_compression(false));
        let mut d = Dictionary::new();
        d.set("Type", name("XObject"));
        d.set("Subtype", name("Image"));
        d.set("Width", i64::from(self.width));
        d.set("Height", i64::from(self.height));
        d.set("ColorSpace", name("DeviceRGB"));
        d.set("BitsPerComponent", 8);
        d.set("Filter", name("FlateDecode"));
        d.set("SMask", Object::Reference(mask));
        update.add(Stream::new(d, self.rgb.clone()).with_compression(false))
    }

    /// A form XObject showing the whole image in a `w` x `h` box; returns the form's id.
    pub fn write(&self, update: &mut Update, w: f32, h: f32) -> Result<ObjectId> {
        let image = self.write_image(update);
        Ok(form(
            update,
            [0.0, 0.0, w, h],
            image,
            format!("q {w:.3} 0 0 {h:.3} 0 0 cm /Seal Do Q"),
        ))
    }

    /// A form XObject showing slice `i` of `n` vertical slices of the image, for a cross-page
    /// seal: the image drawn `n` slices wide and shifted so that only slice `i` is in the box.
    pub fn write_slice(
        image: ObjectId,
        update: &mut Update,
        i: usize,
        n: usize,
        slice_w: f32,
        h: f32,
    ) -> ObjectId {
        let full = slice_w * n as f32;
        let dx = -(slice_w * i as f32);
        form(
            update,
            [0.0, 0.0, slice_w, h],
            image,
            format!(
                "q 0 0 {slice_w:.3} {h:.3} re W n {full:.3} 0 0 {h:.3} {dx:.3} 0 cm /Seal Do Q"
            ),
        )
    }

    /// An empty appearance (invisible signatures).
    pub fn empty(update: &mut Update) -> ObjectId {
        let mut d = Dictionary::new();
        d.set("Type", name("XObject"));
        d.set("Subtype", name("Form"));
        d.set(
            "BBox",
            Object::Array(vec![0.into(), 0.into(), 0.into(), 0.into()]),
        );
        update.add(Stream::new(d, Vec::new()).with_compression(false))
    }
}

fn form(update: &mut Update, bbox: [f32; 4], image: ObjectId, content: String) -> ObjectId {
    let mut xo = Dictionary::new();
    xo.set("Seal", Object::Reference(image));
    let mut res = Dictionary::new();
    res.set("XObject", xo);
    let mut d = Dictionary::new();
    d.set("Type", name("XObject"));
    d.set("Subtype", name("Form"));
    d.set(
        "BBox",
        Object::Array(bbox.iter().map(|v| Object::Real(*v)).collect()),
    );
    d.set("Resources", res);
    update.add(Stream::new(d, content.into_bytes()).with_compression(false))
}

/// Draws a red round seal (ring, five-pointed star, inner ring) as a transparent PNG, so a
/// newcomer has a seal image without designing one.
pub fn demo_seal_png(size: u32) -> Result<Vec<u8>> {
    let size = size.clamp(64, 1024);
    let c = size as f32 / 2.0;
    let r_out = c * 0.96;
    let ring = c * 0.09;
    let r_in = c * 0.72;
    let thin = c * 0.025;
    let star_r = c * 0.38;
    // Star polygon (5 outer, 5 inner points), pointing up.
    let mut star = Vec::new();
    for k in 0..10 {
        let r = if k % 2 == 0 { star_r } else { star_r * 0.382 };
        let a = std::f32::consts::PI / 2.0 + k as f32 * std::f32::consts::PI / 5.0;
        star.push((c + r * a.cos(), c - r * a.sin()));
    }
    let inside = |x: f32, y: f32| -> bool {
        let mut hit = false;
        let mut j = star.len() - 1;
        for i in 0..star.len() {
            let (xi, yi) = star.get(i).copied().unwrap_or_default();
            let (xj, yj) = star.get(j).copied().unwrap_or_default();
            if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
                hit = !hit;
            }
            j = i;
        }
        hit
    };
    let mut px = Vec::with_capacity((size * size * 4) as usize);
    for y in 0..size {
        for x in 0..size {
            // 4x supersampling for smooth edges.
            let mut cover = 0u32;
            for sy in 0..2 {
                for sx in 0..2 {
                    let fx = x as f32 + 0.25 + 0.5 * sx as f32;
                    let fy = y as f32 + 0.25 + 0.5 * sy as f32;
                    let d = ((fx - c).powi(2) + (fy - c).powi(2)).sqrt();
                    let on = (d <= r_out && d >= r_out - ring)
                        || (d <= r_in && d >= r_in - thin)
                        || inside(fx, fy);
                    cover += u32::from(on);
                }
            }
            let a = (cover * 255 / 4) as u8;
            px.extend_from_slice(&[0xd4, 0x1e, 0x1e, (f32::from(a) * 0.92) as u8]);
        }
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, size, size);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc
            .write_header()
            .map_err(|e| Error::internal(format!("seal image: {e}")))?;
        w.write_image_data(&px)
            .map_err(|e| Error::internal(format!("seal image: {e}")))?;
    }
    Ok(out)
}
