//! The SMS channel through the real binary: eSMS and Twilio webhooks on `hotline up`'s HTTP port open and join
//! tickets, answers and questions go out through a local stand-in of eSMS's send API, and `hotline serve sms`
//! runs alone against the NATS of a running system. Assertions read the API (ticket, timeline) and the
//! projection file, never log lines.
//!
//! The webhook signatures are computed with the channel crate's public `esms::sign` / `twilio::signature`, which
//! its own tests pin to eSMS's formula and Twilio's published test vectors.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hotline_channel_sms::webhook::{esms, twilio};
use hotline_testkit::{Response, System};
use serde_json::{Value, json};

use crate::binary;

const ESMS_KEY: &str = "pk-e2e-secret";
const RECEIVER_TIME: &str = "20250101120000";
const TWILIO_TOKEN: &str = "tw-e2e-token";
const TWILIO_URL: &str = "https://hotline.example.vn/v1/sms/twilio";
const WAIT: Duration = Duration::from_secs(15);

/// Percent-encoding for a query string or form body (space as `+`), written here rather than taken from the
/// channel so the requests are built independently of the code that parses them.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The query of an eSMS MO callback, as eSMS calls it, signed with `key`.
fn esms_path(sender: &str, smsid: &str, content: &str, key: &str) -> String {
    let sign = esms::sign("cp1022", smsid, content.as_bytes(), RECEIVER_TIME, key);
    format!(
        "/v1/sms/esms?sender={sender}&content={}&serviceNumber=8079&keyword=PA&sign={sign}&cpid=cp1022&smsid={smsid}&receiverTime={RECEIVER_TIME}",
        encode(content)
    )
}

/// A citizen's SMS through the eSMS MO webhook at `addr` (`host:port`).
fn esms_mo(addr: &str, sender: &str, smsid: &str, content: &str) -> Response {
    hotline_testkit::http("GET", addr, &esms_path(sender, smsid, content, ESMS_KEY), &[], b"").expect("eSMS MO")
}

/// The reference in eSMS's XML answer: the acknowledgement for a new ticket, or the note for a follow-up.
fn reference_in(r: &Response) -> String {
    let text = r.text();
    assert_eq!(r.status, 200, "{text}");
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/xml")), "{:?}", r.headers);
    let message = text
        .split("<Message>")
        .nth(1)
        .and_then(|m| m.split("</Message>").next())
        .unwrap_or_else(|| panic!("no <Message> in {text}"));
    let reference = message
        .strip_prefix("Duong day nong da nhan phan anh cua ban. Ma so tra cuu: ")
        .or_else(|| message.strip_prefix("Da nhan tin nhan bo sung cho phan anh ").and_then(|m| m.strip_suffix('.')))
        .unwrap_or_else(|| panic!("no reference in {text}"));
    reference.to_owned()
}

