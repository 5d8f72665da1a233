//! Twilio's inbound message webhook: `POST /v1/sms/twilio`, a form body, signed in `X-Twilio-Signature` with
//! base64(HMAC-SHA1(auth token, URL + each parameter's name and value, sorted by name)). The URL is the one
//! configured at Twilio (`twilio.public_url`: behind a proxy we cannot see it ourselves) plus the request's query
//! string. The answer is empty TwiML: the acknowledgement, if any, goes out as an answer through the send route.
//!
//! An MMS names its media in `MediaUrl{N}` / `MediaContentType{N}` (N from 0, `NumMedia` of them, at most 10):
//! they become attachments linking to Twilio's copy, and the `Body` may then be empty (a photo alone is a
//! petition).

use axum::http::Method;
use axum::response::Response;
use base64::Engine;
use hotline_channel::Received;
use hotline_domain::event::Attachment;

use super::{MoGateway, MoRequest, WebhookError, WebhookRequest, form};
use crate::config::Secret;

/// The Twilio webhook.
#[derive(Debug, Clone)]
pub struct TwilioWebhook {
    auth_token: Secret,
    public_url: String,
}

impl TwilioWebhook {
    pub fn new(auth_token: Secret, public_url: String) -> TwilioWebhook {
        TwilioWebhook {
            auth_token,
            public_url,
        }
    }
}

/// The signature Twilio computes for a URL and form parameters.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    base64::engine::general_purpose::STANDARD.encode(mac(auth_token, url, params).as_ref())
}

fn mac(auth_token: &str, url: &str, params: &[(String, String)]) -> ring::hmac::Tag {
    let key = ring::hmac::Key::new(
        ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        auth_token.as_bytes(),
    );
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // By name, then by value for repeated names (as Twilio's own validators do).
    sorted.sort();
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(url.as_bytes());
    for (name, value) in sorted {
        ctx.update(name.as_bytes());
        ctx.update(value.as_bytes());
    }
    ctx.sign()
}

/// Checks a signature in constant time.
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    super::same_bytes(mac(auth_token, url, params).as_ref(), &given)
}

/// Reads a Twilio webhook body (for the fuzz target and the webhook): the form pairs, strictly decoded.
pub fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, WebhookError> {
    Ok(form::parse(body)?)
}

/// The media of an MMS: each `MediaUrl{N}` (with its `MediaContentType{N}`) as an attachment linking to it. A
/// link that is not a plain http(s) URL is left out (logged) rather than refuse the message with it.
pub fn media(params: &[(String, String)]) -> Vec<Attachment> {
    let field = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let mut out = Vec::new();
    for n in 0..Attachment::MAX {
        let Some(url) = field(&format!("MediaUrl{n}")) else {
            continue;
        };
        let media_type = field(&format!("MediaContentType{n}"))
            .filter(|t| {
                t.len() <= 255 && !t.contains(|c: char| c.is_whitespace() || c.is_control())
            })
            .map(str::to_owned);
        let attachment = Attachment {
            name: media_name(n, url, media_type.as_deref()),
            url: Some(url.to_owned()),
            sha256: None,
            media_type,
            size: None,
        };
        match attachment.validate() {
            Ok(()) => out.push(attachment),
            Err(e) => tracing::warn!(error = %e, "a Twilio media link left out"),
        }
    }
    out
}

/// A file name for a media link: its last path segment (Twilio's media SID, `ME…`), or `media-N`, with an
/// extension for its type.
fn media_name(n: usize, url: &str, media_type: Option<&str>) -> String {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or("");
    let stem = path
        .split('/')
        .skip(1)
        .filter(|s| !s.is_empty())
        .last()
        .filter(|s| s.len() <= 100)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("media-{n}"));
    match media_type.and_then(extension) {
        Some(ext) if !stem.contains('.') => format!("{stem}.{ext}"),
        _ => stem,
    }
}

