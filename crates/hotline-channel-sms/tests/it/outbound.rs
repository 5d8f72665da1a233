//! Answers sent by the gateways' HTTP send APIs, against local stand-ins that speak eSMS's and Twilio's
//! documented formats (eSMS: JSON `SendMultipleMessage_V4_post_json`, `CodeResult`; Twilio: a form POST to
//! `Messages.json` with Basic auth, JSON answers with `sid` or `code`), and how their refusals are classified.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use base64::Engine;
use hotline_channel::{ChannelAdapter, DeliveryError, OutboundKind, OutboundMessage};
use hotline_channel_sms::SmsChannel;
use hotline_channel_sms::webhook::form;
use hotline_domain::Reference;
use serde_json::{Value, json};
use uuid::Uuid;

fn answer(to: &str, text: &str) -> OutboundMessage {
    let ticket = Uuid::now_v7();
    OutboundMessage {
        id: Uuid::now_v7(),
        ticket_id: ticket,
        reference: Reference::derive(ticket, 0),
        kind: OutboundKind::Answer,
        text: text.to_owned(),
        to: Some(to.to_owned()),
        subject: None,
        thread: vec![],
        earlier_replies: vec![],
    }
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

#[derive(Default)]
struct EsmsStandIn {
    requests: Mutex<Vec<Value>>,
    seen: Mutex<HashSet<String>>,
}

/// eSMS's send API as documented: credentials checked, RequestId unique (124 when reused), errors by phone.
async fn esms_send(
    State(s): State<Arc<EsmsStandIn>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let request: Value = serde_json::from_slice(&body).expect("JSON body");
    s.requests.lock().expect("lock").push(request.clone());
    if request["ApiKey"] != "api-k" || request["SecretKey"] != "secret-k" {
        return axum::Json(json!({"CodeResult": "101", "ErrorMessage": "Authorize Failed"}))
            .into_response();
    }
    match request["Phone"].as_str() {
        Some("84900000098") => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Some("84900000097") => {
            return axum::Json(json!({"CodeResult": "103", "ErrorMessage": "Balance not enough"}))
                .into_response();
        }
        Some("84900000099") => {
            return axum::Json(json!({"CodeResult": "104", "ErrorMessage": "Brandname not exist"}))
                .into_response();
        }
        _ => {}
    }
    let id = request["RequestId"].as_str().unwrap_or_default().to_owned();
    if !s.seen.lock().expect("lock").insert(id) {
        return axum::Json(json!({"CodeResult": "124", "ErrorMessage": "Duplicate RequestId"}))
            .into_response();
    }
    axum::Json(json!({"CodeResult": "100", "CountRegenerate": 0, "SMSID": "e5c6d0f1-7a2b"}))
        .into_response()
}

#[tokio::test]
async fn esms_sends_with_the_answer_id_as_request_id_and_sorts_its_refusals() {
    let stand_in = Arc::new(EsmsStandIn::default());
    let base = serve(
        Router::new()
            .route(
                "/MainService.svc/json/SendMultipleMessage_V4_post_json/",
                post(esms_send),
            )
            .with_state(stand_in.clone()),
    )
    .await;
    let config = json!({"send": "esms", "esms": {"api_key": "api-k", "secret_key": "secret-k", "brandname": "UBND-BD", "api_base": base}});
    let channel = SmsChannel::from_config(&config).expect("config");

    let message = answer(
        "0900000060",
        "Điện đã được khôi phục. Cảm ơn ông/bà đã phản ánh.",
    );
    let receipt = channel.deliver(&message).await.expect("sent");
    assert_eq!(
        receipt.channel_message_id.as_deref(),
        Some("esms:e5c6d0f1-7a2b")
    );
    let sent = stand_in.requests.lock().expect("lock")[0].clone();
    assert_eq!(
        sent,
        json!({
            "ApiKey": "api-k", "SecretKey": "secret-k", "Phone": "84900000060", "Content": message.text,
            "SmsType": "2", "Brandname": "UBND-BD", "IsUnicode": "1", "RequestId": message.id.to_string(), "Sandbox": "0",
        })
    );
    // Sending the same answer again (our record of the first was lost): eSMS says the RequestId is used, which
    // means it was sent.
    let again = channel
        .deliver(&message)
        .await
        .expect("already sent counts as sent");
    assert_eq!(
        again.channel_message_id,
        Some(format!("esms-request:{}", message.id))
    );

    let plain = answer("84900000061", "Da xu ly xong");
    channel.deliver(&plain).await.expect("sent");
    assert_eq!(stand_in.requests.lock().expect("lock")[2]["IsUnicode"], "0");

    for (phone, retryable) in [
        ("84900000098", true),
        ("84900000097", true),
        ("84900000099", false),
    ] {
        let e = channel
            .deliver(&answer(phone, "x"))
            .await
            .expect_err("refused");
        assert_eq!(
            matches!(e, DeliveryError::Retryable(_)),
            retryable,
            "{phone}: {e:?}"
        );
    }
    let e = channel
        .deliver(&OutboundMessage {
            to: None,
            ..plain.clone()
        })
        .await
        .expect_err("no number");
    assert!(matches!(e, DeliveryError::Permanent(_)));

    // The gateway unreachable: try again later.
    let closed = json!({"send": "esms", "esms": {"api_key": "k", "secret_key": "s", "brandname": "b", "api_base": "http://127.0.0.1:9"}});
    let e = SmsChannel::from_config(&closed)
        .expect("config")
        .deliver(&plain)
        .await
        .expect_err("unreachable");
    assert!(matches!(e, DeliveryError::Retryable(_)), "{e:?}");
}

#[tokio::test]
async fn esms_sends_accented_latin_that_fits_gsm7_as_unicode_not_unaccented() {
    let stand_in = Arc::new(EsmsStandIn::default());
    let base = serve(
        Router::new()
            .route(
                "/MainService.svc/json/SendMultipleMessage_V4_post_json/",
                post(esms_send),
            )
            .with_state(stand_in.clone()),
    )
    .await;
    let config = json!({"send": "esms", "esms": {"api_key": "api-k", "secret_key": "secret-k", "brandname": "UBND-BD", "api_base": base}});
    let channel = SmsChannel::from_config(&config).expect("config");
    // Each of these has a GSM 7-bit code (è and £ in the basic table, € by escape), none is ASCII.
    for text in ["Phi xu ly: 5 £", "Cafe è pho", "Tien dien 100 €"] {
        channel
            .deliver(&answer("84900000062", text))
            .await
            .expect("sent");
    }
    channel
        .deliver(&answer("84900000062", "Da xu ly xong [ma K7M4] ~ 100%"))
        .await
        .expect("sent");
    let flags: Vec<(String, String)> = stand_in
        .requests
        .lock()
        .expect("lock")
        .iter()
        .map(|r| {
            (
                r["Content"].as_str().unwrap_or_default().to_owned(),
                r["IsUnicode"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        flags,
        vec![
            ("Phi xu ly: 5 £".to_owned(), "1".to_owned()),
            ("Cafe è pho".to_owned(), "1".to_owned()),
            ("Tien dien 100 €".to_owned(), "1".to_owned()),
            ("Da xu ly xong [ma K7M4] ~ 100%".to_owned(), "0".to_owned()),
        ]
    );
}

#[derive(Default)]
struct TwilioStandIn {
    requests: Mutex<Vec<Vec<(String, String)>>>,
}

/// Twilio's Messages resource as documented: Basic auth with the account SID and token, a form body, 201 with the
/// message's `sid`, or an error JSON with `code`.
async fn twilio_send(
    State(s): State<Arc<TwilioStandIn>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("AC123:tok-12345")
    );
    if account != "AC123"
        || headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str())
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"code": 20003, "message": "Authenticate", "status": 401})),
        )
            .into_response();
    }
    let pairs = form::parse(&body).expect("form body");
    s.requests.lock().expect("lock").push(pairs.clone());
    let to = pairs
        .iter()
        .find(|(k, _)| k == "To")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    match to.as_str() {
        "+84900000099" => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"code": 21211, "message": "The 'To' number +84900000099 is not a valid phone number.", "status": 400})),
        )
            .into_response(),
        "+84900000098" => (StatusCode::TOO_MANY_REQUESTS, axum::Json(json!({"code": 20429, "message": "Too Many Requests", "status": 429}))).into_response(),
        _ => (StatusCode::CREATED, axum::Json(json!({"sid": "SM5e1f", "status": "queued", "to": to}))).into_response(),
    }
}

