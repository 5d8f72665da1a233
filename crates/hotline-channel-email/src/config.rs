//! The `[email]` settings section, typed: where the SMTP listener listens and what it accepts, and how answers go
//! out (the relay, the From address, the domain of our Message-IDs). Values from the environment arrive as strings,
//! so numbers are accepted as strings too, and lists as comma-separated strings; the password never prints.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use crate::smtp::{Limits, Recipients};

/// Every key of the section, for the "unknown key" message (and the settings documentation check).
pub const KEYS: &[&str] = &[
    "listen",
    "hostname",
    "recipients",
    "max_message_bytes",
    "max_recipients",
    "max_connections",
    "command_timeout_secs",
    "data_timeout_secs",
    "max_buffered_bytes",
    "authserv_id",
    "trust_unauthenticated_from",
    "relay",
    "username",
    "password",
    "from",
    "domain",
    "relay_timeout_secs",
];

pub use hotline_channel::Secret;

/// A setting that cannot be used, named by its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[email] {key}: {message}")]
pub struct ConfigError {
    /// The key as written in the settings file (`HOTLINE_EMAIL__<KEY>` in the environment).
    pub key: String,
    pub message: String,
}

/// The whole `[email]` section.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// Where the SMTP listener listens.
    pub listen: SocketAddr,
    /// The name in the SMTP greeting and EHLO reply.
    pub hostname: String,
    pub recipients: Recipients,
    pub limits: Limits,
    /// SMTP sessions served at once; more are told to come back later (421).
    pub max_connections: usize,
    /// How long the listener waits for a command (RFC 5321 §4.5.3.2: at least 5 minutes).
    pub command_timeout: Duration,
    /// How long it waits for the next piece of a message body (RFC 5321 §4.5.3.2 asks for 3 and 10 minutes).
    pub data_timeout: Duration,
    /// Memory all sessions together may hold for mails being received and parsed (see `server.rs`).
    pub max_buffered_bytes: usize,
    /// The authserv-id of the province's own MTA: its `Authentication-Results` header says whether a mail's
    /// sender is authentic, which a follow-up needs to join its ticket.
    pub authserv_id: Option<String>,
    /// Believe the `From` of every mail (a closed test setup, or an MTA that already refuses unauthenticated
    /// mail): anyone could then add messages to anyone's ticket by writing their address.
    pub trust_unauthenticated_from: bool,
    /// The SMTP relay answers go out through: `smtp://host:port` (plain, or `?tls=required` / `?tls=opportunistic`
    /// for STARTTLS), or `smtps://host:port` (TLS from the start).
    pub relay: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The answers' From header, e.g. `1022 Bình Dương <tiepnhan@1022.binhduong.gov.vn>`.
    pub from: String,
    /// The domain of our Message-IDs (`<hotline.{ticket}.{event}@domain>`).
    pub domain: String,
    /// Connecting to and talking with the relay, per answer.
    pub relay_timeout: Duration,
}

