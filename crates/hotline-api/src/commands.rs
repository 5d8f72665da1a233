//! `POST /v1/tickets/{id or reference}/<command>`: people acting on tickets. Each command is decided by the
//! domain on the ticket's stored history and appended with the version it was decided on, so two people acting
//! at once never both apply blindly: the one who loses the race gets 409 and reloads.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use hotline_channel::http::ApiError;
use hotline_channel::validate_codes;
use hotline_domain::access::Principal;
use hotline_domain::event::Attachment;
use hotline_domain::{Command, DomainError, Envelope, Ticket};
use hotline_store::{Cause, ExecuteError, OnConflict};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ApiState;
use crate::routes::{find, visible};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestInfoBody {
    question: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    reason: String,
    #[serde(default)]
    suggested_agency: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerBody {
    text: String,
    #[serde(default)]
    attachments: Vec<Attachment>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecategorizeBody {
    category: String,
    #[serde(default)]
    area: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DuplicateBody {
    ticket: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendBody {
    #[serde(with = "time::serde::rfc3339")]
    resolve_by: OffsetDateTime,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallbackBody {
    note: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseBody {
    #[serde(default)]
    reason: Option<String>,
}

/// Runs a command for a person (or a citizen's channel) through [`hotline_store::execute`]. When the append loses
/// a race to events of the system or a channel only (a reply delivered, a duplicate linked, an alarm), the command
/// is decided again on the new state; when a person's event won, the caller gets 409 and decides again.
pub(crate) async fn decide_and_append(
    state: &ApiState,
    ticket_id: Uuid,
    actor: hotline_domain::Actor,
    command: impl Fn(&Ticket) -> Result<Command, ApiError>,
) -> Result<(Ticket, Vec<Envelope>), ApiError> {
    let executed = hotline_store::execute(
        state.store.as_ref(),
        ticket_id,
        &actor,
        OffsetDateTime::now_utc(),
        Cause::None,
        OnConflict::DecideUnlessPeopleActed,
        |ticket, _| command(ticket),
    )
    .await
    .map_err(|e| match e {
        ExecuteError::Command(e) => e,
        ExecuteError::Domain(e) => domain_error(e),
        ExecuteError::Conflict => ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "the ticket changed while you acted on it; reload it and decide again",
        ),
        ExecuteError::Store(e) => ApiError::unavailable(e),
    })?;
    Ok((executed.after, executed.events))
}

/// The names of the commands, as they appear in the path.
pub const COMMANDS: &[&str] = &[
    "acknowledge",
    "request-info",
    "transfer",
    "answer",
    "recategorize",
    "duplicate-of",
    "reject",
    "close",
    "extend-deadline",
    "callback-done",
];

pub async fn command(
    State(state): State<ApiState>,
    headers: HeaderMap,
    path: Result<axum::extract::Path<(String, String)>, axum::extract::rejection::PathRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let axum::extract::Path((key, action)) =
        path.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", e.body_text()))?;
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than {} KiB", hotline_channel::http::MAX_BODY_BYTES / 1024),
        ),
        status => ApiError::new(status, "bad_request", e.body_text()),
    })?;
    if !COMMANDS.contains(&action.as_str()) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_command",
            format!("no command `{action}`; commands: {}", COMMANDS.join(", ")),
        ));
    }
    let principal = state.auth.principal(&headers).await?;
    let view = visible(&state, &principal, &key).await?;
    // Who may give the command at all is checked before the body is looked at: otherwise the body's lookups
    // (another ticket, a category) would tell a caller who may not act something it may not know.
    role_gate(&principal, &action)?;
    let command = build(&state, &principal, &action, &body, &view).await?;
    let (after, envelopes) = decide_and_append(&state, view.ticket_id, principal.actor(), |_| Ok(command.clone())).await?;
    Ok(Json(serde_json::json!({
        "ticket_id": view.ticket_id,
        "reference": view.reference,
        "status": after.status.as_str(),
        "agency": after.agency,
        "events": envelopes.iter().map(|e| e.event_type()).collect::<Vec<_>>(),
    })))
}

/// Refuses, before anything else, a command the caller's role never gives. The domain checks again, with the
/// ticket's state.
fn role_gate(principal: &Principal, action: &str) -> Result<(), ApiError> {
    use hotline_domain::access::Role;
    let allowed = match action {
        "acknowledge" | "transfer" => principal.role == Role::Agency,
        "recategorize" | "duplicate-of" | "reject" | "close" | "callback-done" => principal.role != Role::Agency,
        "extend-deadline" => matches!(principal.role, Role::Supervisor | Role::Admin),
        _ => true,
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("{} tokens may not {action}", principal.role.as_str())))
    }
}

