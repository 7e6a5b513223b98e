//! The C2SP x509-limbo suite (pinned copy in `conformance/x509-limbo/`) against elicense's
//! certificate path validation, `elicense::pki::path` — the function every chain check of the
//! service goes through (seals, clients, receipt and show-code signers, other regions).
//!
//! Each case is run and its result compared with the suite's `expected_result`. A case whose
//! result differs, or which the harness skips, must be listed in
//! `conformance/x509-limbo/exceptions.json` with the result we give and the reason; the test
//! fails on any difference that is not listed and on any listed exception that no longer
//! differs (so the list stays true). Run alone: `cargo test --test x509_limbo -- --nocapture`.
//! `ELICENSE_LIMBO_RESULTS=FILE` writes every case's result as JSON.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use elicense::pki::path::{self, PathError, Usage};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Read;

#[derive(Deserialize)]
struct Suite {
    testcases: Vec<Case>,
}

#[derive(Deserialize)]
struct PeerName {
    kind: String,
    value: String,
}

#[derive(Deserialize)]
struct Case {
    id: String,
    validation_kind: String,
    trusted_certs: Vec<String>,
    untrusted_intermediates: Vec<String>,
    peer_certificate: String,
    validation_time: Option<String>,
    extended_key_usage: Vec<String>,
    expected_result: String,
    expected_peer_name: Option<PeerName>,
    max_chain_depth: Option<u32>,
    crls: Vec<String>,
}

#[derive(Deserialize)]
struct Exception {
    id: String,
    ours: String,
    reason: String,
}

#[derive(Deserialize)]
struct Exceptions {
    exceptions: Vec<Exception>,
}

fn pem_all(text: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(text.as_bytes())
        .filter_map(|p| p.ok())
        .map(|p| p.contents)
        .collect()
}

/// SUCCESS, FAILURE, or SKIPPED with why.
fn run(case: &Case) -> (String, String) {
    if case.max_chain_depth.is_some() {
        return (
            "SKIPPED".into(),
            "webpki has no configurable chain-depth limit".into(),
        );
    }
    if let Some(n) = &case.expected_peer_name
        && n.kind != "DNS"
        && n.kind != "IP"
    {
        return (
            "SKIPPED".into(),
            format!("{} peer names are not validated", n.kind),
        );
    }
    let usage = match case.validation_kind.as_str() {
        "CLIENT" => Usage::ClientAuth,
        _ => Usage::ServerAuth,
    };
    if case
        .extended_key_usage
        .iter()
        .any(|e| e != "serverAuth" && e != "clientAuth")
    {
        return (
            "SKIPPED".into(),
            format!(
                "EKU {:?} is not a usage we validate",
                case.extended_key_usage
            ),
        );
    }
    let at = match &case.validation_time {
        Some(t) => time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .map(|t| t.unix_timestamp())
            .expect("validation_time"),
        None => time::OffsetDateTime::now_utc().unix_timestamp(),
    };
    let anchors: Vec<Vec<u8>> = case.trusted_certs.iter().flat_map(|p| pem_all(p)).collect();
    let intermediates: Vec<Vec<u8>> = case
        .untrusted_intermediates
        .iter()
        .flat_map(|p| pem_all(p))
        .collect();
    let crls: Vec<Vec<u8>> = case.crls.iter().flat_map(|p| pem_all(p)).collect();
    let Some(ee) = pem_all(&case.peer_certificate).into_iter().next() else {
        return ("FAILURE".into(), "peer certificate is not PEM".into());
    };
    let req = path::Request {
        intermediates: &intermediates,
        crls: &crls,
        ..path::Request::new(&ee, &anchors, at, usage)
    };
    if let Err(e) = path::validate(&req) {
        return ("FAILURE".into(), e.to_string());
    }
    if let Some(n) = &case.expected_peer_name
        && let Err(e) = path::valid_for_name(&ee, &n.value)
    {
        let e: PathError = e;
        return ("FAILURE".into(), format!("name {}: {e}", n.value));
    }
    ("SUCCESS".into(), String::new())
}

#[test]
fn x509_limbo() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/x509-limbo");
    let mut json = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(root.join("limbo.json.gz")).unwrap())
        .read_to_string(&mut json)
        .unwrap();
    let suite: Suite = serde_json::from_str(&json).unwrap();
    drop(json);
    let exceptions: Exceptions =
        serde_json::from_str(&std::fs::read_to_string(root.join("exceptions.json")).unwrap())
            .unwrap();
    let listed: BTreeMap<&str, &Exception> = exceptions
        .exceptions
        .iter()
        .map(|e| (e.id.as_str(), e))
        .collect();
    for e in &exceptions.exceptions {
        assert!(
            !e.reason.trim().is_empty(),
            "exception {} has no reason",
            e.id
        );
    }

    let mut results = BTreeMap::new();
    let (mut as_expected, mut skipped, mut known) = (0, 0, 0);
    let mut problems = Vec::new();
    for case in &suite.testcases {
        let (ours, why) = run(case);
        let differs = ours != case.expected_result;
        match (differs, listed.get(case.id.as_str())) {
            (false, None) => as_expected += 1,
            (false, Some(_)) => problems.push(format!(
                "{}: listed as an exception but now gives the expected {ours}",
                case.id
            )),
            (true, Some(e)) if e.ours == ours => {
                if ours == "SKIPPED" {
                    skipped += 1
                } else {
                    known += 1
                }
            }
            (true, Some(e)) => problems.push(format!(
                "{}: exception says {} but we give {ours} ({why})",
                case.id, e.ours
            )),
            (true, None) => problems.push(format!(
                "{}: expected {}, we give {ours} ({why})",
                case.id, case.expected_result
            )),
        }
        results.insert(
            case.id.clone(),
            serde_json::json!({"expected": case.expected_result, "ours": ours, "why": why}),
        );
    }
    for e in &exceptions.exceptions {
        assert!(
            results.contains_key(&e.id),
            "exception {} names no case of the suite",
            e.id
        );
    }
    if let Ok(p) = std::env::var("ELICENSE_LIMBO_RESULTS") {
        std::fs::write(p, serde_json::to_string_pretty(&results).unwrap()).unwrap();
    }
    println!(
        "x509-limbo: {} cases, {as_expected} as expected, {known} known divergences, \
         {skipped} skipped (each with its reason in exceptions.json), {} unexpected",
        suite.testcases.len(),
        problems.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
