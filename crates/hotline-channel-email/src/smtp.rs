//! The receiving side of SMTP (RFC 5321) as a pure state machine: client bytes in, replies and finished mails out.
//!
//! No sockets, no clock, no tasks: [`Session`] only buffers what it was fed and says what to answer, so the whole
//! protocol is tested and fuzzed without I/O, and `server.rs` is a thin loop around it. The session never answers
//! the end of DATA itself: it hands the mail out ([`Step::Mail`]) and waits until the caller has stored it and calls
//! [`Session::finish`] with the reply, so a 250 always means "stored".
//!
//! What it speaks: EHLO/HELO, MAIL (SIZE, BODY, SMTPUTF8 parameters), RCPT, DATA with dot-unstuffing, RSET, NOOP,
//! QUIT, VRFY (252), HELP; PIPELINING (replies come out in command order, whatever arrives in one read) and
//! ENHANCEDSTATUSCODES. Memory stays bounded whatever the client sends: a command line longer than the limit is
//! refused and skipped, and the body of a message over the size limit is discarded while it streams in (the client
//! gets 552 after its final dot, and the session goes on).
//!
//! The end of DATA is strictly `<CRLF>.<CRLF>`: a bare LF never starts a line, so `\n.\r\n` cannot end a message
//! early (the "SMTP smuggling" trick of hiding a second mail behind a lenient terminator). A client that ends its
//! lines with a bare LF is told so at once instead of waiting for a timeout: a command line gets `500`, and a `.`
//! line ended by a bare LF in a message (`\n.\n`, how such a client ends one) gets `521` and the connection is
//! closed, nothing kept and nothing after it read as commands.
//!
//! Memory for a message is the caller's to grant: DATA is answered only after [`Step::Data`] was answered with
//! [`Session::start_data`], and [`Session::refuse_data`] drops a message that outgrew what it was granted.

use std::collections::BTreeSet;

/// Limits of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest message (after dot-unstuffing); advertised as `SIZE`.
    pub max_message_bytes: usize,
    /// Recipients per transaction; more get `452 4.5.3`.
    pub max_recipients: usize,
    /// Longest command line, CRLF included (RFC 5321 §4.5.3.1.4: 512; parameters may add more).
    pub max_line_bytes: usize,
    /// Bad commands tolerated before the session is closed with 421 (a client that only sends junk).
    pub max_errors: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_message_bytes: 25 * 1024 * 1024, max_recipients: 100, max_line_bytes: 2048, max_errors: 20 }
    }
}

/// Which recipients this server accepts mail for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipients {
    /// Whole addresses, lowercased.
    addresses: BTreeSet<String>,
    /// Domains (every address at them), lowercased.
    domains: BTreeSet<String>,
}

impl Recipients {
    /// Everything: the default, for a listener that only the province's own mail server can reach.
    pub fn any() -> Recipients {
        Recipients::default()
    }

    /// `entries` holds addresses (`tiepnhan@1022.tinh.gov.vn`) and domains (`1022.tinh.gov.vn` or
    /// `@1022.tinh.gov.vn`). An empty list accepts everything.
    pub fn new<'a>(entries: impl IntoIterator<Item = &'a str>) -> Recipients {
        let mut r = Recipients::default();
        for entry in entries {
            let entry = entry.trim().to_lowercase();
            match entry.strip_prefix('@') {
                Some(domain) => r.domains.insert(domain.to_owned()),
                None if entry.contains('@') => r.addresses.insert(entry),
                None if !entry.is_empty() => r.domains.insert(entry),
                None => false,
            };
        }
        r
    }

    pub fn accepts(&self, address: &str) -> bool {
        if self.addresses.is_empty() && self.domains.is_empty() {
            return true;
        }
        let address = address.to_lowercase();
        let domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        self.addresses.contains(&address) || self.domains.contains(domain)
    }
}

/// What the server needs to run sessions: its name, its limits, its recipients.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The name in the greeting and the EHLO reply.
    pub hostname: String,
    pub limits: Limits,
    pub recipients: Recipients,
}

/// One reply: a code and one or more lines of text (the enhanced status code is part of the text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, text: impl Into<String>) -> Reply {
        Reply { code, lines: vec![text.into()] }
    }

    /// The reply as sent: `250-first`, ..., `250 last`, each line CRLF-terminated.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            // A reply line must not carry a line break of its own (text may come from a client's input).
            let clean: String = line.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
            out.extend_from_slice(format!("{}{sep}{clean}\r\n", self.code).as_bytes());
        }
        if self.lines.is_empty() {
            out.extend_from_slice(format!("{}\r\n", self.code).as_bytes());
        }
        out
    }
}

