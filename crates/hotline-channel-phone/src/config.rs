//! The `[phone]` settings section, typed: which PBX integrations are on (the signed generic webhook, Stringee's
//! call events, the Asterisk AMI bridge), their secrets, the replay window, and how long call facts wait for their
//! petition. Values from the environment arrive as strings, so numbers and booleans are accepted as strings too;
//! secrets are wrapped so they never print.

use std::time::Duration;

use serde_json::Value;

pub use hotline_channel::Secret;

/// A setting that cannot be used, named by its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[phone] {key}: {message}")]
pub struct ConfigError {
    /// The key as written in the settings file (`ami.addr`), `HOTLINE_PHONE__AMI__ADDR` in the environment.
    pub key: String,
    pub message: String,
}

/// The whole `[phone]` section.
#[derive(Debug, Clone)]
pub struct PhoneConfig {
    /// `[phone.generic]`: the signed JSON webhook (`POST /v1/phone/events/generic`); off without a secret.
    pub generic: Option<GenericConfig>,
    /// `[phone.stringee]`: Stringee's call events (`POST /v1/phone/events/stringee`); off without both keys.
    pub stringee: Option<StringeeConfig>,
    /// `[phone.ami]`: the Asterisk AMI bridge; off without an address.
    pub ami: Option<AmiConfig>,
    /// A signed webhook whose timestamp is further than this from our clock is refused (a replay).
    pub replay_window: Duration,
    /// Call facts whose petition is never filed are dropped after this.
    pub pending_ttl: Duration,
    /// How often waiting call facts are looked at (recorded once their petition exists, or dropped when too old).
    pub sweep_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct GenericConfig {
    /// The HMAC-SHA256 key shared with the PBX bridge.
    pub secret: Secret,
}

/// How Stringee counts `duration` and `answerDuration` in its `ended` events (not stated in its docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationUnit {
    Millis,
    Secs,
}

#[derive(Debug, Clone)]
pub struct StringeeConfig {
    /// The project's account SID (`AC...`): every event must carry it.
    pub account_sid: String,
    /// The secret in the event URL's `token` query parameter (Stringee does not sign its events).
    pub token: Secret,
    pub duration_unit: DurationUnit,
}

/// `[phone.ami]`: a manager.conf user the bridge logs in as.
#[derive(Debug, Clone)]
pub struct AmiConfig {
    /// `host:port` of the Asterisk manager interface (port 5038 by default in Asterisk).
    pub addr: String,
    pub username: String,
    pub secret: Secret,
    /// Take the end of a call from the `Cdr` event (cdr_manager loaded): duration, billable seconds, disposition.
    /// Otherwise from the `Hangup` of the call's first channel.
    pub cdr: bool,
    /// How long to wait for a `Cdr` after the `Hangup` before recording the end without it.
    pub cdr_wait: Duration,
    /// Connecting and each action's response must finish within this.
    pub timeout: Duration,
    /// A `Ping` action this often keeps the session checked; no answer within `timeout` means reconnecting.
    pub ping_interval: Duration,
    /// Longest wait between reconnection attempts (they start at 1 s and double).
    pub reconnect_max: Duration,
}

/// Every key of the section, tables' keys dotted: a key not here is refused, so a typo stops the start instead of
/// silently switching an integration off.
pub const KEYS: &[&str] = &[
    "replay_window_secs",
    "pending_days",
    "sweep_secs",
    "generic.secret",
    "stringee.account_sid",
    "stringee.token",
    "stringee.duration_unit",
    "ami.addr",
    "ami.username",
    "ami.secret",
    "ami.cdr",
    "ami.cdr_wait_secs",
    "ami.timeout_secs",
    "ami.ping_secs",
    "ami.reconnect_max_secs",
];

const TABLES: &[&str] = &["generic", "stringee", "ami"];

