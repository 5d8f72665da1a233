//! Test support shared by the integration tests: a real nats-server on a free port with a temp store (killed on
//! drop), a small blocking HTTP/1.1 client, and a real `hotline up` process with its own data dir.
//!
//! Tests never use a server someone started by hand. Set `TEST_LOG=1` to see the system's log output.

pub mod tamper;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hotline_store::server::{NatsServer, ServerOptions, find_binary};
use hotline_store::{JetStreamConfig, JetStreamStore};

/// The nats-server binary for tests; panics with the way to get one.
pub fn nats_server_binary() -> PathBuf {
    match find_binary() {
        Ok(p) => p,
        Err(e) => panic!("{e}\n(run `bash scripts/lib/nats-server.sh` once, or `scripts/test`, which does it)"),
    }
}

/// A nats-server of the test's own.
pub struct TestNats {
    pub server: NatsServer,
    pub dir: tempfile::TempDir,
}

impl TestNats {
    /// Starts a fresh server with an empty store on a free port.
    pub async fn start() -> TestNats {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = NatsServer::start(ServerOptions {
            binary: nats_server_binary(),
            dir: dir.path().join("nats"),
            port: None,
            kill_with_parent: true,
            fsync_before_ack: true,
        })
        .await
        .expect("nats-server starts");
        TestNats { server, dir }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// A store on this server with the default names.
    pub async fn store(&self) -> JetStreamStore {
        JetStreamStore::connect(&self.url(), JetStreamConfig::default()).await.expect("store connects")
    }
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request over a fresh connection. `addr` is `host:port`.
pub fn http(method: &str, addr: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim(), 16).map_err(std::io::Error::other)?;
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok(Response { status, headers, body })
}

/// A running `hotline up` process with its own data dir.
pub struct System {
    pub child: Option<Child>,
    pub addr: String,
    /// Where the e-mail channel's SMTP listener took its port.
    pub smtp_addr: String,
    pub data_dir: PathBuf,
    pub admin_token: String,
    binary: PathBuf,
    env: Vec<(String, String)>,
    /// Where the process's log (stderr) goes, appended across restarts; None discards it (or shows it with
    /// `TEST_LOG=1`).
    pub log_file: Option<PathBuf>,
    _owned_dir: Option<tempfile::TempDir>,
}

impl System {
    /// Starts `hotline up` (the binary at `binary`) on a free port with a fresh data dir.
    pub fn start(binary: &Path, env: &[(&str, &str)]) -> System {
        System::launch(binary, env, None)
    }

    /// Like [`System::start`], with the process's log written to `log` (a test that must read it).
    pub fn start_logged(binary: &Path, env: &[(&str, &str)], log: PathBuf) -> System {
        System::launch(binary, env, Some(log))
    }

