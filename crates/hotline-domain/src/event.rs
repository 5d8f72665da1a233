//! Ticket events (past-tense facts) and the envelope every stored event travels in.
//!
//! Events are stored as JSON envelopes: `{event_id, ticket_id, seq, prev_hash, event_type, schema_version,
//! occurred_at, recorded_at, actor, correlation_id, causation_id, data}`. `data` is the event body; its shape is
//! fixed by `event_type` and `schema_version`. Reading goes through [`Envelope::decode`], which upcasts older schema
//! versions to the current one, so stored history never has to be rewritten.
//!
//! Each stored event names the hash of the ticket's previous event (`prev_hash`, absent on the first): the SHA-256
//! of that event's JSON exactly as stored. A ticket's history is therefore a hash chain, and changing any stored
//! event breaks the link of the next one (docs/audit.md, docs/adr/0007).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::reference::Reference;

/// The schema version this code writes for every event type. Bump it per type when a body changes shape, and
/// teach [`upcast`] to read the old one.
pub const SCHEMA_VERSION: u32 = 1;

/// Who did something. Every event names one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    /// The channel name, service name, or token id, by kind.
    pub id: String,
    /// A person's or token's readable name, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The agency an agency user acts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A channel adapter acting for a citizen (the citizen is usually anonymous to us).
    Channel,
    /// One of our own services (router, scheduler).
    System,
    Operator,
    Agency,
    Supervisor,
    Admin,
}

impl ActorKind {
    /// As the stored envelope spells it (its serde name), without building a JSON value.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Channel => "channel",
            ActorKind::System => "system",
            ActorKind::Operator => "operator",
            ActorKind::Agency => "agency",
            ActorKind::Supervisor => "supervisor",
            ActorKind::Admin => "admin",
        }
    }
}

impl Actor {
    pub fn channel(name: &str) -> Actor {
        Actor { kind: ActorKind::Channel, id: name.to_owned(), name: None, agency: None }
    }
    pub fn system(service: &str) -> Actor {
        Actor { kind: ActorKind::System, id: service.to_owned(), name: None, agency: None }
    }
}

/// The citizen's contact details as the channel gave them. Personal data: never logged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Citizen {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The citizen's id at the hotline's Zalo Official Account (a 64-bit number, kept as text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zalo_id: Option<String>,
}

/// Where the problem is, as far as the channel knows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// Area code from the province config (validated at intake).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// A petition arrived on a channel and became a ticket. Always the first event of a ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PetitionReceived {
    pub reference: Reference,
    /// Channel name: `app`, `sms`, `email`, `zalo`, `phone`.
    pub channel: String,
    /// The channel's own id for the message (idempotency key, SMS message id, Message-ID...), used to recognise
    /// a retried intake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_ref: Option<String>,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The category the citizen or channel chose, if any (validated against the province config at intake).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citizen: Option<Citizen>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Files that came with the petition (an e-mail's attachments), kept in the blob store.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// The id of the citizen's key in the key store: the store encrypts this ticket's personal data with it
    /// (docs/privacy.md). One key per citizen (their phone, e-mail or Zalo id), or one of its own for a petition
    /// without contact details. Not secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citizen_key: Option<uuid::Uuid>,
}

/// The petition got its category (from the channel, or from the classifier).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PetitionCategorized {
    pub category: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    pub emergency: bool,
    /// 0.0..=1.0; 1.0 when the channel gave the category.
    pub confidence: f64,
    /// `channel` or `classifier`.
    pub source: String,
    /// What the classifier matched, for operators who wonder why ("category:electricity 'mat dien'").
    #[serde(default)]
    pub matched: Vec<String>,
}

/// The petition was assigned to the agency that must handle it. The agency's clock starts here: the deadlines
/// are computed from the province calendar when routing and stored, so a later change of the configuration does
/// not move a ticket's deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PetitionRouted {
    pub agency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    pub emergency: bool,
    /// When the agency must acknowledge it.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub acknowledge_by: Option<OffsetDateTime>,
    /// When it must be answered.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub resolve_by: Option<OffsetDateTime>,
}

/// Which of a ticket's two deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineKind {
    Acknowledge,
    Resolve,
}

/// A deadline is near (80% of its time has gone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadlineApproaching {
    pub which: DeadlineKind,
    #[serde(with = "time::serde::rfc3339")]
    pub due: OffsetDateTime,
}

