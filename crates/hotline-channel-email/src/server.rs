//! The SMTP listener: accepts connections, runs one [`Session`] per connection, and hands each finished mail to
//! a [`MailSink`] whose reply is sent only once the sink returns (so 250 means stored).
//!
//! Bounded everywhere: connections (over the limit get 421 at once), time (a command timeout and a longer one while
//! a body streams in; writes time out too), memory (the session's own limits; reads of 64 KiB; and one budget for
//! the mails of all sessions together, below). On shutdown the
//! listener stops accepting, idle sessions are told 421 and closed, a mail being stored is finished and answered,
//! and whatever has not ended after the drain timeout is dropped (an MTA resends unacknowledged mail).
//!
//! The memory budget (`max_buffered_bytes`, a semaphore of KiB permits): a mail counts [`BUDGET_FACTOR`] times its
//! size, the bytes received plus what parsing makes of them, from DATA until it is stored. DATA is answered 354
//! only once the session holds the budget for the size the client declared at MAIL (or a start of
//! [`UNSIZED_START`] when it declared none), waiting up to `budget_wait`; otherwise it gets `452 4.3.1` and the
//! sending MTA tries again later. A mail that grows beyond what its session holds takes more if it is free right
//! now, and is otherwise dropped as it streams in and answered `452 4.3.1` after its final dot. Waiting only
//! before a mail starts, never while holding part of the budget, means sessions cannot block each other for good.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use hotline_runtime::Shutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

pub use crate::config::BUDGET_FACTOR;
use crate::smtp::{Mail, Reply, Session, SessionConfig, Step};

/// What receives finished mails: stores one and says what to answer (250 once stored, 4xx to be sent again, 5xx
/// to be refused).
pub trait MailSink: Send + Sync + 'static {
    fn store(&self, mail: Mail, peer: SocketAddr) -> BoxFuture<'_, Reply>;
}

/// How the listener behaves.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub session: SessionConfig,
    pub max_connections: usize,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    /// How long in-flight sessions may take to finish after shutdown.
    pub drain_timeout: Duration,
    /// Memory all sessions together may hold for mails being received and parsed.
    pub max_buffered_bytes: usize,
    /// How long a DATA command waits for room in that budget before it is told to come back (452).
    pub budget_wait: Duration,
}

/// Bytes read from a client at a time.
const READ_CHUNK: usize = 64 * 1024;
/// What a mail that declared no size is counted as when it starts; it takes more as it grows.
pub const UNSIZED_START: usize = 256 * 1024;

/// The answer to a mail the budget has no room for.
fn busy() -> Reply {
    Reply::new(452, "4.3.1 Too much mail being received at once, try again later")
}

fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024)
}

