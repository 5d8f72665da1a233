//! From AMI events to call facts, pure: the bridge feeds every event in, with the time it arrived, and gets the
//! facts to record. A call is identified by its `Linkedid` (the `Uniqueid` of the call's oldest channel), which
//! is the call id the call-taker's intake must use.
//!
//! - `Newchannel` of the call's first channel (`Uniqueid == Linkedid`): started.
//! - `DialEnd` with `DialStatus: ANSWER`: answered, by the dialled party (`DestCallerIDNum`: the agent's extension).
//! - `Hangup` of the call's first channel: ended, with `Cause-txt`, and the duration and talk time measured from the
//!   events' `Timestamp` headers (`timestampevents = yes` in manager.conf) when the bridge saw the start.
//! - With `ami.cdr`: the end waits for the call's `Cdr` event (`UniqueID` = the first channel), which carries
//!   `Duration`, `BillableSeconds` and `Disposition`; without one within `cdr_wait`, the hang-up alone is recorded.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hotline_domain::event::{CallEventKind, CallLogged};
use time::OffsetDateTime;

use super::frame::Frame;
use crate::call::{self, MAX_AGENT};

pub const SOURCE: &str = "ami";
/// Most calls followed at once; beyond, the oldest are forgotten (their later facts still record, less complete).
const MAX_CALLS: usize = 10_000;
/// A call without a hang-up after this long is forgotten (the bridge missed it, e.g. while reconnecting).
const FORGET_AFTER: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug, Clone)]
struct Track {
    /// When the bridge first heard of the call (for forgetting).
    seen: Instant,
    started_at: Option<OffsetDateTime>,
    answered_at: Option<OffsetDateTime>,
    /// The hang-up, waiting for its `Cdr` (with `ami.cdr`) until `due`.
    ended: Option<(CallLogged, Instant)>,
}

/// Follows calls through AMI events.
#[derive(Debug)]
pub struct Correlator {
    cdr: bool,
    cdr_wait: Duration,
    calls: HashMap<String, Track>,
}

impl Correlator {
    pub fn new(cdr: bool, cdr_wait: Duration) -> Correlator {
        Correlator { cdr, cdr_wait, calls: HashMap::new() }
    }

