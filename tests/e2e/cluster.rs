//! The 3-node NATS cluster we ship (deploy/cluster), on loopback, under load: the log's stream leader is SIGKILLed,
//! then a second node (no quorum left), then both come back. Clients see 503s while no write can be confirmed and
//! never a 202 that is later lost; at the end acknowledged = tickets in the log = tickets in the projection, each
//! routed once (tests/e2e/load.rs).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hotline_testkit::{NatsCluster, System, stream_leader};

use crate::binary;
use crate::load::{Load, account};

/// The shipped node configs.
fn configs() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/cluster");
    (1..=3).map(|n| root.join(format!("nats-{n}.conf"))).collect()
}

fn acknowledged(load: &Load) -> usize {
    load.ledger.lock().expect("lock").acknowledged.len()
}

/// Waits until the clients have had `more` petitions acknowledged, or panics after `limit`.
fn wait_for_acknowledged(load: &Load, more: usize, limit: Duration, what: &str) -> Duration {
    let (before, start) = (acknowledged(load), Instant::now());
    while acknowledged(load) < before + more {
        assert!(start.elapsed() < limit, "{what}: not {more} more petitions acknowledged within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

/// The log stream's leader, asked of the running nodes in turn; waits for an election to finish.
fn leader(runtime: &tokio::runtime::Runtime, cluster: &mut NatsCluster, limit: Duration) -> usize {
    let start = Instant::now();
    loop {
        for i in 0..cluster.nodes.len() {
            if !cluster.nodes[i].is_running() {
                continue;
            }
            if let Some(name) = runtime.block_on(stream_leader(&cluster.node_url(i), "HOTLINE_EVENTS"))
                && let Some(index) = cluster.index_of(&name)
                && cluster.nodes[index].is_running()
            {
                return index;
            }
        }
        assert!(start.elapsed() < limit, "no leader of HOTLINE_EVENTS within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The streams hotline keeps in the `HOTLINE` account.
const HOTLINE_STREAMS: [&str; 7] =
    ["HOTLINE_EVENTS", "HOTLINE_AUDIT", "KV_hotline_refs", "KV_hotline_tokens", "KV_hotline_inbound", "KV_hotline_channels", "KV_hotline_keys"];

#[test]
fn killing_the_stream_leader_then_a_second_node_under_load_loses_no_acknowledged_petition() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut cluster = NatsCluster::start(&configs());
    let (url, feed_url) = (cluster.url(), cluster.feed_url());
    let system = System::start(
        binary(),
        &[("NATS_URL", url.as_str()), ("HOTLINE_NATS__FEED_URL", feed_url.as_str()), ("HOTLINE_NATS__REPLICAS", "3")],
    );
    // Every stream and bucket of the log's account is R3: the log, the checkpoints, and the buckets, the citizens'
    // keys among them (an R1 bucket would die with its node). Asked again until the API answers (the cluster has
    // only just formed).
    for stream in HOTLINE_STREAMS {
        let start = Instant::now();
        let info = loop {
            match runtime.block_on(hotline_testkit::stream_info(&cluster.node_url(0), stream, None)) {
                Some(info) => break info,
                None => assert!(start.elapsed() < Duration::from_secs(30), "no stream info for {stream}"),
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        assert_eq!(info["config"]["num_replicas"], 3, "{stream} is an R3 stream: {info}");
    }

    let load = Load::start("cluster", Arc::new(Mutex::new(system.addr.clone())), 2, 20);
    wait_for_acknowledged(&load, 20, Duration::from_secs(30), "before the kills");

    // The leader dies: a new one is elected among the other two; meanwhile intake answers 503.
    let first = leader(&runtime, &mut cluster, Duration::from_secs(30));
    cluster.nodes[first].kill();
    let failover = wait_for_acknowledged(&load, 10, Duration::from_secs(60), "after the leader was killed");
    eprintln!("cluster: killed the leader {}; petitions acknowledged again {failover:?} later", cluster.nodes[first].name);

    // A second node dies (the new leader): one node of three is no quorum, so nothing can be acknowledged.
    let second = leader(&runtime, &mut cluster, Duration::from_secs(60));
    cluster.nodes[second].kill();
    std::thread::sleep(Duration::from_secs(3));
    let without_quorum = acknowledged(&load);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(acknowledged(&load), without_quorum, "nothing is acknowledged without a quorum");
    assert!(load.ledger.lock().expect("lock").count(503) > 0, "clients were told 503");

    // Both come back on their stores and catch up; intake recovers.
    cluster.nodes[second].spawn();
    cluster.nodes[first].spawn();
    let back = wait_for_acknowledged(&load, 20, Duration::from_secs(90), "after the nodes came back");
    eprintln!("cluster: both nodes back; petitions acknowledged again {back:?} later");
    std::thread::sleep(Duration::from_secs(2));

    let ledger = load.finish(&system.addr);
    let counts = account(&ledger, &system.data_dir, &url, Duration::from_secs(120));
    eprintln!("chaos cluster: {counts}, answers by status {:?}", ledger.statuses);

    // Every node holds the whole log and the citizens' keys again: the restarted ones caught up from the others.
    let start = Instant::now();
    for (i, stream) in (0..cluster.nodes.len()).flat_map(|i| ["HOTLINE_EVENTS", "KV_hotline_keys"].map(|s| (i, s))) {
        loop {
            let info = runtime.block_on(hotline_testkit::stream_info(&cluster.node_url(i), stream, None));
            let replicas_current = info.as_ref().is_some_and(|info| {
                info["cluster"]["replicas"].as_array().is_some_and(|r| r.len() == 2 && r.iter().all(|p| p["current"] == true))
            });
            if replicas_current {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "the replicas of {stream} did not catch up: {info:?}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}
