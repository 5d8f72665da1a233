//! The statistics projection: per-ticket and per-agency counters kept current event by event, summed on demand
//! for `GET /v1/stats`, and the open tickets' coordinates for the operations centre's map.
//!
//! Design (an "accumulating snapshot" fact table): `stats_tickets` holds one row per ticket with the dimensions
//! a statistic is cut by (received time, channel, current category, agency and area) and what the counters need
//! to know about the ticket's present (its running deadlines, whether it is open, who answered last);
//! `stats_work` holds, per ticket and per agency, what that agency did on it (acknowledgements and answers, on
//! time or not, the citizen's feedback on its answers, the times it sent the ticket back). Both are updated by
//! each event inside the timeline writer's transaction, so they share its log position, are rebuilt with it, and
//! never see an event twice. A query sums the rows of the tickets received in the asked range: a ticket's numbers
//! all count on the day it was received (a cohort), so a day's figures can still grow while its tickets are
//! worked on, and a recount from the log gives the same figures.
//!
//! Performance numbers belong to the agency that did the work (an acknowledgement counts for the agency that
//! acknowledged, even if the ticket moved on since); ticket counts belong to the ticket's current agency.

use hotline_domain::{Envelope, TicketEvent};
use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, UtcOffset};

use crate::timeline::exec;
use crate::{ProjectionError, TimelineReader};

