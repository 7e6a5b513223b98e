//! License identifiers (证照标识, GB/T 36904).
//!
//! `1.2.156.3005.2.<type code, 21>.<issuer code, 18>.<serial>.<version, 3 digits>.<check>`, where
//! the check character is ISO/IEC 7064 MOD 37,36 over everything after the prefix with the dots
//! removed. Some cities used a 6-digit region code instead of the issuer's credit code: such
//! identifiers are accepted when parsing and flagged, never generated.

use std::fmt;

/// The fixed OID arc every license identifier starts with.
pub const PREFIX: &str = "1.2.156.3005.2.";

const ALNUM: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

fn alnum_value(c: u8) -> Option<u32> {
    match c {
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        b'A'..=b'Z' => Some(u32::from(c - b'A') + 10),
        _ => None,
    }
}

/// The modulus of ISO/IEC 7064 MOD 37,36.
const M: u32 = 36;

/// MOD 37,36 carried over `data` from state `p` (`M` at the start).
fn mod37_36_state(mut p: u32, data: &str) -> Option<u32> {
    for c in data.bytes() {
        let mut s = (p + alnum_value(c)?) % M;
        if s == 0 {
            s = M;
        }
        p = (2 * s) % (M + 1);
    }
    Some(p)
}

/// The check character that ends data whose state is `p`.
fn mod37_36_finish(p: u32) -> Option<char> {
    let check = (M + 1 - p) % M;
    ALNUM.get(check as usize).map(|b| *b as char)
}

/// ISO/IEC 7064 MOD 37,36 (hybrid system): the check character for `data`.
pub fn mod37_36_check(data: &str) -> Option<char> {
    mod37_36_finish(mod37_36_state(M, data)?)
}

/// Which part of an identifier is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must start with {PREFIX}")]
    Prefix,
    #[error("must have 5 parts after the prefix (type.issuer.serial.version.check), got {0}")]
    PartCount(usize),
    #[error("type code {0:?} must be 21 characters: a credit code and 3 digits")]
    TypeCode(String),
    #[error("type code {code:?}: its credit-code part is invalid: {reason}")]
    TypeCodeCredit { code: String, reason: String },
    #[error(
        "issuer code {0:?} must be an 18-character credit code (or a legacy 6-digit region code)"
    )]
    IssuerCode(String),
    #[error("issuer code {code:?} is invalid: {reason}")]
    IssuerCredit { code: String, reason: String },
    #[error("serial {0:?} must be 1 to 32 digits or upper-case letters")]
    Serial(String),
    #[error("version {0:?} must be 3 digits")]
    Version(String),
    #[error("check character {got:?} is wrong: expected {expected}")]
    Check { expected: char, got: String },
}

/// A parsed, valid license identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenseId {
    pub type_code: String,
    pub issuer_code: String,
    pub serial: String,
    pub version: u16,
    pub check: char,
    /// The issuer part is a legacy 6-digit region code, not a credit code.
    pub legacy_region_issuer: bool,
}

/// The type and issuer parts of new identifiers, validated once for all the serials an issuer
/// gives out under a type (a bulk import makes thousands from one).
#[derive(Debug, Clone)]
pub struct IdPrefix {
    type_code: String,
    issuer_code: String,
    /// The MOD 37,36 state after the type and issuer codes.
    state: u32,
}

