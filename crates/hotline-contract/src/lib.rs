//! The hotline's published event contract: the messages other provincial systems read from the feed.
//!
//! The schema is `proto/hotline/v1/*.proto` (package `hotline.v1`) at the repository root; this crate maps each
//! internal event ([`hotline_domain::Envelope`]) to the feed messages that publish it ([`feed_messages`]) and gives
//! their CloudEvents headers ([`ce_headers`]). It is pure: no NATS, no I/O. The projector (in the store) publishes
//! what it returns. docs/feed.md is the subscribers' description; the tests check the JSON against the compiled
//! protos, the protos against a compatibility baseline, and the docs against the protos.
//!
//! Privacy rule: the public message of an event carries codes, ids, times, counts and the ticket's state, never a
//! citizen's contact details and never free text (what a citizen wrote, and also what an official wrote, which
//! routinely names or quotes the citizen). The copy for the agency the ticket is assigned to carries everything.
//!
//! Erasure rule: once a ticket's personal data is erased (`PersonalDataErased`, `Ticket::erased`), its agency
//! copies carry [`ERASED`] in every personal field, whatever the event bodies still hold (a process may decrypt a
//! later event with a key it cached before the erasure), and the erasure itself is sent to every agency that ever
//! held the ticket ([`FeedTicket`]), so that each of them erases its own copies.

mod headers;
mod json;

use std::borrow::Cow;

pub use hotline_domain::event::ERASED;
use hotline_domain::event::{
    ActorKind, Attachment, CallEventKind, Citizen, DeadlineKind, ErasureReason, Location, ReplyKind, TicketEvent,
};
use hotline_domain::{Envelope, Status, Ticket};
use serde_json::Value;

pub use headers::{DATA_CONTENT_TYPE, SPEC_VERSION, ce_headers, percent_decode, percent_encode};
pub use json::{CUT_MARK, MAX_TEXT_BYTES};

use json::Obj;

/// The proto package of this contract version.
pub const PACKAGE: &str = "hotline.v1";
/// Every feed subject starts with this; the stream `HOTLINE_FEED` holds `hotline.feed.v1.>`.
pub const SUBJECT_PREFIX: &str = "hotline.feed.v1";
/// The audience token of the public feed's subjects.
pub const PUBLIC: &str = "public";
/// `ce-type` is this, a dot, and the event type in snake case.
pub const TYPE_PREFIX: &str = "vn.gov.hotline.v1";
/// `ce-dataschema` is this followed by the message's full proto name (`proto:hotline.v1.PetitionRouted`).
pub const DATASCHEMA_PREFIX: &str = "proto:";
/// The most attachments listed in one published message (`attachmentCount` always gives the real number): keeps
/// a message well under the feed's 64 KiB limit whatever an e-mail brought.
pub const MAX_LISTED_ATTACHMENTS: usize = 20;

/// Who a feed message is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Audience {
    /// Everyone allowed to read the public feed: no citizen contact, no free text.
    Public,
    /// The agency (by code) the ticket is assigned to after the event: everything.
    Agency(String),
}

impl Audience {
    /// The audience's token in feed subjects: `public` or the agency code.
    pub fn token(&self) -> &str {
        match self {
            Audience::Public => PUBLIC,
            Audience::Agency(code) => code,
        }
    }
}

/// One message to publish on the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedMessage {
    /// Who it is for.
    pub audience: Audience,
    /// `hotline.feed.v1.<audience>.<event_type_snake>.<ticket id>`: audience `public` or the agency code; the
    /// ticket id last, so one ticket's messages can be found by subject ([`ticket_filter`]).
    pub subject: String,
    /// ce-id and Nats-Msg-Id: `<event uuid>` for the public message, `<event uuid>:<agency>` for an agency copy.
    pub id: String,
    /// `vn.gov.hotline.v1.<event_type_snake>`.
    pub ce_type: String,
    /// `/hotline/<province code>`.
    pub ce_source: String,
    /// The ticket id (UUID), never a reference, phone or name.
    pub ce_subject: String,
    /// RFC 3339 time the event occurred, UTC, as in the payload's `event.occurredAt`.
    pub ce_time: String,
    /// `proto:hotline.v1.<MessageName>`: the message in proto/hotline/v1 that `data` is the JSON of.
    pub ce_dataschema: String,
    /// The proto3 JSON mapping of the message (lowerCamelCase names, 64-bit integers as strings, enums by name,
    /// timestamps as RFC 3339 strings, defaults omitted).
    pub data: Value,
}