/// The tables, created by `schema::open`.
pub(crate) const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS stats_tickets (
        ticket_id   TEXT PRIMARY KEY,
        -- Unix seconds: the day is computed at query time with the province calendar's offset.
        received_at INTEGER NOT NULL,
        channel     TEXT NOT NULL,
        category    TEXT,
        agency      TEXT,
        area        TEXT,
        open        INTEGER NOT NULL DEFAULT 1,
        -- Where the petition says it is (PetitionReceived's location), for the map.
        lat         REAL,
        lon         REAL,
        -- Unix seconds of the deadlines now running for the current agency (NULL: none applies).
        acknowledge_by INTEGER,
        resolve_by  INTEGER,
        -- Since when the ticket waits for the citizen: the deadlines' clock stopped there.
        paused_at   INTEGER,
        -- The agency that gave the last answer: the citizen's feedback is about its work.
        answered_by TEXT
    );
    CREATE INDEX IF NOT EXISTS stats_tickets_received ON stats_tickets (received_at);
    CREATE TABLE IF NOT EXISTS stats_work (
        ticket_id TEXT NOT NULL,
        agency    TEXT NOT NULL,
        acknowledged         INTEGER NOT NULL DEFAULT 0,
        acknowledged_due     INTEGER NOT NULL DEFAULT 0,
        acknowledged_on_time INTEGER NOT NULL DEFAULT 0,
        answered             INTEGER NOT NULL DEFAULT 0,
        answered_due         INTEGER NOT NULL DEFAULT 0,
        answered_on_time     INTEGER NOT NULL DEFAULT 0,
        feedback             INTEGER NOT NULL DEFAULT 0,
        satisfied            INTEGER NOT NULL DEFAULT 0,
        reopened             INTEGER NOT NULL DEFAULT 0,
        bounces              INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (ticket_id, agency)
    );";

/// The tables, for dropping an older schema.
pub(crate) const TABLES: [&str; 2] = ["stats_tickets", "stats_work"];

/// Empties the tables (the projection is rebuilt from another log).
pub(crate) fn clear(tx: &Transaction<'_>) -> Result<(), ProjectionError> {
    tx.execute_batch("DELETE FROM stats_tickets; DELETE FROM stats_work;")?;
    Ok(())
}

/// Folds one event into the counters. Called by the timeline writer for every event it applies, in its
/// transaction.
pub(crate) fn apply_event(tx: &Transaction<'_>, e: &Envelope) -> Result<(), ProjectionError> {
    let ticket = e.ticket_id.to_string();
    let at = e.occurred_at.unix_timestamp();
    match &e.event {
        TicketEvent::PetitionReceived(p) => {
            let point = p.location.as_ref().and_then(|l| match (l.lat, l.lon) {
                (Some(lat), Some(lon)) if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) => {
                    Some((lat, lon))
                }
                _ => None,
            });
            exec(tx, 
                "INSERT INTO stats_tickets (ticket_id, received_at, channel, category, area, lat, lon)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    ticket,
                    at,
                    p.channel,
                    p.category,
                    p.location.as_ref().and_then(|l| l.area.clone()),
                    point.map(|p| p.0),
                    point.map(|p| p.1)
                ],
            )?;
        }
        TicketEvent::PetitionCategorized(c) => {
            exec(tx, 
                "UPDATE stats_tickets SET category = ?2, area = COALESCE(?3, area) WHERE ticket_id = ?1",
                params![ticket, c.category, c.area],
            )?;
        }
        TicketEvent::PetitionRecategorized(r) => {
            exec(tx, 
                "UPDATE stats_tickets SET category = ?2, area = COALESCE(?3, area) WHERE ticket_id = ?1",
                params![ticket, r.category, r.area],
            )?;
        }
        // A routing (first, again after a transfer, or a reopening) gives the agency fresh deadlines.
        TicketEvent::PetitionRouted(r) => {
            exec(tx, 
                "UPDATE stats_tickets SET agency = ?2, area = COALESCE(?3, area), open = 1, acknowledge_by = ?4,
                                          resolve_by = ?5, paused_at = NULL WHERE ticket_id = ?1",
                params![
                    ticket,
                    r.agency,
                    r.area,
                    r.acknowledge_by.map(OffsetDateTime::unix_timestamp),
                    r.resolve_by.map(OffsetDateTime::unix_timestamp)
                ],
            )?;
        }
        // The desk has no deadline of its own.
        TicketEvent::PetitionNeedsTriage(t) => {
            exec(tx, 
                "UPDATE stats_tickets SET agency = ?2, area = COALESCE(?3, area), acknowledge_by = NULL,
                                          resolve_by = NULL, paused_at = NULL WHERE ticket_id = ?1",
                params![ticket, t.agency, t.area],
            )?;
        }
        TicketEvent::PetitionAcknowledged(a) => {
            let due: Option<Option<i64>> =
                tx.prepare_cached("SELECT acknowledge_by FROM stats_tickets WHERE ticket_id = ?1")?.query_row([&ticket], |r| r.get(0)).optional()?;
            let due = due.flatten();
            work(tx, &ticket, &a.agency, "acknowledged = acknowledged + 1")?;
            if let Some(due) = due {
                let on_time = if at <= due { ", acknowledged_on_time = acknowledged_on_time + 1" } else { "" };
                work(tx, &ticket, &a.agency, &format!("acknowledged_due = acknowledged_due + 1{on_time}"))?;
            }
            // Acknowledged: that deadline is behind it.
            exec(tx, "UPDATE stats_tickets SET acknowledge_by = NULL WHERE ticket_id = ?1", [&ticket])?;
        }
        TicketEvent::InformationRequested(_) => {
            exec(tx, "UPDATE stats_tickets SET paused_at = ?2 WHERE ticket_id = ?1", params![ticket, at])?;
        }
        // The reply carries the deadlines moved by the pause (as `DeadlineState` folds them).
        TicketEvent::CitizenReplied(c) => {
            exec(tx, 
                "UPDATE stats_tickets SET paused_at = NULL,
                        acknowledge_by = CASE WHEN acknowledge_by IS NULL THEN NULL ELSE COALESCE(?2, acknowledge_by) END,
                        resolve_by = CASE WHEN resolve_by IS NULL THEN NULL ELSE COALESCE(?3, resolve_by) END
                 WHERE ticket_id = ?1",
                params![ticket, c.acknowledge_by.map(OffsetDateTime::unix_timestamp), c.resolve_by.map(OffsetDateTime::unix_timestamp)],
            )?;
        }
        TicketEvent::DeadlineExtended(d) => {
            exec(tx, 
                "UPDATE stats_tickets SET resolve_by = ?2 WHERE ticket_id = ?1",
                params![ticket, d.resolve_by.unix_timestamp()],
            )?;
        }
        TicketEvent::PetitionTransferred(t) => {
            work(tx, &ticket, &t.from_agency, "bounces = bounces + 1")?;
            exec(tx, 
                "UPDATE stats_tickets SET acknowledge_by = NULL, resolve_by = NULL, paused_at = NULL WHERE ticket_id = ?1",
                [&ticket],
            )?;
        }
        TicketEvent::PetitionAnswered(a) => {
            let row: Option<(Option<i64>, Option<i64>)> = tx
                .prepare_cached("SELECT resolve_by, paused_at FROM stats_tickets WHERE ticket_id = ?1")?
                .query_row([&ticket], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            let (due, paused_at) = row.unwrap_or((None, None));
            work(tx, &ticket, &a.agency, "answered = answered + 1")?;
            if let Some(due) = due {
                // An answer given while waiting for the citizen is judged at the moment the clock stopped.
                let judged_at = paused_at.unwrap_or(at);
                let on_time = if judged_at <= due { ", answered_on_time = answered_on_time + 1" } else { "" };
                work(tx, &ticket, &a.agency, &format!("answered_due = answered_due + 1{on_time}"))?;
            }
            exec(tx, 
                "UPDATE stats_tickets SET open = 0, answered_by = ?2, acknowledge_by = NULL, resolve_by = NULL,
                                          paused_at = NULL WHERE ticket_id = ?1",
                params![ticket, a.agency],
            )?;
        }
        TicketEvent::FeedbackGiven(f) => {
            let by: Option<Option<String>> =
                tx.prepare_cached("SELECT answered_by FROM stats_tickets WHERE ticket_id = ?1")?.query_row([&ticket], |r| r.get(0)).optional()?;
            if let Some(agency) = by.flatten() {
                let counters = if f.satisfied {
                    "feedback = feedback + 1, satisfied = satisfied + 1"
                } else {
                    "feedback = feedback + 1, reopened = reopened + 1"
                };
                work(tx, &ticket, &agency, counters)?;
            }
        }
        TicketEvent::PetitionRejected(_) | TicketEvent::TicketClosed(_) | TicketEvent::MarkedDuplicate(_) => {
            exec(tx, 
                "UPDATE stats_tickets SET open = 0, acknowledge_by = NULL, resolve_by = NULL, paused_at = NULL
                 WHERE ticket_id = ?1",
                [&ticket],
            )?;
        }
        TicketEvent::CitizenWrote(_)
        | TicketEvent::DeadlineApproaching(_)
        | TicketEvent::DeadlineMissed(_)
        | TicketEvent::ReplySent(_)
        | TicketEvent::ReplyFailed(_)
        | TicketEvent::CallLogged(_)
        | TicketEvent::CallbackDone(_)
        | TicketEvent::PersonalDataErased(_)
        | TicketEvent::DuplicateLinked(_) => {}
    }
    Ok(())
}

