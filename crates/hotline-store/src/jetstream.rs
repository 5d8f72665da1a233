//! The event store on NATS JetStream: one file-backed stream for the log, one subject per ticket, per-subject
//! optimistic concurrency, and a key-value bucket that keeps ticket references unique.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::kv;
use async_nats::jetstream::stream::{self, DirectGetErrorKind, StorageType};
use async_nats::jetstream::{self as js, AckKind};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use hotline_domain::event::{DecodeError, encode_commit_with, stored_events};
use hotline_domain::TicketEvent;
use hotline_domain::{Envelope, Reference};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::watch;
use uuid::Uuid;

use crate::keys::KeyRing;
use crate::audit::{Checkpoint, MerkleRoot, RawCommit, Report, StoredCheckpoint, Verifier, leaves_of};
use crate::{
    Acker, AppendError, Appended, Claim, Commit, Delivery, EventStore, History, Position, StoreError, TokenRecord,
    TokenRegistry, Version,
};

/// Names and limits of the JetStream objects the store uses.
#[derive(Debug, Clone)]
pub struct JetStreamConfig {
    /// The log stream.
    pub stream: String,
    /// Subjects of the log: `<prefix>.ticket.<ticket id>`.
    pub subject_prefix: String,
    /// Replicas of the stream and the reference bucket: 1 on a single node, 3 on a cluster.
    pub replicas: usize,
    /// Key-value bucket of claimed references.
    pub refs_bucket: String,
    /// Key-value bucket of API tokens (hashes only).
    pub tokens_bucket: String,
    /// Key-value bucket of channel messages and contacts (keys are hashes): where each inbound message went,
    /// and the tickets each contact opened.
    pub inbound_bucket: String,
    /// Key-value bucket of the channels' own durable state (vendor tokens, followers, inboxes).
    pub channels_bucket: String,
    /// How long one request (publish ack, direct get) may take before it counts as unavailable.
    pub request_timeout: Duration,
    /// How long a durable subscription waits for an ack before it redelivers: after a crash, what was in flight
    /// is handled again after this long.
    pub ack_wait: Duration,
    /// The published feed's stream (other systems read it; see `feed.rs`).
    pub feed_stream: String,
    /// Subjects of the feed: `<prefix>.<audience>.<event type>.<ticket id>`. Must not overlap the log's subjects.
    pub feed_subject_prefix: String,
    /// How long the feed remembers message ids to drop a re-sent copy (when its stream is created). Exactly-once
    /// does not depend on it; tests shrink it to prove that.
    pub feed_duplicate_window: Duration,
    /// The stream of audit checkpoints (`audit.rs`): beside the log, never mixed into it, so no reader of the
    /// log meets them.
    pub audit_stream: String,
    /// Its one subject. Must not overlap the log's subjects.
    pub audit_subject: String,
    /// Key-value bucket of the citizens' keys (`keys.rs`): beside the log, never in it.
    pub keys_bucket: String,
}

impl Default for JetStreamConfig {
    fn default() -> Self {
        JetStreamConfig {
            stream: "HOTLINE_EVENTS".to_owned(),
            subject_prefix: "hotline.events".to_owned(),
            replicas: 1,
            refs_bucket: "hotline_refs".to_owned(),
            tokens_bucket: "hotline_tokens".to_owned(),
            inbound_bucket: "hotline_inbound".to_owned(),
            channels_bucket: "hotline_channels".to_owned(),
            request_timeout: Duration::from_secs(5),
            ack_wait: Duration::from_secs(10),
            feed_stream: "HOTLINE_FEED".to_owned(),
            feed_subject_prefix: "hotline.feed.v1".to_owned(),
            feed_duplicate_window: Duration::from_secs(120),
            audit_stream: "HOTLINE_AUDIT".to_owned(),
            audit_subject: "hotline.audit.checkpoint".to_owned(),
            keys_bucket: "hotline_keys".to_owned(),
        }
    }
}

/// Header naming the ticket of a commit, so tools can filter without decoding the payload.
const TICKET_HEADER: &str = "Hotline-Ticket-Id";
/// Header listing the event types of a commit, comma-separated.
const TYPES_HEADER: &str = "Hotline-Event-Types";
/// How many times an append is re-sent (same message id, same expectation) when the server does not answer.
const APPEND_ATTEMPTS: u32 = 3;

/// The JetStream implementation of [`EventStore`].
#[derive(Clone)]
pub struct JetStreamStore {
    client: async_nats::Client,
    js: js::Context,
    stream: stream::Stream,
    refs: kv::Store,
    tokens: kv::Store,
    inbound: kv::Store,
    channels: kv::Store,
    audit: stream::Stream,
    keys: KeyRing,
    /// The hash of each recently written or read ticket's last event, by ticket and version: the link the next
    /// append needs. Only a shortcut: on a miss the append reads the ticket's last commit.
    tips: Arc<Mutex<HashMap<Uuid, (Version, String)>>>,
    cfg: JetStreamConfig,
    /// Counts (re)connections. Subscriptions end when it moves, so their owners subscribe again at once instead
    /// of waiting for missed heartbeats: a restarted server has forgotten their consumers' pull requests. The
    /// store keeps the sender so the count outlives any one subscription.
    connections: Arc<watch::Sender<u64>>,
}

