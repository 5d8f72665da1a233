//! SMPP 3.4 PDUs: the few the ESME needs, encoded and decoded by hand (pure functions over bytes, no I/O).
//!
//! Framing: `command_length(4) command_id(4) command_status(4) sequence_number(4)`, big-endian, the length
//! counting the header. A frame shorter than the header or longer than [`MAX_PDU_LEN`] is a broken stream
//! ([`frame_length`] says so before anything is buffered); a whole frame whose body does not parse is one bad PDU
//! ([`decode`] returns an error and the session answers `generic_nack`, keeping the connection).

use std::fmt;

/// The longest PDU accepted. SMPP 3.4 sets no limit, but a `submit_sm`/`deliver_sm` with a full
/// `message_payload` TLV stays far below this; anything larger is garbage or an attack.
pub const MAX_PDU_LEN: u32 = 64 * 1024;
/// Octets in the PDU header.
pub const HEADER_LEN: usize = 16;
/// SMPP 3.4, as sent in `interface_version`.
pub const INTERFACE_VERSION: u8 = 0x34;

/// Command ids (SMPP 3.4 §5.1.2.1). A response id is its request's id with the top bit set.
pub mod command {
    pub const GENERIC_NACK: u32 = 0x8000_0000;
    pub const BIND_TRANSCEIVER: u32 = 0x0000_0009;
    pub const BIND_TRANSCEIVER_RESP: u32 = 0x8000_0009;
    pub const SUBMIT_SM: u32 = 0x0000_0004;
    pub const SUBMIT_SM_RESP: u32 = 0x8000_0004;
    pub const DELIVER_SM: u32 = 0x0000_0005;
    pub const DELIVER_SM_RESP: u32 = 0x8000_0005;
    pub const UNBIND: u32 = 0x0000_0006;
    pub const UNBIND_RESP: u32 = 0x8000_0006;
    pub const ENQUIRE_LINK: u32 = 0x0000_0015;
    pub const ENQUIRE_LINK_RESP: u32 = 0x8000_0015;
    /// The bit that makes a command id a response.
    pub const RESPONSE_BIT: u32 = 0x8000_0000;
}

/// Command status codes (SMPP 3.4 §5.1.3) the session produces or reacts to.
pub mod status {
    pub const ROK: u32 = 0x00;
    pub const RINVMSGLEN: u32 = 0x01;
    pub const RINVCMDLEN: u32 = 0x02;
    pub const RINVCMDID: u32 = 0x03;
    pub const RINVBNDSTS: u32 = 0x04;
    pub const RALYBND: u32 = 0x05;
    pub const RSYSERR: u32 = 0x08;
    pub const RINVSRCADR: u32 = 0x0A;
    pub const RINVDSTADR: u32 = 0x0B;
    pub const RBINDFAIL: u32 = 0x0D;
    pub const RINVPASWD: u32 = 0x0E;
    pub const RINVSYSID: u32 = 0x0F;
    pub const RMSGQFUL: u32 = 0x14;
    pub const RSUBMITFAIL: u32 = 0x45;
    pub const RTHROTTLED: u32 = 0x58;
    /// "ESME receiver temporary app error": the SMSC keeps the message and delivers it again.
    pub const RX_T_APPN: u32 = 0x64;
    /// "ESME receiver permanent app error": the SMSC gives the message up.
    pub const RX_P_APPN: u32 = 0x65;
}

/// TLV tags (SMPP 3.4 §5.3.2) the channel reads or writes.
pub mod tag {
    pub const RECEIPTED_MESSAGE_ID: u16 = 0x001E;
    pub const SAR_MSG_REF_NUM: u16 = 0x020C;
    pub const SAR_TOTAL_SEGMENTS: u16 = 0x020E;
    pub const SAR_SEGMENT_SEQNUM: u16 = 0x020F;
    pub const MESSAGE_PAYLOAD: u16 = 0x0424;
    pub const MESSAGE_STATE: u16 = 0x0427;
}

/// One PDU with its header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub status: u32,
    pub sequence: u32,
    pub body: Body,
}

/// The body of a PDU, by command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    BindTransceiver(Bind),
    /// `system_id` of the SMSC; absent when the bind was refused.
    BindTransceiverResp {
        system_id: String,
    },
    SubmitSm(ShortMessage),
    /// The SMSC's id for the accepted message (empty when refused).
    SubmitSmResp {
        message_id: String,
    },
    DeliverSm(ShortMessage),
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    Unbind,
    UnbindResp,
    GenericNack,
    /// Any other command: kept so a request can be refused with `generic_nack` and a response logged.
    Other {
        command_id: u32,
    },
}

