//! Hash chains and checkpoints on a real server: appends link each ticket's events whatever process writes them,
//! checkpoints cover the log without gaps, and a rewritten stream is caught at the changed event. And the
//! personal data inside those events: sealed under the citizen's key, unreadable once the key is destroyed, with
//! every chain still whole.

use hotline_domain::event::stored_events;
use hotline_domain::{Reference, TicketEvent};
use hotline_store::{EventStore, JetStreamStore};
use hotline_testkit::TestNats;
use uuid::Uuid;

use crate::{commit, received, routed};

/// Three tickets: A with three commits (the last of two events), B and C with one each. Returns A's id.
async fn history(store: &JetStreamStore, other: &JetStreamStore) -> (Uuid, Uuid) {
    let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let v = store.append(a, 0, &commit(a, 0, vec![received(a, "đèn giao thông hỏng ở ngã tư")])).await.expect("a1").version;
    store.append(b, 0, &commit(b, 0, vec![received(b, "ngập nước")])).await.expect("b1");
    // Another process (a cold cache) continues A's chain: it reads the link from the log.
    let v = other.append(a, v, &commit(a, 1, vec![routed("so-gtvt")])).await.expect("a2").version;
    store.append(a, v, &commit(a, 2, vec![routed("ubnd-tdm"), routed("cong-an")])).await.expect("a3");
    store.append(c, 0, &commit(c, 0, vec![received(c, "tiếng ồn")])).await.expect("c1");
    (a, b)
}

#[tokio::test]
async fn events_chain_across_processes_and_checkpoints_cover_the_log_without_gaps() {
    let nats = TestNats::start().await;
    let (store, other) = (nats.store().await, nats.store().await);
    let (a, _) = history(&store, &other).await;

    // A's stored events link 1 -> 2 -> 3 -> 4 over their exact bytes, the second written by the other process.
    let mut previous: Option<String> = None;
    let mut seen = 0;
    for position in 1..=store.last_position().await.expect("last") {
        let bytes = nats_payload(&nats, position).await;
        for (stored, hash) in stored_events(&bytes).expect("stored events") {
            if stored.ticket_id == a {
                assert_eq!(stored.prev_hash, previous, "event #{} links to the one before", stored.seq);
                previous = Some(hash);
                seen += 1;
            }
        }
    }
    assert_eq!(seen, 4);

    let first = store.checkpoint().await.expect("checkpoint").expect("a first checkpoint");
    assert_eq!((first.from, first.to, first.events, first.prev.is_none()), (1, 5, 6, true));
    assert_eq!(other.checkpoint().await.expect("checkpoint"), None, "nothing new: no second checkpoint");
    let d = Uuid::now_v7();
    store.append(d, 0, &commit(d, 0, vec![received(d, "rác thải")])).await.expect("d1");
    let second = other.checkpoint().await.expect("checkpoint").expect("a second checkpoint");
    assert_eq!((second.from, second.to, second.events), (6, 6, 1));
    assert!(second.prev.is_some());

    let report = store.verify(|_, _| {}).await.expect("verify");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!((report.commits, report.events, report.tickets, report.checkpoints_ok, report.unanchored_events), (6, 7, 4, 2, 0));
}

