//! The scheduler against a real nats-server and a real projection: alarms fire once, whatever restarts and
//! concurrent schedulers do.

use std::sync::Arc;
use std::time::Duration;

use hotline_domain::event::{DeadlineKind, PetitionReceived, PetitionRouted};
use hotline_domain::{Actor, CommandMeta, Envelope, Reference, TicketEvent};
use hotline_projections::TimelineReader;
use hotline_scheduler::Scheduler;
use hotline_store::EventStore;
use hotline_testkit::TestNats;
use time::OffsetDateTime;
use uuid::Uuid;

async fn routed_ticket(store: &dyn EventStore, ack_by: OffsetDateTime, resolve_by: OffsetDateTime) -> Uuid {
    let ticket = Uuid::now_v7();
    let meta = CommandMeta { actor: Actor::system("test"), occurred_at: OffsetDateTime::now_utc(), correlation_id: ticket, causation_id: None };
    let events = vec![
        TicketEvent::PetitionReceived(PetitionReceived {
            citizen_key: None,
            reference: Reference::derive(ticket, 0),
            channel: "app".into(),
            channel_ref: None,
            text: "Ổ gà".into(),
            subject: None,
            category: Some("traffic_infrastructure".into()),
            citizen: None,
            location: None,
            attachments: vec![],
        }),
        TicketEvent::PetitionRouted(PetitionRouted {
            agency: "dot".into(),
            area: None,
            emergency: false,
            acknowledge_by: Some(ack_by),
            resolve_by: Some(resolve_by),
        }),
    ];
    store.append(ticket, 0, &Envelope::seal(ticket, 0, events, &meta, Uuid::now_v7)).await.expect("append");
    ticket
}

/// A real nats-server, its store, and the timeline projection following it in a temp dir.
struct World {
    _nats: TestNats,
    _dir: tempfile::TempDir,
    store: Arc<dyn EventStore>,
    reader: TimelineReader,
    trigger: hotline_runtime::ShutdownTrigger,
    projection: tokio::task::JoinHandle<Result<(), hotline_projections::ProjectionError>>,
}

impl World {
    async fn start() -> World {
        let nats = TestNats::start().await;
        let store: Arc<dyn EventStore> = Arc::new(nats.store().await);
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("p.sqlite");
        let (trigger, shutdown) = hotline_runtime::shutdown();
        let projection = tokio::spawn(hotline_projections::run(store.clone(), path.clone(), shutdown));
        let reader = TimelineReader::open(&path).expect("reader");
        World { _nats: nats, _dir: dir, store, reader, trigger, projection }
    }

    async fn stop(self) {
        self.trigger.trigger();
        self.projection.await.expect("joined").expect("projection ran");
    }
}

fn missed(events: &[Envelope]) -> usize {
    events.iter().filter(|e| matches!(&e.event, TicketEvent::DeadlineMissed(m) if m.which == DeadlineKind::Acknowledge)).count()
}

#[tokio::test]
async fn concurrent_and_restarted_schedulers_fire_each_alarm_once() {
    let world = World::start().await;
    let (store, reader) = (world.store.clone(), world.reader.clone());

    let now = OffsetDateTime::now_utc();
    let ack_by = now + Duration::from_secs(600);
    let resolve_by = now + Duration::from_secs(3 * 86_400);
    let mut tickets = Vec::new();
    for _ in 0..5 {
        tickets.push(routed_ticket(store.as_ref(), ack_by, resolve_by).await);
    }
    // The projection knows when to look: at 80% of the acknowledgement time.
    let later = now + Duration::from_secs(3600);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while reader.due_alarms(later, 100).await.expect("due").len() < 5 {
        assert!(tokio::time::Instant::now() < deadline, "projection did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reader.due_alarms(now, 100).await.expect("due").is_empty(), "nothing due yet");

    // Two schedulers at once (say, two processes), an hour later: every acknowledgement deadline is missed.
    let a = Scheduler::new(store.clone(), reader.clone());
    let b = Scheduler::new(store.clone(), reader.clone());
    let (x, y) = tokio::join!(a.tick(later), b.tick(later));
    let fired = x.expect("a") + y.expect("b");
    // A restarted scheduler, before and after the projection has seen the alarms.
    let c = Scheduler::new(store.clone(), reader.clone());
    let again = c.tick(later).await.expect("c");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = c.tick(later).await.expect("c again");
    assert_eq!((fired, again, after), (5, 0, 0), "each alarm stored once");
    for ticket in &tickets {
        let history = store.load(*ticket).await.expect("load");
        assert_eq!(missed(&history.events), 1, "ticket {ticket}");
    }
    // Once the projection has the alarms, the tickets are escalated and nothing is due until the next deadline.
    assert!(reader.due_alarms(later, 100).await.expect("due").is_empty());
    let view = reader.ticket(tickets[0]).await.expect("query").expect("ticket");
    assert!(view.escalated);
    world.stop().await;
}

#[tokio::test]
async fn an_answered_ticket_is_closed_after_the_citizens_silence_once() {
    use hotline_domain::event::PetitionAnswered;
    let world = World::start().await;
    let (store, reader) = (world.store.clone(), world.reader.clone());
    let now = OffsetDateTime::now_utc();
    let ticket = routed_ticket(store.as_ref(), now + Duration::from_secs(3600), now + Duration::from_secs(86_400)).await;
    let history = store.load(ticket).await.expect("load");
    let meta = CommandMeta { actor: Actor::system("test"), occurred_at: now, correlation_id: ticket, causation_id: None };
    let answer = TicketEvent::PetitionAnswered(PetitionAnswered { text: "Đã xử lý".into(), agency: "dot".into(), via_ticket: None, attachments: vec![] });
    store.append(ticket, history.version, &Envelope::seal(ticket, 2, vec![answer], &meta, Uuid::now_v7)).await.expect("answer");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while reader.ticket(ticket).await.expect("query").is_none_or(|t| t.status != "answered") {
        assert!(tokio::time::Instant::now() < deadline, "projection did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let scheduler = Scheduler::new(store.clone(), reader.clone()).closing_after(7);
    assert_eq!(scheduler.tick(now + Duration::from_secs(6 * 86_400)).await.expect("tick"), 0, "not yet");
    let later = now + Duration::from_secs(8 * 86_400);
    let twin = scheduler.clone();
    let (a, b) = tokio::join!(scheduler.tick(later), twin.tick(later));
    assert_eq!(a.expect("a") + b.expect("b"), 1, "closed once");
    let history = store.load(ticket).await.expect("load");
    let closed = history.events.iter().filter(|e| matches!(e.event, TicketEvent::TicketClosed(_))).count();
    assert_eq!(closed, 1);
    world.stop().await;
}
