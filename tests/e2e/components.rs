//! `hotline serve <component>`: the same system as separate processes sharing one NATS and one data dir.

use std::process::Command;
use std::time::Duration;

use hotline_testkit::TestNats;
use serde_json::json;

use crate::{Served, binary};

/// Starts `hotline serve <component>`; for HTTP components, returns the address it printed.
fn serve(component: &str, nats: &str, data_dir: &std::path::Path) -> (Served, Option<String>) {
    let prefix = format!("hotline: {component} listening on http://");
    let http = component == "api" || component == "app";
    let served = crate::serve(component, &["--http", "127.0.0.1:0"], nats, data_dir, &[("HOTLINE_ADMIN_TOKEN", Some("t0ken"))], http.then_some(prefix.as_str()));
    let addr = served.addr.clone();
    (served, addr)
}

#[test]
fn the_components_run_as_separate_processes_against_one_nats() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let nats = runtime.block_on(TestNats::start());
    let dir = tempfile::tempdir().expect("tmp");
    let (_projections, _) = serve("projections", &nats.url(), dir.path());
    let (_router, _) = serve("router", &nats.url(), dir.path());
    let (_app, app) = serve("app", &nats.url(), dir.path());
    let (_api, api) = serve("api", &nats.url(), dir.path());
    let (app, api) = (app.expect("app address"), api.expect("api address"));

    let body = json!({"text": "Nước máy có mùi lạ và đục ở phường Dĩ An mấy hôm nay"}).to_string();
    let r = hotline_testkit::http("POST", &app, "/v1/petitions", &[("Content-Type", "application/json")], body.as_bytes())
        .expect("post");
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["ticket_id"].as_str().expect("id").to_owned();

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = hotline_testkit::http("GET", &api, &format!("/v1/tickets/{id}"), &[("Authorization", "Bearer t0ken")], b"")
            .expect("get");
        if r.status == 200 && r.json()["status"] == "routed" {
            assert_eq!(r.json()["agency"], "water");
            assert_eq!(r.json()["area"], "dian");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not routed: {} {}", r.status, r.text());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn serve_without_nats_url_and_up_without_a_usable_nats_server_say_what_to_do() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = Command::new(binary()).args(["serve", "router", "--data-dir"]).arg(dir.path()).env_remove("NATS_URL").output().expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NATS_URL"), "{}", String::from_utf8_lossy(&out.stderr));

    let out = Command::new(binary())
        .args(["up", "--data-dir"])
        .arg(dir.path())
        .env_remove("NATS_URL")
        .env("HOTLINE_NATS_SERVER", dir.path().join("no-such-nats-server"))
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nats-server >= 2.12") && stderr.contains("scripts/up") && stderr.contains("no-such-nats-server"), "{stderr}");
}
