//! Deadlines in working time on the bundled Bình Dương calendar (Mon–Fri 07:30–11:30 and 13:00–17:00, +07:00,
//! fixed holidays, the published 2025 and 2026 lists), one rule per test. Times in the tests are written in
//! local time (+07:00) and fed in as UTC, as the callers do.

use hotline_domain::calendar::{Deadlines, Span};
use hotline_domain::province::{Calendar, Deadline, Province, ProvinceError};
use std::sync::OnceLock;
use time::macros::{date, datetime, offset, time};

use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// Parsed once: the bundled configuration is large, and the property tests call the calendar thousands of times.
fn province() -> &'static Province {
    static PROVINCE: OnceLock<Province> = OnceLock::new();
    PROVINCE.get_or_init(Province::bundled)
}

fn calendar() -> &'static Calendar {
    &province().calendar
}

/// A local time of the province as the UTC instant the API takes.
fn at(local: PrimitiveDateTime) -> OffsetDateTime {
    local.assume_offset(offset!(+7)).to_offset(UtcOffset::UTC)
}

/// The local time of an instant, for readable assertions.
fn local(t: OffsetDateTime) -> PrimitiveDateTime {
    let t = t.to_offset(offset!(+7));
    PrimitiveDateTime::new(t.date(), t.time())
}

fn add(start: PrimitiveDateTime, minutes: u64) -> PrimitiveDateTime {
    local(calendar().add_working_minutes(at(start), minutes))
}

/// Inside working time by the plain definition, independent of the arithmetic under test.
fn in_working_time(calendar: &Calendar, t: PrimitiveDateTime) -> bool {
    calendar.is_working_day(t.date())
        && calendar.working_hours.iter().any(|&(open, close)| open <= t.time() && t.time() <= close)
}

/// Working minutes of whole days, counted day by day with `is_working_day`: the slow way, to check the fast one.
fn working_minutes_of_days(calendar: &Calendar, from: Date, until: Date) -> u64 {
    let mut total = 0;
    let mut day = from;
    while day < until {
        if calendar.is_working_day(day) {
            total += calendar.minutes_per_working_day();
        }
        day = day.next_day().unwrap_or(Date::MAX);
    }
    total
}

// ---------------------------------------------------------------------------------------------------------------
// Office hours and the lunch break.

#[test]
fn given_the_default_hours_then_a_working_day_is_480_minutes() {
    assert_eq!(calendar().minutes_per_working_day(), 480);
}

#[test]
fn given_monday_1030_when_adding_4_working_hours_then_due_1600_after_the_lunch_break() {
    // 1 h before lunch (10:30–11:30), 3 h after (13:00–16:00); not 15:30, the lunch break lasts 1 h 30.
    assert_eq!(add(datetime!(2025-03-10 10:30), 240), datetime!(2025-03-10 16:00));
}

#[test]
fn given_friday_1600_when_adding_2_working_hours_then_due_monday_0830() {
    assert_eq!(add(datetime!(2025-03-14 16:00), 120), datetime!(2025-03-17 08:30));
}

#[test]
fn given_a_deadline_landing_at_the_end_of_the_morning_then_it_stays_at_1130() {
    assert_eq!(add(datetime!(2025-03-10 10:30), 60), datetime!(2025-03-10 11:30));
}

#[test]
fn given_a_deadline_landing_at_the_end_of_the_day_then_it_stays_at_1700() {
    assert_eq!(add(datetime!(2025-03-10 16:00), 60), datetime!(2025-03-10 17:00));
}

#[test]
fn given_a_start_inside_working_time_when_adding_nothing_then_due_at_the_start() {
    assert_eq!(add(datetime!(2025-03-10 09:17:23.5), 0), datetime!(2025-03-10 09:17:23.5));
}

#[test]
fn given_a_start_with_seconds_then_the_seconds_carry_over_the_lunch_break() {
    assert_eq!(add(datetime!(2025-03-10 11:29:30), 1), datetime!(2025-03-10 13:00:30));
}

