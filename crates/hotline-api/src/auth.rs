//! Bearer-token authentication. Today one admin token; roles and per-agency tokens come with the workflow.

use std::fmt;
use std::sync::Arc;

use axum::http::HeaderMap;
use hotline_channel::http::ApiError;
use sha2::{Digest, Sha256};

/// The admin token. Its `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct AdminToken(Arc<[u8; 32]>);

impl AdminToken {
    /// Keeps only the token's SHA-256, so the plain token does not stay in memory longer than needed.
    pub fn new(token: &str) -> AdminToken {
        AdminToken(Arc::new(Sha256::digest(token.as_bytes()).into()))
    }

    /// Checks `Authorization: Bearer <token>` in constant time.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let presented = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(ApiError::unauthorized)?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let diff = digest.iter().zip(self.0.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff == 0 { Ok(()) } else { Err(ApiError::unauthorized()) }
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(***)")
    }
}
