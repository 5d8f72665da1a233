//! The timeline projection's writer and reader on a real SQLite file: exactly-once application by position.

mod stats;

mod replay;

use hotline_domain::event::{PetitionReceived, PetitionRouted};
use hotline_domain::{Actor, CommandMeta, Envelope, Reference, TicketEvent};
use hotline_projections::{TimelineReader, TimelineWriter};
use hotline_store::Commit;
use time::OffsetDateTime;
use uuid::Uuid;

fn commit(position: u64, ticket: Uuid, last_seq: u64, events: Vec<TicketEvent>) -> Commit {
    let meta = CommandMeta { actor: Actor::system("t"), occurred_at: OffsetDateTime::now_utc(), correlation_id: ticket, causation_id: None };
    Commit { position, ticket_id: ticket, events: Envelope::seal(ticket, last_seq, events, &meta, Uuid::now_v7), stored_at: OffsetDateTime::now_utc(), hashes: Vec::new() }
}

fn received(ticket: Uuid) -> TicketEvent {
    TicketEvent::PetitionReceived(PetitionReceived {
        citizen_key: None,
        reference: Reference::derive(ticket, 0),
        channel: "sms".into(),
        channel_ref: None,
        text: "Ổ gà".into(),
        subject: None,
        category: Some("traffic_infrastructure".into()),
        citizen: None,
        location: None,
        attachments: vec![],
    })
}

#[tokio::test]
async fn applying_a_batch_again_changes_nothing_and_a_reopened_writer_resumes_at_its_position() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("p.sqlite");
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let batch = vec![
        commit(1, a, 0, vec![received(a)]),
        commit(2, b, 0, vec![received(b)]),
        commit(3, a, 1, vec![TicketEvent::PetitionRouted(PetitionRouted { agency: "dot".into(), area: None, emergency: false, acknowledge_by: None, resolve_by: None })]),
    ];
    {
        let mut writer = TimelineWriter::open(&path).expect("open");
        assert_eq!(writer.position().expect("pos"), 0);
        assert_eq!(writer.apply(&batch[..2]).expect("apply"), 2);
        // A redelivered overlap: 2 is skipped, 3 applied.
        assert_eq!(writer.apply(&batch[1..]).expect("apply"), 3);
        assert_eq!(writer.apply(&batch).expect("apply all again"), 3);
    }
    let writer = TimelineWriter::open(&path).expect("reopen");
    assert_eq!(writer.position().expect("pos"), 3, "the position survived with the rows");

    let reader = TimelineReader::open(&path).expect("reader");
    assert_eq!(reader.count().await.expect("count"), 2);
    let view = reader.ticket(a).await.expect("query").expect("ticket a");
    assert_eq!((view.status.as_str(), view.agency.as_deref(), view.events), ("routed", Some("dot"), 2));
    assert_eq!(view.category.as_deref(), Some("traffic_infrastructure"), "the channel's category shows before routing");
    let by_ref = reader.ticket_by_reference(Reference::derive(b, 0).as_str()).await.expect("query").expect("b");
    assert_eq!(by_ref.ticket_id, b);
    let timeline = reader.timeline(a).await.expect("timeline");
    assert_eq!(timeline.iter().map(|e| (e.seq, e.position)).collect::<Vec<_>>(), [(1, 1), (2, 3)]);
    assert!(reader.ticket(Uuid::now_v7()).await.expect("query").is_none());
}

#[test]
fn a_projection_built_from_another_log_is_dropped_and_rebuilt() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("p.sqlite");
    let a = Uuid::now_v7();
    let mut writer = TimelineWriter::open(&path).expect("open");
    assert!(!writer.bind_to_log("HOTLINE_EVENTS@2026-01-01T00:00:00Z").expect("bind"));
    writer.apply(&[commit(1, a, 0, vec![received(a)])]).expect("apply");
    assert!(!writer.bind_to_log("HOTLINE_EVENTS@2026-01-01T00:00:00Z").expect("same log"), "same log: kept");
    assert_eq!(writer.position().expect("pos"), 1);
    // The store was wiped and recreated: position 1 of the new log is another commit.
    assert!(writer.bind_to_log("HOTLINE_EVENTS@2026-02-02T00:00:00Z").expect("new log"), "another log: reset");
    assert_eq!(writer.position().expect("pos"), 0);
    let b = Uuid::now_v7();
    writer.apply(&[commit(1, b, 0, vec![received(b)])]).expect("apply from the new log");
    let conn = rusqlite::Connection::open(&path).expect("open");
    let tickets: Vec<String> = conn
        .prepare("SELECT ticket_id FROM tickets")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(tickets, vec![b.to_string()], "only the new log's ticket");
}

