//! `X-ZEvent-Signature`: how Zalo signs a webhook event, and the check of it (with a replay window on the event's
//! own timestamp).
//!
//! The value is `mac=` + lowercase hex SHA-256 of `app_id + raw body + timestamp + OA secret key`: plain SHA-256,
//! not an HMAC, with `app_id` and `timestamp` read from the JSON body and the body hashed exactly as received
//! (Zalo's Java SDK `MacUtils.buildMac`; channels-reference §1.3). The OA secret key is the one of the OA's
//! webhook settings, not the app secret.

use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::event::{json_id, json_millis};

/// The header Zalo puts the signature in.
pub const HEADER: &str = "x-zevent-signature";

/// Why a webhook request is refused before anything is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request has no X-ZEvent-Signature header")]
    Missing,
    #[error("the X-ZEvent-Signature does not match the event")]
    Mismatch,
    #[error("the event is for app {0}, not this hotline's Zalo app")]
    WrongApp(String),
    #[error("the event's timestamp is {0} s away from now, outside the replay window")]
    Stale(u64),
    /// The body is no JSON object with `app_id` and `timestamp`: there is nothing to check the signature over.
    #[error("{0}")]
    Unreadable(String),
}

/// What a verified event is signed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub app_id: String,
    /// The event's `timestamp`, milliseconds since the epoch.
    pub timestamp_ms: u64,
}

/// The header value Zalo sends for this event: `mac=<hex sha256(app_id + body + timestamp + secret)>`.
pub fn mac(app_id: &str, body: &[u8], timestamp: &str, oa_secret_key: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(app_id.as_bytes());
    hash.update(body);
    hash.update(timestamp.as_bytes());
    hash.update(oa_secret_key.as_bytes());
    format!("mac={}", hex(&hash.finalize()))
}

/// What to check a signature against.
#[derive(Debug, Clone, Copy)]
pub struct Verifier<'a> {
    pub oa_secret_key: &'a str,
    /// When set, events of another app are refused.
    pub app_id: Option<&'a str>,
    pub replay_window: Duration,
}