fn check_keys(value: &Value) -> Result<(), ConfigError> {
    let root = match value {
        Value::Object(root) => root,
        Value::Null => return Ok(()),
        _ => return Err(ConfigError { key: "phone".into(), message: "must be a table".into() }),
    };
    let unknown = |key: String| ConfigError { key, message: "unknown key; docs/channels/phone.md lists the keys".into() };
    for (key, inner) in root {
        match inner {
            Value::Object(table) if TABLES.contains(&key.as_str()) => {
                for sub in table.keys() {
                    let dotted = format!("{key}.{sub}");
                    if !KEYS.contains(&dotted.as_str()) {
                        return Err(unknown(dotted));
                    }
                }
            }
            _ if TABLES.contains(&key.as_str()) => {
                return Err(ConfigError { key: key.clone(), message: "must be a table".into() });
            }
            _ if KEYS.contains(&key.as_str()) => {}
            _ => return Err(unknown(key.clone())),
        }
    }
    Ok(())
}

impl PhoneConfig {
    /// Reads the section as written (`{"generic": {"secret": "..."}, "ami": {"addr": ...}}`); null is the empty
    /// section (only the operators' intake).
    pub fn from_value(value: &Value) -> Result<PhoneConfig, ConfigError> {
        check_keys(value)?;
        let root = Section { prefix: String::new(), value };
        let generic = match root.table("generic") {
            Some(t) => t.string("secret")?.map(|s| GenericConfig { secret: Secret::new(s) }),
            None => None,
        };
        if let Some(g) = &generic
            && g.secret.expose().len() < 16
        {
            return Err(ConfigError { key: "generic.secret".into(), message: "use at least 16 characters".into() });
        }
        let stringee = match root.table("stringee") {
            Some(t) => match (t.string("account_sid")?, t.string("token")?) {
                (Some(account_sid), Some(token)) => {
                    if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                        return Err(ConfigError {
                            key: "stringee.token".into(),
                            message: "use at least 16 letters, digits, `-` or `_` (it goes in a URL)".into(),
                        });
                    }
                    let duration_unit = match t.string("duration_unit")?.as_deref() {
                        None | Some("ms") => DurationUnit::Millis,
                        Some("s") => DurationUnit::Secs,
                        Some(other) => {
                            return Err(ConfigError {
                                key: "stringee.duration_unit".into(),
                                message: format!("`ms` or `s`, not `{other}`"),
                            });
                        }
                    };
                    Some(StringeeConfig { account_sid, token: Secret::new(token), duration_unit })
                }
                (None, None) => None,
                (Some(_), None) => return Err(ConfigError { key: "stringee.token".into(), message: "required with stringee.account_sid".into() }),
                (None, Some(_)) => return Err(ConfigError { key: "stringee.account_sid".into(), message: "required with stringee.token".into() }),
            },
            None => None,
        };
        let ami = match root.table("ami") {
            Some(t) => match t.string("addr")? {
                Some(addr) => {
                    if !addr.contains(':') {
                        return Err(ConfigError { key: "ami.addr".into(), message: "host:port, e.g. `10.0.0.5:5038`".into() });
                    }
                    let required = |key: &str, v: Option<String>| {
                        v.ok_or_else(|| ConfigError { key: format!("ami.{key}"), message: "required with ami.addr".into() })
                    };
                    Some(AmiConfig {
                        addr,
                        username: required("username", t.string("username")?)?,
                        secret: Secret::new(required("secret", t.string("secret")?)?),
                        cdr: t.boolean("cdr")?.unwrap_or(false),
                        cdr_wait: Duration::from_secs(t.number("cdr_wait_secs", 0, 600)?.unwrap_or(10)),
                        timeout: Duration::from_secs(t.number("timeout_secs", 1, 300)?.unwrap_or(10)),
                        ping_interval: Duration::from_secs(t.number("ping_secs", 1, 3600)?.unwrap_or(30)),
                        reconnect_max: Duration::from_secs(t.number("reconnect_max_secs", 1, 3600)?.unwrap_or(30)),
                    })
                }
                None => None,
            },
            None => None,
        };
        Ok(PhoneConfig {
            generic,
            stringee,
            ami,
            replay_window: Duration::from_secs(root.number("replay_window_secs", 1, 86_400)?.unwrap_or(300)),
            pending_ttl: Duration::from_secs(root.number("pending_days", 1, 3650)?.unwrap_or(30) * 86_400),
            sweep_interval: Duration::from_secs(root.number("sweep_secs", 1, 86_400)?.unwrap_or(60)),
        })
    }
}

