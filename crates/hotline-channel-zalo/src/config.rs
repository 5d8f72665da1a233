//! The `[zalo]` settings section, typed. Values from the environment (`HOTLINE_ZALO__KEY`) arrive as strings, so
//! numbers are accepted as strings too; secrets are wrapped so they never print; an unknown key stops the start.

use std::time::Duration;

use serde_json::Value;

pub use hotline_channel::Secret;

/// A setting that cannot be used, named by its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[zalo] {key}: {message}")]
pub struct ConfigError {
    /// The key as written in the settings file (`oa_secret_key`); `HOTLINE_ZALO__OA_SECRET_KEY` in the environment.
    pub key: String,
    pub message: String,
}

/// The whole `[zalo]` section.
#[derive(Debug, Clone)]
pub struct ZaloConfig {
    /// The Zalo app's id (developers.zalo.me): sent with token refreshes; when set, webhook events of another
    /// app are refused.
    pub app_id: Option<String>,
    /// The app's secret key: the `secret_key` header of token refreshes.
    pub app_secret: Option<Secret>,
    /// The OA secret key of the webhook settings (not the app secret): signs every webhook event. Without it the
    /// webhook is not mounted.
    pub oa_secret_key: Option<Secret>,
    /// First access token, used only while the channel's state holds none (or when it changes here).
    pub access_token: Option<Secret>,
    /// First refresh token, same rule.
    pub refresh_token: Option<Secret>,
    /// `https://openapi.zalo.me`: the OA message API.
    pub api_base: String,
    /// `https://oauth.zaloapp.com`: token refreshes.
    pub oauth_base: String,
    /// How far an event's timestamp may be from our clock (either way) before it is refused as a replay. Zalo
    /// retries an event it could not deliver for up to about a day, with its original timestamp, so the default
    /// ([`DEFAULT_REPLAY_WINDOW`]) covers that; a replayed message is recognised by its `msg_id` anyway.
    pub replay_window: Duration,
    /// A citizen's messages within this time of their first pending one make one petition.
    pub group_window: Duration,
    /// A message joins the citizen's ticket that waits for their answer when the question is at most this old.
    pub follow_up_window: Duration,
    /// Whole-exchange timeout of every call to Zalo (connect is capped at 10 s).
    pub http_timeout: Duration,
    /// How long a citizen's shared contact details (`contact.*`: phone and name in clear) and an unfollow
    /// (`follower.*`) are kept after the event that last wrote them.
    pub contact_retention: Duration,
}

/// Default `replay_window_secs`: 26 hours. Zalo redelivers a webhook event our side did not take (an outage, a
/// deploy gone wrong) with growing pauses for about 24 hours, each time with the event's original timestamp; a
/// shorter window would refuse those retries and lose the messages. Replays are harmless: a message is recognised
/// by its `msg_id` (pending in the inbox, or by its `seen` marker, kept twice this long), and follow and
/// contact events never overwrite newer ones.
pub const DEFAULT_REPLAY_WINDOW: Duration = Duration::from_secs(26 * 3600);

/// Default `contact_retention_days`. A shared phone number and name are copied onto the citizen's petitions (for
/// the SMS fallback) when they write; kept longer than a season of petitions, they are only personal data lying
/// around. A citizen who shares them again starts the period again.
pub const DEFAULT_CONTACT_RETENTION_DAYS: u64 = 90;

/// Every key of the section. A key not here is refused, so a typo (`oa_secret`) stops the start instead of
/// silently switching the webhook off.
pub const KEYS: &[&str] = &[
    "app_id",
    "app_secret",
    "oa_secret_key",
    "access_token",
    "refresh_token",
    "api_base",
    "oauth_base",
    "replay_window_secs",
    "group_window_secs",
    "follow_up_window_hours",
    "http_timeout_secs",
    "contact_retention_days",
];

