//! SMS text on the wire: decoding by `data_coding` (GSM 7-bit with its extension table, IA5, Latin-1, UCS2),
//! the concatenation header (UDH with 8- or 16-bit references, or the SAR TLVs), and encoding an answer into as
//! few parts as it needs (GSM 7-bit when every character has a GSM code, UCS2 otherwise).
//!
//! GSM 7-bit on SMPP is one septet per octet (unpacked); the SMSC packs it for the air. Decoding never fails:
//! a code the alphabet does not have becomes U+FFFD, so a citizen's message is never refused for its bytes.

/// The alphabet a `data_coding` value names (SMPP 3.4 §5.2.19, GSM 03.38 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alphabet {
    /// GSM 03.38 default alphabet, unpacked.
    Gsm7,
    /// IA5 (ASCII).
    Ascii,
    /// ISO-8859-1.
    Latin1,
    /// UCS2, read as UTF-16BE (phones put surrogate pairs in it).
    Ucs2,
    /// 8-bit data: decoded as UTF-8 where it is, Latin-1 where it is not.
    Binary,
}

/// The alphabet of a `data_coding` octet.
pub fn alphabet(data_coding: u8) -> Alphabet {
    match data_coding {
        0x00 => Alphabet::Gsm7,
        0x01 => Alphabet::Ascii,
        0x02 | 0x04 => Alphabet::Binary,
        0x03 => Alphabet::Latin1,
        0x08 => Alphabet::Ucs2,
        // 0x05..0x0E name national alphabets (JIS, Cyrillic, Hebrew, KS C) nobody sends to a Vietnamese
        // short code; Latin-1 keeps their ASCII part readable.
        0x05..=0x0F => Alphabet::Latin1,
        // GSM general data coding groups (00xx, 01xx: bits 3-2 give the alphabet).
        0x10..=0x7F => match (data_coding >> 2) & 0x03 {
            0 => Alphabet::Gsm7,
            2 => Alphabet::Ucs2,
            _ => Alphabet::Binary,
        },
        // Message waiting groups 1100, 1101 are GSM 7-bit, 1110 is UCS2.
        0xC0..=0xDF => Alphabet::Gsm7,
        0xE0..=0xEF => Alphabet::Ucs2,
        // Data coding / message class group 1111: bit 2 chooses 8-bit data.
        0xF0..=0xFF => {
            if data_coding & 0x04 != 0 {
                Alphabet::Binary
            } else {
                Alphabet::Gsm7
            }
        }
        0x80..=0xBF => Alphabet::Binary,
    }
}

/// The GSM 03.38 basic character set, by septet.
const GSM_BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The escape septet that introduces the extension table.
const GSM_ESCAPE: u8 = 0x1B;

/// The GSM 03.38 extension table (after an escape).
const GSM_EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// Decodes user data (without its UDH) in the given `data_coding`.
pub fn decode(data_coding: u8, bytes: &[u8]) -> String {
    match alphabet(data_coding) {
        Alphabet::Gsm7 => decode_gsm7(bytes),
        Alphabet::Ascii => bytes
            .iter()
            .map(|b| {
                if b.is_ascii() {
                    char::from(*b)
                } else {
                    '\u{FFFD}'
                }
            })
            .collect(),
        Alphabet::Latin1 => bytes.iter().map(|b| char::from(*b)).collect(),
        Alphabet::Ucs2 => decode_ucs2(bytes),
        Alphabet::Binary => match std::str::from_utf8(bytes) {
            Ok(s) => s.to_owned(),
            Err(_) => bytes.iter().map(|b| char::from(*b)).collect(),
        },
    }
}

fn decode_gsm7(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut iter = bytes.iter().copied();
    while let Some(b) = iter.next() {
        if b == GSM_ESCAPE {
            // A trailing escape (a part cut after it) is dropped: a space would be invented text.
            if let Some(e) = iter.next() {
                // GSM 03.38: an unknown extension code shows as the basic character of the same code.
                out.push(
                    GSM_EXTENSION
                        .iter()
                        .find(|(code, _)| *code == e)
                        .map(|(_, c)| *c)
                        .unwrap_or_else(|| gsm_basic(e)),
                );
            }
        } else {
            out.push(gsm_basic(b));
        }
    }
    out
}

