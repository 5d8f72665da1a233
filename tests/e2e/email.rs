//! The e-mail channel through the real binary: Python's smtplib, as the citizen's mail server, sends mail to the
//! SMTP listener of `hotline up` (and of `hotline serve email`); aiosmtpd, as the province's relay, receives our
//! answers and questions. What counts is what landed in the system: the ticket through the API, the events in the
//! system's own log (read from its NATS), the files in `<data dir>/blobs`, and the mails the relay received, read
//! back with Python's `email` package as a mail program would.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hotline_domain::{Envelope, TicketEvent};
use hotline_store::{EventStore, JetStreamConfig, JetStreamStore, Position};
use hotline_testkit::{Response, System};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::binary;

/// The hotline's address; the systems here accept mail for it only.
pub(crate) const HOTLINE: &str = "tiepnhan@1022.tinh.gov.vn";
const DOMAIN: &str = "1022.tinh.gov.vn";
/// The authserv-id of the province's MTA, whose `Authentication-Results` header the systems here trust.
const MX: &str = "mx.1022.tinh.gov.vn";

/// The header the province's MTA adds to a mail from `address` whose DMARC check passed.
fn dmarc_pass(address: &str) -> String {
    let domain = address.rsplit_once('@').map_or(address, |(_, d)| d).to_lowercase();
    format!("{MX}; dmarc=pass (p=none dis=none) header.from={domain}")
}

/// The citizen's mail server: builds each mail of the plan (stdin, JSON) with Python's `email` package, as mail
/// programs write them (RFC 2047 subject and display name, UTF-8 text, base64 attachments with RFC 2231 names),
/// and sends them all over one SMTP connection with smtplib. Prints, per mail, the replies to MAIL, RCPT, DATA and
/// a NOOP after it (the session must still be usable), the mail's size, its Subject line as sent, and the SHA-256
/// of every file it carried. A mail is `{from, name?, subject, text, message_id, in_reply_to?, references?,
/// auth_results?, cte?, attachments?: [{name, type, size}], declare_size?, save?: path}` (`auth_results`: the
/// value of an `Authentication-Results` header, or a list of them top first, as the province's MTA adds them) or `{raw_file: path, from}` (the very
/// bytes of an earlier mail, as a mail server sends them again after a lost reply).
const CLIENT: &str = r#"
import hashlib, json, os, smtplib, sys
import email.policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate

host, port, rcpt = sys.argv[1], int(sys.argv[2]), sys.argv[3]
plan = json.load(sys.stdin)

def reply(pair):
    code, text = pair
    return {"code": code, "text": text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)}