/// A deadline passed; the ticket is escalated to the supervisors' queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadlineMissed {
    pub which: DeadlineKind,
    #[serde(with = "time::serde::rfc3339")]
    pub due: OffsetDateTime,
}

/// A supervisor moved the resolution deadline, with a reason (the actor is who approved it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadlineExtended {
    #[serde(with = "time::serde::rfc3339")]
    pub resolve_by: OffsetDateTime,
    pub reason: String,
}

/// Nothing matched with enough confidence: the petition waits for a person at the hotline desk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PetitionNeedsTriage {
    /// The desk's agency code.
    pub agency: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
}

/// The assigned agency took the petition on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PetitionAcknowledged {
    pub agency: String,
}

/// The agency (or the desk) asked the citizen for more information; the ticket waits for the citizen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InformationRequested {
    pub question: String,
}

/// The citizen answered a request for information; the ticket goes back to whoever asked, and its deadlines,
/// paused while it waited, resume with the working time they had left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CitizenReplied {
    pub text: String,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub acknowledge_by: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub resolve_by: Option<OffsetDateTime>,
    /// The channel's id of the message that carried the reply (an SMS id, a Message-ID), when it came by a channel:
    /// a redelivered message is recognised by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_ref: Option<String>,
    /// Files the citizen sent with the reply, kept in the blob store.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// The citizen wrote again about the ticket on their channel (an SMS quoting the reference, a reply to our
/// e-mail) while nobody was waiting for them: the message joins the ticket for whoever handles it, and changes
/// nothing else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CitizenWrote {
    pub text: String,
    /// The channel it came by: `sms`, `email`, `zalo`...
    pub channel: String,
    /// The channel's id of the message; a redelivered message is recognised by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// The assigned agency sent the petition back as not its competence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PetitionTransferred {
    /// The agency that sent it back.
    pub from_agency: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_agency: Option<String>,
    /// How many times the ticket has been sent back, this time included.
    pub bounces: u32,
}

/// The petition was answered, by its agency or from the hotline desk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PetitionAnswered {
    pub text: String,
    /// The agency code of who answered (the desk's code for the desk).
    pub agency: String,
    /// For a duplicate: the ticket whose answer this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via_ticket: Option<uuid::Uuid>,
    /// Documents that go with the answer (a decision, a map), by link.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// A document attached to an answer: a file the hotline keeps (by its SHA-256), or a link to where the agency
/// publishes it. Exactly one of the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The file in the hotline's blob store (uploaded with `POST /v1/attachments`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Size in bytes of a kept file, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

impl Attachment {
    /// At most this many per answer.
    pub const MAX: usize = 10;

    /// Checks what a client sent: a name, and an http(s) link of sensible length.
    pub fn validate(&self) -> Result<(), String> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err("an attachment needs a name of 1 to 200 characters".to_owned());
        }
        match (&self.url, &self.sha256) {
            (Some(url), None) => {
                let url = url.trim();
                if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2000 || url.contains(char::is_whitespace) {
                    return Err(format!("attachment `{name}` needs an http(s) link without spaces, at most 2000 characters"));
                }
            }
            (None, Some(hash)) => {
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                    return Err(format!("attachment `{name}`: sha256 is 64 lowercase hex digits"));
                }
            }
            _ => return Err(format!("attachment `{name}` needs either a url or the sha256 of an uploaded file")),
        }
        Ok(())
    }
}

/// An operator changed the category (and maybe the area); a `PetitionRouted` to the new agency follows in the
/// same commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PetitionRecategorized {
    pub category: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
}

/// An operator linked the petition to another ticket about the same problem. Nothing is deleted: the citizen
/// gets the other ticket's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarkedDuplicate {
    pub of_ticket: uuid::Uuid,
    pub of_reference: Reference,
}

/// Recorded on the original when another ticket is marked as its duplicate: the original's history knows every
/// duplicate, so its answer reaches them all (linking and answering the original are serialized by its version).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DuplicateLinked {
    pub duplicate: uuid::Uuid,
}

/// An operator rejected the petition as spam or abuse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PetitionRejected {
    pub reason: String,
}

/// The ticket was closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketClosed {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a reply to the citizen carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyKind {
    Answer,
    Question,
}

