//! The call ledger's pending records under concurrency, on a real nats-server: a fact kept while a sweep removes
//! the call's emptied record is never lost (the PBX was told "pending", so nobody will send it again).

use std::time::{Duration, Instant};

use hotline_channel::ChannelState;
use hotline_channel_phone::ledger::{Outcome, PendingCall, state_key};
use hotline_domain::event::{CallEventKind, CallLogged};

use crate::{Harness, config};

fn fact(call_id: &str, key: &str) -> CallLogged {
    CallLogged {
        call_id: call_id.to_owned(),
        key: key.to_owned(),
        kind: CallEventKind::Ended,
        source: "generic".to_owned(),
        at: None,
        direction: None,
        agent: None,
        duration_secs: Some(42),
        talk_secs: None,
        cause: None,
        recording: None,
    }
}

/// Regression: the sweep used to overwrite an old emptied record with a compare-and-set and then delete it
/// unconditionally, so a fact kept between the two writes (at the emptied record's new revision, answered
/// "pending") was deleted with it. Each round races one sweep against one report on a record the sweep is due
/// to remove; whichever wins, a fact reported as pending must still be there afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fact_kept_while_the_sweep_removes_the_emptied_record_is_not_lost() {
    let h = Harness::start().await;
    let (_addr, ledger, _stop) = h.serve(config()).await;
    let state = ChannelState::new(h.store.clone(), "phone");
    let call = "1717000000.77";
    let key = state_key(call);
    let two_hours_ago = time::OffsetDateTime::now_utc().unix_timestamp() - 7200;
    let emptied = PendingCall { call_id: call.to_owned(), first_seen: two_hours_ago, updated: two_hours_ago, facts: Vec::new() };
    let emptied = serde_json::to_vec(&emptied).expect("json");
    let (mut removed, mut kept_after) = (0, 0);
    for round in 0..240u32 {
        state.set(&key, &emptied).await.expect("emptied record");
        let fact_key = format!("ended-{round}");
        // Stagger the report differently each round (0 to 3 ms, finer than a timer tick: a spin on its own worker)
        // so both orders and the tight interleavings occur.
        let delay = Duration::from_micros(u64::from(round % 60) * 50);
        let reporter = ledger.clone();
        let report = tokio::spawn(async move {
            let start = Instant::now();
            while start.elapsed() < delay {
                std::hint::spin_loop();
            }
            reporter.report(vec![fact(call, &fact_key)]).await
        });
        let swept = ledger.sweep(time::OffsetDateTime::now_utc()).await.expect("sweep");
        assert_eq!(report.await.expect("join").expect("report"), Outcome::Pending, "no petition for this call");
        let fact_key = format!("ended-{round}");
        let pending = ledger.pending(call).await.expect("pending");
        assert!(
            pending.iter().any(|f| f.key == fact_key),
            "round {round}: the fact answered as pending was lost (sweep removed {}): {pending:?}",
            swept.removed
        );
        removed += swept.removed;
        kept_after += usize::from(swept.removed == 0);
    }
    // Both outcomes of the race happened, so the test saw the interleavings it is about.
    assert!(removed > 0 && kept_after > 0, "removed {removed}, left {kept_after}");
}
