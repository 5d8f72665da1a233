//! The durable inbox between the webhook and intake, and the worker that empties it.
//!
//! Zalo wants its 200 within about two seconds and a citizen often sends a text, a photo and a pin one after the
//! other. So the webhook only verifies an event and stores it raw (`inbox.<user>.<msg_id>`, create-only: the same
//! `msg_id` twice is stored once) before answering; the worker later turns each citizen's pending messages into
//! ONE inbound message once `group_window` has passed since the first of them (at once when the hotline has just
//! asked that citizen a question), and hands it to `Intake::receive`.
//!
//! Crash safety: nothing acknowledged is lost and nothing is stored twice.
//! - An inbox entry is deleted only after intake stored its group (and `seen.<user>.<msg_id>` was written).
//! - A group is decided once: it is written create-only as `batch.<user>.<first msg_id>` (members and the whole
//!   message, downloaded files included) BEFORE intake sees it, and a batch found after a restart is replayed as
//!   written. Its `message_id` is its first `msg_id`, so a replay after a crash finds the petition or follow-up
//!   already stored instead of making a second one with different content.
//! - A redelivered event is recognised by its inbox entry (still pending) or its `seen` marker (done). Seen
//!   markers are pruned once older than twice the replay window: the webhook refuses any older event anyway.
//! - One process at a time runs the worker (a lease in `worker`, renewed while it works); another takes over
//!   when the lease runs out. Building a group (downloads) can outlast the lease, so the lease is renewed after
//!   building and before the group is written: a worker that lost it writes nothing.
//! - A message goes into at most one group: a group is not written while another of the citizen's is on its way
//!   or when one of its members was filed meanwhile, and a written group with a member filed in another group
//!   (a worker stalled past its lease) is not handed on; its other members are grouped again.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use hotline_channel::blobs::BlobStore;
use hotline_channel::{ChannelState, InboundMessage, Intake, IntakeError, ThreadHint, find_references};
use hotline_domain::event::{Attachment, Location};
use hotline_runtime::Shutdown;
use hotline_store::StoreError;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::api::OaApi;
use crate::event::{self, MediaRef, UserMessage, ZaloEvent};
use crate::keys;
use crate::token::now_ms;

/// How often the worker looks at the inbox when nothing woke it.
const POLL: Duration = Duration::from_secs(1);
/// How long the worker's lease lasts without renewal.
const LEASE: Duration = Duration::from_secs(15);
/// Most messages in one petition; more start the next one.
const MAX_GROUP: usize = 20;
/// How often old markers are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How long the part counts of sent replies are kept (a reply is retried for minutes, not days).
const KEEP_SENT: Duration = Duration::from_secs(7 * 24 * 3600);

/// A stored webhook event: when we got it, and its body exactly as received.
#[derive(Serialize, Deserialize)]
struct Entry {
    received_ms: u64,
    body: String,
}

/// `seen.*`: a message handed to intake, in the group of `first`.
#[derive(Serialize, Deserialize)]
struct Seen {
    first: String,
    at_ms: u64,
}

/// `follower.*`: the latest follow or unfollow of a citizen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Follower {
    pub following: bool,
    /// The event's timestamp: an older event (a late redelivery) does not overwrite a newer one.
    pub at_ms: u64,
}

/// `contact.*`: what a citizen shared through the OA's form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub phone: Option<String>,
    pub name: Option<String>,
    pub at_ms: u64,
}

/// `asked.*`: the hotline asked the citizen a question at `at_ms`.
#[derive(Serialize, Deserialize)]
pub(crate) struct Asked {
    pub at_ms: u64,
    pub ticket: Uuid,
}

/// `worker`: who runs the worker until when.
#[derive(Serialize, Deserialize)]
struct Lease {
    by: Uuid,
    until_ms: u64,
}

/// `batch.*`: a group decided on: its members and the message made of them.
#[derive(Serialize, Deserialize)]
struct Batch {
    user: String,
    members: Vec<String>,
    message_id: String,
    text: String,
    #[serde(default)]
    attachments: Vec<Attachment>,
    #[serde(default)]
    location: Option<Location>,
    #[serde(default)]
    references: Vec<String>,
    /// What the citizen shared through the OA's form, if anything.
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// What the webhook did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    New,
    /// Already waiting in the inbox.
    Pending,
    /// Already handed to intake.
    Done,
}

