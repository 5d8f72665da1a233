//! CloudEvents 1.0 binary-mode headers for a feed message on NATS, and the percent-encoding of their values.

use crate::FeedMessage;

/// The CloudEvents version the headers declare.
pub const SPEC_VERSION: &str = "1.0";
/// The content type of every feed message's payload: the proto3 JSON mapping of its message.
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// The headers to publish `message` with, in this order: `ce-specversion`, `ce-id`, `ce-source`, `ce-type`,
/// `ce-time`, `ce-subject`, `ce-datacontenttype`, `ce-dataschema`, `Nats-Msg-Id` (= ce-id, so JetStream drops a
/// republished copy within its duplicate window). Values are percent-encoded as the CloudEvents protocol bindings
/// require ([`percent_encode`]). None of them carries personal data: ids, codes, a time, the ticket id.
pub fn ce_headers(message: &FeedMessage) -> Vec<(String, String)> {
    let pairs: [(&str, &str); 9] = [
        ("ce-specversion", SPEC_VERSION),
        ("ce-id", &message.id),
        ("ce-source", &message.ce_source),
        ("ce-type", &message.ce_type),
        ("ce-time", &message.ce_time),
        ("ce-subject", &message.ce_subject),
        ("ce-datacontenttype", DATA_CONTENT_TYPE),
        ("ce-dataschema", &message.ce_dataschema),
        ("Nats-Msg-Id", &message.id),
    ];
    pairs.into_iter().map(|(name, value)| (name.to_owned(), percent_encode(value))).collect()
}

/// Percent-encodes a header value as the CloudEvents bindings say (HTTP binding 3.1.3.2, which the NATS binding
/// follows for header values): every byte of the value's UTF-8 encoding that is a space (0x20), a double quote
/// (0x22), a percent sign (0x25), or outside printable ASCII (0x21 to 0x7E) becomes `%` and two upper-case hex
/// digits; everything else is kept.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b == b' ' || b == b'"' || b == b'%' || !(0x21..=0x7E).contains(&b) {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0F)]));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// Reads a value written by [`percent_encode`] (or by any CloudEvents producer) back; `None` when a `%` is not
/// followed by two hex digits or the bytes are not UTF-8. Subscribers in Rust can use it.
pub fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let digit = |c: u8| char::from(c).to_digit(16);
            out.push((digit(hex[0])? * 16 + digit(hex[1])?) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_follows_the_cloudevents_rules() {
        // The spec's own example: "Euro € 😀" becomes "Euro%20%E2%82%AC%20%F0%9F%98%80".
        assert_eq!(percent_encode("Euro € 😀"), "Euro%20%E2%82%AC%20%F0%9F%98%80");
        assert_eq!(percent_encode("a\"b%c"), "a%22b%25c");
        assert_eq!(percent_encode("tab\there\r\n\u{7f}"), "tab%09here%0D%0A%7F");
        let printable: String = (0x21u8..=0x7E).filter(|b| *b != b'"' && *b != b'%').map(char::from).collect();
        assert_eq!(percent_encode(&printable), printable);
        assert_eq!(percent_encode("/hotline/dien_bien"), "/hotline/dien_bien");
    }

    #[test]
    fn percent_decoding_reads_back_what_encoding_wrote() {
        for s in ["Euro € 😀", "a\"b%c", "", "%", "Hà Nội 100%"] {
            assert_eq!(percent_decode(&percent_encode(s)).as_deref(), Some(s));
        }
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%FF"), None);
    }
}
