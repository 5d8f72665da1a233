//! Appends, conflicts, retries, histories and subscriptions on a real server.

use std::time::Duration;

use futures_util::StreamExt;
use hotline_domain::{Envelope, Reference};
use hotline_store::{AppendError, Claim, EventStore, Position};
use hotline_testkit::TestNats;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{commit, received, routed};

#[tokio::test]
async fn an_append_with_a_stale_expected_version_is_a_conflict_naming_the_current_version() {
    let nats = TestNats::start().await;
    let store = nats.store().await;
    let ticket = Uuid::now_v7();
    let first = store.append(ticket, 0, &commit(ticket, 0, vec![received(ticket, "a")])).await.expect("first append");
    assert!(!first.already_stored);

    // A second writer that also believes the ticket is new.
    let err = store.append(ticket, 0, &commit(ticket, 0, vec![received(ticket, "b")])).await.expect_err("conflict");
    match err {
        AppendError::Conflict { current } => assert_eq!(current, first.version),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // The right expectation succeeds.
    let second = store.append(ticket, first.version, &commit(ticket, 1, vec![routed("dot")])).await.expect("second");
    assert!(second.version > first.version);
}

#[tokio::test]
async fn re_sending_a_stored_commit_after_a_lost_ack_is_recognised_as_our_own_write() {
    let nats = TestNats::start().await;
    let store = nats.store().await;
    let ticket = Uuid::now_v7();
    let events = commit(ticket, 0, vec![received(ticket, "a")]);
    let first = store.append(ticket, 0, &events).await.expect("append");
    // The same commit (same event ids, same stale expectation), as a retry after a lost ack would send it.
    let retry = store.append(ticket, 0, &events).await.expect("retry is not a conflict");
    assert!(retry.already_stored);
    assert_eq!(retry.version, first.version);
    // Even after another commit landed on the ticket.
    store.append(ticket, first.version, &commit(ticket, 1, vec![routed("dot")])).await.expect("next");
    let late = store.append(ticket, 0, &events).await.expect("late retry");
    assert!(late.already_stored);
    assert_eq!(late.version, first.version);
    assert_eq!(store.load(ticket).await.expect("load").events.len(), 2, "nothing was stored twice");
}

#[tokio::test]
async fn the_store_stamps_when_it_took_each_commit() {
    let nats = TestNats::start().await;
    let store = nats.store().await;
    let ticket = Uuid::now_v7();
    let mut events = commit(ticket, 0, vec![received(ticket, "a")]);
    events[0].occurred_at -= Duration::from_secs(3600);
    let before = OffsetDateTime::now_utc();
    store.append(ticket, 0, &events).await.expect("append");
    let loaded = store.load(ticket).await.expect("load").events;
    assert_eq!(loaded[0].occurred_at, events[0].occurred_at, "the fact's own time is kept");
    assert!(loaded[0].recorded_at >= before, "recorded_at is when the store took it");
}

#[tokio::test]
async fn a_commit_of_several_events_is_stored_and_read_back_whole_and_in_order() {
    let nats = TestNats::start().await;
    let store = nats.store().await;
    let ticket = Uuid::now_v7();
    let other = Uuid::now_v7();
    let a = store.append(ticket, 0, &commit(ticket, 0, vec![received(ticket, "a")])).await.expect("a");
    store.append(other, 0, &commit(other, 0, vec![received(other, "other")])).await.expect("other");
    let events = commit(ticket, 1, vec![routed("dot"), routed("police")]);
    let b = store.append(ticket, a.version, &events).await.expect("b");

    let history = store.load(ticket).await.expect("load");
    assert_eq!(history.version, b.version);
    let seqs: Vec<u64> = history.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert!(history.events.iter().all(|e| e.ticket_id == ticket), "only this ticket's events");
    let without_stamps = |es: &[Envelope]| es.iter().map(|e| Envelope { recorded_at: e.occurred_at, ..e.clone() }).collect::<Vec<_>>();
    assert_eq!(without_stamps(&history.events[1..]), without_stamps(&events));

    let empty = store.load(Uuid::now_v7()).await.expect("unknown ticket");
    assert!(empty.events.is_empty());
    assert_eq!(empty.version, 0);
}

#[tokio::test]
async fn subscribing_from_a_position_or_a_time_starts_exactly_there() {
    let nats = TestNats::start().await;
    let store = nats.store().await;
    let mut positions = Vec::new();
    let mut tickets = Vec::new();
    for i in 0..5 {
        let t = Uuid::now_v7();
        let a = store.append(t, 0, &commit(t, 0, vec![received(t, &format!("p{i}"))])).await.expect("append");
        positions.push(a.version);
        tickets.push(t);
        if i == 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let read = |from| {
        let store = store.clone();
        async move {
            let mut sub = store.subscribe(from).await.expect("subscribe");
            let mut seen = Vec::new();
            while let Ok(Some(c)) = tokio::time::timeout(Duration::from_millis(500), sub.next()).await {
                seen.push(c.expect("commit").position);
            }
            seen
        }
    };
    assert_eq!(read(Position::Start).await, positions);
    assert_eq!(read(Position::From(positions[3])).await, positions[3..].to_vec());

    // The server's stored-at time of commit 3 (from a subscription); subscribing from just before it skips
    // 0..=2, which were stored at least 50 ms earlier.
    let mut sub = store.subscribe(Position::From(positions[3])).await.expect("subscribe");
    let at = sub.next().await.expect("commit").expect("ok").stored_at;
    drop(sub);
    let from_time = read(Position::Time(at - Duration::from_millis(20))).await;
    assert_eq!(from_time, positions[3..].to_vec());

    let mut live = store.subscribe(Position::New).await.expect("new only");
    let t = Uuid::now_v7();
    let a = store.append(t, 0, &commit(t, 0, vec![received(t, "live")])).await.expect("append");
    let c = tokio::time::timeout(Duration::from_secs(5), live.next()).await.expect("delivered").expect("some").expect("ok");
    assert_eq!(c.position, a.version);
    assert_eq!(c.ticket_id, t);
}

#[tokio::test]
async fn a_durable_subscription_resumes_after_its_last_ack_and_redelivers_the_rest() {
    let nats = TestNats::start().await;
    let cfg = hotline_store::JetStreamConfig { ack_wait: Duration::from_secs(2), ..Default::default() };
    let store = hotline_store::JetStreamStore::connect(&nats.url(), cfg.clone()).await.expect("store");
    for i in 0..3 {
        let t = Uuid::now_v7();
        store.append(t, 0, &commit(t, 0, vec![received(t, &format!("p{i}"))])).await.expect("append");
    }
    {
        let mut sub = store.durable("test-consumer").await.expect("durable");
        let first = sub.next().await.expect("one").expect("ok");
        assert_eq!(first.commit.position, 1);
        first.ack().await.expect("ack");
        let second = sub.next().await.expect("two").expect("ok");
        assert_eq!(second.commit.position, 2);
        second.retry_later(Duration::from_millis(10)).await.expect("nak");
    }
    // A new connection, as after a restart: position 1 is done; 2 (handed back) and 3 (pulled by the first
    // connection but never acknowledged, so redelivered after ack_wait) come again.
    let store = hotline_store::JetStreamStore::connect(&nats.url(), cfg).await.expect("store");
    let mut sub = store.durable("test-consumer").await.expect("durable");
    let mut seen = Vec::new();
    while let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(5), sub.next()).await {
        let d = d.expect("ok");
        seen.push(d.commit.position);
        d.ack().await.expect("ack");
        if seen.len() == 2 {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, vec![2, 3]);
}

#[tokio::test]
async fn a_reference_is_granted_once_and_a_retry_by_its_owner_is_granted_again() {
    let nats = TestNats::start().await;
    let store = nats.store().await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let reference = Reference::derive(a, 0);
    assert_eq!(store.claim_reference(&reference, a).await.expect("claim"), Claim::Granted);
    assert_eq!(store.claim_reference(&reference, a).await.expect("retry"), Claim::Granted);
    assert_eq!(store.claim_reference(&reference, b).await.expect("other"), Claim::TakenBy(a));
    assert_eq!(store.resolve_reference(&reference).await.expect("resolve"), Some(a));
    assert_eq!(store.resolve_reference(&Reference::derive(b, 5)).await.expect("resolve"), None);
}

#[tokio::test]
async fn the_log_id_names_this_log_and_changes_with_a_new_store() {
    let a = TestNats::start().await;
    let b = TestNats::start().await;
    let (sa, sb) = (a.store().await, b.store().await);
    let id = sa.log_id().await.expect("id");
    assert_eq!(id, sa.log_id().await.expect("again"), "stable");
    assert!(id.starts_with("HOTLINE_EVENTS@"), "{id}");
    // Stream creation times differ by at least the second server's start-up.
    assert_ne!(id, sb.log_id().await.expect("other"));
}

#[tokio::test]
async fn appends_fail_fast_as_unavailable_while_the_server_is_down_and_work_after_restart() {
    let mut nats = TestNats::start().await;
    let store = nats.store().await;
    let t = Uuid::now_v7();
    let a = store.append(t, 0, &commit(t, 0, vec![received(t, "before")])).await.expect("append");
    nats.server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t2 = Uuid::now_v7();
    let started = std::time::Instant::now();
    let err = store.append(t2, 0, &commit(t2, 0, vec![received(t2, "during")])).await.expect_err("down");
    assert!(matches!(err, AppendError::Store(hotline_store::StoreError::Unavailable(_))), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "refused without waiting for a timeout: {:?}", started.elapsed());
    nats.server.restart().await.expect("restart");
    // The client reconnects by itself; the acknowledged event survived the kill (fsync before ack).
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        match store.load(t).await {
            Ok(h) if h.version == a.version => break,
            _ if std::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("history not back after restart: {other:?}"),
        }
    }
    let t3 = Uuid::now_v7();
    store.append(t3, 0, &commit(t3, 0, vec![received(t3, "after")])).await.expect("append after restart");
}