#[tokio::test]
async fn a_rewritten_stream_fails_verification_at_the_changed_event() {
    let nats = TestNats::start().await;
    let (store, other) = (nats.store().await, nats.store().await);
    let (a, _) = history(&store, &other).await;
    store.checkpoint().await.expect("checkpoint").expect("written");
    assert!(store.verify(|_, _| {}).await.expect("verify").problems.is_empty());

    // An intruder changes the text of A's petition (position 1), keeping the JSON valid.
    let first_event = stored_events(&nats_payload(&nats, 1).await).expect("stored")[0].0.event_id;
    hotline_testkit::tamper::rewrite_stream(&nats.url(), "HOTLINE_EVENTS", |seq, _, payload| {
        if seq == 1 { String::from_utf8(payload).expect("utf-8").replace("ngã tư", "ngã ba").into_bytes() } else { payload }
    })
    .await;
    let store = nats.store().await;
    let report = store.verify(|_, _| {}).await.expect("verify");
    let first = report.first_problem().expect("a problem");
    assert_eq!((first.position, first.ticket, first.event_id, first.seq), (1, Some(a), Some(first_event), Some(1)), "{first}");
    assert!(first.what.contains("changed"), "{first}");

    // Changing a ticket's last event breaks no link: the checkpoint over its range catches it.
    let nats2 = TestNats::start().await;
    let (store2, other2) = (nats2.store().await, nats2.store().await);
    history(&store2, &other2).await;
    store2.checkpoint().await.expect("checkpoint").expect("written");
    hotline_testkit::tamper::rewrite_stream(&nats2.url(), "HOTLINE_EVENTS", |seq, _, payload| {
        if seq == 5 { String::from_utf8(payload).expect("utf-8").replace("tiếng ồn", "khói bụi").into_bytes() } else { payload }
    })
    .await;
    let report = nats2.store().await.verify(|_, _| {}).await.expect("verify");
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].what.contains("does not match the log"), "{}", report.problems[0]);
    assert_eq!(report.checkpoints_ok, 0);

}

/// The payload of the log message at `position`, read directly.
async fn nats_payload(nats: &TestNats, position: u64) -> Vec<u8> {
    let js = async_nats::jetstream::new(hotline_testkit::tamper::client(&nats.url()).await);
    let stream = js.get_stream("HOTLINE_EVENTS").await.expect("stream");
    stream.get_raw_message(position).await.expect("message").payload.to_vec()
}

#[tokio::test]
async fn personal_data_is_sealed_under_the_citizens_key_and_reads_erased_once_the_key_is_destroyed() {
    use hotline_domain::event::{Citizen, CitizenWrote, ERASED};
    let nats = TestNats::start().await;
    let (store, other) = (nats.store().await, nats.store().await);
    let identity = "phone:84900000001";
    let key = store.citizen_key(Some(identity)).await.expect("key");
    assert_eq!(other.citizen_key(Some(identity)).await.expect("key"), key, "one key per identity, whoever asks");
    assert_ne!(store.citizen_key(None).await.expect("key"), key, "no identity: a key of its own");

    let ticket = Uuid::now_v7();
    let mut petition = match received(ticket, "Nhà tôi ở số 5 Bí Mật, gọi 0900000001") {
        TicketEvent::PetitionReceived(p) => p,
        _ => unreachable!(),
    };
    petition.citizen = Some(Citizen { name: Some("Lê Văn Kín".into()), phone: Some("0900000001".into()), ..Default::default() });
    petition.citizen_key = Some(key);
    let v = store.append(ticket, 0, &commit(ticket, 0, vec![TicketEvent::PetitionReceived(petition)])).await.expect("petition").version;
    // Another process (no cache) continues the ticket: it finds the ticket's key from its first commit.
    let wrote = TicketEvent::CitizenWrote(CitizenWrote { text: "Bổ sung: Bí Mật".into(), channel: "sms".into(), channel_ref: None, attachments: vec![] });
    other.append(ticket, v, &commit(ticket, 1, vec![wrote])).await.expect("follow-up");

    for position in 1..=2 {
        let raw = String::from_utf8(nats_payload(&nats, position).await).expect("utf-8");
        assert!(!raw.contains("Bí Mật") && !raw.contains("Kín") && !raw.contains("0900000001"), "plaintext in the log: {raw}");
        assert!(raw.contains(&format!("enc:v1:{}:", key.simple())), "{raw}");
    }
    let history = nats.store().await.load(ticket).await.expect("load");
    let TicketEvent::PetitionReceived(p) = &history.events[0].event else { panic!("petition first") };
    assert!(p.text.contains("Bí Mật") && p.citizen.as_ref().and_then(|c| c.name.as_deref()) == Some("Lê Văn Kín"));
    let TicketEvent::CitizenWrote(w) = &history.events[1].event else { panic!("follow-up second") };
    assert_eq!(w.text, "Bổ sung: Bí Mật");
    store.checkpoint().await.expect("checkpoint").expect("written");

    store.destroy_key(key, &[identity.to_owned()]).await.expect("destroyed");
    let fresh = nats.store().await;
    let history = fresh.load(ticket).await.expect("load");
    let TicketEvent::PetitionReceived(p) = &history.events[0].event else { panic!("petition first") };
    let c = p.citizen.as_ref().expect("citizen");
    assert_eq!((p.text.as_str(), c.name.as_deref(), c.phone.as_deref()), (ERASED, Some(ERASED), Some(ERASED)));
    assert_eq!(p.reference, Reference::derive(ticket, 0), "what is not personal stays");
    let TicketEvent::CitizenWrote(w) = &history.events[1].event else { panic!("follow-up second") };
    assert_eq!(w.text, ERASED);
    assert_eq!(fresh.identity_key(identity).await.expect("lookup"), None, "the identity no longer leads to a key");
    assert_ne!(fresh.citizen_key(Some(identity)).await.expect("key"), key, "writing again makes a new key");
    let report = fresh.verify(|_, _| {}).await.expect("verify");
    assert!(report.problems.is_empty() && report.checkpoints_ok == 1, "erasure changes no stored byte: {:?}", report.problems);
}

