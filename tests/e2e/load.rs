//! Load and exact accounting for the failure tests: clients that keep sending petitions while something breaks,
//! and the end-of-test comparison of what was acknowledged, what the log holds and what the projection shows.
//!
//! A client sends each petition with an `Idempotency-Key` and, like a real client, retries that key until it gets a
//! 202 (a 503, a cut connection, a refused connection: the outcome is unknown to it). Keys still unresolved when
//! the load stops are retried once the system is back. So every key ends acknowledged with one ticket id, and the
//! log and the projection must hold exactly those tickets: no fewer (nothing acknowledged lost), no more (nothing
//! stored twice or stored without the client knowing).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{binary, samples};

/// Where intake listens now: a restarted intake process may come back on another port.
pub type Target = Arc<Mutex<String>>;

/// What the clients saw.
#[derive(Default)]
pub struct Ledger {
    /// Idempotency key -> the ticket id of its 202.
    pub acknowledged: BTreeMap<String, String>,
    /// Keys sent without a 202 yet (the last answer was a 503 or no answer): retried at the end.
    pub unresolved: BTreeMap<String, Value>,
    /// How many answers of each HTTP status, and `0` for no answer (refused or cut connection).
    pub statuses: BTreeMap<u16, usize>,
    /// Answers that broke the rules: a non-JSON 503, a status other than 202/503, a retry with another ticket.
    pub violations: Vec<String>,
    /// Ticket id -> the text its petition was sent with (checked against the log at the end: a petition whose
    /// text no longer reads, e.g. its key lost in a crash, is lost too).
    pub texts: BTreeMap<String, String>,
}

impl Ledger {
    fn record(&mut self, key: &str, body: &Value, answer: std::io::Result<hotline_testkit::Response>) -> bool {
        let status = answer.as_ref().map(|r| r.status).unwrap_or(0);
        *self.statuses.entry(status).or_default() += 1;
        match answer {
            Ok(r) if r.status == 202 => {
                let id = serde_json::from_slice::<Value>(&r.body).ok().and_then(|v| v["ticket_id"].as_str().map(str::to_owned));
                let Some(id) = id else {
                    self.violations.push(format!("{key}: 202 without a ticket id: {}", r.text()));
                    return false;
                };
                if let Some(previous) = self.acknowledged.get(key).filter(|p| **p != id) {
                    self.violations.push(format!("{key}: acknowledged as {previous}, then as {id}"));
                }
                self.texts.insert(id.clone(), body["text"].as_str().unwrap_or_default().to_owned());
                self.acknowledged.insert(key.to_owned(), id);
                self.unresolved.remove(key);
                true
            }
            Ok(r) => {
                let code = serde_json::from_slice::<Value>(&r.body).ok().and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
                let allowed = r.status == 503 && matches!(code.as_deref(), Some("unavailable" | "outcome_unknown"));
                if !allowed {
                    self.violations.push(format!("{key}: {} {}", r.status, r.text()));
                }
                self.unresolved.insert(key.to_owned(), body.clone());
                false
            }
            Err(_) => {
                self.unresolved.insert(key.to_owned(), body.clone());
                false
            }
        }
    }

    /// How many answers had this status (0: no answer).
    pub fn count(&self, status: u16) -> usize {
        self.statuses.get(&status).copied().unwrap_or(0)
    }
}

/// Client threads sending petitions until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    pub ledger: Arc<Mutex<Ledger>>,
}

impl Load {
    /// `clients` threads, each sending about `per_second` petitions a second to `target`, keys `<name>-<client>-<n>`.
    pub fn start(name: &str, target: Target, clients: usize, per_second: u32) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ledger: Arc<Mutex<Ledger>> = Arc::default();
        let samples = Arc::new(samples());
        let pause = Duration::from_secs(1) / per_second.max(1);
        let workers = (0..clients)
            .map(|c| {
                let (stop, ledger, samples, target, name) = (stop.clone(), ledger.clone(), samples.clone(), target.clone(), name.to_owned());
                std::thread::spawn(move || {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let key = format!("{name}-{c}-{n}");
                        let body = json!({ "text": samples[(n * clients + c) % samples.len()]["text"] });
                        // The same key until it is acknowledged, backing off while the system is down.
                        while !stop.load(Ordering::Relaxed) {
                            let addr = target.lock().expect("lock").clone();
                            let answer = post(&addr, &key, &body);
                            if ledger.lock().expect("lock").record(&key, &body, answer) {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(200));
                        }
                        n += 1;
                        std::thread::sleep(pause);
                    }
                })
            })
            .collect();
        Load { stop, workers, ledger }
    }

    /// Stops the clients and retries every unresolved key at `target` until each is acknowledged (the system must
    /// be back); returns what the clients saw.
    pub fn finish(self, target: &str) -> Ledger {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.join().expect("client thread");
        }
        let mut ledger = Arc::try_unwrap(self.ledger).ok().expect("clients stopped").into_inner().expect("lock");
        let unresolved: Vec<(String, Value)> = ledger.unresolved.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (key, body) in unresolved {
            let start = Instant::now();
            while !ledger.record(&key, &body, post(target, &key, &body)) {
                assert!(start.elapsed() < Duration::from_secs(60), "the retry of {key} was not acknowledged within 60 s: {:?}", ledger.violations);
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        ledger
    }
}

