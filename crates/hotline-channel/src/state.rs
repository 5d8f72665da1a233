//! A channel's own durable state: small values a channel must keep across restarts and share between the
//! processes that run it (a vendor's access and refresh tokens, who follows the OA, an inbox of webhook events
//! accepted but not yet turned into petitions, call facts waiting for their petition).
//!
//! Each channel sees only its own keys (`<channel>.<key>` in the store). Writes can be conditional on the revision
//! read, so two processes never both act on one value (a single-use refresh token, say).

use std::sync::Arc;

use hotline_store::{EventStore, StoreError};

/// Someone else wrote the entry since it was read (or created it first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the entry changed since it was read")]
pub struct StateConflict;

/// The durable key-value state of one channel. Cheap to clone.
#[derive(Clone)]
pub struct ChannelState {
    store: Arc<dyn EventStore>,
    channel: &'static str,
}

impl ChannelState {
    pub fn new(store: Arc<dyn EventStore>, channel: &'static str) -> ChannelState {
        ChannelState { store, channel }
    }

    /// The value of `key` and its revision (for a conditional [`put`](Self::put)).
    pub async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>, StoreError> {
        self.store.state_get(&self.full(key)?).await
    }

    /// Writes `key` only if it is still at `expected` (`None`: only if it does not exist). Returns the new
    /// revision, or [`StateConflict`] when another writer was first: read again and decide again.
    pub async fn put(&self, key: &str, value: &[u8], expected: Option<u64>) -> Result<Result<u64, StateConflict>, StoreError> {
        Ok(self.store.state_put(&self.full(key)?, value, expected).await?.ok_or(StateConflict))
    }

    /// Writes `key` whatever is there.
    pub async fn set(&self, key: &str, value: &[u8]) -> Result<u64, StoreError> {
        self.store.state_set(&self.full(key)?, value).await
    }

    /// Removes `key` (nothing happens when it is not there).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.store.state_delete(&self.full(key)?, None).await.map(|_| ())
    }

    /// Removes `key` only if it is still at `revision`: [`StateConflict`] when someone wrote since.
    pub async fn delete_if(&self, key: &str, revision: u64) -> Result<Result<(), StateConflict>, StoreError> {
        Ok(if self.store.state_delete(&self.full(key)?, Some(revision)).await? { Ok(()) } else { Err(StateConflict) })
    }

    /// The keys starting with `prefix` (without the channel's own prefix), in no particular order. A key removed
    /// in the last minute may still be listed: [`get`](Self::get) then finds nothing.
    pub async fn keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let own = format!("{}.", self.channel);
        let keys = self.store.state_keys(&format!("{own}{prefix}")).await?;
        Ok(keys.into_iter().filter_map(|k| k.strip_prefix(&own).map(str::to_owned)).collect())
    }

    /// `<channel>.<key>`, after checking the key is one the store can hold: segments of letters, digits, `_` and
    /// `-`, separated by dots.
    fn full(&self, key: &str) -> Result<String, StoreError> {
        let valid = !key.is_empty()
            && key.len() <= 200
            && key.split('.').all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        if !valid {
            return Err(StoreError::Rejected(format!("`{key}` is not a valid state key (letters, digits, _ and - between dots)")));
        }
        Ok(format!("{}.{key}", self.channel))
    }
}