#[tokio::test]
async fn erasing_deletes_read_the_servers_refusals_in_new_buckets_and_in_buckets_that_deny_deletes() {
    // Buckets made the way versions before erasure made them (async-nats's key-value default, which denies message
    // deletes; the channels' bucket with expiring markers): the server refuses the erasing delete, the store purges.
    let old = TestNats::start().await;
    let js = async_nats::jetstream::new(hotline_testkit::tamper::client(&old.url()).await);
    for (bucket, markers) in [("hotline_channels", Some(std::time::Duration::from_secs(60))), ("hotline_keys", None)] {
        let config = async_nats::jetstream::kv::Config { bucket: bucket.into(), limit_markers: markers, ..Default::default() };
        let mut kv = js.create_key_value(config).await.expect("bucket");
        assert!(kv.stream.info().await.expect("info").config.deny_delete, "{bucket}: made the old way");
    }
    let new = TestNats::start().await;
    for (nats, made) in [(&old, "denying deletes"), (&new, "allowing deletes")] {
        let store = nats.store().await;
        // Channel state: removed, whichever way the bucket allows.
        let first = store.state_put("zalo.inbox.1", b"tin nhan", None).await.expect("put").expect("revision");
        let second = store.state_put("zalo.inbox.1", b"tin nhan 2", Some(first)).await.expect("put").expect("revision");
        assert!(!store.state_delete("zalo.inbox.1", Some(first)).await.expect("delete"), "{made}: a superseded revision is not deleted");
        assert!(store.state_delete("zalo.inbox.1", Some(second)).await.expect("delete"), "{made}");
        assert!(store.state_get("zalo.inbox.1").await.expect("get").is_none(), "{made}: gone");
        assert!(store.state_delete("zalo.inbox.1", None).await.expect("delete again"), "{made}: nothing to remove");
        // A citizen's key: destroyed, whichever way the bucket allows; destroying it again is no error.
        let identity = "phone:84900000009";
        let key = store.citizen_key(Some(identity)).await.expect("key");
        store.destroy_key(key, &[identity.to_owned()]).await.expect("destroyed");
        store.destroy_key(key, &[identity.to_owned()]).await.expect("destroyed again");
        assert!(!nats.store().await.key_exists(key).await.expect("asked"), "{made}: the key is gone");
    }
}
