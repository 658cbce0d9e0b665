//! Time zones for CronJobs' `timeZone`: a small pure parser of TZif
//! files (RFC 8536, version 2 and later: the 64-bit block and the POSIX
//! `TZ` footer that extends the table past its last transition). The
//! agent reads `/usr/share/zoneinfo/<name>` ([`crate::sys::time::read_zone`])
//! and hands the parsed [`Zone`] to the core in [`super::Env`].
//!
//! Times here are Unix seconds; offsets are seconds east of UTC.

/// A parsed zone: UTC offsets over time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Zone {
    /// `(at, offset)`: from `at` on, the offset is `offset`; sorted.
    transitions: Vec<(i64, i32)>,
    /// Before the first transition (and with none, always).
    initial: i32,
    /// The footer's rule, after the last transition.
    rule: Option<Rule>,
}

/// A POSIX `TZ` rule: `std offset [dst [offset] ,start[/time],end[/time]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule {
    std: i32,
    /// `(dst offset, start, end)`.
    dst: Option<(i32, Day, i32, Day, i32)>,
}

/// A rule's day: `Jn` (1..365, no Feb 29), `n` (0..365), `Mm.w.d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Day {
    Julian1(u16),
    Julian0(u16),
    Month(u8, u8, u8),
}

impl Zone {
    /// UTC.
    pub fn utc() -> Zone {
        Zone::default()
    }

    /// Parses a TZif file (version 2 or later; a version 1 file's 32-bit
    /// table is read when it is all there is).
    pub fn parse(b: &[u8]) -> Result<Zone, String> {
        let bad = || "not a TZif file".to_string();
        let (v1, counts) = header(b).ok_or_else(bad)?;
        let mut at = 44;
        let mut time_size = 4;
        let mut counts = counts;
        if v1 >= b'2' {
            at += block_len(&counts, 4);
            counts = header(b.get(at..).ok_or_else(bad)?).ok_or_else(bad)?.1;
            at += 44;
            time_size = 8;
        }
        let [_isut, _isstd, leap, timecnt, typecnt, charcnt] = counts;
        let body = b
            .get(at..at + block_len(&counts, time_size))
            .ok_or_else(bad)?;
        if typecnt == 0 {
            return Err(bad());
        }
        let types_at = timecnt * time_size + timecnt;
        let offset_of = |i: usize| -> Option<i32> {
            let p = types_at + 6 * i;
            Some(i32::from_be_bytes(body.get(p..p + 4)?.try_into().ok()?))
        };
        let mut transitions = Vec::with_capacity(timecnt);
        for i in 0..timecnt {
            let t = &body[i * time_size..(i + 1) * time_size];
            let t = if time_size == 8 {
                i64::from_be_bytes(t.try_into().map_err(|_| bad())?)
            } else {
                i64::from(i32::from_be_bytes(t.try_into().map_err(|_| bad())?))
            };
            let ty = body[timecnt * time_size + i] as usize;
            transitions.push((t, offset_of(ty).ok_or_else(bad)?));
        }
        let _ = (leap, charcnt);
        let mut rule = None;
        if v1 >= b'2' {
            let foot = &b[at + body.len()..];
            let text = foot
                .strip_prefix(b"\n")
                .and_then(|f| f.split(|c| *c == b'\n').next())
                .and_then(|f| std::str::from_utf8(f).ok())
                .unwrap_or("");
            if !text.is_empty() {
                rule = Some(parse_rule(text).ok_or_else(|| format!("bad TZ footer {text:?}"))?);
            }
        }
        Ok(Zone {
            transitions,
            initial: offset_of(0).ok_or_else(bad)?,
            rule,
        })
    }

    /// The UTC offset at `t`.
    pub fn offset_at(&self, t: i64) -> i32 {
        match self.transitions.last() {
            Some(&(last, off)) if t >= last => self.rule.map_or(off, |r| r.around(t).0),
            None => self.rule.map_or(self.initial, |r| r.around(t).0),
            _ => match self.transitions.partition_point(|&(at, _)| at <= t) {
                0 => self.initial,
                i => self.transitions[i - 1].1,
            },
        }
    }

    /// The first change of offset (or of rule) after `t`.
    pub fn next_transition(&self, t: i64) -> Option<i64> {
        let i = self.transitions.partition_point(|&(at, _)| at <= t);
        if let Some(&(at, _)) = self.transitions.get(i) {
            return Some(at);
        }
        self.rule.and_then(|r| r.around(t).1)
    }
}

