//! The agent's side of a pod sandbox: start a shim, talk to it, tear it down.
//!
//! Starting: the pod dir gets `shim.json`, `hostname`, `hosts` and
//! `resolv.conf`; memory-backed emptyDirs are mounted here (in the host mount
//! namespace, so that all the pod's containers share them). Then
//! `picolet shim <namespace>/<pod>` (config path in `$PICOLET_SHIM_CONFIG`) is started with
//! `std::process::Command`; that process forks the real shim away and exits
//! once the shim's socket is ready. We wait for that exit on a pidfd (no
//! blocking), then connect.
//!
//! Talking: one reader task turns JSON lines into [`super::Msg::Shim`]; one
//! writer task drains a channel of requests, so the agent's main loop never
//! awaits a shim. A request may carry fds (an exec's stdio, passed on by the
//! API): the writer sends them with the first bytes of the request's line
//! (`SCM_RIGHTS`) and closes the agent's copies as soon as they are sent.

use super::Msg;
use crate::reactor::{self, Async};
use crate::runtime::shim::proto::{Event, PodConfig, Request};
use async_channel::Sender;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;

/// A live connection to one shim.
#[derive(Debug, Clone)]
pub struct ShimConn {
    tx: Sender<(Request, Vec<OwnedFd>)>,
    /// Connection generation: events from older connections are ignored.
    pub generation: u64,
    /// The shim's PID (`SO_PEERCRED`), whose network namespace is the pod's.
    pub pid: Option<i32>,
}

impl ShimConn {
    /// Queues a request; false if the connection is gone.
    pub fn send(&self, req: Request) -> bool {
        self.send_with_fds(req, Vec::new())
    }

    /// Queues a request that carries `fds` (see the module doc); false if
    /// the connection is gone (the fds are closed then).
    pub fn send_with_fds(&self, req: Request, fds: Vec<OwnedFd>) -> bool {
        self.tx.try_send((req, fds)).is_ok()
    }
}

/// A pod's `/etc/hosts`, as the kubelet writes it: with `hostNetwork` the
/// host's file (`host_hosts`), else localhost lines and the pod's address
/// with its hostname (127.0.1.1 when the pod has no address of its own:
/// `podNetwork: none`); then the `hostAliases`.
pub fn hosts_file(
    hostname: &str,
    pod_ip: Option<&str>,
    aliases: &[crate::spec::HostAlias],
    host_hosts: Option<&str>,
) -> String {
    let mut s = match host_hosts {
        Some(h) => format!("# Kubernetes-managed hosts file (host network).\n{h}"),
        None => format!(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
             fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n\
             {}\t{hostname}\n",
            pod_ip.unwrap_or("127.0.1.1")
        ),
    };
    if !aliases.is_empty() {
        if !s.ends_with('\n') {
            s.push('\n');
        }
        s.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            s.push_str(&format!("{}\t{}\n", a.ip, a.hostnames.join("\t")));
        }
    }
    s
}

/// The names of the pod's own `/etc/hosts` line: `hostname`, or with a
/// `subdomain` the kubelet's `<hostname>.<subdomain>.<namespace>.svc.cluster.local\t<hostname>`.
pub fn host_names(hostname: &str, subdomain: Option<&str>, namespace: &str) -> String {
    match subdomain.filter(|s| !s.is_empty()) {
        Some(sub) => format!("{hostname}.{sub}.{namespace}.svc.cluster.local\t{hostname}"),
        None => hostname.to_string(),
    }
}

/// systemd-resolved's list of the upstream DNS servers.
const RESOLVED_UPSTREAM: &str = "/run/systemd/resolve/resolv.conf";

/// Whether every `nameserver` of a resolv.conf is a loopback address (and
/// there is one): a pod with its own network cannot reach those.
fn only_loopback_nameservers(resolv: &str) -> bool {
    let mut servers = resolv.lines().filter_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some("nameserver")).then(|| w.next().unwrap_or(""))
    });
    let mut any = false;
    let all = servers.all(|ns| {
        any = true;
        ns.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
    });
    any && all
}

/// Writes the files a pod's containers bind-mount, and the shim config.
/// Returns the config's path and the warnings forming `resolv.conf` gave
/// (`DNSConfigForming`, [`crate::net::dns`]).
pub fn prepare_pod_dir(
    cfg: &PodConfig,
    spec: &crate::spec::PodSpec,
    pod_ip: Option<&str>,
) -> io::Result<(PathBuf, Vec<String>)> {
    let dir = &cfg.pod_dir;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("hostname"), format!("{}\n", cfg.hostname))?;
    let host_hosts = spec
        .host_network
        .then(|| std::fs::read_to_string("/etc/hosts").unwrap_or_default());
    let namespace = cfg.name.split('/').next().unwrap_or_default();
    let hosts = hosts_file(
        &host_names(&cfg.hostname, spec.subdomain.as_deref(), namespace),
        pod_ip,
        &spec.host_aliases,
        host_hosts.as_deref(),
    );
    std::fs::write(dir.join("hosts"), hosts)?;
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let host = if spec.host_network || !only_loopback_nameservers(&host) {
        host
    } else {
        // systemd-resolved's stub (127.0.0.53) is not reachable from the
        // pod's own network: use the upstream servers it lists, as the
        // kubelet does on such hosts (kubeadm's resolvConf).
        std::fs::read_to_string(RESOLVED_UPSTREAM).unwrap_or(host)
    };
    let (resolv, warnings) = crate::net::dns::resolv_conf(spec, &host);
    std::fs::write(dir.join("resolv.conf"), resolv)?;
    let path = dir.join("shim.json");
    let json = crate::jsonl::to_vec_pretty(cfg).map_err(io::Error::other)?;
    std::fs::write(&path, json)?;
    Ok((path, warnings))
}

