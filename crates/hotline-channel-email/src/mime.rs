//! A raw e-mail (RFC 5322 + MIME) turned into what a petition needs: sender, subject, readable text, files, thread
//! ids, and whether a machine sent it. Pure: bytes in, [`ParsedMail`] out, so it is fuzzed as `email_mime`.
//!
//! Parsing is `mail-parser`'s (RFC 2047 words, every charset incl. windows-1258, base64 and quoted-printable,
//! nested multiparts). On top of it: the text is the `text/plain` alternative when there is one, otherwise the HTML
//! made readable ([`html_to_text`]); every non-body part (attachments, inline images, forwarded mails) is a file.

use mail_parser::{HeaderValue, Message, MessageParser, MimeHeaders, PartType};
use unicode_normalization::UnicodeNormalization;

use crate::auth;

/// Most files kept from one mail; a mail with more is refused (a petition is not a file drop).
pub const MAX_FILES: usize = 20;

/// What a mail says, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedMail {
    /// `Message-ID` without angle brackets.
    pub message_id: Option<String>,
    /// The `From` address, lowercased.
    pub from: Option<String>,
    /// The `From` display name (RFC 2047 decoded).
    pub name: Option<String>,
    /// The subject (RFC 2047 decoded), trimmed; None when empty.
    pub subject: Option<String>,
    /// The readable text of the body parts, joined; empty when there is none.
    pub text: String,
    /// Attachments, inline images and forwarded messages, decoded.
    pub files: Vec<FilePart>,
    /// Ids in `In-Reply-To`, bracketless.
    pub in_reply_to: Vec<String>,
    /// Ids in `References`, bracketless, oldest first.
    pub references: Vec<String>,
    /// Why a machine sent this mail (an auto-reply, a bounce, a list), when one did.
    pub automatic: Option<String>,
    /// The values of its `Authentication-Results` headers, topmost first (at most [`auth::MAX_HEADERS`]).
    pub auth_results: Vec<String>,
}

/// One file of a mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePart {
    /// A safe file name: from the mail, or made up from the media type.
    pub name: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MimeError {
    #[error("the message has no headers or body that can be read")]
    Unreadable,
    #[error("the message has more than {MAX_FILES} attachments")]
    TooManyFiles,
}

/// Parses a raw message.
pub fn parse_mail(raw: &[u8]) -> Result<ParsedMail, MimeError> {
    let message = MessageParser::default().parse(raw).ok_or(MimeError::Unreadable)?;
    let (from, name) = match message.from().and_then(|a| a.first()) {
        Some(addr) => (
            addr.address().map(|a| a.trim().to_lowercase()).filter(|a| !a.is_empty()),
            addr.name().map(|n| nfc(n.trim())).filter(|n| !n.is_empty()),
        ),
        None => (None, None),
    };
    let files = files(&message);
    if files.len() > MAX_FILES {
        return Err(MimeError::TooManyFiles);
    }
    Ok(ParsedMail {
        message_id: message.message_id().map(clean_id).filter(|id| !id.is_empty()),
        from,
        name,
        subject: message.subject().map(|s| nfc(s.trim())).filter(|s| !s.is_empty()),
        text: nfc(&body_text(&message)),
        files,
        in_reply_to: ids(message.in_reply_to()),
        references: ids(message.references()),
        automatic: automatic(&message),
        auth_results: auth_results(&message),
    })
}

/// The raw values of the `Authentication-Results` headers, in order. Read as lossy UTF-8 rather than skipped when
/// not UTF-8: skipping our own MTA's header because of a byte the sender chose (a DKIM `i=`) could let a
/// look-alike below it count.
fn auth_results(message: &Message<'_>) -> Vec<String> {
    let raw = message.raw_message.as_ref();
    message
        .headers()
        .iter()
        .filter(|h| h.name.as_str().eq_ignore_ascii_case("authentication-results"))
        .take(auth::MAX_HEADERS)
        .map(|h| {
            let bytes = raw.get(h.offset_start as usize..h.offset_end as usize).unwrap_or_default();
            String::from_utf8_lossy(bytes).into_owned()
        })
        .collect()
}