impl Body {
    /// The command id this body is sent with.
    pub fn command_id(&self) -> u32 {
        match self {
            Body::BindTransceiver(_) => command::BIND_TRANSCEIVER,
            Body::BindTransceiverResp { .. } => command::BIND_TRANSCEIVER_RESP,
            Body::SubmitSm(_) => command::SUBMIT_SM,
            Body::SubmitSmResp { .. } => command::SUBMIT_SM_RESP,
            Body::DeliverSm(_) => command::DELIVER_SM,
            Body::DeliverSmResp => command::DELIVER_SM_RESP,
            Body::EnquireLink => command::ENQUIRE_LINK,
            Body::EnquireLinkResp => command::ENQUIRE_LINK_RESP,
            Body::Unbind => command::UNBIND,
            Body::UnbindResp => command::UNBIND_RESP,
            Body::GenericNack => command::GENERIC_NACK,
            Body::Other { command_id } => *command_id,
        }
    }
}

/// `bind_transceiver` (SMPP 3.4 §4.1.5).
#[derive(Clone, PartialEq, Eq)]
pub struct Bind {
    pub system_id: String,
    pub password: String,
    pub system_type: String,
    pub interface_version: u8,
    pub addr_ton: u8,
    pub addr_npi: u8,
    pub address_range: String,
}

impl fmt::Debug for Bind {
    // The password never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bind")
            .field("system_id", &self.system_id)
            .field("password", &"<redacted>")
            .field("system_type", &self.system_type)
            .field("interface_version", &self.interface_version)
            .finish_non_exhaustive()
    }
}

/// The common body of `submit_sm` and `deliver_sm` (SMPP 3.4 §4.4.1, §4.6.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShortMessage {
    pub service_type: String,
    pub source_addr_ton: u8,
    pub source_addr_npi: u8,
    pub source_addr: String,
    pub dest_addr_ton: u8,
    pub dest_addr_npi: u8,
    pub destination_addr: String,
    pub esm_class: u8,
    pub protocol_id: u8,
    pub priority_flag: u8,
    pub schedule_delivery_time: String,
    pub validity_period: String,
    pub registered_delivery: u8,
    pub replace_if_present_flag: u8,
    pub data_coding: u8,
    pub sm_default_msg_id: u8,
    /// Up to 254 octets (`sm_length` is one octet).
    pub short_message: Vec<u8>,
    pub tlvs: Vec<Tlv>,
}

impl ShortMessage {
    /// The first TLV with this tag.
    pub fn tlv(&self, tag: u16) -> Option<&[u8]> {
        self.tlvs
            .iter()
            .find(|t| t.tag == tag)
            .map(|t| t.value.as_slice())
    }

    /// The user data: `short_message`, or the `message_payload` TLV when `short_message` is empty.
    pub fn payload(&self) -> &[u8] {
        if self.short_message.is_empty()
            && let Some(p) = self.tlv(tag::MESSAGE_PAYLOAD)
        {
            return p;
        }
        &self.short_message
    }
}

/// An optional parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    pub tag: u16,
    pub value: Vec<u8>,
}

