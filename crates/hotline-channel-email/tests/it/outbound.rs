//! Mail out: answers go through a real SMTP server (aiosmtpd) standing in for the relay, and are read back as the
//! citizen's mail program would read them.

use std::sync::Arc;
use std::time::Duration;

use hotline_channel::{ChannelAdapter, DeliveryError, OutboundKind, OutboundMessage};
use hotline_domain::event::PetitionAnswered;
use hotline_domain::{Actor, CommandMeta, Envelope, Reference, TicketEvent};
use hotline_store::EventStore;
use mail_parser::{HeaderValue, MessageParser};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::support::{HOTLINE, Harness, Sink, corpus, petition};

fn answer(to: &str, subject: Option<&str>) -> OutboundMessage {
    let ticket = Uuid::now_v7();
    OutboundMessage {
        id: Uuid::now_v7(),
        ticket_id: ticket,
        reference: Reference::derive(ticket, 0),
        kind: OutboundKind::Answer,
        text: "Sở GTVT đã cho thoát nước tuyến đường Nguyễn Trãi.\nTrân trọng.".to_owned(),
        to: Some(to.to_owned()),
        subject: subject.map(str::to_owned),
        thread: vec!["plain-1@mail.example.vn".to_owned(), "reply-a@gmail.com".to_owned()],
        earlier_replies: vec![Uuid::from_u128(42)],
    }
}

fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(t) => vec![t.to_string()],
        HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn an_answer_arrives_threaded_with_a_vietnamese_subject_and_the_reference() {
    let sink = Sink::start().await;
    let channel = hotline_channel_email::EmailChannel::from_config(&Harness::config(Some(sink.addr))).expect("config");
    let m = answer("Nguyen.VanA@gmail.com", Some("Phản ánh về đường xá"));
    let receipt = channel.deliver(&m).await.expect("delivered");
    let our_id = format!("hotline.{}.{}@1022.tinh.gov.vn", m.ticket_id, m.id);
    assert_eq!(receipt.channel_message_id.as_deref(), Some(our_id.as_str()));

    let mails = sink.mails();
    assert_eq!(mails.len(), 1);
    let raw = String::from_utf8_lossy(&mails[0]).into_owned();
    let subject_line = raw.lines().find(|l| l.starts_with("Subject: ")).expect("a subject");
    assert!(subject_line.contains("=?utf-8?b?"), "the subject is RFC 2047-encoded on the wire:\n{raw}");
    let mail = MessageParser::default().parse(&mails[0]).expect("parses");
    let tag = format!("[#{}]", m.reference.as_str());
    assert_eq!(mail.subject(), Some(format!("Re: Phản ánh về đường xá {tag}").as_str()));
    assert_eq!(mail.message_id(), Some(our_id.as_str()));
    assert_eq!(ids(mail.in_reply_to()), vec!["reply-a@gmail.com".to_owned()]);
    let earlier = format!("hotline.{}.{}@1022.tinh.gov.vn", m.ticket_id, Uuid::from_u128(42));
    assert_eq!(ids(mail.references()), vec!["plain-1@mail.example.vn".to_owned(), earlier, "reply-a@gmail.com".to_owned()]);
    let from = mail.from().and_then(|a| a.first()).expect("from");
    assert_eq!(from.address(), Some(HOTLINE));
    assert_eq!(from.name(), Some("1022 Tỉnh Bình Dương"));
    assert_eq!(mail.to().and_then(|a| a.first()).and_then(|a| a.address()), Some("Nguyen.VanA@gmail.com"));
    let body = mail.body_text(0).expect("text").replace("\r\n", "\n");
    assert!(body.starts_with("Sở GTVT đã cho thoát nước tuyến đường Nguyễn Trãi.\nTrân trọng."), "{body}");
    assert!(body.contains(m.reference.as_str()), "{raw}");
    // The envelope: from our address, to the citizen only.
    let envelope: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sink.dir.path().join("1.json")).expect("envelope")).expect("json");
    assert_eq!(envelope, json!({ "mail_from": HOTLINE, "rcpt_tos": ["Nguyen.VanA@gmail.com"] }));
    sink.stop().await;
}

#[tokio::test]
async fn a_question_without_subject_says_what_it_is() {
    let sink = Sink::start().await;
    let channel = hotline_channel_email::EmailChannel::from_config(&Harness::config(Some(sink.addr))).expect("config");
    let mut m = answer("b@example.org", None);
    m.kind = OutboundKind::Question;
    m.thread.clear();
    m.earlier_replies.clear();
    channel.deliver(&m).await.expect("delivered");
    let mails = sink.mails();
    let mail = MessageParser::default().parse(&mails[0]).expect("parses");
    assert_eq!(mail.subject(), Some(format!("Yêu cầu bổ sung thông tin [#{}]", m.reference.as_str()).as_str()));
    assert!(mail.in_reply_to().is_empty());
    sink.stop().await;
}