/// Fuzz target `email_mime`: parses any bytes, and runs what the adapter runs on the result. Never panics.
pub fn fuzz_mime(raw: &[u8]) -> usize {
    match parse_mail(raw) {
        Ok(mail) => {
            let trimmed = trim_quoted_tail(&mail.text);
            let sender = mail.from.as_deref().unwrap_or("a@example.vn");
            let authenticated = auth::authenticated(&mail.auth_results, "mx.example.vn", sender, true).is_some();
            mail.text.len()
                + trimmed.len()
                + mail.files.iter().map(|f| f.bytes.len()).sum::<usize>()
                + usize::from(authenticated)
        }
        Err(_) => 0,
    }
}

/// The text of the body: every text part that is the body (not an attachment), `text/plain` preferred over its
/// HTML alternative, HTML made readable when it is all there is.
fn body_text(message: &Message<'_>) -> String {
    let mut out: Vec<String> = Vec::new();
    for &id in &message.text_body {
        let Some(part) = message.parts.get(id as usize) else { continue };
        let text = match &part.body {
            PartType::Text(text) => text.replace("\r\n", "\n"),
            PartType::Html(html) => html_to_text(html),
            _ => continue,
        };
        let text = text.trim_end();
        if !text.trim().is_empty() {
            out.push(text.trim_start_matches(['\n', '\r']).to_owned());
        }
    }
    out.join("\n\n")
}

/// The parts that are files: everything mail-parser lists as an attachment except the body's own text and HTML.
fn files(message: &Message<'_>) -> Vec<FilePart> {
    let body: Vec<u32> = message.text_body.iter().chain(&message.html_body).copied().collect();
    let mut files = Vec::new();
    for &id in &message.attachments {
        let Some(part) = message.parts.get(id as usize) else { continue };
        let is_body_text = body.contains(&id) && matches!(part.body, PartType::Text(_) | PartType::Html(_));
        if is_body_text || matches!(part.body, PartType::Multipart(_)) {
            continue;
        }
        let media_type = match part.content_type() {
            Some(ct) => match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub).to_lowercase(),
                None => ct.ctype().to_lowercase(),
            },
            None if part.is_message() => "message/rfc822".to_owned(),
            None => "application/octet-stream".to_owned(),
        };
        // A multipart whose boundary never came is a broken container, not a file anyone sent.
        if media_type.starts_with("multipart/") {
            continue;
        }
        let bytes = part.contents().to_vec();
        if bytes.is_empty() {
            continue;
        }
        let name = safe_name(part.attachment_name(), &media_type, files.len() + 1);
        files.push(FilePart { name, media_type, bytes });
    }
    files
}

/// A file name that is safe to show and store: no path, no control characters, at most 200 characters; made up
/// from the media type when the mail gives none.
fn safe_name(given: Option<&str>, media_type: &str, n: usize) -> String {
    let base = given
        .map(|g| g.rsplit(['/', '\\']).next().unwrap_or(g))
        .map(|g| g.chars().filter(|c| !c.is_control()).collect::<String>())
        .map(|g| g.trim().trim_start_matches('.').to_owned())
        .filter(|g| !g.is_empty());
    let name = base.unwrap_or_else(|| {
        let ext = match media_type {
            "image/jpeg" => "jpg",
            "image/png" => "png",
            "image/gif" => "gif",
            "application/pdf" => "pdf",
            "message/rfc822" => "eml",
            "text/plain" => "txt",
            "text/html" => "html",
            _ => "bin",
        };
        format!("tep-dinh-kem-{n}.{ext}")
    });
    name.chars().take(200).collect()
}

