//! Knowing when a petition is routed and visible, without asking per ticket: one reader follows the log (raw, as
//! stored: only each event's type is read, so the follower neither decodes bodies nor asks the system's key store
//! for the keys that open them) and notes when each ticket's routing decision is stored, and one poller
//! samples the timeline projection's applied position every couple of milliseconds. A ticket is visible in the
//! API once the projection's position reaches its routing commit. Two cheap readers instead of a GET per ticket,
//! so the measurement does not load the system it measures.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hotline_projections::TimelineReader;
use hotline_store::{EventStore, JetStreamStore, Position};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::BenchError;

/// Event types that end routing: the router stored its decision.
const ROUTING_DONE: [&str; 2] = ["PetitionRouted", "PetitionNeedsTriage"];
/// How often the projection's position is sampled.
const PROJECTION_SAMPLE: Duration = Duration::from_millis(2);

/// When a ticket's routing decision was seen in the log, and at which log position.
#[derive(Debug, Clone, Copy)]
pub struct Routed {
    pub at: Instant,
    pub position: u64,
}

#[derive(Default)]
struct Seen {
    routed: Mutex<HashMap<Uuid, Routed>>,
    routed_count: AtomicU64,
    /// (when, position) each time the projection's applied position moved; increasing in both.
    projection: Mutex<Vec<(Instant, u64)>>,
}

/// The two readers. Dropping it stops them.
pub struct Tracker {
    seen: Arc<Seen>,
    tasks: Vec<JoinHandle<()>>,
}

impl Tracker {
    /// Follows the log from its current end, and the projection file at `projections`.
    pub async fn start(store: Arc<JetStreamStore>, projections: &Path) -> Result<Tracker, BenchError> {
        let seen = Arc::new(Seen::default());
        let from = store.last_position().await? + 1;
        let reader = TimelineReader::open(projections)?;
        let follower = tokio::spawn(follow_log(store, from, seen.clone()));
        let poller = tokio::spawn(sample_projection(reader, seen.clone()));
        Ok(Tracker { seen, tasks: vec![follower, poller] })
    }

    /// Routing decisions seen so far, all tickets included.
    pub fn routed_count(&self) -> u64 {
        self.seen.routed_count.load(Ordering::Relaxed)
    }

    /// Waits until every ticket in `tickets` is routed; returns when each was seen, in the same order.
    pub async fn wait_routed(&self, tickets: &[Uuid], limit: Duration) -> Result<Vec<Routed>, BenchError> {
        let deadline = Instant::now() + limit;
        loop {
            {
                let routed = self.seen.routed.lock().map_err(|_| BenchError::System("tracker lock poisoned".to_owned()))?;
                let found: Vec<Routed> = tickets.iter().filter_map(|t| routed.get(t).copied()).collect();
                if found.len() == tickets.len() {
                    return Ok(found);
                }
                if Instant::now() > deadline {
                    return Err(BenchError::Timeout(format!(
                        "{} of {} petitions routed after {limit:?}",
                        found.len(),
                        tickets.len()
                    )));
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until at least `count` routing decisions have been seen (any tickets).
    pub async fn wait_routed_count(&self, count: u64, limit: Duration) -> Result<(), BenchError> {
        let deadline = Instant::now() + limit;
        while self.routed_count() < count {
            if Instant::now() > deadline {
                return Err(BenchError::Timeout(format!("{} of {count} petitions routed after {limit:?}", self.routed_count())));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Waits until the projection has applied `position`; returns the first sample that showed it.
    pub async fn wait_projected(&self, position: u64, limit: Duration) -> Result<Instant, BenchError> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(at) = self.projected_at(position)? {
                return Ok(at);
            }
            if Instant::now() > deadline {
                return Err(BenchError::Timeout(format!("the projection did not reach log position {position} within {limit:?}")));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// When the projection was first seen at or past `position`.
    pub fn projected_at(&self, position: u64) -> Result<Option<Instant>, BenchError> {
        let samples = self.seen.projection.lock().map_err(|_| BenchError::System("tracker lock poisoned".to_owned()))?;
        let i = samples.partition_point(|(_, p)| *p < position);
        Ok(samples.get(i).map(|(at, _)| *at))
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The one field of a stored event the follower reads.
#[derive(serde::Deserialize)]
struct StoredType {
    event_type: String,
}

async fn follow_log(store: Arc<JetStreamStore>, mut from: u64, seen: Arc<Seen>) {
    let mut warned = false;
    loop {
        let mut commits = match store.raw_log(Position::From(from)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "bench log follower cannot subscribe; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        while let Some(commit) = commits.next().await {
            let Ok(commit) = commit else { break };
            from = commit.position + 1;
            let types: Vec<StoredType> = match serde_json::from_slice(&commit.payload) {
                Ok(types) => types,
                Err(e) => {
                    // Said once: a changed stored format would otherwise show only as petitions never routed.
                    if !warned {
                        tracing::warn!(error = %e, position = commit.position, "bench log follower cannot read a commit's event types");
                        warned = true;
                    }
                    Vec::new()
                }
            };
            if let Some(ticket) = commit.ticket
                && types.iter().any(|e| ROUTING_DONE.contains(&e.event_type.as_str()))
            {
                let routed = Routed { at: Instant::now(), position: commit.position };
                if let Ok(mut map) = seen.routed.lock()
                    && map.insert(ticket, routed).is_none()
                {
                    seen.routed_count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

async fn sample_projection(reader: TimelineReader, seen: Arc<Seen>) {
    let mut last = 0;
    let mut tick = tokio::time::interval(PROJECTION_SAMPLE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        if let Ok(position) = reader.position().await
            && position > last
        {
            last = position;
            if let Ok(mut samples) = seen.projection.lock() {
                samples.push((Instant::now(), position));
            }
        }
    }
}
