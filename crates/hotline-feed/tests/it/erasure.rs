//! Erasure in the feed: once a ticket's personal data is erased, its earlier agency copies are gone from the stream
//! and from the stream's store files, also when the projector died between publishing the erasure and erasing;
//! later copies carry "[erased]".

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use hotline_domain::event::{Citizen, CitizenWrote, ErasureReason, PersonalDataErased, PetitionReceived, PetitionRouted};
use hotline_domain::{Actor, CommandMeta, Envelope, Reference, TicketEvent};
use hotline_store::{EventStore, FeedEntry, FeedError, FeedLog, FeedStored, FeedTip, JetStreamStore, StoreError};
use hotline_testkit::TestNats;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::support::*;

/// What only this test's citizen wrote or is: none of it may stay in the feed after the erasure.
const SECRETS: [&str; 4] = ["Trần Văn Khoa", "84987654321", "khoa.tran@example.vn", "Cống thoát nước trước nhà 47"];

/// The real feed, except that erasing never finishes: the projector is killed there.
struct DiesBeforeErasing(hotline_store::JetStreamFeed);

impl FeedLog for DiesBeforeErasing {
    fn tip(&self) -> BoxFuture<'_, Result<FeedTip, StoreError>> {
        self.0.tip()
    }
    fn last_log_id(&self) -> BoxFuture<'_, Result<Option<String>, StoreError>> {
        FeedLog::last_log_id(&self.0)
    }
    fn publish<'a>(&'a self, expected: u64, entry: &'a FeedEntry) -> BoxFuture<'a, Result<u64, FeedError>> {
        self.0.publish(expected, entry)
    }
    fn publish_all<'a>(&'a self, expected: u64, entries: &'a [FeedEntry]) -> BoxFuture<'a, Result<u64, FeedError>> {
        self.0.publish_all(expected, entries)
    }
    fn find<'a>(&'a self, filter: &'a str) -> BoxFuture<'a, Result<Vec<FeedStored>, StoreError>> {
        self.0.find(filter)
    }
    fn erase<'a>(&'a self, _: &'a [u64]) -> BoxFuture<'a, Result<(), StoreError>> {
        std::future::pending().boxed()
    }
}

async fn append(store: &JetStreamStore, ticket: Uuid, version: u64, seq: u64, events: Vec<TicketEvent>) -> u64 {
    let meta = CommandMeta { actor: Actor::system("test"), occurred_at: OffsetDateTime::now_utc(), correlation_id: ticket, causation_id: None };
    let envelopes = Envelope::seal(ticket, seq, events, &meta, Uuid::now_v7);
    store.append(ticket, version, &envelopes).await.expect("append").version
}

fn wrote(text: &str) -> TicketEvent {
    TicketEvent::CitizenWrote(CitizenWrote { text: text.to_owned(), channel: "sms".into(), channel_ref: None, attachments: vec![] })
}

/// The files of the feed stream's store (`.../streams/HOTLINE_FEED/...`) under `dir`.
fn feed_store_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.components().any(|c| c.as_os_str() == "HOTLINE_FEED") {
                out.push(path);
            }
        }
    }
    out
}

/// The secrets found in the feed stream's store files, with the file.
fn secrets_on_disk(dir: &Path) -> Vec<(String, PathBuf)> {
    let files = feed_store_files(dir);
    assert!(!files.is_empty(), "no store files of HOTLINE_FEED under {}", dir.display());
    let mut found = Vec::new();
    for file in files {
        let bytes = std::fs::read(&file).unwrap_or_default();
        for secret in SECRETS {
            if bytes.windows(secret.len()).any(|w| w == secret.as_bytes()) {
                found.push((secret.to_owned(), file.clone()));
            }
        }
    }
    found
}

