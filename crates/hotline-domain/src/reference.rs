//! Short human references for tickets: what a citizen reads out on the phone or types into an SMS.
//!
//! A reference is 8 symbols from an alphabet without look-alikes (no 0/O, 1/I/L, no U/V pair confusion): seven
//! symbols derived from the ticket id and an attempt counter, then one check symbol that catches any single
//! mistyped symbol and any swap of two neighbours. Derivation is deterministic, so a retried intake of the same
//! ticket gets the same reference; uniqueness is enforced by whoever stores the reference (the event store claims
//! it), and a clash is resolved by trying the next attempt.

use std::fmt;

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// 29 symbols: digits 2-9 and the letters that cannot be mistaken for a digit or each other when read aloud.
pub const ALPHABET: &[u8; 29] = b"23456789ABCDEFGHJKMNPQRSTWXYZ";
/// Symbols in a reference, check symbol included.
pub const LEN: usize = 8;

/// A validated ticket reference, e.g. `K7M4QXR2`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Reference(String);

/// Why a typed reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("a reference has {LEN} symbols, this has {0}")]
    Length(usize),
    #[error("`{0}` is not a symbol used in references")]
    Symbol(char),
    #[error("the check symbol does not match: a symbol is mistyped")]
    Check,
}

impl Reference {
    /// The reference for `ticket` at `attempt` (0 first; the next attempt after a clash).
    pub fn derive(ticket: Uuid, attempt: u32) -> Reference {
        let mut hasher = Sha256::new();
        hasher.update(b"hotline-reference-v1");
        hasher.update(ticket.as_bytes());
        hasher.update(attempt.to_be_bytes());
        let digest = hasher.finalize();
        // 8 bytes of hash give a near-uniform draw of 7 base-29 symbols (29^7 ~ 1.7e10 << 2^64).
        let mut n = u64::from_be_bytes([
            digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7],
        ]);
        let mut digits = [0u8; LEN - 1];
        for d in digits.iter_mut() {
            *d = (n % ALPHABET.len() as u64) as u8;
            n /= ALPHABET.len() as u64;
        }
        let mut text = String::with_capacity(LEN);
        for d in digits {
            text.push(ALPHABET[d as usize] as char);
        }
        text.push(ALPHABET[check_index(&digits) as usize] as char);
        Reference(text)
    }

    /// Reads a reference as a person typed it: case, spaces, dashes and dots are ignored.
    pub fn parse(typed: &str) -> Result<Reference, ReferenceError> {
        let mut indices = Vec::with_capacity(LEN);
        for c in typed.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '#')) {
            let upper = c.to_ascii_uppercase();
            let index = ALPHABET
                .iter()
                .position(|&a| a as char == upper)
                .ok_or(ReferenceError::Symbol(c))?;
            indices.push(index as u8);
        }
        if indices.len() != LEN {
            return Err(ReferenceError::Length(indices.len()));
        }
        if check_index(&indices[..LEN - 1]) != indices[LEN - 1] {
            return Err(ReferenceError::Check);
        }
        Ok(Reference(indices.iter().map(|&i| ALPHABET[i as usize] as char).collect()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Weighted sum modulo the (prime) alphabet size: weights 1..7 are distinct and non-zero mod 29, so one wrong
/// symbol or one swap of two different neighbours always changes the check.
fn check_index(digits: &[u8]) -> u8 {
    let sum: u32 = digits.iter().enumerate().map(|(i, &d)| (i as u32 + 1) * u32::from(d)).sum();
    (sum % ALPHABET.len() as u32) as u8
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({})", self.0)
    }
}

impl TryFrom<String> for Reference {
    type Error = ReferenceError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Reference::parse(&value)
    }
}

impl From<Reference> for String {
    fn from(value: Reference) -> String {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_derived_reference_parses_back_whatever_the_case_and_dashes() {
        for i in 0..500u32 {
            let r = Reference::derive(Uuid::from_u128(u128::from(i) * 7919), i % 3);
            assert_eq!(r.as_str().len(), LEN);
            let typed = format!("{}-{}", &r.as_str()[..4], &r.as_str()[4..]).to_lowercase();
            assert_eq!(Reference::parse(&typed), Ok(r));
        }
    }

    #[test]
    fn every_single_mistyped_symbol_is_caught() {
        let r = Reference::derive(Uuid::from_u128(42), 0);
        for pos in 0..LEN {
            for &sym in ALPHABET.iter() {
                let mut bytes = r.as_str().as_bytes().to_vec();
                if bytes[pos] == sym {
                    continue;
                }
                bytes[pos] = sym;
                let typed = String::from_utf8(bytes).expect("ascii");
                assert_eq!(Reference::parse(&typed), Err(ReferenceError::Check), "{typed}");
            }
        }
    }

    #[test]
    fn ambiguous_letters_are_not_symbols() {
        for c in ['0', 'O', '1', 'I', 'L', 'U', 'V'] {
            assert!(!ALPHABET.contains(&(c as u8)), "{c}");
        }
        assert_eq!(Reference::parse("O2345678"), Err(ReferenceError::Symbol('O')));
    }

    #[test]
    fn derivation_is_deterministic_and_attempts_differ() {
        let id = Uuid::from_u128(7);
        assert_eq!(Reference::derive(id, 0), Reference::derive(id, 0));
        assert_ne!(Reference::derive(id, 0), Reference::derive(id, 1));
    }
}