/// Adds to an agency's counters on a ticket. `set` is one of the literal assignments above, never input.
fn work(tx: &Transaction<'_>, ticket: &str, agency: &str, set: &str) -> Result<(), ProjectionError> {
    exec(tx, "INSERT INTO stats_work (ticket_id, agency) VALUES (?1, ?2) ON CONFLICT DO NOTHING", params![ticket, agency])?;
    exec(tx, &format!("UPDATE stats_work SET {set} WHERE ticket_id = ?1 AND agency = ?2"), params![ticket, agency])?;
    Ok(())
}

/// Which tickets a statistic covers. Every filter is optional; they combine with AND.
#[derive(Debug, Clone)]
pub struct StatsFilter {
    /// First and last day (inclusive) of reception, in the province's local time.
    pub from: Option<Date>,
    pub to: Option<Date>,
    pub category: Option<String>,
    /// Ticket counts: tickets now assigned to this agency; performance: what this agency did.
    pub agency: Option<String>,
    pub channel: Option<String>,
    pub area: Option<String>,
    /// The province calendar's offset: days start at local midnight.
    pub utc_offset: UtcOffset,
}

/// Sums over a set of tickets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Tickets received.
    pub received: u64,
    /// Of them, still open.
    pub open: u64,
    /// Acknowledgements given; of them, with an acknowledgement deadline running; of those, before it.
    pub acknowledged: u64,
    pub acknowledged_due: u64,
    pub acknowledged_on_time: u64,
    /// Answers given; of them, with a resolution deadline running; of those, before it.
    pub answered: u64,
    pub answered_due: u64,
    pub answered_on_time: u64,
    /// Citizens' feedback on answers; satisfied; not satisfied (which reopens the ticket).
    pub feedback: u64,
    pub satisfied: u64,
    pub reopened: u64,
    /// Times an agency sent a ticket back (counted for the agency that sent it).
    pub bounces: u64,
}

/// The ratios of [`Counts`]; None when there is nothing to divide by.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rates {
    /// acknowledged_on_time / acknowledged_due.
    pub acknowledged_on_time: Option<f64>,
    /// answered_on_time / answered_due.
    pub answered_on_time: Option<f64>,
    /// reopened / answered.
    pub reopen: Option<f64>,
    /// satisfied / feedback.
    pub satisfaction: Option<f64>,
}

