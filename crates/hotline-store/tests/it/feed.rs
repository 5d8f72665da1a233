//! The published feed's stream and its conditional appends on a real server.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use hotline_store::{FeedEntry, FeedError, FeedLog, FeedMark, FeedTip, JetStreamConfig, JetStreamFeed, StoreError};
use hotline_testkit::TestNats;

fn entry(subject: &str, id: &str, position: u64, part: u32, parts: u32) -> FeedEntry {
    FeedEntry {
        subject: subject.to_owned(),
        id: id.to_owned(),
        mark: FeedMark { position, part, parts },
        // As hotline_contract::ce_headers gives them: the message id repeats ce-id.
        attributes: vec![
            ("ce-specversion".to_owned(), "1.0".to_owned()),
            ("ce-id".to_owned(), id.to_owned()),
            ("Nats-Msg-Id".to_owned(), id.to_owned()),
        ],
        payload: br#"{"ok":true}"#.to_vec(),
    }
}

/// A plain client on `url` (`nats://user:password@host:port`), as any NATS tool would connect.
async fn client(url: &str) -> jetstream::Context {
    let rest = url.strip_prefix("nats://").expect("a nats:// URL");
    let (userinfo, host) = rest.rsplit_once('@').expect("credentials in the URL");
    let (user, password) = userinfo.split_once(':').expect("user:password");
    let client = async_nats::ConnectOptions::with_user_and_password(user.to_owned(), password.to_owned())
        .connect(host)
        .await
        .expect("client connects");
    jetstream::new(client)
}

/// A client of the feed's account, as the feed's writer.
async fn js(nats: &TestNats) -> jetstream::Context {
    client(&nats.server.feed_url()).await
}

async fn open_feed(nats: &TestNats) -> JetStreamFeed {
    JetStreamFeed::connect(&nats.server.feed_url(), &JetStreamConfig::default()).await.expect("feed opens")
}

#[tokio::test]
async fn the_feed_stream_is_file_backed_append_only_and_disjoint_from_the_log() {
    let nats = TestNats::start().await;
    nats.store().await;
    open_feed(&nats).await;
    // Opening again takes the existing stream.
    let feed = open_feed(&nats).await;

    let js = js(&nats).await;
    let mut s = js.get_stream("HOTLINE_FEED").await.expect("feed stream exists");
    let info = s.info().await.expect("info").clone();
    assert_eq!(info.config.subjects, vec!["hotline.feed.v1.>".to_owned()]);
    assert_eq!(info.config.storage, stream::StorageType::File);
    // Purges are denied; single deletes are allowed, for erasure only (subscribers may not: access.rs).
    assert!(!info.config.deny_delete && info.config.deny_purge);
    assert_eq!(info.config.num_replicas, 1);
    assert_eq!(info.config.duplicate_window, std::time::Duration::from_secs(120));
    let log = client(&nats.url()).await.get_stream("HOTLINE_EVENTS").await.expect("log stream").info().await.expect("info").config.subjects.clone();
    assert_eq!(log, vec!["hotline.events.>".to_owned()]);

    let seq = feed.publish(0, &entry("hotline.feed.v1.public.petition_received", "a", 1, 1, 1)).await.expect("published");
    assert_eq!(seq, 1);
    assert!(s.purge().await.is_err(), "the feed cannot be purged");
    assert_eq!(feed.tip().await.expect("tip").sequence, 1);
}

#[tokio::test]
async fn a_feed_whose_subjects_overlap_the_log_is_refused() {
    let nats = TestNats::start().await;
    let cfg = JetStreamConfig { feed_subject_prefix: "hotline.events.public".to_owned(), ..Default::default() };
    match JetStreamFeed::connect(&nats.server.feed_url(), &cfg).await {
        Err(StoreError::Rejected(reason)) => assert!(reason.contains("overlap"), "{reason}"),
        Err(other) => panic!("expected a refusal, got {other:?}"),
        Ok(_) => panic!("an overlapping feed was opened"),
    }
}

