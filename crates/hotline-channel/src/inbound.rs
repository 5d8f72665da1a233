//! Messages from citizens on conversational channels (SMS, e-mail, Zalo): a new petition, or more on a ticket
//! the citizen already has.
//!
//! A channel hands every message to [`Intake::receive`] with the provider's id for it. Intake then:
//! 1. looks for the ticket it belongs to: a ticket named by a hint (a reference quoted in the text, a reply to one
//!    of our e-mails) that is not closed or rejected, or the sender's ticket that waits for their answer when the
//!    question is recent enough. A
//!    message joins a ticket only when it comes from that ticket's citizen (same phone number or e-mail
//!    address): knowing a reference is not enough to write into someone else's ticket;
//! 2. records where the message goes, create-only and keyed by the provider's id: a redelivery (at any delay)
//!    or a racing delivery is sent where the first went, whatever the hints say now;
//! 3. stores it: a `PetitionReceived` of a new ticket (its id derived from the provider's id), or a
//!    `CitizenReplied` / `CitizenWrote` on the existing one. Both recognise a message already stored, so a
//!    redelivery stores nothing, and a first delivery cut short by a crash is finished by the next.

use std::time::Duration;

use hotline_domain::event::{Attachment, Citizen, Location};
use hotline_domain::ticket::Status;
use hotline_domain::{Actor, Command, Reference, Ticket};
use hotline_store::{Cause, Claim, ExecuteError, OnConflict, StoreError};
use time::OffsetDateTime;
use uuid::Uuid;

use hotline_domain::ticket::NewPetition;

use crate::intake::{Accepted, Intake, IntakeError};

/// Longest message id a channel may give (a Message-ID is at most a line of 998 octets).
const MAX_MESSAGE_ID: usize = 998;
/// Hints looked at per message (each costs a read of a ticket): a mail quoting a thousand ids gets the first few.
const MAX_HINTS: usize = 12;

/// One message from a citizen, as a channel parsed it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InboundMessage {
    /// The channel's name: `sms`, `email`, `zalo`.
    pub channel: &'static str,
    /// The provider's id for this message (an SMS id, a Message-ID without brackets): the same id twice, at any
    /// delay, never makes a second petition or a second follow-up.
    pub message_id: String,
    /// The sender, as the channel knows them: a phone number normalised with [`normalise_msisdn`] (SMS), an
    /// e-mail address in lower case (e-mail), the user id at the OA (Zalo).
    pub from: String,
    /// A phone number known besides `from` (a Zalo user who shared it): kept on the citizen, so answers can
    /// fall back to SMS.
    pub phone: Option<String>,
    /// The sender's display name, if the channel has one.
    pub name: Option<String>,
    pub subject: Option<String>,
    pub text: String,
    /// Files that came with it, already in the blob store.
    pub attachments: Vec<Attachment>,
    /// What may tie it to an earlier ticket.
    pub hints: Vec<ThreadHint>,
    pub location: Option<Location>,
    /// Join the sender's ticket that waits for their answer when its question was asked at most this long ago
    /// (SMS: citizens answer a question without quoting anything).
    pub follow_up_window: Option<Duration>,
}

/// Something in a message that names an earlier ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThreadHint {
    /// A ticket id (from one of our e-mails' Message-ID the citizen replied to).
    Ticket(Uuid),
    /// A reference as the citizen typed it.
    Reference(String),
}

/// Where a message went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// It opened a ticket.
    Opened(Accepted),
    /// It joined an existing ticket (`duplicate`: it had already).
    Attached { ticket_id: Uuid, reference: Reference, duplicate: bool },
}

impl Received {
    pub fn ticket_id(&self) -> Uuid {
        match self {
            Received::Opened(a) => a.ticket_id,
            Received::Attached { ticket_id, .. } => *ticket_id,
        }
    }

    pub fn reference(&self) -> &Reference {
        match self {
            Received::Opened(a) => &a.reference,
            Received::Attached { reference, .. } => reference,
        }
    }

    /// True when the message had been received before.
    pub fn duplicate(&self) -> bool {
        match self {
            Received::Opened(a) => a.duplicate,
            Received::Attached { duplicate, .. } => *duplicate,
        }
    }
}

