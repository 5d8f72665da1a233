//! A petition's way through the whole system: intake, log, router, projection, query API.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::{samples, start};

fn routed(v: &serde_json::Value) -> bool {
    v["status"] == "routed" || v["status"] == "needs_triage"
}

#[test]
fn a_petition_is_acknowledged_routed_and_shown_with_its_timeline() {
    let system = start();
    let started = Instant::now();
    let r = system.post_petition(
        &json!({
            "text": "Đèn tín hiệu giao thông tại ngã tư Sở Sao bị hỏng từ sáng, xe cộ đi lộn xộn rất nguy hiểm.",
            "citizen": {"name": "Nguyễn Văn A", "phone": "0912345678"},
        }),
        None,
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let ack = started.elapsed();
    let body = r.json();
    let id = body["ticket_id"].as_str().expect("ticket_id").to_owned();
    let reference = body["reference"].as_str().expect("reference").to_owned();
    assert_eq!(reference.len(), 8);

    let ticket = system.wait_for_ticket(&id, Duration::from_secs(10), routed);
    let end_to_end = started.elapsed();
    eprintln!("intake acknowledged in {ack:?}; routed and projected in {end_to_end:?}");
    assert_eq!(ticket["ticket_id"], id);
    assert_eq!(ticket["reference"], reference);
    assert_eq!(ticket["status"], "routed");
    assert_eq!(ticket["category"], "traffic_infrastructure");
    assert_eq!(ticket["agency"], "dot");
    assert_eq!(ticket["area"], "tdm", "ngã tư Sở Sao is in Thủ Dầu Một");
    assert_eq!(ticket["channel"], "app");
    assert_eq!(ticket["emergency"], false);
    assert!(ticket["received_at"].as_str().is_some());

    // The same ticket by its reference, typed the way a citizen would.
    let by_ref = system.get(&format!("/v1/tickets/{}", reference.to_lowercase()));
    assert_eq!(by_ref.status, 200);
    assert_eq!(by_ref.json()["ticket_id"], id);

    let auth = format!("Bearer {}", system.admin_token);
    let vi = system.request("GET", &format!("/v1/tickets/{id}/timeline"), &[("Authorization", &auth), ("Accept-Language", "vi")], b"");
    assert_eq!(vi.status, 200);
    let vi = vi.json();
    let types: Vec<&str> = vi["entries"].as_array().expect("entries").iter().map(|e| e["type"].as_str().expect("type")).collect();
    assert_eq!(types, ["PetitionReceived", "PetitionCategorized", "PetitionRouted"]);
    let seqs: Vec<u64> = vi["entries"].as_array().expect("entries").iter().map(|e| e["seq"].as_u64().expect("seq")).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(vi["entries"][0]["actor"]["kind"], "channel");
    assert_eq!(vi["entries"][2]["actor"]["id"], "router");
    assert!(vi["entries"][2]["summary"].as_str().expect("summary").contains("Sở Giao thông vận tải"), "{vi}");

    let en = system.request("GET", &format!("/v1/tickets/{reference}/timeline"), &[("Authorization", &auth), ("Accept-Language", "en-US,en;q=0.9")], b"");
    let en = en.json();
    assert!(en["entries"][2]["summary"].as_str().expect("summary").contains("Department of Transport"), "{en}");
    let whole = en.to_string();
    assert!(!whole.contains("0912345678") && !whole.contains("Nguyễn Văn A"), "no personal data in timelines");
}

#[test]
fn emergencies_buried_in_a_complaint_are_flagged_and_sent_to_the_emergency_service() {
    let system = start();
    let r = system.post_petition(
        &json!({
            "text": "Tôi muốn phản ánh việc thu gom rác ở khu phố tôi rất chậm, rác để cả tuần bốc mùi. \
                     Mà giờ đang có cháy lớn ở dãy trọ bên cạnh, khói đen mù mịt, có người còn kẹt bên trong!",
            "category": "environment",
        }),
        None,
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["ticket_id"].as_str().expect("id").to_owned();
    let ticket = system.wait_for_ticket(&id, Duration::from_secs(10), routed);
    assert_eq!(ticket["emergency"], true, "{ticket}");
    assert_eq!(ticket["agency"], "fire_rescue", "{ticket}");
}

#[test]
fn the_channel_category_and_area_are_used_and_area_rules_pick_the_local_agency() {
    let system = start();
    let r = system.post_petition(
        &json!({"text": "Nhóm thanh niên tụ tập gây mất trật tự mỗi đêm.", "category": "security_order", "location": {"area": "dian", "lat": 10.9, "lon": 106.77}}),
        None,
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["ticket_id"].as_str().expect("id").to_owned();
    let ticket = system.wait_for_ticket(&id, Duration::from_secs(10), routed);
    assert_eq!(ticket["category"], "security_order");
    assert_eq!(ticket["area"], "dian");
    assert_eq!(ticket["agency"], "police_dian");
}

#[test]
fn sample_petitions_from_every_channel_are_routed_or_sent_to_triage() {
    let system = start();
    let samples = samples();
    let mut ids = Vec::new();
    for s in samples.iter().step_by(7) {
        let r = system.post_petition(&json!({"text": s["text"], "subject": s["subject"]}), None);
        assert_eq!(r.status, 202, "{}", r.text());
        ids.push((r.json()["ticket_id"].as_str().expect("id").to_owned(), s["category"].clone()));
    }
    let mut right = 0;
    for (id, expected) in &ids {
        let t = system.wait_for_ticket(id, Duration::from_secs(20), routed);
        if t["category"] == *expected {
            right += 1;
        }
    }
    eprintln!("{right} of {} sample petitions categorized as labelled through the whole system", ids.len());
    assert!(right * 100 >= ids.len() * 80, "{right} of {}", ids.len());
}

#[test]
fn a_retry_with_the_same_idempotency_key_returns_the_same_ticket() {
    let system = start();
    let body = json!({"text": "Mất nước sinh hoạt 3 ngày nay ở phường Phú Hòa"});
    let first = system.post_petition(&body, Some("app-install-42:petition-7"));
    assert_eq!(first.status, 202, "{}", first.text());
    // Wait for routing, so the retry meets a ticket that has moved on.
    let id = first.json()["ticket_id"].as_str().expect("id").to_owned();
    system.wait_for_ticket(&id, Duration::from_secs(10), routed);
    let again = system.post_petition(&body, Some("app-install-42:petition-7"));
    assert_eq!(again.status, 202);
    assert_eq!(again.json(), first.json());

    let other = system.post_petition(&json!({"text": "Một phản ánh khác"}), Some("app-install-42:petition-7"));
    assert_eq!(other.status, 422, "{}", other.text());
    assert_eq!(other.json()["error"]["code"], "idempotency_key_reused");

    let timeline = system.get(&format!("/v1/tickets/{id}/timeline")).json();
    assert_eq!(timeline["entries"].as_array().expect("entries").len(), 3, "the retry added nothing: {timeline}");
}

#[test]
fn route_explain_says_why_and_stores_nothing() {
    let system = start();
    let r = system.request(
        "POST",
        "/v1/route/explain",
        &[("Content-Type", "application/json")],
        json!({"text": "Cúp điện từ sáng tới giờ ở Lái Thiêu, đồ trong tủ lạnh hư hết"}).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["category"], "electricity");
    assert_eq!(v["agency"], "evn");
    assert_eq!(v["area"], "thuanan");
    assert_eq!(v["emergency"], false);
    assert!(v["confidence"].as_f64().expect("confidence") > 0.0);
    assert!(!v["matched"].as_array().expect("matched").is_empty());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(crate::projected_tickets(&system), 0, "explain stores nothing");
}
