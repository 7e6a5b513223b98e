//! `elicense bench`: issuance and verification throughput next to the raw ECDSA rates measured
//! in the same run.
//!
//! Every figure is printed beside its baseline from the same process, because this machine is
//! shared and noisy: ratios hold when absolute speeds drift.

use crate::app::App;
use crate::clock::SystemClock;
use crate::config::{Config, Overrides};
use crate::license::import::{ImportOptions, import_file};
use anyhow::Context;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Benchmark options.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Fewer licenses, for a quick look (10,000 instead of 100,000).
    #[arg(long)]
    pub quick: bool,
    /// Licenses to issue per backend.
    #[arg(long)]
    pub licenses: Option<u64>,
    /// PostgreSQL server to benchmark on (a scratch database is created and dropped);
    /// `none` to skip PostgreSQL.
    #[arg(
        long,
        env = "ELICENSE_BENCH_POSTGRES",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub postgres: String,
    /// Skip the issuance figures (run only the verification benchmark).
    #[arg(long, conflicts_with = "issuance_only")]
    pub verify_only: bool,
    /// Run only the issuance figures (bulk and single, SQLite and PostgreSQL).
    #[arg(long, conflicts_with = "seals_only")]
    pub issuance_only: bool,
    /// Seconds of verification load (default 20; 5 with --quick).
    #[arg(long)]
    pub verify_seconds: Option<u64>,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Run only the PDF sealing figures (ours and pyHanko's).
    #[arg(long)]
    pub seals_only: bool,
    /// Size of the big PDF for the sealing figures, in MB (default 100; 16 with --quick).
    #[arg(long)]
    pub big_mb: Option<usize>,
    /// City-scale run instead of the table: bulk-issue `--licenses` (default 16,350,000) into
    /// SQLite and then PostgreSQL; report rate, database size and verification latency.
    #[arg(long)]
    pub city: bool,
    /// Working directory for `--city` (needs several GB; default a temporary directory).
    #[arg(long)]
    pub city_dir: Option<std::path::PathBuf>,
}

/// One row of the result table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: String,
    pub baseline: Option<String>,
    pub ratio: Option<f64>,
    pub note: String,
}

/// Process CPU seconds (user + system), from /proc/self/stat (clock ticks of 1/100 s).
pub(crate) fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds of every running process whose command name is `comm` (e.g. the PostgreSQL
/// server's backends), so a benchmark can count the database server's cores too: their own
/// time and that of their children that have exited (the postmaster collects its backends',
/// autovacuum workers' and the like when they end, so none that came and went is missed).
fn cpu_seconds_of(comm: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut total = 0.0;
    for e in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if head.rsplit_once('(').map(|x| x.1) != Some(comm) {
            continue;
        }
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        total += (ticks(11) + ticks(12) + ticks(13) + ticks(14)) / 100.0;
    }
    total
}

/// Raw ES256 signatures per second over a record-sized message on `threads` threads.
pub fn raw_sign_rate(threads: usize, dur: Duration) -> f64 {
    let rng = SystemRandom::new();
    let Ok(pkcs8) = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng) else {
        return 0.0;
    };
    let Ok(key) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
    else {
        return 0.0;
    };
    let msg = vec![0x5au8; 700];
    let start = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0u64;
                    while start.elapsed() < dur {
                        for _ in 0..64 {
                            let _ = key.sign(&rng, &msg);
                        }
                        n += 64;
                    }
                    n
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    total as f64 / start.elapsed().as_secs_f64()
}

/// SHA-256 bytes per second on one thread (ring, 1 MiB blocks).
pub fn sha256_rate(dur: Duration) -> f64 {
    let block = vec![0xa5u8; 1 << 20];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for _ in 0..8 {
            ctx.update(&block);
        }
        std::hint::black_box(ctx.finish());
        n += 8;
    }
    (n << 20) as f64 / start.elapsed().as_secs_f64()
}

/// A scratch deployment for benchmarks: region 340600 with one authority in `dir` on the
/// database at `url`, and a JSONL file of `n` synthetic ID-card requests (seeded by `seed`).
pub(crate) async fn scratch(
    url: &str,
    dir: &std::path::Path,
    n: u64,
    seed: u64,
) -> anyhow::Result<(App, std::path::PathBuf, String)> {
    scratch_with(url, dir, n, seed, crate::verify::memo::DEFAULT_ENTRIES).await
}

