//! Answers and questions go out as mail through the configured SMTP relay (the province's Postfix, which signs
//! with DKIM and is named in SPF: that is the relay's job, not ours).
//!
//! Each mail threads with the citizen's own: our Message-ID `<hotline.{ticket}.{event}@{domain}>` (their reply's
//! In-Reply-To names the ticket again), In-Reply-To their last mail, References their mails and our earlier
//! answers; the subject is `Re: <their subject> [#REFERENCE]`, RFC 2047-encoded by lettre. A relay's 5xx is
//! permanent; its 4xx, a refused connection or a timeout are worth another try.

use hotline_channel::{DeliveryError, OutboundKind, OutboundMessage};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use uuid::Uuid;

use crate::config::EmailConfig;

/// Most ids in a References header (the first, and the latest ones): long threads stay within header limits.
const MAX_REFERENCES: usize = 20;

/// Sends mail through the relay.
#[derive(Clone)]
pub struct Relay {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    domain: String,
    timeout: std::time::Duration,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("from", &self.from.to_string()).field("domain", &self.domain).finish()
    }
}

impl Relay {
    /// The relay of a checked configuration. (`EmailConfig::from_value` already tried the URL and the From.)
    pub fn new(config: &EmailConfig) -> Result<Relay, String> {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.relay)
            .map_err(|e| format!("relay: {e}"))?
            .hello_name(ClientId::Domain(config.hostname.clone()))
            .timeout(Some(config.relay_timeout));
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        let from = config.from.parse::<Mailbox>().map_err(|e| format!("from: {e}"))?;
        Ok(Relay { transport: builder.build(), from, domain: config.domain.clone(), timeout: config.relay_timeout })
    }

    /// Sends one answer; returns our Message-ID (bracketless).
    pub async fn send(&self, message: &OutboundMessage) -> Result<String, DeliveryError> {
        let mail = compose(&self.from, &self.domain, message)?;
        // lettre's own timeout is per read or write; this bounds the whole exchange.
        let whole = self.timeout * 4;
        match tokio::time::timeout(whole, self.transport.send(mail)).await {
            Ok(Ok(_)) => Ok(message_id(message.ticket_id, message.id, &self.domain)),
            Ok(Err(e)) if e.is_permanent() => Err(DeliveryError::Permanent(format!("the relay refused the mail: {e}"))),
            Ok(Err(e)) => Err(DeliveryError::Retryable(format!("the relay did not take the mail: {e}"))),
            Err(_) => Err(DeliveryError::Retryable(format!("the relay did not answer within {whole:?}"))),
        }
    }
}

/// Our Message-ID for an answer, bracketless: `hotline.{ticket}.{event}@{domain}`.
pub fn message_id(ticket: Uuid, event: Uuid, domain: &str) -> String {
    format!("hotline.{ticket}.{event}@{domain}")
}

/// The mail for one answer.
pub fn compose(from: &Mailbox, domain: &str, m: &OutboundMessage) -> Result<Message, DeliveryError> {
    let to = m.to.as_deref().ok_or_else(|| DeliveryError::Permanent("the ticket has no e-mail address".to_owned()))?;
    let to: Mailbox = to
        .trim()
        .parse()
        .map_err(|e| DeliveryError::Permanent(format!("`{to}` is not an e-mail address: {e}")))?;
    let ours = |event: Uuid| format!("<{}>", message_id(m.ticket_id, event, domain));
    // Only real Message-IDs thread; a mail that had none was keyed by its hash (`sha256:...`).
    let theirs: Vec<String> = m
        .thread
        .iter()
        .filter(|id| id.contains('@') && !id.contains(['<', '>', ' ', '\r', '\n']))
        .map(|id| format!("<{id}>"))
        .collect();
    // The citizen's first mail, our earlier answers, their later mails: the parent (their last mail) comes last,
    // as RFC 5322 §3.6.4 wants.
    let mut references: Vec<String> = Vec::new();
    references.extend(theirs.first().cloned());
    references.extend(m.earlier_replies.iter().map(|e| ours(*e)));
    references.extend(theirs.iter().skip(1).cloned());
    if references.len() > MAX_REFERENCES {
        let tail = references.split_off(references.len() - (MAX_REFERENCES - 1));
        references.truncate(1);
        references.extend(tail);
    }
    let mut builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject(m))
        .message_id(Some(ours(m.id)))
        .date_now()
        .header(ContentType::TEXT_PLAIN);
    if let Some(parent) = theirs.last() {
        builder = builder.in_reply_to(parent.clone());
    }
    if !references.is_empty() {
        builder = builder.references(references.join(" "));
    }
    builder.body(body(m)).map_err(|e| DeliveryError::Permanent(format!("the answer could not be put in a mail: {e}")))
}

