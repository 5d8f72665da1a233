//! Building and running the system from settings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use hotline_api::{AdminToken, ApiState, Auth};
use hotline_channel::blobs::BlobStore;
use hotline_channel::{AccessCodes, ChannelAdapter, ChannelContext, Intake};
use hotline_channel_app::AppChannel;
use hotline_channel_email::EmailChannel;
use hotline_channel_sms::SmsChannel;
use hotline_channel_zalo::ZaloChannel;
use hotline_channel_phone::PhoneChannel;
use hotline_domain::province::Province;
use hotline_projections::TimelineReader;
use hotline_runtime::{DRAIN_TIMEOUT, Shutdown};
use hotline_store::server::{MIN_VERSION, NatsServer, ServerError, ServerOptions, find_binary, version_of};
use hotline_store::{EventStore, FeedLog, JetStreamConfig, JetStreamFeed, JetStreamStore, StoreError, TokenRegistry};
use tokio::task::JoinSet;

use crate::settings::Settings;

/// What `hotline serve` can run alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Component {
    /// The HTTP API (tickets, timelines, explain); reads the projections file in the data dir.
    Api,
    /// The app channel's HTTP intake.
    App,
    /// The router (durable consumer).
    Router,
    /// The timeline projection writer.
    Projections,
    /// The deadline scheduler; reads the projections file in the data dir.
    Scheduler,
    /// The SMS channel: gateway webhooks on the HTTP port, the SMPP session when configured, answers by SMS.
    Sms,
    /// The e-mail channel: the SMTP listener (`--smtp`), answers through the SMTP relay.
    Email,
    /// The phone channel: the call-takers' intake and the PBX webhooks on the HTTP port, the Asterisk AMI bridge
    /// when configured.
    Phone,
    /// The Zalo OA channel: its webhook on the HTTP port, the worker that files grouped messages, answers by the
    /// OA's message API.
    Zalo,
    /// The feed projector: publishes the log's integration events to the feed other systems subscribe to
    /// (stream HOTLINE_FEED, docs/feed.md), each exactly once.
    Feed,
}

/// File names under the data dir.
pub(crate) const PROJECTIONS_FILE: &str = "projections.sqlite";
const ADMIN_TOKEN_FILE: &str = "admin-token";
const ACCESS_SECRET_FILE: &str = "app-access-secret";
pub(crate) const BLOBS_DIR: &str = "blobs";
const NATS_DIR: &str = "nats";
const NATS_URL_FILE: &str = "nats.url";
const SMTP_ADDR_FILE: &str = "smtp.addr";

/// Loads and checks the province configuration named in the settings (or the bundled one).
pub fn load_province(settings: &Settings) -> anyhow::Result<Province> {
    match &settings.province {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
            Ok(Province::parse(&text, &path.display().to_string())?)
        }
        None => Ok(Province::parse(Province::BUNDLED, "config/province.toml (bundled)")?),
    }
}

/// `hotline check-config`: loads what `hotline up` (or, with `component`, `hotline serve <component>`) reads at
/// start and reports. Each channel section is read as its adapter reads it (unknown keys, wrong types, settings
/// that need each other), without binding or connecting anything; a component is not held up by a section it
/// never reads.
pub fn check_config(settings: &Settings, component: Option<Component>) -> anyhow::Result<String> {
    let province = load_province(settings)?;
    let reads = |c: Component| component.is_none_or(|only| only == c);
    if reads(Component::Scheduler) {
        retention_rules(settings, &province)?;
    }
    if reads(Component::Api) || reads(Component::App) {
        app_section(settings)?;
    }
    if reads(Component::Api) {
        hotline_open311::Open311Config::from_app_section(&channel_config(settings, hotline_channel_app::CHANNEL))
            .map_err(|e| anyhow!("settings {e}"))?;
    }
    // The channel sections, each parsed by its adapter's own reader (what `from_config` does at start).
    type Reader = fn(&serde_json::Value) -> Result<(), String>;
    let channels: [(Component, &str, Reader); 4] = [
        (Component::Sms, hotline_channel_sms::CHANNEL, |v| hotline_channel_sms::SmsConfig::from_value(v).map(drop).map_err(|e| e.to_string())),
        (Component::Email, hotline_channel_email::CHANNEL, |v| hotline_channel_email::EmailConfig::from_value(v).map(drop).map_err(|e| e.to_string())),
        (Component::Zalo, hotline_channel_zalo::CHANNEL, |v| hotline_channel_zalo::ZaloConfig::from_value(v).map(drop).map_err(|e| e.to_string())),
        (Component::Phone, hotline_channel_phone::CHANNEL, |v| hotline_channel_phone::PhoneConfig::from_value(v).map(drop).map_err(|e| e.to_string())),
    ];
    for (component, channel, read) in channels {
        if reads(component) {
            read(&channel_config(settings, channel)).map_err(|e| anyhow!("settings {e}"))?;
        }
    }
    Ok(format!(
        "configuration ok: {} categories, {} agencies, {} areas",
        province.categories().len(),
        province.agencies().len(),
        province.areas().len()
    ))
}

