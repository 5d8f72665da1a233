//! Intake: one inbound petition becomes one stored ticket, exactly once.
//!
//! A retry never opens a second ticket, whatever the delay: when the channel gives its own id for the message
//! (an `Idempotency-Key`, an SMS message id, a Message-ID), the ticket id is derived from it (UUIDv5), so the
//! retry lands on the same ticket subject, finds it already received, and gets the same ticket back. The log is
//! the idempotency record: no time window applies.

use std::sync::Arc;
use std::time::Duration;

use hotline_domain::province::Province;
use hotline_domain::ticket::NewPetition;
use hotline_domain::event::PetitionReceived;
use hotline_domain::{Actor, Command, CommandMeta, DomainError, Envelope, Reference, Ticket, TicketEvent};
use hotline_store::{AppendError, Claim, EventStore, StoreError};
use time::OffsetDateTime;
use tokio::time::{Instant, timeout_at};
use uuid::Uuid;

/// Namespace of ticket ids derived from a channel's message id.
const TICKET_NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_0a4e_9d2b_4c1e_8f3a_1022_0000_0001);
/// Reference attempts before giving up (a clash is ~1 in 10^10 per attempt).
const REFERENCE_ATTEMPTS: u32 = 16;

/// How long one intake may take, end to end, unless set with [`Intake::with_deadline`].
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

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
    /// The same channel id was used before for a different petition. (The other ticket is not named: it may
    /// be another citizen's.)
    #[error("this idempotency key was already used for a different petition; use a new key for a new petition")]
    KeyReused,
    /// Nothing was stored; try again.
    #[error("the petition could not be stored now: {0}")]
    Unavailable(String),
    /// The petition was sent to the log but not confirmed in time: it may be stored. A retry with the same
    /// channel id (Idempotency-Key) finds it without creating a second ticket.
    #[error("the petition was not confirmed in time and may have been stored: {0}")]
    OutcomeUnknown(String),
}

/// Turns inbound petitions into tickets. Cheap to clone.
#[derive(Clone)]
pub struct Intake {
    store: Arc<dyn EventStore>,
    province: Arc<Province>,
    /// The whole intake (reference claim and append) finishes within this, or answers.
    deadline: Duration,
}

impl Intake {
    pub fn new(store: Arc<dyn EventStore>, province: Arc<Province>) -> Intake {
        Intake { store, province, deadline: DEFAULT_DEADLINE }
    }

    /// Sets how long one intake may take before it answers "unavailable" or "outcome unknown".
    pub fn with_deadline(mut self, deadline: Duration) -> Intake {
        self.deadline = deadline;
        self
    }

    /// The id of the ticket a channel message opens: derived from the channel's id for it, so a retry finds it.
    pub fn ticket_id_for(&self, channel: &str, channel_ref: &str) -> Uuid {
        Uuid::new_v5(&TICKET_NAMESPACE, format!("{channel}\n{channel_ref}").as_bytes())
    }

