//! The `zalo` channel: citizens write to the province's Zalo Official Account, and get answers there.
//!
//! In: Zalo's signed webhook (`POST /v1/zalo/webhook`, [`webhook`]) stores each event in a durable inbox and
//! answers at once; a worker ([`inbox`]) groups a citizen's messages sent close together into one petition (or a
//! follow-up on their ticket) and hands it to `Intake::receive`, with their photos and files fetched into the
//! blob store and a shared location turned into the petition's coordinates and area.
//! Out: answers and questions by the OA customer-service message API ([`api`]) with the access token kept and
//! refreshed in the channel's state ([`token`]); refusals that will not go away (not following, no interaction
//! for 7 days) are permanent, and the outbound consumer then falls back to SMS when the citizen's number is known.
//!
//! Configuration is the `[zalo]` section ([`config`]); docs/channels/zalo.md explains how to connect an OA.

pub mod api;
pub mod config;
pub mod event;
pub mod fuzz;
pub mod inbox;
pub mod keys;
pub mod signature;
pub mod token;
pub mod webhook;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use hotline_channel::vendor_http::{Timeouts, VendorHttp};
use hotline_channel::{
    ChannelAdapter, ChannelContext, ChannelError, ChannelState, DeliveryError, DeliveryReceipt, OutboundKind,
    OutboundMessage,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

use api::{OaApi, SendFailure};
pub use config::{ConfigError, KEYS, ZaloConfig};
use inbox::{Asked, Inbox};
pub use inbox::Worker;
use token::{TokenError, TokenKeeper, now_ms};

/// The channel's name in events.
pub const CHANNEL: &str = "zalo";

/// The Zalo OA channel adapter.
pub struct ZaloChannel {
    config: ZaloConfig,
    api: OaApi,
    tokens: TokenKeeper,
    /// Wakes the worker when the webhook stored a message in this process.
    wake: Arc<Notify>,
    /// The channel's state, known once the system handed over the context (routes or run).
    state: OnceLock<ChannelState>,
}

/// `sent.*`: how far a reply got, so a retry does not send its first parts twice.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Progress {
    parts: usize,
    ids: Vec<String>,
    at_ms: u64,
}

impl ZaloChannel {
    /// Builds the channel from its `[zalo]` section.
    pub fn from_config(value: &serde_json::Value) -> Result<ZaloChannel, ConfigError> {
        let config = ZaloConfig::from_value(value)?;
        let http = VendorHttp::new(Timeouts {
            connect: config.http_timeout.min(Duration::from_secs(10)),
            request: config.http_timeout,
        })
        .map_err(|e| ConfigError { key: "http_timeout_secs".into(), message: format!("cannot build the HTTP client: {e}") })?;
        let api = OaApi { http, api_base: config.api_base.clone(), oauth_base: config.oauth_base.clone() };
        let tokens = TokenKeeper::new(api.clone(), &config);
        Ok(ZaloChannel { config, api, tokens, wake: Arc::new(Notify::new()), state: OnceLock::new() })
    }

    /// The parsed configuration.
    pub fn config(&self) -> &ZaloConfig {
        &self.config
    }

    /// The inbox worker of this process ([`ChannelAdapter::run`] runs it; tests call its parts).
    pub fn worker(&self, ctx: &ChannelContext) -> Worker {
        Worker {
            state: self.state_of(ctx),
            intake: ctx.intake.clone(),
            blobs: ctx.blobs.clone(),
            api: self.api.clone(),
            group_window: self.config.group_window,
            follow_up_window: self.config.follow_up_window,
            replay_window: self.config.replay_window,
            contact_retention: self.config.contact_retention,
            wake: self.wake.clone(),
            me: Uuid::now_v7(),
        }
    }

    fn state_of(&self, ctx: &ChannelContext) -> ChannelState {
        self.state.get_or_init(|| ctx.state.clone()).clone()
    }

