//! The timeline projection: each ticket's current state and its ordered events.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use hotline_domain::event::{ERASED, StoredEnvelope, for_each_personal_field, personal_fields};
use hotline_domain::deadline::DeadlineState;
use hotline_domain::{Envelope, Status, TicketEvent};
use time::OffsetDateTime;
use hotline_runtime::Shutdown;
use hotline_store::{Commit, EventStore, Position};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::{ProjectionError, schema};

/// The projection's name in the checkpoint table.
const NAME: &str = "timeline";
/// Most commits applied in one transaction.
const MAX_BATCH: usize = 1024;
/// Prepared statements the writer's connection keeps: more than the writer's distinct statements (~60 in this file
/// and stats.rs), so none is parsed again per event. Preparing was a quarter of the writer's time when every event
/// parsed its SQL again (docs/performance.md).
const STATEMENT_CACHE: usize = 128;

/// SQLite's page cache of a rebuilding writer, in KiB (negative: SQLite's unit for a size rather than pages);
/// the live writer keeps SQLite's default (2 MiB), since it runs inside the long-lived process.
const REBUILD_CACHE_KIB: i64 = -65_536;

/// Runs one of the writer's statements through the connection's cache of prepared statements.
pub(crate) fn exec(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// A ticket as the projection knows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TicketView {
    pub ticket_id: Uuid,
    pub reference: String,
    pub status: String,
    pub category: Option<String>,
    pub agency: Option<String>,
    pub area: Option<String>,
    pub emergency: bool,
    pub confidence: Option<f64>,
    pub channel: String,
    pub subject: Option<String>,
    pub text: String,
    pub received_at: String,
    pub updated_at: String,
    /// Seq of the last event applied: how many events the ticket has.
    pub events: u64,
    /// The answer, once answered.
    pub answer: Option<String>,
    /// The ticket this one duplicates.
    pub duplicate_of: Option<Uuid>,
    /// How many times agencies sent it back.
    pub bounces: u32,
    /// When the assigned agency must acknowledge it (RFC 3339).
    pub acknowledge_by: Option<String>,
    /// When it must be answered (RFC 3339).
    pub resolve_by: Option<String>,
    /// A deadline was missed: it is in the supervisors' queue.
    pub escalated: bool,
    /// An operator must call the citizen back: the reply could not go by SMS to their number (phone tickets).
    pub callback_due: bool,
    /// Where the ticket stands in a queue's order (for cursors); not shown.
    #[serde(skip)]
    pub queue_key: QueueKey,
}

/// A ticket's place in queue order: emergencies first, then the nearest running deadline (none last), then the
/// oldest, then the id. A cursor is the key of the last ticket of a page: the next page starts strictly after it,
/// so tickets that move meanwhile are neither skipped nor repeated because of the paging itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueKey {
    pub not_emergency: i64,
    pub no_deadline: i64,
    pub due_at: i64,
    pub received_at: String,
    pub ticket_id: String,
}

impl QueueKey {
    /// An opaque, URL-safe cursor.
    pub fn to_cursor(&self) -> String {
        let text = format!("{}|{}|{}|{}|{}", self.not_emergency, self.no_deadline, self.due_at, self.received_at, self.ticket_id);
        text.bytes().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_cursor(cursor: &str) -> Option<QueueKey> {
        if !cursor.len().is_multiple_of(2) || cursor.len() > 400 {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..cursor.len()).step_by(2).map(|i| u8::from_str_radix(cursor.get(i..i + 2)?, 16).ok()).collect();
        let text = String::from_utf8(bytes?).ok()?;
        let mut parts = text.split('|');
        Some(QueueKey {
            not_emergency: parts.next()?.parse().ok()?,
            no_deadline: parts.next()?.parse().ok()?,
            due_at: parts.next()?.parse().ok()?,
            received_at: parts.next()?.to_owned(),
            ticket_id: parts.next()?.to_owned(),
        })
    }
}

/// One event of a ticket's timeline.
#[derive(Debug, Clone)]
pub struct TimelineEntry {
    pub seq: u64,
    /// Log position of the commit that stored it.
    pub position: u64,
    pub envelope: Envelope,
}

/// A ticket under a citizen's key, as erasure sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedTicket {
    pub id: Uuid,
    pub erased: bool,
    pub updated_at: OffsetDateTime,
}

/// Applies commits to the SQLite file. One writer per file.
pub struct TimelineWriter {
    conn: Connection,
    path: PathBuf,
    /// Which file `path` named when it was opened: `hotline replay` swaps another one in (see [`crate::install`]).
    file: Option<FileId>,
    /// Personal data was erased and the write-ahead log may still hold the pages as they were before: fold it in
    /// and truncate it (retried after each batch until no reader holds it back).
    erased_pending: bool,
}

impl TimelineWriter {
    pub fn open(path: &Path) -> Result<TimelineWriter, ProjectionError> {
        let (conn, file) = open_identified(path)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(TimelineWriter { conn, path: path.to_owned(), file, erased_pending: false })
    }

