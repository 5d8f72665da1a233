//! Roles and access: every role against every endpoint, tokens from the admin API and from the CLI.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use hotline_testkit::{Response, System};
use serde_json::json;

use crate::{binary, start};

/// Creates a token through the admin API with the bootstrap admin token; returns (id, token).
fn create_token(system: &System, body: serde_json::Value) -> (String, String) {
    let r = admin_post(system, &system.admin_token, body);
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    (v["id"].as_str().expect("id").to_owned(), v["token"].as_str().expect("token").to_owned())
}

fn admin_post(system: &System, token: &str, body: serde_json::Value) -> Response {
    let auth = format!("Bearer {token}");
    system.request("POST", "/v1/admin/tokens", &[("Authorization", &auth), ("Content-Type", "application/json")], body.to_string().as_bytes())
}

fn get_as(system: &System, token: Option<&str>, path: &str) -> u16 {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    system.request("GET", path, &headers, b"").status
}

#[test]
fn every_role_against_every_endpoint() {
    let system = start();
    let mut tokens: BTreeMap<&str, String> = BTreeMap::new();
    tokens.insert("operator", create_token(&system, json!({"role": "operator", "name": "Lê Thị B, tổng đài"})).1);
    tokens.insert("supervisor", create_token(&system, json!({"role": "supervisor", "name": "Trần C"})).1);
    tokens.insert("admin", create_token(&system, json!({"role": "admin", "name": "Quản trị"})).1);
    tokens.insert("agency_dot", create_token(&system, json!({"role": "agency", "agency": "dot", "name": "Sở GTVT"})).1);
    tokens.insert("agency_evn", create_token(&system, json!({"role": "agency", "agency": "evn", "name": "Điện lực"})).1);

    let r = system.post_petition(&json!({"text": "Đèn tín hiệu giao thông ở ngã tư Sở Sao bị hỏng"}), None);
    assert_eq!(r.status, 202);
    let id = r.json()["ticket_id"].as_str().expect("id").to_owned();
    let reference = r.json()["reference"].as_str().expect("reference").to_owned();
    system.wait_for_ticket(&id, Duration::from_secs(10), |t| t["agency"] == "dot");

    // Reading tickets: everyone but an agency the ticket is not assigned to (404: existence does not leak).
    for (path, what) in [(format!("/v1/tickets/{id}"), "ticket"), (format!("/v1/tickets/{reference}/timeline"), "timeline")] {
        assert_eq!(get_as(&system, None, &path), 401, "{what} without a token");
        assert_eq!(get_as(&system, Some("hlt_0123_nope"), &path), 401, "{what} with a made-up token");
        for (role, expected) in [("operator", 200), ("supervisor", 200), ("admin", 200), ("agency_dot", 200), ("agency_evn", 404)] {
            assert_eq!(get_as(&system, Some(&tokens[role]), &path), expected, "{what} as {role}");
        }
    }

    // Token management: admins only (403 for other roles, 401 without a valid token).
    for role in ["operator", "supervisor", "agency_dot"] {
        let r = admin_post(&system, &tokens[role], json!({"role": "operator", "name": "x"}));
        assert_eq!((r.status, r.json()["error"]["code"].as_str()), (403, Some("forbidden")), "create as {role}");
        assert_eq!(get_as(&system, Some(&tokens[role]), "/v1/admin/tokens"), 403, "list as {role}");
        let auth = format!("Bearer {}", tokens[role]);
        assert_eq!(system.request("DELETE", "/v1/admin/tokens/0123abcd", &[("Authorization", &auth)], b"").status, 403);
    }
    assert_eq!(admin_post(&system, "nope", json!({"role": "operator", "name": "x"})).status, 401);
    let (victim_id, victim) = create_token(&system, json!({"role": "operator", "name": "to revoke"}));
    let r = admin_post(&system, &tokens["admin"], json!({"role": "supervisor", "name": "made by a registry admin"}));
    assert_eq!(r.status, 201, "a registry admin manages tokens too");

    let listed = system.request("GET", "/v1/admin/tokens", &[("Authorization", &format!("Bearer {}", tokens["admin"]))], b"");
    assert_eq!(listed.status, 200);
    let text = listed.text();
    assert!(text.contains(&victim_id) && !text.contains(&victim) && !text.contains("\"hash\""), "ids, never tokens: {text}");

    assert_eq!(get_as(&system, Some(&victim), &format!("/v1/tickets/{id}")), 200);
    let auth = format!("Bearer {}", tokens["admin"]);
    assert_eq!(system.request("DELETE", &format!("/v1/admin/tokens/{victim_id}"), &[("Authorization", &auth)], b"").status, 204);
    assert_eq!(get_as(&system, Some(&victim), &format!("/v1/tickets/{id}")), 401, "revoked at once");
    assert_eq!(system.request("DELETE", "/v1/admin/tokens/0123abcd", &[("Authorization", &auth)], b"").status, 404);

    // Bad token requests.
    for (body, why) in [
        (json!({"role": "wizard", "name": "x"}), "unknown role"),
        (json!({"role": "agency", "name": "x"}), "agency without its agency"),
        (json!({"role": "agency", "agency": "nasa", "name": "x"}), "unknown agency"),
        (json!({"role": "operator", "agency": "dot", "name": "x"}), "agency on a non-agency token"),
        (json!({"role": "operator", "name": "  "}), "empty name"),
    ] {
        let r = admin_post(&system, &system.admin_token, body);
        assert_eq!((r.status, r.json()["error"]["code"].as_str()), (422, Some("invalid_token_request")), "{why}: {}", r.text());
    }

    // Open endpoints stay open for everyone.
    for token in [None, Some(tokens["agency_evn"].as_str())] {
        assert_eq!(get_as(&system, token, "/healthz"), 200);
    }
}