impl ZaloConfig {
    /// Reads the section as written (`{"oa_secret_key": "...", "group_window_secs": "60"}`); `null` is an empty
    /// section (the channel then neither receives nor sends).
    pub fn from_value(value: &Value) -> Result<ZaloConfig, ConfigError> {
        let map = match value {
            Value::Null => None,
            Value::Object(map) => Some(map),
            _ => return Err(error("(section)", "must be a table")),
        };
        if let Some(map) = map
            && let Some(key) = map.keys().find(|k| !KEYS.contains(&k.as_str()))
        {
            return Err(error(key, "unknown key; docs/channels/zalo.md lists the keys"));
        }
        let get = |key: &str| map.and_then(|m| m.get(key)).filter(|v| !v.is_null());
        let string = |key: &str| -> Result<Option<String>, ConfigError> {
            match get(key) {
                None => Ok(None),
                Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
                Some(Value::Number(n)) => Ok(Some(n.to_string())),
                Some(_) => Err(error(key, "must be a string")),
            }
        };
        let number = |key: &str, default: u64| -> Result<u64, ConfigError> {
            match get(key) {
                None => Ok(default),
                Some(Value::Number(n)) => n.as_u64().ok_or_else(|| error(key, "must be a whole number, 0 or more")),
                Some(Value::String(s)) if s.trim().is_empty() => Ok(default),
                Some(Value::String(s)) => {
                    s.trim().parse().map_err(|_| error(key, &format!("`{s}` is not a whole number, 0 or more")))
                }
                Some(_) => Err(error(key, "must be a whole number")),
            }
        };
        let base = |key: &str, default: &str| -> Result<String, ConfigError> {
            let url = string(key)?.unwrap_or_else(|| default.to_owned());
            if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains(char::is_whitespace) {
                return Err(error(key, "must be an http(s) URL"));
            }
            Ok(url.trim_end_matches('/').to_owned())
        };
        let app_id = string("app_id")?;
        if let Some(id) = &app_id
            && (id.len() > 64 || !id.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(error("app_id", "must be the app's numeric id, as the Zalo developer console shows it"));
        }
        let secret = |key: &str| -> Result<Option<Secret>, ConfigError> {
            let value = string(key)?;
            if let Some(v) = &value
                && !v.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(error(key, "must be visible ASCII characters (copy it again from Zalo)"));
            }
            Ok(value.map(Secret::new))
        };
        let http_timeout = number("http_timeout_secs", 20)?;
        if http_timeout == 0 {
            return Err(error("http_timeout_secs", "must be at least 1"));
        }
        let replay_window = number("replay_window_secs", DEFAULT_REPLAY_WINDOW.as_secs())?;
        if replay_window == 0 {
            return Err(error("replay_window_secs", "must be at least 1"));
        }
        let contact_retention_days = number("contact_retention_days", DEFAULT_CONTACT_RETENTION_DAYS)?;
        if contact_retention_days == 0 {
            return Err(error("contact_retention_days", "must be at least 1"));
        }
        let config = ZaloConfig {
            app_id,
            app_secret: secret("app_secret")?,
            oa_secret_key: secret("oa_secret_key")?,
            access_token: secret("access_token")?,
            refresh_token: secret("refresh_token")?,
            api_base: base("api_base", "https://openapi.zalo.me")?,
            oauth_base: base("oauth_base", "https://oauth.zaloapp.com")?,
            replay_window: Duration::from_secs(replay_window),
            group_window: Duration::from_secs(number("group_window_secs", 60)?),
            follow_up_window: Duration::from_secs(number("follow_up_window_hours", 72)?.saturating_mul(3600)),
            http_timeout: Duration::from_secs(http_timeout),
            contact_retention: Duration::from_secs(contact_retention_days.saturating_mul(24 * 3600)),
        };
        if config.refresh_token.is_some() && (config.app_id.is_none() || config.app_secret.is_none()) {
            let key = if config.app_id.is_none() { "app_id" } else { "app_secret" };
            return Err(error(key, "refreshing the access token with refresh_token needs app_id and app_secret"));
        }
        Ok(config)
    }
}

fn error(key: &str, message: &str) -> ConfigError {
    ConfigError { key: key.to_owned(), message: message.to_owned() }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_apply_and_numbers_may_be_strings() {
        let c = ZaloConfig::from_value(&json!({"oa_secret_key": "s", "group_window_secs": "30"})).expect("config");
        assert_eq!(c.group_window, Duration::from_secs(30));
        // Zalo's own retries after a long outage (up to about a day) are taken.
        assert_eq!(c.replay_window, Duration::from_secs(26 * 3600));
        assert_eq!(c.follow_up_window, Duration::from_secs(72 * 3600));
        assert_eq!(c.contact_retention, Duration::from_secs(90 * 24 * 3600));
        assert_eq!(c.api_base, "https://openapi.zalo.me");
        assert_eq!(c.oauth_base, "https://oauth.zaloapp.com");
        assert!(ZaloConfig::from_value(&Value::Null).expect("empty").oa_secret_key.is_none());
    }

    #[test]
    fn a_misspelt_key_or_a_bad_value_is_refused_by_name() {
        let e = ZaloConfig::from_value(&json!({"oa_secret": "s"})).expect_err("typo");
        assert_eq!(e.key, "oa_secret");
        let e = ZaloConfig::from_value(&json!({"group_window_secs": "soon"})).expect_err("number");
        assert_eq!(e.key, "group_window_secs");
        let e = ZaloConfig::from_value(&json!({"refresh_token": "r", "app_secret": "a"})).expect_err("app id");
        assert_eq!(e.key, "app_id");
        let e = ZaloConfig::from_value(&json!({"api_base": "openapi.zalo.me"})).expect_err("url");
        assert_eq!(e.key, "api_base");
        let e = ZaloConfig::from_value(&json!({"contact_retention_days": "0"})).expect_err("retention");
        assert_eq!(e.key, "contact_retention_days");
    }

    #[test]
    fn secrets_never_print() {
        let c = ZaloConfig::from_value(&json!({
            "app_id": "123", "app_secret": "app-SECRET", "oa_secret_key": "oa-SECRET",
            "access_token": "acc-SECRET", "refresh_token": "ref-SECRET"
        }))
        .expect("config");
        let shown = format!("{c:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }
}
