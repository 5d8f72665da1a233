//! Phone tickets, given/when/then: call facts from the PBX are recorded once per key, and a reply that cannot go
//! by SMS becomes a call-back an operator records.

use hotline_domain::access::{Principal, Role};
use hotline_domain::event::{
    CallEventKind, CallLogged, CallbackDone, NO_MOBILE_NUMBER, PetitionReceived, ReplyFailed, ReplyKind, ReplySent,
};
use hotline_domain::{Actor, Command, CommandMeta, DomainError, Envelope, Reference, Ticket, TicketEvent};
use time::OffsetDateTime;
use uuid::Uuid;

const TICKET: Uuid = Uuid::from_u128(0x0222);
const CALL: &str = "1717000000.42";

fn given(events: Vec<TicketEvent>) -> Ticket {
    let meta = CommandMeta {
        actor: Actor::channel("phone"),
        occurred_at: OffsetDateTime::UNIX_EPOCH,
        correlation_id: TICKET,
        causation_id: None,
    };
    let mut n = 0u128;
    Ticket::from_history(&Envelope::seal(TICKET, 0, events, &meta, || {
        n += 1;
        Uuid::from_u128(n)
    }))
}

fn petition(channel: &str) -> TicketEvent {
    TicketEvent::PetitionReceived(PetitionReceived {
        citizen_key: None,
        reference: Reference::derive(TICKET, 0),
        channel: channel.to_owned(),
        channel_ref: Some(CALL.to_owned()),
        text: "Mất nước ở phường Phú Cường từ sáng".to_owned(),
        subject: None,
        category: None,
        citizen: None,
        location: None,
        attachments: vec![],
    })
}

fn fact(kind: CallEventKind, key: &str) -> CallLogged {
    CallLogged {
        call_id: CALL.to_owned(),
        key: key.to_owned(),
        kind,
        source: "ami".to_owned(),
        at: Some(OffsetDateTime::UNIX_EPOCH),
        direction: Some("inbound".to_owned()),
        agent: None,
        duration_secs: None,
        talk_secs: None,
        cause: None,
        recording: None,
    }
}

fn failed(reason: &str) -> TicketEvent {
    TicketEvent::ReplyFailed(ReplyFailed {
        kind: ReplyKind::Answer,
        of_event: Uuid::from_u128(7),
        channel: "sms".to_owned(),
        reason: reason.to_owned(),
        attempts: 1,
    })
}

fn operator(role: Role) -> Principal {
    Principal { role, agency: (role == Role::Agency).then(|| "so_xay_dung".to_owned()), token_id: "t1".to_owned(), name: "Lan".to_owned() }
}

fn no_mobile() -> String {
    format!("{NO_MOBILE_NUMBER}: call the citizen back")
}

#[test]
fn call_facts_on_a_phone_ticket_are_recorded() {
    let ticket = given(vec![petition("phone")]);
    let facts = vec![fact(CallEventKind::Started, "started"), fact(CallEventKind::Ended, "ended")];
    let events = ticket.decide(Command::RecordCall { facts: facts.clone() }).expect("recorded");
    assert_eq!(events, facts.into_iter().map(TicketEvent::CallLogged).collect::<Vec<_>>());
}

#[test]
fn a_fact_the_ticket_already_holds_is_not_recorded_again() {
    let ticket = given(vec![petition("phone"), TicketEvent::CallLogged(fact(CallEventKind::Started, "started"))]);
    let events = ticket
        .decide(Command::RecordCall { facts: vec![fact(CallEventKind::Started, "started"), fact(CallEventKind::Answered, "answered")] })
        .expect("decided");
    assert_eq!(events, vec![TicketEvent::CallLogged(fact(CallEventKind::Answered, "answered"))]);
    let again = ticket.decide(Command::RecordCall { facts: vec![fact(CallEventKind::Started, "started")] }).expect("decided");
    assert!(again.is_empty(), "a redelivered fact records nothing");
}