def build(m):
    if "raw_file" in m:
        with open(m["raw_file"], "rb") as f:
            return f.read(), []
    msg = EmailMessage(policy=email.policy.SMTP)
    ar = m.get("auth_results") or []
    for value in ([ar] if isinstance(ar, str) else ar):
        msg["Authentication-Results"] = value
    msg["From"] = Address(m.get("name", ""), addr_spec=m["from"])
    msg["To"] = rcpt
    msg["Subject"] = m["subject"]
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = "<%s>" % m["message_id"]
    if m.get("in_reply_to"):
        msg["In-Reply-To"] = "<%s>" % m["in_reply_to"]
    if m.get("references"):
        msg["References"] = " ".join("<%s>" % r for r in m["references"])
    msg.set_content(m["text"], cte=m.get("cte"))
    files = []
    for a in m.get("attachments", []):
        data = os.urandom(a["size"])
        maintype, subtype = a["type"].split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=a["name"])
        files.append({"name": a["name"], "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    raw = msg.as_bytes()
    if m.get("save"):
        with open(m["save"], "wb") as f:
            f.write(raw)
    return raw, files

def subject_line(raw):
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace")
    lines = head.split("\r\n")
    for i, line in enumerate(lines):
        if line.lower().startswith("subject:"):
            out = [line]
            for more in lines[i + 1:]:
                if not more[:1] in (" ", "\t"):
                    break
                out.append(more)
            return "\r\n".join(out)
    return None

out = {"mails": []}
with smtplib.SMTP(host, port, timeout=120) as s:
    out["ehlo"] = reply(s.ehlo("mx.gmail.example"))
    for m in plan["mails"]:
        raw, files = build(m)
        r = {"bytes": len(raw), "files": files, "subject_line": subject_line(raw)}
        options = []
        if m.get("declare_size"):
            options.append("SIZE=%d" % len(raw))
        if not raw.isascii():
            options.append("BODY=8BITMIME")
        r["mail"] = reply(s.mail(m["from"], options))
        if r["mail"]["code"] == 250:
            r["rcpt"] = reply(s.rcpt(rcpt))
        if r["mail"]["code"] == 250 and r["rcpt"]["code"] == 250:
            try:
                # smtplib dot-stuffs the body, as every mail server does.
                r["data"] = reply(s.data(raw))
            except smtplib.SMTPDataError as e:
                r["data"] = {"code": e.smtp_code, "text": e.smtp_error.decode("utf-8", "replace")}
        else:
            s.rset()
        r["noop"] = reply(s.noop())
        out["mails"].append(r)
    out["quit"] = reply(s.quit())
json.dump(out, sys.stdout)
"#;

/// The citizen's mail program: reads the mails the relay received (paths in argv) with Python's `email` package
/// and prints what a reader sees: decoded subject and addresses, the ids that thread it, the plain text.
const READER: &str = r#"
import email, email.policy, json, sys

out = []
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        raw = f.read()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    body = msg.get_body(("plain",))
    sender = msg["From"].addresses[0]
    head = raw.split(b"\r\n\r\n", 1)[0]
    out.append({
        "message_id": str(msg["Message-ID"] or ""),
        "in_reply_to": str(msg["In-Reply-To"] or ""),
        "references": str(msg["References"] or ""),
        "subject": str(msg["Subject"]),
        "head_is_ascii": head.isascii(),
        "from": sender.addr_spec,
        "from_name": sender.display_name,
        "to": [a.addr_spec for a in msg["To"].addresses],
        "content_type": body.get_content_type(),
        "charset": body.get_content_charset(),
        "text": body.get_content(),
    })
json.dump(out, sys.stdout)
"#;

/// A system whose answers go to `relay` (aiosmtpd) and which takes mail for [`HOTLINE`] only; settings come from
/// the environment, as an operator would give them.
fn start_system(relay: Option<&str>) -> System {
    start_system_with(relay, &[])
}

/// [`start_system`] with more settings.
pub(crate) fn start_system_with(relay: Option<&str>, more: &[(&str, &str)]) -> System {
    let relay = relay.map_or("smtp://127.0.0.1:1".to_owned(), |r| format!("smtp://{r}"));
    let mut env = vec![
        ("HOTLINE_EMAIL__RECIPIENTS", HOTLINE),
        ("HOTLINE_EMAIL__FROM", "1022 Tỉnh Bình Dương <tiepnhan@1022.tinh.gov.vn>"),
        ("HOTLINE_EMAIL__DOMAIN", DOMAIN),
        ("HOTLINE_EMAIL__RELAY", &relay),
        ("HOTLINE_EMAIL__RELAY_TIMEOUT_SECS", "5"),
    ];
    env.extend_from_slice(more);
    System::start(binary(), &env)
}

/// Runs a Python script with JSON on stdin; returns its JSON output.
fn python(script: &str, args: &[&str], stdin: &Value) -> Value {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (the test peers are Python's smtplib and email packages)");
    child.stdin.take().expect("stdin").write_all(stdin.to_string().as_bytes()).expect("plan written");
    let out = child.wait_with_output().expect("python output");
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("python printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// Sends `mails` (see [`CLIENT`]) to the SMTP listener at `smtp` over one connection.
fn send(smtp: &str, mails: Value) -> Value {
    let (host, port) = smtp.rsplit_once(':').expect("host:port");
    python(CLIENT, &[host, port, HOTLINE], &json!({ "mails": mails }))
}

/// Sends one mail; asserts it was stored (250) and returns the ticket reference from the reply, with the
/// client's report of the mail.
pub(crate) fn send_one(smtp: &str, mail: Value) -> (String, Value) {
    let out = send(smtp, json!([mail]));
    let m = out["mails"][0].clone();
    assert_eq!(m["data"]["code"], 250, "{out}");
    (stored_as(&m), m)
}

/// The reference in `250 2.0.0 Stored as <REF>`.
fn stored_as(mail: &Value) -> String {
    let text = mail["data"]["text"].as_str().unwrap_or_default();
    text.strip_prefix("2.0.0 Stored as ").unwrap_or_else(|| panic!("not stored: {mail}")).trim().to_owned()
}

/// The system's own log, read from its NATS like any outside subscriber would.
struct Log {
    runtime: tokio::runtime::Runtime,
    store: JetStreamStore,
}

impl Log {
    fn open(system: &System) -> Log {
        let url = std::fs::read_to_string(system.data_dir.join("nats.url")).expect("<data dir>/nats.url");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let store = runtime
            .block_on(JetStreamStore::connect(url.trim(), JetStreamConfig::default()))
            .expect("connects to the system's NATS");
        Log { runtime, store }
    }

    fn events(&self, ticket: Uuid) -> Vec<Envelope> {
        self.runtime.block_on(self.store.load(ticket)).expect("load").events
    }

    /// Every event in the log, in order.
    fn all(&self) -> Vec<Envelope> {
        self.runtime.block_on(async {
            let last = self.store.last_position().await.expect("position");
            let mut events = Vec::new();
            if last == 0 {
                return events;
            }
            let mut commits = self.store.subscribe(Position::Start).await.expect("subscribe");
            while let Some(commit) = tokio::time::timeout(Duration::from_secs(10), commits.next()).await.expect("commits come") {
                let commit = commit.expect("commit");
                events.extend(commit.events);
                if commit.position >= last {
                    break;
                }
            }
            events
        })
    }

    /// Every petition in the log: (ticket, petition).
    fn petitions(&self) -> Vec<(Uuid, hotline_domain::event::PetitionReceived)> {
        self.all()
            .into_iter()
            .filter_map(|e| match e.event {
                TicketEvent::PetitionReceived(p) => Some((e.ticket_id, p)),
                _ => None,
            })
            .collect()
    }
}

/// aiosmtpd (crates/hotline-channel-email/tests/peers/smtp_sink.py) standing in for the province's relay: every
/// mail it accepts lands in its dir. Stopped on drop.
struct Relay {
    addr: String,
    dir: tempfile::TempDir,
    child: Child,
}

impl Relay {
    fn start() -> Relay {
        let pythonpath = std::env::var("HOTLINE_PYTHONPATH").unwrap_or_else(|_| {
            panic!(
                "HOTLINE_PYTHONPATH is not set: these tests need aiosmtpd as the SMTP relay. Run \
                 `export HOTLINE_PYTHONPATH=$(bash scripts/lib/python-tools.sh)` (scripts/test does it)"
            )
        });
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hotline-channel-email/tests/peers/smtp_sink.py");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(dir.path())
            .env("PYTHONPATH", &pythonpath)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
        assert_eq!(line.trim(), "ready", "aiosmtpd did not start (PYTHONPATH={pythonpath}; run scripts/lib/python-tools.sh)");
        Relay { addr: format!("127.0.0.1:{port}"), dir, child }
    }

    /// The received mails' files, oldest first.
    fn files(&self) -> Vec<PathBuf> {
        let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(self.dir.path())
            .expect("dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .filter_map(|p| p.file_stem()?.to_str()?.parse().ok().map(|n| (n, p.clone())))
            .collect();
        found.sort();
        found.into_iter().map(|(_, p)| p).collect()
    }

    /// Waits until `n` mails arrived; returns them as the reader sees them, with their envelopes.
    fn wait_for(&self, n: usize, limit: Duration) -> Vec<(Value, Value)> {
        let start = Instant::now();
        while self.files().len() < n {
            assert!(start.elapsed() < limit, "the relay got {} mails, not {n}, within {limit:?}", self.files().len());
            std::thread::sleep(Duration::from_millis(50));
        }
        let files = self.files();
        let paths: Vec<&str> = files.iter().map(|p| p.to_str().expect("utf-8 path")).collect();
        let read = python(READER, &paths, &json!(null));
        let envelopes = files.iter().map(|p| {
            serde_json::from_slice::<Value>(&std::fs::read(p.with_extension("json")).expect("envelope")).expect("json")
        });
        read.as_array().expect("list").iter().cloned().zip(envelopes).collect()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn token(system: &System, role: &str, agency: Option<&str>) -> String {
    let mut body = json!({"role": role, "name": format!("{role} {}", agency.unwrap_or(""))});
    if let Some(a) = agency {
        body["agency"] = json!(a);
    }
    let auth = format!("Bearer {}", system.admin_token);
    let r = system.request("POST", "/v1/admin/tokens", &[("Authorization", &auth), ("Content-Type", "application/json")], body.to_string().as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["token"].as_str().expect("token").to_owned()
}

fn act(system: &System, token: &str, ticket: &str, command: &str, body: Value) -> Response {
    let auth = format!("Bearer {token}");
    let r = system.request(
        "POST",
        &format!("/v1/tickets/{ticket}/{command}"),
        &[("Authorization", &auth), ("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{command}: {}", r.text());
    r
}

/// The ticket's timeline once `done` holds for its entries.
fn wait_timeline(system: &System, ticket: &str, limit: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let r = system.get(&format!("/v1/tickets/{ticket}/timeline"));
        if r.status == 200 {
            let entries = r.json()["entries"].as_array().cloned().unwrap_or_default();
            if done(&entries) {
                return entries;
            }
        }
        assert!(start.elapsed() < limit, "timeline of {ticket} not there after {limit:?}: {}", r.text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn types(entries: &[Value]) -> Vec<&str> {
    entries.iter().map(|e| e["type"].as_str().unwrap_or_default()).collect()
}

fn count(entries: &[Value], kind: &str) -> usize {
    entries.iter().filter(|e| e["type"] == kind).count()
}

/// The ids in a Message-ID / In-Reply-To / References header, without brackets.
fn ids(header: &Value) -> Vec<String> {
    header.as_str().unwrap_or_default().split_whitespace().map(|id| id.trim_matches(['<', '>']).to_owned()).collect()
}

/// Files in `<data dir>/blobs` (name = SHA-256), and whether a half-written one was left behind.
fn blobs(system: &System) -> (BTreeSet<String>, bool) {
    let mut names = BTreeSet::new();
    let mut partial = false;
    let Ok(dirs) = std::fs::read_dir(system.data_dir.join("blobs")) else { return (names, false) };
    for dir in dirs.flatten() {
        for file in std::fs::read_dir(dir.path()).into_iter().flatten().flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            partial |= name.ends_with(".part");
            names.insert(name);
        }
    }
    (names, partial)
}

#[test]
fn a_vietnamese_mail_with_an_attachment_becomes_one_routed_ticket_however_often_it_is_sent() {
    let system = start_system(None);
    let log = Log::open(&system);
    let saved = tempfile::tempdir().expect("tmp");
    let eml = saved.path().join("first.eml");
    let citizen = "Le.ThiC@Gmail.com";
    let subject = "Nước máy có mùi lạ ở Dĩ An";
    let text = "Kính gửi Đường dây nóng 1022,\n\nNước máy có mùi lạ và đục ở phường Dĩ An mấy hôm nay.\nĐề nghị kiểm tra giúp.\n\nLê Thị C";
    let (reference, sent) = send_one(
        &system.smtp_addr,
        json!({
            "from": citizen, "name": "Lê Thị C", "subject": subject, "text": text,
            "message_id": "CA+vn-water-1@mail.gmail.com",
            "attachments": [{"name": "Ảnh nước đục.jpg", "type": "image/jpeg", "size": 48_000}],
            "save": eml,
        }),
    );
    // The subject really went as RFC 2047 encoded-words, the body as 8-bit UTF-8.
    let subject_line = sent["subject_line"].as_str().expect("subject line");
    assert!(subject_line.is_ascii() && subject_line.to_ascii_lowercase().contains("=?utf-8?"), "{subject_line}");
    assert!(sent["mail"]["code"] == 250, "{sent}");

    // The ticket, through the API: subject, text, channel, routed to the water company of Dĩ An.
    let t = system.wait_for_ticket(&reference, Duration::from_secs(10), |t| t["status"] == "routed");
    assert_eq!((t["channel"].as_str(), t["subject"].as_str()), (Some("email"), Some(subject)), "{t}");
    assert_eq!(t["text"], text);
    assert_eq!((t["agency"].as_str(), t["area"].as_str()), (Some("water"), Some("dian")), "{t}");
    let ticket: Uuid = t["ticket_id"].as_str().expect("id").parse().expect("uuid");

    // The petition in the log: the citizen's address (lower case) and name, the Message-ID, the file.
    let events = log.events(ticket);
    let TicketEvent::PetitionReceived(p) = &events[0].event else { panic!("{:?}", events[0].event) };
    assert_eq!(p.channel_ref.as_deref(), Some("CA+vn-water-1@mail.gmail.com"));
    let who = p.citizen.as_ref().expect("citizen");
    assert_eq!((who.email.as_deref(), who.name.as_deref()), (Some("le.thic@gmail.com"), Some("Lê Thị C")));
    let file = &sent["files"][0];
    assert_eq!(p.attachments.len(), 1, "{:?}", p.attachments);
    let a = &p.attachments[0];
    assert_eq!(a.name, "Ảnh nước đục.jpg");
    assert_eq!(a.media_type.as_deref(), Some("image/jpeg"));
    assert_eq!(a.sha256.as_deref(), file["sha256"].as_str());
    assert_eq!(a.size, file["size"].as_u64());
    let sha = a.sha256.clone().expect("sha256");
    let kept = std::fs::read(system.data_dir.join("blobs").join(&sha[..2]).join(&sha)).expect("the file is in <data dir>/blobs");
    assert_eq!(Some(kept.len() as u64), a.size);
    // Staff can fetch it through the API.
    let r = system.get(&format!("/v1/attachments/{sha}"));
    assert_eq!((r.status, r.body.len()), (200, kept.len()));

    // The mail server did not hear our 250 and sends the very same bytes again, twice in one session: still one
    // ticket, and each time the same answer.
    let again = send(&system.smtp_addr, json!([{"from": citizen, "raw_file": eml}, {"from": citizen, "raw_file": eml}]));
    for m in again["mails"].as_array().expect("mails") {
        assert_eq!(stored_as(m), reference, "{again}");
    }
    let petitions = log.petitions();
    assert_eq!(petitions.len(), 1, "{petitions:?}");
    assert_eq!(log.events(ticket).iter().filter(|e| matches!(e.event, TicketEvent::PetitionReceived(_))).count(), 1);
    let entries = wait_timeline(&system, &reference, Duration::from_secs(5), |e| count(e, "PetitionRouted") == 1);
    assert_eq!(types(&entries), ["PetitionReceived", "PetitionCategorized", "PetitionRouted"]);
    assert_eq!(entries[0]["actor"]["kind"], "channel");
}

#[test]
fn answers_and_questions_go_back_by_mail_and_the_citizens_replies_come_back_to_the_ticket() {
    let relay = Relay::start();
    // Replies thread only when the province's MTA vouches for their sender.
    let system = start_system_with(Some(&relay.addr), &[("HOTLINE_EMAIL__AUTHSERV_ID", MX)]);
    let log = Log::open(&system);
    let dot = token(&system, "agency", Some("dot"));
    let citizen = "tran.van.b@gmail.com";
    let first_id = "CAF=traffic-1@mail.gmail.com";
    let subject = "Đèn giao thông hỏng";
    let (reference, _) = send_one(
        &system.smtp_addr,
        json!({
            "from": citizen, "name": "Trần Văn B", "subject": subject, "message_id": first_id,
            "text": "Đèn tín hiệu giao thông ở ngã tư Sở Sao bị hỏng từ sáng, xe cộ đi lại rất nguy hiểm.",
        }),
    );
    let t = system.wait_for_ticket(&reference, Duration::from_secs(10), |t| t["status"] == "routed" && t["agency"] == "dot");
    let id = t["ticket_id"].as_str().expect("id").to_owned();
    let ticket: Uuid = id.parse().expect("uuid");
    let tag = format!("[#{reference}]");

    // The agency asks a question: it reaches the citizen as a reply to their mail.
    act(&system, &dot, &id, "acknowledge", json!({}));
    let question = "Đèn hỏng ở hướng nào của ngã tư (phía đường Yersin hay đại lộ Bình Dương)?";
    act(&system, &dot, &id, "request-info", json!({ "question": question }));
    let entries = wait_timeline(&system, &id, Duration::from_secs(15), |e| count(e, "ReplySent") == 1);
    let asked = entries.iter().find(|e| e["type"] == "InformationRequested").expect("asked")["event_id"].as_str().expect("id").to_owned();
    let mails = relay.wait_for(1, Duration::from_secs(10));
    let (mail, envelope) = &mails[0];
    let question_id = format!("hotline.{id}.{asked}@{DOMAIN}");
    assert_eq!(ids(&mail["message_id"]), [question_id.as_str()], "{mail}");
    assert_eq!(ids(&mail["in_reply_to"]), [first_id], "{mail}");
    assert_eq!(mail["subject"], format!("Re: {subject} {tag}"), "{mail}");
    assert_eq!(mail["head_is_ascii"], true, "the subject is RFC 2047 encoded: {mail}");
    assert!(mail["text"].as_str().is_some_and(|t| t.contains(question) && t.contains(&reference)), "{mail}");
    assert_eq!((mail["from"].as_str(), mail["to"].clone()), (Some(HOTLINE), json!([citizen])), "{mail}");
    assert_eq!(*envelope, json!({"mail_from": HOTLINE, "rcpt_tos": [citizen]}));
    assert_eq!(system.get(&format!("/v1/tickets/{id}")).json()["status"], "waiting_for_citizen");

    // The citizen answers the question mail, quoting it as mail programs do: a CitizenReplied, the ticket is back
    // with the agency.
    let reply_id = "CAF=traffic-2@mail.gmail.com";
    let (r, _) = send_one(
        &system.smtp_addr,
        json!({
            "from": citizen, "name": "Trần Văn B", "subject": format!("Re: {subject} {tag}"), "message_id": reply_id,
            "in_reply_to": question_id, "references": [first_id, question_id], "cte": "quoted-printable",
            "auth_results": dmarc_pass(citizen),
            "text": format!("Phía đường Yersin ạ.\n\nVào Th 2, 1022 Tỉnh Bình Dương <{HOTLINE}> đã viết:\n> {question}\n"),
        }),
    );
    assert_eq!(r, reference);
    let entries = wait_timeline(&system, &id, Duration::from_secs(10), |e| count(e, "CitizenReplied") == 1);
    assert_eq!(entries.last().expect("entry")["actor"]["kind"], "channel");
    assert_eq!(system.get(&format!("/v1/tickets/{id}")).json()["status"], "acknowledged");
    let replied = log.events(ticket).into_iter().find_map(|e| match e.event {
        TicketEvent::CitizenReplied(r) => Some(r),
        _ => None,
    });
    let replied = replied.expect("CitizenReplied in the log");
    assert_eq!((replied.text.as_str(), replied.channel_ref.as_deref()), ("Phía đường Yersin ạ.", Some(reply_id)));

    // The agency answers: the answer mail threads under the citizen's last mail, our question in between.
    let answer = "Sở GTVT đã thay bộ điều khiển đèn tín hiệu ngã tư Sở Sao lúc 15 giờ.\nTrân trọng.";
    act(&system, &dot, &id, "answer", json!({ "text": answer }));
    let entries = wait_timeline(&system, &id, Duration::from_secs(15), |e| count(e, "ReplySent") == 2);
    let answered = entries.iter().find(|e| e["type"] == "PetitionAnswered").expect("answered")["event_id"].as_str().expect("id").to_owned();
    let mails = relay.wait_for(2, Duration::from_secs(10));
    let (mail, envelope) = &mails[1];
    let answer_id = format!("hotline.{id}.{answered}@{DOMAIN}");
    assert_eq!(ids(&mail["message_id"]), [answer_id.as_str()], "{mail}");
    assert_eq!(ids(&mail["in_reply_to"]), [reply_id], "the citizen's last mail: {mail}");
    assert_eq!(ids(&mail["references"]), [first_id, question_id.as_str(), reply_id], "{mail}");
    assert_eq!(mail["subject"], format!("Re: {subject} {tag}"), "{mail}");
    assert_eq!((mail["content_type"].as_str(), mail["charset"].as_str()), (Some("text/plain"), Some("utf-8")));
    let body = mail["text"].as_str().expect("text").replace("\r\n", "\n");
    assert!(body.starts_with(answer) && body.contains(&reference), "{body}");
    assert_eq!(envelope["rcpt_tos"], json!([citizen]));
    // The ReplySent entries name what was delivered, by our Message-IDs.
    let sent: Vec<_> = log
        .events(ticket)
        .into_iter()
        .filter_map(|e| match e.event {
            TicketEvent::ReplySent(s) => Some((s.channel, s.of_event.to_string(), s.channel_message_id)),
            _ => None,
        })
        .collect();
    assert_eq!(
        sent,
        [
            ("email".to_owned(), asked.clone(), Some(question_id.clone())),
            ("email".to_owned(), answered.clone(), Some(answer_id.clone())),
        ]
    );

    // The citizen writes back to the answer: nobody waits for them now, so it joins the ticket as CitizenWrote.
    let thanks_id = "CAF=traffic-3@mail.gmail.com";
    let (r, _) = send_one(
        &system.smtp_addr,
        json!({
            "from": citizen.to_uppercase(), "subject": format!("Re: {subject} {tag}"), "message_id": thanks_id,
            "in_reply_to": answer_id, "references": [first_id, answer_id],
            "auth_results": format!("{MX}; dkim=pass header.d=GMAIL.com header.b=Ab/c+d="),
            "text": format!("Đèn đã chạy lại, cảm ơn.\n\nOn Mon, 1022 <{HOTLINE}> wrote:\n> {}\n", answer.lines().next().expect("line")),
        }),
    );
    assert_eq!(r, reference, "the same address in another case is the same citizen");
    wait_timeline(&system, &id, Duration::from_secs(10), |e| count(e, "CitizenWrote") == 1);
    let wrote = log.events(ticket).into_iter().find_map(|e| match e.event {
        TicketEvent::CitizenWrote(w) => Some(w),
        _ => None,
    });
    let wrote = wrote.expect("CitizenWrote in the log");
    assert_eq!((wrote.text.as_str(), wrote.channel.as_str(), wrote.channel_ref.as_deref()), ("Đèn đã chạy lại, cảm ơn.", "email", Some(thanks_id)));
    assert_eq!(system.get(&format!("/v1/tickets/{id}")).json()["status"], "answered");

    // Someone else, replying to the same answer (a forwarded mail): their own new ticket.
    let other_id = "neighbour-1@yahoo.com.vn";
    let (other, _) = send_one(
        &system.smtp_addr,
        json!({
            "from": "hang.nguyen@yahoo.com.vn", "subject": format!("Re: {subject} {tag}"), "message_id": other_id,
            "in_reply_to": answer_id, "references": [first_id, answer_id],
            "auth_results": dmarc_pass("hang.nguyen@yahoo.com.vn"),
            "text": "Đèn ở ngã tư Sở Sao hôm nay lại tắt.",
        }),
    );
    assert_ne!(other, reference);
    let t = system.wait_for_ticket(&other, Duration::from_secs(10), |t| t["status"] != "received");
    assert_ne!(t["ticket_id"], id.as_str());
    let petitions = log.petitions();
    let refs: Vec<(Uuid, Option<&str>, Option<&str>)> = petitions
        .iter()
        .map(|(t, p)| (*t, p.channel_ref.as_deref(), p.citizen.as_ref().and_then(|c| c.email.as_deref())))
        .collect();
    let other_ticket: Uuid = t["ticket_id"].as_str().expect("id").parse().expect("uuid");
    assert_eq!(refs, [(ticket, Some(first_id), Some(citizen)), (other_ticket, Some(other_id), Some("hang.nguyen@yahoo.com.vn"))]);
    // Nothing of theirs on the first ticket; and no more mail went out.
    let entries = wait_timeline(&system, &id, Duration::from_secs(5), |_| true);
    assert_eq!(
        types(&entries),
        [
            "PetitionReceived",
            "PetitionCategorized",
            "PetitionRouted",
            "PetitionAcknowledged",
            "InformationRequested",
            "ReplySent",
            "CitizenReplied",
            "PetitionAnswered",
            "ReplySent",
            "CitizenWrote",
        ]
    );
    assert_eq!(relay.files().len(), 2);
}

#[test]
fn a_reply_spoofing_the_citizens_address_opens_a_new_ticket() {
    let system = start_system_with(None, &[("HOTLINE_EMAIL__AUTHSERV_ID", MX)]);
    let log = Log::open(&system);
    let citizen = "vo.thi.e@gmail.com";
    let first_id = "CAE=spoof-target-1@mail.gmail.com";
    let (reference, _) = send_one(
        &system.smtp_addr,
        json!({
            "from": citizen, "subject": "Rác tồn đọng", "message_id": first_id,
            "text": "Rác tồn đọng ở chợ Thủ Dầu Một ba ngày chưa được thu gom.",
        }),
    );
    let t = system.wait_for_ticket(&reference, Duration::from_secs(10), |t| t["status"] == "routed");
    let id = t["ticket_id"].as_str().expect("id").to_owned();
    let ticket: Uuid = id.parse().expect("uuid");
    // One of our Message-IDs for this ticket, as it would stand in our answer's header.
    let ours = format!("hotline.{id}.{}@{DOMAIN}", Uuid::now_v7());
    // Someone else's mail server sends mail "From" the citizen, threaded every way there is: no verdict at all, a
    // verdict of another server's (the sender wrote it), and our MTA's fail with a look-alike pass written below.
    let spoof = |message_id: &str, auth_results: Option<Value>| {
        json!({
            "from": citizen, "subject": format!("Re: Rác tồn đọng [#{reference}]"), "message_id": message_id,
            "in_reply_to": ours, "references": [first_id, ours], "auth_results": auth_results,
            "text": "Tôi rút lại phản ánh, rác đã được thu gom.",
        })
    };
    let out = send(
        &system.smtp_addr,
        json!([
            spoof("spoof-1@evil.example", None),
            spoof("spoof-2@evil.example", Some(json!("mx.google.com; dmarc=pass header.from=gmail.com"))),
            spoof("spoof-3@evil.example", Some(json!([format!("{MX}; dmarc=fail header.from=gmail.com"), dmarc_pass(citizen)]))),
        ]),
    );
    let mut others = BTreeSet::new();
    for m in out["mails"].as_array().expect("mails") {
        let r = stored_as(m);
        assert_ne!(r, reference, "a spoofed reply joined the citizen's ticket: {m}");
        others.insert(r);
    }
    assert_eq!(others.len(), 3, "each opened a ticket of its own");
    // The citizen's ticket has nothing of them.
    let entries = wait_timeline(&system, &id, Duration::from_secs(5), |_| true);
    assert_eq!((count(&entries, "CitizenWrote"), count(&entries, "CitizenReplied")), (0, 0), "{entries:?}");
    assert_eq!(log.events(ticket).iter().filter(|e| matches!(e.event, TicketEvent::CitizenWrote(_))).count(), 0);
    assert_eq!(log.petitions().len(), 4);
    // The citizen's own reply, vouched for by our MTA, does join.
    let (r, _) = send_one(
        &system.smtp_addr,
        json!({
            "from": citizen, "subject": format!("Re: Rác tồn đọng [#{reference}]"), "message_id": "CAE=spoof-target-2@mail.gmail.com",
            "in_reply_to": ours, "references": [first_id, ours], "auth_results": dmarc_pass(citizen),
            "text": "Hôm nay vẫn chưa thu gom.",
        }),
    );
    assert_eq!(r, reference);
    wait_timeline(&system, &id, Duration::from_secs(10), |e| count(e, "CitizenWrote") == 1);
}

#[test]
fn a_30_mb_mail_is_refused_and_nothing_of_it_is_kept_while_the_next_mail_is_taken() {
    let system = start_system(None);
    let log = Log::open(&system);
    // The same big mail twice: without SIZE (read to its end, then refused) and announcing its size (refused at
    // MAIL); then a normal mail on the same connection.
    let big = |id: &str, declare: bool| {
        json!({
            "from": "big.sender@example.vn", "subject": "Hồ sơ đầy đủ", "message_id": id, "declare_size": declare,
            "text": "Gửi kèm toàn bộ hồ sơ về việc lấn chiếm vỉa hè ở phường Phú Cường.",
            "attachments": [{"name": "hồ sơ.pdf", "type": "application/pdf", "size": 23_000_000}],
        })
    };
    let out = send(
        &system.smtp_addr,
        json!([
            big("big-1@example.vn", false),
            big("big-2@example.vn", true),
            {
                "from": "small.sender@example.vn", "subject": "Lấn chiếm vỉa hè", "message_id": "small-1@example.vn",
                "text": "Quán cà phê lấn chiếm vỉa hè đường Yersin, phường Phú Cường.",
                "attachments": [{"name": "ảnh.jpg", "type": "image/jpeg", "size": 20_000}],
            },
        ]),
    );
    let mails = out["mails"].as_array().expect("mails");
    assert!(mails[0]["bytes"].as_u64().is_some_and(|n| n > 30_000_000), "{}", mails[0]["bytes"]);
    assert_eq!(mails[0]["mail"]["code"], 250);
    assert_eq!(mails[0]["data"]["code"], 552, "refused after the final dot: {}", mails[0]);
    assert_eq!(mails[0]["noop"]["code"], 250, "the session goes on");
    assert_eq!(mails[1]["mail"]["code"], 552, "refused at MAIL: {}", mails[1]);
    assert!(mails[1]["data"].is_null());
    assert_eq!(mails[2]["data"]["code"], 250, "{}", mails[2]);
    let reference = stored_as(&mails[2]);
    system.wait_for_ticket(&reference, Duration::from_secs(10), |t| t["status"] != "received");

    // Exactly the small mail is in the system: one petition, one file.
    let petitions = log.petitions();
    let keys: Vec<_> = petitions.iter().map(|(_, p)| p.channel_ref.clone()).collect();
    assert_eq!(keys, [Some("small-1@example.vn".to_owned())]);
    let (files, partial) = blobs(&system);
    let small = mails[2]["files"][0]["sha256"].as_str().expect("sha");
    assert_eq!(files, BTreeSet::from([small.to_owned()]), "the big files were never kept");
    assert!(!partial);
    assert_eq!(crate::projected_tickets(&system), 1);
}

#[test]
fn hotline_serve_email_takes_mail_alone_against_a_running_system() {
    let relay = Relay::start();
    let system = start_system(Some(&relay.addr));
    let url = std::fs::read_to_string(system.data_dir.join("nats.url")).expect("nats.url");
    let dir = tempfile::tempdir().expect("tmp");
    let relay_url = format!("smtp://{}", relay.addr);
    let env = [
        ("HOTLINE_EMAIL__RECIPIENTS", Some(HOTLINE)),
        ("HOTLINE_EMAIL__FROM", Some(HOTLINE)),
        ("HOTLINE_EMAIL__RELAY", Some(relay_url.as_str())),
        ("HOTLINE_SMTP_ADDR", None),
    ];
    let _serve = crate::serve("email", &["--smtp", "127.0.0.1:0"], url.trim(), dir.path(), &env, Some("hotline: smtp listening on "));
    let smtp = _serve.addr.clone().expect("serve email prints its SMTP address");
    assert_ne!(smtp, system.smtp_addr);
    assert_eq!(std::fs::read_to_string(dir.path().join("smtp.addr")).expect("smtp.addr").trim(), smtp);

    let out = send(
        &smtp,
        json!([{
            "from": "pham.d@example.vn", "subject": "Mất điện", "message_id": "serve-1@example.vn",
            "text": "Khu phố 3 phường Dĩ An mất điện từ tối qua đến giờ chưa có lại.",
            "attachments": [{"name": "hóa đơn.pdf", "type": "application/pdf", "size": 3_000}],
        }]),
    );
    let reference = stored_as(&out["mails"][0]);
    let t = system.wait_for_ticket(&reference, Duration::from_secs(10), |t| t["status"] == "routed");
    assert_eq!((t["channel"].as_str(), t["subject"].as_str()), (Some("email"), Some("Mất điện")), "{t}");
    // Its files go to its own data dir's blob store.
    let sha = out["mails"][0]["files"][0]["sha256"].as_str().expect("sha");
    assert!(dir.path().join("blobs").join(&sha[..2]).join(sha).is_file());
    let log = Log::open(&system);
    assert_eq!(log.petitions().len(), 1);

    // Both processes run the `replies-email` consumer against the same log: the answer goes out once.
    let evn = token(&system, "agency", Some(t["agency"].as_str().expect("agency")));
    let id = t["ticket_id"].as_str().expect("id");
    act(&system, &evn, id, "answer", json!({"text": "Điện lực Dĩ An đã khắc phục sự cố lúc 9 giờ."}));
    wait_timeline(&system, id, Duration::from_secs(15), |e| count(e, "ReplySent") == 1);
    let mails = relay.wait_for(1, Duration::from_secs(10));
    assert_eq!(mails[0].1["rcpt_tos"], json!(["pham.d@example.vn"]));
    // Give a second delivery, were there one, the time the first one took.
    std::thread::sleep(Duration::from_secs(1));
    let entries = wait_timeline(&system, id, Duration::from_secs(5), |_| true);
    assert_eq!((count(&entries, "ReplySent"), count(&entries, "ReplyFailed"), relay.files().len()), (1, 0, 1));
}
