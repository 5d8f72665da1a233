//! The published feed read by a subscriber in another language: tests/subscriber/subscriber.py (Python, nats-py,
//! protobuf) against the real `hotline up`, with credentials from the real `hotline subscriber create`. Petitions of
//! several kinds go through the workflow by the API; the public subscriber and an agency's subscriber each read
//! their feed from the start, stop mid-way (the public one "crashing" with a message fetched but not stored),
//! resume from their durable consumer while the system keeps working, validate every message against the committed
//! descriptor set, and report what they saw. It must be exactly the tickets' histories as the API shows them: every
//! event once, in order, in the public feed; the agency's share of them in the agency's feed. Their credentials are
//! refused everything else.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hotline_testkit::{Response, System};
use serde_json::{Value, json};

use crate::{binary, start};

/// What the citizens wrote and were told: none of it may reach the public feed or any header.
const NAME: &str = "Trần Thị Dân";
const PHONE: &str = "0912345678";
const PHONE_INTL: &str = "84912345678";
const EMAIL: &str = "tran.thi.dan@example.vn";
const TEXT: &str = "Đèn tín hiệu giao thông ở ngã tư Sở Sao bị hỏng từ sáng";
const QUESTION: &str = "Đèn hỏng ở hướng nào của ngã tư?";
const REPLY: &str = "Hướng từ chợ Thủ Dầu Một đi lên";
const ANSWER: &str = "Đã thay bóng đèn tín hiệu ngày 28/11.";
const REASON: &str = "Đèn trong khu dân cư do UBND quản lý";

/// One event of a ticket's history: (seq, event type, event id).
type Entry = (u64, String, String);

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

