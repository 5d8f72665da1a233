//! Integration tests of the Open311 server through real HTTP on loopback, in front of a real `Intake`, a real
//! nats-server, the real router and the timeline projection following the log: what a client files is read back
//! the way any Open311 client would read it. XML is parsed with roxmltree and every element list is compared with
//! the spec's field lists (copied in `spec` from the GeoReport v2 text, open311.github.io GeoReport_v2/index.md).

mod corpus;
mod reading;
mod services;
mod spec;
mod writing;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hotline_channel::{AccessCodes, Intake};
use hotline_domain::province::Province;
use hotline_open311::{Open311, Open311Config};
use hotline_projections::TimelineReader;
use hotline_runtime::ShutdownTrigger;
use hotline_store::{EventStore, JetStreamStore};
use hotline_testkit::{Response, TestNats};

/// The key the harness accepts.
pub const KEY: &str = "test-client-key-0123456789";

/// A nats-server, the router and the projection, and the Open311 routes on a loopback port.
pub struct Harness {
    pub addr: String,
    pub store: Arc<JetStreamStore>,
    pub reader: TimelineReader,
    pub intake: Intake,
    pub codes: AccessCodes,
    _trigger: ShutdownTrigger,
    _dir: tempfile::TempDir,
    _nats: TestNats,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::with_config(serde_json::json!({ "open311_api_keys": [KEY] })).await
    }

    pub async fn with_config(config: serde_json::Value) -> Harness {
        let nats = TestNats::start().await;
        let store = Arc::new(nats.store().await);
        let events: Arc<dyn EventStore> = store.clone();
        let province = Arc::new(Province::bundled());
        let (trigger, shutdown) = hotline_runtime::shutdown();
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("projections.sqlite");
        tokio::spawn(hotline_projections::run(events.clone(), path.clone(), shutdown.clone()));
        tokio::spawn(hotline_router::Router::new(events.clone(), province.clone()).run(shutdown.clone()));
        let reader = TimelineReader::open(&path).expect("reader");
        let intake = Intake::new(events, province.clone());
        let codes = AccessCodes::new("test secret");
        let config = Open311Config::from_app_section(&config).expect("config");
        let routes = Open311::new(config, intake.clone(), reader.clone(), province, codes.clone()).routes();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, routes).with_graceful_shutdown(async move { stop.wait().await }).await;
        });
        Harness { addr, store, reader, intake, codes, _trigger: trigger, _dir: dir, _nats: nats }
    }

    pub async fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        let (addr, method, path, body) = (self.addr.clone(), method.to_owned(), path.to_owned(), body.to_vec());
        let headers: Vec<(String, String)> = headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        tokio::task::spawn_blocking(move || {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            hotline_testkit::http(&method, &addr, &path, &headers, &body).expect("http")
        })
        .await
        .expect("request task")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], b"").await
    }

    /// `POST /open311/v2/requests.{format}` with a form body.
    pub async fn post(&self, format: &str, body: &str, extra: &[(&str, &str)]) -> Response {
        let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")];
        headers.extend_from_slice(extra);
        self.request("POST", &format!("/open311/v2/requests.{format}"), &headers, body.as_bytes()).await
    }

    /// Files a request and returns its service_request_id.
    pub async fn file(&self, body: &str) -> String {
        let response = self.post("json", body, &[]).await;
        assert_eq!(response.status, 200, "{}", response.text());
        response.json()[0]["service_request_id"].as_str().expect("id").to_owned()
    }

    /// Waits until `GET requests/{id}.json` shows a request for which `done` holds, and returns it.
    pub async fn wait_for(&self, id: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let response = self.get(&format!("/open311/v2/requests/{id}.json")).await;
            if response.status == 200 {
                let request = response.json()[0].clone();
                if done(&request) {
                    return request;
                }
            }
            assert!(start.elapsed() < Duration::from_secs(20), "request {id} never got there: {}", response.text());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A parsed XML body.
pub fn xml(response: &Response) -> roxmltree::Document<'static> {
    assert_eq!(response.header("content-type"), Some("text/xml; charset=utf-8"), "{}", response.text());
    let text: &'static str = Box::leak(response.text().into_boxed_str());
    assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>"), "{text}");
    roxmltree::Document::parse(text).unwrap_or_else(|e| panic!("not well-formed XML ({e}): {text}"))
}

/// The names of an element's child elements, in order.
pub fn children(node: roxmltree::Node<'_, '_>) -> Vec<String> {
    node.children().filter(|n| n.is_element()).map(|n| n.tag_name().name().to_owned()).collect()
}

/// The text of the child element `name` ("" when empty).
pub fn child_text(node: roxmltree::Node<'_, '_>, name: &str) -> Option<String> {
    node.children().find(|n| n.has_tag_name(name)).map(|n| n.text().unwrap_or_default().to_owned())
}

/// A JSON body, with the JSON content type.
pub fn json(response: &Response) -> serde_json::Value {
    assert_eq!(response.header("content-type"), Some("application/json; charset=utf-8"), "{}", response.text());
    response.json()
}

/// The keys of the JSON object `text` at its top level, in the order the server wrote them (a parsed
/// `serde_json::Map` sorts them, so the order is read from the text).
pub fn object_keys(text: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let (mut depth, mut string_start, mut escaped) = (0i32, None::<usize>, false);
    for (i, c) in text.char_indices() {
        if let Some(start) = string_start {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    string_start = None;
                    if depth == 1 && text[i + 1..].starts_with(':') {
                        keys.push(text[start + 1..i].to_owned());
                    }
                }
                _ => {}
            }
            continue;
        }
        match c {
            '"' => string_start = Some(i),
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ => {}
        }
    }
    keys
}

/// The text of the `index`th element of the JSON array `text`.
pub fn array_item(text: &str, index: usize) -> &str {
    let (mut depth, mut in_string, mut escaped, mut seen, mut start) = (0i32, false, false, 0usize, 0usize);
    for (i, c) in text.char_indices() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' | '[' => {
                depth += 1;
                if depth == 2 {
                    start = i;
                }
            }
            '}' | ']' => {
                if depth == 2 {
                    if seen == index {
                        return &text[start..=i];
                    }
                    seen += 1;
                }
                depth -= 1;
            }
            _ => {}
        }
    }
    panic!("no item {index} in {text}")
}

/// An Open311 error body: (code, description) pairs, checked in both formats.
pub fn errors(response: &Response) -> Vec<(u16, String)> {
    if response.header("content-type").is_some_and(|t| t.starts_with("text/xml")) {
        let doc = xml(response);
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "errors", "{}", response.text());
        root.children()
            .filter(|n| n.is_element())
            .map(|e| {
                assert_eq!(e.tag_name().name(), "error");
                assert_eq!(children(e), spec::ERROR);
                let code = child_text(e, "code").and_then(|c| c.parse().ok()).expect("code");
                (code, child_text(e, "description").expect("description"))
            })
            .collect()
    } else {
        let body = json(response);
        body.as_array()
            .unwrap_or_else(|| panic!("errors are an array: {body}"))
            .iter()
            .map(|e| {
                let keys: Vec<&str> = e.as_object().expect("object").keys().map(String::as_str).collect();
                assert_eq!(keys, ["code", "description"], "{e}");
                (e["code"].as_u64().expect("numeric code") as u16, e["description"].as_str().expect("text").to_owned())
            })
            .collect()
    }
}