/// `hotline up`: every component in one process, on one HTTP port, with its own nats-server unless `nats_url`
/// is set. Returns after a clean shutdown (SIGINT/SIGTERM).
pub async fn up(settings: Settings) -> anyhow::Result<()> {
    let province = Arc::new(load_province(&settings)?);
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("cannot create the data dir {}", settings.data_dir.display()))?;
    let admin_token = admin_token(&settings)?;
    let codes = access_codes(&settings)?;

    let shutdown = stop_on_signal();
    let mut tasks = JoinSet::new();

    let (url, embedded) = match &settings.nats_url {
        Some(url) => (url.clone(), None),
        None => {
            let binary = match &settings.nats_server {
                Some(path) => checked_binary(path)?,
                None => find_binary()?,
            };
            let server = NatsServer::start(ServerOptions {
                binary,
                dir: settings.data_dir.join(NATS_DIR),
                port: settings.nats.port,
                kill_with_parent: true,
                fsync_before_ack: true,
            })
            .await?;
            let url = server.url();
            // It carries the internal user's password: readable by this user only (a file left from before is
            // replaced, since a mode is set only when a file is created).
            let url_file = settings.data_dir.join(NATS_URL_FILE);
            let _ = std::fs::remove_file(&url_file);
            write_private(&url_file, &format!("{url}\n"))?;
            if shutdown.is_raised() {
                println!("hotline: stopped during start-up");
                return Ok(());
            }
            tracing::info!(url = %redact(&url), store = %settings.data_dir.join(NATS_DIR).display(), "embedded nats-server started");
            (url, Some(server))
        }
    };
    // The feed lives in its own account on our server (hotline-store access.rs): its writer has its own user.
    let feed_url = embedded.as_ref().map(NatsServer::feed_url).unwrap_or_else(|| settings.nats.feed_url.clone().unwrap_or_else(|| url.clone()));
    let supervisor = embedded.map(|server| tokio::spawn(supervise_nats(server, shutdown.clone())));

    let Some(store) = connect(&settings, &url, shutdown.clone()).await? else {
        println!("hotline: stopped during start-up");
        return Ok(());
    };
    let store = Arc::new(store);
    let auth = Auth { bootstrap: admin_token, registry: store.clone() };
    let store: Arc<dyn EventStore> = store;
    let projections_path = settings.data_dir.join(PROJECTIONS_FILE);
    let reader = TimelineReader::open(&projections_path)?;

    tasks.spawn(run_projections(store.clone(), projections_path, shutdown.clone()));
    tasks.spawn(hotline_router::Router::new(store.clone(), province.clone()).run(shutdown.clone()));
    tasks.spawn(scheduler(&settings, store.clone(), reader.clone()).run(Duration::from_secs(settings.scheduler.interval_secs), shutdown.clone()));
    tasks.spawn(retention(&settings, &province, store.clone(), reader.clone(), shutdown.clone())?);
    tasks.spawn(hotline_scheduler::duplicates::run(store.clone(), shutdown.clone()));
    // In the background: intake and the API never wait for the feed's NATS.
    warn_feed_login(&settings);
    tasks.spawn(run_feed(settings.clone(), feed_url, store.clone(), province.code.clone(), shutdown.clone()));

    let intake = intake(&settings, store.clone(), province.clone());
    let channels: Vec<Arc<dyn ChannelAdapter>> = vec![
        Arc::new(AppChannel::new(codes.clone())), Arc::new(sms_channel(&settings)?),
        Arc::new(zalo_channel(&settings)?),
        Arc::new(phone_channel(&settings, auth.clone())?),
    ];
    let mut channel_routes = Vec::new();
    for channel in &channels {
        let ctx = channel_context(&settings, channel.name(), intake.clone(), shutdown.clone());
        channel_routes.extend(channel.http_routes(&ctx));
        spawn_channel(&mut tasks, channel.clone(), ctx, store.clone());
    }
    let email = Arc::new(email_channel(&settings)?);
    let ctx = channel_context(&settings, hotline_channel_email::CHANNEL, intake.clone(), shutdown.clone());
    spawn_email(&mut tasks, email, ctx, store.clone(), &settings.data_dir).await?;
    channel_routes.push(open311(&settings, intake.clone(), reader.clone(), province.clone(), codes.clone())?);
    let app = hotline_api::router(ApiState { province, reader, store, auth, codes, blobs: BlobStore::new(settings.data_dir.join(BLOBS_DIR)) }, channel_routes);
    let listener = bind(&settings.http_addr).await?;
    let addr = listener.local_addr()?;
    std::fs::write(settings.data_dir.join("http.addr"), format!("{addr}\n"))?;
    println!("hotline: listening on http://{addr}");
    println!("hotline: data in {}", settings.data_dir.display());
    if settings.admin_token.is_none() {
        println!("hotline: admin token in {}", settings.data_dir.join(ADMIN_TOKEN_FILE).display());
    }
    tasks.spawn(serve_http(listener, app, shutdown.clone()));

    drain(shutdown, tasks).await;
    if let Some(supervisor) = supervisor
        && let Ok(mut server) = supervisor.await {
            server.stop(Duration::from_secs(10)).await;
        }
    println!("hotline: stopped");
    Ok(())
}

