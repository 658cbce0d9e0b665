//! The `pids` controller: `pids.max`, set on each pod cgroup from the node's
//! default (the kubelet's `podPidsLimit`).

use std::fmt;
use std::str::FromStr;

/// `pids.max`: the most tasks the cgroup and its descendants may hold, or `max`.
pub const PIDS_MAX: &str = "pids.max";

/// A `pids.max` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PidsMax {
    #[default]
    Max,
    Limit(u64),
}

impl fmt::Display for PidsMax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PidsMax::Max => f.write_str("max"),
            PidsMax::Limit(n) => write!(f, "{n}"),
        }
    }
}

/// Parse error for [`PidsMax`] (e.g. from a command-line flag).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pids limit {0:?}: expected a positive number or `max`")]
pub struct PidsMaxError(pub String);

impl FromStr for PidsMax {
    type Err = PidsMaxError;

    /// `max`, `-1` (the kubelet's "unlimited") or a positive count.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "max" | "-1" => Ok(PidsMax::Max),
            t => match t.parse::<u64>() {
                Ok(n) if n > 0 => Ok(PidsMax::Limit(n)),
                _ => Err(PidsMaxError(s.to_string())),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_max_parses_counts_max_and_kubelet_minus_one() {
        assert_eq!("1024".parse(), Ok(PidsMax::Limit(1024)));
        assert_eq!("max".parse(), Ok(PidsMax::Max));
        assert_eq!("-1".parse(), Ok(PidsMax::Max));
        for bad in ["0", "", "-2", "1k", "maxx"] {
            assert!(bad.parse::<PidsMax>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn pids_max_displays_as_the_kernel_expects() {
        assert_eq!(PidsMax::Limit(1024).to_string(), "1024");
        assert_eq!(PidsMax::Max.to_string(), "max");
    }
}
