//! The SMPP session to the SMSC: connect, `bind_transceiver`, then serve until the connection ends, and again
//! with exponential backoff. One session carries both directions: `deliver_sm` in (handed to the inbound worker,
//! answered when it says), `submit_sm` out (jobs from [`SmppClient::submit`], one part at a time, each awaited).
//!
//! Keep-alive: an `enquire_link` after `enquire_link` of silence, and the SMSC's own answered. A request of ours
//! unanswered within `response_timeout` means the link is dead: reconnect. Throttling (`ESME_RTHROTTLED`,
//! `ESME_RMSGQFUL`) delays the part and sends it again, the delay doubling. Unknown requests get `generic_nack`;
//! a PDU whose length is impossible (over 64 KiB) ends the connection, which is then made again.
//!
//! On shutdown the session stops handing `deliver_sm`s to the worker (new ones are answered `ESME_RX_T_APPN`,
//! so the SMSC keeps them), waits at most [`ANSWER_DRAIN`] for the worker's answers to those it already handed
//! over, sends them, and only then unbinds: a part that completed a message being stored at that
//! moment is acknowledged, instead of coming again alone after the restart.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use hotline_runtime::Shutdown;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::MoSink;
use super::inbound::{self, Deliver, DeliverAnswer};
use super::pdu::{self, Bind, Body, Packet, PduError, ShortMessage, command, status};
use crate::config::SmppConfig;
use crate::text::EncodedPart;

/// Why a submit failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitError {
    Retryable(String),
    Permanent(String),
}

/// A message to send: its parts in order, and where to say how it went.
struct SubmitJob {
    to: String,
    parts: Vec<EncodedPart>,
    reply: oneshot::Sender<Result<Vec<String>, SubmitError>>,
}

/// Hands answers to the running session. Cheap to clone.
#[derive(Clone)]
pub struct SmppClient {
    jobs: mpsc::Sender<SubmitJob>,
    submit_timeout: Duration,
}

impl SmppClient {
    /// Sends the parts as `submit_sm`s and returns the SMSC's message ids. Waits for a session (and through
    /// throttling) at most `submit_timeout`, then answers `Retryable`.
    pub async fn submit(
        &self,
        to: &str,
        parts: Vec<EncodedPart>,
    ) -> Result<Vec<String>, SubmitError> {
        if parts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        let job = SubmitJob {
            to: to.to_owned(),
            parts,
            reply,
        };
        let attempt = async {
            self.jobs
                .send(job)
                .await
                .map_err(|_| SubmitError::Retryable("the SMPP session is not running".into()))?;
            answer.await.map_err(|_| {
                SubmitError::Retryable("the SMPP session stopped before answering".into())
            })?
        };
        tokio::time::timeout(self.submit_timeout, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(SubmitError::Retryable(format!(
                    "the SMSC did not accept the message within {:?}",
                    self.submit_timeout
                )))
            })
    }
}

/// The session, before it runs.
pub struct Session {
    config: SmppConfig,
    jobs: mpsc::Receiver<SubmitJob>,
    jobs_open: bool,
    active: Option<Active>,
    sequence: u32,
    /// Sequence numbers of the `deliver_sm`s of the current connection handed to the worker and not yet answered.
    handed: HashSet<u32>,
}

/// A new session and the client that submits through it.
pub fn session(config: SmppConfig) -> (SmppClient, Session) {
    let (tx, rx) = mpsc::channel(64);
    let client = SmppClient {
        jobs: tx,
        submit_timeout: config.submit_timeout,
    };
    (
        client,
        Session {
            config,
            jobs: rx,
            jobs_open: true,
            active: None,
            sequence: 0,
            handed: HashSet::new(),
        },
    )
}

/// The message being sent.
struct Active {
    job: SubmitJob,
    /// The next part to send.
    next: usize,
    ids: Vec<String>,
    /// The part on the wire, by sequence number.
    in_flight: Option<u32>,
    /// Throttled: not before this.
    not_before: Instant,
    throttle_delay: Duration,
}

/// First delay after a throttling answer; it doubles up to [`THROTTLE_MAX`].
const THROTTLE_FIRST: Duration = Duration::from_millis(500);
const THROTTLE_MAX: Duration = Duration::from_secs(30);
/// How often timers (keep-alive, response timeouts, throttling) are looked at.
const TICK: Duration = Duration::from_millis(100);

