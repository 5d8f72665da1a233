//! `hotline-bench`: drives petitions through the real HTTP intake of a real `hotline up` (embedded nats-server,
//! `sync_interval: always`) and measures, in one run on that one server: the raw JetStream limit, end-to-end
//! throughput and its ratio to the raw limit, latency at a fixed rate, `hotline replay` against a raw read of the
//! same log, and peak memory with many tickets in the log. Prints a table and returns the figures for JSON.
//! docs/performance.md records a run and explains where the time goes.

mod error;
mod follow;
mod http;
mod raw;
mod report;
mod system;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotline_store::{EventStore, JetStreamConfig, JetStreamStore};
use serde::Serialize;
use uuid::Uuid;

pub use error::BenchError;
pub use report::{Report, table};

use follow::Tracker;
use system::System;

/// What to run, and how big.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `hotline` binary.
    pub hotline: PathBuf,
    /// Where the system keeps its data; a temporary folder (removed afterwards) when None.
    pub data_dir: Option<PathBuf>,
    /// Petitions of the maximum-throughput run.
    pub petitions: usize,
    /// HTTP connections (clients submitting at once).
    pub concurrency: usize,
    /// Petitions per second of the latency run (lowered to 80% of the measured maximum when that is lower).
    pub rate: f64,
    /// Length of the latency run.
    pub latency_secs: f64,
    /// Messages of each raw append measurement.
    pub raw_messages: usize,
    /// Tickets in the log for the replay and memory measurements (the runs before count towards it).
    pub tickets: usize,
}

/// p50 / p99 / max of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(mut samples: Vec<Duration>) -> Latency {
        samples.sort_unstable();
        let at = |q: f64| {
            let i = ((samples.len() as f64 * q).ceil() as usize).saturating_sub(1).min(samples.len().saturating_sub(1));
            samples.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        Latency { samples: samples.len(), p50_ms: at(0.50), p99_ms: at(0.99), max_ms: at(1.0) }
    }
}

/// Sample petitions: the labelled fixtures (Vietnamese and English, from every channel), sent as app petitions.
const FIXTURES: &str = include_str!("../../../tests/fixtures/petitions-dev.jsonl");
/// Petitions sent first to warm the system up (connections, caches, consumers), not measured.
const WARMUP: usize = 50;

/// Request bodies, built before any clock starts.
struct Bodies {
    texts: Vec<(String, Option<String>)>,
    run: String,
}

impl Bodies {
    fn new() -> Result<Bodies, BenchError> {
        let mut texts = Vec::new();
        for line in FIXTURES.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| BenchError::Invalid(format!("petition fixture: {e}")))?;
            let text = v.get("text").and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
            let subject = v.get("subject").and_then(serde_json::Value::as_str).map(str::to_owned);
            texts.push((text, subject));
        }
        if texts.is_empty() {
            return Err(BenchError::Invalid("no petition fixtures".to_owned()));
        }
        Ok(Bodies { texts, run: Uuid::new_v4().simple().to_string() })
    }

    /// The i-th petition of the run and its idempotency key (a citizen's phone number varies with it).
    fn petition(&self, i: usize) -> (Bytes, String) {
        let (text, subject) = &self.texts[i % self.texts.len()];
        let mut body = serde_json::json!({ "text": text, "citizen": { "phone": format!("09{:08}", i % 100_000_000) } });
        if let Some(subject) = subject {
            body["subject"] = subject.clone().into();
        }
        (Bytes::from(body.to_string()), format!("bench-{}-{i}", self.run))
    }
}

/// One petition as the client saw it.
#[derive(Debug, Clone, Copy)]
struct Sent {
    ticket: Uuid,
    /// When it was due (the fixed-rate run) or sent (the maximum run).
    start: Instant,
    acked: Instant,
}

/// Submits petitions `range` as fast as `concurrency` connections go.
async fn drive_max(addr: &str, bodies: &Arc<Bodies>, range: std::ops::Range<usize>, concurrency: usize) -> Result<Vec<Sent>, BenchError> {
    let next = Arc::new(AtomicUsize::new(range.start));
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (next, bodies, addr, end) = (next.clone(), bodies.clone(), addr.to_owned(), range.end);
        workers.push(tokio::spawn(async move {
            let mut client = http::Client::connect(&addr).await?;
            let mut sent = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    return Ok::<_, BenchError>(sent);
                }
                let (body, key) = bodies.petition(i);
                let start = Instant::now();
                let ticket = client.petition(body, &key).await?;
                sent.push(Sent { ticket, start, acked: Instant::now() });
            }
        }));
    }
    collect(workers).await
}

