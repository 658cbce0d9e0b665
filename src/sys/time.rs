//! The system clock's sync state and the time zone database, for the
//! CronJob controller ([`crate::workloads::cronjob`]).

use crate::spec::SpecError;
use crate::spec::workload::{Workload, WorkloadSpec};
use crate::vecmap::VecMap;
use crate::workloads::tz::Zone;

/// Where the zones are (`TZDIR` overrides it, as for the C library).
fn zoneinfo() -> String {
    std::env::var("TZDIR").unwrap_or_else(|_| "/usr/share/zoneinfo".into())
}

/// Whether the wall clock is synchronized: the kernel's NTP state
/// (`adjtimex` does not answer `TIME_ERROR`: `STA_UNSYNC` clear, as left by
/// systemd-timesyncd, chrony or busybox ntpd), or systemd-timesyncd's
/// flag file `/run/systemd/timesync/synchronized`.
pub fn clock_synchronized() -> bool {
    if std::path::Path::new("/run/systemd/timesync/synchronized").exists() {
        return true;
    }
    // Zeroed, `modes` is 0: adjtimex only reads the kernel's state. Its
    // return value is the clock state, TIME_ERROR while STA_UNSYNC (or
    // STA_CLOCKERR) is set (Linux >= 3.4).
    let mut t = std::mem::MaybeUninit::<libc::timex>::zeroed();
    // SAFETY: `t` is a valid, writable, zeroed `timex` that outlives the
    // call; with modes 0 the kernel only writes into it.
    let state = unsafe { libc::adjtimex(t.as_mut_ptr()) };
    state >= 0 && state != libc::TIME_ERROR
}

/// Reads and parses the zone `name` (`Europe/Berlin`); the error names
/// the zone and says whether the database itself is missing.
pub fn read_zone(name: &str) -> Result<Zone, String> {
    let dir = zoneinfo();
    if name
        .split('/')
        .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(format!("unknown time zone {name}"));
    }
    match std::fs::read(format!("{dir}/{name}")) {
        Ok(b) => Zone::parse(&b).map_err(|e| format!("time zone {name}: {dir}/{name}: {e}")),
        Err(_) if !std::path::Path::new(&dir).is_dir() => Err(format!(
            "unknown time zone {name}: the time zone database {dir} is missing on this device (install tzdata)"
        )),
        Err(e) => Err(format!("unknown time zone {name}: {dir}/{name}: {e}")),
    }
}

/// The zone of a CronJob's `timeZone`, checked when the workload is
/// applied: an error names `spec.timeZone`.
pub fn check_time_zone(w: &Workload) -> Result<(), SpecError> {
    match &w.spec {
        WorkloadSpec::CronJob(c) => match &c.time_zone {
            Some(tz) => read_zone(tz)
                .map(drop)
                .map_err(|e| SpecError::invalid("spec.timeZone", e)),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Fills `zones` ([`crate::workloads::Env::zones`]) with the zones the
/// CronJobs of `workloads` name: reads the missing ones (and retries the
/// failed ones), drops the unused.
pub fn load_zones<'a>(
    workloads: impl Iterator<Item = &'a Workload>,
    zones: &mut VecMap<String, Result<Zone, String>>,
) {
    let mut wanted = VecMap::new();
    for w in workloads {
        let tz = match &w.spec {
            WorkloadSpec::CronJob(c) => c.time_zone.as_ref(),
            _ => None,
        };
        if let Some(tz) = tz {
            let z = match zones.remove(tz) {
                Some(Ok(z)) => Ok(z),
                _ => read_zone(tz),
            };
            wanted.insert(tz.clone(), z);
        }
    }
    *zones = wanted;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_are_read_from_the_database_with_clear_errors() {
        assert!(read_zone("Europe/Berlin").is_ok());
        let e = read_zone("Mars/Olympus").unwrap_err();
        assert!(e.starts_with("unknown time zone Mars/Olympus"), "{e}");
        assert!(read_zone("../etc/passwd").is_err());
        // The agent's sync check runs (its answer depends on the machine).
        let _ = clock_synchronized();
    }
}
