//! The SMPP session against the test SMSC: every kind of `deliver_sm` becomes one petition (or none, for a
//! receipt), answered only once stored; answers go out as `submit_sm` parts; throttling, dropped connections,
//! garbage and an unavailable event log are survived without losing a message.

use std::sync::Arc;
use std::time::Duration;

use hotline_channel::{ChannelAdapter, DeliveryError, OutboundKind, OutboundMessage};
use hotline_channel_sms::SmsChannel;
use hotline_domain::Reference;
use rusmpp::tlvs::MessageDeliveryRequestTlvValue;
use rusmpp::types::{AnyOctetString, COctetString};
use rusmpp::values::MessagePayload;
use rusmpp::{CommandId, CommandStatus};
use serde_json::json;
use uuid::Uuid;

use crate::Harness;
use crate::smsc::{Smsc, WAIT, deliver_sm, sar, ucs2};

fn config(addr: &str, enquire_link_secs: u64) -> serde_json::Value {
    json!({
        "send": "smpp",
        "smpp": {
            "addr": addr, "system_id": "hotline", "password": "secret", "source_addr": "1022",
            "enquire_link_secs": enquire_link_secs, "response_timeout_secs": 5, "reassembly_timeout_secs": 2,
            "reconnect_min_ms": 100, "reconnect_max_secs": 1, "submit_timeout_secs": 30,
        },
    })
}

fn status(s: CommandStatus) -> u32 {
    u32::from(s)
}

