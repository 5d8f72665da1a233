//! Erasing citizens' personal data (docs/privacy.md): `hotline citizen erase <citizen>` by request, and the
//! scheduler's retention per category. Each erased ticket gets a `PersonalDataErased` event; a citizen's key is
//! destroyed once no ticket it encrypts is left un-erased; what the system keeps about the citizen outside the
//! log (their contact's recent tickets, the Zalo channel's state about them, the files they sent) is erased with
//! it.
//!
//! The order makes a crash at any point safe to repeat: the events first (idempotent), then everything found
//! through the citizen's contact details (read from the log while the key still opens them), the key last.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use hotline_domain::event::{ERASED, ErasureReason};
use hotline_domain::{Actor, Command, Envelope, Reference, Status, TicketEvent};
use hotline_channel::blobs::BlobStore;
use hotline_projections::TimelineReader;
use hotline_store::{Cause, EventStore, ExecuteError, OnConflict, execute};
use time::OffsetDateTime;
use uuid::Uuid;

/// What one erasure did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Erased {
    /// Tickets that got their `PersonalDataErased` now.
    pub tickets: usize,
    /// Tickets that were erased already.
    pub already: usize,
    /// Keys destroyed.
    pub keys: usize,
    /// Files the citizen sent, removed from the blob store.
    pub files: usize,
    /// Entries outside the log about the citizen's contact details, erased.
    pub entries: usize,
}

/// Erases personal data, with the log, the projection (to find a key's tickets) and the blob store.
#[derive(Clone)]
pub struct Erasure {
    store: Arc<dyn EventStore>,
    reader: TimelineReader,
    blobs: BlobStore,
    /// The live projection path, when known: old generations beside it are removed.
    projection: Option<PathBuf>,
}

/// What the log says about the citizen of one key's tickets, read while the key still opens it.
#[derive(Default)]
struct Found {
    /// `phone:…`, `email:…`, `zalo:…`: the forms the key store and the inbound bucket use.
    identities: BTreeSet<String>,
    zalo_ids: BTreeSet<String>,
    files: BTreeSet<String>,
}

impl Found {
    fn merge(&mut self, other: Found) {
        self.identities.extend(other.identities);
        self.zalo_ids.extend(other.zalo_ids);
        self.files.extend(other.files);
    }

    fn read(&mut self, history: &[Envelope]) {
        for e in history {
            match &e.event {
                TicketEvent::PetitionReceived(p) => {
                    self.files.extend(p.attachments.iter().filter_map(|a| a.sha256.clone()));
                    if let Some(c) = &p.citizen {
                        let real = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty() && *v != ERASED).map(str::to_owned);
                        if let Some(phone) = real(&c.phone).and_then(|p| hotline_channel::normalise_msisdn(&p)) {
                            self.identities.insert(format!("phone:{phone}"));
                        }
                        if let Some(email) = real(&c.email) {
                            self.identities.insert(format!("email:{}", email.to_lowercase()));
                        }
                        if let Some(zalo) = real(&c.zalo_id) {
                            self.identities.insert(format!("zalo:{zalo}"));
                            self.zalo_ids.insert(zalo);
                        }
                    }
                    // A petition without contact details has a key of its own, kept under the ticket.
                    self.identities.insert(format!("ticket:{}", e.ticket_id));
                }
                TicketEvent::CitizenReplied(r) => self.files.extend(r.attachments.iter().filter_map(|a| a.sha256.clone())),
                TicketEvent::CitizenWrote(w) => self.files.extend(w.attachments.iter().filter_map(|a| a.sha256.clone())),
                _ => {}
            }
        }
    }
}

impl Erasure {
    pub fn new(store: Arc<dyn EventStore>, reader: TimelineReader, blobs: PathBuf) -> Erasure {
        Erasure { store, reader, blobs: BlobStore::new(blobs), projection: None }
    }

    /// Also removes the projection generations an earlier replay left beside `live`.
    pub fn with_projection(mut self, live: PathBuf) -> Erasure {
        self.projection = Some(live);
        self
    }

    /// Erases every ticket the key `key` encrypts, and destroys it (a citizen's request: whatever their tickets'
    /// state). `identity`: the identity the citizen was named by, forgotten with the key. The projection must have
    /// caught up with the log (the caller waits for it), so no ticket is missed.
    pub async fn erase_key(&self, key: Uuid, identity: Option<String>, reason: ErasureReason) -> anyhow::Result<Erased> {
        self.remove_stale_generations();
        let tickets: Vec<Uuid> = self.reader.tickets_of_key(key).await?.into_iter().map(|t| t.id).collect();
        let mut run = Run::default();
        self.erase(&tickets, reason, None, &mut run).await?;
        let mut found = run.found.remove(&key).unwrap_or_default();
        found.identities.extend(identity);
        self.destroy(key, &found, &mut run.done).await?;
        Ok(run.done)
    }

    /// Projection files an earlier `hotline replay` left behind hold data as it was then: they go.
    fn remove_stale_generations(&self) {
        if let Some(live) = &self.projection {
            let removed = hotline_projections::replay::remove_stale_generations(live);
            if removed > 0 {
                tracing::info!(removed, "old projection generations removed before erasing");
            }
        }
    }

