//! The raw limit: what JetStream itself does on the same nats-server with the same durability, through
//! async-nats directly. This is the one place outside hotline-store that speaks NATS (docs/adr/0009): it has to,
//! to measure the floor under hotline-store.
//!
//! The message appended is a copy of a real stored `PetitionReceived` commit (payload and our headers), so the
//! size is the system's own whatever the envelope becomes. It goes to a stream of the bench's (`BENCH_RAW`, file
//! storage, one replica, like the log), deleted afterwards.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config, StorageType};
use async_nats::jetstream::{self as js, context::Context};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Serialize;
use uuid::Uuid;

use crate::error::nats;
use crate::{BenchError, Latency};

/// The log's stream (hotline-store's default name).
const LOG_STREAM: &str = "HOTLINE_EVENTS";
const RAW_STREAM: &str = "BENCH_RAW";
/// Acks awaited at most at once when pipelining (async-nats blocks past 5,000).
const WINDOW: usize = 1_024;
/// Any request to the server.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A stored commit to copy.
#[derive(Clone)]
pub struct Template {
    pub payload: Bytes,
    /// Our own headers (not `Nats-*`).
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Appends {
    pub payload_bytes: usize,
    pub messages: usize,
    /// Published without waiting for each ack (a window of acks in flight).
    pub pipelined_per_s: f64,
    /// One at a time, each with `Nats-Expected-Last-Subject-Sequence: 0` (as intake appends), waiting for its ack.
    pub one_at_a_time_per_s: f64,
    pub one_at_a_time_latency: Latency,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrderedRead {
    pub messages: u64,
    pub seconds: f64,
    pub messages_per_s: f64,
    pub megabytes_per_s: f64,
}

/// Connects with the URL's credentials (async-nats does not take them from the URL).
pub async fn connect(url: &str) -> Result<Context, BenchError> {
    let (bare, user) = split_credentials(url);
    let mut options = async_nats::ConnectOptions::new()
        .name("hotline-bench")
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(REQUEST_TIMEOUT));
    if let Some((user, password)) = user {
        options = options.user_and_password(user, password);
    }
    let client = options.connect(bare.as_str()).await.map_err(|e| nats("connecting")(&e))?;
    Ok(js::ContextBuilder::new().timeout(REQUEST_TIMEOUT).build(client))
}

/// The first commit of the log (the first petition's `PetitionReceived`).
pub async fn template(js: &Context) -> Result<Template, BenchError> {
    let stream = js.get_stream(LOG_STREAM).await.map_err(|e| nats("opening the log")(&e))?;
    let message = stream.get_raw_message(1).await.map_err(|e| nats("reading the log's first commit")(&e))?;
    let headers = message
        .headers
        .iter()
        .filter(|(name, _)| !name.to_string().to_ascii_lowercase().starts_with("nats-"))
        .flat_map(|(name, values)| values.iter().map(move |v| (name.to_string(), v.as_str().to_owned())))
        .collect();
    Ok(Template { payload: message.payload, headers })
}

/// Appends `n` copies pipelined, then `n` one at a time, to a fresh `BENCH_RAW` stream; deletes it after.
pub async fn appends(js: &Context, template: &Template, n: usize) -> Result<Appends, BenchError> {
    let _ = js.delete_stream(RAW_STREAM).await;
    js.create_stream(Config {
        name: RAW_STREAM.to_owned(),
        subjects: vec!["bench.raw.>".to_owned()],
        storage: StorageType::File,
        num_replicas: 1,
        allow_direct: true,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .map_err(|e| nats("creating the raw stream")(&e))?;
    let result = measure(js, template, n).await;
    let _ = js.delete_stream(RAW_STREAM).await;
    result
}

async fn measure(js: &Context, template: &Template, n: usize) -> Result<Appends, BenchError> {
    let message = |expected: Option<u64>| {
        let mut headers = HeaderMap::new();
        for (name, value) in &template.headers {
            headers.insert(name.as_str(), value.as_str());
        }
        let mut m = PublishMessage::build().payload(template.payload.clone()).headers(headers).message_id(Uuid::now_v7().to_string());
        if let Some(expected) = expected {
            m = m.expected_last_subject_sequence(expected);
        }
        m
    };
    // Pipelined: a subject per message (a ticket each), acks collected in a window.
    let started = Instant::now();
    let mut acks = VecDeque::with_capacity(WINDOW);
    for _ in 0..n {
        if acks.len() == WINDOW
            && let Some(ack) = acks.pop_front()
        {
            await_ack(ack).await?;
        }
        let ack = js
            .send_publish(format!("bench.raw.p.{}", Uuid::now_v7()), message(None))
            .await
            .map_err(|e| nats("publishing")(&e))?;
        acks.push_back(ack);
    }
    while let Some(ack) = acks.pop_front() {
        await_ack(ack).await?;
    }
    let pipelined_per_s = n as f64 / started.elapsed().as_secs_f64();

    // One at a time, as a single intake appends: a new subject expected empty, and wait.
    let mut latencies = Vec::with_capacity(n);
    let started = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let ack = js
            .send_publish(format!("bench.raw.s.{}", Uuid::now_v7()), message(Some(0)))
            .await
            .map_err(|e| nats("publishing")(&e))?;
        await_ack(ack).await?;
        latencies.push(t.elapsed());
    }
    let one_at_a_time_per_s = n as f64 / started.elapsed().as_secs_f64();
    Ok(Appends {
        payload_bytes: template.payload.len(),
        messages: n,
        pipelined_per_s,
        one_at_a_time_per_s,
        one_at_a_time_latency: Latency::of(latencies),
    })
}

async fn await_ack(ack: js::context::PublishAckFuture) -> Result<(), BenchError> {
    ack.await.map(|_| ()).map_err(|e| nats("publish ack")(&e))
}

/// Reads the whole log with an ordered consumer (no decoding): the floor under any replay.
pub async fn ordered_read(js: &Context) -> Result<OrderedRead, BenchError> {
    let mut stream = js.get_stream(LOG_STREAM).await.map_err(|e| nats("opening the log")(&e))?;
    let total = stream.info().await.map_err(|e| nats("reading the log's info")(&e))?.state.messages;
    let started = Instant::now();
    let consumer = stream
        .create_consumer(OrderedConfig { deliver_policy: DeliverPolicy::All, ..Default::default() })
        .await
        .map_err(|e| nats("creating an ordered consumer")(&e))?;
    let mut messages = consumer.messages().await.map_err(|e| nats("reading the log")(&e))?;
    let (mut count, mut bytes) = (0u64, 0u64);
    while count < total {
        let next = tokio::time::timeout(REQUEST_TIMEOUT, messages.next())
            .await
            .map_err(|_| BenchError::Timeout(format!("the ordered read stalled at {count} of {total} messages")))?;
        match next {
            Some(Ok(m)) => {
                count += 1;
                bytes += m.payload.len() as u64;
            }
            Some(Err(e)) => return Err(nats("reading the log")(&e)),
            None => return Err(BenchError::Nats(format!("the ordered read ended at {count} of {total} messages"))),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(OrderedRead { messages: count, seconds, messages_per_s: count as f64 / seconds, megabytes_per_s: bytes as f64 / 1e6 / seconds })
}

/// `nats://user:password@host:port` -> (`nats://host:port`, user and password).
fn split_credentials(url: &str) -> (String, Option<(String, String)>) {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return (url.to_owned(), None) };
    let rest = &url[scheme_end..];
    let Some(at) = rest.rfind('@') else { return (url.to_owned(), None) };
    let bare = format!("{}{}", &url[..scheme_end], &rest[at + 1..]);
    match rest[..at].split_once(':') {
        Some((user, password)) => (bare, Some((user.to_owned(), password.to_owned()))),
        None => (bare, None),
    }
}

#[cfg(test)]
mod tests {
    use super::split_credentials;

    #[test]
    fn credentials_are_taken_out_of_the_url() {
        assert_eq!(
            split_credentials("nats://hotline:s3cret@127.0.0.1:4222"),
            ("nats://127.0.0.1:4222".to_owned(), Some(("hotline".to_owned(), "s3cret".to_owned())))
        );
        assert_eq!(split_credentials("nats://127.0.0.1:4222"), ("nats://127.0.0.1:4222".to_owned(), None));
    }
}

/// How far the published feed (account FEED, written by the feed projector) has got in the log.
#[derive(Debug, Clone, Serialize)]
pub struct FeedProgress {
    /// The log's last position when looked at.
    pub log_position: u64,
    /// The log position of the feed's last message (0: nothing published yet).
    pub feed_log_position: u64,
    pub feed_messages: u64,
}

/// Reads the feed's tip as its writer (`hotline-feed`, same password as the internal user on the embedded server)
/// and the log's, over connections made once: it is polled while the system catches up.
pub struct FeedWatch {
    log: Context,
    feed: Context,
}

impl FeedWatch {
    pub async fn connect(internal_url: &str, log: &Context) -> Result<FeedWatch, BenchError> {
        let (bare, user) = split_credentials(internal_url);
        let password = user.map(|(_, p)| p).unwrap_or_default();
        let client = async_nats::ConnectOptions::new()
            .name("hotline-bench-feed")
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(REQUEST_TIMEOUT))
            .user_and_password(hotline_store::access::FEED_USER.to_owned(), password)
            .connect(bare.as_str())
            .await
            .map_err(|e| nats("connecting as the feed's writer")(&e))?;
        let feed = js::ContextBuilder::new().timeout(REQUEST_TIMEOUT).build(client);
        Ok(FeedWatch { log: log.clone(), feed })
    }

    pub async fn progress(&self) -> Result<FeedProgress, BenchError> {
        let mut log_stream = self.log.get_stream(LOG_STREAM).await.map_err(|e| nats("opening the log")(&e))?;
        let log_position = log_stream.info().await.map_err(|e| nats("reading the log's info")(&e))?.state.last_sequence;
        let mut stream = self.feed.get_stream(hotline_store::access::FEED_STREAM).await.map_err(|e| nats("opening the feed")(&e))?;
        let feed_messages = stream.info().await.map_err(|e| nats("reading the feed's info")(&e))?.state.messages;
        let feed_log_position = match stream.get_last_raw_message_by_subject(&format!("{}.>", hotline_store::access::FEED_SUBJECT_PREFIX)).await {
            Ok(m) => m.headers.get(hotline_store::LOG_POSITION_HEADER).and_then(|v| v.as_str().parse().ok()).unwrap_or(0),
            Err(_) => 0,
        };
        Ok(FeedProgress { log_position, feed_log_position, feed_messages })
    }
}
