//! `picolet top pod`: kubectl top's columns, from the agent's samples
//! (docs/metrics.md).

use super::{Common, not_found, parse_api};
use crate::api::{Request, Response};
use crate::metrics::{cpu_text, mem_text};
use std::ffi::OsString;
use std::process::ExitCode;

/// One pod: namespace, name, containers.
type TopPod = (String, String, Vec<TopContainer>);
/// One container: name, millicores, working-set bytes.
type TopContainer = (String, Option<u64>, Option<u64>);

/// Reads a line of [`Response::Top`].
fn parse_line(line: &str) -> Option<TopPod> {
    let mut words = line.split(' ');
    let (ns, name) = (words.next()?, words.next()?);
    let num = |v: &str| v.parse().ok();
    let mut cs = Vec::new();
    for w in words {
        let mut f = w.split(':');
        cs.push((f.next()?.to_string(), num(f.next()?), num(f.next()?)));
    }
    Some((ns.to_string(), name.to_string(), cs))
}

/// Runs `picolet top`.
pub fn top(args: Vec<OsString>) -> Result<ExitCode, String> {
    let flags = ["A", "all-namespaces", "containers", "no-headers"];
    let (c, a) = parse_api(args, &[], &flags)?;
    let (name, rest) = match a.free.as_slice() {
        [kind, rest @ ..] if matches!(kind.as_str(), "pod" | "pods" | "po") => {
            (rest.first(), rest.get(1))
        }
        [kind, ..] => return Err(format!("picolet top: unknown resource {kind:?} (only pod)")),
        [] => return Err("picolet top: which resource? `picolet top pod`".into()),
    };
    if let Some(x) = rest {
        return Err(format!("unexpected argument {x:?}"));
    }
    let Response::Top(lines) = Common::call(&c, Request::Top)? else {
        return Err("the agent sent an unexpected response".into());
    };
    let pods = lines.iter().filter_map(|l| parse_line(l)).collect();
    let all = a.has(&["A", "all-namespaces"]);
    let view = View {
        namespace: (!all).then_some(c.namespace.as_str()),
        name: name.map(String::as_str),
        containers: a.has(&["containers"]),
        headers: !a.has(&["no-headers"]),
    };
    match view.render(pods) {
        Shown::Table(t) => super::out(&t)?,
        Shown::NoPods => match (name, view.namespace) {
            (Some(n), _) => return Ok(not_found(n)),
            (None, Some(ns)) => eprintln!("No resources found in {ns} namespace."),
            (None, None) => eprintln!("No resources found"),
        },
        Shown::NotYet => return Err("metrics not available yet".into()),
    }
    Ok(ExitCode::SUCCESS)
}

/// What to show.
struct View<'a> {
    /// `None`: every namespace.
    namespace: Option<&'a str>,
    name: Option<&'a str>,
    containers: bool,
    headers: bool,
}

#[derive(Debug, PartialEq)]
enum Shown {
    Table(String),
    /// No such pod.
    NoPods,
    /// Pods, but no figures yet.
    NotYet,
}

