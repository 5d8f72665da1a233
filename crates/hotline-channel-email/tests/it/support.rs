//! What the e-mail tests share: the channel listening on a free port in front of a real intake on a real
//! nats-server, Python's smtplib as the sending MTA, and aiosmtpd as the relay that receives our answers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use hotline_channel::blobs::BlobStore;
use hotline_channel::{ChannelContext, Intake};
use hotline_channel_email::EmailChannel;
use hotline_domain::province::Province;
use hotline_domain::{Envelope, TicketEvent};
use hotline_runtime::ShutdownTrigger;
use hotline_store::{EventStore, JetStreamStore};
use hotline_testkit::TestNats;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use uuid::Uuid;

/// The address the channel accepts mail for in these tests.
pub const HOTLINE: &str = "tiepnhan@1022.tinh.gov.vn";

/// The channel, listening, in front of a real intake.
pub struct Harness {
    pub store: Arc<JetStreamStore>,
    pub intake: Intake,
    pub blobs: BlobStore,
    pub channel: Arc<EmailChannel>,
    pub smtp: SocketAddr,
    pub trigger: ShutdownTrigger,
    pub server: tokio::task::JoinHandle<()>,
    _blob_dir: tempfile::TempDir,
    pub nats: TestNats,
}

impl Harness {
    /// Starts everything; `config` is the `[email]` section (listen is ignored: a free port is used).
    pub async fn start(config: Value) -> Harness {
        let nats = TestNats::start().await;
        let store = Arc::new(nats.store().await);
        let province = Province::parse(Province::BUNDLED, "bundled").expect("bundled province");
        let intake = Intake::new(store.clone(), Arc::new(province));
        let blob_dir = tempfile::tempdir().expect("temp dir");
        let blobs = BlobStore::new(blob_dir.path());
        let channel = Arc::new(EmailChannel::from_config(&config).expect("config"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let smtp = listener.local_addr().expect("addr");
        let (trigger, shutdown) = hotline_runtime::shutdown();
        let ctx = ChannelContext {
            state: hotline_channel::ChannelState::new(intake.event_store(), "email"),
            data_dir: std::env::temp_dir(),
            intake: intake.clone(),
            config,
            shutdown,
            blobs: blobs.clone(),
        };
        let serving = channel.clone();
        let server = tokio::spawn(async move { serving.serve(listener, ctx).await });
        Harness { store, intake, blobs, channel, smtp, trigger, server, _blob_dir: blob_dir, nats }
    }

    /// The default test configuration: mail for [`HOTLINE`] only, answers from it through `relay`.
    pub fn config(relay: Option<SocketAddr>) -> Value {
        json!({
            "recipients": [HOTLINE],
            "from": format!("1022 Tỉnh Bình Dương <{HOTLINE}>"),
            "domain": "1022.tinh.gov.vn",
            "relay": relay.map_or("smtp://127.0.0.1:1".to_owned(), |r| format!("smtp://{r}")),
            "relay_timeout_secs": 5,
        })
    }

    /// Sends mails with Python's smtplib over one connection; returns what the client saw (see smtp_client.py).
    pub async fn send(&self, mails: Value) -> Value {
        let script = peers_dir().join("smtp_client.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(self.smtp.ip().to_string())
            .arg(self.smtp.port().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs (the SMTP client of these tests is Python's smtplib)");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(json!({ "mails": mails }).to_string().as_bytes()).await.expect("plan written");
        drop(stdin);
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("smtp client finishes")
            .expect("smtp client output");
        assert!(out.status.success(), "smtp client failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("client prints JSON")
    }

    /// Sends one mail file from the corpus (or any path) from `from`; returns the DATA reply's code.
    pub async fn send_file(&self, from: &str, file: &Path) -> u64 {
        let out = self.send(json!([{ "from": from, "to": [HOTLINE], "file": file }])).await;
        out["mails"][0]["data"]["code"].as_u64().unwrap_or_else(|| panic!("no DATA reply: {out}"))
    }

    /// The ticket a mail with this Message-ID opened.
    pub fn ticket_of(&self, message_id: &str) -> Uuid {
        self.intake.ticket_id_for("email", message_id)
    }

    pub async fn events(&self, ticket: Uuid) -> Vec<Envelope> {
        self.store.load(ticket).await.expect("load").events
    }

    /// Every ticket event of the log, in order (to show that nothing at all was stored).
    pub async fn log_len(&self) -> u64 {
        self.store.last_position().await.expect("position")
    }

    pub async fn stop(self) {
        self.trigger.trigger();
        tokio::time::timeout(Duration::from_secs(15), self.server).await.expect("server stops").expect("no panic");
    }
}

pub fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-corpus/email_mime").join(name)
}

pub fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

/// The first event of a ticket, which must be its petition.
pub fn petition(events: &[Envelope]) -> &hotline_domain::event::PetitionReceived {
    match events.first().map(|e| &e.event) {
        Some(TicketEvent::PetitionReceived(p)) => p,
        other => panic!("the ticket starts with {other:?}"),
    }
}

/// aiosmtpd, a real SMTP server, standing in for the province's relay: every mail it accepts lands in `dir`.
pub struct Sink {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Sink {
    pub async fn start() -> Sink {
        let pythonpath = std::env::var("HOTLINE_PYTHONPATH").unwrap_or_else(|_| {
            panic!(
                "HOTLINE_PYTHONPATH is not set: these tests need aiosmtpd as the SMTP relay. Run \
                 `export HOTLINE_PYTHONPATH=$(bash scripts/lib/python-tools.sh)` (scripts/test does it)"
            )
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            probe.local_addr().expect("addr").port()
        };
        let mut child = Command::new("python3")
            .arg(peers_dir().join("smtp_sink.py"))
            .arg(port.to_string())
            .arg(dir.path())
            .env("PYTHONPATH", &pythonpath)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(30), BufReader::new(stdout).read_line(&mut line))
            .await
            .expect("aiosmtpd starts in time")
            .expect("read");
        assert_eq!(
            line.trim(),
            "ready",
            "aiosmtpd did not start (PYTHONPATH={pythonpath}; run scripts/lib/python-tools.sh)"
        );
        Sink { addr: SocketAddr::from(([127, 0, 0, 1], port)), dir, child }
    }

    /// The mails received so far, raw, oldest first.
    pub fn mails(&self) -> Vec<Vec<u8>> {
        let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(self.dir.path())
            .expect("dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .filter_map(|p| p.file_stem()?.to_str()?.parse().ok().map(|n| (n, p.clone())))
            .collect();
        found.sort();
        found.into_iter().map(|(_, p)| std::fs::read(p).expect("mail")).collect()
    }

    pub async fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}
