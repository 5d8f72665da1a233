//! SMPP 3.4: the hotline as an ESME bound as transceiver to the operator's SMSC. Citizens' messages arrive as
//! `deliver_sm` and become petitions; answers leave as `submit_sm` on the same session.
//!
//! - [`pdu`]: the codec (pure).
//! - [`session`]: the connection: bind, keep-alive, reconnect with backoff, throttling, unbind on shutdown.
//! - [`inbound`]: what a `deliver_sm` becomes: a delivery receipt (logged), a part to reassemble, or a message
//!   for intake, answered only after intake stored it.

pub mod inbound;
pub mod pdu;
pub mod session;

use futures_util::future::BoxFuture;

/// A citizen's message assembled from `deliver_sm`s, ready for intake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoMessage {
    /// A stable id for deduplication (see [`inbound::message_id`]).
    pub message_id: String,
    /// The citizen's number as the SMSC gave it.
    pub source: String,
    /// The hotline's number it was sent to.
    pub destination: String,
    pub text: String,
    /// Parts that never came (the text says so too).
    pub missing: Vec<u8>,
}

/// Why a message was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoRefusal {
    /// Try again later: the SMSC is told `ESME_RX_T_APPN` and delivers it again.
    Temporary(String),
    /// It will never be stored (no text at all): `ESME_RX_P_APPN`, the SMSC gives it up.
    Permanent(String),
}

/// Where assembled messages go (intake, in the channel).
pub trait MoSink: Send + Sync + 'static {
    /// Stores the message; `Ok` only once it is stored (or was before).
    fn store(&self, message: MoMessage) -> BoxFuture<'_, Result<(), MoRefusal>>;
}
