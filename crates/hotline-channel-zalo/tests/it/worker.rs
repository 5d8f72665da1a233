//! The inbox worker's housekeeping and its lease, on a real nats-server: no worker without a webhook, personal
//! data pruned after its retention, and a worker whose lease ran out during a slow group files nothing (a message
//! goes into at most one petition).

use std::time::Duration;

use hotline_channel::ChannelAdapter;
use hotline_channel_zalo::ZaloChannel;
use hotline_channel_zalo::inbox::{Contact, Inbox};
use hotline_domain::TicketEvent;
use serde_json::json;

use crate::standin::{PNG, Zalo};
use crate::{Harness, Signature, config, live_keys, now_ms, post, serve, user_event};

const DAY_MS: u64 = 24 * 3600 * 1000;

/// Regression: the worker ran in every `hotline up`, Zalo configured or not, looking at the state every second;
/// and it filed whatever an inbox held even in a process that cannot take webhook events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_oa_secret_key_no_worker_runs() {
    let h = Harness::start().await;
    // A process with the key (and no worker) accepts a message into the inbox.
    let receiving = serve(&h, config(json!({})), false).await;
    let body = user_event("user_send_text", "8101", "w1", json!({"text": "Rác thải ứ đọng ở chợ"}), now_ms());
    assert_eq!(post(&receiving.addr, &body, Signature::Valid).await.status, 200);

    // A process without Zalo settings: its run() returns at once and touches nothing.
    let bare = std::sync::Arc::new(ZaloChannel::from_config(&json!(null)).expect("empty section"));
    let (ctx, _stop) = h.context(json!(null));
    assert!(bare.http_routes(&ctx).is_none(), "no webhook without the key");
    tokio::time::timeout(Duration::from_secs(2), bare.clone().run(ctx.clone()))
        .await
        .expect("run returns at once without oa_secret_key")
        .expect("ok");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(h.tickets_of("8101").await.is_empty(), "nothing filed by a process without Zalo");
    assert_eq!(live_keys(&ctx.state, "inbox.").await.len(), 1, "the message waits for a Zalo process");
    assert!(ctx.state.get("worker").await.expect("get").is_none(), "no lease taken");
}

/// Regression: `contact.<user>` (phone and name in clear) and unfollows were kept for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_details_and_unfollows_are_dropped_after_their_retention() {
    let h = Harness::start().await;
    let channel = ZaloChannel::from_config(&config(json!({"contact_retention_days": "30"}))).expect("config");
    let (ctx, _stop) = h.context(json!({}));
    let inbox = Inbox { state: ctx.state.clone(), wake: Default::default() };
    let now = now_ms();
    let contact = |at_ms| Contact { phone: Some("84912345678".into()), name: Some("Nguyễn Văn A".into()), at_ms };
    inbox.record_contact("old", &contact(now - 31 * DAY_MS)).await.expect("contact");
    inbox.record_contact("recent", &contact(now - 29 * DAY_MS)).await.expect("contact");
    inbox.record_follow("gone-long-ago", false, now - 31 * DAY_MS).await.expect("unfollow");
    inbox.record_follow("gone-lately", false, now - 2 * DAY_MS).await.expect("unfollow");
    inbox.record_follow("follows", true, now - 2 * 3600 * 1000).await.expect("follow");

    let removed = channel.worker(&ctx).prune(now).await.expect("prune");
    assert_eq!(removed, 2);
    let contacts = live_keys(&ctx.state, "contact.").await;
    assert_eq!(contacts, vec!["contact.recent".to_owned()]);
    let mut followers = live_keys(&ctx.state, "follower.").await;
    followers.sort();
    assert_eq!(followers, vec!["follower.follows".to_owned(), "follower.gone-lately".to_owned()]);
    // Pruning again finds nothing more (the removed keys may still be listed for a minute: that is fine).
    assert_eq!(channel.worker(&ctx).prune(now).await.expect("prune"), 0);
}

