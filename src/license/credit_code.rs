//! Unified social credit codes (统一社会信用代码, GB 32100-2015).
//!
//! 18 characters from a 31-character alphabet (digits and upper-case letters without I, O, Z, S,
//! V); the last is a check character over the first 17 with fixed weights, modulo 31.

use crate::error::FieldError;

const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// A byte's value in [`ALPHABET`] (its position there), without searching it.
fn value(c: u8) -> Option<u32> {
    let v = match c {
        b'0'..=b'9' => c - b'0',
        b'A'..=b'H' => c - b'A' + 10,
        b'J'..=b'N' => c - b'J' + 18,
        b'P'..=b'R' => c - b'P' + 23,
        b'T'..=b'U' => c - b'T' + 26,
        b'W'..=b'Y' => c - b'W' + 28,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Computes the check character for the first 17 characters of a credit code.
pub fn check_char(first17: &str) -> Option<char> {
    let bytes = first17.as_bytes();
    if bytes.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (c, w) in bytes.iter().zip(WEIGHTS) {
        sum += value(*c)? * w;
    }
    let idx = (31 - sum % 31) % 31;
    ALPHABET.get(idx as usize).map(|b| *b as char)
}

/// Why a credit code is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditCodeError {
    #[error("must be 18 characters, got {0}")]
    Length(usize),
    #[error(
        "character {ch:?} at position {pos} is not allowed (digits and A-Y without I, O, S, V)"
    )]
    Character { pos: usize, ch: char },
    #[error("wrong check character: expected {expected}, got {got}")]
    Check { expected: char, got: char },
}

/// Validates a unified social credit code.
pub fn validate(code: &str) -> Result<(), CreditCodeError> {
    let n = code.chars().count();
    if n != 18 || code.len() != 18 {
        return Err(CreditCodeError::Length(n));
    }
    for (pos, ch) in code.chars().enumerate() {
        if !ch.is_ascii() || value(ch as u8).is_none() {
            return Err(CreditCodeError::Character { pos: pos + 1, ch });
        }
    }
    let (body, check) = code.split_at(17);
    let expected = check_char(body).ok_or(CreditCodeError::Length(n))?;
    let got = check.chars().next().unwrap_or(' ');
    if expected != got {
        return Err(CreditCodeError::Check { expected, got });
    }
    Ok(())
}

/// Validates and turns an error into a field error at `path`.
pub fn validate_field(code: &str, path: &str) -> Result<(), FieldError> {
    validate(code)
        .map_err(|e| FieldError::new(path, format!("not a valid unified social credit code: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_positions_in_the_alphabet() {
        for c in 0..=255u8 {
            let expected = ALPHABET.iter().position(|&a| a == c).map(|p| p as u32);
            assert_eq!(value(c), expected, "{c}");
        }
    }

    #[test]
    fn known_codes_validate() {
        // Ministry of Public Security, and codes used in GB/T 36904 examples.
        for code in [
            "11100000000013338W",
            "11100000000013127D",
            "91350100M000100Y43",
        ] {
            assert_eq!(validate(code), Ok(()), "{code}");
        }
    }

    #[test]
    fn wrong_check_character_is_rejected() {
        assert!(matches!(
            validate("11100000000013338X"),
            Err(CreditCodeError::Check { expected: 'W', .. })
        ));
        assert!(matches!(
            validate("1110000000001333"),
            Err(CreditCodeError::Length(16))
        ));
        assert!(matches!(
            validate("11100000000013338I"),
            Err(CreditCodeError::Character { pos: 18, ch: 'I' })
        ));
    }

    #[test]
    fn generated_check_is_self_consistent() {
        let body = "12340600MB0000001";
        let code = format!("{body}{}", check_char(body).unwrap_or('?'));
        assert_eq!(validate(&code), Ok(()));
    }
}