    /// Opens a fresh file that `hotline replay` builds beside the live one: nobody reads it until it is sealed and
    /// swapped in, and a crash leaves it to be removed by the next rebuild, so it goes without the write-ahead log
    /// and without fsyncs while it is built (each batch written once, straight into the file; the rollback journal
    /// kept in memory so a failed batch still rolls back). [`TimelineWriter::seal`] fsyncs it before it is moved.
    /// Measured on this project's machine: the checkpoints and WAL writes were a fifth of a rebuild's time.
    pub fn open_rebuild(path: &Path) -> Result<TimelineWriter, ProjectionError> {
        let writer = TimelineWriter::open(path)?;
        writer.conn.pragma_update(None, "journal_mode", "MEMORY")?;
        writer.conn.pragma_update(None, "synchronous", "OFF")?;
        writer.conn.pragma_update(None, "cache_size", REBUILD_CACHE_KIB)?;
        Ok(writer)
    }

    /// Whether `path` now names another file than the one this writer has open (a rebuilt projection was swapped
    /// in): the writer must be reopened and resume from the new file's own position.
    pub fn swapped(&self) -> bool {
        file_id(&self.path).is_some_and(|now| Some(now) != self.file)
    }

    /// Makes the file self-contained before it is moved: the write-ahead log (if it has one) folded in and switched
    /// off, so no `-wal`/`-shm` file belongs to it any more (they are named after the path, which is about to change).
    pub fn seal(self) -> Result<(), ProjectionError> {
        self.conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
        self.conn.pragma_update(None, "journal_mode", "DELETE")?;
        self.conn.close().map_err(|(_, e)| ProjectionError::Sqlite(e))?;
        // On disk before it is moved: a rebuild wrote it without fsyncs (`open_rebuild`).
        std::fs::File::open(&self.path)
            .and_then(|f| f.sync_all())
            .map_err(|e| ProjectionError::Worker(format!("cannot sync {}: {e}", self.path.display())))
    }

    /// The log position of the last applied commit (0 when none).
    pub fn position(&self) -> Result<u64, ProjectionError> {
        read_position(&self.conn)
    }

    /// Binds the projection to the log `log_id`. When it was built from another log (a wiped or replaced
    /// store, another server, a restored backup), its rows and position mean nothing here: they are dropped and
    /// the projection rebuilds from the start of this log. Returns true when it was reset.
    pub fn bind_to_log(&mut self, log_id: &str) -> Result<bool, ProjectionError> {
        let tx = self.conn.transaction()?;
        let stored: Option<Option<String>> = tx
            .query_row("SELECT log_id FROM checkpoint WHERE projection = ?1", [NAME], |r| r.get(0))
            .optional()?;
        let reset = matches!(&stored, Some(Some(id)) if id != log_id);
        if reset {
            tx.execute_batch("DELETE FROM timeline; DELETE FROM tickets; DELETE FROM checkpoint;")?;
            crate::stats::clear(&tx)?;
        }
        tx.execute(
            "INSERT INTO checkpoint (projection, position, log_id) VALUES (?1, 0, ?2)
             ON CONFLICT (projection) DO UPDATE SET log_id = excluded.log_id",
            params![NAME, log_id],
        )?;
        tx.commit()?;
        Ok(reset)
    }

    /// Applies commits in one transaction with the position they reach. Commits at or before the stored
    /// position are skipped, so applying a batch twice changes nothing.
    pub fn apply(&mut self, commits: &[Commit]) -> Result<u64, ProjectionError> {
        let tx = self.conn.transaction()?;
        let mut position = read_position(&tx)?;
        for commit in commits {
            if commit.position <= position {
                continue;
            }
            for envelope in &commit.events {
                apply_event(&tx, commit.position, envelope)?;
                crate::stats::apply_event(&tx, envelope)?;
                self.erased_pending |= matches!(envelope.event, TicketEvent::PersonalDataErased(_));
            }
            position = commit.position;
        }
        exec(
            &tx,
            "INSERT INTO checkpoint (projection, position) VALUES (?1, ?2)
             ON CONFLICT (projection) DO UPDATE SET position = excluded.position",
            params![NAME, position as i64],
        )?;
        tx.commit()?;
        self.finish_erasure(40)?;
        Ok(position)
    }

    /// After personal data was erased, the old pages (with the plaintext) may sit in the write-ahead log until it
    /// is checkpointed and truncated. A reader in the middle of a read holds that back for a moment: tries up to
    /// `attempts` times, and leaves the rest to the next call (after the next batch, or the follower's idle look).
    pub fn finish_erasure(&mut self, attempts: u32) -> Result<(), ProjectionError> {
        for attempt in 0..attempts {
            if !self.erased_pending {
                break;
            }
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(25));
            }
            let busy: i64 = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
            self.erased_pending = busy != 0;
        }
        Ok(())
    }
}

/// The stored log position of the projection (0 when none).
fn read_position(conn: &Connection) -> Result<u64, ProjectionError> {
    let position: Option<i64> =
        conn.prepare_cached("SELECT position FROM checkpoint WHERE projection = ?1")?.query_row([NAME], |r| r.get(0)).optional()?;
    Ok(position.map_or(0, |p| p as u64))
}

