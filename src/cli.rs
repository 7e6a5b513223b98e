//! The command line. `main.rs` only calls [`main`].

use crate::app::App;
use crate::config::{Config, Overrides};
use crate::error::Error;
use crate::license::Status;
use crate::license::id::LicenseId;
use crate::license::import::{ImportObserver, ImportOptions, ImportSummary, LineError};
use crate::license::types::{HolderKind, TypeDefinition};
use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

/// elicense: electronic licenses, signatures and seals for government data bureaus.
#[derive(Debug, Parser)]
#[command(name = "elicense", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Configuration file (TOML); flags and environment variables override it.
    #[arg(long, global = true, env = "ELICENSE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory: SQLite database, master key file, admin token [default: elicense-data].
    #[arg(long, global = true, env = "ELICENSE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: SQLite in the data directory].
    #[arg(long, global = true, env = "ELICENSE_DATABASE_URL")]
    pub database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API.
    Serve {
        /// Create a demo region (340600) with authorities and licenses if absent, and enable the
        /// development holder sign-in.
        #[arg(long)]
        demo: bool,
        /// Address to listen on (plain HTTP, loopback only: other machines use --tls-listen)
        /// [default: 127.0.0.1:8080].
        #[arg(long, env = "ELICENSE_LISTEN")]
        listen: Option<String>,
        /// Address for HTTPS with mutual TLS, where the verification routes are served
        /// (e.g. 127.0.0.1:8443) [default: off].
        #[arg(long, env = "ELICENSE_TLS_LISTEN")]
        tls_listen: Option<String>,
        /// URL clients reach this service at (written into certificates) [default: http://LISTEN].
        #[arg(long, env = "ELICENSE_PUBLIC_URL")]
        public_url: Option<String>,
    },
    /// Create the region: root CA, key store, and an admin API token.
    Init {
        /// Administrative division code, e.g. 340600.
        #[arg(long)]
        region: String,
        /// Region name.
        #[arg(long)]
        name: String,
        /// URL clients reach this service at (written into certificates).
        #[arg(long, env = "ELICENSE_PUBLIC_URL")]
        public_url: Option<String>,
    },
    /// Issuing authorities.
    #[command(subcommand)]
    Authority(AuthorityCmd),
    /// License types.
    #[command(name = "type", subcommand)]
    Type(TypeCmd),
    /// Licenses: issue, show, list, change status, amend, bulk import.
    #[command(subcommand)]
    License(LicenseCmd),
    /// License identifiers.
    #[command(subcommand)]
    Id(IdCmd),
    /// The region's PKI: root certificate and CRL.
    #[command(subcommand)]
    Pki(PkiCmd),
    /// Case-handling systems that verify licenses over mutual TLS.
    #[command(subcommand)]
    Client(ClientCmd),
    /// Digital seals: create, list, suspend, revoke; seal PDFs (PAdES).
    #[command(subcommand)]
    Seal(SealCmd),
    /// Verification receipts.
    #[command(subcommand)]
    Receipt(ReceiptCmd),
    /// Other regions: trust lists (mutual recognition).
    #[command(subcommand)]
    Region(RegionCmd),
    /// The tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Check a show code offline with a trust list (exit 0 only when authentic and valid).
    Check {
        /// The code (EL1:...), a file containing it, or a PNG image of its QR code.
        code: String,
        /// The trust list (ELT1:...) of the region(s) whose codes to accept; repeatable.
        #[arg(long, required = true)]
        trust: Vec<PathBuf>,
        /// A status list (ELS1:...) fetched from the issuing region, fresher than the code.
        #[arg(long)]
        status: Option<PathBuf>,
    },
    /// Measure issuance and verification throughput against the raw ECDSA rates of this machine.
    Bench(crate::bench::BenchArgs),
}