/// Submits petitions `range` at `rate` per second, open loop: each is due at its own time whatever happened to
/// the ones before, and latency counts from when it was due (a stalled system cannot hide its stall).
async fn drive_rate(addr: &str, bodies: &Arc<Bodies>, range: std::ops::Range<usize>, rate: f64, connections: usize) -> Result<Vec<Sent>, BenchError> {
    let (tx, rx) = tokio::sync::mpsc::channel::<(usize, Instant)>(range.len().max(1));
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut workers = Vec::new();
    for _ in 0..connections.max(1) {
        let (rx, bodies, addr) = (rx.clone(), bodies.clone(), addr.to_owned());
        workers.push(tokio::spawn(async move {
            let mut client = http::Client::connect(&addr).await?;
            let mut sent = Vec::new();
            loop {
                let job = rx.lock().await.recv().await;
                let Some((i, due)) = job else { return Ok::<_, BenchError>(sent) };
                let (body, key) = bodies.petition(i);
                let ticket = client.petition(body, &key).await?;
                sent.push(Sent { ticket, start: due, acked: Instant::now() });
            }
        }));
    }
    let t0 = Instant::now() + Duration::from_millis(20);
    for (k, i) in range.enumerate() {
        let due = t0 + Duration::from_secs_f64(k as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        if tx.send((i, due)).await.is_err() {
            break;
        }
    }
    drop(tx);
    collect(workers).await
}

async fn collect(workers: Vec<tokio::task::JoinHandle<Result<Vec<Sent>, BenchError>>>) -> Result<Vec<Sent>, BenchError> {
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.map_err(|e| BenchError::System(format!("a client task failed: {e}")))??);
    }
    all.sort_by_key(|s| s.start);
    Ok(all)
}

/// Generous limit for the system to route and project what it acknowledged.
fn catch_up_limit(petitions: usize) -> Duration {
    Duration::from_secs(120 + petitions as u64 / 100)
}

