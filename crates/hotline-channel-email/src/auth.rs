//! Whether a mail's `From` can be believed: read from the `Authentication-Results` header (RFC 8601) that the
//! province's own mail server added, named by its authserv-id (`[email] authserv_id`).
//!
//! Why it matters: a follow-up joins a ticket when its sender is the ticket's citizen, and the sender is the `From`
//! header, which anyone can write. Only our MTA can tell whether the mail really comes from that domain (DMARC,
//! DKIM, SPF), and it says so in an `Authentication-Results` header at the top of the mail. Headers naming another
//! authserv-id came from elsewhere (another provider, or the sender itself) and prove nothing here, so they are
//! ignored; and since a sender can also write a header that claims OUR authserv-id, only the topmost run of
//! headers with our id counts, and in it the topmost result of each method (our MTA adds its headers above
//! everything the mail arrived with). RFC 8601 §5 also asks the MTA to remove such look-alikes as mail comes in:
//! docs/channels/email.md shows how.
//!
//! Pure: strings in, a verdict out; every oddity in a header reads as "not authenticated".

/// Most `Authentication-Results` headers looked at per mail (a mail carrying thousands is not worth more work).
pub const MAX_HEADERS: usize = 32;

/// One `Authentication-Results` header, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthResults {
    /// The authserv-id: who made the checks (lowercased).
    pub authserv_id: String,
    pub results: Vec<MethodResult>,
}

/// One `method=result` with its properties, e.g. `dkim=pass header.d=gmail.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodResult {
    /// `dmarc`, `dkim`, `spf`, ... (lowercased, without a `/version`).
    pub method: String,
    /// `pass`, `fail`, `none`, ... (lowercased).
    pub result: String,
    /// `ptype.property` (lowercased) and its value (as written), e.g. (`header.d`, `gmail.com`).
    pub properties: Vec<(String, String)>,
}

impl MethodResult {
    fn property(&self, name: &str) -> Option<&str> {
        self.properties.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn passed(&self) -> bool {
        self.result == "pass"
    }
}

/// Why a sender counts as authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    Dmarc,
    Dkim,
    Spf,
}

/// Parses the value of one `Authentication-Results` header (after the colon, folded or not). None when it does
/// not even start with an authserv-id.
pub fn parse(value: &str) -> Option<AuthResults> {
    let tokens = tokenize(value)?;
    let mut sections = tokens.split(|t| *t == Token::Semicolon);
    let head = sections.next()?;
    // `authserv-id [version]`
    let authserv_id = match head.first()? {
        Token::Word(w) => w.to_ascii_lowercase(),
        _ => return None,
    };
    let mut results = Vec::new();
    for section in sections {
        if let Some(result) = method_result(section) {
            results.push(result);
        }
    }
    Some(AuthResults { authserv_id, results })
}

/// `method [/ version] = result *( key = value )`; None for `none` and anything malformed.
fn method_result(tokens: &[Token]) -> Option<MethodResult> {
    let mut rest = tokens;
    let method = match rest {
        [Token::Word(m), ..] => m.to_ascii_lowercase(),
        _ => return None,
    };
    rest = &rest[1..];
    if let [Token::Slash, Token::Word(_), tail @ ..] = rest {
        rest = tail;
    }
    let result = match rest {
        [Token::Equals, Token::Word(r), tail @ ..] => {
            rest = tail;
            r.to_ascii_lowercase()
        }
        _ => return None,
    };
    let mut properties = Vec::new();
    while let [Token::Word(key), Token::Equals, Token::Word(value), tail @ ..] = rest {
        properties.push((key.to_ascii_lowercase(), value.clone()));
        rest = tail;
    }
    Some(MethodResult { method, result, properties })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A token, a quoted string's content, or anything else between separators.
    Word(String),
    Equals,
    Semicolon,
    Slash,
}

