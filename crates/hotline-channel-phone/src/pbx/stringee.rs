//! Stringee's call events (`POST /v1/phone/events/stringee?token=<stringee.token>`): the JSON Stringee posts to
//! the project's `event_url` (https://developer.stringee.com/docs/server/call-events).
//!
//! Stringee does not sign its events, so a request must carry the secret `token` in the query string (it is part
//! of the event URL configured at Stringee, sent over HTTPS) and the project's `account_sid` in the body; both are
//! compared in constant time. `call_status` `started`, `answered` and `ended` become call facts; `ringing` and
//! `agentEnded` (one agent's leg of a queued call) are acknowledged and not recorded. The unit of `duration` and
//! `answerDuration` is not stated by Stringee: `stringee.duration_unit` says it (milliseconds by default).

use hotline_domain::event::{CallEventKind, CallLogged};
use serde_json::Value;
use time::OffsetDateTime;

use super::{PbxError, PbxRequest, PbxWebhook};
use crate::call::{self, MAX_AGENT};
use crate::config::{DurationUnit, Secret};

pub const NAME: &str = "stringee";

pub struct StringeeWebhook {
    account_sid: String,
    token: Secret,
    unit: DurationUnit,
}

impl StringeeWebhook {
    pub fn new(account_sid: String, token: Secret, unit: DurationUnit) -> StringeeWebhook {
        StringeeWebhook { account_sid, token, unit }
    }
}

/// The `token` parameter of a query string (tokens are URL-safe, so never percent-encoded).
fn token(query: &[u8]) -> Option<&[u8]> {
    query.split(|b| *b == b'&').find_map(|pair| pair.strip_prefix(b"token="))
}

/// Reads one Stringee event body into its fact (None for statuses not recorded), without checking credentials.
pub fn parse_event(body: &[u8], unit: DurationUnit) -> Result<(Option<CallLogged>, String), PbxError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| PbxError::Malformed(format!("the body is not JSON: {e}")))?;
    let Some(obj) = v.as_object() else { return Err(PbxError::Invalid("the body must be a JSON object".to_owned())) };
    let text = |key: &str| obj.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let account_sid = text("account_sid").ok_or_else(|| PbxError::Invalid("`account_sid` is missing".to_owned()))?.to_owned();
    let status = text("call_status").ok_or_else(|| PbxError::Invalid("`call_status` is missing".to_owned()))?;
    let call_id = text("call_id").ok_or_else(|| PbxError::Invalid("`call_id` is missing".to_owned()))?;
    call::check_call_id(call_id).map_err(PbxError::Invalid)?;
    let kind = match status {
        "started" => CallEventKind::Started,
        "answered" => CallEventKind::Answered,
        "ended" => CallEventKind::Ended,
        "ringing" | "agentEnded" => return Ok((None, account_sid)),
        other => return Err(PbxError::Invalid(format!("unknown call_status `{other}`"))),
    };
    let at = obj
        .get("timestamp_ms")
        .and_then(Value::as_i64)
        .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok());
    let mut fact = call::fact(call_id, kind, NAME, at);
    fact.direction = match text("callCreatedReason") {
        Some("EXTERNAL_CALL_IN") => Some("inbound".to_owned()),
        _ => None,
    };
    // An agent is a Stringee user (an `internal` party); the hotline's own number is `external`.
    let party = |key: &str| obj.get(key).and_then(Value::as_object);
    let internal = |p: &serde_json::Map<String, Value>| p.get("type").and_then(Value::as_str) == Some("internal");
    let agent = [party("to"), party("from")]
        .into_iter()
        .flatten()
        .find(|p| internal(p))
        .and_then(|p| p.get("number").and_then(Value::as_str))
        .map(str::trim)
        .filter(|a| call::check_text("agent", a, MAX_AGENT).is_ok());
    if kind != CallEventKind::Started {
        fact.agent = agent.map(str::to_owned);
    }
    if kind == CallEventKind::Ended {
        let secs = |key: &str| {
            obj.get(key).and_then(Value::as_u64).map(|n| match unit {
                DurationUnit::Millis => n.div_ceil(1000),
                DurationUnit::Secs => n,
            })
        };
        fact.duration_secs = secs("duration");
        fact.talk_secs = secs("answerDuration");
        fact.cause = text("endCallCause").filter(|c| call::check_text("endCallCause", c, MAX_AGENT).is_ok()).map(str::to_owned);
    }
    Ok((Some(fact), account_sid))
}

