//! Where call facts go: onto the call's ticket when its petition exists, else into the channel's durable state
//! (`ChannelContext::state`, key `call.<hex of the call id>`) until the call-taker files the petition.
//!
//! Nothing reported is lost and nothing is recorded twice:
//! - a fact for a call without a ticket is merged into the call's pending record with a compare-and-set write,
//!   then the ticket is looked at again: if the petition was filed meanwhile, the record is flushed at once (so
//!   a petition filed between the two looks cannot miss the fact);
//! - filing the petition flushes the record; a flush records every pending fact with `Command::RecordCall` (which
//!   skips keys the ticket holds) and then empties the record with a compare-and-set on the revision it read, so
//!   a fact added meanwhile makes it read and record again;
//! - a periodic [`CallLedger::sweep`] finishes flushes a crash cut short, deletes emptied records after an hour,
//!   and drops facts whose petition was never filed after `pending_days` (calls that were not petitions: wrong
//!   numbers, hang-ups, questions answered on the spot). Every removal is a delete conditional on the revision
//!   the sweep read, so a fact kept meanwhile (and answered "pending" to the PBX) is never removed with it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hotline_channel::{ChannelState, Intake, StateConflict};
use hotline_domain::event::CallLogged;
use hotline_domain::{Actor, Command};
use hotline_store::{Cause, EventStore, ExecuteError, OnConflict, StoreError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::CHANNEL;

/// Most distinct facts kept for one call without a petition (a call has a handful; more is a misbehaving PBX).
pub const MAX_PENDING_FACTS: usize = 64;
/// Emptied records are deleted this long after their last write.
const EMPTIED_KEPT: Duration = Duration::from_secs(3600);
/// Compare-and-set rounds before giving up on a busy record.
const CAS_ATTEMPTS: u32 = 16;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The domain refused the facts (a fact that does not belong on the ticket).
    #[error("{0}")]
    Refused(String),
    #[error("call `{0}` already has {MAX_PENDING_FACTS} facts waiting for its petition")]
    TooMany(String),
    #[error("the pending record of call `{0}` kept changing; try again")]
    Busy(String),
}

/// What a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The facts are on the ticket (some may have been there already).
    Recorded,
    /// The call has no petition yet: the facts wait in the channel's state.
    Pending,
}

/// The pending record of one call, as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PendingCall {
    pub call_id: String,
    /// Unix seconds of the first fact kept.
    pub first_seen: i64,
    /// Unix seconds of the last write.
    pub updated: i64,
    /// Facts not yet on a ticket; empty once flushed.
    pub facts: Vec<CallLogged>,
}

/// What a sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Calls whose facts went onto their (now filed) ticket.
    pub flushed: usize,
    /// Calls dropped because their petition never came.
    pub expired: usize,
    /// Emptied records removed.
    pub removed: usize,
}

/// Records call facts on tickets, keeping them until the petition exists. Cheap to clone.
#[derive(Clone)]
pub struct CallLedger {
    intake: Intake,
    store: Arc<dyn EventStore>,
    state: ChannelState,
    pending_ttl: Duration,
}

impl CallLedger {
    pub fn new(intake: Intake, state: ChannelState, pending_ttl: Duration) -> CallLedger {
        CallLedger { store: intake.event_store(), intake, state, pending_ttl }
    }

    /// The ticket a call's petition opens (or will open).
    pub fn ticket_of(&self, call_id: &str) -> Uuid {
        self.intake.ticket_id_for(CHANNEL, call_id)
    }

    /// Reports facts (of one or more calls). `Ok` once each is on its ticket or durably pending.
    pub async fn report(&self, facts: Vec<CallLogged>) -> Result<Outcome, LedgerError> {
        let mut calls: Vec<(String, Vec<CallLogged>)> = Vec::new();
        for fact in facts {
            match calls.iter_mut().find(|(id, _)| *id == fact.call_id) {
                Some((_, list)) => list.push(fact),
                None => calls.push((fact.call_id.clone(), vec![fact])),
            }
        }
        let mut outcome = Outcome::Recorded;
        for (call_id, facts) in calls {
            if self.report_call(&call_id, facts).await? == Outcome::Pending {
                outcome = Outcome::Pending;
            }
        }
        Ok(outcome)
    }