/// `PetitionRouted` → `petition_routed`: the event type's token in subjects and ce-type.
pub fn snake_case(event_type: &str) -> String {
    let mut out = String::with_capacity(event_type.len() + 4);
    for (i, c) in event_type.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether an agency code can be the audience token of an agency copy. Province validation already refuses other
/// codes; this is the second lock: a code equal to `public` would put full copies (citizen contact, petition text)
/// into the public feed, and one with `.`, `*`, `>` or spaces would land on other subjects or none, so such a
/// ticket gets no agency copy at all.
pub fn is_agency_token(code: &str) -> bool {
    !code.is_empty()
        && code != PUBLIC
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The subject filter that matches every feed message of one ticket, all audiences:
/// `hotline.feed.v1.*.*.<ticket id>`.
pub fn ticket_filter(ticket_id: uuid::Uuid) -> String {
    format!("{SUBJECT_PREFIX}.*.*.{ticket_id}")
}

/// The audience token of a feed subject (`public` or an agency code) and its ticket id (the last token); None when
/// the subject is not a feed subject of this contract version.
pub fn parse_subject(subject: &str) -> Option<(&str, uuid::Uuid)> {
    let rest = subject.strip_prefix(SUBJECT_PREFIX)?.strip_prefix('.')?;
    let mut tokens = rest.split('.');
    let (audience, _type, ticket) = (tokens.next()?, tokens.next()?, tokens.next()?);
    if tokens.next().is_some() || audience.is_empty() {
        return None;
    }
    Some((audience, ticket.parse().ok()?))
}

/// The published messages for one internal event, given the ticket as it stood after it (`Ticket::apply` of this
/// envelope): first the public message, then, when the ticket has an agency after the event, that agency's copy.
/// The order is fixed, so a projector can number the parts of a commit. (A projector uses [`FeedTicket`], which
/// also sends an erasure to the agencies that held the ticket before.)
pub fn feed_messages(envelope: &Envelope, after: &Ticket, province_code: &str) -> Vec<FeedMessage> {
    let mut audiences = vec![Audience::Public];
    if let Some(agency) = current_agency(after) {
        audiences.push(Audience::Agency(agency.to_owned()));
    }
    messages_for(envelope, after, province_code, audiences)
}

/// A ticket as the feed sees it: its state, and every agency that has received an agency copy of it (those hold
/// its personal data, so each of them must hear of its erasure, even after the ticket moved on to another agency).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedTicket {
    /// The ticket after the last event applied.
    pub ticket: Ticket,
    /// Agency codes that received an agency copy, in the order they first did.
    pub holders: Vec<String>,
}

impl FeedTicket {
    /// Folds a history: the state and holders after its last event.
    pub fn from_history<'a>(events: impl IntoIterator<Item = &'a Envelope>) -> FeedTicket {
        let mut feed = FeedTicket::default();
        for event in events {
            feed.ticket.apply(event);
            feed.hold();
        }
        feed
    }

    /// Applies `envelope` and returns its feed messages: those of [`feed_messages`], and for `PersonalDataErased`
    /// one more agency copy for each earlier holder that does not hold the ticket now.
    pub fn apply(&mut self, envelope: &Envelope, province_code: &str) -> Vec<FeedMessage> {
        self.ticket.apply(envelope);
        let mut audiences = vec![Audience::Public];
        let current = current_agency(&self.ticket).map(str::to_owned);
        if let Some(agency) = &current {
            audiences.push(Audience::Agency(agency.clone()));
        }
        if matches!(envelope.event, TicketEvent::PersonalDataErased(_)) {
            let earlier = self.holders.iter().filter(|h| Some(*h) != current.as_ref());
            audiences.extend(earlier.map(|h| Audience::Agency(h.clone())));
        }
        self.hold();
        messages_for(envelope, &self.ticket, province_code, audiences)
    }

    /// Records the current agency as a holder (it gets an agency copy of the event just applied).
    fn hold(&mut self) {
        if let Some(agency) = current_agency(&self.ticket)
            && !self.holders.iter().any(|h| h == agency)
        {
            self.holders.push(agency.to_owned());
        }
    }
}

