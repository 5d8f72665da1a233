//! The deadline scheduler: stores `DeadlineApproaching` and `DeadlineMissed` when their time comes.
//!
//! It keeps no state of its own. The projection says which tickets have an alarm due (`next_alarm`, folded from
//! the events with the domain's own deadline code); for each, the scheduler loads the ticket from the log and lets
//! the domain decide what is due at `now` and not fired yet. The fired alarms are events of the ticket, so a
//! restart, a second scheduler, or a projection that lags never fires an alarm twice: the append states the
//! version it decided on, and a ticket that already holds the alarm decides nothing.

pub mod duplicates;

use std::sync::Arc;
use std::time::Duration;

use hotline_domain::{Actor, Command, CommandMeta, Envelope, Ticket};
use hotline_projections::TimelineReader;
use hotline_runtime::Shutdown;
use hotline_store::{AppendError, EventStore, StoreError};
use time::OffsetDateTime;
use uuid::Uuid;

/// Tickets looked at per tick, at most; the rest wait for the next tick.
const BATCH: u32 = 500;

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Projection(#[from] hotline_projections::ProjectionError),
}

/// Fires deadline alarms and closes answered tickets after the citizen's silence. Cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    store: Arc<dyn EventStore>,
    reader: TimelineReader,
    /// Close an answered ticket after this many days without feedback; None never does.
    close_after_days: Option<u32>,
}

impl Scheduler {
    pub fn new(store: Arc<dyn EventStore>, reader: TimelineReader) -> Scheduler {
        Scheduler { store, reader, close_after_days: None }
    }

    /// Closes answered tickets after `days` days without the citizen's feedback.
    pub fn closing_after(mut self, days: u32) -> Scheduler {
        self.close_after_days = Some(days);
        self
    }

    /// Looks at the clock every `interval` until `shutdown`.
    pub async fn run(self, interval: Duration, mut shutdown: Shutdown) {
        tracing::info!(interval_secs = interval.as_secs(), "deadline scheduler started");
        loop {
            match self.tick(OffsetDateTime::now_utc()).await {
                Ok(0) => {}
                Ok(fired) => tracing::info!(fired, "deadline alarms stored"),
                Err(e) => tracing::warn!(error = %e, "deadline scheduler tick failed; trying again next tick"),
            }
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = tokio::time::sleep(interval) => {}
            }
        }
        tracing::info!("deadline scheduler stopped");
    }

    /// Stores every alarm due at `now`, and closes what stayed answered too long; returns how many events it
    /// stored.
    pub async fn tick(&self, now: OffsetDateTime) -> Result<usize, SchedulerError> {
        let mut fired = 0;
        for ticket in self.reader.due_alarms(now, BATCH).await? {
            fired += self.decide(ticket, now, Command::CheckDeadlines { now }).await?;
        }
        if let Some(days) = self.close_after_days {
            let answered_before = now - time::Duration::days(i64::from(days));
            for ticket in self.reader.answered_before(answered_before, BATCH).await? {
                fired += self.decide(ticket, now, Command::CloseSilent { answered_before, days }).await?;
            }
        }
        Ok(fired)
    }

    /// Decides `command` on the ticket's history and appends the result with the version it was decided on.
    async fn decide(&self, ticket: Uuid, now: OffsetDateTime, command: Command) -> Result<usize, SchedulerError> {
        let history = self.store.load(ticket).await?;
        let state = Ticket::from_history(&history.events);
        let events = match state.decide(command) {
            Ok(events) if events.is_empty() => return Ok(0),
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(%ticket, error = %e, "scheduled command refused");
                return Ok(0);
            }
        };
        let meta = CommandMeta {
            actor: Actor::system("scheduler"),
            occurred_at: now,
            correlation_id: history.events.first().map_or(ticket, |e| e.correlation_id),
            causation_id: None,
        };
        let envelopes = Envelope::seal(ticket, state.seq, events, &meta, Uuid::now_v7);
        match self.store.append(ticket, history.version, &envelopes).await {
            Ok(_) => Ok(envelopes.len()),
            // Someone acted on the ticket meanwhile: look again next tick, on the new state.
            Err(AppendError::Conflict { .. }) => Ok(0),
            Err(AppendError::Store(e)) => Err(e.into()),
        }
    }
}