fn apply_event(tx: &rusqlite::Transaction<'_>, position: u64, e: &Envelope) -> Result<(), ProjectionError> {
    let at = e.occurred_at.format(&Rfc3339).map_err(|err| ProjectionError::Decode(err.to_string()))?;
    let mut stored = e.to_stored().map_err(|err| ProjectionError::Decode(err.to_string()))?;
    // An erased ticket never takes personal data again, whatever the event says (a process may still have held
    // the key for a moment after it was destroyed).
    if !personal_fields(e.event_type()).is_empty() && is_erased(tx, e.ticket_id)? {
        for_each_personal_field(e.event_type(), &mut stored.data, &mut |text| *text = ERASED.to_owned());
    }
    let envelope_json = serde_json::to_string(&stored).map_err(|err| ProjectionError::Decode(err.to_string()))?;
    let actor_kind = e.actor.kind.as_str();
    let ticket = e.ticket_id.to_string();
    exec(tx, 
        "INSERT INTO timeline (ticket_id, seq, position, event_id, event_type, at, actor_kind, actor_id, envelope)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![ticket, e.seq as i64, position as i64, e.event_id.to_string(), e.event_type(), at, actor_kind, e.actor.id, envelope_json],
    )?;
    match &e.event {
        TicketEvent::PetitionReceived(p) => {
            exec(tx, 
                "INSERT INTO tickets (ticket_id, reference, status, channel, category, area, subject, text,
                                      received_at, updated_at, last_seq, citizen_key)
                 VALUES (?1, ?2, 'received', ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10)",
                params![
                    ticket,
                    p.reference.as_str(),
                    p.channel,
                    p.category,
                    p.location.as_ref().and_then(|l| l.area.clone()),
                    p.subject,
                    p.text,
                    at,
                    e.seq as i64,
                    p.citizen_key.map(|k| k.to_string())
                ],
            )?;
        }
        TicketEvent::PetitionCategorized(c) => {
            exec(tx, 
                "UPDATE tickets SET category = ?2, area = COALESCE(?3, area), emergency = ?4, confidence = ?5,
                                    updated_at = ?6, last_seq = ?7 WHERE ticket_id = ?1",
                params![ticket, c.category, c.area, c.emergency, c.confidence, at, e.seq as i64],
            )?;
        }
        TicketEvent::PetitionRouted(r) => {
            exec(tx, 
                "UPDATE tickets SET status = 'routed', agency = ?2, area = COALESCE(?3, area), emergency = ?4,
                                    updated_at = ?5, last_seq = ?6, answered_at = NULL, answer = NULL, satisfied = NULL
                 WHERE ticket_id = ?1",
                params![ticket, r.agency, r.area, r.emergency, at, e.seq as i64],
            )?;
        }
        TicketEvent::PetitionNeedsTriage(t) => {
            exec(tx, 
                "UPDATE tickets SET status = 'needs_triage', agency = ?2, area = COALESCE(?3, area),
                                    updated_at = ?4, last_seq = ?5 WHERE ticket_id = ?1",
                params![ticket, t.agency, t.area, at, e.seq as i64],
            )?;
        }
        TicketEvent::PetitionAcknowledged(_) => set_status(tx, &ticket, "acknowledged", &at, e.seq)?,
        TicketEvent::InformationRequested(_) => {
            exec(tx, 
                "UPDATE tickets SET resume_status = status, status = 'waiting_for_citizen', updated_at = ?2,
                                    last_seq = ?3 WHERE ticket_id = ?1",
                params![ticket, at, e.seq as i64],
            )?;
        }
        TicketEvent::CitizenReplied(_) => {
            exec(tx, 
                "UPDATE tickets SET status = COALESCE(resume_status, 'acknowledged'), resume_status = NULL,
                                    updated_at = ?2, last_seq = ?3 WHERE ticket_id = ?1",
                params![ticket, at, e.seq as i64],
            )?;
        }
        // The message shows on the timeline; the ticket moves on its list (updated_at) for whoever handles it.
        TicketEvent::CitizenWrote(_) => {
            exec(tx, 
                "UPDATE tickets SET updated_at = ?2, last_seq = ?3 WHERE ticket_id = ?1",
                params![ticket, at, e.seq as i64],
            )?;
        }
        TicketEvent::PetitionTransferred(t) => {
            exec(tx, 
                "UPDATE tickets SET status = 'transferred', bounces = ?2, resume_status = NULL, updated_at = ?3,
                                    last_seq = ?4 WHERE ticket_id = ?1",
                params![ticket, t.bounces, at, e.seq as i64],
            )?;
        }
        TicketEvent::PetitionAnswered(a) => {
            exec(tx, 
                "UPDATE tickets SET status = 'answered', answer = ?2, updated_at = ?3, last_seq = ?4, answered_at = ?5
                 WHERE ticket_id = ?1",
                params![ticket, a.text, at, e.seq as i64, e.occurred_at.unix_timestamp()],
            )?;
        }
        TicketEvent::PetitionRecategorized(r) => {
            exec(tx, 
                "UPDATE tickets SET category = ?2, area = COALESCE(?3, area), updated_at = ?4, last_seq = ?5
                 WHERE ticket_id = ?1",
                params![ticket, r.category, r.area, at, e.seq as i64],
            )?;
        }
        TicketEvent::MarkedDuplicate(d) => {
            exec(tx, 
                "UPDATE tickets SET status = 'duplicate', duplicate_of = ?2, updated_at = ?3, last_seq = ?4
                 WHERE ticket_id = ?1",
                params![ticket, d.of_ticket.to_string(), at, e.seq as i64],
            )?;
        }
        TicketEvent::PetitionRejected(_) => set_status(tx, &ticket, "rejected", &at, e.seq)?,
        TicketEvent::TicketClosed(_) => set_status(tx, &ticket, "closed", &at, e.seq)?,
        TicketEvent::FeedbackGiven(f) => {
            exec(tx, 
                "UPDATE tickets SET satisfied = ?2, updated_at = ?3, last_seq = ?4 WHERE ticket_id = ?1",
                params![ticket, f.satisfied, at, e.seq as i64],
            )?;
        }
        // The call-back marker follows the same rule as the aggregate (`Ticket::callback_due`): a reply that could
        // not go by SMS to a phone caller's number is owed by telephone until a later reply reaches them or an
        // operator records the call.
        TicketEvent::ReplyFailed(f) => {
            let no_mobile = f.reason.starts_with(hotline_domain::event::NO_MOBILE_NUMBER);
            exec(tx, 
                "UPDATE tickets SET callback_due = CASE WHEN ?2 AND channel = 'phone' THEN 1 ELSE callback_due END,
                                    updated_at = ?3, last_seq = ?4 WHERE ticket_id = ?1",
                params![ticket, no_mobile, at, e.seq as i64],
            )?;
        }
        TicketEvent::ReplySent(_) | TicketEvent::CallbackDone(_) => {
            exec(tx, 
                "UPDATE tickets SET callback_due = 0, updated_at = ?2, last_seq = ?3 WHERE ticket_id = ?1",
                params![ticket, at, e.seq as i64],
            )?;
        }
        TicketEvent::PersonalDataErased(_) => {
            exec(tx, 
                "UPDATE tickets SET erased = 1, text = ?2, subject = CASE WHEN subject IS NULL THEN NULL ELSE ?2 END,
                                    callback_due = 0, updated_at = ?3, last_seq = ?4 WHERE ticket_id = ?1",
                params![ticket, ERASED, at, e.seq as i64],
            )?;
            erase_timeline(tx, &ticket)?;
        }
        TicketEvent::DeadlineApproaching(_)
        | TicketEvent::DeadlineMissed(_)
        | TicketEvent::DeadlineExtended(_)
        | TicketEvent::CallLogged(_)
        | TicketEvent::DuplicateLinked(_) => {
            exec(tx, "UPDATE tickets SET updated_at = ?2, last_seq = ?3 WHERE ticket_id = ?1", params![ticket, at, e.seq as i64])?;
        }
    }
    update_deadlines(tx, &ticket, e)
}

