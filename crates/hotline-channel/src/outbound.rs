//! Answers and questions go back to the citizen on the channel they used.
//!
//! Each channel runs a durable consumer of the log (`replies-<channel>`): for every `PetitionAnswered` or
//! `InformationRequested` on one of its tickets it hands the message to its adapter and stores `ReplySent`, or
//! `ReplyFailed` when the failure is permanent or the retries (with growing delays) are used up. Before sending,
//! it looks at the ticket: a reply that already has its `ReplySent`/`ReplyFailed` is not sent again, even after a
//! crash. The message's id is the answer's event id, so a channel whose vendor accepts an idempotency key can
//! close the last window (a crash between the vendor's accept and our record).

use std::sync::Arc;
use std::time::Duration;

use hotline_domain::event::ReplyKind;
use hotline_domain::{Actor, Command, Ticket, TicketEvent};
use hotline_runtime::Shutdown;
use hotline_store::{Cause, Delivery, EventStore, ExecuteError, OnConflict, StoreError};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{ChannelAdapter, DeliveryError, OutboundKind, OutboundMessage};

/// Deliveries tried before a reply counts as failed.
pub const MAX_ATTEMPTS: u32 = 8;

/// Runs the channel's outbound consumer until `shutdown`.
pub async fn run(adapter: Arc<dyn ChannelAdapter>, store: Arc<dyn EventStore>, shutdown: Shutdown) {
    let consumer = format!("replies-{}", adapter.name());
    hotline_store::consume(store.as_ref(), &consumer, shutdown, |delivery| handle(adapter.as_ref(), store.as_ref(), delivery)).await;
}

async fn handle(adapter: &dyn ChannelAdapter, store: &dyn EventStore, delivery: Delivery) {
    let replies: Vec<(Uuid, ReplyKind, String)> = delivery
        .commit
        .events
        .iter()
        .filter_map(|e| match &e.event {
            TicketEvent::PetitionAnswered(a) => Some((e.event_id, ReplyKind::Answer, a.text.clone())),
            TicketEvent::InformationRequested(q) => Some((e.event_id, ReplyKind::Question, q.question.clone())),
            _ => None,
        })
        .collect();
    if replies.is_empty() {
        let _ = delivery.ack().await;
        return;
    }
    let ticket = delivery.commit.ticket_id;
    for (of_event, kind, text) in replies {
        match deliver(adapter, store, ticket, of_event, kind, text, delivery.attempt).await {
            Ok(()) => {}
            Err(delay) => {
                let _ = delivery.retry_later(delay).await;
                return;
            }
        }
    }
    let _ = delivery.ack().await;
}

/// Delivers one reply unless it already was; `Err(delay)` asks for another try later.
async fn deliver(
    adapter: &dyn ChannelAdapter,
    store: &dyn EventStore,
    ticket: Uuid,
    of_event: Uuid,
    kind: ReplyKind,
    text: String,
    attempt: u32,
) -> Result<(), Duration> {
    let backoff = Duration::from_secs((1u64 << attempt.min(8)).min(300));
    let history = store.load(ticket).await.map_err(|_| backoff)?;
    let state = Ticket::from_history(&history.events);
    if state.channel.as_deref() != Some(adapter.name()) || state.replies_done.contains(&of_event) {
        return Ok(());
    }
    let Some(reference) = state.reference.clone() else { return Ok(()) };
    let petition = history.events.first().and_then(|e| match &e.event {
        TicketEvent::PetitionReceived(p) => Some(p),
        _ => None,
    });
    // The citizen's address on this channel: an e-mail channel writes to the e-mail address, the others to the
    // phone number (SMS, and later Zalo's own id).
    let to = petition.and_then(|p| p.citizen.as_ref()).and_then(|c| match adapter.name() {
        "email" => c.email.clone(),
        _ => c.phone.clone().or(c.email.clone()),
    });
    let message = OutboundMessage {
        id: of_event,
        ticket_id: ticket,
        reference,
        kind: match kind {
            ReplyKind::Answer => OutboundKind::Answer,
            ReplyKind::Question => OutboundKind::Question,
        },
        text,
        to,
        subject: petition.and_then(|p| p.subject.clone()),
        thread: state.channel_refs.clone(),
        earlier_replies: history
            .events
            .iter()
            .filter_map(|e| match &e.event {
                TicketEvent::ReplySent(r) => Some(r.of_event),
                _ => None,
            })
            .collect(),
    };
    let outcome = match adapter.deliver(&message).await {
        Ok(receipt) => Ok(receipt.channel_message_id),
        Err(DeliveryError::Permanent(reason)) => Err((reason, attempt)),
        Err(DeliveryError::Retryable(reason)) if attempt >= MAX_ATTEMPTS => Err((reason, attempt)),
        Err(DeliveryError::Retryable(reason)) => {
            tracing::warn!(%ticket, attempt, %reason, "reply not delivered yet; retrying");
            return Err(backoff);
        }
    };
    // The message is out (or given up): from here on, never hand the delivery back (that would send it again);
    // keep trying to record the outcome instead.
    let mut wait = Duration::from_millis(200);
    for _ in 0..20 {
        match record(store, ticket, of_event, kind, adapter.name(), outcome.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!(%ticket, error = %e, "delivered, but recording it failed; retrying the record");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
    tracing::error!(%ticket, %of_event, "delivered, but the delivery could not be recorded; it may be sent again");
    Err(backoff)
}

/// Stores the delivery's outcome on the ticket, deciding again on a conflict with other writers.
async fn record(
    store: &dyn EventStore,
    ticket: Uuid,
    of_event: Uuid,
    kind: ReplyKind,
    channel: &str,
    outcome: Result<Option<String>, (String, u32)>,
) -> Result<(), StoreError> {
    let executed = hotline_store::execute(
        store,
        ticket,
        &Actor::channel(channel),
        OffsetDateTime::now_utc(),
        Cause::Event(of_event),
        OnConflict::Decide,
        |_, _| {
            Ok::<_, std::convert::Infallible>(Command::RecordDelivery {
                of_event,
                kind,
                channel: channel.to_owned(),
                outcome: outcome.clone(),
            })
        },
    )
    .await;
    match executed {
        Ok(_) | Err(ExecuteError::Domain(_)) => Ok(()),
        Err(ExecuteError::Conflict) => {
            Err(StoreError::Unavailable(format!("ticket {ticket} kept changing while recording a delivery")))
        }
        Err(ExecuteError::Store(e)) => Err(e),
        Err(ExecuteError::Command(never)) => match never {},
    }
}
