//! What becomes of a `deliver_sm`: a delivery receipt is logged and acknowledged; a part of a concatenated
//! message waits for the others (acknowledged at once: the SMSC's window must not fill up); a whole message goes
//! to intake and is acknowledged only after intake stored it. Intake failing answers `ESME_RX_T_APPN` so the
//! SMSC delivers it again; the other parts stay waiting for the redelivered one.
//!
//! Messages whose parts never all came are stored, after the reassembly timeout, with what arrived and a note of
//! what is missing; if storing them fails they are retried here (their parts were acknowledged already).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use super::pdu::{ShortMessage, status, tag};
use super::{MoMessage, MoRefusal, MoSink};
use crate::reassembly::{Added, Assembled, Fragment, Reassembler};
use crate::text;

/// A `deliver_sm` as the session hands it over.
#[derive(Debug)]
pub(crate) struct Deliver {
    /// Which connection it came on: an answer for an earlier connection is not sent (the SMSC redelivers).
    pub generation: u64,
    pub sequence: u32,
    pub sm: ShortMessage,
}

/// The `deliver_sm_resp` to send.
#[derive(Debug)]
pub(crate) struct DeliverAnswer {
    pub generation: u64,
    pub sequence: u32,
    pub status: u32,
}

/// A delivery receipt's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The id the SMSC gave our `submit_sm` (from the TLV, or the text's `id:`).
    pub message_id: Option<String>,
    /// `DELIVRD`, `UNDELIV`, `EXPIRED`... (from the text's `stat:`), or the `message_state` TLV's number.
    pub state: Option<String>,
}

/// Recognises what is not a citizen's message: an SMSC delivery receipt (esm_class message type 0x04, or 0x08
/// as some SMSCs send it), an intermediate notification or user acknowledgement (any other message type), a
/// `receipted_message_id` TLV, or a text in the receipt format (`id:... stat:...`).
pub fn receipt(sm: &ShortMessage) -> Option<Receipt> {
    let text_form = receipt_text(sm.payload());
    let tlv_id = sm.tlv(tag::RECEIPTED_MESSAGE_ID).map(|v| {
        v.iter()
            .take_while(|b| **b != 0)
            .map(|b| char::from(*b))
            .collect()
    });
    if sm.esm_class & 0x3C == 0 && tlv_id.is_none() && text_form.is_none() {
        return None;
    }
    let (text_id, text_state) = text_form.unwrap_or_default();
    let state = text_state.or_else(|| {
        sm.tlv(tag::MESSAGE_STATE)
            .and_then(|v| v.first())
            .map(|s| format!("state {s}"))
    });
    Some(Receipt {
        message_id: tlv_id.or(text_id),
        state,
    })
}

/// `id:<id> sub:... stat:<state> ...` → (id, state), when the text starts like a receipt and has a `stat:`.
fn receipt_text(payload: &[u8]) -> Option<(Option<String>, Option<String>)> {
    let text: String = payload.iter().take(300).map(|b| char::from(*b)).collect();
    let lower = text.to_ascii_lowercase();
    if !lower.starts_with("id:") || !lower.contains(" stat:") {
        return None;
    }
    let field = |name: &str| {
        lower.find(name).map(|at| {
            text[at + name.len()..]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_owned()
        })
    };
    Some((field("id:"), field(" stat:")))
}

/// The dedupe id of a message assembled from SMPP, which has no global id of its own: a hash of (source,
/// destination, data_coding, the reassembled user data) and the Vietnamese calendar day it was first seen. A
/// redelivery (same bytes) gets the same id, so it is stored once; the day keeps a citizen's identical message
/// on another day ("Có" to a second question) from being taken for a redelivery of the first. `material` is the
/// payload, plus the missing parts' numbers for an incomplete message.
pub fn message_id(base: &[u8; 32], day: u64) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(base);
    ctx.update(&day.to_be_bytes());
    let digest = ctx.finish();
    let hex: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("smpp-{hex}")
}

