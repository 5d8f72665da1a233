//! Files attached to answers: staff upload them (`POST /v1/attachments`), answers name them by SHA-256, staff and
//! the ticket's citizen download them.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hotline_channel::http::{ApiError, PathParam};
use hotline_domain::TicketEvent;

use crate::ApiState;

/// `POST /v1/attachments`: stores the body (at most 10 MiB) and answers its hash, for `answer`'s attachments.
pub async fn upload(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    state.auth.principal(&headers).await?;
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("a file is at most {} MiB", hotline_channel::blobs::MAX_BYTES / (1024 * 1024)),
        ),
        status => ApiError::new(status, "bad_request", e.body_text()),
    })?;
    if body.is_empty() {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "empty_file", "the file is empty"));
    }
    let blobs = state.blobs.clone();
    let blob = tokio::task::spawn_blocking(move || blobs.put(&body))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "sha256": blob.sha256, "size": blob.size }))))
}

/// `GET /v1/attachments/{sha256}`: any staff token.
pub async fn download(State(state): State<ApiState>, headers: HeaderMap, PathParam(sha256): PathParam) -> Result<Response, ApiError> {
    state.auth.principal(&headers).await?;
    send(&state, &sha256, None).await
}

#[derive(serde::Deserialize)]
pub struct CodeQuery {
    code: Option<String>,
}

/// `GET /v1/public/tickets/{reference}/attachments/{sha256}?code=`: only files attached to this ticket's answers.
pub async fn public_download(
    State(state): State<ApiState>,
    axum::extract::Path((reference, sha256)): axum::extract::Path<(String, String)>,
    query: Result<axum::extract::Query<CodeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let code = query.ok().and_then(|q| q.0.code);
    let view = crate::public::citizens_ticket(&state, &reference, code.as_deref()).await?;
    // From the log, not the projection: a file is there for the citizen as soon as the answer is stored.
    let history = state.store.load(view.ticket_id).await.map_err(ApiError::unavailable)?;
    let attachment = history.events.iter().find_map(|e| match &e.event {
        TicketEvent::PetitionAnswered(a) => a.attachments.iter().find(|x| x.sha256.as_deref() == Some(sha256.as_str())).cloned(),
        _ => None,
    });
    let attachment = attachment.ok_or_else(|| ApiError::not_found("attachment"))?;
    send(&state, &sha256, attachment.media_type.as_deref()).await
}

async fn send(state: &ApiState, sha256: &str, media_type: Option<&str>) -> Result<Response, ApiError> {
    let blobs = state.blobs.clone();
    let hash = sha256.to_owned();
    let bytes = tokio::task::spawn_blocking(move || blobs.get(&hash))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("attachment"))?;
    let mut response = bytes.into_response();
    let content_type = media_type
        .and_then(|m| HeaderValue::from_str(m).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    response.headers_mut().insert(header::CONTENT_TYPE, content_type);
    Ok(response)
}
