//! The statistics projection against a recount: a mixed scenario is applied event by event, and every figure of
//! `TimelineReader::stats` must equal what the test counts itself from the same events, folded with the domain's
//! own aggregate (`Ticket::apply`) to know each ticket's state and deadlines before each event.

use std::collections::BTreeMap;

use hotline_domain::event::{
    CitizenReplied, FeedbackGiven, InformationRequested, Location, MarkedDuplicate, PetitionAcknowledged, PetitionAnswered,
    PetitionCategorized, PetitionNeedsTriage, PetitionReceived, PetitionRejected, PetitionRouted, PetitionTransferred,
    TicketClosed,
};
use hotline_domain::{Actor, CommandMeta, Envelope, Reference, Status, Ticket, TicketEvent};
use hotline_projections::{Breakdown, Counts, Stats, StatsFilter, TimelineReader, TimelineWriter};
use hotline_store::Commit;
use time::macros::{date, datetime, offset};
use time::{Duration, OffsetDateTime, UtcOffset};
use uuid::Uuid;

const HCM: UtcOffset = offset!(+7);

/// Builds the log: commits in order, each event at its own time.
struct Log {
    commits: Vec<Commit>,
    seqs: BTreeMap<Uuid, u64>,
}

impl Log {
    fn new() -> Log {
        Log { commits: Vec::new(), seqs: BTreeMap::new() }
    }

    fn add(&mut self, ticket: Uuid, at: OffsetDateTime, event: TicketEvent) {
        let meta = CommandMeta { actor: Actor::system("test"), occurred_at: at, correlation_id: ticket, causation_id: None };
        let seq = self.seqs.entry(ticket).or_insert(0);
        let events = Envelope::seal(ticket, *seq, vec![event], &meta, Uuid::now_v7);
        *seq += 1;
        let position = self.commits.len() as u64 + 1;
        self.commits.push(Commit { position, ticket_id: ticket, events, stored_at: at, hashes: Vec::new() });
    }
}

fn received(ticket: Uuid, channel: &str, area: Option<&str>, point: Option<(f64, f64)>) -> TicketEvent {
    TicketEvent::PetitionReceived(PetitionReceived {
        citizen_key: None,
        reference: Reference::derive(ticket, 0),
        channel: channel.into(),
        channel_ref: None,
        text: "Đèn đường hỏng".into(),
        subject: None,
        category: None,
        citizen: None,
        location: Some(Location {
            area: area.map(str::to_owned),
            lat: point.map(|p| p.0),
            lon: point.map(|p| p.1),
            address: Some("12 Lê Lợi".into()),
        }),
        attachments: vec![],
    })
}

fn categorized(category: &str, area: Option<&str>) -> TicketEvent {
    TicketEvent::PetitionCategorized(PetitionCategorized {
        category: category.into(),
        area: area.map(str::to_owned),
        emergency: false,
        confidence: 0.9,
        source: "rules".into(),
        matched: vec![],
    })
}

fn routed(agency: &str, at: OffsetDateTime) -> TicketEvent {
    TicketEvent::PetitionRouted(PetitionRouted {
        agency: agency.into(),
        area: None,
        emergency: false,
        acknowledge_by: Some(at + Duration::hours(4)),
        resolve_by: Some(at + Duration::days(5)),
    })
}

fn ack(agency: &str) -> TicketEvent {
    TicketEvent::PetitionAcknowledged(PetitionAcknowledged { agency: agency.into() })
}

fn answered(agency: &str) -> TicketEvent {
    TicketEvent::PetitionAnswered(PetitionAnswered { text: "Đã sửa".into(), agency: agency.into(), via_ticket: None, attachments: vec![] })
}

fn transferred(from: &str, bounces: u32) -> TicketEvent {
    TicketEvent::PetitionTransferred(PetitionTransferred { from_agency: from.into(), reason: "không thuộc thẩm quyền".into(), suggested_agency: None, bounces })
}

fn feedback(satisfied: bool) -> TicketEvent {
    TicketEvent::FeedbackGiven(FeedbackGiven { satisfied, comment: None })
}

