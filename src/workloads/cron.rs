//! Cron schedules as Kubernetes reads them (`robfig/cron` v3's standard
//! parser): 5 fields `minute hour day-of-month month day-of-week` with
//! `*`, `?`, ranges, steps (`*/5`, `1-30/2`, `5/15` = `5-max/15`), lists,
//! month and day names (`JAN`, `mon`), and the macros `@yearly`,
//! `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`.
//! When both day fields are restricted a day matches either (cron's OR);
//! when one is `*` or `?`, both must.
//!
//! [`Schedule::next`] works in a [`Zone`]: a schedule fires at every
//! instant whose local time matches. So in a spring-forward gap the
//! missing local times do not fire, and in a fall-back overlap a repeated
//! local time fires twice, as `robfig/cron` does.

use super::tz::Zone;

/// A parsed schedule: one bit per allowed value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
}

/// Set when a day field was `*` or `?`.
const STAR: u64 = 1 << 63;

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl Schedule {
    /// Parses `spec`; the error is `robfig/cron`'s wording.
    pub fn parse(spec: &str) -> Result<Schedule, String> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err("empty spec string".into());
        }
        let spec = match spec {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            s if s.starts_with("@every") => {
                return Err("@every is not supported: use a cron expression".into());
            }
            s if s.starts_with('@') => return Err(format!("unrecognized descriptor: {s}")),
            s => s,
        };
        let f: Vec<&str> = spec.split_whitespace().collect();
        if f.len() != 5 {
            return Err(format!(
                "expected exactly 5 fields, found {}: {spec:?}",
                f.len()
            ));
        }
        Ok(Schedule {
            minute: field(f[0], 0, 59, &[])?,
            hour: field(f[1], 0, 23, &[])?,
            dom: field(f[2], 1, 31, &[])?,
            month: field(f[3], 1, 12, &MONTHS)?,
            dow: field(f[4], 0, 6, &DAYS)?,
        })
    }

    fn day_matches(&self, day: u32, wd: u32) -> bool {
        let d = self.dom & (1 << day) != 0;
        let w = self.dow & (1 << wd) != 0;
        if (self.dom | self.dow) & STAR != 0 {
            d && w
        } else {
            d || w
        }
    }

    /// The first firing strictly after `t` (Unix seconds) in `zone`, or
    /// `None` within the next 5 years (e.g. `0 0 30 2 *`).
    pub fn next(&self, t: i64, zone: &Zone) -> Option<i64> {
        let limit = t + 5 * 366 * 86_400;
        let mut t = t;
        while t < limit {
            // The offset of the first candidate second, until the next
            // transition.
            let off = i64::from(zone.offset_at(t + 1));
            let local = self.next_local(t + off, limit + off)?;
            let at = local - off;
            match zone.next_transition(t + 1) {
                Some(b) if at >= b => t = b - 1,
                _ => return Some(at),
            }
        }
        None
    }

    /// The first matching local minute strictly after `s` (local seconds).
    fn next_local(&self, s: i64, limit: i64) -> Option<i64> {
        let mut s = (s.div_euclid(60) + 1) * 60;
        while s < limit {
            let (y, mo, d, h, mi, wd) = civil(s);
            if self.month & (1 << mo) == 0 {
                let (y, mo) = if mo == 12 { (y + 1, 1) } else { (y, mo + 1) };
                s = days_from_civil(y, mo, 1) * 86_400;
            } else if !self.day_matches(d, wd) {
                s = (s.div_euclid(86_400) + 1) * 86_400;
            } else if self.hour & (1 << h) == 0 {
                s = (s.div_euclid(3600) + 1) * 3600;
            } else if self.minute & (1 << mi) == 0 {
                s += 60;
            } else {
                return Some(s);
            }
        }
        None
    }
}

/// One field: a list of `*`/`?`/`a`/`a-b`, each with an optional `/step`.
fn field(f: &str, min: u32, max: u32, names: &[&str]) -> Result<u64, String> {
    let mut bits = 0;
    for part in f.split(',') {
        bits |= range(part, min, max, names)?;
    }
    Ok(bits)
}

fn range(expr: &str, min: u32, max: u32, names: &[&str]) -> Result<u64, String> {
    let mut rs = expr.split('/');
    let (r, step) = (rs.next().unwrap_or(""), rs.next());
    if rs.next().is_some() {
        return Err(format!("too many slashes: {expr}"));
    }
    let bounds: Vec<&str> = r.split('-').collect();
    let (mut start, mut end, mut star) = (min, max, 0);
    if r == "*" || r == "?" {
        star = STAR;
    } else {
        if bounds.len() > 2 {
            return Err(format!("too many hyphens: {expr}"));
        }
        start = value(bounds[0], names, min)?;
        end = match bounds.get(1) {
            Some(b) => value(b, names, min)?,
            None if step.is_some() => max,
            None => start,
        };
    }
    let step = match step {
        None => 1,
        Some(s) => {
            let n: u32 = s
                .parse()
                .map_err(|_| format!("failed to parse int from {s}: invalid syntax"))?;
            if n > 1 {
                star = 0;
            }
            n
        }
    };
    if start < min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({min}): {expr}"
        ));
    }
    if end > max {
        return Err(format!(
            "end of range ({end}) above maximum ({max}): {expr}"
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok((start..=end)
        .step_by(step as usize)
        .fold(star, |b, v| b | 1 << v))
}

fn value(s: &str, names: &[&str], min: u32) -> Result<u32, String> {
    let l = s.to_ascii_lowercase();
    if let Some(i) = names.iter().position(|n| *n == l) {
        return Ok(i as u32 + min);
    }
    s.parse()
        .map_err(|_| format!("failed to parse int from {s}: invalid syntax"))
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(year, month, day, hour, minute, weekday 0=Sunday)` of `s` seconds
/// (as if UTC).
pub fn civil(s: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = s.div_euclid(86_400);
    let sod = s.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    let wd = (days + 4).rem_euclid(7) as u32;
    (y, m, d, (sod / 3600) as u32, (sod % 3600 / 60) as u32, wd)
}

/// RFC 3339 of `t` (seconds) in `zone`: `Z` for UTC offsets, as Go's
/// `time.Format(time.RFC3339)` writes a UTC time.
pub fn rfc3339_in(t: i64, zone: &Zone, utc: bool) -> String {
    let off = if utc { 0 } else { zone.offset_at(t) };
    let (y, mo, d, h, mi, _) = civil(t + i64::from(off));
    let sec = (t + i64::from(off)).rem_euclid(60);
    let z = if utc {
        "Z".to_string()
    } else {
        let a = off.unsigned_abs() / 60;
        format!(
            "{}{:02}:{:02}",
            if off < 0 { '-' } else { '+' },
            a / 60,
            a % 60
        )
    };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}{z}")
}

#[cfg(test)]
mod tests;