impl IdPrefix {
    /// `issuer_code` must be a credit code (identifiers are never generated with a region code).
    pub fn new(type_code: &str, issuer_code: &str) -> Result<Self, IdError> {
        let (type_credit, type_digits) = type_code.split_at_checked(18).unwrap_or((type_code, ""));
        if type_code.len() != 21 || !type_digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::TypeCode(type_code.to_string()));
        }
        super::credit_code::validate(type_credit).map_err(|e| IdError::TypeCodeCredit {
            code: type_code.to_string(),
            reason: e.to_string(),
        })?;
        super::credit_code::validate(issuer_code).map_err(|e| IdError::IssuerCredit {
            code: issuer_code.to_string(),
            reason: e.to_string(),
        })?;
        let state = mod37_36_state(M, type_code)
            .and_then(|p| mod37_36_state(p, issuer_code))
            .ok_or_else(|| IdError::IssuerCode(issuer_code.to_string()))?;
        Ok(IdPrefix {
            type_code: type_code.to_string(),
            issuer_code: issuer_code.to_string(),
            state,
        })
    }

    /// The identifier of `serial` at `version`.
    pub fn id(&self, serial: &str, version: u16) -> Result<LicenseId, IdError> {
        if serial.is_empty() || serial.len() > 32 {
            return Err(IdError::Serial(serial.to_string()));
        }
        if version > 999 {
            return Err(IdError::Version(version.to_string()));
        }
        let digits = [
            b'0' + (version / 100) as u8,
            b'0' + (version / 10 % 10) as u8,
            b'0' + (version % 10) as u8,
        ];
        let check = mod37_36_state(self.state, serial)
            .and_then(|p| mod37_36_state(p, std::str::from_utf8(&digits).ok()?))
            .and_then(mod37_36_finish)
            .ok_or_else(|| IdError::Serial(serial.to_string()))?;
        Ok(LicenseId {
            type_code: self.type_code.clone(),
            issuer_code: self.issuer_code.clone(),
            serial: serial.to_string(),
            version,
            check,
            legacy_region_issuer: false,
        })
    }
}

impl LicenseId {
    /// Builds a new identifier; `issuer_code` must be a credit code (never a region code).
    pub fn new(
        type_code: &str,
        issuer_code: &str,
        serial: &str,
        version: u16,
    ) -> Result<Self, IdError> {
        IdPrefix::new(type_code, issuer_code)?.id(serial, version)
    }

    /// The same license at another version (a new check character).
    pub fn with_version(&self, version: u16) -> Result<Self, IdError> {
        LicenseId::new(&self.type_code, &self.issuer_code, &self.serial, version)
    }

    /// The part that stays the same over all versions: `type.issuer.serial`.
    pub fn lineage(&self) -> String {
        format!("{}.{}.{}", self.type_code, self.issuer_code, self.serial)
    }

    /// Parses and validates an identifier, saying which part is wrong.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let rest = s.strip_prefix(PREFIX).ok_or(IdError::Prefix)?;
        let parts: Vec<&str> = rest.split('.').collect();
        let [type_code, issuer, serial, version, check] = parts.as_slice() else {
            return Err(IdError::PartCount(parts.len()));
        };
        let (type_credit, type_digits) = type_code.split_at_checked(18).unwrap_or((type_code, ""));
        if type_code.len() != 21 || !type_digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::TypeCode(type_code.to_string()));
        }
        super::credit_code::validate(type_credit).map_err(|e| IdError::TypeCodeCredit {
            code: type_code.to_string(),
            reason: e.to_string(),
        })?;
        let legacy_region_issuer = match issuer.len() {
            6 if issuer.bytes().all(|b| b.is_ascii_digit()) => true,
            18 => {
                super::credit_code::validate(issuer).map_err(|e| IdError::IssuerCredit {
                    code: issuer.to_string(),
                    reason: e.to_string(),
                })?;
                false
            }
            _ => return Err(IdError::IssuerCode(issuer.to_string())),
        };
        if serial.is_empty()
            || serial.len() > 32
            || !serial.bytes().all(|b| alnum_value(b).is_some())
        {
            return Err(IdError::Serial(serial.to_string()));
        }
        if version.len() != 3 || !version.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::Version(version.to_string()));
        }
        let version_n: u16 = version
            .parse()
            .map_err(|_| IdError::Version(version.to_string()))?;
        let body = format!("{type_code}{issuer}{serial}{version}");
        let expected = mod37_36_check(&body).ok_or_else(|| IdError::Serial(serial.to_string()))?;
        if check.len() != 1 || !check.starts_with(expected) {
            return Err(IdError::Check {
                expected,
                got: check.to_string(),
            });
        }
        Ok(LicenseId {
            type_code: type_code.to_string(),
            issuer_code: issuer.to_string(),
            serial: serial.to_string(),
            version: version_n,
            check: expected,
            legacy_region_issuer,
        })
    }
}

