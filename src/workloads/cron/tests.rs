//! Cron syntax and next-time computation, in UTC and across DST.

use super::*;

/// `2026-03-29T00:30:00Z` → seconds.
fn ts(s: &str) -> i64 {
    let n = |a: usize, b: usize| s[a..b].parse::<u32>().unwrap();
    days_from_civil(i64::from(n(0, 4)), n(5, 7), n(8, 10)) * 86_400
        + i64::from(n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19))
}

fn utc(t: i64) -> String {
    rfc3339_in(t, &Zone::utc(), true)
}

fn next(spec: &str, from: &str) -> String {
    let s = Schedule::parse(spec).unwrap();
    s.next(ts(from), &Zone::utc()).map_or("never".into(), utc)
}

fn zone(name: &str) -> Zone {
    Zone::parse(&std::fs::read(format!("/usr/share/zoneinfo/{name}")).unwrap()).unwrap()
}

#[test]
fn civil_and_days_round_trip() {
    for t in [0, 951_782_400, 1_780_000_000, -86_400, 4_102_444_800] {
        let (y, m, d, h, mi, _) = civil(t);
        assert_eq!(
            days_from_civil(y, m, d) * 86_400 + i64::from(h * 3600 + mi * 60),
            t - t.rem_euclid(60)
        );
    }
    assert_eq!(civil(0).5, 4, "1970-01-01 was a Thursday");
    assert_eq!(utc(ts("2028-02-29T23:59:00Z")), "2028-02-29T23:59:00Z");
}

#[test]
fn fields_ranges_steps_lists_and_names() {
    assert_eq!(
        next("*/15 * * * *", "2026-12-06T10:07:00Z"),
        "2026-12-06T10:15:00Z"
    );
    // Strictly after.
    assert_eq!(
        next("* * * * *", "2026-12-06T10:07:00Z"),
        "2026-12-06T10:08:00Z"
    );
    assert_eq!(
        next("* * * * *", "2026-12-06T10:07:59Z"),
        "2026-12-06T10:08:00Z"
    );
    // 2026-12-05 is a Saturday.
    assert_eq!(
        next("0 9 * * mon-FRI", "2026-12-05T12:00:00Z"),
        "2026-12-07T09:00:00Z"
    );
    assert_eq!(
        next("0 9 * * 1-5", "2026-12-05T12:00:00Z"),
        "2026-12-07T09:00:00Z"
    );
    // `5/15` is 5,20,35,50.
    assert_eq!(
        next("5/15 * * * *", "2026-12-06T10:36:00Z"),
        "2026-12-06T10:50:00Z"
    );
    assert_eq!(
        next("1-30/10 3 * * *", "2026-12-06T03:12:00Z"),
        "2026-12-06T03:21:00Z"
    );
    assert_eq!(
        next("0 0,12 * * ?", "2026-12-06T03:00:00Z"),
        "2026-12-06T12:00:00Z"
    );
    assert_eq!(
        next("0 0 1 jan,Jul *", "2026-02-01T00:00:00Z"),
        "2026-07-01T00:00:00Z"
    );
    assert_eq!(
        next("0 0 29 2 *", "2026-03-01T00:00:00Z"),
        "2028-02-29T00:00:00Z"
    );
    assert_eq!(next("0 0 30 2 *", "2026-03-01T00:00:00Z"), "never");
    // Both day fields restricted: either matches (13th, or a Friday).
    // 2026-12-06 is a Sunday: Friday the 11th comes before the 13th.
    assert_eq!(
        next("0 0 13 * 5", "2026-12-06T00:00:00Z"),
        "2026-12-11T00:00:00Z"
    );
    // One is `*`: both must match. `*/1` still counts as `*`, `*/2` does not.
    assert_eq!(
        next("0 0 13 * *", "2026-12-06T00:00:00Z"),
        "2026-12-13T00:00:00Z"
    );
    assert_eq!(
        next("0 0 13 * */1", "2026-12-06T00:00:00Z"),
        "2026-12-13T00:00:00Z"
    );
    assert_eq!(
        next("0 0 13 * */2", "2026-12-06T00:00:00Z"),
        "2026-12-08T00:00:00Z"
    );
}

