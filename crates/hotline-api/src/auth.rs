//! Bearer-token authentication: the bootstrap admin token from the settings, and API tokens from the registry
//! (`hlt_<id>_<secret>`, stored as SHA-256 hashes only).

use std::fmt;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use hotline_channel::http::ApiError;
use hotline_domain::access::{Principal, Role};
use hotline_store::TokenRegistry;
use sha2::{Digest, Sha256};

/// Prefix of registry tokens, so a leaked one is recognisable in a scan.
pub const TOKEN_PREFIX: &str = "hlt_";

/// The bootstrap admin token. Its `Debug` never shows it; only its hash is kept.
#[derive(Clone)]
pub struct AdminToken(Arc<[u8; 32]>);

impl AdminToken {
    pub fn new(token: &str) -> AdminToken {
        AdminToken(Arc::new(Sha256::digest(token.as_bytes()).into()))
    }

    fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        constant_time_eq(&digest, &self.0[..])
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

/// Who is calling: checks `Authorization: Bearer <token>`.
#[derive(Clone)]
pub struct Auth {
    pub bootstrap: AdminToken,
    pub registry: Arc<dyn TokenRegistry>,
}

impl Auth {
    /// The caller, or 401 (no token, unknown token, revoked token, wrong secret: all the same answer).
    pub async fn principal(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let presented = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(ApiError::unauthorized)?;
        if self.bootstrap.matches(presented) {
            return Ok(Principal { role: Role::Admin, agency: None, token_id: "bootstrap".to_owned(), name: "bootstrap admin".to_owned() });
        }
        let Some(id) = token_id(presented) else { return Err(ApiError::unauthorized()) };
        let record = self.registry.get(id).await.map_err(ApiError::unavailable)?.ok_or_else(ApiError::unauthorized)?;
        if record.revoked_at.is_some() || !constant_time_eq(hash_token(presented).as_bytes(), record.hash.as_bytes()) {
            return Err(ApiError::unauthorized());
        }
        Ok(Principal { role: record.role, agency: record.agency, token_id: record.id, name: record.name })
    }

    /// The caller, who must be an admin (403 otherwise).
    pub async fn admin(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let principal = self.principal(headers).await?;
        if principal.role != Role::Admin {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "only admins may do this"));
        }
        Ok(principal)
    }
}

/// A new token and its id: `hlt_<id>_<secret>` with 244 random bits of secret.
pub fn new_token() -> (String, String) {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let token = format!("{TOKEN_PREFIX}{id}_{secret}");
    (id, token)
}

/// What the registry stores of a token.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn token_id(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (!id.is_empty() && !secret.is_empty()).then_some(id)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_token_carries_its_id_and_hashes_stably() {
        let (id, token) = new_token();
        assert_eq!(token_id(&token), Some(id.as_str()));
        assert_eq!(hash_token(&token), hash_token(&token));
        assert_eq!(hash_token(&token).len(), 64);
        assert_ne!(new_token().1, token);
        assert_eq!(token_id("hlt__x"), None);
        assert_eq!(token_id("Bearer"), None);
    }
}
