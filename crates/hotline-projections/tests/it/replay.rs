//! `hotline replay`'s parts on a real log: a rebuild equals the incrementally built projection, and a swap under a
//! running writer and reader moves both to the new file without losing or doubling a commit.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hotline_domain::TicketEvent;
use hotline_domain::event::PetitionRouted;
use hotline_domain::{Actor, CommandMeta, Envelope};
use hotline_projections::{TimelineReader, replay};
use hotline_store::EventStore;
use hotline_testkit::TestNats;
use time::OffsetDateTime;
use uuid::Uuid;

/// Stores `n` tickets, each received then routed (two commits), and returns their ids.
async fn petitions(store: &dyn EventStore, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = Uuid::now_v7();
        let meta = CommandMeta { actor: Actor::system("test"), occurred_at: OffsetDateTime::now_utc(), correlation_id: id, causation_id: None };
        let first = Envelope::seal(id, 0, vec![super::received(id)], &meta, Uuid::now_v7);
        let v = store.append(id, 0, &first).await.expect("append").version;
        let agency = if i % 2 == 0 { "dot" } else { "monre" };
        let routed = TicketEvent::PetitionRouted(PetitionRouted { agency: agency.into(), area: None, emergency: false, acknowledge_by: None, resolve_by: None });
        store.append(id, v, &Envelope::seal(id, 1, vec![routed], &meta, Uuid::now_v7)).await.expect("append");
        ids.push(id);
    }
    ids
}

/// Every row of every table, sorted: what "the same projection" means.
fn dump(path: &Path) -> Vec<(String, Vec<String>)> {
    let conn = rusqlite::Connection::open(path).expect("open");
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("tables")
        .collect::<Result<_, _>>()
        .expect("names");
    tables.sort();
    let mut out = Vec::new();
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).expect("select");
        let columns = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let values: Vec<String> = (0..columns).map(|i| format!("{:?}", r.get_ref(i).expect("value"))).collect();
                Ok(values.join("|"))
            })
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("read");
        rows.sort();
        out.push((table, rows));
    }
    out
}

async fn until(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn position_of(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.query_row("SELECT position FROM checkpoint WHERE projection = 'timeline'", [], |r| r.get(0)).expect("position")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_equals_the_live_projection_and_the_swap_moves_the_running_writer_and_reader() {
    let nats = TestNats::start().await;
    let store: Arc<dyn EventStore> = Arc::new(nats.store().await);
    let dir = tempfile::tempdir().expect("tmp");
    let live = dir.path().join("projections.sqlite");
    petitions(store.as_ref(), 40).await;

    // The live projection, built commit by commit as they come.
    let (stop, shutdown) = hotline_runtime::shutdown();
    let writer = tokio::spawn(hotline_projections::run(store.clone(), live.clone(), shutdown));
    let reader = TimelineReader::open(&live).expect("reader");
    let last = store.last_position().await.expect("last");
    until("the live projection", Duration::from_secs(20), async || reader.position().await.expect("pos") == last).await;

    // The rebuild, in batches, equals it row for row (tickets, timeline, checkpoint and log id, any other table).
    let rebuilt = dir.path().join("projections.sqlite.rebuild");
    let mut reports = Vec::new();
    let reached = replay::rebuild(store.as_ref(), &rebuilt, |p| reports.push(*p)).await.expect("rebuild");
    assert_eq!(reached, last);
    let last_report = reports.last().expect("progress reported");
    assert_eq!((last_report.events, last_report.position), (80, last), "every event counted");
    assert_eq!(dump(&rebuilt), dump(&live), "the rebuilt projection is the incremental one");
    assert!(!Path::new(&format!("{}-wal", rebuilt.display())).exists(), "sealed: no WAL left beside it");

    // More commits reach the old file only, then the swap: the reader opened before it sees the new file, the
    // writer moves there and re-applies what the old file had beyond the rebuild.
    petitions(store.as_ref(), 5).await;
    let after = store.last_position().await.expect("last");
    until("the old file", Duration::from_secs(20), async || reader.position().await.expect("pos") == after).await;
    let generation = replay::install(&rebuilt, &live).expect("install");
    assert!(std::fs::symlink_metadata(&live).expect("link").file_type().is_symlink());
    until("the writer on the new file", Duration::from_secs(20), async || position_of(&generation) == after as i64).await;
    // Now only the new file is written: what comes next shows through the old reader only if it follows the swap.
    let newest = petitions(store.as_ref(), 3).await;
    let end = store.last_position().await.expect("last");
    until("the reader on the new file", Duration::from_secs(20), async || reader.position().await.expect("pos") == end).await;
    assert!(reader.ticket(newest[2]).await.expect("query").is_some());
    assert_eq!(reader.count().await.expect("count"), 48);

    // Nothing lost, nothing doubled: a fresh rebuild of the whole log equals the swapped-in, live-continued file.
    let check = dir.path().join("check.sqlite");
    replay::rebuild(store.as_ref(), &check, |_| {}).await.expect("rebuild again");
    assert_eq!(dump(&check), dump(&live));

    // A second swap removes nothing the running processes may still read but the generation before last.
    let again = dir.path().join("projections.sqlite.rebuild");
    replay::rebuild(store.as_ref(), &again, |_| {}).await.expect("third rebuild");
    let third = replay::install(&again, &live).expect("install again");
    assert!(generation.exists(), "the generation just replaced stays for readers that have not moved yet");
    until("the writer on the third file", Duration::from_secs(20), async || position_of(&third) == end as i64).await;
    let again = dir.path().join("projections.sqlite.rebuild");
    replay::rebuild(store.as_ref(), &again, |_| {}).await.expect("fourth rebuild");
    replay::install(&again, &live).expect("install a third time");
    assert!(!generation.exists(), "generations older than the replaced one are removed");

    stop.trigger();
    writer.await.expect("join").expect("writer stops cleanly");
}
