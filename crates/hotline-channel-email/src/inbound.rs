//! A received mail becomes a citizen's message: parsed, its files put in the blob store, its thread hints read,
//! then handed to [`Intake::receive`]. The SMTP reply says what happened: 250 once stored, 451 when storing failed
//! for now (the sending MTA keeps the mail and tries again), 5xx when the mail can never become a petition.
//!
//! A mail may join an earlier ticket (its thread hints reach the intake) only when its sender is authenticated:
//! the intake ties a follow-up to a ticket by its sender's address, and a `From` header is whatever the sender
//! wrote. Authenticated means our own MTA's `Authentication-Results` header (see `auth.rs`) vouches for the sender's
//! domain, or the operator said every `From` is to be believed (`trust_unauthenticated_from`). An unauthenticated
//! mail with hints loses them and opens a petition of its own.
//!
//! Mail sent by machines (bounces with the null sender `<>`, auto-replies, bulk and list mail, delivery reports, our
//! own answers coming back) is accepted and dropped: refusing would make the other side bounce again, and turning
//! it into a petition would answer it, starting a loop.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use hotline_channel::blobs::{self, BlobStore};
use hotline_channel::{InboundMessage, Intake, IntakeError, Received, ThreadHint, find_references};
use hotline_domain::event::Attachment;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{CHANNEL, auth};
use crate::mime::{self, MimeError, ParsedMail};
use crate::server::MailSink;
use crate::smtp::{Mail, Reply};

/// Longest text kept in the petition itself; a longer body is cut there and kept whole as a file.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Longest subject kept.
const MAX_SUBJECT_CHARS: usize = 500;
/// Thread hints read from one mail, each a ticket the intake may load: the first ids of `In-Reply-To`, the newest
/// of `References`, the first references tagged in the subject. (A mail listing a thousand ids in `References`
/// would otherwise cost a thousand reads of the log.)
pub const MAX_IN_REPLY_TO_IDS: usize = 2;
pub const MAX_REFERENCES_IDS: usize = 10;
pub const MAX_SUBJECT_REFERENCES: usize = 3;

/// What to do with one mail.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Store it as this message.
    Store(Box<InboundMessage>),
    /// Accept it and drop it, for this reason (automatic mail).
    Drop(String),
}

/// Receives mails for the intake. Cheap to clone.
#[derive(Clone)]
pub struct Inbound {
    pub intake: Intake,
    pub blobs: BlobStore,
    pub policy: Arc<Policy>,
}

/// What the adapter needs to know to judge a mail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Our own sending address, lowercased: mail from it is one of our answers coming back.
    pub own_address: String,
    /// The authserv-id of our MTA's `Authentication-Results` headers (`[email] authserv_id`).
    pub authserv_id: Option<String>,
    /// `[email] trust_unauthenticated_from`: every `From` is believed.
    pub trust_unauthenticated_from: bool,
}

impl Policy {
    /// Why this mail's sender may thread into an earlier ticket; None when it may not.
    fn sender_trusted(&self, parsed: &ParsedMail, sender: &str, from_header: bool) -> Option<&'static str> {
        if self.trust_unauthenticated_from {
            return Some("trust_unauthenticated_from");
        }
        let id = self.authserv_id.as_deref()?;
        auth::authenticated(&parsed.auth_results, id, sender, from_header).map(|proof| match proof {
            auth::Proof::Dmarc => "dmarc=pass",
            auth::Proof::Dkim => "dkim=pass",
            auth::Proof::Spf => "spf=pass",
        })
    }
}