impl EmailConfig {
    /// Reads the section; an absent or `null` section gives the defaults.
    pub fn from_value(value: &Value) -> Result<EmailConfig, ConfigError> {
        let empty = serde_json::Map::new();
        let map = match value {
            Value::Object(map) => map,
            Value::Null => &empty,
            _ => return Err(err("(section)", "must be a table of settings")),
        };
        if let Some(unknown) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(err(unknown, format!("unknown key; known keys: {}", KEYS.join(", "))));
        }
        let listen = match string(map, "listen")? {
            Some(s) => s.parse().map_err(|_| err("listen", format!("`{s}` is not an address like 127.0.0.1:2525")))?,
            None => SocketAddr::from(([127, 0, 0, 1], 2525)),
        };
        let from = string(map, "from")?.unwrap_or_else(|| "1022 <tiepnhan@localhost>".to_owned());
        let from_address = from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| err("from", format!("`{from}` is not a mail address (`Name <user@domain>`): {e}")))?;
        let domain = match string(map, "domain")? {
            Some(d) => d,
            None => from_address.email.domain().to_owned(),
        };
        if domain.is_empty() || !domain.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
            return Err(err("domain", format!("`{domain}` is not a domain name")));
        }
        let hostname = string(map, "hostname")?.unwrap_or_else(|| domain.clone());
        if hostname.is_empty() || hostname.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("hostname", "must be a host name without spaces"));
        }
        let recipients = list(map, "recipients")?;
        if let Some(bad) = recipients.iter().find(|r| r.chars().any(|c| c.is_whitespace() || c.is_control())) {
            return Err(err("recipients", format!("`{bad}` is neither an address nor a domain")));
        }
        let defaults = Limits::default();
        let limits = Limits {
            max_message_bytes: number(map, "max_message_bytes", 1024, 1 << 30)?
                .map_or(defaults.max_message_bytes, |n| n as usize),
            max_recipients: number(map, "max_recipients", 1, 10_000)?.map_or(defaults.max_recipients, |n| n as usize),
            ..defaults
        };
        // Each mail counts BUDGET_FACTOR times its size against the budget, so the largest must fit on its own.
        let smallest_budget = limits.max_message_bytes.saturating_mul(BUDGET_FACTOR);
        let max_buffered_bytes = match number(map, "max_buffered_bytes", 1 << 20, 1 << 36)? {
            Some(n) if (n as usize) < smallest_budget => {
                return Err(err(
                    "max_buffered_bytes",
                    format!(
                        "must be at least {BUDGET_FACTOR} × max_message_bytes ({smallest_budget}): a mail is counted \
                         {BUDGET_FACTOR} times its size while it is received and parsed"
                    ),
                ));
            }
            Some(n) => n as usize,
            None => DEFAULT_MAX_BUFFERED_BYTES.max(smallest_budget),
        };
        let authserv_id = string(map, "authserv_id")?;
        if let Some(id) = &authserv_id
            && id.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, ';' | '(' | ')' | '"'))
        {
            return Err(err("authserv_id", format!("`{id}` is not an authserv-id (a host name like mx.1022.tinh.gov.vn)")));
        }
        let relay = string(map, "relay")?.unwrap_or_else(|| "smtp://127.0.0.1:25".to_owned());
        // Checked now (scheme, host, TLS mode), so a typo stops the start instead of every answer.
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(&relay)
            .map_err(|e| err("relay", format!("not a usable relay URL (smtp://host:port, smtps://host:port): {e}")))?;
        Ok(EmailConfig {
            listen,
            hostname,
            recipients: Recipients::new(recipients.iter().map(String::as_str)),
            limits,
            max_connections: number(map, "max_connections", 1, 100_000)?.map_or(50, |n| n as usize),
            command_timeout: secs(map, "command_timeout_secs", 300)?,
            data_timeout: secs(map, "data_timeout_secs", 600)?,
            max_buffered_bytes,
            authserv_id,
            trust_unauthenticated_from: boolean(map, "trust_unauthenticated_from")?.unwrap_or(false),
            relay,
            username: string(map, "username")?,
            password: string(map, "password")?.map(Secret::new),
            from,
            domain,
            relay_timeout: secs(map, "relay_timeout_secs", 30)?,
        })
    }

    /// What the operator must hear once at start about follow-ups, when they cannot thread or thread on trust.
    pub fn threading_notice(&self) -> Option<String> {
        match (&self.authserv_id, self.trust_unauthenticated_from) {
            (_, true) => Some(
                "email: trust_unauthenticated_from is on: the From of every mail is believed, so anyone can add \
                 messages to anyone's ticket by writing their address; use it only when the mail server refuses \
                 unauthenticated mail"
                    .to_owned(),
            ),
            (None, false) => Some(
                "email: threading is off until configured: every mail opens a new petition, replies too. Set \
                 [email] authserv_id to the authserv-id of the Authentication-Results header your mail server adds \
                 (docs/channels/email.md, \"Threading\")"
                    .to_owned(),
            ),
            (Some(_), false) => None,
        }
    }

    /// The relay URL without any password in it, for logs.
    pub fn relay_for_logs(&self) -> String {
        match self.relay.split_once("://").and_then(|(scheme, rest)| rest.split_once('@').map(|(_, h)| (scheme, h))) {
            Some((scheme, host)) => format!("{scheme}://<credentials>@{host}"),
            None => self.relay.clone(),
        }
    }
}

/// A mail counts this many times its size against `max_buffered_bytes`: the bytes as received, plus what parsing
/// makes of them (decoded attachments and text, the copies handed to the blob store).
pub const BUDGET_FACTOR: usize = 3;
/// `max_buffered_bytes` when not set (raised to fit the largest mail when `max_message_bytes` is higher).
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 128 * 1024 * 1024;

fn err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError { key: key.to_owned(), message: message.into() }
}

fn string(map: &serde_json::Map<String, Value>, key: &str) -> Result<Option<String>, ConfigError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(_) => Err(err(key, "must be a string")),
    }
}

/// A list: an array of strings, or one comma-separated string (as the environment gives it).
fn list(map: &serde_json::Map<String, Value>, key: &str) -> Result<Vec<String>, ConfigError> {
    let items: Vec<String> = match map.get(key) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.split(',').map(str::to_owned).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| err(key, "must be a list of strings")))
            .collect::<Result<_, _>>()?,
        Some(_) => Err(err(key, "must be a list of strings"))?,
    };
    Ok(items.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
}

/// `true` / `false`, written as a boolean or a string.
fn boolean(map: &serde_json::Map<String, Value>, key: &str) -> Result<Option<bool>, ConfigError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(err(key, "must be true or false")),
    }
}

/// A whole number in `min..=max`, written as a number or a string.
fn number(map: &serde_json::Map<String, Value>, key: &str, min: u64, max: u64) -> Result<Option<u64>, ConfigError> {
    let n = match map.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    };
    match n {
        Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(err(key, format!("must be a whole number from {min} to {max}"))),
    }
}

