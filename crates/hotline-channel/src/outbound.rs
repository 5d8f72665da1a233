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

use hotline_domain::event::{Citizen, NO_MOBILE_NUMBER, ReplyKind};
use hotline_domain::{Actor, Command, Ticket, TicketEvent};
use hotline_runtime::Shutdown;
use hotline_store::{Cause, Delivery, EventStore, ExecuteError, OnConflict, StoreError};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{ChannelAdapter, DeliveryError, OutboundKind, OutboundMessage, is_mobile};

/// Deliveries tried before a reply counts as failed.
pub const MAX_ATTEMPTS: u32 = 8;
/// How often a delivery in progress is reported to the log (well within the consumers' ack wait).
const PROGRESS_EVERY: Duration = Duration::from_secs(3);

/// Runs the channel's outbound consumer until `shutdown`.
pub async fn run(adapter: Arc<dyn ChannelAdapter>, store: Arc<dyn EventStore>, shutdown: Shutdown) {
    if !adapter.sends_replies() {
        return;
    }
    let consumer = format!("replies-{}", adapter.name());
    hotline_store::consume(store.as_ref(), &consumer, shutdown, |delivery| handle(adapter.as_ref(), store.as_ref(), delivery)).await;
}

async fn handle(adapter: &dyn ChannelAdapter, store: &dyn EventStore, delivery: Delivery) {
    // Replies stored in this commit, and replies another channel just gave up on that this one may take over.
    let fallback = adapter.fallback_for();
    let replies: Vec<Uuid> = delivery
        .commit
        .events
        .iter()
        .filter_map(|e| match &e.event {
            TicketEvent::PetitionAnswered(_) | TicketEvent::InformationRequested(_) => Some(e.event_id),
            TicketEvent::ReplyFailed(f) if fallback.contains(&f.channel.as_str()) => Some(f.of_event),
            _ => None,
        })
        .collect();
    if replies.is_empty() {
        let _ = delivery.ack().await;
        return;
    }
    let ticket = delivery.commit.ticket_id;
    for of_event in replies {
        // A send can take longer than the consumer's ack wait (a vendor's slow API, a token refresh, retries of
        // the record): keep telling the log we are on it, or it would hand the reply to another process, which
        // would find no ReplySent yet and send it again.
        let work = deliver(adapter, store, ticket, of_event, delivery.attempt);
        tokio::pin!(work);
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
        let outcome = loop {
            tokio::select! {
                outcome = &mut work => break outcome,
                _ = beat.tick() => {
                    let _ = delivery.in_progress().await;
                }
            }
        };
        match outcome {
            Ok(()) => {}
            Err(delay) => {
                let _ = delivery.retry_later(delay).await;
                return;
            }
        }
    }
    let _ = delivery.ack().await;
}