/// The webhook's side: store an event, wake the worker.
#[derive(Clone)]
pub struct Inbox {
    pub state: ChannelState,
    pub wake: Arc<Notify>,
}

impl Inbox {
    /// Stores a citizen's message, once per `msg_id`. `Ok` only when it is durably in the inbox (or was already
    /// there, or was already handed to intake).
    pub async fn store(&self, message: &UserMessage, body: &[u8], now_ms: u64) -> Result<Stored, StoreError> {
        if self.state.get(&keys::seen(&message.user_id, &message.msg_id)).await?.is_some() {
            return Ok(Stored::Done);
        }
        let entry = Entry { received_ms: now_ms, body: String::from_utf8_lossy(body).into_owned() };
        let value = serde_json::to_vec(&entry).map_err(|e| StoreError::Rejected(e.to_string()))?;
        match self.state.put(&keys::inbox(&message.user_id, &message.msg_id), &value, None).await? {
            Ok(_) => {
                self.wake.notify_one();
                Ok(Stored::New)
            }
            Err(_) => Ok(Stored::Pending),
        }
    }

    /// Records the contact details a citizen shared, unless newer ones are recorded already.
    pub async fn record_contact(&self, user: &str, contact: &Contact) -> Result<(), StoreError> {
        let key = keys::contact(user);
        let value = serde_json::to_vec(contact).map_err(|e| StoreError::Rejected(e.to_string()))?;
        for _ in 0..10 {
            let expected = match self.state.get(&key).await? {
                Some((bytes, revision)) => {
                    if serde_json::from_slice::<Contact>(&bytes).is_ok_and(|c| c.at_ms > contact.at_ms) {
                        return Ok(());
                    }
                    Some(revision)
                }
                None => None,
            };
            if self.state.put(&key, &value, expected).await?.is_ok() {
                return Ok(());
            }
        }
        Err(StoreError::Rejected(format!("the contact entry of {user} keeps changing")))
    }

    /// Records a follow or an unfollow, unless a later one is recorded already.
    pub async fn record_follow(&self, user: &str, following: bool, at_ms: u64) -> Result<(), StoreError> {
        let key = keys::follower(user);
        for _ in 0..10 {
            let current = self.state.get(&key).await?;
            let expected = match &current {
                Some((bytes, revision)) => {
                    if let Ok(stored) = serde_json::from_slice::<Follower>(bytes)
                        && stored.at_ms > at_ms
                    {
                        return Ok(());
                    }
                    Some(*revision)
                }
                None => None,
            };
            let value = serde_json::to_vec(&Follower { following, at_ms }).map_err(|e| StoreError::Rejected(e.to_string()))?;
            if self.state.put(&key, &value, expected).await?.is_ok() {
                return Ok(());
            }
        }
        Err(StoreError::Rejected(format!("the follower entry of {user} keeps changing")))
    }
}

/// Reads a citizen's follow state.
pub async fn follower(state: &ChannelState, user: &str) -> Result<Option<Follower>, StoreError> {
    Ok(state.get(&keys::follower(user)).await?.and_then(|(bytes, _)| serde_json::from_slice(&bytes).ok()))
}

/// Turns the inbox into petitions and follow-ups.
pub struct Worker {
    pub state: ChannelState,
    pub intake: Intake,
    pub blobs: BlobStore,
    pub api: OaApi,
    pub group_window: Duration,
    pub follow_up_window: Duration,
    pub replay_window: Duration,
    /// How long `contact.*` entries and unfollows are kept after their event.
    pub contact_retention: Duration,
    pub wake: Arc<Notify>,
    /// This worker's name in the lease.
    pub me: Uuid,
}