/// A septet of the basic table. Octets over 0x7F are not septets: some SMSCs put Latin-1 in data_coding 0, so
/// they are read as Latin-1 rather than thrown away.
fn gsm_basic(b: u8) -> char {
    GSM_BASIC.get(b as usize).copied().unwrap_or(char::from(b))
}

/// UTF-16BE; a lone surrogate becomes U+FFFD, and an odd last octet (a broken message) is dropped.
fn decode_ucs2(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

/// Concatenation information of one part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Concat {
    /// The message's reference (8- or 16-bit).
    pub reference: u16,
    /// Where the reference came from: UDH IE 0x00, UDH IE 0x08 or the SAR TLVs. Two schemes never join.
    pub scheme: ConcatScheme,
    pub total: u8,
    /// 1-based.
    pub seq: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConcatScheme {
    Udh8,
    Udh16,
    Sar,
}

/// A user data header that does not fit its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed user data header: {0}")]
pub struct UdhError(&'static str);

/// Splits a user data header off the payload (when `esm_class` has UDHI, 0x40) and reads its concatenation
/// element. Other elements (ports, formatting) are skipped. A part that claims to be part 0, or part 4 of 3,
/// is treated as a message of its own.
pub fn split_udh(esm_class: u8, payload: &[u8]) -> Result<(Option<Concat>, &[u8]), UdhError> {
    if esm_class & 0x40 == 0 {
        return Ok((None, payload));
    }
    let (&udhl, rest) = payload
        .split_first()
        .ok_or(UdhError("UDHI set on an empty message"))?;
    let udhl = udhl as usize;
    if udhl > rest.len() {
        return Err(UdhError("the header is longer than the message"));
    }
    let (mut header, body) = rest.split_at(udhl);
    let mut concat = None;
    while let [iei, len, tail @ ..] = header {
        let len = *len as usize;
        if len > tail.len() {
            return Err(UdhError("an information element runs past the header"));
        }
        let (data, next) = tail.split_at(len);
        match (*iei, data) {
            (0x00, [reference, total, seq]) => {
                concat = Some(Concat {
                    reference: u16::from(*reference),
                    scheme: ConcatScheme::Udh8,
                    total: *total,
                    seq: *seq,
                })
            }
            (0x08, [hi, lo, total, seq]) => {
                concat = Some(Concat {
                    reference: u16::from_be_bytes([*hi, *lo]),
                    scheme: ConcatScheme::Udh16,
                    total: *total,
                    seq: *seq,
                })
            }
            _ => {}
        }
        header = next;
    }
    if !header.is_empty() {
        return Err(UdhError("a truncated information element"));
    }
    Ok((concat.filter(valid_part), body))
}

/// Concatenation from the SAR TLVs (`sar_msg_ref_num`, `sar_total_segments`, `sar_segment_seqnum`).
pub fn sar_concat(
    reference: Option<&[u8]>,
    total: Option<&[u8]>,
    seq: Option<&[u8]>,
) -> Option<Concat> {
    let reference = match reference? {
        [hi, lo] => u16::from_be_bytes([*hi, *lo]),
        [lo] => u16::from(*lo),
        _ => return None,
    };
    let (&[total], &[seq]) = (total?, seq?) else {
        return None;
    };
    Some(Concat {
        reference,
        scheme: ConcatScheme::Sar,
        total,
        seq,
    })
    .filter(valid_part)
}

fn valid_part(c: &Concat) -> bool {
    c.total >= 2 && c.seq >= 1 && c.seq <= c.total
}

/// One part of an answer, ready for `submit_sm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPart {
    pub data_coding: u8,
    /// 0x40 (UDHI) when the part carries a concatenation header.
    pub esm_class: u8,
    /// UDH (if any) followed by the user data.
    pub short_message: Vec<u8>,
}

/// Septets in one GSM 7-bit SMS, and per part of a concatenated one (7 lost to the 6-octet UDH).
const GSM7_SINGLE: usize = 160;
const GSM7_PART: usize = 153;
/// UTF-16 units in one UCS2 SMS, and per part with an 8-bit-reference UDH (134 octets).
const UCS2_SINGLE: usize = 70;
const UCS2_PART: usize = 67;

/// Encodes an answer: GSM 7-bit when every character has a GSM code (escaped ones count two), UCS2 otherwise,
/// split into parts with an 8-bit reference UDH when it does not fit one SMS. A part never ends inside an
/// escape sequence or a surrogate pair. `None` when it would take more than 255 parts.
pub fn encode(text: &str, reference: u8) -> Option<Vec<EncodedPart>> {
    let (data_coding, units, single, per_part): (u8, Vec<Vec<u8>>, usize, usize) =
        match gsm7_units(text) {
            Some(units) => (0x00, units, GSM7_SINGLE, GSM7_PART),
            None => (0x08, ucs2_units(text), UCS2_SINGLE, UCS2_PART),
        };
    // A unit is one character's code (1 or 2 septets, 1 or 2 UTF-16 units); sizes are counted in septets or
    // UTF-16 units, i.e. in octets for GSM and in half-octet-pairs for UCS2.
    let weight = |u: &Vec<u8>| {
        if data_coding == 0x08 {
            u.len() / 2
        } else {
            u.len()
        }
    };
    let total_weight: usize = units.iter().map(weight).sum();
    if total_weight <= single {
        return Some(vec![EncodedPart {
            data_coding,
            esm_class: 0,
            short_message: units.concat(),
        }]);
    }
    let mut chunks: Vec<Vec<u8>> = vec![Vec::new()];
    let mut used = 0;
    for unit in &units {
        let w = weight(unit);
        if used + w > per_part {
            chunks.push(Vec::new());
            used = 0;
        }
        used += w;
        chunks.last_mut()?.extend_from_slice(unit);
    }
    let total = u8::try_from(chunks.len()).ok()?;
    Some(
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, chunk)| {
                let mut sm = vec![0x05, 0x00, 0x03, reference, total, (i + 1) as u8];
                sm.extend_from_slice(&chunk);
                EncodedPart {
                    data_coding,
                    esm_class: 0x40,
                    short_message: sm,
                }
            })
            .collect(),
    )
}