/// The part of the shared budget one session holds, in KiB.
struct Held {
    budget: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Held {
    fn kib(&self) -> usize {
        self.permit.as_ref().map_or(0, OwnedSemaphorePermit::num_permits)
    }

    fn add(&mut self, more: OwnedSemaphorePermit) {
        match &mut self.permit {
            Some(held) => held.merge(more),
            None => self.permit = Some(more),
        }
    }

    /// Holds at least `kib` if the budget has it free now.
    fn try_grow_to(&mut self, kib: usize) -> bool {
        let Ok(more) = u32::try_from(kib.saturating_sub(self.kib())) else { return false };
        if more == 0 {
            return true;
        }
        match self.budget.clone().try_acquire_many_owned(more) {
            Ok(permit) => {
                self.add(permit);
                true
            }
            Err(_) => false,
        }
    }

    /// Holds at least `kib`, waiting up to `wait` for it.
    async fn grow_to(&mut self, kib: usize, wait: Duration) -> bool {
        let Ok(more) = u32::try_from(kib.saturating_sub(self.kib())) else { return false };
        if more == 0 {
            return true;
        }
        match tokio::time::timeout(wait, self.budget.clone().acquire_many_owned(more)).await {
            Ok(Ok(permit)) => {
                self.add(permit);
                true
            }
            _ => false,
        }
    }

    /// Gives back what is held beyond `kib`.
    fn shrink_to(&mut self, kib: usize) {
        if let Some(held) = &mut self.permit
            && held.num_permits() > kib
        {
            drop(held.split(held.num_permits() - kib));
        }
    }

    fn release(&mut self) {
        self.permit = None;
    }
}

/// Serves SMTP on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, config: ServerConfig, sink: Arc<dyn MailSink>, mut shutdown: Shutdown) {
    let config = Arc::new(config);
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let budget = Arc::new(Semaphore::new(kib(config.max_buffered_bytes).min(Semaphore::MAX_PERMITS)));
    let mut sessions = JoinSet::new();
    loop {
        while sessions.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "smtp accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.wait() => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = config.max_connections, "smtp connection refused: too many sessions");
            sessions.spawn(refuse_busy(stream, config.command_timeout));
            continue;
        };
        let (config, sink, shutdown) = (config.clone(), sink.clone(), shutdown.clone());
        let held = Held { budget: budget.clone(), permit: None };
        sessions.spawn(async move {
            let _slot = slot;
            if let Err(e) = session(stream, peer, &config, sink.as_ref(), held, shutdown).await {
                tracing::debug!(%peer, error = %e, "smtp session ended with an error");
            }
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(config.drain_timeout, async { while sessions.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(left = sessions.len(), "smtp sessions still open after the drain timeout; closing them");
        sessions.shutdown().await;
    }
}

async fn refuse_busy(mut stream: TcpStream, limit: Duration) {
    let reply = Reply::new(421, "4.3.2 Too many connections, try again later");
    let _ = tokio::time::timeout(limit, stream.write_all(&reply.to_wire())).await;
    let _ = stream.shutdown().await;
}

/// One connection, from greeting to close.
async fn session(
    mut stream: TcpStream,
    peer: SocketAddr,
    config: &ServerConfig,
    sink: &dyn MailSink,
    mut held: Held,
    mut shutdown: Shutdown,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut session = Session::new(config.session.clone());
    let mut out = session.greeting().to_wire();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        // Everything the input so far asks for, replies kept in order (PIPELINING).
        while let Some(step) = session.step() {
            match step {
                Step::Reply(reply) => out.extend(reply.to_wire()),
                Step::Close(reply) => {
                    out.extend(reply.to_wire());
                    write(&mut stream, &out, config.command_timeout).await?;
                    return stream.shutdown().await;
                }
                Step::Data { expected } => {
                    // The replies before it go out first; finding room may take a moment.
                    write(&mut stream, &out, config.command_timeout).await?;
                    out.clear();
                    let expected = expected.unwrap_or(UNSIZED_START).min(config.session.limits.max_message_bytes);
                    let want = kib(expected.saturating_mul(BUDGET_FACTOR) + READ_CHUNK);
                    let granted = tokio::select! {
                        granted = held.grow_to(want, config.budget_wait) => granted,
                        _ = shutdown.wait() => {
                            let reply = Reply::new(421, "4.3.2 Server shutting down, try again later");
                            let _ = write(&mut stream, &reply.to_wire(), Duration::from_secs(5)).await;
                            return stream.shutdown().await;
                        }
                    };
                    if !granted {
                        tracing::warn!(%peer, want_kib = want, limit = config.max_buffered_bytes,
                            "smtp mail deferred (452): max_buffered_bytes is taken by other sessions' mails");
                    }
                    match session.start_data(granted) {
                        Step::Close(reply) => {
                            out.extend(reply.to_wire());
                            write(&mut stream, &out, config.command_timeout).await?;
                            return stream.shutdown().await;
                        }
                        other => out.extend(step_wire(other)),
                    }
                }
                Step::Mail(mail) => {
                    // The replies before it go out first; storing may take a moment.
                    write(&mut stream, &out, config.command_timeout).await?;
                    out.clear();
                    let size = mail.data.len();
                    // Held while the mail is parsed and stored: its bytes, and what parsing makes of them.
                    held.shrink_to(kib(mail.data.capacity() + (BUDGET_FACTOR - 1) * size));
                    let reply = session.finish(sink.store(mail, peer).await);
                    held.release();
                    tracing::info!(%peer, size, code = reply.code, "smtp mail answered");
                    out.extend(reply.to_wire());
                }
            }
        }
        if session.in_data() {
            // What the message holds now, and what parsing it will take: more if free, else the mail is dropped.
            // (A mail being dropped keeps nothing, so asks for nothing.)
            let need = kib(session.memory() + (BUDGET_FACTOR - 1) * session.data_len());
            if session.data_len() > 0 && !held.try_grow_to(need) {
                tracing::warn!(%peer, kept = session.data_len(), limit = config.max_buffered_bytes,
                    "smtp mail outgrew its share of max_buffered_bytes; dropped, will be answered 452");
                session.refuse_data(busy());
                held.release();
            }
        } else {
            held.release();
        }
        write(&mut stream, &out, config.command_timeout).await?;
        out.clear();
        let limit = if session.in_data() { config.data_timeout } else { config.command_timeout };
        tokio::select! {
            read = tokio::time::timeout(limit, stream.read(&mut buf)) => match read {
                Ok(Ok(0)) => {
                    // The client went away; a mail it was sending is not acknowledged, so it is not ours to keep.
                    if session.in_data() {
                        tracing::info!(%peer, "smtp client disconnected in the middle of a message; nothing stored");
                    }
                    return Ok(());
                }
                Ok(Ok(n)) => session.feed(&buf[..n]),
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    let reply = Reply::new(421, "4.4.2 Timeout waiting for input, closing connection");
                    let _ = write(&mut stream, &reply.to_wire(), config.command_timeout).await;
                    return stream.shutdown().await;
                }
            },
            _ = shutdown.wait() => {
                let reply = Reply::new(421, "4.3.2 Server shutting down, try again later");
                let _ = write(&mut stream, &reply.to_wire(), Duration::from_secs(5)).await;
                return stream.shutdown().await;
            }
        }
    }
}

/// The wire form of a step that is a reply.
fn step_wire(step: Step) -> Vec<u8> {
    match step {
        Step::Reply(reply) | Step::Close(reply) => reply.to_wire(),
        Step::Mail(_) | Step::Data { .. } => Vec::new(),
    }
}

async fn write(stream: &mut TcpStream, bytes: &[u8], limit: Duration) -> std::io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    match tokio::time::timeout(limit, stream.write_all(bytes)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "client does not read its replies")),
    }
}
