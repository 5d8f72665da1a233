//! Admin and auditor commands against the running system's log (docs/audit.md): `hotline replay` (rebuild the
//! projections and swap them in), `hotline ticket <ref> --as-of` (time travel), `hotline audit export` and
//! `hotline audit verify` (tamper evidence).

use std::collections::HashMap;
use std::io::Write;
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use futures_util::StreamExt;
use hotline_domain::{Envelope, Reference, Ticket};
use hotline_store::{EventStore, Position};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, UtcOffset};
use uuid::Uuid;

use crate::settings::Settings;
use crate::system::{PROJECTIONS_FILE, load_province, running_store};

/// `hotline replay`: rebuilds the projections from the whole log into `<data dir>/projections.sqlite.rebuild`
/// with the live writer's code, reporting progress on stderr, then swaps the result in atomically. The running
/// system keeps serving and moves to the new file by itself.
pub async fn replay(settings: Settings) -> anyhow::Result<()> {
    let store = running_store(&settings).await?;
    let live = settings.data_dir.join(PROJECTIONS_FILE);
    let rebuilt = settings.data_dir.join(format!("{PROJECTIONS_FILE}.rebuild"));
    let started = Instant::now();
    let mut shown = Instant::now();
    let rate = |events: u64| events as f64 / started.elapsed().as_secs_f64().max(0.001);
    let reached = hotline_projections::replay::rebuild(&store, &rebuilt, |p| {
        if shown.elapsed().as_millis() >= 500 || p.position >= p.target {
            shown = Instant::now();
            eprintln!("replay: {} events, log position {}/{}, {:.0} events/s", p.events, p.position, p.target, rate(p.events));
        }
    })
    .await
    .with_context(|| format!("rebuilding into {}", rebuilt.display()))?;
    let generation = hotline_projections::replay::install(&rebuilt, &live)?;
    eprintln!(
        "replay: rebuilt up to log position {reached} in {:.1} s; {} now names {}",
        started.elapsed().as_secs_f64(),
        live.display(),
        generation.display()
    );
    Ok(())
}

/// `hotline ticket <ticket> [--as-of <RFC 3339>]`: the ticket as it stood then, read from the log itself.
pub async fn ticket(settings: Settings, key: &str, as_of: Option<&str>, json: bool) -> anyhow::Result<Vec<String>> {
    let as_of = match as_of {
        Some(text) => hotline_api::as_of::parse_instant(text)
            .ok_or_else(|| anyhow!("--as-of must be an RFC 3339 instant with an offset, like 2026-11-28T09:30:00+07:00, not `{text}`"))?,
        None => OffsetDateTime::now_utc(),
    };
    let store = running_store(&settings).await?;
    let id = match key.parse::<Uuid>() {
        Ok(id) => id,
        Err(_) => {
            let reference = Reference::parse(key).map_err(|e| anyhow!("`{key}` is neither a ticket id nor a reference: {e}"))?;
            store.resolve_reference(&reference).await?.ok_or_else(|| anyhow!("no ticket {key}"))?
        }
    };
    let history = store.load(id).await?;
    if history.events.is_empty() {
        bail!("no ticket {key}");
    }
    let reference = reference_of(&history.events).unwrap_or_default();
    let (events, state) = hotline_api::as_of::state_at(&history.events, as_of);
    let at = as_of.format(&Rfc3339)?;
    if json {
        let entries: Vec<serde_json::Value> = events
            .iter()
            .map(|e| {
                serde_json::json!({
                    "seq": e.seq, "at": e.occurred_at.format(&Rfc3339).unwrap_or_default(), "type": e.event_type(),
                    "actor": e.actor, "event_id": e.event_id,
                })
            })
            .collect();
        let body = serde_json::json!({ "ticket_id": id, "reference": reference, "as_of": at, "state": state, "entries": entries });
        return Ok(vec![serde_json::to_string_pretty(&body)?]);
    }
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    let mut lines = vec![
        format!("ticket {reference} ({id}) as of {at}"),
        format!("status:         {}", state.status),
        format!("category:       {}", or_dash(&state.category)),
        format!("agency:         {}", or_dash(&state.agency)),
        format!("area:           {}", or_dash(&state.area)),
        format!("emergency:      {}", if state.emergency { "yes" } else { "no" }),
        format!("acknowledge by: {}", or_dash(&state.acknowledge_by)),
        format!("resolve by:     {}", or_dash(&state.resolve_by)),
        format!("events ({} of {}):", events.len(), history.events.len()),
    ];
    for e in events {
        let by = e.actor.name.clone().unwrap_or_else(|| e.actor.id.clone());
        lines.push(format!("  {:>3}  {}  {:<24} by {} {}", e.seq, e.occurred_at.format(&Rfc3339)?, e.event_type(), kind(e), by));
    }
    Ok(lines)
}