// ---------------------------------------------------------------------------------------------------------------
// Starts outside working time.

#[test]
fn given_a_start_on_saturday_then_counting_starts_monday_0730() {
    assert_eq!(add(datetime!(2025-03-15 10:00), 60), datetime!(2025-03-17 08:30));
}

#[test]
fn given_a_start_at_night_then_counting_starts_at_the_next_opening() {
    assert_eq!(add(datetime!(2025-03-11 20:00), 60), datetime!(2025-03-12 08:30));
}

#[test]
fn given_a_start_before_opening_then_counting_starts_at_0730_the_same_day() {
    assert_eq!(add(datetime!(2025-03-11 06:00), 60), datetime!(2025-03-11 08:30));
}

#[test]
fn given_a_start_during_lunch_then_counting_starts_at_1300() {
    assert_eq!(add(datetime!(2025-03-10 12:15), 30), datetime!(2025-03-10 13:30));
}

#[test]
fn given_a_start_during_lunch_when_adding_nothing_then_due_at_1300() {
    assert_eq!(add(datetime!(2025-03-10 12:15), 0), datetime!(2025-03-10 13:00));
}

#[test]
fn given_a_start_on_a_holiday_then_counting_starts_the_next_working_day() {
    // 7 April 2025, Giỗ Tổ Hùng Vương (a Monday).
    assert_eq!(add(datetime!(2025-04-07 09:00), 60), datetime!(2025-04-08 08:30));
}

// ---------------------------------------------------------------------------------------------------------------
// Holidays and make-up days.

#[test]
fn given_a_fixed_holiday_then_it_is_skipped() {
    // Tuesday 31 December 2024, 16:00: 1 h that day; Wednesday 1 January is off (fixed); the second hour runs
    // on Thursday 2 January.
    assert_eq!(add(datetime!(2024-12-31 16:00), 120), datetime!(2025-01-02 08:30));
}

#[test]
fn given_a_holiday_from_the_years_list_then_it_is_skipped() {
    // Friday 4 April 2025 16:00; Monday 7 April is Giỗ Tổ Hùng Vương, published for 2025 only.
    assert_eq!(add(datetime!(2025-04-04 16:00), 120), datetime!(2025-04-08 08:30));
}

#[test]
fn given_a_published_make_up_saturday_then_it_is_worked() {
    // Saturday 26 April 2025 is worked to make up for Friday 2 May.
    assert_eq!(add(datetime!(2025-04-25 16:00), 120), datetime!(2025-04-26 08:30));
}

#[test]
fn given_the_swapped_day_off_then_it_is_skipped() {
    // Wednesday 30 April and Thursday 1 May are fixed holidays, Friday 2 May the swapped day off.
    assert_eq!(add(datetime!(2025-04-29 16:00), 120), datetime!(2025-05-05 08:30));
}

#[test]
fn given_tet_2025_when_adding_1_working_day_from_friday_24_january_1600_then_due_monday_3_february_1600() {
    // 1 working day = 480 working minutes. Friday 24 Jan gives 16:00–17:00 (60). Monday 27 to Friday 31 Jan are
    // Tết, Saturday 1 and Sunday 2 Feb the weekend. Monday 3 Feb gives 07:30–11:30 (240, 300 in all) and the
    // remaining 180 run 13:00–16:00.
    let span = Deadline::WorkingDays(1).span(calendar(), Span::WallMinutes(0));
    assert_eq!(span, Span::WorkingMinutes(480));
    assert_eq!(local(span.due(calendar(), at(datetime!(2025-01-24 16:00)))), datetime!(2025-02-03 16:00));
}

