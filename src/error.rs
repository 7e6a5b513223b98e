//! Domain errors with stable codes.
//!
//! Every error a client can see carries a code such as `LIC-0004` that never changes meaning once
//! released; `docs/API.md` lists them. The HTTP layer maps [`Error::kind`] to a status code; domain
//! modules never know about HTTP.

use serde_json::Value;

/// What went wrong, as the HTTP layer and the CLI need to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The request is malformed or its content is invalid (400/422).
    Invalid,
    /// The named thing does not exist (404).
    NotFound,
    /// The thing exists already or the change conflicts with its state (409).
    Conflict,
    /// Missing or bad credentials (401).
    Unauthenticated,
    /// Authenticated but not allowed (403).
    Forbidden,
    /// The route exists but not with this method (405).
    MethodNotAllowed,
    /// A dependency (the database) is unavailable; the caller may retry (503).
    Unavailable,
    /// A bug or an unexpected state; details are logged, not returned (500).
    Internal,
}

/// A field-level problem: the JSON pointer of the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON pointer into the submitted document, e.g. `/fields/birth_date`.
    pub path: String,
    /// What is wrong, in words.
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The one error type of the domain. Each variant has a stable code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the license identifier is invalid: {reason}")]
    InvalidIdentifier { reason: String },
    #[error("the license fields are invalid")]
    InvalidFields { errors: Vec<FieldError> },
    #[error("license type {code} is not registered")]
    UnknownType { code: String },
    #[error("authority {code} is not registered")]
    UnknownAuthority { code: String },
    #[error("license {id} not found")]
    LicenseNotFound { id: String },
    #[error("license number {number} of type {type_code} is already issued as {id}")]
    DuplicateLicense {
        type_code: String,
        number: String,
        id: String,
    },
    #[error("status change from {from} to {to} is not allowed")]
    IllegalTransition { from: String, to: String },
    #[error("authority {authority} may not issue licenses of type {type_code}")]
    TypeNotAllowed {
        authority: String,
        type_code: String,
    },
    #[error("{what} already exists")]
    AlreadyExists { what: String },
    #[error("the license type definition is invalid: {reason}")]
    InvalidType { reason: String },
    #[error("the request is invalid: {reason}")]
    BadRequest { reason: String },
    #[error("the request body is larger than this endpoint accepts")]
    BodyTooLarge,
    #[error("a client certificate is required (mutual TLS)")]
    ClientCertMissing,
    #[error("the client certificate is not trusted: {reason}")]
    ClientCertUntrusted { reason: String },
    #[error("the client certificate {serial} is expired or not yet valid")]
    ClientCertExpired { serial: String },
    #[error("the client certificate {serial} is revoked")]
    ClientCertRevoked { serial: String },
    #[error("no registered client for {id}")]
    UnknownClient { id: String },
    #[error("client {client} may not verify licenses of type {type_code}")]
    OutOfScope { client: String, type_code: String },
    #[error("the development holder sign-in is disabled on this deployment")]
    DevLoginDisabled,
    #[error("grant {id} not found")]
    GrantNotFound { id: String },
    #[error("the receipt is not valid: {reason}")]
    BadReceipt { reason: String },
    #[error("not a show code: {reason}")]
    ShowCodeMalformed { reason: String },
    #[error("the show code is not authentic: {reason}")]
    ShowCodeNotAuthentic { reason: String },
    #[error("the show code has expired; ask the holder for a fresh one")]
    ShowCodeExpired,
    #[error("the trust list is not valid: {reason}")]
    BadTrustList { reason: String },
    #[error("the region {region} that issued this license cannot be reached: {reason}")]
    ForeignRegion { region: String, reason: String },
    #[error("the PDF cannot be read: {reason}")]
    BadPdf { reason: String },
    #[error("encrypted PDFs cannot be sealed or verified")]
    EncryptedPdf,
    #[error("the PDF exceeds a limit: {reason}")]
    PdfLimit { reason: String },
    #[error("the document is certified with no changes allowed; it cannot be sealed again")]
    DocumentLocked,
    #[error("no font with Chinese glyphs was found; install fonts-noto-cjk or set pdf_font")]
    NoCjkFont,
    #[error("seal {id} not found")]
    SealNotFound { id: String },
    #[error("seal {id} is {status} and cannot sign")]
    SealInactive { id: String, status: String },
    #[error("the time-stamp request is invalid: {reason}")]
    BadTimestampRequest { reason: String },
    #[error("the time-stamp authority failed: {reason}")]
    TimestampUnavailable { reason: String },
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("authentication required: {reason}")]
    Unauthenticated { reason: String },
    #[error("the authority's signing certificate is revoked or expired")]
    AuthorityCertUnusable { authority: String },
    #[error("the region is not initialised; run `elicense init` first")]
    NotInitialised,
    #[error("the key store cannot be opened: {reason}")]
    KeyStore { reason: String },
    /// The SQLite audit log file is missing, or not the one the database was written with.
    #[error("the audit log file {path} cannot be used: {reason}")]
    AuditFile { path: String, reason: String },
    #[error("the database is unavailable")]
    DatabaseUnavailable(#[source] sqlx::Error),
    /// The database went away under a shared operation (the audit writer's group commit):
    /// every request of the group gets this, with the cause as text.
    #[error("the database is unavailable: {reason}")]
    DatabaseUnavailableFor { reason: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The stable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidIdentifier { .. } => "LIC-0001",
            Error::InvalidFields { .. } => "LIC-0002",
            Error::UnknownType { .. } => "LIC-0003",
            Error::LicenseNotFound { .. } => "LIC-0004",
            Error::DuplicateLicense { .. } => "LIC-0005",
            Error::IllegalTransition { .. } => "LIC-0006",
            Error::TypeNotAllowed { .. } => "LIC-0007",
            Error::InvalidType { .. } => "TYP-0001",
            Error::UnknownAuthority { .. } => "AUT-0001",
            Error::AuthorityCertUnusable { .. } => "AUT-0002",
            Error::AlreadyExists { .. } => "GEN-0409",
            Error::BadRequest { .. } => "REQ-0001",
            Error::BodyTooLarge => "REQ-0002",
            Error::Unauthenticated { .. } => "AUTH-0001",
            Error::RouteNotFound => "REQ-0404",
            Error::ClientCertMissing => "MTLS-0001",
            Error::ClientCertUntrusted { .. } => "MTLS-0002",
            Error::ClientCertExpired { .. } => "MTLS-0003",
            Error::ClientCertRevoked { .. } => "MTLS-0004",
            Error::UnknownClient { .. } => "MTLS-0005",
            Error::OutOfScope { .. } => "VER-0001",
            Error::DevLoginDisabled => "HOL-0001",
            Error::BadReceipt { .. } => "RCP-0001",
            Error::BadTrustList { .. } => "TRL-0001",
            Error::ShowCodeMalformed { .. } => "SHW-0001",
            Error::ShowCodeNotAuthentic { .. } => "SHW-0002",
            Error::ShowCodeExpired => "SHW-0003",
            Error::ForeignRegion { .. } => "TRL-0002",
            Error::GrantNotFound { .. } => "HOL-0002",
            Error::MethodNotAllowed => "REQ-0405",
            Error::BadPdf { .. } => "PDF-0001",
            Error::EncryptedPdf => "PDF-0002",
            Error::PdfLimit { .. } => "PDF-0003",
            Error::DocumentLocked => "PDF-0004",
            Error::NoCjkFont => "PDF-0005",
            Error::SealNotFound { .. } => "SEAL-0001",
            Error::SealInactive { .. } => "SEAL-0002",
            Error::BadTimestampRequest { .. } => "TSA-0001",
            Error::TimestampUnavailable { .. } => "TSA-0002",
            Error::NotInitialised => "SYS-0001",
            Error::KeyStore { .. } => "SYS-0002",
            Error::AuditFile { .. } => "SYS-0003",
            Error::DatabaseUnavailable(_) | Error::DatabaseUnavailableFor { .. } => "SYS-0503",
            Error::Internal(_) => "SYS-0500",
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Error::InvalidIdentifier { .. }
            | Error::InvalidFields { .. }
            | Error::UnknownType { .. }
            | Error::UnknownAuthority { .. }
            | Error::InvalidType { .. }
            | Error::BadRequest { .. }
            | Error::BodyTooLarge
            | Error::BadReceipt { .. }
            | Error::BadTrustList { .. }
            | Error::ShowCodeMalformed { .. }
            | Error::ShowCodeNotAuthentic { .. }
            | Error::ShowCodeExpired
            | Error::BadPdf { .. }
            | Error::EncryptedPdf
            | Error::PdfLimit { .. }
            | Error::BadTimestampRequest { .. } => Kind::Invalid,
            Error::TimestampUnavailable { .. } | Error::NoCjkFont => Kind::Unavailable,
            Error::SealNotFound { .. } => Kind::NotFound,
            Error::DocumentLocked | Error::SealInactive { .. } => Kind::Conflict,
            Error::ForeignRegion { .. } => Kind::Unavailable,
            Error::LicenseNotFound { .. } | Error::RouteNotFound | Error::GrantNotFound { .. } => {
                Kind::NotFound
            }
            Error::DevLoginDisabled => Kind::Forbidden,
            Error::MethodNotAllowed => Kind::MethodNotAllowed,
            Error::DuplicateLicense { .. }
            | Error::IllegalTransition { .. }
            | Error::AlreadyExists { .. }
            | Error::AuthorityCertUnusable { .. } => Kind::Conflict,
            Error::TypeNotAllowed { .. } | Error::OutOfScope { .. } => Kind::Forbidden,
            Error::ClientCertMissing
            | Error::ClientCertUntrusted { .. }
            | Error::ClientCertExpired { .. }
            | Error::ClientCertRevoked { .. }
            | Error::UnknownClient { .. } => Kind::Unauthenticated,
            Error::Unauthenticated { .. } => Kind::Unauthenticated,
            Error::DatabaseUnavailable(_) | Error::DatabaseUnavailableFor { .. } => {
                Kind::Unavailable
            }
            Error::NotInitialised
            | Error::KeyStore { .. }
            | Error::AuditFile { .. }
            | Error::Internal(_) => Kind::Internal,
        }
    }

    /// Structured evidence for the client (never internals).
    pub fn details(&self) -> Value {
        match self {
            Error::InvalidFields { errors } => serde_json::json!({ "errors": errors }),
            Error::DuplicateLicense { id, .. } => serde_json::json!({ "existing_id": id }),
            Error::IllegalTransition { from, to } => serde_json::json!({ "from": from, "to": to }),
            _ => Value::Null,
        }
    }

    pub fn internal(what: impl std::fmt::Display) -> Self {
        Error::Internal(what.to_string())
    }

    /// The error each waiter of a shared operation (the audit log's group commit) gets when
    /// that operation failed with `self`: still a 503 when the database went away.
    pub fn for_waiter(&self, what: &str) -> Self {
        if self.kind() == Kind::Unavailable {
            Error::DatabaseUnavailableFor {
                reason: format!("{what}: {self}"),
            }
        } else {
            Error::internal(format!("{what}: {self}"))
        }
    }

    pub fn bad_request(reason: impl Into<String>) -> Self {
        Error::BadRequest {
            reason: reason.into(),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Error::DatabaseUnavailable(e),
            // The server is going away or not there yet: PostgreSQL's connection exceptions
            // (class 08), operator intervention (57P01 admin shutdown, 57P02 crash shutdown,
            // 57P03 cannot connect now), too many connections (53300); SQLite busy/locked.
            sqlx::Error::Database(ref d)
                if d.code().is_some_and(|c| {
                    c.starts_with("08")
                        || c.starts_with("57P")
                        || c == "53300"
                        || c == "5"
                        || c == "6"
                }) =>
            {
                Error::DatabaseUnavailable(e)
            }
            other => Error::Internal(format!("database: {other}")),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