    async fn report_call(&self, call_id: &str, facts: Vec<CallLogged>) -> Result<Outcome, LedgerError> {
        let ticket = self.ticket_of(call_id);
        if self.exists(ticket).await? {
            self.record(ticket, facts).await?;
            // A record left by a flush a crash cut short.
            self.flush(call_id).await?;
            return Ok(Outcome::Recorded);
        }
        self.keep(call_id, facts.clone()).await?;
        // The petition may have been filed between the first look and the write, and its flush may have missed
        // what was just written: record these facts here (whatever became of the record meanwhile), then flush.
        if self.exists(ticket).await? {
            self.record(ticket, facts).await?;
            self.flush(call_id).await?;
            return Ok(Outcome::Recorded);
        }
        Ok(Outcome::Pending)
    }

    /// Records the pending facts of `call_id` on its ticket, which must exist, and empties the record. Returns
    /// how many facts were pending.
    pub async fn flush(&self, call_id: &str) -> Result<usize, LedgerError> {
        let key = state_key(call_id);
        let ticket = self.ticket_of(call_id);
        for _ in 0..CAS_ATTEMPTS {
            let Some((bytes, revision)) = self.state.get(&key).await? else { return Ok(0) };
            let Some(mut pending) = decode(&bytes) else {
                tracing::warn!(key, "unreadable pending call record: removing it");
                self.remove_if_unchanged(&key, revision).await?;
                return Ok(0);
            };
            if pending.facts.is_empty() {
                return Ok(0);
            }
            let count = pending.facts.len();
            self.record(ticket, std::mem::take(&mut pending.facts)).await?;
            pending.updated = OffsetDateTime::now_utc().unix_timestamp();
            match self.state.put(&key, &encode(&pending), Some(revision)).await? {
                Ok(_) => return Ok(count),
                Err(StateConflict) => continue,
            }
        }
        Err(LedgerError::Busy(call_id.to_owned()))
    }

    /// Looks at every pending call: flushes those whose petition now exists, drops facts older than the pending
    /// time-to-live, removes emptied records after an hour.
    pub async fn sweep(&self, now: OffsetDateTime) -> Result<Swept, LedgerError> {
        let mut swept = Swept::default();
        for key in self.state.keys("call.").await? {
            // A key removed in the last minute may still be listed: nothing to read then.
            let Some((bytes, revision)) = self.state.get(&key).await? else { continue };
            let Some(pending) = decode(&bytes) else {
                tracing::warn!(key, "unreadable pending call record: removing it");
                self.remove_if_unchanged(&key, revision).await?;
                continue;
            };
            let age = |since: i64| Duration::from_secs(now.unix_timestamp().saturating_sub(since).max(0) as u64);
            if pending.facts.is_empty() {
                if age(pending.updated) >= EMPTIED_KEPT && self.remove_if_unchanged(&key, revision).await? {
                    swept.removed += 1;
                }
                continue;
            }
            if self.exists(self.ticket_of(&pending.call_id)).await? {
                self.flush(&pending.call_id).await?;
                swept.flushed += 1;
            } else if age(pending.first_seen) >= self.pending_ttl && self.remove_if_unchanged(&key, revision).await? {
                tracing::info!(facts = pending.facts.len(), "dropped the facts of a call that never became a petition");
                swept.expired += 1;
            }
        }
        Ok(swept)
    }

