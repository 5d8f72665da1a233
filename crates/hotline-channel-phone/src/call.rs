//! Call facts as every integration reports them: one [`CallLogged`] per fact, its key chosen here so that the
//! same fact reported twice (a redelivered webhook, an AMI event seen again after a reconnect) has the same key and
//! is recorded once on the ticket.

use hotline_domain::event::{CallEventKind, CallLogged};
use time::OffsetDateTime;

/// Longest call id accepted (Asterisk's `1717000000.42`, Stringee's `call-vn-1-...`, a UUID all fit easily).
pub const MAX_CALL_ID: usize = 80;
/// Longest recording reference (a URL or a file name).
pub const MAX_RECORDING: usize = 2000;
/// Longest agent id or extension.
pub const MAX_AGENT: usize = 100;

/// Checks a PBX's call id: 1 to [`MAX_CALL_ID`] bytes of letters, digits and `.`, `_`, `-`, `:`, `@`.
pub fn check_call_id(call_id: &str) -> Result<(), String> {
    let ok = !call_id.is_empty()
        && call_id.len() <= MAX_CALL_ID
        && call_id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(format!("a call id is 1 to {MAX_CALL_ID} letters, digits, `.`, `_`, `-`, `:` or `@`"))
    }
}

/// Checks free text from outside that ends up in an event (an agent id, a cause, a recording reference).
pub fn check_text(what: &str, value: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() || value.len() > max || value.chars().any(char::is_control) {
        Err(format!("`{what}` is 1 to {max} characters without control characters"))
    } else {
        Ok(())
    }
}

/// A fact with nothing but its call, kind, source and time; the key is the kind's (one started, one answered, one
/// ended per call and source family).
pub fn fact(call_id: &str, kind: CallEventKind, source: &str, at: Option<OffsetDateTime>) -> CallLogged {
    CallLogged {
        call_id: call_id.to_owned(),
        key: kind.as_str().to_owned(),
        kind,
        source: source.to_owned(),
        at,
        direction: None,
        agent: None,
        duration_secs: None,
        talk_secs: None,
        cause: None,
        recording: None,
    }
}

/// A recording fact: keyed by a digest of where the recording is, so each distinct recording is recorded once.
pub fn recording(call_id: &str, source: &str, at: Option<OffsetDateTime>, reference: &str) -> CallLogged {
    CallLogged {
        key: recording_key(reference),
        recording: Some(reference.to_owned()),
        ..fact(call_id, CallEventKind::Recording, source, at)
    }
}

/// `recording:<first 16 hex digits of SHA-256(reference)>`.
pub fn recording_key(reference: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, reference.as_bytes());
    let hex: String = digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("recording:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_of_every_supported_pbx_pass_and_odd_ones_do_not() {
        for id in ["1717000000.42", "call-vn-1-HJ8K2M0Q-1715840000000", "8c1f2d3e-1b2a-4c5d-9e8f-0a1b2c3d4e5f"] {
            assert!(check_call_id(id).is_ok(), "{id}");
        }
        for id in ["", "a b", "x/../y", &"9".repeat(MAX_CALL_ID + 1), "ca\u{0}ll"] {
            assert!(check_call_id(id).is_err(), "{id:?}");
        }
    }

    #[test]
    fn a_recording_key_is_stable_and_tells_recordings_apart() {
        assert_eq!(recording_key("https://pbx/rec/1.wav"), recording_key("https://pbx/rec/1.wav"));
        assert_ne!(recording_key("https://pbx/rec/1.wav"), recording_key("https://pbx/rec/2.wav"));
        assert_eq!(recording_key("x").len(), "recording:".len() + 16);
    }
}
