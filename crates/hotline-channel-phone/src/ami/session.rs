//! The AMI session: connect (with a timeout), read the banner, `Login` with `Events: call,cdr`, then read events
//! until the connection ends, checking it with `Ping` every `ping_interval`; on any failure (refused login
//! included) wait and connect again, from 1 s doubling to `reconnect_max`. Facts go into a bounded channel: when
//! the recorder falls behind, reading stops, and Asterisk's own buffer takes the wait.
//!
//! Events sent while the bridge is disconnected are not replayed by Asterisk: a call that starts or ends then
//! misses that fact (the petition itself never depends on the bridge).

use std::time::{Duration, Instant};

use hotline_domain::event::CallLogged;
use hotline_runtime::Shutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::calls::Correlator;
use super::frame::{Decoder, Frame, FrameError, Item, encode_action};
use crate::config::AmiConfig;

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot connect to {addr}: {error}")]
    Connect { addr: String, error: String },
    #[error("the AMI login was refused: {0}")]
    LoginRefused(String),
    #[error("no answer from Asterisk within {0:?}")]
    Timeout(Duration),
    #[error("the connection closed")]
    Closed,
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Shutdown was raised.
    #[error("stopping")]
    Stopped,
}

/// Runs the bridge until `shutdown`: sessions one after another, with backoff between them.
pub async fn run(config: AmiConfig, facts: mpsc::Sender<Vec<CallLogged>>, mut shutdown: Shutdown) {
    let mut correlator = Correlator::new(config.cdr, config.cdr_wait);
    let mut backoff = Duration::from_secs(1);
    loop {
        let mut logged_in = false;
        match session(&config, &mut correlator, &facts, &mut shutdown, &mut logged_in).await {
            Err(SessionError::Stopped) | Ok(()) => break,
            Err(SessionError::LoginRefused(m)) => {
                tracing::error!(addr = %config.addr, user = %config.username, reason = %m, "AMI login refused; check ami.username and ami.secret");
            }
            Err(e) => tracing::warn!(addr = %config.addr, error = %e, "AMI session ended"),
        }
        // A session that got as far as logging in was healthy: reconnect quickly, then back off again.
        if logged_in {
            backoff = Duration::from_secs(1);
        }
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(config.reconnect_max);
    }
    tracing::info!("AMI bridge stopped");
}

/// One connection: login, then events until it ends.
async fn session(
    config: &AmiConfig,
    correlator: &mut Correlator,
    facts: &mpsc::Sender<Vec<CallLogged>>,
    shutdown: &mut Shutdown,
    logged_in: &mut bool,
) -> Result<(), SessionError> {
    let connect = tokio::time::timeout(config.timeout, TcpStream::connect(&config.addr));
    let mut stream = tokio::select! {
        _ = shutdown.wait() => return Err(SessionError::Stopped),
        c = connect => c
            .map_err(|_| SessionError::Timeout(config.timeout))?
            .map_err(|e| SessionError::Connect { addr: config.addr.clone(), error: e.to_string() })?,
    };
    let mut reader = Reader { decoder: Decoder::new(), buf: vec![0u8; 8192] };
    // The banner, then the login's answer (events may come first; they are not ours to read yet).
    let deadline = Instant::now() + config.timeout;
    let first = tokio::select! {
        _ = shutdown.wait() => return Err(SessionError::Stopped),
        item = reader.next(&mut stream, deadline) => item?,
    };
    match first {
        Item::Banner(banner) => tracing::debug!(%banner, "AMI connected"),
        Item::Frame(_) => return Err(FrameError::NotAmi.into()),
    }
    let login = encode_action(
        "Login",
        &[("ActionID", "hotline-login"), ("Username", &config.username), ("Secret", config.secret.expose()), ("Events", "call,cdr")],
    )?;
    stream.write_all(&login).await?;
    loop {
        let item = tokio::select! {
            _ = shutdown.wait() => return Err(SessionError::Stopped),
            item = reader.next(&mut stream, deadline) => item?,
        };
        let Item::Frame(frame) = item else { continue };
        if frame.get("ActionID") != Some("hotline-login") {
            continue;
        }
        if frame.get("Response").is_some_and(|r| r.eq_ignore_ascii_case("Success")) {
            break;
        }
        return Err(SessionError::LoginRefused(frame.get("Message").unwrap_or("no reason given").to_owned()));
    }
    tracing::info!(addr = %config.addr, "AMI bridge logged in");
    *logged_in = true;

    let mut ping_seq = 0u64;
    let mut next_ping = Instant::now() + config.ping_interval;
    let mut pong_due: Option<(String, Instant)> = None;
    loop {
        let tick = next_ping.min(pong_due.as_ref().map_or(next_ping, |(_, due)| *due)).min(Instant::now() + Duration::from_secs(1));
        let item = tokio::select! {
            _ = shutdown.wait() => {
                if let Ok(logoff) = encode_action("Logoff", &[]) {
                    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&logoff)).await;
                }
                return Err(SessionError::Stopped);
            }
            item = reader.next(&mut stream, tick + Duration::from_secs(3600)) => Some(item?),
            _ = tokio::time::sleep_until(tick.into()) => None,
        };
        let now = Instant::now();
        if let Some(Item::Frame(frame)) = item {
            if let Some((id, _)) = &pong_due
                && frame.get("ActionID") == Some(id.as_str())
            {
                pong_due = None;
            }
            forward(facts, correlator.on_frame(&frame, now), shutdown).await?;
            trace_unusual(&frame);
        }
        forward(facts, correlator.expire(now), shutdown).await?;
        if let Some((_, due)) = &pong_due
            && *due <= now
        {
            return Err(SessionError::Timeout(config.timeout));
        }
        if pong_due.is_none() && next_ping <= now {
            ping_seq += 1;
            let id = format!("hotline-ping-{ping_seq}");
            stream.write_all(&encode_action("Ping", &[("ActionID", &id)])?).await?;
            pong_due = Some((id, now + config.timeout));
            next_ping = now + config.ping_interval;
        }
    }
}

async fn forward(facts: &mpsc::Sender<Vec<CallLogged>>, batch: Vec<CallLogged>, shutdown: &mut Shutdown) -> Result<(), SessionError> {
    if batch.is_empty() {
        return Ok(());
    }
    tokio::select! {
        _ = shutdown.wait() => Err(SessionError::Stopped),
        sent = facts.send(batch) => sent.map_err(|_| SessionError::Stopped),
    }
}

fn trace_unusual(frame: &Frame) {
    if frame.get("Response").is_some_and(|r| r.eq_ignore_ascii_case("Error")) {
        tracing::warn!(message = frame.get("Message").unwrap_or(""), "AMI answered an action with an error");
    }
}

/// Reads items off the socket.
struct Reader {
    decoder: Decoder,
    buf: Vec<u8>,
}

impl Reader {
    /// The next item, reading as needed until `deadline`. Cancel-safe: bytes read stay in the decoder.
    async fn next(&mut self, stream: &mut TcpStream, deadline: Instant) -> Result<Item, SessionError> {
        loop {
            if let Some(item) = self.decoder.next_item()? {
                return Ok(item);
            }
            let read = tokio::time::timeout_at(deadline.into(), stream.read(&mut self.buf));
            let n = read.await.map_err(|_| SessionError::Timeout(deadline.saturating_duration_since(Instant::now())))??;
            if n == 0 {
                return Err(SessionError::Closed);
            }
            self.decoder.push(&self.buf[..n]);
        }
    }
}