fn reference_of(events: &[Envelope]) -> Option<String> {
    Ticket::from_history(events.iter().take(1)).reference.map(|r| r.as_str().to_owned())
}

fn kind(e: &Envelope) -> String {
    serde_json::to_value(e.actor.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The export's output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
}

/// What `hotline audit export` exports.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// RFC 3339, or a date (midnight in the province's time zone).
    pub from: String,
    /// Exclusive; a date means the end of that day.
    pub to: String,
    pub agency: Option<String>,
    pub category: Option<String>,
    pub format: Format,
}

/// Most tickets whose reference, category and agency the export keeps at once. Past it the table is emptied and
/// tickets met again are folded anew from their own history: memory stays bounded whatever the range.
const MAX_TICKETS: usize = 50_000;

/// The CSV columns, also the JSON keys.
const COLUMNS: [&str; 14] = [
    "position", "event_id", "ticket_id", "reference", "seq", "type", "occurred_at", "actor_kind", "actor_id", "actor_name",
    "agency", "category", "stored_at", "hash",
];

/// What the export keeps per ticket: its reference and, at the last event seen, its category and agency.
#[derive(Default, Clone)]
struct Known {
    reference: Option<String>,
    category: Option<String>,
    agency: Option<String>,
}

impl Known {
    /// Folds one more event with the domain's own `Ticket::apply`, starting from the little that is kept (the
    /// category and agency an event sets do not depend on anything else of the ticket).
    fn apply(&mut self, e: &Envelope) {
        let mut t = Ticket { category: self.category.take(), agency: self.agency.take(), ..Ticket::default() };
        t.apply(e);
        if let Some(r) = t.reference {
            self.reference = Some(r.as_str().to_owned());
        }
        self.category = t.category;
        self.agency = t.agency;
    }
}

/// `hotline audit export`: streams the events the log stored in `[from, to)` to `out`, one line per event, as they
/// are read (never collected). Returns how many lines were written.
pub async fn export(settings: Settings, options: ExportOptions, out: &mut dyn Write) -> anyhow::Result<u64> {
    let offset = load_province(&settings)?.calendar.utc_offset;
    let from = parse_bound(&options.from, offset, false).context("--from")?;
    let to = parse_bound(&options.to, offset, true).context("--to")?;
    if to <= from {
        bail!("--to must be after --from");
    }
    let store = running_store(&settings).await?;
    export_from(&store, from, to, &options, out).await
}

