//! Personal data through the real binary (docs/privacy.md): encrypted in the log from the start, and after
//! `hotline citizen erase` gone from every file the system writes (the log and every other JetStream stream and
//! bucket, the SQLite projection, the blob store, the process's own log), while the tickets, the statistics and the
//! audit chain stay whole.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hotline_store::EventStore;
use hotline_testkit::System;
use serde_json::json;

use crate::{binary, nats_url, petition_text};
use crate::email::{HOTLINE, send_one};

const NAME: &str = "Trần Thị Xoáthử";
const PHONE: &str = "0912 468 135";
const EMAIL: &str = "xoa.thu.2026@example.vn";
const ADDRESS: &str = "Số 9 hẻm Xoáthử";
const APP_TEXT: &str = "MARKER-XOA-4417";
const MAIL_TEXT: &str = "MARKER-XOA-5523";
const MAIL_SUBJECT: &str = "MARKER-SUBJ-3391";
const KEPT: &str = "CONTROL-GIU-7788";

/// What must not be anywhere once the citizen is erased: their details in every form they were given or stored.
fn needles() -> Vec<&'static str> {
    vec![NAME, "Xoáthử", PHONE, "0912468135", "84912468135", EMAIL, ADDRESS, APP_TEXT, MAIL_TEXT, MAIL_SUBJECT]
}

/// Every file under `dir` (recursively) whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read dir").flatten() {
                stack.push(entry.path());
            }
        } else if meta.is_file()
            && let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        {
            found.push(path.display().to_string());
        }
    }
    found
}