/// The citizen's channel delivered an answer or a question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplySent {
    pub kind: ReplyKind,
    /// The `PetitionAnswered` / `InformationRequested` event that was delivered.
    pub of_event: uuid::Uuid,
    pub channel: String,
    /// The channel's id for the sent message, when it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_message_id: Option<String>,
}

/// The citizen's channel could not deliver an answer or a question, for good (or after every retry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyFailed {
    pub kind: ReplyKind,
    pub of_event: uuid::Uuid,
    pub channel: String,
    pub reason: String,
    pub attempts: u32,
}

/// The citizen said whether the answer satisfied them. Satisfied closes the ticket (a `TicketClosed` follows);
/// not satisfied reopens it to the same agency (a `PetitionRouted` with fresh deadlines follows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackGiven {
    pub satisfied: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// What a call event says happened on the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallEventKind {
    /// The call reached the hotline's PBX.
    Started,
    /// Someone (a call-taker, an agent) picked it up.
    Answered,
    /// The call is over.
    Ended,
    /// A recording of the call exists (`recording` says where).
    Recording,
}

impl CallEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CallEventKind::Started => "started",
            CallEventKind::Answered => "answered",
            CallEventKind::Ended => "ended",
            CallEventKind::Recording => "recording",
        }
    }
}

/// A fact about the phone call behind a `phone` petition, reported by the PBX (or by the call-taker's intake, for
/// a recording). Facts may be reported before the petition is filed; they are recorded once it exists. Personal
/// data (the caller's number) is on the petition, never here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallLogged {
    /// The PBX's id of the call (the petition's `channel_ref`).
    pub call_id: String,
    /// What identifies this fact within the call (`started`, `ended`, `recording:<digest>`...): a ticket holds one
    /// event per key, so a PBX that reports a fact twice records it once.
    pub key: String,
    pub kind: CallEventKind,
    /// Which integration reported it: `generic`, `stringee`, `ami`, or `intake`.
    pub source: String,
    /// When it happened, by the PBX's clock.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub at: Option<OffsetDateTime>,
    /// `inbound` or `outbound`, when the PBX says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// The call-taker's extension or agent id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Ended calls: seconds from start to end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u64>,
    /// Ended calls: seconds from answer to end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub talk_secs: Option<u64>,
    /// Ended calls: the hang-up cause or disposition as the PBX names it (`NORMAL_CLEARING`, `ANSWERED`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Recordings: where the recording is (a URL or the PBX's file name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<String>,
}

/// The reason a reply channel gives when the citizen's number cannot take an SMS (a landline): the answer must be
/// given by calling the citizen back. `ReplyFailed` with a reason starting so, on a `phone` ticket, puts the ticket
/// in the operators' call-back queue.
pub const NO_MOBILE_NUMBER: &str = "no mobile number";

/// An operator called the citizen back with the reply their number could not receive by SMS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackDone {
    /// What the operator noted about the call.
    pub note: String,
}

/// Why personal data was erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasureReason {
    /// The citizen asked (`hotline citizen erase`).
    Request,
    /// The category's retention period ran out (the scheduler).
    Retention,
}

impl ErasureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ErasureReason::Request => "request",
            ErasureReason::Retention => "retention",
        }
    }
}

/// The citizen's personal data on this ticket is erased (docs/privacy.md): from here on every reader shows
/// [`ERASED`] in its place, and the key that encrypts it in the log is destroyed once no ticket that is not erased
/// still uses it. Nothing else about the ticket changes: its category, agency, deadlines and statistics stay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonalDataErased {
    pub reason: ErasureReason,
}

/// What every reader shows in place of erased personal data.
pub const ERASED: &str = "[erased]";

/// Where each event type keeps personal data: the JSON paths (object keys from the body's root; `*` for every
/// element of an array) of string values the store encrypts with the citizen's key, and that erasure replaces with
/// [`ERASED`]. The citizen's contact details and everything the citizen (or an operator about the citizen's call)
/// wrote in free text.
pub fn personal_fields(event_type: &str) -> &'static [&'static [&'static str]] {
    match event_type {
        "PetitionReceived" => &[
            &["text"],
            &["subject"],
            &["citizen", "name"],
            &["citizen", "phone"],
            &["citizen", "email"],
            &["citizen", "zalo_id"],
            &["location", "address"],
            &["attachments", "*", "name"],
        ],
        "CitizenReplied" | "CitizenWrote" => &[&["text"], &["attachments", "*", "name"]],
        "FeedbackGiven" => &[&["comment"]],
        "ReplyFailed" => &[&["reason"]],
        "CallbackDone" => &[&["note"]],
        "CallLogged" => &[&["recording"]],
        _ => &[],
    }
}

