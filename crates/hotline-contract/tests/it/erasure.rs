//! Erasure in the published contract: after `PersonalDataErased`, no agency copy carries the citizen's personal
//! data again (whatever the event bodies still hold), and the erasure reaches every agency that held the ticket.

use hotline_contract::{Audience, ERASED, FeedMessage, FeedTicket, feed_messages, parse_subject, ticket_filter};
use hotline_domain::event::{
    CallLogged, CallEventKind, CitizenWrote, ErasureReason, FeedbackGiven, PersonalDataErased, PetitionRouted,
    PetitionTransferred, ReplyFailed, ReplyKind,
};
use hotline_domain::{Envelope, TicketEvent};

use crate::fixtures::{AGENCY, EMAIL, NAME, PHONE, PROVINCE, TICKET, ZALO_ID, routed_history, sealed};

fn erase() -> TicketEvent {
    TicketEvent::PersonalDataErased(PersonalDataErased { reason: ErasureReason::Request })
}

/// Citizen-written events whose bodies still hold plaintext, as a process that cached the citizen's key before the
/// erasure would load them.
fn plaintext_events() -> Vec<TicketEvent> {
    let contact = format!("{NAME} {PHONE} {EMAIL} {ZALO_ID}");
    vec![
        TicketEvent::CitizenWrote(CitizenWrote {
            text: contact.clone(),
            channel: "sms".into(),
            channel_ref: None,
            attachments: vec![],
        }),
        TicketEvent::FeedbackGiven(FeedbackGiven { satisfied: false, comment: Some(contact.clone()) }),
        TicketEvent::ReplyFailed(ReplyFailed {
            kind: ReplyKind::Answer,
            of_event: uuid::Uuid::from_u128(1),
            channel: "sms".into(),
            reason: contact.clone(),
            attempts: 1,
        }),
        TicketEvent::CallLogged(CallLogged {
            call_id: "c1".into(),
            key: "recording:1".into(),
            kind: CallEventKind::Recording,
            source: "ami".into(),
            at: None,
            direction: None,
            agent: None,
            duration_secs: None,
            talk_secs: None,
            cause: None,
            recording: Some(format!("https://pbx.example.vn/{PHONE}.wav")),
        }),
        TicketEvent::PetitionTransferred(PetitionTransferred {
            from_agency: AGENCY.into(),
            reason: "not ours".into(),
            suggested_agency: Some("electricity".into()),
            bounces: 1,
        }),
        TicketEvent::PetitionRouted(PetitionRouted {
            agency: "electricity".into(),
            area: None,
            emergency: false,
            acknowledge_by: None,
            resolve_by: None,
        }),
    ]
}

fn assert_no_contact(message: &FeedMessage) {
    let json = serde_json::to_string(&message.data).expect("json");
    for needle in [NAME, PHONE, EMAIL, ZALO_ID, "Bình", "912345678"] {
        assert!(!json.contains(needle), "{}: holds `{needle}` after the erasure:\n{json}", message.subject);
    }
}

#[test]
fn after_the_erasure_no_agency_copy_carries_personal_data_whatever_the_event_bodies_hold() {
    let mut history = routed_history();
    history.extend(sealed(&history, vec![erase()]).into_iter().map(|(e, _)| e));
    let mut copies = 0;
    for event in plaintext_events() {
        let (envelope, ticket) = sealed(&history, vec![event]).remove(0);
        assert!(ticket.erased);
        for message in feed_messages(&envelope, &ticket, PROVINCE) {
            assert_no_contact(&message);
            assert_eq!(message.data["ticket"]["personalDataErased"], true);
            if message.audience != Audience::Public {
                copies += 1;
                let json = serde_json::to_string(&message.data).expect("json");
                if !matches!(envelope.event, TicketEvent::PetitionTransferred(_)) {
                    assert!(json.contains(ERASED), "{}: no {ERASED} in\n{json}", message.subject);
                }
            }
        }
        history.push(envelope);
    }
    assert_eq!(copies, plaintext_events().len());
    // The petition the new agency gets on routing: every personal field reads [erased].
    let routed = history.last().expect("routed");
    let ticket = hotline_domain::Ticket::from_history(&history);
    let copy = feed_messages(routed, &ticket, PROVINCE).remove(1);
    let petition = &copy.data["petition"];
    for field in ["name", "phone", "email", "zaloId"] {
        assert_eq!(petition["citizen"][field], ERASED, "{field}");
    }
    assert_eq!(petition["text"], ERASED);
    assert_eq!(petition["subject"], ERASED);
    assert_eq!(petition["location"]["address"], ERASED);
    assert_eq!(petition["attachments"][0]["name"], ERASED);
    // What is not personal stays.
    assert_eq!(petition["category"], "street_lighting");
    assert_eq!(copy.data["ticket"]["agency"], "electricity");
}