/// Starts the shim for a pod and waits (asynchronously) until it is ready.
/// Returns the shim's stderr text on failure.
///
/// Its command line is `picolet shim <namespace>/<pod>` (`title`), which
/// is what `ps` shows; the config path goes in the environment
/// ([`crate::runtime::shim::CONFIG_ENV`]), which containers do not inherit
/// (the shim gives each process it starts an explicit environment).
pub async fn start_shim(exe: &Path, config_path: &Path, title: &str) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(exe)
        .arg0("picolet")
        .arg("shim")
        .arg(title)
        .env(crate::runtime::shim::CONFIG_ENV, config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {} shim: {e}", exe.display()))?;
    let status = reactor::process::wait(&mut child)
        .await
        .map_err(|e| format!("waiting for shim: {e}"))?;
    if status.success() {
        return Ok(());
    }
    let mut err = String::new();
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    Err(format!(
        "shim exited with {status}: {}",
        err.trim().lines().last().unwrap_or("no message")
    ))
}

/// Connects to a pod's shim and starts its reader and writer tasks. Events
/// arrive at `to_agent` as [`Msg::Shim`], and [`Msg::ShimClosed`] on EOF.
pub async fn connect(
    uid: &str,
    socket: &Path,
    generation: u64,
    to_agent: Sender<Msg>,
) -> io::Result<ShimConn> {
    let stream = Rc::new(Async::<UnixStream>::connect(socket).await?);
    let pid = {
        use std::os::fd::AsFd;
        crate::sys::net::peer_pid(stream.get_ref().as_fd()).ok()
    };
    let (tx, rx) = async_channel::unbounded::<(Request, Vec<OwnedFd>)>();
    let w = stream.clone();
    reactor::spawn(async move {
        while let Ok((req, fds)) = rx.recv().await {
            let Ok(line) = crate::jsonl::encode(&req) else {
                continue;
            };
            if write_with_fds(&w, &line, fds).await.is_err() {
                break;
            }
        }
    })
    .detach();
    let uid = uid.to_string();
    reactor::spawn(async move {
        // Read straight into the line buffer: a read buffer held across
        // the await would sit in this task for the pod's whole life.
        let mut buf = crate::jsonl::LineBuffer::default();
        loop {
            match stream.read_with(|s| buf.read_from(&mut &*s)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            while let Some(line) = buf.next_line() {
                match serde_json::from_slice::<Event>(&line) {
                    Ok(event) => {
                        let _ = to_agent
                            .send(Msg::Shim {
                                uid: uid.clone(),
                                generation,
                                event,
                            })
                            .await;
                    }
                    Err(e) => log::warn!("pod {uid}: bad message from shim: {e}"),
                }
            }
            if buf.pending() > 4 << 20 {
                log::warn!("pod {uid}: shim line too long; dropping connection");
                break;
            }
        }
        let _ = to_agent.send(Msg::ShimClosed { uid, generation }).await;
    })
    .detach();
    Ok(ShimConn {
        tx,
        generation,
        pid,
    })
}

/// Stops a shim that still listens on `socket` although the agent has no
/// connection to it (it dropped the agent, e.g. over a request it could
/// not take): connects, sends `Shutdown` (the shim kills its containers
/// and exits) and waits up to 5 s for it to hang up. Returns whether a shim
/// was there. Called before a pod's sandbox is created again and when a
/// pod without a connection is removed, so that no shim outlives its pod
/// and a new one is not refused with "socket in use".
pub async fn stop_stray(uid: &str, socket: &Path) -> bool {
    let Ok(stream) = Async::<UnixStream>::connect(socket).await else {
        return false;
    };
    log::warn!(
        "pod {uid}: stopping a shim the agent had lost ({})",
        socket.display()
    );
    let line = crate::jsonl::encode(&Request::Shutdown).unwrap_or_default();
    if write_all(&stream, &line).await.is_err() {
        return true;
    }
    let drain = async {
        while let Ok(n) = stream.read_with(|s| discard(&mut &*s)).await {
            if n == 0 {
                break;
            }
        }
    };
    if reactor::timeout(std::time::Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        log::warn!("pod {uid}: the lost shim did not exit within 5 s");
    }
    true
}

/// Reads once from `r` and drops what came (its buffer is on this call's
/// stack, not in the awaiting future).
fn discard(r: &mut impl Read) -> io::Result<usize> {
    let mut chunk = [0u8; 4096];
    r.read(&mut chunk)
}

/// Writes all of `line` to a non-blocking stream, `fds` attached to its
/// first bytes; the fds are closed once sent (or on error).
async fn write_with_fds(s: &Async<UnixStream>, line: &[u8], fds: Vec<OwnedFd>) -> io::Result<()> {
    if fds.is_empty() {
        return write_all(s, line).await;
    }
    let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
    let n = s
        .write_with(|s| crate::sys::net::send_with_fds(s.as_fd(), line, &borrowed))
        .await?;
    drop(borrowed);
    drop(fds);
    write_all(s, &line[n..]).await
}

/// Writes all of `buf` to a non-blocking stream.
pub async fn write_all(s: &Async<UnixStream>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = s.write_with(|s| (&*s).write(buf)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
    }
    Ok(())
}

/// Mounts a tmpfs for a `medium: Memory` emptyDir (shared by the pod's containers).
pub fn mount_tmpfs(target: &Path, size: u64) -> io::Result<()> {
    std::fs::create_dir_all(target)?;
    let t = target;
    let opts = if size > 0 {
        format!("mode=1777,size={size}")
    } else {
        "mode=1777".to_string()
    };
    let flags = nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV;
    nix::mount::mount(Some("tmpfs"), t, Some("tmpfs"), flags, Some(opts.as_str()))?;
    Ok(())
}

/// Unmounts the Secret volumes' tmpfs under the pod's run dir `dir`, then
/// removes it (what is left is empty directories).
pub fn remove_run_pod_dir(dir: &Path) -> io::Result<()> {
    unmount_under(dir);
    std::fs::remove_dir_all(dir)
}

/// Lazily unmounts `dir` and everything mounted below it, deepest first.
fn unmount_under(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let dir = dir.to_string_lossy();
    let prefix = format!("{dir}/");
    let mut targets: Vec<String> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| *m == dir || m.starts_with(&prefix))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        let _ = nix::mount::umount2(t.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Lazily unmounts everything mounted under `dir` (memory emptyDirs), then
/// moves the directory tree into the trash, which a child process empties
/// (see [`super::trash`]).
pub fn remove_pod_dir(state_dir: &Path, dir: &Path) -> io::Result<()> {
    unmount_under(dir);
    super::trash::discard(state_dir, dir)
}

#[cfg(test)]
mod hosts_tests {
    use super::hosts_file;
    use crate::spec::HostAlias;

    #[test]
    fn the_hosts_file_names_the_pod_ip_and_the_host_aliases_in_the_kubelets_format() {
        let aliases = [
            HostAlias {
                ip: "127.0.0.1".into(),
                hostnames: vec!["foo.local".into(), "bar.local".into()],
            },
            HostAlias {
                ip: "10.1.2.3".into(),
                hostnames: vec!["foo.remote".into()],
            },
        ];
        let h = hosts_file("web", Some("10.87.0.5"), &aliases, None);
        assert_eq!(
            h,
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
             fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n\
             10.87.0.5\tweb\n\n# Entries added by HostAliases.\n\
             127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tfoo.remote\n"
        );
        assert!(hosts_file("web", None, &[], None).ends_with("127.0.1.1\tweb\n"));
        // A StatefulSet's pod (hostname and subdomain): its FQDN first.
        let names = super::host_names("db-0", Some("db"), "shop");
        assert!(
            hosts_file(&names, Some("10.87.0.6"), &[], None)
                .ends_with("10.87.0.6\tdb-0.db.shop.svc.cluster.local\tdb-0\n")
        );
        assert_eq!(super::host_names("web", None, "default"), "web");
        let host = hosts_file("web", None, &aliases[1..], Some("127.0.0.1 localhost"));
        assert_eq!(
            host,
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n\n\
             # Entries added by HostAliases.\n10.1.2.3\tfoo.remote\n"
        );
    }
}

#[cfg(test)]
mod resolv_tests {
    use super::only_loopback_nameservers;

    #[test]
    fn only_a_resolver_on_loopback_is_replaced_for_pods() {
        // systemd-resolved's stub file.
        assert!(only_loopback_nameservers(
            "# stub\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n"
        ));
        assert!(only_loopback_nameservers("nameserver ::1\n"));
        // A real server, alone or beside a loopback one, is kept.
        assert!(!only_loopback_nameservers("nameserver 192.168.1.1\n"));
        assert!(!only_loopback_nameservers(
            "nameserver 127.0.0.53\nnameserver 10.0.0.1\n"
        ));
        // No server at all, or one we cannot read: left as it is.
        assert!(!only_loopback_nameservers("search lan\n"));
        assert!(!only_loopback_nameservers("nameserver\n"));
    }
}
