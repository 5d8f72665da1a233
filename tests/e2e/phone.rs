//! The phone channel through the real binary: a call-taker files a call on `hotline up`'s HTTP port (operator token),
//! the PBX's signed call events join the same ticket whether they come before or after the filing, answers go to
//! mobile callers through a local stand-in of eSMS's send API, landline callers land in the operators' call-back
//! queue, and `hotline serve phone` runs alone against the NATS of a running system. Assertions read the API
//! (ticket, timeline, queue), never log lines.
//!
//! The PBX signatures are computed with the channel crate's public `pbx::generic::sign`, which its own tests pin to
//! the vector of docs/channels/phone.md.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hotline_channel_phone::pbx::generic;
use hotline_testkit::{Response, System};
use serde_json::{Value, json};

use crate::binary;

const PBX_SECRET: &str = "generic-secret-e2e-0123456789";
pub(crate) const WAIT: Duration = Duration::from_secs(20);

pub(crate) fn token(system: &System, role: &str, agency: Option<&str>) -> String {
    let mut body = json!({"role": role, "name": "Trần Thị Tổng Đài"});
    if let Some(a) = agency {
        body["agency"] = json!(a);
    }
    let auth = format!("Bearer {}", system.admin_token);
    let r = system.request("POST", "/v1/admin/tokens", &[("Authorization", &auth), ("Content-Type", "application/json")], body.to_string().as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["token"].as_str().expect("token").to_owned()
}

pub(crate) fn act(system: &System, token: &str, ticket: &str, command: &str, body: Value) -> Response {
    let auth = format!("Bearer {token}");
    system.request("POST", &format!("/v1/tickets/{ticket}/{command}"), &[("Authorization", &auth), ("Content-Type", "application/json")], body.to_string().as_bytes())
}

/// The ticket's timeline with English summaries.
pub(crate) fn timeline_of(system: &System, ticket: &str) -> Value {
    let auth = format!("Bearer {}", system.admin_token);
    let r = system.request("GET", &format!("/v1/tickets/{ticket}/timeline"), &[("Authorization", &auth), ("Accept-Language", "en")], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

pub(crate) fn entries(timeline: &Value) -> &Vec<Value> {
    timeline["entries"].as_array().expect("entries")
}

/// The summaries of the timeline's events of `event_type`, in order.
pub(crate) fn summaries(timeline: &Value, event_type: &str) -> Vec<String> {
    entries(timeline).iter().filter(|e| e["type"] == event_type).map(|e| e["summary"].as_str().unwrap_or("").to_owned()).collect()
}

pub(crate) fn types(timeline: &Value) -> Vec<String> {
    entries(timeline).iter().map(|e| e["type"].as_str().unwrap_or("").to_owned()).collect()
}

/// Waits until the ticket's timeline holds `n` events of `event_type`.
pub(crate) fn wait_for_events(system: &System, ticket: &str, event_type: &str, n: usize) -> Value {
    let start = Instant::now();
    loop {
        let t = timeline_of(system, ticket);
        if summaries(&t, event_type).len() >= n {
            return t;
        }
        assert!(start.elapsed() < WAIT, "no {n} × {event_type} on {ticket}: {t}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn event_id(timeline: &Value, event_type: &str) -> String {
    entries(timeline).iter().find(|e| e["type"] == event_type).and_then(|e| e["event_id"].as_str()).expect("event").to_owned()
}

/// `GET /v1/queue` with `token` and `query`: the tickets.
pub(crate) fn queue(system: &System, token: &str, query: &str) -> Vec<Value> {
    let auth = format!("Bearer {token}");
    let r = system.request("GET", &format!("/v1/queue{query}"), &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["tickets"].as_array().expect("tickets").clone()
}

/// What the eSMS stand-in received.
#[derive(Default)]
pub(crate) struct EsmsStandIn {
    pub requests: Mutex<Vec<Value>>,
}

/// eSMS's `SendMultipleMessage_V4_post_json` as documented: a JSON body with the credentials, `CodeResult` "100"
/// and an `SMSID` when accepted, "101" for bad credentials, "124" for a RequestId already used.
async fn esms_send(axum::extract::State(s): axum::extract::State<Arc<EsmsStandIn>>, body: axum::body::Bytes) -> axum::Json<Value> {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return axum::Json(json!({"CodeResult": "99", "ErrorMessage": "Invalid JSON"})),
    };
    let mut requests = s.requests.lock().expect("lock");
    let used = requests.iter().any(|r| r["RequestId"] == request["RequestId"]);
    requests.push(request.clone());
    let n = requests.len();
    drop(requests);
    if request["ApiKey"] != "api-e2e" || request["SecretKey"] != "secret-e2e" {
        return axum::Json(json!({"CodeResult": "101", "ErrorMessage": "Authorize Failed"}));
    }
    if used {
        return axum::Json(json!({"CodeResult": "124", "ErrorMessage": "Duplicate RequestId"}));
    }
    axum::Json(json!({"CodeResult": "100", "CountRegenerate": 0, "SMSID": format!("e2e-{n}")}))
}

/// Serves the eSMS stand-in on a free port of a runtime of its own; returns the runtime (keep it) and the env
/// that makes the system send SMS through it.
pub(crate) fn esms_stand_in(state: Arc<EsmsStandIn>) -> (tokio::runtime::Runtime, Vec<(&'static str, String)>) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route("/MainService.svc/json/SendMultipleMessage_V4_post_json/", axum::routing::post(esms_send))
        .with_state(state);
    runtime.spawn(async move { axum::serve(listener, app).await });
    let env = vec![
        ("HOTLINE_SMS__SEND", "esms".to_owned()),
        ("HOTLINE_SMS__ESMS__API_KEY", "api-e2e".to_owned()),
        ("HOTLINE_SMS__ESMS__SECRET_KEY", "secret-e2e".to_owned()),
        ("HOTLINE_SMS__ESMS__BRANDNAME", "UBND-BD".to_owned()),
        ("HOTLINE_SMS__ESMS__API_BASE", base),
    ];
    (runtime, env)
}

/// Waits until the eSMS stand-in got a request whose RequestId is `event_id`.
pub(crate) fn wait_for_sms(stand_in: &EsmsStandIn, event_id: &str) -> Value {
    let start = Instant::now();
    loop {
        if let Some(r) = stand_in.requests.lock().expect("lock").iter().find(|r| r["RequestId"] == event_id) {
            return r.clone();
        }
        assert!(start.elapsed() < WAIT, "no SMS with RequestId {event_id}: {:?}", stand_in.requests.lock().expect("lock"));
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn intake(addr: &str, token: &str, body: &Value) -> Response {
    let auth = format!("Bearer {token}");
    hotline_testkit::http("POST", addr, "/v1/phone/intake", &[("Authorization", &auth), ("Content-Type", "application/json")], body.to_string().as_bytes())
        .expect("phone intake")
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64
}

/// A PBX call event through the generic webhook, signed with `secret` at `timestamp`.
fn pbx_event(system: &System, body: &Value, secret: &str, timestamp: i64) -> Response {
    let body = body.to_string();
    let signature = generic::sign(secret, timestamp, body.as_bytes());
    let ts = timestamp.to_string();
    system.request(
        "POST",
        "/v1/phone/events/generic",
        &[("Content-Type", "application/json"), ("X-Hotline-Timestamp", &ts), ("X-Hotline-Signature", &signature)],
        body.as_bytes(),
    )
}

#[test]
fn a_call_taker_files_a_call_once_and_the_pbx_events_join_its_ticket_once() {
    let system = System::start(binary(), &[("HOTLINE_PHONE__GENERIC__SECRET", PBX_SECRET)]);
    let operator = token(&system, "operator", None);
    let dot = token(&system, "agency", Some("dot"));
    let call = "1717000000.42";

    // The PBX reports the call's start before anyone filed it: kept, waiting for the petition.
    let started = json!({"call_id": call, "event": "started", "at": "2025-01-01T08:00:00+07:00", "direction": "inbound"});
    let started_at = now_secs();
    let r = pbx_event(&system, &started, PBX_SECRET, started_at);
    assert_eq!((r.status, r.json()), (200, json!({"accepted": 1, "pending": true})), "{}", r.text());
    // Signed with another secret, or a captured request replayed later: refused, nothing kept.
    let forged = json!({"call_id": call, "event": "ended", "duration_secs": 7, "cause": "FORGED"});
    let r = pbx_event(&system, &forged, "not-the-generic-secret", now_secs());
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (401, Some("invalid_signature")), "{}", r.text());
    let r = pbx_event(&system, &forged, PBX_SECRET, now_secs() - 3600);
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (401, Some("stale_timestamp")), "{}", r.text());

    let summary = "Đèn tín hiệu giao thông ở ngã tư Sở Sao bị hỏng từ sáng, xe cộ lộn xộn";
    let filing = json!({
        "call_id": call,
        "caller_number": "0912 000 401",
        "agent": "101",
        "summary": summary,
    });
    // Only the hotline desk files calls: an agency's token is refused, no token is unauthorised.
    let r = intake(&system.addr, &dot, &filing);
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (403, Some("forbidden")), "{}", r.text());
    let r = hotline_testkit::http("POST", &system.addr, "/v1/phone/intake", &[("Content-Type", "application/json")], filing.to_string().as_bytes()).expect("intake");
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.json()["error"]["code"].is_string(), "{}", r.text());

    let r = intake(&system.addr, &operator, &filing);
    assert_eq!(r.status, 202, "{}", r.text());
    let filed = r.json();
    assert_eq!(filed["duplicate"], false, "{filed}");
    let id = filed["ticket_id"].as_str().expect("ticket_id").to_owned();
    let t = system.wait_for_ticket(&id, WAIT, |t| t["status"] == "routed");
    assert_eq!(
        (t["channel"].as_str(), t["text"].as_str(), t["reference"].as_str(), t["agency"].as_str()),
        (Some("phone"), Some(summary), filed["reference"].as_str(), Some("dot")),
        "{t}"
    );

    // The call-taker's screen retries: the same ticket, nothing new.
    let r = intake(&system.addr, &operator, &filing);
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!((r.json()["ticket_id"].as_str(), r.json()["duplicate"].as_bool()), (Some(id.as_str()), Some(true)), "{}", r.text());
    // The same call id with other content is a conflict, not a second ticket.
    let other = json!({"call_id": call, "caller_number": "0912 000 401", "agent": "101", "summary": "Nội dung khác hẳn"});
    let r = intake(&system.addr, &operator, &other);
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (409, Some("call_already_filed")), "{}", r.text());

    // The end of the call, after the filing: straight onto the ticket.
    let ended = json!({"call_id": call, "event": "ended", "duration_secs": 95, "talk_secs": 80, "cause": "NORMAL_CLEARING"});
    let ended_at = now_secs();
    let r = pbx_event(&system, &ended, PBX_SECRET, ended_at);
    assert_eq!((r.status, r.json()), (200, json!({"accepted": 1, "pending": false})), "{}", r.text());

    // The PBX delivers both again (its retry after a lost answer): accepted, recorded nowhere a second time.
    for (body, at) in [(&started, started_at), (&ended, ended_at)] {
        let r = pbx_event(&system, body, PBX_SECRET, at);
        assert_eq!((r.status, r.json()["pending"].as_bool()), (200, Some(false)), "{}", r.text());
    }
    // A new fact after the repeats: once it is projected, everything before it is too.
    let recording = json!({"call_id": call, "event": "recording", "recording_ref": "https://pbx.example.vn/rec/1717000000.42.wav"});
    assert_eq!(pbx_event(&system, &recording, PBX_SECRET, now_secs()).status, 200);
    let timeline = wait_for_events(&system, &id, "CallLogged", 4);
    assert_eq!(
        summaries(&timeline, "CallLogged"),
        [
            "Call answered (agent 101) [intake]",
            "Call reached the hotline [generic]",
            "Call ended after 95 s (NORMAL_CLEARING) [generic]",
            "Call recording available [generic]",
        ],
        "{timeline}"
    );
    assert_eq!(summaries(&timeline, "PetitionReceived").len(), 1, "{timeline}");
    // Nothing of the forged event anywhere.
    assert!(!timeline.to_string().contains("FORGED"), "{timeline}");
    let phone_tickets: Vec<Value> = queue(&system, &operator, "").into_iter().filter(|t| t["channel"] == "phone").collect();
    assert_eq!(phone_tickets.len(), 1, "{phone_tickets:?}");
}

#[test]
fn answers_reach_mobile_callers_by_sms_and_landline_callers_through_the_call_back_queue() {
    let stand_in = Arc::new(EsmsStandIn::default());
    let (_runtime, env) = esms_stand_in(stand_in.clone());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let system = System::start(binary(), &env);
    let operator = token(&system, "operator", None);
    let evn = token(&system, "agency", Some("evn"));

    let file = |call: &str, number: &str, summary: &str| {
        let r = intake(&system.addr, &operator, &json!({"call_id": call, "caller_number": number, "agent": "102", "summary": summary, "category": "electricity"}));
        assert_eq!(r.status, 202, "{}", r.text());
        let id = r.json()["ticket_id"].as_str().expect("ticket_id").to_owned();
        system.wait_for_ticket(&id, WAIT, |t| t["status"] == "routed" && t["agency"] == "evn");
        id
    };
    let mobile = file("call-vn-1-E2E0001", "0912 000 501", "Mất điện cả khu phố 3 phường Phú Cường từ 6 giờ sáng");
    let landline = file("call-vn-1-E2E0002", "0274 3822 123", "Cột điện nghiêng sắp đổ trước số 12 Đại lộ Bình Dương");

    let answer = |id: &str, text: &str| {
        assert_eq!(act(&system, &evn, id, "acknowledge", json!({})).status, 200);
        let r = act(&system, &evn, id, "answer", json!({"text": text}));
        assert_eq!(r.status, 200, "{}", r.text());
    };

    // A mobile caller gets the answer by SMS, keyed by the answer's event id.
    let text = "Điện lực Bình Dương đã khắc phục sự cố, điện đã có lại lúc 10 giờ.";
    answer(&mobile, text);
    let timeline = wait_for_events(&system, &mobile, "ReplySent", 1);
    assert_eq!(summaries(&timeline, "ReplySent"), ["Answer delivered to the citizen via sms"], "{timeline}");
    let sms = wait_for_sms(&stand_in, &event_id(&timeline, "PetitionAnswered"));
    assert_eq!((sms["Phone"].as_str(), sms["Content"].as_str(), sms["Brandname"].as_str()), (Some("84912000501"), Some(text), Some("UBND-BD")), "{sms}");

    // A landline caller cannot get an SMS: the failure says so and the ticket waits for a call back.
    answer(&landline, "Điện lực đã cử đội đến chằng néo cột điện.");
    let timeline = wait_for_events(&system, &landline, "ReplyFailed", 1);
    let failed = summaries(&timeline, "ReplyFailed");
    assert!(
        failed.len() == 1 && failed[0].starts_with("Answer could not be delivered via sms: no mobile number"),
        "{timeline}"
    );
    let t = system.wait_for_ticket(&landline, WAIT, |t| t["callback_due"] == true);
    assert_eq!(t["status"], "answered", "{t}");
    let ids = |tickets: Vec<Value>| tickets.iter().map(|t| t["ticket_id"].as_str().unwrap_or("").to_owned()).collect::<Vec<_>>();
    assert_eq!(ids(queue(&system, &operator, "?callback=true")), [landline.as_str()]);
    assert!(!ids(queue(&system, &operator, "?callback=false")).contains(&landline));

    // Only the desk records the call back; then it leaves the queue, and there is nothing left to record.
    let note = json!({"note": "Đã gọi lại, công dân đã nghe câu trả lời"});
    assert_eq!(act(&system, &evn, &landline, "callback-done", note.clone()).status, 403);
    let r = act(&system, &operator, &landline, "callback-done", note.clone());
    assert_eq!(r.status, 200, "{}", r.text());
    system.wait_for_ticket(&landline, WAIT, |t| t["callback_due"] == false);
    assert!(queue(&system, &operator, "?callback=true").is_empty());
    let timeline = timeline_of(&system, &landline);
    assert_eq!(summaries(&timeline, "CallbackDone"), ["The citizen was called back: Đã gọi lại, công dân đã nghe câu trả lời"]);
    let r = act(&system, &operator, &landline, "callback-done", note);
    assert_eq!((r.status, r.json()["error"]["code"].is_string()), (409, true), "{}", r.text());

    // One SMS went out in all, and each answer has exactly one outcome: no channel claims another failure.
    assert_eq!(stand_in.requests.lock().expect("lock").len(), 1);
    for id in [&mobile, &landline] {
        let t = timeline_of(&system, id);
        let outcomes = summaries(&t, "ReplySent").len() + summaries(&t, "ReplyFailed").len();
        assert_eq!(outcomes, 1, "{t}");
    }
}

#[test]
fn hotline_serve_phone_runs_alone_against_the_nats_of_a_running_system() {
    let system = System::start(binary(), &[]);
    let operator = token(&system, "operator", None);
    let nats = std::fs::read_to_string(system.data_dir.join("nats.url")).expect("nats.url");
    let dir = tempfile::tempdir().expect("tmp");
    let served = crate::serve("phone", &["--http", "127.0.0.1:0"], nats.trim(), dir.path(), &[("HOTLINE_ADMIN_TOKEN", None)], Some("hotline: phone intake listening on http://"));
    let addr = served.addr.clone().expect("serve phone prints its address");

    // The token was made on the main system: the separate process knows it from the shared registry.
    let summary = "Nước máy đục và có mùi lạ ở phường Hiệp Thành mấy hôm nay";
    let filing = json!({"call_id": "1717000100.7", "caller_number": "0912 000 601", "agent": "103", "summary": summary});
    let r = intake(&addr, &operator, &filing);
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["ticket_id"].as_str().expect("ticket_id").to_owned();
    let t = system.wait_for_ticket(&id, WAIT, |t| t["status"] == "routed");
    assert_eq!((t["channel"].as_str(), t["text"].as_str(), t["agency"].as_str()), (Some("phone"), Some(summary), Some("water")), "{t}");
    // An unknown token is refused there too.
    let r = intake(&addr, "not-a-token", &filing);
    assert_eq!(r.status, 401, "{}", r.text());
    let timeline = wait_for_events(&system, &id, "CallLogged", 1);
    assert_eq!(summaries(&timeline, "CallLogged"), ["Call answered (agent 103) [intake]"]);
}
