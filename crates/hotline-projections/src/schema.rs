//! The SQLite schema of the projections, created on open.

use rusqlite::Connection;

/// The schema version. The projections are derived data, so an older file is dropped and rebuilt from the log
/// rather than migrated.
pub const VERSION: i64 = 7;

pub fn open(path: &std::path::Path) -> Result<Connection, crate::ProjectionError> {
    let conn = Connection::open(path)?;
    // First, before any statement: the writer and readers open the file at the same time at start-up (one of
    // them may be creating the schema), and without a busy timeout the other fails at once with "database is
    // locked" instead of waiting its turn.
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > VERSION {
        return Err(crate::ProjectionError::Worker(format!(
            "{} has schema version {found}, newer than this build's {VERSION}: run the newer hotline, or delete the \
             file to rebuild it from the log",
            path.display()
        )));
    }
    if found != 0 && found < VERSION {
        tracing::warn!(path = %path.display(), found, VERSION, "projection schema is older: rebuilding it from the log");
        conn.execute_batch("DROP TABLE IF EXISTS timeline; DROP TABLE IF EXISTS tickets; DROP TABLE IF EXISTS checkpoint;")?;
        for table in crate::stats::TABLES {
            conn.execute_batch(&format!("DROP TABLE IF EXISTS {table};"))?;
        }
    }
    // WAL: readers (the API, other processes) never block the writer. NORMAL sync is enough for derived data:
    // a lost tail is re-applied from the log after the stored position.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Erased personal data must not survive in free pages: SQLite overwrites deleted content with zeros
    // (docs/privacy.md).
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS checkpoint (
            projection TEXT PRIMARY KEY,
            position   INTEGER NOT NULL,
            -- The log the position belongs to (EventStore::log_id): another log's positions mean nothing here.
            log_id     TEXT
        );
        CREATE TABLE IF NOT EXISTS tickets (
            ticket_id   TEXT PRIMARY KEY,
            reference   TEXT NOT NULL UNIQUE,
            status      TEXT NOT NULL,
            channel     TEXT NOT NULL,
            category    TEXT,
            agency      TEXT,
            area        TEXT,
            emergency   INTEGER NOT NULL DEFAULT 0,
            confidence  REAL,
            subject     TEXT,
            text        TEXT NOT NULL,
            received_at TEXT NOT NULL,
            updated_at  TEXT NOT NULL,
            last_seq    INTEGER NOT NULL,
            answer      TEXT,
            duplicate_of TEXT,
            bounces     INTEGER NOT NULL DEFAULT 0,
            -- Where a ticket waiting for the citizen goes back to.
            resume_status TEXT,
            -- hotline_domain::deadline::DeadlineState as JSON, folded from the events.
            deadlines   TEXT,
            acknowledge_by TEXT,
            resolve_by  TEXT,
            escalated   INTEGER NOT NULL DEFAULT 0,
            -- Unix seconds: when the scheduler must look at the ticket again, and the deadline that orders queues.
            next_alarm  INTEGER,
            due_at      INTEGER,
            -- Unix seconds of the last answer while the ticket stays answered (closing after silence).
            answered_at INTEGER,
            -- The citizen's feedback: 1 satisfied, 0 not, NULL none yet.
            satisfied   INTEGER,
            -- 1 while an operator owes a phone caller a call-back (their number cannot take the SMS reply).
            callback_due INTEGER NOT NULL DEFAULT 0,
            -- The key the log encrypts the ticket's personal data with (docs/privacy.md), and whether it is erased.
            citizen_key TEXT,
            erased      INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX IF NOT EXISTS tickets_by_key ON tickets (citizen_key) WHERE citizen_key IS NOT NULL;
        CREATE INDEX IF NOT EXISTS tickets_callback ON tickets (callback_due) WHERE callback_due = 1;
        CREATE INDEX IF NOT EXISTS tickets_answered ON tickets (answered_at) WHERE answered_at IS NOT NULL;
        CREATE INDEX IF NOT EXISTS tickets_by_alarm ON tickets (next_alarm) WHERE next_alarm IS NOT NULL;
        CREATE INDEX IF NOT EXISTS tickets_by_agency ON tickets (agency, status);
        CREATE TABLE IF NOT EXISTS timeline (
            ticket_id  TEXT NOT NULL,
            seq        INTEGER NOT NULL,
            position   INTEGER NOT NULL,
            event_id   TEXT NOT NULL UNIQUE,
            event_type TEXT NOT NULL,
            at         TEXT NOT NULL,
            actor_kind TEXT NOT NULL,
            actor_id   TEXT NOT NULL,
            envelope   TEXT NOT NULL,
            PRIMARY KEY (ticket_id, seq)
        );",
    )?;
    conn.execute_batch(crate::stats::SCHEMA)?;
    conn.pragma_update(None, "user_version", VERSION)?;
    Ok(conn)
}
