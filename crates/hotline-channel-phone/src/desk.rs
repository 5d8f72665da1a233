//! The call-takers' intake, `POST /v1/phone/intake`: the operator who took a call files what the caller asked.
//! This is the petition (a call has no text until a person writes it down).
//!
//! Authentication belongs to the API (`hotline-api`'s token registry), which this crate does not depend on: the
//! process hands the channel an [`Authorize`] function (see [`crate::PhoneChannel::with_authorizer`]) that reads the
//! request's headers and returns the caller. Operators, supervisors and admins may file; agency tokens may not.
//! Without an authorizer the route answers 503, so it is never open by mistake.
//!
//! The ticket id derives from (`phone`, `call_id`): a retried intake gets the same ticket back, and call facts the
//! PBX reported before the petition (kept in the channel's state) are recorded on it as soon as it exists.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use futures_util::future::BoxFuture;
use hotline_channel::http::{ApiError, JsonBody, MAX_BODY_BYTES};
use hotline_channel::{Intake, IntakeError, NewPetition, normalise_msisdn};
use hotline_domain::access::{Principal, Role};
use hotline_domain::event::{CallEventKind, Citizen, Location};
use serde::Deserialize;

use crate::call::{self, MAX_AGENT, MAX_RECORDING};
use crate::ledger::CallLedger;
use crate::CHANNEL;

/// Reads a request's headers and says who is calling (or refuses, with the API's own 401/403/503 answers).
pub type Authorize = Arc<dyn Fn(HeaderMap) -> BoxFuture<'static, Result<Principal, ApiError>> + Send + Sync>;

/// Longest summary a call-taker may file.
pub const MAX_SUMMARY: usize = 8000;

/// The body of `POST /v1/phone/intake`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeRequest {
    /// The PBX's id of the call (Asterisk `Linkedid`, Stringee `call_id`...), as the call-taker's screen shows it.
    pub call_id: String,
    /// The caller's number as the PBX gave it (`0912 345 678`, `+84274...`).
    pub caller_number: String,
    /// The call-taker (their extension or agent id).
    pub agent: String,
    /// What the caller reported, in the call-taker's words: the petition's text.
    pub summary: String,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub location: Option<Location>,
    /// Where the call's recording is, if the call-taker's screen knows it.
    #[serde(default)]
    pub recording_ref: Option<String>,
}

struct Desk {
    intake: Intake,
    ledger: CallLedger,
    authorize: Option<Authorize>,
}

/// The route.
pub fn routes(intake: Intake, ledger: CallLedger, authorize: Option<Authorize>) -> Router {
    Router::new()
        .route("/v1/phone/intake", post(file).fallback(hotline_channel::http::method_not_allowed))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Arc::new(Desk { intake, ledger, authorize }))
}

fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

/// Checks the request and builds the petition and the call facts it brings (the call-taker, a recording).
pub fn petition(req: &IntakeRequest) -> Result<(NewPetition, Vec<hotline_domain::event::CallLogged>), ApiError> {
    call::check_call_id(&req.call_id).map_err(|m| invalid("invalid_call_id", m))?;
    let phone = normalise_msisdn(&req.caller_number)
        .ok_or_else(|| invalid("invalid_caller_number", "caller_number is not a phone number (digits, spaces, `+`, `-`, `.`, `()`)"))?;
    call::check_text("agent", &req.agent, MAX_AGENT).map_err(|m| invalid("invalid_agent", m))?;
    if req.summary.len() > MAX_SUMMARY {
        return Err(invalid("summary_too_long", format!("the summary is at most {MAX_SUMMARY} bytes")));
    }
    if let Some(r) = &req.recording_ref {
        call::check_text("recording_ref", r, MAX_RECORDING).map_err(|m| invalid("invalid_recording_ref", m))?;
    }
    let petition = NewPetition {
        channel: CHANNEL.to_owned(),
        channel_ref: Some(req.call_id.clone()),
        text: req.summary.trim().to_owned(),
        subject: None,
        category: req.category.clone(),
        citizen: Some(Citizen { phone: Some(phone), ..Default::default() }),
        location: req.location.clone(),
        attachments: Vec::new(),
        citizen_key: None,
    };
    // The call-taker's own report of taking the call; keyed apart from the PBX's `answered` so both show.
    let mut taken = call::fact(&req.call_id, CallEventKind::Answered, "intake", None);
    taken.key = "answered:intake".to_owned();
    taken.agent = Some(req.agent.trim().to_owned());
    let mut facts = vec![taken];
    if let Some(r) = &req.recording_ref {
        facts.push(call::recording(&req.call_id, "intake", None, r.trim()));
    }
    Ok((petition, facts))
}

async fn file(State(desk): State<Arc<Desk>>, headers: HeaderMap, body: Result<JsonBody<IntakeRequest>, ApiError>) -> Result<impl IntoResponse, ApiError> {
    let Some(authorize) = &desk.authorize else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "intake_not_configured",
            "the phone intake has no authentication wired in this process",
        ));
    };
    let principal = authorize(headers).await?;
    if !matches!(principal.role, Role::Operator | Role::Supervisor | Role::Admin) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "only the hotline desk (operator tokens) files phone petitions"));
    }
    let JsonBody(req) = body?;
    let (petition, facts) = petition(&req)?;
    let accepted = desk.intake.submit(petition).await.map_err(|e| match e {
        IntakeError::KeyReused => ApiError::new(
            StatusCode::CONFLICT,
            "call_already_filed",
            format!("a different petition was already filed for call `{}`", req.call_id),
        ),
        other => ApiError::from(other),
    })?;
    // The petition is stored; now the call's facts. A failure here is a 503: the retry finds the same ticket and
    // records what is missing, nothing twice.
    desk.ledger.report(facts).await?;
    desk.ledger.flush(&req.call_id).await?;
    tracing::info!(ticket = %accepted.ticket_id, by = %principal.token_id, duplicate = accepted.duplicate, "phone petition filed");
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({
            "ticket_id": accepted.ticket_id,
            "reference": accepted.reference,
            "duplicate": accepted.duplicate,
        })),
    ))
}