/// A mail received in full, waiting to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// `MAIL FROM`, lowercased; None for the null reverse path `<>` (bounces and other automatic mail).
    pub reverse_path: Option<String>,
    /// `RCPT TO` addresses accepted, lowercased.
    pub recipients: Vec<String>,
    /// The message (headers and body) as sent, dots unstuffed, without the final `.` line.
    pub data: Vec<u8>,
}

/// What the caller must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this reply.
    Reply(Reply),
    /// A whole mail arrived: store it, then call [`Session::finish`] and send the reply it gives. The session takes
    /// no more input until then.
    Mail(Mail),
    /// Send this reply and close the connection.
    Close(Reply),
    /// The client asked to send a message, of `expected` bytes when it declared a size at MAIL: find the memory
    /// for it, then call [`Session::start_data`] and send the reply it gives. No more input is taken until then.
    Data { expected: Option<usize> },
}

/// The state of one SMTP connection.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    /// Bytes received and not consumed yet.
    input: Vec<u8>,
    phase: Phase,
    /// The client said HELO/EHLO.
    greeted: bool,
    /// The transaction in progress: `Some` after MAIL.
    reverse_path: Option<Option<String>>,
    /// The size the client declared at MAIL (`SIZE=`).
    declared_size: Option<usize>,
    recipients: Vec<String>,
    /// The message being received.
    data: Vec<u8>,
    /// DATA: the next byte starts a line (the previous line ended with CRLF).
    at_line_start: bool,
    /// DATA: the last byte consumed was CR (a CRLF may be split between two reads).
    last_was_cr: bool,
    /// DATA: the last byte consumed was LF, with or without CR before it.
    after_lf: bool,
    /// DATA: the message will not be kept (too large, or no memory for it): the rest is read and discarded, and
    /// this is the answer after the final dot.
    discard: Option<Reply>,
    /// A command line grew past the limit; skip until its end.
    skipping_line: bool,
    errors: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Command,
    /// DATA was asked for; waiting for [`Session::start_data`].
    Reserving,
    Data,
    /// A mail was handed out; waiting for [`Session::finish`].
    Storing,
    Closed,
}

impl Session {
    pub fn new(config: SessionConfig) -> Session {
        Session {
            config,
            input: Vec::new(),
            phase: Phase::Command,
            greeted: false,
            reverse_path: None,
            declared_size: None,
            recipients: Vec::new(),
            data: Vec::new(),
            at_line_start: true,
            last_was_cr: false,
            after_lf: true,
            discard: None,
            skipping_line: false,
            errors: 0,
        }
    }

    /// The reply the server sends first.
    pub fn greeting(&self) -> Reply {
        Reply::new(220, format!("{} ESMTP hotline ready", self.config.hostname))
    }

    /// True while the client is sending a message body (the server applies its longer DATA timeout then).
    pub fn in_data(&self) -> bool {
        self.phase == Phase::Data
    }

    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Bytes fed and not consumed yet (bounded: about one read plus one command line).
    pub fn buffered(&self) -> usize {
        self.input.len()
    }

    /// Bytes of the message being received, kept so far.
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    /// Memory the session holds for input and the message being received (allocated, not only used).
    pub fn memory(&self) -> usize {
        self.input.capacity() + self.data.capacity()
    }

