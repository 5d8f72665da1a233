//! The API's handlers.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use hotline_channel::http::{ApiError, JsonBody, MAX_BODY_BYTES, PathParam};
use hotline_channel::validate_codes;
use hotline_domain::classify::RouteRequest;
use hotline_domain::summary::{Lang, summarize};
use hotline_domain::Reference;
use hotline_domain::access::Principal;
use hotline_projections::TicketView;
use hotline_store::EventStore;
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::ApiState;

pub fn routes(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/route/explain", post(explain))
        .route("/v1/tickets/{key}", get(ticket))
        .route("/v1/tickets/{key}/timeline", get(timeline))
        .route("/v1/tickets/{key}/{action}", post(crate::commands::command))
        .route("/v1/queue", get(queue))
        .route("/v1/stats", get(crate::stats::stats))
        .route("/v1/map.geojson", get(crate::stats::map))
        .route("/v1/public/tickets/{key}", get(crate::public::view))
        .route("/v1/public/tickets/{key}/messages", post(crate::public::message))
        .route("/v1/public/tickets/{key}/feedback", post(crate::public::feedback))
        .route("/v1/public/tickets/{key}/attachments/{sha256}", get(crate::attachments::public_download))
        .route("/v1/attachments/{sha256}", get(crate::attachments::download))
        .route("/v1/admin/tokens", post(create_token).get(list_tokens))
        .route("/v1/admin/tokens/{id}", axum::routing::delete(revoke_token))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Uploads get their own, larger limit.
        .route(
            "/v1/attachments",
            post(crate::attachments::upload).layer(DefaultBodyLimit::max(hotline_channel::blobs::MAX_BYTES)),
        )
        .with_state(state)
}

/// Health: 503 when the log is unreachable. The projection's lag (log position minus applied position) is
/// reported, and a lag that does not shrink means the projection is stuck; it does not fail the check, since
/// intake still works.
async fn healthz(State(state): State<ApiState>) -> impl IntoResponse {
    let mut response = health(state.store.as_ref()).await;
    let applied = state.reader.position().await.ok();
    if let (Some(body), Some(applied)) = (response.1.0.as_object_mut(), applied) {
        body.insert("projection_position".into(), applied.into());
        if let Some(log) = body.get("log_position").and_then(serde_json::Value::as_u64) {
            body.insert("projection_lag".into(), log.saturating_sub(applied).into());
        }
    }
    response
}

async fn health(store: &dyn EventStore) -> (StatusCode, Json<serde_json::Value>) {
    let nats = store.is_connected();
    let log_position = if nats { store.last_position().await.ok() } else { None };
    let status = if nats { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = serde_json::json!({
        "status": if nats { "ok" } else { "degraded" },
        "nats": if nats { "connected" } else { "disconnected" },
        "log_position": log_position,
    });
    (status, Json(body))
}

/// Just `GET /healthz`, for processes that serve only a channel.
pub fn health_only(store: Arc<dyn EventStore>) -> Router {
    Router::new().route("/healthz", get(|State(store): State<Arc<dyn EventStore>>| async move { health(store.as_ref()).await })).with_state(store)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainRequest {
    text: String,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    area: Option<String>,
}

/// Runs the router's rules on a text and says what they decided and why. Stores nothing.
async fn explain(State(state): State<ApiState>, JsonBody(req): JsonBody<ExplainRequest>) -> Result<impl IntoResponse, ApiError> {
    validate_codes(&state.province, req.category.as_deref(), req.area.as_deref())?;
    let decision = state.province.route(&RouteRequest {
        text: &req.text,
        category: req.category.as_deref(),
        area: req.area.as_deref(),
    });
    Ok(Json(decision))
}

/// The ticket `key` names, if the caller may see it: a ticket outside an agency's reach is "not found", so its
/// existence does not leak.
pub(crate) async fn visible(state: &ApiState, principal: &Principal, key: &str) -> Result<TicketView, ApiError> {
    let view = find(state, key).await?;
    if principal.may_see(view.agency.as_deref()) { Ok(view) } else { Err(ApiError::not_found("ticket")) }
}

pub(crate) async fn find(state: &ApiState, key: &str) -> Result<TicketView, ApiError> {
    let found = if let Ok(id) = key.parse::<Uuid>() {
        state.reader.ticket(id).await
    } else if let Ok(reference) = Reference::parse(key) {
        state.reader.ticket_by_reference(reference.as_str()).await
    } else {
        return Err(ApiError::not_found("ticket"));
    };
    found.map_err(ApiError::internal)?.ok_or_else(|| ApiError::not_found("ticket"))
}

async fn ticket(State(state): State<ApiState>, headers: HeaderMap, PathParam(key): PathParam) -> Result<impl IntoResponse, ApiError> {
    let principal = state.auth.principal(&headers).await?;
    Ok(Json(visible(&state, &principal, &key).await?))
}

#[derive(Debug, Deserialize)]
struct TimelineQuery {
    /// Time travel: only what had happened at this instant (RFC 3339), with the ticket's state then.
    as_of: Option<String>,
}

/// `GET /v1/tickets/{key}/timeline[?as_of=<RFC 3339>]`: the ticket's events in order. With `as_of`, only the
/// events that had occurred by then, and `state`: the ticket as it stood (folded with the domain's
/// `Ticket::apply`, docs/audit.md). Who may see the ticket is decided on its current agency, like without `as_of`.
async fn timeline(
    State(state): State<ApiState>,
    headers: HeaderMap,
    PathParam(key): PathParam,
    query: Result<axum::extract::Query<TimelineQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let principal = state.auth.principal(&headers).await?;
    let axum::extract::Query(q) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))?;
    let as_of = match &q.as_of {
        Some(text) => Some(crate::as_of::parse_instant(text).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_as_of",
                format!("as_of must be an RFC 3339 instant with an offset, like 2026-11-28T09:30:00+07:00, not `{text}`"),
            )
        })?),
        None => None,
    };
    let view = visible(&state, &principal, &key).await?;
    let lang = Lang::from_accept_language(headers.get(axum::http::header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()));
    let entries = state.reader.timeline(view.ticket_id).await.map_err(ApiError::internal)?;
    let envelopes: Vec<hotline_domain::Envelope> = entries.iter().map(|e| e.envelope.clone()).collect();
    let state_then = as_of.map(|t| crate::as_of::state_at(&envelopes, t).1);
    let entries: Vec<serde_json::Value> = entries
        .iter()
        .filter(|entry| as_of.is_none_or(|t| entry.envelope.occurred_at <= t))
        .map(|entry| {
            let e = &entry.envelope;
            serde_json::json!({
                "seq": entry.seq,
                "at": e.occurred_at.format(&Rfc3339).unwrap_or_default(),
                "type": e.event_type(),
                "actor": e.actor,
                "summary": summarize(&e.event, lang, &state.province),
                "event_id": e.event_id,
            })
        })
        .collect();
    let mut body = serde_json::json!({
        "ticket_id": view.ticket_id,
        "reference": view.reference,
        "language": match lang { Lang::Vi => "vi", Lang::En => "en" },
        "entries": entries,
    });
    if let (Some(t), Some(folded), Some(object)) = (as_of, state_then, body.as_object_mut()) {
        object.insert("as_of".into(), t.format(&Rfc3339).unwrap_or_default().into());
        object.insert("state".into(), serde_json::to_value(folded).map_err(ApiError::internal)?);
    }
    Ok(Json(body))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    role: String,
    #[serde(default)]
    agency: Option<String>,
    name: String,
}

