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
        citizen_key: None,
        reference: Reference::derive(TICKET, 0),
        channel: "app".into(),
        channel_ref: None,
        text: "Ổ gà".into(),
        subject: None,
        category: None,
        citizen: None,
        location: None,
        attachments: vec![],
    })
}
fn routed(to: &str) -> TicketEvent {
    TicketEvent::PetitionRouted(PetitionRouted { agency: to.into(), area: None, emergency: false, acknowledge_by: None, resolve_by: None })
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
    TicketEvent::PetitionAnswered(PetitionAnswered { text: "Đã sửa".into(), agency: "dot".into(), via_ticket: None, attachments: vec![] })
}

fn answer(by: Principal) -> Command {
    Command::Answer { by, text: "Đã sửa xong".into(), desk: DESK.into(), attachments: vec![] }
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
    deadlines: None,
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
    let reply = waiting.decide(Command::CitizenReply { text: "Số 5 đường ĐT743".into(), acknowledge_by: None, resolve_by: None });
    assert_eq!(reply, Ok(vec![TicketEvent::CitizenReplied(CitizenReplied { text: "Số 5 đường ĐT743".into(), acknowledge_by: None, resolve_by: None, channel_ref: None, attachments: vec![] })]));
    let back = given(vec![received(), routed("dot"), acknowledged("dot"), asked(), TicketEvent::CitizenReplied(CitizenReplied { text: "x".into(), acknowledge_by: None, resolve_by: None, channel_ref: None, attachments: vec![] })]);
    assert_eq!(back.status, Status::Acknowledged);
}

fn message(id: &str, text: &str) -> Command {
    Command::CitizenMessage {
        channel: "sms".into(),
        channel_ref: Some(id.into()),
        text: text.into(),
        attachments: vec![],
        acknowledge_by: None,
        resolve_by: None,
    }
}

#[test]
fn a_channel_message_on_a_waiting_ticket_is_the_citizens_reply() {
    let waiting = given(vec![received(), routed("dot"), acknowledged("dot"), asked()]);
    let then = waiting.decide(message("SM2", "Số 5"));
    assert!(matches!(&then.as_deref(), Ok([TicketEvent::CitizenReplied(r)]) if r.channel_ref.as_deref() == Some("SM2")));
}

#[test]
fn a_channel_message_on_a_ticket_not_waiting_is_kept_as_more_information() {
    let ticket = given(vec![received(), routed("dot")]);
    let then = ticket.decide(message("SM2", "Thêm ảnh"));
    assert!(matches!(&then.as_deref(), Ok([TicketEvent::CitizenWrote(w)]) if w.text == "Thêm ảnh" && w.channel == "sms"));
    let wrote = given(vec![received(), routed("dot"), then.expect("wrote").remove(0)]);
    assert_eq!(wrote.status, Status::Routed);
}

#[test]
fn a_redelivered_channel_message_changes_nothing() {
    let first = given(vec![received(), routed("dot"), acknowledged("dot"), asked()]);
    let reply = first.decide(message("SM2", "Số 5")).expect("reply").remove(0);
    let after = given(vec![received(), routed("dot"), acknowledged("dot"), asked(), reply]);
    assert_eq!(after.decide(message("SM2", "Số 5")), Ok(vec![]));
}

#[test]
fn a_channel_message_for_a_ticket_that_does_not_exist_is_refused() {
    assert_eq!(Ticket::default().decide(message("SM2", "x")), Err(DomainError::NotFound));
}

#[test]
fn a_question_needs_text() {
    let then = given(vec![received(), routed("dot")]).decide(Command::RequestInfo { by: agency("dot"), question: " ".into() });
    assert!(matches!(then, Err(DomainError::Invalid(_))), "{then:?}");
}