#[test]
fn a_queue_cursor_reads_back_its_key_and_refuses_garbage() {
    let key = hotline_projections::QueueKey {
        not_emergency: 1,
        no_deadline: 0,
        due_at: 1_764_300_000,
        received_at: "2026-11-28T03:01:27.425503941Z".into(),
        ticket_id: Uuid::now_v7().to_string(),
    };
    let cursor = key.to_cursor();
    assert!(cursor.bytes().all(|b| b.is_ascii_hexdigit()), "URL-safe: {cursor}");
    assert_eq!(hotline_projections::QueueKey::from_cursor(&cursor), Some(key));
    for bad in ["", "zz", "abc", "o18446744073709551615", &"41".repeat(300)] {
        assert_eq!(hotline_projections::QueueKey::from_cursor(bad), None, "{bad}");
    }
}

/// A phone caller's reply that could not go by SMS (no mobile number) puts the ticket in the call-back queue,
/// answered or not; the operator's recorded call-back (or a later delivered reply) takes it out.
#[tokio::test]
async fn a_reply_without_a_mobile_number_makes_a_call_back_task_until_it_is_done() {
    use hotline_domain::event::{CallbackDone, PetitionAnswered, ReplyFailed, ReplyKind, ReplySent};
    use hotline_projections::QueueFilter;

    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("p.sqlite");
    let (phone, sms, other) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let phone_petition = |t: Uuid| match received(t) {
        TicketEvent::PetitionReceived(p) => TicketEvent::PetitionReceived(PetitionReceived { channel: "phone".into(), ..p }),
        e => e,
    };
    let answered = TicketEvent::PetitionAnswered(PetitionAnswered { text: "Đã xử lý".into(), agency: "dot".into(), via_ticket: None, attachments: vec![] });
    let failed = |reason: &str| TicketEvent::ReplyFailed(ReplyFailed { kind: ReplyKind::Answer, of_event: Uuid::nil(), channel: "sms".into(), reason: reason.into(), attempts: 1 });
    let no_mobile = "no mobile number: call the citizen back";
    let mut writer = TimelineWriter::open(&path).expect("open");
    writer
        .apply(&[
            commit(1, phone, 0, vec![phone_petition(phone), answered.clone(), failed(no_mobile)]),
            commit(2, sms, 0, vec![received(sms), answered.clone(), failed(no_mobile)]),
            commit(3, other, 0, vec![phone_petition(other), answered, failed("gateway down")]),
        ])
        .expect("apply");
    let reader = TimelineReader::open(&path).expect("reader");
    let queue = |callback: Option<bool>| {
        let reader = reader.clone();
        async move {
            let filter = QueueFilter { callback, limit: 50, ..Default::default() };
            reader.queue(filter).await.expect("queue").into_iter().map(|t| t.ticket_id).collect::<Vec<_>>()
        }
    };
    assert_eq!(queue(Some(true)).await, vec![phone], "only the phone ticket whose SMS had no mobile number, though answered");
    assert!(reader.ticket(phone).await.expect("query").expect("ticket").callback_due);
    assert!(!reader.ticket(sms).await.expect("query").expect("ticket").callback_due);
    assert!(queue(None).await.is_empty(), "answered tickets stay out of the ordinary queue");

    writer.apply(&[commit(4, phone, 3, vec![TicketEvent::CallbackDone(CallbackDone { note: "Đã gọi lại".into() })])]).expect("apply");
    assert!(queue(Some(true)).await.is_empty(), "the call-back was done");
    writer.apply(&[commit(5, phone, 4, vec![failed(no_mobile)])]).expect("apply");
    assert_eq!(queue(Some(true)).await, vec![phone], "due again for the next reply");
    let sent = TicketEvent::ReplySent(ReplySent { kind: ReplyKind::Answer, of_event: Uuid::nil(), channel: "sms".into(), channel_message_id: None });
    writer.apply(&[commit(6, phone, 5, vec![sent])]).expect("apply");
    assert!(queue(Some(true)).await.is_empty(), "a delivered reply ends it");
}