impl JetStreamStore {
    /// Connects to `url` and makes sure the stream and the bucket exist. Credentials may ride in the URL
    /// (`nats://user:password@host:port`, `nats://token@host:port`, percent-encoded): async-nats 0.51 ignores
    /// them there, so they are taken out and handed to it explicitly.
    pub async fn connect(url: &str, cfg: JetStreamConfig) -> Result<JetStreamStore, StoreError> {
        let connections = Arc::new(watch::Sender::new(0u64));
        let tx = connections.clone();
        let (url, credentials) = split_credentials(url);
        let options = match credentials {
            Some(UrlCredentials::UserPassword(user, password)) => {
                async_nats::ConnectOptions::new().user_and_password(user, password)
            }
            Some(UrlCredentials::Token(token)) => async_nats::ConnectOptions::new().token(token),
            None => async_nats::ConnectOptions::new(),
        };
        let client = options
            .name("hotline")
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(cfg.request_timeout))
            // Come back within a second of the server: intake answers 503 meanwhile.
            .reconnect_delay_callback(|attempts| Duration::from_millis((attempts as u64 * 100).min(1_000)))
            .event_callback(move |event| {
                let tx = tx.clone();
                async move {
                    if matches!(event, async_nats::Event::Connected) {
                        tx.send_modify(|n| *n += 1);
                    }
                }
            })
            .connect(seeds(&url))
            .await
            .map_err(unavailable)?;
        // The first connection's event arrives on its own task, maybe after this returns: wait for it, or a
        // subscription made at once would take it for a reconnection and end (seen in `hotline audit export`).
        let mut first = connections.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(5), first.wait_for(|n| *n >= 1)).await;
        JetStreamStore::open_with(client, cfg, connections).await
    }

    async fn open_with(
        client: async_nats::Client,
        cfg: JetStreamConfig,
        connections: Arc<watch::Sender<u64>>,
    ) -> Result<JetStreamStore, StoreError> {
        let js = js::ContextBuilder::new().timeout(cfg.request_timeout).build(client.clone());
        let stream = js
            .get_or_create_stream(stream::Config {
                name: cfg.stream.clone(),
                subjects: vec![format!("{}.>", cfg.subject_prefix)],
                storage: StorageType::File,
                num_replicas: cfg.replicas,
                // The log is append-only: nothing deletes or purges an event.
                deny_delete: true,
                deny_purge: true,
                // Direct gets read a ticket's history through the subject index, from any replica.
                allow_direct: true,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|e| match e.kind() {
                // The server answered and said no (bad replicas, limits): retrying will not help.
                js::context::CreateStreamErrorKind::JetStream(err) => {
                    StoreError::Rejected(format!("cannot create stream {}: {err}", cfg.stream))
                }
                _ => unavailable(e),
            })?;
        let refs = bucket(&js, &cfg, &cfg.refs_bucket, "ticket reference -> ticket id; a reference is never reused").await?;
        let tokens = bucket(&js, &cfg, &cfg.tokens_bucket, "API token id -> role, agency, name, hash").await?;
        // Personal data is erased by deleting single messages with JetStream's erasing delete, which key-value
        // buckets deny unless their stream is made without that denial.
        let inbound = erasable_bucket(&js, &cfg, &cfg.inbound_bucket, "m.<hash of channel message id> -> ticket id; c.<hash of contact> -> recent ticket ids", None).await?;
        let channels = channels_bucket(&js, &cfg).await?;
        let key_bucket = erasable_bucket(&js, &cfg, &cfg.keys_bucket, "k.<key id> -> a citizen's key; c.<hash of identity> -> its key id", None).await?;
        let keys = KeyRing::new(key_bucket.clone());
        let audit = js
            .get_or_create_stream(stream::Config {
                name: cfg.audit_stream.clone(),
                description: Some("audit checkpoints: Merkle roots over the log's events (docs/audit.md)".to_owned()),
                subjects: vec![cfg.audit_subject.clone()],
                storage: StorageType::File,
                num_replicas: cfg.replicas,
                deny_delete: true,
                deny_purge: true,
                allow_direct: true,
                ..Default::default()
            })
            .await
            .map_err(|e| match e.kind() {
                js::context::CreateStreamErrorKind::JetStream(err) => {
                    StoreError::Rejected(format!("cannot create stream {}: {err}", cfg.audit_stream))
                }
                _ => unavailable(e),
            })?;
        let mut streams = vec![stream.clone(), audit.clone()];
        streams.extend([&refs, &tokens, &inbound, &channels, &key_bucket].map(|kv| kv.stream.clone()));
        for mut s in streams {
            // An existing stream keeps its replicas: say so when they are not what the settings ask for (an R1
            // bucket on a cluster dies with its node).
            if let Ok(info) = s.info().await
                && info.config.num_replicas != cfg.replicas
            {
                tracing::warn!(stream = %info.config.name, has = info.config.num_replicas, configured = cfg.replicas, "stream replicas differ from nats.replicas");
            }
        }
        let tips = Arc::default();
        Ok(JetStreamStore { client, js, stream, refs, tokens, inbound, channels, audit, keys, tips, cfg, connections })
    }

    fn subject(&self, ticket: Uuid) -> String {
        format!("{}.ticket.{}", self.cfg.subject_prefix, ticket)
    }

    fn all_subjects(&self) -> String {
        format!("{}.>", self.cfg.subject_prefix)
    }

    async fn append_commit(&self, ticket: Uuid, expected: Version, events: &[Envelope]) -> Result<Appended, AppendError> {
        let Some(first) = events.first() else {
            return Err(StoreError::Rejected("a commit needs at least one event".to_owned()).into());
        };
        if events.iter().any(|e| e.ticket_id != ticket) {
            return Err(StoreError::Rejected("a commit's events must all belong to its ticket".to_owned()).into());
        }
        if !self.is_connected() {
            return Err(StoreError::Unavailable("not connected to NATS".to_owned()).into());
        }
        let commit_id = first.event_id.to_string();
        let prev_hash = self.chain_tip(ticket, expected).await?;
        let key = self.sealing_key(ticket, expected, events).await?;
        // Stamp the time the store takes the commit. Encoded once: every re-send below is the same bytes.
        let recorded_at = OffsetDateTime::now_utc();
        let stamped: Vec<Envelope> = events.iter().map(|e| Envelope { recorded_at, ..e.clone() }).collect();
        let encoded = encode_commit_with(&stamped, prev_hash, |envelope, mut data| {
            if let Some((id, key)) = &key {
                self.keys.seal(envelope.event_type(), envelope.event_id, key.as_deref(), *id, &mut data);
            }
            data
        })
        .map_err(|e| StoreError::Rejected(e.to_string()))?;
        let (payload, last_hash) = (bytes::Bytes::from(encoded.bytes), encoded.last_hash);
        let types = events.iter().map(Envelope::event_type).collect::<Vec<_>>().join(",");
        let subject = self.subject(ticket);
        let mut last_error = String::new();
        for attempt in 0..APPEND_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            let message = PublishMessage::build()
                .payload(payload.clone())
                .message_id(&commit_id)
                .expected_last_subject_sequence(expected)
                .header(TICKET_HEADER, ticket.to_string().as_str())
                .header(TYPES_HEADER, types.as_str());
            let result = match self.js.send_publish(subject.clone(), message).await {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            match result {
                Ok(ack) => {
                    self.remember_tip(ticket, ack.sequence, last_hash);
                    return Ok(Appended { version: ack.sequence, already_stored: ack.duplicate });
                }
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                    // Either someone else appended, or this is our own earlier write whose ack was lost (2.12
                    // answers a re-sent message with "wrong last sequence" rather than "duplicate").
                    return match self.find_commit(&subject, expected, &commit_id).await? {
                        Some(version) => {
                            self.remember_tip(ticket, version, last_hash);
                            Ok(Appended { version, already_stored: true })
                        }
                        None => Err(AppendError::Conflict { current: self.last_version(&subject).await? }),
                    };
                }
                Err(e) if matches!(
                    e.kind(),
                    PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe | PublishErrorKind::StreamNotFound
                ) => {
                    // StreamNotFound is also what a client sees during a leader election: retry it.
                    last_error = e.to_string();
                }
                Err(e) => return Err(StoreError::Rejected(e.to_string()).into()),
            }
        }
        Err(StoreError::OutcomeUnknown(format!("append not confirmed after {APPEND_ATTEMPTS} attempts: {last_error}")).into())
    }

    /// Looks for the commit `commit_id` among the ticket's commits after `after`; returns the version it made.
    async fn find_commit(&self, subject: &str, after: Version, commit_id: &str) -> Result<Option<Version>, StoreError> {
        let mut next = after + 1;
        loop {
            match self.stream.direct_get_next_for_subject(subject, Some(next)).await {
                Ok(msg) => {
                    if msg.headers.get("Nats-Msg-Id").map(|v| v.as_str()) == Some(commit_id) {
                        return Ok(Some(msg.sequence));
                    }
                    next = msg.sequence + 1;
                }
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(unavailable(e)),
            }
        }
    }

    async fn to_commit(&self, m: &js::Message) -> Result<Commit, StoreError> {
        let info = m.info().map_err(|e| StoreError::Rejected(format!("message without JetStream metadata: {e}")))?;
        let position = info.stream_sequence;
        let stored_at = info.published;
        let (events, hashes) = self.decode(position, &m.payload).await?;
        let ticket_id = events
            .first()
            .map(|e| e.ticket_id)
            .ok_or_else(|| StoreError::Rejected(format!("empty commit at position {position}")))?;
        Ok(Commit { position, ticket_id, events, stored_at, hashes })
    }

    /// Decodes a stored commit, decrypting its personal fields with the keys that still exist, and gives each
    /// event's chain hash.
    async fn decode(&self, position: u64, payload: &[u8]) -> Result<(Vec<Envelope>, Vec<String>), StoreError> {
        let decode_error = |source| StoreError::Decode { position, source };
        let mut stored = stored_events(payload).map_err(|e| decode_error(DecodeError::Json(e)))?;
        let mut ids = Vec::new();
        for (event, _) in &mut stored {
            KeyRing::sealed_with(&event.event_type, &mut event.data, &mut ids);
        }
        let mut keys = HashMap::new();
        for id in ids {
            keys.insert(id, self.keys.key(id).await?);
        }
        let mut events = Vec::with_capacity(stored.len());
        let mut hashes = Vec::with_capacity(stored.len());
        for (mut event, hash) in stored {
            if !keys.is_empty() {
                KeyRing::open(&event.event_type, event.event_id, &keys, &mut event.data);
            }
            events.push(Envelope::decode(event).map_err(decode_error)?);
            hashes.push(hash);
        }
        Ok((events, hashes))
    }

    /// The key this commit's personal fields are sealed with: the petition's own for a `PetitionReceived`, else
    /// the ticket's (remembered, or read from its first commit). `None` when nothing needs sealing or the ticket
    /// has no key (written before keys existed); `Some((id, None))` when the key is destroyed.
    async fn sealing_key(&self, ticket: Uuid, expected: Version, events: &[Envelope]) -> Result<Option<(Uuid, Option<std::sync::Arc<ring::aead::LessSafeKey>>)>, StoreError> {
        if events.iter().all(|e| hotline_domain::event::personal_fields(e.event_type()).is_empty()) {
            return Ok(None);
        }
        let own = events.iter().find_map(|e| match &e.event {
            TicketEvent::PetitionReceived(p) => Some(p.citizen_key),
            _ => None,
        });
        let id = match own {
            Some(id) => {
                self.keys.remember_ticket(ticket, id);
                id
            }
            None if expected == 0 => None,
            None => match self.keys.ticket_key(ticket) {
                Some(id) => id,
                None => {
                    let id = match self.stream.direct_get_next_for_subject(self.subject(ticket), Some(1)).await {
                        Ok(msg) => stored_events(&msg.payload)
                            .ok()
                            .and_then(|events| events.into_iter().next())
                            .and_then(|(first, _)| first.data.get("citizen_key").and_then(|k| k.as_str()).and_then(|k| k.parse().ok())),
                        // The ticket has commits (expected > 0): a replica that does not show them yet is behind,
                        // and guessing "no key" would store personal data unsealed.
                        Err(e) if e.kind() == DirectGetErrorKind::NotFound => {
                            return Err(StoreError::Unavailable(format!("ticket {ticket}'s first commit is not readable yet")));
                        }
                        Err(e) => return Err(unavailable(e)),
                    };
                    self.keys.remember_ticket(ticket, id);
                    id
                }
            },
        };
        match id {
            None => Ok(None),
            Some(id) => {
                let key = self.keys.key(id).await?;
                if key.is_none() && own.is_some() {
                    // A new petition whose key is gone (destroyed between intake's lookup and now): storing it
                    // would store nothing readable. Nothing is stored; the retry gets a new key.
                    return Err(StoreError::Unavailable(format!("the citizen key {id} of this new petition no longer exists")));
                }
                Ok(Some((id, key)))
            }
        }
    }

    /// The hash of the ticket's event at `version` (its last one, if `version` is current): what the next
    /// append's first event links to. `None` for a new ticket.
    async fn chain_tip(&self, ticket: Uuid, version: Version) -> Result<Option<String>, StoreError> {
        if version == 0 {
            return Ok(None);
        }
        if let Some((v, hash)) = self.tips.lock().unwrap_or_else(|e| e.into_inner()).get(&ticket)
            && *v == version
        {
            return Ok(Some(hash.clone()));
        }
        match self.stream.direct_get(version).await {
            // If `version` is not the ticket's last commit, the server refuses the append anyway.
            Ok(msg) => Ok(last_event_hash(&msg.payload)),
            // A replica behind the append that made `version`: an unlinked event would be a break forever.
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => {
                Err(StoreError::Unavailable(format!("log position {version} is not readable yet")))
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    fn remember_tip(&self, ticket: Uuid, version: Version, hash: String) {
        let mut tips = self.tips.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: a busy day's tickets fit; past that, start over (a miss costs one direct get).
        if tips.len() >= 100_000 {
            tips.clear();
        }
        tips.insert(ticket, (version, hash));
    }

    /// The log from `from` on, undecoded, for the auditors' tools (`audit.rs`) and readers that need no event
    /// bodies (the benchmark's follower). Like every subscription it
    /// waits for new messages at the end: stop at `pending == 0`.
    pub async fn raw_log(&self, from: Position) -> Result<BoxStream<'static, Result<RawCommit, StoreError>>, StoreError> {
        let messages = self.ordered_messages(from).await?;
        let ticket_subject = format!("{}.ticket.", self.cfg.subject_prefix);
        let commits = messages.map(move |m| {
            let m = m.map_err(unavailable)?;
            let info = m.info().map_err(|e| StoreError::Rejected(format!("message without JetStream metadata: {e}")))?;
            let ticket = m.subject.strip_prefix(ticket_subject.as_str()).and_then(|id| id.parse().ok());
            Ok(RawCommit { position: info.stream_sequence, ticket, pending: info.pending, payload: m.payload.clone() })
        });
        Ok(until_reconnected(commits, self.connections.subscribe()))
    }

    /// Every checkpoint, in order.
    pub async fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let mut all = Vec::new();
        let mut next = 1;
        loop {
            match self.audit.direct_get_next_for_subject(self.cfg.audit_subject.as_str(), Some(next)).await {
                Ok(msg) => {
                    all.push(StoredCheckpoint::parse(msg.sequence, &msg.payload));
                    next = msg.sequence + 1;
                }
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => return Ok(all),
                Err(e) => return Err(unavailable(e)),
            }
        }
    }

    /// Checks the whole log as it stands now against its hash chains and checkpoints (`audit.rs`), calling
    /// `progress(position, end)` after each message. What is stored meanwhile is for the next run.
    pub async fn verify(&self, mut progress: impl FnMut(u64, u64)) -> Result<Report, StoreError> {
        let mut verifier = Verifier::new(self.checkpoints().await?);
        let end = self.last_sequence().await?;
        self.read_raw(1, end, |commit| {
            verifier.commit(commit);
            progress(commit.position, end);
        })
        .await?;
        Ok(verifier.finish())
    }

    /// Hands every log message in positions `from..=end` to `each`, in order; fails (rather than stopping short)
    /// when the log does not deliver up to `end`.
    async fn read_raw(&self, from: u64, end: u64, mut each: impl FnMut(&RawCommit)) -> Result<(), StoreError> {
        if end < from {
            return Ok(());
        }
        let mut log = self.raw_log(Position::From(from)).await?;
        let mut reached = 0;
        while let Some(commit) = log.next().await {
            let commit = commit?;
            if commit.position > end {
                break;
            }
            reached = commit.position;
            each(&commit);
            if commit.position >= end || commit.pending == 0 {
                break;
            }
        }
        if reached < end {
            return Err(StoreError::Unavailable(format!("the log ended at position {reached} while reading to {end}")));
        }
        Ok(())
    }

    /// Writes a checkpoint over everything the log stored since the last one; `None` when nothing was stored
    /// since, or when another process wrote the same checkpoint first.
    async fn write_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        let last = match self.audit.direct_get_last_for_subject(self.cfg.audit_subject.as_str()).await {
            Ok(msg) => Some(StoredCheckpoint::parse(msg.sequence, &msg.payload)),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => None,
            Err(e) => return Err(unavailable(e)),
        };
        let from = match &last {
            None => 1,
            Some(StoredCheckpoint { checkpoint: Some(c), .. }) => c.to + 1,
            Some(StoredCheckpoint { sequence, .. }) => {
                return Err(StoreError::Rejected(format!("audit checkpoint #{sequence} is unreadable: run `hotline audit verify`")));
            }
        };
        let end = self.last_sequence().await?;
        if end < from {
            return Ok(None);
        }
        let mut root = MerkleRoot::default();
        // A checkpoint is for ever (the stream denies deletes): one over less than its range would be a false
        // alarm at every verify, so reading must reach `end`.
        self.read_raw(from, end, |commit| {
            for leaf in leaves_of(&commit.payload) {
                root.push(leaf.as_bytes());
            }
        })
        .await?;
        let checkpoint = Checkpoint {
            from,
            to: end,
            events: root.leaves(),
            root: root.root(),
            prev: last.as_ref().map(|c| c.hash.clone()),
            at: OffsetDateTime::now_utc(),
        };
        let payload = serde_json::to_vec(&checkpoint).map_err(|e| StoreError::Rejected(e.to_string()))?;
        let message = PublishMessage::build()
            .payload(payload.into())
            .message_id(format!("checkpoint-{from}-{end}"))
            .expected_last_subject_sequence(last.map_or(0, |c| c.sequence));
        let result = match self.js.send_publish(self.cfg.audit_subject.clone(), message).await {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        match result {
            Ok(ack) if !ack.duplicate => Ok(Some(checkpoint)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// The log's last stream sequence.
    async fn last_sequence(&self) -> Result<u64, StoreError> {
        let mut stream = self.stream.clone();
        Ok(stream.info().await.map_err(unavailable)?.state.last_sequence)
    }

    async fn last_version(&self, subject: &str) -> Result<Version, StoreError> {
        match self.stream.direct_get_last_for_subject(subject).await {
            Ok(msg) => Ok(msg.sequence),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(0),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn load_history(&self, ticket: Uuid) -> Result<History, StoreError> {
        let subject = self.subject(ticket);
        let mut history = History::default();
        let mut next = 1;
        let mut last = None;
        loop {
            match self.stream.direct_get_next_for_subject(subject.as_str(), Some(next)).await {
                Ok(msg) => {
                    let (events, _) = self.decode(msg.sequence, &msg.payload).await?;
                    history.events.extend(events);
                    history.version = msg.sequence;
                    next = msg.sequence + 1;
                    last = Some(msg.payload);
                }
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => {
                    if let Some(hash) = last.and_then(|payload| last_event_hash(&payload)) {
                        self.remember_tip(ticket, history.version, hash);
                    }
                    if let Some(TicketEvent::PetitionReceived(p)) = history.events.first().map(|e| &e.event) {
                        self.keys.remember_ticket(ticket, p.citizen_key);
                    }
                    return Ok(history);
                }
                Err(e) => return Err(unavailable(e)),
            }
        }
    }

    /// The log's messages from `from` on, through an ordered consumer.
    async fn ordered_messages(&self, from: Position) -> Result<consumer::pull::Ordered, StoreError> {
        let consumer = self
            .stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: self.all_subjects(),
                deliver_policy: deliver_policy(from),
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        consumer.messages().await.map_err(unavailable)
    }

    async fn ordered_subscription(&self, from: Position) -> Result<BoxStream<'static, Result<Commit, StoreError>>, StoreError> {
        let messages = self.ordered_messages(from).await?;
        let store = self.clone();
        let commits = messages.then(move |m| {
            let store = store.clone();
            async move {
                let m = m.map_err(unavailable)?;
                store.to_commit(&m).await
            }
        });
        Ok(until_reconnected(commits, self.connections.subscribe()))
    }

    async fn durable_subscription(&self, name: &str) -> Result<BoxStream<'static, Result<Delivery, StoreError>>, StoreError> {
        let consumer = self
            .stream
            .get_or_create_consumer(
                name,
                consumer::pull::Config {
                    durable_name: Some(name.to_owned()),
                    filter_subject: self.all_subjects(),
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: self.cfg.ack_wait,
                    max_ack_pending: 1_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(unavailable)?;
        let messages = consumer.messages().await.map_err(unavailable)?;
        let store = self.clone();
        let deliveries = messages.then(move |m| {
            let store = store.clone();
            async move {
                let m = m.map_err(unavailable)?;
                // A commit this code cannot decode is left unacknowledged: it is redelivered (and reported) until
                // a newer build reads it, rather than being skipped.
                let commit = store.to_commit(&m).await?;
                let attempt = m.info().map(|i| u32::try_from(i.delivered).unwrap_or(u32::MAX)).unwrap_or(1);
                Ok(Delivery::new(commit, attempt, Box::new(JetStreamAcker(m))))
            }
        });
        Ok(until_reconnected(deliveries, self.connections.subscribe()))
    }

    async fn claim(&self, reference: &Reference, ticket: Uuid) -> Result<Claim, StoreError> {
        if !self.is_connected() {
            return Err(StoreError::Unavailable("not connected to NATS".to_owned()));
        }
        match self.refs.create(reference.as_str(), ticket.to_string().into()).await {
            Ok(_) => Ok(Claim::Granted),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => match self.resolve(reference).await? {
                Some(owner) if owner == ticket => Ok(Claim::Granted),
                Some(owner) => Ok(Claim::TakenBy(owner)),
                None => Err(StoreError::Unavailable("reference claimed but not readable yet".to_owned())),
            },
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn claim_message_key(&self, key: &str, ticket: Uuid) -> Result<Claim, StoreError> {
        if !self.is_connected() {
            return Err(StoreError::Unavailable("not connected to NATS".to_owned()));
        }
        let key = hashed_key("m", key);
        match self.inbound.create(&key, ticket.to_string().into()).await {
            Ok(_) => Ok(Claim::Granted),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                let value = self.inbound.get(&key).await.map_err(unavailable)?;
                match value.and_then(|v| std::str::from_utf8(&v).ok().and_then(|s| s.parse::<Uuid>().ok())) {
                    Some(owner) if owner == ticket => Ok(Claim::Granted),
                    Some(owner) => Ok(Claim::TakenBy(owner)),
                    None => Err(StoreError::Unavailable("message claimed but not readable yet".to_owned())),
                }
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn add_contact_ticket(&self, contact: &str, ticket: Uuid) -> Result<(), StoreError> {
        let key = hashed_key("c", contact);
        loop {
            let entry = self.inbound.entry(&key).await.map_err(unavailable)?;
            let mut tickets: Vec<Uuid> = match &entry {
                Some(e) if !e.value.is_empty() => serde_json::from_slice(&e.value).unwrap_or_default(),
                _ => Vec::new(),
            };
            if tickets.first() == Some(&ticket) {
                return Ok(());
            }
            tickets.retain(|t| *t != ticket);
            tickets.insert(0, ticket);
            tickets.truncate(CONTACT_TICKETS);
            let value = serde_json::to_vec(&tickets).map_err(|e| StoreError::Rejected(e.to_string()))?;
            // Optimistic: two messages of one contact at once both land, one after the other.
            let written = match entry {
                Some(e) => self.inbound.update(&key, value.into(), e.revision).await.map_err(|e| e.kind() == kv::UpdateErrorKind::WrongLastRevision),
                None => self.inbound.create(&key, value.into()).await.map(|_| 0).map_err(|e| e.kind() == kv::CreateErrorKind::AlreadyExists),
            };
            match written {
                Ok(_) => return Ok(()),
                Err(true) => continue,
                Err(false) => return Err(StoreError::Unavailable(format!("cannot record the contact's ticket {ticket}"))),
            }
        }
    }

    async fn tickets_of_contact(&self, contact: &str) -> Result<Vec<Uuid>, StoreError> {
        let value = self.inbound.get(hashed_key("c", contact)).await.map_err(unavailable)?;
        Ok(value.and_then(|v| serde_json::from_slice(&v).ok()).unwrap_or_default())
    }

    async fn resolve(&self, reference: &Reference) -> Result<Option<Uuid>, StoreError> {
        let value = self.refs.get(reference.as_str()).await.map_err(unavailable)?;
        Ok(value.and_then(|v| std::str::from_utf8(&v).ok().and_then(|s| s.parse().ok())))
    }
}

impl EventStore for JetStreamStore {
    fn append<'a>(&'a self, ticket: Uuid, expected: Version, events: &'a [Envelope]) -> BoxFuture<'a, Result<Appended, AppendError>> {
        self.append_commit(ticket, expected, events).boxed()
    }

    fn load(&self, ticket: Uuid) -> BoxFuture<'_, Result<History, StoreError>> {
        self.load_history(ticket).boxed()
    }

    fn subscribe(&self, from: Position) -> BoxFuture<'_, Result<BoxStream<'static, Result<Commit, StoreError>>, StoreError>> {
        self.ordered_subscription(from).boxed()
    }

    fn durable(&self, name: &str) -> BoxFuture<'_, Result<BoxStream<'static, Result<Delivery, StoreError>>, StoreError>> {
        let name = name.to_owned();
        async move { self.durable_subscription(&name).await }.boxed()
    }

    fn claim_reference<'a>(&'a self, reference: &'a Reference, ticket: Uuid) -> BoxFuture<'a, Result<Claim, StoreError>> {
        self.claim(reference, ticket).boxed()
    }

    fn resolve_reference<'a>(&'a self, reference: &'a Reference) -> BoxFuture<'a, Result<Option<Uuid>, StoreError>> {
        self.resolve(reference).boxed()
    }

    fn claim_message<'a>(&'a self, key: &'a str, ticket: Uuid) -> BoxFuture<'a, Result<Claim, StoreError>> {
        self.claim_message_key(key, ticket).boxed()
    }

    fn note_contact<'a>(&'a self, contact: &'a str, ticket: Uuid) -> BoxFuture<'a, Result<(), StoreError>> {
        self.add_contact_ticket(contact, ticket).boxed()
    }

    fn contact_tickets<'a>(&'a self, contact: &'a str) -> BoxFuture<'a, Result<Vec<Uuid>, StoreError>> {
        self.tickets_of_contact(contact).boxed()
    }

    fn state_get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<crate::StateEntry>, StoreError>> {
        async move {
            let entry = self.channels.entry(key).await.map_err(unavailable)?;
            Ok(entry.filter(|e| e.operation == kv::Operation::Put).map(|e| (e.value.to_vec(), e.revision)))
        }
        .boxed()
    }

    fn state_put<'a>(&'a self, key: &'a str, value: &'a [u8], expected: Option<u64>) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        async move {
            let value = bytes::Bytes::copy_from_slice(value);
            match expected {
                None => match self.channels.create(key, value).await {
                    Ok(revision) => Ok(Some(revision)),
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
                    Err(e) => Err(unavailable(e)),
                },
                Some(revision) => match self.channels.update(key, value, revision).await {
                    Ok(revision) => Ok(Some(revision)),
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
                    Err(e) => Err(unavailable(e)),
                },
            }
        }
        .boxed()
    }

    fn state_set<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, Result<u64, StoreError>> {
        async move { self.channels.put(key, bytes::Bytes::copy_from_slice(value)).await.map_err(unavailable) }.boxed()
    }

    fn state_delete<'a>(&'a self, key: &'a str, expected: Option<u64>) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move {
            // The value's message is deleted with JetStream's erasing delete, so what a channel kept (a citizen's
            // raw message, their shared phone number) leaves no bytes behind (docs/privacy.md). Deleting a given
            // revision is conditional by nature: once the key was written again, that revision is gone.
            let revision = match expected {
                Some(revision) => Some(revision),
                None => match self.channels.entry(key).await.map_err(unavailable)? {
                    Some(e) if e.operation == kv::Operation::Put => Some(e.revision),
                    _ => return Ok(true),
                },
            };
            if let Some(revision) = revision {
                match self.channels.stream.delete_message(revision).await {
                    Ok(_) => return Ok(true),
                    Err(e) => match crate::keys::refusal(&e) {
                        // Gone: written again since (superseded), or removed by someone else.
                        crate::keys::Refusal::Gone => return Ok(expected.is_none()),
                        // A bucket made before deletes were allowed: purge below.
                        crate::keys::Refusal::Denied => {}
                        crate::keys::Refusal::Other => return Err(unavailable(e)),
                    },
                }
            }
            // A purge whose marker expires (the bucket limits markers): a removed key leaves nothing behind for good.
            let purged = match expected {
                Some(revision) => self.channels.purge_expect_revision_with_ttl(key, revision, STATE_MARKER_TTL).await,
                None => self.channels.purge_with_ttl(key, STATE_MARKER_TTL).await,
            };
            match purged {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
                Err(e) => Err(unavailable(e)),
            }
        }
        .boxed()
    }

    fn state_keys<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        async move {
            // Ask the server for the subjects under the prefix's last whole token instead of walking the bucket.
            let aligned = prefix.rfind('.').map_or("", |i| &prefix[..=i]);
            let filter = format!("{}{aligned}>", self.channels.prefix);
            let mut subjects = self.channels.stream.info_with_subjects(&filter).await.map_err(unavailable)?;
            let mut found = Vec::new();
            while let Some(subject) = subjects.next().await {
                let (subject, _) = subject.map_err(unavailable)?;
                if let Some(key) = subject.strip_prefix(self.channels.prefix.as_str())
                    && key.starts_with(prefix)
                {
                    found.push(key.to_owned());
                }
            }
            Ok(found)
        }
        .boxed()
    }

    fn citizen_key<'a>(&'a self, identity: Option<&'a str>) -> BoxFuture<'a, Result<Uuid, StoreError>> {
        self.keys.citizen_key(identity).boxed()
    }

    fn identity_key<'a>(&'a self, identity: &'a str) -> BoxFuture<'a, Result<Option<Uuid>, StoreError>> {
        self.keys.identity_key(identity).boxed()
    }

    fn destroy_key<'a>(&'a self, key: Uuid, identities: &'a [String]) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            // The identities first: once no identity leads to the key, no new petition can be sealed with it.
            for identity in identities {
                self.keys.forget_identity(identity).await?;
            }
            self.keys.destroy(key).await
        }
        .boxed()
    }

    fn key_exists(&self, key: Uuid) -> BoxFuture<'_, Result<bool, StoreError>> {
        async move { self.keys.exists(key).await }.boxed()
    }

    fn erase_contact<'a>(&'a self, contact: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        async move { crate::keys::erase_entry(&self.inbound, &hashed_key("c", contact)).await }.boxed()
    }

    fn state_erase<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        crate::keys::erase_entry(&self.channels, key).boxed()
    }

    fn checkpoint(&self) -> BoxFuture<'_, Result<Option<Checkpoint>, StoreError>> {
        self.write_checkpoint().boxed()
    }

    fn last_position(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        async move {
            let mut stream = self.js.get_stream(&self.cfg.stream).await.map_err(unavailable)?;
            let info = stream.info().await.map_err(unavailable)?;
            Ok(info.state.last_sequence)
        }
        .boxed()
    }

    fn log_id(&self) -> BoxFuture<'_, Result<String, StoreError>> {
        async move {
            let mut stream = self.js.get_stream(&self.cfg.stream).await.map_err(unavailable)?;
            let info = stream.info().await.map_err(unavailable)?;
            let created = info.created.format(&Rfc3339).map_err(|e| StoreError::Rejected(e.to_string()))?;
            Ok(format!("{}@{created}", self.cfg.stream))
        }
        .boxed()
    }

    fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }
}

