//! Configuration: a TOML file, environment variables and command-line flags, in rising order of
//! precedence. Unknown keys in the file are rejected so a typo never silently falls back to a
//! default.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The configuration file's keys (all optional).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub listen: Option<String>,
    pub tls_listen: Option<String>,
    pub tls_hostnames: Option<Vec<String>>,
    pub public_tls_url: Option<String>,
    pub public_url: Option<String>,
    pub master_key_file: Option<PathBuf>,
    pub max_body_bytes: Option<usize>,
    pub max_import_bytes: Option<usize>,
    pub dev_holder_login: Option<bool>,
    pub show_code_seconds: Option<i64>,
    pub tsa_url: Option<String>,
    pub max_pdf_bytes: Option<usize>,
    pub pdf_font: Option<PathBuf>,
    pub signature_memo_entries: Option<usize>,
    pub audit_checkpoint_seconds: Option<u64>,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the SQLite database, the master key file and the admin token live.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; SQLite in `data_dir` when absent.
    pub database_url: String,
    pub listen: String,
    /// HTTPS (mutual TLS) listener; the verification routes are served only there.
    pub tls_listen: Option<String>,
    /// Names in the TLS server certificate.
    pub tls_hostnames: Vec<String>,
    /// The HTTPS URL other regions reach our verification endpoint at (in our trust list).
    pub public_tls_url: Option<String>,
    /// The URL clients reach this service at; written into certificates (CRL location).
    pub public_url: String,
    pub master_key_file: PathBuf,
    /// Largest JSON request body.
    pub max_body_bytes: usize,
    /// Largest bulk-import body.
    pub max_import_bytes: usize,
    /// Enables the development holder sign-in (any holder code, no proof): never in production.
    pub dev_holder_login: bool,
    /// How long a phone show code lives (seconds, 30 to 3600).
    pub show_code_seconds: i64,
    /// An external RFC 3161 time-stamp authority (http://...); the built-in one when absent.
    pub tsa_url: Option<String>,
    /// Largest PDF accepted by the sealing and seal-verification endpoints.
    pub max_pdf_bytes: usize,
    /// The CJK font (TTF/OTF/TTC) embedded, as a subset, in license PDFs; found in the usual
    /// system places when absent.
    pub pdf_font: Option<PathBuf>,
    /// How many verified (issuer key, signature, record) triples verification remembers, so a
    /// license checked again skips the ECDSA verification; 0 turns the memo off.
    pub signature_memo_entries: usize,
    /// An audit entry is covered by a signed checkpoint at the latest this many seconds after
    /// it was appended (1 to 3600), besides one every 1,000 entries.
    pub audit_checkpoint_seconds: u64,
}

/// Values given on the command line or in the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub listen: Option<String>,
    pub tls_listen: Option<String>,
    pub public_url: Option<String>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

impl Config {
    pub fn load(o: &Overrides) -> Result<Config> {
        let file = match &o.config_file {
            Some(p) => Self::read_file(p)?,
            None => FileConfig::default(),
        };
        let data_dir = o
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("elicense-data"));
        let database_url = o
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("elicense.db").display()));
        let listen = o
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let public_url = o
            .public_url
            .clone()
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{listen}"));
        Ok(Config {
            public_tls_url: file.public_tls_url.or_else(|| {
                o.tls_listen
                    .clone()
                    .or(file.tls_listen.clone())
                    .map(|l| format!("https://{l}"))
            }),
            tls_listen: o.tls_listen.clone().or(file.tls_listen),
            tls_hostnames: file
                .tls_hostnames
                .unwrap_or_else(|| vec!["localhost".into(), "127.0.0.1".into()]),
            master_key_file: file
                .master_key_file
                .unwrap_or_else(|| data_dir.join("master.key")),
            data_dir,
            database_url,
            listen,
            public_url,
            max_body_bytes: file.max_body_bytes.unwrap_or(1 << 20),
            max_import_bytes: file.max_import_bytes.unwrap_or(256 << 20),
            dev_holder_login: file.dev_holder_login.unwrap_or(false),
            show_code_seconds: file
                .show_code_seconds
                .unwrap_or(crate::present::PHONE_SECONDS)
                .clamp(30, 3600),
            tsa_url: std::env::var("ELICENSE_TSA_URL").ok().or(file.tsa_url),
            max_pdf_bytes: file.max_pdf_bytes.unwrap_or(256 << 20),
            pdf_font: file.pdf_font,
            signature_memo_entries: file
                .signature_memo_entries
                .unwrap_or(crate::verify::memo::DEFAULT_ENTRIES),
            audit_checkpoint_seconds: file
                .audit_checkpoint_seconds
                .unwrap_or(crate::audit::DEFAULT_CHECKPOINT_WITHIN.as_secs())
                .clamp(1, 3600),
        })
    }

    fn read_file(p: &Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(p)
            .map_err(|e| Error::bad_request(format!("config file {}: {e}", p.display())))?;
        toml::from_str(&text)
            .map_err(|e| Error::bad_request(format!("config file {}: {e}", p.display())))
    }

    /// Creates the data directory (mode 0700) if it is missing.
    pub fn ensure_data_dir(&self) -> Result<()> {
        if self.data_dir.exists() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.data_dir).map_err(|e| {
            Error::bad_request(format!("cannot create {}: {e}", self.data_dir.display()))
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ =
                std::fs::set_permissions(&self.data_dir, std::fs::Permissions::from_mode(0o700));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_rejected() {
        let r: std::result::Result<FileConfig, _> =
            toml::from_str("listen = \"x\"\nlisten_addr = 1");
        assert!(r.is_err());
    }

    #[test]
    fn flags_win_over_file_and_defaults_fill_in() {
        let c = Config::load(&Overrides {
            data_dir: Some("/tmp/x".into()),
            ..Default::default()
        })
        .expect("loads");
        assert_eq!(c.database_url, "sqlite:///tmp/x/elicense.db");
        assert_eq!(c.listen, DEFAULT_LISTEN);
        assert_eq!(c.master_key_file, PathBuf::from("/tmp/x/master.key"));
    }
}
