//! Who may connect to our nats-server and what each may do: the internal users of hotline's own processes, and
//! one read-only user per subscriber system (`hotline subscriber create`). Renders the `accounts.conf` that the
//! server config includes, keeps the subscriber registry beside it, and asks a running server to reload.
//!
//! Two accounts, because one cannot be made safe (docs/subscribers.md, "Why two accounts"): a user allowed to
//! create a consumer can give it any `deliver_subject`, and nats-server 2.12 does not check that subject against
//! the creator's permissions (nats-io/nats-server#8274), so a subscriber sharing the log's account could make the
//! server publish feed messages into `hotline.events.>` or a KV bucket. The log and the buckets live in account
//! `HOTLINE`, reachable only by user `hotline`; the published feed lives in account `FEED`, with user
//! `hotline-feed` (the projector) and the subscribers. Nothing is exported or imported between them. (The global
//! account `$G` cannot be used once accounts exist: nats-server enables JetStream for it only when no account is
//! configured, so [`crate::server`] moves a store made before accounts from `$G` to `HOTLINE`.)

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The account of the log and the buckets: hotline's own processes only.
pub const INTERNAL_ACCOUNT: &str = "HOTLINE";
/// The account of the published feed and its subscribers.
pub const FEED_ACCOUNT: &str = "FEED";
/// The user of hotline's own processes, in [`INTERNAL_ACCOUNT`] (log, buckets).
pub const INTERNAL_USER: &str = "hotline";
/// The user that writes the published feed (the projector), in [`FEED_ACCOUNT`].
pub const FEED_USER: &str = "hotline-feed";
/// The published feed's stream.
pub const FEED_STREAM: &str = "HOTLINE_FEED";
/// The published feed's subject prefix: `hotline.feed.v1.<public|agency code>.<event type>.<ticket id>`.
pub const FEED_SUBJECT_PREFIX: &str = "hotline.feed.v1";
/// The audience token of the public feed.
pub const PUBLIC_AUDIENCE: &str = "public";

/// File names in the server's folder.
pub const ACCOUNTS_FILE: &str = "accounts.conf";
pub const REGISTRY_FILE: &str = "subscribers.json";
pub const PASSWORD_FILE: &str = "hotline.password";
pub const PID_FILE: &str = "nats-server.pid";
/// Held (flock) around every read-modify-write of the registry, so two `hotline subscriber` runs cannot lose
/// each other's change.
pub const LOCK_FILE: &str = "subscribers.lock";

/// bcrypt cost of stored password hashes. The server checks a hash at every connect (not every message); 11 is
/// what `nats server passwd` uses.
const BCRYPT_COST: u32 = 11;

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a subscriber registry: {source}")]
    Corrupt { path: PathBuf, source: serde_json::Error },
    #[error("cannot hash a password: {0}")]
    Hash(String),
    /// The feed's server could not be reached or refused a request.
    #[error("{0}")]
    Server(String),
}

/// A subscriber system: a user of [`FEED_ACCOUNT`] that can read one audience of the feed through durable pull
/// consumers it names, and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscriber {
    /// The NATS user name; also its inbox prefix and its consumers' names.
    pub name: String,
    /// The agency whose feed it reads (with citizen contact details); None reads the public feed.
    pub agency: Option<String>,
    /// The durable consumers it may create, fetch from, inspect and delete.
    pub consumers: Vec<String>,
    /// bcrypt hash of its password (the password itself is shown once and never stored).
    pub password_hash: String,
    /// RFC 3339.
    pub created_at: String,
}

impl Subscriber {
    /// `hotline.feed.v1.<agency|public>.>`: what its consumers must filter on.
    pub fn filter_subject(&self) -> String {
        format!("{FEED_SUBJECT_PREFIX}.{}.>", self.agency.as_deref().unwrap_or(PUBLIC_AUDIENCE))
    }

    /// `_INBOX_<name>`: the only subjects it may subscribe to are below it, so its client must use it as inbox
    /// prefix (async-nats `custom_inbox_prefix`, nats-py `inbox_prefix`, nats.go `CustomInboxPrefix`).
    pub fn inbox_prefix(&self) -> String {
        format!("_INBOX_{}", self.name)
    }