    pub(crate) fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The event store intake writes to (for a channel's [`crate::ChannelState`]).
    pub fn event_store(&self) -> Arc<dyn EventStore> {
        self.store.clone()
    }

    pub(crate) fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The province configuration intake validates against (a channel turns coordinates into an area with it).
    pub fn province(&self) -> &Arc<Province> {
        &self.province
    }

    /// Validates and stores a petition. Returns `Ok` only once `PetitionReceived` is stored; `Unavailable`
    /// only when nothing of the petition was stored; `OutcomeUnknown` when the append was sent but not
    /// confirmed within the deadline.
    pub async fn submit(&self, petition: NewPetition) -> Result<Accepted, IntakeError> {
        self.validate(&petition)?;
        if !self.store.is_connected() {
            return Err(IntakeError::Unavailable("not connected to the event log".to_owned()));
        }
        let deadline = Instant::now() + self.deadline;
        let ticket_id = match &petition.channel_ref {
            Some(key) => self.ticket_id_for(&petition.channel, key),
            None => Uuid::now_v7(),
        };
        // A claim that times out may still land later: an unused reservation, never a petition.
        let reference = timeout_at(deadline, self.claim_reference(ticket_id))
            .await
            .map_err(|_| IntakeError::Unavailable(format!("no reference confirmed within {:?}", self.deadline)))??;
        // The citizen's key (docs/privacy.md); a petition without contact details gets one of its own, found again
        // by a retry of the same petition (same ticket id).
        let mut petition = petition;
        let identity = crate::inbound::citizen_identity(&petition.channel, petition.citizen.as_ref()).unwrap_or_else(|| format!("ticket:{ticket_id}"));
        let key = timeout_at(deadline, self.store.citizen_key(Some(&identity)))
            .await
            .map_err(|_| IntakeError::Unavailable(format!("no citizen key within {:?}", self.deadline)))?
            .map_err(unavailable)?;
        petition.citizen_key = Some(key);
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
        let unknown = || IntakeError::OutcomeUnknown(format!("no confirmation within {:?}", self.deadline));
        match timeout_at(deadline, self.store.append(ticket_id, 0, &envelopes)).await {
            Err(_) => Err(unknown()),
            Ok(Ok(appended)) => Ok(Accepted { ticket_id, reference, duplicate: appended.already_stored }),
            Ok(Err(AppendError::Conflict { .. })) => {
                timeout_at(deadline, self.existing(ticket_id, &events)).await.map_err(|_| unknown())?
            }
            Ok(Err(AppendError::Store(StoreError::OutcomeUnknown(e)))) => Err(IntakeError::OutcomeUnknown(e)),
            Ok(Err(AppendError::Store(e))) => Err(unavailable(e)),
        }
    }

    /// The ticket is already there: a retry of the same petition gets it back; any difference (text, contact,
    /// location...) means another petition under the same key, which is refused rather than merged or dropped.
    async fn existing(&self, ticket_id: Uuid, wanted: &[TicketEvent]) -> Result<Accepted, IntakeError> {
        let history = self.store.load(ticket_id).await.map_err(unavailable)?;
        let stored = history.events.first().map(|e| &e.event);
        match (stored, wanted.first()) {
            (Some(TicketEvent::PetitionReceived(s)), Some(TicketEvent::PetitionReceived(w))) => {
                // The reference is the one thing a retry may legitimately differ in (it is derived again).
                let retried = PetitionReceived { reference: s.reference.clone(), ..w.clone() };
                if retried == *s {
                    Ok(Accepted { ticket_id, reference: s.reference.clone(), duplicate: true })
                } else {
                    Err(IntakeError::KeyReused)
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
        if p.text.trim().is_empty() {
            return Err(IntakeError::Invalid { code: "empty_text", message: "a petition needs some text".to_owned() });
        }
        let area = p.location.as_ref().and_then(|l| l.area.as_deref());
        validate_codes(&self.province, p.category.as_deref(), area)?;
        if let Some(location) = &p.location
            && (location.lat.is_some_and(|v| !(-90.0..=90.0).contains(&v))
                || location.lon.is_some_and(|v| !(-180.0..=180.0).contains(&v)))
            {
                return Err(IntakeError::Invalid {
                    code: "invalid_location",
                    message: "lat must be within -90..90 and lon within -180..180".to_owned(),
                });
            }
        Ok(())
    }
}

/// Checks that a category and an area a client named exist in the province configuration.
pub fn validate_codes(province: &Province, category: Option<&str>, area: Option<&str>) -> Result<(), IntakeError> {
    if let Some(category) = category
        && province.category(category).is_none() {
            let known: Vec<&str> = province.categories().iter().map(|c| c.code.as_str()).collect();
            return Err(IntakeError::Invalid {
                code: "unknown_category",
                message: format!("unknown category `{category}`; known: {}", known.join(", ")),
            });
        }
    if let Some(area) = area
        && province.area(area).is_none() {
            let known: Vec<&str> = province.areas().iter().map(|a| a.code.as_str()).collect();
            return Err(IntakeError::Invalid {
                code: "unknown_area",
                message: format!("unknown area `{area}`; known: {}", known.join(", ")),
            });
        }
    Ok(())
}

fn unavailable(e: StoreError) -> IntakeError {
    IntakeError::Unavailable(e.to_string())
}