fn secs(map: &serde_json::Map<String, Value>, key: &str, default: u64) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(number(map, key, 1, 86_400)?.unwrap_or(default)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_empty_section_gives_working_defaults() {
        let c = EmailConfig::from_value(&Value::Null).expect("defaults");
        assert_eq!(c.listen.to_string(), "127.0.0.1:2525");
        assert_eq!(c.relay, "smtp://127.0.0.1:25");
        assert_eq!(c.domain, "localhost");
        assert_eq!(c.command_timeout, Duration::from_secs(300));
        assert_eq!(c.data_timeout, Duration::from_secs(600));
        assert!(c.recipients.accepts("anyone@anywhere.vn"));
        assert_eq!(c.max_buffered_bytes, 128 * 1024 * 1024);
        assert_eq!((c.authserv_id.as_deref(), c.trust_unauthenticated_from), (None, false));
    }

    #[test]
    fn threading_needs_an_authserv_id_or_an_explicit_trust_and_says_so() {
        let off = EmailConfig::from_value(&Value::Null).expect("defaults");
        assert!(off.threading_notice().is_some_and(|n| n.contains("threading is off") && n.contains("authserv_id")));
        let on = EmailConfig::from_value(&json!({"authserv_id": "mx.1022.tinh.gov.vn"})).expect("config");
        assert_eq!(on.authserv_id.as_deref(), Some("mx.1022.tinh.gov.vn"));
        assert_eq!(on.threading_notice(), None);
        let trusting = EmailConfig::from_value(&json!({"trust_unauthenticated_from": "true"})).expect("config");
        assert!(trusting.trust_unauthenticated_from);
        assert!(trusting.threading_notice().is_some_and(|n| n.contains("anyone")));
    }

    #[test]
    fn the_buffer_budget_fits_the_largest_mail() {
        let c = EmailConfig::from_value(&json!({"max_message_bytes": "1048576", "max_buffered_bytes": "3145728"}))
            .expect("config");
        assert_eq!(c.max_buffered_bytes, 3 * 1024 * 1024);
        let e = EmailConfig::from_value(&json!({"max_message_bytes": 1_048_576, "max_buffered_bytes": 2_097_152}))
            .expect_err("too small");
        assert_eq!(e.key, "max_buffered_bytes");
        // Unset, it grows with max_message_bytes.
        let big = EmailConfig::from_value(&json!({"max_message_bytes": 100 << 20})).expect("config");
        assert_eq!(big.max_buffered_bytes, 300 << 20);
    }

    #[test]
    fn values_from_the_environment_arrive_as_strings() {
        let c = EmailConfig::from_value(&json!({
            "listen": "0.0.0.0:25", "max_message_bytes": "1048576", "max_connections": "5",
            "recipients": "tiepnhan@1022.tinh.gov.vn, hotline.test",
            "from": "1022 Tỉnh Bình Dương <tiepnhan@1022.tinh.gov.vn>",
            "password": "s3cret", "relay": "smtp://relay.tinh.gov.vn:587?tls=required",
        }))
        .expect("config");
        assert_eq!(c.limits.max_message_bytes, 1_048_576);
        assert_eq!(c.max_connections, 5);
        assert_eq!(c.domain, "1022.tinh.gov.vn");
        assert_eq!(c.hostname, "1022.tinh.gov.vn");
        assert!(c.recipients.accepts("TiepNhan@1022.tinh.gov.vn"));
        assert!(c.recipients.accepts("x@hotline.test"));
        assert!(!c.recipients.accepts("other@1022.tinh.gov.vn"));
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn bad_values_name_their_key() {
        for (value, key) in [
            (json!({"listen": "nowhere"}), "listen"),
            (json!({"max_message_bytes": "lots"}), "max_message_bytes"),
            (json!({"max_connections": 0}), "max_connections"),
            (json!({"from": "not an address"}), "from"),
            (json!({"relay": "http://x"}), "relay"),
            (json!({"recipients": [1]}), "recipients"),
            (json!({"recipeints": []}), "recipeints"),
            (json!({"domain": "a b"}), "domain"),
            (json!({"authserv_id": "mx; dmarc=pass"}), "authserv_id"),
            (json!({"trust_unauthenticated_from": "yes"}), "trust_unauthenticated_from"),
            (json!({"max_buffered_bytes": 10}), "max_buffered_bytes"),
        ] {
            let e = EmailConfig::from_value(&value).expect_err("refused");
            assert_eq!(e.key, key, "{e}");
        }
    }

    #[test]
    fn the_relay_password_is_kept_out_of_logs() {
        let c = EmailConfig::from_value(&json!({"relay": "smtp://u:pw@relay:25"})).expect("config");
        assert_eq!(c.relay_for_logs(), "smtp://<credentials>@relay:25");
    }
}