#[derive(Debug, Subcommand)]
pub enum AuthorityCmd {
    /// Register an authority and issue its seal-signing certificate.
    Add {
        /// Unified social credit code (18 characters).
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: String,
        /// national | provincial | municipal | district
        #[arg(long, default_value = "municipal")]
        level: String,
        /// License type codes it may issue (comma-separated).
        #[arg(long, value_delimiter = ',')]
        types: Vec<String>,
    },
    /// List authorities.
    List,
    /// Revoke an authority's certificate; a new CRL lists it.
    RevokeCert {
        #[arg(long)]
        code: String,
        /// unspecified | keyCompromise | affiliationChanged | superseded | cessationOfOperation
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
    /// Print an authority's certificate (PEM).
    Cert {
        #[arg(long)]
        code: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TypeCmd {
    /// Register a license type from a JSON Schema of its face fields.
    Add {
        /// 21 characters: the defining authority's credit code and 3 digits.
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: String,
        /// JSON Schema file of the face fields.
        #[arg(long)]
        schema: PathBuf,
        /// person | organisation | any
        #[arg(long, default_value = "person")]
        holder_kind: String,
        /// Default validity in years (omit for long-term).
        #[arg(long)]
        validity_years: Option<u16>,
        /// Fields a holder may choose to disclose in a show code (comma-separated).
        #[arg(long, value_delimiter = ',')]
        disclosable: Vec<String>,
        /// Fields every show code discloses (comma-separated; holder_name, holder_code allowed).
        #[arg(long, value_delimiter = ',')]
        disclose_minimum: Vec<String>,
    },
    /// List registered types.
    List,
}

#[derive(Debug, Subcommand)]
pub enum LicenseCmd {
    /// Issue one license from a JSON request (file, or - for standard input).
    Issue {
        /// Request JSON as for POST /v1/licenses.
        json: PathBuf,
    },
    /// Show a license with its signature and history.
    Show { id: String },
    /// Render the license face as a PDF (Chinese text, holder fields, printed-code QR) sealed
    /// with the issuing authority's license seal.
    Pdf {
        id: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// List licenses.
    List {
        #[arg(long = "type")]
        type_code: Option<String>,
        #[arg(long)]
        holder_code: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Change a license's status.
    Status {
        id: String,
        /// valid (reinstate) | suspended | withdrawn | cancelled | revoked
        #[arg(long)]
        set: String,
        #[arg(long)]
        reason: String,
    },
    /// Amend a license (new version) from a JSON amendment (file, or - for standard input).
    Amend { id: String, json: PathBuf },
    /// Make a show code (QR) for a license, e.g. to print on paper.
    ShowCode {
        id: String,
        /// Fields to disclose (comma-separated; the type's defaults when absent).
        #[arg(long, value_delimiter = ',')]
        fields: Vec<String>,
        /// A printed code: lives as long as the license, stronger error correction.
        #[arg(long)]
        printed: bool,
        /// Also write the QR code as PNG.
        #[arg(long)]
        png: Option<PathBuf>,
        /// Also write the QR code as SVG.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// Bulk-import licenses from a JSONL file (resumable, idempotent).
    Import {
        file: PathBuf,
        /// Lines per transaction.
        #[arg(long, default_value_t = crate::license::import::DEFAULT_BATCH)]
        batch: usize,
        /// Write bad lines as JSONL ({line, code, message, details}) to this file.
        #[arg(long)]
        rejects: Option<PathBuf>,
        /// Print a line per committed batch instead of a progress bar.
        #[arg(long)]
        log_commits: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum IdCmd {
    /// Validate a GB/T 36904 identifier and say which part is wrong.
    Check { id: String },
}

#[derive(Debug, Subcommand)]
pub enum PkiCmd {
    /// Print the root CA certificate (PEM).
    Root,
    /// Write the current CRL (DER, or PEM with --pem).
    Crl {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        pem: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SealCmd {
    /// Create a seal: key in the key store, certificate from the region CA, image.
    Add {
        /// Unified social credit code of the owning organisation.
        #[arg(long)]
        owner: String,
        /// official | contract | license | finance
        #[arg(long)]
        kind: String,
        /// The seal's name, e.g. "Hefei Public Security Bureau license seal".
        #[arg(long)]
        name: String,
        /// The owner's organisation name for the certificate (default: the authority's name, or
        /// the seal name).
        #[arg(long)]
        organisation: Option<String>,
        /// Seal image: PNG with transparency (default: a drawn red round seal).
        #[arg(long)]
        image: Option<PathBuf>,
    },
    /// List seals.
    List {
        /// Only this owner's seals.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Suspend a seal: it cannot sign until reinstated.
    Suspend {
        id: String,
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
    /// Reinstate a suspended seal.
    Reinstate {
        id: String,
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
    /// Revoke a seal for good: its certificate lands in the CRL.
    Revoke {
        id: String,
        /// RFC 5280 reason: unspecified, keyCompromise, affiliationChanged, superseded,
        /// cessationOfOperation.
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
    /// Verify every signature of a PDF: integrity, signer and seal, chain, revocation at signing
    /// time, time-stamps, coverage and what changed after each. Exit 0 only when all are valid.
    Verify {
        file: PathBuf,
        /// Trusted root certificates (PEM); with them no database is needed. Without them: this
        /// region's root and the imported regions' roots, and the current CRL.
        #[arg(long)]
        trust: Vec<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Seal a PDF (PAdES, as an incremental update: earlier signatures stay valid).
    Sign {
        #[arg(long)]
        seal: String,
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Page (1-based) of a visible seal.
        #[arg(long)]
        page: Option<usize>,
        /// Lower-left corner and width of a visible seal, in points (1/72 inch).
        #[arg(long)]
        x: Option<f32>,
        #[arg(long)]
        y: Option<f32>,
        #[arg(long, default_value_t = 120.0)]
        width: f32,
        /// Invisible seal (no image on the page).
        #[arg(long, conflicts_with_all = ["page", "x", "y", "cross_page"])]
        invisible: bool,
        /// Cross-page seal (骑缝章) over these pages (comma-separated; "all" for every page).
        #[arg(long, value_name = "PAGES")]
        cross_page: Option<String>,
        /// PAdES level: B-B, B-T, B-LT, B-LTA.
        #[arg(long, default_value = "B-T")]
        level: String,
        /// Certify the document (DocMDP: later form filling and seals allowed), creating this
        /// many empty fields for later seals.
        #[arg(long, value_name = "LATER_SEALS", num_args = 0..=1, default_missing_value = "1")]
        certify: Option<usize>,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        location: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientCmd {
    /// Register a client and write its certificate and key bundle to a directory.
    Add {
        /// Short identifier (lower-case letters, digits, -).
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        department: String,
        /// License types it may verify (comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        types: Vec<String>,
        /// Face fields it may see (comma-separated; * for all).
        #[arg(long, value_delimiter = ',')]
        fields: Vec<String>,
        /// It may see fields without a holder grant (enforcement); labelled in the audit log.
        #[arg(long)]
        statutory: bool,
        /// Certificate validity in days.
        #[arg(long, default_value_t = 365)]
        days: i64,
        /// Directory for ID.crt.pem, ID.key.pem (0600) and root.pem.
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// List clients.
    List,
    /// Revoke a client's certificate: its next request is refused.
    Revoke {
        #[arg(long)]
        id: String,
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RegionCmd {
    /// Write this region's signed trust list (and print its root's SHA-256 to give with it).
    Export {
        #[arg(long)]
        out: PathBuf,
    },
    /// Import another region's trust list; its root must match the SHA-256 agreed out of band.
    Import {
        /// The trust list: a file (ELT1:...), or an https:// (or http://) URL serving it
        /// (/v1/trust-list).
        file: PathBuf,
        /// SHA-256 (hex) of that region's root certificate.
        #[arg(long)]
        root_sha256: String,
        /// The client certificate that region issued us (PEM), for its verification endpoint.
        #[arg(long, requires = "client_key")]
        client_cert: Option<PathBuf>,
        /// Its private key (PKCS#8 PEM); sealed into our key store.
        #[arg(long, requires = "client_cert")]
        client_key: Option<PathBuf>,
    },
    /// List the regions we recognise.
    List,
}

#[derive(Debug, Subcommand)]
pub enum ReceiptCmd {
    /// Verify a receipt offline: its signature and its signer's chain to a trusted root.
    Verify {
        /// A file with the receipt (ELR2:... or ELR1:...) or a whole verification answer (JSON).
        file: PathBuf,
        /// Trusted root certificate (PEM); repeatable. Without it, this deployment's root.
        #[arg(long)]
        root: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Recompute the hash chain and check every signed checkpoint; names the first bad entry.
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create an API token; it is printed once.
    Create {
        #[arg(long)]
        name: String,
    },
}

fn overrides(g: &Global, listen: Option<String>, public_url: Option<String>) -> Overrides {
    Overrides {
        config_file: g.config.clone(),
        data_dir: g.data_dir.clone(),
        database_url: g.database_url.clone(),
        listen,
        public_url,
        tls_listen: None,
    }
}

fn read_input(p: &PathBuf) -> anyhow::Result<String> {
    if p.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        Ok(s)
    } else {
        std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Turns a domain error into a one-line message with its code.
fn coded(e: Error) -> anyhow::Error {
    let details = e.details();
    if details.is_null() {
        anyhow::anyhow!("{}: {e}", e.code())
    } else {
        anyhow::anyhow!(
            "{}: {e}\n{}",
            e.code(),
            serde_json::to_string_pretty(&details).unwrap_or_default()
        )
    }
}

/// Parses arguments, runs the command, and returns the process exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let g = &cli.global;
    match cli.command {
        Command::Serve {
            demo,
            listen,
            tls_listen,
            public_url,
        } => {
            let mut o = overrides(g, listen, public_url);
            o.tls_listen = tls_listen;
            let mut config = Config::load(&o).map_err(coded)?;
            if demo {
                // The demo lets anyone sign in as a holder (development provider).
                config.dev_holder_login = true;
            }
            let listen = config.listen.clone();
            let tls_listen = config.tls_listen.clone();
            // Before the database is opened or the demo written.
            crate::http::check_plain_listen(&listen)
                .await
                .map_err(coded)?;
            let app = App::open(config, true).await.map_err(coded)?;
            if demo {
                crate::demo::ensure(&app).await.map_err(coded)?;
            } else if app.store.region().await.map_err(coded)?.is_none() {
                bail!(
                    "the region is not initialised: run `elicense init --region CODE --name NAME` or `elicense serve --demo`"
                );
            }
            crate::http::serve(app, &listen, tls_listen.as_deref()).await?;
        }
        Command::Init {
            region,
            name,
            public_url,
        } => {
            let config = Config::load(&overrides(g, None, public_url)).map_err(coded)?;
            let app = App::open(config, true).await.map_err(coded)?;
            let r = app.pki.init_region(&region, &name).await.map_err(coded)?;
            let token = write_admin_token(&app).await?;
            println!(
                "region {} ({}) created; root CA serial {}",
                r.code, r.name, r.root_serial
            );
            println!("master key: {}", app.config.master_key_file.display());
            println!(
                "admin API token (shown once, also written to {}): {token}",
                app.config.data_dir.join("admin.token").display()
            );
        }
        Command::Authority(c) => authority(g, c).await?,
        Command::Type(c) => type_cmd(g, c).await?,
        Command::License(c) => return license(g, c).await,
        Command::Id(IdCmd::Check { id }) => match LicenseId::parse(&id) {
            Ok(p) => {
                println!(
                    "valid: type {} issuer {} serial {} version {:03} check {}",
                    p.type_code, p.issuer_code, p.serial, p.version, p.check
                );
                if p.legacy_region_issuer {
                    println!(
                        "note: the issuer part is a legacy 6-digit region code, not a credit code (non-standard)"
                    );
                }
            }
            Err(e) => {
                eprintln!("invalid: {e}");
                return Ok(std::process::ExitCode::from(1));
            }
        },
        Command::Pki(c) => {
            let app = open(g).await?;
            match c {
                PkiCmd::Root => print!(
                    "{}",
                    crate::pki::pem("CERTIFICATE", &app.pki.root().await.map_err(coded)?.der)
                ),
                PkiCmd::Crl { out, pem } => {
                    let crl = app.pki.current_crl().await.map_err(coded)?;
                    let bytes = if pem {
                        crate::pki::pem("X509 CRL", &crl.der).into_bytes()
                    } else {
                        crl.der
                    };
                    std::fs::write(&out, bytes)
                        .with_context(|| format!("writing {}", out.display()))?;
                    println!("CRL number {} written to {}", crl.number, out.display());
                }
            }
        }
        Command::Client(c) => client_cmd(g, c).await?,
        Command::Seal(c) => seal_cmd(g, c).await?,
        Command::Receipt(ReceiptCmd::Verify { file, root }) => {
            let text = read_input(&file)?;
            let receipt = if text.trim_start().starts_with('{') {
                let v: serde_json::Value =
                    serde_json::from_str(&text).context("the file is not JSON")?;
                v.get("receipt")
                    .and_then(|r| r.as_str())
                    .map(String::from)
                    .context("no \"receipt\" in the JSON")?
            } else {
                text
            };
            let roots = if root.is_empty() {
                crate::verify::trust::trusted_roots(&open(g).await?)
                    .await
                    .map_err(coded)?
            } else {
                let mut out = Vec::new();
                for p in &root {
                    let pem =
                        std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
                    let (_, der) = x509_parser::pem::parse_x509_pem(&pem)
                        .map_err(|_| anyhow::anyhow!("{} is not a PEM certificate", p.display()))?;
                    out.push(der.contents);
                }
                out
            };
            match crate::verify::receipt::verify(&receipt, &roots) {
                Ok(c) => {
                    println!("receipt valid; signed by {}", c.signer);
                    print_json(&c.payload)?;
                }
                Err(e) => {
                    eprintln!("receipt INVALID: {}: {e}", e.code());
                    return Ok(std::process::ExitCode::from(1));
                }
            }
        }
        Command::Region(c) => region_cmd(g, c).await?,
        Command::Audit(AuditCmd::Verify) => {
            let app = open(g).await?;
            let r = crate::audit::verify(&app.store, &app.pki)
                .await
                .map_err(coded)?;
            match r.problem {
                None => println!(
                    "audit log intact: {} entries, {} signed checkpoints",
                    r.entries, r.checkpoints
                ),
                Some(p) => {
                    eprintln!("audit log TAMPERED: {p} ({} entries checked)", r.entries);
                    return Ok(std::process::ExitCode::from(1));
                }
            }
        }
        Command::Token(TokenCmd::Create { name }) => {
            let app = open(g).await?;
            println!("{}", app.create_token(&name).await.map_err(coded)?);
        }
        Command::Check {
            code,
            trust,
            status,
        } => {
            let text = if code.trim_start().starts_with(crate::present::PREFIX) {
                code
            } else {
                let bytes = std::fs::read(&code).with_context(|| format!("reading {code}"))?;
                if bytes.starts_with(b"\x89PNG") {
                    crate::present::qr::decode_png(&bytes).map_err(coded)?
                } else {
                    String::from_utf8_lossy(&bytes).trim().to_string()
                }
            };
            let mut lists = Vec::new();
            for t in &trust {
                lists.push(crate::verify::trust::open_self_pinned(&read_input(t)?).map_err(coded)?);
            }
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let mut c =
                crate::present::check(&text, &crate::present::Trust::from_lists(&lists), now);
            if let Some(p) = status {
                let roots: Vec<Vec<u8>> = lists.iter().map(|l| l.root_der.clone()).collect();
                let list =
                    crate::present::status_list::open(&read_input(&p)?, &roots).map_err(coded)?;
                let index = c.status_index;
                crate::present::status_list::apply(&mut c, &list, index, now);
            }
            print_json(&c)?;
            if c.verdict != crate::present::Verdict::Valid {
                return Ok(std::process::ExitCode::from(1));
            }
        }
        Command::Bench(args) => crate::bench::run(g, args).await?,
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Opens an existing deployment (the master key must exist).
async fn open(g: &Global) -> anyhow::Result<App> {
    let config = Config::load(&overrides(g, None, None)).map_err(coded)?;
    App::open(config, false).await.map_err(coded)
}

/// Creates an admin token and writes it to `DATA_DIR/admin.token` (0600).
pub async fn write_admin_token(app: &App) -> anyhow::Result<String> {
    let token = app.create_token("admin").await.map_err(coded)?;
    let path = app.config.data_dir.join("admin.token");
    let _ = std::fs::remove_file(&path);
    crate::pki::keystore::write_private_file(&path, format!("{token}\n").as_bytes())
        .map_err(coded)?;
    Ok(token)
}

async fn authority(g: &Global, c: AuthorityCmd) -> anyhow::Result<()> {
    let app = open(g).await?;
    match c {
        AuthorityCmd::Add {
            code,
            name,
            level,
            types,
        } => {
            let a = app
                .licenses
                .add_authority(&code, &name, &level, &types)
                .await
                .map_err(coded)?;
            println!(
                "authority {} ({}) registered; certificate serial {}",
                a.credit_code, a.name, a.cert_serial
            );
        }
        AuthorityCmd::List => {
            for a in app.store.authorities().await.map_err(coded)? {
                let types = app
                    .store
                    .authority_types(&a.credit_code)
                    .await
                    .map_err(coded)?;
                println!(
                    "{}  {}  {}  cert {}  types {}",
                    a.credit_code,
                    a.level,
                    a.name,
                    a.cert_serial,
                    types.join(",")
                );
            }
        }
        AuthorityCmd::RevokeCert { code, reason } => {
            let a = app
                .store
                .authority(&code)
                .await
                .map_err(coded)?
                .ok_or_else(|| coded(Error::UnknownAuthority { code: code.clone() }))?;
            let crl = app
                .pki
                .revoke(&a.cert_serial, &reason)
                .await
                .map_err(coded)?;
            println!(
                "certificate {} revoked; CRL number {} issued",
                a.cert_serial, crl.number
            );
        }
        AuthorityCmd::Cert { code } => {
            let a = app
                .store
                .authority(&code)
                .await
                .map_err(coded)?
                .ok_or_else(|| coded(Error::UnknownAuthority { code: code.clone() }))?;
            let c = app
                .store
                .certificate(&a.cert_serial)
                .await
                .map_err(coded)?
                .ok_or_else(|| anyhow::anyhow!("certificate missing"))?;
            print!("{}", crate::pki::pem("CERTIFICATE", &c.der));
        }
    }
    Ok(())
}

async fn region_cmd(g: &Global, c: RegionCmd) -> anyhow::Result<()> {
    let app = open(g).await?;
    match c {
        RegionCmd::Export { out } => {
            let tl = crate::verify::trust::export(&app).await.map_err(coded)?;
            std::fs::write(&out, &tl).with_context(|| format!("writing {}", out.display()))?;
            let root = app.pki.root().await.map_err(coded)?;
            println!("trust list written to {}", out.display());
            println!(
                "root SHA-256 (give it to the other region out of band): {}",
                hex::encode(ring::digest::digest(&ring::digest::SHA256, &root.der))
            );
        }
        RegionCmd::Import {
            file,
            root_sha256,
            client_cert,
            client_key,
        } => {
            let arg = file.to_string_lossy().to_string();
            let text = if arg.starts_with("http://") || arg.starts_with("https://") {
                crate::verify::trust::fetch(&arg).await.map_err(coded)?
            } else {
                read_input(&file)?
            };
            let der = |p: &PathBuf| -> anyhow::Result<Vec<u8>> {
                let pem = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
                Ok(x509_parser::pem::parse_x509_pem(&pem)
                    .map_err(|_| anyhow::anyhow!("{} is not PEM", p.display()))?
                    .1
                    .contents)
            };
            let client = match (client_cert, client_key) {
                (Some(c), Some(k)) => Some((der(&c)?, zeroize::Zeroizing::new(der(&k)?))),
                _ => None,
            };
            let tl = crate::verify::trust::import(
                &app,
                &text,
                &root_sha256,
                client.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
            )
            .await
            .map_err(coded)?;
            println!(
                "region {} ({}) imported: {} authorities, endpoint {}",
                tl.code,
                tl.name,
                tl.authorities.len(),
                tl.endpoint.unwrap_or_else(|| "none".into())
            );
        }
        RegionCmd::List => {
            for r in app.store.foreign_regions().await.map_err(coded)? {
                println!(
                    "{}  {}  endpoint {}  client certificate {}",
                    r.code,
                    r.name,
                    r.endpoint.unwrap_or_default(),
                    if r.client_cert.is_some() { "yes" } else { "no" }
                );
            }
        }
    }
    Ok(())
}

async fn client_cmd(g: &Global, c: ClientCmd) -> anyhow::Result<()> {
    use crate::verify::clients;
    let app = open(g).await?;
    match c {
        ClientCmd::Add {
            id,
            name,
            department,
            types,
            fields,
            statutory,
            days,
            out_dir,
        } => {
            let b = clients::register(
                &app,
                clients::NewClient {
                    id: id.clone(),
                    name,
                    department,
                    types,
                    fields,
                    statutory,
                    days: Some(days),
                },
            )
            .await
            .map_err(coded)?;
            std::fs::create_dir_all(&out_dir)
                .with_context(|| format!("creating {}", out_dir.display()))?;
            std::fs::write(out_dir.join(format!("{id}.crt.pem")), &b.certificate)?;
            std::fs::write(out_dir.join("root.pem"), &b.root_certificate)?;
            std::fs::write(out_dir.join("client-ca.pem"), &b.client_ca_certificate)?;
            let key = out_dir.join(format!("{id}.key.pem"));
            let _ = std::fs::remove_file(&key);
            crate::pki::keystore::write_private_file(&key, b.private_key.as_bytes())
                .map_err(coded)?;
            println!(
                "client {id} registered; certificate serial {}; bundle in {}",
                b.client.certificate_serial,
                out_dir.display()
            );
        }
        ClientCmd::List => {
            for c in clients::list(&app).await.map_err(coded)? {
                println!(
                    "{}  {}  {}  types {}  fields {}{}{}",
                    c.id,
                    c.department,
                    c.name,
                    c.types.join(","),
                    c.fields.join(","),
                    if c.statutory { "  statutory" } else { "" },
                    if c.certificate_revoked {
                        "  REVOKED"
                    } else {
                        ""
                    }
                );
            }
        }
        ClientCmd::Revoke { id, reason } => {
            let c = clients::revoke(&app, &id, &reason).await.map_err(coded)?;
            println!(
                "client {} revoked (certificate {})",
                c.id, c.certificate_serial
            );
        }
    }
    Ok(())
}

async fn seal_cmd(g: &Global, c: SealCmd) -> anyhow::Result<()> {
    use crate::seal;
    if let SealCmd::Verify { file, trust, json } = c {
        let trust = if trust.is_empty() {
            seal::trust(&open(g).await?, Vec::new())
                .await
                .map_err(coded)?
        } else {
            let mut roots = Vec::new();
            for p in &trust {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                roots.extend(crate::pki::pem_certificates(&text));
            }
            anyhow::ensure!(!roots.is_empty(), "no certificates in the --trust files");
            seal::verify::Trust {
                roots,
                ..Default::default()
            }
        };
        let src = crate::pdf::FileSource::open(&file).map_err(coded)?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let report = seal::verify::verify_document(&src, &trust, now).map_err(coded)?;
        if json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_seal_report(&file, &report);
        }
        if report.verdict != "valid" {
            std::process::exit(1);
        }
        return Ok(());
    }
    let app = open(g).await?;
    let show = |s: &seal::SealView| {
        println!(
            "{}  {}  {}  {}  {}  certificate {}",
            s.id, s.owner, s.kind, s.status, s.name, s.certificate_serial
        )
    };
    match c {
        SealCmd::Add {
            owner,
            kind,
            name,
            organisation,
            image,
        } => {
            let image = match image {
                Some(p) => {
                    Some(std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?)
                }
                None => None,
            };
            let s = seal::add(
                &app,
                seal::NewSeal {
                    owner,
                    kind,
                    name,
                    organisation,
                    image,
                },
            )
            .await
            .map_err(coded)?;
            show(&s);
        }
        SealCmd::List { owner } => {
            for s in seal::list(&app, owner.as_deref()).await.map_err(coded)? {
                show(&s);
            }
        }
        SealCmd::Suspend { id, reason } => show(
            &seal::set_status(&app, &id, "suspended", &reason)
                .await
                .map_err(coded)?,
        ),
        SealCmd::Reinstate { id, reason } => show(
            &seal::set_status(&app, &id, "active", &reason)
                .await
                .map_err(coded)?,
        ),
        SealCmd::Revoke { id, reason } => show(
            &seal::set_status(&app, &id, "revoked", &reason)
                .await
                .map_err(coded)?,
        ),
        SealCmd::Verify { .. } => {}
        SealCmd::Sign {
            seal: seal_id,
            input,
            out,
            page,
            x,
            y,
            width,
            invisible,
            cross_page,
            level,
            certify,
            reason,
            location,
        } => {
            let level: seal::pades::Level = level.parse().map_err(coded)?;
            let cross_page = cross_page
                .as_deref()
                .map(|spec| seal::CrossPage::parse(spec, y, width))
                .transpose()
                .map_err(coded)?;
            let placement = if invisible || cross_page.is_some() {
                None
            } else {
                Some(seal::pades::Placement {
                    page: page.unwrap_or(1),
                    x: x.unwrap_or(400.0),
                    y: y.unwrap_or(60.0),
                    width,
                })
            };
            let opts = seal::SignOptions {
                level,
                placement,
                cross_page,
                certify,
                reason,
                location,
            };
            let kit = seal::kit(&app, &seal_id, level).await.map_err(coded)?;
            let sealed = seal::seal_file(&app, kit, &input, &out, opts)
                .await
                .map_err(coded)?;
            println!(
                "{} sealed with {} ({}, field {}) into {} ({} bytes)",
                input.display(),
                sealed.seal,
                sealed.level,
                sealed.field,
                out.display(),
                sealed.bytes
            );
        }
    }
    Ok(())
}

fn print_seal_report(file: &std::path::Path, r: &crate::seal::verify::Report) {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} ({} signatures, {} revisions, {} bytes)",
        file.display(),
        r.verdict.to_uppercase(),
        r.signatures.len(),
        r.revisions,
        r.bytes
    );
    for s in &r.signatures {
        let _ = writeln!(
            out,
            "\n{} [{}]: {}",
            s.field,
            s.sub_filter,
            s.verdict.to_uppercase()
        );
        let _ = writeln!(
            out,
            "  integrity:   {}",
            if s.intact {
                "intact (digest and signature verify)"
            } else {
                "BROKEN"
            }
        );
        if let Some(sg) = &s.signer {
            let _ = writeln!(out, "  signer:      {} (serial {})", sg.subject, sg.serial);
        }
        if let Some(seal) = &s.seal {
            let _ = writeln!(out, "  seal:        {seal}");
        }
        let _ = writeln!(
            out,
            "  chain:       {}",
            if s.trusted {
                s.chain.join(" <- ")
            } else {
                "NOT TRUSTED".into()
            }
        );
        let _ = writeln!(out, "  revocation:  {}", s.revocation);
        if let Some(t) = &s.claimed_time {
            let _ = writeln!(out, "  claimed time {t}");
        }
        if let Some(t) = &s.timestamp {
            let _ = writeln!(
                out,
                "  time-stamp:  {} by {} ({}, {})",
                t.time,
                t.authority,
                if t.intact { "intact" } else { "BROKEN" },
                if t.trusted { "trusted" } else { "untrusted" }
            );
        }
        if let Some(p) = s.certification {
            let _ = writeln!(out, "  certified:   DocMDP P={p}");
        }
        let _ = writeln!(
            out,
            "  covers:      {} of {} bytes{}",
            s.covered_bytes,
            r.bytes,
            if s.covers_whole_file {
                " (the whole file)"
            } else {
                ""
            }
        );
        for c in &s.changes_after {
            let _ = writeln!(
                out,
                "  after:       object {} — {} ({})",
                c.object,
                c.what,
                if c.allowed { "allowed" } else { "MODIFICATION" }
            );
        }
        for p in &s.problems {
            let _ = writeln!(out, "  problem:     {p}");
        }
    }
    // A reader that stops early (| head) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes());
}

async fn type_cmd(g: &Global, c: TypeCmd) -> anyhow::Result<()> {
    let app = open(g).await?;
    match c {
        TypeCmd::Add {
            code,
            name,
            schema,
            holder_kind,
            validity_years,
            disclosable,
            disclose_minimum,
        } => {
            let schema: serde_json::Value = serde_json::from_str(&read_input(&schema)?)
                .context("the schema file is not JSON")?;
            let holder_kind = HolderKind::parse(&holder_kind).ok_or_else(|| {
                anyhow::anyhow!("--holder-kind must be person, organisation or any")
            })?;
            let t = app
                .licenses
                .register_type(TypeDefinition {
                    code,
                    name,
                    holder_kind,
                    schema,
                    validity_years,
                    disclosable,
                    disclose_minimum,
                })
                .await
                .map_err(coded)?;
            println!("type {} ({}) registered", t.def.code, t.def.name);
        }
        TypeCmd::List => {
            for t in app.licenses.list_types().await.map_err(coded)? {
                println!("{}  {:<12}  {}", t.code, t.holder_kind.as_str(), t.name);
            }
        }
    }
    Ok(())
}

struct CliObserver {
    bar: Option<indicatif::ProgressBar>,
    rejects: Option<std::io::BufWriter<std::fs::File>>,
    log_commits: bool,
    shown: u64,
}

impl ImportObserver for CliObserver {
    fn started(&mut self, total: u64, resumed_from: u64) {
        if resumed_from > 0 {
            eprintln!("resuming after line {resumed_from} of {total}");
        }
        if !self.log_commits && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} lines  {per_sec}  ETA {eta}  {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_position(resumed_from);
            self.bar = Some(bar);
        }
    }
    fn committed(&mut self, lines_done: u64, s: &ImportSummary) {
        if let Some(b) = &self.bar {
            b.set_position(lines_done);
            b.set_message(format!(
                "issued {} skipped {} failed {}",
                s.issued, s.skipped, s.failed
            ));
        }
        if self.log_commits {
            println!(
                "committed through line {lines_done}: issued {} skipped {} failed {}",
                s.issued, s.skipped, s.failed
            );
            let _ = std::io::stdout().flush();
        }
    }
    fn bad_line(&mut self, e: &LineError) {
        if let Some(w) = &mut self.rejects {
            let _ = serde_json::to_writer(&mut *w, e);
            let _ = w.write_all(b"\n");
        }
        if self.shown < 100 {
            let msg = format!("line {}: {} {}", e.line, e.code, e.message);
            match &self.bar {
                Some(b) => b.println(msg),
                None => eprintln!("{msg}"),
            }
            self.shown += 1;
            if self.shown == 100 {
                eprintln!("(further bad lines are counted; see --rejects for all)");
            }
        }
    }
}

async fn license(g: &Global, c: LicenseCmd) -> anyhow::Result<std::process::ExitCode> {
    let app = open(g).await?;
    let actor = format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "operator".into())
    );
    match c {
        LicenseCmd::Issue { json } => {
            let req = serde_json::from_str(&read_input(&json)?)
                .context("the request is not a valid license request")?;
            let (view, created) = app.licenses.issue(req, &actor).await.map_err(coded)?;
            if !created {
                eprintln!("already issued from the same request; nothing new issued");
            }
            print_json(&view)?;
        }
        LicenseCmd::ShowCode {
            id,
            fields,
            printed,
            png,
            svg,
        } => {
            let (row, _) = app.licenses.find(&id).await.map_err(coded)?;
            let sc = crate::present::issue(
                &app,
                &row.holder_code,
                crate::present::ShowCodeRequest {
                    license_id: id,
                    fields,
                    printed,
                },
            )
            .await
            .map_err(coded)?;
            if let Some(p) = png {
                std::fs::write(
                    &p,
                    crate::present::qr::png(&sc.code, printed, 6).map_err(coded)?,
                )?;
            }
            if let Some(p) = svg {
                std::fs::write(&p, &sc.qr_svg)?;
            }
            println!("{}", sc.code);
        }
        LicenseCmd::Show { id } => print_json(&app.licenses.detail(&id).await.map_err(coded)?)?,
        LicenseCmd::Pdf { id, out } => {
            let pdf = crate::seal::sealed_license_pdf(&app, &id)
                .await
                .map_err(coded)?;
            std::fs::write(&out, &pdf).with_context(|| format!("writing {}", out.display()))?;
            println!(
                "license {id} rendered and sealed into {} ({} bytes)",
                out.display(),
                pdf.len()
            );
        }
        LicenseCmd::List {
            type_code,
            holder_code,
            status,
            limit,
        } => {
            let status = match status {
                Some(s) => Some(
                    Status::parse(&s)
                        .ok_or_else(|| anyhow::anyhow!("unknown status {s}"))?
                        .code()
                        .to_string(),
                ),
                None => None,
            };
            let f = crate::store::LicenseFilter {
                type_code,
                holder_code,
                issuer: None,
                status,
                after: None,
                limit: limit.clamp(1, 10_000),
            };
            for l in app.licenses.list(&f).await.map_err(coded)? {
                println!(
                    "{}  {:<9}  {}  {}",
                    l.id,
                    l.status.name(),
                    l.number,
                    l.holder.name
                );
            }
        }
        LicenseCmd::Status { id, set, reason } => {
            let to = Status::parse(&set).ok_or_else(|| {
                anyhow::anyhow!("--set must be valid, suspended, withdrawn, cancelled or revoked")
            })?;
            let v = app
                .licenses
                .set_status(&id, to, &reason, &actor)
                .await
                .map_err(coded)?;
            println!("{} is now {}", v.id, v.status.name());
        }
        LicenseCmd::Amend { id, json } => {
            let a =
                serde_json::from_str(&read_input(&json)?).context("the amendment is not valid")?;
            let v = app.licenses.amend(&id, a, &actor).await.map_err(coded)?;
            println!("amended: new version {}", v.id);
        }
        LicenseCmd::Import {
            file,
            batch,
            rejects,
            log_commits,
        } => {
            let rejects = match rejects {
                Some(p) => Some(std::io::BufWriter::new(
                    std::fs::File::create(&p)
                        .with_context(|| format!("creating {}", p.display()))?,
                )),
                None => None,
            };
            let mut obs = CliObserver {
                bar: None,
                rejects,
                log_commits,
                shown: 0,
            };
            let opts = ImportOptions {
                batch,
                actor,
                ..Default::default()
            };
            let s = crate::license::import::import_file(&app.licenses, &file, &opts, &mut obs)
                .await
                .map_err(coded)?;
            if let Some(b) = &obs.bar {
                b.finish_and_clear();
            }
            if let Some(w) = &mut obs.rejects {
                w.flush()?;
            }
            if s.already_complete {
                println!(
                    "{} was imported before (sha256 {}): nothing to do",
                    file.display(),
                    s.file_hash
                );
            }
            println!(
                "summary: {} lines, {} issued ({} by this run), {} already issued, {} bad, {:.1} s{}",
                s.lines,
                s.issued,
                s.issued_this_run,
                s.skipped,
                s.failed,
                s.seconds,
                if s.seconds > 0.0 && s.issued_this_run > 0 {
                    format!(", {:.0} licenses/s", s.issued_this_run as f64 / s.seconds)
                } else {
                    String::new()
                }
            );
            if s.failed > 0 {
                return Ok(std::process::ExitCode::from(2));
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
