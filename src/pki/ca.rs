//! Issuing the region's certificates and CRLs.

use super::keystore::{KeyStore, PublicKey, RcgenSigner, Signer};
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::store::{CertRow, CrlRow, KeyRow, RegionRow, Store};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CrlDistributionPoint,
    DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod,
    KeyUsagePurpose, RevocationReason, RevokedCertParams, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// id-kp-documentSigning (RFC 9336).
pub const EKU_DOCUMENT_SIGNING: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 36];
/// The same OID, DER-encoded content bytes (for rustls-webpki).
pub const EKU_DOCUMENT_SIGNING_DER: [u8; 8] = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x24];
/// organizationIdentifier (X.520).
const OID_ORGANIZATION_IDENTIFIER: &[u64] = &[2, 5, 4, 97];

const ROOT_YEARS: i64 = 20;
const AUTHORITY_YEARS: i64 = 5;
const CRL_DAYS: i64 = 7;
const SERVER_DAYS: i64 = 397;
const SIGNER_DAYS: i64 = 730;
const CLIENT_CA_YEARS: i64 = 10;
/// The longest a client certificate lives; a client CA that expires sooner is replaced.
pub const CLIENT_MAX_DAYS: i64 = 365 * 3;
/// The `certificates.kind` of a client CA.
const CLIENT_CA_KIND: &str = "client-ca";

/// The region's certificate authority.
#[derive(Clone)]
pub struct Pki {
    store: Store,
    keys: Arc<KeyStore>,
    clock: SharedClock,
    public_url: String,
    /// The root never changes once the region exists.
    root: Arc<std::sync::OnceLock<CertRow>>,
    /// The current service signer, time-stamp authority and client CA certificates.
    signer: Arc<std::sync::RwLock<std::collections::HashMap<&'static str, CertRow>>>,
    /// Only one task issues a new signer certificate at a time.
    signer_issue: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pki(..)")
    }
}

/// What differs between the leaf certificate profiles (the table in `pki/mod.rs`).
struct Leaf {
    kind: &'static str,
    /// Subject attributes after C=CN.
    subject: Vec<(DnType, DnValue)>,
    subject_text: String,
    owner: Option<String>,
    key_usages: Vec<KeyUsagePurpose>,
    /// The extended key usage (None when a custom, critical one is given in `extensions`).
    eku: Option<ExtendedKeyUsagePurpose>,
    extensions: Vec<rcgen::CustomExtension>,
    days: i64,
    sans: Vec<String>,
    crl_distribution_point: bool,
}

fn random_serial() -> Result<SerialNumber> {
    let mut b = [0u8; 16];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| Error::internal("random generator failed"))?;
    b[0] = (b[0] & 0x7f) | 0x40; // positive, 16 significant bytes
    Ok(SerialNumber::from_slice(&b))
}

fn printable(s: &str) -> Result<DnValue> {
    Ok(DnValue::PrintableString(
        s.try_into()
            .map_err(|_| Error::internal("not a PrintableString"))?,
    ))
}

fn to_time(unix: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(unix).map_err(|_| Error::internal("time out of range"))
}

