//! docs/events.md must name every event type and every field the code writes, so the two cannot drift.

use hotline_domain::event::{
    Citizen, CitizenReplied, DeadlineApproaching, DeadlineExtended, DeadlineKind, DeadlineMissed, FeedbackGiven,
    ReplyFailed, ReplyKind, ReplySent, InformationRequested, Location, MarkedDuplicate, PetitionAcknowledged, PetitionAnswered,
    PetitionCategorized, PetitionNeedsTriage, PetitionReceived, PetitionRecategorized, PetitionRejected, PetitionRouted,
    PetitionTransferred, TicketClosed,
};
use hotline_domain::{Actor, CommandMeta, Envelope, Reference, TicketEvent};
use time::OffsetDateTime;
use uuid::Uuid;

/// One of each event with every optional field set, so every field shows in the stored JSON.
fn every_event() -> Vec<TicketEvent> {
    vec![
        TicketEvent::PetitionReceived(PetitionReceived {
            citizen_key: Some(Uuid::nil()),
            reference: Reference::derive(Uuid::nil(), 0),
            channel: "app".into(),
            channel_ref: Some("k".into()),
            text: "t".into(),
            subject: Some("s".into()),
            category: Some("c".into()),
            citizen: Some(Citizen { name: Some("n".into()), phone: Some("p".into()), email: Some("e".into()), zalo_id: Some("z".into()) }),
            location: Some(Location { area: Some("a".into()), lat: Some(1.0), lon: Some(2.0), address: Some("x".into()) }),
            attachments: vec![hotline_domain::event::Attachment { name: "n".into(), url: Some("https://x".into()), sha256: Some("s".into()), media_type: Some("application/pdf".into()), size: Some(1) }],
        }),
        TicketEvent::PetitionCategorized(PetitionCategorized {
            category: "c".into(),
            area: Some("a".into()),
            emergency: true,
            confidence: 0.5,
            source: "classifier".into(),
            matched: vec!["m".into()],
        }),
        TicketEvent::PetitionRouted(PetitionRouted {
            agency: "g".into(),
            area: Some("a".into()),
            emergency: false,
            acknowledge_by: Some(OffsetDateTime::UNIX_EPOCH),
            resolve_by: Some(OffsetDateTime::UNIX_EPOCH),
        }),
        TicketEvent::PetitionNeedsTriage(PetitionNeedsTriage {
            agency: "g".into(),
            reason: "r".into(),
            suggested_category: Some("c".into()),
            area: Some("a".into()),
        }),
        TicketEvent::PetitionAcknowledged(PetitionAcknowledged { agency: "g".into() }),
        TicketEvent::InformationRequested(InformationRequested { question: "q".into() }),
        TicketEvent::CitizenReplied(CitizenReplied { text: "t".into(), acknowledge_by: Some(OffsetDateTime::UNIX_EPOCH), resolve_by: Some(OffsetDateTime::UNIX_EPOCH), channel_ref: Some("m".into()), attachments: vec![hotline_domain::event::Attachment { name: "n".into(), url: Some("https://x".into()), sha256: Some("s".into()), media_type: Some("application/pdf".into()), size: Some(1) }] }),
        TicketEvent::CitizenWrote(hotline_domain::event::CitizenWrote { text: "t".into(), channel: "sms".into(), channel_ref: Some("m".into()), attachments: vec![hotline_domain::event::Attachment { name: "n".into(), url: Some("https://x".into()), sha256: Some("s".into()), media_type: Some("application/pdf".into()), size: Some(1) }] }),
        TicketEvent::PetitionTransferred(PetitionTransferred {
            from_agency: "g".into(),
            reason: "r".into(),
            suggested_agency: Some("h".into()),
            bounces: 1,
        }),
        TicketEvent::PetitionAnswered(PetitionAnswered { text: "t".into(), agency: "g".into(), via_ticket: Some(Uuid::nil()), attachments: vec![hotline_domain::event::Attachment { name: "n".into(), url: Some("https://x".into()), sha256: Some("s".into()), media_type: Some("application/pdf".into()), size: Some(1) }] }),
        TicketEvent::PetitionRecategorized(PetitionRecategorized { category: "c".into(), area: Some("a".into()) }),
        TicketEvent::MarkedDuplicate(MarkedDuplicate { of_ticket: Uuid::nil(), of_reference: Reference::derive(Uuid::nil(), 1) }),
        TicketEvent::PetitionRejected(PetitionRejected { reason: "r".into() }),
        TicketEvent::TicketClosed(TicketClosed { reason: Some("r".into()) }),
        TicketEvent::DeadlineApproaching(DeadlineApproaching { which: DeadlineKind::Resolve, due: OffsetDateTime::UNIX_EPOCH }),
        TicketEvent::DeadlineMissed(DeadlineMissed { which: DeadlineKind::Acknowledge, due: OffsetDateTime::UNIX_EPOCH }),
        TicketEvent::DeadlineExtended(DeadlineExtended { resolve_by: OffsetDateTime::UNIX_EPOCH, reason: "r".into() }),
        TicketEvent::ReplySent(ReplySent { kind: ReplyKind::Answer, of_event: Uuid::nil(), channel: "app".into(), channel_message_id: Some("m".into()) }),
        TicketEvent::ReplyFailed(ReplyFailed { kind: ReplyKind::Question, of_event: Uuid::nil(), channel: "sms".into(), reason: "r".into(), attempts: 8 }),
        TicketEvent::FeedbackGiven(FeedbackGiven { satisfied: false, comment: Some("c".into()) }),
        TicketEvent::DuplicateLinked(hotline_domain::event::DuplicateLinked { duplicate: Uuid::nil() }),
        TicketEvent::CallLogged(hotline_domain::event::CallLogged {
            call_id: "c".into(),
            key: "ended".into(),
            kind: hotline_domain::event::CallEventKind::Ended,
            source: "ami".into(),
            at: Some(OffsetDateTime::UNIX_EPOCH),
            direction: Some("inbound".into()),
            agent: Some("101".into()),
            duration_secs: Some(1),
            talk_secs: Some(1),
            cause: Some("NORMAL_CLEARING".into()),
            recording: Some("r".into()),
        }),
        TicketEvent::CallbackDone(hotline_domain::event::CallbackDone { note: "n".into() }),
        TicketEvent::PersonalDataErased(hotline_domain::event::PersonalDataErased { reason: hotline_domain::event::ErasureReason::Request }),
    ]
}

fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc.find(&format!("## {heading}\n")).unwrap_or_else(|| panic!("docs/events.md has no `## {heading}`"));
    let rest = &doc[start + heading.len() + 4..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

fn keys(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
    if let serde_json::Value::Object(map) = value {
        for (k, v) in map {
            out.push(format!("{prefix}{k}"));
            keys(v, "", out);
        }
    }
}

#[test]
fn docs_events_md_names_every_event_type_and_field() {
    let doc = include_str!("../../../../docs/events.md");
    let events = every_event();
    assert_eq!(events.len(), TicketEvent::TYPES.len(), "every_event() covers every type");
    let actor = Actor { name: Some("n".into()), agency: Some("a".into()), ..Actor::system("t") };
    let meta = CommandMeta {
        actor,
        occurred_at: OffsetDateTime::UNIX_EPOCH,
        correlation_id: Uuid::nil(),
        causation_id: Some(Uuid::nil()),
    };
    for envelope in Envelope::seal(Uuid::nil(), 0, events, &meta, Uuid::nil) {
        let stored = serde_json::to_value(envelope.to_stored().expect("stored")).expect("json");
        let mut envelope_keys = Vec::new();
        for (k, v) in stored.as_object().expect("object") {
            if k != "data" {
                envelope_keys.push(k.clone());
                keys(v, "", &mut envelope_keys);
            }
        }
        let envelope_doc = section(doc, "Envelope");
        for k in envelope_keys {
            assert!(envelope_doc.contains(&format!("`{k}`")), "docs/events.md Envelope does not name `{k}`");
        }
        let event_doc = section(doc, envelope.event_type());
        let mut fields = Vec::new();
        keys(&stored["data"], "", &mut fields);
        for f in fields {
            assert!(event_doc.contains(&format!("`{f}`")), "docs/events.md {} does not name `{f}`", envelope.event_type());
        }
    }
}
