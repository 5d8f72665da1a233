//! The Zalo OA channel through the real binary: signed webhook events on `hotline up`'s HTTP port become one grouped
//! petition (once, whatever Zalo redelivers), answers and questions go out through a local stand-in of the Zalo
//! OpenAPI, the citizen's reply joins the waiting ticket, and an answer the OA may not send any more goes by SMS
//! (through a local stand-in of eSMS's send API) when the citizen shared their number. Assertions read the API
//! (ticket, timeline, queue), never log lines.
//!
//! The webhook signatures are computed with the channel crate's public `signature::mac`, which its own tests pin to
//! the channel reference's vector.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hotline_channel_zalo::signature;
use hotline_testkit::{Response, System};
use serde_json::{Value, json};

use crate::binary;
use crate::phone::{
    EsmsStandIn, WAIT, act, esms_stand_in, event_id, queue, summaries, timeline_of, token, wait_for_events, wait_for_sms,
};

const OA_KEY: &str = "oa-secret-e2e-1022";
const APP_ID: &str = "4108650300311298776";
const OA_ID: &str = "579745863508352884";
const ACCESS_TOKEN: &str = "oa-access-token-e2e";

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64
}

/// An event's body as Zalo posts it (ids and the timestamp as strings), timestamped `at_ms`.
fn event_at(app_id: &str, user: &str, event_name: &str, extra: Value, at_ms: u64) -> Vec<u8> {
    let mut body = json!({
        "app_id": app_id,
        "user_id_by_app": "552177279717587730",
        "event_name": event_name,
        "sender": {"id": user},
        "recipient": {"id": OA_ID},
        "timestamp": at_ms.to_string(),
    });
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    body.to_string().into_bytes()
}

/// A citizen's text to the OA, now.
fn text_event(user: &str, msg_id: &str, text: &str) -> Vec<u8> {
    event_at(APP_ID, user, "user_send_text", json!({"message": {"msg_id": msg_id, "text": text}}), now_ms())
}

/// Posts `body` to the webhook with the MAC Zalo makes with `key`.
fn post_signed(system: &System, body: &[u8], key: &str) -> Response {
    let v: Value = serde_json::from_slice(body).expect("json");
    let mac = signature::mac(v["app_id"].as_str().expect("app_id"), body, v["timestamp"].as_str().expect("timestamp"), key);
    system.request("POST", "/v1/zalo/webhook", &[("Content-Type", "application/json"), ("X-ZEvent-Signature", &mac)], body)
}

/// Posts a correctly signed event and expects Zalo's 200.
fn deliver(system: &System, body: &[u8]) {
    let r = post_signed(system, body, OA_KEY);
    assert_eq!((r.status, r.json()), (200, json!({"received": true})), "{}", r.text());
}

/// The open Zalo tickets, as the desk's queue shows them.
fn zalo_tickets(system: &System) -> Vec<Value> {
    queue(system, &system.admin_token, "").into_iter().filter(|t| t["channel"] == "zalo").collect()
}

