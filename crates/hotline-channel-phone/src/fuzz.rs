//! Entry points for fuzzing (`fuzz/fuzz_targets/*.rs` call them): each takes arbitrary bytes, runs one parser the
//! way the channel runs it on input from outside, and must never panic. The seed corpora are in
//! `fuzz-corpus/<target>/`, and the crate's tests replay every file of them through these functions.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue};
use time::OffsetDateTime;

use crate::ami::calls::Correlator;
use crate::ami::frame;
use crate::config::{DurationUnit, Secret};
use crate::pbx::generic::{self, GenericWebhook};
use crate::pbx::stringee::{self, StringeeWebhook};
use crate::pbx::{PbxRequest, PbxWebhook};

const SECRET: &str = "fuzz-secret-0123456789";

/// `pbx_generic`: the bytes as a generic webhook body, signed correctly (so the parser past the signature is
/// reached) and once more with a wrong signature.
pub fn pbx_generic(data: &[u8]) {
    let hook = GenericWebhook::new(Secret::new(SECRET), Duration::from_secs(300));
    let now = OffsetDateTime::from_unix_timestamp(1_717_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let mut headers = HeaderMap::new();
    headers.insert(generic::TIMESTAMP_HEADER, HeaderValue::from_static("1717000000"));
    if let Ok(v) = HeaderValue::from_str(&generic::sign(SECRET, 1_717_000_000, data)) {
        headers.insert(generic::SIGNATURE_HEADER, v);
    }
    let _ = hook.parse(&PbxRequest { query: b"", headers: &headers, body: data }, now);
    headers.insert(generic::SIGNATURE_HEADER, HeaderValue::from_static("sha256=00"));
    let _ = hook.parse(&PbxRequest { query: b"", headers: &headers, body: data }, now);
}

/// `stringee_event`: the bytes as a Stringee event body, with the right token and account.
pub fn stringee_event(data: &[u8]) {
    let hook = StringeeWebhook::new("AC123".into(), Secret::new("tok_0123456789abcdef"), DurationUnit::Millis);
    let headers = HeaderMap::new();
    let _ = hook.parse(&PbxRequest { query: b"token=tok_0123456789abcdef", headers: &headers, body: data }, OffsetDateTime::UNIX_EPOCH);
    let _ = stringee::parse_event(data, DurationUnit::Secs);
}

/// `ami_frame`: the bytes as a stream from Asterisk, decoded, and every message fed to the call correlator (with
/// and without CDRs), then expired.
pub fn ami_frame(data: &[u8]) {
    let items = frame::fuzz_stream(data);
    let start = Instant::now();
    for cdr in [false, true] {
        let mut correlator = Correlator::new(cdr, Duration::from_secs(1));
        for item in &items {
            if let frame::Item::Frame(f) = item {
                let _ = correlator.on_frame(f, start);
            }
        }
        let _ = correlator.expire(start + Duration::from_secs(2));
    }
}