/// `hotline serve <component>`: one component against `NATS_URL`, for multi-process deployments.
pub async fn serve(settings: Settings, component: Component) -> anyhow::Result<()> {
    let url = settings
        .nats_url
        .clone()
        .ok_or_else(|| anyhow!("`hotline serve` runs against a NATS server you run: set NATS_URL (or use `hotline up`)"))?;
    let province = Arc::new(load_province(&settings)?);
    std::fs::create_dir_all(&settings.data_dir)?;
    let shutdown = stop_on_signal();
    let Some(store) = connect(&settings, &url, shutdown.clone()).await? else {
        println!("hotline: stopped during start-up");
        return Ok(());
    };
    let store = Arc::new(store);
    let registry: Arc<dyn TokenRegistry> = store.clone();
    let store: Arc<dyn EventStore> = store;
    let projections_path = settings.data_dir.join(PROJECTIONS_FILE);
    let mut tasks = JoinSet::new();
    match component {
        Component::Router => {
            tasks.spawn(hotline_router::Router::new(store, province).run(shutdown.clone()));
        }
        Component::Projections => {
            tasks.spawn(run_projections(store, projections_path, shutdown.clone()));
        }
        Component::Feed => {
            let feed_url = settings.nats.feed_url.clone().unwrap_or_else(|| url.clone());
            warn_feed_login(&settings);
            let Some(feed) = connect_feed(&settings, &feed_url, shutdown.clone()).await? else {
                println!("hotline: stopped during start-up");
                return Ok(());
            };
            println!("hotline: publishing the feed");
            tasks.spawn(hotline_feed::Projector::new(store, feed, &province.code).run(shutdown.clone()));
        }
        Component::Scheduler => {
            let reader = TimelineReader::open(&projections_path)?;
            tasks.spawn(hotline_scheduler::duplicates::run(store.clone(), shutdown.clone()));
            tasks.spawn(retention(&settings, &province, store.clone(), reader.clone(), shutdown.clone())?);
            tasks.spawn(scheduler(&settings, store, reader).run(Duration::from_secs(settings.scheduler.interval_secs), shutdown.clone()));
        }
        Component::Api => {
            let auth = Auth { bootstrap: admin_token(&settings)?, registry };
            let reader = TimelineReader::open(&projections_path)?;
            let codes = access_codes(&settings)?;
            let open311 = open311(&settings, intake(&settings, store.clone(), province.clone()), reader.clone(), province.clone(), codes.clone())?;
            let app = hotline_api::router(ApiState { province, reader, store, auth, codes, blobs: BlobStore::new(settings.data_dir.join(BLOBS_DIR)) }, vec![open311]);
            let listener = bind(&settings.http_addr).await?;
            println!("hotline: api listening on http://{}", listener.local_addr()?);
            tasks.spawn(serve_http(listener, app, shutdown.clone()));
        }
        Component::App | Component::Sms | Component::Phone | Component::Zalo => {
            // A channel with HTTP endpoints: its routes and /healthz on the HTTP port, and its outbound replies.
            let (channel, serves): (Arc<dyn ChannelAdapter>, &str) = match component {
                Component::App => (Arc::new(AppChannel::new(access_codes(&settings)?)), "app"),
                Component::Sms => (Arc::new(sms_channel(&settings)?), "sms webhooks"),
                Component::Phone => {
                    let auth = Auth { bootstrap: admin_token(&settings)?, registry };
                    (Arc::new(phone_channel(&settings, auth)?), "phone intake")
                }
                _ => (Arc::new(zalo_channel(&settings)?), "zalo webhook"),
            };
            let ctx = channel_context(&settings, channel.name(), intake(&settings, store.clone(), province), shutdown.clone());
            let app = hotline_api::channel_router(store.clone(), channel.http_routes(&ctx).into_iter().collect());
            spawn_channel(&mut tasks, channel, ctx, store);
            let listener = bind(&settings.http_addr).await?;
            println!("hotline: {serves} listening on http://{}", listener.local_addr()?);
            tasks.spawn(serve_http(listener, app, shutdown.clone()));
        }
        Component::Email => {
            let email = Arc::new(email_channel(&settings)?);
            let ctx = channel_context(&settings, hotline_channel_email::CHANNEL, intake(&settings, store.clone(), province), shutdown.clone());
            spawn_email(&mut tasks, email, ctx, store, &settings.data_dir).await?;
        }
    }
    drain(shutdown, tasks).await;
    Ok(())
}

