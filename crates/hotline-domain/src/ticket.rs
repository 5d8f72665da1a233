//! The ticket aggregate: its state, the commands it accepts, and the pure `decide` / `apply` pair.
//!
//! `decide(&ticket, command)` returns the new events or a business rejection; it never mutates. `apply` folds one
//! stored event into the state. Loading a ticket is `apply` over its history; handling a command is load, decide,
//! append with the expected version, and on a conflict, again.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::access::{Principal, Role};
use crate::calendar::{Deadlines, Span};
use crate::province::Province;
use crate::deadline::DeadlineState;
use crate::event::{
    Attachment, Citizen, CitizenReplied, CitizenWrote, DuplicateLinked, Envelope, InformationRequested, Location, MarkedDuplicate, PetitionAcknowledged,
    PetitionAnswered, PetitionCategorized, PetitionNeedsTriage, PetitionReceived, PetitionRecategorized,
    PetitionRejected, PetitionRouted, PetitionTransferred, TicketClosed, TicketEvent, DeadlineExtended, FeedbackGiven,
    ReplyFailed, ReplyKind, ReplySent, CallLogged, CallbackDone, NO_MOBILE_NUMBER, ErasureReason, PersonalDataErased, ERASED,
};
use crate::reference::Reference;

/// Where a ticket stands. docs/workflow.md draws the transitions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No events: the ticket does not exist.
    #[default]
    None,
    /// Received, not routed yet.
    Received,
    /// Assigned to an agency, not acknowledged yet.
    Routed,
    /// Waiting for a person at the hotline desk.
    NeedsTriage,
    /// The agency took it on.
    Acknowledged,
    /// Waiting for the citizen to answer a question; deadlines pause.
    WaitingForCitizen,
    /// Sent back by an agency; waiting for the router.
    Transferred,
    /// Answered; waiting for the citizen's feedback or closing.
    Answered,
    Closed,
    /// Spam or abuse.
    Rejected,
    /// Linked to another ticket that carries the work.
    Duplicate,
}

impl Status {
    /// Reads [`Status::as_str`] back.
    pub fn parse(text: &str) -> Option<Status> {
        [
            Status::Received,
            Status::Routed,
            Status::NeedsTriage,
            Status::Acknowledged,
            Status::WaitingForCitizen,
            Status::Transferred,
            Status::Answered,
            Status::Closed,
            Status::Rejected,
            Status::Duplicate,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::None => "none",
            Status::Received => "received",
            Status::Routed => "routed",
            Status::NeedsTriage => "needs_triage",
            Status::Acknowledged => "acknowledged",
            Status::WaitingForCitizen => "waiting_for_citizen",
            Status::Transferred => "transferred",
            Status::Answered => "answered",
            Status::Closed => "closed",
            Status::Rejected => "rejected",
            Status::Duplicate => "duplicate",
        }
    }

    /// Still being worked on: not answered, closed, rejected or merged into another ticket.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Status::Received
                | Status::Routed
                | Status::NeedsTriage
                | Status::Acknowledged
                | Status::WaitingForCitizen
                | Status::Transferred
        )
    }
}

/// A ticket's current state, folded from its events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ticket {
    pub id: Option<Uuid>,
    /// Seq of the last applied event (0 = none).
    pub seq: u64,
    pub status: Status,
    pub reference: Option<Reference>,
    pub channel: Option<String>,
    pub channel_ref: Option<String>,
    pub category: Option<String>,
    pub area: Option<String>,
    pub agency: Option<String>,
    pub emergency: bool,
    pub received_at: Option<OffsetDateTime>,
    pub text: Option<String>,
    /// How many times agencies sent it back.
    pub bounces: u32,
    /// Where a ticket waiting for the citizen goes back to when the citizen answers.
    pub resume_to: Option<Status>,
    /// The agencies that sent it back (the router does not send it to them again).
    pub bounced_from: Vec<String>,
    /// Its deadlines and the alarms already fired.
    pub deadlines: DeadlineState,
    /// When it was last answered (for closing after the citizen's silence).
    pub answered_at: Option<OffsetDateTime>,
    /// Who gave the last answer: a reopened ticket goes back to them.
    pub last_answer_agency: Option<String>,
    /// The ticket this one duplicates.
    pub duplicate_of: Option<Uuid>,
    /// The tickets marked as duplicates of this one.
    pub duplicates: Vec<Uuid>,
    /// The last answer given on this ticket itself (not received as a duplicate), for its duplicates.
    pub last_answer: Option<PetitionAnswered>,
    /// Answers and questions delivered to the citizen (or given up), by the id of their event and the channel that
    /// reported it: a reply is never sent twice on one channel, and a fallback channel can take one the first
    /// channel could not deliver.
    pub replies_done: Vec<(Uuid, String)>,
    /// The citizen's contact details as the petition gave them (a follow-up must come from the same address).
    pub citizen: Option<Citizen>,
    /// Channel ids of every citizen message on the ticket (the petition's first), oldest first: a redelivered
    /// message is recognised, and e-mail answers thread onto them.
    pub channel_refs: Vec<String>,
    /// When the pending question was asked (while waiting for the citizen).
    pub asked_at: Option<OffsetDateTime>,
    /// The petition's subject, location and files as received (what an agency's system needs with the ticket).
    pub subject: Option<String>,
    pub location: Option<Location>,
    pub attachments: Vec<Attachment>,
    /// Keys of the call events recorded on a phone ticket: a fact the PBX reports twice is recorded once.
    pub call_keys: Vec<String>,
    /// A reply could not reach the citizen by SMS (no mobile number): an operator must call them back.
    pub callback_due: bool,
    /// The key the store encrypts this ticket's personal data with (docs/privacy.md).
    pub citizen_key: Option<Uuid>,
    /// The citizen's personal data is erased: the fields that held it show [`ERASED`], and nothing is sent to
    /// the citizen any more.
    pub erased: bool,
}

