//! The `[sms]` settings section, typed: which gateways receive (Twilio and eSMS webhooks, an SMPP session), how
//! answers go out, and the timeouts. Values from the environment arrive as strings, so numbers and booleans are
//! accepted as strings too; secrets are wrapped so they never print.

use std::time::Duration;

use serde_json::Value;

pub use hotline_channel::Secret;

/// A setting that cannot be used, named by its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[sms] {key}: {message}")]
pub struct ConfigError {
    /// The key as written in the settings file (`smpp.addr`), or `HOTLINE_SMS__SMPP__ADDR` in the environment.
    pub key: String,
    pub message: String,
}

/// How answers are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendVia {
    Smpp,
    Esms,
    Twilio,
    /// No route configured: every answer fails permanently, with a message saying so.
    None,
}

/// The whole `[sms]` section.
#[derive(Debug, Clone)]
pub struct SmsConfig {
    pub send: SendVia,
    pub follow_up_window: Duration,
    pub http_timeout: Duration,
    pub twilio: Option<TwilioConfig>,
    pub esms: Option<EsmsConfig>,
    pub smpp: Option<SmppConfig>,
}

/// `[sms.twilio]`. Receiving needs `auth_token` and `public_url`; sending also `account_sid` and `from`.
#[derive(Debug, Clone)]
pub struct TwilioConfig {
    pub auth_token: Secret,
    /// The webhook URL exactly as configured at Twilio (it is what Twilio signs), without the query string.
    pub public_url: Option<String>,
    pub account_sid: Option<String>,
    pub from: Option<String>,
    pub api_base: String,
}

/// `[sms.esms]`. Receiving needs `private_key`; sending needs `api_key`, `secret_key` and `brandname`.
#[derive(Debug, Clone)]
pub struct EsmsConfig {
    pub private_key: Option<Secret>,
    pub api_key: Option<Secret>,
    pub secret_key: Option<Secret>,
    pub brandname: Option<String>,
    pub sms_type: String,
    pub api_base: String,
    pub sandbox: bool,
    /// Answer an MO with a short acknowledgement (it becomes an SMS to the citizen), or with an empty message.
    pub acknowledge: bool,
}

/// `[sms.smpp]`: the ESME's transceiver session to the operator's SMSC.
#[derive(Debug, Clone)]
pub struct SmppConfig {
    pub addr: String,
    pub system_id: String,
    pub password: Secret,
    pub system_type: String,
    /// The hotline's number as answers' `source_addr` (the short code).
    pub source_addr: Option<String>,
    pub source_addr_ton: u8,
    pub source_addr_npi: u8,
    pub dest_addr_ton: u8,
    pub dest_addr_npi: u8,
    pub registered_delivery: bool,
    pub enquire_link: Duration,
    pub response_timeout: Duration,
    pub submit_timeout: Duration,
    pub reassembly_timeout: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

/// Every key of the section, tables' keys dotted: a key not here is refused, so a typo (`esms.privat_key`) stops the
/// start instead of silently switching a gateway off.
pub const KEYS: &[&str] = &[
    "send",
    "follow_up_window_hours",
    "http_timeout_secs",
    "twilio.auth_token",
    "twilio.public_url",
    "twilio.account_sid",
    "twilio.from",
    "twilio.api_base",
    "esms.private_key",
    "esms.acknowledge",
    "esms.api_key",
    "esms.secret_key",
    "esms.brandname",
    "esms.sms_type",
    "esms.sandbox",
    "esms.api_base",
    "smpp.addr",
    "smpp.system_id",
    "smpp.password",
    "smpp.system_type",
    "smpp.source_addr",
    "smpp.source_addr_ton",
    "smpp.source_addr_npi",
    "smpp.dest_addr_ton",
    "smpp.dest_addr_npi",
    "smpp.registered_delivery",
    "smpp.enquire_link_secs",
    "smpp.response_timeout_secs",
    "smpp.submit_timeout_secs",
    "smpp.reassembly_timeout_secs",
    "smpp.reconnect_min_ms",
    "smpp.reconnect_max_secs",
];

/// The tables of the section.
const TABLES: &[&str] = &["twilio", "esms", "smpp"];

fn check_keys(value: &Value) -> Result<(), ConfigError> {
    let Value::Object(root) = value else { return Ok(()) };
    let unknown = |key: String| ConfigError { key, message: "unknown key; docs/channels/sms.md lists the keys".into() };
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
            _ if KEYS.contains(&key.as_str()) || TABLES.contains(&key.as_str()) => {}
            _ => return Err(unknown(key.clone())),
        }
    }
    Ok(())
}