/// The Open311 GeoReport v2 routes (`[app] open311_*`). They read the projection, so they are served where the API
/// is (`up`, `serve api`), and file petitions of the app channel.
fn open311(settings: &Settings, intake: Intake, reader: TimelineReader, province: Arc<Province>, codes: AccessCodes) -> anyhow::Result<axum::Router> {
    let config = hotline_open311::Open311Config::from_app_section(&channel_config(settings, hotline_channel_app::CHANNEL))
        .map_err(|e| anyhow!("settings {e}"))?;
    Ok(hotline_open311::Open311::new(config, intake, reader, province, codes).routes())
}

fn sms_channel(settings: &Settings) -> anyhow::Result<SmsChannel> {
    SmsChannel::from_config(&channel_config(settings, hotline_channel_sms::CHANNEL)).map_err(|e| anyhow!("settings [sms]: {e}"))
}

/// The phone channel, its call-takers' intake checking tokens like the API does.
fn phone_channel(settings: &Settings, auth: Auth) -> anyhow::Result<PhoneChannel> {
    let auth = Arc::new(auth);
    let authorize: hotline_channel_phone::Authorize = Arc::new(move |headers| {
        let auth = auth.clone();
        Box::pin(async move { auth.principal(&headers).await })
    });
    Ok(PhoneChannel::from_config(&channel_config(settings, hotline_channel_phone::CHANNEL))
        .map_err(|e| anyhow!("settings [phone]: {e}"))?
        .with_authorizer(authorize))
}