impl Intake {
    /// Stores a citizen's message: a new petition, or a follow-up on their ticket. `Ok` only once it is stored (or
    /// was before); on `Err` nothing new is acknowledged and the channel should make its peer deliver it again.
    pub async fn receive(&self, message: InboundMessage) -> Result<Received, IntakeError> {
        if message.message_id.is_empty() || message.message_id.len() > MAX_MESSAGE_ID {
            return Err(IntakeError::Invalid {
                code: "invalid_message_id",
                message: format!("a channel message needs an id of 1 to {MAX_MESSAGE_ID} bytes"),
            });
        }
        if message.text.trim().is_empty() && message.attachments.is_empty() {
            return Err(IntakeError::Invalid { code: "empty_text", message: "the message has no text".to_owned() });
        }
        if !self.store().is_connected() {
            return Err(IntakeError::Unavailable("not connected to the event log".to_owned()));
        }
        // One deadline for the whole message, lookups included: a slow log makes the channel's peer try again
        // rather than wait. Every step can be repeated, so "not confirmed" is the honest answer.
        let deadline = self.deadline();
        tokio::time::timeout(deadline, self.route_and_store(message))
            .await
            .unwrap_or_else(|_| Err(IntakeError::OutcomeUnknown(format!("not confirmed within {deadline:?}"))))
    }

    async fn route_and_store(&self, mut message: InboundMessage) -> Result<Received, IntakeError> {
        message.hints.truncate(MAX_HINTS);
        let key = format!("{}\n{}", message.channel, message.message_id);
        let new_ticket = self.ticket_id_for(message.channel, &message.message_id);
        let target = self.find_ticket(&message).await?.unwrap_or(new_ticket);
        // Whoever records first decides where the message goes: a redelivery, however late and whatever changed
        // since, and a delivery racing it, follow the first.
        let target = match self.store().claim_message(&key, target).await.map_err(unavailable)? {
            Claim::Granted => target,
            Claim::TakenBy(first) if first == new_ticket => first,
            Claim::TakenBy(first) => {
                // Another sender may reuse a provider id (a Message-ID is the sender's choice): the first
                // delivery's ticket takes only its own citizen's messages.
                let state = self.load(first).await?;
                if state.exists() && !same_citizen(&state, message.channel, &message.from) {
                    return Err(IntakeError::KeyReused);
                }
                first
            }
        };
        if target == new_ticket {
            self.open(message, new_ticket).await
        } else {
            self.attach(message, target).await
        }
    }

    async fn open(&self, message: InboundMessage, ticket_id: Uuid) -> Result<Received, IntakeError> {
        let contact = contact_key(message.channel, &message.from);
        // Remembered before the petition is stored: a contact pointing at a ticket that never got stored is
        // skipped when read, while a stored ticket missing from the list would miss its follow-ups.
        if let Some(contact) = &contact {
            self.store().note_contact(contact, ticket_id).await.map_err(unavailable)?;
        }
        let phone = message.phone.as_deref().and_then(normalise_msisdn);
        let citizen = match address_kind(message.channel) {
            Address::Email => Citizen { name: message.name, phone, email: Some(message.from), zalo_id: None },
            Address::Zalo => Citizen { name: message.name, phone, email: None, zalo_id: Some(message.from) },
            Address::Phone => Citizen { name: message.name, phone: Some(message.from), email: None, zalo_id: None },
        };
        let text = if message.text.trim().is_empty() {
            message.subject.clone().filter(|s| !s.trim().is_empty()).unwrap_or_else(|| "(không có nội dung)".to_owned())
        } else {
            message.text
        };
        let petition = NewPetition {
            citizen_key: None,
            channel: message.channel.to_owned(),
            channel_ref: Some(message.message_id),
            text,
            subject: message.subject.filter(|s| !s.trim().is_empty()),
            category: None,
            citizen: Some(citizen),
            location: message.location,
            attachments: message.attachments,
        };
        Ok(Received::Opened(self.submit(petition).await?))
    }

    async fn attach(&self, message: InboundMessage, ticket_id: Uuid) -> Result<Received, IntakeError> {
        let province = self.province().clone();
        let channel = message.channel;
        let executed = hotline_store::execute(
            self.store().as_ref(),
            ticket_id,
            &Actor::channel(channel),
            OffsetDateTime::now_utc(),
            Cause::None,
            OnConflict::Decide,
            |ticket, _| {
                let (acknowledge_by, resolve_by) = if ticket.status == Status::WaitingForCitizen {
                    ticket.resumed_deadlines(&province, OffsetDateTime::now_utc())
                } else {
                    (None, None)
                };
                Ok::<_, std::convert::Infallible>(Command::CitizenMessage {
                    channel: channel.to_owned(),
                    channel_ref: Some(message.message_id.clone()),
                    text: message.text.clone(),
                    attachments: message.attachments.clone(),
                    acknowledge_by,
                    resolve_by,
                })
            },
        )
        .await;
        match executed {
            Ok(done) => match done.after.reference.clone() {
                Some(reference) => Ok(Received::Attached { ticket_id, reference, duplicate: done.events.is_empty() }),
                None => Err(IntakeError::Unavailable(format!("ticket {ticket_id} has no reference"))),
            },
            Err(ExecuteError::Domain(e)) => Err(IntakeError::Invalid { code: "invalid_message", message: e.to_string() }),
            Err(ExecuteError::Conflict) => Err(IntakeError::Unavailable(format!("ticket {ticket_id} kept changing"))),
            Err(ExecuteError::Store(StoreError::OutcomeUnknown(e))) => Err(IntakeError::OutcomeUnknown(e)),
            Err(ExecuteError::Store(e)) => Err(unavailable(e)),
            Err(ExecuteError::Command(never)) => match never {},
        }
    }