/// Folds the event into the ticket's deadline state, with the same code the aggregate uses, and stores when the
/// scheduler must look again and which deadline orders the queue.
fn update_deadlines(tx: &rusqlite::Transaction<'_>, ticket: &str, e: &Envelope) -> Result<(), ProjectionError> {
    let row: Option<(String, Option<String>)> = tx
        .prepare_cached("SELECT status, deadlines FROM tickets WHERE ticket_id = ?1")?
        .query_row([ticket], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((status, json)) = row else { return Ok(()) };
    let mut state: DeadlineState = json.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default();
    state.apply(&e.event, e.occurred_at);
    let status = Status::parse(&status).unwrap_or_default();
    let text = |t: Option<OffsetDateTime>| t.and_then(|t| t.format(&Rfc3339).ok());
    let json = serde_json::to_string(&state).map_err(|err| ProjectionError::Decode(err.to_string()))?;
    exec(tx, 
        "UPDATE tickets SET deadlines = ?2, acknowledge_by = ?3, resolve_by = ?4, escalated = ?5, next_alarm = ?6,
                            due_at = ?7 WHERE ticket_id = ?1",
        params![
            ticket,
            json,
            text(state.acknowledge_by),
            text(state.resolve_by),
            state.escalated,
            state.next_alarm(status).map(OffsetDateTime::unix_timestamp),
            state.current_due(status).map(OffsetDateTime::unix_timestamp),
        ],
    )?;
    Ok(())
}

fn is_erased(tx: &rusqlite::Transaction<'_>, ticket: Uuid) -> Result<bool, ProjectionError> {
    let erased: Option<bool> =
        tx.prepare_cached("SELECT erased FROM tickets WHERE ticket_id = ?1")?.query_row([ticket.to_string()], |r| r.get(0)).optional()?;
    Ok(erased.unwrap_or(false))
}

/// Replaces the personal data in every stored event of the ticket's timeline with [`ERASED`].
fn erase_timeline(tx: &rusqlite::Transaction<'_>, ticket: &str) -> Result<(), ProjectionError> {
    let rows: Vec<(String, String)> = {
        let mut stmt = tx.prepare_cached("SELECT event_id, envelope FROM timeline WHERE ticket_id = ?1")?;
        let rows = stmt.query_map([ticket], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (event_id, json) in rows {
        let mut stored: StoredEnvelope = serde_json::from_str(&json).map_err(|err| ProjectionError::Decode(err.to_string()))?;
        let mut changed = false;
        for_each_personal_field(&stored.event_type.clone(), &mut stored.data, &mut |text| {
            if text.as_str() != ERASED {
                *text = ERASED.to_owned();
                changed = true;
            }
        });
        if changed {
            let json = serde_json::to_string(&stored).map_err(|err| ProjectionError::Decode(err.to_string()))?;
            exec(tx, "UPDATE timeline SET envelope = ?2 WHERE event_id = ?1", params![event_id, json])?;
        }
    }
    Ok(())
}

fn set_status(tx: &rusqlite::Transaction<'_>, ticket: &str, status: &str, at: &str, seq: u64) -> rusqlite::Result<()> {
    exec(tx, 
        "UPDATE tickets SET status = ?2, updated_at = ?3, last_seq = ?4, answered_at = NULL WHERE ticket_id = ?1",
        params![ticket, status, at, seq as i64],
    )?;
    Ok(())
}

/// A file's identity (device, inode): what a path names right now.
type FileId = (u64, u64);

#[cfg(unix)]
fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    // Follows the link: `hotline replay` swaps the link, the identity is the file it points at.
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_id(_path: &Path) -> Option<FileId> {
    None
}

/// Opens the projection at `path` with the identity of the file the connection really has open: the path is
/// looked at before and after opening, and opened again if a swap happened in between.
fn open_identified(path: &Path) -> Result<(Connection, Option<FileId>), ProjectionError> {
    loop {
        let before = file_id(path);
        let conn = schema::open(path)?;
        let after = file_id(path);
        if before.is_none() || before == after {
            return Ok((conn, after));
        }
    }
}

/// The reader's connection and the file it has open.
struct LiveFile {
    conn: Connection,
    path: PathBuf,
    file: Option<FileId>,
}

/// Reads the projection. Cheap to clone; queries run on the blocking pool. Every query first checks that the path
/// still names the file it has open (one `stat`) and reopens when `hotline replay` swapped a rebuilt one in, so a
/// long-running API follows the swap without a restart.
#[derive(Clone)]
pub struct TimelineReader {
    conn: Arc<Mutex<LiveFile>>,
}

impl TimelineReader {
    pub fn open(path: &Path) -> Result<TimelineReader, ProjectionError> {
        let (conn, file) = open_identified(path)?;
        Ok(TimelineReader { conn: Arc::new(Mutex::new(LiveFile { conn, path: path.to_owned(), file })) })
    }

    pub(crate) async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, ProjectionError> + Send + 'static,
    ) -> Result<T, ProjectionError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut live = conn.lock().map_err(|_| ProjectionError::Worker("reader lock poisoned".to_owned()))?;
            if file_id(&live.path).is_some_and(|now| Some(now) != live.file) {
                let (conn, file) = open_identified(&live.path)?;
                tracing::info!(path = %live.path.display(), "the projection file was swapped: reading the new one");
                live.conn = conn;
                live.file = file;
            }
            f(&live.conn)
        })
        .await
        .map_err(|e| ProjectionError::Worker(e.to_string()))?
    }

    /// The log position the projection has applied.
    pub async fn position(&self) -> Result<u64, ProjectionError> {
        self.with(read_position).await
    }

    pub async fn ticket(&self, id: Uuid) -> Result<Option<TicketView>, ProjectionError> {
        self.with(move |c| query_ticket(c, "ticket_id", &id.to_string())).await
    }

    pub async fn ticket_by_reference(&self, reference: &str) -> Result<Option<TicketView>, ProjectionError> {
        let reference = reference.to_owned();
        self.with(move |c| query_ticket(c, "reference", &reference)).await
    }

    /// How many tickets the projection holds.
    pub async fn count(&self) -> Result<u64, ProjectionError> {
        self.with(|c| Ok(c.query_row("SELECT COUNT(*) FROM tickets", [], |r| r.get::<_, i64>(0))? as u64)).await
    }

    /// A ticket's events in order.
    pub async fn timeline(&self, id: Uuid) -> Result<Vec<TimelineEntry>, ProjectionError> {
        self.with(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT seq, position, envelope FROM timeline WHERE ticket_id = ?1 ORDER BY seq")?;
            let rows = stmt.query_map([id.to_string()], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
            })?;
            let mut entries = Vec::new();
            for row in rows {
                let (seq, position, json) = row?;
                let stored: StoredEnvelope =
                    serde_json::from_str(&json).map_err(|e| ProjectionError::Decode(e.to_string()))?;
                let envelope = Envelope::decode(stored).map_err(|e| ProjectionError::Decode(e.to_string()))?;
                entries.push(TimelineEntry { seq: seq as u64, position: position as u64, envelope });
            }
            Ok(entries)
        })
        .await
    }
}

