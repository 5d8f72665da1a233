//! What the projector tests share: a writer of realistic ticket histories, the feed the log implies, the feed as a
//! subscriber reads it, and the comparison of the two.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hotline_domain::event::{Citizen, ErasureReason, PersonalDataErased, PetitionAcknowledged, PetitionAnswered, PetitionCategorized, PetitionReceived, PetitionRouted, TicketClosed};
use hotline_contract::FeedTicket;
use hotline_domain::{Actor, CommandMeta, Envelope, Reference, TicketEvent};
use hotline_feed::{Projector, commit_entries};
use hotline_runtime::{Shutdown, ShutdownTrigger};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use hotline_store::{EventStore, FeedEntry, FeedError, FeedLog, FeedStored, FeedTip, JetStreamConfig, JetStreamFeed, JetStreamStore, Position, StoreError};
use hotline_testkit::TestNats;
use time::OffsetDateTime;
use uuid::Uuid;

pub const PROVINCE: &str = "binhduong";
pub const AGENCIES: [&str; 3] = ["police", "hcc", "police_traffic"];
/// Personal data written into every petition: none of it may appear in a feed header.
pub const NAME: &str = "Nguyễn Thị Hoa";
pub const PHONE: &str = "84912345678";
pub const EMAIL: &str = "hoa.nguyen@example.vn";
pub const TEXT: &str = "Đèn đường trước nhà số 12 hẻm 3 bị hỏng";

/// A small deterministic generator (xorshift64*), seeded per test; the seed is printed so a failure can be replayed
/// with `FEED_TEST_SEED`.
pub struct Rng(pub u64);

