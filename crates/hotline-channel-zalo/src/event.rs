//! Zalo OA webhook events, parsed from their JSON: what a citizen sent (text, image, file, location...), who
//! followed or unfollowed the OA, and the many events the hotline has no use for (the OA's own echoes, delivery
//! and read receipts).
//!
//! Parsing is lenient where Zalo's payloads vary (ids and numbers as strings or as numbers, coordinates under
//! several names; channels-reference §1.2) and strict where the hotline depends on a field: a message without a
//! sender id or a `msg_id` is malformed. Ids are kept as strings: they are 64-bit numbers that lose digits as
//! floats.

use serde_json::Value;

/// Longest id accepted (user, message, app ids are 64-bit numbers or short hex strings).
const MAX_ID: usize = 128;
/// Longest text kept from one message; Zalo's own limit is 2000 characters.
const MAX_TEXT: usize = 8_000;
/// Attachments kept from one message.
const MAX_ATTACHMENTS: usize = 10;

/// One webhook event.
#[derive(Debug, Clone, PartialEq)]
pub enum ZaloEvent {
    /// A citizen wrote to the OA.
    Message(UserMessage),
    /// A citizen followed (`true`) or unfollowed the OA.
    Follow { user_id: String, following: bool, timestamp_ms: u64 },
    /// A citizen shared their contact details through the OA's form (`user_submit_info`): a phone number lets
    /// answers fall back to SMS.
    SharedInfo { user_id: String, phone: Option<String>, name: Option<String>, timestamp_ms: u64 },
    /// An event the hotline does not act on; `reason` says why, for the log.
    Ignored { event_name: String, reason: &'static str },
}

/// A citizen's message (`user_send_*`).
#[derive(Debug, Clone, PartialEq)]
pub struct UserMessage {
    pub event_name: String,
    /// `sender.id`: the user's id at this OA (the one answers go to).
    pub user_id: String,
    /// `recipient.id`: the OA.
    pub oa_id: Option<String>,
    /// `message.msg_id`: Zalo's id of the message, the dedupe key.
    pub msg_id: String,
    pub timestamp_ms: u64,
    /// `message.text` (the text itself, a caption, or a link's text).
    pub text: String,
    pub attachments: Vec<MediaRef>,
    /// Coordinates the citizen shared (`user_send_location`).
    pub location: Option<Coordinates>,
    /// A location was sent but its coordinates could not be read.
    pub unreadable_location: bool,
}

/// A file the citizen sent, as Zalo links it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRef {
    /// `image`, `file`, `audio`, `video`, `gif`, `sticker`, `link`.
    pub kind: String,
    pub url: String,
    /// A file's name, when Zalo gives it.
    pub name: Option<String>,
    /// A file's size in bytes, when Zalo gives it (a string in its payloads).
    pub size: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coordinates {
    pub lat: f64,
    pub lon: f64,
}

/// Why a body is not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// The events that are a citizen's message.
const USER_MESSAGES: &[&str] = &[
    "user_send_text",
    "user_send_image",
    "user_send_location",
    "user_send_file",
    "user_send_link",
    "user_send_audio",
    "user_send_video",
    "user_send_gif",
    "user_send_sticker",
    "user_send_business_card",
];

/// Parses a webhook body. Never panics, whatever the bytes.
pub fn parse(body: &[u8]) -> Result<ZaloEvent, ParseError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ParseError(format!("the body is not JSON: {e}")))?;
    let Value::Object(root) = &value else { return Err(ParseError("the body is not a JSON object".into())) };
    let event_name = match root.get("event_name") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID => s.clone(),
        _ => return Err(ParseError("`event_name` is missing".into())),
    };
    let timestamp_ms = root
        .get("timestamp")
        .and_then(json_millis)
        .ok_or_else(|| ParseError("`timestamp` is missing or not milliseconds".into()))?;
    if event_name == "follow" || event_name == "unfollow" {
        let user_id = root
            .get("follower")
            .and_then(|f| f.get("id"))
            .and_then(json_id)
            .or_else(|| root.get("sender").and_then(|s| s.get("id")).and_then(json_id))
            .ok_or_else(|| ParseError(format!("a `{event_name}` event needs `follower.id`")))?;
        return Ok(ZaloEvent::Follow { user_id, following: event_name == "follow", timestamp_ms });
    }
    if event_name == "user_submit_info" {
        let user_id = root
            .get("sender")
            .and_then(|s| s.get("id"))
            .and_then(json_id)
            .ok_or_else(|| ParseError("a `user_submit_info` event needs `sender.id`".into()))?;
        // [U] The form's fields are under `info` in the integrations seen; read leniently.
        let info = root.get("info").or_else(|| root.get("message").and_then(|m| m.get("info")));
        let field = |k: &str| {
            info.and_then(|i| i.get(k))
                .and_then(json_id)
                .map(|v| v.chars().take(100).collect::<String>())
        };
        return Ok(ZaloEvent::SharedInfo { user_id, phone: field("phone"), name: field("name"), timestamp_ms });
    }
    if event_name.starts_with("oa_send_") {
        return Ok(ZaloEvent::Ignored { event_name, reason: "the OA's own message" });
    }
    if !USER_MESSAGES.contains(&event_name.as_str()) {
        let reason = match event_name.as_str() {
            "user_received_message" | "user_seen_message" => "a delivery or read receipt",
            n if n.starts_with("anonymous_") => "an anonymous user cannot be answered",
            n if n.contains("group") => "a group conversation, not a message to the OA",
            _ => "not a citizen's message",
        };
        return Ok(ZaloEvent::Ignored { event_name, reason });
    }
    let user_id = root
        .get("sender")
        .and_then(|s| s.get("id"))
        .and_then(json_id)
        .ok_or_else(|| ParseError(format!("a `{event_name}` event needs `sender.id`")))?;
    let oa_id = root.get("recipient").and_then(|r| r.get("id")).and_then(json_id);
    let message = match root.get("message") {
        Some(Value::Object(m)) => m,
        _ => return Err(ParseError(format!("a `{event_name}` event needs a `message` object"))),
    };
    let msg_id = message
        .get("msg_id")
        .and_then(json_id)
        .ok_or_else(|| ParseError(format!("a `{event_name}` event needs `message.msg_id`")))?;
    let text = match message.get("text") {
        Some(Value::String(s)) => s.chars().take(MAX_TEXT).collect(),
        _ => String::new(),
    };
    let mut attachments = Vec::new();
    let mut location = message.get("location").and_then(coordinates);
    let mut saw_location = event_name == "user_send_location" || message.get("location").is_some();
    if let Some(Value::Array(list)) = message.get("attachments") {
        for a in list.iter().take(MAX_ATTACHMENTS * 2) {
            let kind = a.get("type").and_then(Value::as_str).unwrap_or_default();
            let payload = a.get("payload");
            if kind == "location" {
                saw_location = true;
                location = location.or_else(|| payload.and_then(coordinates));
                continue;
            }
            let Some(payload) = payload else { continue };
            let Some(url) = payload.get("url").and_then(Value::as_str).filter(|u| is_http_url(u)) else { continue };
            if attachments.len() < MAX_ATTACHMENTS {
                attachments.push(MediaRef {
                    kind: if kind.is_empty() { "file".to_owned() } else { kind.chars().take(32).collect() },
                    url: url.to_owned(),
                    name: payload.get("name").and_then(Value::as_str).map(|n| n.chars().take(200).collect()),
                    size: payload.get("size").and_then(json_u64),
                });
            }
        }
    }
    Ok(ZaloEvent::Message(UserMessage {
        event_name,
        user_id,
        oa_id,
        msg_id,
        timestamp_ms,
        text,
        attachments,
        unreadable_location: saw_location && location.is_none(),
        location,
    }))
}