impl SmsConfig {
    /// Reads the section as written (`{"send": "smpp", "smpp": {"addr": ...}}`).
    pub fn from_value(value: &Value) -> Result<SmsConfig, ConfigError> {
        check_keys(value)?;
        let root = Section::root(value)?;
        let twilio = match root.section("twilio")? {
            Some(t) => match t.string("auth_token")? {
                Some(token) => Some(TwilioConfig {
                    auth_token: Secret::new(token),
                    public_url: t.string("public_url")?,
                    account_sid: t.string("account_sid")?,
                    from: t.string("from")?,
                    api_base: t
                        .string("api_base")?
                        .unwrap_or_else(|| "https://api.twilio.com".to_owned()),
                }),
                None => None,
            },
            None => None,
        };
        if let Some(t) = &twilio
            && let Some(url) = &t.public_url
            && (!(url.starts_with("https://") || url.starts_with("http://")) || url.contains('?'))
        {
            return Err(ConfigError {
                        key: "twilio.public_url".into(),
                        message: "must be the webhook's absolute URL as configured at Twilio, without a query string"
                            .into(),
                    });
        }
        let esms = match root.section("esms")? {
            Some(e) => Some(EsmsConfig {
                private_key: e.string("private_key")?.map(Secret::new),
                api_key: e.string("api_key")?.map(Secret::new),
                secret_key: e.string("secret_key")?.map(Secret::new),
                brandname: e.string("brandname")?,
                sms_type: e.string("sms_type")?.unwrap_or_else(|| "2".to_owned()),
                api_base: e
                    .string("api_base")?
                    .unwrap_or_else(|| "https://rest.esms.vn".to_owned()),
                sandbox: e.bool("sandbox")?.unwrap_or(false),
                acknowledge: e.bool("acknowledge")?.unwrap_or(true),
            }),
            None => None,
        };
        let smpp = match root.section("smpp")? {
            Some(s) => match s.string("addr")? {
                Some(addr) => Some(SmppConfig {
                    addr,
                    system_id: s
                        .string("system_id")?
                        .ok_or_else(|| s.missing("system_id"))?,
                    password: Secret::new(s.string("password")?.unwrap_or_default()),
                    system_type: s.string("system_type")?.unwrap_or_default(),
                    source_addr: s.string("source_addr")?,
                    source_addr_ton: s.u8("source_addr_ton")?.unwrap_or(0),
                    source_addr_npi: s.u8("source_addr_npi")?.unwrap_or(0),
                    dest_addr_ton: s.u8("dest_addr_ton")?.unwrap_or(1),
                    dest_addr_npi: s.u8("dest_addr_npi")?.unwrap_or(1),
                    registered_delivery: s.bool("registered_delivery")?.unwrap_or(true),
                    enquire_link: s.duration_secs("enquire_link_secs", 30)?,
                    response_timeout: s.duration_secs("response_timeout_secs", 10)?,
                    submit_timeout: s.duration_secs("submit_timeout_secs", 60)?,
                    reassembly_timeout: s.duration_secs("reassembly_timeout_secs", 60)?,
                    reconnect_min: s.duration_ms("reconnect_min_ms", 1000)?,
                    reconnect_max: s.duration_secs("reconnect_max_secs", 60)?,
                }),
                None => None,
            },
            None => None,
        };
        if let Some(s) = &smpp {
            check_field("smpp.system_id", &s.system_id, 15)?;
            check_field("smpp.password", s.password.expose(), 8)?;
            check_field("smpp.system_type", &s.system_type, 12)?;
            if let Some(a) = &s.source_addr {
                check_field("smpp.source_addr", a, 20)?;
            }
        }
        let send = match root.string("send")?.as_deref() {
            Some("smpp") => SendVia::Smpp,
            Some("esms") => SendVia::Esms,
            Some("twilio") => SendVia::Twilio,
            Some("none") => SendVia::None,
            Some(other) => {
                return Err(ConfigError {
                    key: "send".into(),
                    message: format!("`{other}` is not one of smpp, esms, twilio, none"),
                });
            }
            // Unset: the first route that is configured for sending.
            None if smpp.as_ref().is_some_and(|s| s.source_addr.is_some()) => SendVia::Smpp,
            None if esms.as_ref().is_some_and(|e| e.api_key.is_some()) => SendVia::Esms,
            None if twilio.as_ref().is_some_and(|t| t.account_sid.is_some()) => SendVia::Twilio,
            None => SendVia::None,
        };
        let require = |ok: bool, key: &str, why: &str| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError {
                    key: key.into(),
                    message: why.into(),
                })
            }
        };
        match send {
            SendVia::Smpp => {
                require(
                    smpp.is_some(),
                    "smpp.addr",
                    "sending by SMPP needs the SMSC's address",
                )?;
                require(
                    smpp.as_ref().is_some_and(|s| s.source_addr.is_some()),
                    "smpp.source_addr",
                    "sending by SMPP needs the hotline's number",
                )?;
            }
            SendVia::Esms => {
                let e = esms.as_ref();
                require(
                    e.is_some_and(|e| e.api_key.is_some()),
                    "esms.api_key",
                    "sending by eSMS needs it",
                )?;
                require(
                    e.is_some_and(|e| e.secret_key.is_some()),
                    "esms.secret_key",
                    "sending by eSMS needs it",
                )?;
                require(
                    e.is_some_and(|e| e.brandname.is_some()),
                    "esms.brandname",
                    "sending by eSMS needs it",
                )?;
            }
            SendVia::Twilio => {
                let t = twilio.as_ref();
                require(
                    t.is_some(),
                    "twilio.auth_token",
                    "sending by Twilio needs it",
                )?;
                require(
                    t.is_some_and(|t| t.account_sid.is_some()),
                    "twilio.account_sid",
                    "sending by Twilio needs it",
                )?;
                require(
                    t.is_some_and(|t| t.from.is_some()),
                    "twilio.from",
                    "sending by Twilio needs it",
                )?;
            }
            SendVia::None => {}
        }
        if let Some(t) = &twilio {
            require(
                t.public_url.is_some(),
                "twilio.public_url",
                "checking Twilio's signatures needs the webhook URL Twilio signs",
            )?;
        }
        let hours = root.u64("follow_up_window_hours")?.unwrap_or(72);
        Ok(SmsConfig {
            send,
            follow_up_window: Duration::from_secs(hours.saturating_mul(3600)),
            http_timeout: root.duration_secs("http_timeout_secs", 20)?,
            twilio,
            esms,
            smpp,
        })
    }
}

