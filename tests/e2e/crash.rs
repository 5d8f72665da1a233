//! SIGKILL the running system under load, restart it, and account for every petition exactly.
//!
//! Clients send petitions with an `Idempotency-Key` from several threads while the whole process (and its
//! embedded nats-server) is killed, twice. A request that got no answer has an unknown outcome; like a real
//! client, the test retries it with the same key after the restart. At the end: every key has one ticket, the
//! projection holds exactly as many tickets as keys, and each ticket was received once and routed once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::{projected_tickets, samples, start};

#[test]
fn killing_the_system_under_load_loses_no_acknowledged_petition_and_routes_each_once() {
    let mut system = start();
    let samples = Arc::new(samples());
    let acknowledged: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let unknown: Arc<Mutex<BTreeSet<String>>> = Arc::default();

    for round in 0..2 {
        let stop = Arc::new(AtomicBool::new(false));
        let addr = system.addr.clone();
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (stop, samples, acknowledged, unknown, addr) =
                    (stop.clone(), samples.clone(), acknowledged.clone(), unknown.clone(), addr.clone());
                std::thread::spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let key = format!("crash-{round}-{w}-{i}");
                        let text = samples[(i * 4 + w) % samples.len()]["text"].clone();
                        let body = json!({ "text": text }).to_string();
                        let headers = [("Content-Type", "application/json"), ("Idempotency-Key", key.as_str())];
                        match hotline_testkit::http("POST", &addr, "/v1/petitions", &headers, body.as_bytes()) {
                            Ok(r) if r.status == 202 => {
                                let id = r.json()["ticket_id"].as_str().unwrap_or_default().to_owned();
                                acknowledged.lock().expect("lock").insert(key, id);
                            }
                            // A 503 or a cut connection: the outcome is unknown to the client, which backs off
                            // until the system is back.
                            _ => {
                                unknown.lock().expect("lock").insert(key);
                                break;
                            }
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1500));
        system.kill();
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().expect("worker");
        }
        system.spawn();
    }

    // Retry every unknown outcome with its key, as a client would.
    let retried: Vec<String> = unknown.lock().expect("lock").iter().cloned().collect();
    for key in &retried {
        let text = json!({ "text": retry_text(&samples, key) });
        let r = system.post_petition(&text, Some(key));
        assert_eq!(r.status, 202, "retry of {key}: {}", r.text());
        let id = r.json()["ticket_id"].as_str().expect("id").to_owned();
        let mut acked = acknowledged.lock().expect("lock");
        if let Some(previous) = acked.get(key) {
            assert_eq!(previous, &id, "a retry found the same ticket");
        }
        acked.insert(key.clone(), id);
    }

    let acked = acknowledged.lock().expect("lock").clone();
    assert!(acked.len() > 20, "the load was real: {} petitions", acked.len());
    let ids: BTreeSet<&String> = acked.values().collect();
    assert_eq!(ids.len(), acked.len(), "one ticket per key");

    for id in &ids {
        system.wait_for_ticket(id, Duration::from_secs(60), |t| t["status"] == "routed" || t["status"] == "needs_triage");
        let timeline = system.get(&format!("/v1/tickets/{id}/timeline")).json();
        let types: Vec<&str> =
            timeline["entries"].as_array().expect("entries").iter().map(|e| e["type"].as_str().unwrap_or("")).collect();
        let received = types.iter().filter(|t| **t == "PetitionReceived").count();
        let routings = types.iter().filter(|t| **t == "PetitionRouted" || **t == "PetitionNeedsTriage").count();
        assert_eq!((received, routings), (1, 1), "ticket {id}: {types:?}");
    }
    // Tickets from requests that were stored but never answered were claimed by their retries above, so the
    // projection holds exactly the acknowledged set.
    std::thread::sleep(Duration::from_millis(500));
    let projected = projected_tickets(&system) as usize;
    eprintln!(
        "crash test: {} acknowledged ({} after a retry of an unknown outcome), {} projected",
        acked.len(),
        retried.len(),
        projected
    );
    assert_eq!(projected, acked.len(), "acknowledged = tickets in the projection");
}

/// The text that the key's first attempt sent (the same body, as an idempotent retry must).
fn retry_text(samples: &[serde_json::Value], key: &str) -> serde_json::Value {
    let parts: Vec<usize> = key.split('-').skip(2).filter_map(|p| p.parse().ok()).collect();
    let (w, i) = (parts[0], parts[1]);
    samples[(i * 4 + w) % samples.len()]["text"].clone()
}