    /// Adds bytes read from the client. Call [`Session::step`] until it returns None before feeding more.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.phase != Phase::Closed {
            self.input.extend_from_slice(bytes);
        }
    }

    /// The next thing to do with the input so far; None when more input is needed (or a mail is being stored, or
    /// the session is closed).
    pub fn step(&mut self) -> Option<Step> {
        match self.phase {
            Phase::Command => self.command_step(),
            Phase::Data => self.data_step(),
            Phase::Reserving | Phase::Storing | Phase::Closed => None,
        }
    }

    /// Ends the transaction of the mail handed out by [`Step::Mail`] and returns `reply` (what storing it gave:
    /// 250, 451, 550...) for the caller to send. The session takes input again.
    pub fn finish(&mut self, reply: Reply) -> Reply {
        if self.phase == Phase::Storing {
            self.phase = Phase::Command;
        }
        reply
    }

    /// Answers the DATA handed out by [`Step::Data`]: `granted` says whether the memory for the message was found.
    /// Granted, the client is told to send it (354); otherwise the transaction is dropped with `452 4.3.1` so its
    /// mail server tries again later, or, when the client already sent more (its message, against RFC 2920), the
    /// connection is closed with 421 so none of that is read as commands.
    pub fn start_data(&mut self, granted: bool) -> Step {
        if self.phase != Phase::Reserving {
            return Step::Reply(Reply::new(503, "5.5.1 No DATA pending"));
        }
        if granted {
            self.phase = Phase::Data;
            let expected = self.declared_size.unwrap_or(0).min(self.config.limits.max_message_bytes);
            self.data = Vec::with_capacity(expected);
            self.at_line_start = true;
            self.after_lf = true;
            self.last_was_cr = false;
            self.discard = None;
            return Step::Reply(Reply::new(354, "End data with <CR><LF>.<CR><LF>"));
        }
        self.phase = Phase::Command;
        self.reset();
        if !self.input.is_empty() {
            self.phase = Phase::Closed;
            self.input.clear();
            return Step::Close(Reply::new(421, "4.3.1 Too much mail being received at once, try again later"));
        }
        Step::Reply(Reply::new(452, "4.3.1 Too much mail being received at once, try again later"))
    }

    /// Drops the message being received (its memory could not be found): the rest is read and discarded, and
    /// `reply` (a temporary failure) answers its final dot.
    pub fn refuse_data(&mut self, reply: Reply) {
        if self.phase == Phase::Data && self.discard.is_none() {
            self.discard = Some(reply);
            self.data = Vec::new();
        }
    }

    fn command_step(&mut self) -> Option<Step> {
        loop {
            let max = self.config.limits.max_line_bytes;
            let Some(lf) = self.input.iter().position(|&b| b == b'\n') else {
                if self.input.len() > max {
                    // No end in sight: refuse once, then drop the rest of the line as it comes.
                    self.input.clear();
                    if !self.skipping_line {
                        self.skipping_line = true;
                        return Some(self.error(500, "5.5.2 Line too long"));
                    }
                }
                return None;
            };
            let line: Vec<u8> = self.input.drain(..=lf).collect();
            if self.skipping_line {
                self.skipping_line = false;
                continue;
            }
            if line.len() > max {
                return Some(self.error(500, "5.5.2 Line too long"));
            }
            if !line.ends_with(b"\r\n") {
                // Answered at once: a client that ends lines with a bare LF would otherwise go on to DATA and wait
                // for a reply to a final dot that never counts.
                return Some(self.error(500, "5.5.2 Line must end with <CR><LF>"));
            }
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\r', '\n']);
            return Some(self.command(line));
        }
    }

    fn command(&mut self, line: &str) -> Step {
        let (verb, arg) = match line.split_once(' ') {
            Some((v, a)) => (v, a.trim()),
            None => (line, ""),
        };
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" | "HELO" if arg.is_empty() => self.error(501, "5.5.4 Say your domain, please"),
            "EHLO" => {
                self.greet();
                let limits = &self.config.limits;
                Step::Reply(Reply {
                    code: 250,
                    lines: vec![
                        format!("{} greets {}", self.config.hostname, arg),
                        format!("SIZE {}", limits.max_message_bytes),
                        "8BITMIME".to_owned(),
                        "SMTPUTF8".to_owned(),
                        "PIPELINING".to_owned(),
                        "ENHANCEDSTATUSCODES".to_owned(),
                    ],
                })
            }
            "HELO" => {
                self.greet();
                ok(format!("{} greets {}", self.config.hostname, arg))
            }
            "MAIL" => self.mail(arg),
            "RCPT" => self.rcpt(arg),
            "DATA" if !arg.is_empty() => self.error(501, "5.5.4 DATA takes no parameters"),
            "DATA" if self.reverse_path.is_none() => self.error(503, "5.5.1 Send MAIL first"),
            "DATA" if self.recipients.is_empty() => self.error(503, "5.5.1 Send RCPT first: no valid recipients"),
            "DATA" => {
                self.phase = Phase::Reserving;
                Step::Data { expected: self.declared_size }
            }
            "RSET" => {
                self.reset();
                ok("2.0.0 OK")
            }
            "NOOP" => ok("2.0.0 OK"),
            "QUIT" => {
                self.phase = Phase::Closed;
                self.input.clear();
                Step::Close(Reply::new(221, format!("2.0.0 {} closing connection", self.config.hostname)))
            }
            "VRFY" => Step::Reply(Reply::new(252, "2.5.2 Cannot VRFY user, but will accept message and attempt delivery")),
            "EXPN" => self.error(502, "5.5.1 EXPN not available"),
            "HELP" => Step::Reply(Reply::new(
                214,
                "2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP",
            )),
            "STARTTLS" | "AUTH" | "BDAT" | "ETRN" | "TURN" => self.error(502, "5.5.1 Command not implemented"),
            "" => self.error(500, "5.5.2 Empty command"),
            _ => self.error(500, "5.5.2 Command unrecognized"),
        }
    }

    fn greet(&mut self) {
        self.greeted = true;
        self.reset();
    }

    fn reset(&mut self) {
        self.reverse_path = None;
        self.declared_size = None;
        self.recipients.clear();
        self.data = Vec::new();
    }

    fn mail(&mut self, arg: &str) -> Step {
        if !self.greeted {
            return self.error(503, "5.5.1 Say EHLO first");
        }
        if self.reverse_path.is_some() {
            return self.error(503, "5.5.1 Nested MAIL command");
        }
        let Some(rest) = strip_prefix_ci(arg, "FROM:") else {
            return self.error(501, "5.5.4 Syntax: MAIL FROM:<address>");
        };
        let (path, params) = match parse_path(rest) {
            Ok(parsed) => parsed,
            Err(e) => return self.error(501, format!("5.1.7 Bad sender address syntax: {e}")),
        };
        let mut declared = None;
        for param in params.split_ascii_whitespace() {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            match key.to_ascii_uppercase().as_str() {
                "SIZE" => match value.parse::<u64>() {
                    Ok(size) if size > self.config.limits.max_message_bytes as u64 => {
                        return Step::Reply(Reply::new(
                            552,
                            format!(
                                "5.3.4 Message size exceeds the limit of {} bytes",
                                self.config.limits.max_message_bytes
                            ),
                        ));
                    }
                    Ok(size) => declared = usize::try_from(size).ok(),
                    Err(_) => return self.error(501, "5.5.4 Bad SIZE parameter"),
                },
                "BODY" if value.eq_ignore_ascii_case("7BIT") || value.eq_ignore_ascii_case("8BITMIME") => {}
                "BODY" => return self.error(501, "5.5.4 BODY must be 7BIT or 8BITMIME"),
                "SMTPUTF8" if value.is_empty() => {}
                _ => return self.error(555, "5.5.4 Unsupported MAIL parameter"),
            }
        }
        if path.as_deref().is_some_and(|p| !p.contains('@')) {
            return self.error(501, "5.1.7 Sender address needs a domain");
        }
        self.reverse_path = Some(path);
        self.declared_size = declared;
        self.recipients.clear();
        ok("2.1.0 Sender OK")
    }

    fn rcpt(&mut self, arg: &str) -> Step {
        if self.reverse_path.is_none() {
            return self.error(503, "5.5.1 Send MAIL first");
        }
        let Some(rest) = strip_prefix_ci(arg, "TO:") else {
            return self.error(501, "5.5.4 Syntax: RCPT TO:<address>");
        };
        let (path, params) = match parse_path(rest) {
            Ok(parsed) => parsed,
            Err(e) => return self.error(501, format!("5.1.3 Bad recipient address syntax: {e}")),
        };
        if !params.trim().is_empty() {
            return self.error(555, "5.5.4 Unsupported RCPT parameter");
        }
        let Some(address) = path.filter(|p| p.contains('@')) else {
            return self.error(501, "5.1.3 Recipient address needs a domain");
        };
        if !self.config.recipients.accepts(&address) {
            return Step::Reply(Reply::new(550, "5.1.1 No such recipient here"));
        }
        if self.recipients.len() >= self.config.limits.max_recipients {
            return Step::Reply(Reply::new(452, "4.5.3 Too many recipients"));
        }
        if !self.recipients.contains(&address) {
            self.recipients.push(address);
        }
        ok("2.1.5 Recipient OK")
    }

    /// A refused command; too many of them close the session.
    fn error(&mut self, code: u16, text: impl Into<String>) -> Step {
        self.errors += 1;
        if self.errors > self.config.limits.max_errors {
            self.phase = Phase::Closed;
            self.input.clear();
            return Step::Close(Reply::new(421, "4.7.0 Too many errors, closing connection"));
        }
        Step::Reply(Reply::new(code, text))
    }

    /// Consumes message bytes until the final dot or the end of the input.
    fn data_step(&mut self) -> Option<Step> {
        loop {
            if self.input.is_empty() {
                return None;
            }
            if self.after_lf && self.input[0] == b'.' {
                if self.input.len() < 2 {
                    return None; // "." at a line start: what follows decides
                }
                if self.input[1] == b'\n' {
                    // `.` and a bare LF: a client ending its message the way it ends its lines. It is not the end
                    // (that would be the smuggling trick), and the client will wait for an answer that never
                    // comes: tell it now and close, keeping nothing.
                    self.phase = Phase::Closed;
                    self.input.clear();
                    self.data = Vec::new();
                    self.discard = None;
                    self.reset();
                    return Some(Step::Close(Reply::new(
                        521,
                        "5.5.2 Bare <LF> received: lines must end with <CR><LF> and a message with \
                         <CR><LF>.<CR><LF>; nothing was kept",
                    )));
                }
            }
            if self.at_line_start && self.input[0] == b'.' {
                const END: &[u8] = b".\r\n";
                if self.input.len() < END.len() && END.starts_with(&self.input) {
                    return None; // ".", ".\r": could still be the end; wait for the next byte
                }
                if self.input.starts_with(END) {
                    self.input.drain(..END.len());
                    return Some(self.end_of_data());
                }
                // Dot-stuffing (RFC 5321 §4.5.2): a line starting with a dot had one more added by the client.
                self.input.drain(..1);
                self.last_was_cr = false;
                self.at_line_start = false;
                self.after_lf = false;
                if self.input.is_empty() {
                    return None;
                }
            }
            let (take, line_ends) = match self.input.iter().position(|&b| b == b'\n') {
                Some(lf) => {
                    let cr_before = if lf == 0 { self.last_was_cr } else { self.input[lf - 1] == b'\r' };
                    (lf + 1, cr_before)
                }
                None => (self.input.len(), false),
            };
            self.last_was_cr = self.input[take - 1] == b'\r';
            self.after_lf = self.input[take - 1] == b'\n';
            self.at_line_start = line_ends;
            if self.discard.is_none() {
                if self.data.len() + take > self.config.limits.max_message_bytes {
                    let max = self.config.limits.max_message_bytes;
                    self.discard =
                        Some(Reply::new(552, format!("5.3.4 Message size exceeds the limit of {max} bytes")));
                    self.data = Vec::new();
                } else {
                    self.data.extend_from_slice(&self.input[..take]);
                }
            }
            self.input.drain(..take);
        }
    }

    fn end_of_data(&mut self) -> Step {
        let data = std::mem::take(&mut self.data);
        let discard = self.discard.take();
        let reverse_path = self.reverse_path.take().flatten();
        let recipients = std::mem::take(&mut self.recipients);
        self.declared_size = None;
        if let Some(reply) = discard {
            self.phase = Phase::Command;
            return Step::Reply(reply);
        }
        self.phase = Phase::Storing;
        Step::Mail(Mail { reverse_path, recipients, data })
    }
}

