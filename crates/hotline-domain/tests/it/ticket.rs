//! Ticket rules, given/when/then: given these past events, when this command, then these new events or this
//! rejection. One test per rule, named as the rule.

use hotline_domain::event::{PetitionCategorized, PetitionNeedsTriage, PetitionReceived, PetitionRouted, TicketClosed};
use hotline_domain::ticket::{NewPetition, RouteCommand};
use hotline_domain::{Actor, Command, CommandMeta, DomainError, Envelope, Reference, Status, Ticket, TicketEvent};
use time::OffsetDateTime;
use uuid::Uuid;

const TICKET: Uuid = Uuid::from_u128(0x1022);

fn given(events: Vec<TicketEvent>) -> Ticket {
    let meta = CommandMeta {
        actor: Actor::system("test"),
        occurred_at: OffsetDateTime::UNIX_EPOCH,
        correlation_id: TICKET,
        causation_id: None,
    };
    let mut n = 0u128;
    let envelopes = Envelope::seal(TICKET, 0, events, &meta, || {
        n += 1;
        Uuid::from_u128(n)
    });
    Ticket::from_history(&envelopes)
}

fn petition(text: &str) -> Command {
    Command::ReceivePetition {
        reference: Reference::derive(TICKET, 0),
        petition: NewPetition { channel: "app".to_owned(), text: text.to_owned(), ..Default::default() },
    }
}

fn received() -> TicketEvent {
    TicketEvent::PetitionReceived(PetitionReceived {
        citizen_key: None,
        reference: Reference::derive(TICKET, 0),
        channel: "app".to_owned(),
        channel_ref: None,
        text: "Đèn giao thông hỏng".to_owned(),
        subject: None,
        category: None,
        citizen: None,
        location: None,
        attachments: vec![],
    })
}

fn route(category: Option<&str>, agency: Option<&str>) -> RouteCommand {
    RouteCommand {
        category: category.map(str::to_owned),
        agency: agency.map(str::to_owned),
        area: Some("tdm".to_owned()),
        emergency: false,
        confidence: 0.9,
        source: "classifier".to_owned(),
        matched: vec!["category:traffic_infrastructure 'den giao thong'".to_owned()],
        triage_reason: None,
        triage_agency: "hotline_desk".to_owned(),
        deadlines: None,
    }
}

#[test]
fn a_new_petition_opens_a_ticket() {
    let then = given(vec![]).decide(petition("Ổ gà trên Quốc lộ 13"));
    let events = then.expect("accepted");
    assert!(matches!(&events[..], [TicketEvent::PetitionReceived(p)] if p.text == "Ổ gà trên Quốc lộ 13"));
}

#[test]
fn a_petition_without_text_is_refused() {
    let then = given(vec![]).decide(petition("   \n"));
    assert_eq!(then, Err(DomainError::EmptyText));
}

#[test]
fn a_ticket_is_opened_only_once() {
    let then = given(vec![received()]).decide(petition("again"));
    assert_eq!(then, Err(DomainError::AlreadyExists));
}

#[test]
fn routing_a_received_petition_categorizes_and_routes_it_in_one_commit() {
    let then = given(vec![received()])
        .decide(Command::Route(route(Some("traffic_infrastructure"), Some("dot"))))
        .expect("routed");
    assert_eq!(
        then,
        vec![
            TicketEvent::PetitionCategorized(PetitionCategorized {
                category: "traffic_infrastructure".to_owned(),
                area: Some("tdm".to_owned()),
                emergency: false,
                confidence: 0.9,
                source: "classifier".to_owned(),
                matched: vec!["category:traffic_infrastructure 'den giao thong'".to_owned()],
            }),
            TicketEvent::PetitionRouted(PetitionRouted {
                agency: "dot".to_owned(),
                area: Some("tdm".to_owned()),
                emergency: false
            , acknowledge_by: None, resolve_by: None }),
        ]
    );
}

#[test]
fn a_petition_nothing_matched_goes_to_triage_at_the_hotline_desk() {
    let mut command = route(None, None);
    command.triage_reason = Some("no category matched".to_owned());
    let then = given(vec![received()]).decide(Command::Route(command)).expect("triage");
    assert_eq!(
        then,
        vec![TicketEvent::PetitionNeedsTriage(PetitionNeedsTriage {
            agency: "hotline_desk".to_owned(),
            reason: "no category matched".to_owned(),
            suggested_category: None,
            area: Some("tdm".to_owned()),
        })]
    );
}

#[test]
fn a_routed_ticket_is_never_routed_twice() {
    let ticket = given(vec![
        received(),
        TicketEvent::PetitionRouted(PetitionRouted { agency: "dot".to_owned(), area: None, emergency: false, acknowledge_by: None, resolve_by: None }),
    ]);
    assert_eq!(ticket.decide(Command::Route(route(Some("environment"), Some("donre")))), Ok(vec![]));
}

