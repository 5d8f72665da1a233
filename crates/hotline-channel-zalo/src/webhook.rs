//! `POST /v1/zalo/webhook`: Zalo's events in. Verify, store, answer: the signature is checked over the exact
//! bytes received, a citizen's message is stored raw in the durable inbox (the worker does the rest, see
//! `inbox.rs`), a follow or unfollow is recorded on the citizen, and Zalo gets its 200 within milliseconds.
//!
//! Answers: 401 with nothing stored for a missing, wrong or stale signature (or another app's event); 400 for a
//! body that is no event (a body that is not JSON at all is refused as 400 before the MAC, since the MAC covers
//! fields inside it); 503 when the state store is down, so Zalo delivers again; 200 otherwise, ignored events
//! included (the OA's own echoes, receipts).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hotline_channel::http::{ApiError, MAX_BODY_BYTES};
use serde_json::json;

use crate::config::Secret;
use crate::event::{self, ZaloEvent};
use crate::inbox::{Inbox, Stored};
use crate::signature::{self, SignatureError, Verifier};
use crate::token::now_ms;

/// Where Zalo posts events.
pub const PATH: &str = "/v1/zalo/webhook";

/// What the handler needs.
pub struct Webhook {
    pub oa_secret_key: Secret,
    pub app_id: Option<String>,
    pub replay_window: std::time::Duration,
    pub inbox: Inbox,
}

/// The webhook's route.
pub fn routes(hook: Arc<Webhook>) -> Router {
    Router::new()
        .route(PATH, post(receive).fallback(hotline_channel::http::method_not_allowed).with_state(hook))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

async fn receive(State(hook): State<Arc<Webhook>>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let now = now_ms();
    let verifier = Verifier {
        oa_secret_key: hook.oa_secret_key.expose(),
        app_id: hook.app_id.as_deref(),
        replay_window: hook.replay_window,
    };
    let header = headers.get(signature::HEADER).map(|v| v.as_bytes());
    verifier.verify(header, &body, now).map_err(|e| {
        tracing::warn!(error = %e, "Zalo webhook refused");
        refusal(e)
    })?;
    let event = event::parse(&body).map_err(|e| {
        tracing::warn!(error = %e, "Zalo webhook event malformed");
        ApiError::new(StatusCode::BAD_REQUEST, "malformed_event", e.to_string())
    })?;
    match event {
        ZaloEvent::Message(message) => {
            let stored = hook.inbox.store(&message, &body, now).await.map_err(ApiError::unavailable)?;
            tracing::info!(
                user = %hotline_channel::pseudonym(&message.user_id),
                msg_id = %message.msg_id,
                event = %message.event_name,
                new = stored == Stored::New,
                "Zalo message accepted"
            );
        }
        ZaloEvent::Follow { user_id, following, timestamp_ms } => {
            hook.inbox.record_follow(&user_id, following, timestamp_ms).await.map_err(ApiError::unavailable)?;
            tracing::info!(user = %hotline_channel::pseudonym(&user_id), following, "Zalo follower change recorded");
        }
        ZaloEvent::SharedInfo { user_id, phone, name, timestamp_ms } => {
            let contact = crate::inbox::Contact { phone, name, at_ms: timestamp_ms };
            hook.inbox.record_contact(&user_id, &contact).await.map_err(ApiError::unavailable)?;
            tracing::info!(user = %hotline_channel::pseudonym(&user_id), "Zalo citizen shared contact details");
        }
        ZaloEvent::Ignored { event_name, reason } => {
            tracing::debug!(event = %event_name, reason, "Zalo event ignored");
        }
    }
    Ok((StatusCode::OK, axum::Json(json!({"received": true}))).into_response())
}

fn refusal(e: SignatureError) -> ApiError {
    let code = match &e {
        SignatureError::Missing => "missing_signature",
        SignatureError::Mismatch => "invalid_signature",
        SignatureError::WrongApp(_) => "unknown_app",
        SignatureError::Stale(_) => "stale_event",
        SignatureError::Unreadable(_) => {
            return ApiError::new(StatusCode::BAD_REQUEST, "malformed_event", e.to_string());
        }
    };
    ApiError::new(StatusCode::UNAUTHORIZED, code, e.to_string())
}
