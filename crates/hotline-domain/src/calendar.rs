//! Deadlines in working time: the arithmetic of the province [`Calendar`] (office hours with the lunch break,
//! working weekdays, fixed and per-year holidays, make-up working days) and the acknowledgement and resolution
//! deadlines of a ticket.
//!
//! Instants come in and go out as UTC [`OffsetDateTime`]s; every calendar decision is taken in the province's
//! fixed `utc_offset` (Asia/Ho_Chi_Minh has no daylight saving, so a fixed offset is exact).
//!
//! Rules:
//! - Working time is the union of the `working_hours` intervals of working days ([`Calendar::is_working_day`]).
//!   An interval includes its end: a deadline can fall exactly at 11:30 or 17:00, and does not jump to the next
//!   opening (13:00, or 07:30 the next working day) for want of a last instant.
//! - A start outside working time (night, weekend, holiday, lunch) counts from the next working moment.
//! - "N working days" is N times a full day of working hours (8 h by default), counted like working hours:
//!   received Friday 16:00, "1 working day" is due Monday 16:00. Every ticket of a category thus gets the same
//!   working time, whatever the hour it came in; "by the close of the Nth working day" would give a ticket
//!   received in the morning nearly a day more than one received at 16:59.
//! - Years with no `[[calendar.year]]` list know only the fixed holidays and the working weekdays: deadlines
//!   running into them miss that year's Tết and compensatory days (see [`Calendar::has_year`]). They are also
//!   all alike, which lets the arithmetic cross them a year at a time instead of day by day.
//! - No input time panics. Results beyond the representable range (year ±9999) saturate at its ends. If the
//!   calendar offers no working time at all for ten years (a misconfiguration: every working day a holiday), or
//!   runs out of representable dates before the span is used up, the span is counted as wall-clock time instead:
//!   a deadline that exists, and is never later than the working-time one would have been.
//!
//! Cost: the walk steps one day at a time (a few shift intervals each), never minute by minute, and crosses
//! unpublished years in one step each; so "10 working days" is about 14 steps, and any input stays cheap.

use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset, Weekday};

use crate::province::{Calendar, Deadline, Province};

/// How long the walk looks for working time before deciding the calendar has none (about ten years).
const IDLE_LIMIT_DAYS: i64 = 3653;

const WEEKDAYS: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

/// A deadline rule ready to count: how much time, and on which clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Span {
    /// Wall-clock minutes: nights, weekends and holidays count.
    WallMinutes(u64),
    /// Minutes of working time on the province calendar.
    WorkingMinutes(u64),
}

impl Span {
    /// How many minutes, on its own clock.
    pub fn minutes(&self) -> u64 {
        match *self {
            Span::WallMinutes(m) | Span::WorkingMinutes(m) => m,
        }
    }

    /// When a span started at `start` runs out (UTC).
    pub fn due(&self, calendar: &Calendar, start: OffsetDateTime) -> OffsetDateTime {
        match *self {
            Span::WallMinutes(m) => wall_clock_add(start, m),
            Span::WorkingMinutes(m) => calendar.add_working_minutes(start, m),
        }
    }

    /// Whole minutes of this span's clock in `[from, to)`: wall-clock minutes or working minutes.
    pub fn elapsed(&self, calendar: &Calendar, from: OffsetDateTime, to: OffsetDateTime) -> u64 {
        match self {
            Span::WallMinutes(_) if to > from => u64::try_from((to - from).whole_minutes()).unwrap_or(0),
            Span::WallMinutes(_) => 0,
            Span::WorkingMinutes(_) => calendar.working_minutes_between(from, to),
        }
    }

    /// What is left of the span once `[from, to)` has been used, on the same clock (none left is 0 minutes). For
    /// a paused ticket: the span counted from `from` was paused at `to`; on resuming at `r`, it is due at
    /// `remaining(..).due(calendar, r)`.
    pub fn remaining(&self, calendar: &Calendar, from: OffsetDateTime, to: OffsetDateTime) -> Span {
        let left = self.minutes().saturating_sub(self.elapsed(calendar, from, to));
        match self {
            Span::WallMinutes(_) => Span::WallMinutes(left),
            Span::WorkingMinutes(_) => Span::WorkingMinutes(left),
        }
    }
}

/// When a ticket must be acknowledged and answered (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    pub acknowledge: OffsetDateTime,
    pub resolve: OffsetDateTime,
}

impl Deadline {
    /// The time this deadline gives, on `calendar`. `Immediate` has no length of its own: it gives `immediate`
    /// (the province sets it in `[emergency]`, see [`Province::spans`]).
    pub fn span(self, calendar: &Calendar, immediate: Span) -> Span {
        match self {
            Deadline::Immediate => immediate,
            Deadline::Minutes(n) => Span::WallMinutes(u64::from(n)),
            Deadline::Hours(n) => Span::WallMinutes(u64::from(n) * 60),
            Deadline::WorkingHours(n) => Span::WorkingMinutes(u64::from(n) * 60),
            Deadline::WorkingDays(n) => {
                Span::WorkingMinutes(u64::from(n).saturating_mul(calendar.minutes_per_working_day()))
            }
        }
    }
}

