//! API and domain tests, each run against SQLite and PostgreSQL.
//! Add new test functions here rather than new files: each file in tests/ links separately.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use common::Env;
use serde_json::{Value, json};

both_backends!(
    issue_show_and_verify_independently,
    lifecycle_and_history,
    amendment_bumps_version,
    listing_filters_and_pages,
    malformed_input_gets_coded_4xx,
    idempotent_issue_and_duplicate_number,
    expiry_follows_the_clock,
    revoked_authority_certificate,
    types_registered_as_data,
    bulk_import_api,
    import_sorts_out_numbers_issued_before_it,
    import_100k_survives_kill_9,
    concurrent_lookups_each_get_their_own,
    pki_replaces_and_forgets_revoked_issuers,
);

/// Verifies a license's COSE_Sign1 with only the authority certificate, using coset, x509-parser
/// and ring directly (not elicense's signing or verification code). Returns the payload.
fn verify_with_certificate(
    cose_b64: &str,
    cert_pem: &str,
    tamper: Option<&dyn Fn(&mut Value)>,
) -> Result<Value, String> {
    use coset::CborSerializable;
    let cose = base64::engine::general_purpose::STANDARD
        .decode(cose_b64)
        .unwrap();
    let mut sign1 = coset::CoseSign1::from_slice(&cose).map_err(|e| e.to_string())?;
    if let Some(f) = tamper {
        let mut v: Value = serde_json::from_slice(sign1.payload.as_ref().unwrap()).unwrap();
        f(&mut v);
        sign1.payload = Some(v.to_string().into_bytes());
    }
    let der = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .unwrap()
        .1
        .contents;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let spki = cert.public_key().subject_public_key.data.to_vec();
    let key =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, spki);
    sign1
        .verify_signature(b"", |sig, tbs| key.verify(tbs, sig))
        .map_err(|_| "bad signature".to_string())?;
    Ok(serde_json::from_slice(sign1.payload.as_ref().unwrap()).unwrap())
}

type Tamper = Box<dyn Fn(&mut Value)>;

/// The region's issuers follow revocation and time: a revoked service signer is replaced at
/// once (not served from the process's cache); a client CA is replaced when it would not outlive
/// a new client certificate, the old one still counts for the certificates it issued, and the
/// two CRLs (same issuer name, different keys) each list only their own; a client CA revoked by
/// another node sharing the database is never used to issue here.
async fn pki_replaces_and_forgets_revoked_issuers(env: Env) {
    use elicense::pki::ca::{CLIENT_MAX_DAYS, issued_by};
    let pki = &env.app.pki;
    let signer = pki.service_signer().await.unwrap();
    assert_eq!(pki.service_signer().await.unwrap().serial, signer.serial);
    pki.revoke(&signer.serial, "keyCompromise").await.unwrap();
    let next = pki.service_signer().await.unwrap();
    assert_ne!(next.serial, signer.serial, "a revoked signer stayed in use");

    let ca1 = pki.client_ca().await.unwrap();
    assert_eq!(pki.client_ca().await.unwrap().serial, ca1.serial);
    let (c1, _) = pki.issue_client_cert("cs-one", "one", 365).await.unwrap();
    assert!(issued_by(&c1.der, &ca1.der));
    // One second before the old CA would end within a client certificate's lifetime it stays;
    // one second after, a new one takes over.
    env.clock.set(ca1.not_after - CLIENT_MAX_DAYS * 86_400 - 1);
    assert_eq!(pki.client_ca().await.unwrap().serial, ca1.serial);
    env.clock.advance(2);
    let ca2 = pki.client_ca().await.unwrap();
    assert_ne!(
        ca2.serial, ca1.serial,
        "a client CA that ends too soon stayed"
    );
    assert_eq!(ca2.subject, ca1.subject);
    let (c2, _) = pki.issue_client_cert("cs-two", "two", 365).await.unwrap();
    assert!(issued_by(&c2.der, &ca2.der) && !issued_by(&c2.der, &ca1.der));
    assert!(!issued_by(&c1.der, &ca2.der));
    let cas: Vec<String> = pki
        .client_cas()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.serial)
        .collect();
    assert_eq!(cas, vec![ca2.serial.clone(), ca1.serial.clone()]);

    pki.revoke(&c1.serial, "superseded").await.unwrap();
    let listed = |der: Vec<u8>| -> Vec<String> {
        let (_, crl) = x509_parser::parse_x509_crl(&der).unwrap();
        crl.iter_revoked_certificates()
            .map(|r| hex::encode(r.raw_serial()))
            .collect()
    };
    let crl1 = pki.current_client_crl(&ca1.serial).await.unwrap().unwrap();
    let crl2 = pki.current_client_crl(&ca2.serial).await.unwrap().unwrap();
    assert_eq!(listed(crl1.der), vec![c1.serial.to_lowercase()]);
    assert!(listed(crl2.der).is_empty());
    assert!(!listed(pki.current_crl().await.unwrap().der).contains(&c1.serial.to_lowercase()));

    // Another node revokes the current client CA in the shared database.
    env.exec(&format!(
        "UPDATE certificates SET revoked_at = {}, revocation_reason = 'keyCompromise' WHERE serial = '{}'",
        elicense::clock::Clock::unix(&env.clock),
        ca2.serial
    ))
    .await;
    let ca3 = pki.client_ca().await.unwrap();
    assert_ne!(
        ca3.serial, ca2.serial,
        "a client CA revoked elsewhere issued here"
    );
    let (c3, _) = pki
        .issue_client_cert("cs-three", "three", 365)
        .await
        .unwrap();
    assert!(issued_by(&c3.der, &ca3.der));
}

