//! Duplicates get the answer: when a ticket is answered, every ticket marked as its duplicate gets the same
//! answer (`PetitionAnswered` naming the original), which its own channel then delivers to its own citizen.
//!
//! A durable consumer of the log (`duplicate-answers`): it acknowledges a commit only after every waiting
//! duplicate holds the answer, and a duplicate that already has one decides nothing, so redeliveries and
//! restarts share nothing twice.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use hotline_domain::{Actor, Command, CommandMeta, Envelope, Ticket, TicketEvent};
use hotline_projections::TimelineReader;
use hotline_runtime::Shutdown;
use hotline_store::{AppendError, Delivery, EventStore};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::SchedulerError;

const CONSUMER: &str = "duplicate-answers";

/// Shares answers with duplicates until `shutdown`.
pub async fn run(store: Arc<dyn EventStore>, reader: TimelineReader, mut shutdown: Shutdown) {
    tracing::info!(consumer = CONSUMER, "duplicate answers started");
    while !shutdown.is_raised() {
        let deliveries = tokio::select! {
            _ = shutdown.wait() => break,
            d = store.durable(CONSUMER) => d,
        };
        let mut deliveries = match deliveries {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "duplicate answers cannot subscribe; retrying in 1 s");
                tokio::select! {
                    _ = shutdown.wait() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            let next = tokio::select! {
                _ = shutdown.wait() => break,
                n = deliveries.next() => n,
            };
            match next {
                Some(Ok(delivery)) => handle(store.as_ref(), &reader, delivery).await,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "duplicate answers subscription error; resubscribing");
                    break;
                }
                None => break,
            }
        }
    }
    tracing::info!("duplicate answers stopped");
}

async fn handle(store: &dyn EventStore, reader: &TimelineReader, delivery: Delivery) {
    let original = delivery.commit.ticket_id;
    // Answers given on the ticket itself, not ones it received as a duplicate.
    let answers: Vec<(String, String)> = delivery
        .commit
        .events
        .iter()
        .filter_map(|e| match &e.event {
            TicketEvent::PetitionAnswered(a) if a.via_ticket.is_none() => Some((a.text.clone(), a.agency.clone())),
            _ => None,
        })
        .collect();
    for (text, agency) in answers {
        if let Err(e) = share(store, reader, original, &text, &agency).await {
            tracing::warn!(%original, error = %e, "sharing the answer with duplicates failed; retrying");
            let _ = delivery.retry_later(Duration::from_secs(2)).await;
            return;
        }
    }
    let _ = delivery.ack().await;
}

async fn share(store: &dyn EventStore, reader: &TimelineReader, original: Uuid, text: &str, agency: &str) -> Result<(), SchedulerError> {
    for duplicate in reader.waiting_duplicates_of(original).await? {
        for _ in 0..5 {
            let history = store.load(duplicate).await?;
            let state = Ticket::from_history(&history.events);
            let command = Command::ShareAnswer { from_ticket: original, text: text.to_owned(), agency: agency.to_owned() };
            let events = match state.decide(command) {
                Ok(events) if !events.is_empty() => events,
                _ => break,
            };
            let meta = CommandMeta {
                actor: Actor::system("duplicates"),
                occurred_at: OffsetDateTime::now_utc(),
                correlation_id: history.events.first().map_or(duplicate, |e| e.correlation_id),
                causation_id: None,
            };
            let envelopes = Envelope::seal(duplicate, state.seq, events, &meta, Uuid::now_v7);
            match store.append(duplicate, history.version, &envelopes).await {
                Ok(_) => break,
                Err(AppendError::Conflict { .. }) => continue,
                Err(AppendError::Store(e)) => return Err(e.into()),
            }
        }
    }
    Ok(())
}