#[test]
fn the_cli_creates_lists_and_revokes_tokens_of_the_running_system() {
    let system = start();
    let cli = |args: &[&str]| {
        let out = Command::new(binary()).arg("token").args(args).arg("--data-dir").arg(&system.data_dir).env_remove("NATS_URL").output().expect("runs");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stdout, stderr) = cli(&["create", "--role", "agency", "--agency", "evn", "--name", "Điện lực Bình Dương"]);
    assert_eq!(code, Some(0), "{stderr}");
    let token = stdout.lines().last().expect("a last line").to_owned();
    assert!(token.starts_with("hlt_") && !token.contains(' '), "the token alone on the last line: {stdout}");
    let id = token.trim_start_matches("hlt_").split('_').next().expect("id").to_owned();

    let r = system.post_petition(&json!({"text": "Cúp điện cả khu phố Phú Hòa từ sáng"}), None);
    let ticket = r.json()["ticket_id"].as_str().expect("id").to_owned();
    system.wait_for_ticket(&ticket, Duration::from_secs(10), |t| t["agency"] == "evn");
    assert_eq!(get_as(&system, Some(&token), &format!("/v1/tickets/{ticket}")), 200);

    let (code, stdout, _) = cli(&["list"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains(&id) && stdout.contains("agency") && stdout.contains("active") && !stdout.contains(&token), "{stdout}");

    let (code, _, stderr) = cli(&["revoke", &id]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(get_as(&system, Some(&token), &format!("/v1/tickets/{ticket}")), 401);

    let (code, _, stderr) = cli(&["create", "--role", "agency", "--agency", "nasa", "--name", "x"]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("unknown agency `nasa`"), "{stderr}");
    let (code, _, stderr) = cli(&["revoke", "ffff0000"]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("no token with id"), "{stderr}");

    let elsewhere = tempfile::tempdir().expect("tmp");
    let out = Command::new(binary()).args(["token", "list", "--data-dir"]).arg(elsewhere.path()).env_remove("NATS_URL").output().expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no running system found"), "{}", String::from_utf8_lossy(&out.stderr));
}