/// A mixed scenario: on-time and late acknowledgements and answers, a reopening, transfers, triage, a pause for
/// the citizen, a rejection, a duplicate, tickets still open; received on both sides of a local midnight.
fn scenario() -> (Log, Vec<Uuid>) {
    let mut log = Log::new();
    let ids: Vec<Uuid> = (0..7).map(|_| Uuid::now_v7()).collect();
    let [t1, t2, t3, t4, t5, t6, t7] = ids[..] else { unreachable!() };
    // 23:30 local on 1 March.
    let t0 = datetime!(2026-03-01 16:30 UTC);
    let h = Duration::hours;

    // T1: acknowledged on time, answered late, not satisfied (reopened), answered again on time, satisfied, closed.
    log.add(t1, t0, received(t1, "sms", Some("dian"), None));
    log.add(t1, t0 + Duration::minutes(1), categorized("traffic_infrastructure", None));
    log.add(t1, t0 + Duration::minutes(1), routed("dot", t0));
    log.add(t1, t0 + h(1), ack("dot"));
    log.add(t1, t0 + h(200), answered("dot"));
    log.add(t1, t0 + h(201), feedback(false));
    log.add(t1, t0 + h(201), routed("dot", t0 + h(201)));
    log.add(t1, t0 + h(202), answered("dot"));
    log.add(t1, t0 + h(203), feedback(true));
    log.add(t1, t0 + h(203), TicketEvent::TicketClosed(TicketClosed { reason: None }));

    // T2 (00:30 local on 2 March, with coordinates): acknowledged late, sent back by dot, routed to the environment
    // agency, a question paused it, the reply moved its deadlines, answered on time; no feedback.
    let s2 = t0 + h(1);
    log.add(t2, s2, received(t2, "app", None, Some((10.98, 106.65))));
    log.add(t2, s2, categorized("environment", Some("thuan_an")));
    log.add(t2, s2, routed("dot", s2));
    log.add(t2, s2 + h(6), ack("dot"));
    log.add(t2, s2 + h(7), transferred("dot", 1));
    log.add(t2, s2 + h(8), routed("tnmt", s2 + h(8)));
    log.add(t2, s2 + h(9), TicketEvent::InformationRequested(InformationRequested { question: "Ở đâu?".into() }));
    log.add(
        t2,
        s2 + h(30),
        TicketEvent::CitizenReplied(CitizenReplied {
            text: "Gần chợ".into(),
            acknowledge_by: Some(s2 + h(33)),
            resolve_by: Some(s2 + h(150)),
            channel_ref: None,
            attachments: vec![],
        }),
    );
    log.add(t2, s2 + h(120), answered("tnmt"));

    // T3: nothing matched, the desk answers from triage (no deadline runs there).
    let s3 = t0 + h(30);
    log.add(t3, s3, received(t3, "email", None, None));
    log.add(
        t3,
        s3,
        TicketEvent::PetitionNeedsTriage(PetitionNeedsTriage { agency: "hotline".into(), reason: "no rule".into(), suggested_category: None, area: None }),
    );
    log.add(t3, s3 + h(2), answered("hotline"));
    log.add(t3, s3 + h(3), feedback(true));

    // T4: asked the citizen before the deadline, answered while waiting after it: judged when the clock stopped.
    let s4 = t0 + h(31);
    log.add(t4, s4, received(t4, "phone", Some("dian"), None));
    log.add(t4, s4, categorized("traffic_infrastructure", None));
    log.add(t4, s4, routed("dot", s4));
    log.add(t4, s4 + h(2), ack("dot"));
    log.add(t4, s4 + h(3), TicketEvent::InformationRequested(InformationRequested { question: "Ảnh?".into() }));
    log.add(t4, s4 + h(300), answered("dot"));

    // T5: sent back twice, triaged, rejected.
    let s5 = t0 + h(32);
    log.add(t5, s5, received(t5, "sms", Some("thuan_an"), None));
    log.add(t5, s5, categorized("environment", None));
    log.add(t5, s5, routed("tnmt", s5));
    log.add(t5, s5 + h(1), transferred("tnmt", 1));
    log.add(t5, s5 + h(1), routed("dot", s5 + h(1)));
    log.add(t5, s5 + h(2), transferred("dot", 2));
    log.add(
        t5,
        s5 + h(2),
        TicketEvent::PetitionNeedsTriage(PetitionNeedsTriage { agency: "hotline".into(), reason: "bounced".into(), suggested_category: None, area: None }),
    );
    log.add(t5, s5 + h(3), TicketEvent::PetitionRejected(PetitionRejected { reason: "spam".into() }));

    // T6: routed, still open, with coordinates. T7: a duplicate of T6.
    let s6 = t0 + h(60);
    log.add(t6, s6, received(t6, "app", None, Some((10.9, 106.7))));
    log.add(t6, s6, categorized("traffic_infrastructure", Some("dian")));
    log.add(t6, s6, routed("dot", s6));
    log.add(t7, s6 + h(1), received(t7, "app", Some("dian"), None));
    log.add(t7, s6 + h(1), categorized("traffic_infrastructure", None));
    log.add(t7, s6 + h(1), routed("dot", s6 + h(1)));
    log.add(t7, s6 + h(2), TicketEvent::MarkedDuplicate(MarkedDuplicate { of_ticket: t6, of_reference: Reference::derive(t6, 0) }));
    (log, ids)
}

