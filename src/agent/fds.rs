//! The agent's file-descriptor budget (issue 7, finding 4).
//!
//! At start the soft `RLIMIT_NOFILE` is raised to the hard limit (systemd
//! gives services 1024 soft / 524288 hard; a shell often 1024 / 1048576).
//! The budget per pod is [`PER_POD`]:
//! - the shim's Unix socket, for the pod's life;
//! - the pod's network-namespace fd, held for tcp/http probes;
//! - while its shim starts: the launcher's pidfd and its stderr pipe (the
//!   number of shims starting at once is bounded too, see
//!   `MAX_STARTING_SANDBOXES`);
//! - one probe socket in flight (tcp/http probes, one per pod at a time
//!   in practice; each probe kind is one at a time per container).
//!
//! [`RESERVED`] is the agent's own: the epoll fd and its eventfd/timerfd,
//! the signalfd, the inotify fd, the API socket and its connections (each
//! with at most 3 `exec` stdio fds until its request is read), the
//! broker's socket, the state file while it is written, helper processes'
//! pipes, and stdio. `maxPods` is lowered to what the limit allows, and
//! pods beyond it are rejected (`OutOfpods`) like any other: the agent
//! never runs out of fds, whose `EMFILE` used to wedge it.

use std::io;

/// fds one admitted pod may hold (see the module documentation).
pub const PER_POD: u64 = 4;
/// fds kept for the agent itself.
pub const RESERVED: u64 = 256;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft
/// limit in force afterwards.
pub fn raise_nofile_limit() -> io::Result<u64> {
    Ok(crate::sys::process::raise_nofile_limit()?)
}

/// The most pods `limit` fds can carry.
pub fn pods_for(limit: u64) -> usize {
    usize::try_from(limit.saturating_sub(RESERVED) / PER_POD).unwrap_or(usize::MAX)
}

/// `max_pods`, lowered to what the fd limit allows (logged when lowered).
pub fn budget_max_pods(max_pods: usize) -> usize {
    let limit = match raise_nofile_limit() {
        Ok(l) => l,
        Err(e) => {
            log::warn!("RLIMIT_NOFILE: {e}; assuming 1024");
            1024
        }
    };
    let fit = pods_for(limit);
    if fit < max_pods {
        log::warn!(
            "maxPods {max_pods} lowered to {fit}: the fd limit is {limit} ({PER_POD} per pod, \
             {RESERVED} for the agent); raise LimitNOFILE to admit more"
        );
        return fit.max(1);
    }
    log::debug!("fd limit {limit}: room for {fit} pods, maxPods {max_pods}");
    max_pods
}

#[cfg(test)]
mod tests {
    use super::{pods_for, raise_nofile_limit};

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one_and_pods_are_budgeted() {
        let soft = raise_nofile_limit().unwrap();
        let (cur, max) = crate::sys::process::nofile_limit().unwrap();
        assert_eq!(cur, max);
        assert_eq!(soft, cur);
        // systemd's 1024 soft limit alone would carry 192 pods; 110 fit.
        assert_eq!(pods_for(1024), 192);
        assert_eq!(pods_for(100), 0);
        assert!(pods_for(1024) >= crate::lifecycle::DEFAULT_MAX_PODS);
    }
}
