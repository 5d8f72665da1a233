//! Integration tests of the Zalo channel: Zalo's signed webhook over real HTTP into the adapter's router, a real
//! `Intake` on a real nats-server behind it (assertions look at what landed in the event log and the channel's
//! state), and answers sent to a local stand-in of the Zalo OpenAPI that speaks its documented wire format.

mod corpus;
mod outbound;
mod standin;
mod worker;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use hotline_channel::{ChannelAdapter, ChannelContext, Intake};
use hotline_channel_zalo::ZaloChannel;
use hotline_channel_zalo::signature;
use hotline_domain::province::Province;
use hotline_domain::{Actor, Command, TicketEvent};
use hotline_runtime::ShutdownTrigger;
use hotline_store::{Cause, EventStore, JetStreamStore, OnConflict};
use hotline_testkit::TestNats;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

pub const APP_ID: &str = "360846524940903967";
pub const OA_ID: &str = "388613280878808645";
pub const OA_SECRET: &str = "oa-secret-example";

/// A nats-server, its store and an intake in front of it.
pub struct Harness {
    pub nats: TestNats,
    pub store: Arc<JetStreamStore>,
    pub intake: Intake,
}

impl Harness {
    pub async fn start() -> Harness {
        let nats = TestNats::start().await;
        let store = Arc::new(nats.store().await);
        let province = Arc::new(Province::parse(Province::BUNDLED, "bundled").expect("bundled province"));
        let intake = Intake::new(store.clone(), province);
        Harness { nats, store, intake }
    }

    pub fn context(&self, config: Value) -> (ChannelContext, ShutdownTrigger) {
        let (trigger, shutdown) = hotline_runtime::shutdown();
        let ctx = ChannelContext::new("zalo", self.intake.clone(), config, shutdown, self.nats.dir.path().join("data"));
        (ctx, trigger)
    }

    /// The tickets a Zalo user has, each as its events.
    pub async fn tickets_of(&self, user: &str) -> Vec<(Uuid, Vec<TicketEvent>)> {
        let mut out = Vec::new();
        for ticket in self.store.contact_tickets(&format!("zalo:{user}")).await.expect("contact tickets") {
            let events = self.events(ticket).await;
            if !events.is_empty() {
                out.push((ticket, events));
            }
        }
        out
    }

    pub async fn events(&self, ticket: Uuid) -> Vec<TicketEvent> {
        self.store.load(ticket).await.expect("load").events.into_iter().map(|e| e.event).collect()
    }

