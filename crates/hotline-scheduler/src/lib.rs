//! The deadline scheduler: stores `DeadlineApproaching` and `DeadlineMissed` when their time comes.
//!
//! It keeps no state of its own. The projection says which tickets have an alarm due (`next_alarm`, folded from
//! the events with the domain's own deadline code); for each, the scheduler loads the ticket from the log and lets
//! the domain decide what is due at `now` and not fired yet. The fired alarms are events of the ticket, so a
//! restart, a second scheduler, or a projection that lags never fires an alarm twice: the append states the
//! version it decided on, and a ticket that already holds the alarm decides nothing.
//!
//! It also writes the audit checkpoints (`hotline_store::audit`) at their own pace; two schedulers cannot write
//! two checkpoints over the same range, since each states the last checkpoint it saw.

pub mod duplicates;

use std::sync::Arc;
use std::time::Duration;

use hotline_domain::{Actor, Command};
use hotline_projections::TimelineReader;
use hotline_runtime::Shutdown;
use hotline_store::{Cause, EventStore, ExecuteError, OnConflict, StoreError};
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
    /// Write an audit checkpoint this often; None never does.
    checkpoint_every: Option<Duration>,
}

impl Scheduler {
    pub fn new(store: Arc<dyn EventStore>, reader: TimelineReader) -> Scheduler {
        Scheduler { store, reader, close_after_days: None, checkpoint_every: None }
    }

    /// Closes answered tickets after `days` days without the citizen's feedback.
    pub fn closing_after(mut self, days: u32) -> Scheduler {
        self.close_after_days = Some(days);
        self
    }

    /// Writes an audit checkpoint every `every` (zero: never).
    pub fn checkpointing_every(mut self, every: Duration) -> Scheduler {
        self.checkpoint_every = (!every.is_zero()).then_some(every);
        self
    }

    /// Looks at the clock every `interval` until `shutdown`.
    pub async fn run(self, interval: Duration, mut shutdown: Shutdown) {
        tracing::info!(interval_secs = interval.as_secs(), "deadline scheduler started");
        let mut checkpointed: Option<std::time::Instant> = None;
        loop {
            match self.tick(OffsetDateTime::now_utc()).await {
                Ok(0) => {}
                Ok(fired) => tracing::info!(fired, "deadline alarms stored"),
                Err(e) => tracing::warn!(error = %e, "deadline scheduler tick failed; trying again next tick"),
            }
            if let Some(every) = self.checkpoint_every
                && checkpointed.is_none_or(|at| at.elapsed() >= every)
            {
                match self.store.checkpoint().await {
                    Ok(Some(c)) => {
                        checkpointed = Some(std::time::Instant::now());
                        tracing::info!(from = c.from, to = c.to, events = c.events, root = %c.root, "audit checkpoint stored");
                    }
                    Ok(None) => checkpointed = Some(std::time::Instant::now()),
                    Err(e) => tracing::warn!(error = %e, "audit checkpoint failed; trying again next tick"),
                }
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

    /// Runs `command` on the ticket; a conflict leaves it for the next tick, on the new state.
    async fn decide(&self, ticket: Uuid, now: OffsetDateTime, command: Command) -> Result<usize, SchedulerError> {
        let executed = hotline_store::execute(
            self.store.as_ref(),
            ticket,
            &Actor::system("scheduler"),
            now,
            Cause::None,
            OnConflict::GiveUp,
            |_, _| Ok::<_, std::convert::Infallible>(command.clone()),
        )
        .await;
        match executed {
            Ok(executed) => Ok(executed.events.len()),
            Err(ExecuteError::Conflict) => Ok(0),
            Err(ExecuteError::Domain(e)) => {
                tracing::warn!(%ticket, error = %e, "scheduled command refused");
                Ok(0)
            }
            Err(ExecuteError::Store(e)) => Err(e.into()),
            Err(ExecuteError::Command(never)) => match never {},
        }
    }
}