fn zalo_channel(settings: &Settings) -> anyhow::Result<ZaloChannel> {
    ZaloChannel::from_config(&channel_config(settings, hotline_channel_zalo::CHANNEL)).map_err(|e| anyhow!("settings [zalo]: {e}"))
}

fn email_channel(settings: &Settings) -> anyhow::Result<EmailChannel> {
    EmailChannel::from_config(&channel_config(settings, hotline_channel_email::CHANNEL)).map_err(|e| anyhow!("settings [email]: {e}"))
}

/// Runs the e-mail channel: binds its SMTP listener first, so a taken port stops the start with a clear error
/// instead of a channel that silently never listens; the bound address goes to `<data dir>/smtp.addr`.
async fn spawn_email(
    tasks: &mut JoinSet<()>,
    email: Arc<EmailChannel>,
    ctx: ChannelContext,
    store: Arc<dyn EventStore>,
    data_dir: &Path,
) -> anyhow::Result<()> {
    let listen = email.config().listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen for SMTP on {listen} (email.listen, --smtp, HOTLINE_SMTP_ADDR)"))?;
    let addr = listener.local_addr()?;
    std::fs::write(data_dir.join(SMTP_ADDR_FILE), format!("{addr}\n"))?;
    println!("hotline: smtp listening on {addr}");
    tasks.spawn(hotline_channel::outbound::run(email.clone(), store, ctx.shutdown.clone()));
    tasks.spawn(async move { email.serve(listener, ctx).await });
    Ok(())
}

/// Runs a channel: its own long-running work, and its outbound consumer (answers and questions to citizens).
fn spawn_channel(tasks: &mut JoinSet<()>, channel: Arc<dyn ChannelAdapter>, ctx: ChannelContext, store: Arc<dyn EventStore>) {
    tasks.spawn(hotline_channel::outbound::run(channel.clone(), store, ctx.shutdown.clone()));
    tasks.spawn(async move {
        if let Err(e) = channel.run(ctx).await {
            tracing::error!(error = %e, "channel stopped");
        }
    });
}

/// The retention rules of the settings, each category checked against the province's.
pub(crate) fn retention_rules(settings: &Settings, province: &Province) -> anyhow::Result<Vec<(String, u32)>> {
    settings
        .retention
        .categories
        .iter()
        .map(|(category, days)| {
            if province.categories().iter().any(|c| c.code == *category) {
                Ok((category.clone(), *days))
            } else {
                Err(anyhow::anyhow!("retention.categories.{category}: no such category in the province configuration"))
            }
        })
        .collect()
}

/// The retention task of the scheduler component (docs/privacy.md).
fn retention(
    settings: &Settings,
    province: &Province,
    store: Arc<dyn EventStore>,
    reader: TimelineReader,
    shutdown: Shutdown,
) -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    let rules = retention_rules(settings, province)?;
    let erasure = crate::erasure::Erasure::new(store, reader, settings.data_dir.join(BLOBS_DIR)).with_projection(settings.data_dir.join(PROJECTIONS_FILE));
    let interval = Duration::from_secs(settings.retention.interval_secs.max(1));
    Ok(crate::erasure::retention(erasure, settings.retention.default_days, rules, interval, shutdown))
}

fn scheduler(settings: &Settings, store: Arc<dyn EventStore>, reader: TimelineReader) -> hotline_scheduler::Scheduler {
    let scheduler = hotline_scheduler::Scheduler::new(store, reader)
        .checkpointing_every(Duration::from_secs(settings.scheduler.checkpoint_interval_secs));
    match settings.scheduler.close_answered_after_days {
        0 => scheduler,
        days => scheduler.closing_after(days),
    }
}

fn intake(settings: &Settings, store: Arc<dyn EventStore>, province: Arc<Province>) -> Intake {
    Intake::new(store, province).with_deadline(Duration::from_secs(settings.nats.request_timeout_secs))
}

