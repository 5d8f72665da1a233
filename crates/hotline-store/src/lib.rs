//! The event store and bus. The only crate that knows NATS: subjects, streams, headers, consumers, the server
//! process. Everything above it speaks [`EventStore`], ticket ids and commits.
//!
//! A *commit* is the events of one command, stored as one log message so they are stored all or none
//! (docs/adr/0002). Each ticket's commits live on their own subject, so a ticket's history is read through the
//! subject index and every append can state the version it expects.

pub mod access;
pub mod audit;
mod command;
mod feed;
mod jetstream;
mod keys;
pub mod server;
mod tokens;

use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use hotline_domain::event::DecodeError;
use hotline_domain::{Envelope, Reference};
use time::OffsetDateTime;
use uuid::Uuid;

pub use command::{Cause, ExecuteError, Executed, OnConflict, execute};
pub use feed::{JetStreamFeed, LOG_ID_HEADER, LOG_POSITION_HEADER, PART_HEADER};
pub use jetstream::{JetStreamConfig, JetStreamStore};
pub use tokens::{TokenRecord, TokenRegistry};

/// A ticket's version as the store counts it: opaque to callers, 0 for a ticket with no events. On JetStream it
/// is the stream sequence of the ticket's last commit.
pub type Version = u64;

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The first commit ever stored.
    Start,
    /// The commit at this log position and everything after it.
    From(u64),
    /// The first commit stored at or after this time.
    Time(OffsetDateTime),
    /// Only what is stored from now on.
    New,
}

/// The events of one command, as stored.
#[derive(Debug, Clone)]
pub struct Commit {
    /// Position in the whole log (JetStream stream sequence): strictly increasing.
    pub position: u64,
    pub ticket_id: Uuid,
    pub events: Vec<Envelope>,
    /// When the log stored it.
    pub stored_at: OffsetDateTime,
    /// Each event's hash as stored (`hotline_domain::event::event_hash`, the link of its ticket's chain), in the
    /// order of `events`; empty for a commit that was never stored.
    pub hashes: Vec<String>,
}

/// A ticket's history as loaded for a decision.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub events: Vec<Envelope>,
    /// Pass this as the expected version of the next append.
    pub version: Version,
}

/// What a successful append returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The ticket's new version.
    pub version: Version,
    /// True when the store recognised this append as a retry of one it had already stored (the first ack was
    /// lost): nothing new was written.
    pub already_stored: bool,
}

/// Why an append did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Someone else appended to the ticket since it was loaded: reload, decide again, retry.
    #[error("the ticket changed since it was read (now at version {current})")]
    Conflict { current: Version },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An infrastructure failure: the caller cannot fix it by changing the request.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The log cannot be reached now (server down, leader election). Nothing was written. Retryable.
    #[error("the event log is unavailable: {0}")]
    Unavailable(String),
    /// A write was sent but not confirmed in time: it may or may not be stored. Retry the same write (same
    /// commit, same expectation): the store recognises its own earlier write.
    #[error("the write was not confirmed in time and may or may not be stored: {0}")]
    OutcomeUnknown(String),
    /// A stored message this code cannot read.
    #[error("stored message at position {position} cannot be read: {source}")]
    Decode { position: u64, source: DecodeError },
    /// Anything else the server refused.
    #[error("the event log refused the request: {0}")]
    Rejected(String),
}

/// A channel's state entry: its value and its revision (for a conditional write).
pub type StateEntry = (Vec<u8>, u64);

/// The outcome of claiming a reference for a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The reference now belongs to the ticket (or already did: a retry).
    Granted,
    /// Another ticket holds it: derive the next attempt.
    TakenBy(Uuid),
}

/// A commit delivered by a durable subscription; acknowledge it once its effects are stored.
pub struct Delivery {
    pub commit: Commit,
    /// How many times this commit has been delivered to this subscription, this time included (1 the first).
    pub attempt: u32,
    acker: Box<dyn Acker>,
}

