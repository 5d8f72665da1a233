//! One of each internal event with every optional field set, full of personal data and free text that must stay
//! out of the public feed, and the feed messages the contract makes of them.

use hotline_contract::{FeedMessage, feed_messages};
use hotline_domain::event::{
    Attachment, CallEventKind, CallLogged, CallbackDone, Citizen, CitizenReplied, CitizenWrote, DeadlineApproaching,
    DeadlineExtended, DeadlineKind, DeadlineMissed, DuplicateLinked, FeedbackGiven, InformationRequested, Location,
    MarkedDuplicate, PetitionAcknowledged, PetitionAnswered, PetitionCategorized, PetitionNeedsTriage,
    PetitionReceived, PetitionRecategorized, PetitionRejected, PetitionRouted, PetitionTransferred, ReplyFailed,
    NO_MOBILE_NUMBER, ErasureReason, PersonalDataErased, ReplyKind, ReplySent, TicketClosed,
};
use hotline_domain::{Actor, ActorKind, CommandMeta, Envelope, Reference, Ticket, TicketEvent};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

pub const PROVINCE: &str = "dien_bien";
pub const TICKET: Uuid = Uuid::from_u128(0x0193_6b2e_8c1a_7d4e_9f00_1234_5678_9abc);
pub const AGENCY: &str = "dot";

/// The citizen's contact details.
pub const NAME: &str = "Nguyễn Văn Bình";
pub const PHONE: &str = "84912345678";
pub const EMAIL: &str = "binh.nguyen@example.vn";
pub const ZALO_ID: &str = "4318769021765432101";
/// Every free text in the fixture contains this marker (what a citizen or an official wrote, file names, the
/// staff member's name, the PBX's ids): none of it may reach the public feed.
pub const PRIVATE: &str = "PRIVATE";

/// Every string that must never appear in a public message or in any header.
pub fn personal_strings() -> Vec<&'static str> {
    vec![NAME, PHONE, EMAIL, ZALO_ID, PRIVATE, "Bình", "912345678"]
}

fn private(what: &str) -> String {
    format!("{PRIVATE} {what}: đèn đường hỏng trước nhà số 12, gọi {PHONE} hoặc {EMAIL} ({NAME})")
}