/// How long the marker of a removed channel-state key stays (the bucket then forgets the key entirely).
const STATE_MARKER_TTL: Duration = Duration::from_secs(60);

/// The channels' state bucket: like the others, but with expiring delete markers, so entries that come and go
/// (inboxes, pending calls) do not pile up markers forever.
async fn channels_bucket(js: &js::Context, cfg: &JetStreamConfig) -> Result<kv::Store, StoreError> {
    let description = "<channel>.<key> -> a channel's own state (tokens, followers, inbox)";
    erasable_bucket(js, cfg, &cfg.channels_bucket, description, Some(STATE_MARKER_TTL)).await
}

/// Opens a key-value bucket whose single messages can be deleted (and so erased), creating it if it does not
/// exist: its stream is the one a key-value bucket gets (file storage, the log's replicas, one value per key),
/// except that message deletes are allowed, which cannot be switched on later. `markers`: how long delete
/// markers stay.
async fn erasable_bucket(js: &js::Context, cfg: &JetStreamConfig, name: &str, description: &str, markers: Option<Duration>) -> Result<kv::Store, StoreError> {
    if let Ok(store) = js.get_key_value(name).await {
        return Ok(store);
    }
    let config = stream::Config {
        name: format!("KV_{name}"),
        description: Some(description.to_owned()),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        storage: StorageType::File,
        num_replicas: cfg.replicas,
        allow_rollup: true,
        deny_delete: false,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        allow_message_ttl: markers.is_some(),
        subject_delete_marker_ttl: markers,
        ..Default::default()
    };
    match js.create_stream(config).await {
        Ok(_) => {}
        // Another process made it first.
        Err(e) if matches!(e.kind(), js::context::CreateStreamErrorKind::JetStream(ref j) if j.error_code() == js::ErrorCode::STREAM_NAME_EXIST) => {}
        Err(e) => return Err(StoreError::Rejected(format!("cannot create bucket {name}: {e}"))),
    }
    js.get_key_value(name).await.map_err(|e| StoreError::Rejected(format!("cannot open bucket {name}: {e}")))
}