/// The columns of a [`TicketView`], in the order [`view_of`] reads them.
const TICKET_COLUMNS: &str = "ticket_id, reference, status, category, agency, area, emergency, confidence, channel, \
     subject, text, received_at, updated_at, last_seq, answer, duplicate_of, bounces, acknowledge_by, resolve_by, escalated, \
     1 - emergency, due_at IS NULL, COALESCE(due_at, 0), callback_due";

/// How many columns [`TICKET_COLUMNS`] selects: a query that selects more after them reads those from here on.
const TICKET_COLUMN_COUNT: usize = 24;

/// The queue order, as an ascending key (see [`QueueKey`]).
const QUEUE_ORDER: &str = "1 - emergency, due_at IS NULL, COALESCE(due_at, 0), received_at, ticket_id";

fn view_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<TicketView> {
    let id: String = r.get(0)?;
    let ticket_id =
        id.parse().map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))?;
    Ok(TicketView {
        ticket_id,
        reference: r.get(1)?,
        status: r.get(2)?,
        category: r.get(3)?,
        agency: r.get(4)?,
        area: r.get(5)?,
        emergency: r.get(6)?,
        confidence: r.get(7)?,
        channel: r.get(8)?,
        subject: r.get(9)?,
        text: r.get(10)?,
        received_at: r.get(11)?,
        updated_at: r.get(12)?,
        events: r.get::<_, i64>(13)? as u64,
        answer: r.get(14)?,
        duplicate_of: r.get::<_, Option<String>>(15)?.and_then(|d| d.parse().ok()),
        bounces: r.get(16)?,
        acknowledge_by: r.get(17)?,
        resolve_by: r.get(18)?,
        escalated: r.get(19)?,
        callback_due: r.get(TICKET_COLUMN_COUNT - 1)?,
        queue_key: QueueKey {
            not_emergency: r.get(20)?,
            no_deadline: r.get(21)?,
            due_at: r.get(22)?,
            received_at: r.get(11)?,
            ticket_id: id,
        },
    })
}

