//! The verification benchmark: `POST /v1/verifications` over mutual TLS on loopback with many
//! keep-alive connections, next to the raw ES256 verification rate measured in the same run.

use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Raw ES256 verifications per second on `threads` threads (ring).
pub fn raw_verify_rate(threads: usize, dur: Duration) -> f64 {
    use ring::signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    };
    let rng = ring::rand::SystemRandom::new();
    let Ok(pkcs8) = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng) else {
        return 0.0;
    };
    let Ok(key) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
    else {
        return 0.0;
    };
    let msg = vec![0x5au8; 700];
    let Ok(sig) = key.sign(&rng, &msg) else {
        return 0.0;
    };
    let public = ring::signature::UnparsedPublicKey::new(
        &ECDSA_P256_SHA256_FIXED,
        key.public_key().as_ref().to_vec(),
    );
    let start = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0u64;
                    while start.elapsed() < dur {
                        for _ in 0..32 {
                            let _ = public.verify(&msg, sig.as_ref());
                        }
                        n += 32;
                    }
                    n
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    total as f64 / start.elapsed().as_secs_f64()
}

/// Figures of one load run.
#[derive(Debug, Clone)]
pub struct LoadResult {
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Share of requests whose issuer signature the memo had already verified (None: memo off).
    pub memo_hit_rate: Option<f64>,
    /// CPU time of this process per request during the load (the service and the load client
    /// together): steadier than the rate on a machine shared with others.
    pub cpu_us_per_request: f64,
}

/// What the benchmark's HTTPS listener answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serve {
    /// The service's own router: `POST /v1/verifications` as deployed.
    Verification,
    /// The same TLS listener and HTTP stack, the request parsed as the real route parses it,
    /// and a fixed answer of a real answer's size: no client check, lookup, signature check,
    /// audit entry or receipt. What the transport and the load client alone leave of the
    /// machine: the ceiling of the verification figure.
    FixedAnswer,
}

fn pem_der(pem: &str) -> anyhow::Result<Vec<u8>> {
    Ok(x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|_| anyhow::anyhow!("bad PEM"))?
        .1
        .contents)
}

/// Sets up a deployment with `licenses` licenses and a statutory client, serves it over mutual
/// TLS on loopback, and drives it with `connections` keep-alive connections for `dur`, the
/// requests cycling through all the licenses. `memo_entries` sizes the signature memo (0: off).
pub async fn run(
    licenses: u64,
    connections: usize,
    dur: Duration,
    memo_entries: usize,
    serve: Serve,
) -> anyhow::Result<LoadResult> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("v.db").display());
    let (app, file, _) =
        crate::bench::scratch_with(&url, dir.path(), licenses, 3, memo_entries).await?;
    crate::license::import::import_file(&app.licenses, &file, &Default::default(), &mut ())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let f = crate::store::LicenseFilter {
        limit: 100_000,
        ..Default::default()
    };
    let ids: Vec<String> = app
        .store
        .list_licenses(&f, "2026-01-01")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let bundle = crate::verify::clients::register(
        &app,
        crate::verify::clients::NewClient {
            id: "bench-client".into(),
            name: "bench".into(),
            department: "bench".into(),
            types: vec![crate::license::types::RESIDENT_ID_CARD.into()],
            fields: vec!["sex".into(), "birth_date".into()],
            statutory: true,
            days: Some(30),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener = crate::http::bind_tls(&app, "127.0.0.1:0").await?;
    let addr = axum::serve::Listener::local_addr(&listener)?.remote;
    let router = match serve {
        Serve::Verification => crate::http::tls_router(app.clone()),
        Serve::FixedAnswer => {
            // One real answer, serialized once, is the fixed answer.
            let client = crate::verify::clients::Client {
                id: bundle.client.id.clone(),
                name: bundle.client.name.clone(),
                types: bundle.client.types.clone(),
                fields: bundle.client.fields.clone(),
                statutory: bundle.client.statutory,
                cert_serial: bundle.client.certificate_serial.clone(),
            };
            let sample = crate::verify::VerifyRequest {
                matter_code: "bench".into(),
                case_number: "c-0".into(),
                license_id: ids.first().cloned(),
                type_code: None,
                number: None,
                holder_code: None,
                show_code: None,
            };
            let answer = crate::verify::verify(&app, &client, sample)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let body = axum::body::Bytes::from(serde_json::to_vec(&answer)?);
            axum::Router::new().route(
                "/v1/verifications",
                axum::routing::post(
                    move |axum::Json(_): axum::Json<crate::verify::VerifyRequest>| {
                        let body = body.clone();
                        async move {
                            (
                                [(axum::http::header::CONTENT_TYPE, "application/json")],
                                body,
                            )
                        }
                    },
                ),
            )
        }
    }
    .into_make_service_with_connect_info::<crate::http::tls::TlsPeer>();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(pem_der(&bundle.root_certificate)?))?;
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from(pem_der(&bundle.certificate)?)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pem_der(&bundle.private_key)?)),
        )?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let ids = Arc::new(ids);
    let deadline = Instant::now() + dur;
    let started = Instant::now();
    let cpu0 = crate::bench::cpu_seconds();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let connector = connector.clone();
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
                return (lat, 1);
            };
            let _ = tcp.set_nodelay(true);
            let Ok(name) = ServerName::try_from("localhost") else {
                return (lat, 1);
            };
            let Ok(stream) = connector.connect(name, tcp).await else {
                return (lat, 1);
            };
            let mut stream = BufReader::new(stream);
            let mut i = c;
            while Instant::now() < deadline {
                let id = ids.get(i % ids.len().max(1)).cloned().unwrap_or_default();
                i += connections;
                let body = format!(r#"{{"matter_code":"bench","case_number":"c-{i}","license_id":"{id}"}}"#);
                let req = format!(
                    "POST /v1/verifications HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let t0 = Instant::now();
                if stream.get_mut().write_all(req.as_bytes()).await.is_err() {
                    errors += 1;
                    break;
                }
                match read_response(&mut stream).await {
                    Some(200) => lat.push(t0.elapsed()),
                    Some(s) => {
                        errors += 1;
                        tracing::warn!(status = s, "verification failed");
                    }
                    None => {
                        errors += 1;
                        break;
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        all.extend(l);
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = crate::bench::cpu_seconds() - cpu0;
    server.abort();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    let memo = app.signature_memo.stats();
    let looked = memo.hits + memo.misses;
    Ok(LoadResult {
        memo_hit_rate: (looked > 0 && serve == Serve::Verification)
            .then(|| memo.hits as f64 / looked as f64),
        cpu_us_per_request: cpu * 1e6 / (all.len().max(1) as f64),
        requests: all.len() as u64,
        errors,
        seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    })
}

/// Reads one HTTP/1.1 response with a Content-Length body; returns its status.
async fn read_response<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Option<u16> {
    let mut line = String::new();
    r.read_line(&mut line).await.ok()?;
    let status: u16 = line.split(' ').nth(1)?.parse().ok()?;
    let mut len = 0usize;
    loop {
        line.clear();
        r.read_line(&mut line).await.ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.ok()?;
    Some(status)
}
