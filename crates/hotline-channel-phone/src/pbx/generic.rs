//! The generic call-event webhook (`POST /v1/phone/events/generic`): one JSON object per call fact, in a format of
//! our own (docs/channels/phone.md), for any PBX with a small bridge script.
//!
//! Signed like this: `X-Hotline-Timestamp: <Unix seconds>` and `X-Hotline-Signature: sha256=<hex>`, the hex
//! HMAC-SHA256, keyed with `generic.secret`, of `<timestamp>.<raw body>`. The timestamp is inside the signature,
//! so a captured request cannot be replayed with a fresh one; a timestamp outside the replay window is refused.
//! The signature is checked in constant time, before the body is parsed.

use std::time::Duration;

use hotline_domain::event::{CallEventKind, CallLogged};
use serde::Deserialize;
use time::OffsetDateTime;

use super::{PbxError, PbxRequest, PbxWebhook};
use crate::call::{self, MAX_AGENT, MAX_RECORDING};
use crate::config::Secret;

pub const NAME: &str = "generic";
pub const SIGNATURE_HEADER: &str = "x-hotline-signature";
pub const TIMESTAMP_HEADER: &str = "x-hotline-timestamp";

/// The body: one call fact.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericEvent {
    pub call_id: String,
    /// `started`, `answered`, `ended` or `recording`.
    pub event: CallEventKind,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub at: Option<OffsetDateTime>,
    #[serde(default)]
    pub direction: Option<Direction>,
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub duration_secs: Option<u64>,
    #[serde(default)]
    pub talk_secs: Option<u64>,
    #[serde(default)]
    pub cause: Option<String>,
    /// Required for `recording`: a URL or the PBX's file name.
    #[serde(default)]
    pub recording_ref: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

pub struct GenericWebhook {
    secret: Secret,
    window: Duration,
}

impl GenericWebhook {
    pub fn new(secret: Secret, window: Duration) -> GenericWebhook {
        GenericWebhook { secret, window }
    }
}

/// The signature header's value for `body` sent at `timestamp` (what a PBX bridge computes).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    format!("sha256={}", tag.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Reads a body (after its signature was checked) into a fact.
pub fn parse_body(body: &[u8]) -> Result<CallLogged, PbxError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| PbxError::Malformed(format!("the body is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(PbxError::Invalid("the body must be a JSON object".to_owned()));
    }
    let e: GenericEvent = serde_json::from_value(value).map_err(|e| PbxError::Invalid(e.to_string()))?;
    call::check_call_id(&e.call_id).map_err(PbxError::Invalid)?;
    let text = |what: &str, v: &Option<String>, max: usize| match v {
        Some(v) => call::check_text(what, v, max).map_err(PbxError::Invalid),
        None => Ok(()),
    };
    text("agent", &e.agent, MAX_AGENT)?;
    text("cause", &e.cause, MAX_AGENT)?;
    text("recording_ref", &e.recording_ref, MAX_RECORDING)?;
    let mut fact = match (e.event, &e.recording_ref) {
        (CallEventKind::Recording, Some(reference)) => call::recording(&e.call_id, NAME, e.at, reference.trim()),
        (CallEventKind::Recording, None) => return Err(PbxError::Invalid("a `recording` event needs `recording_ref`".to_owned())),
        (kind, _) => call::fact(&e.call_id, kind, NAME, e.at),
    };
    fact.direction = e.direction.map(|d| match d {
        Direction::Inbound => "inbound".to_owned(),
        Direction::Outbound => "outbound".to_owned(),
    });
    fact.agent = e.agent.map(|a| a.trim().to_owned());
    if e.event == CallEventKind::Ended {
        fact.duration_secs = e.duration_secs;
        fact.talk_secs = e.talk_secs;
        fact.cause = e.cause.map(|c| c.trim().to_owned());
    }
    Ok(fact)
}