fn query_ticket(c: &Connection, column: &str, value: &str) -> Result<Option<TicketView>, ProjectionError> {
    // `column` is one of two literals chosen by the callers above, never input.
    let sql = format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE {column} = ?1");
    let mut stmt = c.prepare_cached(&sql)?;
    Ok(stmt.query_row([value], view_of).optional()?)
}

/// Which tickets a queue shows.
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    /// Only this agency's tickets (an agency's own queue).
    pub agency: Option<String>,
    /// One status; None means every open status.
    pub status: Option<String>,
    pub category: Option<String>,
    pub area: Option<String>,
    pub emergency: Option<bool>,
    /// Only tickets that missed a deadline (the supervisors' queue).
    pub escalated: Option<bool>,
    /// Some(true): only tickets whose citizen must be called back (the operators' call-back queue), whatever
    /// their status when no status is asked for: an answered ticket still owes the call. Some(false): none of those.
    pub callback: Option<bool>,
    pub limit: u32,
    /// Start strictly after this ticket (the cursor of the previous page).
    pub after: Option<QueueKey>,
}

/// The open statuses, in SQL.
pub(crate) const OPEN: &str = "('received','routed','needs_triage','acknowledged','waiting_for_citizen','transferred')";

impl TimelineReader {
    /// A page of a queue: emergencies first, then the nearest deadline, then the oldest.
    pub async fn queue(&self, filter: QueueFilter) -> Result<Vec<TicketView>, ProjectionError> {
        self.with(move |c| {
            let mut sql = format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE 1 = 1");
            let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
            match &filter.status {
                Some(status) => {
                    args.push(Box::new(status.clone()));
                    sql.push_str(" AND status = ?1");
                }
                None if filter.callback == Some(true) => {}
                None => sql.push_str(&format!(" AND status IN {OPEN}")),
            }
            let equal: [(&str, Option<Box<dyn rusqlite::ToSql>>); 6] = [
                ("agency", filter.agency.clone().map(|v| Box::new(v) as _)),
                ("category", filter.category.clone().map(|v| Box::new(v) as _)),
                ("area", filter.area.clone().map(|v| Box::new(v) as _)),
                ("emergency", filter.emergency.map(|v| Box::new(v) as _)),
                ("escalated", filter.escalated.map(|v| Box::new(v) as _)),
                ("callback_due", filter.callback.map(|v| Box::new(v) as _)),
            ];
            for (column, value) in equal {
                if let Some(value) = value {
                    args.push(value);
                    sql.push_str(&format!(" AND {column} = ?{}", args.len()));
                }
            }
            if let Some(k) = &filter.after {
                let first = args.len() + 1;
                args.push(Box::new(k.not_emergency));
                args.push(Box::new(k.no_deadline));
                args.push(Box::new(k.due_at));
                args.push(Box::new(k.received_at.clone()));
                args.push(Box::new(k.ticket_id.clone()));
                let params: Vec<String> = (first..first + 5).map(|i| format!("?{i}")).collect();
                sql.push_str(&format!(" AND ({QUEUE_ORDER}) > ({})", params.join(", ")));
            }
            sql.push_str(&format!(" ORDER BY {QUEUE_ORDER} LIMIT {}", filter.limit));
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args.iter().map(|a| a.as_ref())), view_of)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Answered tickets whose answer is older than `before` and that nobody has closed or reopened.
    pub async fn answered_before(&self, before: OffsetDateTime, limit: u32) -> Result<Vec<Uuid>, ProjectionError> {
        self.ids(
            "SELECT ticket_id FROM tickets WHERE status = 'answered' AND answered_at <= ?1 ORDER BY answered_at LIMIT ?2",
            before,
            limit,
        )
        .await
    }

    /// The tickets whose personal data the key `key` encrypts, with whether each is erased and when it last
    /// changed (what erasure and retention decide on; docs/privacy.md).
    pub async fn tickets_of_key(&self, key: Uuid) -> Result<Vec<KeyedTicket>, ProjectionError> {
        self.with(move |c| {
            let mut stmt = c.prepare_cached("SELECT ticket_id, erased, updated_at FROM tickets WHERE citizen_key = ?1")?;
            let rows = stmt.query_map([key.to_string()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?, r.get::<_, String>(2)?)))?;
            let mut tickets = Vec::new();
            for row in rows {
                let (id, erased, updated_at) = row?;
                let id = id.parse().map_err(|e| ProjectionError::Decode(format!("ticket id {id}: {e}")))?;
                let updated_at = OffsetDateTime::parse(&updated_at, &Rfc3339).map_err(|e| ProjectionError::Decode(e.to_string()))?;
                tickets.push(KeyedTicket { id, erased, updated_at });
            }
            Ok(tickets)
        })
        .await
    }

