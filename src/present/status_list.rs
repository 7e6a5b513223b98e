//! The region's status list, after the IETF Token Status List: two bits per license at the
//! index stored on it — 0 valid, 1 invalid (revoked, withdrawn, cancelled, expired),
//! 2 suspended — zlib-compressed, signed by the service signer (COSE_Sign1, certificate in
//! x5chain) as `ELS1:` + base64url. An officer with a fresh list knows a license's status
//! offline; the list is rebuilt on request, so it reflects a status change at once.

use super::{Check, StatusInfo, Verdict};
use crate::app::App;
use crate::error::{Error, Result};
use crate::license::Status;
use crate::license::record::Canonical;
use base64::Engine;
use serde_json::{Value, json};
use std::io::{Read, Write};

/// Text form prefix.
pub const PREFIX: &str = "ELS1:";
/// A list is meant to be refreshed within this many seconds.
pub const TTL_SECONDS: i64 = 300;

/// The 2-bit value of a status.
pub fn bits_of(status: Status) -> u8 {
    match status {
        Status::Valid => 0,
        Status::Suspended => 2,
        _ => 1,
    }
}

/// Builds and signs the current list.
pub async fn build(app: &App) -> Result<String> {
    let today = crate::license::service::fmt_date_pub(app.clock.today());
    let entries = app.store.status_entries().await?;
    let len = entries.last().map(|e| e.0 + 1).unwrap_or(0);
    let mut bytes = vec![0u8; usize::try_from(len).unwrap_or(0).div_ceil(4)];
    for (index, code, valid_to) in entries {
        let mut status = Status::from_code(&code).unwrap_or(Status::Valid);
        if status == Status::Valid && valid_to.is_some_and(|t| t < today) {
            status = Status::Expired;
        }
        let i = usize::try_from(index).unwrap_or(0);
        if let Some(b) = bytes.get_mut(i / 4) {
            *b |= bits_of(status) << ((i % 4) * 2);
        }
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&bytes).map_err(Error::internal)?;
    let lst = z.finish().map_err(Error::internal)?;
    let now = app.clock.unix();
    let payload = json!({
        "iss": app.licenses.region_code().await?, "iat": now, "exp": now + TTL_SECONDS * 12,
        "ttl": TTL_SECONDS,
        "status_list": {"bits": 2, "lst": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(lst)},
    });
    let body = serde_json::to_vec(&Canonical(&payload)).map_err(Error::internal)?;
    let cose = crate::verify::receipt::sign_x5chain(&app.pki, &body).await?;
    Ok(format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(cose)
    ))
}

/// A status list that verified: region, issue time, and the 2-bit array.
#[derive(Debug, Clone)]
pub struct StatusList {
    pub region: String,
    pub issued_at: i64,
    bytes: Vec<u8>,
}

impl StatusList {
    /// The status bits at `index`, when the list covers it.
    pub fn get(&self, index: i64) -> Option<u8> {
        let i = usize::try_from(index).ok()?;
        self.bytes.get(i / 4).map(|b| (b >> ((i % 4) * 2)) & 0b11)
    }
}

/// Opens a list signed by a signer chaining to one of `roots`.
pub fn open(text: &str, roots: &[Vec<u8>]) -> Result<StatusList> {
    let bad = |why: String| Error::BadTrustList {
        reason: format!("status list: {why}"),
    };
    let b = text
        .trim()
        .strip_prefix(PREFIX)
        .ok_or_else(|| bad("does not start with ELS1:".into()))?;
    let cose = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b)
        .map_err(|_| bad("not base64url".into()))?;
    let (payload, _) = crate::verify::receipt::open_x5chain(&cose, roots, "iat").map_err(bad)?;
    let lst = payload
        .pointer("/status_list/lst")
        .and_then(Value::as_str)
        .and_then(|l| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(l)
                .ok()
        })
        .ok_or_else(|| bad("no list".into()))?;
    if payload.pointer("/status_list/bits").and_then(Value::as_i64) != Some(2) {
        return Err(bad("only 2-bit lists are understood".into()));
    }
    let mut bytes = Vec::new();
    flate2::read::ZlibDecoder::new(lst.as_slice())
        .take(64 << 20)
        .read_to_end(&mut bytes)
        .map_err(|_| bad("the list is not zlib data".into()))?;
    Ok(StatusList {
        region: payload
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        issued_at: payload.get("iat").and_then(Value::as_i64).unwrap_or(0),
        bytes,
    })
}

/// Replaces a check's stapled status by the list's, when the list is newer and covers it.
pub fn apply(c: &mut Check, list: &StatusList, index: Option<i64>, now: i64) {
    let authentic = !matches!(
        c.verdict,
        Verdict::Forged | Verdict::UnknownIssuer | Verdict::Malformed
    );
    let (Some(index), true) = (index, authentic) else {
        return;
    };
    if c.region.as_deref() != Some(list.region.as_str()) {
        return;
    }
    let stapled_as_of = c.status.as_ref().map(|s| s.as_of).unwrap_or(0);
    let Some(bits) = list.get(index) else {
        return;
    };
    if list.issued_at < stapled_as_of {
        return;
    }
    let (code, verdict) = match bits {
        0 => ("01", Verdict::Valid),
        2 => ("02", Verdict::Suspended),
        _ => ("07", Verdict::Revoked),
    };
    c.status = Some(StatusInfo {
        code: code.into(),
        as_of: list.issued_at,
        freshness: if now - list.issued_at <= super::STATUS_FRESH_SECONDS {
            "fresh"
        } else {
            "stale"
        }
        .into(),
        source: "status_list".into(),
    });
    if c.verdict != Verdict::CodeExpired {
        c.verdict = verdict;
        c.reason = format!("authentic; status list says {code}");
    }
}
