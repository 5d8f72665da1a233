//! `GET /v1/stats` and `GET /v1/map.geojson` on the real binary: figures follow the workflow, filters and bad
//! input, an agency sees only its own, and the map is RFC 7946 GeoJSON of open tickets without personal data.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hotline_testkit::{Response, System};
use serde_json::{Value, json};

use crate::start;

fn token(system: &System, role: &str, agency: Option<&str>) -> String {
    let mut body = json!({"role": role, "name": format!("{role} {}", agency.unwrap_or(""))});
    if let Some(a) = agency {
        body["agency"] = json!(a);
    }
    let auth = format!("Bearer {}", system.admin_token);
    let r = system.request("POST", "/v1/admin/tokens", &[("Authorization", &auth), ("Content-Type", "application/json")], body.to_string().as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["token"].as_str().expect("token").to_owned()
}

fn get(system: &System, token: &str, path: &str) -> Response {
    let auth = format!("Bearer {token}");
    system.request("GET", path, &[("Authorization", &auth)], b"")
}

fn act(system: &System, token: &str, ticket: &str, command: &str, body: Value) -> Response {
    let auth = format!("Bearer {token}");
    let path = format!("/v1/tickets/{ticket}/{command}");
    system.request("POST", &path, &[("Authorization", &auth), ("Content-Type", "application/json")], body.to_string().as_bytes())
}

/// Posts a traffic-light petition and waits until it is routed to the Department of Transport.
fn routed(system: &System, location: Value) -> (String, String) {
    let body = json!({
        "text": "Đèn tín hiệu giao thông ở ngã tư Sở Sao bị hỏng từ sáng",
        "citizen": {"name": "Nguyễn Văn Bình", "phone": "0912345678"},
        "location": location,
    });
    let r = system.post_petition(&body, None);
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["ticket_id"].as_str().expect("id").to_owned();
    let reference = r.json()["reference"].as_str().expect("reference").to_owned();
    system.wait_for_ticket(&id, Duration::from_secs(10), |t| t["status"] == "routed" && t["agency"] == "dot");
    (id, reference)
}

#[test]
fn statistics_follow_the_workflow_filter_refuse_bad_input_and_the_map_shows_open_tickets_without_personal_data() {
    let system = start();
    let admin = system.admin_token.clone();
    let dot = token(&system, "agency", Some("dot"));
    let donre = token(&system, "agency", Some("donre"));
    let operator = token(&system, "operator", None);
    let day_before = local_today();

    let (a, a_ref) = routed(&system, json!({"lat": 10.9712, "lon": 106.6608, "address": "Số 5 đường Yersin"}));
    let (b, b_ref) = routed(&system, json!({"area": "tdm"}));
    let (c, _) = routed(&system, json!(null));
    let r = act(&system, &dot, &a, "acknowledge", json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = act(&system, &dot, &c, "answer", json!({"text": "Đã sửa đèn tín hiệu."}));
    assert_eq!(r.status, 200, "{}", r.text());

    // The projection follows the log: wait for the answer to be counted.
    let start = Instant::now();
    let stats = loop {
        let r = get(&system, &admin, "/v1/stats");
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        if v["totals"]["answered"] == 1 && v["totals"]["acknowledged"] == 1 {
            break v;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "stats never caught up: {v}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let day_after = local_today();
    let t = &stats["totals"];
    assert_eq!((t["received"].as_u64(), t["open"].as_u64()), (Some(3), Some(2)), "{stats}");
    // Deadlines are hours of working time away: both were on time.
    assert_eq!((t["acknowledged_due"].as_u64(), t["acknowledged_on_time"].as_u64()), (Some(1), Some(1)), "{stats}");
    assert_eq!((t["answered_due"].as_u64(), t["answered_on_time"].as_u64()), (Some(1), Some(1)), "{stats}");
    assert_eq!(stats["rates"]["acknowledged_on_time"], 1.0);
    assert_eq!(stats["rates"]["satisfaction"], Value::Null, "no feedback yet");
    assert_eq!(stats["filters"]["time_zone"], "Asia/Ho_Chi_Minh");
    let line = |group: &str, key: &str| stats[group].as_array().expect("breakdown").iter().find(|b| b["key"] == key).cloned();
    assert_eq!(line("by_agency", "dot").expect("dot")["received"], 3);
    assert_eq!(line("by_channel", "app").expect("app")["received"], 3);
    // Areas as the router set them (from the coordinates, the given area, or the text).
    let areas: Vec<Value> = [&a, &b, &c].iter().map(|id| system.get(&format!("/v1/tickets/{id}")).json()["area"].clone()).collect();
    assert_eq!(areas[1], "tdm");
    let in_tdm = areas.iter().filter(|area| **area == "tdm").count() as u64;
    assert_eq!(line("by_area", "tdm").expect("tdm")["received"].as_u64(), Some(in_tdm), "{stats}");
    let days = stats["by_day"].as_array().expect("days");
    assert_eq!(days.len(), 1, "{stats}");
    let today = days[0]["key"].as_str().expect("day").to_owned();
    assert!(today == day_before || today == day_after, "{today} is the local day");
    let category = system.get(&format!("/v1/tickets/{a}")).json()["category"].as_str().expect("category").to_owned();

    // Filters.
    let count = |token: &str, query: &str| -> u64 {
        let r = get(&system, token, &format!("/v1/stats{query}"));
        assert_eq!(r.status, 200, "{query}: {}", r.text());
        r.json()["totals"]["received"].as_u64().expect("received")
    };
    assert_eq!(count(&operator, &format!("?from={today}&to={today}&category={category}&agency=dot&channel=app")), 3);
    assert_eq!(count(&operator, "?area=tdm"), in_tdm);
    assert_eq!(count(&operator, "?channel=sms"), 0);
    assert_eq!(count(&operator, "?from=2999-01-01"), 0);
    assert_eq!(count(&operator, "?to=2000-01-01"), 0);
    // An agency gets its own figures whatever it asks for.
    assert_eq!(count(&dot, ""), 3);
    assert_eq!(count(&donre, "?agency=dot"), 0);
    let r = get(&system, &donre, "/v1/stats?agency=dot");
    assert_eq!(r.json()["filters"]["agency"], "donre");

    // Bad input: 422 with the shared error shape; no token: 401.
    for (query, code) in [
        ("?from=2026-13-01", "invalid_date"),
        ("?to=yesterday", "invalid_date"),
        ("?from=2026-03-02&to=2026-03-01", "invalid_date"),
        ("?category=nope", "unknown_category"),
        ("?area=atlantis", "unknown_area"),
        ("?agency=nope", "unknown_agency"),
        ("?channel=fax", "unknown_channel"),
        ("?colour=red", "invalid_query"),
    ] {
        let r = get(&system, &operator, &format!("/v1/stats{query}"));
        assert_eq!(r.status, 422, "{query}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], code, "{query}");
    }
    assert_eq!(system.request("GET", "/v1/stats", &[], b"").status, 401);
    assert_eq!(system.request("GET", "/v1/map.geojson", &[], b"").status, 401);

    // The map: the two open tickets; the answered one is not on it.
    let r = get(&system, &operator, "/v1/map.geojson");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/geo+json"));
    let body = r.text();
    for private in ["Sở Sao", "Nguyễn Văn Bình", "0912345678", "Yersin", "84912345678"] {
        assert!(!body.contains(private), "the map must not carry `{private}`: {body}");
    }
    let map = r.json();
    assert_eq!(map["type"], "FeatureCollection");
    let features = map["features"].as_array().expect("features");
    assert_eq!(features.len(), 2, "{map}");
    for f in features {
        assert_eq!(f["type"], "Feature");
        assert_eq!(f["geometry"]["type"], "Point");
        assert_eq!(f["geometry"]["coordinates"].as_array().expect("position").len(), 2);
        let keys: BTreeSet<&str> = f["properties"].as_object().expect("properties").keys().map(String::as_str).collect();
        let expected: BTreeSet<&str> =
            ["reference", "category", "agency", "area", "status", "emergency", "received_at", "deadline", "approximate"].into();
        assert_eq!(keys, expected);
        assert_eq!(f["properties"]["agency"], "dot");
        assert_eq!(f["properties"]["category"], category.as_str());
        assert!(f["properties"]["deadline"].is_string(), "a deadline runs: {f}");
    }
    let feature = |reference: &str| features.iter().find(|f| f["properties"]["reference"] == reference).expect("listed").clone();
    let fa = feature(&a_ref);
    // RFC 7946: longitude first.
    assert_eq!(fa["geometry"]["coordinates"], json!([106.6608, 10.9712]));
    assert_eq!(fa["properties"]["approximate"], false);
    assert_eq!(fa["properties"]["status"], "acknowledged");
    let fb = feature(&b_ref);
    // No coordinates: Thủ Dầu Một's configured centre, marked approximate.
    assert_eq!(fb["geometry"]["coordinates"], json!([106.6519, 10.9804]));
    assert_eq!(fb["properties"]["approximate"], true);
    assert_eq!(fb["properties"]["status"], "routed");

    // Agencies see their own tickets only.
    assert_eq!(get(&system, &dot, "/v1/map.geojson").json()["features"].as_array().expect("features").len(), 2);
    assert!(get(&system, &donre, "/v1/map.geojson").json()["features"].as_array().expect("features").is_empty());
}

/// Today in the province's time zone (UTC+7), YYYY-MM-DD.
fn local_today() -> String {
    let now = time::OffsetDateTime::now_utc().to_offset(time::macros::offset!(+7));
    now.date().to_string()
}
