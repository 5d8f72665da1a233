//! `GET requests` (filters, paging, formats), `GET requests/{id}`, `GET tokens/{token}`, the state mapping as the
//! tickets move, and what petitions from the hotline's private channels show.

use hotline_channel::NewPetition;
use hotline_domain::access::{Principal, Role};
use hotline_domain::event::{Citizen, Location};
use hotline_domain::{Command, Ticket};
use hotline_store::{Cause, OnConflict, execute};
use time::OffsetDateTime;

use crate::{Harness, KEY, child_text, children, errors, json, spec, xml};

fn operator() -> Principal {
    Principal { role: Role::Operator, agency: None, token_id: "op-1".into(), name: "Tổ tiếp nhận".into() }
}

async fn run(h: &Harness, reference: &str, command: impl Fn(&Ticket) -> Command) {
    let ticket = h.reader.ticket_by_reference(reference).await.expect("read").expect("ticket");
    execute(h.store.as_ref(), ticket.ticket_id, &operator().actor(), OffsetDateTime::now_utc(), Cause::None, OnConflict::GiveUp, |t, _| {
        Ok::<_, std::convert::Infallible>(command(t))
    })
    .await
    .expect("command");
}

fn ids(body: &serde_json::Value) -> Vec<String> {
    body.as_array().expect("array").iter().map(|r| r["service_request_id"].as_str().expect("id").to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_list_filters_by_service_status_dates_and_ids_newest_first_in_pages() {
    let h = Harness::start().await;
    let mut filed = Vec::new();
    for code in ["environment", "electricity", "environment"] {
        let id = h.file(&format!("api_key={KEY}&service_code={code}&address_id=dian&description=Ph%E1%BA%A3n+%C3%A1nh")).await;
        h.wait_for(&id, |r| r["agency_responsible"].is_string()).await;
        filed.push(id);
    }
    run(&h, &filed[1], |_| Command::Answer { by: operator(), text: "Đã khắc phục sự cố điện.".into(), desk: "hotline_desk".into(), attachments: Vec::new() }).await;
    h.wait_for(&filed[1], |r| r["status"] == "closed").await;
    let newest_first: Vec<String> = filed.iter().rev().cloned().collect();

    let harness = &h;
    let list = |query: &str| {
        let path = format!("/open311/v2/requests.json{query}");
        async move { harness.get(&path).await }
    };
    let all = json(&list("").await);
    assert_eq!(ids(&all), newest_first);
    assert_eq!(ids(&json(&list("?service_code=electricity").await)), [filed[1].clone()]);
    assert_eq!(ids(&json(&list("?service_code=environment,electricity").await)).len(), 3);
    assert_eq!(ids(&json(&list("?status=closed").await)), [filed[1].clone()]);
    assert_eq!(ids(&json(&list("?status=open").await)), [filed[2].clone(), filed[0].clone()]);
    assert_eq!(ids(&json(&list("?status=open,closed").await)).len(), 3);
    // service_request_id overrides every other argument.
    let query = format!("?service_request_id={},{}&status=closed&service_code=land", filed[0], filed[2].to_lowercase());
    assert_eq!(ids(&json(&list(&query).await)), [filed[2].clone(), filed[0].clone()]);
    assert_eq!(ids(&json(&list("?service_request_id=NOSUCH99").await)), Vec::<String>::new());
    // Pages.
    assert_eq!(ids(&json(&list("?page_size=2").await)), newest_first[..2]);
    assert_eq!(ids(&json(&list("?page_size=2&page=2").await)), newest_first[2..]);
    assert_eq!(ids(&json(&list("?page_size=2&page=3").await)), Vec::<String>::new());
    // Dates: a window around now has them, one in the past has none.
    let now = OffsetDateTime::now_utc();
    let w3c = |t: OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).expect("format").replace('+', "%2B");
    let around = format!("?start_date={}&end_date={}", w3c(now - time::Duration::hours(1)), w3c(now + time::Duration::hours(1)));
    assert_eq!(ids(&json(&list(&around).await)).len(), 3);
    let before = format!("?end_date={}", w3c(now - time::Duration::hours(1)));
    assert_eq!(ids(&json(&list(&before).await)).len(), 0);
    assert_eq!(ids(&json(&list("?start_date=2026-01-01T00:00:00%2B07:00&end_date=2026-03-01T00:00:00Z").await)).len(), 0);

    // The same list in XML: every request with the spec's elements in order.
    let response = h.get("/open311/v2/requests.xml").await;
    let doc = xml(&response);
    assert_eq!(doc.root_element().tag_name().name(), "service_requests");
    let requests: Vec<_> = doc.root_element().children().filter(|n| n.is_element()).collect();
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert_eq!(request.tag_name().name(), "request");
        assert_eq!(children(*request), spec::REQUEST);
    }
    let closed = requests.iter().find(|r| child_text(**r, "status").as_deref() == Some("closed")).expect("closed");
    // Even for requests filed through Open311, the answer's text is not public (answers name the citizen).
    assert_eq!(child_text(*closed, "status_notes").as_deref(), Some("Đã trả lời"));
    for path in ["/open311/v2/requests.xml", "/open311/v2/requests.json"] {
        assert!(!h.get(path).await.text().contains("khắc phục"), "the answer's text in {path}");
    }
}

