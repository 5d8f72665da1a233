//! What durability costs: appends through the real `JetStreamStore` against a nats-server that fsyncs before
//! every acknowledgement (`sync_interval: always`, the system's setting) and one with the server's default
//! background fsync. Prints a table; the figures go into docs/durability.md.
//!
//! `cargo run --release -p hotline-store --example append_cost [appends]` (default 2,000 per mode; needs a
//! nats-server >= 2.12: `bash scripts/lib/nats-server.sh`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hotline_domain::event::PetitionReceived;
use hotline_domain::{Actor, CommandMeta, Envelope, Reference, TicketEvent};
use hotline_store::server::{NatsServer, ServerOptions, find_binary};
use hotline_store::{EventStore, JetStreamConfig, JetStreamStore};
use time::OffsetDateTime;
use uuid::Uuid;

fn petition(ticket: Uuid) -> Vec<Envelope> {
    let text = "Đèn tín hiệu giao thông tại ngã tư Sở Sao bị hỏng từ sáng, xe cộ đi lộn xộn rất nguy hiểm, \
                đề nghị ngành chức năng kiểm tra, sửa chữa sớm. Công dân phản ánh qua ứng dụng 1022."
        .repeat(2);
    let event = TicketEvent::PetitionReceived(PetitionReceived {
        citizen_key: None,
        reference: Reference::derive(ticket, 0),
        channel: "app".into(),
        channel_ref: None,
        text,
        subject: None,
        category: None,
        citizen: None,
        location: None,
        attachments: vec![],
    });
    let meta = CommandMeta { actor: Actor::channel("app"), occurred_at: OffsetDateTime::now_utc(), correlation_id: ticket, causation_id: None };
    Envelope::seal(ticket, 0, vec![event], &meta, Uuid::now_v7)
}

struct Figures {
    sequential_per_s: f64,
    p50: Duration,
    p99: Duration,
    concurrent_per_s: f64,
}

async fn measure(fsync: bool, n: usize) -> Figures {
    let dir = tempfile::tempdir().expect("tmp");
    let server = NatsServer::start(ServerOptions {
        binary: find_binary().expect("nats-server >= 2.12"),
        dir: dir.path().to_owned(),
        port: None,
        kill_with_parent: true,
        fsync_before_ack: fsync,
    })
    .await
    .expect("server");
    let store = Arc::new(JetStreamStore::connect(&server.url(), JetStreamConfig::default()).await.expect("store"));

    // One at a time: a client waiting for each acknowledgement, with the expected-version check.
    let mut latencies = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let ticket = Uuid::now_v7();
        let events = petition(ticket);
        let t = Instant::now();
        store.append(ticket, 0, &events).await.expect("append");
        latencies.push(t.elapsed());
    }
    let sequential_per_s = n as f64 / start.elapsed().as_secs_f64();
    latencies.sort();

    // 64 concurrent writers, as many intakes at once would be.
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..n / 64 {
                let ticket = Uuid::now_v7();
                store.append(ticket, 0, &petition(ticket)).await.expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let concurrent_per_s = (n / 64 * 64) as f64 / start.elapsed().as_secs_f64();
    Figures { sequential_per_s, p50: latencies[n / 2], p99: latencies[n * 99 / 100], concurrent_per_s }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2_000).max(64);
    println!("{n} appends of one ~600-byte PetitionReceived commit per mode, expected-version check on each");
    println!("| server setting | one at a time | p50 | p99 | 64 concurrent writers |");
    println!("|---|---|---|---|---|");
    for (name, fsync) in [("sync_interval: always (hotline)", true), ("default (background fsync)", false)] {
        let f = measure(fsync, n).await;
        println!(
            "| {name} | {:.0}/s | {:.2} ms | {:.2} ms | {:.0}/s |",
            f.sequential_per_s,
            f.p50.as_secs_f64() * 1e3,
            f.p99.as_secs_f64() * 1e3,
            f.concurrent_per_s
        );
    }
}