/// Why this mail was sent by a machine, from its headers (RFC 3834 `Auto-Submitted`, `Precedence`, the usual
/// auto-responder markers, delivery reports). Such mail never becomes a petition: answering it would start a loop
/// between our answers and the other side's auto-replies.
fn automatic(message: &Message<'_>) -> Option<String> {
    let header = |name: &str| message.header_raw(name).map(|v| v.trim().to_ascii_lowercase());
    if let Some(v) = header("Auto-Submitted").filter(|v| !v.starts_with("no")) {
        return Some(format!("Auto-Submitted: {v}"));
    }
    if let Some(v) = header("Precedence").filter(|v| ["bulk", "junk", "list", "auto_reply"].contains(&v.as_str())) {
        return Some(format!("Precedence: {v}"));
    }
    // Vacation responders that predate RFC 3834. (Outlook's X-Auto-Response-Suppress is not one: it also rides on
    // ordinary mail, so it is not read here.)
    for name in ["X-Autoreply", "X-Autorespond"] {
        if header(name).is_some_and(|v| v != "no") {
            return Some(name.to_owned());
        }
    }
    let root = message.root_part();
    let is_report = root.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart") && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report"))
    });
    if is_report {
        return Some("multipart/report (a delivery or read report)".to_owned());
    }
    None
}

/// Text in composed form (NFC): windows-1258 and some mail clients write Vietnamese tone marks as combining
/// characters, which would otherwise not match the same words typed elsewhere (the classifier's phrases, search).
fn nfc(s: &str) -> String {
    s.nfc().collect()
}

fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    let mut out: Vec<String> = match value {
        HeaderValue::Text(t) => vec![clean_id(t)],
        HeaderValue::TextList(list) => list.iter().map(|t| clean_id(t)).collect(),
        _ => Vec::new(),
    };
    out.retain(|id| !id.is_empty());
    out
}

/// An id as mail-parser gives it, without brackets or whitespace.
fn clean_id(id: &str) -> String {
    id.trim().trim_start_matches('<').trim_end_matches('>').trim().to_owned()
}

