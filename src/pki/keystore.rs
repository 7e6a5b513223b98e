//! The key store: private keys sealed with AES-256-GCM under a master key.
//!
//! | what | policy |
//! | --- | --- |
//! | algorithm | ECDSA P-256 with SHA-256 (ES256) for every key the region holds |
//! | at rest | PKCS#8 sealed with AES-256-GCM, random 96-bit nonce, key id as associated data |
//! | master key | 32 random bytes, base64, from `ELICENSE_MASTER_KEY` or a 0600 file |
//! | in memory | decrypted PKCS#8 in `Zeroizing` buffers; signing keys cached as ring key pairs |
//! | leaving the store | never: no API returns or logs private key material |
//!
//! The [`Signer`] trait is the seam where a PKCS#11 module (HSM) plugs in: code that signs only
//! sees a `Signer`, never key bytes.

use crate::error::{Error, Result};
use crate::store::{KeyRow, Store};
use base64::Engine;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use zeroize::Zeroizing;

/// The environment variable that may hold the master key (base64 of 32 bytes).
pub const MASTER_KEY_ENV: &str = "ELICENSE_MASTER_KEY";

/// The key-encryption key. Its `Debug` prints nothing secret.
pub struct MasterKey(LessSafeKey);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| Error::KeyStore {
            reason: "the master key must be 32 bytes".into(),
        })?;
        Ok(MasterKey(LessSafeKey::new(key)))
    }

    fn from_base64(text: &str) -> Result<Self> {
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| Error::KeyStore {
                    reason: "the master key is not valid base64".into(),
                })?,
        );
        Self::from_bytes(&bytes)
    }

    /// Loads the master key: the environment variable wins, then the file.
    pub fn load(file: &Path) -> Result<Self> {
        if let Some(v) = master_key_env() {
            return Self::from_base64(&v);
        }
        let text = Zeroizing::new(std::fs::read_to_string(file).map_err(|e| Error::KeyStore {
            reason: format!("cannot read master key file {}: {e}", file.display()),
        })?);
        check_permissions(file)?;
        Self::from_base64(&text)
    }

    /// Loads the master key, or creates a new key file (mode 0600) when neither exists.
    pub fn load_or_create(file: &Path) -> Result<Self> {
        if master_key_env().is_some() || file.exists() {
            return Self::load(file);
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| Error::internal("random generator failed"))?;
        let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(bytes.as_ref()));
        write_private_file(file, text.as_bytes())?;
        Self::from_bytes(bytes.as_ref())
    }
}

/// The master key from the environment; an empty variable counts as unset.
fn master_key_env() -> Option<Zeroizing<String>> {
    std::env::var(MASTER_KEY_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(Zeroizing::new)
}

/// Writes a file that only the owner may read (0600), refusing to overwrite.
pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| Error::KeyStore {
        reason: format!("cannot create {}: {e}", path.display()),
    })?;
    f.write_all(contents)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::KeyStore {
            reason: format!("cannot write {}: {e}", path.display()),
        })
}

fn check_permissions(file: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file)
            .map_err(|e| Error::KeyStore {
                reason: e.to_string(),
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(Error::KeyStore {
                reason: format!(
                    "master key file {} is readable by others (mode {:o}); chmod 600 it",
                    file.display(),
                    mode & 0o777
                ),
            });
        }
    }
    Ok(())
}

/// Something that signs with a private key it does not reveal.
pub trait Signer: Send + Sync {
    /// The key's identifier in the key store.
    fn key_id(&self) -> &str;
    /// The public key as an uncompressed SEC1 point.
    fn public_key(&self) -> &[u8];
    /// ES256 signature in the fixed `r || s` form (COSE, JWS).
    fn sign_fixed(&self, msg: &[u8]) -> Result<Vec<u8>>;
    /// ES256 signature as a DER `ECDSA-Sig-Value` (X.509, CMS).
    fn sign_der(&self, msg: &[u8]) -> Result<Vec<u8>>;
}

/// A software key held in process memory.
pub struct SoftwareKey {
    id: String,
    fixed: EcdsaKeyPair,
    der: EcdsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SoftwareKey({})", self.id)
    }
}

impl SoftwareKey {
    fn from_pkcs8(id: &str, pkcs8: &[u8]) -> Result<Self> {
        let rng = SystemRandom::new();
        let bad = |_| Error::KeyStore {
            reason: format!("key {id} is not a valid P-256 PKCS#8 key"),
        };
        Ok(SoftwareKey {
            id: id.to_string(),
            fixed: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
                .map_err(bad)?,
            der: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &rng)
                .map_err(bad)?,
            rng,
        })
    }
}

impl Signer for SoftwareKey {
    fn key_id(&self) -> &str {
        &self.id
    }
    fn public_key(&self) -> &[u8] {
        self.fixed.public_key().as_ref()
    }
    fn sign_fixed(&self, msg: &[u8]) -> Result<Vec<u8>> {
        self.fixed
            .sign(&self.rng, msg)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| Error::internal("ECDSA signing failed"))
    }
    fn sign_der(&self, msg: &[u8]) -> Result<Vec<u8>> {
        self.der
            .sign(&self.rng, msg)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| Error::internal("ECDSA signing failed"))
    }
}

