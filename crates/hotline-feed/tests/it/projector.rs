//! Exactly once, in order: clean runs, crashes at random points, two projectors at once, resuming inside a commit,
//! and what a subscriber sees in the headers and through a filtered consumer.

use std::sync::Arc;
use std::time::Duration;

use hotline_store::{EventStore, FeedEntry, FeedLog, FeedMark};
use hotline_testkit::TestNats;
use uuid::Uuid;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_run_publishes_what_the_log_implies_before_and_while_it_runs() {
    let nats = TestNats::start().await;
    let store = Arc::new(nats.store().await);
    let mut rng = Rng::new("clean run");
    let mut writer = Writer::new(store.clone());
    for _ in 0..40 {
        writer.step(&mut rng).await;
    }
    let projector = start_projector(&nats).await;
    let mut stream = feed_client(&nats.server.feed_url()).await.get_stream("HOTLINE_FEED").await.expect("feed stream");
    let window = stream.info().await.expect("info").config.duplicate_window;
    assert_eq!(window, Duration::from_millis(100), "the tests run with the shortest deduplication window");
    for _ in 0..40 {
        writer.step(&mut rng).await;
    }
    let expected = expected_feed(&store).await;
    assert!(expected.len() > writer.commits, "commits with several parts are part of the test");
    wait_for_feed(&nats, &expected).await;
    projector.trigger.trigger();
    tokio::time::timeout(Duration::from_secs(15), projector.task).await.expect("stops on shutdown").expect("no panic");
    assert_feed_is(&expected, &read_feed(&nats, "hotline.feed.v1.>").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_killed_at_random_points_twenty_times_neither_doubles_nor_skips() {
    let nats = TestNats::start().await;
    let store = Arc::new(nats.store().await);
    let mut rng = Rng::new("killed projector");
    let mut writer = Writer::new(store.clone());
    for _ in 0..30 {
        writer.step(&mut rng).await;
    }
    // The writer keeps appending while the projector dies and comes back.
    let (stop_writer, mut writer_stopped) = hotline_runtime::shutdown();
    let mut writer_rng = Rng::new("killed projector, writer");
    let writing = tokio::spawn(async move {
        while !writer_stopped.is_raised() {
            writer.step(&mut writer_rng).await;
            tokio::select! {
                _ = writer_stopped.wait() => {}
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
        writer
    });
    for _ in 0..20 {
        let projector = start_projector(&nats).await;
        tokio::time::sleep(Duration::from_millis(rng.below(400))).await;
        // Killed, not stopped: whatever it was doing (a publish in flight, between a commit's parts) is cut short.
        projector.task.abort();
        let _ = projector.task.await;
    }
    stop_writer.trigger();
    let writer = writing.await.expect("writer");
    let projector = start_projector(&nats).await;
    let expected = expected_feed(&store).await;
    eprintln!("{} commits, {} feed messages", writer.commits, expected.len());
    wait_for_feed(&nats, &expected).await;
    projector.trigger.trigger();
    let _ = projector.task.await;
    assert_feed_is(&expected, &read_feed(&nats, "hotline.feed.v1.>").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_projectors_at_once_cannot_interleave_or_double() {
    let nats = TestNats::start().await;
    let store = Arc::new(nats.store().await);
    let mut rng = Rng::new("two projectors");
    let mut writer = Writer::new(store.clone());
    for _ in 0..20 {
        writer.step(&mut rng).await;
    }
    // Both start on an empty feed and race for every message from the first one on, each pausing a random while
    // before each publish, so their copies of a message are often further apart than the deduplication window.
    let a = start_jittered_projector(&nats, rng.below(u64::MAX)).await;
    let b = start_jittered_projector(&nats, rng.below(u64::MAX)).await;
    for _ in 0..30 {
        writer.step(&mut rng).await;
    }
    let expected = expected_feed(&store).await;
    wait_for_feed(&nats, &expected).await;
    a.trigger.trigger();
    b.trigger.trigger();
    let _ = a.task.await;
    let _ = b.task.await;
    assert_feed_is(&expected, &read_feed(&nats, "hotline.feed.v1.>").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_that_died_between_the_parts_of_a_commit_publishes_only_the_rest() {
    let nats = TestNats::start().await;
    let store = Arc::new(nats.store().await);
    let mut rng = Rng::new("inside a commit");
    let mut writer = Writer::new(store.clone());
    for _ in 0..12 {
        writer.step(&mut rng).await;
    }
    let expected = expected_feed(&store).await;
    // The feed as a projector leaves it when it dies after the first part of the first commit with several.
    let cut = expected.iter().position(|e| e.mark.part == 1 && e.mark.parts > 1).expect("a commit with several parts") + 1;
    let feed = open_feed(&nats).await;
    let mut sequence = 0;
    for entry in &expected[..cut] {
        sequence = feed.publish(sequence, entry).await.expect("published");
    }
    let projector = start_projector(&nats).await;
    wait_for_feed(&nats, &expected).await;
    projector.trigger.trigger();
    let _ = projector.task.await;
    assert_feed_is(&expected, &read_feed(&nats, "hotline.feed.v1.>").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_ahead_of_the_log_is_reported_and_nothing_is_published_after_it() {
    let nats = TestNats::start().await;
    let store = Arc::new(nats.store().await);
    let mut rng = Rng::new("feed ahead");
    let mut writer = Writer::new(store.clone());
    for _ in 0..5 {
        writer.step(&mut rng).await;
    }
    // A feed left from another log: its last message names a commit this log does not have.
    let feed = open_feed(&nats).await;
    let stray = FeedEntry {
        subject: "hotline.feed.v1.public.petition_received".to_owned(),
        id: Uuid::now_v7().to_string(),
        mark: FeedMark { position: 1_000, part: 1, parts: 1 },
        attributes: vec![],
        payload: b"{}".to_vec(),
    };
    feed.publish(0, &stray).await.expect("published");
    let projector = start_projector(&nats).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    projector.trigger.trigger();
    tokio::time::timeout(Duration::from_secs(5), projector.task).await.expect("stops while waiting to retry").expect("no panic");
    assert_eq!(feed.tip().await.expect("tip").sequence, 1, "nothing was published after a feed it cannot place");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_of_a_wiped_log_is_reported_and_nothing_is_published_when_the_new_log_grows_past_its_mark() {
    let nats = TestNats::start().await;
    let mut rng = Rng::new("wiped log");
    // Log A and its feed.
    let store_a = Arc::new(nats.store().await);
    let log_a = store_a.log_id().await.expect("log id");
    let mut writer = Writer::new(store_a.clone());
    for _ in 0..4 {
        writer.step(&mut rng).await;
    }
    let published = expected_feed(&store_a).await;
    let projector = start_projector(&nats).await;
    wait_for_feed(&nats, &published).await;
    projector.trigger.trigger();
    let _ = projector.task.await;
    let feed = open_feed(&nats).await;
    let tip = feed.tip().await.expect("tip");
    let mark = tip.mark.expect("a mark");
    assert_eq!(FeedLog::last_log_id(&feed).await.expect("log id").as_deref(), Some(log_a.as_str()), "every message names its log");
    drop((writer, store_a));

    // The log is wiped and starts again (log B), and grows past the feed's mark.
    let internal = feed_client(&nats.server.url()).await;
    internal.delete_stream("HOTLINE_EVENTS").await.expect("wipe the log");
    let store_b = Arc::new(nats.store().await);
    let log_b = store_b.log_id().await.expect("log id");
    assert_ne!(log_a, log_b);
    let mut writer = Writer::new(store_b.clone());
    while store_b.last_position().await.expect("position") <= mark.position + 2 {
        writer.step(&mut rng).await;
    }

    // The projector on log B names the mismatch and publishes nothing.
    let check = hotline_feed::Projector::new(store_b.clone(), Arc::new(open_feed(&nats).await), PROVINCE).check().await;
    match check {
        Err(hotline_feed::ProjectError::Inconsistent(why)) => {
            assert!(why.contains(&log_a) && why.contains(&log_b), "{why}");
        }
        other => panic!("a feed of another log was accepted: {other:?}"),
    }
    let projector = start_projector(&nats).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    projector.trigger.trigger();
    tokio::time::timeout(Duration::from_secs(5), projector.task).await.expect("stops while waiting to retry").expect("no panic");
    assert_eq!(feed.tip().await.expect("tip"), tip, "the projector published after a feed of another log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_cloudevents_attributes_percent_encoded_without_personal_data() {
    let nats = TestNats::start().await;
    let store = Arc::new(nats.store().await);
    let mut rng = Rng::new("headers");
    let mut writer = Writer::new(store.clone());
    for _ in 0..25 {
        writer.step(&mut rng).await;
    }
    let projector = start_projector(&nats).await;
    let expected = expected_feed(&store).await;
    wait_for_feed(&nats, &expected).await;
    projector.trigger.trigger();
    let _ = projector.task.await;
    let feed = read_feed(&nats, "hotline.feed.v1.>").await;
    assert_eq!(feed.len(), after_erasures(&expected).len());
    for m in &feed {
        for name in ["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time", "ce-subject", "ce-datacontenttype", "ce-dataschema"] {
            assert!(m.header(name).is_some_and(|v| !v.is_empty()), "{} lacks {name}", m.subject);
        }
        assert_eq!(m.header("ce-specversion"), Some("1.0"));
        assert_eq!(m.header("ce-datacontenttype"), Some("application/json"));
        assert_eq!(m.header("ce-id"), m.header("Nats-Msg-Id"), "ce-id is the deduplication id");
        let subject = m.header("ce-subject").unwrap_or_default();
        assert!(subject.parse::<Uuid>().is_ok(), "ce-subject is the ticket id, not {subject:?}");
        for (name, value) in &m.headers {
            assert!(value.bytes().all(|b| (0x20..0x7f).contains(&b)), "{name}: {value:?} is not percent-encoded ASCII");
            let decoded = percent_decode(value);
            for personal in [NAME, PHONE, EMAIL, TEXT, "Nguy", "hoa.nguyen"] {
                assert!(!decoded.contains(personal), "{name} carries personal data: {decoded:?}");
            }
        }
        let time = percent_decode(m.header("ce-time").unwrap_or_default());
        assert!(
            time::OffsetDateTime::parse(&time, &time::format_description::well_known::Rfc3339).is_ok(),
            "ce-time {time:?} is RFC 3339"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_filtered_on_an_agency_sees_only_that_agencys_messages() {
    let nats = TestNats::start().await;
    let store = Arc::new(nats.store().await);
    let mut rng = Rng::new("filtered");
    let mut writer = Writer::new(store.clone());
    for _ in 0..40 {
        writer.step(&mut rng).await;
    }
    let projector = start_projector(&nats).await;
    let expected = expected_feed(&store).await;
    wait_for_feed(&nats, &expected).await;
    projector.trigger.trigger();
    let _ = projector.task.await;
    for audience in AGENCIES.iter().copied().chain(["public"]) {
        let prefix = format!("hotline.feed.v1.{audience}.");
        let mine: Vec<FeedEntry> = expected.iter().filter(|e| e.subject.starts_with(&prefix)).cloned().collect();
        let seen = read_feed(&nats, &format!("{prefix}>")).await;
        assert!(seen.iter().all(|m| m.subject.starts_with(&prefix)), "{audience} saw another audience's message");
        assert_feed_is(&mine, &seen);
    }
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&value[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