/// What someone asks a ticket to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// A channel received a petition: open the ticket under `reference`.
    ReceivePetition { reference: Reference, petition: NewPetition },
    /// The router decided where the petition goes (first routing, or again after a transfer).
    Route(RouteCommand),
    /// The assigned agency takes the petition on.
    Acknowledge { by: Principal },
    /// Ask the citizen for more information.
    RequestInfo { by: Principal, question: String },
    /// The citizen answered the question (from their channel). The deadlines resume with the time they had left:
    /// the caller computes them with [`DeadlineState::resumed`].
    CitizenReply { text: String, acknowledge_by: Option<OffsetDateTime>, resolve_by: Option<OffsetDateTime> },
    /// A message from the citizen came in on a channel for this ticket: the reply to a pending question
    /// (`CitizenReplied`, deadlines resumed as for [`Command::CitizenReply`]), else more information
    /// (`CitizenWrote`). A message whose `channel_ref` is already on the ticket is a redelivery: nothing happens.
    CitizenMessage {
        channel: String,
        channel_ref: Option<String>,
        text: String,
        attachments: Vec<Attachment>,
        acknowledge_by: Option<OffsetDateTime>,
        resolve_by: Option<OffsetDateTime>,
    },
    /// The assigned agency sends the petition back as not its competence. `desk` is the hotline desk's agency
    /// code, where the ticket goes after [`MAX_BOUNCES`].
    Transfer { by: Principal, reason: String, suggested_agency: Option<String>, desk: String },
    /// The assigned agency, or the desk (`desk` is its agency code), answers, with documents by link.
    Answer { by: Principal, text: String, desk: String, attachments: Vec<Attachment> },
    /// The desk changes the category (and area); `agency` is where the province rules send it now, with the
    /// new agency's deadlines.
    Recategorize {
        by: Principal,
        category: String,
        area: Option<String>,
        agency: String,
        deadlines: Option<Deadlines>,
        /// Whether the new category is an emergency one.
        emergency: bool,
    },
    /// The desk links the petition to another ticket about the same problem; when that ticket is already
    /// answered (`original_answer`: text and agency), this citizen gets the answer in the same commit.
    MarkDuplicate { by: Principal, of_ticket: Uuid, of_reference: Reference, original_answer: Option<PetitionAnswered> },
    /// The ticket this one duplicates was answered: its citizen gets the same answer.
    ShareAnswer { from_ticket: Uuid, answer: PetitionAnswered },
    /// On the original: remember its duplicate (idempotent).
    LinkDuplicate { duplicate: Uuid },
    /// The desk rejects spam or abuse.
    Reject { by: Principal, reason: String },
    /// The desk closes the ticket.
    Close { by: Principal, reason: Option<String> },
    /// The scheduler's look at the clock: store the deadline alarms due at `now` that have not fired yet.
    CheckDeadlines { now: OffsetDateTime },
    /// A supervisor moves the resolution deadline, with a reason.
    ExtendDeadline { by: Principal, resolve_by: OffsetDateTime, reason: String, now: OffsetDateTime },
    /// A channel reports what became of delivering the reply `of_event`.
    RecordDelivery { of_event: Uuid, kind: ReplyKind, channel: String, outcome: Result<Option<String>, (String, u32)> },
    /// The citizen's feedback on the answer. Not satisfied reopens the ticket to the agency that answered it with
    /// `deadlines` from now (the caller computes them on the calendar).
    Feedback { satisfied: bool, comment: Option<String>, deadlines: Option<Deadlines>, desk: Option<String> },
    /// The scheduler: close an answered ticket whose citizen stayed silent since `before`.
    CloseSilent { answered_before: OffsetDateTime, days: u32 },
    /// The phone channel reports facts about the call behind a phone ticket (from the PBX, possibly reported
    /// before the petition was filed). Facts whose key the ticket already holds are skipped, so a redelivery
    /// records nothing.
    RecordCall { facts: Vec<CallLogged> },
    /// An operator called the citizen back with the reply that could not reach them by SMS.
    RecordCallback { by: Principal, note: String },
    /// Erase the citizen's personal data on this ticket (an admin's `hotline citizen erase`, or retention).
    /// Idempotent: an erased ticket decides nothing.
    ErasePersonalData { reason: ErasureReason },
}