impl Worker {
    /// Works until `shutdown`; then gives the lease up so another process can take over at once.
    pub async fn run(self, mut shutdown: Shutdown) {
        let mut last_prune = tokio::time::Instant::now();
        loop {
            if let Err(e) = self.round().await {
                tracing::warn!(error = %e, "Zalo inbox round failed; trying again");
            }
            if last_prune.elapsed() >= PRUNE_EVERY {
                last_prune = tokio::time::Instant::now();
                if let Err(e) = self.prune(now_ms()).await {
                    tracing::warn!(error = %e, "pruning old Zalo markers failed");
                }
            }
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        self.release().await;
    }

    /// One pass: finish batches left by a crash, then group and hand on what is due.
    pub async fn round(&self) -> Result<(), StoreError> {
        let batch_keys = self.state.keys("batch.").await?;
        let inbox_keys = self.state.keys("inbox.").await?;
        if batch_keys.is_empty() && inbox_keys.is_empty() {
            return Ok(());
        }
        if !self.hold_lease().await? {
            return Ok(());
        }
        // Citizens with a batch intake could not store yet: their later messages wait, so they stay in order.
        let mut busy: HashSet<String> = HashSet::new();
        for key in batch_keys {
            if !self.hold_lease().await? {
                return Ok(());
            }
            let Some((bytes, _)) = self.state.get(&key).await? else { continue };
            match serde_json::from_slice::<Batch>(&bytes) {
                Ok(batch) => {
                    if !self.finish(&key, &batch).await? {
                        busy.insert(keys::segment(&batch.user));
                    }
                }
                Err(e) => {
                    tracing::error!(key, error = %e, "unreadable Zalo batch dropped; its messages are grouped again");
                    self.state.delete(&key).await?;
                }
            }
        }
        let mut by_user: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for key in inbox_keys {
            if let Some(user) = key.split('.').nth(1)
                && !busy.contains(user)
            {
                by_user.entry(user.to_owned()).or_default().push(key);
            }
        }
        for (_, entries) in by_user {
            if !self.hold_lease().await? {
                return Ok(());
            }
            self.user_round(entries).await?;
        }
        Ok(())
    }

    /// A citizen's pending messages: hands them on as one group when it is due.
    async fn user_round(&self, entry_keys: Vec<String>) -> Result<(), StoreError> {
        let mut pending: Vec<(u64, UserMessage)> = Vec::new();
        for key in entry_keys {
            let Some((bytes, _)) = self.state.get(&key).await? else { continue };
            let parsed = serde_json::from_slice::<Entry>(&bytes).ok().and_then(|entry| {
                match event::parse(entry.body.as_bytes()) {
                    Ok(ZaloEvent::Message(m)) => Some((entry.received_ms, m)),
                    _ => None,
                }
            });
            let Some((received_ms, message)) = parsed else {
                // Verified and parsed before it was stored, so only a damaged entry gets here.
                tracing::error!(key, "unreadable Zalo inbox entry dropped");
                self.state.delete(&key).await?;
                continue;
            };
            if self.state.get(&keys::seen(&message.user_id, &message.msg_id)).await?.is_some() {
                self.state.delete(&key).await?;
                continue;
            }
            pending.push((received_ms, message));
        }
        let Some(first_received) = pending.iter().map(|(r, _)| *r).min() else { return Ok(()) };
        let user = pending[0].1.user_id.clone();
        pending.sort_by(|a, b| (a.1.timestamp_ms, &a.1.msg_id).cmp(&(b.1.timestamp_ms, &b.1.msg_id)));
        let now = now_ms();
        let window_ms = self.group_window.as_millis() as u64;
        let due = now >= first_received.saturating_add(window_ms)
            || pending.len() >= MAX_GROUP
            || self.asked_recently(&user, now).await?;
        if !due {
            return Ok(());
        }
        let members: Vec<UserMessage> = pending.into_iter().take(MAX_GROUP).map(|(_, m)| m).collect();
        let key = keys::batch(&user, &members[0].msg_id);
        let contact = match self.state.get(&keys::contact(&user)).await? {
            Some((bytes, _)) => serde_json::from_slice::<Contact>(&bytes).ok(),
            None => None,
        };
        let mut batch = self.build(&user, &members).await;
        if let Some(contact) = contact {
            batch.phone = contact.phone;
            batch.name = contact.name;
        }
        // Downloads can outlast the lease, and another process may have taken over and grouped these messages
        // (with others that arrived meanwhile) under another first message. Only a worker that still holds the
        // lease, renewed now, decides a group; and not when any member was filed since or another group of this
        // citizen is on its way (the next round looks again).
        if !self.hold_lease().await? {
            tracing::warn!(user = %hotline_channel::pseudonym(&user), messages = members.len(), "lost the Zalo worker lease while preparing a group; leaving it to the new holder");
            return Ok(());
        }
        for m in &members {
            if self.state.get(&keys::seen(&user, &m.msg_id)).await?.is_some() {
                return Ok(());
            }
        }
        for other in self.state.keys(&format!("batch.{}.", keys::segment(&user))).await? {
            if other != key && self.state.get(&other).await?.is_some() {
                return Ok(());
            }
        }
        let value = serde_json::to_vec(&batch).map_err(|e| StoreError::Rejected(e.to_string()))?;
        let batch = match self.state.put(&key, &value, None).await? {
            Ok(_) => batch,
            // Decided before (by a process that stopped since): that decision stands.
            Err(_) => match self.state.get(&key).await? {
                Some((bytes, _)) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Rejected(e.to_string()))?,
                None => return Ok(()),
            },
        };
        self.finish(&key, &batch).await?;
        Ok(())
    }