#[tokio::test]
async fn an_existing_feed_stream_that_allows_purges_is_refused() {
    let nats = TestNats::start().await;
    js(&nats)
        .await
        .create_stream(stream::Config {
            name: "HOTLINE_FEED".to_owned(),
            subjects: vec!["hotline.feed.v1.>".to_owned()],
            ..Default::default()
        })
        .await
        .expect("a lax stream is created by hand");
    match JetStreamFeed::connect(&nats.server.feed_url(), &JetStreamConfig::default()).await {
        Err(StoreError::Rejected(reason)) => assert!(reason.contains("deny_purge false"), "{reason}"),
        Err(other) => panic!("expected a refusal, got {other:?}"),
        Ok(_) => panic!("a feed that allows purges was accepted"),
    }
}

#[tokio::test]
async fn a_feed_stream_made_before_erasure_is_refused_with_the_way_out() {
    let nats = TestNats::start().await;
    let js = js(&nats).await;
    js.create_stream(stream::Config {
        name: "HOTLINE_FEED".to_owned(),
        subjects: vec!["hotline.feed.v1.>".to_owned()],
        deny_delete: true,
        deny_purge: true,
        ..Default::default()
    })
    .await
    .expect("an old feed stream");
    match JetStreamFeed::connect(&nats.server.feed_url(), &JetStreamConfig::default()).await {
        Err(StoreError::Rejected(reason)) => {
            assert!(reason.contains("denies message deletes") && reason.contains("nats stream rm HOTLINE_FEED"), "{reason}")
        }
        Err(other) => panic!("expected a refusal, got {other:?}"),
        Ok(_) => panic!("a feed that cannot erase was accepted"),
    }
    // What the message says is true: the server will not lift deny_delete on an existing stream.
    let lifted = js
        .update_stream(stream::Config {
            name: "HOTLINE_FEED".to_owned(),
            subjects: vec!["hotline.feed.v1.>".to_owned()],
            deny_delete: false,
            deny_purge: true,
            ..Default::default()
        })
        .await;
    assert!(lifted.is_err(), "nats-server lifted deny_delete after all");
    // The way out: remove it, and the feed opens afresh.
    js.delete_stream("HOTLINE_FEED").await.expect("removed");
    open_feed(&nats).await;
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle)) {
                out.push(path);
            }
        }
    }
    out
}

#[tokio::test]
async fn erasing_finds_a_tickets_messages_by_subject_and_overwrites_them_in_the_store_files() {
    let nats = TestNats::start().await;
    let feed = open_feed(&nats).await;
    let ticket = "0193a1b2-0000-7000-8000-00000000abcd";
    let other = "0193a1b2-0000-7000-8000-00000000ffff";
    let secret = "Nguyễn Văn Bình 84912345678";
    let mut seq = 0;
    let mut put = async |subject: String, id: &str, position: u64, payload: String| {
        let mut e = entry(&subject, id, position, 1, 1);
        e.payload = payload.into_bytes();
        seq = feed.publish(seq, &e).await.expect("published");
        seq
    };
    put(format!("hotline.feed.v1.public.petition_received.{ticket}"), "a", 1, "{}".into()).await;
    put(format!("hotline.feed.v1.dot.petition_routed.{ticket}"), "b:dot", 2, format!("{{\"name\":\"{secret}\"}}")).await;
    put(format!("hotline.feed.v1.dot.petition_routed.{other}"), "c:dot", 3, format!("{{\"name\":\"{secret} other\"}}")).await;
    put(format!("hotline.feed.v1.fire.citizen_wrote.{ticket}"), "d:fire", 4, format!("{{\"text\":\"{secret}\"}}")).await;
    let tip = put(format!("hotline.feed.v1.public.personal_data_erased.{ticket}"), "e", 5, "{}".into()).await;

    let found = feed.find(&format!("hotline.feed.v1.*.*.{ticket}")).await.expect("find");
    let seqs: Vec<u64> = found.iter().map(|m| m.sequence).collect();
    assert_eq!(seqs, [1, 2, 4, 5], "the ticket's messages, in order, none of the other ticket's");
    assert_eq!(found[1].subject, format!("hotline.feed.v1.dot.petition_routed.{ticket}"));
    assert_eq!(found[1].mark, Some(FeedMark { position: 2, part: 1, parts: 1 }));
    assert!(matches!(feed.find("hotline.events.>").await, Err(StoreError::Rejected(_))), "only under the feed's prefix");

    let store = nats.dir.path().join("nats");
    assert!(!files_containing(&store, secret.as_bytes()).is_empty(), "the plaintext is in the store files before");
    // The tip is never erased: the projector resumes from it.
    assert!(matches!(feed.erase(&[2, tip]).await, Err(StoreError::Rejected(_))));
    feed.erase(&[2, 4]).await.expect("erased");
    // Again (a restarted projector): already gone is fine.
    feed.erase(&[2, 4]).await.expect("erased again");
    let left: Vec<u64> = feed.find(&format!("hotline.feed.v1.*.*.{ticket}")).await.expect("find").iter().map(|m| m.sequence).collect();
    assert_eq!(left, [1, 5]);
    assert_eq!(feed.tip().await.expect("tip").sequence, tip);
    // The bytes are overwritten, not only unindexed: only the other ticket's copy still holds the name.
    let holding: Vec<_> = files_containing(&store, format!("{secret}\"").as_bytes());
    assert!(holding.is_empty(), "erased plaintext still in {holding:?}");
    assert!(!files_containing(&store, format!("{secret} other").as_bytes()).is_empty(), "the other ticket's copy is untouched");
}

