//! A pod's `resolv.conf`, formed as the kubelet forms it
//! (`pkg/kubelet/network/dns`) and written as containerd writes it. Pure.
//!
//! The base is the host's resolver for `dnsPolicy` `ClusterFirst`,
//! `ClusterFirstWithHostNet` and `Default` (there is no cluster DNS: the
//! kubelet without `clusterDNS` falls back to `Default` too) and nothing for
//! `None`; `dnsConfig` is appended (nameservers and search paths without
//! duplicates, options by name, the pod's value winning). The result is cut
//! to the resolver's limits with the kubelet's `DNSConfigForming` warnings.

use crate::spec::PodSpec;
use crate::spec::validate::{MAX_DNS_NAMESERVERS, MAX_DNS_SEARCH_LIST_CHARS, MAX_DNS_SEARCH_PATHS};

/// A search path longer than this (a DNS subdomain's limit) makes some
/// resolvers (glibc 2.28) abort: the kubelet drops it.
const MAX_SEARCH_LEN: usize = 253;

/// Sets `opt` (`name` or `name:value`) in `options`: in place of an option
/// of the same name, else at the end.
fn set_option(options: &mut Vec<String>, opt: String) {
    let name = |o: &str| o.split(':').next().unwrap_or("").to_string();
    let n = name(&opt);
    match options.iter_mut().find(|o| name(o) == n) {
        Some(o) => *o = opt,
        None => options.push(opt),
    }
}

fn push_new(list: &mut Vec<String>, items: &[String]) {
    for i in items {
        if !list.contains(i) {
            list.push(i.clone());
        }
    }
}

/// The pod's `resolv.conf` from the host's (`host`) and the warnings to
/// record on the pod (reason `DNSConfigForming`).
pub fn resolv_conf(spec: &PodSpec, host: &str) -> (String, Vec<String>) {
    let (mut servers, mut searches, mut options) = (Vec::new(), Vec::new(), Vec::new());
    if spec.dns_policy.as_deref() != Some("None") {
        // The kubelet's parseResolvConf: the last `search` line wins,
        // `domain` is ignored.
        for line in host.lines().filter(|l| !l.starts_with(['#', ';'])) {
            let mut f = line.split_whitespace();
            match f.next() {
                Some("nameserver") => servers.extend(f.next().map(String::from)),
                Some("search") => {
                    searches = f
                        .filter(|s| *s != ".")
                        .map(|s| s.trim_end_matches('.').to_string())
                        .collect()
                }
                Some("options") => f.for_each(|o| set_option(&mut options, o.to_string())),
                _ => {}
            }
        }
    }
    if let Some(c) = &spec.dns_config {
        push_new(&mut servers, &c.nameservers);
        push_new(&mut searches, &c.searches);
        for o in &c.options {
            let opt = match &o.value {
                Some(v) if !v.is_empty() => format!("{}:{v}", o.name),
                _ => o.name.clone(),
            };
            set_option(&mut options, opt);
        }
    }
    let mut warnings = Vec::new();
    if servers.len() > MAX_DNS_NAMESERVERS {
        servers.truncate(MAX_DNS_NAMESERVERS);
        warnings.push(format!(
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: {}",
            servers.join(" ")
        ));
    }
    let n = searches.len();
    searches.truncate(MAX_DNS_SEARCH_PATHS);
    searches.retain(|s| s.len() <= MAX_SEARCH_LEN);
    let mut exceeded = searches.len() != n;
    while searches.join(" ").len() > MAX_DNS_SEARCH_LIST_CHARS {
        searches.pop();
        exceeded = true;
    }
    if exceeded {
        warnings.push(format!(
            "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: {}",
            searches.join(" ")
        ));
    }
    if servers.is_empty() && searches.is_empty() && options.is_empty() {
        // containerd copies the host's file when it is given nothing.
        return (host.to_string(), warnings);
    }
    let mut s = String::new();
    if !searches.is_empty() {
        s = format!("search {}\n", searches.join(" "));
    }
    for ns in &servers {
        s.push_str(&format!("nameserver {ns}\n"));
    }
    if !options.is_empty() {
        s.push_str(&format!("options {}\n", options.join(" ")));
    }
    (s, warnings)
}

