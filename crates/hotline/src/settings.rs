//! Settings: typed and layered. The optional settings file (`--config` / `HOTLINE_CONFIG`, TOML), then the
//! environment, then command-line flags; later layers win.
//!
//! Environment naming: `HOTLINE_<KEY>` for a top-level key, `__` between nesting levels, all upper case:
//! `HOTLINE_HTTP_ADDR` = `http_addr`, `HOTLINE_NATS__REPLICAS` = `[nats] replicas`,
//! `HOTLINE_ZALO__OA_SECRET_KEY` = `[zalo] oa_secret_key`. `NATS_URL` is also read, as `nats_url`.
//! Every key is listed in docs/configuration.md. A `HOTLINE_*` variable whose first word is no setting is ignored
//! (it may belong to something else) and kept in [`Settings::ignored_env`], which `hotline check-config` names.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

/// All settings of a hotline process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where the HTTP server listens.
    #[serde(default = "default_http_addr")]
    pub http_addr: String,
    /// Data directory: the embedded NATS store, the projections, the generated admin token.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// A running NATS server to use. Unset: `hotline up` runs its own.
    #[serde(default)]
    pub nats_url: Option<String>,
    /// The nats-server binary for the embedded server (default: found on PATH or in tools/).
    #[serde(default)]
    pub nats_server: Option<PathBuf>,
    /// The token that admin requests present as `Authorization: Bearer`. Unset: generated into the data dir.
    #[serde(default)]
    pub admin_token: Option<Secret>,
    /// The province configuration file. Unset: the bundled Bình Dương default (config/province.toml).
    #[serde(default)]
    pub province: Option<PathBuf>,
    /// `tracing` filter, e.g. `info` or `hotline_router=debug,info`.
    #[serde(default = "default_log")]
    pub log: String,
    #[serde(default)]
    pub nats: NatsSettings,
    #[serde(default)]
    pub scheduler: SchedulerSettings,
    #[serde(default)]
    pub retention: RetentionSettings,
    /// Channel sections, one per channel adapter, handed to it as they are: `[app]`, `[sms]`, `[email]`,
    /// `[zalo]`, `[phone]`. They hold vendor secrets, so their `Debug` shows keys only.
    #[serde(default)]
    pub app: ChannelSection,
    #[serde(default)]
    pub sms: ChannelSection,
    #[serde(default)]
    pub email: ChannelSection,
    #[serde(default)]
    pub zalo: ChannelSection,
    #[serde(default)]
    pub phone: ChannelSection,
    /// `HOTLINE_*` variables of the environment that are no setting (`HOTLINE_ADMIN_TOKN`), sorted: ignored.
    #[serde(skip)]
    pub ignored_env: Vec<String>,
}

impl Settings {
    /// The section of the channel `name`, if it is a known channel.
    pub fn channel(&self, name: &str) -> Option<&ChannelSection> {
        match name {
            "app" => Some(&self.app),
            "sms" => Some(&self.sms),
            "email" => Some(&self.email),
            "zalo" => Some(&self.zalo),
            "phone" => Some(&self.phone),
            _ => None,
        }
    }
}

/// A channel's settings as written. Printing it shows the keys, never the values (they include secrets).
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct ChannelSection(pub toml::Table);

impl fmt::Debug for ChannelSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.keys().map(|k| (k, "***"))).finish()
    }
}

/// NATS JetStream settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSettings {
    /// Replicas of the log stream: 1 on one node, 3 on a cluster.
    #[serde(default = "one", deserialize_with = "number")]
    pub replicas: usize,
    /// Client port of the embedded server; unset picks a free port at each start.
    #[serde(default, deserialize_with = "optional_number")]
    pub port: Option<u16>,
    /// Seconds a NATS request may take before the log counts as unavailable; also the whole intake's deadline.
    #[serde(default = "five", deserialize_with = "number")]
    pub request_timeout_secs: u64,
    /// The published feed's NATS login (the `hotline-feed` user of the FEED account), when `nats_url` names a
    /// server you run; unset, the feed is written with `nats_url`'s login.
    #[serde(default)]
    pub feed_url: Option<String>,
}