#[test]
fn given_a_year_without_a_published_list_then_only_fixed_holidays_are_skipped() {
    // 2030 has no [[calendar.year]]: 1 January (fixed) is still off...
    assert_eq!(add(datetime!(2029-12-31 16:00), 120), datetime!(2030-01-02 08:30));
    // ...but its Tết (early February 2030) is not known, so it counts as working time. Deadlines still come out;
    // they are early by the unknown days off, which is why each year is added as soon as it is published.
    assert!(!calendar().has_year(2030));
    assert_eq!(add(datetime!(2030-02-04 16:00), 120), datetime!(2030-02-05 08:30));
}

// ---------------------------------------------------------------------------------------------------------------
// working_minutes_between.

#[test]
fn given_a_range_across_lunch_and_a_weekend_then_only_working_minutes_count() {
    let cal = calendar();
    let between = |from, to| cal.working_minutes_between(at(from), at(to));
    assert_eq!(between(datetime!(2025-03-10 10:30), datetime!(2025-03-10 16:00)), 240);
    assert_eq!(between(datetime!(2025-03-14 16:00), datetime!(2025-03-17 08:30)), 120);
    assert_eq!(between(datetime!(2025-03-15 00:00), datetime!(2025-03-17 00:00)), 0);
}

#[test]
fn given_an_empty_or_reversed_range_then_no_working_minutes() {
    let cal = calendar();
    let t = at(datetime!(2025-03-10 10:30));
    assert_eq!(cal.working_minutes_between(t, t), 0);
    assert_eq!(cal.working_minutes_between(t, t - Duration::hours(2)), 0);
}

#[test]
fn given_part_of_a_minute_then_it_is_rounded_down() {
    let cal = calendar();
    assert_eq!(cal.working_minutes_between(at(datetime!(2025-03-10 10:30:30)), at(datetime!(2025-03-10 10:32))), 1);
}

#[test]
fn given_starts_inside_working_time_then_working_minutes_between_inverts_add_working_minutes() {
    let cal = calendar();
    let amounts = [1, 30, 59, 60, 61, 239, 240, 241, 479, 480, 481, 1000, 2400, 4800];
    let mut checked = 0;
    // Every 37 minutes from mid-January to mid-May 2025: Tết, Giỗ Tổ, the 30/4–2/5 bridge and its make-up
    // Saturday, lunch breaks, nights and weekends all fall inside.
    let mut t = datetime!(2025-01-15 00:03);
    let mut index = 0usize;
    while t < datetime!(2025-05-15 00:00) {
        if in_working_time(cal, t) {
            let minutes = amounts[index % amounts.len()];
            index += 1;
            let due = cal.add_working_minutes(at(t), minutes);
            assert_eq!(cal.working_minutes_between(at(t), due), minutes, "from {t} + {minutes}");
            // And the other way: from a start, the working minutes up to a working moment lead back to it.
            let target = local(due);
            assert_eq!(add(t, cal.working_minutes_between(at(t), at(target))), target, "from {t} to {target}");
            checked += 1;
        }
        t += Duration::minutes(37);
    }
    assert!(checked > 1000, "only {checked} starts in working time");
}

#[test]
fn given_whole_unpublished_years_then_they_count_like_day_by_day() {
    // Whole years without a list are counted in one step each; the slow day-by-day count must agree, leap years,
    // fixed holidays on weekends and all.
    let cal = calendar();
    let (from, until) = (date!(2026 - 06 - 01), date!(2034 - 03 - 01));
    let fast = cal.working_minutes_between(at(from.midnight()), at(until.midnight()));
    assert_eq!(fast, working_minutes_of_days(cal, from, until));
    // And adding that much from the same start lands on the last working moment before `until`.
    let due = local(cal.add_working_minutes(at(from.midnight()), fast));
    assert!(due < until.midnight() && in_working_time(cal, due), "{due}");
    assert_eq!(cal.working_minutes_between(at(from.midnight()), at(due)), fast);
}

// ---------------------------------------------------------------------------------------------------------------
// Wall clock, spans and the category deadlines.

