//! Answers through the OA customer-service message API, against the stand-in: the wire format, long texts in
//! pieces, an expired token refreshed once (even by two processes at once) with the single-use refresh token
//! kept in the channel's state, and Zalo's refusals mapped to retry or give up.

use std::sync::Arc;

use hotline_channel::{ChannelAdapter, DeliveryError, OutboundKind, OutboundMessage};
use hotline_channel_zalo::ZaloChannel;
use hotline_domain::Reference;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Harness;
use crate::standin::{APP_SECRET, Answer, Zalo};

fn reply(to: &str, text: &str) -> OutboundMessage {
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

fn settings(base: &str) -> Value {
    json!({
        "app_id": crate::APP_ID, "app_secret": APP_SECRET,
        "access_token": "acc-0", "refresh_token": "ref-0",
        "api_base": base, "oauth_base": base, "http_timeout_secs": "5",
    })
}

/// A channel as one process has it (its own token keeper), on the harness's state.
fn process(h: &Harness, config: Value) -> Arc<ZaloChannel> {
    let channel = Arc::new(ZaloChannel::from_config(&config).expect("config"));
    let (ctx, _trigger) = h.context(config);
    // The system hands the context over when it mounts the routes (the worker is not needed for answers).
    let _ = channel.http_routes(&ctx);
    channel
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_goes_to_the_citizen_with_the_access_token_header() {
    let h = Harness::start().await;
    let zalo = Zalo::new();
    let base = zalo.serve().await;
    let channel = process(&h, settings(&base));
    let receipt = channel.deliver(&reply("2468458835296197922", "Đã sửa xong ổ gà.")).await.expect("sent");
    assert_eq!(receipt.channel_message_id.as_deref(), Some("zmsg1"));
    let sent = zalo.messages.lock().expect("lock").clone();
    assert_eq!(sent, vec![("acc-0".into(), "2468458835296197922".into(), "Đã sửa xong ổ gà.".into())]);
    assert_eq!(zalo.refresh_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_answer_goes_in_pieces_and_a_retry_sends_only_what_is_missing() {
    let h = Harness::start().await;
    let zalo = Zalo::new();
    let base = zalo.serve().await;
    let channel = process(&h, settings(&base));
    let text = "Trả lời của Sở Giao thông vận tải về phản ánh. ".repeat(100);
    let message = reply("7001", &text);
    // The second piece meets Zalo's rate limit: the delivery is retried later.
    zalo.script("7001", vec![None, Some(Answer::Error(-32))]);
    let e = channel.deliver(&message).await.expect_err("rate limited");
    assert!(matches!(&e, DeliveryError::Retryable(m) if m.contains("-32")), "{e:?}");
    channel.deliver(&message).await.expect("sent on retry");
    let texts = zalo.texts_to("7001");
    assert_eq!(texts.len(), 3, "the first piece is not sent twice: {texts:?}");
    assert!(texts.iter().all(|t| t.chars().count() <= 2000));
    assert_eq!(texts.join(" "), text.trim());
    // Handed over again after success (a crash before ReplySent was stored): nothing is sent again.
    channel.deliver(&message).await.expect("already sent");
    assert_eq!(zalo.texts_to("7001").len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refreshed_once_and_the_new_pair_is_kept() {
    let h = Harness::start().await;
    let zalo = Zalo::new();
    let base = zalo.serve().await;
    let channel = process(&h, settings(&base));
    channel.deliver(&reply("7101", "một")).await.expect("sent");
    zalo.expire_access();
    channel.deliver(&reply("7101", "hai")).await.expect("sent after refresh");
    assert_eq!(zalo.refreshes.lock().expect("lock").clone(), vec![("ref-0".to_owned(), 0)]);
    let tokens: Vec<String> = zalo.messages.lock().expect("lock").iter().map(|(t, _, _)| t.clone()).collect();
    assert_eq!(tokens, vec!["acc-0", "acc-1"]);

    // The pair is in the channel's state: a restarted process (same settings, whose refresh token is used up)
    // sends with the new token and never presents the old refresh token.
    let restarted = process(&h, settings(&base));
    restarted.deliver(&reply("7101", "ba")).await.expect("sent by the restarted process");
    assert_eq!(zalo.messages.lock().expect("lock").last().map(|m| m.0.clone()), Some("acc-1".into()));
    zalo.expire_access();
    restarted.deliver(&reply("7101", "bốn")).await.expect("refreshed with the stored refresh token");
    assert_eq!(
        zalo.refreshes.lock().expect("lock").clone(),
        vec![("ref-0".to_owned(), 0), ("ref-1".to_owned(), 0)],
        "each refresh token presented once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_meeting_an_expired_token_refresh_it_once() {
    let h = Harness::start().await;
    let zalo = Zalo::new();
    let base = zalo.serve().await;
    let a = process(&h, settings(&base));
    let b = process(&h, settings(&base));
    a.deliver(&reply("7201", "khởi động")).await.expect("seeded");
    zalo.expire_access();
    let (ma, mb) = (reply("7201", "từ A"), reply("7202", "từ B"));
    let (ra, rb) = tokio::join!(a.deliver(&ma), b.deliver(&mb));
    ra.expect("A sent");
    rb.expect("B sent");
    let refreshes = zalo.refreshes.lock().expect("lock").clone();
    assert_eq!(refreshes, vec![("ref-0".to_owned(), 0)], "one refresh, no reuse of a refresh token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_settings_tokens_replace_stored_ones_and_a_used_refresh_token_means_reauthorise() {
    let h = Harness::start().await;
    let zalo = Zalo::new();
    let base = zalo.serve().await;
    // The settings' refresh token was used up elsewhere: Zalo answers -14020.
    *zalo.valid_refresh.lock().expect("lock") = Some("ref-other".into());
    zalo.expire_access();
    let channel = process(&h, settings(&base));
    let e = channel.deliver(&reply("7301", "x")).await.expect_err("cannot refresh");
    assert!(matches!(&e, DeliveryError::Permanent(m) if m.contains("-14020") && m.contains("authorise")), "{e:?}");

    // An admin authorises again and puts the new pair in the settings: it replaces the stored one.
    zalo.valid_access.lock().expect("lock").insert("acc-new".into());
    let mut fresh = settings(&base);
    fresh["access_token"] = json!("acc-new");
    fresh["refresh_token"] = json!("ref-other");
    let restarted = process(&h, fresh);
    restarted.deliver(&reply("7301", "y")).await.expect("sent with the new pair");
    assert_eq!(zalo.messages.lock().expect("lock").last().map(|m| m.0.clone()), Some("acc-new".into()));

    // Without any token at all the reply fails with what to do.
    let bare = Harness::start().await;
    let channel = process(&bare, json!({"api_base": base}));
    let e = channel.deliver(&reply("7301", "z")).await.expect_err("no token");
    assert!(matches!(&e, DeliveryError::Permanent(m) if m.contains("access_token")), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zalo_refusals_map_to_retry_or_give_up() {
    let h = Harness::start().await;
    let zalo = Zalo::new();
    let base = zalo.serve().await;
    let channel = process(&h, settings(&base));
    let cases: [(&str, Answer, bool, &str); 7] = [
        ("u213", Answer::Error(-213), false, "does not follow"),
        ("u230", Answer::Error(-230), false, "7 days"),
        ("u232", Answer::Error(-232), false, "not interacted"),
        ("u227", Answer::Error(-227), false, "45 days"),
        ("u217", Answer::Error(-217), false, "blocked"),
        ("u32", Answer::Error(-32), true, "rate limit"),
        ("u500", Answer::Http(502), true, "502"),
    ];
    for (user, answer, retry, words) in cases {
        zalo.script(user, vec![Some(answer)]);
        let e = channel.deliver(&reply(user, "Trả lời")).await.expect_err(user);
        match (&e, retry) {
            (DeliveryError::Retryable(m), true) | (DeliveryError::Permanent(m), false) => {
                assert!(m.contains(words), "{user}: {m}");
            }
            _ => panic!("{user}: {e:?}"),
        }
    }
    // HTTP 401 means a bad token: refreshed, then sent.
    zalo.script("u401", vec![Some(Answer::Http(401))]);
    channel.deliver(&reply("u401", "Trả lời")).await.expect("sent after refresh");
    assert_eq!(zalo.refresh_count(), 1);
    // A citizen without a Zalo id cannot be written to.
    let mut nobody = reply("x", "y");
    nobody.to = None;
    assert!(matches!(channel.deliver(&nobody).await, Err(DeliveryError::Permanent(_))));
    assert!(zalo.texts_to("u213").is_empty());
}

/// Regression: any refresh answer without tokens counted as "Zalo refused the refresh token", so a wrong
/// `app_secret` (or any passing trouble at Zalo's OAuth) failed every reply of the moment for good. Only a dead
/// refresh token (-14020) is final; the province's account problems (-321 out of money...) are retried too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trouble_on_the_provinces_side_is_retried_not_failed_for_good() {
    let h = Harness::start().await;
    let zalo = Zalo::new();
    let base = zalo.serve().await;
    zalo.expire_access();
    let mut wrong_secret = settings(&base);
    wrong_secret["app_secret"] = json!("not-the-app-secret");
    let channel = process(&h, wrong_secret);
    let e = channel.deliver(&reply("7401", "Trả lời")).await.expect_err("cannot refresh");
    assert!(matches!(&e, DeliveryError::Retryable(m) if m.contains("-14002")), "{e:?}");
    // The refresh token was not used up: fixed settings refresh with it and the reply goes out.
    let fixed = process(&h, settings(&base));
    fixed.deliver(&reply("7401", "Trả lời")).await.expect("sent once the secret is right");
    assert_eq!(zalo.texts_to("7401"), vec!["Trả lời".to_owned()]);

    for (user, code, words) in [("u321", -321, "out of money"), ("u320", -320, "Cloud Account"), ("u224", -224, "tier")] {
        zalo.script(user, vec![Some(Answer::Error(code))]);
        let e = fixed.deliver(&reply(user, "Trả lời")).await.expect_err(user);
        assert!(matches!(&e, DeliveryError::Retryable(m) if m.contains(words)), "{user}: {e:?}");
        // Once the account is in order, the retry is sent.
        fixed.deliver(&reply(user, "Trả lời")).await.expect("sent on retry");
    }
}
