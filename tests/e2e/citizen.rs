//! The citizen's side: the access code, the public view, answering a question, the answer delivered back on the
//! channel, and feedback that reopens or closes the ticket.

use std::time::Duration;

use hotline_testkit::{Response, System};
use serde_json::json;

use crate::start;

fn token(system: &System, role: &str, agency: Option<&str>) -> String {
    let mut body = json!({"role": role, "name": "Nguyễn Văn Cán Bộ"});
    if let Some(a) = agency {
        body["agency"] = json!(a);
    }
    let auth = format!("Bearer {}", system.admin_token);
    let r = system.request("POST", "/v1/admin/tokens", &[("Authorization", &auth), ("Content-Type", "application/json")], body.to_string().as_bytes());
    r.json()["token"].as_str().expect("token").to_owned()
}

fn act(system: &System, token: &str, ticket: &str, command: &str, body: serde_json::Value) -> Response {
    let auth = format!("Bearer {token}");
    system.request("POST", &format!("/v1/tickets/{ticket}/{command}"), &[("Authorization", &auth), ("Content-Type", "application/json")], body.to_string().as_bytes())
}

fn public(system: &System, reference: &str, code: &str) -> Response {
    system.request("GET", &format!("/v1/public/tickets/{reference}?code={code}"), &[("Accept-Language", "vi")], b"")
}

fn post_public(system: &System, reference: &str, what: &str, body: serde_json::Value) -> Response {
    system.request("POST", &format!("/v1/public/tickets/{reference}/{what}"), &[("Content-Type", "application/json")], body.to_string().as_bytes())
}

/// Waits until the ticket's timeline holds `count` events of `event_type`.
fn wait_for_events(system: &System, id: &str, event_type: &str, count: usize) -> serde_json::Value {
    let start = std::time::Instant::now();
    loop {
        let t = system.get(&format!("/v1/tickets/{id}/timeline")).json();
        let n = t["entries"].as_array().map_or(0, |e| e.iter().filter(|e| e["type"] == event_type).count());
        if n >= count {
            return t;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "no {count} × {event_type} on {id}: {t}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_citizen_follows_answers_and_judges_their_ticket_with_the_access_code() {
    let system = start();
    let dot = token(&system, "agency", Some("dot"));
    let body = json!({"text": "Đèn tín hiệu giao thông ở ngã tư Sở Sao bị hỏng", "citizen": {"name": "Trần Thị Dân", "phone": "0912345678"}});
    let r = system.post_petition(&body, Some("app-7f3a-petition-1"));
    assert_eq!(r.status, 202);
    let v = r.json();
    let (id, reference, code) = (
        v["ticket_id"].as_str().expect("id").to_owned(),
        v["reference"].as_str().expect("reference").to_owned(),
        v["access_code"].as_str().expect("access_code").to_owned(),
    );
    assert_eq!(code.len(), 12);
    let again = system.post_petition(&body, Some("app-7f3a-petition-1"));
    assert_eq!(again.json()["access_code"], code.as_str(), "a retried intake gets the same code");

    // Only the right code opens it; everything else is "not found".
    for (r, c) in [(reference.as_str(), "WRONGCODE234"), (reference.as_str(), ""), ("23456789", code.as_str())] {
        assert_eq!(public(&system, r, c).status, 404, "{r} {c}");
    }
    system.wait_for_ticket(&id, Duration::from_secs(10), |t| t["agency"] == "dot");
    let view = public(&system, &reference, &code.to_lowercase());
    assert_eq!(view.status, 200, "{}", view.text());
    assert_eq!(view.json()["agency"], "Sở Giao thông vận tải");

    // The agency asks a question: it goes out on the citizen's channel (ReplySent), and shows in the public view.
    let r = act(&system, &dot, &id, "request-info", json!({"question": "Đèn hỏng ở hướng nào của ngã tư?"}));
    assert_eq!(r.status, 200, "{}", r.text());
    wait_for_events(&system, &id, "ReplySent", 1);
    let view = public(&system, &reference, &code).json();
    assert_eq!(view["status"], "waiting_for_citizen");
    assert_eq!(view["messages"][1]["kind"], "question");

    let r = post_public(&system, &reference, "messages", json!({"code": code, "text": "Hướng từ chợ Thủ Dầu Một đi lên"}));
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["status"], "routed", "back to where it was");
    let r = post_public(&system, &reference, "messages", json!({"code": code, "text": "Nữa"}));
    assert_eq!(r.status, 409, "nobody asked: {}", r.text());
    let r = post_public(&system, &reference, "messages", json!({"code": "WRONGCODE234", "text": "x"}));
    assert_eq!(r.status, 404);

    // The answer goes back on the channel, once; the public view shows it without staff names or internal notes.
    let r = act(&system, &dot, &id, "answer", json!({
        "text": "Đã thay đèn tín hiệu hướng chợ Thủ Dầu Một.",
        "attachments": [{"name": "Biên bản nghiệm thu", "url": "https://sogtvt.binhduong.gov.vn/bb-nghiem-thu.pdf", "media_type": "application/pdf"}],
    }));
    assert_eq!(r.status, 200, "{}", r.text());
    wait_for_events(&system, &id, "ReplySent", 2);
    let view = public(&system, &reference, &code);
    let text = view.text();
    assert_eq!(view.json()["answer"], "Đã thay đèn tín hiệu hướng chợ Thủ Dầu Một.");
    assert!(!text.contains("Cán Bộ") && !text.contains("actor") && !text.contains("hlt_"), "no staff names: {text}");
    let answer = view.json()["messages"].as_array().expect("messages").iter().find(|m| m["kind"] == "answer").cloned().expect("answer");
    assert_eq!(answer["attachments"][0]["name"], "Biên bản nghiệm thu", "{answer}");
    let r = act(&system, &dot, &id, "answer", json!({"text": "x", "attachments": [{"name": "x", "url": "file:///etc/passwd"}]}));
    assert_eq!(r.status, 422, "bad links refused (the ticket is answered, but the body is checked first): {}", r.text());

    // Not satisfied, without a word: refused. With a comment: reopened to the same agency.
    let r = post_public(&system, &reference, "feedback", json!({"code": code, "satisfied": false}));
    assert_eq!(r.status, 422, "{}", r.text());
    let r = post_public(&system, &reference, "feedback", json!({"code": code, "satisfied": false, "comment": "Đèn vẫn chưa sáng"}));
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["status"], "routed");
    let t = system.wait_for_ticket(&id, Duration::from_secs(10), |t| t["status"] == "routed");
    assert_eq!(t["agency"], "dot");
    let r = act(&system, &dot, &id, "answer", json!({"text": "Đã sửa lại nguồn điện của đèn."}));
    assert_eq!(r.status, 200);
    wait_for_events(&system, &id, "ReplySent", 3);
    let r = post_public(&system, &reference, "feedback", json!({"code": code, "satisfied": true, "comment": "Cảm ơn"}));
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["status"], "closed");
    let r = post_public(&system, &reference, "feedback", json!({"code": code, "satisfied": true}));
    assert_eq!(r.status, 409, "{}", r.text());

    let timeline = system.get(&format!("/v1/tickets/{id}/timeline")).json();
    let sent = timeline["entries"].as_array().expect("entries").iter().filter(|e| e["type"] == "ReplySent").count();
    assert_eq!(sent, 3, "each reply delivered once: {timeline}");
}

