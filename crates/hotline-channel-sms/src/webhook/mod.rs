//! SMS gateways that deliver citizens' messages over HTTP. Each gateway's format is a [`MoGateway`]: it checks
//! the request's signature, parses it into an [`MoRequest`], and writes the answer the gateway expects. Adding a
//! gateway is a new file implementing the trait and one line in [`routes`].
//!
//! Every request goes the same way: a bad or missing signature is a 401 with nothing stored; a malformed request
//! a 400; otherwise intake stores the message (deduplicated on the gateway's message id) and only then does the
//! gateway get its success answer. If intake fails, the answer is a 503 and the gateway delivers again.

pub mod esms;
pub mod form;
pub mod twilio;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::on;
use hotline_channel::http::{ApiError, MAX_BODY_BYTES};
use hotline_channel::{
    InboundMessage, Intake, Received, ThreadHint, find_references, normalise_msisdn,
};
use hotline_domain::event::Attachment;

use crate::CHANNEL;

/// What a gateway's webhook request holds.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    /// The raw query string (without `?`), empty if none.
    pub query: &'a [u8],
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// A citizen's message as a gateway delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoRequest {
    /// The gateway's id for the message, prefixed with the gateway's name (`twilio:SM...`, `esms:...`).
    pub message_id: String,
    /// The sender as the gateway wrote it.
    pub from: String,
    /// Empty for a message of media only.
    pub text: String,
    /// Media of an MMS, as links to where the gateway keeps them (`url` set, no `sha256`).
    pub attachments: Vec<Attachment>,
    /// The gateway's own id (for its answer).
    pub gateway_id: String,
}

/// Why a webhook request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the request has no signature")]
    MissingSignature,
    #[error("the signature does not match")]
    BadSignature,
    #[error("{0}")]
    Malformed(String),
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> ApiError {
        match e {
            WebhookError::MissingSignature => {
                ApiError::new(StatusCode::UNAUTHORIZED, "missing_signature", e.to_string())
            }
            WebhookError::BadSignature => {
                ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", e.to_string())
            }
            WebhookError::Malformed(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "malformed_request", m)
            }
        }
    }
}

impl From<form::FormError> for WebhookError {
    fn from(e: form::FormError) -> WebhookError {
        WebhookError::Malformed(e.to_string())
    }
}

/// One SMS gateway's inbound webhook.
pub trait MoGateway: Send + Sync + 'static {
    /// The gateway's name, for logs.
    fn name(&self) -> &'static str;
    /// Where it is mounted (`/v1/sms/<name>`).
    fn path(&self) -> &'static str;
    /// The HTTP method the gateway calls with.
    fn method(&self) -> Method;
    /// Checks the signature and reads the message.
    fn parse(&self, request: &WebhookRequest<'_>) -> Result<MoRequest, WebhookError>;
    /// The answer the gateway expects once the message is stored.
    fn accepted(&self, message: &MoRequest, received: &Received) -> Response;
}

struct Webhook {
    gateway: Arc<dyn MoGateway>,
    intake: Intake,
    follow_up_window: Duration,
}

/// The routes of the given gateways, each on its path and method, with the shared error shape.
pub fn routes(
    gateways: Vec<Arc<dyn MoGateway>>,
    intake: Intake,
    follow_up_window: Duration,
) -> Router {
    let mut router = Router::new();
    for gateway in gateways {
        let path = gateway.path();
        let method = axum::routing::MethodFilter::try_from(gateway.method())
            .unwrap_or(axum::routing::MethodFilter::POST);
        let state = Arc::new(Webhook {
            gateway,
            intake: intake.clone(),
            follow_up_window,
        });
        router = router.route(
            path,
            on(method, receive)
                .fallback(hotline_channel::http::method_not_allowed)
                .with_state(state),
        );
    }
    router.layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

async fn receive(
    State(hook): State<Arc<Webhook>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = WebhookRequest {
        query: query.as_deref().unwrap_or("").as_bytes(),
        headers: &headers,
        body: &body,
    };
    let message = hook.gateway.parse(&request).inspect_err(|e| {
        tracing::warn!(gateway = hook.gateway.name(), error = %e, "SMS webhook refused");
    })?;
    let received = hook
        .intake
        .receive(inbound_message(&message, hook.follow_up_window))
        .await?;
    tracing::info!(
        gateway = hook.gateway.name(),
        ticket = %received.ticket_id(),
        duplicate = received.duplicate(),
        "SMS received"
    );
    Ok(hook.gateway.accepted(&message, &received))
}

/// What intake gets for a citizen's SMS, from any gateway or SMPP.
pub fn inbound_message(message: &MoRequest, follow_up_window: Duration) -> InboundMessage {
    InboundMessage {
        attachments: message.attachments.clone(),
        ..build_inbound(
            &message.message_id,
            &message.from,
            &message.text,
            follow_up_window,
        )
    }
}

/// The [`InboundMessage`] of an SMS: the sender normalised, references in the text as hints, and the follow-up
/// window so an answer to a question joins the ticket that asked it.
pub fn build_inbound(
    message_id: &str,
    from: &str,
    text: &str,
    follow_up_window: Duration,
) -> InboundMessage {
    InboundMessage {
        channel: CHANNEL,
        message_id: message_id.to_owned(),
        from: normalise_msisdn(from).unwrap_or_else(|| from.trim().to_owned()),
        text: text.to_owned(),
        hints: find_references(text)
            .into_iter()
            .map(ThreadHint::Reference)
            .collect(),
        follow_up_window: Some(follow_up_window),
        ..Default::default()
    }
}

/// An XML answer.
pub(crate) fn xml(body: String) -> Response {
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Escapes text for an XML element.
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// Constant-time equality of two byte strings (their lengths are not secret).
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