    fn launch(binary: &Path, env: &[(&str, &str)], log_file: Option<PathBuf>) -> System {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let mut system = System {
            child: None,
            addr: String::new(),
            smtp_addr: String::new(),
            data_dir,
            admin_token: "test-admin-token".to_owned(),
            binary: binary.to_owned(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            log_file,
            _owned_dir: Some(dir),
        };
        system.spawn();
        system
    }

    /// Starts the process (again) on the same data dir.
    pub fn spawn(&mut self) {
        let mut command = Command::new(&self.binary);
        command
            .arg("up")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--http")
            .arg("127.0.0.1:0")
            .env("HOTLINE_ADMIN_TOKEN", &self.admin_token)
            .env("HOTLINE_NATS_SERVER", nats_server_binary())
            // Tests run side by side: each system's SMTP listener takes a free port (printed, read below).
            .env("HOTLINE_SMTP_ADDR", "127.0.0.1:0")
            .env_remove("NATS_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(match &self.log_file {
                Some(path) => Stdio::from(std::fs::OpenOptions::new().create(true).append(true).open(path).expect("log file")),
                None if std::env::var_os("TEST_LOG").is_some() => Stdio::inherit(),
                None => Stdio::null(),
            });
        for (k, v) in &self.env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("hotline starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if std::env::var_os("TEST_LOG").is_some() {
                    eprintln!("[hotline stdout] {line}");
                }
                if let Some(addr) = line.strip_prefix("hotline: smtp listening on ")
                    && let Some(tx) = &tx {
                        let _ = tx.send((true, addr.trim().to_owned()));
                    }
                if let Some(addr) = line.strip_prefix("hotline: listening on http://")
                    && let Some(tx) = tx.take() {
                        let _ = tx.send((false, addr.trim().to_owned()));
                    }
            }
        });
        loop {
            let (smtp, addr) = rx.recv_timeout(Duration::from_secs(60)).expect("hotline prints its address within 60 s");
            if smtp {
                self.smtp_addr = addr;
            } else {
                self.addr = addr;
                break;
            }
        }
        self.child = Some(child);
    }

    /// SIGKILL: no drain, no goodbye (its embedded nats-server dies with it).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Let the kernel deliver the parent-death signal to the nats-server child and release the store lock.
        std::thread::sleep(Duration::from_millis(300));
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let pid = libc::pid_t::try_from(child.id()).ok()?;
        // SAFETY: kill(2) on our own child with a valid signal.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        None
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        http(method, &self.addr, path, headers, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// `POST /v1/petitions` with a JSON body.
    pub fn post_petition(&self, body: &serde_json::Value, idempotency_key: Option<&str>) -> Response {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(key) = idempotency_key {
            headers.push(("Idempotency-Key", key));
        }
        self.request("POST", "/v1/petitions", &headers, body.to_string().as_bytes())
    }

    /// Posts the petition until it is accepted (202), as a client retrying through an outage would; every
    /// other answer meanwhile must be a 503. Panics after `limit`.
    pub fn post_until_accepted(&self, body: &serde_json::Value, key: Option<&str>, limit: Duration) -> Response {
        let start = Instant::now();
        loop {
            let r = self.post_petition(body, key);
            if r.status == 202 {
                return r;
            }
            assert_eq!(r.status, 503, "meanwhile intake says unavailable: {}", r.text());
            assert!(start.elapsed() < limit, "intake did not recover within {limit:?}: {}", r.text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// An authenticated GET.
    pub fn get(&self, path: &str) -> Response {
        let auth = format!("Bearer {}", self.admin_token);
        self.request("GET", path, &[("Authorization", &auth)], b"")
    }

    /// Polls `GET /v1/tickets/{id}` until `done` holds for it, or panics after `limit`.
    pub fn wait_for_ticket(&self, id: &str, limit: Duration, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let r = self.get(&format!("/v1/tickets/{id}"));
            if r.status == 200 {
                let v = r.json();
                if done(&v) {
                    return v;
                }
            }
            if start.elapsed() > limit {
                panic!("ticket {id} not ready after {limit:?}: last answer {} {}", r.status, r.text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `sig` to the process `pid` (one the test started): SIGKILL for a crash, SIGHUP for a reload, SIGSTOP and
/// SIGCONT for a hang.
pub fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) on a process this test started, with a valid signal number; no memory is touched.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// A free TCP port on 127.0.0.1 (free when asked: the caller binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A nats-server run from a config file the test wrote (a cluster node, a server with small limits), on fixed
/// ports: it restarts on the same ports and store, as an operator's restart would. Killed when dropped.
pub struct NatsProcess {
    pub name: String,
    pub config: PathBuf,
    pub log: PathBuf,
    /// The client port written in the config.
    pub port: u16,
    child: Option<Child>,
}

impl NatsProcess {
    /// Starts `nats-server -c config` and waits until it says it is ready.
    pub fn start(name: &str, config: PathBuf, port: u16) -> NatsProcess {
        let log = config.with_extension("log");
        let mut process = NatsProcess { name: name.to_owned(), config, log, port, child: None };
        process.spawn();
        process
    }

    /// Starts the process (again) on the same config and store; waits until it says it is ready.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is running", self.name);
        let offset = std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        let child = Command::new(nats_server_binary())
            .arg("-c")
            .arg(&self.config)
            .arg("-l")
            .arg(&self.log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            let text = self.log_since(offset);
            if text.contains("Server is ready") {
                return;
            }
            let exited = self.child.as_mut().is_some_and(|c| !matches!(c.try_wait(), Ok(None)));
            assert!(!exited && started.elapsed() < Duration::from_secs(20), "nats-server {} did not start:\n{text}", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: a crash or a power cut as the clients see it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The server's log from byte `offset` on (all of it with 0).
    pub fn log_since(&self, offset: u64) -> String {
        let text = std::fs::read(&self.log).unwrap_or_default();
        String::from_utf8_lossy(text.get(offset as usize..).unwrap_or_default()).into_owned()
    }

    /// Current length of the log, to read what comes after it with [`log_since`](Self::log_since).
    pub fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }
}

impl Drop for NatsProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `cluster.leader` of a JetStream stream as the server at `url` reports it (`$JS.API.STREAM.INFO`), or None
/// while the stream has no leader or the server does not answer. Credentials may ride in the URL.
pub async fn stream_leader(url: &str, stream: &str) -> Option<String> {
    let info = stream_info(url, stream, None).await?;
    info["cluster"]["leader"].as_str().map(str::to_owned)
}

/// `$JS.API.STREAM.INFO.<stream>` as JSON from the server at `url`, or None when there is no good answer within 2 s.
/// With `subjects_filter`, `state.subjects` counts the messages of each subject matching it.
pub async fn stream_info(url: &str, stream: &str, subjects_filter: Option<&str>) -> Option<serde_json::Value> {
    let request = subjects_filter.map(|f| serde_json::json!({ "subjects_filter": f }).to_string()).unwrap_or_default();
    jetstream_api(url, &format!("$JS.API.STREAM.INFO.{stream}"), &request).await
}

/// A JetStream API request (`$JS.API.<...>`) to the server at `url`; its JSON answer, or None when there is no
/// answer within 2 s or the answer is an error.
pub async fn jetstream_api(url: &str, subject: &str, request: &str) -> Option<serde_json::Value> {
    let (bare, user, password) = split_login(url);
    let mut options = async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(2)).request_timeout(Some(Duration::from_secs(2)));
    if let (Some(user), Some(password)) = (user, password) {
        options = options.user_and_password(user, password);
    }
    let client = tokio::time::timeout(Duration::from_secs(3), options.connect(bare.as_str())).await.ok()?.ok()?;
    let reply = client.request(subject.to_owned(), request.to_owned().into()).await.ok()?;
    let answer: serde_json::Value = serde_json::from_slice(&reply.payload).ok()?;
    answer.get("error").is_none().then_some(answer)
}

/// `nats://user:password@host:port` -> (`nats://host:port`, user, password); no percent-decoding (test passwords
/// are hex).
fn split_login(url: &str) -> (String, Option<String>, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else { return (url.to_owned(), None, None) };
    match rest.rsplit_once('@') {
        Some((login, host)) => {
            let (user, password) = login.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())).unzip();
            (format!("{scheme}://{host}"), user, password)
        }
        None => (url.to_owned(), None, None),
    }
}

/// A subscriber system at its worst: it creates its durable feed consumer, asks for a huge batch of messages, and
/// then never reads its socket, never answers a ping and never acknowledges anything. Spoken in the raw NATS
/// protocol over one TCP connection, so nothing (no client library's buffering) reads on its behalf. Dropping it
/// closes the connection.
pub struct HangingSubscriber {
    _socket: TcpStream,
}

impl HangingSubscriber {
    /// Logs in at `addr` (`host:port`) as `user`, creates the durable `consumer` on `stream` with `filter`
    /// (the subscriber's permitted form: the filter in the create subject), pulls a batch into `inbox_prefix` and
    /// stops reading.
    pub fn start(addr: &str, user: &str, password: &str, inbox_prefix: &str, stream: &str, consumer: &str, filter: &str) -> std::io::Result<HangingSubscriber> {
        let socket = TcpStream::connect(addr)?;
        socket.set_read_timeout(Some(Duration::from_secs(10)))?;
        // A tiny receive window, so the server's writes back up within seconds rather than after megabytes.
        shrink_receive_buffer(&socket)?;
        let mut reader = BufReader::new(socket.try_clone()?);
        let mut writer = socket.try_clone()?;
        let mut info = String::new();
        reader.read_line(&mut info)?;
        let connect = serde_json::json!({
            "user": user, "pass": password, "verbose": false, "pedantic": false, "headers": true, "protocol": 1, "name": "hanging",
        });
        let create = serde_json::json!({
            "stream_name": stream,
            "config": { "durable_name": consumer, "filter_subject": filter, "deliver_policy": "all", "ack_policy": "explicit", "max_ack_pending": 100_000 },
        })
        .to_string();
        write!(writer, "CONNECT {connect}\r\nSUB {inbox_prefix}.create 1\r\nPUB $JS.API.CONSUMER.CREATE.{stream}.{consumer}.{filter} {inbox_prefix}.create {}\r\n{create}\r\nPING\r\n", create.len())?;
        let reply = read_message(&mut reader, &mut writer)?;
        if reply.contains("\"error\"") {
            return Err(std::io::Error::other(format!("consumer create refused: {reply}")));
        }
        let next = r#"{"batch":100000,"expires":300000000000}"#;
        write!(writer, "SUB {inbox_prefix}.hang 2\r\nPUB $JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer} {inbox_prefix}.hang {}\r\n{next}\r\n", next.len())?;
        writer.flush()?;
        Ok(HangingSubscriber { _socket: socket })
    }
}

fn shrink_receive_buffer(socket: &TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 4096;
    // SAFETY: setsockopt(2) on a socket we own, with a pointer to a live c_int and its size.
    #[allow(unsafe_code)]
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Reads protocol lines until the first message and returns its payload; answers pings, fails on `-ERR`.
fn read_message(reader: &mut BufReader<TcpStream>, writer: &mut TcpStream) -> std::io::Result<String> {
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first().copied() {
            Some("PING") => writer.write_all(b"PONG\r\n")?,
            Some("-ERR") => return Err(std::io::Error::other(line.trim().to_owned())),
            // MSG <subject> <sid> [reply] <size>; HMSG <subject> <sid> [reply] <header size> <total size>.
            Some("MSG" | "HMSG") => {
                let size: usize = words.last().and_then(|w| w.parse().ok()).ok_or_else(|| std::io::Error::other(line.clone()))?;
                let mut payload = vec![0; size + 2];
                reader.read_exact(&mut payload)?;
                return Ok(String::from_utf8_lossy(&payload[..size]).into_owned());
            }
            _ => {}
        }
    }
}

/// A 3-node JetStream cluster on loopback, run from the configs we ship (`deploy/cluster/nats-{1,2,3}.conf`): only
/// the lines the files mark `# SET:` (ports, store and pid paths, route addresses) are replaced, for free loopback
/// ports and a temp dir; the logins are the ones `hotline subscriber` generates (`accounts.conf`). Every node is
/// killed when dropped.
pub struct NatsCluster {
    pub nodes: Vec<NatsProcess>,
    /// Each node's monitoring port (`/jsz`, `/healthz`).
    pub monitors: Vec<u16>,
    password: String,
    _dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts one node per config in `configs` and waits until every node knows the JetStream meta leader.
    pub fn start(configs: &[PathBuf]) -> NatsCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let password = hotline_store::access::internal_password(dir.path()).expect("internal password");
        let registry = hotline_store::access::Registry::load(dir.path()).expect("empty registry");
        hotline_store::access::write_accounts(dir.path(), &registry).expect("accounts.conf");
        let clients: Vec<u16> = configs.iter().map(|_| free_port()).collect();
        let routes: Vec<u16> = configs.iter().map(|_| free_port()).collect();
        let monitors: Vec<u16> = configs.iter().map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for (i, shipped) in configs.iter().enumerate() {
            let text = std::fs::read_to_string(shipped).unwrap_or_else(|e| panic!("{}: {e}", shipped.display()));
            let node = Ports { client: clients[i], route: routes[i], monitor: monitors[i], routes: &routes };
            let config = loopback_config(&text, dir.path(), i + 1, &node).unwrap_or_else(|e| panic!("{}: {e}", shipped.display()));
            let path = dir.path().join(shipped.file_name().expect("file name"));
            std::fs::write(&path, config).expect("write config");
            let name = shipped.file_stem().expect("stem").to_string_lossy().into_owned();
            nodes.push(NatsProcess::start(&name, path, clients[i]));
        }
        let cluster = NatsCluster { nodes, monitors, password, _dir: dir };
        cluster.wait_for_meta_leader(Duration::from_secs(30));
        cluster
    }

    /// Every node's URL with the internal user's login, comma-separated: what `NATS_URL` holds for a cluster.
    pub fn url(&self) -> String {
        self.login_url(hotline_store::access::INTERNAL_USER)
    }

    /// The same list for the feed's writer (`nats.feed_url`).
    pub fn feed_url(&self) -> String {
        self.login_url(hotline_store::access::FEED_USER)
    }

    /// One node's URL with the internal user's login.
    pub fn node_url(&self, i: usize) -> String {
        format!("nats://{}:{}@127.0.0.1:{}", hotline_store::access::INTERNAL_USER, self.password, self.nodes[i].port)
    }

    fn login_url(&self, user: &str) -> String {
        self.nodes.iter().map(|n| format!("nats://{user}:{}@127.0.0.1:{}", self.password, n.port)).collect::<Vec<_>>().join(",")
    }

    /// The index of the node whose `server_name` is `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| {
            std::fs::read_to_string(&n.config).is_ok_and(|c| c.lines().any(|l| l.split('#').next().unwrap_or("").trim() == format!("server_name: {name}")))
        })
    }

    /// Waits until every running node reports a JetStream meta leader on its monitoring port.
    pub fn wait_for_meta_leader(&self, limit: Duration) {
        let start = Instant::now();
        for (i, port) in self.monitors.iter().enumerate() {
            loop {
                let leader = http("GET", &format!("127.0.0.1:{port}"), "/jsz", &[], b"")
                    .ok()
                    .and_then(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
                    .and_then(|v| v["meta_cluster"]["leader"].as_str().filter(|l| !l.is_empty()).map(str::to_owned));
                if leader.is_some() {
                    break;
                }
                assert!(start.elapsed() < limit, "node {} knows no meta leader after {limit:?}:\n{}", i + 1, self.nodes[i].log_since(0));
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// A node's loopback ports, and every node's route port.
struct Ports<'a> {
    client: u16,
    route: u16,
    monitor: u16,
    routes: &'a [u16],
}

/// The shipped config with each `# SET:` line replaced for node `n` (1-based) on loopback. A `# SET:` line this does
/// not know is an error: the shipped file changed, and the test must learn what to put there.
fn loopback_config(text: &str, dir: &Path, n: usize, ports: &Ports) -> Result<String, String> {
    let mut out = String::new();
    let mut block: Vec<String> = Vec::new();
    for line in text.lines() {
        let code = line.split('#').next().unwrap_or("").trim();
        let indent = &line[..line.len() - line.trim_start().len()];
        let replaced = if !code.is_empty() && line.trim_end().ends_with("# SET:") {
            let key = code.split(':').next().unwrap_or("").trim();
            let in_cluster = block.last().is_some_and(|b| b == "cluster");
            Some(match key {
                "server_name" => code.to_owned(),
                "listen" if in_cluster => format!("listen: 127.0.0.1:{}", ports.route),
                "listen" => format!("listen: 127.0.0.1:{}", ports.client),
                "http" => format!("http: 127.0.0.1:{}", ports.monitor),
                "pid_file" => format!("pid_file: \"{}\"", dir.join(format!("nats-{n}.pid")).display()),
                "store_dir" => format!("store_dir: \"{}\"", dir.join(format!("store-{n}")).display()),
                "nats-route" => {
                    // nats-route://nats-<k>:<port>: node k's route port.
                    let k: usize = code
                        .split("nats-")
                        .nth(2)
                        .and_then(|rest| rest.split(':').next())
                        .and_then(|k| k.parse().ok())
                        .ok_or_else(|| format!("route line {line:?}"))?;
                    let port = ports.routes.get(k - 1).ok_or_else(|| format!("route to node {k}"))?;
                    format!("nats-route://127.0.0.1:{port}")
                }
                _ => return Err(format!("unknown `# SET:` line {line:?}")),
            })
        } else {
            None
        };
        if code.ends_with('{') {
            block.push(code.trim_end_matches('{').trim().trim_end_matches(':').to_owned());
        }
        if code.starts_with('}') {
            block.pop();
        }
        match replaced {
            Some(r) => {
                out.push_str(indent);
                out.push_str(&r);
                out.push('\n');
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_cluster_configs_form_a_cluster_on_loopback_that_survives_a_node() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/cluster");
        let mut cluster = NatsCluster::start(&(1..=3).map(|n| root.join(format!("nats-{n}.conf"))).collect::<Vec<_>>());
        for node in &cluster.nodes {
            let config = std::fs::read_to_string(&node.config).expect("config");
            assert!(config.contains("sync_interval: always") && !config.contains("nats-1:"), "{config}");
        }
        cluster.nodes[0].kill();
        cluster.nodes[0].spawn();
        cluster.wait_for_meta_leader(Duration::from_secs(30));
        assert!(cluster.url().split(',').count() == 3 && cluster.index_of("hotline-nats-2") == Some(1));
    }

    #[test]
    fn a_set_line_the_test_does_not_know_is_an_error() {
        let ports = Ports { client: 1, route: 2, monitor: 3, routes: &[2, 4, 6] };
        let err = loopback_config("max_connections: 10 # SET:\n", Path::new("/tmp"), 1, &ports).expect_err("unknown");
        assert!(err.contains("max_connections"), "{err}");
        let ok = loopback_config("cluster {\n  listen: 0.0.0.0:6222 # SET:\n  routes: [\n    nats-route://nats-3:6224 # SET:\n  ]\n}\nlisten: 0.0.0.0:4222 # SET:\n", Path::new("/tmp"), 1, &ports).expect("known");
        assert_eq!(ok, "cluster {\n  listen: 127.0.0.1:2\n  routes: [\n    nats-route://127.0.0.1:6\n  ]\n}\nlisten: 127.0.0.1:1\n");
    }
}
