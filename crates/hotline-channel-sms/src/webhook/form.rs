//! `application/x-www-form-urlencoded` (bodies and query strings) decoded strictly: invalid percent-escapes and
//! invalid UTF-8 are errors, not replacement characters, because the signature is computed over the decoded
//! values and a lossy decoding would check something else than what was sent.

/// Why a form does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("invalid percent-encoding in `{0}`")]
    Percent(String),
    #[error("a value is not valid UTF-8")]
    Utf8,
    #[error("more than {MAX_PAIRS} parameters")]
    TooMany,
}

/// Parameters read at most (Twilio sends about 20).
pub const MAX_PAIRS: usize = 200;

/// The pairs in order, names and values decoded. Empty segments (`a=1&&b=2`) are skipped.
pub fn parse(input: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    let mut pairs = Vec::new();
    for segment in input.split(|b| *b == b'&').filter(|s| !s.is_empty()) {
        if pairs.len() == MAX_PAIRS {
            return Err(FormError::TooMany);
        }
        let (name, value) = match segment.iter().position(|b| *b == b'=') {
            Some(i) => (&segment[..i], &segment[i + 1..]),
            None => (segment, &[][..]),
        };
        pairs.push((decode(name)?, decode(value)?));
    }
    Ok(pairs)
}

/// The raw (still encoded) value of the first parameter called `name`.
pub fn raw_value<'a>(input: &'a [u8], name: &str) -> Option<&'a [u8]> {
    input.split(|b| *b == b'&').find_map(|segment| {
        let i = segment.iter().position(|b| *b == b'=')?;
        (decode(&segment[..i]).ok()? == name).then_some(&segment[i + 1..])
    })
}

/// One name or value: `+` is a space, `%XX` an octet, the octets UTF-8.
pub fn decode(input: &[u8]) -> Result<String, FormError> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                let byte = input
                    .get(i + 1..i + 3)
                    .and_then(|h| Some(hex(h[0])? * 16 + hex(h[1])?))
                    .ok_or_else(|| {
                        FormError::Percent(
                            String::from_utf8_lossy(&input[i..input.len().min(i + 3)]).into_owned(),
                        )
                    })?;
                out.push(byte as u8);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| FormError::Utf8)
}

/// Percent-encodes a value for a form body or query string.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_percent_and_utf8() {
        let pairs = parse(b"Body=M%E1%BA%A5t+%C4%91i%E1%BB%87n&From=%2B84912345678&&Empty=&Flag")
            .expect("valid");
        assert_eq!(
            pairs,
            vec![
                ("Body".into(), "Mất điện".into()),
                ("From".into(), "+84912345678".into()),
                ("Empty".into(), String::new()),
                ("Flag".into(), String::new()),
            ]
        );
        assert_eq!(
            raw_value(b"a=1&content=M%E1+x", "content"),
            Some(&b"M%E1+x"[..])
        );
    }

    #[test]
    fn invalid_escapes_and_utf8_are_errors() {
        assert!(matches!(parse(b"a=%G1"), Err(FormError::Percent(_))));
        assert!(matches!(parse(b"a=%4"), Err(FormError::Percent(_))));
        assert_eq!(parse(b"a=%FF%FE"), Err(FormError::Utf8));
        assert_eq!(parse(b"a=\xff"), Err(FormError::Utf8));
    }

    #[test]
    fn encoding_round_trips() {
        let v = "Điện đã có lại + 100% ok&=?";
        assert_eq!(decode(encode(v).as_bytes()).expect("valid"), v);
    }
}
