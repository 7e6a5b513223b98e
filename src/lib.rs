//! elicense: electronic licenses, signatures and seals for government data bureaus.
#![forbid(unsafe_code)]

pub mod clock;
pub mod error;
pub mod license;
pub mod pki;
pub mod store;