/// Splits a header value into words and `=`, `;`, `/`, dropping comments (nested, with quoted pairs) and folding
/// whitespace. None when a comment or quoted string never ends or the value is absurdly nested.
fn tokenize(value: &str) -> Option<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    let mut chars = value.chars();
    let flush = |word: &mut String, tokens: &mut Vec<Token>| {
        if !word.is_empty() {
            tokens.push(Token::Word(std::mem::take(word)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '(' => {
                flush(&mut word, &mut tokens);
                let mut depth = 1u32;
                while depth > 0 {
                    match chars.next()? {
                        '\\' => {
                            chars.next()?;
                        }
                        '(' if depth >= 64 => return None,
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                }
            }
            '"' => {
                flush(&mut word, &mut tokens);
                let mut quoted = String::new();
                loop {
                    match chars.next()? {
                        '\\' => quoted.push(chars.next()?),
                        '"' => break,
                        c => quoted.push(c),
                    }
                }
                tokens.push(Token::Word(quoted));
            }
            // Inside a value (`header.b=Ab/c+d=`, as most MTAs write a signature, unquoted), `=` and `/` are
            // part of it.
            '=' | '/' if matches!(tokens.last(), Some(Token::Equals)) => word.push(c),
            '=' | ';' | '/' => {
                flush(&mut word, &mut tokens);
                tokens.push(match c {
                    '=' => Token::Equals,
                    ';' => Token::Semicolon,
                    _ => Token::Slash,
                });
            }
            c if c.is_whitespace() => flush(&mut word, &mut tokens),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut tokens);
    Some(tokens)
}

/// Whether the `Authentication-Results` headers of a mail (raw values, topmost first) show that `sender` really
/// sent it, according to our MTA (`authserv_id`). `sender_from_header` says whether `sender` is the `From` header's
/// address (DMARC speaks about that header only) or the envelope sender the adapter fell back to.
///
/// Counted: `dmarc=pass` (for the sender's domain when the result names one in `header.from`); `dkim=pass` with
/// `header.d` the sender's domain or a parent of it; `spf=pass` with the `smtp.mailfrom` domain the sender's.
pub fn authenticated(headers: &[String], authserv_id: &str, sender: &str, sender_from_header: bool) -> Option<Proof> {
    let domain = sender.rsplit_once('@').map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())?;
    if domain.is_empty() {
        return None;
    }
    let ours = authserv_id.trim().to_ascii_lowercase();
    // The topmost run of our headers: from the first A-R header with our id, until one with another id.
    let trusted: Vec<AuthResults> = headers
        .iter()
        .take(MAX_HEADERS)
        .map(|h| parse(h))
        .skip_while(|p| p.as_ref().is_none_or(|p| p.authserv_id != ours))
        .take_while(|p| p.as_ref().is_some_and(|p| p.authserv_id == ours))
        .flatten()
        .collect();
    // The topmost header that reports a method decides for that method: a look-alike further down that claims
    // `pass` cannot overrule what our MTA found.
    let topmost = |method: &str| -> Vec<&MethodResult> {
        trusted
            .iter()
            .map(|h| h.results.iter().filter(|r| r.method == method).collect::<Vec<_>>())
            .find(|found| !found.is_empty())
            .unwrap_or_default()
    };
    let same = |d: &str| d.trim_end_matches('.').eq_ignore_ascii_case(&domain);
    let dmarc = topmost("dmarc");
    if sender_from_header && dmarc.iter().any(|r| r.passed() && r.property("header.from").is_none_or(same)) {
        return Some(Proof::Dmarc);
    }
    let mailfrom_domain = |v: &str| v.rsplit_once('@').map_or(v, |(_, d)| d).to_owned();
    let parent_or_same = |d: &str| {
        let d = d.trim_end_matches('.').to_ascii_lowercase();
        !d.is_empty() && (domain == d || domain.ends_with(&format!(".{d}")))
    };
    // The signing domain `header.d`; or, as Gmail writes it, only the identity `header.i` (`@domain`), whose domain
    // is the signing domain or below it.
    let signer = |r: &MethodResult| {
        r.property("header.d").map(str::to_owned).or_else(|| r.property("header.i").map(mailfrom_domain))
    };
    if topmost("dkim").iter().any(|r| r.passed() && signer(r).is_some_and(|d| parent_or_same(&d))) {
        return Some(Proof::Dkim);
    }
    if topmost("spf").iter().any(|r| r.passed() && r.property("smtp.mailfrom").map(mailfrom_domain).is_some_and(|d| same(&d))) {
        return Some(Proof::Spf);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "mx.1022.tinh.gov.vn";

    fn h(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn real_headers_parse() {
        // As Gmail writes it (folded, comments, a version-less method list).
        let gmail = "mx.google.com;\r\n       dkim=pass header.i=@gmail.com header.s=20230601 header.b=\"Ab/c+d=\";\r\n       \
spf=pass (google.com: domain of x@gmail.com designates 209.85.220.41 as permitted sender) smtp.mailfrom=x@gmail.com;\r\n       \
dmarc=pass (p=NONE sp=QUARANTINE dis=NONE) header.from=gmail.com";
        let p = parse(gmail).expect("parsed");
        assert_eq!(p.authserv_id, "mx.google.com");
        let methods: Vec<(&str, &str)> = p.results.iter().map(|r| (r.method.as_str(), r.result.as_str())).collect();
        assert_eq!(methods, [("dkim", "pass"), ("spf", "pass"), ("dmarc", "pass")]);
        assert_eq!(p.results[0].property("header.b"), Some("Ab/c+d="));
        assert_eq!(p.results[0].property("header.s"), Some("20230601"));
        let unquoted = parse("x; dkim=pass header.b=Ab/c+d= header.d=example.vn; spf=none").expect("parsed");
        assert_eq!(unquoted.results[0].property("header.b"), Some("Ab/c+d="));
        assert_eq!(unquoted.results[0].property("header.d"), Some("example.vn"));
        assert_eq!(unquoted.results[1].result, "none");
        assert_eq!(p.results[1].property("smtp.mailfrom"), Some("x@gmail.com"));
        // OpenDMARC, OpenDKIM, rspamd; a version number; `none`.
        assert_eq!(parse("mx.1022.tinh.gov.vn 1; none").expect("parsed").results, []);
        let p = parse("MX.1022.tinh.gov.vn; dkim/1 = pass (2048-bit key) header.d=example.vn header.i=@example.vn")
            .expect("parsed");
        assert_eq!(p.authserv_id, OURS);
        assert_eq!(p.results[0].property("header.d"), Some("example.vn"));
        assert!(parse("").is_none());
        assert!(parse("x; dkim=pass (unclosed").is_none());
        assert!(parse("x; dkim=pass reason=\"unclosed").is_none());
        assert!(parse(&"(".repeat(10_000)).is_none(), "deep nesting ends");
    }

    #[test]
    fn our_dmarc_dkim_or_spf_pass_authenticates_the_sender() {
        let a = "a@example.vn";
        let ok = |v: &str| authenticated(&h(&[v]), OURS, a, true);
        assert_eq!(ok("mx.1022.tinh.gov.vn; dmarc=pass header.from=example.vn"), Some(Proof::Dmarc));
        assert_eq!(ok("mx.1022.tinh.gov.vn; dmarc=pass"), Some(Proof::Dmarc));
        assert_eq!(ok("mx.1022.tinh.gov.vn; dkim=pass header.d=example.vn"), Some(Proof::Dkim));
        assert_eq!(authenticated(&h(&["mx.1022.tinh.gov.vn; dkim=pass header.d=example.vn"]), OURS, "a@mail.example.vn", true), Some(Proof::Dkim), "a parent domain");
        assert_eq!(ok("mx.1022.tinh.gov.vn; dkim=pass header.i=@example.vn header.b=x/y="), Some(Proof::Dkim));
        assert_eq!(ok("mx.1022.tinh.gov.vn; spf=pass smtp.mailfrom=bounce@example.vn"), Some(Proof::Spf));
        assert_eq!(ok("mx.1022.tinh.gov.vn; spf=pass smtp.mailfrom=example.vn"), Some(Proof::Spf));
        // Not for this sender, or not a pass.
        assert_eq!(ok("mx.1022.tinh.gov.vn; dmarc=pass header.from=evil.example"), None);
        assert_eq!(ok("mx.1022.tinh.gov.vn; dmarc=fail header.from=example.vn"), None);
        assert_eq!(ok("mx.1022.tinh.gov.vn; dkim=pass header.d=evil.example"), None);
        assert_eq!(ok("mx.1022.tinh.gov.vn; dkim=pass header.d=ample.vn"), None, "a suffix that is no parent");
        assert_eq!(ok("mx.1022.tinh.gov.vn; dkim=pass"), None, "no signing domain");
        assert_eq!(ok("mx.1022.tinh.gov.vn; spf=pass smtp.mailfrom=x@sub.example.vn"), None);
        assert_eq!(ok("mx.1022.tinh.gov.vn; spf=softfail smtp.mailfrom=example.vn"), None);
        assert_eq!(ok("mx.1022.tinh.gov.vn; none"), None);
        // DMARC speaks of the From header only; the envelope sender needs DKIM or SPF.
        let dmarc = h(&["mx.1022.tinh.gov.vn; dmarc=pass"]);
        assert_eq!(authenticated(&dmarc, OURS, a, false), None);
    }

    #[test]
    fn headers_from_anyone_else_count_for_nothing() {
        let a = "victim@example.vn";
        // Another provider's verdict, or no header at all.
        assert_eq!(authenticated(&h(&["mx.google.com; dmarc=pass header.from=example.vn"]), OURS, a, true), None);
        assert_eq!(authenticated(&[], OURS, a, true), None);
        // A look-alike below another provider's header: not in our topmost run.
        let below = h(&["mx.1022.tinh.gov.vn; dmarc=fail header.from=example.vn", "mx.google.com; dkim=none",
            "mx.1022.tinh.gov.vn; dmarc=pass header.from=example.vn"]);
        assert_eq!(authenticated(&below, OURS, a, true), None);
        // A look-alike right below ours, claiming pass for what our MTA found failing: the topmost result decides.
        let forged = h(&["mx.1022.tinh.gov.vn; dmarc=fail header.from=example.vn",
            "mx.1022.tinh.gov.vn; dmarc=pass header.from=example.vn"]);
        assert_eq!(authenticated(&forged, OURS, a, true), None);
        // Several genuine headers (one per milter) together.
        let milters = h(&["mx.1022.tinh.gov.vn; dmarc=none header.from=example.vn",
            "mx.1022.tinh.gov.vn; dkim=pass header.d=example.vn"]);
        assert_eq!(authenticated(&milters, OURS, a, true), Some(Proof::Dkim));
        // Another id that merely contains ours.
        assert_eq!(authenticated(&h(&["evil-mx.1022.tinh.gov.vn; dmarc=pass"]), OURS, a, true), None);
        assert_eq!(authenticated(&h(&["mx.1022.tinh.gov.vn.evil; dmarc=pass"]), OURS, a, true), None);
    }
}