impl Counts {
    pub fn rates(&self) -> Rates {
        let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
        Rates {
            acknowledged_on_time: ratio(self.acknowledged_on_time, self.acknowledged_due),
            answered_on_time: ratio(self.answered_on_time, self.answered_due),
            reopen: ratio(self.reopened, self.answered),
            satisfaction: ratio(self.satisfied, self.feedback),
        }
    }
}

/// One line of a breakdown: the value of the dimension (None: not known yet, e.g. no agency before routing).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breakdown {
    pub key: Option<String>,
    #[serde(flatten)]
    pub counts: Counts,
    pub rates: Rates,
}

/// Totals and breakdowns of the tickets a [`StatsFilter`] selects.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub totals: Counts,
    pub rates: Rates,
    pub by_category: Vec<Breakdown>,
    pub by_agency: Vec<Breakdown>,
    pub by_channel: Vec<Breakdown>,
    pub by_area: Vec<Breakdown>,
    /// Local days of reception (YYYY-MM-DD), ascending.
    pub by_day: Vec<Breakdown>,
}

/// An open ticket with coordinates, as the map shows it: nothing about the citizen.
#[derive(Debug, Clone, PartialEq)]
pub struct MapTicket {
    pub reference: String,
    pub category: Option<String>,
    pub agency: Option<String>,
    pub area: Option<String>,
    pub status: String,
    pub emergency: bool,
    pub received_at: String,
    /// The deadline now running (RFC 3339), if any.
    pub deadline: Option<String>,
    /// The petition's own coordinates, if it gave some.
    pub point: Option<(f64, f64)>,
}

/// What a breakdown groups by: the SQL of the key over `stats_tickets t` (and `stats_work w` for the work part).
#[derive(Clone, Copy)]
enum Dimension {
    Total,
    Category,
    Agency,
    Channel,
    Area,
    Day,
}

impl Dimension {
    fn ticket_key(self, offset: i64) -> String {
        match self {
            Dimension::Total => "NULL".to_owned(),
            Dimension::Category => "t.category".to_owned(),
            Dimension::Agency => "t.agency".to_owned(),
            Dimension::Channel => "t.channel".to_owned(),
            Dimension::Area => "t.area".to_owned(),
            Dimension::Day => format!("date(t.received_at + {offset}, 'unixepoch')"),
        }
    }

    fn work_key(self, offset: i64) -> String {
        match self {
            Dimension::Agency => "w.agency".to_owned(),
            other => other.ticket_key(offset),
        }
    }
}

impl TimelineReader {
    /// Totals and breakdowns by category, agency, channel, area and day of the tickets `filter` selects.
    pub async fn stats(&self, filter: StatsFilter) -> Result<Stats, ProjectionError> {
        self.with(move |c| {
            let mut grouped = Vec::new();
            for d in [Dimension::Total, Dimension::Category, Dimension::Agency, Dimension::Channel, Dimension::Area, Dimension::Day] {
                grouped.push(breakdown(c, &filter, d)?);
            }
            let mut grouped = grouped.into_iter();
            let totals = grouped.next().and_then(|t| t.into_iter().next()).map(|b| b.counts).unwrap_or_default();
            let mut next = || grouped.next().unwrap_or_default();
            Ok(Stats {
                rates: totals.rates(),
                totals,
                by_category: next(),
                by_agency: next(),
                by_channel: next(),
                by_area: next(),
                by_day: next(),
            })
        })
        .await
    }