impl View<'_> {
    fn render(&self, mut pods: Vec<TopPod>) -> Shown {
        pods.retain(|(ns, n, _)| {
            self.namespace.is_none_or(|w| w == ns) && self.name.is_none_or(|w| w == n)
        });
        if pods.is_empty() {
            return Shown::NoPods;
        }
        pods.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let mut rows = Vec::new();
        for (ns, pod, cs) in &pods {
            // A pod shows once each container has a figure (metrics-server
            // leaves out a pod with a container not measured yet).
            let all = |f: fn(&TopContainer) -> Option<u64>| cs.iter().map(f).sum::<Option<u64>>();
            let (cpu, mem) = (all(|c| c.1), all(|c| c.2));
            if cs.is_empty() || (cpu.is_none() && mem.is_none()) {
                continue;
            }
            let lead = |v: Vec<&str>| -> Vec<String> {
                let mut r: Vec<String> = Vec::new();
                if self.namespace.is_none() {
                    r.push(ns.clone());
                }
                r.extend(v.into_iter().map(str::to_string));
                r
            };
            if self.containers {
                for (c, cpu, mem) in cs {
                    let mut r = lead(vec![pod, c]);
                    r.extend([cpu_text(*cpu), mem_text(*mem)]);
                    rows.push(r);
                }
            } else {
                let mut r = lead(vec![pod]);
                r.extend([cpu_text(cpu), mem_text(mem)]);
                rows.push(r);
            }
        }
        if rows.is_empty() {
            return Shown::NotYet;
        }
        let mut header = Vec::new();
        if self.namespace.is_none() {
            header.push("NAMESPACE");
        }
        if self.containers {
            header.push("POD");
        }
        header.extend(["NAME", "CPU(cores)", "MEMORY(bytes)"]);
        let t = crate::api::print::table(&header, &rows);
        Shown::Table(if self.headers {
            t
        } else {
            t.split_once('\n').map_or(t.clone(), |(_, r)| r.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn pods() -> Vec<TopPod> {
        let s = String::from;
        vec![
            (
                s("default"),
                s("web"),
                vec![
                    (s("app"), Some(12), Some(20 * MIB)),
                    (s("sidecar"), Some(3), Some(5 * MIB + 7)),
                ],
            ),
            (s("default"), s("new"), vec![]),
            (s("kube"), s("db"), vec![(s("db"), Some(250), None)]),
        ]
    }

    fn view<'a>(ns: Option<&'a str>, name: Option<&'a str>, containers: bool) -> View<'a> {
        View {
            namespace: ns,
            name,
            containers,
            headers: true,
        }
    }

    #[test]
    fn pods_show_the_sum_of_their_containers_as_kubectl_top_does() {
        assert_eq!(
            view(Some("default"), None, false).render(pods()),
            Shown::Table("NAME   CPU(cores)   MEMORY(bytes)\nweb    15m          25Mi\n".into())
        );
        assert_eq!(
            view(None, None, false).render(pods()),
            Shown::Table(
                "NAMESPACE   NAME   CPU(cores)   MEMORY(bytes)\n\
                 default     web    15m          25Mi\n\
                 kube        db     250m         <unknown>\n"
                    .into()
            )
        );
    }

    #[test]
    fn containers_get_a_line_each() {
        assert_eq!(
            view(Some("default"), Some("web"), true).render(pods()),
            Shown::Table(
                "POD   NAME      CPU(cores)   MEMORY(bytes)\n\
                 web   app       12m          20Mi\n\
                 web   sidecar   3m           5Mi\n"
                    .into()
            )
        );
        let mut v = view(Some("default"), Some("web"), false);
        v.headers = false;
        assert_eq!(
            v.render(pods()),
            Shown::Table("web    15m          25Mi\n".into())
        );
    }

    #[test]
    fn the_agents_lines_are_read_back() {
        let s = String::from;
        assert_eq!(
            parse_line("kube db db:250:- side:-:1048576"),
            Some((
                s("kube"),
                s("db"),
                vec![(s("db"), Some(250), None), (s("side"), None, Some(MIB))]
            ))
        );
        assert_eq!(
            parse_line("default new"),
            Some((s("default"), s("new"), vec![]))
        );
        assert_eq!(parse_line("bad"), None);
    }

    #[test]
    fn no_pod_and_no_figures_yet_are_told_apart() {
        assert_eq!(
            view(Some("default"), Some("new"), false).render(pods()),
            Shown::NotYet
        );
        assert_eq!(
            view(Some("default"), Some("gone"), false).render(pods()),
            Shown::NoPods
        );
        assert_eq!(
            view(Some("empty"), None, false).render(pods()),
            Shown::NoPods
        );
    }
}