    /// The existing ticket this message belongs to, if any.
    async fn find_ticket(&self, message: &InboundMessage) -> Result<Option<Uuid>, IntakeError> {
        for hint in &message.hints {
            let ticket = match hint {
                ThreadHint::Ticket(id) => Some(*id),
                ThreadHint::Reference(typed) => match Reference::parse(typed) {
                    Ok(reference) => self.store().resolve_reference(&reference).await.map_err(unavailable)?,
                    Err(_) => None,
                },
            };
            let Some(ticket) = ticket else { continue };
            let state = self.load(ticket).await?;
            // A closed or rejected ticket is nobody's work any more: a citizen writing about it again (it is
            // back, it was never fixed) opens a new petition, whose text still quotes the old reference.
            let finished = matches!(state.status, Status::Closed | Status::Rejected);
            if state.exists() && !finished && same_citizen(&state, message.channel, &message.from) {
                return Ok(Some(ticket));
            }
        }
        let (Some(window), Some(contact)) = (message.follow_up_window, contact_key(message.channel, &message.from)) else {
            return Ok(None);
        };
        let since = OffsetDateTime::now_utc() - window;
        for ticket in self.store().contact_tickets(&contact).await.map_err(unavailable)? {
            let state = self.load(ticket).await?;
            if state.status == Status::WaitingForCitizen
                && state.asked_at.is_some_and(|at| at >= since)
                && same_citizen(&state, message.channel, &message.from)
            {
                return Ok(Some(ticket));
            }
        }
        Ok(None)
    }

    async fn load(&self, ticket: Uuid) -> Result<Ticket, IntakeError> {
        let history = self.store().load(ticket).await.map_err(unavailable)?;
        Ok(Ticket::from_history(&history.events))
    }
}

/// What kind of address a channel's `from` is.
enum Address {
    Phone,
    Email,
    Zalo,
}

fn address_kind(channel: &str) -> Address {
    match channel {
        "email" => Address::Email,
        "zalo" => Address::Zalo,
        _ => Address::Phone,
    }
}

/// Whether `from` on `channel` is the citizen of the ticket (same phone number, same e-mail address, same Zalo id).
fn same_citizen(ticket: &Ticket, channel: &str, from: &str) -> bool {
    let Some(citizen) = &ticket.citizen else { return false };
    match address_kind(channel) {
        Address::Email => citizen.email.as_deref().is_some_and(|e| e.trim().eq_ignore_ascii_case(from.trim())),
        Address::Zalo => citizen.zalo_id.as_deref().is_some_and(|z| z == from.trim()),
        Address::Phone => {
            let from = normalise_msisdn(from);
            from.is_some() && citizen.phone.as_deref().and_then(normalise_msisdn) == from
        }
    }
}

/// The identity a citizen's key is kept under (docs/privacy.md): the address their channel knows them by, else
/// their mobile number, e-mail address or Zalo id, in the form [`contact_key`] uses. None without contact details.
pub fn citizen_identity(channel: &str, citizen: Option<&hotline_domain::event::Citizen>) -> Option<String> {
    let c = citizen?;
    let phone = || c.phone.as_deref().and_then(normalise_msisdn).map(|n| format!("phone:{n}"));
    let email = || c.email.as_deref().map(str::trim).filter(|e| !e.is_empty()).map(|e| format!("email:{}", e.to_lowercase()));
    let zalo = || c.zalo_id.as_deref().map(str::trim).filter(|z| !z.is_empty()).map(|z| format!("zalo:{z}"));
    match address_kind(channel) {
        Address::Email => email().or_else(phone).or_else(zalo),
        Address::Zalo => zalo().or_else(phone).or_else(email),
        Address::Phone => phone().or_else(email).or_else(zalo),
    }
}

/// The key a sender's tickets are remembered under.
fn contact_key(channel: &str, from: &str) -> Option<String> {
    match address_kind(channel) {
        Address::Email => Some(format!("email:{}", from.trim().to_lowercase())),
        Address::Zalo => Some(format!("zalo:{}", from.trim())).filter(|_| !from.trim().is_empty()),
        Address::Phone => normalise_msisdn(from).map(|n| format!("phone:{n}")),
    }
}