impl Pki {
    pub fn new(store: Store, keys: Arc<KeyStore>, clock: SharedClock, public_url: String) -> Self {
        Pki {
            store,
            keys,
            clock,
            public_url,
            root: Arc::new(std::sync::OnceLock::new()),
            signer: Arc::new(std::sync::RwLock::new(std::collections::HashMap::new())),
            signer_issue: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    pub fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
    }

    /// Creates the region with its root CA and a first CRL.
    pub async fn init_region(&self, code: &str, name: &str) -> Result<RegionRow> {
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::bad_request(
                "the region code must be a 6-digit administrative division code",
            ));
        }
        if self.store.region().await?.is_some() {
            return Err(Error::AlreadyExists {
                what: "the region".into(),
            });
        }
        let now = self.clock.now();
        let (key_row, key) = self.keys.generate(now.unix_timestamp())?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, printable("CN")?);
        dn.push(DnType::OrganizationName, name);
        dn.push(DnType::CommonName, format!("{name} Root CA"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(365 * ROOT_YEARS);
        params.serial_number = Some(random_serial()?);
        params.key_identifier_method = KeyIdMethod::Sha256;
        let signer = RcgenSigner(key.as_ref());
        let cert = params
            .self_signed(&signer)
            .map_err(|e| Error::internal(format!("root certificate: {e}")))?;
        let row = cert_row(
            "root",
            format!("CN={name} Root CA, O={name}, C=CN"),
            None,
            Some(&key_row),
            cert.der().to_vec(),
            &params,
            now.unix_timestamp(),
        )?;
        let region = RegionRow {
            code: code.to_string(),
            name: name.to_string(),
            root_serial: row.serial.clone(),
            created_at: now.unix_timestamp(),
        };
        self.store.insert_region(&region, &key_row, &row).await?;
        self.issue_crl().await?;
        Ok(region)
    }

    /// The region, or an error telling the operator to run `init`.
    pub async fn region(&self) -> Result<RegionRow> {
        self.store.region().await?.ok_or(Error::NotInitialised)
    }

    /// The root CA certificate.
    pub async fn root(&self) -> Result<CertRow> {
        if let Some(r) = self.root.get() {
            return Ok(r.clone());
        }
        let region = self.region().await?;
        let root = self
            .store
            .certificate(&region.root_serial)
            .await?
            .ok_or_else(|| Error::internal("root certificate missing"))?;
        let _ = self.root.set(root.clone());
        Ok(root)
    }

    async fn with_issuer<T>(
        &self,
        ca: &CertRow,
        f: impl FnOnce(&Issuer<'_, RcgenSigner<'_>>) -> Result<T>,
    ) -> Result<T> {
        let key = self.keys.signer(ca.key()?).await?;
        let issuer = Issuer::from_ca_cert_der(&ca.der.clone().into(), RcgenSigner(key.as_ref()))
            .map_err(|e| Error::internal(format!("{} certificate unusable: {e}", ca.kind)))?;
        f(&issuer)
    }

    /// Where the CRL that speaks for certificates issued by `ca` is published.
    fn crl_url(&self, ca: &CertRow) -> String {
        let base = self.public_url.trim_end_matches('/');
        if ca.kind == CLIENT_CA_KIND {
            format!("{base}/v1/pki/client-ca/{}/crl", ca.serial)
        } else {
            format!("{base}/v1/pki/crl")
        }
    }

    /// Issues a leaf certificate of `profile` for `public`, signed by the root.
    async fn issue_leaf(
        &self,
        profile: Leaf,
        public: &impl rcgen::PublicKeyData,
        key: Option<&KeyRow>,
    ) -> Result<CertRow> {
        let root = self.root().await?;
        self.issue_leaf_by(&root, profile, public, key).await
    }

    /// Issues a leaf certificate of `profile` for `public`, signed by the CA `ca` (the root or
    /// the client CA), valid from now for its days (never past the CA). The common parts of
    /// every leaf profile live here.
    async fn issue_leaf_by(
        &self,
        ca: &CertRow,
        profile: Leaf,
        public: &impl rcgen::PublicKeyData,
        key: Option<&KeyRow>,
    ) -> Result<CertRow> {
        let now = self.clock.now();
        let mut params = CertificateParams::new(profile.sans)
            .map_err(|e| Error::bad_request(format!("certificate names: {e}")))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, printable("CN")?);
        for (t, v) in profile.subject {
            dn.push(t, v);
        }
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = profile.key_usages;
        params.extended_key_usages = profile.eku.into_iter().collect();
        params.custom_extensions = profile.extensions;
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - Duration::minutes(5);
        params.not_after = (now + Duration::days(profile.days)).min(to_time(ca.not_after)?);
        params.serial_number = Some(random_serial()?);
        if profile.crl_distribution_point {
            params.crl_distribution_points = vec![CrlDistributionPoint {
                uris: vec![self.crl_url(ca)],
            }];
        }
        let der = self
            .with_issuer(ca, |issuer| {
                params
                    .signed_by(public, issuer)
                    .map(|c| c.der().to_vec())
                    .map_err(|e| Error::internal(format!("{} certificate: {e}", profile.kind)))
            })
            .await?;
        cert_row(
            profile.kind,
            profile.subject_text,
            profile.owner,
            key,
            der,
            &params,
            now.unix_timestamp(),
        )
    }

    /// Generates a key and a seal-signing certificate for an authority. The caller stores both,
    /// with the authority, in one transaction.
    pub async fn new_authority_cert(
        &self,
        credit_code: &str,
        name: &str,
    ) -> Result<(KeyRow, CertRow)> {
        self.new_document_signing_cert("authority", credit_code, name, name)
            .await
    }

    /// Generates a key and a seal certificate (the document-signing profile of authorities) for
    /// a seal named `seal_name` of the organisation `credit_code`.
    pub async fn new_seal_cert(
        &self,
        credit_code: &str,
        organisation: &str,
        seal_name: &str,
    ) -> Result<(KeyRow, CertRow)> {
        self.new_document_signing_cert("seal", credit_code, organisation, seal_name)
            .await
    }

    async fn new_document_signing_cert(
        &self,
        kind: &'static str,
        credit_code: &str,
        organisation: &str,
        common_name: &str,
    ) -> Result<(KeyRow, CertRow)> {
        let (key_row, key) = self.keys.generate(self.clock.unix())?;
        let (name, cn) = (organisation, common_name);
        let profile = Leaf {
            kind,
            subject: vec![
                (DnType::OrganizationName, DnValue::from(name)),
                (
                    DnType::CustomDnType(OID_ORGANIZATION_IDENTIFIER.to_vec()),
                    DnValue::Utf8String(format!("NTRCN-{credit_code}")),
                ),
                (DnType::CommonName, DnValue::from(cn)),
            ],
            subject_text: format!(
                "CN={cn}, organizationIdentifier=NTRCN-{credit_code}, O={name}, C=CN"
            ),
            owner: Some(credit_code.to_string()),
            key_usages: vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::ContentCommitment,
            ],
            eku: Some(ExtendedKeyUsagePurpose::Other(
                EKU_DOCUMENT_SIGNING.to_vec(),
            )),
            extensions: Vec::new(),
            days: 365 * AUTHORITY_YEARS,
            sans: Vec::new(),
            crl_distribution_point: true,
        };
        let public = PublicKey(key.public_key().to_vec());
        let row = self.issue_leaf(profile, &public, Some(&key_row)).await?;
        Ok((key_row, row))
    }

    /// Issues the TLS server certificate for `hostnames` (DNS names or IP addresses); its key
    /// stays in the key store. Stored, with the key, before it is returned.
    pub async fn issue_server_cert(&self, hostnames: &[String]) -> Result<CertRow> {
        let region = self.region().await?;
        let (key_row, key) = self.keys.generate(self.clock.unix())?;
        let profile = Leaf {
            kind: "server",
            subject: vec![
                (DnType::OrganizationName, DnValue::from(region.name.clone())),
                (
                    DnType::CommonName,
                    DnValue::from(format!("elicense {}", region.code)),
                ),
            ],
            subject_text: format!("CN=elicense {}", region.code),
            owner: None,
            key_usages: vec![KeyUsagePurpose::DigitalSignature],
            eku: Some(ExtendedKeyUsagePurpose::ServerAuth),
            extensions: Vec::new(),
            days: SERVER_DAYS,
            sans: hostnames.to_vec(),
            crl_distribution_point: false,
        };
        let public = PublicKey(key.public_key().to_vec());
        let row = self.issue_leaf(profile, &public, Some(&key_row)).await?;
        self.store.insert_certificate(&row, Some(&key_row)).await?;
        Ok(row)
    }

    /// The service's own signing certificate (verification receipts, trust lists): the newest
    /// one, or a new one when there is none or it expires within 30 days. Its key stays in the
    /// key store.
    pub async fn service_signer(&self) -> Result<CertRow> {
        self.own_signer("signer").await
    }

    /// The built-in time-stamp authority's certificate (RFC 3161: the timeStamping extended key
    /// usage, alone and critical), renewed like the service signer.
    pub async fn tsa_signer(&self) -> Result<CertRow> {
        self.own_signer("tsa").await
    }

    async fn own_signer(&self, kind: &'static str) -> Result<CertRow> {
        let now = self.clock.unix();
        self.newest_or_issue(
            kind,
            Cache::Use,
            |c| c.not_after > now + 30 * 86_400,
            || self.issue_own_signer(kind, now),
        )
        .await
    }

    /// The newest unrevoked certificate of `kind` while `fresh` holds for it, else a new one
    /// from `issue` (which stores it). One issuance at a time in this process: the store is
    /// read again under the lock, so concurrent callers share the certificate the first made.
    /// With `Cache::Use` the answer comes from this process's cache while it is fresh; with
    /// `Cache::Skip` always from the store, so that a certificate revoked through another node
    /// is never used.
    async fn newest_or_issue<Fut>(
        &self,
        kind: &'static str,
        cache: Cache,
        fresh: impl Fn(&CertRow) -> bool,
        issue: impl FnOnce() -> Fut,
    ) -> Result<CertRow>
    where
        Fut: std::future::Future<Output = Result<CertRow>>,
    {
        let known = match cache {
            Cache::Use => self.signer.read().ok().and_then(|g| g.get(kind).cloned()),
            Cache::Skip => self.store.latest_certificate(kind).await?,
        };
        if let Some(c) = known
            && fresh(&c)
        {
            return Ok(c);
        }
        let _one_at_a_time = self.signer_issue.lock().await;
        let row = match self.store.latest_certificate(kind).await? {
            Some(c) if fresh(&c) => c,
            _ => issue().await?,
        };
        if cache == Cache::Use
            && let Ok(mut g) = self.signer.write()
        {
            g.insert(kind, row.clone());
        }
        Ok(row)
    }

    /// Issues and stores a new service signer or time-stamp authority certificate.
    async fn issue_own_signer(&self, kind: &'static str, now: i64) -> Result<CertRow> {
        let region = self.region().await?;
        let (key_row, key) = self.keys.generate(now)?;
        let (label, eku, extensions) = if kind == "tsa" {
            // SEQUENCE { id-kp-timeStamping }
            let mut ext = rcgen::CustomExtension::from_oid_content(
                &[2, 5, 29, 37],
                vec![
                    0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08,
                ],
            );
            ext.set_criticality(true);
            ("time-stamp authority", None, vec![ext])
        } else {
            (
                "service signer",
                Some(ExtendedKeyUsagePurpose::Other(
                    EKU_DOCUMENT_SIGNING.to_vec(),
                )),
                Vec::new(),
            )
        };
        let profile = Leaf {
            kind,
            subject: vec![
                (DnType::OrganizationName, DnValue::from(region.name.clone())),
                (
                    DnType::CommonName,
                    DnValue::from(format!("elicense {} {label}", region.code)),
                ),
            ],
            subject_text: format!("CN=elicense {} {label}", region.code),
            owner: None,
            key_usages: if kind == "tsa" {
                vec![KeyUsagePurpose::DigitalSignature]
            } else {
                vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::ContentCommitment,
                ]
            },
            eku,
            extensions,
            days: SIGNER_DAYS,
            sans: Vec::new(),
            crl_distribution_point: true,
        };
        let public = PublicKey(key.public_key().to_vec());
        let row = self.issue_leaf(profile, &public, Some(&key_row)).await?;
        self.store.insert_certificate(&row, Some(&key_row)).await?;
        Ok(row)
    }

    /// The region's client CA: the intermediate of the root that issues the TLS client
    /// certificates of case-handling systems, and only those (its extended key usage is
    /// clientAuth, its path length 0). The newest unrevoked one, or a new one when there is none
    /// or it would not outlive a client certificate issued now. Its key stays in the key store.
    ///
    /// It is always read from the store, never from this process's cache: it is needed only to
    /// issue a client certificate, to name it in the TLS handshake and to serve it, and a
    /// client CA revoked through another node must not issue here.
    pub async fn client_ca(&self) -> Result<CertRow> {
        let root = self.root().await?;
        let now = self.clock.unix();
        self.newest_or_issue(
            CLIENT_CA_KIND,
            Cache::Skip,
            |c| client_ca_fresh(c, &root, now),
            || self.issue_client_ca(&root, now),
        )
        .await
    }

    /// Issues and stores a new client CA certificate, signed by the root.
    async fn issue_client_ca(&self, root: &CertRow, now: i64) -> Result<CertRow> {
        let region = self.region().await?;
        let (key_row, key) = self.keys.generate(now)?;
        let name = &region.name;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, printable("CN")?);
        dn.push(DnType::OrganizationName, name.as_str());
        dn.push(DnType::CommonName, format!("{name} Client CA"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;
        let start = self.clock.now();
        params.not_before = start - Duration::minutes(5);
        params.not_after =
            (start + Duration::days(365 * CLIENT_CA_YEARS)).min(to_time(root.not_after)?);
        params.serial_number = Some(random_serial()?);
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![self.crl_url(root)],
        }];
        let public = PublicKey(key.public_key().to_vec());
        let der = self
            .with_issuer(root, |issuer| {
                params
                    .signed_by(&public, issuer)
                    .map(|c| c.der().to_vec())
                    .map_err(|e| Error::internal(format!("client CA certificate: {e}")))
            })
            .await?;
        let row = cert_row(
            CLIENT_CA_KIND,
            format!("CN={name} Client CA, O={name}, C=CN"),
            None,
            Some(&key_row),
            der,
            &params,
            now,
        )?;
        self.store.insert_certificate(&row, Some(&key_row)).await?;
        Ok(row)
    }

    /// The region's unrevoked client CAs, newest first (more than one while a client CA is
    /// replaced and certificates of the old one are still valid); creates the first.
    pub async fn client_cas(&self) -> Result<Vec<CertRow>> {
        let cas = self.store.certificates_of_kind(CLIENT_CA_KIND).await?;
        if cas.is_empty() {
            return Ok(vec![self.client_ca().await?]);
        }
        Ok(cas)
    }

    /// Issues a TLS client certificate for a case-handling system, signed by the client CA.
    /// The key pair is generated for the client and handed over once (PKCS#8 PEM); the region
    /// keeps only the certificate.
    pub async fn issue_client_cert(
        &self,
        client_id: &str,
        name: &str,
        days: i64,
    ) -> Result<(CertRow, zeroize::Zeroizing<String>)> {
        let region = self.region().await?;
        let ca = self.client_ca().await?;
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| Error::internal(format!("client key: {e}")))?;
        let profile = Leaf {
            kind: "client",
            subject: vec![
                (DnType::OrganizationName, DnValue::from(region.name.clone())),
                (DnType::OrganizationalUnitName, DnValue::from(name)),
                (DnType::CommonName, DnValue::from(client_id)),
            ],
            subject_text: format!("CN={client_id}, OU={name}"),
            owner: Some(client_id.to_string()),
            key_usages: vec![KeyUsagePurpose::DigitalSignature],
            eku: Some(ExtendedKeyUsagePurpose::ClientAuth),
            extensions: Vec::new(),
            days: days.clamp(1, CLIENT_MAX_DAYS),
            sans: Vec::new(),
            crl_distribution_point: true,
        };
        let row = self.issue_leaf_by(&ca, profile, &key, None).await?;
        self.store.insert_certificate(&row, None).await?;
        Ok((row, zeroize::Zeroizing::new(key.serialize_pem())))
    }

    /// Revokes a certificate and issues a new CRL of its issuer (the root or a client CA) that
    /// lists it.
    pub async fn revoke(&self, serial: &str, reason: &str) -> Result<CrlRow> {
        let now = self.clock.unix();
        let cert =
            self.store.certificate(serial).await?.ok_or_else(|| {
                Error::bad_request(format!("no certificate with serial {serial}"))
            })?;
        if !REVOCATION_REASONS.contains(&reason) {
            return Err(Error::bad_request(format!(
                "revocation reason must be one of {}",
                REVOCATION_REASONS.join(", ")
            )));
        }
        if cert.kind == "root" {
            return Err(Error::bad_request("the root certificate cannot be revoked"));
        }
        if !self.store.revoke_certificate(serial, now, reason).await? {
            return Err(Error::AlreadyExists {
                what: format!("revocation of certificate {serial}"),
            });
        }
        if let Ok(mut g) = self.signer.write() {
            g.retain(|_, c| c.serial != serial);
        }
        let mut client_cas = self.store.certificates_of_kind(CLIENT_CA_KIND).await?;
        client_cas.retain(|ca| issued_by(&cert.der, &ca.der));
        match client_cas.first() {
            Some(ca) => self.issue_crl_of(ca).await,
            None => self.issue_crl().await,
        }
    }

    /// Issues a fresh CRL of the root.
    pub async fn issue_crl(&self) -> Result<CrlRow> {
        let root = self.root().await?;
        self.issue_crl_of(&root).await
    }

    /// Issues a fresh CRL of `ca` listing every revoked certificate it issued.
    async fn issue_crl_of(&self, ca: &CertRow) -> Result<CrlRow> {
        let mut revoked = self.store.revoked_certificates().await?;
        revoked.retain(|c| issued_by(&c.der, &ca.der));
        let now = self.clock.now();
        let mut entries = Vec::with_capacity(revoked.len());
        for c in &revoked {
            entries.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(
                    &hex::decode(&c.serial).map_err(|_| Error::internal("bad stored serial"))?,
                ),
                revocation_time: to_time(c.revoked_at.unwrap_or(now.unix_timestamp()))?,
                reason_code: reason_code(c.revocation_reason.as_deref()),
                invalidity_date: None,
            });
        }
        let key = self.keys.signer(ca.key()?).await?;
        self.store
            .insert_crl_next(crl_label(ca), |number| {
                let params = CertificateRevocationListParams {
                    this_update: now,
                    next_update: now + Duration::days(CRL_DAYS),
                    crl_number: SerialNumber::from(number as u64),
                    issuing_distribution_point: None,
                    revoked_certs: entries,
                    key_identifier_method: KeyIdMethod::Sha256,
                };
                let issuer =
                    Issuer::from_ca_cert_der(&ca.der.clone().into(), RcgenSigner(key.as_ref()))
                        .map_err(|e| Error::internal(format!("{} unusable: {e}", ca.kind)))?;
                let crl = params
                    .signed_by(&issuer)
                    .map_err(|e| Error::internal(format!("CRL: {e}")))?;
                Ok(CrlRow {
                    number,
                    der: crl.der().to_vec(),
                    this_update: now.unix_timestamp(),
                    next_update: (now + Duration::days(CRL_DAYS)).unix_timestamp(),
                })
            })
            .await
    }

    /// The root's newest CRL, reissued when it is past half its life.
    pub async fn current_crl(&self) -> Result<CrlRow> {
        let root = self.root().await?;
        self.current_crl_of(&root).await
    }

    /// The newest CRL of the client CA with this serial (current or earlier, while it is
    /// unrevoked), reissued when it is past half its life; `None` for any other serial.
    pub async fn current_client_crl(&self, ca_serial: &str) -> Result<Option<CrlRow>> {
        let ca = self
            .store
            .certificates_of_kind(CLIENT_CA_KIND)
            .await?
            .into_iter()
            .find(|c| c.serial == ca_serial);
        match ca {
            Some(ca) => Ok(Some(self.current_crl_of(&ca).await?)),
            None => Ok(None),
        }
    }

    async fn current_crl_of(&self, ca: &CertRow) -> Result<CrlRow> {
        let now = self.clock.unix();
        match self.store.latest_crl(crl_label(ca)).await? {
            Some(c) if now < c.this_update + (c.next_update - c.this_update) / 2 => Ok(c),
            _ => self.issue_crl_of(ca).await,
        }
    }
}