    /// Subjects it may publish to. Consumer creation only in the filtered form
    /// `$JS.API.CONSUMER.CREATE.<stream>.<consumer>.<filter>`, where the server rejects a request whose body
    /// filter differs from the subject's, so the permission pins the filter. NATS wildcards match whole tokens
    /// only, so consumer names are listed one by one (no `<name>-*` prefix match exists).
    pub fn publish_allow(&self) -> Vec<String> {
        let filter = self.filter_subject();
        let mut subjects = vec![format!("$JS.API.STREAM.INFO.{FEED_STREAM}")];
        for c in &self.consumers {
            subjects.push(format!("$JS.API.CONSUMER.CREATE.{FEED_STREAM}.{c}.{filter}"));
            subjects.push(format!("$JS.API.CONSUMER.INFO.{FEED_STREAM}.{c}"));
            subjects.push(format!("$JS.API.CONSUMER.DELETE.{FEED_STREAM}.{c}"));
            subjects.push(format!("$JS.API.CONSUMER.MSG.NEXT.{FEED_STREAM}.{c}"));
            subjects.push(format!("$JS.ACK.{FEED_STREAM}.{c}.>"));
        }
        subjects
    }

    /// Subjects it may subscribe to: its own inbox only (API replies and pulled messages arrive there).
    pub fn subscribe_allow(&self) -> Vec<String> {
        vec![format!("{}.>", self.inbox_prefix())]
    }
}

/// A subscriber or consumer name: 1-32 of `a-z 0-9 -`, starting with a letter or digit. It becomes a subject
/// token and a consumer name, so no dots, wildcards or spaces.
pub fn check_name(name: &str, what: &str) -> Result<(), AccessError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if !ok {
        return Err(AccessError::Invalid(format!(
            "{what} `{name}` must be 1-32 characters of a-z, 0-9 and -, not starting with -"
        )));
    }
    Ok(())
}

/// An agency code as a subject token: no dots, wildcards or spaces (the province configuration decides which
/// codes exist).
pub fn check_agency_token(code: &str) -> Result<(), AccessError> {
    let ok = !code.is_empty() && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok || code == PUBLIC_AUDIENCE {
        return Err(AccessError::Invalid(format!("agency `{code}` cannot name a feed audience")));
    }
    Ok(())
}

/// A new random password: 64 hex characters (256 bits), safe in a URL without escaping.
pub fn new_password() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// The bcrypt hash nats-server accepts in a `password` field.
pub fn hash_password(password: &str) -> Result<String, AccessError> {
    bcrypt::hash(password, BCRYPT_COST).map_err(|e| AccessError::Hash(e.to_string()))
}

/// The subscribers of one server, kept in `<dir>/subscribers.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Registry {
    pub subscribers: Vec<Subscriber>,
    /// Consumer names of revoked subscribers whose consumers on the server are not known to be deleted (the
    /// server was not reachable at the revocation). Permissions pin a consumer's filter only when it is created,
    /// and fetching from an existing consumer is allowed whatever its filter, so a name is handed out again only
    /// after its old consumer is gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_consumers: Vec<String>,
}

impl Registry {
    /// Reads `<dir>/subscribers.json`; no file is an empty registry.
    pub fn load(dir: &Path) -> Result<Registry, AccessError> {
        let path = dir.join(REGISTRY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| AccessError::Corrupt { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Registry::default()),
            Err(source) => Err(AccessError::Io { path, source }),
        }
    }

    /// Writes the registry (0600, atomically).
    pub fn save(&self, dir: &Path) -> Result<(), AccessError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| AccessError::Hash(e.to_string()))?;
        write_private(&dir.join(REGISTRY_FILE), &format!("{text}\n"))
    }

    pub fn get(&self, name: &str) -> Option<&Subscriber> {
        self.subscribers.iter().find(|s| s.name == name)
    }

    /// Adds a subscriber; its name and its consumers' names must be new (a consumer name pins a server-side
    /// consumer, so two subscribers never share one).
    pub fn add(&mut self, subscriber: Subscriber) -> Result<(), AccessError> {
        check_name(&subscriber.name, "subscriber name")?;
        if [INTERNAL_USER, FEED_USER].contains(&subscriber.name.as_str()) {
            return Err(AccessError::Invalid(format!("`{}` is reserved for hotline itself", subscriber.name)));
        }
        if let Some(agency) = &subscriber.agency {
            check_agency_token(agency)?;
        }
        if subscriber.consumers.is_empty() {
            return Err(AccessError::Invalid("a subscriber needs at least one consumer name".to_owned()));
        }
        for c in &subscriber.consumers {
            check_name(c, "consumer name")?;
        }
        if self.get(&subscriber.name).is_some() {
            return Err(AccessError::Conflict(format!("subscriber `{}` exists (revoke it first)", subscriber.name)));
        }
        let taken: Vec<&String> = self.subscribers.iter().flat_map(|s| &s.consumers).collect();
        if let Some(c) = subscriber.consumers.iter().find(|c| taken.contains(c)) {
            return Err(AccessError::Conflict(format!("consumer name `{c}` belongs to another subscriber")));
        }
        self.subscribers.push(subscriber);
        Ok(())
    }

    /// Removes a subscriber; its consumer names are kept in [`Registry::retired_consumers`] until their
    /// consumers are deleted.
    pub fn remove(&mut self, name: &str) -> Result<Subscriber, AccessError> {
        let i = self
            .subscribers
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| AccessError::NotFound(format!("no subscriber `{name}`")))?;
        let removed = self.subscribers.remove(i);
        for c in &removed.consumers {
            if !self.retired_consumers.contains(c) {
                self.retired_consumers.push(c.clone());
            }
        }
        Ok(removed)
    }
}