/// Opens a key-value bucket, creating it (file storage, the log's replicas) if it does not exist.
async fn bucket(js: &js::Context, cfg: &JetStreamConfig, name: &str, description: &str) -> Result<kv::Store, StoreError> {
    if let Ok(store) = js.get_key_value(name).await {
        return Ok(store);
    }
    js.create_key_value(kv::Config {
        bucket: name.to_owned(),
        description: description.to_owned(),
        history: 1,
        storage: StorageType::File,
        num_replicas: cfg.replicas,
        ..Default::default()
    })
    .await
    .map_err(|e| match e.kind() {
        js::context::CreateKeyValueErrorKind::TimedOut => unavailable(e),
        _ => StoreError::Rejected(format!("cannot create bucket {name}: {e}")),
    })
}

impl TokenRegistry for JetStreamStore {
    fn create<'a>(&'a self, record: &'a TokenRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            let value = serde_json::to_vec(record).map_err(|e| StoreError::Rejected(e.to_string()))?;
            match self.tokens.create(&record.id, value.into()).await {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    Err(StoreError::Rejected(format!("token id {} exists", record.id)))
                }
                Err(e) => Err(unavailable(e)),
            }
        }
        .boxed()
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<TokenRecord>, StoreError>> {
        async move {
            if !is_token_key(id) {
                return Ok(None);
            }
            let Some(value) = self.tokens.get(id).await.map_err(unavailable)? else { return Ok(None) };
            serde_json::from_slice(&value).map(Some).map_err(|e| StoreError::Rejected(format!("token {id}: {e}")))
        }
        .boxed()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<TokenRecord>, StoreError>> {
        async move {
            let mut keys = self.tokens.keys().await.map_err(unavailable)?;
            let mut records = Vec::new();
            while let Some(key) = keys.next().await {
                let key = key.map_err(unavailable)?;
                if let Some(record) = TokenRegistry::get(self, &key).await? {
                    records.push(record);
                }
            }
            records.sort_by_key(|a| a.created_at);
            Ok(records)
        }
        .boxed()
    }

    fn revoke<'a>(&'a self, id: &'a str, at: OffsetDateTime) -> BoxFuture<'a, Result<Option<TokenRecord>, StoreError>> {
        async move {
            if !is_token_key(id) {
                return Ok(None);
            }
            loop {
                let Some(entry) = self.tokens.entry(id).await.map_err(unavailable)? else { return Ok(None) };
                let mut record: TokenRecord = serde_json::from_slice(&entry.value)
                    .map_err(|e| StoreError::Rejected(format!("token {id}: {e}")))?;
                if record.revoked_at.is_some() {
                    return Ok(Some(record));
                }
                record.revoked_at = Some(at);
                let value = serde_json::to_vec(&record).map_err(|e| StoreError::Rejected(e.to_string()))?;
                // Optimistic: a concurrent change makes us read again rather than overwrite it.
                match self.tokens.update(id, value.into(), entry.revision).await {
                    Ok(_) => return Ok(Some(record)),
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                    Err(e) => return Err(unavailable(e)),
                }
            }
        }
        .boxed()
    }
}

