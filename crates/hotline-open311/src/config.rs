//! The Open311 settings: keys `open311_*` of the `[app]` section (Open311 is a way into the app channel). Values
//! from the environment arrive as strings, so a list is accepted as a TOML array or as comma-separated text. API
//! keys are kept as SHA-256 hashes only, and may be configured that way (`sha256:<hex>`) so that the settings file
//! never holds a usable key.

use std::fmt;

use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Every key this crate reads from `[app]` (the app channel's own keys are its business).
pub const KEYS: &[&str] = &["open311_api_keys", "open311_jurisdiction_id", "open311_base_url", "open311_contact"];

/// A setting that cannot be used, named by its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[app] {key}: {message}")]
pub struct ConfigError {
    pub key: &'static str,
    pub message: String,
}

/// The Open311 part of the `[app]` section.
#[derive(Debug, Clone, Default)]
pub struct Open311Config {
    /// Keys that may `POST requests`. Empty: nobody may (every POST answers 403), GETs still work.
    pub api_keys: ApiKeys,
    /// When set, a request naming another `jurisdiction_id` is answered 404; unset, the parameter is ignored
    /// (the spec's rule for an endpoint that serves one jurisdiction).
    pub jurisdiction_id: Option<String>,
    /// The endpoint's public URL (`https://hotline.example.vn/open311/v2`) for the discovery document. Unset: built
    /// from the request's `Host` (and `X-Forwarded-Proto`) header.
    pub base_url: Option<String>,
    /// Who to ask for help or for a key, shown in discovery (`contact`, `key_service`).
    pub contact: Option<String>,
}

impl Open311Config {
    /// Reads the `open311_*` keys of the `[app]` section as written; other keys are left to the app channel.
    pub fn from_app_section(section: &Value) -> Result<Open311Config, ConfigError> {
        let get = |key: &'static str| match section {
            Value::Object(map) => map.get(key),
            _ => None,
        };
        let text = |key: &'static str| -> Result<Option<String>, ConfigError> {
            match get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
                Some(_) => Err(ConfigError { key, message: "must be text".into() }),
            }
        };
        let keys: Vec<String> = match get("open311_api_keys") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => s.split(',').map(str::trim).filter(|k| !k.is_empty()).map(str::to_owned).collect(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(|s| s.trim().to_owned()))
                .collect::<Option<Vec<_>>>()
                .ok_or(ConfigError { key: "open311_api_keys", message: "must be a list of strings".into() })?,
            Some(_) => {
                return Err(ConfigError {
                    key: "open311_api_keys",
                    message: "must be a list of strings, or comma-separated text".into(),
                });
            }
        };
        let api_keys = ApiKeys::parse(&keys)?;
        let base_url = text("open311_base_url")?.map(|u| u.trim_end_matches('/').to_owned());
        if let Some(url) = &base_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError {
                key: "open311_base_url",
                message: "must be an absolute http(s) URL, e.g. https://hotline.example.vn/open311/v2".into(),
            });
        }
        Ok(Open311Config {
            api_keys,
            jurisdiction_id: text("open311_jurisdiction_id")?,
            base_url,
            contact: text("open311_contact")?,
        })
    }
}

/// The API keys allowed to file requests, as SHA-256 hashes.
#[derive(Clone, Default)]
pub struct ApiKeys(Vec<[u8; 32]>);

/// Shortest key accepted in the settings: a guessable key would let anyone file petitions in a client's name.
const MIN_KEY_LEN: usize = 16;

impl ApiKeys {
    /// Each entry is a key (at least 16 visible ASCII characters) or `sha256:<64 hex digits>` of one.
    pub fn parse(entries: &[String]) -> Result<ApiKeys, ConfigError> {
        let bad = |message: String| ConfigError { key: "open311_api_keys", message };
        let mut hashes = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let hash = if let Some(hex) = entry.strip_prefix("sha256:") {
                decode_hex(hex).ok_or_else(|| bad(format!("entry {}: sha256: needs 64 hex digits", i + 1)))?
            } else {
                if entry.len() < MIN_KEY_LEN || !entry.chars().all(|c| c.is_ascii_graphic()) {
                    return Err(bad(format!(
                        "entry {}: a key is at least {MIN_KEY_LEN} visible ASCII characters (or sha256:<hex> of one)",
                        i + 1
                    )));
                }
                Sha256::digest(entry.as_bytes()).into()
            };
            hashes.push(hash);
        }
        Ok(ApiKeys(hashes))
    }

    /// The client a presented key belongs to: a short, stable id derived from the key's hash (it names the client
    /// in logs and in ticket ids derived from its `Idempotency-Key`s), or None when the key is not allowed. Every
    /// configured hash is compared in constant time.
    pub fn client(&self, presented: &str) -> Option<String> {
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = false;
        for allowed in &self.0 {
            found |= bool::from(allowed.ct_eq(&hash));
        }
        found.then(|| hash[..6].iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} api keys>", self.0.len())
    }
}

fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_as_a_list_or_as_comma_separated_text_and_hashed_keys_work_too() {
        let hash: String = Sha256::digest(b"second-key-0123456789").iter().map(|b| format!("{b:02x}")).collect();
        let from_env = serde_json::json!({ "open311_api_keys": format!("first-key-0123456789, sha256:{hash}") });
        let from_file = serde_json::json!({ "open311_api_keys": ["first-key-0123456789", format!("sha256:{hash}")] });
        for section in [from_env, from_file] {
            let config = Open311Config::from_app_section(&section).expect("config");
            assert!(config.api_keys.client("first-key-0123456789").is_some());
            assert!(config.api_keys.client("second-key-0123456789").is_some());
            assert_eq!(config.api_keys.client("first-key-012345678"), None);
            assert_ne!(config.api_keys.client("first-key-0123456789"), config.api_keys.client("second-key-0123456789"));
        }
    }

    #[test]
    fn short_keys_bad_hashes_and_relative_urls_are_refused_by_key() {
        for (section, key) in [
            (serde_json::json!({ "open311_api_keys": "short" }), "open311_api_keys"),
            (serde_json::json!({ "open311_api_keys": ["sha256:abcd"] }), "open311_api_keys"),
            (serde_json::json!({ "open311_api_keys": 5 }), "open311_api_keys"),
            (serde_json::json!({ "open311_base_url": "hotline.example.vn" }), "open311_base_url"),
            (serde_json::json!({ "open311_contact": 3 }), "open311_contact"),
        ] {
            let err = Open311Config::from_app_section(&section).expect_err("refused");
            assert_eq!(err.key, key, "{section}");
        }
    }

    #[test]
    fn no_section_means_no_keys_and_debug_never_shows_them() {
        let config = Open311Config::from_app_section(&Value::Null).expect("config");
        assert!(config.api_keys.is_empty());
        let config =
            Open311Config::from_app_section(&serde_json::json!({ "open311_api_keys": "a-secret-key-0123456789" }))
                .expect("config");
        assert!(!format!("{config:?}").contains("a-secret-key"));
    }
}