impl Verifier<'_> {
    /// Checks `header` against `body` at `now_ms`. Order: a missing header, then an unreadable body (no
    /// `app_id`/`timestamp` to hash), then the MAC in constant time, then the app and the replay window (only
    /// once the sender is known to hold the secret, so a forger learns nothing from which check failed).
    pub fn verify(&self, header: Option<&[u8]>, body: &[u8], now_ms: u64) -> Result<Signed, SignatureError> {
        let Some(header) = header else { return Err(SignatureError::Missing) };
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| SignatureError::Unreadable(format!("the body is not JSON: {e}")))?;
        let (Some(app_id), Some((timestamp, timestamp_ms))) = (
            value.get("app_id").and_then(json_id),
            value.get("timestamp").and_then(|t| Some((json_id(t)?, json_millis(t)?))),
        ) else {
            return Err(SignatureError::Unreadable("an event needs `app_id` and a millisecond `timestamp`".into()));
        };
        let expected = mac(&app_id, body, &timestamp, self.oa_secret_key);
        let given = trim_ascii(header);
        // Some senders leave the prefix out; the digest is compared either way, in constant time and case-blind.
        let given: Vec<u8> = if given.len() >= 4 && given[..4].eq_ignore_ascii_case(b"mac=") {
            given[4..].to_ascii_lowercase()
        } else {
            given.to_ascii_lowercase()
        };
        let expected_digest = &expected.as_bytes()[4..];
        if !bool::from(given.as_slice().ct_eq(expected_digest)) {
            return Err(SignatureError::Mismatch);
        }
        if let Some(ours) = self.app_id
            && ours != app_id
        {
            return Err(SignatureError::WrongApp(app_id));
        }
        let skew_ms = now_ms.abs_diff(timestamp_ms);
        if skew_ms > self.replay_window.as_millis().min(u128::from(u64::MAX)) as u64 {
            return Err(SignatureError::Stale(skew_ms / 1000));
        }
        Ok(Signed { app_id, timestamp_ms })
    }
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &b[start..end]
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// channels-reference.md §1.3, "Synthetic test vector [checked]" (recomputed there, not an official vector).
    const VECTOR_BODY: &str = r#"{"app_id":"360846524940903967","sender":{"id":"246845883529197922"},"user_id_by_app":"552177279717587730","recipient":{"id":"388613280878808645"},"event_name":"user_send_text","message":{"text":"message","msg_id":"96d3cdf3af150460909"},"timestamp":"154390853474"}"#;
    const VECTOR_MAC: &str = "mac=25b302ef9707ed06ce81ea08438e798fa80a799ec69b3ed8f9ccccf3620150f3";

    fn verifier(window: Duration) -> Verifier<'static> {
        Verifier { oa_secret_key: "oa-secret-example", app_id: None, replay_window: window }
    }

    #[test]
    fn the_reference_vector_gives_the_reference_mac() {
        assert_eq!(mac("360846524940903967", VECTOR_BODY.as_bytes(), "154390853474", "oa-secret-example"), VECTOR_MAC);
    }

    #[test]
    fn the_reference_vector_verifies_within_its_window_and_not_outside() {
        let at = 154_390_853_474;
        let v = verifier(Duration::from_secs(300));
        let signed = v.verify(Some(VECTOR_MAC.as_bytes()), VECTOR_BODY.as_bytes(), at + 1000).expect("valid");
        assert_eq!(signed, Signed { app_id: "360846524940903967".into(), timestamp_ms: at });
        // Without the prefix, and in upper case, the digest is the same.
        let bare = VECTOR_MAC[4..].to_uppercase();
        assert!(v.verify(Some(bare.as_bytes()), VECTOR_BODY.as_bytes(), at).is_ok());
        assert_eq!(
            v.verify(Some(VECTOR_MAC.as_bytes()), VECTOR_BODY.as_bytes(), at + 301_000),
            Err(SignatureError::Stale(301))
        );
        assert_eq!(
            v.verify(Some(VECTOR_MAC.as_bytes()), VECTOR_BODY.as_bytes(), at - 301_000),
            Err(SignatureError::Stale(301))
        );
    }

    #[test]
    fn one_changed_byte_a_wrong_secret_or_no_header_is_refused() {
        let at = 154_390_853_474;
        let v = verifier(Duration::from_secs(300));
        let tampered = VECTOR_BODY.replace("\"message\"", "\"messagf\"");
        assert_eq!(v.verify(Some(VECTOR_MAC.as_bytes()), tampered.as_bytes(), at), Err(SignatureError::Mismatch));
        let other = Verifier { oa_secret_key: "app-secret", ..v };
        assert_eq!(other.verify(Some(VECTOR_MAC.as_bytes()), VECTOR_BODY.as_bytes(), at), Err(SignatureError::Mismatch));
        assert_eq!(v.verify(None, VECTOR_BODY.as_bytes(), at), Err(SignatureError::Missing));
        assert_eq!(v.verify(Some(b"mac="), VECTOR_BODY.as_bytes(), at), Err(SignatureError::Mismatch));
        assert!(matches!(v.verify(Some(b"mac=00"), b"not json", at), Err(SignatureError::Unreadable(_))));
        assert!(matches!(v.verify(Some(b"mac=00"), b"{\"app_id\":\"1\"}", at), Err(SignatureError::Unreadable(_))));
    }

    #[test]
    fn an_event_of_another_app_is_refused_once_its_signature_holds() {
        let at = 154_390_853_474;
        let v = Verifier { app_id: Some("42"), ..verifier(Duration::from_secs(300)) };
        assert_eq!(
            v.verify(Some(VECTOR_MAC.as_bytes()), VECTOR_BODY.as_bytes(), at),
            Err(SignatureError::WrongApp("360846524940903967".into()))
        );
    }
}
