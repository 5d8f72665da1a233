//! The `phone` channel: citizens call the hotline, a call-taker files what they said, and the PBX's record of the
//! call joins the ticket.
//!
//! In: the call-takers' intake `POST /v1/phone/intake` ([`desk`]), which is the petition, and PBX call events:
//! `POST /v1/phone/events/{pbx}` webhooks ([`pbx`]: our signed generic format and Stringee) and an Asterisk AMI
//! bridge ([`ami`]). Call facts go through the [`ledger::CallLedger`]: onto the call's ticket, or kept in the
//! channel's state until the petition is filed.
//! Out: nothing on this channel. Answers to phone callers go out by SMS (the SMS channel answers `phone`
//! tickets); when the caller's number cannot take an SMS, the ticket enters the operators' call-back queue.
//!
//! Configuration is the `[phone]` section ([`config`]); docs/channels/phone.md explains how to wire a PBX.

pub mod ami;
pub mod call;
pub mod config;
pub mod desk;
pub mod fuzz;
pub mod ledger;
pub mod pbx;

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use hotline_channel::{ChannelAdapter, ChannelContext, ChannelError, DeliveryError, DeliveryReceipt, OutboundMessage};
use hotline_domain::event::CallLogged;
use tokio::sync::mpsc;

pub use config::{ConfigError, KEYS, PhoneConfig};
pub use desk::Authorize;
use ledger::{CallLedger, LedgerError};
use pbx::PbxWebhook;

/// The channel's name in events.
pub const CHANNEL: &str = "phone";

/// The phone channel adapter.
pub struct PhoneChannel {
    config: PhoneConfig,
    authorize: Option<Authorize>,
}

impl PhoneChannel {
    /// Builds the channel from its `[phone]` section.
    pub fn from_config(value: &serde_json::Value) -> Result<PhoneChannel, ConfigError> {
        Ok(PhoneChannel { config: PhoneConfig::from_value(value)?, authorize: None })
    }

    /// Who may use the call-takers' intake: the API's token check (see [`desk`]).
    pub fn with_authorizer(mut self, authorize: Authorize) -> PhoneChannel {
        self.authorize = Some(authorize);
        self
    }

    pub fn config(&self) -> &PhoneConfig {
        &self.config
    }

    /// The ledger of a running channel.
    pub fn ledger(&self, ctx: &ChannelContext) -> CallLedger {
        CallLedger::new(ctx.intake.clone(), ctx.state.clone(), self.config.pending_ttl)
    }

    fn webhooks(&self) -> Vec<Arc<dyn PbxWebhook>> {
        let mut hooks: Vec<Arc<dyn PbxWebhook>> = Vec::new();
        if let Some(g) = &self.config.generic {
            hooks.push(Arc::new(pbx::generic::GenericWebhook::new(g.secret.clone(), self.config.replay_window)));
        }
        if let Some(s) = &self.config.stringee {
            hooks.push(Arc::new(pbx::stringee::StringeeWebhook::new(s.account_sid.clone(), s.token.clone(), s.duration_unit)));
        }
        hooks
    }
}

impl ChannelAdapter for PhoneChannel {
    fn name(&self) -> &'static str {
        CHANNEL
    }

    fn http_routes(&self, ctx: &ChannelContext) -> Option<axum::Router> {
        let ledger = self.ledger(ctx);
        Some(
            desk::routes(ctx.intake.clone(), ledger.clone(), self.authorize.clone())
                .merge(pbx::routes(self.webhooks(), ledger)),
        )
    }

    /// The sweep of waiting call facts, and the AMI bridge when configured, until shutdown.
    fn run(self: Arc<Self>, ctx: ChannelContext) -> BoxFuture<'static, Result<(), ChannelError>> {
        async move {
            let ledger = self.ledger(&ctx);
            let mut tasks = tokio::task::JoinSet::new();
            tasks.spawn(sweep(ledger.clone(), self.config.sweep_interval, ctx.shutdown.clone()));
            if let Some(ami) = self.config.ami.clone() {
                let (tx, rx) = mpsc::channel(1024);
                tasks.spawn(ami::session::run(ami, tx, ctx.shutdown.clone()));
                tasks.spawn(record(ledger, rx, ctx.shutdown.clone()));
            }
            while tasks.join_next().await.is_some() {}
            Ok(())
        }
        .boxed()
    }

    /// Replies to callers go out by SMS (or as a call back), never here: no outbound consumer for this channel.
    fn sends_replies(&self) -> bool {
        false
    }

    fn deliver<'a>(&'a self, _message: &'a OutboundMessage) -> BoxFuture<'a, Result<DeliveryReceipt, DeliveryError>> {
        async {
            Err(DeliveryError::Permanent(
                "the phone channel sends nothing: answers to phone callers go out by SMS, or as a call-back task".to_owned(),
            ))
        }
        .boxed()
    }
}

/// Looks at waiting call facts every `interval` (see [`CallLedger::sweep`]).
async fn sweep(ledger: CallLedger, interval: std::time::Duration, mut shutdown: hotline_runtime::Shutdown) {
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        match ledger.sweep(time::OffsetDateTime::now_utc()).await {
            Ok(s) if s != ledger::Swept::default() => tracing::info!(flushed = s.flushed, expired = s.expired, removed = s.removed, "call facts swept"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sweeping call facts failed; trying again later"),
        }
    }
}

/// Records the AMI bridge's facts, retrying while the log is unavailable (AMI does not deliver again).
async fn record(ledger: CallLedger, mut rx: mpsc::Receiver<Vec<CallLogged>>, mut shutdown: hotline_runtime::Shutdown) {
    loop {
        let facts = tokio::select! {
            _ = shutdown.wait() => return,
            f = rx.recv() => match f { Some(f) => f, None => return },
        };
        let mut backoff = std::time::Duration::from_millis(250);
        loop {
            match ledger.report(facts.clone()).await {
                Ok(_) => break,
                Err(e @ (LedgerError::Refused(_) | LedgerError::TooMany(_))) => {
                    tracing::warn!(error = %e, "AMI call facts refused; dropping them");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "AMI call facts not stored yet");
                    tokio::select! {
                        _ = shutdown.wait() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(30));
                }
            }
        }
    }
}
