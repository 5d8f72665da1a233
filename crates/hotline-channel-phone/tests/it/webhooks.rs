//! PBX events over real HTTP: signed generic events and Stringee's events land on the call's ticket once,
//! whether they come before the call-taker files the petition (kept in the channel's state meanwhile) or after,
//! however often they are delivered; refused requests store nothing.

use hotline_channel_phone::pbx::generic::sign;
use hotline_domain::event::CallEventKind;
use serde_json::json;

use crate::{GENERIC_SECRET, Harness, STRINGEE_TOKEN, config, request};

fn generic(body: &serde_json::Value, ts: i64, secret: &str) -> (Vec<(String, String)>, Vec<u8>) {
    let body = body.to_string().into_bytes();
    let headers = vec![
        ("Content-Type".to_owned(), "application/json".to_owned()),
        ("X-Hotline-Timestamp".to_owned(), ts.to_string()),
        ("X-Hotline-Signature".to_owned(), sign(secret, ts, &body)),
    ];
    (headers, body)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn file(h: &Harness, addr: &str, call_id: &str) -> serde_json::Value {
    let body = json!({"call_id": call_id, "caller_number": "0912345678", "agent": "101", "summary": "Nước sinh hoạt có mùi lạ ở khu phố 3"});
    let headers = vec![("Authorization".into(), format!("Bearer {}", h.operator)), ("Content-Type".into(), "application/json".into())];
    let r = request("POST", addr, "/v1/phone/intake", headers, body.to_string().into_bytes()).await;
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()
}

#[tokio::test]
async fn events_before_and_after_the_petition_land_once_on_its_ticket() {
    let h = Harness::start().await;
    let (addr, ledger, _stop) = h.serve(config()).await;
    let call = "1717000000.42";
    let ticket = h.intake.ticket_id_for("phone", call);
    let started = json!({"call_id": call, "event": "started", "at": "2024-05-29T08:00:00Z", "direction": "inbound"});
    let answered = json!({"call_id": call, "event": "answered", "agent": "101"});
    for (event, times) in [(&started, 2), (&answered, 1)] {
        for _ in 0..times {
            let (headers, body) = generic(event, now(), GENERIC_SECRET);
            let r = request("POST", &addr, "/v1/phone/events/generic", headers, body).await;
            assert_eq!((r.status, r.json()["pending"].clone()), (200, json!(true)), "{}", r.text());
        }
    }
    assert!(h.events(ticket).await.is_empty(), "no ticket starts with a call event");
    assert_eq!(ledger.pending(call).await.expect("pending").len(), 2, "kept once each in the channel's state");

    file(&h, &addr, call).await;
    assert!(ledger.pending(call).await.expect("pending").is_empty(), "flushed when the petition was filed");

    let ended = json!({"call_id": call, "event": "ended", "duration_secs": 95, "talk_secs": 80, "cause": "NORMAL_CLEARING"});
    let recording = json!({"call_id": call, "event": "recording", "recording_ref": "https://pbx.example.vn/rec/42.wav"});
    for event in [&ended, &recording, &ended, &started, &recording] {
        let (headers, body) = generic(event, now(), GENERIC_SECRET);
        let r = request("POST", &addr, "/v1/phone/events/generic", headers, body).await;
        assert_eq!((r.status, r.json()["pending"].clone()), (200, json!(false)), "{}", r.text());
    }
    let calls = h.calls(ticket).await;
    let keys: Vec<&str> = calls.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys.iter().filter(|k| **k == "started").count(), 1, "{keys:?}");
    assert_eq!(keys.iter().filter(|k| **k == "ended").count(), 1, "{keys:?}");
    assert_eq!(keys.iter().filter(|k| k.starts_with("recording:")).count(), 1, "{keys:?}");
    assert_eq!(keys.len(), 5, "started, answered, the intake's answer, ended, recording: {keys:?}");
    let end = calls.iter().find(|c| c.kind == CallEventKind::Ended).expect("ended");
    assert_eq!((end.duration_secs, end.talk_secs, end.cause.as_deref()), (Some(95), Some(80), Some("NORMAL_CLEARING")));
    let start = calls.iter().find(|c| c.kind == CallEventKind::Started).expect("started");
    assert_eq!((start.direction.as_deref(), start.at.map(|t| t.unix_timestamp())), (Some("inbound"), Some(1_716_969_600)));
}

#[tokio::test]
async fn a_bad_stale_or_missing_signature_is_refused_and_stores_nothing() {
    let h = Harness::start().await;
    let (addr, ledger, _stop) = h.serve(config()).await;
    let event = json!({"call_id": "c-9", "event": "started"});
    let cases = [
        (generic(&event, now(), "another-secret-0123456789"), "invalid_signature"),
        (generic(&event, now() - 301, GENERIC_SECRET), "stale_timestamp"),
        ((vec![("Content-Type".to_owned(), "application/json".to_owned())], event.to_string().into_bytes()), "missing_signature"),
    ];
    for ((headers, body), code) in cases {
        let r = request("POST", &addr, "/v1/phone/events/generic", headers, body).await;
        assert_eq!((r.status, r.json()["error"]["code"].as_str()), (401, Some(code)));
    }
    let (headers, _) = generic(&event, now(), GENERIC_SECRET);
    let r = request("POST", &addr, "/v1/phone/events/generic", headers, b"{\"call_id\": \"c-9\", \"event\": \"started\"}".to_vec()).await;
    assert_eq!(r.status, 401, "a signature over another body");
    let (headers, body) = generic(&json!({"call_id": "c-9", "event": "teleported"}), now(), GENERIC_SECRET);
    let r = request("POST", &addr, "/v1/phone/events/generic", headers, body).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (422, Some("invalid_request")));
    assert!(ledger.pending("c-9").await.expect("pending").is_empty(), "nothing kept");
    let r = request("POST", &addr, "/v1/phone/events/freeswitch", vec![], b"{}".to_vec()).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (404, Some("unknown_pbx")));
}

