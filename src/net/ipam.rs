//! IP address management persisted like CNI's `host-local`: one file per
//! allocated address, `<dir>/<ip>`, holding the pod UID, written with
//! `O_EXCL` so an address is never handed out twice; `<dir>/last_reserved_ip`
//! makes allocation round-robin (a freed address is reused last). The
//! files survive an agent restart (a pod keeps its address) and are
//! reconciled against the live pods at start (nothing leaks after a
//! crash or a reboot).

use crate::vecmap::VecMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::Cidr;

const LAST: &str = "last_reserved_ip";

#[derive(Debug)]
pub struct Ipam {
    dir: PathBuf,
    cidr: Cidr,
    /// Address → pod UID, as on disk.
    used: VecMap<Ipv4Addr, String>,
    last: Option<Ipv4Addr>,
}

impl Ipam {
    /// Loads the allocations under `dir` (created if missing). Files for
    /// addresses outside `cidr` (the CIDR changed) are removed.
    pub fn open(dir: &Path, cidr: Cidr) -> std::io::Result<Ipam> {
        std::fs::create_dir_all(dir)?;
        let mut used = VecMap::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name();
            let Some(ip) = name.to_str().and_then(|n| n.parse::<Ipv4Addr>().ok()) else {
                continue;
            };
            let uid = std::fs::read_to_string(e.path())?.trim().to_string();
            if !cidr.contains(ip) || uid.is_empty() {
                std::fs::remove_file(e.path())?;
                continue;
            }
            used.insert(ip, uid);
        }
        let last = std::fs::read_to_string(dir.join(LAST))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        Ok(Ipam {
            dir: dir.to_path_buf(),
            cidr,
            used,
            last,
        })
    }

    /// The address held by `uid`, if any.
    pub fn lookup(&self, uid: &str) -> Option<Ipv4Addr> {
        self.used.iter().find(|(_, u)| *u == uid).map(|(ip, _)| *ip)
    }

    /// The address of `uid`: the one it holds, or the next free one after
    /// the last reserved. A full pool is an error saying so.
    pub fn allocate(&mut self, uid: &str) -> Result<Ipv4Addr, String> {
        if let Some(ip) = self.lookup(uid) {
            return Ok(ip);
        }
        let n = self.cidr.hosts();
        // Host 1 is the gateway; pods get hosts 2..=n, slots 0..n-1.
        let slots = n - 1;
        let after = self
            .last
            .filter(|l| self.cidr.contains(*l))
            .map(|l| u32::from(l) - u32::from(self.cidr.net))
            .filter(|h| (2..=n).contains(h))
            .map_or(slots - 1, |h| h - 2);
        for k in 0..slots {
            let ip = self.cidr.host((after + 1 + k) % slots + 2);
            if self.used.contains_key(&ip) {
                continue;
            }
            let path = self.dir.join(ip.to_string());
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .and_then(|mut f| f.write_all(format!("{uid}\n").as_bytes()));
            match created {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("allocating {ip}: {}: {e}", path.display())),
            }
            self.used.insert(ip, uid.to_string());
            self.last = Some(ip);
            let _ = std::fs::write(self.dir.join(LAST), format!("{ip}\n"));
            return Ok(ip);
        }
        Err(format!(
            "no IP addresses available in range set {}-{} (pod CIDR {}, {} in use)",
            self.cidr.host(2),
            self.cidr.host(n),
            self.cidr,
            self.used.len()
        ))
    }

    /// Frees the addresses of `uid`.
    pub fn release(&mut self, uid: &str) {
        let ips: Vec<Ipv4Addr> = self
            .used
            .iter()
            .filter(|(_, u)| *u == uid)
            .map(|(ip, _)| *ip)
            .collect();
        for ip in ips {
            self.used.remove(&ip);
            if let Err(e) = std::fs::remove_file(self.dir.join(ip.to_string())) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    log::warn!("ipam: removing {ip}: {e}");
                }
            }
        }
    }

    /// Frees every address whose pod is not in `live`; returns them.
    pub fn reconcile(&mut self, live: &dyn Fn(&str) -> bool) -> Vec<(Ipv4Addr, String)> {
        let stale: Vec<(Ipv4Addr, String)> = self
            .used
            .iter()
            .filter(|(_, u)| !live(u))
            .map(|(ip, u)| (*ip, u.clone()))
            .collect();
        for (_, uid) in &stale {
            self.release(uid);
        }
        stale
    }

    /// Every allocation, address order.
    pub fn allocations(&self) -> impl Iterator<Item = (&Ipv4Addr, &String)> {
        self.used.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_are_persisted_one_file_each_and_kept_by_their_pod() {
        let d = tempfile::tempdir().unwrap();
        let mut a = Ipam::open(d.path(), cidr("10.87.0.0/24")).unwrap();
        assert_eq!(a.allocate("u1").unwrap(), Ipv4Addr::new(10, 87, 0, 2));
        assert_eq!(a.allocate("u2").unwrap(), Ipv4Addr::new(10, 87, 0, 3));
        assert_eq!(a.allocate("u1").unwrap(), Ipv4Addr::new(10, 87, 0, 2));
        assert_eq!(
            std::fs::read_to_string(d.path().join("10.87.0.3")).unwrap(),
            "u2\n"
        );
        let mut b = Ipam::open(d.path(), cidr("10.87.0.0/24")).unwrap();
        assert_eq!(b.lookup("u2"), Some(Ipv4Addr::new(10, 87, 0, 3)));
        // Round robin: a freed address is not the next one handed out.
        b.release("u1");
        assert!(!d.path().join("10.87.0.2").exists());
        assert_eq!(b.allocate("u3").unwrap(), Ipv4Addr::new(10, 87, 0, 4));
    }

    #[test]
    fn a_full_pool_is_an_error_naming_the_range_and_reconcile_frees_dead_pods() {
        let d = tempfile::tempdir().unwrap();
        let mut a = Ipam::open(d.path(), cidr("10.87.0.0/30")).unwrap();
        assert_eq!(a.allocate("u1").unwrap(), Ipv4Addr::new(10, 87, 0, 2));
        let err = a.allocate("u2").unwrap_err();
        assert!(
            err.contains("no IP addresses available in range set 10.87.0.2-10.87.0.2"),
            "{err}"
        );
        let freed = a.reconcile(&|u| u != "u1");
        assert_eq!(freed, vec![(Ipv4Addr::new(10, 87, 0, 2), "u1".to_string())]);
        assert_eq!(a.allocate("u2").unwrap(), Ipv4Addr::new(10, 87, 0, 2));
        // Another CIDR: the old files go.
        let b = Ipam::open(d.path(), cidr("10.9.0.0/24")).unwrap();
        assert_eq!(b.allocations().count(), 0);
        assert!(!d.path().join("10.87.0.2").exists());
    }
}