/// Waits until a Zalo ticket with `text` went through routing (to an agency, or to the desk's triage); returns it.
fn wait_for_text(system: &System, text: &str) -> Value {
    let start = Instant::now();
    loop {
        if let Some(t) = zalo_tickets(system)
            .into_iter()
            .find(|t| t["text"] == text && (t["status"] == "routed" || t["status"] == "needs_triage"))
        {
            return t;
        }
        assert!(start.elapsed() < WAIT, "no routed Zalo ticket with {text:?}: {:?}", zalo_tickets(system));
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn refused(r: &Response, status: u16, code: &str) {
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (status, Some(code)), "{}", r.text());
    assert!(r.json()["error"]["message"].is_string(), "{}", r.text());
}

#[test]
fn signed_zalo_messages_make_one_grouped_ticket_once_and_bad_signatures_store_nothing() {
    let system = System::start(
        binary(),
        &[("HOTLINE_ZALO__OA_SECRET_KEY", OA_KEY), ("HOTLINE_ZALO__APP_ID", APP_ID), ("HOTLINE_ZALO__GROUP_WINDOW_SECS", "2")],
    );
    let citizen = "2468458835296117001";
    let (first, second) = ("Đèn tín hiệu giao thông ở ngã tư Sở Sao bị hỏng từ sáng", "Xe cộ lộn xộn, rất nguy hiểm");

    // A text and, a moment later, another: Zalo gets its 200 at once, before anything is filed.
    let sent = Instant::now();
    deliver(&system, &text_event(citizen, "8d0e5b1a0c2f4e11", first));
    let again = text_event(citizen, "8d0e5b1a0c2f4e12", second);
    deliver(&system, &again);
    if sent.elapsed() < Duration::from_millis(1500) {
        assert!(zalo_tickets(&system).is_empty(), "filed before the grouping window: {:?}", zalo_tickets(&system));
    }
    // Zalo delivers the second again while it waits in the inbox.
    deliver(&system, &again);

    // After the window: ONE petition of both texts, routed.
    let grouped = format!("{first}\n{second}");
    let t = wait_for_text(&system, &grouped);
    assert_eq!(
        (t["status"].as_str(), t["category"].as_str(), t["agency"].as_str()),
        (Some("routed"), Some("traffic_infrastructure"), Some("dot")),
        "{t}"
    );
    let id = t["ticket_id"].as_str().expect("id").to_owned();
    // And again after it was filed: still nothing new.
    deliver(&system, &again);

    // Refused with the JSON error shape, nothing stored: a MAC made with another key, no MAC, another app's event
    // (signed with our key), an event replayed from ten minutes ago.
    let forged = text_event("2468458835296117002", "8d0e5b1a0c2f4e21", "Tin giả mạo từ người lạ");
    refused(&post_signed(&system, &forged, "not-the-oa-key"), 401, "invalid_signature");
    refused(&system.request("POST", "/v1/zalo/webhook", &[("Content-Type", "application/json")], &forged), 401, "missing_signature");
    let other_app = event_at("1111111111", "2468458835296117002", "user_send_text", json!({"message": {"msg_id": "8d0e5b1a0c2f4e22", "text": "Tin giả mạo của ứng dụng khác"}}), now_ms());
    refused(&post_signed(&system, &other_app, OA_KEY), 401, "unknown_app");
    let stale = event_at(APP_ID, "2468458835296117002", "user_send_text", json!({"message": {"msg_id": "8d0e5b1a0c2f4e23", "text": "Tin giả mạo phát lại"}}), now_ms() - 27 * 3_600_000);
    refused(&post_signed(&system, &stale, OA_KEY), 401, "stale_event");
    let cut = system.request("POST", "/v1/zalo/webhook", &[("X-ZEvent-Signature", "mac=00")], b"{\"app_id\": 1");
    refused(&cut, 400, "malformed_event");

    // A later good message is filed after anything the refused or repeated ones could have made: by then there
    // must be exactly the two tickets, and the first has only what routing added.
    let marker = "Cây xanh ngã đổ chắn đường Nguyễn Văn Tiết";
    deliver(&system, &text_event("2468458835296117003", "8d0e5b1a0c2f4e31", marker));
    wait_for_text(&system, marker);
    let mut texts: Vec<String> = zalo_tickets(&system).iter().map(|t| t["text"].as_str().unwrap_or("").to_owned()).collect();
    texts.sort();
    let mut expected = [grouped.clone(), marker.to_owned()];
    expected.sort();
    assert_eq!(texts, expected);
    let timeline = timeline_of(&system, &id);
    assert_eq!(crate::phone::types(&timeline), ["PetitionReceived", "PetitionCategorized", "PetitionRouted"], "{timeline}");
    assert_eq!(summaries(&timeline, "PetitionReceived").len(), 1);
    assert!(summaries(&timeline, "PetitionReceived")[0].contains("zalo"), "{timeline}");
}

/// What the Zalo OpenAPI stand-in received: (access token, user id, text) of every message request.
#[derive(Default)]
struct ZaloStandIn {
    requests: Mutex<Vec<(String, String, String)>>,
    /// The `error` to answer for a user instead of sending (Zalo's per-user refusals).
    refuse: Mutex<HashMap<String, i64>>,
}

impl ZaloStandIn {
    fn texts_to(&self, user: &str) -> Vec<String> {
        self.requests.lock().expect("lock").iter().filter(|(_, u, _)| u == user).map(|(_, _, t)| t.clone()).collect()
    }
}

/// `POST /v3.0/oa/message/cs` as Zalo documents it: the token in the `access_token` header, a JSON body
/// `{"recipient":{"user_id"},"message":{"text"}}`; HTTP 200 with `{"error":0,...,"data":{"message_id"}}` when sent,
/// HTTP 200 with a negative `error` when not (-216: access token invalid; -230: no interaction in 7 days).
async fn message_cs(
    axum::extract::State(z): axum::extract::State<Arc<ZaloStandIn>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::Json<Value> {
    let token = headers.get("access_token").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return axum::Json(json!({"error": -201, "message": "Parameters are invalid"}));
    };
    let json_body = headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("application/json"));
    let (Some(user), Some(text)) = (request["recipient"]["user_id"].as_str(), request["message"]["text"].as_str()) else {
        return axum::Json(json!({"error": -201, "message": "Parameters are invalid"}));
    };
    let n = {
        let mut requests = z.requests.lock().expect("lock");
        requests.push((token.clone(), user.to_owned(), text.to_owned()));
        requests.len()
    };
    if !json_body || token != ACCESS_TOKEN {
        return axum::Json(json!({"error": -216, "message": "Access token is invalid"}));
    }
    if let Some(code) = z.refuse.lock().expect("lock").get(user) {
        return axum::Json(json!({"error": code, "message": "User has not interacted with the OA in the past 7 days"}));
    }
    axum::Json(json!({
        "data": {"message_id": format!("e2e-zmsg-{n}"), "user_id": user, "quota": {"quota_type": "reply", "remain": "7", "total": "8"}},
        "error": 0,
        "message": "Success"
    }))
}

