//! The OA's access and refresh tokens, kept in the channel's durable state and refreshed one process at a time.
//!
//! Zalo's refresh token is single-use: each refresh returns a new one, and presenting the old one again fails
//! (`-14020`). Losing the new pair therefore locks the hotline out until an OA admin authorises the app again. So:
//! - both tokens live in ONE state entry (`token`), written with compare-and-set, so they change together;
//! - a refresh first claims that entry (a CAS write of `refreshing`), so two processes never present one refresh
//!   token; within a process a mutex keeps tasks from even trying at once;
//! - the new pair is written to the state before anyone uses it;
//! - a process that finds the access token changed since it failed with it uses the new one instead of
//!   refreshing again.
//!
//! The tokens of the `[zalo]` settings seed the state only when it holds none, or when the settings' tokens change
//! (an admin pasted a freshly authorised pair): a restart never rolls the state back to a used-up refresh token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hotline_channel::ChannelState;
use hotline_store::StoreError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::api::{OaApi, RefreshFailure};
use crate::config::ZaloConfig;

/// The state key of the tokens.
pub const KEY: &str = "token";

/// Refresh this long before the access token's announced expiry.
const EARLY: Duration = Duration::from_secs(300);

/// The stored tokens.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// When the access token expires (ms since the epoch), if Zalo said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    /// Fingerprint of the settings' tokens this pair descends from: new settings tokens replace the pair.
    #[serde(default)]
    pub seed: String,
    /// A refresh in progress: who, since when. Another process waits for it, or takes over once it is stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshing: Option<Claim>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("expires_at_ms", &self.expires_at_ms)
            .field("refreshing", &self.refreshing)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub by: Uuid,
    pub since_ms: u64,
}

/// Why no token can be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    #[error("no Zalo access token: set [zalo] access_token and refresh_token (docs/channels/zalo.md)")]
    NotConfigured,
    #[error("{0}; an OA admin must authorise the app again and put the new tokens in [zalo] (docs/channels/zalo.md)")]
    Refused(String),
    #[error("{0}")]
    Transient(String),
}

impl From<StoreError> for TokenError {
    fn from(e: StoreError) -> TokenError {
        TokenError::Transient(format!("channel state: {e}"))
    }
}

/// The token keeper of one process.
pub struct TokenKeeper {
    api: OaApi,
    app_id: Option<String>,
    app_secret: Option<String>,
    seed_tokens: Option<(Option<String>, Option<String>)>,
    /// How long a refresh claim holds before another process may take over (the refresh call's timeout and more).
    lease: Duration,
    /// This process's name in claims.
    me: Uuid,
    /// One refresh at a time in this process.
    refreshing: Mutex<()>,
}

impl TokenKeeper {
    pub fn new(api: OaApi, config: &ZaloConfig) -> TokenKeeper {
        let seed_tokens = (config.access_token.is_some() || config.refresh_token.is_some()).then(|| {
            (
                config.access_token.as_ref().map(|s| s.expose().to_owned()),
                config.refresh_token.as_ref().map(|s| s.expose().to_owned()),
            )
        });
        TokenKeeper {
            api,
            app_id: config.app_id.clone(),
            app_secret: config.app_secret.as_ref().map(|s| s.expose().to_owned()),
            seed_tokens,
            lease: config.http_timeout * 2 + Duration::from_secs(5),
            me: Uuid::now_v7(),
            refreshing: Mutex::new(()),
        }
    }

    /// An access token to send with: the stored one (seeded from the settings if needed), refreshed first when it
    /// is about to expire.
    pub async fn access_token(&self, state: &ChannelState) -> Result<String, TokenError> {
        let (tokens, _) = self.load(state).await?;
        if tokens.access_token.is_empty() && tokens.refresh_token.is_some() {
            // Seeded with a refresh token alone.
            return self.refresh(state, "").await;
        }
        if tokens.expires_at_ms.is_some_and(|at| now_ms() + EARLY.as_millis() as u64 >= at) && tokens.refresh_token.is_some() {
            return self.refresh(state, &tokens.access_token).await;
        }
        Ok(tokens.access_token)
    }