/// The stored CRLs' issuer label of a CA: `root`, or a client CA's serial.
fn crl_label(ca: &CertRow) -> &str {
    if ca.kind == "root" {
        "root"
    } else {
        &ca.serial
    }
}

/// Whether a client CA may still issue: it outlives a client certificate issued now, or it
/// already ends with the root (no later one could outlive it either).
fn client_ca_fresh(ca: &CertRow, root: &CertRow, now: i64) -> bool {
    ca.not_after > now + CLIENT_MAX_DAYS * 86_400 || ca.not_after >= root.not_after
}

/// Where a CA certificate is looked up: this process's cache first, or the store only.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cache {
    Use,
    Skip,
}

/// Whether `ca_der` issued `cert_der`: the issuer name is the CA's subject and, where both are
/// present, the authority key identifier is the CA's subject key identifier (client CAs that
/// replace one another share a name, not a key). Unparsable certificates were issued by nobody.
pub fn issued_by(cert_der: &[u8], ca_der: &[u8]) -> bool {
    use x509_parser::extensions::ParsedExtension;
    let (Ok((_, cert)), Ok((_, ca))) = (
        x509_parser::parse_x509_certificate(cert_der),
        x509_parser::parse_x509_certificate(ca_der),
    ) else {
        return false;
    };
    if cert.issuer().as_raw() != ca.subject().as_raw() {
        return false;
    }
    let aki = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0),
            _ => None,
        });
    let ski = ca
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0),
            _ => None,
        });
    match (aki, ski) {
        (Some(a), Some(s)) => a == s,
        _ => true,
    }
}