/// Regression: the lease was checked per citizen but not while a group was being built, and downloads can
/// outlast the 15 s lease. A second process took over and, with an earlier message arrived meanwhile, filed the
/// group under that message; the first process then filed its own group too: a second petition repeating the
/// photo. Now a worker renews its lease after building and files nothing when it lost it, and a group whose
/// messages another group already took is not filed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_its_lease_while_downloading_files_nothing() {
    let h = Harness::start().await;
    let zalo = Zalo::new();
    zalo.files.lock().expect("lock").insert("anh.png".into(), PNG.to_vec());
    let base = zalo.serve().await;
    let user = "8301";
    let at = now_ms();

    // Process A: its worker starts on a photo whose download hangs for 23 s (longer than the lease).
    let a = serve(&h, config(json!({"api_base": base, "http_timeout_secs": "23"})), true).await;
    let photo = json!({"text": "Ảnh cây đổ", "attachments": [{"type": "image", "payload": {"url": format!("{base}/slow/anh.png")}}]});
    assert_eq!(post(&a.addr, &user_event("user_send_image", user, "late-photo", photo, at), Signature::Valid).await.status, 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // Process B starts, and an earlier message of the citizen arrives (Zalo's retry of an event sent before).
    let b = serve(&h, config(json!({"api_base": base, "http_timeout_secs": "2"})), true).await;
    let earlier = json!({"text": "Cây xanh đổ chắn đường Nguyễn Trãi"});
    assert_eq!(post(&b.addr, &user_event("user_send_text", user, "early-text", earlier, at - 5000), Signature::Valid).await.status, 200);

    // B takes over when A's lease runs out and files both messages as one petition (first: the earlier one).
    let tickets = h.wait_for_tickets(user, 1).await;
    let TicketEvent::PetitionReceived(p) = &tickets[0].1[0] else { panic!("a petition: {:?}", tickets[0].1) };
    assert_eq!(p.channel_ref.as_deref(), Some("early-text"));
    assert_eq!(p.attachments.len(), 1);

    // A's download ends 23 s after it began (about 24.5 s after `at`): A must not file its own group of the photo.
    tokio::time::sleep(Duration::from_millis((at + 29_000).saturating_sub(now_ms()))).await;
    let tickets = h.tickets_of(user).await;
    assert_eq!(tickets.len(), 1, "one petition, not a second one under the photo's id: {tickets:#?}");
    let (ctx, _t) = h.context(json!({}));
    assert!(live_keys(&ctx.state, "batch.").await.is_empty(), "no group left behind");
    drop((a, b));
}

/// A group written by a worker that stalled past its lease, one of whose messages another group already filed:
/// it is not handed on (its text repeats that message); its other message is filed on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_overlapping_one_already_filed_is_not_filed_again() {
    let h = Harness::start().await;
    let user = "8401";
    let receiving = serve(&h, config(json!({})), false).await;
    let body = user_event("user_send_text", user, "m3", json!({"text": "Thêm: nước tràn vào nhà"}), now_ms());
    assert_eq!(post(&receiving.addr, &body, Signature::Valid).await.status, 200);
    let (ctx, _stop) = h.context(json!({}));
    // m2 was filed in the group of m1; the stalled worker's group of m2 and m3 is left behind (the entries as the
    // worker writes them).
    let seen = json!({"first": "m1", "at_ms": now_ms()}).to_string();
    ctx.state.set(&format!("seen.{user}.m2"), seen.as_bytes()).await.expect("seen");
    let stale = json!({"user": user, "members": ["m2", "m3"], "message_id": "m2", "text": "Cống vỡ\nThêm: nước tràn vào nhà"});
    ctx.state.set(&format!("batch.{user}.m2"), stale.to_string().as_bytes()).await.expect("batch");

    let channel = ZaloChannel::from_config(&config(json!({}))).expect("config");
    let worker = channel.worker(&ctx);
    tokio::time::sleep(Duration::from_millis(1100)).await; // m3's grouping window
    worker.round().await.expect("round");
    worker.round().await.expect("round");
    let tickets = h.tickets_of(user).await;
    assert_eq!(tickets.len(), 1, "{tickets:#?}");
    let TicketEvent::PetitionReceived(p) = &tickets[0].1[0] else { panic!("a petition: {:?}", tickets[0].1) };
    assert_eq!((p.channel_ref.as_deref(), p.text.as_str()), (Some("m3"), "Thêm: nước tràn vào nhà"));
    assert!(live_keys(&ctx.state, "batch.").await.is_empty());
    assert!(live_keys(&ctx.state, "inbox.").await.is_empty());
    let m2: serde_json::Value = serde_json::from_slice(&ctx.state.get(&format!("seen.{user}.m2")).await.expect("get").expect("kept").0).expect("json");
    assert_eq!(m2["first"], "m1", "the other group's marker is not overwritten");
}