#[test]
fn given_an_emergency_at_2350_on_saturday_then_it_is_due_5_minutes_and_60_minutes_later() {
    let d = province().deadlines("emergency_fire", at(datetime!(2025-03-15 23:50)));
    let expected = Deadlines { acknowledge: at(datetime!(2025-03-15 23:55)), resolve: at(datetime!(2025-03-16 00:50)) };
    assert_eq!(d, Some(expected));
}

#[test]
fn given_a_wall_clock_span_then_holidays_do_not_count() {
    let due = Span::WallMinutes(90).due(calendar(), at(datetime!(2025-01-29 11:00)));
    assert_eq!(local(due), datetime!(2025-01-29 12:30));
}

#[test]
fn given_the_bundled_categories_then_their_spans_come_from_the_config() {
    let p = province();
    assert_eq!(p.spans("land"), Some((Span::WorkingMinutes(240), Span::WorkingMinutes(4800))));
    assert_eq!(p.spans("traffic_accident"), Some((Span::WorkingMinutes(60), Span::WorkingMinutes(480))));
    // "immediate" is what [emergency] says it is.
    assert_eq!(p.spans("emergency_medical"), Some((Span::WallMinutes(5), Span::WallMinutes(60))));
    assert_eq!(p.spans("no_such_category"), None);
    assert_eq!(p.deadlines("no_such_category", at(datetime!(2025-03-10 10:30))), None);
}

#[test]
fn given_a_traffic_accident_on_tuesday_1030_then_acknowledged_by_1130_and_answered_by_wednesday_1030() {
    let d = province().deadlines("traffic_accident", at(datetime!(2025-03-11 10:30)));
    let expected = Deadlines { acknowledge: at(datetime!(2025-03-11 11:30)), resolve: at(datetime!(2025-03-12 10:30)) };
    assert_eq!(d, Some(expected));
}

#[test]
fn given_any_input_offset_then_deadlines_come_out_in_utc() {
    let start = datetime!(2025-03-11 10:30 +7);
    let d = province().deadlines("land", start).unwrap_or_else(|| panic!("land is a category"));
    assert_eq!(d.acknowledge.offset(), UtcOffset::UTC);
    assert_eq!(d.resolve.offset(), UtcOffset::UTC);
    // 4 working hours from 10:30 local: 16:00 local, 09:00 UTC.
    assert_eq!(d.acknowledge, datetime!(2025-03-11 09:00 UTC));
    // The same instant given in UTC gives the same deadlines.
    assert_eq!(province().deadlines("land", start.to_offset(UtcOffset::UTC)), Some(d));
    let wall = province().deadlines("emergency_fire", start).map(|d| d.resolve.offset());
    assert_eq!(wall, Some(UtcOffset::UTC));
}

#[test]
fn given_a_paused_span_then_the_remaining_working_time_resumes_where_it_stopped() {
    let cal = calendar();
    let span = Span::WorkingMinutes(480);
    // Counted from Monday 08:00, paused at 10:00 (120 used), resumed Wednesday 14:00: 180 that afternoon, the
    // last 180 on Thursday 07:30–10:30.
    let left = span.remaining(cal, at(datetime!(2025-03-10 08:00)), at(datetime!(2025-03-10 10:00)));
    assert_eq!(left, Span::WorkingMinutes(360));
    assert_eq!(local(left.due(cal, at(datetime!(2025-03-12 14:00)))), datetime!(2025-03-13 10:30));
    // A wall-clock span counts wall minutes, and never goes below nothing.
    let wall = Span::WallMinutes(60).remaining(cal, at(datetime!(2025-03-15 23:00)), at(datetime!(2025-03-16 02:00)));
    assert_eq!(wall, Span::WallMinutes(0));
}