/// Tickets remembered per contact.
const CONTACT_TICKETS: usize = 8;

/// A bucket key for free text (a Message-ID, an e-mail address): its SHA-256, so any text makes a valid key and the
/// bucket holds no contact details in the clear.
fn hashed_key(kind: &str, text: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text.as_bytes());
    let mut key = String::with_capacity(kind.len() + 1 + 64);
    key.push_str(kind);
    key.push('.');
    for b in digest {
        key.push_str(&format!("{b:02x}"));
    }
    key
}

/// Token ids are lowercase hex; anything else is no key of ours (and could be an invalid NATS subject).
fn is_token_key(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

struct JetStreamAcker(js::Message);

impl Acker for JetStreamAcker {
    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<(), StoreError>> {
        async move { self.0.ack().await.map_err(unavailable) }.boxed()
    }
    fn retry_later(self: Box<Self>, delay: Duration) -> BoxFuture<'static, Result<(), StoreError>> {
        async move { self.0.ack_with(AckKind::Nak(Some(delay))).await.map_err(unavailable) }.boxed()
    }
    fn progress(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        async move { self.0.ack_with(AckKind::Progress).await.map_err(unavailable) }.boxed()
    }
}

/// Passes `items` through until the client reconnects, then yields one `Unavailable` error and ends, so the owner
/// subscribes again from where it stands.
fn until_reconnected<T: Send + 'static>(
    items: impl futures_util::Stream<Item = Result<T, StoreError>> + Send + 'static,
    mut connections: watch::Receiver<u64>,
) -> BoxStream<'static, Result<T, StoreError>> {
    connections.mark_unchanged();
    let items = Box::pin(items);
    futures_util::stream::unfold(Some((items, connections)), |state| async move {
        let (mut items, mut connections) = state?;
        tokio::select! {
            item = items.next() => item.map(|item| (item, Some((items, connections)))),
            Ok(()) = connections.changed() => {
                Some((Err(StoreError::Unavailable("reconnected to NATS; subscribe again".to_owned())), None))
            }
        }
    })
    .boxed()
}

