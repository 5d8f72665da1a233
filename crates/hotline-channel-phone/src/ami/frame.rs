//! The Asterisk Manager Interface wire format, as a pure codec: after a one-line banner
//! (`Asterisk Call Manager/5.0.3`), messages are `Key: Value` lines ended by CRLF, one message ended by an empty
//! line. Messages from Asterisk start with `Response:` or `Event:`; ours with `Action:`
//! (https://docs.asterisk.org/Configuration/Interfaces/Asterisk-Manager-Interface-AMI/AMI-Command-Syntax).
//!
//! The decoder takes bytes as they arrive and yields whole messages; bare LF line ends are accepted too, a message
//! larger than [`MAX_FRAME`] is an error (the session reconnects), and values are read as UTF-8 with invalid bytes
//! replaced (caller names are not always UTF-8).

/// Largest message accepted.
pub const MAX_FRAME: usize = 64 * 1024;
/// Longest banner line accepted.
const MAX_BANNER: usize = 256;

/// One AMI message: its headers in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    pub headers: Vec<(String, String)>,
}

impl Frame {
    /// The first value of `key` (names compare case-insensitively, as Asterisk does).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }

    /// The event's name, for an `Event:` message.
    pub fn event(&self) -> Option<&str> {
        self.get("Event")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("the AMI message is larger than {MAX_FRAME} bytes")]
    TooLarge,
    #[error("the peer's first line is not an Asterisk Call Manager banner")]
    NotAmi,
    #[error("an action header carries a line break")]
    LineBreak,
}

/// What the decoder found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// The banner line (`Asterisk Call Manager/5.0.3`), first on every connection.
    Banner(String),
    Frame(Frame),
}

/// Turns a byte stream from Asterisk into banner + messages.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    banner_seen: bool,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Adds received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete item, `Ok(None)` when more bytes are needed.
    pub fn next_item(&mut self) -> Result<Option<Item>, FrameError> {
        if !self.banner_seen {
            let Some(end) = self.buf.iter().position(|b| *b == b'\n') else {
                return if self.buf.len() > MAX_BANNER { Err(FrameError::NotAmi) } else { Ok(None) };
            };
            let line = String::from_utf8_lossy(&self.buf[..end]).trim_end_matches('\r').to_owned();
            self.buf.drain(..=end);
            if !line.starts_with("Asterisk Call Manager/") {
                return Err(FrameError::NotAmi);
            }
            self.banner_seen = true;
            return Ok(Some(Item::Banner(line)));
        }
        loop {
            // Blank lines between messages are not messages.
            let skip = self.buf.iter().take_while(|b| **b == b'\r' || **b == b'\n').count();
            self.buf.drain(..skip);
            let Some(end) = message_end(&self.buf) else {
                return if self.buf.len() > MAX_FRAME { Err(FrameError::TooLarge) } else { Ok(None) };
            };
            if end.0 > MAX_FRAME {
                return Err(FrameError::TooLarge);
            }
            let frame = parse_headers(&self.buf[..end.0]);
            self.buf.drain(..end.1);
            if !frame.headers.is_empty() {
                return Ok(Some(Item::Frame(frame)));
            }
        }
    }
}

/// Where the message at the start of `buf` ends: (end of its last line, end of the blank line after it).
fn message_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut line_start = 0;
    for (i, b) in buf.iter().enumerate() {
        if *b == b'\n' {
            let line = &buf[line_start..i];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                return Some((line_start, i + 1));
            }
            line_start = i + 1;
        }
    }
    None
}

fn parse_headers(block: &[u8]) -> Frame {
    let mut headers = Vec::new();
    for line in block.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = String::from_utf8_lossy(line);
        // Lines without a colon (old `Response: Follows` command output) carry nothing we read.
        if let Some((key, value)) = line.split_once(':') {
            let value = value.strip_prefix(' ').unwrap_or(value);
            headers.push((key.trim().to_owned(), value.trim_end().to_owned()));
        }
    }
    Frame { headers }
}

/// An action message: `Action: <action>` then the headers, CRLF line ends, the closing empty line. A value with a
/// line break would smuggle headers into the action, so it is refused.
pub fn encode_action(action: &str, headers: &[(&str, &str)]) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(64);
    for (key, value) in std::iter::once(&("Action", action)).chain(headers) {
        if [key, value].iter().any(|s| s.contains(['\r', '\n'])) {
            return Err(FrameError::LineBreak);
        }
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

/// Fuzz entry (`ami_frame`): the bytes as a stream from Asterisk, fed in uneven chunks, every item decoded until
/// the first error.
pub fn fuzz_stream(data: &[u8]) -> Vec<Item> {
    let mut decoder = Decoder::new();
    let mut items = Vec::new();
    for chunk in data.chunks(7) {
        decoder.push(chunk);
        loop {
            match decoder.next_item() {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(_) => return items,
            }
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_banner_then_messages_split_anywhere_decode_whole() {
        let wire = b"Asterisk Call Manager/5.0.3\r\nResponse: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n\r\nEvent: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n";
        for split in 1..wire.len() {
            let mut d = Decoder::new();
            let mut items = Vec::new();
            for chunk in [&wire[..split], &wire[split..]] {
                d.push(chunk);
                while let Some(item) = d.next_item().expect("decodes") {
                    items.push(item);
                }
            }
            assert_eq!(items.len(), 3, "split at {split}");
            assert_eq!(items[0], Item::Banner("Asterisk Call Manager/5.0.3".into()));
            let Item::Frame(f) = &items[2] else { panic!("a frame") };
            assert_eq!((f.event(), f.get("status")), (Some("FullyBooted"), Some("Fully Booted")));
        }
    }

    #[test]
    fn values_keep_colons_and_bare_newlines_work() {
        let mut d = Decoder::new();
        d.push(b"Asterisk Call Manager/2.10.4\nEvent: Newchannel\nChannel: PJSIP/trunk-00000001\nAccountCode: \nExten: s:1\n\n");
        assert!(matches!(d.next_item(), Ok(Some(Item::Banner(_)))));
        let Ok(Some(Item::Frame(f))) = d.next_item() else { panic!("a frame") };
        assert_eq!((f.get("exten"), f.get("AccountCode")), (Some("s:1"), Some("")));
    }

    #[test]
    fn a_peer_that_is_not_ami_or_floods_is_refused() {
        let mut d = Decoder::new();
        d.push(b"SSH-2.0-OpenSSH_9.2\r\n");
        assert_eq!(d.next_item(), Err(FrameError::NotAmi));
        let mut d = Decoder::new();
        d.push(b"Asterisk Call Manager/5.0.3\r\n");
        let _ = d.next_item();
        d.push(&vec![b'a'; MAX_FRAME + 2]);
        assert_eq!(d.next_item(), Err(FrameError::TooLarge));
    }

    #[test]
    fn actions_are_encoded_with_crlf_and_refuse_smuggled_headers() {
        assert_eq!(
            encode_action("Login", &[("Username", "hotline"), ("Secret", "pw")]).expect("encoded"),
            b"Action: Login\r\nUsername: hotline\r\nSecret: pw\r\n\r\n"
        );
        assert_eq!(encode_action("Login", &[("Secret", "pw\r\nAction: Originate")]), Err(FrameError::LineBreak));
    }
}
