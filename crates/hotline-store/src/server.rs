//! Running a nats-server of our own: for `hotline up` (embedded defaults) and for tests (a fresh server on a free
//! port with a temp store). The server is a real process with a real file store, configured to fsync before it
//! acknowledges (`sync_interval: always`), so an acknowledged petition survives power loss.
//!
//! Clients must authenticate (see [`crate::access`]): the config includes `accounts.conf`, regenerated at every
//! start from `subscribers.json` and the internal password in `hotline.password`. [`NatsServer::url`] carries the
//! internal user's credentials, so whoever starts the server can connect as before.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The oldest server we run on: 2.12 has `sync_interval`, atomic batches, and fixed clustered per-subject OCC.
pub const MIN_VERSION: (u32, u32) = (2, 12);

/// How to run a server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The nats-server binary (see [`find_binary`]).
    pub binary: PathBuf,
    /// Folder for the config, the log and the JetStream store.
    pub dir: PathBuf,
    /// Client port on 127.0.0.1; None picks a free one (and keeps it across restarts).
    pub port: Option<u16>,
    /// Kill the server when this process dies, even by SIGKILL (Linux), so no orphan holds the store lock.
    pub kill_with_parent: bool,
    /// fsync every write before acknowledging it (`sync_interval: always`). Always true in the system; false
    /// only to measure what durability costs (examples/append_cost.rs).
    pub fsync_before_ack: bool,
}

/// A nats-server child process. Dropping it kills the server.
pub struct NatsServer {
    child: Option<Child>,
    opts: ServerOptions,
    port: u16,
    /// The internal users' password (`<dir>/hotline.password`).
    password: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "no nats-server >= {}.{} found. Run scripts/up (it installs the pinned version into tools/), put nats-server \
         on PATH, set HOTLINE_NATS_SERVER to its path, or set NATS_URL to use a running server{}",
        MIN_VERSION.0, MIN_VERSION.1, .0
    )]
    NotFound(String),
    #[error("could not start nats-server: {0}")]
    Start(String),
    #[error("nats-server did not become ready within {seconds} s; last log lines:\n{log}")]
    NotReady { seconds: u64, log: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Access(#[from] crate::access::AccessError),
}

/// Finds a nats-server that is new enough: `$HOTLINE_NATS_SERVER`, then `PATH`, then `tools/nats-server-*/bin/`
/// under the current folder or any folder above this executable (where scripts/up installs it).
pub fn find_binary() -> Result<PathBuf, ServerError> {
    let mut rejected = Vec::new();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(explicit) = std::env::var_os("HOTLINE_NATS_SERVER") {
        candidates.push(PathBuf::from(explicit));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|p| p.join("nats-server")));
    }
    let mut roots: Vec<PathBuf> = std::env::current_dir().into_iter().collect();
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    for root in roots {
        if let Ok(entries) = std::fs::read_dir(root.join("tools")) {
            let mut found: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("nats-server-"))
                .map(|e| e.path().join("bin").join("nats-server"))
                .collect();
            found.sort();
            candidates.extend(found.into_iter().rev());
        }
    }
    for candidate in candidates {
        if !candidate.is_file() {
            continue;
        }
        match version_of(&candidate) {
            Some(v) if v >= MIN_VERSION => return Ok(candidate),
            Some((major, minor)) => rejected.push(format!("{} is {major}.{minor}", candidate.display())),
            None => rejected.push(format!("{} did not report a version", candidate.display())),
        }
    }
    let detail = if rejected.is_empty() { String::new() } else { format!(" (too old: {})", rejected.join(", ")) };
    Err(ServerError::NotFound(detail))
}

/// `(major, minor)` of a nats-server binary, from `--version`.
pub fn version_of(binary: &Path) -> Option<(u32, u32)> {
    let out = Command::new(binary).arg("--version").stderr(Stdio::null()).output().ok()?;
    parse_version(&String::from_utf8_lossy(&out.stdout))
}