impl MailSink for Inbound {
    fn store(&self, mail: Mail, peer: SocketAddr) -> BoxFuture<'_, Reply> {
        async move {
            let blobs = self.blobs.clone();
            let policy = self.policy.clone();
            // Parsing a large mail and writing its files is blocking work; a panic in the parser ends up here as a
            // JoinError instead of taking the task down.
            let decided = tokio::task::spawn_blocking(move || decide(&mail, &blobs, &policy)).await;
            let decision = match decided {
                Ok(Ok(decision)) => decision,
                Ok(Err(reply)) => {
                    tracing::info!(%peer, code = reply.code, reason = ?reply.lines, "mail refused");
                    return reply;
                }
                Err(e) => {
                    tracing::error!(%peer, error = %e, "mail could not be parsed (parser failure); refused");
                    return Reply::new(554, "5.6.0 The message could not be read");
                }
            };
            match decision {
                Decision::Drop(reason) => {
                    tracing::info!(%peer, %reason, "automatic mail accepted and dropped");
                    Reply::new(250, "2.6.0 Automatic mail accepted, not kept")
                }
                Decision::Store(message) => {
                    let key = message.message_id.clone();
                    match self.intake.receive(*message).await {
                        Ok(received) => {
                            let what = match &received {
                                Received::Opened(_) => "new petition",
                                Received::Attached { .. } => "follow-up",
                            };
                            tracing::info!(%peer, message_id = %key, ticket = %received.ticket_id(), duplicate =
                                received.duplicate(), what, "mail stored");
                            Reply::new(250, format!("2.0.0 Stored as {}", received.reference()))
                        }
                        Err(e) => reply_for(&e, &key),
                    }
                }
            }
        }
        .boxed()
    }
}

/// The SMTP answer to an intake failure.
fn reply_for(e: &IntakeError, key: &str) -> Reply {
    match e {
        IntakeError::Invalid { message, .. } => {
            tracing::info!(message_id = %key, error = %e, "mail refused by intake");
            Reply::new(550, format!("5.6.0 The message cannot be accepted: {message}"))
        }
        IntakeError::KeyReused => {
            tracing::warn!(message_id = %key, "a different mail reuses a Message-ID already received; refused");
            Reply::new(554, "5.6.0 A different message with this Message-ID was already received")
        }
        IntakeError::Unavailable(_) | IntakeError::OutcomeUnknown(_) => {
            tracing::warn!(message_id = %key, error = %e, "mail not stored for now; the sender will retry");
            Reply::new(451, "4.3.0 Temporary failure storing the message, try again later")
        }
    }
}

/// Decides what a mail is: parses it, stores its files, and builds the message for the intake. `Err` is the reply
/// refusing it.
pub fn decide(mail: &Mail, blobs: &BlobStore, policy: &Policy) -> Result<Decision, Reply> {
    if mail.reverse_path.is_none() {
        return Ok(Decision::Drop("null sender <> (a bounce or other automatic mail)".to_owned()));
    }
    let parsed = match mime::parse_mail(&mail.data) {
        Ok(parsed) => parsed,
        Err(MimeError::Unreadable) => return Err(Reply::new(550, "5.6.0 The message has no readable headers or body")),
        Err(e @ MimeError::TooManyFiles) => return Err(Reply::new(552, format!("5.3.4 {e}"))),
    };
    if let Some(reason) = &parsed.automatic {
        return Ok(Decision::Drop(reason.clone()));
    }
    let header_from = parsed.from.clone().filter(|f| is_address(f));
    let from_header = header_from.is_some();
    let from = header_from.or_else(|| mail.reverse_path.clone().filter(|f| is_address(f)));
    let Some(from) = from else {
        return Err(Reply::new(550, "5.1.7 The message has no sender address to answer"));
    };
    let local = from.split('@').next().unwrap_or("");
    if from == policy.own_address || local.eq_ignore_ascii_case("mailer-daemon") {
        return Ok(Decision::Drop(format!("sent by {from} (our own address or a mailer daemon)")));
    }
    if parsed.text.trim().is_empty() && parsed.files.is_empty() {
        return Err(Reply::new(550, "5.6.0 The message has neither text nor attachments: nothing to record"));
    }
    let mut hints = hints(&parsed);
    if !hints.is_empty() {
        match policy.sender_trusted(&parsed, &from, from_header) {
            Some(why) => tracing::debug!(from = %hotline_channel::pseudonym(&from), why, "mail sender authenticated; its thread hints count"),
            None => {
                tracing::info!(
                    from = %hotline_channel::pseudonym(&from),
                    message_id = parsed.message_id.as_deref().unwrap_or(""),
                    hints = hints.len(),
                    authserv_id = policy.authserv_id.as_deref().unwrap_or("(unset)"),
                    "mail names an earlier ticket but its sender is not authenticated by our mail server; it opens \
                     a new petition"
                );
                hints.clear();
            }
        }
    }
    message(mail, parsed, from, hints, blobs).map(|m| Decision::Store(Box::new(m)))
}

