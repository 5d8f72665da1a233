//! Outbound replies against a real nats-server, with a channel that fails the way an outside gateway does:
//! transient failures are retried with growing delays, a permanent one is recorded, nothing is sent twice.

mod inbound;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use hotline_channel::{ChannelAdapter, ChannelContext, ChannelError, DeliveryError, DeliveryReceipt, OutboundMessage};
use hotline_domain::event::{Citizen, PetitionAnswered, PetitionReceived};
use hotline_domain::{Actor, CommandMeta, Envelope, Reference, TicketEvent};
use hotline_store::EventStore;
use hotline_testkit::TestNats;
use time::OffsetDateTime;
use uuid::Uuid;

/// Stands in for an outside SMS gateway: fails `transient` times, or always with `permanent`, then accepts.
struct Gateway {
    name: &'static str,
    answers: &'static [&'static str],
    fallback: &'static [&'static str],
    transient: AtomicU32,
    permanent: Option<&'static str>,
    sent: Mutex<Vec<(Uuid, String, Option<String>)>>,
}

impl ChannelAdapter for Gateway {
    fn name(&self) -> &'static str {
        self.name
    }
    fn answers_for(&self) -> &'static [&'static str] {
        self.answers
    }
    fn fallback_for(&self) -> &'static [&'static str] {
        self.fallback
    }
    fn http_routes(&self, _ctx: &ChannelContext) -> Option<axum::Router> {
        None
    }
    fn run(self: Arc<Self>, _ctx: ChannelContext) -> BoxFuture<'static, Result<(), ChannelError>> {
        async { Ok(()) }.boxed()
    }
    fn deliver<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<DeliveryReceipt, DeliveryError>> {
        async move {
            if let Some(reason) = self.permanent {
                return Err(DeliveryError::Permanent(reason.to_owned()));
            }
            if self.transient.load(Ordering::SeqCst) > 0 {
                self.transient.fetch_sub(1, Ordering::SeqCst);
                return Err(DeliveryError::Retryable("gateway busy".to_owned()));
            }
            self.sent.lock().expect("lock").push((message.id, message.text.clone(), message.to.clone()));
            Ok(DeliveryReceipt { channel_message_id: Some(format!("gw-{}", message.id)) })
        }
        .boxed()
    }
}

async fn answered_sms_ticket(store: &dyn EventStore) -> Uuid {
    answered_ticket(store, "sms", Citizen { phone: Some("+84912345678".into()), ..Default::default() }).await
}

async fn answered_ticket(store: &dyn EventStore, channel: &str, citizen: Citizen) -> Uuid {
    let ticket = Uuid::now_v7();
    let meta = CommandMeta { actor: Actor::channel(channel), occurred_at: OffsetDateTime::now_utc(), correlation_id: ticket, causation_id: None };
    let received = TicketEvent::PetitionReceived(PetitionReceived {
        citizen_key: None,
        reference: Reference::derive(ticket, 0),
        channel: channel.into(),
        channel_ref: None,
        text: "Mat dien o Phu Hoa".into(),
        subject: None,
        category: None,
        citizen: Some(citizen),
        location: None,
        attachments: vec![],
    });
    let a = store.append(ticket, 0, &Envelope::seal(ticket, 0, vec![received], &meta, Uuid::now_v7)).await.expect("received");
    let answer = TicketEvent::PetitionAnswered(PetitionAnswered { text: "Đã có điện lại".into(), agency: "evn".into(), via_ticket: None, attachments: vec![] });
    store.append(ticket, a.version, &Envelope::seal(ticket, 1, vec![answer], &meta, Uuid::now_v7)).await.expect("answered");
    ticket
}

async fn wait_for(store: &dyn EventStore, ticket: Uuid, event_type: &str) -> Vec<Envelope> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let events = store.load(ticket).await.expect("load").events;
        if events.iter().any(|e| e.event_type() == event_type) {
            return events;
        }
        assert!(tokio::time::Instant::now() < deadline, "no {event_type} on {ticket}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn transient_failures_are_retried_and_the_reply_is_sent_once_even_across_a_restart() {
    let nats = TestNats::start().await;
    let store: Arc<dyn EventStore> = Arc::new(nats.store().await);
    let gateway = Arc::new(Gateway { name: "sms", answers: &["phone"], fallback: &["zalo"], transient: AtomicU32::new(2), permanent: None, sent: Mutex::default() });
    let ticket = answered_sms_ticket(store.as_ref()).await;

    let (trigger, shutdown) = hotline_runtime::shutdown();
    let running = tokio::spawn(hotline_channel::outbound::run(gateway.clone(), store.clone(), shutdown));
    let events = wait_for(store.as_ref(), ticket, "ReplySent").await;
    trigger.trigger();
    running.await.expect("stopped");
    let sent = gateway.sent.lock().expect("lock").clone();
    assert_eq!(sent.len(), 1, "sent once, after two failures");
    assert_eq!(sent[0].2.as_deref(), Some("+84912345678"), "to the citizen's number");
    let answer_id = events.iter().find(|e| e.event_type() == "PetitionAnswered").expect("answer").event_id;
    assert_eq!(sent[0].0, answer_id, "the answer's event id is the message id (idempotency key)");

    // A restart of the consumer (a new durable subscription from its last ack) sends nothing again.
    let (trigger, shutdown) = hotline_runtime::shutdown();
    let running = tokio::spawn(hotline_channel::outbound::run(gateway.clone(), store.clone(), shutdown));
    tokio::time::sleep(Duration::from_secs(2)).await;
    trigger.trigger();
    running.await.expect("stopped");
    assert_eq!(gateway.sent.lock().expect("lock").len(), 1);
    let sent_events = store.load(ticket).await.expect("load").events.iter().filter(|e| e.event_type() == "ReplySent").count();
    assert_eq!(sent_events, 1);
}