impl fmt::Display for LicenseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}{}.{}.{}.{:03}.{}",
            self.type_code, self.issuer_code, self.serial, self.version, self.check
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = "1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U";
    const V2: &str = "1.2.156.3005.2.11100000MB03271699022.340100.000000016.001.9";

    #[test]
    fn design_vectors_are_valid() {
        let a = LicenseId::parse(V1).expect("vector 1");
        assert!(!a.legacy_region_issuer);
        assert_eq!(a.to_string(), V1);
        let b = LicenseId::parse(V2).expect("vector 2");
        assert!(b.legacy_region_issuer);
        assert_eq!(b.to_string(), V2);
    }

    #[test]
    fn any_other_last_character_is_invalid() {
        for v in [V1, V2] {
            let (body, last) = v.split_at(v.len() - 1);
            for c in ALNUM.iter().map(|b| *b as char) {
                if last.starts_with(c) {
                    continue;
                }
                let changed = format!("{body}{c}");
                assert!(
                    matches!(LicenseId::parse(&changed), Err(IdError::Check { .. })),
                    "{changed}"
                );
            }
        }
    }

    #[test]
    fn parts_are_named_in_errors() {
        assert_eq!(LicenseId::parse("1.2.3"), Err(IdError::Prefix));
        assert!(matches!(
            LicenseId::parse("1.2.156.3005.2.111.x"),
            Err(IdError::PartCount(2))
        ));
        assert!(matches!(
            LicenseId::parse(
                "1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.01.U"
            ),
            Err(IdError::Version(_))
        ));
        assert!(matches!(
            LicenseId::parse(
                "1.2.156.3005.2.11100000000013338W011.11430000006122244X.20230000403.001.U"
            ),
            Err(IdError::IssuerCredit { .. })
        ));
    }

    #[test]
    fn one_prefix_makes_the_identifiers_new_makes() {
        let prefix = IdPrefix::new("11100000000013338W001", "11430000006122244L").unwrap();
        for serial in [
            "1",
            "202600000001",
            "ZZ9",
            "20269999999999999999999999999999",
        ] {
            for version in [0, 1, 7, 10, 99, 100, 999] {
                let id = prefix.id(serial, version).unwrap();
                // Parsing computes the check character over the whole body, not from the
                // prefix's state.
                assert_eq!(LicenseId::parse(&id.to_string()), Ok(id.clone()));
                let again = LicenseId::new(
                    "11100000000013338W001",
                    "11430000006122244L",
                    serial,
                    version,
                );
                assert_eq!(again, Ok(id));
            }
        }
        assert!(matches!(prefix.id("2026a", 1), Err(IdError::Serial(_))));
        assert!(matches!(prefix.id("", 1), Err(IdError::Serial(_))));
        assert!(matches!(prefix.id("1", 1000), Err(IdError::Version(_))));
        assert!(matches!(
            IdPrefix::new("11100000000013338W001", "11430000006122244X"),
            Err(IdError::IssuerCredit { .. })
        ));
    }

    #[test]
    fn generated_identifiers_parse_back() {
        let id = LicenseId::new(
            "11100000000013338W001",
            "11430000006122244L",
            "202600000001",
            7,
        )
        .expect("valid parts");
        assert_eq!(LicenseId::parse(&id.to_string()), Ok(id));
        assert!(matches!(
            LicenseId::new("11100000000013338W001", "340100", "1", 1),
            Err(IdError::IssuerCredit { .. })
        ));
        assert!(matches!(
            LicenseId::new("11100000000013338W001", "11430000006122244L", "a.b", 1),
            Err(IdError::Serial(_))
        ));
    }

    #[test]
    fn new_bumps_version_with_new_check() {
        let a = LicenseId::parse(V1).expect("vector");
        let b = a.with_version(2).expect("v2");
        assert_eq!(b.version, 2);
        assert_eq!(b.lineage(), a.lineage());
        assert!(LicenseId::parse(&b.to_string()).is_ok());
    }
}
