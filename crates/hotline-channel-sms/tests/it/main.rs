//! Integration tests of the SMS channel against real peers: a test SMSC over loopback (on the independent `rusmpp`
//! codec), real HTTP webhooks and stand-ins of the eSMS and Twilio send APIs speaking their wire formats, all in
//! front of a real `Intake` on a real nats-server. Assertions look at what landed in the event log.

mod corpus;
mod outbound;
mod smpp;
mod smsc;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use hotline_channel::{ChannelContext, Intake};
use hotline_domain::TicketEvent;
use hotline_domain::province::Province;
use hotline_runtime::ShutdownTrigger;
use hotline_store::{EventStore, JetStreamStore};
use hotline_testkit::TestNats;
use uuid::Uuid;

/// A nats-server, its store and an intake in front of it.
pub struct Harness {
    pub nats: TestNats,
    pub store: Arc<JetStreamStore>,
    pub intake: Intake,
}

impl Harness {
    pub async fn start() -> Harness {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber_init();
        }
        let nats = TestNats::start().await;
        let store = Arc::new(nats.store().await);
        let province =
            Arc::new(Province::parse(Province::BUNDLED, "bundled").expect("bundled province"));
        let intake = Intake::new(store.clone(), province);
        Harness {
            nats,
            store,
            intake,
        }
    }

    pub fn context(&self, config: serde_json::Value) -> (ChannelContext, ShutdownTrigger) {
        let (trigger, shutdown) = hotline_runtime::shutdown();
        let blobs = hotline_channel::blobs::BlobStore::new(self.nats.dir.path().join("blobs"));
        (
            ChannelContext {
                state: hotline_channel::ChannelState::new(self.intake.event_store(), "sms"),
                intake: self.intake.clone(),
                config,
                shutdown,
                blobs,
                data_dir: self.nats.dir.path().to_owned(),
            },
            trigger,
        )
    }

    /// The stored tickets a phone number opened, each as its events.
    pub async fn tickets_of(&self, phone: &str) -> Vec<(Uuid, Vec<TicketEvent>)> {
        let mut out = Vec::new();
        for ticket in self
            .store
            .contact_tickets(&format!("phone:{phone}"))
            .await
            .expect("contact tickets")
        {
            let events: Vec<TicketEvent> = self
                .store
                .load(ticket)
                .await
                .expect("load")
                .events
                .into_iter()
                .map(|e| e.event)
                .collect();
            if !events.is_empty() {
                out.push((ticket, events));
            }
        }
        out
    }

    /// The petition texts a phone number's tickets started with.
    pub async fn petitions_of(&self, phone: &str) -> Vec<String> {
        self.tickets_of(phone)
            .await
            .into_iter()
            .filter_map(|(_, events)| match events.first() {
                Some(TicketEvent::PetitionReceived(p)) => Some(p.text.clone()),
                _ => None,
            })
            .collect()
    }

    /// Waits until `phone` has `count` petitions, and returns their texts.
    pub async fn wait_for_petitions(&self, phone: &str, count: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let texts = self.petitions_of(phone).await;
            if texts.len() >= count {
                return texts;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{phone} has {} petitions, not {count}",
                texts.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn tracing_subscriber_init() -> Result<(), ()> {
    // Only the channel's own log lines, to stderr, when TEST_LOG is set.
    tracing::subscriber::set_global_default(TestLog).map_err(|_| ())
}

/// A minimal subscriber that prints events' messages and fields (the workspace keeps tracing-subscriber out of
/// this crate's dependencies).
struct TestLog;

impl tracing::Subscriber for TestLog {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!(" {}={:?}", field.name(), value));
            }
        }
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        eprintln!(
            "{} {}:{}",
            event.metadata().level(),
            event.metadata().target(),
            fields.0
        );
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
