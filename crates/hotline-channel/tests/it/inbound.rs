//! Citizens' messages on conversational channels, against a real nats-server: a new message opens a ticket, a
//! follow-up joins its ticket only from the ticket's own citizen, and a redelivered message never counts twice.

use std::sync::Arc;
use std::time::Duration;

use hotline_channel::{InboundMessage, Intake, Received, ThreadHint};
use hotline_domain::access::{Principal, Role};
use hotline_domain::province::Province;
use hotline_domain::{Actor, Command, Ticket, TicketEvent};
use hotline_store::{Cause, EventStore, JetStreamStore, OnConflict};
use hotline_testkit::TestNats;
use time::OffsetDateTime;
use uuid::Uuid;

fn province() -> Province {
    Province::parse(Province::BUNDLED, "bundled").expect("province")
}

async fn intake(nats: &TestNats) -> (Intake, Arc<JetStreamStore>) {
    let store = Arc::new(nats.store().await);
    (Intake::new(store.clone(), Arc::new(province())), store)
}

fn sms(id: &str, from: &str, text: &str) -> InboundMessage {
    InboundMessage {
        channel: "sms",
        message_id: id.to_owned(),
        from: from.to_owned(),
        text: text.to_owned(),
        hints: hotline_channel::find_references(text).into_iter().map(ThreadHint::Reference).collect(),
        follow_up_window: Some(Duration::from_secs(72 * 3600)),
        ..Default::default()
    }
}

async fn events(store: &dyn EventStore, ticket: Uuid) -> Vec<TicketEvent> {
    store.load(ticket).await.expect("load").events.into_iter().map(|e| e.event).collect()
}

/// Routes the ticket by hand and has the agency ask the citizen a question.
async fn ask(store: &dyn EventStore, ticket: Uuid) {
    let agency = Principal { role: Role::Agency, agency: Some("dot".into()), name: "test".into(), token_id: "t1".into() };
    let run = |command: Command| async move {
        hotline_store::execute(store, ticket, &Actor::system("test"), OffsetDateTime::now_utc(), Cause::None, OnConflict::Decide, |_, _| {
            Ok::<_, std::convert::Infallible>(command.clone())
        })
        .await
        .expect("command")
    };
    run(Command::Route(hotline_domain::ticket::RouteCommand {
        category: Some("traffic_infrastructure".into()),
        agency: Some("dot".into()),
        area: None,
        emergency: false,
        confidence: 1.0,
        source: "channel".into(),
        matched: vec![],
        triage_reason: None,
        deadlines: province().deadlines("traffic_infrastructure", OffsetDateTime::now_utc()),
        triage_agency: "hotline_desk".into(),
    }))
    .await;
    run(Command::RequestInfo { by: agency, question: "Địa chỉ cụ thể ở đâu?".into() }).await;
}

#[tokio::test]
async fn a_message_delivered_twice_opens_one_ticket() {
    let nats = TestNats::start().await;
    let (intake, store) = intake(&nats).await;
    let first = intake.receive(sms("SM1", "84912345678", "Đèn giao thông ngã tư hỏng")).await.expect("first");
    let again = intake.receive(sms("SM1", "84912345678", "Đèn giao thông ngã tư hỏng")).await.expect("again");
    assert!(matches!(first, Received::Opened(ref a) if !a.duplicate), "{first:?}");
    assert_eq!(again.ticket_id(), first.ticket_id());
    assert!(again.duplicate());
    assert_eq!(events(store.as_ref(), first.ticket_id()).await.len(), 1);
}

#[tokio::test]
async fn a_message_quoting_the_reference_from_the_same_number_joins_the_ticket() {
    let nats = TestNats::start().await;
    let (intake, store) = intake(&nats).await;
    let opened = intake.receive(sms("SM1", "84912345678", "Mất điện khu phố 3")).await.expect("opened");
    let follow = format!("Bo sung cho {}: mat dien tu 6h sang", opened.reference());
    // The same number written another way still is the same citizen.
    let joined = intake.receive(sms("SM2", "0912345678", &follow)).await.expect("joined");
    assert!(matches!(joined, Received::Attached { duplicate: false, .. }), "{joined:?}");
    assert_eq!(joined.ticket_id(), opened.ticket_id());
    let stored = events(store.as_ref(), opened.ticket_id()).await;
    assert!(matches!(&stored[1], TicketEvent::CitizenWrote(w) if w.text == follow && w.channel_ref.as_deref() == Some("SM2")));

    // Delivered again: nothing new.
    let again = intake.receive(sms("SM2", "84912345678", &follow)).await.expect("again");
    assert!(again.duplicate());
    assert_eq!(events(store.as_ref(), opened.ticket_id()).await.len(), 2);
}

