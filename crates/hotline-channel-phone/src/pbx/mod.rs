//! PBX call events over HTTP: `POST /v1/phone/events/{pbx}`. Each PBX's format is a [`PbxWebhook`]: it checks the
//! request really comes from the PBX and reads the call facts it reports. Adding a PBX is a new file implementing
//! the trait and one line where the channel lists its webhooks.
//!
//! A request that fails its check is a 401 with nothing stored; a malformed one a 400 (422 when it is JSON of the
//! wrong shape); otherwise the facts go to the [`CallLedger`] (onto the call's ticket, or kept until the petition
//! is filed) and only then does the PBX get its 200. If they cannot be stored, the answer is a 503 so the PBX
//! delivers again; a redelivery records nothing twice.

pub mod generic;
pub mod stringee;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use hotline_channel::http::{ApiError, MAX_BODY_BYTES, PathParam};
use hotline_domain::event::CallLogged;
use time::OffsetDateTime;

use crate::ledger::{CallLedger, LedgerError, Outcome};

/// What a PBX's webhook request holds.
#[derive(Debug, Clone, Copy)]
pub struct PbxRequest<'a> {
    /// The raw query string (without `?`), empty if none.
    pub query: &'a [u8],
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Why a PBX request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PbxError {
    #[error("the request has no {0}")]
    Missing(&'static str),
    #[error("the signature does not match")]
    BadSignature,
    #[error("the credentials do not match")]
    BadCredentials,
    #[error("the timestamp is outside the replay window of {0} s")]
    Stale(u64),
    /// Not parseable at all.
    #[error("{0}")]
    Malformed(String),
    /// Parseable, but wrong (a field missing or out of range).
    #[error("{0}")]
    Invalid(String),
}

impl From<PbxError> for ApiError {
    fn from(e: PbxError) -> ApiError {
        let message = e.to_string();
        match e {
            PbxError::Missing(_) => ApiError::new(StatusCode::UNAUTHORIZED, "missing_signature", message),
            PbxError::BadSignature => ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", message),
            PbxError::BadCredentials => ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", message),
            PbxError::Stale(_) => ApiError::new(StatusCode::UNAUTHORIZED, "stale_timestamp", message),
            PbxError::Malformed(_) => ApiError::new(StatusCode::BAD_REQUEST, "malformed_request", message),
            PbxError::Invalid(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message),
        }
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> ApiError {
        match e {
            LedgerError::Refused(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", m),
            LedgerError::TooMany(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "too_many_facts", e.to_string()),
            LedgerError::Busy(_) | LedgerError::Store(_) => ApiError::unavailable(e),
        }
    }
}

/// One PBX's call-event webhook.
pub trait PbxWebhook: Send + Sync + 'static {
    /// The `{pbx}` path segment and the facts' `source`.
    fn name(&self) -> &'static str;
    /// Checks the request comes from the PBX (at `now`) and reads its facts; none for events we do not record
    /// (ringing, say), which are still answered 200.
    fn parse(&self, request: &PbxRequest<'_>, now: OffsetDateTime) -> Result<Vec<CallLogged>, PbxError>;
}

struct Hooks {
    by_name: HashMap<&'static str, Arc<dyn PbxWebhook>>,
    ledger: CallLedger,
}

/// `POST /v1/phone/events/{pbx}` for the given webhooks; an unknown or unconfigured `{pbx}` is a 404.
pub fn routes(webhooks: Vec<Arc<dyn PbxWebhook>>, ledger: CallLedger) -> Router {
    let by_name = webhooks.into_iter().map(|w| (w.name(), w)).collect();
    Router::new()
        .route("/v1/phone/events/{pbx}", post(receive).fallback(hotline_channel::http::method_not_allowed))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Arc::new(Hooks { by_name, ledger }))
}

async fn receive(
    State(hooks): State<Arc<Hooks>>,
    PathParam(pbx): PathParam,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let Some(hook) = hooks.by_name.get(pbx.as_str()) else {
        let mut known: Vec<&str> = hooks.by_name.keys().copied().collect();
        known.sort_unstable();
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_pbx",
            format!("no PBX integration `{pbx}` is configured; configured: {}", known.join(", ")),
        ));
    };
    let request = PbxRequest { query: query.as_deref().unwrap_or("").as_bytes(), headers: &headers, body: &body };
    let facts = hook.parse(&request, OffsetDateTime::now_utc()).inspect_err(|e| {
        tracing::warn!(pbx = hook.name(), error = %e, "PBX event refused");
    })?;
    let count = facts.len();
    let outcome = if facts.is_empty() { None } else { Some(hooks.ledger.report(facts).await?) };
    tracing::info!(pbx = hook.name(), facts = count, ?outcome, "PBX event accepted");
    Ok((
        StatusCode::OK,
        axum::Json(serde_json::json!({
            "accepted": count,
            "pending": outcome == Some(Outcome::Pending),
        })),
    ))
}

/// Constant-time equality of two byte strings (their lengths are not secret).
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