/// The day-independent part of [`message_id`].
pub fn message_base(source: &str, destination: &str, data_coding: u8, material: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [
        source.as_bytes(),
        b"\0",
        destination.as_bytes(),
        b"\0",
        &[data_coding],
        b"\0",
        material,
    ] {
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The calendar day in Vietnam (UTC+7) of a moment.
fn vietnam_day(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map(|d| (d.as_secs() + 7 * 3600) / 86_400)
        .unwrap_or(0)
}

/// Ids already given, by the day-independent hash, so a redelivery just after midnight keeps its first id
/// (while the process runs; after a restart only the day counts).
struct IdMemory {
    given: HashMap<[u8; 32], (String, Instant)>,
}

/// How long after an id was given the same bytes from the same number are taken for a redelivery of that message
/// even on another day. Only a redelivery window: SMSCs redeliver an unanswered `deliver_sm` within minutes, while
/// the same text a day later ("Có" to a new question) is a new message and gets the new day's id.
pub const REDELIVERY_WINDOW: Duration = Duration::from_secs(3600);
const ID_MEMORY_MAX: usize = 100_000;

impl IdMemory {
    /// The id of a message with day-independent hash `base`, first seen at `now` (`wall`: the same moment on the
    /// calendar, whose Vietnamese day goes into the id).
    fn id(&mut self, base: [u8; 32], now: Instant, wall: SystemTime) -> String {
        if self.given.len() >= ID_MEMORY_MAX {
            self.given
                .retain(|_, (_, at)| now.saturating_duration_since(*at) < REDELIVERY_WINDOW);
            if self.given.len() >= ID_MEMORY_MAX {
                self.given.clear();
            }
        }
        match self.given.get(&base) {
            Some((id, at)) if now.saturating_duration_since(*at) < REDELIVERY_WINDOW => id.clone(),
            _ => {
                let id = message_id(&base, vietnam_day(wall));
                self.given.insert(base, (id.clone(), now));
                id
            }
        }
    }
}

/// Incomplete messages held for another try at most; past this the oldest is given up (and logged).
const RETRY_MAX: usize = 10_000;

/// Runs until the session stops feeding it (it closes the channel once it has stopped reading and sent the
/// answers to what it handed over), then stores what it holds and returns. It does not watch shutdown itself: a
/// delivery already handed over must still be stored and answered, or the SMSC sends its part again after a restart
/// and that part alone becomes a petition.
pub(crate) async fn run_worker(
    mut deliveries: mpsc::Receiver<Deliver>,
    answers: mpsc::Sender<DeliverAnswer>,
    sink: Arc<dyn MoSink>,
    reassembly_timeout: Duration,
) {
    let mut w = Worker {
        sink,
        reassembler: Reassembler::new(reassembly_timeout),
        ids: IdMemory {
            given: HashMap::new(),
        },
        retry: VecDeque::new(),
    };
    loop {
        let wake = [
            w.reassembler.next_deadline(),
            w.retry.front().map(|(at, _, _)| *at),
        ]
        .into_iter()
        .flatten()
        .min();
        tokio::select! {
            delivery = deliveries.recv() => {
                let Some(d) = delivery else { break };
                let status = w.handle(d.sm).await;
                let _ = answers.send(DeliverAnswer { generation: d.generation, sequence: d.sequence, status }).await;
            }
            _ = sleep_until(wake), if wake.is_some() => w.housekeeping(Instant::now()).await,
        }
    }
    // Parts already acknowledged are only here: store what arrived rather than lose it on a restart.
    let held = w
        .reassembler
        .expire(Instant::now() + Duration::from_secs(365 * 86_400));
    for a in held {
        w.store_incomplete(a, Instant::now()).await;
    }
    for (_, message, _) in std::mem::take(&mut w.retry) {
        if let Err(e) = w.sink.store(message).await {
            tracing::error!(error = ?e, "an incomplete SMS could not be stored before shutdown and is lost");
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

struct Worker {
    sink: Arc<dyn MoSink>,
    reassembler: Reassembler,
    ids: IdMemory,
    /// Incomplete messages whose storing failed: (next try, message, tries so far).
    retry: VecDeque<(Instant, MoMessage, u32)>,
}

impl Worker {
    /// Handles one `deliver_sm` and says what to answer.
    async fn handle(&mut self, sm: ShortMessage) -> u32 {
        if let Some(r) = receipt(&sm) {
            tracing::info!(
                smsc_message_id = r.message_id.as_deref().unwrap_or("?"),
                state = r.state.as_deref().unwrap_or("?"),
                "SMPP delivery receipt"
            );
            return status::ROK;
        }
        let (concat, body) = match text::split_udh(sm.esm_class, sm.payload()) {
            Ok(split) => split,
            Err(e) => {
                // Nothing here can be read as the citizen wrote it; the SMSC must not keep sending it.
                tracing::warn!(error = %e, "deliver_sm refused");
                return status::RX_P_APPN;
            }
        };
        let concat = concat.or_else(|| {
            text::sar_concat(
                sm.tlv(tag::SAR_MSG_REF_NUM),
                sm.tlv(tag::SAR_TOTAL_SEGMENTS),
                sm.tlv(tag::SAR_SEGMENT_SEQNUM),
            )
        });
        let fragment = Fragment {
            source: sm.source_addr.clone(),
            destination: sm.destination_addr.clone(),
            data_coding: sm.data_coding,
            concat,
            body: body.to_vec(),
        };
        let now = Instant::now();
        let (added, evicted) = self.reassembler.add(now, fragment);
        for a in evicted {
            self.store_incomplete(a, now).await;
        }
        let Added::Complete(assembled) = added else {
            return status::ROK;
        };
        let message = self.message(&assembled, now);
        match self.sink.store(message).await {
            Ok(()) => {
                if let Some(key) = &assembled.key {
                    self.reassembler.done(now, key);
                }
                status::ROK
            }
            Err(MoRefusal::Temporary(e)) => {
                tracing::warn!(error = %e, "SMS not stored; the SMSC will deliver it again");
                if let Some(key) = &assembled.key {
                    self.reassembler.retract(key, assembled.last_seq);
                }
                status::RX_T_APPN
            }
            Err(MoRefusal::Permanent(e)) => {
                tracing::warn!(error = %e, "SMS refused");
                if let Some(key) = &assembled.key {
                    self.reassembler.done(now, key);
                }
                status::RX_P_APPN
            }
        }
    }

    fn message(&mut self, a: &Assembled, now: Instant) -> MoMessage {
        let mut material = a.payload.clone();
        if !a.missing.is_empty() {
            material.extend_from_slice(b"\0missing\0");
            material.extend_from_slice(&a.missing);
            material.push(a.total);
        }
        let base = message_base(&a.source, &a.destination, a.data_coding, &material);
        MoMessage {
            message_id: self.ids.id(base, now, SystemTime::now()),
            source: a.source.clone(),
            destination: a.destination.clone(),
            text: a.text.clone(),
            missing: a.missing.clone(),
        }
    }

    async fn housekeeping(&mut self, now: Instant) {
        for a in self.reassembler.expire(now) {
            self.store_incomplete(a, now).await;
        }
        let mut again = VecDeque::new();
        while let Some((at, message, tries)) = self.retry.pop_front() {
            if at > now {
                again.push_back((at, message, tries));
                continue;
            }
            if let Err(e) = self.sink.store(message.clone()).await {
                tracing::warn!(error = ?e, tries, "an incomplete SMS is still not stored; trying again later");
                again.push_back((now + backoff(tries + 1), message, tries + 1));
            }
        }
        again.make_contiguous().sort_by_key(|(at, _, _)| *at);
        self.retry = again;
    }

    /// Stores a message some parts of which never came; keeps it for another try if that fails.
    async fn store_incomplete(&mut self, a: Assembled, now: Instant) {
        tracing::info!(missing = ?a.missing, total = a.total, "storing an SMS whose parts did not all arrive");
        let message = self.message(&a, now);
        match self.sink.store(message.clone()).await {
            Ok(()) => {}
            Err(MoRefusal::Permanent(e)) => {
                tracing::warn!(error = %e, "an incomplete SMS was refused")
            }
            Err(MoRefusal::Temporary(e)) => {
                tracing::warn!(error = %e, "an incomplete SMS is not stored yet; trying again later");
                if self.retry.len() >= RETRY_MAX {
                    self.retry.pop_front();
                    tracing::error!(
                        "too many SMS waiting to be stored; the oldest incomplete one is given up"
                    );
                }
                self.retry.push_back((now + backoff(1), message, 1));
            }
        }
    }
}

fn backoff(tries: u32) -> Duration {
    Duration::from_secs((1u64 << tries.min(6)).min(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sm(esm_class: u8, text: &[u8]) -> ShortMessage {
        ShortMessage {
            esm_class,
            short_message: text.to_vec(),
            source_addr: "84912345678".into(),
            ..Default::default()
        }
    }

    #[test]
    fn receipts_are_recognised_by_class_tlv_or_text() {
        let text = b"id:4f2a sub:001 dlvrd:001 submit date:2501011200 done date:2501011201 stat:DELIVRD err:000 text:";
        let r = receipt(&sm(0x04, text)).expect("receipt");
        assert_eq!(
            (r.message_id.as_deref(), r.state.as_deref()),
            (Some("4f2a"), Some("DELIVRD"))
        );
        assert!(receipt(&sm(0x08, b"whatever")).is_some());
        assert!(receipt(&sm(0x00, text)).is_some());
        let mut tlv = sm(0x00, b"");
        tlv.tlvs.push(super::super::pdu::Tlv {
            tag: tag::RECEIPTED_MESSAGE_ID,
            value: b"77\0".to_vec(),
        });
        assert_eq!(
            receipt(&tlv).and_then(|r| r.message_id).as_deref(),
            Some("77")
        );
        assert!(receipt(&sm(0x00, b"Mat dien o Phu Hoa, id: 12 stat: ok")).is_none());
        assert!(receipt(&sm(0x40, &[5, 0, 3, 1, 2, 1, b'h'])).is_none());
    }

    #[test]
    fn the_same_bytes_give_the_same_id_and_another_day_another() {
        let base = message_base("84912345678", "1022", 0, b"Co");
        assert_eq!(message_id(&base, 20_000), message_id(&base, 20_000));
        assert_ne!(message_id(&base, 20_000), message_id(&base, 20_001));
        assert_ne!(base, message_base("84912345679", "1022", 0, b"Co"));
        assert_ne!(base, message_base("84912345678", "1022", 8, b"Co"));
    }

    #[test]
    fn the_same_text_a_day_later_is_a_new_message_not_yesterdays_id() {
        let base = message_base("84912345678", "1022", 0, b"Co");
        let mut memory = IdMemory {
            given: HashMap::new(),
        };
        let now = Instant::now();
        // 23:40 in Vietnam (16:40 UTC) on some day.
        let evening = UNIX_EPOCH + Duration::from_secs(20_000 * 86_400 + 16 * 3600 + 40 * 60);
        let first = memory.id(base, now, evening);
        // A redelivery 30 minutes later, after midnight: still the first message.
        let half_hour = Duration::from_secs(30 * 60);
        assert_eq!(memory.id(base, now + half_hour, evening + half_hour), first);
        assert_ne!(
            vietnam_day(evening),
            vietnam_day(evening + half_hour),
            "the redelivery crosses midnight"
        );
        // "Có" again 30 hours later, answering a new question: a new message.
        let later = Duration::from_secs(30 * 3600);
        let next = memory.id(base, now + later, evening + later);
        assert_ne!(next, first);
        assert_eq!(next, message_id(&base, vietnam_day(evening + later)));
    }
}
