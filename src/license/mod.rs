//! Licenses: types, identifiers, holders, the signed record, issuance and lifecycle.

pub mod credit_code;
pub mod holder;
pub mod id;
pub mod pdf;
pub mod record;
pub mod service;
pub mod types;

pub use service::{IssueRequest, Licenses, Status};
pub mod import;
