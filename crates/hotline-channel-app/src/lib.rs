//! The `app` channel: the hotline's mobile app and web portal submit petitions over HTTP.
//!
//! `POST /v1/petitions` answers `202 {"ticket_id", "reference", "access_code"}` once `PetitionReceived` is stored.
//! An `Idempotency-Key` header makes a retry return the same ticket (and code), however late it comes. With the
//! reference and the access code the citizen reads the ticket and answers questions (`/v1/public/...`).

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use hotline_channel::http::{ApiError, JsonBody, MAX_BODY_BYTES};
use hotline_channel::{
    AccessCodes, ChannelAdapter, ChannelContext, ChannelError, DeliveryError, DeliveryReceipt, Intake, NewPetition,
    OutboundMessage,
};
use hotline_domain::event::{Citizen, Location};
use serde::Deserialize;

/// The channel's name in events.
pub const CHANNEL: &str = "app";
/// Longest accepted `Idempotency-Key`.
const MAX_KEY_LEN: usize = 200;
/// Keys starting so are refused: Open311 files its requests on this channel with `channel_ref`s starting so, and
/// such petitions are published (text and place) on its public interface. A key of the app's own could otherwise
/// make a private petition public (and land on an Open311 request's ticket).
pub const RESERVED_KEY_PREFIX: &str = "open311:";

/// The app channel adapter.
#[derive(Debug, Clone)]
pub struct AppChannel {
    codes: AccessCodes,
}

impl AppChannel {
    pub fn new(codes: AccessCodes) -> AppChannel {
        AppChannel { codes }
    }
}

#[derive(Clone)]
struct AppState {
    intake: Intake,
    codes: AccessCodes,
}

/// The body of `POST /v1/petitions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PetitionRequest {
    pub text: String,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub citizen: Option<CitizenRequest>,
    #[serde(default)]
    pub location: Option<LocationRequest>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CitizenRequest {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationRequest {
    pub area: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub address: Option<String>,
}

impl ChannelAdapter for AppChannel {
    fn name(&self) -> &'static str {
        CHANNEL
    }

    fn http_routes(&self, ctx: &ChannelContext) -> Option<Router> {
        Some(
            Router::new()
                .route("/v1/petitions", post(submit))
                .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
                .with_state(Arc::new(AppState { intake: ctx.intake.clone(), codes: self.codes.clone() })),
        )
    }

    fn run(self: Arc<Self>, _ctx: ChannelContext) -> BoxFuture<'static, Result<(), ChannelError>> {
        // Everything the app channel does happens in its HTTP routes.
        async { Ok(()) }.boxed()
    }

    fn deliver<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, Result<DeliveryReceipt, DeliveryError>> {
        // The app has no push gateway of ours: the citizen's app reads the answer (or the question) from
        // `GET /v1/public/tickets/{reference}` with the access code, where it is as soon as it is stored. Handing it
        // over therefore succeeds at once; a push service would be called here.
        async move { Ok(DeliveryReceipt { channel_message_id: Some(format!("app:{}", message.ticket_id)) }) }.boxed()
    }
}

async fn submit(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<PetitionRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let key = idempotency_key(&headers)?;
    let petition = NewPetition {
        citizen_key: None,
        channel: CHANNEL.to_owned(),
        channel_ref: key,
        text: request.text,
        subject: request.subject.filter(|s| !s.trim().is_empty()),
        category: request.category.filter(|c| !c.is_empty()),
        citizen: request.citizen.map(|c| Citizen { name: c.name, phone: c.phone, email: c.email, zalo_id: None }),
        location: request.location.map(|l| Location { area: l.area, lat: l.lat, lon: l.lon, address: l.address }),
        attachments: Vec::new(),
    };
    let accepted = app.intake.submit(petition).await?;
    let body = serde_json::json!({
        "ticket_id": accepted.ticket_id,
        "reference": accepted.reference,
        "access_code": app.codes.code_for(accepted.ticket_id),
    });
    Ok((StatusCode::ACCEPTED, Json(body)))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let invalid = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
        )
    };
    let key = value.to_str().map_err(|_| invalid())?.trim();
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid());
    }
    if key.get(..RESERVED_KEY_PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_KEY_PREFIX)) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            format!("Idempotency-Key must not start with `{RESERVED_KEY_PREFIX}` (reserved for Open311 requests)"),
        ));
    }
    Ok(Some(key.to_owned()))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn key(value: &str) -> Result<Option<String>, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert("idempotency-key", HeaderValue::from_str(value).expect("header value"));
        idempotency_key(&headers)
    }

    #[test]
    fn keys_in_open311s_namespace_are_refused() {
        assert_eq!(key("  a-retry-key-1 ").ok().flatten().as_deref(), Some("a-retry-key-1"));
        assert_eq!(idempotency_key(&HeaderMap::new()).ok().flatten(), None);
        for reserved in ["open311:client:key:k", "OPEN311:x", "Open311:"] {
            let e = key(reserved).expect_err(reserved);
            assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, "invalid_idempotency_key"), "{reserved}");
            assert!(e.message.contains("open311:"), "{}", e.message);
        }
        // Only the prefix is reserved.
        assert!(key("my-open311:key").is_ok());
    }
}