/// The password of the internal users, kept in `<dir>/hotline.password` (0600) and made on first use. The server
/// config holds only its bcrypt hash.
pub fn internal_password(dir: &Path) -> Result<String, AccessError> {
    let path = dir.join(PASSWORD_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
        Ok(_) => return Err(AccessError::Invalid(format!("{} is empty: delete it to have a new one made", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(AccessError::Io { path, source }),
    }
    let password = new_password();
    write_private(&path, &format!("{password}\n"))?;
    Ok(password)
}

/// The internal password when it exists. When it is missing but `accounts.conf` exists, a server may be running
/// with the old password's hash: making a new one and reloading would lock every hotline process out, so this
/// refuses. (`hotline up` makes the password before it writes the config and starts its own server.)
fn existing_internal_password(dir: &Path) -> Result<String, AccessError> {
    if !dir.join(PASSWORD_FILE).exists() && dir.join(ACCOUNTS_FILE).exists() {
        return Err(AccessError::Invalid(format!(
            "{} is missing but {} exists: a server may be running with the lost password's hash, and a new password \
             would lock every hotline process out. Restore {PASSWORD_FILE}, or stop the server, delete {ACCOUNTS_FILE} \
             and start it again with a new password (then update every hotline process's NATS_URL)",
            dir.join(PASSWORD_FILE).display(),
            dir.join(ACCOUNTS_FILE).display(),
        )));
    }
    internal_password(dir)
}

/// The `accounts.conf` for these users: the internal user in [`INTERNAL_ACCOUNT`], the feed writer and the
/// subscribers in [`FEED_ACCOUNT`]. `internal_hash` is the bcrypt hash of [`internal_password`].
pub fn render_accounts(internal_hash: &str, registry: &Registry) -> String {
    let mut out = String::new();
    out.push_str("# Written by hotline (`hotline up`, `hotline subscriber ...`); edits are overwritten.\n");
    let _ = writeln!(
        out,
        "accounts {{\n  # hotline's own processes: the log, the buckets. Full rights; nothing exported.\n  \
         {INTERNAL_ACCOUNT} {{\n    jetstream: enabled\n    users: [\n      {{ user: {}, password: {} }}\n    ]\n  }}",
        quote(INTERNAL_USER),
        quote(internal_hash),
    );
    let _ = writeln!(
        out,
        "  # The published feed ({FEED_STREAM}) and its readers. Nothing is shared with {INTERNAL_ACCOUNT}.\n  \
         {FEED_ACCOUNT} {{\n    jetstream: enabled\n    users: [\n      # the feed's projector\n      {{ user: {}, password: {} }}",
        quote(FEED_USER),
        quote(internal_hash),
    );
    for s in &registry.subscribers {
        let audience = s.agency.as_deref().map(|a| format!("agency {a}")).unwrap_or_else(|| "public feed".to_owned());
        let _ = writeln!(out, "      # subscriber {} ({audience}), created {}", s.name, s.created_at);
        let _ = writeln!(
            out,
            "      {{ user: {}, password: {}, permissions: {{\n          publish: {{ allow: {} }}\n          subscribe: {{ allow: {} }}\n      }} }}",
            quote(&s.name),
            quote(&s.password_hash),
            list(&s.publish_allow()),
            list(&s.subscribe_allow()),
        );
    }
    out.push_str("    ]\n  }\n}\n");
    out
}

/// Writes `<dir>/accounts.conf` from the registry and the internal password.
pub fn write_accounts(dir: &Path, registry: &Registry) -> Result<(), AccessError> {
    let hash = hash_password(&existing_internal_password(dir)?)?;
    write_private(&dir.join(ACCOUNTS_FILE), &render_accounts(&hash, registry))
}

/// Asks the server whose pid is in `<dir>/nats-server.pid` to reload its config (SIGHUP, what `nats-server
/// --signal reload` sends). Returns the pid, or None when no server runs there (the config is read at its next
/// start).
pub fn reload(dir: &Path) -> Result<Option<u32>, AccessError> {
    let path = dir.join(PID_FILE);
    let pid = match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse::<i32>().ok(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(AccessError::Io { path, source }),
    };
    let Some(pid) = pid.filter(|p| *p > 0) else { return Ok(None) };
    // A stale pid file may name a process that reused the pid: signal only a nats-server (SIGHUP kills most
    // other programs).
    #[cfg(target_os = "linux")]
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) if comm.trim() == "nats-server" => {}
        _ => return Ok(None),
    }
    // SAFETY: kill(2) has no memory effects; a stale pid file naming a process that is gone gives ESRCH.
    #[allow(unsafe_code)]
    let sent = unsafe { libc::kill(pid, libc::SIGHUP) } == 0;
    Ok(sent.then_some(pid as u32))
}

/// An exclusive lock on the registry of `dir`, held until dropped.
pub struct RegistryLock {
    _file: std::fs::File,
}

/// Waits for the registry lock of `dir` (`subscribers.lock`, flock). Hold it from [`Registry::load`] to the
/// last write of a change.
pub fn lock_registry(dir: &Path) -> Result<RegistryLock, AccessError> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| AccessError::Io { path: path.clone(), source })?;
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: flock(2) on a descriptor we own; released when the file is closed.
        #[allow(unsafe_code)]
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0;
        if !locked {
            return Err(AccessError::Io { path, source: std::io::Error::last_os_error() });
        }
    }
    Ok(RegistryLock { _file: file })
}

