//! The SMTP listener: accepts connections, runs one [`Session`] per connection, and hands each finished mail to
//! a [`MailSink`] whose reply is sent only once the sink returns (so 250 means stored).
//!
//! Bounded everywhere: connections (over the limit get 421 at once), time (a command timeout and a longer one while
//! a body streams in; writes time out too), memory (the session's own limits; reads of 64 KiB). On shutdown the
//! listener stops accepting, idle sessions are told 421 and closed, a mail being stored is finished and answered,
//! and whatever has not ended after the drain timeout is dropped (an MTA resends unacknowledged mail).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use hotline_runtime::Shutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

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
}

/// Bytes read from a client at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Serves SMTP on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, config: ServerConfig, sink: Arc<dyn MailSink>, mut shutdown: Shutdown) {
    let config = Arc::new(config);
    let slots = Arc::new(Semaphore::new(config.max_connections));
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
        sessions.spawn(async move {
            let _slot = slot;
            if let Err(e) = session(stream, peer, &config, sink.as_ref(), shutdown).await {
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
                Step::Mail(mail) => {
                    // The replies before it go out first; storing may take a moment.
                    write(&mut stream, &out, config.command_timeout).await?;
                    out.clear();
                    let size = mail.data.len();
                    let reply = session.finish(sink.store(mail, peer).await);
                    tracing::info!(%peer, size, code = reply.code, "smtp mail answered");
                    out.extend(reply.to_wire());
                }
            }
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

async fn write(stream: &mut TcpStream, bytes: &[u8], limit: Duration) -> std::io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    match tokio::time::timeout(limit, stream.write_all(bytes)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "client does not read its replies")),
    }
}