/// Regression: a petition counted as filed through Open311 (text, exact place shown publicly) whenever its
/// `channel_ref` started with `open311:`, whatever its channel, so an e-mail whose Message-ID starts so was
/// published. Only app-channel petitions with that prefix are Open311's (and the app refuses such keys).
#[tokio::test(flavor = "multi_thread")]
async fn a_private_petition_whose_ref_looks_like_open311_stays_private() {
    let h = Harness::start().await;
    let accepted = h
        .intake
        .submit(NewPetition {
            citizen_key: None,
            channel: "email".into(),
            channel_ref: Some("open311:client-1:key:abc@mail.example.vn".into()),
            text: "Tôi là Lê Văn Cường, nhà số 9 kiệt 4: cống tràn".into(),
            subject: None,
            category: Some("environment".into()),
            citizen: Some(Citizen { name: Some("Lê Văn Cường".into()), email: Some("cuong@mail.example.vn".into()), ..Citizen::default() }),
            location: Some(Location { area: Some("dian".into()), lat: Some(10.93), lon: Some(106.79), address: Some("nhà số 9 kiệt 4".into()) }),
            attachments: Vec::new(),
        })
        .await
        .expect("stored");
    let id = accepted.reference.as_str().to_owned();
    let request = h.wait_for(&id, |r| r["agency_responsible"].is_string()).await;
    assert_eq!(request["description"], serde_json::Value::Null);
    assert_eq!((request["lat"].clone(), request["long"].clone()), (serde_json::Value::Null, serde_json::Value::Null));
    assert_eq!(request["address"], "Dĩ An, Bình Dương");
    for path in [format!("/open311/v2/requests/{id}.xml"), "/open311/v2/requests.json".to_owned()] {
        let body = h.get(&path).await.text();
        for secret in ["Cường", "kiệt 4", "10.93", "cống tràn"] {
            assert!(!body.contains(secret), "{secret} in {body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_filters_are_400_in_the_asked_format() {
    let h = Harness::start().await;
    for query in [
        "start_date=2026-01-01T00:00:00Z&end_date=2026-06-01T00:00:00Z",
        "start_date=2026-03-01T00:00:00Z&end_date=2026-01-01T00:00:00Z",
        "start_date=2026-01-01",
        "end_date=yesterday",
        "status=pending",
        "service_code=potholes",
        "page=0",
        "page_size=1001",
        "page_size=ten",
        "status=open&status=%FF",
    ] {
        for format in ["xml", "json"] {
            let response = h.get(&format!("/open311/v2/requests.{format}?{query}")).await;
            assert_eq!(response.status, 400, "{query}: {}", response.text());
            let errors = errors(&response);
            assert_eq!(errors[0].0, 400);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_request_and_tokens_are_found_by_their_ids_or_not_found() {
    let h = Harness::start().await;
    let id = h.file(&format!("api_key={KEY}&service_code=land&address_id=bencat&description=Tranh+ch%E1%BA%A5p")).await;
    h.wait_for(&id, |_| true).await;
    // A reference as a person types it still finds the request.
    let typed = format!("{}-{}", &id[..4], id[4..].to_lowercase());
    assert_eq!(json(&h.get(&format!("/open311/v2/requests/{typed}.json")).await)[0]["service_request_id"], id.as_str());
    for path in ["/open311/v2/requests/ZZZZZZZZ.xml", "/open311/v2/requests/not-a-reference.json"] {
        let response = h.get(path).await;
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(errors(&response)[0].0, 404);
    }

    let ticket = h.reader.ticket_by_reference(&id).await.expect("read").expect("ticket");
    let response = h.get(&format!("/open311/v2/tokens/{}.xml", ticket.ticket_id)).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let doc = xml(&response);
    assert_eq!(doc.root_element().tag_name().name(), "service_requests");
    let request = doc.root_element().first_element_child().expect("request");
    assert_eq!(children(request), spec::TOKEN_RESPONSE);
    assert_eq!(child_text(request, "service_request_id"), Some(id.clone()));
    assert_eq!(child_text(request, "token"), Some(ticket.ticket_id.to_string()));
    let body = json(&h.get(&format!("/open311/v2/tokens/{}.json", ticket.ticket_id)).await);
    assert_eq!(body, serde_json::json!([{ "service_request_id": id, "token": ticket.ticket_id.to_string() }]));
    for token in [uuid::Uuid::now_v7().to_string(), "12345".to_owned()] {
        let response = h.get(&format!("/open311/v2/tokens/{token}.json")).await;
        assert_eq!(response.status, 404);
        assert_eq!(errors(&response)[0].0, 404);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn petitions_from_private_channels_show_no_text_no_place_and_no_contact() {
    let h = Harness::start().await;
    let accepted = h
        .intake
        .submit(NewPetition {
            citizen_key: None,
            channel: "sms".into(),
            channel_ref: Some("sms-msg-1".into()),
            text: "Tôi là Trần Thị Bích, nhà số 7 hẻm 3: khói nhà máy giấy".into(),
            subject: None,
            category: Some("environment".into()),
            citizen: Some(Citizen { name: Some("Trần Thị Bích".into()), phone: Some("84987654321".into()), ..Citizen::default() }),
            location: Some(Location { area: Some("dian".into()), lat: Some(10.91), lon: Some(106.77), address: Some("nhà số 7 hẻm 3".into()) }),
            attachments: Vec::new(),
        })
        .await
        .expect("stored");
    let id = accepted.reference.as_str().to_owned();
    let request = h.wait_for(&id, |r| r["status_notes"].as_str().is_some_and(|n| n.starts_with("Đã chuyển"))).await;
    assert_eq!(request["description"], serde_json::Value::Null);
    assert_eq!(request["lat"], serde_json::Value::Null);
    assert_eq!(request["long"], serde_json::Value::Null);
    assert_eq!(request["address"], "Dĩ An, Bình Dương");
    assert_eq!(request["address_id"], "dian");
    assert_eq!(request["service_code"], "environment");
    // Its answer stays between the hotline and the citizen too.
    run(&h, &id, |_| Command::Answer { by: operator(), text: "Kính gửi bà Bích: đã kiểm tra".into(), desk: "hotline_desk".into(), attachments: Vec::new() }).await;
    let answered = h.wait_for(&id, |r| r["status"] == "closed").await;
    assert_eq!(answered["status_notes"], "Đã trả lời");
    for path in [format!("/open311/v2/requests/{id}.xml"), "/open311/v2/requests.json".to_owned()] {
        let body = h.get(&path).await.text();
        for secret in ["Bích", "987654321", "hẻm 3", "10.91", "nhà máy giấy"] {
            assert!(!body.contains(secret), "{secret} in {body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_request_is_closed_and_says_why() {
    let h = Harness::start().await;
    let id = h.file(&format!("api_key={KEY}&service_code=info_request&address_id=tdm&description=qu%E1%BA%A3ng+c%C3%A1o")).await;
    h.wait_for(&id, |r| r["agency_responsible"].is_string()).await;
    run(&h, &id, |_| Command::Reject { by: operator(), reason: "quảng cáo".into() }).await;
    let request = h.wait_for(&id, |r| r["status"] == "closed").await;
    assert_eq!(request["status_notes"], "Không thụ lý: nội dung không phải phản ánh, kiến nghị");
    assert_eq!(request["description"], serde_json::Value::Null, "a rejected text is not republished");
}