/// Many lookups at once: each asker gets its own license, an unknown one is not found, and a
/// status change is seen by the next lookup.
async fn concurrent_lookups_each_get_their_own(env: Env) {
    let mut ids = Vec::new();
    for seq in 0..40 {
        ids.push(
            env.issue(500 + seq).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let mut tasks = Vec::new();
    for round in 0..5 {
        for (i, id) in ids.iter().enumerate() {
            let app = env.app.clone();
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                let (row, _) = app.licenses.find(&id).await.unwrap();
                (i, round, row.id)
            }));
        }
    }
    for t in tasks {
        let (i, round, got) = t.await.unwrap();
        assert_eq!(got, ids[i], "asker {i} of round {round}");
    }
    let missing = elicense::license::id::LicenseId::parse(&ids[0]).unwrap();
    let missing = elicense::license::id::LicenseId::new(
        &missing.type_code,
        &missing.issuer_code,
        "202699999999",
        1,
    )
    .unwrap()
    .to_string();
    let (a, b) = tokio::join!(
        env.app.licenses.find(&missing),
        env.app.licenses.find(&ids[1])
    );
    assert_eq!(a.unwrap_err().code(), "LIC-0004");
    assert_eq!(b.unwrap().0.id, ids[1]);

    let uri = format!("/v1/licenses/{}/status", ids[2]);
    let (s, _) = env
        .call(
            "POST",
            &uri,
            Some(&json!({"status": "revoked", "reason": "测试"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(env.app.licenses.find(&ids[2]).await.unwrap().0.status, "07");
}

async fn issue_show_and_verify_independently(env: Env) {
    let issued = env.issue(1).await;
    let id = issued["id"].as_str().unwrap();
    assert!(elicense::license::id::LicenseId::parse(id).is_ok());
    let (s, detail) = env.call("GET", &format!("/v1/licenses/{id}"), None).await;
    assert_eq!(s, StatusCode::OK, "{detail}");
    assert_eq!(detail["status"], "valid");
    let cert = detail["issuer_certificate"].as_str().unwrap();
    let payload = verify_with_certificate(
        detail["signature"]["cose_sign1"].as_str().unwrap(),
        cert,
        None,
    )
    .unwrap();
    assert_eq!(payload["id"], id);
    assert_eq!(payload["fields"], detail["fields"]);
    assert_eq!(payload["holder"], detail["holder"]);
    // Any change of any field breaks the signature.
    let tampers: Vec<Tamper> = vec![
        Box::new(|v| v["fields"]["address"] = json!("伪造地址")),
        Box::new(|v| v["holder"]["name"] = json!("李四")),
        Box::new(|v| v["valid_to"] = json!("2099-01-01")),
        Box::new(|v| v["number"] = json!("X")),
    ];
    for t in &tampers {
        assert!(
            verify_with_certificate(
                detail["signature"]["cose_sign1"].as_str().unwrap(),
                cert,
                Some(t.as_ref())
            )
            .is_err()
        );
    }
    // A certificate of another authority does not verify it.
    let (_, other) = env
        .call(
            "GET",
            &format!("/v1/authorities/{}", env.authority(1)),
            None,
        )
        .await;
    assert!(
        verify_with_certificate(
            detail["signature"]["cose_sign1"].as_str().unwrap(),
            other["certificate"].as_str().unwrap(),
            None
        )
        .is_err()
    );
    assert_eq!(detail["versions"].as_array().unwrap().len(), 1);
    assert_eq!(detail["events"][0]["action"], "issued");
    assert_eq!(detail["events"][0]["actor"], "tester");
}

async fn lifecycle_and_history(env: Env) {
    let id = env.issue(2).await["id"].as_str().unwrap().to_string();
    let set = |status: &str| json!({"status": status, "reason": "测试"});
    let uri = format!("/v1/licenses/{id}/status");
    let (s, v) = env.call("POST", &uri, Some(&set("suspended"))).await;
    assert_eq!(
        (s, v["status"].clone()),
        (StatusCode::OK, json!("suspended")),
        "{v}"
    );
    let (s, v) = env.call("POST", &uri, Some(&set("valid"))).await;
    assert_eq!((s, v["status_code"].clone()), (StatusCode::OK, json!("01")));
    let (s, v) = env.call("POST", &uri, Some(&set("revoked"))).await;
    assert_eq!((s, v["status"].clone()), (StatusCode::OK, json!("revoked")));
    let (s, v) = env.call("POST", &uri, Some(&set("valid"))).await;
    assert_eq!(
        (s, v["code"].clone()),
        (StatusCode::CONFLICT, json!("LIC-0006")),
        "{v}"
    );
    let (s, v) = env.call("POST", &uri, Some(&set("expired"))).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (_, d) = env.call("GET", &format!("/v1/licenses/{id}"), None).await;
    let actions: Vec<_> = d["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["from_status"].clone(), e["to_status"].clone()))
        .collect();
    assert_eq!(
        actions,
        vec![
            (Value::Null, json!("01")),
            (json!("01"), json!("02")),
            (json!("02"), json!("01")),
            (json!("01"), json!("07")),
        ]
    );
    let (s, v) = env
        .call(
            "POST",
            &uri,
            Some(&json!({"status": "suspended", "reason": ""})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
}

async fn amendment_bumps_version(env: Env) {
    let v1 = env.issue(3).await;
    let id1 = v1["id"].as_str().unwrap().to_string();
    let mut fields = v1["fields"].clone();
    fields["address"] = json!("安徽省示范市新地址1号");
    let (s, v2) = env
        .call(
            "PATCH",
            &format!("/v1/licenses/{id1}"),
            Some(&json!({"fields": fields, "reason": "住址变更"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v2}");
    let id2 = v2["id"].as_str().unwrap();
    assert_ne!(id1, id2);
    let p1 = elicense::license::id::LicenseId::parse(&id1).unwrap();
    let p2 = elicense::license::id::LicenseId::parse(id2).unwrap();
    assert_eq!((p1.version, p2.version), (1, 2));
    assert_eq!(p1.lineage(), p2.lineage());
    // The old identifier resolves to the current version and says so.
    let (_, d) = env.call("GET", &format!("/v1/licenses/{id1}"), None).await;
    assert_eq!(d["id"], id2);
    assert_eq!(d["requested_version"], id1.as_str());
    assert_eq!(d["versions"].as_array().unwrap().len(), 2);
    assert_eq!(d["versions"][0]["id"], id1.as_str());
    assert_eq!(d["versions"][0]["superseded_because"], "住址变更");
    // The superseded version's signature still verifies, over its own record.
    let old = verify_with_certificate(
        d["versions"][0]["cose_sign1"].as_str().unwrap(),
        d["issuer_certificate"].as_str().unwrap(),
        None,
    )
    .unwrap();
    assert_eq!(old["version"], 1);
    assert_ne!(old["fields"]["address"], "安徽省示范市新地址1号");
    let payload = verify_with_certificate(
        d["signature"]["cose_sign1"].as_str().unwrap(),
        d["issuer_certificate"].as_str().unwrap(),
        None,
    )
    .unwrap();
    assert_eq!(payload["fields"]["address"], "安徽省示范市新地址1号");
    assert_eq!(payload["version"], 2);
    // Amending a superseded version is refused; bad fields are reported by path.
    let (s, _) = env
        .call(
            "PATCH",
            &format!("/v1/licenses/{id1}"),
            Some(&json!({"reason": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, e) = env
        .call(
            "PATCH",
            &format!("/v1/licenses/{id2}"),
            Some(&json!({"fields": {"sex": "?"}, "reason": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        e["details"]["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["path"] == "/fields/sex"),
        "{e}"
    );
}

async fn listing_filters_and_pages(env: Env) {
    let mut ids = Vec::new();
    for i in 10..17 {
        ids.push(env.issue(i).await["id"].as_str().unwrap().to_string());
    }
    let holder = env.id_card_request(12)["holder"]["code"]
        .as_str()
        .unwrap()
        .to_string();
    env.call(
        "POST",
        &format!("/v1/licenses/{}/status", ids[0]),
        Some(&json!({"status": "suspended", "reason": "r"})),
    )
    .await;
    let (_, page) = env.call("GET", "/v1/licenses?limit=3", None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    let mut seen = Vec::new();
    let mut next = page["next"].as_str().map(String::from);
    seen.extend(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_string()),
    );
    while let Some(after) = next {
        let (_, p) = env
            .call("GET", &format!("/v1/licenses?limit=3&after={after}"), None)
            .await;
        seen.extend(
            p["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["id"].as_str().unwrap().to_string()),
        );
        next = p["next"].as_str().map(String::from);
    }
    let mut sorted = ids.clone();
    sorted.sort();
    seen.sort();
    assert_eq!(seen, sorted);
    let (_, p) = env.call("GET", "/v1/licenses?status=suspended", None).await;
    assert_eq!(p["items"].as_array().unwrap().len(), 1);
    let (_, p) = env.call("GET", "/v1/licenses?status=01", None).await;
    assert_eq!(p["items"].as_array().unwrap().len(), 6);
    // Statuses other than valid are listed through the partial index (migration 0010).
    env.call(
        "POST",
        &format!("/v1/licenses/{}/status", ids[1]),
        Some(&json!({"status": "revoked", "reason": "r"})),
    )
    .await;
    for (status, n) in [
        ("revoked", 1),
        ("suspended", 1),
        ("valid", 5),
        ("cancelled", 0),
    ] {
        let (_, p) = env
            .call("GET", &format!("/v1/licenses?status={status}"), None)
            .await;
        assert_eq!(p["items"].as_array().unwrap().len(), n, "{status}");
    }
    let (_, p) = env.call("GET", "/v1/licenses?status=revoked", None).await;
    assert_eq!(p["items"][0]["id"], ids[1].as_str());
    let (_, p) = env
        .call("GET", &format!("/v1/licenses?holder_code={holder}"), None)
        .await;
    assert!(
        p["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["holder"]["code"] == holder.as_str())
    );
    assert!(!p["items"].as_array().unwrap().is_empty());
    let (_, p) = env
        .call(
            "GET",
            &format!(
                "/v1/licenses?type={}",
                elicense::license::types::DRIVING_LICENCE
            ),
            None,
        )
        .await;
    assert!(p["items"].as_array().unwrap().is_empty());
    let (s, e) = env.call("GET", "/v1/licenses?limit=0", None).await;
    assert_eq!(
        (s, e["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("LIC-0002"))
    );
    let (s, e) = env.call("GET", "/v1/licenses?status=bogus", None).await;
    assert_eq!(
        (s, e["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("REQ-0001"))
    );
}

async fn malformed_input_gets_coded_4xx(env: Env) {
    let post = |body: &'static str, ct: &'static str| {
        Request::builder()
            .method("POST")
            .uri("/v1/licenses")
            .header("authorization", format!("Bearer {}", env.token))
            .header("content-type", ct)
            .body(Body::from(body))
            .unwrap()
    };
    let code_of = |b: &[u8]| {
        serde_json::from_slice::<Value>(b)
            .map(|v| v["code"].clone())
            .unwrap_or(Value::Null)
    };
    for (body, ct, status, code) in [
        (
            "{not json",
            "application/json",
            StatusCode::BAD_REQUEST,
            "REQ-0001",
        ),
        (
            "[]",
            "application/json",
            StatusCode::BAD_REQUEST,
            "REQ-0001",
        ),
        ("{}", "text/plain", StatusCode::BAD_REQUEST, "REQ-0001"),
        (
            "\u{0}\u{1}",
            "application/json",
            StatusCode::BAD_REQUEST,
            "REQ-0001",
        ),
    ] {
        let (s, b) = env.raw(post(body, ct)).await;
        assert_eq!((s, code_of(&b)), (status, json!(code)), "{body}");
    }
    // Oversized body.
    let big = format!("{{\"number\": \"{}\"}}", "x".repeat(2 << 20));
    let req = Request::builder()
        .method("POST")
        .uri("/v1/licenses")
        .header("authorization", format!("Bearer {}", env.token))
        .header("content-type", "application/json")
        .body(Body::from(big))
        .unwrap();
    let (s, b) = env.raw(req).await;
    assert_eq!(
        (s, code_of(&b)),
        (StatusCode::PAYLOAD_TOO_LARGE, json!("REQ-0002"))
    );
    // Wrong schema, reported by path.
    let mut r = env.id_card_request(20);
    r["fields"]["sex"] = json!("unknown");
    r["fields"]["extra"] = json!(1);
    r["holder"]["code"] = json!("340602199001010000");
    r["valid_from"] = json!("2026-13-01");
    let (s, e) = env.call("POST", "/v1/licenses", Some(&r)).await;
    assert_eq!(
        (s, e["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("LIC-0002")),
        "{e}"
    );
    let paths: Vec<_> = e["details"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["path"].as_str().unwrap().to_string())
        .collect();
    for p in ["/fields/sex", "/fields", "/holder/code", "/valid_from"] {
        assert!(paths.contains(&p.to_string()), "{p} missing from {paths:?}");
    }
    // Unknown type, unknown issuer, type not allowed for the issuer.
    let mut r = env.id_card_request(21);
    r["type"] = json!("11100000000013338W999");
    let (s, e) = env.call("POST", "/v1/licenses", Some(&r)).await;
    assert_eq!(
        (s, e["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("LIC-0003"))
    );
    let mut r = env.id_card_request(22);
    r["issuer"] = json!(elicense::demo::credit("11340600MB0000991"));
    let (s, e) = env.call("POST", "/v1/licenses", Some(&r)).await;
    assert_eq!(
        (s, e["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("AUT-0001"))
    );
    let mut r = env.id_card_request(23);
    r["issuer"] = json!(env.authority(1));
    let (s, e) = env.call("POST", "/v1/licenses", Some(&r)).await;
    assert_eq!(
        (s, e["code"].clone()),
        (StatusCode::FORBIDDEN, json!("LIC-0007"))
    );
    // Invalid identifiers, and one that is valid but unknown.
    for bad in [
        "nope",
        "1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.V",
        "1.2.156.3005.2.%20",
    ] {
        let (s, e) = env.call("GET", &format!("/v1/licenses/{bad}"), None).await;
        assert_eq!(
            (s, e["code"].clone()),
            (StatusCode::BAD_REQUEST, json!("LIC-0001")),
            "{bad}: {e}"
        );
    }
    let (s, e) = env.call("GET", "/v1/licenses/1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U", None).await;
    assert_eq!(
        (s, e["code"].clone()),
        (StatusCode::NOT_FOUND, json!("LIC-0004"))
    );
    // Authority with a bad credit code.
    let (s, e) = env.call("POST", "/v1/authorities", Some(&json!({"credit_code": "11340600MB00000110", "name": "x", "level": "municipal", "types": []}))).await;
    assert_eq!(
        (s, e["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("LIC-0002"))
    );
    assert_eq!(e["details"]["errors"][0]["path"], "/credit_code");
    // No token, bad token, unknown route, wrong method.
    let (s, b) = env
        .raw(
            Request::builder()
                .uri("/v1/licenses")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(
        (s, code_of(&b)),
        (StatusCode::UNAUTHORIZED, json!("AUTH-0001"))
    );
    let (s, _) = env
        .raw(
            Request::builder()
                .uri("/v1/licenses")
                .header("authorization", "Bearer elt_wrong")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, e) = env.call("GET", "/v2/nothing", None).await;
    assert_eq!(
        (s, e["code"].clone()),
        (StatusCode::NOT_FOUND, json!("REQ-0404"))
    );
    let (s, e) = env.call("DELETE", "/v1/licenses", None).await;
    assert_eq!(
        (s, e["code"].clone()),
        (StatusCode::METHOD_NOT_ALLOWED, json!("REQ-0405"))
    );
    // Unknown query parameter.
    let (s, _) = env.call("GET", "/v1/licenses?colour=red", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

async fn idempotent_issue_and_duplicate_number(env: Env) {
    let r = env.id_card_request(30);
    let (s1, a) = env.call("POST", "/v1/licenses", Some(&r)).await;
    let (s2, b) = env.call("POST", "/v1/licenses", Some(&r)).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::OK));
    assert_eq!(a["id"], b["id"]);
    let mut other = r.clone();
    other["holder"]["name"] = json!("别人");
    let (s, e) = env.call("POST", "/v1/licenses", Some(&other)).await;
    assert_eq!(
        (s, e["code"].clone()),
        (StatusCode::CONFLICT, json!("LIC-0005"))
    );
    assert_eq!(e["details"]["existing_id"], a["id"]);
    assert_eq!(env.app.store.count_licenses().await.unwrap(), 1);
}

async fn expiry_follows_the_clock(env: Env) {
    let mut r = env.id_card_request(40);
    r["valid_from"] = json!("2026-01-01");
    r["valid_to"] = json!("2026-12-31");
    let (_, v) = env.call("POST", "/v1/licenses", Some(&r)).await;
    assert_eq!(v["status"], "valid", "{v}");
    let mut long = env.id_card_request(41);
    long["valid_to"] = json!("长期");
    let (_, l) = env.call("POST", "/v1/licenses", Some(&long)).await;
    assert_eq!(l["valid_to"], Value::Null);
    env.clock.set(common::T0 + 400 * 86_400);
    let (_, d) = env
        .call(
            "GET",
            &format!("/v1/licenses/{}", v["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(
        (d["status"].clone(), d["status_code"].clone()),
        (json!("expired"), json!("05"))
    );
    let (_, p) = env.call("GET", "/v1/licenses?status=expired", None).await;
    assert_eq!(p["items"].as_array().unwrap().len(), 1);
    let (_, p) = env.call("GET", "/v1/licenses?status=valid", None).await;
    assert_eq!(p["items"][0]["id"], l["id"]);
}

async fn revoked_authority_certificate(env: Env) {
    env.issue(50).await;
    let code = env.authority(0);
    let (_, a) = env
        .call("GET", &format!("/v1/authorities/{code}"), None)
        .await;
    let serial = a["certificate_serial"].as_str().unwrap().to_string();
    let (s, a2) = env
        .call(
            "POST",
            &format!("/v1/authorities/{code}/certificate/revoke"),
            Some(&json!({"reason": "keyCompromise"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{a2}");
    assert_eq!(a2["certificate_revoked"], true);
    let (s, e) = env
        .call(
            "POST",
            &format!("/v1/authorities/{code}/certificate/revoke"),
            Some(&json!({"reason": "keyCompromise"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    let (s, e) = env
        .call(
            "POST",
            &format!("/v1/authorities/{}/certificate/revoke", env.authority(1)),
            Some(&json!({"reason": "bogus"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    // The CRL (public) lists it.
    let (s, der) = env
        .raw(
            Request::builder()
                .uri("/v1/pki/crl")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, crl) = x509_parser::parse_x509_crl(&der).unwrap();
    let listed: Vec<String> = crl
        .iter_revoked_certificates()
        .map(|r| hex::encode(r.raw_serial()))
        .collect();
    assert!(listed.contains(&serial), "{listed:?} lacks {serial}");
    // Issuing with a revoked certificate is refused.
    let (s, e) = env
        .call("POST", "/v1/licenses", Some(&env.id_card_request(51)))
        .await;
    assert_eq!(
        (s, e["code"].clone()),
        (StatusCode::CONFLICT, json!("AUT-0002"))
    );
}

async fn types_registered_as_data(env: Env) {
    let def = json!({
        "code": format!("{}101", elicense::demo::credit("11340600MB0000011")),
        "name": "食品经营许可证",
        "holder_kind": "organisation",
        "validity_years": 5,
        "disclosable": ["scope"],
        "schema": {"type": "object", "required": ["scope", "address"], "additionalProperties": false,
                   "properties": {"scope": {"type": "string", "minLength": 1}, "address": {"type": "string"}}}
    });
    let (s, t) = env.call("POST", "/v1/types", Some(&def)).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let (s, e) = env.call("POST", "/v1/types", Some(&def)).await;
    assert_eq!(
        (s, e["code"].clone()),
        (StatusCode::CONFLICT, json!("GEN-0409"))
    );
    let mut bad = def.clone();
    bad["code"] = json!("123");
    let (s, e) = env.call("POST", "/v1/types", Some(&bad)).await;
    assert_eq!(
        (s, e["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("TYP-0001"))
    );
    let mut bad = def.clone();
    bad["code"] = json!(format!(
        "{}102",
        elicense::demo::credit("11340600MB0000011")
    ));
    bad["schema"]["properties"]["scope"]["minLength"] = json!("one");
    let (s, e) = env.call("POST", "/v1/types", Some(&bad)).await;
    assert_eq!(
        (s, e["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("TYP-0001")),
        "{e}"
    );
    let (_, list) = env.call("GET", "/v1/types", None).await;
    assert_eq!(list.as_array().unwrap().len(), 5);
    // A new authority for the new type issues an organisation's license.
    let org = elicense::demo::credit("12340600MB0000041");
    let (s, a) = env.call("POST", "/v1/authorities", Some(&json!({"credit_code": org, "name": "示范市市场监督管理局", "level": "municipal", "types": [def["code"]]}))).await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    let holder = elicense::demo::credit("92340600MA0000011");
    let req = json!({"type": def["code"], "issuer": org, "number": "JY13406000000001",
        "holder": {"name": "示范市某某餐饮店", "code": holder, "code_type": "001"},
        "fields": {"scope": "热食类食品制售", "address": "示范市人民路1号"}});
    let (s, l) = env.call("POST", "/v1/licenses", Some(&req)).await;
    assert_eq!(s, StatusCode::CREATED, "{l}");
    assert_eq!(l["valid_to"], json!(format!("{}", "2031-05-31")));
    let mut bad_holder = req.clone();
    bad_holder["holder"]["code_type"] = json!("111");
    bad_holder["number"] = json!("JY2");
    let (s, e) = env.call("POST", "/v1/licenses", Some(&bad_holder)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
}

async fn bulk_import_api(env: Env) {
    let mut body = String::new();
    for i in 0..50u64 {
        if i == 7 {
            body.push_str("{broken\n");
        } else {
            body.push_str(&env.id_card_request(1000 + i).to_string());
            body.push('\n');
        }
    }
    let req = |b: String| {
        Request::builder()
            .method("POST")
            .uri("/v1/imports")
            .header("authorization", format!("Bearer {}", env.token))
            .header("content-type", "application/x-ndjson")
            .body(Body::from(b))
            .unwrap()
    };
    let (s, b) = env.raw(req(body.clone())).await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["issued"].clone(), v["failed"].clone()),
        (json!(49), json!(1))
    );
    assert_eq!(v["errors"][0]["line"], 8);
    let (_, b) = env.raw(req(body)).await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        (v["already_complete"].clone(), v["issued_this_run"].clone()),
        (json!(true), json!(0))
    );
    assert_eq!(env.app.store.count_licenses().await.unwrap(), 49);
    let audit = env.app.store.audit_page(0, 100).await.unwrap();
    let imports: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "license.import")
        .collect();
    assert_eq!(
        imports.len(),
        1,
        "one audit entry for the one batch that issued"
    );
    assert!(
        imports[0].details.contains("\"issued\":49"),
        "{}",
        imports[0].details
    );
}

/// Numbers issued before the run (here through the API) are found when the batch's insert
/// refuses them: the same request again is skipped, another request under a taken number is
/// reported, and the batch's other lines are issued all the same; a later batch looks the
/// numbers up before signing, with the same outcome.
async fn import_sorts_out_numbers_issued_before_it(env: Env) {
    let same = env.issue(3005).await;
    let mut other = env.id_card_request(3006);
    other["holder"]["name"] = json!("另一人");
    let (s, _) = env.call("POST", "/v1/licenses", Some(&other)).await;
    assert_eq!(s, StatusCode::CREATED);
    // Two batches of 10; each has a line that repeats request 3005, before it a line under
    // number 3005 with other content, and two lines that reuse the number of 3006 with other
    // content (the second repeating the first). The first batch finds the numbers taken only
    // when its insert is refused; each line must still be judged against the issued license
    // before the batch's earlier lines: the repeat of the 3005 request is skipped although a
    // line before it took the number within the batch, and the repeat of a refused line is
    // refused too.
    let mut not_3005 = env.id_card_request(3005);
    not_3005["holder"]["name"] = json!("第三人");
    let path = env.dir.path().join("taken.jsonl");
    let mut body = String::new();
    for i in 0..20u64 {
        let r = match i % 10 {
            2 => not_3005.clone(),
            4 => env.id_card_request(3005),
            6 | 8 => env.id_card_request(3006),
            _ => env.id_card_request(4000 + i),
        };
        body.push_str(&r.to_string());
        body.push('\n');
    }
    std::fs::write(&path, body).unwrap();
    let opts = elicense::license::import::ImportOptions {
        batch: 10,
        ..Default::default()
    };
    struct Bad(Vec<(u64, String)>);
    impl elicense::license::import::ImportObserver for Bad {
        fn bad_line(&mut self, e: &elicense::license::import::LineError) {
            self.0.push((e.line, e.code.clone()));
        }
    }
    let mut bad = Bad(Vec::new());
    let s = elicense::license::import::import_file(&env.app.licenses, &path, &opts, &mut bad)
        .await
        .unwrap();
    assert_eq!((s.issued_this_run, s.skipped, s.failed), (12, 2, 6));
    let refused: Vec<(u64, String)> = [3, 7, 9, 13, 17, 19]
        .into_iter()
        .map(|l| (l, "LIC-0005".to_string()))
        .collect();
    assert_eq!(bad.0, refused);
    assert_eq!(env.app.store.count_licenses().await.unwrap(), 14);
    let (_, l) = env
        .call(
            "GET",
            &format!("/v1/licenses/{}", same["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(l["number"], same["number"]);
    let run = env
        .app
        .store
        .import_run(&s.file_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (run.issued, run.skipped, run.failed, run.finished),
        (12, 2, 6, 1)
    );
}

#[tokio::test]
async fn openapi_document_matches_snapshot() {
    let doc = elicense::http::openapi::json();
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/openapi.json");
    if std::env::var("UPDATE_SNAPSHOTS").is_ok() {
        std::fs::write(&path, &doc).unwrap();
    }
    let expected =
        std::fs::read_to_string(&path).expect("snapshot missing: run with UPDATE_SNAPSHOTS=1");
    assert!(
        doc == expected,
        "the OpenAPI document changed; review and run with UPDATE_SNAPSHOTS=1"
    );
    let v: Value = serde_json::from_str(&doc).unwrap();
    assert!(v["paths"]["/v1/licenses"]["post"].is_object());
}

/// Writes `n` lines; every 100th line (from line 50 on) is bad in one of four ways.
/// Returns the set of bad line numbers.
fn write_import_file(env: &Env, path: &std::path::Path, n: u64) -> std::collections::BTreeSet<u64> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut bad = std::collections::BTreeSet::new();
    for line in 1..=n {
        let mut r = env.id_card_request(line);
        if line % 100 == 50 {
            bad.insert(line);
            match (line / 100) % 4 {
                0 => {
                    writeln!(w, "{{\"type\": \"broken").unwrap();
                    continue;
                }
                1 => r["fields"]["sex"] = json!("?"),
                2 => r["type"] = json!("11100000000013338W998"),
                _ => {
                    // Same number as line 1, other content: a conflict, not a skip.
                    r["number"] = json!("ID0000000001");
                }
            }
        }
        writeln!(w, "{r}").unwrap();
    }
    w.flush().unwrap();
    bad
}

fn import_cmd(
    env: &Env,
    file: &std::path::Path,
    rejects: &std::path::Path,
) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_elicense"));
    c.arg("--data-dir")
        .arg(env.dir.path())
        .arg("--database-url")
        .arg(&env.database_url);
    c.args(["license", "import", "--log-commits", "--batch", "1000"])
        .arg(file);
    c.arg("--rejects").arg(rejects);
    c.env_remove("ELICENSE_MASTER_KEY").env("RUST_LOG", "warn");
    c
}

async fn import_100k_survives_kill_9(env: Env) {
    use std::io::BufRead;
    const N: u64 = 100_000;
    let file = env.dir.path().join("bulk.jsonl");
    let rejects = env.dir.path().join("rejects.jsonl");
    let bad = write_import_file(&env, &file, N);
    let good = N - bad.len() as u64;
    assert_eq!(bad.len(), 1000);
    // Autovacuum off for this scratch table, so the statistics checked below are the import's
    // own and not whatever a background ANALYZE left.
    if let Some(pg) = &env.pg {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&pg.url).await.unwrap();
        sqlx::query("ALTER TABLE licenses SET (autovacuum_enabled = false)")
            .execute(&mut c)
            .await
            .unwrap();
    }

    // First run: kill -9 after a few acknowledged batches.
    let mut child = import_cmd(&env, &file, &rejects)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut acknowledged = 0u64;
    for line in out.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("committed through line ") {
            acknowledged = rest.split(':').next().unwrap().parse().unwrap();
            if acknowledged >= 7000 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(acknowledged >= 7000);
    // A run that did not finish refreshed no planner statistics.
    if let Some(pg) = &env.pg {
        assert_eq!(planner_view(&pg.url, None).await.analyzed, 0);
    }

    // Everything acknowledged is there, verifiable, and nothing else half-written.
    let store = &env.app.store;
    let hash = {
        let bytes = std::fs::read(&file).unwrap();
        hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes))
    };
    let run = store
        .import_run(&hash)
        .await
        .unwrap()
        .expect("progress row");
    let done = run.lines_done as u64;
    assert!(
        done >= acknowledged && done < N,
        "done {done}, acknowledged {acknowledged}"
    );
    let good_through = |k: u64| k - bad.range(..=k).count() as u64 + u64::from(bad.contains(&0));
    // Line 1's number is reused by the conflicting bad lines, so good lines are exactly issued.
    let count = store.count_licenses().await.unwrap() as u64;
    assert_eq!(count, good_through(done), "licenses present after the kill");
    let filter = elicense::store::LicenseFilter {
        limit: 100_000,
        ..Default::default()
    };
    let rows = store.list_licenses(&filter, "2026-06-01").await.unwrap();
    let auth = env
        .app
        .licenses
        .signing_authority(&env.authority(0))
        .await
        .unwrap();
    let cert_key = {
        let (_, c) = x509_parser::parse_x509_certificate(&auth.cert.der).unwrap();
        c.public_key().subject_public_key.data.to_vec()
    };
    for r in &rows {
        elicense::license::record::verify_detached(&r.signature, r.record.as_bytes(), &cert_key)
            .expect("signature verifies");
        let n: u64 = r.number.trim_start_matches("ID").parse().unwrap();
        assert!(
            n <= done && !bad.contains(&n),
            "line {n} is past the acknowledged progress or bad"
        );
    }

    // Re-run: resumes, finishes, reports every bad line, issues each good line exactly once.
    let st = import_cmd(&env, &file, &rejects)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(2), "bad lines make exit code 2");
    assert_eq!(store.count_licenses().await.unwrap() as u64, good);
    // The run that issued most of the file left the table analyzed: the planner knows its size
    // and finds a holder's licenses through the holder index, not by walking the primary key.
    if let Some(pg) = &env.pg {
        let v = planner_view(&pg.url, Some(&rows[0].holder_code)).await;
        assert_eq!(v.analyzed, 1, "one ANALYZE, by the run that finished");
        // That ANALYZE covered some columns on a small sample and left the table's count of
        // changes as it was, so autovacuum's full ANALYZE is still due.
        assert_eq!(v.auto_analyzed, 0, "autovacuum is off for this table");
        assert!(
            v.changes as f64 >= 0.9 * good as f64,
            "changes since the last analysis {}, stored {good}",
            v.changes
        );
        assert!(
            (v.rows - good as f64).abs() < 0.05 * good as f64,
            "the planner's row count {}, stored {good}",
            v.rows
        );
        assert!(
            v.plan.contains("licenses_holder"),
            "holder query plan: {}",
            v.plan
        );
    }
    let reported: std::collections::BTreeSet<u64> = std::fs::read_to_string(&rejects)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["line"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let expected_after: std::collections::BTreeSet<u64> =
        bad.iter().copied().filter(|l| *l > done).collect();
    assert_eq!(
        reported, expected_after,
        "the resumed run reports every bad line it read"
    );
    let run = store.import_run(&hash).await.unwrap().unwrap();
    assert_eq!(
        (run.issued as u64, run.failed as u64, run.finished),
        (good, 1000, 1)
    );

    // Third run of the same file: nothing to do. A copy with another hash: all skipped.
    let st = import_cmd(&env, &file, &rejects)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(2));
    let copy = env.dir.path().join("copy.jsonl");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend_from_slice(b"\n");
    std::fs::write(&copy, bytes).unwrap();
    let opts = elicense::license::import::ImportOptions::default();
    let s = elicense::license::import::import_file(&env.app.licenses, &copy, &opts, &mut ())
        .await
        .unwrap();
    assert_eq!((s.issued_this_run, s.skipped, s.failed), (0, good, 1000));
    assert_eq!(store.count_licenses().await.unwrap() as u64, good);
    // Runs that issued nothing left the statistics alone.
    if let Some(pg) = &env.pg {
        assert_eq!(planner_view(&pg.url, None).await.analyzed, 1);
    }
}

/// What PostgreSQL's planner knows of `licenses`, and what autovacuum goes by for it.
struct PlannerView {
    /// Manual ANALYZE runs (autovacuum's are counted apart).
    analyzed: i64,
    /// Autovacuum's ANALYZE runs.
    auto_analyzed: i64,
    /// Rows changed since the table's last full analysis.
    changes: i64,
    /// The planner's row estimate.
    rows: f64,
    /// Given a holder code, the plan of the listing's holder query.
    plan: String,
}

async fn planner_view(url: &str, holder: Option<&str>) -> PlannerView {
    use sqlx::{Connection, Row};
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    let r = sqlx::query(
        "SELECT s.analyze_count, s.autoanalyze_count, s.n_mod_since_analyze, \
         c.reltuples::float8 FROM pg_stat_user_tables s \
         JOIN pg_class c ON c.oid = s.relid WHERE s.relname = 'licenses'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    let mut plan = String::new();
    if let Some(h) = holder {
        let lines: Vec<String> = sqlx::query_scalar(
            "EXPLAIN SELECT * FROM licenses WHERE holder_code = $1 ORDER BY lineage LIMIT 50",
        )
        .bind(h)
        .fetch_all(&mut c)
        .await
        .unwrap();
        plan = lines.join("\n");
    }
    PlannerView {
        analyzed: r.get(0),
        auto_analyzed: r.get(1),
        changes: r.get(2),
        rows: r.get(3),
        plan,
    }
}

/// The operator commands, run as a person would on the server host.
#[test]
fn cli_commands_work_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], stdin: Option<&str>| -> (i32, String, String) {
        use std::io::Write;
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_elicense"));
        c.arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env_remove("ELICENSE_MASTER_KEY")
            .env("RUST_LOG", "warn");
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.unwrap_or("").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    };
    let (code, out, err) = run(&["init", "--region", "340600", "--name", "测试市"], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("admin API token"));
    assert!(dir.path().join("admin.token").exists());
    let (code, _, err) = run(&["init", "--region", "340600", "--name", "again"], None);
    assert_ne!(code, 0);
    assert!(err.contains("GEN-0409"), "{err}");
    // A type registered as data, from a schema file.
    let schema = dir.path().join("schema.json");
    std::fs::write(&schema, r#"{"type":"object","required":["scope"],"properties":{"scope":{"type":"string"}},"additionalProperties":false}"#).unwrap();
    let type_code = format!("{}101", elicense::demo::credit("11340600MB0000011"));
    let (code, out, err) = run(
        &[
            "type",
            "add",
            "--code",
            &type_code,
            "--name",
            "食品经营许可证",
            "--schema",
            schema.to_str().unwrap(),
            "--holder-kind",
            "organisation",
            "--validity-years",
            "5",
            "--disclosable",
            "scope",
        ],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    let (_, out, _) = run(&["type", "list"], None);
    assert!(
        out.contains(&type_code) && out.contains("居民身份证"),
        "{out}"
    );
    let authority = elicense::demo::credit("12340600MB0000041");
    let (code, out, err) = run(
        &[
            "authority",
            "add",
            "--code",
            &authority,
            "--name",
            "市场监督管理局",
            "--types",
            &type_code,
        ],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    let (_, pem, _) = run(&["authority", "cert", "--code", &authority], None);
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    // Issue from standard input, show, suspend, list by status.
    let holder = elicense::demo::credit("92340600MA0000011");
    let req = format!(
        r#"{{"type":"{type_code}","issuer":"{authority}","number":"JY1","holder":{{"name":"某某餐饮店","code":"{holder}","code_type":"001"}},"fields":{{"scope":"热食类"}}}}"#
    );
    let (code, out, err) = run(&["license", "issue", "-"], Some(&req));
    assert_eq!(code, 0, "{out}{err}");
    let issued: Value = serde_json::from_str(&out).unwrap();
    let id = issued["id"].as_str().unwrap();
    let (code, out, _) = run(&["license", "show", id], None);
    assert_eq!(code, 0);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert!(
        shown["events"][0]["actor"]
            .as_str()
            .unwrap()
            .starts_with("cli:")
    );
    let (code, out, err) = run(
        &[
            "license",
            "status",
            id,
            "--set",
            "suspended",
            "--reason",
            "检查",
        ],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("suspended"));
    let (_, out, _) = run(&["license", "list", "--status", "suspended"], None);
    assert!(out.contains(id), "{out}");
    let (code, _, err) = run(
        &["license", "status", id, "--set", "expired", "--reason", "x"],
        None,
    );
    assert_ne!(code, 0);
    assert!(err.contains("LIC-0006"), "{err}");
    // Amend from a file: a new version.
    let amend = dir.path().join("amend.json");
    std::fs::write(
        &amend,
        r#"{"fields":{"scope":"热食类、冷食类"},"reason":"经营范围变更"}"#,
    )
    .unwrap();
    let (code, out, err) = run(&["license", "amend", id, amend.to_str().unwrap()], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(".002."), "{out}");
    // PKI exports.
    let (code, root, _) = run(&["pki", "root"], None);
    assert_eq!(code, 0);
    assert!(root.contains("BEGIN CERTIFICATE"));
    let crl = dir.path().join("crl.pem");
    let (code, _, _) = run(
        &["pki", "crl", "--pem", "--out", crl.to_str().unwrap()],
        None,
    );
    assert_eq!(code, 0);
    assert!(
        std::fs::read_to_string(&crl)
            .unwrap()
            .contains("BEGIN X509 CRL")
    );
    let (code, out, _) = run(&["token", "create", "--name", "ops"], None);
    assert_eq!(code, 0);
    assert!(out.trim().starts_with("elt_"));
    // Bad input gets a coded error, not a panic.
    let (code, _, err) = run(&["license", "issue", "-"], Some("{not json"));
    assert_ne!(code, 0);
    assert!(err.contains("not a valid license request"), "{err}");
    let (code, _, err) = run(&["license", "show", "1.2.156.3005.2.x"], None);
    assert_ne!(code, 0);
    assert!(err.contains("LIC-0001"), "{err}");
}

mod mtls {
    use super::common::{Env, Identity};
    use serde_json::{Value, json};

    crate::both_backends!(
        verification_over_mutual_tls,
        holder_grants_release_exactly_what_they_say,
        receipts_verify_offline_and_fail_on_any_change,
        concurrent_first_verifications_all_succeed,
        two_regions_recognise_each_other,
        show_codes_name_the_license_and_release_what_they_disclose,
        malformed_verification_requests_get_coded_4xx
    );

    /// Every kind of malformed request to the verification route, over mutual TLS with a good
    /// client certificate: a 4xx with its stable code, never a 5xx; each refusal is audited.
    async fn malformed_verification_requests_get_coded_4xx(env: Env) {
        let license = env.issue(160).await;
        let id = license["id"].as_str().unwrap().to_string();
        let police = register(&env, "police", true, &["sex"]).await;
        let server = env.start_tls().await;
        let before = env.app.store.audit_page(0, 100_000).await.unwrap().len();
        let ok = |extra: Value| {
            let mut v = json!({"matter_code": "M", "case_number": "C"});
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            v.to_string().into_bytes()
        };
        let nested = format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes();
        let huge = format!(
            "{{\"matter_code\":\"M\",\"case_number\":\"C\",\"license_id\":\"{}\"}}",
            "1".repeat(env.app.config.max_body_bytes)
        )
        .into_bytes();
        let json = "application/json";
        let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
            (
                "truncated JSON",
                json,
                b"{\"matter_code\":".to_vec(),
                400,
                "REQ-0001",
            ),
            ("empty body", json, Vec::new(), 400, "REQ-0001"),
            (
                "not UTF-8",
                json,
                vec![b'{', 0xff, 0xfe, b'}'],
                400,
                "REQ-0001",
            ),
            ("an array", json, b"[]".to_vec(), 400, "REQ-0001"),
            ("nested 5,000 deep", json, nested, 400, "REQ-0001"),
            (
                "text/plain",
                "text/plain",
                ok(json!({"license_id": id})),
                400,
                "REQ-0001",
            ),
            (
                "no content type",
                "",
                ok(json!({"license_id": id})),
                400,
                "REQ-0001",
            ),
            (
                "unknown field",
                json,
                ok(json!({"license_id": id, "why": 1})),
                400,
                "REQ-0001",
            ),
            (
                "number for a string",
                json,
                ok(json!({"license_id": 7})),
                400,
                "REQ-0001",
            ),
            (
                "no matter code",
                json,
                json!({"case_number": "C", "license_id": id})
                    .to_string()
                    .into_bytes(),
                400,
                "REQ-0001",
            ),
            ("body over the limit", json, huge, 413, "REQ-0002"),
            (
                "empty matter code",
                json,
                json!({"matter_code": "", "case_number": "C", "license_id": id})
                    .to_string()
                    .into_bytes(),
                422,
                "LIC-0002",
            ),
            (
                "control character in the case number",
                json,
                json!({"matter_code": "M", "case_number": "C\u{1}", "license_id": id})
                    .to_string()
                    .into_bytes(),
                422,
                "LIC-0002",
            ),
            (
                "65-character case number",
                json,
                json!({"matter_code": "M", "case_number": "c".repeat(65), "license_id": id})
                    .to_string()
                    .into_bytes(),
                422,
                "LIC-0002",
            ),
            ("no license named", json, ok(json!({})), 422, "LIC-0002"),
            (
                "type alone",
                json,
                ok(json!({"type": license["type"]})),
                422,
                "LIC-0002",
            ),
            (
                "id and number at once",
                json,
                ok(json!({"license_id": id, "type": license["type"], "number": license["number"]})),
                422,
                "LIC-0002",
            ),
            (
                "malformed license id",
                json,
                ok(json!({"license_id": "1.2.3"})),
                400,
                "LIC-0001",
            ),
            (
                "unknown number",
                json,
                ok(json!({"type": license["type"], "number": "ZZ404"})),
                404,
                "LIC-0004",
            ),
            (
                "a 100 KB show code",
                json,
                ok(json!({"show_code": format!("EL1:{}", "0".repeat(100_000))})),
                400,
                "SHW-0001",
            ),
        ];
        // Those that got past the body's parsing reach the handler, which audits its refusals.
        let handled = cases.iter().filter(|c| !c.4.starts_with("REQ-")).count();
        for (what, content_type, body, status, code) in cases {
            let (s, e) = server
                .call_raw(
                    Some(&police),
                    "POST",
                    "/v1/verifications",
                    content_type,
                    &body,
                )
                .await;
            assert_eq!(
                (s, e["code"].as_str().unwrap_or("")),
                (status, code),
                "{what}: {e}"
            );
        }
        // Wrong methods and paths on the TLS listener.
        let (s, e) = server
            .call(Some(&police), "GET", "/v1/verifications", None)
            .await;
        assert_eq!((s, e["code"].clone()), (405, json!("REQ-0405")), "{e}");
        let (s, e) = server
            .call(Some(&police), "POST", "/v1/verification", None)
            .await;
        assert_eq!((s, e["code"].clone()), (404, json!("REQ-0404")), "{e}");
        // The refusals that reached the handler are in the log, and the log is whole.
        let log = env.app.store.audit_page(0, 100_000).await.unwrap();
        let refused = log[before..]
            .iter()
            .filter(|e| e.action == "verification.refused")
            .count();
        assert_eq!(refused, handled);
        assert_eq!(
            elicense::audit::verify(&env.app.store, &env.app.pki)
                .await
                .unwrap()
                .problem,
            None
        );
    }

    /// A show code for `license` with `fields` disclosed, made by its holder.
    async fn show_code_of(env: &Env, license: &Value, fields: &[&str]) -> String {
        let token = env
            .holder_token(license["holder"]["code"].as_str().unwrap())
            .await;
        let (s, sc) = env
            .call_as(
                &token,
                "POST",
                "/v1/holder/show-codes",
                Some(&json!({"license_id": license["id"], "fields": fields})),
            )
            .await;
        assert_eq!(s, axum::http::StatusCode::CREATED, "{sc}");
        sc["code"].as_str().unwrap().to_string()
    }

    /// A case system given a show code at the counter verifies it over mutual TLS: the code
    /// names the license, and what the holder disclosed in it is released within the client's
    /// scope, without a grant; a bad, foreign-untrusted or expired code is refused by code.
    async fn show_codes_name_the_license_and_release_what_they_disclose(env: Env) {
        let license = env.issue(150).await;
        let id = license["id"].as_str().unwrap().to_string();
        let code = show_code_of(&env, &license, &["sex"]).await;
        let counter = register(
            &env,
            "counter",
            false,
            &["sex", "birth_date", "holder_name"],
        )
        .await;
        let server = env.start_tls().await;
        let ask =
            |code: &str| json!({"matter_code": "M-7", "case_number": "2026-7", "show_code": code});
        let released = |v: &Value| {
            let mut k: Vec<String> = v["fields"].as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let (s, v) = server
            .call(
                Some(&counter),
                "POST",
                "/v1/verifications",
                Some(&ask(&code)),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            (
                v["license_id"].clone(),
                v["authentic"].clone(),
                v["status"].clone()
            ),
            (json!(id), json!(true), json!("valid")),
            "{v}"
        );
        // The code disclosed holder_name (the type's minimum) and sex; birth_date is in scope
        // but not disclosed, address neither.
        assert_eq!(
            released(&v),
            vec!["holder_name".to_string(), "sex".to_string()],
            "{v}"
        );
        assert_eq!(v["basis"], "show_code");
        assert_eq!(v["fields"]["sex"], license["fields"]["sex"]);
        let withheld = v["fields_withheld"].as_array().unwrap();
        assert!(withheld.contains(&json!("birth_date")) && withheld.contains(&json!("address")));
        let log = env.app.store.audit_page(0, 1000).await.unwrap();
        let last = log
            .iter()
            .rev()
            .find(|e| e.action == "verification")
            .unwrap();
        assert_eq!(
            (last.actor.as_str(), last.subject.as_str()),
            ("counter", id.as_str())
        );
        assert!(
            last.details.contains("\"basis\":\"show_code\"")
                && last.details.contains("\"show_code\":\""),
            "{}",
            last.details
        );
        // The receipt states the show-code basis.
        let (s, c) = env
            .call(
                "POST",
                "/v1/receipts/verify",
                Some(&json!({"receipt": v["receipt"]})),
            )
            .await;
        assert_eq!(
            (s, c["payload"]["basis"].clone()),
            (axum::http::StatusCode::OK, json!("show_code")),
            "{c}"
        );
        // The same license by its id: no grant, so nothing.
        let by_id = json!({"matter_code": "M-7", "case_number": "2026-7", "license_id": id});
        let (_, v) = server
            .call(Some(&counter), "POST", "/v1/verifications", Some(&by_id))
            .await;
        assert_eq!(
            (released(&v), v["basis"].clone()),
            (Vec::<String>::new(), json!("none")),
            "{v}"
        );

        // A show code and an identifier at once; not a show code; an altered one; one of a
        // region we do not trust; an expired one.
        let both =
            json!({"matter_code": "M", "case_number": "C", "show_code": code, "license_id": id});
        let (s, e) = server
            .call(Some(&counter), "POST", "/v1/verifications", Some(&both))
            .await;
        assert_eq!((s, e["code"].clone()), (422, json!("LIC-0002")), "{e}");
        for garbage in ["EL1:", "EL1:!!!!", "HC1:6BFOXN", ""] {
            let (s, e) = server
                .call(
                    Some(&counter),
                    "POST",
                    "/v1/verifications",
                    Some(&ask(garbage)),
                )
                .await;
            assert_eq!(
                (s, e["code"].clone()),
                (400, json!("SHW-0001")),
                "{garbage:?}: {e}"
            );
        }
        let mut codes_seen = std::collections::BTreeSet::new();
        for i in [6, code.len() / 2, code.len() - 2] {
            let mut b = code.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let (s, e) = server
                .call(
                    Some(&counter),
                    "POST",
                    "/v1/verifications",
                    Some(&ask(&String::from_utf8(b).unwrap())),
                )
                .await;
            assert_eq!(s, 400, "char {i}: {e}");
            codes_seen.insert(e["code"].as_str().unwrap().to_string());
        }
        assert!(
            codes_seen
                .iter()
                .all(|c| c == "SHW-0001" || c == "SHW-0002"),
            "{codes_seen:?}"
        );
        let other = Env::new(super::common::Backend::Sqlite).await.unwrap();
        let theirs = other.issue(151).await;
        let foreign = show_code_of(&other, &theirs, &["sex"]).await;
        let (s, e) = server
            .call(
                Some(&counter),
                "POST",
                "/v1/verifications",
                Some(&ask(&foreign)),
            )
            .await;
        assert_eq!((s, e["code"].clone()), (400, json!("SHW-0002")), "{e}");
        env.clock
            .set(super::common::T0 + elicense::present::PHONE_SECONDS + 1);
        let (s, e) = server
            .call(
                Some(&counter),
                "POST",
                "/v1/verifications",
                Some(&ask(&code)),
            )
            .await;
        assert_eq!((s, e["code"].clone()), (400, json!("SHW-0003")), "{e}");
        let refused = env.app.store.audit_page(0, 1000).await.unwrap();
        let last = refused.last().unwrap();
        assert_eq!(
            (last.action.as_str(), last.subject.as_str()),
            ("verification.refused", "show_code")
        );
        assert!(last.details.contains("SHW-0003"), "{}", last.details);
    }

    /// Region A (this backend) and region B (SQLite), two services, two PKIs, on loopback.
    async fn two_regions_recognise_each_other(a: Env) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let b_authority = elicense::demo::credit("11340100MB0000011");
        let b = Env::with_region(
            super::common::Backend::Sqlite,
            "340100",
            vec![(
                b_authority.clone(),
                "合肥市公安局".into(),
                vec![elicense::license::types::RESIDENT_ID_CARD.into()],
            )],
            Some(port),
        )
        .await
        .unwrap();
        let b_server = b.start_tls().await;
        // A license of region B.
        let mut rng = elicense::demo::Rng::new(77);
        let req = elicense::demo::request(
            &mut rng,
            elicense::license::types::RESIDENT_ID_CARD,
            &b_authority,
            1,
        );
        let (s, license) = b.call("POST", "/v1/licenses", Some(&req)).await;
        assert_eq!(s, axum::http::StatusCode::CREATED, "{license}");
        let id = license["id"].as_str().unwrap().to_string();
        // B registers A as a client; A imports B's trust list with the pinned root and that bundle.
        let bundle = elicense::verify::clients::register(
            &b.app,
            elicense::verify::clients::NewClient {
                id: "region-340600".into(),
                name: "测试市 340600".into(),
                department: "mutual recognition".into(),
                types: vec![elicense::license::types::RESIDENT_ID_CARD.into()],
                fields: vec!["sex".into(), "birth_date".into()],
                statutory: true,
                days: Some(365),
            },
        )
        .await
        .unwrap();
        let tl = elicense::verify::trust::export(&b.app).await.unwrap();
        let b_root = b.app.pki.root().await.unwrap().der;
        let pin = hex::encode(ring::digest::digest(&ring::digest::SHA256, &b_root));
        let der = |pem: &str| {
            x509_parser::pem::parse_x509_pem(pem.as_bytes())
                .unwrap()
                .1
                .contents
        };
        // A wrong pin and a tampered list are refused.
        let wrong = elicense::verify::trust::import(&a.app, &tl, &"00".repeat(32), None).await;
        assert_eq!(wrong.unwrap_err().code(), "TRL-0001");
        let mut tampered = tl.clone();
        let n = tampered.len();
        let swap = if &tl[n - 10..n - 9] == "A" { "B" } else { "A" };
        tampered.replace_range(n - 10..n - 9, swap);
        assert_eq!(
            elicense::verify::trust::import(&a.app, &tampered, &pin, None)
                .await
                .unwrap_err()
                .code(),
            "TRL-0001"
        );
        let imported = elicense::verify::trust::import(
            &a.app,
            &tl,
            &pin,
            Some((&der(&bundle.certificate), &der(&bundle.private_key))),
        )
        .await
        .unwrap();
        assert_eq!(
            (imported.code.as_str(), imported.authorities.len()),
            ("340100", 1)
        );

        // A's case system verifies B's license through A.
        let case = register(&a, "case-a", true, &["sex"]).await;
        let a_server = a.start_tls().await;
        // The certificate B issued to A is for B's endpoint: at A it comes from another
        // region's client CA and is refused.
        let (s, v) = a_server
            .call(
                Some(&Identity {
                    cert_pem: bundle.certificate.clone(),
                    key_pem: bundle.private_key.clone(),
                }),
                "POST",
                "/v1/verifications",
                Some(&json!({"matter_code": "M", "case_number": "C-9", "license_id": id})),
            )
            .await;
        assert_eq!((s, v["code"].clone()), (401, json!("MTLS-0002")), "{v}");
        let ask = json!({"matter_code": "M", "case_number": "C-9", "license_id": id});
        let (s, v) = a_server
            .call(Some(&case), "POST", "/v1/verifications", Some(&ask))
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            (
                v["region"].clone(),
                v["authentic"].clone(),
                v["status"].clone()
            ),
            (json!("340100"), json!(true), json!("valid")),
            "{v}"
        );
        let mut released: Vec<String> = v["fields"].as_object().unwrap().keys().cloned().collect();
        released.sort();
        assert_eq!(
            released,
            vec!["sex".to_string()],
            "B released sex and birth_date to A; A's client may see sex only"
        );
        // B's receipt verifies at A (A now trusts B's root), and A's own receipt too.
        let (s, c) = a
            .call(
                "POST",
                "/v1/receipts/verify",
                Some(&json!({"receipt": v["foreign_receipt"]})),
            )
            .await;
        assert_eq!(
            (s, c["payload"]["client"].clone()),
            (axum::http::StatusCode::OK, json!("region-340600")),
            "{c}"
        );
        let (s, _) = a
            .call(
                "POST",
                "/v1/receipts/verify",
                Some(&json!({"receipt": v["receipt"]})),
            )
            .await;
        assert_eq!(s, axum::http::StatusCode::OK);

        // A show code of B's holder, presented to a case system of A without a statutory
        // basis: checked against B's imported trust list, the live status asked of B, and
        // what the holder disclosed released within A's client's scope.
        let counter = register(&a, "counter-a", false, &["holder_name", "birth_date"]).await;
        let (_, v) = a_server
            .call(Some(&counter), "POST", "/v1/verifications", Some(&ask))
            .await;
        assert_eq!(
            (v["fields"].clone(), v["basis"].clone()),
            (json!({}), json!("none")),
            "{v}"
        );
        let code = show_code_of(&b, &license, &["sex"]).await;
        let by_code = json!({"matter_code": "M", "case_number": "C-10", "show_code": code});
        let (s, v) = a_server
            .call(Some(&counter), "POST", "/v1/verifications", Some(&by_code))
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            (
                v["region"].clone(),
                v["license_id"].clone(),
                v["status"].clone(),
                v["basis"].clone()
            ),
            (
                json!("340100"),
                json!(id),
                json!("valid"),
                json!("show_code")
            ),
            "{v}"
        );
        assert_eq!(
            v["fields"],
            json!({"holder_name": license["holder"]["name"]}),
            "disclosed holder_name and sex; A's client may see holder_name, not sex"
        );

        // Revoked in B: revoked in A at once.
        b.call(
            "POST",
            &format!("/v1/licenses/{id}/status"),
            Some(&json!({"status": "revoked", "reason": "吊销"})),
        )
        .await;
        let (_, v) = a_server
            .call(Some(&case), "POST", "/v1/verifications", Some(&ask))
            .await;
        assert_eq!(v["status"], "revoked", "{v}");

        // A license id of B that does not exist: not found, through B.
        let missing = elicense::license::id::LicenseId::new(
            elicense::license::types::RESIDENT_ID_CARD,
            &b_authority,
            "202699999999",
            1,
        )
        .unwrap();
        let (s, e) = a_server.call(Some(&case), "POST", "/v1/verifications", Some(&json!({"matter_code": "M", "case_number": "C", "license_id": missing.to_string()}))).await;
        assert_eq!((s, e["code"].clone()), (404, json!("LIC-0004")), "{e}");
        // B stopped: a clear 503, not a hang or a 500.
        drop(b_server);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let (s, e) = a_server
            .call(Some(&case), "POST", "/v1/verifications", Some(&ask))
            .await;
        assert_eq!((s, e["code"].clone()), (503, json!("TRL-0002")), "{e}");
        assert_eq!(
            elicense::audit::verify(&a.app.store, &a.app.pki)
                .await
                .unwrap()
                .problem,
            None
        );
    }

    /// Many clients at once on a fresh node: the first verifications race to create the service
    /// signer and append to the audit log (SQLite once answered "database is locked" here).
    async fn concurrent_first_verifications_all_succeed(env: Env) {
        let license = env.issue(120).await;
        let police = register(&env, "traffic-police", true, &["sex"]).await;
        let server = std::sync::Arc::new(env.start_tls().await);
        let req = json!({"matter_code": "m", "case_number": "c", "license_id": license["id"]});
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (server, police, req) = (server.clone(), police.clone(), req.clone());
            tasks.push(tokio::spawn(async move {
                server
                    .call(Some(&police), "POST", "/v1/verifications", Some(&req))
                    .await
            }));
        }
        for t in tasks {
            let (s, v) = t.await.unwrap();
            assert_eq!(s, 200, "{v}");
        }
        let signers = match &env.app.store {
            elicense::store::Store::Sqlite(p, _) => sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM certificates WHERE kind = 'signer'",
            )
            .fetch_one(p)
            .await
            .unwrap(),
            elicense::store::Store::Postgres(p) => sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM certificates WHERE kind = 'signer'",
            )
            .fetch_one(p)
            .await
            .unwrap(),
        };
        assert_eq!(signers, 1, "one service signer, not one per racing request");
        let r = elicense::audit::verify(&env.app.store, &env.app.pki)
            .await
            .unwrap();
        assert_eq!(r.problem, None);
        assert!(r.entries >= 33);
    }

    async fn receipts_verify_offline_and_fail_on_any_change(env: Env) {
        use base64::Engine;
        let license = env.issue(110).await;
        let police = register(&env, "traffic-police", true, &["sex", "holder_name"]).await;
        let server = env.start_tls().await;
        let req = json!({"matter_code": "340600-JD-9", "case_number": "2026-77", "license_id": license["id"]});
        let (s, v) = server
            .call(Some(&police), "POST", "/v1/verifications", Some(&req))
            .await;
        assert_eq!(s, 200, "{v}");
        let receipt = v["receipt"].as_str().unwrap().to_string();
        assert!(receipt.starts_with("ELR2:"));

        // Offline, with the CLI and only the root certificate (no data directory at all).
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root.pem");
        std::fs::write(&root, &server.root_pem).unwrap();
        let check = |text: &str| {
            let f = dir.path().join("receipt.txt");
            std::fs::write(&f, text).unwrap();
            std::process::Command::new(env!("CARGO_BIN_EXE_elicense"))
                .arg("--data-dir")
                .arg(dir.path().join("no-such-dir"))
                .args(["receipt", "verify"])
                .arg(&f)
                .arg("--root")
                .arg(&root)
                .output()
                .unwrap()
        };
        let ok = check(&receipt);
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
        let out: String = String::from_utf8_lossy(&ok.stdout).into();
        assert!(
            out.contains("\"case_number\": \"2026-77\"")
                && out.contains("\"basis\": \"statutory\""),
            "{out}"
        );
        // The whole verification answer works as input too.
        assert!(check(&v.to_string()).status.success());
        assert!(
            !dir.path().join("no-such-dir").exists(),
            "offline check must not open a deployment"
        );

        // Any changed byte breaks it: every byte of the statements and of the COSE Receipt,
        // through the verification the CLI uses...
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let root_der = env.app.pki.root().await.unwrap().der;
        let (statements, cose) = receipt[5..].split_once('.').unwrap();
        let parts = [b64.decode(statements).unwrap(), b64.decode(cose).unwrap()];
        let flipped = |which: usize, i: usize| {
            let mut p = parts.clone();
            p[which][i] ^= 0x01;
            format!("ELR2:{}.{}", b64.encode(&p[0]), b64.encode(&p[1]))
        };
        for (which, part) in parts.iter().enumerate() {
            for i in 0..part.len() {
                assert!(
                    elicense::verify::receipt::verify(
                        &flipped(which, i),
                        std::slice::from_ref(&root_der)
                    )
                    .is_err(),
                    "part {which} byte {i}"
                );
            }
        }
        // ...and a sample through the CLI itself.
        for (which, part) in parts.iter().enumerate() {
            let mut positions: Vec<usize> = (0..part.len()).step_by(23).collect();
            positions.push(part.len() - 1);
            for i in positions {
                let out = check(&flipped(which, i));
                assert_eq!(
                    out.status.code(),
                    Some(1),
                    "part {which} byte {i} changed and the receipt still verified"
                );
            }
        }
        // Receipts signed together: each verifies alone, and none with another's statements.
        let leaves: Vec<Vec<u8>> = (0..7)
            .map(|i| {
                serde_json::to_vec(&json!({"verified_at": env.app.clock.unix(), "n": i})).unwrap()
            })
            .collect();
        let refs: Vec<&[u8]> = leaves.iter().map(Vec::as_slice).collect();
        let batch = elicense::verify::receipt::sign_batch(&env.app.pki, &refs)
            .await
            .unwrap();
        for (i, text) in batch.iter().enumerate() {
            let c =
                elicense::verify::receipt::verify(text, std::slice::from_ref(&root_der)).unwrap();
            assert_eq!(c.payload["n"], i);
            let (_, cose) = text[5..].split_once('.').unwrap();
            let other = (i + 1) % batch.len();
            let swapped = format!("ELR2:{}.{cose}", b64.encode(&leaves[other]));
            assert!(
                elicense::verify::receipt::verify(&swapped, std::slice::from_ref(&root_der))
                    .is_err(),
                "receipt {i} with the statements of {other}"
            );
        }
        // Receipts of the first form (one COSE_Sign1 over the statements) still verify, and
        // fail on any changed byte.
        let v1 = elicense::verify::receipt::sign_x5chain(
            &env.app.pki,
            &serde_json::to_vec(&json!({"v": 1, "verified_at": env.app.clock.unix()})).unwrap(),
        )
        .await
        .unwrap();
        let v1_text = |b: &[u8]| format!("ELR1:{}", b64.encode(b));
        let c = elicense::verify::receipt::verify(&v1_text(&v1), std::slice::from_ref(&root_der))
            .unwrap();
        assert_eq!(c.payload["v"], 1);
        for i in 0..v1.len() {
            let mut b = v1.clone();
            b[i] ^= 0x01;
            assert!(
                elicense::verify::receipt::verify(&v1_text(&b), std::slice::from_ref(&root_der))
                    .is_err(),
                "first form, byte {i}"
            );
        }
        // Another region's root does not vouch for it.
        let other = Env::new(super::common::Backend::Sqlite).await.unwrap();
        std::fs::write(
            &root,
            elicense::pki::pem("CERTIFICATE", &other.app.pki.root().await.unwrap().der),
        )
        .unwrap();
        assert_eq!(check(&receipt).status.code(), Some(1));

        // Online check.
        let (s, c) = env
            .call(
                "POST",
                "/v1/receipts/verify",
                Some(&json!({"receipt": receipt})),
            )
            .await;
        assert_eq!(s, axum::http::StatusCode::OK, "{c}");
        assert_eq!(c["payload"]["license_id"], license["id"]);
        assert_eq!(c["payload"]["fields_sha256"].as_object().unwrap().len(), 2);
        let (s, e) = env
            .call(
                "POST",
                "/v1/receipts/verify",
                Some(&json!({"receipt": "ELR1:AAAA"})),
            )
            .await;
        assert_eq!(
            (s, e["code"].clone()),
            (axum::http::StatusCode::BAD_REQUEST, json!("RCP-0001"))
        );
    }

    async fn register(env: &Env, id: &str, statutory: bool, fields: &[&str]) -> Identity {
        let b = elicense::verify::clients::register(
            &env.app,
            elicense::verify::clients::NewClient {
                id: id.into(),
                name: format!("{id} system"),
                department: "示范市政务服务中心".into(),
                types: vec![elicense::license::types::RESIDENT_ID_CARD.into()],
                fields: fields.iter().map(|f| f.to_string()).collect(),
                statutory,
                days: Some(365),
            },
        )
        .await
        .unwrap();
        Identity {
            cert_pem: b.certificate,
            key_pem: b.private_key,
        }
    }

    async fn holder_grants_release_exactly_what_they_say(env: Env) {
        let license = env.issue(100).await;
        let id = license["id"].as_str().unwrap().to_string();
        let holder = license["holder"]["code"].as_str().unwrap().to_string();
        let case = register(
            &env,
            "case-system",
            false,
            &["sex", "birth_date", "holder_name"],
        )
        .await;
        let server = env.start_tls().await;
        let verify = |matter: &str| json!({"matter_code": matter, "case_number": "2026-1", "license_id": id});
        let released = |v: &Value| {
            let mut k: Vec<String> = v["fields"].as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let (_, v) = server
            .call(
                Some(&case),
                "POST",
                "/v1/verifications",
                Some(&verify("M-1")),
            )
            .await;
        assert_eq!(
            (released(&v), v["basis"].clone()),
            (Vec::<String>::new(), json!("none")),
            "{v}"
        );

        // The holder signs in (development provider) and sees their license.
        let (s, session) = env
            .call(
                "POST",
                "/v1/holder/sessions",
                Some(&json!({"holder_code": holder})),
            )
            .await;
        assert_eq!(s, axum::http::StatusCode::CREATED, "{session}");
        let token = session["token"].as_str().unwrap().to_string();
        let (s, mine) = env
            .call_as(&token, "GET", "/v1/holder/licenses", None)
            .await;
        assert_eq!(s, axum::http::StatusCode::OK);
        assert!(
            mine.as_array()
                .unwrap()
                .iter()
                .any(|l| l["id"] == id.as_str())
        );
        let (s, e) = env
            .call_as("elh_nope", "GET", "/v1/holder/grants", None)
            .await;
        assert_eq!(
            (s, e["code"].clone()),
            (axum::http::StatusCode::UNAUTHORIZED, json!("AUTH-0001"))
        );

        // A grant to the client: exactly the granted fields its scope also allows.
        let t0 = super::common::T0;
        let grant = |extra: Value| {
            let mut g =
                json!({"license_id": id, "fields": ["sex", "address"], "valid_until": t0 + 3600});
            for (k, v) in extra.as_object().unwrap() {
                g[k] = v.clone();
            }
            g
        };
        let (s, g) = env
            .call_as(
                &token,
                "POST",
                "/v1/holder/grants",
                Some(&grant(json!({"client_id": "case-system"}))),
            )
            .await;
        assert_eq!(s, axum::http::StatusCode::CREATED, "{g}");
        let (_, v) = server
            .call(
                Some(&case),
                "POST",
                "/v1/verifications",
                Some(&verify("M-1")),
            )
            .await;
        assert_eq!(released(&v), vec!["sex".to_string()], "{v}");
        assert_eq!(v["basis"], "grant");
        assert_eq!(v["grants"], json!([g["id"]]));
        assert!(
            v["fields_withheld"]
                .as_array()
                .unwrap()
                .contains(&json!("address"))
        );

        // Withdrawn: nothing again.
        let (s, _) = env
            .call_as(
                &token,
                "DELETE",
                &format!("/v1/holder/grants/{}", g["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(s, axum::http::StatusCode::NO_CONTENT);
        let (_, v) = server
            .call(
                Some(&case),
                "POST",
                "/v1/verifications",
                Some(&verify("M-1")),
            )
            .await;
        assert!(released(&v).is_empty(), "{v}");
        let (s, _) = env
            .call_as(
                &token,
                "DELETE",
                &format!("/v1/holder/grants/{}", g["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(s, axum::http::StatusCode::NOT_FOUND);

        // Single use: once.
        env.call_as(
            &token,
            "POST",
            "/v1/holder/grants",
            Some(&grant(
                json!({"client_id": "case-system", "fields": ["birth_date"], "single_use": true}),
            )),
        )
        .await;
        let (_, v) = server
            .call(
                Some(&case),
                "POST",
                "/v1/verifications",
                Some(&verify("M-1")),
            )
            .await;
        assert_eq!(released(&v), vec!["birth_date".to_string()]);
        let (_, v) = server
            .call(
                Some(&case),
                "POST",
                "/v1/verifications",
                Some(&verify("M-1")),
            )
            .await;
        assert!(released(&v).is_empty(), "single use grant used twice: {v}");

        // A grant for a matter: any client on that matter, no other matter.
        env.call_as(
            &token,
            "POST",
            "/v1/holder/grants",
            Some(&grant(
                json!({"matter_code": "M-2", "fields": ["holder_name"]}),
            )),
        )
        .await;
        let (_, v) = server
            .call(
                Some(&case),
                "POST",
                "/v1/verifications",
                Some(&verify("M-2")),
            )
            .await;
        assert_eq!(released(&v), vec!["holder_name".to_string()]);
        let (_, v) = server
            .call(
                Some(&case),
                "POST",
                "/v1/verifications",
                Some(&verify("M-3")),
            )
            .await;
        assert!(released(&v).is_empty());

        // Expiry.
        env.call_as(
            &token,
            "POST",
            "/v1/holder/grants",
            Some(&grant(
                json!({"client_id": "case-system", "valid_until": t0 + 60}),
            )),
        )
        .await;
        env.clock.set(t0 + 120);
        let (_, v) = server
            .call(
                Some(&case),
                "POST",
                "/v1/verifications",
                Some(&verify("M-1")),
            )
            .await;
        assert!(released(&v).is_empty(), "expired grant still applied: {v}");
        env.clock.set(t0);

        // Grants are checked: someone else's license, both targets, no target, past time.
        let (_, other) = env
            .call(
                "POST",
                "/v1/holder/sessions",
                Some(&json!({"holder_code": "11010519491231002X"})),
            )
            .await;
        let other = other["token"].as_str().unwrap().to_string();
        let (s, e) = env
            .call_as(
                &other,
                "POST",
                "/v1/holder/grants",
                Some(&grant(json!({"client_id": "case-system"}))),
            )
            .await;
        assert_eq!(
            (s, e["code"].clone()),
            (axum::http::StatusCode::NOT_FOUND, json!("LIC-0004"))
        );
        for bad in [
            json!({"client_id": "case-system", "matter_code": "M"}),
            json!({}),
            json!({"client_id": "case-system", "valid_until": t0 - 1}),
            json!({"client_id": "nobody"}),
        ] {
            let (s, e) = env
                .call_as(
                    &token,
                    "POST",
                    "/v1/holder/grants",
                    Some(&grant(bad.clone())),
                )
                .await;
            assert_eq!(
                (s, e["code"].clone()),
                (
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    json!("LIC-0002")
                ),
                "{bad}: {e}"
            );
        }

        // The holder sees every access: who, when, why, which fields, on what basis.
        let (_, acc) = env
            .call_as(&token, "GET", "/v1/holder/accesses", None)
            .await;
        let acc = acc.as_array().unwrap();
        assert_eq!(acc.len(), 8, "{acc:?}");
        assert!(
            acc.iter()
                .all(|a| a["client"] == "case-system" && a["license_id"] == id.as_str())
        );
        assert!(
            acc.iter().any(
                |a| a["details"]["basis"] == "grant" && a["details"]["case_number"] == "2026-1"
            )
        );
        let (_, theirs) = env
            .call_as(&other, "GET", "/v1/holder/accesses", None)
            .await;
        assert!(theirs.as_array().unwrap().is_empty());
        assert_eq!(
            elicense::audit::verify(&env.app.store, &env.app.pki)
                .await
                .unwrap()
                .problem,
            None
        );
    }

    async fn verification_over_mutual_tls(env: Env) {
        let license = env.issue(60).await;
        let id = license["id"].as_str().unwrap().to_string();
        let case = Identity::clone(
            &register(
                &env,
                "case-system",
                false,
                &["sex", "birth_date", "holder_name"],
            )
            .await,
        );
        let police = register(&env, "traffic-police", true, &["*"]).await;
        // A certificate that expired: issued a year and a half ago, valid for 365 days.
        env.clock.set(super::common::T0 - 550 * 86_400);
        let old = register(&env, "old-system", false, &["sex"]).await;
        env.clock.set(super::common::T0);
        // A certificate from another CA (self-signed, clientAuth).
        let other = {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
            p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
            let cert = p.self_signed(&key).unwrap();
            Identity {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            }
        };
        // A certificate the region root issued directly, clientAuth and all: not from the
        // region's client CA, so no client certificate.
        let root_issued = {
            let root = env.app.pki.root().await.unwrap();
            let signer = env
                .app
                .pki
                .keys()
                .signer(root.key().unwrap())
                .await
                .unwrap();
            let issuer = rcgen::Issuer::from_ca_cert_der(
                &root.der.clone().into(),
                elicense::pki::keystore::RcgenSigner(signer.as_ref()),
            )
            .unwrap();
            let key = rcgen::KeyPair::generate().unwrap();
            let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
            p.distinguished_name
                .push(rcgen::DnType::CommonName, "case-system");
            p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
            p.not_before =
                time::OffsetDateTime::from_unix_timestamp(super::common::T0 - 86_400).unwrap();
            p.not_after =
                time::OffsetDateTime::from_unix_timestamp(super::common::T0 + 86_400).unwrap();
            let cert = p.signed_by(&key, &issuer).unwrap();
            Identity {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            }
        };
        let server = env.start_tls().await;
        let req =
            json!({"matter_code": "340600-JD-001", "case_number": "2026-000123", "license_id": id});

        // A registered client without a grant: authenticity and status, no personal fields.
        let (s, v) = server
            .call(Some(&case), "POST", "/v1/verifications", Some(&req))
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            (v["authentic"].clone(), v["status"].clone()),
            (json!(true), json!("valid")),
            "{v}"
        );
        assert_eq!(v["basis"], "none");
        assert!(v["fields"].as_object().unwrap().is_empty(), "{v}");
        assert!(
            v["fields_withheld"]
                .as_array()
                .unwrap()
                .contains(&json!("holder_name"))
        );
        assert_eq!(v["client"], "case-system");
        assert_eq!(v["case_number"], "2026-000123");

        // A statutory client sees fields without a grant, limited to its scope; the audit log
        // marks the access statutory.
        let (s, v) = server
            .call(Some(&police), "POST", "/v1/verifications", Some(&req))
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["basis"], "statutory");
        let log = env.app.store.audit_page(0, 1000).await.unwrap();
        let last = log
            .iter()
            .rev()
            .find(|e| e.action == "verification")
            .unwrap();
        assert_eq!(last.actor, "traffic-police");
        assert!(
            last.details.contains("\"basis\":\"statutory\""),
            "{}",
            last.details
        );
        assert_eq!(v["fields"]["holder_name"], license["holder"]["name"]);
        assert_eq!(v["fields"]["address"], license["fields"]["address"]);

        // By type and number, and by type and holder code.
        let by_number = json!({"matter_code": "m", "case_number": "c", "type": license["type"], "number": license["number"]});
        let (s, v) = server
            .call(Some(&case), "POST", "/v1/verifications", Some(&by_number))
            .await;
        assert_eq!((s, v["license_id"].clone()), (200, json!(id)));
        let by_holder = json!({"matter_code": "m", "case_number": "c", "type": license["type"], "holder_code": license["holder"]["code"]});
        let (s, v) = server
            .call(Some(&case), "POST", "/v1/verifications", Some(&by_holder))
            .await;
        assert_eq!((s, v["license_id"].clone()), (200, json!(id)));

        // Refusals, each with its own code.
        let code = |v: &Value| v["code"].as_str().unwrap_or("").to_string();
        let (s, v) = server
            .call(None, "POST", "/v1/verifications", Some(&req))
            .await;
        assert_eq!((s, code(&v)), (401, "MTLS-0001".into()), "{v}");
        let (s, v) = server
            .call(Some(&other), "POST", "/v1/verifications", Some(&req))
            .await;
        assert_eq!((s, code(&v)), (401, "MTLS-0002".into()), "{v}");
        let (s, v) = server
            .call(Some(&root_issued), "POST", "/v1/verifications", Some(&req))
            .await;
        assert_eq!((s, code(&v)), (401, "MTLS-0002".into()), "{v}");
        assert!(
            v["message"].as_str().unwrap_or("").contains("client CA"),
            "{v}"
        );
        let (s, v) = server
            .call(Some(&old), "POST", "/v1/verifications", Some(&req))
            .await;
        assert_eq!((s, code(&v)), (401, "MTLS-0003".into()), "{v}");
        // Out of scope: a driving licence for a client scoped to ID cards.
        let dl = {
            let mut rng = elicense::demo::Rng::new(5);
            let r = elicense::demo::request(
                &mut rng,
                elicense::license::types::DRIVING_LICENCE,
                &env.authority(1),
                61,
            );
            let (_, v) = env.call("POST", "/v1/licenses", Some(&r)).await;
            v["id"].as_str().unwrap().to_string()
        };
        let (s, v) = server
            .call(
                Some(&case),
                "POST",
                "/v1/verifications",
                Some(&json!({"matter_code": "m", "case_number": "c", "license_id": dl})),
            )
            .await;
        assert_eq!((s, code(&v)), (403, "VER-0001".into()), "{v}");
        // Malformed requests.
        let (s, v) = server
            .call(
                Some(&case),
                "POST",
                "/v1/verifications",
                Some(&json!({"matter_code": "", "case_number": "c", "license_id": id})),
            )
            .await;
        assert_eq!((s, code(&v)), (422, "LIC-0002".into()), "{v}");
        let (s, v) = server
            .call(
                Some(&case),
                "POST",
                "/v1/verifications",
                Some(&json!({"matter_code": "m", "case_number": "c"})),
            )
            .await;
        assert_eq!((s, code(&v)), (422, "LIC-0002".into()), "{v}");

        // Revocation while the service runs: the next request is refused.
        elicense::verify::clients::revoke(&env.app, "case-system", "keyCompromise")
            .await
            .unwrap();
        let (s, v) = server
            .call(Some(&case), "POST", "/v1/verifications", Some(&req))
            .await;
        assert_eq!((s, code(&v)), (401, "MTLS-0004".into()), "{v}");
        // The client CA's CRL (where the certificate's distribution point says) lists it; the
        // root's does not, the root did not issue it.
        let case_der = x509_parser::pem::parse_x509_pem(case.cert_pem.as_bytes())
            .unwrap()
            .1
            .contents;
        let (_, case_cert) = x509_parser::parse_x509_certificate(&case_der).unwrap();
        let case_serial = hex::encode(case_cert.raw_serial());
        let dp = case_cert
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::CRLDistributionPoints(d) => {
                    d.points.first().and_then(|p| match &p.distribution_point {
                        Some(x509_parser::extensions::DistributionPointName::FullName(n)) => {
                            n.iter().find_map(|g| match g {
                                x509_parser::extensions::GeneralName::URI(u) => Some(u.to_string()),
                                _ => None,
                            })
                        }
                        _ => None,
                    })
                }
                _ => None,
            })
            .unwrap();
        let path = &dp[dp.find("/v1/").unwrap()..];
        assert!(path.starts_with("/v1/pki/client-ca/"), "{dp}");
        let crl_serials = |der: &[u8]| -> Vec<String> {
            let (_, crl) = x509_parser::parse_x509_crl(der).unwrap();
            crl.iter_revoked_certificates()
                .map(|r| hex::encode(r.raw_serial()))
                .collect()
        };
        let (s, der) = env
            .raw(
                axum::http::Request::get(path)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(s, axum::http::StatusCode::OK);
        assert!(crl_serials(&der).contains(&case_serial));
        let (_, der) = env
            .raw(
                axum::http::Request::get("/v1/pki/crl")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await;
        assert!(!crl_serials(&der).contains(&case_serial));
        let (s, _) = env
            .raw(
                axum::http::Request::get("/v1/pki/client-ca/00/crl")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(s, axum::http::StatusCode::NOT_FOUND);

        // A status change shows at once.
        env.call(
            "POST",
            &format!("/v1/licenses/{id}/status"),
            Some(&json!({"status": "revoked", "reason": "r"})),
        )
        .await;
        let (_, v) = server
            .call(Some(&police), "POST", "/v1/verifications", Some(&req))
            .await;
        assert_eq!(v["status"], "revoked");

        // A record edited behind the service's back is not authentic.
        let lineage = elicense::license::id::LicenseId::parse(&id)
            .unwrap()
            .lineage();
        let tampered =
            |rec: &str| rec.replace(license["holder"]["name"].as_str().unwrap(), "冒名者");
        match &env.app.store {
            elicense::store::Store::Sqlite(p, _) => {
                let rec: String =
                    sqlx::query_scalar("SELECT record FROM licenses WHERE lineage = $1")
                        .bind(&lineage)
                        .fetch_one(p)
                        .await
                        .unwrap();
                sqlx::query("UPDATE licenses SET record = $1 WHERE lineage = $2")
                    .bind(tampered(&rec))
                    .bind(&lineage)
                    .execute(p)
                    .await
                    .unwrap();
            }
            elicense::store::Store::Postgres(p) => {
                let rec: String =
                    sqlx::query_scalar("SELECT record FROM licenses WHERE lineage = $1")
                        .bind(&lineage)
                        .fetch_one(p)
                        .await
                        .unwrap();
                sqlx::query("UPDATE licenses SET record = $1 WHERE lineage = $2")
                    .bind(tampered(&rec))
                    .bind(&lineage)
                    .execute(p)
                    .await
                    .unwrap();
            }
        }
        let (_, v) = server
            .call(Some(&police), "POST", "/v1/verifications", Some(&req))
            .await;
        assert_eq!(
            (v["authentic"].clone(), v["signature"]["valid"].clone()),
            (json!(false), json!(false)),
            "{v}"
        );
        assert!(
            v["fields"].as_object().unwrap().is_empty(),
            "no fields from a record that fails its signature"
        );

        // The plain-HTTP router does not verify: it says a client certificate is needed.
        let (s, b) = env.call("POST", "/v1/verifications", Some(&req)).await;
        assert_eq!(s, axum::http::StatusCode::UNAUTHORIZED);
        assert_eq!(b["code"], "MTLS-0001", "{b}");
    }
}

mod audit {
    use super::common::Env;
    use serde_json::json;

    crate::both_backends!(
        audit_chain_detects_edits_deletions_swaps_and_truncation,
        two_writers_on_one_database_keep_one_chain,
        subject_index_follows_the_log_and_verify_checks_it,
        a_quiet_tail_gets_its_checkpoint_within_the_interval,
    );

    /// Far fewer than 1,000 entries: a checkpoint still covers them once the interval has
    /// passed, so cutting the tail off is detected; a writer started on an unsigned tail (an
    /// earlier run's) signs it within the interval too.
    async fn a_quiet_tail_gets_its_checkpoint_within_the_interval(env: Env) {
        use elicense::audit::{Audit, Entry};
        use std::time::Duration;
        let app = &env.app;
        let within = Duration::from_secs(1);
        let w = Audit::start_with(
            app.store.clone(),
            app.pki.clone(),
            app.clock.clone(),
            within,
        );
        let covered = || async { app.store.last_checkpoint_seq().await.unwrap() };
        let mut last = 0;
        for i in 0..3 {
            last = w
                .append(Entry::new(
                    "quiet",
                    "test",
                    &format!("q{i}"),
                    json!({"i": i}),
                ))
                .await
                .unwrap();
        }
        assert!(
            covered().await < last,
            "not yet: the interval has not passed"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while covered().await < last {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(covered().await, last, "the checkpoint is at the tail");
        let problem = || async {
            elicense::audit::verify(&app.store, &app.pki)
                .await
                .unwrap()
                .problem
        };
        assert_eq!(problem().await, None);
        env.exec(&format!("DELETE FROM audit_log WHERE seq = {last}"))
            .await;
        let p = problem().await.expect("the cut tail is detected");
        assert!(p.contains("were removed"), "{p}");
        drop(w);

        // A tail nobody signed (the entries appended by another writer, which then stopped
        // without signing), and a new writer: it signs that tail once its interval is over.
        env.exec("DELETE FROM audit_checkpoints").await;
        let other = Audit::start_with(
            app.store.clone(),
            app.pki.clone(),
            app.clock.clone(),
            Duration::from_secs(3600),
        );
        let tail = other
            .append(Entry::new("quiet", "test", "q9", json!({})))
            .await
            .unwrap();
        assert!(covered().await < tail);
        let _fresh = Audit::start_with(
            app.store.clone(),
            app.pki.clone(),
            app.clock.clone(),
            within,
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while covered().await < tail {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(other);
    }

    async fn rows_about(env: &Env, subject: &str) -> Vec<i64> {
        env.app
            .store
            .audit_about(&[subject.to_string()], "", 100)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.seq)
            .collect()
    }

    async fn scalar(env: &Env, sql: &str) -> i64 {
        match &env.app.store {
            elicense::store::Store::Sqlite(p, _) => {
                sqlx::query_scalar(sql).fetch_one(p).await.unwrap()
            }
            elicense::store::Store::Postgres(p) => {
                sqlx::query_scalar(sql).fetch_one(p).await.unwrap()
            }
        }
    }

    /// The access list finds a subject's entries whether or not the indexer has reached them,
    /// each once; the indexer catches up in chunks and is idempotent; `audit verify` names an
    /// entry missing from the index, a forged index row (which the access list ignores), and
    /// an index end beyond the log.
    async fn subject_index_follows_the_log_and_verify_checks_it(env: Env) {
        use elicense::audit::Entry;
        let audit = env.app.licenses.audit();
        let mut about_a = Vec::new();
        for i in 0..7 {
            let subject = if i % 3 == 0 { "sub-b" } else { "sub-a" };
            let seq = audit
                .append(Entry::new("t", "test.index", subject, json!({"i": i})))
                .await
                .unwrap();
            if subject == "sub-a" {
                about_a.push(seq);
            }
        }
        about_a.reverse();
        // Before, during and after indexing (the node's own indexer may run at any time too).
        assert_eq!(rows_about(&env, "sub-a").await, about_a);
        assert!(env.app.store.index_audit_subjects(1).await.unwrap() <= 1);
        assert_eq!(rows_about(&env, "sub-a").await, about_a);
        while env.app.store.index_audit_subjects(2).await.unwrap() > 0 {}
        assert_eq!(env.app.store.index_audit_subjects(100).await.unwrap(), 0);
        let end = scalar(&env, "SELECT MAX(seq) FROM audit_log").await;
        assert_eq!(
            scalar(&env, "SELECT seq FROM audit_subjects_done").await,
            end
        );
        assert_eq!(
            scalar(&env, "SELECT COUNT(*) FROM audit_subjects").await,
            scalar(&env, "SELECT COUNT(*) FROM audit_log").await
        );
        assert_eq!(rows_about(&env, "sub-a").await, about_a);
        assert_eq!(problem(&env).await, None);

        // An entry taken out of the index.
        let hidden = about_a[1];
        env.exec(&format!("DELETE FROM audit_subjects WHERE seq = {hidden}"))
            .await;
        let p = problem(&env).await.expect("missing index row detected");
        assert!(
            p.contains(&format!("entry {hidden} is missing from the subject index")),
            "{p}"
        );
        env.exec(&format!(
            "INSERT INTO audit_subjects (subject, seq) VALUES ('sub-a', {hidden})"
        ))
        .await;
        assert_eq!(problem(&env).await, None);
        // An entry about sub-a listed under sub-b: not shown to sub-b, and reported.
        env.exec(&format!(
            "INSERT INTO audit_subjects (subject, seq) VALUES ('sub-b', {hidden})"
        ))
        .await;
        assert!(!rows_about(&env, "sub-b").await.contains(&hidden));
        let p = problem(&env).await.expect("forged index row detected");
        assert!(
            p.contains(&format!("lists entry {hidden} under a subject")),
            "{p}"
        );
        env.exec(&format!(
            "DELETE FROM audit_subjects WHERE subject = 'sub-b' AND seq = {hidden}"
        ))
        .await;
        // An end beyond the log.
        env.exec("UPDATE audit_subjects_done SET seq = seq + 100")
            .await;
        let p = problem(&env)
            .await
            .expect("index end beyond the log detected");
        assert!(p.contains("the subject index claims entries up to"), "{p}");
    }

    /// Two nodes' writers (each remembering where the chain ended after its own appends)
    /// append to one database in turns and at once; then one batch of the largest size goes in
    /// through a stale chain end: one unbroken chain comes out, every entry once, with its
    /// checkpoints.
    async fn two_writers_on_one_database_keep_one_chain(env: Env) {
        use elicense::audit::{Audit, Entry};
        let app = &env.app;
        let a = Audit::start(app.store.clone(), app.pki.clone(), app.clock.clone());
        let b = Audit::start(app.store.clone(), app.pki.clone(), app.clock.clone());
        let entry =
            |who: &str, i: usize| Entry::new(who, "test", &format!("s{i}"), json!({"i": i}));
        let before = elicense::audit::verify(&app.store, &app.pki)
            .await
            .unwrap()
            .entries;
        // Turns: each append of one writer makes the other's remembered end stale.
        for i in 0..6 {
            let w = if i % 2 == 0 { &a } else { &b };
            w.append(entry("turns", i)).await.unwrap();
        }
        // At once: many appends queued on both writers (batches of several entries each).
        let n = elicense::store::MAX_AUDIT_BATCH + 300;
        let mut tasks = Vec::new();
        for i in 0..n {
            let w = if i % 2 == 0 { a.clone() } else { b.clone() };
            let e = entry("at-once", i);
            tasks.push(tokio::spawn(async move { w.append(e).await.unwrap() }));
        }
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.unwrap());
        }
        seqs.sort();
        seqs.dedup();
        assert_eq!(seqs.len(), n, "every append got its own sequence number");
        // A writer signs a due checkpoint after answering its batch and before taking the
        // next: one more append on each is answered only after that.
        a.append(entry("after", 0)).await.unwrap();
        b.append(entry("after", 1)).await.unwrap();
        // The largest batch (8 bound values per entry in one statement), linked first onto a
        // chain end that is no longer the end: it is relinked and goes in whole.
        let full: Vec<_> = (0..elicense::store::MAX_AUDIT_BATCH)
            .map(|i| elicense::store::NewAuditEntry {
                at: 0,
                actor: "full".into(),
                action: "test".into(),
                subject: format!("f{i}"),
                details: "{}".into(),
            })
            .collect();
        let mut stale = Some((1, vec![0u8; 32]));
        let full_seqs = app
            .store
            .append_audit(&full, elicense::audit::link, &mut stale)
            .await
            .unwrap();
        assert_eq!(full_seqs.len(), full.len());
        assert_eq!(stale.map(|t| t.0), full_seqs.last().copied());
        let report = elicense::audit::verify(&app.store, &app.pki).await.unwrap();
        assert_eq!(report.problem, None, "{report:?}");
        assert_eq!(
            report.entries,
            before + 6 + n as i64 + 2 + elicense::store::MAX_AUDIT_BATCH as i64
        );
        assert!(report.checkpoints >= 1, "{report:?}");
    }

    async fn problem(env: &Env) -> Option<String> {
        elicense::audit::verify(&env.app.store, &env.app.pki)
            .await
            .unwrap()
            .problem
    }

    async fn audit_chain_detects_edits_deletions_swaps_and_truncation(env: Env) {
        for i in 70..73 {
            env.issue(i).await;
        }
        let (_, l) = env.call("GET", "/v1/licenses?limit=1", None).await;
        let id = l["items"][0]["id"].as_str().unwrap().to_string();
        env.call(
            "POST",
            &format!("/v1/licenses/{id}/status"),
            Some(&json!({"status": "suspended", "reason": "r"})),
        )
        .await;
        let report = elicense::audit::verify(&env.app.store, &env.app.pki)
            .await
            .unwrap();
        assert_eq!(
            (report.entries, report.problem.clone()),
            (4, None),
            "{report:?}"
        );

        // An edited entry.
        env.exec("UPDATE audit_log SET details = '{\"reason\":\"edited\"}' WHERE seq = 2")
            .await;
        let p = problem(&env).await.expect("edit detected");
        assert!(p.contains("entry 2 was changed"), "{p}");
        // The next cases start from a fresh, intact log.
        let env2 = Env::new(
            if matches!(env.app.store, elicense::store::Store::Sqlite(..)) {
                super::common::Backend::Sqlite
            } else {
                super::common::Backend::Postgres
            },
        )
        .await
        .unwrap();
        for i in 80..84 {
            env2.issue(i).await;
        }
        assert_eq!(problem(&env2).await, None);
        // Swapped entries (content of 2 and 3 exchanged).
        env2.exec("UPDATE audit_log SET seq = -2 WHERE seq = 2")
            .await;
        env2.exec("UPDATE audit_log SET seq = 2 WHERE seq = 3")
            .await;
        env2.exec("UPDATE audit_log SET seq = 3 WHERE seq = -2")
            .await;
        let p = problem(&env2).await.expect("swap detected");
        assert!(p.contains("entry 2"), "{p}");
        env2.exec("UPDATE audit_log SET seq = -2 WHERE seq = 2")
            .await;
        env2.exec("UPDATE audit_log SET seq = 2 WHERE seq = 3")
            .await;
        env2.exec("UPDATE audit_log SET seq = 3 WHERE seq = -2")
            .await;
        assert_eq!(problem(&env2).await, None, "swapped back, intact again");
        // A deleted entry.
        env2.exec("DELETE FROM audit_log WHERE seq = 3").await;
        let p = problem(&env2).await.expect("deletion detected");
        assert!(p.contains("entry 3 is missing"), "{p}");

        // A removed tail is caught by the signed checkpoint.
        let env3 = Env::new(super::common::Backend::Sqlite).await.unwrap();
        for i in 90..93 {
            env3.issue(i).await;
        }
        let rows = env3.app.store.audit_page(0, 100).await.unwrap();
        let last = rows.last().unwrap();
        elicense::audit::sign_checkpoint(
            &env3.app.store,
            &env3.app.pki,
            last.seq,
            &last.hash,
            last.at,
        )
        .await
        .unwrap();
        assert_eq!(problem(&env3).await, None);
        env3.exec(&format!("DELETE FROM audit_log WHERE seq = {}", last.seq))
            .await;
        let p = problem(&env3).await.expect("truncation detected");
        assert!(p.contains("were removed"), "{p}");
        // A forged checkpoint signature.
        env3.exec("UPDATE audit_checkpoints SET at = at + 1").await;
        let p = problem(&env3).await.expect("checkpoint forgery detected");
        assert!(
            p.contains("were removed") || p.contains("bad signature"),
            "{p}"
        );
    }
}

/// A database made before the subject index existed (migrations up to 0010, entries in the
/// log) gets every existing entry indexed by the migration that adds it; on SQLite the log
/// also moves to its own file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_indexes_the_existing_log() {
    /// The migrations before the subject index, in a directory of their own.
    fn old_migrations(backend: &str, dir: &std::path::Path) -> std::path::PathBuf {
        let old = dir.join(format!("old-{backend}"));
        std::fs::create_dir_all(&old).unwrap();
        for f in std::fs::read_dir(format!("migrations/{backend}")).unwrap() {
            let f = f.unwrap().path();
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            if name.as_str() < "0011" {
                std::fs::copy(&f, old.join(&name)).unwrap();
            }
        }
        old
    }
    let entries = [(1, "x"), (2, "y"), (3, "x")].map(|(seq, subject)| {
        format!(
            "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash) \
             VALUES ({seq}, 0, 'a', 'test', '{subject}', '{{}}', '', '')"
        )
    });
    async fn check(store: &elicense::store::Store) {
        let about_x: Vec<i64> = store
            .audit_about(&["x".to_string()], "", 10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(about_x, [3, 1]);
        // All three are in the index (nothing left for the tail scan), and it ends at 3.
        assert_eq!(store.index_audit_subjects(100).await.unwrap(), 0);
        assert_eq!(store.audit_subjects_problem().await.unwrap(), None);
    }
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    {
        let opts = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&url)
            .unwrap()
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
        let old = old_migrations("sqlite", dir.path());
        let m = sqlx::migrate::Migrator::new(old.as_path()).await.unwrap();
        m.run(&pool).await.unwrap();
        for q in &entries {
            sqlx::query(q).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
    check(&elicense::store::Store::connect(&url).await.unwrap()).await;
    // On SQLite the log moved to the audit file, and the main file's copy is gone.
    let tables = |file: &str| {
        let path = dir.path().join(file);
        async move {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'audit%' ORDER BY name",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            pool.close().await;
            names
        }
    };
    assert_eq!(
        tables("old.db").await,
        ["audit_file", "audit_subjects", "audit_subjects_done"]
    );
    assert_eq!(
        tables("old-audit.db").await,
        ["audit_checkpoints", "audit_log", "audit_meta"]
    );
    if let Some(admin) = common::postgres_admin_url() {
        let pg = common::PgScratch::create(&admin).await;
        {
            let pool = sqlx::PgPool::connect(&pg.url).await.unwrap();
            let old = old_migrations("postgres", dir.path());
            let m = sqlx::migrate::Migrator::new(old.as_path()).await.unwrap();
            m.run(&pool).await.unwrap();
            for q in &entries {
                sqlx::query(q).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
        let store = elicense::store::Store::connect(&pg.url).await.unwrap();
        check(&store).await;
        if let elicense::store::Store::Postgres(p) = &store {
            p.close().await;
        }
    }
}

/// Builds a SQLite database as a build before the audit file made it (migrations up to 0011,
/// the log in the main file) with `entries` in its log.
async fn legacy_sqlite(dir: &std::path::Path, name: &str, entries: &[(i64, &str, &str)]) -> String {
    let old = dir.join("old-sqlite-0011");
    std::fs::create_dir_all(&old).unwrap();
    for f in std::fs::read_dir("migrations/sqlite").unwrap() {
        let f = f.unwrap().path();
        let n = f.file_name().unwrap().to_string_lossy().to_string();
        if n.as_str() < "0012" {
            std::fs::copy(&f, old.join(&n)).unwrap();
        }
    }
    let url = format!("sqlite://{}", dir.join(name).display());
    let opts = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&url)
        .unwrap()
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    for (seq, subject, hash) in entries {
        sqlx::query(
            "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash) \
             VALUES ($1, 0, 'a', 'test', $2, '{}', x'', $3)",
        )
        .bind(seq)
        .bind(subject)
        .bind(hash.as_bytes())
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
    url
}

/// Runs `sql` on a SQLite file with a plain connection; returns the first column of each row.
async fn sqlite_rows(path: &std::path::Path, sql: &str) -> Vec<String> {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let rows: Vec<String> = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
    pool.close().await;
    rows
}

/// The move of a legacy log into the audit file is safe to repeat: rows already there (an
/// earlier start copied them, then an older build appended more) are kept and the rest are
/// copied; and when the audit file holds an entry that differs from the main file's, nothing
/// is dropped and the start fails, naming the migration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_audit_log_moves_to_its_file_only_when_every_entry_arrived() {
    let dir = tempfile::tempdir().unwrap();
    let entries = [(1, "x", "h1"), (2, "y", "h2"), (3, "x", "h3")];
    let url = legacy_sqlite(dir.path(), "a.db", &entries).await;
    // An empty audit file, made by a start of the current build elsewhere.
    let seed = dir.path().join("seed-audit.db");
    elicense::store::Store::connect(&format!(
        "sqlite://{}",
        dir.path().join("seed.db").display()
    ))
    .await
    .unwrap()
    .close()
    .await;
    // A copy of it at `name` with one entry (seq, subject, hash).
    let audit_file_with = |name: &str, (seq, subject, hash): (i64, &str, &str)| {
        let path = dir.path().join(name);
        std::fs::copy(&seed, &path).unwrap();
        let sql = format!(
            "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash) \
             VALUES ({seq}, 0, 'a', 'test', '{subject}', '{{}}', x'', CAST('{hash}' AS BLOB)) \
             RETURNING subject"
        );
        async move { sqlite_rows(&path, &sql).await }
    };
    // Entry 1 is there already, as after a copy before the older build's last appends.
    audit_file_with("a-audit.db", (1, "x", "h1")).await;
    let store = elicense::store::Store::connect(&url).await.unwrap();
    let about_x: Vec<i64> = store
        .audit_about(&["x".to_string()], "", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(about_x, [3, 1]);
    store.close().await;
    // The migration that dropped the old log bound the database to the file it moved to.
    assert_eq!(
        sqlite_rows(&dir.path().join("a.db"), "SELECT file_id FROM audit_file").await,
        sqlite_rows(
            &dir.path().join("a-audit.db"),
            "SELECT file_id FROM audit_meta"
        )
        .await
    );
    assert_eq!(
        sqlite_rows(
            &dir.path().join("a-audit.db"),
            "SELECT CAST(seq AS TEXT) FROM audit_log ORDER BY seq"
        )
        .await,
        ["1", "2", "3"]
    );

    // The audit file disagrees about entry 2: the copy keeps the file's row, the migration's
    // check refuses the drop, and the main file keeps its log.
    let url = legacy_sqlite(dir.path(), "b.db", &entries).await;
    audit_file_with("b-audit.db", (2, "y", "other")).await;
    let e = elicense::store::Store::connect(&url).await.unwrap_err();
    assert!(e.to_string().contains("migrations"), "{e}");
    assert_eq!(
        sqlite_rows(
            &dir.path().join("b.db"),
            "SELECT CAST(COUNT(*) AS TEXT) FROM audit_log"
        )
        .await,
        ["3"]
    );
}

/// A SQLite database refuses to start without the audit file it was written with (a lost
/// file would restart the chain empty and hide every earlier entry) or with another
/// deployment's, and starts again once its own is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_database_refuses_a_missing_or_foreign_audit_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    for name in ["t.db", "other.db"] {
        let store = elicense::store::Store::connect(&url(name)).await.unwrap();
        store.close().await;
    }
    let own = dir.path().join("t-audit.db");
    let kept = dir.path().join("kept-audit.db");
    std::fs::rename(&own, &kept).unwrap();
    let e = elicense::store::Store::connect(&url("t.db"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "SYS-0003");
    assert!(e.to_string().contains("it is missing"), "{e}");
    assert!(!own.exists(), "no empty audit file is left in its place");
    std::fs::copy(dir.path().join("other-audit.db"), &own).unwrap();
    let e = elicense::store::Store::connect(&url("t.db"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "SYS-0003");
    assert!(e.to_string().contains("restore the audit file"), "{e}");
    std::fs::remove_file(&own).unwrap();
    // Only the audit file's write-ahead log is there: SQLite would replay it into a new file,
    // and the refused start must not delete what may be the newest entries' last copy.
    let wal = dir.path().join("t-audit.db-wal");
    std::fs::write(&wal, b"entries").unwrap();
    let e = elicense::store::Store::connect(&url("t.db"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "SYS-0003");
    assert!(e.to_string().contains("write-ahead log"), "{e}");
    assert_eq!(std::fs::read(&wal).unwrap(), b"entries");
    assert!(!own.exists());
    std::fs::remove_file(&wal).unwrap();
    std::fs::rename(&kept, &own).unwrap();
    let store = elicense::store::Store::connect(&url("t.db")).await.unwrap();
    store.close().await;
    // A database whose record of its audit file was removed is refused too, with any file.
    sqlite_rows(
        &dir.path().join("other.db"),
        "DELETE FROM audit_file RETURNING file_id",
    )
    .await;
    let e = elicense::store::Store::connect(&url("other.db"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "SYS-0003");
    assert!(e.to_string().contains("no record"), "{e}");
}

/// Two starts at once on a new SQLite database (the service and a CLI command, say) both
/// come up on the same files: the second waits while the first creates, migrates and binds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_starts_at_once_on_a_new_sqlite_database_both_succeed() {
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("new.db").display());
        let (a, b) = tokio::join!(
            elicense::store::Store::connect(&url),
            elicense::store::Store::connect(&url)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(
            a.count_licenses().await.unwrap(),
            b.count_licenses().await.unwrap(),
            "round {round}"
        );
        a.close().await;
        b.close().await;
    }
}

/// SQLite's in-memory databases, under any of their names, are refused before anything is
/// created: the audit log is a second file that other connections must see.
#[tokio::test]
async fn sqlite_in_memory_databases_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let named = dir.path().join("mem.db");
    for url in [
        "sqlite::memory:".to_string(),
        "sqlite://:memory:".to_string(),
        format!("sqlite://{}?mode=memory", named.display()),
    ] {
        let e = elicense::store::Store::connect(&url).await.unwrap_err();
        assert!(e.to_string().contains("in-memory"), "{url}: {e}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn audit_verify_cli_reports_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_elicense");
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env_remove("ELICENSE_MASTER_KEY")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    assert!(
        run(&["init", "--region", "340600", "--name", "t"])
            .status
            .success()
    );
    let code = elicense::demo::credit("11340600MB0000011");
    assert!(
        run(&[
            "authority",
            "add",
            "--code",
            &code,
            "--name",
            "局",
            "--types",
            elicense::license::types::RESIDENT_ID_CARD
        ])
        .status
        .success()
    );
    let mut rng = elicense::demo::Rng::new(1);
    let req = elicense::demo::request(
        &mut rng,
        elicense::license::types::RESIDENT_ID_CARD,
        &code,
        1,
    );
    let f = dir.path().join("r.json");
    std::fs::write(&f, req.to_string()).unwrap();
    assert!(
        run(&["license", "issue", f.to_str().unwrap()])
            .status
            .success()
    );
    let ok = run(&["audit", "verify"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("intact: 1 entries"));
    // The audit log lives in the audit file beside the database.
    let db = dir.path().join("elicense-audit.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query("UPDATE audit_log SET actor = 'someone else' WHERE seq = 1")
            .execute(&pool)
            .await
            .unwrap();
    });
    let bad = run(&["audit", "verify"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("entry 1 was changed"));
}

mod present {
    use super::common::Env;
    use elicense::present::{Trust, Verdict, check};
    use serde_json::json;

    crate::both_backends!(
        show_codes_disclose_exactly_and_verify_offline,
        online_check_reports_live_status_and_replays,
        status_list_reflects_changes_for_offline_checks
    );

    async fn status_list_reflects_changes_for_offline_checks(env: Env) {
        use axum::body::Body;
        use axum::http::Request;
        let a = env.issue(150).await;
        let b = env.issue(151).await;
        let c = env.issue(152).await;
        let fetch = || async {
            let (s, body) = env
                .raw(
                    Request::builder()
                        .uri("/v1/status-list")
                        .body(Body::empty())
                        .unwrap(),
                )
                .await;
            assert_eq!(s, axum::http::StatusCode::OK);
            String::from_utf8(body).unwrap()
        };
        let root = env.app.pki.root().await.unwrap().der;
        let open =
            |t: &str| elicense::present::status_list::open(t, std::slice::from_ref(&root)).unwrap();
        let idx = |l: &serde_json::Value| {
            elicense::license::id::LicenseId::parse(l["id"].as_str().unwrap())
                .unwrap()
                .lineage()
        };
        let store = env.app.store.clone();
        let index_of = |lineage: String| {
            let store = store.clone();
            async move {
                store
                    .license_by_lineage(&lineage)
                    .await
                    .unwrap()
                    .unwrap()
                    .status_index
            }
        };
        let (ia, ib, ic) = (
            index_of(idx(&a)).await,
            index_of(idx(&b)).await,
            index_of(idx(&c)).await,
        );
        assert!(ia >= 0 && ib >= 0 && ic >= 0 && ia != ib && ib != ic);
        let list = open(&fetch().await);
        assert_eq!(
            (list.get(ia), list.get(ib), list.get(ic)),
            (Some(0), Some(0), Some(0))
        );
        // Revoke one, suspend another: the next list says so at once.
        env.call(
            "POST",
            &format!("/v1/licenses/{}/status", a["id"].as_str().unwrap()),
            Some(&json!({"status": "revoked", "reason": "r"})),
        )
        .await;
        env.call(
            "POST",
            &format!("/v1/licenses/{}/status", b["id"].as_str().unwrap()),
            Some(&json!({"status": "suspended", "reason": "r"})),
        )
        .await;
        let text = fetch().await;
        let list = open(&text);
        assert_eq!(
            (list.get(ia), list.get(ib), list.get(ic)),
            (Some(1), Some(2), Some(0))
        );
        // A forged list does not open.
        let mut bad = text.clone().into_bytes();
        let n = bad.len();
        bad[n - 5] = if bad[n - 5] == b'A' { b'B' } else { b'A' };
        assert!(
            elicense::present::status_list::open(
                &String::from_utf8(bad).unwrap(),
                std::slice::from_ref(&root)
            )
            .is_err()
        );

        // An offline check of a code made while c was valid, with a list fetched later.
        let holder = c["holder"]["code"].as_str().unwrap();
        let (_, session) = env
            .call(
                "POST",
                "/v1/holder/sessions",
                Some(&json!({"holder_code": holder})),
            )
            .await;
        let token = session["token"].as_str().unwrap().to_string();
        let tl = elicense::verify::trust::export(&env.app).await.unwrap();
        let trust = Trust::from_lists(&[elicense::verify::trust::open_self_pinned(&tl).unwrap()]);
        let (_, sc) = env
            .call_as(
                &token,
                "POST",
                "/v1/holder/show-codes",
                Some(&json!({"license_id": c["id"]})),
            )
            .await;
        let code_c = sc["code"].as_str().unwrap().to_string();
        let mut chk = check(&code_c, &trust, super::common::T0);
        assert_eq!(chk.verdict, Verdict::Valid);
        // c is then suspended; a list fetched later turns the offline verdict to suspended.
        env.clock.set(super::common::T0 + 10);
        env.call(
            "POST",
            &format!("/v1/licenses/{}/status", c["id"].as_str().unwrap()),
            Some(&json!({"status": "suspended", "reason": "r"})),
        )
        .await;
        let list = open(&fetch().await);
        let index = chk.status_index;
        elicense::present::status_list::apply(&mut chk, &list, index, super::common::T0 + 20);
        assert_eq!(chk.verdict, Verdict::Suspended, "{chk:?}");
        let st = chk.status.unwrap();
        assert_eq!(
            (st.source.as_str(), st.freshness.as_str(), st.code.as_str()),
            ("status_list", "fresh", "02")
        );
    }

    async fn online_check_reports_live_status_and_replays(env: Env) {
        let license = env.issue(140).await;
        let id = license["id"].as_str().unwrap().to_string();
        let holder = license["holder"]["code"].as_str().unwrap();
        let (_, session) = env
            .call(
                "POST",
                "/v1/holder/sessions",
                Some(&json!({"holder_code": holder})),
            )
            .await;
        let token = session["token"].as_str().unwrap().to_string();
        let (_, sc) = env
            .call_as(
                &token,
                "POST",
                "/v1/holder/show-codes",
                Some(&json!({"license_id": id})),
            )
            .await;
        let code = sc["code"].as_str().unwrap().to_string();
        let verify = |place: &str| json!({"code": code, "place": place});
        let (s, v) = env
            .call(
                "POST",
                "/v1/show-codes/verify",
                Some(&verify("交警 一大队 路检点 A")),
            )
            .await;
        assert_eq!(s, axum::http::StatusCode::OK, "{v}");
        assert_eq!(
            (
                v["verdict"].clone(),
                v["status"]["source"].clone(),
                v["replay"].clone()
            ),
            (json!("valid"), json!("online"), json!(null)),
            "{v}"
        );
        // The same code again: flagged, with where and when it was first seen.
        let (_, v) = env
            .call("POST", "/v1/show-codes/verify", Some(&verify("路检点 B")))
            .await;
        assert_eq!(
            v["replay"]["first_seen_at_place"], "交警 一大队 路检点 A",
            "{v}"
        );
        assert_eq!(v["replay"]["first_seen_at"], json!(super::common::T0));
        // Suspended after the code was made: the online check says so; offline it is stapled valid.
        env.call(
            "POST",
            &format!("/v1/licenses/{id}/status"),
            Some(&json!({"status": "suspended", "reason": "暂扣"})),
        )
        .await;
        let (_, v) = env
            .call("POST", "/v1/show-codes/verify", Some(&verify("C")))
            .await;
        assert_eq!(v["verdict"], "suspended", "{v}");
        let tl = elicense::verify::trust::export(&env.app).await.unwrap();
        let trust = Trust::from_lists(&[elicense::verify::trust::open_self_pinned(&tl).unwrap()]);
        assert_eq!(
            check(&code, &trust, super::common::T0).verdict,
            Verdict::Valid,
            "stapled status predates the suspension"
        );
        // Garbage and an oversized body are clear 4xx or a malformed verdict, never 5xx.
        let (s, v) = env
            .call(
                "POST",
                "/v1/show-codes/verify",
                Some(&json!({"code": "EL1:ZZZ"})),
            )
            .await;
        assert_eq!(
            (s, v["verdict"].clone()),
            (axum::http::StatusCode::OK, json!("malformed"))
        );
        let (s, _) = env
            .call(
                "POST",
                "/v1/show-codes/verify",
                Some(&json!({"code": "x".repeat(5000)})),
            )
            .await;
        assert_eq!(s, axum::http::StatusCode::BAD_REQUEST);
    }

    async fn show_codes_disclose_exactly_and_verify_offline(env: Env) {
        let license = env.issue(130).await;
        let id = license["id"].as_str().unwrap().to_string();
        let holder = license["holder"]["code"].as_str().unwrap();
        let (_, session) = env
            .call(
                "POST",
                "/v1/holder/sessions",
                Some(&json!({"holder_code": holder})),
            )
            .await;
        let token = session["token"].as_str().unwrap().to_string();
        let (s, sc) = env
            .call_as(
                &token,
                "POST",
                "/v1/holder/show-codes",
                Some(&json!({"license_id": id, "fields": ["sex", "holder_name"]})),
            )
            .await;
        assert_eq!(s, axum::http::StatusCode::CREATED, "{sc}");
        let code = sc["code"].as_str().unwrap().to_string();
        assert!(code.starts_with("EL1:"));
        assert!(sc["qr_svg"].as_str().unwrap().contains("<svg"));
        // The QR alphanumeric alphabet only.
        assert!(
            code.bytes()
                .all(|b| b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:".contains(&b))
        );

        let tl = elicense::verify::trust::export(&env.app).await.unwrap();
        let trust = Trust::from_lists(&[elicense::verify::trust::open_self_pinned(&tl).unwrap()]);
        let now = super::common::T0;
        let c = check(&code, &trust, now);
        assert_eq!(c.verdict, Verdict::Valid, "{c:?}");
        assert_eq!(c.license_id.as_deref(), Some(id.as_str()));
        // Exactly the chosen fields are in the signed token, nothing else.
        let mut keys: Vec<_> = c.fields.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, vec!["holder_name".to_string(), "sex".to_string()]);
        assert_eq!(c.fields["holder_name"], license["holder"]["name"]);
        assert_eq!(c.status.as_ref().unwrap().freshness, "fresh");

        // Any altered character: never valid.
        for i in [5, code.len() / 2, code.len() - 1] {
            let mut b = code.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let v = check(&String::from_utf8(b).unwrap(), &trust, now).verdict;
            assert!(
                matches!(v, Verdict::Forged | Verdict::Malformed),
                "char {i}: {v:?}"
            );
        }
        // Expired code; another region's trust list; garbage.
        assert_eq!(
            check(&code, &trust, now + 301).verdict,
            Verdict::CodeExpired
        );
        let other = Env::new(super::common::Backend::Sqlite).await.unwrap();
        let other_tl = elicense::verify::trust::export(&other.app).await.unwrap();
        let other_trust =
            Trust::from_lists(&[elicense::verify::trust::open_self_pinned(&other_tl).unwrap()]);
        assert_eq!(
            check(&code, &other_trust, now).verdict,
            Verdict::UnknownIssuer
        );
        assert_eq!(check("EL1:%%%", &trust, now).verdict, Verdict::Malformed);
        assert_eq!(check("hello", &trust, now).verdict, Verdict::Malformed);

        // Revoked: a new code says so.
        env.call(
            "POST",
            &format!("/v1/licenses/{id}/status"),
            Some(&json!({"status": "revoked", "reason": "r"})),
        )
        .await;
        let (_, sc) = env
            .call_as(
                &token,
                "POST",
                "/v1/holder/show-codes",
                Some(&json!({"license_id": id})),
            )
            .await;
        assert_eq!(
            check(sc["code"].as_str().unwrap(), &trust, now).verdict,
            Verdict::Revoked
        );
        // Someone else's license, and a field that does not exist.
        let (_, s2) = env
            .call(
                "POST",
                "/v1/holder/sessions",
                Some(&json!({"holder_code": "11010519491231002X"})),
            )
            .await;
        let (s, e) = env
            .call_as(
                s2["token"].as_str().unwrap(),
                "POST",
                "/v1/holder/show-codes",
                Some(&json!({"license_id": id})),
            )
            .await;
        assert_eq!(
            (s, e["code"].clone()),
            (axum::http::StatusCode::NOT_FOUND, json!("LIC-0004"))
        );
        let (s, _) = env
            .call_as(
                &token,
                "POST",
                "/v1/holder/show-codes",
                Some(&json!({"license_id": id, "fields": ["nope"]})),
            )
            .await;
        assert_eq!(s, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        // A field the type does not let holders disclose (the address of an ID card).
        let (s, _) = env
            .call_as(
                &token,
                "POST",
                "/v1/holder/show-codes",
                Some(&json!({"license_id": id, "fields": ["address"]})),
            )
            .await;
        assert_eq!(s, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        // The type's minimum is always there: asking for sex only still discloses the name.
        let (_, sc) = env
            .call_as(
                &token,
                "POST",
                "/v1/holder/show-codes",
                Some(&json!({"license_id": id, "fields": ["sex"]})),
            )
            .await;
        let c = check(sc["code"].as_str().unwrap(), &trust, now);
        let mut keys: Vec<_> = c.fields.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, vec!["holder_name".to_string(), "sex".to_string()]);
    }
}

mod seals {
    //! Seals and PAdES sealing through the API. The ground truth for the signatures themselves
    //! is conformance/seals.sh (pyHanko, pdfsig, openssl, qpdf); these tests pin the service's
    //! behaviour: lifecycle, what the output contains, and refusals with stable codes.
    use super::*;

    crate::both_backends!(
        seal_lifecycle_and_sealing,
        hostile_pdfs_are_refused_with_codes,
        timestamp_authority_answers_rfc3161,
        verifier_reports_integrity_trust_and_changes,
        sealed_license_pdf
    );

    async fn sealed_license_pdf(env: Env) {
        let lic = env.issue(1).await;
        let id = lic["id"].as_str().unwrap().to_string();
        let get = |uri: String| {
            Request::get(uri)
                .header("authorization", format!("Bearer {}", env.token))
                .body(Body::empty())
                .unwrap()
        };
        // Without a license seal of the issuing authority: SEAL-0001.
        let (s, b) = env.raw(get(format!("/v1/licenses/{id}/pdf"))).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{}", String::from_utf8_lossy(&b));
        assert!(String::from_utf8_lossy(&b).contains("SEAL-0001"));
        let (s, _) = env
            .call(
                "POST",
                "/v1/seals",
                Some(&json!({"owner": env.authority(0), "kind": "license", "name": "证照专用章"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, pdf) = env.raw(get(format!("/v1/licenses/{id}/pdf"))).await;
        assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&pdf));
        assert!(pdf.starts_with(b"%PDF-"));
        let text = String::from_utf8_lossy(&pdf);
        assert!(
            text.contains("/ToUnicode") && text.contains("/Identity-H"),
            "embedded CID font"
        );
        let r = verify_pdf(&env, pdf.clone()).await;
        assert_eq!(r["verdict"], "valid", "{r:#}");
        assert_eq!(r["signatures"][0]["covers_whole_file"], true);
        assert!(
            r["signatures"][0]["timestamp"]["trusted"]
                .as_bool()
                .unwrap()
        );
        // An unknown license: LIC-0004.
        let other = id.replace(".001.", ".002.");
        let (s, _) = env.raw(get(format!("/v1/licenses/{other}/pdf"))).await;
        assert!(s.is_client_error());
    }

    async fn verify_pdf(env: &Env, pdf: Vec<u8>) -> Value {
        let (s, b) = env
            .raw(
                Request::post("/v1/seals/verify")
                    .header("content-type", "application/pdf")
                    .body(Body::from(pdf))
                    .unwrap(),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
        serde_json::from_slice(&b).unwrap()
    }

    /// Appends a page through an incremental update (a valid PDF change after signing).
    fn add_page(doc: &[u8]) -> Vec<u8> {
        use elicense::pdf::{Pdf, write::Update};
        use lopdf::{Dictionary, Object};
        let pdf = Pdf::open(doc).unwrap();
        let pages_id = match pdf.catalog().unwrap().get(b"Pages").unwrap() {
            Object::Reference(r) => *r,
            _ => panic!(),
        };
        let mut pages = pdf.dict(&Object::Reference(pages_id)).unwrap();
        let mut up = Update::new(&pdf);
        let mut page = Dictionary::new();
        page.set("Type", Object::Name(b"Page".to_vec()));
        page.set("Parent", Object::Reference(pages_id));
        page.set(
            "MediaBox",
            Object::Array(vec![0.into(), 0.into(), 595.into(), 842.into()]),
        );
        let pid = up.add(page);
        let Ok(Object::Array(mut kids)) = pages.get(b"Kids").cloned() else {
            panic!()
        };
        kids.push(Object::Reference(pid));
        let n = kids.len() as i64;
        pages.set("Kids", Object::Array(kids));
        pages.set("Count", n);
        up.set(pages_id, pages);
        let mut out = doc.to_vec();
        out.extend_from_slice(&up.write(&pdf).unwrap().bytes);
        out
    }

    async fn verifier_reports_integrity_trust_and_changes(env: Env) {
        let owner = elicense::demo::authorities()[2].0.clone();
        let (_, v) = env
            .call(
                "POST",
                "/v1/seals",
                Some(&json!({"owner": owner, "kind": "license", "name": "证照专用章"})),
            )
            .await;
        let id = v["id"].as_str().unwrap().to_string();
        let (_, once) = post_pdf(
            &env,
            &format!("/v1/seals/{id}/sign?level=B-T&x=50&y=50"),
            tiny_pdf(2),
        )
        .await;
        let (_, twice) = post_pdf(
            &env,
            &format!("/v1/seals/{id}/sign?level=B-LTA"),
            once.clone(),
        )
        .await;

        let r = verify_pdf(&env, twice.clone()).await;
        assert_eq!(r["verdict"], "valid", "{r:#}");
        let sigs = r["signatures"].as_array().unwrap();
        assert_eq!(sigs.len(), 3, "two seals and a document time-stamp: {r:#}");
        assert_eq!(sigs[0]["intact"], true);
        assert_eq!(sigs[0]["trusted"], true);
        assert_eq!(sigs[0]["revocation"], "good");
        assert!(sigs[0]["seal"].as_str().unwrap().starts_with(&id));
        assert!(sigs[0]["timestamp"]["trusted"].as_bool().unwrap());
        assert_eq!(sigs[0]["covers_whole_file"], false);
        assert!(
            sigs[0]["changes_after"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["allowed"] == true)
        );
        assert!(
            sigs[0]["changes_after"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["kind"] == "dss")
        );
        assert_eq!(sigs[2]["sub_filter"], "ETSI.RFC3161");
        assert_eq!(sigs[2]["covers_whole_file"], true);

        // A byte flipped inside the signed range: invalid.
        let mut flipped = once.clone();
        let at = flipped.windows(4).position(|w| w == b"page").unwrap();
        flipped[at] ^= 1;
        let r = verify_pdf(&env, flipped).await;
        assert_eq!(r["verdict"], "invalid");
        assert_eq!(r["signatures"][0]["intact"], false);

        // A page added by a valid incremental update after signing: modified.
        let r = verify_pdf(&env, add_page(&once)).await;
        assert_eq!(r["verdict"], "modified", "{r:#}");
        let changes = r["signatures"][0]["changes_after"].as_array().unwrap();
        assert!(changes.iter().any(|c| c["allowed"] == false && c["what"].as_str().unwrap().contains("page tree")));

        // An unsigned document, and something that is not a PDF.
        let r = verify_pdf(&env, tiny_pdf(1)).await;
        assert_eq!(r["verdict"], "unsigned");
        let (s, b) = env
            .raw(
                Request::post("/v1/seals/verify")
                    .body(Body::from("not a pdf"))
                    .unwrap(),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(String::from_utf8_lossy(&b).contains("PDF-0001"));
    }

    /// A small PDF with `pages` pages and a classic cross-reference table.
    pub fn tiny_pdf(pages: usize) -> Vec<u8> {
        let mut objs: Vec<String> = vec![
            "<< /Type /Catalog /Pages 2 0 R >>".into(),
            String::new(), // pages, filled below
        ];
        let mut kids = Vec::new();
        for p in 0..pages {
            let page = objs.len() + 1;
            let content = page + 1;
            kids.push(format!("{page} 0 R"));
            objs.push(format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents {content} 0 R >>"
            ));
            let text = format!("BT /F1 12 Tf 72 700 Td (page {}) Tj ET", p + 1);
            objs.push(format!(
                "<< /Length {} >>\nstream\n{text}\nendstream",
                text.len()
            ));
        }
        objs[1] = format!(
            "<< /Type /Pages /Kids [{}] /Count {pages} >>",
            kids.join(" ")
        );
        let mut out = b"%PDF-1.7\n".to_vec();
        let mut offsets = Vec::new();
        for (i, o) in objs.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
        }
        let xref = out.len();
        out.extend_from_slice(
            format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes(),
        );
        for o in offsets {
            out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
        }
        out.extend_from_slice(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
                objs.len() + 1
            )
            .as_bytes(),
        );
        out
    }

    async fn post_pdf(env: &Env, uri: &str, pdf: Vec<u8>) -> (StatusCode, Vec<u8>) {
        env.raw(
            Request::post(uri)
                .header("authorization", format!("Bearer {}", env.token))
                .header("content-type", "application/pdf")
                .body(Body::from(pdf))
                .unwrap(),
        )
        .await
    }

    fn byte_range(doc: &[u8]) -> Vec<[usize; 4]> {
        let text = String::from_utf8_lossy(doc);
        let mut out = Vec::new();
        let mut rest = &text[..];
        while let Some(i) = rest.find("/ByteRange") {
            let after = &rest[i..];
            let open = after.find('[').unwrap();
            let close = after.find(']').unwrap();
            let nums: Vec<usize> = after[open + 1..close]
                .split_whitespace()
                .map(|n| n.parse().unwrap())
                .collect();
            out.push([nums[0], nums[1], nums[2], nums[3]]);
            rest = &after[close..];
        }
        out
    }

    async fn seal_lifecycle_and_sealing(env: Env) {
        let owner = elicense::demo::authorities()[0].0.clone();
        let (s, v) = env
            .call(
                "POST",
                "/v1/seals",
                Some(&json!({"owner": owner, "kind": "contract", "name": "合同专用章"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let id = v["id"].as_str().unwrap().to_string();
        assert_eq!(v["status"], "active");
        // Bad fields are reported by path.
        let (s, v2) = env
            .call(
                "POST",
                "/v1/seals",
                Some(&json!({"owner": "91340600MA2N0X0X13", "kind": "stamp", "name": ""})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v2}");
        let paths: Vec<&str> = v2["details"]["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, ["/owner", "/kind", "/name"]);
        let (_, list) = env
            .call("GET", &format!("/v1/seals?owner={owner}"), None)
            .await;
        assert!(
            list.as_array()
                .unwrap()
                .iter()
                .any(|x| x["id"] == id.as_str())
        );

        // Seal a two-page document: visible B-B, then a second, invisible B-T seal on top.
        let original = tiny_pdf(2);
        let (s, once) = post_pdf(
            &env,
            &format!("/v1/seals/{id}/sign?level=B-B&page=2&x=100&y=100"),
            original.clone(),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&once));
        assert!(
            once.starts_with(&original),
            "an incremental update keeps the original bytes"
        );
        let (s, twice) = post_pdf(
            &env,
            &format!("/v1/seals/{id}/sign?level=B-T"),
            once.clone(),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&twice));
        assert!(
            twice.starts_with(&once),
            "the second seal keeps the first revision intact"
        );
        let ranges = byte_range(&twice);
        assert_eq!(ranges.len(), 2);
        // The first signature covers exactly the first sealed revision, the second the whole file.
        assert_eq!(ranges[0][0], 0);
        assert_eq!(ranges[0][2] + ranges[0][3], once.len());
        assert_eq!(ranges[1][2] + ranges[1][3], twice.len());
        // The gap is exactly the hex /Contents, and the signed bytes hash to the CMS digest.
        for r in &ranges {
            assert_eq!(twice[r[1]], b'<');
            assert_eq!(twice[r[2] - 1], b'>');
            let mut signed = twice[r[0]..r[1]].to_vec();
            signed.extend_from_slice(&twice[r[2]..r[2] + r[3]]);
            let digest = ring::digest::digest(&ring::digest::SHA256, &signed);
            let cms = hex::decode(&twice[r[1] + 1..r[2] - 1]).unwrap();
            assert!(
                cms.windows(32).any(|w| w == digest.as_ref()),
                "the messageDigest attribute holds the hash of the byte ranges"
            );
        }
        let text = String::from_utf8_lossy(&twice);
        assert_eq!(text.matches("/ETSI.CAdES.detached").count(), 2);
        assert!(
            !text.contains("1.2.840.113549.1.9.5"),
            "no signing-time attribute"
        );

        // Suspended: refused; reinstated: signs again; revoked: refused and in the CRL.
        let status = |st: &str| json!({"status": st, "reason": "superseded"});
        let (s, _) = env
            .call(
                "POST",
                &format!("/v1/seals/{id}/status"),
                Some(&status("suspended")),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, b) = post_pdf(
            &env,
            &format!("/v1/seals/{id}/sign?level=B-B"),
            original.clone(),
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT);
        assert!(String::from_utf8_lossy(&b).contains("SEAL-0002"));
        let (s, _) = env
            .call(
                "POST",
                &format!("/v1/seals/{id}/status"),
                Some(&status("active")),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = post_pdf(
            &env,
            &format!("/v1/seals/{id}/sign?level=B-B"),
            original.clone(),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let (s, v) = env
            .call(
                "POST",
                &format!("/v1/seals/{id}/status"),
                Some(&status("revoked")),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let serial = v["certificate_serial"].as_str().unwrap().to_string();
        let (s, _) = post_pdf(
            &env,
            &format!("/v1/seals/{id}/sign?level=B-B"),
            original.clone(),
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT);
        let (s, _) = env
            .call(
                "POST",
                &format!("/v1/seals/{id}/status"),
                Some(&status("active")),
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "revocation is final");
        let (_, crl) = env
            .raw(Request::get("/v1/pki/crl").body(Body::empty()).unwrap())
            .await;
        let (_, crl) = x509_parser::parse_x509_crl(&crl).unwrap();
        assert!(
            crl.iter_revoked_certificates()
                .any(|r| hex::encode(r.raw_serial()) == serial),
            "the revoked seal's certificate is in the CRL"
        );
        let (s, b) = post_pdf(&env, "/v1/seals/seal-0000000000000000/sign", original).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert!(String::from_utf8_lossy(&b).contains("SEAL-0001"));
    }

    async fn hostile_pdfs_are_refused_with_codes(env: Env) {
        let owner = elicense::demo::authorities()[1].0.clone();
        let (_, v) = env
            .call(
                "POST",
                "/v1/seals",
                Some(&json!({"owner": owner, "kind": "official", "name": "公章"})),
            )
            .await;
        let id = v["id"].as_str().unwrap().to_string();
        let good = tiny_pdf(1);
        let text = String::from_utf8_lossy(&good).to_string();
        let xref_at = text.find("xref\n").unwrap();
        let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "not a PDF",
                b"hello, this is not a PDF at all, not even close".to_vec(),
                "PDF-0001",
            ),
            ("truncated", good[..good.len() / 2].to_vec(), "PDF-0001"),
            ("empty", Vec::new(), "PDF-0001"),
            (
                "broken xref",
                text.replacen("xref\n0 ", "xref\nX ", 1).into_bytes(),
                "PDF-0001",
            ),
            (
                "startxref pointing nowhere",
                text.replace(&format!("startxref\n{xref_at}"), "startxref\n999999999")
                    .into_bytes(),
                "PDF-0001",
            ),
            (
                "encrypted",
                text.replace(
                    "/Root 1 0 R >>",
                    "/Root 1 0 R /Encrypt << /Filter /Standard /V 2 >> >>",
                )
                .into_bytes(),
                "PDF-0002",
            ),
            (
                "huge object count",
                text.replace("trailer\n<< /Size 5", "trailer\n<< /Size 999999999")
                    .into_bytes(),
                "PDF-0003",
            ),
            (
                "page tree cycle",
                text.replace("/Kids [3 0 R]", "/Kids [2 0 R]").into_bytes(),
                "PDF-0001",
            ),
        ];
        // Nesting far deeper than any real document, in the catalog.
        let deep = text.replace(
            "<< /Type /Catalog /Pages 2 0 R >>",
            &format!(
                "<< /Type /Catalog /Pages 2 0 R /X {}1{} >>",
                "[".repeat(5000),
                "]".repeat(5000)
            ),
        );
        // (offsets after the catalog move; the parser must fail cleanly either way)
        cases.push(("deep nesting", deep.into_bytes(), "PDF-000"));
        for (what, pdf, code) in cases {
            let (s, b) = post_pdf(&env, &format!("/v1/seals/{id}/sign?level=B-B"), pdf).await;
            let body = String::from_utf8_lossy(&b);
            assert!(s.is_client_error(), "{what}: {s} {body}");
            assert!(body.contains(code), "{what}: expected {code}, got {body}");
        }
        // Page out of range and a cross-page seal on one page are request errors.
        let (s, _) = post_pdf(
            &env,
            &format!("/v1/seals/{id}/sign?level=B-B&page=7&x=1&y=1"),
            good.clone(),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, _) = post_pdf(
            &env,
            &format!("/v1/seals/{id}/sign?level=B-B&cross_page=all"),
            good.clone(),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        // Certified with no changes allowed (DocMDP P=1): refused as locked.
        let locked = String::from_utf8_lossy(&good).replace(
            "<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Catalog /Pages 2 0 R /Perms << /DocMDP << /Reference [<< /TransformParams << /P 1 >> >>] >> >> >>",
        );
        let (s, b) = post_pdf(
            &env,
            &format!("/v1/seals/{id}/sign?level=B-B"),
            locked.into_bytes(),
        )
        .await;
        assert!(s.is_client_error(), "{s}");
        let body = String::from_utf8_lossy(&b);
        assert!(
            body.contains("PDF-0004") || body.contains("PDF-0001"),
            "{body}"
        );
    }

    async fn timestamp_authority_answers_rfc3161(env: Env) {
        use der::{Decode, Encode};
        let digest = ring::digest::digest(&ring::digest::SHA256, b"document");
        let req = x509_tsp::TimeStampReq {
            version: x509_tsp::TspVersion::V1,
            message_imprint: x509_tsp::MessageImprint {
                hash_algorithm: spki::AlgorithmIdentifier {
                    oid: elicense::seal::cms::ID_SHA256,
                    parameters: None,
                },
                hashed_message: der::asn1::OctetString::new(digest.as_ref()).unwrap(),
            },
            req_policy: None,
            nonce: Some(der::asn1::Int::new(&[0x01, 0x02, 0x03]).unwrap()),
            cert_req: true,
            extensions: None,
        }
        .to_der()
        .unwrap();
        let (s, body) = env
            .raw(
                Request::post("/tsa")
                    .header("content-type", "application/timestamp-query")
                    .body(Body::from(req.clone()))
                    .unwrap(),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let resp = x509_tsp::TimeStampResp::from_der(&body).unwrap();
        assert_eq!(resp.status.status, cmpv2::status::PkiStatus::Accepted);
        let token = resp.time_stamp_token.unwrap();
        let sd = cms::signed_data::SignedData::from_der(&token.content.to_der().unwrap()).unwrap();
        let tst =
            x509_tsp::TstInfo::from_der(sd.encap_content_info.econtent.unwrap().value()).unwrap();
        assert_eq!(
            tst.message_imprint.hashed_message.as_bytes(),
            digest.as_ref()
        );
        assert_eq!(tst.nonce.unwrap().as_bytes(), [0x01, 0x02, 0x03]);
        // Wrong content type and garbage are refused with TSA-0001.
        for (ct, b) in [
            ("application/octet-stream", req.clone()),
            ("application/timestamp-query", b"junk".to_vec()),
        ] {
            let (s, body) = env
                .raw(
                    Request::post("/tsa")
                        .header("content-type", ct)
                        .body(Body::from(b))
                        .unwrap(),
                )
                .await;
            assert_eq!(s, StatusCode::BAD_REQUEST);
            assert!(String::from_utf8_lossy(&body).contains("TSA-0001"));
        }
    }
}