/// Reads `nats-server: v2.12.8` as `(2, 12)`.
fn parse_version(text: &str) -> Option<(u32, u32)> {
    let v = text.split_whitespace().find_map(|w| w.strip_prefix('v').filter(|r| r.starts_with(|c: char| c.is_ascii_digit())))?;
    let mut parts = v.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

impl NatsServer {
    /// Writes the config and starts the server; returns once it accepts clients.
    pub async fn start(opts: ServerOptions) -> Result<NatsServer, ServerError> {
        std::fs::create_dir_all(opts.dir.join("store"))?;
        let password = crate::access::internal_password(&opts.dir)?;
        let mut server = NatsServer { child: None, port: opts.port.unwrap_or(0), opts, password };
        server.spawn().await?;
        Ok(server)
    }

    /// `nats://hotline:<password>@127.0.0.1:<port>`: the internal user, in the internal account (the log, the
    /// buckets). Treat it as a secret.
    pub fn url(&self) -> String {
        format!("nats://{}:{}@127.0.0.1:{}", crate::access::INTERNAL_USER, self.password, self.port)
    }

    /// `nats://hotline-feed:<password>@127.0.0.1:<port>`: the feed's writer, in the feed account.
    pub fn feed_url(&self) -> String {
        format!("nats://{}:{}@127.0.0.1:{}", crate::access::FEED_USER, self.password, self.port)
    }

    /// `nats://127.0.0.1:<port>`, without credentials: what to show, or hand a subscriber with its own.
    pub fn public_url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_path(&self) -> PathBuf {
        self.opts.dir.join("nats-server.log")
    }

    /// Whether the process has exited (and so needs a restart).
    pub fn has_exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// SIGKILL: what a crash or power cut looks like to the clients.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A clean stop: SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else { return };
        signal(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the server again on the same port and store (after [`kill`](Self::kill) or a crash).
    pub async fn restart(&mut self) -> Result<(), ServerError> {
        self.kill();
        self.spawn().await
    }

    async fn spawn(&mut self) -> Result<(), ServerError> {
        let dir = &self.opts.dir;
        let listen = if self.port == 0 { "127.0.0.1:-1".to_owned() } else { format!("127.0.0.1:{}", self.port) };
        let sync = if self.opts.fsync_before_ack {
            "  # fsync before every acknowledgement (see docs/durability.md)\n  sync_interval: always\n"
        } else {
            "  # MEASUREMENT ONLY: the server's default background fsync; a power cut loses acknowledged writes\n"
        };
        let config = format!(
            "# Written by hotline; edits are overwritten at start.\n\
             server_name: hotline\n\
             listen: {listen}\n\
             pid_file: {pid}\n\
             jetstream {{\n  store_dir: {store}\n{sync}}}\n\
             # Users and permissions (hotline-store access.rs); `hotline subscriber` rewrites it and reloads.\n\
             include \"{accounts}\"\n",
            store = quote(&dir.join("store")),
            pid = quote(&dir.join(crate::access::PID_FILE)),
            accounts = crate::access::ACCOUNTS_FILE,
        );
        let registry = crate::access::Registry::load(dir)?;
        crate::access::write_accounts(dir, &registry)?;
        move_global_account(&dir.join("store"))?;
        let config_path = dir.join("nats-server.conf");
        std::fs::write(&config_path, config)?;
        let log_path = self.log_path();
        let log_start = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);

        let mut command = Command::new(&self.opts.binary);
        command
            .arg("-c")
            .arg(&config_path)
            .arg("-l")
            .arg(&log_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.opts.kill_with_parent {
            die_with_parent(&mut command);
        }
        let child = command.spawn().map_err(|e| ServerError::Start(format!("{}: {e}", self.opts.binary.display())))?;
        self.child = Some(child);

        let started = Instant::now();
        let limit = Duration::from_secs(20);
        loop {
            let log = read_from(&log_path, log_start);
            if let Some(port) = listening_port(&log)
                && log.contains("Server is ready") {
                    self.port = port;
                    return Ok(());
                }
            if self.has_exited() || started.elapsed() > limit {
                self.kill();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
                return Err(ServerError::NotReady { seconds: limit.as_secs(), log: tail });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A store made before accounts keeps its streams under `jetstream/$G`; with accounts configured nats-server no
/// longer gives the global account JetStream, so the log and buckets move (once, with the server stopped) to the
/// internal account's folder. The stream files do not record their account, so a rename is the whole move.
fn move_global_account(store: &Path) -> std::io::Result<()> {
    let old = store.join("jetstream").join("$G");
    let new = store.join("jetstream").join(crate::access::INTERNAL_ACCOUNT);
    if old.is_dir() && !new.exists() {
        std::fs::rename(&old, &new)?;
        tracing::info!(from = %old.display(), to = %new.display(), "moved the store of the global account to the internal account");
    } else if old.is_dir() {
        // Both: which one holds the real log is the operator's call; nats-server serves only the internal one.
        tracing::warn!(
            global = %old.display(),
            internal = %new.display(),
            "the store has both a global-account and an internal-account folder; only the internal one is served. \
             Compare them and remove or archive the one that is not the log"
        );
    }
    Ok(())
}

fn quote(path: &Path) -> String {
    format!("\"{}\"", path.display().to_string().replace('\\', "\\\\").replace('"', "\\\""))
}

fn read_from(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path)
        && f.seek(SeekFrom::Start(offset)).is_ok() {
            let _ = f.read_to_string(&mut text);
        }
    text
}

fn listening_port(log: &str) -> Option<u16> {
    let line = log.lines().find(|l| l.contains("Listening for client connections on"))?;
    line.rsplit(':').next()?.trim().parse().ok()
}

fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) with a pid we spawned and a valid signal number has no memory effects.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of the parent. Note it fires when
    // the spawning *thread* exits: we spawn from runtime worker threads, which live as long as the process.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_line_is_read_regardless_of_the_v_in_server() {
        assert_eq!(parse_version("nats-server: v2.12.8"), Some((2, 12)));
        assert_eq!(parse_version("nats-server: v2.9.10\n"), Some((2, 9)));
        assert_eq!(parse_version("nats-server version unknown"), None);
    }

    #[test]
    fn the_listening_port_is_read_from_the_log() {
        let log = "[1] [INF] Listening for client connections on 127.0.0.1:41719\n[1] [INF] Server is ready";
        assert_eq!(listening_port(log), Some(41719));
        assert_eq!(listening_port("[1] [INF] Starting nats-server"), None);
    }
}
