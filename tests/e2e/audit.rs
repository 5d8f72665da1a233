//! `hotline replay` under live traffic, time travel (API and CLI), and `hotline audit export` against a running
//! `hotline up`.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hotline_testkit::System;
use serde_json::json;

use crate::{binary, projected_tickets, samples, start};

fn cli(system: &System, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(binary()).args(args).arg("--data-dir").arg(&system.data_dir).env_remove("NATS_URL").output().expect("runs");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Posts `n` sample petitions and waits until each is routed or sent to triage; returns their ids.
fn settled_petitions(system: &System, n: usize) -> Vec<String> {
    let ids: Vec<String> = samples()
        .iter()
        .take(n)
        .map(|s| {
            let r = system.post_petition(&json!({"text": s["text"]}), None);
            assert_eq!(r.status, 202, "{}", r.text());
            r.json()["ticket_id"].as_str().expect("id").to_owned()
        })
        .collect();
    for id in &ids {
        system.wait_for_ticket(id, Duration::from_secs(20), |t| t["status"] == "routed" || t["status"] == "needs_triage");
    }
    ids
}

fn caught_up(system: &System, limit: Duration) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let health = system.get("/healthz").json();
        if health["projection_lag"] == 0 {
            return health;
        }
        assert!(started.elapsed() < limit, "the projection did not catch up: {health}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn replay_under_traffic_swaps_in_a_rebuilt_projection_the_running_system_follows() {
    let system = Arc::new(start());
    settled_petitions(&system, 20);
    let stop = Arc::new(AtomicBool::new(false));
    let posted = Arc::new(AtomicUsize::new(20));
    let traffic = {
        let (system, stop, posted) = (system.clone(), stop.clone(), posted.clone());
        std::thread::spawn(move || {
            let texts = samples();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let r = system.post_petition(&json!({"text": texts[i % texts.len()]["text"]}), None);
                assert_eq!(r.status, 202, "intake keeps accepting during the replay: {}", r.text());
                posted.fetch_add(1, Ordering::Relaxed);
                // The API keeps answering meanwhile.
                assert_eq!(system.get("/v1/queue?limit=5").status, 200);
                i += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let (code, _, stderr) = cli(&system, &["replay"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("events/s"), "progress with a rate: {stderr}");
    assert!(std::fs::symlink_metadata(system.data_dir.join("projections.sqlite")).expect("live path").file_type().is_symlink());
    // Traffic after the swap lands in the new file.
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::Relaxed);
    traffic.join().expect("traffic thread");
    let last = system.post_petition(&json!({"text": "Mất điện cả khu phố 3 phường Phú Hòa từ sáng"}), None);
    let last_id = last.json()["ticket_id"].as_str().expect("id").to_owned();
    system.wait_for_ticket(&last_id, Duration::from_secs(20), |t| t["events"].as_u64() >= Some(2));
    let total = posted.load(Ordering::Relaxed) + 1;
    let health = caught_up(&system, Duration::from_secs(20));
    assert_eq!(health["projection_position"], health["log_position"]);
    assert_eq!(projected_tickets(&system) as usize, total, "every accepted petition is in the swapped-in projection once");
    // Each event of the log is in the timeline once: the export (read from the log) and the projection agree.
    let (code, out, stderr) = cli(&system, &["audit", "export", "--from", "2000-01-01", "--to", "2100-01-01", "--format", "jsonl"]);
    assert_eq!(code, Some(0), "{stderr}");
    let conn = rusqlite::Connection::open(system.data_dir.join("projections.sqlite")).expect("open");
    let timeline: i64 = conn.query_row("SELECT COUNT(*) FROM timeline", [], |r| r.get(0)).expect("count");
    assert_eq!(out.lines().count() as i64, timeline, "the projection holds every event of the log, none twice");
}

#[test]
fn time_travel_shows_the_ticket_as_it_stood_then_over_the_api_and_the_cli() {
    let system = start();
    let r = system.post_petition(&json!({"text": "Ổ gà lớn giữa đường Đại lộ Bình Dương đoạn qua phường Phú Thọ, xe máy té ngã nhiều"}), None);
    let id = r.json()["ticket_id"].as_str().expect("id").to_owned();
    let now = system.wait_for_ticket(&id, Duration::from_secs(20), |t| t["status"] == "routed");
    let reference = now["reference"].as_str().expect("reference").to_owned();
    let full = system.get(&format!("/v1/tickets/{id}/timeline")).json();
    let entries = full["entries"].as_array().expect("entries").clone();
    assert!(entries.len() >= 3, "{full}");
    assert!(full.get("state").is_none(), "no state without as_of");

    // At the moment of the first event: received, nothing routed yet.
    let first_at = entries[0]["at"].as_str().expect("at");
    let then = system.get(&format!("/v1/tickets/{reference}/timeline?as_of={}", first_at.replace('+', "%2B")));
    assert_eq!(then.status, 200, "{}", then.text());
    let then = then.json();
    assert_eq!(then["entries"].as_array().expect("entries").len(), 1);
    assert_eq!(then["state"]["status"], "received");
    assert!(then["state"]["agency"].is_null());
    // Later: as it is now.
    let later = system.get(&format!("/v1/tickets/{id}/timeline?as_of=2100-01-01T00:00:00Z")).json();
    assert_eq!(later["entries"].as_array().expect("entries").len(), entries.len());
    assert_eq!(later["state"]["status"], "routed");
    assert_eq!(later["state"]["agency"], now["agency"]);
    assert_eq!(later["state"]["category"], now["category"]);
    assert_eq!(later["state"]["acknowledge_by"].is_string(), now["acknowledge_by"].is_string());
    // Before it existed: nothing.
    let before = system.get(&format!("/v1/tickets/{id}/timeline?as_of=2000-01-01T00:00:00Z")).json();
    assert_eq!((before["state"]["status"].as_str(), before["entries"].as_array().map(Vec::len)), (Some("none"), Some(0)));
    // A bad instant is 422 with a clear message.
    let bad = system.get(&format!("/v1/tickets/{id}/timeline?as_of=yesterday"));
    assert_eq!(bad.status, 422, "{}", bad.text());
    assert_eq!(bad.json()["error"]["code"], "invalid_as_of");

    // Another agency does not see it, as of any time.
    let auth = format!("Bearer {}", system.admin_token);
    let other = if now["agency"] == "evn" { "dot" } else { "evn" };
    let token = system.request(
        "POST",
        "/v1/admin/tokens",
        &[("Authorization", &auth), ("Content-Type", "application/json")],
        json!({"role": "agency", "agency": other, "name": "other"}).to_string().as_bytes(),
    );
    assert_eq!(token.status, 201, "{}", token.text());
    let other_auth = format!("Bearer {}", token.json()["token"].as_str().expect("token"));
    let hidden = system.request("GET", &format!("/v1/tickets/{id}/timeline?as_of=2100-01-01T00:00:00Z"), &[("Authorization", &other_auth)], b"");
    assert_eq!(hidden.status, 404);

    // The CLI reads the same from the log.
    let (code, out, stderr) = cli(&system, &["ticket", &reference, "--as-of", first_at, "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let cli_then: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(cli_then["state"], then["state"]);
    assert_eq!(cli_then["entries"].as_array().map(Vec::len), Some(1));
    let (code, out, stderr) = cli(&system, &["ticket", &reference]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(out.contains("status:         routed") && out.contains(&reference), "{out}");
    let (code, _, stderr) = cli(&system, &["ticket", &reference, "--as-of", "noon"]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("RFC 3339"), "{stderr}");
}

#[test]
fn audit_export_streams_the_range_with_filters_as_jsonl_and_csv() {
    let system = start();
    let ids = settled_petitions(&system, 12);
    caught_up(&system, Duration::from_secs(20));
    let (code, out, stderr) = cli(&system, &["audit", "export", "--from", "2000-01-01", "--to", "2100-01-01T00:00:00Z", "--format", "jsonl"]);
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();

    // Exactly the log's events: the same ids as the timelines, in log order, each once.
    let mut expected = Vec::new();
    for id in &ids {
        for e in system.get(&format!("/v1/tickets/{id}/timeline")).json()["entries"].as_array().expect("entries") {
            expected.push(e["event_id"].as_str().expect("id").to_owned());
        }
    }
    let mut exported: Vec<String> = lines.iter().map(|l| l["event_id"].as_str().expect("id").to_owned()).collect();
    let positions: Vec<u64> = lines.iter().map(|l| l["position"].as_u64().expect("position")).collect();
    assert!(positions.windows(2).all(|w| w[0] <= w[1]), "log order");
    exported.sort();
    expected.sort();
    assert_eq!(exported, expected);
    for l in &lines {
        assert_eq!(l["hash"].as_str().map(str::len), Some(64), "{l}");
        assert!(l["reference"].is_string() && l["actor_kind"].is_string() && l["occurred_at"].is_string(), "{l}");
    }

    // A range: from the stored time of a middle event on, a later range start gives a suffix of the export.
    let middle = &lines[lines.len() / 2];
    let (code, out, _) = cli(&system, &["audit", "export", "--from", middle["stored_at"].as_str().expect("t"), "--to", "2100-01-01", "--format", "jsonl"]);
    assert_eq!(code, Some(0));
    let suffix: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("line")).collect();
    assert!(!suffix.is_empty() && suffix.len() < lines.len());
    assert_eq!(&suffix[..], &lines[lines.len() - suffix.len()..], "same lines, same hashes, same folded agency");
    let (_, out, _) = cli(&system, &["audit", "export", "--from", "2000-01-01", "--to", "2000-01-02", "--format", "jsonl"]);
    assert_eq!(out, "", "an empty range");

    // Filters: the agency and category each event's ticket had at that event.
    let agency = lines.iter().find_map(|l| l["agency"].as_str()).expect("a routed ticket").to_owned();
    let (code, out, _) = cli(&system, &["audit", "export", "--from", "2000-01-01", "--to", "2100-01-01", "--agency", &agency]);
    assert_eq!(code, Some(0));
    let only: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("line")).collect();
    let want = lines.iter().filter(|l| l["agency"] == agency.as_str()).count();
    assert_eq!(only.len(), want);
    assert!(only.iter().all(|l| l["agency"] == agency.as_str()));
    let category = lines.iter().find_map(|l| l["category"].as_str()).expect("a category").to_owned();
    let (_, out, _) = cli(&system, &["audit", "export", "--from", "2000-01-01", "--to", "2100-01-01", "--category", &category]);
    assert_eq!(out.lines().count(), lines.iter().filter(|l| l["category"] == category.as_str()).count());

    // CSV: a header and one RFC 4180 record per event, the same values.
    let (code, out, _) = cli(&system, &["audit", "export", "--from", "2000-01-01", "--to", "2100-01-01", "--format", "csv"]);
    assert_eq!(code, Some(0));
    let records: Vec<&str> = out.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(records[0].starts_with("position,event_id,ticket_id,reference,seq,type,occurred_at,actor_kind"));
    assert_eq!(records.len(), lines.len() + 1);
    let first: Vec<&str> = records[1].split(',').collect();
    assert_eq!(first[1], lines[0]["event_id"].as_str().expect("id"));
    assert_eq!(first.last().copied(), lines[0]["hash"].as_str());

    let (code, _, stderr) = cli(&system, &["audit", "export", "--from", "last week", "--to", "2100-01-01"]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("--from"), "{stderr}");
}

/// `hotline audit verify` against the system's NATS.
fn verify(nats_url: &str) -> (Option<i32>, String, String) {
    let out = Command::new(binary()).args(["audit", "verify", "--nats-url", nats_url]).env_remove("NATS_URL").output().expect("runs");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn audit_verify_holds_on_the_live_log_and_names_the_changed_event_after_the_stream_is_rewritten() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let nats = runtime.block_on(hotline_testkit::TestNats::start());
    let url = nats.url();
    let mut system = System::start(
        binary(),
        &[("NATS_URL", url.as_str()), ("HOTLINE_SCHEDULER__INTERVAL_SECS", "1"), ("HOTLINE_SCHEDULER__CHECKPOINT_INTERVAL_SECS", "1")],
    );
    let ids = settled_petitions(&system, 4);

    // The scheduler's checkpoints catch up with the log; verify then finds every chain and checkpoint intact.
    let started = Instant::now();
    let (stdout, stderr) = loop {
        let (code, stdout, stderr) = verify(&url);
        assert_eq!(code, Some(0), "an honest log verifies:\n{stdout}\n{stderr}");
        if stdout.contains(" 0 events since the last checkpoint") {
            break (stdout, stderr);
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no checkpoint covers the log:\n{stdout}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(stdout.contains("OK: every ticket's hash chain and every checkpoint hold"), "{stdout}");
    assert!(stderr.contains("verify: [") && stderr.contains("100%"), "a progress bar on stderr: {stderr}");
    system.terminate();

    // Behind the system's back: the text of the first ticket's petition is changed in the stored message.
    let mut changed = None;
    runtime.block_on(hotline_testkit::tamper::rewrite_stream(&url, "HOTLINE_EVENTS", |seq, _, payload| {
        let mut events: Vec<serde_json::Value> = serde_json::from_slice(&payload).expect("a commit");
        if events[0]["ticket_id"] == ids[0].as_str() && events[0]["event_type"] == "PetitionReceived" {
            events[0]["data"]["text"] = json!("Nội dung đã bị sửa");
            changed = Some((seq, events[0]["event_id"].as_str().expect("id").to_owned()));
            return serde_json::to_vec(&events).expect("json");
        }
        payload
    }));
    let (position, event_id) = changed.expect("the petition was found");
    let (code, stdout, _) = verify(&url);
    assert_ne!(code, Some(0), "a changed log fails verification:\n{stdout}");
    let first = stdout.lines().find(|l| l.starts_with("first bad event:")).unwrap_or_else(|| panic!("names the first bad event:\n{stdout}"));
    assert!(
        first.contains(&format!("log position {position},")) && first.contains(&ids[0]) && first.contains("event #1") && first.contains(&event_id),
        "{first}"
    );
}
