//! The agency workflow, given/when/then: every transition and every rejection of the ticket's state machine.
//! docs/workflow.md draws the same machine.

use hotline_domain::access::{Principal, Role};
use hotline_domain::event::{
    CitizenReplied, InformationRequested, MarkedDuplicate, PetitionAcknowledged, PetitionAnswered, PetitionNeedsTriage,
    PetitionReceived, PetitionRejected, PetitionRouted, PetitionTransferred, TicketClosed,
};
use hotline_domain::ticket::{MAX_BOUNCES, RouteCommand};
use hotline_domain::{Actor, Command, CommandMeta, DomainError, Envelope, Reference, Status, Ticket, TicketEvent};
use time::OffsetDateTime;
use uuid::Uuid;

const TICKET: Uuid = Uuid::from_u128(0x3022);
const DESK: &str = "hotline_desk";

fn given(events: Vec<TicketEvent>) -> Ticket {
    let meta = CommandMeta { actor: Actor::system("test"), occurred_at: OffsetDateTime::UNIX_EPOCH, correlation_id: TICKET, causation_id: None };
    let mut n = 0u128;
    Ticket::from_history(&Envelope::seal(TICKET, 0, events, &meta, || {
        n += 1;
        Uuid::from_u128(n)
    }))
}

fn who(role: Role, agency: Option<&str>) -> Principal {
    Principal { role, agency: agency.map(str::to_owned), token_id: "t".into(), name: "n".into() }
}
fn agency(code: &str) -> Principal {
    who(Role::Agency, Some(code))
}
fn operator() -> Principal {
    who(Role::Operator, None)
}

fn received() -> TicketEvent {
    TicketEvent::PetitionReceived(PetitionReceived {
        reference: Reference::derive(TICKET, 0),
        channel: "app".into(),
        channel_ref: None,
        text: "Ổ gà".into(),
        subject: None,
        category: None,
        citizen: None,
        location: None,
    })
}
fn routed(to: &str) -> TicketEvent {
    TicketEvent::PetitionRouted(PetitionRouted { agency: to.into(), area: None, emergency: false })
}
fn acknowledged(by: &str) -> TicketEvent {
    TicketEvent::PetitionAcknowledged(PetitionAcknowledged { agency: by.into() })
}
fn asked() -> TicketEvent {
    TicketEvent::InformationRequested(InformationRequested { question: "Địa chỉ chính xác?".into() })
}
fn transferred(from: &str, bounces: u32) -> TicketEvent {
    TicketEvent::PetitionTransferred(PetitionTransferred { from_agency: from.into(), reason: "r".into(), suggested_agency: None, bounces })
}
fn answered() -> TicketEvent {
    TicketEvent::PetitionAnswered(PetitionAnswered { text: "Đã sửa".into(), agency: "dot".into() })
}

fn answer(by: Principal) -> Command {
    Command::Answer { by, text: "Đã sửa xong".into(), desk: DESK.into() }
}
fn transfer(by: Principal) -> Command {
    Command::Transfer { by, reason: "Không thuộc thẩm quyền".into(), suggested_agency: Some("ubnd_tdm".into()), desk: DESK.into() }
}
fn reroute(to: Option<&str>) -> Command {
    Command::Route(RouteCommand {
        category: Some("traffic_infrastructure".into()),
        agency: to.map(str::to_owned),
        area: None,
        emergency: false,
        confidence: 1.0,
        source: "transfer".into(),
        matched: vec![],
        triage_reason: Some("no other agency".into()),
        triage_agency: DESK.into(),
    })
}

fn not_allowed(result: Result<Vec<TicketEvent>, DomainError>) -> String {
    match result {
        Err(DomainError::NotAllowed(reason)) => reason,
        other => panic!("expected a state refusal, got {other:?}"),
    }
}

// --- acknowledge

#[test]
fn the_assigned_agency_acknowledges_a_routed_ticket() {
    let then = given(vec![received(), routed("dot")]).decide(Command::Acknowledge { by: agency("dot") });
    assert_eq!(then, Ok(vec![acknowledged("dot")]));
}

#[test]
fn another_agency_cannot_even_see_the_ticket() {
    let then = given(vec![received(), routed("dot")]).decide(Command::Acknowledge { by: agency("evn") });
    assert_eq!(then, Err(DomainError::NotFound));
}

#[test]
fn only_an_agency_acknowledges() {
    let then = given(vec![received(), routed("dot")]).decide(Command::Acknowledge { by: operator() });
    assert!(matches!(then, Err(DomainError::Forbidden(_))), "{then:?}");
}

#[test]
fn a_ticket_is_acknowledged_once() {
    let reason = not_allowed(given(vec![received(), routed("dot"), acknowledged("dot")]).decide(Command::Acknowledge { by: agency("dot") }));
    assert!(reason.contains("acknowledged"), "{reason}");
}

// --- request info / citizen reply

