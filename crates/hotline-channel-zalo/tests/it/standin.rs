//! A local stand-in of the Zalo OpenAPI, speaking its documented wire format (channels-reference §1.4–§1.6):
//! - `POST /v3.0/oa/message/cs`: JSON `{"recipient":{"user_id"},"message":{"text"}}`, the token in the
//!   `access_token` header; answers HTTP 200 with `{"error":0,"message":"Success","data":{"message_id",...}}`, or
//!   HTTP 200 with a negative `error` (-216 for an expired or unknown token, per-user codes on demand);
//! - `POST /v4/oa/access_token`: form `refresh_token&app_id&grant_type=refresh_token`, the app secret in the
//!   `secret_key` header; each refresh token works once, a used one answers `-14020`;
//! - `GET /files/<name>`: files a citizen sent (for downloads), `GET /slow/<name>` answers after a long pause.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub const APP_SECRET: &str = "app-secret-example";

/// A tiny real PNG (1×1 pixel).
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0D, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8, 0xCF, 0xC0, 0xF0, 0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D,
    0x1D, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

#[derive(Default)]
pub struct Zalo {
    /// Access tokens Zalo accepts now.
    pub valid_access: Mutex<HashSet<String>>,
    /// The one refresh token that works now.
    pub valid_refresh: Mutex<Option<String>>,
    /// Every message request: (access token, user id, text).
    pub messages: Mutex<Vec<(String, String, String)>>,
    /// Refresh requests: (refresh token presented, answer's error code).
    pub refreshes: Mutex<Vec<(String, i64)>>,
    /// Errors to answer for a user, one per request, in order (`None`: success); empty = success.
    pub scripted: Mutex<HashMap<String, Vec<Option<Answer>>>>,
    /// Files served under `/files/<name>`.
    pub files: Mutex<HashMap<String, Vec<u8>>>,
    generation: Mutex<u32>,
}

#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// HTTP 200 with this `error`.
    Error(i64),
    /// This HTTP status without a Zalo body.
    Http(u16),
}

impl Zalo {
    /// A stand-in that accepts `acc-0` and `ref-0`.
    pub fn new() -> Arc<Zalo> {
        let z = Zalo::default();
        z.valid_access.lock().expect("lock").insert("acc-0".into());
        *z.valid_refresh.lock().expect("lock") = Some("ref-0".into());
        Arc::new(z)
    }

    /// Expires every access token issued so far (Zalo answers -216 to them).
    pub fn expire_access(&self) {
        self.valid_access.lock().expect("lock").clear();
    }

    pub fn script(&self, user: &str, answers: Vec<Option<Answer>>) {
        self.scripted.lock().expect("lock").insert(user.to_owned(), answers);
    }

    pub fn texts_to(&self, user: &str) -> Vec<String> {
        self.messages.lock().expect("lock").iter().filter(|(_, u, _)| u == user).map(|(_, _, t)| t.clone()).collect()
    }

    pub fn refresh_count(&self) -> usize {
        self.refreshes.lock().expect("lock").len()
    }

    /// Serves it on a free port; returns its base URL.
    pub async fn serve(self: &Arc<Zalo>) -> String {
        let router = Router::new()
            .route("/v3.0/oa/message/cs", post(message_cs))
            .route("/v4/oa/access_token", post(access_token))
            .route("/files/{name}", get(file))
            .route("/slow/{name}", get(slow_file))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{addr}")
    }
}

async fn message_cs(State(z): State<Arc<Zalo>>, headers: HeaderMap, body: Bytes) -> Response {
    assert_eq!(headers.get("content-type").and_then(|v| v.to_str().ok()), Some("application/json"));
    assert!(headers.get("authorization").is_none(), "Zalo's token goes in the access_token header, not Authorization");
    let token = headers.get("access_token").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let request: Value = serde_json::from_slice(&body).expect("JSON body");
    let user = request["recipient"]["user_id"].as_str().expect("recipient.user_id is a string").to_owned();
    let text = request["message"]["text"].as_str().expect("message.text").to_owned();
    assert!(text.chars().count() <= 2000, "a message of {} characters", text.chars().count());
    if !z.valid_access.lock().expect("lock").contains(&token) {
        return axum::Json(json!({"error": -216, "message": "Access token is invalid"})).into_response();
    }
    let scripted = {
        let mut scripted = z.scripted.lock().expect("lock");
        match scripted.get_mut(&user) {
            Some(list) if !list.is_empty() => list.remove(0),
            _ => None,
        }
    };
    match scripted {
        Some(Answer::Error(code)) => {
            return axum::Json(json!({"error": code, "message": format!("scripted error {code}")})).into_response();
        }
        Some(Answer::Http(status)) => {
            return (StatusCode::from_u16(status).expect("status"), "upstream trouble").into_response();
        }
        None => {}
    }
    let id = {
        let mut messages = z.messages.lock().expect("lock");
        messages.push((token, user.clone(), text));
        format!("zmsg{}", messages.len())
    };
    axum::Json(json!({
        "data": {"message_id": id, "user_id": user, "quota": {"quota_type": "reply", "remain": "7", "total": "8"}},
        "error": 0,
        "message": "Success"
    }))
    .into_response()
}

async fn access_token(State(z): State<Arc<Zalo>>, headers: HeaderMap, body: Bytes) -> Response {
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/x-www-form-urlencoded")
    );
    let form: HashMap<String, String> = String::from_utf8(body.to_vec())
        .expect("utf-8 form")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.replace('+', " ")))
        .collect();
    if headers.get("secret_key").and_then(|v| v.to_str().ok()) != Some(APP_SECRET) {
        return axum::Json(json!({"error": -14002, "error_name": "Invalid secret key"})).into_response();
    }
    assert_eq!(form.get("grant_type").map(String::as_str), Some("refresh_token"));
    assert_eq!(form.get("app_id").map(String::as_str), Some(crate::APP_ID));
    let presented = form.get("refresh_token").cloned().unwrap_or_default();
    // A refresh takes a moment at Zalo too: two processes that both refresh would overlap here.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut valid = z.valid_refresh.lock().expect("lock");
    if valid.as_deref() != Some(presented.as_str()) {
        z.refreshes.lock().expect("lock").push((presented, -14020));
        return axum::Json(json!({"error": -14020, "error_name": "Invalid refresh token", "error_description": "refresh token is used or expired"}))
            .into_response();
    }
    let n = {
        let mut g = z.generation.lock().expect("lock");
        *g += 1;
        *g
    };
    let (access, refresh) = (format!("acc-{n}"), format!("ref-{n}"));
    *valid = Some(refresh.clone());
    z.valid_access.lock().expect("lock").insert(access.clone());
    z.refreshes.lock().expect("lock").push((presented, 0));
    // expires_in as a string, as Zalo sends it.
    axum::Json(json!({"access_token": access, "refresh_token": refresh, "expires_in": "90000"})).into_response()
}

async fn file(State(z): State<Arc<Zalo>>, Path(name): Path<String>) -> Response {
    match z.files.lock().expect("lock").get(&name) {
        Some(bytes) => (StatusCode::OK, bytes.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn slow_file(State(z): State<Arc<Zalo>>, Path(name): Path<String>) -> Response {
    tokio::time::sleep(Duration::from_secs(60)).await;
    file(State(z), Path(name)).await
}