fn ok(text: impl Into<String>) -> Step {
    Step::Reply(Reply::new(250, text))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

/// Parses `<path> params`: the mailbox (None for `<>`, lowercased, source route dropped) and the parameter text.
fn parse_path(s: &str) -> Result<(Option<String>, &str), &'static str> {
    // RFC 5321 allows no space after the colon; many clients send one anyway.
    let s = s.trim_start();
    let Some(inner_and_rest) = s.strip_prefix('<') else { return Err("the address must be in <angle brackets>") };
    // Find the closing bracket outside a quoted local part.
    let mut quoted = false;
    let mut escaped = false;
    let mut close = None;
    for (i, c) in inner_and_rest.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => {
                close = Some(i);
                break;
            }
            _ => {}
        }
    }
    let close = close.ok_or("missing closing >")?;
    let inner = &inner_and_rest[..close];
    let rest = &inner_and_rest[close + 1..];
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err("text after the closing >");
    }
    if inner.is_empty() {
        return Ok((None, rest));
    }
    // An old source route (`@a,@b:user@c`) is ignored, as RFC 5321 §3.3 asks.
    let mailbox = match inner.strip_prefix('@') {
        Some(_) => inner.split_once(':').map(|(_, m)| m).ok_or("bad source route")?,
        None => inner,
    };
    if mailbox.len() > 254 {
        return Err("address too long");
    }
    if mailbox.is_empty() || mailbox.chars().any(|c| c.is_control() || (c == ' ' && !mailbox.starts_with('"'))) {
        return Err("invalid characters");
    }
    Ok((Some(mailbox.to_lowercase()), rest))
}

