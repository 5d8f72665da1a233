//! The published feed on JetStream: the stream `HOTLINE_FEED` (subjects `hotline.feed.v1.>`) that other systems of
//! the province subscribe to, and the two operations its projector needs: read the feed's last message, and append
//! a message only if the feed is still where the projector last saw it.
//!
//! Every feed message carries where it comes from in the log (`Hotline-Log-Position`: the log sequence of the
//! commit; `Hotline-Part: i/n`: the i-th of that commit's n feed messages). The projector resumes from the feed's
//! own last message, so restarts never publish twice or skip, whatever the deduplication window; appends state the
//! expected last sequence, so two projectors running at once cannot interleave (the loser re-reads and goes on).
//!
//! Nothing else changes the feed, with one exception: when a ticket's personal data is erased, the projector erases
//! the ticket's earlier agency copies (`find` by the ticket's subjects, then `erase`): JetStream's message delete,
//! which overwrites the message's bytes in the store files (not a purge, which only drops the index). The stream
//! therefore allows deletes; its subscribers' permissions do not (`access.rs`), and purges stay denied.

use std::str::FromStr;
use std::time::Duration;

use async_nats::HeaderName;
use async_nats::jetstream::context::{CreateStreamErrorKind, PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, DeleteMessageErrorKind, LastRawMessageErrorKind, StorageType};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::jetstream::{UrlCredentials, split_credentials};
use crate::{FeedEntry, FeedError, FeedLog, FeedMark, FeedStored, FeedTip, JetStreamConfig, StoreError};

/// Header: the log position (stream sequence of the log) of the commit a feed message comes from.
pub const LOG_POSITION_HEADER: &str = "Hotline-Log-Position";
/// Header: `<i>/<n>`, the i-th (1-based) of the n feed messages of that commit.
pub const PART_HEADER: &str = "Hotline-Part";
/// Header: the id of the log (`EventStore::log_id`) the message was derived from; the projector stamps it (as an
/// attribute) and resumes only from a feed whose last message names its own log.
pub const LOG_ID_HEADER: &str = "Hotline-Log-Id";

/// The deduplication id header JetStream reads.
const MSG_ID_HEADER: &str = "Nats-Msg-Id";

/// The published feed on JetStream. Cheap to clone.
#[derive(Clone)]
pub struct JetStreamFeed {
    stream: stream::Stream,
    js: async_nats::jetstream::Context,
    /// `<feed prefix>.`: every subject published must start with it.
    prefix: String,
}