#[test]
fn asking_the_citizen_waits_for_the_citizen_and_the_reply_goes_back_to_where_it_was() {
    let ticket = given(vec![received(), routed("dot"), acknowledged("dot")]);
    let then = ticket.decide(Command::RequestInfo { by: agency("dot"), question: "Ở đâu?".into() });
    assert!(matches!(&then.as_deref(), Ok([TicketEvent::InformationRequested(_)])));
    let waiting = given(vec![received(), routed("dot"), acknowledged("dot"), asked()]);
    assert_eq!(waiting.status, Status::WaitingForCitizen);
    let reply = waiting.decide(Command::CitizenReply { text: "Số 5 đường ĐT743".into() });
    assert_eq!(reply, Ok(vec![TicketEvent::CitizenReplied(CitizenReplied { text: "Số 5 đường ĐT743".into() })]));
    let back = given(vec![received(), routed("dot"), acknowledged("dot"), asked(), TicketEvent::CitizenReplied(CitizenReplied { text: "x".into() })]);
    assert_eq!(back.status, Status::Acknowledged);
}

#[test]
fn a_question_needs_text() {
    let then = given(vec![received(), routed("dot")]).decide(Command::RequestInfo { by: agency("dot"), question: " ".into() });
    assert!(matches!(then, Err(DomainError::Invalid(_))), "{then:?}");
}

#[test]
fn a_reply_nobody_asked_for_is_refused() {
    not_allowed(given(vec![received(), routed("dot")]).decide(Command::CitizenReply { text: "x".into() }));
}

#[test]
fn the_desk_may_ask_the_citizen_while_triaging() {
    let ticket = given(vec![received(), TicketEvent::PetitionNeedsTriage(PetitionNeedsTriage { agency: DESK.into(), reason: "r".into(), suggested_category: None, area: None })]);
    assert!(ticket.decide(Command::RequestInfo { by: operator(), question: "Ở đâu?".into() }).is_ok());
}

// --- transfer and rerouting

#[test]
fn an_agency_sends_a_ticket_back_with_a_reason_and_the_router_routes_it_again() {
    let then = given(vec![received(), routed("dot")]).decide(transfer(agency("dot"))).expect("transfer");
    assert!(matches!(&then[..], [TicketEvent::PetitionTransferred(t)] if t.bounces == 1 && t.from_agency == "dot"));
    let transferred = given(vec![received(), routed("dot"), transferred("dot", 1)]);
    assert_eq!(transferred.status, Status::Transferred);
    assert_eq!(transferred.decide(reroute(Some("ubnd_tdm"))), Ok(vec![routed("ubnd_tdm")]));
}

#[test]
fn a_transfer_needs_a_reason() {
    let then = given(vec![received(), routed("dot")]).decide(Command::Transfer { by: agency("dot"), reason: "".into(), suggested_agency: None, desk: DESK.into() });
    assert!(matches!(then, Err(DomainError::Invalid(_))), "{then:?}");
}

#[test]
fn the_second_bounce_goes_to_the_hotline_desk() {
    let second = Command::Transfer { by: agency("ubnd_tdm"), reason: "Cũng không phải".into(), suggested_agency: None, desk: DESK.into() };
    let then = given(vec![received(), routed("dot"), transferred("dot", 1), routed("ubnd_tdm")]).decide(second).expect("transfer");
    assert_eq!(MAX_BOUNCES, 2);
    assert!(matches!(&then[..], [TicketEvent::PetitionTransferred(t), TicketEvent::PetitionNeedsTriage(n)] if t.bounces == 2 && n.agency == DESK), "{then:?}");
}

#[test]
fn rerouting_with_no_agency_left_sends_it_to_triage() {
    let then = given(vec![received(), routed("dot"), transferred("dot", 1)]).decide(reroute(None)).expect("reroute");
    assert!(matches!(&then[..], [TicketEvent::PetitionNeedsTriage(n)] if n.agency == DESK));
}

#[test]
fn an_agency_cannot_suggest_itself() {
    let then = given(vec![received(), routed("ubnd_tdm")]).decide(transfer(agency("ubnd_tdm")));
    assert!(matches!(then, Err(DomainError::Invalid(_))), "{then:?}");
}

#[test]
fn the_desk_cannot_transfer_on_an_agencys_behalf() {
    assert!(matches!(given(vec![received(), routed("dot")]).decide(transfer(operator())), Err(DomainError::Forbidden(_))));
}

// --- answer

#[test]
fn the_assigned_agency_answers_and_the_ticket_is_answered() {
    let then = given(vec![received(), routed("dot"), acknowledged("dot")]).decide(answer(agency("dot")));
    assert_eq!(then, Ok(vec![TicketEvent::PetitionAnswered(PetitionAnswered { text: "Đã sửa xong".into(), agency: "dot".into() })]));
    assert_eq!(given(vec![received(), routed("dot"), answered()]).status, Status::Answered);
}

