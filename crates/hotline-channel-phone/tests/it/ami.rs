//! The AMI bridge against a fake Asterisk on loopback that speaks the manager protocol byte for byte (banner,
//! `Key: Value` CRLF lines, blank-line-terminated messages, `Response: Success|Error` with the action's
//! `ActionID`, `Ping`/`Pong`, events as Asterisk 20 writes them): it logs in, turns a call's events into call facts
//! on the ticket, reconnects after the peer drops the connection, and retries a refused login.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hotline_channel::ChannelAdapter;
use hotline_domain::event::CallEventKind;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::{Harness, request};

/// What the test tells the fake Asterisk to do on the current connection.
enum Cmd {
    Send(String),
    Drop,
}

/// One action as the fake Asterisk read it: its headers in order.
type Action = Vec<(String, String)>;

/// The fake Asterisk: every action it received, in order.
struct FakeAmi {
    addr: String,
    actions: Arc<Mutex<Vec<Action>>>,
    commands: mpsc::UnboundedSender<Cmd>,
}

impl FakeAmi {
    async fn start(username: &'static str, secret: &'static str) -> FakeAmi {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let actions = Arc::new(Mutex::new(Vec::new()));
        let (commands, mut rx) = mpsc::unbounded_channel();
        let seen = actions.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read);
                if write.write_all(b"Asterisk Call Manager/5.0.3\r\n").await.is_err() {
                    continue;
                }
                loop {
                    let action = tokio::select! {
                        a = read_action(&mut lines) => a,
                        cmd = rx.recv() => match cmd {
                            Some(Cmd::Send(text)) => {
                                if write.write_all(text.as_bytes()).await.is_err() { break }
                                continue;
                            }
                            Some(Cmd::Drop) | None => break,
                        },
                    };
                    let Some(action) = action else { break };
                    let get = |k: &str| action.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone()).unwrap_or_default();
                    seen.lock().expect("lock").push(action.clone());
                    let id = get("ActionID");
                    let reply = match get("Action").to_ascii_lowercase().as_str() {
                        "login" if get("Username") == username && get("Secret") == secret => format!(
                            "Response: Success\r\nActionID: {id}\r\nMessage: Authentication accepted\r\n\r\n\
                             Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 12\r\nLastReload: 12\r\nStatus: Fully Booted\r\n\r\n"
                        ),
                        "login" => {
                            let _ = write.write_all(format!("Response: Error\r\nActionID: {id}\r\nMessage: Authentication failed\r\n\r\n").as_bytes()).await;
                            break;
                        }
                        "ping" => format!("Response: Success\r\nActionID: {id}\r\nPing: Pong\r\nTimestamp: 1717000001.000000\r\n\r\n"),
                        "logoff" => {
                            let _ = write.write_all(format!("Response: Goodbye\r\nActionID: {id}\r\nMessage: Thanks for all the fish.\r\n\r\n").as_bytes()).await;
                            break;
                        }
                        _ => format!("Response: Error\r\nActionID: {id}\r\nMessage: Invalid/unknown command\r\n\r\n"),
                    };
                    if write.write_all(reply.as_bytes()).await.is_err() {
                        break;
                    }
                }
            }
        });
        FakeAmi { addr, actions, commands }
    }

    fn actions(&self, name: &str) -> usize {
        self.actions.lock().expect("lock").iter().filter(|a| a.iter().any(|(k, v)| k == "Action" && v.eq_ignore_ascii_case(name))).count()
    }

    fn send(&self, text: String) {
        let _ = self.commands.send(Cmd::Send(text));
    }
}

/// Reads one action (header lines up to the blank line); None when the client closed.
async fn read_action(lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<Action> {
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if headers.is_empty() {
                continue;
            }
            return Some(headers);
        }
        let (k, v) = line.split_once(": ").unwrap_or((line, ""));
        headers.push((k.to_owned(), v.to_owned()));
    }
}

/// A channel event as Asterisk 20 writes it (with `timestampevents = yes`).
fn channel_event(event: &str, ts: &str, channel: &str, uniqueid: &str, linkedid: &str, extra: &str) -> String {
    format!(
        "Event: {event}\r\nPrivilege: call,all\r\nTimestamp: {ts}\r\nChannel: {channel}\r\nChannelState: 6\r\n\
         ChannelStateDesc: Up\r\nCallerIDNum: 0912345678\r\nCallerIDName: <unknown>\r\nConnectedLineNum: <unknown>\r\n\
         ConnectedLineName: <unknown>\r\nLanguage: vi\r\nAccountCode: \r\nContext: from-trunk\r\nExten: 1022\r\n\
         Priority: 1\r\nUniqueid: {uniqueid}\r\nLinkedid: {linkedid}\r\n{extra}\r\n"
    )
}

