//! License holders (持证主体) and their identity codes.

use crate::error::FieldError;
use serde::{Deserialize, Serialize};

/// Holder code type: resident identity number (GB 11643).
pub const CODE_RESIDENT_ID: &str = "111";
/// Holder code type: unified social credit code (GB 32100).
pub const CODE_CREDIT: &str = "001";

/// The holder as written on a license.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Holder {
    pub name: String,
    /// The holder's identity code, e.g. a resident identity number.
    pub code: String,
    /// 3-digit code type: `111` resident identity number, `001` unified social credit code;
    /// other national code types are accepted without a check-character test.
    pub code_type: String,
}

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: &[u8; 11] = b"10X98765432";

/// The check character of an 18-digit resident identity number (GB 11643) over its first 17.
pub fn resident_id_check(first17: &str) -> Option<char> {
    if first17.len() != 17 {
        return None;
    }
    let mut sum = 0;
    for (c, w) in first17.bytes().zip(ID_WEIGHTS) {
        if !c.is_ascii_digit() {
            return None;
        }
        sum += u32::from(c - b'0') * w;
    }
    ID_CHECK.get((sum % 11) as usize).map(|b| *b as char)
}

impl Holder {
    /// Checks name and code; errors are reported under `/holder`.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let n = self.name.trim().chars().count();
        if n == 0 || n > 100 {
            errs.push(FieldError::new(
                "/holder/name",
                "must be 1 to 100 characters",
            ));
        }
        if self.code_type.len() != 3 || !self.code_type.bytes().all(|b| b.is_ascii_digit()) {
            errs.push(FieldError::new(
                "/holder/code_type",
                "must be a 3-digit code type",
            ));
        }
        match self.code_type.as_str() {
            CODE_RESIDENT_ID => {
                let ok = self.code.len() == 18
                    && self.code.split_at_checked(17).is_some_and(|(body, check)| {
                        resident_id_check(body).is_some_and(|c| check.starts_with(c))
                    });
                if !ok {
                    errs.push(FieldError::new(
                        "/holder/code",
                        "not a valid resident identity number (18 characters, GB 11643 check character)",
                    ));
                }
            }
            CODE_CREDIT => {
                if let Err(e) = super::credit_code::validate_field(&self.code, "/holder/code") {
                    errs.push(e);
                }
            }
            _ => {
                let len = self.code.chars().count();
                if len == 0 || len > 64 || self.code.chars().any(char::is_control) {
                    errs.push(FieldError::new(
                        "/holder/code",
                        "must be 1 to 64 printable characters",
                    ));
                }
            }
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_id_check_character() {
        // The GB 11643 example number.
        assert_eq!(resident_id_check("11010519491231002"), Some('X'));
        let h = Holder {
            name: "张三".into(),
            code: "11010519491231002X".into(),
            code_type: "111".into(),
        };
        assert!(h.validate().is_empty());
        let bad = Holder {
            code: "110105194912310021".into(),
            ..h
        };
        assert_eq!(bad.validate()[0].path, "/holder/code");
    }
}
