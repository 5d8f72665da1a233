//! The ticket aggregate: its state, the commands it accepts, and the pure `decide` / `apply` pair.
//!
//! `decide(&ticket, command)` returns the new events or a business rejection; it never mutates. `apply` folds one
//! stored event into the state. Loading a ticket is `apply` over its history; handling a command is load, decide,
//! append with the expected version, and on a conflict, again.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::event::{
    Citizen, Envelope, Location, PetitionCategorized, PetitionNeedsTriage, PetitionReceived, PetitionRouted,
    TicketEvent,
};
use crate::reference::Reference;

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No events: the ticket does not exist.
    #[default]
    None,
    /// Received, not routed yet.
    Received,
    /// Assigned to an agency.
    Routed,
    /// Waiting for a person at the hotline desk.
    NeedsTriage,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::None => "none",
            Status::Received => "received",
            Status::Routed => "routed",
            Status::NeedsTriage => "needs_triage",
        }
    }
}

/// A ticket's current state, folded from its events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ticket {
    pub id: Option<Uuid>,
    /// Seq of the last applied event (0 = none).
    pub seq: u64,
    pub status: Status,
    pub reference: Option<Reference>,
    pub channel: Option<String>,
    pub channel_ref: Option<String>,
    pub category: Option<String>,
    pub area: Option<String>,
    pub agency: Option<String>,
    pub emergency: bool,
    pub received_at: Option<OffsetDateTime>,
    pub text: Option<String>,
}

/// What someone asks a ticket to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// A channel received a petition: open the ticket under `reference`.
    ReceivePetition { reference: Reference, petition: NewPetition },
    /// The router decided where the petition goes.
    Route(RouteCommand),
}

/// A petition as a channel hands it over (intake validates it against the province config).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewPetition {
    /// Channel name: `app`, `sms`, `email`, `zalo`, `phone`.
    pub channel: String,
    /// The channel's own id for this message; makes retries idempotent.
    pub channel_ref: Option<String>,
    pub text: String,
    pub subject: Option<String>,
    pub category: Option<String>,
    pub citizen: Option<Citizen>,
    pub location: Option<Location>,
}

/// The router's decision for a ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteCommand {
    /// None when no category matched well enough.
    pub category: Option<String>,
    /// None sends the ticket to triage.
    pub agency: Option<String>,
    pub area: Option<String>,
    pub emergency: bool,
    pub confidence: f64,
    /// `channel` or `classifier`.
    pub source: String,
    pub matched: Vec<String>,
    /// Why the router could not decide, when `agency` is None.
    pub triage_reason: Option<String>,
    /// Where triage happens (the hotline desk's agency code).
    pub triage_agency: String,
}

/// A business "no". Infrastructure failures are not domain errors; they live in the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("the ticket already exists")]
    AlreadyExists,
    #[error("the ticket does not exist")]
    NotFound,
    #[error("a petition needs some text")]
    EmptyText,
}

impl Ticket {
    /// Folds a whole history.
    pub fn from_history<'a>(events: impl IntoIterator<Item = &'a Envelope>) -> Ticket {
        let mut ticket = Ticket::default();
        for e in events {
            ticket.apply(e);
        }
        ticket
    }

    pub fn exists(&self) -> bool {
        self.status != Status::None
    }

    /// Decides what `command` means for this ticket: the events to store (possibly none, when the command is
    /// already fulfilled: a redelivered route request routes nothing twice), or a rejection.
    pub fn decide(&self, command: Command) -> Result<Vec<TicketEvent>, DomainError> {
        match command {
            Command::ReceivePetition { reference, petition: p } => {
                if self.exists() {
                    return Err(DomainError::AlreadyExists);
                }
                if p.text.trim().is_empty() {
                    return Err(DomainError::EmptyText);
                }
                Ok(vec![TicketEvent::PetitionReceived(PetitionReceived {
                    reference,
                    channel: p.channel,
                    channel_ref: p.channel_ref,
                    text: p.text,
                    subject: p.subject,
                    category: p.category,
                    citizen: p.citizen,
                    location: p.location,
                })])
            }
            Command::Route(r) => {
                match self.status {
                    Status::None => return Err(DomainError::NotFound),
                    // Routing happens once; later changes are explicit commands (recategorize, transfer).
                    Status::Routed | Status::NeedsTriage => return Ok(vec![]),
                    Status::Received => {}
                }
                match (r.category, r.agency) {
                    (Some(category), Some(agency)) => Ok(vec![
                        TicketEvent::PetitionCategorized(PetitionCategorized {
                            category,
                            area: r.area.clone(),
                            emergency: r.emergency,
                            confidence: r.confidence,
                            source: r.source,
                            matched: r.matched,
                        }),
                        TicketEvent::PetitionRouted(PetitionRouted {
                            agency,
                            area: r.area,
                            emergency: r.emergency,
                        }),
                    ]),
                    (category, _) => Ok(vec![TicketEvent::PetitionNeedsTriage(PetitionNeedsTriage {
                        agency: r.triage_agency,
                        reason: r
                            .triage_reason
                            .unwrap_or_else(|| "no agency matched the petition".to_owned()),
                        suggested_category: category,
                        area: r.area,
                    })]),
                }
            }
        }
    }

    /// Folds one event into the state. Never fails: the log is the truth, and an event that reached it is a fact.
    pub fn apply(&mut self, envelope: &Envelope) {
        self.id = Some(envelope.ticket_id);
        self.seq = envelope.seq;
        match &envelope.event {
            TicketEvent::PetitionReceived(e) => {
                self.status = Status::Received;
                self.reference = Some(e.reference.clone());
                self.channel = Some(e.channel.clone());
                self.channel_ref = e.channel_ref.clone();
                self.category = e.category.clone();
                self.area = e.location.as_ref().and_then(|l| l.area.clone());
                self.received_at = Some(envelope.occurred_at);
                self.text = Some(e.text.clone());
            }
            TicketEvent::PetitionCategorized(e) => {
                self.category = Some(e.category.clone());
                if e.area.is_some() {
                    self.area = e.area.clone();
                }
                self.emergency = e.emergency;
            }
            TicketEvent::PetitionRouted(e) => {
                self.status = Status::Routed;
                self.agency = Some(e.agency.clone());
                if e.area.is_some() {
                    self.area = e.area.clone();
                }
                self.emergency = e.emergency;
            }
            TicketEvent::PetitionNeedsTriage(e) => {
                self.status = Status::NeedsTriage;
                self.agency = Some(e.agency.clone());
                if e.area.is_some() {
                    self.area = e.area.clone();
                }
            }
        }
    }
}