fn deliver_policy(from: Position) -> DeliverPolicy {
    match from {
        Position::Start => DeliverPolicy::All,
        Position::From(0) => DeliverPolicy::All,
        Position::From(start_sequence) => DeliverPolicy::ByStartSequence { start_sequence },
        Position::Time(start_time) => DeliverPolicy::ByStartTime { start_time },
        Position::New => DeliverPolicy::New,
    }
}


/// The hash of a stored commit's last event.
fn last_event_hash(payload: &[u8]) -> Option<String> {
    stored_events(payload).ok()?.pop().map(|(_, hash)| hash)
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Credentials written in a NATS URL.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum UrlCredentials {
    UserPassword(String, String),
    Token(String),
}

/// `nats://user:pass@host:4222` -> (`nats://host:4222`, user and password), percent-decoded; a URL without `@`
/// comes back as it is.
pub(crate) fn split_credentials(url: &str) -> (String, Option<UrlCredentials>) {
    // A cluster's seed list, `nats://u:p@h1:4222,nats://h2:4222`: each comes back bare; the first login is kept.
    if url.contains(',') {
        let mut login = None;
        let bare: Vec<String> = seeds(url)
            .iter()
            .map(|one| {
                let (bare, found) = split_credentials(one);
                login = login.take().or(found);
                bare
            })
            .collect();
        return (bare.join(","), login);
    }
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return (url.to_owned(), None) };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else { return (url.to_owned(), None) };
    let userinfo = &rest[..at];
    let bare = format!("{}{}", &url[..scheme_end], &rest[at + 1..]);
    let credentials = match userinfo.split_once(':') {
        Some((user, password)) => UrlCredentials::UserPassword(percent_decode(user), percent_decode(password)),
        None => UrlCredentials::Token(percent_decode(userinfo)),
    };
    (bare, Some(credentials))
}