/// The deadline scheduler.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSettings {
    /// Seconds between two looks at the clock: an alarm fires at most this late.
    #[serde(default = "thirty", deserialize_with = "number")]
    pub interval_secs: u64,
    /// Days an answered ticket waits for the citizen's feedback before it is closed; 0 never closes it.
    #[serde(default = "seven", deserialize_with = "number")]
    pub close_answered_after_days: u32,
    /// Seconds between two audit checkpoints (a Merkle root over the events stored since the last one); 0 writes
    /// none. Checked at the scheduler's pace, so effectively at least `interval_secs`.
    #[serde(default = "ten_minutes", deserialize_with = "number")]
    pub checkpoint_interval_secs: u64,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        SchedulerSettings { interval_secs: 30, close_answered_after_days: 7, checkpoint_interval_secs: 600 }
    }
}

/// How long personal data is kept after a ticket ended (docs/privacy.md): the scheduler erases it then.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Days after a ticket ended (closed, rejected or duplicate) before its citizen's personal data is erased,
    /// for categories without a value of their own; 0 keeps it.
    #[serde(default, deserialize_with = "number")]
    pub default_days: u32,
    /// Per category code: days, instead of `default_days` (0 keeps that category's).
    #[serde(default, deserialize_with = "days_by_category")]
    pub categories: std::collections::BTreeMap<String, u32>,
    /// Seconds between two looks of the scheduler for tickets past their retention.
    #[serde(default = "an_hour", deserialize_with = "number")]
    pub interval_secs: u64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings { default_days: 0, categories: Default::default(), interval_secs: 3600 }
    }
}

fn an_hour() -> u64 {
    3600
}

/// `{ traffic_accident = 1825 }`, the numbers possibly written as text (environment variables).
fn days_by_category<'de, D: Deserializer<'de>>(d: D) -> Result<std::collections::BTreeMap<String, u32>, D::Error> {
    let table = toml::Table::deserialize(d)?;
    table
        .into_iter()
        .map(|(category, value)| {
            let days = match &value {
                toml::Value::Integer(i) => u32::try_from(*i).ok(),
                toml::Value::String(s) => s.trim().parse().ok(),
                _ => None,
            };
            days.map(|d| (category.clone(), d))
                .ok_or_else(|| serde::de::Error::custom(format!("retention of `{category}`: expected a number of days, found {}", value.type_str())))
        })
        .collect()
}

fn ten_minutes() -> u64 {
    600
}

fn seven() -> u32 {
    7
}

fn thirty() -> u64 {
    30
}

impl Default for NatsSettings {
    fn default() -> Self {
        NatsSettings { replicas: 1, port: None, request_timeout_secs: 5, feed_url: None }
    }
}

fn default_http_addr() -> String {
    "127.0.0.1:8080".to_owned()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}
fn default_log() -> String {
    "info".to_owned()
}
fn one() -> usize {
    1
}
fn five() -> u64 {
    5
}

/// Top-level keys, for telling a setting from an unrelated `HOTLINE_*` variable.
const KEYS: &[&str] = &[
    "http_addr", "data_dir", "nats_url", "nats_server", "admin_token", "province", "log", "nats", "scheduler", "retention", "app",
    "sms", "email", "zalo", "phone",
];
/// Channel sections (top-level tables).
#[cfg(test)]
const CHANNELS: &[&str] = &["app", "sms", "email", "zalo", "phone"];
/// `HOTLINE_*` variables that are not settings.
/// (`HOTLINE_PYTHONPATH` is the test tools' path that scripts/test exports: not read here, not worth a note.)
const NOT_SETTINGS: &[&str] = &["HOTLINE_CONFIG", "HOTLINE_SMTP_ADDR", "HOTLINE_PYTHONPATH"];