/// A petition as a channel hands it over (intake validates it against the province config).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewPetition {
    /// Channel name: `app`, `sms`, `email`, `zalo`, `phone`.
    pub channel: String,
    /// The channel's own id for this message; makes retries idempotent.
    pub channel_ref: Option<String>,
    pub text: String,
    pub subject: Option<String>,
    pub category: Option<String>,
    pub citizen: Option<Citizen>,
    pub location: Option<Location>,
    /// Files that came with it, already in the blob store.
    pub attachments: Vec<Attachment>,
    /// The citizen's key in the key store (intake gets or makes it).
    pub citizen_key: Option<Uuid>,
}

/// The router's decision for a ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteCommand {
    /// None when no category matched well enough.
    pub category: Option<String>,
    /// None sends the ticket to triage.
    pub agency: Option<String>,
    pub area: Option<String>,
    pub emergency: bool,
    pub confidence: f64,
    /// `channel` or `classifier`.
    pub source: String,
    pub matched: Vec<String>,
    /// Why the router could not decide, when `agency` is None.
    pub triage_reason: Option<String>,
    /// The agency's deadlines, from the province calendar, when `agency` is set.
    pub deadlines: Option<Deadlines>,
    /// Where triage happens (the hotline desk's agency code).
    pub triage_agency: String,
}

/// A business "no". Infrastructure failures are not domain errors; they live in the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("the ticket already exists")]
    AlreadyExists,
    /// The ticket does not exist, or the caller's agency may not see it (the same answer, so existence does not
    /// leak).
    #[error("the ticket does not exist")]
    NotFound,
    #[error("a petition needs some text")]
    EmptyText,
    /// The caller's role may not do this at all.
    #[error("{0}")]
    Forbidden(String),
    /// The ticket's state does not allow this now (the reason says why).
    #[error("{0}")]
    NotAllowed(String),
    /// The command itself is incomplete or wrong.
    #[error("{0}")]
    Invalid(String),
}

/// After this many transfers a ticket goes to the hotline desk for a human decision.
pub const MAX_BOUNCES: u32 = 2;