#[test]
fn duplicates_get_the_answer_through_their_own_channel() {
    let system = start();
    let dot = token(&system, "agency", Some("dot"));
    let operator = token(&system, "operator", None);
    let post = |text: &str| {
        let r = system.post_petition(&json!({"text": text}), None);
        let v = r.json();
        (v["ticket_id"].as_str().expect("id").to_owned(), v["reference"].as_str().expect("ref").to_owned(), v["access_code"].as_str().expect("code").to_owned())
    };
    let (a, _, _) = post("Đèn tín hiệu ở ngã tư Sở Sao bị hỏng");
    let (b, b_ref, b_code) = post("Ngã tư Sở Sao đèn giao thông không hoạt động");
    system.wait_for_ticket(&a, Duration::from_secs(10), |t| t["agency"] == "dot");
    system.wait_for_ticket(&b, Duration::from_secs(10), |t| t["status"] == "routed");

    // Linked while the original is open: the duplicate waits, then gets the answer when it comes.
    let r = act(&system, &operator, &b, "duplicate-of", json!({"ticket": a}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "duplicate");
    let r = act(&system, &dot, &a, "answer", json!({"text": "Đèn đã được sửa lúc 10 giờ."}));
    assert_eq!(r.status, 200, "{}", r.text());
    wait_for_events(&system, &b, "ReplySent", 1);
    let view = public(&system, &b_ref, &b_code).json();
    assert_eq!(view["answer"], "Đèn đã được sửa lúc 10 giờ.", "{view}");
    assert_eq!(view["status"], "answered");

    // Linked after the original was answered: the answer comes at once.
    let (c, _, _) = post("Đèn giao thông ngã tư Sở Sao lại hỏng à?");
    system.wait_for_ticket(&c, Duration::from_secs(10), |t| t["status"] == "routed");
    let r = act(&system, &operator, &c, "duplicate-of", json!({"ticket": a}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "answered");
    let t = wait_for_events(&system, &c, "ReplySent", 1);
    let answered = t["entries"].as_array().expect("entries").iter().filter(|e| e["type"] == "PetitionAnswered").count();
    assert_eq!(answered, 1, "{t}");
    // The original still has exactly its own answer.
    let t = system.get(&format!("/v1/tickets/{a}/timeline")).json();
    assert_eq!(t["entries"].as_array().expect("entries").iter().filter(|e| e["type"] == "PetitionAnswered").count(), 1);
}

#[test]
fn duplicates_marked_while_the_original_is_answered_chains_and_dead_ends_all_end_well() {
    // Regression (review): marking and answering at the same moment lost the answer for most duplicates, a
    // chain of duplicates stalled, and a rejected original left its duplicate waiting forever.
    let system = start();
    let dot = token(&system, "agency", Some("dot"));
    let operator = token(&system, "operator", None);
    let post = |text: String| {
        let r = system.post_petition(&json!({"text": text}), None);
        let id = r.json()["ticket_id"].as_str().expect("id").to_owned();
        system.wait_for_ticket(&id, Duration::from_secs(10), |t| t["status"] == "routed");
        id
    };
    let mut pairs = Vec::new();
    for i in 0..6 {
        pairs.push((post(format!("Đèn tín hiệu ngã tư Sở Sao hỏng, phản ánh {i}")), post(format!("Đèn giao thông Sở Sao không chạy ({i})"))));
    }
    let (system_ref, dot_ref, operator_ref) = (&system, &dot, &operator);
    std::thread::scope(|s| {
        for (original, duplicate) in &pairs {
            s.spawn(move || act(system_ref, dot_ref, original, "answer", json!({"text": "Đã sửa đèn."})));
            s.spawn(move || act(system_ref, operator_ref, duplicate, "duplicate-of", json!({"ticket": original})));
        }
    });
    for (_, duplicate) in &pairs {
        let t = system.wait_for_ticket(duplicate, Duration::from_secs(15), |t| t["status"] == "answered");
        assert_eq!(t["answer"], "Đã sửa đèn.");
    }

    // A chain: Z named as a duplicate of Y, itself a duplicate of X, is linked to X and gets X's answer.
    let (x, y, z) = (post("Ổ gà trên QL13 đoạn Lái Thiêu".into()), post("QL13 có ổ gà lớn".into()), post("Ổ gà QL13 nguy hiểm".into()));
    assert_eq!(act(&system, &operator, &y, "duplicate-of", json!({"ticket": x})).status, 200);
    assert_eq!(act(&system, &operator, &z, "duplicate-of", json!({"ticket": y})).status, 200);
    assert_eq!(act(&system, &dot, &x, "answer", json!({"text": "Đã vá ổ gà."})).status, 200);
    for t in [&y, &z] {
        system.wait_for_ticket(t, Duration::from_secs(15), |t| t["status"] == "answered" && t["answer"] == "Đã vá ổ gà.");
    }

    // A rejected ticket cannot carry a duplicate.
    let spam = post("Đèn giao thông quảng cáo khuyến mãi".into());
    assert_eq!(act(&system, &operator, &spam, "reject", json!({"reason": "Quảng cáo"})).status, 200);
    let w = post("Đèn tín hiệu ngã tư 550 hỏng".into());
    let r = act(&system, &operator, &w, "duplicate-of", json!({"ticket": spam}));
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (409, Some("not_allowed")), "{}", r.text());
}

#[test]
fn commands_refuse_what_the_role_never_does_before_looking_anything_up_and_keep_the_error_shape() {
    // Regression (review): an agency learned whether a ticket existed from duplicate-of's 422 vs 403.
    let system = start();
    let dot = token(&system, "agency", Some("dot"));
    let supervisor = token(&system, "supervisor", None);
    let r = system.post_petition(&json!({"text": "Đèn tín hiệu ở ngã tư Sở Sao bị hỏng"}), None);
    let id = r.json()["ticket_id"].as_str().expect("id").to_owned();
    system.wait_for_ticket(&id, Duration::from_secs(10), |t| t["agency"] == "dot");
    for other in ["23456789", "00000000-0000-7000-8000-000000000000", &id] {
        let r = act(&system, &dot, &id, "duplicate-of", json!({"ticket": other}));
        assert_eq!(r.status, 403, "{other}: {}", r.text());
    }
    let r = act(&system, &dot, &id, "recategorize", json!({"category": "nope"}));
    assert_eq!(r.status, 403, "{}", r.text());

    // Extensions are bounded: no year 9999 (which broke timelines), nothing in the past.
    for when in ["9999-12-31T23:00:00Z", "2001-01-01T00:00:00Z"] {
        let r = act(&system, &supervisor, &id, "extend-deadline", json!({"resolve_by": when, "reason": "x"}));
        assert_eq!(r.status, 422, "{when}: {}", r.text());
    }
    assert_eq!(system.get(&format!("/v1/tickets/{id}/timeline")).status, 200);

    let auth = format!("Bearer {supervisor}");
    let r = system.request("POST", "/v1/tickets/%FF/answer", &[("Authorization", &auth)], b"{}");
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (400, Some("invalid_path")));
    let big = json!({"text": "x".repeat(70 * 1024)}).to_string();
    let r = system.request("POST", &format!("/v1/tickets/{id}/answer"), &[("Authorization", &auth), ("Content-Type", "application/json")], big.as_bytes());
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (413, Some("body_too_large")));
}

