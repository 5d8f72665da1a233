//! Joins the parts of a concatenated SMS, keyed by (source, reference scheme, reference, total), and gives up
//! waiting for missing parts after a timeout: what arrived is then handed on with a note of what is missing,
//! because a citizen's partial message is worth more than none.
//!
//! Pure state with the clock passed in, so the session drives it and tests step it.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::text::{self, Concat, ConcatScheme};

/// Messages waiting for parts at most; past this the oldest is handed on incomplete.
const MAX_PENDING: usize = 4096;
/// Octets held in waiting parts at most (same remedy).
const MAX_PENDING_BYTES: usize = 8 * 1024 * 1024;
/// How long a completed message's key is remembered, with a hash of each of its parts, so a part the SMSC sends
/// again (its acknowledgement was lost in a dropped connection) is not taken for the start of a new message.
/// Only a part identical to one of the stored message (same number, same bytes) counts as sent again: phones
/// reuse 8-bit references (1 in 256, some always the same), and a citizen's next long message under the same
/// key is a new message.
const COMPLETED_MEMORY: Duration = Duration::from_secs(3600);

/// One received part (or a whole single message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    pub source: String,
    pub destination: String,
    pub data_coding: u8,
    pub concat: Option<Concat>,
    /// User data without the UDH.
    pub body: Vec<u8>,
}

/// Identifies a concatenated message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub source: String,
    pub scheme: ConcatScheme,
    pub reference: u16,
    pub total: u8,
}

/// A message ready for intake: whole, or what arrived of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    pub source: String,
    pub destination: String,
    pub data_coding: u8,
    /// The parts' user data joined in order (present parts only when incomplete).
    pub payload: Vec<u8>,
    pub text: String,
    /// Part numbers that never came (empty for a whole message).
    pub missing: Vec<u8>,
    pub total: u8,
    /// Set for concatenated messages: [`Reassembler::done`] / [`Reassembler::retract`] take it.
    pub key: Option<Key>,
    /// The part that completed it (for [`Reassembler::retract`]).
    pub last_seq: u8,
}

/// What adding a part did.
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    /// The message is whole: store it, then call `done` (or `retract` if storing failed).
    Complete(Assembled),
    /// More parts are expected.
    Waiting,
    /// A part of a message already completed: nothing to do but acknowledge it.
    AlreadyDone,
}

/// A stored message's key is remembered with what its parts were.
struct Completed {
    at: Instant,
    /// SHA-256 of each part's user data, by part number.
    parts: BTreeMap<u8, [u8; 32]>,
}

fn body_hash(body: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, body).as_ref());
    out
}

struct Pending {
    first_seen: Instant,
    destination: String,
    data_coding: u8,
    parts: BTreeMap<u8, Vec<u8>>,
}

/// The reassembly buffer.
pub struct Reassembler {
    timeout: Duration,
    pending: HashMap<Key, Pending>,
    completed: HashMap<Key, Completed>,
    bytes: usize,
}

impl Reassembler {
    pub fn new(timeout: Duration) -> Reassembler {
        Reassembler {
            timeout,
            pending: HashMap::new(),
            completed: HashMap::new(),
            bytes: 0,
        }
    }

    /// Adds a part. A message without concatenation information is complete at once. Alongside, messages pushed
    /// out by the memory bounds are returned incomplete (store them like expired ones).
    pub fn add(&mut self, now: Instant, fragment: Fragment) -> (Added, Vec<Assembled>) {
        let Some(concat) = fragment.concat else {
            let text = text::decode(fragment.data_coding, &fragment.body);
            let whole = Assembled {
                source: fragment.source,
                destination: fragment.destination,
                data_coding: fragment.data_coding,
                payload: fragment.body,
                text,
                missing: Vec::new(),
                total: 1,
                key: None,
                last_seq: 1,
            };
            return (Added::Complete(whole), Vec::new());
        };
        let key = Key {
            source: fragment.source,
            scheme: concat.scheme,
            reference: concat.reference,
            total: concat.total,
        };
        self.completed
            .retain(|_, c| now.saturating_duration_since(c.at) < COMPLETED_MEMORY);
        if let Some(done) = self.completed.get(&key) {
            if done.parts.get(&concat.seq) == Some(&body_hash(&fragment.body)) {
                return (Added::AlreadyDone, Vec::new());
            }
            // Not a part of the stored message: the sender reused the reference for a new one.
            self.completed.remove(&key);
        }
        let mut evicted = Vec::new();
        let entry = self.pending.entry(key.clone()).or_insert_with(|| Pending {
            first_seen: now,
            destination: fragment.destination,
            data_coding: fragment.data_coding,
            parts: BTreeMap::new(),
        });
        self.bytes += fragment.body.len();
        if let Some(old) = entry.parts.insert(concat.seq, fragment.body) {
            self.bytes -= old.len();
        }
        let complete = entry.parts.len() == usize::from(concat.total);
        if complete {
            let assembled = self.assemble(&key, concat.seq);
            return (Added::Complete(assembled), evicted);
        }
        while self.pending.len() > MAX_PENDING || self.bytes > MAX_PENDING_BYTES {
            let Some(oldest) = self
                .pending
                .iter()
                .min_by_key(|(_, p)| p.first_seen)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(a) = self.take(&oldest) {
                evicted.push(a);
            }
        }
        (Added::Waiting, evicted)
    }