/// The export itself, on any store.
pub async fn export_from(
    store: &dyn EventStore,
    from: OffsetDateTime,
    to: OffsetDateTime,
    options: &ExportOptions,
    out: &mut dyn Write,
) -> anyhow::Result<u64> {
    // Where the log ends now: commits stored later are outside any range that has already ended, and one that
    // has not ended stops here instead of waiting for the future.
    let end = store.last_position().await?;
    let mut known: HashMap<Uuid, Known> = HashMap::new();
    let mut written = 0u64;
    if options.format == Format::Csv {
        write!(out, "{}\r\n", COLUMNS.join(","))?;
    }
    if end > 0 {
        let mut commits = store.subscribe(Position::Time(from)).await?;
        loop {
            // The log delivers what it holds at once; two quiet seconds mean nothing more is stored after `from`.
            let commit = match tokio::time::timeout(std::time::Duration::from_secs(2), commits.next()).await {
                Ok(Some(c)) => c?,
                Ok(None) | Err(_) => break,
            };
            if commit.position > end || commit.stored_at >= to {
                break;
            }
            for (i, e) in commit.events.iter().enumerate() {
                let entry = match known.get_mut(&e.ticket_id) {
                    Some(k) => k,
                    None => {
                        if known.len() >= MAX_TICKETS {
                            known.clear();
                        }
                        let mut k = Known::default();
                        if e.seq > 1 {
                            // Its earlier events are before the range (or were forgotten): fold them from its history.
                            for earlier in store.load(e.ticket_id).await?.events.iter().filter(|h| h.seq < e.seq) {
                                k.apply(earlier);
                            }
                        }
                        known.entry(e.ticket_id).or_insert(k)
                    }
                };
                entry.apply(e);
                if options.agency.as_ref().is_some_and(|a| entry.agency.as_ref() != Some(a))
                    || options.category.as_ref().is_some_and(|c| entry.category.as_ref() != Some(c))
                {
                    continue;
                }
                let hash = commit.hashes.get(i).map(String::as_str).unwrap_or_default();
                let line = line(commit.position, commit.stored_at, e, entry, hash)?;
                match options.format {
                    Format::Jsonl => {
                        let object: serde_json::Map<String, serde_json::Value> =
                            COLUMNS.iter().map(|c| c.to_string()).zip(line).collect();
                        serde_json::to_writer(&mut *out, &object)?;
                        out.write_all(b"\n")?;
                    }
                    Format::Csv => {
                        let fields: Vec<String> = line.iter().map(csv_field).collect();
                        write!(out, "{}\r\n", fields.join(","))?;
                    }
                }
                written += 1;
            }
            if commit.position >= end {
                break;
            }
        }
    }
    out.flush()?;
    Ok(written)
}

/// `hotline audit verify`: reads the whole log and every checkpoint, checks each ticket's hash chain and each
/// checkpoint's Merkle root, shows progress on stderr and returns what it found (the caller prints it and exits
/// non-zero on a problem).
pub async fn verify(settings: Settings) -> anyhow::Result<hotline_store::audit::Report> {
    let store = running_store(&settings).await?;
    verify_store(&store).await
}

/// The verification itself, on a store, with a progress bar.
pub async fn verify_store(store: &hotline_store::JetStreamStore) -> anyhow::Result<hotline_store::audit::Report> {
    let mut progress: Option<Progress> = None;
    let report = store
        .verify(|position, end| progress.get_or_insert_with(|| Progress::new(end)).show(position, position >= end))
        .await?;
    if progress.is_none() {
        Progress::new(0).show(0, true);
    }
    Ok(report)
}

/// A progress bar on stderr: redrawn in place on a terminal, a line every few seconds otherwise (a log file).
struct Progress {
    end: u64,
    started: Instant,
    shown: Instant,
    terminal: bool,
}

impl Progress {
    fn new(end: u64) -> Progress {
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        Progress { end, started: Instant::now(), shown: Instant::now(), terminal }
    }

    fn show(&mut self, position: u64, last: bool) {
        let every = if self.terminal { 100 } else { 2_000 };
        if !last && self.shown.elapsed().as_millis() < every {
            return;
        }
        self.shown = Instant::now();
        let done = if self.end == 0 { 1.0 } else { position.min(self.end) as f64 / self.end as f64 };
        let filled = (done * 30.0).round() as usize;
        let rate = position as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        let bar = format!("[{}{}] {:>3.0}% position {position}/{}, {rate:.0} commits/s", "#".repeat(filled), " ".repeat(30 - filled), done * 100.0, self.end);
        if self.terminal {
            eprint!("\r{bar}");
            if last {
                eprintln!();
            }
        } else {
            eprintln!("verify: {bar}");
        }
    }
}