    /// Hands a batch to intake and, once stored, clears its messages. `Ok(false)` when intake could not store it
    /// now (it stays for the next round).
    async fn finish(&self, key: &str, batch: &Batch) -> Result<bool, StoreError> {
        // A message goes into at most one group. Members already filed in ANOTHER group (a worker that had lost
        // its lease wrote this batch) are dropped: the batch, which holds their text and files too, is not filed,
        // and its other members stay in the inbox to be grouped again. Markers of this very group mean it was
        // handed on before a crash: it is replayed as written.
        let mut taken = Vec::new();
        let mut handed_on = false;
        for member in &batch.members {
            if let Some((bytes, _)) = self.state.get(&keys::seen(&batch.user, member)).await? {
                match serde_json::from_slice::<Seen>(&bytes) {
                    Ok(seen) if seen.first == batch.message_id => handed_on = true,
                    _ => taken.push(member.as_str()),
                }
            }
        }
        if !taken.is_empty() && !handed_on {
            tracing::warn!(
                user = %hotline_channel::pseudonym(&batch.user),
                group = %batch.message_id,
                taken = taken.len(),
                "a Zalo group overlaps messages filed in another group: not filed; its other messages are grouped again"
            );
            for member in &taken {
                self.state.delete(&keys::inbox(&batch.user, member)).await?;
            }
            self.state.delete(key).await?;
            return Ok(true);
        }
        let result = if batch.text.trim().is_empty() && batch.attachments.is_empty() {
            // Stickers and the like only: nothing to file.
            tracing::info!(user = %hotline_channel::pseudonym(&batch.user), messages = batch.members.len(), "Zalo messages without content ignored");
            None
        } else {
            Some(self.intake.receive(self.inbound(batch)).await)
        };
        match result {
            None => {}
            Some(Ok(received)) => tracing::info!(
                user = %hotline_channel::pseudonym(&batch.user),
                messages = batch.members.len(),
                ticket = %received.ticket_id(),
                reference = %received.reference(),
                duplicate = received.duplicate(),
                attached = matches!(received, hotline_channel::Received::Attached { .. }),
                "Zalo messages received"
            ),
            Some(Err(e @ (IntakeError::Invalid { .. } | IntakeError::KeyReused))) => {
                // It will never be accepted; keeping it would block the citizen's next messages for good.
                tracing::error!(user = %hotline_channel::pseudonym(&batch.user), message_id = %batch.message_id, error = %e, "Zalo messages refused by intake and dropped");
            }
            Some(Err(e)) => {
                tracing::warn!(user = %hotline_channel::pseudonym(&batch.user), error = %e, "Zalo messages not stored yet; retrying");
                return Ok(false);
            }
        }
        let seen = serde_json::to_vec(&Seen { first: batch.message_id.clone(), at_ms: now_ms() })
            .map_err(|e| StoreError::Rejected(e.to_string()))?;
        for member in batch.members.iter().filter(|m| !taken.contains(&m.as_str())) {
            self.state.set(&keys::seen(&batch.user, member), &seen).await?;
        }
        for member in &batch.members {
            self.state.delete(&keys::inbox(&batch.user, member)).await?;
        }
        // The citizen wrote since the question: their next messages wait for the window again.
        self.state.delete(&keys::asked(&batch.user)).await?;
        self.state.delete(key).await?;
        Ok(true)
    }

    fn inbound(&self, batch: &Batch) -> InboundMessage {
        InboundMessage {
            channel: crate::CHANNEL,
            message_id: batch.message_id.clone(),
            from: batch.user.clone(),
            text: batch.text.clone(),
            attachments: batch.attachments.clone(),
            hints: batch.references.iter().cloned().map(ThreadHint::Reference).collect(),
            location: batch.location.clone(),
            phone: batch.phone.clone(),
            name: batch.name.clone(),
            follow_up_window: Some(self.follow_up_window),
            ..Default::default()
        }
    }

