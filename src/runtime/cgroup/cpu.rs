//! The `cpu` controller: `cpu.max`, `cpu.weight`, `cpu.stat`, and the
//! Kubernetes conversions from millicores (kubelet `MilliCPUToQuota`,
//! `MilliCPUToShares`) and runc's shares → weight mapping.

use super::{CgroupError, flat_keyed, read_file};
use std::path::Path;

/// `cpu.max`: `"<quota> <period>"` in µs, or `"max <period>"`.
pub const CPU_MAX: &str = "cpu.max";
/// `cpu.weight`: 1..=10000, default 100.
pub const CPU_WEIGHT: &str = "cpu.weight";
/// `cpu.stat`: usage and throttling counters (present even without the controller).
pub const CPU_STAT: &str = "cpu.stat";

/// The CFS period the kubelet uses by default (100 ms).
pub const PERIOD_USEC: u64 = 100_000;
/// The smallest quota the kubelet sets (1 ms).
pub const MIN_QUOTA_USEC: u64 = 1_000;
/// cgroup v1 shares bounds and shares per CPU, as in the kubelet.
pub const MIN_SHARES: u64 = 2;
pub const MAX_SHARES: u64 = 262_144;
pub const SHARES_PER_CPU: u64 = 1024;
const MILLI_PER_CPU: u64 = 1000;

/// kubelet `MilliCPUToQuota`: the quota per [`PERIOD_USEC`] for a CPU limit in
/// millicores; `None` (no limit) for 0.
pub fn milli_cpu_to_quota(milli: u64) -> Option<u64> {
    if milli == 0 {
        return None;
    }
    let quota = milli.saturating_mul(PERIOD_USEC) / MILLI_PER_CPU;
    Some(quota.max(MIN_QUOTA_USEC))
}

/// The `cpu.max` value for a CPU limit in millicores (`None` or 0: no limit).
pub fn cpu_max_value(limit_milli: Option<u64>) -> String {
    match limit_milli.and_then(milli_cpu_to_quota) {
        Some(quota) => format!("{quota} {PERIOD_USEC}"),
        None => format!("max {PERIOD_USEC}"),
    }
}

/// kubelet `MilliCPUToShares`: 0 → [`MIN_SHARES`] (the kernel's real minimum),
/// otherwise `milli * 1024 / 1000` clamped to [`MIN_SHARES`]..=[`MAX_SHARES`].
pub fn milli_cpu_to_shares(milli: u64) -> u64 {
    if milli == 0 {
        return MIN_SHARES;
    }
    (milli.saturating_mul(SHARES_PER_CPU) / MILLI_PER_CPU).clamp(MIN_SHARES, MAX_SHARES)
}

/// runc's cgroup v1 shares → v2 weight: `1 + ((shares - 2) * 9999) / 262142`,
/// mapping [2, 262144] onto [1, 10000]. Shares are clamped into that range
/// first (runc leaves 0 as "unset"; picolet always sets a weight).
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(MIN_SHARES, MAX_SHARES);
    1 + ((shares - 2) * 9999) / 262_142
}

/// `cpu.weight` for a CPU request in millicores.
pub fn weight_for_request(request_milli: u64) -> u64 {
    shares_to_weight(milli_cpu_to_shares(request_milli))
}

/// Counters from `cpu.stat`. Throttling fields are 0 when the cpu controller
/// is not enabled (the kernel then lists only usage).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuStat {
    pub usage_usec: u64,
    pub user_usec: u64,
    pub system_usec: u64,
    pub nr_periods: u64,
    pub nr_throttled: u64,
    pub throttled_usec: u64,
}

impl CpuStat {
    pub fn parse(text: &str) -> CpuStat {
        let get = |k| flat_keyed(text, k).unwrap_or(0);
        CpuStat {
            usage_usec: get("usage_usec"),
            user_usec: get("user_usec"),
            system_usec: get("system_usec"),
            nr_periods: get("nr_periods"),
            nr_throttled: get("nr_throttled"),
            throttled_usec: get("throttled_usec"),
        }
    }
}