/// Feeds `input` through a session as a client would send it (split into small reads), storing every mail at
/// once, and returns what the server would have written. A fuzz target: it must never panic, whatever the bytes.
pub fn fuzz_session(input: &[u8]) -> Vec<u8> {
    let config = SessionConfig {
        hostname: "fuzz.example".to_owned(),
        limits: Limits { max_message_bytes: 4096, max_recipients: 3, max_line_bytes: 256, max_errors: 50 },
        recipients: Recipients::new(["tiepnhan@1022.example", "example.org"]),
    };
    let mut session = Session::new(config);
    let mut out = session.greeting().to_wire();
    // The first byte picks the read size, so the fuzzer also explores how input is split between reads.
    let chunk = usize::from(input.first().copied().unwrap_or(0) % 61) + 1;
    for piece in input.chunks(chunk) {
        session.feed(piece);
        while let Some(step) = session.step() {
            match step {
                Step::Reply(r) => out.extend(r.to_wire()),
                // Memory is granted for declared sizes up to 3000 bytes, so both answers are explored.
                Step::Data { expected } => match session.start_data(expected.unwrap_or(0) <= 3000) {
                    Step::Close(r) => {
                        out.extend(r.to_wire());
                        return out;
                    }
                    other => out.extend(step_reply(other).to_wire()),
                },
                Step::Mail(mail) => {
                    assert!(mail.data.len() <= 4096, "a mail over the limit was handed out");
                    let reply = session.finish(Reply::new(250, "2.0.0 stored"));
                    out.extend(reply.to_wire());
                }
                Step::Close(r) => {
                    out.extend(r.to_wire());
                    return out;
                }
            }
        }
        assert!(session.buffered() <= 256 + 61, "the session buffered {} bytes", session.buffered());
        // A mail growing past 2048 bytes "finds no more memory" half of the time (by its first byte).
        if session.in_data() && session.data_len() > 2048 && input.first().is_some_and(|b| b % 2 == 0) {
            session.refuse_data(Reply::new(452, "4.3.1 no memory"));
        }
    }
    out
}

