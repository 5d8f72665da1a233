//! Mail in: a real SMTP client (Python's smtplib, or raw bytes on a socket) sends to the listener; what counts is
//! what landed in the log.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use hotline_domain::TicketEvent;
use serde_json::json;
use uuid::Uuid;

use crate::support::{HOTLINE, Harness, corpus, petition};

const CITIZEN: &str = "nguyen.vana@gmail.com";
/// The authserv-id of the province's MTA in these tests.
const MX: &str = "mx.1022.tinh.gov.vn";

#[tokio::test]
async fn a_plain_mail_becomes_a_petition_with_its_decoded_subject_and_sender() {
    let h = Harness::start(Harness::config(None)).await;
    let out = h.send(json!([{ "from": CITIZEN, "to": [HOTLINE], "file": corpus("plain.eml") }])).await;
    assert_eq!(out["mails"][0]["data"]["code"], 250, "{out}");
    assert!(out["mails"][0]["data"]["text"].as_str().is_some_and(|t| t.starts_with("2.0.0 Stored as ")), "{out}");
    for feature in ["size", "8bitmime", "pipelining", "enhancedstatuscodes"] {
        assert!(out["features"].as_array().is_some_and(|f| f.contains(&json!(feature))), "{feature}: {out}");
    }
    let events = h.events(h.ticket_of("plain-1@mail.example.vn")).await;
    let p = petition(&events);
    assert_eq!(p.channel, "email");
    assert_eq!(p.channel_ref.as_deref(), Some("plain-1@mail.example.vn"));
    assert_eq!(p.subject.as_deref(), Some("Phản ánh về đường xá"));
    assert_eq!(p.text, "Đường Nguyễn Trãi, phường Phú Cường bị ngập nặng sau mưa.\nĐề nghị xử lý sớm.");
    let citizen = p.citizen.as_ref().expect("citizen");
    assert_eq!(citizen.email.as_deref(), Some(CITIZEN));
    assert_eq!(citizen.name.as_deref(), Some("Nguyễn Văn A"));
    h.stop().await;
}

#[tokio::test]
async fn alternatives_html_and_old_charsets_read_as_text() {
    let h = Harness::start(Harness::config(None)).await;
    let files = ["alternative.eml", "html-only.eml", "windows-1258.eml", "iso-8859-1.eml"];
    let mails: Vec<_> = files.iter().map(|f| json!({ "from": "x@example.org", "to": [HOTLINE], "file": corpus(f) })).collect();
    let out = h.send(json!(mails)).await;
    for (i, file) in files.iter().enumerate() {
        assert_eq!(out["mails"][i]["data"]["code"], 250, "{file}: {out}");
    }
    let text = |id: &'static str| {
        let h = &h;
        async move { petition(&h.events(h.ticket_of(id)).await).text.clone() }
    };
    assert_eq!(text("alt-1@example.org").await, "Cây xanh đổ chắn ngang đường ĐT743.\nXin cám ơn.");
    assert_eq!(text("html-1@example.org").await, "Kính gửi 1022,\n\nĐèn & cột điện hỏng\ntại xã An Tây.");
    assert_eq!(text("cp1258-1@example.vn").await, "Rác thải ứ đọng ở chợ Thủ Dầu Một.");
    assert_eq!(text("latin1-1@example.fr").await, "Les déchets ne sont pas ramassés depuis une semaine.");
    h.stop().await;
}

#[tokio::test]
async fn attachments_are_kept_in_the_blob_store_and_named_in_the_petition() {
    let h = Harness::start(Harness::config(None)).await;
    assert_eq!(h.send_file("e@example.vn", &corpus("attachment.eml")).await, 250);
    assert_eq!(h.send_file("g@example.vn", &corpus("attachment-only.eml")).await, 250);
    let events = h.events(h.ticket_of("att-1@example.vn")).await;
    let p = petition(&events);
    assert_eq!(p.text, "Xem ảnh:");
    let names: Vec<(&str, Option<&str>)> = p.attachments.iter().map(|a| (a.name.as_str(), a.media_type.as_deref())).collect();
    assert_eq!(names, vec![("tep-dinh-kem-1.png", Some("image/png")), ("đơn kiến nghị.pdf", Some("application/pdf"))]);
    for a in &p.attachments {
        let stored = h.blobs.get(a.sha256.as_deref().expect("sha256")).expect("read").expect("stored");
        assert_eq!(Some(stored.len() as u64), a.size);
        assert!(a.url.is_none());
    }
    // A mail with files and no text still becomes a petition.
    let only = h.events(h.ticket_of("att-only-1@example.vn")).await;
    assert_eq!(petition(&only).attachments.len(), 1);
    assert!(!petition(&only).text.trim().is_empty());
    h.stop().await;
}