/// A number written as a number (settings file) or as text (environment variables are text).
fn number<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr + TryFrom<i64>,
{
    match toml::Value::deserialize(d)? {
        toml::Value::Integer(i) => T::try_from(i).map_err(|_| serde::de::Error::custom(format!("{i} is out of range"))),
        toml::Value::String(s) => s.trim().parse().map_err(|_| serde::de::Error::custom(format!("`{s}` is not a number"))),
        other => Err(serde::de::Error::custom(format!("expected a number, found {}", other.type_str()))),
    }
}

fn optional_number<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr + TryFrom<i64>,
{
    number(d).map(Some)
}

/// A secret value: never printed, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// A settings problem, with where it comes from.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

/// Command-line values that override the file and the environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub http_addr: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub nats_url: Option<String>,
    pub province: Option<PathBuf>,
    /// `--smtp`: the e-mail channel's SMTP listener (`[email] listen`).
    pub smtp_addr: Option<String>,
}

impl Settings {
    /// Loads the layers: `file` (if any), then `env`, then `overrides`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Settings, SettingsError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| SettingsError(format!("{}: cannot read: {e}", path.display())))?;
                // Check the file alone first, from its text, so every error (syntax, unknown key, wrong type)
                // names the file and the line.
                toml::from_str::<Settings>(&text)
                    .map_err(|e| SettingsError(format!("{}: {}", path.display(), located(&text, &e))))?;
                toml::from_str::<toml::Table>(&text)
                    .map_err(|e| SettingsError(format!("{}: {}", path.display(), located(&text, &e))))?
            }
            None => toml::Table::new(),
        };
        let mut ignored_env = Vec::new();
        for (name, value) in env {
            if let Some(path) = env_key(&name) {
                // Always text: a token "007" or a phone number "+84..." must stay exactly as written.
                insert(&mut table, &path, toml::Value::String(value));
            } else if name == "NATS_URL" && !value.is_empty() {
                table.insert("nats_url".to_owned(), toml::Value::String(value));
            } else if name == "HOTLINE_SMTP_ADDR" && !value.is_empty() {
                insert(&mut table, &["email".to_owned(), "listen".to_owned()], toml::Value::String(value));
            } else if name.starts_with("HOTLINE_") && !NOT_SETTINGS.contains(&name.as_str()) {
                ignored_env.push(name);
            }
        }
        ignored_env.sort();
        let set = |table: &mut toml::Table, key: &str, value: Option<String>| {
            if let Some(v) = value {
                table.insert(key.to_owned(), toml::Value::String(v));
            }
        };
        set(&mut table, "http_addr", overrides.http_addr.clone());
        set(&mut table, "data_dir", overrides.data_dir.as_ref().map(|p| p.display().to_string()));
        set(&mut table, "nats_url", overrides.nats_url.clone());
        set(&mut table, "province", overrides.province.as_ref().map(|p| p.display().to_string()));
        if let Some(addr) = &overrides.smtp_addr {
            insert(&mut table, &["email".to_owned(), "listen".to_owned()], toml::Value::String(addr.clone()));
        }
        let mut settings = Settings::deserialize(toml::Value::Table(table))
            .map_err(|e| SettingsError(format!("settings (file, then HOTLINE_* environment, then flags): {e}")))?;
        settings.ignored_env = ignored_env;
        Ok(settings)
    }
}

/// `HOTLINE_NATS__REPLICAS` -> `["nats", "replicas"]`; None for variables that are not settings.
fn env_key(name: &str) -> Option<Vec<String>> {
    if NOT_SETTINGS.contains(&name) {
        return None;
    }
    let rest = name.strip_prefix("HOTLINE_")?;
    let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
    if path.iter().any(String::is_empty) || !KEYS.contains(&path[0].as_str()) {
        return None;
    }
    Some(path)
}

fn insert(table: &mut toml::Table, path: &[String], value: toml::Value) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut current = table;
    for key in parents {
        let entry = current.entry(key.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(t) = entry else { return };
        current = t;
    }
    current.insert(last.clone(), value);
}

