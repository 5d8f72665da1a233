//! The feed projector: derives the published feed (`HOTLINE_FEED`, the integration events other systems of the
//! province subscribe to) from the internal log, every message exactly once and in log order.
//!
//! How exactly-once holds, whatever the restart point and independent of any deduplication window:
//! - each feed message says where it comes from (the log position of its commit, and that it is part i of the
//!   commit's n feed messages), and the messages of a commit are computed deterministically from the log;
//! - the projector reads the feed's last message and resumes from it: at the next commit when the last commit is
//!   complete, else at the same commit skipping the parts already published;
//! - every publish states the feed's last sequence it expects; a publish that lost its ack, or a second projector
//!   running at once, makes the next publish conflict, and the projector reads the feed's tip again.
//!
//! Publishes are pipelined: the messages of the commits already read (up to [`BATCH_MESSAGES`]) are sent together,
//! each expecting the sequence right after the one before (the feed's sequences are contiguous), and their
//! acknowledgements awaited after. A failure anywhere fails every later message of the batch too, so the feed
//! still grows one message after the other with no gap and no double; the pass ends and resumes from the tip.
//!
//! The ticket state each message needs (the ticket as it stood after the event, and the agencies that received
//! copies of it) is folded from the ticket's history, loaded once and then kept current while following the log.
//!
//! Erasure: after the last message of a commit holding `PersonalDataErased` is in the feed, the projector erases
//! every earlier agency copy of that ticket from the stream (found through the ticket id, the last token of every
//! feed subject). The erasure's own messages are newer, so the feed's tip is never touched. A pass always starts at
//! the tip's own commit and, when that commit holds an erasure, erases again (idempotent): a crash between the
//! publish and the erasing, or a failed erase, is finished by the next pass.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use hotline_contract::{FeedTicket, PUBLIC, parse_subject, ticket_filter};
use hotline_domain::TicketEvent;
use hotline_runtime::Shutdown;
use hotline_store::{Commit, EventStore, FeedEntry, FeedError, FeedLog, FeedMark, FeedTip, LOG_ID_HEADER, Position, StoreError};
use uuid::Uuid;

/// Tickets whose state is kept between commits; past it the cache starts over (a miss only costs a load).
const CACHED_TICKETS: usize = 4_096;
/// Pause after a failure before reading the feed's tip again.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// Most feed messages published in one pipelined batch (sent together, acknowledged after). One at a time, each
/// waiting for its fsynced acknowledgement behind the intake's and the router's, the feed fell far behind under
/// load (docs/performance.md).
const BATCH_MESSAGES: usize = 512;

/// Why the projector stopped following the log for a moment. Every one of them ends in a fresh read of the feed's
/// tip: nothing is lost or doubled by stopping.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// The feed moved (another projector, or our own publish whose ack was lost).
    #[error("the feed moved on; reading its tip again")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The feed and the log disagree (a feed from another log, a ticket history with gaps): resuming would publish
    /// wrong messages, so the projector stops publishing and reports it until an operator looks.
    #[error("the feed does not match the log: {0}")]
    Inconsistent(String),
}

impl From<FeedError> for ProjectError {
    fn from(e: FeedError) -> ProjectError {
        match e {
            FeedError::Conflict => ProjectError::Conflict,
            FeedError::Store(e) => ProjectError::Store(e),
        }
    }
}

/// Follows the log and publishes the feed.
pub struct Projector {
    store: Arc<dyn EventStore>,
    feed: Arc<dyn FeedLog>,
    /// The province's code, part of every message's `ce-source`.
    province: String,
    /// Each ticket's state after the last commit of it seen, to fold the next commit onto.
    tickets: HashMap<Uuid, FeedTicket>,
    /// The log's id, stamped on every message published (`Hotline-Log-Id`); read at each pass.
    log_id: String,
}

impl Projector {
    pub fn new(store: Arc<dyn EventStore>, feed: Arc<dyn FeedLog>, province_code: &str) -> Projector {
        Projector { store, feed, province: province_code.to_owned(), tickets: HashMap::new(), log_id: String::new() }
    }

