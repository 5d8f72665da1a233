//! Rewriting a stream behind the system's back, as an intruder with access to NATS could: the tamper-evidence
//! tests (`hotline audit verify`) use it to prove that a changed stored message is found.

use async_nats::jetstream;

/// Copies every message of `stream` out, deletes and recreates the stream with the same configuration, and
/// publishes the messages back in order (so each keeps its sequence), passing each payload through `edit`
/// (`(sequence, subject, payload) -> payload`). Panics if anything fails: it is test support.
pub async fn rewrite_stream(url: &str, stream: &str, mut edit: impl FnMut(u64, &str, Vec<u8>) -> Vec<u8>) {
    let js = jetstream::new(client(url).await);
    let mut s = js.get_stream(stream).await.expect("stream");
    let info = s.info().await.expect("stream info").clone();
    let mut messages = Vec::new();
    for seq in info.state.first_sequence..=info.state.last_sequence {
        if let Ok(m) = s.get_raw_message(seq).await {
            messages.push(m);
        }
    }
    js.delete_stream(stream).await.expect("delete the stream");
    js.create_stream(info.config.clone()).await.expect("recreate the stream");
    for m in messages {
        let mut headers = async_nats::HeaderMap::new();
        for (name, values) in m.headers.iter() {
            let name: &str = name.as_ref();
            if name.starts_with("Nats-Expected") {
                continue;
            }
            for v in values {
                headers.append(name, v.as_str());
            }
        }
        let payload = edit(m.sequence, m.subject.as_str(), m.payload.to_vec());
        let ack = js.publish_with_headers(m.subject.to_string(), headers, payload.into()).await.expect("publish").await.expect("ack");
        assert_eq!(ack.sequence, m.sequence, "the rewritten stream keeps every message's sequence");
    }
}

/// A NATS client for `url`, with the user and password the URL may carry (`nats://user:password@host:port`, as
/// `TestNats::url` gives), which async-nats itself ignores.
pub async fn client(url: &str) -> async_nats::Client {
    let (scheme, rest) = url.split_once("://").unwrap_or(("nats", url));
    let options = async_nats::ConnectOptions::new();
    let (options, host) = match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, password)) => (options.user_and_password(user.to_owned(), password.to_owned()), host),
            None => (options.token(userinfo.to_owned()), host),
        },
        None => (options, rest),
    };
    options.connect(format!("{scheme}://{host}")).await.expect("connect to NATS")
}