    /// Appends `PersonalDataErased` to each ticket and removes the files it holds; notes what the log says about
    /// each ticket's citizen for [`Erasure::settle`].
    async fn erase(&self, tickets: &[Uuid], reason: ErasureReason, cutoff: Option<OffsetDateTime>, run: &mut Run) -> anyhow::Result<()> {
        let actor = Actor::system(match reason {
            ErasureReason::Request => "erasure",
            ErasureReason::Retention => "retention",
        });
        for &ticket in tickets {
            let mut seen: Option<(Option<Uuid>, Found)> = None;
            let executed = execute(&*self.store, ticket, &actor, OffsetDateTime::now_utc(), Cause::None, OnConflict::Decide, |state, history| {
                if let Some(cutoff) = cutoff {
                    // Decided on the log, not the projection (which may lag): still ended, and nothing since.
                    let ended = matches!(state.status, Status::Closed | Status::Rejected | Status::Duplicate);
                    if !ended || history.last().is_none_or(|e| e.occurred_at >= cutoff) {
                        return Err(NotDue);
                    }
                }
                let key = match history.first().map(|e| &e.event) {
                    Some(TicketEvent::PetitionReceived(p)) => p.citizen_key,
                    _ => None,
                };
                let mut found = Found::default();
                found.read(history);
                seen = Some((key, found));
                Ok(Command::ErasePersonalData { reason })
            })
            .await;
            match executed {
                Ok(e) if e.events.is_empty() => run.done.already += 1,
                Ok(_) => run.done.tickets += 1,
                Err(ExecuteError::Command(NotDue)) => continue,
                Err(ExecuteError::Domain(hotline_domain::DomainError::NotFound)) => bail!("ticket {ticket} is not in the log"),
                Err(e) => return Err(anyhow!("erasing ticket {ticket}: {e}")),
            }
            run.erased.insert(ticket);
            let Some((key, found)) = seen else { continue };
            // The ticket's own files go with it, whatever becomes of the key.
            for sha in &found.files {
                if self.blobs.remove(sha).with_context(|| format!("removing the file {sha}"))? {
                    run.done.files += 1;
                }
            }
            if let Some(key) = key {
                run.found.entry(key).or_default().merge(found);
            }
        }
        Ok(())
    }

    /// Destroys each key met in the run whose every ticket is erased (by the projection, or in this run, which the
    /// projection may not show yet). Asked only of a projection that has caught up with the log, so a ticket
    /// filed a moment ago under the key is seen.
    async fn settle(&self, run: &mut Run) -> anyhow::Result<()> {
        if run.found.is_empty() {
            return Ok(());
        }
        if let Err(e) = caught_up(&*self.store, &self.reader, Duration::from_secs(30)).await {
            tracing::warn!(error = %e, "keys of erased tickets are kept until the projection catches up");
            return Ok(());
        }
        let found = std::mem::take(&mut run.found);
        for (key, found) in &found {
            let all = self.reader.tickets_of_key(*key).await?;
            if all.iter().all(|t| t.erased || run.erased.contains(&t.id)) && self.store.key_exists(*key).await? {
                self.destroy(*key, found, &mut run.done).await?;
            }
        }
        Ok(())
    }

    /// Erases what is kept outside the log about the citizen of `key`, then the key itself. Only identities that
    /// lead to this key are theirs: a petition may also name an address the citizen uses on another channel, whose
    /// key (and tickets) is another matter.
    async fn destroy(&self, key: Uuid, found: &Found, done: &mut Erased) -> anyhow::Result<()> {
        let mut identities = Vec::new();
        for identity in &found.identities {
            if self.store.identity_key(identity).await? == Some(key) {
                identities.push(identity.clone());
            }
        }
        let owned = |identity: String| identities.contains(&identity);
        for identity in &identities {
            self.store.erase_contact(identity).await?;
            done.entries += 1;
        }
        for zalo in found.zalo_ids.iter().filter(|z| owned(format!("zalo:{z}"))) {
            for key in hotline_channel_zalo::keys::citizen_state(zalo) {
                let full = format!("{}.{key}", hotline_channel_zalo::CHANNEL);
                let entries = if full.ends_with('.') { self.store.state_keys(&full).await? } else { vec![full] };
                for entry in entries {
                    self.store.state_erase(&entry).await?;
                    done.entries += 1;
                }
            }
        }
        // The identities are forgotten before the key goes: from then on no new petition is sealed with it.
        self.store.destroy_key(key, &identities).await?;
        done.keys += 1;
        Ok(())
    }
}

/// A retention ticket that is no longer due (it changed, or reopened, since the projection said so).
#[derive(Debug)]
struct NotDue;

impl std::fmt::Display for NotDue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not due")
    }
}

/// What one erasure run gathered.
#[derive(Default)]
struct Run {
    done: Erased,
    /// Tickets erased in this run (now or before).
    erased: BTreeSet<Uuid>,
    /// What the log says about the citizen of each key met.
    found: BTreeMap<Uuid, Found>,
}