#[test]
fn the_same_key_twice_in_one_report_is_recorded_once() {
    let ticket = given(vec![petition("phone")]);
    let events = ticket
        .decide(Command::RecordCall { facts: vec![fact(CallEventKind::Ended, "ended"), fact(CallEventKind::Ended, "ended")] })
        .expect("decided");
    assert_eq!(events.len(), 1);
}

#[test]
fn a_fact_about_another_call_is_refused() {
    let ticket = given(vec![petition("phone")]);
    let other = CallLogged { call_id: "other".to_owned(), ..fact(CallEventKind::Started, "started") };
    assert!(matches!(ticket.decide(Command::RecordCall { facts: vec![other] }), Err(DomainError::Invalid(_))));
}

#[test]
fn a_fact_without_a_key_is_refused() {
    let ticket = given(vec![petition("phone")]);
    assert!(matches!(
        ticket.decide(Command::RecordCall { facts: vec![fact(CallEventKind::Started, " ")] }),
        Err(DomainError::Invalid(_))
    ));
}

#[test]
fn call_facts_belong_on_phone_tickets_only() {
    let ticket = given(vec![petition("sms")]);
    assert!(matches!(
        ticket.decide(Command::RecordCall { facts: vec![fact(CallEventKind::Started, "started")] }),
        Err(DomainError::Invalid(_))
    ));
}

#[test]
fn call_facts_need_an_existing_ticket() {
    assert_eq!(
        Ticket::default().decide(Command::RecordCall { facts: vec![fact(CallEventKind::Started, "started")] }),
        Err(DomainError::NotFound)
    );
}

#[test]
fn a_reply_without_a_mobile_number_makes_a_phone_ticket_due_for_a_call_back() {
    assert!(given(vec![petition("phone"), failed(&no_mobile())]).callback_due);
    assert!(!given(vec![petition("phone"), failed("gateway refused the number")]).callback_due, "other failures are not call-backs");
    assert!(!given(vec![petition("sms"), failed(&no_mobile())]).callback_due, "only phone callers are called back");
}

#[test]
fn a_later_delivered_reply_clears_the_call_back() {
    let sent = TicketEvent::ReplySent(ReplySent {
        kind: ReplyKind::Answer,
        of_event: Uuid::from_u128(9),
        channel: "sms".to_owned(),
        channel_message_id: None,
    });
    assert!(!given(vec![petition("phone"), failed(&no_mobile()), sent]).callback_due);
}

#[test]
fn an_operator_records_the_call_back_and_the_ticket_leaves_the_queue() {
    let ticket = given(vec![petition("phone"), failed(&no_mobile())]);
    let events = ticket
        .decide(Command::RecordCallback { by: operator(Role::Operator), note: " Đã gọi, công dân đã nghe câu trả lời ".to_owned() })
        .expect("recorded");
    assert_eq!(events, vec![TicketEvent::CallbackDone(CallbackDone { note: "Đã gọi, công dân đã nghe câu trả lời".to_owned() })]);
    assert!(!given(vec![petition("phone"), failed(&no_mobile()), events[0].clone()]).callback_due);
}

#[test]
fn a_call_back_is_recorded_only_when_one_is_due() {
    let ticket = given(vec![petition("phone")]);
    assert!(matches!(
        ticket.decide(Command::RecordCallback { by: operator(Role::Operator), note: "gọi rồi".to_owned() }),
        Err(DomainError::NotAllowed(_))
    ));
}

#[test]
fn only_the_desk_records_a_call_back_and_with_a_note() {
    let ticket = given(vec![petition("phone"), failed(&no_mobile())]);
    assert!(matches!(
        ticket.decide(Command::RecordCallback { by: operator(Role::Agency), note: "gọi rồi".to_owned() }),
        Err(DomainError::Forbidden(_))
    ));
    assert!(matches!(
        ticket.decide(Command::RecordCallback { by: operator(Role::Supervisor), note: "  ".to_owned() }),
        Err(DomainError::Invalid(_))
    ));
}