/// Stringee's `event_url` payloads, shaped like the samples in its call-events documentation.
fn stringee(status: &str, extra: serde_json::Value) -> Vec<u8> {
    let mut body = json!({
        "call_status": status, "project_id": 25, "account_sid": "AC123", "timestamp_ms": 1_717_000_000_000i64,
        "from": {"number": "84912345678", "alias": "84912345678", "is_online": false, "type": "external"},
        "to": {"number": "agent_lan", "alias": "Lan", "is_online": true, "type": "internal"},
        "type": "stringee_call", "call_id": "call-vn-1-HJ8K2M0Q-1717000000000", "clientCustomData": "",
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body.to_string().into_bytes()
}

#[tokio::test]
async fn stringee_events_are_checked_by_token_and_account_and_recorded_once() {
    let h = Harness::start().await;
    let (addr, _ledger, _stop) = h.serve(config()).await;
    let call = "call-vn-1-HJ8K2M0Q-1717000000000";
    let path = format!("/v1/phone/events/stringee?token={STRINGEE_TOKEN}");
    let json_headers = || vec![("Content-Type".to_owned(), "application/json".to_owned())];
    for status in ["started", "ringing", "answered"] {
        let r = request("POST", &addr, &path, json_headers(), stringee(status, json!({}))).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    file(&h, &addr, call).await;
    let ended = stringee("ended", json!({"callCreatedReason": "EXTERNAL_CALL_IN", "endCallCause": "NORMAL_CLEARING", "endedBy": "caller", "duration": 61000, "answerDuration": 50000}));
    for _ in 0..2 {
        let r = request("POST", &addr, &path, json_headers(), ended.clone()).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let bad_token = request("POST", &addr, "/v1/phone/events/stringee?token=nope", json_headers(), stringee("ended", json!({}))).await;
    assert_eq!((bad_token.status, bad_token.json()["error"]["code"].as_str()), (401, Some("invalid_credentials")));
    let other_account = request("POST", &addr, &path, json_headers(), stringee("started", json!({"account_sid": "AC999", "call_id": "call-x"}))).await;
    assert_eq!(other_account.status, 401);

    let calls = h.calls(h.intake.ticket_id_for("phone", call)).await;
    let from_stringee: Vec<_> = calls.iter().filter(|c| c.source == "stringee").collect();
    assert_eq!(from_stringee.iter().map(|c| c.kind).collect::<Vec<_>>(), [CallEventKind::Started, CallEventKind::Answered, CallEventKind::Ended]);
    let end = from_stringee[2];
    assert_eq!((end.duration_secs, end.talk_secs, end.cause.as_deref(), end.agent.as_deref()), (Some(61), Some(50), Some("NORMAL_CLEARING"), Some("agent_lan")));
}

#[tokio::test]
async fn a_sweep_records_facts_left_pending_and_drops_calls_that_never_became_petitions() {
    let h = Harness::start().await;
    let (addr, ledger, _stop) = h.serve(config()).await;
    // Facts kept, then a petition filed through Intake directly (as if the intake's own flush had crashed).
    let (headers, body) = generic(&json!({"call_id": "c-sweep", "event": "started"}), now(), GENERIC_SECRET);
    assert_eq!(request("POST", &addr, "/v1/phone/events/generic", headers, body).await.status, 200);
    let (headers, body) = generic(&json!({"call_id": "c-lost", "event": "started"}), now(), GENERIC_SECRET);
    assert_eq!(request("POST", &addr, "/v1/phone/events/generic", headers, body).await.status, 200);
    h.intake
        .submit(hotline_channel::NewPetition {
            channel: "phone".into(),
            channel_ref: Some("c-sweep".into()),
            text: "Đường ngập sau mưa".into(),
            ..Default::default()
        })
        .await
        .expect("petition");
    let swept = ledger.sweep(time::OffsetDateTime::now_utc()).await.expect("sweep");
    assert_eq!((swept.flushed, swept.expired), (1, 0));
    assert_eq!(h.calls(h.intake.ticket_id_for("phone", "c-sweep")).await.len(), 1);
    assert_eq!(ledger.pending("c-lost").await.expect("pending").len(), 1, "waits for its petition");
    // Thirty-one days later (the default pending_days is 30), the call that never became a petition is dropped.
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(31);
    let swept = ledger.sweep(later).await.expect("sweep");
    assert_eq!((swept.expired, swept.removed), (1, 1), "the lost call dropped, the flushed record removed");
    assert!(ledger.pending("c-lost").await.expect("pending").is_empty());
}