    async fn send(&self, message: &OutboundMessage) -> Result<DeliveryReceipt, DeliveryError> {
        let Some(to) = message.to.as_deref().map(str::trim).filter(|t| !t.is_empty()) else {
            return Err(DeliveryError::Permanent("the citizen has no Zalo user id".into()));
        };
        let Some(state) = self.state.get() else {
            return Err(DeliveryError::Retryable("the Zalo channel is not running yet".into()));
        };
        let store = |e: hotline_store::StoreError| DeliveryError::Retryable(format!("channel state: {e}"));
        if inbox::follower(state, to).await.map_err(store)?.is_some_and(|f| !f.following) {
            return Err(DeliveryError::Permanent(
                "the citizen unfollowed the OA, so Zalo will not deliver to them".into(),
            ));
        }
        let parts = api::split_text(&message.text, api::MAX_TEXT_CHARS);
        if parts.is_empty() {
            return Err(DeliveryError::Permanent("the reply has no text".into()));
        }
        let progress_key = keys::sent(message.id);
        let mut progress: Progress = match state.get(&progress_key).await.map_err(store)? {
            Some((bytes, _)) => serde_json::from_slice(&bytes).unwrap_or_default(),
            None => Progress::default(),
        };
        if progress.parts < parts.len() {
            let mut token = self.tokens.access_token(state).await.map_err(token_error)?;
            for (i, part) in parts.iter().enumerate().skip(progress.parts) {
                let mut refreshed = false;
                let id = loop {
                    match self.api.send_text(&token, to, part).await {
                        Ok(id) => break id,
                        Err(SendFailure::TokenRefused(why)) if !refreshed => {
                            tracing::info!(reason = %why, "Zalo refused the access token; refreshing");
                            token = self.tokens.refresh(state, &token).await.map_err(token_error)?;
                            refreshed = true;
                        }
                        Err(SendFailure::TokenRefused(why)) => {
                            return Err(DeliveryError::Retryable(format!("Zalo refused a fresh access token: {why}")));
                        }
                        Err(SendFailure::Retryable(why)) => return Err(DeliveryError::Retryable(why)),
                        Err(SendFailure::Permanent(why)) => {
                            let sent = if i > 0 { format!(" ({i} of {} parts were sent)", parts.len()) } else { String::new() };
                            return Err(DeliveryError::Permanent(format!("{why}{sent}")));
                        }
                    }
                };
                progress.parts = i + 1;
                progress.ids.extend(id);
                progress.at_ms = now_ms();
                // If this write is lost, a retry sends this part again: a duplicate, never a gap.
                if let Err(e) = state.set(&progress_key, &serde_json::to_vec(&progress).unwrap_or_default()).await {
                    tracing::warn!(error = %e, reply = %message.id, "cannot record a sent Zalo part");
                }
            }
        }
        // A question makes the citizen's next messages go to intake at once (no grouping delay), so their answer
        // joins the ticket while it waits; an answer ends that.
        let asked = keys::asked(to);
        match message.kind {
            OutboundKind::Question => {
                let value = serde_json::to_vec(&Asked { at_ms: now_ms(), ticket: message.ticket_id }).unwrap_or_default();
                if let Err(e) = state.set(&asked, &value).await {
                    tracing::warn!(error = %e, "cannot note the question to a Zalo citizen");
                }
            }
            OutboundKind::Answer => {
                let _ = state.delete(&asked).await;
            }
        }
        Ok(DeliveryReceipt { channel_message_id: progress.ids.first().cloned() })
    }
}

fn token_error(e: TokenError) -> DeliveryError {
    match e {
        TokenError::Transient(m) => DeliveryError::Retryable(m),
        e @ (TokenError::NotConfigured | TokenError::Refused(_)) => DeliveryError::Permanent(e.to_string()),
    }
}

impl ChannelAdapter for ZaloChannel {
    fn name(&self) -> &'static str {
        CHANNEL
    }

    /// The webhook, when `oa_secret_key` is set (without it no event could be verified).
    fn http_routes(&self, ctx: &ChannelContext) -> Option<axum::Router> {
        let state = self.state_of(ctx);
        let key = self.config.oa_secret_key.clone()?;
        Some(webhook::routes(Arc::new(webhook::Webhook {
            oa_secret_key: key,
            app_id: self.config.app_id.clone(),
            replay_window: self.config.replay_window,
            inbox: Inbox { state, wake: self.wake.clone() },
        })))
    }

    /// The inbox worker, until shutdown; nothing when `oa_secret_key` is not set (no webhook, so no inbox: a
    /// hotline without Zalo does not look at the state every second).
    fn run(self: Arc<Self>, ctx: ChannelContext) -> BoxFuture<'static, Result<(), ChannelError>> {
        // Taken now, not when the future is first polled: `deliver` may be called before that.
        let worker = self.worker(&ctx);
        if self.config.oa_secret_key.is_none() {
            tracing::debug!("[zalo] oa_secret_key is not set: no webhook and no inbox worker");
            return async { Ok(()) }.boxed();
        }
        async move {
            worker.run(ctx.shutdown.clone()).await;
            Ok(())
        }
        .boxed()
    }

    fn deliver<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<DeliveryReceipt, DeliveryError>> {
        self.send(message).boxed()
    }
}