impl Province {
    /// The spans configured for a category, `(acknowledge, resolve)`, "immediate" replaced by what
    /// `[emergency]` says it means. `None` for an unknown category.
    pub fn spans(&self, category: &str) -> Option<(Span, Span)> {
        let c = self.category(category)?;
        // Validation guarantees the immediate settings are wall-clock spans of their own.
        let none = Span::WallMinutes(0);
        let acknowledge = self.emergency.immediate_acknowledge.span(&self.calendar, none);
        let resolve = self.emergency.immediate_deadline.span(&self.calendar, none);
        Some((c.acknowledge.span(&self.calendar, acknowledge), c.deadline.span(&self.calendar, resolve)))
    }

    /// The deadlines of a ticket of `category` received at `start`; `None` for an unknown category.
    ///
    /// The acknowledgement is never due after the answer: answering acknowledges. That only matters when the two
    /// are counted on different clocks ("4 working hours" against "24 hours" for a ticket received on Friday
    /// evening); validation refuses it on the same clock.
    pub fn deadlines(&self, category: &str, start: OffsetDateTime) -> Option<Deadlines> {
        let (acknowledge, resolve) = self.spans(category)?;
        let resolve = resolve.due(&self.calendar, start);
        let acknowledge = acknowledge.due(&self.calendar, start).min(resolve);
        Some(Deadlines { acknowledge, resolve })
    }
}

impl Calendar {
    /// The instant `minutes` of working time after `start` (UTC). A start outside working time counts from the
    /// next working moment. 0 minutes from inside working time (its ends included) is `start` itself.
    pub fn add_working_minutes(&self, start: OffsetDateTime, minutes: u64) -> OffsetDateTime {
        match self.walk_forward(self.local(start), duration_of(minutes)) {
            Some(end) => self.instant(end),
            // No working time within reach (see the module documentation): count it on the wall clock.
            None => wall_clock_add(start, minutes),
        }
    }

    /// Whole working minutes in `[from, to)` (0 if `to <= from`), rounded down.
    pub fn working_minutes_between(&self, from: OffsetDateTime, to: OffsetDateTime) -> u64 {
        if to <= from {
            return 0;
        }
        let total = self.working_time_between(self.local(from), self.local(to));
        u64::try_from(total.whole_minutes()).unwrap_or(0)
    }

    /// Working minutes in one ordinary working day (480 for 07:30–11:30 and 13:00–17:00).
    pub fn minutes_per_working_day(&self) -> u64 {
        u64::try_from(self.day_length().whole_minutes()).unwrap_or(0)
    }

    /// Working time of one working day: the `working_hours` intervals, a stretch covered twice counted once.
    fn day_length(&self) -> Duration {
        let mut covered_until = Time::MIDNIGHT;
        let mut total = Duration::ZERO;
        for &(start, end) in &self.working_hours {
            let start = start.max(covered_until);
            if end > start {
                total += end - start;
                covered_until = end;
            }
        }
        total
    }

    /// The local time of an instant; instants whose local time is not representable clamp to the ends.
    fn local(&self, t: OffsetDateTime) -> PrimitiveDateTime {
        match t.checked_to_offset(self.utc_offset) {
            Some(local) => PrimitiveDateTime::new(local.date(), local.time()),
            None if t.year() > 0 => PrimitiveDateTime::MAX,
            None => PrimitiveDateTime::MIN,
        }
    }

    /// The UTC instant of a local time, saturating at the representable ends.
    fn instant(&self, local: PrimitiveDateTime) -> OffsetDateTime {
        utc(local.assume_offset(self.utc_offset))
    }

