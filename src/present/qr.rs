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