fn check_field(key: &str, value: &str, max: usize) -> Result<(), ConfigError> {
    if value.len() > max || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError {
            key: key.into(),
            message: format!("must be at most {max} visible ASCII characters"),
        });
    }
    Ok(())
}

/// A JSON object with the key path it sits at, for error messages.
struct Section<'a> {
    prefix: &'static str,
    map: Option<&'a serde_json::Map<String, Value>>,
}

impl<'a> Section<'a> {
    fn root(value: &'a Value) -> Result<Section<'a>, ConfigError> {
        match value {
            Value::Null => Ok(Section {
                prefix: "",
                map: None,
            }),
            Value::Object(map) => Ok(Section {
                prefix: "",
                map: Some(map),
            }),
            _ => Err(ConfigError {
                key: "(section)".into(),
                message: "must be a table".into(),
            }),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn missing(&self, name: &str) -> ConfigError {
        ConfigError {
            key: self.key(name),
            message: "is required".into(),
        }
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.and_then(|m| m.get(name)).filter(|v| !v.is_null())
    }

    fn section(&self, name: &'static str) -> Result<Option<Section<'a>>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(map)) => {
                let prefix = match name {
                    "twilio" => "twilio.",
                    "esms" => "esms.",
                    _ => "smpp.",
                };
                Ok(Some(Section {
                    prefix,
                    map: Some(map),
                }))
            }
            Some(_) => Err(ConfigError {
                key: self.key(name),
                message: "must be a table".into(),
            }),
        }
    }

    /// A string; an empty one counts as unset (an environment variable set to nothing).
    fn string(&self, name: &str) -> Result<Option<String>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(ConfigError {
                key: self.key(name),
                message: "must be a string".into(),
            }),
        }
    }

    fn u64(&self, name: &str) -> Result<Option<u64>, ConfigError> {
        let bad = || ConfigError {
            key: self.key(name),
            message: "must be a whole number".into(),
        };
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(bad),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }

    fn u8(&self, name: &str) -> Result<Option<u8>, ConfigError> {
        self.u64(name)?
            .map(|v| {
                u8::try_from(v).map_err(|_| ConfigError {
                    key: self.key(name),
                    message: "must be 0 to 255".into(),
                })
            })
            .transpose()
    }

    fn bool(&self, name: &str) -> Result<Option<bool>, ConfigError> {
        let bad = || ConfigError {
            key: self.key(name),
            message: "must be true or false".into(),
        };
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "" => Ok(None),
                "true" | "1" | "yes" => Ok(Some(true)),
                "false" | "0" | "no" => Ok(Some(false)),
                _ => Err(bad()),
            },
            Some(_) => Err(bad()),
        }
    }

    fn duration_secs(&self, name: &str, default: u64) -> Result<Duration, ConfigError> {
        self.positive(name, default).map(Duration::from_secs)
    }

    fn duration_ms(&self, name: &str, default: u64) -> Result<Duration, ConfigError> {
        self.positive(name, default).map(Duration::from_millis)
    }

    fn positive(&self, name: &str, default: u64) -> Result<u64, ConfigError> {
        match self.u64(name)? {
            None => Ok(default),
            Some(0) => Err(ConfigError {
                key: self.key(name),
                message: "must be more than 0".into(),
            }),
            Some(v) if v > 86_400_000 => Err(ConfigError {
                key: self.key(name),
                message: "is too large".into(),
            }),
            Some(v) => Ok(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_mistyped_key_stops_the_start_and_names_the_key() {
        let e = SmsConfig::from_value(&json!({"esms": {"privat_key": "k"}})).expect_err("typo");
        assert_eq!(e.key, "esms.privat_key");
        let e = SmsConfig::from_value(&json!({"sendd": "smpp"})).expect_err("typo");
        assert_eq!(e.key, "sendd");
    }

    #[test]
    fn an_empty_section_receives_nothing_and_sends_nowhere() {
        let c = SmsConfig::from_value(&Value::Null).expect("valid");
        assert_eq!(c.send, SendVia::None);
        assert_eq!(c.follow_up_window, Duration::from_secs(72 * 3600));
        assert!(c.twilio.is_none() && c.esms.is_none() && c.smpp.is_none());
    }

    #[test]
    fn environment_strings_are_read_as_numbers_and_booleans() {
        let c = SmsConfig::from_value(&json!({
            "follow_up_window_hours": "24",
            "smpp": {"addr": "127.0.0.1:2775", "system_id": "hotline", "password": "pw", "source_addr": "1022",
                     "enquire_link_secs": "5", "registered_delivery": "false", "source_addr_ton": "3"},
        }))
        .expect("valid");
        let s = c.smpp.expect("smpp");
        assert_eq!(
            (
                c.send,
                s.enquire_link,
                s.registered_delivery,
                s.source_addr_ton
            ),
            (SendVia::Smpp, Duration::from_secs(5), false, 3)
        );
        assert_eq!(c.follow_up_window, Duration::from_secs(24 * 3600));
        assert!(!format!("{s:?}").contains("\"pw\""));
    }

    #[test]
    fn no_secret_shows_in_debug_output() {
        let c = SmsConfig::from_value(&json!({
            "twilio": {"auth_token": "tw-secret", "public_url": "https://h/v1/sms/twilio"},
            "esms": {"private_key": "pk-secret", "api_key": "ak-secret", "secret_key": "sk-secret", "brandname": "b"},
            "smpp": {"addr": "h:1", "system_id": "s", "password": "pw-secr"},
        }))
        .expect("valid");
        let shown = format!("{c:?}");
        for secret in [
            "tw-secret",
            "pk-secret",
            "ak-secret",
            "sk-secret",
            "pw-secr",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (json!({"send": "fax"}), "send"),
            (
                json!({"send": "esms", "esms": {"api_key": "k"}}),
                "esms.secret_key",
            ),
            (json!({"twilio": {"auth_token": "t"}}), "twilio.public_url"),
            (
                json!({"twilio": {"auth_token": "t", "public_url": "https://x/y?a=1"}}),
                "twilio.public_url",
            ),
            (json!({"smpp": {"addr": "h:1"}}), "smpp.system_id"),
            (
                json!({"smpp": {"addr": "h:1", "system_id": "s", "enquire_link_secs": "soon"}}),
                "smpp.enquire_link_secs",
            ),
            (
                json!({"smpp": {"addr": "h:1", "system_id": "s", "password": "much-too-long"}}),
                "smpp.password",
            ),
            (
                json!({"send": "smpp", "smpp": {"addr": "h:1", "system_id": "s"}}),
                "smpp.source_addr",
            ),
        ];
        for (value, key) in cases {
            let e = SmsConfig::from_value(&value).expect_err("invalid");
            assert_eq!(e.key, key, "{value}: {e}");
        }
    }
}