fn channel_config(settings: &Settings, name: &str) -> serde_json::Value {
    settings
        .channel(name)
        .and_then(|section| serde_json::to_value(&section.0).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn channel_context(settings: &Settings, name: &'static str, intake: Intake, shutdown: Shutdown) -> ChannelContext {
    let config = channel_config(settings, name);
    ChannelContext::new(name, intake, config, shutdown, settings.data_dir.clone())
}

/// Connects to NATS, retrying until it answers, or returns None when shutdown is raised first. A server that
/// answers but refuses our stream or bucket (wrong replicas, limits) is an error at once: retrying cannot help.
async fn connect(settings: &Settings, url: &str, mut shutdown: Shutdown) -> anyhow::Result<Option<JetStreamStore>> {
    let cfg = JetStreamConfig {
        replicas: settings.nats.replicas,
        request_timeout: Duration::from_secs(settings.nats.request_timeout_secs),
        ..JetStreamConfig::default()
    };
    let shown = redact(url);
    let mut delay = Duration::from_millis(200);
    loop {
        let attempt = tokio::select! {
            _ = shutdown.wait() => return Ok(None),
            a = JetStreamStore::connect(url, cfg.clone()) => a,
        };
        match attempt {
            Ok(store) => return Ok(Some(store)),
            Err(StoreError::Rejected(reason)) => bail!("NATS at {shown} refused the event log's set-up: {reason}"),
            Err(e) => {
                tracing::warn!(url = %shown, error = %e, "cannot reach NATS yet; retrying");
                tokio::select! {
                    _ = shutdown.wait() => return Ok(None),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// With `nats_url` (a server you run) and no `nats.feed_url`, the feed is written with the log's login, so it lands
/// in the log's account, where subscribers (in account FEED, deploy/nats) never see it: say so once.
fn warn_feed_login(settings: &Settings) {
    if settings.nats_url.is_some() && settings.nats.feed_url.is_none() {
        tracing::warn!(
            "nats.feed_url is not set: the published feed is written with nats_url's login, into that login's \
             account; subscribers in the FEED account (deploy/nats) will not find it. Set nats.feed_url to the \
             hotline-feed user's URL"
        );
    }
}

/// Connects the published feed and runs its projector until shutdown, as a background task of `hotline up`: an
/// unreachable or wrong feed URL is retried and logged without holding up intake; a set-up the server refuses is
/// logged as an error and the feed stays unwritten until the operator fixes it and restarts.
async fn run_feed(settings: Settings, url: String, store: Arc<dyn EventStore>, province_code: String, shutdown: Shutdown) {
    match connect_feed(&settings, &url, shutdown.clone()).await {
        Ok(Some(feed)) => {
            tracing::info!(url = %redact(&url), "published feed connected");
            hotline_feed::Projector::new(store, feed, &province_code).run(shutdown).await;
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = %format!("{e:#}"), "the published feed is not written: fix its NATS set-up and restart"),
    }
}

/// Opens the published feed at `url` (its writer's credentials), retrying until NATS answers, or None when shutdown
/// is raised first. A server that refuses the feed's stream is an error at once, as for the log.
async fn connect_feed(settings: &Settings, url: &str, mut shutdown: Shutdown) -> anyhow::Result<Option<Arc<dyn FeedLog>>> {
    let cfg = JetStreamConfig {
        replicas: settings.nats.replicas,
        request_timeout: Duration::from_secs(settings.nats.request_timeout_secs),
        ..JetStreamConfig::default()
    };
    let mut delay = Duration::from_millis(200);
    loop {
        let attempt = tokio::select! {
            _ = shutdown.wait() => return Ok(None),
            a = JetStreamFeed::connect(url, &cfg) => a,
        };
        match attempt {
            Ok(feed) => return Ok(Some(Arc::new(feed))),
            Err(StoreError::Rejected(reason)) => bail!("NATS at {} refused the published feed's set-up: {reason}", redact(url)),
            Err(e) => {
                tracing::warn!(url = %redact(url), error = %e, "cannot reach the feed's NATS account yet; retrying");
                tokio::select! {
                    _ = shutdown.wait() => return Ok(None),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// What `hotline token` does.
#[derive(Debug, Clone)]
pub enum TokenCommand {
    Create { role: String, agency: Option<String>, name: String },
    Revoke { id: String },
    List,
}

/// `hotline token ...`: manages API tokens of the running system, found the way `hotline up` publishes it
/// (`nats_url`, else `<data dir>/nats.url`). Returns the lines to print; a created token is the last line.
pub async fn token(settings: Settings, command: TokenCommand) -> anyhow::Result<Vec<String>> {
    let store = running_store(&settings).await?;
    match command {
        TokenCommand::Create { role, agency, name } => {
            let province = load_province(&settings)?;
            let (record, token) = hotline_api::tokens::issue(&province, &role, agency.as_deref(), &name, "cli")
                .map_err(|message| anyhow!(message))?;
            TokenRegistry::create(&store, &record).await?;
            let bound = record.agency.as_deref().map(|a| format!(", agency {a}")).unwrap_or_default();
            Ok(vec![
                format!("created token {} (role {}{bound}, name {:?})", record.id, record.role.as_str(), record.name),
                "it is shown only this once: store it now".to_owned(),
                token,
            ])
        }
        TokenCommand::Revoke { id } => match TokenRegistry::revoke(&store, &id, time::OffsetDateTime::now_utc()).await? {
            Some(_) => Ok(vec![format!("revoked token {id}")]),
            None => bail!("no token with id {id}"),
        },
        TokenCommand::List => {
            let records = TokenRegistry::list(&store).await?;
            Ok(records
                .iter()
                .map(|r| {
                    let state = if r.revoked_at.is_some() { "revoked" } else { "active" };
                    let agency = r.agency.as_deref().unwrap_or("-");
                    format!("{}\t{}\t{}\t{}\t{}", r.id, r.role.as_str(), agency, state, r.name)
                })
                .collect())
        }
    }
}

/// The running system's log, found like `hotline token` finds it (`nats_url`, else `<data dir>/nats.url`).
pub(crate) async fn running_store(settings: &Settings) -> anyhow::Result<JetStreamStore> {
    let url = match &settings.nats_url {
        Some(url) => url.clone(),
        None => {
            let file = settings.data_dir.join(NATS_URL_FILE);
            std::fs::read_to_string(&file)
                .map(|s| s.trim().to_owned())
                .with_context(|| format!("no running system found: {} is missing (start `hotline up` with this data dir, or set NATS_URL)", file.display()))?
        }
    };
    let cfg = JetStreamConfig { replicas: settings.nats.replicas, ..JetStreamConfig::default() };
    JetStreamStore::connect(&url, cfg)
        .await
        .with_context(|| format!("cannot reach the system's NATS at {} (is `hotline up` running?)", redact(&url)))
}

/// The nats-server the settings name, if it runs and is new enough.
fn checked_binary(path: &Path) -> Result<PathBuf, ServerError> {
    match version_of(path) {
        Some(v) if v >= MIN_VERSION => Ok(path.to_owned()),
        Some((major, minor)) => Err(ServerError::NotFound(format!(" (nats_server = {} is {major}.{minor})", path.display()))),
        None => Err(ServerError::NotFound(format!(" (nats_server = {} does not run)", path.display()))),
    }
}

/// Restarts the embedded nats-server if it dies; hands it back at shutdown.
async fn supervise_nats(mut server: NatsServer, mut shutdown: Shutdown) -> NatsServer {
    loop {
        tokio::select! {
            _ = shutdown.wait() => return server,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if server.has_exited() {
            tracing::error!(log = %server.log_path().display(), "embedded nats-server exited; restarting it");
            if let Err(e) = server.restart().await {
                tracing::error!(error = %e, "embedded nats-server failed to restart; retrying");
            }
        }
    }
}

/// Runs the projection, restarting it after a failure (it resumes from its stored position).
async fn run_projections(store: Arc<dyn EventStore>, path: PathBuf, shutdown: Shutdown) {
    while !shutdown.is_raised() {
        match hotline_projections::run(store.clone(), path.clone(), shutdown.clone()).await {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(error = %e, "timeline projection failed; restarting in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn bind(addr: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let addr: SocketAddr = addr.parse().with_context(|| format!("http_addr `{addr}` is not an address like 127.0.0.1:8080"))?;
    tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))
}

async fn serve_http(listener: tokio::net::TcpListener, app: axum::Router, mut shutdown: Shutdown) {
    let result = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.wait().await }).await;
    if let Err(e) = result {
        tracing::error!(error = %e, "HTTP server failed");
    }
}

/// A shutdown signal raised by the first SIGINT or SIGTERM, listened for from now on (start-up included).
fn stop_on_signal() -> Shutdown {
    let (trigger, shutdown) = hotline_runtime::shutdown();
    tokio::spawn(async move {
        hotline_runtime::terminate_signal().await;
        tracing::info!("stopping: draining in-flight work");
        trigger.trigger();
        // The trigger lives on: dropping it would count as raised anyway, but keep the intent plain.
        std::future::pending::<()>().await;
    });
    shutdown
}

/// Waits for shutdown, then gives the components [`DRAIN_TIMEOUT`] to finish.
async fn drain(mut shutdown: Shutdown, mut tasks: JoinSet<()>) {
    shutdown.wait().await;
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("drain timed out after {} s; stopping anyway", DRAIN_TIMEOUT.as_secs());
        tasks.abort_all();
    }
}

/// The admin token: from the settings, else the one stored in the data dir, else a new one stored there (0600).
fn admin_token(settings: &Settings) -> anyhow::Result<AdminToken> {
    if let Some(token) = &settings.admin_token {
        return Ok(AdminToken::new(token.expose()));
    }
    let token = stored_secret(&settings.data_dir.join(ADMIN_TOKEN_FILE), "hl_")?;
    Ok(AdminToken::new(&token))
}

/// The access-code secret of the app channel: `[app] access_secret`, else one stored in the data dir. Every
/// process serving the app channel or the public endpoints must share it.
fn access_codes(settings: &Settings) -> anyhow::Result<AccessCodes> {
    app_section(settings)?;
    match settings.app.0.get("access_secret") {
        Some(toml::Value::String(secret)) if !secret.is_empty() => return Ok(AccessCodes::new(secret)),
        Some(_) => bail!("[app] access_secret must be a non-empty string"),
        None => {}
    }
    Ok(AccessCodes::new(&stored_secret(&settings.data_dir.join(ACCESS_SECRET_FILE), "")?))
}

/// The `[app]` section holds `access_secret` and the Open311 keys, nothing else: a misspelt `access_secret` would
/// otherwise leave each process with a generated secret of its own, and codes made by one refused by the others.
fn app_section(settings: &Settings) -> anyhow::Result<()> {
    for key in settings.app.0.keys() {
        if key != "access_secret" && !hotline_open311::KEYS.contains(&key.as_str()) {
            bail!(
                "settings [app]: unknown key `{key}` (HOTLINE_APP__{}); known: access_secret, {}",
                key.to_ascii_uppercase(),
                hotline_open311::KEYS.join(", ")
            );
        }
    }
    Ok(())
}

/// A secret kept in a file of the data dir (mode 0600), made once: of several processes starting together on
/// one data dir, one secret wins (written to a temporary file, then linked into place only if none exists) and
/// every process reads that one.
fn stored_secret(path: &Path, prefix: &str) -> anyhow::Result<String> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let existing = text.trim();
        if existing.is_empty() {
            bail!("{} is empty: delete it to have a new one generated", path.display());
        }
        return Ok(existing.to_owned());
    }
    let secret = format!("{prefix}{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("secret");
    let tmp = path.with_file_name(format!(".{name}.{}", std::process::id()));
    write_private(&tmp, &format!("{secret}\n"))?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(secret),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            Ok(text.trim().to_owned())
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path).with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// A NATS URL fit for logs: `nats://user:secret@host` becomes `nats://***@host`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}***{}", &url[..scheme + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn credentials_in_nats_urls_never_reach_the_log() {
        assert_eq!(redact("nats://alice:s3cr3t@10.0.0.1:4222"), "nats://***@10.0.0.1:4222");
        assert_eq!(redact("nats://token@host:4222"), "nats://***@host:4222");
        assert_eq!(redact("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
    }
}