    /// The local instant `span` of working time after `start`; `None` when the calendar gives up (no working time
    /// for ten years, or the end of the representable dates).
    fn walk_forward(&self, start: PrimitiveDateTime, span: Duration) -> Option<PrimitiveDateTime> {
        let mut remaining = span;
        let mut date = start.date();
        // Working time before this moment of `date` is already behind.
        let mut from = start;
        let mut last_worked = date;
        loop {
            if self.is_working_day(date) {
                for &(open, close) in &self.working_hours {
                    let (open, close) = (date.with_time(open), date.with_time(close));
                    let at = from.max(open);
                    if at > close {
                        continue;
                    }
                    let available = close - at;
                    if remaining <= available {
                        // At most `close`: no overflow possible, but checked all the same.
                        return at.checked_add(remaining);
                    }
                    remaining -= available;
                    from = close;
                    if available > Duration::ZERO {
                        last_worked = date;
                    }
                }
            }
            if (date - last_worked).whole_days() > IDLE_LIMIT_DAYS {
                return None;
            }
            date = date.next_day()?;
            from = date.midnight();
            // Years without a published list are all alike: cross a whole one in a step when the span outlasts it.
            while (date.month(), date.day()) == (Month::January, 1) && !self.has_year(date.year()) {
                let year = self.unpublished_year_working_time(date.year());
                if remaining <= year {
                    break;
                }
                remaining -= year;
                let next = Date::from_calendar_date(date.year().checked_add(1)?, Month::January, 1).ok()?;
                if year > Duration::ZERO {
                    last_worked = next;
                }
                if (next - last_worked).whole_days() > IDLE_LIMIT_DAYS {
                    return None;
                }
                date = next;
                from = date.midnight();
            }
        }
    }

    /// Working time in `[from, to)`, local times.
    fn working_time_between(&self, from: PrimitiveDateTime, to: PrimitiveDateTime) -> Duration {
        let mut total = Duration::ZERO;
        let mut date = from.date();
        // Working time before this moment is not counted (before `from`, or already counted).
        let mut cursor = from;
        while date <= to.date() {
            // A whole unpublished year inside the range counts in one step (see `walk_forward`).
            if (date.month(), date.day()) == (Month::January, 1)
                && date.midnight() >= from
                && to.year() > date.year()
                && !self.has_year(date.year())
            {
                total = total.saturating_add(self.unpublished_year_working_time(date.year()));
                let Some(next) =
                    date.year().checked_add(1).and_then(|y| Date::from_calendar_date(y, Month::January, 1).ok())
                else {
                    break;
                };
                date = next;
                cursor = date.midnight();
                continue;
            }
            if self.is_working_day(date) {
                for &(open, close) in &self.working_hours {
                    let (open, close) = (date.with_time(open), date.with_time(close));
                    let (at, until) = (cursor.max(open), to.min(close));
                    if until > at {
                        total = total.saturating_add(until - at);
                    }
                    cursor = cursor.max(close);
                }
            }
            let Some(next) = date.next_day() else { break };
            date = next;
            cursor = cursor.max(date.midnight());
        }
        total
    }

    /// Working time of a whole year that has no published list: its working weekdays, less the fixed holidays
    /// that fall on one. The same as asking [`Calendar::is_working_day`] of each of its days, in a few steps.
    fn unpublished_year_working_time(&self, year: i32) -> Duration {
        let Ok(first) = Date::from_calendar_date(year, Month::January, 1) else { return Duration::ZERO };
        let length = i64::from(time::util::days_in_year(year));
        let first_weekday = i64::from(first.weekday().number_days_from_monday());
        let mut days: i64 = 0;
        for weekday in WEEKDAYS.into_iter().filter(|w| self.working_days.contains(w)) {
            // Day index (0-based) of the first such weekday of the year, then one every 7 days.
            let offset = (i64::from(weekday.number_days_from_monday()) - first_weekday).rem_euclid(7);
            days += (length - 1 - offset) / 7 + 1;
        }
        let mut off: Vec<Date> = Vec::new();
        for holiday in &self.fixed_holidays {
            // 29 February exists one year in four.
            if let Ok(day) = Date::from_calendar_date(year, holiday.month, holiday.day)
                && self.working_days.contains(&day.weekday())
                && !off.contains(&day)
            {
                off.push(day);
                days -= 1;
            }
        }
        // At most 366 days of at most 24 hours: cannot overflow.
        let days = i32::try_from(days.max(0)).unwrap_or(0);
        self.day_length().checked_mul(days).unwrap_or(Duration::ZERO)
    }
}

/// Whole minutes as a duration. Capped far beyond the representable dates, so the cap never shows in a result.
fn duration_of(minutes: u64) -> Duration {
    let minutes = i64::try_from(minutes).unwrap_or(i64::MAX).min(i64::MAX / 60);
    Duration::seconds(minutes * 60)
}

/// `start` plus wall-clock minutes, in UTC, saturating at the latest representable instant.
fn wall_clock_add(start: OffsetDateTime, minutes: u64) -> OffsetDateTime {
    utc(start).checked_add(duration_of(minutes)).unwrap_or_else(latest)
}

/// An instant in UTC, saturating at the representable ends when its UTC date is out of range.
fn utc(t: OffsetDateTime) -> OffsetDateTime {
    match t.checked_to_offset(UtcOffset::UTC) {
        Some(t) => t,
        None if t.year() > 0 => latest(),
        None => PrimitiveDateTime::MIN.assume_utc(),
    }
}

fn latest() -> OffsetDateTime {
    PrimitiveDateTime::MAX.assume_utc()
}