fn message(
    mail: &Mail,
    parsed: ParsedMail,
    from: String,
    hints: Vec<ThreadHint>,
    blobs: &BlobStore,
) -> Result<InboundMessage, Reply> {
    let mut text = if hints.is_empty() { parsed.text.clone() } else { mime::trim_quoted_tail(&parsed.text) };
    let mut files = parsed.files;
    if text.len() > MAX_TEXT_BYTES {
        // Too long to be one event: the petition gets the beginning, the whole text is kept as a file.
        files.push(mime::FilePart {
            name: "noi-dung-day-du.txt".to_owned(),
            media_type: "text/plain; charset=utf-8".to_owned(),
            bytes: text.clone().into_bytes(),
        });
        let mut cut = MAX_TEXT_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n[…] (toàn văn trong tệp noi-dung-day-du.txt)");
    }
    let mut attachments = Vec::with_capacity(files.len());
    for file in &files {
        if file.bytes.len() > blobs::MAX_BYTES {
            return Err(Reply::new(
                552,
                format!(
                    "5.3.4 Attachment \"{}\" is larger than {} MB, the most the hotline keeps per file",
                    file.name,
                    blobs::MAX_BYTES / (1024 * 1024)
                ),
            ));
        }
        let blob = blobs.put(&file.bytes).map_err(|e| {
            tracing::error!(error = %e, "attachment not written to the blob store");
            Reply::new(451, "4.3.0 Temporary failure storing an attachment, try again later")
        })?;
        attachments.push(Attachment {
            name: file.name.clone(),
            url: None,
            sha256: Some(blob.sha256),
            media_type: Some(file.media_type.clone()),
            size: Some(blob.size),
        });
    }
    let message_id = match &parsed.message_id {
        Some(id) if id.len() <= 900 => id.clone(),
        // No Message-ID (or an absurd one): the message's own hash is as stable across redeliveries.
        _ => format!("sha256:{}", hex(&Sha256::digest(&mail.data))),
    };
    Ok(InboundMessage {
        channel: CHANNEL,
        message_id,
        from,
        name: parsed.name.map(|n| n.chars().take(200).collect()),
        subject: parsed.subject.map(|s| s.chars().take(MAX_SUBJECT_CHARS).collect()),
        text,
        attachments,
        hints,
        location: None,
        follow_up_window: None,
        phone: None,
    })
}

/// What ties a mail to an earlier ticket: our Message-IDs it answers (In-Reply-To first, then References newest
/// first), then references tagged in its subject; at most [`MAX_IN_REPLY_TO_IDS`], [`MAX_REFERENCES_IDS`] and
/// [`MAX_SUBJECT_REFERENCES`] of each, so a mail costs the intake a bounded number of lookups.
pub fn hints(parsed: &ParsedMail) -> Vec<ThreadHint> {
    let mut hints = Vec::new();
    let in_reply_to = parsed.in_reply_to.iter().take(MAX_IN_REPLY_TO_IDS);
    let references = parsed.references.iter().rev().take(MAX_REFERENCES_IDS);
    for id in in_reply_to.chain(references) {
        if let Some(ticket) = ticket_of_message_id(id) {
            let hint = ThreadHint::Ticket(ticket);
            if !hints.contains(&hint) {
                hints.push(hint);
            }
        }
    }
    if let Some(subject) = &parsed.subject {
        for reference in find_references(subject).into_iter().take(MAX_SUBJECT_REFERENCES) {
            let hint = ThreadHint::Reference(reference);
            if !hints.contains(&hint) {
                hints.push(hint);
            }
        }
    }
    hints
}

