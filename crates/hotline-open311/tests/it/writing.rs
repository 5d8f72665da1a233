//! `POST requests`: the key, the checks, what is stored, idempotency, and the answer in both formats.

use hotline_domain::TicketEvent;
use hotline_store::EventStore;

use crate::{Harness, KEY, child_text, children, errors, json, object_keys, array_item, spec, xml};

/// A complete request of the kind a FixMyStreet-style client sends.
fn full_request() -> String {
    format!(
        "api_key={KEY}&service_code=environment&lat=10.9065&long=106.7694\
&address_string=S%E1%BB%91+12+%C4%90%C6%B0%E1%BB%9Dng+s%E1%BB%91+5%2C+D%C4%A9+An\
&email=An.Nguyen%40Example.vn&device_id=dev-1&account_id=acc-7&first_name=An&last_name=Nguy%E1%BB%85n+V%C4%83n\
&phone=0912+345+678&description=Kh%C3%B3i+%C4%91en+t%E1%BB%AB+nh%C3%A0+m%C3%A1y+%26+m%C3%B9i+h%C3%B4i%0Acay+m%E1%BA%AFt\
&media_url=https%3A%2F%2Fmedia.example.vn%2Fp%2F1.jpg&attribute[area]=dian&attribute[occurred_at]=2026-11-27T07%3A15%3A00%2B07%3A00"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_filed_in_xml_is_stored_as_an_app_petition_and_read_back_in_both_formats() {
    let h = Harness::start().await;
    let response = h.post("xml", &full_request(), &[]).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let doc = xml(&response);
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "service_requests");
    let request = root.first_element_child().expect("request");
    assert_eq!(request.tag_name().name(), "request");
    // service_request_id, never together with a token.
    assert_eq!(children(request), spec::POST_RESPONSE);
    let id = child_text(request, "service_request_id").expect("id");
    assert_eq!(child_text(request, "account_id").as_deref(), Some(""));
    let notice = child_text(request, "service_notice").expect("notice");
    assert!(notice.contains(&id) && notice.contains("Mã tra cứu"), "{notice}");

    // What the log holds: an app petition with the place, the contact and the attributes.
    let routed = h.wait_for(&id, |r| r["status_notes"].as_str().is_some_and(|n| n.starts_with("Đã chuyển"))).await;
    let ticket = h.reader.ticket_by_reference(&id).await.expect("read").expect("projected");
    let code = h.codes.code_for(ticket.ticket_id);
    assert!(notice.contains(&code), "the notice carries the access code: {notice}");
    let history = h.store.load(ticket.ticket_id).await.expect("load");
    let Some(TicketEvent::PetitionReceived(p)) = history.events.first().map(|e| &e.event) else { panic!("petition") };
    assert_eq!(p.channel, "app");
    assert!(p.channel_ref.as_deref().is_some_and(|r| r.starts_with("open311:")));
    assert_eq!(p.category.as_deref(), Some("environment"));
    let location = p.location.as_ref().expect("location");
    assert_eq!((location.lat, location.lon), (Some(10.9065), Some(106.7694)));
    assert_eq!(location.address.as_deref(), Some("Số 12 Đường số 5, Dĩ An"));
    assert_eq!(location.area.as_deref(), Some("dian"));
    let citizen = p.citizen.as_ref().expect("citizen");
    assert_eq!(citizen.name.as_deref(), Some("Nguyễn Văn An"), "family name first");
    assert_eq!(citizen.phone.as_deref(), Some("84912345678"));
    assert_eq!(citizen.email.as_deref(), Some("an.nguyen@example.vn"));
    assert!(p.text.starts_with("Khói đen từ nhà máy & mùi hôi\ncay mắt"), "{}", p.text);
    assert!(p.text.contains("Thời điểm xảy ra: 2026-11-27T07:15:00+07:00"), "{}", p.text);

    // Read back as JSON: the spec's fields in order, the location and media, the agency and its deadline.
    assert_eq!(routed["status"], "open");
    assert_eq!(routed["service_code"], "environment");
    assert_eq!(routed["service_name"], "Môi trường, ô nhiễm, rác thải");
    assert_eq!(routed["agency_responsible"], "Sở Tài nguyên và Môi trường");
    assert_eq!(routed["status_notes"], "Đã chuyển Sở Tài nguyên và Môi trường xử lý");
    assert_eq!(routed["lat"], 10.9065);
    assert_eq!(routed["long"], 106.7694);
    assert_eq!(routed["address"], "Số 12 Đường số 5, Dĩ An");
    assert_eq!(routed["address_id"], "dian");
    assert_eq!(routed["media_url"], "https://media.example.vn/p/1.jpg");
    assert!(routed["description"].as_str().is_some_and(|d| d.starts_with("Khói đen")));
    for field in ["requested_datetime", "updated_datetime", "expected_datetime"] {
        let at = routed[field].as_str().unwrap_or_else(|| panic!("{field}: {routed}"));
        assert!(at.ends_with("+07:00") && at.len() == 25, "{field}: {at}");
    }
    let response = h.get(&format!("/open311/v2/requests/{id}.json")).await;
    assert_eq!(object_keys(array_item(&response.text(), 0)), spec::REQUEST);

    // And as XML, with the same fields in the spec's order and the Vietnamese text intact.
    let response = h.get(&format!("/open311/v2/requests/{id}.xml")).await;
    let doc = xml(&response);
    let request = doc.root_element().first_element_child().expect("request");
    assert_eq!(doc.root_element().tag_name().name(), "service_requests");
    assert_eq!(children(request), spec::REQUEST);
    assert_eq!(child_text(request, "service_request_id"), Some(id.clone()));
    assert!(child_text(request, "description").is_some_and(|d| d.contains("nhà máy & mùi hôi\ncay")));
    assert_eq!(child_text(request, "zipcode").as_deref(), Some(""));

    // No personal data in what anyone may read.
    for body in [response.text(), h.get(&format!("/open311/v2/requests.json?service_request_id={id}")).await.text()] {
        for secret in ["Nguyễn Văn An", "0912", "84912345678", "an.nguyen", "An.Nguyen", "acc-7", "dev-1"] {
            assert!(!body.contains(secret), "{secret} leaked: {body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_json_post_answers_an_array_with_the_spec_fields() {
    let h = Harness::start().await;
    let body = format!("api_key={KEY}&service_code=electricity&address_string=Ch%E1%BB%A3+Th%E1%BB%A7+D%E1%BA%A7u+M%E1%BB%99t");
    let response = h.post("json", &body, &[]).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let value = json(&response);
    assert_eq!(object_keys(array_item(&response.text(), 0)), spec::POST_RESPONSE);
    assert!(value[0]["service_request_id"].as_str().is_some_and(|id| id.len() == 8));
    assert_eq!(value[0]["account_id"], serde_json::Value::Null);
    assert!(value[0].get("token").is_none());
    // No description: the petition still has text, the service's name.
    let id = value[0]["service_request_id"].as_str().expect("id");
    let request = h.wait_for(id, |_| true).await;
    assert_eq!(request["description"], "Phản ánh qua Open311: Điện");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_with_the_same_idempotency_key_gets_the_same_request_and_no_second_ticket() {
    let h = Harness::start().await;
    let body = format!("api_key={KEY}&service_code=water_supply&address_id=thuanan&description=M%E1%BA%A5t+n%C6%B0%E1%BB%9Bc");
    let first = h.post("json", &body, &[("Idempotency-Key", "retry-1")]).await;
    let again = h.post("json", &body, &[("Idempotency-Key", "retry-1")]).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(again.status, 200, "{}", again.text());
    let id = first.json()[0]["service_request_id"].clone();
    assert_eq!(again.json()[0]["service_request_id"], id);
    // The same key for a different request is refused rather than merged.
    let other = format!("{body}+n%E1%BB%AFa");
    let refused = h.post("xml", &other, &[("Idempotency-Key", "retry-1")]).await;
    assert_eq!(refused.status, 400);
    assert_eq!(errors(&refused)[0].0, 400);
    // Without a key every POST is a new request.
    let a = h.file(&body).await;
    let b = h.file(&body).await;
    assert_ne!(a, b);
    h.wait_for(&b, |_| true).await;
    h.wait_for(id.as_str().expect("id"), |_| true).await;
    assert_eq!(h.reader.count().await.expect("count"), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_key_is_checked_first_and_a_refused_request_stores_nothing() {
    let h = Harness::start().await;
    for (format, body) in [
        ("xml", "service_code=environment&address_id=dian".to_owned()),
        ("json", "api_key=&service_code=environment&address_id=dian".to_owned()),
        ("json", "api_key=wrong-key-0123456789&service_code=environment&address_id=dian".to_owned()),
        ("xml", format!("api_key={KEY}x&service_code=nothing")),
    ] {
        let response = h.post(format, &body, &[]).await;
        assert_eq!(response.status, 403, "{body}: {}", response.text());
        let errors = errors(&response);
        assert_eq!(errors[0].0, 403);
        assert!(errors[0].1.contains("api_key"));
    }
    let id = h.file(&format!("api_key={KEY}&service_code=environment&address_id=dian")).await;
    h.wait_for(&id, |_| true).await;
    assert_eq!(h.reader.count().await.expect("count"), 1, "only the accepted request was stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_answered_with_every_problem_and_the_spec_status() {
    let h = Harness::start().await;
    let cases: Vec<(String, u16, usize)> = vec![
        (format!("api_key={KEY}&address_id=dian"), 400, 1),
        (format!("api_key={KEY}&service_code=potholes&address_id=dian"), 404, 1),
        (format!("api_key={KEY}&service_code=environment&description=no+place"), 400, 1),
        (format!("api_key={KEY}&service_code=environment&address_id=hanoi"), 400, 1),
        (format!("api_key={KEY}&service_code=environment&lat=10.9"), 400, 1),
        (format!("api_key={KEY}&service_code=environment&lat=95&long=500&email=x"), 400, 3),
        (format!("api_key={KEY}&service_code=environment&address_id=dian&attribute[area]=bencat"), 400, 1),
        (
            format!("api_key={KEY}&service_code=environment&address_string=x&attribute[area]=hue&attribute[colour]=red&attribute[occurred_at]=today"),
            400,
            3,
        ),
        (format!("api_key={KEY}&service_code=environment&address_string=x&description=%E0%A4"), 400, 1),
    ];
    for (body, status, count) in cases {
        for format in ["xml", "json"] {
            let response = h.post(format, &body, &[]).await;
            assert_eq!(response.status, status, "{body}: {}", response.text());
            let errors = errors(&response);
            assert_eq!(errors.len(), count, "{body}: {errors:?}");
            assert!(errors.iter().all(|(code, text)| *code == status && !text.is_empty()));
        }
    }
    // A JSON body is not the spec's form encoding.
    let response = h
        .request("POST", "/open311/v2/requests.json", &[("Content-Type", "application/json")], br#"{"api_key":"x"}"#)
        .await;
    assert_eq!(response.status, 400);
    assert!(errors(&response)[0].1.contains("x-www-form-urlencoded"));
    // A body over the limit.
    let big = format!("api_key={KEY}&description={}", "a".repeat(70 * 1024));
    let response = h.post("xml", &big, &[]).await;
    assert_eq!(response.status, 413);
    assert_eq!(errors(&response)[0].0, 413);
    // A malformed Idempotency-Key.
    let response = h.post("json", &format!("api_key={KEY}&service_code=environment&address_id=dian"), &[("Idempotency-Key", "two words")]).await;
    assert_eq!(response.status, 400);
    assert_eq!(h.reader.count().await.expect("count"), 0);
}