#[tokio::test]
async fn publishing_is_conditional_on_the_feed_tip_and_the_tip_carries_the_mark() {
    let nats = TestNats::start().await;
    let feed = open_feed(&nats).await;
    assert_eq!(feed.tip().await.expect("tip"), FeedTip { sequence: 0, mark: None });

    let first = entry("hotline.feed.v1.public.petition_received", "e1", 7, 1, 2);
    assert_eq!(feed.publish(0, &first).await.expect("first"), 1);
    // Someone who still believes the feed is empty loses, whatever the message.
    let other = entry("hotline.feed.v1.dot.petition_received", "e1:dot", 7, 2, 2);
    assert!(matches!(feed.publish(0, &other).await, Err(FeedError::Conflict)));
    // The same message again (a re-send after a lost ack) is a conflict too, not a second copy.
    assert!(matches!(feed.publish(1, &first).await, Err(FeedError::Conflict)));
    assert_eq!(feed.publish(1, &other).await.expect("second"), 2);
    assert_eq!(
        feed.tip().await.expect("tip"),
        FeedTip { sequence: 2, mark: Some(FeedMark { position: 7, part: 2, parts: 2 }) }
    );

    let js = js(&nats).await;
    let s = js.get_stream("HOTLINE_FEED").await.expect("stream");
    let stored = s.get_raw_message(2).await.expect("message 2");
    assert_eq!(stored.subject.as_str(), "hotline.feed.v1.dot.petition_received");
    let h = |n: &str| stored.headers.get(n).map(|v| v.as_str().to_owned());
    assert_eq!(h("Nats-Msg-Id").as_deref(), Some("e1:dot"));
    assert_eq!(stored.headers.get_all("Nats-Msg-Id").count(), 1, "the id is set once");
    assert_eq!(h("Hotline-Log-Position").as_deref(), Some("7"));
    assert_eq!(h("Hotline-Part").as_deref(), Some("2/2"));
    assert_eq!(h("ce-id").as_deref(), Some("e1:dot"));
    assert_eq!(h("ce-specversion").as_deref(), Some("1.0"));
    assert_eq!(&stored.payload[..], br#"{"ok":true}"#);
}

#[tokio::test]
async fn a_pipelined_batch_lands_in_order_and_each_message_only_ever_at_its_own_sequence() {
    let nats = TestNats::start().await;
    // A duplicate window shorter than the test: a re-sent message must be stopped by its expected sequence, not
    // by the server remembering its id.
    let window = Duration::from_millis(100);
    let config = JetStreamConfig { feed_duplicate_window: window, ..Default::default() };
    let feed = JetStreamFeed::connect(&nats.server.feed_url(), &config).await.expect("feed opens");
    // The feed is a function of the log: its n-th message is the same whoever computes it. `b<n>` stands for it.
    let message = |n: u64| entry("hotline.feed.v1.public.petition_received", &format!("b{n}"), 10 + n, 1, 1);
    let messages = |range: std::ops::RangeInclusive<u64>| range.map(message).collect::<Vec<FeedEntry>>();
    assert_eq!(feed.publish_all(0, &messages(1..=5)).await.expect("batch"), 5);
    tokio::time::sleep(window + Duration::from_millis(50)).await;
    // A second projector that saw the feed at 2 sends messages 3 to 5 again: each fails its expectation (the
    // feed moved on), so nothing is stored.
    assert!(matches!(feed.publish_all(2, &messages(3..=5)).await, Err(FeedError::Conflict)));
    assert_eq!(feed.tip().await.expect("tip").sequence, 5, "nothing of the stale batch was stored");
    // When its batch reaches past the feed, the first messages fail and the one whose expectation holds lands,
    // exactly in its own place (6): pipelining stores a message only where the feed must have it.
    assert!(matches!(feed.publish_all(2, &messages(3..=6)).await, Err(FeedError::Conflict)));
    assert_eq!(feed.publish_all(6, &messages(7..=9)).await.expect("the rest"), 9);
    assert_eq!(feed.publish_all(9, &[]).await.expect("empty"), 9);

    let js = js(&nats).await;
    let s = js.get_stream("HOTLINE_FEED").await.expect("stream");
    assert_eq!(s.cached_info().state.messages, 9, "no double");
    for sequence in 1..=9u64 {
        let stored = s.get_raw_message(sequence).await.expect("message");
        let id = stored.headers.get("Nats-Msg-Id").map(|v| v.as_str().to_owned());
        assert_eq!(id, Some(format!("b{sequence}")), "message {sequence} in its place");
    }
}

#[tokio::test]
async fn entries_that_would_break_the_feed_are_refused_before_anything_is_sent() {
    let nats = TestNats::start().await;
    let feed = open_feed(&nats).await;
    let refused = |r: Result<u64, FeedError>| matches!(r, Err(FeedError::Store(StoreError::Rejected(_))));

    assert!(refused(feed.publish(0, &entry("hotline.events.ticket.x", "a", 1, 1, 1)).await), "outside the feed");
    assert!(refused(feed.publish(0, &entry("hotline.feed.v1.", "a", 1, 1, 1)).await), "the bare prefix");
    assert!(refused(feed.publish(0, &entry("hotline.feed.v1.public.x", "a", 1, 0, 1)).await), "part 0");
    assert!(refused(feed.publish(0, &entry("hotline.feed.v1.public.x", "a", 1, 2, 1)).await), "part beyond the count");
    let mut e = entry("hotline.feed.v1.public.x", "a", 1, 1, 1);
    e.attributes.push(("ce-subject".to_owned(), "Hà Nội\r\nX: y".to_owned()));
    assert!(refused(feed.publish(0, &e).await), "a value that is not encoded");
    let mut e = entry("hotline.feed.v1.public.x", "a", 1, 1, 1);
    e.attributes.push(("Nats-Expected-Last-Sequence".to_owned(), "99".to_owned()));
    assert!(refused(feed.publish(0, &e).await), "overriding a transport header");
    let mut e = entry("hotline.feed.v1.public.x", "a", 1, 1, 1);
    e.attributes.push(("nats-msg-id".to_owned(), "b".to_owned()));
    assert!(refused(feed.publish(0, &e).await), "a message id other than the entry's");
    let mut e = entry("hotline.feed.v1.public.x", "a", 1, 1, 1);
    e.attributes.push(("bad:name".to_owned(), "x".to_owned()));
    assert!(refused(feed.publish(0, &e).await), "a bad header name");
    assert_eq!(feed.tip().await.expect("tip").sequence, 0, "nothing was published");
}

#[tokio::test]
async fn a_feed_message_without_a_mark_stops_the_resume_with_a_clear_error() {
    let nats = TestNats::start().await;
    let feed = open_feed(&nats).await;
    js(&nats).await.publish("hotline.feed.v1.public.stray", "x".into()).await.expect("sent").await.expect("stored");
    match feed.tip().await {
        Err(StoreError::Rejected(reason)) => assert!(reason.contains("Hotline-Log-Position"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}
