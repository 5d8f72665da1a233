//! The JetStream event store against a real nats-server (started per test on a free port, temp store).

mod store;
mod feed;
mod access;
mod audit;

use hotline_domain::event::{PetitionReceived, PetitionRouted};
use hotline_domain::{Actor, CommandMeta, Envelope, Reference, TicketEvent};
use time::OffsetDateTime;
use uuid::Uuid;

/// A petition for `ticket` with `text` (no citizen, no key).
pub(crate) fn received(ticket: Uuid, text: &str) -> TicketEvent {
    TicketEvent::PetitionReceived(PetitionReceived {
        citizen_key: None,
        reference: Reference::derive(ticket, 0),
        channel: "app".to_owned(),
        channel_ref: None,
        text: text.to_owned(),
        subject: None,
        category: None,
        citizen: None,
        location: None,
        attachments: vec![],
    })
}

pub(crate) fn routed(agency: &str) -> TicketEvent {
    TicketEvent::PetitionRouted(PetitionRouted { agency: agency.to_owned(), area: None, emergency: false, acknowledge_by: None, resolve_by: None })
}

pub(crate) fn commit(ticket: Uuid, last_seq: u64, events: Vec<TicketEvent>) -> Vec<Envelope> {
    let meta = CommandMeta {
        actor: Actor::system("test"),
        occurred_at: OffsetDateTime::now_utc(),
        correlation_id: ticket,
        causation_id: None,
    };
    Envelope::seal(ticket, last_seq, events, &meta, Uuid::now_v7)
}
