//! `POST /v1/phone/intake` over real HTTP with the API's token check: an operator's intake is the petition (the
//! caller's number normalised on the citizen), a retry gets the same ticket, bad requests get their 4xx, and
//! only desk tokens may file.

use hotline_domain::TicketEvent;
use hotline_domain::event::CallEventKind;
use serde_json::json;
use uuid::Uuid;

use crate::{Harness, config, request};

fn bearer(token: &str) -> Vec<(String, String)> {
    vec![("Authorization".into(), format!("Bearer {token}")), ("Content-Type".into(), "application/json".into())]
}

fn body(call_id: &str) -> Vec<u8> {
    json!({
        "call_id": call_id,
        "caller_number": "0274 3822 123",
        "agent": "101",
        "summary": "Cột điện nghiêng sắp đổ trước số 12 Đại lộ Bình Dương",
        "category": "electricity",
        "recording_ref": "https://pbx.example.vn/rec/1717000000.42.wav",
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn an_operators_intake_is_the_petition_and_a_retry_gets_the_same_ticket() {
    let h = Harness::start().await;
    let (addr, _ledger, _stop) = h.serve(config()).await;
    let first = request("POST", &addr, "/v1/phone/intake", bearer(&h.operator), body("1717000000.42")).await;
    assert_eq!(first.status, 202, "{}", first.text());
    let answer = first.json();
    let ticket: Uuid = answer["ticket_id"].as_str().expect("id").parse().expect("uuid");
    assert_eq!(ticket, h.intake.ticket_id_for("phone", "1717000000.42"));
    assert_eq!(answer["duplicate"], false);

    let retry = request("POST", &addr, "/v1/phone/intake", bearer(&h.operator), body("1717000000.42")).await;
    assert_eq!(retry.status, 202, "{}", retry.text());
    assert_eq!((retry.json()["ticket_id"].clone(), retry.json()["reference"].clone(), retry.json()["duplicate"].clone()), (answer["ticket_id"].clone(), answer["reference"].clone(), json!(true)));

    let events = h.events(ticket).await;
    let TicketEvent::PetitionReceived(p) = &events[0] else { panic!("a petition first: {events:?}") };
    assert_eq!((p.channel.as_str(), p.channel_ref.as_deref()), ("phone", Some("1717000000.42")));
    assert_eq!(p.citizen.as_ref().and_then(|c| c.phone.as_deref()), Some("842743822123"));
    assert_eq!(p.category.as_deref(), Some("electricity"));
    let calls = h.calls(ticket).await;
    assert_eq!(calls.len(), 2, "the call-taker and the recording, once each despite the retry: {calls:?}");
    assert_eq!((calls[0].kind, calls[0].agent.as_deref(), calls[0].source.as_str()), (CallEventKind::Answered, Some("101"), "intake"));
    assert_eq!(calls[1].recording.as_deref(), Some("https://pbx.example.vn/rec/1717000000.42.wav"));

    // The same call filed with other content is a conflict, not a second ticket.
    let mut other: serde_json::Value = serde_json::from_slice(&body("1717000000.42")).expect("json");
    other["summary"] = json!("Another story");
    let conflict = request("POST", &addr, "/v1/phone/intake", bearer(&h.operator), other.to_string().into_bytes()).await;
    assert_eq!((conflict.status, conflict.json()["error"]["code"].as_str()), (409, Some("call_already_filed")));
}

#[tokio::test]
async fn only_desk_tokens_file_and_nothing_is_stored_otherwise() {
    let h = Harness::start().await;
    let (addr, _ledger, _stop) = h.serve(config()).await;
    let none = request("POST", &addr, "/v1/phone/intake", vec![("Content-Type".into(), "application/json".into())], body("c-1")).await;
    assert_eq!((none.status, none.json()["error"]["code"].as_str()), (401, Some("unauthorized")));
    let wrong = request("POST", &addr, "/v1/phone/intake", bearer("hlt_nope_nope"), body("c-1")).await;
    assert_eq!(wrong.status, 401);
    let agency = request("POST", &addr, "/v1/phone/intake", bearer(&h.agency), body("c-1")).await;
    assert_eq!((agency.status, agency.json()["error"]["code"].as_str()), (403, Some("forbidden")));
    assert!(h.events(h.intake.ticket_id_for("phone", "c-1")).await.is_empty(), "nothing stored");
    // The bootstrap admin may file (admins can do what the desk does).
    let admin = request("POST", &addr, "/v1/phone/intake", bearer("bootstrap-admin-token"), body("c-1")).await;
    assert_eq!(admin.status, 202, "{}", admin.text());
}

#[tokio::test]
async fn bad_requests_get_their_error_and_store_nothing() {
    let h = Harness::start().await;
    let (addr, _ledger, _stop) = h.serve(config()).await;
    let post = |b: Vec<u8>| request("POST", &addr, "/v1/phone/intake", bearer(&h.operator), b);
    let code = |r: &hotline_testkit::Response| (r.status, r.json()["error"]["code"].as_str().map(str::to_owned));
    let with = |key: &str, value: serde_json::Value| {
        let mut b: serde_json::Value = serde_json::from_slice(&body("c-2")).expect("json");
        b[key] = value;
        b.to_string().into_bytes()
    };
    assert_eq!(code(&post(b"{\"call_id\":".to_vec()).await), (400, Some("malformed_json".into())));
    assert_eq!(code(&post(with("caller_number", json!("gọi lại sau"))).await), (422, Some("invalid_caller_number".into())));
    assert_eq!(code(&post(with("call_id", json!("a b"))).await), (422, Some("invalid_call_id".into())));
    assert_eq!(code(&post(with("summary", json!("   "))).await), (422, Some("empty_text".into())));
    assert_eq!(code(&post(with("category", json!("weather"))).await), (422, Some("unknown_category".into())));
    assert_eq!(code(&post(with("agnet", json!("101"))).await), (422, Some("invalid_request".into())));
    let mut missing: serde_json::Value = serde_json::from_slice(&body("c-2")).expect("json");
    missing.as_object_mut().expect("object").remove("agent");
    assert_eq!(code(&post(missing.to_string().into_bytes()).await), (422, Some("invalid_request".into())));
    assert!(h.events(h.intake.ticket_id_for("phone", "c-2")).await.is_empty(), "nothing stored");
}

#[tokio::test]
async fn without_an_authorizer_the_intake_is_closed() {
    let h = Harness::start().await;
    let channel = hotline_channel_phone::PhoneChannel::from_config(&config()).expect("config");
    let (ctx, _stop) = h.context(config());
    let router = hotline_channel::ChannelAdapter::http_routes(&channel, &ctx).expect("routes");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let r = request("POST", &addr, "/v1/phone/intake", bearer(&h.operator), body("c-3")).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (503, Some("intake_not_configured")));
}
