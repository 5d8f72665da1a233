//! Duplicates get the answer: every ticket marked as a duplicate gets the answer of the ticket it duplicates
//! (`PetitionAnswered` naming the original), which its own channel then delivers to its own citizen.
//!
//! Decided from the log alone. Marking D as a duplicate of O records `DuplicateLinked { D }` on O's history, and
//! both that link and O's answer are appended to O with its expected version, so they are ordered: either the
//! link comes first (and O's answer goes to every duplicate O's history lists), or the answer does (and the link
//! hands it over at once). A durable consumer does both and acknowledges only after; a ticket that already has
//! its answer decides nothing, so redeliveries and restarts share nothing twice.

use std::sync::Arc;
use std::time::Duration;

use hotline_domain::{Actor, Command, Status, Ticket, TicketEvent};
use hotline_runtime::Shutdown;
use hotline_store::{Cause, Delivery, EventStore, ExecuteError, OnConflict, StoreError};
use time::OffsetDateTime;
use uuid::Uuid;

const CONSUMER: &str = "duplicate-answers";

/// Shares answers with duplicates until `shutdown`.
pub async fn run(store: Arc<dyn EventStore>, shutdown: Shutdown) {
    hotline_store::consume(store.as_ref(), CONSUMER, shutdown, |delivery| handle(store.as_ref(), delivery)).await;
}

async fn handle(store: &dyn EventStore, delivery: Delivery) {
    let ticket = delivery.commit.ticket_id;
    for event in &delivery.commit.events {
        let outcome = match &event.event {
            // D was marked as a duplicate of O: link it on O, then hand over O's answer if there is one.
            TicketEvent::MarkedDuplicate(m) => link_and_share(store, m.of_ticket, ticket).await,
            // O answered (itself, not as someone's duplicate): its answer goes to every linked duplicate.
            TicketEvent::PetitionAnswered(a) if a.via_ticket.is_none() => share_with_all(store, ticket).await,
            _ => Ok(()),
        };
        if let Err(e) = outcome {
            tracing::warn!(%ticket, error = %e, "sharing an answer with duplicates failed; retrying");
            let _ = delivery.retry_later(Duration::from_secs(2)).await;
            return;
        }
    }
    let _ = delivery.ack().await;
}

async fn link_and_share(store: &dyn EventStore, original: Uuid, duplicate: Uuid) -> Result<(), StoreError> {
    decide(store, original, |_| Command::LinkDuplicate { duplicate }).await?;
    let state = Ticket::from_history(&store.load(original).await?.events);
    share(store, &state, original, duplicate).await
}

async fn share_with_all(store: &dyn EventStore, original: Uuid) -> Result<(), StoreError> {
    let state = Ticket::from_history(&store.load(original).await?.events);
    for duplicate in state.duplicates.clone() {
        share(store, &state, original, duplicate).await?;
    }
    Ok(())
}

async fn share(store: &dyn EventStore, original_state: &Ticket, original: Uuid, duplicate: Uuid) -> Result<(), StoreError> {
    let answered = matches!(original_state.status, Status::Answered | Status::Closed);
    let Some(answer) = original_state.last_answer.clone().filter(|_| answered) else { return Ok(()) };
    decide(store, duplicate, |_| Command::ShareAnswer { from_ticket: original, answer: answer.clone() }).await
}

/// Runs a command of the duplicates process on a ticket, deciding again on a conflict.
async fn decide(store: &dyn EventStore, ticket: Uuid, command: impl Fn(&Ticket) -> Command) -> Result<(), StoreError> {
    let executed = hotline_store::execute(
        store,
        ticket,
        &Actor::system("duplicates"),
        OffsetDateTime::now_utc(),
        Cause::None,
        OnConflict::Decide,
        |state, _| Ok::<_, std::convert::Infallible>(command(state)),
    )
    .await;
    match executed {
        // Refused or already done: nothing to share.
        Ok(_) | Err(ExecuteError::Domain(_)) => Ok(()),
        Err(ExecuteError::Conflict) => Err(StoreError::Unavailable(format!("ticket {ticket} kept changing"))),
        Err(ExecuteError::Store(e)) => Err(e),
        Err(ExecuteError::Command(never)) => match never {},
    }
}