/// The agency that gets an agency copy of the ticket's events now, if its code is a safe audience token.
fn current_agency(ticket: &Ticket) -> Option<&str> {
    ticket.agency.as_deref().filter(|a| is_agency_token(a))
}

fn messages_for(envelope: &Envelope, after: &Ticket, province_code: &str, audiences: Vec<Audience>) -> Vec<FeedMessage> {
    let event_type = envelope.event_type();
    let snake = snake_case(event_type);
    // An erased ticket's events may still hold personal data (decrypted with a key cached before the erasure):
    // what the feed publishes of them never does.
    let event = if after.erased { Cow::Owned(envelope.event.erased()) } else { Cow::Borrowed(&envelope.event) };
    audiences
        .into_iter()
        .map(|audience| {
            let full = matches!(audience, Audience::Agency(_));
            let data = Obj::new()
                .msg("event", event_info(envelope, province_code, &audience))
                .msg("ticket", ticket_state(envelope, after))
                .merge(body(&event, after, full))
                .into_value();
            FeedMessage {
                subject: format!("{SUBJECT_PREFIX}.{}.{snake}.{}", audience.token(), envelope.ticket_id),
                id: match &audience {
                    Audience::Public => envelope.event_id.to_string(),
                    Audience::Agency(code) => format!("{}:{code}", envelope.event_id),
                },
                ce_type: format!("{TYPE_PREFIX}.{snake}"),
                ce_source: format!("/hotline/{province_code}"),
                ce_subject: envelope.ticket_id.to_string(),
                ce_time: json::timestamp(envelope.occurred_at),
                ce_dataschema: format!("{DATASCHEMA_PREFIX}{PACKAGE}.{event_type}"),
                data,
                audience,
            }
        })
        .collect()
}

/// `EventInfo`.
fn event_info(envelope: &Envelope, province_code: &str, audience: &Audience) -> Obj {
    let actor = &envelope.actor;
    let full = matches!(audience, Audience::Agency(_));
    let actor = Obj::new()
        .enumeration("kind", actor_kind(actor.kind))
        .str("id", &actor.id)
        .opt_str("name", actor.name.as_deref().filter(|_| full))
        .opt_str("agency", actor.agency.as_deref());
    let (audience_name, agency) = match audience {
        Audience::Public => ("AUDIENCE_PUBLIC", ""),
        Audience::Agency(code) => ("AUDIENCE_AGENCY", code.as_str()),
    };
    Obj::new()
        .str("eventId", &envelope.event_id.to_string())
        .str("ticketId", &envelope.ticket_id.to_string())
        .u64("seq", envelope.seq)
        .str("type", envelope.event_type())
        .time("occurredAt", Some(envelope.occurred_at))
        .time("recordedAt", Some(envelope.recorded_at))
        .msg("actor", actor)
        .str("correlationId", &envelope.correlation_id.to_string())
        .opt_str("causationId", envelope.causation_id.map(|c| c.to_string()).as_deref())
        .str("province", province_code)
        .enumeration("audience", audience_name)
        .str("agency", agency)
}

