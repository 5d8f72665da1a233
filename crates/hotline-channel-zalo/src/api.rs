//! The Zalo OpenAPI calls the channel makes: a customer-service ("tư vấn") text message, the OAuth v4 token
//! refresh, and downloading a file a citizen sent. Each answer is classified here, because Zalo answers HTTP 200
//! to most failures and only the `error` field tells (channels-reference §1.4–§1.6).

use axum::http::Method;
use hotline_channel::vendor_http::{VendorHttp, VendorHttpError};
use serde_json::{Value, json};

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendFailure {
    /// The access token is invalid or expired (`-216`, `-201`, HTTP 401): refresh it and try once more.
    #[error("access token refused: {0}")]
    TokenRefused(String),
    /// Worth another try later (rate limit `-32`, 5xx, timeouts).
    #[error("{0}")]
    Retryable(String),
    /// Never going to work for this citizen now (not following, no interaction for 7 days...).
    #[error("{0}")]
    Permanent(String),
}

/// Why a token refresh failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshFailure {
    /// Zalo said the refresh token is dead (`-14020`: used already or expired, see [`REFRESH_TOKEN_DEAD`]): an
    /// OA admin must authorise the app again.
    #[error("Zalo refused the refresh token: {0}")]
    Refused(String),
    /// No usable answer (timeout, 5xx), or a refusal that is not about the refresh token itself (a wrong app
    /// secret, an unknown code). The token may or may not have been used up.
    #[error("token refresh failed for now: {0}")]
    Transient(String),
}

/// A new pair of tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds the access token lives, when Zalo says (a string or a number in its answers).
    pub expires_in: Option<u64>,
}

/// The calls, against configurable bases (Zalo's, or a stand-in in tests).
#[derive(Debug, Clone)]
pub struct OaApi {
    pub http: VendorHttp,
    /// `https://openapi.zalo.me`
    pub api_base: String,
    /// `https://oauth.zaloapp.com`
    pub oauth_base: String,
}

/// Zalo's text limit per consultation message [U: reported as 2000 characters].
pub const MAX_TEXT_CHARS: usize = 2000;

impl OaApi {
    /// Sends one text to a user; returns Zalo's message id.
    pub async fn send_text(&self, access_token: &str, user_id: &str, text: &str) -> Result<Option<String>, SendFailure> {
        let url = format!("{}/v3.0/oa/message/cs", self.api_base);
        let body = json!({"recipient": {"user_id": user_id}, "message": {"text": text}});
        let headers = [("content-type", "application/json"), ("access_token", access_token)];
        let response = self
            .http
            .send(Method::POST, &url, &headers, body.to_string().into_bytes())
            .await
            .map_err(|e| transport(&e))?;
        if response.status == 401 {
            return Err(SendFailure::TokenRefused("HTTP 401".into()));
        }
        if response.status == 429 || response.status == 408 || response.status >= 500 {
            return Err(SendFailure::Retryable(format!("Zalo answered HTTP {}", response.status)));
        }
        let answer: Value = match serde_json::from_slice(&response.body) {
            Ok(v) => v,
            Err(_) if response.status != 200 => {
                return Err(SendFailure::Permanent(format!("Zalo answered HTTP {} without a JSON body", response.status)));
            }
            // The message may have been sent: an unreadable 200 is retried rather than given up.
            Err(_) => return Err(SendFailure::Retryable("Zalo answered HTTP 200 with a body that is not JSON".into())),
        };
        let code = answer.get("error").and_then(code_of).unwrap_or(if response.status == 200 { 0 } else { -1 });
        let message = answer.get("message").and_then(Value::as_str).unwrap_or("").to_owned();
        if code == 0 && response.status == 200 {
            let id = answer.get("data").and_then(|d| d.get("message_id")).and_then(crate::event::json_id);
            return Ok(id);
        }
        Err(classify(code, &message, response.status))
    }

    /// Exchanges a refresh token for a new pair (`POST /v4/oa/access_token`, form body, `secret_key` header).
    pub async fn refresh(&self, app_id: &str, app_secret: &str, refresh_token: &str) -> Result<TokenPair, RefreshFailure> {
        let url = format!("{}/v4/oa/access_token", self.oauth_base);
        let form = format!(
            "refresh_token={}&app_id={}&grant_type=refresh_token",
            form_encode(refresh_token),
            form_encode(app_id)
        );
        let headers = [("content-type", "application/x-www-form-urlencoded"), ("secret_key", app_secret)];
        let response = self.http.send(Method::POST, &url, &headers, form.into_bytes()).await.map_err(|e| {
            RefreshFailure::Transient(e.to_string())
        })?;
        refresh_answer(response.status, &response.body)
    }

