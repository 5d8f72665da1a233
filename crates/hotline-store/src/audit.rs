//! Tamper evidence for the log (docs/audit.md, docs/adr/0007): each ticket's events form a hash chain (the append
//! path links them, see `hotline_domain::event::encode_commit_with`), and checkpoints, kept in a stream of their
//! own, each commit to a Merkle root over every event the log stored since the previous checkpoint. [`Verifier`]
//! checks both over the whole log for `hotline audit verify`.

use std::collections::{HashMap, VecDeque};

use hotline_domain::event::{event_hash, stored_events};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// A checkpoint: the Merkle root of the hashes of every event in log positions `from..=to`, in log order. Each
/// checkpoint names the hash of the one before, so the checkpoints form a chain of their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// First log position covered (1, or the previous checkpoint's `to` + 1).
    pub from: u64,
    /// Last log position covered: the log's last position when the checkpoint was made.
    pub to: u64,
    /// How many events the range holds.
    pub events: u64,
    /// [`MerkleRoot`] over their hashes, lowercase hex.
    pub root: String,
    /// SHA-256 of the previous checkpoint exactly as stored; `None` on the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// A checkpoint as read back from its stream.
#[derive(Debug, Clone)]
pub struct StoredCheckpoint {
    /// Its sequence in the checkpoint stream.
    pub sequence: u64,
    /// What it says; `None` when its stored bytes are not a checkpoint.
    pub checkpoint: Option<Checkpoint>,
    /// SHA-256 of its stored bytes (what the next checkpoint's `prev` must name).
    pub hash: String,
}

impl StoredCheckpoint {
    pub fn parse(sequence: u64, payload: &[u8]) -> StoredCheckpoint {
        StoredCheckpoint { sequence, checkpoint: serde_json::from_slice(payload).ok(), hash: event_hash(payload) }
    }
}

/// One log message, undecoded, for the auditors' tools.
#[derive(Debug, Clone)]
pub struct RawCommit {
    pub position: u64,
    /// The ticket its subject names (`None`: the subject is not a ticket's).
    pub ticket: Option<Uuid>,
    pub payload: bytes::Bytes,
    /// Messages after this one in the log when it was read (0: it was the last).
    pub pending: u64,
}

/// The Merkle tree hash of RFC 6962 (leaf = SHA-256(0x00 ‖ data), node = SHA-256(0x01 ‖ left ‖ right), the left
/// subtree the largest power of two), computed as leaves arrive with O(log n) memory, so a checkpoint over a
/// million events needs no list of them.
#[derive(Debug, Default)]
pub struct MerkleRoot {
    /// Roots of complete subtrees, largest first, with their heights.
    stack: Vec<(u32, [u8; 32])>,
    leaves: u64,
}

impl MerkleRoot {
    pub fn push(&mut self, data: &[u8]) {
        let mut node = (0u32, sha(&[&[0u8], data]));
        while let Some(&(height, left)) = self.stack.last() {
            if height != node.0 {
                break;
            }
            self.stack.pop();
            node = (height + 1, sha(&[&[1u8], &left, &node.1]));
        }
        self.stack.push(node);
        self.leaves += 1;
    }

    pub fn leaves(&self) -> u64 {
        self.leaves
    }

    /// The root in lowercase hex; the hash of no data for an empty tree, as in RFC 6962.
    pub fn root(&self) -> String {
        let mut nodes = self.stack.iter().rev();
        let root = match nodes.next() {
            None => sha(&[]),
            Some(&(_, last)) => nodes.fold(last, |right, &(_, left)| sha(&[&[1u8], &left, &right])),
        };
        hex(&root)
    }
}

fn sha(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The leaves a log message adds to a checkpoint: its events' hashes, or, for a message that is not a commit of
/// stored events, the hash of the whole message (so a checkpoint still covers it and a verifier recomputes it).
pub fn leaves_of(payload: &[u8]) -> Vec<String> {
    match stored_events(payload) {
        Ok(events) if !events.is_empty() => events.into_iter().map(|(_, hash)| hash).collect(),
        _ => vec![event_hash(payload)],
    }
}

/// Something `hotline audit verify` found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The log position of the bad event (for a checkpoint mismatch: the first position of its range).
    pub position: u64,
    pub ticket: Option<Uuid>,
    pub event_id: Option<Uuid>,
    pub seq: Option<u64>,
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "log position {}", self.position)?;
        if let Some(ticket) = self.ticket {
            write!(f, ", ticket {ticket}")?;
        }
        if let Some(seq) = self.seq {
            write!(f, ", event #{seq}")?;
        }
        if let Some(id) = self.event_id {
            write!(f, " ({id})")?;
        }
        write!(f, ": {}", self.what)
    }
}