#[tokio::test]
async fn a_relay_refusal_is_permanent_and_a_busy_or_absent_relay_is_worth_retrying() {
    let sink = Sink::start().await;
    let channel = hotline_channel_email::EmailChannel::from_config(&Harness::config(Some(sink.addr))).expect("config");
    let refused = channel.deliver(&answer("reject@example.org", None)).await;
    assert!(matches!(refused, Err(DeliveryError::Permanent(_))), "{refused:?}");
    let busy = channel.deliver(&answer("busy@example.org", None)).await;
    assert!(matches!(busy, Err(DeliveryError::Retryable(_))), "{busy:?}");
    assert!(sink.mails().is_empty());
    let addr = sink.addr;
    sink.stop().await;
    let down = hotline_channel_email::EmailChannel::from_config(&Harness::config(Some(addr))).expect("config");
    let absent = down.deliver(&answer("a@example.org", None)).await;
    assert!(matches!(absent, Err(DeliveryError::Retryable(_))), "{absent:?}");
}

/// The whole loop: a citizen's mail opens a ticket, the agency's answer reaches the citizen by mail through the
/// outbound consumer, and the citizen's reply to that mail joins the same ticket.
#[tokio::test]
async fn a_citizen_replying_to_our_answer_lands_on_the_same_ticket() {
    let sink = Sink::start().await;
    let mut config = Harness::config(Some(sink.addr));
    config["authserv_id"] = json!("mx.1022.tinh.gov.vn");
    let h = Harness::start(config).await;
    assert_eq!(h.send_file("nguyen.vana@gmail.com", &corpus("plain.eml")).await, 250);
    let ticket = h.ticket_of("plain-1@mail.example.vn");
    let history = h.store.load(ticket).await.expect("load");
    let answered = TicketEvent::PetitionAnswered(PetitionAnswered {
        text: "Đã khơi thông cống thoát nước.".into(),
        agency: "so-gtvt".into(),
        via_ticket: None,
        attachments: vec![],
    });
    let meta = CommandMeta {
        actor: Actor::channel("test-desk"),
        occurred_at: OffsetDateTime::now_utc(),
        correlation_id: ticket,
        causation_id: None,
    };
    let sealed = Envelope::seal(ticket, history.events.len() as u64, vec![answered], &meta, Uuid::now_v7);
    h.store.append(ticket, history.version, &sealed).await.expect("answer appended");

    let (outbound_trigger, outbound_shutdown) = hotline_runtime::shutdown();
    let adapter: Arc<dyn ChannelAdapter> = h.channel.clone();
    let store: Arc<dyn EventStore> = h.store.clone();
    let consumer = tokio::spawn(hotline_channel::outbound::run(adapter, store, outbound_shutdown));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let ours = loop {
        if let Some(mail) = sink.mails().first() {
            break mail.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no answer reached the relay");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ours = MessageParser::default().parse(&ours).expect("parses");
    let our_id = ours.message_id().expect("our Message-ID").to_owned();
    assert!(our_id.starts_with(&format!("hotline.{ticket}.")), "{our_id}");
    assert_eq!(ids(ours.in_reply_to()), vec!["plain-1@mail.example.vn".to_owned()]);
    let reference = petition(&h.events(ticket).await).reference.as_str().to_owned();
    assert_eq!(ours.subject(), Some(format!("Re: Phản ánh về đường xá [#{reference}]").as_str()));

    // The delivery is recorded on the ticket.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !h.events(ticket).await.iter().any(|e| matches!(e.event, TicketEvent::ReplySent(_))) {
        assert!(tokio::time::Instant::now() < deadline, "no ReplySent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The citizen answers from their mail program: In-Reply-To our Message-ID, a fresh subject; the province's
    // MTA found it DKIM-signed by gmail.com.
    let reply = format!(
        "Authentication-Results: mx.1022.tinh.gov.vn; dkim=pass header.d=gmail.com\r\nFrom: nguyen.vana@gmail.com\r\nTo: {HOTLINE}\r\nSubject: =?UTF-8?B?Q+G6o20gxqFu?=\r\n\
Message-ID: <thanks@gmail.com>\r\nIn-Reply-To: <{our_id}>\r\nReferences: <plain-1@mail.example.vn> <{our_id}>\r\n\r\n\
Nước vẫn còn đọng ở hẻm 5.\r\n\r\n> Đã khơi thông cống thoát nước.\r\n"
    );
    let out = h.send(json!([{ "from": "nguyen.vana@gmail.com", "to": [HOTLINE], "data": reply }])).await;
    assert_eq!(out["mails"][0]["data"]["code"], 250, "{out}");
    let texts: Vec<String> = h
        .events(ticket)
        .await
        .iter()
        .filter_map(|e| match &e.event {
            TicketEvent::CitizenWrote(w) => Some(w.text.clone()),
            TicketEvent::CitizenReplied(r) => Some(r.text.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, vec!["Nước vẫn còn đọng ở hẻm 5.".to_owned()]);

    outbound_trigger.trigger();
    tokio::time::timeout(Duration::from_secs(15), consumer).await.expect("consumer stops").expect("no panic");
    h.stop().await;
    sink.stop().await;
}