fn file(n: u32) -> Attachment {
    Attachment {
        name: format!("{PRIVATE}-ảnh-nhà-{NAME}-{n}.jpg"),
        url: Some(format!("https://agency.example.vn/docs/{n}.pdf")),
        sha256: Some("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into()),
        media_type: Some("image/jpeg".into()),
        size: Some(48_213),
    }
}

pub fn received() -> TicketEvent {
    TicketEvent::PetitionReceived(PetitionReceived {
        reference: Reference::derive(TICKET, 0),
        // A phone ticket, so a reply that cannot go by SMS makes a call-back due (TicketState.callbackDue).
        channel: "phone".into(),
        channel_ref: Some(format!("{PRIVATE}-call")),
        text: private("petition"),
        subject: Some(private("subject")),
        category: Some("street_lighting".into()),
        citizen: Some(Citizen {
            name: Some(NAME.into()),
            phone: Some(PHONE.into()),
            email: Some(EMAIL.into()),
            zalo_id: Some(ZALO_ID.into()),
        }),
        location: Some(Location {
            area: Some("dien_bien_phu".into()),
            lat: Some(21.386_742),
            lon: Some(103.023_118),
            address: Some(private("address")),
        }),
        attachments: vec![file(1), file(2)],
        citizen_key: Some(Uuid::from_u128(0xc1)),
    })
}

fn routed() -> TicketEvent {
    TicketEvent::PetitionRouted(PetitionRouted {
        agency: AGENCY.into(),
        area: Some("dien_bien_phu".into()),
        emergency: true,
        acknowledge_by: Some(datetime!(2026-11-28 09:30 +07:00)),
        resolve_by: Some(datetime!(2026-12-05 17:00:00.250 +07:00)),
    })
}

/// One of each event type, every optional field set, in `TicketEvent::TYPES` order.
pub fn every_event() -> Vec<TicketEvent> {
    let t = datetime!(2026-12-01 08:15:30.123_456 UTC);
    vec![
        received(),
        TicketEvent::PetitionCategorized(PetitionCategorized {
            category: "street_lighting".into(),
            area: Some("dien_bien_phu".into()),
            emergency: true,
            confidence: 0.87,
            source: "classifier".into(),
            matched: vec![format!("category:street_lighting '{PRIVATE} den duong'")],
        }),
        routed(),
        TicketEvent::PetitionNeedsTriage(PetitionNeedsTriage {
            agency: "hotline_desk".into(),
            reason: private("triage reason"),
            suggested_category: Some("street_lighting".into()),
            area: Some("dien_bien_phu".into()),
        }),
        TicketEvent::PetitionAcknowledged(PetitionAcknowledged { agency: AGENCY.into() }),
        TicketEvent::InformationRequested(InformationRequested { question: private("question") }),
        TicketEvent::CitizenReplied(CitizenReplied {
            text: private("reply"),
            acknowledge_by: Some(t),
            resolve_by: Some(t + time::Duration::days(3)),
            channel_ref: Some(format!("{PRIVATE}-sms-id")),
            attachments: vec![file(3)],
        }),
        TicketEvent::CitizenWrote(CitizenWrote {
            text: private("follow-up"),
            channel: "sms".into(),
            channel_ref: Some(format!("{PRIVATE}-sms-id-2")),
            attachments: vec![file(4)],
        }),
        TicketEvent::PetitionTransferred(PetitionTransferred {
            from_agency: AGENCY.into(),
            reason: private("transfer reason"),
            suggested_agency: Some("electricity".into()),
            bounces: 1,
        }),
        TicketEvent::PetitionAnswered(PetitionAnswered {
            text: private("answer"),
            agency: AGENCY.into(),
            via_ticket: Some(Uuid::from_u128(0x77)),
            attachments: vec![file(5)],
        }),
        TicketEvent::PetitionRecategorized(PetitionRecategorized {
            category: "roads".into(),
            area: Some("muong_thanh".into()),
        }),
        TicketEvent::MarkedDuplicate(MarkedDuplicate {
            of_ticket: Uuid::from_u128(0x77),
            of_reference: Reference::derive(Uuid::from_u128(0x77), 0),
        }),
        TicketEvent::PetitionRejected(PetitionRejected { reason: private("rejection") }),
        TicketEvent::TicketClosed(TicketClosed { reason: Some(private("closing")) }),
        TicketEvent::DeadlineApproaching(DeadlineApproaching { which: DeadlineKind::Resolve, due: t }),
        TicketEvent::DeadlineMissed(DeadlineMissed { which: DeadlineKind::Acknowledge, due: t }),
        TicketEvent::DeadlineExtended(DeadlineExtended { resolve_by: t + time::Duration::days(10), reason: private("extension") }),
        TicketEvent::ReplySent(ReplySent {
            kind: ReplyKind::Answer,
            of_event: Uuid::from_u128(0x99),
            channel: "email".into(),
            channel_message_id: Some(format!("{PRIVATE}-vendor-id")),
        }),
        TicketEvent::ReplyFailed(ReplyFailed {
            kind: ReplyKind::Question,
            of_event: Uuid::from_u128(0x98),
            channel: "sms".into(),
            reason: format!("{NO_MOBILE_NUMBER}: {}", private("vendor refused")),
            attempts: 8,
        }),
        TicketEvent::FeedbackGiven(FeedbackGiven { satisfied: true, comment: Some(private("feedback")) }),
        TicketEvent::DuplicateLinked(DuplicateLinked { duplicate: Uuid::from_u128(0x55) }),
        TicketEvent::CallLogged(CallLogged {
            call_id: format!("{PRIVATE}-call"),
            key: format!("recording:{PRIVATE}"),
            kind: CallEventKind::Ended,
            source: "ami".into(),
            at: Some(t),
            direction: Some("inbound".into()),
            agent: Some(format!("{PRIVATE}-ext-101")),
            duration_secs: Some(0),
            talk_secs: Some(95),
            cause: Some("NORMAL_CLEARING".into()),
            recording: Some(format!("https://pbx.example.vn/{PRIVATE}.wav")),
        }),
        TicketEvent::CallbackDone(CallbackDone { note: private("call-back note") }),
        TicketEvent::PersonalDataErased(PersonalDataErased { reason: ErasureReason::Request }),
    ]
}

fn meta(at: OffsetDateTime) -> CommandMeta {
    CommandMeta {
        actor: Actor {
            kind: ActorKind::Operator,
            id: "tok_7f3a".into(),
            name: Some(format!("{PRIVATE} operator Trần Thị Hoa")),
            agency: Some(AGENCY.into()),
        },
        occurred_at: at,
        correlation_id: TICKET,
        causation_id: Some(Uuid::from_u128(0x42)),
    }
}

/// Seals `events` after `history` and returns each new envelope with the ticket as it stands after it.
pub fn sealed(history: &[Envelope], events: Vec<TicketEvent>) -> Vec<(Envelope, Ticket)> {
    let mut ticket = Ticket::from_history(history);
    let mut n = history.len() as u128;
    let at = datetime!(2026-11-28 04:57:53.5 UTC) + time::Duration::minutes(n as i64);
    Envelope::seal(TICKET, ticket.seq, events, &meta(at), || {
        n += 1;
        Uuid::from_u128(0x0193_6b2e_8c1a_7000_8000_0000_0000_0000 + n)
    })
    .into_iter()
    .map(|mut e| {
        e.recorded_at = e.occurred_at + time::Duration::milliseconds(7);
        ticket.apply(&e);
        (e, ticket.clone())
    })
    .collect()
}

/// A ticket received with the full citizen fixture and routed to [`AGENCY`]: what later events happen to.
pub fn routed_history() -> Vec<Envelope> {
    sealed(&[], vec![received(), routed()]).into_iter().map(|(e, _)| e).collect()
}

/// Each event of [`every_event`] with the ticket after it: the first as a ticket's first event, the others after
/// [`routed_history`], so the ticket has an agency and they are published to both audiences.
pub fn every_envelope() -> Vec<(Envelope, Ticket)> {
    let history = routed_history();
    every_event()
        .into_iter()
        .map(|event| {
            let base: &[Envelope] = if matches!(event, TicketEvent::PetitionReceived(_)) { &[] } else { &history };
            sealed(base, vec![event]).remove(0)
        })
        .collect()
}

/// Every feed message of [`every_envelope`], with the internal type it came from.
pub fn every_message() -> Vec<(&'static str, FeedMessage)> {
    every_envelope()
        .iter()
        .flat_map(|(e, t)| feed_messages(e, t, PROVINCE).into_iter().map(|m| (e.event_type(), m)))
        .collect()
}
