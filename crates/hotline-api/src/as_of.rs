//! Time travel: a ticket as it stood at an instant ("what did the operator see when they decided?"), folded from
//! its events with the domain's own [`Ticket::apply`], so it is exactly the state the decisions of the time used.

use hotline_domain::{Envelope, Ticket};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The state of a ticket at an instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateAt {
    /// `none` when the ticket did not exist yet.
    pub status: &'static str,
    pub category: Option<String>,
    pub agency: Option<String>,
    pub area: Option<String>,
    pub emergency: bool,
    /// The deadlines running then (RFC 3339).
    pub acknowledge_by: Option<String>,
    pub resolve_by: Option<String>,
}

/// The events of `history` (in seq order) that had happened at `as_of` (occurred_at <= as_of), and the ticket's
/// state folded from them.
pub fn state_at(history: &[Envelope], as_of: OffsetDateTime) -> (Vec<&Envelope>, StateAt) {
    let events: Vec<&Envelope> = history.iter().filter(|e| e.occurred_at <= as_of).collect();
    let ticket = Ticket::from_history(events.iter().copied());
    let format = |t: Option<OffsetDateTime>| t.and_then(|t| t.format(&Rfc3339).ok());
    let state = StateAt {
        status: ticket.status.as_str(),
        category: ticket.category,
        agency: ticket.agency,
        area: ticket.area,
        emergency: ticket.emergency,
        acknowledge_by: format(ticket.deadlines.acknowledge_by),
        resolve_by: format(ticket.deadlines.resolve_by),
    };
    (events, state)
}

/// Reads an `as_of` instant: RFC 3339 with an offset (`2026-11-28T09:30:00+07:00`, `...Z`).
pub fn parse_instant(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text.trim(), &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use hotline_domain::event::{PetitionCategorized, PetitionReceived, PetitionRouted};
    use hotline_domain::{Actor, CommandMeta, Reference, TicketEvent};
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;

    fn at(id: Uuid, seq: u64, when: OffsetDateTime, event: TicketEvent) -> Envelope {
        let meta = CommandMeta { actor: Actor::system("t"), occurred_at: when, correlation_id: id, causation_id: None };
        Envelope::seal(id, seq, vec![event], &meta, Uuid::now_v7).remove(0)
    }

    #[test]
    fn the_state_at_an_instant_folds_only_what_had_happened() {
        let id = Uuid::now_v7();
        let t0 = datetime!(2026-11-02 08:00 +07:00);
        let received = TicketEvent::PetitionReceived(PetitionReceived {
            citizen_key: None,
            reference: Reference::derive(id, 0),
            channel: "app".into(),
            channel_ref: None,
            text: "Ổ gà".into(),
            subject: None,
            category: None,
            citizen: None,
            location: None,
            attachments: vec![],
        });
        let categorized = TicketEvent::PetitionCategorized(PetitionCategorized {
            category: "traffic_infrastructure".into(),
            area: Some("thu_dau_mot".into()),
            emergency: false,
            confidence: 0.9,
            source: "rules".into(),
            matched: vec![],
        });
        let due = datetime!(2026-11-03 17:00 +07:00);
        let routed = TicketEvent::PetitionRouted(PetitionRouted { agency: "dot".into(), area: None, emergency: false, acknowledge_by: Some(due), resolve_by: None });
        let history = vec![
            at(id, 0, t0, received),
            at(id, 1, t0 + time::Duration::minutes(1), categorized),
            at(id, 2, t0 + time::Duration::minutes(2), routed),
        ];
        let (events, state) = state_at(&history, t0 - time::Duration::seconds(1));
        assert!(events.is_empty());
        assert_eq!(state.status, "none");
        let (events, state) = state_at(&history, t0 + time::Duration::seconds(90));
        assert_eq!(events.len(), 2);
        assert_eq!((state.status, state.category.as_deref(), state.agency.as_deref()), ("received", Some("traffic_infrastructure"), None));
        assert_eq!(state.area.as_deref(), Some("thu_dau_mot"));
        let (events, state) = state_at(&history, t0 + time::Duration::minutes(2));
        assert_eq!(events.len(), 3, "an event at exactly as_of counts");
        assert_eq!((state.status, state.agency.as_deref()), ("routed", Some("dot")));
        assert_eq!(state.acknowledge_by.as_deref().and_then(parse_instant), Some(due));
        assert_eq!(parse_instant("2026-11-02"), None, "a bare date is not an instant");
        assert_eq!(parse_instant("2026-11-02T08:00:00Z"), Some(datetime!(2026-11-02 08:00 UTC)));
    }
}
