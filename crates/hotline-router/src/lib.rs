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
use hotline_domain::{Actor, Command, Envelope, Status, Ticket, TicketEvent};
use hotline_runtime::Shutdown;
use hotline_store::{Cause, Delivery, EventStore, ExecuteError, OnConflict, StoreError};
use time::OffsetDateTime;
use uuid::Uuid;

/// The durable consumer's name: its position survives restarts.
pub const CONSUMER: &str = "router";
/// Petitions routed at the same time (each is its own ticket, so they never contend).
const CONCURRENCY: usize = 32;

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
        // A new petition, or one an agency sent back: both need routing.
        let cause = delivery.commit.events.iter().find_map(|e| match &e.event {
            TicketEvent::PetitionReceived(_) | TicketEvent::PetitionTransferred(_) => Some(e.event_id),
            _ => None,
        });
        let Some(cause) = cause else {
            // Nothing to route.
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

    /// Routes one ticket if it is not routed yet (a new petition, or one an agency sent back).
    pub async fn route(&self, ticket: Uuid, cause: Option<Uuid>) -> Result<Outcome, RouteError> {
        let executed = hotline_store::execute(
            self.store.as_ref(),
            ticket,
            &Actor::system("router"),
            OffsetDateTime::now_utc(),
            Cause::EventOrFirst(cause),
            OnConflict::Decide,
            |state, history| match state.status {
                Status::None => Err(RouteError::NotVisibleYet(ticket)),
                Status::Received => self.classify(ticket, history).map(Command::Route),
                // Transferred: route it again. Anything else: the domain decides nothing (already routed).
                _ => Ok(Command::Route(self.reroute(state, history))),
            },
        )
        .await;
        let events = match executed {
            Ok(executed) => executed.events,
            Err(ExecuteError::Command(e)) => return Err(e),
            Err(ExecuteError::Domain(e)) => {
                tracing::error!(%ticket, error = %e, "domain refused routing");
                return Ok(Outcome::AlreadyDone);
            }
            Err(ExecuteError::Conflict) => return Err(RouteError::Contended(ticket)),
            Err(ExecuteError::Store(e)) => return Err(e.into()),
        };
        Ok(events
            .iter()
            .find_map(|e| match &e.event {
                TicketEvent::PetitionRouted(r) => Some(Outcome::Routed { agency: r.agency.clone(), emergency: r.emergency }),
                TicketEvent::PetitionNeedsTriage(_) => Some(Outcome::NeedsTriage),
                _ => None,
            })
            .unwrap_or(Outcome::AlreadyDone))
    }

    /// The first routing of a petition: the province's rules on its text, category and location.
    fn classify(&self, ticket: Uuid, history: &[Envelope]) -> Result<RouteCommand, RouteError> {
        let received = history
            .iter()
            .find_map(|e| match &e.event {
                TicketEvent::PetitionReceived(p) => Some(p),
                _ => None,
            })
            .ok_or(RouteError::NoPetition(ticket))?;
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
        Ok(RouteCommand {
            category: decision.category.clone(),
            agency: decision.agency.clone(),
            area: decision.area.clone(),
            emergency: decision.emergency,
            confidence: decision.confidence,
            source: source.to_owned(),
            matched: decision.matched.iter().map(|m| format!("{}:{} '{}'", kind_name(m.kind), m.code, m.phrase)).collect(),
            triage_reason: decision.triage_reason.clone(),
            triage_agency: self.province.triage_agency().code.clone(),
            // The agency's clock starts now, on the province calendar.
            deadlines: decision.category.as_deref().and_then(|c| self.province.deadlines(c, OffsetDateTime::now_utc())),
        })
    }
}

impl Router {
    /// Where a ticket an agency sent back goes: the agency it suggested, else the province rules' agency for its
    /// category and area, but never an agency that already sent it back; failing that, the hotline desk.
    fn reroute(&self, state: &Ticket, events: &[Envelope]) -> RouteCommand {
        let suggested = events.iter().rev().find_map(|e| match &e.event {
            TicketEvent::PetitionTransferred(t) => Some(t.suggested_agency.clone()),
            _ => None,
        });
        let fresh = |code: &str| !state.bounced_from.iter().any(|b| b == code) && self.province.agency(code).is_some();
        let by_rules = state
            .category
            .as_deref()
            .and_then(|c| self.province.agency_for(c, state.area.as_deref()))
            .map(|a| a.code.clone());
        let agency = suggested.flatten().filter(|a| fresh(a)).or(by_rules.filter(|a| fresh(a)));
        let triage_reason = agency.is_none().then(|| {
            format!("sent back by {}; no other competent agency found", state.bounced_from.join(", "))
        });
        RouteCommand {
            category: state.category.clone(),
            agency,
            area: state.area.clone(),
            emergency: state.emergency,
            confidence: 1.0,
            source: "transfer".to_owned(),
            matched: Vec::new(),
            triage_reason,
            triage_agency: self.province.triage_agency().code.clone(),
            deadlines: state.category.as_deref().and_then(|c| self.province.deadlines(c, OffsetDateTime::now_utc())),
        }
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
