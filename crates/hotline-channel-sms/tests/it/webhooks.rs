//! The gateway webhooks over real HTTP: signed messages become petitions (once, however often delivered), a bad
//! or missing signature is a 401 with nothing stored, malformed requests are 400s, and a message quoting its
//! ticket's reference joins that ticket.

use std::sync::Arc;

use hotline_channel::ChannelAdapter;
use hotline_channel_sms::SmsChannel;
use hotline_channel_sms::webhook::form::encode;
use hotline_channel_sms::webhook::{esms, twilio};
use hotline_domain::TicketEvent;
use hotline_store::EventStore;
use hotline_testkit::Response;
use serde_json::json;

use crate::Harness;

const TWILIO_URL: &str = "https://hotline.example.vn/v1/sms/twilio";

/// Serves the channel's routes on a free port; returns `host:port`.
async fn serve(h: &Harness, config: serde_json::Value) -> String {
    let channel = SmsChannel::from_config(&config).expect("config");
    let (ctx, _trigger) = h.context(config);
    let router = channel.http_routes(&ctx).expect("webhook routes");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

async fn request(
    method: &str,
    addr: &str,
    path: &str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> Response {
    let (method, addr, path) = (method.to_owned(), addr.to_owned(), path.to_owned());
    tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        hotline_testkit::http(&method, &addr, &path, &headers, &body).expect("HTTP exchange")
    })
    .await
    .expect("join")
}

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
        ("AccountSid", "AC123"),
        ("From", from),
        ("ApiVersion", "2010-04-01"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let encoded = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    (pairs, encoded.into_bytes())
}

fn form_headers(signature: Option<String>) -> Vec<(String, String)> {
    let mut h = vec![(
        "Content-Type".to_owned(),
        "application/x-www-form-urlencoded".to_owned(),
    )];
    if let Some(s) = signature {
        h.push(("X-Twilio-Signature".to_owned(), s));
    }
    h
}