fn header(b: &[u8]) -> Option<(u8, [usize; 6])> {
    if b.len() < 44 || &b[..4] != b"TZif" {
        return None;
    }
    let mut c = [0; 6];
    for (i, n) in c.iter_mut().enumerate() {
        *n = u32::from_be_bytes(b[20 + 4 * i..24 + 4 * i].try_into().ok()?) as usize;
    }
    Some((b[4].max(b'1'), c))
}

fn block_len(c: &[usize; 6], time_size: usize) -> usize {
    let [isut, isstd, leap, timecnt, typecnt, charcnt] = *c;
    timecnt * time_size + timecnt + typecnt * 6 + charcnt + leap * (time_size + 4) + isstd + isut
}

impl Rule {
    /// The offset at `t` and the next transition after it.
    fn around(self, t: i64) -> (i32, Option<i64>) {
        let Some((dst, start, start_t, end, end_t)) = self.dst else {
            return (self.std, None);
        };
        let y = crate::workloads::cron::civil(t).0;
        let mut marks: Vec<(i64, i32)> = Vec::with_capacity(6);
        for y in y - 1..=y + 1 {
            for m in [
                (
                    day_secs(y, start) + i64::from(start_t) - i64::from(self.std),
                    dst,
                ),
                (
                    day_secs(y, end) + i64::from(end_t) - i64::from(dst),
                    self.std,
                ),
            ] {
                // Kept in order (no sort: smaller code).
                let at = marks.partition_point(|x| x.0 <= m.0);
                marks.insert(at, m);
            }
        }
        let i = marks.partition_point(|&(at, _)| at <= t);
        let off = if i == 0 { self.std } else { marks[i - 1].1 };
        (off, marks.get(i).map(|m| m.0))
    }
}

/// Local midnight of a rule's day in year `y`, as seconds (local).
fn day_secs(y: i64, d: Day) -> i64 {
    let jan1 = crate::workloads::cron::days_from_civil(y, 1, 1);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match d {
        Day::Julian1(n) => {
            let n = i64::from(n) - 1;
            jan1 + n + i64::from(leap && n >= 59)
        }
        Day::Julian0(n) => jan1 + i64::from(n),
        Day::Month(m, w, wd) => {
            let first = crate::workloads::cron::days_from_civil(y, u32::from(m), 1);
            // 1970-01-01 was a Thursday (4).
            let first_wd = (first + 4).rem_euclid(7);
            let mut day = first + (i64::from(wd) - first_wd).rem_euclid(7) + 7 * (i64::from(w) - 1);
            let next_month = if m == 12 {
                crate::workloads::cron::days_from_civil(y + 1, 1, 1)
            } else {
                crate::workloads::cron::days_from_civil(y, u32::from(m) + 1, 1)
            };
            while day >= next_month {
                day -= 7;
            }
            day
        }
    };
    days * 86_400
}

/// Parses a POSIX `TZ` string (with RFC 8536's extensions: hours up to
/// ±167 in rule times).
fn parse_rule(s: &str) -> Option<Rule> {
    let mut p = Cur(s.as_bytes());
    p.name()?;
    let std = -p.offset()?;
    if p.0.is_empty() {
        return Some(Rule { std, dst: None });
    }
    p.name()?;
    let dst = if p.0.first() != Some(&b',') {
        -p.offset()?
    } else {
        std + 3600
    };
    p.eat(b',')?;
    let start = p.day()?;
    let start_t = if p.eat(b'/').is_some() {
        p.offset()?
    } else {
        7200
    };
    p.eat(b',')?;
    let end = p.day()?;
    let end_t = if p.eat(b'/').is_some() {
        p.offset()?
    } else {
        7200
    };
    p.0.is_empty().then_some(Rule {
        std,
        dst: Some((dst, start, start_t, end, end_t)),
    })
}

struct Cur<'a>(&'a [u8]);

