//! The inbox worker's housekeeping, on a real nats-server: no worker without a webhook, personal data pruned
//! after its retention.

use std::time::Duration;

use hotline_channel::ChannelAdapter;
use hotline_channel_zalo::ZaloChannel;
use hotline_channel_zalo::inbox::{Contact, Inbox};
use serde_json::json;

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