/// `POST /v1/admin/tokens`: a new API token, shown once.
async fn create_token(
    State(state): State<ApiState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<TokenRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let admin = state.auth.admin(&headers).await?;
    let (record, token) = crate::tokens::issue(&state.province, &req.role, req.agency.as_deref(), &req.name, &admin.token_id)
        .map_err(|message| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_token_request", message))?;
    state.auth.registry.create(&record).await.map_err(ApiError::unavailable)?;
    tracing::info!(id = %record.id, role = record.role.as_str(), by = %admin.token_id, "token created");
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "id": record.id, "token": token }))))
}

/// `GET /v1/admin/tokens`: every token (never the token itself, nor its hash).
async fn list_tokens(State(state): State<ApiState>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    state.auth.admin(&headers).await?;
    let records = state.auth.registry.list().await.map_err(ApiError::unavailable)?;
    let tokens: Vec<serde_json::Value> = records.iter().map(crate::tokens::public_view).collect();
    Ok(Json(serde_json::json!({ "tokens": tokens })))
}

/// `DELETE /v1/admin/tokens/{id}`: revokes a token at once; it stays listed as revoked.
async fn revoke_token(State(state): State<ApiState>, headers: HeaderMap, PathParam(id): PathParam) -> Result<impl IntoResponse, ApiError> {
    let admin = state.auth.admin(&headers).await?;
    let revoked = state.auth.registry.revoke(&id, time::OffsetDateTime::now_utc()).await.map_err(ApiError::unavailable)?;
    match revoked {
        Some(_) => {
            tracing::info!(%id, by = %admin.token_id, "token revoked");
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(ApiError::not_found("token")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueQuery {
    status: Option<String>,
    category: Option<String>,
    area: Option<String>,
    emergency: Option<bool>,
    /// `true`, `false`, or `any`; supervisors see escalations unless they ask otherwise.
    escalated: Option<String>,
    /// `true`: the call-back queue (phone callers whose reply could not go by SMS); `false`: everything else.
    callback: Option<bool>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /v1/queue`: the caller's open tickets, emergencies first, then by nearest deadline. An agency sees its
/// own; a supervisor sees what was escalated to them (missed deadlines) unless `escalated=any`; operators and
/// admins see every open ticket. `callback=true` is the operators' call-back queue: phone callers owed a call
/// because their reply could not go by SMS, answered tickets included. Pages of `limit` (default 50, at most 200)
/// with an opaque `next_cursor`.
async fn queue(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<axum::extract::Query<QueueQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let principal = state.auth.principal(&headers).await?;
    let axum::extract::Query(q) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))?;
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", m);
    if let Some(status) = &q.status
        && hotline_domain::Status::parse(status).is_none() {
            return Err(bad(format!("unknown status `{status}`")));
        }
    validate_codes(&state.province, q.category.as_deref(), q.area.as_deref())?;
    let escalated = match q.escalated.as_deref() {
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some("any") => None,
        None if principal.role == hotline_domain::access::Role::Supervisor => Some(true),
        None => None,
        Some(other) => return Err(bad(format!("escalated is true, false or any, not `{other}`"))),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let after = match &q.cursor {
        Some(c) => Some(hotline_projections::QueueKey::from_cursor(c).ok_or_else(|| bad("invalid cursor".to_owned()))?),
        None => None,
    };
    let agency = match principal.role {
        hotline_domain::access::Role::Agency => principal.agency.clone(),
        _ => None,
    };
    let filter = hotline_projections::QueueFilter {
        agency,
        status: q.status,
        category: q.category,
        area: q.area,
        emergency: q.emergency,
        escalated,
        callback: q.callback,
        limit,
        after,
    };
    let tickets = state.reader.queue(filter).await.map_err(ApiError::internal)?;
    let next_cursor = if tickets.len() as u32 == limit { tickets.last().map(|t| t.queue_key.to_cursor()) } else { None };
    Ok(Json(serde_json::json!({ "tickets": tickets, "next_cursor": next_cursor })))
}