    /// The message a group makes: texts in order, files fetched into the blob store, the last location shared.
    async fn build(&self, user: &str, members: &[UserMessage]) -> Batch {
        let mut texts: Vec<String> = Vec::new();
        let mut attachments = Vec::new();
        let mut location = None;
        let mut unreadable_location = false;
        for m in members {
            let text = m.text.trim();
            if !text.is_empty() {
                texts.push(text.to_owned());
            }
            for media in &m.attachments {
                match media.kind.as_str() {
                    // Feelings, not facts: nothing an agency could use.
                    "sticker" | "gif" => {}
                    "link" => {
                        if !texts.iter().any(|t| t.contains(&media.url)) {
                            texts.push(media.url.clone());
                        }
                    }
                    _ if attachments.len() < Attachment::MAX => attachments.push(self.fetch(media).await),
                    _ => tracing::warn!(user = %hotline_channel::pseudonym(user), url = %media.url, "more than {} files in one petition; link dropped", Attachment::MAX),
                }
            }
            match m.location {
                Some(c) => location = Some(c),
                None if m.unreadable_location => unreadable_location = true,
                None => {}
            }
        }
        let mut text = texts.join("\n");
        let location = location.map(|c| {
            let area = self.intake.province().area_at(c.lat, c.lon).map(|a| a.code.clone());
            if text.is_empty() {
                text = format!("Vị trí gửi qua Zalo: {:.6}, {:.6}", c.lat, c.lon);
            }
            Location { area, lat: Some(c.lat), lon: Some(c.lon), address: None }
        });
        if location.is_none() && unreadable_location && text.is_empty() && attachments.is_empty() {
            text = "(Vị trí gửi qua Zalo không đọc được)".to_owned();
        }
        Batch {
            user: user.to_owned(),
            members: members.iter().map(|m| m.msg_id.clone()).collect(),
            message_id: members[0].msg_id.clone(),
            references: find_references(&text),
            text,
            attachments,
            location,
            phone: None,
            name: None,
        }
    }

    /// A file the citizen sent: downloaded into the blob store, or, when that fails (Zalo's link expired, the file
    /// is larger than the download cap), kept as Zalo's link so the operator still sees where it was.
    async fn fetch(&self, media: &MediaRef) -> Attachment {
        let name = media.name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| name_from_url(&media.url, &media.kind));
        match self.api.download(&media.url).await {
            Ok(bytes) if bytes.len() <= hotline_channel::blobs::MAX_BYTES => {
                let blobs = self.blobs.clone();
                let media_type = sniff(&bytes).map(str::to_owned);
                match tokio::task::spawn_blocking(move || blobs.put(&bytes)).await {
                    Ok(Ok(blob)) => {
                        return Attachment {
                            name,
                            url: None,
                            sha256: Some(blob.sha256),
                            media_type,
                            size: Some(blob.size),
                        };
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot keep a Zalo file; keeping its link"),
                    Err(e) => tracing::warn!(error = %e, "cannot keep a Zalo file; keeping its link"),
                }
            }
            Ok(bytes) => tracing::warn!(size = bytes.len(), "a Zalo file is too large to keep; keeping its link"),
            Err(e) => tracing::warn!(url = %media.url, error = %e, "cannot download a Zalo file; keeping its link"),
        }
        Attachment { name, url: Some(media.url.clone()), sha256: None, media_type: None, size: media.size }
    }

    async fn asked_recently(&self, user: &str, now: u64) -> Result<bool, StoreError> {
        let Some((bytes, _)) = self.state.get(&keys::asked(user)).await? else { return Ok(false) };
        let window = self.follow_up_window.as_millis() as u64;
        Ok(serde_json::from_slice::<Asked>(&bytes).is_ok_and(|a| now <= a.at_ms.saturating_add(window)))
    }

    /// Takes or renews the lease; false when another live process holds it.
    async fn hold_lease(&self) -> Result<bool, StoreError> {
        let now = now_ms();
        let lease = serde_json::to_vec(&Lease { by: self.me, until_ms: now + LEASE.as_millis() as u64 })
            .map_err(|e| StoreError::Rejected(e.to_string()))?;
        let expected = match self.state.get(keys::WORKER).await? {
            None => None,
            Some((bytes, revision)) => match serde_json::from_slice::<Lease>(&bytes) {
                Ok(l) if l.by != self.me && l.until_ms > now => return Ok(false),
                _ => Some(revision),
            },
        };
        Ok(self.state.put(keys::WORKER, &lease, expected).await?.is_ok())
    }