    /// Publishes the feed until `shutdown`, starting again from the feed's tip after any failure.
    pub async fn run(mut self, mut shutdown: Shutdown) {
        tracing::info!("feed projector started");
        while !shutdown.is_raised() {
            match self.follow(&mut shutdown).await {
                Ok(()) => break,
                Err(ProjectError::Conflict) => tracing::debug!("feed moved on; reading its tip again"),
                Err(e) => {
                    match &e {
                        ProjectError::Inconsistent(_) => tracing::error!(error = %e, "feed projector cannot go on"),
                        _ => tracing::warn!(error = %e, "feed projector interrupted; resuming from the feed's tip"),
                    }
                    tokio::select! {
                        _ = shutdown.wait() => break,
                        _ = tokio::time::sleep(RETRY_DELAY) => {}
                    }
                }
            }
        }
        tracing::info!("feed projector stopped");
    }

    /// Reads the feed's tip and checks that it can be placed in this log: its last message was derived from this
    /// log (same log id, when stamped) at a position the log has. Returns the tip and the log's id.
    /// [`ProjectError::Inconsistent`] when not: a wiped or replaced log would otherwise make the feed skip events
    /// (the marks of the old log) and mix two histories once the new log grows past the mark.
    pub async fn check(&self) -> Result<(FeedTip, String), ProjectError> {
        let tip = self.feed.tip().await?;
        let log_id = self.store.log_id().await?;
        if let Some(mark) = tip.mark {
            if let Some(feed_log) = self.feed.last_log_id().await?
                && feed_log != log_id
            {
                return Err(ProjectError::Inconsistent(format!(
                    "the feed's last message (log position {}) was derived from log {feed_log}, but the log is now \
                     {log_id} (wiped or replaced?): its positions mean nothing here",
                    mark.position
                )));
            }
            let last = self.store.last_position().await?;
            if mark.position > last {
                return Err(ProjectError::Inconsistent(format!(
                    "the feed's last message comes from log position {} but the log ends at {last}",
                    mark.position
                )));
            }
        }
        Ok((tip, log_id))
    }

    /// One pass: read the feed's tip, follow the log from there and publish until shutdown (Ok) or a failure.
    async fn follow(&mut self, shutdown: &mut Shutdown) -> Result<(), ProjectError> {
        let (tip, log_id) = self.check().await?;
        self.log_id = log_id;
        let mut expected = tip.sequence;
        // From the tip's own commit, even a complete one: its remaining parts (none when complete) are published,
        // and its erasure, if it holds one, is done again.
        let (from, mut resume) = match tip.mark {
            None => (Position::Start, None),
            Some(mark) => (Position::From(mark.position), Some(mark)),
        };
        tracing::debug!(?from, feed_sequence = expected, "following the log");
        let mut commits = self.store.subscribe(from).await?;
        loop {
            let next = tokio::select! {
                _ = shutdown.wait() => return Ok(()),
                next = commits.next() => next,
            };
            let first = match next {
                Some(Ok(commit)) => commit,
                Some(Err(e)) => return Err(e.into()),
                None => return Err(subscription_ended().into()),
            };
            // A batch: this commit and those already read after it, up to BATCH_MESSAGES messages, ending early at
            // a commit that erases personal data, whose erasure must follow its own messages before anything else
            // is published (a pass that starts at it erases again; one that starts later would not).
            let mut batch: Vec<FeedEntry> = Vec::new();
            let mut commit = first;
            // The log read failed after the batch's first commit: what was read is published, then the pass ends.
            let mut failed: Option<ProjectError> = None;
            let erasure = loop {
                let entries = self.entries(&commit).await?;
                // Resuming inside a commit: the first commit is that one, and its first parts are published already.
                let skip = match resume.take() {
                    Some(mark) if mark.position != commit.position => {
                        return Err(ProjectError::Inconsistent(format!(
                            "the feed stopped inside the commit at log position {}, but the log resumed at {}",
                            mark.position, commit.position
                        )));
                    }
                    Some(mark) if mark.parts as usize != entries.len() => {
                        return Err(ProjectError::Inconsistent(format!(
                            "the commit at log position {} made {} feed messages, now it makes {}",
                            mark.position,
                            mark.parts,
                            entries.len()
                        )));
                    }
                    Some(mark) => mark.part as usize,
                    None => 0,
                };
                batch.extend(entries.into_iter().skip(skip));
                if commit.events.iter().any(|e| matches!(e.event, TicketEvent::PersonalDataErased(_))) {
                    break Some(commit);
                }
                if batch.len() >= BATCH_MESSAGES {
                    break None;
                }
                match commits.next().now_or_never() {
                    Some(Some(Ok(next))) => commit = next,
                    Some(Some(Err(e))) => {
                        failed = Some(e.into());
                        break None;
                    }
                    Some(None) => {
                        failed = Some(subscription_ended().into());
                        break None;
                    }
                    // Nothing more read yet.
                    None => break None,
                }
            };
            // Shutdown is looked at between batches: a batch sent is finished (its acknowledgements awaited), not
            // abandoned, and an erasure commit's erasure is done with it, so a clean stop leaves none for the next
            // start. Whole commits only, except where a pass resumed inside one.
            expected = self.feed.publish_all(expected, &batch).await?;
            if let Some(commit) = erasure {
                let erased = erase_earlier_copies(self.feed.as_ref(), commit.ticket_id, commit.position).await?;
                tracing::info!(ticket = %commit.ticket_id, erased, "erased the ticket's earlier agency copies from the feed");
            }
            if let Some(e) = failed {
                return Err(e);
            }
            if shutdown.is_raised() {
                return Ok(());
            }
        }
    }