/// Why bytes are not a PDU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    /// The frame's length field is impossible: the stream cannot be trusted any more.
    #[error("command_length {0} is outside {HEADER_LEN}..={MAX_PDU_LEN}")]
    BadLength(u32),
    /// The body ended before a field did.
    #[error("the {0} field runs past the end of the PDU")]
    Truncated(&'static str),
    /// A C-octet string had no terminating NUL within its maximum size.
    #[error("the {0} field is not NUL-terminated within its size")]
    Unterminated(&'static str),
    /// Bytes left over after the last field (or a TLV header cut short).
    #[error("{0} octets left over after the last field")]
    Trailing(usize),
    /// A value the field cannot hold (`sm_length` longer than 254 when encoding).
    #[error("{0}")]
    Invalid(&'static str),
}

/// How long the frame that starts `buf` is, once its first 4 octets are there: `Ok(None)` while fewer are,
/// `Err` when the length field is impossible (the caller drops the connection).
pub fn frame_length(buf: &[u8]) -> Result<Option<usize>, PduError> {
    let Some(head) = buf.get(..4) else {
        return Ok(None);
    };
    let length = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    if (length as usize) < HEADER_LEN || length > MAX_PDU_LEN {
        return Err(PduError::BadLength(length));
    }
    Ok(Some(length as usize))
}

/// The header fields of a whole frame, readable even when its body is not (to answer it with the right
/// sequence number).
pub fn peek_header(frame: &[u8]) -> Option<(u32, u32, u32)> {
    let h = frame.get(..HEADER_LEN)?;
    let word = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    Some((word(4), word(8), word(12)))
}

/// Decodes exactly one whole PDU (`frame` is `command_length` octets long).
pub fn decode(frame: &[u8]) -> Result<Packet, PduError> {
    let length = frame_length(frame)?.ok_or(PduError::Truncated("command_length"))?;
    if frame.len() < length {
        return Err(PduError::Truncated("PDU body"));
    }
    if frame.len() > length {
        return Err(PduError::Trailing(frame.len() - length));
    }
    let (command_id, status, sequence) = peek_header(frame).ok_or(PduError::Truncated("header"))?;
    let mut r = Reader {
        buf: &frame[HEADER_LEN..],
        pos: 0,
    };
    let body = match command_id {
        command::BIND_TRANSCEIVER => Body::BindTransceiver(Bind {
            system_id: r.cstring("system_id", 16)?,
            password: r.cstring("password", 9)?,
            system_type: r.cstring("system_type", 13)?,
            interface_version: r.u8("interface_version")?,
            addr_ton: r.u8("addr_ton")?,
            addr_npi: r.u8("addr_npi")?,
            address_range: r.cstring("address_range", 41)?,
        }),
        // A refused bind or submit may come without a body.
        command::BIND_TRANSCEIVER_RESP => {
            let system_id = if r.done() {
                String::new()
            } else {
                r.cstring("system_id", 16)?
            };
            r.skip_tlvs()?;
            Body::BindTransceiverResp { system_id }
        }
        command::SUBMIT_SM_RESP => Body::SubmitSmResp {
            message_id: if r.done() {
                String::new()
            } else {
                r.cstring("message_id", 65)?
            },
        },
        command::SUBMIT_SM => Body::SubmitSm(r.short_message()?),
        command::DELIVER_SM => Body::DeliverSm(r.short_message()?),
        command::DELIVER_SM_RESP => {
            if !r.done() {
                r.cstring("message_id", 65)?;
            }
            Body::DeliverSmResp
        }
        command::ENQUIRE_LINK => Body::EnquireLink,
        command::ENQUIRE_LINK_RESP => Body::EnquireLinkResp,
        command::UNBIND => Body::Unbind,
        command::UNBIND_RESP => Body::UnbindResp,
        command::GENERIC_NACK => Body::GenericNack,
        other => {
            // Unknown commands keep their body unread: only the header matters for the answer.
            return Ok(Packet {
                status,
                sequence,
                body: Body::Other { command_id: other },
            });
        }
    };
    if !r.done() {
        return Err(PduError::Trailing(r.buf.len() - r.pos));
    }
    Ok(Packet {
        status,
        sequence,
        body,
    })
}

/// Encodes a PDU. Fails only for values the wire format cannot carry (a `short_message` over 254 octets,
/// a TLV over 65535, a string with a NUL).
pub fn encode(packet: &Packet) -> Result<Vec<u8>, PduError> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&packet.body.command_id().to_be_bytes());
    out.extend_from_slice(&packet.status.to_be_bytes());
    out.extend_from_slice(&packet.sequence.to_be_bytes());
    match &packet.body {
        Body::BindTransceiver(b) => {
            put_cstring(&mut out, &b.system_id, 16)?;
            put_cstring(&mut out, &b.password, 9)?;
            put_cstring(&mut out, &b.system_type, 13)?;
            out.extend_from_slice(&[b.interface_version, b.addr_ton, b.addr_npi]);
            put_cstring(&mut out, &b.address_range, 41)?;
        }
        Body::BindTransceiverResp { system_id } => put_cstring(&mut out, system_id, 16)?,
        Body::SubmitSmResp { message_id } => put_cstring(&mut out, message_id, 65)?,
        Body::DeliverSmResp => out.push(0),
        Body::SubmitSm(sm) | Body::DeliverSm(sm) => put_short_message(&mut out, sm)?,
        Body::EnquireLink
        | Body::EnquireLinkResp
        | Body::Unbind
        | Body::UnbindResp
        | Body::GenericNack
        | Body::Other { .. } => {}
    }
    let length = u32::try_from(out.len()).map_err(|_| PduError::Invalid("PDU too long"))?;
    if length > MAX_PDU_LEN {
        return Err(PduError::Invalid("PDU longer than the maximum"));
    }
    out[..4].copy_from_slice(&length.to_be_bytes());
    Ok(out)
}