/// One table of the section, for typed reads with the key's dotted name in errors.
struct Section<'a> {
    prefix: String,
    value: &'a Value,
}

impl<'a> Section<'a> {
    fn table(&self, key: &str) -> Option<Section<'a>> {
        self.value.get(key).filter(|v| v.is_object()).map(|value| Section { prefix: format!("{key}."), value })
    }

    fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError { key: format!("{}{key}", self.prefix), message: message.into() }
    }

    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.value.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(_) => Err(self.error(key, "must be a string")),
        }
    }

    fn number(&self, key: &str, min: u64, max: u64) -> Result<Option<u64>, ConfigError> {
        let n = match self.value.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(_) => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(self.error(key, format!("a whole number from {min} to {max}"))),
        }
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.value.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.trim() == "true" => Ok(Some(true)),
            Some(Value::String(s)) if s.trim() == "false" => Ok(Some(false)),
            Some(_) => Err(self.error(key, "true or false")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_empty_section_keeps_only_the_intake() {
        let c = PhoneConfig::from_value(&Value::Null).expect("empty");
        assert!(c.generic.is_none() && c.stringee.is_none() && c.ami.is_none());
        assert_eq!(c.replay_window, Duration::from_secs(300));
        assert_eq!(c.pending_ttl, Duration::from_secs(30 * 86_400));
    }

    #[test]
    fn every_integration_reads_with_numbers_given_as_strings() {
        let c = PhoneConfig::from_value(&json!({
            "replay_window_secs": "120",
            "generic": {"secret": "0123456789abcdef0123"},
            "stringee": {"account_sid": "AC123", "token": "tok_0123456789abcdef", "duration_unit": "s"},
            "ami": {"addr": "127.0.0.1:5038", "username": "hotline", "secret": "s3cret", "cdr": "true", "ping_secs": "5"},
        }))
        .expect("config");
        assert_eq!(c.replay_window, Duration::from_secs(120));
        assert_eq!(c.stringee.as_ref().map(|s| s.duration_unit), Some(DurationUnit::Secs));
        let ami = c.ami.expect("ami");
        assert!(ami.cdr);
        assert_eq!(ami.ping_interval, Duration::from_secs(5));
        let debug = format!("{:?}", (&c.generic, &c.stringee, &ami));
        for secret in ["0123456789abcdef0123", "tok_0123456789abcdef", "s3cret"] {
            assert!(!debug.contains(secret), "a secret shows in Debug: {debug}");
        }
    }

    #[test]
    fn unknown_and_bad_keys_are_refused_by_name() {
        let key = |v: Value| PhoneConfig::from_value(&v).expect_err("refused").key;
        assert_eq!(key(json!({"ami": {"adr": "x:1"}})), "ami.adr");
        assert_eq!(key(json!({"replay_window": 5})), "replay_window");
        assert_eq!(key(json!({"replay_window_secs": "soon"})), "replay_window_secs");
        assert_eq!(key(json!({"generic": {"secret": "short"}})), "generic.secret");
        assert_eq!(key(json!({"stringee": {"account_sid": "AC1"}})), "stringee.token");
        assert_eq!(key(json!({"stringee": {"account_sid": "AC1", "token": "has space in it!!!!"}})), "stringee.token");
        assert_eq!(key(json!({"ami": {"addr": "127.0.0.1:5038", "username": "u"}})), "ami.secret");
        assert_eq!(key(json!({"ami": {"addr": "localhost"}})), "ami.addr");
    }
}