/// An id: a non-empty string, or a whole number (ids are 64-bit numbers, sometimes sent unquoted).
pub(crate) fn json_id(v: &Value) -> Option<String> {
    let id = match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        _ => return None,
    };
    (!id.is_empty() && id.len() <= MAX_ID && !id.chars().any(char::is_control)).then_some(id)
}

/// A millisecond timestamp, as a string of digits or a number.
pub(crate) fn json_millis(v: &Value) -> Option<u64> {
    json_u64(v)
}

fn json_u64(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

fn json_f64(v: &Value) -> Option<f64> {
    let f = match v {
        Value::String(s) => s.trim().parse().ok()?,
        Value::Number(n) => n.as_f64()?,
        _ => return None,
    };
    f.is_finite().then_some(f)
}

/// Coordinates under any of the names seen in Zalo payloads: `{coordinates: {latitude, longitude}}` (the usual
/// one), `{latitude, longitude}`, `{lat, long|lng|lon}`; values as strings or numbers. `None` when out of range.
fn coordinates(v: &Value) -> Option<Coordinates> {
    let inner = v.get("coordinates").unwrap_or(v);
    let pick = |names: &[&str]| names.iter().find_map(|n| inner.get(*n).and_then(json_f64));
    let lat = pick(&["latitude", "lat"])?;
    let lon = pick(&["longitude", "long", "lng", "lon"])?;
    ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)).then_some(Coordinates { lat, lon })
}