/// The ticket of one of our Message-IDs: `hotline.{ticket}.{event}@domain` (bracketless), whatever the domain.
pub fn ticket_of_message_id(id: &str) -> Option<Uuid> {
    let (local, _domain) = id.rsplit_once('@')?;
    let (ticket, event) = local.strip_prefix("hotline.")?.split_once('.')?;
    Uuid::parse_str(event).ok()?;
    Uuid::parse_str(ticket).ok()
}

/// A plausible mailbox: `local@domain`, no spaces or control characters, nothing a decoder had to replace.
fn is_address(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else { return false };
    let domain_ok = domain.contains('.') || domain == "localhost";
    !local.is_empty()
        && domain_ok
        && a.len() <= 254
        && !a.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\u{fffd}' || c == '<' || c == '>')
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(data: &[u8]) -> Mail {
        Mail { reverse_path: Some("a@example.vn".into()), recipients: vec!["tiepnhan@x.vn".into()], data: data.to_vec() }
    }

    /// Threading on trust, as most tests here are about parsing.
    fn policy(own: &str) -> Policy {
        Policy { own_address: own.to_owned(), authserv_id: None, trust_unauthenticated_from: true }
    }

    fn corpus(name: &str) -> Vec<u8> {
        let path = format!("{}/fuzz-corpus/email_mime/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn our_message_ids_name_their_ticket() {
        let t = Uuid::from_u128(1);
        let e = Uuid::from_u128(2);
        assert_eq!(ticket_of_message_id(&format!("hotline.{t}.{e}@1022.tinh.gov.vn")), Some(t));
        assert_eq!(ticket_of_message_id(&format!("hotline.{t}@x")), None);
        assert_eq!(ticket_of_message_id(&format!("other.{t}.{e}@x")), None);
        assert_eq!(ticket_of_message_id("hotline.a.b@x"), None);
    }

    #[test]
    fn a_reply_carries_its_ticket_and_subject_reference_and_loses_the_quote() {
        let dir = tempfile::tempdir().expect("tmp");
        let Ok(Decision::Store(m)) = decide(&mail(&corpus("reply.eml")), &BlobStore::new(dir.path()), &policy("tiepnhan@x.vn"))
        else {
            panic!("stored")
        };
        let ticket = Uuid::parse_str("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").expect("uuid");
        assert_eq!(m.hints.first(), Some(&ThreadHint::Ticket(ticket)));
        assert_eq!(m.text, "Nhà tôi ở số 12, tổ 3.");
        assert_eq!(m.message_id, "reply-1@mail.example.vn");
        assert_eq!(m.from, "nguyen.vana@gmail.com");
    }

    /// The reply corpus mail (From nguyen.vana@gmail.com, In-Reply-To one of ours, a subject tag) with these
    /// headers on top.
    fn reply_with(headers: &str) -> Mail {
        let mut data = headers.as_bytes().to_vec();
        data.extend(corpus("reply.eml"));
        mail(&data)
    }

    fn hints_of(m: &Mail, policy: &Policy) -> Vec<ThreadHint> {
        let dir = tempfile::tempdir().expect("tmp");
        match decide(m, &BlobStore::new(dir.path()), policy) {
            Ok(Decision::Store(m)) => m.hints,
            other => panic!("stored: {other:?}"),
        }
    }

    #[test]
    fn only_a_sender_our_mail_server_authenticated_may_thread() {
        let ours = Policy {
            own_address: "tiepnhan@x.vn".into(),
            authserv_id: Some("mx.1022.tinh.gov.vn".into()),
            trust_unauthenticated_from: false,
        };
        let ticket = Uuid::parse_str("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").expect("uuid");
        let genuine = reply_with("Authentication-Results: mx.1022.tinh.gov.vn;\r\n dmarc=pass (p=none) header.from=gmail.com\r\n");
        assert_eq!(hints_of(&genuine, &ours), [ThreadHint::Ticket(ticket)]);
        let dkim = reply_with("Authentication-Results: mx.1022.tinh.gov.vn; dkim=pass header.d=gmail.com header.b=a/b=\r\n");
        assert_eq!(hints_of(&dkim, &ours), [ThreadHint::Ticket(ticket)]);
        // A filter of ours adding its own verdict above it changes nothing.
        let filtered = reply_with("Authentication-Results: filter.internal; arc=none\r\n\
            Authentication-Results: mx.1022.tinh.gov.vn; spf=pass smtp.mailfrom=nguyen.vana@gmail.com\r\n");
        assert_eq!(hints_of(&filtered, &ours), [ThreadHint::Ticket(ticket)]);
        // Spoofed: no header; another server's verdict (written by the sender); our id saying fail, with a
        // look-alike claiming pass below it.
        for headers in [
            "",
            "Authentication-Results: mx.google.com; dmarc=pass header.from=gmail.com\r\n",
            "Authentication-Results: mx.1022.tinh.gov.vn; dmarc=fail header.from=gmail.com\r\n\
             Authentication-Results: mx.1022.tinh.gov.vn; dmarc=pass header.from=gmail.com\r\n",
            "Authentication-Results: mx.1022.tinh.gov.vn; dmarc=pass header.from=evil.example\r\n",
        ] {
            let spoofed = reply_with(headers);
            assert_eq!(hints_of(&spoofed, &ours), [], "{headers}");
        }
        // Its text stays whole (it is a new petition, the quote is its context).
        let dir = tempfile::tempdir().expect("tmp");
        let Ok(Decision::Store(m)) = decide(&reply_with(""), &BlobStore::new(dir.path()), &ours) else { panic!() };
        assert!(m.text.contains("> Đề nghị"), "{}", m.text);
        // No authserv_id and no trust: nothing threads, however authenticated it looks.
        let unset = Policy { authserv_id: None, ..ours.clone() };
        assert_eq!(hints_of(&genuine, &unset), []);
        // Trust on: everything threads.
        let trusting = Policy { trust_unauthenticated_from: true, ..unset };
        assert_eq!(hints_of(&reply_with(""), &trusting), [ThreadHint::Ticket(ticket)]);
    }

    #[test]
    fn thread_hints_are_capped() {
        let ours = |n: u128| format!("<hotline.{}.{}@x.vn>", Uuid::from_u128(n), Uuid::from_u128(n + 1_000_000));
        let references: Vec<String> = (1..=500).map(ours).collect();
        let in_reply_to: Vec<String> = (1001..=1005).map(ours).collect();
        let tags: String =
            (0..20).map(|i| format!("[#{}] ", hotline_domain::reference::Reference::derive(Uuid::from_u128(i), 0).as_str())).collect();
        let raw = format!(
            "From: a@example.vn\r\nSubject: {tags}\r\nIn-Reply-To: {}\r\nReferences: {}\r\n\r\nhi\r\n",
            in_reply_to.join(" "),
            references.join("\r\n ")
        );
        let parsed = mime::parse_mail(raw.as_bytes()).expect("parsed");
        assert_eq!(parsed.references.len(), 500);
        let hints = hints(&parsed);
        let tickets: Vec<Uuid> =
            hints.iter().filter_map(|h| if let ThreadHint::Ticket(t) = h { Some(*t) } else { None }).collect();
        let expected: Vec<Uuid> = [1001, 1002].into_iter().chain((491..=500).rev()).map(Uuid::from_u128).collect();
        assert_eq!(tickets, expected, "In-Reply-To first, then the newest References");
        let subject_refs = hints.iter().filter(|h| matches!(h, ThreadHint::Reference(_))).count();
        assert_eq!(subject_refs, MAX_SUBJECT_REFERENCES, "{hints:?}");
        assert!(hints.len() <= MAX_IN_REPLY_TO_IDS + MAX_REFERENCES_IDS + MAX_SUBJECT_REFERENCES);
    }

    #[test]
    fn automatic_mail_and_our_own_mail_are_dropped() {
        let dir = tempfile::tempdir().expect("tmp");
        let blobs = BlobStore::new(dir.path());
        for name in ["autoreply.eml", "bulk.eml", "bounce.eml"] {
            assert!(matches!(decide(&mail(&corpus(name)), &blobs, &policy("tiepnhan@x.vn")), Ok(Decision::Drop(_))), "{name}");
        }
        let bounce = Mail { reverse_path: None, ..mail(&corpus("plain.eml")) };
        assert!(matches!(decide(&bounce, &blobs, &policy("tiepnhan@x.vn")), Ok(Decision::Drop(_))));
        let own = decide(&mail(&corpus("plain.eml")), &blobs, &policy("nguyen.vana@gmail.com"));
        assert!(matches!(own, Ok(Decision::Drop(_))));
    }

    #[test]
    fn a_mail_with_nothing_in_it_is_refused_and_one_with_only_files_is_kept() {
        let dir = tempfile::tempdir().expect("tmp");
        let blobs = BlobStore::new(dir.path());
        let refused = decide(&mail(&corpus("empty.eml")), &blobs, &policy("x@x.vn")).expect_err("refused");
        assert_eq!(refused.code, 550);
        let Ok(Decision::Store(m)) = decide(&mail(&corpus("attachment-only.eml")), &blobs, &policy("x@x.vn")) else {
            panic!("stored")
        };
        assert!(m.text.is_empty());
        assert_eq!(m.attachments.len(), 1);
        let sha = m.attachments[0].sha256.clone().expect("sha");
        assert_eq!(blobs.get(&sha).expect("read").map(|b| b.len() as u64), m.attachments[0].size);
    }

    #[test]
    fn a_long_text_is_cut_and_kept_whole_as_a_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let blobs = BlobStore::new(dir.path());
        let body = "Đường ngập. ".repeat(10_000);
        let raw = format!("From: a@example.vn\r\nMessage-ID: <long@x>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n");
        let Ok(Decision::Store(m)) = decide(&mail(raw.as_bytes()), &blobs, &policy("x@x.vn")) else { panic!("stored") };
        assert!(m.text.len() <= MAX_TEXT_BYTES + 100);
        let file = &m.attachments[0];
        assert_eq!(file.name, "noi-dung-day-du.txt");
        let kept = blobs.get(file.sha256.as_deref().expect("sha")).expect("read").expect("there");
        assert_eq!(String::from_utf8(kept).expect("utf-8"), body.trim_end());
    }

    #[test]
    fn a_mail_without_message_id_is_keyed_by_its_hash() {
        let dir = tempfile::tempdir().expect("tmp");
        let raw = b"From: a@example.vn\r\nSubject: x\r\n\r\nhello\r\n";
        let Ok(Decision::Store(m)) = decide(&mail(raw), &BlobStore::new(dir.path()), &policy("x@x.vn")) else { panic!() };
        assert_eq!(m.message_id, format!("sha256:{}", hex(&Sha256::digest(raw))));
    }

    #[test]
    fn a_sender_is_taken_from_the_envelope_when_from_is_unusable() {
        let dir = tempfile::tempdir().expect("tmp");
        let Ok(Decision::Store(m)) = decide(&mail(&corpus("invalid-utf8.eml")), &BlobStore::new(dir.path()), &policy("x@x.vn"))
        else {
            panic!("stored")
        };
        assert_eq!(m.from, "a@example.vn");
        let none = Mail { reverse_path: Some("nodomain".into()), ..mail(&corpus("invalid-utf8.eml")) };
        assert_eq!(decide(&none, &BlobStore::new(dir.path()), &policy("x@x.vn")).expect_err("refused").code, 550);
    }
}