    /// The feed messages of one commit, in their order, with their marks.
    async fn entries(&mut self, commit: &Commit) -> Result<Vec<FeedEntry>, ProjectError> {
        let Some(first) = commit.events.first() else { return Ok(Vec::new()) };
        let mut ticket = match self.tickets.remove(&commit.ticket_id) {
            Some(feed) if feed.ticket.seq + 1 == first.seq => feed,
            // A ticket's first commit: nothing before it to load (a load per new ticket, a round trip to the log
            // under the intake's load, held the feed to ~200 messages/s; docs/performance.md).
            _ if first.seq == 1 => FeedTicket::from_history([]),
            _ => {
                let history = self.store.load(commit.ticket_id).await?;
                let before = FeedTicket::from_history(history.events.iter().filter(|e| e.seq < first.seq));
                if before.ticket.seq + 1 != first.seq {
                    return Err(ProjectError::Inconsistent(format!(
                        "ticket {} has events up to seq {} before a commit that starts at seq {}",
                        commit.ticket_id, before.ticket.seq, first.seq
                    )));
                }
                before
            }
        };
        let mut entries = commit_entries(commit, &mut ticket, &self.province);
        for entry in &mut entries {
            entry.attributes.push((LOG_ID_HEADER.to_owned(), self.log_id.clone()));
        }
        if self.tickets.len() >= CACHED_TICKETS {
            self.tickets.clear();
        }
        self.tickets.insert(commit.ticket_id, ticket);
        Ok(entries)
    }
}

/// Erases from the feed every agency copy of `ticket` that comes from a log commit before `position` (the erasure's
/// commit); public messages carry no personal data and stay. Returns how many were erased. Idempotent.
pub async fn erase_earlier_copies(feed: &dyn FeedLog, ticket: Uuid, position: u64) -> Result<usize, StoreError> {
    let stored = feed.find(&ticket_filter(ticket)).await?;
    let doomed: Vec<u64> = stored
        .iter()
        .filter(|m| parse_subject(&m.subject).is_some_and(|(audience, id)| audience != PUBLIC && id == ticket))
        // A copy without a readable mark cannot be placed after the erasure: it goes too.
        .filter(|m| m.mark.is_none_or(|mark| mark.position < position))
        .map(|m| m.sequence)
        .collect();
    feed.erase(&doomed).await?;
    Ok(doomed.len())
}

/// The log's subscription stopped delivering (the server went away): the projector subscribes again.
fn subscription_ended() -> StoreError {
    StoreError::Unavailable("the log subscription ended".to_owned())
}

/// The feed messages of `commit`, given the ticket as it stood before it (left as it stands after it): each event's
/// published messages in event order, numbered 1..=n. Pure and deterministic, so a restarted projector computes
/// the same parts again.
pub fn commit_entries(commit: &Commit, ticket: &mut FeedTicket, province_code: &str) -> Vec<FeedEntry> {
    let mut messages = Vec::new();
    for event in &commit.events {
        messages.extend(ticket.apply(event, province_code));
    }
    let parts = u32::try_from(messages.len()).unwrap_or(u32::MAX);
    messages
        .into_iter()
        .enumerate()
        .map(|(i, message)| FeedEntry {
            attributes: hotline_contract::ce_headers(&message),
            // serde_json::Value always serialises.
            payload: serde_json::to_vec(&message.data).unwrap_or_default(),
            subject: message.subject,
            id: message.id,
            mark: FeedMark { position: commit.position, part: i as u32 + 1, parts },
        })
        .collect()
}