/// Serves the stand-in on a free port of a runtime of its own; returns the runtime (keep it) and the base URL.
fn zalo_stand_in(state: Arc<ZaloStandIn>) -> (tokio::runtime::Runtime, String) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = axum::Router::new().route("/v3.0/oa/message/cs", axum::routing::post(message_cs)).with_state(state);
    runtime.spawn(async move { axum::serve(listener, app).await });
    (runtime, base)
}

fn zalo_env(base: &str) -> Vec<(&'static str, String)> {
    vec![
        ("HOTLINE_ZALO__OA_SECRET_KEY", OA_KEY.to_owned()),
        ("HOTLINE_ZALO__API_BASE", base.to_owned()),
        ("HOTLINE_ZALO__ACCESS_TOKEN", ACCESS_TOKEN.to_owned()),
        ("HOTLINE_ZALO__GROUP_WINDOW_SECS", "1".to_owned()),
    ]
}

#[test]
fn an_agency_and_a_citizen_talk_on_zalo_question_reply_and_answer() {
    let zalo = Arc::new(ZaloStandIn::default());
    let (_runtime, base) = zalo_stand_in(zalo.clone());
    let env = zalo_env(&base);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let system = System::start(binary(), &env);
    let dot = token(&system, "agency", Some("dot"));
    let citizen = "2468458835296117101";

    let text = "Đèn tín hiệu giao thông ở ngã tư 550 bị hỏng";
    deliver(&system, &text_event(citizen, "9a0e5b1a0c2f4e01", text));
    let t = wait_for_text(&system, text);
    assert_eq!((t["status"].as_str(), t["agency"].as_str()), (Some("routed"), Some("dot")), "{t}");
    let id = t["ticket_id"].as_str().expect("id").to_owned();

    // The agency asks: the question goes to the citizen's Zalo id with the OA's token.
    assert_eq!(act(&system, &dot, &id, "acknowledge", json!({})).status, 200);
    let question = "Đèn hỏng ở hướng nào của ngã tư ạ?";
    let r = act(&system, &dot, &id, "request-info", json!({"question": question}));
    assert_eq!(r.status, 200, "{}", r.text());
    let timeline = wait_for_events(&system, &id, "ReplySent", 1);
    assert_eq!(summaries(&timeline, "ReplySent"), ["Question delivered to the citizen via zalo"], "{timeline}");
    assert_eq!(zalo.requests.lock().expect("lock").clone(), [(ACCESS_TOKEN.to_owned(), citizen.to_owned(), question.to_owned())]);
    system.wait_for_ticket(&id, WAIT, |t| t["status"] == "waiting_for_citizen");

    // The citizen just writes back on Zalo, no reference: the reply to the question, on the same ticket.
    let reply = "Hướng từ chợ Thủ Dầu Một đi lên";
    deliver(&system, &text_event(citizen, "9a0e5b1a0c2f4e02", reply));
    wait_for_events(&system, &id, "CitizenReplied", 1);
    system.wait_for_ticket(&id, WAIT, |t| t["status"] == "acknowledged");

    // The answer goes out on Zalo too.
    let answer = "Sở GTVT đã thay bộ điều khiển đèn tín hiệu hướng chợ Thủ Dầu Một.";
    assert_eq!(act(&system, &dot, &id, "answer", json!({"text": answer})).status, 200);
    let timeline = wait_for_events(&system, &id, "ReplySent", 2);
    assert_eq!(zalo.texts_to(citizen), [question, answer]);
    assert_eq!(summaries(&timeline, "ReplyFailed").len(), 0, "{timeline}");
    assert_eq!(summaries(&timeline, "CitizenReplied").len(), 1, "{timeline}");
    // The reply made no ticket of its own: the answered ticket left the open queue, and nothing else is there.
    system.wait_for_ticket(&id, WAIT, |t| t["status"] == "answered");
    assert_eq!(zalo_tickets(&system), Vec::<Value>::new());
}