/// `TicketState`: the same for both audiences (codes, times and ids only).
fn ticket_state(envelope: &Envelope, after: &Ticket) -> Obj {
    let d = &after.deadlines;
    let deadlines = Obj::new()
        .time("acknowledgeBy", d.acknowledge_by)
        .time("resolveBy", d.resolve_by)
        .time("pausedSince", d.paused_at)
        .time("currentDue", d.current_due(after.status))
        .boolean("escalated", d.escalated);
    let duplicates: Vec<String> = after.duplicates.iter().map(|u| u.to_string()).collect();
    Obj::new()
        .str("ticketId", &after.id.unwrap_or(envelope.ticket_id).to_string())
        .opt_str("reference", after.reference.as_ref().map(|r| r.as_str()))
        .enumeration("status", ticket_status(after.status))
        .opt_str("channel", after.channel.as_deref())
        .opt_str("category", after.category.as_deref())
        .opt_str("area", after.area.as_deref())
        .opt_str("agency", after.agency.as_deref())
        .boolean("emergency", after.emergency)
        .time("receivedAt", after.received_at)
        .msg("deadlines", deadlines)
        .u32("bounces", after.bounces)
        .opt_str("duplicateOf", after.duplicate_of.map(|u| u.to_string()).as_deref())
        .strings("duplicates", duplicates.iter().map(String::as_str))
        .time("answeredAt", after.answered_at)
        .boolean("callbackDue", after.callback_due)
        .boolean("personalDataErased", after.erased)
}

/// The event's own fields (3 on). `full`: the agency copy, with contact details and free text.
fn body(event: &TicketEvent, after: &Ticket, full: bool) -> Obj {
    // Agency-copy-only values: `None` in the public message.
    fn only<T>(full: bool, value: T) -> Option<T> {
        full.then_some(value)
    }
    let o = Obj::new();
    match event {
        TicketEvent::PetitionReceived(e) => o
            .str("channel", &e.channel)
            .opt_str("category", e.category.as_deref())
            .opt_msg("location", e.location.as_ref().map(|l| location(l, full)))
            .u32("attachmentCount", count(&e.attachments))
            .boolean("hasSubject", e.subject.as_deref().is_some_and(|s| !s.trim().is_empty())),
        TicketEvent::PetitionCategorized(e) => o
            .str("category", &e.category)
            .opt_str("area", e.area.as_deref())
            .boolean("emergency", e.emergency)
            .f64("confidence", e.confidence)
            .str("source", &e.source)
            // The rules' matches quote the citizen's words.
            .strings(
                "matched",
                only(full, &e.matched).into_iter().flatten().map(|m| if after.erased { ERASED } else { m.as_str() }),
            ),
        TicketEvent::PetitionRouted(e) => o
            .str("agency", &e.agency)
            .opt_str("area", e.area.as_deref())
            .boolean("emergency", e.emergency)
            .time("acknowledgeBy", e.acknowledge_by)
            .time("resolveBy", e.resolve_by)
            .opt_msg("petition", only(full, ()).map(|()| petition(after))),
        TicketEvent::PetitionNeedsTriage(e) => o
            .str("agency", &e.agency)
            .opt_str("suggestedCategory", e.suggested_category.as_deref())
            .opt_str("area", e.area.as_deref())
            .opt_text("reason", only(full, e.reason.as_str()))
            .opt_msg("petition", only(full, ()).map(|()| petition(after))),
        TicketEvent::PetitionAcknowledged(e) => o.str("agency", &e.agency),
        TicketEvent::InformationRequested(e) => o.opt_text("question", only(full, e.question.as_str())),
        TicketEvent::CitizenReplied(e) => o
            .time("acknowledgeBy", e.acknowledge_by)
            .time("resolveBy", e.resolve_by)
            .u32("attachmentCount", count(&e.attachments))
            .opt_text("text", only(full, e.text.as_str()))
            .msgs("attachments", attachments(only(full, &e.attachments))),
        TicketEvent::CitizenWrote(e) => o
            .str("channel", &e.channel)
            .u32("attachmentCount", count(&e.attachments))
            .opt_text("text", only(full, e.text.as_str()))
            .msgs("attachments", attachments(only(full, &e.attachments))),
        TicketEvent::PetitionTransferred(e) => o
            .str("fromAgency", &e.from_agency)
            .opt_str("suggestedAgency", e.suggested_agency.as_deref())
            .u32("bounces", e.bounces)
            .opt_text("reason", only(full, e.reason.as_str())),
        TicketEvent::PetitionAnswered(e) => o
            .str("agency", &e.agency)
            .opt_str("viaTicket", e.via_ticket.map(|u| u.to_string()).as_deref())
            .u32("attachmentCount", count(&e.attachments))
            .opt_text("text", only(full, e.text.as_str()))
            .msgs("attachments", attachments(only(full, &e.attachments))),
        TicketEvent::PetitionRecategorized(e) => o.str("category", &e.category).opt_str("area", e.area.as_deref()),
        TicketEvent::MarkedDuplicate(e) => {
            o.str("ofTicket", &e.of_ticket.to_string()).str("ofReference", e.of_reference.as_str())
        }
        TicketEvent::DuplicateLinked(e) => o.str("duplicate", &e.duplicate.to_string()),
        TicketEvent::PetitionRejected(e) => o.opt_text("reason", only(full, e.reason.as_str())),
        TicketEvent::TicketClosed(e) => o.opt_text("reason", e.reason.as_deref().filter(|_| full)),
        TicketEvent::DeadlineApproaching(e) => {
            o.enumeration("which", deadline_kind(e.which)).time("due", Some(e.due))
        }
        TicketEvent::DeadlineMissed(e) => o.enumeration("which", deadline_kind(e.which)).time("due", Some(e.due)),
        TicketEvent::DeadlineExtended(e) => {
            o.time("resolveBy", Some(e.resolve_by)).opt_text("reason", only(full, e.reason.as_str()))
        }
        TicketEvent::ReplySent(e) => o
            .enumeration("kind", reply_kind(e.kind))
            .str("ofEvent", &e.of_event.to_string())
            .str("channel", &e.channel)
            .opt_str("channelMessageId", e.channel_message_id.as_deref().filter(|_| full)),
        TicketEvent::ReplyFailed(e) => o
            .enumeration("kind", reply_kind(e.kind))
            .str("ofEvent", &e.of_event.to_string())
            .str("channel", &e.channel)
            .u32("attempts", e.attempts)
            .opt_text("reason", only(full, e.reason.as_str())),
        TicketEvent::FeedbackGiven(e) => {
            o.boolean("satisfied", e.satisfied).opt_text("comment", e.comment.as_deref().filter(|_| full))
        }
        TicketEvent::CallLogged(e) => o
            .enumeration("kind", call_event_kind(e.kind))
            .str("source", &e.source)
            .time("at", e.at)
            .opt_str("direction", e.direction.as_deref())
            .opt_u64("durationSecs", e.duration_secs)
            .opt_u64("talkSecs", e.talk_secs)
            .opt_str("cause", e.cause.as_deref())
            .opt_str("callId", only(full, e.call_id.as_str()))
            .opt_str("key", only(full, e.key.as_str()))
            .opt_str("agent", e.agent.as_deref().filter(|_| full))
            .opt_text("recording", e.recording.as_deref().filter(|_| full)),
        TicketEvent::CallbackDone(e) => o.opt_text("note", only(full, e.note.as_str())),
        TicketEvent::PersonalDataErased(e) => o.enumeration("reason", erasure_reason(e.reason)),
    }
}