/// Runs every measurement; `progress` gets a line per step.
pub async fn run(opts: &Options, progress: impl Fn(&str)) -> Result<Report, BenchError> {
    if opts.petitions == 0 || opts.concurrency == 0 || opts.raw_messages == 0 || !positive(opts.rate) || !positive(opts.latency_secs) {
        return Err(BenchError::Invalid("petitions, concurrency, raw messages, rate and latency seconds must be positive".to_owned()));
    }
    if !opts.hotline.is_file() {
        return Err(BenchError::Invalid(format!(
            "no hotline binary at {} (build it: cargo build --release -p hotline, or pass --hotline)",
            opts.hotline.display()
        )));
    }
    let temp = if opts.data_dir.is_none() { Some(tempfile::tempdir()?) } else { None };
    let data_dir = match (&opts.data_dir, &temp) {
        (Some(dir), _) => dir.clone(),
        (None, t) => t.as_ref().map(|t| t.path().join("data")).unwrap_or_default(),
    };
    let mut report = Report::new(opts, &report::machine());

    progress(&format!("starting {} up on {}", opts.hotline.display(), data_dir.display()));
    let mut system = tokio::task::block_in_place(|| System::start(&opts.hotline, &data_dir))?;
    let nats_url = system.nats_url()?;
    report.nats_server = nats_version(&data_dir);
    let log_store = Arc::new(JetStreamStore::connect(&nats_url, JetStreamConfig::default()).await?);
    let store: Arc<dyn EventStore> = log_store.clone();
    let projections = data_dir.join("projections.sqlite");
    let tracker = Tracker::start(log_store.clone(), &projections).await?;
    let bodies = Arc::new(Bodies::new()?);
    let mut next = 0;

    progress(&format!("warm-up: {WARMUP} petitions"));
    let warm = drive_max(&system.addr, &bodies, next..next + WARMUP, opts.concurrency.min(8)).await?;
    next += WARMUP;
    let tickets: Vec<Uuid> = warm.iter().map(|s| s.ticket).collect();
    tracker.wait_routed(&tickets, catch_up_limit(WARMUP)).await?;

    progress(&format!("raw limit: {} appends pipelined, then one at a time", opts.raw_messages));
    let js = raw::connect(&nats_url).await?;
    let template = raw::template(&js).await?;
    let raw = raw::appends(&js, &template, opts.raw_messages).await?;
    report.raw_appends = Some(raw.clone());

    progress(&format!("maximum throughput: {} petitions over {} connections", opts.petitions, opts.concurrency));
    let feed = raw::FeedWatch::connect(&nats_url, &js).await?;
    let feed_before = feed.progress().await?;
    let started = Instant::now();
    let sent = drive_max(&system.addr, &bodies, next..next + opts.petitions, opts.concurrency).await?;
    next += opts.petitions;
    let acked = sent.iter().map(|s| s.acked).max().unwrap_or(started);
    let tickets: Vec<Uuid> = sent.iter().map(|s| s.ticket).collect();
    let routed = tracker.wait_routed(&tickets, catch_up_limit(opts.petitions)).await?;
    let last_routed = routed.iter().map(|r| r.at).max().unwrap_or(acked);
    let last_position = routed.iter().map(|r| r.position).max().unwrap_or(0);
    let projected = tracker.wait_projected(last_position, catch_up_limit(opts.petitions)).await?;
    let per_s = |end: Instant| opts.petitions as f64 / end.duration_since(started).as_secs_f64();
    let end_to_end = per_s(projected.max(last_routed));
    report.throughput = Some(report::Throughput {
        petitions: opts.petitions,
        connections: opts.concurrency,
        acknowledged_per_s: per_s(acked),
        routed_per_s: per_s(last_routed),
        end_to_end_per_s: end_to_end,
        ratio_to_pipelined: end_to_end / raw.pipelined_per_s,
        ratio_to_one_at_a_time: end_to_end / raw.one_at_a_time_per_s,
        acknowledgement: Latency::of(sent.iter().map(|s| s.acked - s.start).collect()),
    });

    let feed_then = feed.progress().await?;
    let run_seconds = started.elapsed().as_secs_f64();
    progress(&format!("feed: waiting for it to reach log position {}", feed_then.log_position));
    let (caught_up, feed_caught) = wait_feed(&feed, feed_then.log_position, catch_up_limit(opts.petitions)).await?;
    report.feed_catch_up = Some(report::FeedCatchUp {
        during_run_per_s: feed_then.feed_messages.saturating_sub(feed_before.feed_messages) as f64 / run_seconds,
        seconds: caught_up.as_secs_f64(),
        catch_up_per_s: feed_caught.feed_messages.saturating_sub(feed_then.feed_messages) as f64 / caught_up.as_secs_f64().max(1e-3),
    });
    report.feed_after_throughput = Some(feed_then);

    let rate = if end_to_end < opts.rate { (end_to_end * 0.8).floor().max(1.0) } else { opts.rate };
    let count = ((rate * opts.latency_secs).round() as usize).max(1);
    progress(&format!("latency: {count} petitions at {rate:.0}/s"));
    let sent = drive_rate(&system.addr, &bodies, next..next + count, rate, opts.concurrency).await?;
    next += count;
    let tickets: Vec<Uuid> = sent.iter().map(|s| s.ticket).collect();
    let routed = tracker.wait_routed(&tickets, catch_up_limit(count)).await?;
    let last_position = routed.iter().map(|r| r.position).max().unwrap_or(0);
    tracker.wait_projected(last_position, catch_up_limit(count)).await?;
    let mut visible = Vec::with_capacity(sent.len());
    for (s, r) in sent.iter().zip(&routed) {
        if let Some(at) = tracker.projected_at(r.position)? {
            visible.push(at.saturating_duration_since(s.start));
        }
    }
    report.latency = Some(report::Latencies {
        rate_requested: opts.rate,
        rate_used: rate,
        petitions: count,
        acknowledgement: Latency::of(sent.iter().map(|s| s.acked - s.start).collect()),
        routed: Latency::of(sent.iter().zip(&routed).map(|(s, r)| r.at.saturating_duration_since(s.start)).collect()),
        visible: Latency::of(visible),
    });

    if opts.tickets > next {
        progress(&format!("filling the log to {} tickets through the intake", opts.tickets));
        let fill_started = Instant::now();
        let mut done = next;
        // In slices, so progress shows and memory for the answers stays small.
        while done < opts.tickets {
            let end = (done + 20_000).min(opts.tickets);
            drive_max(&system.addr, &bodies, done..end, opts.concurrency).await?;
            done = end;
            progress(&format!("  {done} tickets submitted, {} routed, {:.0}/s", tracker.routed_count(), (done - next) as f64 / fill_started.elapsed().as_secs_f64()));
        }
        tracker.wait_routed_count(done as u64, catch_up_limit(done)).await?;
        let fill_seconds = fill_started.elapsed().as_secs_f64();
        report.fill = Some(report::Fill { tickets: done - next, seconds: fill_seconds, per_s: (done - next) as f64 / fill_seconds });
        next = done;
    }
    let log_end = store.last_position().await?;
    tracker.wait_projected(log_end, catch_up_limit(next)).await?;
    report.memory_running = Some(report::ProcessMemory {
        hotline: system.pid().and_then(system::memory).unwrap_or_default(),
        nats_server: system.nats_pid().and_then(system::memory).unwrap_or_default(),
    });

    progress(&format!("replay: hotline replay of {log_end} commits, and a raw ordered read of the same log"));
    let ordered = raw::ordered_read(&js).await?;
    let replay = replay(&opts.hotline, &data_dir).await?;
    report.replay = Some(report::Replay {
        commits: replay.commits,
        events: replay.events,
        seconds: replay.seconds,
        events_per_s: replay.events as f64 / replay.seconds,
        commits_per_s: replay.commits as f64 / replay.seconds,
        ordered_read: ordered.clone(),
        ratio: (replay.commits as f64 / replay.seconds) / ordered.messages_per_s,
    });

    progress(&format!("memory: restarting on {next} tickets with the projections removed"));
    drop(tracker);
    drop(js);
    drop(store);
    tokio::task::block_in_place(|| system.stop())?;
    remove_projections(&data_dir)?;
    let restarted = Instant::now();
    let system_again = tokio::task::block_in_place(|| System::start(&opts.hotline, &data_dir))?;
    system = system_again;
    let caught_up = wait_caught_up(&system.addr, log_end, catch_up_limit(next)).await?;
    report.memory_restart = Some(report::Restart {
        tickets: next,
        log_commits: log_end,
        catch_up_seconds: caught_up.duration_since(restarted).as_secs_f64(),
        hotline: system.pid().and_then(system::memory).unwrap_or_default(),
        nats_server: system.nats_pid().and_then(system::memory).unwrap_or_default(),
    });
    tokio::task::block_in_place(|| system.stop())?;
    drop(temp);
    Ok(report)
}