/// How a backend acknowledges a delivery.
pub trait Acker: Send + Sync {
    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<(), StoreError>>;
    fn retry_later(self: Box<Self>, delay: Duration) -> BoxFuture<'static, Result<(), StoreError>>;
    /// Still working on it: the delivery is not handed to anyone else for another ack wait.
    fn progress(&self) -> BoxFuture<'_, Result<(), StoreError>>;
}

impl Delivery {
    pub fn new(commit: Commit, attempt: u32, acker: Box<dyn Acker>) -> Delivery {
        Delivery { commit, attempt, acker }
    }
    /// Done with it: it will not be delivered again.
    pub async fn ack(self) -> Result<(), StoreError> {
        self.acker.ack().await
    }
    /// Could not handle it now: deliver it again after `delay`.
    pub async fn retry_later(self, delay: Duration) -> Result<(), StoreError> {
        self.acker.retry_later(delay).await
    }

    /// Tells the log the delivery is still being worked on (long sends: a vendor API, a token refresh), so it is
    /// not redelivered to another process meanwhile.
    pub async fn in_progress(&self) -> Result<(), StoreError> {
        self.acker.progress().await
    }
}

/// Runs `handle` on every delivery of the durable subscription `consumer`, one at a time, until `shutdown`;
/// subscribes again after an error or a reconnection. `handle` acknowledges (or hands back) each delivery.
pub async fn consume<F, Fut>(store: &dyn EventStore, consumer: &str, mut shutdown: hotline_runtime::Shutdown, mut handle: F)
where
    F: FnMut(Delivery) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use futures_util::StreamExt;
    tracing::info!(%consumer, "consumer started");
    'subscribe: while !shutdown.is_raised() {
        let deliveries = tokio::select! {
            _ = shutdown.wait() => break,
            d = store.durable(consumer) => d,
        };
        let mut deliveries = match deliveries {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(%consumer, error = %e, "cannot subscribe; retrying in 1 s");
                tokio::select! {
                    _ = shutdown.wait() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            let next = tokio::select! {
                _ = shutdown.wait() => break 'subscribe,
                n = deliveries.next() => n,
            };
            match next {
                Some(Ok(delivery)) => handle(delivery).await,
                Some(Err(e)) => {
                    tracing::warn!(%consumer, error = %e, "subscription error; subscribing again");
                    continue 'subscribe;
                }
                None => continue 'subscribe,
            }
        }
    }
    tracing::info!(%consumer, "consumer stopped");
}

