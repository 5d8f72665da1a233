//! Entry points for fuzzing (`fuzz/fuzz_targets/zalo_webhook.rs` calls it): takes arbitrary bytes, runs them
//! through what the webhook does with a body from outside, and must never panic. The seed corpus is in
//! `fuzz-corpus/zalo_webhook/`, replayed by the crate's tests.

use std::time::Duration;

use crate::event;
use crate::signature::{self, Verifier};

/// `zalo_webhook`: the bytes as a webhook body, signed with a test key (so the fuzzer reaches the parser past a
/// correct MAC when the body has `app_id` and `timestamp`), then checked with a wrong MAC, then parsed.
pub fn zalo_webhook(data: &[u8]) {
    let verifier = Verifier { oa_secret_key: "fuzz-secret", app_id: None, replay_window: Duration::from_secs(300) };
    let _ = verifier.verify(Some(b"mac=00"), data, 0);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let field = |k: &str| value.get(k).and_then(event::json_id);
        if let (Some(app_id), Some(timestamp)) = (field("app_id"), field("timestamp")) {
            let mac = signature::mac(&app_id, data, &timestamp, "fuzz-secret");
            let now = value.get("timestamp").and_then(event::json_millis).unwrap_or(0);
            let _ = verifier.verify(Some(mac.as_bytes()), data, now);
        }
    }
    if let Ok(event::ZaloEvent::Message(m)) = event::parse(data) {
        let _ = crate::keys::inbox(&m.user_id, &m.msg_id);
        let _ = hotline_channel::find_references(&m.text);
    }
}