#[tokio::test]
async fn a_message_about_a_closed_ticket_opens_a_new_one() {
    let nats = TestNats::start().await;
    let (intake, store) = intake(&nats).await;
    let opened = intake.receive(sms("SM1", "84912345678", "Mất điện khu phố 3")).await.expect("opened");
    let desk = Principal { role: Role::Operator, agency: None, name: "desk".into(), token_id: "t0".into() };
    hotline_store::execute(store.as_ref(), opened.ticket_id(), &Actor::system("test"), OffsetDateTime::now_utc(), Cause::None, OnConflict::Decide, |_, _| {
        Ok::<_, std::convert::Infallible>(Command::Close { by: desk.clone(), reason: Some("done".into()) })
    })
    .await
    .expect("closed");
    let again = intake.receive(sms("SM2", "84912345678", &format!("{} van mat dien", opened.reference()))).await.expect("again");
    assert!(matches!(again, Received::Opened(_)), "{again:?}");
}

#[tokio::test]
async fn a_message_quoting_someone_elses_reference_opens_its_own_ticket() {
    let nats = TestNats::start().await;
    let (intake, store) = intake(&nats).await;
    let theirs = intake.receive(sms("SM1", "84912345678", "Mất điện khu phố 3")).await.expect("theirs");
    let text = format!("Toi biet ma {}", theirs.reference());
    let mine = intake.receive(sms("SM2", "84987654321", &text)).await.expect("mine");
    assert!(matches!(mine, Received::Opened(_)), "{mine:?}");
    assert_ne!(mine.ticket_id(), theirs.ticket_id());
    assert_eq!(events(store.as_ref(), theirs.ticket_id()).await.len(), 1);
}

#[tokio::test]
async fn an_answer_without_reference_joins_the_ticket_waiting_for_that_citizen() {
    let nats = TestNats::start().await;
    let (intake, store) = intake(&nats).await;
    let opened = intake.receive(sms("SM1", "84912345678", "Ổ gà lớn trên đường")).await.expect("opened");
    ask(store.as_ref(), opened.ticket_id()).await;

    let reply = intake.receive(sms("SM2", "84912345678", "So 5 duong DT743")).await.expect("reply");
    assert!(matches!(reply, Received::Attached { duplicate: false, .. }), "{reply:?}");
    assert_eq!(reply.ticket_id(), opened.ticket_id());
    let history = store.load(opened.ticket_id()).await.expect("load");
    let ticket = Ticket::from_history(&history.events);
    assert!(matches!(history.events.last().map(|e| &e.event), Some(TicketEvent::CitizenReplied(r)) if r.resolve_by.is_some()));
    assert_ne!(ticket.status, hotline_domain::ticket::Status::WaitingForCitizen);

    // Another number's message, or one after the question was answered, opens a new ticket.
    let other = intake.receive(sms("SM3", "84987654321", "So 5 duong DT743")).await.expect("other");
    assert!(matches!(other, Received::Opened(_)));
    let later = intake.receive(sms("SM4", "84912345678", "Cam on")).await.expect("later");
    assert!(matches!(later, Received::Opened(_)), "{later:?}");

    // The reply redelivered after the ticket moved on still lands nowhere new.
    let again = intake.receive(sms("SM2", "84912345678", "So 5 duong DT743")).await.expect("again");
    assert_eq!(again.ticket_id(), opened.ticket_id());
    assert!(again.duplicate());
}

