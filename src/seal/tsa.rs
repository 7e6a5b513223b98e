//! RFC 3161 time-stamping: the built-in authority (its own certificate with the critical
//! timeStamping usage, key in the key store) and a client for an external one.

use super::cms::{ID_CT_TSTINFO, ID_SHA256, Signed};
use super::pades::Timestamper;
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::pki::keystore::Signer;
use der::asn1::{GeneralizedTime, Int, ObjectIdentifier, OctetString};
use der::{Any, Decode, Encode};
use std::sync::Arc;
use x509_tsp::{Accuracy, MessageImprint, TimeStampReq, TimeStampResp, TspVersion, TstInfo};

/// ETSI EN 319 421 baseline time-stamp policy (best-practices-ts-policy).
pub const POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.2023.1.1");
const ID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const ID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

fn der_err(e: der::Error) -> Error {
    Error::internal(format!("DER: {e}"))
}

/// The built-in time-stamp authority.
pub struct BuiltinTsa {
    signer: Arc<dyn Signer>,
    /// Its certificate, then the root.
    chain: Vec<Vec<u8>>,
    clock: SharedClock,
}

impl BuiltinTsa {
    pub fn new(signer: Arc<dyn Signer>, chain: Vec<Vec<u8>>, clock: SharedClock) -> Self {
        BuiltinTsa {
            signer,
            chain,
            clock,
        }
    }

    /// Answers a DER TimeStampReq with a DER TimeStampResp (granted, with a token).
    pub fn respond(&self, req_der: &[u8]) -> Result<Vec<u8>> {
        let bad = |r: String| Error::BadTimestampRequest { reason: r };
        let req = TimeStampReq::from_der(req_der).map_err(|e| bad(format!("not DER: {e}")))?;
        let want = match req.message_imprint.hash_algorithm.oid {
            ID_SHA256 => 32,
            ID_SHA384 => 48,
            ID_SHA512 => 64,
            other => return Err(bad(format!("hash algorithm {other} is not supported"))),
        };
        if req.message_imprint.hashed_message.as_bytes().len() != want {
            return Err(bad("the hashed message has the wrong length".into()));
        }
        if let Some(p) = req.req_policy
            && p != POLICY
        {
            return Err(bad(format!("policy {p} is not offered (only {POLICY})")));
        }
        let token = self.token(req.message_imprint, req.nonce, req.cert_req)?;
        let mut out = Vec::with_capacity(token.len() + 16);
        // TimeStampResp ::= SEQUENCE { status PKIStatusInfo { status granted(0) }, token }
        let status = [0x30, 0x03, 0x02, 0x01, 0x00];
        let body_len = status.len() + token.len();
        out.push(0x30);
        der::Length::try_from(body_len)
            .and_then(|l| l.encode_to_vec(&mut out))
            .map_err(der_err)?;
        out.extend_from_slice(&status);
        out.extend_from_slice(&token);
        Ok(out)
    }

    fn token(&self, imprint: MessageImprint, nonce: Option<Int>, certs: bool) -> Result<Vec<u8>> {
        let now = self.clock.unix();
        let serial: [u8; 16] = positive_random()?;
        let info = TstInfo {
            version: TspVersion::V1,
            policy: POLICY,
            message_imprint: imprint,
            serial_number: Int::new(&serial).map_err(der_err)?,
            gen_time: GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(
                u64::try_from(now).unwrap_or(0),
            ))
            .map_err(der_err)?,
            accuracy: Some(Accuracy {
                seconds: Some(1),
                millis: None,
                micros: None,
            }),
            ordering: false,
            nonce,
            tsa: None,
            extensions: None,
        };
        let content = info.to_der().map_err(der_err)?;
        let digest = super::cms::sha256(&content);
        let chain: &[Vec<u8>] = if certs {
            &self.chain
        } else {
            self.chain.get(..1).unwrap_or_default()
        };
        let signed = Signed::new(
            self.signer.as_ref(),
            chain,
            ID_CT_TSTINFO,
            &digest,
            Some(content),
        )?;
        signed.to_der()
    }
}

impl Timestamper for BuiltinTsa {
    fn timestamp(&self, digest: &[u8; 32]) -> Result<Vec<u8>> {
        self.token(imprint(digest)?, None, true)
    }
}