async fn stored_text(h: &Harness, message_id: &str) -> Option<String> {
    let ticket = h.intake.ticket_id_for("sms", message_id);
    let history = h.store.load(ticket).await.expect("load");
    history.events.first().and_then(|e| match &e.event {
        TicketEvent::PetitionReceived(p) => Some(p.text.clone()),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_messages_are_checked_stored_once_and_answered_with_empty_twiml() {
    let h = Harness::start().await;
    let addr = serve(
        &h,
        json!({"twilio": {"auth_token": "tok-12345", "public_url": TWILIO_URL}}),
    )
    .await;

    let text = "Mất điện ở khu phố 4, phường Phú Hòa từ 6 giờ sáng";
    let (pairs, body) = twilio_form("SM0001", "+84900000040", text);
    let signature = twilio::signature("tok-12345", TWILIO_URL, &pairs);
    let r = request(
        "POST",
        &addr,
        "/v1/sms/twilio",
        form_headers(Some(signature.clone())),
        body.clone(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/xml"))
    );
    assert!(r.text().ends_with("<Response/>"), "{}", r.text());
    assert_eq!(
        stored_text(&h, "twilio:SM0001").await.as_deref(),
        Some(text)
    );
    let tickets = h.tickets_of("84900000040").await;
    assert_eq!(tickets.len(), 1);

    // Twilio delivering the same MessageSid again stores nothing new.
    let r = request(
        "POST",
        &addr,
        "/v1/sms/twilio",
        form_headers(Some(signature)),
        body,
    )
    .await;
    assert_eq!(r.status, 200);
    let again = h.tickets_of("84900000040").await;
    assert_eq!((again.len(), again[0].1.len()), (1, 1));

    // The query string is part of what Twilio signs.
    let (pairs, body) = twilio_form("SM0002", "+84900000041", "Nuoc ngap duong");
    let signature = twilio::signature("tok-12345", &format!("{TWILIO_URL}?site=bd"), &pairs);
    let r = request(
        "POST",
        &addr,
        "/v1/sms/twilio?site=bd",
        form_headers(Some(signature)),
        body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        stored_text(&h, "twilio:SM0002").await.as_deref(),
        Some("Nuoc ngap duong")
    );

    // Signed with another token, or with the body changed after signing, or not signed: 401, nothing stored.
    let (pairs, body) = twilio_form("SM0003", "+84900000042", "Gia mao");
    let wrong = twilio::signature("another-token", TWILIO_URL, &pairs);
    let r = request(
        "POST",
        &addr,
        "/v1/sms/twilio",
        form_headers(Some(wrong)),
        body.clone(),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (401, Some("invalid_signature"))
    );
    let signed = twilio::signature("tok-12345", TWILIO_URL, &pairs);
    let tampered = String::from_utf8(body.clone())
        .expect("ascii")
        .replace("Gia+mao", "Gia+mao+2")
        .into_bytes();
    let r = request(
        "POST",
        &addr,
        "/v1/sms/twilio",
        form_headers(Some(signed)),
        tampered,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (401, Some("invalid_signature"))
    );
    let r = request("POST", &addr, "/v1/sms/twilio", form_headers(None), body).await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (401, Some("missing_signature"))
    );
    assert_eq!(stored_text(&h, "twilio:SM0003").await, None);
    assert!(h.tickets_of("84900000042").await.is_empty());

    // Invalid UTF-8 and broken escapes are 400s; the wrong method a 405; all in the shared error shape.
    let r = request(
        "POST",
        &addr,
        "/v1/sms/twilio",
        form_headers(Some("x".into())),
        b"Body=%FF%FE&From=1".to_vec(),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (400, Some("malformed_request"))
    );
    let r = request(
        "POST",
        &addr,
        "/v1/sms/twilio",
        form_headers(Some("x".into())),
        b"Body=%G".to_vec(),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = request("GET", &addr, "/v1/sms/twilio", vec![], vec![]).await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twilio_mms_with_only_an_image_is_stored_with_its_media_not_refused() {
    let h = Harness::start().await;
    let addr = serve(
        &h,
        json!({"twilio": {"auth_token": "tok-12345", "public_url": TWILIO_URL}}),
    )
    .await;
    // A photo of the flooded street, no text, as Twilio posts an MMS.
    let image = "https://api.twilio.com/2010-04-01/Accounts/AC123/Messages/MM0100/Media/ME0100";
    let (mut pairs, _) = twilio_form("MM0100", "+84900000045", "");
    for (k, v) in &mut pairs {
        if k == "NumMedia" {
            *v = "2".to_owned();
        }
    }
    for (k, v) in [
        ("MediaUrl0", image),
        ("MediaContentType0", "image/jpeg"),
        (
            "MediaUrl1",
            "https://api.twilio.com/2010-04-01/Accounts/AC123/Messages/MM0100/Media/ME0101",
        ),
        ("MediaContentType1", "video/mp4"),
    ] {
        pairs.push((k.to_owned(), v.to_owned()));
    }
    let body = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes();
    let signature = twilio::signature("tok-12345", TWILIO_URL, &pairs);
    let r = request(
        "POST",
        &addr,
        "/v1/sms/twilio",
        form_headers(Some(signature)),
        body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let tickets = h.tickets_of("84900000045").await;
    assert_eq!(tickets.len(), 1);
    let Some(TicketEvent::PetitionReceived(p)) = tickets[0].1.first() else {
        panic!("no petition: {:?}", tickets[0].1)
    };
    let media: Vec<(&str, Option<&str>, Option<&str>)> = p
        .attachments
        .iter()
        .map(|a| (a.name.as_str(), a.url.as_deref(), a.media_type.as_deref()))
        .collect();
    assert_eq!(
        media,
        vec![
            ("ME0100.jpg", Some(image), Some("image/jpeg")),
            (
                "ME0101.mp4",
                Some(
                    "https://api.twilio.com/2010-04-01/Accounts/AC123/Messages/MM0100/Media/ME0101"
                ),
                Some("video/mp4")
            ),
        ]
    );
}

fn esms_query(sender: &str, smsid: &str, content: &str, sign: &str) -> String {
    format!(
        "/v1/sms/esms?sender={sender}&content={}&serviceNumber=8079&keyword=PA&sign={sign}&cpid=cp77&smsid={smsid}&receiverTime=20250101120000",
        encode(content)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esms_messages_are_checked_acknowledged_with_their_reference_and_follow_ups_join_the_ticket()
 {
    let h = Harness::start().await;
    let addr = serve(&h, json!({"esms": {"private_key": "pk-secret"}})).await;

    // Upper-case hex is accepted (the case is not documented).
    let content = "Đường Lê Lợi có ổ gà lớn, nguy hiểm cho xe máy";
    let sign = esms::sign(
        "cp77",
        "5001",
        content.as_bytes(),
        "20250101120000",
        "pk-secret",
    )
    .to_uppercase();
    let r = request(
        "GET",
        &addr,
        &esms_query("84900000050", "5001", content, &sign),
        vec![],
        vec![],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/xml"))
    );
    let reference = h
        .tickets_of("84900000050")
        .await
        .into_iter()
        .find_map(|(_, events)| match events.first() {
            Some(TicketEvent::PetitionReceived(p)) => Some(p.reference.to_string()),
            _ => None,
        });
    let reference = reference.expect("a petition was stored");
    assert_eq!(
        r.text(),
        format!(
            "<ClientResponse><Message>Duong day nong da nhan phan anh cua ban. Ma so tra cuu: {reference}</Message>\
             <Smsid>5001</Smsid><Receiver>84900000050</Receiver></ClientResponse>"
        )
    );
    assert_eq!(stored_text(&h, "esms:5001").await.as_deref(), Some(content));

    // The same smsid again: the same answer, nothing new stored.
    let r2 = request(
        "GET",
        &addr,
        &esms_query("84900000050", "5001", content, &sign),
        vec![],
        vec![],
    )
    .await;
    assert_eq!(r2.text(), r.text());
    assert_eq!(h.tickets_of("84900000050").await[0].1.len(), 1);

    // A later message quoting the reference joins the ticket.
    let follow = format!("Bo sung cho phan anh {reference}: o ga o truoc so nha 12");
    let sign = esms::sign(
        "cp77",
        "5002",
        follow.as_bytes(),
        "20250101120000",
        "pk-secret",
    );
    let r = request(
        "GET",
        &addr,
        &esms_query("84900000050", "5002", &follow, &sign),
        vec![],
        vec![],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains(&format!(
            "Da nhan tin nhan bo sung cho phan anh {reference}."
        )),
        "{}",
        r.text()
    );
    let tickets = h.tickets_of("84900000050").await;
    assert_eq!(tickets.len(), 1, "the follow-up opened another ticket");
    assert!(
        tickets[0].1.iter().any(
            |e| matches!(e, TicketEvent::CitizenWrote(w) if w.text == follow)
                || matches!(e, TicketEvent::CitizenReplied(w) if w.text == follow)
        ),
        "{:?}",
        tickets[0].1
    );

    // A sign computed over the content as it appears in the query string (still URL-encoded) is accepted too.
    let raw = encode("Cay xanh nga");
    let sign = esms::sign(
        "cp77",
        "5003",
        raw.as_bytes(),
        "20250101120000",
        "pk-secret",
    );
    let r = request(
        "GET",
        &addr,
        &esms_query("84900000051", "5003", "Cay xanh nga", &sign),
        vec![],
        vec![],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        stored_text(&h, "esms:5003").await.as_deref(),
        Some("Cay xanh nga")
    );

    // A wrong or missing sign: 401, nothing stored.
    let wrong = esms::sign("cp77", "5004", b"Gia mao", "20250101120000", "not-the-key");
    let r = request(
        "GET",
        &addr,
        &esms_query("84900000052", "5004", "Gia mao", &wrong),
        vec![],
        vec![],
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (401, Some("invalid_signature"))
    );
    let r = request(
        "GET",
        &addr,
        &esms_query("84900000052", "5004", "Gia mao", ""),
        vec![],
        vec![],
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (401, Some("missing_signature"))
    );
    assert_eq!(stored_text(&h, "esms:5004").await, None);
    assert!(h.tickets_of("84900000052").await.is_empty());

    // Invalid UTF-8 in the query: 400.
    let r = request(
        "GET",
        &addr,
        "/v1/sms/esms?sender=84900000053&content=%C3%28&sign=x",
        vec![],
        vec![],
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (400, Some("malformed_request"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_gateway_keys_no_webhook_is_mounted() {
    let h = Harness::start().await;
    let channel = Arc::new(SmsChannel::from_config(&json!({})).expect("config"));
    let (ctx, _trigger) = h.context(json!({}));
    assert!(channel.http_routes(&ctx).is_none());
    // And run returns at once: there is no SMPP session to keep.
    tokio::time::timeout(std::time::Duration::from_secs(5), channel.run(ctx))
        .await
        .expect("returns")
        .expect("ok");
}