/// What a verification found.
#[derive(Debug, Default)]
pub struct Report {
    pub commits: u64,
    pub events: u64,
    pub tickets: u64,
    /// Checkpoints whose root and link were checked and held.
    pub checkpoints_ok: u64,
    /// Events after the last checkpoint: chained, but not yet committed to by a checkpoint.
    pub unanchored_events: u64,
    /// The last checkpoint's range and root (what an auditor writes down to compare later).
    pub last_checkpoint: Option<Checkpoint>,
    pub problems: Vec<Problem>,
}

impl Report {
    /// The earliest bad event in the log: at the same position, a problem that names its event (a broken link)
    /// before one that can only name a range (a checkpoint whose root no longer matches).
    pub fn first_problem(&self) -> Option<&Problem> {
        self.problems.iter().min_by_key(|p| (p.position, p.event_id.is_none()))
    }
}

/// The last event seen of a ticket.
struct Tip {
    seq: u64,
    hash: String,
    position: u64,
    event_id: Uuid,
}

/// Checks a whole log, fed in log order: every ticket's chain (seq 1, 2, 3... each naming the previous event's
/// hash over its exact stored bytes) and every checkpoint (contiguous ranges, linked, and a root equal to the one
/// recomputed from the events read).
pub struct Verifier {
    tips: HashMap<Uuid, Tip>,
    checkpoints: VecDeque<StoredCheckpoint>,
    /// The checkpoint before the next one to check: its `to` and hash.
    previous: Option<(u64, String)>,
    merkle: MerkleRoot,
    report: Report,
}

impl Verifier {
    /// `checkpoints` in stream order.
    pub fn new(checkpoints: Vec<StoredCheckpoint>) -> Verifier {
        Verifier {
            tips: HashMap::new(),
            checkpoints: checkpoints.into(),
            previous: None,
            merkle: MerkleRoot::default(),
            report: Report::default(),
        }
    }

    fn problem(&mut self, position: u64, ticket: Option<Uuid>, event: Option<(Uuid, u64)>, what: String) {
        self.report.problems.push(Problem { position, ticket, event_id: event.map(|e| e.0), seq: event.map(|e| e.1), what });
    }

    /// Checks the next log message.
    pub fn commit(&mut self, commit: &RawCommit) {
        // Checkpoints ending before this message are complete: check them first.
        while self.checkpoints.front().and_then(|c| c.checkpoint.as_ref()).is_some_and(|c| c.to < commit.position) {
            self.close_checkpoint();
        }
        if self.checkpoints.front().is_some_and(|c| c.checkpoint.is_none()) {
            self.close_checkpoint();
        }
        self.report.commits += 1;
        for leaf in leaves_of(&commit.payload) {
            self.merkle.push(leaf.as_bytes());
        }
        let position = commit.position;
        let events = match stored_events(&commit.payload) {
            Ok(events) if !events.is_empty() => events,
            Ok(_) => return self.problem(position, commit.ticket, None, "an empty commit".to_owned()),
            Err(e) => return self.problem(position, commit.ticket, None, format!("not a commit of stored events: {e}")),
        };
        for (stored, hash) in events {
            self.report.events += 1;
            let id = Some((stored.event_id, stored.seq));
            if commit.ticket != Some(stored.ticket_id) {
                self.problem(position, Some(stored.ticket_id), id, format!("stored under another ticket's subject ({:?})", commit.ticket));
            }
            let tip = self.tips.remove(&stored.ticket_id);
            let tip = tip.as_ref();
            let expected_seq = tip.map_or(1, |t| t.seq + 1);
            if stored.seq != expected_seq {
                let what = format!("event #{} where #{expected_seq} was due: an event was removed, added or reordered", stored.seq);
                self.problem(position, Some(stored.ticket_id), id, what);
            } else if stored.prev_hash.as_deref() != tip.map(|t| t.hash.as_str()) {
                match (tip, &stored.prev_hash) {
                    // The successor recorded another hash for the event before it: that earlier event changed
                    // (or this link did; the earlier event is the first one that no longer matches).
                    (Some(t), Some(_)) => {
                        let (at, before) = (t.position, Some((t.event_id, t.seq)));
                        let what = format!(
                            "its stored content no longer matches the hash its successor (event #{}, log position {position}) recorded: it was changed",
                            stored.seq
                        );
                        self.problem(at, Some(stored.ticket_id), before, what);
                    }
                    (Some(_), None) => self.problem(position, Some(stored.ticket_id), id, "the link to the previous event is missing".to_owned()),
                    (None, _) => self.problem(position, Some(stored.ticket_id), id, "a first event that names a previous one".to_owned()),
                }
            }
            if tip.is_none() {
                self.report.tickets += 1;
            }
            self.tips.insert(stored.ticket_id, Tip { seq: stored.seq, hash, position, event_id: stored.event_id });
        }
        if self.checkpoints.front().and_then(|c| c.checkpoint.as_ref()).is_some_and(|c| c.to == position) {
            self.close_checkpoint();
        }
    }