/// The command `action` with its body, checked against the province configuration.
async fn build(
    state: &ApiState,
    principal: &Principal,
    action: &str,
    body: &[u8],
    view: &hotline_projections::TicketView,
) -> Result<Command, ApiError> {
    let by = principal.clone();
    let desk = state.province.triage_agency().code.clone();
    Ok(match action {
        "acknowledge" => {
            parse::<Empty>(body)?;
            Command::Acknowledge { by }
        }
        "request-info" => Command::RequestInfo { by, question: parse::<RequestInfoBody>(body)?.question },
        "transfer" => {
            let b = parse::<TransferBody>(body)?;
            if let Some(code) = &b.suggested_agency
                && state.province.agency(code).is_none() {
                    return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_agency", format!("unknown agency `{code}`")));
                }
            Command::Transfer { by, reason: b.reason, suggested_agency: b.suggested_agency, desk }
        }
        "answer" => {
            let b = parse::<AnswerBody>(body)?;
            for a in &b.attachments {
                if let Some(hash) = &a.sha256
                    && !state.blobs.contains(hash) {
                        return Err(ApiError::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "unknown_attachment",
                            format!("no uploaded file {hash}: upload it with POST /v1/attachments first"),
                        ));
                    }
            }
            Command::Answer { by, text: b.text, desk, attachments: b.attachments }
        }
        "recategorize" => {
            let b = parse::<RecategorizeBody>(body)?;
            validate_codes(&state.province, Some(&b.category), b.area.as_deref())?;
            // A new area if given, else the one the ticket already has: area rules pick the local agency.
            let area = b.area.clone().or(view.area.clone());
            let agency = state
                .province
                .agency_for(&b.category, area.as_deref())
                .map(|a| a.code.clone())
                .ok_or_else(|| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "no_route", format!("no agency handles `{}`", b.category)))?;
            let deadlines = state.province.deadlines(&b.category, OffsetDateTime::now_utc());
            let emergency = state.province.category(&b.category).is_some_and(|c| c.emergency);
            Command::Recategorize { by, category: b.category, area, agency, deadlines, emergency }
        }
        "duplicate-of" => {
            let b = parse::<DuplicateBody>(body)?;
            let unknown = || ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_ticket", format!("no ticket `{}`", b.ticket));
            let named = find(state, &b.ticket).await.map_err(|_| unknown())?;
            // Decide from the log, not the projection: follow a chain of duplicates to the ticket that carries the
            // work, and take its answer if it has one.
            let mut root = named.ticket_id;
            let mut original = Ticket::default();
            for _ in 0..8 {
                let history = state.store.load(root).await.map_err(ApiError::unavailable)?;
                original = Ticket::from_history(&history.events);
                match (original.status, original.duplicate_of) {
                    (hotline_domain::Status::Duplicate, Some(next)) => root = next,
                    _ => break,
                }
            }
            let of_reference = original.reference.clone().ok_or_else(unknown)?;
            let original_answer = match original.status {
                hotline_domain::Status::Answered | hotline_domain::Status::Closed => original.last_answer.clone(),
                _ => None,
            };
            let dead_end = match original.status {
                hotline_domain::Status::Rejected | hotline_domain::Status::Duplicate => true,
                hotline_domain::Status::Closed => original_answer.is_none(),
                _ => false,
            };
            if dead_end {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "not_allowed",
                    format!("ticket {} is {} without an answer: it cannot carry a duplicate", of_reference, original.status.as_str()),
                ));
            }
            Command::MarkDuplicate { by, of_ticket: root, of_reference, original_answer }
        }
        "reject" => Command::Reject { by, reason: parse::<ReasonBody>(body)?.reason },
        "close" => Command::Close { by, reason: parse::<CloseBody>(body)?.reason },
        "callback-done" => Command::RecordCallback { by, note: parse::<CallbackBody>(body)?.note },
        "extend-deadline" => {
            let b = parse::<ExtendBody>(body)?;
            Command::ExtendDeadline { by, resolve_by: b.resolve_by, reason: b.reason, now: OffsetDateTime::now_utc() }
        }
        _ => return Err(ApiError::not_found("command")),
    })
}

/// A command body: a JSON object of the command's shape; an empty body counts as `{}`.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let invalid = |message: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message);
    let value: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", e.to_string()))?
    };
    if !value.is_object() {
        return Err(invalid("the body must be a JSON object".to_owned()));
    }
    serde_json::from_value(value).map_err(|e| invalid(e.to_string()))
}

pub(crate) fn domain_error(e: DomainError) -> ApiError {
    match e {
        DomainError::NotFound => ApiError::not_found("ticket"),
        DomainError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
        DomainError::NotAllowed(m) => ApiError::new(StatusCode::CONFLICT, "not_allowed", m),
        DomainError::AlreadyExists => ApiError::new(StatusCode::CONFLICT, "not_allowed", e.to_string()),
        DomainError::Invalid(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", m),
        DomainError::EmptyText => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "empty_text", e.to_string()),
    }
}
