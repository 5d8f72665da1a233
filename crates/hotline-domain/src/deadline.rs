//! A ticket's deadlines as its events set them: when they are due, which alarms already fired, and what fires
//! next. The aggregate decides alarms with it, and the projection uses the same code to tell the scheduler when
//! to look at a ticket again, so the two cannot disagree.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::event::{DeadlineApproaching, DeadlineKind, DeadlineMissed, TicketEvent, approaching_at};
use crate::ticket::Status;

/// The deadline part of a ticket's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeadlineState {
    /// When the current deadlines were set (routing, or a resumed pause): "approaching" counts from here.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub set_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub acknowledge_by: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub resolve_by: Option<OffsetDateTime>,
    /// Since when the ticket waits for the citizen (deadlines pause).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub paused_at: Option<OffsetDateTime>,
    /// Alarms already stored, per kind: approaching, missed.
    #[serde(default)]
    pub acknowledge_fired: (bool, bool),
    #[serde(default)]
    pub resolve_fired: (bool, bool),
    /// A deadline was missed: the ticket sits in the supervisors' queue.
    #[serde(default)]
    pub escalated: bool,
}

impl DeadlineState {
    /// Folds one event.
    pub fn apply(&mut self, event: &TicketEvent, at: OffsetDateTime) {
        match event {
            TicketEvent::PetitionRouted(e) => {
                // A new agency gets fresh deadlines and a clean slate.
                *self = DeadlineState {
                    set_at: Some(at),
                    acknowledge_by: e.acknowledge_by,
                    resolve_by: e.resolve_by,
                    ..DeadlineState::default()
                };
            }
            TicketEvent::InformationRequested(_) => self.paused_at = Some(at),
            TicketEvent::CitizenReplied(e) => {
                self.paused_at = None;
                self.set_at = Some(at);
                if e.acknowledge_by.is_some() {
                    self.acknowledge_by = e.acknowledge_by;
                }
                if e.resolve_by.is_some() {
                    self.resolve_by = e.resolve_by;
                }
            }
            TicketEvent::DeadlineApproaching(e) => self.fired_mut(e.which).0 = true,
            TicketEvent::DeadlineMissed(e) => {
                self.fired_mut(e.which).1 = true;
                self.escalated = true;
            }
            TicketEvent::DeadlineExtended(e) => {
                self.resolve_by = Some(e.resolve_by);
                self.set_at = Some(at);
                self.resolve_fired = (false, false);
                // Out of the supervisors' queue, unless the acknowledgement is still missed.
                self.escalated = self.acknowledge_fired.1;
            }
            _ => {}
        }
    }

    /// The alarms due at `now` for a ticket in `status` that have not fired yet.
    pub fn check(&self, status: Status, now: OffsetDateTime) -> Vec<TicketEvent> {
        self.pending(status)
            .filter_map(|(which, due, warn_at, fired)| {
                if now >= due && !fired.1 {
                    Some(TicketEvent::DeadlineMissed(DeadlineMissed { which, due }))
                } else if now >= warn_at && !fired.0 && !fired.1 {
                    Some(TicketEvent::DeadlineApproaching(DeadlineApproaching { which, due }))
                } else {
                    None
                }
            })
            .collect()
    }

    /// When the next alarm of a ticket in `status` falls due, if any: the scheduler looks at it then.
    pub fn next_alarm(&self, status: Status) -> Option<OffsetDateTime> {
        self.pending(status)
            .filter_map(|(_, due, warn_at, fired)| match fired {
                (_, true) => None,
                (false, false) => Some(warn_at.min(due)),
                (true, false) => Some(due),
            })
            .min()
    }

    /// The deadline that matters now for ordering a queue: acknowledgement until acknowledged, then resolution;
    /// none while no deadline runs (waiting for the citizen, the router or triage; closed).
    pub fn current_due(&self, status: Status) -> Option<OffsetDateTime> {
        match status {
            _ if self.paused_at.is_some() => None,
            Status::Routed => self.acknowledge_by.or(self.resolve_by),
            Status::Acknowledged => self.resolve_by,
            _ => None,
        }
    }

    /// The deadlines that run for a ticket in `status`: (kind, due, approaching at, fired flags). None while it
    /// waits for the citizen (paused), for the router, or for triage, or once it is no longer open.
    fn pending(&self, status: Status) -> impl Iterator<Item = (DeadlineKind, OffsetDateTime, OffsetDateTime, (bool, bool))> + '_ {
        let running = matches!(status, Status::Routed | Status::Acknowledged) && self.paused_at.is_none();
        let set_at = self.set_at;
        let acknowledge = (status == Status::Routed).then_some(self.acknowledge_by).flatten().map(|d| (DeadlineKind::Acknowledge, d, self.acknowledge_fired));
        let resolve = self.resolve_by.map(|d| (DeadlineKind::Resolve, d, self.resolve_fired));
        [acknowledge, resolve].into_iter().flatten().filter(move |_| running).map(move |(kind, due, fired)| {
            let warn_at = set_at.map_or(due, |s| approaching_at(s, due));
            (kind, due, warn_at, fired)
        })
    }

    fn fired_mut(&mut self, which: DeadlineKind) -> &mut (bool, bool) {
        match which {
            DeadlineKind::Acknowledge => &mut self.acknowledge_fired,
            DeadlineKind::Resolve => &mut self.resolve_fired,
        }
    }

    /// The deadlines after a pause from `paused_at` to `now`: each keeps the time it had left when the pause
    /// began, counted on its own clock (`wall_clock`: acknowledgement, resolution; working time otherwise).
    pub fn resumed(
        &self,
        now: OffsetDateTime,
        calendar: &crate::province::Calendar,
        wall_clock: (bool, bool),
    ) -> (Option<OffsetDateTime>, Option<OffsetDateTime>) {
        let Some(paused_at) = self.paused_at else { return (self.acknowledge_by, self.resolve_by) };
        let shift = |due: Option<OffsetDateTime>, wall: bool| {
            due.map(|due| {
                if wall {
                    // Saturates at the end of the representable range rather than overflowing.
                    now.checked_add((due - paused_at).max(time::Duration::ZERO)).unwrap_or(due)
                } else {
                    calendar.add_working_minutes(now, calendar.working_minutes_between(paused_at, due))
                }
            })
        };
        (shift(self.acknowledge_by, wall_clock.0), shift(self.resolve_by, wall_clock.1))
    }
}