impl Cur<'_> {
    fn eat(&mut self, c: u8) -> Option<()> {
        let (&f, rest) = self.0.split_first()?;
        (f == c).then(|| self.0 = rest)
    }

    fn name(&mut self) -> Option<()> {
        let n = if self.eat(b'<').is_some() {
            let n = self.0.iter().position(|c| *c == b'>')?;
            self.0 = &self.0[n + 1..];
            n
        } else {
            let n = self
                .0
                .iter()
                .take_while(|c| c.is_ascii_alphabetic())
                .count();
            self.0 = &self.0[n..];
            n
        };
        (n >= 3).then_some(())
    }

    fn num(&mut self) -> Option<i32> {
        let n = self.0.iter().take_while(|c| c.is_ascii_digit()).count();
        let v = std::str::from_utf8(&self.0[..n]).ok()?.parse().ok()?;
        self.0 = &self.0[n..];
        Some(v)
    }

    /// `[+-]hh[:mm[:ss]]` in seconds.
    fn offset(&mut self) -> Option<i32> {
        let neg = self.eat(b'-').is_some();
        if !neg {
            let _ = self.eat(b'+');
        }
        let mut v = self.num()? * 3600;
        for unit in [60, 1] {
            if self.eat(b':').is_none() {
                break;
            }
            v += self.num()? * unit;
        }
        Some(if neg { -v } else { v })
    }

    fn day(&mut self) -> Option<Day> {
        if self.eat(b'J').is_some() {
            let n = self.num()?;
            return (1..=365).contains(&n).then_some(Day::Julian1(n as u16));
        }
        if self.eat(b'M').is_some() {
            let m = self.num()?;
            self.eat(b'.')?;
            let w = self.num()?;
            self.eat(b'.')?;
            let d = self.num()?;
            let ok = (1..=12).contains(&m) && (1..=5).contains(&w) && (0..=6).contains(&d);
            return ok.then_some(Day::Month(m as u8, w as u8, d as u8));
        }
        let n = self.num()?;
        (0..=365).contains(&n).then_some(Day::Julian0(n as u16))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str) -> Zone {
        let b = std::fs::read(format!("/usr/share/zoneinfo/{name}")).unwrap();
        Zone::parse(&b).unwrap()
    }

    #[test]
    fn berlin_from_the_tz_database_has_its_dst_transitions() {
        let z = zone("Europe/Berlin");
        // 2026-03-29 01:00 UTC: CET -> CEST.
        let spring = 1_774_746_000;
        assert_eq!(z.offset_at(spring - 1), 3600);
        assert_eq!(z.offset_at(spring), 7200);
        assert_eq!(z.next_transition(spring - 100), Some(spring));
        // 2026-10-25 01:00 UTC: back to CET.
        let fall = 1_792_890_000;
        assert_eq!(z.next_transition(spring), Some(fall));
        assert_eq!(z.offset_at(fall), 3600);
        // Far in the future: the footer's rule.
        // 2100-07-01 is summer.
        assert_eq!(z.offset_at(4_118_083_200), 7200);
        assert_eq!(z.offset_at(4_102_444_800), 3600);
    }

    #[test]
    fn a_footer_rule_alone_gives_the_transitions_both_hemispheres() {
        let r = parse_rule("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        let z = Zone {
            transitions: vec![],
            initial: 3600,
            rule: Some(r),
        };
        assert_eq!(z.offset_at(1_774_746_000), 7200);
        assert_eq!(z.offset_at(1_774_745_999), 3600);
        assert_eq!(z.next_transition(1_774_746_000), Some(1_792_890_000));
        // Sydney: DST from October to April.
        let r = parse_rule("AEST-10AEDT,M10.1.0,M4.1.0/3").unwrap();
        let z = Zone {
            transitions: vec![],
            initial: 36000,
            rule: Some(r),
        };
        // 2026-01-15: summer (+11); 2026-07-01: winter (+10).
        assert_eq!(z.offset_at(1_768_435_200), 39600);
        assert_eq!(z.offset_at(1_782_864_000), 36000);
        assert_eq!(
            parse_rule("<-03>3<-02>,M3.5.0/-2,M10.5.0/-1")
                .unwrap()
                .dst
                .map(|d| (d.0, d.2, d.4)),
            Some((-7200, -7200, -3600))
        );
        assert_eq!(parse_rule("<+0545>-5:45").unwrap().std, 20700);
        assert!(parse_rule("X1").is_none());
        assert!(parse_rule("CET-1CEST,M13.5.0,M10.5.0").is_none());
    }

    #[test]
    fn garbage_and_truncated_files_are_refused() {
        assert!(Zone::parse(b"hello").is_err());
        let b = std::fs::read("/usr/share/zoneinfo/Europe/Berlin").unwrap();
        assert!(Zone::parse(&b[..60]).is_err());
        let utc = zone("UTC");
        assert_eq!(utc.offset_at(0), 0);
        assert_eq!(utc.next_transition(0), None);
    }
}