    /// Deletes a record only at the revision it was read at (one conditional delete, no window between a check
    /// and the removal): a fact kept meanwhile moved the record on, so the delete is refused and the fact stays
    /// for the next sweep to look at.
    async fn remove_if_unchanged(&self, key: &str, revision: u64) -> Result<bool, LedgerError> {
        Ok(self.state.delete_if(key, revision).await?.is_ok())
    }

    /// The pending facts of a call, if any (for tests and diagnostics).
    pub async fn pending(&self, call_id: &str) -> Result<Vec<CallLogged>, LedgerError> {
        Ok(match self.state.get(&state_key(call_id)).await? {
            Some((bytes, _)) => decode(&bytes).map(|p| p.facts).unwrap_or_default(),
            None => Vec::new(),
        })
    }

    async fn exists(&self, ticket: Uuid) -> Result<bool, LedgerError> {
        Ok(!self.store.load(ticket).await?.events.is_empty())
    }

    /// Merges facts into the call's pending record (a fact whose key is there already is skipped).
    async fn keep(&self, call_id: &str, facts: Vec<CallLogged>) -> Result<(), LedgerError> {
        let key = state_key(call_id);
        for _ in 0..CAS_ATTEMPTS {
            let now = OffsetDateTime::now_utc().unix_timestamp();
            let (mut pending, revision) = match self.state.get(&key).await? {
                Some((bytes, revision)) => (decode(&bytes).unwrap_or_default(), Some(revision)),
                None => (PendingCall::default(), None),
            };
            if pending.call_id.is_empty() || pending.facts.is_empty() {
                pending = PendingCall { call_id: call_id.to_owned(), first_seen: now, updated: now, facts: Vec::new() };
            }
            let before = pending.facts.len();
            for fact in &facts {
                if !pending.facts.iter().any(|f| f.key == fact.key) {
                    pending.facts.push(fact.clone());
                }
            }
            if pending.facts.len() == before && revision.is_some() {
                return Ok(());
            }
            if pending.facts.len() > MAX_PENDING_FACTS {
                return Err(LedgerError::TooMany(call_id.to_owned()));
            }
            pending.updated = now;
            match self.state.put(&key, &encode(&pending), revision).await? {
                Ok(_) => return Ok(()),
                Err(StateConflict) => continue,
            }
        }
        Err(LedgerError::Busy(call_id.to_owned()))
    }

    async fn record(&self, ticket: Uuid, facts: Vec<CallLogged>) -> Result<(), LedgerError> {
        let executed = hotline_store::execute(
            self.store.as_ref(),
            ticket,
            &Actor::channel(CHANNEL),
            OffsetDateTime::now_utc(),
            Cause::EventOrFirst(None),
            OnConflict::Decide,
            |_, _| Ok::<_, Infallible>(Command::RecordCall { facts: facts.clone() }),
        )
        .await;
        match executed {
            Ok(executed) => {
                if !executed.events.is_empty() {
                    tracing::info!(%ticket, recorded = executed.events.len(), "call events recorded");
                }
                Ok(())
            }
            Err(ExecuteError::Store(e)) => Err(e.into()),
            Err(ExecuteError::Domain(e)) => Err(LedgerError::Refused(e.to_string())),
            Err(ExecuteError::Conflict) => Err(LedgerError::Busy(ticket.to_string())),
            Err(ExecuteError::Command(never)) => match never {},
        }
    }
}

/// `call.<hex of the call id>`: state keys allow only letters, digits, `_` and `-` between dots, and call ids
/// carry dots (`1717000000.42`).
pub fn state_key(call_id: &str) -> String {
    let hex: String = call_id.bytes().map(|b| format!("{b:02x}")).collect();
    format!("call.{hex}")
}

fn encode(pending: &PendingCall) -> Vec<u8> {
    // A struct of strings, numbers and vectors always serialises.
    serde_json::to_vec(pending).unwrap_or_default()
}

fn decode(bytes: &[u8]) -> Option<PendingCall> {
    serde_json::from_slice(bytes).ok()
}