/// RFC 5280 reason names we accept; `unspecified` is written as no reason code at all (5.3.1).
pub const REVOCATION_REASONS: &[&str] = &[
    "unspecified",
    "keyCompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
];

fn reason_code(reason: Option<&str>) -> Option<RevocationReason> {
    match reason {
        Some("keyCompromise") => Some(RevocationReason::KeyCompromise),
        Some("affiliationChanged") => Some(RevocationReason::AffiliationChanged),
        Some("superseded") => Some(RevocationReason::Superseded),
        Some("cessationOfOperation") => Some(RevocationReason::CessationOfOperation),
        _ => None,
    }
}

fn cert_row(
    kind: &str,
    subject: String,
    owner: Option<String>,
    key: Option<&KeyRow>,
    der: Vec<u8>,
    params: &CertificateParams,
    now: i64,
) -> Result<CertRow> {
    let serial = params
        .serial_number
        .as_ref()
        .map(|s| hex::encode(s.to_bytes()))
        .ok_or_else(|| Error::internal("certificate without serial"))?;
    Ok(CertRow {
        serial,
        kind: kind.to_string(),
        subject,
        owner,
        key_id: key.map(|k| k.id.clone()),
        der,
        not_before: params.not_before.unix_timestamp(),
        not_after: params.not_after.unix_timestamp(),
        revoked_at: None,
        revocation_reason: None,
        created_at: now,
    })
}