/// The servers of a comma-separated URL list (one URL is a list of one): the client tries them all when it
/// connects and reconnects, so a cluster stays reachable while any node is.
pub(crate) fn seeds(url: &str) -> Vec<String> {
    url.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned).collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod url_tests {
    use super::{UrlCredentials, split_credentials};

    #[test]
    fn credentials_in_a_url_are_taken_out_and_decoded() {
        assert_eq!(
            split_credentials("nats://hotline:p%40ss@127.0.0.1:4222"),
            ("nats://127.0.0.1:4222".to_owned(), Some(UrlCredentials::UserPassword("hotline".into(), "p@ss".into())))
        );
        assert_eq!(
            split_credentials("tls://tok@nats.example:4222"),
            ("tls://nats.example:4222".to_owned(), Some(UrlCredentials::Token("tok".into())))
        );
        assert_eq!(split_credentials("nats://127.0.0.1:4222"), ("nats://127.0.0.1:4222".to_owned(), None));
        assert_eq!(split_credentials("127.0.0.1:4222"), ("127.0.0.1:4222".to_owned(), None));
        assert_eq!(split_credentials("nats://u:%zz@h:1").1, Some(UrlCredentials::UserPassword("u".into(), "%zz".into())));
        // A cluster's seed list: every URL bare, the login from whichever carries it.
        assert_eq!(
            split_credentials("nats://hotline:pw@127.0.0.1:1, nats://127.0.0.1:2,nats://hotline:pw@127.0.0.1:3"),
            (
                "nats://127.0.0.1:1,nats://127.0.0.1:2,nats://127.0.0.1:3".to_owned(),
                Some(UrlCredentials::UserPassword("hotline".into(), "pw".into()))
            )
        );
        assert_eq!(super::seeds("nats://a:1,nats://b:2"), vec!["nats://a:1".to_owned(), "nats://b:2".to_owned()]);
    }
}