impl PbxWebhook for StringeeWebhook {
    fn name(&self) -> &'static str {
        NAME
    }

    fn parse(&self, request: &PbxRequest<'_>, _now: OffsetDateTime) -> Result<Vec<CallLogged>, PbxError> {
        let presented = token(request.query).ok_or(PbxError::Missing("`token` query parameter"))?;
        if !super::same_bytes(presented, self.token.expose().as_bytes()) {
            return Err(PbxError::BadCredentials);
        }
        let (fact, account_sid) = parse_event(request.body, self.unit)?;
        if !super::same_bytes(account_sid.as_bytes(), self.account_sid.as_bytes()) {
            return Err(PbxError::BadCredentials);
        }
        Ok(fact.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like the sample in Stringee's call-events documentation.
    const ENDED: &[u8] = br#"{"call_status":"ended","project_id":25,"account_sid":"AC123","timestamp_ms":1515859261381,
        "from":{"number":"84899199866","alias":"84899199866","is_online":false,"type":"external"},
        "to":{"number":"agent_lan","alias":"Lan","is_online":true,"type":"internal"},
        "type":"stringee_call","call_id":"call-vn-1-ABC123-1515859243562","clientCustomData":"",
        "callCreatedReason":"EXTERNAL_CALL_IN","endCallCause":"NORMAL_CLEARING","endedBy":"caller",
        "duration":95200,"answerDuration":80100}"#;

    #[test]
    fn an_ended_event_carries_its_length_cause_and_agent() {
        let (fact, sid) = parse_event(ENDED, DurationUnit::Millis).expect("parsed");
        let fact = fact.expect("a fact");
        assert_eq!(sid, "AC123");
        assert_eq!(fact.call_id, "call-vn-1-ABC123-1515859243562");
        assert_eq!((fact.kind, fact.duration_secs, fact.talk_secs), (CallEventKind::Ended, Some(96), Some(81)));
        assert_eq!((fact.cause.as_deref(), fact.agent.as_deref(), fact.direction.as_deref()), (Some("NORMAL_CLEARING"), Some("agent_lan"), Some("inbound")));
        assert_eq!(fact.at.map(|t| t.unix_timestamp()), Some(1_515_859_261));
    }

    #[test]
    fn ringing_is_acknowledged_without_a_fact_and_an_unknown_status_is_refused() {
        let ringing = br#"{"call_status":"ringing","account_sid":"AC123","call_id":"call-1"}"#;
        assert!(parse_event(ringing, DurationUnit::Millis).expect("parsed").0.is_none());
        let odd = br#"{"call_status":"exploded","account_sid":"AC123","call_id":"call-1"}"#;
        assert!(matches!(parse_event(odd, DurationUnit::Millis), Err(PbxError::Invalid(_))));
    }

    #[test]
    fn the_token_and_the_account_must_both_match() {
        let hook = StringeeWebhook::new("AC123".into(), Secret::new("tok_0123456789abcdef"), DurationUnit::Millis);
        let headers = axum::http::HeaderMap::new();
        let now = OffsetDateTime::now_utc();
        let req = |query: &'static [u8], body: &'static [u8]| PbxRequest { query, headers: &headers, body };
        assert_eq!(hook.parse(&req(b"token=tok_0123456789abcdef", ENDED), now).expect("ok").len(), 1);
        assert_eq!(hook.parse(&req(b"token=tok_0123456789abcdeX", ENDED), now), Err(PbxError::BadCredentials));
        assert!(matches!(hook.parse(&req(b"", ENDED), now), Err(PbxError::Missing(_))));
        let other = br#"{"call_status":"started","account_sid":"AC999","call_id":"call-1"}"#;
        assert_eq!(hook.parse(&req(b"a=1&token=tok_0123456789abcdef", other), now), Err(PbxError::BadCredentials));
    }
}