    async fn release(&self) {
        if let Ok(Some((bytes, revision))) = self.state.get(keys::WORKER).await
            && serde_json::from_slice::<Lease>(&bytes).is_ok_and(|l| l.by == self.me)
        {
            let free = serde_json::to_vec(&Lease { by: self.me, until_ms: 0 }).unwrap_or_default();
            let _ = self.state.put(keys::WORKER, &free, Some(revision)).await;
        }
    }

    /// Drops entries nobody needs any more: `seen` older than twice the replay window (an older redelivery is
    /// refused as stale before it gets here), follows older than that (only unfollows matter to answers),
    /// questions older than the follow-up window, part counts of replies older than a week, and contact details
    /// and unfollows not refreshed for the contact retention (personal data is not kept for good). Each removal is
    /// conditional on the revision read, so an entry rewritten meanwhile (a citizen sharing their number again)
    /// stays. Returns how many entries were removed.
    pub async fn prune(&self, now: u64) -> Result<usize, StoreError> {
        let replay = 2 * self.replay_window.as_millis() as u64;
        let follow_up = self.follow_up_window.as_millis() as u64;
        let retention = self.contact_retention.as_millis() as u64;
        let older = |at_ms: u64, kept: u64| now > at_ms.saturating_add(kept);
        let mut removed = 0;
        removed += self.prune_where::<Seen>("seen.", |s| older(s.at_ms, replay)).await?;
        removed += self
            .prune_where::<Follower>("follower.", |f| if f.following { older(f.at_ms, replay) } else { older(f.at_ms, retention) })
            .await?;
        removed += self.prune_where::<Contact>("contact.", |c| older(c.at_ms, retention)).await?;
        removed += self.prune_where::<Asked>("asked.", |a| older(a.at_ms, follow_up)).await?;
        removed += self.prune_where::<crate::Progress>("sent.", |p| older(p.at_ms, KEEP_SENT.as_millis() as u64)).await?;
        Ok(removed)
    }

    /// Removes the entries under `prefix` whose value `expired` says so (entries that do not read as `T` stay).
    async fn prune_where<T: serde::de::DeserializeOwned>(&self, prefix: &str, expired: impl Fn(&T) -> bool) -> Result<usize, StoreError> {
        let mut removed = 0;
        for key in self.state.keys(prefix).await? {
            // A key removed in the last minute may still be listed: get() then finds nothing.
            if let Some((bytes, revision)) = self.state.get(&key).await?
                && serde_json::from_slice::<T>(&bytes).is_ok_and(|v| expired(&v))
                && self.state.delete_if(&key, revision).await?.is_ok()
            {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// A file name from the link's last path segment, or `zalo-<kind>`.
fn name_from_url(url: &str, kind: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let last = path.rsplit('/').next().unwrap_or("");
    let clean: String = last.chars().filter(|c| !c.is_control() && *c != '\\').take(100).collect();
    if clean.is_empty() || !path.contains("://") || path.ends_with('/') || path.matches('/').count() < 3 {
        format!("zalo-{kind}")
    } else {
        clean
    }
}

/// The media type of common files by their first bytes (Zalo's download answers are not trusted for it).
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    Some(match bytes {
        [0xFF, 0xD8, 0xFF, ..] => "image/jpeg",
        [0x89, b'P', b'N', b'G', ..] => "image/png",
        [b'G', b'I', b'F', b'8', ..] => "image/gif",
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => "image/webp",
        [b'%', b'P', b'D', b'F', ..] => "application/pdf",
        [b'P', b'K', 3, 4, ..] => "application/zip",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_come_from_links() {
        assert_eq!(name_from_url("https://f21.zdn.vn/jpg/abc/photo_1.jpg?x=1", "image"), "photo_1.jpg");
        assert_eq!(name_from_url("https://f21.zdn.vn/", "image"), "zalo-image");
        assert_eq!(name_from_url("https://f21.zdn.vn", "file"), "zalo-file");
    }

    #[test]
    fn common_files_are_recognised_by_their_first_bytes() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(sniff(b"\x89PNG\r\n"), Some("image/png"));
        assert_eq!(sniff(b"%PDF-1.7"), Some("application/pdf"));
        assert_eq!(sniff(b"hello"), None);
    }
}