fn put_cstring(out: &mut Vec<u8>, s: &str, max: usize) -> Result<(), PduError> {
    if s.len() >= max || s.as_bytes().contains(&0) {
        return Err(PduError::Invalid(
            "a C-octet string is too long or contains NUL",
        ));
    }
    out.extend_from_slice(s.as_bytes());
    out.push(0);
    Ok(())
}

fn put_short_message(out: &mut Vec<u8>, sm: &ShortMessage) -> Result<(), PduError> {
    put_cstring(out, &sm.service_type, 6)?;
    out.extend_from_slice(&[sm.source_addr_ton, sm.source_addr_npi]);
    put_cstring(out, &sm.source_addr, 21)?;
    out.extend_from_slice(&[sm.dest_addr_ton, sm.dest_addr_npi]);
    put_cstring(out, &sm.destination_addr, 21)?;
    out.extend_from_slice(&[sm.esm_class, sm.protocol_id, sm.priority_flag]);
    put_cstring(out, &sm.schedule_delivery_time, 17)?;
    put_cstring(out, &sm.validity_period, 17)?;
    out.extend_from_slice(&[
        sm.registered_delivery,
        sm.replace_if_present_flag,
        sm.data_coding,
        sm.sm_default_msg_id,
    ]);
    let len = u8::try_from(sm.short_message.len())
        .ok()
        .filter(|l| *l < 255)
        .ok_or(PduError::Invalid("short_message is longer than 254 octets"))?;
    out.push(len);
    out.extend_from_slice(&sm.short_message);
    for t in &sm.tlvs {
        let len = u16::try_from(t.value.len())
            .map_err(|_| PduError::Invalid("a TLV value is longer than 65535 octets"))?;
        out.extend_from_slice(&t.tag.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&t.value);
    }
    Ok(())
}