    /// How many calls are followed now.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The facts an event makes, given when it arrived.
    pub fn on_frame(&mut self, frame: &Frame, now: Instant) -> Vec<CallLogged> {
        let at = frame.get("Timestamp").and_then(timestamp);
        match frame.event() {
            Some(e) if e.eq_ignore_ascii_case("Newchannel") => {
                let Some(call_id) = root_channel(frame) else { return Vec::new() };
                self.forget_old(now);
                let track = Track { seen: now, started_at: at, answered_at: None, ended: None };
                self.calls.insert(call_id.to_owned(), track);
                vec![call::fact(call_id, CallEventKind::Started, SOURCE, at)]
            }
            Some(e) if e.eq_ignore_ascii_case("DialEnd") => {
                if !frame.get("DialStatus").is_some_and(|s| s.eq_ignore_ascii_case("ANSWER")) {
                    return Vec::new();
                }
                let Some(call_id) = frame.get("Linkedid").filter(|id| call::check_call_id(id).is_ok()) else { return Vec::new() };
                if let Some(track) = self.calls.get_mut(call_id) {
                    track.answered_at = at;
                }
                let mut fact = call::fact(call_id, CallEventKind::Answered, SOURCE, at);
                fact.agent = frame
                    .get("DestCallerIDNum")
                    .filter(|a| *a != "<unknown>" && call::check_text("agent", a, MAX_AGENT).is_ok())
                    .map(str::to_owned);
                vec![fact]
            }
            Some(e) if e.eq_ignore_ascii_case("Hangup") => {
                let Some(call_id) = root_channel(frame) else { return Vec::new() };
                let track = self.calls.remove(call_id);
                let mut fact = call::fact(call_id, CallEventKind::Ended, SOURCE, at);
                fact.cause = frame
                    .get("Cause-txt")
                    .or(frame.get("Cause"))
                    .filter(|c| call::check_text("cause", c, MAX_AGENT).is_ok())
                    .map(str::to_owned);
                if let (Some(t), Some(end)) = (&track, at) {
                    let secs = |from: Option<OffsetDateTime>| from.map(|f| (end - f).whole_seconds().max(0) as u64);
                    fact.duration_secs = secs(t.started_at);
                    fact.talk_secs = secs(t.answered_at).or(t.started_at.map(|_| 0));
                }
                if self.cdr {
                    let seen = track.map_or(now, |t| t.seen);
                    self.calls.insert(
                        call_id.to_owned(),
                        Track { seen, started_at: None, answered_at: None, ended: Some((fact, now + self.cdr_wait)) },
                    );
                    return Vec::new();
                }
                vec![fact]
            }
            Some(e) if e.eq_ignore_ascii_case("Cdr") && self.cdr => {
                let Some(call_id) = frame.get("UniqueID") else { return Vec::new() };
                // Only the CDR of a call's first channel: the others (transfers, agent legs) have their own ids.
                let Some(track) = self.calls.remove(call_id) else { return Vec::new() };
                let mut fact = match track.ended {
                    Some((fact, _)) => fact,
                    None => call::fact(call_id, CallEventKind::Ended, SOURCE, at),
                };
                let number = |key: &str| frame.get(key).and_then(|v| v.trim().parse::<u64>().ok());
                fact.duration_secs = number("Duration").or(fact.duration_secs);
                fact.talk_secs = number("BillableSeconds").or(fact.talk_secs);
                if let Some(d) = frame.get("Disposition").filter(|d| call::check_text("disposition", d, MAX_AGENT).is_ok()) {
                    fact.cause = Some(match fact.cause {
                        Some(cause) => format!("{d}, {cause}"),
                        None => d.to_owned(),
                    });
                }
                vec![fact]
            }
            _ => Vec::new(),
        }
    }

    /// Hang-ups whose `Cdr` did not come in time, recorded without it.
    pub fn expire(&mut self, now: Instant) -> Vec<CallLogged> {
        let due: Vec<String> = self
            .calls
            .iter()
            .filter(|(_, t)| t.ended.as_ref().is_some_and(|(_, due)| *due <= now))
            .map(|(id, _)| id.clone())
            .collect();
        due.into_iter().filter_map(|id| self.calls.remove(&id)).filter_map(|t| t.ended.map(|(f, _)| f)).collect()
    }

    fn forget_old(&mut self, now: Instant) {
        self.calls.retain(|_, t| t.ended.is_some() || now.saturating_duration_since(t.seen) < FORGET_AFTER);
        if self.calls.len() >= MAX_CALLS
            && let Some(oldest) = self.calls.iter().filter(|(_, t)| t.ended.is_none()).min_by_key(|(_, t)| t.seen).map(|(id, _)| id.clone())
        {
            self.calls.remove(&oldest);
        }
    }
}

/// The call id of an event about the call's first channel (`Uniqueid == Linkedid`), if it is one.
fn root_channel(frame: &Frame) -> Option<&str> {
    let linked = frame.get("Linkedid")?;
    (frame.get("Uniqueid") == Some(linked) && call::check_call_id(linked).is_ok()).then_some(linked)
}