    /// The message of `key` was stored: forget its parts, remember it was done (and what its parts were).
    pub fn done(&mut self, now: Instant, key: &Key) {
        let mut parts = BTreeMap::new();
        if let Some(p) = self.pending.remove(key) {
            self.bytes -= p.parts.values().map(Vec::len).sum::<usize>();
            parts = p
                .parts
                .iter()
                .map(|(seq, body)| (*seq, body_hash(body)))
                .collect();
        }
        self.completed
            .insert(key.clone(), Completed { at: now, parts });
    }

    /// Storing the message failed and the SMSC will send part `seq` again: keep the other parts waiting.
    pub fn retract(&mut self, key: &Key, seq: u8) {
        if let Some(p) = self.pending.get_mut(key)
            && let Some(old) = p.parts.remove(&seq)
        {
            self.bytes -= old.len();
        }
    }

    /// Messages whose first part came `timeout` ago or earlier, handed on with what arrived.
    pub fn expire(&mut self, now: Instant) -> Vec<Assembled> {
        let due: Vec<Key> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.first_seen) >= self.timeout)
            .map(|(k, _)| k.clone())
            .collect();
        due.iter().filter_map(|k| self.take(k)).collect()
    }

    /// When the next message will expire.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending
            .values()
            .map(|p| p.first_seen + self.timeout)
            .min()
    }

    /// Removes an incomplete message and assembles what it has. (Its key is not remembered as completed: the
    /// missing parts, if they ever come, are another partial message rather than silently dropped.)
    fn take(&mut self, key: &Key) -> Option<Assembled> {
        let a = self.assemble(key, 0);
        let p = self.pending.remove(key)?;
        self.bytes -= p.parts.values().map(Vec::len).sum::<usize>();
        Some(a)
    }

    fn assemble(&self, key: &Key, last_seq: u8) -> Assembled {
        let empty = Pending {
            first_seen: Instant::now(),
            destination: String::new(),
            data_coding: 0,
            parts: BTreeMap::new(),
        };
        let p = self.pending.get(key).unwrap_or(&empty);
        let missing: Vec<u8> = (1..=key.total)
            .filter(|s| !p.parts.contains_key(s))
            .collect();
        // Decode runs of consecutive parts as one (a UCS2 pair or a GSM escape may straddle two parts), with a
        // marker where parts are missing.
        let mut text = String::new();
        let mut run: Vec<u8> = Vec::new();
        let mut payload = Vec::new();
        for seq in 1..=key.total {
            match p.parts.get(&seq) {
                Some(body) => {
                    run.extend_from_slice(body);
                    payload.extend_from_slice(body);
                }
                None => {
                    text.push_str(&text::decode(p.data_coding, &run));
                    run.clear();
                    if !text.ends_with(GAP) {
                        text.push_str(GAP);
                    }
                }
            }
        }
        text.push_str(&text::decode(p.data_coding, &run));
        if !missing.is_empty() {
            let list: Vec<String> = missing.iter().map(u8::to_string).collect();
            text.push_str(&format!(
                "\n\n[Tin nhắn gồm {} phần, thiếu phần {}: hệ thống chỉ nhận được phần còn lại.]",
                key.total,
                list.join(", ")
            ));
        }
        Assembled {
            source: key.source.clone(),
            destination: p.destination.clone(),
            data_coding: p.data_coding,
            payload,
            text,
            missing,
            total: key.total,
            key: Some(key.clone()),
            last_seq,
        }
    }
}

/// Where missing parts were.
const GAP: &str = " […] ";

#[cfg(test)]
mod tests {
    use super::*;

