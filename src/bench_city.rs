//! `elicense bench --city`: the whole stock of a city (16.35 million licenses by default) bulk
//! issued into SQLite and then into PostgreSQL, with the issuance rate, the database size, and
//! verification latency by identifier at that size.
//!
//! Not part of the test command: it writes a JSONL file of several GB and takes the better part
//! of an hour. `docs/PERFORMANCE.md` records the figures of the last run.

use crate::license::import::{ImportObserver, ImportOptions, ImportSummary, import_file};
use anyhow::Context;
use std::time::{Duration, Instant};

/// Prints a line every million lines: position, rate, ETA.
struct Ticker {
    started: Instant,
    total: u64,
    next: u64,
}

impl ImportObserver for Ticker {
    fn started(&mut self, total: u64, _resumed_from: u64) {
        self.total = total;
        self.next = 1_000_000;
    }
    fn committed(&mut self, done: u64, s: &ImportSummary) {
        if done >= self.next.min(self.total) && self.next != u64::MAX {
            let secs = self.started.elapsed().as_secs_f64();
            let rate = done as f64 / secs.max(1e-9);
            let eta = (self.total.saturating_sub(done)) as f64 / rate.max(1e-9);
            eprintln!(
                "  {done:>10} / {} lines  {rate:>8.0}/s  ETA {eta:>5.0} s  issued {} failed {}",
                self.total, s.issued, s.failed
            );
            self.next = if done >= self.total {
                u64::MAX
            } else {
                done + 1_000_000
            };
        }
    }
}

/// One backend's figures.
#[derive(Debug, serde::Serialize)]
pub struct CityRun {
    pub backend: String,
    pub licenses: u64,
    pub issued: u64,
    pub failed: u64,
    pub seconds: f64,
    pub rate: f64,
    pub raw_sign_1_thread: f64,
    pub database_bytes: u64,
    pub verify_samples: usize,
    pub verify_p50_ms: f64,
    pub verify_p99_ms: f64,
}

/// Runs the city-scale issuance on `backend` ("sqlite" or a PostgreSQL admin URL for a scratch
/// database) with `n` licenses in `dir`.
pub async fn run_one(
    backend: &str,
    admin_url: Option<&str>,
    dir: &std::path::Path,
    n: u64,
    samples: usize,
) -> anyhow::Result<CityRun> {
    let raw1 = crate::bench::raw_sign_rate(1, Duration::from_secs(2));
    let (url, scratch_db) = match admin_url {
        None => (format!("sqlite://{}", dir.join("city.db").display()), None),
        Some(admin) => {
            let db = format!("elicense_city_{}", std::process::id());
            (
                crate::bench::create_scratch_db(admin, &db).await?,
                Some((admin.to_string(), db)),
            )
        }
    };
    eprintln!("{backend}: writing {n} synthetic license requests ...");
    let (app, file, _) = crate::bench::scratch(&url, dir, n, 16_350_000).await?;
    eprintln!("{backend}: importing ...");
    let t0 = Instant::now();
    let mut ticker = Ticker {
        started: t0,
        total: n,
        next: 1_000_000,
    };
    let s = import_file(&app.licenses, &file, &ImportOptions::default(), &mut ticker)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let seconds = t0.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&file);
    let database_bytes = app
        .store
        .database_bytes()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    // Verification by identifier, one at a time, through the same code path as
    // `POST /v1/verifications` (lookup, issuer signature, status, audit append, receipt).
    let bundle = crate::verify::clients::register(
        &app,
        crate::verify::clients::NewClient {
            id: "city-client".into(),
            name: "city".into(),
            department: "bench".into(),
            types: vec![crate::license::types::RESIDENT_ID_CARD.into()],
            fields: vec!["sex".into()],
            statutory: true,
            days: Some(30),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let client = crate::verify::clients::Client {
        id: bundle.client.id.clone(),
        name: bundle.client.name.clone(),
        types: bundle.client.types.clone(),
        fields: bundle.client.fields.clone(),
        statutory: true,
        cert_serial: bundle.client.certificate_serial.clone(),
    };
    let ids = app
        .store
        .sample_license_ids(samples as i64)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut lat = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let t = Instant::now();
        let v = crate::verify::verify(
            &app,
            &client,
            crate::verify::VerifyRequest {
                matter_code: "city".into(),
                case_number: format!("c-{i}"),
                license_id: Some(id.clone()),
                type_code: None,
                number: None,
                holder_code: None,
                show_code: None,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        lat.push(t.elapsed());
        anyhow::ensure!(v.authentic, "license {id} did not verify");
    }
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    let run = CityRun {
        backend: backend.to_string(),
        licenses: n,
        issued: s.issued,
        failed: s.failed,
        seconds,
        rate: s.issued as f64 / seconds,
        raw_sign_1_thread: raw1,
        database_bytes,
        verify_samples: lat.len(),
        verify_p50_ms: pct(0.50),
        verify_p99_ms: pct(0.99),
    };
    app.store.close().await;
    if let Some((admin, db)) = scratch_db {
        crate::bench::drop_scratch_db(&admin, &db).await;
    }
    Ok(run)
}

/// `bench --city`: SQLite, then PostgreSQL unless `postgres` is `none`.
pub async fn run(
    n: u64,
    postgres: &str,
    dir: Option<&std::path::Path>,
    json: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let tmp;
    let dir = match dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.to_path_buf()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let mut runs = Vec::new();
    let sqlite_dir = dir.join("sqlite");
    std::fs::create_dir_all(&sqlite_dir)?;
    runs.push(run_one("sqlite", None, &sqlite_dir, n, 10_000).await?);
    let _ = std::fs::remove_dir_all(&sqlite_dir);
    if postgres != "none" {
        let pg_dir = dir.join("postgres");
        std::fs::create_dir_all(&pg_dir)?;
        runs.push(run_one("postgres", Some(postgres), &pg_dir, n, 10_000).await?);
        let _ = std::fs::remove_dir_all(&pg_dir);
    }
    println!(
        "{:<9} {:>11} {:>11} {:>9} {:>10} {:>10} {:>10} {:>9} {:>9}",
        "backend",
        "licenses",
        "issued",
        "seconds",
        "rate/s",
        "raw sign",
        "db GB",
        "p50 ms",
        "p99 ms"
    );
    for r in &runs {
        println!(
            "{:<9} {:>11} {:>11} {:>9.0} {:>10.0} {:>10.0} {:>10.2} {:>9.2} {:>9.2}",
            r.backend,
            r.licenses,
            r.issued,
            r.seconds,
            r.rate,
            r.raw_sign_1_thread,
            r.database_bytes as f64 / 1e9,
            r.verify_p50_ms,
            r.verify_p99_ms
        );
    }
    if let Some(p) = json {
        std::fs::write(p, serde_json::to_string_pretty(&runs)?)?;
    }
    Ok(())
}