/// How long shutdown waits for the worker's answers to deliveries already handed over: half the process's drain
/// timeout, leaving the rest for the unbind and for storing the parts of incomplete messages the worker holds.
/// (A store in flight ends within the event log's request timeout, 5 s, either way.)
pub const ANSWER_DRAIN: Duration =
    Duration::from_secs(hotline_runtime::DRAIN_TIMEOUT.as_secs() / 2);

/// Why a connection ended.
enum End {
    Shutdown,
    Lost(String),
}

/// What we wait an answer for.
enum Outgoing {
    Submit,
    EnquireLink,
}

impl Session {
    /// Runs until `shutdown`: keeps a bound session, feeds `deliver_sm`s to `sink`, sends submitted answers.
    pub async fn run(mut self, sink: Arc<dyn MoSink>, shutdown: Shutdown) {
        let (deliver_tx, deliver_rx) = mpsc::channel(256);
        let (answer_tx, mut answer_rx) = mpsc::channel(256);
        let worker = tokio::spawn(inbound::run_worker(
            deliver_rx,
            answer_tx,
            sink,
            self.config.reassembly_timeout,
        ));
        let mut backoff = self.config.reconnect_min;
        let mut generation = 0u64;
        let mut stop = shutdown.clone();
        while !shutdown.is_raised() {
            generation += 1;
            let connected = tokio::select! {
                // A bind that completed is served (and so unbound) even if shutdown came at the same moment.
                biased;
                c = self.connect() => c,
                _ = stop.wait() => break,
            };
            match connected {
                Ok((stream, frames)) => {
                    backoff = self.config.reconnect_min;
                    tracing::info!(smsc = %self.config.addr, "SMPP session bound");
                    match self
                        .serve(
                            stream,
                            frames,
                            generation,
                            &deliver_tx,
                            &mut answer_rx,
                            shutdown.clone(),
                        )
                        .await
                    {
                        End::Shutdown => break,
                        End::Lost(why) => {
                            tracing::warn!(smsc = %self.config.addr, reason = %why, "SMPP session lost")
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(smsc = %self.config.addr, error = %e, retry_in = ?backoff, "SMPP bind failed")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.wait() => break,
            }
            backoff = (backoff * 2).min(self.config.reconnect_max);
        }
        if let Some(active) = self.active.take() {
            let _ = active.job.reply.send(Err(SubmitError::Retryable(
                "the SMPP session is shutting down".into(),
            )));
        }
        // The worker finishes what it was given (storing what incomplete messages it holds) and ends.
        drop(deliver_tx);
        drop(answer_rx);
        if tokio::time::timeout(hotline_runtime::DRAIN_TIMEOUT, worker)
            .await
            .is_err()
        {
            tracing::warn!("the SMPP inbound worker did not finish within the drain timeout");
        }
    }

    fn next_sequence(&mut self) -> u32 {
        // 1..=0x7FFFFFFF (SMPP 3.4 §5.1.4).
        self.sequence = if self.sequence >= 0x7FFF_FFFF {
            1
        } else {
            self.sequence + 1
        };
        self.sequence
    }

    /// Connects and binds as transceiver.
    async fn connect(
        &mut self,
    ) -> Result<
        (
            tokio::net::tcp::OwnedWriteHalf,
            FrameReader<tokio::net::tcp::OwnedReadHalf>,
        ),
        String,
    > {
        let limit = self.config.response_timeout;
        let stream = tokio::time::timeout(limit, TcpStream::connect(&self.config.addr))
            .await
            .map_err(|_| format!("no connection within {limit:?}"))?
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (rd, mut wr) = stream.into_split();
        let mut frames = FrameReader::new(rd);
        let sequence = self.next_sequence();
        let bind = Body::BindTransceiver(Bind {
            system_id: self.config.system_id.clone(),
            password: self.config.password.expose().to_owned(),
            system_type: self.config.system_type.clone(),
            interface_version: pdu::INTERFACE_VERSION,
            addr_ton: 0,
            addr_npi: 0,
            address_range: String::new(),
        });
        write(
            &mut wr,
            &Packet {
                status: 0,
                sequence,
                body: bind,
            },
            limit,
        )
        .await?;
        let answer = tokio::time::timeout(limit, async {
            loop {
                let frame = frames
                    .next()
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| "the SMSC closed the connection".to_owned())?;
                match pdu::peek_header(&frame) {
                    Some((command::BIND_TRANSCEIVER_RESP, status, seq)) if seq == sequence => {
                        return Ok::<u32, String>(status);
                    }
                    Some((command::GENERIC_NACK, status, seq)) if seq == sequence => {
                        return Ok(status.max(1));
                    }
                    _ => continue,
                }
            }
        })
        .await
        .map_err(|_| format!("no bind_transceiver_resp within {limit:?}"))?;
        match answer {
            Ok(status::ROK) => Ok((wr, frames)),
            Ok(code) => Err(format!("the SMSC refused the bind: {}", status_name(code))),
            Err(e) => Err(e),
        }
    }

    /// Serves a bound connection until it ends.
    async fn serve(
        &mut self,
        mut wr: tokio::net::tcp::OwnedWriteHalf,
        mut frames: FrameReader<tokio::net::tcp::OwnedReadHalf>,
        generation: u64,
        deliver_tx: &mpsc::Sender<Deliver>,
        answer_rx: &mut mpsc::Receiver<DeliverAnswer>,
        mut shutdown: Shutdown,
    ) -> End {
        let limit = self.config.response_timeout;
        let mut waiting: HashMap<u32, (Outgoing, Instant)> = HashMap::new();
        let mut last_heard = Instant::now();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A part in flight on the lost connection is sent again on this one.
        if let Some(active) = &mut self.active {
            active.in_flight = None;
        }
        // Answers to the last connection's deliveries are not sent on this one.
        self.handed.clear();
        loop {
            if let Err(e) = self.pump(&mut wr, &mut waiting).await {
                return End::Lost(e);
            }
            tokio::select! {
                _ = shutdown.wait() => {
                    self.drain(&mut wr, &mut frames, generation, answer_rx, &mut waiting).await;
                    self.unbind(&mut wr, &mut frames).await;
                    return End::Shutdown;
                }
                frame = frames.next() => {
                    let frame = match frame {
                        Ok(Some(f)) => f,
                        Ok(None) => return End::Lost("the SMSC closed the connection".into()),
                        Err(e) => return End::Lost(e.to_string()),
                    };
                    last_heard = Instant::now();
                    if let Err(e) = self.on_frame(&frame, generation, &mut wr, &mut waiting, Some(deliver_tx)).await {
                        return End::Lost(e);
                    }
                }
                Some(answer) = answer_rx.recv() => {
                    // An answer for a connection already gone is not sent: the SMSC delivers again.
                    if answer.generation == generation {
                        self.handed.remove(&answer.sequence);
                        let resp = Packet { status: answer.status, sequence: answer.sequence, body: Body::DeliverSmResp };
                        if let Err(e) = write(&mut wr, &resp, limit).await {
                            return End::Lost(e);
                        }
                    }
                }
                job = self.jobs.recv(), if self.active.is_none() && self.jobs_open => match job {
                    Some(job) => {
                        self.active = Some(Active {
                            job,
                            next: 0,
                            ids: Vec::new(),
                            in_flight: None,
                            not_before: Instant::now(),
                            throttle_delay: THROTTLE_FIRST,
                        });
                    }
                    None => self.jobs_open = false,
                },
                _ = tick.tick() => {
                    let now = Instant::now();
                    if let Some((_, (what, _))) = waiting.iter().find(|(_, (_, sent))| now.duration_since(*sent) >= limit) {
                        let what = match what { Outgoing::Submit => "submit_sm", Outgoing::EnquireLink => "enquire_link" };
                        return End::Lost(format!("no answer to {what} within {limit:?}"));
                    }
                    let probing = waiting.values().any(|(w, _)| matches!(w, Outgoing::EnquireLink));
                    if !probing && now.duration_since(last_heard) >= self.config.enquire_link {
                        let sequence = self.next_sequence();
                        if let Err(e) = write(&mut wr, &Packet { status: 0, sequence, body: Body::EnquireLink }, limit).await {
                            return End::Lost(e);
                        }
                        waiting.insert(sequence, (Outgoing::EnquireLink, now));
                    }
                }
            }
        }
    }

    /// At shutdown, before unbinding: sends the worker's answers to the deliveries already handed to it, waiting
    /// for them at most [`ANSWER_DRAIN`]. Meanwhile the SMSC is still heard (keep-alives,
    /// `submit_sm_resp`), but a new `deliver_sm` is answered `ESME_RX_T_APPN` for the SMSC to deliver again later.
    async fn drain(
        &mut self,
        wr: &mut tokio::net::tcp::OwnedWriteHalf,
        frames: &mut FrameReader<tokio::net::tcp::OwnedReadHalf>,
        generation: u64,
        answer_rx: &mut mpsc::Receiver<DeliverAnswer>,
        waiting: &mut HashMap<u32, (Outgoing, Instant)>,
    ) {
        let limit = self.config.response_timeout;
        let deadline = Instant::now() + ANSWER_DRAIN;
        while !self.handed.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(
                        unanswered = self.handed.len(),
                        "SMS still being stored at shutdown; the SMSC will deliver them again"
                    );
                    return;
                }
                answer = answer_rx.recv() => {
                    let Some(answer) = answer else { return };
                    if answer.generation != generation {
                        continue;
                    }
                    self.handed.remove(&answer.sequence);
                    let resp = Packet { status: answer.status, sequence: answer.sequence, body: Body::DeliverSmResp };
                    if write(wr, &resp, limit).await.is_err() {
                        return;
                    }
                }
                frame = frames.next() => {
                    let Ok(Some(frame)) = frame else { return };
                    if self.on_frame(&frame, generation, wr, waiting, None).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Sends the next part of the active message when nothing is in flight and throttling allows.
    async fn pump(
        &mut self,
        wr: &mut tokio::net::tcp::OwnedWriteHalf,
        waiting: &mut HashMap<u32, (Outgoing, Instant)>,
    ) -> Result<(), String> {
        let Some(active) = &self.active else {
            return Ok(());
        };
        if active.job.reply.is_closed() {
            // Whoever submitted gave up waiting; the outbound consumer will try the whole answer again.
            tracing::warn!(
                sent = active.next,
                parts = active.job.parts.len(),
                "submit abandoned by its caller"
            );
            self.active = None;
            return Ok(());
        }
        if active.in_flight.is_some() || Instant::now() < active.not_before {
            return Ok(());
        }
        let part = &active.job.parts[active.next];
        let sm = ShortMessage {
            source_addr_ton: self.config.source_addr_ton,
            source_addr_npi: self.config.source_addr_npi,
            source_addr: self.config.source_addr.clone().unwrap_or_default(),
            dest_addr_ton: self.config.dest_addr_ton,
            dest_addr_npi: self.config.dest_addr_npi,
            destination_addr: active.job.to.clone(),
            esm_class: part.esm_class,
            registered_delivery: u8::from(self.config.registered_delivery),
            data_coding: part.data_coding,
            short_message: part.short_message.clone(),
            ..Default::default()
        };
        let sequence = self.next_sequence();
        let packet = Packet {
            status: 0,
            sequence,
            body: Body::SubmitSm(sm),
        };
        if let Err(e) = pdu::encode(&packet) {
            // The caller built a part the wire cannot carry (a bad number): no retry will help.
            if let Some(active) = self.active.take() {
                let _ = active.job.reply.send(Err(SubmitError::Permanent(format!(
                    "cannot encode submit_sm: {e}"
                ))));
            }
            return Ok(());
        }
        write(wr, &packet, self.config.response_timeout).await?;
        waiting.insert(sequence, (Outgoing::Submit, Instant::now()));
        if let Some(active) = &mut self.active {
            active.in_flight = Some(sequence);
        }
        Ok(())
    }

    async fn on_frame(
        &mut self,
        frame: &[u8],
        generation: u64,
        wr: &mut tokio::net::tcp::OwnedWriteHalf,
        waiting: &mut HashMap<u32, (Outgoing, Instant)>,
        // `None` while draining at shutdown: nothing more is handed to the worker.
        deliver_tx: Option<&mpsc::Sender<Deliver>>,
    ) -> Result<(), String> {
        let limit = self.config.response_timeout;
        let packet = match pdu::decode(frame) {
            Ok(p) => p,
            Err(e) => {
                let Some((command_id, code, sequence)) = pdu::peek_header(frame) else {
                    return Err(e.to_string());
                };
                tracing::warn!(command_id = format!("{command_id:#010x}"), error = %e, "undecodable PDU from the SMSC");
                if command_id & command::RESPONSE_BIT == 0 {
                    let nack = Packet {
                        status: status::RINVCMDLEN,
                        sequence,
                        body: Body::GenericNack,
                    };
                    return write(wr, &nack, limit).await;
                }
                if command_id == command::SUBMIT_SM_RESP && waiting.remove(&sequence).is_some() {
                    self.on_submit_resp(sequence, code, String::new());
                }
                return Ok(());
            }
        };
        let sequence = packet.sequence;
        match packet.body {
            Body::DeliverSm(sm) => {
                // Never wait here: the session must keep answering keep-alives. A worker that is behind (or
                // gone), or a session shutting down, makes the SMSC deliver again later.
                let handed = deliver_tx.is_some_and(|tx| {
                    tx.try_send(Deliver {
                        generation,
                        sequence,
                        sm,
                    })
                    .is_ok()
                });
                if handed {
                    self.handed.insert(sequence);
                } else {
                    let busy = Packet {
                        status: status::RX_T_APPN,
                        sequence,
                        body: Body::DeliverSmResp,
                    };
                    return write(wr, &busy, limit).await;
                }
            }
            Body::EnquireLink => {
                write(
                    wr,
                    &Packet {
                        status: 0,
                        sequence,
                        body: Body::EnquireLinkResp,
                    },
                    limit,
                )
                .await?
            }
            Body::EnquireLinkResp => {
                waiting.remove(&sequence);
            }
            Body::SubmitSmResp { message_id } => {
                if waiting.remove(&sequence).is_some() {
                    self.on_submit_resp(sequence, packet.status, message_id);
                }
            }
            Body::GenericNack => {
                if let Some((what, _)) = waiting.remove(&sequence) {
                    match what {
                        Outgoing::Submit => self.on_submit_resp(
                            sequence,
                            packet.status.max(status::RSYSERR),
                            String::new(),
                        ),
                        Outgoing::EnquireLink => return Err("the SMSC refused enquire_link".into()),
                    }
                }
            }
            Body::Unbind => {
                write(
                    wr,
                    &Packet {
                        status: 0,
                        sequence,
                        body: Body::UnbindResp,
                    },
                    limit,
                )
                .await?;
                return Err("the SMSC unbound".into());
            }
            Body::BindTransceiverResp { .. } | Body::DeliverSmResp | Body::UnbindResp => {}
            Body::Other { command_id } if command_id & command::RESPONSE_BIT != 0 => {}
            // Requests an ESME does not serve: submit_sm, bind, data_sm, query_sm, ...
            Body::Other { .. } | Body::SubmitSm(_) | Body::BindTransceiver(_) => {
                write(
                    wr,
                    &Packet {
                        status: status::RINVCMDID,
                        sequence,
                        body: Body::GenericNack,
                    },
                    limit,
                )
                .await?;
            }
        }
        Ok(())
    }

    fn on_submit_resp(&mut self, sequence: u32, code: u32, message_id: String) {
        let Some(active) = &mut self.active else {
            return;
        };
        if active.in_flight != Some(sequence) {
            return;
        }
        active.in_flight = None;
        match code {
            status::ROK => {
                active.ids.push(message_id);
                active.next += 1;
                active.throttle_delay = THROTTLE_FIRST;
                if active.next == active.job.parts.len()
                    && let Some(done) = self.active.take()
                {
                    let _ = done.job.reply.send(Ok(done.ids));
                }
            }
            status::RTHROTTLED | status::RMSGQFUL => {
                tracing::info!(retry_in = ?active.throttle_delay, status = status_name(code), "SMSC throttling; sending the part again later");
                active.not_before = Instant::now() + active.throttle_delay;
                active.throttle_delay = (active.throttle_delay * 2).min(THROTTLE_MAX);
            }
            other => {
                let reason = format!("the SMSC refused submit_sm: {}", status_name(other));
                let error = if is_temporary(other) {
                    SubmitError::Retryable(reason)
                } else {
                    SubmitError::Permanent(reason)
                };
                if let Some(done) = self.active.take() {
                    let _ = done.job.reply.send(Err(error));
                }
            }
        }
    }

    async fn unbind(
        &mut self,
        wr: &mut tokio::net::tcp::OwnedWriteHalf,
        frames: &mut FrameReader<tokio::net::tcp::OwnedReadHalf>,
    ) {
        let limit = self.config.response_timeout.min(Duration::from_secs(5));
        let sequence = self.next_sequence();
        if write(
            wr,
            &Packet {
                status: 0,
                sequence,
                body: Body::Unbind,
            },
            limit,
        )
        .await
        .is_err()
        {
            return;
        }
        let _ = tokio::time::timeout(limit, async {
            while let Ok(Some(frame)) = frames.next().await {
                if matches!(pdu::peek_header(&frame), Some((command::UNBIND_RESP, _, seq)) if seq == sequence) {
                    break;
                }
            }
        })
        .await;
        let _ = wr.shutdown().await;
        tracing::info!("SMPP session unbound");
    }
}

/// Statuses worth sending again later.
fn is_temporary(code: u32) -> bool {
    matches!(
        code,
        status::RSYSERR
            | status::RMSGQFUL
            | status::RTHROTTLED
            | status::RSUBMITFAIL
            | status::RX_T_APPN
    )
}

/// A status for logs and errors: its SMPP name and number.
pub fn status_name(code: u32) -> String {
    let name = match code {
        status::ROK => "ESME_ROK",
        status::RINVMSGLEN => "ESME_RINVMSGLEN",
        status::RINVCMDLEN => "ESME_RINVCMDLEN",
        status::RINVCMDID => "ESME_RINVCMDID",
        status::RINVBNDSTS => "ESME_RINVBNDSTS",
        status::RALYBND => "ESME_RALYBND",
        status::RSYSERR => "ESME_RSYSERR",
        status::RINVSRCADR => "ESME_RINVSRCADR",
        status::RINVDSTADR => "ESME_RINVDSTADR",
        status::RBINDFAIL => "ESME_RBINDFAIL",
        status::RINVPASWD => "ESME_RINVPASWD",
        status::RINVSYSID => "ESME_RINVSYSID",
        status::RMSGQFUL => "ESME_RMSGQFUL",
        status::RSUBMITFAIL => "ESME_RSUBMITFAIL",
        status::RTHROTTLED => "ESME_RTHROTTLED",
        status::RX_T_APPN => "ESME_RX_T_APPN",
        status::RX_P_APPN => "ESME_RX_P_APPN",
        _ => "status",
    };
    format!("{name} ({code:#04x})")
}

async fn write<W: AsyncWrite + Unpin>(
    wr: &mut W,
    packet: &Packet,
    limit: Duration,
) -> Result<(), String> {
    let bytes = pdu::encode(packet).map_err(|e| format!("encode: {e}"))?;
    tokio::time::timeout(limit, wr.write_all(&bytes))
        .await
        .map_err(|_| format!("the SMSC did not take a PDU within {limit:?}"))?
        .map_err(|e| format!("write: {e}"))
}

/// Why the stream of frames ended badly.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("read: {0}")]
    Io(#[from] std::io::Error),
    #[error("broken stream: {0}")]
    Framing(#[from] PduError),
}

/// Reads whole PDUs off a stream. `next` is cancel-safe (bytes read stay buffered), so it can sit in a
/// `select!`.
pub struct FrameReader<R> {
    rd: R,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(rd: R) -> FrameReader<R> {
        FrameReader {
            rd,
            buf: Vec::with_capacity(1024),
        }
    }

    /// The next whole frame, `None` at a clean end of stream.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>, ReadError> {
        loop {
            if let Some(len) = pdu::frame_length(&self.buf)?
                && self.buf.len() >= len
            {
                return Ok(Some(self.buf.drain(..len).collect()));
            }
            if self.rd.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ReadError::Io(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "a PDU was cut off",
                    )))
                };
            }
        }
    }
}
