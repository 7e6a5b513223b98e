//! elicense: electronic licenses, signatures and seals for government data bureaus.
#![forbid(unsafe_code)]

pub mod app;
pub mod audit;
pub mod bench;
pub mod bench_city;
pub mod bench_seal;
pub mod bench_verify;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod error;
pub mod holder;
pub mod http;
pub mod license;
pub mod pdf;
pub mod pki;
pub mod present;
pub mod seal;
pub mod store;
pub mod verify;
pub mod web;