/// Random bytes for a DER INTEGER (a token's serial number, a request's nonce) that encode as
/// they are: the first byte is 0x40..=0x7f, so the integer is positive and its encoding
/// minimal. With only the sign bit cleared, one draw in 256 began 0x00 followed by a byte
/// below 0x80, which `Int::new` keeps as a non-minimal encoding that strict DER decoders
/// (ours included) refuse: one built-in time-stamp in 256 did not verify.
fn positive_random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| Error::internal("random generator failed"))?;
    if let Some(first) = b.first_mut() {
        *first = (*first & 0x3f) | 0x40;
    }
    Ok(b)
}

fn imprint(digest: &[u8; 32]) -> Result<MessageImprint> {
    Ok(MessageImprint {
        hash_algorithm: spki::AlgorithmIdentifier {
            oid: ID_SHA256,
            parameters: None::<Any>,
        },
        hashed_message: OctetString::new(digest.to_vec()).map_err(der_err)?,
    })
}

/// An external RFC 3161 authority reached over HTTP (the token is signed, so the transport
/// need not be).
pub struct ExternalTsa {
    pub url: String,
}

impl Timestamper for ExternalTsa {
    fn timestamp(&self, digest: &[u8; 32]) -> Result<Vec<u8>> {
        use std::io::{Read, Write};
        let fail = |r: String| Error::TimestampUnavailable { reason: r };
        let nonce: [u8; 8] = positive_random()?;
        let req = TimeStampReq {
            version: TspVersion::V1,
            message_imprint: imprint(digest)?,
            req_policy: None,
            nonce: Some(Int::new(&nonce).map_err(der_err)?),
            cert_req: true,
            extensions: None,
        }
        .to_der()
        .map_err(der_err)?;
        let rest = self
            .url
            .strip_prefix("http://")
            .ok_or_else(|| fail("only http:// time-stamp URLs are supported".into()))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (rest.get(..i).unwrap_or(rest), rest.get(i..).unwrap_or("/")),
            None => (rest, "/"),
        };
        let addr = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let io = |e: std::io::Error| fail(format!("{}: {e}", self.url));
        let sock = std::net::ToSocketAddrs::to_socket_addrs(&addr)
            .map_err(io)?
            .next()
            .ok_or_else(|| fail(format!("{authority} does not resolve")))?;
        let mut tcp =
            std::net::TcpStream::connect_timeout(&sock, std::time::Duration::from_secs(5))
                .map_err(io)?;
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .map_err(io)?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/timestamp-query\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            req.len()
        );
        tcp.write_all(head.as_bytes()).map_err(io)?;
        tcp.write_all(&req).map_err(io)?;
        let mut resp = Vec::new();
        tcp.take(1 << 20).read_to_end(&mut resp).map_err(io)?;
        let split = crate::pdf::find(&resp, b"\r\n\r\n")
            .ok_or_else(|| fail("malformed HTTP answer".into()))?;
        let status_line = String::from_utf8_lossy(resp.get(..split).unwrap_or_default())
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        if !status_line.contains(" 200") {
            return Err(fail(format!("answered {status_line}")));
        }
        let body = resp.get(split + 4..).unwrap_or_default();
        let parsed = TimeStampResp::from_der(body).map_err(|e| fail(format!("bad answer: {e}")))?;
        let token = parsed
            .time_stamp_token
            .ok_or_else(|| fail("the authority granted no token".into()))?;
        // The token must be for this digest and this request (nonce) before it goes into a seal.
        let sd = cms::signed_data::SignedData::from_der(&token.content.to_der().map_err(der_err)?)
            .map_err(|e| fail(format!("bad token: {e}")))?;
        let info = sd
            .encap_content_info
            .econtent
            .as_ref()
            .map(|c| TstInfo::from_der(c.value()))
            .transpose()
            .map_err(|e| fail(format!("bad token: {e}")))?
            .ok_or_else(|| fail("the token has no TSTInfo".into()))?;
        if info.message_imprint.hashed_message.as_bytes() != digest.as_slice() {
            return Err(fail("the token is for another digest".into()));
        }
        if info.nonce.as_ref().map(|n| n.as_bytes())
            != Some(Int::new(&nonce).map_err(der_err)?.as_bytes())
        {
            return Err(fail("the token does not echo our nonce".into()));
        }
        token.to_der().map_err(der_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::{Decode, Encode};

    /// Every drawn serial and nonce survives a strict DER round trip (the sign-bit-only draw
    /// failed this within a few hundred draws).
    #[test]
    fn random_integers_encode_as_minimal_positive_der() {
        for _ in 0..4000 {
            let serial: [u8; 16] = positive_random().unwrap();
            let der = Int::new(&serial).unwrap().to_der().unwrap();
            let back = Int::from_der(&der).expect("minimal DER");
            assert_eq!(back.as_bytes(), &serial[..]);
        }
    }
}