/// Waits until the feed's last message is `id` (a liveness bound).
async fn wait_for_tip(nats: &TestNats, id: &str) {
    let feed = open_feed(nats).await;
    let js = feed_client(&nats.server.feed_url()).await;
    let stream = js.get_stream("HOTLINE_FEED").await.expect("stream");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tip = feed.tip().await.expect("tip").sequence;
        if tip > 0 {
            let m = stream.get_raw_message(tip).await.expect("tip message");
            if m.headers.get("Nats-Msg-Id").map(|v| v.as_str()) == Some(id) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the feed never reached {id}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_tickets_agency_copies_leave_the_stream_and_its_files_even_after_a_crash_before_erasing() {
    let nats = TestNats::start().await;
    let store = Arc::new(nats.store().await);
    // Other tickets around it, some of them erased too.
    let mut rng = Rng::new("erasure");
    let mut writer = Writer::new(store.clone());
    for _ in 0..60 {
        writer.step(&mut rng).await;
    }
    let ticket = Uuid::now_v7();
    let [name, phone, email, text] = SECRETS;
    let received = TicketEvent::PetitionReceived(PetitionReceived {
        reference: Reference::derive(ticket, 0),
        channel: "sms".into(),
        channel_ref: None,
        text: text.into(),
        subject: None,
        category: None,
        citizen: Some(Citizen { name: Some(name.into()), phone: Some(phone.into()), email: Some(email.into()), zalo_id: None }),
        location: None,
        attachments: vec![],
        citizen_key: None,
    });
    let routed = TicketEvent::PetitionRouted(PetitionRouted { agency: "police".into(), area: None, emergency: false, acknowledge_by: None, resolve_by: None });
    let mut version = append(&store, ticket, 0, 0, vec![received]).await;
    version = append(&store, ticket, version, 1, vec![routed]).await;
    version = append(&store, ticket, version, 2, vec![wrote(&format!("{text}, gọi {phone}"))]).await;
    for _ in 0..20 {
        writer.step(&mut rng).await;
    }
    let before = expected_feed(&store).await;
    let projector = start_projector(&nats).await;
    wait_for_feed(&nats, &before).await;
    projector.trigger.trigger();
    let _ = projector.task.await;
    let dir = nats.dir.path().to_path_buf();
    assert!(!secrets_on_disk(&dir).is_empty(), "the agency copies hold the plaintext before the erasure");

    // The erasure, then a message decrypted with a key cached before it: plaintext in its body.
    let erased = TicketEvent::PersonalDataErased(PersonalDataErased { reason: ErasureReason::Request });
    version = append(&store, ticket, version, 3, vec![erased]).await;
    append(&store, ticket, version, 4, vec![wrote(&format!("{name} {phone}"))]).await;
    let published = expected_feed(&store).await;
    let erasure_id = published.iter().rfind(|e| e.subject.contains(".personal_data_erased.") && e.subject.ends_with(&ticket.to_string())).expect("erasure").id.clone();

    // A projector publishes the erasure and dies before erasing anything.
    let store_for_projector = Arc::new(nats.store().await);
    let dying: Arc<dyn FeedLog> = Arc::new(DiesBeforeErasing(open_feed(&nats).await));
    let (_trigger, shutdown) = hotline_runtime::shutdown();
    let task = tokio::spawn(hotline_feed::Projector::new(store_for_projector, dying, PROVINCE).run(shutdown));
    wait_for_tip(&nats, &erasure_id).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    task.abort();
    let _ = task.await;
    let copies = read_feed(&nats, &format!("hotline.feed.v1.police.*.{ticket}")).await;
    assert!(copies.len() >= 3, "the crash came before erasing: the earlier copies are still there ({})", copies.len());

    // The next projector finishes the erasure from the feed's tip, and goes on.
    let projector = start_projector(&nats).await;
    wait_for_feed(&nats, &published).await;
    projector.trigger.trigger();
    let _ = projector.task.await;
    assert_feed_is(&published, &read_feed(&nats, "hotline.feed.v1.>").await);

    // Subscribers: the police feed keeps the erasure and what came after, with [erased] for the plaintext.
    let police = read_feed(&nats, &format!("hotline.feed.v1.police.*.{ticket}")).await;
    let types: Vec<&str> = police.iter().map(|m| m.subject.split('.').nth(4).expect("type")).collect();
    assert_eq!(types, ["personal_data_erased", "citizen_wrote"], "only the copies from the erasure on stay");
    let after: serde_json::Value = serde_json::from_slice(&police[1].payload).expect("json");
    assert_eq!(after["text"], "[erased]");
    for m in read_feed(&nats, &format!("hotline.feed.v1.*.*.{ticket}")).await {
        let body = String::from_utf8_lossy(&m.payload);
        for secret in SECRETS {
            assert!(!body.contains(secret), "{} still carries {secret:?}", m.subject);
        }
    }
    // The store files: the bytes are overwritten, not just unindexed.
    let left = secrets_on_disk(&dir);
    assert!(left.is_empty(), "plaintext left in HOTLINE_FEED's files: {left:?}");

    // A figure, not a check: finding and erasing one ticket's copies (nothing left to erase) in this feed.
    let feed = open_feed(&nats).await;
    let position = published.iter().find(|e| e.id == erasure_id).expect("erasure").mark.position;
    let messages = feed.tip().await.expect("tip").sequence;
    let started = Instant::now();
    let n = hotline_feed::erase_earlier_copies(&feed, ticket, position).await.expect("erase again");
    eprintln!("erasure pass again: {n} erased, {:?} over a feed of {messages} messages", started.elapsed());
    assert_eq!(n, 0, "idempotent");
    eprintln!("{} tickets erased by the writer besides this one", writer.erased.len());
}