#[test]
fn the_macros() {
    let from = "2026-12-06T10:07:00Z";
    for (m, want) in [
        ("@yearly", "2027-01-01T00:00:00Z"),
        ("@annually", "2027-01-01T00:00:00Z"),
        ("@monthly", "2027-01-01T00:00:00Z"),
        ("@weekly", "2026-12-13T00:00:00Z"),
        ("@daily", "2026-12-07T00:00:00Z"),
        ("@midnight", "2026-12-07T00:00:00Z"),
        ("@hourly", "2026-12-06T11:00:00Z"),
    ] {
        assert_eq!(next(m, from), want, "{m}");
    }
}

#[test]
fn invalid_schedules_say_why() {
    for (spec, why) in [
        ("", "empty spec string"),
        ("* * * *", "expected exactly 5 fields, found 4"),
        ("* * * * * *", "expected exactly 5 fields, found 6"),
        ("60 * * * *", "end of range (60) above maximum (59): 60"),
        ("* 24 * * *", "above maximum (23)"),
        ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
        ("* * * 13 *", "above maximum (12)"),
        ("* * * * 7", "end of range (7) above maximum (6): 7"),
        (
            "5-1 * * * *",
            "beginning of range (5) beyond end of range (1): 5-1",
        ),
        (
            "*/0 * * * *",
            "step of range should be a positive number: */0",
        ),
        ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
        ("*/2/3 * * * *", "too many slashes"),
        ("x * * * *", "failed to parse int from x"),
        ("* * * foo *", "failed to parse int from foo"),
        ("@fortnightly", "unrecognized descriptor: @fortnightly"),
        ("@every 1h", "@every is not supported"),
    ] {
        let e = Schedule::parse(spec).unwrap_err();
        assert!(e.contains(why), "{spec:?}: {e}");
    }
}

#[test]
fn a_spring_forward_gap_skips_and_a_fall_back_overlap_repeats() {
    let berlin = zone("Europe/Berlin");
    let s = Schedule::parse("30 2 * * *").unwrap();
    // 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
    let t = s.next(ts("2026-03-28T12:00:00Z"), &berlin).unwrap();
    assert_eq!(rfc3339_in(t, &berlin, false), "2026-03-30T02:30:00+02:00");
    let hourly = Schedule::parse("0 * * * *").unwrap();
    let t = hourly.next(ts("2026-03-29T00:30:00Z"), &berlin).unwrap();
    assert_eq!(rfc3339_in(t, &berlin, false), "2026-03-29T03:00:00+02:00");
    assert_eq!(utc(t), "2026-03-29T01:00:00Z");
    // 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
    let a = s.next(ts("2026-10-24T12:00:00Z"), &berlin).unwrap();
    assert_eq!(rfc3339_in(a, &berlin, false), "2026-10-25T02:30:00+02:00");
    let b = s.next(a, &berlin).unwrap();
    assert_eq!(rfc3339_in(b, &berlin, false), "2026-10-25T02:30:00+01:00");
    assert_eq!(b - a, 3600);
    let c = s.next(b, &berlin).unwrap();
    assert_eq!(rfc3339_in(c, &berlin, false), "2026-10-26T02:30:00+01:00");
    // A daily job at 09:00 local stays at 09:00 local across the change.
    let nine = Schedule::parse("0 9 * * *").unwrap();
    let t = nine.next(ts("2026-10-25T12:00:00Z"), &berlin).unwrap();
    assert_eq!(utc(t), "2026-10-26T08:00:00Z");
    let t = nine.next(ts("2026-07-01T12:00:00Z"), &berlin).unwrap();
    assert_eq!(utc(t), "2026-07-02T07:00:00Z");
    // Far future (the footer's rule): 2100 summer.
    let t = nine.next(ts("2100-07-01T12:00:00Z"), &berlin).unwrap();
    assert_eq!(rfc3339_in(t, &berlin, false), "2100-07-02T09:00:00+02:00");
    // New York, and a half-hour zone.
    let ny = zone("America/New_York");
    let t = nine.next(ts("2026-12-06T12:00:00Z"), &ny).unwrap();
    assert_eq!(rfc3339_in(t, &ny, false), "2026-12-06T09:00:00-05:00");
    let kolkata = zone("Asia/Kolkata");
    let t = nine.next(ts("2026-12-06T12:00:00Z"), &kolkata).unwrap();
    assert_eq!(utc(t), "2026-12-07T03:30:00Z");
}
