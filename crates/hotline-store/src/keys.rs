//! Citizens' keys and the encryption of personal data in the log (docs/privacy.md, docs/adr/0008).
//!
//! Each citizen (a phone number, an e-mail address or a Zalo id: their *identity*) has one random 256-bit key,
//! kept in the key-value bucket `hotline_keys` beside the log, never in it: `k.<key id>` holds the key,
//! `c.<SHA-256 of the identity>` the id of the identity's key. A petition without contact details gets a key of
//! its own. The append path encrypts every personal field of an event (`hotline_domain::event::personal_fields`)
//! with AES-256-GCM under the ticket's key before the event is hashed into its chain, and every read decrypts.
//! Destroying a key (`hotline citizen erase`, retention) erases its bucket entry with JetStream's erasing delete,
//! after which those fields read as `[erased]`: the log itself never changes, so its hash chains still verify.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use async_nats::jetstream::stream::{DeleteMessageError, DeleteMessageErrorKind};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hotline_domain::event::{ERASED, for_each_personal_field};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use uuid::Uuid;

use crate::StoreError;

/// What an encrypted field's text starts with: `enc:v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`.
const PREFIX: &str = "enc:v1:";
/// How long a process trusts a key it read: another process may destroy it meanwhile. Readers also honour the
/// ticket's `PersonalDataErased`, so a key used a little longer never brings erased data back.
const KEY_TTL: Duration = Duration::from_secs(300);
/// Cached keys and ticket keys, at most; past that the cache starts over.
const CACHE_LIMIT: usize = 100_000;

/// A key as a process holds it.
#[derive(Clone)]
enum Cached {
    Live(Arc<LessSafeKey>, Instant),
    /// Destroyed: for good.
    Gone,
}

/// The key store and the field cipher.
#[derive(Clone)]
pub(crate) struct KeyRing {
    kv: kv::Store,
    keys: Arc<Mutex<HashMap<Uuid, Cached>>>,
    /// Each ticket's key id (from its `PetitionReceived`), for the events that follow it.
    tickets: Arc<Mutex<HashMap<Uuid, Option<Uuid>>>>,
    random: SystemRandom,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn identity_entry(identity: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(identity.as_bytes());
    format!("c.{}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn key_entry(key: Uuid) -> String {
    format!("k.{}", key.simple())
}

impl KeyRing {
    pub(crate) fn new(kv: kv::Store) -> KeyRing {
        KeyRing { kv, keys: Arc::default(), tickets: Arc::default(), random: SystemRandom::new() }
    }

    /// The key of `identity`, made on its first petition; a new key of its own for a petition without one.
    pub(crate) async fn citizen_key(&self, identity: Option<&str>) -> Result<Uuid, StoreError> {
        let Some(identity) = identity else { return self.new_key().await };
        if identity.starts_with("ticket:") {
            // A petition without contact details: its key's id follows from its ticket, so a retry of the same
            // petition finds it without an identity entry (one write instead of a read and two).
            let id = Uuid::new_v5(&Uuid::NAMESPACE_OID, identity.as_bytes());
            if let Some(Some(_)) = self.cached(id) {
                return Ok(id);
            }
            if !self.create_key(id).await? {
                // Made by an earlier attempt of the same petition.
                self.key(id).await?;
            }
            return Ok(id);
        }
        let entry = identity_entry(identity);
        loop {
            if let Some(value) = self.kv.get(&entry).await.map_err(unavailable)? {
                let id = std::str::from_utf8(&value).ok().and_then(|s| s.parse::<Uuid>().ok());
                // Asked of the bucket itself, not the cache: the key may have been destroyed a moment ago.
                if let Some(id) = id
                    && self.read_key(id).await?.is_some()
                {
                    return Ok(id);
                }
                // The identity's key was destroyed (the citizen was erased) and they write again: a new key.
                let fresh = self.new_key().await?;
                let revision = self.kv.entry(&entry).await.map_err(unavailable)?.map(|e| e.revision).unwrap_or(0);
                match self.kv.update(&entry, fresh.to_string().into(), revision).await {
                    Ok(_) => return Ok(fresh),
                    Err(_) => {
                        self.destroy(fresh).await?;
                        continue;
                    }
                }
            }
            let fresh = self.new_key().await?;
            match self.kv.create(&entry, fresh.to_string().into()).await {
                Ok(_) => return Ok(fresh),
                // Another intake of the same citizen made theirs first: use that one.
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => self.destroy(fresh).await?,
                Err(e) => return Err(unavailable(e)),
            }
        }
    }

    /// The id of `identity`'s key, if it has one.
    pub(crate) async fn identity_key(&self, identity: &str) -> Result<Option<Uuid>, StoreError> {
        let value = self.kv.get(identity_entry(identity)).await.map_err(unavailable)?;
        Ok(value.and_then(|v| std::str::from_utf8(&v).ok().and_then(|s| s.parse().ok())))
    }

    async fn new_key(&self) -> Result<Uuid, StoreError> {
        let id = Uuid::new_v4();
        self.create_key(id).await?;
        Ok(id)
    }

    /// Makes the key `id` with fresh random bytes, unless it exists (false).
    async fn create_key(&self, id: Uuid) -> Result<bool, StoreError> {
        let mut bytes = [0u8; 32];
        self.random.fill(&mut bytes).map_err(|_| StoreError::Rejected("no randomness for a key".to_owned()))?;
        match self.kv.create(key_entry(id), bytes.to_vec().into()).await {
            Ok(_) => {}
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(unavailable(e)),
        }
        // Known at once: a replica that has not applied the write yet must not make it look destroyed.
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| StoreError::Rejected("not an AES-256 key".to_owned()))?;
        self.cache(id, Cached::Live(Arc::new(LessSafeKey::new(key)), Instant::now()));
        Ok(true)
    }

    /// What the cache knows of the key `id`: the key while fresh, None once destroyed; nothing when it must be read.
    fn cached(&self, id: Uuid) -> Option<Option<Arc<LessSafeKey>>> {
        match self.keys.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
            Some(Cached::Live(key, at)) if at.elapsed() < KEY_TTL => Some(Some(key.clone())),
            Some(Cached::Gone) => Some(None),
            _ => None,
        }
    }