/// [`scratch`] with a signature memo of `memo_entries` (0: off).
pub(crate) async fn scratch_with(
    url: &str,
    dir: &std::path::Path,
    n: u64,
    seed: u64,
    memo_entries: usize,
) -> anyhow::Result<(App, std::path::PathBuf, String)> {
    let mut config = Config::load(&Overrides {
        data_dir: Some(dir.to_path_buf()),
        database_url: Some(url.to_string()),
        ..Default::default()
    })?;
    config.signature_memo_entries = memo_entries;
    let app = App::open_with_clock(config, true, Arc::new(SystemClock))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    app.pki
        .init_region("340600", "Bench")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let auths = crate::demo::authorities();
    let (code, name, types) = auths.first().context("authorities")?;
    app.licenses
        .add_authority(code, name, "municipal", types)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let file = dir.join("bench.jsonl");
    {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file)?);
        let mut rng = crate::demo::Rng::new(seed);
        for i in 0..n {
            let r = crate::demo::request(
                &mut rng,
                crate::license::types::RESIDENT_ID_CARD,
                code,
                i + 1,
            );
            writeln!(w, "{r}")?;
        }
        w.flush()?;
    }
    Ok((app, file, code.clone()))
}

/// Offline show-code checks per second on one thread (one code, checked repeatedly).
async fn show_code_rate(dur: Duration) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("codes.db").display());
    let (app, file, _) = scratch(&url, dir.path(), 1, 11).await?;
    import_file(&app.licenses, &file, &ImportOptions::default(), &mut ())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let f = crate::store::LicenseFilter {
        limit: 1,
        ..Default::default()
    };
    let row = app
        .store
        .list_licenses(&f, "2026-01-01")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .pop()
        .context("a license")?;
    let code = crate::present::issue(
        &app,
        &row.holder_code,
        crate::present::ShowCodeRequest {
            license_id: row.id,
            fields: vec!["sex".into()],
            printed: false,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?
    .code;
    let trust = crate::present::deployment_trust(&app)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = app.clock.unix();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        for _ in 0..32 {
            let c = crate::present::check(&code, &trust, now);
            anyhow::ensure!(
                c.verdict == crate::present::Verdict::Valid,
                "benchmark code did not verify"
            );
        }
        n += 32;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// What one backend's issuance run measured.
struct IssuanceRun {
    /// Bulk licenses per second.
    rate: f64,
    /// CPU cores used during the bulk import: this process plus, on PostgreSQL, the server.
    cores: f64,
    /// Of those, the PostgreSQL server's (0 on SQLite).
    server_cores: f64,
    /// Single issues (one transaction each) per second.
    single_rate: f64,
}

/// Issues `n` synthetic licenses through the bulk path into a fresh database at `url`, then
/// some single ones through the API path.
async fn issuance(url: &str, dir: &std::path::Path, n: u64) -> anyhow::Result<IssuanceRun> {
    let (app, file, code) = scratch(url, dir, n, 7).await?;
    let code = &code;
    let server = |url: &str| {
        if url.starts_with("postgres") {
            cpu_seconds_of("postgres")
        } else {
            0.0
        }
    };
    let (cpu0, srv0) = (cpu_seconds(), server(url));
    let t0 = Instant::now();
    let s = import_file(&app.licenses, &file, &ImportOptions::default(), &mut ())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let wall = t0.elapsed().as_secs_f64();
    // Cores used: this process plus, on PostgreSQL, the database server's processes.
    let server_cores = (server(url) - srv0) / wall;
    let cores = (cpu_seconds() - cpu0) / wall + server_cores;
    anyhow::ensure!(s.issued == n, "issued {} of {n}", s.issued);
    // Single requests, one transaction each: the API path.
    let singles = (n / 20).clamp(100, 2000);
    let mut rng = crate::demo::Rng::new(99);
    let t1 = Instant::now();
    for i in 0..singles {
        let r = crate::demo::request(
            &mut rng,
            crate::license::types::RESIDENT_ID_CARD,
            code,
            n + 1 + i,
        );
        let req = serde_json::from_value(r)?;
        app.licenses
            .issue(req, "bench")
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let single_rate = singles as f64 / t1.elapsed().as_secs_f64();
    app.store.close().await;
    Ok(IssuanceRun {
        rate: n as f64 / wall,
        cores,
        server_cores,
        single_rate,
    })
}

pub async fn run(_g: &crate::cli::Global, args: BenchArgs) -> anyhow::Result<()> {
    if args.city {
        return crate::bench_city::run(
            args.licenses.unwrap_or(16_350_000),
            &args.postgres,
            args.city_dir.as_deref(),
            args.json.as_deref(),
        )
        .await;
    }
    let n = args
        .licenses
        .unwrap_or(if args.quick { 10_000 } else { 100_000 });
    let cores = std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(1);
    let dur = Duration::from_millis(if args.quick { 700 } else { 2000 });
    println!("elicense bench: {n} licenses per backend, {cores} cores");
    let raw1 = raw_sign_rate(1, dur);
    let raw_all = raw_sign_rate(cores, dur);
    let mut figs = vec![
        Figure {
            name: "raw ES256 sign, 1 thread".into(),
            value: raw1,
            unit: "sig/s".into(),
            baseline: None,
            ratio: None,
            note: "ring, 700-byte message".into(),
        },
        Figure {
            name: format!("raw ES256 sign, {cores} threads"),
            value: raw_all,
            unit: "sig/s".into(),
            baseline: None,
            ratio: None,
            note: String::new(),
        },
    ];
    let sha = sha256_rate(dur);
    figs.push(Figure {
        name: "raw SHA-256, 1 thread".into(),
        value: sha / 1e6,
        unit: "MB/s".into(),
        baseline: None,
        ratio: None,
        note: "ring, 1 MiB blocks: the floor of PDF sealing and import hashing".into(),
    });
    let big_mb = args.big_mb.unwrap_or(if args.quick { 16 } else { 100 });
    if args.seals_only {
        figs.extend(crate::bench_seal::figures(args.quick, big_mb).await?);
        print_table(&figs);
        if let Some(p) = args.json {
            std::fs::write(&p, serde_json::to_string_pretty(&figs)?)?;
        }
        return Ok(());
    }
    let mut backends = vec![("sqlite".to_string(), None)];
    if args.verify_only {
        backends.clear();
    }
    if args.postgres != "none" && !args.verify_only {
        backends.push(("postgres".to_string(), Some(args.postgres.clone())));
    }
    for (backend, admin_url) in backends {
        let dir = tempfile::tempdir()?;
        let (url, scratch) = match &admin_url {
            None => (
                format!("sqlite://{}", dir.path().join("bench.db").display()),
                None,
            ),
            Some(admin) => {
                let db = format!("elicense_bench_{}", std::process::id());
                let url = create_scratch_db(admin, &db).await?;
                (url, Some((admin.clone(), db)))
            }
        };
        // The machine's speed drifts: the baseline is measured just before and just after the
        // run, and the ratio uses their mean.
        let before = raw_sign_rate(1, dur);
        let result = issuance(&url, dir.path(), n).await;
        let after = raw_sign_rate(1, dur);
        let base = (before + after) / 2.0;
        if let Some((admin, db)) = scratch {
            drop_scratch_db(&admin, &db).await;
        }
        let run = result.with_context(|| format!("{backend} issuance"))?;
        let (rate, used) = (run.rate, run.cores);
        let per_core = rate / used.max(0.01);
        // On PostgreSQL, also the rate per core of this process alone (the server excluded).
        let server = if admin_url.is_some() {
            let own = rate / (used - run.server_cores).max(0.01);
            format!(
                " ({:.2} of them the PostgreSQL server; {own:.0}/s per core of elicense alone, ratio {:.2})",
                run.server_cores,
                own / base
            )
        } else {
            String::new()
        };
        figs.push(Figure {
            name: format!("bulk issuance, {backend}"),
            value: rate,
            unit: "licenses/s".into(),
            baseline: Some(format!(
                "raw sign 1 thread {base:.0}/s (before {before:.0}, after {after:.0}) x {used:.2} cores used"
            )),
            ratio: Some(per_core / base),
            note: format!("{per_core:.0}/s per core used{server}; target ratio >= 0.50"),
        });
        figs.push(Figure {
            name: format!("single issuance (1 tx each), {backend}"),
            value: run.single_rate,
            unit: "licenses/s".into(),
            baseline: Some(format!("raw sign 1 thread {base:.0}/s")),
            ratio: Some(run.single_rate / base),
            note: "API path: validate, check duplicate, reserve serial, sign, commit".into(),
        });
    }
    if args.issuance_only {
        print_table(&figs);
        if let Some(p) = args.json {
            std::fs::write(&p, serde_json::to_string_pretty(&figs)?)?;
        }
        return Ok(());
    }
    // Offline show-code checks on one core, against the raw single-thread verification rate.
    let rawv1_for_codes = crate::bench_verify::raw_verify_rate(1, dur);
    let checks = show_code_rate(dur).await?;
    figs.push(Figure {
        name: "offline show-code checks, 1 thread".into(),
        value: checks,
        unit: "checks/s".into(),
        baseline: Some(format!("raw verify 1 thread {rawv1_for_codes:.0}/s")),
        ratio: Some(checks / rawv1_for_codes),
        note: "Base45 + zlib + COSE + ES256 + claims; target ratio >= 0.70".into(),
    });
    // Verification over mutual TLS, 64 connections, against the raw verification rate.
    let vdur = Duration::from_secs(
        args.verify_seconds
            .unwrap_or(if args.quick { 5 } else { 20 }),
    );
    let rawv1 = crate::bench_verify::raw_verify_rate(1, dur);
    // As for issuance: the all-core baseline is the mean of a run just before and just after.
    let rawv_before = crate::bench_verify::raw_verify_rate(cores, dur);
    let memo = crate::verify::memo::DEFAULT_ENTRIES;
    use crate::bench_verify::Serve;
    let cold = crate::bench_verify::run(2000, 64, vdur, 0, Serve::Verification).await?;
    let warm = crate::bench_verify::run(2000, 64, vdur, memo, Serve::Verification).await?;
    let floor = crate::bench_verify::run(2000, 64, vdur, memo, Serve::FixedAnswer).await?;
    // A run with failed requests measures the failures: no figure from it.
    for (what, load) in [
        ("memo off", &cold),
        ("memo warm", &warm),
        ("fixed answer", &floor),
    ] {
        anyhow::ensure!(
            load.errors == 0 && load.requests > 0,
            "verification load ({what}): {} failed and {} answered requests; no figures",
            load.errors,
            load.requests
        );
    }
    let rawv_after = crate::bench_verify::raw_verify_rate(cores, dur);
    let rawv = (rawv_before + rawv_after) / 2.0;
    figs.push(Figure {
        name: "raw ES256 verify, 1 thread".into(),
        value: rawv1,
        unit: "verify/s".into(),
        baseline: None,
        ratio: None,
        note: String::new(),
    });
    figs.push(Figure {
        name: format!("raw ES256 verify, {cores} threads"),
        value: rawv,
        unit: "verify/s".into(),
        baseline: None,
        ratio: None,
        note: String::new(),
    });
    for (name, load, serve) in [
        (
            "verifications over mTLS, 64 conns, sqlite",
            &warm,
            Serve::Verification,
        ),
        ("  same, signature memo off", &cold, Serve::Verification),
        (
            "  same transport, fixed answer (ceiling)",
            &floor,
            Serve::FixedAnswer,
        ),
    ] {
        let rps = load.requests as f64 / load.seconds;
        let targets = if serve == Serve::Verification {
            "; targets: ratio >= 0.50, p99 < 10 ms"
        } else {
            ""
        };
        let memo_note = match (serve, load.memo_hit_rate) {
            (Serve::FixedAnswer, _) => "TLS, HTTP, request parsing and the load client only: no client check, lookup, ECDSA, audit or receipt".into(),
            (_, Some(h)) => format!("memo hit rate {:.1}%", h * 100.0),
            (_, None) => "every request verifies its ECDSA signature".into(),
        };
        figs.push(Figure {
            name: name.into(),
            value: rps,
            unit: "req/s".into(),
            baseline: Some(format!(
                "raw verify {cores} threads {rawv:.0}/s (before {rawv_before:.0}, after {rawv_after:.0})"
            )),
            ratio: Some(rps / rawv),
            note: format!(
                "p50 {:.2} ms, p99 {:.2} ms, {} errors, {memo_note}, {:.0} us CPU per request (service and load client){targets}",
                load.p50_ms, load.p99_ms, load.errors, load.cpu_us_per_request
            ),
        });
    }
    if !args.verify_only {
        figs.extend(crate::bench_seal::figures(args.quick, big_mb).await?);
    }
    print_table(&figs);
    if let Some(p) = args.json {
        std::fs::write(&p, serde_json::to_string_pretty(&figs)?)?;
    }
    Ok(())
}

fn print_table(figs: &[Figure]) {
    println!(
        "{:<42} {:>12} {:<12} {:>7}  baseline / note",
        "figure", "value", "unit", "ratio"
    );
    for f in figs {
        println!(
            "{:<42} {:>12.0} {:<12} {:>7}  {}{}{}",
            f.name,
            f.value,
            f.unit,
            f.ratio.map(|r| format!("{r:.2}")).unwrap_or_default(),
            f.baseline.clone().unwrap_or_default(),
            if f.baseline.is_some() && !f.note.is_empty() {
                "; "
            } else {
                ""
            },
            f.note
        );
    }
}

pub(crate) async fn create_scratch_db(admin_url: &str, db: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(admin_url)
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db}"))
        .execute(&mut c)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut c)
        .await?;
    let base = admin_url.rsplit_once('/').map(|x| x.0).unwrap_or(admin_url);
    Ok(format!("{base}/{db}"))
}

pub(crate) async fn drop_scratch_db(admin_url: &str, db: &str) {
    use sqlx::Connection;
    if let Ok(mut c) = sqlx::PgConnection::connect(admin_url).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .execute(&mut c)
            .await;
    }
}