/// Applies `f` to every personal string value of a stored body of `event_type` (see [`personal_fields`]).
pub fn for_each_personal_field(event_type: &str, data: &mut serde_json::Value, f: &mut dyn FnMut(&mut String)) {
    fn walk(value: &mut serde_json::Value, path: &[&str], f: &mut dyn FnMut(&mut String)) {
        match (path.split_first(), value) {
            (None, serde_json::Value::String(text)) => f(text),
            (Some((&"*", rest)), serde_json::Value::Array(items)) => items.iter_mut().for_each(|item| walk(item, rest, f)),
            (Some((key, rest)), serde_json::Value::Object(map)) => {
                if let Some(next) = map.get_mut(*key) {
                    walk(next, rest, f);
                }
            }
            _ => {}
        }
    }
    for path in personal_fields(event_type) {
        walk(data, path, f);
    }
}

impl TicketEvent {
    /// The event with its personal data replaced by [`ERASED`] (as every reader shows it once the ticket's
    /// personal data is erased).
    pub fn erased(&self) -> TicketEvent {
        let Ok(mut data) = self.body() else { return self.clone() };
        for_each_personal_field(self.event_type(), &mut data, &mut |text| *text = ERASED.to_owned());
        match TicketEvent::from_body(self.event_type(), data) {
            Some(Ok(event)) => event,
            _ => self.clone(),
        }
    }
}

/// Every fact about a ticket.
// The first event is the big one (the petition with its contact, location and files), and there is one per
// ticket: boxing it would cost every reader a pattern through a Box for no measurable gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum TicketEvent {
    PetitionReceived(PetitionReceived),
    PetitionCategorized(PetitionCategorized),
    PetitionRouted(PetitionRouted),
    PetitionNeedsTriage(PetitionNeedsTriage),
    PetitionAcknowledged(PetitionAcknowledged),
    InformationRequested(InformationRequested),
    CitizenReplied(CitizenReplied),
    CitizenWrote(CitizenWrote),
    PetitionTransferred(PetitionTransferred),
    PetitionAnswered(PetitionAnswered),
    PetitionRecategorized(PetitionRecategorized),
    MarkedDuplicate(MarkedDuplicate),
    PetitionRejected(PetitionRejected),
    TicketClosed(TicketClosed),
    DeadlineApproaching(DeadlineApproaching),
    DeadlineMissed(DeadlineMissed),
    DeadlineExtended(DeadlineExtended),
    ReplySent(ReplySent),
    ReplyFailed(ReplyFailed),
    FeedbackGiven(FeedbackGiven),
    DuplicateLinked(DuplicateLinked),
    CallLogged(CallLogged),
    CallbackDone(CallbackDone),
    PersonalDataErased(PersonalDataErased),
}

/// Writes the three per-type tables (name, body, decode) of [`TicketEvent`] from one list, so a new event type
/// is added in one place.
macro_rules! event_types {
    ($($name:ident),* $(,)?) => {
        impl TicketEvent {
            /// The stable type name stored with the event. Never rename one: add a new type instead.
            pub fn event_type(&self) -> &'static str {
                match self { $(TicketEvent::$name(_) => stringify!($name),)* }
            }

            /// All type names, for documentation checks.
            pub const TYPES: &'static [&'static str] = &[$(stringify!($name)),*];

            fn body(&self) -> Result<serde_json::Value, serde_json::Error> {
                match self { $(TicketEvent::$name(e) => serde_json::to_value(e),)* }
            }

            /// The current shape of a body of `event_type` (after any upcasting).
            fn from_body(event_type: &str, data: serde_json::Value) -> Option<Result<TicketEvent, serde_json::Error>> {
                match event_type {
                    $(stringify!($name) => Some(serde_json::from_value(data).map(TicketEvent::$name)),)*
                    _ => None,
                }
            }
        }
    };
}

