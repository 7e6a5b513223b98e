//! PDF sealing figures for `elicense bench`, next to pyHanko's on the same inputs in the same run
//! (benches/pyhanko_bench.py, run in the Python venv when it has pyHanko).

use crate::bench::Figure;
use crate::seal::{self, SignOptions, pades::Level};
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PYHANKO_SCRIPT: &str = include_str!("../benches/pyhanko_bench.py");

fn status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A one-page PDF with a line of text.
pub fn small_pdf() -> Vec<u8> {
    let text = "BT /F1 24 Tf 72 760 Td (elicense benchmark document) Tj ET";
    let objs = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_string(),
        format!("<< /Length {} >>\nstream\n{text}\nendstream", text.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    let mut out = b"%PDF-1.7\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objs.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// Writes a scan-like PDF of about `mb` megabytes (pages of incompressible image data) without
/// holding it in memory.
pub fn write_big_pdf(path: &Path, mb: usize) -> anyhow::Result<()> {
    let pages = mb.div_ceil(10).max(1);
    let per_page = mb * 1024 * 1024 / pages;
    let side = ((per_page / 3) as f64).sqrt() as usize;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut at = 0usize;
    let mut offsets = std::collections::BTreeMap::new();
    let put = |f: &mut std::io::BufWriter<std::fs::File>,
               at: &mut usize,
               b: &[u8]|
     -> std::io::Result<()> {
        f.write_all(b)?;
        *at += b.len();
        Ok(())
    };
    put(&mut f, &mut at, b"%PDF-1.7\n")?;
    let kids: Vec<String> = (0..pages).map(|p| format!("{} 0 R", 3 + 3 * p)).collect();
    offsets.insert(1, at);
    put(
        &mut f,
        &mut at,
        b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n",
    )?;
    offsets.insert(2, at);
    put(
        &mut f,
        &mut at,
        format!(
            "2 0 obj\n<< /Type /Pages /Kids [{}] /Count {pages} >>\nendobj\n",
            kids.join(" ")
        )
        .as_bytes(),
    )?;
    let rng = ring::rand::SystemRandom::new();
    let mut chunk = vec![0u8; 1 << 20];
    for p in 0..pages {
        let (page, content, image) = (3 + 3 * p, 4 + 3 * p, 5 + 3 * p);
        let draw = "q 500 0 0 700 47 70 cm /Im Do Q";
        offsets.insert(page, at);
        put(&mut f, &mut at, format!(
            "{page} 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents {content} 0 R /Resources << /XObject << /Im {image} 0 R >> >> >>\nendobj\n"
        ).as_bytes())?;
        offsets.insert(content, at);
        put(
            &mut f,
            &mut at,
            format!(
                "{content} 0 obj\n<< /Length {} >>\nstream\n{draw}\nendstream\nendobj\n",
                draw.len()
            )
            .as_bytes(),
        )?;
        offsets.insert(image, at);
        let len = side * side * 3;
        put(&mut f, &mut at, format!(
            "{image} 0 obj\n<< /Type /XObject /Subtype /Image /Width {side} /Height {side} /ColorSpace /DeviceRGB /BitsPerComponent 8 /Length {len} >>\nstream\n"
        ).as_bytes())?;
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len());
            let part = chunk.get_mut(..n).unwrap_or_default();
            ring::rand::SecureRandom::fill(&rng, part).map_err(|_| anyhow::anyhow!("random"))?;
            put(&mut f, &mut at, part)?;
            left -= n;
        }
        put(&mut f, &mut at, b"\nendstream\nendobj\n")?;
    }
    let xref = at;
    let size = 3 + 3 * pages;
    put(
        &mut f,
        &mut at,
        format!("xref\n0 {size}\n0000000000 65535 f \n").as_bytes(),
    )?;
    for o in offsets.values() {
        put(&mut f, &mut at, format!("{o:010} 00000 n \n").as_bytes())?;
    }
    put(
        &mut f,
        &mut at,
        format!("trailer\n<< /Size {size} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n").as_bytes(),
    )?;
    f.flush()?;
    Ok(())
}

