//! Probe and hook hosts given as names (`tcpSocket.host`, `httpGet.host`),
//! looked up before each run as the kubelet's dialer does, from the node:
//! getaddrinfo(3) in a child, `picolet resolve NAME 0` (the broker's
//! lookup: [`crate::fleet::transport::lookup_main`]), whose output the
//! reactor reads, so a slow DNS server never blocks the agent's thread.
//! Dropping the future (the probe's timeout) kills and reaps the child.
//!
//! The first address getaddrinfo returns is used (Go's dialer would try
//! the others in turn when it fails). `localhost` is 127.0.0.1 without a
//! lookup. Failures read like Go's: `lookup NAME: no such host`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use crate::reactor;

/// The program run as `PROGRAM resolve NAME 0`: this binary.
pub const RESOLVER: &str = "/proc/self/exe";

/// Where a probe connects: the host's address, and the host as given when
/// it is a name (the URL's host, `Host` header and SNI of an `httpGet`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub ip: IpAddr,
    pub name: Option<String>,
}

/// The probe's `host` (`None` or empty: 127.0.0.1 in the pod's network
/// namespace) as a [`Target`], looked up with `program` when it is a name,
/// within `timeout`. The error is Go's dial error text without its `dial
/// tcp: ` prefix: `lookup NAME: no such host`.
pub async fn target(
    program: &Path,
    host: Option<&str>,
    timeout: Duration,
) -> Result<Target, String> {
    let name = match host {
        None | Some("") => None,
        Some(h) => match h.parse::<IpAddr>() {
            Ok(ip) => return Ok(Target { ip, name: None }),
            Err(_) => Some(h),
        },
    };
    let Some(name) = name else {
        return Ok(Target {
            ip: Ipv4Addr::LOCALHOST.into(),
            name: None,
        });
    };
    if name.eq_ignore_ascii_case("localhost") {
        return Ok(Target {
            ip: Ipv4Addr::LOCALHOST.into(),
            name: Some(name.to_string()),
        });
    }
    match reactor::timeout(timeout, lookup(program, name)).await {
        Ok(Ok(ip)) => Ok(Target {
            ip,
            name: Some(name.to_string()),
        }),
        Ok(Err(why)) => Err(format!("lookup {name}: {why}")),
        Err(reactor::TimedOut) => Err(format!("lookup {name}: i/o timeout")),
    }
}

/// Runs `program resolve NAME 0`: the first address it prints, or why
/// there is none, in Go's words where they differ from glibc's.
async fn lookup(program: &Path, name: &str) -> Result<IpAddr, String> {
    use crate::fleet::transport::{Resolved, run_resolver};
    match run_resolver(program, name, 0).await {
        Err(e) => Err(format!("cannot run the resolver: {e}")),
        Ok(Resolved::Failed(why, _)) => {
            let why = why
                .strip_prefix("failed to lookup address information: ")
                .unwrap_or(&why);
            // EAI_NONAME, EAI_NODATA: Go's "no such host".
            if why.contains("not known") || why.contains("No address associated") {
                return Err("no such host".into());
            }
            Err(why.to_string())
        }
        Ok(Resolved::Garbled(line)) => Err(format!("the resolver printed {line:?}")),
        Ok(Resolved::Addrs(addrs)) => addrs
            .first()
            .map(SocketAddr::ip)
            .ok_or_else(|| "no such host".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor::block_on;

    const SEC: Duration = Duration::from_secs(1);

    fn run(program: &Path, host: Option<&str>) -> Result<Target, String> {
        block_on(target(program, host, 5 * SEC))
    }

    #[test]
    fn addresses_empty_and_localhost_need_no_lookup() {
        let none = Path::new("/nonexistent");
        let lo = IpAddr::from(Ipv4Addr::LOCALHOST);
        assert_eq!(run(none, None), Ok(Target { ip: lo, name: None }));
        assert_eq!(run(none, Some("")), Ok(Target { ip: lo, name: None }));
        assert_eq!(
            run(none, Some("::1")),
            Ok(Target {
                ip: "::1".parse().unwrap(),
                name: None
            })
        );
        assert_eq!(
            run(none, Some("localhost")),
            Ok(Target {
                ip: lo,
                name: Some("localhost".into())
            })
        );
    }

    #[test]
    fn a_name_is_looked_up_by_a_child_and_its_first_address_taken() {
        let dir = tempfile::tempdir().unwrap();
        let program = crate::testutil::script(
            dir.path(),
            "resolver",
            r#"[ "$1 $2 $3" = "resolve db.lan 0" ] || exit 9; echo "10.0.0.7:0"; echo "[fd00::7]:0""#,
        );
        assert_eq!(
            run(&program, Some("db.lan")),
            Ok(Target {
                ip: "10.0.0.7".parse().unwrap(),
                name: Some("db.lan".into())
            })
        );
    }

    #[test]
    fn lookup_failures_read_like_go() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "echo 'error: failed to lookup address information: Name or service not known'; exit 1",
                "lookup x.invalid: no such host",
            ),
            (
                "echo 'error: failed to lookup address information: Temporary failure in name resolution'; exit 1",
                "lookup x.invalid: Temporary failure in name resolution",
            ),
            ("true", "lookup x.invalid: no such host"),
            (
                "echo garbage",
                "lookup x.invalid: the resolver printed \"garbage\"",
            ),
        ];
        for (i, (body, want)) in cases.into_iter().enumerate() {
            let program = crate::testutil::script(dir.path(), &format!("r{i}"), body);
            assert_eq!(run(&program, Some("x.invalid")), Err(want.to_string()));
        }
        // A resolver that hangs: the timeout, and the child is not waited for.
        let program = crate::testutil::script(dir.path(), "slow", "exec sleep 30");
        let start = std::time::Instant::now();
        let got = block_on(target(
            &program,
            Some("x.invalid"),
            Duration::from_millis(200),
        ));
        assert_eq!(got, Err("lookup x.invalid: i/o timeout".to_string()));
        assert!(start.elapsed() < 5 * SEC);
    }
}