#[test]
fn a_reply_nobody_asked_for_is_refused() {
    not_allowed(given(vec![received(), routed("dot")]).decide(Command::CitizenReply { text: "x".into(), acknowledge_by: None, resolve_by: None }));
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
    assert_eq!(then, Ok(vec![TicketEvent::PetitionAnswered(PetitionAnswered { text: "Đã sửa xong".into(), agency: "dot".into(), via_ticket: None, attachments: vec![] })]));
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
    let then = given(vec![received(), routed("dot")]).decide(Command::Answer { by: agency("dot"), text: "\n".into(), desk: DESK.into(), attachments: vec![] });
    assert!(matches!(then, Err(DomainError::Invalid(_))));
}

// --- desk commands

#[test]
fn the_desk_recategorizes_and_the_ticket_is_routed_to_the_new_agency() {
    let then = given(vec![received(), routed("dot")])
        .decide(Command::Recategorize { by: operator(), category: "environment".into(), area: Some("tdm".into()), agency: "donre".into(), deadlines: None, emergency: false })
        .expect("recategorize");
    assert!(matches!(&then[..], [TicketEvent::PetitionRecategorized(r), TicketEvent::PetitionRouted(p)] if r.category == "environment" && p.agency == "donre"));
}

#[test]
fn an_agency_cannot_recategorize_reject_close_or_mark_duplicates() {
    let ticket = given(vec![received(), routed("dot")]);
    let by = agency("dot");
    for command in [
        Command::Recategorize { by: by.clone(), category: "environment".into(), area: None, agency: "donre".into(), deadlines: None, emergency: false },
        Command::Reject { by: by.clone(), reason: "spam".into() },
        Command::Close { by: by.clone(), reason: None },
        Command::MarkDuplicate { by: by.clone(), of_ticket: Uuid::from_u128(1), of_reference: Reference::derive(Uuid::from_u128(1), 0), original_answer: None },
    ] {
        assert!(matches!(ticket.decide(command), Err(DomainError::Forbidden(_))));
    }
}

#[test]
fn the_desk_links_a_duplicate_but_never_to_itself() {
    let ticket = given(vec![received(), routed("dot")]);
    let other = Uuid::from_u128(99);
    let then = ticket.decide(Command::MarkDuplicate { by: operator(), of_ticket: other, of_reference: Reference::derive(other, 0), original_answer: None });
    assert!(matches!(&then.as_deref(), Ok([TicketEvent::MarkedDuplicate(d)]) if d.of_ticket == other));
    let selfish = ticket.decide(Command::MarkDuplicate { by: operator(), of_ticket: TICKET, of_reference: Reference::derive(TICKET, 0), original_answer: None });
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
    assert_eq!(given(vec![]).decide(Command::CitizenReply { text: "x".into(), acknowledge_by: None, resolve_by: None }), Err(DomainError::NotFound));
}

#[test]
fn every_command_records_its_actor() {
    let p = agency("dot");
    let actor = p.actor();
    assert_eq!(actor.agency.as_deref(), Some("dot"));
    assert_eq!(actor.id, "t");
    assert!(serde_json::to_string(&actor).expect("json").contains("\"kind\":\"agency\""));
}

// --- deadlines

mod deadlines {
    use super::*;
    use hotline_domain::event::{DeadlineExtended, DeadlineKind, DeadlineMissed};
    use hotline_domain::province::Province;
    use time::Duration;
    use time::macros::datetime;

    /// Routed on Monday 3 March 2025 08:00 local (01:00 UTC): acknowledge by 12:00 local, resolve by Thursday.
    const ROUTED_AT: OffsetDateTime = datetime!(2025-03-03 01:00 UTC);
    const ACK_BY: OffsetDateTime = datetime!(2025-03-03 05:00 UTC);
    const RESOLVE_BY: OffsetDateTime = datetime!(2025-03-06 01:00 UTC);

    fn at(events: Vec<(OffsetDateTime, TicketEvent)>) -> Ticket {
        let mut ticket = Ticket::default();
        for (i, (when, event)) in events.into_iter().enumerate() {
            let meta = CommandMeta { actor: Actor::system("t"), occurred_at: when, correlation_id: TICKET, causation_id: None };
            for e in Envelope::seal(TICKET, i as u64, vec![event], &meta, || Uuid::from_u128(i as u128 + 1)) {
                ticket.apply(&e);
            }
        }
        ticket
    }

