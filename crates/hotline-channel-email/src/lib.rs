//! The `email` channel: citizens write to the hotline's address; the province's mail server forwards those mails
//! over SMTP to this adapter's listener, and answers go back out through an SMTP relay. docs/channels/email.md
//! tells an operator how to wire it.
//!
//! `smtp.rs` is the protocol as a pure state machine, `server.rs` the listener around it, `mime.rs` the parsing
//! of a mail, `auth.rs` whether its sender is authentic, `inbound.rs` what a mail becomes (a petition, a follow-up,
//! or nothing), `outbound.rs` the answers.

pub mod auth;
pub mod config;
pub mod inbound;
pub mod mime;
pub mod outbound;
pub mod server;
pub mod smtp;

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use hotline_channel::{ChannelAdapter, ChannelContext, ChannelError, DeliveryError, DeliveryReceipt, OutboundMessage};
use tokio::net::TcpListener;

pub use config::{ConfigError, EmailConfig};

/// The channel's name in events.
pub const CHANNEL: &str = "email";

/// The e-mail channel adapter.
#[derive(Debug)]
pub struct EmailChannel {
    config: EmailConfig,
    relay: outbound::Relay,
}

impl EmailChannel {
    /// Builds the channel from its `[email]` section.
    pub fn from_config(config: &serde_json::Value) -> Result<EmailChannel, ConfigError> {
        EmailChannel::new(EmailConfig::from_value(config)?)
    }

    pub fn new(config: EmailConfig) -> Result<EmailChannel, ConfigError> {
        let relay = outbound::Relay::new(&config).map_err(|message| ConfigError { key: "relay".to_owned(), message })?;
        Ok(EmailChannel { config, relay })
    }

    pub fn config(&self) -> &EmailConfig {
        &self.config
    }

    /// Serves SMTP on an already bound listener until shutdown (tests bind port 0 and pass it here).
    pub async fn serve(&self, listener: TcpListener, ctx: ChannelContext) {
        let own_address = self
            .config
            .from
            .parse::<lettre::message::Mailbox>()
            .map(|m| m.email.to_string().to_lowercase())
            .unwrap_or_default();
        // Said once, at start: without it an operator sees replies open new petitions and cannot tell why.
        if let Some(notice) = self.config.threading_notice() {
            tracing::warn!("{notice}");
        }
        let policy = inbound::Policy {
            own_address,
            authserv_id: self.config.authserv_id.clone(),
            trust_unauthenticated_from: self.config.trust_unauthenticated_from,
        };
        let sink = inbound::Inbound { intake: ctx.intake.clone(), blobs: ctx.blobs.clone(), policy: Arc::new(policy) };
        let config = server::ServerConfig {
            session: smtp::SessionConfig {
                hostname: self.config.hostname.clone(),
                limits: self.config.limits.clone(),
                recipients: self.config.recipients.clone(),
            },
            max_connections: self.config.max_connections,
            command_timeout: self.config.command_timeout,
            data_timeout: self.config.data_timeout,
            drain_timeout: hotline_runtime::DRAIN_TIMEOUT,
            max_buffered_bytes: self.config.max_buffered_bytes,
            // A sender waits 2 minutes for the answer to DATA (RFC 5321 §4.5.3.2.4): answer well before.
            budget_wait: self.config.command_timeout.min(std::time::Duration::from_secs(60)),
        };
        server::serve(listener, config, Arc::new(sink), ctx.shutdown).await;
    }
}

impl ChannelAdapter for EmailChannel {
    fn name(&self) -> &'static str {
        CHANNEL
    }

    fn http_routes(&self, _ctx: &ChannelContext) -> Option<axum::Router> {
        // Mail arrives on the channel's own SMTP socket.
        None
    }

    fn run(self: Arc<Self>, ctx: ChannelContext) -> BoxFuture<'static, Result<(), ChannelError>> {
        async move {
            let listener = TcpListener::bind(self.config.listen).await.map_err(|e| ChannelError {
                channel: CHANNEL,
                message: format!("cannot listen for SMTP on {} (email.listen): {e}", self.config.listen),
            })?;
            tracing::info!(
                listen = %self.config.listen,
                relay = %self.config.relay_for_logs(),
                "email channel: SMTP listener up"
            );
            self.serve(listener, ctx).await;
            Ok(())
        }
        .boxed()
    }

    fn deliver<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<DeliveryReceipt, DeliveryError>> {
        async move {
            let id = self.relay.send(message).await?;
            Ok(DeliveryReceipt { channel_message_id: Some(id) })
        }
        .boxed()
    }
}