/// The event log as the rest of the system sees it. Implemented on JetStream today; an EventStoreDB backend
/// implements the same contract.
pub trait EventStore: Send + Sync + 'static {
    /// Stores the events of one command for one ticket, all or none, if the ticket is still at `expected`.
    /// The first event's id identifies the commit: appending the same commit again after a lost ack returns
    /// `already_stored: true` instead of a conflict.
    fn append<'a>(
        &'a self,
        ticket: Uuid,
        expected: Version,
        events: &'a [Envelope],
    ) -> BoxFuture<'a, Result<Appended, AppendError>>;

    /// One ticket's whole history, read through the per-ticket index (never a scan of the log).
    fn load(&self, ticket: Uuid) -> BoxFuture<'_, Result<History, StoreError>>;

    /// Every commit from `from` on, in log order, forever. For projections and outside subscribers.
    fn subscribe(&self, from: Position) -> BoxFuture<'_, Result<BoxStream<'static, Result<Commit, StoreError>>, StoreError>>;

    /// A named, durable, acknowledged subscription to every commit: it resumes where its last acknowledgement
    /// left it, across restarts, and redelivers what was not acknowledged.
    fn durable(&self, name: &str) -> BoxFuture<'_, Result<BoxStream<'static, Result<Delivery, StoreError>>, StoreError>>;

    /// Claims a human reference for a ticket: unique across all tickets, forever.
    fn claim_reference<'a>(&'a self, reference: &'a Reference, ticket: Uuid) -> BoxFuture<'a, Result<Claim, StoreError>>;

    /// The ticket a reference belongs to.
    fn resolve_reference<'a>(&'a self, reference: &'a Reference) -> BoxFuture<'a, Result<Option<Uuid>, StoreError>>;

    /// Records which ticket a channel's message (`key`: channel and the channel's message id) went to, unless one
    /// is recorded already: then `TakenBy` names it. A redelivered message finds where the first delivery went,
    /// however late it comes and whatever changed since.
    fn claim_message<'a>(&'a self, key: &'a str, ticket: Uuid) -> BoxFuture<'a, Result<Claim, StoreError>>;

    /// Remembers that `contact` (a phone number, an e-mail address) opened `ticket`; the last few are kept.
    fn note_contact<'a>(&'a self, contact: &'a str, ticket: Uuid) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The tickets `contact` opened, newest first.
    fn contact_tickets<'a>(&'a self, contact: &'a str) -> BoxFuture<'a, Result<Vec<Uuid>, StoreError>>;

    /// A channel's durable state (`key`: `<channel>.<name>`): the value and its revision.
    fn state_get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<StateEntry>, StoreError>>;

    /// Writes a channel's state if it is still at `expected` (None: only if there is none): the new revision, or
    /// `None` when someone else wrote first.
    fn state_put<'a>(&'a self, key: &'a str, value: &'a [u8], expected: Option<u64>) -> BoxFuture<'a, Result<Option<u64>, StoreError>>;

    /// Writes a channel's state whatever is there.
    fn state_set<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, Result<u64, StoreError>>;

    /// Removes a channel's state entry (nothing when there is none); with `expected`, only if it is still at that
    /// revision (`false`: someone wrote since).
    fn state_delete<'a>(&'a self, key: &'a str, expected: Option<u64>) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// The keys of a channel's state that start with `prefix` (a key removed in the last minute may still be
    /// listed; reading it finds nothing).
    fn state_keys<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, StoreError>>;

    /// The key of a citizen's identity (`phone:<msisdn>`, `email:<address>`, `zalo:<id>`), made on its first use;
    /// a new key of its own for `None` (a petition without contact details). See `keys.rs`.
    fn citizen_key<'a>(&'a self, identity: Option<&'a str>) -> BoxFuture<'a, Result<Uuid, StoreError>>;

    /// The key an identity has, if any.
    fn identity_key<'a>(&'a self, identity: &'a str) -> BoxFuture<'a, Result<Option<Uuid>, StoreError>>;

    /// Destroys a citizen's key for good (its bytes erased from the store) and forgets which key `identities`
    /// had: every field sealed with it reads `[erased]` from then on.
    fn destroy_key<'a>(&'a self, key: Uuid, identities: &'a [String]) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Whether a citizen's key still exists (asked of the key store itself, not a cache).
    fn key_exists(&self, key: Uuid) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// Erases what the store keeps about a contact outside the log (the tickets it opened, for follow-ups).
    fn erase_contact<'a>(&'a self, contact: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Removes a channel-state entry so that its bytes are gone from the store, not just marked deleted.
    fn state_erase<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Writes an audit checkpoint: a Merkle root over every event stored since the previous checkpoint
    /// (`audit.rs`). `None` when nothing new was stored, or another process wrote that checkpoint first.
    fn checkpoint(&self) -> BoxFuture<'_, Result<Option<audit::Checkpoint>, StoreError>>;

    /// The last position in the log (0 when empty).
    fn last_position(&self) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Identifies this log: positions from one log mean nothing in another. A projection stores it with its
    /// position and rebuilds when it changes (a wiped store, another server, a restored backup).
    fn log_id(&self) -> BoxFuture<'_, Result<String, StoreError>>;

    /// Whether the store is reachable right now, without a round trip. A quick "no" lets intake answer 503 at once.
    fn is_connected(&self) -> bool;
}