/// Whether a normalised number can receive an SMS: Vietnamese mobiles are 84 and nine digits starting with 3, 5,
/// 7, 8 or 9 (landlines start with 2); numbers of other countries are taken as they are.
pub fn is_mobile(msisdn: &str) -> bool {
    match normalise_msisdn(msisdn) {
        Some(n) => match n.strip_prefix("84") {
            Some(rest) => rest.len() == 9 && matches!(rest.as_bytes()[0], b'3' | b'5' | b'7' | b'8' | b'9'),
            None => n.len() > 6,
        },
        None => false,
    }
}

/// A Vietnamese (or international) phone number in the form SMS gateways use: digits only, country code first,
/// no `+`: `+84 912 345 678`, `0912345678`, `84912345678` all give `84912345678`. Short codes (3 to 6 digits)
/// stay as they are. `None` for anything that is not a phone number.
pub fn normalise_msisdn(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    let plus = trimmed.starts_with('+');
    let mut digits = String::with_capacity(trimmed.len());
    for c in trimmed.chars().skip(usize::from(plus)) {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    let number = if plus {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_owned()
    } else if let Some(rest) = digits.strip_prefix('0') {
        format!("84{rest}")
    } else {
        digits
    };
    (3..=15).contains(&number.len()).then_some(number)
}

/// Ticket references quoted in free text (an SMS, a subject's `[#K7M4QXR2]` tag), each once, in order. Typed
/// references may be in any case and broken by spaces, dashes or dots (`k7m4-qxr2`); the check symbol keeps
/// ordinary words from passing for one.
pub fn find_references(text: &str) -> Vec<String> {
    let words: Vec<&str> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        .map(|w| w.trim_matches(|c| c == '-' || c == '.'))
        .filter(|w| !w.is_empty())
        .collect();
    let mut found: Vec<String> = Vec::new();
    let mut push = |candidate: &str| {
        if let Ok(reference) = Reference::parse(candidate) {
            let r = reference.as_str().to_owned();
            if !found.contains(&r) {
                found.push(r);
            }
        }
    };
    for (i, word) in words.iter().enumerate() {
        let compact = word.chars().filter(|c| c.is_ascii_alphanumeric()).count();
        if compact == hotline_domain::reference::LEN {
            push(word);
        } else if compact == hotline_domain::reference::LEN / 2 {
            // "K7M4 QXR2": a reference read out in two halves.
            if let Some(next) = words.get(i + 1)
                && next.chars().filter(|c| c.is_ascii_alphanumeric()).count() == hotline_domain::reference::LEN / 2 {
                    push(&format!("{word}{next}"));
                }
        }
    }
    found
}

fn unavailable(e: StoreError) -> IntakeError {
    IntakeError::Unavailable(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_are_normalised_to_the_gateways_form() {
        assert_eq!(normalise_msisdn("+84 912 345 678").as_deref(), Some("84912345678"));
        assert_eq!(normalise_msisdn("0912.345.678").as_deref(), Some("84912345678"));
        assert_eq!(normalise_msisdn("84912345678").as_deref(), Some("84912345678"));
        assert_eq!(normalise_msisdn("0084912345678").as_deref(), Some("84912345678"));
        assert_eq!(normalise_msisdn("1022").as_deref(), Some("1022"));
        assert_eq!(normalise_msisdn("an@example.vn"), None);
        assert_eq!(normalise_msisdn("12"), None);
        assert_eq!(normalise_msisdn(""), None);
    }

    #[test]
    fn only_mobile_numbers_can_take_an_sms() {
        assert!(is_mobile("0912345678"));
        assert!(is_mobile("+84 389 123 456"));
        assert!(!is_mobile("02743822222"), "a Bình Dương landline");
        assert!(!is_mobile("1022"));
        assert!(is_mobile("+14155550100"));
    }

    #[test]
    fn references_are_found_however_they_are_typed() {
        let r = Reference::derive(Uuid::from_u128(7), 0);
        let s = r.as_str();
        let lower = s.to_lowercase();
        let halves = format!("{} {}", &s[..4], &s[4..]);
        let dashed = format!("{}-{}", &lower[..4], &lower[4..]);
        for text in [
            format!("Ma phan anh {s}: da sua chua?"),
            format!("[#{s}] Re: Phản ánh"),
            format!("ho so {lower}."),
            format!("so {halves} cua toi"),
            format!("({dashed})"),
        ] {
            assert_eq!(find_references(&text), vec![s.to_owned()], "{text}");
        }
        assert!(find_references("Đèn giao thông ở ngã tư bị hỏng, THANHPHO HAIDUONG 12345678").is_empty());
    }

    #[test]
    fn a_reference_with_one_wrong_symbol_is_not_found() {
        let r = Reference::derive(Uuid::from_u128(9), 0);
        let mut typed: Vec<char> = r.as_str().chars().collect();
        typed[2] = if typed[2] == 'A' { 'B' } else { 'A' };
        let typed: String = typed.into_iter().collect();
        assert!(find_references(&typed).is_empty());
    }
}
