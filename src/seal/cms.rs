//! CMS SignedData for PAdES and for RFC 3161 time-stamp tokens (RustCrypto `cms` types).
//!
//! The signed attributes are what PAdES baseline asks for: content-type, message-digest and
//! signing-certificate-v2 — and no signing-time (the time is the /M entry and, from B-T on, the
//! time-stamp). The signature is made through the key store's [`Signer`] seam.

use crate::error::{Error, Result};
use crate::pki::keystore::Signer;
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{ObjectIdentifier, OctetString, SetOfVec};
use der::{Any, Decode, Encode, Sequence};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::serial_number::SerialNumber;

pub const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
pub const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
pub const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
pub const ID_MESSAGE_DIGEST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
pub const ID_SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
pub const ID_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
pub const ID_SIGNATURE_TIMESTAMP: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.14");
pub const ID_CT_TSTINFO: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
pub const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
pub const ID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// ESSCertIDv2 (RFC 5035); the hash algorithm is left out, which means SHA-256.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct EssCertIdV2 {
    #[asn1(optional = "true")]
    pub hash_algorithm: Option<AlgorithmIdentifierOwned>,
    pub cert_hash: OctetString,
    #[asn1(optional = "true")]
    pub issuer_serial: Option<IssuerSerial>,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct IssuerSerial {
    pub issuer: Vec<GeneralName>,
    pub serial_number: SerialNumber,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SigningCertificateV2 {
    pub certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    pub policies: Option<Any>,
}

fn der_err(e: der::Error) -> Error {
    Error::internal(format!("DER encoding: {e}"))
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn alg(oid: ObjectIdentifier) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: None,
    }
}

pub fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute> {
    let mut values = SetOfVec::new();
    values.insert(value).map_err(der_err)?;
    Ok(Attribute { oid, values })
}

/// The signed attributes for a signer certificate and a digest of the signed content.
pub fn signed_attributes(
    content_type: ObjectIdentifier,
    digest: &[u8],
    cert: &Certificate,
    cert_der: &[u8],
) -> Result<SetOfVec<Attribute>> {
    let ess = SigningCertificateV2 {
        certs: vec![EssCertIdV2 {
            hash_algorithm: None,
            cert_hash: OctetString::new(sha256(cert_der).to_vec()).map_err(der_err)?,
            issuer_serial: Some(IssuerSerial {
                issuer: vec![GeneralName::DirectoryName(
                    cert.tbs_certificate.issuer.clone(),
                )],
                serial_number: cert.tbs_certificate.serial_number.clone(),
            }),
        }],
        policies: None,
    };
    let mut attrs = SetOfVec::new();
    attrs
        .insert(attribute(
            ID_CONTENT_TYPE,
            Any::encode_from(&content_type).map_err(der_err)?,
        )?)
        .map_err(der_err)?;
    attrs
        .insert(attribute(
            ID_MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(digest.to_vec()).map_err(der_err)?)
                .map_err(der_err)?,
        )?)
        .map_err(der_err)?;
    attrs
        .insert(attribute(
            ID_SIGNING_CERTIFICATE_V2,
            Any::encode_from(&ess).map_err(der_err)?,
        )?)
        .map_err(der_err)?;
    Ok(attrs)
}

/// A SignedData built and signed, before it is wrapped (so a time-stamp can still be added).
pub struct Signed {
    pub data: SignedData,
}

impl Signed {
    /// Signs `digest` (of detached content, or of `econtent` when given) with `signer`, whose
    /// certificate is `chain[0]`; the whole chain goes into the certificate set.
    pub fn new(
        signer: &dyn Signer,
        chain: &[Vec<u8>],
        content_type: ObjectIdentifier,
        digest: &[u8],
        econtent: Option<Vec<u8>>,
    ) -> Result<Self> {
        let leaf_der = chain
            .first()
            .ok_or_else(|| Error::internal("signing without a certificate"))?;
        let leaf = Certificate::from_der(leaf_der).map_err(der_err)?;
        let attrs = signed_attributes(content_type, digest, &leaf, leaf_der)?;
        let to_sign = attrs.to_der().map_err(der_err)?;
        let signature = signer.sign_der(&to_sign)?;
        let mut certs = Vec::new();
        for c in chain {
            certs.push(cms::cert::CertificateChoices::Certificate(
                Certificate::from_der(c).map_err(der_err)?,
            ));
        }
        let info = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: leaf.tbs_certificate.issuer.clone(),
                serial_number: leaf.tbs_certificate.serial_number.clone(),
            }),
            digest_alg: alg(ID_SHA256),
            signed_attrs: Some(attrs),
            signature_algorithm: alg(ID_ECDSA_SHA256),
            signature: OctetString::new(signature).map_err(der_err)?,
            unsigned_attrs: None,
        };
        let econtent = match econtent {
            Some(c) => {
                Some(Any::encode_from(&OctetString::new(c).map_err(der_err)?).map_err(der_err)?)
            }
            None => None,
        };
        let data = SignedData {
            version: if content_type == ID_DATA {
                CmsVersion::V1
            } else {
                CmsVersion::V3
            },
            digest_algorithms: {
                let mut s = SetOfVec::new();
                s.insert(alg(ID_SHA256)).map_err(der_err)?;
                s
            },
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: content_type,
                econtent,
            },
            certificates: Some(CertificateSet::try_from(certs).map_err(der_err)?),
            crls: None,
            signer_infos: SignerInfos::try_from(vec![info]).map_err(der_err)?,
        };
        Ok(Signed { data })
    }

    /// The signature value (what a signature time-stamp covers).
    pub fn signature(&self) -> Vec<u8> {
        self.data
            .signer_infos
            .0
            .iter()
            .next()
            .map(|i| i.signature.as_bytes().to_vec())
            .unwrap_or_default()
    }

    /// Adds a signature time-stamp token (a DER ContentInfo) as an unsigned attribute.
    pub fn add_timestamp(&mut self, token_der: &[u8]) -> Result<()> {
        let token = Any::from_der(token_der).map_err(der_err)?;
        let attr = attribute(ID_SIGNATURE_TIMESTAMP, token)?;
        let mut infos: Vec<SignerInfo> = self.data.signer_infos.0.iter().cloned().collect();
        for i in &mut infos {
            let mut set = i.unsigned_attrs.take().unwrap_or_default();
            set.insert(attr.clone()).map_err(der_err)?;
            i.unsigned_attrs = Some(set);
        }
        self.data.signer_infos = SignerInfos::try_from(infos).map_err(der_err)?;
        Ok(())
    }

    /// The ContentInfo, DER-encoded.
    pub fn to_der(&self) -> Result<Vec<u8>> {
        ContentInfo {
            content_type: ID_SIGNED_DATA,
            content: Any::encode_from(&self.data).map_err(der_err)?,
        }
        .to_der()
        .map_err(der_err)
    }
}