/// AMI's `Timestamp: 1717000000.123456`.
fn timestamp(value: &str) -> Option<OffsetDateTime> {
    let (secs, frac) = value.trim().split_once('.').unwrap_or((value.trim(), "0"));
    let secs: i64 = secs.parse().ok()?;
    let frac = frac.get(..frac.len().min(9))?;
    let nanos: i128 = format!("{frac:0<9}").parse().ok()?;
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(secs) * 1_000_000_000 + nanos).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(lines: &[(&str, &str)]) -> Frame {
        Frame { headers: lines.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    fn newchannel(uid: &str, linked: &str, ts: &str) -> Frame {
        frame(&[("Event", "Newchannel"), ("Channel", "PJSIP/trunk-00000001"), ("Context", "from-trunk"), ("Uniqueid", uid), ("Linkedid", linked), ("Timestamp", ts)])
    }

    fn hangup(uid: &str, linked: &str, ts: &str) -> Frame {
        frame(&[("Event", "Hangup"), ("Uniqueid", uid), ("Linkedid", linked), ("Cause", "16"), ("Cause-txt", "Normal Clearing"), ("Timestamp", ts)])
    }

    #[test]
    fn a_call_is_started_answered_and_ended_by_its_first_channel() {
        let mut c = Correlator::new(false, Duration::from_secs(10));
        let now = Instant::now();
        let started = c.on_frame(&newchannel("1717000000.1", "1717000000.1", "1717000000.000000"), now);
        assert_eq!(started.len(), 1);
        assert_eq!((started[0].key.as_str(), started[0].call_id.as_str()), ("started", "1717000000.1"));
        // The agent's leg is another channel of the same call: no second start.
        assert!(c.on_frame(&newchannel("1717000000.2", "1717000000.1", "1717000002.000000"), now).is_empty());
        let answered = c.on_frame(
            &frame(&[("Event", "DialEnd"), ("Linkedid", "1717000000.1"), ("DialStatus", "ANSWER"), ("DestCallerIDNum", "101"), ("Timestamp", "1717000005.5")]),
            now,
        );
        assert_eq!((answered[0].kind, answered[0].agent.as_deref()), (CallEventKind::Answered, Some("101")));
        assert!(c.on_frame(&hangup("1717000000.2", "1717000000.1", "1717000090.0"), now).is_empty(), "an agent leg's hang-up");
        let ended = c.on_frame(&hangup("1717000000.1", "1717000000.1", "1717000095.5"), now);
        assert_eq!((ended[0].duration_secs, ended[0].talk_secs, ended[0].cause.as_deref()), (Some(95), Some(90), Some("Normal Clearing")));
        assert!(c.is_empty());
    }

    #[test]
    fn with_cdr_the_end_waits_for_the_cdr_or_for_its_time() {
        let mut c = Correlator::new(true, Duration::from_secs(10));
        let now = Instant::now();
        c.on_frame(&newchannel("1.1", "1.1", "100.0"), now);
        assert!(c.on_frame(&hangup("1.1", "1.1", "160.0"), now).is_empty());
        let cdr = frame(&[("Event", "Cdr"), ("UniqueID", "1.1"), ("Duration", "61"), ("BillableSeconds", "50"), ("Disposition", "ANSWERED")]);
        let ended = c.on_frame(&cdr, now);
        assert_eq!((ended[0].duration_secs, ended[0].talk_secs, ended[0].cause.as_deref()), (Some(61), Some(50), Some("ANSWERED, Normal Clearing")));

        c.on_frame(&newchannel("2.1", "2.1", "200.0"), now);
        assert!(c.on_frame(&hangup("2.1", "2.1", "230.0"), now).is_empty());
        assert!(c.expire(now + Duration::from_secs(9)).is_empty());
        let late = c.expire(now + Duration::from_secs(10));
        assert_eq!((late[0].call_id.as_str(), late[0].duration_secs), ("2.1", Some(30)));
        assert!(c.on_frame(&frame(&[("Event", "Cdr"), ("UniqueID", "9.9"), ("Duration", "5")]), now).is_empty(), "a CDR of no followed call");
    }

    #[test]
    fn a_dial_that_was_not_answered_is_no_fact_and_timestamps_parse() {
        let mut c = Correlator::new(false, Duration::ZERO);
        assert!(c.on_frame(&frame(&[("Event", "DialEnd"), ("Linkedid", "1.1"), ("DialStatus", "NOANSWER")]), Instant::now()).is_empty());
        assert_eq!(timestamp("1717000000.5").map(|t| t.millisecond()), Some(500));
        assert_eq!(timestamp("nope"), None);
    }
}