    /// Waits until `user` has `count` tickets, and returns them.
    pub async fn wait_for_tickets(&self, user: &str, count: usize) -> Vec<(Uuid, Vec<TicketEvent>)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let tickets = self.tickets_of(user).await;
            if tickets.len() >= count {
                return tickets;
            }
            assert!(tokio::time::Instant::now() < deadline, "{user} has {} tickets, not {count}", tickets.len());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the condition on the ticket's events holds.
    pub async fn wait_for_events(&self, ticket: Uuid, what: &str, done: impl Fn(&[TicketEvent]) -> bool) -> Vec<TicketEvent> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let events = self.events(ticket).await;
            if done(&events) {
                return events;
            }
            assert!(tokio::time::Instant::now() < deadline, "{what}: {events:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Routes the ticket by hand and has the agency ask the citizen a question (the ticket then waits for them).
    pub async fn ask(&self, ticket: Uuid) {
        use hotline_domain::access::{Principal, Role};
        let store = self.store.as_ref();
        let agency = Principal { role: Role::Agency, agency: Some("dot".into()), name: "test".into(), token_id: "t1".into() };
        let province = Province::bundled();
        let run = |command: Command| async move {
            hotline_store::execute(store, ticket, &Actor::system("test"), OffsetDateTime::now_utc(), Cause::None, OnConflict::Decide, |_, _| {
                Ok::<_, std::convert::Infallible>(command.clone())
            })
            .await
            .expect("command")
        };
        run(Command::Route(hotline_domain::ticket::RouteCommand {
            category: Some("traffic_infrastructure".into()),
            agency: Some("dot".into()),
            area: None,
            emergency: false,
            confidence: 1.0,
            source: "channel".into(),
            matched: vec![],
            triage_reason: None,
            deadlines: province.deadlines("traffic_infrastructure", OffsetDateTime::now_utc()),
            triage_agency: "hotline_desk".into(),
        }))
        .await;
        run(Command::RequestInfo { by: agency, question: "Địa chỉ cụ thể ở đâu?".into() }).await;
    }
}

/// A channel serving its webhook on a free port (and, if `run`, its inbox worker).
pub struct Served {
    pub channel: Arc<ZaloChannel>,
    pub addr: String,
    pub trigger: ShutdownTrigger,
    pub worker: Option<tokio::task::JoinHandle<()>>,
}

pub async fn serve(h: &Harness, config: Value, run: bool) -> Served {
    let channel = Arc::new(ZaloChannel::from_config(&config).expect("config"));
    let (ctx, trigger) = h.context(config);
    let router = channel.http_routes(&ctx).expect("webhook routes");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let worker = run.then(|| {
        let channel = channel.clone();
        tokio::spawn(async move {
            channel.run(ctx).await.expect("worker");
        })
    });
    Served { channel, addr, trigger, worker }
}

/// The settings of the tests' OA, with a short grouping window.
pub fn config(extra: Value) -> Value {
    let mut c = json!({"app_id": APP_ID, "oa_secret_key": OA_SECRET, "group_window_secs": "1"});
    if let (Value::Object(c), Value::Object(extra)) = (&mut c, extra) {
        c.extend(extra);
    }
    c
}

/// The keys under `prefix` that hold a value now (`ChannelState::keys` may still list one removed in the last
/// minute).
pub async fn live_keys(state: &hotline_channel::ChannelState, prefix: &str) -> Vec<String> {
    let mut live = Vec::new();
    for key in state.keys(prefix).await.expect("keys") {
        if state.get(&key).await.expect("get").is_some() {
            live.push(key);
        }
    }
    live
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64
}

/// A `user_send_*` event body as Zalo sends it (compact JSON, ids as strings, ms timestamp as a string).
pub fn user_event(event: &str, user: &str, msg_id: &str, message: Value, at_ms: u64) -> Vec<u8> {
    let mut message = message;
    message["msg_id"] = json!(msg_id);
    json!({
        "app_id": APP_ID,
        "sender": {"id": user},
        "user_id_by_app": "552177279717587730",
        "recipient": {"id": OA_ID},
        "event_name": event,
        "message": message,
        "timestamp": at_ms.to_string(),
    })
    .to_string()
    .into_bytes()
}

pub fn text_event(user: &str, msg_id: &str, text: &str) -> Vec<u8> {
    user_event("user_send_text", user, msg_id, json!({"text": text}), now_ms())
}

/// Posts a body to the webhook, signed as Zalo signs it (or with the given header value, or none).
pub async fn post(addr: &str, body: &[u8], signature: Signature) -> hotline_testkit::Response {
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    match signature {
        Signature::Valid => {
            let v: Value = serde_json::from_slice(body).expect("json body");
            let mac = signature::mac(
                v["app_id"].as_str().expect("app_id"),
                body,
                v["timestamp"].as_str().expect("timestamp"),
                OA_SECRET,
            );
            headers.push(("X-ZEvent-Signature".to_owned(), mac));
        }
        Signature::Given(s) => headers.push(("X-ZEvent-Signature".to_owned(), s)),
        Signature::None => {}
    }
    let (addr, body) = (addr.to_owned(), body.to_vec());
    tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        hotline_testkit::http("POST", &addr, "/v1/zalo/webhook", &headers, &body).expect("HTTP exchange")
    })
    .await
    .expect("join")
}

pub enum Signature {
    Valid,
    Given(String),
    None,
}