#[tokio::test]
async fn twilio_sends_a_form_with_basic_auth_and_sorts_its_refusals() {
    let stand_in = Arc::new(TwilioStandIn::default());
    let base = serve(
        Router::new()
            .route(
                "/2010-04-01/Accounts/{account}/Messages.json",
                post(twilio_send),
            )
            .with_state(stand_in.clone()),
    )
    .await;
    let config = json!({"send": "twilio", "twilio": {
        "auth_token": "tok-12345", "public_url": "https://h.example/v1/sms/twilio", "account_sid": "AC123",
        "from": "+15005550006", "api_base": base,
    }});
    let channel = SmsChannel::from_config(&config).expect("config");
    let message = answer("84900000070", "Đã sửa xong đèn đường & cảm ơn!");
    let receipt = channel.deliver(&message).await.expect("sent");
    assert_eq!(receipt.channel_message_id.as_deref(), Some("twilio:SM5e1f"));
    let sent = stand_in.requests.lock().expect("lock")[0].clone();
    assert_eq!(
        sent,
        vec![
            ("To".to_owned(), "+84900000070".to_owned()),
            ("From".to_owned(), "+15005550006".to_owned()),
            ("Body".to_owned(), message.text.clone()),
        ]
    );
    let e = channel
        .deliver(&answer("84900000099", "x"))
        .await
        .expect_err("invalid number");
    assert!(
        matches!(e, DeliveryError::Permanent(ref m) if m.contains("21211")),
        "{e:?}"
    );
    let e = channel
        .deliver(&answer("84900000098", "x"))
        .await
        .expect_err("throttled");
    assert!(matches!(e, DeliveryError::Retryable(_)), "{e:?}");

    let wrong = json!({"send": "twilio", "twilio": {
        "auth_token": "wrong", "public_url": "https://h.example/v1/sms/twilio", "account_sid": "AC123",
        "from": "+15005550006", "api_base": base,
    }});
    let e = SmsChannel::from_config(&wrong)
        .expect("config")
        .deliver(&message)
        .await
        .expect_err("unauthorised");
    assert!(
        matches!(e, DeliveryError::Retryable(ref m) if m.contains("credentials")),
        "{e:?}"
    );
}