/// One part of a concatenated message with an 8-bit reference UDH.
fn udh8(reference: u8, total: u8, seq: u8, body: &[u8]) -> Vec<u8> {
    [&[0x05, 0x00, 0x03, reference, total, seq][..], body].concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_deliver_sm_becomes_one_petition_answered_only_after_it_is_stored() {
    let h = Harness::start().await;
    let smsc = Smsc::start().await;
    let config = config(&smsc.addr(), 60);
    let channel = Arc::new(SmsChannel::from_config(&config).expect("config"));
    let (ctx, trigger) = h.context(config);
    let run = tokio::spawn(channel.clone().run(ctx));
    let mut c = smsc.accept().await;
    let ok = status(CommandStatus::EsmeRok);

    // GSM 7-bit, with a character of the extension table. The petition is in the log the moment the SMSC has
    // its answer.
    let gsm = [
        &b"Mat dien o Phu Hoa, tien dien "[..],
        &[0x1B, 0x65],
        b"100",
    ]
    .concat();
    assert_eq!(
        status(
            c.deliver_and_wait(deliver_sm("84900000001", 0x00, 0, &gsm))
                .await
        ),
        ok
    );
    assert_eq!(
        h.petitions_of("84900000001").await,
        vec!["Mat dien o Phu Hoa, tien dien €100"]
    );

    // UCS2 Vietnamese with an emoji (a surrogate pair).
    let vietnamese = "Đèn đường ở phường Phú Hòa bị hỏng 3 ngày rồi 😟";
    assert_eq!(
        status(
            c.deliver_and_wait(deliver_sm("84900000002", 0x08, 0, &ucs2(vietnamese)))
                .await
        ),
        ok
    );
    assert_eq!(h.petitions_of("84900000002").await, vec![vietnamese]);

    // Three UCS2 parts with an 8-bit reference, out of order: the first two are acknowledged with nothing
    // stored, the last completes the message.
    let parts = [
        "Cống thoát nước ",
        "khu phố 3 bị tắc, ",
        "nước tràn vào nhà dân.",
    ];
    assert_eq!(
        status(
            c.deliver_and_wait(deliver_sm(
                "84900000003",
                0x08,
                0x40,
                &udh8(7, 3, 3, &ucs2(parts[2]))
            ))
            .await
        ),
        ok
    );
    assert_eq!(
        status(
            c.deliver_and_wait(deliver_sm(
                "84900000003",
                0x08,
                0x40,
                &udh8(7, 3, 1, &ucs2(parts[0]))
            ))
            .await
        ),
        ok
    );
    assert!(
        h.petitions_of("84900000003").await.is_empty(),
        "an incomplete message is not a petition yet"
    );
    assert_eq!(
        status(
            c.deliver_and_wait(deliver_sm(
                "84900000003",
                0x08,
                0x40,
                &udh8(7, 3, 2, &ucs2(parts[1]))
            ))
            .await
        ),
        ok
    );
    assert_eq!(h.petitions_of("84900000003").await, vec![parts.concat()]);

    // GSM 7-bit in two parts with a 16-bit reference.
    let p1 = [
        &[0x06, 0x08, 0x04, 0x12, 0x34, 0x02, 0x01][..],
        b"Rac thai khong duoc thu gom ",
    ]
    .concat();
    let p2 = [
        &[0x06, 0x08, 0x04, 0x12, 0x34, 0x02, 0x02][..],
        b"o hem 12.",
    ]
    .concat();
    assert_eq!(
        status(
            c.deliver_and_wait(deliver_sm("84900000004", 0x00, 0x40, &p1))
                .await
        ),
        ok
    );
    assert_eq!(
        status(
            c.deliver_and_wait(deliver_sm("84900000004", 0x00, 0x40, &p2))
                .await
        ),
        ok
    );
    assert_eq!(
        h.petitions_of("84900000004").await,
        vec!["Rac thai khong duoc thu gom o hem 12."]
    );

    // Two parts joined by the SAR TLVs, second first.
    let mut second = deliver_sm("84900000005", 0x00, 0, b"bi vo.");
    for t in sar(0x0A0B, 2, 2) {
        second.push_tlv(t);
    }
    let mut first = deliver_sm("84900000005", 0x00, 0, b"Ong nuoc duong Le Loi ");
    for t in sar(0x0A0B, 2, 1) {
        first.push_tlv(t);
    }
    assert_eq!(status(c.deliver_and_wait(second).await), ok);
    assert_eq!(status(c.deliver_and_wait(first).await), ok);
    assert_eq!(
        h.petitions_of("84900000005").await,
        vec!["Ong nuoc duong Le Loi bi vo."]
    );

    // A long message in the message_payload TLV, short_message empty.
    let mut payload = deliver_sm("84900000008", 0x00, 0, b"");
    let long = "Xin phan anh ".repeat(30);
    payload.push_tlv(MessageDeliveryRequestTlvValue::MessagePayload(
        MessagePayload::new(AnyOctetString::from_slice(long.as_bytes())),
    ));
    assert_eq!(status(c.deliver_and_wait(payload).await), ok);
    assert_eq!(h.petitions_of("84900000008").await, vec![long.clone()]);

    // Delivery receipts (by esm_class, and by the receipted_message_id TLV) are acknowledged, never petitions.
    let receipt = b"id:abc123 sub:001 dlvrd:001 submit date:2501011200 done date:2501011201 stat:DELIVRD err:000 text:Da co dien";
    assert_eq!(
        status(
            c.deliver_and_wait(deliver_sm("84900000006", 0x00, 0x04, receipt))
                .await
        ),
        ok
    );
    let mut by_tlv = deliver_sm("84900000006", 0x00, 0x00, b"");
    by_tlv.push_tlv(MessageDeliveryRequestTlvValue::ReceiptedMessageId(
        COctetString::from_slice(b"abc124\0").expect("id"),
    ));
    assert_eq!(status(c.deliver_and_wait(by_tlv).await), ok);
    assert!(
        h.tickets_of("84900000006").await.is_empty(),
        "a delivery receipt opened a ticket"
    );

    // The SMSC's keep-alive is answered with its sequence number.
    c.send(rusmpp::Command::new(
        CommandStatus::EsmeRok,
        4242,
        rusmpp::Pdu::EnquireLink,
    ))
    .await;
    let answer = c.recv().await;
    assert_eq!(
        (answer.id(), answer.sequence_number()),
        (CommandId::EnquireLinkResp, 4242)
    );

    // The SMSC delivering the first message again (its answer was lost) stores nothing new.
    assert_eq!(
        status(
            c.deliver_and_wait(deliver_sm("84900000001", 0x00, 0, &gsm))
                .await
        ),
        ok
    );
    let tickets = h.tickets_of("84900000001").await;
    assert_eq!(tickets.len(), 1);
    assert_eq!(
        tickets[0].1.len(),
        1,
        "a redelivery added an event: {:?}",
        tickets[0].1
    );

    // Parts 1 and 3 of 3, and part 2 never comes: after the reassembly timeout what arrived is stored, saying what
    // is missing.
    assert_eq!(
        status(
            c.deliver_and_wait(deliver_sm(
                "84900000007",
                0x00,
                0x40,
                &udh8(9, 3, 1, b"Cay do ")
            ))
            .await
        ),
        ok
    );
    assert_eq!(
        status(
            c.deliver_and_wait(deliver_sm(
                "84900000007",
                0x00,
                0x40,
                &udh8(9, 3, 3, b"chan duong.")
            ))
            .await
        ),
        ok
    );
    let partial = h.wait_for_petitions("84900000007", 1).await;
    assert!(
        partial[0].starts_with("Cay do  […] chan duong."),
        "{}",
        partial[0]
    );
    assert!(partial[0].contains("thiếu phần 2"), "{}", partial[0]);

    // Shutdown unbinds.
    trigger.trigger();
    let unbind = c.recv().await;
    assert_eq!(unbind.id(), CommandId::Unbind);
    c.send(rusmpp::Command::new(
        CommandStatus::EsmeRok,
        unbind.sequence_number(),
        rusmpp::Pdu::UnbindResp,
    ))
    .await;
    tokio::time::timeout(WAIT, run)
        .await
        .expect("run returns after shutdown")
        .expect("join")
        .expect("run");
}

fn answer(to: &str, text: &str) -> OutboundMessage {
    let ticket = Uuid::now_v7();
    OutboundMessage {
        id: Uuid::now_v7(),
        ticket_id: ticket,
        reference: Reference::derive(ticket, 0),
        kind: OutboundKind::Answer,
        text: text.to_owned(),
        to: Some(to.to_owned()),
        subject: None,
        thread: vec![],
        earlier_replies: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_go_out_as_ucs2_parts_and_a_throttled_part_is_sent_again() {
    let h = Harness::start().await;
    let smsc = Smsc::start().await;
    let config = config(&smsc.addr(), 60);
    let channel = Arc::new(SmsChannel::from_config(&config).expect("config"));
    let (ctx, trigger) = h.context(config);
    let run = tokio::spawn(channel.clone().run(ctx));
    let mut c = smsc.accept().await;

    // 66 UCS2 units, then an emoji whose surrogate pair would straddle the first part's end, then more.
    let text = format!(
        "{}😀 Điện đã được khôi phục tại phường Phú Hòa, xin cảm ơn phản ánh của ông/bà.",
        "Đ".repeat(66)
    );
    let message = answer("+84 900 000 010", &text);
    let sender = channel.clone();
    let sending = tokio::spawn(async move { sender.deliver(&message).await });

    let (seq, first) = c.next_submit().await;
    c.answer_submit(seq, CommandStatus::EsmeRthrottled, "")
        .await;
    let (seq, again) = c.next_submit().await;
    assert_eq!(
        again.short_message().as_ref(),
        first.short_message().as_ref(),
        "the throttled part is sent again"
    );
    c.answer_submit(seq, CommandStatus::EsmeRok, "m1").await;
    let mut parts = vec![again];
    let total = parts[0].short_message().as_ref()[4];
    for i in 2..=total {
        let (seq, part) = c.next_submit().await;
        c.answer_submit(seq, CommandStatus::EsmeRok, &format!("m{i}"))
            .await;
        parts.push(part);
    }
    let receipt = tokio::time::timeout(WAIT, sending)
        .await
        .expect("delivered in time")
        .expect("join")
        .expect("delivered");
    let ids: Vec<String> = (1..=total).map(|i| format!("m{i}")).collect();
    assert_eq!(receipt.channel_message_id, Some(ids.join(",")));

    let units = text.encode_utf16().count();
    assert_eq!(
        usize::from(total),
        (units + 1).div_ceil(67),
        "67-unit parts, one unit lost to the unsplit pair"
    );
    let mut joined = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(u8::from(p.data_coding), 0x08, "UCS2");
        assert_eq!(u8::from(p.esm_class), 0x40, "UDHI");
        assert_eq!(p.destination_addr.as_str(), "84900000010");
        assert_eq!(p.source_addr.as_str(), "1022");
        let sm = p.short_message().as_ref();
        assert_eq!(
            &sm[..6],
            &[0x05, 0x00, 0x03, sm[3], total, i as u8 + 1],
            "8-bit reference UDH"
        );
        assert!(sm.len() <= 6 + 134);
        let last = u16::from_be_bytes([sm[sm.len() - 2], sm[sm.len() - 1]]);
        assert!(
            !(0xD800..0xDC00).contains(&last),
            "part {} ends inside a surrogate pair",
            i + 1
        );
        joined.extend_from_slice(&sm[6..]);
    }
    let units: Vec<u16> = joined
        .chunks(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .collect();
    assert_eq!(String::from_utf16(&units).expect("valid UTF-16"), text);

    // A short plain answer is one GSM 7-bit part without UDH; a refused number is a permanent failure.
    let sender = channel.clone();
    let sending = tokio::spawn(async move {
        sender
            .deliver(&answer("84900000011", "Da xu ly xong."))
            .await
    });
    let (seq, part) = c.next_submit().await;
    assert_eq!(
        (u8::from(part.data_coding), u8::from(part.esm_class)),
        (0x00, 0x00)
    );
    assert_eq!(part.short_message().as_ref(), b"Da xu ly xong.");
    c.answer_submit(seq, CommandStatus::EsmeRinvdstadr, "")
        .await;
    let failed = tokio::time::timeout(WAIT, sending)
        .await
        .expect("in time")
        .expect("join");
    assert!(
        matches!(failed, Err(DeliveryError::Permanent(_))),
        "{failed:?}"
    );

    trigger.trigger();
    let unbind = c.recv().await;
    c.send(rusmpp::Command::new(
        CommandStatus::EsmeRok,
        unbind.sequence_number(),
        rusmpp::Pdu::UnbindResp,
    ))
    .await;
    tokio::time::timeout(WAIT, run)
        .await
        .expect("run returns")
        .expect("join")
        .expect("run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_garbage_a_dropped_connection_and_an_oversized_pdu_are_survived() {
    let h = Harness::start().await;
    let smsc = Smsc::start().await;
    // Keep-alives every second of silence.
    let config = config(&smsc.addr(), 1);
    let channel = Arc::new(SmsChannel::from_config(&config).expect("config"));
    let (ctx, trigger) = h.context(config);
    let run = tokio::spawn(channel.clone().run(ctx));
    let ok = status(CommandStatus::EsmeRok);

    let mut c = smsc.accept().await;
    let probe = c.recv().await;
    assert_eq!(
        probe.id(),
        CommandId::EnquireLink,
        "an idle ESME sends enquire_link"
    );
    c.answer_enquire_link(&probe).await;

    // A deliver_sm whose body is garbage (a source address without its NUL): generic_nack, connection kept.
    c.write_raw(&[
        0, 0, 0, 19, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 77, b'A', b'B', b'C',
    ])
    .await;
    let nack = loop {
        let cmd = c.recv().await;
        if cmd.id() == CommandId::EnquireLink {
            c.answer_enquire_link(&cmd).await;
            continue;
        }
        break cmd;
    };
    assert_eq!(
        (nack.id(), nack.sequence_number(), status(nack.status())),
        (CommandId::GenericNack, 77, 0x02)
    );
    // An unknown request: generic_nack "invalid command id", connection kept.
    c.write_raw(&[0, 0, 0, 16, 0, 0, 0x02, 0x22, 0, 0, 0, 0, 0, 0, 0, 78])
        .await;
    let nack = loop {
        let cmd = c.recv().await;
        if cmd.id() == CommandId::EnquireLink {
            c.answer_enquire_link(&cmd).await;
            continue;
        }
        break cmd;
    };
    assert_eq!(
        (nack.id(), nack.sequence_number(), status(nack.status())),
        (CommandId::GenericNack, 78, 0x03)
    );
    assert_eq!(
        status(
            c.deliver_and_wait(deliver_sm("84900000020", 0, 0, b"Sau rac"))
                .await
        ),
        ok
    );

    // The SMSC drops the connection: the ESME binds again and messages keep coming.
    drop(c);
    let mut c = smsc.accept().await;
    assert_eq!(
        status(
            c.deliver_and_wait(deliver_sm("84900000020", 0, 0, b"Sau mat ket noi"))
                .await
        ),
        ok
    );

    // A PDU claiming 1 MiB: the ESME drops the connection rather than buffer it, then binds again.
    c.write_raw(&[0x00, 0x10, 0x00, 0x00, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 79])
        .await;
    assert!(
        c.closed().await,
        "the ESME kept a connection that sent an oversized PDU"
    );
    let mut c = smsc.accept().await;
    assert_eq!(
        status(
            c.deliver_and_wait(deliver_sm("84900000020", 0, 0, b"Sau goi qua lon"))
                .await
        ),
        ok
    );

    let mut texts = h.petitions_of("84900000020").await;
    texts.sort();
    assert_eq!(texts, vec!["Sau goi qua lon", "Sau mat ket noi", "Sau rac"]);

    // An SMSC that unbinds is answered, and bound to again.
    c.send(rusmpp::Command::new(
        CommandStatus::EsmeRok,
        900,
        rusmpp::Pdu::Unbind,
    ))
    .await;
    let resp = loop {
        let cmd = c.recv().await;
        if cmd.id() == CommandId::EnquireLink {
            c.answer_enquire_link(&cmd).await;
            continue;
        }
        break cmd;
    };
    assert_eq!(
        (resp.id(), resp.sequence_number()),
        (CommandId::UnbindResp, 900)
    );
    let mut c = smsc.accept().await;
    assert_eq!(
        status(
            c.deliver_and_wait(deliver_sm("84900000020", 0, 0, b"Sau khi SMSC unbind"))
                .await
        ),
        ok
    );
    assert_eq!(h.petitions_of("84900000020").await.len(), 4);

    trigger.trigger();
    loop {
        let cmd = c.recv().await;
        if cmd.id() == CommandId::Unbind {
            c.send(rusmpp::Command::new(
                CommandStatus::EsmeRok,
                cmd.sequence_number(),
                rusmpp::Pdu::UnbindResp,
            ))
            .await;
            break;
        }
        if cmd.id() == CommandId::EnquireLink {
            c.answer_enquire_link(&cmd).await;
        }
    }
    tokio::time::timeout(WAIT, run)
        .await
        .expect("run returns")
        .expect("join")
        .expect("run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_event_log_down_the_smsc_is_told_to_deliver_again_and_nothing_is_lost() {
    let mut h = Harness::start().await;
    let smsc = Smsc::start().await;
    let config = config(&smsc.addr(), 60);
    let channel = Arc::new(SmsChannel::from_config(&config).expect("config"));
    let (ctx, trigger) = h.context(config);
    let run = tokio::spawn(channel.clone().run(ctx));
    let mut c = smsc.accept().await;
    let ok = status(CommandStatus::EsmeRok);

    // Part 1 of 2 arrives while the log is up (acknowledged: it waits in memory).
    assert_eq!(
        status(
            c.deliver_and_wait(deliver_sm(
                "84900000030",
                0,
                0x40,
                &udh8(3, 2, 1, b"Nuoc sinh hoat ")
            ))
            .await
        ),
        ok
    );
    h.nats.server.kill();
    // Part 2 completes the message but cannot be stored: a temporary error, so the SMSC keeps it.
    let part2 = udh8(3, 2, 2, b"co mui la.");
    assert_eq!(
        status(
            c.deliver_and_wait(deliver_sm("84900000030", 0, 0x40, &part2))
                .await
        ),
        0x64
    );
    // A single message fares the same.
    assert_eq!(
        status(
            c.deliver_and_wait(deliver_sm("84900000031", 0, 0, b"Den duong hong"))
                .await
        ),
        0x64
    );

    h.nats.server.restart().await.expect("nats-server restarts");
    // The SMSC delivers again (until accepted, as it would on its retry schedule).
    for (source, sm) in [
        ("84900000030", part2.as_slice()),
        ("84900000031", b"Den duong hong".as_slice()),
    ] {
        let esm = if source.ends_with('0') { 0x40 } else { 0 };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let answer = status(c.deliver_and_wait(deliver_sm(source, 0, esm, sm)).await);
            if answer == ok {
                break;
            }
            assert_eq!(answer, 0x64);
            assert!(
                tokio::time::Instant::now() < deadline,
                "the log never came back for {source}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_eq!(
        h.petitions_of("84900000030").await,
        vec!["Nuoc sinh hoat co mui la."]
    );
    assert_eq!(h.petitions_of("84900000031").await, vec!["Den duong hong"]);

    trigger.trigger();
    let unbind = c.recv().await;
    c.send(rusmpp::Command::new(
        CommandStatus::EsmeRok,
        unbind.sequence_number(),
        rusmpp::Pdu::UnbindResp,
    ))
    .await;
    tokio::time::timeout(WAIT, run)
        .await
        .expect("run returns")
        .expect("join")
        .expect("run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_reference_from_the_same_number_within_the_hour_is_a_second_petition_not_dropped()
{
    let h = Harness::start().await;
    let smsc = Smsc::start().await;
    let config = config(&smsc.addr(), 60);
    let channel = Arc::new(SmsChannel::from_config(&config).expect("config"));
    let (ctx, trigger) = h.context(config);
    let run = tokio::spawn(channel.clone().run(ctx));
    let mut c = smsc.accept().await;
    let ok = status(CommandStatus::EsmeRok);
    let from = "84900000040";
    let mut send = async |seq: u8, body: &[u8]| {
        status(
            c.deliver_and_wait(deliver_sm(from, 0, 0x40, &udh8(42, 2, seq, body)))
                .await,
        )
    };

    assert_eq!(send(1, b"Mat dien ").await, ok);
    assert_eq!(send(2, b"o Phu Hoa.").await, ok);
    // The SMSC sends the completing part again (our answer was lost): nothing new.
    assert_eq!(send(2, b"o Phu Hoa.").await, ok);
    assert_eq!(h.petitions_of(from).await, vec!["Mat dien o Phu Hoa."]);
    // Minutes later the citizen's phone sends its next long message under the same 8-bit reference.
    assert_eq!(send(1, b"Den nay van ").await, ok);
    assert_eq!(send(2, b"chua co dien.").await, ok);
    let mut texts = h.petitions_of(from).await;
    texts.sort();
    assert_eq!(
        texts,
        vec!["Den nay van chua co dien.", "Mat dien o Phu Hoa."]
    );

    trigger.trigger();
    let unbind = c.recv().await;
    assert_eq!(unbind.id(), CommandId::Unbind);
    c.send(rusmpp::Command::new(
        CommandStatus::EsmeRok,
        unbind.sequence_number(),
        rusmpp::Pdu::UnbindResp,
    ))
    .await;
    tokio::time::timeout(WAIT, run)
        .await
        .expect("run returns")
        .expect("join")
        .expect("run");
}

/// Stops or resumes a process we started (the test's own nats-server), to hold a store in flight.
fn signal(pid: u32, which: &str) {
    let status = std::process::Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {which} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_being_stored_at_shutdown_gets_its_deliver_sm_resp_before_the_unbind() {
    let h = Harness::start().await;
    let smsc = Smsc::start().await;
    let config = config(&smsc.addr(), 60);
    let channel = Arc::new(SmsChannel::from_config(&config).expect("config"));
    let (ctx, trigger) = h.context(config);
    let run = tokio::spawn(channel.clone().run(ctx));
    let mut c = smsc.accept().await;
    let ok = status(CommandStatus::EsmeRok);
    let from = "84900000041";

    assert_eq!(
        status(
            c.deliver_and_wait(deliver_sm(from, 0, 0x40, &udh8(6, 2, 1, b"Nuoc ngap ")))
                .await
        ),
        ok
    );
    // The event log freezes, so storing the message the next part completes stays in flight.
    let pid = h.nats.server.pid().expect("nats-server pid");
    signal(pid, "-STOP");
    let last = c
        .deliver(deliver_sm(
            from,
            0,
            0x40,
            &udh8(6, 2, 2, b"duong Tran Phu."),
        ))
        .await;
    // The session reads in order: once it answers this enquire_link it has handed the part to the worker.
    c.send(rusmpp::Command::new(
        CommandStatus::EsmeRok,
        4343,
        rusmpp::Pdu::EnquireLink,
    ))
    .await;
    let probe = c.recv().await;
    assert_eq!(
        (probe.id(), probe.sequence_number()),
        (CommandId::EnquireLinkResp, 4343)
    );
    trigger.trigger();
    // Shutdown while the store is in flight; the log comes back a moment later, well within the drain timeout.
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(pid, "-CONT");
    let first = c.recv().await;
    assert_eq!(
        (first.id(), first.sequence_number(), status(first.status())),
        (CommandId::DeliverSmResp, last, ok),
        "the part stored during shutdown is acknowledged before the unbind"
    );
    let unbind = c.recv().await;
    assert_eq!(unbind.id(), CommandId::Unbind);
    c.send(rusmpp::Command::new(
        CommandStatus::EsmeRok,
        unbind.sequence_number(),
        rusmpp::Pdu::UnbindResp,
    ))
    .await;
    tokio::time::timeout(WAIT, run)
        .await
        .expect("run returns")
        .expect("join")
        .expect("run");
    assert_eq!(
        h.petitions_of(from).await,
        vec!["Nuoc ngap duong Tran Phu."],
        "one whole petition, no lone part"
    );
}
