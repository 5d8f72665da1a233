//! Bad input gets a clear error in one shape, and never stores anything.

use serde_json::json;

use crate::start;

fn error_code(r: &hotline_testkit::Response) -> String {
    r.json()["error"]["code"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn bad_requests_get_the_right_status_and_a_json_error_and_store_nothing() {
    let system = start();
    let json_headers = [("Content-Type", "application/json")];

    let r = system.request("POST", "/v1/petitions", &json_headers, b"{\"text\": \"unterminated");
    assert_eq!((r.status, error_code(&r).as_str()), (400, "malformed_json"), "{}", r.text());
    assert!(r.json()["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));

    let r = system.post_petition(&json!({"text": "Ổ gà", "category": "teleportation"}), None);
    assert_eq!((r.status, error_code(&r).as_str()), (422, "unknown_category"), "{}", r.text());

    let r = system.post_petition(&json!({"text": "Ổ gà", "location": {"area": "atlantis"}}), None);
    assert_eq!((r.status, error_code(&r).as_str()), (422, "unknown_area"), "{}", r.text());

    let r = system.post_petition(&json!({"category": "environment"}), None);
    assert_eq!((r.status, error_code(&r).as_str()), (422, "invalid_request"), "missing text: {}", r.text());

    let r = system.post_petition(&json!({"text": "   "}), None);
    assert_eq!((r.status, error_code(&r).as_str()), (422, "empty_text"), "{}", r.text());

    let r = system.post_petition(&json!({"text": 42}), None);
    assert_eq!(r.status, 422, "{}", r.text());

    let big = json!({"text": "x".repeat(70 * 1024)});
    let r = system.post_petition(&big, None);
    assert_eq!((r.status, error_code(&r).as_str()), (413, "body_too_large"), "{}", r.text());

    let r = system.request("POST", "/v1/petitions", &[], json!({"text": "no content type"}).to_string().as_bytes());
    assert_eq!(r.status, 415, "{}", r.text());
    assert!(!error_code(&r).is_empty());

    let r = system.post_petition(&json!({"text": "x"}), Some("bad key with spaces"));
    assert_eq!((r.status, error_code(&r).as_str()), (400, "invalid_idempotency_key"), "{}", r.text());

    let r = system.post_petition(&json!({"text": "x", "location": {"lat": 123.0, "lon": 0.0}}), None);
    assert_eq!((r.status, error_code(&r).as_str()), (422, "invalid_location"), "{}", r.text());

    let r = system.request("POST", "/v1/route/explain", &json_headers, json!({"text": "x", "category": "nope"}).to_string().as_bytes());
    assert_eq!((r.status, error_code(&r).as_str()), (422, "unknown_category"), "{}", r.text());

    let r = system.request("GET", "/v1/nowhere", &[], b"");
    assert_eq!((r.status, error_code(&r).as_str()), (404, "not_found"));

    let r = system.post_petition(&json!(["a petition in an array"]), None);
    assert_eq!((r.status, error_code(&r).as_str()), (422, "invalid_request"), "{}", r.text());

    let r = system.post_petition(&json!({"text": "Ổ gà", "categry": "environment"}), None);
    assert_eq!((r.status, error_code(&r).as_str()), (422, "invalid_request"), "{}", r.text());
    assert!(r.text().contains("categry") && !r.text().contains("PetitionRequest"), "names the field, not our types: {}", r.text());

    let r = system.request("GET", "/v1/petitions", &[], b"");
    assert_eq!((r.status, error_code(&r).as_str()), (405, "method_not_allowed"), "{}", r.text());
    let r = system.request("DELETE", "/v1/tickets/x", &[], b"");
    assert_eq!((r.status, error_code(&r).as_str()), (405, "method_not_allowed"), "{}", r.text());
    let r = system.get("/v1/tickets/%FF");
    assert_eq!((r.status, error_code(&r).as_str()), (400, "invalid_path"), "{}", r.text());

    // Nothing reached the log: its position is still 0 (not just "nothing projected yet").
    let health = system.request("GET", "/healthz", &[], b"").json();
    assert_eq!(health["log_position"], 0, "no bad request stored anything: {health}");
    assert_eq!(crate::projected_tickets(&system), 0);
}

#[test]
fn a_reused_idempotency_key_with_any_other_field_is_refused_without_naming_the_other_ticket() {
    let system = start();
    let body = json!({"text": "Mất nước 3 ngày", "citizen": {"phone": "0912000111"}, "location": {"area": "dian"}});
    let first = system.post_petition(&body, Some("key-shared-by-mistake"));
    assert_eq!(first.status, 202);
    let reference = first.json()["reference"].as_str().expect("reference").to_owned();
    for changed in [
        json!({"text": "Mất nước 3 ngày", "citizen": {"phone": "0988777666"}, "location": {"area": "dian"}}),
        json!({"text": "Mất nước 3 ngày", "citizen": {"phone": "0912000111"}, "location": {"area": "tdm"}}),
        json!({"text": "Mất nước 3 ngày", "citizen": {"phone": "0912000111"}}),
    ] {
        let r = system.post_petition(&changed, Some("key-shared-by-mistake"));
        assert_eq!((r.status, error_code(&r).as_str()), (422, "idempotency_key_reused"), "{changed}: {}", r.text());
        assert!(!r.text().contains(&reference), "the other ticket is not named: {}", r.text());
    }
    let same = system.post_petition(&body, Some("key-shared-by-mistake"));
    assert_eq!(same.status, 202);
    assert_eq!(same.json(), first.json());
}

#[test]
fn ticket_queries_need_the_admin_token_and_unknown_tickets_are_404() {
    let system = start();
    let r = system.request("GET", "/v1/tickets/018f0000-0000-7000-8000-000000000000", &[], b"");
    assert_eq!((r.status, error_code(&r).as_str()), (401, "unauthorized"));
    let r = system.request("GET", "/v1/tickets/018f0000-0000-7000-8000-000000000000", &[("Authorization", "Bearer wrong")], b"");
    assert_eq!(r.status, 401);
    let r = system.request("GET", "/v1/tickets/x/timeline", &[], b"");
    assert_eq!(r.status, 401);

    for key in ["018f0000-0000-7000-8000-000000000000", "23456789", "not-a-ticket", "ABCDEFGH"] {
        let r = system.get(&format!("/v1/tickets/{key}"));
        assert_eq!((r.status, error_code(&r).as_str()), (404, "not_found"), "{key}");
        let r = system.get(&format!("/v1/tickets/{key}/timeline"));
        assert_eq!(r.status, 404, "{key}");
    }
}

#[test]
fn odd_unicode_and_control_characters_do_not_break_anything() {
    let system = start();
    for text in ["\u{0}\u{1}\u{202e}", "🔥🔥🔥 cháy", "a\u{301}\u{301}\u{301}", &"đ".repeat(10_000), "\r\n\t"] {
        let r = system.post_petition(&json!({"text": text}), None);
        assert!(r.status == 202 || r.status == 422, "{text:?}: {} {}", r.status, r.text());
        let r = system.request("POST", "/v1/route/explain", &[("Content-Type", "application/json")], json!({"text": text}).to_string().as_bytes());
        assert_eq!(r.status, 200, "{text:?}: {}", r.text());
    }
    assert_eq!(system.request("GET", "/healthz", &[], b"").status, 200, "still healthy");
}