fn token(system: &System, role: &str, agency: Option<&str>) -> String {
    let mut body = json!({"role": role, "name": "Lê Văn Cán Bộ"});
    if let Some(a) = agency {
        body["agency"] = json!(a);
    }
    let auth = format!("Bearer {}", system.admin_token);
    let r = system.request("POST", "/v1/admin/tokens", &[("Authorization", &auth), ("Content-Type", "application/json")], body.to_string().as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["token"].as_str().expect("token").to_owned()
}

fn act(system: &System, token: &str, ticket: &str, command: &str, body: Value) -> Response {
    let auth = format!("Bearer {token}");
    system.request("POST", &format!("/v1/tickets/{ticket}/{command}"), &[("Authorization", &auth), ("Content-Type", "application/json")], body.to_string().as_bytes())
}

fn entries(timeline: &Value) -> &Vec<Value> {
    timeline["entries"].as_array().expect("entries")
}

fn count(timeline: &Value, event_type: &str) -> usize {
    entries(timeline).iter().filter(|e| e["type"] == event_type).count()
}

/// Waits until the ticket's timeline holds `n` events of `event_type`.
fn wait_for_events(system: &System, ticket: &str, event_type: &str, n: usize) -> Value {
    let start = Instant::now();
    loop {
        let r = system.get(&format!("/v1/tickets/{ticket}/timeline"));
        if r.status == 200 && count(&r.json(), event_type) >= n {
            return r.json();
        }
        // A reply the channel gave up on will not turn into a sent one: say so at once.
        assert!(event_type != "ReplySent" || r.status != 200 || count(&r.json(), "ReplyFailed") == 0, "a reply failed: {}", r.text());
        assert!(start.elapsed() < WAIT, "no {n} × {event_type} on {ticket}: {} {}", r.status, r.text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The projected tickets as (ticket_id, reference, channel, text).
fn projected(system: &System) -> Vec<(String, String, String, String)> {
    let conn = rusqlite::Connection::open(system.data_dir.join("projections.sqlite")).expect("open projections");
    let mut statement = conn.prepare("SELECT ticket_id, reference, channel, text FROM tickets").expect("prepare");
    statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

/// Waits until a projected ticket has `text`; returns its row.
fn wait_for_text(system: &System, text: &str) -> (String, String, String, String) {
    let start = Instant::now();
    loop {
        if let Some(row) = projected(system).into_iter().find(|t| t.3 == text) {
            return row;
        }
        assert!(start.elapsed() < WAIT, "no ticket with {text:?}: {:?}", projected(system));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_esms_mo_opens_a_routed_ticket_once_and_a_bad_sign_stores_nothing() {
    let system = System::start(binary(), &[("HOTLINE_SMS__ESMS__PRIVATE_KEY", ESMS_KEY)]);
    let text = "Đèn tín hiệu giao thông ở ngã tư Sở Sao bị hỏng từ sáng, xe cộ lộn xộn";
    let r = esms_mo(&system.addr, "84912000001", "700001", text);
    let reference = reference_in(&r);
    assert!(r.text().ends_with("<Smsid>700001</Smsid><Receiver>84912000001</Receiver></ClientResponse>"), "{}", r.text());
    assert!(r.text().contains("Duong day nong da nhan phan anh cua ban"), "a new ticket: {}", r.text());

    let t = system.wait_for_ticket(&reference, WAIT, |t| t["status"] == "routed");
    assert_eq!(
        (t["channel"].as_str(), t["text"].as_str(), t["category"].as_str(), t["agency"].as_str()),
        (Some("sms"), Some(text), Some("traffic_infrastructure"), Some("dot")),
        "{t}"
    );
    let id = t["ticket_id"].as_str().expect("id").to_owned();

    // eSMS calling again with the same smsid (its answer got lost): the same answer, nothing new stored.
    let again = esms_mo(&system.addr, "84912000001", "700001", text);
    assert_eq!((again.status, again.text()), (200, r.text()));

    // A sign made without the private key, and one for other content: 401 in the JSON error shape.
    let forged = esms_path("84912000002", "700002", "Tin giả mạo", "not-the-key");
    let r = system.request("GET", &forged, &[], b"");
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (401, Some("invalid_signature")), "{}", r.text());
    assert!(r.json()["error"]["message"].is_string(), "{}", r.text());
    let tampered = esms_path("84912000002", "700003", "Tin thật", ESMS_KEY).replace(&encode("Tin thật"), &encode("Tin sửa"));
    let r = system.request("GET", &tampered, &[], b"");
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (401, Some("invalid_signature")), "{}", r.text());
    let unsigned = esms_path("84912000002", "700005", "Tin không ký", ESMS_KEY);
    let unsigned = unsigned.split('&').filter(|p| !p.starts_with("sign=")).collect::<Vec<_>>().join("&");
    let r = system.request("GET", &unsigned, &[], b"");
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (401, Some("missing_signature")), "{}", r.text());

    // A later good message is projected after anything the refused or repeated ones could have stored: by then
    // there must be exactly the two tickets, and the first still has only what routing added.
    let marker = "Cây xanh ngã đổ chắn đường Nguyễn Văn Tiết";
    reference_in(&esms_mo(&system.addr, "84912000003", "700004", marker));
    wait_for_text(&system, marker);
    let mut texts: Vec<String> = projected(&system).into_iter().map(|t| t.3).collect();
    texts.sort();
    let mut expected = [text, marker];
    expected.sort();
    assert_eq!(texts, expected);
    let timeline = system.get(&format!("/v1/tickets/{id}/timeline")).json();
    let types: Vec<&str> = entries(&timeline).iter().map(|e| e["type"].as_str().unwrap_or("")).collect();
    assert_eq!(types, ["PetitionReceived", "PetitionCategorized", "PetitionRouted"], "{timeline}");
}

/// What the eSMS stand-in received, and the RequestIds it has seen.
#[derive(Default)]
struct EsmsStandIn {
    requests: Mutex<Vec<Value>>,
}

/// eSMS's `SendMultipleMessage_V4_post_json` as documented: a JSON body with the credentials, `CodeResult` "100"
/// and an `SMSID` when accepted, "101" for bad credentials, "124" for a RequestId already used.
async fn esms_send(
    axum::extract::State(s): axum::extract::State<Arc<EsmsStandIn>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::Json<Value> {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return axum::Json(json!({"CodeResult": "99", "ErrorMessage": "Invalid JSON"})),
    };
    let json_body = headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("application/json"));
    let mut requests = s.requests.lock().expect("lock");
    let used = requests.iter().any(|r| r["RequestId"] == request["RequestId"]);
    requests.push(request.clone());
    let n = requests.len();
    drop(requests);
    if !json_body || request["ApiKey"] != "api-e2e" || request["SecretKey"] != "secret-e2e" {
        return axum::Json(json!({"CodeResult": "101", "ErrorMessage": "Authorize Failed"}));
    }
    if used {
        return axum::Json(json!({"CodeResult": "124", "ErrorMessage": "Duplicate RequestId"}));
    }
    axum::Json(json!({"CodeResult": "100", "CountRegenerate": 0, "SMSID": format!("e2e-{n}")}))
}

/// Serves the stand-in on a free port of a runtime of its own; returns the runtime (keep it) and the base URL.
fn esms_stand_in(state: Arc<EsmsStandIn>) -> (tokio::runtime::Runtime, String) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route("/MainService.svc/json/SendMultipleMessage_V4_post_json/", axum::routing::post(esms_send))
        .with_state(state);
    runtime.spawn(async move { axum::serve(listener, app).await });
    (runtime, base)
}

/// Waits until the stand-in got a request whose RequestId is `event_id`.
fn wait_for_sms(stand_in: &EsmsStandIn, event_id: &str) -> Value {
    let start = Instant::now();
    loop {
        if let Some(r) = stand_in.requests.lock().expect("lock").iter().find(|r| r["RequestId"] == event_id) {
            return r.clone();
        }
        assert!(start.elapsed() < WAIT, "no SMS with RequestId {event_id}: {:?}", stand_in.requests.lock().expect("lock"));
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn event_id(timeline: &Value, event_type: &str) -> String {
    entries(timeline).iter().find(|e| e["type"] == event_type).and_then(|e| e["event_id"].as_str()).expect("event").to_owned()
}

#[test]
fn an_agency_and_a_citizen_talk_by_sms_questions_replies_answers_and_follow_ups() {
    let stand_in = Arc::new(EsmsStandIn::default());
    let (_runtime, base) = esms_stand_in(stand_in.clone());
    let system = System::start(
        binary(),
        &[
            ("HOTLINE_SMS__SEND", "esms"),
            ("HOTLINE_SMS__ESMS__PRIVATE_KEY", ESMS_KEY),
            ("HOTLINE_SMS__ESMS__API_KEY", "api-e2e"),
            ("HOTLINE_SMS__ESMS__SECRET_KEY", "secret-e2e"),
            ("HOTLINE_SMS__ESMS__BRANDNAME", "UBND-BD"),
            ("HOTLINE_SMS__ESMS__API_BASE", &base),
        ],
    );
    let dot = token(&system, "agency", Some("dot"));
    let citizen = "84912000010";

    let reference = reference_in(&esms_mo(&system.addr, citizen, "710001", "Đèn tín hiệu giao thông ở ngã tư 550 bị hỏng"));
    let t = system.wait_for_ticket(&reference, WAIT, |t| t["status"] == "routed" && t["agency"] == "dot");
    let id = t["ticket_id"].as_str().expect("id").to_owned();

    // The agency acknowledges and asks: the question goes to the citizen's number, keyed by its event id.
    assert_eq!(act(&system, &dot, &id, "acknowledge", json!({})).status, 200);
    let question = "Đèn hỏng ở hướng nào của ngã tư ạ?";
    let r = act(&system, &dot, &id, "request-info", json!({"question": question}));
    assert_eq!(r.status, 200, "{}", r.text());
    let timeline = wait_for_events(&system, &id, "ReplySent", 1);
    let asked = event_id(&timeline, "InformationRequested");
    let sms = wait_for_sms(&stand_in, &asked);
    assert_eq!(
        (sms["Phone"].as_str(), sms["Content"].as_str(), sms["Brandname"].as_str(), sms["IsUnicode"].as_str()),
        (Some(citizen), Some(question), Some("UBND-BD"), Some("1")),
        "{sms}"
    );
    system.wait_for_ticket(&id, WAIT, |t| t["status"] == "waiting_for_citizen");

    // The citizen just answers, without the reference: it is the reply to the question.
    let reply = "Hướng từ chợ Thủ Dầu Một đi lên";
    let r = esms_mo(&system.addr, citizen, "710002", reply);
    assert_eq!(reference_in(&r), reference, "{}", r.text());
    assert!(r.text().contains("Da nhan tin nhan bo sung"), "a follow-up, not a new ticket: {}", r.text());
    wait_for_events(&system, &id, "CitizenReplied", 1);
    // Back to where it stood before the question.
    system.wait_for_ticket(&id, WAIT, |t| t["status"] == "acknowledged");

    // The answer goes out by SMS too.
    let answer = "Sở GTVT đã thay bộ điều khiển đèn tín hiệu hướng chợ Thủ Dầu Một.";
    assert_eq!(act(&system, &dot, &id, "answer", json!({"text": answer})).status, 200);
    let timeline = wait_for_events(&system, &id, "ReplySent", 2);
    let sms = wait_for_sms(&stand_in, &event_id(&timeline, "PetitionAnswered"));
    assert_eq!((sms["Phone"].as_str(), sms["Content"].as_str()), (Some(citizen), Some(answer)), "{sms}");

    // Later, quoting the reference: a message on the same ticket (nobody asked, so not a reply).
    let later = format!("Phản ánh {reference}: đèn lại nhấp nháy vào buổi tối");
    let r = esms_mo(&system.addr, citizen, "710003", &later);
    assert_eq!(reference_in(&r), reference);
    let timeline = wait_for_events(&system, &id, "CitizenWrote", 1);
    assert_eq!(count(&timeline, "CitizenReplied"), 1);

    // Someone else quoting that reference does not get into the ticket: a ticket of their own.
    let stranger = format!("Tôi cũng thấy vụ {reference}, đèn ngã tư 550 vẫn hỏng");
    let r = esms_mo(&system.addr, "84912000011", "710004", &stranger);
    let other = reference_in(&r);
    assert_ne!(other, reference);
    assert!(r.text().contains("Ma so tra cuu"), "{}", r.text());
    let (other_id, _, channel, _) = wait_for_text(&system, &stranger);
    assert_ne!(other_id, id);
    assert_eq!(channel, "sms");

    // Each reply went out exactly once, and the timeline says so.
    let timeline = system.get(&format!("/v1/tickets/{id}/timeline")).json();
    assert_eq!((count(&timeline, "ReplySent"), count(&timeline, "ReplyFailed"), count(&timeline, "CitizenWrote")), (2, 0, 1), "{timeline}");
    let sent: Vec<Value> = stand_in.requests.lock().expect("lock").clone();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.iter().all(|r| r["ApiKey"] == "api-e2e" && r["SmsType"] == "2" && r["Sandbox"] == "0"), "{sent:?}");
}

/// A Twilio inbound webhook body and its parameters.
fn twilio_form(sid: &str, from: &str, body: &str) -> (Vec<(String, String)>, Vec<u8>) {
    let pairs: Vec<(String, String)> = [
        ("ToCountry", "VN"),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("SmsSid", sid),
        ("SmsStatus", "received"),
        ("Body", body),
        ("To", "+841022"),
        ("NumSegments", "1"),
        ("MessageSid", sid),
        ("AccountSid", "AC0123456789"),
        ("From", from),
        ("ApiVersion", "2010-04-01"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let encoded = pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&");
    (pairs, encoded.into_bytes())
}

fn twilio_post(system: &System, signature: &str, body: &[u8]) -> Response {
    system.request(
        "POST",
        "/v1/sms/twilio",
        &[("Content-Type", "application/x-www-form-urlencoded"), ("X-Twilio-Signature", signature)],
        body,
    )
}

#[test]
fn a_signed_twilio_message_opens_a_ticket_and_a_wrong_signature_is_refused() {
    let system = System::start(
        binary(),
        &[("HOTLINE_SMS__TWILIO__AUTH_TOKEN", TWILIO_TOKEN), ("HOTLINE_SMS__TWILIO__PUBLIC_URL", TWILIO_URL)],
    );
    // Signed for another URL (what the hotline itself sees behind a proxy), or with another token: refused.
    let forged = "Mất điện khu phố 3 phường Phú Cường (giả mạo)";
    let (pairs, body) = twilio_form("SMe2e0000000000000000000000000001", "+84912000020", forged);
    for signature in [
        twilio::signature(TWILIO_TOKEN, &format!("http://{}/v1/sms/twilio", system.addr), &pairs),
        twilio::signature("another-token", TWILIO_URL, &pairs),
    ] {
        let r = twilio_post(&system, &signature, &body);
        assert_eq!((r.status, r.json()["error"]["code"].as_str()), (401, Some("invalid_signature")), "{}", r.text());
    }

    let text = "Mất điện cả khu phố 3 phường Phú Cường từ 6 giờ sáng";
    let (pairs, body) = twilio_form("SMe2e0000000000000000000000000002", "+84912000021", text);
    let r = twilio_post(&system, &twilio::signature(TWILIO_TOKEN, TWILIO_URL, &pairs), &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().ends_with("<Response/>"), "empty TwiML: {}", r.text());
    let (id, _, channel, _) = wait_for_text(&system, text);
    assert_eq!(channel, "sms");
    let t = system.wait_for_ticket(&id, WAIT, |t| t["status"] == "routed");
    assert_eq!((t["category"].as_str(), t["agency"].as_str()), (Some("electricity"), Some("evn")), "{t}");
    let texts: Vec<String> = projected(&system).into_iter().map(|t| t.3).collect();
    assert_eq!(texts, [text], "the refused message stored nothing");
}

#[test]
fn hotline_serve_sms_runs_alone_against_the_nats_of_a_running_system() {
    // The system itself has no SMS gateway configured: only the separate process takes SMS.
    let system = System::start(binary(), &[]);
    assert_eq!(system.request("GET", &esms_path("84912000030", "720000", "x", ESMS_KEY), &[], b"").status, 404);
    let nats = std::fs::read_to_string(system.data_dir.join("nats.url")).expect("nats.url");
    let dir = tempfile::tempdir().expect("tmp");
    let served = crate::serve("sms", &["--http", "127.0.0.1:0"], nats.trim(), dir.path(), &[("HOTLINE_SMS__ESMS__PRIVATE_KEY", Some(ESMS_KEY))], Some("hotline: sms webhooks listening on http://"));
    let addr = served.addr.clone().expect("serve sms prints its address");

    let text = "Nước máy đục và có mùi lạ ở phường Hiệp Thành mấy hôm nay";
    let reference = reference_in(&esms_mo(&addr, "84912000031", "720001", text));
    let t = system.wait_for_ticket(&reference, WAIT, |t| t["status"] == "routed");
    assert_eq!((t["channel"].as_str(), t["text"].as_str(), t["agency"].as_str()), (Some("sms"), Some(text), Some("water")), "{t}");
}