/// `PetitionSnapshot`, from the ticket's state (agency copy only).
fn petition(after: &Ticket) -> Obj {
    // The area as routed (the router may have found it in the text), with the coordinates and the address the
    // citizen gave.
    let given = after.location.clone().unwrap_or_default();
    let place = Location { area: after.area.clone().or(given.area.clone()), ..given };
    let place = (place.area.is_some() || place.lat.is_some() || place.lon.is_some() || place.address.is_some())
        .then(|| location(&place, true));
    Obj::new()
        .opt_str("reference", after.reference.as_ref().map(|r| r.as_str()))
        .opt_str("channel", after.channel.as_deref())
        .time("receivedAt", after.received_at)
        .opt_text("text", after.text.as_deref())
        .opt_msg("citizen", after.citizen.as_ref().map(citizen))
        .opt_msg("location", place)
        .opt_str("category", after.category.as_deref())
        .opt_text("subject", after.subject.as_deref())
        .msgs("attachments", attachments(Some(&after.attachments)))
}

fn citizen(c: &Citizen) -> Obj {
    Obj::new()
        .opt_text("name", c.name.as_deref())
        .opt_text("phone", c.phone.as_deref())
        .opt_text("email", c.email.as_deref())
        .opt_text("zaloId", c.zalo_id.as_deref())
}