/// `hotline citizen erase <citizen>`: erases the personal data of every ticket of the citizen named by one of
/// their tickets or by a contact detail, and destroys their key.
pub async fn erase_citizen(settings: crate::settings::Settings, citizen: &str) -> anyhow::Result<Erased> {
    let store = Arc::new(crate::system::running_store(&settings).await?);
    let path = settings.data_dir.join(crate::system::PROJECTIONS_FILE);
    if !path.exists() {
        bail!("no projection at {} (run this where `hotline up` or `hotline serve projections` keeps its data dir)", path.display());
    }
    let reader = TimelineReader::open(&path)?;
    let (key, identity) = key_of(&*store, citizen).await?;
    if !store.key_exists(key).await? {
        bail!("the citizen's key is already destroyed: nothing left to erase (run it again by a ticket only to finish an interrupted erasure of its projection rows)");
    }
    caught_up(&*store, &reader, Duration::from_secs(60)).await?;
    let erasure = Erasure::new(store, reader, settings.data_dir.join(crate::system::BLOBS_DIR)).with_projection(path);
    erasure.erase_key(key, identity, ErasureReason::Request).await
}

/// What `hotline citizen erase` was given: a ticket (its citizen), or a contact; with the identity, when a contact.
pub async fn key_of(store: &dyn EventStore, citizen: &str) -> anyhow::Result<(Uuid, Option<String>)> {
    let citizen = citizen.trim();
    let ticket = match citizen.parse::<Uuid>() {
        Ok(id) => Some(id),
        Err(_) => match Reference::parse(citizen) {
            Ok(reference) => Some(store.resolve_reference(&reference).await?.ok_or_else(|| anyhow!("no ticket {citizen}"))?),
            Err(_) => None,
        },
    };
    if let Some(ticket) = ticket {
        let history = store.load(ticket).await?;
        return match history.events.first().map(|e| &e.event) {
            Some(TicketEvent::PetitionReceived(p)) => {
                p.citizen_key.map(|k| (k, None)).ok_or_else(|| anyhow!("ticket {citizen} has no citizen key (filed before keys existed)"))
            }
            _ => Err(anyhow!("no ticket {citizen}")),
        };
    }
    let identity = if let Some(zalo) = citizen.strip_prefix("zalo:") {
        format!("zalo:{}", zalo.trim())
    } else if citizen.contains('@') {
        format!("email:{}", citizen.to_lowercase())
    } else if let Some(phone) = hotline_channel::normalise_msisdn(citizen) {
        format!("phone:{phone}")
    } else {
        bail!("`{citizen}` is not a ticket reference or id, a phone number, an e-mail address or zalo:<id>");
    };
    let key = store.identity_key(&identity).await?.ok_or_else(|| anyhow!("no citizen with {identity} has a key: nothing to erase"))?;
    Ok((key, Some(identity)))
}

/// Waits until the projection has applied the log as far as it reached when asked, so a key's tickets are all
/// in it.
pub async fn caught_up(store: &dyn EventStore, reader: &TimelineReader, limit: Duration) -> anyhow::Result<()> {
    let target = store.last_position().await?;
    let started = std::time::Instant::now();
    while reader.position().await? < target {
        if started.elapsed() > limit {
            bail!("the projection is behind the log (is `hotline up` or `hotline serve projections` running on this data dir?)");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Retention: every `interval`, erases the personal data of ended tickets older than their category's
/// retention (`retention.days` per category, `retention.default_days` for the rest; 0 keeps them).
pub async fn retention(
    erasure: Erasure,
    default_days: u32,
    categories: Vec<(String, u32)>,
    interval: Duration,
    mut shutdown: hotline_runtime::Shutdown,
) {
    if default_days == 0 && categories.iter().all(|(_, d)| *d == 0) {
        return;
    }
    tracing::info!(default_days, categories = categories.len(), "retention of personal data started");
    loop {
        match retention_tick(&erasure, default_days, &categories, OffsetDateTime::now_utc()).await {
            Ok(e) if e.tickets > 0 => tracing::info!(tickets = e.tickets, keys = e.keys, files = e.files, "retention erased personal data"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention failed; trying again later"),
        }
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// One look: up to a few hundred tickets per rule, in one run (so a citizen's tickets erased under two rules
/// still let their key go).
pub async fn retention_tick(erasure: &Erasure, default_days: u32, categories: &[(String, u32)], now: OffsetDateTime) -> anyhow::Result<Erased> {
    let own: Vec<String> = categories.iter().map(|(c, _)| c.clone()).collect();
    let mut rules: Vec<(Option<String>, u32)> = categories.iter().map(|(c, d)| (Some(c.clone()), *d)).collect();
    rules.push((None, default_days));
    erasure.remove_stale_generations();
    let mut run = Run::default();
    for (category, days) in rules {
        if days == 0 {
            continue;
        }
        let before = now - time::Duration::days(i64::from(days));
        let due = erasure.reader.retention_due(category.clone(), own.clone(), before, 200).await?;
        erasure.erase(&due, ErasureReason::Retention, Some(before), &mut run).await?;
    }
    erasure.settle(&mut run).await?;
    Ok(run.done)
}
