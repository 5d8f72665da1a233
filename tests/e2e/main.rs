//! End-to-end tests: the real `hotline up` binary with its own embedded nats-server and data dir, driven over
//! HTTP like a client would. `TEST_LOG=1` shows the system's log.

mod access;
mod audit;
mod bench;
mod chaos;
mod citizen;
mod cluster;
mod components;
mod crash;
mod deploy;
mod email;
mod errors;
mod flow;
mod lifecycle;
mod load;
mod open311;
mod phone;
mod privacy;
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

/// The URL, with its login, of the NATS server a running `hotline up` started (`<data dir>/nats.url`).
pub fn nats_url(system: &System) -> String {
    std::fs::read_to_string(system.data_dir.join("nats.url")).expect("<data dir>/nats.url").trim().to_owned()
}

/// The text of `ticket`'s petition as `store` reads it from the log (opened with the citizen's key).
pub async fn petition_text(store: &hotline_store::JetStreamStore, ticket: uuid::Uuid) -> String {
    use hotline_store::EventStore;
    match store.load(ticket).await.expect("load").events.first().map(|e| &e.event) {
        Some(hotline_domain::TicketEvent::PetitionReceived(p)) => p.text.clone(),
        other => panic!("ticket {ticket} does not start with its petition: {other:?}"),
    }
}

/// Ticket count in the projection file of a system (stopped or running).
pub fn projected_tickets(system: &System) -> i64 {
    let conn = rusqlite::Connection::open(system.data_dir.join("projections.sqlite")).expect("open projections");
    conn.query_row("SELECT COUNT(*) FROM tickets", [], |r| r.get(0)).expect("count")
}

/// A `hotline serve <component>` process, killed when dropped.
pub struct Served {
    child: std::process::Child,
    /// What the process printed after the awaited prefix (its listening address), if a prefix was awaited.
    pub addr: Option<String>,
}

impl Served {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `hotline serve <component> <args>` against `nats` with its own `data_dir` and `env` (`None` removes the
/// variable). With `await_prefix`, waits until a line of its stdout starts with it and keeps the rest as `addr`.
/// Stdout is read to the end on a thread of its own: a closed pipe would fail the process's later prints.
pub fn serve(component: &str, args: &[&str], nats: &str, data_dir: &Path, env: &[(&str, Option<&str>)], await_prefix: Option<&str>) -> Served {
    serve_with(component, args, nats, data_dir, env, await_prefix, |_| {})
}

/// [`serve`], with `prepare` given the command last (limits, where its log goes).
pub fn serve_with(
    component: &str,
    args: &[&str],
    nats: &str,
    data_dir: &Path,
    env: &[(&str, Option<&str>)],
    await_prefix: Option<&str>,
    prepare: impl FnOnce(&mut std::process::Command),
) -> Served {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut command = Command::new(binary());
    command
        .args(["serve", component])
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("NATS_URL", nats)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if std::env::var_os("TEST_LOG").is_some() { Stdio::inherit() } else { Stdio::null() });
    for (key, value) in env {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    prepare(&mut command);
    let mut child = command.spawn().unwrap_or_else(|e| panic!("hotline serve {component} starts: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let prefix = await_prefix.map(str::to_owned);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = prefix.as_deref().and_then(|p| line.strip_prefix(p)) {
                let _ = tx.send(rest.trim().to_owned());
            }
        }
    });
    let addr = await_prefix.map(|p| {
        rx.recv_timeout(std::time::Duration::from_secs(60)).unwrap_or_else(|_| panic!("hotline serve {component} prints `{p}` within 60 s"))
    });
    Served { child, addr }
}