fn is_http_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://")) && url.len() <= 2000 && !url.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> UserMessage {
        match parse(body.as_bytes()) {
            Ok(ZaloEvent::Message(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_text_keeps_its_ids_as_strings() {
        // The official sample (channels-reference §1.2/§1.3).
        let m = message(
            r#"{"app_id":"360846524940903967","sender":{"id":"246845883529197922"},"user_id_by_app":"552177279717587730","recipient":{"id":"388613280878808645"},"event_name":"user_send_text","message":{"text":"message","msg_id":"96d3cdf3af150460909"},"timestamp":"154390853474"}"#,
        );
        assert_eq!(m.user_id, "246845883529197922");
        assert_eq!(m.oa_id.as_deref(), Some("388613280878808645"));
        assert_eq!(m.msg_id, "96d3cdf3af150460909");
        assert_eq!(m.timestamp_ms, 154_390_853_474);
        assert_eq!(m.text, "message");
        // A 64-bit id sent unquoted keeps every digit.
        let m = message(r#"{"event_name":"user_send_text","timestamp":1,"sender":{"id":8381381219617247797},"message":{"msg_id":"a","text":"x"}}"#);
        assert_eq!(m.user_id, "8381381219617247797");
    }

    #[test]
    fn locations_are_read_however_they_are_written() {
        for payload in [
            r#""attachments":[{"type":"location","payload":{"coordinates":{"latitude":"10.7642473","longitude":"106.6564314"}}}]"#,
            r#""attachments":[{"type":"location","payload":{"coordinates":{"latitude":10.7642473,"longitude":106.6564314}}}]"#,
            r#""attachments":[{"type":"location","payload":{"coordinates":{"lat":"10.7642473","long":"106.6564314"}}}]"#,
            r#""location":{"latitude":"10.7642473","longitude":"106.6564314"}"#,
        ] {
            let m = message(&format!(
                r#"{{"event_name":"user_send_location","timestamp":"1","sender":{{"id":"1"}},"message":{{"msg_id":"m",{payload}}}}}"#
            ));
            assert_eq!(m.location, Some(Coordinates { lat: 10.7642473, lon: 106.6564314 }), "{payload}");
            assert!(!m.unreadable_location);
        }
        let m = message(
            r#"{"event_name":"user_send_location","timestamp":"1","sender":{"id":"1"},"message":{"msg_id":"m","attachments":[{"type":"location","payload":{"coordinates":{"latitude":"95","longitude":"x"}}}]}}"#,
        );
        assert_eq!(m.location, None);
        assert!(m.unreadable_location);
    }

    #[test]
    fn images_and_files_keep_their_links_names_and_sizes() {
        let m = message(
            r#"{"event_name":"user_send_file","timestamp":"1","sender":{"id":"1"},"message":{"msg_id":"m","attachments":[
                {"type":"file","payload":{"url":"https://f.zalo.me/a.pdf","name":"don.pdf","size":"2048","type":"pdf"}},
                {"type":"image","payload":{"url":"https://f.zalo.me/b.jpg","thumbnail":"https://f.zalo.me/t.jpg"}},
                {"type":"image","payload":{"url":"javascript:alert(1)"}}]}}"#,
        );
        assert_eq!(m.attachments.len(), 2);
        assert_eq!(m.attachments[0].name.as_deref(), Some("don.pdf"));
        assert_eq!(m.attachments[0].size, Some(2048));
        assert_eq!(m.attachments[1].kind, "image");
    }

    #[test]
    fn follows_echoes_and_receipts_are_told_apart() {
        let follow = parse(br#"{"app_id":"3206567425609033798","oa_id":"579745863508352884","user_id_by_app":"1923626015168953374","event_name":"follow","timestamp":"1630985527582","source":"testing_webhook","follower":{"id":"8381381219617247797"}}"#);
        assert_eq!(
            follow,
            Ok(ZaloEvent::Follow { user_id: "8381381219617247797".into(), following: true, timestamp_ms: 1_630_985_527_582 })
        );
        for name in ["oa_send_text", "user_received_message", "user_seen_message", "anonymous_send_text", "add_user_to_tag"] {
            let body = format!(r#"{{"event_name":"{name}","timestamp":"1","sender":{{"id":"1"}},"message":{{"msg_id":"m"}}}}"#);
            assert!(matches!(parse(body.as_bytes()), Ok(ZaloEvent::Ignored { .. })), "{name}");
        }
    }

    #[test]
    fn a_shared_phone_number_is_read_from_the_form() {
        let e = parse(br#"{"app_id":"1","event_name":"user_submit_info","timestamp":"5","sender":{"id":"42"},"recipient":{"id":"9"},"info":{"address":"12 Nguyen Du","phone":"0912345678","city":"Binh Duong","district":"Di An","name":"Nguyen Van A"}}"#);
        assert_eq!(
            e,
            Ok(ZaloEvent::SharedInfo {
                user_id: "42".into(),
                phone: Some("0912345678".into()),
                name: Some("Nguyen Van A".into()),
                timestamp_ms: 5
            })
        );
    }

    #[test]
    fn a_message_without_its_ids_is_malformed() {
        for body in [
            r#"{"event_name":"user_send_text","timestamp":"1","message":{"msg_id":"m","text":"x"}}"#,
            r#"{"event_name":"user_send_text","timestamp":"1","sender":{"id":"1"},"message":{"text":"x"}}"#,
            r#"{"event_name":"user_send_text","sender":{"id":"1"},"message":{"msg_id":"m"}}"#,
            r#"{"event_name":"user_send_text","timestamp":"1","sender":{"id":""},"message":{"msg_id":"m"}}"#,
            r#"{"event_name":"follow","timestamp":"1"}"#,
            r#"[1,2]"#,
            r#"{"#,
        ] {
            assert!(parse(body.as_bytes()).is_err(), "{body}");
        }
    }
}