/// Reads `<cgroup>/cpu.stat`.
pub fn cpu_stat(cgroup: &Path) -> Result<CpuStat, CgroupError> {
    Ok(CpuStat::parse(&read_file(&cgroup.join(CPU_STAT))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_follows_kubelet_milli_cpu_to_quota() {
        // (millicores, quota) pairs from kubelet's helpers_linux_test.go semantics.
        for (milli, quota) in [
            (0, None),
            (1, Some(1000)), // 100 µs, raised to the 1 ms minimum
            (5, Some(1000)),
            (9, Some(1000)),
            (10, Some(1000)),
            (11, Some(1100)),
            (100, Some(10_000)),
            (250, Some(25_000)),
            (500, Some(50_000)),
            (1000, Some(100_000)),
            (1500, Some(150_000)),
            (4000, Some(400_000)),
        ] {
            assert_eq!(milli_cpu_to_quota(milli), quota, "{milli}m");
        }
    }

    #[test]
    fn cpu_max_is_quota_and_period_or_max() {
        assert_eq!(cpu_max_value(None), "max 100000");
        assert_eq!(cpu_max_value(Some(0)), "max 100000");
        assert_eq!(cpu_max_value(Some(250)), "25000 100000");
        assert_eq!(cpu_max_value(Some(2)), "1000 100000");
        assert_eq!(cpu_max_value(Some(2000)), "200000 100000");
    }

    #[test]
    fn shares_follow_kubelet_milli_cpu_to_shares() {
        for (milli, shares) in [
            (0, 2),
            (1, 2), // 1.024 → 1, raised to 2
            (2, 2),
            (3, 3),
            (10, 10),
            (100, 102),
            (250, 256),
            (500, 512),
            (1000, 1024),
            (1500, 1536),
            (256_000, 262_144),
            (300_000, 262_144), // clamped to MaxShares
        ] {
            assert_eq!(milli_cpu_to_shares(milli), shares, "{milli}m");
        }
    }

    #[test]
    fn weight_follows_runc_conversion() {
        for (shares, weight) in [
            (2, 1),
            (3, 1),
            (28, 1), // (26*9999)/262142 = 0.99
            (29, 2),
            (102, 4),
            (256, 10),
            (512, 20),
            (1024, 39),
            (2048, 79),
            (262_144, 10_000),
        ] {
            assert_eq!(shares_to_weight(shares), weight, "{shares} shares");
        }
        // Out-of-range shares are clamped instead of underflowing.
        assert_eq!(shares_to_weight(0), 1);
        assert_eq!(shares_to_weight(1_000_000), 10_000);
    }

    #[test]
    fn weight_is_monotonic_and_in_range_for_every_request() {
        let mut last = 0;
        for milli in 0..=300_000u64 {
            let w = weight_for_request(milli);
            assert!((1..=10_000).contains(&w), "{milli}m → {w}");
            assert!(w >= last, "{milli}m → {w} < {last}");
            last = w;
        }
        assert_eq!(weight_for_request(0), 1);
        assert_eq!(weight_for_request(1000), 39);
    }

    #[test]
    fn cpu_stat_parses_throttling_and_defaults_missing_fields_to_zero() {
        let full = "usage_usec 5000\nuser_usec 3000\nsystem_usec 2000\n\
                    nr_periods 10\nnr_throttled 4\nthrottled_usec 777\n";
        let s = CpuStat::parse(full);
        assert_eq!(
            s,
            CpuStat {
                usage_usec: 5000,
                user_usec: 3000,
                system_usec: 2000,
                nr_periods: 10,
                nr_throttled: 4,
                throttled_usec: 777
            }
        );
        let without_controller = CpuStat::parse("usage_usec 9\nuser_usec 5\nsystem_usec 4\n");
        assert_eq!(without_controller.usage_usec, 9);
        assert_eq!(without_controller.nr_throttled, 0);
        assert_eq!(without_controller.throttled_usec, 0);
    }

    #[test]
    fn cpu_stat_reads_the_file_and_reports_a_missing_one_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = cpu_stat(dir.path()).unwrap_err().to_string();
        assert!(err.contains("cpu.stat"), "{err}");
        std::fs::write(dir.path().join(CPU_STAT), "usage_usec 12\nnr_throttled 1\n").unwrap();
        let s = cpu_stat(dir.path()).unwrap();
        assert_eq!((s.usage_usec, s.nr_throttled), (12, 1));
    }
}