/// What a ticket is counted under, from the domain's fold of all its events.
struct TicketFacts {
    day: String,
    channel: String,
    category: Option<String>,
    agency: Option<String>,
    area: Option<String>,
    open: bool,
}

/// Recounts from the events: per ticket its facts, per (ticket, agency) what the agency did.
fn recount(log: &Log) -> (BTreeMap<Uuid, TicketFacts>, BTreeMap<(Uuid, String), Counts>) {
    let mut tickets: BTreeMap<Uuid, Ticket> = BTreeMap::new();
    let mut work: BTreeMap<(Uuid, String), Counts> = BTreeMap::new();
    for commit in &log.commits {
        for e in &commit.events {
            let before = tickets.entry(e.ticket_id).or_default();
            let at = e.occurred_at;
            let mut add = |agency: &str, f: &dyn Fn(&mut Counts)| f(work.entry((e.ticket_id, agency.to_owned())).or_default());
            match &e.event {
                TicketEvent::PetitionAcknowledged(a) => {
                    add(&a.agency, &|c| c.acknowledged += 1);
                    if before.status == Status::Routed
                        && let Some(due) = before.deadlines.acknowledge_by
                    {
                        add(&a.agency, &|c| {
                            c.acknowledged_due += 1;
                            c.acknowledged_on_time += u64::from(at <= due);
                        });
                    }
                }
                TicketEvent::PetitionAnswered(a) => {
                    add(&a.agency, &|c| c.answered += 1);
                    let running = matches!(before.status, Status::Routed | Status::Acknowledged | Status::WaitingForCitizen);
                    if running && let Some(due) = before.deadlines.resolve_by {
                        let judged = if before.status == Status::WaitingForCitizen { before.deadlines.paused_at.unwrap_or(at) } else { at };
                        add(&a.agency, &|c| {
                            c.answered_due += 1;
                            c.answered_on_time += u64::from(judged <= due);
                        });
                    }
                }
                TicketEvent::FeedbackGiven(f) => {
                    let agency = before.last_answer_agency.clone().expect("feedback follows an answer");
                    let satisfied = f.satisfied;
                    add(&agency, &|c| {
                        c.feedback += 1;
                        if satisfied { c.satisfied += 1 } else { c.reopened += 1 }
                    });
                }
                TicketEvent::PetitionTransferred(t) => add(&t.from_agency, &|c| c.bounces += 1),
                _ => {}
            }
            before.apply(e);
        }
    }
    let facts = tickets
        .into_iter()
        .map(|(id, t)| {
            let received = t.received_at.expect("received").to_offset(HCM).date().to_string();
            (
                id,
                TicketFacts {
                    day: received,
                    channel: t.channel.clone().expect("channel"),
                    category: t.category.clone(),
                    agency: t.agency.clone(),
                    area: t.area.clone(),
                    open: t.status.is_open(),
                },
            )
        })
        .collect();
    (facts, work)
}