    fn cache(&self, id: Uuid, cached: Cached) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= CACHE_LIMIT {
            keys.clear();
        }
        keys.insert(id, cached);
    }

    /// The key's bytes from the bucket's leader (not a direct get, which any replica may answer from behind):
    /// None only when the key is really gone.
    async fn read_key(&self, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        let subject = format!("{}{}", self.kv.prefix, key_entry(id));
        match self.kv.stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) if message.payload.len() == 32 => Ok(Some(message.payload.to_vec())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Whether the key `id` still exists (asked of the bucket, not the cache).
    pub(crate) async fn exists(&self, id: Uuid) -> Result<bool, StoreError> {
        Ok(self.read_key(id).await?.is_some())
    }

    /// The key `id`, or None once destroyed.
    pub(crate) async fn key(&self, id: Uuid) -> Result<Option<Arc<LessSafeKey>>, StoreError> {
        if let Some(known) = self.cached(id) {
            return Ok(known);
        }
        let cached = match self.read_key(id).await? {
            Some(bytes) => {
                let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| StoreError::Rejected(format!("key {id} is not an AES-256 key")))?;
                Cached::Live(Arc::new(LessSafeKey::new(key)), Instant::now())
            }
            None => Cached::Gone,
        };
        self.cache(id, cached.clone());
        Ok(match cached {
            Cached::Live(key, _) => Some(key),
            Cached::Gone => None,
        })
    }

    /// Destroys the key `id` for good: its bucket entry is deleted with JetStream's erasing delete (the bytes are
    /// overwritten, not just unlinked).
    pub(crate) async fn destroy(&self, id: Uuid) -> Result<(), StoreError> {
        erase_entry(&self.kv, &key_entry(id)).await?;
        self.cache(id, Cached::Gone);
        Ok(())
    }

    /// Forgets which key `identity` has (so nothing ties the identity to its erased tickets any more).
    pub(crate) async fn forget_identity(&self, identity: &str) -> Result<(), StoreError> {
        erase_entry(&self.kv, &identity_entry(identity)).await
    }

    pub(crate) fn remember_ticket(&self, ticket: Uuid, key: Option<Uuid>) {
        let mut tickets = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        if tickets.len() >= CACHE_LIMIT {
            tickets.clear();
        }
        tickets.insert(ticket, key);
    }

    pub(crate) fn ticket_key(&self, ticket: Uuid) -> Option<Option<Uuid>> {
        self.tickets.lock().unwrap_or_else(|e| e.into_inner()).get(&ticket).copied()
    }

    /// Encrypts the personal fields of a stored body under `key` (None: the key is destroyed, so the fields are
    /// stored as `[erased]`), bound to the event by its id.
    pub(crate) fn seal(&self, event_type: &str, event_id: Uuid, key: Option<&LessSafeKey>, key_id: Uuid, data: &mut serde_json::Value) {
        for_each_personal_field(event_type, data, &mut |text| {
            if text.is_empty() || text.as_str() == ERASED || text.starts_with(PREFIX) {
                return;
            }
            let Some(key) = key else {
                *text = ERASED.to_owned();
                return;
            };
            let mut nonce = [0u8; NONCE_LEN];
            if self.random.fill(&mut nonce).is_err() {
                // No randomness: store nothing rather than the plaintext.
                *text = ERASED.to_owned();
                return;
            }
            let mut sealed = std::mem::take(text).into_bytes();
            if key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(event_id.as_bytes()), &mut sealed).is_err() {
                *text = ERASED.to_owned();
                return;
            }
            let mut out = nonce.to_vec();
            out.extend_from_slice(&sealed);
            *text = format!("{PREFIX}{}:{}", key_id.simple(), URL_SAFE_NO_PAD.encode(out));
        });
    }

    /// The key ids a stored body's encrypted fields name.
    pub(crate) fn sealed_with(event_type: &str, data: &mut serde_json::Value, ids: &mut Vec<Uuid>) {
        for_each_personal_field(event_type, data, &mut |text| {
            if let Some(id) = text.strip_prefix(PREFIX).and_then(|rest| rest.split_once(':')).and_then(|(id, _)| id.parse().ok())
                && !ids.contains(&id)
            {
                ids.push(id);
            }
        });
    }

    /// Decrypts the personal fields of a stored body with the keys given (a field whose key is missing, or that
    /// does not open, reads `[erased]`).
    pub(crate) fn open(event_type: &str, event_id: Uuid, keys: &HashMap<Uuid, Option<Arc<LessSafeKey>>>, data: &mut serde_json::Value) {
        for_each_personal_field(event_type, data, &mut |text| {
            let Some(rest) = text.strip_prefix(PREFIX) else { return };
            let opened = rest.split_once(':').and_then(|(id, sealed)| {
                let key = keys.get(&id.parse::<Uuid>().ok()?)?.as_ref()?;
                let mut bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
                if bytes.len() < NONCE_LEN {
                    return None;
                }
                let mut body = bytes.split_off(NONCE_LEN);
                let nonce = Nonce::try_assume_unique_for_key(&bytes).ok()?;
                let plain = key.open_in_place(nonce, Aad::from(event_id.as_bytes()), &mut body).ok()?;
                String::from_utf8(plain.to_vec()).ok()
            });
            *text = opened.unwrap_or_else(|| ERASED.to_owned());
        });
    }
}