#[tokio::test]
async fn the_same_message_id_twice_makes_one_petition() {
    let h = Harness::start(Harness::config(None)).await;
    let mail = json!({ "from": CITIZEN, "to": [HOTLINE], "file": corpus("plain.eml") });
    let out = h.send(json!([mail, mail])).await;
    assert_eq!(out["mails"][0]["data"]["code"], 250);
    assert_eq!(out["mails"][1]["data"]["code"], 250, "a redelivery is acknowledged: {out}");
    let position = h.log_len().await;
    // Later, on another connection (an MTA retrying after a lost reply).
    assert_eq!(h.send_file(CITIZEN, &corpus("plain.eml")).await, 250);
    assert_eq!(h.log_len().await, position, "nothing more was stored");
    let events = h.events(h.ticket_of("plain-1@mail.example.vn")).await;
    assert_eq!(events.iter().filter(|e| matches!(e.event, TicketEvent::PetitionReceived(_))).count(), 1);
    h.stop().await;
}

#[tokio::test]
async fn a_reply_to_our_mail_or_tagged_with_the_reference_joins_the_ticket_of_its_sender_only() {
    let mut config = Harness::config(None);
    config["authserv_id"] = json!(MX);
    let h = Harness::start(config).await;
    assert_eq!(h.send_file(CITIZEN, &corpus("plain.eml")).await, 250);
    let ticket = h.ticket_of("plain-1@mail.example.vn");
    let reference = petition(&h.events(ticket).await).reference.as_str().to_owned();
    let ours = format!("<hotline.{ticket}.{}@1022.tinh.gov.vn>", Uuid::now_v7());
    let reply = format!(
        "Authentication-Results: {MX};\r\n\tdkim=pass header.d=gmail.com header.b=Zx/9+a=;\r\n\tdmarc=pass (p=none) header.from=gmail.com\r\n\
From: Nguyen Van A <Nguyen.VanA@gmail.com>\r\nTo: {HOTLINE}\r\nSubject: Re: Phan anh\r\n\
Message-ID: <reply-a@gmail.com>\r\nIn-Reply-To: {ours}\r\nReferences: <plain-1@mail.example.vn> {ours}\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nNhà tôi ở số 12.\r\n\r\nOn Mon, Jun 3, 2024 at 10:00 AM 1022 wrote:\r\n> Địa chỉ?\r\n"
    );
    let tagged = format!(
        "Authentication-Results: {MX}; spf=pass smtp.mailfrom={CITIZEN}\r\nFrom: {CITIZEN}\r\nTo: {HOTLINE}\r\nSubject: Bổ sung [#{reference}]\r\nMessage-ID: <tagged-a@gmail.com>\r\n\r\nẢnh chụp sáng nay.\r\n"
    );
    let stranger = format!(
        "Authentication-Results: {MX}; dmarc=pass header.from=example.org\r\nFrom: other@example.org\r\nTo: {HOTLINE}\r\nSubject: Re: [#{reference}]\r\nMessage-ID: <stranger@example.org>\r\n\
In-Reply-To: {ours}\r\n\r\nTôi cũng bị.\r\n"
    );
    let out = h
        .send(json!([
            { "from": CITIZEN, "to": [HOTLINE], "data": reply },
            { "from": CITIZEN, "to": [HOTLINE], "data": tagged },
            { "from": "other@example.org", "to": [HOTLINE], "data": stranger },
        ]))
        .await;
    for i in 0..3 {
        assert_eq!(out["mails"][i]["data"]["code"], 250, "{out}");
    }
    let events = h.events(ticket).await;
    let follow_ups: Vec<(String, Option<String>)> = events
        .iter()
        .filter_map(|e| match &e.event {
            TicketEvent::CitizenWrote(w) => Some((w.text.clone(), w.channel_ref.clone())),
            TicketEvent::CitizenReplied(r) => Some((r.text.clone(), None)),
            _ => None,
        })
        .collect();
    assert_eq!(
        follow_ups,
        vec![
            ("Nhà tôi ở số 12.".to_owned(), Some("reply-a@gmail.com".to_owned())),
            ("Ảnh chụp sáng nay.".to_owned(), Some("tagged-a@gmail.com".to_owned())),
        ],
        "the quote is trimmed from a reply; the stranger's mail is not on this ticket"
    );
    // The stranger's mail opened its own ticket.
    let own = h.events(h.ticket_of("stranger@example.org")).await;
    assert_eq!(petition(&own).citizen.as_ref().and_then(|c| c.email.as_deref()), Some("other@example.org"));
    h.stop().await;
}