fn cli(system: &System, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(binary()).args(args).arg("--data-dir").arg(&system.data_dir).env_remove("NATS_URL").output().expect("runs");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn petition(system: &System, body: serde_json::Value) -> String {
    let r = system.post_petition(&body, None);
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["ticket_id"].as_str().expect("id").to_owned()
}

#[test]
fn erasing_a_citizen_leaves_their_personal_data_nowhere_the_system_writes() {
    let logs = tempfile::tempdir().expect("tmp");
    let log = logs.path().join("hotline.log");
    let env = [
        ("HOTLINE_LOG", "debug"),
        ("HOTLINE_EMAIL__RECIPIENTS", HOTLINE),
        ("HOTLINE_EMAIL__FROM", "1022 <tiepnhan@1022.tinh.gov.vn>"),
        ("HOTLINE_EMAIL__DOMAIN", "1022.tinh.gov.vn"),
        ("HOTLINE_EMAIL__RELAY", "smtp://127.0.0.1:1"),
        ("HOTLINE_SCHEDULER__INTERVAL_SECS", "1"),
        ("HOTLINE_SCHEDULER__CHECKPOINT_INTERVAL_SECS", "1"),
    ];
    let mut system = System::start_logged(binary(), &env, log.clone());
    let citizen = json!({"name": NAME, "phone": PHONE, "email": EMAIL});
    let first = petition(&system, json!({
        "text": format!("Đèn tín hiệu giao thông ngã tư Phú Hoà bị hỏng từ sáng nay, rất nguy hiểm. {APP_TEXT}"),
        "citizen": citizen,
        "location": {"address": ADDRESS, "area": "tdm"},
    }));
    let second = petition(&system, json!({"text": format!("Rác thải không được thu gom ba ngày nay. {APP_TEXT}"), "citizen": citizen}));
    let kept = petition(&system, json!({"text": format!("Cống thoát nước bị tắc gây ngập. {KEPT}"), "citizen": {"phone": "0987 000 111"}}));
    let (reference, mail) = send_one(
        &system.smtp_addr,
        json!({
            "from": EMAIL, "name": NAME, "subject": format!("Phản ánh {MAIL_SUBJECT}"), "message_id": "xoa-1@mail.example.vn",
            "text": format!("Có người lấn chiếm vỉa hè trước nhà tôi. {MAIL_TEXT}"),
            "attachments": [{"name": "anh-via-he.jpg", "type": "image/jpeg", "size": 3000}],
        }),
    );
    let file = mail["files"][0]["sha256"].as_str().expect("sha256").to_owned();
    let blob = system.data_dir.join("blobs").join(&file[..2]).join(&file);
    assert!(blob.is_file(), "the citizen's file is kept: {}", blob.display());
    let mailed = system.get(&format!("/v1/tickets/{reference}")).json()["ticket_id"].as_str().expect("mailed ticket").to_owned();
    for id in [&first, &second, &kept, &mailed] {
        system.wait_for_ticket(id, Duration::from_secs(30), |t| t["status"] == "routed" || t["status"] == "needs_triage");
    }

    // Before: the API shows the citizen's data (the projection holds it), but the log holds it only encrypted.
    let shown = system.get(&format!("/v1/tickets/{first}")).text();
    assert!(shown.contains(APP_TEXT), "{shown}");
    let log_stream = system.data_dir.join("nats");
    for needle in needles() {
        let leaks: Vec<String> = files_containing(&log_stream, needle).into_iter().filter(|f| f.contains("HOTLINE_EVENTS")).collect();
        assert!(leaks.is_empty(), "`{needle}` is in the log in plaintext: {leaks:?}");
    }
    assert!(!files_containing(&system.data_dir, APP_TEXT).is_empty(), "the check below can see plaintext where it is");
    // The agency's copy in the published feed carries the petition: wait until the feed has it, so the erasure
    // below has to take it out of the feed's stream too.
    let started = Instant::now();
    while !files_containing(&log_stream, APP_TEXT).iter().any(|f| f.contains("HOTLINE_FEED")) {
        assert!(started.elapsed() < Duration::from_secs(30), "the feed never published the agency's copy");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Erase the citizen: by their phone number (the app petitions), then by their e-mail address (the mail).
    let (code, stdout, stderr) = cli(&system, &["citizen", "erase", PHONE]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("erased: 2 tickets"), "{stdout}");
    let (code, stdout, stderr) = cli(&system, &["citizen", "erase", EMAIL]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("erased: 1 tickets") && stdout.contains("1 files"), "{stdout}");
    let (code, stdout, _) = cli(&system, &["citizen", "erase", EMAIL]);
    assert_ne!(code, Some(0), "a citizen erased has no key left: {stdout}");

    // The API shows "[erased]" where the personal data was; the tickets and their workflow stay.
    for id in [&first, &second, &mailed] {
        let ticket = system.wait_for_ticket(id, Duration::from_secs(20), |t| t["text"] == "[erased]");
        assert!(ticket["category"].is_string() || ticket["status"] == "needs_triage", "{ticket}");
    }
    let timeline = system.get(&format!("/v1/tickets/{first}/timeline")).text();
    assert!(timeline.contains("PersonalDataErased") && !timeline.contains(APP_TEXT), "{timeline}");
    assert!(system.get(&format!("/v1/tickets/{kept}")).text().contains(KEPT), "another citizen's petition is untouched");
    // ...in the log too, read afresh (another key destroyed by mistake would show here, not in the projection).
    assert!(log_text(&system, &kept).contains(KEPT), "another citizen's key is intact");
    assert_eq!(log_text(&system, &first), "[erased]");
    assert!(!blob.exists(), "the citizen's file is gone from the blob store");

    // Statistics still count the erased tickets; the audit chain still verifies.
    let stats = system.get("/v1/stats").json();
    assert_eq!(stats["totals"]["received"], 4, "{stats}");
    let started = Instant::now();
    loop {
        let (code, stdout, stderr) = cli(&system, &["audit", "verify"]);
        assert_eq!(code, Some(0), "the log still verifies after erasure: {stdout}{stderr}");
        if stdout.contains(" 0 events since the last checkpoint") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{stdout}");
        std::thread::sleep(Duration::from_millis(500));
    }

    // Nowhere on disk: every file of the data dir (JetStream streams and buckets, SQLite and its WAL, blobs) and
    // the process's log. The feed drops its copies as its projector catches up: give it a moment.
    let started = Instant::now();
    let leaks = loop {
        let leaks: Vec<(&str, Vec<String>)> =
            needles().into_iter().map(|n| (n, files_containing(&system.data_dir, n))).filter(|(_, f)| !f.is_empty()).collect();
        if leaks.is_empty() || started.elapsed() > Duration::from_secs(20) {
            break leaks;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(leaks.is_empty(), "personal data left after erasure (system running): {leaks:?}");
    assert_eq!(system.terminate(), Some(0), "clean shutdown");
    for needle in needles() {
        let mut leaks = files_containing(&system.data_dir, needle);
        leaks.extend(files_containing(logs.path(), needle));
        assert!(leaks.is_empty(), "`{needle}` is still written somewhere: {leaks:?}");
    }
    assert!(!files_containing(&system.data_dir, KEPT).is_empty(), "the search does find data that was not erased");
    assert!(std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) > 0, "the process did write a log");
}

/// A ticket's petition text as the log gives it to a process that never read it before (no cached key).
fn log_text(system: &System, ticket: &str) -> String {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = hotline_store::JetStreamStore::connect(&nats_url(system), hotline_store::JetStreamConfig::default()).await.expect("connects");
        petition_text(&store, ticket.parse().expect("uuid")).await
    })
}

/// Files a petition in `category` for the citizen with `phone`; returns its id once routed.
fn filed(system: &System, category: &str, phone: &str, text: &str) -> String {
    let id = petition(system, json!({"text": text, "category": category, "citizen": {"phone": phone}}));
    system.wait_for_ticket(&id, Duration::from_secs(30), |t| t["status"] == "routed");
    id
}

#[test]
fn retention_erases_ended_tickets_of_a_category_and_a_key_only_once_all_its_tickets_are() {
    let mut system = System::start(binary(), &[]);
    let auth = format!("Bearer {}", system.admin_token);
    // Citizen A: an environment ticket that ends and one still open; citizen B: one environment ticket that ends;
    // C: a traffic ticket that ends (another category, kept longer).
    let a_ended = filed(&system, "environment", "0911 000 001", "Khói bụi từ nhà máy gạch RETAIN-A1");
    let a_open = filed(&system, "environment", "0911 000 001", "Nước thải đổ ra kênh RETAIN-A2");
    let b_ended = filed(&system, "environment", "0911 000 002", "Đốt rác gây khói RETAIN-B1");
    let c_ended = filed(&system, "traffic_infrastructure", "0911 000 003", "Ổ gà trên đường RETAIN-C1");
    for id in [&a_ended, &b_ended, &c_ended] {
        let r = system.request("POST", &format!("/v1/tickets/{id}/close"), &[("Authorization", &auth), ("Content-Type", "application/json")], br#"{"reason":"xong"}"#);
        assert_eq!(r.status, 200, "{}", r.text());
        system.wait_for_ticket(id, Duration::from_secs(20), |t| t["status"] == "closed");
    }

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime
        .block_on(hotline_store::JetStreamStore::connect(&nats_url(&system), hotline_store::JetStreamConfig::default()))
        .expect("connects");
    let store = std::sync::Arc::new(store);
    let reader = hotline_projections::TimelineReader::open(&system.data_dir.join("projections.sqlite")).expect("projection");
    let erasure = hotline::erasure::Erasure::new(store.clone(), reader, system.data_dir.join("blobs"));
    let rules = vec![("environment".to_owned(), 30), ("traffic_infrastructure".to_owned(), 3650)];
    let now = time::OffsetDateTime::now_utc();

    // Today nothing is past 30 days; 31 days on, the two ended environment tickets are.
    let none = runtime.block_on(hotline::erasure::retention_tick(&erasure, 0, &rules, now)).expect("tick");
    assert_eq!(none, hotline::erasure::Erased::default());
    let later = runtime.block_on(hotline::erasure::retention_tick(&erasure, 0, &rules, now + time::Duration::days(31))).expect("tick");
    assert_eq!((later.tickets, later.keys), (2, 1), "A's ended ticket and B's; only B's key (A still has an open ticket): {later:?}");
    let again = runtime.block_on(hotline::erasure::retention_tick(&erasure, 0, &rules, now + time::Duration::days(31))).expect("tick");
    assert_eq!(again.tickets, 0, "an erased ticket is not erased twice");

    for (id, erased) in [(&a_ended, true), (&a_open, false), (&b_ended, true), (&c_ended, false)] {
        let t = system.wait_for_ticket(id, Duration::from_secs(20), |t| (t["text"] == "[erased]") == erased);
        assert_eq!(t["text"] == "[erased]", erased, "{t}");
    }
    // Each erasure is an event of its ticket, saying why.
    let history = runtime.block_on(store.load(a_ended.parse().expect("uuid"))).expect("load");
    let last = history.events.last().expect("events");
    assert!(matches!(&last.event, hotline_domain::TicketEvent::PersonalDataErased(e) if e.reason == hotline_domain::event::ErasureReason::Retention), "{last:?}");
    assert_eq!(last.actor.id, "retention");
    // A's key lives on (the open ticket still reads from the log, read afresh), B's is gone.
    assert!(log_text(&system, &a_open).contains("RETAIN-A2"), "A's other ticket is still readable");
    assert!(log_text(&system, &c_ended).contains("RETAIN-C1"), "another category's retention is not due");
    assert_eq!(log_text(&system, &b_ended), "[erased]");
    assert!(runtime.block_on(store.identity_key("phone:84911000001")).expect("key").is_some());
    assert!(runtime.block_on(store.identity_key("phone:84911000002")).expect("key").is_none());
    assert_eq!(system.terminate(), Some(0));

    // A retention for a category the province does not have is refused before anything runs.
    let out = Command::new(binary()).args(["check-config"]).env("HOTLINE_RETENTION__CATEGORIES__NO_SUCH_THING", "30").output().expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("retention.categories.no_such_thing"), "{}", String::from_utf8_lossy(&out.stderr));
}
