//! Channels: how petitions come in and answers go out. Every channel (app, SMS, email, Zalo, phone) is an
//! adapter crate implementing [`ChannelAdapter`]; this crate holds the trait, the [`ChannelContext`] handed to
//! each adapter, the shared [`Intake`] that turns a channel's [`NewPetition`] into a stored ticket, and the HTTP error
//! shape channels and the API share.

mod access;
pub mod blobs;
mod state;
pub mod http;
mod inbound;
mod intake;
pub mod outbound;
mod secret;
pub mod vendor_http;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use hotline_domain::Reference;
use hotline_runtime::Shutdown;
use uuid::Uuid;

pub use access::AccessCodes;
pub use secret::Secret;
pub use state::{ChannelState, StateConflict};
pub use hotline_domain::ticket::NewPetition;
pub use inbound::{InboundMessage, Received, ThreadHint, find_references, is_mobile, normalise_msisdn};
pub use intake::{Accepted, DEFAULT_DEADLINE, Intake, IntakeError, validate_codes};

/// Everything an adapter gets from the system: its publisher, its configuration, its shutdown signal.
#[derive(Clone)]
pub struct ChannelContext {
    /// Where inbound petitions go.
    pub intake: Intake,
    /// The adapter's own configuration section (`[<name>]` in the settings file, or `HOTLINE_<NAME>__*`).
    pub config: serde_json::Value,
    /// Raised when the process stops: finish in-flight work and return.
    pub shutdown: Shutdown,
    /// Where files that come with messages (e-mail attachments) are kept, by their SHA-256.
    pub blobs: blobs::BlobStore,
    /// The process's data directory (for files a channel keeps of its own).
    pub data_dir: std::path::PathBuf,
    /// The channel's durable key-value state, shared by every process running the channel (vendor tokens,
    /// followers, an inbox of events accepted but not yet processed).
    pub state: ChannelState,
}

impl ChannelContext {
    /// The context of `channel`: its blob store under `<data_dir>/blobs`, its state in the intake's store.
    pub fn new(channel: &'static str, intake: Intake, config: serde_json::Value, shutdown: Shutdown, data_dir: std::path::PathBuf) -> ChannelContext {
        let state = ChannelState::new(intake.event_store(), channel);
        ChannelContext { intake, config, shutdown, blobs: blobs::BlobStore::new(data_dir.join("blobs")), data_dir, state }
    }
}

/// A reply for a citizen: the agency's answer, or a question back.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundMessage {
    /// The id of the event this message delivers: an idempotency key for vendors that accept one.
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub reference: Reference,
    pub kind: OutboundKind,
    pub text: String,
    /// The citizen's address on this channel (phone number, e-mail address, Zalo user id, app install id).
    pub to: Option<String>,
    /// The petition's subject, if it had one (an e-mail answer keeps it).
    pub subject: Option<String>,
    /// The channel's ids of the citizen's messages on this ticket, oldest first (an e-mail answer's
    /// In-Reply-To and References).
    pub thread: Vec<String>,
    /// Event ids of the replies already sent on this ticket, oldest first.
    pub earlier_replies: Vec<Uuid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundKind {
    Answer,
    Question,
}

/// What the channel reports after handing a message on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReceipt {
    /// The channel's id for the sent message, when it gives one.
    pub channel_message_id: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    /// Worth trying again later (gateway down, throttled).
    #[error("delivery failed for now: {0}")]
    Retryable(String),
    /// Will never work (unknown recipient, blocked): record it and tell an operator.
    #[error("delivery impossible: {0}")]
    Permanent(String),
}

/// A channel adapter. Adapters are alike from outside: the process builds each from its config section, mounts
/// its HTTP routes, runs it until shutdown, and hands it replies to deliver.
pub trait ChannelAdapter: Send + Sync + 'static {
    /// The channel's name, as stored in `PetitionReceived.channel`: `app`, `sms`, `email`, `zalo`, `phone`.
    fn name(&self) -> &'static str;

    /// HTTP endpoints of the channel (webhooks, the app's API), served on the main HTTP port by `hotline up`
    /// and alone by `hotline serve <channel>`. None for channels that listen on their own sockets.
    fn http_routes(&self, ctx: &ChannelContext) -> Option<axum::Router>;

    /// Long-running work (an SMTP listener, an SMPP session). Returns when `ctx.shutdown` is raised, after
    /// draining. Channels that only serve HTTP return at once.
    fn run(self: Arc<Self>, ctx: ChannelContext) -> BoxFuture<'static, Result<(), ChannelError>>;

    /// Sends a reply to the citizen on this channel.
    fn deliver<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<DeliveryReceipt, DeliveryError>>;

    /// Channels whose citizens this channel answers as if the tickets were its own: SMS answers `phone` callers
    /// (a phone call cannot carry an answer days later).
    fn answers_for(&self) -> &'static [&'static str] {
        &[]
    }

    /// Channels whose replies this channel delivers instead when they gave up on one (`ReplyFailed`) and the
    /// citizen can be reached here: SMS takes over from Zalo when the citizen's mobile number is known.
    fn fallback_for(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether the channel sends replies itself. A channel that does not (phone: SMS answers its callers) gets no
    /// outbound consumer, so its tickets' answers are not also recorded as failed on it.
    fn sends_replies(&self) -> bool {
        true
    }
}

/// A channel failed in a way that stops it.
#[derive(Debug, thiserror::Error)]
#[error("channel {channel}: {message}")]
pub struct ChannelError {
    pub channel: &'static str,
    pub message: String,
}

/// What a log line shows instead of a citizen's id or address (a Zalo id, an e-mail address, a number): 12 hex
/// digits of a hash salted with a random value that lives only in this process's memory. Enough to follow one
/// citizen through one process's log; nothing anyone can match against a known address afterwards, so log files
/// hold nothing that erasure would have to find (docs/privacy.md).
pub fn pseudonym(id: &str) -> String {
    use sha2::Digest;
    static SALT: std::sync::OnceLock<[u8; 16]> = std::sync::OnceLock::new();
    let salt = SALT.get_or_init(|| *uuid::Uuid::new_v4().as_bytes());
    let mut hasher = sha2::Sha256::new();
    hasher.update(salt);
    hasher.update(id.trim().to_lowercase().as_bytes());
    hasher.finalize()[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// A vendor's error text fit for a log line: runs of 6 or more digits (phone numbers, ids) and e-mail addresses
/// are masked, since vendors like to quote the recipient.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_inclusive(|c: char| c.is_whitespace() || c == ',' || c == ';' || c == '"' || c == '\'') {
        let (core, tail) = word.split_at(word.trim_end_matches(|c: char| c.is_whitespace() || c == ',' || c == ';' || c == '"' || c == '\'').len());
        let digits = core.chars().filter(char::is_ascii_digit).count();
        if core.contains('@') && core.contains('.') {
            out.push_str("[email]");
        } else if digits >= 6 {
            out.push_str("[number]");
        } else {
            out.push_str(core);
        }
        out.push_str(tail);
    }
    out
}

#[cfg(test)]
mod log_tests {
    #[test]
    fn log_lines_carry_no_contact_details() {
        assert_eq!(super::redact("The 'To' number +84912345678 is invalid, user a.b@example.vn"), "The 'To' number [number] is invalid, user [email]");
        assert_eq!(super::redact("error -230: user not following"), "error -230: user not following");
        assert_eq!(super::pseudonym("ABC@x.vn"), super::pseudonym("abc@x.vn"));
        assert_eq!(super::pseudonym("1").len(), 12);
    }
}