impl JetStreamFeed {
    /// Connects to `url` as the feed's writer and opens the published feed, creating its stream if it does not
    /// exist (file storage, `cfg.replicas`, purges denied, deletes allowed for erasure). The feed may live in
    /// another NATS account than the log (our own server keeps it in account `FEED`, see `access.rs`), hence its
    /// own connection. Refuses a feed whose subjects would overlap the log's, an existing stream that allows purges
    /// or is not on file storage, and one made before erasure existed (deletes denied, which NATS cannot lift).
    pub async fn connect(url: &str, cfg: &JetStreamConfig) -> Result<JetStreamFeed, StoreError> {
        // Credentials ride in the URL, as for the log's connection.
        let (url, credentials) = split_credentials(url);
        let options = match credentials {
            Some(UrlCredentials::UserPassword(user, password)) => async_nats::ConnectOptions::new().user_and_password(user, password),
            Some(UrlCredentials::Token(token)) => async_nats::ConnectOptions::new().token(token),
            None => async_nats::ConnectOptions::new(),
        };
        let client = options
            .name("hotline-feed")
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(cfg.request_timeout))
            .reconnect_delay_callback(|attempts| Duration::from_millis((attempts as u64 * 100).min(1_000)))
            .connect(crate::jetstream::seeds(&url))
            .await
            .map_err(unavailable)?;
        let js = async_nats::jetstream::ContextBuilder::new().timeout(cfg.request_timeout).build(client);
        JetStreamFeed::open(js, cfg).await
    }

    async fn open(js: async_nats::jetstream::Context, cfg: &JetStreamConfig) -> Result<JetStreamFeed, StoreError> {
        let log_subjects = format!("{}.>", cfg.subject_prefix);
        let feed_subjects = format!("{}.>", cfg.feed_subject_prefix);
        if subjects_overlap(&log_subjects, &feed_subjects) {
            return Err(StoreError::Rejected(format!(
                "the feed's subjects {feed_subjects} overlap the log's {log_subjects}: the log would be published"
            )));
        }
        let mut stream = js
            .get_or_create_stream(stream::Config {
                name: cfg.feed_stream.clone(),
                description: Some("Published integration events (hotline.v1), derived from the log by its projector".to_owned()),
                subjects: vec![feed_subjects.clone()],
                storage: StorageType::File,
                num_replicas: cfg.replicas,
                // What was published stays published (subscribers resume from sequences and times), except the
                // single messages erasure removes.
                deny_delete: false,
                deny_purge: true,
                // Exactly-once does not rely on it (the expected last sequence does).
                duplicate_window: cfg.feed_duplicate_window,
                ..Default::default()
            })
            .await
            .map_err(|e| match e.kind() {
                CreateStreamErrorKind::JetStream(err) => {
                    StoreError::Rejected(format!("cannot create stream {}: {err}", cfg.feed_stream))
                }
                _ => unavailable(e),
            })?;
        // An existing stream is taken as it is: check that it is still the feed we promise.
        let info = stream.info().await.map_err(unavailable)?;
        let c = &info.config;
        if c.subjects != [feed_subjects.clone()] || !c.deny_purge || c.storage != StorageType::File {
            return Err(StoreError::Rejected(format!(
                "stream {} exists with another configuration (subjects {:?}, deny_purge {}, storage {:?}); \
                 the feed needs subjects [{feed_subjects}], purges denied, file storage",
                cfg.feed_stream, c.subjects, c.deny_purge, c.storage
            )));
        }
        if c.deny_delete {
            // Made by a version without erasure. NATS cannot lift deny_delete on an existing stream (10052
            // "stream configuration update can not cancel deny message deletes"), and without deletes the agency
            // copies of an erased ticket would stay: the feed must be rebuilt from the log.
            return Err(StoreError::Rejected(format!(
                "stream {} denies message deletes (made before erasure existed), so erased personal data could not \
                 be removed from it, and NATS cannot change that on an existing stream: delete the stream (as the \
                 feed's user: `nats stream rm {}`); the projector rebuilds it from the log (docs/feed.md, \
                 \"Erasure\")",
                cfg.feed_stream, cfg.feed_stream
            )));
        }
        if c.num_replicas != cfg.replicas {
            tracing::warn!(stream = %cfg.feed_stream, has = c.num_replicas, configured = cfg.replicas, "feed stream replicas differ from nats.replicas");
        }
        Ok(JetStreamFeed { stream, js, prefix: format!("{}.", cfg.feed_subject_prefix) })
    }

    async fn last(&self) -> Result<FeedTip, StoreError> {
        let all = format!("{}>", self.prefix);
        let message = match self.stream.get_last_raw_message_by_subject(&all).await {
            Ok(m) => m,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(FeedTip { sequence: 0, mark: None }),
            Err(e) => return Err(unavailable(e)),
        };
        let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_owned());
        let mark = header(LOG_POSITION_HEADER)
            .zip(header(PART_HEADER))
            .and_then(|(position, part)| parse_mark(&position, &part))
            .ok_or_else(|| {
                // Only the projector writes the feed; a message without a readable mark means someone else did,
                // and resuming would be guesswork.
                StoreError::Rejected(format!(
                    "the feed's last message (sequence {}) has no valid {LOG_POSITION_HEADER} / {PART_HEADER} headers",
                    message.sequence
                ))
            })?;
        Ok(FeedTip { sequence: message.sequence, mark: Some(mark) })
    }

    async fn last_log_id(&self) -> Result<Option<String>, StoreError> {
        let all = format!("{}>", self.prefix);
        match self.stream.get_last_raw_message_by_subject(&all).await {
            Ok(m) => Ok(m.headers.get(LOG_ID_HEADER).map(|v| v.as_str().to_owned())),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn find(&self, filter: &str) -> Result<Vec<FeedStored>, StoreError> {
        if !filter.starts_with(&self.prefix) {
            return Err(StoreError::Rejected(format!("filter {filter:?} is not under the feed's {}>", self.prefix)));
        }
        // One request per message (next message on the filter from a sequence): a ticket has a few dozen at
        // most, and the server answers from its subject index.
        let mut found = Vec::new();
        let mut from = 1;
        loop {
            let message = match self.stream.get_first_raw_message_by_subject(filter, from).await {
                Ok(m) => m,
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(found),
                Err(e) if e.kind() == LastRawMessageErrorKind::InvalidSubject => {
                    return Err(StoreError::Rejected(format!("{filter:?} is not a subject filter")));
                }
                Err(e) => return Err(unavailable(e)),
            };
            let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_owned());
            let mark = header(LOG_POSITION_HEADER).zip(header(PART_HEADER)).and_then(|(p, part)| parse_mark(&p, &part));
            from = message.sequence + 1;
            found.push(FeedStored { sequence: message.sequence, subject: message.subject.to_string(), mark });
        }
    }

    async fn erase_all(&self, sequences: &[u64]) -> Result<(), StoreError> {
        if sequences.is_empty() {
            return Ok(());
        }
        let tip = self.last().await?.sequence;
        if let Some(seq) = sequences.iter().find(|s| **s >= tip) {
            return Err(StoreError::Rejected(format!(
                "feed message {seq} is the feed's tip ({tip}) or beyond: the projector resumes from the tip"
            )));
        }
        for &sequence in sequences {
            // The request carries no `no_erase`: the server overwrites the message in its store files.
            match self.stream.delete_message(sequence).await {
                Ok(_) => {}
                Err(e) if matches!(e.kind(), DeleteMessageErrorKind::JetStream(_)) => {
                    // Already removed (by an earlier attempt or a second projector) is what we wanted.
                    match self.stream.get_raw_message(sequence).await {
                        Err(g) if g.kind() == LastRawMessageErrorKind::NoMessageFound => {}
                        _ => return Err(StoreError::Rejected(format!("cannot erase feed message {sequence}: {e}"))),
                    }
                }
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(())
    }

    async fn append(&self, expected: u64, entry: &FeedEntry) -> Result<u64, FeedError> {
        let message = self.message(expected, entry)?;
        let result = match self.js.send_publish(entry.subject.clone(), message).await {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        outcome(result, entry)
    }

    /// Appends `entries` in order, pipelined: all are sent before the first acknowledgement is awaited, the i-th
    /// expecting `expected + i` (the feed's sequences are contiguous: nothing else appends, and erasure deletes do
    /// not move the last sequence). The server takes one connection's publishes in order, so each is stored right
    /// after the one before, or fails when the feed is elsewhere: a message is only ever stored at the one sequence
    /// it was computed for, as with one publish at a time. The first failure is returned (the caller reads the tip
    /// again); otherwise the sequence of the last entry.
    async fn append_all(&self, expected: u64, entries: &[FeedEntry]) -> Result<u64, FeedError> {
        let mut acks = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let message = self.message(expected + i as u64, entry)?;
            match self.js.send_publish(entry.subject.clone(), message).await {
                Ok(ack) => acks.push(ack),
                // The ones already sent may be stored: the caller reads the tip again (after any error), which tells.
                Err(e) => return Err(failure(e, entry)),
            }
        }
        let mut last = expected;
        for (ack, entry) in acks.into_iter().zip(entries) {
            last = outcome(ack.await, entry)?;
        }
        Ok(last)
    }

    /// The message that appends `entry` at `expected`, after checking what the projector asks for.
    fn message(&self, expected: u64, entry: &FeedEntry) -> Result<PublishMessage, FeedError> {
        if !entry.subject.starts_with(&self.prefix) || entry.subject.len() == self.prefix.len() {
            return Err(rejected(format!("subject {:?} is not under the feed's {}>", entry.subject, self.prefix)));
        }
        let FeedMark { position, part, parts } = entry.mark;
        if part == 0 || part > parts {
            return Err(rejected(format!("part {part}/{parts} of a commit is not a part")));
        }
        let mut message = PublishMessage::build()
            .payload(entry.payload.clone().into())
            .message_id(&entry.id)
            .expected_last_sequence(expected)
            .header(LOG_POSITION_HEADER, position.to_string().as_str())
            .header(PART_HEADER, format!("{part}/{parts}").as_str());
        for (name, value) in &entry.attributes {
            let parsed = HeaderName::from_str(name).map_err(|_| rejected(format!("{name:?} is not a header name")))?;
            // The message id is set from `entry.id`; an attribute may repeat it (CloudEvents: `Nats-Msg-Id` = ce-id).
            if name.eq_ignore_ascii_case(MSG_ID_HEADER) && *value == entry.id {
                continue;
            }
            if is_transport_header(name) {
                return Err(rejected(format!("attribute {name} would override a transport header")));
            }
            if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                return Err(rejected(format!("header {name} must be printable ASCII (percent-encode it)")));
            }
            message = message.header(parsed, value.as_str());
        }
        Ok(message)
    }
}

/// What a publish's acknowledgement means for the feed: the new sequence, a conflict, or a failure.
fn outcome(result: Result<async_nats::jetstream::publish::PublishAck, PublishError>, entry: &FeedEntry) -> Result<u64, FeedError> {
    match result {
        // A duplicate id means this very message is already in the feed: our position is stale.
        Ok(ack) if ack.duplicate => Err(FeedError::Conflict),
        Ok(ack) => Ok(ack.sequence),
        Err(e) => Err(failure(e, entry)),
    }
}

fn failure(e: PublishError, entry: &FeedEntry) -> FeedError {
    match e.kind() {
        PublishErrorKind::WrongLastSequence => FeedError::Conflict,
        // It may have been stored: the caller re-reads the tip, which tells.
        PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe | PublishErrorKind::StreamNotFound => {
            StoreError::OutcomeUnknown(e.to_string()).into()
        }
        _ => rejected(format!("feed publish to {}: {e}", entry.subject)),
    }
}

impl FeedLog for JetStreamFeed {
    fn tip(&self) -> BoxFuture<'_, Result<FeedTip, StoreError>> {
        self.last().boxed()
    }

    fn publish<'a>(&'a self, expected: u64, entry: &'a FeedEntry) -> BoxFuture<'a, Result<u64, FeedError>> {
        self.append(expected, entry).boxed()
    }

    fn publish_all<'a>(&'a self, expected: u64, entries: &'a [FeedEntry]) -> BoxFuture<'a, Result<u64, FeedError>> {
        self.append_all(expected, entries).boxed()
    }

    fn last_log_id(&self) -> BoxFuture<'_, Result<Option<String>, StoreError>> {
        JetStreamFeed::last_log_id(self).boxed()
    }

    fn find<'a>(&'a self, filter: &'a str) -> BoxFuture<'a, Result<Vec<FeedStored>, StoreError>> {
        JetStreamFeed::find(self, filter).boxed()
    }

    fn erase<'a>(&'a self, sequences: &'a [u64]) -> BoxFuture<'a, Result<(), StoreError>> {
        self.erase_all(sequences).boxed()
    }
}

