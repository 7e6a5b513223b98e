//! QR images of show codes: SVG for screens, PNG for files and print. Show codes use only the
//! QR alphanumeric alphabet (`EL1:` + Base45), so they encode compactly.

use crate::error::{Error, Result};
use qrcode::{Color, EcLevel, QrCode};

/// Error correction: M for phone screens, Q for print (survives scuffs and folds).
pub fn level(printed: bool) -> EcLevel {
    if printed { EcLevel::Q } else { EcLevel::M }
}

fn code(text: &str, printed: bool) -> Result<QrCode> {
    QrCode::with_error_correction_level(text.as_bytes(), level(printed))
        .map_err(|e| Error::internal(format!("QR: {e}")))
}

/// An SVG image (black modules on white, 4-module quiet zone).
pub fn svg(text: &str, printed: bool) -> Result<String> {
    Ok(code(text, printed)?
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(280, 280)
        .quiet_zone(true)
        .build())
}

/// A grayscale PNG with `scale` pixels per module and a 4-module quiet zone.
pub fn png(text: &str, printed: bool, scale: usize) -> Result<Vec<u8>> {
    let qr = code(text, printed)?;
    let width = qr.width();
    let colors = qr.to_colors();
    let quiet = 4;
    let side = (width + 2 * quiet) * scale;
    let mut pixels = vec![255u8; side * side];
    for (i, c) in colors.iter().enumerate() {
        if *c != Color::Dark {
            continue;
        }
        let (x, y) = (i % width + quiet, i / width + quiet);
        for dy in 0..scale {
            let row = (y * scale + dy) * side;
            for dx in 0..scale {
                if let Some(p) = pixels.get_mut(row + x * scale + dx) {
                    *p = 0;
                }
            }
        }
    }
    let mut out = Vec::new();
    {
        let side32 = u32::try_from(side).map_err(|_| Error::internal("QR too large"))?;
        let mut enc = png::Encoder::new(&mut out, side32, side32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc
            .write_header()
            .map_err(|e| Error::internal(format!("PNG: {e}")))?;
        w.write_image_data(&pixels)
            .map_err(|e| Error::internal(format!("PNG: {e}")))?;
    }
    Ok(out)
}

/// Reads the show code out of a QR image (PNG), for checking a photo or a scan.
pub fn decode_png(bytes: &[u8]) -> Result<String> {
    let bad = |why: String| Error::bad_request(format!("QR image: {why}"));
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| bad(e.to_string()))?;
    let (w, h) = (reader.info().width as usize, reader.info().height as usize);
    if w == 0 || h == 0 || w > 8000 || h > 8000 {
        return Err(bad(format!("{w}x{h} pixels is not a sensible size")));
    }
    let mut buf = vec![
        0u8;
        reader
            .output_buffer_size()
            .ok_or_else(|| bad("too large".into()))?
    ];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| bad(e.to_string()))?;
    let channels = frame.color_type.samples();
    let luma = |x: usize, y: usize| -> u8 {
        let i = (y * w + x) * channels;
        match channels {
            1 | 2 => buf.get(i).copied().unwrap_or(255),
            _ => {
                let px = |k: usize| u32::from(buf.get(i + k).copied().unwrap_or(255));
                ((px(0) * 299 + px(1) * 587 + px(2) * 114) / 1000) as u8
            }
        }
    };
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, luma);
    for grid in img.detect_grids() {
        if let Ok((_, text)) = grid.decode() {
            return Ok(text);
        }
    }
    Err(bad("no QR code found".into()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn png_round_trip() {
        let code = "EL1:6BFOXN*TS0BI$ZD.P9UOL97O4-2HH77HRM3DSPTLRR+%3";
        for printed in [false, true] {
            let png = super::png(code, printed, 4).unwrap();
            assert_eq!(super::decode_png(&png).unwrap(), code);
        }
        assert!(super::decode_png(b"not a png").is_err());
    }
}