/// The expected statistics for a filter, summed from the recount.
fn expected(log: &Log, f: &StatsFilter) -> Stats {
    let (facts, work) = recount(log);
    let keep = |t: &TicketFacts| {
        f.from.is_none_or(|d| t.day >= d.to_string())
            && f.to.is_none_or(|d| t.day <= d.to_string())
            && f.category.as_ref().is_none_or(|c| t.category.as_ref() == Some(c))
            && f.channel.as_ref().is_none_or(|c| &t.channel == c)
            && f.area.as_ref().is_none_or(|a| t.area.as_ref() == Some(a))
    };
    type Key = fn(&TicketFacts) -> Option<String>;
    let keys: [Key; 6] = [
        |_| None,
        |t| t.category.clone(),
        |t| t.agency.clone(),
        |t| Some(t.channel.clone()),
        |t| t.area.clone(),
        |t| Some(t.day.clone()),
    ];
    let mut groups = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let mut lines: BTreeMap<Option<String>, Counts> = BTreeMap::new();
        for t in facts.values().filter(|t| keep(t) && f.agency.as_ref().is_none_or(|a| t.agency.as_ref() == Some(a))) {
            let c = lines.entry(key(t)).or_default();
            c.received += 1;
            c.open += u64::from(t.open);
        }
        for ((ticket, agency), w) in &work {
            let t = &facts[ticket];
            if !keep(t) || f.agency.as_ref().is_some_and(|a| a != agency) {
                continue;
            }
            // By agency: the agency that did the work.
            let k = if i == 2 { Some(agency.clone()) } else { key(t) };
            let c = lines.entry(k).or_default();
            c.acknowledged += w.acknowledged;
            c.acknowledged_due += w.acknowledged_due;
            c.acknowledged_on_time += w.acknowledged_on_time;
            c.answered += w.answered;
            c.answered_due += w.answered_due;
            c.answered_on_time += w.answered_on_time;
            c.feedback += w.feedback;
            c.satisfied += w.satisfied;
            c.reopened += w.reopened;
            c.bounces += w.bounces;
        }
        groups.push(lines.into_iter().map(|(key, counts)| Breakdown { key, rates: counts.rates(), counts }).collect::<Vec<_>>());
    }
    let mut groups = groups.into_iter();
    let totals = groups.next().and_then(|g| g.into_iter().next()).map(|b| b.counts).unwrap_or_default();
    let mut next = || groups.next().expect("group");
    Stats { rates: totals.rates(), totals, by_category: next(), by_agency: next(), by_channel: next(), by_area: next(), by_day: next() }
}

fn filters() -> Vec<StatsFilter> {
    let all = StatsFilter { from: None, to: None, category: None, agency: None, channel: None, area: None, utc_offset: HCM };
    vec![
        all.clone(),
        StatsFilter { agency: Some("dot".into()), ..all.clone() },
        StatsFilter { agency: Some("tnmt".into()), ..all.clone() },
        StatsFilter { from: Some(date!(2026 - 03 - 02)), to: Some(date!(2026 - 03 - 02)), ..all.clone() },
        StatsFilter { to: Some(date!(2026 - 03 - 01)), ..all.clone() },
        StatsFilter { category: Some("traffic_infrastructure".into()), channel: Some("sms".into()), ..all.clone() },
        StatsFilter { area: Some("dian".into()), ..all.clone() },
        StatsFilter { from: Some(date!(2026 - 04 - 01)), ..all },
    ]
}