#[test]
fn given_an_acknowledgement_on_another_clock_than_the_answer_then_it_is_never_due_after_the_answer() {
    // 4 working hours against 24 wall-clock hours: received Friday 18:00, the acknowledgement would fall on
    // Monday 11:30, after the answer due Saturday 18:00.
    let text = Province::BUNDLED.replacen(
        "acknowledge = \"1 working hour\"\ndeadline = \"1 working day\"\nroute = \"hotline_desk\"",
        "acknowledge = \"4 working hours\"\ndeadline = \"24 hours\"\nroute = \"hotline_desk\"",
        1,
    );
    let p = Province::parse(&text, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    let d = p.deadlines("info_request", at(datetime!(2025-03-14 18:00)));
    let saturday = at(datetime!(2025-03-15 18:00));
    assert_eq!(d, Some(Deadlines { acknowledge: saturday, resolve: saturday }));
}

// ---------------------------------------------------------------------------------------------------------------
// Cost and odd input.

#[test]
fn given_10000_deadlines_of_10_working_days_then_each_steps_by_day_not_by_minute() {
    // A minute-by-minute walk would take some 20,000 steps per call, 200 million here: this test would crawl.
    let cal = calendar();
    let mut t = at(datetime!(2025-01-01 00:00));
    for _ in 0..10_000 {
        let due = cal.add_working_minutes(t, 4800);
        assert!(due > t);
        t += Duration::minutes(53);
    }
}

#[test]
fn given_a_calendar_with_no_working_time_then_spans_count_on_the_wall_clock() {
    // Refused by Province::parse, possible by hand: after ten years without a working moment the arithmetic
    // gives up and counts the span on the wall clock, rather than looping or answering "never".
    // No working weekday and no published year (whose make-up days would be worked).
    let none = Calendar { working_days: Vec::new(), years: Vec::new(), ..calendar().clone() };
    let start = at(datetime!(2025-03-10 10:30));
    assert_eq!(none.add_working_minutes(start, 60), start + Duration::minutes(60));
    assert_eq!(none.working_minutes_between(start, start + Duration::days(30)), 0);
    assert_eq!(none.minutes_per_working_day(), 480);
    let no_hours = Calendar { working_hours: Vec::new(), ..calendar().clone() };
    assert_eq!(no_hours.add_working_minutes(start, 60), start + Duration::minutes(60));
    assert_eq!(no_hours.minutes_per_working_day(), 0);
}

#[test]
fn given_overlapping_hand_made_hours_then_working_time_is_counted_once() {
    let overlapping = Calendar {
        working_hours: vec![(time!(08:00), time!(12:00)), (time!(10:00), time!(14:00))],
        ..calendar().clone()
    };
    assert_eq!(overlapping.minutes_per_working_day(), 360);
    let start = at(datetime!(2025-03-10 08:00));
    assert_eq!(overlapping.working_minutes_between(start, at(datetime!(2025-03-10 18:00))), 360);
    assert_eq!(local(overlapping.add_working_minutes(start, 300)), datetime!(2025-03-10 13:00));
}

#[test]
fn given_huge_spans_then_working_time_is_counted_a_year_at_a_time() {
    let cal = calendar();
    let start = at(datetime!(2025-03-10 10:30));
    // A thousand years of working days: unpublished years are crossed in one step each.
    let span = 1000 * 250 * 480;
    let due = cal.add_working_minutes(start, span);
    assert!((2900..3100).contains(&due.year()), "{due}");
    assert_eq!(cal.working_minutes_between(start, due), span);
}

#[test]
fn given_times_at_the_ends_of_the_representable_range_then_nothing_panics() {
    let cal = calendar();
    let p = province();
    let latest = PrimitiveDateTime::MAX.assume_utc();
    let earliest = PrimitiveDateTime::MIN.assume_utc();
    let starts = [
        earliest,
        latest,
        PrimitiveDateTime::MAX.assume_offset(offset!(-12)),
        PrimitiveDateTime::MIN.assume_offset(offset!(+14)),
        PrimitiveDateTime::MAX.assume_offset(offset!(+7)),
        at(datetime!(2025-03-10 10:30)),
    ];
    for &start in &starts {
        for minutes in [0, 1, 480, 4800, u64::MAX / 2, u64::MAX] {
            let due = cal.add_working_minutes(start, minutes);
            assert_eq!(due.offset(), UtcOffset::UTC);
            let _ = cal.working_minutes_between(start, due);
            let _ = Span::WallMinutes(minutes).due(cal, start);
        }
        for &end in &starts {
            let _ = cal.working_minutes_between(start, end);
        }
        for c in p.categories() {
            let d = p.deadlines(&c.code, start).unwrap_or_else(|| panic!("{} is a category", c.code));
            assert!(d.acknowledge <= d.resolve);
        }
    }
    // Past the last representable instant, deadlines saturate there.
    assert_eq!(cal.add_working_minutes(at(datetime!(2025-03-10 10:30)), u64::MAX), latest);
    assert_eq!(Span::WallMinutes(u64::MAX).due(cal, earliest), latest);
    // The whole range, counted in a blink: only the published years are walked day by day.
    let all = cal.working_minutes_between(earliest, latest);
    assert!(all > 19_000 * 240 * 480, "{all}");
}

// ---------------------------------------------------------------------------------------------------------------
// Configuration errors.

fn parse_error(from: &str, to: &str) -> (ProvinceError, usize) {
    let text = Province::BUNDLED;
    let at = text.find(from).unwrap_or_else(|| panic!("{from:?} is not in the bundled config"));
    let broken = format!("{}{}{}", &text[..at], to, &text[at + from.len()..]);
    let line = text[..at].matches('\n').count() + 1;
    match Province::parse(&broken, "test.toml") {
        Ok(_) => panic!("{to:?} was accepted"),
        Err(e) => (e, line),
    }
}

fn assert_error(from: &str, to: &str, message: &str) {
    let (e, line) = parse_error(from, to);
    assert_eq!(e.line, line, "wrong line: {e}");
    assert!(e.message.contains(message), "{e} does not say {message:?}");
}

#[test]
fn given_an_acknowledgement_longer_than_the_answer_then_the_config_is_refused() {
    let from = "acknowledge = \"4 working hours\"\ndeadline = \"3 working days\"";
    assert_error(from, "acknowledge = \"4 working days\"\ndeadline = \"3 working days\"", "longer than deadline");
}

#[test]
fn given_an_emergency_acknowledged_in_working_time_then_the_config_is_refused() {
    let from = "acknowledge = \"immediate\"";
    assert_error(from, "acknowledge = \"1 working hour\"", "emergency category must have acknowledge");
}

#[test]
fn given_an_emergency_answered_in_minutes_then_the_config_is_accepted() {
    let text = Province::BUNDLED.replacen("deadline = \"immediate\"", "deadline = \"30 minutes\"", 1);
    let p = Province::parse(&text, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.spans("emergency_fire"), Some((Span::WallMinutes(5), Span::WallMinutes(30))));
}

#[test]
fn given_immediate_defined_in_working_time_then_the_config_is_refused() {
    let from = "immediate_deadline = \"60 minutes\"";
    assert_error(from, "immediate_deadline = \"1 working day\"", "must be wall-clock time");
    assert_error(from, "immediate_deadline = \"immediate\"", "must be wall-clock time");
}

#[test]
fn given_immediate_acknowledgement_longer_than_the_answer_then_the_config_is_refused() {
    let (e, _) = parse_error("immediate_deadline = \"60 minutes\"", "immediate_deadline = \"2 minutes\"");
    assert!(e.message.contains("immediate_acknowledge is longer"), "{e}");
}

#[test]
fn given_an_unknown_unit_then_the_config_is_refused() {
    let from = "acknowledge = \"4 working hours\"";
    assert_error(from, "acknowledge = \"4 work hours\"", "acknowledge \"4 work hours\" is not understood");
}

#[test]
fn given_a_category_without_acknowledge_then_the_config_is_refused() {
    let (e, _) = parse_error("acknowledge = \"4 working hours\"\n", "");
    assert!(e.message.contains("missing field `acknowledge`"), "{e}");
}
