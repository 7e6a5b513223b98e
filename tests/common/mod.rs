//! Test harness: a fresh deployment per test on SQLite or PostgreSQL, driven in process.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use elicense::app::App;
use elicense::clock::FixedClock;
use elicense::config::{Config, Overrides};
use http_body_util::BodyExt;
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

/// 2026-06-01T00:00:00Z: the tests' "now".
pub const T0: i64 = 1_780_272_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server for tests, from ELICENSE_TEST_POSTGRES (an admin URL).
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("ELICENSE_TEST_POSTGRES") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var("ELICENSE_REQUIRE_POSTGRES").is_err(),
                "ELICENSE_REQUIRE_POSTGRES is set but ELICENSE_TEST_POSTGRES is not"
            );
            None
        }
    }
}

/// A scratch PostgreSQL database, dropped with the value.
pub struct PgScratch {
    pub admin: String,
    pub name: String,
    pub url: String,
}

impl PgScratch {
    pub async fn create(admin: &str) -> PgScratch {
        use sqlx::Connection;
        let name = format!("elt_{}", hex::encode(rand_bytes()));
        let mut c = sqlx::PgConnection::connect(admin)
            .await
            .expect("connect to PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .expect("create db");
        let base = admin.rsplit_once('/').unwrap().0;
        PgScratch {
            admin: admin.to_string(),
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for PgScratch {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Best effort, on a thread of its own (we may be inside a runtime).
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut c)
                        .await;
                }
            });
        })
        .join();
    }
}

fn rand_bytes() -> [u8; 6] {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 6];
    ring::rand::SystemRandom::new().fill(&mut b).unwrap();
    b
}

pub struct Env {
    pub app: App,
    pub router: Router,
    pub token: String,
    pub clock: FixedClock,
    pub dir: tempfile::TempDir,
    pub database_url: String,
    pub pg: Option<PgScratch>,
    pub tls_port: Option<u16>,
}

impl Env {
    /// A fresh deployment with the demo region and authorities (no licenses); `None` when the
    /// backend is PostgreSQL and no server is configured.
    pub async fn new(backend: Backend) -> Option<Env> {
        let auths = elicense::demo::authorities()
            .into_iter()
            .map(|(c, n, t)| (c, n.to_string(), t))
            .collect();
        Self::with_region(backend, "340600", auths, None).await
    }

    /// A deployment for a region with its own authorities; `tls_port` fixes the port its HTTPS
    /// listener will use (named in its trust list).
    pub async fn with_region(
        backend: Backend,
        region: &str,
        authorities: Vec<(String, String, Vec<String>)>,
        tls_port: Option<u16>,
    ) -> Option<Env> {
        let dir = tempfile::tempdir().unwrap();
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(PgScratch::create(&postgres_admin_url()?).await),
        };
        let database_url = match &pg {
            Some(p) => p.url.clone(),
            None => format!("sqlite://{}", dir.path().join("t.db").display()),
        };
        let mut config = Config::load(&Overrides {
            data_dir: Some(dir.path().to_path_buf()),
            database_url: Some(database_url.clone()),
            ..Default::default()
        })
        .unwrap();
        config.dev_holder_login = true;
        config.public_tls_url = tls_port.map(|p| format!("https://localhost:{p}"));
        let clock = FixedClock::at(T0);
        let app = App::open_with_clock(config, true, Arc::new(clock.clone()))
            .await
            .unwrap();
        app.pki
            .init_region(region, &format!("测试市 {region}"))
            .await
            .unwrap();
        for (code, name, types) in &authorities {
            app.licenses
                .add_authority(code, name, "municipal", types)
                .await
                .unwrap();
        }
        let token = app.create_token("tester").await.unwrap();
        let router = elicense::http::router(app.clone());
        Some(Env {
            app,
            router,
            token,
            clock,
            dir,
            database_url,
            pg,
            tls_port,
        })
    }

    pub async fn raw(&self, req: Request<Body>) -> (StatusCode, Vec<u8>) {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, body)
    }

    /// Calls the API with the test token; the body (if any) is JSON.
    pub async fn call(&self, method: &str, uri: &str, body: Option<&Value>) -> (StatusCode, Value) {
        self.call_as(&self.token, method, uri, body).await
    }

    /// Calls the API with a given bearer token.
    pub async fn call_as(
        &self,
        token: &str,
        method: &str,
        uri: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"));
        let body = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let (status, bytes) = self.raw(b.body(body).unwrap()).await;
        let v = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, v)
    }

    pub fn authority(&self, i: usize) -> String {
        elicense::demo::authorities()[i].0.clone()
    }

    /// A valid request for a built-in type (authority 0 issues ID cards).
    pub fn id_card_request(&self, seq: u64) -> Value {
        let mut rng = elicense::demo::Rng::new(seq + 11);
        elicense::demo::request(
            &mut rng,
            elicense::license::types::RESIDENT_ID_CARD,
            &self.authority(0),
            seq,
        )
    }

    pub async fn issue(&self, seq: u64) -> Value {
        let (s, v) = self
            .call("POST", "/v1/licenses", Some(&self.id_card_request(seq)))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }
}