/// A cursor over a PDU body; every read checks the bounds.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, PduError> {
        let b = *self.buf.get(self.pos).ok_or(PduError::Truncated(field))?;
        self.pos += 1;
        Ok(b)
    }

    fn bytes(&mut self, field: &'static str, n: usize) -> Result<&[u8], PduError> {
        let end = self.pos.checked_add(n).ok_or(PduError::Truncated(field))?;
        let b = self
            .buf
            .get(self.pos..end)
            .ok_or(PduError::Truncated(field))?;
        self.pos = end;
        Ok(b)
    }

    /// A NUL-terminated string of at most `max` octets including the NUL. Non-ASCII octets (never valid in
    /// these fields) are kept as Latin-1 so nothing is refused for them.
    fn cstring(&mut self, field: &'static str, max: usize) -> Result<String, PduError> {
        let rest = &self.buf[self.pos.min(self.buf.len())..];
        if rest.is_empty() {
            return Err(PduError::Truncated(field));
        }
        let window = &rest[..rest.len().min(max)];
        let nul = window
            .iter()
            .position(|b| *b == 0)
            .ok_or(PduError::Unterminated(field))?;
        let s = window[..nul].iter().map(|b| char::from(*b)).collect();
        self.pos += nul + 1;
        Ok(s)
    }

    fn short_message(&mut self) -> Result<ShortMessage, PduError> {
        let mut sm = ShortMessage {
            service_type: self.cstring("service_type", 6)?,
            source_addr_ton: self.u8("source_addr_ton")?,
            source_addr_npi: self.u8("source_addr_npi")?,
            source_addr: self.cstring("source_addr", 21)?,
            dest_addr_ton: self.u8("dest_addr_ton")?,
            dest_addr_npi: self.u8("dest_addr_npi")?,
            destination_addr: self.cstring("destination_addr", 21)?,
            esm_class: self.u8("esm_class")?,
            protocol_id: self.u8("protocol_id")?,
            priority_flag: self.u8("priority_flag")?,
            schedule_delivery_time: self.cstring("schedule_delivery_time", 17)?,
            validity_period: self.cstring("validity_period", 17)?,
            registered_delivery: self.u8("registered_delivery")?,
            replace_if_present_flag: self.u8("replace_if_present_flag")?,
            data_coding: self.u8("data_coding")?,
            sm_default_msg_id: self.u8("sm_default_msg_id")?,
            short_message: Vec::new(),
            tlvs: Vec::new(),
        };
        let len = self.u8("sm_length")? as usize;
        sm.short_message = self.bytes("short_message", len)?.to_vec();
        while !self.done() {
            let head = self.bytes("TLV header", 4)?;
            let tag = u16::from_be_bytes([head[0], head[1]]);
            let len = u16::from_be_bytes([head[2], head[3]]) as usize;
            let value = self.bytes("TLV value", len)?.to_vec();
            sm.tlvs.push(Tlv { tag, value });
        }
        Ok(sm)
    }

    fn skip_tlvs(&mut self) -> Result<(), PduError> {
        while !self.done() {
            let head = self.bytes("TLV header", 4)?;
            let len = u16::from_be_bytes([head[2], head[3]]) as usize;
            self.bytes("TLV value", len)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deliver(short_message: &[u8]) -> Packet {
        Packet {
            status: 0,
            sequence: 7,
            body: Body::DeliverSm(ShortMessage {
                source_addr_ton: 1,
                source_addr_npi: 1,
                source_addr: "84912345678".into(),
                destination_addr: "1022".into(),
                short_message: short_message.to_vec(),
                tlvs: vec![Tlv {
                    tag: tag::SAR_MSG_REF_NUM,
                    value: vec![0, 9],
                }],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_deliver_sm_survives_encoding_and_decoding() {
        let p = deliver(b"hello");
        let bytes = encode(&p).expect("encodes");
        assert_eq!(frame_length(&bytes), Ok(Some(bytes.len())));
        assert_eq!(decode(&bytes), Ok(p));
    }

    #[test]
    fn an_enquire_link_is_sixteen_octets() {
        let bytes = encode(&Packet {
            status: 0,
            sequence: 1,
            body: Body::EnquireLink,
        })
        .expect("encodes");
        assert_eq!(bytes, [0, 0, 0, 16, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn impossible_lengths_are_refused_before_buffering() {
        assert_eq!(frame_length(&[0, 0, 0]), Ok(None));
        assert_eq!(frame_length(&[0, 0, 0, 15]), Err(PduError::BadLength(15)));
        assert_eq!(frame_length(&[0, 1, 0, 1]), Err(PduError::BadLength(65537)));
        assert_eq!(
            frame_length(&[0xFF, 0xFF, 0xFF, 0xFF]),
            Err(PduError::BadLength(u32::MAX))
        );
    }

    #[test]
    fn every_truncation_of_a_pdu_is_an_error_not_a_panic() {
        let bytes = encode(&deliver(b"hello")).expect("encodes");
        // Cutting the whole (optional) TLV off leaves a valid PDU; every other cut is short.
        let without_tlvs = bytes.len() - 6;
        for cut in (16..bytes.len()).filter(|c| *c != without_tlvs) {
            let mut frame = bytes[..cut].to_vec();
            frame[..4].copy_from_slice(&(cut as u32).to_be_bytes());
            assert!(decode(&frame).is_err(), "cut at {cut} decoded");
        }
    }

    #[test]
    fn a_refused_submit_sm_resp_may_have_no_body() {
        let frame = [0, 0, 0, 16, 0x80, 0, 0, 4, 0, 0, 0, 0x58, 0, 0, 0, 3];
        assert_eq!(
            decode(&frame),
            Ok(Packet {
                status: status::RTHROTTLED,
                sequence: 3,
                body: Body::SubmitSmResp {
                    message_id: String::new()
                }
            })
        );
    }

    #[test]
    fn the_payload_tlv_stands_in_for_an_empty_short_message() {
        let mut p = deliver(b"");
        let Body::DeliverSm(sm) = &mut p.body else {
            unreachable!()
        };
        sm.tlvs.push(Tlv {
            tag: tag::MESSAGE_PAYLOAD,
            value: b"long text".to_vec(),
        });
        let Body::DeliverSm(back) = decode(&encode(&p).expect("encodes")).expect("decodes").body
        else {
            unreachable!()
        };
        assert_eq!(back.payload(), b"long text");
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let b = Bind {
            system_id: "hotline".into(),
            password: "s3cret".into(),
            system_type: String::new(),
            interface_version: INTERFACE_VERSION,
            addr_ton: 0,
            addr_npi: 0,
            address_range: String::new(),
        };
        assert!(!format!("{b:?}").contains("s3cret"));
    }
}