#[tokio::test]
async fn a_question_older_than_the_window_is_not_answered_by_an_unrelated_message() {
    let nats = TestNats::start().await;
    let (intake, store) = intake(&nats).await;
    let opened = intake.receive(sms("SM1", "84912345678", "Ổ gà lớn trên đường")).await.expect("opened");
    ask(store.as_ref(), opened.ticket_id()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut message = sms("SM2", "84912345678", "Cay do chan duong");
    message.follow_up_window = Some(Duration::from_millis(10));
    let fresh = intake.receive(message).await.expect("fresh");
    assert!(matches!(fresh, Received::Opened(_)), "{fresh:?}");
}

#[tokio::test]
async fn an_email_reply_threads_onto_its_ticket_only_from_the_citizens_address() {
    let nats = TestNats::start().await;
    let (intake, store) = intake(&nats).await;
    let mail = |id: &str, from: &str, hints: Vec<ThreadHint>| InboundMessage {
        channel: "email",
        message_id: id.to_owned(),
        from: from.to_owned(),
        subject: Some("Phản ánh".to_owned()),
        text: "Nội dung".to_owned(),
        hints,
        ..Default::default()
    };
    let opened = intake.receive(mail("a@mail.vn", "dan@example.vn", vec![])).await.expect("opened");
    let reply = intake
        .receive(mail("b@mail.vn", "Dan@Example.VN", vec![ThreadHint::Ticket(opened.ticket_id())]))
        .await
        .expect("reply");
    assert_eq!(reply.ticket_id(), opened.ticket_id());
    let stranger = intake
        .receive(mail("c@mail.vn", "other@example.vn", vec![ThreadHint::Ticket(opened.ticket_id())]))
        .await
        .expect("stranger");
    assert_ne!(stranger.ticket_id(), opened.ticket_id());
    let ticket = Ticket::from_history(&store.load(opened.ticket_id()).await.expect("load").events);
    assert_eq!(ticket.channel_refs, vec!["a@mail.vn".to_owned(), "b@mail.vn".to_owned()]);
}

#[tokio::test]
async fn a_message_without_an_id_or_text_is_refused() {
    let nats = TestNats::start().await;
    let (intake, _store) = intake(&nats).await;
    let no_id = intake.receive(sms("", "84912345678", "x")).await;
    assert!(matches!(no_id, Err(hotline_channel::IntakeError::Invalid { code: "invalid_message_id", .. })));
    let no_text = intake.receive(sms("SM9", "84912345678", "   ")).await;
    assert!(matches!(no_text, Err(hotline_channel::IntakeError::Invalid { code: "empty_text", .. })));
}

#[tokio::test]
async fn another_sender_reusing_a_message_id_never_writes_into_the_first_ticket() {
    let nats = TestNats::start().await;
    let (intake, store) = intake(&nats).await;
    let mail = |from: &str, hints: Vec<ThreadHint>| InboundMessage {
        channel: "email",
        message_id: "same@id".to_owned(),
        from: from.to_owned(),
        text: "Nội dung".to_owned(),
        hints,
        ..Default::default()
    };
    let opened = intake.receive(mail("dan@example.vn", vec![])).await.expect("opened");
    let reply = intake
        .receive(InboundMessage { message_id: "reply@id".into(), ..mail("dan@example.vn", vec![ThreadHint::Ticket(opened.ticket_id())]) })
        .await
        .expect("reply");
    assert_eq!(reply.ticket_id(), opened.ticket_id());
    // A stranger's mail with the reply's Message-ID: the id belongs to the first delivery's ticket, whose citizen
    // is someone else.
    let stranger = intake
        .receive(InboundMessage { message_id: "reply@id".into(), text: "Khác".into(), ..mail("other@example.vn", vec![]) })
        .await;
    assert!(matches!(stranger, Err(hotline_channel::IntakeError::KeyReused)), "{stranger:?}");
    assert_eq!(events(store.as_ref(), opened.ticket_id()).await.len(), 2);
}

#[tokio::test]
async fn channel_state_writes_are_conditional_and_scoped_to_the_channel() {
    let nats = TestNats::start().await;
    let (intake, _store) = intake(&nats).await;
    let zalo = hotline_channel::ChannelState::new(intake.event_store(), "zalo");
    let sms = hotline_channel::ChannelState::new(intake.event_store(), "sms");
    let first = zalo.put("tokens", b"a", None).await.expect("store").expect("created");
    assert_eq!(zalo.put("tokens", b"b", None).await.expect("store"), Err(hotline_channel::StateConflict));
    let second = zalo.put("tokens", b"b", Some(first)).await.expect("store").expect("updated");
    assert_eq!(zalo.put("tokens", b"c", Some(first)).await.expect("store"), Err(hotline_channel::StateConflict), "a stale revision loses");
    assert_eq!(zalo.get("tokens").await.expect("store"), Some((b"b".to_vec(), second)));
    assert_eq!(sms.get("tokens").await.expect("store"), None, "another channel's state is its own");
    zalo.set("inbox.m1", b"1").await.expect("set");
    zalo.set("inbox.m2", b"2").await.expect("set");
    let mut keys = zalo.keys("inbox.").await.expect("keys");
    keys.sort();
    assert_eq!(keys, vec!["inbox.m1".to_owned(), "inbox.m2".to_owned()]);
    zalo.delete("inbox.m1").await.expect("delete");
    assert_eq!(zalo.get("inbox.m1").await.expect("store"), None);
    // A removed key is gone from the listing (its message is erased); a bucket from before may list it for a
    // minute while its marker expires: reading it finds nothing either way.
    let mut live = Vec::new();
    for key in zalo.keys("inbox.").await.expect("keys") {
        if zalo.get(&key).await.expect("store").is_some() {
            live.push(key);
        }
    }
    assert_eq!(live, vec!["inbox.m2".to_owned()]);
    let revision = zalo.set("inbox.m3", b"3").await.expect("set");
    zalo.set("inbox.m3", b"3 again").await.expect("set");
    assert_eq!(zalo.delete_if("inbox.m3", revision).await.expect("store"), Err(hotline_channel::StateConflict), "written since");
    assert!(zalo.get("inbox.m3").await.expect("store").is_some());
    assert!(zalo.get("bad key").await.is_err(), "keys are checked");
}