/// Whether every character of `text` has a GSM 7-bit code.
pub fn fits_gsm7(text: &str) -> bool {
    gsm7_units(text).is_some()
}

/// Each character's GSM 7-bit code (one septet, or escape + septet), or `None` if one has none.
fn gsm7_units(text: &str) -> Option<Vec<Vec<u8>>> {
    text.chars()
        .map(|c| {
            if c != '\u{1B}'
                && let Some(i) = GSM_BASIC.iter().position(|g| *g == c)
            {
                return Some(vec![i as u8]);
            }
            GSM_EXTENSION
                .iter()
                .find(|(_, e)| *e == c)
                .map(|(code, _)| vec![GSM_ESCAPE, *code])
        })
        .collect()
}

/// Each character as UTF-16BE octets (2, or 4 for a surrogate pair).
fn ucs2_units(text: &str) -> Vec<Vec<u8>> {
    text.chars()
        .map(|c| {
            let mut buf = [0u16; 2];
            c.encode_utf16(&mut buf)
                .iter()
                .flat_map(|u| u.to_be_bytes())
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm_default_alphabet_with_its_extension_table() {
        // "@£$ {€}" : basic codes 0x00 0x01 0x02 0x20, escaped 0x28 0x65 0x29.
        let bytes = [0x00, 0x01, 0x02, 0x20, 0x1B, 0x28, 0x1B, 0x65, 0x1B, 0x29];
        assert_eq!(decode(0x00, &bytes), "@£$ {€}");
        assert_eq!(decode(0x00, b"Mat dien"), "Mat dien");
        // An unknown extension code shows as its basic character; a trailing escape is dropped.
        assert_eq!(decode(0x00, &[0x1B, 0x41, 0x1B]), "A");
    }

    #[test]
    fn ucs2_is_utf16_with_surrogates_and_lone_ones_are_replaced() {
        let text = "Mất điện 😀";
        let bytes: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
        assert_eq!(decode(0x08, &bytes), text);
        assert_eq!(decode(0x08, &[0xD8, 0x3D, 0x00, 0x41]), "\u{FFFD}A");
        assert_eq!(decode(0x08, &[0x00, 0x41, 0x00]), "A");
    }

    #[test]
    fn latin1_and_ascii() {
        assert_eq!(decode(0x03, &[0x63, 0x61, 0x66, 0xE9]), "café");
        assert_eq!(decode(0x01, &[0x41, 0xE9]), "A\u{FFFD}");
    }

    #[test]
    fn udh_with_8_and_16_bit_references() {
        let (c, body) =
            split_udh(0x40, &[0x05, 0x00, 0x03, 0x2A, 0x03, 0x02, b'h', b'i']).expect("valid");
        assert_eq!(
            c,
            Some(Concat {
                reference: 0x2A,
                scheme: ConcatScheme::Udh8,
                total: 3,
                seq: 2
            })
        );
        assert_eq!(body, b"hi");
        let (c, body) =
            split_udh(0x40, &[0x06, 0x08, 0x04, 0x12, 0x34, 0x02, 0x01, b'x']).expect("valid");
        assert_eq!(
            c,
            Some(Concat {
                reference: 0x1234,
                scheme: ConcatScheme::Udh16,
                total: 2,
                seq: 1
            })
        );
        assert_eq!(body, b"x");
        assert!(split_udh(0x40, &[0x09, 0x00]).is_err());
        assert!(split_udh(0x40, &[0x02, 0x00, 0x03]).is_err());
        // Part 4 of 3 is no part: the message stands alone.
        assert_eq!(
            split_udh(0x40, &[0x05, 0x00, 0x03, 1, 3, 4, b'z'])
                .expect("valid")
                .0,
            None
        );
    }

    #[test]
    fn vietnamese_goes_out_as_ucs2_in_67_unit_parts_with_an_8_bit_reference() {
        let text = "Điện đã được khôi phục tại phường Phú Hòa. ".repeat(5);
        let units = text.encode_utf16().count();
        let parts = encode(&text, 0x7F).expect("fits");
        assert_eq!(parts.len(), units.div_ceil(67));
        for (i, p) in parts.iter().enumerate() {
            assert_eq!((p.data_coding, p.esm_class), (0x08, 0x40));
            assert_eq!(
                &p.short_message[..6],
                &[0x05, 0x00, 0x03, 0x7F, parts.len() as u8, i as u8 + 1]
            );
            assert!(p.short_message.len() <= 6 + 134);
        }
        let back: String = parts
            .iter()
            .map(|p| decode(0x08, &p.short_message[6..]))
            .collect();
        assert_eq!(back, text);
    }

    #[test]
    fn a_surrogate_pair_is_never_split_across_parts() {
        // 66 units then an emoji: the pair would straddle units 67/68, so it moves whole to the next part.
        let text = format!("{}😀{}", "à".repeat(66), "b".repeat(10));
        let parts = encode(&text, 1).expect("fits");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].short_message.len(), 6 + 66 * 2);
        assert_eq!(&parts[1].short_message[6..10], &[0xD8, 0x3D, 0xDE, 0x00]);
    }

    #[test]
    fn plain_text_stays_gsm7_and_a_short_answer_is_one_part_without_udh() {
        let parts = encode("Da co dien lai {OK}", 9).expect("fits");
        assert_eq!(parts.len(), 1);
        assert_eq!((parts[0].data_coding, parts[0].esm_class), (0x00, 0x00));
        assert_eq!(decode(0x00, &parts[0].short_message), "Da co dien lai {OK}");
        let long = "a".repeat(161);
        let parts = encode(&long, 9).expect("fits");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].short_message.len(), 6 + 153);
    }

    #[test]
    fn an_answer_over_255_parts_is_refused() {
        assert!(encode(&"ệ".repeat(67 * 255), 1).is_some());
        assert!(encode(&"ệ".repeat(67 * 255 + 1), 1).is_none());
    }
}