event_types!(
    PetitionReceived,
    PetitionCategorized,
    PetitionRouted,
    PetitionNeedsTriage,
    PetitionAcknowledged,
    InformationRequested,
    CitizenReplied,
    CitizenWrote,
    PetitionTransferred,
    PetitionAnswered,
    PetitionRecategorized,
    MarkedDuplicate,
    PetitionRejected,
    TicketClosed,
    DeadlineApproaching,
    DeadlineMissed,
    DeadlineExtended,
    ReplySent,
    ReplyFailed,
    FeedbackGiven,
    DuplicateLinked,
    CallLogged,
    CallbackDone,
    PersonalDataErased,
);

/// Metadata of one command, shared by the events it produces.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandMeta {
    pub actor: Actor,
    pub occurred_at: OffsetDateTime,
    /// The id of the whole conversation (an intake and everything it caused share it).
    pub correlation_id: Uuid,
    /// The event (or request) that caused this command, if any.
    pub causation_id: Option<Uuid>,
}

/// An event with everything needed to store, order, trace and audit it.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// UUIDv7: unique, and sorts by creation time.
    pub event_id: Uuid,
    pub ticket_id: Uuid,
    /// Position of the event in its ticket's history: 1, 2, 3... with no gaps.
    pub seq: u64,
    pub occurred_at: OffsetDateTime,
    /// When the store accepted it (set by the store just before the append).
    pub recorded_at: OffsetDateTime,
    pub actor: Actor,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub event: TicketEvent,
}

/// The stored form: what goes on the wire and what [`Envelope::decode`] reads back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredEnvelope {
    pub event_id: Uuid,
    pub ticket_id: Uuid,
    pub seq: u64,
    /// [`event_hash`] of the ticket's previous event as stored; `None` on its first event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_hash: Option<String>,
    pub event_type: String,
    pub schema_version: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    pub actor: Actor,
    pub correlation_id: Uuid,
    #[serde(default)]
    pub causation_id: Option<Uuid>,
    pub data: serde_json::Value,
}

/// A stored event this code cannot read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a stored event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unknown event type `{event_type}` (schema {schema_version}): this code is older than the log")]
    UnknownType { event_type: String, schema_version: u32 },
}

impl Envelope {
    /// Wraps the events of one command, numbering them after `last_seq`. `new_id` supplies event ids (UUIDv7 in
    /// production; the domain does not read the clock itself).
    pub fn seal(
        ticket_id: Uuid,
        last_seq: u64,
        events: Vec<TicketEvent>,
        meta: &CommandMeta,
        mut new_id: impl FnMut() -> Uuid,
    ) -> Vec<Envelope> {
        events
            .into_iter()
            .enumerate()
            .map(|(i, event)| Envelope {
                event_id: new_id(),
                ticket_id,
                seq: last_seq + i as u64 + 1,
                occurred_at: meta.occurred_at,
                recorded_at: meta.occurred_at,
                actor: meta.actor.clone(),
                correlation_id: meta.correlation_id,
                causation_id: meta.causation_id,
                event,
            })
            .collect()
    }

    pub fn event_type(&self) -> &'static str {
        self.event.event_type()
    }

    pub fn to_stored(&self) -> Result<StoredEnvelope, serde_json::Error> {
        Ok(StoredEnvelope {
            event_id: self.event_id,
            ticket_id: self.ticket_id,
            seq: self.seq,
            prev_hash: None,
            event_type: self.event_type().to_owned(),
            schema_version: SCHEMA_VERSION,
            occurred_at: self.occurred_at,
            recorded_at: self.recorded_at,
            actor: self.actor.clone(),
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            data: self.event.body()?,
        })
    }

    /// Reads a stored envelope, upcasting an older schema version of its body.
    pub fn decode(stored: StoredEnvelope) -> Result<Envelope, DecodeError> {
        let event = upcast(&stored.event_type, stored.schema_version, stored.data)?;
        Ok(Envelope {
            event_id: stored.event_id,
            ticket_id: stored.ticket_id,
            seq: stored.seq,
            occurred_at: stored.occurred_at,
            recorded_at: stored.recorded_at,
            actor: stored.actor,
            correlation_id: stored.correlation_id,
            causation_id: stored.causation_id,
            event,
        })
    }
}

/// Turns a stored body of any known schema version into the current event. Version 1 is the only one so far;
/// when a body changes, add a `(type, 1) => { rewrite the JSON value; fall through to the current shape }` arm.
fn upcast(event_type: &str, schema_version: u32, data: serde_json::Value) -> Result<TicketEvent, DecodeError> {
    let unknown = || DecodeError::UnknownType { event_type: event_type.to_owned(), schema_version };
    if schema_version == 0 || schema_version > SCHEMA_VERSION {
        return Err(unknown());
    }
    match TicketEvent::from_body(event_type, data) {
        Some(event) => Ok(event?),
        None => Err(unknown()),
    }
}