fn step_reply(step: Step) -> Reply {
    match step {
        Step::Reply(r) | Step::Close(r) => r,
        Step::Mail(_) | Step::Data { .. } => Reply::new(0, "unexpected step"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SessionConfig {
        SessionConfig {
            hostname: "mx.test".to_owned(),
            limits: Limits { max_message_bytes: 100, max_recipients: 2, max_line_bytes: 64, max_errors: 5 },
            recipients: Recipients::new(["tiepnhan@1022.tinh.gov.vn", "@hotline.test"]),
        }
    }

    /// Feeds `input` in one piece and collects every step, storing mails with a 250.
    fn run(session: &mut Session, input: &[u8]) -> (Vec<u16>, Vec<Mail>) {
        session.feed(input);
        let mut codes = Vec::new();
        let mut mails = Vec::new();
        while let Some(step) = session.step() {
            match step {
                Step::Reply(r) | Step::Close(r) => codes.push(r.code),
                Step::Data { .. } => codes.push(step_reply(session.start_data(true)).code),
                Step::Mail(m) => {
                    mails.push(m);
                    codes.push(session.finish(Reply::new(250, "stored")).code);
                }
            }
        }
        (codes, mails)
    }

    #[test]
    fn a_pipelined_transaction_gets_every_reply_in_order() {
        let mut s = Session::new(config());
        let input = b"EHLO client.test\r\nMAIL FROM:<A@Example.org> SIZE=50\r\nRCPT TO:<tiepnhan@1022.tinh.gov.vn>\r\n\
RCPT TO:<nobody@elsewhere.test>\r\nDATA\r\nSubject: x\r\n\r\nhello\r\n..dot\r\n.\r\nQUIT\r\n";
        let (codes, mails) = run(&mut s, input);
        assert_eq!(codes, vec![250, 250, 250, 550, 354, 250, 221]);
        assert_eq!(mails.len(), 1);
        assert_eq!(mails[0].reverse_path.as_deref(), Some("a@example.org"));
        assert_eq!(mails[0].recipients, vec!["tiepnhan@1022.tinh.gov.vn".to_owned()]);
        assert_eq!(mails[0].data, b"Subject: x\r\n\r\nhello\r\n.dot\r\n");
        assert!(s.is_closed());
    }

    #[test]
    fn input_split_at_every_byte_gives_the_same_mail() {
        let input = b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<x@hotline.test>\r\nDATA\r\n.a\r\n\r\n..\r\nb\r\n.\r\n";
        let mut whole = Session::new(config());
        let (codes, mails) = run(&mut whole, input);
        let mut split = Session::new(config());
        let mut split_codes = Vec::new();
        let mut split_mails = Vec::new();
        for byte in input {
            let (c, m) = run(&mut split, std::slice::from_ref(byte));
            split_codes.extend(c);
            split_mails.extend(m);
        }
        assert_eq!(codes, split_codes);
        assert_eq!(mails, split_mails);
        assert_eq!(mails[0].data, b"a\r\n\r\n.\r\nb\r\n");
        assert_eq!(mails[0].reverse_path, None);
    }

    #[test]
    fn a_bare_lf_before_a_dot_does_not_end_the_message() {
        let mut s = Session::new(config());
        let (codes, mails) = run(&mut s, b"EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@hotline.test>\r\nDATA\r\nA\n.\r\nB\r\n.\r\n");
        assert_eq!(codes, vec![250, 250, 250, 354, 250]);
        assert_eq!(mails[0].data, b"A\n.\r\nB\r\n");
    }

    #[test]
    fn a_message_over_the_limit_is_refused_after_its_dot_and_the_session_goes_on() {
        let mut s = Session::new(config());
        let (codes, _) = run(&mut s, b"EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@hotline.test>\r\nDATA\r\n");
        assert_eq!(codes, vec![250, 250, 250, 354]);
        for _ in 0..1000 {
            let (codes, mails) = run(&mut s, &[b'x'; 1000]);
            assert!(codes.is_empty() && mails.is_empty());
            assert!(s.buffered() < 10, "discarded data is not kept");
        }
        let (codes, mails) = run(&mut s, b"\r\n.\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@hotline.test>\r\nDATA\r\nok\r\n.\r\n");
        assert_eq!(codes, vec![552, 250, 250, 354, 250]);
        assert_eq!(mails.len(), 1);
        assert_eq!(mails[0].data, b"ok\r\n");
    }

    #[test]
    fn a_declared_size_over_the_limit_is_refused_before_data() {
        let mut s = Session::new(config());
        let (codes, _) = run(&mut s, b"EHLO c\r\nMAIL FROM:<a@b.c> SIZE=101\r\nMAIL FROM:<a@b.c> SIZE=100 BODY=8BITMIME\r\n");
        assert_eq!(codes, vec![250, 552, 250]);
    }

    #[test]
    fn commands_out_of_order_get_503() {
        let mut s = Session::new(SessionConfig { limits: Limits { max_errors: 10, ..config().limits }, ..config() });
        let (codes, _) = run(&mut s, b"MAIL FROM:<a@b.c>\r\nEHLO c\r\nRCPT TO:<x@hotline.test>\r\nDATA\r\n\
MAIL FROM:<a@b.c>\r\nMAIL FROM:<a@b.c>\r\nDATA\r\nRSET\r\nRCPT TO:<x@hotline.test>\r\n");
        assert_eq!(codes, vec![503, 250, 503, 503, 250, 503, 503, 250, 503]);
    }

    #[test]
    fn recipients_are_checked_and_counted() {
        let mut s = Session::new(config());
        let (codes, _) = run(&mut s, b"EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<TiepNhan@1022.TINH.gov.vn>\r\n\
RCPT TO:<a@hotline.test>\r\nRCPT TO:<b@hotline.test>\r\nRCPT TO:<other@1022.tinh.gov.vn>\r\nRCPT TO:<nodomain>\r\n");
        assert_eq!(codes, vec![250, 250, 250, 250, 452, 550, 501]);
        assert!(Recipients::any().accepts("anyone@anywhere"));
    }

    #[test]
    fn other_commands_answer_as_rfc_5321_says() {
        let mut s = Session::new(config());
        let (codes, _) = run(&mut s, b"NOOP\r\nVRFY someone\r\nHELP\r\nSTARTTLS\r\nFOO bar\r\nHELO\r\nHELO c\r\nQUIT\r\nNOOP\r\n");
        assert_eq!(codes, vec![250, 252, 214, 502, 500, 501, 250, 221]);
    }

    #[test]
    fn an_overlong_line_is_refused_once_and_skipped() {
        let mut s = Session::new(config());
        let (codes, _) = run(&mut s, &[b'A'; 65]);
        assert_eq!(codes, vec![500]);
        let (codes, _) = run(&mut s, &[b'A'; 500]);
        assert!(codes.is_empty());
        let (codes, _) = run(&mut s, b"AAAA\r\nNOOP\r\n");
        assert_eq!(codes, vec![250]);
    }

    #[test]
    fn a_client_sending_only_junk_is_disconnected() {
        let mut s = Session::new(config());
        let (codes, _) = run(&mut s, &b"\x00\xff\xfe junk\r\n".repeat(10));
        assert_eq!(codes, vec![500, 500, 500, 500, 500, 421]);
        assert!(s.is_closed());
    }

    #[test]
    fn a_session_waits_while_a_mail_is_stored() {
        let mut s = Session::new(config());
        s.feed(b"HELO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@hotline.test>\r\nDATA\r\nhi\r\n.\r\nNOOP\r\n");
        let mut mail = None;
        while let Some(step) = s.step() {
            match step {
                Step::Mail(m) => mail = Some(m),
                Step::Data { .. } => assert_eq!(step_reply(s.start_data(true)).code, 354),
                _ => {}
            }
        }
        assert!(mail.is_some());
        assert_eq!(s.step(), None, "no reply to NOOP before the mail is answered");
        assert_eq!(s.finish(Reply::new(451, "try later")).code, 451);
        assert_eq!(s.step(), Some(Step::Reply(Reply::new(250, "2.0.0 OK"))));
    }

    #[test]
    fn a_client_ending_lines_with_a_bare_lf_is_told_at_once() {
        // Commands: each refused, the session stays usable for a client that fixes its line ends.
        let mut s = Session::new(config());
        let (codes, _) = run(&mut s, b"HELO c\nNOOP\r\n");
        assert_eq!(codes, vec![500, 250]);
        // A message ended as such a client ends it (`\n.\n`), even split between reads: 521 and closed, nothing
        // kept, nothing after it read as a command.
        for split in [false, true] {
            let mut s = Session::new(config());
            let (codes, _) = run(&mut s, b"EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@hotline.test>\r\nDATA\r\n");
            assert_eq!(codes, vec![250, 250, 250, 354]);
            let body: &[u8] = b"Subject: x\n\nhello\n.\nMAIL FROM:<evil@b.c>\r\n";
            let (mut codes, mut mails) = (Vec::new(), Vec::new());
            if split {
                for byte in body {
                    let (c, m) = run(&mut s, std::slice::from_ref(byte));
                    codes.extend(c);
                    mails.extend(m);
                }
            } else {
                (codes, mails) = run(&mut s, body);
            }
            assert_eq!(codes, vec![521], "split: {split}");
            assert!(mails.is_empty() && s.is_closed());
        }
        // `<CRLF>.<LF>` is no end either.
        let mut s = Session::new(config());
        let (codes, mails) = run(&mut s, b"EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@hotline.test>\r\nDATA\r\nA\r\n.\n");
        assert_eq!((codes, mails.len()), (vec![250, 250, 250, 354, 521], 0));
        // A dot after a bare LF that is not alone on its line is text, as before.
        let mut s = Session::new(config());
        let (codes, mails) =
            run(&mut s, b"EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@hotline.test>\r\nDATA\r\nA\n.b\r\n.\r\n");
        assert_eq!(codes, vec![250, 250, 250, 354, 250]);
        assert_eq!(mails[0].data, b"A\n.b\r\n");
    }

    #[test]
    fn data_waits_for_memory_and_a_refusal_is_temporary() {
        let mut s = Session::new(config());
        s.feed(b"EHLO c\r\nMAIL FROM:<a@b.c> SIZE=80\r\nRCPT TO:<x@hotline.test>\r\nDATA\r\n");
        let mut steps = Vec::new();
        while let Some(step) = s.step() {
            steps.push(step);
        }
        assert_eq!(steps.last(), Some(&Step::Data { expected: Some(80) }));
        assert_eq!(s.step(), None, "nothing more until the memory is found");
        // Refused: 452, the transaction is gone, the session goes on.
        assert_eq!(step_reply(s.start_data(false)).code, 452);
        let (codes, _) = run(&mut s, b"RCPT TO:<x@hotline.test>\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@hotline.test>\r\nDATA\r\nhi\r\n.\r\n");
        assert_eq!(codes, vec![503, 250, 250, 354, 250]);
        // Refused while the client already sent its message behind DATA: closed, none of it read as commands.
        let mut s = Session::new(config());
        s.feed(b"EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@hotline.test>\r\nDATA\r\nRSET\r\n");
        while let Some(step) = s.step() {
            if let Step::Data { expected } = step {
                assert_eq!(expected, None);
                assert!(matches!(s.start_data(false), Step::Close(r) if r.code == 421));
            }
        }
        assert!(s.is_closed());
    }

    #[test]
    fn a_message_that_outgrows_its_memory_is_dropped_and_answered_452() {
        let mut s = Session::new(config());
        let (codes, _) = run(&mut s, b"EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@hotline.test>\r\nDATA\r\nfirst part\r\n");
        assert_eq!(codes, vec![250, 250, 250, 354]);
        assert_eq!(s.data_len(), 12);
        s.refuse_data(Reply::new(452, "4.3.1 busy"));
        assert_eq!(s.data_len(), 0, "what was kept is freed");
        let (codes, mails) = run(&mut s, b"more\r\n.\r\nNOOP\r\n");
        assert_eq!((codes, mails.len()), (vec![452, 250], 0));
    }

    #[test]
    fn replies_are_framed_with_continuation_dashes() {
        let r = Reply { code: 250, lines: vec!["a".into(), "b\r\nINJECTED".into()] };
        assert_eq!(r.to_wire(), b"250-a\r\n250 b  INJECTED\r\n");
    }

    #[test]
    fn paths_parse_with_quotes_routes_and_params() {
        assert_eq!(parse_path("<>"), Ok((None, "")));
        assert_eq!(parse_path(" <@r1,@r2:U@X.org> SIZE=1"), Ok((Some("u@x.org".into()), " SIZE=1")));
        assert_eq!(parse_path("<\"a>b\"@x.org>"), Ok((Some("\"a>b\"@x.org".into()), "")));
        assert!(parse_path("u@x.org").is_err());
        assert!(parse_path("<u@x.org").is_err());
        assert!(parse_path("<u@x.org>junk").is_err());
    }
}
