//! A bounded memo of issuer signatures that verified.
//!
//! Case systems verify the same licenses again and again while cases move through matters, and
//! the ECDSA verification of the stored record is the largest single cost of a verification.
//! ECDSA verification is a pure function of (public key, signature, signed bytes), so its
//! success can be remembered under a SHA-256 of exactly those bytes: any change to the record,
//! the signature or the key gives another digest and is verified afresh. Only successes are
//! remembered; a failure is recomputed every time. Revocation, validity windows and status are
//! never memoized — they are checked on every call by the caller.
//!
//! Memory is bounded: two generations of at most `entries / 2` digests each; when the newer
//! one fills up, the older one is dropped (an entry used since then was promoted), so the memo
//! keeps roughly the most recently used `entries / 2` to `entries` signatures.

use crate::license::record::{self, SignatureError};
use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Default size: 65,536 signatures, about 5 MB.
pub const DEFAULT_ENTRIES: usize = 65_536;

type Digest = [u8; 32];

#[derive(Debug, Default)]
struct Generations {
    newer: HashSet<Digest>,
    older: HashSet<Digest>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct SignatureMemo {
    half: usize,
    gens: Mutex<Generations>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Hits and misses since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoStats {
    pub hits: u64,
    pub misses: u64,
}

fn digest(cose: &[u8], payload: &[u8], public_key: &[u8]) -> Digest {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"elicense signature memo v1\0");
    // Lengths first, so no two different triples hash the same concatenation.
    for part in [public_key, cose, payload] {
        ctx.update(&(part.len() as u64).to_be_bytes());
    }
    ctx.update(public_key);
    ctx.update(cose);
    ctx.update(payload);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

impl SignatureMemo {
    /// A memo of about `entries` signatures; 0 turns it off (every call verifies).
    pub fn new(entries: usize) -> Self {
        SignatureMemo {
            half: entries / 2,
            gens: Mutex::new(Generations::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// [`record::verify_detached`], skipping the ECDSA verification when exactly these bytes
    /// verified before.
    pub fn verify_detached(
        &self,
        cose: &[u8],
        payload: &[u8],
        public_key: &[u8],
    ) -> Result<(), SignatureError> {
        if self.half == 0 {
            return record::verify_detached(cose, payload, public_key);
        }
        let key = digest(cose, payload, public_key);
        if self.seen(&key) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        record::verify_detached(cose, payload, public_key)?;
        self.remember(key);
        Ok(())
    }

    fn seen(&self, key: &Digest) -> bool {
        let Ok(mut g) = self.gens.lock() else {
            return false;
        };
        if g.newer.contains(key) {
            return true;
        }
        if g.older.remove(key) {
            Self::insert(&mut g, self.half, *key);
            return true;
        }
        false
    }

    fn remember(&self, key: Digest) {
        if let Ok(mut g) = self.gens.lock() {
            Self::insert(&mut g, self.half, key);
        }
    }

    fn insert(g: &mut Generations, half: usize, key: Digest) {
        if g.newer.len() >= half {
            g.older = std::mem::take(&mut g.newer);
        }
        g.newer.insert(key);
    }

    pub fn stats(&self) -> MemoStats {
        MemoStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// Signatures remembered now.
    pub fn len(&self) -> usize {
        self.gens
            .lock()
            .map(|g| g.newer.len() + g.older.len())
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::license::record::tests::TestKey;
    use crate::pki::Signer;

    #[test]
    fn remembers_only_exact_successes() {
        let k = TestKey::generate();
        let public = k.public_key().to_vec();
        let payload = br#"{"fields":{"name":"x"}}"#.to_vec();
        let cose = record::sign_detached(&payload, b"kid", &k).unwrap();
        let memo = SignatureMemo::new(16);
        memo.verify_detached(&cose, &payload, &public).unwrap();
        assert_eq!(memo.stats(), MemoStats { hits: 0, misses: 1 });
        memo.verify_detached(&cose, &payload, &public).unwrap();
        assert_eq!(memo.stats(), MemoStats { hits: 1, misses: 1 });
        // Any changed byte of the record, the signature or the key is verified afresh and fails.
        for i in 0..payload.len() {
            let mut p = payload.clone();
            p[i] ^= 1;
            assert!(
                memo.verify_detached(&cose, &p, &public).is_err(),
                "byte {i}"
            );
        }
        // A changed byte of the COSE structure answers exactly what a fresh verification does
        // (a few bytes are not signed: null vs undefined as the detached payload marker).
        for i in 0..cose.len() {
            let mut c = cose.clone();
            c[i] ^= 1;
            let fresh = record::verify_detached(&c, &payload, &public);
            assert_eq!(
                memo.verify_detached(&c, &payload, &public),
                fresh,
                "byte {i}"
            );
        }
        let mut sig = cose.clone();
        let last = sig.len() - 1;
        sig[last] ^= 1;
        assert!(memo.verify_detached(&sig, &payload, &public).is_err());
        let other = TestKey::generate().public_key().to_vec();
        assert!(memo.verify_detached(&cose, &payload, &other).is_err());
        // Failures are never remembered.
        let mut p = payload.clone();
        p[0] ^= 1;
        let remembered = memo.len();
        assert!(memo.verify_detached(&cose, &p, &public).is_err());
        assert_eq!(memo.len(), remembered);
        assert_eq!(memo.stats().hits, 1);
    }

    #[test]
    fn stays_bounded_and_keeps_recent_entries() {
        let k = TestKey::generate();
        let public = k.public_key().to_vec();
        let memo = SignatureMemo::new(8);
        let signed: Vec<(Vec<u8>, Vec<u8>)> = (0..20)
            .map(|i| {
                let p = format!("record {i}").into_bytes();
                let c = record::sign_detached(&p, b"kid", &k).unwrap();
                (c, p)
            })
            .collect();
        for (c, p) in &signed {
            memo.verify_detached(c, p, &public).unwrap();
            assert!(memo.len() <= 8);
        }
        let before = memo.stats();
        let (c, p) = signed.last().unwrap();
        memo.verify_detached(c, p, &public).unwrap();
        assert_eq!(memo.stats().hits, before.hits + 1);
        let (c, p) = signed.first().unwrap();
        memo.verify_detached(c, p, &public).unwrap();
        assert_eq!(memo.stats().misses, before.misses + 1);
    }

    #[test]
    fn off_when_zero() {
        let k = TestKey::generate();
        let public = k.public_key().to_vec();
        let cose = record::sign_detached(b"x", b"kid", &k).unwrap();
        let memo = SignatureMemo::new(0);
        memo.verify_detached(&cose, b"x", &public).unwrap();
        memo.verify_detached(&cose, b"x", &public).unwrap();
        assert_eq!(memo.stats(), MemoStats { hits: 0, misses: 0 });
        assert!(memo.is_empty());
    }
}
