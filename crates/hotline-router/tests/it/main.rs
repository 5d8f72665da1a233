//! The router against a real nats-server: routes once, whatever redeliveries and races happen.

use std::sync::Arc;
use std::time::Duration;

use hotline_domain::event::{Location, PetitionReceived};
use hotline_domain::province::Province;
use hotline_domain::{Actor, CommandMeta, Envelope, Reference, TicketEvent};
use hotline_router::{Outcome, Router};
use hotline_store::EventStore;
use hotline_testkit::TestNats;
use time::OffsetDateTime;
use uuid::Uuid;

/// Stores a petition the way intake would (intake lives in the channel crate, which the router does not need).
async fn receive(store: &dyn EventStore, text: &str, area: Option<&str>) -> Uuid {
    let ticket = Uuid::now_v7();
    let event = TicketEvent::PetitionReceived(PetitionReceived {
        citizen_key: None,
        reference: Reference::derive(ticket, 0),
        channel: "app".into(),
        channel_ref: None,
        text: text.into(),
        subject: None,
        category: None,
        citizen: None,
        location: area.map(|a| Location { area: Some(a.into()), ..Default::default() }),
        attachments: vec![],
    });
    let meta = CommandMeta { actor: Actor::channel("app"), occurred_at: OffsetDateTime::now_utc(), correlation_id: ticket, causation_id: None };
    store.append(ticket, 0, &Envelope::seal(ticket, 0, vec![event], &meta, Uuid::now_v7)).await.expect("received");
    ticket
}

fn routings(events: &[Envelope]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e.event, TicketEvent::PetitionRouted(_) | TicketEvent::PetitionNeedsTriage(_)))
        .count()
}

#[tokio::test]
async fn routing_again_after_a_redelivery_stores_nothing() {
    let nats = TestNats::start().await;
    let store: Arc<dyn EventStore> = Arc::new(nats.store().await);
    let router = Router::new(store.clone(), Arc::new(Province::bundled()));
    let ticket = receive(store.as_ref(), "Mất điện cả khu phố từ tối qua", Some("tdm")).await;

    let first = router.route(ticket, None).await.expect("route");
    assert_eq!(first, Outcome::Routed { agency: "evn".into(), emergency: false });
    assert_eq!(router.route(ticket, None).await.expect("again"), Outcome::AlreadyDone);
    let history = store.load(ticket).await.expect("load");
    assert_eq!(routings(&history.events), 1);
    let seqs: Vec<u64> = history.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(history.events[1].causation_id, Some(history.events[0].event_id), "the router names its cause");
}

#[tokio::test]
async fn a_ticket_whose_history_reads_empty_is_retried_not_acknowledged() {
    // What a lagging replica looks like: the petition was delivered, but the ticket reads empty.
    let nats = TestNats::start().await;
    let store: Arc<dyn EventStore> = Arc::new(nats.store().await);
    let router = Router::new(store, Arc::new(Province::bundled()));
    let result = router.route(Uuid::now_v7(), None).await;
    assert!(matches!(result, Err(hotline_router::RouteError::NotVisibleYet(_))), "{result:?}");
}

#[tokio::test]
async fn two_routers_racing_on_one_ticket_route_it_once() {
    let nats = TestNats::start().await;
    let store: Arc<dyn EventStore> = Arc::new(nats.store().await);
    let province = Arc::new(Province::bundled());
    for _ in 0..10 {
        let ticket = receive(store.as_ref(), "Rác thải đổ trộm bốc mùi hôi thối ven đường", None).await;
        let routers: Vec<_> = (0..4).map(|_| Router::new(store.clone(), province.clone())).collect();
        let results = futures_util::future::join_all(routers.iter().map(|r| r.route(ticket, None))).await;
        let routed = results.iter().filter(|r| matches!(r, Ok(Outcome::Routed { .. }))).count();
        assert_eq!(routed, 1, "exactly one router stored the routing: {results:?}");
        assert!(results.iter().all(|r| r.is_ok()), "the losers saw the routed ticket, not an error: {results:?}");
        assert_eq!(routings(&store.load(ticket).await.expect("load").events), 1);
    }
}

#[tokio::test]
async fn the_running_router_routes_what_arrives_and_stops_on_shutdown() {
    let nats = TestNats::start().await;
    let store: Arc<dyn EventStore> = Arc::new(nats.store().await);
    let (trigger, shutdown) = hotline_runtime::shutdown();
    let running = tokio::spawn(Router::new(store.clone(), Arc::new(Province::bundled())).run(shutdown));
    let tickets = [
        receive(store.as_ref(), "Cháy lớn ở dãy trọ, có người mắc kẹt bên trong", None).await,
        receive(store.as_ref(), "xin hỏi giờ làm việc của bộ phận một cửa", None).await,
        receive(store.as_ref(), "asdf qwerty", None).await,
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for ticket in tickets {
        loop {
            let history = store.load(ticket).await.expect("load");
            if routings(&history.events) == 1 {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "ticket {ticket} not routed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let fire = store.load(tickets[0]).await.expect("load");
    assert!(
        fire.events.iter().any(|e| matches!(&e.event, TicketEvent::PetitionRouted(r) if r.agency == "fire_rescue" && r.emergency)),
        "{fire:?}"
    );
    let nonsense = store.load(tickets[2]).await.expect("load");
    assert!(nonsense.events.iter().any(|e| matches!(&e.event, TicketEvent::PetitionNeedsTriage(t) if t.agency == "hotline_desk")));
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(5), running).await.expect("stops within 5 s").expect("joined");
}