/// HTML made readable: scripts, styles and comments dropped, block elements on lines of their own, a blank line
/// after paragraphs, list items marked, entities decoded, at most one blank line in a row.
///
/// mail-parser's own converter decodes entities and drops scripts and styles but only breaks lines at `<br>` and
/// `</p>`, which runs a `<div>`-per-line mail (what most webmail sends) into one line. So block tags are marked
/// first with private-use characters its converter keeps as text, and the marks become line breaks afterwards
/// (several marks in a row, one break).
pub fn html_to_text(html: &str) -> String {
    const LINE: char = '\u{E000}';
    const PARAGRAPH: char = '\u{E001}';
    const BLOCKS: &[&str] = &[
        "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "hr",
        "section", "article", "header", "footer", "address", "dl", "dt", "dd", "title", "body",
    ];
    let mut prepared = String::with_capacity(html.len() + html.len() / 8);
    // The marks are ours alone: any the mail itself carries are dropped.
    let html = html.replace([LINE, PARAGRAPH], "");
    let mut rest = html.as_str();
    while let Some(lt) = rest.find('<') {
        prepared.push_str(&rest[..lt]);
        let tag = &rest[lt + 1..];
        let closing = tag.starts_with('/');
        let name: String =
            tag.trim_start_matches('/').chars().take_while(|c| c.is_ascii_alphanumeric()).collect::<String>();
        let name = name.to_ascii_lowercase();
        if name == "p" {
            prepared.push(PARAGRAPH);
        } else if BLOCKS.contains(&name.as_str()) {
            prepared.push(LINE);
            if name == "li" && !closing {
                prepared.push_str("- ");
            }
        }
        prepared.push('<');
        rest = tag;
    }
    prepared.push_str(rest);
    let converted = mail_parser::decoders::html::html_to_text(&prepared);
    // Marks to line breaks: a run of marks (and the spaces between them) asks for one break, or a blank line.
    let mut text = String::with_capacity(converted.len());
    let mut pending = 0;
    for c in converted.chars() {
        match c {
            LINE => pending = pending.max(1),
            PARAGRAPH => pending = 2,
            ' ' if pending > 0 => {}
            _ => {
                if pending > 0 && !text.is_empty() {
                    let have = text.chars().rev().take_while(|&c| c == '\n').count();
                    for _ in have..pending {
                        text.push('\n');
                    }
                }
                pending = 0;
                text.push(c);
            }
        }
    }
    // Non-breaking spaces (&nbsp;) read as spaces; lines lose surrounding blanks; at most one empty line in a row.
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.replace('\u{a0}', " ").lines() {
        let line = line.trim();
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 || out.is_empty() {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim_end().to_owned()
}

/// A follow-up's text without the quoted mail at its end: the trailing `>` lines and the attribution line before
/// them ("On Mon, ... wrote:", "Vào ... đã viết:", "-----Original Message-----"). Quotes in the middle (inline
/// answers) are kept, and so is everything when nothing but the quote would be left.
pub fn trim_quoted_tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut end = lines.len();
    let mut quoted = 0;
    while end > 0 {
        let line = lines[end - 1].trim();
        if line.starts_with('>') {
            quoted += 1;
        } else if !line.is_empty() {
            break;
        }
        end -= 1;
    }
    if quoted == 0 {
        return text.to_owned();
    }
    // The attribution: one line, or two when a mail client wrapped it.
    let is_attribution_end = |l: &str| {
        let l = l.trim().to_lowercase();
        l.ends_with("wrote:") || l.ends_with("viết:") || l.ends_with("viet:") || l.contains("original message")
    };
    let starts_attribution = |l: &str| {
        let l = l.trim().to_lowercase();
        l.starts_with("on ") || l.starts_with("vào ") || l.starts_with("vao ") || l.starts_with("le ")
    };
    if end > 0 && is_attribution_end(lines[end - 1]) {
        end -= 1;
        if !starts_attribution(lines[end]) && end > 0 && starts_attribution(lines[end - 1]) {
            end -= 1;
        }
    }
    let kept = lines[..end].join("\n");
    let kept = kept.trim_end();
    if kept.trim().is_empty() { text.to_owned() } else { kept.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(name: &str) -> ParsedMail {
        let path = format!("{}/fuzz-corpus/email_mime/{name}", env!("CARGO_MANIFEST_DIR"));
        parse_mail(&std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))).expect("parsed")
    }

    #[test]
    fn rfc_2047_subject_and_name_are_decoded() {
        let m = corpus("plain.eml");
        assert_eq!(m.subject.as_deref(), Some("Phản ánh về đường xá"));
        assert_eq!(m.name.as_deref(), Some("Nguyễn Văn A"));
        assert_eq!(m.from.as_deref(), Some("nguyen.vana@gmail.com"));
        assert_eq!(m.message_id.as_deref(), Some("plain-1@mail.example.vn"));
        assert!(m.text.starts_with("Đường Nguyễn Trãi"));
    }

    #[test]
    fn the_plain_alternative_is_preferred_and_quoted_printable_decoded() {
        let m = corpus("alternative.eml");
        assert_eq!(m.text, "Cây xanh đổ chắn ngang đường ĐT743.\nXin cám ơn.");
        assert_eq!(m.subject.as_deref(), Some("Cây đổ"));
        assert!(m.files.is_empty(), "the HTML alternative is no file");
    }

    #[test]
    fn an_html_only_mail_reads_as_text() {
        let m = corpus("html-only.eml");
        assert_eq!(m.text, "Kính gửi 1022,\n\nĐèn & cột điện hỏng\ntại xã An Tây.");
    }

    #[test]
    fn windows_1258_and_latin_1_are_decoded_to_composed_unicode() {
        let m = corpus("windows-1258.eml");
        assert_eq!(m.text, "Rác thải ứ đọng ở chợ Thủ Dầu Một.");
        assert_eq!(m.subject.as_deref(), Some("Rác thải"));
        let m = corpus("iso-8859-1.eml");
        assert_eq!(m.text, "Les déchets ne sont pas ramassés depuis une semaine.");
        assert_eq!(m.name.as_deref(), Some("François"));
    }

    #[test]
    fn attachments_and_inline_images_are_files_with_their_names() {
        let m = corpus("attachment.eml");
        assert_eq!(m.text, "Xem ảnh:");
        let files: Vec<(&str, &str)> = m.files.iter().map(|f| (f.name.as_str(), f.media_type.as_str())).collect();
        assert_eq!(files, vec![("tep-dinh-kem-1.png", "image/png"), ("đơn kiến nghị.pdf", "application/pdf")]);
        assert!(m.files[0].bytes.starts_with(b"\x89PNG"));
        assert!(m.files[1].bytes.starts_with(b"%PDF-1.4"));
        let fwd = corpus("forwarded.eml");
        assert_eq!(fwd.files.len(), 1);
        assert_eq!(fwd.files[0].media_type, "message/rfc822");
    }

    #[test]
    fn machine_mail_is_recognised() {
        assert!(corpus("autoreply.eml").automatic.is_some());
        assert!(corpus("bulk.eml").automatic.is_some());
        assert!(corpus("bounce.eml").automatic.is_some());
        assert!(corpus("plain.eml").automatic.is_none());
    }

    #[test]
    fn thread_ids_are_read_without_brackets() {
        let m = corpus("reply.eml");
        assert_eq!(m.in_reply_to.len(), 1);
        assert!(m.in_reply_to[0].starts_with("hotline.0190a1b2-"));
        assert_eq!(m.references.first().map(String::as_str), Some("plain-1@mail.example.vn"));
    }

    #[test]
    fn authentication_results_are_kept_in_order() {
        let m = corpus("auth-results.eml");
        assert_eq!(m.auth_results.len(), 3);
        assert!(m.auth_results[0].trim_start().starts_with("mx.example.vn;"));
        assert!(m.auth_results[2].contains("mx.google.com"));
        let a = auth::authenticated(&m.auth_results, "mx.example.vn", "a@example.vn", true);
        assert_eq!(a, Some(auth::Proof::Dmarc));
        assert!(corpus("plain.eml").auth_results.is_empty());
    }

    #[test]
    fn garbage_parses_to_something_or_a_clear_error() {
        assert_eq!(parse_mail(b""), Err(MimeError::Unreadable));
        let junk = corpus("binary-junk.eml");
        assert!(junk.from.is_none());
        assert!(corpus("malformed-boundary.eml").files.is_empty());
        let too_many = format!(
            "From: a@b.vn\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n{}--x--\r\n",
            "--x\r\nContent-Type: application/octet-stream\r\n\r\nAAAA\r\n".repeat(MAX_FILES + 1)
        );
        assert_eq!(parse_mail(too_many.as_bytes()), Err(MimeError::TooManyFiles));
    }

    #[test]
    fn html_blocks_become_lines_and_scripts_disappear() {
        let html = "<html><head><title>x</title><style>p{color:red}</style></head><body>\
<div>Đường&nbsp;bị ngập</div><div>Ph&#432;&#7901;ng 1 &amp; 2</div><script>alert(1)</script>\
<ul><li>một</li><li>hai</li></ul><p>Xin c&aacute;m ơn</p><!-- hidden --></body></html>";
        assert_eq!(html_to_text(html), "Đường bị ngập\nPhường 1 & 2\n- một\n- hai\n\nXin cám ơn");
    }

    #[test]
    fn a_trailing_quote_and_its_attribution_are_trimmed() {
        let text = "Tôi gửi thêm ảnh.\n\nVào Th 2, 3 thg 6, 2024 lúc 10:00 1022 <tiepnhan@x.vn> đã viết:\n> Đề nghị\n> bổ sung\n";
        assert_eq!(trim_quoted_tail(text), "Tôi gửi thêm ảnh.");
        let wrapped = "Yes.\nOn Mon, Jun 3, 2024 at 10:00 AM 1022 <\ntiepnhan@x.vn> wrote:\n\n> q\n";
        assert_eq!(trim_quoted_tail(wrapped), "Yes.");
        let inline = "> question 1\nanswer 1\n> question 2\nanswer 2";
        assert_eq!(trim_quoted_tail(inline), inline);
        assert_eq!(trim_quoted_tail("> only a quote"), "> only a quote");
    }

    #[test]
    fn file_names_are_made_safe() {
        assert_eq!(safe_name(Some("../../etc/passwd"), "text/plain", 1), "passwd");
        assert_eq!(safe_name(Some("C:\\x\\ảnh\u{0}.jpg"), "image/jpeg", 1), "ảnh.jpg");
        assert_eq!(safe_name(None, "image/png", 3), "tep-dinh-kem-3.png");
        assert_eq!(safe_name(Some("..."), "application/x-foo", 2), "tep-dinh-kem-2.bin");
        assert_eq!(safe_name(Some(&"a".repeat(300)), "text/plain", 1).len(), 200);
    }
}