/// Delivers one reply unless it already was, or is not this channel's to deliver; `Err(delay)` asks for another
/// try later.
async fn deliver(adapter: &dyn ChannelAdapter, store: &dyn EventStore, ticket: Uuid, of_event: Uuid, attempt: u32) -> Result<(), Duration> {
    let backoff = Duration::from_secs((1u64 << attempt.min(8)).min(300));
    let history = store.load(ticket).await.map_err(|_| backoff)?;
    let state = Ticket::from_history(&history.events);
    let Some(channel) = state.channel.as_deref() else { return Ok(()) };
    // Ours: the ticket came in on this channel, or on one this channel answers for (SMS answers phone callers).
    // Or taken over: the ticket's own channel gave up on this reply, and this channel is its fallback.
    let mine = channel == adapter.name() || adapter.answers_for().contains(&channel);
    let taken_over = !mine
        && adapter.fallback_for().contains(&channel)
        && history.events.iter().any(|e| matches!(&e.event, TicketEvent::ReplyFailed(f) if f.of_event == of_event && f.channel == channel));
    if !(mine || taken_over) || state.reply_done(of_event, adapter.name()) {
        return Ok(());
    }
    let Some(reference) = state.reference.clone() else { return Ok(()) };
    let Some((kind, text)) = history.events.iter().find(|e| e.event_id == of_event).and_then(|e| match &e.event {
        TicketEvent::PetitionAnswered(a) => Some((ReplyKind::Answer, a.text.clone())),
        TicketEvent::InformationRequested(q) => Some((ReplyKind::Question, q.question.clone())),
        _ => None,
    }) else {
        return Ok(());
    };
    if state.erased {
        // Nowhere to send it: the citizen's contact details are gone (docs/privacy.md).
        if taken_over {
            return Ok(());
        }
        let reason = "the citizen's personal data is erased: there is no address to answer on".to_owned();
        return record_outcome(adapter, store, ticket, of_event, kind, Err((reason, attempt)), backoff).await;
    }
    let petition = history.events.first().and_then(|e| match &e.event {
        TicketEvent::PetitionReceived(p) => Some(p),
        _ => None,
    });
    let to = match recipient(adapter.name(), petition.and_then(|p| p.citizen.as_ref())) {
        Ok(to) => to,
        Err(reason) if taken_over => {
            // Nothing to fall back to: the first channel's failure stands for the operators.
            tracing::info!(%ticket, %of_event, channel = adapter.name(), reason = %crate::redact(&reason), "no fallback for a failed reply");
            return Ok(());
        }
        Err(reason) => return record_outcome(adapter, store, ticket, of_event, kind, Err((reason, attempt)), backoff).await,
    };
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
                TicketEvent::ReplySent(r) if r.channel == adapter.name() => Some(r.of_event),
                _ => None,
            })
            .collect(),
    };
    let outcome = match adapter.deliver(&message).await {
        Ok(receipt) => Ok(receipt.channel_message_id),
        Err(DeliveryError::Permanent(reason)) => Err((reason, attempt)),
        Err(DeliveryError::Retryable(reason)) if attempt >= MAX_ATTEMPTS => Err((reason, attempt)),
        Err(DeliveryError::Retryable(reason)) => {
            tracing::warn!(%ticket, attempt, reason = %crate::redact(&reason), "reply not delivered yet; retrying");
            return Err(backoff);
        }
    };
    record_outcome(adapter, store, ticket, of_event, kind, outcome, backoff).await
}

/// The citizen's address on `channel`, or why there is none. SMS goes only to mobile numbers: a landline caller
/// gets a call back from an operator instead (the failure says so, and the operators' queue shows it). The app
/// needs no address: the citizen reads the reply with their reference and access code.
fn recipient(channel: &str, citizen: Option<&Citizen>) -> Result<Option<String>, String> {
    let none = |what: &str| format!("no {what} to answer on the {channel} channel");
    let empty = Citizen::default();
    let c = citizen.unwrap_or(&empty);
    match channel {
        "email" => c.email.clone().map(Some).ok_or_else(|| none("e-mail address")),
        "zalo" => c.zalo_id.clone().map(Some).ok_or_else(|| none("Zalo id")),
        "sms" => match &c.phone {
            Some(phone) if is_mobile(phone) => Ok(Some(phone.clone())),
            Some(_) => Err(format!("{NO_MOBILE_NUMBER}: the citizen's number is not a mobile; call the citizen back")),
            None => Err(format!("{NO_MOBILE_NUMBER}: call the citizen back if they left a number")),
        },
        _ => Ok(c.phone.clone().or(c.email.clone())),
    }
}


/// Records what became of a reply. The message is out (or given up): from here on, never hand the delivery back
/// (that would send it again); keep trying to record the outcome instead.
async fn record_outcome(
    adapter: &dyn ChannelAdapter,
    store: &dyn EventStore,
    ticket: Uuid,
    of_event: Uuid,
    kind: ReplyKind,
    outcome: Result<Option<String>, (String, u32)>,
    backoff: Duration,
) -> Result<(), Duration> {
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
