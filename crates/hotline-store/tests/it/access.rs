//! Subscriber credentials against a real nats-server running the config hotline generates: what a subscriber
//! system can do (its own durable consumer on its own audience, fetch, ack) and everything it cannot (other
//! filters, other consumer names, the internal log and buckets, publishing, live subjects), and revocation.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream};
use futures_util::StreamExt;
use hotline_store::access::{self, Registry, Subscriber};
use hotline_testkit::TestNats;
use tokio::sync::mpsc;

/// A client of one user, with the server's error messages (permission violations) collected.
struct As {
    client: async_nats::Client,
    errors: mpsc::UnboundedReceiver<String>,
}

async fn connect(port: u16, user: &str, password: &str, inbox: Option<&str>) -> Result<As, async_nats::ConnectError> {
    connect_waiting(port, user, password, inbox, Duration::from_millis(700)).await
}

/// [`connect`] with requests that wait `timeout` for an answer (700 ms is for requests the server must refuse).
async fn connect_waiting(port: u16, user: &str, password: &str, inbox: Option<&str>, timeout: Duration) -> Result<As, async_nats::ConnectError> {
    let (tx, errors) = mpsc::unbounded_channel();
    let mut options = async_nats::ConnectOptions::new()
        .user_and_password(user.to_owned(), password.to_owned())
        .connection_timeout(Duration::from_secs(3))
        .request_timeout(Some(timeout))
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    let _ = tx.send(format!("{e:?}"));
                }
            }
        });
    if let Some(prefix) = inbox {
        options = options.custom_inbox_prefix(prefix);
    }
    let client = options.connect(format!("nats://127.0.0.1:{port}")).await?;
    Ok(As { client, errors })
}

impl As {
    /// A request the server must refuse by permissions: no answer, and a violation naming the subject.
    async fn refused(&mut self, subject: &str, body: &str) {
        let answer = self.client.request(subject.to_owned(), body.to_owned().into()).await;
        assert!(answer.is_err(), "{subject} answered: {:?}", answer.map(|m| String::from_utf8_lossy(&m.payload).into_owned()));
        self.violation(subject).await;
    }

    /// A plain publish the server must refuse.
    async fn publish_refused(&mut self, subject: &str) {
        self.client.publish(subject.to_owned(), "x".into()).await.expect("queued");
        self.client.flush().await.expect("flush");
        self.violation(subject).await;
    }

    async fn violation(&mut self, subject: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let e = tokio::time::timeout_at(deadline, self.errors.recv())
                .await
                .unwrap_or_else(|_| panic!("no permission violation reported for {subject}"))
                .expect("events");
            if e.contains("Permissions Violation") && e.contains(subject) {
                return;
            }
        }
    }

    /// A request that reaches JetStream; its JSON answer.
    async fn api(&self, subject: &str, body: &str) -> serde_json::Value {
        let m = self.client.request(subject.to_owned(), body.to_owned().into()).await.expect("answered");
        serde_json::from_slice(&m.payload).expect("json")
    }
}

fn subscriber(name: &str, agency: Option<&str>, password: &str) -> Subscriber {
    Subscriber {
        name: name.to_owned(),
        agency: agency.map(str::to_owned),
        consumers: vec![name.to_owned()],
        password_hash: access::hash_password(password).expect("hash"),
        created_at: "2026-11-28T00:00:00Z".to_owned(),
    }
}

