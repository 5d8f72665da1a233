//! The `sms` channel: citizens text the hotline, and get answers by SMS.
//!
//! In: gateway webhooks (`POST /v1/sms/twilio`, `GET /v1/sms/esms`, see [`webhook`]) and an SMPP 3.4
//! transceiver session to the operator's SMSC ([`smpp`]). Every message goes to `Intake::receive` with the
//! references found in its text and the follow-up window, and the peer is answered only once it is stored.
//! Out: answers by SMPP `submit_sm` on the same session, or by the eSMS or Twilio send API ([`send`]).
//!
//! Configuration is the `[sms]` section ([`config`]); docs/channels/sms.md explains how to wire each gateway.

pub mod config;
pub mod fuzz;
pub mod reassembly;
pub mod send;
pub mod smpp;
pub mod text;
pub mod webhook;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use hotline_channel::vendor_http::{Timeouts, VendorHttp};
use hotline_channel::{
    ChannelAdapter, ChannelContext, ChannelError, DeliveryError, DeliveryReceipt, Intake,
    IntakeError, OutboundMessage,
};

pub use config::{ConfigError, SendVia, SmsConfig};
use smpp::session::Session;
use smpp::{MoMessage, MoRefusal, MoSink};
use webhook::MoGateway;

/// The channel's name in events.
pub const CHANNEL: &str = "sms";

/// The SMS channel adapter.
pub struct SmsChannel {
    config: SmsConfig,
    sender: send::Sender,
    /// The SMPP session, until `run` takes it (deliver keeps its client).
    session: Mutex<Option<Session>>,
}

impl SmsChannel {
    /// Builds the channel from its `[sms]` section.
    pub fn from_config(value: &serde_json::Value) -> Result<SmsChannel, ConfigError> {
        let config = SmsConfig::from_value(value)?;
        let (client, session) = match &config.smpp {
            Some(s) => {
                let (client, session) = smpp::session::session(s.clone());
                (Some(client), Some(session))
            }
            None => (None, None),
        };
        let http = || {
            VendorHttp::new(Timeouts {
                connect: config.http_timeout.min(Duration::from_secs(10)),
                request: config.http_timeout,
            })
            .map_err(|e| ConfigError {
                key: "send".into(),
                message: format!("cannot build the HTTP client: {e}"),
            })
        };
        let sender = match (config.send, client) {
            (SendVia::Smpp, Some(client)) => send::Sender::Smpp(client),
            (SendVia::Esms, _) => match &config.esms {
                Some(e) => send::Sender::Esms {
                    http: http()?,
                    config: e.clone(),
                },
                None => send::Sender::None,
            },
            (SendVia::Twilio, _) => match &config.twilio {
                Some(t) => send::Sender::Twilio {
                    http: http()?,
                    config: t.clone(),
                },
                None => send::Sender::None,
            },
            _ => send::Sender::None,
        };
        Ok(SmsChannel {
            config,
            sender,
            session: Mutex::new(session),
        })
    }

    /// The parsed configuration.
    pub fn config(&self) -> &SmsConfig {
        &self.config
    }

    fn gateways(&self) -> Vec<Arc<dyn MoGateway>> {
        let mut gateways: Vec<Arc<dyn MoGateway>> = Vec::new();
        if let Some(t) = &self.config.twilio
            && let Some(url) = &t.public_url
        {
            gateways.push(Arc::new(webhook::twilio::TwilioWebhook::new(
                t.auth_token.clone(),
                url.clone(),
            )));
        }
        if let Some(e) = &self.config.esms
            && let Some(key) = &e.private_key
        {
            gateways.push(Arc::new(webhook::esms::EsmsWebhook::new(
                key.clone(),
                e.acknowledge,
            )));
        }
        gateways
    }
}

impl ChannelAdapter for SmsChannel {
    fn name(&self) -> &'static str {
        CHANNEL
    }

    /// A phone caller's answer comes days later: by SMS to their mobile (a landline caller gets a call back).
    fn answers_for(&self) -> &'static [&'static str] {
        &["phone"]
    }

    /// A Zalo reply the OA could not send (the citizen stopped following, or wrote last more than 7 days ago)
    /// goes by SMS when their mobile number is known.
    fn fallback_for(&self) -> &'static [&'static str] {
        &["zalo"]
    }

    fn http_routes(&self, ctx: &ChannelContext) -> Option<axum::Router> {
        let gateways = self.gateways();
        if gateways.is_empty() {
            return None;
        }
        Some(webhook::routes(
            gateways,
            ctx.intake.clone(),
            self.config.follow_up_window,
        ))
    }

    fn run(self: Arc<Self>, ctx: ChannelContext) -> BoxFuture<'static, Result<(), ChannelError>> {
        async move {
            let session = self
                .session
                .lock()
                .map_err(|_| error("the SMPP session lock is poisoned"))?
                .take();
            match session {
                Some(session) => {
                    let sink = Arc::new(IntakeSink {
                        intake: ctx.intake.clone(),
                        window: self.config.follow_up_window,
                    });
                    session.run(sink, ctx.shutdown.clone()).await;
                    Ok(())
                }
                None if self.config.smpp.is_some() => {
                    Err(error("the SMPP session is already running"))
                }
                // Only webhooks: they are served by the HTTP server.
                None => Ok(()),
            }
        }
        .boxed()
    }

    fn deliver<'a>(
        &'a self,
        message: &'a OutboundMessage,
    ) -> BoxFuture<'a, Result<DeliveryReceipt, DeliveryError>> {
        self.sender.send(message).boxed()
    }
}

fn error(message: &str) -> ChannelError {
    ChannelError {
        channel: CHANNEL,
        message: message.to_owned(),
    }
}

/// Hands messages assembled from SMPP to intake.
struct IntakeSink {
    intake: Intake,
    window: Duration,
}

impl MoSink for IntakeSink {
    fn store(&self, message: MoMessage) -> BoxFuture<'_, Result<(), MoRefusal>> {
        async move {
            let inbound = webhook::build_inbound(&message.message_id, &message.source, &message.text, self.window);
            match self.intake.receive(inbound).await {
                Ok(received) => {
                    tracing::info!(ticket = %received.ticket_id(), duplicate = received.duplicate(), "SMS received over SMPP");
                    Ok(())
                }
                Err(e @ (IntakeError::Invalid { .. } | IntakeError::KeyReused)) => Err(MoRefusal::Permanent(e.to_string())),
                Err(e @ (IntakeError::Unavailable(_) | IntakeError::OutcomeUnknown(_))) => Err(MoRefusal::Temporary(e.to_string())),
            }
        }
        .boxed()
    }
}