#[test]
fn the_erasure_goes_to_every_agency_that_ever_held_the_ticket_once() {
    let mut history: Vec<Envelope> = routed_history();
    let steps = vec![
        TicketEvent::PetitionTransferred(PetitionTransferred {
            from_agency: AGENCY.into(),
            reason: "not ours".into(),
            suggested_agency: None,
            bounces: 1,
        }),
        TicketEvent::PetitionRouted(PetitionRouted {
            agency: "electricity".into(),
            area: None,
            emergency: false,
            acknowledge_by: None,
            resolve_by: None,
        }),
        TicketEvent::PetitionTransferred(PetitionTransferred {
            from_agency: "electricity".into(),
            reason: "not ours either".into(),
            suggested_agency: None,
            bounces: 2,
        }),
        TicketEvent::PetitionRouted(PetitionRouted {
            agency: AGENCY.into(),
            area: None,
            emergency: false,
            acknowledge_by: None,
            resolve_by: None,
        }),
    ];
    for event in steps {
        history.extend(sealed(&history, vec![event]).into_iter().map(|(e, _)| e));
    }
    let mut feed = FeedTicket::from_history(&history);
    assert_eq!(feed.holders, [AGENCY, "electricity"]);
    let (envelope, _) = sealed(&history, vec![erase()]).remove(0);
    let messages = feed.apply(&envelope, PROVINCE);
    let audiences: Vec<&Audience> = messages.iter().map(|m| &m.audience).collect();
    assert_eq!(
        audiences,
        [&Audience::Public, &Audience::Agency(AGENCY.into()), &Audience::Agency("electricity".into())],
        "public, the current holder, then the earlier one"
    );
    for m in &messages {
        assert_eq!(m.data["reason"], "ERASURE_REASON_REQUEST");
        assert_eq!(m.data["ticket"]["personalDataErased"], true);
        assert_eq!(m.data["ticket"]["agency"], AGENCY);
    }
    assert_eq!(messages[2].data["event"]["agency"], "electricity");
    assert_eq!(messages[2].id, format!("{}:electricity", envelope.event_id));
    // Any other event goes to the current holder only.
    history.push(envelope);
    let (next, _) = sealed(&history, vec![plaintext_events().remove(0)]).remove(0);
    assert_eq!(feed.apply(&next, PROVINCE).len(), 2);
}

#[test]
fn feed_subjects_end_with_the_ticket_id_and_parse_back() {
    let (envelope, ticket) = sealed(&routed_history(), vec![erase()]).remove(0);
    for m in feed_messages(&envelope, &ticket, PROVINCE) {
        assert!(m.subject.ends_with(&format!(".personal_data_erased.{TICKET}")), "{}", m.subject);
        assert_eq!(parse_subject(&m.subject), Some((m.audience.token(), TICKET)));
    }
    assert_eq!(ticket_filter(TICKET), format!("hotline.feed.v1.*.*.{TICKET}"));
    assert_eq!(parse_subject("hotline.feed.v1.public.petition_routed"), None, "the old form has no ticket id");
    assert_eq!(parse_subject(&format!("hotline.feed.v1.public.petition_routed.{TICKET}.x")), None);
    assert_eq!(parse_subject("hotline.feed.v1.public.petition_routed.not-a-uuid"), None);
    assert_eq!(parse_subject(&format!("hotline.feed.v2.public.petition_routed.{TICKET}")), None);
}
