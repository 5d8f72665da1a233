//! The HTTP error shape every endpoint shares, and a JSON body extractor that uses it.
//!
//! Every 4xx is `{"error": {"code": "...", "message": "..."}}` with a stable `code`; a 500 says only that
//! something went wrong (the full chain goes to the log).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::IntakeError;

/// Largest request body any endpoint accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid `Authorization: Bearer <token>` is required")
    }

    pub fn unavailable(detail: impl std::fmt::Display) -> ApiError {
        tracing::warn!(error = %detail, "answering 503");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the event log is unavailable; nothing was stored, retry later")
    }

    /// A 500 whose detail is logged, never shown.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<IntakeError> for ApiError {
    fn from(e: IntakeError) -> ApiError {
        match e {
            IntakeError::Invalid { code, message } => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message),
            IntakeError::KeyReused => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused", e.to_string())
            }
            IntakeError::Unavailable(detail) => ApiError::unavailable(detail),
            IntakeError::OutcomeUnknown(detail) => {
                tracing::warn!(error = %detail, "answering 503: outcome unknown");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "outcome_unknown",
                    "the petition was sent to the event log but not confirmed in time, so it may have been stored; \
                     retry with the same Idempotency-Key to get its ticket without creating a second one",
                )
            }
        }
    }
}

/// A JSON object body whose rejections are [`ApiError`]s: 400 for malformed JSON, 422 for anything but an
/// object or an object of the wrong shape (unknown fields included: a misspelt field is an error, not ignored),
/// 413 for a body over the limit, 415 without a JSON content type.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<serde_json::Value>::from_request(req, state).await.map_err(json_rejection)?;
        if !value.is_object() {
            return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", "the body must be a JSON object"));
        }
        // serde's own words ("missing field `text`", "unknown field `categry`, expected one of ...") name the
        // field without naming our types.
        serde_json::from_value(value)
            .map(JsonBody)
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", e.to_string()))
    }
}

/// A path parameter as a string, with a bad one (invalid percent-encoding) answered in the shared shape.
pub struct PathParam(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(p)| PathParam(p))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", e.body_text()))
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let code = match &rejection {
        JsonRejection::JsonSyntaxError(_) => "malformed_json",
        JsonRejection::JsonDataError(_) => "invalid_request",
        JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        _ => "bad_request",
    };
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("the body is larger than {} KiB", MAX_BODY_BYTES / 1024)
    } else {
        rejection.body_text()
    };
    ApiError::new(status, code, message)
}

/// Rejection for an unmatched route, in the shared shape.
pub async fn fallback() -> ApiError {
    ApiError::not_found("route")
}

/// Rejection for a known route called with the wrong method, in the shared shape.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
}