/// Reloads the server and waits until `user` can (or can no longer) log in.
async fn reload_until(dir: &std::path::Path, port: u16, user: &str, password: &str, accepted: bool) {
    access::reload(dir).expect("reload").expect("a server runs");
    for _ in 0..100 {
        if connect(port, user, password, None).await.is_ok() == accepted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{user} still {} after the reload", if accepted { "refused" } else { "accepted" });
}

#[tokio::test]
async fn a_subscriber_reads_its_own_audience_through_its_own_consumer_and_nothing_else() {
    let nats = TestNats::start().await;
    let dir = nats.dir.path().join("nats");
    let port = nats.server.port();
    let password = access::internal_password(&dir).expect("internal password");

    // Without credentials, nobody gets in.
    let anonymous = async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(3)).connect(nats.server.public_url()).await;
    assert!(anonymous.is_err(), "an anonymous client was accepted");

    // The internal side: the log (with one commit) and buckets in the global account; the feed in FEED.
    let store = nats.store().await;
    let internal = connect(port, access::INTERNAL_USER, &password, None).await.expect("internal user");
    let internal_js = jetstream::new(internal.client.clone());
    internal_js.publish("hotline.events.ticket.x", "internal".into()).await.expect("publish").await.expect("ack");
    let log_count = || async { internal_js.get_stream("HOTLINE_EVENTS").await.expect("log").info().await.expect("info").state.messages };
    let log_before = log_count().await;
    drop(store);

    let writer = connect(port, access::FEED_USER, &password, None).await.expect("feed writer");
    let feed_js = jetstream::new(writer.client.clone());
    let mut feed = feed_js
        .create_stream(stream::Config {
            name: access::FEED_STREAM.to_owned(),
            subjects: vec!["hotline.feed.v1.>".to_owned()],
            // As the real feed: deletes allowed (for erasure by the writer), so only permissions keep subscribers
            // from deleting.
            deny_delete: false,
            deny_purge: true,
            ..Default::default()
        })
        .await
        .expect("feed stream");
    for subject in ["public.petition_received", "police.petition_routed", "fire.petition_routed", "police.petition_answered"] {
        feed_js.publish(format!("hotline.feed.v1.{subject}"), subject.into()).await.expect("publish").await.expect("ack");
    }

    // Two subscribers, written into accounts.conf and reloaded into the running server.
    let mut registry = Registry::load(&dir).expect("registry");
    let mut police = subscriber("police-sys", Some("police"), "police-pw");
    // A spare consumer name (`--consumer spare`), unused until the push-consumer check below.
    police.consumers.push("police-sys-spare".to_owned());
    registry.add(police).expect("add");
    registry.add(subscriber("ioc", None, "ioc-pw")).expect("add");
    registry.save(&dir).expect("save");
    access::write_accounts(&dir, &registry).expect("accounts");
    reload_until(&dir, port, "police-sys", "police-pw", true).await;
    assert!(connect(port, "police-sys", "wrong", None).await.is_err(), "a wrong password was accepted");

    let mut sub = connect(port, "police-sys", "police-pw", Some("_INBOX_police-sys")).await.expect("subscriber");
    let js = jetstream::new(sub.client.clone());

    // CAN: its durable consumer on its filter, fetch, ack, inspect; resume where it stopped.
    let stream = js.get_stream(access::FEED_STREAM).await.expect("stream info is allowed");
    let config = pull::Config {
        durable_name: Some("police-sys".to_owned()),
        filter_subject: "hotline.feed.v1.police.>".to_owned(),
        ..Default::default()
    };
    let consumer = stream.create_consumer(config.clone()).await.expect("its own consumer");
    let mut batch = consumer.fetch().max_messages(1).expires(Duration::from_secs(1)).messages().await.expect("fetch");
    let first = batch.next().await.expect("one").expect("message");
    assert_eq!(first.subject.as_str(), "hotline.feed.v1.police.petition_routed");
    first.ack().await.expect("ack");
    drop(batch);
    // A crash: a new connection binds the same durable and gets the next one, not the first again.
    let stream = js.get_stream(access::FEED_STREAM).await.expect("stream");
    let consumer = stream.create_consumer(config.clone()).await.expect("same config binds");
    let mut batch = consumer.fetch().max_messages(10).expires(Duration::from_secs(1)).messages().await.expect("fetch");
    let mut rest = Vec::new();
    while let Some(m) = batch.next().await {
        let m = m.expect("message");
        rest.push(m.subject.to_string());
        m.ack().await.expect("ack");
    }
    assert_eq!(rest, ["hotline.feed.v1.police.petition_answered"], "only its agency, resumed after the ack");

    // CANNOT: another audience, the whole feed, another consumer name, the unfiltered create form.
    let other_filter = |filter: &str| {
        format!(r#"{{"stream_name":"HOTLINE_FEED","config":{{"durable_name":"police-sys","filter_subject":"{filter}"}}}}"#)
    };
    sub.refused("$JS.API.CONSUMER.CREATE.HOTLINE_FEED.police-sys.hotline.feed.v1.fire.>", &other_filter("hotline.feed.v1.fire.>")).await;
    sub.refused("$JS.API.CONSUMER.CREATE.HOTLINE_FEED.police-sys.hotline.feed.v1.>", &other_filter("hotline.feed.v1.>")).await;
    sub.refused("$JS.API.CONSUMER.CREATE.HOTLINE_FEED.police-sys", &other_filter("hotline.feed.v1.fire.>")).await;
    sub.refused("$JS.API.CONSUMER.CREATE.HOTLINE_FEED.ioc.hotline.feed.v1.police.>", &other_filter("hotline.feed.v1.police.>")).await;
    sub.refused("$JS.API.CONSUMER.DURABLE.CREATE.HOTLINE_FEED.police-sys", &other_filter("hotline.feed.v1.fire.>")).await;
    sub.refused("$JS.API.CONSUMER.MSG.NEXT.HOTLINE_FEED.ioc", r#"{"batch":1}"#).await;
    // The permitted subject with another filter in the body: the server itself refuses the mismatch.
    let mismatch = sub
        .api("$JS.API.CONSUMER.CREATE.HOTLINE_FEED.police-sys.hotline.feed.v1.police.>", &other_filter("hotline.feed.v1.fire.>"))
        .await;
    assert!(mismatch.get("error").is_some(), "body filter differing from the subject's was accepted: {mismatch}");
    let plural = sub
        .api(
            "$JS.API.CONSUMER.CREATE.HOTLINE_FEED.police-sys.hotline.feed.v1.police.>",
            r#"{"stream_name":"HOTLINE_FEED","config":{"durable_name":"police-sys","filter_subjects":["hotline.feed.v1.fire.>"]}}"#,
        )
        .await;
    assert!(plural.get("error").is_some(), "filter_subjects beside the subject's filter was accepted: {plural}");

    // CANNOT: read the internal log or the buckets, by any API.
    for subject in [
        "$JS.API.STREAM.INFO.HOTLINE_EVENTS",
        "$JS.API.STREAM.MSG.GET.HOTLINE_EVENTS",
        "$JS.API.DIRECT.GET.HOTLINE_EVENTS",
        "$JS.API.DIRECT.GET.HOTLINE_EVENTS.hotline.events.ticket.x",
        "$JS.API.CONSUMER.CREATE.HOTLINE_EVENTS.police-sys",
        "$JS.API.CONSUMER.CREATE.HOTLINE_EVENTS.police-sys.hotline.events.>",
        "$JS.API.STREAM.INFO.KV_hotline_tokens",
        "$JS.API.DIRECT.GET.KV_hotline_tokens.$KV.hotline_tokens.x",
        "$JS.API.STREAM.NAMES",
        "$JS.API.STREAM.MSG.GET.HOTLINE_FEED",
        "$JS.API.DIRECT.GET.HOTLINE_FEED.hotline.feed.v1.fire.petition_routed",
        "$JS.API.STREAM.DELETE.HOTLINE_FEED",
        "$JS.API.STREAM.MSG.DELETE.HOTLINE_FEED",
        "$JS.API.STREAM.PURGE.HOTLINE_FEED",
        "$JS.API.INFO",
    ] {
        sub.refused(subject, r#"{"seq":1}"#).await;
    }
    // CANNOT: publish anything, anywhere.
    for subject in ["hotline.events.ticket.x", "hotline.feed.v1.police.forged", "hotline.feed.v1.public.forged", "$KV.hotline_tokens.x"] {
        sub.publish_refused(subject).await;
    }
    // CANNOT: listen to live subjects or to another subscriber's inbox.
    for subject in ["hotline.feed.v1.>", "hotline.events.>", "_INBOX_ioc.>", "_INBOX.>", ">"] {
        let _subscription = sub.client.subscribe(subject.to_owned()).await.expect("sent");
        sub.client.flush().await.expect("flush");
        sub.violation(subject).await;
    }

    // A push consumer: nats-server 2.12 does not check its deliver subject against the creator's permissions
    // (nats-io/nats-server#8274), which is why the feed has an account of its own. Whether the server takes the
    // create or refuses it, nothing may be delivered into the internal account (the log's subjects) or into
    // another subscriber's inbox. Watchers: the internal user on the log's subjects, the public subscriber on its
    // inbox.
    let mut internal_watch = internal.client.subscribe("hotline.events.>").await.expect("internal watch");
    let ioc_watcher = connect(port, "ioc", "ioc-pw", Some("_INBOX_ioc")).await.expect("ioc");
    let mut ioc_watch = ioc_watcher.client.subscribe("_INBOX_ioc.>").await.expect("ioc watch");
    internal.client.flush().await.expect("flush");
    ioc_watcher.client.flush().await.expect("flush");
    for deliver in ["hotline.events.ticket.x", "_INBOX_ioc.stolen"] {
        let create = sub
            .api(
                "$JS.API.CONSUMER.CREATE.HOTLINE_FEED.police-sys-spare.hotline.feed.v1.police.>",
                &format!(
                    r#"{{"stream_name":"HOTLINE_FEED","config":{{"durable_name":"police-sys-spare","filter_subject":"hotline.feed.v1.police.>","deliver_subject":"{deliver}","deliver_policy":"all","ack_policy":"none"}}}}"#
                ),
            )
            .await;
        let created = create.get("error").is_none();
        let internal_got = tokio::time::timeout(Duration::from_secs(1), internal_watch.next()).await;
        assert!(internal_got.is_err(), "a push consumer (created: {created}, {create}) delivered into the internal account: {internal_got:?}");
        let ioc_got = tokio::time::timeout(Duration::from_secs(1), ioc_watch.next()).await;
        assert!(ioc_got.is_err(), "a push consumer (created: {created}, {create}) delivered police messages into ioc's inbox: {ioc_got:?}");
        if created {
            // nats-server 2.12.8 takes it, and then delivers nothing: two police messages wait, none went out.
            let info = sub.api("$JS.API.CONSUMER.INFO.HOTLINE_FEED.police-sys-spare", "").await;
            assert_eq!(info["num_pending"], 2, "{info}");
            assert_eq!(info["delivered"]["stream_seq"], 0, "a push consumer to {deliver} delivered: {info}");
            // Out of the way for the next attempt; deleting its own consumer is allowed.
            let deleted = sub.api("$JS.API.CONSUMER.DELETE.HOTLINE_FEED.police-sys-spare", "").await;
            assert_eq!(deleted["success"], true, "{deleted}");
        }
    }
    assert_eq!(log_count().await, log_before, "a subscriber's consumer wrote into the internal log");
    assert_eq!(feed.info().await.expect("feed info").state.messages, 4, "the feed was changed");
    drop((internal_watch, ioc_watch, ioc_watcher));

    // The public subscriber sees only the public audience.
    let pub_sub = connect(port, "ioc", "ioc-pw", Some("_INBOX_ioc")).await.expect("public subscriber");
    let pub_js = jetstream::new(pub_sub.client.clone());
    let consumer = pub_js
        .get_stream(access::FEED_STREAM)
        .await
        .expect("stream")
        .create_consumer(pull::Config {
            durable_name: Some("ioc".to_owned()),
            filter_subject: "hotline.feed.v1.public.>".to_owned(),
            ..Default::default()
        })
        .await
        .expect("public consumer");
    let mut batch = consumer.fetch().max_messages(10).expires(Duration::from_secs(1)).messages().await.expect("fetch");
    let mut seen = Vec::new();
    while let Some(m) = batch.next().await {
        seen.push(m.expect("message").subject.to_string());
    }
    assert_eq!(seen, ["hotline.feed.v1.public.petition_received"]);

    // Revoke: after the reload its password is refused and its live connection is closed.
    let mut registry = Registry::load(&dir).expect("registry");
    registry.remove("police-sys").expect("remove");
    registry.save(&dir).expect("save");
    access::write_accounts(&dir, &registry).expect("accounts");
    reload_until(&dir, port, "police-sys", "police-pw", false).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while sub.client.connection_state() == async_nats::connection::State::Connected {
        assert!(tokio::time::Instant::now() < deadline, "a revoked subscriber's connection stayed open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The others are unaffected.
    assert!(connect(port, "ioc", "ioc-pw", None).await.is_ok());
    assert!(connect(port, access::INTERNAL_USER, &password, None).await.is_ok());
}

#[tokio::test]
async fn a_reused_subscriber_name_never_reads_the_audience_of_the_subscriber_that_had_it() {
    let nats = TestNats::start().await;
    let dir = nats.dir.path().join("nats");
    let port = nats.server.port();
    let feed_url = nats.server.feed_url();
    let writer = connect_waiting(port, access::FEED_USER, &access::internal_password(&dir).expect("password"), None, Duration::from_secs(10))
        .await
        .expect("writer");
    let feed_js = jetstream::new(writer.client.clone());
    let feed = feed_js
        .create_stream(stream::Config {
            name: access::FEED_STREAM.to_owned(),
            subjects: vec!["hotline.feed.v1.>".to_owned()],
            ..Default::default()
        })
        .await
        .expect("feed stream");
    for subject in ["police.petition_routed", "public.petition_received"] {
        feed_js.publish(format!("hotline.feed.v1.{subject}"), subject.into()).await.expect("publish").await.expect("ack");
    }

    // police-sys reads the police feed through its consumer `police-sys`.
    let mut registry = Registry::load(&dir).expect("registry");
    registry.add(subscriber("police-sys", Some("police"), "old-pw")).expect("add");
    access::write_accounts(&dir, &registry).expect("accounts");
    reload_until(&dir, port, "police-sys", "old-pw", true).await;
    let old = connect(port, "police-sys", "old-pw", Some("_INBOX_police-sys")).await.expect("old subscriber");
    jetstream::new(old.client.clone())
        .get_stream(access::FEED_STREAM)
        .await
        .expect("stream")
        .create_consumer(pull::Config {
            durable_name: Some("police-sys".to_owned()),
            filter_subject: "hotline.feed.v1.police.>".to_owned(),
            ..Default::default()
        })
        .await
        .expect("police consumer");
    drop(old);

    // Revoked while the server could not be asked to delete its consumer: the consumer stays, the name retires.
    let removed = registry.remove("police-sys").expect("remove");
    assert_eq!(registry.retired_consumers, removed.consumers);
    access::write_accounts(&dir, &registry).expect("accounts");
    reload_until(&dir, port, "police-sys", "old-pw", false).await;
    assert!(consumer_exists(&feed, "police-sys").await, "the old consumer is still there");

    // The name comes back for the public feed. Without a server to ask, the retired name is refused.
    let mut again = registry.clone();
    again.add(subscriber("police-sys", None, "new-pw")).expect("add");
    let names = vec!["police-sys".to_owned()];
    for url in [None, Some("nats://hotline-feed:x@127.0.0.1:1")] {
        let refused = access::free_consumer_names(&mut again, url, &names).await;
        assert!(matches!(refused, Err(access::AccessError::Conflict(_))), "{url:?}: {refused:?}");
    }
    // With the server: the stale consumer is deleted before the new user exists.
    assert!(access::free_consumer_names(&mut again, Some(&feed_url), &names).await.expect("freed"));
    assert!(again.retired_consumers.is_empty());
    access::write_accounts(&dir, &again).expect("accounts");
    reload_until(&dir, port, "police-sys", "new-pw", true).await;

    // The new police-sys finds no consumer to fetch police messages from, and its own reads the public feed only.
    let new = connect_waiting(port, "police-sys", "new-pw", Some("_INBOX_police-sys"), Duration::from_secs(10)).await.expect("new subscriber");
    let stream = jetstream::new(new.client.clone()).get_stream(access::FEED_STREAM).await.expect("stream");
    assert!(!consumer_exists(&stream, "police-sys").await, "the police consumer survived");
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("police-sys".to_owned()),
            filter_subject: "hotline.feed.v1.public.>".to_owned(),
            ..Default::default()
        })
        .await
        .expect("public consumer");
    let mut batch = consumer.fetch().max_messages(10).expires(Duration::from_secs(1)).messages().await.expect("fetch");
    let mut seen = Vec::new();
    while let Some(m) = batch.next().await {
        seen.push(m.expect("message").subject.to_string());
    }
    assert_eq!(seen, ["hotline.feed.v1.public.petition_received"]);

    // Revoking with the server up deletes its consumers at once.
    let removed = again.remove("police-sys").expect("remove");
    access::delete_consumers(&feed_url, &removed.consumers).await.expect("deleted");
    assert!(!consumer_exists(&feed, "police-sys").await, "a revoked subscriber's consumer stayed");
}

/// Whether JetStream says the consumer exists: its info, or "consumer not found". Any other answer (right after a
/// reload that changed the accounts, JetStream may not answer for a moment) is asked again.
async fn consumer_exists(stream: &stream::Stream, name: &str) -> bool {
    let mut last = String::new();
    for _ in 0..50 {
        match stream.get_consumer::<pull::Config>(name).await {
            Ok(_) => return true,
            Err(e) if e.to_string().contains("consumer not found") => return false,
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("JetStream does not say whether consumer {name} exists: {last}");
}

#[tokio::test]
async fn a_lost_internal_password_is_not_replaced_while_a_config_uses_its_hash() {
    let dir = tempfile::tempdir().expect("tempdir");
    access::write_accounts(dir.path(), &Registry::default()).expect("first config");
    let password = std::fs::read_to_string(dir.path().join(access::PASSWORD_FILE)).expect("password made");
    std::fs::remove_file(dir.path().join(access::PASSWORD_FILE)).expect("lose it");
    let refused = access::write_accounts(dir.path(), &Registry::default()).expect_err("a new password was made");
    assert!(refused.to_string().contains("would lock every hotline process out"), "{refused}");
    assert!(!dir.path().join(access::PASSWORD_FILE).exists());
    // Restored, it is used again.
    std::fs::write(dir.path().join(access::PASSWORD_FILE), &password).expect("restore");
    access::write_accounts(dir.path(), &Registry::default()).expect("config");
}
