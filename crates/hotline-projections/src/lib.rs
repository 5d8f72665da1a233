//! Projections: read models built from the log, in one embedded SQLite file under the data dir.
//!
//! The timeline projection keeps a row per ticket (its current state) and a row per event. Every batch of
//! commits is applied in one transaction together with the log position it reached, so a restart resumes exactly
//! after the last applied commit: no entry lost, none doubled. The whole file can be rebuilt from the log.

mod schema;
mod stats;
mod timeline;
/// `hotline replay`: rebuild from the log into a fresh file, swap it in atomically.
pub mod replay;

pub use stats::{Breakdown, Counts, MapTicket, Rates, Stats, StatsFilter};
pub use timeline::{PetitionQuery, PetitionRow, QueueFilter, QueueKey, KeyedTicket, TicketView, TimelineEntry, TimelineReader, TimelineWriter, run};

/// A projection failure.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("projection database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored event cannot be read: {0}")]
    Decode(String),
    #[error(transparent)]
    Store(#[from] hotline_store::StoreError),
    #[error("projection worker stopped: {0}")]
    Worker(String),
}
