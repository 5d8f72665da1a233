//! End-to-end tests: the real `hotline up` binary with its own embedded nats-server and data dir, driven over
//! HTTP like a client would. `TEST_LOG=1` shows the system's log.

mod access;
mod audit;
mod citizen;
mod components;
mod crash;
mod email;
mod errors;
mod flow;
mod lifecycle;
mod open311;
mod phone;
mod sms;
mod stats;
mod subscriber;
mod workflow;
mod zalo;

use std::path::Path;

use hotline_testkit::System;

/// The binary under test.
pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hotline"))
}

pub fn start() -> System {
    System::start(binary(), &[])
}

/// Labelled sample petitions (tests/fixtures/petitions-dev.jsonl).
pub fn samples() -> Vec<serde_json::Value> {
    let text = include_str!("../fixtures/petitions-dev.jsonl");
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("fixture line")).collect()
}

/// Ticket count in the projection file of a system (stopped or running).
pub fn projected_tickets(system: &System) -> i64 {
    let conn = rusqlite::Connection::open(system.data_dir.join("projections.sqlite")).expect("open projections");
    conn.query_row("SELECT COUNT(*) FROM tickets", [], |r| r.get(0)).expect("count")
}