#[tokio::test]
async fn a_30_mb_mail_is_refused_with_552_without_storing_and_the_session_goes_on() {
    let h = Harness::start(Harness::config(None)).await;
    let before = h.log_len().await;
    let big = 30 * 1024 * 1024;
    let out = h
        .send(json!([
            // Declared: refused at MAIL, before any byte of it is sent.
            { "from": CITIZEN, "to": [HOTLINE], "generate_bytes": big, "declare_size": true },
            // Not declared: read to its end, discarded on the way, refused after the final dot.
            { "from": CITIZEN, "to": [HOTLINE], "generate_bytes": big, "declare_size": false },
            { "from": CITIZEN, "to": [HOTLINE], "data": "Subject: small\r\n\r\nSau thư lớn.\r\n" },
        ]))
        .await;
    assert_eq!(out["mails"][0]["mail"]["code"], 552, "{}", out["mails"][0]);
    assert!(out["mails"][0].get("data").is_none(), "no DATA after a refused MAIL");
    assert_eq!(out["mails"][1]["mail"]["code"], 250);
    assert_eq!(out["mails"][1]["data"]["code"], 552, "{}", out["mails"][1]);
    assert_eq!(out["mails"][1]["noop"]["code"], 250, "the session is still usable");
    assert_eq!(out["mails"][2]["data"]["code"], 250, "and takes the next mail");
    assert!(h.events(h.ticket_of("big@example.vn")).await.is_empty(), "the big mail was not stored");
    let after = h.log_len().await;
    assert_eq!(after, before + 1, "one commit: the small mail's petition");
    h.stop().await;
}

/// Talks SMTP by hand: writes `input` in one go, then reads until `replies` replies (final lines) arrived.
fn raw_session(addr: std::net::SocketAddr, input: &[u8], replies: usize) -> Vec<String> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    s.write_all(input).expect("write");
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    let finals = |t: &str| t.lines().filter(|l| l.len() >= 4 && l.as_bytes()[3] == b' ').count();
    while finals(&got) < replies {
        let n = s.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    got.lines().filter(|l| l.len() >= 4 && l.as_bytes()[3] == b' ').map(|l| l[..3].to_owned()).collect()
}

#[tokio::test]
async fn pipelined_commands_in_one_write_get_their_replies_in_order() {
    let h = Harness::start(Harness::config(None)).await;
    let input = format!(
        "EHLO mta.example\r\nMAIL FROM:<{CITIZEN}>\r\nRCPT TO:<{HOTLINE}>\r\nRCPT TO:<someone@elsewhere.vn>\r\nDATA\r\n\
From: {CITIZEN}\r\nMessage-ID: <piped@gmail.com>\r\nSubject: pipelined\r\n\r\n..Dòng bắt đầu bằng dấu chấm.\r\n.\r\n\
MAIL FROM:<{CITIZEN}>\r\nRSET\r\nQUIT\r\n"
    );
    let addr = h.smtp;
    let codes = tokio::task::spawn_blocking(move || raw_session(addr, input.as_bytes(), 10)).await.expect("client");
    assert_eq!(codes, ["220", "250", "250", "250", "550", "354", "250", "250", "250", "221"]);
    let events = h.events(h.ticket_of("piped@gmail.com")).await;
    assert_eq!(petition(&events).text, ".Dòng bắt đầu bằng dấu chấm.", "dot-unstuffed");
    h.stop().await;
}