/// Runs an async test body against both backends.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(env) = $crate::common::Env::new($crate::common::Backend::Sqlite).await {
                        super::$name(env).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    match $crate::common::Env::new($crate::common::Backend::Postgres).await {
                        Some(env) => super::$name(env).await,
                        None => eprintln!("skipped: ELICENSE_TEST_POSTGRES is not set"),
                    }
                }
            )*
        }
    };
}

fn pem_der(pem: &str) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .unwrap()
        .1
        .contents
}

/// A running HTTPS (mutual TLS) server for a test environment.
pub struct TlsServer {
    pub addr: std::net::SocketAddr,
    pub root_pem: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Env {
    pub async fn start_tls(&self) -> TlsServer {
        use axum::serve::Listener;
        let addr = format!("127.0.0.1:{}", self.tls_port.unwrap_or(0));
        let listener = elicense::http::bind_tls(&self.app, &addr).await.unwrap();
        let addr = listener.local_addr().unwrap().remote;
        let app = elicense::http::tls_router(self.app.clone())
            .into_make_service_with_connect_info::<elicense::http::tls::TlsPeer>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let root_pem = elicense::pki::pem("CERTIFICATE", &self.app.pki.root().await.unwrap().der);
        TlsServer {
            addr,
            root_pem,
            task,
        }
    }
}

/// A client identity: certificate and PKCS#8 key, PEM.
#[derive(Clone)]
pub struct Identity {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TlsServer {
    /// One HTTP/1.1 request over TLS (verifying the server against the region root, presenting
    /// `id` when given). Returns the status and the JSON body.
    pub async fn call(
        &self,
        id: Option<&Identity>,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.call_raw(id, method, path, "application/json", body.as_bytes())
            .await
    }

    /// [`TlsServer::call`] with any content type and body bytes (malformed-request tests).
    pub async fn call_raw(
        &self,
        id: Option<&Identity>,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> (u16, Value) {
        use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(pem_der(&self.root_pem)))
            .unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match id {
            Some(i) => {
                let key = x509_parser::pem::parse_x509_pem(i.key_pem.as_bytes())
                    .unwrap()
                    .1
                    .contents;
                builder
                    .with_client_auth_cert(
                        vec![CertificateDer::from(pem_der(&i.cert_pem))],
                        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
                    )
                    .unwrap()
            }
            None => builder.with_no_client_auth(),
        };
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let mut tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        tls.write_all(head.as_bytes()).await.unwrap();
        // The server may answer (413) and close before it has read a large body.
        let _ = tls.write_all(body).await;
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out).await;
        let text = String::from_utf8_lossy(&out).to_string();
        let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
        let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
        (
            status,
            serde_json::from_str(body).unwrap_or(Value::String(body.into())),
        )
    }
}

impl Env {
    /// Signs `holder_code` in through the development provider; returns the session token.
    pub async fn holder_token(&self, holder_code: &str) -> String {
        let (s, session) = self
            .call(
                "POST",
                "/v1/holder/sessions",
                Some(&serde_json::json!({"holder_code": holder_code})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{session}");
        session["token"].as_str().unwrap().to_string()
    }

    /// Runs SQL directly on the database, behind the service's back (tamper tests).
    pub async fn exec(&self, sql: &str) {
        match &self.app.store {
            elicense::store::Store::Sqlite(p, _) => {
                sqlx::query(sql).execute(p).await.unwrap();
            }
            elicense::store::Store::Postgres(p) => {
                sqlx::query(sql).execute(p).await.unwrap();
            }
        }
    }
}
