//! The bench's one error type: what failed, said plainly enough to act on.

/// Why a bench run stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The options make no sense (zero petitions, a rate of 0, a missing binary).
    #[error("{0}")]
    Invalid(String),
    /// The system under test did not start, stopped, or answered something unexpected.
    #[error("the system under test: {0}")]
    System(String),
    /// An HTTP request failed (connection, timeout, unexpected status).
    #[error("HTTP: {0}")]
    Http(String),
    /// NATS (the raw measurements, the log follower) failed.
    #[error("NATS: {0}")]
    Nats(String),
    /// Waiting for the system (routing, projection catch-up) took longer than the limit.
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<hotline_store::StoreError> for BenchError {
    fn from(e: hotline_store::StoreError) -> BenchError {
        BenchError::Nats(e.to_string())
    }
}

impl From<hotline_projections::ProjectionError> for BenchError {
    fn from(e: hotline_projections::ProjectionError) -> BenchError {
        BenchError::System(format!("reading the projection: {e}"))
    }
}

/// Shorthand for NATS client errors, whose types differ per call.
pub(crate) fn nats(context: &str) -> impl Fn(&dyn std::fmt::Display) -> BenchError + '_ {
    move |e| BenchError::Nats(format!("{context}: {e}"))
}
