//! The router: a durable consumer of the log that assigns every received petition to an agency.
//!
//! For each `PetitionReceived` it loads the ticket, asks the province rules ([`Province::route`]) for a
//! category, area and agency, and stores `PetitionCategorized` + `PetitionRouted` (one commit), or
//! `PetitionNeedsTriage`. The delivery is acknowledged only after that commit is stored; a redelivery finds the
//! ticket already routed and stores nothing, so no petition is ever routed twice.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use hotline_domain::classify::{MatchKind, RouteRequest};
use hotline_domain::province::Province;
use hotline_domain::ticket::RouteCommand;
use hotline_domain::{Actor, Command, CommandMeta, Envelope, Status, Ticket, TicketEvent};
use hotline_runtime::Shutdown;
use hotline_store::{AppendError, Delivery, EventStore, StoreError};
use time::OffsetDateTime;
use uuid::Uuid;

/// The durable consumer's name: its position survives restarts.
pub const CONSUMER: &str = "router";
/// Petitions routed at the same time (each is its own ticket, so they never contend).
const CONCURRENCY: usize = 32;
/// Conflicting appends tolerated before a delivery is handed back for later.
const CONFLICT_RETRIES: u32 = 5;

/// What routing one ticket did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Routed { agency: String, emergency: bool },
    NeedsTriage,
    /// The ticket was routed before (a redelivery): nothing stored.
    AlreadyDone,
}

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("ticket {0} kept changing while it was being routed")]
    Contended(Uuid),
    #[error("ticket {0} has no PetitionReceived")]
    NoPetition(Uuid),
    /// The log delivered the ticket's petition but reading the ticket found nothing: a replica that lags the
    /// stream leader (direct gets may be served by any replica). Try again later; never acknowledge it as done.
    #[error("ticket {0} is not readable yet")]
    NotVisibleYet(Uuid),
}

/// Routes tickets. Cheap to clone.
#[derive(Clone)]
pub struct Router {
    store: Arc<dyn EventStore>,
    province: Arc<Province>,
}

impl Router {
    pub fn new(store: Arc<dyn EventStore>, province: Arc<Province>) -> Router {
        Router { store, province }
    }

    /// Consumes the log until `shutdown`; re-subscribes when the log goes away and comes back.
    pub async fn run(self, mut shutdown: Shutdown) {
        tracing::info!(consumer = CONSUMER, "router started");
        while !shutdown.is_raised() {
            let deliveries = tokio::select! {
                _ = shutdown.wait() => break,
                d = self.store.durable(CONSUMER) => d,
            };
            let deliveries = match deliveries {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "router cannot subscribe; retrying in 1 s");
                    tokio::select! {
                        _ = shutdown.wait() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            // Stop taking new deliveries at shutdown; those in flight finish (or are redelivered later).
            let mut until_shutdown = shutdown.clone();
            let work = deliveries
                .take_until(async move { until_shutdown.wait().await })
                .for_each_concurrent(CONCURRENCY, |delivery| {
                    let router = self.clone();
                    async move {
                        match delivery {
                            Ok(delivery) => router.handle(delivery).await,
                            Err(e) => tracing::warn!(error = %e, "router subscription error"),
                        }
                    }
                });
            work.await;
            if !shutdown.is_raised() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        tracing::info!("router stopped");
    }

    async fn handle(&self, delivery: Delivery) {
        let received = delivery.commit.events.iter().find_map(|e| match &e.event {
            TicketEvent::PetitionReceived(_) => Some(e.event_id),
            _ => None,
        });
        let Some(cause) = received else {
            // Not a new petition: nothing to route.
            let _ = delivery.ack().await;
            return;
        };
        let ticket = delivery.commit.ticket_id;
        match self.route(ticket, Some(cause)).await {
            Ok(outcome) => {
                tracing::debug!(%ticket, ?outcome, "routed");
                if let Err(e) = delivery.ack().await {
                    // The ack is lost: the redelivery will find the ticket routed.
                    tracing::warn!(%ticket, error = %e, "ack failed");
                }
            }
            Err(e) => {
                tracing::warn!(%ticket, error = %e, "routing failed; will retry");
                let _ = delivery.retry_later(Duration::from_secs(1)).await;
            }
        }
    }

    /// Routes one ticket if it is not routed yet.
    pub async fn route(&self, ticket: Uuid, cause: Option<Uuid>) -> Result<Outcome, RouteError> {
        for _ in 0..CONFLICT_RETRIES {
            let history = self.store.load(ticket).await?;
            let state = Ticket::from_history(&history.events);
            match state.status {
                Status::Received => {}
                Status::Routed | Status::NeedsTriage => return Ok(Outcome::AlreadyDone),
                Status::None => return Err(RouteError::NotVisibleYet(ticket)),
            }
            let Some((received_env, received)) = history.events.iter().find_map(|e| match &e.event {
                TicketEvent::PetitionReceived(p) => Some((e, p)),
                _ => None,
            }) else {
                return Err(RouteError::NoPetition(ticket));
            };
            let text = match &received.subject {
                Some(subject) => format!("{subject}\n{}", received.text),
                None => received.text.clone(),
            };
            let decision = self.province.route(&RouteRequest {
                text: &text,
                category: received.category.as_deref(),
                area: received.location.as_ref().and_then(|l| l.area.as_deref()),
            });
            let source = if received.category.is_some() { "channel" } else { "classifier" };
            let command = RouteCommand {
                category: decision.category.clone(),
                agency: decision.agency.clone(),
                area: decision.area.clone(),
                emergency: decision.emergency,
                confidence: decision.confidence,
                source: source.to_owned(),
                matched: decision
                    .matched
                    .iter()
                    .map(|m| format!("{}:{} '{}'", kind_name(m.kind), m.code, m.phrase))
                    .collect(),
                triage_reason: decision.triage_reason.clone(),
                triage_agency: self.province.triage_agency().code.clone(),
            };
            let events = match state.decide(Command::Route(command)) {
                Ok(events) if events.is_empty() => return Ok(Outcome::AlreadyDone),
                Ok(events) => events,
                Err(e) => {
                    tracing::error!(%ticket, error = %e, "domain refused routing");
                    return Ok(Outcome::AlreadyDone);
                }
            };
            let meta = CommandMeta {
                actor: Actor::system("router"),
                occurred_at: OffsetDateTime::now_utc(),
                correlation_id: received_env.correlation_id,
                causation_id: cause.or(Some(received_env.event_id)),
            };
            let envelopes = Envelope::seal(ticket, state.seq, events, &meta, Uuid::now_v7);
            match self.store.append(ticket, history.version, &envelopes).await {
                Ok(_) => {
                    return Ok(match (decision.agency, decision.category) {
                        (Some(agency), Some(_)) => Outcome::Routed { agency, emergency: decision.emergency },
                        _ => Outcome::NeedsTriage,
                    });
                }
                Err(AppendError::Conflict { .. }) => continue,
                Err(AppendError::Store(e)) => return Err(e.into()),
            }
        }
        Err(RouteError::Contended(ticket))
    }
}

fn kind_name(kind: MatchKind) -> &'static str {
    match kind {
        MatchKind::Category => "category",
        MatchKind::Emergency => "emergency",
        MatchKind::Area => "area",
        MatchKind::Rule => "rule",
    }
}