    /// The bytes at a file link a citizen sent (at most the vendor client's response cap).
    pub async fn download(&self, url: &str) -> Result<Vec<u8>, String> {
        let response = self.http.send(Method::GET, url, &[], Vec::new()).await.map_err(|e| e.to_string())?;
        if response.status != 200 {
            return Err(format!("HTTP {}", response.status));
        }
        if response.body.is_empty() {
            return Err("empty file".into());
        }
        Ok(response.body.to_vec())
    }
}

/// OAuth answers that mean the refresh token itself is dead (used already, expired, revoked), so only an OA admin
/// authorising the app again helps: `-14020` (channels-reference §1.6: "reusing an old refresh token returns
/// -14020"). No other code is documented to mean that, so every other refusal is treated as passing: a wrong
/// `app_secret` (`-14002`) or parameter, Zalo's own trouble, an answer we do not know. Those are retried (and
/// logged loudly), because calling a live refresh token dead fails every reply of the moment for good.
pub const REFRESH_TOKEN_DEAD: &[i64] = &[-14020];

/// Reads the answer to a token refresh: the new pair, the refresh token refused for good (only the codes of
/// [`REFRESH_TOKEN_DEAD`]), or anything else as transient.
pub fn refresh_answer(status: u16, body: &[u8]) -> Result<TokenPair, RefreshFailure> {
    if status == 429 || status >= 500 {
        return Err(RefreshFailure::Transient(format!("Zalo answered HTTP {status}")));
    }
    let answer: Value = serde_json::from_slice(body)
        .map_err(|_| RefreshFailure::Transient(format!("Zalo answered HTTP {status} without JSON")))?;
    let text = |k: &str| answer.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    if let (Some(access_token), Some(refresh_token), 200) = (text("access_token"), text("refresh_token"), status) {
        return Ok(TokenPair {
            access_token,
            refresh_token,
            expires_in: answer.get("expires_in").and_then(|v| match v {
                Value::String(s) => s.trim().parse().ok(),
                Value::Number(n) => n.as_u64(),
                _ => None,
            }),
        });
    }
    let code = answer.get("error").and_then(code_of);
    let name = text("error_name").or_else(|| text("error_description")).or_else(|| text("message"));
    let detail = format!(
        "HTTP {status}, error {}{}{}",
        code.map_or_else(|| "none".to_owned(), |c| c.to_string()),
        if name.is_some() { ": " } else { "" },
        name.unwrap_or_default()
    );
    match code {
        Some(code) if REFRESH_TOKEN_DEAD.contains(&code) => Err(RefreshFailure::Refused(detail)),
        _ => {
            tracing::error!(answer = %detail, "Zalo did not refresh the access token; replies wait and are retried (check app_id and app_secret)");
            Err(RefreshFailure::Transient(format!("Zalo did not refresh the token ({detail})")))
        }
    }
}

/// What an OA API error code means for the reply (channels-reference §1.5).
pub fn classify(code: i64, message: &str, status: u16) -> SendFailure {
    let detail = if message.is_empty() { String::new() } else { format!(" ({message})") };
    match code {
        -216 | -201 => SendFailure::TokenRefused(format!("error {code}{detail}")),
        -32 => SendFailure::Retryable(format!("Zalo rate limit (error -32){detail}")),
        -213 => SendFailure::Permanent(format!("the citizen does not follow the OA (Zalo error -213){detail}")),
        -230 => SendFailure::Permanent(format!(
            "the citizen has not interacted with the OA in the past 7 days (Zalo error -230){detail}"
        )),
        -232 => SendFailure::Permanent(format!("the citizen has not interacted with the OA (Zalo error -232){detail}")),
        -227 => SendFailure::Permanent(format!(
            "the citizen's Zalo account is banned or inactive for more than 45 days (Zalo error -227){detail}"
        )),
        -217 => SendFailure::Permanent(format!("the citizen blocked messages from the OA (Zalo error -217){detail}")),
        // The province's account, not the citizen: the app's Zalo Cloud Account is missing or out of money, the OA
        // lacks the tier package or the verification consultation messages need. Every reply fails until someone
        // fixes it, and then they should go out, so they are retried (and the fault is logged loudly).
        -320 | -321 | -224 | -221 => {
            let what = match code {
                -320 => "the app is not linked to a Zalo Cloud Account",
                -321 => "the Zalo Cloud Account is out of money",
                -224 => "the OA needs a higher tier package",
                _ => "the OA must be verified",
            };
            tracing::error!(code, "Zalo refuses every reply: {what}; replies are retried until it is fixed");
            SendFailure::Retryable(format!("{what} (Zalo error {code}){detail}: the province's account must be fixed"))
        }
        _ if status >= 500 => SendFailure::Retryable(format!("Zalo answered HTTP {status}, error {code}{detail}")),
        _ => SendFailure::Permanent(format!("Zalo refused the message: error {code}{detail}")),
    }
}