    /// Zalo refused `stale` (expired, revoked): returns a newer access token, refreshing unless another task or
    /// process already did.
    pub async fn refresh(&self, state: &ChannelState, stale: &str) -> Result<String, TokenError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let deadline = tokio::time::Instant::now() + self.lease * 2;
        loop {
            let (tokens, revision) = self.load(state).await?;
            if tokens.access_token != stale && tokens.refreshing.is_none() {
                return Ok(tokens.access_token);
            }
            if let Some(claim) = &tokens.refreshing
                && claim.by != self.me
                && now_ms() < claim.since_ms.saturating_add(self.lease.as_millis() as u64)
            {
                // Another process is refreshing: wait for its result.
                if tokio::time::Instant::now() >= deadline {
                    return Err(TokenError::Transient("another process is refreshing the Zalo token".into()));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let Some(refresh_token) = tokens.refresh_token.clone() else {
                return Err(TokenError::Refused("Zalo refused the access token and there is no refresh token".into()));
            };
            let (Some(app_id), Some(app_secret)) = (&self.app_id, &self.app_secret) else {
                return Err(TokenError::Refused("refreshing needs [zalo] app_id and app_secret".into()));
            };
            let claimed = Tokens { refreshing: Some(Claim { by: self.me, since_ms: now_ms() }), ..tokens.clone() };
            let Ok(claim_revision) = state.put(KEY, &encode(&claimed), Some(revision)).await? else {
                continue; // someone else changed it first: look again
            };
            match self.api.refresh(app_id, app_secret, &refresh_token).await {
                Ok(pair) => {
                    let fresh = Tokens {
                        access_token: pair.access_token,
                        refresh_token: Some(pair.refresh_token),
                        expires_at_ms: pair.expires_in.map(|s| now_ms().saturating_add(s.saturating_mul(1000))),
                        seed: tokens.seed.clone(),
                        refreshing: None,
                    };
                    // Zalo accepted our refresh token, so this pair is the only valid one, even if another process
                    // took our claim over meanwhile (its refresh can only fail): it is written whatever is there.
                    if state.put(KEY, &encode(&fresh), Some(claim_revision)).await?.is_err() {
                        tracing::warn!("the Zalo token claim was taken over during a successful refresh; keeping the new pair");
                        state.set(KEY, &encode(&fresh)).await?;
                    }
                    tracing::info!(expires_in_secs = ?pair.expires_in, "Zalo access token refreshed");
                    return Ok(fresh.access_token);
                }
                Err(failure) => {
                    let released = Tokens { refreshing: None, ..tokens.clone() };
                    let _ = state.put(KEY, &encode(&released), Some(claim_revision)).await;
                    return Err(match failure {
                        RefreshFailure::Refused(m) => {
                            tracing::error!(error = %m, "Zalo refused the refresh token");
                            TokenError::Refused(format!("Zalo refused the refresh token ({m})"))
                        }
                        RefreshFailure::Transient(m) => TokenError::Transient(format!("token refresh failed: {m}")),
                    });
                }
            }
        }
    }

    /// The stored tokens and their revision, seeding them from the settings when the state has none or the
    /// settings' tokens changed.
    async fn load(&self, state: &ChannelState) -> Result<(Tokens, u64), TokenError> {
        for _ in 0..10 {
            let current = state.get(KEY).await?;
            let stored = match &current {
                Some((bytes, revision)) => match serde_json::from_slice::<Tokens>(bytes) {
                    Ok(t) => Some((t, *revision)),
                    Err(e) => {
                        tracing::error!(error = %e, "the stored Zalo tokens are unreadable; seeding them from the settings");
                        None
                    }
                },
                None => None,
            };
            let seed = self.seed_tokens.as_ref().map(|(a, r)| fingerprint(a.as_deref(), r.as_deref()));
            match (stored, &self.seed_tokens, seed) {
                (Some((tokens, revision)), _, Some(seed)) if tokens.seed == seed => return Ok((tokens, revision)),
                (Some((tokens, revision)), None, _) => return Ok((tokens, revision)),
                (_, Some((access, refresh)), Some(seed)) => {
                    let seeded = Tokens {
                        access_token: access.clone().unwrap_or_default(),
                        refresh_token: refresh.clone(),
                        expires_at_ms: None,
                        seed,
                        refreshing: None,
                    };
                    let expected = current.as_ref().map(|(_, r)| *r);
                    if let Ok(revision) = state.put(KEY, &encode(&seeded), expected).await? {
                        if expected.is_some() {
                            tracing::info!("new Zalo tokens in the settings replace the stored ones");
                        }
                        return Ok((seeded, revision));
                    }
                }
                _ => return Err(TokenError::NotConfigured),
            }
        }
        Err(TokenError::Transient("the stored Zalo tokens keep changing".into()))
    }
}

fn encode(tokens: &Tokens) -> Vec<u8> {
    serde_json::to_vec(tokens).unwrap_or_default()
}

/// Which settings tokens a stored pair descends from, without keeping them in clear twice.
fn fingerprint(access: Option<&str>, refresh: Option<&str>) -> String {
    let mut hash = Sha256::new();
    hash.update(access.unwrap_or("").as_bytes());
    hash.update([0]);
    hash.update(refresh.unwrap_or("").as_bytes());
    crate::signature::hex(&hash.finalize()[..12])
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
