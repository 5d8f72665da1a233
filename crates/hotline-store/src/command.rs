//! The one way to run a command on an existing ticket: load its history, let the domain decide, append the
//! events with the version they were decided on, and on a conflict do what the caller's [`OnConflict`] says.
//!
//! Every writer but intake (which creates tickets) goes through here, so the load/decide/append discipline, the
//! envelope metadata and the conflict handling are written once.

use hotline_domain::{Actor, Command, CommandMeta, DomainError, Envelope, Ticket};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{AppendError, EventStore, StoreError};

/// Decisions tried before a command that keeps losing races gives up.
const ATTEMPTS: u32 = 5;

/// What to do when someone else appended between loading and appending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Report it (a scheduler looks again on its next tick).
    GiveUp,
    /// Decide again on the new state (system processes whose commands are idempotent).
    Decide,
    /// Decide again only if the events that won the race came from the system or a channel; a person's event
    /// means the caller must look at the ticket again (409).
    DecideUnlessPeopleActed,
}

/// What caused the command, for the events' `causation_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A request, not an event.
    None,
    Event(Uuid),
    /// The event that caused it, else the ticket's first event (what a system process answers when it was not
    /// told what triggered it).
    EventOrFirst(Option<Uuid>),
}

/// A command that ran: the state it was decided on, the events stored (none when the command was already
/// fulfilled), and the state after them.
#[derive(Debug, Clone)]
pub struct Executed {
    pub before: Ticket,
    pub events: Vec<Envelope>,
    pub after: Ticket,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecuteError<E> {
    /// The caller's command builder refused (bad input, nothing to do).
    #[error(transparent)]
    Command(E),
    /// The domain refused the command.
    #[error(transparent)]
    Domain(DomainError),
    /// Someone else changed the ticket (and the policy says not to decide again, or attempts ran out).
    #[error("the ticket changed meanwhile")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs `command` (built from the loaded state and history) on `ticket` as `actor` at `at`.
pub async fn execute<E>(
    store: &dyn EventStore,
    ticket: Uuid,
    actor: &Actor,
    at: OffsetDateTime,
    cause: Cause,
    on_conflict: OnConflict,
    mut command: impl FnMut(&Ticket, &[Envelope]) -> Result<Command, E>,
) -> Result<Executed, ExecuteError<E>> {
    for _ in 0..ATTEMPTS {
        let history = store.load(ticket).await?;
        let before = Ticket::from_history(&history.events);
        let command = command(&before, &history.events).map_err(ExecuteError::Command)?;
        let decided = before.decide(command).map_err(ExecuteError::Domain)?;
        if decided.is_empty() {
            return Ok(Executed { after: before.clone(), before, events: Vec::new() });
        }
        let meta = CommandMeta {
            actor: actor.clone(),
            occurred_at: at,
            correlation_id: history.events.first().map_or(ticket, |e| e.correlation_id),
            causation_id: match cause {
                Cause::None => None,
                Cause::Event(id) => Some(id),
                Cause::EventOrFirst(id) => id.or(history.events.first().map(|e| e.event_id)),
            },
        };
        let events = Envelope::seal(ticket, before.seq, decided, &meta, Uuid::now_v7);
        match store.append(ticket, history.version, &events).await {
            Ok(_) => {
                let mut after = before.clone();
                for e in &events {
                    after.apply(e);
                }
                return Ok(Executed { before, events, after });
            }
            Err(AppendError::Conflict { .. }) => match on_conflict {
                OnConflict::GiveUp => return Err(ExecuteError::Conflict),
                OnConflict::Decide => {}
                OnConflict::DecideUnlessPeopleActed => {
                    use hotline_domain::ActorKind;
                    let newer = store.load(ticket).await?;
                    let people = newer
                        .events
                        .iter()
                        .filter(|e| e.seq > before.seq)
                        .any(|e| !matches!(e.actor.kind, ActorKind::System | ActorKind::Channel));
                    if people {
                        return Err(ExecuteError::Conflict);
                    }
                }
            },
            Err(AppendError::Store(e)) => return Err(e.into()),
        }
    }
    Err(ExecuteError::Conflict)
}