/// "line L, column C: message" for a TOML error.
fn located(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {}", e.message())
        }
        None => e.message().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_apply_without_file_or_environment() {
        let s = Settings::load(None, env(&[]), &Overrides::default()).expect("defaults");
        assert_eq!(s.http_addr, "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        assert!(s.nats_url.is_none() && s.admin_token.is_none());
        assert_eq!(s.nats.replicas, 1);
    }

    #[test]
    fn environment_overrides_the_file_and_flags_override_both() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("hotline.toml");
        std::fs::write(&file, "http_addr = \"0.0.0.0:1\"\n[nats]\nreplicas = 3\n[zalo]\noa_secret = \"a\"\n").expect("write");
        let s = Settings::load(
            Some(&file),
            env(&[
                ("HOTLINE_HTTP_ADDR", "127.0.0.1:2"),
                ("HOTLINE_NATS__REQUEST_TIMEOUT_SECS", "9"),
                ("HOTLINE_ZALO__OA_SECRET", "from-env"),
                ("HOTLINE_SMS__GATEWAY", "esms"),
                ("HOTLINE_ADMIN_TOKEN", "0012345"),
                ("HOTLINE_SMS__SENDER", "+84912345678"),
                ("HOTLINE_UNRELATED_THING", "x"),
                ("NATS_URL", "nats://10.0.0.1:4222"),
            ]),
            &Overrides { data_dir: Some(PathBuf::from("/srv/h")), ..Default::default() },
        )
        .expect("layers");
        assert_eq!(s.http_addr, "127.0.0.1:2");
        assert_eq!(s.nats.replicas, 3);
        assert_eq!(s.nats.request_timeout_secs, 9);
        assert_eq!(s.zalo.0["oa_secret"].as_str(), Some("from-env"));
        assert_eq!(s.channel("sms").map(|c| c.0["gateway"].as_str()), Some(Some("esms")));
        assert_eq!(s.admin_token.as_ref().map(Secret::expose), Some("0012345"), "leading zeros survive");
        assert_eq!(s.sms.0["sender"].as_str(), Some("+84912345678"), "a phone number stays text");
        assert_eq!(s.nats_url.as_deref(), Some("nats://10.0.0.1:4222"));
        assert_eq!(s.data_dir, PathBuf::from("/srv/h"));
        assert_eq!(s.ignored_env, ["HOTLINE_UNRELATED_THING"], "only the variable that is no setting is named");
        let printed = format!("{s:?}");
        assert!(!printed.contains("0012345") && !printed.contains("from-env"), "secrets never print: {printed}");
        assert!(printed.contains("oa_secret"), "keys do: {printed}");
    }

    #[test]
    fn docs_configuration_md_names_every_channel_key() {
        let doc = include_str!("../../../docs/configuration.md");
        for key in hotline_channel_sms::config::KEYS {
            assert!(doc.contains(&format!("`sms.{key}`")), "docs/configuration.md does not name `sms.{key}`");
        }
        for key in hotline_channel_email::config::KEYS {
            assert!(doc.contains(&format!("`email.{key}`")), "docs/configuration.md does not name `email.{key}`");
        }
        for key in hotline_open311::KEYS {
            assert!(doc.contains(&format!("`app.{key}`")), "docs/configuration.md does not name `app.{key}`");
        }
        for key in hotline_channel_zalo::KEYS {
            assert!(doc.contains(&format!("`zalo.{key}`")), "docs/configuration.md does not name `zalo.{key}`");
        }
        for key in hotline_channel_phone::KEYS {
            assert!(doc.contains(&format!("`phone.{key}`")), "docs/configuration.md does not name `phone.{key}`");
        }
    }

    #[test]
    fn smtp_flag_and_variable_set_the_email_listener() {
        let s = Settings::load(None, env(&[("HOTLINE_SMTP_ADDR", "127.0.0.1:2626")]), &Overrides::default()).expect("settings");
        assert_eq!(s.channel("email").and_then(|c| c.0.get("listen")).and_then(|v| v.as_str()), Some("127.0.0.1:2626"));
        let flag = Overrides { smtp_addr: Some("0.0.0.0:25".into()), ..Default::default() };
        let s = Settings::load(None, env(&[("HOTLINE_SMTP_ADDR", "127.0.0.1:2626")]), &flag).expect("settings");
        assert_eq!(s.channel("email").and_then(|c| c.0.get("listen")).and_then(|v| v.as_str()), Some("0.0.0.0:25"));
    }

    #[test]
    fn docs_configuration_md_names_every_setting_and_its_variable() {
        let doc = include_str!("../../../docs/configuration.md");
        for key in KEYS {
            assert!(doc.contains(&format!("`{key}")), "docs/configuration.md does not document `{key}`");
            if !["nats", "scheduler", "retention"].contains(key) && !CHANNELS.contains(key) {
                let var = format!("`HOTLINE_{}`", key.to_ascii_uppercase());
                assert!(doc.contains(&var), "docs/configuration.md does not name {var}");
            }
        }
        for nested in [
            "NATS__REPLICAS",
            "NATS__PORT",
            "NATS__REQUEST_TIMEOUT_SECS",
            "NATS__FEED_URL",
            "SCHEDULER__INTERVAL_SECS",
            "SCHEDULER__CLOSE_ANSWERED_AFTER_DAYS",
            "SCHEDULER__CHECKPOINT_INTERVAL_SECS",
            "RETENTION__DEFAULT_DAYS",
            "RETENTION__CATEGORIES__<CATEGORY>",
            "RETENTION__INTERVAL_SECS",
            "APP__ACCESS_SECRET",
        ] {
            let var = format!("`HOTLINE_{nested}`");
            assert!(doc.contains(&var), "docs/configuration.md does not name {var}");
        }
    }

    #[test]
    fn retention_days_come_per_category_from_the_file_or_the_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("hotline.toml");
        std::fs::write(&file, "[retention]\ndefault_days = 1825\n[retention.categories]\ntraffic_accident = 730\n").expect("write");
        let s = Settings::load(Some(&file), env(&[("HOTLINE_RETENTION__CATEGORIES__SECURITY_ORDER", "3650")]), &Overrides::default()).expect("loads");
        assert_eq!(s.retention.default_days, 1825);
        assert_eq!(s.retention.categories.get("traffic_accident"), Some(&730));
        assert_eq!(s.retention.categories.get("security_order"), Some(&3650));
        let e = Settings::load(None, env(&[("HOTLINE_RETENTION__CATEGORIES__X", "soon")]), &Overrides::default()).expect_err("not a number");
        assert!(e.0.contains("retention of `x`"), "{e}");
    }

    #[test]
    fn a_broken_settings_file_names_the_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("hotline.toml");
        std::fs::write(&file, "http_addr = \"x\"\n\nlog = [unclosed\n").expect("write");
        let e = Settings::load(Some(&file), env(&[]), &Overrides::default()).expect_err("broken");
        assert!(e.0.contains("hotline.toml") && e.0.contains("line 3"), "{e}");
        std::fs::write(&file, "htp_addr = \"x\"\n").expect("write");
        let e = Settings::load(Some(&file), env(&[]), &Overrides::default()).expect_err("unknown key");
        assert!(e.0.contains("unknown field `htp_addr`") && e.0.contains("line 1"), "{e}");
        std::fs::write(&file, "log = \"info\"\n[nats]\nreplicas = \"three\"\n").expect("write");
        let e = Settings::load(Some(&file), env(&[]), &Overrides::default()).expect_err("wrong type");
        assert!(e.0.contains("`three` is not a number") && e.0.contains("line 3"), "{e}");
        let e = Settings::load(None, env(&[("HOTLINE_NATS__PORT", "eighty")]), &Overrides::default()).expect_err("env");
        assert!(e.0.contains("`eighty` is not a number"), "{e}");
    }
}
