//! Starting, stopping, and living without NATS for a while.

use std::time::{Duration, Instant};

use hotline_testkit::{System, TestNats};
use serde_json::json;

use crate::{binary, start};

#[test]
fn healthz_reports_nats_and_the_projection_position() {
    let system = start();
    let r = system.request("GET", "/healthz", &[], b"");
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["nats"], "connected");
}

#[test]
fn sigterm_drains_and_exits_zero_and_a_restart_keeps_everything() {
    let mut system = start();
    let r = system.post_petition(&json!({"text": "Rác thải ùn ứ ở chợ Lái Thiêu bốc mùi hôi thối"}), None);
    assert_eq!(r.status, 202);
    let id = r.json()["ticket_id"].as_str().expect("id").to_owned();
    system.wait_for_ticket(&id, Duration::from_secs(10), |t| t["status"] == "routed");
    assert_eq!(system.terminate(), Some(0), "a clean stop exits 0");
    system.spawn();
    let t = system.wait_for_ticket(&id, Duration::from_secs(10), |t| t["status"] == "routed");
    assert_eq!(t["category"], "environment");
    let timeline = system.get(&format!("/v1/tickets/{id}/timeline")).json();
    assert_eq!(timeline["entries"].as_array().expect("entries").len(), 3, "the restart doubled nothing");
}

#[test]
fn without_nats_intake_answers_503_and_stores_nothing_then_recovers() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut nats = runtime.block_on(TestNats::start());
    let url = nats.url();
    let system = System::start(binary(), &[("NATS_URL", &url)]);
    let ok = system.post_petition(&json!({"text": "Ổ gà lớn trên đường ĐT743"}), None);
    assert_eq!(ok.status, 202, "{}", ok.text());

    nats.server.kill();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let r = system.post_petition(&json!({"text": "Phản ánh khi NATS đang tắt"}), Some("while-down-1"));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "unavailable");
    assert_eq!(r.header("retry-after"), Some("1"));
    eprintln!("503 answered in {:?}", started.elapsed());
    let health = system.request("GET", "/healthz", &[], b"");
    assert_eq!(health.status, 503);

    runtime.block_on(nats.server.restart()).expect("nats restarts");
    // A different key: if the refused request had been stored after all, it would show in the count below.
    let body = json!({"text": "Phản ánh khi NATS đang tắt"});
    let accepted = system.post_until_accepted(&body, Some("after-restart-1"), Duration::from_secs(20));
    let id = accepted.json()["ticket_id"].as_str().expect("id").to_owned();
    system.wait_for_ticket(&id, Duration::from_secs(15), |t| t["status"] == "needs_triage");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(crate::projected_tickets(&system), 2, "exactly the two acknowledged petitions exist");
}

#[test]
fn a_stalled_nats_gives_outcome_unknown_and_a_keyed_retry_finds_the_one_ticket() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let nats = runtime.block_on(TestNats::start());
    let url = nats.url();
    let system = System::start(binary(), &[("NATS_URL", &url), ("HOTLINE_NATS__REQUEST_TIMEOUT_SECS", "2")]);
    let pid = libc::pid_t::try_from(nats.server.pid().expect("running")).expect("pid");
    let signal = |sig| {
        // SAFETY: kill(2) on our own nats-server child with a valid signal.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, sig);
        }
    };
    // A stalled server keeps its connections open: the write is sent, but no answer comes.
    signal(libc::SIGSTOP);
    let body = json!({"text": "Đèn tín hiệu giao thông ở ngã tư 550 bị hỏng"});
    let started = Instant::now();
    let r = system.post_petition(&body, Some("stalled-1"));
    let answered = started.elapsed();
    signal(libc::SIGCONT);
    assert_eq!(r.status, 503, "{}", r.text());
    // The stall catches whichever write is in flight: the reference claim (nothing of the petition was sent:
    // `unavailable`) or the append (sent, not confirmed: `outcome_unknown`). Either way the client learns it
    // within the deadline, and its keyed retry below ends with exactly one ticket.
    let code = r.json()["error"]["code"].as_str().unwrap_or_default().to_owned();
    assert!(code == "outcome_unknown" || code == "unavailable", "{}", r.text());
    eprintln!("{code} answered after {answered:?} (deadline 2 s)");
    assert!(answered < Duration::from_secs(10), "one deadline for the whole intake, not one per step: {answered:?}");

    // The retry with the same key finds whatever happened: one ticket, never two.
    let accepted = system.post_until_accepted(&body, Some("stalled-1"), Duration::from_secs(20));
    let id = accepted.json()["ticket_id"].as_str().expect("id").to_owned();
    system.wait_for_ticket(&id, Duration::from_secs(20), |t| t["status"] == "routed");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(crate::projected_tickets(&system), 1);
}

#[test]
fn a_broken_province_config_fails_at_start_with_the_file_and_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("province.toml");
    let mut text = hotline_domain::province::Province::BUNDLED.to_owned();
    text.push_str("\n[[this is not toml\n");
    std::fs::write(&file, &text).expect("write");
    let out = std::process::Command::new(binary())
        .args(["check-config", "--province"])
        .arg(&file)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = text.lines().count();
    assert!(stderr.contains("province.toml") && stderr.contains(&format!(":{line}:")), "{stderr}");

    let out = std::process::Command::new(binary()).args(["up", "--province"]).arg(&file).arg("--data-dir").arg(dir.path().join("d")).output().expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("province.toml"));

    let out = std::process::Command::new(binary()).arg("check-config").output().expect("runs");
    assert!(out.status.success(), "the bundled config is valid: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_killed_embedded_nats_server_is_restarted_and_intake_recovers() {
    let system = start();
    let first = system.post_petition(&json!({"text": "Ổ gà trên Quốc lộ 13 đoạn qua Lái Thiêu"}), None);
    assert_eq!(first.status, 202);
    let pid_file = system.data_dir.join("nats").join("nats-server.pid");
    let pid: i32 = std::fs::read_to_string(&pid_file).expect("pid file").trim().parse().expect("pid");
    // SAFETY: kill(2) on the embedded server's pid with a valid signal.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let started = Instant::now();
    let body = json!({"text": "Mất nước ở phường Phú Hòa"});
    let accepted = system.post_until_accepted(&body, Some("after-nats-crash"), Duration::from_secs(30));
    eprintln!("intake back {:?} after the embedded nats-server was killed", started.elapsed());
    let new_pid: i32 = std::fs::read_to_string(&pid_file).expect("pid file").trim().parse().expect("pid");
    assert_ne!(new_pid, pid, "a new server process");
    let id = accepted.json()["ticket_id"].as_str().expect("id").to_owned();
    system.wait_for_ticket(&id, Duration::from_secs(30), |t| t["status"] == "routed");
    let first_id = first.json()["ticket_id"].as_str().expect("id").to_owned();
    system.wait_for_ticket(&first_id, Duration::from_secs(30), |t| t["status"] == "routed");
}