#[test]
fn a_ticket_waiting_for_triage_is_not_routed_by_a_redelivery() {
    let ticket = given(vec![
        received(),
        TicketEvent::PetitionNeedsTriage(PetitionNeedsTriage {
            agency: "hotline_desk".to_owned(),
            reason: "x".to_owned(),
            suggested_category: None,
            area: None,
        }),
    ]);
    assert_eq!(ticket.decide(Command::Route(route(Some("environment"), Some("donre")))), Ok(vec![]));
}

#[test]
fn routing_a_ticket_that_does_not_exist_is_refused() {
    assert_eq!(given(vec![]).decide(Command::Route(route(Some("x"), Some("y")))), Err(DomainError::NotFound));
}

#[test]
fn applying_the_history_gives_the_current_state() {
    let ticket = given(vec![
        received(),
        TicketEvent::PetitionCategorized(PetitionCategorized {
            category: "emergency_fire".to_owned(),
            area: Some("dian".to_owned()),
            emergency: true,
            confidence: 1.0,
            source: "classifier".to_owned(),
            matched: vec![],
        }),
        TicketEvent::PetitionRouted(PetitionRouted { agency: "fire_rescue".to_owned(), area: None, emergency: true, acknowledge_by: None, resolve_by: None }),
    ]);
    assert_eq!(ticket.status, Status::Routed);
    assert_eq!(ticket.seq, 3);
    assert_eq!(ticket.category.as_deref(), Some("emergency_fire"));
    assert_eq!(ticket.agency.as_deref(), Some("fire_rescue"));
    assert_eq!(ticket.area.as_deref(), Some("dian"), "a route without an area keeps the known one");
    assert!(ticket.emergency);
}

#[test]
fn events_survive_the_stored_form_and_unknown_types_are_reported_not_guessed() {
    let meta = CommandMeta {
        actor: Actor::channel("app"),
        occurred_at: OffsetDateTime::UNIX_EPOCH,
        correlation_id: TICKET,
        causation_id: Some(Uuid::from_u128(9)),
    };
    let envelopes = Envelope::seal(TICKET, 4, vec![received()], &meta, || Uuid::from_u128(77));
    let encoded = hotline_domain::event::encode_commit(&envelopes, None).expect("encode");
    let back = hotline_domain::event::decode_commit(&encoded.bytes).expect("decode");
    assert_eq!(back, envelopes);
    assert_eq!(back[0].seq, 5);

    let mut stored = envelopes[0].to_stored().expect("stored");
    stored.event_type = "PetitionTeleported".to_owned();
    assert!(matches!(
        Envelope::decode(stored.clone()),
        Err(hotline_domain::event::DecodeError::UnknownType { .. })
    ));
    stored.event_type = "PetitionReceived".to_owned();
    stored.schema_version = 99;
    assert!(Envelope::decode(stored).is_err(), "a newer schema than this code knows is not read as the old one");
}

#[test]
fn a_commit_chains_each_event_to_the_one_before_over_its_exact_stored_bytes() {
    use hotline_domain::event::{encode_commit, event_hash, stored_events};
    let meta = CommandMeta {
        actor: Actor::channel("app"),
        occurred_at: OffsetDateTime::UNIX_EPOCH,
        correlation_id: TICKET,
        causation_id: None,
    };
    let mut ids = 100u128..;
    let mut next_id = || Uuid::from_u128(ids.next().unwrap_or_default());
    let first = Envelope::seal(TICKET, 0, vec![received()], &meta, &mut next_id);
    let one = encode_commit(&first, None).expect("encode");
    let stored = stored_events(&one.bytes).expect("stored");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0.prev_hash, None, "a ticket's first event links to nothing");
    assert_eq!(stored[0].1, one.last_hash);

    let later = Envelope::seal(TICKET, 1, vec![TicketEvent::TicketClosed(TicketClosed { reason: None }), TicketEvent::TicketClosed(TicketClosed { reason: Some("x".into()) })], &meta, &mut next_id);
    let two = encode_commit(&later, Some(one.last_hash.clone())).expect("encode");
    let stored = stored_events(&two.bytes).expect("stored");
    assert_eq!(stored[0].0.prev_hash.as_deref(), Some(one.last_hash.as_str()), "the next commit links to the last one");
    assert_eq!(stored[1].0.prev_hash.as_deref(), Some(stored[0].1.as_str()), "events of one commit link in order");
    assert_eq!(stored[1].1, two.last_hash);

    // The hash is over the bytes as stored: one changed character changes it.
    let text = String::from_utf8(one.bytes.clone()).expect("utf-8");
    let tampered = text.replacen("\"seq\":1", "\"seq\":1 ", 1);
    assert_ne!(tampered, text);
    assert_ne!(stored_events(tampered.as_bytes()).expect("still JSON")[0].1, one.last_hash);
    assert_eq!(event_hash(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