#[cfg(test)]
mod tests {
    use super::resolv_conf;
    use crate::spec::{EnvVar, PodDnsConfig, PodSpec};

    fn spec(policy: Option<&str>, c: Option<PodDnsConfig>) -> PodSpec {
        PodSpec {
            dns_policy: policy.map(String::from),
            dns_config: c,
            ..Default::default()
        }
    }

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    const HOST: &str = "# generated\ndomain lan\nsearch old.example\nnameserver 192.168.1.1\n\
                        search lan. home.arpa .\nnameserver 192.168.1.2\noptions ndots:1 edns0\n";

    fn config() -> PodDnsConfig {
        PodDnsConfig {
            nameservers: strings(&["10.0.0.10", "192.168.1.2"]),
            searches: strings(&["ns1.svc.example", "lan"]),
            options: vec![
                EnvVar {
                    name: "ndots".into(),
                    value: Some("2".into()),
                    ..Default::default()
                },
                EnvVar {
                    name: "single-request".into(),
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn the_host_policies_give_the_hosts_resolver_in_containerds_format() {
        for p in [
            None,
            Some("ClusterFirst"),
            Some("ClusterFirstWithHostNet"),
            Some("Default"),
        ] {
            let (s, w) = resolv_conf(&spec(p, None), HOST);
            assert_eq!(
                s,
                "search lan home.arpa\nnameserver 192.168.1.1\nnameserver 192.168.1.2\noptions ndots:1 edns0\n",
                "{p:?}"
            );
            assert!(w.is_empty());
        }
        // Nothing to say: the host's file as it is.
        assert_eq!(resolv_conf(&spec(None, None), "# empty\n").0, "# empty\n");
    }

    #[test]
    fn dns_config_is_merged_onto_the_host_resolver_without_duplicates() {
        let (s, w) = resolv_conf(&spec(Some("Default"), Some(config())), HOST);
        assert_eq!(
            s,
            "search lan home.arpa ns1.svc.example\nnameserver 192.168.1.1\n\
             nameserver 192.168.1.2\nnameserver 10.0.0.10\noptions ndots:2 edns0 single-request\n"
        );
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn policy_none_takes_only_the_dns_config() {
        let (s, w) = resolv_conf(&spec(Some("None"), Some(config())), HOST);
        assert_eq!(
            s,
            "search ns1.svc.example lan\nnameserver 10.0.0.10\nnameserver 192.168.1.2\n\
             options ndots:2 single-request\n"
        );
        assert!(w.is_empty());
    }

    #[test]
    fn over_the_limits_the_lists_are_cut_with_the_kubelets_warnings() {
        let mut c = config();
        c.nameservers = strings(&["10.0.0.10", "10.0.0.11"]);
        c.searches = (0..31).map(|i| format!("d{i}.example")).collect();
        let (s, w) = resolv_conf(&spec(None, Some(c)), HOST);
        assert!(s.contains(
            "nameserver 192.168.1.1\nnameserver 192.168.1.2\nnameserver 10.0.0.10\noptions"
        ));
        assert_eq!(
            w[0],
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: 192.168.1.1 192.168.1.2 10.0.0.10"
        );
        // 2 from the host + 31: the last one goes.
        assert!(s.starts_with("search lan home.arpa d0.example"));
        assert!(s.contains(" d29.example\n"), "{s}");
        assert!(!s.contains("d30"));
        assert!(w[1].starts_with("Search Line limits were exceeded, some search paths have been omitted, the applied search line is: lan home.arpa d0.example"));
        assert!(w[1].ends_with(" d29.example"));
        // 2048 characters: whole paths are dropped from the end until it fits.
        let long = |c: char| format!("{}.example", c.to_string().repeat(200));
        let mut c = config();
        c.searches = "abcdefghij".chars().map(long).collect();
        let (s, w) = resolv_conf(&spec(Some("None"), Some(c)), "");
        let line = s.lines().next().unwrap();
        assert!(line.len() - "search ".len() <= 2048, "{}", line.len());
        assert_eq!(line.split(' ').count(), 1 + 9);
        assert_eq!(w.len(), 1);
    }
}