/// One message of the published feed (the integration events other systems subscribe to), ready to store. The
/// projector (crate hotline-feed) derives them from the log; the store adds the transport headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    /// Where it is published; must lie under the feed's subjects (`hotline.feed.v1.>`).
    pub subject: String,
    /// Its id (the CloudEvents `ce-id`), also the transport's deduplication id.
    pub id: String,
    /// Which commit of the log it comes from, and which of that commit's feed messages it is.
    pub mark: FeedMark,
    /// Header names and values already fit for a header (the CloudEvents attributes, percent-encoded).
    pub attributes: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

/// Where a feed message comes from: the `part`-th (1-based) of the `parts` feed messages of the log commit at
/// `position`. The feed's own last mark is where its projector resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedMark {
    pub position: u64,
    pub part: u32,
    pub parts: u32,
}

/// The feed's last message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedTip {
    /// Its sequence in the feed (0: the feed is empty). The next publish states it as the expected last one.
    pub sequence: u64,
    /// Where it came from in the log (None: the feed is empty).
    pub mark: Option<FeedMark>,
}

/// Why a feed message was not published.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The feed is not at the expected sequence (another projector published, or an earlier attempt of ours was
    /// stored after all): read the tip again and go on from there.
    #[error("the feed moved on since its tip was read")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The published feed as its projector sees it: a single-writer append-only stream whose every message says which
/// log commit it comes from. Appends are conditional on the feed's last sequence, so two writers cannot
/// interleave, and the position to resume from is read back from the feed itself.
pub trait FeedLog: Send + Sync + 'static {
    /// The feed's last message: its sequence and its mark.
    fn tip(&self) -> BoxFuture<'_, Result<FeedTip, StoreError>>;

    /// Appends `entry` if the feed's last sequence is still `expected` (0: empty); returns the new sequence.
    fn publish<'a>(&'a self, expected: u64, entry: &'a FeedEntry) -> BoxFuture<'a, Result<u64, FeedError>>;

    /// Appends `entries` in order, the first if the feed's last sequence is still `expected`, each next one right
    /// after the one before; returns the last one's sequence. On an error, some leading entries may be stored (read
    /// the tip again); never one out of place. The default publishes one at a time; a feed may pipeline them.
    fn publish_all<'a>(&'a self, expected: u64, entries: &'a [FeedEntry]) -> BoxFuture<'a, Result<u64, FeedError>> {
        Box::pin(async move {
            let mut last = expected;
            for entry in entries {
                last = self.publish(last, entry).await?;
            }
            Ok(last)
        })
    }

    /// The id of the log ([`EventStore::log_id`]) the feed's last message was derived from, as its projector stamped
    /// it (`Hotline-Log-Id`); None when the feed is empty or its last message carries no stamp. Positions from one
    /// log mean nothing in another, so a projector resumes only from a feed of its own log.
    fn last_log_id(&self) -> BoxFuture<'_, Result<Option<String>, StoreError>> {
        Box::pin(async { Ok(None) })
    }

    /// Every message stored on subjects matching `filter` (a subject filter under the feed's prefix), oldest first.
    fn find<'a>(&'a self, filter: &'a str) -> BoxFuture<'a, Result<Vec<FeedStored>, StoreError>>;

    /// Removes the messages at `sequences` from the feed and overwrites their bytes in the store (personal data
    /// that must be gone, docs/feed.md). Sequences already removed are fine; the feed's tip is refused (the
    /// projector resumes from it).
    fn erase<'a>(&'a self, sequences: &'a [u64]) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// A message stored in the feed, as [`FeedLog::find`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedStored {
    pub sequence: u64,
    pub subject: String,
    /// Its mark (None when its headers carry no valid one).
    pub mark: Option<FeedMark>,
}