fn code_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn transport(e: &VendorHttpError) -> SendFailure {
    SendFailure::Retryable(format!("no answer from Zalo: {e}"))
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub(crate) fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Splits a text into pieces of at most `max` characters, at a line break or a space where one is near the end
/// of a piece, so no word is cut in half when it can be helped.
pub fn split_text(text: &str, max: usize) -> Vec<String> {
    let chars: Vec<char> = text.trim().chars().collect();
    let mut parts = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let mut end = (start + max).min(chars.len());
        if end < chars.len() {
            // Look back at most a fifth of a piece for a break.
            let floor = end - max / 5;
            if let Some(i) = (floor..end).rev().find(|&i| chars[i] == '\n') {
                end = i + 1;
            } else if let Some(i) = (floor..end).rev().find(|&i| chars[i].is_whitespace()) {
                end = i + 1;
            }
        }
        let part: String = chars[start..end].iter().collect();
        let part = part.trim();
        if !part.is_empty() {
            parts.push(part.to_owned());
        }
        start = end;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_answer_is_cut_at_spaces_into_pieces_zalo_takes() {
        let word = "phản ánh ";
        let text = word.repeat(500);
        let parts = split_text(&text, MAX_TEXT_CHARS);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.chars().count() <= MAX_TEXT_CHARS));
        assert!(parts.iter().all(|p| p.ends_with("ánh")), "no word is cut");
        assert_eq!(parts.join(" "), text.trim());
        assert_eq!(split_text("ngắn", MAX_TEXT_CHARS), vec!["ngắn".to_owned()]);
        // No space at all: cut hard.
        let solid = "x".repeat(4500);
        let parts = split_text(&solid, MAX_TEXT_CHARS);
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), vec![2000, 2000, 500]);
    }

    #[test]
    fn error_codes_map_to_refresh_retry_or_give_up() {
        assert!(matches!(classify(-216, "", 200), SendFailure::TokenRefused(_)));
        assert!(matches!(classify(-201, "", 200), SendFailure::TokenRefused(_)));
        assert!(matches!(classify(-32, "", 200), SendFailure::Retryable(_)));
        for code in [-213, -230, -232, -227, -217, -233] {
            assert!(matches!(classify(code, "", 200), SendFailure::Permanent(_)), "{code}");
        }
        assert!(matches!(classify(-1, "", 503), SendFailure::Retryable(_)));
        // The province's account, not the citizen's: retried.
        for code in [-320, -321, -224, -221] {
            assert!(matches!(classify(code, "", 200), SendFailure::Retryable(m) if m.contains("account")), "{code}");
        }
    }

    #[test]
    fn only_a_dead_refresh_token_is_a_refusal() {
        let pair = refresh_answer(200, br#"{"access_token":"a","refresh_token":"r","expires_in":"90000"}"#).expect("pair");
        assert_eq!((pair.access_token.as_str(), pair.refresh_token.as_str(), pair.expires_in), ("a", "r", Some(90000)));
        let dead = refresh_answer(200, br#"{"error":-14020,"error_name":"Invalid refresh token"}"#);
        assert!(matches!(dead, Err(RefreshFailure::Refused(m)) if m.contains("-14020")));
        // Everything else passes: a wrong secret, an unknown code, an empty or partial answer, an HTML error page.
        for (status, body) in [
            (200, &br#"{"error":-14002,"error_name":"Invalid secret key"}"#[..]),
            (200, br#"{"error":-5000,"message":"system busy"}"#),
            (200, b"{}"),
            (200, br#"{"access_token":"a"}"#),
            (400, br#"{"error":"-14003"}"#),
            (502, b"<html>bad gateway</html>"),
            (200, b"not json"),
        ] {
            assert!(matches!(refresh_answer(status, body), Err(RefreshFailure::Transient(_))), "{status} {:?}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn form_values_are_encoded() {
        assert_eq!(form_encode("a b+c/="), "a+b%2Bc%2F%3D");
    }
}