#[test]
fn an_agency_attaches_a_file_to_its_answer_and_only_that_citizen_downloads_it() {
    let system = start();
    let dot = token(&system, "agency", Some("dot"));
    let body = json!({"text": "Đèn tín hiệu ở ngã tư Sở Sao bị hỏng"});
    let r = system.post_petition(&body, None);
    let v = r.json();
    let (id, reference, code) = (v["ticket_id"].as_str().expect("id").to_owned(), v["reference"].as_str().expect("r").to_owned(), v["access_code"].as_str().expect("c").to_owned());
    system.wait_for_ticket(&id, Duration::from_secs(10), |t| t["agency"] == "dot");

    let pdf = b"%PDF-1.4 bien ban nghiem thu den tin hieu".to_vec();
    let auth = format!("Bearer {dot}");
    let up = system.request("POST", "/v1/attachments", &[("Authorization", &auth), ("Content-Type", "application/pdf")], &pdf);
    assert_eq!(up.status, 201, "{}", up.text());
    let sha = up.json()["sha256"].as_str().expect("sha256").to_owned();
    assert_eq!(up.json()["size"], pdf.len());
    assert_eq!(system.request("POST", "/v1/attachments", &[("Content-Type", "application/pdf")], &pdf).status, 401, "staff only");
    let empty = system.request("POST", "/v1/attachments", &[("Authorization", &auth)], b"");
    assert_eq!(empty.status, 422);
    let huge = vec![b'x'; 11 * 1024 * 1024];
    let r = system.request("POST", "/v1/attachments", &[("Authorization", &auth)], &huge);
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (413, Some("body_too_large")));

    let r = act(&system, &dot, &id, "answer", json!({"text": "x", "attachments": [{"name": "Biên bản", "sha256": "0".repeat(64)}]}));
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (422, Some("unknown_attachment")), "{}", r.text());
    let r = act(&system, &dot, &id, "answer", json!({
        "text": "Đã thay đèn, biên bản nghiệm thu kèm theo.",
        "attachments": [{"name": "Biên bản nghiệm thu.pdf", "sha256": sha, "media_type": "application/pdf"}],
    }));
    assert_eq!(r.status, 200, "{}", r.text());

    let path = format!("/v1/public/tickets/{reference}/attachments/{sha}?code={code}");
    let file = system.request("GET", &path, &[], b"");
    assert_eq!(file.status, 200, "{}", file.text());
    assert_eq!(file.body, pdf);
    assert_eq!(file.header("content-type"), Some("application/pdf"));
    assert_eq!(system.request("GET", &format!("/v1/public/tickets/{reference}/attachments/{sha}?code=WRONGCODE234"), &[], b"").status, 404);
    // Another ticket's citizen cannot fetch it through their own ticket.
    let other = system.post_petition(&json!({"text": "Ổ gà trên QL13"}), None).json();
    let other_path = format!(
        "/v1/public/tickets/{}/attachments/{sha}?code={}",
        other["reference"].as_str().expect("r"),
        other["access_code"].as_str().expect("c")
    );
    assert_eq!(system.request("GET", &other_path, &[], b"").status, 404);
    let staff = system.request("GET", &format!("/v1/attachments/{sha}"), &[("Authorization", &auth)], b"");
    assert_eq!((staff.status, staff.body.len()), (200, pdf.len()));
    assert_eq!(system.request("GET", "/v1/attachments/..%2F..%2Fadmin-token", &[("Authorization", &auth)], b"").status, 404);
}