#[tokio::test]
async fn the_statistics_equal_a_recount_from_the_events_for_every_filter() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("p.sqlite");
    let (log, _) = scenario();
    let mut writer = TimelineWriter::open(&path).expect("open");
    // In small batches, as the log delivers them.
    for chunk in log.commits.chunks(5) {
        writer.apply(chunk).expect("apply");
    }
    let reader = TimelineReader::open(&path).expect("reader");
    for filter in filters() {
        let got = reader.stats(filter.clone()).await.expect("stats");
        assert_eq!(got, expected(&log, &filter), "filter {filter:?}");
    }

    // The figures the scenario was written for, so the recount itself is checked too.
    let all = reader.stats(filters()[0].clone()).await.expect("stats");
    let t = &all.totals;
    assert_eq!((t.received, t.open), (7, 1));
    assert_eq!((t.acknowledged, t.acknowledged_due, t.acknowledged_on_time), (3, 3, 2));
    // T1 late then on time, T2 on time after the reply moved its deadline, T3 without a deadline, T4 on time
    // (asked before the deadline).
    assert_eq!((t.answered, t.answered_due, t.answered_on_time), (5, 4, 3));
    assert_eq!((t.feedback, t.satisfied, t.reopened), (3, 2, 1));
    assert_eq!(t.bounces, 3);
    assert_eq!(all.rates.satisfaction, Some(2.0 / 3.0));
    assert_eq!(all.rates.reopen, Some(1.0 / 5.0));
    // T1 was received at 23:30 local on 1 March (16:30 UTC), T2 an hour later: on 2 March.
    let days: Vec<(Option<String>, u64)> = all.by_day.iter().map(|b| (b.key.clone(), b.counts.received)).collect();
    assert_eq!(days, vec![(Some("2026-03-01".into()), 1), (Some("2026-03-02".into()), 1), (Some("2026-03-03".into()), 3), (Some("2026-03-04".into()), 2)]);
    let dot = all.by_agency.iter().find(|b| b.key.as_deref() == Some("dot")).expect("dot");
    assert_eq!(dot.counts.bounces, 2, "dot sent T2 and T5 back");
    let empty = reader.stats(filters()[7].clone()).await.expect("stats");
    assert_eq!(empty.totals, Counts::default());
    assert_eq!(empty.rates.satisfaction, None);

    // A rebuild from the log in one batch gives the same figures.
    let rebuilt = dir.path().join("rebuilt.sqlite");
    TimelineWriter::open(&rebuilt).expect("open").apply(&log.commits).expect("apply");
    let again = TimelineReader::open(&rebuilt).expect("reader").stats(filters()[0].clone()).await.expect("stats");
    assert_eq!(again, all);
}

#[tokio::test]
async fn the_map_lists_open_tickets_with_a_place_and_another_log_clears_the_statistics() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("p.sqlite");
    let (log, ids) = scenario();
    let mut writer = TimelineWriter::open(&path).expect("open");
    writer.bind_to_log("log-a").expect("bind");
    writer.apply(&log.commits).expect("apply");
    let reader = TimelineReader::open(&path).expect("reader");

    let map = reader.map_tickets(None).await.expect("map");
    // Only T6 is still open; T2 has coordinates too but is answered.
    assert_eq!(map.len(), 1, "{map:?}");
    assert_eq!(map[0].reference, Reference::derive(ids[5], 0).as_str());
    assert_eq!(map[0].point, Some((10.9, 106.7)));
    assert_eq!(map[0].status, "routed");
    assert_eq!(map[0].agency.as_deref(), Some("dot"));
    assert!(map[0].deadline.is_some(), "the acknowledgement deadline runs");
    assert!(reader.map_tickets(Some("tnmt".into())).await.expect("map").is_empty());

    // An open ticket with an area and no coordinates is listed without a point.
    let mut more = Log::new();
    let t8 = Uuid::now_v7();
    more.add(t8, datetime!(2026-03-05 01:00 UTC), received(t8, "sms", Some("thuan_an"), None));
    let mut commit = more.commits.remove(0);
    commit.position = log.commits.len() as u64 + 1;
    writer.apply(&[commit]).expect("apply");
    let map = reader.map_tickets(None).await.expect("map");
    let t8_row = map.iter().find(|m| m.reference == Reference::derive(t8, 0).as_str()).expect("t8 listed");
    assert_eq!((t8_row.point, t8_row.area.as_deref()), (None, Some("thuan_an")));

    assert!(writer.bind_to_log("log-b").expect("bind"), "another log");
    let all = StatsFilter { from: None, to: None, category: None, agency: None, channel: None, area: None, utc_offset: HCM };
    assert_eq!(reader.stats(all).await.expect("stats").totals, Counts::default());
    assert!(reader.map_tickets(None).await.expect("map").is_empty());
}