    /// Open tickets that have a place: their own coordinates, or an area (the caller may place those at the
    /// area's centre). `agency`: only that agency's tickets.
    pub async fn map_tickets(&self, agency: Option<String>) -> Result<Vec<MapTicket>, ProjectionError> {
        self.with(move |c| {
            let mut sql = format!(
                "SELECT t.reference, t.category, t.agency, t.area, t.status, t.emergency, t.received_at, t.due_at,
                        s.lat, s.lon
                 FROM tickets t JOIN stats_tickets s ON s.ticket_id = t.ticket_id
                 WHERE t.status IN {} AND ((s.lat IS NOT NULL AND s.lon IS NOT NULL) OR t.area IS NOT NULL)",
                crate::timeline::OPEN
            );
            if agency.is_some() {
                sql.push_str(" AND t.agency = ?1");
            }
            sql.push_str(" ORDER BY t.received_at, t.ticket_id");
            let mut stmt = c.prepare(&sql)?;
            let args: Vec<&dyn rusqlite::ToSql> = agency.iter().map(|a| a as &dyn rusqlite::ToSql).collect();
            let rows = stmt.query_map(args.as_slice(), |r| {
                let due: Option<i64> = r.get(7)?;
                let lat: Option<f64> = r.get(8)?;
                let lon: Option<f64> = r.get(9)?;
                Ok(MapTicket {
                    reference: r.get(0)?,
                    category: r.get(1)?,
                    agency: r.get(2)?,
                    area: r.get(3)?,
                    status: r.get(4)?,
                    emergency: r.get(5)?,
                    received_at: r.get(6)?,
                    deadline: due
                        .and_then(|d| OffsetDateTime::from_unix_timestamp(d).ok())
                        .and_then(|d| d.format(&Rfc3339).ok()),
                    point: lat.zip(lon),
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

/// One breakdown: ticket counts by the ticket's dimension, work counters by the dimension (for agencies, the
/// agency that did the work), merged by key.
fn breakdown(c: &rusqlite::Connection, f: &StatsFilter, d: Dimension) -> Result<Vec<Breakdown>, ProjectionError> {
    let offset = i64::from(f.utc_offset.whole_seconds());
    let local_midnight = |day: Date| day.midnight().assume_offset(f.utc_offset).unix_timestamp();
    let mut conditions: Vec<String> = Vec::new();
    let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
    if let Some(from) = f.from {
        args.push(Box::new(local_midnight(from)));
        conditions.push(format!("t.received_at >= ?{}", args.len()));
    }
    if let Some(to) = f.to {
        // Up to the end of the last day: before the next local midnight.
        let end = to.next_day().map_or(i64::MAX, local_midnight);
        args.push(Box::new(end));
        conditions.push(format!("t.received_at < ?{}", args.len()));
    }
    for (column, value) in [("t.category", &f.category), ("t.channel", &f.channel), ("t.area", &f.area)] {
        if let Some(v) = value {
            args.push(Box::new(v.clone()));
            conditions.push(format!("{column} = ?{}", args.len()));
        }
    }
    let (mut ticket_conditions, mut work_conditions) = (conditions.clone(), conditions);
    if let Some(agency) = &f.agency {
        args.push(Box::new(agency.clone()));
        ticket_conditions.push(format!("t.agency = ?{}", args.len()));
        work_conditions.push(format!("w.agency = ?{}", args.len()));
    }
    let clause = |conditions: &[String]| if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
    let arg_refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|a| a.as_ref()).collect();

    let mut lines: std::collections::BTreeMap<Option<String>, Counts> = std::collections::BTreeMap::new();
    let sql = format!(
        "SELECT {} AS k, COUNT(*), COALESCE(SUM(t.open), 0) FROM stats_tickets t {} GROUP BY k",
        d.ticket_key(offset),
        clause(&ticket_conditions)
    );
    let mut stmt = c.prepare(&sql)?;
    let mut rows = stmt.query(arg_refs.as_slice())?;
    while let Some(r) = rows.next()? {
        let counts = lines.entry(r.get(0)?).or_default();
        counts.received = r.get::<_, i64>(1)? as u64;
        counts.open = r.get::<_, i64>(2)? as u64;
    }
    let sql = format!(
        "SELECT {} AS k, SUM(w.acknowledged), SUM(w.acknowledged_due), SUM(w.acknowledged_on_time), SUM(w.answered),
                SUM(w.answered_due), SUM(w.answered_on_time), SUM(w.feedback), SUM(w.satisfied), SUM(w.reopened),
                SUM(w.bounces)
         FROM stats_work w JOIN stats_tickets t ON t.ticket_id = w.ticket_id {} GROUP BY k",
        d.work_key(offset),
        clause(&work_conditions)
    );
    let mut stmt = c.prepare(&sql)?;
    let mut rows = stmt.query(arg_refs.as_slice())?;
    while let Some(r) = rows.next()? {
        let counts = lines.entry(r.get(0)?).or_default();
        let n = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, Option<i64>>(i)?.unwrap_or(0) as u64) };
        counts.acknowledged = n(1)?;
        counts.acknowledged_due = n(2)?;
        counts.acknowledged_on_time = n(3)?;
        counts.answered = n(4)?;
        counts.answered_due = n(5)?;
        counts.answered_on_time = n(6)?;
        counts.feedback = n(7)?;
        counts.satisfied = n(8)?;
        counts.reopened = n(9)?;
        counts.bounces = n(10)?;
    }
    Ok(lines.into_iter().map(|(key, counts)| Breakdown { key, rates: counts.rates(), counts }).collect())
}