#[tokio::test]
async fn garbage_and_a_client_vanishing_mid_data_store_nothing_and_break_nothing() {
    let h = Harness::start(Harness::config(None)).await;
    let addr = h.smtp;
    let before = h.log_len().await;
    tokio::task::spawn_blocking(move || {
        // A client that leaves in the middle of a message.
        let mut s = TcpStream::connect(addr).expect("connect");
        let head = format!("EHLO x\r\nMAIL FROM:<{CITIZEN}>\r\nRCPT TO:<{HOTLINE}>\r\nDATA\r\nSubject: cut\r\n\r\nhalf a mess");
        s.write_all(head.as_bytes()).expect("write");
        std::thread::sleep(Duration::from_millis(300));
        drop(s);
        // Binary junk, an overlong line, lines without CR.
        let mut junk: Vec<u8> = (0..=255u8).cycle().take(20_000).collect();
        junk.extend_from_slice(b"\r\n");
        let codes = raw_session(addr, &junk, 2);
        assert_eq!(codes.first().map(String::as_str), Some("220"));
        assert!(codes.iter().skip(1).all(|c| c.starts_with('5') || c == "421"), "{codes:?}");
        // Lines without CR: each told so at once (no waiting for a timeout).
        let bare = format!("HELO x\nMAIL FROM:<{CITIZEN}>\nNOOP\nQUIT\n");
        assert_eq!(raw_session(addr, bare.as_bytes(), 5), ["220", "500", "500", "500", "500"]);
    })
    .await
    .expect("clients");
    // A mail that cannot be read as a message, and one with nothing in it.
    let out = h
        .send(json!([
            { "from": CITIZEN, "to": [HOTLINE], "file": corpus("binary-junk.eml") },
            { "from": CITIZEN, "to": [HOTLINE], "file": corpus("empty.eml") },
            { "from": CITIZEN, "to": ["nobody@1022.tinh.gov.vn"], "data": "Subject: x\r\n\r\nx\r\n" },
        ]))
        .await;
    assert_eq!(out["mails"][0]["data"]["code"], 550, "{out}");
    assert_eq!(out["mails"][1]["data"]["code"], 550, "{out}");
    assert!(out["mails"][1]["data"]["text"].as_str().is_some_and(|t| t.contains("neither text nor attachments")));
    assert_eq!(out["mails"][2]["rcpt"][0]["code"], 550, "not our recipient: {out}");
    assert_eq!(h.log_len().await, before, "nothing was stored");
    // And the listener still works.
    assert_eq!(h.send_file(CITIZEN, &corpus("plain.eml")).await, 250);
    h.stop().await;
}

#[tokio::test]
async fn bounces_and_auto_replies_are_accepted_and_dropped() {
    let h = Harness::start(Harness::config(None)).await;
    let before = h.log_len().await;
    let out = h
        .send(json!([
            { "from": "h@example.vn", "to": [HOTLINE], "file": corpus("autoreply.eml") },
            { "from": "news@example.vn", "to": [HOTLINE], "file": corpus("bulk.eml") },
            { "from": "", "to": [HOTLINE], "file": corpus("bounce.eml") },
            { "from": "", "to": [HOTLINE], "file": corpus("plain.eml") },
        ]))
        .await;
    for i in 0..4 {
        assert_eq!(out["mails"][i]["data"]["code"], 250, "{out}");
    }
    assert_eq!(h.log_len().await, before, "none of them became a petition");
    h.stop().await;
}

#[tokio::test]
async fn a_mail_arriving_while_the_log_is_down_gets_451_and_is_stored_when_resent() {
    let mut h = Harness::start(Harness::config(None)).await;
    h.nats.server.kill();
    let out = h.send(json!([{ "from": CITIZEN, "to": [HOTLINE], "file": corpus("plain.eml") }])).await;
    assert_eq!(out["mails"][0]["data"]["code"], 451, "a temporary failure, so the MTA keeps the mail: {out}");
    h.nats.server.restart().await.expect("nats restarts");
    // The MTA's retry.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let code = h.send_file(CITIZEN, &corpus("plain.eml")).await;
        if code == 250 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {code} after the log came back");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let events = h.events(h.ticket_of("plain-1@mail.example.vn")).await;
    assert_eq!(events.iter().filter(|e| matches!(e.event, TicketEvent::PetitionReceived(_))).count(), 1);
    h.stop().await;
}