    /// Ended tickets (closed, rejected, duplicate) whose personal data is not erased yet and that last changed
    /// before `before`: in `category`, or, with `None`, in none of `except` (the categories with a retention of
    /// their own). Oldest first.
    pub async fn retention_due(
        &self,
        category: Option<String>,
        except: Vec<String>,
        before: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Uuid>, ProjectionError> {
        let before = before.to_offset(time::UtcOffset::UTC).format(&Rfc3339).map_err(|e| ProjectionError::Decode(e.to_string()))?;
        self.with(move |c| {
            let mut sql = "SELECT ticket_id FROM tickets WHERE erased = 0 AND status IN ('closed','rejected','duplicate') AND updated_at < ?1".to_owned();
            let mut args: Vec<String> = vec![before];
            match category {
                Some(category) => {
                    args.push(category);
                    sql.push_str(" AND category = ?2");
                }
                None if !except.is_empty() => {
                    let marks: Vec<String> = (0..except.len()).map(|i| format!("?{}", i + 2)).collect();
                    sql.push_str(&format!(" AND (category IS NULL OR category NOT IN ({}))", marks.join(",")));
                    args.extend(except);
                }
                None => {}
            }
            sql.push_str(&format!(" ORDER BY updated_at LIMIT {limit}"));
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| r.get::<_, String>(0))?;
            let mut ids = Vec::new();
            for row in rows {
                let id = row?;
                ids.push(id.parse().map_err(|e| ProjectionError::Decode(format!("ticket id {id}: {e}")))?);
            }
            Ok(ids)
        })
        .await
    }