#[test]
fn the_desk_answers_from_its_knowledge_base_even_before_routing() {
    let then = given(vec![received()]).decide(answer(operator()));
    assert!(matches!(&then.as_deref(), Ok([TicketEvent::PetitionAnswered(a)]) if a.agency == DESK), "{then:?}");
}

#[test]
fn a_ticket_is_answered_once() {
    let reason = not_allowed(given(vec![received(), routed("dot"), answered()]).decide(answer(agency("dot"))));
    assert!(reason.contains("answered"), "{reason}");
}

#[test]
fn an_answer_needs_text() {
    let then = given(vec![received(), routed("dot")]).decide(Command::Answer { by: agency("dot"), text: "\n".into(), desk: DESK.into() });
    assert!(matches!(then, Err(DomainError::Invalid(_))));
}

// --- desk commands

#[test]
fn the_desk_recategorizes_and_the_ticket_is_routed_to_the_new_agency() {
    let then = given(vec![received(), routed("dot")])
        .decide(Command::Recategorize { by: operator(), category: "environment".into(), area: Some("tdm".into()), agency: "donre".into() })
        .expect("recategorize");
    assert!(matches!(&then[..], [TicketEvent::PetitionRecategorized(r), TicketEvent::PetitionRouted(p)] if r.category == "environment" && p.agency == "donre"));
}

#[test]
fn an_agency_cannot_recategorize_reject_close_or_mark_duplicates() {
    let ticket = given(vec![received(), routed("dot")]);
    let by = agency("dot");
    for command in [
        Command::Recategorize { by: by.clone(), category: "environment".into(), area: None, agency: "donre".into() },
        Command::Reject { by: by.clone(), reason: "spam".into() },
        Command::Close { by: by.clone(), reason: None },
        Command::MarkDuplicate { by: by.clone(), of_ticket: Uuid::from_u128(1), of_reference: Reference::derive(Uuid::from_u128(1), 0) },
    ] {
        assert!(matches!(ticket.decide(command), Err(DomainError::Forbidden(_))));
    }
}

#[test]
fn the_desk_links_a_duplicate_but_never_to_itself() {
    let ticket = given(vec![received(), routed("dot")]);
    let other = Uuid::from_u128(99);
    let then = ticket.decide(Command::MarkDuplicate { by: operator(), of_ticket: other, of_reference: Reference::derive(other, 0) });
    assert!(matches!(&then.as_deref(), Ok([TicketEvent::MarkedDuplicate(d)]) if d.of_ticket == other));
    let selfish = ticket.decide(Command::MarkDuplicate { by: operator(), of_ticket: TICKET, of_reference: Reference::derive(TICKET, 0) });
    assert!(matches!(selfish, Err(DomainError::Invalid(_))));
    let dup = given(vec![received(), TicketEvent::MarkedDuplicate(MarkedDuplicate { of_ticket: other, of_reference: Reference::derive(other, 0) })]);
    assert_eq!(dup.status, Status::Duplicate);
}

#[test]
fn the_desk_rejects_spam_with_a_reason() {
    let ticket = given(vec![received(), routed("dot")]);
    assert_eq!(ticket.decide(Command::Reject { by: operator(), reason: "quảng cáo".into() }), Ok(vec![TicketEvent::PetitionRejected(PetitionRejected { reason: "quảng cáo".into() })]));
    assert!(matches!(ticket.decide(Command::Reject { by: operator(), reason: "".into() }), Err(DomainError::Invalid(_))));
}

#[test]
fn the_desk_closes_an_answered_ticket_and_a_closed_one_stays_closed() {
    let then = given(vec![received(), routed("dot"), answered()]).decide(Command::Close { by: who(Role::Supervisor, None), reason: Some(" ".into()) });
    assert_eq!(then, Ok(vec![TicketEvent::TicketClosed(TicketClosed { reason: None })]));
    let closed = given(vec![received(), routed("dot"), answered(), TicketEvent::TicketClosed(TicketClosed { reason: None })]);
    assert_eq!(closed.status, Status::Closed);
    not_allowed(closed.decide(Command::Close { by: operator(), reason: None }));
    not_allowed(closed.decide(answer(operator())));
    not_allowed(closed.decide(Command::Reject { by: operator(), reason: "x".into() }));
}

#[test]
fn nothing_acts_on_a_ticket_that_does_not_exist() {
    assert_eq!(given(vec![]).decide(Command::Acknowledge { by: agency("dot") }), Err(DomainError::NotFound));
    assert_eq!(given(vec![]).decide(Command::Close { by: operator(), reason: None }), Err(DomainError::NotFound));
    assert_eq!(given(vec![]).decide(Command::CitizenReply { text: "x".into() }), Err(DomainError::NotFound));
}

#[test]
fn every_command_records_its_actor() {
    let p = agency("dot");
    let actor = p.actor();
    assert_eq!(actor.agency.as_deref(), Some("dot"));
    assert_eq!(actor.id, "t");
    assert!(serde_json::to_string(&actor).expect("json").contains("\"kind\":\"agency\""));
}