#[tokio::test]
async fn connections_over_the_limit_are_told_to_come_back_and_shutdown_says_goodbye() {
    let mut config = Harness::config(None);
    config["max_connections"] = json!("1");
    let h = Harness::start(config).await;
    let addr = h.smtp;
    // (Blocking socket calls run off the test's runtime thread, which the server needs.)
    let (mut first, greeting) = tokio::task::spawn_blocking(move || {
        let mut first = TcpStream::connect(addr).expect("connect");
        first.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let mut buf = [0u8; 512];
        let n = first.read(&mut buf).expect("greeting");
        (first, buf[..n].to_vec())
    })
    .await
    .expect("first client");
    assert!(greeting.starts_with(b"220 "));
    let mut buf = [0u8; 512];
    let second = tokio::task::spawn_blocking(move || raw_session(addr, b"", 1)).await.expect("second");
    assert_eq!(second, ["421"]);
    let stopping = tokio::spawn(h.stop());
    let n = tokio::task::spawn_blocking(move || first.read(&mut buf).map(|n| buf[..n].to_vec())).await.expect("read");
    assert!(n.expect("goodbye").starts_with(b"421 4.3.2"));
    stopping.await.expect("stopped");
}

#[tokio::test]
async fn a_spoofed_reply_opens_a_new_ticket_and_leaves_the_citizens_ticket_alone() {
    let mut config = Harness::config(None);
    config["authserv_id"] = json!(MX);
    let h = Harness::start(config).await;
    assert_eq!(h.send_file(CITIZEN, &corpus("plain.eml")).await, 250);
    let ticket = h.ticket_of("plain-1@mail.example.vn");
    let reference = petition(&h.events(ticket).await).reference.as_str().to_owned();
    let ours = format!("<hotline.{ticket}.{}@1022.tinh.gov.vn>", Uuid::now_v7());
    // Someone writes the citizen's address in From, threads the mail to the ticket every way there is, and adds
    // verdicts of their own: none, another server's, ours saying fail with a look-alike of ours below it.
    let spoofs = [
        ("spoof-1@evil.example", String::new()),
        ("spoof-2@evil.example", "Authentication-Results: mx.google.com; dmarc=pass header.from=gmail.com\r\n".to_owned()),
        (
            "spoof-3@evil.example",
            format!("Authentication-Results: {MX}; dmarc=fail header.from=gmail.com\r\nAuthentication-Results: {MX}; dmarc=pass header.from=gmail.com\r\n"),
        ),
    ];
    let mails: Vec<_> = spoofs
        .iter()
        .map(|(id, headers)| {
            let data = format!(
                "{headers}From: {CITIZEN}\r\nTo: {HOTLINE}\r\nSubject: Re: [#{reference}]\r\nMessage-ID: <{id}>\r\n\
In-Reply-To: {ours}\r\nReferences: {ours}\r\n\r\nHủy phản ánh này.\r\n"
            );
            json!({ "from": "attacker@evil.example", "to": [HOTLINE], "data": data })
        })
        .collect();
    let out = h.send(json!(mails)).await;
    for (i, (id, _)) in spoofs.iter().enumerate() {
        assert_eq!(out["mails"][i]["data"]["code"], 250, "{out}");
        let own = h.events(h.ticket_of(id)).await;
        assert_eq!(petition(&own).text, "Hủy phản ánh này.", "{id} opened its own ticket");
    }
    let events = h.events(ticket).await;
    assert_eq!(events.len(), 1, "nothing was added to the citizen's ticket: {events:?}");
    // The citizen's own, authenticated, reply does join.
    let genuine = format!(
        "Authentication-Results: {MX}; dmarc=pass header.from=gmail.com\r\nFrom: {CITIZEN}\r\nTo: {HOTLINE}\r\n\
Subject: Re: [#{reference}]\r\nMessage-ID: <genuine@gmail.com>\r\nIn-Reply-To: {ours}\r\n\r\nBổ sung ảnh.\r\n"
    );
    let out = h.send(json!([{ "from": CITIZEN, "to": [HOTLINE], "data": genuine }])).await;
    assert_eq!(out["mails"][0]["data"]["code"], 250, "{out}");
    assert_eq!(h.events(ticket).await.len(), 2, "the genuine reply joined");
    h.stop().await;
}

