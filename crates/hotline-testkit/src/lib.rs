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
    _owned_dir: Option<tempfile::TempDir>,
}

impl System {
    /// Starts `hotline up` (the binary at `binary`) on a free port with a fresh data dir.
    pub fn start(binary: &Path, env: &[(&str, &str)]) -> System {
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
            .stderr(if std::env::var_os("TEST_LOG").is_some() { Stdio::inherit() } else { Stdio::null() });
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