impl Rng {
    pub fn new(test: &str) -> Rng {
        let seed = std::env::var("FEED_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| OffsetDateTime::now_utc().unix_timestamp_nanos() as u64);
        eprintln!("{test}: FEED_TEST_SEED={seed}");
        Rng(seed | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// Appends ticket lifecycles to the log: received (with a citizen's contact and text), categorised and routed in
/// one commit, acknowledged, answered, closed; after the routing, now and then the citizen's personal data is
/// erased (once per ticket) and the life goes on.
pub struct Writer {
    store: Arc<JetStreamStore>,
    /// Open tickets: (version, last seq, next stage, agency).
    tickets: Vec<(Uuid, u64, u64, usize, &'static str)>,
    /// Tickets whose personal data is erased.
    pub erased: HashSet<Uuid>,
    pub commits: usize,
}

impl Writer {
    pub fn new(store: Arc<JetStreamStore>) -> Writer {
        Writer { store, tickets: Vec::new(), erased: HashSet::new(), commits: 0 }
    }

    /// One commit: a new ticket, or the next step of an open one.
    pub async fn step(&mut self, rng: &mut Rng) {
        if self.tickets.is_empty() || rng.below(3) == 0 {
            let ticket = Uuid::now_v7();
            let agency = AGENCIES[rng.below(AGENCIES.len() as u64) as usize];
            let event = TicketEvent::PetitionReceived(PetitionReceived {
                citizen_key: None,
                reference: Reference::derive(ticket, 0),
                channel: "sms".to_owned(),
                channel_ref: Some(format!("sms-{ticket}")),
                text: TEXT.to_owned(),
                subject: Some("Đèn đường".to_owned()),
                category: None,
                citizen: Some(Citizen { name: Some(NAME.to_owned()), phone: Some(PHONE.to_owned()), email: Some(EMAIL.to_owned()), zalo_id: None }),
                location: None,
                attachments: vec![],
            });
            let version = self.append(ticket, 0, 0, vec![event]).await;
            self.tickets.push((ticket, version, 1, 1, agency));
            return;
        }
        let i = rng.below(self.tickets.len() as u64) as usize;
        let (ticket, version, seq, stage, agency) = self.tickets[i];
        if stage >= 2 && !self.erased.contains(&ticket) && rng.below(4) == 0 {
            let event = TicketEvent::PersonalDataErased(PersonalDataErased { reason: ErasureReason::Request });
            let version = self.append(ticket, version, seq, vec![event]).await;
            self.erased.insert(ticket);
            self.tickets[i] = (ticket, version, seq + 1, stage, agency);
            return;
        }
        let events = match stage {
            1 => vec![
                TicketEvent::PetitionCategorized(PetitionCategorized {
                    category: "traffic_infrastructure".to_owned(),
                    area: None,
                    emergency: false,
                    confidence: 0.9,
                    source: "classifier".to_owned(),
                    matched: vec!["category:traffic_infrastructure 'den duong'".to_owned()],
                }),
                TicketEvent::PetitionRouted(PetitionRouted { agency: agency.to_owned(), area: None, emergency: false, acknowledge_by: None, resolve_by: None }),
            ],
            2 => vec![TicketEvent::PetitionAcknowledged(PetitionAcknowledged { agency: agency.to_owned() })],
            3 => vec![TicketEvent::PetitionAnswered(PetitionAnswered {
                text: "Đã sửa xong".to_owned(),
                agency: agency.to_owned(),
                via_ticket: None,
                attachments: vec![],
            })],
            _ => vec![TicketEvent::TicketClosed(TicketClosed { reason: None })],
        };
        let count = events.len() as u64;
        let version = self.append(ticket, version, seq, events).await;
        if stage >= 4 {
            self.tickets.swap_remove(i);
        } else {
            self.tickets[i] = (ticket, version, seq + count, stage + 1, agency);
        }
    }

    async fn append(&mut self, ticket: Uuid, version: u64, last_seq: u64, events: Vec<TicketEvent>) -> u64 {
        let meta = CommandMeta { actor: Actor::system("test"), occurred_at: OffsetDateTime::now_utc(), correlation_id: ticket, causation_id: None };
        let envelopes = Envelope::seal(ticket, last_seq, events, &meta, Uuid::now_v7);
        let appended = self.store.append(ticket, version, &envelopes).await.expect("append");
        self.commits += 1;
        appended.version
    }
}

/// Every feed message the whole log implies, in order, as published: computed commit by commit from a fresh fold of
/// each ticket. (What stays in the feed is [`after_erasures`] of it.)
pub async fn expected_feed(store: &JetStreamStore) -> Vec<FeedEntry> {
    let last = store.last_position().await.expect("last position");
    let mut expected = Vec::new();
    if last == 0 {
        return expected;
    }
    let mut tickets: HashMap<Uuid, FeedTicket> = HashMap::new();
    let mut commits = store.subscribe(Position::Start).await.expect("subscribe");
    while let Some(commit) = commits.next().await {
        let commit = commit.expect("commit");
        let ticket = tickets.entry(commit.ticket_id).or_default();
        expected.extend(commit_entries(&commit, ticket, PROVINCE));
        if commit.position >= last {
            break;
        }
    }
    expected
}

/// What stays of `published` once each erasure has removed its ticket's earlier agency copies.
pub fn after_erasures(published: &[FeedEntry]) -> Vec<FeedEntry> {
    let erasures: HashMap<Uuid, u64> = published
        .iter()
        .filter(|e| e.subject.contains(".personal_data_erased."))
        .filter_map(|e| Some((hotline_contract::parse_subject(&e.subject)?.1, e.mark.position)))
        .collect();
    published
        .iter()
        .filter(|e| match hotline_contract::parse_subject(&e.subject) {
            Some((audience, ticket)) if audience != hotline_contract::PUBLIC => {
                erasures.get(&ticket).is_none_or(|at| e.mark.position >= *at)
            }
            _ => true,
        })
        .cloned()
        .collect()
}

/// A feed message as a subscriber gets it.
#[derive(Debug, Clone)]
pub struct Received {
    pub sequence: u64,
    pub subject: String,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub fn received(m: &async_nats::jetstream::Message) -> Received {
    let info = m.info().expect("JetStream metadata");
    let headers = m
        .headers
        .iter()
        .flat_map(|h| h.iter())
        .flat_map(|(k, vs)| vs.iter().map(move |v| (k.to_string(), v.as_str().to_owned())))
        .collect();
    Received { sequence: info.stream_sequence, subject: m.subject.to_string(), headers, payload: m.payload.to_vec() }
}

/// A plain client of the feed's account (`feed_url` carries the credentials), as a subscriber's tool connects.
pub async fn feed_client(feed_url: &str) -> async_nats::jetstream::Context {
    let rest = feed_url.strip_prefix("nats://").expect("a nats:// URL");
    let (userinfo, host) = rest.rsplit_once('@').expect("credentials in the URL");
    let (user, password) = userinfo.split_once(':').expect("user:password");
    let client = async_nats::ConnectOptions::with_user_and_password(user.to_owned(), password.to_owned())
        .connect(host)
        .await
        .expect("client connects");
    async_nats::jetstream::new(client)
}

/// Reads the whole feed as a subscriber would (an ordered consumer on HOTLINE_FEED, optionally filtered).
pub async fn read_feed(nats: &TestNats, filter: &str) -> Vec<Received> {
    use async_nats::jetstream::consumer::pull::OrderedConfig;
    let js = feed_client(&nats.server.feed_url()).await;
    let mut stream = js.get_stream("HOTLINE_FEED").await.expect("feed stream");
    let last = stream.info().await.expect("info").state.last_sequence;
    let mut out = Vec::new();
    if last == 0 {
        return out;
    }
    let consumer = stream
        .create_consumer(OrderedConfig { filter_subject: filter.to_owned(), ..Default::default() })
        .await
        .expect("consumer");
    let mut messages = consumer.messages().await.expect("messages");
    loop {
        let next = tokio::time::timeout(Duration::from_secs(2), messages.next()).await;
        match next {
            Ok(Some(m)) => {
                let r = received(&m.expect("message"));
                let done = r.sequence >= last;
                out.push(r);
                if done {
                    break;
                }
            }
            // A filtered consumer never sees the last sequence when it is another audience's.
            _ => break,
        }
    }
    out
}

/// Waits until the feed is done with `published` (a liveness bound, not a speed check): its last message is the last
/// one published and it holds as many messages as stay after the erasures; then a moment more so that an extra
/// message would show.
pub async fn wait_for_feed(nats: &TestNats, published: &[FeedEntry]) {
    let n = after_erasures(published).len();
    let last = published.last().map(|e| e.id.clone());
    let js = feed_client(&nats.server.feed_url()).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (count, tip) = match js.get_stream("HOTLINE_FEED").await {
            Ok(mut s) => {
                let info = s.info().await.map(|i| (i.state.messages, i.state.last_sequence)).unwrap_or((0, 0));
                let tip = match info.1 {
                    0 => None,
                    seq => s.get_raw_message(seq).await.ok().and_then(|m| m.headers.get("Nats-Msg-Id").map(|v| v.as_str().to_owned())),
                };
                (info.0, tip)
            }
            Err(_) => (0, None),
        };
        if count as usize == n && tip == last {
            break;
        }
        assert!(Instant::now() < deadline, "the feed holds {count} messages ending with {tip:?}, {n} ending with {last:?} expected, after 90 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// The feed must be exactly the published messages that stay after the erasures, in order, each once, with the
/// marks and attributes they imply.
pub fn assert_feed_is(published: &[FeedEntry], feed: &[Received]) {
    let expected = &after_erasures(published)[..];
    let ids: Vec<&str> = feed.iter().map(|m| m.header("Nats-Msg-Id").expect("Nats-Msg-Id")).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a message was published twice");
    for (i, (want, got)) in expected.iter().zip(feed).enumerate() {
        assert_eq!(got.header("Nats-Msg-Id"), Some(want.id.as_str()), "message {i}: wrong message (a skip or a reorder)");
        assert_eq!(got.subject, want.subject, "message {i}");
        assert_eq!(got.header("Hotline-Log-Position"), Some(want.mark.position.to_string().as_str()), "message {i}");
        assert_eq!(got.header("Hotline-Part"), Some(format!("{}/{}", want.mark.part, want.mark.parts).as_str()), "message {i}");
        for (name, value) in &want.attributes {
            assert_eq!(got.header(name), Some(value.as_str()), "message {i}: header {name}");
        }
        assert_eq!(got.payload, want.payload, "message {i}: payload");
    }
    assert_eq!(feed.len(), expected.len(), "the feed holds {} messages, the log implies {}", feed.len(), expected.len());
}

/// A running projector and the trigger that stops it.
pub struct Running {
    pub trigger: ShutdownTrigger,
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts a projector with its own connection (as a separate process would have).
pub async fn start_projector(nats: &TestNats) -> Running {
    let feed: Arc<dyn FeedLog> = Arc::new(open_feed(nats).await);
    start_projector_on(nats, feed).await
}

/// Starts a projector whose every publish waits a random 0-250 ms first (see [`Jittered`]).
pub async fn start_jittered_projector(nats: &TestNats, seed: u64) -> Running {
    let feed: Arc<dyn FeedLog> = Arc::new(Jittered { inner: open_feed(nats).await, state: std::sync::Mutex::new(Rng(seed | 1)) });
    start_projector_on(nats, feed).await
}

async fn start_projector_on(nats: &TestNats, feed: Arc<dyn FeedLog>) -> Running {
    let store = Arc::new(nats.store().await);
    let (trigger, shutdown): (ShutdownTrigger, Shutdown) = hotline_runtime::shutdown();
    let task = tokio::spawn(Projector::new(store, feed, PROVINCE).run(shutdown));
    Running { trigger, task }
}

/// The feed as the projector's user opens it. Its deduplication window is cut to the server's minimum
/// (100 ms): exactly-once must hold without it.
pub async fn open_feed(nats: &TestNats) -> JetStreamFeed {
    let cfg = JetStreamConfig { feed_duplicate_window: Duration::from_millis(100), ..JetStreamConfig::default() };
    JetStreamFeed::connect(&nats.server.feed_url(), &cfg).await.expect("feed opens")
}

/// The real feed, with a random pause before each publish (and each pipelined batch): two projectors then send the same message further apart
/// than the deduplication window (100 ms in these tests), so only the conditional append keeps it from being
/// stored twice.
pub struct Jittered {
    inner: JetStreamFeed,
    state: std::sync::Mutex<Rng>,
}

impl FeedLog for Jittered {
    fn tip(&self) -> BoxFuture<'_, Result<FeedTip, StoreError>> {
        self.inner.tip()
    }

    fn last_log_id(&self) -> BoxFuture<'_, Result<Option<String>, StoreError>> {
        FeedLog::last_log_id(&self.inner)
    }

    fn find<'a>(&'a self, filter: &'a str) -> BoxFuture<'a, Result<Vec<FeedStored>, StoreError>> {
        self.inner.find(filter)
    }

    fn erase<'a>(&'a self, sequences: &'a [u64]) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.erase(sequences)
    }

    fn publish<'a>(&'a self, expected: u64, entry: &'a FeedEntry) -> BoxFuture<'a, Result<u64, FeedError>> {
        self.after_a_pause(self.inner.publish(expected, entry))
    }

    /// A pause before each pipelined batch, so two projectors' batches overlap at random points.
    fn publish_all<'a>(&'a self, expected: u64, entries: &'a [FeedEntry]) -> BoxFuture<'a, Result<u64, FeedError>> {
        self.after_a_pause(self.inner.publish_all(expected, entries))
    }
}

impl Jittered {
    /// Runs `publish` after a random pause of up to 250 ms.
    fn after_a_pause<'a, T: Send + 'a>(&'a self, publish: BoxFuture<'a, T>) -> BoxFuture<'a, T> {
        let pause = self.state.lock().expect("the jitter's generator").below(250);
        async move {
            tokio::time::sleep(Duration::from_millis(pause)).await;
            publish.await
        }
        .boxed()
    }
}