/// Polls the feed until its last message comes from log position `position` or later; returns how long that took
/// and where the feed stood then.
async fn wait_feed(feed: &raw::FeedWatch, position: u64, limit: Duration) -> Result<(Duration, raw::FeedProgress), BenchError> {
    let started = Instant::now();
    loop {
        let now = feed.progress().await?;
        if now.feed_log_position >= position {
            return Ok((started.elapsed(), now));
        }
        if started.elapsed() > limit {
            return Err(BenchError::Timeout(format!("the feed did not reach log position {position} within {limit:?} (at {})", now.feed_log_position)));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `nats-server --version` of the embedded server, from its log.
fn nats_version(data_dir: &Path) -> String {
    let log = std::fs::read_to_string(data_dir.join("nats").join("nats-server.log")).unwrap_or_default();
    log.lines()
        .find_map(|l| l.split("Version:").nth(1).map(|v| v.trim().to_owned()))
        .unwrap_or_else(|| "unknown".to_owned())
}

struct Replayed {
    events: u64,
    commits: u64,
    seconds: f64,
}

/// Runs `hotline replay` against the running system; reads the events and log position from its last progress line.
async fn replay(hotline: &Path, data_dir: &Path) -> Result<Replayed, BenchError> {
    let started = Instant::now();
    let output = tokio::process::Command::new(hotline)
        .arg("replay")
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("NATS_URL")
        .stdin(std::process::Stdio::null())
        .output()
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(BenchError::System(format!("hotline replay failed ({}): {stderr}", output.status)));
    }
    // "replay: <events> events, log position <p>/<target>, <rate> events/s"
    let last = stderr.lines().rev().find_map(|l| {
        let rest = l.strip_prefix("replay: ")?;
        let (events, rest) = rest.split_once(" events, log position ")?;
        let (position, _) = rest.split_once('/')?;
        Some((events.parse().ok()?, position.parse().ok()?))
    });
    let (events, commits) = last.ok_or_else(|| BenchError::System(format!("hotline replay printed no progress line: {stderr}")))?;
    Ok(Replayed { events, commits, seconds })
}

/// Removes the projection file (and its link, generations and WAL files) so the next start rebuilds it from the log.
fn remove_projections(data_dir: &Path) -> Result<(), BenchError> {
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with("projections.sqlite") {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Polls `/healthz` until the projection has applied `position`; returns when it was seen.
async fn wait_caught_up(addr: &str, position: u64, limit: Duration) -> Result<Instant, BenchError> {
    let deadline = Instant::now() + limit;
    let mut client = http::Client::connect(addr).await?;
    loop {
        let health = client.health().await?;
        if health.get("projection_position").and_then(serde_json::Value::as_u64).is_some_and(|p| p >= position) {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            return Err(BenchError::Timeout(format!("the restarted system's projection did not reach {position} within {limit:?}: {health}")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A finite number above zero (NaN is not).
fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}
