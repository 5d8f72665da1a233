//! API tokens: who may call the HTTP API, as what. Stored in a key-value bucket of the log's server so every
//! process (and the CLI) sees the same set. Only a hash of each token is kept; the token itself is shown once.

use futures_util::future::BoxFuture;
use hotline_domain::access::Role;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::StoreError;

/// A stored token: everything but the token itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public id, part of the token (`hlt_<id>_<secret>`), recorded as the actor of the holder's commands.
    pub id: String,
    pub role: Role,
    /// The agency an `agency` token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency: Option<String>,
    /// Who holds it ("Nguyễn Văn A, Sở GTVT").
    pub name: String,
    /// SHA-256 of the whole token, hex.
    pub hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The admin (token id, or `cli`) that created it.
    pub created_by: String,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// Where tokens live.
pub trait TokenRegistry: Send + Sync + 'static {
    /// Stores a new token; refuses an id that exists.
    fn create<'a>(&'a self, record: &'a TokenRecord) -> BoxFuture<'a, Result<(), StoreError>>;
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<TokenRecord>, StoreError>>;
    /// Every token, revoked ones included (for audit), oldest first.
    fn list(&self) -> BoxFuture<'_, Result<Vec<TokenRecord>, StoreError>>;
    /// Marks a token revoked (kept for audit); None when there is no such token.
    fn revoke<'a>(&'a self, id: &'a str, at: OffsetDateTime) -> BoxFuture<'a, Result<Option<TokenRecord>, StoreError>>;
}