/// The feed writer's login URL for the server whose folder is `dir`, at `url` (whose own credentials are
/// dropped): `nats://hotline-feed:<internal password>@host:port`. None when the folder has no internal password.
pub fn feed_writer_url(dir: &Path, url: &str) -> Option<String> {
    let password = std::fs::read_to_string(dir.join(PASSWORD_FILE)).ok()?;
    let password = password.trim();
    let bare = without_credentials(url);
    let (scheme, rest) = bare.split_once("://")?;
    (!password.is_empty()).then(|| format!("{scheme}://{FEED_USER}:{password}@{rest}"))
}

/// Deletes the feed consumers named `names`, as the feed's writer (`feed_url` carries its login). Consumers (or
/// a feed stream) that do not exist are fine.
pub async fn delete_consumers(feed_url: &str, names: &[String]) -> Result<(), AccessError> {
    let (bare, credentials) = crate::jetstream::split_credentials(feed_url);
    let mut options = async_nats::ConnectOptions::new()
        .connection_timeout(std::time::Duration::from_secs(3))
        .request_timeout(Some(std::time::Duration::from_secs(5)));
    match credentials {
        Some(crate::jetstream::UrlCredentials::UserPassword(user, password)) => options = options.user_and_password(user, password),
        Some(crate::jetstream::UrlCredentials::Token(token)) => options = options.token(token),
        None => {}
    }
    let client = options
        .connect(crate::jetstream::seeds(&bare))
        .await
        .map_err(|e| AccessError::Server(format!("cannot reach the feed's server at {bare}: {e}")))?;
    for name in names {
        let subject = format!("$JS.API.CONSUMER.DELETE.{FEED_STREAM}.{name}");
        // Right after a reload that changed the accounts, JetStream may answer "no responders" for a moment.
        let mut attempts = 0;
        let answer = loop {
            match client.request(subject.clone(), bytes::Bytes::new()).await {
                Ok(answer) => break answer,
                Err(e) if attempts < 10 && e.kind() == async_nats::RequestErrorKind::NoResponders => {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                }
                Err(e) => return Err(AccessError::Server(format!("{subject}: {e}"))),
            }
        };
        let body: serde_json::Value = serde_json::from_slice(&answer.payload)
            .map_err(|e| AccessError::Server(format!("{subject}: unreadable answer: {e}")))?;
        // 10014: consumer not found; 10059: stream not found.
        let gone = body["success"] == true || matches!(body["error"]["err_code"].as_u64(), Some(10014 | 10059));
        if !gone {
            return Err(AccessError::Server(format!("{subject}: {}", body["error"])));
        }
    }
    Ok(())
}

