//! Entry points for fuzzing (`fuzz/fuzz_targets/*.rs` call them): each takes arbitrary bytes, runs one parser the
//! way the channel runs it on input from outside, and must never panic. The seed corpora are in
//! `fuzz-corpus/<target>/`, and the crate's tests replay every file of them through these functions.

use std::time::{Duration, Instant};

use crate::reassembly::{Added, Fragment, Reassembler};
use crate::smpp::{inbound, pdu};
use crate::text;
use crate::webhook::{MoGateway, WebhookRequest, esms, twilio};

/// `smpp_pdu`: the bytes as a stream of PDUs from an SMSC (framing, then decoding each frame), and each decoded
/// PDU encoded again.
pub fn smpp_pdu(data: &[u8]) {
    let mut rest = data;
    while let Ok(Some(len)) = pdu::frame_length(rest) {
        let Some(frame) = rest.get(..len) else { break };
        let _ = pdu::peek_header(frame);
        if let Ok(packet) = pdu::decode(frame) {
            let _ = pdu::encode(&packet);
            if let pdu::Body::DeliverSm(sm) | pdu::Body::SubmitSm(sm) = &packet.body {
                let _ = inbound::receipt(sm);
            }
        }
        rest = &rest[len..];
    }
}

/// `sms_text`: records of `[data_coding, esm_class, length, user data...]`, each decoded (UDH split, text
/// decoded) and fed to one reassembler as parts from one sender, which is then expired.
pub fn sms_text(data: &[u8]) {
    let mut reassembler = Reassembler::new(Duration::from_secs(60));
    let start = Instant::now();
    let mut rest = data;
    while let [data_coding, esm_class, len, tail @ ..] = rest {
        let len = (*len as usize).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        let _ = text::decode(*data_coding, payload);
        let Ok((concat, body)) = text::split_udh(*esm_class, payload) else {
            continue;
        };
        let fragment = Fragment {
            source: "84912345678".into(),
            destination: "1022".into(),
            data_coding: *data_coding,
            concat,
            body: body.to_vec(),
        };
        let (added, _) = reassembler.add(start, fragment);
        if let Added::Complete(a) = added
            && let Some(key) = &a.key
        {
            if esm_class & 1 == 0 {
                reassembler.done(start, key)
            } else {
                reassembler.retract(key, a.last_seq)
            }
        }
    }
    let _ = reassembler.expire(start + Duration::from_secs(61));
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = text::encode(s, 1);
    }
}

/// `twilio_form`: the bytes as a Twilio webhook body, parsed and checked against a signature.
pub fn twilio_form(data: &[u8]) {
    let hook = twilio::TwilioWebhook::new(
        crate::config::Secret::new("12345"),
        "https://hotline.example/v1/sms/twilio".into(),
    );
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(
        "x-twilio-signature",
        axum::http::HeaderValue::from_static("RSOYDt4T1cUTdK1PDd93/VVr8B8="),
    );
    let _ = hook.parse(&WebhookRequest {
        query: b"",
        headers: &headers,
        body: data,
    });
}

/// `esms_query`: the bytes as an eSMS MO query string, parsed and its signature checked.
pub fn esms_query(data: &[u8]) {
    let hook = esms::EsmsWebhook::new(crate::config::Secret::new("key"), true);
    let headers = axum::http::HeaderMap::new();
    let _ = esms::parse_query(data);
    let _ = hook.parse(&WebhookRequest {
        query: data,
        headers: &headers,
        body: b"",
    });
}