/// `Re: <petition subject> [#REF]`, or a subject saying what it is when the petition had none.
pub fn subject(m: &OutboundMessage) -> String {
    let tag = format!("[#{}]", m.reference.as_str());
    let theirs = m.subject.as_deref().map(|s| {
        let s = s.replace(&tag, "");
        strip_reply_prefixes(&s).split_whitespace().collect::<Vec<_>>().join(" ")
    });
    match theirs.filter(|s| !s.is_empty()) {
        Some(s) => format!("Re: {s} {tag}"),
        None => match m.kind {
            OutboundKind::Answer => format!("Phản hồi phản ánh {tag}"),
            OutboundKind::Question => format!("Yêu cầu bổ sung thông tin {tag}"),
        },
    }
}

/// Their subject may already be a reply's ("Re: RE: ..."): one "Re:" of ours is enough.
fn strip_reply_prefixes(s: &str) -> &str {
    let mut s = s.trim_start();
    'again: loop {
        for prefix in ["re:", "tl:", "trả lời:", "fwd:", "fw:"] {
            let n = prefix.len();
            if s.is_char_boundary(n) && s.len() >= n && s[..n].to_lowercase() == prefix {
                s = s[n..].trim_start();
                continue 'again;
            }
        }
        return s;
    }
}

fn body(m: &OutboundMessage) -> String {
    let closing = match m.kind {
        OutboundKind::Answer => "Nếu còn điều chưa rõ, xin trả lời thư này.",
        OutboundKind::Question => "Xin trả lời thư này để bổ sung thông tin.",
    };
    format!("{}\n\n-- \nMã phản ánh: {}\n{closing}\n", m.text.trim_end(), m.reference.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotline_domain::Reference;

    fn message(subject: Option<&str>, kind: OutboundKind) -> OutboundMessage {
        OutboundMessage {
            id: Uuid::from_u128(2),
            ticket_id: Uuid::from_u128(1),
            reference: Reference::derive(Uuid::from_u128(1), 0),
            kind,
            text: "Đã xử lý.".to_owned(),
            to: Some("nguyen.vana@gmail.com".to_owned()),
            subject: subject.map(str::to_owned),
            thread: vec!["first@gmail.com".to_owned(), "sha256:abc".to_owned(), "second@gmail.com".to_owned()],
            earlier_replies: vec![Uuid::from_u128(3)],
        }
    }

    #[test]
    fn the_subject_keeps_theirs_once_with_our_tag() {
        let m = message(Some("Phản ánh về đường xá"), OutboundKind::Answer);
        let tag = format!("[#{}]", m.reference.as_str());
        assert_eq!(subject(&m), format!("Re: Phản ánh về đường xá {tag}"));
        let again = message(Some(&format!("RE: Re:  Phản ánh {tag}")), OutboundKind::Answer);
        assert_eq!(subject(&again), format!("Re: Phản ánh {tag}"));
        assert_eq!(subject(&message(None, OutboundKind::Question)), format!("Yêu cầu bổ sung thông tin {tag}"));
        assert_eq!(subject(&message(Some("  "), OutboundKind::Answer)), format!("Phản hồi phản ánh {tag}"));
    }

    #[test]
    fn the_mail_threads_with_the_citizens() {
        let m = message(Some("x"), OutboundKind::Answer);
        let from: Mailbox = "1022 Bình Dương <tiepnhan@1022.tinh.gov.vn>".parse().expect("from");
        let mail = compose(&from, "1022.tinh.gov.vn", &m).expect("mail");
        let text = String::from_utf8(mail.formatted()).expect("utf-8");
        let ours = |n: u128| format!("<hotline.{}.{}@1022.tinh.gov.vn>", Uuid::from_u128(1), Uuid::from_u128(n));
        assert!(text.contains(&format!("Message-ID: {}", ours(2))), "{text}");
        assert!(text.contains("In-Reply-To: <second@gmail.com>"), "{text}");
        let unfolded = text.replace("\r\n ", " ");
        assert!(unfolded.contains(&format!("References: <first@gmail.com> {} <second@gmail.com>", ours(3))), "{text}");
        assert!(!text.contains("sha256:abc"));
    }

    #[test]
    fn a_ticket_without_an_address_cannot_be_answered_by_mail() {
        let from: Mailbox = "a@b.vn".parse().expect("from");
        let mut m = message(None, OutboundKind::Answer);
        m.to = None;
        assert!(matches!(compose(&from, "b.vn", &m), Err(DeliveryError::Permanent(_))));
        m.to = Some("not an address".to_owned());
        assert!(matches!(compose(&from, "b.vn", &m), Err(DeliveryError::Permanent(_))));
    }
}