/// The hash that links a ticket's events: SHA-256 of one event's JSON exactly as stored, in lowercase hex.
pub fn event_hash(stored_json: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(stored_json);
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
        hex.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap_or('0'));
    }
    hex
}

/// One commit as it goes into the log.
#[derive(Debug, Clone)]
pub struct EncodedCommit {
    /// The JSON array stored as one log message.
    pub bytes: Vec<u8>,
    /// [`event_hash`] of the commit's last event: the `prev_hash` of the ticket's next event.
    pub last_hash: String,
}

/// Encodes the events of one commit (one command) as the JSON array stored in one log message, chaining each event
/// to the one before it: the first to `prev_hash` (the last event of the ticket's previous commit; `None` for a new
/// ticket). `body` may rewrite each event's stored body before it is hashed (the store encrypts personal data
/// there), so the chain covers exactly the stored bytes.
pub fn encode_commit_with(
    events: &[Envelope],
    prev_hash: Option<String>,
    mut body: impl FnMut(&Envelope, serde_json::Value) -> serde_json::Value,
) -> Result<EncodedCommit, serde_json::Error> {
    let mut bytes = Vec::with_capacity(512 * events.len());
    bytes.push(b'[');
    let mut prev = prev_hash;
    for (i, envelope) in events.iter().enumerate() {
        let mut stored = envelope.to_stored()?;
        stored.data = body(envelope, stored.data);
        stored.prev_hash = prev.take();
        let json = serde_json::to_vec(&stored)?;
        if i > 0 {
            bytes.push(b',');
        }
        bytes.extend_from_slice(&json);
        prev = Some(event_hash(&json));
    }
    bytes.push(b']');
    Ok(EncodedCommit { bytes, last_hash: prev.unwrap_or_default() })
}

/// [`encode_commit_with`] without rewriting the bodies.
pub fn encode_commit(events: &[Envelope], prev_hash: Option<String>) -> Result<EncodedCommit, serde_json::Error> {
    encode_commit_with(events, prev_hash, |_, data| data)
}

/// A stored commit's events as they were written: each one's stored form and its [`event_hash`], computed over its
/// exact bytes in the message (not a re-serialisation), so any change to a stored event changes its hash.
pub fn stored_events(bytes: &[u8]) -> Result<Vec<(StoredEnvelope, String)>, serde_json::Error> {
    let raw: Vec<&serde_json::value::RawValue> = serde_json::from_slice(bytes)?;
    raw.into_iter()
        .map(|event| {
            let json = event.get();
            Ok((serde_json::from_str(json)?, event_hash(json.as_bytes())))
        })
        .collect()
}

/// Decodes one stored commit, with each event's [`event_hash`] (the chain's link, what an audit export shows).
pub fn decode_commit_hashed(bytes: &[u8]) -> Result<(Vec<Envelope>, Vec<String>), DecodeError> {
    let mut events = Vec::new();
    let mut hashes = Vec::new();
    for (stored, hash) in stored_events(bytes)? {
        events.push(Envelope::decode(stored)?);
        hashes.push(hash);
    }
    Ok((events, hashes))
}

/// Decodes one stored commit.
pub fn decode_commit(bytes: &[u8]) -> Result<Vec<Envelope>, DecodeError> {
    let stored: Vec<StoredEnvelope> = serde_json::from_slice(bytes)?;
    stored.into_iter().map(Envelope::decode).collect()
}

/// When a deadline set at `set_at` and due at `due` counts as approaching: once 80% of its time has gone.
pub fn approaching_at(set_at: OffsetDateTime, due: OffsetDateTime) -> OffsetDateTime {
    if due <= set_at {
        return due;
    }
    set_at + (due - set_at) * 0.8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_kinds_are_spelled_as_the_stored_envelope_spells_them() {
        for kind in [ActorKind::Channel, ActorKind::System, ActorKind::Operator, ActorKind::Agency, ActorKind::Supervisor, ActorKind::Admin] {
            assert_eq!(serde_json::to_value(kind).ok(), Some(serde_json::Value::from(kind.as_str())));
        }
    }
}
