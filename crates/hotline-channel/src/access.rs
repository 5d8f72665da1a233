//! Citizens' access codes: the secret a citizen uses with their reference to read their ticket and answer.
//!
//! A code is derived from the ticket id and a server secret, so nothing about it is stored and a retried intake
//! gets the same code again. Rotating the secret invalidates every code.

use std::fmt;

use hotline_domain::reference::ALPHABET;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Symbols in an access code: 12 of 29 is about 58 bits, and a wrong guess costs a request.
const LEN: usize = 12;

/// Makes and checks access codes. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct AccessCodes {
    secret: [u8; 32],
}

impl AccessCodes {
    /// From the configured secret (any length; it is hashed).
    pub fn new(secret: &str) -> AccessCodes {
        AccessCodes { secret: Sha256::digest(secret.as_bytes()).into() }
    }

    /// The code of `ticket`.
    pub fn code_for(&self, ticket: Uuid) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"hotline-access-code-v1");
        hasher.update(self.secret);
        hasher.update(ticket.as_bytes());
        let digest = hasher.finalize();
        digest.iter().take(LEN).map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect()
    }

    /// Whether `code` (as typed: case, spaces and dashes ignored) is the code of `ticket`, in constant time.
    pub fn verify(&self, ticket: Uuid, code: &str) -> bool {
        let typed: Vec<u8> = code.bytes().filter(|b| !matches!(b, b' ' | b'-')).map(|b| b.to_ascii_uppercase()).collect();
        let expected = self.code_for(ticket).into_bytes();
        typed.len() == expected.len() && typed.iter().zip(&expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

impl fmt::Debug for AccessCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessCodes(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_stable_per_ticket_and_secret_and_checked_as_typed() {
        let codes = AccessCodes::new("s3cret");
        let t = Uuid::from_u128(7);
        let code = codes.code_for(t);
        assert_eq!(code.len(), LEN);
        assert_eq!(code, codes.code_for(t));
        assert!(codes.verify(t, &code.to_lowercase()));
        assert!(codes.verify(t, &format!("{}-{}", &code[..6], &code[6..])));
        assert!(!codes.verify(Uuid::from_u128(8), &code));
        assert!(!AccessCodes::new("other").verify(t, &code));
        assert!(!codes.verify(t, ""));
        assert!(!format!("{codes:?}").contains("s3cret"));
    }
}