    /// Tickets with a deadline alarm due at `now`: what the scheduler must look at.
    pub async fn due_alarms(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<Uuid>, ProjectionError> {
        self.ids(
            "SELECT ticket_id FROM tickets WHERE next_alarm IS NOT NULL AND next_alarm <= ?1 ORDER BY next_alarm LIMIT ?2",
            now,
            limit,
        )
        .await
    }

    /// Ticket ids from `sql`, which takes a time (as Unix seconds) and a limit.
    async fn ids(&self, sql: &'static str, at: OffsetDateTime, limit: u32) -> Result<Vec<Uuid>, ProjectionError> {
        self.with(move |c| {
            let mut stmt = c.prepare_cached(sql)?;
            let rows = stmt.query_map(params![at.unix_timestamp(), limit], |r| r.get::<_, String>(0))?;
            let mut ids = Vec::new();
            for row in rows {
                if let Ok(id) = row?.parse() {
                    ids.push(id);
                }
            }
            Ok(ids)
        })
        .await
    }
}

/// Which petitions a public listing shows (the Open311 `GET requests`): every filter is optional and they
/// combine with AND. Newest first.
#[derive(Debug, Clone, Default)]
pub struct PetitionQuery {
    /// Only these references (any status, any date).
    pub references: Vec<String>,
    /// Only these categories.
    pub categories: Vec<String>,
    /// Received at or after this instant.
    pub received_from: Option<OffsetDateTime>,
    /// Received at or before this instant.
    pub received_to: Option<OffsetDateTime>,
    /// Some(true): still being worked on ([`hotline_domain::Status::is_open`]); Some(false): the others.
    pub open: Option<bool>,
    pub limit: u32,
    pub offset: u64,
}

/// A ticket with the petition that opened it (its `PetitionReceived`, read from the stored envelope: the
/// location and the channel's reference are there, not in the ticket row).
#[derive(Debug, Clone)]
pub struct PetitionRow {
    pub ticket: TicketView,
    /// None only if the first event is missing or not a petition, which the log never produces.
    pub petition: Option<hotline_domain::event::PetitionReceived>,
}

impl TimelineReader {
    /// Petitions matching `query`, newest first, with their `PetitionReceived`.
    pub async fn petitions(&self, query: PetitionQuery) -> Result<Vec<PetitionRow>, ProjectionError> {
        self.with(move |c| {
            let mut sql = format!(
                "SELECT {TICKET_COLUMNS}, (SELECT envelope FROM timeline tl WHERE tl.ticket_id = tickets.ticket_id \
                 AND tl.seq = 1) FROM tickets WHERE 1 = 1"
            );
            let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
            let mut list = |sql: &mut String, column: &str, values: &[String]| {
                let mut marks = Vec::new();
                for v in values {
                    args.push(Box::new(v.clone()));
                    marks.push(format!("?{}", args.len()));
                }
                sql.push_str(&format!(" AND {column} IN ({})", marks.join(", ")));
            };
            if !query.references.is_empty() {
                list(&mut sql, "reference", &query.references);
            }
            if !query.categories.is_empty() {
                list(&mut sql, "category", &query.categories);
            }
            // julianday() reads RFC 3339 with fractions and offsets, so instants compare as instants (the stored
            // text has fractions of varying length, which would not sort as text).
            for (bound, op) in [(query.received_from, ">="), (query.received_to, "<=")] {
                if let Some(t) = bound {
                    let t = t.format(&Rfc3339).map_err(|e| ProjectionError::Decode(e.to_string()))?;
                    args.push(Box::new(t));
                    sql.push_str(&format!(" AND julianday(received_at) {op} julianday(?{})", args.len()));
                }
            }
            match query.open {
                Some(true) => sql.push_str(&format!(" AND status IN {OPEN}")),
                Some(false) => sql.push_str(&format!(" AND status NOT IN {OPEN}")),
                None => {}
            }
            sql.push_str(&format!(
                " ORDER BY julianday(received_at) DESC, ticket_id DESC LIMIT {} OFFSET {}",
                query.limit, query.offset
            ));
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args.iter().map(|a| a.as_ref())), |r| {
                Ok((view_of(r)?, r.get::<_, Option<String>>(TICKET_COLUMN_COUNT)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (ticket, envelope) = row?;
                let petition = match envelope {
                    Some(json) => {
                        let stored: StoredEnvelope =
                            serde_json::from_str(&json).map_err(|e| ProjectionError::Decode(e.to_string()))?;
                        match Envelope::decode(stored).map_err(|e| ProjectionError::Decode(e.to_string()))?.event {
                            TicketEvent::PetitionReceived(p) => Some(p),
                            _ => None,
                        }
                    }
                    None => None,
                };
                out.push(PetitionRow { ticket, petition });
            }
            Ok(out)
        })
        .await
    }
}

/// Keeps the projection at `path` up to date with the log until `shutdown`. Resumes after the stored position;
/// re-subscribes when the log goes away and comes back.
pub async fn run(store: Arc<dyn EventStore>, path: PathBuf, mut shutdown: Shutdown) -> Result<(), ProjectionError> {
    let writer = Arc::new(Mutex::new(TimelineWriter::open(&path)?));
    tracing::info!(path = %path.display(), "timeline projection started");
    let mut bound = false;
    'subscribe: while !shutdown.is_raised() {
        if !bound {
            match store.log_id().await {
                Ok(log_id) => {
                    let mut w = locked(&writer)?;
                    if w.bind_to_log(&log_id)? {
                        tracing::warn!(%log_id, "the projection was built from another log; rebuilding it from this one");
                    }
                    bound = true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "projection cannot identify the log; retrying in 1 s");
                    tokio::select! {
                        _ = shutdown.wait() => break 'subscribe,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue 'subscribe,
                    }
                }
            }
        }
        let position = {
            let w = locked(&writer)?;
            w.position()?
        };
        let from = if position == 0 { Position::Start } else { Position::From(position + 1) };
        let subscription = tokio::select! {
            _ = shutdown.wait() => break,
            s = store.subscribe(from) => s,
        };
        let mut commits = match subscription {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "projection cannot subscribe; retrying in 1 s");
                tokio::select! {
                    _ = shutdown.wait() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        // `hotline replay` may swap a rebuilt file in at any time: looked at on every batch, and twice a second
        // when the log is quiet, so the new file catches up promptly.
        let mut look = tokio::time::interval(SWAP_CHECK);
        look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Reading and writing overlap: while the blocking pool applies one batch, the commits that arrive meanwhile
        // are read and decoded into the next one, which is applied as soon as the first is done. Under load the
        // batches grow by themselves (fewer, larger transactions) and a catch-up uses both cores. Commits read but
        // not applied are simply read again from the stored position after any restart or resubscription.
        let mut pending: Vec<Commit> = Vec::new();
        let mut applying: Option<tokio::task::JoinHandle<Result<Option<u64>, ProjectionError>>> = None;
        // The subscription failed or ended: apply what was read, then subscribe again.
        let mut ended = false;
        loop {
            tokio::select! {
                _ = shutdown.wait() => {
                    // A batch being written is finished (it cannot be interrupted anyway), the rest left to the log.
                    if let Some(batch) = applying.take() {
                        batch.await.map_err(|e| ProjectionError::Worker(e.to_string()))??;
                    }
                    break 'subscribe;
                }
                _ = look.tick(), if applying.is_none() => {
                    if reopen_if_swapped(&writer, &path)? {
                        bound = false;
                        continue 'subscribe;
                    }
                    locked(&writer)?.finish_erasure(1)?;
                }
                done = async { applying.as_mut().expect("guarded by is_some").await }, if applying.is_some() => {
                    applying = None;
                    let applied = done.map_err(|e| ProjectionError::Worker(e.to_string()))??;
                    if applied.is_none() {
                        // Swapped since the last look: what was read belongs after the old file's position, not
                        // necessarily after the new one's. Dropped; subscribe again from the new file's position.
                        reopen_if_swapped(&writer, &path)?;
                        bound = false;
                        continue 'subscribe;
                    }
                }
                next = commits.next(), if !ended && pending.len() < MAX_BATCH => match next {
                    Some(Ok(commit)) => pending.push(commit),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "projection subscription error; resubscribing");
                        ended = true;
                    }
                    None => ended = true,
                },
            }
            if applying.is_none() {
                if !pending.is_empty() {
                    let batch = std::mem::take(&mut pending);
                    let w = writer.clone();
                    applying = Some(tokio::task::spawn_blocking(move || {
                        let mut w = locked(&w)?;
                        // A swap that lands after this check only means the batch goes to the old file: the new one
                        // gets it from the log when the swap is seen.
                        if w.swapped() { Ok(None) } else { w.apply(&batch).map(Some) }
                    }));
                } else if ended {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    break;
                }
            }
        }
    }
    tracing::info!("timeline projection stopped");
    Ok(())
}

/// How often an idle writer looks for a swapped-in file.
const SWAP_CHECK: Duration = Duration::from_millis(500);

/// Reopens the writer on `path` if it names another file now; true when it did.
fn reopen_if_swapped(writer: &Mutex<TimelineWriter>, path: &Path) -> Result<bool, ProjectionError> {
    let mut w = locked(writer)?;
    if !w.swapped() {
        return Ok(false);
    }
    *w = TimelineWriter::open(path)?;
    tracing::info!(path = %path.display(), position = w.position()?, "a rebuilt projection was swapped in: writing there from its position");
    Ok(true)
}

/// The live writer; a panic while it was held (a poisoned lock) stops the projection with an error.
fn locked(writer: &Mutex<TimelineWriter>) -> Result<std::sync::MutexGuard<'_, TimelineWriter>, ProjectionError> {
    writer.lock().map_err(|_| ProjectionError::Worker("writer lock poisoned".to_owned()))
}
