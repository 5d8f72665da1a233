//! The webhook over real HTTP: signatures checked (ok, bad, missing, stale), a citizen's messages within the
//! window made into one petition with its photo and location, redeliveries stored once, follows recorded on the
//! citizen, echoes ignored, an answer to a question joining the waiting ticket, and a restarted worker finishing
//! what an earlier one left in the inbox, once.

use std::time::Duration;

use hotline_channel::{ChannelAdapter, OutboundKind, OutboundMessage};
use hotline_channel_zalo::inbox;
use hotline_domain::TicketEvent;
use hotline_domain::event::PetitionReceived;
use serde_json::json;

use crate::standin::{PNG, Zalo};
use crate::{Harness, Signature, config, now_ms, post, serve, text_event, user_event};

fn petition(events: &[TicketEvent]) -> &PetitionReceived {
    match events.first() {
        Some(TicketEvent::PetitionReceived(p)) => p,
        other => panic!("no petition: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_correctly_signed_fresh_events_are_stored() {
    let h = Harness::start().await;
    let s = serve(&h, config(json!({})), true).await;

    let good = text_event("1001", "m-good", "Đèn đường khu phố 2 phường Phú Hòa bị tắt cả tuần nay");
    let r = post(&s.addr, &good, Signature::Valid).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // A wrong MAC, a MAC made with the app secret, none at all: 401 and nothing stored.
    let forged = text_event("1002", "m-forged", "giả mạo");
    let r = post(&s.addr, &forged, Signature::Given(format!("mac={}", "0".repeat(64)))).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (401, Some("invalid_signature")), "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&forged).expect("json");
    let wrong_key = hotline_channel_zalo::signature::mac(crate::APP_ID, &forged, v["timestamp"].as_str().expect("ts"), "app-secret");
    let r = post(&s.addr, &forged, Signature::Given(wrong_key)).await;
    assert_eq!(r.status, 401);
    let r = post(&s.addr, &forged, Signature::None).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (401, Some("missing_signature")));

    // Correctly signed but 27 hours old, beyond the default 26 h window: 401.
    let stale = user_event("user_send_text", "1003", "m-stale", json!({"text": "cũ"}), now_ms() - 27 * 3_600_000);
    let r = post(&s.addr, &stale, Signature::Valid).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (401, Some("stale_event")), "{}", r.text());

    // Regression: Zalo retries an event it could not deliver for hours (an outage of ours) with its original
    // timestamp; the old 5-minute default refused those retries and the citizen's message was lost.
    let retried = user_event("user_send_text", "1005", "m-late", json!({"text": "Cống thoát nước bị tắc từ sáng"}), now_ms() - 2 * 3_600_000);
    let r = post(&s.addr, &retried, Signature::Valid).await;
    assert_eq!(r.status, 200, "a retry two hours late is taken: {}", r.text());

    // Signed, but no event: 400. Not JSON at all: 400.
    let no_msg_id = json!({"app_id": crate::APP_ID, "event_name": "user_send_text", "sender": {"id": "1004"},
        "message": {"text": "x"}, "timestamp": now_ms().to_string()})
    .to_string();
    let r = post(&s.addr, no_msg_id.as_bytes(), Signature::Valid).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (400, Some("malformed_event")), "{}", r.text());
    let r = post(&s.addr, b"{not json", Signature::Given("mac=00".into())).await;
    assert_eq!(r.status, 400, "{}", r.text());

    let tickets = h.wait_for_tickets("1001", 1).await;
    assert!(petition(&tickets[0].1).text.contains("Đèn đường"));
    let tickets = h.wait_for_tickets("1005", 1).await;
    assert!(petition(&tickets[0].1).text.contains("Cống thoát nước"));
    // Give the worker time to have stored anything else it had, then look: nothing for the refused events.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for user in ["1002", "1003", "1004"] {
        assert!(h.tickets_of(user).await.is_empty(), "{user}");
    }
    let (ctx, _t) = h.context(json!({}));
    assert!(crate::live_keys(&ctx.state, "inbox.").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_becomes_a_petition_of_the_zalo_citizen() {
    let h = Harness::start().await;
    let s = serve(&h, config(json!({})), true).await;
    let text = "Ổ gà lớn trên đường ĐT743 gần ngã tư 550, rất nguy hiểm cho xe máy";
    let r = post(&s.addr, &text_event("2468458835296197922", "96d3cdf3af150460909", text), Signature::Valid).await;
    assert_eq!(r.status, 200);
    let tickets = h.wait_for_tickets("2468458835296197922", 1).await;
    let p = petition(&tickets[0].1);
    assert_eq!(p.channel, "zalo");
    assert_eq!(p.channel_ref.as_deref(), Some("96d3cdf3af150460909"));
    assert_eq!(p.text, text);
    let citizen = p.citizen.as_ref().expect("citizen");
    assert_eq!(citizen.zalo_id.as_deref(), Some("2468458835296197922"));
    assert_eq!(citizen.phone, None);
    assert_eq!(tickets[0].0, h.intake.ticket_id_for("zalo", "96d3cdf3af150460909"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_photo_and_pin_within_the_window_make_one_petition() {
    let h = Harness::start().await;
    let zalo = Zalo::new();
    zalo.files.lock().expect("lock").insert("o-ga.png".into(), PNG.to_vec());
    let base = zalo.serve().await;
    let s = serve(&h, config(json!({"group_window_secs": "2"})), true).await;
    let user = "3001";
    let at = now_ms();
    let events = [
        user_event("user_send_text", user, "g1", json!({"text": "Ổ gà sâu giữa đường"}), at),
        user_event(
            "user_send_image",
            user,
            "g2",
            json!({"text": "", "attachments": [{"type": "image", "payload": {"url": format!("{base}/files/o-ga.png"), "thumbnail": format!("{base}/files/o-ga.png")}}]}),
            at + 1,
        ),
        user_event(
            "user_send_location",
            user,
            "g3",
            // Near the Sóng Thần station, Dĩ An: coordinates as strings, as Zalo sends them.
            json!({"attachments": [{"type": "location", "payload": {"coordinates": {"latitude": "10.9030", "longitude": "106.7560"}}}]}),
            at + 2,
        ),
        // A photo whose link no longer works: kept as its link.
        user_event(
            "user_send_image",
            user,
            "g4",
            json!({"attachments": [{"type": "image", "payload": {"url": format!("{base}/files/gone.jpg")}}]}),
            at + 3,
        ),
    ];
    for body in &events {
        assert_eq!(post(&s.addr, body, Signature::Valid).await.status, 200);
    }
    let tickets = h.wait_for_tickets(user, 1).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let tickets_after = h.tickets_of(user).await;
    assert_eq!(tickets_after.len(), 1, "one petition: {tickets_after:#?}");
    let p = petition(&tickets[0].1);
    assert_eq!(p.channel_ref.as_deref(), Some("g1"), "named by its first message");
    assert_eq!(p.text, "Ổ gà sâu giữa đường");
    let location = p.location.as_ref().expect("location");
    assert_eq!((location.lat, location.lon), (Some(10.9030), Some(106.7560)));
    assert_eq!(location.area.as_deref(), Some("dian"));
    assert_eq!(p.attachments.len(), 2, "{:?}", p.attachments);
    let photo = &p.attachments[0];
    assert_eq!(photo.name, "o-ga.png");
    assert_eq!(photo.media_type.as_deref(), Some("image/png"));
    assert_eq!(photo.size, Some(PNG.len() as u64));
    let (ctx, _t) = h.context(json!({}));
    assert_eq!(ctx.blobs.get(photo.sha256.as_deref().expect("kept")).expect("read"), Some(PNG.to_vec()));
    let gone = &p.attachments[1];
    assert_eq!((gone.sha256.as_deref(), gone.url.clone()), (None, Some(format!("{base}/files/gone.jpg"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_message_is_stored_once_before_and_after_it_is_filed() {
    let h = Harness::start().await;
    let s = serve(&h, config(json!({})), true).await;
    let user = "4001";
    let first = text_event(user, "d1", "Rác thải đổ trộm bên đường Mỹ Phước Tân Vạn");
    let second = user_event("user_send_text", user, "d2", json!({"text": "Đã 3 ngày rồi"}), now_ms() + 1);
    for body in [&first, &first, &second, &second] {
        assert_eq!(post(&s.addr, body, Signature::Valid).await.status, 200);
    }
    let tickets = h.wait_for_tickets(user, 1).await;
    let p = petition(&tickets[0].1);
    assert_eq!(p.text, "Rác thải đổ trộm bên đường Mỹ Phước Tân Vạn\nĐã 3 ngày rồi");
    // Zalo delivers both again after they were filed (the second was not its group's first).
    for body in [&first, &second] {
        assert_eq!(post(&s.addr, body, Signature::Valid).await.status, 200);
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let tickets = h.tickets_of(user).await;
    assert_eq!(tickets.len(), 1, "{tickets:#?}");
    assert_eq!(tickets[0].1.len(), 1, "nothing added to the ticket: {:#?}", tickets[0].1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_are_recorded_on_the_citizen_and_echoes_ignored() {
    let h = Harness::start().await;
    let zalo = Zalo::new();
    let base = zalo.serve().await;
    let s = serve(
        &h,
        config(json!({"access_token": "acc-0", "refresh_token": "ref-0", "app_secret": crate::standin::APP_SECRET, "api_base": base, "oauth_base": base})),
        true,
    )
    .await;
    let user = "8381381219617247797";
    let follow = |name: &str, at: u64| {
        json!({"app_id": crate::APP_ID, "oa_id": crate::OA_ID, "user_id_by_app": "1923626015168953374", "event_name": name,
            "timestamp": at.to_string(), "source": "oa_profile", "follower": {"id": user}})
        .to_string()
        .into_bytes()
    };
    let at = now_ms();
    assert_eq!(post(&s.addr, &follow("follow", at - 2000), Signature::Valid).await.status, 200);
    assert_eq!(post(&s.addr, &follow("unfollow", at), Signature::Valid).await.status, 200);
    // A late redelivery of the older follow does not undo the unfollow.
    assert_eq!(post(&s.addr, &follow("follow", at - 2000), Signature::Valid).await.status, 200);
    let (ctx, _t) = h.context(json!({}));
    let state = inbox::follower(&ctx.state, user).await.expect("state").expect("recorded");
    assert_eq!((state.following, state.at_ms), (false, at));

    // The OA's own message (sent from the Zalo admin page) and a read receipt: 200, nothing stored.
    let echo = json!({"app_id": crate::APP_ID, "sender": {"id": crate::OA_ID}, "recipient": {"id": user},
        "event_name": "oa_send_text", "message": {"text": "Cảm ơn anh", "msg_id": "e1"}, "timestamp": now_ms().to_string()})
    .to_string();
    assert_eq!(post(&s.addr, echo.as_bytes(), Signature::Valid).await.status, 200);
    let seen = json!({"app_id": crate::APP_ID, "sender": {"id": crate::OA_ID}, "recipient": {"id": user},
        "event_name": "user_seen_message", "message": {"msg_ids": ["e1"]}, "timestamp": now_ms().to_string()})
    .to_string();
    assert_eq!(post(&s.addr, seen.as_bytes(), Signature::Valid).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(h.tickets_of(user).await.is_empty());
    assert!(h.tickets_of(crate::OA_ID).await.is_empty());
    assert!(crate::live_keys(&ctx.state, "inbox.").await.is_empty());

    // An answer to the unfollowed citizen fails for good without calling Zalo.
    let ticket = uuid::Uuid::now_v7();
    let answer = OutboundMessage {
        id: uuid::Uuid::now_v7(),
        ticket_id: ticket,
        reference: hotline_domain::Reference::derive(ticket, 0),
        kind: OutboundKind::Answer,
        text: "Đã xử lý".into(),
        to: Some(user.into()),
        subject: None,
        thread: vec![],
        earlier_replies: vec![],
    };
    let e = s.channel.deliver(&answer).await.expect_err("unfollowed");
    assert!(matches!(&e, hotline_channel::DeliveryError::Permanent(m) if m.contains("unfollowed")), "{e:?}");
    assert!(zalo.messages.lock().expect("lock").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_after_a_question_joins_the_waiting_ticket() {
    let h = Harness::start().await;
    let zalo = Zalo::new();
    let base = zalo.serve().await;
    let s = serve(
        &h,
        config(json!({"access_token": "acc-0", "refresh_token": "ref-0", "app_secret": crate::standin::APP_SECRET, "api_base": base, "oauth_base": base})),
        true,
    )
    .await;
    let user = "5001";
    assert_eq!(post(&s.addr, &text_event(user, "q1", "Cây đổ chắn đường"), Signature::Valid).await.status, 200);
    let ticket = h.wait_for_tickets(user, 1).await[0].0;
    h.ask(ticket).await;
    // The outbound consumer hands the question to the channel: it goes to Zalo.
    let question = OutboundMessage {
        id: uuid::Uuid::now_v7(),
        ticket_id: ticket,
        reference: hotline_domain::Reference::derive(ticket, 0),
        kind: OutboundKind::Question,
        text: "Địa chỉ cụ thể ở đâu?".into(),
        to: Some(user.into()),
        subject: None,
        thread: vec![],
        earlier_replies: vec![],
    };
    s.channel.deliver(&question).await.expect("question sent");
    assert_eq!(zalo.texts_to(user), vec!["Địa chỉ cụ thể ở đâu?".to_owned()]);

    let reply = user_event("user_send_text", user, "q2", json!({"text": "Số 12 đường Nguyễn Du, phường Phú Cường"}), now_ms());
    assert_eq!(post(&s.addr, &reply, Signature::Valid).await.status, 200);
    let events = h
        .wait_for_events(ticket, "the reply joins the ticket", |e| e.iter().any(|e| matches!(e, TicketEvent::CitizenReplied(_))))
        .await;
    let replied = events.iter().find_map(|e| match e {
        TicketEvent::CitizenReplied(r) => Some(r),
        _ => None,
    });
    let replied = replied.expect("replied");
    assert_eq!(replied.text, "Số 12 đường Nguyễn Du, phường Phú Cường");
    assert_eq!(replied.channel_ref.as_deref(), Some("q2"));
    assert_eq!(h.tickets_of(user).await.len(), 1, "no second petition");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_left_in_the_inbox_are_filed_once_by_the_next_worker() {
    let h = Harness::start().await;
    let zalo = Zalo::new();
    zalo.files.lock().expect("lock").insert("anh.png".into(), PNG.to_vec());
    let base = zalo.serve().await;
    // The process that accepted the messages stops before its worker filed them.
    let first = serve(&h, config(json!({"api_base": base})), false).await;
    let user = "6001";
    let at = now_ms();
    assert_eq!(post(&first.addr, &user_event("user_send_text", user, "k1", json!({"text": "Nước ngập sâu"}), at), Signature::Valid).await.status, 200);
    let photo = json!({"attachments": [{"type": "image", "payload": {"url": format!("{base}/slow/anh.png")}}]});
    assert_eq!(post(&first.addr, &user_event("user_send_image", user, "k2", photo, at + 1), Signature::Valid).await.status, 200);
    let (ctx, _t) = h.context(json!({}));
    assert_eq!(crate::live_keys(&ctx.state, "inbox.").await.len(), 2);
    assert!(h.tickets_of(user).await.is_empty());

    // A second process's worker starts on them and is killed while fetching the photo (the link is slow).
    let second = serve(&h, config(json!({"api_base": base, "http_timeout_secs": "120"})), true).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    second.worker.as_ref().expect("worker").abort();
    assert!(h.tickets_of(user).await.is_empty(), "killed before filing");
    assert_eq!(crate::live_keys(&ctx.state, "inbox.").await.len(), 2, "nothing acknowledged was lost");

    // A third one takes over once the dead worker's lease ran out, and files both messages as one petition.
    let third = serve(&h, config(json!({"api_base": base, "http_timeout_secs": "2"})), true).await;
    let tickets = h.wait_for_tickets(user, 1).await;
    let p = petition(&tickets[0].1);
    assert_eq!(p.channel_ref.as_deref(), Some("k1"));
    assert_eq!(p.text, "Nước ngập sâu");
    assert_eq!(p.attachments.len(), 1);
    // Restarted once more: nothing is filed twice.
    third.trigger.trigger();
    third.worker.expect("worker").await.expect("stopped");
    let fourth = serve(&h, config(json!({"api_base": base})), true).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let tickets = h.tickets_of(user).await;
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].1.len(), 1, "{:#?}", tickets[0].1);
    assert!(crate::live_keys(&ctx.state, "inbox.").await.is_empty());
    drop((first, second, fourth));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_number_the_citizen_shared_goes_on_their_petition() {
    let h = Harness::start().await;
    let s = serve(&h, config(json!({})), true).await;
    let user = "9001";
    let info = json!({"app_id": crate::APP_ID, "event_name": "user_submit_info", "timestamp": now_ms().to_string(),
        "sender": {"id": user}, "recipient": {"id": crate::OA_ID},
        "info": {"address": "12 Nguyễn Du", "phone": "0912 345 678", "city": "Bình Dương", "district": "Dĩ An", "name": "Nguyễn Văn A"}})
    .to_string();
    assert_eq!(post(&s.addr, info.as_bytes(), Signature::Valid).await.status, 200);
    assert_eq!(post(&s.addr, &text_event(user, "p1", "Mất nước sinh hoạt 2 ngày"), Signature::Valid).await.status, 200);
    let tickets = h.wait_for_tickets(user, 1).await;
    let citizen = petition(&tickets[0].1).citizen.clone().expect("citizen");
    assert_eq!(citizen.zalo_id.as_deref(), Some(user));
    assert_eq!(citizen.phone.as_deref(), Some("84912345678"), "normalised, so an SMS fallback can reach it");
    assert_eq!(citizen.name.as_deref(), Some("Nguyễn Văn A"));
}