    fn routed_with_deadlines() -> Vec<(OffsetDateTime, TicketEvent)> {
        vec![
            (ROUTED_AT, received()),
            (
                ROUTED_AT,
                TicketEvent::PetitionRouted(PetitionRouted {
                    agency: "dot".into(),
                    area: None,
                    emergency: false,
                    acknowledge_by: Some(ACK_BY),
                    resolve_by: Some(RESOLVE_BY),
                }),
            ),
        ]
    }

    fn check(ticket: &Ticket, now: OffsetDateTime) -> Vec<TicketEvent> {
        ticket.decide(Command::CheckDeadlines { now }).expect("check")
    }

    fn kinds(events: &[TicketEvent]) -> Vec<(String, DeadlineKind)> {
        events
            .iter()
            .map(|e| match e {
                TicketEvent::DeadlineApproaching(a) => ("approaching".to_owned(), a.which),
                TicketEvent::DeadlineMissed(m) => ("missed".to_owned(), m.which),
                other => panic!("not an alarm: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn nothing_fires_before_eighty_percent_of_the_time() {
        let ticket = at(routed_with_deadlines());
        assert!(check(&ticket, ROUTED_AT + Duration::hours(3)).is_empty());
    }

    #[test]
    fn an_approaching_deadline_fires_once_at_eighty_percent() {
        let ticket = at(routed_with_deadlines());
        let then = check(&ticket, ROUTED_AT + Duration::minutes(193));
        assert_eq!(kinds(&then), [("approaching".to_owned(), DeadlineKind::Acknowledge)]);
        let mut history = routed_with_deadlines();
        history.push((ROUTED_AT + Duration::minutes(193), then[0].clone()));
        assert!(check(&at(history), ROUTED_AT + Duration::minutes(200)).is_empty(), "never twice");
    }

    #[test]
    fn a_missed_deadline_fires_once_and_escalates() {
        let ticket = at(routed_with_deadlines());
        let then = check(&ticket, ACK_BY);
        assert_eq!(kinds(&then), [("missed".to_owned(), DeadlineKind::Acknowledge)]);
        let mut history = routed_with_deadlines();
        history.push((ACK_BY, then[0].clone()));
        let after = at(history);
        assert!(after.deadlines.escalated);
        assert!(check(&after, ACK_BY + Duration::hours(1)).is_empty(), "never twice");
    }

    #[test]
    fn acknowledging_stops_the_acknowledgement_alarms_and_the_resolution_clock_runs_on() {
        let mut history = routed_with_deadlines();
        history.push((ROUTED_AT + Duration::hours(1), acknowledged("dot")));
        let ticket = at(history);
        assert!(check(&ticket, ACK_BY + Duration::hours(1)).is_empty());
        assert_eq!(kinds(&check(&ticket, RESOLVE_BY)), [("missed".to_owned(), DeadlineKind::Resolve)]);
    }

    #[test]
    fn waiting_for_the_citizen_pauses_the_deadlines_and_the_reply_resumes_them_with_the_time_left() {
        // Asked at 09:00 local; the acknowledgement was due at 12:00 local, but lunch starts at 11:30, so 2 h 30 of
        // working time were left.
        let asked_at = ROUTED_AT + Duration::hours(1);
        let mut history = routed_with_deadlines();
        history.push((asked_at, asked()));
        let waiting = at(history.clone());
        assert!(check(&waiting, RESOLVE_BY + Duration::days(3)).is_empty(), "paused");
        // The citizen answers the next day at 14:00 local: the remaining 2 h 30 end at 16:30 local.
        let replied_at = datetime!(2025-03-04 07:00 UTC);
        let province = Province::bundled();
        let (ack, resolve) = waiting.deadlines.resumed(replied_at, &province.calendar, (false, false));
        assert_eq!(ack, Some(datetime!(2025-03-04 09:30 UTC)));
        assert!(resolve.expect("resolve") > RESOLVE_BY, "the resolution deadline moved by the pause");
        let reply = waiting.decide(Command::CitizenReply { text: "Số 5".into(), acknowledge_by: ack, resolve_by: resolve });
        assert!(matches!(&reply.as_deref(), Ok([TicketEvent::CitizenReplied(r)]) if r.acknowledge_by == ack));
    }

    #[test]
    fn a_supervisor_extends_the_deadline_later_with_a_reason_and_the_alarms_rearm() {
        let mut history = routed_with_deadlines();
        history.push((ROUTED_AT + Duration::hours(1), acknowledged("dot")));
        history.push((RESOLVE_BY, TicketEvent::DeadlineMissed(DeadlineMissed { which: DeadlineKind::Resolve, due: RESOLVE_BY })));
        let ticket = at(history.clone());
        let later = RESOLVE_BY + Duration::days(7);
        let supervisor = who(Role::Supervisor, None);
        let then = ticket.decide(Command::ExtendDeadline { by: supervisor.clone(), resolve_by: later, reason: "Chờ kết quả giám định".into(), now: RESOLVE_BY });
        assert_eq!(then, Ok(vec![TicketEvent::DeadlineExtended(DeadlineExtended { resolve_by: later, reason: "Chờ kết quả giám định".into() })]));
        assert!(matches!(ticket.decide(Command::ExtendDeadline { by: operator(), resolve_by: later, reason: "x".into(), now: RESOLVE_BY }), Err(DomainError::Forbidden(_))));
        assert!(matches!(
            ticket.decide(Command::ExtendDeadline { by: supervisor, resolve_by: RESOLVE_BY - Duration::hours(1), reason: "x".into(), now: RESOLVE_BY }),
            Err(DomainError::Invalid(_))
        ));
        history.push((RESOLVE_BY + Duration::hours(1), then.expect("extended").remove(0)));
        assert_eq!(kinds(&check(&at(history), later)), [("missed".to_owned(), DeadlineKind::Resolve)], "rearmed for the new time");
    }

    #[test]
    fn no_alarm_runs_for_a_closed_or_answered_ticket() {
        let mut history = routed_with_deadlines();
        history.push((ROUTED_AT + Duration::hours(1), answered()));
        assert!(check(&at(history), RESOLVE_BY + Duration::days(30)).is_empty());
    }
}

#[test]
fn an_answer_takes_documents_by_link_and_refuses_bad_ones() {
    use hotline_domain::event::Attachment;
    let ticket = given(vec![received(), routed("dot")]);
    let doc = |name: &str, url: &str| Attachment { name: name.into(), url: Some(url.into()), sha256: None, media_type: None, size: None };
    let ok = ticket.decide(Command::Answer {
        by: agency("dot"),
        text: "Xem quyết định kèm theo".into(),
        desk: DESK.into(),
        attachments: vec![doc("Quyết định 123/QĐ", "https://dichvucong.binhduong.gov.vn/qd-123.pdf")],
    });
    assert!(matches!(&ok.as_deref(), Ok([TicketEvent::PetitionAnswered(a)]) if a.attachments.len() == 1));
    for bad in [
        vec![doc("", "https://x")],
        vec![doc("x", "ftp://x")],
        vec![doc("x", "javascript:alert(1)")],
        vec![doc("x", "https://a b")],
        (0..11).map(|i| doc(&format!("d{i}"), "https://x")).collect(),
    ] {
        let then = ticket.decide(Command::Answer { by: agency("dot"), text: "x".into(), desk: DESK.into(), attachments: bad });
        assert!(matches!(then, Err(DomainError::Invalid(_))), "{then:?}");
    }
}

// --- pinned by review findings

#[test]
fn the_desk_cannot_ask_a_question_before_the_router_routed_the_ticket() {
    // Regression: a question on `received` made the router skip the ticket, and the reply left it unrouted.
    let then = given(vec![received()]).decide(Command::RequestInfo { by: operator(), question: "?".into() });
    assert!(matches!(then, Err(DomainError::NotAllowed(_))), "{then:?}");
}

#[test]
fn an_extension_lands_in_the_future_within_five_years() {
    // Regression: an extension to year 9999 made timeline summaries and pause arithmetic panic.
    let ticket = given(vec![received(), routed("dot")]);
    let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    let supervisor = who(Role::Supervisor, None);
    for resolve_by in [now - time::Duration::hours(1), now + time::Duration::days(366 * 6), time::macros::datetime!(9999-12-31 23:00 UTC)] {
        let then = ticket.decide(Command::ExtendDeadline { by: supervisor.clone(), resolve_by, reason: "x".into(), now });
        assert!(matches!(then, Err(DomainError::Invalid(_))), "{resolve_by}: {then:?}");
    }
    let triage = given(vec![received(), TicketEvent::PetitionNeedsTriage(PetitionNeedsTriage { agency: DESK.into(), reason: "r".into(), suggested_category: None, area: None })]);
    let then = triage.decide(Command::ExtendDeadline { by: supervisor, resolve_by: now + time::Duration::days(3), reason: "x".into(), now });
    assert!(matches!(then, Err(DomainError::NotAllowed(_))), "no deadline runs in triage: {then:?}");
}

#[test]
fn recategorizing_into_an_emergency_category_flags_the_ticket() {
    let then = given(vec![received(), routed("dot")])
        .decide(Command::Recategorize { by: operator(), category: "emergency_fire".into(), area: None, agency: "fire_rescue".into(), deadlines: None, emergency: true })
        .expect("recategorize");
    assert!(matches!(&then[1], TicketEvent::PetitionRouted(r) if r.emergency && r.agency == "fire_rescue"));
}

#[test]
fn a_citizen_unhappy_with_the_desks_answer_goes_back_to_the_desk_for_triage() {
    let desk_answer = TicketEvent::PetitionAnswered(PetitionAnswered { text: "Giờ làm việc 7h30".into(), agency: DESK.into(), via_ticket: None, attachments: vec![] });
    let ticket = given(vec![received(), desk_answer]);
    let then = ticket.decide(Command::Feedback { satisfied: false, comment: Some("Sai giờ".into()), deadlines: None, desk: Some(DESK.into()) }).expect("feedback");
    assert!(matches!(&then[1], TicketEvent::PetitionNeedsTriage(t) if t.agency == DESK), "{then:?}");
}

#[test]
fn a_duplicate_takes_only_its_own_originals_answer_once() {
    let original = Uuid::from_u128(99);
    let answer = PetitionAnswered { text: "Đã sửa".into(), agency: "dot".into(), via_ticket: None, attachments: vec![] };
    let dup = given(vec![received(), TicketEvent::MarkedDuplicate(MarkedDuplicate { of_ticket: original, of_reference: Reference::derive(original, 0) })]);
    let then = dup.decide(Command::ShareAnswer { from_ticket: original, answer: answer.clone() });
    assert!(matches!(&then.as_deref(), Ok([TicketEvent::PetitionAnswered(a)]) if a.via_ticket == Some(original)));
    assert_eq!(dup.decide(Command::ShareAnswer { from_ticket: Uuid::from_u128(5), answer: answer.clone() }), Ok(vec![]));
    let answered = given(vec![received(), routed("dot"), answered()]);
    assert_eq!(answered.decide(Command::LinkDuplicate { duplicate: original }).map(|e| e.len()), Ok(1));
    let linked = given(vec![received(), TicketEvent::DuplicateLinked(hotline_domain::event::DuplicateLinked { duplicate: original })]);
    assert_eq!(linked.decide(Command::LinkDuplicate { duplicate: original }), Ok(vec![]), "linked once");
}