#[test]
fn an_answer_the_oa_may_not_send_goes_by_sms_to_the_number_the_citizen_shared() {
    let zalo = Arc::new(ZaloStandIn::default());
    let (_zalo_runtime, base) = zalo_stand_in(zalo.clone());
    let esms = Arc::new(EsmsStandIn::default());
    let (_esms_runtime, sms_env) = esms_stand_in(esms.clone());
    let env: Vec<(&str, String)> = zalo_env(&base).into_iter().chain(sms_env).collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let system = System::start(binary(), &env);
    let evn = token(&system, "agency", Some("evn"));
    let citizen = "2468458835296117201";

    // The citizen shares their number through the OA's form, then writes.
    let info = json!({"info": {"name": "Nguyễn Văn Dân", "phone": "0912 000 301", "address": "Phú Cường", "city": "Bình Dương"}});
    deliver(&system, &event_at(APP_ID, citizen, "user_submit_info", info, now_ms()));
    let text = "Mất điện cả khu phố 3 phường Phú Cường từ 6 giờ sáng";
    deliver(&system, &text_event(citizen, "7b0e5b1a0c2f4e01", text));
    let t = wait_for_text(&system, text);
    assert_eq!((t["status"].as_str(), t["agency"].as_str()), (Some("routed"), Some("evn")), "{t}");
    let id = t["ticket_id"].as_str().expect("id").to_owned();

    // Days later the OA may not message them any more (-230): the answer fails on Zalo and goes by SMS.
    zalo.refuse.lock().expect("lock").insert(citizen.to_owned(), -230);
    assert_eq!(act(&system, &evn, &id, "acknowledge", json!({})).status, 200);
    let answer = "Điện lực Bình Dương đã khắc phục sự cố, điện đã có lại lúc 10 giờ.";
    assert_eq!(act(&system, &evn, &id, "answer", json!({"text": answer})).status, 200);
    let timeline = wait_for_events(&system, &id, "ReplySent", 1);
    let outcomes: Vec<(String, String)> = crate::phone::entries(&timeline)
        .iter()
        .filter(|e| e["type"] == "ReplyFailed" || e["type"] == "ReplySent")
        .map(|e| (e["type"].as_str().unwrap_or("").to_owned(), e["summary"].as_str().unwrap_or("").to_owned()))
        .collect();
    assert_eq!(outcomes.len(), 2, "{timeline}");
    assert_eq!(outcomes[0].0, "ReplyFailed", "{timeline}");
    assert!(
        outcomes[0].1.starts_with("Answer could not be delivered via zalo: ") && outcomes[0].1.contains("-230"),
        "{timeline}"
    );
    assert_eq!(outcomes[1], ("ReplySent".to_owned(), "Answer delivered to the citizen via sms".to_owned()), "{timeline}");
    assert_eq!(zalo.texts_to(citizen), [answer], "the OA was asked once");
    let sms = wait_for_sms(&esms, &event_id(&timeline, "PetitionAnswered"));
    assert_eq!((sms["Phone"].as_str(), sms["Content"].as_str()), (Some("84912000301"), Some(answer)), "{sms}");
    assert_eq!(esms.requests.lock().expect("lock").len(), 1);
    system.wait_for_ticket(&id, WAIT, |t| t["status"] == "answered");
}