#[tokio::test]
async fn without_an_authserv_id_replies_open_new_tickets() {
    let h = Harness::start(Harness::config(None)).await;
    assert!(h.channel.config().threading_notice().is_some_and(|n| n.contains("threading is off")));
    assert_eq!(h.send_file(CITIZEN, &corpus("plain.eml")).await, 250);
    let ticket = h.ticket_of("plain-1@mail.example.vn");
    let ours = format!("<hotline.{ticket}.{}@1022.tinh.gov.vn>", Uuid::now_v7());
    let reply = format!(
        "Authentication-Results: {MX}; dmarc=pass header.from=gmail.com\r\nFrom: {CITIZEN}\r\n\
Message-ID: <unconfigured@gmail.com>\r\nIn-Reply-To: {ours}\r\n\r\nBổ sung.\r\n"
    );
    let out = h.send(json!([{ "from": CITIZEN, "to": [HOTLINE], "data": reply }])).await;
    assert_eq!(out["mails"][0]["data"]["code"], 250, "{out}");
    assert_eq!(h.events(ticket).await.len(), 1);
    assert_eq!(petition(&h.events(h.ticket_of("unconfigured@gmail.com")).await).text, "Bổ sung.");
    h.stop().await;
}

/// A raw SMTP client holding its connection: sends lines, reads replies.
struct Client {
    stream: TcpStream,
    pending: String,
}

impl Client {
    fn connect(addr: std::net::SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        let mut c = Client { stream, pending: String::new() };
        assert_eq!(c.reply(), 220);
        c
    }