/// The lines `hotline audit verify` prints for its report.
pub fn verify_summary(report: &hotline_store::audit::Report) -> Vec<String> {
    let mut lines = vec![format!(
        "{} events in {} commits of {} tickets; {} checkpoints hold; {} events since the last checkpoint",
        report.events, report.commits, report.tickets, report.checkpoints_ok, report.unanchored_events
    )];
    if let Some(c) = &report.last_checkpoint {
        lines.push(format!("last checkpoint: positions {}..={}, {} events, root {} at {}", c.from, c.to, c.events, c.root, c.at.format(&Rfc3339).unwrap_or_default()));
    }
    match report.first_problem() {
        None => lines.push("OK: every ticket's hash chain and every checkpoint hold".to_owned()),
        Some(first) => {
            lines.push(format!("BROKEN: {} problems", report.problems.len()));
            for p in report.problems.iter().take(20) {
                lines.push(format!("  {p}"));
            }
            lines.push(format!("first bad event: {first}"));
        }
    }
    lines
}

/// One event's values, in [`COLUMNS`] order.
fn line(position: u64, stored_at: OffsetDateTime, e: &Envelope, k: &Known, hash: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let text = |v: &Option<String>| v.clone().map_or(serde_json::Value::Null, serde_json::Value::String);
    Ok(vec![
        position.into(),
        e.event_id.to_string().into(),
        e.ticket_id.to_string().into(),
        text(&k.reference),
        e.seq.into(),
        e.event_type().into(),
        e.occurred_at.format(&Rfc3339)?.into(),
        kind(e).into(),
        e.actor.id.clone().into(),
        text(&e.actor.name),
        text(&k.agency),
        text(&k.category),
        stored_at.format(&Rfc3339)?.into(),
        hash.into(),
    ])
}

/// A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break, quotes doubled; null is empty.
pub fn csv_field(value: &serde_json::Value) -> String {
    let text = match value {
        serde_json::Value::Null => return String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.contains([',', '"', '\r', '\n']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

/// An RFC 3339 instant, or a date at midnight in the province's time zone (`end`: the midnight after it).
fn parse_bound(text: &str, offset: UtcOffset, end: bool) -> anyhow::Result<OffsetDateTime> {
    if let Some(t) = hotline_api::as_of::parse_instant(text) {
        return Ok(t);
    }
    let date = Date::parse(text.trim(), time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| anyhow!("`{text}` is neither an RFC 3339 instant (2026-11-28T09:30:00+07:00) nor a date (2026-11-28)"))?;
    let date = if end { date.next_day().ok_or_else(|| anyhow!("`{text}` is too late"))? } else { date };
    Ok(date.midnight().assume_offset(offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_as_rfc_4180_says() {
        assert_eq!(csv_field(&"plain".into()), "plain");
        assert_eq!(csv_field(&serde_json::Value::Null), "");
        assert_eq!(csv_field(&7.into()), "7");
        assert_eq!(csv_field(&"Nguyễn, Văn \"A\"".into()), "\"Nguyễn, Văn \"\"A\"\"\"");
        assert_eq!(csv_field(&"two\r\nlines".into()), "\"two\r\nlines\"");
    }

    #[test]
    fn a_date_bound_is_local_midnight_and_an_end_date_takes_the_whole_day() {
        let offset = UtcOffset::from_hms(7, 0, 0).expect("offset");
        let from = parse_bound("2026-11-28", offset, false).expect("from");
        let to = parse_bound("2026-11-28", offset, true).expect("to");
        assert_eq!(from, time::macros::datetime!(2026-11-28 00:00 +07:00));
        assert_eq!(to - from, time::Duration::days(1));
        assert_eq!(parse_bound("2026-11-28T01:02:03Z", offset, true).expect("instant"), time::macros::datetime!(2026-11-28 01:02:03 UTC));
        assert!(parse_bound("yesterday", offset, false).is_err());
    }
}