/// `Location`; `full` false: coordinates rounded to 0.01 degree and no address (free text the citizen wrote).
fn location(l: &Location, full: bool) -> Obj {
    let coarse = |x: Option<f64>| if full { x } else { x.map(|x| (x * 100.0).round() / 100.0) };
    Obj::new()
        .opt_str("area", l.area.as_deref())
        .opt_f64("lat", coarse(l.lat))
        .opt_f64("lon", coarse(l.lon))
        .opt_text("address", l.address.as_deref().filter(|_| full).map(|a| json::cut(a, 1024)).as_deref())
}

fn attachments(list: Option<&Vec<Attachment>>) -> Vec<Obj> {
    list.into_iter()
        .flatten()
        .take(MAX_LISTED_ATTACHMENTS)
        .map(|a| {
            Obj::new()
                .text("name", &json::cut(&a.name, 255))
                .opt_str("sha256", a.sha256.as_deref())
                // A link cut short would lead nowhere: links longer than the API accepts are left out.
                .opt_str("url", a.url.as_deref().filter(|u| u.len() <= 2048))
                .opt_text("mediaType", a.media_type.as_deref().map(|m| json::cut(m, 255)).as_deref())
                .opt_u64("size", a.size)
        })
        .collect()
}

fn count(list: &[Attachment]) -> u32 {
    u32::try_from(list.len()).unwrap_or(u32::MAX)
}

fn ticket_status(status: Status) -> &'static str {
    match status {
        Status::None => "TICKET_STATUS_UNSPECIFIED",
        Status::Received => "TICKET_STATUS_RECEIVED",
        Status::Routed => "TICKET_STATUS_ROUTED",
        Status::NeedsTriage => "TICKET_STATUS_NEEDS_TRIAGE",
        Status::Acknowledged => "TICKET_STATUS_ACKNOWLEDGED",
        Status::WaitingForCitizen => "TICKET_STATUS_WAITING_FOR_CITIZEN",
        Status::Transferred => "TICKET_STATUS_TRANSFERRED",
        Status::Answered => "TICKET_STATUS_ANSWERED",
        Status::Closed => "TICKET_STATUS_CLOSED",
        Status::Rejected => "TICKET_STATUS_REJECTED",
        Status::Duplicate => "TICKET_STATUS_DUPLICATE",
    }
}

fn actor_kind(kind: ActorKind) -> &'static str {
    match kind {
        ActorKind::Channel => "ACTOR_KIND_CHANNEL",
        ActorKind::System => "ACTOR_KIND_SYSTEM",
        ActorKind::Operator => "ACTOR_KIND_OPERATOR",
        ActorKind::Agency => "ACTOR_KIND_AGENCY",
        ActorKind::Supervisor => "ACTOR_KIND_SUPERVISOR",
        ActorKind::Admin => "ACTOR_KIND_ADMIN",
    }
}

fn deadline_kind(kind: DeadlineKind) -> &'static str {
    match kind {
        DeadlineKind::Acknowledge => "DEADLINE_KIND_ACKNOWLEDGE",
        DeadlineKind::Resolve => "DEADLINE_KIND_RESOLVE",
    }
}

fn reply_kind(kind: ReplyKind) -> &'static str {
    match kind {
        ReplyKind::Answer => "REPLY_KIND_ANSWER",
        ReplyKind::Question => "REPLY_KIND_QUESTION",
    }
}

fn erasure_reason(reason: ErasureReason) -> &'static str {
    match reason {
        ErasureReason::Request => "ERASURE_REASON_REQUEST",
        ErasureReason::Retention => "ERASURE_REASON_RETENTION",
    }
}

fn call_event_kind(kind: CallEventKind) -> &'static str {
    match kind {
        CallEventKind::Started => "CALL_EVENT_KIND_STARTED",
        CallEventKind::Answered => "CALL_EVENT_KIND_ANSWERED",
        CallEventKind::Ended => "CALL_EVENT_KIND_ENDED",
        CallEventKind::Recording => "CALL_EVENT_KIND_RECORDING",
    }
}