/// Deletes a bucket entry so that its bytes are gone from the store: the message holding it is deleted by
/// sequence with JetStream's default, erasing delete (a key-value delete or purge only adds a marker or unlinks).
pub(crate) async fn erase_entry(kv: &kv::Store, key: &str) -> Result<(), StoreError> {
    let Some(entry) = kv.entry(key).await.map_err(unavailable)? else { return Ok(()) };
    if entry.operation != kv::Operation::Put {
        return Ok(());
    }
    match kv.stream.delete_message(entry.revision).await {
        Ok(_) => Ok(()),
        Err(e) => match refusal(&e) {
            // Already gone (a concurrent erase): fine.
            Refusal::Gone => Ok(()),
            // A bucket made by an older version denies message deletes (that cannot be changed on a stream): purge
            // the key instead, which leaves its bytes in the store until the block is compacted.
            Refusal::Denied => {
                tracing::warn!(bucket = %kv.name, "this bucket denies message deletes; purging the key instead of erasing it");
                kv.purge(key).await.map_err(unavailable)
            }
            Refusal::Other => Err(unavailable(e)),
        },
    }
}

/// Why the server refused a message delete.
pub(crate) enum Refusal {
    /// The message is not there (deleted already, or superseded).
    Gone,
    /// The stream was made with `deny_delete`.
    Denied,
    Other,
}

/// Reads a refused message delete. nats-server 2.12.8 answers a deleted sequence with 10043 "sequence N not found"
/// or 10057 "no message found", and a `deny_delete` stream with 10057 "message delete not permitted".
pub(crate) fn refusal(e: &DeleteMessageError) -> Refusal {
    let DeleteMessageErrorKind::JetStream(error) = e.kind() else { return Refusal::Other };
    let text = error.to_string();
    if error.error_code() == async_nats::jetstream::ErrorCode::SEQUENCE_NOT_FOUND || text.contains("no message found") {
        Refusal::Gone
    } else if text.contains("not permitted") {
        Refusal::Denied
    } else {
        Refusal::Other
    }
}