/// The usual extension of a media type Twilio passes on.
fn extension(media_type: &str) -> Option<&str> {
    let essence = media_type.split(';').next().unwrap_or("").trim();
    Some(match essence.to_ascii_lowercase().as_str() {
        "image/jpeg" | "image/jpg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/heic" => "heic",
        "video/mp4" => "mp4",
        "video/3gpp" => "3gp",
        "audio/amr" => "amr",
        "audio/mpeg" => "mp3",
        "audio/ogg" => "ogg",
        "text/vcard" | "text/x-vcard" => "vcf",
        "application/pdf" => "pdf",
        _ => {
            let sub = essence.split_once('/')?.1;
            return (!sub.is_empty()
                && sub.len() <= 8
                && sub.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then_some(sub);
        }
    })
}

impl MoGateway for TwilioWebhook {
    fn name(&self) -> &'static str {
        "twilio"
    }

    fn path(&self) -> &'static str {
        "/v1/sms/twilio"
    }

    fn method(&self) -> Method {
        Method::POST
    }

    fn parse(&self, request: &WebhookRequest<'_>) -> Result<MoRequest, WebhookError> {
        let signature = request
            .headers
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.trim().is_empty())
            .ok_or(WebhookError::MissingSignature)?;
        let params = parse_form(request.body)?;
        let url = if request.query.is_empty() {
            self.public_url.clone()
        } else {
            format!(
                "{}?{}",
                self.public_url,
                String::from_utf8_lossy(request.query)
            )
        };
        if !verify(self.auth_token.expose(), &url, &params, signature) {
            return Err(WebhookError::BadSignature);
        }
        let field = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let sid = ["MessageSid", "SmsMessageSid", "SmsSid"]
            .iter()
            .find_map(|n| field(n).filter(|v| !v.is_empty()))
            .ok_or_else(|| WebhookError::Malformed("MessageSid is missing".into()))?;
        let from = field("From")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| WebhookError::Malformed("From is missing".into()))?;
        Ok(MoRequest {
            message_id: format!("twilio:{sid}"),
            from: from.to_owned(),
            text: field("Body").unwrap_or("").to_owned(),
            attachments: media(&params),
            gateway_id: sid.to_owned(),
        })
    }

    fn accepted(&self, _message: &MoRequest, _received: &Received) -> Response {
        super::xml("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Twilio's documented example (channels-reference §2.1, from Twilio's webhook security docs and the
    /// twilio-java tests).
    fn example(caller: &str) -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", caller),
            ("Digits", "1234"),
            ("From", caller),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn mms_media_become_links_named_after_their_media_sid() {
        let url0 = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME0a";
        let params: Vec<(String, String)> = [
            ("NumMedia", "3"),
            ("MediaUrl0", url0),
            ("MediaContentType0", "image/jpeg"),
            ("MediaUrl1", "javascript:alert(1)"),
            ("MediaUrl2", "https://media.example/"),
            ("MediaContentType2", "application/x-unknown-long"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let media = media(&params);
        assert_eq!(
            media
                .iter()
                .map(|a| (a.name.as_str(), a.url.as_deref(), a.media_type.as_deref()))
                .collect::<Vec<_>>(),
            vec![
                ("ME0a.jpg", Some(url0), Some("image/jpeg")),
                (
                    "media-2",
                    Some("https://media.example/"),
                    Some("application/x-unknown-long")
                ),
            ]
        );
        assert!(media.iter().all(|a| a.sha256.is_none() && a.size.is_none()));
    }

    #[test]
    fn twilios_published_test_vectors() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            signature("12345", url, &example("+14158675309")),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        assert_eq!(
            signature("12345", url, &example("+12349013030")),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
        assert!(verify(
            "12345",
            url,
            &example("+14158675309"),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!verify(
            "12345",
            url,
            &example("+14158675309"),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!verify(
            "12346",
            url,
            &example("+14158675309"),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!verify(
            "12345",
            url,
            &example("+14158675309"),
            "not base64!"
        ));
    }
}
