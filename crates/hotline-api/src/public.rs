//! What a citizen may see and do with their reference and access code: their ticket's status, the agency's
//! name, the answer, and their own conversation with the hotline; answering a question; giving feedback. No
//! internal notes, no names of staff, nothing of other citizens. A wrong code answers 404, like a wrong reference,
//! so neither can be probed.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use hotline_channel::http::{ApiError, JsonBody, PathParam};
use hotline_domain::summary::Lang;
use hotline_domain::{Actor, Command, Envelope, Reference, Ticket, TicketEvent};
use hotline_projections::TicketView;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::ApiState;

/// The view's query: other parameters (an app's cache-buster) are ignored.
#[derive(Deserialize)]
pub struct CodeQuery {
    code: Option<String>,
}

/// The ticket `reference` names, if `code` is its access code.
pub(crate) async fn citizens_ticket(state: &ApiState, reference: &str, code: Option<&str>) -> Result<TicketView, ApiError> {
    let not_found = || ApiError::not_found("ticket");
    let reference = Reference::parse(reference).map_err(|_| not_found())?;
    let view = state.reader.ticket_by_reference(reference.as_str()).await.map_err(ApiError::internal)?.ok_or_else(not_found)?;
    match code {
        Some(code) if state.codes.verify(view.ticket_id, code) => Ok(view),
        _ => Err(not_found()),
    }
}

/// `GET /v1/public/tickets/{reference}?code=...`
pub async fn view(
    State(state): State<ApiState>,
    headers: HeaderMap,
    PathParam(reference): PathParam,
    query: Result<axum::extract::Query<CodeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let code = query.ok().and_then(|q| q.0.code);
    let view = citizens_ticket(&state, &reference, code.as_deref()).await?;
    let lang = Lang::from_accept_language(headers.get(axum::http::header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()));
    let entries = state.reader.timeline(view.ticket_id).await.map_err(ApiError::internal)?;
    let at = |e: &Envelope| e.occurred_at.format(&Rfc3339).unwrap_or_default();
    // The citizen's own conversation: what they wrote, what they were asked, what they answered, the answers.
    let messages: Vec<serde_json::Value> = entries
        .iter()
        .filter_map(|entry| {
            let e = &entry.envelope;
            let (from, kind, text) = match &e.event {
                TicketEvent::PetitionReceived(p) => ("citizen", "petition", p.text.clone()),
                TicketEvent::InformationRequested(q) => ("hotline", "question", q.question.clone()),
                TicketEvent::CitizenReplied(r) => ("citizen", "reply", r.text.clone()),
                TicketEvent::CitizenWrote(w) => ("citizen", "message", w.text.clone()),
                TicketEvent::PetitionAnswered(a) => {
                    return Some(serde_json::json!({
                        "at": at(e), "from": "hotline", "kind": "answer", "text": a.text, "attachments": a.attachments,
                    }));
                }
                TicketEvent::FeedbackGiven(f) => ("citizen", "feedback", f.comment.clone().unwrap_or_default()),
                _ => return None,
            };
            Some(serde_json::json!({ "at": at(e), "from": from, "kind": kind, "text": text }))
        })
        .collect();
    let name = |code: Option<&str>| {
        code.and_then(|c| state.province.agency(c)).map(|a| match lang {
            Lang::Vi => a.name_vi.clone(),
            Lang::En => a.name_en.clone(),
        })
    };
    let category = view.category.as_deref().and_then(|c| state.province.category(c)).map(|c| match lang {
        Lang::Vi => c.name_vi.clone(),
        Lang::En => c.name_en.clone(),
    });
    Ok(Json(serde_json::json!({
        "reference": view.reference,
        "status": view.status,
        "category": category,
        "agency": name(view.agency.as_deref()),
        "received_at": view.received_at,
        "answer": view.answer,
        "messages": messages,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageBody {
    code: String,
    text: String,
}

/// `POST /v1/public/tickets/{reference}/messages`: the citizen answers the question they were asked.
pub async fn message(
    State(state): State<ApiState>,
    PathParam(reference): PathParam,
    JsonBody(body): JsonBody<MessageBody>,
) -> Result<impl IntoResponse, ApiError> {
    let view = citizens_ticket(&state, &reference, Some(&body.code)).await?;
    let outcome = act(&state, view.ticket_id, |ticket, now| {
        let (acknowledge_by, resolve_by) = ticket.resumed_deadlines(&state.province, now);
        Command::CitizenReply { text: body.text.clone(), acknowledge_by, resolve_by }
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(outcome)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackBody {
    code: String,
    satisfied: bool,
    #[serde(default)]
    comment: Option<String>,
}

/// `POST /v1/public/tickets/{reference}/feedback`: satisfied closes the ticket; not satisfied reopens it to the
/// agency that answered, with the comment, on a fresh clock.
pub async fn feedback(
    State(state): State<ApiState>,
    PathParam(reference): PathParam,
    JsonBody(body): JsonBody<FeedbackBody>,
) -> Result<impl IntoResponse, ApiError> {
    let view = citizens_ticket(&state, &reference, Some(&body.code)).await?;
    let outcome = act(&state, view.ticket_id, |ticket, now| {
        let deadlines = ticket.category.as_deref().and_then(|c| state.province.deadlines(c, now));
        let desk = Some(state.province.triage_agency().code.clone());
        Command::Feedback { satisfied: body.satisfied, comment: body.comment.clone(), deadlines, desk }
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(outcome)))
}

/// Decides the citizen's command on the ticket's history and appends it (see `decide_and_append`).
async fn act(
    state: &ApiState,
    ticket_id: Uuid,
    command: impl Fn(&Ticket, OffsetDateTime) -> Command,
) -> Result<serde_json::Value, ApiError> {
    let history = state.store.load(ticket_id).await.map_err(ApiError::unavailable)?;
    let channel = Ticket::from_history(&history.events).channel.unwrap_or_else(|| "app".to_owned());
    let (after, _) = crate::commands::decide_and_append(state, ticket_id, Actor::channel(&channel), |ticket| {
        Ok(command(ticket, OffsetDateTime::now_utc()))
    })
    .await?;
    Ok(serde_json::json!({ "reference": after.reference, "status": after.status.as_str() }))
}