async fn wait_until(limit: Duration, mut done: impl AsyncFnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn ami_config(addr: &str, secret: &str) -> serde_json::Value {
    json!({"ami": {"addr": addr, "username": "hotline", "secret": secret, "ping_secs": "1", "timeout_secs": "2", "reconnect_max_secs": "1"}})
}

#[tokio::test]
async fn the_bridge_logs_in_records_a_call_and_reconnects_after_the_peer_drops() {
    let h = Harness::start().await;
    let ami = FakeAmi::start("hotline", "s3cret-ami").await;
    let config = ami_config(&ami.addr, "s3cret-ami");
    let channel = Arc::new(h.channel(&config));
    let (ctx, stop) = h.context(config.clone());
    let router = channel.http_routes(&ctx).expect("routes");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let http = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let running = tokio::spawn(channel.clone().run(ctx));

    assert!(wait_until(Duration::from_secs(10), async || ami.actions("Login") == 1).await, "the bridge logged in");
    let call = "1717000000.1";
    ami.send(channel_event("Newchannel", "1717000000.000000", "PJSIP/viettel-00000001", call, call, ""));
    ami.send(channel_event("Newchannel", "1717000002.000000", "PJSIP/101-00000002", "1717000000.2", call, ""));
    ami.send(channel_event(
        "DialEnd",
        "1717000005.000000",
        "PJSIP/viettel-00000001",
        call,
        call,
        "DestChannel: PJSIP/101-00000002\r\nDestChannelState: 6\r\nDestChannelStateDesc: Up\r\nDestCallerIDNum: 101\r\n\
         DestCallerIDName: Lan\r\nDestUniqueid: 1717000000.2\r\nDestLinkedid: 1717000000.1\r\nDialStatus: ANSWER\r\n",
    ));
    // The facts wait for their petition in the channel's state.
    let ledger = channel.ledger(&h.context(config.clone()).0);
    assert!(wait_until(Duration::from_secs(10), async || ledger.pending(call).await.expect("pending").len() == 2).await, "started and answered kept");

    // The peer drops the connection; the bridge logs in again and keeps following the call.
    let _ = ami.commands.send(Cmd::Drop);
    assert!(wait_until(Duration::from_secs(10), async || ami.actions("Login") == 2).await, "the bridge reconnected");
    assert!(wait_until(Duration::from_secs(5), async || ami.actions("Ping") >= 1).await, "the session is checked with Ping");

    let headers = vec![("Authorization".into(), format!("Bearer {}", h.operator)), ("Content-Type".into(), "application/json".into())];
    let body = json!({"call_id": call, "caller_number": "0912345678", "agent": "101", "summary": "Đèn đường tắt cả tuyến ĐT743"});
    let filed = request("POST", &http, "/v1/phone/intake", headers, body.to_string().into_bytes()).await;
    assert_eq!(filed.status, 202, "{}", filed.text());

    ami.send(channel_event("Hangup", "1717000090.000000", "PJSIP/101-00000002", "1717000000.2", call, "Cause: 16\r\nCause-txt: Normal Clearing\r\n"));
    ami.send(channel_event("Hangup", "1717000095.000000", "PJSIP/viettel-00000001", call, call, "Cause: 16\r\nCause-txt: Normal Clearing\r\n"));
    let ticket = h.intake.ticket_id_for("phone", call);
    assert!(
        wait_until(Duration::from_secs(10), async || h.calls(ticket).await.iter().any(|c| c.kind == CallEventKind::Ended)).await,
        "the end reached the ticket"
    );
    let from_ami: Vec<_> = h.calls(ticket).await.into_iter().filter(|c| c.source == "ami").collect();
    assert_eq!(from_ami.iter().map(|c| c.kind).collect::<Vec<_>>(), [CallEventKind::Started, CallEventKind::Answered, CallEventKind::Ended]);
    assert_eq!(from_ami[1].agent.as_deref(), Some("101"));
    assert_eq!((from_ami[2].duration_secs, from_ami[2].talk_secs, from_ami[2].cause.as_deref()), (Some(95), Some(90), Some("Normal Clearing")));

    stop.trigger();
    tokio::time::timeout(Duration::from_secs(5), running).await.expect("stops on shutdown").expect("join").expect("run");
    assert!(wait_until(Duration::from_secs(2), async || ami.actions("Logoff") >= 1).await, "logged off on shutdown");
}

#[tokio::test]
async fn a_refused_login_is_retried_and_records_nothing() {
    let h = Harness::start().await;
    let ami = FakeAmi::start("hotline", "the-right-secret").await;
    let config = ami_config(&ami.addr, "a-wrong-secret");
    let channel = Arc::new(h.channel(&config));
    let (ctx, stop) = h.context(config);
    let running = tokio::spawn(channel.run(ctx));
    assert!(wait_until(Duration::from_secs(10), async || ami.actions("Login") >= 2).await, "tried again after the refusal");
    assert_eq!(ami.actions("Ping"), 0, "never got past the login");
    stop.trigger();
    tokio::time::timeout(Duration::from_secs(5), running).await.expect("stops").expect("join").expect("run");
}