    /// The code of the next final reply line.
    fn reply(&mut self) -> u16 {
        loop {
            if let Some(end) = self.pending.find("\r\n") {
                let line: String = self.pending.drain(..end + 2).collect();
                if line.as_bytes().get(3) == Some(&b' ') {
                    return line[..3].parse().expect("code");
                }
                continue;
            }
            let mut buf = [0u8; 4096];
            let n = self.stream.read(&mut buf).expect("read");
            assert!(n > 0, "connection closed");
            self.pending.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// EHLO, MAIL (with SIZE when given), RCPT, DATA; returns DATA's reply.
    fn start(&mut self, size: Option<usize>, greet: bool) -> u16 {
        if greet {
            self.send(b"EHLO client.example\r\n");
            assert_eq!(self.reply(), 250);
        }
        let size = size.map(|n| format!(" SIZE={n}")).unwrap_or_default();
        self.send(format!("MAIL FROM:<{CITIZEN}>{size}\r\nRCPT TO:<{HOTLINE}>\r\nDATA\r\n").as_bytes());
        assert_eq!(self.reply(), 250);
        assert_eq!(self.reply(), 250);
        self.reply()
    }
}

/// A mail of about `size` bytes with this Message-ID.
fn sized_mail(id: &str, size: usize) -> Vec<u8> {
    let mut m = format!("From: {CITIZEN}\r\nSubject: size\r\nMessage-ID: <{id}>\r\n\r\nĐơn.\r\n").into_bytes();
    while m.len() < size {
        m.extend_from_slice(&[b'x'; 78]);
        m.extend_from_slice(b"\r\n");
    }
    m
}

#[tokio::test]
async fn mails_wait_for_the_shared_memory_budget_and_are_deferred_when_it_stays_taken() {
    // Room for one 1 MiB mail at a time (counted three times its size); a DATA waits 2 s at most.
    let mut config = Harness::config(None);
    config["max_message_bytes"] = json!(1 << 20);
    config["max_buffered_bytes"] = json!(3 << 20);
    config["command_timeout_secs"] = json!(2);
    let h = Harness::start(config).await;
    let addr = h.smtp;
    tokio::task::spawn_blocking(move || {
        let big = sized_mail("budget-a@gmail.com", 900_000);
        let mut a = Client::connect(addr);
        assert_eq!(a.start(Some(big.len()), true), 354, "the first mail gets the budget");
        a.send(&big[..500_000]);
        // A second mail, declared or not, finds no room while the first is in flight: told to come back (452),
        // its session goes on.
        let mut b = Client::connect(addr);
        assert_eq!(b.start(Some(600_000), true), 452);
        b.send(b"NOOP\r\n");
        assert_eq!(b.reply(), 250);
        // The first one ends and is stored; the second one's retry then goes through.
        a.send(&big[500_000..]);
        a.send(b"\r\n.\r\n");
        assert_eq!(a.reply(), 250);
        assert_eq!(b.start(Some(600_000), false), 354);
        b.send(&sized_mail("budget-b@gmail.com", 600_000));
        b.send(b"\r\n.\r\n");
        assert_eq!(b.reply(), 250);
    })
    .await
    .expect("clients");
    for id in ["budget-a@gmail.com", "budget-b@gmail.com"] {
        assert!(!h.events(h.ticket_of(id)).await.is_empty(), "{id} stored");
    }
    h.stop().await;
}

#[tokio::test]
async fn a_mail_that_outgrows_its_share_of_the_budget_is_deferred_after_its_dot() {
    let mut config = Harness::config(None);
    config["max_message_bytes"] = json!(1 << 20);
    config["max_buffered_bytes"] = json!(3 << 20);
    let h = Harness::start(config).await;
    let addr = h.smtp;
    tokio::task::spawn_blocking(move || {
        // The first mail holds about 1.8 MiB of the 3; the second declares no size and starts small.
        let first = sized_mail("share-a@gmail.com", 600_000);
        let mut a = Client::connect(addr);
        assert_eq!(a.start(Some(first.len()), true), 354);
        let mut b = Client::connect(addr);
        assert_eq!(b.start(None, true), 354);
        // It grows past what is left: dropped as it streams in, 452 after its final dot, the session goes on.
        b.send(&sized_mail("share-b@gmail.com", 700_000));
        b.send(b"\r\n.\r\n");
        assert_eq!(b.reply(), 452);
        b.send(b"NOOP\r\n");
        assert_eq!(b.reply(), 250);
        a.send(&first);
        a.send(b"\r\n.\r\n");
        assert_eq!(a.reply(), 250);
        // Sent again with the budget free: stored.
        assert_eq!(b.start(None, false), 354);
        b.send(&sized_mail("share-b@gmail.com", 700_000));
        b.send(b"\r\n.\r\n");
        assert_eq!(b.reply(), 250);
    })
    .await
    .expect("clients");
    for id in ["share-a@gmail.com", "share-b@gmail.com"] {
        assert_eq!(h.events(h.ticket_of(id)).await.len(), 1, "{id} stored once");
    }
    h.stop().await;
}

#[tokio::test]
async fn a_client_ending_its_mail_with_a_bare_lf_gets_an_answer_at_once() {
    let h = Harness::start(Harness::config(None)).await;
    let before = h.log_len().await;
    let addr = h.smtp;
    let got = tokio::task::spawn_blocking(move || {
        let mut c = Client::connect(addr);
        assert_eq!(c.start(None, true), 354);
        c.send(format!("From: {CITIZEN}\nSubject: lf\n\nDòng một.\n.\n").as_bytes());
        let started = std::time::Instant::now();
        (c.reply(), started.elapsed())
    })
    .await
    .expect("client");
    // (The read timeout of the client is 30 s; the listener's data timeout is 10 minutes.)
    assert_eq!(got.0, 521, "told at once: {got:?}");
    assert_eq!(h.log_len().await, before, "nothing kept");
    h.stop().await;
}

/// Found by `scripts/fuzz email_mime`: this malformed mail (a part's boundary cut short inside a message/rfc822)
/// trips a `debug_assert!` inside mail-parser 0.11.9 (`parsers/message.rs`: "Invalid part ID, could not find
/// multipart"). Release builds skip the assertion; debug builds panic. Either way the listener must answer the
/// mail, store nothing half-made, and keep serving: parsing runs apart from the session.
#[tokio::test]
async fn a_mail_that_panics_the_mime_parser_is_answered_and_the_listener_keeps_serving() {
    let h = Harness::start(Harness::config(None)).await;
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mail-parser-debug-assert.eml");
    let code = h.send_file("m@example.vn", &file).await;
    assert!(matches!(code, 250 | 550 | 554), "answered with a final code, got {code}");
    assert_eq!(h.send_file(CITIZEN, &corpus("plain.eml")).await, 250, "the next mail is taken");
    h.stop().await;
}