fn act(system: &System, token: &str, ticket: &str, command: &str, body: Value) -> Value {
    let auth = format!("Bearer {token}");
    let r = system.request(
        "POST",
        &format!("/v1/tickets/{ticket}/{command}"),
        &[("Authorization", &auth), ("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{command} on {ticket}: {}", r.text());
    r.json()
}

fn public(system: &System, reference: &str, what: &str, body: Value) -> Response {
    system.request("POST", &format!("/v1/public/tickets/{reference}/{what}"), &[("Content-Type", "application/json")], body.to_string().as_bytes())
}

/// A petition, once the router has decided on it: (ticket id, reference, access code).
fn petition(system: &System, body: Value, settled: impl Fn(&Value) -> bool) -> (String, String, String) {
    let r = system.post_petition(&body, None);
    assert_eq!(r.status, 202, "{}", r.text());
    let v = r.json();
    let id = v["ticket_id"].as_str().expect("id").to_owned();
    system.wait_for_ticket(&id, Duration::from_secs(15), settled);
    (id, v["reference"].as_str().expect("reference").to_owned(), v["access_code"].as_str().expect("code").to_owned())
}

fn routed_to(agency: &'static str) -> impl Fn(&Value) -> bool {
    move |t| t["status"] == "routed" && t["agency"] == agency
}

/// A ticket's history as the API tells it: (seq, event type, event id).
fn timeline(system: &System, id: &str) -> Vec<Entry> {
    let r = system.get(&format!("/v1/tickets/{id}/timeline"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (e["seq"].as_u64().expect("seq"), e["type"].as_str().expect("type").to_owned(), e["event_id"].as_str().expect("event id").to_owned()))
        .collect()
}

/// Every ticket's history once it holds the events `ready` waits for and stops changing (the app channel records
/// its deliveries a moment after the commands).
fn settled(system: &System, ids: &[&str], ready: impl Fn(&str, &[Entry]) -> bool) -> Vec<Vec<Entry>> {
    let start = Instant::now();
    let mut last: Option<Vec<Vec<Entry>>> = None;
    loop {
        let now: Vec<_> = ids.iter().map(|id| timeline(system, id)).collect();
        let complete = ids.iter().zip(&now).all(|(id, t)| ready(id, t));
        if complete && last.as_ref() == Some(&now) {
            return now;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the tickets did not settle: {now:?}");
        last = Some(now);
        std::thread::sleep(Duration::from_millis(400));
    }
}

fn count(t: &[Entry], event_type: &str) -> usize {
    t.iter().filter(|(_, ty, _)| ty == event_type).count()
}

/// `hotline subscriber create` against the running system; returns the env file it printed, written to `dir`.
fn create_subscriber(system: &System, dir: &Path, args: &[&str]) -> PathBuf {
    let out = Command::new(binary())
        .args(["subscriber", "create"])
        .args(args)
        .arg("--data-dir")
        .arg(&system.data_dir)
        .env_remove("NATS_URL")
        .output()
        .expect("hotline subscriber runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "subscriber create {args:?}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("the credentials work now"), "the server took the new user: {stdout}");
    let path = dir.join(format!("{}.env", args[0]));
    std::fs::write(&path, &stdout).expect("write env file");
    path
}

fn pythonpath() -> String {
    let path = std::env::var("HOTLINE_PYTHONPATH").unwrap_or_else(|_| {
        panic!(
            "HOTLINE_PYTHONPATH is not set: this test runs the Python subscriber (nats-py, protobuf). Run \
             `export HOTLINE_PYTHONPATH=$(bash scripts/lib/python-tools.sh)` (scripts/test does it)"
        )
    });
    let check = Command::new("python3")
        .args(["-c", "import nats, nats.js, google.protobuf.json_format"])
        .env("PYTHONPATH", &path)
        .output()
        .expect("python3 runs");
    assert!(
        check.status.success(),
        "HOTLINE_PYTHONPATH={path} lacks nats-py or protobuf (run scripts/lib/python-tools.sh): {}",
        String::from_utf8_lossy(&check.stderr)
    );
    path
}

/// One run of the subscriber; returns its JSON summary. It exits 1 when it found a problem (listed in the
/// summary), which fails here with everything it said.
fn run_subscriber(settings: &Path, state: &Path, args: &[&str]) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("python3")
        .arg(root.join("tests/subscriber/subscriber.py"))
        .arg("--settings")
        .arg(settings)
        .arg("--descriptors")
        .arg(root.join("proto/hotline/v1/hotline.binpb"))
        .arg("--state")
        .arg(state)
        .args(args)
        .env("PYTHONPATH", pythonpath())
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "subscriber.py {args:?} failed ({}):\n{stdout}\n{stderr}", out.status);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("summary: {e}: {stdout}\n{stderr}"))
}

/// What a subscriber reported for a ticket: (seq, type, event id).
fn seen(summary: &Value, ticket: &str) -> Vec<Entry> {
    summary["tickets"][ticket]
        .as_array()
        .unwrap_or_else(|| panic!("no message of ticket {ticket}: {summary}"))
        .iter()
        .map(|m| (m["seq"].as_u64().expect("seq"), m["type"].as_str().expect("type").to_owned(), m["event_id"].as_str().expect("id").to_owned()))
        .collect()
}

fn assert_refused_everything(summary: &Value) {
    let permissions = summary["permissions"].as_object().expect("permission checks ran");
    assert!(permissions.len() >= 8, "{permissions:?}");
    for (what, outcome) in permissions {
        assert!(outcome.as_str().is_some_and(|o| o.starts_with("refused")), "{} may {what}: {outcome}", summary["consumer"]);
    }
}

#[test]
fn a_python_subscriber_reads_every_event_once_in_order_and_resumes_after_a_crash() {
    let started = Instant::now();
    pythonpath(); // Before anything else: say plainly what is missing.
    let system = start();
    let dir = tempfile::tempdir().expect("temp dir");
    let dot = token(&system, "agency", Some("dot"));
    let ubnd = token(&system, "agency", Some("ubnd_tdm"));
    let citizen = json!({"name": NAME, "phone": PHONE, "email": EMAIL});

    // T1, dot: acknowledged, a question, the citizen's reply, the answer, a satisfied citizen: closed.
    let (t1, r1, c1) = petition(&system, json!({"text": TEXT, "citizen": citizen}), routed_to("dot"));
    act(&system, &dot, &t1, "acknowledge", json!({}));
    act(&system, &dot, &t1, "request-info", json!({"question": QUESTION}));
    let r = public(&system, &r1, "messages", json!({"code": c1, "text": REPLY}));
    assert_eq!(r.status, 202, "{}", r.text());
    act(&system, &dot, &t1, "answer", json!({"text": ANSWER}));
    let r = public(&system, &r1, "feedback", json!({"code": c1, "satisfied": true}));
    assert_eq!(r.status, 202, "{}", r.text());
    system.wait_for_ticket(&t1, Duration::from_secs(10), |t| t["status"] == "closed");
    // T2: dot sends it back, the router gives it to ubnd_tdm, which answers.
    let (t2, _, _) = petition(&system, json!({"text": format!("{TEXT} (khu dân cư)"), "citizen": {"phone": "0912000111"}}), routed_to("dot"));
    act(&system, &dot, &t2, "acknowledge", json!({}));
    act(&system, &dot, &t2, "transfer", json!({"reason": REASON, "suggested_agency": "ubnd_tdm"}));
    system.wait_for_ticket(&t2, Duration::from_secs(10), routed_to("ubnd_tdm"));
    act(&system, &ubnd, &t2, "answer", json!({"text": ANSWER}));
    // T3: routed to dot, nothing more yet. T4: anonymous, about water: not dot's.
    let (t3, _, _) = petition(&system, json!({"text": TEXT, "citizen": {"email": EMAIL}}), routed_to("dot"));
    let (t4, _, _) =
        petition(&system, json!({"text": "Mất nước 3 ngày nay ở khu phố 2", "location": {"area": "dian"}}), |t| {
            t["agency"].as_str().is_some_and(|a| !a.is_empty())
        });

    let ids = [t1.as_str(), t2.as_str(), t3.as_str(), t4.as_str()];
    let before = settled(&system, &ids, |id, t| {
        (id != t1 || count(t, "ReplySent") == 2) && (id != t2 || count(t, "ReplySent") == 1)
    });
    let agency_of_t4 = system.get(&format!("/v1/tickets/{t4}")).json()["agency"].as_str().expect("agency").to_owned();
    assert_ne!(agency_of_t4, "dot", "T4 must not be dot's for this test to mean something");
    let published_before: usize = before.iter().map(Vec::len).sum();

    // The operator issues credentials with the real CLI: the public feed (with a spare consumer name), and dot's.
    let ioc = create_subscriber(&system, dir.path(), &["ioc", "--consumer", "spare"]);
    let dot_sys = create_subscriber(&system, dir.path(), &["dot-sys", "--agency", "dot"]);
    let forbid: Vec<String> = [NAME, PHONE, PHONE_INTL, EMAIL, "Sở Sao", QUESTION, REPLY, ANSWER, REASON, "khu phố 2"]
        .iter()
        .flat_map(|s| ["--forbid".to_owned(), (*s).to_owned()])
        .collect();
    let forbid: Vec<&str> = forbid.iter().map(String::as_str).collect();
    let (ioc_state, dot_state) = (dir.path().join("ioc.json"), dir.path().join("dot.json"));

    // First runs: from the beginning, stop mid-way. The public one dies holding a message it never stored.
    let half = published_before / 2;
    let mut args = vec!["--stop-after".to_owned(), half.to_string(), "--crash".to_owned(), "--check-permissions".to_owned()];
    args.extend(forbid.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = run_subscriber(&ioc, &ioc_state, &args);
    assert_eq!(first["stored"], half, "{first}");
    assert_eq!(first["crashed"], true, "{first}");
    assert_eq!(first["consumer_ack_pending"], 1, "the crashed message waits for its ack: {first}");
    assert_eq!(first["first_stored_this_run"], 1, "from the beginning of the stream: {first}");
    assert_refused_everything(&first);
    // dot's copies carry the citizen's words and contact, but its headers never do.
    let mut args = vec!["--stop-after", "3", "--check-permissions"];
    args.extend(&forbid);
    let dot_first = run_subscriber(&dot_sys, &dot_state, &args);
    assert_eq!(dot_first["stored"], 3, "{dot_first}");
    assert_refused_everything(&dot_first);

    // Meanwhile the system goes on: dot takes T3 on and answers it; a new petition T5 reaches dot.
    act(&system, &dot, &t3, "acknowledge", json!({}));
    act(&system, &dot, &t3, "answer", json!({"text": ANSWER}));
    let (t5, _, _) = petition(&system, json!({"text": TEXT, "citizen": {"name": NAME, "phone": PHONE}}), routed_to("dot"));
    let ids = [t1.as_str(), t2.as_str(), t3.as_str(), t4.as_str(), t5.as_str()];
    let histories = settled(&system, &ids, |id, t| {
        (id != t1 || count(t, "ReplySent") == 2) && (id != t2 && id != t3 || count(t, "ReplySent") == 1)
    });
    let published: usize = histories.iter().map(Vec::len).sum();

    // Second runs: resume from the durable consumers and read to the end.
    let mut args = vec!["--expect".to_owned(), published.to_string()];
    args.extend(forbid.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let second = run_subscriber(&ioc, &ioc_state, &args);
    assert!(second["problems"].as_array().is_some_and(Vec::is_empty), "{second}");
    assert_eq!(second["run"], 2, "{second}");
    assert!(second["redelivered_this_run"].as_u64() >= Some(1), "the crashed message came back: {second}");
    assert_eq!(second["stored_this_run"], published - half, "resumed after what it stored, nothing twice: {second}");
    assert_eq!(second["stored"], published, "{second}");
    assert_eq!((second["consumer_pending"].as_u64(), second["consumer_ack_pending"].as_u64()), (Some(0), Some(0)), "{second}");
    // Exactly the histories the API shows, each event once and in order.
    assert_eq!(second["tickets"].as_object().map(|t| t.len()), Some(ids.len()), "{second}");
    for (id, history) in ids.iter().zip(&histories) {
        assert_eq!(&seen(&second, id), history, "public feed of {id}");
    }
    let types: Vec<&str> = second["types"].as_array().expect("types").iter().filter_map(Value::as_str).collect();
    for t in [
        "PetitionReceived",
        "PetitionCategorized",
        "PetitionRouted",
        "PetitionAcknowledged",
        "InformationRequested",
        "CitizenReplied",
        "PetitionTransferred",
        "PetitionAnswered",
        "ReplySent",
        "FeedbackGiven",
        "TicketClosed",
    ] {
        assert!(types.contains(&t), "no {t} in {types:?}");
    }

    // dot's feed: each of its tickets from its routing to dot until routed elsewhere (T2 went on to ubnd_tdm);
    // nothing of T4.
    let dot_share = |history: &[Entry]| -> Vec<Entry> {
        let from = history.iter().position(|(_, t, _)| t == "PetitionRouted").expect("routed");
        let until = history[from + 1..].iter().position(|(_, t, _)| t == "PetitionRouted").map_or(history.len(), |i| from + 1 + i);
        history[from..until].to_vec()
    };
    let expected: Vec<(&str, Vec<Entry>)> =
        ids.iter().zip(&histories).filter(|(id, _)| **id != t4).map(|(id, h)| (*id, dot_share(h))).collect();
    let dot_total: usize = expected.iter().map(|(_, h)| h.len()).sum();
    let dot_total_arg = dot_total.to_string();
    let mut args = vec!["--expect", dot_total_arg.as_str()];
    args.extend(&forbid);
    let dot_second = run_subscriber(&dot_sys, &dot_state, &args);
    assert!(dot_second["problems"].as_array().is_some_and(Vec::is_empty), "{dot_second}");
    assert_eq!(dot_second["stored"], dot_total, "{dot_second}");
    assert_eq!(dot_second["stored_this_run"], dot_total - 3, "{dot_second}");
    assert_eq!(dot_second["tickets"].as_object().map(|t| t.len()), Some(expected.len()), "only dot's tickets: {dot_second}");
    for (id, share) in &expected {
        assert_eq!(&seen(&dot_second, id), share, "dot's feed of {id}");
    }
    let t2_share = dot_share(&histories[1]);
    assert!(t2_share.iter().any(|(_, t, _)| t == "PetitionTransferred"), "dot saw its transfer: {t2_share:?}");
    assert!(!t2_share.iter().any(|(_, t, _)| t == "PetitionAnswered"), "T2's answer is ubnd_tdm's: {t2_share:?}");
    // The agency's copy of the routing carries the petition with the citizen's contact; the public one never.
    let routed = |summary: &Value, id: &str| {
        let messages = summary["tickets"][id].as_array().expect("ticket");
        messages.iter().find(|m| m["type"] == "PetitionRouted").cloned().expect("routed")
    };
    assert_eq!(routed(&dot_second, &t1)["has_contact"], true, "{dot_second}");
    assert_eq!(routed(&second, &t1)["has_contact"], false, "{second}");

    // Nothing came after the subscribers finished that they should have seen.
    let after = settled(&system, &ids, |_, _| true);
    assert_eq!(after, histories, "the histories changed during the check");
    eprintln!("subscriber e2e: {published} public and {dot_total} dot messages checked in {:?}", started.elapsed());
}
