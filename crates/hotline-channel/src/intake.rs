//! Intake: one inbound petition becomes one stored ticket, exactly once.
//!
//! A retry never opens a second ticket, whatever the delay: when the channel gives its own id for the message
//! (an `Idempotency-Key`, an SMS message id, a Message-ID), the ticket id is derived from it (UUIDv5), so the
//! retry lands on the same ticket subject, finds it already received, and gets the same ticket back. The log is
//! the idempotency record: no time window applies.

use std::sync::Arc;

use hotline_domain::province::Province;
use hotline_domain::ticket::NewPetition;
use hotline_domain::{Actor, Command, CommandMeta, DomainError, Envelope, Reference, Ticket, TicketEvent};
use hotline_store::{AppendError, Claim, EventStore, StoreError};
use time::OffsetDateTime;
use uuid::Uuid;

/// Namespace of ticket ids derived from a channel's message id.
const TICKET_NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_0a4e_9d2b_4c1e_8f3a_1022_0000_0001);
/// Reference attempts before giving up (a clash is ~1 in 10^10 per attempt).
const REFERENCE_ATTEMPTS: u32 = 16;

/// A stored petition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub ticket_id: Uuid,
    pub reference: Reference,
    /// True when this was a retry of a petition already stored.
    pub duplicate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The petition itself is wrong; `code` is stable for clients.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// The same channel id was used before for a different petition.
    #[error("this idempotency key was already used for a different petition ({reference})")]
    KeyReused { reference: Reference },
    /// Nothing was stored; try again.
    #[error("the petition could not be stored now: {0}")]
    Unavailable(String),
}

/// Turns inbound petitions into tickets. Cheap to clone.
#[derive(Clone)]
pub struct Intake {
    store: Arc<dyn EventStore>,
    province: Arc<Province>,
}

impl Intake {
    pub fn new(store: Arc<dyn EventStore>, province: Arc<Province>) -> Intake {
        Intake { store, province }
    }

    pub fn province(&self) -> &Province {
        &self.province
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Validates and stores a petition. Returns only once `PetitionReceived` is stored.
    pub async fn submit(&self, petition: NewPetition) -> Result<Accepted, IntakeError> {
        self.validate(&petition)?;
        if !self.store.is_connected() {
            return Err(IntakeError::Unavailable("not connected to the event log".to_owned()));
        }
        let ticket_id = match &petition.channel_ref {
            Some(key) => Uuid::new_v5(&TICKET_NAMESPACE, format!("{}\n{}", petition.channel, key).as_bytes()),
            None => Uuid::now_v7(),
        };
        let reference = self.claim_reference(ticket_id).await?;
        let channel = petition.channel.clone();
        let command = Command::ReceivePetition { reference: reference.clone(), petition };
        let events = Ticket::default().decide(command).map_err(|e| match e {
            DomainError::EmptyText => IntakeError::Invalid { code: "empty_text", message: e.to_string() },
            other => IntakeError::Invalid { code: "invalid_petition", message: other.to_string() },
        })?;
        let meta = CommandMeta {
            actor: Actor::channel(&channel),
            occurred_at: OffsetDateTime::now_utc(),
            correlation_id: ticket_id,
            causation_id: None,
        };
        let envelopes = Envelope::seal(ticket_id, 0, events.clone(), &meta, Uuid::now_v7);
        match self.store.append(ticket_id, 0, &envelopes).await {
            Ok(appended) => Ok(Accepted { ticket_id, reference, duplicate: appended.already_stored }),
            Err(AppendError::Conflict { .. }) => self.existing(ticket_id, &events).await,
            Err(AppendError::Store(e)) => Err(unavailable(e)),
        }
    }

    /// The ticket is already there: a retry of the same petition gets it back; a different petition under the
    /// same key is refused.
    async fn existing(&self, ticket_id: Uuid, wanted: &[TicketEvent]) -> Result<Accepted, IntakeError> {
        let history = self.store.load(ticket_id).await.map_err(unavailable)?;
        let stored = history.events.first().map(|e| &e.event);
        match (stored, wanted.first()) {
            (Some(TicketEvent::PetitionReceived(s)), Some(TicketEvent::PetitionReceived(w))) => {
                if s.text == w.text && s.category == w.category && s.channel == w.channel {
                    Ok(Accepted { ticket_id, reference: s.reference.clone(), duplicate: true })
                } else {
                    Err(IntakeError::KeyReused { reference: s.reference.clone() })
                }
            }
            _ => Err(IntakeError::Unavailable(format!("ticket {ticket_id} exists but does not start with a petition"))),
        }
    }

    async fn claim_reference(&self, ticket_id: Uuid) -> Result<Reference, IntakeError> {
        for attempt in 0..REFERENCE_ATTEMPTS {
            let reference = Reference::derive(ticket_id, attempt);
            match self.store.claim_reference(&reference, ticket_id).await.map_err(unavailable)? {
                Claim::Granted => return Ok(reference),
                Claim::TakenBy(_) => continue,
            }
        }
        Err(IntakeError::Unavailable("no free reference found".to_owned()))
    }

    fn validate(&self, p: &NewPetition) -> Result<(), IntakeError> {
        let invalid = |code, message: String| Err(IntakeError::Invalid { code, message });
        if p.text.trim().is_empty() {
            return invalid("empty_text", "a petition needs some text".to_owned());
        }
        if let Some(category) = &p.category {
            if self.province.category(category).is_none() {
                let known: Vec<&str> = self.province.categories().iter().map(|c| c.code.as_str()).collect();
                return invalid("unknown_category", format!("unknown category `{category}`; known: {}", known.join(", ")));
            }
        }
        if let Some(location) = &p.location {
            if let Some(area) = &location.area {
                if self.province.area(area).is_none() {
                    let known: Vec<&str> = self.province.areas().iter().map(|a| a.code.as_str()).collect();
                    return invalid("unknown_area", format!("unknown area `{area}`; known: {}", known.join(", ")));
                }
            }
            if location.lat.is_some_and(|v| !(-90.0..=90.0).contains(&v))
                || location.lon.is_some_and(|v| !(-180.0..=180.0).contains(&v))
            {
                return invalid("invalid_location", "lat must be within -90..90 and lon within -180..180".to_owned());
            }
        }
        Ok(())
    }
}

fn unavailable(e: StoreError) -> IntakeError {
    IntakeError::Unavailable(e.to_string())
}
