//! Open311 GeoReport v2 through the real binary: `hotline up` serves `/open311/v2/` with the keys from the
//! environment, a filed request is routed like any petition, read back by reference, and followed by the citizen
//! with the access code from the notice; the thorough field-by-field checks live in crates/hotline-open311.

use std::time::{Duration, Instant};

use hotline_testkit::System;
use serde_json::Value;

use crate::binary;

const KEY: &str = "e2e-open311-client-key";
const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

fn start() -> System {
    System::start(binary(), &[("HOTLINE_APP__OPEN311_API_KEYS", KEY)])
}

/// Polls `GET /open311/v2/requests/{id}.json` (no token: it is public) until `done` holds.
fn wait_for(system: &System, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let r = system.request("GET", &format!("/open311/v2/requests/{id}.json"), &[], b"");
        if r.status == 200 {
            let request = r.json()[0].clone();
            if done(&request) {
                return request;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(20), "request {id}: {} {}", r.status, r.text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_open311_client_files_a_request_that_is_routed_and_followed_by_its_reference() {
    let system = start();
    let services = system.request("GET", "/open311/v2/services.json", &[], b"");
    assert_eq!(services.status, 200, "{}", services.text());
    assert!(services.json().as_array().is_some_and(|s| s.iter().any(|s| s["service_code"] == "traffic_infrastructure")));
    let xml = system.request("GET", "/open311/v2/discovery.xml", &[], b"");
    assert_eq!(xml.header("content-type"), Some("text/xml; charset=utf-8"));
    assert!(xml.text().starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<discovery>"), "{}", xml.text());

    let body = format!(
        "api_key={KEY}&service_code=traffic_infrastructure&lat=10.9065&long=106.7694&attribute[area]=dian\
&description=%E1%BB%94+g%C3%A0+l%E1%BB%9Bn+tr%C6%B0%E1%BB%9Bc+c%E1%BB%95ng+ch%E1%BB%A3&phone=0912345678"
    );
    let filed = system.request("POST", "/open311/v2/requests.json", &[("Content-Type", FORM), ("Idempotency-Key", "e2e-1")], body.as_bytes());
    assert_eq!(filed.status, 200, "{}", filed.text());
    let answer = filed.json();
    let id = answer[0]["service_request_id"].as_str().expect("id").to_owned();
    // The retry of a client that lost the answer gets the same request.
    let again = system.request("POST", "/open311/v2/requests.json", &[("Content-Type", FORM), ("Idempotency-Key", "e2e-1")], body.as_bytes());
    assert_eq!(again.json()[0]["service_request_id"], id.as_str());

    let request = wait_for(&system, &id, |r| r["agency_responsible"].is_string());
    assert_eq!(request["status"], "open");
    assert_eq!(request["agency_responsible"], "Sở Giao thông vận tải");
    assert_eq!(request["status_notes"], "Đã chuyển Sở Giao thông vận tải xử lý");
    assert_eq!(request["address_id"], "dian");
    assert!(!request.to_string().contains("0912345678"));

    // The hotline's own API sees an app petition, and the citizen reads it with the code from the notice.
    let ticket = system.wait_for_ticket(&id, Duration::from_secs(10), |t| t["status"] == "routed");
    assert_eq!(ticket["channel"], "app");
    let notice = answer[0]["service_notice"].as_str().expect("notice");
    let code: String = notice.split("Mã tra cứu: ").nth(1).expect("code").chars().take_while(char::is_ascii_alphanumeric).collect();
    let public = system.request("GET", &format!("/v1/public/tickets/{id}?code={code}"), &[], b"");
    assert_eq!(public.status, 200, "{}", public.text());
    assert_eq!(public.json()["status"], "routed");

    // Without the key nothing is filed.
    let refused = system.request("POST", "/open311/v2/requests.xml", &[("Content-Type", FORM)], b"service_code=land&address_id=dian");
    assert_eq!(refused.status, 403);
    assert!(refused.text().contains("<errors><error><code>403</code>"), "{}", refused.text());
}
