//! Integration tests of the phone channel against real peers: the call-takers' intake and the PBX webhooks over
//! real HTTP with the API's real token check, a fake Asterisk speaking AMI on loopback, all in front of a real
//! `Intake` on a real nats-server. Assertions look at what landed in the event log and the channel's state.

mod ami;
mod corpus;
mod intake;
mod ledger;
mod webhooks;

use std::sync::Arc;

use hotline_api::auth::{AdminToken, Auth, hash_token, new_token};
use hotline_channel::{ChannelAdapter, ChannelContext, ChannelState, Intake};
use hotline_channel_phone::PhoneChannel;
use hotline_channel_phone::ledger::CallLedger;
use hotline_domain::TicketEvent;
use hotline_domain::access::Role;
use hotline_domain::event::CallLogged;
use hotline_domain::province::Province;
use hotline_runtime::ShutdownTrigger;
use hotline_store::{EventStore, JetStreamStore, TokenRecord, TokenRegistry};
use hotline_testkit::{Response, TestNats};
use uuid::Uuid;

pub const GENERIC_SECRET: &str = "generic-secret-0123456789";
pub const STRINGEE_TOKEN: &str = "tok_0123456789abcdef";

/// A nats-server, its store, an intake and the API's token check.
pub struct Harness {
    pub nats: TestNats,
    pub store: Arc<JetStreamStore>,
    pub intake: Intake,
    pub auth: Auth,
    /// Tokens by role: operator, agency.
    pub operator: String,
    pub agency: String,
}

impl Harness {
    pub async fn start() -> Harness {
        let nats = TestNats::start().await;
        let store = Arc::new(nats.store().await);
        let province = Arc::new(Province::parse(Province::BUNDLED, "bundled").expect("bundled province"));
        let intake = Intake::new(store.clone(), province);
        let auth = Auth { bootstrap: AdminToken::new("bootstrap-admin-token"), registry: store.clone() };
        let operator = token(store.as_ref(), Role::Operator, None).await;
        let agency = token(store.as_ref(), Role::Agency, Some("so_xay_dung")).await;
        Harness { nats, store, intake, auth, operator, agency }
    }

    pub fn context(&self, config: serde_json::Value) -> (ChannelContext, ShutdownTrigger) {
        let (trigger, shutdown) = hotline_runtime::shutdown();
        let ctx = ChannelContext {
            intake: self.intake.clone(),
            config,
            shutdown,
            blobs: hotline_channel::blobs::BlobStore::new(self.nats.dir.path().join("blobs")),
            data_dir: self.nats.dir.path().to_path_buf(),
            state: ChannelState::new(self.store.clone(), "phone"),
        };
        (ctx, trigger)
    }

    /// The channel built from `config` with the API's token check in front of its intake.
    pub fn channel(&self, config: &serde_json::Value) -> PhoneChannel {
        let auth = self.auth.clone();
        PhoneChannel::from_config(config).expect("config").with_authorizer(Arc::new(move |headers| {
            let auth = auth.clone();
            Box::pin(async move { auth.principal(&headers).await })
        }))
    }

    /// Serves the channel's routes on a free port; returns `host:port`, the channel's ledger and its shutdown.
    pub async fn serve(&self, config: serde_json::Value) -> (String, CallLedger, ShutdownTrigger) {
        let channel = self.channel(&config);
        let (ctx, trigger) = self.context(config);
        let ledger = channel.ledger(&ctx);
        let router = channel.http_routes(&ctx).expect("routes");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move { axum::serve(listener, router).await });
        (addr, ledger, trigger)
    }

    pub async fn events(&self, ticket: Uuid) -> Vec<TicketEvent> {
        self.store.load(ticket).await.expect("load").events.into_iter().map(|e| e.event).collect()
    }

    pub async fn calls(&self, ticket: Uuid) -> Vec<CallLogged> {
        self.events(ticket)
            .await
            .into_iter()
            .filter_map(|e| match e {
                TicketEvent::CallLogged(c) => Some(c),
                _ => None,
            })
            .collect()
    }
}

async fn token(registry: &dyn TokenRegistry, role: Role, agency: Option<&str>) -> String {
    let (id, token) = new_token();
    registry
        .create(&TokenRecord {
            id,
            role,
            agency: agency.map(str::to_owned),
            name: format!("test {}", role.as_str()),
            hash: hash_token(&token),
            created_at: time::OffsetDateTime::now_utc(),
            created_by: "test".into(),
            revoked_at: None,
        })
        .await
        .expect("token stored");
    token
}

/// One HTTP exchange (on the blocking pool: the testkit's client is blocking).
pub async fn request(method: &str, addr: &str, path: &str, headers: Vec<(String, String)>, body: Vec<u8>) -> Response {
    let (method, addr, path) = (method.to_owned(), addr.to_owned(), path.to_owned());
    tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        hotline_testkit::http(&method, &addr, &path, &headers, &body).expect("HTTP exchange")
    })
    .await
    .expect("join")
}

pub fn config() -> serde_json::Value {
    serde_json::json!({
        "generic": {"secret": GENERIC_SECRET},
        "stringee": {"account_sid": "AC123", "token": STRINGEE_TOKEN},
    })
}