/// Makes `names` safe to hand to a new subscriber: any consumer still under one of them belongs to nobody now
/// ([`Registry::add`] refuses names in use) and may read another audience, so it is deleted first, as the feed's
/// writer at `feed_url`. Returns whether the server confirmed it. Without a reachable server this refuses names
/// of revoked subscribers whose consumers may still exist, and lets never-used names through.
pub async fn free_consumer_names(registry: &mut Registry, feed_url: Option<&str>, names: &[String]) -> Result<bool, AccessError> {
    let outcome = match feed_url {
        Some(url) => delete_consumers(url, names).await,
        None => Err(AccessError::Server("no feed server URL is known".to_owned())),
    };
    match outcome {
        Ok(()) => {
            registry.retired_consumers.retain(|c| !names.contains(c));
            Ok(true)
        }
        Err(e) => match names.iter().find(|c| registry.retired_consumers.contains(c)) {
            Some(c) => Err(AccessError::Conflict(format!(
                "consumer name `{c}` was a revoked subscriber's, and its consumer may still exist on the server, \
                 which could not be asked to delete it ({e}): start the server (hotline up) and run this again, or \
                 choose another name"
            ))),
            None => Ok(false),
        },
    }
}

/// Whether `user`/`password` can log in at `url` (credentials in the URL are ignored). Used after a reload to
/// confirm that the server took a new user or dropped a revoked one.
pub async fn can_login(url: &str, user: &str, password: &str) -> bool {
    let (bare, _) = crate::jetstream::split_credentials(url);
    async_nats::ConnectOptions::new()
        .user_and_password(user.to_owned(), password.to_owned())
        .connection_timeout(std::time::Duration::from_secs(3))
        .connect(crate::jetstream::seeds(&bare))
        .await
        .is_ok()
}

/// `url` without its credentials: what to show and hand to a subscriber.
pub fn without_credentials(url: &str) -> String {
    crate::jetstream::split_credentials(url).0
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(", "))
}

fn write_private(path: &Path, text: &str) -> Result<(), AccessError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| AccessError::Io { path: path.to_owned(), source };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(&tmp).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscriber(name: &str, agency: Option<&str>) -> Subscriber {
        Subscriber {
            name: name.to_owned(),
            agency: agency.map(str::to_owned),
            consumers: vec![name.to_owned()],
            password_hash: "$2b$11$abc".to_owned(),
            created_at: "2026-11-28T00:00:00Z".to_owned(),
        }
    }

    #[test]
    fn an_agency_subscriber_may_create_only_its_named_consumers_on_its_agency_filter() {
        let s = subscriber("sxd-erp", Some("police"));
        assert_eq!(s.filter_subject(), "hotline.feed.v1.police.>");
        assert!(s.publish_allow().contains(&"$JS.API.CONSUMER.CREATE.HOTLINE_FEED.sxd-erp.hotline.feed.v1.police.>".to_owned()));
        assert!(s.publish_allow().iter().all(|p| p.starts_with("$JS.API.CONSUMER.") && p.contains(".HOTLINE_FEED.sxd-erp")
            || p == "$JS.API.STREAM.INFO.HOTLINE_FEED"
            || p == "$JS.ACK.HOTLINE_FEED.sxd-erp.>"));
        assert_eq!(s.subscribe_allow(), vec!["_INBOX_sxd-erp.>".to_owned()]);
        assert_eq!(subscriber("ioc", None).filter_subject(), "hotline.feed.v1.public.>");
    }

    #[test]
    fn names_that_would_break_a_subject_or_take_an_internal_user_are_refused() {
        let mut r = Registry::default();
        for bad in ["", "a.b", "a*", ">", "A", "-x", "hotline", "hotline-feed"] {
            assert!(r.add(subscriber(bad, None)).is_err(), "{bad:?} accepted");
        }
        assert!(r.add(subscriber("ok", Some("a.b"))).is_err());
        assert!(r.add(subscriber("ok", Some("public"))).is_err());
        r.add(subscriber("ok", None)).expect("valid");
        assert!(matches!(r.add(subscriber("ok", None)), Err(AccessError::Conflict(_))));
        let mut other = subscriber("other", None);
        other.consumers = vec!["ok".to_owned()];
        assert!(matches!(r.add(other), Err(AccessError::Conflict(_))), "a consumer name is never shared");
    }

    #[test]
    fn the_accounts_file_puts_the_internal_user_alone_in_its_account() {
        let mut r = Registry::default();
        r.add(subscriber("ioc", None)).expect("valid");
        let text = render_accounts("$2b$11$internal", &r);
        let (internal, feed) = text.split_once("FEED {").expect("two accounts");
        assert!(internal.contains("HOTLINE {") && internal.contains("user: \"hotline\",") && !internal.contains("ioc"));
        assert!(feed.contains("\"ioc\"") && feed.contains("\"hotline-feed\"") && !feed.contains("user: \"hotline\","));
        assert!(feed.contains("\"_INBOX_ioc.>\""));
    }
}