    /// Compares the front checkpoint with what was read since the previous one.
    fn close_checkpoint(&mut self) {
        let Some(stored) = self.checkpoints.pop_front() else { return };
        let merkle = std::mem::take(&mut self.merkle);
        let from = self.previous.as_ref().map_or(1, |p| p.0 + 1);
        let Some(c) = stored.checkpoint else {
            self.problem(from, None, None, format!("checkpoint #{} is not a checkpoint: it was changed", stored.sequence));
            self.previous = None;
            return;
        };
        let prev = self.previous.as_ref().map(|p| p.1.clone());
        if c.prev != prev {
            self.problem(c.from, None, None, format!("checkpoint #{} does not link to the checkpoint before it: a checkpoint was changed or removed", stored.sequence));
        } else if c.from != from {
            self.problem(from, None, None, format!("checkpoint #{} covers positions {}..={}, but {from} was due", stored.sequence, c.from, c.to));
        } else if c.root != merkle.root() || c.events != merkle.leaves() {
            let what = format!(
                "checkpoint #{} of positions {}..={} ({} events, root {}) does not match the log ({} events, root {}): an event in that range was changed, removed or added",
                stored.sequence,
                c.from,
                c.to,
                c.events,
                c.root,
                merkle.leaves(),
                merkle.root()
            );
            self.problem(c.from, None, None, what);
        } else {
            self.report.checkpoints_ok += 1;
        }
        self.previous = Some((c.to, stored.hash));
        self.report.last_checkpoint = Some(c);
    }

    /// Ends the check: checkpoints beyond the end of the log mean the log lost its tail.
    pub fn finish(mut self) -> Report {
        while !self.checkpoints.is_empty() {
            self.close_checkpoint_at_end();
        }
        self.report.unanchored_events = self.merkle.leaves();
        self.report
    }

    fn close_checkpoint_at_end(&mut self) {
        let beyond = self.checkpoints.front().and_then(|c| c.checkpoint.as_ref()).map(|c| c.to);
        if let Some(to) = beyond {
            let from = self.previous.as_ref().map_or(1, |p| p.0 + 1);
            self.problem(from, None, None, format!("a checkpoint covers the log up to position {to}, beyond its end: events were removed"));
        }
        self.close_checkpoint();
        self.report.problems.dedup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(data: &[u8]) -> [u8; 32] {
        sha(&[&[0u8], data])
    }

    fn node(l: [u8; 32], r: [u8; 32]) -> [u8; 32] {
        sha(&[&[1u8], &l, &r])
    }

    #[test]
    fn the_first_problem_names_an_event_over_a_range_at_the_same_position() {
        let range = Problem { position: 1, ticket: None, event_id: None, seq: None, what: "checkpoint".into() };
        let event = Problem { position: 1, ticket: None, event_id: Some(Uuid::nil()), seq: Some(1), what: "changed".into() };
        let later = Problem { position: 0, ..range.clone() };
        let report = Report { problems: vec![range.clone(), event.clone()], ..Report::default() };
        assert_eq!(report.first_problem(), Some(&event));
        let report = Report { problems: vec![range, event, later.clone()], ..Report::default() };
        assert_eq!(report.first_problem(), Some(&later), "an earlier position first");
    }

    #[test]
    fn the_streaming_root_is_rfc_6962s_tree_hash() {
        let data: Vec<Vec<u8>> = (0..7u8).map(|i| vec![i; 3]).collect();
        let l: Vec<[u8; 32]> = data.iter().map(|d| leaf(d)).collect();
        let root_of = |n: usize| {
            let mut m = MerkleRoot::default();
            data[..n].iter().for_each(|d| m.push(d));
            m.root()
        };
        assert_eq!(root_of(0), hex(&sha(&[])));
        assert_eq!(root_of(1), hex(&l[0]));
        assert_eq!(root_of(2), hex(&node(l[0], l[1])));
        assert_eq!(root_of(3), hex(&node(node(l[0], l[1]), l[2])));
        let four = node(node(l[0], l[1]), node(l[2], l[3]));
        assert_eq!(root_of(5), hex(&node(four, l[4])));
        assert_eq!(root_of(7), hex(&node(four, node(node(l[4], l[5]), l[6]))));
    }
}