/// Reads the mark headers: a position and `i/n` with 1 <= i <= n.
fn parse_mark(position: &str, part: &str) -> Option<FeedMark> {
    let position = position.trim().parse().ok()?;
    let (i, n) = part.trim().split_once('/')?;
    let (part, parts): (u32, u32) = (i.parse().ok()?, n.parse().ok()?);
    (part >= 1 && part <= parts).then_some(FeedMark { position, part, parts })
}

/// Headers the store sets itself; an attribute may not replace them.
fn is_transport_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("nats-") || lower == LOG_POSITION_HEADER.to_ascii_lowercase() || lower == PART_HEADER.to_ascii_lowercase()
}

/// Whether two NATS subject filters can match a common subject (`*` matches one token, `>` the rest).
fn subjects_overlap(a: &str, b: &str) -> bool {
    let (mut a, mut b) = (a.split('.'), b.split('.'));
    loop {
        match (a.next(), b.next()) {
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some(x), Some(y)) if x == y || x == "*" || y == "*" => continue,
            (None, None) => return true,
            _ => return false,
        }
    }
}

fn rejected(reason: String) -> FeedError {
    FeedError::Store(StoreError::Rejected(reason))
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_filters_overlap_when_some_subject_matches_both() {
        assert!(!subjects_overlap("hotline.events.>", "hotline.feed.v1.>"));
        assert!(subjects_overlap("hotline.>", "hotline.feed.v1.>"));
        assert!(subjects_overlap("hotline.feed.v1.>", "hotline.>"));
        assert!(subjects_overlap("hotline.*.v1.>", "hotline.feed.>"));
        assert!(subjects_overlap("hotline.feed.>", "hotline.feed.>"));
        assert!(!subjects_overlap("hotline.feed.a", "hotline.feed.b"));
        assert!(!subjects_overlap("hotline.feed", "hotline.feed.a"));
    }

    #[test]
    fn a_mark_is_a_position_and_a_part_within_its_count() {
        assert_eq!(parse_mark("42", "2/3"), Some(FeedMark { position: 42, part: 2, parts: 3 }));
        assert_eq!(parse_mark("42", "3/3"), Some(FeedMark { position: 42, part: 3, parts: 3 }));
        assert_eq!(parse_mark("42", "0/3"), None);
        assert_eq!(parse_mark("42", "4/3"), None);
        assert_eq!(parse_mark("x", "1/1"), None);
        assert_eq!(parse_mark("42", "1"), None);
        assert_eq!(parse_mark("-1", "1/1"), None);
    }

    #[test]
    fn attributes_cannot_replace_the_transport_headers() {
        assert!(is_transport_header("Nats-Msg-Id"));
        assert!(is_transport_header("nats-expected-last-sequence"));
        assert!(is_transport_header("hotline-part"));
        assert!(!is_transport_header("ce-id"));
    }
}