impl PbxWebhook for GenericWebhook {
    fn name(&self) -> &'static str {
        NAME
    }

    fn parse(&self, request: &PbxRequest<'_>, now: OffsetDateTime) -> Result<Vec<CallLogged>, PbxError> {
        let header = |name: &'static str| {
            request.headers.get(name).map(|v| v.to_str().map_err(|_| PbxError::Malformed(format!("{name} is not text"))))
        };
        let timestamp = header(TIMESTAMP_HEADER).ok_or(PbxError::Missing("X-Hotline-Timestamp header"))??;
        let signature = header(SIGNATURE_HEADER).ok_or(PbxError::Missing("X-Hotline-Signature header"))??;
        let ts: i64 = timestamp.trim().parse().map_err(|_| PbxError::Malformed("X-Hotline-Timestamp is Unix seconds".to_owned()))?;
        let expected = sign(self.secret.expose(), ts, request.body);
        if !super::same_bytes(signature.trim().to_ascii_lowercase().as_bytes(), expected.as_bytes()) {
            return Err(PbxError::BadSignature);
        }
        if now.unix_timestamp().abs_diff(ts) > self.window.as_secs() {
            return Err(PbxError::Stale(self.window.as_secs()));
        }
        Ok(vec![parse_body(request.body)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    const SECRET: &str = "generic-secret-0123456789";

    fn request(headers: &HeaderMap, body: &'static [u8]) -> PbxRequest<'static> {
        // Tests only: the header map outlives the request in each test.
        let headers: &'static HeaderMap = Box::leak(Box::new(headers.clone()));
        PbxRequest { query: b"", headers, body }
    }

    fn signed(ts: i64, body: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(TIMESTAMP_HEADER, HeaderValue::from_str(&ts.to_string()).expect("ts"));
        h.insert(SIGNATURE_HEADER, HeaderValue::from_str(&sign(SECRET, ts, body)).expect("sig"));
        h
    }

    #[test]
    fn the_signature_matches_openssl_for_the_documented_example() {
        // printf '%s' '1717000000.{"call_id":"c1","event":"started"}' | openssl dgst -sha256 -hmac 'generic-secret-0123456789'
        assert_eq!(
            sign(SECRET, 1_717_000_000, br#"{"call_id":"c1","event":"started"}"#),
            "sha256=c2bdd16a33e8f4e6e187928e11fadb7a4f778341466a19a7123f59ff8e7af7d6"
        );
    }

    #[test]
    fn a_signed_fresh_event_is_read_and_a_bad_stale_or_unsigned_one_is_not() {
        let hook = GenericWebhook::new(Secret::new(SECRET), Duration::from_secs(300));
        let body: &'static [u8] = br#"{"call_id":"1717000000.42","event":"ended","duration_secs":95,"talk_secs":80,"cause":"NORMAL_CLEARING","agent":"101"}"#;
        let now = OffsetDateTime::from_unix_timestamp(1_717_000_100).expect("now");
        let facts = hook.parse(&request(&signed(1_717_000_000, body), body), now).expect("accepted");
        assert_eq!(facts.len(), 1);
        assert_eq!((facts[0].key.as_str(), facts[0].duration_secs, facts[0].cause.as_deref()), ("ended", Some(95), Some("NORMAL_CLEARING")));

        let late = OffsetDateTime::from_unix_timestamp(1_717_000_301).expect("late");
        assert_eq!(hook.parse(&request(&signed(1_717_000_000, body), body), late), Err(PbxError::Stale(300)));
        let mut bad = signed(1_717_000_000, body);
        bad.insert(SIGNATURE_HEADER, HeaderValue::from_static("sha256=00"));
        assert_eq!(hook.parse(&request(&bad, body), now), Err(PbxError::BadSignature));
        // The timestamp is signed: moving it breaks the signature.
        let mut moved = signed(1_717_000_000, body);
        moved.insert(TIMESTAMP_HEADER, HeaderValue::from_static("1717000050"));
        assert_eq!(hook.parse(&request(&moved, body), now), Err(PbxError::BadSignature));
        assert!(matches!(hook.parse(&request(&HeaderMap::new(), body), now), Err(PbxError::Missing(_))));
    }

    #[test]
    fn bodies_of_the_wrong_shape_are_refused_with_the_reason() {
        assert!(matches!(parse_body(b"{"), Err(PbxError::Malformed(_))));
        assert!(matches!(parse_body(b"[]"), Err(PbxError::Invalid(_))));
        assert!(matches!(parse_body(br#"{"call_id":"c1","event":"rang"}"#), Err(PbxError::Invalid(_))));
        assert!(matches!(parse_body(br#"{"call_id":"c 1","event":"started"}"#), Err(PbxError::Invalid(_))));
        assert!(matches!(parse_body(br#"{"call_id":"c1","event":"recording"}"#), Err(PbxError::Invalid(_))));
        assert!(matches!(parse_body(br#"{"call_id":"c1","event":"started","caller":"0912"}"#), Err(PbxError::Invalid(_))));
        let rec = parse_body(br#"{"call_id":"c1","event":"recording","recording_ref":"https://pbx.example/rec/c1.wav"}"#).expect("recording");
        assert_eq!(rec.recording.as_deref(), Some("https://pbx.example/rec/c1.wav"));
        assert!(rec.key.starts_with("recording:"));
    }
}