    fn part(seq: u8, total: u8, body: &[u8]) -> Fragment {
        Fragment {
            source: "84912345678".into(),
            destination: "1022".into(),
            data_coding: 0,
            concat: Some(Concat {
                reference: 7,
                scheme: ConcatScheme::Udh8,
                total,
                seq,
            }),
            body: body.to_vec(),
        }
    }

    #[test]
    fn parts_out_of_order_join_in_order() {
        let mut r = Reassembler::new(Duration::from_secs(60));
        let t = Instant::now();
        assert_eq!(r.add(t, part(3, 3, b"!")).0, Added::Waiting);
        assert_eq!(r.add(t, part(1, 3, b"Mat ")).0, Added::Waiting);
        let (Added::Complete(a), _) = r.add(t, part(2, 3, b"dien")) else {
            panic!("not complete")
        };
        assert_eq!(
            (a.text.as_str(), a.payload.as_slice(), a.last_seq),
            ("Mat dien!", b"Mat dien!".as_slice(), 2)
        );
        r.done(t, a.key.as_ref().expect("key"));
        assert_eq!(r.add(t, part(1, 3, b"Mat ")).0, Added::AlreadyDone);
        assert_eq!(r.next_deadline(), None);
    }

    #[test]
    fn a_reused_reference_within_the_hour_is_a_new_message_not_already_done() {
        let mut r = Reassembler::new(Duration::from_secs(60));
        let t = Instant::now();
        r.add(t, part(1, 2, b"Mat dien "));
        let (Added::Complete(first), _) = r.add(t, part(2, 2, b"o Phu Hoa")) else {
            panic!("not complete")
        };
        r.done(t, first.key.as_ref().expect("key"));
        // The SMSC sending a part of the stored message again (its answer was lost): nothing new.
        let later = t + Duration::from_secs(600);
        assert_eq!(r.add(later, part(2, 2, b"o Phu Hoa")).0, Added::AlreadyDone);
        assert_eq!(r.add(later, part(1, 2, b"Mat dien ")).0, Added::AlreadyDone);
        // The citizen's next long message with the same reference, 20 minutes later: a new message.
        let next = t + Duration::from_secs(1200);
        assert_eq!(r.add(next, part(2, 2, b"van chua co")).0, Added::Waiting);
        let (Added::Complete(second), _) = r.add(next, part(1, 2, b"Den nay ")) else {
            panic!("the second message was taken for the first")
        };
        assert_eq!(second.text, "Den nay van chua co");
        r.done(next, second.key.as_ref().expect("key"));
        // Now the second one is what a redelivery is compared with.
        assert_eq!(r.add(next, part(1, 2, b"Den nay ")).0, Added::AlreadyDone);
        assert_eq!(r.add(next, part(1, 2, b"Mat dien ")).0, Added::Waiting);
    }

    #[test]
    fn a_missing_part_times_out_into_a_partial_message_with_a_note() {
        let mut r = Reassembler::new(Duration::from_secs(60));
        let t = Instant::now();
        r.add(t, part(1, 3, b"Mat "));
        r.add(t, part(3, 3, b"Phu Hoa"));
        assert!(r.expire(t + Duration::from_secs(59)).is_empty());
        let expired = r.expire(t + Duration::from_secs(60));
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].missing, vec![2]);
        assert!(
            expired[0].text.starts_with("Mat  […] Phu Hoa"),
            "{}",
            expired[0].text
        );
        assert!(expired[0].text.contains("thiếu phần 2"));
        assert!(r.expire(t + Duration::from_secs(600)).is_empty());
    }

    #[test]
    fn a_failed_store_keeps_the_other_parts_for_the_redelivered_last_one() {
        let mut r = Reassembler::new(Duration::from_secs(60));
        let t = Instant::now();
        r.add(t, part(1, 2, b"a"));
        let (Added::Complete(a), _) = r.add(t, part(2, 2, b"b")) else {
            panic!("not complete")
        };
        r.retract(a.key.as_ref().expect("key"), a.last_seq);
        let (Added::Complete(again), _) = r.add(t, part(2, 2, b"b")) else {
            panic!("not complete again")
        };
        assert_eq!(again.text, "ab");
    }

    #[test]
    fn an_escape_split_across_parts_still_decodes() {
        let mut r = Reassembler::new(Duration::from_secs(60));
        let t = Instant::now();
        r.add(t, part(1, 2, &[b'x', 0x1B]));
        let (Added::Complete(a), _) = r.add(t, part(2, 2, &[0x65])) else {
            panic!("not complete")
        };
        assert_eq!(a.text, "x€");
    }
}