impl Ticket {
    /// Folds a whole history.
    pub fn from_history<'a>(events: impl IntoIterator<Item = &'a Envelope>) -> Ticket {
        let mut ticket = Ticket::default();
        for e in events {
            ticket.apply(e);
        }
        ticket
    }

    pub fn exists(&self) -> bool {
        self.status != Status::None
    }

    /// Whether `channel` already delivered (or gave up on) the reply `of_event`.
    pub fn reply_done(&self, of_event: Uuid, channel: &str) -> bool {
        self.replies_done.iter().any(|(e, c)| *e == of_event && c == channel)
    }

    /// The deadlines of a ticket waiting for the citizen when the citizen answers at `now`: each resumes on its
    /// own clock (wall-clock spans keep wall time, working spans working time) with the time it had left.
    pub fn resumed_deadlines(&self, province: &Province, now: OffsetDateTime) -> (Option<OffsetDateTime>, Option<OffsetDateTime>) {
        let wall = |span: &Span| matches!(span, Span::WallMinutes(_));
        let clocks = self
            .category
            .as_deref()
            .and_then(|c| province.spans(c))
            .map_or((self.emergency, self.emergency), |(a, r)| (wall(&a), wall(&r)));
        self.deadlines.resumed(now, &province.calendar, clocks)
    }

    /// Decides what `command` means for this ticket: the events to store (possibly none, when the command is
    /// already fulfilled: a redelivered route request routes nothing twice), or a rejection.
    pub fn decide(&self, command: Command) -> Result<Vec<TicketEvent>, DomainError> {
        match command {
            Command::ReceivePetition { reference, petition: p } => {
                if self.exists() {
                    return Err(DomainError::AlreadyExists);
                }
                if p.text.trim().is_empty() {
                    return Err(DomainError::EmptyText);
                }
                Ok(vec![TicketEvent::PetitionReceived(PetitionReceived {
                    reference,
                    channel: p.channel,
                    channel_ref: p.channel_ref,
                    text: p.text,
                    subject: p.subject,
                    category: p.category,
                    citizen: p.citizen,
                    location: p.location,
                    attachments: p.attachments,
                    citizen_key: p.citizen_key,
                })])
            }
            Command::Route(r) => {
                match self.status {
                    Status::None => return Err(DomainError::NotFound),
                    Status::Received | Status::Transferred => {}
                    // Routing happens once per (re)routing request; a redelivery routes nothing twice.
                    _ => return Ok(vec![]),
                }
                if self.status == Status::Transferred {
                    // Rerouting keeps the category: only the agency changes (or the desk decides).
                    return Ok(vec![match r.agency {
                        Some(agency) => TicketEvent::PetitionRouted(PetitionRouted {
                            agency,
                            area: r.area.or(self.area.clone()),
                            emergency: self.emergency,
                            acknowledge_by: r.deadlines.map(|d| d.acknowledge),
                            resolve_by: r.deadlines.map(|d| d.resolve),
                        }),
                        None => TicketEvent::PetitionNeedsTriage(PetitionNeedsTriage {
                            agency: r.triage_agency,
                            reason: r.triage_reason.unwrap_or_else(|| "no other agency found".to_owned()),
                            suggested_category: self.category.clone(),
                            area: self.area.clone(),
                        }),
                    }]);
                }
                match (r.category, r.agency) {
                    (Some(category), Some(agency)) => Ok(vec![
                        TicketEvent::PetitionCategorized(PetitionCategorized {
                            category,
                            area: r.area.clone(),
                            emergency: r.emergency,
                            confidence: r.confidence,
                            source: r.source,
                            matched: r.matched,
                        }),
                        TicketEvent::PetitionRouted(PetitionRouted {
                            agency,
                            area: r.area,
                            emergency: r.emergency,
                            acknowledge_by: r.deadlines.map(|d| d.acknowledge),
                            resolve_by: r.deadlines.map(|d| d.resolve),
                        }),
                    ]),
                    (category, _) => Ok(vec![TicketEvent::PetitionNeedsTriage(PetitionNeedsTriage {
                        agency: r.triage_agency,
                        reason: r
                            .triage_reason
                            .unwrap_or_else(|| "no agency matched the petition".to_owned()),
                        suggested_category: category,
                        area: r.area,
                    })]),
                }
            }
            Command::Acknowledge { by } => {
                self.assigned_agency_only(&by, "acknowledge")?;
                match self.status {
                    Status::Routed => Ok(vec![TicketEvent::PetitionAcknowledged(PetitionAcknowledged {
                        agency: self.agency.clone().unwrap_or_default(),
                    })]),
                    other => Err(not_allowed("acknowledge", other)),
                }
            }
            Command::RequestInfo { by, question } => {
                self.agency_or_desk(&by, "ask the citizen")?;
                let question = required(question, "a question for the citizen")?;
                match self.status {
                    Status::Routed | Status::Acknowledged => {}
                    // Not on `received`: the router has yet to route it, and a question would stall that.
                    Status::NeedsTriage if by.role != Role::Agency => {}
                    other => return Err(not_allowed("ask the citizen", other)),
                }
                Ok(vec![TicketEvent::InformationRequested(InformationRequested { question })])
            }
            Command::CitizenReply { text, acknowledge_by, resolve_by } => {
                let text = required(text, "the citizen's answer")?;
                match self.status {
                    Status::WaitingForCitizen => Ok(vec![TicketEvent::CitizenReplied(CitizenReplied {
                        text,
                        acknowledge_by,
                        resolve_by,
                        channel_ref: None,
                        attachments: Vec::new(),
                    })]),
                    Status::None => Err(DomainError::NotFound),
                    other => Err(not_allowed("take a reply from the citizen", other)),
                }
            }
            Command::CitizenMessage { channel, channel_ref, text, attachments, acknowledge_by, resolve_by } => {
                if !self.exists() {
                    return Err(DomainError::NotFound);
                }
                if channel_ref.as_ref().is_some_and(|r| self.channel_refs.contains(r)) {
                    return Ok(vec![]);
                }
                let text = text.trim().to_owned();
                if text.is_empty() && attachments.is_empty() {
                    return Err(DomainError::EmptyText);
                }
                Ok(vec![if self.status == Status::WaitingForCitizen {
                    TicketEvent::CitizenReplied(CitizenReplied { text, acknowledge_by, resolve_by, channel_ref, attachments })
                } else {
                    TicketEvent::CitizenWrote(CitizenWrote { text, channel, channel_ref, attachments })
                }])
            }
            Command::Transfer { by, reason, suggested_agency, desk } => {
                self.assigned_agency_only(&by, "send the ticket back")?;
                let reason = required(reason, "why the petition is not your competence")?;
                if suggested_agency.is_some() && suggested_agency == self.agency {
                    return Err(DomainError::Invalid("the suggested agency is the one sending it back".to_owned()));
                }
                match self.status {
                    Status::Routed | Status::Acknowledged | Status::WaitingForCitizen => {}
                    other => return Err(not_allowed("send the ticket back", other)),
                }
                let bounces = self.bounces + 1;
                let from_agency = self.agency.clone().unwrap_or_default();
                let mut events = vec![TicketEvent::PetitionTransferred(PetitionTransferred {
                    from_agency,
                    reason,
                    suggested_agency,
                    bounces,
                })];
                if bounces >= MAX_BOUNCES {
                    events.push(TicketEvent::PetitionNeedsTriage(PetitionNeedsTriage {
                        agency: desk,
                        reason: format!("sent back {bounces} times: needs a decision at the hotline desk"),
                        suggested_category: self.category.clone(),
                        area: self.area.clone(),
                    }));
                }
                Ok(events)
            }
            Command::Answer { by, text, desk, attachments } => {
                let text = required(text, "the answer's text")?;
                if attachments.len() > Attachment::MAX {
                    return Err(DomainError::Invalid(format!("at most {} attachments", Attachment::MAX)));
                }
                for a in &attachments {
                    a.validate().map_err(DomainError::Invalid)?;
                }
                match by.role {
                    Role::Agency => {
                        self.assigned_agency_only(&by, "answer")?;
                        match self.status {
                            Status::Routed | Status::Acknowledged | Status::WaitingForCitizen => {}
                            other => return Err(not_allowed("answer", other)),
                        }
                    }
                    _ => {
                        if !self.status.is_open() {
                            return Err(not_allowed("answer", self.status));
                        }
                    }
                }
                let agency = match by.role {
                    Role::Agency => by.agency.clone().unwrap_or_default(),
                    _ => desk,
                };
                Ok(vec![TicketEvent::PetitionAnswered(PetitionAnswered { text, agency, via_ticket: None, attachments })])
            }
            Command::Recategorize { by, category, area, agency, deadlines, emergency } => {
                desk_only(&by, "recategorize")?;
                if !self.status.is_open() {
                    return Err(not_allowed("recategorize", self.status));
                }
                Ok(vec![
                    TicketEvent::PetitionRecategorized(PetitionRecategorized { category, area: area.clone() }),
                    TicketEvent::PetitionRouted(PetitionRouted {
                        agency,
                        area: area.or(self.area.clone()),
                        emergency,
                        acknowledge_by: deadlines.map(|d| d.acknowledge),
                        resolve_by: deadlines.map(|d| d.resolve),
                    }),
                ])
            }
            Command::MarkDuplicate { by, of_ticket, of_reference, original_answer } => {
                desk_only(&by, "mark as duplicate")?;
                if Some(of_ticket) == self.id {
                    return Err(DomainError::Invalid("a ticket cannot duplicate itself".to_owned()));
                }
                if !self.status.is_open() {
                    return Err(not_allowed("mark as duplicate", self.status));
                }
                let mut events = vec![TicketEvent::MarkedDuplicate(MarkedDuplicate { of_ticket, of_reference })];
                if let Some(answer) = original_answer {
                    events.push(TicketEvent::PetitionAnswered(PetitionAnswered { via_ticket: Some(of_ticket), ..answer }));
                }
                Ok(events)
            }
            Command::ShareAnswer { from_ticket, answer } => match self.status {
                // Only a duplicate of that very ticket, not yet answered, takes its answer.
                Status::Duplicate if self.duplicate_of == Some(from_ticket) => {
                    Ok(vec![TicketEvent::PetitionAnswered(PetitionAnswered { via_ticket: Some(from_ticket), ..answer })])
                }
                Status::None => Err(DomainError::NotFound),
                _ => Ok(vec![]),
            },
            Command::LinkDuplicate { duplicate } => {
                if !self.exists() {
                    return Err(DomainError::NotFound);
                }
                if self.duplicates.contains(&duplicate) {
                    return Ok(vec![]);
                }
                Ok(vec![TicketEvent::DuplicateLinked(DuplicateLinked { duplicate })])
            }
            Command::Reject { by, reason } => {
                desk_only(&by, "reject")?;
                let reason = required(reason, "why the petition is rejected")?;
                if !self.status.is_open() {
                    return Err(not_allowed("reject", self.status));
                }
                Ok(vec![TicketEvent::PetitionRejected(PetitionRejected { reason })])
            }
            Command::Close { by, reason } => {
                desk_only(&by, "close")?;
                match self.status {
                    Status::Closed | Status::Rejected | Status::Duplicate => Err(not_allowed("close", self.status)),
                    Status::None => Err(DomainError::NotFound),
                    _ => Ok(vec![TicketEvent::TicketClosed(TicketClosed {
                        reason: reason.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty()),
                    })]),
                }
            }
            Command::CheckDeadlines { now } => {
                if !self.exists() {
                    return Err(DomainError::NotFound);
                }
                Ok(self.deadlines.check(self.status, now))
            }
            Command::RecordDelivery { of_event, kind, channel, outcome } => {
                if !self.exists() {
                    return Err(DomainError::NotFound);
                }
                if self.reply_done(of_event, &channel) {
                    return Ok(vec![]);
                }
                Ok(vec![match outcome {
                    Ok(channel_message_id) => TicketEvent::ReplySent(ReplySent { kind, of_event, channel, channel_message_id }),
                    Err((reason, attempts)) => TicketEvent::ReplyFailed(ReplyFailed { kind, of_event, channel, reason, attempts }),
                }])
            }
            Command::Feedback { satisfied, comment, deadlines, desk } => {
                if self.status != Status::Answered {
                    return Err(match self.status {
                        Status::None => DomainError::NotFound,
                        other => not_allowed("take feedback on", other),
                    });
                }
                let comment = comment.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty());
                let feedback = TicketEvent::FeedbackGiven(FeedbackGiven { satisfied, comment: comment.clone() });
                if satisfied {
                    return Ok(vec![feedback, TicketEvent::TicketClosed(TicketClosed { reason: Some("the citizen is satisfied".to_owned()) })]);
                }
                if comment.is_none() {
                    return Err(DomainError::Invalid("say what is still wrong: a comment is required".to_owned()));
                }
                // Back to the agency that answered, on a fresh clock; an answer from the desk goes back to the desk.
                let agency = self.last_answer_agency.clone().or(self.agency.clone()).unwrap_or_default();
                if Some(agency.as_str()) == desk.as_deref() {
                    return Ok(vec![
                        feedback,
                        TicketEvent::PetitionNeedsTriage(PetitionNeedsTriage {
                            agency,
                            reason: "the citizen is not satisfied with the desk's answer".to_owned(),
                            suggested_category: self.category.clone(),
                            area: self.area.clone(),
                        }),
                    ]);
                }
                Ok(vec![
                    feedback,
                    TicketEvent::PetitionRouted(PetitionRouted {
                        agency,
                        area: self.area.clone(),
                        emergency: self.emergency,
                        acknowledge_by: deadlines.map(|d| d.acknowledge),
                        resolve_by: deadlines.map(|d| d.resolve),
                    }),
                ])
            }
            Command::CloseSilent { answered_before, days } => match (self.status, self.answered_at) {
                (Status::Answered, Some(at)) if at <= answered_before => Ok(vec![TicketEvent::TicketClosed(TicketClosed {
                    reason: Some(format!("no feedback from the citizen within {days} days")),
                })]),
                (Status::None, _) => Err(DomainError::NotFound),
                _ => Ok(vec![]),
            },
            Command::RecordCall { facts } => {
                if !self.exists() {
                    return Err(DomainError::NotFound);
                }
                if self.channel.as_deref() != Some("phone") {
                    return Err(DomainError::Invalid("call events belong on phone tickets only".to_owned()));
                }
                let mut keys: Vec<&str> = self.call_keys.iter().map(String::as_str).collect();
                let mut events = Vec::new();
                for fact in &facts {
                    if fact.key.trim().is_empty() {
                        return Err(DomainError::Invalid("a call event needs a key".to_owned()));
                    }
                    if self.channel_ref.as_deref() != Some(fact.call_id.as_str()) {
                        return Err(DomainError::Invalid(format!("call `{}` is not the call of this ticket", fact.call_id)));
                    }
                    if !keys.contains(&fact.key.as_str()) {
                        keys.push(&fact.key);
                        events.push(TicketEvent::CallLogged(fact.clone()));
                    }
                }
                Ok(events)
            }
            Command::RecordCallback { by, note } => {
                desk_only(&by, "record a call-back")?;
                let note = required(note, "a note on the call-back")?;
                match self.status {
                    Status::None => Err(DomainError::NotFound),
                    _ if !self.callback_due => Err(DomainError::NotAllowed("no call-back is due on this ticket".to_owned())),
                    _ => Ok(vec![TicketEvent::CallbackDone(CallbackDone { note })]),
                }
            }
            Command::ErasePersonalData { reason } => match self.status {
                Status::None => Err(DomainError::NotFound),
                _ if self.erased => Ok(vec![]),
                _ => Ok(vec![TicketEvent::PersonalDataErased(PersonalDataErased { reason })]),
            },
            Command::ExtendDeadline { by, resolve_by, reason, now } => {
                if !matches!(by.role, Role::Supervisor | Role::Admin) {
                    return Err(DomainError::Forbidden("only a supervisor may extend a deadline".to_owned()));
                }
                let reason = required(reason, "why the deadline is extended")?;
                // Deadlines run only while an agency holds the ticket; elsewhere routing sets them afresh.
                if !matches!(self.status, Status::Routed | Status::Acknowledged | Status::WaitingForCitizen) {
                    return Err(not_allowed("extend the deadline of", self.status));
                }
                if resolve_by <= now || resolve_by > now + time::Duration::days(366 * 5) {
                    return Err(DomainError::Invalid("an extension lands in the future, within five years".to_owned()));
                }
                if self.deadlines.resolve_by.is_some_and(|current| resolve_by <= current) {
                    return Err(DomainError::Invalid("an extension moves the deadline later".to_owned()));
                }
                Ok(vec![TicketEvent::DeadlineExtended(DeadlineExtended { resolve_by, reason })])
            }
        }
    }

    /// Agency commands: only the agency the ticket is assigned to (any other agency does not see the ticket).
    fn assigned_agency_only(&self, by: &Principal, what: &str) -> Result<(), DomainError> {
        if !self.exists() {
            return Err(DomainError::NotFound);
        }
        match by.role {
            Role::Agency if by.may_see(self.agency.as_deref()) => Ok(()),
            Role::Agency => Err(DomainError::NotFound),
            role => Err(DomainError::Forbidden(format!("only the assigned agency may {what}, not a {} token", role.as_str()))),
        }
    }

    /// Commands the assigned agency or the desk may give.
    fn agency_or_desk(&self, by: &Principal, what: &str) -> Result<(), DomainError> {
        match by.role {
            Role::Agency => self.assigned_agency_only(by, what),
            _ if !self.exists() => Err(DomainError::NotFound),
            _ => Ok(()),
        }
    }

    /// Folds one event into the state. Never fails: the log is the truth, and an event that reached it is a fact.
    pub fn apply(&mut self, envelope: &Envelope) {
        self.id = Some(envelope.ticket_id);
        self.seq = envelope.seq;
        self.deadlines.apply(&envelope.event, envelope.occurred_at);
        match &envelope.event {
            TicketEvent::PetitionReceived(e) => {
                self.status = Status::Received;
                self.reference = Some(e.reference.clone());
                self.channel = Some(e.channel.clone());
                self.channel_ref = e.channel_ref.clone();
                self.category = e.category.clone();
                self.area = e.location.as_ref().and_then(|l| l.area.clone());
                self.received_at = Some(envelope.occurred_at);
                self.text = Some(e.text.clone());
                self.citizen = e.citizen.clone();
                self.channel_refs.extend(e.channel_ref.clone());
                self.subject = e.subject.clone();
                self.location = e.location.clone();
                self.attachments = e.attachments.clone();
                self.citizen_key = e.citizen_key;
            }
            TicketEvent::PetitionCategorized(e) => {
                self.category = Some(e.category.clone());
                if e.area.is_some() {
                    self.area = e.area.clone();
                }
                self.emergency = e.emergency;
            }
            TicketEvent::PetitionRouted(e) => {
                self.status = Status::Routed;
                self.agency = Some(e.agency.clone());
                if e.area.is_some() {
                    self.area = e.area.clone();
                }
                self.emergency = e.emergency;
            }
            TicketEvent::PetitionNeedsTriage(e) => {
                self.status = Status::NeedsTriage;
                self.agency = Some(e.agency.clone());
                if e.area.is_some() {
                    self.area = e.area.clone();
                }
            }
            TicketEvent::PetitionAcknowledged(_) => self.status = Status::Acknowledged,
            TicketEvent::InformationRequested(_) => {
                self.resume_to = Some(self.status);
                self.status = Status::WaitingForCitizen;
                self.asked_at = Some(envelope.occurred_at);
            }
            TicketEvent::CitizenReplied(e) => {
                self.status = self.resume_to.take().unwrap_or(Status::Acknowledged);
                self.asked_at = None;
                self.channel_refs.extend(e.channel_ref.clone());
            }
            TicketEvent::CitizenWrote(e) => self.channel_refs.extend(e.channel_ref.clone()),
            TicketEvent::PetitionTransferred(e) => {
                self.status = Status::Transferred;
                self.bounces = e.bounces;
                self.bounced_from.push(e.from_agency.clone());
                self.resume_to = None;
            }
            TicketEvent::PetitionAnswered(e) => {
                self.status = Status::Answered;
                self.answered_at = Some(envelope.occurred_at);
                self.last_answer_agency = Some(e.agency.clone());
                if e.via_ticket.is_none() {
                    self.last_answer = Some(e.clone());
                }
            }
            TicketEvent::PetitionRecategorized(e) => {
                self.category = Some(e.category.clone());
                if e.area.is_some() {
                    self.area = e.area.clone();
                }
            }
            TicketEvent::MarkedDuplicate(e) => {
                self.status = Status::Duplicate;
                self.duplicate_of = Some(e.of_ticket);
            }
            TicketEvent::PetitionRejected(_) => self.status = Status::Rejected,
            TicketEvent::TicketClosed(_) => self.status = Status::Closed,
            // Folded into `deadlines` above.
            TicketEvent::DeadlineApproaching(_) | TicketEvent::DeadlineMissed(_) | TicketEvent::DeadlineExtended(_) => {}
            TicketEvent::ReplySent(e) => self.replies_done.push((e.of_event, e.channel.clone())),
            TicketEvent::ReplyFailed(e) => self.replies_done.push((e.of_event, e.channel.clone())),
            TicketEvent::FeedbackGiven(_) => {}
            TicketEvent::DuplicateLinked(e) => self.duplicates.push(e.duplicate),
            TicketEvent::CallLogged(e) => self.call_keys.push(e.key.clone()),
            TicketEvent::CallbackDone(_) => self.callback_due = false,
            TicketEvent::PersonalDataErased(_) => {
                self.erased = true;
                self.callback_due = false;
                let erased = || Some(ERASED.to_owned());
                self.text = erased();
                self.subject = self.subject.as_ref().and_then(|_| erased());
                if let Some(c) = &mut self.citizen {
                    for field in [&mut c.name, &mut c.phone, &mut c.email, &mut c.zalo_id] {
                        if field.is_some() {
                            *field = erased();
                        }
                    }
                }
                if let Some(address) = self.location.as_mut().and_then(|l| l.address.as_mut()) {
                    *address = ERASED.to_owned();
                }
                for a in &mut self.attachments {
                    a.name = ERASED.to_owned();
                }
            }
        }
        // Call-backs: a reply that cannot go by SMS to a phone caller's number is owed by telephone, until a later
        // reply reaches them or an operator records the call.
        match &envelope.event {
            TicketEvent::ReplyFailed(e) if self.channel.as_deref() == Some("phone") && e.reason.starts_with(NO_MOBILE_NUMBER) => {
                self.callback_due = true;
            }
            TicketEvent::ReplySent(_) => self.callback_due = false,
            _ => {}
        }
    }
}

/// Desk commands: operators and supervisors (and admins, who can do what a supervisor can).
fn desk_only(by: &Principal, what: &str) -> Result<(), DomainError> {
    match by.role {
        Role::Operator | Role::Supervisor | Role::Admin => Ok(()),
        Role::Agency => Err(DomainError::Forbidden(format!("only the hotline desk may {what}"))),
    }
}

fn not_allowed(what: &str, status: Status) -> DomainError {
    DomainError::NotAllowed(format!("cannot {what} a ticket that is {}", status.as_str().replace('_', " ")))
}

fn required(text: String, what: &str) -> Result<String, DomainError> {
    let text = text.trim().to_owned();
    if text.is_empty() { Err(DomainError::Invalid(format!("{what} is required"))) } else { Ok(text) }
}