fn rate(dur: Duration, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur || n < 3 {
        f()?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Throwaway keys and self-signed certificates for pyHanko (generated per run).
fn pyhanko_keys(dir: &Path) -> anyhow::Result<[PathBuf; 4]> {
    let mut out = Vec::new();
    for (name, tsa) in [("signer", false), ("tsa", true)] {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("bench {name}"));
        if tsa {
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::TimeStamping];
        }
        let cert = params.self_signed(&key)?;
        let kp = dir.join(format!("{name}.key.pem"));
        let cp = dir.join(format!("{name}.crt.pem"));
        crate::pki::keystore::write_private_file(&kp, key.serialize_pem().as_bytes())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        std::fs::write(&cp, cert.pem())?;
        out.push(kp);
        out.push(cp);
    }
    let [a, b, c, d]: [PathBuf; 4] = out
        .try_into()
        .map_err(|_| anyhow::anyhow!("four key files"))?;
    Ok([a, b, c, d])
}

#[derive(serde::Deserialize, Debug)]
struct PyHanko {
    bb_per_s: f64,
    bt_per_s: f64,
    verify_per_s: f64,
    big_seconds: f64,
    big_peak_mb: f64,
}

/// The sealing figures: ours and pyHanko's, same inputs, same run.
pub async fn figures(quick: bool, big_mb: usize) -> anyhow::Result<Vec<Figure>> {
    let dir = tempfile::tempdir()?;
    let dur = Duration::from_millis(if quick { 1000 } else { 3000 });
    let (app, _, authority) = crate::bench::scratch(
        &format!("sqlite://{}", dir.path().join("seal.db").display()),
        dir.path(),
        0,
        1,
    )
    .await?;
    let sealv = seal::add(
        &app,
        seal::NewSeal {
            owner: authority,
            kind: "official".into(),
            name: "bench seal".into(),
            organisation: None,
            image: None,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let kit_bb = seal::kit(&app, &sealv.id, Level::BB)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let kit_bt = seal::kit(&app, &sealv.id, Level::BT)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let opts = |level| SignOptions {
        level,
        placement: None,
        cross_page: None,
        certify: None,
        reason: None,
        location: None,
    };
    let small = small_pdf();
    let small_path = dir.path().join("small.pdf");
    std::fs::write(&small_path, &small)?;
    let big = dir.path().join("big.pdf");
    write_big_pdf(&big, big_mb)?;
    let big_len = std::fs::metadata(&big)?.len();

    // Ours: the big file first, peak memory measured against the process as it is now.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = status_kb("VmRSS:");
    let t0 = Instant::now();
    {
        let src = crate::pdf::FileSource::open(&big).map_err(|e| anyhow::anyhow!("{e}"))?;
        let (tail, _) = seal::seal_document(&src, &kit_bb, &opts(Level::BB))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut out = std::fs::File::create(dir.path().join("big-sealed.pdf"))?;
        std::io::copy(&mut std::fs::File::open(&big)?, &mut out)?;
        out.write_all(&tail)?;
    }
    let ours_big = t0.elapsed().as_secs_f64();
    let ours_peak_mb = status_kb("VmHWM:").saturating_sub(rss_before) as f64 / 1024.0;
    // The floor: reading and hashing the file once.
    let t0 = Instant::now();
    {
        let src = crate::pdf::FileSource::open(&big).map_err(|e| anyhow::anyhow!("{e}"))?;
        let pdf = crate::pdf::Pdf::open(&src).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        pdf.stream_range(0, big_len, |b| ctx.update(b))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let _ = ctx.finish();
    }
    let sha_floor = t0.elapsed().as_secs_f64();

    let bb = rate(dur, || {
        seal::seal_document(&small, &kit_bb, &opts(Level::BB))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    })?;
    let bt = rate(dur, || {
        seal::seal_document(&small, &kit_bt, &opts(Level::BT))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    })?;
    let (tail, _) = seal::seal_document(&small, &kit_bb, &opts(Level::BB))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut signed = small.clone();
    signed.extend_from_slice(&tail);
    let trust = seal::verify::Trust {
        roots: vec![
            app.pki
                .root()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .der,
        ],
        ..Default::default()
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let verify = rate(dur, || {
        let r = seal::verify::verify_document(&signed, &trust, now)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::ensure!(
            r.verdict == "valid",
            "our own seal did not verify: {}",
            r.verdict
        );
        Ok(())
    })?;

    // pyHanko, same inputs.
    let venv = std::env::var("ELICENSE_VENV").unwrap_or_else(|_| "/var/cache/elicense-venv".into());
    let python = Path::new(&venv).join("bin/python");
    let py: Option<PyHanko> = if python.exists() {
        let keys = pyhanko_keys(dir.path())?;
        let script = dir.path().join("pyhanko_bench.py");
        std::fs::write(&script, PYHANKO_SCRIPT)?;
        let out = std::process::Command::new(&python)
            .arg(&script)
            .args(keys.iter())
            .arg(&small_path)
            .arg(&big)
            .arg(dir.path().join("big-pyhanko.pdf"))
            .arg(format!("{}", dur.as_secs_f64()))
            .output()
            .context("running pyHanko")?;
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            text.lines()
                .last()
                .and_then(|l| serde_json::from_str(l).ok())
        } else {
            eprintln!(
                "pyHanko benchmark failed: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or_default()
            );
            None
        }
    } else {
        None
    };
    let vs = |ours: f64, theirs: Option<f64>, unit: &str| -> (Option<String>, Option<f64>) {
        match theirs {
            Some(t) => (Some(format!("pyHanko {t:.1} {unit}")), Some(ours / t)),
            None => (Some("pyHanko not available (ELICENSE_VENV)".into()), None),
        }
    };
    let mut figs = Vec::new();
    let (b, r) = vs(bb, py.as_ref().map(|p| p.bb_per_s), "/s");
    figs.push(Figure {
        name: "PDF seal B-B, 1 page, 1 thread".into(),
        value: bb,
        unit: "seals/s".into(),
        baseline: b,
        ratio: r,
        note: "invisible; target ratio >= 20".into(),
    });
    let (b, r) = vs(bt, py.as_ref().map(|p| p.bt_per_s), "/s");
    figs.push(Figure {
        name: "PDF seal B-T, 1 page, 1 thread".into(),
        value: bt,
        unit: "seals/s".into(),
        baseline: b,
        ratio: r,
        note: "in-process TSA on both sides; target ratio >= 20".into(),
    });
    let (b, r) = vs(verify, py.as_ref().map(|p| p.verify_per_s), "/s");
    figs.push(Figure {
        name: "PDF seal verification, 1 thread".into(),
        value: verify,
        unit: "verify/s".into(),
        baseline: b,
        ratio: r,
        note: "parse + digest + CMS + chain + change analysis".into(),
    });
    figs.push(Figure {
        name: format!("seal a {} MB PDF (B-B, file to file)", big_len / 1_000_000),
        value: ours_big * 1000.0,
        unit: "ms".into(),
        baseline: Some(match &py {
            Some(p) => format!(
                "pyHanko {:.0} ms, +{:.0} MB; SHA-256 of the file {:.0} ms",
                p.big_seconds * 1000.0,
                p.big_peak_mb,
                sha_floor * 1000.0
            ),
            None => format!("SHA-256 of the file {:.0} ms", sha_floor * 1000.0),
        }),
        ratio: py.as_ref().map(|p| p.big_seconds / ours_big.max(1e-6)),
        note: format!(
            "peak memory +{ours_peak_mb:.1} MB over the process before (target < 64); ratio = pyHanko time / ours"
        ),
    });
    Ok(figs)
}