fn post(addr: &str, key: &str, body: &Value) -> std::io::Result<hotline_testkit::Response> {
    let headers = [("Content-Type", "application/json"), ("Idempotency-Key", key)];
    hotline_testkit::http("POST", addr, "/v1/petitions", &headers, body.to_string().as_bytes())
}

/// Every acknowledged petition's text, read from the log by a process that never saw it (no cached key), is the
/// text that was sent: its sealed fields and its citizen key both survived.
fn assert_texts_read_back(ledger: &Ledger, nats_url: &str) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = hotline_store::JetStreamStore::connect(nats_url, hotline_store::JetStreamConfig::default()).await.expect("connects to the log");
        for (ticket, sent) in &ledger.texts {
            let text = crate::petition_text(&store, ticket.parse().expect("ticket id")).await;
            assert_eq!(&text, sent, "ticket {ticket}'s text reads back");
        }
    });
}

/// The log's events as `hotline audit export` writes them, read through `nats_url` (the system's NATS).
pub fn log_events(data_dir: &Path, nats_url: &str) -> Vec<Value> {
    let out = Command::new(binary())
        .args(["audit", "export", "--from", "2000-01-01", "--to", "2100-01-01", "--format", "jsonl", "--data-dir"])
        .arg(data_dir)
        .env("NATS_URL", nats_url)
        .output()
        .expect("hotline audit export runs");
    assert!(out.status.success(), "audit export: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("jsonl line")).collect()
}

/// Ticket ids in the projection file.
pub fn projected_ids(data_dir: &Path) -> BTreeSet<String> {
    let conn = rusqlite::Connection::open(data_dir.join("projections.sqlite")).expect("open projections");
    let mut statement = conn.prepare("SELECT ticket_id FROM tickets").expect("query");
    statement.query_map([], |r| r.get::<_, String>(0)).expect("rows").map(|r| r.expect("row")).collect()
}

/// The three numbers and the routing check, once the system has caught up.
#[derive(Debug)]
pub struct Accounting {
    pub acknowledged: usize,
    pub in_log: usize,
    pub projected: usize,
}

impl std::fmt::Display for Accounting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} acknowledged, {} tickets in the log, {} in the projection", self.acknowledged, self.in_log, self.projected)
    }
}

/// Waits (up to `limit`) until the log holds every acknowledged ticket, each routed or sent to triage, and the
/// projection holds them too; then asserts the three sets are equal and that no ticket was received or routed
/// twice. `nats_url` reaches the log, `data_dir` holds the projection.
pub fn account(ledger: &Ledger, data_dir: &Path, nats_url: &str, limit: Duration) -> Accounting {
    assert!(ledger.violations.is_empty(), "clients saw answers that break the rules: {:#?}", ledger.violations);
    assert!(ledger.unresolved.is_empty(), "unresolved keys: {:?}", ledger.unresolved.keys());
    let acknowledged: BTreeSet<String> = ledger.acknowledged.values().cloned().collect();
    assert_eq!(acknowledged.len(), ledger.acknowledged.len(), "one ticket per idempotency key");
    let start = Instant::now();
    loop {
        let events = log_events(data_dir, nats_url);
        let mut received: BTreeMap<String, usize> = BTreeMap::new();
        let mut routed: BTreeMap<String, usize> = BTreeMap::new();
        for e in &events {
            let ticket = e["ticket_id"].as_str().expect("ticket_id").to_owned();
            match e["type"].as_str().expect("type") {
                "PetitionReceived" => *received.entry(ticket).or_default() += 1,
                // The router's decision; nobody transfers or reopens in these tests, so each ticket has one.
                "PetitionRouted" | "PetitionNeedsTriage" => *routed.entry(ticket).or_default() += 1,
                _ => {}
            }
        }
        let projected = projected_ids(data_dir);
        let in_log: BTreeSet<String> = received.keys().cloned().collect();
        let settled = in_log == acknowledged && routed.len() == in_log.len() && projected == acknowledged;
        if settled || start.elapsed() > limit {
            let twice: Vec<_> = received.iter().filter(|(_, n)| **n > 1).collect();
            assert!(twice.is_empty(), "tickets received twice: {twice:?}");
            let routed_twice: Vec<_> = routed.iter().filter(|(_, n)| **n > 1).collect();
            assert!(routed_twice.is_empty(), "tickets routed twice: {routed_twice:?}");
            let lost: Vec<_> = acknowledged.difference(&in_log).collect();
            assert!(lost.is_empty(), "acknowledged but not in the log: {lost:?}");
            let unacknowledged: Vec<_> = in_log.difference(&acknowledged).collect();
            assert!(unacknowledged.is_empty(), "in the log but never acknowledged: {unacknowledged:?}");
            let unrouted: Vec<_> = in_log.iter().filter(|t| !routed.contains_key(*t)).collect();
            assert!(unrouted.is_empty(), "never routed: {unrouted:?}");
            assert_eq!(projected, acknowledged, "the projection holds exactly the acknowledged tickets");
            assert_texts_read_back(ledger, nats_url);
            return Accounting { acknowledged: acknowledged.len(), in_log: in_log.len(), projected: projected.len() };
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