#[tokio::test]
async fn a_permanent_failure_is_recorded_as_reply_failed_and_not_retried() {
    let nats = TestNats::start().await;
    let store: Arc<dyn EventStore> = Arc::new(nats.store().await);
    let gateway = Arc::new(Gateway { name: "sms", answers: &["phone"], fallback: &["zalo"], transient: AtomicU32::new(0), permanent: Some("number not reachable"), sent: Mutex::default() });
    let ticket = answered_sms_ticket(store.as_ref()).await;
    let (trigger, shutdown) = hotline_runtime::shutdown();
    let running = tokio::spawn(hotline_channel::outbound::run(gateway.clone(), store.clone(), shutdown));
    let events = wait_for(store.as_ref(), ticket, "ReplyFailed").await;
    trigger.trigger();
    running.await.expect("stopped");
    let failed = events.iter().find_map(|e| match &e.event {
        TicketEvent::ReplyFailed(f) => Some(f.clone()),
        _ => None,
    });
    let failed = failed.expect("ReplyFailed");
    assert_eq!((failed.reason.as_str(), failed.attempts), ("number not reachable", 1));
    assert!(gateway.sent.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn sms_answers_phone_callers_and_a_landline_caller_becomes_a_call_back() {
    let nats = TestNats::start().await;
    let store: Arc<dyn EventStore> = Arc::new(nats.store().await);
    let gateway = Arc::new(Gateway { name: "sms", answers: &["phone"], fallback: &["zalo"], transient: AtomicU32::new(0), permanent: None, sent: Mutex::default() });
    let mobile = answered_ticket(store.as_ref(), "phone", Citizen { phone: Some("0912345678".into()), ..Default::default() }).await;
    let landline = answered_ticket(store.as_ref(), "phone", Citizen { phone: Some("02743822222".into()), ..Default::default() }).await;
    let (trigger, shutdown) = hotline_runtime::shutdown();
    let running = tokio::spawn(hotline_channel::outbound::run(gateway.clone(), store.clone(), shutdown));
    wait_for(store.as_ref(), mobile, "ReplySent").await;
    let events = wait_for(store.as_ref(), landline, "ReplyFailed").await;
    trigger.trigger();
    running.await.expect("stopped");
    let sent = gateway.sent.lock().expect("lock").clone();
    assert_eq!(sent.len(), 1, "only the mobile caller gets an SMS");
    assert_eq!(sent[0].2.as_deref(), Some("0912345678"));
    let reason = events.iter().find_map(|e| match &e.event {
        TicketEvent::ReplyFailed(f) => Some(f.reason.clone()),
        _ => None,
    });
    assert!(reason.is_some_and(|r| r.starts_with(hotline_domain::event::NO_MOBILE_NUMBER)));
}

#[tokio::test]
async fn sms_takes_over_a_reply_zalo_gave_up_on_when_the_mobile_number_is_known() {
    let nats = TestNats::start().await;
    let store: Arc<dyn EventStore> = Arc::new(nats.store().await);
    let zalo = Arc::new(Gateway { name: "zalo", answers: &[], fallback: &[], transient: AtomicU32::new(0), permanent: Some("-230 no interaction in 7 days"), sent: Mutex::default() });
    let sms = Arc::new(Gateway { name: "sms", answers: &["phone"], fallback: &["zalo"], transient: AtomicU32::new(0), permanent: None, sent: Mutex::default() });
    let with_phone = answered_ticket(store.as_ref(), "zalo", Citizen { zalo_id: Some("8381381219617247797".into()), phone: Some("84912345678".into()), ..Default::default() }).await;
    let without = answered_ticket(store.as_ref(), "zalo", Citizen { zalo_id: Some("1923626015168953374".into()), ..Default::default() }).await;
    let (trigger, shutdown) = hotline_runtime::shutdown();
    let running_zalo = tokio::spawn(hotline_channel::outbound::run(zalo.clone(), store.clone(), shutdown.clone()));
    let running_sms = tokio::spawn(hotline_channel::outbound::run(sms.clone(), store.clone(), shutdown));
    let events = wait_for(store.as_ref(), with_phone, "ReplySent").await;
    wait_for(store.as_ref(), without, "ReplyFailed").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    trigger.trigger();
    running_zalo.await.expect("stopped");
    running_sms.await.expect("stopped");
    let sent = sms.sent.lock().expect("lock").clone();
    assert_eq!(sent.len(), 1, "one SMS, to the citizen whose number is known");
    assert_eq!(sent[0].2.as_deref(), Some("84912345678"));
    let kinds: Vec<(&str, String)> = events
        .iter()
        .filter_map(|e| match &e.event {
            TicketEvent::ReplyFailed(f) => Some(("failed", f.channel.clone())),
            TicketEvent::ReplySent(r) => Some(("sent", r.channel.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, vec![("failed", "zalo".to_owned()), ("sent", "sms".to_owned())]);
    let without_events = store.load(without).await.expect("load").events;
    assert!(!without_events.iter().any(|e| e.event_type() == "ReplySent"));
}