/// Adapts a [`Signer`] to rcgen, so certificates and CRLs are signed through the same seam.
pub struct RcgenSigner<'a>(pub &'a dyn Signer);

impl rcgen::PublicKeyData for RcgenSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0.public_key()
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for RcgenSigner<'_> {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        self.0
            .sign_der(msg)
            .map_err(|_| rcgen::Error::RingUnspecified)
    }
}

/// A public key only, for certificates of keys we do not hold in this step.
pub struct PublicKey(pub Vec<u8>);

impl rcgen::PublicKeyData for PublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

/// Keys sealed in the database, opened on demand and cached.
pub struct KeyStore {
    master: MasterKey,
    store: Store,
    cache: RwLock<HashMap<String, Arc<SoftwareKey>>>,
    rng: SystemRandom,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyStore(..)")
    }
}

impl KeyStore {
    pub fn new(master: MasterKey, store: Store) -> Self {
        KeyStore {
            master,
            store,
            cache: RwLock::new(HashMap::new()),
            rng: SystemRandom::new(),
        }
    }

    /// Generates a new P-256 key and returns its sealed row (for the caller to store in the same
    /// transaction as the certificate that uses it) and a signer for it.
    pub fn generate(&self, now: i64) -> Result<(KeyRow, Arc<SoftwareKey>)> {
        let pkcs8 = Zeroizing::new(
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &self.rng)
                .map_err(|_| Error::internal("key generation failed"))?
                .as_ref()
                .to_vec(),
        );
        let mut id_bytes = [0u8; 16];
        self.rng
            .fill(&mut id_bytes)
            .map_err(|_| Error::internal("random generator failed"))?;
        let id = hex::encode(id_bytes);
        let key = Arc::new(SoftwareKey::from_pkcs8(&id, &pkcs8)?);
        let sealed = self.seal(&id, &pkcs8)?;
        let row = KeyRow {
            id: id.clone(),
            algorithm: "ES256".into(),
            public_key: key.public_key().to_vec(),
            sealed,
            created_at: now,
        };
        self.cache
            .write()
            .map_err(|_| Error::internal("key cache poisoned"))?
            .insert(id, key.clone());
        Ok((row, key))
    }

    /// Seals a P-256 PKCS#8 key handed to us (e.g. the client key another region issued us);
    /// returns its row for the caller to store, and a signer.
    pub fn import_pkcs8(&self, pkcs8: &[u8], now: i64) -> Result<(KeyRow, Arc<SoftwareKey>)> {
        let mut id_bytes = [0u8; 16];
        self.rng
            .fill(&mut id_bytes)
            .map_err(|_| Error::internal("random generator failed"))?;
        let id = hex::encode(id_bytes);
        let key = Arc::new(SoftwareKey::from_pkcs8(&id, pkcs8)?);
        let row = KeyRow {
            id: id.clone(),
            algorithm: "ES256".into(),
            public_key: key.public_key().to_vec(),
            sealed: self.seal(&id, pkcs8)?,
            created_at: now,
        };
        Ok((row, key))
    }

    fn seal(&self, id: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| Error::internal("random generator failed"))?;
        let mut buf = plaintext.to_vec();
        self.master
            .0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(id.as_bytes()),
                &mut buf,
            )
            .map_err(|_| Error::internal("sealing failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        buf.iter_mut().for_each(|b| *b = 0);
        Ok(out)
    }

    fn open(&self, row: &KeyRow) -> Result<SoftwareKey> {
        let (nonce, ct) =
            row.sealed
                .split_at_checked(NONCE_LEN)
                .ok_or_else(|| Error::KeyStore {
                    reason: format!("key {} is truncated", row.id),
                })?;
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| Error::internal("bad nonce length"))?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let plain = self
            .master
            .0
            .open_in_place(nonce, Aad::from(row.id.as_bytes()), &mut buf)
            .map_err(|_| Error::KeyStore {
                reason: format!(
                    "key {} cannot be decrypted: wrong master key or tampered record",
                    row.id
                ),
            })?;
        SoftwareKey::from_pkcs8(&row.id, plain)
    }

    /// The signer for a stored key.
    pub async fn signer(&self, key_id: &str) -> Result<Arc<SoftwareKey>> {
        if let Some(k) = self
            .cache
            .read()
            .map_err(|_| Error::internal("key cache poisoned"))?
            .get(key_id)
        {
            return Ok(k.clone());
        }
        let row = self
            .store
            .key(key_id)
            .await?
            .ok_or_else(|| Error::KeyStore {
                reason: format!("key {key_id} is not in the key store"),
            })?;
        let key = Arc::new(self.open(&row)?);
        self.cache
            .write()
            .map_err(|_| Error::internal("key cache poisoned"))?
            .insert(key_id.to_string(), key.clone());
        Ok(key)
    }
}
